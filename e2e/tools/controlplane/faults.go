package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// component is the process name of `apiserver` or `etcd`.
func (h *harness) component(arg string) string {
	switch arg {
	case "apiserver":
		return "kube-apiserver"
	case "etcd":
		return "etcd"
	}
	h.die(fmt.Sprintf("usage: %s %s DIR apiserver|etcd (not '%s')", h.script, h.cmd, arg))
	return ""
}

// kill SIGKILLs apiserver or etcd, as a crash (no graceful shutdown); returns once it is gone.
func (h *harness) kill(arg string) {
	name := h.component(arg)
	pid, err := runningPid(h.dir, name)
	h.must(err, "reading "+filepath.Join(h.dir, "pids"))
	if pid == 0 {
		h.die(fmt.Sprintf("%s is not running in %s", name, h.dir))
	}
	h.must(syscall.Kill(pid, syscall.SIGKILL), fmt.Sprintf("kill -KILL %d", pid))
	for deadline := time.Now().Add(10 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		h.die(fmt.Sprintf("%s (pid %d) still runs 10 s after SIGKILL", name, pid))
	}
	h.must(forgetPid(h.dir, name, pid), "updating "+filepath.Join(h.dir, "pids"))
	h.logf("killed %s (pid %d)", name, pid)
}

// startAgain starts a component `kill` stopped, as `up` started it: same flags, ports and data
// directory (the kubeconfigs name the port), and waits until it is ready.
func (h *harness) startAgain(arg string) {
	name := h.component(arg)
	var err error
	h.etcdPort, h.etcdPeerPort, h.apiPort, err = readPortsFile(h.dir)
	if os.IsNotExist(err) {
		h.die("no control plane was started in " + h.dir)
	}
	h.must(err, "reading the ports")
	if pid, err := runningPid(h.dir, name); err != nil || pid != 0 {
		h.die(fmt.Sprintf("%s already runs in %s", name, h.dir))
	}
	tokens, err := os.ReadFile(filepath.Join(h.dir, "pki", "tokens.csv"))
	h.must(err, "reading the admin's token")
	h.token, _, _ = strings.Cut(string(tokens), ",")
	h.quietly(h.build)
	t0 := time.Now()
	var ready error
	switch name {
	case "etcd":
		h.launchEtcd()
		ready = h.waitReady("etcd", 30*time.Second, etcdHealthy(h.etcdPort))
	case "kube-apiserver":
		h.launchAPIServer()
		ready = h.waitReady("kube-apiserver", 90*time.Second, h.apiserverReady())
	}
	if ready != nil {
		h.die(name + ": its port is taken, and the kubeconfigs name it")
	}
	h.logf("started %s again in %s s", name, since(t0))
}

var etcdRevision = regexp.MustCompile(`"revision":"([0-9]+)"`)

// compact compacts etcd at its current revision (physically: every older revision is gone, so
// a watch from one of them is answered 410 Gone) and defragments it. Prints the revision.
// Through etcd's HTTP gateway to its v3 API, so no etcdctl is built.
func (h *harness) compact() {
	var err error
	h.etcdPort, h.etcdPeerPort, h.apiPort, err = readPortsFile(h.dir)
	if os.IsNotExist(err) {
		h.die("no control plane was started in " + h.dir)
	}
	h.must(err, "reading the ports")
	url := fmt.Sprintf("http://127.0.0.1:%d/v3", h.etcdPort)
	status, err := httpPost(url+"/maintenance/status", "{}", 10*time.Second)
	m := etcdRevision.FindSubmatch(status)
	if err != nil || m == nil {
		h.die("etcd status unreadable")
	}
	rev := string(m[1])
	if _, err := httpPost(url+"/kv/compaction", fmt.Sprintf(`{"revision": "%s", "physical": true}`, rev), 30*time.Second); err != nil {
		h.die(fmt.Sprintf("compacting etcd at revision %s failed", rev))
	}
	if _, err := httpPost(url+"/maintenance/defragment", "{}", 60*time.Second); err != nil {
		h.die("defragmenting etcd failed")
	}
	h.logf("compacted etcd at revision %s and defragmented it", rev)
	fmt.Fprintln(h.stdout, rev)
}
