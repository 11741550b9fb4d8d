// Package redissink is the redis sink: a profile store for on-site
// personalisation. Per activation it writes
//
//	HSET tessera:profile:<profile id>
//	     id <profile id>
//	     traits <JSON object>  features <JSON object>  predictions <JSON object>
//	     audiences <JSON array>
//	     updated_at <activation timestamp, Unix milliseconds>
//	     activation_id <activation id>
//
// and, for audience_entered, SADD tessera:audience:<name> <profile id>;
// for audience_exited, SREM. The values are the profile snapshot the
// activation carries, its audiences corrected by the activation itself
// (an entered audience is in the list, an exited one is not).
//
// A profile_deleted activation (an erasure) deletes the hash and removes
// the id from the set of every audience the hash lists, and leaves
// tessera:deleted:<profile id> = <its timestamp> for DeletedTTL, so that
// an older activation delivered late (a retry, a dead letter replayed)
// cannot write the person back; it does the same for each profile the
// notice says was merged into it ("merged_from"), whose hashes an earlier
// activation may have written.
//
// Each activation is one Lua script, atomic on the server, that applies
// nothing when the hash holds a later updated_at: a redelivery changes
// nothing (idempotent by construction) and a stale one, replayed from the
// dead-letter topic after newer ones, cannot roll the profile back. A
// batch is one pipeline. The script touches two keys, so the sink needs a
// single Redis server (or a cluster's keys in one slot), not a cluster.
package redissink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Key prefixes.
const (
	// ProfileKeyPrefix and the profile id name a profile's hash.
	ProfileKeyPrefix = "tessera:profile:"
	// AudienceKeyPrefix and the audience name name its set of profile ids.
	AudienceKeyPrefix = "tessera:audience:"
	// DeletedKeyPrefix and the profile id name the time an erased
	// profile was deleted.
	DeletedKeyPrefix = "tessera:deleted:"
)

// DeletedTTL is how long the mark of an erased profile stays: longer than
// any activation of it can wait in retries or the dead-letter topic.
const DeletedTTL = 30 * 24 * time.Hour

// defaultTimeout bounds dialing and each command when the destination sets
// no delivery timeout.
const defaultTimeout = 10 * time.Second

// apply is the per-activation script.
//
//	KEYS[1] the profile hash; KEYS[2] its deleted mark; KEYS[3] the
//	        audience set, if any
//	ARGV    updated_at (ms), profile id, traits, features, predictions,
//	        audiences, activation id, "add", "rem", "forget" or "", the
//	        audience key prefix, the deleted mark's TTL (s), and for
//	        "forget" the profile key prefix, the deleted key prefix and
//	        the ids of the profiles merged into it
//
// It returns 1 when it applied the activation, 0 when the hash is newer
// or the profile was deleted since. "forget" computes the audience sets'
// keys from the hash, so the sink needs a single server (see above).
var apply = redis.NewScript(`
local at = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '')
if cur and cur > at then
  return 0
end
local gone = tonumber(redis.call('GET', KEYS[2]) or '')
if gone and gone >= at then
  return 0
end
local function forget(hash, mark, id)
  local auds = redis.call('HGET', hash, 'audiences')
  if auds then
    for _, a in ipairs(cjson.decode(auds)) do
      redis.call('SREM', ARGV[9] .. a, id)
    end
  end
  redis.call('DEL', hash)
  redis.call('SET', mark, ARGV[1], 'EX', ARGV[10])
end
if ARGV[8] == 'forget' then
  forget(KEYS[1], KEYS[2], ARGV[2])
  for i = 13, #ARGV do
    local h = ARGV[11] .. ARGV[i]
    local c = tonumber(redis.call('HGET', h, 'updated_at') or '')
    if not (c and c > at) then
      forget(h, ARGV[12] .. ARGV[i], ARGV[i])
    end
  end
  return 1
end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'traits', ARGV[3], 'features', ARGV[4],
  'predictions', ARGV[5], 'audiences', ARGV[6], 'updated_at', ARGV[1], 'activation_id', ARGV[7])
if ARGV[8] == 'add' then
  redis.call('SADD', KEYS[3], ARGV[2])
elseif ARGV[8] == 'rem' then
  redis.call('SREM', KEYS[3], ARGV[2])
end
return 1
`)

