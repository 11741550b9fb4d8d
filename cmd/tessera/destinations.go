package main

import (
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	discardsink "github.com/tessera-cdp/tessera/connectors/discard"
	"github.com/tessera-cdp/tessera/connectors/filesink"
	"github.com/tessera-cdp/tessera/connectors/kafkasink"
	"github.com/tessera-cdp/tessera/connectors/postgres"
	"github.com/tessera-cdp/tessera/connectors/redissink"
	"github.com/tessera-cdp/tessera/connectors/sendgrid"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/slack"
	"github.com/tessera-cdp/tessera/connectors/smtp"
	"github.com/tessera-cdp/tessera/connectors/twilio"
	"github.com/tessera-cdp/tessera/connectors/webhook"
)

// newSink builds the sink of a destination by its type; secrets come from
// the environment, or from files that $NAME_FILE variables name. kafkaOpts
// are the hub's Kafka security options (kafka.tls, kafka.sasl), which a
// kafka destination uses too.
func newSink(d config.Destination, hubBrokers []string, kafkaOpts ...kgo.Opt) (sink.Sink, error) {
	getenv := config.FileEnv(os.Getenv) // $NAME, or the file $NAME_FILE names
	switch d.Type {
	case "webhook":
		return webhook.New(d, getenv)
	case "kafka":
		return kafkasink.New(d, getenv, kafkasink.HubBrokers(hubBrokers...), kafkasink.ClientOpts(kafkaOpts...))
	case "smtp":
		return smtp.New(d, getenv)
	case "twilio_sms":
		return twilio.New(d, getenv)
	case "sendgrid":
		return sendgrid.New(d, getenv)
	case "slack":
		return slack.New(d, getenv)
	case "redis":
		return redissink.New(d, getenv)
	case "postgres":
		return postgres.New(d, getenv)
	case "file":
		return filesink.New(d, getenv)
	case "discard":
		return discardsink.New(d, getenv)
	}
	return nil, fmt.Errorf("destination %q: unknown type %q", d.Name, d.Type)
}
