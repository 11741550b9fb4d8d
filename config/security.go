package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KafkaTLS is kafka.tls: TLS to the brokers, for every Kafka client tessera creates.
type KafkaTLS struct {
	// Enabled turns TLS on. The other keys need it.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the certificate authorities that sign the brokers'
	// certificates. Empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for brokers that
	// authenticate clients by certificate (mTLS). Both or neither.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key; see CertFile.
	KeyFile string `yaml:"key_file"`
	// InsecureSkipVerify accepts any broker certificate. Only for tests: it gives up the
	// protection TLS exists for.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// KafkaSASL is kafka.sasl: SASL authentication to the brokers, for every Kafka client
// tessera creates, and the one user the embedded broker accepts when it runs.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Empty: no SASL. PLAIN sends the
	// password as it is: use it only with kafka.tls.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the password. The password is
	// never written in tessera.yaml.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is a file holding the password (a trailing newline is dropped), for
	// secrets mounted as files. Exactly one of PasswordEnv and PasswordFile.
	PasswordFile string `yaml:"password_file"`
}

// HTTPTLS is http.tls: TLS for the HTTP server, and for the calls instances of a group
// make to each other's internal routes. CertFile and KeyFile go together; without them
// the server serves plain HTTP.
type HTTPTLS struct {
	// CertFile is the server's PEM certificate chain. Other instances verify that it
	// names the host this instance advertises to them (its hostname when it listens on
	// every interface, else the listen host or IP).
	CertFile string `yaml:"cert_file"`
	// KeyFile is its PEM private key.
	KeyFile string `yaml:"key_file"`
	// CAFile is a PEM file of the certificate authorities that sign the instances'
	// certificates, which an instance trusts when it calls another. Empty: the system's
	// roots. It needs CertFile: without it no instance serves TLS.
	CAFile string `yaml:"ca_file"`
}

// Enabled reports whether the HTTP server serves TLS.
func (t HTTPTLS) Enabled() bool { return t.CertFile != "" }

// RootCAs returns the certificates of CAFile, which the calls to other instances trust,
// or nil, meaning the system's roots, when CAFile is empty.
func (t HTTPTLS) RootCAs() (*x509.CertPool, error) {
	if t.CAFile == "" {
		return nil, nil
	}
	pool, err := loadCertPool(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls.ca_file: %w", err)
	}
	return pool, nil
}

// loadCertPool reads a PEM file of certificates strictly: every block must be a
// certificate that parses, and there must be one, so that a key or a truncated file
// given by mistake is an error at start rather than a pool that trusts nothing.
func loadCertPool(path string) (*x509.CertPool, error) {
	rest, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %d is a %s, not a CERTIFICATE", path, n, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: parsing PEM block %d: %w", path, n, err)
		}
		pool.AddCert(cert)
	}
	switch {
	case strings.Contains(string(rest), "-----BEGIN"):
		// pem.Decode stops at a block it cannot decode (a truncated file).
		return nil, fmt.Errorf("%s: PEM block %d does not decode", path, n+1)
	case n == 0:
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// RateLimit is ingest.rate_limit: how many events each write key may send through the
// HTTP tracking API. A key over its limit is answered 429 with Retry-After.
//
// The default is off: a write key is shared by every browser and server of one source,
// so a per-key limit caps that whole source, and only the operator knows its volume.
// Set it when write keys are exposed (browser SDKs) so that a leaked key cannot flood
// the hub.
type RateLimit struct {
	// EventsPerSecond is the sustained rate per write key; a batch counts each of its
	// events. 0, the default, turns the limit off.
	EventsPerSecond int `yaml:"events_per_second"`
	// Burst is how many events a key may send at once above the rate. It must be at
	// least EventsPerSecond; 0 means EventsPerSecond. A batch larger than the burst is
	// charged the burst, so it waits for a full bucket rather than never passing.
	Burst int `yaml:"burst"`
}

// SASL mechanisms of kafka.sasl.mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Environment variables naming files that hold secrets, for secrets mounted as files
// (Kubernetes, Docker secrets). Each is read like its plain variable; setting both is
// an error.
const (
	EnvAdminTokenFile  = "TESSERA_ADMIN_TOKEN_FILE"
	EnvViewerTokenFile = "TESSERA_VIEWER_TOKEN_FILE"
	// EnvWriteKeysFile names a file of write keys, one per line or comma-separated.
	EnvWriteKeysFile = "TESSERA_WRITE_KEYS_FILE"
)

// applySecretFiles reads the *_FILE variables. A file that cannot be read, or a
// variable set together with its *_FILE twin, is kept in c.envErrs for Validate, since
// ApplyEnv has no error of its own.
func (c *Config) applySecretFiles(getenv func(string) string) {
	read := func(fileVar, plainVar string) (string, bool) {
		path := getenv(fileVar)
		if path == "" {
			return "", false
		}
		if getenv(plainVar) != "" {
			c.envErrs = append(c.envErrs, fmt.Errorf("$%s and $%s are both set: set one", plainVar, fileVar))
			return "", false
		}
		b, err := os.ReadFile(path)
		if err != nil {
			c.envErrs = append(c.envErrs, fmt.Errorf("reading $%s: %w", fileVar, err))
			return "", false
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			c.envErrs = append(c.envErrs, fmt.Errorf("$%s: %s is empty", fileVar, path))
			return "", false
		}
		return v, true
	}
	if v, ok := read(EnvAdminTokenFile, EnvAdminToken); ok {
		c.API.AdminToken = v
		c.setOrigin("api.admin_token", origin{from: "$" + EnvAdminTokenFile})
	}
	if v, ok := read(EnvViewerTokenFile, EnvViewerToken); ok {
		c.API.ViewerToken = v
		c.setOrigin("api.viewer_token", origin{from: "$" + EnvViewerTokenFile})
	}
	if v, ok := read(EnvWriteKeysFile, EnvWriteKeys); ok {
		for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
			if k = strings.TrimSpace(k); k != "" {
				c.Ingest.WriteKeys = append(c.Ingest.WriteKeys, k)
			}
		}
	}
}

