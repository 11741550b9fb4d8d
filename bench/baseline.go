package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BaselineOptions configures the baseline loop.
type BaselineOptions struct {
	Brokers []string
	// From is read from the start by consumer group Group; each record
	// is written to To with the same key and value.
	From, To, Group string
	// Records is how many records to copy before stopping.
	Records int64
	// ExactlyOnce runs the loop in transactions (a GroupTransactSession,
	// offsets in the transaction), as the hub does under exactly-once;
	// otherwise it flushes and then commits offsets.
	ExactlyOnce bool
	// CommitInterval is how often a cycle is committed, as
	// processing.commit_interval. Default 100ms.
	CommitInterval time.Duration
}

// BaselineResult is what the loop reports of itself.
type BaselineResult struct {
	Records int64   `json:"records"`
	Seconds float64 `json:"seconds"` // from the first record to the last commit
}

// Baseline is the bare franz-go consume→produce loop the hub's overhead is
// measured against: no stores, no parsing, the same broker, client
// settings close to the engine's (read-committed, no linger), and the
// same commit cycle. `tessera bench` runs it in its own process
// (`tessera bench-baseline`) so that its CPU time is its own.
func Baseline(ctx context.Context, o BaselineOptions) (BaselineResult, error) {
	if o.CommitInterval <= 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.From),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(1_000_000),
		kgo.DefaultProduceTopic(o.To),
	}
	var (
		sess *kgo.GroupTransactSession
		cl   *kgo.Client
		err  error
	)
	if o.ExactlyOnce {
		opts = append(opts, kgo.TransactionalID(o.Group), kgo.RequireStableFetchOffsets())
		if sess, err = kgo.NewGroupTransactSession(opts...); err != nil {
			return BaselineResult{}, fmt.Errorf("creating the baseline's session: %w", err)
		}
		defer sess.Close()
	} else {
		if cl, err = kgo.NewClient(opts...); err != nil {
			return BaselineResult{}, fmt.Errorf("creating the baseline's client: %w", err)
		}
		defer cl.Close()
	}
	poll := func(ctx context.Context) kgo.Fetches {
		if sess != nil {
			return sess.PollRecords(ctx, 10000)
		}
		return cl.PollRecords(ctx, 10000)
	}
	var (
		res     BaselineResult
		first   time.Time
		inCycle bool
		cycle   time.Time
		prodErr = make(chan error, 1)
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			select {
			case prodErr <- err:
			default:
			}
		}
	}
	commit := func() error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if sess != nil {
			committed, err := sess.End(ctx, kgo.TryCommit)
			if err != nil {
				return fmt.Errorf("ending the baseline's transaction: %w", err)
			}
			if !committed {
				return errors.New("the baseline's transaction aborted")
			}
		} else {
			if err := cl.Flush(ctx); err != nil {
				return fmt.Errorf("flushing the baseline: %w", err)
			}
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				return fmt.Errorf("committing the baseline's offsets: %w", err)
			}
		}
		select {
		case err := <-prodErr:
			return fmt.Errorf("producing to %s: %w", o.To, err)
		default:
		}
		return nil
	}
	for res.Records < o.Records {
		pctx, cancel := context.WithTimeout(ctx, o.CommitInterval)
		fs := poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return res, ferr
		}
		if !fs.Empty() {
			if first.IsZero() {
				first = time.Now()
			}
			if !inCycle {
				if sess != nil {
					if err := sess.Begin(); err != nil {
						return res, fmt.Errorf("beginning the baseline's transaction: %w", err)
					}
				}
				inCycle, cycle = true, time.Now()
			}
			fs.EachRecord(func(r *kgo.Record) {
				res.Records++
				out := &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
				if sess != nil {
					sess.Produce(ctx, out, promise)
				} else {
					cl.Produce(ctx, out, promise)
				}
			})
		}
		if inCycle && (time.Since(cycle) >= o.CommitInterval || res.Records >= o.Records) {
			if err := commit(); err != nil {
				return res, err
			}
			inCycle = false
		}
	}
	res.Seconds = time.Since(first).Seconds()
	return res, nil
}
