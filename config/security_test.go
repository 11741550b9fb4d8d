package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/internal/testcert"
)

// TestSecretFiles: the *_FILE variables read secrets from files, trimmed; a
// missing or empty file, or both a variable and its *_FILE twin, is an error
// from Validate naming the variable.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	admin := write("admin", "admin-from-file\n")
	viewer := write("viewer", "  viewer-from-file  \n")
	keys := write("keys", "k1\nk2, k3\n\n")
	empty := write("empty", "\n")
	tests := []struct {
		name    string
		env     map[string]string
		admin   string
		viewer  string
		keys    []string
		wantErr string
	}{
		{name: "files", env: map[string]string{EnvAdminTokenFile: admin, EnvViewerTokenFile: viewer, EnvWriteKeysFile: keys},
			admin: "admin-from-file", viewer: "viewer-from-file", keys: []string{"k1", "k2", "k3"}},
		{name: "keys from a variable and a file", env: map[string]string{EnvWriteKeysFile: keys, EnvWriteKeys: "k0"},
			wantErr: "$TESSERA_WRITE_KEYS and $TESSERA_WRITE_KEYS_FILE are both set"},
		{name: "both set", env: map[string]string{EnvAdminTokenFile: admin, EnvAdminToken: "x"},
			wantErr: "$TESSERA_ADMIN_TOKEN and $TESSERA_ADMIN_TOKEN_FILE are both set"},
		{name: "missing file", env: map[string]string{EnvAdminTokenFile: filepath.Join(dir, "nope")},
			wantErr: "reading $TESSERA_ADMIN_TOKEN_FILE"},
		{name: "empty file", env: map[string]string{EnvViewerTokenFile: empty},
			wantErr: "$TESSERA_VIEWER_TOKEN_FILE: " + empty + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.ApplyEnv(func(k string) string { return tt.env[k] })
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.API.AdminToken != tt.admin || c.API.ViewerToken != tt.viewer || strings.Join(c.Ingest.WriteKeys, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("got admin %q viewer %q keys %v", c.API.AdminToken, c.API.ViewerToken, c.Ingest.WriteKeys)
			}
		})
	}
}

// TestSecurityValidation: kafka.tls, kafka.sasl, http.tls and
// ingest.rate_limit are checked, each error naming its key and line.
func TestSecurityValidation(t *testing.T) {
	tests := []struct {
		yaml string
		want string // "" for valid
	}{
		{"kafka:\n  sasl: {mechanism: SCRAM-SHA-256, username: u, password_env: P}\n", ""},
		{"kafka:\n  brokers: [k:9093]\n  sasl: {mechanism: PLAIN, username: u, password_file: /run/secrets/p}\n  tls: {enabled: true}\n", ""},
		{"kafka:\n  tls: {enabled: true}\n", "kafka.tls: the embedded broker does not speak TLS"},
		{"kafka:\n  sasl: {mechanism: SCRAM-SHA-1, username: u, password_env: P}\n", `kafka.sasl.mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "SCRAM-SHA-1"`},
		{"kafka:\n  sasl: {mechanism: PLAIN, password_env: P}\n", "kafka.sasl: username is required"},
		{"kafka:\n  sasl: {mechanism: PLAIN, username: u}\n", "kafka.sasl: needs exactly one of password_env and password_file"},
		{"kafka:\n  sasl: {mechanism: PLAIN, username: u, password_env: P, password_file: f}\n", "needs exactly one of password_env and password_file"},
		{"kafka:\n  sasl: {username: u, password_env: P}\n", "kafka.sasl: mechanism must be set"},
		{"kafka:\n  sasl: {mechanism: PLAIN, username: u, password: hunter2}\n", `unknown key "kafka.sasl.password"`},
		{"kafka:\n  tls: {ca_file: ca.pem}\n", "kafka.tls: enabled must be true"},
		{"kafka:\n  brokers: [k:9093]\n  tls: {enabled: true, cert_file: c.pem}\n", "kafka.tls: cert_file and key_file go together"},
		{"http:\n  tls: {key_file: k.pem}\n", "http.tls: cert_file and key_file go together"},
		{"http:\n  tls: {ca_file: ca.pem}\n", "http.tls: ca_file needs cert_file and key_file"},
		{"ingest:\n  rate_limit: {events_per_second: 100, burst: 500}\n", ""},
		{"ingest:\n  rate_limit: {events_per_second: -1}\n", "ingest.rate_limit.events_per_second: must be 0 (off) or positive"},
		{"ingest:\n  rate_limit: {burst: 10}\n", "ingest.rate_limit: events_per_second must be set when burst is"},
		{"ingest:\n  rate_limit: {events_per_second: 100, burst: 10}\n", "ingest.rate_limit.burst: must be at least events_per_second (100), got 10"},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml), "tessera.yaml")
		if err == nil {
			err = c.Validate()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.yaml, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: got %v, want an error with %q", tt.yaml, err, tt.want)
		case tt.want != "" && !strings.HasPrefix(err.Error(), "tessera.yaml:"):
			t.Errorf("%q: error %q has no position", tt.yaml, err)
		}
	}
}

func TestFileEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"A": "from-env", "A_FILE": secret, "B_FILE": secret, "C_FILE": "/nonexistent"}
	getenv := FileEnv(func(k string) string { return env[k] })
	for name, want := range map[string]string{"A": "from-env", "B": "from-file", "C": "", "D": ""} {
		if got := getenv(name); got != want {
			t.Errorf("FileEnv(%s) = %q, want %q", name, got, want)
		}
	}
}

// TestHTTPTLSCAFile: http.tls.ca_file needs cert_file, and must be a PEM file of
// certificates that all parse; each mistake is an error naming the key, with its line,
// so that it stops the start rather than every call between instances.
func TestHTTPTLSCAFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := testcert.New(t, "tessera test CA")
	good := write("ca.pem", append(append([]byte("# the test CA\n"), ca.CertPEM...), ca.CertPEM...))
	key := write("key.pem", ca.KeyPEM)
	garbage := write("garbage.pem", []byte("not a certificate\n"))
	truncated := write("truncated.pem", ca.CertPEM[:len(ca.CertPEM)/2])
	corrupt := write("corrupt.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))
	tests := []struct {
		name   string
		caFile string
		noCert bool   // leave cert_file and key_file out
		want   string // "" for valid
	}{
		{name: "valid", caFile: good},
		{name: "without cert_file", caFile: good, noCert: true, want: "http.tls: ca_file needs cert_file and key_file"},
		{name: "missing", caFile: filepath.Join(dir, "nope.pem"), want: "http.tls.ca_file: reading the CA certificates: open " + filepath.Join(dir, "nope.pem")},
		{name: "not PEM", caFile: garbage, want: "http.tls.ca_file: " + garbage + " holds no PEM certificate"},
		{name: "a key", caFile: key, want: "http.tls.ca_file: " + key + ": PEM block 1 is a EC PRIVATE KEY, not a CERTIFICATE"},
		{name: "truncated", caFile: truncated, want: "http.tls.ca_file: " + truncated + ": PEM block 1 does not decode"},
		{name: "not a certificate", caFile: corrupt, want: "http.tls.ca_file: " + corrupt + ": parsing PEM block 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := fmt.Sprintf("http:\n  tls:\n    ca_file: %q\n", tt.caFile)
			if !tt.noCert {
				yaml += "    cert_file: c.pem\n    key_file: k.pem\n"
			}
			c, err := Parse([]byte(yaml), "tessera.yaml")
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			case tt.want != "" && !strings.HasPrefix(err.Error(), "tessera.yaml:"):
				t.Fatalf("error %q has no position", err)
			}
			if tt.want != "" {
				return
			}
			pool, err := c.HTTP.TLS.RootCAs()
			if err != nil || pool == nil {
				t.Fatalf("RootCAs = %v, %v; want the CA's pool", pool, err)
			}
			if _, err := ca.TLS.Leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Errorf("the pool does not trust the CA: %v", err)
			}
		})
	}
	// Without ca_file the calls trust the system's roots: a nil pool.
	if pool, err := (HTTPTLS{CertFile: "c.pem", KeyFile: "k.pem"}).RootCAs(); pool != nil || err != nil {
		t.Errorf("RootCAs without ca_file = %v, %v; want nil, nil", pool, err)
	}
}
