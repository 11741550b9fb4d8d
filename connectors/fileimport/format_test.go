package fileimport

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// dump writes what an import published: each event's key and JSON, then
// each rejected record's source, reason and raw text.
func dump(rep Report, pub *memPublisher) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "lines %d, imported %d, skipped %d, invalid %d\n", rep.Lines, rep.Imported, rep.Skipped, rep.Invalid)
	for _, e := range pub.events {
		fmt.Fprintf(&b, "key %s: %s\n", e.Key, e.Value)
	}
	for _, r := range pub.rejects {
		fmt.Fprintf(&b, "invalid %s: %s\n  raw %q\n", r.Source, r.Reason, r.Raw)
	}
	return b.Bytes()
}

// TestFormats imports a small file of each format, with every kind of value
// and event type, and compares what is published with a golden file.
func TestFormats(t *testing.T) {
	tests := []struct {
		name, mapping, input string
	}{
		{"csv", `
format: csv
comment: "#"
type: track
event: Order Completed
user_id: customer
anonymous_id: cookie
timestamp: {column: when, layout: "2006-01-02 15:04", timezone: Europe/Paris}
properties:
  order_id: order
  revenue: {column: amount, type: float}
  quantity: {column: qty, type: int}
  gift: {column: gift, type: bool}
  shipped_at: {column: shipped, type: time, layout: "02/01/2006"}
  items: {column: items, type: json}
  note: note
  currency: {value: EUR}
traits:
  email: email
context:
  device.id: device
  campaign.source: {value: crm}
`, "\ufeffcustomer,cookie,when,order,amount,qty,gift,shipped,items,note,email,device\r\n" +
			"# exported 2026-03-01\r\n" +
			"0001,,2026-02-01 10:30,A-1,19.90,2,yes,03/02/2026,\"[{\"\"sku\"\":\"\"x\"\"}]\",\"one, two\",jane@example.com,dev-1\r\n" +
			"\r\n" +
			",anon-7,2026-07-01 00:00,A-2,5,1,0,,,\"line one\nline two\",,\r\n" +
			"0003,,2026-02-03 08:00,A-3,1e3,10,false,,,\"say \"\"hi\"\"\",,\r\n"},
		{"tsv", `
format: tsv
header: false
type: identify
user_id: $1
timestamp: {column: $4, layout: unix}
traits:
  name: $2
  plan: $3
  logins: {column: $5, type: int}
`, "u1\tJane Doe\tpro\t1700000000\t42\nu2\t\"Tab\tInside\"\tfree\t1700000000.5\t0\n"},
		{"semicolon", `
format: csv
delimiter: ";"
type: page
name: {column: page}
anonymous_id: visitor
timestamp: {column: ts, layout: unix_ms}
properties:
  url: url
  price: {column: price, type: float}
`, "visitor;page;url;ts;price\nv1;Home;https://shop.example/;1700000000123;\nv2;;https://shop.example/a;1700000000456;3.5\n"},
		{"whitespace", `
format: whitespace
columns: 5
type: track
event: Order Completed
user_id: $2
timestamp: {column: $3, layout: "20060102"}
properties:
  revenue: {column: $5, type: float}
  quantity: {column: $4, type: int}
`, " 00004 0001 19970101  2   29.33\r\n 00004 0001 19970118  2   29.73\r\n\r\n\t00021\t0002\t19970101\t3\t63.34"},
		{"jsonl", `
format: jsonl
type: track
event: {column: action}
user_id: user.id
anonymous_id: anon
timestamp: {column: at}
properties:
  total: order.total
  items: order.items
  first_sku: order.items.0.sku
  count: {column: order.count, type: int}
  label: {column: order.total, type: string}
context:
  ip: meta.ip
`, `{"action":"Order Completed","user":{"id":42},"at":"2026-02-01T10:30:00+01:00","order":{"total":19.9,"items":[{"sku":"x"},{"sku":"y"}],"count":"2"},"meta":{"ip":"203.0.113.9"}}
   
{"action":"Product Viewed","anon":"a-1","at":"2026-02-01T11:00:00Z","order":{"total":null},"unused":true}
`},
		{"group", `
format: csv
type: group
user_id: user
group_id: account
traits:
  name: account_name
  employees: {column: size, type: int}
`, "user,account,account_name,size\nu1,acc-1,Acme,250\n"},
		{"alias", `
format: csv
type: alias
user_id: user
previous_id: anon
`, "anon,user\na-9,u9\n"},
		{"screen", `
format: csv
type: screen
name: Checkout
user_id: user
traits:
  email: email
`, "user,email\nu1,u1@example.com\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, pub, err := importString(t, tt.mapping, tt.input, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lines != rep.Imported+rep.Skipped+rep.Invalid {
				t.Errorf("lines %d != imported %d + skipped %d + invalid %d", rep.Lines, rep.Imported, rep.Skipped, rep.Invalid)
			}
			golden(t, tt.name+".txt", dump(rep, pub))
		})
	}
}