// Sink writes activations to Redis. Its methods are safe for concurrent
// use.
type Sink struct {
	addr string
	opts *redis.Options

	mu     sync.Mutex
	client *redis.Client // nil before Connect and after Close
}

// New returns the sink of dest, a redis destination: address (host:port,
// required), and secret_env (the variable holding the password) with an
// optional username (an ACL user; the default user without one).
// getenv reads the environment (os.Getenv).
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	s, err := newSink(dest, getenv)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newSink(dest config.Destination, getenv func(string) string) (*Sink, error) {
	fail := func(field string, err error) (*Sink, error) {
		return nil, fmt.Errorf("redis destination %q: %s: %w", dest.Name, field, err)
	}
	if err := sink.CheckFields(dest, "address", "username", "secret_env"); err != nil {
		return nil, fmt.Errorf("redis destination %q: %w", dest.Name, err)
	}
	host, port, err := net.SplitHostPort(dest.Address)
	if err != nil || host == "" {
		return fail("address", fmt.Errorf("must be host:port, got %q", dest.Address))
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fail("address", fmt.Errorf("port must be 1…65535, got %q", port))
	}
	var password string
	switch {
	case dest.Username != "" && dest.SecretEnv == "":
		return fail("secret_env", errors.New("is required with username (it names the variable holding the password)"))
	case dest.SecretEnv != "":
		if password = getenv(dest.SecretEnv); password == "" {
			return fail("secret_env", fmt.Errorf("variable %s is unset or empty", dest.SecretEnv))
		}
	}
	timeout := time.Duration(dest.Delivery.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	opts := &redis.Options{
		Addr: dest.Address, Username: dest.Username, Password: password,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		// The runtime retries with its own backoff.
		MaxRetries: -1, DialerRetries: 1,
		// RESP2 and no CLIENT SETINFO: any Redis (or a look-alike) will do.
		Protocol: 2, DisableIdentity: true,
	}
	return &Sink{addr: dest.Address, opts: opts}, nil
}

// Connect opens the client, pings the server (checking the password) and
// loads the script. A server that answers with an error (a wrong
// password, a user not allowed to run scripts) is an error, which the
// runtime retries while deliveries wait for the configuration to be
// fixed. A server that cannot be reached is not: deliveries then fail and
// count toward the dead-letter topic, as with any receiver that is down.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	if s.client == nil {
		s.client = redis.NewClient(s.opts)
	}
	c := s.client
	s.mu.Unlock()
	if err := c.Ping(ctx).Err(); err != nil {
		if !answered(err) {
			return nil
		}
		return fmt.Errorf("connecting to redis at %s: %w", s.addr, err)
	}
	if err := apply.Load(ctx, c).Err(); err != nil && answered(err) {
		return fmt.Errorf("loading the script into redis at %s: %w", s.addr, err)
	}
	return nil
}

// answered reports whether err is an error reply of the server, rather
// than the network failing.
func answered(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// WriteBatch applies the batch in one pipeline. An activation without a
// profile id or with a profile that is not a JSON object fails
// permanently; the others are applied in order.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("writing to redis at %s: %w", s.addr, sink.ErrNotConnected)
	}
	be := &sink.BatchError{}
	type call struct {
		i    int
		keys []string
		args []any
	}
	calls := make([]call, 0, len(batch))
	for i, a := range batch {
		keys, args, err := scriptArgs(a)
		if err != nil {
			be.Fail(i, sink.Permanent(err))
			continue
		}
		calls = append(calls, call{i, keys, args})
	}
	if len(calls) > 0 {
		run := func() ([]*redis.Cmd, error) {
			cmds := make([]*redis.Cmd, len(calls))
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, c := range calls {
					cmds[j] = apply.EvalSha(ctx, p, c.keys, c.args...)
				}
				return nil
			})
			return cmds, err
		}
		cmds, err := run()
		if err != nil && redis.HasErrorPrefix(firstErr(cmds, err), "NOSCRIPT") {
			// The server lost its scripts (a restart, SCRIPT FLUSH): load
			// it again and redo the batch, which is idempotent.
			if lerr := apply.Load(ctx, c).Err(); lerr != nil {
				return fmt.Errorf("loading the script into redis at %s: %w", s.addr, lerr)
			}
			cmds, err = run()
		}
		if err != nil && !anyCmdErr(cmds) {
			return fmt.Errorf("writing a batch of %d to redis at %s: %w", len(calls), s.addr, err)
		}
		for j, c := range calls {
			if err := cmds[j].Err(); err != nil {
				be.Fail(c.i, fmt.Errorf("writing activation %s to redis at %s: %w", batch[c.i].ID, s.addr, err))
			}
		}
	}
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}

