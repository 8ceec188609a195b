package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDrop is a drop's API in miniature: the line opens at opens (and,
// with openAfterJoins, not before that many buyers joined), admits one
// buyer more every admitEvery in the order they joined, and sells units
// until none are left. Joins may need a proof of work and may be
// rate limited once per buyer, so every branch of the journey runs.
type fakeDrop struct {
	opens time.Time
	// openAfterJoins keeps the line closed until that many buyers joined,
	// so a test of the pre-queue does not depend on how fast a busy
	// machine gets its buyers through the rate limit and the proof of
	// work before opens.
	openAfterJoins int
	admitEvery     time.Duration
	pollAfter      float64
	pow            bool
	limitOnce      bool
	// failFirst answers the first checkout under each idempotency key
	// with a 502, as a load balancer does when the replica behind it died.
	failFirst bool
	// lostAdd answers each buyer's first add to cart 502 although the
	// item went into the cart, so the retry is over the limit (422).
	lostAdd bool

	mu       sync.Mutex
	openedAt time.Time // when the line opened; zero while closed
	units    int
	joined   map[string]int // visitor: place in line
	limited  map[string]bool
	keys     map[string]bool   // idempotency keys seen
	bodies   map[string]string // first checkout body per key
	joins    atomic.Int64
	visitors atomic.Int64
	bad      atomic.Int64 // requests the journey should not have made
	sold     atomic.Int64
}

