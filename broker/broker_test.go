package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// start starts a broker for one test and closes it when the test ends.
func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// testLogger sends the broker's warnings to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, ctx context.Context, addr, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
}

// TestRestartKeepsRecords pins the reason tessera uses a data directory:
// every record acknowledged before a clean close is there after a restart on
// the same directory, even though the broker comes back on another port.
func TestRestartKeepsRecords(t *testing.T) {
	const (
		topic   = "restart"
		records = 1000
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	b1, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	createTopic(t, ctx, b1.Addr(), topic, 3)

	producer, err := kgo.NewClient(kgo.SeedBrokers(b1.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatalf("creating producer: %v", err)
	}
	batch := make([]*kgo.Record, records)
	for i := range batch {
		batch[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("value-" + strconv.Itoa(i))}
	}
	if err := producer.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	producer.Close()
	b1.Close()

	b2 := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})

	consumer := newClient(t, b2.Addr(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	seen := make(map[string]string, records)
	for len(seen) < records {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before %v", len(seen), records, err)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetching %s[%d]: %v", topic, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if prev, dup := seen[string(r.Key)]; dup {
				t.Errorf("key %s seen twice (%q, then %q at %d/%d)", r.Key, prev, r.Value, r.Partition, r.Offset)
			}
			seen[string(r.Key)] = string(r.Value)
		})
	}
	for i := range records {
		k := strconv.Itoa(i)
		if got, want := seen[k], "value-"+k; got != want {
			t.Errorf("key %s: value %q, want %q", k, got, want)
		}
	}

	// Nothing beyond the 1,000: the end offsets add up to exactly that.
	ends, err := kadm.NewClient(consumer).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != records {
		t.Errorf("end offsets add up to %d, want %d", total, records)
	}
}

// TestKcatListsTopic checks that a client other than franz-go (kcat, on
// librdkafka) can read the broker's metadata. CI installs kcat; elsewhere the
// test is skipped when kcat is missing.
func TestKcatListsTopic(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kcat is not on PATH, and CI=true requires this test to run: %v", err)
		}
		t.Skip("kcat is not on PATH (apt-get install kcat)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := start(t, Options{})
	createTopic(t, ctx, b.Addr(), "kcat-listed", 4)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, "-L", "-b", b.Addr(), "-m", "10")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -L -b %s: %v\nstdout:\n%s\nstderr:\n%s", b.Addr(), err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`topic "kcat-listed" with 4 partitions:`,
		"at " + b.Addr(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat -L output lacks %q:\n%s", want, out)
		}
	}
}

// TestListenHonoursHost pins that the broker binds and advertises the host of
// Options.Listen, not kfake's hard-wired 127.0.0.1.
func TestListenHonoursHost(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("this system cannot listen on 127.0.0.2: %v", err)
	}
	probe.Close()

	b := start(t, Options{Listen: "127.0.0.2:0"})
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatalf("Addr %q: %v", b.Addr(), err)
	}
	if host != "127.0.0.2" || port == "0" {
		t.Fatalf("Addr = %q, want 127.0.0.2 and a chosen port", b.Addr())
	}
	if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
		conn.Close()
		t.Errorf("the broker also answers on 127.0.0.1:%s; it should be bound to 127.0.0.2 only", port)
	}
	assertMetadataBroker(t, b.Addr())
}

// TestListenAllInterfacesAdvertisesLoopback pins that a broker bound to
// 0.0.0.0 advertises an address a client can dial rather than 0.0.0.0, and
// that Advertise overrides it.
func TestListenAllInterfacesAdvertisesLoopback(t *testing.T) {
	b := start(t, Options{Listen: "0.0.0.0:0"})
	if host, _, _ := net.SplitHostPort(b.Addr()); host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want host 127.0.0.1", b.Addr())
	}
	assertMetadataBroker(t, b.Addr())

	b2 := start(t, Options{Listen: "127.0.0.1:0", Advertise: "kafka.example:19092"})
	if b2.Addr() != "kafka.example:19092" {
		t.Fatalf("Addr = %q, want kafka.example:19092", b2.Addr())
	}
}

// assertMetadataBroker checks that a metadata request sent to addr names one
// broker at addr.
func assertMetadataBroker(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := kadm.NewClient(newClient(t, addr)).BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("requesting metadata: %v", err)
	}
	if len(md.Brokers) != 1 {
		t.Fatalf("metadata lists %d brokers, want 1", len(md.Brokers))
	}
	got := net.JoinHostPort(md.Brokers[0].Host, strconv.Itoa(int(md.Brokers[0].Port)))
	if got != addr {
		t.Errorf("metadata advertises %s, want %s", got, addr)
	}
}

