package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// DropOptions names what the drop journey's buyers queue for and buy.
type DropOptions struct {
	ID       string `json:"id"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

var dropIDRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

func (o DropOptions) validate() error {
	var errs []error
	if o.ID == "" {
		errs = append(errs, errors.New("journey drop: which drop? pass --drop ID"))
	} else if !dropIDRE.MatchString(o.ID) {
		errs = append(errs, fmt.Errorf("journey drop: drop ID %q: want letters, digits, '.', '_', '~' and '-'", o.ID))
	}
	if o.SKU == "" {
		errs = append(errs, errors.New("journey drop: which SKU? pass --drop-sku (the command line looks up the drop's first item)"))
	}
	if o.Quantity < 1 {
		errs = append(errs, fmt.Errorf("journey drop: quantity %d: want at least 1", o.Quantity))
	}
	return errors.Join(errs...)
}

// The steps of the drop journey, in the order of DropScenario's Steps.
const (
	dropJoin = iota
	dropChallenge
	dropStatus
	dropAdd
	dropCheckout
)

// A drop buyer retries a step that got no answer or a 5xx up to
// dropMaxRetries times, backing off from dropRetryBackoff: people press
// reload rather than give up on a drop, and a load balancer in front of
// several replicas answers 502/503 while one of them dies.
const (
	dropMaxRetries   = 6
	dropRetryBackoff = 500 * time.Millisecond
)

// DropScenario is the drop buyer: join the drop's queue (solving the
// proof of work when the drop asks for one), poll the queue status as
// often as it says, and once admitted add the SKU to the cart and check
// out. Its steps are requests like any scenario's; which step comes next,
// and after how long, is decided in Go (dropAnswer), because the way
// through loops on the status for as long as the line lasts.
//
// Answers that are part of a drop are not errors: 409 (line not open
// yet), 428 (proof of work needed) and 429 (join rate limit, retried
// after Retry-After) to a join; 409 (sold out) and 422 (over the limit)
// to the cart and checkout. A step that got no answer or a 5xx is
// retried (see dropMaxRetries). Anything else ends the buyer with an
// error.
func DropScenario(o DropOptions) (*Scenario, error) {
	if o.Quantity == 0 {
		o.Quantity = 1
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	known := map[string]bool{"pow": true, "idem": true, "email": true}
	for _, v := range builtinVars {
		known[v] = true
	}
	mustText := func(s string) text {
		t, err := compileText(s, known)
		if err != nil {
			panic(err) // the templates below are constants
		}
		return t
	}
	queue := "/api/v1/drops/" + o.ID + "/queue"
	sku, _ := json.Marshal(o.SKU)
	post := func(name, u, body string, statuses ...statusRange) *Step {
		b := mustText(body)
		return &Step{Name: name, Method: http.MethodPost, url: text{static: u}, body: &b,
			headers: []header{{"Accept", text{static: "application/json"}}, {"Content-Type", text{static: "application/json"}}},
			check:   check{status: statuses}}
	}
	join := post("join", queue+"/join", `{"pow":{{printf "%q" .pow}}}`,
		statusRange{200, 200}, statusRange{409, 409}, statusRange{428, 429})
	join.needBody = true
	challenge := post("challenge", queue+"/challenge", "", statusRange{200, 200})
	challenge.body = nil
	challenge.needBody = true
	status := &Step{Name: "status", Method: http.MethodGet, url: text{static: queue}, needBody: true,
		headers: []header{{"Accept", text{static: "application/json"}}}, check: check{status: statusList{{200, 200}}}}
	add := post("add", "/api/v1/cart/items", fmt.Sprintf(`{"sku":%s,"quantity":%d}`, sku, o.Quantity),
		statusRange{200, 299}, statusRange{409, 409}, statusRange{422, 422})
	checkout := post("checkout", "/api/v1/checkout", `{"email":"{{.email}}",
 "shipping_address":{"name":"Load Tester","line1":"1 Test Street","city":"Testville","postal_code":"12345","country":"US"},
 "payment":{"card_number":"4242424242424242"}}`, statusRange{200, 299}, statusRange{409, 409}, statusRange{422, 422})
	checkout.headers = append(checkout.headers, header{"Idempotency-Key", mustText("{{.idem}}")})
	return &Scenario{
		Name:    "drop",
		Cookies: true,
		Steps:   []*Step{dropJoin: join, dropChallenge: challenge, dropStatus: status, dropAdd: add, dropCheckout: checkout},
		vars:    map[string]string{"pow": ""},
		drop:    &o,
	}, nil
}

// dropOutcome is how a drop buyer's visit ended.
type dropOutcome uint8

const (
	dropGoingOn dropOutcome = iota
	dropBought
	dropSoldOut
	dropClosed
	dropExpired
	dropOverLimit
	dropFailed
	numDropOutcomes
)

// dropAnswer reads the answer to a drop buyer's step that passed its
// check and decides what the buyer does next: s.next after s.pause, or
// the end with s.outcome. A non-empty return is a failure of the step
// (an answer that cannot be read).
func dropAnswer(s *session, status int, hdr http.Header, body []byte, think time.Duration) string {
	s.next, s.pause = 0, 0
	switch s.step {
	case dropJoin:
		switch status {
		case http.StatusPreconditionRequired:
			if s.vars["pow"] != "" {
				return "proof of work refused" // not again, or buyers would spin
			}
			s.next = dropChallenge
			return ""
		case http.StatusConflict: // the line is not open yet
			s.next, s.pause = dropJoin, jitter(time.Second)
			return ""
		case http.StatusTooManyRequests:
			s.next, s.pause = dropJoin, jitter(retryAfter(hdr))
			return ""
		}
		return queueAnswer(s, body, think, true)
	case dropStatus:
		return queueAnswer(s, body, think, false)
	case dropChallenge:
		var c struct {
			Challenge  string `json:"challenge"`
			Difficulty int    `json:"difficulty"`
		}
		if err := json.Unmarshal(body, &c); err != nil || c.Challenge == "" || c.Difficulty < 0 || c.Difficulty > 32 {
			return "body: not a challenge"
		}
		s.vars["pow"] = waitroom.SolvePoW(c.Challenge, c.Difficulty)
		s.next = dropJoin
		return ""
	case dropAdd, dropCheckout:
		switch {
		case status == http.StatusUnprocessableEntity && s.step == dropAdd && s.addRetried:
			// Over the limit on a retried add: the first add, whose
			// answer was lost, put the item in the cart. On to checkout.
			s.next, s.pause = dropCheckout, think
		case status == http.StatusConflict:
			s.outcome = dropSoldOut
		case status == http.StatusUnprocessableEntity:
			s.outcome = dropOverLimit
		case s.step == dropCheckout:
			s.outcome = dropBought
		default:
			s.next, s.pause = dropCheckout, think
		}
		return ""
	}
	return "no such step"
}

// queueAnswer follows a queue status: poll again while in line, buy when
// admitted, stop on a final state. It notes the buyer's way into the
// line: when the join was answered, whether into the pre-queue, and the
// first place the line gave it.
func queueAnswer(s *session, body []byte, think time.Duration, join bool) string {
	var st struct {
		State     string  `json:"state"`
		Position  uint64  `json:"position"`
		PollAfter float64 `json:"poll_after_seconds"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "body: not a queue status"
	}
	if join && s.joinAt.IsZero() {
		s.joinAt = time.Now()
		s.preQueue = waitroom.State(st.State) == waitroom.StatePreQueue
	}
	if s.position == 0 {
		s.position = st.Position
	}
	switch waitroom.State(st.State) {
	case waitroom.StatePreQueue, waitroom.StateWaiting:
		// The room spreads its answers; at least a second apart so a
		// buyer never hammers the status.
		s.next, s.pause = dropStatus, max(time.Duration(st.PollAfter*float64(time.Second)), time.Second)
	case waitroom.StateAdmitted:
		s.next, s.pause, s.admitted = dropAdd, think, true
	case waitroom.StateSoldOut:
		s.outcome = dropSoldOut
	case waitroom.StateClosed:
		s.outcome = dropClosed
	case waitroom.StateExpired:
		s.outcome = dropExpired
	default:
		return "body: unknown queue state " + strconv.Quote(st.State)
	}
	return ""
}

