package sqlitestore

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/surge-commerce/surge/internal/catalog"
)

// Relevance is bm25 over (name, description, category) with these weights,
// so a word in the name outranks the same word in a long description.
const rankExpr = `bm25(product_search, 10.0, 1.0, 3.0)`

// SearchProducts returns one keyset page of products, without variants.
//
// Every sort ends with the product ID, so the order is total and the cursor
// (sort key, ID) of the last item on a page says exactly where the next page
// starts, even among equal prices, times or ranks. Pages never use OFFSET,
// so page 1000 costs what page 1 does.
func (s *Store) SearchProducts(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	sort, limit, err := q.Plan()
	if err != nil {
		return catalog.Page{}, err
	}

	var match string
	if strings.TrimSpace(q.Text) != "" {
		match = ftsQuery(q.Text)
		if match == "" {
			// Only punctuation, symbols or emoji: no word can match.
			return catalog.Page{Items: []catalog.Product{}}, nil
		}
	}

	query, args := searchSQL(q, match, sort, limit)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return catalog.Page{}, fmt.Errorf("search products: %w", err)
	}
	defer rows.Close()
	page := catalog.Page{Items: make([]catalog.Product, 0, limit)}
	var rank float64
	for rows.Next() {
		if len(page.Items) == limit {
			last := page.Items[limit-1]
			c := catalog.Cursor{Sort: sort, ID: last.ID}
			switch sort {
			case catalog.SortRelevance:
				c.Rank = rank
			case catalog.SortPriceAsc, catalog.SortPriceDesc:
				c.Price = last.PriceFrom.Amount
			case catalog.SortNewest:
				c.Time = nanos(last.CreatedAt)
			}
			page.NextCursor = c.Encode()
			break
		}
		p, err := scanProduct(rows, &rank)
		if err != nil {
			return catalog.Page{}, fmt.Errorf("search products: %w", err)
		}
		page.Items = append(page.Items, p)
	}
	if err := rows.Err(); err != nil {
		return catalog.Page{}, fmt.Errorf("search products: %w", err)
	}
	return page, nil
}

// searchSQL builds the listing query for q, already checked: sort is the
// effective sort, match the FTS5 query ("" for none), and limit the page
// size. It asks for limit+1 rows.
func searchSQL(q catalog.Query, match string, sort catalog.Sort, limit int) (string, []any) {
	var (
		b     strings.Builder
		args  []any
		where []string
	)
	if q.CategoryID > 0 {
		// The category and all its descendants. UNION (not UNION ALL) stops
		// at rows already seen, so even a cycle in bad data terminates.
		b.WriteString(`WITH RECURSIVE subtree (id) AS (
			SELECT ?
			UNION
			SELECT c.id FROM categories c JOIN subtree ON c.parent_id = subtree.id
		)
		`)
		args = append(args, q.CategoryID)
		where = append(where, `p.category_id IN (SELECT id FROM subtree)`)
	}
	if sort == catalog.SortRelevance {
		b.WriteString(`SELECT ` + productColumns + `, m.rank
		FROM (SELECT rowid AS id, ` + rankExpr + ` AS rank FROM product_search WHERE product_search MATCH ?) AS m
		JOIN products p ON p.id = m.id`)
		args = append(args, match)
	} else {
		b.WriteString(`SELECT ` + productColumns + `, 0.0 FROM products p`)
		if match != "" {
			where = append(where, `p.id IN (SELECT rowid FROM product_search WHERE product_search MATCH ?)`)
			args = append(args, match)
		}
	}
	if !q.IncludeDrafts {
		where = append(where, `p.status = 'active'`)
	}
	if q.MinPrice > 0 {
		where = append(where, `p.price_from >= ?`)
		args = append(args, q.MinPrice)
	}
	if q.MaxPrice > 0 {
		where = append(where, `p.price_from <= ?`)
		args = append(args, q.MaxPrice)
	}
	if q.InStock {
		where = append(where, `p.in_stock = 1`)
	}
	var order string
	switch sort {
	case catalog.SortRelevance:
		order = `m.rank, p.id`
		if a := q.After; a != nil {
			where = append(where, `(m.rank, p.id) > (?, ?)`)
			args = append(args, a.Rank, a.ID)
		}
	case catalog.SortPriceAsc:
		order = `p.price_from, p.id`
		if a := q.After; a != nil {
			where = append(where, `(p.price_from, p.id) > (?, ?)`)
			args = append(args, a.Price, a.ID)
		}
	case catalog.SortPriceDesc:
		order = `p.price_from DESC, p.id DESC`
		if a := q.After; a != nil {
			where = append(where, `(p.price_from, p.id) < (?, ?)`)
			args = append(args, a.Price, a.ID)
		}
	case catalog.SortNewest:
		order = `p.created_at DESC, p.id DESC`
		if a := q.After; a != nil {
			where = append(where, `(p.created_at, p.id) < (?, ?)`)
			args = append(args, a.Time, a.ID)
		}
	}
	if len(where) > 0 {
		b.WriteString("\nWHERE " + strings.Join(where, "\n  AND "))
	}
	b.WriteString("\nORDER BY " + order + "\nLIMIT ?")
	args = append(args, limit+1) // one more tells whether there is a next page

	return b.String(), args
}

// maxSearchWords bounds the work one query can ask of the index.
const maxSearchWords = 16

// ftsQuery turns what a shopper typed into an FTS5 query that is never a
// syntax error. Words are runs of letters, digits and combining marks, the
// characters the unicode61 tokenizer indexes; everything else separates
// words, so '"', '*', '(', ':', '^' and '-' never reach FTS5 unquoted. Each
// word becomes a quoted string, so AND, OR, NOT and NEAR are plain words,
// and the last one is a prefix ("shirt"*) so results appear while typing.
// The words are ANDed. It returns "" when text has no words.
func ftsQuery(text string) string {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.In(r, unicode.L, unicode.N, unicode.M, unicode.Co)
	})
	words := fields[:0]
	for _, f := range fields {
		// A word of combining marks alone would be an empty phrase.
		if strings.IndexFunc(f, func(r rune) bool { return unicode.In(r, unicode.L, unicode.N, unicode.Co) }) >= 0 {
			words = append(words, f)
		}
	}
	if len(words) == 0 {
		return ""
	}
	words = words[:min(len(words), maxSearchWords)]
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + w + `"`)
	}
	b.WriteByte('*')
	return b.String()
}
