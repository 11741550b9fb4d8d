package redissink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

func TestConformance(t *testing.T) {
	addr := redisAddr(t)
	keys := &keySet{}
	t.Cleanup(func() { keys.delete(t, addr) })
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newConformReceiver(t, env.Now, addr, keys)
	}})
}

// keySet collects the keys the suite's deliveries touched, to delete them
// at the end.
type keySet struct {
	mu   sync.Mutex
	keys []string
}

func (k *keySet) add(keys ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range keys {
		if !slices.Contains(k.keys, key) {
			k.keys = append(k.keys, key)
		}
	}
}

func (k *keySet) delete(t *testing.T, addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) == 0 {
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Del(context.Background(), k.keys...).Err(); err != nil {
		t.Errorf("deleting the suite's keys: %v", err)
	}
}

// conformReceiver is the test Redis seen through a TCP proxy of its own,
// for the conformance suite. The proxy injects the faults: Down closes
// the sink's connections and refuses the next Times ones, Stall holds
// what the sink sends until Heal. Redis refuses nothing for good and
// answers no Retry-After, so Reject and Throttle are not offered.
//
// Deliveries are read from MONITOR: every EVALSHA of the sink's script
// that Redis ran on one of the proxy's connections is one, its activation
// id (the script's seventh argument) the key.
type conformReceiver struct {
	t     *testing.T
	now   func() time.Time
	redis string
	keys  *keySet
	l     net.Listener

	mu      sync.Mutex
	got     []sinktest.Received
	refuse  int                 // connections still to refuse
	stall   chan struct{}       // non-nil while stalled; closed by Heal
	conns   map[net.Conn]bool   // open connections, both sides
	upAddrs map[string]bool     // the proxy's addresses towards Redis
	pending map[string][]string // MONITOR lines of addresses not yet known
}

func newConformReceiver(t *testing.T, now func() time.Time, addr string, keys *keySet) *conformReceiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &conformReceiver{
		t: t, now: now, redis: addr, keys: keys, l: l,
		conns: map[net.Conn]bool{}, upAddrs: map[string]bool{}, pending: map[string][]string{},
	}
	mon := r.monitor()
	var wg sync.WaitGroup
	wg.Go(func() { r.readMonitor(mon) })
	wg.Go(r.accept)
	t.Cleanup(func() {
		r.Heal()
		l.Close()
		mon.Close()
		r.mu.Lock()
		for c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		wg.Wait()
	})
	return r
}

func (r *conformReceiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.Address = "redis", r.l.Addr().String()
	s, err := New(dest, func(string) string { return "" })
	return dest, s, err
}

func (r *conformReceiver) Received() []sinktest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *conformReceiver) Inject(f sinktest.Fault) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch f.Kind {
	case sinktest.Down:
		r.refuse = f.Times
		for c := range r.conns {
			c.Close()
		}
	case sinktest.Stall:
		r.stall = make(chan struct{})
	default:
		return false
	}
	return true
}

func (r *conformReceiver) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = 0
	if r.stall != nil {
		close(r.stall)
		r.stall = nil
	}
}

// accept proxies each connection to Redis, unless it is to be refused.
func (r *conformReceiver) accept() {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.refuse > 0 {
			r.refuse--
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.mu.Unlock()
		up, err := net.Dial("tcp", r.redis)
		if err != nil {
			r.t.Errorf("dialing redis: %v", err)
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c], r.conns[up] = true, true
		r.upAddrs[up.LocalAddr().String()] = true
		early := r.pending[up.LocalAddr().String()]
		delete(r.pending, up.LocalAddr().String())
		r.mu.Unlock()
		for _, line := range early {
			r.record(line)
		}
		go func() {
			defer c.Close()
			defer up.Close()
			r.forward(up, c)
		}()
		go func() {
			defer c.Close()
			defer up.Close()
			io.Copy(c, up)
		}()
	}
}

