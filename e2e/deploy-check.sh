#!/usr/bin/env bash
# Installs deploy/ on a cluster the way users do, and checks its RBAC against the API server.
#
#   bash e2e/deploy-check.sh KUBECONFIG_PATH KUBECTL_PATH [OPERATOR_KUBECONFIG_OUT]
#
# 1. renders deploy/ with `KUBECTL kustomize deploy` (kubectl's built-in kustomize),
# 2. applies it server-side to the cluster of KUBECONFIG_PATH,
# 3. asks the API server (`kubectl auth can-i --as=<the ServiceAccount>`) every verb the operator
#    needs (must be yes) and a set it must not have (must be no): the table in docs/install.md.
#
# stdout: the ServiceAccount's user name (system:serviceaccount:NAMESPACE:NAME), for further
# `kubectl auth can-i --as=...`. Progress and the can-i table go to stderr. Exit 1 on any failure.
# The caller needs impersonation rights (an admin). Pods need not run: on e2e/controlplane.sh
# (no scheduler) the Deployment is created and stays at zero ready replicas.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 KUBECONFIG_PATH KUBECTL_PATH [OPERATOR_KUBECONFIG_OUT]" >&2
  exit 2
fi
export KUBECONFIG=$1
KUBECTL=$2
operator_kubeconfig=${3:-}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[deploy-check] %s\n' "$*" >&2; }
k() { "$KUBECTL" "$@"; }

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
k kustomize deploy >"$rendered"
log "rendered deploy/: $(grep -c '^kind:' "$rendered") objects ($(grep '^kind:' "$rendered" | cut -d' ' -f2 | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}'))"

k apply --server-side --field-manager=fluxtune-deploy-check -f "$rendered" >&2

# The optional components render on top of deploy/ as an overlay would use them; the ones whose
# kinds every cluster serves are also checked by the API server (server-side dry run).
# kustomize wants relative paths: the overlay lives two levels below the repository root.
overlay=target/deploy-check-overlay
rm -rf "$overlay"
mkdir -p "$overlay"
trap 'rm -rf "$rendered" "$overlay"' EXIT
for component in deploy/components/*/; do
  component=${component%/}
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../deploy\ncomponents:\n  - ../../%s\n' \
    "$component" >"$overlay/kustomization.yaml"
  k kustomize "$overlay" >"$overlay/out.yaml"
  # diff exits 1 when the component adds something, which is the point.
  added=$({ diff <(grep '^kind:' "$rendered" | sort) <(grep '^kind:' "$overlay/out.yaml" | sort) || true; } |
    { grep '^>' || true; } | cut -d' ' -f3 | paste -sd, -)
  [[ -n $added ]] || { log "component $component adds nothing"; exit 1; }
  if [[ $component == */servicemonitor || $component == */alerts ]]; then
    log "component $component renders ($added; needs prometheus-operator's CRDs to apply)"
  else
    k apply --server-side --force-conflicts --dry-run=server --field-manager=fluxtune-deploy-check -f "$overlay/out.yaml" >/dev/null
    log "component $component renders and the API server accepts it ($added)"
  fi
done

# The ServiceAccount the Deployment runs as, read back from the cluster.
deploy_ns=$(k get -f "$rendered" -o jsonpath='{range .items[?(@.kind=="Deployment")]}{.metadata.namespace}{end}')
sa=$(k -n "$deploy_ns" get deployment fluxtune -o jsonpath='{.spec.template.spec.serviceAccountName}')
k -n "$deploy_ns" get serviceaccount "$sa" -o name >/dev/null
user="system:serviceaccount:$deploy_ns:$sa"
log "operator runs as $user"

# VERB RESOURCE[/NAME] [NAMESPACE] [--subresource=S]: the grants the operator needs (operator/src; deploy/rbac.yaml and
# deploy/leader-election.yaml say which call needs which). NAMESPACE "any" is a profile namespace
# chosen for the test: cluster-wide rules must hold in every namespace.
allowed=(
  "list fluxprofiles.fluxtune.dev any"
  "watch fluxprofiles.fluxtune.dev any"
  "patch fluxprofiles.fluxtune.dev any --subresource=status"
  "create events.events.k8s.io any"
  "patch events.events.k8s.io any"
  "get customresourcedefinitions.apiextensions.k8s.io/fluxprofiles.fluxtune.dev"
  "get customresourcedefinitions.apiextensions.k8s.io/gitrepositories.source.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/kustomizations.kustomize.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/imagerepositories.image.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/imagepolicies.image.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/imageupdateautomations.image.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/receivers.notification.toolkit.fluxcd.io"
  "create leases.coordination.k8s.io $deploy_ns"
  "get leases.coordination.k8s.io/fluxtune-leader $deploy_ns"
  "patch leases.coordination.k8s.io/fluxtune-leader $deploy_ns"
)
for flux in gitrepositories.source.toolkit.fluxcd.io kustomizations.kustomize.toolkit.fluxcd.io \
  imagerepositories.image.toolkit.fluxcd.io imagepolicies.image.toolkit.fluxcd.io \
  imageupdateautomations.image.toolkit.fluxcd.io receivers.notification.toolkit.fluxcd.io; do
  for verb in get list watch create patch delete; do
    allowed+=("$verb $flux any")
  done
  for verb in list watch; do
    allowed+=("$verb customresourcedefinitions.apiextensions.k8s.io/$flux")
  done