// retryAfter reads a Retry-After of whole seconds; one second otherwise.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 1 {
		return time.Second
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// jitter adds up to a fifth to d, so buyers told to come back together
// do not all come back at the same instant.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/5+1)
}

// buyerJar is a drop buyer's cookie jar: the name and value of each
// cookie of the one target, without the per-cookie bookkeeping of
// net/http/cookiejar, so 100,000 buyers waiting in line cost little
// memory. Domains, paths and expiry dates are not kept: every cookie goes
// back with every request of the session, until the target deletes it
// (Max-Age below 0, or an expiry date in the past).
type buyerJar struct {
	mu sync.Mutex
	kv []string // name, value, name, value...
}

func (j *buyerJar) SetCookies(_ *url.URL, cookies []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	for _, c := range cookies {
		i := 0
		for i < len(j.kv) && j.kv[i] != c.Name {
			i += 2
		}
		remove := c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(now))
		switch {
		case remove && i < len(j.kv):
			j.kv = append(j.kv[:i], j.kv[i+2:]...)
		case remove:
		case i < len(j.kv):
			j.kv[i+1] = c.Value
		default:
			j.kv = append(j.kv, c.Name, c.Value)
		}
	}
}

func (j *buyerJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]*http.Cookie, 0, len(j.kv)/2)
	for i := 0; i+1 < len(j.kv); i += 2 {
		out = append(out, &http.Cookie{Name: j.kv[i], Value: j.kv[i+1]})
	}
	return out
}

