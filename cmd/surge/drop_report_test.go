package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDropReportCommand drives `surge drop report` (table, --json, --csv)
// against a running shop: a forged ticket at the drop's line shows as a
// refusal, and the reminders the job ledger counts (none: no subscriber).
func TestDropReportCommand(t *testing.T) {
	s := startShop(t)
	sku := firstInStockSKU(t, s, 1)
	env := func(k string) string {
		return map[string]string{"SURGE_ADMIN_TOKEN": testToken, "SURGE_URL": s.URL}[k]
	}
	runDrop := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), append([]string{"drop"}, args...), env, &out, &out)
		return out.String(), err
	}
	starts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	out, err := runDrop("create", "--json", "--name", "Report Runner", "--slug", "report-runner", "--starts-at", starts, "--item", sku+"=5")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	var d struct{ ID string }
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/drops/"+d.ID+"/queue", nil)
	req.Header.Set("Surge-Ticket", "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("forged ticket: %d", resp.StatusCode)
	}

	out, err = runDrop("report", "report-runner")
	if err != nil || !strings.Contains(out, "Report Runner") || !strings.Contains(out, "Notified                 0") || !strings.Contains(out, "Bad ticket or token") {
		t.Fatalf("report table: %v\n%s", err, out)
	}
	out, err = runDrop("report", d.ID, "--json")
	var rep struct {
		Funnel  struct{ Notified *int64 }
		Refused []struct {
			Reason   string
			Requests int64
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Funnel.Notified == nil || *rep.Funnel.Notified != 0 {
		t.Fatalf("report --json: %v\n%s", err, out)
	}
	bad := int64(-1)
	for _, r := range rep.Refused {
		if r.Reason == "bad_token" {
			bad = r.Requests
		}
	}
	if bad != 1 {
		t.Errorf("bad-token refusals %d, want 1\n%s", bad, out)
	}
	out, err = runDrop("report", "report-runner", "--csv")
	rows, cerr := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || cerr != nil {
		t.Fatalf("report --csv: %v %v\n%s", err, cerr, out)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]] = r[1]
	}
	if got["notified"] != "0" || got["refused_bad_token"] != "1" || got["allocated"] != "5" || got["sold_out_after_seconds"] != "" {
		t.Errorf("report --csv: %v", got)
	}
	if _, err := runDrop("report", "report-runner", "--csv", "--json"); err == nil {
		t.Error("--csv with --json accepted")
	}
	if _, err := runDrop("report", "no-such-drop"); err == nil {
		t.Error("report of an unknown drop succeeded")
	}
}
