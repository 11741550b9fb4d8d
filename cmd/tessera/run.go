package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/broker"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/connectors/kafkasource"
	"github.com/tessera-cdp/tessera/connectors/segment"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/console"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/kafkaconn"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/regulation"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/tessera-cdp/tessera/topology"
)

// runFlags are the flags of `tessera run`; the ones shared with other
// commands (config file, brokers) are read by loadConfig.
type runFlags struct {
	file         string
	data         string
	http         string
	brokers      []string
	brokerListen string
	pprof        string // profiler listen address; "" serves none
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the hub: ingest, processing and the HTTP API in one process",
		Long: `Run tessera: the stream-processing topology as one member of the consumer
group <app>, and the HTTP server with /healthz, /readyz and /metrics.

With no brokers configured (kafka.brokers, $TESSERA_BROKERS or --brokers) it
starts the embedded Kafka broker in-process, keeping its log under
<data>/broker, and prints the address it listens on. Stores live under
<data>/<app>/<task>/ and are rebuilt from their changelog topics when missing.

/readyz answers 503 until every task assigned to this instance has restored.
SIGTERM or SIGINT: readiness turns 503, polling stops, the open transaction is
committed, stores are closed, and the process exits 0.`,
		Example: `  # One process, embedded broker, the example configuration:
  tessera run -c examples/quickstart/tessera.yaml

  # Against an external Kafka or Redpanda, with its own state and HTTP port:
  tessera run -c tessera.yaml --brokers kafka-1:9092,kafka-2:9092 --data /var/lib/tessera --http 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f.file, config.Overrides{
				Data: f.data, HTTPListen: f.http, Brokers: f.brokers, BrokerListen: f.brokerListen,
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.pprof != "" {
				stopPprof, err := servePprof(f.pprof, cmd.OutOrStdout())
				if err != nil {
					return err
				}
				defer stopPprof()
			}
			dir := "."
			if f.file != "" {
				dir = filepath.Dir(f.file)
			}
			return run(ctx, cfg, dir, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "config", "c", "", "configuration file (YAML); defaults apply without one")
	fl.StringVar(&f.data, "data", "", "data directory, overriding data (default ./data)")
	fl.StringVar(&f.http, "http", "", "HTTP listen address, overriding http.listen (default 127.0.0.1:8080)")
	fl.StringSliceVar(&f.brokers, "brokers", nil, "Kafka seed brokers host:port,…, overriding kafka.brokers; none starts the embedded broker")
	fl.StringVar(&f.brokerListen, "broker-listen", "", "embedded broker listen address, overriding kafka.broker_listen (default 127.0.0.1:9092)")
	fl.StringVar(&f.pprof, "pprof", "", "serve Go's profiler (/debug/pprof/) on this host:port, apart from the API; empty serves none")
	return cmd
}

// loadConfig applies defaults, the file, the environment and the flags, in
// that order, and validates the result.
func loadConfig(file string, o config.Overrides) (config.Config, error) {
	cfg := config.Default()
	if file != "" {
		var err error
		if cfg, err = config.Load(file); err != nil {
			return cfg, err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	cfg.Override(o)
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gcRuntimeMetrics adds to /metrics, beside the Go collector's defaults,
// the CPU time the collector took (go_cpu_classes_gc_*_cpu_seconds_total:
// marking by its own workers, assists taken from the processing threads,
// pauses) and the memory it scans (go_gc_scan_*_bytes). The defaults
// count collections and their pauses, which are short; what a busy
// instance loses to the collector is mostly marking, and the mark work
// grows with the pointers in the heap, not its size.
var gcRuntimeMetrics = collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/(cpu/classes/gc/|gc/scan/)`)}

