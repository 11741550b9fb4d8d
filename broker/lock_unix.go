//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is the file in the data directory that a running broker holds an
// exclusive lock on. kfake ignores files it does not know.
const lockFile = "LOCK"

// lockDir creates dir if needed and takes an exclusive, non-blocking lock on
// it, so that a second broker (or a `tessera run` and a `tessera broker`) can
// never write the same log. The lock dies with the process, so a crash never
// leaves a stale one behind. It returns the function that releases it.
func lockDir(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another broker", dir)
		}
		return nil, fmt.Errorf("locking data directory %s: %w", dir, err)
	}
	return f.Close, nil // closing the file releases the lock
}
