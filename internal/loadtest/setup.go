package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Admin talks to a Surge shop's admin API (a bearer token) to prepare a
// rehearsal and to check the shop afterwards. It is Surge-specific, as
// the drop journey is.
type Admin struct {
	Target string // the shop's base URL
	Token  string
	Client *http.Client
}

func (a Admin) do(ctx context.Context, method, path string, body, into any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.Target, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return resp.StatusCode, fmt.Errorf("%s %s answered %s: %s", method, path, resp.Status, msg)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// DropSetup is a drop a rehearsal puts on sale before it runs: a product
// of its own with Units in stock, all allocated to a drop that starts
// Starts after the run does, with its line open from the run's start.
type DropSetup struct {
	Units         int64         `json:"units"`
	Limit         int64         `json:"limit"`
	Quantity      int           `json:"quantity"`
	Starts        time.Duration `json:"starts"`
	RatePerMinute int           `json:"rate_per_minute"`
	MaxActive     int           `json:"max_active"`
	PoWDifficulty int           `json:"pow_difficulty"`
}

// CreatedDrop is what Create made.
type CreatedDrop struct {
	ID, SKU, Slug string
	StartsAt      time.Time
	Units         int64
}

// Create makes the product and the drop; runStart is when the run
// begins (the drop starts Starts after it).
func (d DropSetup) Create(ctx context.Context, a Admin, runStart time.Time) (CreatedDrop, error) {
	if d.Units < 1 {
		return CreatedDrop{}, errors.New("drop: units must be at least 1")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	slug := "rehearsal-" + tag
	var cat struct {
		ID int64 `json:"id"`
	}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "Rehearsal " + tag, "slug": slug}, &cat); err != nil {
		return CreatedDrop{}, fmt.Errorf("drop: %w", err)
	}
	sku := "REH-" + strings.ToUpper(tag)
	product := map[string]any{"name": "Rehearsal Sneaker " + tag, "slug": slug, "status": "active", "category_id": cat.ID,
		"variants": []map[string]any{{"sku": sku, "price": map[string]any{"amount": 9900, "currency": "USD"}, "on_hand": d.Units}}}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/products", product, nil); err != nil {
		return CreatedDrop{}, fmt.Errorf("drop: %w", err)
	}
	starts := runStart.Add(d.Starts)
	room := map[string]any{
		// The line opens before anyone arrives: the run's first buyers
		// are in the pre-queue, not refused.
		"prequeue_opens": (d.Starts + time.Hour).String(),
	}
	if d.RatePerMinute > 0 {
		room["rate_per_minute"] = d.RatePerMinute
	}
	if d.MaxActive > 0 {
		room["max_active"] = d.MaxActive
	}
	if d.PoWDifficulty > 0 {
		room["pow_difficulty"] = d.PoWDifficulty
	}
	limit := d.Limit
	if limit < 1 {
		limit = 1
	}
	body := map[string]any{"name": "Rehearsal drop " + tag, "slug": slug, "starts_at": starts.UTC().Format(time.RFC3339Nano),
		"per_customer_limit": limit, "items": []map[string]any{{"sku": sku, "allocated": d.Units}}, "room": room}
	var created struct {
		ID string `json:"id"`
	}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/drops", body, &created); err != nil {
		return CreatedDrop{}, fmt.Errorf("drop: %w", err)
	}
	return CreatedDrop{ID: created.ID, SKU: sku, Slug: slug, StartsAt: starts, Units: d.Units}, nil
}

// CheckSold asks the shop, after the run, what became of the drop's
// stock, waiting up to wait for reservations to settle (orders paid or
// expired). It checks that exactly the units the buyers were told they
// bought are sold, that they are all of the drop's units when sellOut
// is set, and that nothing is left reserved.
func (c CreatedDrop) CheckSold(ctx context.Context, a Admin, told int64, sellOut bool, wait time.Duration) CheckResult {
	res := CheckResult{Name: "drop stock"}
	deadline := time.Now().Add(wait)
	var v struct {
		OnHand, Reserved, Sold int64
	}
	for {
		var p struct {
			Variants []struct {
				SKU      string `json:"sku"`
				OnHand   int64  `json:"on_hand"`
				Reserved int64  `json:"reserved"`
				Sold     int64  `json:"sold"`
			} `json:"variants"`
		}
		if _, err := a.do(ctx, http.MethodGet, "/api/v1/admin/products/"+c.Slug, nil, &p); err != nil {
			res.Detail = err.Error()
			return res
		}
		for _, x := range p.Variants {
			if x.SKU == c.SKU {
				v.OnHand, v.Reserved, v.Sold = x.OnHand, x.Reserved, x.Sold
			}
		}
		if v.Reserved == 0 && v.Sold >= told || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			res.Detail = ctx.Err().Error()
			return res
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.Detail = fmt.Sprintf("%d units: the shop records %d sold, %d reserved; buyers were told %d", c.Units, v.Sold, v.Reserved, told)
	res.Pass = v.Sold == told && v.Reserved == 0 && v.Sold <= c.Units && (!sellOut || v.Sold == c.Units)
	if v.Sold > c.Units {
		res.Detail += " (OVERSOLD)"
	}
	return res
}

// Hook is a request a rehearsal sends to the shop at a moment of the run
// (At after the start), such as starting a job; its answer must be 2xx.
type Hook struct {
	Name    string            `json:"name"`
	At      time.Duration     `json:"at"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Body    string            `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Admin   bool              `json:"admin,omitempty"` // send the admin token
}

// HookResult is how a hook went.
type HookResult struct {
	Name   string  `json:"name"`
	At     float64 `json:"at_s"`
	Status int     `json:"status"`
	Pass   bool    `json:"pass"`
	Detail string  `json:"detail,omitempty"`
}

// String is the hook's verdict line.
func (h HookResult) String() string {
	v := "pass"
	if !h.Pass {
		v = "FAIL"
	}
	return fmt.Sprintf("%s  hook %s at %.0fs: %s", v, h.Name, h.At, h.Detail)
}

// RunHooks sends each hook at its time after start and returns, once all
// are done (or ctx ends), what they got.
func RunHooks(ctx context.Context, a Admin, start time.Time, hooks []Hook) []HookResult {
	out := make([]HookResult, len(hooks))
	done := make(chan struct{}, len(hooks))
	for i, h := range hooks {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i] = HookResult{Name: h.Name, At: h.At.Seconds()}
			if !waitUntil(ctx, start.Add(h.At)) {
				out[i].Detail = "not sent: the run ended first"
				return
			}
			out[i].Status, out[i].Pass, out[i].Detail = a.send(ctx, h)
		}()
	}
	for range hooks {
		<-done
	}
	return out
}

func (a Admin) send(ctx context.Context, h Hook) (int, bool, string) {
	var rd io.Reader
	if h.Body != "" {
		rd = strings.NewReader(h.Body)
	}
	u := h.URL
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = strings.TrimSuffix(a.Target, "/") + "/" + strings.TrimPrefix(u, "/")
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, u, rd)
	if err != nil {
		return 0, false, err.Error()
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	if h.Body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.Admin && a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, false, h.Method + " " + h.URL + ": " + err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	detail := h.Method + " " + h.URL + " answered " + resp.Status
	return resp.StatusCode, resp.StatusCode >= 200 && resp.StatusCode < 300, detail
}
