// Package stripe is a payment.Provider backed by Stripe: PaymentIntents
// with manual capture, so the order pipeline authorizes when an order is
// placed and captures once, exactly as with the simulated provider.
//
// Card details never touch Surge. The checkout page collects them in
// Stripe Elements (an iframe from js.stripe.com), which turns them into a
// PaymentMethod ID ("pm_..."); that ID is all the shop receives, stores
// and sends back to Stripe.
//
// Idempotency: every call sends an Idempotency-Key derived from the order
// ("surge:authorize:<order id>"), which Stripe honours for 24 hours, and
// the provider records the PaymentIntent it created for each key in the
// shop's database (table stripe_payment_intents), so an authorization
// retried any time later, by any process, finds the same intent rather
// than creating a second one.
//
// Webhooks: Stripe's events (signed with the endpoint's secret) are
// verified with stripe-go's webhook package, deduplicated by event ID
// (table stripe_webhook_events) and turned into the same payment.Event
// values the simulated provider reports.
//
// A card that demands 3-D Secure authentication while the buyer is no
// longer on the page (the intent is confirmed by the order worker) is
// declined with authentication_required and its intent cancelled; the
// buyer is asked to try another card.
package stripe

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/payment"
)

var _ payment.Provider = (*Provider)(nil)

// Config configures the provider.
type Config struct {
	// SecretKey is the account's secret (sk_test_... or sk_live_...) or
	// restricted (rk_...) API key.
	SecretKey string
	// WebhookSecret is the signing secret of the webhook endpoint
	// (whsec_...).
	WebhookSecret string
	// PublishableKey (pk_test_... or pk_live_...) is what the checkout
	// page gives Stripe.js; it must be of the same mode as SecretKey.
	PublishableKey string
	// APIURL is Stripe's API (default https://api.stripe.com); tests point
	// it at stripe-mock.
	APIURL string
	// HTTPClient sends the API requests (default: 30s timeout).
	HTTPClient *http.Client
	// DB keeps the intent ledger and the webhook events seen: the shop's
	// SQLite or PostgreSQL database.
	DB *sql.DB
	// WebhookTolerance is how old a signed event may be (default 5
	// minutes): an older signature is refused, so a captured request
	// cannot be replayed later.
	WebhookTolerance time.Duration
}

// Validate checks the keys' shapes and that they belong to one mode (test
// or live), without calling Stripe. Errors never contain a key.
func (c Config) Validate() error {
	var errs []error
	mode := ""
	switch {
	case strings.HasPrefix(c.SecretKey, "sk_test_"), strings.HasPrefix(c.SecretKey, "rk_test_"):
		mode = "test"
	case strings.HasPrefix(c.SecretKey, "sk_live_"), strings.HasPrefix(c.SecretKey, "rk_live_"):
		mode = "live"
	default:
		errs = append(errs, errors.New("stripe secret key: want sk_test_..., sk_live_... or a restricted rk_... key"))
	}
	if !validKeyChars(c.SecretKey) {
		errs = append(errs, errors.New("stripe secret key: contains characters no Stripe key has (stray whitespace or quotes?)"))
	}
	if !strings.HasPrefix(c.WebhookSecret, "whsec_") || !validKeyChars(c.WebhookSecret) {
		errs = append(errs, errors.New("stripe webhook secret: want the endpoint's signing secret (whsec_ and more)"))
	}
	switch {
	case !strings.HasPrefix(c.PublishableKey, "pk_test_") && !strings.HasPrefix(c.PublishableKey, "pk_live_") || !validKeyChars(c.PublishableKey):
		errs = append(errs, errors.New("stripe publishable key: want a pk_test_ or pk_live_ key"))
	case mode != "" && !strings.HasPrefix(c.PublishableKey, "pk_"+mode+"_"):
		errs = append(errs, fmt.Errorf("stripe keys: the secret key is a %s key but the publishable key is not", mode))
	}
	return errors.Join(errs...)
}

