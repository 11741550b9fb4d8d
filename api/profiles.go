package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
)

// StoreReader reads the engine's stores wherever their task runs: it is
// what topology.Runtime offers for interactive queries.
type StoreReader interface {
	TaskFor(group int, key []byte) (topology.TaskID, error)
	Get(task topology.TaskID, store string, key []byte) ([]byte, error)
	Owner(ctx context.Context, task topology.TaskID) (string, error)
}

// The sub-topologies of the hub's topology (identity.Add declares the
// identifier stage first).
const (
	identifierGroup = 0
	profileGroup    = 1
)

// maxRedirects bounds how many merged-away profiles a lookup follows; a
// chain is finite by construction, this only guards against a corrupt store.
const maxRedirects = 64

// Profiles serves the profile API: GET /v1/profiles/{type}:{value} and its
// events, from any instance: a store that lives on another instance is
// read through that instance's internal store route.
type Profiles struct {
	stores StoreReader
	token  string // the admin token; also what instances send each other
	viewer string // the read-only token; empty: no viewer
	client *http.Client
	// predict fills a profile's "predictions"; nil leaves them empty.
	predict func(*profile.Profile) map[string]any
	// rfm scores a profile's RFM; nil, or a nil result, leaves it out.
	rfm func(*profile.Profile) *RFMView
	// featureValues computes a profile's features where its task runs;
	// nil leaves them empty.
	featureValues func(ctx context.Context, profileID string, now time.Time) (map[string]any, error)
	// timeline reads a profile's recent events, newest first, where its
	// task runs; nil shows those the record holds (Timeline.Register).
	timeline func(ctx context.Context, profileID string, limit int) ([]json.RawMessage, error)
	// audit records admin actions; nil records none. Set by Audit.
	audit atomic.Pointer[Auditor]
}

// Tokens are the JSON API's bearer tokens. An empty token matches nothing.
type Tokens struct {
	// Admin may do everything.
	Admin string
	// Viewer may read profiles, their events and predictions, and
	// insights; nothing else.
	Viewer string
}

// Role is what a request's bearer token allows.
type Role string

// The roles, from least to most.
const (
	RoleNone   Role = ""
	RoleViewer Role = "viewer"
	RoleAdmin  Role = "admin"
)

// NewProfiles returns the profile API over stores, guarded by tokens; opts say how it
// reads the stores and features that other instances hold.
func NewProfiles(stores StoreReader, tokens Tokens, opts ...PeerOpt) *Profiles {
	return &Profiles{stores: stores, token: tokens.Admin, viewer: tokens.Viewer,
		client: newPeerClient(5*time.Second, opts)}
}

// Register mounts the routes on s.
func (p *Profiles) Register(s *Server) {
	s.Handle("GET /v1/profiles/{ident}", p.readable(p.getProfile))
	s.Handle("GET /v1/profiles/{ident}/events", p.readable(p.getEvents))
	s.Handle("GET /v1/whoami", p.readable(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]Role{"role": p.Role(r)})
	}))
	s.Handle("GET /internal/v1/stores/{group}/{store}/{key}", p.auth(p.getRaw))
	s.Handle("GET /internal/v1/routes", p.auth(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string][]string{"routes": s.Routes()})
	}))
}

// Audit makes every request to an admin route other than GET (and /internal/) write
// an AuditRecord through a, whoever sends it: refused attempts are recorded too. It
// applies to routes mounted before and after the call.
func (p *Profiles) Audit(a *Auditor) { p.audit.Store(a) }

// RequireAdmin guards h with the admin bearer token, for routes other
// packages serve (the destinations' status and delivery log).
func (p *Profiles) RequireAdmin(h http.Handler) http.Handler { return p.auth(h.ServeHTTP) }

// RequireViewer guards h with the viewer or the admin token, for the
// read-only routes other packages serve.
func (p *Profiles) RequireViewer(h http.Handler) http.Handler { return p.readable(h.ServeHTTP) }

// Role tells what r's bearer token allows. Tokens are compared in
// constant time, so a wrong token's timing tells nothing of the right one.
func (p *Profiles) Role(r *http.Request) Role {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		return RoleNone
	case p.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(p.token)) == 1:
		return RoleAdmin
	case p.viewer != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(p.viewer)) == 1:
		return RoleViewer
	}
	return RoleNone
}

