// Package hugepages says whether a process's C memory (Pebble's memtables
// and block caches, which glibc's malloc serves under cgo) gets the
// kernel's transparent huge pages, and how to ask glibc for them.
//
// Under the kernel's "madvise" mode glibc asks only when its
// glibc.malloc.hugetlb=1 tunable is set, and it reads GLIBC_TUNABLES once,
// when the process starts. Without huge pages every 4 KiB page of a new
// memtable costs a page fault on first touch (docs/operations.md, "Huge
// pages for Pebble's memory").
package hugepages

import (
	"os"
	"strings"
)

const (
	// EnvVar is the variable glibc reads its tunables from.
	EnvVar = "GLIBC_TUNABLES"
	// Tunable asks glibc's malloc to madvise(MADV_HUGEPAGE) the memory it
	// takes from the kernel.
	Tunable = "glibc.malloc.hugetlb=1"
	// enabledPath is where Linux says its transparent huge page mode.
	enabledPath = "/sys/kernel/mm/transparent_hugepage/enabled"
)

// Mode returns the kernel's transparent huge page mode, the bracketed
// word of /sys/kernel/mm/transparent_hugepage/enabled: "always",
// "madvise" or "never"; "" where the kernel does not say.
func Mode() string {
	b, err := os.ReadFile(enabledPath)
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), "[")
	mode, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return ""
	}
	return mode
}

// Env returns the GLIBC_TUNABLES setting ("GLIBC_TUNABLES=…") that adds
// Tunable to the tunables in current, replacing any other
// glibc.malloc.hugetlb value.
func Env(current string) string {
	var keep []string
	for _, t := range strings.Split(current, ":") {
		if t != "" && !strings.HasPrefix(t, "glibc.malloc.hugetlb=") {
			keep = append(keep, t)
		}
	}
	return EnvVar + "=" + strings.Join(append(keep, Tunable), ":")
}

// Advice says, for a kernel mode (Mode) and a process's GLIBC_TUNABLES,
// whether its C memory gets transparent huge pages, and what to do if it
// does not ("" when nothing would help or nothing is known).
func Advice(mode, tunables string) (on bool, advice string) {
	switch mode {
	case "always":
		return true, ""
	case "madvise":
		for _, t := range strings.Split(tunables, ":") {
			if t == Tunable {
				return true, ""
			}
		}
		return false, "set " + EnvVar + "=" + Tunable + " in the environment (the Dockerfile does)"
	case "":
		return false, ""
	default: // never
		return false, "the kernel's transparent huge pages are off (" + enabledPath + ")"
	}
}
