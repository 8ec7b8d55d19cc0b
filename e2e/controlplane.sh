#!/usr/bin/env bash
# A real, throwaway Kubernetes control plane for fluxtune's e2e tests, built
# from Go modules (no Docker, no release downloads): etcd, kube-apiserver and
# kube-controller-manager (garbage-collector + namespace controllers only),
# with the pinned Flux CRDs and fluxtune's own CRDs installed.
#
#   e2e/controlplane.sh build          build (or reuse) the binaries
#   e2e/controlplane.sh up DIR         start a control plane whose state lives in DIR
#   e2e/controlplane.sh down DIR       stop it (idempotent)
#   e2e/controlplane.sh logs DIR       tails of its logs (for failed tests)
#   e2e/controlplane.sh env DIR        `export KUBECONFIG=...` lines
#   e2e/controlplane.sh selftest DIR   check GC, namespace deletion, tokens, RBAC
#   e2e/controlplane.sh kubectl DIR .. the pinned kubectl against it
#
# Faults (operator/tests/e2e/faults.rs), on a running control plane:
#   e2e/controlplane.sh kill DIR apiserver|etcd   SIGKILL one component (no grace: a crash)
#   e2e/controlplane.sh start DIR apiserver|etcd  start it again: same flags, ports and data dir
#   e2e/controlplane.sh compact DIR               compact etcd at its current revision and
#                                                 defragment it; prints the revision
#
# Flux in the loop (on top of a running control plane):
#   e2e/controlplane.sh build-flux     build (or reuse) the Flux controllers, git server, crane
#   e2e/controlplane.sh flux-up DIR    start the five Flux controllers, a Git host (smart HTTP,
#                                      GitHub-style push webhooks) and an OCI registry
#   e2e/controlplane.sh flux-down DIR  stop them (idempotent; `down` stops them too)
#
# There is no scheduler and no kubelet: Pods never run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TOOLS=$HERE/tools
# Outside the clone, so a session and CI (a fresh clone on the same machine)
# share the built binaries.
CACHE=${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}
# Bump when the way binaries are built changes: it is part of the cache key.
RECIPE=1

# Same Go settings everywhere, whatever the caller's environment says.
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=

