package main

import "testing"

func TestHugePagesAdvice(t *testing.T) {
	tests := []struct {
		mode, tunables string
		on             bool
		advised        bool
	}{
		{"always", "", true, false},
		{"madvise", "", false, true},
		{"madvise", "glibc.malloc.hugetlb=1", true, false},
		{"madvise", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", true, false},
		{"madvise", "glibc.malloc.hugetlb=0", false, true},
		{"madvise", "glibc.malloc.hugetlb=10", false, true},
		{"never", "glibc.malloc.hugetlb=1", false, true},
		{"", "", false, false},
	}
	for _, tt := range tests {
		on, advice := hugePagesAdvice(tt.mode, tt.tunables)
		if on != tt.on || (advice != "") != tt.advised {
			t.Errorf("hugePagesAdvice(%q, %q) = %v, %q; want %v, advice %v", tt.mode, tt.tunables, on, advice, tt.on, tt.advised)
		}
	}
}
