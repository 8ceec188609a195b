package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestWorkerHelp: `surge worker --help` describes the worker and lists
// only the flags a worker uses, not the storefront's.
func TestWorkerHelp(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"worker", "--help"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if !strings.Contains(help, "order pipeline without the storefront") || strings.Contains(help, "storefront pages, JSON API") {
		t.Errorf("worker --help is not the worker's own text:\n%s", help)
	}
	for _, f := range []string{"--nats-url", "--db-url", "--expiry-sweep", "--admin-addr", "--smtp-addr"} {
		if !strings.Contains(help, f+" ") {
			t.Errorf("worker --help lacks %s", f)
		}
	}
	flags := parseFlagLines(help)
	for _, f := range []string{"addr", "page-cache", "standby", "cookie-secure", "admission", "role", "demo", "trusted-proxies", "access-log", "cdn-purge-url"} {
		if flags[f] {
			t.Errorf("worker --help lists the storefront flag --%s", f)
		}
	}
	if err := run(context.Background(), []string{"worker", "--page-cache-bytes", "1"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "unknown flag") {
		t.Errorf("worker with a storefront flag: %v, want unknown flag", err)
	}
}

// TestFlagValueCompletion: the shell completes the values of flags that
// take one of a few words.
func TestFlagValueCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"serve", "--role", ""}, []string{"api", "worker", "all"}},
		{[]string{"serve", "--cookie-secure", ""}, []string{"auto", "always", "never"}},
		{[]string{"worker", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"serve", "--log-format", ""}, []string{"json", "text"}},
	} {
		var out strings.Builder
		if err := run(context.Background(), append([]string{"__complete"}, tc.args...), func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w+"\n") {
				t.Errorf("completing %v: %q lacks %s", tc.args, out.String(), w)
			}
		}
	}
}

// TestDropShowBySlug: `surge drop show` and `close` take the slug as well
// as the ID, and the shell completes both from the shop's drops.
func TestDropShowBySlug(t *testing.T) {
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
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if out, err := runDrop("create", "--name", "Slug Runner", "--slug", "slug-runner", "--starts-at", starts, "--item", sku+"=3"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, err := runDrop("show", "slug-runner")
	if err != nil || !strings.Contains(out, "slug-runner") || !strings.Contains(out, "scheduled") {
		t.Fatalf("show by slug: %v\n%s", err, out)
	}
	var comp strings.Builder
	if err := run(context.Background(), []string{"__complete", "drop", "show", ""}, env, &comp, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(comp.String(), "slug-runner\t") || !strings.Contains(comp.String(), "drop_") {
		t.Errorf("completion of drop show: %q, want the drop's slug and ID", comp.String())
	}
	if out, err := runDrop("close", "slug-runner"); err != nil || !strings.Contains(out, "closed") {
		t.Fatalf("close by slug: %v\n%s", err, out)
	}
	if _, err := runDrop("show", "no-such-drop"); err == nil || !strings.Contains(err.Error(), "no drop with ID or slug") {
		t.Errorf("show of an unknown slug: %v", err)
	}
}

// parseFlagLines returns the long flag names cobra's usage text lists.
func parseFlagLines(help string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "-h, ")
		if name, ok := strings.CutPrefix(line, "--"); ok {
			name, _, _ = strings.Cut(name, " ")
			out[name] = true
		}
	}
	return out
}
