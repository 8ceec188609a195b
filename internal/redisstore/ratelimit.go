package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/admission"
)

// RateLimiter is admission.RateLimiter's token buckets shared by every
// replica: a client gets the same allowance however the load balancer
// spreads its requests. A bucket is a hash at <prefix>rate:<name>:<key>
// that Redis drops once it would have refilled, since a full bucket is
// the same as none; idle clients cost nothing.
type RateLimiter struct {
	c    *Client
	name string
	rate admission.Rate
	now  func() time.Time
}

// allowScript takes a token, refilling first; times are Unix microseconds,
// which Lua's doubles hold exactly.
var allowScript = redis.NewScript(`
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1e6 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens, last = tonumber(v[1]), tonumber(v[2])
if tokens == nil then
  tokens, last = burst, now
elseif now > last then
  tokens = math.min(burst, tokens + (now - last) / 1e6 * rate)
  last = now
end
local ok, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
else
  wait = math.ceil((1 - tokens) / rate * 1e6)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'last', string.format('%.17g', last))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1e3)))
return {ok, wait}
`)

// NewRateLimiter returns the shared limiter name (say "join" or "api"),
// whose buckets are apart from other limiters'. now is the clock; nil
// means Redis's own, so replicas with skewed clocks still agree.
func NewRateLimiter(c *Client, name string, r admission.Rate, now func() time.Time) *RateLimiter {
	r.Burst = max(r.Burst, 1)
	return &RateLimiter{c: c, name: name, rate: r, now: now}
}

// Allow takes a token from key's bucket. When there is none it returns
// false and how long until there will be one. It returns an error when
// Redis does not answer; whether to let the request through then is the
// caller's choice.
func (rl *RateLimiter) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	if rl.rate.PerSecond <= 0 {
		return true, 0, nil
	}
	now := ""
	if rl.now != nil {
		now = fmt.Sprint(rl.now().UnixMicro())
	}
	res, err := allowScript.Run(ctx, rl.c.rdb, []string{rl.c.prefix + "rate:" + rl.name + ":" + key},
		rl.rate.PerSecond, rl.rate.Burst, now).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", rl.name, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("rate limit %s: reply %v", rl.name, res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}
