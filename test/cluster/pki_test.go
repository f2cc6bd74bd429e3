package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"
)

func TestGeneratePKI_chains(t *testing.T) {
	p, err := generatePKI(t.TempDir(), net.IPv4(10, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.caPEM) {
		t.Fatal("CA certificate does not parse")
	}

	server, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatalf("apiserver key pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "10.0.0.1", "localhost", "kubernetes.default.svc"} {
		opts := x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("apiserver certificate for %s: %v", name, err)
		}
	}

	tests := []struct {
		name      string
		cert      clientCert
		wantCN    string
		wantGroup string
	}{
		{"admin", p.admin, "haagent-e2e-admin", "system:masters"},
		{"controller manager", p.controllerManager, "system:kube-controller-manager", ""},
		{"scheduler", p.scheduler, "system:kube-scheduler", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tls.X509KeyPair(tc.cert.certPEM, tc.cert.keyPEM); err != nil {
				t.Fatalf("key pair: %v", err)
			}
			block, _ := pem.Decode(tc.cert.certPEM)
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client certificate does not verify: %v", err)
			}
			if c.Subject.CommonName != tc.wantCN {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.wantCN)
			}
			if tc.wantGroup != "" && (len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != tc.wantGroup) {
				t.Errorf("O = %v, want [%s]", c.Subject.Organization, tc.wantGroup)
			}
		})
	}

	// The front-proxy client must chain to the front-proxy CA only.
	fpPEM, err := os.ReadFile(p.frontProxyCACert)
	if err != nil {
		t.Fatal(err)
	}
	fpRoots := x509.NewCertPool()
	fpRoots.AppendCertsFromPEM(fpPEM)
	fp, err := tls.LoadX509KeyPair(p.frontProxyClientCrt, p.frontProxyClientKey)
	if err != nil {
		t.Fatal(err)
	}
	fpLeaf, _ := x509.ParseCertificate(fp.Certificate[0])
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, err := fpLeaf.Verify(x509.VerifyOptions{Roots: fpRoots, KeyUsages: usage}); err != nil {
		t.Errorf("front-proxy client vs front-proxy CA: %v", err)
	}
	if _, err := fpLeaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: usage}); err == nil {
		t.Error("front-proxy client verifies against the cluster CA; want separate CAs")
	}

	for _, f := range []string{p.saKey, p.saPub} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if block, _ := pem.Decode(data); block == nil {
			t.Errorf("%s is not PEM", f)
		}
	}
}
