package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/internal/testcert"
)

// TestPeerTLS runs `tessera broker` and two `tessera run` processes as one
// group with http.tls on: each serves its own certificate for 127.0.0.1,
// signed by a test CA that http.tls.ca_file names. Events make profiles on
// both instances' tasks; then every customer's profile must be answered
// exactly by both instances over HTTPS, and the insights must add up both
// instances' profiles. An instance answers for a profile whose task runs on
// the other by calling the other's internal routes, so this pins the bug
// where those calls went over plain HTTP to the TLS port and failed.
func TestPeerTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	bin := buildTessera(t)
	brk := startProc(t, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	brokers := brk.await(t, "broker listening on ")
	go drain(brk)

	dir := t.TempDir()
	ca := testcert.New(t, "tessera test CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The test's client trusts the CA only, as the instances do.
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}

	env := []string{"TESSERA_ADMIN_TOKEN=tok"}
	var bases []string
	for i := range 2 {
		certFile, keyFile := signedCertFiles(t, ca, dir, fmt.Sprintf("instance%d", i))
		cfg := filepath.Join(dir, fmt.Sprintf("tessera%d.yaml", i))
		// 6 partitions give each instance three tasks per sub-topology.
		yaml := fmt.Sprintf(workloadConfig, "peertls", 6, "10s") +
			fmt.Sprintf("http:\n  tls: {cert_file: %q, key_file: %q, ca_file: %q}\n", certFile, keyFile, caFile)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, bin, env, "run", "-c", cfg, "--brokers", brokers, "--data", t.TempDir(), "--http", "127.0.0.1:0")
		bases = append(bases, "https://"+p.await(t, "http listening on "))
		go drain(p)
	}
	for _, b := range bases {
		awaitTLSStatus(t, client, b+"/readyz", 200)
	}

	w := newWorkload(23, 60)
	produceEvents(t, brokers, "peertls.events", w.batch(0), time.Time{})
	var profileIDs []string
	for i, b := range bases {
		ids := awaitReferenceTLS(t, client, w, b, "tok", 90*time.Second)
		if i == 0 {
			profileIDs = ids
		}
	}

	// Which instance holds each profile: its owner answers the internal
	// store route, the other refuses (421). Each instance must have
	// answered some profiles held by the other, so answers crossed both
	// ways.
	held := make([]int, len(bases))
	for _, id := range profileIDs {
		owners := 0
		for i, b := range bases {
			code, body := getTLS(t, client, b+"/internal/v1/stores/1/profiles/"+id, "tok")
			switch code {
			case 200:
				held[i]++
				owners++
			case http.StatusMisdirectedRequest:
			default:
				t.Fatalf("store route for profile %s on %s: %d %s", id, b, code, body)
			}
		}
		if owners != 1 {
			t.Fatalf("profile %s is held by %d instances, want 1", id, owners)
		}
	}
	t.Logf("profiles held by each instance: %v", held)
	for i, n := range held {
		if n == 0 || n == len(profileIDs) {
			t.Fatalf("instance %d holds %d of %d profiles: answers did not cross both ways (held: %v)", i, n, len(profileIDs), held)
		}
	}

	// The insights fan out to every instance's internal route.
	for _, b := range bases {
		code, body := getTLS(t, client, b+"/v1/insights", "tok")
		var in struct {
			Profiles  int64 `json:"profiles"`
			Instances int   `json:"instances"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &in) != nil {
			t.Fatalf("insights from %s: %d %s", b, code, body)
		}
		if in.Instances != 2 || in.Profiles != int64(len(w.customers)) {
			t.Errorf("insights from %s: %d profiles from %d instances, want %d from 2", b, in.Profiles, in.Instances, len(w.customers))
		}
	}

	// Each customer's events, from the timeline where the profile's task
	// runs, through either instance.
	for i, c := range w.customers {
		for _, b := range bases {
			code, body := getTLS(t, client, fmt.Sprintf("%s/v1/profiles/user_id:u-%d/events", b, i), "tok")
			var ev struct {
				Events []json.RawMessage `json:"events"`
			}
			if code != 200 || json.Unmarshal([]byte(body), &ev) != nil || int64(len(ev.Events)) != min(c.events, 100) {
				t.Fatalf("events of u-%d from %s: %d %s, want %d events", i, b, code, body, min(c.events, 100))
			}
		}
	}
}

// signedCertFiles writes a certificate for 127.0.0.1 signed by ca, and its
// key, as <name>.pem and <name>-key.pem under dir, and returns their paths.
func signedCertFiles(t *testing.T, ca testcert.Cert, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.TLS.Leaf, &key.PublicKey, ca.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// getTLS is getAuth through client, which trusts the test CA.
func getTLS(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitTLSStatus is awaitStatus through client.
func awaitTLSStatus(t *testing.T, client *http.Client, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := getTLS(t, client, url, "")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %d %s)", url, want, code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// awaitReferenceTLS is awaitReference through client: it polls base until
// every customer's profile matches the reference, and returns the
// customers' profile ids, sorted.
func awaitReferenceTLS(t *testing.T, client *http.Client, w *workload, base, token string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var ids []string
	for i, c := range w.customers {
		ident := fmt.Sprintf("user_id:u-%d", i)
		for {
			id, a, why := readProfileTLS(t, client, base, token, ident)
			if why == "" {
				if why = c.mismatch(a); why == "" {
					ids = append(ids, id)
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s from %s never matched the reference: %s", ident, base, why)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	sort.Strings(ids)
	return ids
}

// readProfileTLS is readProfile through client; it returns the profile's id
// and answer, or why there is none.
func readProfileTLS(t *testing.T, client *http.Client, base, token, ident string) (string, profileAnswer, string) {
	code, body := getTLS(t, client, base+"/v1/profiles/"+ident, token)
	if code != 200 {
		return "", profileAnswer{}, fmt.Sprintf("%d %s", code, body)
	}
	id, a := decodeProfileAnswer(t, base, ident, body)
	return id, a, ""
}
