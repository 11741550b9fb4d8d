package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/kafkaconn"
)

// dlqFlags are the flags of `tessera dlq`'s subcommands.
type dlqFlags struct {
	config      string
	brokers     []string
	destination string
	all         bool
	json        bool
}

// newDLQCmd returns `tessera dlq`, which lists and replays the activations
// destinations gave up on.
func newDLQCmd() *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay the activations destinations gave up on",
		Long: `A destination gives up on an activation after its last delivery attempt, or
at once when the receiver refuses it for good (a 400, an invalid address), and
writes it to the dead-letter topic <app>.activations.dlq with headers saying
which destination, after how many attempts and with which error.

'tessera dlq list' shows them. 'tessera dlq replay --destination NAME' sends a
destination's dead letters again, once the cause is fixed: they go to that
destination's retry topic, <app>.activations.retry.NAME, which only its
runner reads, so no other destination gets them twice. The running hub
delivers them as it delivers any activation; each keeps its id, the
idempotency key. A replay sends only what was not replayed before, unless
--all.

Kafka: the brokers are those of 'tessera run' — --brokers, $TESSERA_BROKERS or
kafka.brokers in the -c configuration; with none, kafka.broker_listen (default
127.0.0.1:9092), the embedded broker of a running 'tessera run'.`,
	}
	list := &cobra.Command{
		Use:   "list [--destination NAME]",
		Short: "Print the dead letters, of one destination or of all",
		Example: `  tessera dlq list --destination crm_webhook
  tessera dlq list -c tessera.yaml --json | jq .error`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			cfg, opts, err := dlqConnect(ctx, f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dls, err := sink.ListDLQ(ctx, cfg.App, f.destination, opts...)
			if err != nil {
				return err
			}
			return printDeadLetters(cmd.OutOrStdout(), dls, f)
		},
	}
	replay := &cobra.Command{
		Use:   "replay --destination NAME",
		Short: "Send a destination's dead letters again",
		Example: `  tessera dlq replay --destination crm_webhook
  tessera dlq replay --destination crm_webhook --all --brokers kafka-1:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.destination == "" {
				return usageError{errors.New("--destination is required")}
			}
			ctx, stop := signalContext(cmd)
			defer stop()
			cfg, opts, err := dlqConnect(ctx, f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.all {
				opts = append(opts, sink.ReplayAll())
			}
			n, err := sink.ReplayDLQ(ctx, cfg.App, f.destination, opts...)
			if err != nil {
				if n > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "replayed %s before the error\n", deadLetters(n))
				}
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case n == 0 && f.all:
				fmt.Fprintf(out, "%s has no dead letters\n", f.destination)
			case n == 0:
				fmt.Fprintf(out, "%s has no dead letters that were not replayed already (--all sends them all again)\n", f.destination)
			default:
				fmt.Fprintf(out, "replayed %s of %s to %s; the running hub delivers them\n",
					deadLetters(n), f.destination, sink.RetryTopic(cfg.App, f.destination))
			}
			return nil
		},
	}
	list.Flags().BoolVar(&f.json, "json", false, "print one JSON object per line")
	replay.Flags().BoolVar(&f.all, "all", false, "send every dead letter of the destination again, also those replayed before")
	for _, c := range []*cobra.Command{list, replay} {
		fl := c.Flags()
		fl.StringVarP(&f.config, "config", "c", "", "configuration file (YAML) of the hub: app, kafka")
		fl.StringSliceVar(&f.brokers, "brokers", nil, "Kafka seed brokers host:port,…, overriding kafka.brokers; none connects to kafka.broker_listen, the embedded broker of a running 'tessera run'")
		fl.StringVar(&f.destination, "destination", "", "the destination's name")
		cmd.AddCommand(c)
	}
	return cmd
}

// signalContext is cmd's context, ended by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// dlqConnect loads the configuration, finds the brokers and checks that
// one answers, and returns the options for sink.ListDLQ and ReplayDLQ.
func dlqConnect(ctx context.Context, f dlqFlags, stderr io.Writer) (config.Config, []sink.Opt, error) {
	cfg, err := loadConfig(f.config, config.Overrides{Brokers: f.brokers})
	if err != nil {
		return cfg, nil, err
	}
	brokers := cfg.Kafka.Brokers
	if cfg.Embedded() {
		addr, err := embeddedAddr(cfg.Kafka.BrokerListen)
		if err != nil {
			return cfg, nil, err
		}
		brokers = []string{addr}
	}
	kconn, err := kafkaconn.New(brokers, cfg.Kafka, os.Getenv)
	if err != nil {
		return cfg, nil, err
	}
	cl, err := kgo.NewClient(kconn.Opts()...)
	if err != nil {
		return cfg, nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	defer cl.Close()
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		hint := ""
		if cfg.Embedded() {
			hint = " (is 'tessera run' running? pass --brokers for another Kafka)"
		}
		return cfg, nil, fmt.Errorf("connecting to Kafka at %v: %w%s", brokers, err, hint)
	}
	if f.destination != "" && len(cfg.Destinations) > 0 && !slices.ContainsFunc(cfg.Destinations, func(d config.Destination) bool { return d.Name == f.destination }) {
		fmt.Fprintf(stderr, "note: the configuration has no destination %q; it may have been defined through the API\n", f.destination)
	}
	return cfg, []sink.Opt{
		sink.Brokers(brokers...),
		sink.ClientOpts(kconn.Security()...),
		sink.Topics(int32(cfg.Kafka.Partitions), int16(cfg.Kafka.ReplicationFactor)),
	}, nil
}

// deadLetterView is a dead letter as `dlq list --json` prints it.
type deadLetterView struct {
	Destination string    `json:"destination"`
	Partition   int32     `json:"partition"`
	Offset      int64     `json:"offset"`
	Time        time.Time `json:"time"`
	Stage       string    `json:"stage"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error"`
	Source      string    `json:"source"`
	Activation  string    `json:"activation_id,omitempty"`
	Type        string    `json:"type,omitempty"`
	Name        string    `json:"name,omitempty"`
	ProfileID   string    `json:"profile_id,omitempty"`
	Replayed    bool      `json:"replayed"`
}