// auth accepts only the admin bearer token: a write key is not a token.
func (p *Profiles) auth(h http.HandlerFunc) http.Handler {
	return p.require(RoleAdmin, h)
}

// readable accepts the viewer or the admin token: the route only reads.
func (p *Profiles) readable(h http.HandlerFunc) http.Handler {
	return p.require(RoleViewer, h)
}

func (p *Profiles) require(min Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := p.Role(r)
		if a := p.audit.Load(); a != nil && min == RoleAdmin && audits(r) {
			a.wrap(role, func(w http.ResponseWriter, r *http.Request) { p.serveAs(role, min, h, w, r) })(w, r)
			return
		}
		p.serveAs(role, min, h, w, r)
	})
}

// serveAs answers r with h if role is at least min, else with 401 or 403.
func (p *Profiles) serveAs(role, min Role, h http.HandlerFunc, w http.ResponseWriter, r *http.Request) {
	switch {
	case role == RoleNone:
		w.Header().Set("WWW-Authenticate", `Bearer realm="tessera"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong token: send the admin token (or, to read, the viewer token) as Authorization: Bearer …")
	case role == RoleViewer && min == RoleAdmin:
		writeError(w, http.StatusForbidden, "the viewer token can only read profiles and insights; this needs the admin token")
	default:
		h(w, r)
	}
}

// ProfileView is the JSON of a profile.
type ProfileView struct {
	ID          string                     `json:"id"`
	Identifiers []IdentView                `json:"identifiers"`
	Traits      map[string]json.RawMessage `json:"traits"`
	Features    map[string]any             `json:"features"`
	Predictions map[string]any             `json:"predictions"`
	Audiences   []string                   `json:"audiences"`
	FirstSeen   string                     `json:"first_seen"`
	LastSeen    string                     `json:"last_seen"`
	Events      int64                      `json:"events"`
	EventCounts map[string]int64           `json:"event_counts"`
	MergedFrom  []string                   `json:"merged_from"`
	RFM         *RFMView                   `json:"rfm,omitempty"`
	// Consent is each consent category the person spoke of, granted or
	// not; a destination of a category not granted gets nothing of them.
	Consent map[string]bool `json:"consent"`
}

// IdentView is one identifier in a ProfileView.
type IdentView struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func millis(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// View renders p as the API shows it.
func View(p *profile.Profile) ProfileView {
	v := ProfileView{
		ID: p.ID, Traits: map[string]json.RawMessage{}, Features: map[string]any{}, Predictions: map[string]any{},
		Audiences: []string{}, FirstSeen: millis(p.FirstSeen), LastSeen: millis(p.LastSeen),
		Events: p.Events, EventCounts: p.Counts, MergedFrom: p.MergedFrom, Consent: identity.ConsentView(p),
	}
	for _, id := range p.Identifiers {
		v.Identifiers = append(v.Identifiers, IdentView{Type: id.Type, Value: id.Value})
	}
	for k, t := range p.Traits {
		if t.Value != nil {
			v.Traits[k] = t.Value
		}
	}
	if v.EventCounts == nil {
		v.EventCounts = map[string]int64{}
	}
	if v.MergedFrom == nil {
		v.MergedFrom = []string{}
	}
	if v.Identifiers == nil {
		v.Identifiers = []IdentView{}
	}
	return v
}

var errUnknown = errors.New("unknown")

// found is a profile and the audiences it is in.
type found struct {
	*profile.Profile
	audiences []string
}

// lookup finds the live profile holding ident, following merges.
func (p *Profiles) lookup(ctx context.Context, ident string) (*found, error) {
	if _, err := profile.ParseIdent(ident); err != nil {
		return nil, err
	}
	raw, err := p.read(ctx, identifierGroup, identity.IdentitiesStore, ident)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errUnknown
	}
	id, err := identity.LoadOwner(raw)
	if err != nil {
		return nil, err
	}
	return p.follow(ctx, ident, id)
}

// alive reports whether profile id, or the profile it was merged into,
// is a live profile.
func (p *Profiles) alive(ctx context.Context, id string) (bool, error) {
	_, err := p.follow(ctx, id, id)
	if errors.Is(err, errUnknown) {
		return false, nil
	}
	return err == nil, err
}

// follow reads profile id, following merges to the live profile; what
// names what was asked for, in errors.
func (p *Profiles) follow(ctx context.Context, what, id string) (*found, error) {
	for range maxRedirects {
		raw, err := p.read(ctx, profileGroup, identity.ProfilesStore, id)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			return nil, errUnknown // owner recorded, profile not created yet
		}
		prof, merged, err := identity.LoadProfile(raw)
		if err != nil {
			return nil, err
		}
		if merged == "" {
			if prof == nil {
				return nil, errUnknown
			}
			auds, err := identity.LoadAudiences(raw)
			return &found{prof, auds}, err
		}
		id = merged
	}
	return nil, fmt.Errorf("profile of %s: more than %d merges to follow", what, maxRedirects)
}

// read gets a committed store value from this instance or the task's owner.
func (p *Profiles) read(ctx context.Context, group int, store, key string) ([]byte, error) {
	task, err := p.stores.TaskFor(group, []byte(key))
	if err != nil {
		return nil, err
	}
	v, err := p.stores.Get(task, store, []byte(key))
	if !errors.Is(err, topology.ErrNotLocal) {
		return v, err
	}
	ep, err := p.stores.Owner(ctx, task)
	if err != nil {
		return nil, err
	}
	u := peerURL(ep, fmt.Sprintf("/internal/v1/stores/%d/%s/%s", group, url.PathEscape(store), url.PathEscape(key)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", store, ep, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", store, ep, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusNotFound:
		return nil, nil
	}
	return nil, fmt.Errorf("reading %s from %s: HTTP %d: %s", store, ep, resp.StatusCode, strings.TrimSpace(string(body)))
}

func (p *Profiles) getProfile(w http.ResponseWriter, r *http.Request) {
	ident := r.PathValue("ident")
	prof, err := p.lookup(r.Context(), ident)
	if p.fail(w, ident, err) {
		return
	}
	v := View(prof.Profile)
	v.Audiences = prof.audiences
	if p.featureValues != nil {
		now := time.Now()
		if s := r.URL.Query().Get("as_of"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("as_of must be an RFC 3339 time, got %q", s))
				return
			}
			now = t
		}
		vals, err := p.featureValues(r.Context(), prof.ID, now)
		if err != nil {
			writeError(w, http.StatusBadGateway, "computing features: "+err.Error())
			return
		}
		v.Features = vals
	}
	if p.predict != nil {
		v.Predictions = p.predict(prof.Profile)
	}
	if p.rfm != nil {
		v.RFM = p.rfm(prof.Profile)
	}
	WriteJSON(w, http.StatusOK, v)
}

func (p *Profiles) getEvents(w http.ResponseWriter, r *http.Request) {
	ident := r.PathValue("ident")
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to 1000, got %q", s))
			return
		}
		limit = n
	}
	prof, err := p.lookup(r.Context(), ident)
	if p.fail(w, ident, err) {
		return
	}
	// A record written before the timeline store existed keeps its events
	// inside until its next step moves them.
	events := make([]json.RawMessage, 0, min(limit, len(prof.Recent)))
	for i := len(prof.Recent) - 1; i >= 0 && len(events) < limit; i-- {
		events = append(events, prof.Recent[i])
	}
	if len(events) == 0 && p.timeline != nil {
		if events, err = p.timeline(r.Context(), prof.ID, limit); err != nil {
			writeError(w, http.StatusBadGateway, "reading the timeline: "+err.Error())
			return
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"id": prof.ID, "events": events})
}

// fail answers err, if any, and reports whether it did.
func (p *Profiles) fail(w http.ResponseWriter, ident string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, errUnknown):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no profile has identifier %s", ident))
	case errors.Is(err, topology.ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, "not ready: stores are not assigned yet")
	case strings.Contains(err.Error(), "is not type:value"):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
	return true
}

// getRaw serves a committed store value of a task running here, for other
// instances' lookups.
func (p *Profiles) getRaw(w http.ResponseWriter, r *http.Request) {
	group, err := strconv.Atoi(r.PathValue("group"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "group must be a number")
		return
	}
	key := r.PathValue("key")
	task, err := p.stores.TaskFor(group, []byte(key))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	v, err := p.stores.Get(task, r.PathValue("store"), []byte(key))
	switch {
	case errors.Is(err, topology.ErrNotLocal):
		writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("task %s does not run here", task))
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	case v == nil:
		writeError(w, http.StatusNotFound, "no such key")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	}
}
