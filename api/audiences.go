package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// audienceKind is the definitions kind of audiences.
const audienceKind = "audience"

// Audiences serves /v1/audiences (definitions) and the preview.
type Audiences struct {
	defs     *definitions.Store
	routes   definitionRoutes
	rt       ClusterReader
	models   *Models
	features func() *features.Set
	token    string
	client   *http.Client // for other instances' previews
}

// NewAudiences returns the audiences API; opts say how its preview asks other
// instances for their members.
func NewAudiences(defs *definitions.Store, rt ClusterReader, models *Models, feats func() *features.Set, adminToken string, opts ...PeerOpt) *Audiences {
	return &Audiences{defs: defs, rt: rt, models: models, features: feats, token: adminToken, client: newPeerClient(peerTimeout, opts),
		routes: definitionRoutes{defs: defs, kind: audienceKind, plural: "audiences"}}
}

// Seed publishes the config's audiences that are missing or different.
func (a *Audiences) Seed(ctx context.Context, auds []config.Audience) error {
	for _, au := range auds {
		if err := a.put(ctx, au); err != nil {
			return err
		}
	}
	return nil
}

func (a *Audiences) put(ctx context.Context, au config.Audience) error {
	body, err := json.Marshal(au)
	if err != nil {
		return err
	}
	return a.routes.publish(ctx, au.Name, body)
}

// Definitions returns the audiences in force, for compiling, each with the
// time its definition was written.
func (a *Audiences) Definitions() []audience.Definition {
	var out []audience.Definition
	for _, d := range a.defs.List(audienceKind) {
		var au config.Audience
		if json.Unmarshal(d.Body, &au) != nil {
			continue
		}
		out = append(out, audience.Definition{Name: au.Name, Rule: au.Rule, Destinations: au.Destinations,
			ActivateExisting: au.ActivateExisting, CreatedAt: d.UpdatedAt.UnixMilli()})
	}
	return out
}

// Register mounts the routes on s.
func (a *Audiences) Register(s *Server, p *Profiles) {
	a.routes.register(s, p, a.write)
	s.Handle("POST /v1/audiences/preview", p.auth(a.preview))
	s.Handle("POST /internal/v1/audiences/preview", p.auth(a.localPreview))
}

func (a *Audiences) write(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var au config.Audience
	if err := dec.Decode(&au); err != nil {
		writeError(w, http.StatusBadRequest, "audience: "+err.Error())
		return
	}
	name, problem := nameFromPath(r, au.Name)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	au.Name = name
	if au.Name == "" {
		writeError(w, http.StatusBadRequest, "audience: name is required")
		return
	}
	for i, dn := range au.Destinations {
		if _, ok := a.defs.Get(destinationKind, dn); !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("audience: destinations[%d]: no destination named %q", i, dn))
			return
		}
	}
	if _, err := audience.Compile([]audience.Definition{{Name: au.Name, Rule: au.Rule}}, nil); err != nil {
		var re *audience.RuleError
		if errors.As(err, &re) {
			WriteJSON(w, http.StatusBadRequest, map[string]any{"error": re.Error(), "line": re.Line, "column": re.Column})
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := a.put(r.Context(), au); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	WriteJSON(w, status, au)
}

// Preview is the answer of POST /v1/audiences/preview.
type Preview struct {
	Count   int64    `json:"count"`
	Sample  []string `json:"sample"`
	Scanned int64    `json:"scanned"`
}

// previewSample is how many matching profile ids a preview returns.
const previewSample = 10

type previewRequest struct {
	Rule string `json:"rule"`
}

func (a *Audiences) decodeRule(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req previewRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || strings.TrimSpace(req.Rule) == "" {
		writeError(w, http.StatusBadRequest, `body must be {"rule": "..."}`)
		return "", false
	}
	if _, err := audience.CompileRule(req.Rule); err != nil {
		var re *audience.RuleError
		if errors.As(err, &re) {
			WriteJSON(w, http.StatusBadRequest, map[string]any{"error": re.Error(), "line": re.Line, "column": re.Column})
		} else {
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return "", false
	}
	return req.Rule, true
}

// preview counts the profiles matching a rule over every instance.
func (a *Audiences) preview(w http.ResponseWriter, r *http.Request) {
	rule, ok := a.decodeRule(w, r)
	if !ok {
		return
	}
	eps, err := a.rt.Endpoints(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	total := Preview{Sample: []string{}}
	body, _ := json.Marshal(previewRequest{Rule: rule})
	for _, ep := range eps {
		var part Preview
		if ep == a.rt.Endpoint() {
			part, err = a.localCount(rule, time.Now())
		} else {
			err = callPeer(r.Context(), a.client, a.token, peerURL(ep, "/internal/v1/audiences/preview"), body, &part)
		}
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("preview on %s: %v", ep, err))
			return
		}
		total.Count += part.Count
		total.Scanned += part.Scanned
		for _, id := range part.Sample {
			if len(total.Sample) < previewSample {
				total.Sample = append(total.Sample, id)
			}
		}
	}
	sort.Strings(total.Sample)
	WriteJSON(w, http.StatusOK, total)
}

func (a *Audiences) localPreview(w http.ResponseWriter, r *http.Request) {
	rule, ok := a.decodeRule(w, r)
	if !ok {
		return
	}
	p, err := a.localCount(rule, time.Now())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, p)
}

// localCount evaluates rule over the profiles of the tasks running here,
// several tasks at once. It builds only the parts of each profile's
// environment that the rule names: decoding every trait, reading feature
// tiles and scoring predictions cost more than the match itself.
func (a *Audiences) localCount(rule string, now time.Time) (Preview, error) {
	prog, err := audience.CompileRule(rule)
	if err != nil {
		return Preview{}, err
	}
	needs := audience.NeedsOf(rule)
	var set *features.Set
	if needs.Features && a.features != nil {
		if set = a.features(); set != nil && needs.FeatureNames != nil {
			if set, err = set.Select(needs.FeatureNames); err != nil {
				return Preview{}, err
			}
		}
	}
	var predict func(*profile.Profile) (map[string]any, map[string]any)
	if a.models != nil {
		predict = a.models.RuleEnv
	}
	var mu sync.Mutex // guards out
	out := Preview{Sample: []string{}}
	err = a.rt.ScanParallel(profileGroup, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
		var part Preview
		var sample []string
		var taskSet *features.Set
		if set != nil {
			taskSet = set.Clone() // a Set's buffers are its goroutine's own
		}
		window := db.CommittedWindow(identity.FeaturesStore)
		err := db.RangeCommitted(identity.ProfilesStore, func(_, v []byte) error {
			p, merged, err := identity.LoadProfile(v)
			if err != nil || p == nil || merged != "" {
				return err
			}
			part.Scanned++
			env, err := identity.RuleEnv(p, needs, taskSet, window, now, predict)
			if err != nil {
				return err
			}
			if audience.Match(prog, env) {
				part.Count++
				if len(sample) < previewSample {
					sample = append(sample, p.ID)
				}
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		out.Count += part.Count
		out.Scanned += part.Scanned
		for _, id := range sample {
			if len(out.Sample) < previewSample {
				out.Sample = append(out.Sample, id)
			}
		}
		return err
	})
	return out, err
}
