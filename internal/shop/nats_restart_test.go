package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/natsbus"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestPipelineSurvivesNATSNodeRestart places orders through the storefront
// while the leader of the event stream is killed and restarted, and checks
// that the order pipeline still takes every payment exactly once: one
// capture per order, every order paid, stock committed once, one
// confirmation mail per order, nothing left in the outbox and nothing
// dead-lettered.
//
// It runs an API shop and a worker shop side by side, as `surge serve
// --role api` and `--role worker` run in production: each has its own
// connection to the cluster, which the kill may cut, and the paid events
// the worker writes reach the bus only through the API's outbox relay.
func TestPipelineSurvivesNATSNodeRestart(t *testing.T) {
	const (
		orders = 200
		// pace spreads the checkouts over about four seconds, so that
		// orders are placed, relayed and paid before, during and after the
		// node is down.
		pace = 20 * time.Millisecond
		// downFor is the least time the node stays down: long enough for
		// publishes, fetches and acks to fail and for the handlers' AckWait
		// to run out.
		downFor = 2 * time.Second
		settle  = 90 * time.Second
	)
	began := time.Now()
	cluster := enginetest.NATSChaos(t)
	primary, _ := enginetest.Postgres(t)
	redisURL, prefix := enginetest.Redis(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	mails := &mailCounter{next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		sent: &sentMail{bySubject: map[string]int{}}}
	log := slog.New(mails)
	start := func(role shop.Role) *shop.Shop {
		cfg := shop.Defaults()
		cfg.DataDir = t.TempDir()
		// No read replica: nothing on the pipeline's path reads one, and
		// the test is about the bus.
		cfg.DBURL, cfg.RedisURL, cfg.RedisPrefix = primary, redisURL, prefix
		cfg.NATSURL, cfg.NATSReplicas = strings.Join(cluster.URLs, ","), cluster.Nodes()
		cfg.AckWait = 2 * time.Second
		cfg.SweepEvery = time.Second
		// Payments take long enough that captures are in flight when the
		// node dies.
		cfg.PaymentLatency = 20 * time.Millisecond
		cfg.Admission = false
		cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
		sh, err := shop.Open(ctx, cfg, log, telemetry.NewRegistry())
		if err != nil {
			t.Fatalf("open %s shop: %v", role, err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(runCtx, role) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("%s shop: %v", role, err)
			}
			sh.Close()
		})
		return sh
	}
	api := start(shop.RoleAPI)
	start(shop.RoleWorker)
	srv := httptest.NewServer(api.Handler)
	t.Cleanup(srv.Close)

	const sku = "NR-1"
	c, err := api.Store.CreateCategory(ctx, catalog.Category{Slug: "restart", Name: "Restart"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Store.CreateProduct(ctx, catalog.Product{Slug: "node-restart-tee", Name: "Node Restart Tee",
		Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: sku, Price: money.Money{Amount: 2500, Currency: "USD"}, OnHand: 2 * orders}}}); err != nil {
		t.Fatal(err)
	}

	// The checkouts: one guest each, started every pace.
	var (
		placed    atomic.Int64
		oneThird  = make(chan struct{})
		allPlaced = make(chan struct{})
		mu        sync.Mutex
		orderIDs  = map[string]bool{}
		buyers    sync.WaitGroup
	)
	go func() {
		defer close(allPlaced)
		defer buyers.Wait()
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for i := range orders {
			buyers.Go(func() {
				id, err := buyOne(ctx, srv.URL, sku, fmt.Sprintf("restart-%03d", i))
				if err != nil {
					t.Errorf("buyer %d: %v", i, err)
					return
				}
				mu.Lock()
				orderIDs[id] = true
				mu.Unlock()
				if placed.Add(1) == orders/3 {
					close(oneThird)
				}
			})
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Buyers report to t: they must be done before the test ends.
	t.Cleanup(func() { cancel(); <-allPlaced })

	select {
	case <-oneThird:
	case <-allPlaced:
		t.Fatalf("only %d of %d checkouts succeeded", placed.Load(), orders)
	}

	// Kill the node that leads the event stream while orders keep coming.
	nc, err := nats.Connect(strings.Join(cluster.URLs, ","), nats.Name("restart-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leader := streamLeader(ctx, t, js, natsbus.DefaultStream, "")
	node := cluster.NodeNamed(t, leader)
	db, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	t.Logf("%v in: stopping node %d (%s), leader of stream %s, with %d orders placed and %d paid",
		since(began), node, leader, natsbus.DefaultStream, placed.Load(), countPaid(ctx, t, db))
	logConsumerLeaders(ctx, t, js, natsbus.DefaultStream)
	cluster.StopNode(t, node)
	downSince := time.Now()
	newLeader := streamLeader(ctx, t, js, natsbus.DefaultStream, leader)
	t.Logf("stream leader after %v: %s", since(downSince), newLeader)
	select {
	case <-time.After(time.Until(downSince.Add(downFor))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	t.Logf("starting node %d again with %d orders placed and %d paid", node, placed.Load(), countPaid(ctx, t, db))
	cluster.StartNode(t, node)
	upSince := time.Now()
	t.Logf("node %d healthy after %v down", node, since(downSince))

	<-allPlaced
	if t.Failed() {
		t.FailNow()
	}
	if got := len(orderIDs); got != orders {
		t.Fatalf("%d orders placed, want %d", got, orders)
	}

	// Wait for the pipeline to finish with every order, and for the bus to
	// have nothing left to deliver: acks lost with the node bring messages
	// back after the orders are done, and a second capture or mail would
	// come from one of those.
	var (
		last    pipelineState
		backlog string
	)
	deadline := time.Now().Add(settle)
	for {
		last = readPipelineState(ctx, t, db, sku)
		if last.done(orders) {
			if backlog = consumerBacklog(ctx, js, natsbus.DefaultStream); backlog == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline not done %v after the last checkout: %+v; consumers: %s", settle, last, backlog)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("%v: %+v", ctx.Err(), last)
		}
	}
	t.Logf("pipeline done %v after the node came back: %+v", since(upSince), last)

	// Exactly one capture per order the shop placed, and none refunded.
	rows, err := db.Query(ctx, `SELECT o.id, o.number, o.status, o.confirmation_sent_at IS NOT NULL,
		(SELECT count(*) FROM sim_payment_captures c WHERE c.order_id = o.id),
		(SELECT count(*) FROM sim_payment_refunds r WHERE r.order_id = o.id)
		FROM orders o`)
	if err != nil {
		t.Fatal(err)
	}
	type orderRow struct {
		id, status        string
		number            int64
		confirmed         bool
		captures, refunds int
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orderRow, error) {
		var o orderRow
		err := r.Scan(&o.id, &o.number, &o.status, &o.confirmed, &o.captures, &o.refunds)
		return o, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != orders {
		t.Errorf("the database holds %d orders, want %d", len(got), orders)
	}
	mails.sent.mu.Lock()
	defer mails.sent.mu.Unlock()
	for _, o := range got {
		if !orderIDs[o.id] {
			t.Errorf("order %s in the database was never acknowledged to a buyer", o.id)
		}
		if o.status != "paid" || o.captures != 1 || o.refunds != 0 || !o.confirmed {
			t.Errorf("order %s: status %s, %d captures, %d refunds, confirmation recorded %v; want paid, 1, 0, true",
				o.id, o.status, o.captures, o.refunds, o.confirmed)
		}
		if n := mails.sent.bySubject[fmt.Sprintf("Order #%d confirmed", o.number)]; n != 1 {
			t.Errorf("order %s (#%d): %d confirmation mails sent, want 1", o.id, o.number, n)
		}
	}
	var stray int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sim_payment_captures c
		WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = c.order_id)`).Scan(&stray); err != nil {
		t.Fatal(err)
	}
	if stray != 0 {
		t.Errorf("%d captures for orders that do not exist", stray)
	}
	if last.sold != orders || last.reserved != 0 || last.held != 0 {
		t.Errorf("stock of %s: sold %d, reserved %d, held by reservations %d; want %d, 0, 0",
			sku, last.sold, last.reserved, last.held, orders)
	}
	if last.unpublished != 0 {
		t.Errorf("%d outbox events never published", last.unpublished)
	}
	checkNoDeadLetters(ctx, t, js)
}

// buyOne adds one unit of sku to a fresh guest cart and checks out with
// the idempotency key key, retrying the checkout (same key, so at most one
// order) when the answer is lost or the shop fails; it returns the order ID.
func buyOne(ctx context.Context, base, sku, key string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	post := func(path, body string, hdr ...string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", base+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// Not retried: a lost answer may have added the unit, and a retry would
	// add a second one.
	if code, body, err := post("/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); err != nil || code != 201 {
		return "", fmt.Errorf("add to cart: %d %s %v", code, body, err)
	}
	const checkoutBody = `{"email":"restart@example.com","shipping_address":{"name":"Node Restart","line1":"1 Leader Way",
		"city":"Raft","postal_code":"3","country":"US"},"payment":{"card_number":"4242424242424242"}}`
	var lastErr error
	for range 5 {
		code, body, err := post("/api/v1/checkout", checkoutBody, "Idempotency-Key", key)
		if err == nil && code == 201 {
			var o struct{ ID string }
			if err := json.Unmarshal([]byte(body), &o); err != nil || o.ID == "" {
				return "", fmt.Errorf("checkout answer %q: %v", body, err)
			}
			return o.ID, nil
		}
		if err == nil && code < 500 {
			return "", fmt.Errorf("checkout: %d %s", code, body)
		}
		lastErr = fmt.Errorf("checkout: %d %s %v", code, body, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", lastErr
}

// streamLeader returns the server name of the stream's leader, waiting
// until there is one other than not (a killed leader that the remaining
// nodes still have to replace).
func streamLeader(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, not string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(actx, stream)
		cancel()
		if err == nil {
			if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" && ci.Leader != not {
				return ci.Leader
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s has no leader (other than %q) after 30s (last error: %v)", stream, not, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// consumerBacklog describes what the stream's consumers have yet to
// deliver or see acknowledged, or returns "" when they have nothing.
func consumerBacklog(ctx context.Context, js jetstream.JetStream, stream string) string {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(actx, stream)
	if err != nil {
		return err.Error()
	}
	var busy []string
	list := s.ListConsumers(actx)
	for ci := range list.Info() {
		if ci.NumPending > 0 || ci.NumAckPending > 0 || ci.NumRedelivered > 0 {
			busy = append(busy, fmt.Sprintf("%s: %d pending, %d unacknowledged, %d redelivered",
				ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered))
		}
	}
	if err := list.Err(); err != nil {
		return err.Error()
	}
	return strings.Join(busy, "; ")
}

// logConsumerLeaders logs which node leads each consumer of the stream:
// whether the killed node also led the consumers the workers pull from
// varies from run to run.
func logConsumerLeaders(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(actx, stream)
	if err != nil {
		t.Logf("consumer leaders: %v", err)
		return
	}
	var leaders []string
	list := s.ListConsumers(actx)
	for ci := range list.Info() {
		if ci.Cluster != nil {
			leaders = append(leaders, ci.Name+"="+ci.Cluster.Leader)
		}
	}
	if err := list.Err(); err != nil {
		t.Logf("consumer leaders: %v", err)
	}
	t.Logf("consumer leaders: %s", strings.Join(leaders, " "))
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func countPaid(ctx context.Context, t *testing.T, db *pgx.Conn) int {
	t.Helper()
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'paid'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pipelineState is how far the pipeline has got, read from the database.
type pipelineState struct {
	orders, paid, confirmed, captures int
	sold, reserved, held              int64
	unpublished                       int
}

// done reports whether the pipeline has finished with n orders: all paid,
// captured, confirmed and their stock committed, and every event written
// published.
func (s pipelineState) done(n int) bool {
	return s.orders == n && s.paid == n && s.confirmed == n && s.captures >= n &&
		s.sold == int64(n) && s.reserved == 0 && s.held == 0 && s.unpublished == 0
}

func readPipelineState(ctx context.Context, t *testing.T, db *pgx.Conn, sku string) pipelineState {
	t.Helper()
	var s pipelineState
	err := db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM orders),
		(SELECT count(*) FROM orders WHERE status = 'paid'),
		(SELECT count(*) FROM orders WHERE confirmation_sent_at IS NOT NULL),
		(SELECT count(*) FROM sim_payment_captures),
		v.sold, v.reserved,
		(SELECT coalesce(sum(quantity), 0) FROM reservations WHERE sku = v.sku AND status = 'held')::bigint,
		(SELECT count(*) FROM outbox WHERE published_at IS NULL)
		FROM variants v WHERE v.sku = $1`, sku).
		Scan(&s.orders, &s.paid, &s.confirmed, &s.captures, &s.sold, &s.reserved, &s.held, &s.unpublished)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNoDeadLetters fails the test if any consumer parked a message in the
// dead-letter stream, naming each one and why.
func checkNoDeadLetters(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(ctx, natsbus.DefaultDeadLetterStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return
	}
	t.Errorf("%d messages dead-lettered", st.Msgs)
	for seq := st.FirstSeq; seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Errorf("dead letter %d: %v", seq, err)
			continue
		}
		t.Errorf("dead letter %d: consumer %s, message %s, %s attempts: %s", seq, m.Header.Get(natsbus.HeaderConsumer),
			m.Header.Get(natsbus.HeaderMsgID), m.Header.Get(natsbus.HeaderAttempts), m.Header.Get(natsbus.HeaderError))
	}
}

// mailText is the message the log mail sender writes for each mail it
// "sends"; counting these lines counts the mails.
const mailText = "mail (log sender, not delivered)"

// sentMail counts the mails sent, by subject.
type sentMail struct {
	mu        sync.Mutex
	bySubject map[string]int
}

// mailCounter is a slog.Handler that counts the log sender's mails and
// passes everything else on to next, which decides what to keep.
type mailCounter struct {
	next slog.Handler
	sent *sentMail
}

func (h *mailCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *mailCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == mailText {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "subject" {
				h.sent.mu.Lock()
				h.sent.bySubject[a.Value.String()]++
				h.sent.mu.Unlock()
				return false
			}
			return true
		})
		return nil
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *mailCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &mailCounter{next: h.next.WithAttrs(as), sent: h.sent}
}

func (h *mailCounter) WithGroup(name string) slog.Handler {
	return &mailCounter{next: h.next.WithGroup(name), sent: h.sent}
}
