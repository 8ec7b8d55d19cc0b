package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readPEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != typ || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s: want one PEM block %q", path, typ)
	}
	return b.Bytes
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(readPEM(t, path, "CERTIFICATE"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	token, err := genPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	srv := readCert(t, filepath.Join(dir, "apiserver.crt"))

	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.Subject.CommonName != "fluxtune-e2e-ca" {
		t.Errorf("CA: IsCA %v, key usage %b, CN %q", ca.IsCA, ca.KeyUsage, ca.Subject.CommonName)
	}
	// rustls (kube-rs) wants explicit v3 extensions: CA:FALSE, a key usage, serverAuth.
	if srv.IsCA || !srv.BasicConstraintsValid || srv.KeyUsage != x509.KeyUsageDigitalSignature ||
		len(srv.ExtKeyUsage) != 1 || srv.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || srv.Subject.CommonName != "kube-apiserver" {
		t.Errorf("serving cert: IsCA %v, key usage %b, EKU %v, CN %q", srv.IsCA, srv.KeyUsage, srv.ExtKeyUsage, srv.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the serving cert does not verify for %s against the CA: %v", host, err)
		}
	}
	if len(srv.IPAddresses) != 1 || !srv.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || strings.Join(srv.DNSNames, ",") != "localhost" {
		t.Errorf("SANs: %v %v", srv.IPAddresses, srv.DNSNames)
	}
	if _, err := srv.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots}); err == nil {
		t.Error("the serving cert verifies for example.com")
	}
	if d := time.Until(srv.NotAfter); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("the serving cert is valid for %v, want 30 days", d)
	}

	// Each private key is PKCS#8 P-256 and belongs to its certificate or public key.
	key := func(name string) *ecdsa.PrivateKey {
		k, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(dir, name), "PRIVATE KEY"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok || ec.Curve.Params().Name != "P-256" {
			t.Fatalf("%s: not a P-256 key", name)
		}
		return ec
	}
	if !key("ca.key").PublicKey.Equal(ca.PublicKey) || !key("apiserver.key").PublicKey.Equal(srv.PublicKey) {
		t.Error("a key does not match its certificate")
	}
	saPub, err := x509.ParsePKIXPublicKey(readPEM(t, filepath.Join(dir, "sa.pub"), "PUBLIC KEY"))
	if err != nil || !key("sa.key").PublicKey.Equal(saPub) {
		t.Errorf("sa.pub is not sa.key's public key (%v)", err)
	}

	// The admin: token, user, uid, group, which the API server reads as --token-auth-file.
	tokens, err := os.ReadFile(filepath.Join(dir, "tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := token + ",fluxtune-admin,fluxtune-admin,system:masters\n"; string(tokens) != want || len(token) != 48 {
		t.Errorf("tokens.csv = %q, want %q (a 48-hex-digit token)", tokens, want)
	}
	for _, f := range []string{"ca.key", "apiserver.key", "sa.key", "tokens.csv"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	// Another run, another CA and token.
	token2, err := genPKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil || token2 == token {
		t.Errorf("a second PKI has the same token (%v)", err)
	}
}
