package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// Limits of the audience-size sampler.
const (
	// SizeInterval is how often AudienceSizes counts the members of every
	// audience: one scan of the profile stores per instance, however many
	// audiences there are.
	// A scan of 100,000 profiles takes a second or more of CPU, so a
	// minute keeps it to a few percent of a core.
	SizeInterval = time.Minute
	// sizePoints is how many samples the trend keeps: an hour at
	// SizeInterval.
	sizePoints = 60
	// sizeMaxAge is how old the newest sample may be when a page asks:
	// an older one is replaced first, so a just-saved audience shows its
	// members without waiting for the next tick.
	sizeMaxAge = 10 * time.Second
)

// SizeSample is one count of every audience's members.
type SizeSample struct {
	At time.Time `json:"at"`
	// Profiles is how many live profiles there are.
	Profiles int64 `json:"profiles"`
	// Members are the profiles in each audience, by name, as the profile
	// stage recorded them (what destinations were told), not a fresh
	// evaluation of the rule: POST /v1/audiences/preview does that.
	Members map[string]int64 `json:"members"`
}

// AudienceSizes counts the members of every audience periodically, over
// every instance, and keeps the last hour of counts for the trend that
// GET /v1/audience-sizes shows. A page load reads the kept samples; it
// scans the stores itself only when the newest is older than sizeMaxAge.
type AudienceSizes struct {
	rt       ClusterReader
	aud      *Audiences
	token    string
	client   *http.Client // for other instances' counts
	log      *slog.Logger
	interval time.Duration

	// scanMu serialises samples, so page loads arriving together scan
	// once.
	scanMu sync.Mutex
	// mu guards samples.
	mu sync.Mutex
	// samples holds the newest sizePoints samples, oldest first.
	samples []SizeSample
}

// NewAudienceSizes returns the sampler of aud's audiences; interval 0
// takes SizeInterval; opts say how it asks other instances for their counts.
func NewAudienceSizes(rt ClusterReader, aud *Audiences, adminToken string, interval time.Duration, log *slog.Logger, opts ...PeerOpt) *AudienceSizes {
	if interval <= 0 {
		interval = SizeInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AudienceSizes{rt: rt, aud: aud, token: adminToken, client: newPeerClient(peerTimeout, opts), interval: interval, log: log}
}

// Register mounts GET /v1/audience-sizes (the viewer may read it) and the
// internal route other instances' samples call.
func (s *AudienceSizes) Register(srv *Server, p *Profiles) {
	srv.Handle("GET /v1/audience-sizes", p.readable(s.serve))
	srv.Handle("GET /internal/v1/audience-sizes", p.auth(func(w http.ResponseWriter, _ *http.Request) {
		sample, err := s.local()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, sample)
	}))
}

// sizeRetry is how soon Run tries again after a failed sample (the
// runtime still starting), rather than waiting a whole interval.
const sizeRetry = 2 * time.Second

