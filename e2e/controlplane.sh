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

# The work is done by e2e/tools/controlplane, a Go program (standard library only, so building it
# downloads nothing): this wrapper builds it into the cache, keyed like the other tools by the
# hash of its go.mod and sources, and execs it with the same arguments.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOL=$HERE/tools/controlplane
# Outside the clone, so a session and CI (a fresh clone on the same machine)
# share the built binaries.
CACHE=${FLUXTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxtune}

# Same Go settings everywhere, whatever the caller's environment says.
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=

# Its tests are not part of the key: changing them needs no new binary.
hash=$({
  cat "$TOOL/go.mod"
  find "$TOOL" -maxdepth 1 -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs cat
  echo "recipe=1"
} | sha256sum | cut -c1-12)
dir=$CACHE/bin/controlplane-v0-$hash
if [[ -f $dir/.complete ]]; then
  # Marks it as in use: the tool prunes builds unused for 14 days.
  touch "$dir/.complete"
else
  t0=$SECONDS
  printf '[controlplane %s] building %s into %s\n' "$(date +%T)" "$TOOL" "$dir" >&2
  mkdir -p "$CACHE/bin"
  tmp=$(mktemp -d "$CACHE/bin/.tmp-controlplane-XXXXXX")
  (cd "$TOOL" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/controlplane" .) || {
    rm -rf "$tmp"
    printf '[controlplane %s] ERROR: building %s failed\n' "$(date +%T)" "$TOOL" >&2
    exit 1
  }
  chmod 755 "$tmp"
  touch "$tmp/.complete"
  # No lock: a build takes seconds. Renamed into place, so a killed build never looks done. The
  # rename fails on a non-empty directory: a concurrent run's complete build (used, never removed
  # from under it) or an incomplete one left by hand (replaced).
  if ! mv -T "$tmp" "$dir" 2>/dev/null; then
    if [[ -f $dir/.complete ]]; then
      rm -rf "$tmp"
    else
      rm -rf "$dir"
      mv -T "$tmp" "$dir"
    fi
  fi
  # A line for test-all.sh's summary of cached builds.
  if [[ -n ${FLUXTUNE_BUILD_REPORT:-} ]]; then
    echo "controlplane v0: built in $((SECONDS - t0)) s" >>"$FLUXTUNE_BUILD_REPORT"
  fi
fi
# $0 as invoked, for the tool's hints ("run: e2e/controlplane.sh down DIR").
FLUXTUNE_CONTROLPLANE_SCRIPT=$0 FLUXTUNE_CONTROLPLANE_ROOT=$(cd "$HERE/.." && pwd) \
  exec "$dir/controlplane" "$@"
