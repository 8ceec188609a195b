package catalog

import "context"

// Store is the storage contract for the catalog. Every adapter (SQLite,
// PostgreSQL) passes the conformance suite in internal/storetest.
//
// Reads that return ErrNotFound for a missing row never return a zero value
// with a nil error.
type Store interface {
	// CreateCategory stores c and returns it with its ID.
	CreateCategory(ctx context.Context, c Category) (Category, error)
	// Categories lists every category, parents before children, by position.
	Categories(ctx context.Context) ([]Category, error)
	// CategoryBySlug finds one category.
	CategoryBySlug(ctx context.Context, slug string) (Category, error)

	// CreateProduct stores p with its variants and returns it with IDs set.
	CreateProduct(ctx context.Context, p Product) (Product, error)
	// UpdateProduct changes the product's own fields (not its variants),
	// matched by ID, and returns the stored product with variants.
	UpdateProduct(ctx context.Context, p Product) (Product, error)
	// ProductBySlug returns a product with its variants, whatever its status.
	ProductBySlug(ctx context.Context, slug string) (Product, error)
	// ProductByID returns a product with its variants, whatever its status.
	ProductByID(ctx context.Context, id int64) (Product, error)
	// SearchProducts returns one keyset page of products without variants.
	SearchProducts(ctx context.Context, q Query) (Page, error)
	// CountProducts counts products of any status.
	CountProducts(ctx context.Context) (int, error)

	// CreateVariant adds a variant to an existing product.
	CreateVariant(ctx context.Context, productID int64, v Variant) (Variant, error)
	// UpdateVariant changes price, options and position of the variant with
	// v.SKU.
	UpdateVariant(ctx context.Context, v Variant) (Variant, error)
	// VariantBySKU returns one variant.
	VariantBySKU(ctx context.Context, sku string) (Variant, error)
	// SetStock sets on hand for sku. It refuses (ErrInvalid) a value below
	// what is already reserved plus sold, so sold + reserved <= on hand holds.
	SetStock(ctx context.Context, sku string, onHand int64) (Variant, error)

	// ImportCatalog stores many categories and products at once (the demo
	// seed), in one transaction. Category ParentID and product CategoryID
	// refer to positions+1 in cats; they are rewritten to stored IDs.
	ImportCatalog(ctx context.Context, cats []Category, products []Product) error
}
