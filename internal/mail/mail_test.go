package mail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is what the test SMTP server recorded of one session.
type received struct {
	auth string // decoded AUTH PLAIN response, "\x00user\x00pass"
	from string
	rcpt []string
	data string
}

// smtpServer is a minimal SMTP server on 127.0.0.1 for tests: it speaks
// just enough of RFC 5321 for net/smtp (EHLO/HELO, AUTH PLAIN, MAIL, RCPT,
// DATA, RSET, NOOP, QUIT) and records each session.
type smtpServer struct {
	ln   net.Listener
	done chan received
	wg   sync.WaitGroup
	// rejectRcpt makes RCPT fail with a permanent error.
	rejectRcpt bool
	// stall makes the server stop answering after the greeting.
	stall chan struct{}
}

// startSMTP starts a server; configure, if not nil, sets it up before it
// accepts connections.
func startSMTP(tb testing.TB, configure func(*smtpServer)) *smtpServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &smtpServer{ln: ln, done: make(chan received, 10)}
	if configure != nil {
		configure(s)
	}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		if s.stall != nil {
			close(s.stall)
		}
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	reply := func(line string) {
		w.WriteString(line + "\r\n")
		w.Flush()
	}
	reply("220 test.local ESMTP ready")
	if s.stall != nil {
		<-s.stall
		return
	}
	var rec received
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-test.local greets " + arg)
			reply("250-8BITMIME")
			reply("250 AUTH PLAIN")
		case "HELO":
			reply("250 test.local")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			dec, err := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || err != nil {
				reply("504 unsupported")
				continue
			}
			rec.auth = string(dec)
			reply("235 2.7.0 authenticated")
		case "MAIL":
			rec.from = arg
			reply("250 2.1.0 ok")
		case "RCPT":
			if s.rejectRcpt {
				reply("550 5.1.1 no such user")
				continue
			}
			rec.rcpt = append(rec.rcpt, arg)
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			rec.data = data.String()
			reply("250 2.0.0 queued")
			s.done <- rec
		case "RSET":
			rec = received{}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

func (s *smtpServer) next(tb testing.TB) received {
	tb.Helper()
	select {
	case rec := <-s.done:
		return rec
	case <-time.After(10 * time.Second):
		tb.Fatal("no message received")
		return received{}
	}
}

