package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// MemcachedCache is a Cache in Memcached servers, keys spread over them by
// the client's hash. Keys are hashed (Memcached keys are at most 250
// bytes without spaces), values over the item limit are not stored, and
// every failure is a miss or a dropped store, counted and logged once per
// kind: the cache is an optimisation, never a reason to fail a query.
type MemcachedCache struct {
	client      *memcache.Client
	maxItemSize int
	logger      *slog.Logger
	failures    *prometheus.CounterVec
}

// NewMemcachedCache returns a cache over the servers at addrs (host:port).
// It does not connect until used.
func NewMemcachedCache(addrs []string, timeout time.Duration, maxItemSize int, reg prometheus.Registerer, logger *slog.Logger) (*MemcachedCache, error) {
	ss := new(memcache.ServerList)
	if err := ss.SetServers(addrs...); err != nil {
		return nil, err
	}
	c := memcache.NewFromSelector(ss)
	c.Timeout = timeout
	// The parts and shards of concurrent queries fetch at once.
	c.MaxIdleConns = 16
	return &MemcachedCache{client: c, maxItemSize: maxItemSize, logger: logger,
		failures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_frontend_memcached_failures_total",
			Help: "Results cache calls to Memcached that failed, by operation; each is a miss or a dropped store.",
		}, []string{"operation"}),
	}, nil
}

// memcachedKey is key's name in Memcached.
func memcachedKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return "orrery-fe:" + hex.EncodeToString(h[:])
}

func (c *MemcachedCache) Fetch(ctx context.Context, keys []string) map[string][]byte {
	out := map[string][]byte{}
	if len(keys) == 0 || ctx.Err() != nil {
		return out
	}
	byHash := make(map[string]string, len(keys))
	hashed := make([]string, 0, len(keys))
	for _, k := range keys {
		h := memcachedKey(k)
		byHash[h] = k
		hashed = append(hashed, h)
	}
	items, err := c.client.GetMulti(hashed)
	if err != nil {
		c.failures.WithLabelValues("fetch").Inc()
		c.logger.Debug("results cache fetch failed", "err", err)
	}
	for h, it := range items {
		out[byHash[h]] = it.Value
	}
	return out
}

func (c *MemcachedCache) Store(ctx context.Context, values map[string][]byte, ttl time.Duration) {
	// Memcached takes expirations over 30 days as a Unix time.
	exp := int32(ttl / time.Second)
	if ttl > 30*24*time.Hour {
		exp = int32(time.Now().Add(ttl).Unix())
	}
	for k, v := range values {
		if ctx.Err() != nil {
			return
		}
		if len(v) > c.maxItemSize {
			continue
		}
		if err := c.client.Set(&memcache.Item{Key: memcachedKey(k), Value: v, Expiration: exp}); err != nil {
			c.failures.WithLabelValues("store").Inc()
			c.logger.Debug("results cache store failed", "err", err)
		}
	}
}
