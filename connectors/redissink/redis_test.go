package redissink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// redisAddr returns the test server's address (.ci/services.sh starts
// one): the test skips without one, except in CI, where it fails.
func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("TESSERA_TEST_REDIS")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TESSERA_TEST_REDIS is unset in CI: .ci/run must source .ci/services.sh")
		}
		t.Skip("TESSERA_TEST_REDIS is unset; run `. .ci/services.sh` for a Redis")
	}
	return addr
}

// fixture is a sink on the test server and a plain client to inspect it,
// with names unique to the test so that tests do not meet.
type fixture struct {
	sink   *Sink
	rdb    *redis.Client
	suffix string
}

func newFixture(t *testing.T, dest config.Destination, getenv func(string) string) *fixture {
	t.Helper()
	addr := redisAddr(t)
	if dest.Address == "" {
		dest.Address = addr
	}
	s, err := newSink(dest, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	b := make([]byte, 4)
	rand.Read(b)
	f := &fixture{sink: s, rdb: rdb, suffix: hex.EncodeToString(b)}
	t.Cleanup(func() {
		s.Close(context.Background())
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, "tessera:*"+f.suffix).Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return f
}

func (f *fixture) id(s string) string { return s + "-" + f.suffix }

func (f *fixture) activation(id, typ, audience, profile string, ts int, traits map[string]any, audiences ...string) sink.Activation {
	// An audience "merged:X" in a profile_deleted notice names X as
	// merged into the profile.
	var names, merged []string
	for _, a := range audiences {
		if m, ok := strings.CutPrefix(a, "merged:"); ok {
			merged = append(merged, f.id(m))
			continue
		}
		names = append(names, f.id(a))
	}
	p, _ := json.Marshal(map[string]any{
		"id": f.id(profile), "identifiers": []map[string]string{{"type": "user_id", "value": "u-" + profile}},
		"traits": traits, "features": map[string]any{"orders_30d": 3, "revenue_30d": 120.5},
		"predictions": map[string]any{"churn": map[string]any{"probability": 0.25}},
		"audiences":   names, "merged_from": merged,
	})
	name := audience
	if name != "" {
		name = f.id(audience)
	}
	return sink.Activation{
		ID: f.id(id), Type: typ, Name: name, ProfileID: f.id(profile),
		Timestamp: time.UnixMilli(int64(ts)).UTC(), Profile: p,
	}
}

func (f *fixture) write(t *testing.T, batch ...sink.Activation) {
	t.Helper()
	if err := f.sink.WriteBatch(context.Background(), batch); err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
}

// state is everything the sink wrote for the test: each hash and each set.
func (f *fixture) state(t *testing.T) map[string]any {
	t.Helper()
	ctx := context.Background()
	keys, err := f.rdb.Keys(ctx, "tessera:*"+f.suffix).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		short := strings.ReplaceAll(k, "-"+f.suffix, "")
		switch {
		case strings.HasPrefix(k, ProfileKeyPrefix):
			h, err := f.rdb.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for field, v := range h {
				h[field] = strings.ReplaceAll(v, "-"+f.suffix, "")
			}
			out[short] = h
		case strings.HasPrefix(k, DeletedKeyPrefix):
			v, err := f.rdb.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl, err := f.rdb.TTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > DeletedTTL {
				t.Errorf("%s has TTL %v (%v), want (0, %v]", short, ttl, err, DeletedTTL)
			}
			out[short] = "deleted at " + v
		default:
			m, err := f.rdb.SMembers(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for i := range m {
				m[i] = strings.ReplaceAll(m[i], "-"+f.suffix, "")
			}
			slices.Sort(m)
			out[short] = m
		}
	}
	return out
}

func hash(id string, traits string, audiences string, ts int, act string) map[string]string {
	return map[string]string{
		"id": id, "traits": traits, "features": `{"orders_30d":3,"revenue_30d":120.5}`,
		"predictions": `{"churn":{"probability":0.25}}`, "audiences": audiences,
		"updated_at": strconv.Itoa(ts), "activation_id": act,
	}
}

func TestWrite(t *testing.T) {
	type act struct {
		id, typ, audience, profile string
		ts                         int
		traits                     map[string]any
		audiences                  []string // in the snapshot
	}
	ada := map[string]any{"email": "ada@example.test", "plan": "pro"}
	for _, tc := range []struct {
		name    string
		batches [][]act
		want    map[string]any
	}{
		{
			name: "enter",
			batches: [][]act{{
				{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}},
				{"a2", sink.AudienceEntered, "churners", "p2", 1000, map[string]any{}, nil}, // the snapshot lags
			}},
			want: map[string]any{
				"tessera:profile:p1":        hash("p1", `{"email":"ada@example.test","plan":"pro"}`, `["vip"]`, 1000, "a1"),
				"tessera:profile:p2":        hash("p2", `{}`, `["churners"]`, 1000, "a2"),
				"tessera:audience:vip":      []string{"p1"},
				"tessera:audience:churners": []string{"p2"},
			},
		},
		{
			name: "enter then exit, event in between",
			batches: [][]act{
				{{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}}},
				{
					{"a2", sink.EventTriggered, "big_order", "p1", 2000, ada, []string{"vip"}},
					{"a3", sink.AudienceExited, "vip", "p1", 3000, ada, []string{"vip"}}, // the snapshot lags
				},
			},
			want: map[string]any{
				"tessera:profile:p1": hash("p1", `{"email":"ada@example.test","plan":"pro"}`, `[]`, 3000, "a3"),
				// SREM of the last member leaves no key.
			},
		},
		{
			name: "a redelivered batch changes nothing",
			batches: [][]act{
				{{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}}, {"a2", sink.AudienceExited, "vip", "p1", 2000, ada, nil}},
				{{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}}, {"a2", sink.AudienceExited, "vip", "p1", 2000, ada, nil}},
			},
			want: map[string]any{
				"tessera:profile:p1": hash("p1", `{"email":"ada@example.test","plan":"pro"}`, `[]`, 2000, "a2"),
			},
		},
		{
			name: "a stale activation is ignored",
			batches: [][]act{
				{{"a2", sink.AudienceExited, "vip", "p1", 2000, map[string]any{"plan": "free"}, nil}},
				// a1 replayed from the dead-letter topic after a2.
				{{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}}},
			},
			want: map[string]any{
				"tessera:profile:p1": hash("p1", `{"plan":"free"}`, `[]`, 2000, "a2"),
			},
		},
		{
			name: "profile_deleted forgets the profile, those merged into it and their memberships, and no late activation brings them back",
			batches: [][]act{
				{
					{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}},
					{"a2", sink.AudienceEntered, "pro", "p2", 1000, ada, []string{"pro"}},
				},
				// p3 entered on its own before it was merged into p1.
				{{"a0", sink.AudienceEntered, "pro", "p3", 1000, ada, []string{"pro"}}},
				{{"a3", sink.AudienceEntered, "pro", "p1", 2000, ada, []string{"vip", "pro"}}},
				{{"d1", sink.ProfileDeleted, "", "p1", 3000, nil, []string{"merged:p3"}}},
				// a3 retried, a1 and a0 replayed from the dead-letter topic.
				{{"a3", sink.AudienceEntered, "pro", "p1", 2000, ada, []string{"vip", "pro"}}, {"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip"}}},
				{{"a0", sink.AudienceEntered, "pro", "p3", 1000, ada, []string{"pro"}}},
				{{"d1", sink.ProfileDeleted, "", "p1", 3000, nil, []string{"merged:p3"}}}, // redelivered
			},
			want: map[string]any{
				"tessera:deleted:p1":   "deleted at 3000",
				"tessera:deleted:p3":   "deleted at 3000",
				"tessera:profile:p2":   hash("p2", `{"email":"ada@example.test","plan":"pro"}`, `["pro"]`, 1000, "a2"),
				"tessera:audience:pro": []string{"p2"},
			},
		},
		{
			name: "a profile made after an erasure is written",
			batches: [][]act{
				{{"d1", sink.ProfileDeleted, "", "p1", 3000, nil, nil}},
				{{"a4", sink.AudienceEntered, "vip", "p1", 4000, ada, []string{"vip"}}},
			},
			want: map[string]any{
				"tessera:deleted:p1":   "deleted at 3000",
				"tessera:profile:p1":   hash("p1", `{"email":"ada@example.test","plan":"pro"}`, `["vip"]`, 4000, "a4"),
				"tessera:audience:vip": []string{"p1"},
			},
		},
		{
			name: "same timestamp applies",
			batches: [][]act{{
				{"a1", sink.AudienceEntered, "vip", "p1", 1000, ada, []string{"vip", "pro"}},
				{"a2", sink.AudienceEntered, "pro", "p1", 1000, ada, []string{"vip", "pro"}},
			}},
			want: map[string]any{
				"tessera:profile:p1":   hash("p1", `{"email":"ada@example.test","plan":"pro"}`, `["vip","pro"]`, 1000, "a2"),
				"tessera:audience:vip": []string{"p1"},
				"tessera:audience:pro": []string{"p1"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, config.Destination{Name: "cache", Type: "redis"}, os.Getenv)
			if err := f.sink.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, b := range tc.batches {
				var batch []sink.Activation
				for _, a := range b {
					batch = append(batch, f.activation(a.id, a.typ, a.audience, a.profile, a.ts, a.traits, a.audiences...))
				}
				f.write(t, batch...)
			}
			if got := f.state(t); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("state\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestPermanentFailures(t *testing.T) {
	f := newFixture(t, config.Destination{Name: "cache", Type: "redis"}, os.Getenv)
	good := f.activation("a0", sink.AudienceEntered, "vip", "p0", 1000, map[string]any{}, "vip")
	noProfile := f.activation("a1", sink.AudienceEntered, "vip", "p1", 1000, nil)
	noProfile.ProfileID = ""
	badJSON := f.activation("a2", sink.AudienceEntered, "vip", "p2", 1000, nil)
	badJSON.Profile = json.RawMessage(`["not", "an object"]`)
	badTraits := f.activation("a3", sink.AudienceEntered, "vip", "p3", 1000, nil)
	badTraits.Profile = json.RawMessage(`{"id": "p3", "traits": [1]}`)
	noName := f.activation("a4", sink.AudienceExited, "", "p4", 1000, nil)
	err := f.sink.WriteBatch(context.Background(), []sink.Activation{good, noProfile, badJSON, badTraits, noName})
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteBatch = %v, want a *sink.BatchError", err)
	}
	for i, want := range map[int]string{1: "has no profile id", 2: "decoding the profile", 3: "traits is not a JSON object", 4: "names no audience"} {
		if err := be.Failed[i]; err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("#%d: %v, want a permanent error containing %q", i, err, want)
		}
	}
	if len(be.Failed) != 4 {
		t.Errorf("failed: %v", be.Failed)
	}
	if got := f.state(t)["tessera:audience:vip"]; !reflect.DeepEqual(got, []string{"p0"}) {
		t.Errorf("vip = %v, want [p0]", got)
	}
}

