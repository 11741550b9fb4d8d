// Package postgres is the postgres sink: it keeps two tables, which it
// creates when they are missing (in the connection's search_path),
//
//	tessera_profiles(id text primary key, traits jsonb, features jsonb,
//	                 predictions jsonb, audiences text[], updated_at timestamptz,
//	                 activation_id text)
//	tessera_audience_members(audience text, profile_id text,
//	                 entered_at timestamptz, primary key (audience, profile_id))
//
// Every activation upserts its profile snapshot into tessera_profiles,
// with updated_at the activation's timestamp and activation_id its id (the
// idempotency key: which activation last wrote the row), unless the row
// holds a later
// updated_at: a stale activation (one replayed from the dead-letter topic
// after newer ones) changes nothing, so no row goes back in time. An
// applied audience_entered inserts the membership (entered_at its
// timestamp; a membership already there is kept), an applied
// audience_exited deletes it. The audiences column is the snapshot's,
// corrected by the activation itself (an entered audience is in it, an
// exited one is not). Redelivering an activation changes nothing.
//
// A profile_deleted activation (an erasure) deletes the profile's row and
// its memberships and records the profile id and the time in
//
//	tessera_erased(profile_id text primary key, erased_at timestamptz)
//
// which holds nothing else of the person; an activation of the profile
// not later than erased_at (a retry, a dead letter replayed) then writes
// nothing, so no late delivery brings the person back. The profiles the
// notice says were merged into the erased one ("merged_from"), whose rows
// earlier activations may have written, go the same way.
//
// A batch is one transaction, its statements pipelined in one round trip.
// An activation the database refuses as data (a data exception or an
// integrity violation, such as a \u0000 in a trait, which jsonb cannot
// hold) fails permanently and the transaction is retried without it, so
// one bad activation never holds its batch back.
package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Schema creates the tables. It takes a transaction-scoped advisory lock
// first, so that sinks connecting at once do not race on CREATE TABLE.
const Schema = `
SELECT pg_advisory_xact_lock(8451020731);
CREATE TABLE IF NOT EXISTS tessera_profiles (
	id          text PRIMARY KEY,
	traits      jsonb NOT NULL DEFAULT '{}',
	features    jsonb NOT NULL DEFAULT '{}',
	predictions jsonb NOT NULL DEFAULT '{}',
	audiences   text[] NOT NULL DEFAULT '{}',
	updated_at  timestamptz NOT NULL
);
ALTER TABLE tessera_profiles ADD COLUMN IF NOT EXISTS activation_id text;
CREATE TABLE IF NOT EXISTS tessera_audience_members (
	audience   text NOT NULL,
	profile_id text NOT NULL,
	entered_at timestamptz NOT NULL,
	PRIMARY KEY (audience, profile_id)
);
CREATE INDEX IF NOT EXISTS tessera_audience_members_profile_id ON tessera_audience_members (profile_id);
CREATE TABLE IF NOT EXISTS tessera_erased (
	profile_id text PRIMARY KEY,
	erased_at  timestamptz NOT NULL
);
`

// upsert writes a profile unless its row is newer or the profile was
// erased since; it returns the id when it wrote. $1 id, $2 traits, $3
// features, $4 predictions, $5 audiences, $6 the activation's timestamp,
// $7 its id.
const upsert = `
INSERT INTO tessera_profiles AS p (id, traits, features, predictions, audiences, updated_at, activation_id)
SELECT $1::text, ($2::text)::jsonb, ($3::text)::jsonb, ($4::text)::jsonb, $5::text[], $6::timestamptz, $7::text
WHERE NOT EXISTS (SELECT 1 FROM tessera_erased e WHERE e.profile_id = $1::text AND e.erased_at >= $6::timestamptz)
ON CONFLICT (id) DO UPDATE SET
	traits = EXCLUDED.traits, features = EXCLUDED.features, predictions = EXCLUDED.predictions,
	audiences = EXCLUDED.audiences, updated_at = EXCLUDED.updated_at, activation_id = EXCLUDED.activation_id
WHERE p.updated_at <= EXCLUDED.updated_at
RETURNING p.id`

