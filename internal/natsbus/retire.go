package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Retire works off the backlog of a durable consumer that the
// application no longer runs, if the server still has it, and then
// deletes it from the server. c describes the retired consumer (its name
// and subject) and what its messages still need (Handler). Retire returns
// once the consumer is gone, or when ctx ends; check is how often it asks
// the server whether the backlog is done.
//
// A consumer left on the server after its last process stopped using it
// would keep every new event pending for ever; deleting it at once would
// drop the events it still owed work for. Retire never creates the
// consumer: if another process deletes it meanwhile, Retire is done.
//
// Each event reaching the stream still counts on the retired consumer
// until it is deleted, so the application's current consumers must do
// that consumer's work too: Retire is for work that moved, not work that
// stopped.
func (b *Bus) Retire(ctx context.Context, c Consumer, check time.Duration) error {
	c.setDefaults()
	if err := c.validate(); err != nil {
		return fmt.Errorf("retire: %w", err)
	}
	if check <= 0 {
		return fmt.Errorf("retire %s: check interval %v must be positive", c.Name, check)
	}
	for {
		jc, err := b.js.Consumer(ctx, b.cfg.Stream, c.Name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// The bus is down or electing a leader: ask again later.
			b.log.Warn("retired consumer: lookup failed; retrying", "consumer", c.Name, "err", err)
			if !sleepCtx(ctx, check) {
				return ctx.Err()
			}
			continue
		}
		if drained(jc.CachedInfo()) {
			err := b.js.DeleteConsumer(ctx, b.cfg.Stream, c.Name)
			if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.log.Info("retired consumer deleted: its backlog is done", "consumer", c.Name)
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.log.Warn("retired consumer: delete failed; retrying", "consumer", c.Name, "err", err)
			if !sleepCtx(ctx, check) {
				return ctx.Err()
			}
			continue
		}
		b.log.Info("retired consumer has a backlog: working it off", "consumer", c.Name,
			"pending", jc.CachedInfo().NumPending, "unacknowledged", jc.CachedInfo().NumAckPending)
		stop, err := b.start(ctx, c, jc, true)
		if err != nil {
			return fmt.Errorf("retire %s: %w", c.Name, err)
		}
		for {
			if !sleepCtx(ctx, check) {
				stop()
				return ctx.Err()
			}
			info, err := jc.Info(ctx)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				stop()
				return nil
			}
			if err == nil && drained(info) {
				break
			}
		}
		// Stopped, it holds no message; the lookup above checks the
		// backlog once more before deleting.
		stop()
	}
}

// drained reports whether a consumer has nothing left to deliver and
// nothing delivered that is not acknowledged (including messages waiting
// for a delayed redelivery).
func drained(info *jetstream.ConsumerInfo) bool {
	return info != nil && info.NumPending == 0 && info.NumAckPending == 0
}
