package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure NewRedis. A nil *RedisOptions means all defaults.
type RedisOptions struct {
	// Prefix is prepended to every key. Empty means "tenantmcp:rl:".
	Prefix string
	// Now is the clock. Nil means the Redis server's clock (TIME, read
	// inside the script), so every replica shares one clock and clock skew
	// between replicas cannot loosen a budget. Set it only in tests: keys
	// still expire on the server's clock.
	Now func() time.Time
}

// DefaultRedisPrefix is the key prefix used when RedisOptions.Prefix is
// empty.
const DefaultRedisPrefix = "tenantmcp:rl:"

// Redis is a GCRA limiter whose state lives in Redis, so every server
// replica draws on one budget per key. Each check is one atomic Lua script
// (EVALSHA, falling back to EVAL when the server's script cache is empty)
// reading and writing one key, so it also works on Redis Cluster. A key
// expires as soon as its budget would be full again: idle tenants cost
// nothing.
//
// Failures are returned wrapped in ErrUnavailable; wrap the limiter in
// NewFailover to choose between failing open and failing closed.
type Redis struct {
	client redis.UniversalClient
	prefix string
	clock  func() time.Time
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter storing state through client. The caller owns
// client and closes it. o may be nil.
//
// A rate-limit check sits on every request, so give client short timeouts
// (DialTimeout, ReadTimeout, WriteTimeout of a few hundred milliseconds) and
// DialerRetries: 1: by default go-redis retries a failed dial five times,
// 100ms apart, which makes each probe of a dead Redis cost half a second.
func NewRedis(client redis.UniversalClient, o *RedisOptions) *Redis {
	if o == nil {
		o = &RedisOptions{}
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{client: client, prefix: prefix, clock: o.Now}
}

// maxTauMicros caps the tolerance so every value in the script stays an
// exact integer in Lua's doubles (< 2^53 µs with the Unix time added).
const maxTauMicros = int64(10 * 365 * 24 * time.Hour / time.Microsecond)

// gcraScript is the GCRA step of gcra() in microseconds.
//
//	KEYS[1] state key (value: TAT in Unix microseconds)
//	ARGV[1] emission interval T (µs), ARGV[2] tolerance tau = Burst×T (µs)
//	ARGV[3] now (Unix µs), or "" to use the server's TIME
//
// Returns {allowed (0|1), remaining, retry_after_us, reset_after_us}.
// Numbers are written with %.0f because Lua's tostring keeps only 14
// significant digits.
var gcraScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local tat = tonumber(redis.call("GET", KEYS[1]) or now) or now
if tat < now then tat = now end
local nxt = tat + interval
local allow_at = nxt - tau
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
local reset = nxt - now
redis.call("SET", KEYS[1], string.format("%.0f", nxt), "PX", string.format("%.0f", math.ceil(reset / 1000)))
return {1, math.floor((now + tau - nxt) / interval), 0, reset}
`)

// Allow implements Limiter with one round trip to Redis.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	if key == "" {
		return Decision{}, ErrInvalidKey
	}
	l = l.Effective()
	if l.Unlimited() {
		return unlimitedDecision(), nil
	}
	p := paramsFor(l, int64(time.Minute/time.Microsecond), maxTauMicros)
	now := ""
	if r.clock != nil {
		now = strconv.FormatInt(r.clock().UnixMicro(), 10)
	}
	res, err := gcraScript.Run(ctx, r.client, []string{r.prefix + key}, p.interval, p.tau, now).Int64Slice()
	if err != nil {
		if ctx.Err() != nil {
			return Decision{}, fmt.Errorf("ratelimit: redis check abandoned: %w", ctx.Err())
		}
		return Decision{}, fmt.Errorf("%w: redis: %w", ErrUnavailable, err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("%w: redis script returned %d values, want 4", ErrUnavailable, len(res))
	}
	return gcraResult{
		allowed:   res[0] == 1,
		remaining: res[1],
		retry:     res[2],
		reset:     res[3],
	}.decision(l, time.Microsecond), nil
}
