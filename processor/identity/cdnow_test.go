package identity_test

import (
	"context"
	"os"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/fileimport"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// driverPublisher delivers imported events straight into the hub's driver,
// as the events topic would.
type driverPublisher struct{ h *hub }

func (p driverPublisher) PublishFrom(_ context.Context, evs []schemas.Normalized, _ func(int) string) (ingest.Result, error) {
	for _, e := range evs {
		if err := p.h.d.Pipe("t.events", e.Key, e.Value, e.Timestamp); err != nil {
			return ingest.Result{}, err
		}
	}
	return ingest.Result{}, p.h.d.Drain(nil)
}

func (driverPublisher) Reject(context.Context, ...ingest.Rejection) error { return nil }

// TestCDNOWImportMakesOneProfilePerCustomer imports the CDNOW log with the
// shipped mapping through the product's import path into the identity
// stages: 2,357 customers make 2,357 profiles with all 6,919 purchases, and
// importing the file again changes nothing.
func TestCDNOWImportMakesOneProfilePerCustomer(t *testing.T) {
	const data = "../../../shared/data/cdnow/CDNOW_sample.txt"
	if _, err := os.Stat(data); err != nil {
		t.Fatalf("the CDNOW sample is part of shared/: %v", err)
	}
	m, err := fileimport.LoadMapping("../../examples/cdnow/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, 4, config.DefaultIdentity())
	rules, _ := newRulesT(t)
	for round := 1; round <= 2; round++ {
		rep, err := fileimport.NewImporter(m, driverPublisher{h}, fileimport.Options{}).ImportFile(context.Background(), data)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Imported != 6919 {
			t.Fatalf("round %d imported %d events, want 6919", round, rep.Imported)
		}
		s := h.state()
		s.check(t, rules, 6919)
		if len(s.live) != 2357 {
			t.Errorf("round %d: %d profiles, want 2357", round, len(s.live))
		}
		var purchases int64
		for _, p := range s.live {
			purchases += p.Counts["Order Completed"]
		}
		if purchases != 6919 {
			t.Errorf("round %d: %d purchases counted, want 6919", round, purchases)
		}
	}
	if p := h.state().profileOf("user_id:0001"); p == nil || p.Counts["Order Completed"] != 4 {
		t.Errorf("customer 0001 (four purchases in the file): %+v", p)
	}
}
