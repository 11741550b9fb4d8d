// Package kafkaconn turns the kafka section of tessera.yaml into the franz-go options
// every Kafka client of tessera is created with: the seed brokers, TLS and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512). One function builds them, so no client connects with
// fewer protections than the configuration asks for.
//
// Check dials the brokers once, so that wrong credentials or a TLS mismatch stop
// `tessera run` at start with a message naming the setting, rather than leaving the
// clients retrying in the background.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tessera-cdp/tessera/broker"
	"github.com/tessera-cdp/tessera/config"
)

// Conn is how tessera connects to one Kafka cluster: the seed brokers and the
// security options of kafka.tls and kafka.sasl.
type Conn struct {
	// Brokers are the seed brokers.
	Brokers []string
	// security are the TLS and SASL options, without the seed brokers.
	security []kgo.Opt
	// describe says how the connection authenticates, for error messages.
	describe string
	// tls tells whether kafka.tls is on.
	tls bool
}

// New returns the connection to brokers that k configures; secrets (the SASL password)
// are read with getenv (os.Getenv) or from the file k names. It fails if a file
// cannot be read or the password is empty.
func New(brokers []string, k config.Kafka, getenv func(string) string) (*Conn, error) {
	sec, desc, err := Security(k, getenv)
	if err != nil {
		return nil, err
	}
	return &Conn{Brokers: brokers, security: sec, describe: desc, tls: k.TLS.Enabled}, nil
}

// Opts returns the options of a client of this cluster: the seed brokers and the
// security options, then extra. Pass them to kgo.NewClient.
func (c *Conn) Opts(extra ...kgo.Opt) []kgo.Opt {
	opts := make([]kgo.Opt, 0, 1+len(c.security)+len(extra))
	opts = append(opts, kgo.SeedBrokers(c.Brokers...))
	opts = append(opts, c.security...)
	return append(opts, extra...)
}

// Security returns the security options alone, for clients whose seed brokers are set
// elsewhere (a component's own Brokers option).
func (c *Conn) Security() []kgo.Opt { return c.security }

// String says where and how the connection goes, without secrets:
// "127.0.0.1:9092 (SASL SCRAM-SHA-256 as tessera, TLS)".
func (c *Conn) String() string {
	return strings.Join(c.Brokers, ",") + " (" + c.describe + ")"
}

// Security returns the franz-go options for kafka.tls and kafka.sasl in k, and a
// description of them without secrets ("SASL SCRAM-SHA-256 as tessera, TLS").
func Security(k config.Kafka, getenv func(string) string) ([]kgo.Opt, string, error) {
	var opts []kgo.Opt
	var desc []string
	if s := k.SASL; s.Mechanism != "" {
		pass, err := s.SASLPassword(getenv)
		if err != nil {
			return nil, "", err
		}
		var m sasl.Mechanism
		switch s.Mechanism {
		case config.SASLPlain:
			m = plain.Auth{User: s.Username, Pass: pass}.AsMechanism()
		case config.SASLScramSHA256:
			m = scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism()
		case config.SASLScramSHA512:
			m = scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, "", fmt.Errorf("kafka.sasl.mechanism: unknown mechanism %q", s.Mechanism)
		}
		opts = append(opts, kgo.SASL(m))
		desc = append(desc, "SASL "+s.Mechanism+" as "+s.Username)
	}
	if k.TLS.Enabled {
		tc, err := TLSConfig(k.TLS)
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
		desc = append(desc, "TLS")
	}
	if len(desc) == 0 {
		desc = append(desc, "plaintext, no authentication")
	}
	return opts, strings.Join(desc, ", "), nil
}

