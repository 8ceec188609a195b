// Command check judges one rung of the drop benchmark (bench/drop/run):
// N buyers of `surge load run --journey drop` against a drop on a running
// surge. It reads the load test's result (-result, the JSON of --out),
// the drop and its SKU through the admin API, and the shop's metrics, and
// prints what happened and whether the rung passed.
//
// A rung passes when all of these hold:
//
//   - every one of the -n planned buyers started (none dropped by the
//     generator) and got a final answer (bought, sold out, closed, expired
//     or over the limit): the threshold unanswered<1;
//   - no request failed: no 5xx, no transport error (timeout, refused or
//     reset connection), no unreadable answer; every threshold of the run
//     held;
//   - the generator kept to the schedule: no request was sent more than
//     -max-lag after its intended time, so the arrivals really came
//     within their window;
//   - zero oversell: the drop's available units are not negative; the
//     SKU's reserved + sold is within on_hand and equals the units of the
//     buyers' 201 checkouts, which are within the drop's allocation;
//   - the order workers settle: within -settle, sold equals those units
//     and nothing is left reserved.
//
// The last line is machine-readable:
//
//	pass=true|false buyers=N answered=N bought=N units=N sold_out=N errors=N unfinished=N http5xx=N transport=N oversell=0|1 settled=true|false late_ms=L reasons=a,b
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
)

// variant is the part of the admin product the ledger check reads.
type variant struct {
	SKU      string `json:"sku"`
	OnHand   int64  `json:"on_hand"`
	Reserved int64  `json:"reserved"`
	Sold     int64  `json:"sold"`
}

// dropView is the part of the admin drop the ledger check reads.
type dropView struct {
	State     string `json:"state"`
	Available int64  `json:"available"`
	Items     []struct {
		SKU       string `json:"sku"`
		Allocated int64  `json:"allocated"`
	} `json:"items"`
}

type admin struct {
	base, token string
	client      *http.Client
}

