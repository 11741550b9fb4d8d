// Command tessera is the one binary of the tessera customer data hub: it
// runs the hub (run), the embedded Kafka broker alone (broker), and, as later
// issues add them, imports, replays, benchmarks and profile look-ups.
//
// Only main chooses exit codes: 0 on success or a clean stop, 1 on an
// error, 2 on a usage error.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tessera:", err)
		var uerr usageError
		if errors.As(err, &uerr) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks an error in how the command was called.
type usageError struct{ error }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tessera",
		Short: "A self-hosted, real-time customer data hub on Kafka",
		Long: `tessera unites customer events from every source into one identity-resolved
profile per customer, computes features and predictions on it, and activates
audiences to every channel. It is a Kafka-Streams-style stream processor with
local Pebble state backed by changelog topics.

Start with 'tessera run -c examples/quickstart/tessera.yaml': with no brokers
configured it starts an embedded Kafka broker, so one command gives a working hub.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newBrokerCmd(), newImportCmd(), newProfileCmd(), newDLQCmd(), newReplayCmd())
	root.AddCommand(newBenchCmd(), newBenchBaselineCmd())
	return root
}
