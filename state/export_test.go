package state

// AwaitFilters waits for db's absent-key filter builds and puts the
// filters they made in use, so that the test's next reads go through them.
func AwaitFilters(db *DB) {
	if db.cache == nil {
		return
	}
	db.cache.filters.builds.Wait()
	for _, sf := range db.cache.filters.m {
		sf.filter()
	}
}

// SetFilterMinCapacity makes absent-key filters start at n keys and be
// rebuilt after n more, so that a test with few keys sees chains and
// rebuilds; the result restores the default. Tests that call it must not
// run in parallel.
func SetFilterMinCapacity(n uint) (restore func()) {
	old := absentMinCapacity
	absentMinCapacity = n
	return func() { absentMinCapacity = old }
}

// SetRepackSlack sets how far db's read-cache arenas may outgrow what
// their entries account for before they are repacked: 0 repacks at nearly
// every insertion and resize.
func SetRepackSlack(db *DB, n int64) { db.cache.repackSlack = n }
