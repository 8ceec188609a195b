// Command seed prepares the blast benchmark's shop in a data directory:
// the demo catalog, a drop a week away with -n confirmed "notify me"
// subscribers, and its reminder job created paused, so that `surge jobs
// resume ID` starts the blast when the benchmark says. It prints the job
// ID.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	dataDir := flag.String("data-dir", "", "the shop's data directory")
	n := flag.Int("n", 30000, "confirmed subscribers")
	products := flag.Int("products", 1250, "demo products")
	flag.Parse()
	if *dataDir == "" || *n < 1 {
		return fmt.Errorf("-data-dir and a positive -n are required")
	}
	ctx := context.Background()
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(*dataDir, "surge.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	if _, err := shop.SeedDemo(ctx, st, *products, "USD", slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	cat, err := st.CreateCategory(ctx, catalog.Category{Slug: "blast-drops", Name: "Drops"})
	if err != nil {
		return err
	}
	if _, err := st.CreateProduct(ctx, catalog.Product{Slug: "blast-sneaker", Name: "Blast Sneaker", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "BLAST-1", Price: money.Money{Amount: 12000, Currency: "USD"}, OnHand: 100}}}); err != nil {
		return err
	}
	in := drop.Drop{Slug: "blast", Name: "Blast drop", StartsAt: time.Now().Add(7 * 24 * time.Hour).UTC(),
		Items: []drop.Item{{SKU: "BLAST-1", Allocated: 100}}}
	in.Defaults()
	d, err := st.CreateDrop(ctx, in)
	if err != nil {
		return err
	}
	// Confirmed subscribers in one transaction: the double opt-in is
	// tested elsewhere, and 60,000 form posts would be a benchmark of
	// their own.
	tx, err := st.Writer().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.Prepare(`INSERT INTO notify_subscriptions (drop_id, email, state, confirm_sent_at, unsubscribe_token, created_at, confirmed_at)
		VALUES (?, ?, 'confirmed', ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	at := time.Now().Add(-time.Hour).UnixNano()
	for i := range *n {
		if _, err := ins.Exec(d.ID, fmt.Sprintf("fan%d@example.com", i), at, notify.NewToken(), at, at); err != nil {
			return err
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		return err
	}
	j, err := st.EnsureJob(ctx, jobs.KindReminder, d.ID, time.Now())
	if err != nil {
		return err
	}
	if _, err := st.SetJobPaused(ctx, j.ID, true); err != nil {
		return err
	}
	fmt.Println(j.ID)
	return nil
}
