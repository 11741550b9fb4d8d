package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// saslConfig writes a tessera.yaml that logs in to Kafka with SCRAM-SHA-256 as
// user hub, the password in $HUB_KAFKA_PASSWORD.
func saslConfig(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tessera.yaml")
	if err := os.WriteFile(f, []byte(`
kafka:
  partitions: 2
  sasl:
    mechanism: SCRAM-SHA-256
    username: hub
    password_env: HUB_KAFKA_PASSWORD
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSCRAMOverTLSEndToEnd: `tessera broker` speaks only TLS and requires
// SCRAM-SHA-256; `tessera run` with kafka.tls and kafka.sasl ingests events,
// serves the profile they make, delivers the audience entry to a webhook and
// writes the audit record of an admin action: every Kafka client of the hub
// (topology, definitions, ingest, destinations, audit) got through.
func TestSCRAMOverTLSEndToEnd(t *testing.T) {
	bin := buildTessera(t)
	dir := t.TempDir()
	cert, key, _ := selfSignedFiles(t, dir)
	b := startProc(t, bin, []string{"BROKER_PASSWORD=scram-secret"}, "broker", "--listen", "127.0.0.1:0", "--data", "",
		"--tls-cert-file", cert, "--tls-key-file", key,
		"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "hub", "--sasl-password-env", "BROKER_PASSWORD")
	brokerAddr := b.await(t, "broker listening on ")
	go drain(b)

	var mu sync.Mutex
	var delivered []string
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		delivered = append(delivered, string(body))
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfg, []byte(`
kafka:
  partitions: 2
  tls: {enabled: true, ca_file: `+cert+`}
  sasl: {mechanism: SCRAM-SHA-256, username: hub, password_env: HUB_KAFKA_PASSWORD}
features:
  - {name: signups_1h, event: Signed Up, agg: count, window: 1h}
audiences:
  - {name: signed_up, rule: "features.signups_1h >= 1", destinations: [hook]}
destinations:
  - name: hook
    type: webhook
    url: `+hook.URL+`
    secret_env: HOOK_SECRET
    delivery: {backoff_min: 10ms, backoff_max: 100ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, bin, []string{"HUB_KAFKA_PASSWORD=scram-secret", "HOOK_SECRET=hook-secret", "TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk"},
		"run", "-c", cfg, "--brokers", brokerAddr, "--data", t.TempDir(), "--http", "127.0.0.1:0")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	for _, ev := range []struct{ path, body string }{
		{"/v1/identify", `{"userId":"scram-1","traits":{"email":"s@example.com"}}`},
		{"/v1/track", `{"userId":"scram-1","event":"Signed Up"}`},
	} {
		sendSegment(t, base, ev.path, ev.body)
	}
	code, body := postAuth(t, base+"/v1/audiences/preview", "tok", `{"rule":"true"}`)
	if code != 200 {
		t.Fatalf("audience preview: %d %s", code, body)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		code, body := getAuth(t, base+"/v1/profiles/email:s@example.com", "tok")
		mu.Lock()
		entered := slices.ContainsFunc(delivered, func(d string) bool {
			return strings.Contains(d, "audience_entered") && strings.Contains(d, "signed_up")
		})
		mu.Unlock()
		metrics := get(t, base+"/metrics")
		if code == 200 && strings.Contains(body, "scram-1") && entered &&
			strings.Contains(metrics, `tessera_audit_records_total{result="written"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile %d %s; webhook deliveries %v; audit metrics:\n%s", code, body, delivered, grep(metrics, "tessera_audit"))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	p.stop(t)
}

// TestWrongKafkaCredentials: `tessera run` with a wrong password, or with no
// SASL against a broker that requires it, exits 1 at start with an error that
// names kafka.sasl, and never shows the password. While the broker cannot be
// reached yet, /readyz says so; when it comes up refusing the credentials, the
// process exits the same way.
func TestWrongKafkaCredentials(t *testing.T) {
	bin := buildTessera(t)
	b := startProc(t, bin, []string{"BROKER_PASSWORD=scram-secret"}, "broker", "--listen", "127.0.0.1:0", "--data", "",
		"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "hub", "--sasl-password-env", "BROKER_PASSWORD")
	brokerAddr := b.await(t, "broker listening on ")
	go drain(b)

	noSASL := filepath.Join(t.TempDir(), "tessera.yaml")
	if err := os.WriteFile(noSASL, []byte("kafka: {partitions: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, config, password, want string
	}{
		{"wrong password", saslConfig(t), "not-the-password", "SASL SCRAM-SHA-256 as hub"},
		{"no SASL", noSASL, "", "plaintext, no authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "run", "-c", tt.config, "--brokers", brokerAddr, "--data", t.TempDir(), "--http", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "HUB_KAFKA_PASSWORD="+tt.password)
			out := waitExit(t, cmd)
			for _, want := range []string{"kafka.sasl", tt.want, brokerAddr} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not contain %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "not-the-password") {
				t.Errorf("the output shows the password:\n%s", out)
			}
		})
	}

	t.Run("broker appears later", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there until the broker below starts
		p := startProc(t, bin, []string{"HUB_KAFKA_PASSWORD=not-the-password"},
			"run", "-c", saslConfig(t), "--brokers", addr, "--data", t.TempDir(), "--http", "127.0.0.1:0")
		base := "http://" + p.await(t, "http listening on ")
		go drain(p)
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := getAuth(t, base+"/readyz", "")
			if code == 503 && strings.Contains(body, "waiting for Kafka at "+addr) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never said it waits for Kafka: %d %s", code, body)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
		startProc(t, bin, []string{"BROKER_PASSWORD=scram-secret"}, "broker", "--listen", addr, "--data", "",
			"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "hub", "--sasl-password-env", "BROKER_PASSWORD")
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		select {
		case err := <-exited:
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("tessera run kept running against a broker that refuses its credentials")
		}
	})
}

// waitExit runs cmd and returns its combined output once it exits 1; it fails
// the test if it exits otherwise or keeps running for two minutes.
func waitExit(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("exit %v, want 1; output:\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("tessera run still running after two minutes (a hang); output:\n%s", out.String())
	}
	return out.String()
}