func newSender(tb testing.TB, cfg SMTPConfig) *SMTPSender {
	tb.Helper()
	if cfg.From == "" {
		cfg.From = "Surge Shop <shop@surge.test>"
	}
	s, err := NewSMTPSender(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestSMTPSendsPlainText(t *testing.T) {
	srv := startSMTP(t, nil)
	s := newSender(t, SMTPConfig{Addr: srv.addr()})
	text := "Thanks for your order #1001.\n.\nA line with a dot, and = signs, and ünïcode."
	err := s.Send(context.Background(), Message{To: "Ada Lovelace <ada@example.com>", Subject: "Your order #1001 — confirmed", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	rec := srv.next(t)
	if !strings.HasPrefix(rec.from, "FROM:<shop@surge.test>") || len(rec.rcpt) != 1 || rec.rcpt[0] != "TO:<ada@example.com>" || rec.auth != "" {
		t.Fatalf("envelope %+v", rec)
	}
	msg, err := mail.ReadMessage(strings.NewReader(rec.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "Your order #1001 — confirmed" {
		t.Errorf("subject %q (%v)", subject, err)
	}
	if to := msg.Header.Get("To"); to != `"Ada Lovelace" <ada@example.com>` {
		t.Errorf("to %q", to)
	}
	if msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
		t.Errorf("missing Message-Id or Date: %v", msg.Header)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	// The DATA terminator needs the body to end in CRLF; net/smtp adds one.
	if got := strings.TrimSuffix(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n"); got != text {
		t.Errorf("body %q, want %q", got, text)
	}
}

func TestSMTPSendsHTMLAlternative(t *testing.T) {
	srv := startSMTP(t, nil)
	s := newSender(t, SMTPConfig{Addr: srv.addr()})
	if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "plain", HTML: "<p>rich</p>"}); err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(strings.NewReader(srv.next(t).data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q %v", mt, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var got []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable itself
		got = append(got, p.Header.Get("Content-Type")+"="+string(b))
	}
	want := []string{"text/plain; charset=utf-8=plain", "text/html; charset=utf-8=<p>rich</p>"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("parts %q, want %q", got, want)
	}
}

func TestSMTPAuthToLocalhost(t *testing.T) {
	srv := startSMTP(t, nil)
	s := newSender(t, SMTPConfig{Addr: srv.addr(), Username: "shop", Password: "s3cret"})
	if err := s.Send(context.Background(), Message{To: "c@example.com", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	if rec := srv.next(t); rec.auth != "\x00shop\x00s3cret" {
		t.Fatalf("auth %q", rec.auth)
	}
}

func TestSMTPRefusesPasswordInClear(t *testing.T) {
	if _, err := NewSMTPSender(SMTPConfig{Addr: "smtp.example.com:25", From: "a@b.c", Username: "u", Password: "p"}); err == nil {
		t.Fatal("credentials to a remote server without STARTTLS accepted")
	}
	if _, err := NewSMTPSender(SMTPConfig{Addr: "smtp.example.com:587", From: "a@b.c", Username: "u", Password: "p", STARTTLS: true}); err != nil {
		t.Fatal(err)
	}
}

func TestSMTPStartTLSRequiredButUnsupported(t *testing.T) {
	srv := startSMTP(t, nil) // does not offer STARTTLS
	s := newSender(t, SMTPConfig{Addr: srv.addr(), STARTTLS: true})
	if err := s.Send(context.Background(), Message{To: "c@example.com", Subject: "s", Text: "t"}); err == nil {
		t.Fatal("sent without the TLS the config asked for")
	}
}

func TestSMTPServerRejection(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) { s.rejectRcpt = true })
	s := newSender(t, SMTPConfig{Addr: srv.addr()})
	err := s.Send(context.Background(), Message{To: "nobody@example.com", Subject: "s", Text: "t"})
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("got %v, want the server's 550", err)
	}
}

func TestSMTPHonoursContext(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) { s.stall = make(chan struct{}) })
	s := newSender(t, SMTPConfig{Addr: srv.addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, Message{To: "c@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestHeaderInjectionRejected(t *testing.T) {
	var logs bytes.Buffer
	senders := map[string]Sender{
		"log":  NewLogSender(slog.New(slog.NewTextHandler(&logs, nil))),
		"smtp": newSender(t, SMTPConfig{Addr: "127.0.0.1:1"}), // never reached
	}
	for name, s := range senders {
		for _, m := range []Message{
			{To: "victim@example.com\r\nBcc: everyone@example.com", Subject: "s", Text: "t"},
			{To: "victim@example.com", Subject: "hi\nBcc: everyone@example.com", Text: "t"},
			{To: "victim@example.com", Subject: "hi\rX: y", Text: "t"},
			{To: "not an address", Subject: "s", Text: "t"},
			{To: "a@example.com, b@example.com", Subject: "s", Text: "t"},
			{To: "a@example.com", Subject: "s"},
		} {
			if err := s.Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("%s sender: %+v: got %v, want ErrInvalidMessage", name, m, err)
			}
		}
	}
	if logs.Len() != 0 {
		t.Errorf("log sender logged rejected mail: %s", logs.String())
	}
	if _, err := NewSMTPSender(SMTPConfig{Addr: "127.0.0.1:25", From: "a@b.c\r\nBcc: x@y.z"}); err == nil {
		t.Error("From with a line break accepted")
	}
}

func TestLogSender(t *testing.T) {
	var logs bytes.Buffer
	s := NewLogSender(slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Send(context.Background(), Message{To: "ada@example.com", Subject: "Order confirmed", Text: "Thanks"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"to=ada@example.com", `subject="Order confirmed"`, "text=Thanks"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}
