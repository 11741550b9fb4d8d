package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSuppression: events of a suppressed identifier are answered 200,
// counted and never stored; after unsuppress they are stored again.
// Identifiers match as identity resolution writes them (emails
// lowercased).
func TestSuppression(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfg, []byte("app: privacy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk"}, "run", "-c", cfg,
		"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	brokerAddr := p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	identify := func(user, email, msg string) {
		t.Helper()
		ev := fmt.Sprintf(`{"userId":%q,"traits":{"email":%q},"messageId":%q}`, user, email, msg)
		sendSegment(t, base, "/v1/identify", ev)
	}
	awaitProfile := func(ident string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if code, _ := getAuth(t, base+"/v1/profiles/"+ident, "tok"); code == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("profile %s never appeared", ident)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	for _, bad := range []struct{ body, want string }{
		{`{"type":"forget","identifiers":[{"type":"email","value":"a@b"}]}`, "type must be delete, suppress or unsuppress"},
		{`{"type":"suppress","identifiers":[]}`, "at least one is required"},
		{`{"type":"suppress","identifiers":[{"type":"email"}]}`, "identifiers[0]: type and value are required"},
		{`{"type":"suppress","identifiers":[{"type":"email","value":"a@b"}],"reason":"x"}`, `unknown field \"reason\"`},
	} {
		if code, body := postAuth(t, base+"/v1/regulations", "tok", bad.body); code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("POST %s: %d %s, want 400 containing %q", bad.body, code, body, bad.want)
		}
	}
	code, body := postAuth(t, base+"/v1/regulations", "tok", `{"type":"suppress","identifiers":[{"type":"email","value":" Mallory@Example.com "}]}`)
	var reg struct{ ID, Status string }
	if code != 201 || json.Unmarshal([]byte(body), &reg) != nil || reg.Status != "active" || !strings.Contains(body, `"value":"mallory@example.com"`) {
		t.Fatalf("suppress: %d %s", code, body)
	}
	// The list reaches ingest through the definitions watch: wait until
	// a suppressed event is counted.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		identify("mallory", "mallory@example.com", fmt.Sprintf("s%d", i))
		_, metrics := getAuth(t, base+"/metrics", "")
		if strings.Contains(metrics, `tessera_ingest_suppressed_total{type="identify"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no suppressed event counted")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	identify("alice", "alice@example.com", "a1")
	awaitProfile("user_id:alice") // later than mallory's events on any partition's clock
	if code, _ := getAuth(t, base+"/v1/profiles/user_id:mallory", "tok"); code != 404 {
		t.Errorf("a suppressed person's events were stored: profile answers %d", code)
	}
	if code, body := getAuth(t, base+"/v1/regulations/"+reg.ID, "tok"); code != 200 || !strings.Contains(body, `"status":"active"`) {
		t.Errorf("GET regulation: %d %s", code, body)
	}
	if code, body := getAuth(t, base+"/v1/regulations/"+reg.ID, ""); code != 401 {
		t.Errorf("GET regulation without a token: %d %s", code, body)
	}

	// An import is ingest too: the suppressed row is dropped, the other
	// stored.
	importConf, rows, mapping := filepath.Join(dir, "import.yaml"), filepath.Join(dir, "crm.csv"), filepath.Join(dir, "crm.yaml")
	for path, text := range map[string]string{
		importConf: "app: privacy\nkafka:\n  broker_listen: " + brokerAddr + "\n",
		rows:       "id,email\nmallory,MALLORY@example.com\ncarol,carol@example.com\n",
		mapping:    "format: csv\ntype: identify\nuser_id: id\ntraits:\n  email: email\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, errOut, err := tesseraImport(t, "-c", importConf, "-f", rows, "-m", mapping); err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, errOut)
	}
	awaitProfile("user_id:carol")
	if code, _ := getAuth(t, base+"/v1/profiles/user_id:mallory", "tok"); code != 404 {
		t.Errorf("an import stored a suppressed person's row: profile answers %d", code)
	}

	if code, body := postAuth(t, base+"/v1/regulations", "tok", `{"type":"unsuppress","identifiers":[{"type":"email","value":"mallory@example.com"}]}`); code != 201 {
		t.Fatalf("unsuppress: %d %s", code, body)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, body := getAuth(t, base+"/v1/regulations/"+reg.ID, "tok"); strings.Contains(body, `"status":"lifted"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the suppression was never lifted")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	identify("mallory", "mallory@example.com", "after")
	awaitProfile("user_id:mallory")
	_, body = getAuth(t, base+"/v1/profiles/user_id:mallory", "tok")
	if !strings.Contains(body, `"events":1`) {
		t.Errorf("after unsuppress, the profile holds more than the one later event: %s", body)
	}
}
