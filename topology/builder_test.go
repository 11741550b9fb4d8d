package topology_test

import (
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/topology"
)

func nop() topology.Processor {
	return topology.ProcessorFunc(func(*topology.Context, topology.Record) error { return nil })
}

func TestBuildRefusesBrokenTopologies(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *topology.Builder)
		want  []string
	}{
		{
			name: "unknown store user",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("p", nop, "in").AddStore("s", topology.KeyValueStore, "q")
			},
			want: []string{`store "s": processor "q" does not exist`},
		},
		{
			name: "store used by a source",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("p", nop, "in").AddStore("s", topology.KeyValueStore, "in")
			},
			want: []string{`store "s": "in" is a source, only processors use stores`},
		},
		{
			name: "duplicate node name",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("in", nop, "in")
			},
			want: []string{`processor "in": name already used by a source`},
		},
		{
			name: "duplicate store",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("p", nop, "in").
					AddStore("s", topology.KeyValueStore, "p").AddStore("s", topology.WindowStore, "p")
			},
			want: []string{`store "s": declared twice`},
		},
		{
			name: "unknown parent",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("p", nop, "inn")
			},
			want: []string{`processor "p": parent "inn" does not exist`},
		},
		{
			name: "sink as parent",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddSink("out", "o", "in").AddProcessor("p", nop, "out")
			},
			want: []string{`processor "p": parent "out" is a sink, which forwards nothing`},
		},
		{
			name: "cycle",
			build: func(b *topology.Builder) {
				b.AddSource("in", "t", 0).AddProcessor("a", nop, "in", "b").AddProcessor("b", nop, "a")
			},
			want: []string{"is part of a cycle"},
		},
		{
			name: "no source",
			build: func(b *topology.Builder) {
				b.AddProcessor("a", nop)
			},
			want: []string{"topology has no source", `processor "a": no parents`},
		},
		{
			name: "topic read twice",
			build: func(b *topology.Builder) {
				b.AddSource("a", "t", 0).AddSource("b", "t", 0).AddProcessor("p", nop, "a", "b")
			},
			want: []string{`source "b": topic "t" is already read by source "a"`},
		},
		{
			name: "stores fed by sources that are not co-partitioned",
			build: func(b *topology.Builder) {
				b.AddSource("orders", "orders", 12).AddSource("users", "users", 6).
					AddProcessor("p", nop, "orders").AddProcessor("q", nop, "users").
					AddStore("s", topology.KeyValueStore, "p", "q")
			},
			want: []string{`source "users": topic "users" has 6 partitions but source "orders" of the same sub-topology has 12; sources that feed the same stores must be co-partitioned`},
		},
		{
			name: "empty names and topics",
			build: func(b *topology.Builder) {
				b.AddSource("", "t", 0).AddSource("in", "", 0).AddSink("out", "", "in")
			},
			want: []string{"source with an empty name", `source "in": empty topic`, `sink "out": empty topic`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := topology.NewBuilder()
			tt.build(b)
			_, err := b.Build()
			if err == nil {
				t.Fatal("Build accepted a broken topology")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildGroupsCoPartitionedSources(t *testing.T) {
	topo, err := topology.NewBuilder().
		AddSource("orders", "orders", 12).AddSource("users", "users", 12).AddSource("other", "other", 3).
		AddProcessor("p", nop, "orders").AddProcessor("q", nop, "users").AddProcessor("r", nop, "other").
		AddStore("s", topology.KeyValueStore, "p", "q").
		AddSink("out", "out", "r").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	want := "sub-topology 0 (sources [orders users], stores [s])\n" +
		"  source \"orders\" topic \"orders\" -> [p]\n" +
		"  source \"users\" topic \"users\" -> [q]\n" +
		"  processor \"p\" stores [s]\n" +
		"  processor \"q\" stores [s]\n" +
		"sub-topology 1 (sources [other], stores [])\n" +
		"  source \"other\" topic \"other\" -> [r]\n" +
		"  processor \"r\" -> [out]\n" +
		"  sink \"out\" topic \"out\"\n"
	if got := topo.Describe(); got != want {
		t.Errorf("Describe:\n%s\nwant:\n%s", got, want)
	}
}
