package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/cdnpurge"
)

// cdnFlags configure the CDN (Varnish) in front of the shop, which every
// cache purge is forwarded to.
type cdnFlags struct {
	PurgeURLs    []string
	PurgeTimeout time.Duration
}

func (c *cdnFlags) add(f *pflag.FlagSet) {
	f.StringSliceVar(&c.PurgeURLs, "cdn-purge-url", nil,
		"purge endpoint of a CDN instance in front of the shop, e.g. http://varnish:8080/ (repeatable): admin changes purge the same tags there (see deploy/varnish)")
	f.DurationVar(&c.PurgeTimeout, "cdn-purge-timeout", 2*time.Second, "time limit of one purge request to a CDN instance (each purge is tried 3 times)")
}

func (c cdnFlags) validate() error {
	if c.PurgeTimeout <= 0 {
		return fmt.Errorf("--cdn-purge-timeout must be positive")
	}
	if len(c.PurgeURLs) == 0 {
		return nil
	}
	// New checks the URLs the way the shop will use them.
	cl, err := cdnpurge.New(c.config())
	if err != nil {
		return fmt.Errorf("--cdn-purge-url: %w", err)
	}
	return cl.Close()
}

func (c cdnFlags) config() cdnpurge.Config {
	return cdnpurge.Config{URLs: c.PurgeURLs, Timeout: c.PurgeTimeout}
}
