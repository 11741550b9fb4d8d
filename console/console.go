// Package console is tessera's web console: a single-page application for
// marketers, analysts and support agents, served by `tessera run` at / from
// files embedded in the binary (no build step, no CDN: it works with no
// internet access), and the few JSON routes only the console needs
// (GET /v1/overview, GET /v1/quality).
//
// The application signs in with the admin or the viewer token, keeps it in
// the browser tab's sessionStorage and sends it as a bearer token to the
// /v1/ API; it asks GET /v1/whoami which role it has and hides what a
// viewer may not do (the server refuses it anyway).
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var files embed.FS

// contentPolicy lets the pages load only the console's own scripts and
// styles: nothing inline, nothing from elsewhere.
const contentPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Register mounts the application with handle (api.Server.Handle): GET /
// serves index.html and GET /assets/ the scripts, styles and images. It
// mounts nothing else, so /v1/, /internal/, /healthz, /readyz and /metrics
// keep their own routes. The files are public; the data is behind the
// API's tokens.
func Register(handle func(pattern string, h http.Handler)) {
	web, err := fs.Sub(files, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	assets := http.StripPrefix("/assets/", http.FileServerFS(web))
	handle("GET /{$}", secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, web, "index.html")
	})))
	handle("GET /assets/", secured(assets))
}

// secured adds the headers every console file is served with.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", contentPolicy)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		// The files change only with the binary: revalidate, so an
		// upgrade is seen at once.
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
