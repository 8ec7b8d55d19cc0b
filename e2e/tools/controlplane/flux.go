package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// What flux-up starts, in start order (flux-down stops them in reverse): the Git host and the
// registry first, then notification-controller, whose events address the others are given.
var fluxProcs = []string{"gitserver", "registry", "notification-controller", "source-controller",
	"kustomize-controller", "image-reflector-controller", "image-automation-controller"}

func isFluxProc(name string) bool {
	for _, p := range fluxProcs {
		if p == name {
			return true
		}
	}
	return false
}

// fluxPorts are the Flux loop's addresses, as flux-up picked them.
type fluxPorts struct {
	git, registry, receiver, events, storage int
}

// fluxUp starts the five Flux controllers, the Git host (e2e/tools/gitserver: smart HTTP,
// GitHub-style push webhooks) and crane's OCI registry on DIR's running control plane, and
// appends their addresses to DIR/env.
func (h *harness) fluxUp() {
	t0 := time.Now()
	h.fluxPreflight()
	h.buildFlux()
	// Fresh state, but only what flux-up creates.
	h.quietly(h.fluxDown)
	fluxDir := filepath.Join(h.dir, "flux")
	h.must(os.RemoveAll(fluxDir), "removing "+fluxDir)
	for _, d := range []string{"bin", "storage", "image-db", "git", "registry"} {
		h.must(os.MkdirAll(filepath.Join(fluxDir, d), 0o755), "creating "+d)
	}
	// Started through links inside DIR, so `ours` recognises the processes.
	links := map[string]string{
		"gitserver":    filepath.Join(h.gitserverBin, "gitserver"),
		"crane":        filepath.Join(h.craneBin, "crane"),
		"distribution": filepath.Join(h.distributionBin, "registry"),
	}
	for _, c := range fluxControllers {
		links[c] = filepath.Join(h.fluxBin, c)
	}
	for name, target := range links {
		h.must(os.Symlink(target, filepath.Join(fluxDir, "bin", name)), "linking "+name)
	}
	done := h.atFailure(func() {
		h.logf("flux-up failed, stopping what it started")
		h.fluxDown()
	})
	var p fluxPorts
	for _, name := range fluxProcs {
		h.retryPorts(name, func() error {
			url := h.launchFlux(name, &p)
			return h.waitReady(name, 60*time.Second, httpOK(url))
		})
	}
	// Marked, so that flux-down removes exactly these lines.
	h.must(appendFile(filepath.Join(h.dir, "env"), envLines(fluxEnv(fluxDir, p), " # flux")), "writing env")
	done()
	h.logf("Flux up in %s s: receiver 127.0.0.1:%d, git http://127.0.0.1:%d/NAME.git (%s), registry 127.0.0.1:%d",
		since(t0), p.receiver, p.git, filepath.Join(fluxDir, "git"), p.registry)
}

// fluxEnv is what flux-up appends to DIR/env (read by operator/tests/e2e/flux_support.rs).
func fluxEnv(fluxDir string, p fluxPorts) []envVar {
	return []envVar{
		{"FLUXTUNE_RECEIVER_ADDR", fmt.Sprintf("127.0.0.1:%d", p.receiver)},
		{"FLUXTUNE_EVENTS_ADDR", fmt.Sprintf("127.0.0.1:%d", p.events)},
		{"FLUXTUNE_STORAGE_ADDR", fmt.Sprintf("127.0.0.1:%d", p.storage)},
		{"FLUXTUNE_GIT_URL", fmt.Sprintf("http://127.0.0.1:%d", p.git)},
		{"FLUXTUNE_GIT_ROOT", filepath.Join(fluxDir, "git")},
		{"FLUXTUNE_REGISTRY", fmt.Sprintf("127.0.0.1:%d", p.registry)},
		{"FLUXTUNE_CRANE", filepath.Join(fluxDir, "bin", "crane")},
		{"FLUXTUNE_DISTRIBUTION", filepath.Join(fluxDir, "bin", "distribution")},
	}
}

