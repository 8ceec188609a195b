package shop

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/pgstore"
)

// lsnCookie carries the primary's WAL position after a visitor's last
// write, so that whichever replica answers next reads at least that far.
const lsnCookie = "surge_lsn"

// lsnCookieTTL outlives any replica lag the store accepts (MaxReplicaLag,
// 5s by default): after it, every replica in use has replayed the write.
const lsnCookieTTL = time.Minute

// readYourWrites gives a visitor who just wrote through the admin API
// read-your-writes across database replicas and API replicas: the write's
// WAL position goes into a cookie, and later requests carrying it read
// from a database replica only once it has replayed that far (else from
// the primary). Shoppers' own writes (carts, orders) are read from the
// primary anyway; only catalog reads use replicas, and only the admin API
// writes the catalog, so only its writes pay the extra query for the
// position.
func readYourWrites(next http.Handler, secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var seen pgstore.LSN
		if c, err := r.Cookie(lsnCookie); err == nil {
			if lsn, err := pgstore.ParseLSN(c.Value); err == nil {
				seen = lsn
				ctx = pgstore.WithMinLSN(ctx, lsn)
			}
		}
		if !strings.HasPrefix(r.URL.Path, "/api/v1/admin/") {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		// Admins see what is stored, not what a replica has replayed so
		// far (a product just created, stock just sold): their reads are
		// few, so they all go to the primary.
		ctx = pgstore.WithMinLSN(ctx, pgstore.LSN(math.MaxUint64))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		ctx, rec := pgstore.RecordWrites(ctx)
		next.ServeHTTP(&lsnWriter{ResponseWriter: w, rec: rec, seen: seen, secure: secure}, r.WithContext(ctx))
	})
}

// lsnWriter sets the cookie when the response starts, after the handler's
// writes committed.
type lsnWriter struct {
	http.ResponseWriter
	rec     *pgstore.WriteRecord
	seen    pgstore.LSN
	secure  bool
	started bool
}

func (w *lsnWriter) WriteHeader(code int) {
	if !w.started {
		w.started = true
		if lsn := w.rec.LSN(); lsn > w.seen {
			http.SetCookie(w.ResponseWriter, &http.Cookie{Name: lsnCookie, Value: lsn.String(), Path: "/",
				MaxAge: int(lsnCookieTTL / time.Second), HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *lsnWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *lsnWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