func validKeyChars(s string) bool {
	if len(s) < 8 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Provider takes payments through Stripe. It is safe for concurrent use,
// and several processes may share its database.
type Provider struct {
	client    *stripego.Client
	cfg       Config
	db        *sql.DB
	publicKey string
	// keyLocks serializes calls for one idempotency key in this process,
	// so concurrent retries create one intent; other processes are kept
	// to one by Stripe's idempotency keys and the ledger's primary key.
	keyLocks [64]sync.Mutex
}

// schema is valid in SQLite and PostgreSQL.
const schema = `
CREATE TABLE IF NOT EXISTS stripe_payment_intents (
	idempotency_key TEXT PRIMARY KEY,
	order_id        TEXT NOT NULL,
	intent_id       TEXT NOT NULL,
	created_at      BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS stripe_webhook_events (
	event_id    TEXT PRIMARY KEY,
	type        TEXT NOT NULL,
	received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS stripe_webhook_events_received ON stripe_webhook_events (received_at);
`

// New validates cfg and returns a provider; it creates its tables if
// they do not exist. It does not call Stripe.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DB == nil {
		return nil, errors.New("stripe: a database for the intent ledger is required")
	}
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = 5 * time.Minute
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	// stripe-go's own log lines are dropped: they repeat Stripe's error
	// messages, which may quote the API key, and the pipeline reports
	// every failure already.
	bc := &stripego.BackendConfig{HTTPClient: hc, LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
		// Retries of network failures reuse the idempotency key, so they
		// are safe; the order pipeline retries the rest.
		MaxNetworkRetries: stripego.Int64(2)}
	if cfg.APIURL != "" {
		bc.URL = stripego.String(strings.TrimRight(cfg.APIURL, "/"))
	}
	backends := &stripego.Backends{
		API:         stripego.GetBackendWithConfig(stripego.APIBackend, bc),
		Connect:     stripego.GetBackendWithConfig(stripego.ConnectBackend, bc),
		Uploads:     stripego.GetBackendWithConfig(stripego.UploadsBackend, bc),
		MeterEvents: stripego.GetBackendWithConfig(stripego.MeterEventsBackend, bc),
	}
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := cfg.DB.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("stripe ledger: %w", err)
		}
	}
	return &Provider{client: stripego.NewClient(cfg.SecretKey, stripego.WithBackends(backends)), cfg: cfg, db: cfg.DB,
		publicKey: cfg.PublishableKey}, nil
}

// PublishableKey is the key the checkout page gives Stripe.js.
func (p *Provider) PublishableKey() string { return p.publicKey }

// Tokenize accepts what the checkout page sends for payment: the ID of a
// PaymentMethod that Stripe.js created from the card. A card number is
// refused: it must never reach Surge.
func (p *Provider) Tokenize(method string) (token, last4 string, err error) {
	if !ValidPaymentMethodID(method) {
		return "", "", fmt.Errorf("%w: send the PaymentMethod ID Stripe.js returns (pm_...); card numbers are not accepted", payment.ErrInvalidCard)
	}
	// The last four digits come from Stripe with the authorization.
	return method, "", nil
}

// ValidPaymentMethodID reports whether s looks like a Stripe PaymentMethod
// ID: "pm_" and up to 250 letters, digits and underscores.
func ValidPaymentMethodID(s string) bool {
	rest, ok := strings.CutPrefix(s, "pm_")
	if !ok || rest == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// stripeKey is the Idempotency-Key sent to Stripe for one of Surge's
// keys (such as "authorize:<order id>").
func stripeKey(key string) string { return "surge:" + key }

func (p *Provider) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &p.keyLocks[h.Sum32()%uint32(len(p.keyLocks))]
	m.Lock()
	return m.Unlock
}