// DropInfo is what a shop says of a drop: when it starts, and the SKU and
// units of its first item.
type DropInfo struct {
	SKU       string
	Allocated int64
	StartsAt  time.Time
}

// FetchDrop asks the target for a drop (GET /api/v1/drops/{id}).
func FetchDrop(ctx context.Context, client *http.Client, target, id string) (DropInfo, error) {
	if !dropIDRE.MatchString(id) {
		return DropInfo{}, fmt.Errorf("drop ID %q: want letters, digits, '.', '_', '~' and '-'", id)
	}
	u := strings.TrimSuffix(target, "/") + "/api/v1/drops/" + id
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return DropInfo{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return DropInfo{}, fmt.Errorf("drop %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return DropInfo{}, fmt.Errorf("drop %s: GET %s answered %s: %s", id, u, resp.Status, strings.TrimSpace(string(msg)))
	}
	var d struct {
		StartsAt time.Time `json:"starts_at"`
		Items    []struct {
			SKU       string `json:"sku"`
			Allocated int64  `json:"allocated"`
		} `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return DropInfo{}, fmt.Errorf("drop %s: %w", id, err)
	}
	if len(d.Items) == 0 || d.Items[0].SKU == "" {
		return DropInfo{}, fmt.Errorf("drop %s has no items; pass --drop-sku", id)
	}
	return DropInfo{SKU: d.Items[0].SKU, Allocated: d.Items[0].Allocated, StartsAt: d.StartsAt}, nil
}

// FetchDropSKU asks the target for a drop (GET /api/v1/drops/{id}) and
// returns the SKU of its first item.
func FetchDropSKU(ctx context.Context, client *http.Client, target, id string) (string, error) {
	info, err := FetchDrop(ctx, client, target, id)
	return info.SKU, err
}
