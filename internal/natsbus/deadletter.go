package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is a message a consumer gave up on, as parked in the
// dead-letter stream.
type DeadLetter struct {
	// Sequence is the message's position in the dead-letter stream.
	Sequence uint64
	// Consumer is the consumer that gave up.
	Consumer string
	// Subject and ID are the original message's subject and message id.
	Subject, ID string
	// Data is the original payload.
	Data []byte
	// Error is the handler's last error.
	Error string
	// Attempts is how many deliveries the message had.
	Attempts int
	// Permanent says whether the handler declared the message poison
	// (Permanent) rather than running out of attempts.
	Permanent bool
	// At is when the message was parked.
	At time.Time
}

// DeadLetters returns up to limit messages parked for consumer, oldest
// first, starting at dead-letter stream sequence from (use 1 for the
// start). It is for operators and tests; nothing in the buy path reads the
// dead-letter stream.
func (b *Bus) DeadLetters(ctx context.Context, consumer string, from uint64, limit int) ([]DeadLetter, error) {
	s, err := b.js.Stream(ctx, b.cfg.DeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", consumer, err)
	}
	from = max(from, 1)
	var out []DeadLetter
	for len(out) < limit {
		raw, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(deadLetterPrefix+consumer))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dead letters of %s from %d: %w", consumer, from, err)
		}
		attempts, _ := strconv.Atoi(raw.Header.Get(HeaderAttempts))
		permanent, _ := strconv.ParseBool(raw.Header.Get(HeaderPermanent))
		out = append(out, DeadLetter{
			Sequence:  raw.Sequence,
			Consumer:  raw.Header.Get(HeaderConsumer),
			Subject:   raw.Header.Get(HeaderSubject),
			ID:        raw.Header.Get(HeaderMsgID),
			Data:      raw.Data,
			Error:     raw.Header.Get(HeaderError),
			Attempts:  attempts,
			Permanent: permanent,
			At:        raw.Time,
		})
		from = raw.Sequence + 1
	}
	return out, nil
}