// forward copies what the sink sends to Redis, holding it while stalled.
func (r *conformReceiver) forward(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				r.mu.Lock()
				stall := r.stall
				r.mu.Unlock()
				if stall == nil {
					break
				}
				<-stall
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// monitor opens a MONITOR connection to Redis and returns it once Redis
// has confirmed it.
func (r *conformReceiver) monitor() net.Conn {
	c, err := net.Dial("tcp", r.redis)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := io.WriteString(c, "MONITOR\r\n"); err != nil {
		r.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
		r.t.Fatalf("MONITOR answered %q, %v", line, err)
	}
	return &bufferedConn{Conn: c, r: br}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (r *conformReceiver) readMonitor(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		r.record(strings.TrimSuffix(strings.TrimPrefix(line, "+"), "\r\n"))
	}
}

// record notes a MONITOR line if it is an EVALSHA from one of the proxy's
// connections. A line can come before accept has noted its connection's
// address (Redis may run a command before the proxy's dial returns): it
// waits in pending until then.
func (r *conformReceiver) record(line string) {
	// 1700000000.123456 [0 127.0.0.1:60866] "evalsha" "…" …
	_, rest, ok := strings.Cut(line, " [")
	if !ok {
		return
	}
	client, args, ok := strings.Cut(rest, "] ")
	if !ok {
		return
	}
	_, addr, _ := strings.Cut(client, " ")
	if !strings.HasPrefix(strings.ToLower(args), `"evalsha" `) {
		return
	}
	r.mu.Lock()
	if !r.upAddrs[addr] {
		if !strings.HasPrefix(addr, "lua") && !strings.HasPrefix(addr, "unix") {
			r.pending[addr] = append(r.pending[addr], line)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	rec, keys, err := r.parse(args)
	if err != nil {
		r.t.Errorf("MONITOR line %q: %v", line, err)
		return
	}
	r.keys.add(keys...)
	r.mu.Lock()
	r.got = append(r.got, rec)
	r.mu.Unlock()
}

// parse reads an EVALSHA of the script: sha, numkeys, the keys (the
// profile hash, its deleted mark, the audience set if any), then
// updated_at, profile id, traits, features, predictions, audiences,
// activation id, op, the audience key prefix, the mark's TTL.
func (r *conformReceiver) parse(args string) (sinktest.Received, []string, error) {
	words, err := splitQuoted(args)
	if err != nil {
		return sinktest.Received{}, nil, err
	}
	if len(words) < 3 || words[1] != apply.Hash() {
		return sinktest.Received{}, nil, errors.New("not the sink's script")
	}
	n, err := strconv.Atoi(words[2])
	if err != nil || n < 2 || n > 3 || len(words) != 3+n+10 {
		return sinktest.Received{}, nil, fmt.Errorf("%d words with %q keys", len(words), words[2])
	}
	keys, argv := words[3:3+n], words[3+n:]
	rec := sinktest.Received{Key: argv[6], ActivationID: argv[6], ProfileID: argv[1], At: r.now()}
	if keys[0] != ProfileKeyPrefix+argv[1] || keys[1] != DeletedKeyPrefix+argv[1] {
		return rec, nil, fmt.Errorf("keys %q for profile %q", keys, argv[1])
	}
	switch argv[7] {
	case "add", "rem":
		rec.Type = sink.AudienceEntered
		if argv[7] == "rem" {
			rec.Type = sink.AudienceExited
		}
		if n != 3 || !strings.HasPrefix(keys[2], AudienceKeyPrefix) {
			return rec, nil, fmt.Errorf("%s without an audience key: %q", argv[7], keys)
		}
		rec.Name = strings.TrimPrefix(keys[2], AudienceKeyPrefix)
	case "forget":
		rec.Type = sink.ProfileDeleted
	case "":
		rec.Type = sink.EventTriggered
	default:
		return rec, nil, fmt.Errorf("op %q", argv[7])
	}
	return rec, keys, nil
}

// splitQuoted splits MONITOR's arguments: double-quoted, with the escapes
// Go's strconv.Unquote reads (\", \\, \n, \xHH, …), separated by spaces.
func splitQuoted(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] != '"' {
			return nil, fmt.Errorf("unquoted word at %q", s)
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			return nil, errors.New("unterminated word")
		}
		w, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return nil, fmt.Errorf("word %s: %w", s[:end+1], err)
		}
		out = append(out, w)
		s = strings.TrimPrefix(s[end+1:], " ")
	}
	return out, nil
}