// TestScriptFlushed pins that the sink reloads its script when the server
// lost it (a restart, SCRIPT FLUSH) instead of failing every batch.
func TestScriptFlushed(t *testing.T) {
	f := newFixture(t, config.Destination{Name: "cache", Type: "redis"}, os.Getenv)
	ctx := context.Background()
	if err := f.sink.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	f.write(t, f.activation("a1", sink.AudienceEntered, "vip", "p1", 1000, map[string]any{}, "vip"))
	if got := f.state(t)["tessera:audience:vip"]; !reflect.DeepEqual(got, []string{"p1"}) {
		t.Errorf("vip = %v, want [p1]", got)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, config.Destination{Name: "probe", Type: "redis"}, os.Getenv)
	ctx := context.Background()
	user := "tessera-test-" + f.suffix
	// An ACL user that may touch only its own keys and run scripts.
	if err := f.rdb.Do(ctx, "ACL", "SETUSER", user, "on", ">right-password", "~tessera:*"+f.suffix, "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.rdb.Do(context.Background(), "ACL", "DELUSER", user) })
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"right password", "right-password", true},
		{"wrong password", "wrong", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := config.Destination{Name: "cache", Type: "redis", Address: redisAddr(t), Username: user, SecretEnv: "REDIS_PASSWORD"}
			s, err := newSink(dest, func(string) string { return tc.password })
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			err = s.Connect(ctx)
			if (err == nil) != tc.ok {
				t.Fatalf("Connect = %v, want ok %v", err, tc.ok)
			}
			err = s.WriteBatch(ctx, []sink.Activation{f.activation("a1", sink.AudienceEntered, "vip", "p1", 1000, map[string]any{}, "vip")})
			if (err == nil) != tc.ok || (err != nil && sink.IsPermanent(err)) {
				t.Fatalf("WriteBatch = %v, want ok %v (or a retryable error)", err, tc.ok)
			}
		})
	}
}

