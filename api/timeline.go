package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// Timeline reads profiles' recent events where their tasks run: the
// profile stage keeps them in their own store, one entry per event
// (identity.TimelineStore), not in the profile record.
type Timeline struct {
	rt interface {
		StoreReader
		TaskDBs
	}
}

// NewTimeline returns the events half of the profile view.
func NewTimeline(rt interface {
	StoreReader
	TaskDBs
}) *Timeline {
	return &Timeline{rt: rt}
}

// Register mounts the internal route and makes p's events route read the
// timeline.
func (tl *Timeline) Register(s *Server, p *Profiles) {
	s.Handle("GET /internal/v1/timeline/{profile}", p.auth(tl.getLocal))
	p.timeline = func(ctx context.Context, id string, limit int) ([]json.RawMessage, error) {
		return tl.events(ctx, p, id, limit)
	}
}

func (tl *Timeline) local(task topology.TaskID, id string, limit int) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := tl.rt.WithDB(task, func(db *state.DB) error {
		evs, err := identity.ReadTimeline(db.CommittedKeyValue(identity.TimelineStore), id, limit)
		for _, e := range evs {
			out = append(out, e)
		}
		return err
	})
	return out, err
}

func (tl *Timeline) events(ctx context.Context, p *Profiles, id string, limit int) ([]json.RawMessage, error) {
	path := fmt.Sprintf("/internal/v1/timeline/%s?limit=%d", url.PathEscape(id), limit)
	return onOwner(ctx, tl.rt, p, id, "events", path, func(task topology.TaskID) ([]json.RawMessage, error) {
		return tl.local(task, id, limit)
	})
}

func (tl *Timeline) getLocal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("profile")
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 {
		writeError(w, http.StatusBadRequest, "limit must be a positive number")
		return
	}
	serveLocal(w, tl.rt, id, func(task topology.TaskID) ([]json.RawMessage, error) { return tl.local(task, id, limit) })
}
