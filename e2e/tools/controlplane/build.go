package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Bump when the way binaries are built changes: it is part of the cache key.
const recipe = 1

// toolVersion is the version of module `module` as required by tool module `mod`: the second
// field of the first go.mod line whose first field is the module.
func toolVersion(tools, mod, module string) string {
	f, err := os.Open(filepath.Join(tools, mod, "go.mod"))
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 0 && fields[0] == module {
			if len(fields) > 1 {
				return fields[1]
			}
			return ""
		}
	}
	return ""
}

// toolDir is the cache directory for tool module `mod`: named by version, keyed by the module
// files (a changed pin or go.sum must never reuse old binaries) and the recipe. Byte for byte
// the key the bash version computed, so binaries it built are reused:
//
//	{ cat go.mod go.sum; cat *.go (sorted, top level only); echo recipe=1; } | sha256sum | cut -c1-12
//
// A module with its own Go sources (the git server) is keyed by them too; for the others the
// key is the same as before they existed.
func toolDir(cache, tools, mod, version string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(tools, mod, f))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	sources, err := filepath.Glob(filepath.Join(tools, mod, "*.go"))
	if err != nil {
		return "", err
	}
	sort.Strings(sources) // LC_ALL=C sort: bytewise
	for _, src := range sources {
		data, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	fmt.Fprintf(h, "recipe=%d\n", recipe)
	return filepath.Join(cache, "bin", mod+"-"+version+"-"+hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// A binary to build: NAME from package PKG of the tool module.
type buildSpec struct{ name, pkg string }

// buildTool builds specs of tool module `mod` into its cache directory (see toolDir), or reuses
// it, and returns the directory. It builds into a temporary directory and renames it into
// place, so a killed build never looks done.
func (h *harness) buildTool(mod, version, ldflags string, specs ...buildSpec) string {
	dir, err := toolDir(h.cache, h.tools, mod, version)
	h.must(err, "hashing "+filepath.Join(h.tools, mod))
	complete := filepath.Join(dir, ".complete")
	if exists(complete) {
		h.logf("reusing %s", dir)
		h.report(fmt.Sprintf("%s %s: reused %s", mod, version, dir))
		touch(complete) // marks it as in use, for the pruning below
		return dir
	}
	bin := filepath.Join(h.cache, "bin")
	h.must(os.MkdirAll(bin, 0o755), "creating "+bin)
	// Two concurrent `build`s (say, a session and its CI) must not both compile. The same lock
	// file as the bash version's `flock`, so old and new builders exclude each other.
	lock, err := os.OpenFile(filepath.Join(bin, ".lock"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	h.must(err, "opening the build lock")
	defer lock.Close()
	h.must(syscall.Flock(int(lock.Fd()), syscall.LOCK_EX), "taking the build lock")
	if exists(complete) {
		h.logf("reusing %s (built by a concurrent run)", dir)
		h.report(fmt.Sprintf("%s %s: reused %s (built by a concurrent run)", mod, version, dir))
		return dir
	}
	tmp, err := os.MkdirTemp(bin, ".tmp-"+mod+"-")
	h.must(err, "creating a build directory")
	t0 := time.Now()
	for _, s := range specs {
		t1 := time.Now()
		h.logf("building %s (%s) from %s ...", s.name, version, s.pkg)
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags,
			"-o", filepath.Join(tmp, s.name), s.pkg)
		cmd.Dir = filepath.Join(h.tools, mod)
		cmd.Stdout, cmd.Stderr = h.output(h.stdout), h.output(h.stderr)
		if err := cmd.Run(); err != nil {
			os.RemoveAll(tmp)
			h.die(fmt.Sprintf("building %s failed", s.name))
		}
		h.logf("built %s in %s s", s.name, since(t1))
	}
	h.must(os.Chmod(tmp, 0o755), "chmod "+tmp)
	touch(filepath.Join(tmp, ".complete"))
	h.must(os.RemoveAll(dir), "removing "+dir)
	h.must(os.Rename(tmp, dir), "moving the build into "+dir)
	h.prune(bin)
	h.logf("built %s %s into %s in %s s", mod, version, dir, since(t0))
	h.report(fmt.Sprintf("%s %s: built in %s s", mod, version, since(t0)))
	return dir
}

// prune: every pin change leaves ~300 MB behind; drop builds unused for 14 days (as
// `find -mtime +14`: 15 whole days since .complete was last touched).
func (h *harness) prune(bin string) {
	marks, _ := filepath.Glob(filepath.Join(bin, "*", ".complete"))
	for _, m := range marks {
		st, err := os.Stat(m)
		if err != nil || int(time.Since(st.ModTime())/(24*time.Hour)) <= 14 {
			continue
		}
		old := filepath.Dir(m)
		h.logf("pruning %s", old)
		os.RemoveAll(old)
	}
}

// report adds a line to the caller's summary of what was built and what reused (test-all.sh
// prints it). A build is looked up more than once per run (build, then up): its first line
// says it all.
func (h *harness) report(line string) {
	path := os.Getenv("FLUXTUNE_BUILD_REPORT")
	if path == "" {
		return
	}
	key, _, _ := strings.Cut(line, ":")
	if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), key+":") {
		return
	}
	appendFile(path, line+"\n")
}

// output is w, or nothing while quiet.
func (h *harness) output(w io.Writer) io.Writer {
	if h.quiet {
		return io.Discard
	}
	return w
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func touch(path string) {
	now := time.Now()
	if err := os.Chtimes(path, now, now); errors.Is(err, os.ErrNotExist) {
		os.WriteFile(path, nil, 0o644)
	}
}

// build builds (or reuses) etcd, kube-apiserver, kube-controller-manager and kubectl.
func (h *harness) build() {
	kver := toolVersion(h.tools, "kube", "k8s.io/kubernetes")
	ever := toolVersion(h.tools, "etcd", "go.etcd.io/etcd/server/v3")
	if kver == "" || ever == "" {
		h.die(fmt.Sprintf("cannot read pinned versions from %s/*/go.mod", h.tools))
	}
	minor, _, _ := strings.Cut(strings.TrimPrefix(kver, "v1."), ".")
	// What hack/lib/version.sh stamps, so /version and kubectl report v1.X.Y
	// instead of v0.0.0-master.
	ldk := "-s -w"
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldk += fmt.Sprintf(" -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean", p, kver, p, p, minor, p)
	}
	h.etcdBin = h.buildTool("etcd", ever, "-s -w", buildSpec{"etcd", "go.etcd.io/etcd/server/v3"})
	h.kubeBin = h.buildTool("kube", kver, ldk,
		buildSpec{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"},
		buildSpec{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"},
		buildSpec{"kubectl", "k8s.io/kubernetes/cmd/kubectl"})
}

// The Flux controllers, in flux-up's start order of build-flux.
var fluxControllers = []string{"source-controller", "kustomize-controller", "notification-controller",
	"image-reflector-controller", "image-automation-controller"}

// buildFlux builds the Flux controllers (tools of e2e/tools/flux), our Git host
// (e2e/tools/gitserver), crane (e2e/tools/registry) and CNCF distribution's registry
// (e2e/tools/distribution), which the tests start themselves: its webhook endpoint is a
// Receiver URL known only once a profile is applied.
func (h *harness) buildFlux() {
	fver := toolVersion(h.tools, "flux", "github.com/fluxcd/source-controller")
	cver := toolVersion(h.tools, "registry", "github.com/google/go-containerregistry")
	dver := toolVersion(h.tools, "distribution", "github.com/distribution/distribution/v3")
	if fver == "" || cver == "" || dver == "" {
		h.die(fmt.Sprintf("cannot read pinned versions from %s/{flux,registry,distribution}/go.mod", h.tools))
	}
	var specs []buildSpec
	for _, c := range fluxControllers {
		specs = append(specs, buildSpec{c, "github.com/fluxcd/" + c})
	}
	// Named by source-controller's version; the key covers all five pins.
	h.fluxBin = h.buildTool("flux", fver, "-s -w", specs...)
	h.gitserverBin = h.buildTool("gitserver", "v0", "-s -w", buildSpec{"gitserver", "."})
	h.craneBin = h.buildTool("registry", cver, "-s -w", buildSpec{"crane", "github.com/google/go-containerregistry/cmd/crane"})
	h.distributionBin = h.buildTool("distribution", dver, "-s -w", buildSpec{"registry", "github.com/distribution/distribution/v3/cmd/registry"})
}

// buildPromtool: promtool and rulespec (e2e/tools/promtool), for the monitoring tier of
// e2e/test-all.sh: rulespec turns deploy/components/alerts' PrometheusRule into a rules file,
// promtool checks and unit-tests it. Prints the directory holding both on stdout.
func (h *harness) buildPromtool() {
	pver := toolVersion(h.tools, "promtool", "github.com/prometheus/prometheus")
	if pver == "" {
		h.die(fmt.Sprintf("cannot read the pinned version from %s/promtool/go.mod", h.tools))
	}
	fmt.Fprintln(h.stdout, h.buildTool("promtool", pver, "-s -w",
		buildSpec{"promtool", "github.com/prometheus/prometheus/cmd/promtool"}, buildSpec{"rulespec", "."}))
}

// buildHelm: helm (e2e/tools/helm, helm.sh/helm/v4) and chartdiff (the module's own Go
// program), for e2e/helm-check.sh: lint, template, install/upgrade/uninstall of
// deploy/helm/fluxtune, and the comparison of the rendered chart with `kubectl kustomize
// deploy`. Prints the directory on stdout.
func (h *harness) buildHelm() {
	hver := toolVersion(h.tools, "helm", "helm.sh/helm/v4")
	if hver == "" {
		h.die(fmt.Sprintf("cannot read the pinned version from %s/helm/go.mod", h.tools))
	}
	// What helm's Makefile stamps for a release build, so `helm version` says v4.3.2, not v4.3.
	ld := fmt.Sprintf("-s -w -X helm.sh/helm/v4/internal/version.version=%s -X helm.sh/helm/v4/internal/version.gitTreeState=clean", hver)
	fmt.Fprintln(h.stdout, h.buildTool("helm", hver, ld, buildSpec{"helm", "helm.sh/helm/v4/cmd/helm"}, buildSpec{"chartdiff", "."}))
}

// buildHelmController: Flux's helm-controller (e2e/tools/helm-controller), for
// e2e/helm-check.sh: the chart installed from the OCI registry by a HelmRelease, next to the
// Flux controllers of build-flux. Prints the directory of the binary, then that of its CRD,
// one a line.
func (h *harness) buildHelmController() {
	ver := toolVersion(h.tools, "helm-controller", "github.com/fluxcd/helm-controller")
	if ver == "" {
		h.die(fmt.Sprintf("cannot read the pinned version from %s/helm-controller/go.mod", h.tools))
	}
	fmt.Fprintln(h.stdout, h.buildTool("helm-controller", ver, "-s -w", buildSpec{"helm-controller", "github.com/fluxcd/helm-controller"}))
	dirs, err := h.crdDirs("helm-controller", []string{"github.com/fluxcd/helm-controller"})
	h.must(err, "finding helm-controller's CRDs")
	for _, d := range dirs {
		fmt.Fprintln(h.stdout, d)
	}
}

// The five controllers' require lines only: the module also requires fluxcd/pkg/... and the
// controllers' api modules (no CRDs), and names the controllers again in its tool block
// (without a version).
var fluxControllerRequire = regexp.MustCompile(`^github\.com/fluxcd/[a-z-]+-controller$`)

// fluxCRDDirs are the directories holding the pinned Flux CRDs.
func (h *harness) fluxCRDDirs() ([]string, error) {
	f, err := os.Open(filepath.Join(h.tools, "flux", "go.mod"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mods []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fluxControllerRequire.MatchString(fields[0]) && strings.HasPrefix(fields[1], "v") {
			mods = append(mods, fields[0])
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no Flux modules pinned in %s/flux/go.mod", h.tools)
	}
	return h.crdDirs("flux", mods)
}

// crdDirs are the config/crd/bases directories of modules required by tool module `mod`.
// `go mod download` fills the module cache from the committed go.sum (for Flux about 14 MB,
// nothing is compiled).
func (h *harness) crdDirs(mod string, modules []string) ([]string, error) {
	dl := exec.Command("go", append([]string{"mod", "download"}, modules...)...)
	dl.Dir = filepath.Join(h.tools, mod)
	dl.Stdout, dl.Stderr = h.output(h.stderr), h.output(h.stderr)
	if err := dl.Run(); err != nil {
		return nil, fmt.Errorf("go mod download: %w", err)
	}
	list := exec.Command("go", append([]string{"list", "-m", "-f", "{{.Dir}}/config/crd/bases"}, modules...)...)
	list.Dir = dl.Dir
	list.Stderr = h.output(h.stderr)
	out, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w", err)
	}
	// One directory a line (a path may hold spaces).
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n"), nil
}
