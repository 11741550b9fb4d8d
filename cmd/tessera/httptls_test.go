package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/internal/testcert"
)

// TestHTTPTLS runs the hub with http.tls set to a self-signed certificate:
// HTTPS with that certificate serves /readyz and the API; plain HTTP on the
// same port gets no answer from the API.
func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedFiles(t, dir)
	t.Setenv(config.EnvAdminToken, "tls-admin-token")
	file := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(file, []byte("kafka: {partitions: 1}\nhttp:\n  tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(file, config.Overrides{Data: filepath.Join(dir, "data"), HTTPListen: "127.0.0.1:0", BrokerListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startHub(t, cfg, dir, "https")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if resp.TLS == nil {
					t.Fatal("/readyz answered without TLS")
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz over HTTPS never answered 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	req, _ := http.NewRequest("GET", base+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer tls-admin-token")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("whoami over HTTPS: %v %v", err, resp)
	}
	resp.Body.Close()

	// `tessera profile` follows http.tls: HTTPS, trusting the configured certificate.
	profileCmd := newProfileCmd()
	profileCmd.SetArgs([]string{"get", "user_id:nobody", "-c", file, "--http", strings.TrimPrefix(base, "https://")})
	profileCmd.SetOut(io.Discard)
	profileCmd.SetErr(io.Discard)
	if err := profileCmd.Execute(); err == nil || !strings.Contains(err.Error(), "no profile has identifier user_id:nobody") {
		t.Errorf("tessera profile get over HTTPS: %v, want the API's 404", err)
	}

	plain := "http://" + strings.TrimPrefix(base, "https://")
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(plain + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was answered 200 by a server configured for TLS")
		}
	}
	// A client that does not trust the certificate is refused.
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/readyz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusting client got %v, want a certificate error", err)
	}
}

func TestHTTPTLSConfigErrors(t *testing.T) {
	bin := buildTessera(t)
	dir := t.TempDir()
	tests := []struct{ name, yaml, want string }{
		{"cert without key", "http:\n  tls: {cert_file: c.pem}\n", "http.tls: cert_file and key_file go together"},
		{"missing files", "http:\n  tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n", "loading http.tls cert_file and key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(f, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out := waitExit(t, osexec.Command(bin, "run", "-c", f, "--data", t.TempDir(), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"))
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, out)
			}
		})
	}
}

// selfSignedFiles writes a self-signed certificate for 127.0.0.1 and its key
// under dir, and returns their paths and a pool that trusts the certificate.
func selfSignedFiles(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	c := testcert.New(t, "tessera test")
	certFile, keyFile = c.WriteFiles(t, dir, "http")
	return certFile, keyFile, c.Pool
}
