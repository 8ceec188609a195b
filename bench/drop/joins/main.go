// Command joins measures how many queue joins per second a running surge
// takes (bench/drop/run). It drives POST /api/v1/drops/{id}/queue/join
// with -workers concurrent workers, each join from a new visitor: no
// cookie, so the shop starts a guest session, hands out a guest visitor
// cookie and a ticket, as for someone arriving at a drop for the first
// time.
//
// The shop limits joins per client address (one a second, bursts of 20),
// so the joins are spread over the local addresses of -source (a prefix
// such as 127.0.16.0/20; its network and broadcast addresses are left out).
// Every address has its own keep-alive connection; worker w sends from
// the addresses i with i % workers == w, in turn, so each connection is
// used by one worker at a time. First one join per address, unmeasured,
// opens the connections; then -duration is measured.
//
// A join counts when it answers 200 with a queue status (any state) and a
// ticket cookie. A 429 (join rate limit) is counted apart and is not a
// join; anything else is an error. The last line is machine-readable:
//
//	joins=N seconds=S joins_per_s=R p50_ms=X p99_ms=Y rate_limited=N errors=N addrs=A gen_cpu_s=C server_cpu_s=T
//
// where server_cpu_s is the user+system CPU time of -server-pid (read
// from /proc) over the measured phase, or -1 without -server-pid.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tally is what one worker saw.
type tally struct {
	joins, limited, errs int64
	status               map[int]int64 // statuses of errors; 0 = transport error, -1 = unreadable answer
	lat                  []time.Duration
	firstErr             string
}

func main() {
	base := flag.String("base", "", "shop base URL, e.g. http://127.0.0.1:8080")
	dropID := flag.String("drop", "", "drop ID")
	workers := flag.Int("workers", 64, "concurrent joins")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	source := flag.String("source", "127.0.16.0/20", "local addresses to send from (IPv4 prefix)")
	serverPID := flag.Int("server-pid", 0, "process ID of surge, for its CPU time over the measured phase (0: not measured)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("joins: ")
	if *base == "" || *dropID == "" || *workers < 1 || *duration <= 0 {
		log.Fatal("need -base and -drop, and -workers and -duration above zero")
	}
	addrs, err := hosts(*source)
	if err != nil {
		log.Fatal(err)
	}
	if len(addrs) < *workers {
		log.Fatalf("-source %s has %d addresses, fewer than -workers %d", *source, len(addrs), *workers)
	}
	url := strings.TrimRight(*base, "/") + "/api/v1/drops/" + *dropID + "/queue/join"
	clients := make([]*http.Client, len(addrs))
	for i, a := range addrs {
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: a.AsSlice()}}
		clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: d.DialContext, MaxIdleConnsPerHost: 1, DisableCompression: true}}
	}

	// Unmeasured: one join per address opens every connection.
	open := run(clients, *workers, url, time.Time{})
	if open.errs > 0 {
		log.Fatalf("opening the connections: %d of %d joins failed; first: %s", open.errs, len(clients), open.firstErr)
	}
	fmt.Printf("  opened %d connections from %s (%d unmeasured joins)\n", len(clients), *source, open.joins)

	cpu0, srv0 := cpuSeconds(), procCPU(*serverPID)
	start := time.Now()
	m := run(clients, *workers, url, start.Add(*duration))
	secs := time.Since(start).Seconds()
	cpu, srv1 := cpuSeconds()-cpu0, procCPU(*serverPID)
	srv := -1.0
	if srv0 >= 0 && srv1 >= 0 {
		srv = srv1 - srv0
	}
	p50, p99 := quantile(m.lat, 0.50), quantile(m.lat, 0.99)
	fmt.Printf("  %d workers, %.1f s: %d joins (%.0f/s), p50 %.1f ms p99 %.1f ms, %d rate-limited (429), %d errors\n",
		*workers, secs, m.joins, float64(m.joins)/secs, ms(p50), ms(p99), m.limited, m.errs)
	if m.errs > 0 {
		fmt.Printf("  errors by status: %s; first: %.200s\n", byStatus(m.status), m.firstErr)
	}
	fmt.Printf("  load generator CPU: %.2f s (%.0f%% of one core, %.0f us per join)\n",
		cpu, 100*cpu/secs, 1e6*cpu/float64(max(m.joins, 1)))
	fmt.Printf("joins=%d seconds=%.2f joins_per_s=%.1f p50_ms=%.2f p99_ms=%.2f rate_limited=%d errors=%d addrs=%d gen_cpu_s=%.2f server_cpu_s=%.2f\n",
		m.joins, secs, float64(m.joins)/secs, ms(p50), ms(p99), m.limited, m.errs, len(clients), cpu, srv)
	if m.joins == 0 {
		os.Exit(1)
	}
}

