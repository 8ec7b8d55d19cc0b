package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// up starts a control plane whose state lives in DIR.
func (h *harness) up() {
	t0 := time.Now()
	recs, err := readPids(h.dir)
	h.must(err, "reading "+filepath.Join(h.dir, "pids"))
	for _, r := range recs {
		if ours(h.dir, r.pid) {
			h.die(fmt.Sprintf("a control plane is already running in %s (%s pid %d); run: %s down %s", h.dir, r.name, r.pid, h.script, h.dir))
		}
	}
	h.build()
	// Fresh state, but only delete what this tool creates: DIR may be precious.
	for _, p := range []string{"etcd", "pki", "logs", "kubeconfig", "pids", "env", "ports"} {
		h.must(os.RemoveAll(filepath.Join(h.dir, p)), "removing "+p)
	}
	h.must(os.MkdirAll(filepath.Join(h.dir, "logs"), 0o755), "creating logs/")
	h.must(os.WriteFile(filepath.Join(h.dir, "pids"), nil, 0o644), "creating pids")
	// From here on a failure must not leave half a control plane running.
	done := h.atFailure(func() {
		h.logf("up failed, stopping what was started")
		h.down()
	})
	h.token, err = genPKI(filepath.Join(h.dir, "pki"))
	h.must(err, "generating the PKI")
	h.startEtcd()
	h.startAPIServer()
	h.must(os.WriteFile(filepath.Join(h.dir, "ports"), []byte(portsFile(h.etcdPort, h.etcdPeerPort, h.apiPort)), 0o644), "writing ports")
	h.writeKubeconfig()
	h.installCRDs()
	h.startKCM()
	h.must(os.WriteFile(filepath.Join(h.dir, "env"), []byte(envLines([]envVar{
		{"KUBECONFIG", filepath.Join(h.dir, "kubeconfig")},
		{"FLUXTUNE_KUBECTL", filepath.Join(h.kubeBin, "kubectl")},
		{"FLUXTUNE_APISERVER", fmt.Sprintf("https://127.0.0.1:%d", h.apiPort)},
	}, "")), 0o644), "writing env")
	done()
	h.logf("control plane up in %s s: https://127.0.0.1:%d (etcd :%d)", since(t0), h.apiPort, h.etcdPort)
	h.logf("use it with: eval \"$(%s env %s)\"", h.script, h.dir)
}

func (h *harness) writeKubeconfig() {
	ca, err := os.ReadFile(filepath.Join(h.dir, "pki", "ca.crt"))
	h.must(err, "reading the CA")
	path := filepath.Join(h.dir, "kubeconfig")
	h.must(os.WriteFile(path, []byte(kubeconfig(h.apiPort, ca, h.token)), 0o600), "writing the kubeconfig")
	h.must(os.Chmod(path, 0o600), "chmod the kubeconfig")
}

// retryPorts runs launch (which picks fresh ports, starts the component and waits for it) up to
// five times while it loses port races to other processes.
func (h *harness) retryPorts(name string, launch func() error) {
	for range 5 {
		if launch() != errPortClash {
			return
		}
	}
	h.die(name + ": no free port after 5 tries")
}

func (h *harness) freePort() int {
	p, err := h.ports.free()
	h.must(err, "picking a port")
	return p
}

func (h *harness) startEtcd() {
	h.retryPorts("etcd", func() error {
		h.etcdPort, h.etcdPeerPort = h.freePort(), h.freePort()
		h.launchEtcd()
		err := h.waitReady("etcd", 30*time.Second, etcdHealthy(h.etcdPort))
		if err == errPortClash {
			os.RemoveAll(filepath.Join(h.dir, "etcd"))
		}
		return err
	})
}

