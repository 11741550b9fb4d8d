package main

// tessera replay: reprocess the live application's events into a new
// application id.
//
// # Design
//
// A replay is a `tessera run` under the new application id NEW whose
// topology reads <live>.events instead of NEW.events (identity.Options
// EventsTopic). Everything it writes is NEW's: stores under <data>/NEW/,
// changelogs, internal topics, NEW.definitions, NEW.activations. It starts
// no destination runner and no Kafka source, and accepts no tracked events
// (no write keys), so nothing reaches a customer and nothing new enters.
//
// Where it starts: the consumer group NEW has no committed offsets on the
// first run, so --from earliest starts at the log start; --from T commits,
// before the group starts, the first offset of each partition stamped at or
// after T (ListOffsetsAfterMilli). A replay that is run again resumes from
// its group's offsets.
//
// Where it stops: --to T fixes, at start, the first offset of each
// partition stamped after T; records from there on are skipped by offset
// (identity.Options SkipEvent), so the bound is exact however long the
// replay keeps running. Without --to the bound is the end of the events
// topic, read again on every progress tick.
//
// Caught up means: the group's committed offset on every events partition
// has reached the bound, and every internal topic (links, profile-ops) is
// drained: nothing but transaction markers and aborted records lies
// between the group's committed offset and the last stable offset (read,
// not inferred from offsets: interleaved transactions leave several
// markers in a row). Offsets are committed with the state they reflect, so
// once caught up the stores answer for every event up to the bound.
//
// Activations: the replay's audience entries and exits go to
// NEW.activations. When it exits, it commits, for every destination in
// the configuration whose group NEW.sink.<name> has no live member, the
// end of NEW.activations (and of its retry topic) as that group's
// position: after the cut-over the destinations deliver only what the new
// application produces from then on, never the replayed history.
//
// The live application's definitions (features, audiences, destinations
// and model parameters added through the API) are copied record by record
// to NEW.definitions when that topic is empty, so the replay computes what
// the live application computes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/kafkaconn"
	"github.com/tessera-cdp/tessera/processor/identity"
)

// replayHooks are what a replay changes in run: the topology's source
// topic and its --to bound.
type replayHooks struct {
	eventsTopic string
	skipEvent   func(partition int32, offset int64) bool
}

type replayFlags struct {
	file    string
	data    string
	http    string
	brokers []string
	from    string
	to      string
	app     string
	follow  bool
	every   time.Duration
}

