package admission

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func mustAdmission(tb testing.TB, cfg Config) *Admission {
	tb.Helper()
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })

// sleepHandler simulates work of d; inside a synctest bubble the time is
// the bubble's.
func sleepHandler(d time.Duration, calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls != nil {
			calls.Add(1)
		}
		time.Sleep(d)
		_, _ = io.WriteString(w, "ok")
	})
}

func TestRequestThatCannotMeetItsDeadlineIsDroppedNotServedLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bg sync.WaitGroup
		defer bg.Wait()
		a := mustAdmission(t, Config{Limit: fixedLimit(1),
			Deadlines: [NumClasses]time.Duration{Browse: time.Second, Critical: 10 * time.Second}})
		var calls atomic.Int64
		// One request teaches the limiter that a request takes 500ms.
		rec := httptest.NewRecorder()
		a.Wrap(Browse, sleepHandler(500*time.Millisecond, nil)).ServeHTTP(rec, httptest.NewRequest("GET", "/products/a", nil))
		if rec.Code != 200 {
			t.Fatalf("warm-up: %d", rec.Code)
		}
		// A long checkout holds the only slot for 3s.
		bg.Go(func() {
			a.Wrap(Critical, sleepHandler(3*time.Second, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/v1/checkout", nil))
		})
		synctest.Wait()

		// A browse request with a 1s budget could start no later than 0.5s
		// in; past that it could only be served late, so it is dropped then.
		start := time.Now()
		rec = httptest.NewRecorder()
		a.Wrap(Browse, sleepHandler(500*time.Millisecond, &calls)).ServeHTTP(rec, httptest.NewRequest("GET", "/products/b", nil))
		took := time.Since(start)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
		if calls.Load() != 0 {
			t.Fatal("the handler ran for a request that could not meet its deadline")
		}
		if took != 500*time.Millisecond {
			t.Fatalf("dropped after %v, want at 500ms: the last moment it could still have made its 1s deadline", took)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Error("no Retry-After on the 503")
		}

		// Arriving when the expected service time exceeds the whole budget,
		// it is refused at once.
		a2 := mustAdmission(t, Config{Limit: fixedLimit(1), Deadlines: [NumClasses]time.Duration{Browse: 300 * time.Millisecond}})
		a2.Wrap(Critical, sleepHandler(500*time.Millisecond, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		bg.Go(func() {
			a2.Wrap(Critical, sleepHandler(time.Second, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		})
		synctest.Wait()
		start = time.Now()
		rec = httptest.NewRecorder()
		a2.Wrap(Browse, sleepHandler(time.Millisecond, &calls)).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != http.StatusServiceUnavailable || time.Since(start) != 0 || calls.Load() != 0 {
			t.Fatalf("hopeless request: status %d after %v, handler calls %d; want an immediate 503", rec.Code, time.Since(start), calls.Load())
		}
	})
}

func TestHandlerSeesTheClassDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := mustAdmission(t, Config{Deadlines: [NumClasses]time.Duration{High: 5 * time.Second}})
		var left time.Duration
		h := a.Wrap(High, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dl, ok := r.Context().Deadline()
			if !ok {
				t.Error("no deadline on the request context")
			}
			left = time.Until(dl)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/cart", nil))
		if left != 5*time.Second {
			t.Fatalf("deadline %v ahead, want 5s", left)
		}
	})
}

func TestShedResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bg sync.WaitGroup
		defer bg.Wait()
		a := mustAdmission(t, Config{Limit: fixedLimit(1), ShopName: "Bikes & Co",
			Deadlines: [NumClasses]time.Duration{Background: 10 * time.Millisecond}})
		bg.Go(func() {
			a.Wrap(Critical, sleepHandler(time.Second, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		})
		synctest.Wait()
		h := a.Wrap(Background, okHandler)
		for _, tc := range []struct {
			method, path, accept, wantType, wantIn string
		}{
			{"GET", "/api/v1/products", "", "application/problem+json", `"status":503`},
			{"GET", "/search", "text/html,application/xhtml+xml", "text/html; charset=utf-8", "Bikes &amp; Co"},
			{"GET", "/search", "application/json", "application/problem+json", `"title":"Service Unavailable"`},
			{"HEAD", "/search", "", "text/html; charset=utf-8", ""},
		} {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 503 || res.Header.Get("Content-Type") != tc.wantType || res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: %d %q %q", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
			}
			if ra := res.Header.Get("Retry-After"); ra != "1" && ra != "2" {
				t.Errorf("%s %s: Retry-After %q, want 1 or 2", tc.method, tc.path, ra)
			}
			if !strings.Contains(string(body), tc.wantIn) || (tc.method == "HEAD" && len(body) != 0) {
				t.Errorf("%s %s: body %q, want it to contain %q", tc.method, tc.path, body, tc.wantIn)
			}
			if strings.HasPrefix(tc.wantType, "application/problem") {
				var p struct{ Status int }
				if err := json.Unmarshal(body, &p); err != nil || p.Status != 503 {
					t.Errorf("problem body %q: %v", body, err)
				}
			}
		}
	})
}