// TestServerDown pins that an unreachable server fails deliveries, which
// are retried, and not Connect, so that the runtime counts the attempts.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, err := newSink(config.Destination{Name: "cache", Type: "redis", Address: addr}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Connect(context.Background()); err != nil {
		t.Fatalf("Connect = %v, want nil with the server unreachable", err)
	}
	a := sink.Activation{ID: "a", Type: sink.AudienceEntered, Name: "vip", ProfileID: "p", Profile: json.RawMessage(`{}`)}
	err = s.WriteBatch(context.Background(), []sink.Activation{a})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch = %v, want a retryable error", err)
	}
	for range 2 { // Close is idempotent
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if err := s.WriteBatch(context.Background(), []sink.Activation{a}); !errors.Is(err, sink.ErrNotConnected) {
		t.Errorf("WriteBatch after Close = %v, want ErrNotConnected", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		dest config.Destination
		want string // the error's start; "" for none
	}{
		{"valid", config.Destination{Name: "c", Type: "redis", Address: "127.0.0.1:6379"}, ""},
		{"password", config.Destination{Name: "c", Type: "redis", Address: "redis:6379", SecretEnv: "PW"}, ""},
		{"address", config.Destination{Name: "c", Type: "redis", Address: "redis"}, `redis destination "c": address: must be host:port, got "redis"`},
		{"port", config.Destination{Name: "c", Type: "redis", Address: "redis:0"}, `redis destination "c": address: port must be 1…65535, got "0"`},
		{"username alone", config.Destination{Name: "c", Type: "redis", Address: "redis:6379", Username: "u"}, `redis destination "c": secret_env: is required with username`},
		{"password unset", config.Destination{Name: "c", Type: "redis", Address: "redis:6379", SecretEnv: "NOPE"}, `redis destination "c": secret_env: variable NOPE is unset or empty`},
		{"template", config.Destination{Name: "c", Type: "redis", Address: "redis:6379", Template: "x"}, `redis destination "c": template is not used by redis destinations`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.dest, func(k string) string {
				if k == "PW" {
					return "pw"
				}
				return ""
			})
			if s != nil {
				defer s.Close(context.Background())
			}
			switch {
			case tc.want == "" && (err != nil || s == nil):
				t.Fatalf("New = %v, %v", s, err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want) || s != nil):
				t.Fatalf("New = %v, %v; want an error starting %q", s, err, tc.want)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		typ  string
		want []string
	}{
		{nil, sink.AudienceEntered, []string{"vip"}},
		{[]string{"vip"}, sink.AudienceEntered, []string{"vip"}},
		{[]string{"a", "vip", "b"}, sink.AudienceExited, []string{"a", "b"}},
		{nil, sink.AudienceExited, []string{}},
		{[]string{"a", "a"}, sink.EventTriggered, []string{"a"}},
	} {
		got := membership(tc.in, sink.Activation{Type: tc.typ, Name: "vip"})
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("membership(%v, %s vip) = %v, want %v", tc.in, tc.typ, got, tc.want)
		}
	}
}
