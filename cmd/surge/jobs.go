package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/jobs"
)

// newJobsCmd is `surge jobs`: the worker's mail jobs, through the admin
// API like `surge drop`.
func newJobsCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	var c adminClient
	var asJSON bool
	cmd := newAdminCmd("jobs", "List, show, pause and resume the worker's mail jobs (drop reminders, sold-out mail) through a shop's admin API", getenv, &c, &asJSON)

	// print writes one job (show, pause, resume) or a list: as JSON an
	// object or an array, even of one.
	print := func(list bool, js ...jobs.Job) error {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if !list {
				return enc.Encode(js[0])
			}
			if js == nil {
				js = []jobs.Job{}
			}
			return enc.Encode(js)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tDROP\tSTATE\tRUN AT\tRECIPIENTS\tSENT\tFAILED\tLEFT")
		for _, j := range js {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", j.ID, j.Kind, j.DropID, j.State,
				j.RunAt.Local().Format(time.RFC3339), j.Recipients, j.Sent, j.Failed, j.Remaining())
		}
		return tw.Flush()
	}
	jobArg := func(args []string) (string, error) {
		if id, err := strconv.ParseInt(args[0], 10, 64); err != nil || id <= 0 {
			return "", fmt.Errorf("job ID %q: want a positive number (see surge jobs list)", args[0])
		}
		return args[0], nil
	}
	one := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := jobArg(args)
				if err != nil {
					return err
				}
				var out jobs.Job
				var body any
				if method == "POST" {
					body = struct{}{}
				}
				if err := c.call(cmd.Context(), method, "/api/v1/admin/jobs/"+id+suffix, body, &out); err != nil {
					return err
				}
				return print(false, out)
			},
		}
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the mail jobs with their progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Jobs []jobs.Job }
			if err := c.call(cmd.Context(), "GET", "/api/v1/admin/jobs", nil, &out); err != nil {
				return err
			}
			return print(true, out.Jobs...)
		},
	}
	cmd.AddCommand(list,
		one("show", "Show one mail job", "GET", ""),
		one("pause", "Pause a mail job: workers stop sending it within about half a lease", "POST", "/pause"),
		one("resume", "Resume a paused mail job where it stopped", "POST", "/resume"))
	return cmd
}