func TestCheapRequestsAreServedWhileShedding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bg sync.WaitGroup
		defer bg.Wait()
		a := mustAdmission(t, Config{Limit: fixedLimit(1),
			Deadlines: [NumClasses]time.Duration{Browse: 10 * time.Millisecond},
			Cheap:     func(r *http.Request) bool { return r.URL.Path == "/cached" }})
		bg.Go(func() {
			a.Wrap(Critical, sleepHandler(time.Second, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		})
		synctest.Wait()
		for path, want := range map[string]int{"/cached": 200, "/uncached": 503} {
			rec := httptest.NewRecorder()
			a.Wrap(Browse, okHandler).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != want {
				t.Errorf("%s while saturated: %d, want %d", path, rec.Code, want)
			}
		}
	})
}

func TestBodyLimit(t *testing.T) {
	a := mustAdmission(t, Config{MaxBodyBytes: 10})
	var readErr error
	h := a.Wrap(Critical, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/checkout", strings.NewReader(strings.Repeat("x", 11))))
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("declared oversized body: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	// A body that does not declare its length fails on read instead.
	r := httptest.NewRequest("POST", "/api/v1/checkout", io.NopCloser(strings.NewReader(strings.Repeat("x", 11))))
	r.ContentLength = -1
	h.ServeHTTP(httptest.NewRecorder(), r)
	var tooBig *http.MaxBytesError
	if !errors.As(readErr, &tooBig) {
		t.Fatalf("reading an undeclared oversized body: %v, want *http.MaxBytesError", readErr)
	}
}

func TestRateLimitedClientGets429(t *testing.T) {
	clk := newFakeClock()
	a := mustAdmission(t, Config{Now: clk.Now, PerClient: Rate{PerSecond: 1, Burst: 2}, PerSession: Rate{PerSecond: 1, Burst: 1}})
	h := a.Wrap(Browse, okHandler)
	get := func(remote, session string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/products", nil)
		r.RemoteAddr = remote
		if session != "" {
			r.AddCookie(&http.Cookie{Name: "surge_session", Value: session})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for i, want := range []int{200, 200, 429} {
		if rec := get("192.0.2.1:1000", ""); rec.Code != want {
			t.Fatalf("request %d from one address: %d, want %d", i, rec.Code, want)
		}
	}
	rec := get("192.0.2.1:1000", "")
	if rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("429 headers: %v", rec.Header())
	}
	if rec := get("192.0.2.2:1000", ""); rec.Code != 200 {
		t.Fatalf("another address is limited too: %d", rec.Code)
	}
	// The session bucket applies on top of a fresh address bucket.
	if rec := get("192.0.2.3:1000", "abc"); rec.Code != 200 {
		t.Fatalf("first session request: %d", rec.Code)
	}
	if rec := get("192.0.2.4:1000", "abc"); rec.Code != 429 {
		t.Fatalf("second request of the session from another address: %d, want 429", rec.Code)
	}
	clk.Advance(time.Second)
	if rec := get("192.0.2.1:1000", ""); rec.Code != 200 {
		t.Fatalf("after a second the bucket has a token again: %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bg sync.WaitGroup
		defer bg.Wait()
		a := mustAdmission(t, Config{Limit: fixedLimit(1), Deadlines: [NumClasses]time.Duration{Browse: 10 * time.Millisecond}})
		reg := prometheus.NewRegistry()
		if err := a.Register(reg); err != nil {
			t.Fatal(err)
		}
		bg.Go(func() {
			a.Wrap(Critical, sleepHandler(time.Second, nil)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		})
		synctest.Wait()
		a.Wrap(Browse, okHandler).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			got[mf.GetName()] = mf
		}
		for _, name := range []string{"surge_admission_in_flight", "surge_admission_limit", "surge_admission_queue_wait_seconds",
			"surge_admission_shed_total", "surge_admission_rate_limited_total", "surge_admission_queued", "surge_admission_cheap_total"} {
			if got[name] == nil {
				t.Errorf("metric %s not registered", name)
			}
		}
		if v := got["surge_admission_in_flight"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
			t.Errorf("in flight = %v, want 1", v)
		}
		shed := 0.0
		for _, m := range got["surge_admission_shed_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["class"] == "browse" && labels["reason"] == "deadline" {
				shed = m.GetCounter().GetValue()
			}
		}
		if shed != 1 {
			t.Errorf("shed{class=browse,reason=deadline} = %v, want 1", shed)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{RetryAfter: 100 * time.Millisecond},
		{PerClient: Rate{PerSecond: -1}},
		{Deadlines: [NumClasses]time.Duration{Browse: -time.Second}},
		{Limit: LimitConfig{Floor: 5, Ceiling: 2}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestClassString(t *testing.T) {
	for c := range Class(NumClasses) {
		got, err := ParseClass(c.String())
		if err != nil || got != c {
			t.Errorf("ParseClass(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseClass("urgent"); err == nil {
		t.Error("ParseClass accepted an unknown class")
	}
	if s := Class(9).String(); s != "class(9)" {
		t.Errorf("Class(9).String() = %q", s)
	}
}
