package main

import (
	"log/slog"
	"os"
	"strings"
)

// thpEnabledPath is where Linux says its transparent huge page mode.
const thpEnabledPath = "/sys/kernel/mm/transparent_hugepage/enabled"

// hugePagesAdvice says, for a kernel THP mode (the bracketed word of
// thpEnabledPath) and the process's GLIBC_TUNABLES, whether Pebble's C
// memory (memtables, block caches; glibc's malloc under cgo) gets
// transparent huge pages, and what to do if it does not. Under "madvise"
// glibc asks for them only with glibc.malloc.hugetlb=1; with 4 KiB pages
// each page of every new memtable costs a page fault on first touch, and
// the skiplist's random accesses miss the TLB more (docs/operations.md,
// "Memory").
func hugePagesAdvice(mode, tunables string) (on bool, advice string) {
	switch mode {
	case "always":
		return true, ""
	case "madvise":
		for _, t := range strings.Split(tunables, ":") {
			if t == "glibc.malloc.hugetlb=1" {
				return true, ""
			}
		}
		return false, "set GLIBC_TUNABLES=glibc.malloc.hugetlb=1 in the environment (the Dockerfile does)"
	case "":
		return false, ""
	default: // never
		return false, "the kernel's transparent huge pages are off (" + thpEnabledPath + ")"
	}
}

// logHugePages logs whether the process's C memory gets transparent
// huge pages, with the advice of hugePagesAdvice when it does not.
func logHugePages(log *slog.Logger) {
	b, err := os.ReadFile(thpEnabledPath)
	if err != nil {
		return // not Linux, or no THP: nothing to say
	}
	mode := ""
	if _, rest, ok := strings.Cut(string(b), "["); ok {
		mode, _, _ = strings.Cut(rest, "]")
	}
	on, advice := hugePagesAdvice(mode, os.Getenv("GLIBC_TUNABLES"))
	if on || advice == "" {
		log.Info("memory pages", "transparent_huge_pages", mode, "c_memory_huge_pages", on)
		return
	}
	log.Warn("memory pages: Pebble's memtables and caches use 4 KiB pages", "transparent_huge_pages", mode, "advice", advice)
}
