package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/predict"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// Limits of the catalog.
const (
	// catalogSample is how many profiles each instance reads to learn the
	// trait keys and event names: the catalog is a menu for the audience
	// builder, not a census, and reading every profile on each page load
	// would not be.
	catalogSample = 2000
	// catalogExamples is how many distinct values a text trait shows.
	catalogExamples = 8
	// catalogTTL is how long a catalog is served before it is sampled
	// again.
	catalogTTL = time.Minute
)

// errSampled stops a scan once catalogSample profiles were read.
var errSampled = errors.New("sampled enough")

// Catalog serves GET /v1/catalog: what an audience rule can refer to.
// Run keeps a sample of it fresh, so a page load only reads it.
type Catalog struct {
	rt     ClusterReader
	defs   *definitions.Store
	models *Models
	token  string
	client *http.Client // for other instances' samples

	// mu guards cached and cachedAt; the view it points to is not
	// modified once kept.
	mu       sync.Mutex
	cached   *CatalogView
	cachedAt time.Time
}

// NewCatalog returns the catalog of the traits seen in profiles, the
// feature definitions in defs, and models' predictions; opts say how it asks other
// instances for their samples.
func NewCatalog(rt ClusterReader, defs *definitions.Store, models *Models, adminToken string, opts ...PeerOpt) *Catalog {
	return &Catalog{rt: rt, defs: defs, models: models, token: adminToken, client: newPeerClient(peerTimeout, opts)}
}

// CatalogView is the answer of GET /v1/catalog.
type CatalogView struct {
	// Traits are the trait keys seen in a sample of profiles, by key.
	Traits []TraitInfo `json:"traits"`
	// Events are the event names seen in the sample (rules count them as
	// events["Order Completed"]).
	Events []string `json:"events"`
	// Features are the feature definitions in force.
	Features []config.Feature `json:"features"`
	// Horizons are the prediction horizons, and PredictionFields what
	// each horizon holds: predictions["30d"].p_alive.
	Horizons         []string    `json:"horizons"`
	PredictionFields []FieldInfo `json:"prediction_fields"`
	// Fitted tells whether a model has been fitted: without one, every
	// profile's predictions are empty.
	Fitted bool `json:"fitted"`
	// Segments are the RFM segment names (rfm.segment), and RFMFields the
	// scores (rfm.r, rfm.f, rfm.m: 1 to 5).
	Segments  []string    `json:"segments"`
	RFMFields []FieldInfo `json:"rfm_fields"`
	// Sampled is how many profiles the traits and events were read from.
	Sampled int       `json:"sampled"`
	AsOf    time.Time `json:"as_of"`
}

// TraitInfo is one trait key in the sample.
type TraitInfo struct {
	Key string `json:"key"`
	// Type is the JSON type most profiles give it: string, number,
	// boolean, array or object.
	Type string `json:"type"`
	// Count is how many sampled profiles have it.
	Count int `json:"count"`
	// Examples are some of its text values, sorted.
	Examples []string `json:"examples,omitempty"`
}

// FieldInfo names a field and says in a sentence what it is.
type FieldInfo struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description"`
}

// predictionFields are the fields of predictions[horizon], as RuleEnv
// fills them.
var predictionFields = []FieldInfo{
	{"p_alive", "number", "Probability this customer is still active, from their purchase history (0 to 1)"},
	{"expected_purchases", "number", "Purchases we expect from this customer over the horizon"},
	{"expected_spend", "number", "Average spend per purchase we expect from this customer"},
	{"clv", "number", "Customer lifetime value over the horizon: expected purchases times expected spend"},
	{"frequency", "number", "Repeat purchases so far"},
	{"recency", "number", "Weeks between the first and the last purchase"},
	{"age", "number", "Weeks since the first purchase"},
}

var rfmFields = []FieldInfo{
	{"r", "number", "Recency score, 1 (long ago) to 5 (recent)"},
	{"f", "number", "Frequency score, 1 (rarely) to 5 (often)"},
	{"m", "number", "Monetary score, 1 (spends little) to 5 (spends most)"},
}

// Register mounts GET /v1/catalog (the viewer may read it) and the
// internal route that samples this instance's profiles.
func (c *Catalog) Register(s *Server, p *Profiles) {
	s.Handle("GET /v1/catalog", p.readable(c.serve))
	s.Handle("GET /internal/v1/catalog/sample", p.auth(func(w http.ResponseWriter, _ *http.Request) {
		smp, err := c.localSample()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, smp)
	}))
}

// profileSample is what one instance learnt from its first profiles.
type profileSample struct {
	Profiles int `json:"profiles"`
	// Types counts, per trait key, the profiles giving it each JSON type.
	Types map[string]map[string]int `json:"types"`
	// Examples are distinct text values per trait key.
	Examples map[string][]string `json:"examples"`
	Events   map[string]int      `json:"events"`
}

