package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/internal/testcert"
)

const (
	testUser     = "mailer"
	testPassword = "s3cret pass"
	passwordEnv  = "SMTP_PASSWORD"
)

// delivery is one message as the server received it.
type delivery struct {
	From  string
	To    []string
	TLS   bool
	Auth  string // mechanism
	Data  []byte
	Parts message
}

// message is a received message decoded for comparison: headers with
// their encoded words decoded, and the body with its transfer encoding
// undone.
type message struct {
	Header map[string]string
	Body   string
}

// server is an in-process SMTP server (emersion/go-smtp) offering STARTTLS
// with a certificate for 127.0.0.1 and AUTH with the mechanisms given,
// and recording each message it accepts.
type server struct {
	addr  string
	roots *x509.CertPool

	mu         sync.Mutex
	deliveries []delivery
	// rcptErr refuses a recipient with this error.
	rcptErr map[string]error
	// dataHook, when set, runs at the start of DATA.
	dataHook func()
	// onData, when set, judges each message once read: an error refuses
	// it, and only the accepted ones are recorded.
	onData func(delivery) error
}

func startServer(t *testing.T, mechs []string, withTLS bool) *server {
	t.Helper()
	s := &server{rcptErr: map[string]error{}}
	cert, roots := testCertificate(t)
	s.roots = roots
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{srv: s, conn: c, mechs: mechs}, nil
	}))
	srv.Domain = "mx.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // in case Close ran before Serve took the listener
		<-done
	})
	return s
}

func (s *server) received() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

type session struct {
	srv   *server
	conn  *gosmtp.Conn
	mechs []string
	auth  string
	cur   delivery
}

