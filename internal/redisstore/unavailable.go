package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// unavailableError marks a failure to reach Redis (refused, timed out,
// pool exhausted), as opposed to an answer Redis gave. The HTTP layer
// answers such failures 503 with Retry-After: the request may succeed in
// a moment and was not the client's fault.
type unavailableError struct{ err error }

func (e unavailableError) Error() string     { return "redis unavailable: " + e.err.Error() }
func (e unavailableError) Unwrap() error     { return e.err }
func (e unavailableError) Unavailable() bool { return true }

// unavailableHook marks every command error that is not Redis's own
// answer (redis.Nil, an error reply) as unavailable, and reports every
// outcome to the outage log.
type unavailableHook struct{ outage *telemetry.Outage }

func (unavailableHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h unavailableHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if reachFailure(err) {
			h.outage.Failed(err)
			err = unavailableError{err}
			cmd.SetErr(err)
		} else {
			h.outage.Succeeded()
		}
		return err
	}
}

func (h unavailableHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		var first error // one pipeline is one call to the outage log
		if reachFailure(err) {
			first = err
			err = unavailableError{err}
		}
		for _, c := range cmds {
			if reachFailure(c.Err()) {
				if first == nil {
					first = c.Err()
				}
				c.SetErr(unavailableError{c.Err()})
			}
		}
		if first != nil {
			h.outage.Failed(first)
		} else {
			h.outage.Succeeded()
		}
		return err
	}
}

// reachFailure tells a failure to talk to Redis from Redis's answer.
func reachFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return false // Redis answered (an error reply, a script error)
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
