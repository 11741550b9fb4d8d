package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures a DB. The zero value is valid: on-disk files, a 64 MiB
// block cache, a 16 MiB memtable, a 4 MiB read cache and a 30 s bound on
// Close's flush.
type Options struct {
	// FS overrides the file system, the default being the operating
	// system's. The test driver uses vfs.NewMem().
	FS vfs.FS
	// CacheSize sets the block cache in bytes, overriding the default 64 MiB.
	// It stays well above the memtable size because memtables reserve their
	// size from the cache.
	CacheSize int64
	// MemTableSize sets the memtable size in bytes, overriding the default
	// 16 MiB.
	MemTableSize uint64
	// ReadCacheSize bounds the read cache in bytes, overriding the default
	// 16 MiB; a negative value disables it. The read cache keeps the values
	// and window tiles that the task read recently (cache.go), so it is
	// memory per task on top of Pebble's: 24 tasks on an instance hold up
	// to 384 MiB with the default. When full, it evicts with a CLOCK; an
	// entry larger than an eighth of the bound is not kept.
	ReadCacheSize int64
	// CloseFlushTimeout bounds how long Close waits for the memtables to
	// reach disk, overriding the default 30 s. A flush that has not ended
	// by then (Pebble retries a failing one until the DB closes) is given
	// up: the DB closes without it and loses the writes since the last
	// flush, which the next restore reads again from the changelog.
	CloseFlushTimeout time.Duration
}

func (o *Options) ensureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.ReadCacheSize == 0 {
		o.ReadCacheSize = defaultReadCacheSize
	}
	if o.CloseFlushTimeout <= 0 {
		o.CloseFlushTimeout = 30 * time.Second
	}
}

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("state: closed")

// ChangeLogger receives every write to a store so that the engine can send
// it to the store's changelog topic. A nil value is a deletion (a tombstone).
// The key and value are only valid during the call.
type ChangeLogger interface {
	LogChange(store string, key, value []byte)
}

// DB is the Pebble instance of one task, holding all of the task's stores and
// their checkpoints.
type DB struct {
	pdb          *pebble.DB
	dir          string
	memTableSize uint64
	flushTimeout time.Duration

	// pending holds the writes since the last Commit or Discard. It is an
	// indexed batch so that reads see the task's own uncommitted writes.
	pending *pebble.Batch
	logger  ChangeLogger
	stores  map[string]Store
	// cache serves the stores' reads of recently read keys (cache.go); nil
	// when disabled. Like pending, it is the task goroutine's.
	cache *readCache
	// wbuf holds the Pebble key of the entry being written back, and
	// wbErr the first error of writing one back, which the next Flush
	// returns: eviction, which writes entries back, cannot return one.
	wbuf  []byte
	wbErr error

	// readers is held shared by readers on other goroutines (Acquire)
	// and exclusively by Close, so a scan never meets a closed Pebble.
	readers sync.RWMutex
	closed  bool // guarded by readers
}

// Store is what every kind of store has in common.
type Store interface {
	// Name returns the store's name, unique within a topology.
	Name() string
}

const (
	storeTag      = 's'
	checkpointTag = 'c'
)

// l0CompactionFiles and l0StopWritesFiles are the L0 read-amplification
// levels at which Pebble compacts L0 and at which it stops writes until
// compactions catch up. In `tessera bench` over 500,000 events (69,000
// profiles), 12 instead of Pebble's 4 processed 4–20 % more events per
// CPU second in each of five alternated pairs of runs, and left 9 % more
// bytes on disk; restore speed did not change. Writes stop only far above
// the threshold, when compactions have fallen far behind.
const (
	l0CompactionFiles = 12
	l0StopWritesFiles = 40
)

