package state

// CommittedKeyValue returns a read-only view of the key-value store name
// that sees only committed data, so it may be read from another goroutine
// than the task's while the DB is open (interactive queries), like
// CommittedWindow.
func (db *DB) CommittedKeyValue(name string) *KeyValue {
	return &KeyValue{db: db, name: name, prefix: storePrefix(name), committed: true}
}
