package sink

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The routes RegisterDeadLetters mounts.
const (
	// DeadLettersRoute lists a destination's dead letters.
	DeadLettersRoute = "GET /v1/destinations/{name}/dead-letters"
	// ReplayRoute sends a destination's dead letters again.
	ReplayRoute = "POST /v1/destinations/{name}/replay"
)

// maxDeadLettersListed bounds what DeadLettersRoute answers: the newest
// ones, so a destination that failed for a day cannot make one page load
// megabytes. The total is still counted.
const maxDeadLettersListed = 1000

// DeadLetterRoutes serves the dead letters of the destinations of a
// Registry over HTTP, reading and replaying the dead-letter topic with
// ListDLQ and ReplayDLQ.
type DeadLetterRoutes struct {
	reg  *Registry
	app  string
	opts []Opt
}

// NewDeadLetterRoutes returns the dead-letter routes of reg's
// destinations for app; opts (Brokers is required, Topics applies to the
// retry topic a replay creates) are passed to ListDLQ and ReplayDLQ.
func NewDeadLetterRoutes(reg *Registry, app string, opts ...Opt) *DeadLetterRoutes {
	return &DeadLetterRoutes{reg: reg, app: app, opts: opts}
}

// Register mounts the routes with handle (api.Server.Handle, wrapped in
// the admin token check, as for Registry.Register):
//
//   - DeadLettersRoute: {"destination": name, "total": N, "pending": N,
//     "dead_letters": [...]}, newest first, at most ?limit=N (1–1000,
//     default 100); pending counts those not replayed yet;
//   - ReplayRoute: sends the dead letters not replayed yet (all of them
//     with ?all=true) through the destination's retry topic and answers
//     {"destination": name, "replayed": N}.
//
// An unknown destination answers 404, a bad parameter 400, a broker error
// 502, each {"error": "…"}.
func (d *DeadLetterRoutes) Register(handle func(pattern string, h http.Handler)) {
	handle(DeadLettersRoute, http.HandlerFunc(d.serveList))
	handle(ReplayRoute, http.HandlerFunc(d.serveReplay))
}

// deadLetterView is a DeadLetter in the API.
type deadLetterView struct {
	Partition    int32     `json:"partition"`
	Offset       int64     `json:"offset"`
	At           time.Time `json:"at"`
	Stage        string    `json:"stage"`
	Attempts     int       `json:"attempts"`
	Error        string    `json:"error"`
	ActivationID string    `json:"activation_id,omitempty"`
	Type         string    `json:"type,omitempty"`
	Name         string    `json:"name,omitempty"`
	ProfileID    string    `json:"profile_id,omitempty"`
	Replayed     bool      `json:"replayed"`
}

func (d *DeadLetterRoutes) serveList(w http.ResponseWriter, req *http.Request) {
	r, ok := d.reg.runner(w, req)
	if !ok {
		return
	}
	limit := 100
	if s := req.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeadLettersListed {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit must be a number from 1 to %d, got %q", maxDeadLettersListed, s)})
			return
		}
		limit = n
	}
	dls, err := ListDLQ(req.Context(), d.app, r.Name(), d.opts...)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	out := []deadLetterView{}
	pending := 0
	// ListDLQ answers oldest first per partition: walk it backwards for
	// the newest, then order by time.
	for i := len(dls) - 1; i >= 0; i-- {
		dl := dls[i]
		if !dl.Replayed {
			pending++
		}
		if len(out) < limit {
			out = append(out, deadLetterView{
				Partition: dl.Partition, Offset: dl.Offset, At: dl.Time, Stage: dl.Stage, Attempts: dl.Attempts,
				Error: dl.Error, ActivationID: dl.Activation.ID, Type: dl.Activation.Type, Name: dl.Activation.Name,
				ProfileID: dl.Activation.ProfileID, Replayed: dl.Replayed,
			})
		}
	}
	sortNewestFirst(out)
	writeJSON(w, http.StatusOK, map[string]any{"destination": r.Name(), "total": len(dls), "pending": pending, "dead_letters": out})
}

// sortNewestFirst orders dead letters by time, newest first, then by
// partition and offset, so the order is the same on every call.
func sortNewestFirst(v []deadLetterView) {
	slices.SortFunc(v, func(a, b deadLetterView) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(b.Offset, a.Offset)
	})
}

func (d *DeadLetterRoutes) serveReplay(w http.ResponseWriter, req *http.Request) {
	r, ok := d.reg.runner(w, req)
	if !ok {
		return
	}
	opts := d.opts
	switch s := req.URL.Query().Get("all"); s {
	case "", "false":
	case "true":
		opts = append(opts[:len(opts):len(opts)], ReplayAll())
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("all must be true or false, got %q", s)})
		return
	}
	n, err := ReplayDLQ(req.Context(), d.app, r.Name(), opts...)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "replayed": n})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"destination": r.Name(), "replayed": n})
}
