package shop

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/journalfile"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// TestRestartForgetsEndedLines: the embedded shop journals its lines in
// the data dir and, at start, forgets the lines of drops that closed, so
// the journal does not grow with every drop ever held; open drops keep
// their line.
func TestRestartForgetsEndedLines(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	open := func() *Shop {
		cfg := Defaults()
		cfg.DataDir, cfg.Admission = dir, false
		sh, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), telemetry.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	sh := open()
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	usd := money.Money{Amount: 100, Currency: "USD"}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "pair", Name: "Pair", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "KEEP-1", Price: usd, OnHand: 5, Options: []catalog.Option{{Name: "v", Value: "a"}}},
			{SKU: "GONE-1", Price: usd, OnHand: 5, Options: []catalog.Option{{Name: "v", Value: "b"}}}}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sku := range []string{"KEEP-1", "GONE-1"} {
		d := drop.Drop{Slug: "drop-" + strings.ToLower(sku[:4]), Name: sku, StartsAt: time.Now().Add(-time.Second), Items: []drop.Item{{SKU: sku, Allocated: 5}}}
		d.Defaults()
		d, err := sh.Store.CreateDrop(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.DropLines.Changed(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, _, err := sh.Room.Join(ctx, waitroom.JoinRequest{Drop: d.ID, Visitor: "v:a", ClientAddr: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	closed, err := sh.Store.CloseDrop(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.DropLines.Changed(ctx, closed); err != nil {
		t.Fatal(err)
	}
	sh.Close()
	open().Close()

	j, err := journalfile.Open(filepath.Join(dir, "waitroom.journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	count := map[string]int{}
	if err := j.Replay(context.Background(), func(e waitroom.JournalEntry) error { count[e.Drop]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count[ids[0]] == 0 || count[ids[1]] != 0 {
		t.Errorf("journal entries by drop: %v; want the open drop's line kept and the closed one's forgotten", count)
	}
}