// Authorize creates and confirms a PaymentIntent with manual capture for
// the order, or finds the one an earlier call with the same key created,
// and reports whether the money is held.
func (p *Provider) Authorize(ctx context.Context, req payment.AuthorizeRequest) (payment.Authorization, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Authorization{}, fmt.Errorf("authorize: %w", err)
	}
	if !ValidPaymentMethodID(req.PaymentMethod) {
		return payment.Authorization{}, fmt.Errorf("authorize order %s: payment method is not a Stripe PaymentMethod: %w", req.OrderID, payment.ErrNotFound)
	}
	pi, err := p.intentFor(ctx, req)
	if err != nil {
		return payment.Authorization{}, fmt.Errorf("authorize order %s: %w", req.OrderID, err)
	}
	auth, err := authorizationOf(pi, req)
	if errors.Is(err, errNeedsAction) {
		// Nobody is on the page to authenticate: release the intent and
		// decline, so the buyer is asked for another card.
		if cerr := p.cancel(ctx, pi.ID, "cancel:"+req.IdempotencyKey); cerr != nil {
			return payment.Authorization{}, fmt.Errorf("authorize order %s: cancel intent that needs authentication: %w", req.OrderID, cerr)
		}
		err = &payment.DeclineError{Code: string(stripego.ErrorCodeAuthenticationRequired)}
	}
	if err != nil {
		return payment.Authorization{}, fmt.Errorf("authorize order %s: %w", req.OrderID, err)
	}
	return auth, nil
}

// intentFor returns the order's PaymentIntent for req's key: the recorded
// one, read fresh from Stripe, or a new one.
func (p *Provider) intentFor(ctx context.Context, req payment.AuthorizeRequest) (*stripego.PaymentIntent, error) {
	defer p.lock(req.IdempotencyKey)()
	id, order, err := p.recorded(ctx, req.IdempotencyKey)
	if err != nil {
		return nil, err
	}
	if id != "" {
		if order != req.OrderID {
			return nil, fmt.Errorf("key %q was used for order %s: %w", req.IdempotencyKey, order, payment.ErrIdempotencyMismatch)
		}
		rp := &stripego.PaymentIntentRetrieveParams{Params: stripego.Params{Context: ctx}}
		rp.AddExpand("latest_charge")
		pi, err := p.client.V1PaymentIntents.Retrieve(ctx, id, rp)
		if err != nil {
			return nil, classify(err)
		}
		return pi, nil
	}
	params := &stripego.PaymentIntentCreateParams{
		Amount:             stripego.Int64(req.Amount.Amount),
		Currency:           stripego.String(strings.ToLower(req.Amount.Currency)),
		PaymentMethod:      stripego.String(req.PaymentMethod),
		PaymentMethodTypes: []*string{stripego.String("card")},
		CaptureMethod:      stripego.String(string(stripego.PaymentIntentCaptureMethodManual)),
		Confirm:            stripego.Bool(true),
		Description:        stripego.String("Surge order " + req.OrderID),
	}
	params.Context = ctx
	params.AddMetadata("order_id", req.OrderID)
	params.AddExpand("latest_charge")
	params.SetIdempotencyKey(stripeKey(req.IdempotencyKey))
	pi, err := p.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		// A decline still created an intent (in the error); it needs no
		// record: a retry replays the same decline from Stripe.
		return nil, classify(err)
	}
	// Keep the first intent recorded for the key, should another process
	// have raced this one past Stripe's idempotency window.
	if _, err := p.db.ExecContext(ctx, `INSERT INTO stripe_payment_intents (idempotency_key, order_id, intent_id, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING`, req.IdempotencyKey, req.OrderID, pi.ID, time.Now().UnixNano()); err != nil {
		return nil, payment.Transient(fmt.Errorf("record intent %s: %w", pi.ID, err))
	}
	if first, _, err := p.recorded(ctx, req.IdempotencyKey); err != nil {
		return nil, err
	} else if first != pi.ID {
		return p.client.V1PaymentIntents.Retrieve(ctx, first, &stripego.PaymentIntentRetrieveParams{Params: stripego.Params{Context: ctx}})
	}
	return pi, nil
}

func (p *Provider) recorded(ctx context.Context, key string) (intentID, orderID string, err error) {
	err = p.db.QueryRowContext(ctx, `SELECT intent_id, order_id FROM stripe_payment_intents WHERE idempotency_key = $1`, key).Scan(&intentID, &orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", payment.Transient(fmt.Errorf("read intent ledger: %w", err))
	}
	return intentID, orderID, nil
}

