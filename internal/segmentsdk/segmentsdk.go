// Package segmentsdk installs the pinned copy of Segment's official Node
// SDK (@segment/analytics-node) that the end-to-end tests of two packages,
// connectors/segment and cmd/tessera, drive the ingest API with.
//
// Both packages install into the same directory, and `go test ./...` runs
// them as concurrent processes: `npm ci` deletes node_modules before it
// writes it, so one test could find the other's half-written tree (CI
// failed once on exactly that). Install therefore holds an exclusive file
// lock across the check and the install, and trusts a tree only once a
// marker written after a successful `npm ci` is there.
package segmentsdk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// marker is written into node_modules after `npm ci` has succeeded.
const marker = ".tessera-installed"

// sdkDir returns the absolute path of the directory that holds send.mjs,
// package.json and the lock file.
func sdkDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "connectors", "segment", "testdata", "sdk")
}

// Install makes sure that the SDK directory's node_modules holds a
// complete `npm ci` of its lock file, and returns the directory's absolute
// path. It is safe to call from concurrent processes.
func Install(ctx context.Context) (string, error) {
	dir := sdkDir()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening the install lock: %w", err)
	}
	defer lock.Close()
	// The lock is released when the file is closed, also if the process dies.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	done := filepath.Join(dir, "node_modules", marker)
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("installing the Segment Node SDK: %w (Debian: apt-get install npm)", err)
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		return "", fmt.Errorf("marking the install complete: %w", err)
	}
	return dir, nil
}