// The statement of each activation type: the upsert, and the membership
// change when the upsert wrote. $8 is the audience.
var statements = map[string]string{
	sink.AudienceEntered: `WITH up AS (` + upsert + `)
INSERT INTO tessera_audience_members (audience, profile_id, entered_at)
SELECT $8, id, $6 FROM up
ON CONFLICT (audience, profile_id) DO NOTHING`,
	sink.AudienceExited: `WITH up AS (` + upsert + `)
DELETE FROM tessera_audience_members m USING up
WHERE m.audience = $8 AND m.profile_id = up.id`,
	sink.EventTriggered: upsert,
	// $1 the ids (the profile's and those merged into it), $2 the
	// activation's timestamp. A row or a membership newer than the
	// erasure is a profile made since, under the same id.
	sink.ProfileDeleted: `WITH gone AS (
	DELETE FROM tessera_profiles WHERE id = ANY($1::text[]) AND updated_at <= $2::timestamptz
), members AS (
	DELETE FROM tessera_audience_members WHERE profile_id = ANY($1::text[]) AND entered_at <= $2::timestamptz
)
INSERT INTO tessera_erased (profile_id, erased_at) SELECT unnest($1::text[]), $2::timestamptz
ON CONFLICT (profile_id) DO UPDATE SET erased_at = GREATEST(tessera_erased.erased_at, EXCLUDED.erased_at)`,
}

// defaultTimeout bounds connecting when the destination sets no delivery
// timeout.
const defaultTimeout = 10 * time.Second

// Sink writes activations to PostgreSQL. Its methods are safe for
// concurrent use.
type Sink struct {
	name string
	cfg  *pgxpool.Config

	mu    sync.Mutex
	pool  *pgxpool.Pool // nil before Connect and after Close
	ready bool          // the tables are there
}

// New returns the sink of dest, a postgres destination: dsn_env names the
// variable holding the connection string (postgres://user:pass@host/db?…
// or key=value form; required). getenv reads the environment (os.Getenv).
// It does not connect: Connect does.
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	s, err := newSink(dest, getenv)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newSink(dest config.Destination, getenv func(string) string) (*Sink, error) {
	fail := func(field string, err error) (*Sink, error) {
		return nil, fmt.Errorf("postgres destination %q: %s: %w", dest.Name, field, err)
	}
	if err := sink.CheckFields(dest, "dsn_env"); err != nil {
		return nil, fmt.Errorf("postgres destination %q: %w", dest.Name, err)
	}
	if dest.DSNEnv == "" {
		return fail("dsn_env", errors.New("must name the variable holding the connection string"))
	}
	dsn := getenv(dest.DSNEnv)
	if dsn == "" {
		return fail("dsn_env", fmt.Errorf("variable %s is unset or empty", dest.DSNEnv))
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors leave the password out.
		return fail("dsn_env", fmt.Errorf("variable %s: %w", dest.DSNEnv, err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = time.Duration(dest.Delivery.Timeout)
		if cfg.ConnConfig.ConnectTimeout <= 0 {
			cfg.ConnConfig.ConnectTimeout = defaultTimeout
		}
	}
	return &Sink{name: dest.Name, cfg: cfg}, nil
}

// Connect opens the connection pool and creates the tables if they are
// missing. A server that answers with an error (a wrong password, a
// database that does not exist, no right to create tables) is an error,
// which the runtime retries while deliveries wait for the configuration
// to be fixed. A server that cannot be reached is not: deliveries then
// fail (creating the tables first) and count toward the dead-letter
// topic, as with any receiver that is down.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	if s.pool == nil {
		pool, err := pgxpool.NewWithConfig(context.Background(), s.cfg.Copy())
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("opening the connection pool of destination %s: %w", s.name, err)
		}
		s.pool, s.ready = pool, false
	}
	pool := s.pool
	s.mu.Unlock()
	if err := s.ensureTables(ctx, pool); err != nil && answered(err) {
		return err
	}
	return nil
}

// ensureTables creates the tables once per pool.
func (s *Sink) ensureTables(ctx context.Context, pool *pgxpool.Pool) error {
	s.mu.Lock()
	ready := s.ready && s.pool == pool
	s.mu.Unlock()
	if ready {
		return nil
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, Schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the tables of destination %s: %w", s.name, err)
	}
	s.mu.Lock()
	if s.pool == pool {
		s.ready = true
	}
	s.mu.Unlock()
	return nil
}

