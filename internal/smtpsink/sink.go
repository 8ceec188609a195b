// Package smtpsink is a real SMTP server (github.com/emersion/go-smtp)
// that accepts every message on 127.0.0.1 and counts what it received:
// messages, distinct Message-IDs, recipients and connections. Tests and
// the blast benchmark send to it to check what a sender delivered.
package smtpsink

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/textproto"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
)

// Message is what the sink kept of one delivered message.
type Message struct {
	From   string
	To     []string
	Header textproto.MIMEHeader
	Body   string
}

// Sink is a running SMTP server.
type Sink struct {
	srv *smtp.Server
	ln  net.Listener

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every delivery
	messages    int
	ids         map[string]int // Message-ID -> deliveries
	recipients  map[string]int
	connections int
	kept        []Message
	keep        int
	reject      map[string]bool
	idPrefix    string
	other       int
	deferLeft   int
	deferred    int
}

// Options shape a sink.
type Options struct {
	// Keep is how many messages to keep whole, the first ones (0: none).
	Keep int
	// Reject lists recipients refused with 550 (a permanent failure).
	Reject []string
	// Defer answers the first Defer messages with 451 (a temporary
	// failure: try again later), as a busy mail server does.
	Defer int
	// IDPrefix, if set, limits the counts to messages whose Message-ID
	// starts with it ("<job-": a mail job's); the others are accepted
	// and counted in Stats.Other only.
	IDPrefix string
}

// Start listens on 127.0.0.1 at a free port (or addr, when not empty) and
// serves until Close.
func Start(addr string, o Options) (*Sink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln, changed: make(chan struct{}), ids: map[string]int{}, recipients: map[string]int{},
		keep: o.Keep, reject: map[string]bool{}, idPrefix: o.IDPrefix, deferLeft: o.Defer}
	for _, r := range o.Reject {
		s.reject[strings.ToLower(r)] = true
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.connections++
		s.mu.Unlock()
		return &session{sink: s}, nil
	}))
	s.srv.Domain = "sink.localhost"
	// A sender killed mid-conversation is what the crash tests do; its
	// reset connections are not news.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Stats are the sink's counts.
type Stats struct {
	Messages    int // deliveries, repeats included
	Distinct    int // distinct Message-IDs
	Recipients  int // distinct recipients
	Connections int
	// Repeats counts Message-IDs delivered more than once.
	Repeats int
	// Other counts messages left out by Options.IDPrefix.
	Other int
	// Deferred counts messages answered 451 (Options.Defer).
	Deferred int
}

// Stats returns the counts so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Messages: s.messages, Distinct: len(s.ids), Recipients: len(s.recipients), Connections: s.connections, Other: s.other, Deferred: s.deferred}
	for _, n := range s.ids {
		if n > 1 {
			st.Repeats++
		}
	}
	return st
}

// Kept returns the messages kept whole (see Options.Keep).
func (s *Sink) Kept() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.kept...)
}

// Wait blocks until cond holds for the stats, or ctx ends.
func (s *Sink) Wait(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		st := s.Stats()
		if cond(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.sink.reject[strings.ToLower(to)] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	tr := textproto.NewReader(bufio.NewReader(r))
	h, err := tr.ReadMIMEHeader()
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "bad header: " + err.Error()}
	}
	body, err := io.ReadAll(tr.R)
	if err != nil {
		return err
	}
	id := h.Get("Message-Id")
	if id == "" {
		return errors.New("no Message-ID")
	}
	s := x.sink
	s.mu.Lock()
	if s.deferLeft > 0 {
		s.deferLeft--
		s.deferred++
		s.mu.Unlock()
		x.to = nil
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "busy, try again later"}
	}
	if !strings.HasPrefix(id, s.idPrefix) {
		s.other++
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		x.to = nil
		return nil
	}
	s.messages++
	s.ids[id]++
	for _, to := range x.to {
		s.recipients[strings.ToLower(to)]++
	}
	if len(s.kept) < s.keep {
		s.kept = append(s.kept, Message{From: x.from, To: append([]string(nil), x.to...), Header: h, Body: string(body)})
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	x.to = nil
	return nil
}
