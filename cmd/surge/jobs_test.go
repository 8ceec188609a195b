package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJobsCommand drives `surge jobs list|show|pause|resume` against a
// running shop: a drop's reminder job, made by the shop's own worker
// role, paused and resumed through the admin API.
func TestJobsCommand(t *testing.T) {
	s := startShop(t, "--jobs-poll", "50ms")
	sku := firstInStockSKU(t, s, 1)
	env := func(k string) string {
		return map[string]string{"SURGE_ADMIN_TOKEN": testToken, "SURGE_URL": s.URL}[k]
	}
	surge := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, env, &out, &out)
		return out.String(), err
	}
	starts := time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	if out, err := surge("drop", "create", "--name", "Night", "--slug", "night", "--starts-at", starts, "--item", sku+"=5"); err != nil {
		t.Fatalf("drop create: %v\n%s", err, out)
	}
	// The worker role makes the reminder job within a poll or two.
	var list []struct {
		ID     int64
		Kind   string
		State  string
		Paused bool
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(list) == 0 {
		out, err := surge("jobs", "list", "--json")
		if err != nil {
			t.Fatalf("jobs list: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("jobs list --json: %v\n%s", err, out)
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("no reminder job appeared")
		}
	}
	if list[0].Kind != "drop-reminder" || list[0].State != "scheduled" {
		t.Fatalf("jobs list: %+v", list)
	}
	id := strconv.FormatInt(list[0].ID, 10)
	if out, err := surge("jobs", "list"); err != nil || !strings.Contains(out, "drop-reminder") || !strings.Contains(out, "RECIPIENTS") {
		t.Fatalf("jobs list (table): %v\n%s", err, out)
	}
	if out, err := surge("jobs", "pause", id, "--json"); err != nil || !strings.Contains(out, `"state": "paused"`) {
		t.Fatalf("jobs pause: %v\n%s", err, out)
	}
	if out, err := surge("jobs", "show", id); err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("jobs show: %v\n%s", err, out)
	}
	if out, err := surge("jobs", "resume", id, "--json"); err != nil || !strings.Contains(out, `"state": "scheduled"`) {
		t.Fatalf("jobs resume: %v\n%s", err, out)
	}
	if _, err := surge("jobs", "show", "999"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("jobs show of an unknown job: %v", err)
	}
	if _, err := surge("jobs", "pause", "x"); err == nil || !strings.Contains(err.Error(), "positive number") {
		t.Errorf("jobs pause x: %v", err)
	}
	if err := run(context.Background(), []string{"jobs", "list"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}); err == nil {
		t.Error("jobs list without a token succeeded")
	}
}
