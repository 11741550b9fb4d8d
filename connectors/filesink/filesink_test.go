package filesink_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/filesink"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return &receiver{t: t, now: env.Now, path: filepath.Join(t.TempDir(), "out", "activations.jsonl")}
	}})
}

// receiver reads the JSON Lines file. A file system cannot be made to
// fail on cue, so Down is injected around the sink's writes: while a
// write that should fail runs, the file's path is a directory, and the
// sink meets a real error. The file sink has no permanent refusal, no
// Retry-After and nothing to stall.
type receiver struct {
	t    *testing.T
	now  func() time.Time
	path string

	mu   sync.Mutex
	down int // writes still to fail
	last []sinktest.Received
}

func (r *receiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.Path = "file", r.path
	s, err := filesink.New(dest, nil)
	if err != nil {
		return dest, nil, err
	}
	return dest, &faulty{Sink: s, r: r}, nil
}

func (r *receiver) Inject(f sinktest.Fault) bool {
	if f.Kind != sinktest.Down {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = f.Times
	return true
}

func (r *receiver) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = 0
}

func (r *receiver) Received() []sinktest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := os.ReadFile(r.path)
	if err != nil {
		return r.last // not written yet, or moved aside by a fault
	}
	var out []sinktest.Received
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var a sink.Activation
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			r.t.Errorf("line %d of %s is not an activation: %v\n%s", i+1, r.path, err, line)
			continue
		}
		if !json.Valid(a.Profile) || a.Timestamp.IsZero() {
			r.t.Errorf("line %d has no profile or no timestamp: %s", i+1, line)
		}
		out = append(out, sinktest.Received{Key: a.ID, ActivationID: a.ID, Type: a.Type, Name: a.Name, ProfileID: a.ProfileID, At: r.now()})
	}
	r.last = out
	return out
}

// faulty is the sink under test, with the file's path made a directory
// during the writes that should fail.
type faulty struct {
	sink.Sink
	r *receiver
}

func (f *faulty) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	r := f.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == 0 {
		return f.Sink.WriteBatch(ctx, batch)
	}
	r.down--
	aside := r.path + ".aside"
	if err := os.Rename(r.path, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	if err := os.Mkdir(r.path, 0o755); err != nil {
		r.t.Fatal(err)
	}
	err := f.Sink.WriteBatch(ctx, batch)
	if err := os.Remove(r.path); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(aside, r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	if err == nil {
		r.t.Error("writing to a path that is a directory succeeded")
	}
	return err
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dest    config.Destination
		wantErr string
	}{
		{"path", config.Destination{Path: "/tmp/x.jsonl"}, ""},
		{"no path", config.Destination{}, "file out: path is required"},
		{"an unused field", config.Destination{Path: "/tmp/x", URL: "https://x"}, "file out: url is not used by file destinations (they use path, template)"},
		{"bad template", config.Destination{Path: "/tmp/x", Template: "{{.ID"}, "file out: parsing template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.dest.Name, tc.dest.Type = "out", "file"
			_, err := filesink.New(tc.dest, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestLines pins the exact lines written, with and without a template,
// appended to what the file held.
func TestLines(t *testing.T) {
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	batch := []sink.Activation{
		{ID: "a1", Type: sink.AudienceEntered, Name: "vip", ProfileID: "p1", Timestamp: ts, Profile: json.RawMessage(`{"traits":{"email":"ada@example.com"}}`)},
		{ID: "a2", Type: sink.EventTriggered, Name: "big", ProfileID: "p2", Timestamp: ts, Profile: json.RawMessage(`{}`), Event: json.RawMessage(`{"event":"Order Completed"}`)},
	}
	for _, tc := range []struct {
		name, template, want string
	}{
		{"activations", "",
			`{"id":"a1","type":"audience_entered","name":"vip","profile_id":"p1","timestamp":"2026-05-06T07:08:09Z","profile":{"traits":{"email":"ada@example.com"}}}` + "\n" +
				`{"id":"a2","type":"event_triggered","name":"big","profile_id":"p2","timestamp":"2026-05-06T07:08:09Z","profile":{},"event":{"event":"Order Completed"}}` + "\n"},
		{"template", "{\n  \"id\": {{json .ID}},\n  \"email\": {{json .ProfileMap.traits.email}}\n}",
			`{"id":"a1","email":"ada@example.com"}` + "\n" + `{"id":"a2","email":null}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "new", "dir", "out.jsonl")
			s, err := filesink.New(config.Destination{Name: "out", Type: "file", Path: path, Template: tc.template}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.WriteBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want+tc.want {
				t.Errorf("file:\n%s\nwant:\n%s", got, tc.want+tc.want)
			}
		})
	}
}

// TestTemplateFailureFailsOnlyThatLine: a line that does not render is
// reported failed, permanently, and the others are written.
func TestTemplateFailureFailsOnlyThatLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := filesink.New(config.Destination{Name: "out", Type: "file", Path: path, Template: `{"p": {{.ProfileMap.n}}}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.WriteBatch(context.Background(), []sink.Activation{
		{ID: "a1", Profile: json.RawMessage(`{"n": 1}`)},
		{ID: "a2", Profile: json.RawMessage(`{}`)}, // renders "<no value>": not JSON
	})
	var be *sink.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !sink.IsPermanent(be.Failed[1]) {
		t.Fatalf("WriteBatch: %v, want #1 failed permanently", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"p":1}`+"\n" {
		t.Errorf("file %q, want only the first line", b)
	}
}

func TestConnectFailsWhereNoFileCanBe(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := filesink.New(config.Destination{Name: "out", Type: "file", Path: filepath.Join(blocker, "out.jsonl")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "creating the folder of") {
		t.Fatalf("Connect under a file: %v, want an error creating the folder", err)
	}
}