done

# What it must not be able to do: writes to what it only reads, verbs it never uses, other
# namespaces' or other names' Leases, other CRDs, anything outside its rules.
denied=(
  "get fluxprofiles.fluxtune.dev any"
  "patch fluxprofiles.fluxtune.dev any"
  "update fluxprofiles.fluxtune.dev any"
  "delete fluxprofiles.fluxtune.dev any"
  "update fluxprofiles.fluxtune.dev any --subresource=status"
  "get secrets any"
  "list secrets any"
  "watch secrets any"
  "get secrets --all-namespaces"
  "list secrets --all-namespaces"
  "watch secrets --all-namespaces"
  "create secrets any"
  "patch secrets any"
  "delete secrets any"
  "update gitrepositories.source.toolkit.fluxcd.io any"
  "deletecollection kustomizations.kustomize.toolkit.fluxcd.io any"
  "patch gitrepositories.source.toolkit.fluxcd.io any --subresource=status"
  "create events any"
  "delete events.events.k8s.io any"
  "get customresourcedefinitions.apiextensions.k8s.io"
  "list customresourcedefinitions.apiextensions.k8s.io"
  "watch customresourcedefinitions.apiextensions.k8s.io"
  "watch customresourcedefinitions.apiextensions.k8s.io/fluxprofiles.fluxtune.dev"
  "watch customresourcedefinitions.apiextensions.k8s.io/helmreleases.helm.toolkit.fluxcd.io"
  "get customresourcedefinitions.apiextensions.k8s.io/helmreleases.helm.toolkit.fluxcd.io"
  "patch customresourcedefinitions.apiextensions.k8s.io/fluxprofiles.fluxtune.dev"
  "delete namespaces"
  "create namespaces"
  "get configmaps any"
  "create deployments.apps any"
  "create pods any"
  "update leases.coordination.k8s.io/fluxtune-leader $deploy_ns"
  "delete leases.coordination.k8s.io/fluxtune-leader $deploy_ns"
  "get leases.coordination.k8s.io/other $deploy_ns"
  "list leases.coordination.k8s.io $deploy_ns"
  "create leases.coordination.k8s.io default"
  "get leases.coordination.k8s.io/fluxtune-leader kube-system"
  "create clusterrolebindings.rbac.authorization.k8s.io"
  "impersonate serviceaccounts any"
)

profile_ns="flux-system"
failed=0
ask() {
  local want=$1 verb=$2 resource=$3 ns="" flags=() arg got
  shift 3
  for arg in "$@"; do
    case $arg in
      --*) flags+=("$arg") ;;
      any) ns=$profile_ns ;;
      *) ns=$arg ;;
    esac
  done
  [[ -n $ns ]] && flags+=(-n "$ns")
  got=$(k auth can-i "$verb" "$resource" "--as=$user" "${flags[@]}" 2>/dev/null) || true
  printf '  %-3s %-3s can-i %-8s %s %s\n' "$([[ $got == "$want" ]] && echo ok || echo BAD)" "$got" \
    "$verb" "$resource" "${flags[*]}" >&2
  [[ $got == "$want" ]] || failed=1
}
log "grants the operator needs (want yes):"
for line in "${allowed[@]}"; do
  # shellcheck disable=SC2086
  ask yes $line
done
log "grants it must not have (want no):"
for line in "${denied[@]}"; do
  # shellcheck disable=SC2086
  ask no $line
done
if [[ $failed -ne 0 ]]; then
  log "FAILED: the RBAC in deploy/ differs from what the operator needs"
  exit 1
fi
log "RBAC: ${#allowed[@]} needed grants present, ${#denied[@]} others absent"
if [[ -n $operator_kubeconfig ]]; then
  # The same cluster with a TokenRequest token of the ServiceAccount: a process using it has exactly
  # the permissions deploy/ grants.
  token=$(k -n "$deploy_ns" create token "$sa" --duration=2h)
  sed "s|^\([[:space:]]*token:\).*|\1 $token|" "$KUBECONFIG" >"$operator_kubeconfig"
  log "wrote $operator_kubeconfig for $user"
fi
echo "$user"
