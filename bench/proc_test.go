package bench

import (
	"os"
	"syscall"
	"testing"
)

// TestProcessUsageCountsTouchedPages reads this process's own usage
// before and after touching memory it never touched: each new page is a
// minor fault.
func TestProcessUsageCountsTouchedPages(t *testing.T) {
	before, err := processUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const pages = 2048
	// An anonymous mapping of its own, not the Go heap, which may hand
	// back pages touched before.
	buf, err := syscall.Mmap(-1, 0, pages*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(buf)
	// Small pages whatever the kernel's THP mode, so one page is one fault.
	if err := syscall.Madvise(buf, syscall.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after, err := processUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.MinorFaults - before.MinorFaults; got < pages/2 {
		t.Errorf("touching %d new pages added %d minor faults, want at least %d", pages, got, pages/2)
	}
	if after.CPU < before.CPU {
		t.Errorf("CPU went back from %s to %s", before.CPU, after.CPU)
	}
	if _, err := processUsage(-1); err == nil {
		t.Error("processUsage(-1) did not fail")
	}
}
