package main

// The usage text, printed for an unknown command. It is also the header comment of
// e2e/controlplane.sh (a test keeps the two equal), which is where readers look for it.
const usage = `A real, throwaway Kubernetes control plane for fluxtune's e2e tests, built
from Go modules (no Docker, no release downloads): etcd, kube-apiserver and
kube-controller-manager (garbage-collector + namespace controllers only),
with the pinned Flux CRDs and fluxtune's own CRDs installed.

  e2e/controlplane.sh build          build (or reuse) the binaries
  e2e/controlplane.sh up DIR         start a control plane whose state lives in DIR
  e2e/controlplane.sh down DIR       stop it (idempotent)
  e2e/controlplane.sh logs DIR       tails of its logs (for failed tests)
  e2e/controlplane.sh env DIR        ` + "`export KUBECONFIG=...`" + ` lines
  e2e/controlplane.sh selftest DIR   check GC, namespace deletion, tokens, RBAC
  e2e/controlplane.sh kubectl DIR .. the pinned kubectl against it

Faults (operator/tests/e2e/faults.rs), on a running control plane:
  e2e/controlplane.sh kill DIR apiserver|etcd   SIGKILL one component (no grace: a crash)
  e2e/controlplane.sh start DIR apiserver|etcd  start it again: same flags, ports and data dir
  e2e/controlplane.sh compact DIR               compact etcd at its current revision and
                                                defragment it; prints the revision

Flux in the loop (on top of a running control plane):
  e2e/controlplane.sh build-flux     build (or reuse) the Flux controllers, git server, crane
  e2e/controlplane.sh flux-up DIR    start the five Flux controllers, a Git host (smart HTTP,
                                     GitHub-style push webhooks) and an OCI registry
  e2e/controlplane.sh flux-down DIR  stop them (idempotent; ` + "`down`" + ` stops them too)

There is no scheduler and no kubelet: Pods never run.
`