// validateSecurity checks kafka.tls, kafka.sasl, http.tls and ingest.rate_limit.
func (c Config) validateSecurity(check func(path string, err error)) {
	for _, err := range c.envErrs {
		check("environment", err)
	}
	t := c.Kafka.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify) {
		check("kafka.tls", errors.New("enabled must be true when other kafka.tls keys are set"))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		check("kafka.tls", errors.New("cert_file and key_file go together: set both or neither"))
	}
	if t.Enabled && c.Embedded() {
		check("kafka.tls", errors.New("the embedded broker does not speak TLS: set kafka.brokers, or turn kafka.tls off"))
	}
	s := c.Kafka.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.PasswordEnv != "" || s.PasswordFile != "" {
			check("kafka.sasl", fmt.Errorf("mechanism must be set (%s, %s or %s) when other kafka.sasl keys are", SASLPlain, SASLScramSHA256, SASLScramSHA512))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			check("kafka.sasl", errors.New("username is required with a mechanism"))
		}
		if (s.PasswordEnv == "") == (s.PasswordFile == "") {
			check("kafka.sasl", errors.New("needs exactly one of password_env and password_file: the password itself never goes in tessera.yaml"))
		}
	default:
		check("kafka.sasl.mechanism", fmt.Errorf("must be %s, %s or %s, got %q", SASLPlain, SASLScramSHA256, SASLScramSHA512, s.Mechanism))
	}
	h := c.HTTP.TLS
	if (h.CertFile == "") != (h.KeyFile == "") {
		check("http.tls", errors.New("cert_file and key_file go together: set both or neither"))
	}
	switch {
	case h.CAFile == "":
	case h.CertFile == "":
		// Without a certificate no instance serves TLS, so a CA trusted for calls to
		// them is a mistake: most likely cert_file was forgotten.
		check("http.tls", errors.New("ca_file needs cert_file and key_file: instances call each other over HTTPS only when they serve it"))
	default:
		_, err := loadCertPool(h.CAFile)
		check("http.tls.ca_file", err)
	}
	r := c.Ingest.RateLimit
	switch {
	case r.EventsPerSecond < 0:
		check("ingest.rate_limit.events_per_second", fmt.Errorf("must be 0 (off) or positive, got %d", r.EventsPerSecond))
	case r.Burst < 0:
		check("ingest.rate_limit.burst", fmt.Errorf("must be 0 (the rate) or positive, got %d", r.Burst))
	case r.Burst > 0 && r.EventsPerSecond == 0:
		check("ingest.rate_limit", errors.New("events_per_second must be set when burst is"))
	case r.Burst > 0 && r.Burst < r.EventsPerSecond:
		check("ingest.rate_limit.burst", fmt.Errorf("must be at least events_per_second (%d), got %d", r.EventsPerSecond, r.Burst))
	}
}

// SASLPassword returns the SASL password, read from the variable or the file kafka.sasl
// names, with getenv (os.Getenv, or a map lookup in tests).
func (s KafkaSASL) SASLPassword(getenv func(string) string) (string, error) {
	switch {
	case s.PasswordEnv != "":
		v := getenv(s.PasswordEnv)
		if v == "" {
			return "", fmt.Errorf("kafka.sasl.password_env: $%s is empty or unset", s.PasswordEnv)
		}
		return v, nil
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("reading kafka.sasl.password_file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("kafka.sasl.password_file: %s is empty", s.PasswordFile)
		}
		return v, nil
	}
	return "", errors.New("kafka.sasl: no password_env or password_file")
}

// FileEnv returns getenv extended to secrets mounted as files: when $NAME is unset or
// empty and $NAME_FILE is set, the value of NAME is the content of that file, without
// its trailing newline. A file that cannot be read gives "", which the caller reports
// as an unset secret. Destinations look their secret_env and dsn_env up through it.
func FileEnv(getenv func(string) string) func(string) string {
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		path := getenv(name + "_FILE")
		if path == "" {
			return ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		return strings.TrimRight(string(b), "\r\n")
	}
}
