package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/cdnpurge"
)

// addCDNFlags binds the flags of the CDN (Varnish) in front of the shop,
// which every cache purge is forwarded to, to c, showing the defaults d.
func addCDNFlags(f *pflag.FlagSet, c *cdnpurge.Config, d cdnpurge.Config) {
	f.StringSliceVar(&c.URLs, "cdn-purge-url", d.URLs,
		"purge endpoint of a CDN instance in front of the shop, e.g. http://varnish:8080/ (repeatable): admin changes purge the same tags there (see deploy/varnish)")
	f.DurationVar(&c.Timeout, "cdn-purge-timeout", d.Timeout, "time limit of one purge request to a CDN instance (each purge is tried 3 times)")
}

// validateCDN checks the CDN flags.
func validateCDN(c cdnpurge.Config) error {
	if c.Timeout <= 0 {
		return fmt.Errorf("--cdn-purge-timeout must be positive")
	}
	if len(c.URLs) == 0 {
		return nil
	}
	// New checks the URLs the way the shop will use them.
	cl, err := cdnpurge.New(c)
	if err != nil {
		return fmt.Errorf("--cdn-purge-url: %w", err)
	}
	return cl.Close()
}