// launchFlux picks fresh ports for NAME, starts it and returns the URL that answers once it
// is ready.
func (h *harness) launchFlux(name string, p *fluxPorts) string {
	fluxDir := filepath.Join(h.dir, "flux")
	bin := func(n string) string { return filepath.Join(fluxDir, "bin", n) }
	events := fmt.Sprintf("--events-addr=http://127.0.0.1:%d/", p.events)
	switch name {
	case "gitserver":
		p.git = h.freePort()
		h.start(name, nil, bin("gitserver"), "--root="+filepath.Join(fluxDir, "git"), fmt.Sprintf("--addr=127.0.0.1:%d", p.git))
		return fmt.Sprintf("http://127.0.0.1:%d/healthz", p.git)
	case "registry":
		p.registry = h.freePort()
		h.start(name, nil, bin("crane"), "registry", "serve", fmt.Sprintf("--address=127.0.0.1:%d", p.registry),
			"--disk="+filepath.Join(fluxDir, "registry"))
		return fmt.Sprintf("http://127.0.0.1:%d/v2/", p.registry)
	case "notification-controller":
		p.receiver, p.events = h.freePort(), h.freePort()
		return h.fluxController(name, fmt.Sprintf("--receiverAddr=127.0.0.1:%d", p.receiver),
			fmt.Sprintf("--events-addr=127.0.0.1:%d", p.events))
	case "source-controller":
		p.storage = h.freePort()
		storage := fmt.Sprintf("127.0.0.1:%d", p.storage)
		return h.fluxController(name, events, "--storage-path="+filepath.Join(fluxDir, "storage"),
			"--storage-addr="+storage, "--storage-adv-addr="+storage)
	case "image-reflector-controller":
		return h.fluxController(name, events, "--storage-path="+filepath.Join(fluxDir, "image-db"))
	default: // kustomize-controller, image-automation-controller
		return h.fluxController(name, events)
	}
}

// fluxController starts a Flux controller: no metrics (all default to :8080), its own health
// port (all default to :9440); leader election is off by default, all namespaces are watched
// by default, the kubeconfig comes from KUBECONFIG.
func (h *harness) fluxController(name string, args ...string) string {
	health := h.freePort()
	level := os.Getenv("FLUXTUNE_FLUX_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	argv := append([]string{filepath.Join(h.dir, "flux", "bin", name), "--metrics-addr=0",
		"--health-addr=127.0.0.1:" + strconv.Itoa(health), "--log-level=" + level}, args...)
	h.start(name, []string{"KUBECONFIG=" + filepath.Join(h.dir, "kubeconfig")}, argv...)
	return fmt.Sprintf("http://127.0.0.1:%d/readyz", health)
}

// fluxPreflight: the control plane in DIR must be running; flux-up must not run twice.
func (h *harness) fluxPreflight() {
	if !exists(filepath.Join(h.dir, "pids")) || !exists(filepath.Join(h.dir, "env")) {
		h.die(fmt.Sprintf("no control plane in %s; run: %s up %s", h.dir, h.script, h.dir))
	}
	recs, err := readPids(h.dir)
	h.must(err, "reading "+filepath.Join(h.dir, "pids"))
	api := false
	for _, r := range recs {
		if r.name == "kube-apiserver" && ours(h.dir, r.pid) {
			api = true
		}
		if isFluxProc(r.name) && ours(h.dir, r.pid) {
			h.die(fmt.Sprintf("Flux is already running in %s (%s pid %d); run: %s flux-down %s", h.dir, r.name, r.pid, h.script, h.dir))
		}
	}
	if !api {
		h.die(fmt.Sprintf("the control plane in %s is not running; run: %s up %s", h.dir, h.script, h.dir))
	}
}

// fluxDown stops the Flux loop (idempotent) and removes its lines from DIR/env.
func (h *harness) fluxDown() {
	if !exists(filepath.Join(h.dir, "pids")) {
		h.logf("nothing to stop in %s", h.dir)
		return
	}
	h.stopRecorded(isFluxProc)
	if env := filepath.Join(h.dir, "env"); exists(env) {
		h.must(removeFluxLines(env), "updating "+env)
	}
	h.logf("stopped Flux in %s", h.dir)
}

// quietly runs f with its logs dropped, as `f >/dev/null 2>&1` did.
func (h *harness) quietly(f func()) {
	was := h.quiet
	h.quiet = true
	defer func() { h.quiet = was }()
	f()
}
