package main

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCDNOWEndToEnd imports the CDNOW calibration period through the
// product's import path into a running tessera, fits as of 1997-09-30, and
// checks the published parameters of Fader, Hardie & Lee (2005): BG/NBD
// within 1 % (log-likelihood within 0.1 %), Gamma-Gamma within 1 %.
func TestCDNOWEndToEnd(t *testing.T) {
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok"}, "run", "-c", "../../examples/cdnow/tessera.yaml",
		"--data", t.TempDir(), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	brokerAddr := p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	out, err := exec.Command(bin, "import", "-c", "../../examples/cdnow/tessera.yaml", "--brokers", brokerAddr,
		"--file", "../../../shared/data/cdnow/CDNOW_sample.txt", "--mapping", "../../examples/cdnow/mapping-calibration.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("tessera import: %v\n%s", err, out)
	}

	type fitted struct {
		BGNBD struct {
			R, Alpha, A, B float64
			LogLikelihood  float64 `json:"log_likelihood"`
			Customers      int
		} `json:"bgnbd"`
		GammaGamma struct {
			P, Q, Gamma float64
			Customers   int
		} `json:"gamma_gamma"`
		AsOf string `json:"as_of"`
	}
	within := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Abs(want) }
	var f fitted
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := postAuth(t, base+"/v1/models/fit", "tok", `{"as_of":"1997-09-30"}`)
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &f); err != nil {
				t.Fatal(err)
			}
			// Every customer's purchases must be in before the fit can
			// match; until then fewer customers or fewer repeats show.
			b, g := f.BGNBD, f.GammaGamma
			if b.Customers == 2357 && within(b.R, 0.243, 0.01) && within(b.Alpha, 4.414, 0.01) && within(b.A, 0.793, 0.01) &&
				within(b.B, 2.426, 0.01) && within(b.LogLikelihood, -9582.4, 0.001) &&
				within(g.P, 6.25, 0.01) && within(g.Q, 3.74, 0.01) && within(g.Gamma, 15.44, 0.01) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fit never reproduced the published parameters; last: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond) // polling a condition: the import is still being processed
	}
	t.Logf("BG/NBD r=%.4f alpha=%.4f a=%.4f b=%.4f LL=%.2f; Gamma-Gamma p=%.3f q=%.3f gamma=%.3f",
		f.BGNBD.R, f.BGNBD.Alpha, f.BGNBD.A, f.BGNBD.B, f.BGNBD.LogLikelihood, f.GammaGamma.P, f.GammaGamma.Q, f.GammaGamma.Gamma)

	if code, body := getAuth(t, base+"/v1/models", "tok"); code != 200 || !strings.Contains(body, `"as_of":"1997-09-30"`) {
		t.Errorf("GET /v1/models: %d %s", code, body)
	}
	// Customer 0001 bought on three days of the calibration period (x = 2,
	// t_x = 30.43, T = 38.86 weeks): the paper's worked example expects
	// 1.226 purchases in the next 39 weeks.
	code, body := getAuth(t, base+"/v1/profiles/user_id:0001/predictions?horizon=39w", "tok")
	var pr struct {
		PAlive            float64 `json:"p_alive"`
		ExpectedPurchases float64 `json:"expected_purchases"`
		Frequency         int
	}
	if code != 200 || json.Unmarshal([]byte(body), &pr) != nil || pr.PAlive <= 0 || pr.PAlive > 1 || math.Abs(pr.ExpectedPurchases-1.226) > 0.001 || pr.Frequency != 2 {
		t.Errorf("predictions of user 0001: %d %s", code, body)
	}
	if code, body := getAuth(t, base+"/v1/profiles/user_id:0001", "tok"); code != 200 || !strings.Contains(body, `"39w":{"horizon":"39w"`) || !strings.Contains(body, `"segment":`) {
		t.Errorf("profile predictions and RFM segment: %d %s", code, body)
	}
	var in struct {
		Profiles, Customers int64
		PAlive              []int64          `json:"p_alive_histogram"`
		RFM                 map[string]int64 `json:"rfm_segments"`
	}
	code, body = getAuth(t, base+"/v1/insights", "tok")
	if code != 200 || json.Unmarshal([]byte(body), &in) != nil {
		t.Fatalf("insights: %d %s", code, body)
	}
	var pa, seg int64
	for _, n := range in.PAlive {
		pa += n
	}
	for _, n := range in.RFM {
		seg += n
	}
	if in.Profiles != 2357 || in.Customers != 2357 || pa != 2357 || seg != 2357 || len(in.RFM) != 11 {
		t.Errorf("insights: %s", body)
	}
}

func postAuth(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
