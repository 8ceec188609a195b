package opspage

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

var pageTmpl = template.Must(template.ParseFS(assets, "assets/ops.html"))

// contentSecurityPolicy allows the page its own script, styles and
// fetches, and nothing else: no inline script or style, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page behind token, the admin token: GET /ops (the
// page), /ops/live (its live part, which the page's script fetches every
// few seconds), /ops/data (the same as JSON), /ops/ops.js and
// /ops/ops.css. A browser signs in with HTTP Basic authentication (any
// user name, the token as the password); scripts send "Authorization:
// Bearer <token>". With no token the page is not served.
func (p *Page) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ops", func(w http.ResponseWriter, r *http.Request) { p.render(w, "page") })
	mux.HandleFunc("GET /ops/live", func(w http.ResponseWriter, r *http.Request) { p.render(w, "live") })
	mux.HandleFunc("GET /ops/data", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.View())
	})
	mux.HandleFunc("GET /ops/ops.js", asset("assets/ops.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /ops/ops.css", asset("assets/ops.css", "text/css; charset=utf-8"))
	return guard(token, mux)
}

func (p *Page) render(w http.ResponseWriter, name string) {
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, struct {
		View
		EveryMS int64
	}{p.View(), p.cfg.Every.Milliseconds()}); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func asset(path, ctype string) http.HandlerFunc {
	body, err := assets.ReadFile(path)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build mistake
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		_, _ = w.Write(body)
	}
}

// guard requires the admin token and sets the headers every answer gets.
func guard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if token == "" {
			http.Error(w, "the operations page needs an admin token: start the shop with --admin-token", http.StatusForbidden)
			return
		}
		if !authorized(r, token) {
			h.Set("WWW-Authenticate", `Basic realm="surge operations", charset="UTF-8"`)
			http.Error(w, "the operations page needs the admin token: sign in with it as the password, or send Authorization: Bearer <token>",
				http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func authorized(r *http.Request, token string) bool {
	var got string
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = b
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
