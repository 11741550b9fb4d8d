package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/predict"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
)

// ClusterReader is what the models need of the runtime beyond a
// StoreReader: the local stores to scan, and the other instances to ask.
type ClusterReader interface {
	StoreReader
	Scan(group int, store string, fn func(task topology.TaskID, db *state.DB) error) error
	ScanParallel(group int, store string, fn func(task topology.TaskID, db *state.DB) error) error
	Endpoints(ctx context.Context) ([]string, error)
	Endpoint() string
	Runs(task topology.TaskID) bool
}

// modelName is the definition (kind "model") that holds the fitted
// parameters of both models.
const modelName = "clv"

// Fitted is the published result of a fit.
type Fitted struct {
	BGNBD      BGNBDView       `json:"bgnbd"`
	GammaGamma *GammaGammaView `json:"gamma_gamma"`
	// RFM holds the population's quintile boundaries as of the fit.
	RFM      *predict.RFMBins `json:"rfm_bins,omitempty"`
	AsOf     string           `json:"as_of"`
	FittedAt time.Time        `json:"fitted_at"`
}

// BGNBDView is the BG/NBD part of Fitted.
type BGNBDView struct {
	R             float64 `json:"r"`
	Alpha         float64 `json:"alpha"`
	A             float64 `json:"a"`
	B             float64 `json:"b"`
	LogLikelihood float64 `json:"log_likelihood"`
	Customers     int     `json:"customers"`
}

// GammaGammaView is the Gamma-Gamma part of Fitted.
type GammaGammaView struct {
	P         float64 `json:"p"`
	Q         float64 `json:"q"`
	Gamma     float64 `json:"gamma"`
	Customers int     `json:"customers"`
}

// Models fits the BG/NBD and Gamma-Gamma models over every instance's
// profiles, publishes the parameters as a definition, and scores profiles
// with the newest ones.
//
// Each instance computes the histogram of its own profiles' (frequency,
// recency, age) and spend on demand, by scanning its profile stores as of
// the requested day, rather than keeping one up to date per event: a fit is
// rare, a scan of 100,000 profiles takes a fraction of a second, and any
// as-of day (a backtest) costs the same as today.
type Models struct {
	rt     ClusterReader
	defs   *definitions.Store
	cfg    config.Predictions
	token  string
	client *http.Client
	log    *slog.Logger

	horizons []namedHorizon
	// features returns the feature set in force, for the insights; nil
	// shows no feature distributions.
	features func() *features.Set

	// insights caches the population insights for ?max_age
	// (insightscache.go).
	insights insightsCache

	// mu guards the decoded fit cached by Current.
	mu         sync.Mutex
	cached     Fitted
	cachedAt   time.Time
	cachedBody []byte
	cachedOK   bool
}

// ShowFeatures makes the insights include the distributions of the
// features in force.
func (m *Models) ShowFeatures(set func() *features.Set) { m.features = set }

type namedHorizon struct {
	name  string
	weeks float64
}

// NewModels returns the models API; opts say how it asks other instances for their
// histograms and insights.
func NewModels(rt ClusterReader, defs *definitions.Store, cfg config.Predictions, adminToken string, log *slog.Logger, opts ...PeerOpt) (*Models, error) {
	m := &Models{rt: rt, defs: defs, cfg: cfg, token: adminToken, client: newPeerClient(60*time.Second, opts), log: log}
	for _, h := range cfg.Horizons {
		d, err := config.ParseWindow(h)
		if err != nil {
			return nil, fmt.Errorf("predictions horizon %q: %w", h, err)
		}
		m.horizons = append(m.horizons, namedHorizon{name: h, weeks: d.Hours() / 24 / 7})
	}
	return m, nil
}

// Register mounts the routes on s; p is the profile API to look profiles
// up with, which also shows predictions from now on.
func (m *Models) Register(s *Server, p *Profiles) {
	auth := p.auth
	s.Handle("GET /v1/models", auth(m.getModels))
	s.Handle("POST /v1/models/fit", auth(m.postFit))
	s.Handle("GET /v1/profiles/{ident}/predictions", p.readable(func(w http.ResponseWriter, r *http.Request) { m.getPredictions(w, r, p) }))
	s.Handle("GET /internal/v1/histogram", auth(m.getHistogram))
	s.Handle("GET /v1/insights", p.readable(m.getInsights))
	s.Handle("GET /internal/v1/insights", auth(m.getLocalInsights))
	p.predict = m.profilePredictions
	p.rfm = m.profileRFM
}