log() { printf '[controlplane %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- build ---

# Version of module $2 as required by tool module $1.
tool_version() { awk -v m="$2" '$1 == m { print $2; exit }' "$TOOLS/$1/go.mod"; }

# Cache directory for tool module $1: named by version, keyed by the module
# files (a changed pin or go.sum must never reuse old binaries) and RECIPE.
tool_dir() {
  local hash
  # A module with its own Go sources (the git server) is keyed by them too;
  # for the others the key is the same as before they existed.
  hash=$( {
    cat "$TOOLS/$1/go.mod" "$TOOLS/$1/go.sum"
    find "$TOOLS/$1" -maxdepth 1 -name '*.go' | LC_ALL=C sort | xargs -r cat
    echo "recipe=$RECIPE"
  } | sha256sum | cut -c1-12)
  echo "$CACHE/bin/$1-$2-$hash"
}

# build_tool MODULE VERSION LDFLAGS NAME=PACKAGE...: builds into a temporary
# directory and renames it into place, so a killed build never looks done.
build_tool() {
  local mod=$1 ver=$2 ldflags=$3 dir tmp spec t0 t1
  shift 3
  dir=$(tool_dir "$mod" "$ver")
  if [[ -f $dir/.complete ]]; then
    log "reusing $dir"
    report "$mod $ver: reused $dir"
    touch "$dir/.complete" # marks it as in use, for the pruning below
    return
  fi
  mkdir -p "$CACHE/bin"
  # Two concurrent `build`s (say, a session and its CI) must not both compile.
  exec 9>"$CACHE/bin/.lock"
  flock 9
  if [[ -f $dir/.complete ]]; then
    log "reusing $dir (built by a concurrent run)"
    report "$mod $ver: reused $dir (built by a concurrent run)"
    exec 9>&-
    return
  fi
  tmp=$(mktemp -d "$CACHE/bin/.tmp-$mod-XXXXXX")
  t0=$(now)
  for spec in "$@"; do
    t1=$(now)
    log "building ${spec%%=*} ($ver) from ${spec#*=} ..."
    (cd "$TOOLS/$mod" && go build -trimpath -buildvcs=false -ldflags "$ldflags" \
      -o "$tmp/${spec%%=*}" "${spec#*=}") || { rm -rf "$tmp"; die "building ${spec%%=*} failed"; }
    log "built ${spec%%=*} in $(since "$t1") s"
  done
  chmod 755 "$tmp"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  # Every pin change leaves ~300 MB behind; drop builds unused for 14 days.
  find "$CACHE/bin" -mindepth 2 -maxdepth 2 -name .complete -mtime +14 -printf '%h\n' |
    while IFS= read -r old; do log "pruning $old"; rm -rf "$old"; done
  exec 9>&-
  log "built $mod $ver into $dir in $(since "$t0") s"
  report "$mod $ver: built in $(since "$t0") s"
}
# A line for the caller's summary of what was built and what reused (test-all.sh prints it).
# A build is looked up more than once per run (build, then up): its first line says it all.
report() {
  [[ -n ${FLUXTUNE_BUILD_REPORT:-} ]] || return 0
  grep -qF "${1%%:*}:" "$FLUXTUNE_BUILD_REPORT" 2>/dev/null || echo "$*" >>"$FLUXTUNE_BUILD_REPORT"
}

cmd_build() {
  local kver ever minor ldk
  kver=$(tool_version kube k8s.io/kubernetes)
  ever=$(tool_version etcd go.etcd.io/etcd/server/v3)
  [[ -n $kver && -n $ever ]] || die "cannot read pinned versions from $TOOLS/*/go.mod"
  minor=${kver#v1.}
  minor=${minor%%.*}
  # What hack/lib/version.sh stamps, so /version and kubectl report v1.X.Y
  # instead of v0.0.0-master.
  ldk="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldk+=" -X $p.gitVersion=$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  build_tool etcd "$ever" "-s -w" etcd=go.etcd.io/etcd/server/v3
  build_tool kube "$kver" "$ldk" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kubectl=k8s.io/kubernetes/cmd/kubectl
  ETCD_BIN=$(tool_dir etcd "$ever")
  KUBE_BIN=$(tool_dir kube "$kver")
}

# Directories holding the pinned Flux CRDs. `go mod download` fills the module
# cache from the committed go.sum (about 14 MB, nothing is compiled).
flux_crd_dirs() {
  local mods
  # The five controllers' require lines only: the module also requires
  # fluxcd/pkg/... and the controllers' api modules (no CRDs), and names the
  # controllers again in its tool block.
  mods=$(awk '$1 ~ /^github\.com\/fluxcd\/[a-z-]+-controller$/ && $2 ~ /^v/ { print $1 }' "$TOOLS/flux/go.mod")
  [[ -n $mods ]] || die "no Flux modules pinned in $TOOLS/flux/go.mod"
  # shellcheck disable=SC2086 # one module per word
  (cd "$TOOLS/flux" && go mod download $mods && go list -m -f '{{.Dir}}/config/crd/bases' $mods)
}

# The Flux controllers (tools of e2e/tools/flux), our Git host
# (e2e/tools/gitserver), crane (e2e/tools/registry) and CNCF distribution's
# registry (e2e/tools/distribution), which the tests start themselves: its
# webhook endpoint is a Receiver URL known only once a profile is applied.
FLUX_CONTROLLERS=(source-controller kustomize-controller notification-controller
  image-reflector-controller image-automation-controller)
cmd_build_flux() {
  local fver cver dver c specs=()
  fver=$(tool_version flux github.com/fluxcd/source-controller)
  cver=$(tool_version registry github.com/google/go-containerregistry)
  dver=$(tool_version distribution github.com/distribution/distribution/v3)
  [[ -n $fver && -n $cver && -n $dver ]] ||
    die "cannot read pinned versions from $TOOLS/{flux,registry,distribution}/go.mod"
  for c in "${FLUX_CONTROLLERS[@]}"; do specs+=("$c=github.com/fluxcd/$c"); done
  # Named by source-controller's version; the key covers all five pins.
  build_tool flux "$fver" "-s -w" "${specs[@]}"
  build_tool gitserver v0 "-s -w" gitserver=.
  build_tool registry "$cver" "-s -w" crane=github.com/google/go-containerregistry/cmd/crane
  build_tool distribution "$dver" "-s -w" registry=github.com/distribution/distribution/v3/cmd/registry
  FLUX_BIN=$(tool_dir flux "$fver")
  GITSERVER_BIN=$(tool_dir gitserver v0)
  CRANE_BIN=$(tool_dir registry "$cver")
  DISTRIBUTION_BIN=$(tool_dir distribution "$dver")
}

# promtool and rulespec (e2e/tools/promtool), for the monitoring tier of e2e/test-all.sh: rulespec
# turns deploy/components/alerts' PrometheusRule into a rules file, promtool checks and unit-tests
# it. Prints the directory holding both on stdout.
cmd_build_promtool() {
  local pver
  pver=$(tool_version promtool github.com/prometheus/prometheus)
  [[ -n $pver ]] || die "cannot read the pinned version from $TOOLS/promtool/go.mod"
  build_tool promtool "$pver" "-s -w" promtool=github.com/prometheus/prometheus/cmd/promtool rulespec=.
  tool_dir promtool "$pver"
}

# helm (e2e/tools/helm, helm.sh/helm/v4) and chartdiff (the module's own Go program), for
# e2e/helm-check.sh: lint, template, install/upgrade/uninstall of deploy/helm/fluxtune, and the
# comparison of the rendered chart with `kubectl kustomize deploy`. Prints the directory on stdout.
cmd_build_helm() {
  local hver
  hver=$(tool_version helm helm.sh/helm/v4)
  [[ -n $hver ]] || die "cannot read the pinned version from $TOOLS/helm/go.mod"
  # What helm's Makefile stamps for a release build, so `helm version` says v4.3.2, not v4.3.
  build_tool helm "$hver" "-s -w -X helm.sh/helm/v4/internal/version.version=$hver -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    helm=helm.sh/helm/v4/cmd/helm chartdiff=.
  tool_dir helm "$hver"
}

# Flux's helm-controller (e2e/tools/helm-controller), for e2e/helm-check.sh: the chart installed
# from the OCI registry by a HelmRelease, next to the Flux controllers of build-flux. Prints the
# directory of the binary, then that of its CRD, one a line.
cmd_build_helm_controller() {
  local ver
  ver=$(tool_version helm-controller github.com/fluxcd/helm-controller)
  [[ -n $ver ]] || die "cannot read the pinned version from $TOOLS/helm-controller/go.mod"
  build_tool helm-controller "$ver" "-s -w" helm-controller=github.com/fluxcd/helm-controller
  tool_dir helm-controller "$ver"
  (cd "$TOOLS/helm-controller" && go mod download github.com/fluxcd/helm-controller &&
    go list -m -f '{{.Dir}}/config/crd/bases' github.com/fluxcd/helm-controller)
}

# ---------------------------------------------------------------- ports ---

PICKED=" "
# True if anything on this machine uses TCP port $1 locally (any state).
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
# A random free loopback port below the kernel's ephemeral range, so that
# outgoing connections do not take it and two concurrent runs rarely pick the
# same one (a bind failure is retried anyway).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ $PICKED == *" $p "* ]] && continue
    port_in_use "$p" && continue
    PICKED+="$p "
    echo "$p"
    return
  done
}

# ------------------------------------------------------------ processes ---

# start NAME CMD...: detached (own session, no terminal, logs to a file) so it
# outlives `up`; its PID is recorded for `down`.
start() {
  local name=$1
  shift
  # Appended: a component started again (`start DIR etcd`) keeps its earlier log.
  setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
  echo "$name $!" >>"$DIR/pids"
  eval "PID_${name//-/_}=$!"
}
pid_of() { local v="PID_${1//-/_}"; echo "${!v}"; }

# True if PID $1 runs (a zombie does not count).
alive() { [[ -r /proc/$1/stat ]] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat"; }
# True if PID $1 runs and is one of ours (every one has a path inside DIR on
# its command line), so a recycled PID is never signalled.
ours() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; }

# wait_ready NAME TIMEOUT CHECK...: polls CHECK until it succeeds. Returns 2
# if the process died of a port clash (the caller retries), dies otherwise.
wait_ready() {
  local name=$1 timeout=$2 pid t0
  shift 2
  pid=$(pid_of "$name")
  t0=$(now)
  while ! "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      if grep -q 'address already in use' "$DIR/logs/$name.log"; then
        log "$name lost a port race, retrying on other ports"
        sed -i "/^$name $pid\$/d" "$DIR/pids"
        mv "$DIR/logs/$name.log" "$DIR/logs/$name.log.port-clash"
        return 2
      fi
      tail -n 30 "$DIR/logs/$name.log" >&2 || true
      die "$name exited during startup (log: $DIR/logs/$name.log)"
    fi
    if awk -v t0="$t0" -v lim="$timeout" -v n="$(now)" 'BEGIN { exit !(n - t0 > lim) }'; then
      tail -n 30 "$DIR/logs/$name.log" >&2 || true
      die "$name not ready after ${timeout}s (log: $DIR/logs/$name.log)"
    fi
    sleep 0.2
  done
  log "$name ready (pid $pid) after $(since "$t0") s"
}

# ----------------------------------------------------------------- PKI ---

gen_pki() {
  local d=$DIR/pki
  mkdir -p "$d"
  # Throwaway CA + serving cert. Explicit v3 extensions, because rustls
  # (kube-rs) rejects certificates that OpenSSL's defaults would let through.
  # P-256 keys: RSA generation would cost about a second per `up`.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=fluxtune-e2e-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 30 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  # One key signs and verifies ServiceAccount tokens (TokenRequest API).
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  TOKEN=$(openssl rand -hex 24)
  # An admin that bypasses RBAC; everyone else goes through RBAC.
  echo "$TOKEN,fluxtune-admin,fluxtune-admin,system:masters" >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/tokens.csv"
}

write_kubeconfig() {
  cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fluxtune-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: fluxtune-admin
  user:
    token: $TOKEN
contexts:
- name: fluxtune-e2e
  context:
    cluster: fluxtune-e2e
    user: fluxtune-admin
current-context: fluxtune-e2e
EOF
  chmod 600 "$DIR/kubeconfig"
}

# ------------------------------------------------------------ components ---

start_etcd() {
  local rc
  for _ in 1 2 3 4 5; do
    ETCD_PORT=$(free_port)
    ETCD_PEER_PORT=$(free_port)
    launch_etcd
    rc=0
    wait_ready etcd 30 etcd_healthy || rc=$?
    [[ $rc == 2 ]] || return 0
    rm -rf "$DIR/etcd"
  done
  die "etcd: no free port after 5 tries"
}
# On ETCD_PORT and ETCD_PEER_PORT, with the data in DIR/etcd (`up`, and `start DIR etcd`).
launch_etcd() {
  start etcd "$ETCD_BIN/etcd" --name=fluxtune-e2e --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="fluxtune-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level=warn
}
etcd_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

start_apiserver() {
  local rc
  for _ in 1 2 3 4 5; do
    API_PORT=$(free_port)
    launch_apiserver
    rc=0
    wait_ready kube-apiserver 90 apiserver_ready || rc=$?
    [[ $rc == 2 ]] || return 0
  done
  die "kube-apiserver: no free port after 5 tries"
}
# On API_PORT, against etcd on ETCD_PORT (`up`, and `start DIR apiserver`).
launch_apiserver() {
  local d=$DIR/pki
  # --advertise-address: with a loopback bind the apiserver would otherwise
  # look for a default route, which a sandbox may not have.
  # --endpoint-reconciler-type=none: nothing serves 10.0.0.1 here anyway.
  # ServiceAccount admission is off: there is no token controller, and no
  # Pod ever runs.
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
    --client-ca-file="$d/ca.crt" --token-auth-file="$d/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount \
    --cert-dir="$d/generated"
}
apiserver_ready() {
  curl -sf --max-time 2 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
    "https://127.0.0.1:$API_PORT/readyz" | grep -qx ok
}

start_kcm() {
  # Only what tests rely on: ownerReference cascade deletion and namespace
  # deletion. No serving port: nothing scrapes it, and none can clash.
  # Started after the CRDs so that the garbage collector watches their kinds
  # from the start (it rediscovers new kinds only every 30 s).
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$DIR/kubeconfig" --leader-elect=false --secure-port=0 \
    --controllers=garbage-collector-controller,namespace-controller
  wait_ready kube-controller-manager 60 gc_synced
}
gc_synced() { grep -q 'all resource monitors have synced' "$DIR/logs/kube-controller-manager.log"; }

install_crds() {
  local dirs=() d t0
  t0=$(now)
  while IFS= read -r d; do dirs+=(-f "$d"); done < <(flux_crd_dirs)
  # fluxtune's own CRDs (crds/ may not exist yet; tests may point
  # FLUXTUNE_CRDS_DIR at freshly generated ones, or set it empty to skip).
  local own=${FLUXTUNE_CRDS_DIR-$ROOT/crds}
  if [[ -n $own ]] && { compgen -G "$own/*.yaml" || compgen -G "$own/*.yml"; } >/dev/null; then
    dirs+=(-f "$own")
  fi
  KUBECONFIG=$DIR/kubeconfig "$KUBE_BIN/kubectl" apply --server-side \
    --field-manager=fluxtune-e2e "${dirs[@]}" >"$DIR/logs/crds.log" 2>&1 || {
    cat "$DIR/logs/crds.log" >&2
    die "installing CRDs failed"
  }
  KUBECONFIG=$DIR/kubeconfig "$KUBE_BIN/kubectl" wait --for=condition=Established \
    --timeout=60s "${dirs[@]}" >>"$DIR/logs/crds.log" 2>&1 || {
    cat "$DIR/logs/crds.log" >&2
    die "CRDs not Established"
  }
  log "installed $(grep -c 'serverside-applied' "$DIR/logs/crds.log") CRDs in $(since "$t0") s"
}

# ----------------------------------------------------------------- flux ---

# What flux-up starts, in start order (flux-down stops them in reverse).
FLUX_PROCS=" gitserver registry notification-controller source-controller kustomize-controller image-reflector-controller image-automation-controller "

# Each launch_X picks fresh ports and starts X; it sets READY_URL.
launch_gitserver() {
  GIT_PORT=$(free_port)
  start gitserver "$DIR/flux/bin/gitserver" --root="$DIR/flux/git" --addr="127.0.0.1:$GIT_PORT"
  READY_URL=http://127.0.0.1:$GIT_PORT/healthz
}
launch_registry() {
  REGISTRY_PORT=$(free_port)
  start registry "$DIR/flux/bin/crane" registry serve --address="127.0.0.1:$REGISTRY_PORT" \
    --disk="$DIR/flux/registry"
  READY_URL=http://127.0.0.1:$REGISTRY_PORT/v2/
}
# Every controller: no metrics (all default to :8080), its own health port
# (all default to :9440), leader election is off by default, all namespaces
# are watched by default, kubeconfig from KUBECONFIG.
launch_notification_controller() {
  RECEIVER_PORT=$(free_port)
  EVENTS_PORT=$(free_port)
  flux_controller notification-controller --receiverAddr="127.0.0.1:$RECEIVER_PORT" \
    --events-addr="127.0.0.1:$EVENTS_PORT"
}
launch_source_controller() {
  STORAGE_PORT=$(free_port)
  flux_controller source-controller --events-addr="http://127.0.0.1:$EVENTS_PORT/" \
    --storage-path="$DIR/flux/storage" --storage-addr="127.0.0.1:$STORAGE_PORT" \
    --storage-adv-addr="127.0.0.1:$STORAGE_PORT"
}
launch_kustomize_controller() {
  flux_controller kustomize-controller --events-addr="http://127.0.0.1:$EVENTS_PORT/"
}
launch_image_reflector_controller() {
  flux_controller image-reflector-controller --events-addr="http://127.0.0.1:$EVENTS_PORT/" \
    --storage-path="$DIR/flux/image-db"
}
launch_image_automation_controller() {
  flux_controller image-automation-controller --events-addr="http://127.0.0.1:$EVENTS_PORT/"
}
flux_controller() {
  local name=$1 health
  shift
  health=$(free_port)
  # Started through a link inside DIR, so `ours` recognises the process.
  KUBECONFIG=$DIR/kubeconfig start "$name" "$DIR/flux/bin/$name" --metrics-addr=0 \
    --health-addr="127.0.0.1:$health" --log-level="${FLUXTUNE_FLUX_LOG_LEVEL:-info}" "$@"
  READY_URL=http://127.0.0.1:$health/readyz
}
http_ok() { curl -sf --max-time 2 "$1"; }

# launch NAME: launch_NAME, retried on other ports after a port clash.
launch() {
  local rc
  for _ in 1 2 3 4 5; do
    "launch_${1//-/_}"
    rc=0
    wait_ready "$1" 60 http_ok "$READY_URL" || rc=$?
    [[ $rc == 2 ]] || return 0
  done
  die "$1: no free port after 5 tries"
}

# The control plane in DIR must be running; flux-up must not run twice.
flux_preflight() {
  local name pid api=
  [[ -f $DIR/pids && -f $DIR/env ]] || die "no control plane in $DIR; run: $0 up $DIR"
  while read -r name pid; do
    [[ $name == kube-apiserver ]] && ours "$pid" && api=$pid
    [[ $FLUX_PROCS == *" $name "* ]] && ours "$pid" &&
      die "Flux is already running in $DIR ($name pid $pid); run: $0 flux-down $DIR"
  done <"$DIR/pids"
  [[ -n $api ]] || die "the control plane in $DIR is not running; run: $0 up $DIR"
}

cmd_flux_up() {
  local t0 p b
  t0=$(now)
  flux_preflight
  cmd_build_flux
  # Fresh state, but only what flux-up creates.
  cmd_flux_down >/dev/null 2>&1
  rm -rf "$DIR/flux"
  mkdir -p "$DIR/flux/bin" "$DIR/flux/storage" "$DIR/flux/image-db" "$DIR/flux/git" "$DIR/flux/registry"
  for b in "${FLUX_CONTROLLERS[@]}"; do ln -s "$FLUX_BIN/$b" "$DIR/flux/bin/$b"; done
  ln -s "$GITSERVER_BIN/gitserver" "$DIR/flux/bin/gitserver"
  ln -s "$CRANE_BIN/crane" "$DIR/flux/bin/crane"
  ln -s "$DISTRIBUTION_BIN/registry" "$DIR/flux/bin/distribution"
  trap 'rc=$?; if [[ $rc != 0 ]]; then log "flux-up failed, stopping what it started"; cmd_flux_down || true; fi' EXIT
  for p in $FLUX_PROCS; do launch "$p"; done
  # Marked, so that flux-down removes exactly these lines.
  {
    printf 'export FLUXTUNE_RECEIVER_ADDR=%q # flux\n' "127.0.0.1:$RECEIVER_PORT"
    printf 'export FLUXTUNE_EVENTS_ADDR=%q # flux\n' "127.0.0.1:$EVENTS_PORT"
    printf 'export FLUXTUNE_STORAGE_ADDR=%q # flux\n' "127.0.0.1:$STORAGE_PORT"
    printf 'export FLUXTUNE_GIT_URL=%q # flux\n' "http://127.0.0.1:$GIT_PORT"
    printf 'export FLUXTUNE_GIT_ROOT=%q # flux\n' "$DIR/flux/git"
    printf 'export FLUXTUNE_REGISTRY=%q # flux\n' "127.0.0.1:$REGISTRY_PORT"
    printf 'export FLUXTUNE_CRANE=%q # flux\n' "$DIR/flux/bin/crane"
    printf 'export FLUXTUNE_DISTRIBUTION=%q # flux\n' "$DIR/flux/bin/distribution"
  } >>"$DIR/env"
  trap - EXIT
  log "Flux up in $(since "$t0") s: receiver 127.0.0.1:$RECEIVER_PORT, git http://127.0.0.1:$GIT_PORT/NAME.git ($DIR/flux/git), registry 127.0.0.1:$REGISTRY_PORT"
}

# Stops recorded processes in reverse start order (an apiserver whose etcd is gone hangs in
# shutdown): all of them, or with "flux" only the Flux loop's, keeping the others recorded.
stop_recorded() {
  local only=$1 name pid i lines=() keep=()
  mapfile -t lines <"$DIR/pids"
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    read -r name pid <<<"${lines[i]}"
    if [[ $only == all || $FLUX_PROCS == *" $name "* ]]; then
      stop "$name" "$pid"
    else
      keep=("${lines[i]}" "${keep[@]}")
    fi
  done
  if ((${#keep[@]})); then printf '%s\n' "${keep[@]}" >"$DIR/pids"; else : >"$DIR/pids"; fi
}

cmd_flux_down() {
  if [[ ! -f $DIR/pids ]]; then
    log "nothing to stop in $DIR"
    return 0
  fi
  stop_recorded flux
  [[ ! -f $DIR/env ]] || sed -i '/ # flux$/d' "$DIR/env"
  log "stopped Flux in $DIR"
}

# ------------------------------------------------------------- commands ---

set_dir() {
  [[ -n ${1:-} ]] || die "usage: $0 $CMD DIR"
  [[ $CMD != up ]] || mkdir -p "$1"
  if [[ ! -d $1 ]]; then
    # `down` and `logs` run in cleanup paths: a missing DIR is nothing to do.
    [[ $CMD == down || $CMD == flux-down || $CMD == logs ]] && { log "$1: no such directory, nothing to do"; exit 0; }
    die "$1: no such directory"
  fi
  DIR=$(cd "$1" && pwd)
}

cmd_up() {
  local t0 name pid
  t0=$(now)
  if [[ -f $DIR/pids ]]; then
    while read -r name pid; do
      ours "$pid" && die "a control plane is already running in $DIR ($name pid $pid); run: $0 down $DIR"
    done <"$DIR/pids"
  fi
  cmd_build
  # Fresh state, but only delete what this script creates: DIR may be precious.
  rm -rf "$DIR/etcd" "$DIR/pki" "$DIR/logs" "$DIR/kubeconfig" "$DIR/pids" "$DIR/env" "$DIR/ports"
  mkdir -p "$DIR/logs"
  : >"$DIR/pids"
  # From here on a failure must not leave half a control plane running.
  trap 'rc=$?; if [[ $rc != 0 ]]; then log "up failed, stopping what was started"; cmd_down || true; fi' EXIT
  gen_pki
  start_etcd
  start_apiserver
  # What `start DIR etcd|apiserver` needs to bring a component back as it was.
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPI_PORT=%s\n' "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" >"$DIR/ports"
  write_kubeconfig
  install_crds
  start_kcm
  {
    printf 'export KUBECONFIG=%q\n' "$DIR/kubeconfig"
    printf 'export FLUXTUNE_KUBECTL=%q\n' "$KUBE_BIN/kubectl"
    printf 'export FLUXTUNE_APISERVER=%q\n' "https://127.0.0.1:$API_PORT"
  } >"$DIR/env"
  trap - EXIT
  log "control plane up in $(since "$t0") s: https://127.0.0.1:$API_PORT (etcd :$ETCD_PORT)"
  log "use it with: eval \"\$($0 env $DIR)\""
}

# stop NAME PID: TERM, up to 10 s of grace, then KILL.
stop() {
  local i
  ours "$2" || return 0
  kill -TERM "$2" 2>/dev/null || true
  for i in $(seq 100); do
    ours "$2" || return 0
    sleep 0.1
  done
  log "$1 (pid $2) ignored TERM for 10 s, killing it"
  kill -KILL "$2" 2>/dev/null || true
}

cmd_down() {
  if [[ ! -f $DIR/pids ]]; then
    log "nothing to stop in $DIR"
    return 0
  fi
  stop_recorded all
  rm -f "$DIR/pids"
  log "stopped the control plane in $DIR"
}

cmd_logs() {
  local f
  for f in "$DIR"/logs/*.log*; do
    [[ -f $f ]] || continue
    echo "===== $f (last ${LOG_LINES:-80} lines)"
    tail -n "${LOG_LINES:-80}" "$f"
  done
}

cmd_env() {
  [[ -f $DIR/env ]] || die "no control plane was started in $DIR"
  cat "$DIR/env"
}

# Checks that what the e2e tests rely on works on a running control plane.
cmd_selftest() {
  local pass=0 fail=0 ns=fluxtune-selftest-$$ uid tok i
  cmd_env >/dev/null
  # shellcheck disable=SC1091
  source "$DIR/env"
  k() { "$FLUXTUNE_KUBECTL" "$@"; }
  check() { # check NAME CMD...
    if "${@:2}" >/dev/null 2>&1; then pass=$((pass + 1)); log "ok   $1"; else fail=$((fail + 1)); log "FAIL $1"; fi
  }
  gone() { # gone SECONDS KUBECTL-GET-ARGS...: waits for NotFound
    for ((i = 0; i < $1 * 5; i++)); do
      [[ $(k get "${@:2}" 2>&1) == *NotFound* ]] && return 0
      sleep 0.2
    done
    return 1
  }
  readyz() { k get --raw /readyz | grep -qx ok; }
  flux_kinds() { (($(k api-resources | grep -c toolkit.fluxcd.io) >= 13)); }
  is_sa() { k auth whoami --token="$tok" -o jsonpath='{.status.userInfo.username}' | grep -qx "system:serviceaccount:$ns:tester"; }
  denied() { [[ $(k --token="$tok" -n "$ns" get secrets 2>&1) == *Forbidden* ]]; }
  check "readyz" readyz
  check "Flux kinds served" flux_kinds
  k create namespace "$ns" >/dev/null
  k -n "$ns" create configmap owner >/dev/null
  uid=$(k -n "$ns" get configmap owner -o jsonpath='{.metadata.uid}')
  k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: "$uid"}]
EOF
  k -n "$ns" delete configmap owner >/dev/null
  check "garbage collector deletes dependents" gone 30 -n "$ns" configmap dependent
  k -n "$ns" create serviceaccount tester >/dev/null
  tok=$(k -n "$ns" create token tester --duration=10m)
  check "TokenRequest token authenticates" is_sa
  check "RBAC denies the ServiceAccount" denied
  k delete namespace "$ns" --wait=false >/dev/null
  check "namespace deletion completes" gone 60 namespace "$ns"
  echo "selftest: $pass passed, $fail failed"
  ((fail == 0))
}

# ---------------------------------------------------------------- faults ---

# component NAME: the process name of `apiserver` or `etcd`.
component() {
  case $1 in
  apiserver) echo kube-apiserver ;;
  etcd) echo etcd ;;
  *) die "usage: $0 $CMD DIR apiserver|etcd (not '$1')" ;;
  esac
}

# The recorded PID of process NAME if it runs, else nothing.
running_pid() {
  local name pid
  [[ -f $DIR/pids ]] || return 0
  while read -r name pid; do
    [[ $name == "$1" ]] && ours "$pid" && echo "$pid"
  done <"$DIR/pids"
  return 0
}

# kill DIR apiserver|etcd: SIGKILL, as a crash (no graceful shutdown); returns once it is gone.
cmd_kill() {
  local name pid i
  name=$(component "${1:-}")
  pid=$(running_pid "$name")
  [[ -n $pid ]] || die "$name is not running in $DIR"
  kill -KILL "$pid"
  for i in $(seq 100); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && die "$name (pid $pid) still runs 10 s after SIGKILL"
  sed -i "/^$name $pid\$/d" "$DIR/pids"
  log "killed $name (pid $pid)"
}

# start DIR apiserver|etcd: starts a component `kill` stopped, as `up` started it: same flags,
# ports and data directory (the kubeconfigs name the port), and waits until it is ready.
cmd_start() {
  local name t0
  name=$(component "${1:-}")
  [[ -f $DIR/ports ]] || die "no control plane was started in $DIR"
  [[ -z $(running_pid "$name") ]] || die "$name already runs in $DIR"
  # shellcheck disable=SC1091
  source "$DIR/ports"
  TOKEN=$(cut -d, -f1 "$DIR/pki/tokens.csv")
  cmd_build >/dev/null 2>&1
  t0=$(now)
  "launch_${name#kube-}"
  case $name in
  etcd) wait_ready etcd 30 etcd_healthy ;;
  kube-apiserver) wait_ready kube-apiserver 90 apiserver_ready ;;
  esac || die "$name: its port is taken, and the kubeconfigs name it"
  log "started $name again in $(since "$t0") s"
}

# compact DIR: compacts etcd at its current revision (physically: every older revision is gone,
# so a watch from one of them is answered 410 Gone) and defragments it. Prints the revision.
# Through etcd's HTTP gateway to its v3 API, so no etcdctl is built.
cmd_compact() {
  local url rev
  [[ -f $DIR/ports ]] || die "no control plane was started in $DIR"
  # shellcheck disable=SC1091
  source "$DIR/ports"
  url=http://127.0.0.1:$ETCD_PORT/v3
  rev=$(curl -sf --max-time 10 -X POST -d '{}' "$url/maintenance/status" |
    grep -o '"revision":"[0-9]*"' | head -n1 | grep -o '[0-9]\+') || die "etcd status unreadable"
  curl -sf --max-time 30 -X POST -d "{\"revision\": \"$rev\", \"physical\": true}" \
    "$url/kv/compaction" >/dev/null || die "compacting etcd at revision $rev failed"
  curl -sf --max-time 60 -X POST -d '{}' "$url/maintenance/defragment" >/dev/null ||
    die "defragmenting etcd failed"
  log "compacted etcd at revision $rev and defragmented it"
  echo "$rev"
}

CMD=${1:-}
shift || true
case $CMD in
build) cmd_build ;;
build-flux) cmd_build_flux ;;
build-promtool) cmd_build_promtool ;;
build-helm) cmd_build_helm ;;
build-helm-controller) cmd_build_helm_controller ;;
flux-up) set_dir "${1:-}" && cmd_flux_up ;;
flux-down) set_dir "${1:-}" && cmd_flux_down ;;
up) set_dir "${1:-}" && cmd_up ;;
down) set_dir "${1:-}" && cmd_down ;;
logs) set_dir "${1:-}" && cmd_logs ;;
env) set_dir "${1:-}" && cmd_env ;;
selftest) set_dir "${1:-}" && cmd_selftest ;;
kill) set_dir "${1:-}" && cmd_kill "${2:-}" ;;
start) set_dir "${1:-}" && cmd_start "${2:-}" ;;
compact) set_dir "${1:-}" && cmd_compact ;;
kubectl)
  set_dir "${1:-}"
  shift
  cmd_env >/dev/null
  # shellcheck disable=SC1091
  source "$DIR/env"
  exec "$FLUXTUNE_KUBECTL" "$@"
  ;;
*)
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
  ;;
esac
