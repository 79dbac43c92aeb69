package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter whose state lives in Redis, so every instance behind a
// load balancer counts against the same limits. It runs the same GCRA as
// Memory, inside Redis (redis_rate), atomically per key.
type Redis struct {
	l   *redis_rate.Limiter
	rdb *redis.Client
}

// NewRedis returns a Limiter on the Redis at url (redis://host:port/db).
func NewRedis(ctx context.Context, url string) (*Redis, func() error, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("connect to redis: %w", err)
	}
	return &Redis{l: redis_rate.NewLimiter(rdb), rdb: rdb}, rdb.Close, nil
}

func (l Limit) redis() redis_rate.Limit {
	return redis_rate.Limit{Rate: l.Count, Burst: l.Count, Period: l.Period}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if l.Unlimited() {
		return Result{Allowed: true, Remaining: -1}, nil
	}
	res, err := r.l.Allow(ctx, key, l.redis())
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, RetryAfter: max(res.RetryAfter, 0)}, nil
}

// Peek implements Limiter: a zero-cost GCRA step, which reports how many
// events are left without using one.
func (r *Redis) Peek(ctx context.Context, key string, l Limit) (Result, error) {
	if l.Unlimited() {
		return Result{Allowed: true, Remaining: -1}, nil
	}
	res, err := r.l.AllowN(ctx, key, l.redis(), 0)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if res.Remaining < 1 {
		// The next slot frees within one emission interval.
		return Result{Allowed: false, RetryAfter: l.Period / time.Duration(l.Count)}, nil
	}
	return Result{Allowed: true, Remaining: res.Remaining}, nil
}

// redisKeyPrefix is the prefix redis_rate stores its keys under; Refund
// works on the same keys.
const redisKeyPrefix = "rate:"

// refundScript moves a key's theoretical arrival time (redis_rate's GCRA
// state: seconds since 2017-01-01, as a float) back by one emission
// interval, atomically, and deletes the key once nothing is left to
// decay. Redis's own clock is the one redis_rate uses too.
var refundScript = redis.NewScript(`
redis.replicate_commands()
local tat = redis.call("GET", KEYS[1])
if not tat then
  return 0
end
local now = redis.call("TIME")
now = (now[1] - 1483228800) + (now[2] / 1000000)
tat = tonumber(tat) - tonumber(ARGV[1])
if tat <= now then
  redis.call("DEL", KEYS[1])
  return 0
end
redis.call("SET", KEYS[1], tat, "EX", math.ceil(tat - now))
return 1
`)

// Refund implements Limiter.
func (r *Redis) Refund(ctx context.Context, key string, l Limit) error {
	if l.Unlimited() {
		return nil
	}
	interval := l.Period.Seconds() / float64(l.Count)
	if err := refundScript.Run(ctx, r.rdb, []string{redisKeyPrefix + key}, interval).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("rate limit refund %s: %w", key, err)
	}
	return nil
}
