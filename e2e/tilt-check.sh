#!/usr/bin/env bash
# The Tilt dev loop, checked here although neither Tilt nor Docker can run here (docs/tilt-check.md):
#
#   bash e2e/tilt-check.sh              everything below
#   bash e2e/tilt-check.sh --eval-only  steps 1-4 only (no release build, no loop)
#
# 1. builds e2e/tools/tiltcheck (cached under ~/.cache/fluxtune/bin, keyed by its sources) and the
#    control plane's binaries (e2e/controlplane.sh build), and starts a throwaway control plane;
# 2. tiltcheck's own tests: each class of mistake made on purpose in a copy of the Tiltfile fails
#    with a message naming it, only in the modes that reach it;
# 3. the Tiltfile evaluated in every mode (`tilt up`, `-- --in-docker`, `-- --in-docker=false`,
#    and as on macOS), kustomize('deploy') rendered by the pinned kubectl;
# 4. (with --eval-only, stop here)
# 5. the loop of the host-binary mode against the control plane: fluxtune-compile runs
#    `cargo build --release`, the image's build context is checked on disk (the binary is there)
#    and its digest injected into the Deployment, deploy/ is applied server-side, the samples'
#    local_resource runs its commands (webhook Secrets, kubectl apply of samples/);
# 6. the release binary runs as the Deployment would run it (its args, deploy/'s ServiceAccount
#    token) and reconciles every sample profile;
# 7. the loop of the --in-docker mode on the same cluster: the samples' Secrets keep their tokens.
# Prints the time of each step. Needs Rust, Go and git, like the other commands.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

eval_only=false
case ${1:-} in
"") ;;
--eval-only) eval_only=true ;;
*)
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
  ;;
esac

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=
CACHE=${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}
TOOL=$ROOT/e2e/tools/tiltcheck

