package shop_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/cdnpurge"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestFollowedPurgesReachTheCDN: a replica that applies another replica's
// purge (through Redis) forwards it to the CDN too, after purging its own
// caches. Otherwise a CDN refill served by a replica that had not yet
// purged would put the old page back in the CDN for a whole TTL.
func TestFollowedPurgesReachTheCDN(t *testing.T) {
	redisURL, prefix := enginetest.Redis(t)
	purges := make(chan string, 16)
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		purges <- r.Method + " " + r.Header.Get("Surrogate-Key")
	}))
	defer cdn.Close()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(cdnURL string) *shop.Shop {
		cfg := shop.Defaults()
		cfg.DataDir = t.TempDir()
		cfg.RedisURL, cfg.RedisPrefix = redisURL, prefix
		cfg.AdminToken = replicaToken
		cfg.Admission = false
		if cdnURL != "" {
			cfg.CDN = cdnpurge.Config{URLs: []string{cdnURL}}
		}
		sh, err := shop.Open(t.Context(), cfg, log, telemetry.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx, shop.RoleAPI) }()
		t.Cleanup(func() {
			cancel()
			<-done
			sh.Close()
		})
		cats, prods := demoshop.Generate(demoshop.Options{Products: 5, Seed: 1})
		if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
			t.Fatal(err)
		}
		return sh
	}
	a := start("")
	start(cdn.URL) // B: only follows A's purges
	srvA := httptest.NewServer(a.Handler)
	defer srvA.Close()
	p, err := a.Catalog.Product(t.Context(), firstSlug(t, a))
	if err != nil {
		t.Fatal(err)
	}
	// The follower subscribes when Run starts; publish until it hears.
	deadline := time.After(10 * time.Second)
	want := "product:" + strconv.FormatInt(p.ID, 10)
	for {
		code, body := call(t, http.DefaultClient, "PATCH", srvA.URL+"/api/v1/admin/variants/"+p.Variants[0].SKU,
			`{"price":{"amount":1234,"currency":"USD"}}`)
		if code != 200 {
			t.Fatalf("price change on A: %d %s", code, body)
		}
		select {
		case got := <-purges:
			if !strings.HasPrefix(got, "PURGE ") || !strings.Contains(" "+got+" ", " "+want+" ") {
				t.Fatalf("B sent %q to the CDN, want a PURGE of %s", got, want)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("B never forwarded A's purge to the CDN")
		}
	}
}

func firstSlug(t *testing.T, sh *shop.Shop) string {
	t.Helper()
	_, prods := demoshop.Generate(demoshop.Options{Products: 5, Seed: 1})
	for _, p := range prods {
		if _, err := sh.Catalog.Product(t.Context(), p.Slug); err == nil {
			return p.Slug
		}
	}
	t.Fatal("no product")
	return ""
}
