package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The files of DIR that callers read (e2e/throwaway.sh, the Rust e2e tests, helm-check.sh ...):
//
//	DIR/kubeconfig   the admin's kubeconfig (token in system:masters)
//	DIR/env          `export NAME=VALUE` lines, sourced by callers; flux-up appends lines
//	                 ending in " # flux", which flux-down removes
//	DIR/ports        etcd's and the API server's ports, for `start DIR apiserver|etcd`
//	DIR/pids         "NAME PID" per started process, in start order
//	DIR/logs/NAME.log, DIR/pki/, DIR/etcd/, DIR/flux/

// kubeconfig is DIR/kubeconfig's content: the API server on 127.0.0.1:port, trusted through
// the CA, and the admin's token.
func kubeconfig(apiPort int, caPEM []byte, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: fluxtune-e2e
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: fluxtune-admin
  user:
    token: %s
contexts:
- name: fluxtune-e2e
  context:
    cluster: fluxtune-e2e
    user: fluxtune-admin
current-context: fluxtune-e2e
`, apiPort, base64.StdEncoding.EncodeToString(caPEM), token)
}

// envVar is one line of DIR/env.
type envVar struct{ name, value string }

// envLines renders vars as DIR/env lines: `export NAME=VALUE`, VALUE quoted for bash, each line
// followed by suffix (" # flux" marks the lines flux-down removes).
func envLines(vars []envVar, suffix string) string {
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s%s\n", v.name, shellQuote(v.value), suffix)
	}
	return b.String()
}

// shellQuote quotes s for bash as `printf %q` does for the values written here: as is when
// nothing in it is special, each special byte backslash-escaped otherwise, and $'...' when it
// holds control characters (a backslash-newline would be a line continuation).
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ansiQuote(s)
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		// bash escapes ~ and # only where they would start a word.
		if !safeShellByte(c) && !(i > 0 && (c == '~' || c == '#')) {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func safeShellByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("_./:@%+=-", c) >= 0 || c >= 0x80
}

func ansiQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// shellUnquote undoes shellQuote (and bash's %q for the same values): backslash escapes,
// '...', and $'...'.
func shellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated quote in %q", s)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '$' && i+1 < len(s) && s[i+1] == '\'':
			i += 2
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] != '\\' || i+1 >= len(s) {
					b.WriteByte(s[i])
					continue
				}
				i++
				switch e := s[i]; e {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case '0', '1', '2', '3':
					if i+2 < len(s) {
						if v, err := strconv.ParseUint(s[i:i+3], 8, 8); err == nil {
							b.WriteByte(byte(v))
							i += 2
							continue
						}
					}
					b.WriteByte(e)
				default:
					b.WriteByte(e)
				}
			}
			if i >= len(s) {
				return "", fmt.Errorf("unterminated $' quote in %q", s)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// readEnvFile reads DIR/env's `export NAME=VALUE` lines as NAME=VALUE pairs, as sourcing it
// would set them.
func readEnvFile(path string) ([]envVar, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vars []envVar
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSuffix(s.Text(), " # flux")
		rest, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		name, quoted, ok := strings.Cut(rest, "=")
		if !ok {
			continue
		}
		value, err := shellUnquote(quoted)
		if err != nil {
			return nil, err
		}
		vars = append(vars, envVar{name, value})
	}
	return vars, s.Err()
}

// removeFluxLines drops the lines flux-up appended to DIR/env.
func removeFluxLines(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasSuffix(strings.TrimSuffix(l, "\n"), " # flux") {
			kept = append(kept, l)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(kept, "")), 0o644)
}

// portsFile is DIR/ports: what `start DIR etcd|apiserver` needs to bring a component back as
// it was (the kubeconfigs name the API server's port, the API server etcd's).
func portsFile(etcd, etcdPeer, api int) string {
	return fmt.Sprintf("ETCD_PORT=%d\nETCD_PEER_PORT=%d\nAPI_PORT=%d\n", etcd, etcdPeer, api)
}

func readPortsFile(dir string) (etcd, etcdPeer, api int, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "ports"))
	if err != nil {
		return 0, 0, 0, err
	}
	vals := map[string]int{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				vals[k] = n
			}
		}
	}
	etcd, etcdPeer, api = vals["ETCD_PORT"], vals["ETCD_PEER_PORT"], vals["API_PORT"]
	if etcd == 0 || etcdPeer == 0 || api == 0 {
		return 0, 0, 0, fmt.Errorf("%s: a port is missing", filepath.Join(dir, "ports"))
	}
	return etcd, etcdPeer, api, nil
}
