package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/notify"
)

const importToken = "import-test-token-0123456789"

// admin sends an admin API request with the token (or none when token is
// empty) and returns the status and the JSON body.
func (s *notifyShop) admin(method, path, body, token string) (int, map[string]any) {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func emailsBody(emails ...string) string {
	b, _ := json.Marshal(map[string]any{"emails": emails})
	return string(b)
}

// An operator imports a list that opted in elsewhere: the addresses
// become confirmed subscribers without a mail, an address already on the
// list keeps its state (an unsubscribed one stays unsubscribed), and bad
// lists are refused whole with the field at fault.
func TestAdminImportSubscribers(t *testing.T) {
	s := newNotifyShopWith(t, importToken)
	path := "/api/v1/admin/drops/" + s.drop.ID + "/subscribers"

	// Someone who left before the import stays out.
	code, _ := s.api("POST", "/api/v1/drops/"+s.drop.ID+"/notify", `{"email":"gone@example.com"}`, "application/json", "192.0.2.1:1")
	if code != http.StatusAccepted {
		t.Fatalf("subscribe: %d", code)
	}
	confirm, unsub, _ := s.links(t, 0)
	if _, err := s.st.ConfirmSubscription(context.Background(), notify.HashToken(confirm), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.Unsubscribe(context.Background(), unsub); err != nil {
		t.Fatal(err)
	}
	mailed := s.sink.Stats().Messages

	code, out := s.admin("POST", path, emailsBody("Ada@Example.com", "bob@example.com", "gone@example.com"), importToken)
	if code != http.StatusOK || out["added"] != 2.0 || out["existing"] != 1.0 {
		t.Fatalf("import: %d %v; want 2 added, 1 existing", code, out)
	}
	code, out = s.admin("POST", path, emailsBody("bob@example.com", "cy@example.com"), importToken)
	if code != http.StatusOK || out["added"] != 1.0 || out["existing"] != 1.0 {
		t.Fatalf("import again: %d %v; want 1 added, 1 existing", code, out)
	}
	var got []string
	for _, r := range s.recipients(t) {
		got = append(got, r.Email)
	}
	if fmt.Sprint(got) != "[ada@example.com bob@example.com cy@example.com]" {
		t.Errorf("recipients %v; want the three imported, normalized, and not the one who left", got)
	}
	if st := s.sink.Stats(); st.Messages != mailed {
		t.Errorf("the import mailed %d messages; want none", st.Messages-mailed)
	}

	many := make([]string, notify.MaxImport+1)
	for i := range many {
		many[i] = fmt.Sprintf("m%d@example.com", i)
	}
	for _, tt := range []struct {
		name, path, body, token string
		status                  int
		kind, field             string
	}{
		{"no token", path, emailsBody("a@example.com"), "", 401, "unauthorized", ""},
		{"wrong token", path, emailsBody("a@example.com"), "nope", 401, "unauthorized", ""},
		{"none", path, emailsBody(), importToken, 422, "invalid-field", "emails"},
		{"too many", path, emailsBody(many...), importToken, 422, "invalid-field", "emails"},
		{"not an address", path, emailsBody("a@example.com", "nope"), importToken, 422, "invalid-field", "emails[1]"},
		{"header injection", path, emailsBody("eve@example.com\r\nBcc: x@y.z"), importToken, 422, "invalid-field", "emails[0]"},
		{"repeat", path, emailsBody("a@example.com", "A@example.com"), importToken, 422, "invalid-field", "emails[1]"},
		{"unknown field", path, `{"emails":["a@example.com"],"state":"pending"}`, importToken, 400, "malformed-body", ""},
		{"not a list", path, `{"emails":"a@example.com"}`, importToken, 400, "malformed-body", ""},
		{"no such drop", "/api/v1/admin/drops/drop_nosuch/subscribers", emailsBody("a@example.com"), importToken, 404, "not-found", ""},
	} {
		code, out := s.admin("POST", tt.path, tt.body, tt.token)
		if code != tt.status || !strings.HasSuffix(fmt.Sprint(out["type"]), "#"+tt.kind) || (tt.field != "" && out["field"] != tt.field) {
			t.Errorf("%s: %d %v; want %d %s %s", tt.name, code, out, tt.status, tt.kind, tt.field)
		}
	}
	if n := len(s.recipients(t)); n != 3 {
		t.Errorf("%d recipients after the refused imports; want still 3", n)
	}
	if _, err := s.st.CloseDrop(context.Background(), s.drop.ID); err != nil {
		t.Fatal(err)
	}
	if code, out := s.admin("POST", path, emailsBody("late@example.com"), importToken); code != http.StatusConflict {
		t.Errorf("import to a closed drop: %d %v; want 409", code, out)
	}
}

// "Send the reminder now" makes the drop's reminder job due now, moving
// the one the worker scheduled; once it has started it stays as it is.
func TestAdminRemindNow(t *testing.T) {
	s := newNotifyShopWith(t, importToken)
	ctx := context.Background()
	path := "/api/v1/admin/drops/" + s.drop.ID + "/reminder"
	// The worker's schedule: an hour before the start, a day from now.
	scheduled, err := s.st.EnsureJob(ctx, jobs.KindReminder, s.drop.ID, s.drop.StartsAt.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if code, out := s.admin("POST", path, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %v", code, out)
	}
	before := time.Now()
	code, out := s.admin("POST", path, "", importToken)
	if code != http.StatusOK || out["id"] != float64(scheduled.ID) || out["state"] != "scheduled" || out["kind"] != "drop-reminder" {
		t.Fatalf("remind now: %d %v; want job %d, scheduled", code, out, scheduled.ID)
	}
	due, err := s.st.DueJobs(ctx, time.Now())
	if err != nil || len(due) != 1 || due[0].ID != scheduled.ID || due[0].RunAt.Before(before.Add(-time.Second)) {
		t.Fatalf("due jobs %+v, %v; want the reminder, due now", due, err)
	}
	if _, err := s.st.StartJob(ctx, scheduled.ID); err != nil {
		t.Fatal(err)
	}
	if code, out := s.admin("POST", path, "", importToken); code != http.StatusConflict || !strings.HasSuffix(fmt.Sprint(out["type"]), "#conflict") {
		t.Errorf("remind again once started: %d %v; want 409 conflict", code, out)
	}
	if code, out := s.admin("POST", "/api/v1/admin/drops/drop_nosuch/reminder", "", importToken); code != http.StatusNotFound {
		t.Errorf("unknown drop: %d %v; want 404", code, out)
	}
	if _, err := s.st.CloseDrop(ctx, s.drop.ID); err != nil {
		t.Fatal(err)
	}
	if code, out := s.admin("POST", path, "", importToken); code != http.StatusConflict || !strings.HasSuffix(fmt.Sprint(out["type"]), "#not-open") {
		t.Errorf("remind for a closed drop: %d %v; want 409 not-open", code, out)
	}
}
