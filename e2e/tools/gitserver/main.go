// gitserver: a Git host for fluxtune's e2e tests, on loopback, over smart
// HTTP (git's own `git http-backend` as CGI, so clone, fetch and push behave
// like on any Git host), with GitHub-style push webhooks.
//
//	gitserver --root DIR --addr 127.0.0.1:PORT
//
// Repositories are the bare repositories under --root: http://ADDR/NAME.git
// serves DIR/NAME.git. Create one with `git init --bare DIR/NAME.git`; pushes
// need no credentials.
//
// Webhooks: after every successful push to a repository, for each value of
// its multi-valued git config key `fluxtune.webhook` ("URL TOKEN"), gitserver
// POSTs one GitHub `push` event per updated branch or tag to URL, signed like
// GitHub does with TOKEN (X-Hub-Signature-256: sha256=HMAC-SHA256(body)).
// Add one with: git -C DIR/NAME.git config --add fluxtune.webhook "URL TOKEN".
// Every delivery is logged with its HTTP status; GET /healthz answers "ok".
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

var (
	root    = flag.String("root", "", "directory holding the bare repositories (NAME.git)")
	addr    = flag.String("addr", "127.0.0.1:0", "listen address")
	backend = flag.String("http-backend", "", "path of git-http-backend (default: $(git --exec-path)/git-http-backend)")

	// /NAME.git/info/refs, /NAME.git/git-receive-pack ...: NAME may contain slashes.
	repoPath = regexp.MustCompile(`^/(.+?\.git)(/.*)$`)
	// One push at a time per repository, so refs before/after belong to it.
	locks sync.Map
)

func main() {
	flag.Parse()
	if *root == "" {
		log.Fatal("--root is required")
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	*root = abs
	if *backend == "" {
		out, err := exec.Command("git", "--exec-path").Output()
		if err != nil {
			log.Fatalf("git --exec-path: %v", err)
		}
		*backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(*backend); err != nil {
		log.Fatalf("git-http-backend: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving %s on http://%s/", *root, ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", serveGit)
	log.Fatal(http.Serve(ln, mux))
}

func serveGit(w http.ResponseWriter, r *http.Request) {
	m := repoPath.FindStringSubmatch(r.URL.Path)
	if m == nil || strings.Contains(m[1], "..") {
		http.NotFound(w, r)
		return
	}
	repo := filepath.Join(*root, filepath.FromSlash(m[1]))
	if _, err := os.Stat(filepath.Join(repo, "HEAD")); err != nil {
		log.Printf("%s %s: no repository %s", r.Method, r.URL.Path, repo)
		http.NotFound(w, r)
		return
	}
	h := &cgi.Handler{
		Path: *backend,
		Dir:  repo,
		Env: []string{
			"GIT_PROJECT_ROOT=" + *root,
			"GIT_HTTP_EXPORT_ALL=1",
			// http-backend enables receive-pack for authenticated users only.
			"REMOTE_USER=fluxtune-e2e",
			"GIT_COMMITTER_NAME=gitserver",
			"GIT_COMMITTER_EMAIL=gitserver@fluxtune.local",
		},
	}
	if m[2] != "/git-receive-pack" {
		h.ServeHTTP(w, r)
		return
	}
	mu, _ := locks.LoadOrStore(repo, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	before := refs(repo)
	h.ServeHTTP(w, r)
	after := refs(repo)
	log.Printf("push to %s", m[1])
	for ref, sha := range after {
		if before[ref] != sha {
			notify(repo, m[1], r, ref, before[ref], sha)
		}
	}
}

// refs maps every branch and tag of repo to its commit.
func refs(repo string) map[string]string {
	out, err := exec.Command("git", "-C", repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags").Output()
	if err != nil {
		log.Printf("for-each-ref in %s: %v", repo, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if ref, sha, ok := strings.Cut(l, " "); ok {
			m[ref] = sha
		}
	}
	return m
}

func notify(repo, name string, r *http.Request, ref, before, after string) {
	out, _ := exec.Command("git", "-C", repo, "config", "--get-all", "fluxtune.webhook").Output()
	hooks := strings.Fields(string(out))
	if len(hooks) == 0 {
		return
	}
	if before == "" {
		before = strings.Repeat("0", 40)
	}
	url := "http://" + r.Host + "/" + name
	body, _ := json.Marshal(map[string]any{
		"ref":     ref,
		"before":  before,
		"after":   after,
		"created": before == strings.Repeat("0", 40),
		"repository": map[string]any{
			"name":      strings.TrimSuffix(filepath.Base(name), ".git"),
			"full_name": strings.TrimSuffix(name, ".git"),
			"clone_url": url,
			"html_url":  url,
		},
		"head_commit": map[string]any{"id": after},
	})
	delivery := make([]byte, 16)
	rand.Read(delivery)
	for i := 0; i+1 < len(hooks); i += 2 {
		target, token := hooks[i], hooks[i+1]
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			log.Printf("webhook %s: %v", target, err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "GitHub-Hookshot/fluxtune-e2e")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", hex.EncodeToString(delivery))
		req.Header.Set("X-Hub-Signature-256", "sha256="+sign(sha256.New, token, body))
		req.Header.Set("X-Hub-Signature", "sha1="+sign(sha1.New, token, body))
		t0 := time.Now()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			log.Printf("webhook %s %s -> %s: %v", ref, after[:12], target, err)
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		log.Printf("webhook %s %s -> %s: %s in %s %s", ref, after[:12], target, resp.Status,
			time.Since(t0).Round(time.Millisecond), strings.TrimSpace(string(msg)))
	}
}

func sign(h func() hash.Hash, token string, body []byte) string {
	mac := hmac.New(h, []byte(token))
	mac.Write(body)
	return fmt.Sprintf("%x", mac.Sum(nil))
}
