package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/smtpsink"
	"github.com/surge-commerce/surge/internal/telemetry"
)

type notifyShop struct {
	h    http.Handler
	st   shop.Store
	sink *smtpsink.Sink
	drop drop.Drop
}

// newNotifyShop is a shop that mails through an SMTP sink, with an
// upcoming drop.
func newNotifyShop(t *testing.T) *notifyShop {
	t.Helper()
	return newNotifyShopWith(t, "")
}

// newNotifyShopWith is newNotifyShop with an admin token.
func newNotifyShopWith(t *testing.T, adminToken string) *notifyShop {
	t.Helper()
	sink, err := smtpsink.Start("", smtpsink.Options{Keep: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admission = false
	cfg.JobsOff = true
	cfg.PublicURL = "https://shop.example"
	cfg.AdminToken = adminToken
	cfg.SMTP = mail.SMTPConfig{Addr: sink.Addr(), From: "shop@shop.example"}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh, err := shop.Open(t.Context(), cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	ctx := context.Background()
	cat, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sku := range []string{"HOT", "OLD"} {
		if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: strings.ToLower(sku), Name: sku, Status: catalog.StatusActive, CategoryID: cat.ID,
			Variants: []catalog.Variant{{SKU: sku, Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 10}}}); err != nil {
			t.Fatal(err)
		}
	}
	in := drop.Drop{Slug: "friday", Name: "Friday drop", StartsAt: time.Now().Add(24 * time.Hour).UTC(), Items: []drop.Item{{SKU: "HOT", Allocated: 5}}}
	in.Defaults()
	d, err := sh.Store.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return &notifyShop{h: sh.Handler, st: sh.Store, sink: sink, drop: d}
}

// post sends a form from the shop's own page (same origin) from addr.
func (s *notifyShop) post(path string, form url.Values, addr string, hdr ...string) *http.Response {
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w.Result()
}

func (s *notifyShop) get(path string) (int, string) {
	r := httptest.NewRequest("GET", path, nil)
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (s *notifyShop) api(method, path, body, contentType, addr string) (int, map[string]any) {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.RemoteAddr = addr
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

var tokenRE = regexp.MustCompile(`/notify/(confirm|unsubscribe)\?token=([A-Z2-7]{26})`)

// links reads the confirmation and unsubscribe tokens of mail i.
func (s *notifyShop) links(t *testing.T, i int) (confirm, unsub string, m smtpsink.Message) {
	t.Helper()
	kept := s.sink.Kept()
	if len(kept) <= i {
		t.Fatalf("sink kept %d messages; want message %d", len(kept), i)
	}
	m = kept[i]
	body, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, match := range tokenRE.FindAllStringSubmatch(string(body), -1) {
		if match[1] == "confirm" {
			confirm = match[2]
		} else {
			unsub = match[2]
		}
	}
	if confirm == "" || unsub == "" {
		t.Fatalf("mail without both links:\n%s", body)
	}
	return confirm, unsub, m
}

func (s *notifyShop) recipients(t *testing.T) []notify.Recipient {
	t.Helper()
	rs, err := s.st.Recipients(context.Background(), notify.RecipientQuery{DropID: s.drop.ID, ToID: 1 << 62, ConfirmedBy: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestNotifyDoubleOptIn(t *testing.T) {
	s := newNotifyShop(t)
	resp := s.post("/drops/friday/notify", url.Values{"email": {" Ada@Example.com "}}, "192.0.2.1:1000")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/drops/friday/notify?sent=1" {
		t.Fatalf("form post: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, page := s.get("/drops/friday/notify?sent=1"); code != 200 || !strings.Contains(page, "Check your inbox") {
		t.Fatalf("sent page: %d", code)
	}
	confirm, unsub, m := s.links(t, 0)
	if m.To[0] != "ada@example.com" || !strings.HasPrefix(m.Header.Get("List-Unsubscribe"), "<https://shop.example/notify/unsubscribe?token=") ||
		m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("confirmation mail to %v, headers %v", m.To, m.Header)
	}
	if rs := s.recipients(t); len(rs) != 0 {
		t.Fatalf("unconfirmed address is a recipient: %v", rs)
	}
	// Opening the link (a mail scanner does) only shows a button.
	if code, page := s.get("/notify/confirm?token=" + confirm); code != 200 || !strings.Contains(page, `name="token" value="`+confirm+`"`) {
		t.Fatalf("confirm page: %d", code)
	}
	if rs := s.recipients(t); len(rs) != 0 {
		t.Fatalf("opening the link confirmed: %v", rs)
	}
	resp = s.post("/notify/confirm", url.Values{"token": {confirm}}, "192.0.2.9:1")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "You are on the list") {
		t.Fatalf("confirm: %d\n%s", resp.StatusCode, body)
	}
	if rs := s.recipients(t); len(rs) != 1 || rs[0].Email != "ada@example.com" {
		t.Fatalf("recipients after confirming: %v", rs)
	}
	// Asking again once confirmed: the same answer, no second mail.
	if resp := s.post("/drops/friday/notify", url.Values{"email": {"ada@example.com"}}, "192.0.2.2:1000"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	if st := s.sink.Stats(); st.Messages != 1 {
		t.Errorf("%d mails; want the one confirmation", st.Messages)
	}
	// One-click unsubscribe as a mail provider sends it: no Origin, no
	// cookies, the token in the URL.
	r := httptest.NewRequest("POST", "/notify/unsubscribe?token="+unsub, strings.NewReader("List-Unsubscribe=One-Click"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("one-click unsubscribe: %d %s", w.Code, w.Body)
	}
	if rs := s.recipients(t); len(rs) != 0 {
		t.Fatalf("recipients after unsubscribing: %v", rs)
	}
	// The old confirmation link is dead now.
	if resp := s.post("/notify/confirm", url.Values{"token": {confirm}}, "192.0.2.9:1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("confirm after unsubscribing: %d; want 404", resp.StatusCode)
	}
}

func TestNotifyAPI(t *testing.T) {
	s := newNotifyShop(t)
	code, out := s.api("POST", "/api/v1/drops/"+s.drop.ID+"/notify", `{"email":"bob@example.com"}`, "application/json", "192.0.2.1:1")
	if code != http.StatusAccepted || out["status"] != "confirmation-sent" {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	if st := s.sink.Stats(); st.Messages != 1 {
		t.Errorf("sink %+v; want the confirmation", st)
	}
	long := strings.Repeat("a", 250) + "@example.com"
	for _, tt := range []struct {
		name, path, body, ctype string
		status                  int
		kind, field             string
	}{
		{"not an address", "/api/v1/drops/friday/notify", `{"email":"nope"}`, "application/json", 422, "invalid-field", "email"},
		{"display name", "/api/v1/drops/friday/notify", `{"email":"Eve <eve@example.com>"}`, "application/json", 422, "invalid-field", "email"},
		{"header injection", "/api/v1/drops/friday/notify", `{"email":"eve@example.com\r\nBcc: x@y.z"}`, "application/json", 422, "invalid-field", "email"},
		{"too long", "/api/v1/drops/friday/notify", `{"email":"` + long + `"}`, "application/json", 422, "invalid-field", "email"},
		{"empty", "/api/v1/drops/friday/notify", `{"email":""}`, "application/json", 422, "invalid-field", "email"},
		{"unknown field", "/api/v1/drops/friday/notify", `{"email":"a@b.co","x":1}`, "application/json", 400, "malformed-body", ""},
		{"not json", "/api/v1/drops/friday/notify", `email=a@b.co`, "text/plain", 415, "unsupported-media-type", ""},
		{"no such drop", "/api/v1/drops/nosuch/notify", `{"email":"a@b.co"}`, "application/json", 404, "not-found", ""},
	} {
		code, out := s.api("POST", tt.path, tt.body, tt.ctype, "192.0.2.50:1")
		if code != tt.status || !strings.HasSuffix(fmt.Sprint(out["type"]), "#"+tt.kind) || (tt.field != "" && out["field"] != tt.field) {
			t.Errorf("%s: %d %v; want %d %s", tt.name, code, out, tt.status, tt.kind)
		}
	}
	if _, err := s.st.CloseDrop(context.Background(), s.drop.ID); err != nil {
		t.Fatal(err)
	}
	if code, out := s.api("POST", "/api/v1/drops/friday/notify", `{"email":"late@example.com"}`, "application/json", "192.0.2.60:1"); code != 409 {
		t.Errorf("closed drop: %d %v; want 409", code, out)
	}
}

func TestNotifyRateLimits(t *testing.T) {
	s := newNotifyShop(t)
	// Per email: three an hour, from wherever they come.
	for i := range 4 {
		code, out := s.api("POST", "/api/v1/drops/friday/notify", `{"email":"target@example.com"}`, "application/json", fmt.Sprintf("198.51.100.%d:1", i+1))
		want := http.StatusAccepted
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Fatalf("request %d for one address: %d %v; want %d", i+1, code, out, want)
		}
	}
	if st := s.sink.Stats(); st.Messages != 3 {
		t.Errorf("%d mails to one address; want 3", st.Messages)
	}
	// Per client: ten at once from one address.
	for i := range 11 {
		resp := s.post("/drops/friday/notify", url.Values{"email": {fmt.Sprintf("c%d@example.com", i)}}, "203.0.113.7:1")
		want := http.StatusSeeOther
		if i == 10 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d from one client: %d; want %d", i+1, resp.StatusCode, want)
		}
		if i == 10 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
}

func TestNotifyRefusals(t *testing.T) {
	s := newNotifyShop(t)
	// A form posted from another site.
	if resp := s.post("/drops/friday/notify", url.Values{"email": {"a@example.com"}}, "192.0.2.1:1", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d; want 403", resp.StatusCode)
	}
	// A bad address shows the form again with the reason.
	resp := s.post("/drops/friday/notify", url.Values{"email": {"not-an-address"}}, "192.0.2.1:1")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 422 || !strings.Contains(string(body), "enter one email address") || !strings.Contains(string(body), `action="/drops/friday/notify"`) {
		t.Errorf("bad address: %d\n%s", resp.StatusCode, body)
	}
	for _, path := range []string{"/notify/confirm?token=junk", "/notify/unsubscribe?token=", "/drops/nosuch/notify"} {
		if code, _ := s.get(path); code != 404 {
			t.Errorf("GET %s: %d; want 404", path, code)
		}
	}
	for _, path := range []string{"/notify/confirm", "/notify/unsubscribe"} {
		if resp := s.post(path, url.Values{"token": {notify.NewToken()}}, "192.0.2.1:1"); resp.StatusCode != 404 {
			t.Errorf("POST %s with an unknown token: %d; want 404", path, resp.StatusCode)
		}
	}
	if st := s.sink.Stats(); st.Messages != 0 {
		t.Errorf("refused requests sent %d mails", st.Messages)
	}
}
