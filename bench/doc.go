// Package bench is tessera's benchmark harness and synthetic workload
// generator, behind `tessera bench`.
//
// A run measures the processing process on its own: the harness starts
// the broker (`tessera broker`, unless brokers are given) and the hub
// (`tessera run --brokers …`) as child processes of the tessera binary,
// and reads the hub's CPU time (utime+stime, /proc/<pid>/stat) and peak
// resident set (VmHWM, /proc/<pid>/status). The hub runs the full
// topology of DESIGN.md §9 from a generated configuration (hubConfig): a
// fresh application id per run, 8 windowed features, 5 audiences, an
// event trigger, a discard sink and a webhook to a receiver in the
// harness.
//
// Modes:
//
//   - throughput: the events topic is filled first (normalised exactly as
//     the HTTP ingest writes them), then the hub processes them as fast as
//     it can; the run ends when the consumer group has consumed every
//     sub-topology's source topics to their end. A bare franz-go
//     consume→produce loop over the same events, in its own child process
//     (`tessera bench-baseline`), gives the baseline per-core rate.
//   - latency: an open-loop generator sends events at a fixed rate through
//     the HTTP batch endpoint; arrival times are scheduled in advance and
//     latency runs from the scheduled send, so queueing delay counts. A
//     marked share of events fires the trigger; the latency of each is the
//     time until its activation is readable on <app>.activations.
//   - restore: a throughput run, then the hub is stopped, its state
//     directory wiped, and it is started again; the rate is the changelog
//     records restored (tessera_restore_records_total) over the time from
//     the first task restoring to readiness.
//
// The generator (Generator) draws customers from a Zipf distribution,
// starts a share of them anonymous so that identifying later merges two
// profiles, mixes track, identify and page calls, pads events to about
// 1 KB, and back-dates a share of them (late events).
package bench