// RFMView is a profile's RFM scores and named segment.
type RFMView struct {
	R       int    `json:"r"`
	F       int    `json:"f"`
	M       int    `json:"m"`
	Segment string `json:"segment"`
}

// profileRFM scores p against the published quintiles.
func (m *Models) profileRFM(p *profile.Profile) *RFMView {
	f, ok := m.Current()
	if !ok || f.RFM == nil {
		return nil
	}
	asOf, err := time.Parse(time.DateOnly, f.AsOf)
	if err != nil {
		return nil
	}
	c, ok := customerOf(p, predict.DayOf(asOf))
	if !ok {
		return nil
	}
	r, fr, mo := f.RFM.ScoreCustomer(c)
	return &RFMView{R: r, F: fr, M: mo, Segment: predict.Segment(r, fr, mo)}
}

// Insights is the population view the console draws.
type Insights struct {
	Profiles  int64            `json:"profiles"`
	Customers int64            `json:"customers"`
	PAlive    []int64          `json:"p_alive_histogram"`
	RFM       map[string]int64 `json:"rfm_segments"`
	Events    map[string]int64 `json:"event_counts"`
	AsOf      string           `json:"as_of,omitempty"`
	Instances int              `json:"instances"`
	// Features holds, per numeric feature, a histogram of its values over
	// a sample of profiles (the first featureSample of each instance).
	Features map[string]*Distribution `json:"features,omitempty"`
	// Samples are the raw values behind Features, from one instance.
	Samples map[string][]float64 `json:"samples,omitempty"`
}

// pAliveBuckets splits [0, 1] into tenths for the p_alive histogram.
const pAliveBuckets = 10

func (m *Models) localInsights() (Insights, error) {
	in := Insights{PAlive: make([]int64, pAliveBuckets), RFM: map[string]int64{}, Events: map[string]int64{}, Samples: map[string][]float64{}}
	var set *features.Set
	if m.features != nil {
		if s := m.features(); s != nil {
			set = s.Clone()
		}
	}
	now := time.Now()
	f, fitted := m.Current()
	var asOf predict.Day
	if fitted {
		t, _ := time.Parse(time.DateOnly, f.AsOf)
		asOf = predict.DayOf(t)
		in.AsOf = f.AsOf
	}
	bg := predict.BGNBD{R: f.BGNBD.R, Alpha: f.BGNBD.Alpha, A: f.BGNBD.A, B: f.BGNBD.B}
	sampled := 0
	err := m.rt.Scan(profileGroup, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
		window := db.CommittedWindow(identity.FeaturesStore)
		return db.RangeCommitted(identity.ProfilesStore, func(_, v []byte) error {
			p, merged, err := identity.LoadProfile(v)
			if err != nil || p == nil || merged != "" {
				return err
			}
			in.Profiles++
			if set != nil && sampled < featureSample {
				sampled++
				vals, err := set.Values(window, []byte(p.ID), now)
				if err != nil {
					return err
				}
				for name, val := range vals {
					if x, ok := numeric(val); ok {
						in.Samples[name] = append(in.Samples[name], x)
					}
				}
			}
			for k, n := range p.Counts {
				in.Events[k] += n
			}
			if !fitted {
				return nil
			}
			c, ok := customerOf(p, asOf)
			if !ok {
				return nil
			}
			in.Customers++
			x, tx, T := c.Weeks()
			b := int(bg.PAlive(x, tx, T) * pAliveBuckets)
			in.PAlive[min(max(b, 0), pAliveBuckets-1)]++
			if f.RFM != nil {
				r, fr, mo := f.RFM.ScoreCustomer(c)
				in.RFM[predict.Segment(r, fr, mo)]++
			}
			return nil
		})
	})
	return in, err
}

func (m *Models) getLocalInsights(w http.ResponseWriter, _ *http.Request) {
	in, err := m.localInsights()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, in)
}

// getInsights adds up every instance's local insights; with ?max_age it
// answers from the cache instead (insightscache.go).
func (m *Models) getInsights(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("max_age") {
		m.cachedInsights(w, r)
		return
	}
	total, err := m.gatherInsights(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, total)
}

