package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// postgresURL returns the test server's connection string (.ci/services.sh
// starts one): the test skips without one, except in CI, where it fails.
func postgresURL(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("TESSERA_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TESSERA_TEST_POSTGRES is unset in CI: .ci/run must source .ci/services.sh")
		}
		t.Skip("TESSERA_TEST_POSTGRES is unset; run `. .ci/services.sh` for a PostgreSQL")
	}
	return dsn
}

// freshSchema creates a schema for the test alone, dropped at its end, and
// returns a connection string whose search_path is it.
func freshSchema(t *testing.T) (dsn string, db *pgxpool.Pool) {
	t.Helper()
	base := postgresURL(t)
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	schema := "sinktest_" + hex.EncodeToString(b)
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
	dsn = u.String()
	db, err = pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return dsn, db
}

const dsnEnv = "PROFILES_DSN"

func newTestSink(t *testing.T, dsn string) *Sink {
	t.Helper()
	s, err := newSink(config.Destination{Name: "warehouse", Type: "postgres", DSNEnv: dsnEnv}, func(k string) string {
		if k == dsnEnv {
			return dsn
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func activation(id, typ, audience, profile string, sec int, traits map[string]any, audiences ...string) sink.Activation {
	p, _ := json.Marshal(map[string]any{
		"id": profile, "identifiers": []map[string]string{{"type": "user_id", "value": "u-" + profile}},
		"traits": traits, "features": map[string]any{"orders_30d": 3},
		"predictions": map[string]any{"churn": map[string]any{"probability": 0.25}},
		"audiences":   audiences,
	})
	return sink.Activation{ID: id, Type: typ, Name: audience, ProfileID: profile, Timestamp: t0.Add(time.Duration(sec) * time.Second), Profile: p}
}

// notice is a profile_deleted activation of profile, merged from merged.
func notice(id, profile string, sec int, merged ...string) sink.Activation {
	p, _ := json.Marshal(map[string]any{"id": profile, "merged_from": merged})
	return sink.Activation{ID: id, Type: sink.ProfileDeleted, ProfileID: profile, Timestamp: t0.Add(time.Duration(sec) * time.Second), Profile: p}
}

// tables renders both tables, one line a row, in key order.
func tables(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	rows, err := db.Query(ctx, `SELECT id, traits::text, features::text, predictions::text, audiences, updated_at, activation_id FROM tessera_profiles ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, traits, features, predictions, act string
		var audiences []string
		var at time.Time
		if err := rows.Scan(&id, &traits, &features, &predictions, &audiences, &at, &act); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("profile %s %s %s %s %v +%v by %s", id, traits, features, predictions, audiences, at.Sub(t0), act))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(ctx, `SELECT audience, profile_id, entered_at FROM tessera_audience_members ORDER BY audience, profile_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var audience, id string
		var at time.Time
		if err := rows.Scan(&audience, &id, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("member %s %s +%v", audience, id, at.Sub(t0)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(ctx, `SELECT profile_id, erased_at FROM tessera_erased ORDER BY profile_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("erased %s +%v", id, at.Sub(t0)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	features    = `{"orders_30d": 3}`
	predictions = `{"churn": {"probability": 0.25}}`
)

func TestWrite(t *testing.T) {
	ada := map[string]any{"email": "ada@example.test", "plan": "pro"}
	adaJSON := `{"plan": "pro", "email": "ada@example.test"}` // as jsonb renders it
	for _, tc := range []struct {
		name    string
		batches [][]sink.Activation
		want    []string
	}{
		{
			name: "enter",
			batches: [][]sink.Activation{{
				activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip"),
				activation("a2", sink.AudienceEntered, "churners", "p2", 1, nil), // the snapshot lags
			}},
			want: []string{
				"profile p1 " + adaJSON + " " + features + " " + predictions + " [vip] +1s by a1",
				"profile p2 {} " + features + " " + predictions + " [churners] +1s by a2",
				"member churners p2 +1s",
				"member vip p1 +1s",
			},
		},
		{
			name: "enter, event, exit, enter again",
			batches: [][]sink.Activation{
				{activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip")},
				{
					activation("a2", sink.EventTriggered, "big_order", "p1", 2, ada, "vip"),
					activation("a3", sink.AudienceExited, "vip", "p1", 3, ada, "vip"),
				},
				{activation("a4", sink.AudienceEntered, "vip", "p1", 4, nil)},
			},
			want: []string{
				"profile p1 {} " + features + " " + predictions + " [vip] +4s by a4",
				"member vip p1 +4s",
			},
		},
		{
			name: "a redelivered batch changes nothing",
			batches: [][]sink.Activation{
				{activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip"), activation("a2", sink.AudienceEntered, "pro", "p1", 2, ada, "vip", "pro")},
				{activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip"), activation("a2", sink.AudienceEntered, "pro", "p1", 2, ada, "vip", "pro")},
			},
			want: []string{
				"profile p1 " + adaJSON + " " + features + " " + predictions + " [vip pro] +2s by a2",
				"member pro p1 +2s",
				"member vip p1 +1s",
			},
		},
		{
			name: "a stale activation is ignored",
			batches: [][]sink.Activation{
				{activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip")},
				{activation("a3", sink.AudienceExited, "vip", "p1", 3, map[string]any{"plan": "free"})},
				// a2 replayed from the dead-letter topic after a3.
				{activation("a2", sink.AudienceEntered, "vip", "p1", 2, ada, "vip")},
			},
			want: []string{
				`profile p1 {"plan": "free"} ` + features + " " + predictions + " [] +3s by a3",
			},
		},
		{
			name: "profile_deleted forgets the profile, those merged into it and their memberships, and no late activation brings them back",
			batches: [][]sink.Activation{
				{activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip"), activation("a2", sink.AudienceEntered, "vip", "p2", 1, ada, "vip")},
				// p3 entered on its own before it was merged into p1.
				{activation("a0", sink.AudienceEntered, "vip", "p3", 1, ada, "vip")},
				{activation("a3", sink.AudienceEntered, "pro", "p1", 2, ada, "vip", "pro")},
				{notice("d1", "p1", 3, "p3")},
				// a3 retried, a1 and a0 replayed from the dead-letter topic, d1 redelivered.
				{activation("a3", sink.AudienceEntered, "pro", "p1", 2, ada, "vip", "pro"), activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip")},
				{activation("a0", sink.AudienceEntered, "vip", "p3", 1, ada, "vip")},
				{notice("d1", "p1", 3, "p3")},
			},
			want: []string{
				"profile p2 " + adaJSON + " " + features + " " + predictions + " [vip] +1s by a2",
				"member vip p2 +1s",
				"erased p1 +3s",
				"erased p3 +3s",
			},
		},
		{
			name: "a profile made after an erasure is written",
			batches: [][]sink.Activation{
				{notice("d1", "p1", 3)},
				{activation("a4", sink.AudienceEntered, "vip", "p1", 4, ada, "vip")},
			},
			want: []string{
				"profile p1 " + adaJSON + " " + features + " " + predictions + " [vip] +4s by a4",
				"member vip p1 +4s",
				"erased p1 +3s",
			},
		},
		{
			name: "same timestamp applies",
			batches: [][]sink.Activation{{
				activation("a1", sink.AudienceEntered, "vip", "p1", 1, ada, "vip", "pro"),
				activation("a2", sink.AudienceEntered, "pro", "p1", 1, ada, "vip", "pro"),
			}},
			want: []string{
				"profile p1 " + adaJSON + " " + features + " " + predictions + " [vip pro] +1s by a2",
				"member pro p1 +1s",
				"member vip p1 +1s",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, db := freshSchema(t)
			s := newTestSink(t, dsn)
			ctx := context.Background()
			if err := s.Connect(ctx); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			for _, b := range tc.batches {
				if err := s.WriteBatch(ctx, b); err != nil {
					t.Fatalf("WriteBatch: %v", err)
				}
			}
			if got := tables(t, db); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("tables\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestPoison pins that an activation the database refuses (jsonb holds no
// \u0000) fails alone and permanently: the rest of its batch commits.
func TestPoison(t *testing.T) {
	dsn, db := freshSchema(t)
	s := newTestSink(t, dsn)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	noProfile := activation("a2", sink.AudienceEntered, "vip", "", 1, nil)
	badJSON := activation("a3", sink.AudienceEntered, "vip", "p3", 1, nil)
	badJSON.Profile = json.RawMessage(`{"traits": "x"}`)
	batch := []sink.Activation{
		activation("a0", sink.AudienceEntered, "vip", "p0", 1, nil),
		activation("a1", sink.AudienceEntered, "vip", "p1", 1, map[string]any{"name": "nul\x00byte"}),
		noProfile,
		badJSON,
		activation("a4", sink.AudienceEntered, "vip", "p4", 1, map[string]any{"name": "\x00"}),
		activation("a5", sink.AudienceEntered, "vip", "p5", 1, nil),
	}
	err := s.WriteBatch(ctx, batch)
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteBatch = %v, want a *sink.BatchError", err)
	}
	for i, want := range map[int]string{1: "22P05", 2: "has no profile id", 3: "traits is not a JSON object", 4: "22P05"} {
		if err := be.Failed[i]; err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("#%d: %v, want a permanent error containing %q", i, err, want)
		}
	}
	if len(be.Failed) != 4 {
		t.Errorf("failed: %v", be.Failed)
	}
	want := []string{
		"profile p0 {} " + features + " " + predictions + " [vip] +1s by a0",
		"profile p5 {} " + features + " " + predictions + " [vip] +1s by a5",
		"member vip p0 +1s",
		"member vip p5 +1s",
	}
	if got := tables(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("tables\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConnectConcurrently pins that sinks connecting at once to a database
// without the tables do not fail on CREATE TABLE racing, and that
// connecting again after Close keeps the rows.
func TestConnectConcurrently(t *testing.T) {
	dsn, db := freshSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		s := newTestSink(t, dsn)
		wg.Go(func() { errs[i] = s.Connect(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Connect #%d: %v", i, err)
		}
	}
	s := newTestSink(t, dsn)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(ctx, []sink.Activation{activation("a1", sink.AudienceEntered, "vip", "p1", 1, nil)}); err != nil {
		t.Fatal(err)
	}
	// Reconnecting, as the runtime does after ErrNotConnected.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM tessera_audience_members").Scan(&n); err != nil || n != 1 {
		t.Fatalf("members = %d, %v; want 1", n, err)
	}
}

// TestServerDown pins that an unreachable server fails deliveries, which
// are retried, and not Connect, so that the runtime counts the attempts;
// and that a server that answers "no" fails Connect.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newTestSink(t, "postgres://tessera:tessera@"+addr+"/tessera_test?sslmode=disable")
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatalf("Connect = %v, want nil with the server unreachable", err)
	}
	err = s.WriteBatch(ctx, []sink.Activation{activation("a1", sink.AudienceEntered, "vip", "p1", 1, nil)})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch = %v, want a retryable error", err)
	}
	var be *sink.BatchError
	if errors.As(err, &be) {
		t.Errorf("WriteBatch = %v, want an error for the whole batch", err)
	}
	for range 2 { // Close is idempotent
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if err := s.WriteBatch(ctx, nil); !errors.Is(err, sink.ErrNotConnected) {
		t.Errorf("WriteBatch after Close = %v, want ErrNotConnected", err)
	}

	u, err := url.Parse(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("tessera", "wrong")
	wrong := newTestSink(t, u.String())
	if err := wrong.Connect(ctx); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Errorf("Connect with a wrong password = %v, want the server's 28P01", err)
	}
}

// TestCancel pins that WriteBatch gives up when its context ends, here
// while another transaction holds the row it must update.
func TestCancel(t *testing.T) {
	dsn, db := freshSchema(t)
	s := newTestSink(t, dsn)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	a := activation("a1", sink.AudienceEntered, "vip", "p1", 1, nil)
	if err := s.WriteBatch(ctx, []sink.Activation{a}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tessera_profiles WHERE id = 'p1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	// The row stays locked past the deadline: the sink must give up then.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	a.Timestamp = a.Timestamp.Add(time.Second)
	err = s.WriteBatch(wctx, []sink.Activation{a})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch = %v, want a retryable error", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		dest config.Destination
		want string // the error's start; "" for none
	}{
		{"valid", config.Destination{Name: "w", Type: "postgres", DSNEnv: "DSN"}, ""},
		{"dsn_env", config.Destination{Name: "w", Type: "postgres"}, `postgres destination "w": dsn_env: must name the variable holding the connection string`},
		{"unset", config.Destination{Name: "w", Type: "postgres", DSNEnv: "NOPE"}, `postgres destination "w": dsn_env: variable NOPE is unset or empty`},
		{"bad dsn", config.Destination{Name: "w", Type: "postgres", DSNEnv: "BAD"}, `postgres destination "w": dsn_env: variable BAD: `},
		{"address", config.Destination{Name: "w", Type: "postgres", DSNEnv: "DSN", Address: "db:5432"}, `postgres destination "w": address is not used by postgres destinations (they use dsn_env)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.dest, func(k string) string {
				switch k {
				case "DSN":
					return "postgres://u:secret@db.test:5432/app"
				case "BAD":
					return "postgres://u:secret@db.test:notaport/app"
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
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
