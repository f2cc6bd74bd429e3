package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for the longest benchmark run and short enough
// that a leaked run directory holds nothing of lasting value.
const certValidity = 7 * 24 * time.Hour

// pkiFiles are the paths of everything the control plane reads, all inside the
// run directory. Each run gets its own CAs, so nothing a test trusts survives it.
type pkiFiles struct {
	caCert string
	caKey  string

	serverCert string
	serverKey  string

	frontProxyCACert    string
	frontProxyClientCrt string
	frontProxyClientKey string

	// The service-account pair: the apiserver signs tokens with the private
	// key and verifies them with the public one; kube-controller-manager
	// signs the tokens of its per-controller service accounts.
	saKey string
	saPub string

	caPEM []byte

	admin             clientCert
	controllerManager clientCert
	scheduler         clientCert
}

// clientCert is a client identity, kept in memory so that kubeconfigs can
// embed it.
type clientCert struct {
	certPEM []byte
	keyPEM  []byte
}

type certAuthority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// ECDSA P-256 rather than RSA: generating a dozen RSA keys per run costs
// seconds on a small machine, and every component accepts EC keys.
func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(commonName string) (*certAuthority, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key, certPEM: encodeCert(der)}, nil
}

// issue signs a leaf certificate. A certificate with IP or DNS names is a
// serving certificate, otherwise a client one.
func (ca *certAuthority) issue(subject pkix.Name, ips []net.IP, dnsNames []string) (certPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		DNSNames:     dnsNames,
	}
	if len(ips) > 0 || len(dnsNames) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// generatePKI creates every key and certificate of one run under dir/pki.
// serviceIP is the first address of the service range: in-cluster clients
// reach the apiserver through the kubernetes Service and check that name.
func generatePKI(dir string, serviceIP net.IP) (*pkiFiles, error) {
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, err
	}
	p := &pkiFiles{
		caCert:              filepath.Join(pkiDir, "ca.crt"),
		caKey:               filepath.Join(pkiDir, "ca.key"),
		serverCert:          filepath.Join(pkiDir, "apiserver.crt"),
		serverKey:           filepath.Join(pkiDir, "apiserver.key"),
		frontProxyCACert:    filepath.Join(pkiDir, "front-proxy-ca.crt"),
		frontProxyClientCrt: filepath.Join(pkiDir, "front-proxy-client.crt"),
		frontProxyClientKey: filepath.Join(pkiDir, "front-proxy-client.key"),
		saKey:               filepath.Join(pkiDir, "sa.key"),
		saPub:               filepath.Join(pkiDir, "sa.pub"),
	}

	ca, err := newCA("haagent-e2e-ca")
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	p.caPEM = ca.certPEM
	caKeyPEM, err := encodeKey(ca.key)
	if err != nil {
		return nil, err
	}

	serverCert, serverKey, err := ca.issue(
		pkix.Name{CommonName: "kube-apiserver"},
		[]net.IP{net.IPv4(127, 0, 0, 1), serviceIP},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	)
	if err != nil {
		return nil, fmt.Errorf("apiserver serving certificate: %w", err)
	}

	// Each component gets the identity that the bootstrap RBAC policy grants
	// its permissions to, so the tests run under the same authorization as a
	// real cluster; only the test itself is system:masters.
	clients := []struct {
		dst     *clientCert
		subject pkix.Name
	}{
		{&p.admin, pkix.Name{CommonName: "haagent-e2e-admin", Organization: []string{"system:masters"}}},
		{&p.controllerManager, pkix.Name{CommonName: "system:kube-controller-manager"}},
		{&p.scheduler, pkix.Name{CommonName: "system:kube-scheduler"}},
	}
	for _, c := range clients {
		certPEM, keyPEM, err := ca.issue(c.subject, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", c.subject.CommonName, err)
		}
		*c.dst = clientCert{certPEM: certPEM, keyPEM: keyPEM}
	}

	// The aggregation layer authenticates itself with a certificate from a
	// separate CA; the apiserver trusts request headers only from it.
	frontProxyCA, err := newCA("haagent-e2e-front-proxy-ca")
	if err != nil {
		return nil, fmt.Errorf("front-proxy CA: %w", err)
	}
	proxyCert, proxyKey, err := frontProxyCA.issue(pkix.Name{CommonName: "front-proxy-client"}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("front-proxy client certificate: %w", err)
	}

	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := encodeKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	saPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})

	files := []struct {
		path string
		data []byte
	}{
		{p.caCert, ca.certPEM},
		{p.caKey, caKeyPEM},
		{p.serverCert, serverCert},
		{p.serverKey, serverKey},
		{p.frontProxyCACert, frontProxyCA.certPEM},
		{p.frontProxyClientCrt, proxyCert},
		{p.frontProxyClientKey, proxyKey},
		{p.saKey, saKeyPEM},
		{p.saPub, saPubPEM},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}