// gatherInsights adds up every instance's local insights.
func (m *Models) gatherInsights(ctx context.Context) (Insights, error) {
	eps, err := m.rt.Endpoints(ctx)
	if err != nil {
		return Insights{}, err
	}
	total := Insights{PAlive: make([]int64, pAliveBuckets), RFM: map[string]int64{}, Events: map[string]int64{}, Samples: map[string][]float64{}}
	for _, name := range predict.Segments() {
		total.RFM[name] = 0
	}
	for _, ep := range eps {
		var part Insights
		if ep == m.rt.Endpoint() {
			part, err = m.localInsights()
		} else {
			err = callPeer(ctx, m.client, m.token, peerURL(ep, "/internal/v1/insights"), nil, &part)
		}
		if err != nil {
			return Insights{}, fmt.Errorf("insights from %s: %w", ep, err)
		}
		total.Profiles += part.Profiles
		total.Customers += part.Customers
		for i := range min(len(part.PAlive), pAliveBuckets) {
			total.PAlive[i] += part.PAlive[i]
		}
		for k, n := range part.RFM {
			total.RFM[k] += n
		}
		for k, n := range part.Events {
			total.Events[k] += n
		}
		for k, xs := range part.Samples {
			total.Samples[k] = append(total.Samples[k], xs...)
		}
		total.AsOf = part.AsOf
		total.Instances++
	}
	total.Features = map[string]*Distribution{}
	for k, xs := range total.Samples {
		total.Features[k] = distribution(xs, distributionBins)
	}
	total.Samples = nil
	return total, nil
}

// featureSample bounds the profiles whose features each instance reads
// for the insights: computing a profile's features reads its tiles, so a
// sample keeps the page quick on large populations.
const featureSample = 5000

// distributionBins is the number of bins of a feature's histogram.
const distributionBins = 10

// Distribution is a histogram of values: Counts[i] holds the values in
// [Min + i·Width, Min + (i+1)·Width), the last bin closed.
type Distribution struct {
	Sampled int     `json:"sampled"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Width   float64 `json:"width"`
	Counts  []int64 `json:"counts"`
}

func distribution(xs []float64, bins int) *Distribution {
	d := &Distribution{Sampled: len(xs), Counts: make([]int64, bins)}
	if len(xs) == 0 {
		return d
	}
	d.Min, d.Max = xs[0], xs[0]
	var sum float64
	for _, x := range xs {
		d.Min, d.Max = min(d.Min, x), max(d.Max, x)
		sum += x
	}
	d.Mean = sum / float64(len(xs))
	d.Width = (d.Max - d.Min) / float64(bins)
	for _, x := range xs {
		i := bins - 1
		if d.Width > 0 {
			i = min(int((x-d.Min)/d.Width), bins-1)
		}
		d.Counts[i]++
	}
	return d
}

func numeric(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Current returns the newest published fit. It is read on every audience
// evaluation, so the decoded fit is cached until the definition changes.
func (m *Models) Current() (Fitted, bool) {
	d, ok := m.defs.Get("model", modelName)
	if !ok {
		return Fitted{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cachedOK && m.cachedAt.Equal(d.UpdatedAt) && bytes.Equal(m.cachedBody, d.Body) {
		return m.cached, true
	}
	var f Fitted
	if err := json.Unmarshal(d.Body, &f); err != nil {
		return Fitted{}, false
	}
	m.cached, m.cachedAt, m.cachedBody, m.cachedOK = f, d.UpdatedAt, d.Body, true
	return f, true
}

func (m *Models) getModels(w http.ResponseWriter, _ *http.Request) {
	f, ok := m.Current()
	if !ok {
		writeError(w, http.StatusNotFound, "no model fitted yet: POST /v1/models/fit, or wait for the scheduled fit")
		return
	}
	WriteJSON(w, http.StatusOK, f)
}

func (m *Models) postFit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AsOf string `json:"as_of"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body must be {\"as_of\": \"YYYY-MM-DD\"}: "+err.Error())
			return
		}
	}
	asOf := predict.DayOf(time.Now())
	if req.AsOf != "" {
		t, err := time.Parse(time.DateOnly, req.AsOf)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("as_of must be a date YYYY-MM-DD, got %q", req.AsOf))
			return
		}
		asOf = predict.DayOf(t)
	}
	f, err := m.Fit(r.Context(), asOf)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, f)
}

