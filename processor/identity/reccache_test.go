package identity

import (
	"fmt"
	"testing"
)

func TestRecordCache(t *testing.T) {
	a := &record{Timeline: 1}
	b := &record{Timeline: 2}
	for _, tc := range []struct {
		name string
		run  func(c *recordCache) *record // the last take's result
		want *record
	}{
		{"empty", func(c *recordCache) *record { return c.take("p", []byte("x")) }, nil},
		{"written, then read as written", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			return c.take("p", []byte("x"))
		}, a},
		{"the buffer written from is reused after put", func(c *recordCache) *record {
			buf := []byte("x")
			c.put("p", a, buf)
			buf[0] = 'y'
			return c.take("p", []byte("x"))
		}, a},
		{"the store holds something else", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			return c.take("p", []byte("y"))
		}, nil},
		{"the store lost it", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			return c.take("p", nil)
		}, nil},
		{"a mismatch forgets the record", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			c.take("p", []byte("y"))
			return c.take("p", []byte("x"))
		}, nil},
		{"taken and not given back (a failed step)", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			c.take("p", []byte("x"))
			return c.take("p", []byte("x"))
		}, nil},
		{"given back changed", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			c.put("p", c.take("p", []byte("x")), []byte("x2"))
			return c.take("p", []byte("x2"))
		}, a},
		{"another profile's record", func(c *recordCache) *record {
			c.put("p", a, []byte("x"))
			c.put("q", b, []byte("x"))
			return c.take("q", []byte("x"))
		}, b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(newRecordCache(4)); got != tc.want {
				t.Errorf("take = %p, want %p", got, tc.want)
			}
		})
	}
}

func TestRecordCacheIsBounded(t *testing.T) {
	c := newRecordCache(8)
	for i := range 100 {
		c.put(fmt.Sprint(i), &record{Timeline: i}, []byte(fmt.Sprint(i)))
		if len(c.m) > 8 {
			t.Fatalf("after %d puts the cache holds %d records, more than its 8", i+1, len(c.m))
		}
	}
	// The last put is always kept.
	if r := c.take("99", []byte("99")); r == nil || r.Timeline != 99 {
		t.Errorf("the last record written is not cached: %v", r)
	}
}
