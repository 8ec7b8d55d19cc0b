package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestKubeconfig(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	got := kubeconfig(23456, ca, "abc123")
	want := `apiVersion: v1
kind: Config
clusters:
- name: fluxtune-e2e
  cluster:
    server: https://127.0.0.1:23456
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca) + `
users:
- name: fluxtune-admin
  user:
    token: abc123
contexts:
- name: fluxtune-e2e
  context:
    cluster: fluxtune-e2e
    user: fluxtune-admin
current-context: fluxtune-e2e
`
	if got != want {
		t.Errorf("kubeconfig:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnvFile(t *testing.T) {
	got := envLines([]envVar{{"KUBECONFIG", "/tmp/fluxtune-e2e.abc/kubeconfig"}, {"FLUXTUNE_APISERVER", "https://127.0.0.1:2"}}, "")
	if want := "export KUBECONFIG=/tmp/fluxtune-e2e.abc/kubeconfig\nexport FLUXTUNE_APISERVER=https://127.0.0.1:2\n"; got != want {
		t.Errorf("env lines %q, want %q", got, want)
	}
	dir := t.TempDir()
	flux := fluxEnv(filepath.Join(dir, "flux"), fluxPorts{git: 1, registry: 2, receiver: 3, events: 4, storage: 5})
	var names []string
	for _, v := range flux {
		names = append(names, v.name)
	}
	// What operator/tests/e2e/flux_support.rs and helm-check.sh read.
	if want := "FLUXTUNE_RECEIVER_ADDR FLUXTUNE_EVENTS_ADDR FLUXTUNE_STORAGE_ADDR FLUXTUNE_GIT_URL FLUXTUNE_GIT_ROOT FLUXTUNE_REGISTRY FLUXTUNE_CRANE FLUXTUNE_DISTRIBUTION"; strings.Join(names, " ") != want {
		t.Errorf("flux env names %s", names)
	}
	path := filepath.Join(dir, "env")
	base := envLines([]envVar{{"KUBECONFIG", dir + "/kubeconfig"}}, "")
	if err := os.WriteFile(path, []byte(base+envLines(flux, " # flux")), 0o644); err != nil {
		t.Fatal(err)
	}
	vars, err := readEnvFile(path)
	if err != nil || len(vars) != 9 || lookup(vars, "FLUXTUNE_GIT_URL") != "http://127.0.0.1:1" || lookup(vars, "FLUXTUNE_GIT_ROOT") != dir+"/flux/git" {
		t.Errorf("readEnvFile: %v %v", vars, err)
	}
	if err := removeFluxLines(path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != base {
		t.Errorf("after removeFluxLines: %q, want %q", data, base)
	}
}

// Values are quoted so that bash, sourcing DIR/env, gets them back; plain paths as bash's %q
// writes them.
func TestShellQuote(t *testing.T) {
	for _, s := range []string{"/tmp/a-b_c.d/e", "127.0.0.1:80", "a b", "it's", `back\slash`, "a,b", "$HOME", "x\ny", "tab\there", "é", "~x", "#x", "a~b#c", ""} {
		q := shellQuote(s)
		back, err := shellUnquote(q)
		if err != nil || back != s {
			t.Errorf("shellUnquote(shellQuote(%q) = %q) = %q, %v", s, q, back, err)
		}
		out, err := exec.Command("bash", "-c", "v="+q+`; printf %s "$v"`).Output()
		if err != nil || string(out) != s {
			t.Errorf("bash reads %q as %q (%v), want %q", q, out, err, s)
		}
		if !strings.ContainsAny(s, "\n\t") && s != "" {
			bq, _ := exec.Command("bash", "-c", `printf %q "$1"`, "_", s).Output()
			if string(bq) != q {
				t.Errorf("shellQuote(%q) = %q, bash's %%q %q", s, q, bq)
			}
		}
	}
}

func TestPortsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ports"), []byte(portsFile(1, 2, 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "ports")); string(data) != "ETCD_PORT=1\nETCD_PEER_PORT=2\nAPI_PORT=3\n" {
		t.Errorf("ports file %q", data)
	}
	e, p, a, err := readPortsFile(dir)
	if e != 1 || p != 2 || a != 3 || err != nil {
		t.Errorf("readPortsFile = %d %d %d %v", e, p, a, err)
	}
	if _, _, _, err := readPortsFile(t.TempDir()); !os.IsNotExist(err) {
		t.Errorf("a missing ports file: %v", err)
	}
}