// Fit gathers every instance's histogram as of asOf, fits both models and
// publishes the parameters.
func (m *Models) Fit(ctx context.Context, asOf predict.Day) (Fitted, error) {
	eps, err := m.rt.Endpoints(ctx)
	if err != nil {
		return Fitted{}, err
	}
	h := predict.NewHistogram(asOf)
	for _, ep := range eps {
		var part *predict.Histogram
		if ep == m.rt.Endpoint() {
			part, err = m.localHistogram(asOf)
		} else {
			part, err = m.remoteHistogram(ctx, ep, asOf)
		}
		if err != nil {
			return Fitted{}, err
		}
		if err := h.Merge(part); err != nil {
			return Fitted{}, fmt.Errorf("merging %s's histogram: %w", ep, err)
		}
	}
	bg, err := predict.FitBGNBD(h)
	if err != nil {
		return Fitted{}, fmt.Errorf("fitting BG/NBD as of %s: %w", asOf, err)
	}
	f := Fitted{
		BGNBD: BGNBDView{R: bg.R, Alpha: bg.Alpha, A: bg.A, B: bg.B, LogLikelihood: bg.LogLikelihood, Customers: bg.Customers},
		AsOf:  asOf.String(), FittedAt: time.Now().UTC(),
	}
	bins := h.RFMBins()
	f.RFM = &bins
	if gg, err := predict.FitGammaGamma(h); err == nil {
		f.GammaGamma = &GammaGammaView{P: gg.P, Q: gg.Q, Gamma: gg.Gamma, Customers: gg.Customers}
	} else if !errors.Is(err, predict.ErrNoCustomers) {
		m.log.Warn("fitting Gamma-Gamma", "err", err)
	}
	body, err := json.Marshal(f)
	if err != nil {
		return Fitted{}, err
	}
	if err := m.defs.Put(ctx, "model", modelName, body); err != nil {
		return Fitted{}, err
	}
	m.log.Info("models fitted", "as_of", f.AsOf, "customers", bg.Customers, "r", bg.R, "alpha", bg.Alpha, "a", bg.A, "b", bg.B)
	return f, nil
}

// customerOf turns a profile's purchase days into model inputs as of asOf.
func customerOf(p *profile.Profile, asOf predict.Day) (predict.Customer, bool) {
	if len(p.Purchases) == 0 {
		return predict.Customer{}, false
	}
	days := make([]predict.Day, 0, len(p.Purchases))
	spends := make([]float64, 0, len(p.Purchases))
	for d, s := range p.Purchases {
		days = append(days, predict.Day(d))
		spends = append(spends, s)
	}
	return predict.FromPurchases(days, spends, asOf)
}

