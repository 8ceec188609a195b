package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/surge-commerce/surge/internal/catalog"
)

// SearchProducts returns one keyset page of products, without variants. It
// may read a replica.
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

	var words []string
	if strings.TrimSpace(q.Text) != "" {
		words = searchWords(q.Text)
		if len(words) == 0 {
			// Only punctuation, symbols or emoji: no word can match.
			return catalog.Page{Items: []catalog.Product{}}, nil
		}
	}

	query, args := searchSQL(q, words, sort, limit)
	var page catalog.Page
	err = s.reading(ctx, func(db querier) error {
		var err error
		page, err = searchPage(ctx, db, query, args, sort, limit)
		return err
	})
	if err != nil {
		return catalog.Page{}, fmt.Errorf("search products: %w", err)
	}
	return page, nil
}

// searchPage runs a listing query from searchSQL on db and reads its page.
func searchPage(ctx context.Context, db querier, query string, args []any, sort catalog.Sort, limit int) (catalog.Page, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return catalog.Page{}, err
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
				c.Time = last.CreatedAt.UnixNano()
			}
			page.NextCursor = c.Encode()
			break
		}
		p, err := scanProduct(rows, &rank)
		if err != nil {
			return catalog.Page{}, err
		}
		page.Items = append(page.Items, p)
	}
	if err := rows.Err(); err != nil {
		return catalog.Page{}, err
	}
	return page, nil
}

// rankExpr is the relevance of p to the query tsq, negated so that, as in
// the SQLite store's bm25, smaller is better and the keyset compares the
// same way. It is computed as float8 so the value in a cursor compares
// equal to the value recomputed for the next page.
const rankExpr = `(-ts_rank(p.search, tsq.q))::float8`

// searchSQL builds the listing query for q, already checked: sort is the
// effective sort, words the search words (none for a listing) and limit the
// page size. It asks for limit+1 rows.
func searchSQL(q catalog.Query, words []string, sort catalog.Sort, limit int) (string, []any) {
	var (
		b     strings.Builder
		args  []any
		where []string
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.CategoryID > 0 {
		// The category and all its descendants. UNION (not UNION ALL) stops
		// at rows already seen, so even a cycle in bad data terminates.
		b.WriteString(`WITH RECURSIVE subtree (id) AS (
			SELECT ` + arg(q.CategoryID) + `::bigint
			UNION
			SELECT c.id FROM categories c JOIN subtree ON c.parent_id = subtree.id
		)
		`)
		where = append(where, `p.category_id IN (SELECT id FROM subtree)`)
	}
	rank := `0.0::float8`
	from := `products p`
	if len(words) > 0 {
		from += `, (SELECT ` + tsquerySQL(words, arg) + ` AS q) tsq`
		where = append(where, `p.search @@ tsq.q`)
		if sort == catalog.SortRelevance {
			rank = rankExpr
		}
	}
	b.WriteString(`SELECT ` + productColumns + `, ` + rank + ` FROM ` + from)
	if !q.IncludeDrafts {
		where = append(where, `p.status = 'active'`)
	}
	if q.MinPrice > 0 {
		where = append(where, `p.price_from >= `+arg(q.MinPrice))
	}
	if q.MaxPrice > 0 {
		where = append(where, `p.price_from <= `+arg(q.MaxPrice))
	}
	if q.InStock {
		where = append(where, `p.in_stock`)
	}
	var order string
	switch sort {
	case catalog.SortRelevance:
		order = rankExpr + `, p.id`
		if a := q.After; a != nil {
			where = append(where, `(`+rankExpr+`, p.id) > (`+arg(a.Rank)+`::float8, `+arg(a.ID)+`::bigint)`)
		}
	case catalog.SortPriceAsc:
		order = `p.price_from, p.id`
		if a := q.After; a != nil {
			where = append(where, `(p.price_from, p.id) > (`+arg(a.Price)+`::bigint, `+arg(a.ID)+`::bigint)`)
		}
	case catalog.SortPriceDesc:
		order = `p.price_from DESC, p.id DESC`
		if a := q.After; a != nil {
			where = append(where, `(p.price_from, p.id) < (`+arg(a.Price)+`::bigint, `+arg(a.ID)+`::bigint)`)
		}
	case catalog.SortNewest:
		order = `p.created_at DESC, p.id DESC`
		if a := q.After; a != nil {
			// Cursor times are nanoseconds of a stored time, which has
			// microseconds: the instant converts back exactly.
			where = append(where, `(p.created_at, p.id) < (`+arg(time.Unix(0, a.Time))+`::timestamptz, `+arg(a.ID)+`::bigint)`)
		}
	}
	if len(where) > 0 {
		b.WriteString("\nWHERE " + strings.Join(where, "\n  AND "))
	}
	b.WriteString("\nORDER BY " + order + "\nLIMIT " + arg(limit+1)) // one more tells whether there is a next page
	return b.String(), args
}

// tsquerySQL returns an expression for the text-search query matching
// every word, the last one also as a prefix so results appear while
// typing. All words but the last go through plainto_tsquery, which accepts
// any text; the last goes to to_tsquery as a quoted lexeme with :*, which
// is safe because searchWords leaves nothing in a word but letters, digits
// and marks: no quote, operator or backslash can reach the parser.
func tsquerySQL(words []string, arg func(any) string) string {
	last := `to_tsquery('surge_search', ` + arg(`'`+words[len(words)-1]+`':*`) + `)`
	if len(words) == 1 {
		return last
	}
	return `plainto_tsquery('surge_search', ` + arg(strings.Join(words[:len(words)-1], " ")) + `) && ` + last
}

// maxSearchWords bounds the work one query can ask of the index.
const maxSearchWords = 16

// searchWords splits what a shopper typed into words as the SQLite store
// does: runs of letters, digits and combining marks; everything else
// separates words. It keeps at most maxSearchWords.
func searchWords(text string) []string {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.In(r, unicode.L, unicode.N, unicode.M, unicode.Co)
	})
	words := fields[:0]
	for _, f := range fields {
		// A word of combining marks alone matches nothing.
		if strings.IndexFunc(f, func(r rune) bool { return unicode.In(r, unicode.L, unicode.N, unicode.Co) }) >= 0 {
			words = append(words, f)
		}
	}
	return words[:min(len(words), maxSearchWords)]
}
