package main

// Each class of mistake, made on purpose in a copy of the repository's Tiltfile (evaluated in the
// repository's root, as the Tiltfile itself is), must fail with a message naming it, and only in
// the modes where the mistake is reached. kustomize() renders for real, so FLUXTUNE_KUBECTL must
// name a kubectl: e2e/tilt-check.sh passes the pinned one.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	modeDefault  = "tilt up"
	modeInDocker = "tilt up -- --in-docker"
	modeHost     = "tilt up -- --in-docker=false"
	modeMacOS    = `tilt up (uname -s answered "Darwin")`
)

var allModes = []string{modeDefault, modeInDocker, modeHost, modeMacOS}

func repo(t *testing.T) (string, []byte, string) {
	t.Helper()
	kubectl := os.Getenv("FLUXTUNE_KUBECTL")
	if kubectl == "" {
		t.Fatal("FLUXTUNE_KUBECTL is not set: these tests render deploy/ with kubectl kustomize; run them through e2e/tilt-check.sh, which builds the pinned kubectl")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	return root, src, kubectl
}

func byMode(t *testing.T, results []*Result, want ...string) map[string]*Result {
	t.Helper()
	if len(want) == 0 {
		want = allModes
	}
	out := map[string]*Result{}
	for _, r := range results {
		out[r.Mode] = r
	}
	for _, m := range want {
		if out[m] == nil {
			t.Fatalf("mode %q was not evaluated; evaluated: %v", m, keys(out))
		}
	}
	if len(out) != len(want) {
		t.Fatalf("evaluated %d modes, want %d: %v", len(out), len(want), keys(out))
	}
	return out
}

func keys(m map[string]*Result) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTheTiltfileChecksOutInEveryMode(t *testing.T) {
	root, src, kubectl := repo(t)
	modes := byMode(t, CheckAll(root, "Tiltfile", src, kubectl))
	for _, name := range allModes {
		r := modes[name]
		if !r.OK() {
			t.Fatalf("%s: %v", name, r.Problems())
		}
		var order []string
		for _, res := range r.Assembly.Resources {
			order = append(order, res.Name)
		}
		if got := strings.Join(order, " "); got != "fluxtune-compile fluxtune samples" {
			t.Errorf("%s: resources in Tilt's order: %q, want \"fluxtune-compile fluxtune samples\" (no uncategorized objects)", name, got)
		}
		k8s := r.Assembly.Resources[1]
		if len(k8s.Entities) != len(r.Model.Entities) || len(r.Model.Entities) < 10 {
			t.Errorf("%s: resource fluxtune holds %d of the %d objects of deploy/", name, len(k8s.Entities), len(r.Model.Entities))
		}
		if len(k8s.Images) != 1 || k8s.Images[0].Ref != "ghcr.io/fluxtune/fluxtune" {
			t.Fatalf("%s: resource fluxtune builds %v, want ghcr.io/fluxtune/fluxtune", name, k8s.Images)
		}
		wantContext := filepath.Join(root, "target", "release")
		if name == modeInDocker || name == modeMacOS {
			wantContext = root
		}
		if got := k8s.Images[0].Context; got != wantContext {
			t.Errorf("%s: build context %s, want %s", name, got, wantContext)
		}
	}
	if deps := modes[modeInDocker].Assembly.Resources[1].ResourceDeps; len(deps) != 0 {
		t.Errorf("--in-docker: resource fluxtune waits for %v, want nothing (the image compiles itself)", deps)
	}
	if deps := modes[modeDefault].Assembly.Resources[1].ResourceDeps; strings.Join(deps, ",") != "fluxtune-compile" {
		t.Errorf("host binary: resource fluxtune waits for %v, want fluxtune-compile", deps)
	}
}

// A mistake made by replacing old (which must occur exactly once, so that a Tiltfile change
// cannot make the case vacuous) with new; want is in the failing modes' messages, {line} standing
// for the Tiltfile line of the replaced text.
type mistake struct {
	name, old, new string
	want           []string
	failIn         []string
}

var hostModes = []string{modeDefault, modeHost}
var dockerModes = []string{modeInDocker, modeMacOS}

var mistakes = []mistake{
	{"wrong argument name of docker_build", "dockerfile_contents=", "dockerfile_content=",
		[]string{`docker_build: unexpected keyword argument "dockerfile_content" (did you mean dockerfile_contents?)`, "Tiltfile:", "in <toplevel>"}, hostModes},
	{"wrong argument name of local_resource", "resource_deps=['fluxtune'],", "resource_dep=['fluxtune'],",
		[]string{`local_resource: unexpected keyword argument "resource_dep" (did you mean resource_deps?)`}, allModes},
	{"wrong argument type", "port_forwards=8080,", "port_forwards=8080.0,",
		[]string{`k8s_resource "fluxtune": port_forwards must be an int`}, allModes},
	{"missing deps path", "'operator/src']", "'operator/sources']",
		[]string{`local_resource "fluxtune-compile": deps entry "operator/sources" does not exist`}, allModes},
	{"objects selector naming no object", "'fluxtune-leader-election:rolebinding',", "'fluxtune-leader:rolebinding',",
		[]string{`No object identified by the fragment "fluxtune-leader:rolebinding" could be found. Possible objects are:`}, allModes},
	{"objects selector naming an object Tilt already grouped", "'fluxtune:poddisruptionbudget',", "'fluxtune-metrics:service',",
		[]string{`No object identified by the fragment "fluxtune-metrics:service" could be found in remaining YAML (Tilt already put fluxtune-metrics:Service:fluxtune-system in resource "fluxtune")`}, allModes},
	{"objects selector matching two objects", "'fluxtune:serviceaccount',", "'fluxtune',",
		[]string{`"fluxtune" is not a unique fragment`}, allModes},
	{"objects selector with a wrong kind", "'fluxtune:clusterrolebinding',", "'fluxtune:rolebinding',",
		[]string{`No object identified by the fragment "fluxtune:rolebinding" could be found`}, allModes},
	{"k8s_resource naming no workload", "    'fluxtune',\n    port_forwards", "    'fluxtune-operator',\n    port_forwards",
		[]string{`specified unknown resource "fluxtune-operator". known resources: fluxtune`}, allModes},
	{"resource_deps naming no resource", "resource_deps=['fluxtune'],", "resource_deps=['fluxtune-operator'],",
		[]string{"resource samples specified a dependency on unknown resource fluxtune-operator"}, allModes},
	{"resource_deps cycle", "resource_deps=[] if in_docker else ['fluxtune-compile'],", "resource_deps=['samples'],",
		[]string{"cycle detected in resource dependency graph: samples -> fluxtune -> samples"}, allModes},
	{"image name the YAML does not run", "IMAGE = 'ghcr.io/fluxtune/fluxtune'", "IMAGE = 'ghcr.io/fluxtune/operator'",
		[]string{`docker_build("ghcr.io/fluxtune/operator")`, "no container in the k8s_yaml objects runs this image",
			"containers run: ghcr.io/fluxtune/fluxtune:v0.1.0", "deploy/kustomization.yaml `images:` rewrites ghcr.io/fluxtune/fluxtune"}, allModes},
	{"--in-docker branch: missing Dockerfile", "dockerfile='Dockerfile',", "dockerfile='Dockerfile.release',",
		[]string{"error reading dockerfile", "Dockerfile.release"}, dockerModes},
	{"--in-docker branch: only= leaves out what the Dockerfile copies", "only=['Cargo.toml', 'Cargo.lock', 'operator']", "only=['Cargo.toml', 'Cargo.lock']",
		[]string{`docker_build("ghcr.io/fluxtune/fluxtune"): the Dockerfile's COPY operator (line`, `is left out of the build context by only=["Cargo.toml" "Cargo.lock"]`}, dockerModes},
	{"host branch: only= leaves out the binary", "only=['fluxtune'],", "only=['fluxtune-operator'],",
		[]string{"the Dockerfile's COPY fluxtune (line 3) is left out of the build context by only="}, hostModes},
	{"config flag misspelt", "cfg.get('in-docker', not host_is_linux)", "cfg.get('in_docker', not host_is_linux)",
		nil, nil}, // evaluates, but --in-docker no longer selects the Dockerfile: caught by the context check below
	{"unknown builtin", "k8s_yaml(kustomize('deploy'))", "k8s_yaml(kustomise('deploy'))",
		[]string{"Tiltfile:{line}:10: undefined: kustomise", "tiltcheck implements these Tilt builtins"}, []string{modeDefault}},
	{"kustomize of a directory that does not render", "kustomize('deploy')", "kustomize('deploy/components')",
		[]string{`kustomize("deploy/components"): kubectl kustomize deploy/components failed`}, allModes},
	{"a load-time local() with side effects", "in_docker = cfg.get(", "local('cargo build')\nin_docker = cfg.get(",
		[]string{`local("cargo build"): tiltcheck runs only harmless commands at load time`}, allModes},
}

func TestEveryClassOfMistakeFailsWhereItIsReached(t *testing.T) {
	root, src, kubectl := repo(t)
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			if n := strings.Count(string(src), m.old); n != 1 {
				t.Fatalf("the Tiltfile has %d occurrences of %q, want 1: update this case", n, m.old)
			}
			broken := []byte(strings.Replace(string(src), m.old, m.new, 1))
			line := fmt.Sprint(strings.Count(string(src[:strings.Index(string(src), m.old)]), "\n") + 1)
			// A Tiltfile that does not resolve has no modes but the first: its flags are unknown.
			evaluated := allModes
			if len(m.failIn) == 1 && m.failIn[0] == modeDefault {
				evaluated = m.failIn
			}
			modes := byMode(t, CheckAll(root, "Tiltfile", broken, kubectl), evaluated...)
			if m.name == "config flag misspelt" {
				r := modes[modeInDocker]
				if !r.OK() {
					t.Fatalf("%s: %v", modeInDocker, r.Problems())
				}
				if got := r.Assembly.Resources[1].Images[0].Context; got == root {
					t.Fatalf("--in-docker still builds from %s: the misspelt flag went unnoticed by this test", got)
				}
				return
			}
			failing := map[string]bool{}
			for _, f := range m.failIn {
				failing[f] = true
			}
			for _, name := range evaluated {
				r := modes[name]
				if !failing[name] {
					if !r.OK() {
						t.Errorf("%s should pass, failed: %v", name, r.Problems())
					}
					continue
				}
				if r.OK() {
					t.Errorf("%s passed, want a failure mentioning %q", name, m.want)
					continue
				}
				all := strings.Join(r.Problems(), "\n")
				for _, w := range m.want {
					w = strings.ReplaceAll(w, "{line}", line)
					if !strings.Contains(all, w) {
						t.Errorf("%s: the failure does not say %q:\n%s", name, w, all)
					}
				}
			}
		})
	}
}