// Open opens (creating if needed) the DB in dir.
//
// The DB has no write-ahead log: writes live in the memtables until a
// flush writes them to an SSTable, and Close flushes. A crash loses the
// writes since the last flush, and with them their checkpoints, so the
// next restore reads them again from the changelog (as Kafka Streams does
// with RocksDB's WAL disabled). A WAL left by a version that wrote one is
// still replayed when the DB opens.
//
// INVARIANT: after a crash the DB holds a prefix of its committed batches,
// and each store's checkpoint is the one committed with the last batch of
// that prefix, so it never claims data the DB lacks. This holds because
// each commit (Commit, and the restore's) writes its data and checkpoints
// in one batch; a batch is applied to one memtable (or, when large, becomes
// a memtable of its own) in commit order; and memtables are flushed
// oldest first, each flush recorded in the MANIFEST, which Pebble syncs,
// only after its SSTable is synced. The changelog, written before the
// commit, holds everything the DB lost.
func Open(dir string, opts Options) (*DB, error) {
	opts.ensureDefaults()
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // Pebble takes its own reference.
	po := &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{},
		// The changelog is the log: a WAL would write every value a
		// second time, synchronously on the committing goroutine.
		DisableWAL: true,
		// A task's DB is small and rewrites the same keys all the time
		// (a profile's record, its current tiles), so each compaction
		// of L0 into the base level rewrites most of that level. Letting
		// l0CompactionFiles files gather before one compaction, rather
		// than Pebble's 4, means about a third as many of these
		// rewrites, each dropping more overwritten values. The cost is
		// reads that miss the caches looking through more L0 files, and
		// more disk until the next compaction (see l0CompactionFiles).
		L0CompactionThreshold: l0CompactionFiles,
		L0StopWritesThreshold: l0StopWritesFiles,
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("opening pebble in %s: %w", dir, err)
	}
	db := &DB{pdb: pdb, dir: dir, memTableSize: opts.MemTableSize, flushTimeout: opts.CloseFlushTimeout, stores: make(map[string]Store),
		cache: newReadCache(opts.ReadCacheSize)}
	db.pending = pdb.NewIndexedBatch()
	if db.cache != nil {
		db.cache.writeBack = db.writeBack
	}
	return db, nil
}

// Dir returns the directory the DB lives in.
func (db *DB) Dir() string { return db.dir }

// SetChangeLogger sets where writes are logged. Without one (nil), writes
// are local only, as during a restore.
func (db *DB) SetChangeLogger(l ChangeLogger) { db.logger = l }

// KeyValue returns the key-value store name, creating its handle on first use.
func (db *DB) KeyValue(name string) *KeyValue {
	s, ok := db.stores[name].(*KeyValue)
	if ok {
		return s
	}
	s = &KeyValue{db: db, name: name, prefix: storePrefix(name)}
	db.replaceStore(name, s)
	return s
}

// Window returns the windowed store name, creating its handle on first use.
func (db *DB) Window(name string) *Window {
	s, ok := db.stores[name].(*Window)
	if ok {
		return s
	}
	s = &Window{kv: KeyValue{db: db, name: name, prefix: storePrefix(name)}}
	db.replaceStore(name, s)
	return s
}

// replaceStore makes s the handle of store name. A store read both as a
// KeyValue and as a Window (a test reading the tiles raw) is not cached
// from then on: a write through one handle would not update the other
// kind's entries.
func (db *DB) replaceStore(name string, s Store) {
	if old, ok := db.stores[name]; ok {
		handleOf(old).stopCaching()
		handleOf(old).mixed = true
		handleOf(s).uncached, handleOf(s).mixed = true, true
		if db.cache != nil {
			db.cache.filters.forget(name)
		}
	}
	db.stores[name] = s
}

// handleOf returns the key-value handle under store s.
func handleOf(s Store) *KeyValue {
	if w, ok := s.(*Window); ok {
		return &w.kv
	}
	return s.(*KeyValue)
}

func storePrefix(name string) []byte {
	p := make([]byte, 0, len(name)+3)
	p = append(p, storeTag, '/')
	p = append(p, name...)
	return append(p, 0)
}

func checkpointKey(store string) []byte {
	return append([]byte{checkpointTag, '/'}, store...)
}