// Intents counts the intents recorded for an order: the number the
// idempotency keys keep at one.
func (p *Provider) Intents(ctx context.Context, orderID string) (int, error) {
	var n int
	err := p.db.QueryRowContext(ctx, `SELECT count(*) FROM stripe_payment_intents WHERE order_id = $1`, orderID).Scan(&n)
	return n, err
}

var errNeedsAction = errors.New("payment intent needs the buyer to authenticate")

// authorizationOf says what a PaymentIntent's status means for an
// authorization.
func authorizationOf(pi *stripego.PaymentIntent, req payment.AuthorizeRequest) (payment.Authorization, error) {
	auth := payment.Authorization{ID: pi.ID, OrderID: req.OrderID, Amount: req.Amount, Last4: last4(pi),
		CreatedAt: time.Unix(pi.Created, 0).UTC()}
	switch pi.Status {
	case stripego.PaymentIntentStatusRequiresCapture, stripego.PaymentIntentStatusSucceeded:
		// Succeeded: captured by an earlier attempt; Capture says so.
		return auth, nil
	case stripego.PaymentIntentStatusProcessing:
		return payment.Authorization{}, payment.Transient(fmt.Errorf("intent %s is still processing", pi.ID))
	case stripego.PaymentIntentStatusRequiresAction, stripego.PaymentIntentStatusRequiresConfirmation:
		return payment.Authorization{}, errNeedsAction
	case stripego.PaymentIntentStatusCanceled:
		return payment.Authorization{}, &payment.DeclineError{Code: "canceled"}
	default: // requires_payment_method: the card was refused
		return payment.Authorization{}, &payment.DeclineError{Code: declineCode(pi.LastPaymentError)}
	}
}

func last4(pi *stripego.PaymentIntent) string {
	if c := pi.LatestCharge; c != nil && c.PaymentMethodDetails != nil && c.PaymentMethodDetails.Card != nil {
		return c.PaymentMethodDetails.Card.Last4
	}
	return ""
}

func declineCode(e *stripego.Error) string {
	switch {
	case e == nil:
		return payment.DeclineGeneric
	case e.DeclineCode != "":
		return string(e.DeclineCode)
	case e.Code != "":
		return string(e.Code)
	}
	return payment.DeclineGeneric
}

// Capture takes the held money, at most once per intent.
func (p *Provider) Capture(ctx context.Context, req payment.CaptureRequest) (payment.Capture, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Capture{}, fmt.Errorf("capture: %w", err)
	}
	params := &stripego.PaymentIntentCaptureParams{AmountToCapture: stripego.Int64(req.Amount.Amount)}
	params.Context = ctx
	params.SetIdempotencyKey(stripeKey(req.IdempotencyKey))
	pi, err := p.client.V1PaymentIntents.Capture(ctx, req.AuthorizationID, params)
	if se, ok := errors.AsType[*stripego.Error](err); ok && se.Code == stripego.ErrorCodePaymentIntentUnexpectedState {
		// Captured already, past Stripe's idempotency window: the intent
		// itself says so.
		pi, err = p.client.V1PaymentIntents.Retrieve(ctx, req.AuthorizationID, &stripego.PaymentIntentRetrieveParams{Params: stripego.Params{Context: ctx}})
		if err == nil && pi.Status != stripego.PaymentIntentStatusSucceeded {
			return payment.Capture{}, fmt.Errorf("capture order %s: intent %s is %s: %w", req.OrderID, pi.ID, pi.Status, payment.ErrInvalidState)
		}
	}
	if err != nil {
		return payment.Capture{}, fmt.Errorf("capture order %s: %w", req.OrderID, classify(err))
	}
	if pi.Currency != "" && !strings.EqualFold(string(pi.Currency), req.Amount.Currency) {
		return payment.Capture{}, fmt.Errorf("capture order %s: intent in %s: %w", req.OrderID, pi.Currency, payment.ErrAmount)
	}
	return payment.Capture{ID: pi.ID, AuthorizationID: pi.ID, OrderID: req.OrderID, Amount: req.Amount, CreatedAt: time.Now().UTC()}, nil
}

