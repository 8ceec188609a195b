// Package browsertest starts headless Chromium for the tests that look at
// pages as people do. Chromium is Debian's package (scripts/deps installs
// it); a test without it is skipped, never failed.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium returns the browser to drive: $SURGE_CHROMIUM, else chromium on
// the PATH. It skips the test when there is none, and under -short.
func Chromium(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("browser test: skipped with -short")
	}
	if p := os.Getenv("SURGE_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		tb.Skip("browser test: no Chromium; set SURGE_CHROMIUM or install chromium (scripts/deps does)")
	}
	return p
}

// Allocator returns a context that starts a fresh headless Chromium with
// its own profile. The flags keep it off the network: on a machine with
// no way out, Chromium's background services would otherwise fail to
// connect over and over.
func Allocator(tb testing.TB, parent context.Context) (context.Context, context.CancelFunc) {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(tb)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
	)
	return chromedp.NewExecAllocator(parent, opts...)
}
