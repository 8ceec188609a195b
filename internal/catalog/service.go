package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
	// RepeatPurge, when positive, repeats every purge (and shared-cache
	// delete) this long after the first. With read replicas, a replica
	// process may render a page from a database replica that has not yet
	// replayed the change, after the first purge reached it; the second
	// purge, once the replicas have caught up, drops that page. Set it
	// above the usual replica lag.
	RepeatPurge time.Duration
	// Shared is a second-level product cache every replica shares
	// (Redis), consulted on a miss of the in-process one before the
	// store; nil means none. Its failures are ignored: the store answers.
	Shared SharedCache
}

// SharedCache is a byte cache outside the process.
type SharedCache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, keys ...string) error
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
	shared     SharedCache
	ttl        time.Duration
	repeat     time.Duration

	// pending holds the repeat purges not yet run; Close stops them.
	pendingMu sync.Mutex
	pending   map[*time.Timer]struct{}
	closed    bool
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
	return &Service{store: store, products: products, categories: categories, pstats: pstats, purge: opts.Purge, currency: opts.Currency,
		shared: opts.Shared, ttl: opts.ObjectTTL, repeat: opts.RepeatPurge}, nil
}

// Currency is the shop's currency.
func (s *Service) Currency() string { return s.currency }

// ForgetCached drops every cached product and the category tree. Another
// replica changed the catalog: its purge names page-cache tags, which do
// not map back to object-cache keys, and catalog writes are rare enough
// that starting cold is cheaper than being wrong.
func (s *Service) ForgetCached() {
	s.products.InvalidateAll()
	s.categories.InvalidateAll()
}

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
	p, err := s.products.Get(ctx, slug, otter.LoaderFunc[string, Product](s.loadProduct))
	if err != nil {
		return Product{}, err
	}
	if p.Status != StatusActive {
		return Product{}, fmt.Errorf("product %q: %w", slug, ErrNotFound)
	}
	return p, nil
}

// loadProduct fills the object cache: from the shared cache when it has
// the product, else from the store (then into the shared cache).
func (s *Service) loadProduct(ctx context.Context, slug string) (Product, error) {
	key := sharedProductKey(slug)
	if s.shared != nil {
		if b, ok, err := s.shared.Get(ctx, key); err == nil && ok {
			var p Product
			if json.Unmarshal(b, &p) == nil && p.Slug == slug {
				return p, nil
			}
		}
	}
	p, err := s.store.ProductBySlug(ctx, slug)
	if errors.Is(err, ErrNotFound) {
		// otter's ErrNotFound keeps the miss out of its load-failure count.
		return Product{}, errors.Join(err, otter.ErrNotFound)
	}
	if err == nil && s.shared != nil {
		if b, jerr := json.Marshal(p); jerr == nil {
			_ = s.shared.Set(ctx, key, b, s.ttl)
		}
	}
	return p, err
}

func sharedProductKey(slug string) string { return "product:" + slug }

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
	s.purgeTags(ctx, nil, TagCategories, TagMissing)
	return c, nil
}

// CreateProduct adds a product with its variants.
func (s *Service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	if err := s.checkCurrency("variants", p.Variants...); err != nil {
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
	if err := s.checkCurrency("", v); err != nil {
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
	if err := s.checkCurrency("", v); err != nil {
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
	if err := CheckOnHand("on_hand", onHand); err != nil {
		return Variant{}, err
	}
	v, err := s.store.SetStock(ctx, sku, onHand)
	if err != nil {
		return Variant{}, err
	}
	s.variantChanged(ctx, v)
	return v, nil
}

// checkCurrency checks that variants are priced in the shop currency;
// list names the field holding them ("variants" in a product, "" for one
// variant on its own).
func (s *Service) checkCurrency(list string, vs ...Variant) error {
	for i, v := range vs {
		if v.Price.Currency != s.currency {
			field := "price.currency"
			if list != "" {
				field = fmt.Sprintf("%s[%d].%s", list, i, field)
			}
			return FieldErrorf(field, "%q: must be the shop currency %s", v.Price.Currency, s.currency)
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
		// Which slug changed is unknown here, so a shared copy stays
		// until it expires (the object TTL).
		s.purgeTags(ctx, nil, TagHome, TagSearch, TagCategories)
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
	keys := make([]string, len(versions))
	for i, p := range versions {
		keys[i] = sharedProductKey(p.Slug)
	}
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
	s.purgeTags(ctx, keys, tags...)
}

// purgeTags deletes the shared-cache keys and purges the tags, now and,
// with RepeatPurge, once more later.
func (s *Service) purgeTags(ctx context.Context, keys []string, tags ...string) {
	do := func(ctx context.Context) {
		if s.shared != nil && len(keys) > 0 {
			_ = s.shared.Delete(ctx, keys...)
		}
		s.purge(tags...)
	}
	do(ctx)
	if s.repeat <= 0 {
		return
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.closed {
		return
	}
	if s.pending == nil {
		s.pending = map[*time.Timer]struct{}{}
	}
	var t *time.Timer
	t = time.AfterFunc(s.repeat, func() {
		s.pendingMu.Lock()
		_, live := s.pending[t]
		delete(s.pending, t)
		s.pendingMu.Unlock()
		if !live {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.products.InvalidateAll()
		s.categories.InvalidateAll()
		do(ctx)
	})
	s.pending[t] = struct{}{}
}

// Close stops the repeat purges still pending; the caches they would
// purge are going away with the service.
func (s *Service) Close() error {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	s.closed = true
	for t := range s.pending {
		t.Stop()
	}
	clear(s.pending)
	return nil
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
