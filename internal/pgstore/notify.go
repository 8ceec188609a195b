package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/notify"
)

const subscriptionColumns = `id, drop_id, email, state, unsubscribe_token, created_at, confirm_sent_at, confirmed_at`

func scanSubscription(row pgx.Row) (notify.Subscription, error) {
	var sub notify.Subscription
	var confirmed *time.Time
	if err := row.Scan(&sub.ID, &sub.DropID, &sub.Email, &sub.State, &sub.UnsubscribeToken, &sub.CreatedAt, &sub.ConfirmSentAt, &confirmed); err != nil {
		return notify.Subscription{}, err
	}
	sub.CreatedAt, sub.ConfirmSentAt = sub.CreatedAt.UTC(), sub.ConfirmSentAt.UTC()
	if confirmed != nil {
		sub.ConfirmedAt = confirmed.UTC()
	}
	return sub, nil
}

// SaveSubscription records a "notify me" request (see notify.Store).
func (s *Store) SaveSubscription(ctx context.Context, dropID, email string, confirmHash []byte, unsubscribeToken string) (notify.Subscription, error) {
	if !storable(dropID) || !storable(email) {
		return notify.Subscription{}, fmt.Errorf("drop %q: %w", dropID, drop.ErrNotFound)
	}
	var sub notify.Subscription
	now := s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := requireDrop(ctx, tx, dropID); err != nil {
			return err
		}
		// A confirmed subscription keeps its state and link; a pending or
		// unsubscribed one becomes pending with the new link.
		if _, err := tx.Exec(ctx, `INSERT INTO notify_subscriptions (drop_id, email, state, confirm_hash, confirm_sent_at, unsubscribe_token, created_at)
			VALUES ($1, $2, 'pending', $3, $4, $5, $4)
			ON CONFLICT (drop_id, email) DO UPDATE SET state = 'pending', confirm_hash = excluded.confirm_hash,
				confirm_sent_at = excluded.confirm_sent_at, unsubscribed_at = NULL
			WHERE notify_subscriptions.state <> 'confirmed'`,
			dropID, email, confirmHash, now, unsubscribeToken); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscription(tx.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM notify_subscriptions WHERE drop_id = $1 AND email = $2`, dropID, email))
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
	now := s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		sub, err = scanSubscription(tx.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM notify_subscriptions
			WHERE confirm_hash = $1 AND confirm_sent_at > $2 AND state <> 'unsubscribed' FOR UPDATE`, confirmHash, issuedAfter))
		if errors.Is(err, pgx.ErrNoRows) {
			return notify.ErrNotFound
		}
		if err != nil || sub.State == notify.StateConfirmed {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE notify_subscriptions SET state = 'confirmed', confirmed_at = $1 WHERE id = $2`, now, sub.ID); err != nil {
			return err
		}
		sub.State, sub.ConfirmedAt = notify.StateConfirmed, now
		return nil
	})
	if err != nil {
		return notify.Subscription{}, fmt.Errorf("confirm subscription: %w", err)
	}
	return sub, nil
}

// Unsubscribe ends the subscription holding token (see notify.Store).
func (s *Store) Unsubscribe(ctx context.Context, token string) (notify.Subscription, error) {
	if !storable(token) {
		return notify.Subscription{}, notify.ErrNotFound
	}
	var sub notify.Subscription
	now := s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE notify_subscriptions SET state = 'unsubscribed', unsubscribed_at = $1, confirm_hash = NULL
			WHERE unsubscribe_token = $2 AND state <> 'unsubscribed'`, now, token); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscription(tx.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM notify_subscriptions WHERE unsubscribe_token = $1`, token))
		if errors.Is(err, pgx.ErrNoRows) {
			return notify.ErrNotFound
		}
		return err
	})
	if err != nil {
		return notify.Subscription{}, fmt.Errorf("unsubscribe: %w", err)
	}
	return sub, nil
}

// Recipients lists confirmed subscribers (see notify.Store) from a read
// replica that has replayed past q.ReadPosition, or else the primary: a
// mailing job's reads stay off the primary the API writes to, without
// missing a subscriber a lagging replica has not seen yet.
func (s *Store) Recipients(ctx context.Context, q notify.RecipientQuery) ([]notify.Recipient, error) {
	if q.ReadPosition != "" {
		lsn, err := ParseLSN(q.ReadPosition)
		if err != nil {
			return nil, fmt.Errorf("recipients: read position: %w", err)
		}
		ctx = WithMinLSN(ctx, lsn)
	}
	var out []notify.Recipient
	err := s.reading(ctx, func(db querier) error {
		out = nil
		rows, err := db.Query(ctx, `SELECT id, email, unsubscribe_token FROM notify_subscriptions
			WHERE drop_id = $1 AND id >= $2 AND id < $3 AND state = 'confirmed' AND confirmed_at <= $4 ORDER BY id`,
			q.DropID, q.FromID, q.ToID, q.ConfirmedBy)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r notify.Recipient
			if err := rows.Scan(&r.SubscriptionID, &r.Email, &r.UnsubscribeToken); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	return out, nil
}

// ImportSubscribers adds confirmed subscriptions (see notify.Store), in
// one statement.
func (s *Store) ImportSubscribers(ctx context.Context, dropID string, subs []notify.Import) (int, error) {
	if !storable(dropID) {
		return 0, fmt.Errorf("drop %q: %w", dropID, drop.ErrNotFound)
	}
	emails := make([]string, len(subs))
	tokens := make([]string, len(subs))
	for i, sub := range subs {
		if !storable(sub.Email) || !storable(sub.UnsubscribeToken) {
			return 0, fmt.Errorf("import subscribers: %w: email %d is not text", notify.ErrInvalid, i)
		}
		emails[i], tokens[i] = sub.Email, sub.UnsubscribeToken
	}
	added := 0
	now := s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := requireDrop(ctx, tx, dropID); err != nil {
			return err
		}
		// WITH ORDINALITY keeps the list's order in the IDs, so a job's
		// batches follow it.
		tag, err := tx.Exec(ctx, `INSERT INTO notify_subscriptions (drop_id, email, state, confirm_sent_at, unsubscribe_token, created_at, confirmed_at)
			SELECT $1, u.email, 'confirmed', $4, u.token, $4, $4
			FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(email, token, n) ORDER BY u.n
			ON CONFLICT (drop_id, email) DO NOTHING`, dropID, emails, tokens, now)
		if err != nil {
			return err
		}
		added = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("import subscribers: %w", err)
	}
	return added, nil
}
