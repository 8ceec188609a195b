package shop_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/natsbus"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestOneDeliveryPerOrderEvent: an order's two events (created, paid) are
// each delivered to one consumer, which does all that event needs:
// payment, then stock committed and the confirmation mailed. Each
// consumer costs the bus a pull, a delivery and an ack per event, all
// replicated on a cluster, so a third consumer on the paid event was a
// third of the bus's work per order. A bus still holding the consumer an
// older version ran for the mail (order-confirmation) has it worked off
// and deleted by the worker.
func TestOneDeliveryPerOrderEvent(t *testing.T) {
	const orders = 12
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	mails := &mailCounter{next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		sent: &sentMail{bySubject: map[string]int{}}}
	cfg := shop.Defaults()
	cfg.DataDir, cfg.Admission = t.TempDir(), false
	cfg.NATSListen = "127.0.0.1:0" // for the test's own look at the consumers
	reg := telemetry.NewRegistry()
	sh, err := shop.Open(ctx, cfg, slog.New(mails), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })

	// The consumer an older version ran, left on the bus by its upgrade.
	stopOld, err := sh.Bus.Consume(ctx, natsbus.Consumer{Name: "order-confirmation", Subject: order.SubjectPaid,
		Handler: func(context.Context, natsbus.Message) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	stopOld()

	const sku = "ONE-DELIVERY-1"
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "bus", Name: "Bus"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "one-delivery-tee", Name: "One Delivery Tee",
		Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: sku, Price: money.Money{Amount: 1500, Currency: "USD"}, OnHand: 100}}}); err != nil {
		t.Fatal(err)
	}
	// An order an older version paid and committed the stock of, whose
	// mail the retired consumer still owed when the upgrade stopped it.
	srvEarly := httptest.NewServer(sh.Handler)
	legacy, err := buyOne(ctx, srvEarly.URL, sku, "legacy")
	srvEarly.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Store.MarkPaid(ctx, legacy, "captured before the upgrade"); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CommitStock(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := sh.Bus.Publish(ctx, order.SubjectPaid, "legacy-paid", []byte(`{"order_id":"`+legacy+`","status":"paid"}`)); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx, shop.RoleAll) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("shop: %v", err)
		}
	})
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)

	ids := []string{legacy}
	for i := range orders - 1 {
		id, err := buyOne(ctx, srv.URL, sku, fmt.Sprintf("one-delivery-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitPaid(ctx, t, sh, 60*time.Second, ids...)
	eventually(t, "stock committed and every confirmation mailed", func() bool {
		l, err := sh.Store.Ledger(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		mails.sent.mu.Lock()
		defer mails.sent.mu.Unlock()
		n := 0
		for _, c := range mails.sent.bySubject {
			n += c
		}
		return l.Sold == orders && l.Reserved == 0 && n >= orders
	})
	nc, err := nats.Connect(sh.Bus.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retired consumer deleted", func() bool {
		_, err := js.Consumer(ctx, natsbus.DefaultStream, "order-confirmation")
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	})
	// Every order's mail went out: the subjects name the orders.
	for _, id := range ids {
		o, err := sh.Store.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		mails.sent.mu.Lock()
		n := mails.sent.bySubject[fmt.Sprintf("Order #%d confirmed", o.Number)]
		mails.sent.mu.Unlock()
		if n == 0 {
			t.Errorf("order %s: no confirmation mail", id)
		}
	}

	// The current consumers: one delivery per event.
	byConsumer := processedOK(t, reg)
	if byConsumer["order-confirmation"] == 0 {
		t.Error("the retired consumer was deleted without working off its backlog")
	}
	delete(byConsumer, "order-confirmation")
	total := 0
	for _, n := range byConsumer {
		total += n
	}
	// The legacy order's paid event went out twice: once by hand above,
	// once from the outbox row MarkPaid wrote.
	if want := 2*orders + 1; total != want {
		t.Errorf("%d deliveries for %d orders (%v); want %d: one per event", total, orders, byConsumer, want)
	}
}

// processedOK reads surge_events_processed_total{result="ok"} by consumer.
func processedOK(t *testing.T, reg *prometheus.Registry) map[string]int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "surge_events_processed_total" {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == "ok" {
				out[labels["consumer"]] += int(m.Counter.GetValue())
			}
		}
	}
	return out
}
