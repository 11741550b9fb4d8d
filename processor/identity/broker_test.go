package identity_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) {
	if os.Getenv("TESSERA_IDENTITY_CHILD") != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

const brokerApp = "idp"

func hubRuntime(brokers []string, dir string, partitions int32, ident config.Identity) (*topology.Runtime, error) {
	rules, err := identity.NewRules(ident)
	if err != nil {
		return nil, err
	}
	b := topology.NewBuilder()
	if err := identity.Add(b, identity.Options{App: brokerApp, Partitions: partitions, Rules: rules, DedupeWindow: 24 * time.Hour, RecentEvents: 3}); err != nil {
		return nil, err
	}
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	return topology.NewRuntime(topo, topology.Config{
		App: brokerApp, Brokers: brokers, StateDir: dir, SessionTimeout: 3 * time.Second,
		TransactionTimeout: 4 * time.Second, Partitions: partitions,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// runChild runs one hub instance until SIGTERM, or until SIGKILL.
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("started") // the parent may signal from here on
	rt, err := hubRuntime(strings.Split(os.Getenv("TESSERA_TEST_BROKERS"), ","), os.Getenv("TESSERA_TEST_STATE"), 12, looseIdentity())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := rt.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func looseIdentity() config.Identity {
	c := config.DefaultIdentity()
	for i := range c.Types {
		c.Types[i].Limit = 1000
	}
	c.MaxIdentifiers = 10000
	return c
}

// TestPropertyOnBrokerWithRebalancesAndKill runs the protocol over the
// embedded broker on 12 partitions, in child processes that join, leave and
// are killed mid-stream, and checks the quiescent state against the
// reference components.
func TestPropertyOnBrokerWithRebalancesAndKill(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TESSERA_IDENTITY_CHILD=1",
			"TESSERA_TEST_BROKERS="+strings.Join(brokers, ","), "TESSERA_TEST_STATE="+t.TempDir())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "started\n" {
			t.Fatalf("child printed %q, %v", line, err)
		}
		go io.Copy(io.Discard, out)
		return cmd
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := rand.New(rand.NewPCG(42, 12))
	var events []string
	send := func(n int) {
		for i := 0; i < n; i++ {
			e := genEvent(r, 120, len(events))
			events = append(events, e)
			key := between(e, `"userId":"`, `"`)
			if key == "" {
				key = between(e, `"anonymousId":"`, `"`)
			}
			cl.Produce(context.Background(), &kgo.Record{Topic: brokerApp + ".events", Key: []byte(key), Value: []byte(e)}, nil)
		}
		if err := cl.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	a, b := child(), child()
	// The first instance creates the topics; wait for them before producing.
	awaitTopic(t, cl, brokerApp+".events")
	send(1500)
	awaitProgress(t, cl, 500) // kill while the instances are mid-stream
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	cc := child() // a join while the group recovers from the kill
	send(1500)
	for _, p := range []*exec.Cmd{b, cc} {
		p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Fatalf("instance stopped with %v", err)
		}
	}

	// A fresh instance restores everything from the changelogs and
	// finishes what was in flight; the state must settle on the reference.
	rt, err := hubRuntime(brokers, t.TempDir(), 12, looseIdentity())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	rules, _ := identity.NewRules(looseIdentity())
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := scanState(t, rt)
		var errs []string
		rec := recorder{errs: &errs}
		s.check(rec, rules, len(events))
		if len(errs) == 0 {
			compareComponents(t, rules, s, events)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state did not settle in 90s; first problems:\n%s", strings.Join(errs[:min(len(errs), 10)], "\n"))
		}
		time.Sleep(200 * time.Millisecond) // polling a condition
	}
}

// awaitProgress waits until the group has committed n offsets of the
// events topic.
func awaitProgress(t *testing.T, cl *kgo.Client, n int64) {
	t.Helper()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(context.Background(), brokerApp)
		if err == nil {
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == brokerApp+".events" {
					sum += o.At
				}
			})
			if sum >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	t.Fatalf("group did not commit %d event offsets in 60s", n)
}

func awaitTopic(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		details, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
		if err == nil && details.Has(topic) && details[topic].Err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	t.Fatalf("topic %s never created", topic)
}

// scanState reads the committed stores of every task the runtime runs.
func scanState(t *testing.T, rt *topology.Runtime) snapshot {
	s := snapshot{live: map[string]*profile.Profile{}, owners: map[string]string{}}
	err := rt.Scan(0, identity.IdentitiesStore, func(_ topology.TaskID, db *state.DB) error {
		return db.RangeCommitted(identity.IdentitiesStore, func(k, v []byte) error {
			o, err := identity.LoadOwner(v)
			s.owners[string(k)] = o
			return err
		})
	})
	if err == nil {
		err = rt.Scan(1, identity.ProfilesStore, func(_ topology.TaskID, db *state.DB) error {
			return db.RangeCommitted(identity.ProfilesStore, func(k, v []byte) error {
				p, merged, err := identity.LoadProfile(v)
				if err != nil {
					return err
				}
				if p != nil && merged == "" {
					s.live[string(k)] = p
				}
				if busy, _ := identity.Busy(v); busy {
					s.busy = append(s.busy, string(k))
				}
				return nil
			})
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}