// Checkpoint returns the next changelog offset to restore from for store,
// and false when the store has no checkpoint (it was never committed here).
func (db *DB) Checkpoint(store string) (int64, bool, error) {
	if db.pdb == nil {
		return 0, false, ErrClosed
	}
	v, closer, err := db.pdb.Get(checkpointKey(store))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading checkpoint of %s: %w", store, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("reading checkpoint of %s: %d bytes, want 8", store, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// Pending returns the number of writes waiting for Commit.
func (db *DB) Pending() int { return int(db.pending.Count()) }

// Commit applies the pending writes together with the checkpoints: for each
// store in offsets, the next changelog offset that the store now reflects.
// Both land in one atomic Pebble batch.
func (db *DB) Commit(offsets map[string]int64) error {
	if err := db.Flush(); err != nil {
		return err
	}
	if err := db.writeCheckpoints(db.pending, offsets); err != nil {
		return err
	}
	if db.pending.Empty() {
		db.startFilters()
		return nil
	}
	// NoSync, as there is no WAL to sync (see Open): a crash loses the
	// writes since the last flush, which restore brings back from the
	// changelog.
	if err := db.pending.Commit(pebble.NoSync); err != nil {
		// The batch may or may not have been applied: what the cache
		// holds is no longer known to match.
		db.cache.clear()
		return fmt.Errorf("committing batch: %w", err)
	}
	db.resetPending()
	db.startFilters()
	return nil
}

// Flush writes the writes that the read cache holds back (cache.go) to
// the pending batch, logging each. The engine calls it after each poll's
// records and at the end of every cycle, before it ends the cycle's
// transaction or flushes its producer, and so before it reads the
// changelogs' offsets for the checkpoints: a change must be logged in the
// cycle that made it. Commit flushes too, for a DB without a changelog.
func (db *DB) Flush() error {
	if db.pdb == nil {
		return ErrClosed
	}
	if db.cache != nil {
		db.cache.flush(nil, nil)
	}
	err := db.wbErr
	db.wbErr = nil
	return err
}

// HoldsWrites reports whether the read cache may hold writes back that
// Flush would write.
func (db *DB) HoldsWrites() bool { return db.cache != nil && db.cache.held > 0 }

// writeBack writes dirty entry e (its value, or its dirty tiles) to the
// pending batch and the changelog; the cache has marked it clean.
func (db *DB) writeBack(e *cacheEntry) {
	c := db.cache
	db.wbuf = append(db.wbuf[:0], c.keyOf(e)...)
	if !e.window {
		db.writeBackValue(e, db.wbuf, c.valueOf(e))
		return
	}
	ts, buf := c.tilesOf(e), c.bufOf(e)
	for i := range ts {
		t := &ts[i]
		if t.dirty {
			t.dirty = false
			db.wbuf = binary.BigEndian.AppendUint64(db.wbuf[:e.klen], uint64(t.start))
			db.writeBackValue(e, db.wbuf, tileValue(buf, *t))
		}
	}
}

// writeBackValue writes value (nil: a deletion) of the Pebble key k of
// entry e's store to the pending batch and the changelog.
func (db *DB) writeBackValue(e *cacheEntry, k, value []byte) {
	db.cache.stats.WrittenBack++
	var err error
	if value == nil {
		err = db.pending.Delete(k, nil)
	} else {
		err = db.pending.Set(k, value, nil)
	}
	if err != nil {
		if db.wbErr == nil {
			db.wbErr = fmt.Errorf("writing back %q of %s: %w", k[e.plen:], db.cache.stores[e.store], err)
		}
		return
	}
	if db.logger != nil {
		db.logger.LogChange(db.cache.stores[e.store], k[e.plen:], value)
	}
}

// startFilters starts the absent-key filter builds that are due: right
// after a commit, when the pending batch holds nothing the committed data
// lacks (absent.go).
func (db *DB) startFilters() {
	if db.cache != nil {
		db.cache.filters.start(db.pdb)
	}
}

// pendingRetain bounds the buffer that the pending batch keeps from one
// commit cycle to the next.
//
// Pebble keeps a reset batch's buffer only up to 1 MiB, and a task's cycle
// under load writes more: 1.1–1.5 MB on average and up to 4.6 MB in `tessera
// bench --mode throughput` (100,000 events, at-least-once). Each cycle then
// grew a buffer again by doubling from nothing, which was 23 % of the bytes
// the hub allocated. Up to this bound the buffer is kept instead; a batch
// this large is past Pebble's large-batch threshold with the default 16 MiB
// memtables anyway, and Pebble hands its buffer to the memtable queue.
const pendingRetain = 8 << 20

// batchHeaderLen is the size of a Pebble batch's header (sequence number
// and count), which an empty batch's representation consists of.
const batchHeaderLen = 12

// resetPending empties the pending batch, keeping its buffer for the next
// cycle when it is not too large.
func (db *DB) resetPending() {
	// Read after a commit: Pebble sets the batch's buffer to nil when it
	// handed it to the memtable queue, and Repr then starts a new one,
	// so buf is never memory that Pebble still holds.
	buf := db.pending.Repr()
	db.pending.Reset()
	if cap(buf) < batchHeaderLen || cap(buf) > pendingRetain {
		return
	}
	buf = buf[:batchHeaderLen]
	clear(buf)
	// INVARIANT: the batch is empty and so is its index (Reset), and an
	// all-zero header says so: zero count, no sequence number. Reset
	// initialised the index on the batch's buffer field, which SetRepr
	// sets, so the index and the batch share buf from here on.
	if err := db.pending.SetRepr(buf); err != nil {
		// Not reachable with a header-sized buffer; the batch keeps
		// the buffer Reset left it.
		return
	}
}

// writeCheckpoints adds the checkpoints (store → next changelog offset) to b.
func (db *DB) writeCheckpoints(b *pebble.Batch, offsets map[string]int64) error {
	var buf [8]byte
	for store, off := range offsets {
		binary.BigEndian.PutUint64(buf[:], uint64(off))
		if err := b.Set(checkpointKey(store), buf[:], nil); err != nil {
			return fmt.Errorf("writing checkpoint of %s: %w", store, err)
		}
	}
	return nil
}

// Discard drops the pending writes, as when the transaction that carried
// their changelog records aborted, and with them the read cache, which
// holds them too. Aborts are rare, so the cache is cleared whole rather
// than undone key by key.
func (db *DB) Discard() {
	db.resetPending()
	db.cache.clear()
}

// CacheStats returns what the read cache did since Open; zero when it is
// disabled. Like the stores, it is for the task's goroutine.
func (db *DB) CacheStats() CacheStats {
	c := db.cache
	if c == nil {
		return CacheStats{}
	}
	st := c.stats
	st.Filtered = c.filters.absents
	st.Bytes = c.size
	st.Entries = c.entries
	return st
}

// Size estimates the DB's disk usage in bytes.
func (db *DB) Size() uint64 {
	if db.pdb == nil {
		return 0
	}
	m := db.pdb.Metrics()
	return m.DiskSpaceUsage()
}

// Acquire keeps the DB open until release is called, for a reader on
// another goroutine than the task's (an interactive query scanning the
// committed data without the engine's lock). It returns ok false when the
// DB is closed already. Close waits for every release.
func (db *DB) Acquire() (release func(), ok bool) {
	db.readers.RLock()
	if db.closed || db.pdb == nil {
		db.readers.RUnlock()
		return nil, false
	}
	return db.readers.RUnlock, true
}

// Close discards pending writes, flushes the committed ones to disk and
// closes the DB, after the readers that Acquired it have released it. It is
// idempotent.
//
// Without a WAL (see Open), a DB closed without a flush would lose every
// write since the last one and restore them all again on the next start.
// When the flush fails or outlasts Options.CloseFlushTimeout, Close still
// closes the DB and returns the error: the DB on disk is then what the
// last successful flush left, a consistent prefix that the next restore
// completes from the changelog.
func (db *DB) Close() error {
	db.readers.Lock()
	defer db.readers.Unlock()
	db.closed = true
	if db.pdb == nil {
		return nil
	}
	db.pending.Close()
	db.cache.clear()
	if db.cache != nil {
		// Each build holds an iterator, which must close first.
		db.cache.filters.builds.Wait()
	}
	ferr := db.flush()
	err := db.pdb.Close()
	db.pdb = nil
	if err != nil {
		err = fmt.Errorf("closing pebble in %s: %w", db.dir, err)
	}
	return errors.Join(ferr, err)
}

// flush writes the memtables to disk, waiting at most db.flushTimeout:
// Pebble's Flush does not return when a flush fails, it retries until the
// DB closes.
func (db *DB) flush() error {
	done, err := db.pdb.AsyncFlush()
	if err != nil {
		return fmt.Errorf("flushing pebble in %s: %w", db.dir, err)
	}
	t := time.NewTimer(db.flushTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("flushing pebble in %s: not done after %s", db.dir, db.flushTimeout)
	}
}

// getFrom reads key from r, copying the value; nil when absent.
func getFrom(r reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	return out, closer.Close()
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*DB)(nil)

// CommittedWindow returns a read-only view of the windowed store name that
// sees only committed data, so it may be read from another goroutine than
// the task's while the DB is open (interactive queries).
func (db *DB) CommittedWindow(name string) *Window {
	return &Window{kv: KeyValue{db: db, name: name, prefix: storePrefix(name), committed: true}}
}

// GetCommitted reads key of store from what has been committed, skipping
// the pending writes of the open cycle: it is safe to call from another
// goroutine than the task's while the DB is open. It returns nil when the
// key is absent.
func (db *DB) GetCommitted(store string, key []byte) ([]byte, error) {
	if db.pdb == nil {
		return nil, ErrClosed
	}
	k := append(storePrefix(store), key...)
	v, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q from %s: %w", key, store, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// RangeCommitted calls fn for each committed entry of store in key order,
// skipping the pending writes of the open cycle; like GetCommitted it may
// run on another goroutine than the task's while the DB is open.
func (db *DB) RangeCommitted(store string, fn func(key, value []byte) error) error {
	if db.pdb == nil {
		return ErrClosed
	}
	prefix := storePrefix(store)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("iterating %s: %w", store, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key()[len(prefix):], v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
