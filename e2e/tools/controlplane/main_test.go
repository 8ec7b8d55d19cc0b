package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// A test binary started with dummyEnv set is the dummy component of process_test.go: it runs
// until killed, or ends after printing dummyEnv's value when that is not "sleep".
const dummyEnv = "CONTROLPLANE_TEST_DUMMY"

func TestMain(m *testing.M) {
	switch v := os.Getenv(dummyEnv); v {
	case "":
		os.Exit(m.Run())
	case "sleep":
		time.Sleep(time.Hour)
		os.Exit(0)
	default:
		os.Stdout.WriteString(v + "\n")
		os.Exit(1)
	}
}

// The usage text is the wrapper's header comment, as the bash version printed it (awk from
// line 2 to the first line not starting with '#', "# " removed).
func TestUsageIsTheWrappersHeader(t *testing.T) {
	data, err := os.ReadFile("../../controlplane.sh")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.Split(string(data), "\n")[1:] {
		if !strings.HasPrefix(l, "#") {
			break
		}
		l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		b.WriteString(l + "\n")
	}
	if b.String() != usage {
		t.Errorf("e2e/controlplane.sh's header and usage.go differ:\n--- header\n%s--- usage\n%s", b.String(), usage)
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    parsed
		wantErr string
	}{
		{args: nil, wantErr: "usage"},
		{args: []string{"nope"}, wantErr: "usage"},
		{args: []string{"--help"}, wantErr: "usage"},
		{args: []string{"build"}, want: parsed{cmd: "build"}},
		{args: []string{"build-helm-controller", "ignored"}, want: parsed{cmd: "build-helm-controller"}},
		{args: []string{"up"}, wantErr: "usage: %s up DIR"},
		{args: []string{"down", ""}, wantErr: "usage: %s down DIR"},
		{args: []string{"up", "/tmp/x"}, want: parsed{cmd: "up", dir: "/tmp/x", rest: []string{}}},
		{args: []string{"kill", "d", "etcd"}, want: parsed{cmd: "kill", dir: "d", rest: []string{"etcd"}}},
		{args: []string{"kubectl", "d", "get", "ns"}, want: parsed{cmd: "kubectl", dir: "d", rest: []string{"get", "ns"}}},
	} {
		got, err := parseArgs(tc.args)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseArgs(%q): error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.cmd != tc.want.cmd || got.dir != tc.want.dir || strings.Join(got.rest, " ") != strings.Join(tc.want.rest, " ") {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// runCLI runs the tool in-process as the wrapper would.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv(scriptEnv, "e2e/controlplane.sh")
	t.Setenv("FLUXTUNE_CACHE", t.TempDir())
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	code, out, errOut := runCLI(t)
	if code != 2 || out != "" || errOut != usage {
		t.Errorf("no command: exit %d, stdout %q, stderr %q; want 2 and the usage", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "frobnicate", "x")
	if code != 2 || errOut != usage {
		t.Errorf("unknown command: exit %d; want 2 and the usage", code)
	}
	code, _, errOut = runCLI(t, "up")
	if code != 1 || !strings.HasSuffix(errOut, "ERROR: usage: e2e/controlplane.sh up DIR\n") {
		t.Errorf("up without DIR: exit %d, stderr %q", code, errOut)
	}
	missing := t.TempDir() + "/missing"
	code, _, errOut = runCLI(t, "env", missing)
	if code != 1 || !strings.Contains(errOut, "ERROR: "+missing+": no such directory") {
		t.Errorf("env on a missing DIR: exit %d, stderr %q", code, errOut)
	}
	dir := t.TempDir()
	code, _, errOut = runCLI(t, "kill", dir, "kubelet")
	if code != 1 || !strings.Contains(errOut, "ERROR: usage: e2e/controlplane.sh kill DIR apiserver|etcd (not 'kubelet')") {
		t.Errorf("kill kubelet: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "kill", dir, "etcd")
	if code != 1 || !strings.Contains(errOut, "ERROR: etcd is not running in "+dir) {
		t.Errorf("kill etcd with nothing running: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "start", dir, "apiserver")
	if code != 1 || !strings.Contains(errOut, "ERROR: no control plane was started in "+dir) {
		t.Errorf("start without ports: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "flux-up", dir)
	if code != 1 || !strings.Contains(errOut, "ERROR: no control plane in "+dir+"; run: e2e/controlplane.sh up "+dir) {
		t.Errorf("flux-up without a control plane: exit %d, stderr %q", code, errOut)
	}
}

// down, flux-down and logs run in cleanup paths: nothing to do is not an error.
func TestCleanupCommandsAreIdempotent(t *testing.T) {
	missing := t.TempDir() + "/missing"
	for _, cmd := range []string{"down", "flux-down", "logs"} {
		code, out, errOut := runCLI(t, cmd, missing)
		if code != 0 || out != "" || !strings.Contains(errOut, missing+": no such directory, nothing to do") {
			t.Errorf("%s on a missing DIR: exit %d, stdout %q, stderr %q", cmd, code, out, errOut)
		}
	}
	dir := t.TempDir()
	for _, cmd := range []string{"down", "flux-down", "down"} {
		code, _, errOut := runCLI(t, cmd, dir)
		if code != 0 || !strings.Contains(errOut, "nothing to stop in "+dir) {
			t.Errorf("%s on an empty DIR: exit %d, stderr %q", cmd, code, errOut)
		}
	}
}

func TestFailureHooksRunInReverse(t *testing.T) {
	h := newHarness(&bytes.Buffer{}, &bytes.Buffer{})
	var order []string
	h.atFailure(func() { order = append(order, "first") })
	done := h.atFailure(func() { order = append(order, "undone") })
	done()
	h.atFailure(func() { order = append(order, "second"); h.die("the hook fails too") })
	h.failed()
	if strings.Join(order, ",") != "second,first" {
		t.Errorf("hooks ran as %v; want second,first", order)
	}
}