// Run samples every interval until ctx is done. A failed sample (the
// stores not assigned yet) is logged and tried again after sizeRetry.
func (s *AudienceSizes) Run(ctx context.Context) {
	for {
		wait := s.interval
		if _, err := s.Sample(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("counting audience members", "err", err)
			wait = min(wait, sizeRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Latest returns the newest sample, if there is one.
func (s *AudienceSizes) Latest() (SizeSample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return SizeSample{}, false
	}
	return s.samples[len(s.samples)-1], true
}

// Sample counts every audience's members over every instance now, keeps
// the count and returns it.
func (s *AudienceSizes) Sample(ctx context.Context) (SizeSample, error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	return s.sampleLocked(ctx)
}

// sampleLocked is Sample; it needs scanMu.
func (s *AudienceSizes) sampleLocked(ctx context.Context) (SizeSample, error) {
	if err := ready(s.rt); err != nil {
		return SizeSample{}, err
	}
	eps, err := s.rt.Endpoints(ctx)
	if err != nil {
		return SizeSample{}, fmt.Errorf("listing instances: %w", err)
	}
	total := SizeSample{At: time.Now().UTC(), Members: map[string]int64{}}
	for _, ep := range eps {
		var part SizeSample
		if ep == s.rt.Endpoint() {
			part, err = s.local()
		} else {
			err = callPeer(ctx, s.client, s.token, peerURL(ep, "/internal/v1/audience-sizes"), nil, &part)
		}
		if err != nil {
			return SizeSample{}, fmt.Errorf("counting audience members on %s: %w", ep, err)
		}
		total.Profiles += part.Profiles
		for k, n := range part.Members {
			total.Members[k] += n
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, total)
	if len(s.samples) > sizePoints {
		s.samples = append(s.samples[:0], s.samples[len(s.samples)-sizePoints:]...)
	}
	s.mu.Unlock()
	return total, nil
}

// fresh returns a sample no older than sizeMaxAge, taking one if needed.
func (s *AudienceSizes) fresh(ctx context.Context) (SizeSample, error) {
	if l, ok := s.Latest(); ok && time.Since(l.At) < sizeMaxAge {
		return l, nil
	}
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	if l, ok := s.Latest(); ok && time.Since(l.At) < sizeMaxAge {
		return l, nil // another request sampled while this one waited
	}
	return s.sampleLocked(ctx)
}

// local counts the members recorded in the profile stores of the tasks
// running here.
func (s *AudienceSizes) local() (SizeSample, error) {
	out := SizeSample{At: time.Now().UTC(), Members: map[string]int64{}}
	err := s.rt.Scan(profileGroup, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
		return db.RangeCommitted(identity.ProfilesStore, func(_, v []byte) error {
			p, merged, err := identity.LoadProfile(v)
			if err != nil || p == nil || merged != "" {
				return err
			}
			out.Profiles++
			auds, err := identity.LoadAudiences(v)
			if err != nil {
				return err
			}
			for _, a := range auds {
				out.Members[a]++
			}
			return nil
		})
	})
	return out, err
}

// AudienceSize is one audience in GET /v1/audience-sizes.
type AudienceSize struct {
	config.Audience
	// Members is the newest count; Trend the kept ones, oldest first.
	Members int64        `json:"members"`
	Trend   []TrendPoint `json:"trend"`
	// UpdatedAt is when the definition was last written.
	UpdatedAt time.Time `json:"updated_at"`
}

// TrendPoint is one count of a trend.
type TrendPoint struct {
	At    time.Time `json:"at"`
	Count int64     `json:"count"`
}

// serve answers {"as_of", "profiles", "profiles_trend", "audiences": [AudienceSize…]}
// by name.
func (s *AudienceSizes) serve(w http.ResponseWriter, r *http.Request) {
	latest, err := s.fresh(r.Context())
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, topology.ErrNotReady) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err.Error())
		return
	}
	s.mu.Lock()
	samples := append([]SizeSample(nil), s.samples...)
	s.mu.Unlock()
	out := []AudienceSize{}
	for _, d := range s.aud.defs.List(audienceKind) {
		var au config.Audience
		if json.Unmarshal(d.Body, &au) != nil {
			continue
		}
		sz := AudienceSize{Audience: au, Members: latest.Members[au.Name], Trend: []TrendPoint{}, UpdatedAt: d.UpdatedAt.UTC()}
		for _, smp := range samples {
			sz.Trend = append(sz.Trend, TrendPoint{At: smp.At, Count: smp.Members[au.Name]})
		}
		out = append(out, sz)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	profiles := make([]TrendPoint, len(samples))
	for i, smp := range samples {
		profiles[i] = TrendPoint{At: smp.At, Count: smp.Profiles}
	}
	WriteJSON(w, http.StatusOK, map[string]any{
		"as_of": latest.At, "profiles": latest.Profiles, "profiles_trend": profiles, "audiences": out,
	})
}

// ready reports whether rt can answer a fan-out query: a runtime that has
// not joined its group yet cannot list the instances (topology.Runtime's
// Ready says so).
func ready(rt ClusterReader) error {
	if r, ok := rt.(interface{ Ready() error }); ok {
		if err := r.Ready(); err != nil {
			return fmt.Errorf("%w: %v", topology.ErrNotReady, err)
		}
	}
	return nil
}
