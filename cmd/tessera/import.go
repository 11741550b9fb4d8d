package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	_ "time/tzdata" // mapping time zones work on machines without a zoneinfo database

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/fileimport"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/kafkaconn"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/regulation"
	"github.com/tessera-cdp/tessera/schemas"
)

// importFlags are the flags of `tessera import`.
type importFlags struct {
	file      string
	mapping   string
	config    string
	brokers   []string
	batchSize int
	maxErrors int
	dryRun    bool
}

// connectTimeout bounds how long import waits for Kafka to answer before it
// says that no broker is there; a variable so tests can shorten it.
var connectTimeout = 10 * time.Second

// newImportCmd returns `tessera import`, which imports an offline file into
// <app>.events through a mapping file.
func newImportCmd() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import --file FILE --mapping MAPPING.yaml",
		Short: "Import a CSV, TSV, whitespace-separated or JSON Lines file as events",
		Long: `Import an offline file — a CRM or point-of-sale export, a transaction log, an
event dump — into <app>.events, where the pipeline picks its events up as it
does those from the HTTP API. The mapping file says how rows become
Segment-spec events: the format, the event type and name, which columns give
userId and the other identifiers, the timestamp and its layout, properties,
traits and context, and optional row filters. See the fileimport package
documentation for its keys; examples/cdnow/mapping.yaml is one.

The file is streamed, so its size does not matter; a gzip file is read as it
is, and --file - reads standard input. Bad lines do not stop the import:
each is sent to <app>.events.invalid with a reason that names its line and
column, and the first ones are printed. Tracking plans in the configuration
apply as they do to every source.

Re-importing a file does not double-count: every event gets a deterministic
messageId (made of the mapping's event, the row's content and its line, or of
the mapping's message_id columns), and profiles deduplicate on it.

Kafka: the brokers are those of 'tessera run' — --brokers, $TESSERA_BROKERS or
kafka.brokers in the -c configuration. With none configured, import connects
to kafka.broker_listen (default 127.0.0.1:9092), where a running 'tessera run'
serves its embedded broker: start the hub first. The topics are created if
missing. --dry-run reads and maps the whole file and reports without
connecting to Kafka.

A progress bar is drawn on standard error when it is a terminal; the summary
goes to standard output. The exit status is 0 when the file was read through,
bad lines or not, and 1 when the import stopped (an unreadable file, a mapping
that does not fit the file's header, Kafka unreachable).`,
		Example: `  # The CDNOW sample, into the embedded broker of a running 'tessera run':
  tessera import --file ../shared/data/cdnow/CDNOW_sample.txt --mapping examples/cdnow/mapping.yaml

  # Against a Kafka cluster, with the hub's configuration (app id, partitions, tracking plans):
  tessera import -c tessera.yaml --brokers kafka-1:9092 --file orders.csv.gz --mapping orders.yaml

  # Check a mapping against a file without writing anything:
  tessera import --file orders.csv --mapping orders.yaml --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.file == "" || f.mapping == "" {
				return usageError{errors.New("both --file and --mapping are required")}
			}
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runImport(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", `the file to import; "-" reads standard input`)
	fl.StringVarP(&f.mapping, "mapping", "m", "", "the mapping file (YAML) that turns its rows into events")
	fl.StringVarP(&f.config, "config", "c", "", "configuration file (YAML) of the hub: app, kafka, tracking_plans")
	fl.StringSliceVar(&f.brokers, "brokers", nil, "Kafka seed brokers host:port,…, overriding kafka.brokers; none connects to kafka.broker_listen, the embedded broker of a running 'tessera run'")
	fl.IntVar(&f.batchSize, "batch-size", fileimport.DefaultBatchSize, "events written per request")
	fl.IntVar(&f.maxErrors, "max-errors", fileimport.DefaultMaxErrors, "how many bad lines to print")
	fl.BoolVar(&f.dryRun, "dry-run", false, "read and map the file and report, writing nothing")
	return cmd
}

// runImport imports f.file and prints the report to stdout, and a progress
// bar to stderr if it is a terminal.
func runImport(ctx context.Context, f importFlags, stdout, stderr io.Writer) error {
	if f.batchSize < 1 || f.maxErrors < 1 {
		return usageError{fmt.Errorf("--batch-size and --max-errors must be at least 1")}
	}
	m, err := fileimport.LoadMapping(f.mapping)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.config, config.Overrides{Brokers: f.brokers})
	if err != nil {
		return err
	}

	var pub fileimport.Publisher = discard{}
	if !f.dryRun {
		w, err := openWriter(ctx, cfg, f.config, stderr)
		if err != nil {
			return err
		}
		defer w.Close()
		pub = w
	}

	var bar *progressbar.ProgressBar
	opts := fileimport.Options{BatchSize: f.batchSize, MaxErrors: f.maxErrors}
	if isTerminal(stderr) {
		opts.Progress = func(read, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("importing "+filepath.Base(f.file)),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionClearOnFinish(),
				)
			}
			_ = bar.Set64(read)
		}
	}
	im := fileimport.NewImporter(m, pub, opts)
	start := time.Now()
	var rep fileimport.Report
	if f.file == "-" {
		rep, err = im.Import(ctx, os.Stdin, "stdin", -1)
	} else {
		rep, err = im.ImportFile(ctx, f.file)
	}
	elapsed := time.Since(start)
	if bar != nil {
		_ = bar.Finish()
	}
	if err == nil || rep.Lines > 0 {
		printReport(stdout, f, cfg, rep, elapsed, err)
	}
	return err
}

// openWriter connects to the configured brokers, or to the embedded broker
// of a running `tessera run`, creates the ingest topics and returns a Writer
// that applies the configuration's tracking plans.
func openWriter(ctx context.Context, cfg config.Config, configFile string, stderr io.Writer) (*ingest.Writer, error) {
	brokers := cfg.Kafka.Brokers
	if cfg.Embedded() {
		addr, err := embeddedAddr(cfg.Kafka.BrokerListen)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "no brokers configured: importing into the embedded broker of 'tessera run' at %s\n", addr)
		brokers = []string{addr}
	}
	kconn, err := kafkaconn.New(brokers, cfg.Kafka, os.Getenv)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kconn.Opts()...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	defer cl.Close()
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		hint := ""
		if cfg.Embedded() {
			hint = " (is 'tessera run' running? pass --brokers for another Kafka)"
		}
		return nil, fmt.Errorf("connecting to Kafka at %v: %w%s", brokers, err, hint)
	}
	if err := ingest.EnsureTopics(ctx, kadm.NewClient(cl), cfg.App, int32(cfg.Kafka.Partitions), int16(cfg.Kafka.ReplicationFactor)); err != nil {
		return nil, err
	}
	dir := "."
	if configFile != "" {
		dir = filepath.Dir(configFile)
	}
	plans, err := schemas.LoadTrackingPlans(cfg.TrackingPlans, dir)
	if err != nil {
		return nil, err
	}
	rules, err := identity.NewRules(cfg.Identity)
	if err != nil {
		return nil, err
	}
	// An import is ingest too: suppressed people's rows are dropped, as
	// the running hub drops their events (erased people's old rows are
	// dropped by the identity stage).
	defs, err := definitions.Open(ctx, cfg.App, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), kconn.Opts()...)
	if err != nil {
		return nil, fmt.Errorf("reading the regulations: %w", err)
	}
	suppressions := &regulation.Suppressions{}
	suppressions.Update(regulation.List(defs))
	defs.Close()
	return ingest.New(cfg.App, ingest.ClientOpts(kconn.Opts()...), ingest.TrackingPlans(plans),
		ingest.RouteBy(rules.Routing()), ingest.Suppress(suppressions.Test(rules.Extract)))
}

// embeddedAddr is the address to dial for the embedded broker listening on
// listen: a wildcard host means this machine.
func embeddedAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("kafka.broker_listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("kafka.broker_listen is %s, a port chosen when 'tessera run' starts: pass the address it printed with --brokers", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// printReport writes the import's summary and its first bad lines; after
// an error, what was done before it.
func printReport(w io.Writer, f importFlags, cfg config.Config, rep fileimport.Report, elapsed time.Duration, err error) {
	name := f.file
	if name == "-" {
		name = "standard input"
	}
	verb, target := "imported", " into "+cfg.Topic("events")
	switch {
	case f.dryRun:
		verb, target = "checked", " (dry run: nothing written)"
	case err != nil:
		verb = "stopped importing"
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(rep.Imported) / s
	}
	imported, invalid := "imported", fmt.Sprintf(" (sent to %s)", cfg.Topic("events.invalid"))
	if f.dryRun {
		imported, invalid = "valid", ""
	}
	fmt.Fprintf(w, "%s %s%s in %s\n", verb, name, target, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  lines     %d\n", rep.Lines)
	fmt.Fprintf(w, "  %-9s %d\n", imported, rep.Imported)
	fmt.Fprintf(w, "  skipped   %d (filtered out)\n", rep.Skipped)
	fmt.Fprintf(w, "  invalid   %d%s\n", rep.Invalid, invalid)
	fmt.Fprintf(w, "  rate      %.0f events/s\n", rate)
	if len(rep.FirstErrors) > 0 {
		if int64(len(rep.FirstErrors)) < rep.Invalid {
			fmt.Fprintf(w, "first %d of %d bad lines:\n", len(rep.FirstErrors), rep.Invalid)
		} else {
			fmt.Fprintln(w, "bad lines:")
		}
		for _, e := range rep.FirstErrors {
			fmt.Fprintf(w, "  %s\n", &e)
		}
	}
}

// isTerminal reports whether w is a terminal, where a progress bar can be
// redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// discard is the Publisher of a dry run: it writes nothing.
type discard struct{}

func (discard) PublishFrom(context.Context, []schemas.Normalized, func(int) string) (ingest.Result, error) {
	return ingest.Result{}, nil
}

func (discard) Reject(context.Context, ...ingest.Rejection) error { return nil }