// Close closes the client; it is idempotent, and Connect opens a new one.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("closing the redis client for %s: %w", s.addr, err)
	}
	return nil
}

func firstErr(cmds []*redis.Cmd, err error) error {
	for _, c := range cmds {
		if c != nil && c.Err() != nil {
			return c.Err()
		}
	}
	return err
}

func anyCmdErr(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && c.Err() != nil {
			return true
		}
	}
	return false
}

// snapshot is the part of the profile JSON the sink stores.
type snapshot struct {
	Traits      json.RawMessage `json:"traits"`
	Features    json.RawMessage `json:"features"`
	Predictions json.RawMessage `json:"predictions"`
	Audiences   []string        `json:"audiences"`
	// MergedFrom lists, in a profile_deleted notice, the profiles merged
	// into the erased one.
	MergedFrom []string `json:"merged_from"`
}

// scriptArgs returns the keys and arguments of the script for a.
func scriptArgs(a sink.Activation) ([]string, []any, error) {
	if a.ProfileID == "" {
		return nil, nil, fmt.Errorf("activation %s has no profile id", a.ID)
	}
	p, err := decodeSnapshot(a)
	if err != nil {
		return nil, nil, err
	}
	audiences, err := json.Marshal(p.Audiences)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the audiences of activation %s: %w", a.ID, err)
	}
	keys := []string{ProfileKeyPrefix + a.ProfileID, DeletedKeyPrefix + a.ProfileID}
	op := ""
	if a.Name == "" && (a.Type == sink.AudienceEntered || a.Type == sink.AudienceExited) {
		return nil, nil, fmt.Errorf("activation %s (%s) names no audience", a.ID, a.Type)
	}
	switch a.Type {
	case sink.AudienceEntered:
		op = "add"
	case sink.AudienceExited:
		op = "rem"
	case sink.ProfileDeleted:
		op = "forget"
	}
	if op == "add" || op == "rem" {
		keys = append(keys, AudienceKeyPrefix+a.Name)
	}
	args := []any{a.Timestamp.UnixMilli(), a.ProfileID, []byte(p.Traits), []byte(p.Features), []byte(p.Predictions), audiences, a.ID, op,
		AudienceKeyPrefix, int64(DeletedTTL / time.Second)}
	if op == "forget" {
		args = append(args, ProfileKeyPrefix, DeletedKeyPrefix)
		for _, m := range p.MergedFrom {
			args = append(args, m)
		}
	}
	return keys, args, nil
}

// decodeSnapshot decodes a's profile: traits, features and predictions as
// JSON objects ({} when absent), and the audiences corrected by a.
func decodeSnapshot(a sink.Activation) (snapshot, error) {
	var p snapshot
	if err := json.Unmarshal(a.Profile, &p); err != nil {
		return p, fmt.Errorf("decoding the profile of activation %s: %w", a.ID, err)
	}
	for _, f := range []struct {
		name string
		v    *json.RawMessage
	}{{"traits", &p.Traits}, {"features", &p.Features}, {"predictions", &p.Predictions}} {
		switch {
		case len(*f.v) == 0 || string(*f.v) == "null":
			*f.v = json.RawMessage("{}")
		case (*f.v)[0] != '{':
			return p, fmt.Errorf("the profile of activation %s: %s is not a JSON object", a.ID, f.name)
		default:
			var b bytes.Buffer
			if err := json.Compact(&b, *f.v); err != nil {
				return p, fmt.Errorf("the profile of activation %s: %s: %w", a.ID, f.name, err)
			}
			*f.v = b.Bytes()
		}
	}
	p.Audiences = membership(p.Audiences, a)
	return p, nil
}

// membership returns audiences corrected by activation a: with a's
// audience when a entered it, without it when a left it. It does not
// modify audiences and never returns nil.
func membership(audiences []string, a sink.Activation) []string {
	out := make([]string, 0, len(audiences)+1)
	for _, x := range audiences {
		if !(a.Type == sink.AudienceExited && x == a.Name) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	if a.Type == sink.AudienceEntered && !slices.Contains(out, a.Name) {
		out = append(out, a.Name)
	}
	return out
}
