package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

func newSeedCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var (
		dataDir  string
		dbURL    string
		products int
		currency string
		fresh    bool
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Load the deterministic demo catalog (17 categories, 1,250 products by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if products < 1 {
				return errors.New("--products: must be at least 1")
			}
			if fresh && dbURL != "" {
				return errors.New("--fresh deletes the embedded database; with --db-url, start from an empty PostgreSQL database instead")
			}
			if fresh {
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(filepath.Join(dataDir, "surge.db"+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
						return fmt.Errorf("--fresh: %w", err)
					}
				}
			}
			log, err := telemetry.NewLogger(stderr, "info", "text")
			if err != nil {
				return err
			}
			st, err := shop.OpenStore(cmd.Context(), shop.Config{DataDir: dataDir, DBURL: dbURL}, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := st.CountProducts(cmd.Context())
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("the catalog in %s already has %d products; use --fresh to start over", where(dataDir, dbURL), n)
			}
			start := time.Now()
			if _, err := shop.SeedDemo(cmd.Context(), st, products, currency, log); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "seeded %d products in %s\n", products, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar(&dataDir, "data-dir", "./data", "directory for the embedded database")
	f.StringVar(&dbURL, "db-url", "", "PostgreSQL primary to seed instead of the embedded database")
	f.IntVar(&products, "products", 1250, "number of products to generate (scales to 100,000 and more)")
	f.StringVar(&currency, "currency", "USD", "shop currency (ISO 4217)")
	f.BoolVar(&fresh, "fresh", false, "delete the existing database first")
	return cmd
}

func newMigrateCmd(getenv func(string) string, stdout, _ io.Writer) *cobra.Command {
	var dataDir, dbURL string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded database migrations (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			st, err := shop.OpenStore(cmd.Context(), shop.Config{DataDir: dataDir, DBURL: dbURL}, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = fmt.Fprintf(stdout, "database %s is up to date\n", where(dataDir, dbURL))
			return err
		},
	}
	cmd.Flags().String("config", "", "YAML file of settings named like the flags")
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "directory for the embedded database")
	cmd.Flags().StringVar(&dbURL, "db-url", "", "PostgreSQL primary to migrate instead of the embedded database")
	return cmd
}

// where names the database a command works on, without its password.
func where(dataDir, dbURL string) string {
	if dbURL == "" {
		return filepath.Join(dataDir, "surge.db")
	}
	if u, err := url.Parse(dbURL); err == nil && u.Host != "" {
		return "postgres://" + u.Host + u.Path
	}
	return "the PostgreSQL database"
}
