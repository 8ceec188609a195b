package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run is the whole program: main only supplies the process's context,
// arguments, environment and output streams, so tests can call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "surge",
		Short:         "Surge: a commerce backend and storefront that stays up through traffic spikes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.AddCommand(
		newServeCmd(getenv, stdout, stderr),
		newWorkerCmd(getenv, stdout, stderr),
		newSeedCmd(getenv, stdout, stderr),
		newMigrateCmd(getenv, stdout, stderr),
		newLoadCmd(getenv, stdout, stderr),
		newDropCmd(getenv, stdout),
		newJobsCmd(getenv, stdout),
		newPlanCmd(getenv, stdout, stderr),
		newVersionCmd(stdout),
	)
	return root.ExecuteContext(ctx)
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(stdout, "surge %s\n", version)
			return err
		},
	}
}

// bindConfig fills every flag the user did not set on the command line from
// the environment (SURGE_ plus the flag name in upper snake case), then
// from the YAML file named by --config or SURGE_CONFIG. Precedence: flag,
// environment, file, default.
func bindConfig(fs *pflag.FlagSet, getenv func(string) string) error {
	file := map[string]any{}
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		if v := getenv("SURGE_CONFIG"); v != "" {
			path = v
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		for k := range file {
			name := strings.ReplaceAll(k, "_", "-")
			if fs.Lookup(name) == nil || name == "config" {
				return fmt.Errorf("config file %s: unknown setting %q", path, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		env := "SURGE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
			return
		}
		v, ok := file[f.Name]
		if !ok {
			v, ok = file[strings.ReplaceAll(f.Name, "-", "_")]
		}
		if ok {
			if e := fs.Set(f.Name, fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config file %s: %s: %w", path, f.Name, e)
			}
		}
	})
	return err
}
