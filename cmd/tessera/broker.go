package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tessera-cdp/tessera/broker"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/kafkaconn"
)

// newBrokerCmd returns `tessera broker`, which runs only the embedded Kafka
// broker until it is interrupted.
func newBrokerCmd() *cobra.Command {
	var (
		listen    string
		dataDir   string
		advertise string
		configs   map[string]string
		sasl      config.KafkaSASL
		tlsCert   string
		tlsKey    string
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run only the embedded Kafka broker",
		Long: `Run only tessera's embedded Kafka broker (franz-go's kfake), so that several
'tessera run --brokers ADDR' processes on one machine form one consumer group
against one broker, or so that any Kafka client (kcat, a franz-go or
librdkafka program) has a broker to talk to without installing Kafka.

The broker keeps its log, topics, consumer groups and transactions in the
--data directory and reloads them on the next start, so a restart loses
nothing; --data "" keeps everything in memory instead. The directory is locked
while the broker runs: two brokers never share one.

Once it accepts connections the command prints "broker listening on ADDR" to
stdout, where ADDR is the address clients connect to. It runs until SIGINT or
SIGTERM, then writes its state to disk and exits.

The broker is a single node with automatic topic creation off; tessera creates
its own topics. Compaction runs hourly unless configured, for example with
--broker-config log.cleaner.backoff.ms=5000. To reach it from other machines
or containers, listen on 0.0.0.0 and --advertise a name they can resolve.`,
		Example: `  # A broker on the default address, then two instances in one group:
  tessera broker --listen 127.0.0.1:9092 --data ./data/broker
  tessera run -c tessera.yaml --brokers 127.0.0.1:9092 --data ./data/1 --http 127.0.0.1:8081
  tessera run -c tessera.yaml --brokers 127.0.0.1:9092 --data ./data/2 --http 127.0.0.1:8082

  # Inspect it with kcat:
  kcat -L -b 127.0.0.1:9092

  # A broker that requires SCRAM-SHA-256 (tessera run: kafka.sasl with the same user):
  BROKER_PASSWORD=… tessera broker --sasl-mechanism SCRAM-SHA-256 --sasl-user tessera --sasl-password-env BROKER_PASSWORD

  # A throwaway in-memory broker on a free port, compacting every 5 seconds:
  tessera broker --listen 127.0.0.1:0 --data "" --broker-config log.cleaner.backoff.ms=5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()

			// --sasl-* make the broker require a login, as kafka.sasl does for run.
			if sasl.Mechanism == "" && (sasl.Username != "" || sasl.PasswordEnv != "" || sasl.PasswordFile != "") {
				return usageError{errors.New("--sasl-user and --sasl-password-* need --sasl-mechanism")}
			}
			users, err := kafkaconn.BrokerUsers(config.Kafka{SASL: sasl}, os.Getenv)
			if err != nil {
				return usageError{fmt.Errorf("--sasl-*: %w", err)}
			}
			var tlsConfig *tls.Config
			if tlsCert != "" || tlsKey != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return usageError{fmt.Errorf("--tls-cert-file and --tls-key-file: %w", err)}
				}
				tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			b, err := broker.Start(broker.Options{
				Listen:    listen,
				Advertise: advertise,
				DataDir:   dataDir,
				Configs:   configs,
				Users:     users,
				TLS:       tlsConfig,
			})
			if err != nil {
				return err // already says "starting broker: …"
			}
			defer b.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "broker listening on %s\n", b.Addr())

			<-ctx.Done()
			stop() // a second signal now kills the process at once
			b.Close()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:9092", "host:port to listen on; port 0 picks a free port, host 0.0.0.0 listens on every interface")
	f.StringVar(&dataDir, "data", "./data/broker", `directory for the broker's log, created if missing; "" keeps it in memory`)
	f.StringVar(&advertise, "advertise", "", "host or host:port clients are told to connect to (default: the listen address, 127.0.0.1 for 0.0.0.0)")
	f.StringToStringVar(&configs, "broker-config", nil, "broker config as key=value, repeatable (e.g. log.cleaner.backoff.ms=5000)")
	f.StringVar(&sasl.Mechanism, "sasl-mechanism", "", "require SASL authentication with this mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no authentication)")
	f.StringVar(&sasl.Username, "sasl-user", "", "the SASL user clients log in as (with --sasl-mechanism)")
	f.StringVar(&sasl.PasswordEnv, "sasl-password-env", "", "environment variable holding the SASL user's password")
	f.StringVar(&sasl.PasswordFile, "sasl-password-file", "", "file holding the SASL user's password")
	f.StringVar(&tlsCert, "tls-cert-file", "", "serve TLS only, with this PEM certificate chain (and --tls-key-file)")
	f.StringVar(&tlsKey, "tls-key-file", "", "the PEM private key of --tls-cert-file")
	return cmd
}
