package postgres

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

func TestConformance(t *testing.T) {
	postgresURL(t)
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newConformReceiver(t, env.Now)
	}})
}

// conformSQL instruments a schema holding the sink's tables: an AFTER
// trigger logs every row the sink writes (so every delivery, redeliveries
// included: they rewrite the row), and a BEFORE INSERT trigger, which runs
// once per upsert, injects the faults conform_control names:
//
//   - down: the next `until` upserts fail with serialization_failure
//     (40001), which the sink retries;
//   - reject: the next `until` upserts fail with invalid_parameter_value
//     (22023), which the sink takes as permanent;
//   - stall: every upsert waits for the advisory lock stall_key, which
//     the receiver holds until Heal.
//
// The fault counter is a sequence, so a failed upsert's rollback does not
// undo its count.
const conformSQL = `
CREATE TABLE conform_log (
	seq bigserial PRIMARY KEY, activation_id text, profile_id text, audiences text[]
);
CREATE SEQUENCE conform_faults;
CREATE TABLE conform_control (kind text NOT NULL, until bigint NOT NULL, stall_key bigint NOT NULL);
INSERT INTO conform_control VALUES ('', 0, %d);

CREATE FUNCTION conform_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE c conform_control;
BEGIN
	SELECT * INTO c FROM conform_control;
	IF c.kind = 'stall' THEN
		PERFORM pg_advisory_xact_lock_shared(c.stall_key);
	ELSIF c.kind = 'down' AND nextval('conform_faults') <= c.until THEN
		RAISE EXCEPTION 'the receiver is down' USING ERRCODE = '40001';
	ELSIF c.kind = 'reject' AND nextval('conform_faults') <= c.until THEN
		RAISE EXCEPTION 'the receiver refuses %%', NEW.activation_id USING ERRCODE = '22023';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER conform_fault BEFORE INSERT ON tessera_profiles FOR EACH ROW EXECUTE FUNCTION conform_fault();

CREATE FUNCTION conform_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO conform_log (activation_id, profile_id, audiences) VALUES (NEW.activation_id, NEW.id, NEW.audiences);
	RETURN NULL;
END $$;
CREATE TRIGGER conform_log AFTER INSERT OR UPDATE ON tessera_profiles FOR EACH ROW EXECUTE FUNCTION conform_log();
`

// conformReceiver is a PostgreSQL schema of the test server, for the
// conformance suite. The database answers no Retry-After, so Throttle is
// not offered. Rows the sink wrote are deliveries; refused ones leave no
// row and are not reported.
type conformReceiver struct {
	t        *testing.T
	now      func() time.Time
	dsn      string
	db       *pgxpool.Pool
	stallKey int64

	mu      sync.Mutex
	seen    []sinktest.Received // by log order
	lastSeq int64
	holder  *pgxpool.Conn // holds the stall lock
}

func newConformReceiver(t *testing.T, now func() time.Time) *conformReceiver {
	dsn, db := freshSchema(t)
	r := &conformReceiver{t: t, now: now, dsn: dsn, db: db, stallKey: mrand.Int64()}
	ctx := context.Background()
	if _, err := db.Exec(ctx, Schema); err != nil {
		t.Fatalf("creating the tables: %v", err)
	}
	if _, err := db.Exec(ctx, fmt.Sprintf(conformSQL, r.stallKey)); err != nil {
		t.Fatalf("instrumenting the tables: %v", err)
	}
	t.Cleanup(r.Heal)
	return r
}

func (r *conformReceiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.DSNEnv = "postgres", dsnEnv
	s, err := New(dest, func(k string) string {
		if k == dsnEnv {
			return r.dsn
		}
		return ""
	})
	return dest, s, err
}

// Received reads the rows logged since the last call; each is stamped
// with the time it was first seen.
func (r *conformReceiver) Received() []sinktest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, err := r.db.Query(context.Background(), `SELECT seq, activation_id, profile_id FROM conform_log WHERE seq > $1 ORDER BY seq`, r.lastSeq)
	if err != nil {
		r.t.Errorf("reading the log: %v", err)
		return append([]sinktest.Received(nil), r.seen...)
	}
	defer rows.Close()
	for rows.Next() {
		var id, profile string
		if err := rows.Scan(&r.lastSeq, &id, &profile); err != nil {
			r.t.Errorf("reading the log: %v", err)
			break
		}
		r.seen = append(r.seen, sinktest.Received{Key: id, ActivationID: id, ProfileID: profile, At: r.now()})
	}
	return append([]sinktest.Received(nil), r.seen...)
}

func (r *conformReceiver) Inject(f sinktest.Fault) bool {
	ctx := context.Background()
	var kind string
	switch f.Kind {
	case sinktest.Down:
		kind = "down"
	case sinktest.Reject:
		kind = "reject"
	case sinktest.Stall:
		kind = "stall"
		conn, err := r.db.Acquire(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", r.stallKey); err != nil {
			r.t.Fatal(err)
		}
		r.mu.Lock()
		r.holder = conn
		r.mu.Unlock()
	default:
		return false
	}
	if _, err := r.db.Exec(ctx, `SELECT setval('conform_faults', 1, false)`); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.db.Exec(ctx, `UPDATE conform_control SET kind = $1, until = $2`, kind, f.Times); err != nil {
		r.t.Fatal(err)
	}
	return true
}

func (r *conformReceiver) Heal() {
	ctx := context.Background()
	if _, err := r.db.Exec(ctx, `UPDATE conform_control SET kind = '', until = 0`); err != nil {
		r.t.Errorf("healing: %v", err)
	}
	r.mu.Lock()
	conn := r.holder
	r.holder = nil
	r.mu.Unlock()
	if conn != nil {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", r.stallKey); err != nil {
			r.t.Errorf("releasing the stall: %v", err)
		}
		conn.Release()
	}
}
