package admission

import (
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// canned is one refusal, rendered once at start so that refusing a
// request costs a few header writes and one Write, never a template or an
// encoder: refusals are what a process does most when it can least afford
// it.
type canned struct {
	status  int
	json    []byte
	html    []byte
	jsonLen []string
	htmlLen []string
	retry   [][]string // Retry-After values to pick from at random
}

var (
	hdrProblem = []string{"application/problem+json"}
	hdrHTML    = []string{"text/html; charset=utf-8"}
	hdrNoStore = []string{"no-store"}
)

// ProblemTypeBase starts the type URI of each refusal's problem body; the
// kind follows. It is the storefront's (storefront.ProblemTypeBase), so
// one page, docs/problems.md, documents every kind a client can meet.
const ProblemTypeBase = "https://github.com/surge-commerce/surge/blob/main/docs/problems.md#"

// ProblemKinds lists the kinds of refusal admission answers with.
func ProblemKinds() []string { return []string{"overloaded", "rate-limited", "body-too-large"} }

func newCanned(status int, kind, detail, heading, message, shop string, retryAfter time.Duration) *canned {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{ProblemTypeBase + kind, http.StatusText(status), status, detail})
	body = append(body, '\n')
	page := fmt.Appendf(nil, pageTemplate, html.EscapeString(heading+" - "+shop), html.EscapeString(heading), html.EscapeString(message))
	c := &canned{status: status, json: body, html: page,
		jsonLen: []string{strconv.Itoa(len(body))}, htmlLen: []string{strconv.Itoa(len(page))}}
	if retryAfter > 0 {
		// Spread retries over [base, 2×base] seconds so that everyone shed
		// in the same second does not come back in the same second.
		base := max(1, int(retryAfter.Round(time.Second)/time.Second))
		for s := base; s <= 2*base; s++ {
			c.retry = append(c.retry, []string{strconv.Itoa(s)})
		}
	}
	return c
}

// write sends the refusal; retryAfter overrides the canned Retry-After
// when positive.
func (c *canned) write(w http.ResponseWriter, r *http.Request, retryAfter time.Duration) {
	h := w.Header()
	body, n := c.html, c.htmlLen
	if wantsJSON(r) {
		body, n = c.json, c.jsonLen
		h["Content-Type"] = hdrProblem
	} else {
		h["Content-Type"] = hdrHTML
	}
	h["Content-Length"] = n
	h["Cache-Control"] = hdrNoStore
	// A refusal must never be stored by the page cache or a CDN.
	h.Del("Surrogate-Key")
	switch {
	case retryAfter > 0:
		h.Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	case len(c.retry) > 0:
		h["Retry-After"] = c.retry[rand.IntN(len(c.retry))]
	}
	w.WriteHeader(c.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// wantsJSON picks the problem body for the API (anything under /api/) and
// for clients that ask for JSON rather than HTML.
func wantsJSON(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "json") && !strings.Contains(accept, "text/html")
}

// pageTemplate is the storefront's refusal page: self-contained (no
// stylesheet or script to fetch from a server that is already refusing
// work), small, and honest about what happened.
const pageTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>%s</title>
<style>body{font:17px/1.5 system-ui,sans-serif;max-width:34rem;margin:12vh auto;padding:0 1.2rem;color:#222}
h1{font-size:1.6rem;margin:0 0 .6rem}a{color:#0a58ca}</style></head>
<body><h1>%s</h1><p>%s</p><p><a href="">Try again</a></p></body></html>
`
