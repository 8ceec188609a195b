package pgstore_test

import (
	"context"
	"testing"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storetest"
)

var _ shop.Store = (*pgstore.Store)(nil)

// newTestStore opens and migrates a store on a fresh database. With
// replica set it reads from the test replica too.
func newTestStore(tb testing.TB, replica bool, change ...func(*pgstore.Config)) *pgstore.Store {
	tb.Helper()
	primaryURL, replicaURL := enginetest.Postgres(tb)
	cfg := pgstore.Config{URL: primaryURL, MaxConns: 8}
	if replica {
		if replicaURL == "" {
			tb.Skip("SURGE_TEST_POSTGRES_REPLICA not set")
		}
		cfg.ReplicaURLs = []string{replicaURL}
	}
	for _, c := range change {
		c(&cfg)
	}
	ctx := context.Background()
	s, err := pgstore.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.Store { return newTestStore(t, false) })
}

func TestShopConformance(t *testing.T) {
	storetest.RunShop(t, func(t *testing.T) storetest.Store { return newTestStore(t, false) })
}
