package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/drop"
)

// adminClient calls a shop's admin API; `surge drop` works against any
// deployment, not only a local database.
type adminClient struct {
	url, token string
	http       *http.Client
}

func (c adminClient) call(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.url, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		var p struct{ Detail string }
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, p.Detail)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(b, out)
}

// dropID returns the ID of the drop named by ref, its ID or its slug: an
// ID the shop knows is taken as it is, anything else is looked up among
// the drops by slug.
func (c adminClient) dropID(ctx context.Context, ref string) (string, error) {
	var d dropOut
	err := c.call(ctx, "GET", "/api/v1/admin/drops/"+url.PathEscape(ref), nil, &d)
	if err == nil {
		return d.ID, nil
	}
	var out struct{ Items []dropOut }
	if lerr := c.call(ctx, "GET", "/api/v1/admin/drops", nil, &out); lerr != nil {
		return "", err
	}
	for _, d := range out.Items {
		if d.Slug == ref {
			return d.ID, nil
		}
	}
	return "", fmt.Errorf("no drop with ID or slug %q: %w", ref, err)
}

type dropOut struct {
	drop.Drop
	State     drop.State `json:"state"`
	Available int64      `json:"available"`
}

func newDropCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	var c adminClient
	var asJSON bool
	cmd := newAdminCmd("drop", "Create, list, show, close and report on drops (limited releases) through a shop's admin API", getenv, &c, &asJSON)

	print := func(ds ...dropOut) error {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if len(ds) == 1 {
				return enc.Encode(ds[0])
			}
			return enc.Encode(ds)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSLUG\tSTATE\tSTARTS\tLEFT\tLIMIT\tITEMS")
		for _, d := range ds {
			var items []string
			for _, it := range d.Items {
				items = append(items, fmt.Sprintf("%s=%d", it.SKU, it.Allocated))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, d.Slug, d.State, d.StartsAt.Local().Format(time.RFC3339), d.Available, d.PerCustomerLimit, strings.Join(items, ","))
		}
		return tw.Flush()
	}

	var (
		file, name, slug, starts, ends string
		items                          []string
		limit                          int64
		rate, maxActive                int
		prequeue                       time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a drop from flags or a JSON file (--file, same shape as POST /api/v1/admin/drops)",
		Example: `  surge drop create --name "Court Classic" --slug court-classic --starts-at 2026-11-27T18:00:00Z \
    --item SNKR-42=500 --item SNKR-43=500 --limit 2 --rate 3000 --max-active 1500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d drop.Drop
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &d); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			} else {
				d.Name, d.Slug, d.PerCustomerLimit = name, slug, limit
				t, err := time.Parse(time.RFC3339, starts)
				if err != nil {
					return fmt.Errorf("--starts-at %q: want RFC 3339 such as 2026-11-27T18:00:00Z", starts)
				}
				d.StartsAt = t
				if ends != "" {
					e, err := time.Parse(time.RFC3339, ends)
					if err != nil {
						return fmt.Errorf("--ends-at %q: want RFC 3339", ends)
					}
					d.EndsAt = &e
				}
				for _, it := range items {
					sku, n, ok := strings.Cut(it, "=")
					q, err := strconv.ParseInt(n, 10, 64)
					if !ok || err != nil {
						return fmt.Errorf("--item %q: want SKU=QUANTITY", it)
					}
					d.Items = append(d.Items, drop.Item{SKU: sku, Allocated: q})
				}
				d.Room = drop.Room{RatePerMinute: rate, MaxActive: maxActive, PreQueueOpens: drop.Duration(prequeue)}
			}
			var out dropOut
			if err := c.call(cmd.Context(), "POST", "/api/v1/admin/drops", d, &out); err != nil {
				return err
			}
			return print(out)
		},
	}
	f := create.Flags()
	f.StringVar(&file, "file", "", "JSON file describing the drop")
	f.StringVar(&name, "name", "", "drop name")
	f.StringVar(&slug, "slug", "", "URL slug: /drops/<slug>")
	f.StringVar(&starts, "starts-at", "", "start time, RFC 3339")
	f.StringVar(&ends, "ends-at", "", "optional end time, RFC 3339")
	f.StringArrayVar(&items, "item", nil, "SKU=QUANTITY allocated to the drop (repeatable)")
	f.Int64Var(&limit, "limit", 2, "units per customer")
	f.IntVar(&rate, "rate", 0, "visitors admitted per minute (0: default)")
	f.IntVar(&maxActive, "max-active", 0, "cap on admitted visitors shopping at once (0: default)")
	f.DurationVar(&prequeue, "prequeue", 0, "how long before the start the pre-queue opens (0: default 15m)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List drops",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Items []dropOut }
			if err := c.call(cmd.Context(), "GET", "/api/v1/admin/drops", nil, &out); err != nil {
				return err
			}
			return print(out.Items...)
		},
	}
	// completeDrops offers the shop's drops, by ID and by slug, for
	// shell completion; it needs the same --url and token as the command.
	completeDrops := func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 || bindConfig(cmd.Flags(), getenv) != nil || c.token == "" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c.http = &http.Client{Timeout: 5 * time.Second}
		var out struct{ Items []dropOut }
		if err := c.call(cmd.Context(), "GET", "/api/v1/admin/drops", nil, &out); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var comps []cobra.Completion
		for _, d := range out.Items {
			comps = append(comps, cobra.CompletionWithDesc(d.Slug, d.Name+" ("+string(d.State)+")"),
				cobra.CompletionWithDesc(d.ID, d.Slug))
		}
		return comps, cobra.ShellCompDirectiveNoFileComp
	}
	show := &cobra.Command{
		Use:               "show ID|SLUG",
		Short:             "Show one drop, by its ID or its slug, with its state and stock left",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDrops,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.dropID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var out dropOut
			if err := c.call(cmd.Context(), "GET", "/api/v1/admin/drops/"+id, nil, &out); err != nil {
				return err
			}
			return print(out)
		},
	}
	closeCmd := &cobra.Command{
		Use:               "close ID|SLUG",
		Short:             "Close a drop now, by its ID or its slug: everyone waiting is told it is closed",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDrops,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.dropID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var out dropOut
			if err := c.call(cmd.Context(), "POST", "/api/v1/admin/drops/"+id+"/close", struct{}{}, &out); err != nil {
				return err
			}
			return print(out)
		},
	}
	cmd.AddCommand(create, list, show, closeCmd, newDropReportCmd(&c, &asJSON, completeDrops, stdout))
	return cmd
}

// newAdminCmd is a command that talks to a shop's admin API, like
// `surge drop` and `surge jobs`: its persistent flags fill c and asJSON,
// and it refuses to run without an admin token.
func newAdminCmd(use, short string, getenv func(string) string, c *adminClient, asJSON *bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if c.token == "" {
				return errors.New("--admin-token (or SURGE_ADMIN_TOKEN) is required")
			}
			c.http = &http.Client{Timeout: 30 * time.Second}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.String("config", "", "YAML file of settings named like the flags")
	pf.StringVar(&c.url, "url", "http://127.0.0.1:8080", "the shop's base URL")
	pf.StringVar(&c.token, "admin-token", "", "admin bearer token")
	pf.BoolVar(asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