func TestSelectorsFollowTilt(t *testing.T) {
	e := &Entity{Name: "fluxtune", Kind: "ClusterRole", APIVersion: "rbac.authorization.k8s.io/v1", Group: "rbac.authorization.k8s.io"}
	for s, want := range map[string]bool{
		"fluxtune": true, "FLUXTUNE:clusterrole": true, "fluxtune:ClusterRole:default": true,
		"fluxtune::default": true, "fluxtune:role": false, "fluxtune:clusterrole:kube-system": false, "flux": false,
	} {
		sel, err := selectorFromString(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := sel.matches(e); got != want {
			t.Errorf("selector %q matches %s: %v, want %v", s, e.FullName(), got, want)
		}
	}
	if _, err := selectorFromString("a:b:c:d"); err == nil || !strings.Contains(err.Error(), "Too many parts in selector") {
		t.Errorf("a 4-part selector: %v", err)
	}
	if parts, _ := unescapeSplit(`a\:b:c`); strings.Join(parts, "|") != "a:b|c" {
		t.Errorf(`a\:b:c splits into %q`, parts)
	}
	if got := strings.Join(e.potentialNames(1), " "); got != "fluxtune fluxtune:clusterrole fluxtune:clusterrole:default fluxtune:clusterrole:default:rbac.authorization.k8s.io" {
		t.Errorf("potential names: %s", got)
	}
}

func TestDockerfileSources(t *testing.T) {
	df := "# syntax=docker/dockerfile:1\nFROM rust AS builder\nCOPY Cargo.toml Cargo.lock ./\nCOPY --chown=1:1 operator \\\n  ./operator\nRUN --mount=type=cache,target=/x true\nFROM scratch\nCOPY --from=builder /out/fluxtune /fluxtune\nADD [\"a b\", \"/c\"]\nADD https://example.invalid/x /x\n"
	srcs, err := dockerfileCopySources(df)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range srcs {
		got = append(got, s.instr+" "+s.src)
	}
	if strings.Join(got, ", ") != "COPY Cargo.toml, COPY Cargo.lock, COPY operator, ADD a b" {
		t.Errorf("sources: %q", got)
	}
}

// The run's build step: a COPY source missing on disk (the binary fluxtune-compile did not make)
// fails with the path, and the digest changes with the context.
func TestContextOnDisk(t *testing.T) {
	dir := t.TempDir()
	img := &Image{Ref: "ghcr.io/fluxtune/fluxtune", Context: dir, Dockerfile: "FROM scratch\nCOPY fluxtune /fluxtune\n", Only: []string{"fluxtune"}}
	if _, _, err := checkContextOnDisk(img); err == nil || !strings.Contains(err.Error(), "COPY fluxtune (line 2): fluxtune does not exist in the build context") {
		t.Fatalf("missing binary: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fluxtune"), []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("outside only="), 0o644); err != nil {
		t.Fatal(err)
	}
	d1, n, err := checkContextOnDisk(img)
	if err != nil || n != 1 {
		t.Fatalf("context with the binary: %d files, %v", n, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fluxtune"), []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d2, _, _ := checkContextOnDisk(img); d2 == d1 {
		t.Errorf("the digest %s did not change with the binary", d1)
	}
}

// deploy/ applied in one call: the Namespace and the CRD before what lives in them.
func TestInstallOrder(t *testing.T) {
	var es []*Entity
	for _, k := range []string{"Deployment", "Service", "Namespace", "FluxProfile", "CustomResourceDefinition", "ServiceAccount"} {
		es = append(es, &Entity{Kind: k})
	}
	var got []string
	for _, e := range installOrder(es) {
		got = append(got, e.Kind)
	}
	if strings.Join(got, " ") != "Namespace ServiceAccount CustomResourceDefinition Service Deployment FluxProfile" {
		t.Errorf("install order: %v", got)
	}
}
