package storefront

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticVersion fingerprints the embedded assets so their URLs can be
// cached for a year and still change with a release.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(path)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

var pageNames = []string{"home", "category", "product", "search", "error", "cart", "checkout", "order", "signin", "signup", "account", "drop", "queue", "standby", "drops", "drop-report", "admin-signin", "admin-drops", "notify"}

// pageFuncs are the functions templates may call.
var pageFuncs = template.FuncMap{
	// reportTable hands a titled table of report rows to "report-table".
	"reportTable": func(title string, rows []reportRow) any {
		return struct {
			Title string
			Rows  []reportRow
		}{title, rows}
	},
}

// parsePages parses each page together with the shared layout at start, so
// a broken template fails the start rather than a request.
func parsePages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		files := []string{"templates/layout.html", "templates/notify-form.html", "templates/" + name + ".html"}
		t, err := template.New(name).Funcs(pageFuncs).ParseFS(templateFS, files...)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// pageData is what every page template gets; Data is the page's own part.
type pageData struct {
	Shop        string
	Description string
	Canonical   string
	CSS, JS     string
	// StaticVersion fingerprints the embedded assets for their URLs.
	StaticVersion string
	Q             string
	Nav           []catalog.Category
	ActiveRoot    int64
	// Refresh, in seconds, reloads the page when scripts are off (pages
	// with scripts poll a small JSON endpoint instead).
	Refresh int
	Data    any
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, tree *catalog.Tree, pd pageData) {
	pd.Shop = s.ShopName
	pd.CSS = "/static/app.css?v=" + staticVersion
	pd.JS = "/static/app.js?v=" + staticVersion
	pd.StaticVersion = staticVersion
	if tree != nil {
		pd.Nav = tree.Roots()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := s.pages[name].ExecuteTemplate(buf, "layout", pd); err != nil {
		s.Logger.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		w.Header().Del("Surrogate-Key")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageError renders an error page. Not-found pages are cacheable (tagged
// missing, purged when products change); other errors are not.
func (s *server) pageError(w http.ResponseWriter, r *http.Request, tree *catalog.Tree, err error) {
	status := errorStatus(err)
	data := struct{ Title, Message string }{http.StatusText(status), "Something went wrong on our side. Please try again in a moment."}
	switch {
	case status == http.StatusNotFound:
		tag(w, catalog.TagMissing)
		data.Message = "We could not find that page. It may have moved, or the product is no longer available."
	case status < 500:
		w.Header().Del("Surrogate-Key")
		data.Message = err.Error()
	default:
		w.Header().Del("Surrogate-Key")
		s.Logger.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
	}
	if status >= 500 {
		w.Header().Set("Retry-After", "1")
	}
	s.render(w, r, status, "error", tree, pageData{Data: data})
}

type sortOption struct {
	Value, Label string
	Selected     bool
}

type filters struct {
	Action   string
	Query    catalog.Query
	Sorts    []sortOption
	Min, Max string // price bounds in currency units, as a shopper types them
}

type pager struct{ First, Next string }

func newFilters(action, currency string, q catalog.Query) filters {
	opts := []sortOption{{Value: string(catalog.SortNewest), Label: "Newest"}, {Value: string(catalog.SortPriceAsc), Label: "Price: low to high"}, {Value: string(catalog.SortPriceDesc), Label: "Price: high to low"}}
	if q.Text != "" {
		opts = append([]sortOption{{Value: string(catalog.SortRelevance), Label: "Best match"}}, opts...)
	}
	for i := range opts {
		opts[i].Selected = opts[i].Value == string(q.Sort)
	}
	f := filters{Action: action, Query: q, Sorts: opts}
	if q.MinPrice > 0 {
		f.Min = money.Money{Amount: q.MinPrice, Currency: currency}.Decimal()
	}
	if q.MaxPrice > 0 {
		f.Max = money.Money{Amount: q.MaxPrice, Currency: currency}.Decimal()
	}
	return f
}

// pageQuery parses listing parameters for a page. Besides the API's
// parameters it takes min and max in currency units ("50" or "49.99"),
// which is what a shopper types into the filter form.
func pageQuery(raw, currency string) (catalog.Query, url.Values, error) {
	q, v, err := catalog.ParseRawQuery(raw)
	if err != nil {
		return q, v, err
	}
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"min", &q.MinPrice}, {"max", &q.MaxPrice}} {
		s := strings.TrimSpace(v.Get(b.name))
		if s == "" {
			continue
		}
		m, err := money.Parse(s, currency)
		if err != nil {
			return q, v, catalog.Invalidf("%s price: enter an amount such as 25 or 49.99", b.name)
		}
		*b.dst = m.Amount
	}
	if q.MaxPrice > 0 && q.MinPrice > q.MaxPrice {
		return q, v, catalog.Invalidf("the minimum price is above the maximum price")
	}
	return q, v, nil
}

func newPager(path string, q catalog.Query, next string) pager {
	var p pager
	v := q.Values()
	if q.After != nil {
		p.First = withQuery(path, v)
	}
	if next != "" {
		v.Set("cursor", next)
		p.Next = withQuery(path, v)
	}
	return p
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func (s *server) handleHome() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		newest, err := s.Catalog.Search(r.Context(), catalog.Query{Sort: catalog.SortNewest, Limit: 8})
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		type tile struct {
			Category catalog.Category
			Children []catalog.Category
		}
		var tiles []tile
		for _, c := range tree.Roots() {
			tiles = append(tiles, tile{c, tree.Children(c.ID)})
		}
		tag(w, catalog.TagHome, catalog.TagCategories)
		s.render(w, r, http.StatusOK, "home", tree, pageData{
			Description: "Shop new arrivals and every category.",
			Canonical:   "/",
			Data: struct {
				Categories []tile
				New        []catalog.Product
			}{tiles, newest.Items},
		})
	})
}

