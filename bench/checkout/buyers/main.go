// Command buyers is the load generator of the checkout benchmark
// (bench/checkout/run). It drives a running surge through its public JSON
// API with -buyers concurrent guest buyers. Each buyer loops: a fresh guest
// session (no cookie), POST /api/v1/cart/items {"sku": -sku, "quantity": 1},
// which starts the session and sets its cookie, then POST /api/v1/checkout
// with that cookie and a unique Idempotency-Key. A 201 is a checkout, a 409
// a sold-out answer; anything else counts as an error by status. With
// -spread N the checkouts are spread over N SKUs, -sku-0000 to -sku-(N-1),
// each buyer taking the next in turn (bench/hotsku/run).
//
// It runs -warmup (not measured) and then -duration (measured); a buyer
// starts no new cycle after the end of a phase, and the phase's rate is its
// checkouts divided by the wall time until its last response.
//
// Then it asserts zero oversell through the admin API (GET
// /api/v1/admin/products/-slug with the bearer -token): reserved + sold of
// the SKU must equal the 201s of both phases and stay within on_hand. It
// reports how far the order workers (payment capture, stock commit) had got
// when the load stopped, and waits up to -settle for every order to be paid
// (reserved back to 0, sold equal to the checkouts).
//
// The last line is machine-readable:
//
//	checkouts=N seconds=S checkouts_per_s=R p50_ms=X p99_ms=Y errors=N orders=T oversell=0|1 settled=true|false
//
// where the first six are of the measured phase and T counts the 201s of
// both phases.
//
// It exits 1 if the stock ledger is wrong (oversell, or units missing).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// phase is what one run of the buyers measured.
type phase struct {
	cycles, checkouts, soldOut, errs int64
	status                           map[int]int64 // non-201/409 statuses of either request; 0 = transport error
	cartLat, checkoutLat             []time.Duration
	seconds                          float64
	firstErr                         string
}

func (p *phase) merge(q *phase) {
	p.cycles += q.cycles
	p.checkouts += q.checkouts
	p.soldOut += q.soldOut
	p.errs += q.errs
	for k, v := range q.status {
		p.status[k] += v
	}
	p.cartLat = append(p.cartLat, q.cartLat...)
	p.checkoutLat = append(p.checkoutLat, q.checkoutLat...)
	if p.firstErr == "" {
		p.firstErr = q.firstErr
	}
}

// variant is the part of the admin product that the ledger check reads.
type variant struct {
	SKU      string `json:"sku"`
	OnHand   int64  `json:"on_hand"`
	Reserved int64  `json:"reserved"`
	Sold     int64  `json:"sold"`
}

type loadGen struct {
	base     string
	skus     []string // bought in turn; the ledger sums their variants
	slugs    []string // products holding skus, for the ledger
	client   *http.Client
	cartBody [][]byte // one per SKU
	buyBody  []byte
}