// printDeadLetters writes dls as a table, or as JSON lines.
func printDeadLetters(w io.Writer, dls []sink.DeadLetter, f dlqFlags) error {
	views := make([]deadLetterView, len(dls))
	for i, d := range dls {
		views[i] = deadLetterView{
			Destination: d.Destination, Partition: d.Partition, Offset: d.Offset, Time: d.Time.UTC(),
			Stage: d.Stage, Attempts: d.Attempts, Error: d.Error,
			Source:     fmt.Sprintf("%s[%d]@%d", d.Topic, d.SourcePartition, d.SourceOffset),
			Activation: d.Activation.ID, Type: d.Activation.Type, Name: d.Activation.Name, ProfileID: d.Activation.ProfileID,
			Replayed: d.Replayed,
		}
	}
	if f.json {
		enc := json.NewEncoder(w)
		for _, v := range views {
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(views) == 0 {
		if f.destination != "" {
			_, err := fmt.Fprintf(w, "%s has no dead letters\n", f.destination)
			return err
		}
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tTIME\tACTIVATION\tTYPE\tNAME\tPROFILE\tATTEMPTS\tREPLAYED\tERROR")
	for _, v := range views {
		act := v.Activation
		if v.Stage != "deliver" {
			act = "(" + v.Stage + " failed at " + v.Source + ")"
		}
		replayed := "no"
		if v.Replayed {
			replayed = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Destination, v.Time.Format(time.RFC3339), act,
			v.Type, v.Name, v.ProfileID, v.Attempts, replayed, oneLine(v.Error, 120))
	}
	return tw.Flush()
}

// deadLetters is "1 dead letter" or "N dead letters".
func deadLetters(n int) string {
	if n == 1 {
		return "1 dead letter"
	}
	return fmt.Sprintf("%d dead letters", n)
}

// oneLine returns s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
