// Command controlplane is the e2e control plane of fluxtune: e2e/controlplane.sh builds it
// (cached) and execs it with its own arguments. See usage.go for the commands and
// e2e/README-controlplane.md for what the control plane is and is not.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The wrapper passes where it lives: the binary runs from the cache, outside the clone.
const (
	scriptEnv = "FLUXTUNE_CONTROLPLANE_SCRIPT" // the wrapper's $0, named in hints ("run: $0 up DIR")
	rootEnv   = "FLUXTUNE_CONTROLPLANE_ROOT"   // the repository root
)

// harness holds what one invocation knows: where things are, and what it has started.
type harness struct {
	script string // the wrapper as it was invoked, for messages
	root   string // the repository
	tools  string // root/e2e/tools: the Go tool modules
	cache  string // the build cache, outside the clone
	cmd    string // the command being run, for usage messages
	dir    string // DIR, absolute, without a trailing slash

	stderr io.Writer
	stdout io.Writer
	quiet  bool // logs and build output dropped (`start` builds silently)

	ports portPicker
	pids  map[string]int // the PID of each process this invocation started, by name

	// Run, in reverse order, when a command fails: as the bash version's `trap ... EXIT`
	// stopped what a failed `up` or `flux-up` had started.
	mu        sync.Mutex
	onFailure []func()
	// Held while the hooks run: a signal's handler keeps it until the process exits, so the
	// command, failing meanwhile because the hooks stopped its components, waits for them.
	failing     sync.Mutex
	interrupted atomic.Bool

	// Set by the commands that need them.
	etcdBin, kubeBin                                 string
	fluxBin, gitserverBin, craneBin, distributionBin string
	token                                            string
	etcdPort, etcdPeerPort, apiPort                  int
}

// fatal is what die panics with; run recovers it, runs the failure hooks and exits with code.
type fatal struct {
	msg  string
	code int
}

// exitNow ends the command with code and no error, as `exit 0` did in set_dir.
type exitNow struct{ code int }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func newHarness(stdout, stderr io.Writer) *harness {
	script := os.Getenv(scriptEnv)
	if script == "" {
		script = "e2e/controlplane.sh"
	}
	root := os.Getenv(rootEnv)
	if root == "" {
		// Run by hand from e2e/tools/controlplane (go run .).
		root, _ = filepath.Abs("../../..")
	}
	// Not handed down to the components it starts.
	os.Unsetenv(scriptEnv)
	os.Unsetenv(rootEnv)
	return &harness{
		script: script,
		root:   root,
		tools:  filepath.Join(root, "e2e", "tools"),
		cache:  cacheDir(),
		stdout: stdout,
		stderr: stderr,
		ports:  newPortPicker(),
		pids:   map[string]int{},
	}
}

// Outside the clone, so a session and CI (a fresh clone on the same machine)
// share the built binaries.
func cacheDir() string {
	if c := os.Getenv("FLUXTUNE_CACHE"); c != "" {
		return c
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "fluxtune")
	}
	return filepath.Join(os.Getenv("HOME"), ".cache", "fluxtune")
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	// Same Go settings everywhere, whatever the caller's environment says.
	for k, v := range map[string]string{"GOTOOLCHAIN": "local", "GOWORK": "off", "CGO_ENABLED": "0", "GOFLAGS": ""} {
		os.Setenv(k, v)
	}
	h := newHarness(stdout, stderr)
	defer func() {
		switch r := recover().(type) {
		case nil:
		case fatal:
			// Interrupted, the command's own failure is the hooks' doing: not worth a word.
			if !h.interrupted.Load() {
				h.logf("ERROR: %s", r.msg)
			}
			h.failed()
			code = r.code
		case exitNow:
			code = r.code
		default:
			panic(r)
		}
	}()
	h.catchSignals()
	code = h.dispatch(args)
	if h.interrupted.Load() {
		h.failing.Lock() // the handler holds it while it stops what was started, then exits
	}
	return code
}

// parsed is a command line: the command, DIR and what follows it.
type parsed struct {
	cmd  string
	dir  string   // empty for the build commands
	rest []string // kill/start: the component; kubectl: its arguments
}

// Commands that take DIR, and the build commands that do not.
var (
	dirCommands   = map[string]bool{"up": true, "down": true, "logs": true, "env": true, "selftest": true, "kubectl": true, "kill": true, "start": true, "compact": true, "flux-up": true, "flux-down": true}
	buildCommands = map[string]bool{"build": true, "build-flux": true, "build-promtool": true, "build-helm": true, "build-helm-controller": true}
)