func main() {
	base := flag.String("base", "", "shop base URL, e.g. http://127.0.0.1:8080")
	token := flag.String("token", "", "admin bearer token, for the ledger check")
	slug := flag.String("slug", "hot", "product slug, for the ledger check; with -spread, the comma-separated products holding the SKUs")
	sku := flag.String("sku", "HOT-1", "SKU every buyer buys; with -spread, the prefix of the SKUs")
	spread := flag.Int("spread", 0, "spread the checkouts over this many SKUs, SKU-0000, SKU-0001, ... (0: all on -sku)")
	buyers := flag.Int("buyers", 64, "concurrent buyers")
	duration := flag.Duration("duration", 20*time.Second, "measured time")
	warmup := flag.Duration("warmup", 3*time.Second, "unmeasured time before it")
	settle := flag.Duration("settle", 60*time.Second, "how long to wait for the workers to pay every order")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("buyers: ")
	if *base == "" || *buyers < 1 || *duration <= 0 || *spread < 0 || *spread > 10000 {
		log.Fatal("need -base, -buyers and -duration above zero, and -spread from 0 to 10000")
	}
	skus := []string{*sku}
	if *spread > 0 {
		skus = skus[:0]
		for i := range *spread {
			skus = append(skus, fmt.Sprintf("%s-%04d", *sku, i))
		}
	}
	g := &loadGen{
		base:  strings.TrimRight(*base, "/"),
		skus:  skus,
		slugs: strings.Split(*slug, ","),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: *buyers + 8, MaxIdleConnsPerHost: *buyers + 8, DisableCompression: true}},
		buyBody: []byte(`{"email":"buyer@example.com","shipping_address":{"name":"Bench Buyer","line1":"1 Main St",` +
			`"city":"Springfield","postal_code":"12345","country":"US"},"payment":{"card_number":"4242424242424242"}}`),
	}
	for _, s := range skus {
		g.cartBody = append(g.cartBody, fmt.Appendf(nil, `{"sku":%q,"quantity":1}`, s))
	}
	ledger := func() variant {
		v, err := g.variant(*token)
		if err != nil {
			log.Fatal(err)
		}
		return v
	}
	before := ledger()
	what := *sku
	if *spread > 0 {
		what = fmt.Sprintf("%d SKUs %s-0000..%s-%04d", *spread, *sku, *sku, *spread-1)
	}
	fmt.Printf("  before: %s on_hand %d reserved %d sold %d\n", what, before.OnHand, before.Reserved, before.Sold)

	var total int64
	if *warmup > 0 {
		w := g.run(*buyers, *warmup, "w")
		total += w.checkouts
		report("warm-up", w)
	}
	cpu0 := cpuSeconds()
	m := g.run(*buyers, *duration, "m")
	cpu1 := cpuSeconds()
	total += m.checkouts
	report("measured", m)
	fmt.Printf("  load generator CPU: %.2f s over %.2f s wall (%.0f%% of one core, %.0f us per cycle)\n",
		cpu1-cpu0, m.seconds, 100*(cpu1-cpu0)/m.seconds, 1e6*(cpu1-cpu0)/float64(max(m.cycles, 1)))

	// Zero oversell: every acknowledged checkout holds exactly one unit,
	// reserved or (once paid) sold, and nothing beyond on_hand.
	atEnd := ledger()
	held := atEnd.Reserved + atEnd.Sold - before.Reserved - before.Sold
	fmt.Printf("  at end of load: reserved %d sold %d; the workers had paid %.1f%% of the %d orders\n",
		atEnd.Reserved, atEnd.Sold, pct(atEnd.Sold-before.Sold, total), total)
	sound := held == total && atEnd.Reserved+atEnd.Sold <= atEnd.OnHand && atEnd.Reserved >= 0
	settled := false
	start := time.Now()
	v := atEnd
	for sound && time.Since(start) < *settle {
		if v.Reserved == before.Reserved && v.Sold-before.Sold == total {
			settled = true
			break
		}
		time.Sleep(250 * time.Millisecond)
		v = ledger()
		sound = v.Reserved+v.Sold-before.Reserved-before.Sold == total && v.Reserved+v.Sold <= v.OnHand
	}
	if settled {
		fmt.Printf("  all %d orders paid and stock committed %.1f s after the load stopped\n", total, time.Since(start).Seconds())
	} else if sound {
		fmt.Printf("  after %.0f s: reserved %d sold %d; %d orders still unpaid\n", settle.Seconds(), v.Reserved, v.Sold, v.Reserved-before.Reserved)
	}
	oversell := 0
	if !sound {
		oversell = 1
		fmt.Printf("  LEDGER WRONG: %d checkouts acknowledged (201), but reserved %d + sold %d (before: %d + %d), on_hand %d\n",
			total, v.Reserved, v.Sold, before.Reserved, before.Sold, v.OnHand)
	} else {
		fmt.Printf("  zero oversell: reserved + sold = %d = checkouts acknowledged (201), within on_hand %d\n", total, v.OnHand)
	}
	fmt.Printf("checkouts=%d seconds=%.2f checkouts_per_s=%.1f p50_ms=%.1f p99_ms=%.1f errors=%d orders=%d oversell=%d settled=%t\n",
		m.checkouts, m.seconds, float64(m.checkouts)/m.seconds, ms(quantile(m.checkoutLat, 0.50)), ms(quantile(m.checkoutLat, 0.99)),
		m.errs, total, oversell, settled)
	if !sound {
		os.Exit(1)
	}
}

// run drives n buyers for d and returns the merged tally.
func (g *loadGen) run(n int, d time.Duration, tag string) *phase {
	start := time.Now()
	deadline := start.Add(d)
	parts := make([]*phase, n)
	var wg sync.WaitGroup
	for b := range n {
		p := &phase{status: map[int]int64{}}
		parts[b] = p
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				g.cycle(p, fmt.Sprintf("bench-%s-%d-%d-%d", tag, start.UnixNano(), b, seq), g.cartBody[(b+seq*n)%len(g.cartBody)])
			}
		})
	}
	wg.Wait()
	out := &phase{status: map[int]int64{}, seconds: time.Since(start).Seconds()}
	for _, p := range parts {
		out.merge(p)
	}
	return out
}

