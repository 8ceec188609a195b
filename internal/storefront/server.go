// Package storefront is the shop's public HTTP face: the JSON API under
// /api/v1, the admin API under /api/v1/admin, and the server-rendered
// pages. Every route is listed in routes.go.
package storefront

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// Deps is what the storefront needs; main wires it.
type Deps struct {
	Catalog *catalog.Service
	Logger  *slog.Logger
	Metrics *telemetry.HTTPMetrics
	// PageCache wraps the cacheable routes (anonymous pages, public catalog
	// API, images). Nil serves them uncached.
	PageCache func(http.Handler) http.Handler
	// PurgeCache is called by the admin purge endpoint; nil disables it.
	PurgeCache func(all bool, tags ...string) int
	// AdminToken is the bearer token for /api/v1/admin. Empty disables the
	// admin API: it is never served unauthenticated.
	AdminToken string
	// ShopName appears in page titles and the header.
	ShopName string
	// AccessLog logs one line per request when true.
	AccessLog bool
}

// NewServer returns the public handler.
func NewServer(d Deps) (http.Handler, error) {
	if d.Catalog == nil || d.Logger == nil || d.Metrics == nil {
		return nil, errors.New("storefront: Catalog, Logger and Metrics are required")
	}
	if d.PageCache == nil {
		d.PageCache = func(h http.Handler) http.Handler { return h }
	}
	if d.ShopName == "" {
		d.ShopName = "Surge Demo Shop"
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("storefront templates: %w", err)
	}
	s := &server{Deps: d, pages: pages}
	mux := http.NewServeMux()
	s.routes(mux)
	return observe(d.Logger, d.Metrics, d.AccessLog, mux), nil
}

type server struct {
	Deps
	pages map[string]*template.Template
}

var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)