// TLSConfig builds the client TLS configuration of kafka.tls.
func TLSConfig(t config.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading kafka.tls.cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// checkTimeout bounds Check: long enough for a broker that is slow to answer, short
// enough that a mistake is reported while the operator still watches.
const checkTimeout = 10 * time.Second

// checkDialTimeout bounds one connection attempt of Check, TLS handshake included.
const checkDialTimeout = 4 * time.Second

// ErrAuth marks a Check error caused by the credentials or the TLS setup, which no
// retry will fix.
var ErrAuth = errors.New("kafka refused the connection's security settings")

// Check connects to the cluster once and returns an error wrapping ErrAuth if the
// brokers refuse the credentials or the TLS handshake fails, naming the settings to
// look at. Brokers that cannot be reached yet are not an error here (nil): the clients
// keep retrying, and /readyz says why it is not ready.
func (c *Conn) Check(ctx context.Context) error {
	_, err := c.check(ctx)
	return err
}

// check pings the brokers once; reached tells whether one answered.
func (c *Conn) check(ctx context.Context) (reached bool, _ error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cl, err := kgo.NewClient(c.Opts(kgo.DialTimeout(checkDialTimeout))...)
	if err != nil {
		return false, fmt.Errorf("creating Kafka client for %s: %w", c, err)
	}
	defer cl.Close()
	err = cl.Ping(ctx)
	if err == nil {
		return true, nil
	}
	if cause := c.Explain(err); cause != "" {
		return false, fmt.Errorf("%w: connecting to Kafka at %s: %s: %v", ErrAuth, c, cause, err)
	}
	if c.tls && errors.Is(err, context.DeadlineExceeded) {
		// A plaintext broker reads the TLS ClientHello as the start of a
		// request and waits for the rest: the handshake times out. If TCP
		// connects at once, that is what happened.
		if tcp, derr := (&net.Dialer{Timeout: time.Second}).DialContext(context.Background(), "tcp", c.Brokers[0]); derr == nil {
			tcp.Close()
			return false, fmt.Errorf("%w: connecting to Kafka at %s: the broker accepts connections but never completes the TLS handshake: it does not speak TLS? check kafka.tls.enabled: %v", ErrAuth, c, err)
		}
	}
	return false, nil
}

// Await checks the connection until the brokers answer: it returns nil once they do,
// the Check error (an ErrAuth) as soon as they refuse the security settings, and
// ctx.Err() when ctx ends first. While the brokers cannot be reached it calls waiting
// with the reason, for /readyz, and tries again with a growing pause (at most 5 s).
func (c *Conn) Await(ctx context.Context, waiting func(reason error)) error {
	backoff := 200 * time.Millisecond
	for {
		reached, err := c.check(ctx)
		if err != nil || reached {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		waiting(fmt.Errorf("waiting for Kafka at %s: brokers not reachable yet", c))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// BrokerUsers returns the SASL users the embedded broker accepts for k: the one
// kafka.sasl configures, or none (no authentication) without kafka.sasl.
func BrokerUsers(k config.Kafka, getenv func(string) string) ([]broker.User, error) {
	if k.SASL.Mechanism == "" {
		return nil, nil
	}
	pass, err := k.SASL.SASLPassword(getenv)
	if err != nil {
		return nil, err
	}
	return []broker.User{{Mechanism: k.SASL.Mechanism, Name: k.SASL.Username, Password: pass}}, nil
}

// Explain tells, for an error of a client of this connection, which setting is likely
// wrong; "" if the error does not look like a security problem.
//
// A broker that rejects SASL credentials answers SaslAuthenticationFailed (Kafka) or
// drops the connection during the handshake (some brokers, kfake); one that expects SASL
// from a client sending none drops it at the first request; a TLS listener spoken to in
// plaintext, or the reverse, fails the handshake or drops the connection.
func (c *Conn) Explain(err error) string {
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return "the broker rejected the SASL credentials: check kafka.sasl.username, the password and kafka.sasl.mechanism"
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return "the broker does not accept kafka.sasl.mechanism " + c.describe
	case errors.As(err, &certErr):
		return "the broker's TLS certificate is not trusted: check kafka.tls.ca_file"
	case errors.As(err, &recErr):
		return "the broker does not speak TLS: check kafka.tls.enabled"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		// The broker was reached and hung up: it refused what it was sent.
		return "the broker closed the connection during the handshake: wrong SASL credentials or mechanism, SASL or TLS expected but not configured (kafka.sasl, kafka.tls), or the reverse"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return "the TLS handshake failed: check kafka.tls"
	}
	return ""
}
