// fluxtune's e2e control plane (main.go), run by e2e/controlplane.sh: builds the pinned tools,
// starts and stops etcd, kube-apiserver, kube-controller-manager and the Flux loop. Standard
// library only, so building it downloads nothing.
module fluxtune.local/e2e/tools/controlplane

go 1.26.0
