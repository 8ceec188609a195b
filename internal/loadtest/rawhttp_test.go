package loadtest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRawClient drives the lean client (used with --connections) through
// the response shapes a server may send, and checks it never opens more
// connections than allowed.
func TestRawClient(t *testing.T) {
	var hits atomic.Int64
	var mu sync.Mutex
	remotes := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "12345") })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "abc")
		w.(http.Flusher).Flush()
		io.WriteString(w, strings.Repeat("x", 10000))
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/missing", http.NotFound)
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		remotes[r.RemoteAddr] = true
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	tests := []struct {
		yaml      string
		status    string
		bytesEach int64
		failure   string
	}{
		{"steps: [{url: /length}]", "200", 5, ""},
		{"steps: [{url: /chunked}]", "200", 10003, ""},
		{"steps: [{url: /empty}]", "204", 0, ""},
		{"steps: [{url: /close}]", "200", 3, ""},
		{"steps: [{url: /length, method: HEAD}]", "200", 0, ""},
		{"steps: [{url: /missing}]", "404", 19, "status 404"},
	}
	for _, tt := range tests {
		hits.Store(0)
		mu.Lock()
		clear(remotes)
		mu.Unlock()
		sc, err := ParseScenario("t.yaml", []byte("cookies: false\n"+tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, VUs: 4, Connections: 2, Duration: 200 * time.Millisecond})
		if r.Total.Requests == 0 || r.Total.Requests != hits.Load() || r.Total.Statuses[tt.status] != r.Total.Requests {
			t.Errorf("%s: %d requests, server saw %d, statuses %v", tt.yaml, r.Total.Requests, hits.Load(), r.Total.Statuses)
		}
		if r.Total.Bytes != tt.bytesEach*r.Total.Requests {
			t.Errorf("%s: %d bytes for %d requests, want %d each", tt.yaml, r.Total.Bytes, r.Total.Requests, tt.bytesEach)
		}
		if tt.failure != "" && r.Total.Failures[tt.failure] != r.Total.Requests || tt.failure == "" && r.Total.Errors != 0 {
			t.Errorf("%s: failures %v", tt.yaml, r.Total.Failures)
		}
		mu.Lock()
		if n := len(remotes); tt.yaml != "steps: [{url: /close}]" && n > 2 {
			t.Errorf("%s: %d connections, cap 2", tt.yaml, n)
		}
		mu.Unlock()
	}
}

// TestRawClientInterrupted: a target that never answers; when the grace
// period ends the in-flight requests are cut and counted as interrupted.
func TestRawClientInterrupted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // read requests, never answer
		}
	}()
	target := newTarget(t, http.NotFoundHandler())
	target.Host = ln.Addr().String()
	start := time.Now()
	r := mustRun(t, Config{Target: target, Mix: getMix(), VUs: 3, Connections: 3, Duration: 100 * time.Millisecond,
		Grace: 200 * time.Millisecond, Timeout: 10 * time.Second})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("run took %v: the grace period did not cut the requests", took)
	}
	if r.Total.Requests != 3 || r.Total.Failures[interruptMsg] != 3 {
		t.Errorf("%d requests, failures %v; want 3 interrupted", r.Total.Requests, r.Total.Failures)
	}
}
