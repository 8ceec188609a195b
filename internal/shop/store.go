package shop

import (
	"context"
	"database/sql"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/outbox"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/pipeline"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/storefront"
)

// Store is everything the assembled shop keeps in its database: the
// catalog, customers, sessions, carts, orders and their outbox, and drops.
// The embedded SQLite store and the PostgreSQL store both implement it and
// both pass the same conformance suites (internal/storetest).
type Store interface {
	catalog.Store
	checkout.Store
	cart.Store
	session.Store
	pipeline.Store
	outbox.Source

	drop.Store
	customer.Store
	storefront.Accounts
	dropreport.Store

	Ledger(ctx context.Context, sku string) (catalog.StockLedger, error)

	// The "notify me" lists and the ledger of the worker's mail jobs.
	notify.Store
	jobs.Store

	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	Close() error
	// Writer is a database/sql handle on the primary, where the simulated
	// payment provider keeps its records.
	Writer() *sql.DB
}

var (
	_ Store = (*sqlitestore.Store)(nil)
	_ Store = (*pgstore.Store)(nil)
)