// answered reports whether err carries an error the server sent, rather
// than the network failing.
func answered(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// WriteBatch applies the batch in one transaction. An activation without
// a profile id or with a profile that is not a JSON object, and one the
// database refuses as data, fail permanently; the others are committed.
// Any other failure (the server gone, a serialization failure) fails the
// whole batch, to be retried.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool == nil {
		return fmt.Errorf("writing to destination %s: %w", s.name, sink.ErrNotConnected)
	}
	if err := s.ensureTables(ctx, pool); err != nil {
		return err
	}
	be := &sink.BatchError{}
	type stmt struct {
		i    int
		sql  string
		args []any
	}
	var stmts []stmt
	for i, a := range batch {
		sql, args, err := statement(a)
		if err != nil {
			be.Fail(i, sink.Permanent(err))
			continue
		}
		stmts = append(stmts, stmt{i, sql, args})
	}
	for len(stmts) > 0 {
		bad := -1 // the position in stmts of a statement refused as data
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for _, st := range stmts {
				b.Queue(st.sql, st.args...)
			}
			res := tx.SendBatch(ctx, b)
			for j := range stmts {
				if _, err := res.Exec(); err != nil {
					res.Close()
					if isDataError(err) {
						bad = j
					}
					return err
				}
			}
			return res.Close()
		})
		if err == nil {
			break
		}
		if bad < 0 {
			return fmt.Errorf("writing a batch of %d to destination %s: %w", len(stmts), s.name, err)
		}
		st := stmts[bad]
		be.Fail(st.i, sink.Permanent(fmt.Errorf("writing activation %s: %w", batch[st.i].ID, err)))
		stmts = slices.Delete(stmts, bad, bad+1)
	}
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}

// Close closes the connection pool; it is idempotent, and Connect opens
// a new one.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	pool := s.pool
	s.pool, s.ready = nil, false
	s.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	return nil
}

// isDataError reports whether err is the server refusing a statement's
// data: SQLSTATE class 22 (data exception) or 23 (integrity constraint
// violation). Retrying would fail the same way.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}

// snapshot is the part of the profile JSON the sink stores.
type snapshot struct {
	Traits      json.RawMessage `json:"traits"`
	Features    json.RawMessage `json:"features"`
	Predictions json.RawMessage `json:"predictions"`
	Audiences   []string        `json:"audiences"`
}

// statement returns the SQL and arguments that apply a.
func statement(a sink.Activation) (string, []any, error) {
	sql, ok := statements[a.Type]
	if !ok {
		return "", nil, fmt.Errorf("activation %s has unknown type %q", a.ID, a.Type)
	}
	if a.ProfileID == "" {
		return "", nil, fmt.Errorf("activation %s has no profile id", a.ID)
	}
	if a.Type == sink.ProfileDeleted {
		var n struct {
			MergedFrom []string `json:"merged_from"`
		}
		if err := json.Unmarshal(a.Profile, &n); err != nil {
			return "", nil, fmt.Errorf("decoding the notice of activation %s: %w", a.ID, err)
		}
		ids := append([]string{a.ProfileID}, n.MergedFrom...)
		return sql, []any{ids, a.Timestamp}, nil
	}
	if a.Name == "" && a.Type != sink.EventTriggered {
		return "", nil, fmt.Errorf("activation %s (%s) names no audience", a.ID, a.Type)
	}
	var p snapshot
	if err := json.Unmarshal(a.Profile, &p); err != nil {
		return "", nil, fmt.Errorf("decoding the profile of activation %s: %w", a.ID, err)
	}
	objects := make([]any, 3)
	for j, f := range []struct {
		name string
		v    json.RawMessage
	}{{"traits", p.Traits}, {"features", p.Features}, {"predictions", p.Predictions}} {
		switch {
		case len(f.v) == 0 || string(f.v) == "null":
			objects[j] = "{}"
		case f.v[0] != '{':
			return "", nil, fmt.Errorf("the profile of activation %s: %s is not a JSON object", a.ID, f.name)
		default:
			var b bytes.Buffer
			if err := json.Compact(&b, f.v); err != nil {
				return "", nil, fmt.Errorf("the profile of activation %s: %s: %w", a.ID, f.name, err)
			}
			objects[j] = b.String()
		}
	}
	args := []any{a.ProfileID, objects[0], objects[1], objects[2], membership(p.Audiences, a), a.Timestamp, a.ID}
	if a.Type != sink.EventTriggered {
		args = append(args, a.Name)
	}
	return sql, args, nil
}

// membership returns audiences corrected by activation a: with a's
// audience when a entered it, without it when a left it. It does not
// modify audiences and never returns nil.
func membership(audiences []string, a sink.Activation) []string {
	out := make([]string, 0, len(audiences)+1)
	for _, x := range audiences {
		if !(a.Type == sink.AudienceExited && x == a.Name) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	if a.Type == sink.AudienceEntered && !slices.Contains(out, a.Name) {
		out = append(out, a.Name)
	}
	return out
}
