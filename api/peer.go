package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Calls between instances. An instance reads the stores and partial results of the
// tasks that run elsewhere through the owner's /internal/v1/ routes, at the endpoint
// the owner advertises in the consumer group (Server.Endpoint): https://host:port
// when it serves http.tls, else a bare host:port, meaning plain HTTP, as instances
// without http.tls and older ones advertise. peerURL reads it back.
//
// Every call carries the admin token, so with http.tls on it must go over HTTPS and
// check the peer's certificate, server name included: the transport comes from
// NewPeerTransport, shared by every component through the PeerTransport option.

// peerTimeout bounds the fan-out calls (catalog samples, audience sizes and
// previews), which scan a whole instance's stores.
const peerTimeout = time.Minute

// PeerOpt configures how a component of the API calls other instances; NewProfiles,
// NewModels, NewAudiences, NewAudienceSizes and NewCatalog take them.
type PeerOpt interface{ applyPeer(*peerCfg) }

type peerCfg struct {
	transport http.RoundTripper // nil: http.DefaultTransport
}

type peerOptFunc func(*peerCfg)

func (f peerOptFunc) applyPeer(c *peerCfg) { f(c) }

// PeerTransport makes a component call other instances through t, overriding the
// default, http.DefaultTransport, which trusts the system's roots only. Give every
// component the same t (from NewPeerTransport) so they share its connections.
func PeerTransport(t http.RoundTripper) PeerOpt {
	return peerOptFunc(func(c *peerCfg) { c.transport = t })
}

// NewPeerTransport returns a transport for calls to other instances: the settings of
// http.DefaultTransport, with TLS 1.2 or later verified against roots (nil: the
// system's roots, as http.tls.ca_file empty means). Server names are verified as
// always: each instance's certificate must name the host it advertises, its hostname
// when it listens on every interface, else its listen host or IP.
func NewPeerTransport(roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return t
}

// newPeerClient returns the client a component calls other instances with, each
// call bounded by timeout.
func newPeerClient(timeout time.Duration, opts []PeerOpt) *http.Client {
	var c peerCfg
	for _, o := range opts {
		o.applyPeer(&c)
	}
	return &http.Client{Timeout: timeout, Transport: c.transport}
}

// peerURL returns the URL of path (which starts with /) on the instance that
// advertises ep: ep itself when it carries a scheme, else http://ep, since a bare
// host:port is what an instance serving plain HTTP advertises.
func peerURL(ep, path string) string {
	if strings.Contains(ep, "://") {
		return strings.TrimSuffix(ep, "/") + path
	}
	return "http://" + ep + path
}

// callPeer sends a request to another instance's internal route with the
// admin token and decodes its JSON answer into v; body nil makes a GET.
func callPeer(ctx context.Context, client *http.Client, token, url string, body []byte, v any) error {
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