// TestAutoTopicCreationOff pins that a metadata request asking to create an
// unknown topic does not create it, so a misspelt topic in tessera fails
// loudly instead of appearing with the wrong partition count.
func TestAutoTopicCreationOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := start(t, Options{})
	cl := newClient(t, b.Addr())

	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("misspelt")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("requesting metadata: %v", err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("metadata answered %d topics, want 1", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("metadata for an unknown topic: error %v, want %v", err, kerr.UnknownTopicOrPartition)
	}
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("listing topics: %v", err)
	}
	if topics.Has("misspelt") {
		t.Fatal("the metadata request created the topic")
	}
}

// TestDefaultPartitionsMatchKafka pins that a topic created with the broker
// default partition count gets Kafka's default of one, not kfake's ten.
func TestDefaultPartitionsMatchKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := start(t, Options{})
	resp, err := kadm.NewClient(newClient(t, b.Addr())).CreateTopic(ctx, -1, -1, nil, "defaults")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	if resp.NumPartitions != 1 || resp.ReplicationFactor != 1 {
		t.Errorf("created %d partitions × %d replicas, want 1 × 1", resp.NumPartitions, resp.ReplicationFactor)
	}
}

// TestConfigsReachBroker checks that Options.Configs become broker configs
// and that the group minimum session timeout defaults to one second.
func TestConfigsReachBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := start(t, Options{Configs: map[string]string{"log.cleaner.backoff.ms": "2000"}})

	described, err := kadm.NewClient(newClient(t, b.Addr())).DescribeBrokerConfigs(ctx)
	if err != nil {
		t.Fatalf("describing broker configs: %v", err)
	}
	got := make(map[string]string)
	for _, rc := range described {
		if rc.Err != nil {
			t.Fatalf("describing broker %s configs: %v", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			got[c.Key] = c.MaybeValue()
		}
	}
	for k, want := range map[string]string{
		"log.cleaner.backoff.ms":       "2000",
		"group.min.session.timeout.ms": "1000",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

// TestShortSessionTimeoutAccepted checks that a classic group member may use a
// one-second session timeout, which Kafka's 6 s minimum would refuse.
func TestShortSessionTimeoutAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := start(t, Options{})
	createTopic(t, ctx, b.Addr(), "short-session", 1)

	assigned := make(chan struct{}, 1)
	newClient(t, b.Addr(),
		kgo.ConsumerGroup("short-session-group"),
		kgo.ConsumeTopics("short-session"),
		kgo.SessionTimeout(time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			select {
			case assigned <- struct{}{}:
			default:
			}
		}),
	) // a group client joins as soon as it is created
	select {
	case <-assigned:
	case <-ctx.Done():
		t.Fatal("the group never assigned the partition with a 1 s session timeout")
	}
}

// TestDataDirLocked pins that two brokers can never share a data directory,
// and that the directory is free again once the first one closes.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if second, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: testLogger(t)}); err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second broker started on a data directory in use")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Start: %v, want an error saying the directory is in use", err)
	}
	first.Close()
	start(t, Options{DataDir: dir})
}

// TestPortInUse checks that a taken port is reported, not worked around.
func TestPortInUse(t *testing.T) {
	b := start(t, Options{})
	if other, err := Start(Options{Listen: b.Addr(), Logger: testLogger(t)}); err == nil {
		other.Close()
		t.Fatalf("a second broker started on %s", b.Addr())
	}
}

func TestStartRejectsBadAddresses(t *testing.T) {
	for _, opts := range []Options{
		{Listen: "127.0.0.1"},
		{Listen: "127.0.0.1:0", Advertise: ":9092"},
		{Listen: "127.0.0.1:0", Advertise: "host:notaport"},
	} {
		if b, err := Start(opts); err == nil {
			b.Close()
			t.Errorf("Start(%+v) succeeded, want an error", opts)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	b, err := Start(Options{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	b.Close()
	b.Close()
	if conn, err := net.Dial("tcp", b.Addr()); err == nil {
		conn.Close()
		t.Errorf("the broker still accepts connections on %s after Close", b.Addr())
	}
}

func TestLoggerPassesWarningsOnly(t *testing.T) {
	var buf bytes.Buffer
	l := kfakeLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(kfake.LogLevelDebug, "debug %d", 1)
	l.Logf(kfake.LogLevelInfo, "info %d", 2)
	l.Logf(kfake.LogLevelWarn, "warn %d", 3)
	l.Logf(kfake.LogLevelError, "error %d", 4)
	out := buf.String()
	for _, want := range []string{`level=WARN msg="warn 3"`, `level=ERROR msg="error 4"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"debug 1", "info 2"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log has %q, which should be dropped:\n%s", unwanted, out)
		}
	}
}

func ExampleStart() {
	b, err := Start(Options{Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, nil, "tessera.events"); err != nil {
		fmt.Println(err)
		return
	}
	rec := &kgo.Record{Topic: "tessera.events", Key: []byte("user-1"), Value: []byte(`{"type":"track"}`)}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("produced at offset", rec.Offset)
	// Output: produced at offset 0
}
