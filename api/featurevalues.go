package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// TaskDBs gives committed access to a task's store on this instance.
type TaskDBs interface {
	WithDB(task topology.TaskID, fn func(db *state.DB) error) error
}

// FeatureValues computes profiles' feature values where their tasks run,
// with the feature set in force.
type FeatureValues struct {
	rt interface {
		StoreReader
		TaskDBs
	}
	set   func() *features.Set
	token string
}

// NewFeatureValues returns the feature half of the profile view.
func NewFeatureValues(rt interface {
	StoreReader
	TaskDBs
}, set func() *features.Set, adminToken string) *FeatureValues {
	return &FeatureValues{rt: rt, set: set, token: adminToken}
}

// Register mounts the internal route and makes p show features.
func (f *FeatureValues) Register(s *Server, p *Profiles) {
	s.Handle("GET /internal/v1/features/{profile}", p.auth(f.getLocal))
	p.featureValues = func(ctx context.Context, id string, now time.Time) (map[string]any, error) {
		return f.values(ctx, p, id, now)
	}
}

func (f *FeatureValues) local(task topology.TaskID, id string, now time.Time) (map[string]any, error) {
	set := f.set()
	if set == nil {
		return map[string]any{}, nil
	}
	// A Set belongs to the processing goroutine (it reuses buffers); a
	// query reads with a clone.
	set = set.Clone()
	var out map[string]any
	err := f.rt.WithDB(task, func(db *state.DB) error {
		var err error
		out, err = set.Values(db.CommittedWindow(identity.FeaturesStore), []byte(id), now)
		return err
	})
	return out, err
}

func (f *FeatureValues) values(ctx context.Context, p *Profiles, id string, now time.Time) (map[string]any, error) {
	path := fmt.Sprintf("/internal/v1/features/%s?as_of=%s", url.PathEscape(id), url.QueryEscape(now.UTC().Format(time.RFC3339Nano)))
	return onOwner(ctx, f.rt, p, id, "features", path, func(task topology.TaskID) (map[string]any, error) {
		return f.local(task, id, now)
	})
}

func (f *FeatureValues) getLocal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("profile")
	now, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("as_of"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "as_of must be an RFC 3339 time")
		return
	}
	serveLocal(w, f.rt, id, func(task topology.TaskID) (map[string]any, error) { return f.local(task, id, now) })
}
