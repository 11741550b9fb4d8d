package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ping connects to addr as user with password over SCRAM-SHA-256.
func ping(addr, user, password string) error {
	opts := []kgo.Opt{kgo.SeedBrokers(addr)}
	if user != "" {
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha256Mechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// TestUsersAndRotation: a broker with Users accepts only them; restarted on
// the same data directory with a new password, it accepts the new one and no
// longer the old (kfake would otherwise reload the users it saved).
func TestUsersAndRotation(t *testing.T) {
	dir := t.TempDir()
	start := func(password string) *Broker {
		b, err := Start(Options{DataDir: dir, Users: []User{{Mechanism: "SCRAM-SHA-256", Name: "hub", Password: password}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start("old-password")
	if err := ping(b.Addr(), "hub", "old-password"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	for _, tt := range []struct{ user, pass string }{{"hub", "wrong"}, {"other", "old-password"}, {"", ""}} {
		if err := ping(b.Addr(), tt.user, tt.pass); err == nil {
			t.Errorf("user %q with password %q was let in", tt.user, tt.pass)
		}
	}
	b.Close()

	b = start("new-password")
	defer b.Close()
	if err := ping(b.Addr(), "hub", "new-password"); err != nil {
		t.Fatalf("the new password after a restart: %v", err)
	}
	if err := ping(b.Addr(), "hub", "old-password"); err == nil {
		t.Error("the old password still works after a restart with a new one")
	}
}

func TestUsersRefusesBadMechanism(t *testing.T) {
	_, err := Start(Options{Users: []User{{Mechanism: "SCRAM-SHA-1", Name: "hub", Password: "p"}}})
	if err == nil || !strings.Contains(err.Error(), "SASL mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512") {
		t.Fatalf("Start = %v", err)
	}
}
