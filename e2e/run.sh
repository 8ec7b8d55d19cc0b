#!/usr/bin/env bash
# fluxtune's main job for a newcomer: run the operator.
#
#   bash e2e/run.sh [OPTIONS] [-- fluxtune run flags]
#
#  - With a reachable cluster in KUBECONFIG (or ~/.kube/config): `fluxtune run` against it.
#  - Without one (or with --local): a local control plane with the Flux controllers, a Git host
#    that sends push webhooks and an OCI registry (all built from the Go module proxy on first
#    use), a generated monorepo of three clusters, one FluxProfile per cluster, and the operator.
#    Then, live: one commit delivered through the Git webhook and one image tag delivered through
#    the image chain, each printed with its measured latency next to the profile's budget. The
#    profiles stay up for you to play with until Ctrl-C.
#
# Options:
#   --operator-only  the local mode without Flux: only the operator and samples/ (quick)
#   --local          always start a local control plane, even if a cluster is configured
#   --exit           stop after the demonstration instead of waiting for Ctrl-C (the test
#                    command runs `--local --exit`, so this command stays working)
# Environment: FLUXTUNE_LOCAL_DIR (state, default e2e/.work/local), FLUXTUNE_HTTP_PORT (8080).
set -euo pipefail
cd "$(dirname "$0")/.."

operator_only='' local='' exit_after=''
while [[ $# -gt 0 ]]; do
  case $1 in
    --operator-only) operator_only=1 ;;
    --local) local=1 ;;
    --exit) exit_after=1 ;;
    --) shift; break ;;
    *) break ;;
  esac
  shift
done

# shellcheck source=e2e/deps.sh
source e2e/deps.sh
deps_run
cargo build --locked --quiet
bin=$PWD/target/debug/fluxtune

kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
if [[ -z $local && -f ${kubeconfig%%:*} ]]; then
  echo "fluxtune: running against the cluster in $kubeconfig" >&2
  exec "$bin" run "$@"
fi

if [[ -t 2 ]]; then
  say() { printf '\n\033[1m%s\033[0m\n' "$*" >&2; }
else
  say() { printf '\n== %s\n' "$*" >&2; }
