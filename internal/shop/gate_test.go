package shop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestGateOutageIsNoRefusal: when the waiting room's shared state does
// not answer, the drop gate cannot tell whether a buyer's access is good,
// so it must fail as unavailable (a 503 the buyer retries), never as a
// refusal (403) that would end an admitted buyer's visit. A bad token is
// still refused.
func TestGateOutageIsNoRefusal(t *testing.T) {
	const token = "gate-test-token-0123456789"
	redisURL, prefix := enginetest.Redis(t)
	px := enginetest.NewProxy(t, redisURL)
	cfg := Defaults()
	cfg.DataDir, cfg.RedisURL, cfg.RedisPrefix, cfg.Admission = t.TempDir(), px.URL, prefix, false
	cfg.AdminToken = token
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	sh, err := Open(t.Context(), cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 5, Seed: 1})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	buyer := &http.Client{Jar: jar}
	call := func(c *http.Client, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	sku := prods[0].Variants[0].SKU
	if code, body := call(http.DefaultClient, "PUT", "/api/v1/admin/variants/"+sku+"/stock", `{"on_hand":10}`); code != 200 {
		t.Fatalf("stock: %d %s", code, body)
	}
	starts := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	code, body := call(http.DefaultClient, "POST", "/api/v1/admin/drops", fmt.Sprintf(`{"name":"Outage","slug":"outage",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":%q,"allocated":10}],"room":{"rate_per_minute":6000,"prequeue_opens":"1m"}}`, starts, sku))
	var d struct{ ID string }
	if code != 201 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("create drop: %d %s", code, body)
	}
	if code, body := call(buyer, "POST", "/api/v1/drops/"+d.ID+"/queue/join", `{}`); code != 200 {
		t.Fatalf("join: %d %s", code, body)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, body := call(buyer, "GET", "/api/v1/drops/"+d.ID+"/queue", "")
		var st struct{ State string }
		_ = json.Unmarshal([]byte(body), &st)
		if st.State == "admitted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not admitted within 15s: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	u, _ := url.Parse(srv.URL)
	var sessionID, access string
	for _, c := range jar.Cookies(u) {
		switch c.Name {
		case "surge_session":
			sessionID = session.HashToken(c.Value)
		case "surge_wa_" + d.ID:
			access = c.Value
		}
	}
	if sessionID == "" || access == "" {
		t.Fatalf("cookies %v: want a session and an access token", jar.Cookies(u))
	}
	g := &drop.Gate{Store: sh.Store, Room: sh.Room}
	lines := []order.Line{{SKU: sku, Quantity: 1}}
	gate := func(tok string) error {
		_, err := g.Gate(t.Context(), sessionID, func(string) string { return tok }, lines)
		return err
	}
	if err := gate(access); err != nil {
		t.Fatalf("admitted buyer: %v", err)
	}

	px.Cut()
	err = gate(access)
	var u2 interface{ Unavailable() bool }
	if err == nil || errors.Is(err, drop.ErrNoAccess) || !errors.As(err, &u2) || !u2.Unavailable() {
		t.Errorf("gate while Redis is down: %v; want an unavailable error, not a refusal", err)
	}
	px.Heal()
	for deadline := time.Now().Add(10 * time.Second); gate(access) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gate after Redis came back: %v", gate(access))
		}
	}
	if err := gate(access[:len(access)-2] + "xx"); !errors.Is(err, drop.ErrNoAccess) {
		t.Errorf("tampered token: %v; want a refusal", err)
	}
}
