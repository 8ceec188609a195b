package storefront_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/surge-commerce/surge/internal/storefront"
)

// TestWaitroomDocRoutes keeps the route table of docs/waitroom.md true:
// every route it names is one the server has.
func TestWaitroomDocRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/waitroom.md")
	if err != nil {
		t.Fatal(err)
	}
	routes := storefront.RoutePatterns()
	named := regexp.MustCompile("(?m)^\\| `((?:GET|POST|PUT|PATCH|DELETE) /[^`]*)`").FindAllSubmatch(b, -1)
	if len(named) < 5 {
		t.Fatalf("found %d routes in docs/waitroom.md; the table moved?", len(named))
	}
	for _, m := range named {
		if r := string(m[1]); !slices.Contains(routes, r) {
			t.Errorf("docs/waitroom.md names %q, which is not a route", r)
		}
	}
}
