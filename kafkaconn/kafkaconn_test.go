package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/broker"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/internal/testcert"
	"github.com/tessera-cdp/tessera/kafkaconn"
)

// startBroker starts an in-memory embedded broker that accepts only users.
func startBroker(t *testing.T, users ...broker.User) string {
	t.Helper()
	b, err := broker.Start(broker.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func saslKafka(mech, user, passEnv string) config.Kafka {
	return config.Kafka{SASL: config.KafkaSASL{Mechanism: mech, Username: user, PasswordEnv: passEnv}}
}

// TestSASL: each mechanism works with the right password, through Check and a
// produce; a wrong password, a wrong mechanism or no SASL at all is an ErrAuth
// from Check that names the setting, well before Check's own timeout.
func TestSASL(t *testing.T) {
	env := map[string]string{"RIGHT": "s3cret", "WRONG": "guess"}
	getenv := func(k string) string { return env[k] }
	for _, mech := range []string{config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			addr := startBroker(t, broker.User{Mechanism: mech, Name: "hub", Password: "s3cret"})
			other := config.SASLScramSHA512
			if mech == config.SASLScramSHA512 {
				other = config.SASLScramSHA256
			}
			tests := []struct {
				name string
				k    config.Kafka
				ok   bool
			}{
				{"right password", saslKafka(mech, "hub", "RIGHT"), true},
				{"wrong password", saslKafka(mech, "hub", "WRONG"), false},
				{"unknown user", saslKafka(mech, "nobody", "RIGHT"), false},
				{"other mechanism", saslKafka(other, "hub", "RIGHT"), false},
				{"no SASL", config.Kafka{}, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					conn, err := kafkaconn.New([]string{addr}, tt.k, getenv)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					err = conn.Check(ctx)
					if tt.ok {
						if err != nil {
							t.Fatalf("Check: %v", err)
						}
						produce(t, conn)
						return
					}
					if !errors.Is(err, kafkaconn.ErrAuth) {
						t.Fatalf("Check = %v, want an ErrAuth", err)
					}
					if !strings.Contains(err.Error(), "kafka.sasl") || !strings.Contains(err.Error(), addr) {
						t.Errorf("Check error %q names neither kafka.sasl nor the broker", err)
					}
					if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "guess") {
						t.Errorf("Check error %q shows the password", err)
					}
				})
			}
		})
	}
}

// produce creates a topic's record through a client of conn.
func produce(t *testing.T, conn *kafkaconn.Conn) {
	t.Helper()
	cl, err := kgo.NewClient(conn.Opts(kgo.DefaultProduceTopic("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatalf("creating a topic with %s: %v", conn, err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("producing with %s: %v", conn, err)
	}
}

func TestNewRefusesMissingPassword(t *testing.T) {
	_, err := kafkaconn.New([]string{"x:1"}, saslKafka(config.SASLScramSHA256, "hub", "UNSET"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "$UNSET is empty or unset") {
		t.Fatalf("New = %v, want an error naming $UNSET", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 named name and its
// key as PEM files, and returns their paths and the loaded pair.
func selfSigned(t *testing.T, name string) (certFile, keyFile string, pair tls.Certificate) {
	c := testcert.New(t, name)
	certFile, keyFile = c.WriteFiles(t, t.TempDir(), name)
	return certFile, keyFile, c.TLS
}

// TestTLS: a broker that speaks only TLS and wants a client certificate is
// reached with kafka.tls (and SASL over it); an untrusted broker certificate, a
// missing client certificate, plaintext to the TLS broker and TLS to a
// plaintext one are each an ErrAuth naming kafka.tls.
func TestTLS(t *testing.T) {
	serverCert, _, serverPair := selfSigned(t, "broker")
	clientCert, clientKey, clientPair := selfSigned(t, "client")
	otherCA, _, _ := selfSigned(t, "other")
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientPair.Leaf)
	b, err := broker.Start(broker.Options{
		TLS:   &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs},
		Users: []broker.User{{Mechanism: config.SASLScramSHA512, Name: "hub", Password: "s3cret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	plain := startBroker(t)
	getenv := func(k string) string { return map[string]string{"PW": "s3cret"}[k] }
	sasl := config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: "hub", PasswordEnv: "PW"}
	good := config.KafkaTLS{Enabled: true, CAFile: serverCert, CertFile: clientCert, KeyFile: clientKey}
	tests := []struct {
		name   string
		broker string
		k      config.Kafka
		want   string // in the ErrAuth; "" for success
	}{
		{"mTLS and SCRAM", b.Addr(), config.Kafka{TLS: good, SASL: sasl}, ""},
		{"untrusted broker", b.Addr(), config.Kafka{TLS: config.KafkaTLS{Enabled: true, CAFile: otherCA, CertFile: clientCert, KeyFile: clientKey}, SASL: sasl}, "kafka.tls.ca_file"},
		{"no client certificate", b.Addr(), config.Kafka{TLS: config.KafkaTLS{Enabled: true, CAFile: serverCert}, SASL: sasl}, "kafka.tls"},
		{"plaintext to TLS", b.Addr(), config.Kafka{SASL: sasl}, "kafka.tls"},
		{"TLS to plaintext", plain, config.Kafka{TLS: good}, "kafka.tls.enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := kafkaconn.New([]string{tt.broker}, tt.k, getenv)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = conn.Check(ctx)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				produce(t, conn)
				return
			}
			if !errors.Is(err, kafkaconn.ErrAuth) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an ErrAuth naming %s", err, tt.want)
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tls  config.KafkaTLS
		want string
	}{
		{config.KafkaTLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}, "reading kafka.tls.ca_file"},
		{config.KafkaTLS{Enabled: true, CAFile: junk}, "holds no PEM certificate"},
		{config.KafkaTLS{Enabled: true, CertFile: junk, KeyFile: junk}, "loading kafka.tls.cert_file and key_file"},
	}
	for _, tt := range tests {
		_, err := kafkaconn.New([]string{"x:1"}, config.Kafka{TLS: tt.tls}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tt.tls, err, tt.want)
		}
	}
}