// launchEtcd starts etcd on etcdPort and etcdPeerPort, with the data in DIR/etcd (`up`, and
// `start DIR etcd`).
func (h *harness) launchEtcd() {
	peer := fmt.Sprintf("http://127.0.0.1:%d", h.etcdPeerPort)
	client := fmt.Sprintf("http://127.0.0.1:%d", h.etcdPort)
	h.start("etcd", nil, filepath.Join(h.etcdBin, "etcd"), "--name=fluxtune-e2e",
		"--data-dir="+filepath.Join(h.dir, "etcd"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=fluxtune-e2e="+peer,
		"--unsafe-no-fsync", "--log-level=warn")
}

func (h *harness) startAPIServer() {
	h.retryPorts("kube-apiserver", func() error {
		h.apiPort = h.freePort()
		h.launchAPIServer()
		return h.waitReady("kube-apiserver", 90*time.Second, h.apiserverReady())
	})
}

func (h *harness) apiserverReady() func() bool {
	return apiserverReady(h.apiPort, filepath.Join(h.dir, "pki", "ca.crt"), h.token)
}

// launchAPIServer starts the API server on apiPort, against etcd on etcdPort (`up`, and
// `start DIR apiserver`).
func (h *harness) launchAPIServer() {
	d := filepath.Join(h.dir, "pki")
	h.start("kube-apiserver", nil, filepath.Join(h.kubeBin, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", h.etcdPort),
		// --advertise-address: with a loopback bind the apiserver would otherwise
		// look for a default route, which a sandbox may not have.
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", h.apiPort),
		"--tls-cert-file="+filepath.Join(d, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(d, "apiserver.key"),
		"--client-ca-file="+filepath.Join(d, "ca.crt"), "--token-auth-file="+filepath.Join(d, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		// The public key: this flag does not accept a PKCS#8 EC private key.
		"--service-account-key-file="+filepath.Join(d, "sa.pub"), "--service-account-signing-key-file="+filepath.Join(d, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// Nothing serves 10.0.0.1 here anyway.
		"--endpoint-reconciler-type=none",
		// ServiceAccount admission is off: there is no token controller, and no Pod ever runs.
		"--disable-admission-plugins=ServiceAccount",
		"--cert-dir="+filepath.Join(d, "generated"))
}

// startKCM starts kube-controller-manager with only what tests rely on: ownerReference cascade
// deletion and namespace deletion. No serving port: nothing scrapes it, and none can clash.
// Started after the CRDs so that the garbage collector watches their kinds from the start (it
// rediscovers new kinds only every 30 s).
func (h *harness) startKCM() {
	h.start("kube-controller-manager", nil, filepath.Join(h.kubeBin, "kube-controller-manager"),
		"--kubeconfig="+filepath.Join(h.dir, "kubeconfig"), "--leader-elect=false", "--secure-port=0",
		"--controllers=garbage-collector-controller,namespace-controller")
	log := filepath.Join(h.dir, "logs", "kube-controller-manager.log")
	if h.waitReady("kube-controller-manager", 60*time.Second, func() bool {
		data, _ := os.ReadFile(log)
		return strings.Contains(string(data), "all resource monitors have synced")
	}) != nil {
		h.die("kube-controller-manager lost a port race (it binds none)")
	}
}

// installCRDs applies the pinned Flux CRDs and fluxtune's own (crds/ may not exist yet; tests
// may point FLUXTUNE_CRDS_DIR at freshly generated ones, or set it empty to skip), and waits
// until they are Established.
func (h *harness) installCRDs() {
	t0 := time.Now()
	dirs, err := h.fluxCRDDirs()
	h.must(err, "finding the Flux CRDs")
	own, set := os.LookupEnv("FLUXTUNE_CRDS_DIR")
	if !set {
		own = filepath.Join(h.root, "crds")
	}
	if own != "" {
		yaml, _ := filepath.Glob(filepath.Join(own, "*.yaml"))
		yml, _ := filepath.Glob(filepath.Join(own, "*.yml"))
		if len(yaml)+len(yml) > 0 {
			dirs = append(dirs, own)
		}
	}
	var files []string
	for _, d := range dirs {
		files = append(files, "-f", d)
	}
	logPath := filepath.Join(h.dir, "logs", "crds.log")
	log, err := os.Create(logPath)
	h.must(err, "creating "+logPath)
	defer log.Close()
	kubectl := func(what string, args ...string) {
		cmd := exec.Command(filepath.Join(h.kubeBin, "kubectl"), append(args, files...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(h.dir, "kubeconfig"))
		cmd.Stdout, cmd.Stderr = log, log
		if cmd.Run() != nil {
			data, _ := os.ReadFile(logPath)
			h.stderr.Write(data)
			h.die(what)
		}
	}
	kubectl("installing CRDs failed", "apply", "--server-side", "--field-manager=fluxtune-e2e")
	kubectl("CRDs not Established", "wait", "--for=condition=Established", "--timeout=60s")
	data, _ := os.ReadFile(logPath)
	h.logf("installed %d CRDs in %s s", countLines(string(data), "serverside-applied"), since(t0))
}

// countLines counts the lines of text containing s (grep -c).
func countLines(text, s string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// down stops everything DIR runs, the Flux loop too (idempotent).
func (h *harness) down() {
	if !exists(filepath.Join(h.dir, "pids")) {
		h.logf("nothing to stop in %s", h.dir)
		return
	}
	h.stopRecorded(func(string) bool { return true })
	os.Remove(filepath.Join(h.dir, "pids"))
	h.logf("stopped the control plane in %s", h.dir)
}

// logs prints the tails of DIR's logs (LOG_LINES lines each, default 80), for failed tests.
func (h *harness) logs() {
	n := 80
	if v := os.Getenv("LOG_LINES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			h.die(fmt.Sprintf("LOG_LINES=%s: not a number of lines", v))
		}
	}
	files, _ := filepath.Glob(filepath.Join(h.dir, "logs", "*.log*"))
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(h.stdout, "===== %s (last %d lines)\n", f, n)
		tail, err := tailFile(f, n)
		h.must(err, "reading "+f)
		h.stdout.Write(tail)
	}
}

func (h *harness) env() {
	data, err := os.ReadFile(filepath.Join(h.dir, "env"))
	if err != nil {
		h.die("no control plane was started in " + h.dir)
	}
	h.stdout.Write(data)
}

// envVars are DIR/env's variables, as sourcing it sets them.
func (h *harness) envVars() []envVar {
	path := filepath.Join(h.dir, "env")
	if !exists(path) {
		h.die("no control plane was started in " + h.dir)
	}
	vars, err := readEnvFile(path)
	h.must(err, "reading "+path)
	return vars
}

func lookup(vars []envVar, name string) string {
	v := ""
	for _, e := range vars {
		if e.name == name {
			v = e.value // a later line wins, as when sourced
		}
	}
	return v
}

func environ(vars []envVar) []string {
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.name+"="+v.value)
	}
	return env
}

// kubectl execs the pinned kubectl against DIR's control plane, with DIR/env's variables set.
func (h *harness) kubectl(args []string) {
	vars := h.envVars()
	bin := lookup(vars, "FLUXTUNE_KUBECTL")
	err := syscall.Exec(bin, append([]string{bin}, args...), environ(vars))
	h.die(fmt.Sprintf("exec %s: %v", bin, err))
}