// errUsage means: print the usage text and exit 2.
var errUsage = fmt.Errorf("usage")

// parseArgs checks the command line's shape; DIR itself is checked by setDir. Extra arguments
// are ignored, as the bash version ignored them.
func parseArgs(args []string) (parsed, error) {
	if len(args) == 0 {
		return parsed{}, errUsage
	}
	p := parsed{cmd: args[0]}
	switch {
	case buildCommands[p.cmd]:
		return p, nil
	case dirCommands[p.cmd]:
		if len(args) < 2 || args[1] == "" {
			return p, fmt.Errorf("usage: %%s %s DIR", p.cmd)
		}
		p.dir = args[1]
		p.rest = args[2:]
		return p, nil
	}
	return p, errUsage
}

func (h *harness) dispatch(args []string) int {
	p, err := parseArgs(args)
	if err == errUsage {
		fmt.Fprint(h.stderr, usage)
		return 2
	}
	h.cmd = p.cmd
	if err != nil {
		h.die(fmt.Sprintf(err.Error(), h.script))
	}
	if p.dir != "" {
		h.setDir(p.dir)
	}
	arg := func(i int) string {
		if i < len(p.rest) {
			return p.rest[i]
		}
		return ""
	}
	switch p.cmd {
	case "build":
		h.build()
	case "build-flux":
		h.buildFlux()
	case "build-promtool":
		h.buildPromtool()
	case "build-helm":
		h.buildHelm()
	case "build-helm-controller":
		h.buildHelmController()
	case "up":
		h.up()
	case "down":
		h.down()
	case "logs":
		h.logs()
	case "env":
		h.env()
	case "selftest":
		return h.selftest()
	case "kubectl":
		h.kubectl(p.rest)
	case "kill":
		h.kill(arg(0))
	case "start":
		h.startAgain(arg(0))
	case "compact":
		h.compact()
	case "flux-up":
		h.fluxUp()
	case "flux-down":
		h.fluxDown()
	}
	return 0
}

// setDir makes DIR absolute (as `cd DIR && pwd` did: no symlinks resolved, since `ours` looks
// for this exact path on command lines). `up` creates it.
func (h *harness) setDir(d string) {
	if h.cmd == "up" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			h.die(err.Error())
		}
	}
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		// `down` and `logs` run in cleanup paths: a missing DIR is nothing to do.
		if h.cmd == "down" || h.cmd == "flux-down" || h.cmd == "logs" {
			h.logf("%s: no such directory, nothing to do", d)
			panic(exitNow{0})
		}
		h.die(d + ": no such directory")
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		h.die(err.Error())
	}
	h.dir = abs
}

func (h *harness) logf(format string, a ...any) {
	if h.quiet {
		return
	}
	fmt.Fprintf(h.stderr, "[controlplane %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (h *harness) die(msg string) {
	panic(fatal{msg: msg, code: 1})
}

// must dies with err's message, prefixed by what was being done.
func (h *harness) must(err error, what string) {
	if err != nil {
		h.die(what + ": " + err.Error())
	}
}

// atFailure registers f to run if the command fails from here on; the returned function
// unregisters it once the step it guards has succeeded.
func (h *harness) atFailure(f func()) (done func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onFailure = append(h.onFailure, f)
	n := len(h.onFailure)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.onFailure = h.onFailure[:n-1]
	}
}

func (h *harness) failed() {
	h.failing.Lock()
	defer h.failing.Unlock()
	h.runHooks()
}

func (h *harness) runHooks() {
	h.mu.Lock()
	hooks := h.onFailure
	h.onFailure = nil
	h.mu.Unlock()
	h.quiet = false
	for i := len(hooks) - 1; i >= 0; i-- {
		func() {
			// A hook that dies itself must not keep the others from running.
			defer func() {
				if r := recover(); r != nil {
					if f, ok := r.(fatal); ok {
						h.logf("ERROR: %s", f.msg)
					}
				}
			}()
			hooks[i]()
		}()
	}
}

// An interrupted `up` or `flux-up` stops what it started, as bash ran its EXIT trap on a signal.
// The components run in sessions of their own, so a terminal's Ctrl-C never reaches them.
func (h *harness) catchSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-ch
		h.interrupted.Store(true)
		h.logf("ERROR: interrupted (%s)", s)
		h.failing.Lock() // never released: the command waits in failed(), never exits first
		h.runHooks()
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
}

func since(t0 time.Time) string {
	return fmt.Sprintf("%.1f", time.Since(t0).Seconds())
}
