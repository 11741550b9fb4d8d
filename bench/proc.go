package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a tessera process the harness started: the broker, the
// processing process or the baseline loop. Its stdout is scanned for the
// "… listening on ADDR" lines; its stderr (the log) goes to a file in the
// work directory, whose tail an error quotes.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File

	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced when a line arrives
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// startChild runs exe with args, its log in dir/<name>.log.
func startChild(exe, dir, name string, env []string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the log of %s: %w", name, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lf
	// If the harness dies without stopping its children (killed, a
	// panic), they get SIGTERM rather than running on as orphans.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, logFile: lf, notify: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s (%s %s): %w", name, exe, strings.Join(args, " "), err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
		}
		c.err = cmd.Wait()
		lf.Close()
		close(c.exited)
	}()
	return c, nil
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// line waits for a stdout line starting with prefix and returns the rest
// of it, trimmed.
func (c *child) line(ctx context.Context, prefix string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := 0
	for {
		c.mu.Lock()
		for ; seen < len(c.lines); seen++ {
			if rest, ok := strings.CutPrefix(c.lines[seen], prefix); ok {
				c.mu.Unlock()
				return strings.TrimSpace(rest), nil
			}
		}
		wake := c.notify
		c.mu.Unlock()
		select {
		case <-wake:
		case <-c.exited:
			return "", c.failure(fmt.Sprintf("exited before printing %q", prefix))
		case <-ctx.Done():
			return "", c.failure(fmt.Sprintf("did not print %q within %s", prefix, timeout))
		}
	}
}

// output returns everything the child printed to stdout.
func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// failure is an error about the child that quotes the end of its log.
func (c *child) failure(what string) error {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s %s; the end of its log (%s):\n%s", c.name, what, c.logPath, bytes.TrimSpace(b))
}

// wait waits for the child to exit by itself.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.exited:
		if c.err != nil {
			return c.failure(fmt.Sprintf("failed: %v", c.err))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop sends SIGTERM and waits up to grace for the exit, then kills it.
// It is idempotent.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		var ee *exec.ExitError
		if c.err != nil && !errors.As(c.err, &ee) {
			return c.err
		}
		return nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", c.name, grace)
	}
}

// cpuTime returns the child's rusage CPU time once it has exited.
func (c *child) cpuTime() time.Duration {
	st := c.cmd.ProcessState
	if st == nil {
		return 0
	}
	return st.UserTime() + st.SystemTime()
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// usage is what a running process has used so far.
type usage struct {
	// CPU is user plus system time, all threads.
	CPU time.Duration
	// MinorFaults counts the page faults served without I/O: each is a
	// page the process touched for the first time (or again after
	// giving it back), a few microseconds of kernel time.
	MinorFaults int64
	// AllocBytes, GCCycles and GCCPU are the Go heap's counters: the
	// bytes it allocated, the collections it ran and the CPU seconds
	// they took (heapCounts). processUsage leaves them zero;
	// harness.hubUsage reads them from the hub.
	AllocBytes, GCCycles, GCCPU float64
}

// processUsage returns what a running process has used, from
// /proc/<pid>/stat.
func processUsage(pid int) (usage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, fmt.Errorf("reading the usage of process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields are counted after its closing one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return usage{}, fmt.Errorf("reading the usage of process %d: no ')' in /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); minflt is field 10, utime and stime are
	// fields 14 and 15.
	if len(f) < 13 {
		return usage{}, fmt.Errorf("reading the usage of process %d: /proc/%d/stat has %d fields", pid, pid, len(f)+2)
	}
	minflt, err0 := strconv.ParseInt(f[7], 10, 64)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return usage{}, fmt.Errorf("reading the usage of process %d: %w", pid, err)
	}
	return usage{CPU: time.Duration(ut+st) * time.Second / clockTicks, MinorFaults: minflt}, nil
}

// peakRSS returns a running process's peak resident set size (VmHWM).
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading peak RSS of process %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("reading peak RSS of process %d: no VmHWM line", pid)
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return n, nil
}
