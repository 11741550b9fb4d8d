package identity

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// segmentTrack is a track call as Segment's spec shows one, with the
// context a browser library sends: the kind of event a timeline keeps.
const segmentTrack = `{"anonymousId":"507f191e810c19729de860ea","context":{"active":true,"app":{"name":"InitechGlobal","version":"545","build":"3.0.1.545","namespace":"com.production.segment"},"campaign":{"name":"TPS Innovation Newsletter","source":"Newsletter","medium":"email","term":"tps reports","content":"image link"},"device":{"id":"B5372DB0-C21E-11E4-8DFC-AA07A5B093DB","advertisingId":"7A3CBEA0-BDF5-11E4-8DFC-AA07A5B093DB","adTrackingEnabled":true,"manufacturer":"Apple","model":"iPhone7,2","name":"maguro","type":"ios"},"ip":"8.8.8.8","library":{"name":"analytics.js","version":"2.11.1"},"locale":"en-US","network":{"bluetooth":false,"carrier":"T-Mobile US","cellular":true,"wifi":false},"os":{"name":"iPhone OS","version":"8.1.3"},"page":{"path":"/academy/","referrer":"","search":"","title":"Analytics Academy","url":"https://segment.com/academy/"},"screen":{"width":320,"height":568,"density":2},"timezone":"Europe/Amsterdam","userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 9_1 like Mac OS X) AppleWebKit/601.1.46 (KHTML, like Gecko) Version/9.0 Mobile/13B143 Safari/601.1"},"event":"Order Completed","integrations":{},"messageId":"022bb90c-bbac-11e4-8dfc-aa07a5b093db","properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25.0,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1}]},"receivedAt":"2015-12-10T04:08:31.909Z","sentAt":"2015-12-10T04:08:31.581Z","timestamp":"2015-12-10T04:08:31.905Z","type":"track","userId":"97980cfea0067","version":2}`

func TestTimelineValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 600)
	for i := range noise {
		noise[i] = 'a' + byte(rng.IntN(26))
	}
	for _, tc := range []struct {
		name       string
		event      string
		compressed bool
	}{
		{"small event, kept as is", `{"type":"page","anonymousId":"a1"}`, false},
		{"a Segment track call", segmentTrack, true},
		{"repetitive", `{"type":"track","properties":{"note":"` + strings.Repeat("lorem ipsum ", 80) + `"}}`, true},
		{"incompressible, kept as is", `{"type":"track","properties":{"note":"` + string(noise) + `"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			v := appendTimelineValue(bytes.Clone(prefix), []byte(tc.event))
			if !bytes.HasPrefix(v, prefix) {
				t.Fatalf("appendTimelineValue lost what b held: %q", v[:min(len(v), 8)])
			}
			v = v[len(prefix):]
			if got := v[0] == timelineS2; got != tc.compressed {
				t.Errorf("compressed = %v, want %v (%d bytes of %d)", got, tc.compressed, len(v), len(tc.event))
			}
			if len(v) > len(tc.event) {
				t.Errorf("value of %d bytes for an event of %d", len(v), len(tc.event))
			}
			got, err := appendTimelineEvent(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.event {
				t.Errorf("appendTimelineEvent = %.60q…, want the event back", got)
			}
		})
	}
	t.Run("a value written before compression reads as is", func(t *testing.T) {
		got, err := appendTimelineEvent(nil, []byte(segmentTrack))
		if err != nil || string(got) != segmentTrack {
			t.Errorf("appendTimelineEvent(JSON) = %.40q, %v", got, err)
		}
	})
	t.Run("a damaged value is an error", func(t *testing.T) {
		v := appendTimelineValue(nil, []byte(segmentTrack))
		if _, err := appendTimelineEvent(nil, v[:len(v)/2]); err == nil || !strings.Contains(err.Error(), "decompressing a timeline event") {
			t.Errorf("appendTimelineEvent(truncated) error = %v", err)
		}
	})
}