// localHistogram scans the profiles of the tasks running here.
func (m *Models) localHistogram(asOf predict.Day) (*predict.Histogram, error) {
	h := predict.NewHistogram(asOf)
	err := m.rt.Scan(profileGroup, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
		return db.RangeCommitted(identity.ProfilesStore, func(_, v []byte) error {
			p, merged, err := identity.LoadProfile(v)
			if err != nil || p == nil || merged != "" {
				return err
			}
			if c, ok := customerOf(p, asOf); ok {
				return h.Add(c)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("scanning profiles: %w", err)
	}
	return h, nil
}

func (m *Models) getHistogram(w http.ResponseWriter, r *http.Request) {
	t, err := time.Parse(time.DateOnly, r.URL.Query().Get("as_of"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "as_of must be a date YYYY-MM-DD")
		return
	}
	h, err := m.localHistogram(predict.DayOf(t))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	b, err := h.MarshalBinary()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(b)
}

func (m *Models) remoteHistogram(ctx context.Context, ep string, asOf predict.Day) (*predict.Histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(ep, "/internal/v1/histogram?as_of="+asOf.String()), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %s for its histogram: %w", ep, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("asking %s for its histogram: HTTP %d %s %v", ep, resp.StatusCode, b, err)
	}
	h := predict.NewHistogram(asOf)
	if err := h.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decoding %s's histogram: %w", ep, err)
	}
	return h, nil
}

// Prediction is one profile's scores over a horizon.
type Prediction struct {
	Horizon           string  `json:"horizon"`
	PAlive            float64 `json:"p_alive"`
	ExpectedPurchases float64 `json:"expected_purchases"`
	ExpectedSpend     float64 `json:"expected_spend,omitempty"`
	CLV               float64 `json:"clv,omitempty"`
	Frequency         int     `json:"frequency"`
	Recency           float64 `json:"recency"`
	Age               float64 `json:"age"`
	AsOf              string  `json:"as_of"`
}

// score predicts p over horizonWeeks with f's parameters, as of f's day.
func score(f Fitted, p *profile.Profile, horizon string, horizonWeeks float64) (Prediction, bool) {
	asOf, err := time.Parse(time.DateOnly, f.AsOf)
	if err != nil {
		return Prediction{}, false
	}
	c, ok := customerOf(p, predict.DayOf(asOf))
	if !ok {
		return Prediction{}, false
	}
	x, tx, T := c.Weeks()
	bg := predict.BGNBD{R: f.BGNBD.R, Alpha: f.BGNBD.Alpha, A: f.BGNBD.A, B: f.BGNBD.B}
	out := Prediction{
		Horizon: horizon, PAlive: bg.PAlive(x, tx, T), ExpectedPurchases: bg.ExpectedPurchases(horizonWeeks, x, tx, T),
		Frequency: c.Frequency, Recency: tx, Age: T, AsOf: f.AsOf,
	}
	if f.GammaGamma != nil {
		gg := predict.GammaGamma{P: f.GammaGamma.P, Q: f.GammaGamma.Q, Gamma: f.GammaGamma.Gamma}
		out.ExpectedSpend = gg.ExpectedSpend(x, c.MeanSpend)
		out.CLV = predict.CLV(bg, gg, horizonWeeks, x, tx, T, c.MeanSpend, 0)
	}
	return out, true
}

// profilePredictions is the "predictions" of the profile view: one entry
// per configured horizon.
func (m *Models) profilePredictions(p *profile.Profile) map[string]any {
	out := map[string]any{}
	f, ok := m.Current()
	if !ok {
		return out
	}
	for _, h := range m.horizons {
		if pr, ok := score(f, p, h.name, h.weeks); ok {
			out[h.name] = pr
		}
	}
	return out
}

func (m *Models) getPredictions(w http.ResponseWriter, r *http.Request, p *Profiles) {
	horizon := r.URL.Query().Get("horizon")
	if horizon == "" {
		horizon = "39w"
	}
	d, err := config.ParseWindow(horizon)
	if err != nil || d == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("horizon must be a span such as 30d or 39w, got %q", horizon))
		return
	}
	f, ok := m.Current()
	if !ok {
		writeError(w, http.StatusNotFound, "no model fitted yet: POST /v1/models/fit")
		return
	}
	ident := r.PathValue("ident")
	prof, err := p.lookup(r.Context(), ident)
	if p.fail(w, ident, err) {
		return
	}
	pr, ok := score(f, prof.Profile, horizon, d.Hours()/24/7)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s has no purchase on or before %s to predict from", ident, f.AsOf))
		return
	}
	WriteJSON(w, http.StatusOK, pr)
}

// RunSchedule refits every interval, on the instance that runs the first
// profile task, until ctx is done.
func (m *Models) RunSchedule(ctx context.Context) {
	t := time.NewTicker(time.Duration(m.cfg.FitInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.rt.Runs(topology.TaskID{Group: profileGroup, Partition: 0}) {
			continue
		}
		if _, err := m.Fit(ctx, predict.DayOf(time.Now())); err != nil && !errors.Is(err, predict.ErrNoCustomers) {
			m.log.Warn("scheduled fit", "err", err)
		}
	}
}

// RuleEnv is what audience rules see of p's predictions (by horizon, with
// the API's field names) and RFM scores; empty maps when no model is
// fitted.
func (m *Models) RuleEnv(p *profile.Profile) (predictions, rfm map[string]any) {
	predictions, rfm = map[string]any{}, map[string]any{}
	f, ok := m.Current()
	if !ok {
		return predictions, rfm
	}
	for _, h := range m.horizons {
		if pr, ok := score(f, p, h.name, h.weeks); ok {
			predictions[h.name] = map[string]any{
				"p_alive": pr.PAlive, "expected_purchases": pr.ExpectedPurchases, "expected_spend": pr.ExpectedSpend,
				"clv": pr.CLV, "frequency": pr.Frequency, "recency": pr.Recency, "age": pr.Age,
			}
		}
	}
	if v := m.profileRFM(p); v != nil {
		rfm = map[string]any{"r": v.R, "f": v.F, "m": v.M, "segment": v.Segment}
	}
	return predictions, rfm
}
