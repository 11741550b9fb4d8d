//go:build !unix

package broker

import (
	"fmt"
	"os"
)

// lockDir creates dir if needed. On this platform the directory is not
// locked: nothing stops two brokers from sharing it, so don't.
func lockDir(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	return func() error { return nil }, nil
}
