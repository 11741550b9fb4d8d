package sink_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/connectors/sink"
)

// deadLetter is a record of the dead-letter topic for destination dest.
func deadLetter(t *testing.T, dest string, a ...string) *kgo.Record {
	t.Helper()
	v, err := activation(a[0], len(a[1])).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: sink.DLQTopic(app), Key: []byte(a[0]), Value: v, Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte(a[1])},
		{Key: sink.HeaderDestination, Value: []byte(dest)},
		{Key: sink.HeaderStage, Value: []byte("deliver")},
		{Key: sink.HeaderAttempts, Value: []byte("8")},
		{Key: sink.HeaderError, Value: []byte("HTTP 500")},
		{Key: sink.HeaderTopic, Value: []byte(sink.ActivationsTopic(app))},
		{Key: sink.HeaderPartition, Value: []byte("0")},
		{Key: sink.HeaderOffset, Value: []byte("41")},
	}}
}

// TestReplay: a replay sends only its destination's dead letters, to its
// retry topic, without the dead-letter headers; a second replay sends only
// what is new; ReplayAll sends all again.
func TestReplay(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	opts := []sink.Opt{sink.Brokers(e.brokers...)}

	if n, err := sink.ReplayDLQ(ctx, app, "hook", opts...); n != 0 || err != nil {
		t.Fatalf("ReplayDLQ without a dead-letter topic = %d, %v; want 0, nil", n, err)
	}
	if dls, err := sink.ListDLQ(ctx, app, "", opts...); len(dls) != 0 || err != nil {
		t.Fatalf("ListDLQ without a dead-letter topic = %v, %v", dls, err)
	}
	if _, err := e.adm.CreateTopic(ctx, 2, 1, nil, sink.DLQTopic(app)); err != nil {
		t.Fatal(err)
	}
	produce := func(recs ...*kgo.Record) {
		if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(deadLetter(t, "hook", "p1", "t1"), deadLetter(t, "crm", "p2", "t22"), deadLetter(t, "hook", "p3", "t333"))

	n, err := sink.ReplayDLQ(ctx, app, "hook", opts...)
	if n != 2 || err != nil {
		t.Fatalf("ReplayDLQ = %d, %v; want 2, nil", n, err)
	}
	recs := readAll(t, e, sink.RetryTopic(app, "hook"), 2)
	var got []string
	for _, r := range recs {
		a, err := sink.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		got = append(got, fmt.Sprintf("%s %s [%s]", r.Key, a.ID, strings.Join(hs, " ")))
	}
	want := "p1 p1-2 [traceparent=t1]\np3 p3-4 [traceparent=t333]"
	if s := strings.Join(slices.Sorted(slices.Values(got)), "\n"); s != want {
		t.Errorf("retry topic:\n%s\nwant:\n%s", s, want)
	}

	if n, err := sink.ReplayDLQ(ctx, app, "hook", opts...); n != 0 || err != nil {
		t.Errorf("second ReplayDLQ = %d, %v; want 0, nil", n, err)
	}
	produce(deadLetter(t, "hook", "p4", "t4444"))
	if n, err := sink.ReplayDLQ(ctx, app, "hook", opts...); n != 1 || err != nil {
		t.Errorf("ReplayDLQ after one more = %d, %v; want 1, nil", n, err)
	}
	if n, err := sink.ReplayDLQ(ctx, app, "hook", append(opts, sink.ReplayAll())...); n != 3 || err != nil {
		t.Errorf("ReplayDLQ with ReplayAll = %d, %v; want 3, nil", n, err)
	}

	dls, err := sink.ListDLQ(ctx, app, "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, d := range dls {
		list = append(list, fmt.Sprintf("%s %s %s/%d %s %s@%d replayed=%v", d.Destination, d.Activation.ID, d.Stage, d.Attempts, d.Error, d.Topic, d.SourceOffset, d.Replayed))
	}
	wantList := []string{
		"crm p2-3 deliver/8 HTTP 500 tessera.activations@41 replayed=false",
		"hook p1-2 deliver/8 HTTP 500 tessera.activations@41 replayed=true",
		"hook p3-4 deliver/8 HTTP 500 tessera.activations@41 replayed=true",
		"hook p4-5 deliver/8 HTTP 500 tessera.activations@41 replayed=true",
	}
	if s, w := strings.Join(slices.Sorted(slices.Values(list)), "\n"), strings.Join(wantList, "\n"); s != w {
		t.Errorf("ListDLQ:\n%s\nwant:\n%s", s, w)
	}
	crm, err := sink.ListDLQ(ctx, app, "crm", opts...)
	if err != nil || len(crm) != 1 || crm[0].Activation.ID != "p2-3" {
		t.Errorf("ListDLQ(crm) = %+v, %v", crm, err)
	}
	if _, err := sink.ReplayDLQ(ctx, app, "bad name", opts...); err == nil {
		t.Error("ReplayDLQ of an impossible name succeeded")
	}
}
