package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// selftest checks that what the e2e tests rely on works on a running control plane: the API
// server is ready and serves the Flux kinds, the garbage collector deletes dependents,
// TokenRequest tokens authenticate, RBAC denies a ServiceAccount, namespaces get deleted.
// Prints "selftest: N passed, M failed"; exits 1 if any failed.
func (h *harness) selftest() int {
	vars := h.envVars()
	env := environ(vars)
	kubectl := lookup(vars, "FLUXTUNE_KUBECTL")
	ns := fmt.Sprintf("fluxtune-selftest-%d", os.Getpid())
	// k runs kubectl; stdout returned, stderr shown unless hidden (the checks hide both).
	k := func(stdin string, showStderr bool, args ...string) (string, string, error) {
		cmd := exec.Command(kubectl, args...)
		cmd.Env = env
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if showStderr {
			h.stderr.Write(errb.Bytes())
		}
		return out.String(), errb.String(), err
	}
	// setup runs a step the checks need; its failure ends the selftest.
	setup := func(args ...string) string {
		out, _, err := k("", true, args...)
		h.must(err, "kubectl "+strings.Join(args, " "))
		return out
	}
	pass, fail := 0, 0
	check := func(name string, ok func() bool) {
		if ok() {
			pass++
			h.logf("ok   %s", name)
		} else {
			fail++
			h.logf("FAIL %s", name)
		}
	}
	// gone waits up to seconds for `kubectl get ARGS` to answer NotFound.
	gone := func(seconds int, args ...string) func() bool {
		return func() bool {
			for range seconds * 5 {
				out, errOut, _ := k("", false, append([]string{"get"}, args...)...)
				if strings.Contains(out+errOut, "NotFound") {
					return true
				}
				time.Sleep(200 * time.Millisecond)
			}
			return false
		}
	}
	var tok string

	check("readyz", func() bool {
		out, _, err := k("", false, "get", "--raw", "/readyz")
		return err == nil && hasLine(out, "ok")
	})
	check("Flux kinds served", func() bool {
		out, _, _ := k("", false, "api-resources")
		return countLines(out, "toolkit.fluxcd.io") >= 13
	})
	setup("create", "namespace", ns)
	setup("-n", ns, "create", "configmap", "owner")
	uid := setup("-n", ns, "get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}")
	dependent := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: "%s"}]
`, uid)
	if _, _, err := k(dependent, true, "-n", ns, "apply", "-f", "-"); err != nil {
		h.die("kubectl apply of the dependent ConfigMap failed")
	}
	setup("-n", ns, "delete", "configmap", "owner")
	check("garbage collector deletes dependents", gone(30, "-n", ns, "configmap", "dependent"))
	setup("-n", ns, "create", "serviceaccount", "tester")
	tok = setup("-n", ns, "create", "token", "tester", "--duration=10m")
	tok = strings.TrimRight(tok, "\n")
	check("TokenRequest token authenticates", func() bool {
		out, _, err := k("", false, "auth", "whoami", "--token="+tok, "-o", "jsonpath={.status.userInfo.username}")
		return err == nil && hasLine(out, "system:serviceaccount:"+ns+":tester")
	})
	check("RBAC denies the ServiceAccount", func() bool {
		out, errOut, _ := k("", false, "--token="+tok, "-n", ns, "get", "secrets")
		return strings.Contains(out+errOut, "Forbidden")
	})
	setup("delete", "namespace", ns, "--wait=false")
	check("namespace deletion completes", gone(60, "namespace", ns))
	fmt.Fprintf(h.stdout, "selftest: %d passed, %d failed\n", pass, fail)
	if fail > 0 {
		return 1
	}
	return 0
}
