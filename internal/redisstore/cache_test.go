package redisstore_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
)

func TestCache(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	a := redisstore.NewCache(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	b := redisstore.NewCache(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))

	if v, ok, err := a.Get(ctx, "product:1"); err != nil || ok || v != nil {
		t.Fatalf("Get of a missing key = %q, %v, %v; want a miss", v, ok, err)
	}
	val := []byte("{\"sku\":\"TEE-1\"}\x00\xff") // any bytes, not only text
	if err := a.Set(ctx, "product:1", val, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, "product:2", []byte{}, 0); err != nil {
		t.Fatal(err)
	}
	// Another replica sees what this one stored.
	if v, ok, err := b.Get(ctx, "product:1"); err != nil || !ok || !bytes.Equal(v, val) {
		t.Fatalf("Get from another replica = %q, %v, %v; want %q", v, ok, err, val)
	}
	if v, ok, err := b.Get(ctx, "product:2"); err != nil || !ok || len(v) != 0 {
		t.Errorf("Get of an empty value = %q, %v, %v; want a hit on nothing", v, ok, err)
	}
	if ttl := pttl(t, url, prefix+"cache:product:1"); ttl <= 59*time.Second || ttl > time.Minute {
		t.Errorf("TTL = %v; want the minute Set asked for", ttl)
	}
	if ttl := pttl(t, url, prefix+"cache:product:2"); ttl != -1 {
		t.Errorf("TTL with ttl 0 = %v; want none (-1ns)", ttl)
	}
	if err := a.Set(ctx, "product:3", val, -time.Second); err == nil {
		t.Errorf("Set with a negative ttl: no error")
	}

	if err := b.Delete(ctx, "product:1", "product:2", "never-set"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"product:1", "product:2"} {
		if _, ok, err := a.Get(ctx, k); err != nil || ok {
			t.Errorf("Get(%s) after Delete = %v, %v; want a miss", k, ok, err)
		}
	}
	if err := a.Delete(ctx); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
}
