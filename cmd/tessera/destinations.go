package main

import (
	"fmt"
	"os"

	"github.com/tessera-cdp/tessera/config"
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
// the environment.
func newSink(d config.Destination, hubBrokers []string) (sink.Sink, error) {
	switch d.Type {
	case "webhook":
		return webhook.New(d, os.Getenv)
	case "kafka":
		return kafkasink.New(d, os.Getenv, kafkasink.HubBrokers(hubBrokers...))
	case "smtp":
		return smtp.New(d, os.Getenv)
	case "twilio_sms":
		return twilio.New(d, os.Getenv)
	case "sendgrid":
		return sendgrid.New(d, os.Getenv)
	case "slack":
		return slack.New(d, os.Getenv)
	case "redis":
		return redissink.New(d, os.Getenv)
	case "postgres":
		return postgres.New(d, os.Getenv)
	case "file":
		return filesink.New(d, os.Getenv)
	}
	return nil, fmt.Errorf("destination %q: unknown type %q", d.Name, d.Type)
}
