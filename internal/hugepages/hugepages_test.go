package hugepages

import "testing"

func TestEnv(t *testing.T) {
	tests := []struct {
		current, want string
	}{
		{"", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"},
		{"glibc.malloc.arena_max=2", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"},
		{"glibc.malloc.hugetlb=0", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"},
		{"glibc.malloc.hugetlb=2:glibc.malloc.arena_max=2", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"},
		{"::glibc.malloc.arena_max=2:", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"},
	}
	for _, tt := range tests {
		if got := Env(tt.current); got != tt.want {
			t.Errorf("Env(%q) = %q, want %q", tt.current, got, tt.want)
		}
	}
}

func TestAdvice(t *testing.T) {
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
		on, advice := Advice(tt.mode, tt.tunables)
		if on != tt.on || (advice != "") != tt.advised {
			t.Errorf("Advice(%q, %q) = %v, %q; want %v, advice %v", tt.mode, tt.tunables, on, advice, tt.on, tt.advised)
		}
	}
}
