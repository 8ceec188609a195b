package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/money"
)

// Page-cache tags. A cached page or API response carries the tags of what
// it shows; a change purges exactly those tags (locally and, through the
// Surrogate-Key header, at a CDN).
const (
	TagHome       = "home"       // the home page
	TagSearch     = "search"     // search results and product listings
	TagCategories = "categories" // anything showing the category tree
	TagMissing    = "missing"    // cached not-found answers, which a new product may fill
)

// ProductTag tags pages that show one product in detail.
func ProductTag(id int64) string { return "product:" + strconv.FormatInt(id, 10) }

// CategoryTag tags listing pages of one category.
func CategoryTag(id int64) string { return "category:" + strconv.FormatInt(id, 10) }

// ServiceOptions configures a Service.
type ServiceOptions struct {
	// ObjectCacheSize bounds the number of products held in the object
	// cache; 0 means 10,000.
	ObjectCacheSize int
	// ObjectTTL is how long a cached product or category list is trusted
	// without a purge; 0 means one minute. Purges on change make it short
	// only as a safety net for writes made by other processes.
	ObjectTTL time.Duration
	// Purge is called with the page-cache tags a change invalidates. Nil
	// means nothing to purge.
	Purge func(tags ...string)
	// Currency is the shop currency new prices must use; "" means USD.
	Currency string
}

// Service is the catalog as the storefront and admin API see it: store
// reads behind an object cache, and writes that invalidate caches.
type Service struct {
	store      Store
	products   *otter.Cache[string, Product]
	categories *otter.Cache[struct{}, *Tree]
	pstats     *stats.Counter
	purge      func(tags ...string)
	currency   string
}

// NewService returns a Service reading and writing store.
func NewService(store Store, opts ServiceOptions) (*Service, error) {
	if opts.ObjectCacheSize <= 0 {
		opts.ObjectCacheSize = 10_000
	}
	if opts.ObjectTTL <= 0 {
		opts.ObjectTTL = time.Minute
	}
	if opts.Purge == nil {
		opts.Purge = func(...string) {}
	}
	if opts.Currency == "" {
		opts.Currency = "USD"
	}
	if !money.ValidCurrency(opts.Currency) {
		return nil, fmt.Errorf("catalog service: currency %q is not an ISO 4217 code", opts.Currency)
	}
	pstats := stats.NewCounter()
	products, err := otter.New(&otter.Options[string, Product]{
		MaximumSize:      opts.ObjectCacheSize,
		ExpiryCalculator: otter.ExpiryWriting[string, Product](opts.ObjectTTL),
		StatsRecorder:    pstats,
	})
	if err != nil {
		return nil, fmt.Errorf("catalog object cache: %w", err)
	}
	categories, err := otter.New(&otter.Options[struct{}, *Tree]{
		MaximumSize:      1,
		ExpiryCalculator: otter.ExpiryWriting[struct{}, *Tree](opts.ObjectTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("catalog category cache: %w", err)
	}
	return &Service{store: store, products: products, categories: categories, pstats: pstats, purge: opts.Purge, currency: opts.Currency}, nil
}

// Currency is the shop's currency.
func (s *Service) Currency() string { return s.currency }

// Register exports object-cache counters to reg.
func (s *Service) Register(reg prometheus.Registerer) error {
	snap := func(f func(stats.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(s.pstats.Snapshot())) }
	}
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "surge_object_cache_requests_total", Help: "Object cache lookups of products.", ConstLabels: prometheus.Labels{"result": "hit"}}, snap(func(st stats.Stats) uint64 { return st.Hits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "surge_object_cache_requests_total", Help: "Object cache lookups of products.", ConstLabels: prometheus.Labels{"result": "miss"}}, snap(func(st stats.Stats) uint64 { return st.Misses })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "surge_object_cache_evictions_total", Help: "Products evicted from the object cache."}, snap(func(st stats.Stats) uint64 { return st.Evictions })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "surge_object_cache_entries", Help: "Products held in the object cache."}, func() float64 { return float64(s.products.EstimatedSize()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register object cache metrics: %w", err)
		}
	}
	return nil
}

// Tree returns the category tree, cached.
func (s *Service) Tree(ctx context.Context) (*Tree, error) {
	return s.categories.Get(ctx, struct{}{}, otter.LoaderFunc[struct{}, *Tree](func(ctx context.Context, _ struct{}) (*Tree, error) {
		cats, err := s.store.Categories(ctx)
		if err != nil {
			return nil, fmt.Errorf("load categories: %w", err)
		}
		return NewTree(cats), nil
	}))
}

// Product returns an active product with its variants, by slug. Drafts are
// ErrNotFound here: the storefront never shows them.
func (s *Service) Product(ctx context.Context, slug string) (Product, error) {
	if !ValidSlug(slug) {
		return Product{}, fmt.Errorf("product %q: %w", slug, ErrNotFound)
	}
	p, err := s.products.Get(ctx, slug, otter.LoaderFunc[string, Product](func(ctx context.Context, slug string) (Product, error) {
		p, err := s.store.ProductBySlug(ctx, slug)
		if errors.Is(err, ErrNotFound) {
			// otter's ErrNotFound keeps the miss out of its load-failure count.
			return Product{}, errors.Join(err, otter.ErrNotFound)
		}
		return p, err
	}))
	if err != nil {
		return Product{}, err
	}
	if p.Status != StatusActive {
		return Product{}, fmt.Errorf("product %q: %w", slug, ErrNotFound)
	}
	return p, nil
}

// Search returns one page of active products. Listings are not object
// cached: the page cache in front of them does that job.
func (s *Service) Search(ctx context.Context, q Query) (Page, error) {
	q.IncludeDrafts = false
	return s.store.SearchProducts(ctx, q)
}

