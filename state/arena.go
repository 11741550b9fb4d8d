package state

// The read cache's memory.
//
// The read caches hold hundreds of thousands of small values per process:
// profile records, identifiers, and the tiles of every feature of every
// profile read lately. Each was a Go allocation of its own (a key string,
// a value, a window entry's tiles and their buffer, and the entry that
// held them), so the collector had over a million objects to mark at each
// cycle: 70 % of the live objects in a heap profile of `tessera bench` at
// 3,500 events/s, whose mark phases line up with the latency's peaks
// (bench/README.md, "4 December, late morning"). An arena keeps them in
// large pages of element types that hold no pointers, and the entries
// refer to their chunks by index: the collector marks a page without
// looking into it, whatever it holds.

// chunk is a run of elements of an arena: cap elements from off in page.
// The zero chunk is none.
type chunk struct {
	page, off, cap int32
}

// arena hands out chunks of T from pages in size classes of powers of two
// from 1<<minShift elements up to a page; a longer chunk gets a page of its
// own, given back to the Go heap when released. T must hold no pointers,
// or the pages would be scanned after all.
//
// A released chunk goes back to its class's free list: a page is never
// returned, so pages carved for one class stay with it. The read cache
// bounds the waste by copying its entries into a new arena when the pages
// outgrow what its entries hold by half its bound (readCache.repack).
//
// An arena is not safe for concurrent use; the read cache that owns it
// belongs to its task's goroutine.
type arena[T any] struct {
	// minShift and pageShift are log2 of the smallest class and of a
	// page, in elements.
	minShift, pageShift uint
	pages               [][]T
	// free lists the released chunks of each class.
	free [][]chunk
	// cur is, per class, the page being carved (-1: none) and the offset
	// of its next chunk.
	cur []carving
	// spare lists the indexes of released own pages, for reuse.
	spare []int32
	// held counts the elements of the pages allocated.
	held int64
}

type carving struct{ page, off int32 }

func newArena[T any](minShift, pageShift uint) *arena[T] {
	n := pageShift - minShift + 1
	a := &arena[T]{minShift: minShift, pageShift: pageShift, free: make([][]chunk, n), cur: make([]carving, n)}
	for i := range a.cur {
		a.cur[i].page = -1
	}
	return a
}

// class returns the size class of a chunk of n elements, 1 <= n <= a page.
func (a *arena[T]) class(n int) int {
	k := 0
	for 1<<(a.minShift+uint(k)) < n {
		k++
	}
	return k
}

// alloc returns a chunk of at least n elements, none for n == 0. Its
// contents are whatever the chunk held last.
func (a *arena[T]) alloc(n int) chunk {
	if n <= 0 {
		return chunk{}
	}
	if n > 1<<a.pageShift {
		return chunk{page: a.newPage(n), cap: int32(n)}
	}
	k := a.class(n)
	if l := len(a.free[k]); l > 0 {
		c := a.free[k][l-1]
		a.free[k] = a.free[k][:l-1]
		return c
	}
	size := int32(1) << (a.minShift + uint(k))
	cv := &a.cur[k]
	if cv.page < 0 || cv.off+size > 1<<a.pageShift {
		cv.page, cv.off = a.newPage(1<<a.pageShift), 0
	}
	c := chunk{page: cv.page, off: cv.off, cap: size}
	cv.off += size
	return c
}

func (a *arena[T]) newPage(n int) int32 {
	a.held += int64(n)
	p := make([]T, n)
	if l := len(a.spare); l > 0 {
		i := a.spare[l-1]
		a.spare = a.spare[:l-1]
		a.pages[i] = p
		return i
	}
	a.pages = append(a.pages, p)
	return int32(len(a.pages) - 1)
}

// release gives c back. REQUIRES: nothing reads c any longer.
func (a *arena[T]) release(c chunk) {
	switch {
	case c.cap == 0:
	case c.cap > 1<<a.pageShift:
		a.pages[c.page] = nil
		a.held -= int64(c.cap)
		a.spare = append(a.spare, c.page)
	default:
		k := a.class(int(c.cap))
		a.free[k] = append(a.free[k], c)
	}
}

// slice returns c's elements, nil for none; the capacity ends with c.
func (a *arena[T]) slice(c chunk) []T {
	if c.cap == 0 {
		return nil
	}
	return a.pages[c.page][c.off : c.off+c.cap : c.off+c.cap]
}
