// Package smtp is the smtp sink: it mails each activation through an SMTP
// server, over STARTTLS (required) with SMTP AUTH when a password is
// configured.
//
// A batch is one connection: dial, EHLO, STARTTLS, AUTH, then one
// MAIL/RCPT/DATA per activation, then QUIT. The recipient is the profile
// trait named by to_trait (default "email"); the subject and body are
// text/templates over the activation. Every message carries the activation
// id twice: in its Message-ID (so a receiver or a mailbox can drop a
// redelivery) and verbatim in X-Tessera-Activation-Id. Its Date is the
// activation's timestamp, so a redelivery is the same message byte for
// byte. The templates are sink.Templates: {{.ProfileMap.traits.first_name}}
// reaches a trait.
//
// TLS is STARTTLS on the submission port (587) or any other; implicit TLS
// (port 465) is not offered. AUTH takes the strongest mechanism the
// server offers of SCRAM, CRAM-MD5, PLAIN and LOGIN (go-mail's discovery),
// and only ever over TLS.
package smtp

import (
	"context"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Defaults of the destination's optional fields.
const (
	// DefaultToTrait is the trait holding the recipient's address.
	DefaultToTrait = "email"
	// DefaultSubject names what happened to whom.
	DefaultSubject = `{{if eq .Type "audience_entered"}}Entered {{.Name}}{{else if eq .Type "audience_exited"}}Left {{.Name}}{{else}}{{.Name}}{{end}}`
	// DefaultBody describes the activation.
	DefaultBody = `Profile {{.ProfileID}} {{if eq .Type "audience_entered"}}entered the audience{{else if eq .Type "audience_exited"}}left the audience{{else}}triggered{{end}} {{.Name}} at {{.Timestamp.UTC.Format "2006-01-02 15:04:05 MST"}}.

Activation {{.ID}}
`
	// defaultTimeout bounds each SMTP command when the destination sets
	// no delivery timeout.
	defaultTimeout = 10 * time.Second
)

// HeaderActivationID carries the activation id, verbatim, in every message.
const HeaderActivationID = "X-Tessera-Activation-Id"

// Sink mails activations. Its methods are safe for concurrent use; each
// WriteBatch uses its own connection, so Connect after Close works.
type Sink struct {
	host     string
	port     int
	from     *mail.Address
	toTrait  string
	user     string
	password string
	subject  *sink.Template
	body     *sink.Template
	tls      *tls.Config
	timeout  time.Duration
}

// New returns the sink of dest, an smtp destination: address (host:port,
// required), from (required), username and secret_env (the variable
// holding the password; both or neither), to_trait, subject and template.
// getenv reads the environment (os.Getenv). The server's certificate is
// checked against the system's roots and the address's host.
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	s, err := NewTLS(dest, getenv, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// NewTLS is New with the TLS configuration used for STARTTLS (its
// RootCAs, say, for a private CA). A nil tlsConf is New's; a ServerName
// left empty is the address's host.
func NewTLS(dest config.Destination, getenv func(string) string, tlsConf *tls.Config) (*Sink, error) {
	s := &Sink{toTrait: dest.ToTrait, user: dest.Username, timeout: time.Duration(dest.Delivery.Timeout)}
	fail := func(field string, err error) (*Sink, error) {
		return nil, fmt.Errorf("smtp destination %q: %s: %w", dest.Name, field, err)
	}
	if err := sink.CheckFields(dest, "address", "from", "username", "secret_env", "to_trait", "subject", "template"); err != nil {
		return nil, fmt.Errorf("smtp destination %q: %w", dest.Name, err)
	}
	host, port, err := net.SplitHostPort(dest.Address)
	if err != nil || host == "" {
		return fail("address", fmt.Errorf("must be host:port, got %q", dest.Address))
	}
	if s.port, err = strconv.Atoi(port); err != nil || s.port <= 0 || s.port > 65535 {
		return fail("address", fmt.Errorf("port must be 1…65535, got %q", port))
	}
	s.host = host
	if dest.From == "" {
		return fail("from", errors.New("must not be empty"))
	}
	if s.from, err = mail.ParseAddress(dest.From); err != nil {
		return fail("from", fmt.Errorf("must be an email address, got %q: %w", dest.From, err))
	}
	switch {
	case dest.SecretEnv != "" && dest.Username == "":
		return fail("username", errors.New("is required with secret_env"))
	case dest.SecretEnv == "" && dest.Username != "":
		return fail("secret_env", errors.New("is required with username (it names the variable holding the password)"))
	case dest.SecretEnv != "":
		if s.password = getenv(dest.SecretEnv); s.password == "" {
			return fail("secret_env", fmt.Errorf("variable %s is unset or empty", dest.SecretEnv))
		}
	}
	if s.toTrait == "" {
		s.toTrait = DefaultToTrait
	}
	if s.subject, err = sink.ParseTemplate(dest.Name+".subject", dest.Subject, DefaultSubject); err != nil {
		return fail("subject", err)
	}
	if s.body, err = sink.ParseTemplate(dest.Name+".template", dest.Template, DefaultBody); err != nil {
		return fail("template", err)
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if tlsConf == nil {
		tlsConf = &tls.Config{}
	}
	s.tls = tlsConf.Clone()
	if s.tls.ServerName == "" {
		s.tls.ServerName = host
	}
	if s.tls.MinVersion == 0 {
		s.tls.MinVersion = tls.VersionTLS12
	}
	return s, nil
}

// Connect checks the server: it dials and goes through EHLO, STARTTLS
// and AUTH. A server that answers but will not do (no STARTTLS, a
// certificate that does not verify, a wrong password) is an error, which
// the runtime retries while deliveries wait for the configuration to be
// fixed. A server that cannot be reached is not: deliveries then fail and
// count toward the dead-letter topic, as with any receiver that is down.
func (s *Sink) Connect(ctx context.Context) error {
	c, sc, stop, err := s.dial(ctx)
	if err != nil {
		if unreachable(err) {
			return nil
		}
		return err
	}
	defer stop()
	if err := c.CloseWithSMTPClient(sc); err != nil {
		return fmt.Errorf("closing the connection to %s: %w", s.addr(), err)
	}
	return nil
}

// WriteBatch mails each activation of batch over one connection. An
// activation whose profile lacks the recipient trait, whose template
// fails, or whose message the server refuses for good (a 5xx reply) fails
// permanently; a 4xx reply or a lost connection is retried.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	be := &sink.BatchError{}
	msgs := make([]*gomail.Msg, len(batch))
	pending := 0
	for i, a := range batch {
		m, err := s.message(a)
		if err != nil {
			be.Fail(i, sink.Permanent(err))
			continue
		}
		msgs[i] = m
		pending++
	}
	if pending > 0 {
		c, sc, stop, err := s.dial(ctx)
		if err != nil {
			if len(be.Failed) == 0 {
				return err
			}
			for i, m := range msgs {
				if m != nil {
					be.Fail(i, err)
				}
			}
			return be
		}
		defer stop()
		for i, m := range msgs {
			if m == nil {
				continue
			}
			if err := c.SendWithSMTPClient(sc, m); err != nil {
				be.Fail(i, classify(fmt.Errorf("sending activation %s to %s: %w", batch[i].ID, recipients(m), err)))
			}
		}
		// The messages are handed over; a failing QUIT changes nothing.
		_ = c.CloseWithSMTPClient(sc)
	}
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}

// Close does nothing: the sink holds no connection between batches.
func (s *Sink) Close(context.Context) error { return nil }

// unreachable reports whether err is the network failing (refused, reset,
// timed out, cut) rather than the server answering.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func (s *Sink) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// dial opens a session ready for MAIL: connected, greeted, on TLS and
// authenticated. stop must be called when done: it releases the watch
// that closes the connection when ctx ends, and the connection.
func (s *Sink) dial(ctx context.Context) (*gomail.Client, *gosmtp.Client, func(), error) {
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	d := &net.Dialer{}
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSPolicy(gomail.TLSMandatory),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			mu.Lock()
			conn = c
			mu.Unlock()
			return c, err
		}),
	}
	if s.password != "" {
		// PLAIN or LOGIN (or a stronger mechanism the server offers);
		// only ever over TLS.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.user), gomail.WithPassword(s.password))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("configuring the SMTP client for %s: %w", s.addr(), err)
	}
	// go-mail bounds each command by its timeout but does not watch ctx:
	// closing the connection when ctx ends unblocks whatever is waiting.
	release := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			conn.Close()
		}
	})
	sc, err := c.DialToSMTPClientWithContext(ctx)
	stop := func() {
		release()
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			conn.Close()
		}
	}
	if err != nil {
		stop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, nil, nil, fmt.Errorf("connecting to %s: %w", s.addr(), err)
	}
	return c, sc, stop, nil
}