func (c *Catalog) localSample() (profileSample, error) {
	out := profileSample{Types: map[string]map[string]int{}, Examples: map[string][]string{}, Events: map[string]int{}}
	err := c.rt.Scan(profileGroup, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
		err := db.RangeCommitted(identity.ProfilesStore, func(_, v []byte) error {
			if out.Profiles >= catalogSample {
				return errSampled
			}
			p, merged, err := identity.LoadProfile(v)
			if err != nil || p == nil || merged != "" {
				return err
			}
			out.Profiles++
			for k, t := range p.Traits {
				var val any
				if t.Value == nil || json.Unmarshal(t.Value, &val) != nil || val == nil {
					continue
				}
				typ := jsonType(val)
				if out.Types[k] == nil {
					out.Types[k] = map[string]int{}
				}
				out.Types[k][typ]++
				if s, ok := val.(string); ok && len(out.Examples[k]) < catalogExamples && len(s) <= 64 && !slices.Contains(out.Examples[k], s) {
					out.Examples[k] = append(out.Examples[k], s)
				}
			}
			for e := range p.Counts {
				out.Events[e]++
			}
			return nil
		})
		if errors.Is(err, errSampled) {
			return nil
		}
		return err
	})
	return out, err
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	}
	return "object"
}

// view builds the catalog, sampling every instance.
func (c *Catalog) view(ctx context.Context) (*CatalogView, error) {
	if err := ready(c.rt); err != nil {
		return nil, err
	}
	eps, err := c.rt.Endpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	total := profileSample{Types: map[string]map[string]int{}, Examples: map[string][]string{}, Events: map[string]int{}}
	for _, ep := range eps {
		var part profileSample
		if ep == c.rt.Endpoint() {
			part, err = c.localSample()
		} else {
			err = callPeer(ctx, c.client, c.token, peerURL(ep, "/internal/v1/catalog/sample"), nil, &part)
		}
		if err != nil {
			return nil, fmt.Errorf("sampling profiles on %s: %w", ep, err)
		}
		total.Profiles += part.Profiles
		for k, types := range part.Types {
			if total.Types[k] == nil {
				total.Types[k] = map[string]int{}
			}
			for t, n := range types {
				total.Types[k][t] += n
			}
		}
		for k, xs := range part.Examples {
			for _, x := range xs {
				if len(total.Examples[k]) < catalogExamples && !slices.Contains(total.Examples[k], x) {
					total.Examples[k] = append(total.Examples[k], x)
				}
			}
		}
		for e, n := range part.Events {
			total.Events[e] += n
		}
	}
	v := &CatalogView{Traits: []TraitInfo{}, Events: []string{}, Features: []config.Feature{}, Horizons: []string{},
		PredictionFields: predictionFields, Segments: predict.Segments(), RFMFields: rfmFields,
		Sampled: total.Profiles, AsOf: time.Now().UTC()}
	for k, types := range total.Types {
		ti := TraitInfo{Key: k}
		best := 0
		for t, n := range types {
			ti.Count += n
			if n > best || (n == best && t < ti.Type) {
				ti.Type, best = t, n
			}
		}
		if ti.Type == "string" {
			ti.Examples = total.Examples[k]
			sort.Strings(ti.Examples)
		}
		v.Traits = append(v.Traits, ti)
	}
	sort.Slice(v.Traits, func(i, j int) bool { return v.Traits[i].Key < v.Traits[j].Key })
	for e := range total.Events {
		v.Events = append(v.Events, e)
	}
	sort.Strings(v.Events)
	for _, d := range c.defs.List("feature") {
		var f config.Feature
		if json.Unmarshal(d.Body, &f) == nil {
			v.Features = append(v.Features, f)
		}
	}
	if c.models != nil {
		for _, h := range c.models.horizons {
			v.Horizons = append(v.Horizons, h.name)
		}
		_, v.Fitted = c.models.Current()
	}
	return v, nil
}

// Run samples the catalog every catalogTTL until ctx is done, so that a
// page load finds it ready; a failed sample (the runtime still starting)
// is tried again after a couple of seconds.
func (c *Catalog) Run(ctx context.Context) {
	for {
		wait := catalogTTL
		if v, err := c.refresh(ctx); err != nil || v.Sampled == 0 {
			wait = sizeRetry // starting, or no profile yet: the first ones are worth showing soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refresh samples the catalog, keeps it and returns it.
func (c *Catalog) refresh(ctx context.Context) (*CatalogView, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.cached, c.cachedAt = v, time.Now()
	c.mu.Unlock()
	return v, nil
}

// serve answers the catalog Run keeps (sampled once if Run has not yet);
// the feature definitions and the model are always the current ones.
func (c *Catalog) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	cached, at := c.cached, c.cachedAt
	c.mu.Unlock()
	// Run refreshes it every catalogTTL; one twice as old means Run is
	// not running (or failing): sample now. An empty store costs nothing
	// to sample, and the first profiles should show at once.
	if cached == nil || cached.Sampled == 0 || time.Since(at) > 2*catalogTTL {
		if _, err := c.refresh(r.Context()); err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, topology.ErrNotReady) {
				status = http.StatusServiceUnavailable
			}
			writeError(w, status, err.Error())
			return
		}
	}
	c.mu.Lock()
	v := *c.cached
	c.mu.Unlock()
	v.Features = []config.Feature{}
	for _, d := range c.defs.List("feature") {
		var f config.Feature
		if json.Unmarshal(d.Body, &f) == nil {
			v.Features = append(v.Features, f)
		}
	}
	if c.models != nil {
		_, v.Fitted = c.models.Current()
	}
	WriteJSON(w, http.StatusOK, v)
}
