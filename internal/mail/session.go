package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

// Session is one SMTP connection that sends many messages in turn, as a
// bulk job does: a connection, greeting, TLS handshake and login per
// message would cost the mail server (and the sender) more than the
// messages. A Session is not safe for concurrent use; open one per
// sending goroutine.
type Session struct {
	s      *SMTPSender
	conn   net.Conn
	c      *smtp.Client
	broken bool
}

// Open connects, greets, upgrades to TLS and logs in as cfg says. ctx
// bounds the connection's setup only.
func (s *SMTPSender) Open(ctx context.Context) (*Session, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, err
	}
	sess := &Session{s: s, conn: conn}
	// net/smtp has no ctx: a deadline on the connection bounds every step,
	// and cancelling ctx expires it at once.
	stop := sess.bound(ctx)
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return nil, ctxErr(ctx, err)
	}
	sess.c = c
	if err := sess.setup(ctx); err != nil {
		sess.abandon()
		return nil, err
	}
	return sess, nil
}

func (ss *Session) setup(ctx context.Context) error {
	cfg := ss.s.cfg
	if err := ss.c.Hello(cfg.LocalName); err != nil {
		return ctxErr(ctx, err)
	}
	if cfg.STARTTLS {
		tc := cfg.TLSConfig
		if tc == nil {
			tc = &tls.Config{ServerName: ss.s.host}
		}
		if err := ss.c.StartTLS(tc); err != nil {
			return ctxErr(ctx, fmt.Errorf("starttls: %w", err))
		}
	}
	if cfg.Username != "" {
		// smtp.PlainAuth itself refuses to send the password unless the
		// connection is TLS or the host is local.
		if err := ss.c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, ss.s.host)); err != nil {
			return ctxErr(ctx, fmt.Errorf("auth: %w", err))
		}
	}
	return nil
}

// bound makes ctx's deadline and cancellation the connection's; the
// returned func undoes the cancellation hook.
func (ss *Session) bound(ctx context.Context) func() bool {
	deadline, _ := ctx.Deadline()
	ss.conn.SetDeadline(deadline)
	return context.AfterFunc(ctx, func() { ss.conn.SetDeadline(time.Unix(1, 0)) })
}

// Send delivers m on the session's connection. It returns once the
// server has answered the message's data: nil means the server took
// responsibility for it (its 250). After an error the session may still
// be usable (a refused recipient) or not (Broken: a connection error);
// either way the message may be retried, on this session or a new one.
func (ss *Session) Send(ctx context.Context, m Message) error {
	if ss.broken {
		return errors.New("send mail: smtp session is broken")
	}
	to, err := m.validate()
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	body, err := ss.s.compose(m, to)
	if err != nil {
		return fmt.Errorf("send mail to %s: %w", to.Address, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ss.s.cfg.Timeout)
		defer cancel()
	}
	stop := ss.bound(ctx)
	defer stop()
	if err := ss.transact(ctx, to.Address, body); err != nil {
		return fmt.Errorf("send mail to %s via %s: %w", to.Address, ss.s.cfg.Addr, err)
	}
	return nil
}

// transact runs one MAIL, RCPT, DATA exchange. A refusal by the server
// (a reply code) leaves the connection in step after a RSET; anything
// else (a timeout, a dropped connection) marks the session broken.
func (ss *Session) transact(ctx context.Context, to string, body []byte) error {
	err := func() error {
		if err := ss.c.Mail(ss.s.from.Address); err != nil {
			return err
		}
		if err := ss.c.Rcpt(to); err != nil {
			return err
		}
		w, err := ss.c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		return w.Close()
	}()
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*textproto.Error](err); ok && ctx.Err() == nil {
		if rerr := ss.c.Reset(); rerr != nil {
			ss.broken = true
		}
	} else {
		ss.broken = true
	}
	return ctxErr(ctx, err)
}

// Broken reports whether the connection failed: the session sends no
// more, and the caller opens a new one.
func (ss *Session) Broken() bool { return ss.broken }

// Close says QUIT and closes the connection.
func (ss *Session) Close() error {
	if ss.broken {
		return ss.conn.Close()
	}
	ss.conn.SetDeadline(time.Now().Add(5 * time.Second))
	err := ss.c.Quit()
	ss.conn.Close()
	return err
}

// abandon closes the connection without a goodbye.
func (ss *Session) abandon() { ss.conn.Close() }

// Permanent reports whether err is the mail server refusing for good (a
// 5xx reply, such as an unknown mailbox): sending the same message again
// would fail the same way. Timeouts, dropped connections and 4xx replies
// are temporary.
func Permanent(err error) bool {
	te, ok := errors.AsType[*textproto.Error](err)
	return ok && te.Code >= 500 && te.Code < 600
}