func (f *fakeDrop) handler() http.Handler {
	mux := http.NewServeMux()
	visitor := func(w http.ResponseWriter, r *http.Request) string {
		if c, err := r.Cookie("v"); err == nil {
			return c.Value
		}
		v := strconv.FormatInt(f.visitors.Add(1), 10)
		http.SetCookie(w, &http.Cookie{Name: "v", Value: v, Path: "/"})
		return v
	}
	status := func(w http.ResponseWriter, v string) {
		f.mu.Lock()
		place, ok := f.joined[v]
		units := f.units
		if f.openedAt.IsZero() && !time.Now().Before(f.opens) && len(f.joined) >= f.openAfterJoins {
			f.openedAt = time.Now()
		}
		opened := f.openedAt
		f.mu.Unlock()
		st := map[string]any{"poll_after_seconds": f.pollAfter, "position": place + 1}
		switch {
		case !ok:
			f.bad.Add(1)
			http.Error(w, "join first", http.StatusBadRequest)
			return
		case units <= 0:
			st["state"] = "sold_out"
			st["poll_after_seconds"] = 0
		case opened.IsZero():
			st["state"] = "pre_queue"
			st["position"] = 0 // not drawn yet
		case time.Since(opened) >= time.Duration(place)*f.admitEvery:
			st["state"] = "admitted"
			http.SetCookie(w, &http.Cookie{Name: "access", Value: v, Path: "/"})
		default:
			st["state"] = "waiting"
		}
		json.NewEncoder(w).Encode(st)
	}
	mux.HandleFunc("POST /api/v1/drops/d1/queue/challenge", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"challenge":"ch-`+visitor(w, r)+`","difficulty":4}`)
	})
	mux.HandleFunc("POST /api/v1/drops/d1/queue/join", func(w http.ResponseWriter, r *http.Request) {
		v := visitor(w, r)
		var in struct{ PoW string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			f.bad.Add(1)
		}
		f.mu.Lock()
		limit := f.limitOnce && !f.limited[v]
		f.limited[v] = true
		f.mu.Unlock()
		switch {
		case limit:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		case f.pow && !strings.HasPrefix(in.PoW, "ch-"+v+":"):
			http.Error(w, "proof of work needed", http.StatusPreconditionRequired)
			return
		}
		f.mu.Lock()
		if _, ok := f.joined[v]; !ok {
			f.joined[v] = len(f.joined)
			f.joins.Add(1)
		}
		f.mu.Unlock()
		status(w, v)
	})
	mux.HandleFunc("GET /api/v1/drops/d1/queue", func(w http.ResponseWriter, r *http.Request) {
		status(w, visitor(w, r))
	})
	mux.HandleFunc("POST /api/v1/cart/items", func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("access"); err != nil {
			f.bad.Add(1)
			http.Error(w, "no access", http.StatusForbidden)
			return
		}
		var in struct {
			SKU      string
			Quantity int
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.SKU != "CC-42" || in.Quantity != 1 {
			f.bad.Add(1)
		}
		if f.lostAdd {
			v, _ := r.Cookie("v")
			f.mu.Lock()
			again := f.keys["add:"+v.Value]
			f.keys["add:"+v.Value] = true
			f.mu.Unlock()
			if !again {
				http.Error(w, "bad gateway", http.StatusBadGateway)
			} else {
				http.Error(w, "over the limit", http.StatusUnprocessableEntity)
			}
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("POST /api/v1/checkout", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			f.bad.Add(1)
		}
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		if f.failFirst && !f.keys[key] {
			f.keys[key] = true
			f.bodies[key] = string(body)
			f.mu.Unlock()
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		if prev, ok := f.bodies[key]; ok && prev != string(body) {
			// A retry must repeat the request, or the shop sees a
			// misused key.
			f.bad.Add(1)
		}
		ok := f.units > 0
		if ok {
			f.units--
		}
		f.mu.Unlock()
		if !ok {
			http.Error(w, "sold out", http.StatusConflict)
			return
		}
		f.sold.Add(1)
		w.WriteHeader(http.StatusCreated)
	})
	return mux
}

func newFakeDrop(units int) *fakeDrop {
	return &fakeDrop{units: units, joined: map[string]int{}, limited: map[string]bool{}, keys: map[string]bool{}, bodies: map[string]string{}, pollAfter: 1}
}

// TestDropJourney runs buyers through a drop that needs a proof of work
// and rate limits every buyer's first join: each buyer ends with a final
// answer, exactly the units on sale are bought, and the outcomes add up.
func TestDropJourney(t *testing.T) {
	const buyers, units = 60, 10
	f := newFakeDrop(units)
	f.pow, f.limitOnce = true, true
	f.opens, f.admitEvery = time.Now().Add(1500*time.Millisecond), 20*time.Millisecond
	// Every buyer is in the pre-queue: the line stays closed until all
	// have joined, however slowly they got there.
	f.openAfterJoins = buyers
	target := newTarget(t, f.handler())
	sc, err := DropScenario(DropOptions{ID: "d1", SKU: "CC-42"})
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := ParseArrivals("n=60,within=500ms")
	r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: plan, Duration: plan.Duration()})

	d := r.Drop
	if d == nil {
		t.Fatal("no drop result")
	}
	if d.Buyers != buyers || d.FinalAnswers != buyers || d.Unanswered() != 0 || r.Completed != buyers {
		t.Errorf("buyers %d, final answers %d, completed %d; want %d", d.Buyers, d.FinalAnswers, r.Completed, buyers)
	}
	if d.Bought != units || d.Units != units || f.sold.Load() != units || d.SoldOut != buyers-units || d.Errors != 0 {
		t.Errorf("bought %d (%d units), shop sold %d, sold out %d, errors %d; want %d bought", d.Bought, d.Units, f.sold.Load(), d.SoldOut, d.Errors, units)
	}
	if f.bad.Load() != 0 || r.Total.Errors != 0 {
		t.Errorf("%d bad requests, %d errors: %v", f.bad.Load(), r.Total.Errors, r.Total.Failures)
	}
	for _, want := range []struct {
		step   string
		status string
		n      int64
	}{{"join", "429", buyers}, {"join", "428", buyers}, {"join", "200", buyers}, {"challenge", "200", buyers},
		{"add", "201", units}, {"checkout", "201", units}} {
		st, _ := r.Step(want.step)
		if got := st.Statuses[want.status]; got < want.n {
			t.Errorf("%s answered %s %d times, want %d or more (%v)", want.step, want.status, got, want.n, st.Statuses)
		}
	}
	// Every buyer but the last (whose join opens the line) joins a closed
	// line and polls until it opens.
	if st, _ := r.Step("status"); st.Requests < buyers-1 {
		t.Errorf("%d status polls: want one at least from each buyer who waited for the line to open", st.Requests)
	}
	ths, _ := ParseThresholds([]string{"unanswered<1", "errors<1%"})
	if !Evaluate(r, ths) {
		t.Errorf("thresholds: %v", r.Thresholds)
	}

	// Every buyer joined before the line opened, and learnt its place
	// once it had; this line hands places out in join order, which the
	// fairness report must call what it is.
	pre, placed := 0, 0
	for _, p := range d.Places {
		if p.Position > 0 {
			placed++
			if p.PreQueue {
				pre++
			}
		}
	}
	// The last buyer's join opens the line, unless opens is still ahead:
	// it alone may not be in the pre-queue.
	if len(d.Places) != buyers || placed != buyers || pre < buyers-1 {
		t.Errorf("%d places, %d with a place, %d of them from the pre-queue; want %d, all, all but the last at most", len(d.Places), placed, pre, buyers)
	}
	d.ComputeFairness()
	if f := d.Fairness; f == nil || f.DrawRho < 0.9 || f.DrawFair() {
		t.Errorf("a line in join order: fairness %+v", f)
	}
	if d.FirstAdmitS < 1.4 || d.LastSaleS < d.FirstAdmitS || d.FirstSoldOutS < d.FirstAdmitS {
		t.Errorf("first admitted %vs, last sale %vs, first sold out %vs: want all after the line opened at 1.5s",
			d.FirstAdmitS, d.LastSaleS, d.FirstSoldOutS)
	}
}

// TestDropBuyersRetryFailedSteps: a checkout answered 502 is sent again
// with the same idempotency key, and an add to cart whose 502 hid a
// success goes on to checkout when its retry is over the limit, so every
// buyer still ends bought or sold out, with no buyer counted as an error.
func TestDropBuyersRetryFailedSteps(t *testing.T) {
	const buyers, units = 40, 10
	f := newFakeDrop(units)
	f.failFirst, f.lostAdd = true, true
	f.opens, f.admitEvery = time.Now(), 5*time.Millisecond
	target := newTarget(t, f.handler())
	sc, err := DropScenario(DropOptions{ID: "d1", SKU: "CC-42"})
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := ParseArrivals("n=40,within=200ms")
	r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: plan, Duration: plan.Duration()})
	d := r.Drop
	if d == nil {
		t.Fatal("no drop result")
	}
	if d.FinalAnswers != buyers || d.Errors != 0 || d.Bought != units || f.sold.Load() != units || f.bad.Load() != 0 {
		t.Errorf("%+v; shop sold %d, %d bad requests; want %d final answers, %d bought, no errors", *d, f.sold.Load(), f.bad.Load(), buyers, units)
	}
	st, _ := r.Step("checkout")
	// Every buyer's first checkout failed; a retry with a new key would
	// have failed again and ended in an error.
	if st.Statuses["502"] != buyers {
		t.Errorf("checkout answered 502 %d times, want %d (%v)", st.Statuses["502"], buyers, st.Statuses)
	}
}

// TestDropBuyersWaitCheaply: buyers in line hold neither a goroutine nor
// much memory while they wait for their next poll, so 100,000 of them fit
// easily in one generator. (With 100,000 buyers this measures about 850
// bytes of heap each, the fake shop's share included.)
func TestDropBuyersWaitCheaply(t *testing.T) {
	const buyers = 1500
	f := newFakeDrop(1)
	f.opens, f.pollAfter = time.Now().Add(time.Hour), 3600
	target := newTarget(t, f.handler())
	sc, _ := DropScenario(DropOptions{ID: "d1", SKU: "CC-42"})
	plan, _ := ParseArrivals(fmt.Sprintf("n=%d,within=1s", buyers))

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Result)
	go func() {
		// A few connections, as a generator has next to a line of
		// thousands: idle connections are not the buyers' cost.
		r, _ := Run(ctx, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: plan, Duration: plan.Duration(), Connections: 32})
		done <- r
	}()
	for deadline := time.Now().Add(60 * time.Second); f.joins.Load() < buyers; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d buyers joined within 60s", f.joins.Load(), buyers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let the last answers arrive and their goroutines end.
	var busy int
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		if busy = runtime.NumGoroutine() - goroutines; busy < buyers/10 {
			break
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	cancel()
	r := <-done
	perBuyer := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / buyers
	t.Logf("%d buyers waiting: %d more goroutines, %d bytes of heap each (generator and fake shop together)", buyers, busy, perBuyer)
	if busy >= buyers/10 {
		t.Errorf("%d goroutines for %d waiting buyers", busy, buyers)
	}
	if perBuyer > 8<<10 {
		t.Errorf("%d bytes per waiting buyer; 100,000 would need %d MiB", perBuyer, perBuyer*100000>>20)
	}
	if r == nil || r.Drop == nil || r.Drop.Buyers != buyers || r.Drop.Unfinished != buyers {
		t.Errorf("result: %+v", r)
	}
}

func TestParseSourceIPs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                         nil,
		"127.0.0.2":                {"127.0.0.2"},
		"127.0.0.1-127.0.0.3, ::1": {"127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"},
		"127.0.1.0/30":             {"127.0.1.1", "127.0.1.2"},
		"127.0.1.7/31":             {"127.0.1.6", "127.0.1.7"},
		"fd00::/127":               {"fd00::", "fd00::1"},
		"127.0.0.250-127.0.1.1":    {"127.0.0.250", "127.0.0.251", "127.0.0.252", "127.0.0.253", "127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"},
		"127.0.0.9,127.0.0.9/32":   {"127.0.0.9", "127.0.0.9"},
	} {
		got, err := ParseSourceIPs(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if fmt.Sprint(s) != fmt.Sprint(want) {
			t.Errorf("%q: %v, want %v", in, s, want)
		}
	}
	for _, bad := range []string{"x", "127.0.0.3-127.0.0.1", "127.0.0.1-::1", "10.0.0.0/8", "1.2.3.4/33"} {
		if _, err := ParseSourceIPs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestSourceAddrs: sessions take the source addresses in turn.
func TestSourceAddrs(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.RemoteAddr, ":")
		mu.Lock()
		seen[host]++
		mu.Unlock()
	}))
	addrs, _ := ParseSourceIPs("127.0.0.1-127.0.0.4")
	plan, _ := ParseArrivals("n=40,within=200ms")
	r := mustRun(t, Config{Target: target, Mix: getMix(), Plan: plan, Duration: plan.Duration(), SourceAddrs: addrs})
	if r.Total.Errors != 0 || len(seen) != 4 {
		t.Errorf("errors %v; requests came from %v, want 4 addresses", r.Total.Failures, seen)
	}
	for _, a := range addrs {
		if seen[a.String()] != 10 {
			t.Errorf("%s sent %d requests, want 10", a, seen[a.String()])
		}
	}
}
