// Package api is tessera's HTTP server. It serves /healthz, /readyz and /metrics; the
// Segment tracking API and the /v1/ JSON API are mounted on it with Server.Handle.
//
// Every error is a JSON body {"error": "…"}, including those for unknown routes (404) and
// methods (405).
//
// Shutdown follows Prometheus: on SIGTERM the caller first calls SetStopping, so /readyz
// answers 503 and load balancers stop sending traffic, then Shutdown, which drains the
// requests in flight.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server timeouts. Handlers that stream or take longer extend their own deadlines with
// http.ResponseController.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
)

// Options configure a Server.
type Options struct {
	// Addr is the host:port to listen on. Port 0 picks a free port; Start returns it.
	Addr string
	// Registry is gathered for /metrics. If nil, /metrics is not served.
	Registry *prometheus.Registry
	// Ready reports whether tessera can take traffic: nil when it can, else the reason it
	// cannot (such as "restoring stores"), which /readyz shows. If nil, the server is ready
	// as soon as it starts.
	Ready func() error
	// Logger receives the server's errors. If nil, they are discarded.
	Logger *slog.Logger
	// TLSCertFile and TLSKeyFile, both set, make the server serve HTTPS with that PEM
	// certificate chain and key (http.tls); both empty serve plain HTTP.
	TLSCertFile, TLSKeyFile string
}

// Server is tessera's HTTP server. Create it with New, mount routes with Handle, then
// Start it; stop it with SetStopping and Shutdown.
type Server struct {
	ready    func() error
	log      *slog.Logger
	mux      *http.ServeMux
	srv      *http.Server
	stopping atomic.Bool

	certFile, keyFile string // TLS; empty: plain HTTP

	mu     sync.Mutex
	done   chan struct{} // closed when Serve returns; nil until Start
	shut   bool          // Shutdown was called
	routes []string      // every pattern passed to Handle, in order. REQUIRES: mu.
}

// New returns a Server for opts, with /healthz, /readyz and (given a registry) /metrics
// mounted. It does not listen yet; see Start.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelError)
	s := &Server{ready: opts.Ready, log: log, mux: http.NewServeMux(), certFile: opts.TLSCertFile, keyFile: opts.TLSKeyFile}
	s.srv = &http.Server{
		Addr:              opts.Addr,
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          errLog,
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if opts.Registry != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
			ErrorLog:      errLog,
			ErrorHandling: promhttp.ContinueOnError,
			Registry:      opts.Registry, // counts the handler's own errors
		}))
	}
	return s
}

// Handle mounts h on pattern, an http.ServeMux pattern such as "POST /v1/track" or
// "GET /v1/profiles/{id}". It may be called before or after Start, and panics, as
// ServeMux does, if pattern conflicts with a mounted one.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.mu.Unlock()
}

// Routes returns every pattern mounted with Handle, in the order mounted (not the
// built-in /healthz, /readyz and /metrics), so that tests can try each route.
func (s *Server) Routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes)
}

// SetStopping makes /readyz answer 503 {"status":"stopping"} from now on, while every other
// route keeps serving, so that load balancers drain tessera before Shutdown.
func (s *Server) SetStopping() {
	s.stopping.Store(true)
}

// Start listens on the configured address and serves in a goroutine. It returns the
// address listened on, which tells the port when the configured one is 0.
func (s *Server) Start() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shut:
		return nil, errors.New("api: server is shut down")
	case s.done != nil:
		return nil, errors.New("api: server already started")
	}
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening for HTTP: %w", err)
	}
	if s.servesTLS() {
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("loading http.tls cert_file and key_file: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"}})
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving HTTP", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("HTTP server listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// Endpoint returns what this instance advertises to the others for hostport, the
// address they reach it at: https://hostport when the server serves TLS, so that they
// call it over HTTPS, else hostport bare, which every instance, older ones included,
// calls over plain HTTP (see peerURL).
func (s *Server) Endpoint(hostport string) string {
	if s.servesTLS() {
		return "https://" + hostport
	}
	return hostport
}

// servesTLS reports whether Start serves HTTPS (http.tls).
func (s *Server) servesTLS() bool { return s.certFile != "" || s.keyFile != "" }

// Shutdown sets the server stopping, closes its listener and idle connections, and waits
// until the requests in flight finish or ctx ends, whose error it then returns. The server
// cannot be started again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.SetStopping()
	s.mu.Lock()
	s.shut = true
	done := s.done
	s.mu.Unlock()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("shutting down HTTP server: %w", ctx.Err())
		}
	}
	return nil
}

// ServeHTTP routes r to the handler mounted for it, answering in JSON when there is none
// and when a handler panics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving HTTP", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal error")
		}
	}()
	if h, pattern := s.mux.Handler(r); pattern == "" {
		// No route: the mux would answer 404, or 405 with an Allow header, in plain
		// text. Learn which, and answer in JSON.
		rec := &statusRecorder{header: make(http.Header)}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
			return
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed,
				fmt.Sprintf("method %s not allowed for %s (allowed: %s)", r.Method, r.URL.Path, allow))
			return
		}
		// A redirect to the cleaned path: let the mux answer it.
	}
	s.mux.ServeHTTP(w, r) // routes again, to set r.Pattern and the path values
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.stopping.Load() {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	if s.ready != nil {
		if err := s.ready(); err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeError answers {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// WriteJSON answers v, encoded as JSON, with status: the one way
// tessera's JSON API answers (the console's routes use it too).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client has gone
}

// statusRecorder keeps the status and headers a handler writes, and drops its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return len(b), nil
}