func newReplayCmd() *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay --app NEW_APP_ID --from earliest|RFC3339 [--to RFC3339]",
		Short: "Reprocess the live application's events into a new application id",
		Long: `Replay reads <app>.events of the application in the configuration (the live
one) and processes it into a fresh application id, NEW_APP_ID: new stores under
<data>/NEW_APP_ID/, new changelogs and internal topics named NEW_APP_ID.*. The
live application is not touched and may keep running.

Sinks are suppressed: no destination runs during a replay, and the replay's
activations (audience entries and exits) go to NEW_APP_ID.activations, which
no destination reads yet. When the replay exits it sets every configured
destination's group of NEW_APP_ID to the end of NEW_APP_ID.activations, so
after the cut-over nobody is sent the replayed history again.

--from and --to compare with the Kafka record timestamps of <app>.events (when
tessera received each event), not with the events' own timestamp field.

It prints a progress bar with the throughput and "caught up" once every event
up to the bound (--to, or the end of the topic) is processed; then it exits,
or with --follow keeps processing new events until SIGTERM. While it runs,
its HTTP API (on --http) answers for NEW_APP_ID, so the result can be checked
before the cut-over. The README's "Replay and cut-over" says how to switch.

The replay needs the live application's Kafka: kafka.brokers, $TESSERA_BROKERS
or --brokers.`,
		Example: `  # Rebuild everything from the start of the events topic into tessera-v2:
  tessera replay -c tessera.yaml --brokers kafka:9092 --app tessera-v2 --from earliest

  # Backfill one month, then keep following the live events until the cut-over:
  tessera replay -c tessera.yaml --app tessera-v2 --from 2026-03-01T00:00:00Z --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f.file, config.Overrides{Data: f.data, HTTPListen: f.http, Brokers: f.brokers})
			if err != nil {
				return err
			}
			plan, err := newReplayPlan(cfg, f)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			dir := "."
			if f.file != "" {
				dir = filepath.Dir(f.file)
			}
			return plan.run(ctx, dir, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "config", "c", "", "configuration file of the live application (YAML)")
	fl.StringVar(&f.app, "app", "", "the new application id to replay into (required; must differ from the configuration's app)")
	fl.StringVar(&f.from, "from", "", `where to start: "earliest" or an RFC3339 time (required)`)
	fl.StringVar(&f.to, "to", "", "where to stop: an RFC3339 time; events stamped after it are not replayed (default: the end of the topic)")
	fl.BoolVar(&f.follow, "follow", false, "keep processing new events after catching up, until SIGTERM")
	fl.StringVar(&f.data, "data", "", "data directory, overriding data; the replay's stores go under <data>/NEW_APP_ID")
	fl.StringVar(&f.http, "http", "127.0.0.1:0", "HTTP listen address of the replay's API; port 0 takes a free port, printed")
	fl.StringSliceVar(&f.brokers, "brokers", nil, "Kafka seed brokers host:port,…, overriding kafka.brokers")
	fl.DurationVar(&f.every, "progress-interval", time.Second, "how often progress is checked and printed")
	return cmd
}

// replayPlan is a validated replay.
type replayPlan struct {
	live, cfg config.Config // the live application's configuration, and the replay's
	from      time.Time     // zero: earliest
	to        time.Time     // zero: no bound
	follow    bool
	every     time.Duration
	// clientOpts connect a Kafka client (set by run).
	clientOpts []kgo.Opt
}

func newReplayPlan(live config.Config, f replayFlags) (*replayPlan, error) {
	p := &replayPlan{live: live, follow: f.follow, every: f.every}
	switch {
	case f.app == "":
		return nil, usageError{errors.New("--app is required: the new application id to replay into")}
	case f.app == live.App:
		return nil, usageError{fmt.Errorf("--app %q is the live application's id; a replay needs a new one (say %s-v2)", f.app, live.App)}
	case f.from == "":
		return nil, usageError{errors.New(`--from is required: "earliest" or an RFC3339 time`)}
	case live.Embedded():
		return nil, usageError{errors.New("replay reads the live application's Kafka: set kafka.brokers, $TESSERA_BROKERS or --brokers (for the embedded broker, start it with `tessera broker`)")}
	case f.every <= 0:
		return nil, usageError{fmt.Errorf("--progress-interval must be positive, got %s", f.every)}
	}
	if f.from != "earliest" {
		t, err := time.Parse(time.RFC3339, f.from)
		if err != nil {
			return nil, usageError{fmt.Errorf(`--from %q: want "earliest" or an RFC3339 time such as 2026-03-01T00:00:00Z`, f.from)}
		}
		p.from = t
	}
	if f.to != "" {
		t, err := time.Parse(time.RFC3339, f.to)
		if err != nil {
			return nil, usageError{fmt.Errorf("--to %q: want an RFC3339 time such as 2026-03-31T23:59:59Z", f.to)}
		}
		if !p.from.IsZero() && !t.After(p.from) {
			return nil, usageError{fmt.Errorf("--to %s is not after --from %s", f.to, f.from)}
		}
		p.to = t
	}
	cfg := live
	cfg.App = f.app
	// Sinks suppressed, nothing new in: no destination runners, no Kafka
	// sources, no write keys (the tracking API refuses every request).
	cfg.Destinations = nil
	cfg.Sources.Kafka = nil
	cfg.Ingest.WriteKeys = nil
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("--app: %w", err)
	}
	p.cfg = cfg
	return p, nil
}

func (p *replayPlan) eventsTopic() string { return identity.TopicsOf(p.live.App).Events }

// run prepares the new application's group, runs it, reports progress and
// stops when caught up (unless following).
func (p *replayPlan) run(ctx context.Context, configDir string, stdout io.Writer) error {
	kconn, err := kafkaconn.New(p.cfg.Kafka.Brokers, p.cfg.Kafka, os.Getenv)
	if err != nil {
		return err
	}
	p.clientOpts = kconn.Opts()
	cl, err := kgo.NewClient(kconn.Opts()...)
	if err != nil {
		return fmt.Errorf("creating Kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	events := p.eventsTopic()

	setupCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	parts, err := p.partitions(setupCtx, adm)
	if err != nil {
		return err
	}
	// The new topics must be co-partitioned with the live events.
	p.cfg.Kafka.Partitions = len(parts)
	if err := copyDefinitions(setupCtx, kconn, adm, p.live.App, p.cfg.App); err != nil {
		return err
	}
	start, err := p.startOffsets(setupCtx, adm, parts)
	if err != nil {
		return err
	}
	var bound map[int32]int64 // --to, fixed; nil: the end, moving
	if !p.to.IsZero() {
		if bound, err = offsetsAfter(setupCtx, adm, events, p.to.UnixMilli()+1); err != nil {
			return err
		}
	}
	cancel()

	hooks := replayHooks{eventsTopic: events}
	if bound != nil {
		hooks.skipEvent = func(partition int32, offset int64) bool {
			b, ok := bound[partition]
			return !ok || offset >= b
		}
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- run(runCtx, p.cfg, configDir, stdout, hooks) }()

	fmt.Fprintf(stdout, "replaying %s into %s from %s to %s\n", events, p.cfg.App, p.describeFrom(), p.describeTo())
	prog := newProgress(stdout, start)
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	caughtUp := false
	var err2 error
loop:
	for {
		select {
		case err2 = <-runErr:
			runErr = nil
			break loop
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		st, err := p.status(ctx, adm, bound)
		if err != nil {
			prog.note(fmt.Sprintf("checking progress: %v", err))
			continue
		}
		prog.update(st)
		if st.caughtUp() && !caughtUp {
			caughtUp = true
			prog.caughtUp(st)
			if !p.follow {
				break loop
			}
		}
	}
	stopRun()
	if runErr != nil {
		err2 = <-runErr
	}
	// The fence runs however the replay ended: whatever it wrote to
	// NEW.activations must never be delivered.
	fenceCtx, cancelFence := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelFence()
	if err := fenceDestinations(fenceCtx, adm, p.cfg.App, p.live.Destinations, stdout); err != nil && err2 == nil {
		err2 = err
	}
	if err2 != nil {
		return err2
	}
	if !caughtUp && ctx.Err() != nil {
		fmt.Fprintln(stdout, "replay stopped before catching up; run it again with the same --app to resume")
	}
	return nil
}

func (p *replayPlan) describeFrom() string {
	if p.from.IsZero() {
		return "the earliest event"
	}
	return p.from.UTC().Format(time.RFC3339)
}

func (p *replayPlan) describeTo() string {
	if p.to.IsZero() {
		if p.follow {
			return "the end, following"
		}
		return "the end"
	}
	return p.to.UTC().Format(time.RFC3339)
}

// partitions returns the partitions of the live events topic.
func (p *replayPlan) partitions(ctx context.Context, adm *kadm.Client) ([]int32, error) {
	events := p.eventsTopic()
	td, err := adm.ListTopics(ctx, events)
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of %s: %w", events, err)
	}
	d, ok := td[events]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return nil, fmt.Errorf("the live application's events topic %s does not exist on %s: is app %q right?",
			events, strings.Join(p.cfg.Kafka.Brokers, ","), p.live.App)
	}
	return d.Partitions.Numbers(), nil
}

// startOffsets returns where the replay starts on each events partition:
// the new group's committed offset when it has one (a resumed replay),
// else --from, committed now so that the group starts there.
func (p *replayPlan) startOffsets(ctx context.Context, adm *kadm.Client, parts []int32) (map[int32]int64, error) {
	events := p.eventsTopic()
	committed, err := fetchCommitted(ctx, adm, p.cfg.App, events)
	if err != nil {
		return nil, fmt.Errorf("reading the offsets of group %s: %w", p.cfg.App, err)
	}
	out := make(map[int32]int64, len(parts))
	resumed := false
	for _, part := range parts {
		if o, ok := committed.Lookup(events, part); ok && o.Err == nil && o.At >= 0 {
			out[part] = o.At
			resumed = true
		}
	}
	if resumed {
		return out, nil
	}
	if p.from.IsZero() {
		starts, err := adm.ListStartOffsets(ctx, events)
		if err != nil {
			return nil, fmt.Errorf("listing the start of %s: %w", events, err)
		}
		for _, part := range parts {
			o, _ := starts.Lookup(events, part)
			out[part] = o.Offset
		}
		return out, nil
	}
	after, err := offsetsAfter(ctx, adm, events, p.from.UnixMilli())
	if err != nil {
		return nil, err
	}
	commit := make(kadm.Offsets)
	for _, part := range parts {
		out[part] = after[part]
		commit.Add(kadm.Offset{Topic: events, Partition: part, At: after[part], LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, p.cfg.App, commit); err != nil {
		return nil, fmt.Errorf("setting group %s to --from on %s: %w", p.cfg.App, events, err)
	}
	return out, nil
}

// fetchCommitted returns group's committed offsets on topics; a group that
// does not exist yet has none.
func fetchCommitted(ctx context.Context, adm *kadm.Client, group string, topics ...string) (kadm.OffsetResponses, error) {
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return kadm.OffsetResponses{}, nil
	}
	return committed, err
}

// pendingRecords counts the records a read_committed consumer would get
// from the ranges [from, to) of each topic's partitions, reading them: the
// markers of transactions and the records of aborted ones occupy offsets
// but are nothing to process. opts connect the reader.
func pendingRecords(ctx context.Context, opts []kgo.Opt, ranges map[string]map[int32][2]int64) (int64, error) {
	if len(ranges) == 0 {
		return 0, nil
	}
	consume := make(map[string]map[int32]kgo.Offset)
	left := 0
	for topic, ps := range ranges {
		consume[topic] = make(map[int32]kgo.Offset)
		for p, r := range ps {
			consume[topic][p] = kgo.NewOffset().At(r[0])
			left++
		}
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return 0, fmt.Errorf("creating a reader of the internal topics: %w", err)
	}
	defer cl.Close()
	var pending int64
	done := make(map[string]map[int32]bool)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("reading the internal topics: %w", ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			return 0, fmt.Errorf("reading the internal topics: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			to := ranges[r.Topic][r.Partition][1]
			if done[r.Topic][r.Partition] {
				return
			}
			if r.Offset < to && !r.Attrs.IsControl() {
				pending++
			}
			// Past the range only when the stable offset moved on
			// meanwhile: the range is read.
			if r.Offset >= to-1 {
				if done[r.Topic] == nil {
					done[r.Topic] = make(map[int32]bool)
				}
				done[r.Topic][r.Partition] = true
				left--
			}
		})
	}
	return pending, nil
}

// offsetsAfter returns, per partition of topic, the first offset stamped at
// or after ms, or the end offset when there is none.
func offsetsAfter(ctx context.Context, adm *kadm.Client, topic string, ms int64) (map[int32]int64, error) {
	listed, err := adm.ListOffsetsAfterMilli(ctx, ms, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s at %s: %w", topic, time.UnixMilli(ms).UTC().Format(time.RFC3339), err)
	}
	out := make(map[int32]int64)
	for part, o := range listed[topic] {
		out[part] = o.Offset
	}
	return out, nil
}

// replayStatus is one look at the new group's progress.
type replayStatus struct {
	// done and bound are per events partition: committed offset and where
	// the replay stops.
	done, bound map[int32]int64
	// internalLag counts the records of the internal topics the group has
	// not processed yet.
	internalLag int64
}

func (s replayStatus) caughtUp() bool {
	if s.internalLag > 0 {
		return false
	}
	for part, b := range s.bound {
		if s.done[part] < b {
			return false
		}
	}
	return true
}

// status reads the group's committed offsets against the bound (fixed, or
// the current end of the events topic) and the ends of the internal topics.
func (p *replayPlan) status(ctx context.Context, adm *kadm.Client, fixed map[int32]int64) (replayStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events := p.eventsTopic()
	t := identity.TopicsOf(p.cfg.App)
	internal := []string{t.Links, t.Ops}
	committed, err := fetchCommitted(ctx, adm, p.cfg.App, append([]string{events}, internal...)...)
	if err != nil {
		return replayStatus{}, err
	}
	st := replayStatus{done: make(map[int32]int64), bound: fixed}
	if st.bound == nil {
		ends, err := adm.ListEndOffsets(ctx, events)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return replayStatus{}, err
		}
		st.bound = make(map[int32]int64)
		for part, o := range ends[events] {
			st.bound[part] = o.Offset
		}
	}
	starts, err := adm.ListStartOffsets(ctx, events)
	if err != nil {
		return replayStatus{}, err
	}
	for part := range st.bound {
		if o, ok := committed.Lookup(events, part); ok && o.Err == nil && o.At >= 0 {
			st.done[part] = o.At
		} else if s, ok := starts.Lookup(events, part); ok {
			st.done[part] = s.Offset // nothing processed yet
		}
	}
	// The internal topics: the records between the group's committed
	// offset and the last stable offset. Transaction markers and aborted
	// records occupy offsets there (several markers in a row when
	// instances' transactions interleave), so the offsets alone do not
	// say whether anything is left: pendingRecords reads what is.
	lso, err := adm.ListCommittedOffsets(ctx, internal...)
	if err != nil {
		return replayStatus{}, err
	}
	ranges := make(map[string]map[int32][2]int64)
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset <= 0 {
			return
		}
		var at int64
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			at = c.At
		}
		if at < o.Offset {
			if ranges[o.Topic] == nil {
				ranges[o.Topic] = make(map[int32][2]int64)
			}
			ranges[o.Topic][o.Partition] = [2]int64{at, o.Offset}
		}
	})
	if st.internalLag, err = pendingRecords(ctx, p.clientOpts, ranges); err != nil {
		return replayStatus{}, err
	}
	return st, nil
}

// copyDefinitions copies the live application's definitions topic record by
// record into the new application's, unless that one has records already
// (a resumed replay keeps its own).
func copyDefinitions(ctx context.Context, kconn *kafkaconn.Conn, adm *kadm.Client, live, replay string) error {
	src, dst := definitions.Topic(live), definitions.Topic(replay)
	ends, err := adm.ListEndOffsets(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("listing the ends of %s and %s: %w", src, dst, err)
	}
	if o, ok := ends.Lookup(dst, 0); ok && o.Err == nil && o.Offset > 0 {
		return nil
	}
	srcEnd, ok := ends.Lookup(src, 0)
	if !ok || srcEnd.Err != nil || srcEnd.Offset == 0 {
		return nil // the live application has no definitions topic yet
	}
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, dst)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	rd, err := kgo.NewClient(kconn.Opts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{src: {0: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		return fmt.Errorf("creating a reader of %s: %w", src, err)
	}
	defer rd.Close()
	// The definitions are written without transactions, and compaction
	// keeps the last record of a log, so the record before the end is
	// there to be read.
	var recs []*kgo.Record
	for next := int64(0); next < srcEnd.Offset; {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s: %w", src, ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("reading %s: %w", src, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Offset < srcEnd.Offset {
				recs = append(recs, &kgo.Record{Topic: dst, Partition: 0, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp})
			}
		})
	}
	w, err := kgo.NewClient(kconn.Opts(kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("creating a writer of %s: %w", dst, err)
	}
	defer w.Close()
	if err := w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("copying definitions to %s: %w", dst, err)
	}
	return nil
}

// fenceDestinations commits the end of the new application's activations
// (and each destination's retry topic) as the position of every
// destination group that has no live member, so the replayed activations
// are never delivered. A group with members is the new application's own
// after a cut-over, and is left alone.
func fenceDestinations(ctx context.Context, adm *kadm.Client, app string, dests []config.Destination, stdout io.Writer) error {
	if len(dests) == 0 {
		return nil
	}
	for _, d := range dests {
		group := sink.Group(app, d.Name)
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return fmt.Errorf("describing group %s: %w", group, err)
		}
		if g, ok := described[group]; ok && len(g.Members) > 0 {
			fmt.Fprintf(stdout, "destination %s: group %s has live members; left alone\n", d.Name, group)
			continue
		}
		topics := []string{sink.ActivationsTopic(app), sink.RetryTopic(app, d.Name)}
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("listing the ends of %s: %w", strings.Join(topics, ", "), err)
		}
		commit := make(kadm.Offsets)
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Partition >= 0 {
				commit.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
			}
		})
		if len(commit) == 0 {
			continue
		}
		if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
			return fmt.Errorf("setting group %s past the replayed activations: %w", group, err)
		}
		fmt.Fprintf(stdout, "destination %s: group %s set past the replayed activations\n", d.Name, group)
	}
	return nil
}

// progress prints the replay's progress: a bar redrawn in place on a
// terminal, one line per change otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	start  map[int32]int64
	began  time.Time
	mu     sync.Mutex
	last   int64
	lastAt time.Time
	rate   float64
	width  int
}

func newProgress(w io.Writer, start map[int32]int64) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	return &progress{w: w, tty: tty, start: start, began: now, lastAt: now}
}

// counts returns the events processed and the events to process in all.
func (p *progress) counts(st replayStatus) (done, total int64) {
	for part, b := range st.bound {
		s := p.start[part]
		done += max(min(st.done[part], b)-s, 0)
		total += max(b-s, 0)
	}
	return done, total
}

func (p *progress) update(st replayStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done, total := p.counts(st)
	now := time.Now()
	if dt := now.Sub(p.lastAt).Seconds(); dt > 0 {
		p.rate = float64(done-p.last) / dt
	}
	if done == p.last && !p.tty && !st.caughtUp() {
		p.lastAt = now
		return // nothing new: no line
	}
	p.last, p.lastAt = done, now
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	line := fmt.Sprintf("[%s] %5.1f%%  %d/%d events  %.0f events/s", bar, 100*frac, done, total, p.rate)
	if st.internalLag > 0 {
		line += fmt.Sprintf("  %d internal records pending", st.internalLag)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%-*s", p.width, line)
		p.width = len(line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintln(p.w, msg)
}

func (p *progress) caughtUp(st replayStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done, _ := p.counts(st)
	secs := time.Since(p.began).Seconds()
	if p.tty {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, "caught up: %d events in %.1fs (%.0f events/s)\n", done, secs, float64(done)/secs)
}
