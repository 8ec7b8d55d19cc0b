#!/usr/bin/env bash
# fluxtune's main job for a newcomer: run the operator.
#  - With a reachable cluster in KUBECONFIG (or ~/.kube/config): `fluxtune run` against it.
#  - Without one: build and start the local control plane (e2e/controlplane.sh), install the
#    CRDs, create the samples' webhook Secrets, apply samples/, and run the operator, so the
#    profiles turn Ready in front of you. Ctrl-C stops the operator and the control plane.
# Extra arguments go to `fluxtune run` (e.g. --namespace flux-system --log-format json).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=e2e/deps.sh
source e2e/deps.sh
deps_run
cargo build --locked --quiet
bin=target/debug/fluxtune

kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
if [[ -f ${kubeconfig%%:*} ]]; then
  echo "fluxtune: running against the cluster in $kubeconfig" >&2
  exec "$bin" run "$@"
fi

state=${FLUXTUNE_LOCAL_DIR:-$PWD/e2e/.work/local}
mkdir -p "$(dirname "$state")"
bash e2e/controlplane.sh down "$state" >/dev/null 2>&1 || true
rm -rf "$state"
bash e2e/controlplane.sh build
bash e2e/controlplane.sh up "$state"
# shellcheck disable=SC1091
source "$state/env"
k() { "$FLUXTUNE_KUBECTL" "$@"; }

samples=(samples/*.yaml)
operator=
stop() {
  [[ -n $operator ]] && kill "$operator" 2>/dev/null && wait "$operator" 2>/dev/null
  bash e2e/controlplane.sh down "$state"
}
trap stop EXIT

k create namespace flux-system
for secret in kubeconf-webhook gitlab-webhook; do
  k -n flux-system create secret generic "$secret" --from-literal=token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
done
k apply --server-side -f samples/

"$bin" run --leader-election false --http-addr 127.0.0.1:8080 "$@" &
operator=$!
for _ in $(seq 100); do
  if [[ $(k get fluxprofiles -A -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) -eq ${#samples[@]} ]]; then
    break
  fi
  sleep 0.2
done
k get fluxprofiles -A
k get gitrepositories,kustomizations,imagerepositories,imagepolicies,imageupdateautomations,receivers -n flux-system
cat >&2 <<MSG

fluxtune is running against a local control plane (KUBECONFIG=$KUBECONFIG).
Metrics: http://127.0.0.1:8080/metrics. Try: $FLUXTUNE_KUBECTL get fluxprofiles -A -w
Ctrl-C stops the operator and the control plane.
MSG
wait "$operator"