func (a admin) get(path string, out any) error {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (a admin) variant(slug, sku string) (variant, error) {
	var p struct {
		Variants []variant `json:"variants"`
	}
	if err := a.get("/api/v1/admin/products/"+slug, &p); err != nil {
		return variant{}, err
	}
	for _, v := range p.Variants {
		if v.SKU == sku {
			return v, nil
		}
	}
	return variant{}, fmt.Errorf("product %s has no variant %s", slug, sku)
}

func main() {
	base := flag.String("base", "", "shop base URL (the admin API is under it)")
	adminURL := flag.String("admin", "", "admin listener base URL, for /metrics (optional)")
	token := flag.String("token", "", "admin bearer token")
	dropID := flag.String("drop", "", "drop ID")
	slug := flag.String("slug", "", "product slug of the drop's SKU")
	sku := flag.String("sku", "", "the drop's SKU")
	resultPath := flag.String("result", "", "result JSON of surge load run (--out)")
	n := flag.Int64("n", 0, "buyers planned")
	settle := flag.Duration("settle", 60*time.Second, "how long to wait for the order workers to pay every order")
	maxLag := flag.Duration("max-lag", 5*time.Second, "largest generator send lag (actual minus intended send time) allowed")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("check: ")
	if *base == "" || *token == "" || *dropID == "" || *slug == "" || *sku == "" || *resultPath == "" || *n < 1 {
		log.Fatal("need -base, -token, -drop, -slug, -sku, -result and -n")
	}
	a := admin{base: strings.TrimRight(*base, "/"), token: *token, client: &http.Client{Timeout: 30 * time.Second}}
	var reasons []string
	fail := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }

	// --- the load test's own account --------------------------------------
	var r loadtest.Result
	b, err := os.ReadFile(*resultPath)
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil || r.Total == nil {
		log.Fatalf("result %s: %v", *resultPath, err)
	}
	d := r.Drop
	if d == nil {
		d = &loadtest.DropResult{}
		fail("no drop outcomes in the result")
	}
	fmt.Printf("  generator: %d of %d buyers started, %d arrivals never sent; %.1f s until the last answer;"+
		" in flight at most %d (cap %d, reached %d times)\n",
		r.Sessions, *n, r.Dropped, r.Elapsed, r.PeakFlight, r.MaxInFlight, r.CapHits)
	fmt.Printf("  send lag (actual minus intended send time): p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		r.SendLag.P50, r.SendLag.P99, r.SendLag.Max)
	if r.Resent > 0 {
		fmt.Printf("  resent %d requests whose kept-alive connection surge had closed before answering (as browsers do)\n", r.Resent)
	}
	for _, st := range r.Steps {
		if st.Requests == 0 {
			continue
		}
		fmt.Printf("  %-9s %8d requests %7d errors   p50 %8s  p99 %8s  max %8s   %s\n", st.Name, st.Requests, st.Errors,
			msText(st.Latency.P50), msText(st.Latency.P99), msText(st.Latency.Max), counts(st.Statuses))
	}
	fmt.Printf("  buyers: %d, final answers %d: bought %d (%d units), sold out %d, closed %d, expired %d, over limit %d;"+
		" stopped by errors %d, unfinished %d\n", d.Buyers, d.FinalAnswers, d.Bought, d.Units, d.SoldOut, d.Closed,
		d.Expired, d.OverLimit, d.Errors, d.Unfinished)
	if len(r.Total.Failures) > 0 {
		fmt.Printf("  failures: %s\n", counts(r.Total.Failures))
	}
	if t, ok := firstErrors(&r); ok {
		fmt.Printf("  first failed requests in the interval from %.0f s after the first arrival\n", t)
	}
	var http5xx, transport int64
	for code, c := range r.Total.Statuses {
		switch {
		case strings.HasPrefix(code, "5"):
			http5xx += c
		case code == "none":
			transport += c
		}
	}
	if r.Sessions != *n || r.Planned != *n || r.Dropped != 0 {
		fail("%d of %d buyers started", r.Sessions, *n)
	}
	if d.Buyers != *n || d.Unanswered() != 0 {
		fail("%d buyers without a final answer", *n-d.FinalAnswers)
	}
	if http5xx > 0 {
		fail("%d answers 5xx", http5xx)
	}
	if transport > 0 {
		fail("%d transport errors", transport)
	}
	if r.Total.Errors > 0 {
		fail("%d failed requests", r.Total.Errors)
	}
	for _, t := range r.Thresholds {
		if !t.Pass {
			fail("threshold %s failed (actual %g%s)", t.Expr, t.Actual, t.Unit)
		}
	}
	if lag := time.Duration(r.SendLag.Max * float64(time.Millisecond)); lag > *maxLag {
		fail("generator fell behind: send lag up to %.1f s", lag.Seconds())
	}

	// --- the shop's account: zero oversell ---------------------------------
	oversell, settled := 0, false
	var dv dropView
	v, err := a.variant(*slug, *sku)
	if err == nil {
		err = a.get("/api/v1/admin/drops/"+*dropID, &dv)
	}
	if err != nil {
		log.Fatalf("admin API: %v", err)
	}
	var allocated int64
	for _, it := range dv.Items {
		if it.SKU == *sku {
			allocated = it.Allocated
		}
	}
	fmt.Printf("  shop after the run: drop %s, %d of %d units available; %s on_hand %d, reserved %d, sold %d\n",
		dv.State, dv.Available, allocated, *sku, v.OnHand, v.Reserved, v.Sold)
	sound := func(v variant) bool {
		return dv.Available >= 0 && v.Reserved >= 0 && v.Reserved+v.Sold <= v.OnHand &&
			v.Reserved+v.Sold == d.Units && d.Units <= allocated
	}
	ok := sound(v)
	start := time.Now()
	for ok && time.Since(start) < *settle {
		if v.Reserved == 0 && v.Sold == d.Units {
			settled = true
			break
		}
		time.Sleep(250 * time.Millisecond)
		if v, err = a.variant(*slug, *sku); err != nil {
			log.Fatalf("admin API: %v", err)
		}
		ok = sound(v)
	}
	switch {
	case !ok:
		oversell = 1
		fail("ledger wrong")
		fmt.Printf("  LEDGER WRONG: buyers were sold %d units (201s) of %d allocated; available %d; on_hand %d, reserved %d, sold %d\n",
			d.Units, allocated, dv.Available, v.OnHand, v.Reserved, v.Sold)
	case settled:
		fmt.Printf("  zero oversell: reserved + sold = %d = units of the buyers' 201s, within the allocation of %d and on_hand %d;"+
			" all paid %.1f s after the run\n", d.Units, allocated, v.OnHand, time.Since(start).Seconds())
	default:
		fail("not settled")
		fmt.Printf("  zero oversell so far (reserved + sold = %d = units of the 201s), but after %.0f s reserved %d, sold %d: not settled\n",
			d.Units, settle.Seconds(), v.Reserved, v.Sold)
	}
	if d.Units < allocated && d.SoldOut > 0 {
		fmt.Printf("  note: %d buyers were told sold out while %d of %d units were sold\n", d.SoldOut, d.Units, allocated)
	}

	if *adminURL != "" {
		if m, err := metrics(strings.TrimRight(*adminURL, "/")); err == nil {
			fmt.Printf("  admission: shed (503) %s; limit now %s\n", nonZero(m, "surge_admission_shed_total", *dropID), orQ(m["surge_admission_limit"]))
			fmt.Printf("  waiting room joins: %s\n", nonZero(m, "surge_waitroom_joins_total", *dropID))
		}
	}

	verdict := len(reasons) == 0
	fmt.Printf("pass=%t buyers=%d answered=%d bought=%d units=%d sold_out=%d errors=%d unfinished=%d http5xx=%d transport=%d oversell=%d settled=%t late_ms=%.0f reasons=%s\n",
		verdict, d.Buyers, d.FinalAnswers, d.Bought, d.Units, d.SoldOut, d.Errors, d.Unfinished, http5xx, transport, oversell,
		settled, r.SendLag.Max, strings.ReplaceAll(strings.Join(reasons, "; "), " ", "_"))
}

// firstErrors returns the start of the first timeline interval with a
// failed request.
func firstErrors(r *loadtest.Result) (float64, bool) {
	for _, p := range r.Timeline {
		if p.Errors > 0 {
			return p.T, true
		}
	}
	return 0, false
}

// metrics reads the Prometheus text of the admin listener into sample
// line (name with labels) -> value.
func metrics(admin string) (map[string]string, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out[line[:i]] = line[i+1:]
		}
	}
	return out, sc.Err()
}

// nonZero lists the samples of one metric that are not zero, by their
// labels; samples of other drops than dropID are left out, and so is the
// drop label.
func nonZero(m map[string]string, name, dropID string) string {
	var parts []string
	for k, v := range m {
		labels, ok := strings.CutPrefix(k, name+"{")
		if !ok || v == "0" {
			continue
		}
		var keep []string
		other := false
		for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if id, ok := strings.CutPrefix(l, "drop="); ok {
				other = other || strings.Trim(id, `"`) != dropID
				continue
			}
			keep = append(keep, strings.ReplaceAll(l, `"`, ""))
		}
		if !other {
			parts = append(parts, strings.Join(keep, ",")+": "+v)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func msText(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fms", v)
}
