package capacity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// caller sends calibration's own requests: the catalog reads and admin
// calls that set a run up, and the scrapes and profiles between steps. A
// shop on a busy machine sheds some of them with 503 or 429 and a
// Retry-After; those are sent again after the time it asks for, as long
// as the waits of one call stay within maxWait. Anything else is
// answered at once.
type caller struct {
	hc      *http.Client
	maxWait time.Duration
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// defaultRetryWait bounds the waits of one call: long enough to ride out
// a few seconds of overload, short enough that a shop that keeps refusing
// is reported rather than waited on for the length of a calibration.
const defaultRetryWait = 30 * time.Second

func newCaller(hc *http.Client) *caller {
	return &caller{hc: hc, maxWait: defaultRetryWait, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errRefused is wrapped by the error of a call the shop kept refusing.
var errRefused = errors.New("the shop kept refusing")

// do sends the request and returns the status and body (up to 64 MiB) of
// the first answer that is not a retried refusal.
func (c *caller) do(ctx context.Context, method, url string, header http.Header, body []byte) (int, []byte, error) {
	var waited time.Duration
	for {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			return resp.StatusCode, b, nil
		}
		d := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if waited+d > c.maxWait {
			return resp.StatusCode, b, fmt.Errorf("%s %s: %s after %s of retries: %w (%s)", method, url, resp.Status, waited,
				errRefused, bytes.TrimSpace(b[:min(len(b), 200)]))
		}
		if err := c.sleep(ctx, d); err != nil {
			return 0, nil, err
		}
		waited += d
	}
}

// retryAfter reads Retry-After as seconds or an HTTP date; without one (or
// with one in the past) it is a second, the shortest the shop asks for.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return time.Second
}

// get fetches url and wants 200.
func (c *caller) get(ctx context.Context, url string) ([]byte, error) {
	status, b, err := c.do(ctx, http.MethodGet, url, nil, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, status, http.StatusText(status))
	}
	return b, nil
}