// run sends joins from every worker until deadline, or, with a zero
// deadline, exactly one join per client, and merges the tallies.
func run(clients []*http.Client, workers int, url string, deadline time.Time) *tally {
	parts := make([]*tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		t := &tally{status: map[int]int64{}}
		parts[w] = t
		var mine []*http.Client
		for i := w; i < len(clients); i += workers {
			mine = append(mine, clients[i])
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				if deadline.IsZero() && i == len(mine) || !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				t.join(mine[i%len(mine)], url)
			}
		})
	}
	wg.Wait()
	out := &tally{status: map[int]int64{}}
	for _, t := range parts {
		out.joins += t.joins
		out.limited += t.limited
		out.errs += t.errs
		for k, v := range t.status {
			out.status[k] += v
		}
		out.lat = append(out.lat, t.lat...)
		if out.firstErr == "" {
			out.firstErr = t.firstErr
		}
	}
	return out
}

// join is one first-time visitor joining the line.
func (t *tally) join(c *http.Client, url string) {
	t0 := time.Now()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, nil)
	if err != nil {
		t.fail(0, err.Error())
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.fail(0, err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		t.fail(0, err.Error())
		return
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		t.limited++
		return
	default:
		t.fail(resp.StatusCode, string(body))
		return
	}
	var st struct {
		State string `json:"state"`
	}
	ticket := false
	for _, ck := range resp.Cookies() {
		ticket = ticket || strings.HasPrefix(ck.Name, "surge_wr_")
	}
	if json.Unmarshal(body, &st) != nil || st.State == "" || !ticket {
		t.fail(-1, "no queue status or no ticket cookie: "+string(body))
		return
	}
	t.joins++
	t.lat = append(t.lat, time.Since(t0))
}

func (t *tally) fail(code int, msg string) {
	t.errs++
	t.status[code]++
	if t.firstErr == "" {
		t.firstErr = fmt.Sprintf("%d %s", code, strings.TrimSpace(msg))
	}
}

// hosts lists the host addresses of an IPv4 prefix, without its network
// and broadcast addresses.
func hosts(prefix string) ([]netip.Addr, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 16 {
		return nil, fmt.Errorf("-source %q: want an IPv4 prefix from /16 to /30, such as 127.0.16.0/20", prefix)
	}
	p = p.Masked()
	var out []netip.Addr
	for a := p.Addr().Next(); p.Contains(a.Next()); a = a.Next() {
		out = append(out, a)
	}
	return out, nil
}

func byStatus(m map[int]int64) string {
	var codes []int
	for c := range m {
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
			name = "unreadable"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[c]))
	}
	return strings.Join(parts, ", ")
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

// procCPU is the user+system CPU time of process pid in seconds, from
// /proc/PID/stat; -1 when pid is 0 or unreadable. Linux reports it in
// clock ticks of 1/100 s (USER_HZ), whatever the kernel's HZ.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing parenthesis (utime and stime are
	// fields 14 and 15, so the 12th and 13th after it).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return -1
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return -1
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return -1
	}
	return float64(ut+st) / 100
}

// cpuSeconds is the user+system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
