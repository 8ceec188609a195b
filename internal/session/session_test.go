package session_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

// TestPrepareStoresNothingUntilKeep: a prepared session has its ID at
// once but is unknown to the store, and sets no cookie, until Keep; the
// cookie Keep sets then loads it.
func TestPrepareStoresNothingUntilKeep(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := &session.Manager{Store: st}

	p, err := m.Prepare(0, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || p.CSRF == "" || !p.ExpiresAt.After(p.CreatedAt) {
		t.Fatalf("prepared %+v: want an ID, a CSRF token and a lifetime", p.Session)
	}
	if _, err := st.Session(t.Context(), p.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a prepared session is stored already: %v", err)
	}

	w := httptest.NewRecorder()
	kept, err := m.Keep(w, httptest.NewRequest("GET", "/", nil), p)
	if err != nil || kept.ID != p.ID {
		t.Fatalf("keep: %+v, %v", kept, err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("cookies %v: want the one HttpOnly session cookie", cookies)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: cookies[0].Name, Value: cookies[0].Value})
	loaded, err := m.Load(r)
	if err != nil || loaded.ID != p.ID || loaded.CSRF != p.CSRF {
		t.Fatalf("load with the kept cookie: %+v, %v; want session %s", loaded, err, p.ID)
	}

	if _, err := m.Keep(httptest.NewRecorder(), r, session.Pending{}); err == nil {
		t.Error("keeping a session that was never prepared: want an error")
	}
}
