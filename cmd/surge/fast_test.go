package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
)

// getOnNewConn GETs url on a connection of its own, as a first-time
// visitor's browser would.
func getOnNewConn(t *testing.T, url string) *http.Response {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var fastHitsMetric = regexp.MustCompile(`(?m)^surge_page_cache_fast_hits_total (\d+)`)

// TestServeFastHits: `surge serve` answers cache hits on its public
// listener with the page cache's fast path by default, counted in the
// request metrics under their route, and not with --fast-hits=false.
func TestServeFastHits(t *testing.T) {
	for _, on := range []bool{true, false} {
		s := startShop(t, "--fast-hits="+strconv.FormatBool(on))
		getOnNewConn(t, s.URL+"/")
		for range 3 {
			if resp := getOnNewConn(t, s.URL+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("fast-hits=%v: home %d X-Cache %q", on, resp.StatusCode, resp.Header.Get("X-Cache"))
			}
		}
		metrics := do(t, "GET", s.AdminURL+"/metrics", "", "").Body
		m := fastHitsMetric.FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("fast-hits=%v: no surge_page_cache_fast_hits_total", on)
		}
		if want := map[bool]string{true: "3", false: "0"}[on]; m[1] != want {
			t.Errorf("fast-hits=%v: %s fast hits, want %s", on, m[1], want)
		}
		if on && !regexp.MustCompile(`http_server_request_duration_seconds_count\{http_request_method="GET",http_response_status_code="200",http_route="/\{\$\}",url_scheme="http"\} 4`).MatchString(metrics) {
			t.Error("the request metrics do not count the fast hits of / with the miss")
		}
	}
}