func (s *session) AuthMechanisms() []string { return s.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != testUser || pass != testPassword {
			return gosmtp.ErrAuthFailed
		}
		s.auth = mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return gosmtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.auth == "" && len(s.mechs) > 0 {
		return gosmtp.ErrAuthRequired
	}
	_, tlsOn := s.conn.TLSConnectionState()
	s.cur = delivery{From: from, TLS: tlsOn, Auth: s.auth}
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.srv.mu.Lock()
	err := s.srv.rcptErr[to]
	s.srv.mu.Unlock()
	if err != nil {
		return err
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.srv.mu.Lock()
	hook := s.srv.dataHook
	s.srv.mu.Unlock()
	if hook != nil {
		hook()
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.srv.mu.Lock()
	onData := s.srv.onData
	s.srv.mu.Unlock()
	if onData != nil {
		if err := onData(s.cur); err != nil {
			return err
		}
	}
	s.srv.mu.Lock()
	s.srv.deliveries = append(s.srv.deliveries, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = delivery{} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN, which go-sasl offers
// only as a client: "Username:", "Password:", each answered in turn.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if response != nil { // an initial response is the username
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN step")
}

// testCertificate returns a self-signed certificate for 127.0.0.1 and a
// pool that trusts it.
func testCertificate(t *testing.T) (tls.Certificate, *x509.CertPool) {
	c := testcert.New(t, "tessera smtp test")
	return c.TLS, c.Pool
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func destination(addr string) config.Destination {
	return config.Destination{
		Name: "mail", Type: "smtp", Address: addr, From: "Tessera <crm@shop.test>",
		Username: testUser, SecretEnv: passwordEnv,
	}
}

func newTestSink(t *testing.T, s *server, dest config.Destination) *Sink {
	t.Helper()
	sk, err := NewTLS(dest, env(map[string]string{passwordEnv: testPassword}), &tls.Config{RootCAs: s.roots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sk.Close(context.Background()) })
	return sk
}

func activation(id, typ, name, profileID string, traits map[string]any) sink.Activation {
	p, _ := json.Marshal(map[string]any{
		"id": profileID, "identifiers": []map[string]string{{"type": "user_id", "value": "u-" + profileID}},
		"traits": traits, "features": map[string]any{"orders_30d": 3}, "predictions": map[string]any{},
		"audiences": []string{name},
	})
	return sink.Activation{
		ID: id, Type: typ, Name: name, ProfileID: profileID,
		Timestamp: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC), Profile: p,
	}
}

// decode parses a received message and undoes its encodings.
func decode(t *testing.T, data []byte) message {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing the message: %v\n%s", err, data)
	}
	var dec mime.WordDecoder
	out := message{Header: map[string]string{}}
	for k, vs := range m.Header {
		if len(vs) != 1 {
			t.Errorf("header %s appears %d times", k, len(vs))
		}
		v, err := dec.DecodeHeader(vs[0])
		if err != nil {
			t.Fatalf("decoding header %s: %v", k, err)
		}
		out.Header[k] = v
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(m.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	out.Body = string(b)
	return out
}

func TestDelivery(t *testing.T) {
	entered := activation("act-1:vip", sink.AudienceEntered, "vip", "p1", map[string]any{"email": "ada@example.test", "first_name": "Jürgen"})
	exited := activation("act.2", sink.AudienceExited, "vip", "p2", map[string]any{"email": "bob@example.test"})
	headers := func(from, to, subject, msgID, actID string) map[string]string {
		return map[string]string{
			"From": from, "To": to, "Subject": subject,
			"Date":                      "Sun, 01 Mar 2026 12:30:05 +0000",
			"Message-Id":                "<" + msgID + ">",
			"X-Tessera-Activation-Id":   actID,
			"Mime-Version":              "1.0",
			"Content-Type":              "text/plain; charset=UTF-8",
			"Content-Transfer-Encoding": "quoted-printable",
			"User-Agent":                "tessera",
			"X-Mailer":                  "tessera",
		}
	}
	for _, tc := range []struct {
		name    string
		mechs   []string
		noAuth  bool // the destination has no username and password
		subject string
		body    string
		batch   []sink.Activation
		want    []delivery
	}{
		{
			name: "PLAIN, default templates", mechs: []string{sasl.Plain},
			batch: []sink.Activation{entered, exited},
			want: []delivery{
				{
					From: "crm@shop.test", To: []string{"ada@example.test"}, TLS: true, Auth: sasl.Plain,
					Parts: message{
						Header: headers(`"Tessera" <crm@shop.test>`, "<ada@example.test>", "Entered vip",
							"mfrxiljrhj3gs4a@shop.test", "act-1:vip"),
						Body: "Profile p1 entered the audience vip at 2026-03-01 12:30:05 UTC.\r\n\r\nActivation act-1:vip\r\n",
					},
				},
				{
					From: "crm@shop.test", To: []string{"bob@example.test"}, TLS: true, Auth: sasl.Plain,
					Parts: message{
						Header: headers(`"Tessera" <crm@shop.test>`, "<bob@example.test>", "Left vip", "act.2@shop.test", "act.2"),
						Body:   "Profile p2 left the audience vip at 2026-03-01 12:30:05 UTC.\r\n\r\nActivation act.2\r\n",
					},
				},
			},
		},
		{
			name: "no AUTH", mechs: nil, noAuth: true,
			batch: []sink.Activation{exited},
			want: []delivery{{
				From: "crm@shop.test", To: []string{"bob@example.test"}, TLS: true,
				Parts: message{
					Header: headers(`"Tessera" <crm@shop.test>`, "<bob@example.test>", "Left vip", "act.2@shop.test", "act.2"),
					Body:   "Profile p2 left the audience vip at 2026-03-01 12:30:05 UTC.\r\n\r\nActivation act.2\r\n",
				},
			}},
		},
		{
			name: "LOGIN, templates over traits", mechs: []string{sasl.Login},
			subject: `Willkommen, {{.ProfileMap.traits.first_name}}`,
			body:    "Hallo {{.ProfileMap.traits.first_name}}, du bist jetzt {{.Name}} ({{index .ProfileMap.features \"orders_30d\"}} Bestellungen).",
			batch:   []sink.Activation{entered},
			want: []delivery{{
				From: "crm@shop.test", To: []string{"ada@example.test"}, TLS: true, Auth: sasl.Login,
				Parts: message{
					Header: headers(`"Tessera" <crm@shop.test>`, "<ada@example.test>", "Willkommen, Jürgen",
						"mfrxiljrhj3gs4a@shop.test", "act-1:vip"),
					Body: "Hallo Jürgen, du bist jetzt vip (3 Bestellungen).\r\n",
				},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.mechs, true)
			dest := destination(srv.addr)
			dest.Subject, dest.Template = tc.subject, tc.body
			if tc.noAuth {
				dest.Username, dest.SecretEnv = "", ""
			}
			sk := newTestSink(t, srv, dest)
			ctx := context.Background()
			if err := sk.Connect(ctx); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if err := sk.WriteBatch(ctx, tc.batch); err != nil {
				t.Fatalf("WriteBatch: %v", err)
			}
			got := srv.received()
			for i := range got {
				got[i].Parts = decode(t, got[i].Data)
				got[i].Data = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("received\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestRedeliverySameMessage pins that a retried activation is the same
// message byte for byte (same Message-ID, same Date): a receiver dedupes.
func TestRedeliverySameMessage(t *testing.T) {
	srv := startServer(t, []string{sasl.Plain}, true)
	sk := newTestSink(t, srv, destination(srv.addr))
	a := activation("a-1", sink.AudienceEntered, "vip", "p1", map[string]any{"email": "ada@example.test"})
	for range 2 {
		if err := sk.WriteBatch(context.Background(), []sink.Activation{a}); err != nil {
			t.Fatal(err)
		}
	}
	got := srv.received()
	if len(got) != 2 || !bytes.Equal(got[0].Data, got[1].Data) {
		t.Fatalf("the two deliveries differ:\n%s\n---\n%s", got[0].Data, got[1].Data)
	}
}

func TestPartialFailure(t *testing.T) {
	srv := startServer(t, []string{sasl.Plain}, true)
	srv.rcptErr["gone@example.test"] = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	srv.rcptErr["busy@example.test"] = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	sk := newTestSink(t, srv, destination(srv.addr))
	batch := []sink.Activation{
		activation("a0", sink.AudienceEntered, "vip", "p0", map[string]any{"email": "ok@example.test"}),
		activation("a1", sink.AudienceEntered, "vip", "p1", map[string]any{"phone": "+15550001"}),
		activation("a2", sink.AudienceEntered, "vip", "p2", map[string]any{"email": "gone@example.test"}),
		activation("a3", sink.AudienceEntered, "vip", "p3", map[string]any{"email": "busy@example.test"}),
		activation("a4", sink.AudienceEntered, "vip", "p4", map[string]any{"email": "not an address"}),
		activation("a5", sink.AudienceEntered, "vip", "p5", map[string]any{"email": "ok2@example.test"}),
	}
	err := sk.WriteBatch(context.Background(), batch)
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteBatch = %v, want a *sink.BatchError", err)
	}
	for i, err := range be.Failed {
		t.Logf("#%d: %v", i, err)
	}
	for _, tc := range []struct {
		i         int
		permanent bool
		contains  string
	}{
		{1, true, `profile p1 has no "email" trait`},
		{2, true, "no such user"},
		{3, false, "try later"},
		{4, true, "not an email address"},
	} {
		err := be.Failed[tc.i]
		if err == nil {
			t.Errorf("#%d did not fail", tc.i)
			continue
		}
		if sink.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("#%d: err = %v (permanent %v), want permanent %v containing %q", tc.i, err, sink.IsPermanent(err), tc.permanent, tc.contains)
		}
	}
	if len(be.Failed) != 4 {
		t.Errorf("failed = %v, want #1…#4", be.Failed)
	}
	var to []string
	for _, d := range srv.received() {
		to = append(to, d.To...)
	}
	if want := []string{"ok@example.test", "ok2@example.test"}; !slices.Equal(to, want) {
		t.Errorf("delivered to %v, want %v", to, want)
	}
}

// TestConnectRefusals pins that the sink never sends a password or a
// message in the clear, nor to a server it cannot authenticate.
func TestConnectRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		withTLS  bool
		trust    bool
		password string
		contains string
	}{
		{"no STARTTLS", false, true, testPassword, "STARTTLS"},
		{"untrusted certificate", true, false, testPassword, "certificate"},
		{"wrong password", true, true, "wrong", "535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, []string{sasl.Plain}, tc.withTLS)
			conf := &tls.Config{}
			if tc.trust {
				conf.RootCAs = srv.roots
			}
			sk, err := NewTLS(destination(srv.addr), env(map[string]string{passwordEnv: tc.password}), conf)
			if err != nil {
				t.Fatal(err)
			}
			err = sk.Connect(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("Connect = %v, want an error containing %q", err, tc.contains)
			}
			if testing.Verbose() {
				t.Logf("Connect: %v", err)
			}
			a := activation("a", sink.AudienceEntered, "vip", "p", map[string]any{"email": "ada@example.test"})
			if err := sk.WriteBatch(context.Background(), []sink.Activation{a}); err == nil || sink.IsPermanent(err) {
				t.Errorf("WriteBatch = %v, want a retryable error", err)
			}
			if got := srv.received(); len(got) != 0 {
				t.Errorf("the server received %d messages", len(got))
			}
		})
	}
}

// TestServerDown pins that an unreachable server fails deliveries, which
// are retried, and not Connect, so that the runtime counts the attempts.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	sk, err := New(destination(addr), env(map[string]string{passwordEnv: testPassword}))
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Connect(context.Background()); err != nil {
		t.Fatalf("Connect = %v, want nil with the server unreachable", err)
	}
	a := activation("a", sink.AudienceEntered, "vip", "p", map[string]any{"email": "ada@example.test"})
	if err := sk.WriteBatch(context.Background(), []sink.Activation{a}); err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch = %v, want a retryable error", err)
	}
}

// TestCancel pins that WriteBatch returns when its context ends, even with
// the server stalled mid-transaction.
func TestCancel(t *testing.T) {
	srv := startServer(t, []string{sasl.Plain}, true)
	entered, release := make(chan struct{}), make(chan struct{})
	srv.dataHook = func() {
		close(entered)
		<-release
	}
	defer close(release)
	sk := newTestSink(t, srv, destination(srv.addr))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	a := activation("a", sink.AudienceEntered, "vip", "p", map[string]any{"email": "ada@example.test"})
	err := sk.WriteBatch(ctx, []sink.Activation{a})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch = %v, want a retryable error", err)
	}
}

func TestNew(t *testing.T) {
	ok := destination("smtp.test:587")
	for _, tc := range []struct {
		name string
		edit func(*config.Destination)
		env  map[string]string
		want string // error; "" for none
	}{
		{"valid", func(*config.Destination) {}, map[string]string{passwordEnv: "x"}, ""},
		{"no auth", func(d *config.Destination) { d.Username, d.SecretEnv = "", "" }, nil, ""},
		{"address", func(d *config.Destination) { d.Address = "smtp.test" }, nil, `smtp destination "mail": address: must be host:port, got "smtp.test"`},
		{"port", func(d *config.Destination) { d.Address = "smtp.test:smtp" }, nil, `smtp destination "mail": address: port must be 1…65535, got "smtp"`},
		{"from empty", func(d *config.Destination) { d.From = "" }, nil, `smtp destination "mail": from: must not be empty`},
		{"from", func(d *config.Destination) { d.From = "crm at shop" }, nil, `smtp destination "mail": from: must be an email address, got "crm at shop"`},
		{"password unset", func(*config.Destination) {}, nil, `smtp destination "mail": secret_env: variable SMTP_PASSWORD is unset or empty`},
		{"username alone", func(d *config.Destination) { d.SecretEnv = "" }, nil, `smtp destination "mail": secret_env: is required with username`},
		{"secret alone", func(d *config.Destination) { d.Username = "" }, map[string]string{passwordEnv: "x"}, `smtp destination "mail": username: is required with secret_env`},
		{"subject", func(d *config.Destination) { d.Subject = "{{.Name" }, map[string]string{passwordEnv: "x"}, `smtp destination "mail": subject: parsing template: template: mail.subject:1: unclosed action`},
		{"template", func(d *config.Destination) { d.Template = "{{end}}" }, map[string]string{passwordEnv: "x"}, `smtp destination "mail": template: parsing template: template: mail.template:1: unexpected {{end}}`},
		{"url", func(d *config.Destination) { d.URL = "https://x" }, map[string]string{passwordEnv: "x"}, `smtp destination "mail": url is not used by smtp destinations (they use address, from, username, secret_env, to_trait, subject, template)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ok
			tc.edit(&d)
			s, err := New(d, env(tc.env))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want == "" && s == nil:
				t.Fatal("New returned a nil sink")
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("New = %v, want an error starting %q", err, tc.want)
			case tc.want != "" && s != nil:
				t.Fatalf("New returned a sink with its error")
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	for _, tc := range []struct{ id, from, want string }{
		{"a.b-c_1", "crm@shop.test", "a.b-c_1@shop.test"},
		{"aud:vip:p1", "crm@shop.test", "mf2wiotwnfydu4br@shop.test"},
		{".lead", "crm@shop.test", "fzwgkyle@shop.test"},
		{"x", "crm@[127.0.0.1]", "x@tessera.invalid"},
	} {
		if got := MessageID(tc.id, tc.from); got != tc.want {
			t.Errorf("MessageID(%q, %q) = %q, want %q", tc.id, tc.from, got, tc.want)
		}
	}
}