// message builds the mail of a.
func (s *Sink) message(a sink.Activation) (*gomail.Msg, error) {
	to, err := sink.Recipient(a, s.toTrait)
	if err != nil {
		return nil, err
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("profile %s: trait %q is not an email address (%q): %w", a.ProfileID, s.toTrait, to, err)
	}
	subject, err := s.subject.Render(a)
	if err != nil {
		return nil, err
	}
	body, err := s.body.Render(a)
	if err != nil {
		return nil, err
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(s.from)
	m.ToMailAddress(rcpt)
	m.Subject(strings.TrimSpace(string(subject)))
	m.SetDateWithValue(a.Timestamp.UTC())
	m.SetMessageIDWithValue(MessageID(a.ID, s.from.Address))
	m.SetGenHeader(HeaderActivationID, a.ID)
	m.SetUserAgent("tessera")
	m.SetBodyString(gomail.TypeTextPlain, string(body))
	return m, nil
}

// MessageID returns the Message-ID (without its angle brackets) of the
// mail of activation id sent from the address from: id@domain, with id
// in base32 (lower case, no padding) when it is not a dot-atom.
func MessageID(id, from string) string {
	domain := "tessera.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && isDotAtom(from[at+1:]) {
		domain = from[at+1:]
	}
	left := id
	if !isDotAtom(id) {
		left = strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(id)))
	}
	return left + "@" + domain
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(".!#$%&'*+-/=?^_`{|}~", r):
		default:
			return false
		}
	}
	return true
}

// classify marks a send error permanent when the server refused for good
// (a 5xx reply); anything else (4xx, a lost connection) is retried.
func classify(err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 {
		return sink.Permanent(err)
	}
	return err
}

func recipients(m *gomail.Msg) string {
	rs, _ := m.GetRecipients()
	return strings.Join(rs, ", ")
}

// Notifies marks the sink as a sink.Notifier: it messages people and keeps
// no profiles, so an erasure notice is not for it.
func (*Sink) Notifies() {}

var _ sink.Notifier = (*Sink)(nil)