fi
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }
# until_true WHAT SECONDS CMD...: polls CMD every 0.1 s.
until_true() {
  local what=$1 limit=$2 t0
  shift 2
  t0=$(now)
  until "$@" >/dev/null 2>&1; do
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "run.sh: gave up waiting for $what after ${limit}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

state=${FLUXTUNE_LOCAL_DIR:-$PWD/e2e/.work/local}
mkdir -p "$(dirname "$state")"
bash e2e/controlplane.sh down "$state" >/dev/null 2>&1 || true
rm -rf "$state"
say "Building (first run only: the control plane ~12 min, the Flux controllers ~10 min more on 2 cores)"
bash e2e/controlplane.sh build
[[ -n $operator_only ]] || bash e2e/controlplane.sh build-flux
bash e2e/controlplane.sh up "$state"
[[ -n $operator_only ]] || bash e2e/controlplane.sh flux-up "$state"
set -a
# shellcheck disable=SC1091
source "$state/env"
set +a
k() { "$FLUXTUNE_KUBECTL" "$@"; }

operator=
stop() {
  local rc=$?
  [[ -z $operator ]] || { kill "$operator" 2>/dev/null && wait "$operator" 2>/dev/null; } || true
  # 130: Ctrl-C, the way out of the interactive mode.
  [[ $rc == 0 || $rc == 130 ]] || bash e2e/controlplane.sh logs "$state" || true
  bash e2e/controlplane.sh down "$state" >/dev/null 2>&1 || true
  exit "$rc"
}
trap stop EXIT
token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
http=127.0.0.1:${FLUXTUNE_HTTP_PORT:-8080}
start_operator() {
  "$bin" run --leader-election false --http-addr "$http" "$@" >"$state/logs/fluxtune.log" 2>&1 &
  operator=$!
}
# all_true CONDITION N: N profiles have CONDITION=True (Applied: written; Ready: delivered).
all_true() {
  [[ $(k get fluxprofiles -A -o jsonpath="{range .items[*]}{.status.conditions[?(@.type==\"$1\")].status}{\"\\n\"}{end}" | grep -c True) -eq $2 ]]
}

if [[ -n $operator_only ]]; then
  k create namespace flux-system
  for secret in kubeconf-webhook gitlab-webhook; do
    k -n flux-system create secret generic "$secret" --from-literal=token="$(token)"
    k -n flux-system label secret "$secret" reconcile.fluxcd.io/watch=Enabled
  done
  k apply --server-side -f samples/
  samples=(samples/*.yaml)
  start_operator "$@"
  # No Flux controllers run here, so nothing is delivered: the samples are applied.
  until_true "the samples to be Applied" 60 all_true Applied "${#samples[@]}"
  k get fluxprofiles -A
  k get gitrepositories,kustomizations,imagerepositories,imagepolicies,imageupdateautomations,receivers -n flux-system
  cat >&2 <<MSG

fluxtune is running against a local control plane (KUBECONFIG=$KUBECONFIG), without Flux.
Metrics: http://$http/metrics. Try: $FLUXTUNE_KUBECTL get fluxprofiles -A -w
Ctrl-C stops the operator and the control plane.
MSG
  [[ -n $exit_after ]] || wait "$operator"
  exit 0
fi

# ---- The Flux loop: a fleet monorepo on the Git host, an image in the registry, a profile per cluster.
ns=fleet
clusters=(cluster1 cluster2 cluster3)
image=$FLUXTUNE_REGISTRY/acme/app
hook_token=$(token)
repo=$FLUXTUNE_GIT_ROOT/fleet.git
work=$state/monorepo
git_() { git -C "$work" -c user.name=you -c user.email=you@example.com "$@"; }
push_image() { # TAG: a one-layer image (an empty layer) as $image:TAG
  tar cf "$state/empty.tar" --files-from /dev/null
  "$FLUXTUNE_CRANE" append -f "$state/empty.tar" -t "$image:$1" >/dev/null 2>&1
}

say "A monorepo of ${#clusters[@]} clusters on the local Git host, image $image:1.0.0 in the registry"
push_image 1.0.0
git init -q --bare -b main "$repo"
MONOREPO_IMAGE=$image MONOREPO_POLICY_NS=$ns bash e2e/flux/monorepo.sh "$work" "${#clusters[@]}" >/dev/null
git_ init -q -b main
git_ add -A
git_ commit -qm "fleet monorepo"
git_ remote add origin "$FLUXTUNE_GIT_URL/fleet.git"
git_ push -q origin main
ls "$work"

say "One FluxProfile per cluster (Webhook class; cluster1 also tracks its image)"
k create namespace "$ns" >/dev/null
k -n "$ns" create secret generic git-webhook --from-literal=token="$hook_token" >/dev/null
# notification-controller re-reads labelled Secrets at once when they change.
k -n "$ns" label secret git-webhook reconcile.fluxcd.io/watch=Enabled >/dev/null
for c in "${clusters[@]}"; do
  k create namespace "$ns-$c" >/dev/null
  images=
  if [[ $c == cluster1 ]]; then
    images=$(printf '  images:\n  - name: app\n    repository: %s\n    policy: {semver: {range: ">=1.0.0"}}\n  imageUpdate:\n    author: {name: fluxtune-bot, email: bot@example.com}\n' "$image")
  fi
  cat >"$state/$c.yaml" <<EOF
apiVersion: fluxtune.dev/v1alpha1
kind: FluxProfile
metadata:
  name: $c
  namespace: $ns
spec:
  cluster:
    name: $c
  source:
    url: $FLUXTUNE_GIT_URL/fleet.git
  webhook:
    provider: github
    secretRef: {name: git-webhook}
    baseURL: http://$FLUXTUNE_RECEIVER_ADDR
  apply:
    wait: false          # no Pod runs on this control plane: nothing would become healthy
    targetNamespace: $ns-$c
$images
EOF
done
k apply --server-side -f "$state/cluster1.yaml" -f "$state/cluster2.yaml" -f "$state/cluster3.yaml" >/dev/null
start_operator "$@"
until_true "the profiles to be Ready (delivered)" 60 all_true Ready "${#clusters[@]}"
hook_url() { k -n "$ns" get fluxprofile "$1" -o jsonpath='{.status.webhook.url}'; }
has_hook_url() { [[ -n $(hook_url "$1") ]]; }
for c in "${clusters[@]}"; do
  # The Git host learns each Receiver's URL from the profile's status, as you would paste it into
  # your Git host's webhook settings. It appears once notification-controller has published the
  # Receiver's path.
  until_true "the webhook URL of $c" 60 has_hook_url "$c"
  git --git-dir "$repo" config --add fluxtune.webhook "$(hook_url "$c") $hook_token"
done
k -n "$ns" get fluxprofiles
config_revision() { k -n "$ns-$1" get configmap "$1-config" -o jsonpath='{.data.revision}' 2>/dev/null; }
is_revision() { [[ $(config_revision "$1") == "$2" ]]; }
first_applied() { for c in "${clusters[@]}"; do is_revision "$c" 1 || return 1; done; }
until_true "the first apply of every cluster" 120 first_applied
budget() { k -n "$ns" get fluxprofile "$1" -o jsonpath="{.status.latencyBudget.$2.expected} expected, {.status.latencyBudget.$2.worst} worst"; }

say "A commit to cluster2/, delivered through the Git host's webhook (every interval is 1h)"
sed -i 's/revision: "1"/revision: "2"/' "$work/cluster2/configmap.yaml"
git_ commit -qam "cluster2: revision 2"
t0=$(now)
git_ push -q origin main
until_true "the commit to be applied" 60 is_revision cluster2 2
commit_took=$(took "$t0")
printf '  commit -> applied on cluster2: %s   (budget: %s)\n' "$commit_took" "$(budget cluster2 commitToDeploy)" >&2

say "A new image tag, delivered through the chain: scan -> policy -> automation commit -> webhook -> apply"
deployed() { k -n "$ns-cluster1" get deployment app -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null; }
is_deployed() { [[ $(deployed) == "$image:$1" ]]; }
until_true "the first image to be deployed" 120 is_deployed 1.0.0
t0=$(now)
push_image 1.0.1
# What a registry webhook or a CI step does after a push: ask for a scan now rather than waiting
# for the 1m scan interval (fluxtune hands the request on to the ImageRepository).
k -n "$ns" annotate --overwrite fluxprofile cluster1 "reconcile.fluxcd.io/requestedAt=$(date +%s.%N)" >/dev/null
until_true "the new tag to be deployed" 120 is_deployed 1.0.1
image_took=$(took "$t0")
printf '  tag pushed + scan requested -> deployed on cluster1: %s   (budget without the request, waiting on the 1m scan: %s)\n' \
  "$image_took" "$(budget cluster1 imageToDeploy)" >&2
git_ pull -q origin main
git_ log --oneline -3 >&2

say "fluxtune is running: ${#clusters[@]} profiles, the five Flux controllers, a Git host and a registry"
cat >&2 <<MSG
  export KUBECONFIG=$KUBECONFIG
  kubectl() { $FLUXTUNE_KUBECTL "\$@"; }
  kubectl -n $ns get fluxprofiles -w                     # watch the profiles
  cd $work && git pull -q && \$EDITOR cluster3/configmap.yaml \\
    && git commit -qam change && git push -q            # a commit: applied in about a second
  tar cf /tmp/empty.tar --files-from /dev/null && \\
    $FLUXTUNE_CRANE append -f /tmp/empty.tar -t $image:1.0.2   # a tag: deployed on the next scan (<= 1m)
  Metrics: http://$http/metrics   Operator log: $state/logs/fluxtune.log
Ctrl-C stops everything.
MSG
[[ -n $exit_after ]] || wait "$operator"