// Void cancels an intent that was not captured.
func (p *Provider) Void(ctx context.Context, req payment.VoidRequest) error {
	if req.IdempotencyKey == "" || req.OrderID == "" {
		return errors.New("void: idempotency key and order id are required")
	}
	if err := p.cancel(ctx, req.AuthorizationID, req.IdempotencyKey); err != nil {
		return fmt.Errorf("void order %s: %w", req.OrderID, err)
	}
	return nil
}

func (p *Provider) cancel(ctx context.Context, intentID, key string) error {
	params := &stripego.PaymentIntentCancelParams{}
	params.Context = ctx
	params.SetIdempotencyKey(stripeKey(key))
	_, err := p.client.V1PaymentIntents.Cancel(ctx, intentID, params)
	return classify(err)
}

// Refund returns captured money: the capture's ID is its intent's.
func (p *Provider) Refund(ctx context.Context, req payment.RefundRequest) (payment.Refund, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Refund{}, fmt.Errorf("refund: %w", err)
	}
	params := &stripego.RefundCreateParams{PaymentIntent: stripego.String(req.CaptureID), Amount: stripego.Int64(req.Amount.Amount)}
	params.Context = ctx
	params.AddMetadata("order_id", req.OrderID)
	if req.Reason != "" {
		params.AddMetadata("reason", truncate(req.Reason, 500))
	}
	params.SetIdempotencyKey(stripeKey(req.IdempotencyKey))
	re, err := p.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return payment.Refund{}, fmt.Errorf("refund order %s: %w", req.OrderID, classify(err))
	}
	return payment.Refund{ID: re.ID, CaptureID: req.CaptureID, OrderID: req.OrderID, Amount: req.Amount, CreatedAt: time.Unix(re.Created, 0).UTC()}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func validate(key, orderID string, amount money.Money) error {
	if key == "" || orderID == "" {
		return errors.New("idempotency key and order id are required")
	}
	return payment.ValidateAmount(amount)
}

// classify maps Stripe's errors to the payment package's: declines,
// retryable failures (network, rate limits, Stripe's own errors, a
// concurrent request with the same key, a bad key an operator can fix),
// and the domain errors retries cannot fix.
func classify(err error) error {
	if err == nil {
		return nil
	}
	se, ok := errors.AsType[*stripego.Error](err)
	if !ok {
		return payment.Transient(err) // network: the request may not have arrived
	}
	switch {
	case se.Type == stripego.ErrorTypeCard:
		return &payment.DeclineError{Code: declineCode(se)}
	case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
		// Stripe's message may quote the key: it stays out of errors and
		// logs. Retryable: an operator fixes the key, the orders wait.
		return payment.Transient(fmt.Errorf("stripe refused the API key (%d): check --stripe-secret-key-file or SURGE_STRIPE_SECRET_KEY", se.HTTPStatusCode))
	case se.Type == stripego.ErrorTypeIdempotency:
		return fmt.Errorf("%s: %w", se.Msg, payment.ErrIdempotencyMismatch)
	case se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusConflict ||
		se.HTTPStatusCode == 0 || se.Type == stripego.ErrorTypeAPI:
		return payment.Transient(fmt.Errorf("stripe %d %s: %s", se.HTTPStatusCode, se.Code, se.Msg))
	case se.Code == stripego.ErrorCodeResourceMissing:
		return fmt.Errorf("%s: %w", se.Msg, payment.ErrNotFound)
	case se.Code == stripego.ErrorCodeAmountTooLarge || se.Code == stripego.ErrorCodeChargeAlreadyRefunded || se.Param == "amount" || se.Param == "amount_to_capture":
		return fmt.Errorf("%s: %w", se.Msg, payment.ErrAmount)
	case se.Code == stripego.ErrorCodePaymentIntentUnexpectedState:
		return fmt.Errorf("%s: %w", se.Msg, payment.ErrInvalidState)
	default:
		return fmt.Errorf("stripe %d %s: %s", se.HTTPStatusCode, se.Code, se.Msg)
	}
}