// run runs the hub until ctx is done. Components start in dependency order
// (broker, HTTP, topology) and stop in reverse, readiness first.
// configDir resolves relative paths of the configuration (tracking plans).
// replay, when given, makes it a replay's run (see replay.go).
func run(ctx context.Context, cfg config.Config, configDir string, stdout io.Writer, replay ...replayHooks) error {
	log := newLogger(cfg, os.Stderr)
	logHugePages(log)
	var rh replayHooks
	if len(replay) > 0 {
		rh = replay[0]
	}
	brokers := cfg.Kafka.Brokers
	if cfg.Embedded() {
		users, err := kafkaconn.BrokerUsers(cfg.Kafka, os.Getenv) // kafka.sasl guards the embedded broker too
		if err != nil {
			return err
		}
		b, err := broker.Start(broker.Options{
			Listen:  cfg.Kafka.BrokerListen,
			DataDir: filepath.Join(cfg.Data, "broker"),
			Logger:  log,
			Users:   users,
		})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = []string{b.Addr()}
		fmt.Fprintf(stdout, "embedded broker listening on %s\n", b.Addr())
	}

	// Every Kafka client below connects through kconn: kafka.tls and kafka.sasl.
	kconn, err := kafkaconn.New(brokers, cfg.Kafka, os.Getenv)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcRuntimeMetrics)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The feature definitions in force: compiled from the definitions
	// topic, swapped whole when a definition changes.
	var featureSet atomic.Pointer[features.Set]
	var audienceSet atomic.Pointer[audience.Set]
	var modelsRef atomic.Pointer[api.Models]
	// The erasure list, filled from the regulations once the definitions
	// are read: the identity stage drops erased people's events.
	erasures := &regulation.Erasures{}
	featureOpts := features.Options{AllowedLateness: time.Duration(cfg.Predictions.AllowedLateness), Registerer: reg}
	topo, err := hubTopology(cfg, log, hubHooks{
		reg:       reg,
		features:  featureSet.Load,
		audiences: audienceSet.Load,
		predict: func(p *profile.Profile) (map[string]any, map[string]any) {
			if m := modelsRef.Load(); m != nil {
				return m.RuleEnv(p)
			}
			return nil, nil
		},
		activate: func(a identity.Activation) ([]byte, error) {
			return sink.Activation{ID: a.ID, Type: a.Type, Name: a.Name, ProfileID: a.ProfileID,
				Timestamp: a.Timestamp, Profile: a.Profile, Event: a.Event, Destinations: a.Destinations}.Encode()
		},
		eventsTopic: rh.eventsTopic,
		skipEvent:   rh.skipEvent,
		erasedAt:    erasures.ErasedAt,
	})
	if err != nil {
		return err
	}

	// The HTTP server starts first: its address is published in the
	// consumer group so other instances can forward profile queries here.
	var running atomic.Pointer[topology.Runtime]
	var kafkaWait atomic.Pointer[error] // why the brokers are not reached yet
	srv := api.New(api.Options{Addr: cfg.HTTP.Listen, Registry: reg, Logger: log, Ready: func() error {
		if rt := running.Load(); rt != nil {
			return rt.Ready()
		}
		if err := kafkaWait.Load(); err != nil {
			return *err
		}
		return errors.New("starting")
	}, TLSCertFile: cfg.HTTP.TLS.CertFile, TLSKeyFile: cfg.HTTP.TLS.KeyFile})
	addr, err := srv.Start()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "http listening on %s\n", addr)

	defer srv.Shutdown(context.Background())
	// Wrong Kafka credentials stop the start here, with a message naming kafka.sasl.
	if err := kconn.Await(ctx, func(why error) { kafkaWait.Store(&why) }); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	kafkaWait.Store(nil)
	rt, err := topology.NewRuntime(topo, topology.Config{
		Endpoint:           srv.Endpoint(advertised(addr.String())), // https://… with http.tls
		App:                cfg.App,
		Brokers:            brokers,
		StateDir:           filepath.Join(cfg.Data, cfg.App),
		Guarantee:          guarantee(cfg.Processing.Guarantee),
		CommitInterval:     time.Duration(cfg.Processing.CommitInterval),
		MinCommitInterval:  time.Duration(cfg.Processing.MinCommitInterval),
		TransactionTimeout: time.Duration(cfg.Processing.TransactionTimeout),
		SessionTimeout:     time.Duration(cfg.Processing.SessionTimeout),
		RebalanceTimeout:   time.Duration(cfg.Processing.RebalanceTimeout),
		StandbyReplicas:    cfg.Processing.StandbyReplicas,
		RestoreConcurrency: cfg.Processing.RestoreConcurrency,
		Threads:            cfg.Processing.Threads,
		HeartbeatInterval:  time.Duration(cfg.Processing.HeartbeatInterval),
		MaxPollRecords:     cfg.Processing.MaxPollRecords,
		ReadCacheSize:      cfg.Processing.ReadCacheBytes,
		ProducerLinger:     time.Duration(cfg.Processing.ProducerLinger),
		Partitions:         int32(cfg.Kafka.Partitions),
		ReplicationFactor:  int16(cfg.Kafka.ReplicationFactor),
		Registerer:         reg,
		Logger:             log,
		ClientOpts:         kconn.Security(),
	})
	if err != nil {
		return err
	}

	running.Store(rt)
	// One transport for every call to another instance, trusting http.tls.ca_file.
	peerRoots, err := cfg.HTTP.TLS.RootCAs()
	if err != nil {
		return err
	}
	peers := api.PeerTransport(api.NewPeerTransport(peerRoots))
	profiles := api.NewProfiles(rt, api.Tokens{Admin: cfg.API.AdminToken, Viewer: cfg.API.ViewerToken}, peers)
	profiles.Register(srv)
	auditor, err := api.NewAuditor(ctx, cfg.App, int16(cfg.Kafka.ReplicationFactor), log, reg, kconn.Opts()...)
	if err != nil {
		return err
	}
	defer auditor.Close()
	profiles.Audit(auditor) // every admin action, on <app>.audit

	// Definitions (model parameters, and later features and audiences)
	// are event-sourced on their own topic, which every instance follows.
	defsCtx, cancelDefs := context.WithTimeout(ctx, time.Minute)
	defs, err := definitions.Open(defsCtx, cfg.App, log, kconn.Opts()...)
	cancelDefs()
	if err != nil {
		return err
	}
	defer defs.Close()
	models, err := api.NewModels(rt, defs, cfg.Predictions, cfg.API.AdminToken, log, peers)
	if err != nil {
		return err
	}
	models.Register(srv, profiles)
	modelsRef.Store(models)
	featureAPI := api.NewFeatures(defs, func(f config.Feature) error {
		_, err := features.Compile([]config.Feature{f}, features.Options{})
		return err
	})
	if err := featureAPI.Seed(ctx, cfg.Features); err != nil {
		return err
	}
	featureAPI.Register(srv, profiles)
	recompile := func() {
		var defsList []config.Feature
		for _, d := range defs.List("feature") {
			var f config.Feature
			if err := json.Unmarshal(d.Body, &f); err != nil {
				log.Error("skipping a feature definition that does not decode", "name", d.Name, "err", err)
				continue
			}
			defsList = append(defsList, f)
		}
		set, err := features.Compile(defsList, featureOpts)
		if err != nil {
			log.Error("feature definitions do not compile; keeping the previous ones", "err", err)
			return
		}
		featureSet.Store(set)
	}
	recompile()
	defs.Watch(func(d definitions.Definition, _ bool) {
		if d.Kind == "feature" {
			recompile()
		}
	})
	api.NewFeatureValues(rt, featureSet.Load, cfg.API.AdminToken).Register(srv, profiles)
	api.NewTimeline(rt).Register(srv, profiles)

	audiencesAPI := api.NewAudiences(defs, rt, models, featureSet.Load, cfg.API.AdminToken, peers)
	if err := audiencesAPI.Seed(ctx, cfg.Audiences); err != nil {
		return err
	}
	audiencesAPI.Register(srv, profiles)
	triggers := make([]audience.Trigger, len(cfg.Triggers))
	for i, t := range cfg.Triggers {
		triggers[i] = audience.Trigger{Name: t.Name, Event: t.Event, Rule: t.Rule, Destinations: t.Destinations}
	}
	recompileAudiences := func() {
		set, err := audience.Compile(audiencesAPI.Definitions(), triggers)
		if err != nil {
			log.Error("audience definitions do not compile; keeping the previous ones", "err", err)
			return
		}
		audienceSet.Store(set)
	}
	recompileAudiences()
	defs.Watch(func(d definitions.Definition, _ bool) {
		if d.Kind == "audience" {
			recompileAudiences()
		}
	})
	models.ShowFeatures(featureSet.Load)

	// Privacy: regulations are definitions too; the suppression list they
	// make is applied by ingest to every event, whatever its source.
	idRules, err := identity.NewRules(cfg.Identity)
	if err != nil {
		return err
	}
	suppressions := &regulation.Suppressions{}
	regulationsAPI := api.NewRegulations(defs, suppressions, idRules.Canonical)
	eraseClient, err := kgo.NewClient(kconn.Opts(kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("creating the erase requests' producer: %w", err)
	}
	defer eraseClient.Close()
	regulationsAPI.Erasure(erasures, func(ctx context.Context, reg string, at time.Time, ids []profile.Ident) error {
		recs := make([]*kgo.Record, 0, len(ids))
		for _, id := range ids {
			topic, key, value, err := identity.EraseRequest(cfg.App, id, reg, at)
			if err != nil {
				return err
			}
			// The identity stage's partition of the identifier, as the
			// engine partitions.
			recs = append(recs, &kgo.Record{Topic: topic, Key: key, Value: value,
				Partition: topology.PartitionFor(key, cfg.Kafka.Partitions)})
		}
		return eraseClient.ProduceSync(ctx, recs...).FirstErr()
	})
	regulationsAPI.Register(srv, profiles)
	suppressions.Update(regulationsAPI.All())
	erasures.Update(regulationsAPI.All())
	defs.Watch(func(d definitions.Definition, _ bool) {
		if d.Kind == regulation.Kind {
			suppressions.Update(regulationsAPI.All())
			erasures.Update(regulationsAPI.All())
		}
	})

	// Ingest: every source writes through one Writer, which applies the
	// tracking plans.
	plans, err := schemas.LoadTrackingPlans(cfg.TrackingPlans, configDir)
	if err != nil {
		return err
	}
	writer, err := ingest.New(cfg.App, ingest.ClientOpts(kconn.Opts()...),
		ingest.TrackingPlans(plans), ingest.Registerer(reg), ingest.Suppress(suppressions.Test(idRules.Extract)),
		ingest.RouteBy(idRules.Routing()))
	if err != nil {
		return err
	}
	defer writer.Close()
	writeKeys := slices.Clone(cfg.Ingest.WriteKeys)
	segment.New(segment.Options{
		WriteKeys:  func() []string { return writeKeys },
		Writer:     writer,
		Logger:     log,
		Registerer: reg,
		RateLimit:  segment.RateLimit{EventsPerSecond: float64(cfg.Ingest.RateLimit.EventsPerSecond), Burst: cfg.Ingest.RateLimit.Burst},
	}).Register(srv)
	if len(writeKeys) == 0 {
		log.Warn("no write keys configured (ingest.write_keys or $TESSERA_WRITE_KEYS): the tracking API refuses every request")
	}
	// Destinations: one runner each, its own consumer group on the
	// activations, so one slow channel never holds another back. They are
	// definitions (the config's seeded, the API's added): every instance
	// starts, restarts and stops its runners as they change.
	destinations := sink.NewRegistry()
	destinations.Register(func(pattern string, h http.Handler) { srv.Handle(pattern, profiles.RequireAdmin(h)) })
	checkDestination := func(d config.Destination) error {
		s, err := newSink(d, brokers, kconn.Security()...)
		if err != nil {
			return err
		}
		return s.Close(ctx)
	}
	for _, d := range cfg.Destinations {
		if err := checkDestination(d); err != nil {
			return err // a configuration mistake stops the start, as any other
		}
	}
	destinationsAPI := api.NewDestinations(defs, checkDestination, func(name string) (any, bool) {
		if r, ok := destinations.Get(name); ok {
			return r.Status(), true
		}
		return nil, false
	})
	if err := destinationsAPI.Seed(ctx, cfg.Destinations); err != nil {
		return err
	}
	destinationsAPI.Register(srv, profiles)
	// The console at / and the routes only it needs: dead letters,
	// audience sizes, the builder's catalog, the overview's time series
	// and data quality.
	sink.NewDeadLetterRoutes(destinations, cfg.App, sink.Brokers(brokers...), sink.ClientOpts(kconn.Security()...),
		sink.Topics(int32(cfg.Kafka.Partitions), int16(cfg.Kafka.ReplicationFactor))).
		Register(func(pattern string, h http.Handler) { srv.Handle(pattern, profiles.RequireAdmin(h)) })
	audienceSizes := api.NewAudienceSizes(rt, audiencesAPI, cfg.API.AdminToken, 0, log, peers)
	audienceSizes.Register(srv, profiles)
	catalog := api.NewCatalog(rt, defs, models, cfg.API.AdminToken, peers)
	catalog.Register(srv, profiles)
	overview := console.NewOverview(reg, cfg.App, func() (int64, bool) {
		s, ok := audienceSizes.Latest()
		return s.Profiles, ok
	})
	srv.Handle("GET /v1/overview", profiles.RequireViewer(overview))
	srv.Handle("GET /v1/quality", profiles.RequireViewer(console.NewQuality(cfg.App, reg, writer.Violations, kconn.Opts()...)))
	console.Register(srv.Handle)
	sourcesCtx, stopSources := context.WithCancel(context.Background())
	var sources sync.WaitGroup
	defer func() { stopSources(); sources.Wait() }()
	supervisor := sink.NewSupervisor(sourcesCtx, destinations, func(d config.Destination) (*sink.Runner, error) {
		s, err := newSink(d, brokers, kconn.Security()...)
		if err != nil {
			return nil, err
		}
		return sink.NewRunner(cfg.App, d, s, sink.Brokers(brokers...), sink.Logger(log), sink.Registerer(reg),
			sink.Topics(int32(cfg.Kafka.Partitions), int16(cfg.Kafka.ReplicationFactor)), sink.ClientOpts(kconn.Security()...))
	}, log)
	defer supervisor.Close()
	// Applying may wait for a runner to finish its poll: it runs on its
	// own goroutine, not the definitions watcher's, and coalesces changes.
	applyDestinations := make(chan struct{}, 1)
	kick := func() {
		select {
		case applyDestinations <- struct{}{}:
		default:
		}
	}
	sources.Add(1)
	go func() {
		defer sources.Done()
		for {
			select {
			case <-sourcesCtx.Done():
				return
			case <-applyDestinations:
				if err := supervisor.Apply(destinationsAPI.Definitions()); err != nil {
					log.Error("some destinations do not start; the others run", "err", err)
				}
			}
		}
	}()
	kick()
	defs.Watch(func(d definitions.Definition, _ bool) {
		if d.Kind == "destination" {
			kick()
		}
	})
	for _, sc := range cfg.Sources.Kafka {
		src, err := kafkasource.New(cfg.App, sc, writer, kafkasource.Brokers(brokers...), kafkasource.ClientOpts(kconn.Security()...),
			kafkasource.Logger(log), kafkasource.Registerer(reg))
		if err != nil {
			return err
		}
		sources.Add(1)
		go func() {
			defer sources.Done()
			if err := src.Run(sourcesCtx); err != nil {
				log.Error("kafka source stopped", "topic", sc.Topic, "err", err)
			}
		}()
	}
	log.Info("tessera running", "app", cfg.App, "brokers", strings.Join(brokers, ","), "http", addr.String(), "guarantee", cfg.Processing.Guarantee)

	runErr := make(chan error, 1)
	rtCtx, cancelRT := context.WithCancel(context.Background())
	defer cancelRT()
	go func() { runErr <- rt.Run(rtCtx) }()
	go models.RunSchedule(rtCtx)
	go models.WarmInsights(rtCtx, rt.Ready)
	go audienceSizes.Run(rtCtx)
	go overview.Run(rtCtx)
	go catalog.Run(rtCtx)

	select {
	case <-ctx.Done():
		log.Info("stopping: readiness off, draining")
		srv.SetStopping()
		cancelRT()
		err = <-runErr
	case err = <-runErr:
		srv.SetStopping()
		if err == nil {
			err = errors.New("topology stopped unexpectedly")
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("stopping http server: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("running topology: %w", err)
	}
	log.Info("tessera stopped")
	return nil
}

// advertised turns a listen address into one other instances can reach:
// an unspecified host (0.0.0.0, ::) becomes this machine's host name.
func advertised(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

func guarantee(g config.Guarantee) topology.Guarantee {
	if g == config.AtLeastOnce {
		return topology.AtLeastOnce
	}
	return topology.ExactlyOnce
}
