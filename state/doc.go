// Package state keeps a task's local state: Pebble-backed key-value and
// windowed stores whose writes are also sent to a compacted changelog
// topic, a checkpoint of the changelog offsets that the local data reflects,
// and the restore that rebuilds a store from its changelog.
//
// # Layout
//
// A task owns one Pebble instance (a DB) under data/<app>/<task>/. Every
// store of the task lives in it under its own key prefix, and the checkpoint
// of every store lives in it too, so that a store's data and the changelog
// offset it reflects are always written in one atomic Pebble batch.
//
//	s/<store>\x00<key>   a store's entry
//	c/<store>            the store's checkpoint: the next changelog offset to restore
//
// # Write path
//
// Writes go to a pending indexed batch: reads see them at once, Pebble sees
// them only when Commit applies the batch together with the new checkpoint.
// A write to a key the read cache holds waits in the cache instead, and
// reaches the batch and the changelog once, at the next Flush (cache.go):
// the engine flushes after each poll's records and before it ends a cycle.
// The engine calls Commit after the Kafka transaction that carried the
// changelog records has committed, and Discard when it aborted, so state
// written by an aborted transaction never survives (KAFKA-20685). A crash
// between the transaction's commit and the batch's apply leaves the local
// store behind its changelog; Restore closes that gap from the checkpoint.
//
// # Concurrency
//
// A DB and its stores belong to one task and are used by one goroutine at a
// time (the engine's processing loop, or a restore before processing
// starts).
package state
