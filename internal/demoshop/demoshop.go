// Package demoshop generates a deterministic demo catalog for a fashion and
// lifestyle store: a fixed category tree and any number of plausible
// products with variants, prices, stock and images. It feeds
// catalog.Store.ImportCatalog for `surge seed`, demos and load tests.
package demoshop

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// Defaults for the zero Options.
const (
	DefaultProducts = 1250
	DefaultSeed     = 1
	DefaultCurrency = "USD"
)

// defaultNow is the base creation time when Options.Now is zero: fixed, so
// that the zero Options always give the same catalog.
var defaultNow = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Options shapes a generated catalog. The zero value is the standard demo.
type Options struct {
	// Products is how many products to make; 0 or less means 1,250.
	Products int
	// Seed picks one of many equally plausible catalogs; 0 means 1.
	Seed int64
	// Currency is the ISO 4217 code of every price; "" means USD. Prices
	// are chosen as two-decimal amounts and used as minor units as they
	// are, so 4950 is 49.50 USD or 4,950 JPY.
	Currency string
	// Now is the base creation time: products are created over the year
	// before it. The zero value means 2026-01-01T00:00:00Z, not the clock,
	// so that output stays deterministic; pass time.Now() for a catalog
	// whose newest products look new.
	Now time.Time
}

func (o Options) withDefaults() Options {
	if o.Products <= 0 {
		o.Products = DefaultProducts
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	if o.Now.IsZero() {
		o.Now = defaultNow
	}
	// UTC drops the monotonic clock reading and any local zone, so equal
	// Options give identical values.
	o.Now = o.Now.UTC()
	return o
}

// Generate returns the category tree and opts.Products products, in the form
// catalog.Store.ImportCatalog takes: IDs are zero, and a category's ParentID
// and a product's CategoryID are the referenced category's index in cats
// plus one (0 for no parent). Products are assigned to leaf categories only
// and are ordered oldest first.
//
// The same Options always give identical output. Product slugs and SKUs
// are unique however many products are asked for; names may repeat, as
// they do in real shops.
func Generate(opts Options) (cats []catalog.Category, products []catalog.Product) {
	opts = opts.withDefaults()
	cats = make([]catalog.Category, len(categoryList))
	copy(cats, categoryList)

	g := newGenerator(opts)
	products = make([]catalog.Product, opts.Products)
	for i := range products {
		g.product(&products[i], i)
	}
	return cats, products
}

// Option names on variants.
const (
	OptionSize   = "Size"
	OptionColour = "Colour"
)

// The year before Now, in seconds, over which products are created.
const createdSpan = 365 * 24 * 60 * 60

// slab sizes: backing arrays are carved into per-product slices, so a large
// catalog costs a few thousand allocations instead of several per product.
const slabLen = 4096

type generator struct {
	opts     Options
	rng      *rand.Rand
	weights  []int                // cumulative department weights
	slugs    map[string]*nameSlug // by product name
	bySlug   map[string]*nameSlug // by base slug
	desc     []byte
	variants []catalog.Variant
	options  []catalog.Option
	images   []catalog.Image
	attrs    []catalog.Attribute
}

func newGenerator(opts Options) *generator {
	g := &generator{
		opts: opts,
		// The second PCG word is a fixed stream selector; the seed picks the
		// sequence.
		rng:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x5375726765)),
		slugs:  make(map[string]*nameSlug, min(opts.Products, 1<<15)),
		bySlug: make(map[string]*nameSlug, min(opts.Products, 1<<15)),
		desc:   make([]byte, 0, 512),
	}
	total := 0
	for _, d := range departments {
		total += d.weight
		g.weights = append(g.weights, total)
	}
	return g
}

// pick returns a random element of s.
func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func (g *generator) department() *department {
	w := g.rng.IntN(g.weights[len(g.weights)-1])
	for i, c := range g.weights {
		if w < c {
			return &departments[i]
		}
	}
	panic("unreachable")
}

