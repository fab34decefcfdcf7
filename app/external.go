package app

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/rediskv"
	"github.com/tenantmcp/tenantmcp/store/s3blob"
)

func (a *App) openS3(ctx context.Context) (store.Backend, error) {
	s := a.Config.Storage
	b, err := s3blob.Open(ctx, s3blob.Config{
		Bucket: s.S3Bucket, Endpoint: s.S3Endpoint, Region: s.S3Region, PathStyle: s.S3PathStyle,
		AccessKey: a.opts.S3AccessKey, SecretKey: a.opts.S3SecretKey, Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("storage.s3_bucket %q: %w", s.S3Bucket, err)
	}
	a.onClose(b.Close)
	return b, nil
}

func (a *App) openKV(ctx context.Context) (store.Backend, error) {
	kv, err := rediskv.Open(a.Config.Storage.RedisURL, &rediskv.Options{Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("storage.redis_url: %w", err)
	}
	a.onClose(kv.Close)
	return kv, nil
}

func (a *App) redisLimiter() (ratelimit.Limiter, func(), error) {
	cfg := a.Config.RateLimit
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("ratelimit.redis_url: %w", err)
	}
	opts.DialTimeout = 2 * time.Second
	opts.DialerRetries = 1
	opts.ReadTimeout = time.Second
	opts.WriteTimeout = time.Second
	client := redis.NewClient(opts)
	policy := ratelimit.FailOpen
	if cfg.OnRedisError == "closed" {
		policy = ratelimit.FailClosed
	}
	lim := ratelimit.NewFailover(ratelimit.NewRedis(client, nil), policy, &ratelimit.FailoverOptions{
		Logger:  a.log,
		OnError: func(err error) { a.limiterErrors(err) },
	})
	return lim, func() { client.Close() }, nil
}
