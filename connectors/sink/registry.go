package sink

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Registry holds the running destinations by name, for the HTTP API: the
// delivery log and the state of each. Its methods are safe for concurrent
// use.
type Registry struct {
	mu      sync.RWMutex
	runners map[string]*Runner
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{runners: make(map[string]*Runner)}
}

// Add adds r; it fails if a Runner of that name is there already.
func (g *Registry) Add(r *Runner) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.runners[r.Name()]; ok {
		return fmt.Errorf("destination %s is registered already", r.Name())
	}
	g.runners[r.Name()] = r
	return nil
}

// Replace adds r in place of the Runner of its name, if any, and returns
// that one.
func (g *Registry) Replace(r *Runner) (old *Runner) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old = g.runners[r.Name()]
	g.runners[r.Name()] = r
	return old
}

// Remove removes the Runner called name and returns it, or nil.
func (g *Registry) Remove(name string) *Runner {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.runners[name]
	delete(g.runners, name)
	return r
}

// Get returns the Runner called name.
func (g *Registry) Get(name string) (*Runner, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	r, ok := g.runners[name]
	return r, ok
}

// The routes Register mounts.
const (
	// DeliveriesRoute serves a destination's delivery log.
	DeliveriesRoute = "GET /v1/destinations/{name}/deliveries"
	// StatusRoute serves a destination's Status.
	StatusRoute = "GET /v1/destinations/{name}/status"
)

// Register mounts the Registry's routes with handle (api.Server.Handle,
// wrapped in the admin token check):
//
//   - DeliveriesRoute: {"destination": name, "deliveries": [...]}, the
//     delivery log newest first; ?limit=N (1–1000, default 100) and
//     ?status=delivered|retrying|dead_lettered filter it;
//   - StatusRoute: the Status.
//
// The list of destinations is the definitions API's (package api), which
// shows each one's Status.
//
// An unknown name answers 404, a bad parameter 400, each {"error": "…"}.
func (g *Registry) Register(handle func(pattern string, h http.Handler)) {
	handle(DeliveriesRoute, http.HandlerFunc(g.serveDeliveries))
	handle(StatusRoute, http.HandlerFunc(g.serveStatus))
}

// deliveryView is a Delivery in the API.
type deliveryView struct {
	ActivationID string    `json:"activation_id"`
	Type         string    `json:"type"`
	Name         string    `json:"name"`
	ProfileID    string    `json:"profile_id"`
	Status       string    `json:"status"`
	Attempts     int       `json:"attempts"`
	Error        string    `json:"error,omitempty"`
	At           time.Time `json:"at"`
	LatencyMS    float64   `json:"latency_ms"`
}

func (g *Registry) serveDeliveries(w http.ResponseWriter, req *http.Request) {
	r, ok := g.runner(w, req)
	if !ok {
		return
	}
	q := req.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > deliveryLogSize {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit must be a number from 1 to %d, got %q", deliveryLogSize, s)})
			return
		}
		limit = n
	}
	status := q.Get("status")
	switch status {
	case "", StatusDelivered, StatusRetrying, StatusDeadLettered:
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("status must be %s, %s or %s, got %q", StatusDelivered, StatusRetrying, StatusDeadLettered, status)})
		return
	}
	out := []deliveryView{}
	for _, d := range r.Deliveries() {
		if len(out) == limit {
			break
		}
		if status != "" && d.Status != status {
			continue
		}
		out = append(out, deliveryView{
			ActivationID: d.ActivationID, Type: d.Type, Name: d.Name, ProfileID: d.ProfileID,
			Status: d.Status, Attempts: d.Attempts, Error: d.Error, At: d.At,
			LatencyMS: float64(d.Latency) / float64(time.Millisecond),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"destination": r.Name(), "deliveries": out})
}

func (g *Registry) serveStatus(w http.ResponseWriter, req *http.Request) {
	if r, ok := g.runner(w, req); ok {
		writeJSON(w, http.StatusOK, r.Status())
	}
}

// runner returns the Runner the request names, or answers 404.
func (g *Registry) runner(w http.ResponseWriter, req *http.Request) (*Runner, bool) {
	name := req.PathValue("name")
	r, ok := g.Get(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no destination named %q is running", name)})
	}
	return r, ok
}

// writeJSON answers v, encoded as JSON, with status, as package api does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client has gone
}
