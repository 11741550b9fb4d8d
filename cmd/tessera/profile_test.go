package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// proc is a tessera process under test.
type proc struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &proc{cmd: cmd, lines: bufio.NewScanner(out)}
}

// await returns what follows prefix on the first stdout line that has it.
func (p *proc) await(t *testing.T, prefix string) string {
	t.Helper()
	for p.lines.Scan() {
		if a, ok := strings.CutPrefix(p.lines.Text(), prefix); ok {
			return a
		}
	}
	t.Fatalf("process never printed %q", prefix)
	return ""
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("stopping: %v", err)
	}
}

// TestProfilesFromEveryInstance runs a broker and two instances as one
// group, sends events that merge identities across partitions, and reads
// the same merged profile from both instances: each answers for profiles
// whose partitions the other owns by forwarding.
func TestProfilesFromEveryInstance(t *testing.T) {
	bin := buildTessera(t)
	brk := startProc(t, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	brokerAddr := brk.await(t, "broker listening on ")
	env := []string{"TESSERA_ADMIN_TOKEN=s3cret"}
	var bases []string
	for i := 0; i < 2; i++ {
		p := startProc(t, bin, env, "run", "-c", "../../examples/quickstart/tessera.yaml",
			"--brokers", brokerAddr, "--data", t.TempDir(), "--http", "127.0.0.1:0")
		bases = append(bases, "http://"+p.await(t, "http listening on "))
		go io.Copy(io.Discard, stdoutRest(p))
	}
	for _, b := range bases {
		awaitStatus(t, b+"/readyz", 200)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	events := []string{
		`{"type":"page","anonymousId":"anon-1","messageId":"m1","timestamp":"2026-03-01T10:00:00.000Z"}`,
		`{"type":"identify","userId":"u-42","anonymousId":"anon-1","traits":{"email":"Ada@Example.com","plan":"pro"},"messageId":"m2","timestamp":"2026-03-01T10:01:00.000Z"}`,
		`{"type":"track","userId":"u-42","event":"Order Completed","properties":{"revenue":12.5},"messageId":"m3","timestamp":"2026-03-01T10:02:00.000Z"}`,
		`{"type":"track","anonymousId":"anon-2","event":"Viewed","context":{"traits":{"email":"ada@example.com"}},"messageId":"m4","timestamp":"2026-03-01T10:03:00.000Z"}`,
		`{"type":"track","userId":"u-42","event":"Order Completed","messageId":"m3","timestamp":"2026-03-01T10:02:00.000Z"}`,
	}
	for _, e := range events {
		key := between(e, `"userId":"`, `"`)
		if key == "" {
			key = between(e, `"anonymousId":"`, `"`)
		}
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "tessera.events", Key: []byte(key), Value: []byte(e)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	want := "[anonymous_id:anon-1 anonymous_id:anon-2 email:ada@example.com user_id:u-42]"
	for _, ident := range []string{"user_id:u-42", "anonymous_id:anon-2", "email:ada@example.com"} {
		for _, base := range bases {
			var prof struct {
				ID          string `json:"id"`
				Identifiers []struct{ Type, Value string }
				Traits      map[string]any   `json:"traits"`
				EventCounts map[string]int64 `json:"event_counts"`
				Events      int64            `json:"events"`
				MergedFrom  []string         `json:"merged_from"`
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, body := getAuth(t, base+"/v1/profiles/"+ident, "s3cret")
				if code == 200 {
					if err := json.Unmarshal([]byte(body), &prof); err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, id := range prof.Identifiers {
						ids = append(ids, id.Type+":"+id.Value)
					}
					sort.Strings(ids)
					if fmt.Sprint(ids) == want && prof.Events == 4 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s from %s: %d %s, want identifiers %s and 4 events", ident, base, code, body, want)
				}
				time.Sleep(50 * time.Millisecond) // polling a condition
			}
			// How many profiles merged depends on timing (the last event
			// may route to the email before or after it is linked); the
			// outcome does not.
			if prof.Traits["plan"] != "pro" || prof.EventCounts["Order Completed"] != 1 || len(prof.MergedFrom) == 0 {
				t.Errorf("%s from %s: traits %v, counts %v, merged from %v", ident, base, prof.Traits, prof.EventCounts, prof.MergedFrom)
			}
		}
	}

	// The CLI answers the same.
	out, err := exec.Command(bin, "profile", "get", "email:ada@example.com", "--http", strings.TrimPrefix(bases[1], "http://")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "admin token") {
		t.Errorf("tessera profile get without a token: %v\n%s, want the 401 explained", err, out)
	}
	cmd := exec.Command(bin, "profile", "get", "email:ada@example.com", "--http", strings.TrimPrefix(bases[1], "http://"))
	cmd.Env = append(os.Environ(), env...)
	if out, err = cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"value": "u-42"`) {
		t.Errorf("tessera profile get: %v\n%s", err, out)
	}

	tests := []struct {
		path, token string
		code        int
		want        string
	}{
		{"/v1/profiles/user_id:nobody", "s3cret", 404, "no profile has identifier user_id:nobody"},
		{"/v1/profiles/user_id:u-42", "", 401, "admin token"},
		{"/v1/profiles/user_id:u-42", "wrong", 401, "admin token"},
		{"/v1/profiles/nocolon", "s3cret", 400, "not type:value"},
		{"/v1/profiles/user_id:u-42/events?limit=2", "s3cret", 200, `"event":"Viewed"`},
		{"/v1/profiles/user_id:u-42/events?limit=0", "s3cret", 400, "limit must be"},
	}
	for _, tt := range tests {
		code, body := getAuth(t, bases[0]+tt.path, tt.token)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %s, want %d containing %q", tt.path, code, body, tt.code, tt.want)
		}
	}
}

func stdoutRest(p *proc) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for p.lines.Scan() {
		}
		pw.Close()
	}()
	return pr
}

func getAuth(t testing.TB, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func between(s, a, b string) string {
	_, after, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, b)
	return v
}

// TestFeaturesInTheProfile defines a feature through the API of a running
// tessera and sees its value in the profile as events arrive.
func TestFeaturesInTheProfile(t *testing.T) {
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk"}, "run", "-c", "../../examples/quickstart/tessera.yaml",
		"--data", t.TempDir(), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)
	if code, body := postAuth(t, base+"/v1/features", "tok", `{"name":"spend_7d","event":"Order Completed","agg":"sum","property":"revenue","window":"7d"}`); code != 201 {
		t.Fatalf("defining a feature: %d %s", code, body)
	}
	now := time.Now().UTC()
	for i, rev := range []float64{20, 22.5} {
		ev := fmt.Sprintf(`{"userId":"f-1","event":"Order Completed","properties":{"revenue":%v},"timestamp":%q}`, rev, now.Add(time.Duration(i-5)*time.Minute).Format(time.RFC3339))
		sendSegment(t, base, "/v1/track", ev)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getAuth(t, base+"/v1/profiles/user_id:f-1", "tok")
		if code == 200 && strings.Contains(body, `"spend_7d":42.5`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("feature never showed: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// The insights show the feature's distribution.
	if code, body := getAuth(t, base+"/v1/insights", "tok"); code != 200 || !strings.Contains(body, `"spend_7d":{"sampled":1,"min":42.5,"max":42.5`) {
		t.Errorf("insights: %d %s", code, body)
	}
	// A week later the window is empty.
	later := url.QueryEscape(now.Add(8 * 24 * time.Hour).Format(time.RFC3339))
	if code, body := getAuth(t, base+"/v1/profiles/user_id:f-1?as_of="+later, "tok"); code != 200 || !strings.Contains(body, `"spend_7d":0`) {
		t.Errorf("a week later: %d %s", code, body)
	}
}
