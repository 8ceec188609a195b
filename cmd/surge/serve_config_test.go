package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/shop"
)

// TestServeStartsFromShopDefaults: `surge serve` with no flags opens the
// shop with shop.Defaults (but for the public URL, which it takes from
// --addr): every default of the shop is kept there once, and each flag
// shows it and sets its field.
func TestServeStartsFromShopDefaults(t *testing.T) {
	parse := func(args ...string) shop.Config {
		t.Helper()
		var cfg serveConfig
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		cfg.bind(f, func(string) string { return "" })
		if err := f.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		sc, err := cfg.shopConfig()
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	got, want := parse(), shop.Defaults()
	want.PublicURL = "http://127.0.0.1:8080"
	if len(got.AdmissionConfig.TrustedProxies) == 0 {
		got.AdmissionConfig.TrustedProxies = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("serve without flags:\n got %+v\nwant %+v", got, want)
	}

	got = parse("--drop-warmup=5m", "--expiry-sweep=1s", "--payment-claim-lease=3m", "--redis-prefix=x:",
		"--smtp-user=u", "--cdn-purge-timeout=1s", "--deadline-high=2s", "--role=api")
	if got.WarmBefore != 5*time.Minute || got.SweepEvery != time.Second || got.ClaimLease != 3*time.Minute || got.RedisPrefix != "x:" ||
		got.SMTP.Username != "u" || !got.SMTP.STARTTLS || got.CDN.Timeout != time.Second || got.Role != shop.RoleAPI {
		t.Errorf("flags not in the shop's config: %+v", got)
	}
}
