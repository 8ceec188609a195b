package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/notify"
)

const subscriptionColumns = `id, drop_id, email, state, unsubscribe_token, created_at, confirm_sent_at, coalesce(confirmed_at, 0)`

func scanSubscription(row interface{ Scan(...any) error }) (notify.Subscription, error) {
	var sub notify.Subscription
	var created, sent, confirmed int64
	if err := row.Scan(&sub.ID, &sub.DropID, &sub.Email, &sub.State, &sub.UnsubscribeToken, &created, &sent, &confirmed); err != nil {
		return notify.Subscription{}, err
	}
	sub.CreatedAt, sub.ConfirmSentAt = fromNanos(created), fromNanos(sent)
	if confirmed != 0 {
		sub.ConfirmedAt = fromNanos(confirmed)
	}
	return sub, nil
}

// SaveSubscription records a "notify me" request (see notify.Store).
func (s *Store) SaveSubscription(ctx context.Context, dropID, email string, confirmHash []byte, unsubscribeToken string) (notify.Subscription, error) {
	var sub notify.Subscription
	now := nanos(s.now())
	err := s.write(ctx, func(tx wtx) error {
		if err := requireDrop(tx, dropID); err != nil {
			return err
		}
		// A confirmed subscription keeps its state and link; a pending or
		// unsubscribed one becomes pending with the new link.
		if _, err := tx.Exec(`INSERT INTO notify_subscriptions (drop_id, email, state, confirm_hash, confirm_sent_at, unsubscribe_token, created_at)
			VALUES (?, ?, 'pending', ?, ?, ?, ?)
			ON CONFLICT (drop_id, email) DO UPDATE SET state = 'pending', confirm_hash = excluded.confirm_hash,
				confirm_sent_at = excluded.confirm_sent_at, unsubscribed_at = NULL
			WHERE notify_subscriptions.state <> 'confirmed'`,
			dropID, email, confirmHash, now, unsubscribeToken, now); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscription(tx.QueryRow(`SELECT `+subscriptionColumns+` FROM notify_subscriptions WHERE drop_id = ? AND email = ?`, dropID, email))
		return err
	})
	if err != nil {
		return notify.Subscription{}, fmt.Errorf("save subscription: %w", err)
	}
	return sub, nil
}

// ConfirmSubscription confirms the subscription whose link hashes to
// confirmHash (see notify.Store).
func (s *Store) ConfirmSubscription(ctx context.Context, confirmHash []byte, issuedAfter time.Time) (notify.Subscription, error) {
	var sub notify.Subscription
	now := nanos(s.now())
	err := s.write(ctx, func(tx wtx) error {
		var err error
		sub, err = scanSubscription(tx.QueryRow(`SELECT `+subscriptionColumns+` FROM notify_subscriptions
			WHERE confirm_hash = ? AND confirm_sent_at > ? AND state <> 'unsubscribed'`, confirmHash, nanos(issuedAfter)))
		if errors.Is(err, sql.ErrNoRows) {
			return notify.ErrNotFound
		}
		if err != nil || sub.State == notify.StateConfirmed {
			return err
		}
		if _, err := tx.Exec(`UPDATE notify_subscriptions SET state = 'confirmed', confirmed_at = ? WHERE id = ?`, now, sub.ID); err != nil {
			return err
		}
		sub.State, sub.ConfirmedAt = notify.StateConfirmed, fromNanos(now)
		return nil
	})
	if err != nil {
		return notify.Subscription{}, fmt.Errorf("confirm subscription: %w", err)
	}
	return sub, nil
}

// Unsubscribe ends the subscription holding token (see notify.Store).
func (s *Store) Unsubscribe(ctx context.Context, token string) (notify.Subscription, error) {
	var sub notify.Subscription
	now := nanos(s.now())
	err := s.write(ctx, func(tx wtx) error {
		if _, err := tx.Exec(`UPDATE notify_subscriptions SET state = 'unsubscribed', unsubscribed_at = ?, confirm_hash = NULL
			WHERE unsubscribe_token = ? AND state <> 'unsubscribed'`, now, token); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscription(tx.QueryRow(`SELECT `+subscriptionColumns+` FROM notify_subscriptions WHERE unsubscribe_token = ?`, token))
		if errors.Is(err, sql.ErrNoRows) {
			return notify.ErrNotFound
		}
		return err
	})
	if err != nil {
		return notify.Subscription{}, fmt.Errorf("unsubscribe: %w", err)
	}
	return sub, nil
}

// Recipients lists confirmed subscribers (see notify.Store). SQLite has no
// replicas: it reads the reader pool, which sees every commit.
func (s *Store) Recipients(ctx context.Context, q notify.RecipientQuery) ([]notify.Recipient, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, email, unsubscribe_token FROM notify_subscriptions
		WHERE drop_id = ? AND id >= ? AND id < ? AND state = 'confirmed' AND confirmed_at <= ? ORDER BY id`,
		q.DropID, q.FromID, q.ToID, nanos(q.ConfirmedBy))
	if err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	defer rows.Close()
	var out []notify.Recipient
	for rows.Next() {
		var r notify.Recipient
		if err := rows.Scan(&r.SubscriptionID, &r.Email, &r.UnsubscribeToken); err != nil {
			return nil, fmt.Errorf("recipients: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ImportSubscribers adds confirmed subscriptions (see notify.Store), in
// one transaction.
func (s *Store) ImportSubscribers(ctx context.Context, dropID string, subs []notify.Import) (int, error) {
	added := 0
	now := nanos(s.now())
	err := s.write(ctx, func(tx wtx) error {
		added = 0
		if err := requireDrop(tx, dropID); err != nil {
			return err
		}
		for _, sub := range subs {
			res, err := tx.Exec(`INSERT INTO notify_subscriptions (drop_id, email, state, confirm_sent_at, unsubscribe_token, created_at, confirmed_at)
				VALUES (?, ?, 'confirmed', ?, ?, ?, ?) ON CONFLICT (drop_id, email) DO NOTHING`,
				dropID, sub.Email, now, sub.UnsubscribeToken, now, now)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("import subscribers: %w", err)
	}
	return added, nil
}
