package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/connectors/redissink"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/topology"
)

// sinkServers returns the test Redis address and a PostgreSQL connection
// string on a schema of the test's own (.ci/services.sh starts both): the
// test skips without them, except in CI, where it fails.
func sinkServers(t *testing.T) (redisAddr, pgDSN string, pg *pgxpool.Pool) {
	t.Helper()
	redisAddr, base := os.Getenv("TESSERA_TEST_REDIS"), os.Getenv("TESSERA_TEST_POSTGRES")
	if redisAddr == "" || base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TESSERA_TEST_REDIS or TESSERA_TEST_POSTGRES is unset in CI: .ci/run must source .ci/services.sh")
		}
		t.Skip("TESSERA_TEST_REDIS or TESSERA_TEST_POSTGRES is unset; run `. .ci/services.sh`")
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	schema := "erasure_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pg, err = pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	return redisAddr, u.String(), pg
}

// TestErasure erases a person who is in an audience and fed to Redis and
// PostgreSQL, named by one identifier in another case than the events
// wrote it: the profile API answers 404 for each of their identifiers, the
// sinks hold nothing of them, every changelog ends their keys with a
// tombstone, and a replay into a new application id does not bring them
// back. Another customer is untouched throughout.
func TestErasure(t *testing.T) {
	redisAddr, pgDSN, pg := sinkServers(t)
	bin := buildTessera(t)
	brk := startProc(t, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	brokers := brk.await(t, "broker listening on ")
	go drain(brk)

	b := make([]byte, 4)
	rand.Read(b)
	audience := "buyers_" + hex.EncodeToString(b) // the Redis server is shared
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tessera.yaml")
	conf := fmt.Sprintf(`app: erase
kafka: {partitions: 4}
processing: {commit_interval: 100ms}
profiles: {erasure_grace: 1s}
features:
  - {name: orders_30d, event: Order Completed, agg: count, window: 30d}
audiences:
  - {name: %s, rule: 'features.orders_30d >= 1'}
destinations:
  - {name: cache, type: redis, address: %q}
  - {name: warehouse, type: postgres, dsn_env: ERASE_TEST_PG}
`, audience, redisAddr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk", "ERASE_TEST_PG=" + pgDSN}
	live := startProc(t, bin, env, "run", "-c", cfg, "--brokers", brokers, "--data", t.TempDir(), "--http", "127.0.0.1:0")
	base := "http://" + live.await(t, "http listening on ")
	go drain(live)
	awaitStatus(t, base+"/readyz", 200)

	for _, e := range []struct{ path, body string }{
		{"/v1/page", `{"anonymousId":"anon-jane","name":"Home","messageId":"j1"}`},
		{"/v1/identify", `{"userId":"jane","anonymousId":"anon-jane","traits":{"email":"Jane@Example.com","plan":"pro"},"messageId":"j2"}`},
		{"/v1/track", `{"userId":"jane","event":"Order Completed","properties":{"revenue":40},"messageId":"j3"}`},
		{"/v1/track", `{"userId":"bob","event":"Order Completed","properties":{"revenue":10},"messageId":"b1"}`},
	} {
		sendSegment(t, base, e.path, e.body)
	}
	janeIDs := []string{"user_id:jane", "email:jane@example.com", "anonymous_id:anon-jane"}
	var jane struct {
		ID          string
		Identifiers []struct{ Type, Value string }
		Audiences   []string
		MergedFrom  []string `json:"merged_from"`
	}
	// The anonymous profile came first: the user's folds into it.
	awaitCond(t, "jane's merged profile in the audience", func() bool {
		code, body := getAuth(t, base+"/v1/profiles/user_id:jane", "tok")
		return code == 200 && json.Unmarshal([]byte(body), &jane) == nil && len(jane.Identifiers) == 3 &&
			len(jane.MergedFrom) == 1 && slices.Contains(jane.Audiences, audience)
	})
	// Her timeline holds her three events, newest first, whichever
	// profile each arrived at.
	code, body := getAuth(t, base+"/v1/profiles/email:jane@example.com/events", "tok")
	var timeline struct {
		Events []struct{ MessageID string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &timeline) != nil || len(timeline.Events) != 3 ||
		timeline.Events[0].MessageID != "j3" || timeline.Events[2].MessageID != "j1" {
		t.Errorf("GET her events: %d %s, want j3, j2, j1", code, body)
	}
	var bob struct{ ID string }
	awaitCond(t, "bob's profile", func() bool {
		code, body := getAuth(t, base+"/v1/profiles/user_id:bob", "tok")
		return code == 200 && json.Unmarshal([]byte(body), &bob) == nil
	})
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	ctx := context.Background()
	t.Cleanup(func() {
		keys := []string{redissink.ProfileKeyPrefix + bob.ID, redissink.AudienceKeyPrefix + audience}
		for _, id := range append([]string{jane.ID}, jane.MergedFrom...) {
			keys = append(keys, redissink.ProfileKeyPrefix+id, redissink.DeletedKeyPrefix+id)
		}
		rdb.Del(context.Background(), keys...)
	})
	inSinks := func(id string) (redisHash, redisMember, pgRow, pgMember bool) {
		n, _ := rdb.Exists(ctx, redissink.ProfileKeyPrefix+id).Result()
		m, _ := rdb.SIsMember(ctx, redissink.AudienceKeyPrefix+audience, id).Result()
		var rows, members int
		pg.QueryRow(ctx, `SELECT count(*) FROM tessera_profiles WHERE id = $1`, id).Scan(&rows)
		pg.QueryRow(ctx, `SELECT count(*) FROM tessera_audience_members WHERE profile_id = $1`, id).Scan(&members)
		return n == 1, m, rows == 1, members == 1
	}
	for _, id := range []string{jane.ID, bob.ID} {
		awaitCond(t, "the sinks hold "+id, func() bool {
			a, b, c, d := inSinks(id)
			return a && b && c && d
		})
	}

	code, body = postAuth(t, base+"/v1/regulations", "tok", `{"type":"delete","identifiers":[{"type":"email","value":"JANE@example.com"}]}`)
	var reg struct {
		ID, Status string
		Erased     []string
		Profiles   []string
	}
	if code != 201 || json.Unmarshal([]byte(body), &reg) != nil || reg.Status != "done" || len(reg.Erased) != 3 || !slices.Equal(reg.Profiles, []string{jane.ID}) {
		t.Fatalf("POST delete: %d %s, want 201, done, 3 identifiers erased, profile %s", code, body, jane.ID)
	}
	for _, id := range janeIDs {
		if code, body := getAuth(t, base+"/v1/profiles/"+id, "tok"); code != 404 {
			t.Errorf("GET %s after the erasure: %d %s, want 404", id, code, body)
		}
	}
	if code, _ := getAuth(t, base+"/v1/profiles/user_id:bob", "tok"); code != 200 {
		t.Errorf("bob after jane's erasure: %d", code)
	}
	code, body = getAuth(t, base+"/v1/regulations/"+reg.ID, "tok")
	if code != 200 || !strings.Contains(body, `"status":"done"`) || strings.Contains(strings.ToLower(body), "jane") {
		t.Errorf("GET the regulation: %d %s, want done and no identifier in clear", code, body)
	}
	// The profile merged into hers may have been delivered on its own
	// before the merge: it goes too.
	for _, id := range append([]string{jane.ID}, jane.MergedFrom...) {
		awaitCond(t, "the sinks forget "+id, func() bool {
			a, b, c, d := inSinks(id)
			return !a && !b && !c && !d
		})
	}
	if a, b, c, d := inSinks(bob.ID); !a || !b || !c || !d {
		t.Errorf("bob left the sinks: redis hash %v, member %v; postgres row %v, member %v", a, b, c, d)
	}
	var erased int
	if pg.QueryRow(ctx, `SELECT count(*) FROM tessera_erased WHERE profile_id = $1`, jane.ID).Scan(&erased); erased != 1 {
		t.Errorf("tessera_erased holds %d rows for jane's profile, want 1", erased)
	}

	// Every changelog ends each of her keys with a tombstone, so that
	// compaction removes them; the profiles' after the markers' grace.
	profileKeys := append([]string{jane.ID}, jane.MergedFrom...)
	awaitCond(t, "tombstones in every changelog", func() bool {
		last := readChangelogs(t, brokers, "erase")
		for _, id := range janeIDs {
			if v, ok := last[identity.IdentitiesStore][id]; !ok || v != nil {
				return false
			}
		}
		for _, id := range profileKeys {
			if v, ok := last[identity.ProfilesStore][id]; !ok || v != nil {
				return false
			}
		}
		features, dedupe := 0, 0
		for k, v := range last[identity.FeaturesStore] {
			if strings.Contains(k, jane.ID) {
				if v != nil {
					return false
				}
				features++
			}
		}
		for k, v := range last[identity.DedupeStore] {
			if strings.Contains(k, "jane") {
				if v != nil {
					return false
				}
				dedupe++
			}
		}
		timeline := 0
		for k, v := range last[identity.TimelineStore] {
			if strings.Contains(k, jane.ID) {
				if v != nil {
					return false
				}
				timeline++
			}
		}
		// An op that waited for one of her profiles (none need have)
		// was answered and deleted.
		for k, v := range last[identity.QueueStore] {
			for _, id := range profileKeys {
				if strings.Contains(k, id) && v != nil {
					return false
				}
			}
		}
		return features > 0 && dedupe > 0 && timeline == 3
	})

	// A replay of every event into a new application id: jane stays
	// erased, bob is back.
	rp := startProc(t, bin, env, "replay", "-c", cfg, "--brokers", brokers, "--data", t.TempDir(),
		"--app", "erase-v2", "--from", "earliest", "--follow", "--progress-interval", "200ms")
	rpBase := "http://" + rp.await(t, "http listening on ")
	rp.await(t, "caught up: ")
	go drain(rp)
	awaitStatus(t, rpBase+"/readyz", 200)
	awaitCond(t, "bob in the replay", func() bool {
		code, _ := getAuth(t, rpBase+"/v1/profiles/user_id:bob", "tok")
		return code == 200
	})
	for _, id := range janeIDs {
		if code, body := getAuth(t, rpBase+"/v1/profiles/"+id, "tok"); code != 404 {
			t.Errorf("the replay brought %s back: %d %s", id, code, body)
		}
	}
}

// readChangelogs reads every changelog of app to its end and returns, per
// store, the last value of each key (nil for a tombstone).
func readChangelogs(t *testing.T, brokers, app string) map[string]map[string][]byte {
	t.Helper()
	stores := []string{identity.IdentitiesStore, identity.DedupeStore, identity.ProfilesStore, identity.FeaturesStore, identity.TimelineStore, identity.QueueStore}
	topics := map[string]string{}
	var names []string
	for _, s := range stores {
		topics[topology.ChangelogTopic(app, s)] = s
		names = append(names, topology.ChangelogTopic(app, s))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]map[string][]byte{}
	for _, s := range stores {
		out[s] = map[string][]byte{}
	}
	// Read until a poll of a second brings nothing: the changelogs are
	// quiet once the erasure is done.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			out[topics[r.Topic]][string(r.Key)] = r.Value
		})
		if n == 0 {
			return out
		}
	}
}

// awaitCond polls cond until it holds, for up to 60 s.
func awaitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 60s", what)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}
