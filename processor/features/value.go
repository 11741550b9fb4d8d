package features

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/valyala/fastjson"
)

// Canonical value tags. Their order is the order of canonical values
// (doc.go): false < true < numbers < strings < objects and arrays.
const (
	canonFalse  byte = 0x01
	canonTrue   byte = 0x02
	canonNumber byte = 0x03 // 8 bytes, order-preserving (orderedBits)
	canonString byte = 0x04 // the unescaped bytes
	canonJSON   byte = 0x05 // compact JSON of an object, an array or an unparsable number
)

// appendCanonical appends the canonical form of v, whose bytes compare in
// the order of the values, and reports false for null (and a nil v), which
// every aggregation treats as absent.
func appendCanonical(dst []byte, v *fastjson.Value) ([]byte, bool) {
	if v == nil {
		return dst, false
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return dst, false
	case fastjson.TypeFalse:
		return append(dst, canonFalse), true
	case fastjson.TypeTrue:
		return append(dst, canonTrue), true
	case fastjson.TypeNumber:
		if x, err := v.Float64(); err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
			return appendNumber(dst, x), true
		}
		// Out of float64's range: kept as written so it still counts as a
		// value of its own.
		return v.MarshalTo(append(dst, canonJSON)), true
	case fastjson.TypeString:
		return append(append(dst, canonString), v.GetStringBytes()...), true
	default:
		return v.MarshalTo(append(dst, canonJSON)), true
	}
}

// appendNumber appends the canonical form of a finite number.
func appendNumber(dst []byte, x float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, canonNumber), orderedBits(x))
}

// orderedBits maps a finite float64 to a uint64 of the same order, so that
// big-endian bytes compare as the numbers do; -0 and 0 map alike.
func orderedBits(x float64) uint64 {
	if x == 0 {
		x = 0 // -0 → +0
	}
	b := math.Float64bits(x)
	if b>>63 == 0 {
		return b | 1<<63
	}
	return ^b
}

// fromOrderedBits inverts orderedBits.
func fromOrderedBits(b uint64) float64 {
	if b>>63 == 1 {
		return math.Float64frombits(b &^ (1 << 63))
	}
	return math.Float64frombits(^b)
}

// decodeCanonical returns the Go value of a canonical value: bool, float64,
// string, or for objects and arrays map[string]any and []any.
func decodeCanonical(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty canonical value: %w", ErrCorruptTile)
	}
	switch b[0] {
	case canonFalse:
		return false, nil
	case canonTrue:
		return true, nil
	case canonNumber:
		if len(b) != 9 {
			return nil, fmt.Errorf("number of %d bytes: %w", len(b)-1, ErrCorruptTile)
		}
		return fromOrderedBits(binary.BigEndian.Uint64(b[1:])), nil
	case canonString:
		return string(b[1:]), nil
	case canonJSON:
		v, err := fastjson.ParseBytes(b[1:])
		if err != nil {
			return nil, fmt.Errorf("decoding JSON value: %v: %w", err, ErrCorruptTile)
		}
		return profile.ValueOf(v), nil
	}
	return nil, fmt.Errorf("canonical value tag %#x: %w", b[0], ErrCorruptTile)
}

// numberOf returns v as a finite number: a JSON number, or a string that
// parses as one ("12.50"), as analytics SDKs often send amounts.
func numberOf(v *fastjson.Value) (float64, bool) {
	var x float64
	switch v.Type() {
	case fastjson.TypeNumber:
		var err error
		if x, err = v.Float64(); err != nil {
			return 0, false
		}
	case fastjson.TypeString:
		var err error
		if x, err = strconv.ParseFloat(string(v.GetStringBytes()), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, false
	}
	return x, true
}

// eventTime returns the event's timestamp in Unix ms, and false when it has
// none that parses or it is before 1970 (tiles start at 0).
func eventTime(ev *fastjson.Value) (int64, bool) {
	b := ev.GetStringBytes("timestamp")
	if ms, ok := parseNormalized(b); ok {
		return ms, true
	}
	if len(b) == 0 {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil || t.UnixMilli() < 0 {
		return 0, false
	}
	return t.UnixMilli(), true
}

// parseNormalized parses the layout the ingest path writes every event's
// timestamp in, 2006-01-02T15:04:05.000Z, without allocating; anything
// else is left to time.Parse.
func parseNormalized(b []byte) (int64, bool) {
	if len(b) != 24 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' ||
		b[16] != ':' || b[19] != '.' || b[23] != 'Z' {
		return 0, false
	}
	num := func(b []byte) (int64, bool) {
		var n int64
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	ms, ok7 := num(b[20:23])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || y < 1970 || mo < 1 || mo > 12 ||
		d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	return ((daysFromCivil(y, mo, d)*24+h)*60+mi)*60000 + s*1000 + ms, true
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
