package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/processor/profile"
)

// latencyBatchEvery is how often the open-loop generator sends a batch
// (as an SDK flushing its queue); each batch carries rate×this events.
const latencyBatchEvery = 5 * time.Millisecond

// latencyWindow is the span of schedule over which Result.LatencyWindows
// gives percentiles: long enough for a few hundred samples at a
// thousand events a second, short enough that a 20-second run shows a
// trend.
const latencyWindow = 5 * time.Second

// latencySenders is how many batch requests may be in flight at once.
const latencySenders = 256

// latency runs the open-loop generator through the HTTP batch endpoint
// and measures, for each marked event, the time from its batch's
// scheduled send to its activation being readable.
func (h *harness) latency(ctx context.Context, res *Result) error {
	gen, err := NewGenerator(h.o.Workload, h.run)
	if err != nil {
		return err
	}
	if err := h.startHub(ctx); err != nil {
		return err
	}
	if err := h.waitReady(ctx, nil); err != nil {
		return err
	}

	// The schedule, built in advance: batch i is due at start+i×every.
	per := max(1, int(float64(h.o.Rate)*latencyBatchEvery.Seconds()))
	every := time.Duration(float64(per) / float64(h.o.Rate) * float64(time.Second))
	nBatches := (h.o.Events + per - 1) / per
	bodies := make([][]byte, nBatches)
	batchOf := make([]int32, h.o.Events) // event seq → batch
	marked := 0
	start := time.Now().Add(500 * time.Millisecond) // time to build the schedule
	for b := range nBatches {
		due := start.Add(time.Duration(b) * every)
		body := append([]byte(nil), `{"batch":[`...)
		for i := b * per; i < min((b+1)*per, h.o.Events); i++ {
			ev := gen.Next(due)
			if i > b*per {
				body = append(body, ',')
			}
			body = append(body, ev.JSON...)
			batchOf[ev.Seq] = int32(b)
			if ev.Marked {
				marked++
			}
		}
		bodies[b] = append(body, "]}"...)
	}
	res.Events, res.Profiles, res.Rate = int64(h.o.Events), gen.Customers(), h.o.Rate
	if marked == 0 {
		return fmt.Errorf("no event of %d is marked (mark share %g): nothing to measure", h.o.Events, h.o.Workload.MarkShare)
	}
	if time.Now().After(start) {
		start = time.Now().Add(100 * time.Millisecond)
	}

	// The activations consumer, from the start of the topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(h.topics.Activations),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("creating the activations consumer: %w", err)
	}
	defer cl.Close()
	u0, _, err := h.hubUsage()
	if err != nil {
		return err
	}

	// Senders: latencySenders workers take due batches off a queue as
	// long as the dispatcher puts them there on time, so a slow answer
	// delays only its own batch, and a backlog shows as latency.
	queue := make(chan int, nBatches)
	var httpErrors atomic.Int64
	var senders sync.WaitGroup
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: latencySenders, MaxConnsPerHost: latencySenders,
	}}
	url := "http://" + h.hubHTTP + "/v1/batch"
	for range latencySenders {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for b := range queue {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[b]))
				req.SetBasicAuth(writeKey, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					httpErrors.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					httpErrors.Add(1)
				}
			}
		}()
	}
	profiled := h.startCPUProfile(true)
	sendDone := make(chan time.Time, 1)
	go func() {
		for b := range nBatches {
			if d := time.Until(start.Add(time.Duration(b) * every)); d > 0 {
				time.Sleep(d)
			}
			queue <- b
		}
		close(queue)
		senders.Wait()
		sendDone <- time.Now()
	}()

	// Collect: each marked event's activation, once.
	lat := make([]float64, 0, marked)
	// windows are the samples per latencyWindow of the schedule.
	windows := make([][]float64, int(time.Duration(nBatches)*every/latencyWindow)+1)
	ingestLat := make([]float64, 0, marked)
	hubLat := make([]float64, 0, marked)
	got := make(map[int64]bool, marked)
	var activations int64
	deadline := time.Now().Add(time.Duration(h.o.Events/h.o.Rate)*time.Second + h.o.Timeout)
	var lastSend time.Time
	for len(got) < marked {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d marked events' activations arrived within %s (%d HTTP errors)",
				len(got), marked, h.o.Timeout, httpErrors.Load())
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		now := time.Now()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			a, err := sink.Decode(r.Value)
			if err != nil || a.Type != sink.EventTriggered || a.Name != TriggerName {
				return
			}
			activations++
			seq, ok := SeqOf(h.run, fastjson.GetString(a.Event, "messageId"))
			if !ok || seq < 0 || seq >= int64(len(batchOf)) || got[seq] {
				return
			}
			got[seq] = true
			due := start.Add(time.Duration(batchOf[seq]) * every)
			took := ms(now.Sub(due))
			lat = append(lat, took)
			w := int(due.Sub(start) / latencyWindow)
			windows[w] = append(windows[w], took)
			if at := profile.ParseMillis(fastjson.GetString(a.Event, "receivedAt")); at != 0 {
				received := time.UnixMilli(at)
				ingestLat = append(ingestLat, ms(received.Sub(due)))
				hubLat = append(hubLat, ms(now.Sub(received)))
			}
		})
		select {
		case lastSend = <-sendDone:
		default:
		}
		select {
		case <-h.hub.exited:
			return h.hub.failure("exited during the latency run")
		default:
		}
	}
	end := time.Now()
	if lastSend.IsZero() {
		lastSend = <-sendDone
	}
	u1, err := h.readHub(res)
	if err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return err
	}
	slices.Sort(lat)
	res.LatencyMS = percentiles(lat)
	slices.Sort(ingestLat)
	slices.Sort(hubLat)
	res.IngestLatencyMS, res.HubLatencyMS = percentiles(ingestLat), percentiles(hubLat)
	res.LatencyWindows, res.LatencyWindowSeconds = latencyWindows(windows, latencyWindow), latencyWindow.Seconds()
	res.Activations = activations
	res.HTTPErrors = httpErrors.Load()
	res.Seconds = end.Sub(start).Seconds()
	res.EventsPerSec = float64(res.Events) / max(lastSend.Sub(start).Seconds(), 0.001)
	res.CPUSeconds = (u1.CPU - u0.CPU).Seconds()
	res.MinorFaults = u1.MinorFaults - u0.MinorFaults
	setHeap(res, u0, u1, res.Events)
	res.EventsPerCoreSec = float64(res.Events) / max(res.CPUSeconds, 0.01)
	h.progress("latency at %d events/s: p50 %.1f ms, p99 %.1f ms over %d activations (%d HTTP errors)",
		h.o.Rate, res.LatencyMS.P50, res.LatencyMS.P99, len(lat), res.HTTPErrors)
	return nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyWindows sorts each window's samples and returns the percentiles
// of those that have any.
func latencyWindows(windows [][]float64, span time.Duration) []LatencyWindow {
	var out []LatencyWindow
	for i, w := range windows {
		if len(w) == 0 {
			continue
		}
		slices.Sort(w)
		out = append(out, LatencyWindow{Start: (time.Duration(i) * span).Seconds(), Percentiles: *percentiles(w)})
	}
	return out
}
