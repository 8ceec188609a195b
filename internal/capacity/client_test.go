package capacity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A shop that sheds answers 503 or 429 with Retry-After: the caller waits
// as long as it asks, then gets the answer.
func TestCallerRetriesSheddingAnswers(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "2")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	c := newCaller(srv.Client())
	var waits []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	b, err := c.get(context.Background(), srv.URL)
	if err != nil || string(b) != "ok" {
		t.Fatalf("get: %q, %v", b, err)
	}
	if len(waits) != 2 || waits[0] != 2*time.Second || waits[1] != time.Second {
		t.Errorf("waited %v, want [2s 1s] as Retry-After asked", waits)
	}
}

// A shop that keeps refusing is reported once the waits reach the bound,
// not waited on for ever; other errors are not retried at all.
func TestCallerGivesUpWithinItsBound(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path == "/broken" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Retry-After", "4")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newCaller(srv.Client())
	c.maxWait = 10 * time.Second
	var waited time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { waited += d; return nil }
	_, err := c.get(context.Background(), srv.URL+"/busy")
	if !errors.Is(err, errRefused) {
		t.Fatalf("err %v, want errRefused", err)
	}
	if waited != 8*time.Second || n.Load() != 3 {
		t.Errorf("waited %s over %d requests, want 8s over 3 (a third wait would pass the 10s bound)", waited, n.Load())
	}
	n.Store(0)
	if _, err := c.get(context.Background(), srv.URL+"/broken"); err == nil || errors.Is(err, errRefused) || n.Load() != 1 {
		t.Errorf("500: err %v after %d requests, want a plain error after 1", err, n.Load())
	}
	// A cancelled context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.sleep = sleepCtx
	if _, err := c.get(ctx, srv.URL+"/busy"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3": 3 * time.Second, " 10 ": 10 * time.Second, "": time.Second, "0": time.Second, "-5": time.Second, "soon": time.Second,
		now.Add(7 * time.Second).Format(http.TimeFormat): 7 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):    time.Second,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
