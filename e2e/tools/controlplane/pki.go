package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The admin's identity in tokens.csv: a user in system:masters, which bypasses RBAC; everyone
// else (the operator's ServiceAccount, the selftest's) goes through RBAC.
const (
	adminUser  = "fluxtune-admin"
	adminGroup = "system:masters"
)

// genPKI writes a throwaway PKI into dir (DIR/pki) and returns the admin's bearer token:
//
//	ca.crt, ca.key                the CA the kubeconfig trusts
//	apiserver.crt, apiserver.key  the API server's serving certificate, for 127.0.0.1 and localhost
//	sa.key, sa.pub                the key that signs ServiceAccount tokens (TokenRequest API)
//	tokens.csv                    the admin's token (--token-auth-file)
//
// P-256 keys: RSA generation would cost about a second per `up`. Private keys are PKCS#8,
// as openssl wrote them.
func genPKI(dir string) (token string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	// Explicit v3 extensions, because rustls (kube-rs) rejects certificates without them.
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fluxtune-e2e-ca"},
		NotBefore:             now,
		NotAfter:              now.AddDate(0, 0, 30),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:             now,
		NotAfter:              now.AddDate(0, 0, 30),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	// One key signs and verifies ServiceAccount tokens. The apiserver gets its public half as
	// --service-account-key-file: that flag does not accept a PKCS#8 EC private key.
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return "", err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return "", err
	}
	token = hex.EncodeToString(tok)

	files := []pkiFile{
		{"ca.crt", pemBlock("CERTIFICATE", caDER), 0o644},
		{"apiserver.crt", pemBlock("CERTIFICATE", srvDER), 0o644},
		{"sa.pub", pemBlock("PUBLIC KEY", saPub), 0o644},
		// Secrets: 0600.
		{"tokens.csv", []byte(token + "," + adminUser + "," + adminUser + "," + adminGroup + "\n"), 0o600},
	}
	for _, k := range []struct {
		name string
		key  *ecdsa.PrivateKey
	}{{"ca.key", caKey}, {"apiserver.key", srvKey}, {"sa.key", saKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return "", err
		}
		files = append(files, pkiFile{k.name, pemBlock("PRIVATE KEY", der), 0o600})
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return "", err
		}
		// WriteFile keeps the mode of an existing file; up starts from an empty pki/ anyway.
		if err := os.Chmod(p, f.mode); err != nil {
			return "", err
		}
	}
	return token, nil
}

type pkiFile struct {
	name string
	data []byte
	mode os.FileMode
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
