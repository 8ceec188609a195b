// Command opsgen writes Surge's generated operations files (Prometheus
// rules, their unit tests, Grafana dashboards) from deploy/slo. Run it
// with `go generate ./deploy`; -root names the repository.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/surge-commerce/surge/internal/opspack"
)

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	if err := run(context.Background(), *root); err != nil {
		fmt.Fprintln(os.Stderr, "opsgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root string) error {
	files, err := opspack.Generate(ctx, os.DirFS(root))
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", name)
	}
	return nil
}
