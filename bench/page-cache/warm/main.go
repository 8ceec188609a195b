// Command warm fills surge's page cache for the page-cache benchmark
// (bench/page-cache/run). It walks the public product API
// (/api/v1/products?limit=100, following next_cursor) and GETs every
// product page with -workers concurrent requests, plus the home page and
// every category page. With -first it only prints the first product's slug.
//
// It prints one summary line: pages fetched, their statuses and X-Cache
// values, and how long it took.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// listing is the part of a product or category listing that warm reads.
type listing struct {
	Items []struct {
		Slug string `json:"slug"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func main() {
	base := flag.String("base", "", "shop base URL, e.g. http://127.0.0.1:8080")
	workers := flag.Int("workers", 8, "concurrent page requests")
	first := flag.Bool("first", false, "print the first product's slug and exit")
	flag.Parse()
	if *base == "" {
		log.Fatal("warm: -base is required")
	}
	*base = strings.TrimRight(*base, "/")
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *workers + 1, DisableCompression: true},
	}

	if *first {
		var l listing
		if err := getJSON(client, *base+"/api/v1/products?limit=1", &l); err != nil {
			log.Fatalf("warm: %v", err)
		}
		if len(l.Items) == 0 {
			log.Fatal("warm: the catalog has no products")
		}
		fmt.Println(l.Items[0].Slug)
		return
	}

	start := time.Now()
	paths := make(chan string, 4*(*workers))
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		total  int
		wg     sync.WaitGroup
	)
	for range *workers {
		wg.Go(func() {
			for p := range paths {
				k := fetch(client, *base+p)
				mu.Lock()
				counts[k]++
				total++
				mu.Unlock()
			}
		})
	}

	err := walk(client, *base, paths)
	close(paths)
	wg.Wait()
	if err != nil {
		log.Fatalf("warm: %v", err)
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	fmt.Printf("warm: %d pages in %s (%.0f pages/s) %s\n", total, time.Since(start).Round(time.Millisecond),
		float64(total)/time.Since(start).Seconds(), strings.Join(parts, " "))
	if counts["error"] > 0 {
		os.Exit(1)
	}
}

// walk sends the home page, every category page and every product page to
// paths, reading the product listing one API page at a time.
func walk(client *http.Client, base string, paths chan<- string) error {
	paths <- "/"
	var cats listing
	if err := getJSON(client, base+"/api/v1/categories", &cats); err != nil {
		return err
	}
	for _, c := range cats.Items {
		paths <- "/categories/" + url.PathEscape(c.Slug)
	}
	cursor := ""
	for {
		u := base + "/api/v1/products?limit=100"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var l listing
		if err := getJSON(client, u, &l); err != nil {
			return err
		}
		for _, p := range l.Items {
			paths <- "/products/" + url.PathEscape(p.Slug)
		}
		if l.NextCursor == "" || len(l.Items) == 0 {
			return nil
		}
		cursor = l.NextCursor
	}
}

// fetch GETs u, discards the body and returns "STATUS/X-CACHE" or "error".
func fetch(client *http.Client, u string) string {
	resp, err := client.Get(u)
	if err != nil {
		log.Printf("warm: %v", err)
		return "error"
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		log.Printf("warm: %s: %v", u, err)
		return "error"
	}
	xc := resp.Header.Get("X-Cache")
	if xc == "" {
		xc = "none"
	}
	return fmt.Sprintf("%d/%s", resp.StatusCode, xc)
}

// getJSON GETs u into v. A 503 (admission control shedding on a busy
// machine) is retried a few times after a pause, so that one refusal does
// not end the walk.
func getJSON(client *http.Client, u string, v any) error {
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		var err error
		resp, err = client.Get(u)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusServiceUnavailable || attempt == 10 {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
