// Package definitions is tessera's event-sourced configuration: features,
// audiences, destinations and fitted model parameters live on the compacted
// topic <app>.definitions (one partition, keyed "kind/name", Avro values,
// a tombstone deletes), and every instance follows all of it, so a change
// made through any instance's API reaches every running task without a
// restart.
package definitions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Definition is one definition.
type Definition struct {
	Kind, Name string
	// Body is the definition as JSON.
	Body      []byte
	UpdatedAt time.Time
}

// Store follows the definitions topic and writes to it.
type Store struct {
	topic string
	cl    *kgo.Client
	log   *slog.Logger

	mu sync.Mutex
	// defs by "kind/name". REQUIRES: mu.
	defs map[string]Definition
	// next is the offset after the last record applied. REQUIRES: mu.
	next int64
	// changed is closed and replaced whenever next advances, waking
	// writers that wait to read their own write. REQUIRES: mu.
	changed  chan struct{}
	watchers []func(Definition, bool)
	done     chan struct{}
}

// Topic returns the definitions topic of app.
func Topic(app string) string { return app + ".definitions" }

// Open creates the topic if needed and starts following it from the
// beginning; it returns once the definitions present at start are loaded.
func Open(ctx context.Context, app string, log *slog.Logger, opts ...kgo.Opt) (*Store, error) {
	topic := Topic(app)
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating definitions admin client: %w", err)
	}
	adm := kadm.NewClient(admin)
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		admin.Close()
		return nil, fmt.Errorf("creating %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("listing the end of %s: %w", topic, err)
	}
	end, _ := ends.Lookup(topic, 0)
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating definitions client: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Store{topic: topic, cl: cl, log: log, defs: make(map[string]Definition), changed: make(chan struct{}), done: make(chan struct{})}
	go s.follow()
	if err := s.waitFor(ctx, end.Offset); err != nil {
		s.Close()
		return nil, fmt.Errorf("loading %s: %w", topic, err)
	}
	return s, nil
}

func (s *Store) follow() {
	defer close(s.done)
	for {
		fs := s.cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			s.log.Warn("reading definitions", "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			key := string(r.Key)
			kind, name, _ := strings.Cut(key, "/")
			var d Definition
			deleted := r.Value == nil
			if !deleted {
				var err error
				if d, err = decode(r.Value); err != nil {
					s.log.Error("skipping a definition that does not decode", "key", key, "offset", r.Offset, "err", err)
					return
				}
			} else {
				d = Definition{Kind: kind, Name: name}
			}
			s.mu.Lock()
			if deleted {
				delete(s.defs, key)
			} else {
				s.defs[key] = d
			}
			watchers := s.watchers
			s.mu.Unlock()
			for _, w := range watchers {
				w(d, deleted)
			}
		})
		if n := len(fs.Records()); n > 0 {
			last := fs.Records()[n-1].Offset
			s.mu.Lock()
			s.next = last + 1
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

// waitFor returns once the records before offset are applied.
func (s *Store) waitFor(ctx context.Context, offset int64) error {
	for {
		s.mu.Lock()
		next, ch := s.next, s.changed
		s.mu.Unlock()
		if next >= offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Put writes a definition and returns once this instance has read it back,
// so a client that wrote through the API reads its own write.
func (s *Store) Put(ctx context.Context, kind, name string, body []byte) error {
	v, err := encode(Definition{Kind: kind, Name: name, Body: body, UpdatedAt: time.Now()})
	if err != nil {
		return err
	}
	return s.write(ctx, kind+"/"+name, v)
}

// Delete removes a definition (a tombstone).
func (s *Store) Delete(ctx context.Context, kind, name string) error {
	return s.write(ctx, kind+"/"+name, nil)
}

func (s *Store) write(ctx context.Context, key string, value []byte) error {
	r := &kgo.Record{Topic: s.topic, Partition: 0, Key: []byte(key), Value: value}
	if err := s.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("writing definition %s: %w", key, err)
	}
	return s.waitFor(ctx, r.Offset+1)
}

// Get returns a definition.
func (s *Store) Get(kind, name string) (Definition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.defs[kind+"/"+name]
	return d, ok
}

// List returns the definitions of kind, by name.
func (s *Store) List(kind string) []Definition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Definition
	for _, d := range s.defs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Watch calls fn for every definition applied from now on (deleted true
// for a tombstone), on the store's goroutine: fn must be quick.
func (s *Store) Watch(fn func(d Definition, deleted bool)) {
	s.mu.Lock()
	s.watchers = append(s.watchers, fn)
	s.mu.Unlock()
}

// Close stops following the topic.
func (s *Store) Close() {
	s.cl.Close()
	<-s.done
}

func encode(d Definition) ([]byte, error) {
	c, err := schemas.Codec("definition")
	if err != nil {
		return nil, err
	}
	b, err := c.BinaryFromNative(nil, map[string]any{"kind": d.Kind, "name": d.Name, "body": d.Body, "updated_at": d.UpdatedAt.UnixMilli()})
	if err != nil {
		return nil, fmt.Errorf("encoding definition %s/%s: %w", d.Kind, d.Name, err)
	}
	return b, nil
}

func decode(b []byte) (Definition, error) {
	c, err := schemas.Codec("definition")
	if err != nil {
		return Definition{}, err
	}
	n, _, err := c.NativeFromBinary(b)
	if err != nil {
		return Definition{}, fmt.Errorf("decoding definition: %w", err)
	}
	m := n.(map[string]any)
	return Definition{Kind: m["kind"].(string), Name: m["name"].(string), Body: m["body"].([]byte),
		UpdatedAt: time.UnixMilli(m["updated_at"].(int64)).UTC()}, nil
}