func (s *server) handleCategoryPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		c, ok := tree.BySlug(r.PathValue("slug"))
		if !ok {
			s.pageError(w, r, tree, fmt.Errorf("category %q: %w", r.PathValue("slug"), catalog.ErrNotFound))
			return
		}
		q, _, err := pageQuery(r.URL.RawQuery, s.Catalog.Currency())
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		q.Text = "" // category pages browse; searching is /search
		q.CategoryID = c.ID
		page, err := s.Catalog.Search(r.Context(), q)
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		path := tree.Path(c.ID)
		tag(w, catalog.CategoryTag(c.ID), catalog.TagCategories)
		s.render(w, r, http.StatusOK, "category", tree, pageData{
			Description: c.Description,
			Canonical:   "/categories/" + c.Slug,
			ActiveRoot:  path[0].ID,
			Data: struct {
				Category catalog.Category
				Path     []catalog.Category
				Children []catalog.Category
				Products []catalog.Product
				Filters  filters
				Pager    pager
			}{c, path, tree.Children(c.ID), page.Items, newFilters("/categories/"+c.Slug, s.Catalog.Currency(), q), newPager("/categories/"+c.Slug, q, page.NextCursor)},
		})
	})
}

func (s *server) handleProductPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		p, err := s.Catalog.Product(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		selected := defaultVariant(p.Variants, r.URL.Query().Get("sku"))
		path := tree.Path(p.CategoryID)
		var root int64
		if len(path) > 0 {
			root = path[0].ID
		}
		desc := p.Description
		if len(desc) > 160 {
			desc = desc[:157] + "..."
		}
		tags := []string{catalog.ProductTag(p.ID), catalog.TagCategories}
		dropOf, dropTagged := s.productDropOf(r.Context(), p)
		if dropTagged != "" {
			tags = append(tags, dropTagged)
		}
		tag(w, tags...)
		s.render(w, r, http.StatusOK, "product", tree, pageData{
			Description: desc,
			Canonical:   "/products/" + p.Slug,
			ActiveRoot:  root,
			Data: struct {
				Product  catalog.Product
				Path     []catalog.Category
				Selected catalog.Variant
				Drop     *productDrop
			}{p, path, selected, dropOf},
		})
	})
}

// defaultVariant picks the variant named by sku, else the first one in
// stock, else the first.
func defaultVariant(vs []catalog.Variant, sku string) catalog.Variant {
	if len(vs) == 0 {
		return catalog.Variant{}
	}
	for _, v := range vs {
		if v.SKU == sku {
			return v
		}
	}
	for _, v := range vs {
		if v.Available() > 0 {
			return v
		}
	}
	return vs[0]
}

func (s *server) handleSearchPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		q, _, err := pageQuery(r.URL.RawQuery, s.Catalog.Currency())
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		page, err := s.Catalog.Search(r.Context(), q)
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		tag(w, catalog.TagSearch, catalog.TagCategories)
		s.render(w, r, http.StatusOK, "search", tree, pageData{
			Description: "Search the shop.",
			Q:           q.Text,
			Data: struct {
				Products []catalog.Product
				Filters  filters
				Pager    pager
			}{page.Items, newFilters("/search", s.Catalog.Currency(), q), newPager("/search", q, page.NextCursor)},
		})
	})
}

func (s *server) handleNotFoundPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, _ := s.Catalog.Tree(r.Context())
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.pageError(w, r, tree, fmt.Errorf("page %q: %w", r.URL.Path, catalog.ErrNotFound))
	})
}