log() { printf '[tilt-check %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
step_start=$SECONDS
step() {
  log "done in $((SECONDS - step_start)) s"
  step_start=$SECONDS
  log "$*"
}
# A line for test-all.sh's summary of cached builds.
report() { [[ -z ${FLUXTUNE_BUILD_REPORT:-} ]] || echo "$*" >>"$FLUXTUNE_BUILD_REPORT"; }

# tiltcheck, cached like e2e/controlplane.sh's tools: a directory named by the hash of the module's
# files, renamed into place when complete (a killed build never looks done).
build_tiltcheck() {
  local hash dir tmp t0
  hash=$({
    cat "$TOOL/go.mod" "$TOOL/go.sum"
    find "$TOOL" -maxdepth 1 -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs cat
    echo "recipe=1"
  } | sha256sum | cut -c1-12)
  dir=$CACHE/bin/tiltcheck-v0-$hash
  if [[ -x $dir/tiltcheck && -f $dir/.complete ]]; then
    touch "$dir/.complete"
    report "tiltcheck: reused $dir"
  else
    t0=$SECONDS
    mkdir -p "$CACHE/bin"
    tmp=$(mktemp -d "$CACHE/bin/.tmp-tiltcheck-XXXXXX")
    (cd "$TOOL" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/tiltcheck" .) ||
      {
        rm -rf "$tmp"
        die "building tiltcheck failed"
      }
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    report "tiltcheck: built in $((SECONDS - t0)) s"
  fi
  TILTCHECK=$dir/tiltcheck
}

log "building tiltcheck and the control plane (cached), starting a throwaway control plane"
build_tiltcheck
bash e2e/controlplane.sh build
state=$(mktemp -d "${TMPDIR:-/tmp}/fluxtune-tilt.XXXXXX")
operator_pid=
cleanup() {
  local rc=$?
  if [[ -n $operator_pid ]]; then kill "$operator_pid" 2>/dev/null || true; fi
  if [[ $rc -ne 0 ]]; then
    bash e2e/controlplane.sh logs "$state" || true
    [[ ! -f $state/operator.log ]] || tail -n 40 "$state/operator.log" >&2
  fi
  bash e2e/controlplane.sh down "$state" || true
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
bash e2e/controlplane.sh up "$state"
# shellcheck disable=SC1091
source "$state/env"
export KUBECONFIG FLUXTUNE_KUBECTL
k() { "$FLUXTUNE_KUBECTL" "$@"; }

step "tiltcheck's own tests: every class of mistake fails, where it is reached, naming it"
(
  cd "$TOOL"
  unformatted=$(gofmt -l .)
  [[ -z $unformatted ]] || die "gofmt: $unformatted"
  go vet ./...
  go test -count=1 ./...
)

step "the Tiltfile in every mode"
"$TILTCHECK" -kubectl "$FLUXTUNE_KUBECTL" check

if $eval_only; then
  step "--eval-only: not running the loop"
  exit 0
fi

step "the loop of \`tilt up\` (host binary) against the control plane"
# What the Tiltfile's header asks for besides the CRDs (installed by controlplane.sh): `flux install`
# creates flux-system, where the samples live. The local_resources call `kubectl`: the pinned one.
k create namespace flux-system >/dev/null
mkdir -p "$state/bin"
ln -s "$FLUXTUNE_KUBECTL" "$state/bin/kubectl"
export PATH=$state/bin:$PATH
t0=$SECONDS
"$TILTCHECK" -kubectl "$FLUXTUNE_KUBECTL" run
log "(cargo build --release and the rest of the loop: $((SECONDS - t0)) s)"
report "rust release build (the Tiltfile's fluxtune-compile) and the loop: $((SECONDS - t0)) s"

# What the loop left in the cluster, as a developer would see it.
image=$(k -n fluxtune-system get deployment fluxtune -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $image =~ ^ghcr\.io/fluxtune/fluxtune:tilt-[0-9a-f]{16}$ ]] ||
  die "the Deployment runs $image, not the image the loop built (ghcr.io/fluxtune/fluxtune:tilt-<digest>)"
log "the Deployment runs $image"
managers=$(k -n fluxtune-system get deployment fluxtune --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}')
[[ " $managers " == *" tilt "* ]] || die "deploy/ was not applied by the loop (field managers: $managers)"
want=$(cat samples/*.yaml | grep -c '^kind: FluxProfile$')
have=$(k get fluxprofiles -A --no-headers | wc -l)
((want > 0 && have == want)) || die "$have FluxProfiles in the cluster, samples/ has $want"
# Every Receiver token Secret a sample names (spec.webhook, spec.registryWebhook) must be one the
# samples' local_resource creates: a missing one leaves that profile Stalled (WebhookSecretNotFound).
mapfile -t secrets < <(k get fluxprofiles -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.spec.webhook.secretRef.name}{"\n"}{.metadata.namespace}/{.spec.registryWebhook.secretRef.name}{"\n"}{end}' |
  grep -v '/$' | sort -u)
((${#secrets[@]} > 0)) || die "no sample names a webhook Secret: the check below would check nothing"
declare -A token
for s in "${secrets[@]}"; do
  token[$s]=$(k -n "${s%/*}" get secret "${s#*/}" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d) ||
    die "Secret $s, named by a sample, was not created by the samples' local_resource (add it to SECRETS in the Tiltfile)"
  [[ ${token[$s]} =~ ^[0-9a-f]{48}$ ]] || die "Secret $s has no 48-hex-digit token"
  [[ $(k -n "${s%/*}" get secret "${s#*/}" -o jsonpath='{.metadata.labels.reconcile\.fluxcd\.io/watch}') == Enabled ]] ||
    die "Secret $s is not labelled reconcile.fluxcd.io/watch=Enabled"
done
log "$have sample FluxProfiles; the ${#secrets[@]} webhook Secrets they name have tokens: ${secrets[*]}"

step "the release binary, as the Deployment runs it, reconciles every sample"
# deploy/'s ServiceAccount token, the container's args and env (deployment.yaml): the permissions
# and flags the pod would have.
sa_token=$(k -n fluxtune-system create token fluxtune --duration=1h)
sed "s|^\([[:space:]]*token:\).*|\1 $sa_token|" "$KUBECONFIG" >"$state/operator.kubeconfig"
mapfile -t args < <(k -n fluxtune-system get deployment fluxtune -o jsonpath='{range .spec.template.spec.containers[0].args[*]}{@}{"\n"}{end}')
unreconciled() {
  k get fluxprofiles -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.generation} {.status.observedGeneration}{"\n"}{end}' |
    awk '$2 != $3 { n++ } END { print n + 0 }'
}
# Nothing has reconciled them yet, so the wait below means something.
[[ $(unreconciled) == "$have" ]] || die "$(unreconciled) of $have profiles unreconciled before the operator started"
port=$((20000 + RANDOM % 10000))
KUBECONFIG=$state/operator.kubeconfig POD_NAMESPACE=fluxtune-system POD_NAME=tilt-check \
  target/release/fluxtune "${args[@]}" --http-addr "127.0.0.1:$port" >"$state/operator.log" 2>&1 &
operator_pid=$!
for ((i = 0; ; i++)); do
  # Profiles whose status does not yet say their current generation was reconciled.
  pending=$(unreconciled)
  if [[ $pending == 0 ]] && curl -sf --max-time 2 "http://127.0.0.1:$port/readyz" >/dev/null; then break; fi
  kill -0 "$operator_pid" 2>/dev/null || die "target/release/fluxtune ${args[*]} exited (its log is above)"
  ((i < 300)) || die "after 60 s: /readyz not ok, or $pending profiles not reconciled"
  sleep 0.2
done
kill "$operator_pid"
wait "$operator_pid" 2>/dev/null || true
operator_pid=
log "target/release/fluxtune ${args[*]}: ready, all $have profiles reconciled (observedGeneration)"

step "the loop of \`tilt up -- --in-docker\` on the same cluster"
"$TILTCHECK" -kubectl "$FLUXTUNE_KUBECTL" run -- --in-docker
for s in "${!token[@]}"; do
  [[ $(k -n "${s%/*}" get secret "${s#*/}" -o jsonpath='{.data.token}' | base64 -d) == "${token[$s]}" ]] ||
    die "the samples' local_resource replaced Secret $s: Receivers' webhook paths would change on every run"
done
log "the samples' Secrets kept their tokens"
step "the Tilt dev loop checked"
