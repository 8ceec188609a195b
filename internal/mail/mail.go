// Package mail sends transactional email such as order confirmations.
// Sender has two adapters: a log sender, the default, which writes each
// message to the log so a shop runs without a mail server, and an SMTP
// sender for real delivery.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Message is one email to one recipient.
type Message struct {
	// To is the recipient address, optionally with a display name:
	// "Ada Lovelace <ada@example.com>".
	To string
	// Subject is the subject line; non-ASCII text is encoded.
	Subject string
	// Text is the plain-text body; HTML, if not empty, is sent as an
	// alternative to it.
	Text, HTML string
	// MessageID, if set, is the Message-ID without angle brackets
	// ("job-7.sub-42@shop.example"); empty gets a random one. A sender
	// that may send a message twice (a bulk job resuming after a crash)
	// sets a stable one, so the receiving side can tell a repeat.
	MessageID string
	// Unsubscribe, if set, is the https or http URL that unsubscribes the
	// recipient with one POST: it goes in List-Unsubscribe with
	// List-Unsubscribe-Post (RFC 8058), so mail clients offer one-click
	// unsubscribe.
	Unsubscribe string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrInvalidMessage means a message cannot be sent as given: a bad address,
// a line break in a header, an empty body.
var ErrInvalidMessage = errors.New("invalid mail message")

// validate checks m and returns the parsed recipient. CR and LF are
// refused in header fields: they would let whoever controls the value (a
// customer's name or address) add headers or recipients.
func (m Message) validate() (*mail.Address, error) {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("%w: line break in To or Subject", ErrInvalidMessage)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient %q: %v", ErrInvalidMessage, m.To, err)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, fmt.Errorf("%w: empty body", ErrInvalidMessage)
	}
	if m.MessageID != "" && !validMessageID(m.MessageID) {
		return nil, fmt.Errorf("%w: message id %q", ErrInvalidMessage, m.MessageID)
	}
	if m.Unsubscribe != "" {
		u, err := url.Parse(m.Unsubscribe)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(m.Unsubscribe, "\r\n<> ") {
			return nil, fmt.Errorf("%w: unsubscribe URL %q", ErrInvalidMessage, m.Unsubscribe)
		}
	}
	return to, nil
}

// LogSender writes messages to a logger instead of sending them.
type LogSender struct {
	log *slog.Logger
}

// NewLogSender returns a Sender that logs each message at info level.
func NewLogSender(log *slog.Logger) *LogSender {
	return &LogSender{log: log}
}

// Send logs m after the same checks the SMTP sender makes, so a message
// that would fail in production fails here too.
func (s *LogSender) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	s.log.InfoContext(ctx, "mail (log sender, not delivered)",
		"to", to.Address, "subject", m.Subject, "text", m.Text, "html_bytes", len(m.HTML))
	return nil
}

// SMTPConfig says how to reach a mail server.
type SMTPConfig struct {
	// Addr is host:port of the server, such as "smtp.example.com:587".
	Addr string
	// From is the sender address, such as "Surge Shop <shop@example.com>".
	From string
	// Username and Password, if set, authenticate with AUTH PLAIN. The
	// password is only ever sent over TLS, or to a server on this machine.
	Username, Password string
	// STARTTLS upgrades the connection to TLS before authenticating and
	// sending; required with credentials unless the server is local.
	STARTTLS bool
	// TLSConfig overrides the TLS settings (default: verify the server's
	// certificate for the host in Addr).
	TLSConfig *tls.Config
	// Timeout bounds a whole delivery when the ctx has no deadline
	// (default 30s).
	Timeout time.Duration
	// LocalName is the name sent in EHLO (default "localhost").
	LocalName string
}

// SMTPSender delivers messages through an SMTP server, one connection per
// message.
type SMTPSender struct {
	cfg  SMTPConfig
	host string
	from *mail.Address
}

// NewSMTPSender checks cfg and returns a sender. It does not connect.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp sender: address %q: %w", cfg.Addr, err)
	}
	if strings.ContainsAny(cfg.From, "\r\n") {
		return nil, fmt.Errorf("smtp sender: line break in From")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp sender: from %q: %w", cfg.From, err)
	}
	if cfg.Username != "" && !cfg.STARTTLS && !isLocal(host) {
		return nil, fmt.Errorf("smtp sender: credentials for %s need STARTTLS", host)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	return &SMTPSender{cfg: cfg, host: host, from: from}, nil
}

// isLocal matches net/smtp's rule for sending PLAIN credentials unencrypted.
func isLocal(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Send delivers m. The ctx bounds the whole conversation with the server.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	body, err := s.compose(m, to)
	if err != nil {
		return fmt.Errorf("send mail to %s: %w", to.Address, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	if err := s.deliver(ctx, to.Address, body); err != nil {
		return fmt.Errorf("send mail to %s via %s: %w", to.Address, s.cfg.Addr, err)
	}
	return nil
}

func (s *SMTPSender) deliver(ctx context.Context, to string, body []byte) error {
	sess, err := s.Open(ctx)
	if err != nil {
		return err
	}
	defer sess.abandon()
	stop := sess.bound(ctx)
	defer stop()
	if err := sess.transact(ctx, to, body); err != nil {
		return err
	}
	return ctxErr(ctx, sess.c.Quit())
}

// ctxErr prefers the ctx's error when the ctx ended: "context deadline
// exceeded" says more than "i/o timeout".
func ctxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	// The connection's deadline is the ctx's, and may fire a moment before
	// the ctx's own timer.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// compose renders m as an RFC 5322 message with CRLF line ends.
func (s *SMTPSender) compose(m Message, to *mail.Address) ([]byte, error) {
	var buf bytes.Buffer
	h := textproto.MIMEHeader{}
	h.Set("From", s.from.String())
	h.Set("To", to.String())
	h.Set("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h.Set("Date", time.Now().Format(time.RFC1123Z))
	id := m.MessageID
	if id == "" {
		id = rand.Text() + "@" + domainOf(s.from.Address)
	}
	h.Set("Message-Id", "<"+id+">")
	h.Set("Mime-Version", "1.0")
	if m.Unsubscribe != "" {
		h.Set("List-Unsubscribe", "<"+m.Unsubscribe+">")
		h.Set("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}

	if m.HTML == "" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		writeHeader(&buf, h)
		if err := writeQP(&buf, m.Text); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var parts bytes.Buffer
	mw := multipart.NewWriter(&parts)
	for _, p := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		if p.body == "" {
			continue
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		if err := writeQP(pw, p.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	h.Set("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	writeHeader(&buf, h)
	buf.Write(parts.Bytes())
	return buf.Bytes(), nil
}

func writeHeader(buf *bytes.Buffer, h textproto.MIMEHeader) {
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Mime-Version", "Content-Type", "Content-Transfer-Encoding"} {
		if v := h.Get(k); v != "" {
			fmt.Fprintf(buf, "%s: %s\r\n", k, v)
		}
	}
	buf.WriteString("\r\n")
}

// writeQP writes text quoted-printable with CRLF line ends.
func writeQP(w io.Writer, text string) error {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\n", "\r\n")
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(text)); err != nil {
		return err
	}
	return qp.Close()
}

// validMessageID accepts id-left@id-right made of printable ASCII without
// angle brackets, spaces or a second @.
func validMessageID(id string) bool {
	left, right, ok := strings.Cut(id, "@")
	if !ok || left == "" || right == "" || strings.Contains(right, "@") || len(id) > 250 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func domainOf(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok && d != "" {
		return d
	}
	return "localhost"
}
