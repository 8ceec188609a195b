package storefront

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
)

// pageMessage is what a page shows for a refusal: the error's own
// sentence for people when it has one, else its message.
func pageMessage(err error) string {
	var pm interface{ PageMessage() string }
	if errors.As(err, &pm) {
		return pm.PageMessage()
	}
	return err.Error()
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// setRetryAfter sets Retry-After when err says how long to wait.
func setRetryAfter(w http.ResponseWriter, err error) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.RetryAfter())))
	}
}

// clientKey is the rate-limit key of the request's client: its address,
// with IPv6 grouped by /64 as admission does.
func (s *server) clientKey(r *http.Request) string {
	var a netip.Addr
	if s.ClientAddr != nil {
		a, _ = netip.ParseAddr(s.ClientAddr(r))
	} else {
		a = admission.NewClientIP("", nil).Addr(r)
	}
	return admission.ClientKey(a)
}