// AdminSearch lists products including drafts.
func (s *Service) AdminSearch(ctx context.Context, q Query) (Page, error) {
	q.IncludeDrafts = true
	return s.store.SearchProducts(ctx, q)
}

// AdminProduct returns a product whatever its status, bypassing caches so
// an admin always sees what is stored.
func (s *Service) AdminProduct(ctx context.Context, slug string) (Product, error) {
	return s.store.ProductBySlug(ctx, slug)
}

// CreateCategory adds a category.
func (s *Service) CreateCategory(ctx context.Context, c Category) (Category, error) {
	c, err := s.store.CreateCategory(ctx, c)
	if err != nil {
		return Category{}, err
	}
	s.categories.InvalidateAll()
	// The tree shows in every page's navigation.
	s.purge(TagCategories, TagMissing)
	return c, nil
}

// CreateProduct adds a product with its variants.
func (s *Service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	if err := s.checkCurrency(p.Variants...); err != nil {
		return Product{}, err
	}
	p, err := s.store.CreateProduct(ctx, p)
	if err != nil {
		return Product{}, err
	}
	s.changed(ctx, p)
	return p, nil
}

// ProductPatch holds the fields an admin may change on a product; nil
// fields stay as they are.
type ProductPatch struct {
	Slug        *string      `json:"slug"`
	Name        *string      `json:"name"`
	Description *string      `json:"description"`
	Status      *Status      `json:"status"`
	CategoryID  *int64       `json:"category_id"`
	Images      *[]Image     `json:"images"`
	Attributes  *[]Attribute `json:"attributes"`
}

// UpdateProduct applies patch to the product with slug.
func (s *Service) UpdateProduct(ctx context.Context, slug string, patch ProductPatch) (Product, error) {
	old, err := s.store.ProductBySlug(ctx, slug)
	if err != nil {
		return Product{}, err
	}
	p := old
	set(&p.Slug, patch.Slug)
	set(&p.Name, patch.Name)
	set(&p.Description, patch.Description)
	set(&p.Status, patch.Status)
	set(&p.CategoryID, patch.CategoryID)
	set(&p.Images, patch.Images)
	set(&p.Attributes, patch.Attributes)
	p.Variants = nil // validated on their own; the update leaves them alone
	p, err = s.store.UpdateProduct(ctx, p)
	if err != nil {
		return Product{}, err
	}
	s.changed(ctx, old, p)
	return p, nil
}

// VariantPatch holds the fields an admin may change on a variant.
type VariantPatch struct {
	Price    *money.Money `json:"price"`
	Options  *[]Option    `json:"options"`
	Position *int         `json:"position"`
}

// CreateVariant adds a variant to the product with slug.
func (s *Service) CreateVariant(ctx context.Context, slug string, v Variant) (Variant, error) {
	if err := s.checkCurrency(v); err != nil {
		return Variant{}, err
	}
	p, err := s.store.ProductBySlug(ctx, slug)
	if err != nil {
		return Variant{}, err
	}
	v, err = s.store.CreateVariant(ctx, p.ID, v)
	if err != nil {
		return Variant{}, err
	}
	s.changed(ctx, p)
	return v, nil
}

// UpdateVariant applies patch to the variant with sku.
func (s *Service) UpdateVariant(ctx context.Context, sku string, patch VariantPatch) (Variant, error) {
	v, err := s.store.VariantBySKU(ctx, sku)
	if err != nil {
		return Variant{}, err
	}
	set(&v.Price, patch.Price)
	set(&v.Options, patch.Options)
	set(&v.Position, patch.Position)
	if err := s.checkCurrency(v); err != nil {
		return Variant{}, err
	}
	v, err = s.store.UpdateVariant(ctx, v)
	if err != nil {
		return Variant{}, err
	}
	s.variantChanged(ctx, v)
	return v, nil
}

// SetStock sets the on-hand count of sku.
func (s *Service) SetStock(ctx context.Context, sku string, onHand int64) (Variant, error) {
	if onHand < 0 {
		return Variant{}, Invalidf("on_hand: must not be negative")
	}
	v, err := s.store.SetStock(ctx, sku, onHand)
	if err != nil {
		return Variant{}, err
	}
	s.variantChanged(ctx, v)
	return v, nil
}

func (s *Service) checkCurrency(vs ...Variant) error {
	for _, v := range vs {
		if v.Price.Currency != s.currency {
			return Invalidf("variant %s price: currency must be the shop currency %s, got %q", v.SKU, s.currency, v.Price.Currency)
		}
	}
	return nil
}

func (s *Service) variantChanged(ctx context.Context, v Variant) {
	p, err := s.store.ProductByID(ctx, v.ProductID)
	if err != nil {
		// The variant was just written, so its product exists; if reading it
		// failed, purge broadly rather than leave a stale page.
		s.products.InvalidateAll()
		s.purge(TagHome, TagSearch, TagCategories)
		return
	}
	s.changed(ctx, p)
}

// changed drops cached copies of the given versions of a product (before and
// after an update, since slug and category may have moved) and purges every
// page that shows them.
func (s *Service) changed(ctx context.Context, versions ...Product) {
	tags := []string{TagHome, TagSearch, TagMissing}
	tree, _ := s.Tree(ctx)
	for _, p := range versions {
		s.products.Invalidate(p.Slug)
		tags = append(tags, ProductTag(p.ID))
		if tree != nil {
			for _, c := range tree.Path(p.CategoryID) {
				tags = append(tags, CategoryTag(c.ID))
			}
		} else {
			tags = append(tags, CategoryTag(p.CategoryID))
		}
	}
	s.purge(tags...)
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