// product fills p as the i-th (0-based) product.
func (g *generator) product(p *catalog.Product, i int) {
	r := g.rng
	d := g.department()
	t := &d.types[r.IntN(len(d.types))]
	mats := t.mats
	if mats == nil {
		mats = d.mats
	}
	m := pick(r, mats)

	// Name: [modifier] material [style] type, e.g. "Washed Linen Relaxed Shirt".
	var mod string
	if len(m.mods) > 0 && r.IntN(2) == 0 {
		mod = pick(r, m.mods)
	}
	var st style
	if !t.plain && len(d.styles) > 0 && r.IntN(10) < 6 {
		st = pick(r, d.styles)
	}
	name := joinWords(mod, m.name, st.word, t.name)

	p.Name = name
	p.Slug = g.slug(name)
	p.CategoryID = int64(d.cat + 1)
	p.Status = catalog.StatusActive
	if r.IntN(100) == 0 {
		p.Status = catalog.StatusDraft
	}
	p.Description = g.description(d, t, m, st, name)
	p.Attributes = g.attributes(m, st)
	p.Images = g.imageList(p.Slug, name, 1+r.IntN(3))
	g.variantList(p, i, d, t, m)

	// Creation times rise with i: each product gets its own slice of the
	// year, with a random moment inside it, so the list is oldest first.
	n := int64(g.opts.Products)
	step := max(createdSpan/n, 1)
	off := int64(i)*createdSpan/n + r.Int64N(step)
	start := g.opts.Now.Add(-createdSpan * time.Second)
	p.CreatedAt = start.Add(time.Duration(off) * time.Second)
	p.UpdatedAt = p.CreatedAt
	if r.IntN(10) < 3 {
		if left := createdSpan - off; left > 0 {
			p.UpdatedAt = p.CreatedAt.Add(time.Duration(r.Int64N(left)) * time.Second)
		}
	}
}

