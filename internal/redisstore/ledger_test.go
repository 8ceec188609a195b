package redisstore_test

import (
	"testing"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

// newClient returns a client on the test Redis under a prefix of the
// test's own, closed at cleanup.
func newClient(t *testing.T) *redisstore.Client {
	t.Helper()
	url, prefix := enginetest.Redis(t)
	return mustClient(t, redisstore.Config{URL: url, Prefix: prefix})
}

func mustClient(t *testing.T, cfg redisstore.Config) *redisstore.Client {
	t.Helper()
	c, err := redisstore.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLedgerConformance(t *testing.T) {
	ledgertest.LedgerSuite(t, func(t *testing.T) waitroom.Ledger { return redisstore.NewLedger(newClient(t)) })
}
