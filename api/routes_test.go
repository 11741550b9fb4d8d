package api

import (
	"net/http"
	"slices"
	"testing"
)

// TestRoutes: Routes lists every pattern passed to Handle, in order, and only those.
func TestRoutes(t *testing.T) {
	s := New(Options{})
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	want := []string{"GET /v1/a/{id}", "/v1/track", "POST /v1/b"}
	for _, p := range want {
		s.Handle(p, h)
	}
	if got := s.Routes(); !slices.Equal(got, want) {
		t.Fatalf("Routes() = %v, want %v", got, want)
	}
	got := s.Routes()
	got[0] = "changed"
	if s.Routes()[0] != want[0] {
		t.Error("Routes returned the server's own slice")
	}
}
