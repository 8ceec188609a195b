package mail_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/smtpsink"
)

func newSink(t *testing.T, o smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	sink, err := smtpsink.Start("", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink
}

// One session sends many messages on one connection, each with the
// Message-ID and one-click unsubscribe headers it was given.
func TestSessionReusesConnection(t *testing.T) {
	sink := newSink(t, smtpsink.Options{Keep: 3, Reject: []string{"gone@example.com"}})
	s, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: sink.Addr(), From: "Shop <shop@shop.example>"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sess, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		err := sess.Send(ctx, mail.Message{To: fmt.Sprintf("r%d@example.com", i), Subject: "Drop soon", Text: "Hello",
			MessageID: fmt.Sprintf("job-1.sub-%d@shop.example", i), Unsubscribe: fmt.Sprintf("https://shop.example/notify/unsubscribe?token=T%d", i)})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// A refused recipient is permanent, and the session carries on.
	err = sess.Send(ctx, mail.Message{To: "gone@example.com", Subject: "x", Text: "x"})
	if err == nil || !mail.Permanent(err) || sess.Broken() {
		t.Fatalf("refused recipient: err %v, permanent %v, broken %v; want a permanent error on a live session", err, mail.Permanent(err), sess.Broken())
	}
	if err := sess.Send(ctx, mail.Message{To: "after@example.com", Subject: "x", Text: "x", MessageID: "after@shop.example"}); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := sink.Wait(ctx, func(st smtpsink.Stats) bool { return st.Messages == n+1 })
	if err != nil {
		t.Fatal(err)
	}
	if st.Connections != 1 || st.Distinct != n+1 {
		t.Errorf("sink saw %+v; want %d messages on 1 connection", st, n+1)
	}
	m := sink.Kept()[1]
	if got := m.Header.Get("Message-Id"); got != "<job-1.sub-1@shop.example>" {
		t.Errorf("Message-Id %q", got)
	}
	if got := m.Header.Get("List-Unsubscribe"); got != "<https://shop.example/notify/unsubscribe?token=T1>" {
		t.Errorf("List-Unsubscribe %q", got)
	}
	if got := m.Header.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post %q", got)
	}
}

// A server that goes away breaks the session, and the error is temporary.
func TestSessionBrokenConnection(t *testing.T) {
	sink, err := smtpsink.Start("", smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := mail.NewSMTPSender(mail.SMTPConfig{Addr: sink.Addr(), From: "shop@shop.example", Timeout: 2 * time.Second})
	sess, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sink.Close()
	err = sess.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "x", Text: "x"})
	if err == nil || mail.Permanent(err) || !sess.Broken() {
		t.Fatalf("after the server closed: err %v, permanent %v, broken %v", err, mail.Permanent(err), sess.Broken())
	}
	sess.Close()
}

func TestMessageHeaderValuesChecked(t *testing.T) {
	sink := newSink(t, smtpsink.Options{})
	s, _ := mail.NewSMTPSender(mail.SMTPConfig{Addr: sink.Addr(), From: "shop@shop.example"})
	for _, m := range []mail.Message{
		{To: "a@example.com", Subject: "x", Text: "x", MessageID: "no-at-sign"},
		{To: "a@example.com", Subject: "x", Text: "x", MessageID: "a@b>\r\nBcc: x@y"},
		{To: "a@example.com", Subject: "x", Text: "x", Unsubscribe: "javascript:alert(1)"},
		{To: "a@example.com", Subject: "x", Text: "x", Unsubscribe: "https://x.example/u>\r\nBcc: y@z"},
	} {
		if err := s.Send(context.Background(), m); err == nil {
			t.Errorf("Send(%+v) = nil; want refused", m)
		}
	}
}
