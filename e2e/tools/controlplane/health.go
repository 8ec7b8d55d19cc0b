package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// httpGet fetches url as `curl -sf --max-time T` did: an error for a status of 400 or more,
// redirects not followed.
func httpGet(client *http.Client, url string, header http.Header) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(client, req)
}

func httpPost(url, body string, timeout time.Duration) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return do(newClient(timeout, nil), req)
}

func do(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return body, fmt.Errorf("%s %s: %s", req.Method, req.URL, resp.Status)
	}
	return body, nil
}

func newClient(timeout time.Duration, tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// A fresh connection per check: a component restarted on the same port must be asked anew.
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true, Proxy: nil},
	}
}

// httpOK: url answers below 400 within 2 s (the Flux controllers' /readyz, the Git host's
// /healthz, the registry's /v2/).
func httpOK(url string) func() bool {
	client := newClient(2*time.Second, nil)
	return func() bool {
		_, err := httpGet(client, url, nil)
		return err == nil
	}
}

// etcdHealthy: etcd on port reports itself healthy.
func etcdHealthy(port int) func() bool {
	client := newClient(2*time.Second, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	return func() bool {
		body, err := httpGet(client, url, nil)
		return err == nil && bytes.Contains(body, []byte(`"health":"true"`))
	}
}

// apiserverReady: the API server on port answers /readyz with "ok" to the admin, over TLS
// verified against the CA.
func apiserverReady(port int, caFile, token string) func() bool {
	return func() bool {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			return false
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return false
		}
		client := newClient(2*time.Second, &tls.Config{RootCAs: pool})
		body, err := httpGet(client, fmt.Sprintf("https://127.0.0.1:%d/readyz", port),
			http.Header{"Authorization": {"Bearer " + token}})
		return err == nil && hasLine(string(body), "ok")
	}
}

// hasLine: some line of text is exactly want (grep -qx).
func hasLine(text, want string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == want {
			return true
		}
	}
	return false
}
