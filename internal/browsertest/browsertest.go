// Package browsertest starts headless Chromium for the tests that look at
// pages as people do. Chromium is Debian's package (scripts/deps installs
// it); a test without it is skipped, never failed.
package browsertest

import (
	"context"
	"fmt"
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

// Layout is what CheckLayout finds wrong with the page on screen.
type Layout struct {
	// Overlaps names pairs of things a person reads or uses (runs of
	// text, images, form controls) drawn over each other.
	Overlaps []string `json:"overlaps"`
	// Wide names elements reaching past the window's right edge, and
	// ScrollWidth is the page's width against the window's InnerWidth.
	Wide        []string `json:"wide"`
	ScrollWidth int      `json:"scroll"`
	InnerWidth  int      `json:"inner"`
}

// OK reports whether nothing overlaps and nothing sticks out sideways.
func (l Layout) OK() bool {
	return len(l.Overlaps) == 0 && len(l.Wide) == 0 && l.ScrollWidth <= l.InnerWidth
}

func (l Layout) String() string {
	return fmt.Sprintf("page %dpx wide in a %dpx window; past the right edge: %q; overlapping: %q",
		l.ScrollWidth, l.InnerWidth, l.Wide, l.Overlaps)
}

// layoutJS measures the page. The things compared are the ones a person
// reads or uses: each line box of visible text, and images, form
// controls, buttons and progress bars. Two of them overlap when their
// boxes share more than a pixel each way and neither contains the other
// (a button's label lies inside the button). Hidden, clipped-away
// (visually-hidden) and off-screen (skip link) elements are left out.
const layoutJS = `(() => {
	const inner = window.innerWidth;
	const name = (el) => {
		let s = el.tagName.toLowerCase();
		if (el.id) s += "#" + el.id;
		if (typeof el.className === "string" && el.className.trim()) s += "." + el.className.trim().split(/\s+/).join(".");
		return s;
	};
	const hidden = (el) => {
		for (let e = el; e && e !== document.body; e = e.parentElement) {
			const cs = getComputedStyle(e);
			if (cs.display === "none" || cs.visibility === "hidden" || parseFloat(cs.opacity) === 0) return true;
			const r = e.getBoundingClientRect();
			if ((cs.overflow === "hidden" || cs.clip !== "auto") && (r.width <= 1 || r.height <= 1)) return true;
			if (r.right < 0 || r.bottom < 0) return true;
		}
		return false;
	};
	const atoms = [];
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n; (n = walker.nextNode()); ) {
		const text = n.textContent.trim();
		const el = n.parentElement;
		if (!text || !el || el.closest("script, style, noscript, template") || hidden(el)) continue;
		const range = document.createRange();
		range.selectNodeContents(n);
		for (const b of range.getClientRects()) {
			if (b.width > 1 && b.height > 1) atoms.push({el, b, what: name(el) + " \"" + text.slice(0, 40) + "\""});
		}
	}
	for (const el of document.querySelectorAll("img, input, select, textarea, button, progress")) {
		if (hidden(el)) continue;
		const b = el.getBoundingClientRect();
		if (b.width > 1 && b.height > 1) atoms.push({el, b, what: name(el)});
	}
	const overlaps = [];
	for (let i = 0; i < atoms.length && overlaps.length < 20; i++) {
		for (let j = i + 1; j < atoms.length && overlaps.length < 20; j++) {
			const a = atoms[i], c = atoms[j];
			if (a.el === c.el || a.el.contains(c.el) || c.el.contains(a.el)) continue;
			const w = Math.min(a.b.right, c.b.right) - Math.max(a.b.left, c.b.left);
			const h = Math.min(a.b.bottom, c.b.bottom) - Math.max(a.b.top, c.b.top);
			if (w > 1 && h > 1) overlaps.push(a.what + " overlaps " + c.what);
		}
	}
	// Past the right edge counts unless a scrolling or clipping box holds
	// it (the category bar scrolls sideways on a phone, by design).
	const clipped = (el) => {
		for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
			const ox = getComputedStyle(e).overflowX;
			if (ox !== "visible" && e.getBoundingClientRect().right <= inner + 0.5) return true;
		}
		return false;
	};
	const wide = [];
	for (const el of document.querySelectorAll("body *")) {
		const r = el.getBoundingClientRect();
		if (r.right > inner + 0.5 && wide.length < 10 && !hidden(el) && !clipped(el)) wide.push(name(el) + " right=" + Math.round(r.right));
	}
	return {overlaps, wide, scroll: document.documentElement.scrollWidth, inner};
})()`

// CheckLayout measures the page in the tab ctx (see Layout).
func CheckLayout(ctx context.Context) (Layout, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[Layout](layoutJS))
}

// Screenshot saves the whole page in the tab ctx, not just the window, as
// a PNG at path.
func Screenshot(ctx context.Context, path string) error {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}