func joinWords(words ...string) string {
	n := 0
	for _, w := range words {
		n += len(w) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for _, w := range words {
		if w == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

// slug makes a unique slug from name: the first product with a name gets
// the plain slug, later ones "-2", "-3" and so on. Names hold no digits, so
// a numbered slug can never equal another name's plain slug.
func (g *generator) slug(name string) string {
	// A repeated name skips Slugify. Names that differ but slugify alike
	// ("Pour-Over", "Pour Over") share one counter through bySlug.
	s := g.slugs[name]
	if s == nil {
		base := catalog.Slugify(name)
		s = g.bySlug[base]
		if s == nil {
			s = &nameSlug{base: base}
			g.bySlug[base] = s
		}
		g.slugs[name] = s
	}
	s.count++
	if s.count > 1 {
		return s.base + "-" + strconv.Itoa(s.count)
	}
	return s.base
}

type nameSlug struct {
	base  string
	count int
}

// description writes 2-4 sentences: an opening naming the material, then
// optionally fit and a feature, then care.
func (g *generator) description(d *department, t *productType, m *material, st style, name string) string {
	r := g.rng
	b := g.desc[:0]
	noun := strings.ToLower(t.name)
	if st.word != "" && r.IntN(2) == 0 {
		noun = strings.ToLower(st.word) + " " + noun
	}
	verb, this := "is", "this"
	if t.plural {
		verb, this = "are", "these"
	}
	switch r.IntN(4) {
	case 0: // "A relaxed shirt in washed European linen ..."
		if t.plural {
			b = append(b, capitalize(noun)...)
		} else {
			b = append(b, capitalize(article(noun))...)
			b = append(b, ' ')
			b = append(b, noun...)
		}
		b = append(b, " in "...)
		b = append(b, m.phrase...)
		b = append(b, '.')
	case 1:
		b = append(b, "Our "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, verb...)
		b = append(b, " made from "...)
		b = append(b, m.phrase...)
		b = append(b, '.')
	case 2:
		b = append(b, "Cut from "...)
		b = append(b, m.phrase...)
		b = append(b, ", "...)
		b = append(b, this...)
		b = append(b, ' ')
		b = append(b, noun...)
		b = append(b, ' ')
		b = append(b, verb...)
		b = append(b, ' ')
		b = append(b, pick(r, d.praise)...)
		b = append(b, '.')
	default:
		b = append(b, capitalize(this)...)
		b = append(b, ' ')
		b = append(b, noun...)
		b = append(b, ' ')
		b = append(b, verb...)
		b = append(b, ' ')
		b = append(b, pick(r, d.praise)...)
		b = append(b, ", made from "...)
		b = append(b, m.phrase...)
		b = append(b, '.')
	}
	if r.IntN(10) < 7 {
		fit := st.fit
		if fit == "" {
			fit = pick(r, d.fits)
		}
		b = append(b, ' ')
		b = append(b, fit...)
	}
	if r.IntN(2) == 0 {
		b = append(b, ' ')
		b = append(b, pick(r, d.features)...)
	}
	b = append(b, ' ')
	b = append(b, m.care...)
	g.desc = b
	return string(b)
}

func article(word string) string {
	switch word[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an"
	}
	return "a"
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func (g *generator) attributes(m *material, st style) []catalog.Attribute {
	n := 3
	if st.fit != "" {
		n = 4
	}
	a := g.takeAttrs(n)
	a[0] = catalog.Attribute{Name: "material", Value: m.composition}
	a[1] = catalog.Attribute{Name: "care", Value: m.careShort}
	a[2] = catalog.Attribute{Name: "origin", Value: pick(g.rng, m.origins)}
	if n == 4 {
		a[3] = catalog.Attribute{Name: "fit", Value: st.word}
	}
	return a
}

// Image views after the first, used in alt text.
var imageViews = []string{"", "detail", "styled"}

func (g *generator) imageList(slug, name string, n int) []catalog.Image {
	im := g.takeImages(n)
	for k := range im {
		num := strconv.Itoa(k + 1)
		im[k].URL = "/images/products/" + slug + "/" + num + ".svg"
		im[k].Alt = name
		if k > 0 {
			im[k].Alt = name + ", " + imageViews[k]
		}
	}
	return im
}

// variantWeights is the distribution of variant counts 1..6; with the caps
// some sizings impose, products average about 3.5 variants.
var variantWeights = [6]int{12, 16, 20, 20, 17, 15}

func (g *generator) variantCount() int {
	w := g.rng.IntN(100)
	for i, c := range variantWeights {
		if w < c {
			return i + 1
		}
		w -= c
	}
	return 6
}

// variantList gives p between one and six variants: a window of adjacent
// sizes in one to three colours, or colours alone, with prices and stock.
func (g *generator) variantList(p *catalog.Product, i int, d *department, t *productType, m *material) {
	r := g.rng
	sizes := t.sizes
	if sizes == nil {
		sizes = d.sizes
	}
	k := g.variantCount()

	// Split k into colours × sizes.
	nc, ns := k, 1
	if len(sizes) > 1 {
		switch {
		case k <= len(sizes) && (k < 4 || r.IntN(10) < 7):
			nc, ns = 1, k
		case k%2 == 0 && k/2 <= len(sizes):
			nc, ns = 2, k/2
		case k%3 == 0 && k/3 <= len(sizes):
			nc, ns = 3, k/3
		default:
			ns = min(k, len(sizes))
			nc = 1
		}
	}
	nc = min(nc, len(d.colours))
	k = nc * ns

	// A window of adjacent sizes; colours are distinct picks.
	var window sizing
	if len(sizes) > 0 {
		s0 := r.IntN(len(sizes) - ns + 1)
		window = sizes[s0 : s0+ns]
	}
	var cols [6]int
	for c := 0; c < nc; {
		cols[c] = r.IntN(len(d.colours))
		if !slices.Contains(cols[:c], cols[c]) {
			c++
		}
	}

	// The type's price assumes a typical material; a finer one lifts it by
	// less than its full premium, or leather shoes would cost a fortune.
	base := t.price * (100 + (m.pricePct-100)*2/5) / 100
	base += base * int64(r.IntN(31)-15) / 100 // ±15% so prices vary within a type
	ending := r.IntN(8)                       // one ending for all variants, as shops do
	upcharge := r.IntN(5) == 0                // sometimes the largest sizes cost more

	// Most products have stock in every variant; a few are sold out.
	soldOut := r.IntN(100) < 4

	prefix := make([]byte, 0, 16)
	prefix = append(prefix, "SRG-"...)
	prefix = appendPadded(prefix, i+1, 6)
	nopt := 1
	if len(window) > 0 {
		nopt = 2
	}
	vs := g.takeVariants(k)
	opts := g.takeOptions(k * nopt)
	sku := make([]byte, 0, 32)
	var minPrice int64 = -1
	inStock := false
	for c := 0; c < nc; c++ {
		col := d.colours[cols[c]]
		for s := 0; s < ns; s++ {
			j := c*ns + s
			v := &vs[j]
			o := opts[j*nopt : (j+1)*nopt : (j+1)*nopt]
			sku = append(sku[:0], prefix...)
			price := base
			if len(window) > 0 {
				sz := window[s]
				o[0] = catalog.Option{Name: OptionSize, Value: sz.value}
				sku = append(sku, '-')
				sku = append(sku, sz.code...)
				if sz.pct != 0 {
					price = price * sz.pct / 100
				}
				if sz.large && upcharge {
					price += max(price/10, 500)
				}
			}
			o[nopt-1] = catalog.Option{Name: OptionColour, Value: col.name}
			sku = append(sku, '-')
			sku = append(sku, col.code...)

			v.SKU = string(sku)
			v.Options = o
			v.Price = money.Money{Amount: psychological(price, ending), Currency: g.opts.Currency}
			v.Position = j + 1
			switch {
			case soldOut || r.IntN(1000) < 45:
				v.OnHand = 0
			default:
				v.OnHand = 1 + r.Int64N(200)
			}
			if minPrice < 0 || v.Price.Amount < minPrice {
				minPrice = v.Price.Amount
			}
			inStock = inStock || v.OnHand > 0
		}
	}
	p.Variants = vs
	p.PriceFrom = money.Money{Amount: minPrice, Currency: g.opts.Currency}
	p.InStock = inStock
}

// psychological rounds a price in minor units to one a shop would print.
// ending is 0-7. Under 100.00 the price lands on a multiple of 5.00 and
// then, by ending, just below it (19.99, 5 in 8), 0.50 below it (49.50, 2 in
// 8) or on it (25.00); from 100.00 it lands on a multiple of 10.00 less one
// (129.00) or, for ending 7, on it (130.00).
func psychological(amount int64, ending int) int64 {
	major := (amount + 50) / 100
	if major < 100 {
		major = max((major+2)/5*5, 5)
		switch {
		case ending < 5:
			return major*100 - 1
		case ending < 7:
			return major*100 - 50
		default:
			return major * 100
		}
	}
	major = (major + 5) / 10 * 10
	if ending == 7 {
		return major * 100
	}
	return (major - 1) * 100
}

// appendPadded appends n in decimal, zero-padded to at least width digits.
func appendPadded(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for k := len(s); k < width; k++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// The take functions carve n elements off a slab. The full slice expression
// caps each result, so an append by the caller reallocates instead of
// writing into the next product's elements.

func (g *generator) takeVariants(n int) []catalog.Variant {
	if len(g.variants) < n {
		g.variants = make([]catalog.Variant, max(slabLen, n))
	}
	s := g.variants[:n:n]
	g.variants = g.variants[n:]
	return s
}

func (g *generator) takeOptions(n int) []catalog.Option {
	if len(g.options) < n {
		g.options = make([]catalog.Option, max(2*slabLen, n))
	}
	s := g.options[:n:n]
	g.options = g.options[n:]
	return s
}

func (g *generator) takeImages(n int) []catalog.Image {
	if len(g.images) < n {
		g.images = make([]catalog.Image, max(slabLen, n))
	}
	s := g.images[:n:n]
	g.images = g.images[n:]
	return s
}

func (g *generator) takeAttrs(n int) []catalog.Attribute {
	if len(g.attrs) < n {
		g.attrs = make([]catalog.Attribute, max(slabLen, n))
	}
	s := g.attrs[:n:n]
	g.attrs = g.attrs[n:]
	return s
}
