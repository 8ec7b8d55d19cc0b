package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cache key is the bash version's, byte for byte, so binaries it built (kube about 12 min,
// Flux about 17 min cold) are reused. Checked against the bash pipeline on every tool module.
func TestToolDirMatchesTheBashKey(t *testing.T) {
	tools, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := filepath.Glob(filepath.Join(tools, "*", "go.sum"))
	if len(mods) < 5 {
		t.Fatalf("found only %d tool modules with a go.sum in %s", len(mods), tools)
	}
	for _, m := range mods {
		mod := filepath.Base(filepath.Dir(m))
		script := `cd "$1" && { cat "$2/go.mod" "$2/go.sum"; find "$2" -maxdepth 1 -name '*.go' | LC_ALL=C sort | xargs -r cat; echo "recipe=1"; } | sha256sum | cut -c1-12`
		out, err := exec.Command("bash", "-c", script, "_", tools, mod).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join("/cache", "bin", mod+"-v9-"+strings.TrimSpace(string(out)))
		got, err := toolDir("/cache", tools, mod, "v9")
		if err != nil || got != want {
			t.Errorf("toolDir(%s) = %s, %v; the bash key gives %s", mod, got, err, want)
		}
	}
}

func TestToolVersion(t *testing.T) {
	tools := t.TempDir()
	os.MkdirAll(filepath.Join(tools, "kube"), 0o755)
	os.WriteFile(filepath.Join(tools, "kube", "go.mod"), []byte(`module x

go 1.26.0

require (
	k8s.io/kubernetes v1.36.3
	k8s.io/api v0.36.3 // indirect
)

replace k8s.io/kubernetes => k8s.io/kubernetes v1.0.0
`), 0o644)
	for mod, want := range map[string]string{"k8s.io/kubernetes": "v1.36.3", "k8s.io/api": "v0.36.3", "k8s.io/none": ""} {
		if got := toolVersion(tools, "kube", mod); got != want {
			t.Errorf("toolVersion(%s) = %q, want %q", mod, got, want)
		}
	}
	if got := toolVersion(tools, "missing", "k8s.io/kubernetes"); got != "" {
		t.Errorf("a missing module: %q", got)
	}
}

// A complete cache directory is reused without building (and marked as in use); a build goes
// through a temporary directory renamed into place.
func TestBuildToolReusesAndBuilds(t *testing.T) {
	tools, cache := t.TempDir(), t.TempDir()
	mod := filepath.Join(tools, "hello")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module hello\n\ngo 1.26.0\n"), 0o644)
	os.WriteFile(filepath.Join(mod, "go.sum"), nil, 0o644)
	os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644)
	report := filepath.Join(t.TempDir(), "report")
	t.Setenv("FLUXTUNE_BUILD_REPORT", report)
	var stderr strings.Builder
	h := &harness{tools: tools, cache: cache, stderr: &stderr, stdout: &stderr}

	dir := h.buildTool("hello", "v0", "-s -w", buildSpec{"hello", "."})
	if out, err := exec.Command(filepath.Join(dir, "hello")).CombinedOutput(); err != nil || string(out) != "hello\n" {
		t.Fatalf("the built binary: %q %v", out, err)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "bin", ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(dir, ".complete"), old, old)
	// An old build, unused for 15 days: pruned by the next build.
	stale := filepath.Join(cache, "bin", "kube-v1.0.0-000000000000")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, ".complete"), nil, 0o644)
	ancient := time.Now().Add(-15 * 24 * time.Hour)
	os.Chtimes(filepath.Join(stale, ".complete"), ancient, ancient)

	if again := h.buildTool("hello", "v0", "-s -w", buildSpec{"hello", "."}); again != dir {
		t.Errorf("rebuilt into %s", again)
	}
	if st, _ := os.Stat(filepath.Join(dir, ".complete")); time.Since(st.ModTime()) > time.Minute {
		t.Error("a reused build is not marked as in use")
	}
	if !strings.Contains(stderr.String(), "reusing "+dir) {
		t.Errorf("no reuse logged: %s", stderr.String())
	}
	if data, _ := os.ReadFile(report); !strings.HasPrefix(string(data), "hello v0: built in ") || strings.Count(string(data), "\n") != 1 {
		t.Errorf("build report: %q (one line per build, the first)", data)
	}

	// A changed source is a new key: built again, into another directory; the stale one pruned.
	os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { println(\"bye\") }\n"), 0o644)
	if other := h.buildTool("hello", "v0", "-s -w", buildSpec{"hello", "."}); other == dir {
		t.Error("a changed source reused the old build")
	}
	if exists(stale) {
		t.Error("a build unused for 15 days was not pruned")
	}
	if !exists(dir) {
		t.Error("a build used two days ago was pruned")
	}
}
