package storefront

import (
	"bytes"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/productimage"
)

// handleProductImage serves the generated picture of a product. Pictures
// are drawn from the product name, so they need the product but no files.
func (s *server) handleProductImage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		file := r.PathValue("file")
		num, ok := strings.CutSuffix(file, ".svg")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || n > 12 {
			s.pageError(w, r, nil, catalog.ErrNotFound)
			return
		}
		p, err := s.Catalog.Product(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		var buf bytes.Buffer
		if err := productimage.SVG(&buf, p.Slug, p.Name, n); err != nil {
			s.pageError(w, r, nil, err)
			return
		}
		tag(w, catalog.ProductTag(p.ID))
		w.Header().Set("Content-Type", productimage.ContentType())
		_, _ = w.Write(buf.Bytes())
	})
}

func (s *server) handleStatic() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		b, err := staticFS.ReadFile("static/" + path.Base(name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		switch path.Ext(name) {
		case ".css":
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
		case ".js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		if r.URL.Query().Get("v") == staticVersion {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		_, _ = w.Write(b)
	})
}

func (s *server) handleRobots() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write([]byte("User-agent: *\nDisallow: /api/\nDisallow: /search\n"))
	})
}

const favicon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2f4b3a"/><path d="M9 21c2 2 4 3 7 3 4 0 7-2 7-5 0-7-13-4-13-10 0-2 2-4 6-4 2 0 4 1 6 2" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round"/></svg>`

func (s *server) handleFavicon() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		_, _ = w.Write([]byte(favicon))
	})
}