// cycle is one buyer's visit: add to a new guest cart, then check out.
func (g *loadGen) cycle(p *phase, key string, cartBody []byte) {
	p.cycles++
	t0 := time.Now()
	resp, err := g.post("/api/v1/cart/items", cartBody, nil)
	if err != nil {
		p.fail(0, err.Error())
		return
	}
	p.cartLat = append(p.cartLat, time.Since(t0))
	if resp.code != http.StatusCreated {
		p.fail(resp.code, "cart: "+resp.body)
		return
	}
	var cookies []string
	for _, c := range resp.cookies {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if len(cookies) == 0 {
		p.fail(-1, "cart: no session cookie")
		return
	}
	t1 := time.Now()
	resp, err = g.post("/api/v1/checkout", g.buyBody, map[string]string{
		"Cookie": strings.Join(cookies, "; "), "Idempotency-Key": key})
	if err != nil {
		p.fail(0, err.Error())
		return
	}
	p.checkoutLat = append(p.checkoutLat, time.Since(t1))
	switch {
	case resp.code == http.StatusCreated && !resp.replayed:
		p.checkouts++
	case resp.code == http.StatusConflict:
		p.soldOut++
	case resp.code == http.StatusCreated:
		p.fail(-2, "checkout replayed a fresh key")
	default:
		p.fail(resp.code, "checkout: "+resp.body)
	}
}

func (p *phase) fail(code int, msg string) {
	p.errs++
	p.status[code]++
	if p.firstErr == "" {
		p.firstErr = fmt.Sprintf("%d %s", code, strings.TrimSpace(msg))
	}
}

type response struct {
	code     int
	replayed bool
	cookies  []*http.Cookie
	body     string // only when the status is unexpected
}

func (g *loadGen) post(path string, body []byte, headers map[string]string) (response, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, g.base+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	out := response{code: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") != "", cookies: resp.Cookies()}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		out.body = string(b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return out, err
}

// variant reads the stock counters of the bought SKUs from the admin API,
// summed over them all.
func (g *loadGen) variant(token string) (variant, error) {
	want := map[string]bool{}
	for _, s := range g.skus {
		want[s] = true
	}
	var sum variant
	found := 0
	for _, slug := range g.slugs {
		req, err := http.NewRequest(http.MethodGet, g.base+"/api/v1/admin/products/"+slug, nil)
		if err != nil {
			return variant{}, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := g.client.Do(req)
		if err != nil {
			return variant{}, err
		}
		var p struct {
			Variants []variant `json:"variants"`
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			return variant{}, fmt.Errorf("admin product %s: %s: %s", slug, resp.Status, b)
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil {
			return variant{}, fmt.Errorf("admin product %s: %w", slug, err)
		}
		for _, v := range p.Variants {
			if want[v.SKU] {
				found++
				sum.OnHand += v.OnHand
				sum.Reserved += v.Reserved
				sum.Sold += v.Sold
			}
		}
	}
	if found != len(want) {
		return variant{}, fmt.Errorf("products %s hold %d of the %d SKUs bought", strings.Join(g.slugs, ","), found, len(want))
	}
	return sum, nil
}

func report(label string, p *phase) {
	fmt.Printf("  %-8s %6.1f s: %d cycles, %d checkouts (%.0f/s), %d sold out, %d errors; cart p50 %.1f ms p99 %.1f ms; checkout p50 %.1f ms p99 %.1f ms\n",
		label, p.seconds, p.cycles, p.checkouts, float64(p.checkouts)/p.seconds, p.soldOut, p.errs,
		ms(quantile(p.cartLat, 0.5)), ms(quantile(p.cartLat, 0.99)), ms(quantile(p.checkoutLat, 0.5)), ms(quantile(p.checkoutLat, 0.99)))
	if p.errs > 0 {
		var codes []int
		for c := range p.status {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		var parts []string
		for _, c := range codes {
			name := fmt.Sprint(c)
			switch c {
			case 0:
				name = "transport"
			case -1:
				name = "no-cookie"
			case -2:
				name = "replayed"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", name, p.status[c]))
		}
		fmt.Printf("           errors by status: %s; first: %.200s\n", strings.Join(parts, ", "), p.firstErr)
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(a, b int64) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

// cpuSeconds is the user+system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
