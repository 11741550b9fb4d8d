package main

import (
	"log/slog"
	"os"

	"github.com/tessera-cdp/tessera/internal/hugepages"
)

// logHugePages logs whether the process's C memory gets transparent
// huge pages, with hugepages.Advice when it does not.
func logHugePages(log *slog.Logger) {
	mode := hugepages.Mode()
	if mode == "" {
		return // not Linux, or no THP: nothing to say
	}
	on, advice := hugepages.Advice(mode, os.Getenv(hugepages.EnvVar))
	if on || advice == "" {
		log.Info("memory pages", "transparent_huge_pages", mode, "c_memory_huge_pages", on)
		return
	}
	log.Warn("memory pages: Pebble's memtables and caches use 4 KiB pages", "transparent_huge_pages", mode, "advice", advice)
}
