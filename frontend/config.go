package frontend

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/orrery/orrery/limits"
)

// Config is the query frontend's configuration.
type Config struct {
	// SplitInterval splits range queries into parts aligned to multiples
	// of it (and to the query's step); 0 disables splitting.
	SplitInterval time.Duration `yaml:"split_queries_by_interval"`
	// MaxParallelism bounds the downstream requests one query has in
	// flight at once (split parts times shards).
	MaxParallelism int `yaml:"max_query_parallelism"`
	// QueryShards is how many partial queries a shardable aggregation
	// runs as; 1 disables sharding.
	QueryShards int `yaml:"query_shards"`
	// CacheResults turns the results cache of split parts on.
	CacheResults bool `yaml:"cache_results"`
	// MaxCacheFreshness keeps results newer than now minus it out of the
	// cache: recent samples may still arrive late.
	MaxCacheFreshness time.Duration `yaml:"max_cache_freshness"`
	// ResultsCache says where cached results live.
	ResultsCache ResultsCacheConfig `yaml:"results_cache"`
}

// ResultsCacheConfig chooses and sizes the results cache: Memcached when
// MemcachedAddresses is set, else in memory.
type ResultsCacheConfig struct {
	// MaxSizeBytes bounds the in-memory cache.
	MaxSizeBytes int64 `yaml:"max_size_bytes"`
	// MemcachedAddresses lists host:port of Memcached servers.
	MemcachedAddresses []string `yaml:"memcached_addresses"`
	// MemcachedTimeout bounds one Memcached call; a slow cache is a miss.
	MemcachedTimeout time.Duration `yaml:"memcached_timeout"`
	// MemcachedMaxItemSize is the largest value stored; larger ones are
	// not cached (Memcached's own default item limit is 1 MiB).
	MemcachedMaxItemSize int `yaml:"memcached_max_item_size"`
}

// RegisterFlags registers the frontend's flags.
//
// Defaults are for this project's reference machine, 2 cores: 2 shards
// keep both cores evaluating one aggregation (each shard is a separate
// engine evaluation downstream, and the engine evaluates one query on one
// core; more shards add per-query overhead without a core to run on), and
// at most 4 requests of one query in flight is twice the cores, enough
// to overlap one part's network wait with another's evaluation without
// letting one query occupy every querier slot.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.SplitInterval, "frontend.split-interval", 24*time.Hour, "Split range queries into parts of this interval, aligned to it and to the step; 0 disables splitting.")
	fs.IntVar(&c.MaxParallelism, "frontend.max-parallelism", 4, "Most downstream requests (split parts and shards) one query has in flight at once.")
	fs.IntVar(&c.QueryShards, "frontend.query-shards", 2, "Partial queries a shardable aggregation is split into by series hash; 1 disables sharding.")
	fs.BoolVar(&c.CacheResults, "frontend.cache-results", true, "Cache the results of split range query parts (in memory unless -frontend.results-cache.memcached-addresses is set).")
	fs.DurationVar(&c.MaxCacheFreshness, "frontend.max-cache-freshness", 10*time.Minute, "Never cache results newer than now minus this: late samples may still change them.")
	fs.Int64Var(&c.ResultsCache.MaxSizeBytes, "frontend.results-cache.max-size-bytes", 256<<20, "Size bound of the in-memory results cache, in bytes.")
	fs.Func("frontend.results-cache.memcached-addresses", "Comma-separated host:port of Memcached servers for the results cache; empty keeps it in memory.", func(s string) error {
		c.ResultsCache.MemcachedAddresses = nil
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.ResultsCache.MemcachedAddresses = append(c.ResultsCache.MemcachedAddresses, a)
			}
		}
		return nil
	})
	fs.DurationVar(&c.ResultsCache.MemcachedTimeout, "frontend.results-cache.memcached-timeout", 200*time.Millisecond, "Timeout of one Memcached call; a call that times out is a cache miss.")
	fs.IntVar(&c.ResultsCache.MemcachedMaxItemSize, "frontend.results-cache.memcached-max-item-size", 1<<20, "Largest cached value sent to Memcached, in bytes; larger results are not cached.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.SplitInterval < 0:
		return errors.New("frontend.split-interval must not be negative")
	case c.SplitInterval > 0 && c.SplitInterval < time.Millisecond:
		return errors.New("frontend.split-interval must be at least 1ms")
	case c.MaxParallelism < 1:
		return errors.New("frontend.max-parallelism must be at least 1")
	case c.QueryShards < 1:
		return errors.New("frontend.query-shards must be at least 1")
	case c.MaxCacheFreshness < 0:
		return errors.New("frontend.max-cache-freshness must not be negative")
	case c.CacheResults && len(c.ResultsCache.MemcachedAddresses) == 0 && c.ResultsCache.MaxSizeBytes <= 0:
		return errors.New("frontend.results-cache.max-size-bytes must be positive for the in-memory results cache")
	case c.CacheResults && len(c.ResultsCache.MemcachedAddresses) > 0 && (c.ResultsCache.MemcachedTimeout <= 0 || c.ResultsCache.MemcachedMaxItemSize <= 0):
		return fmt.Errorf("frontend.results-cache.memcached-timeout and -max-item-size must be positive")
	}
	return nil
}

// Limits gives a tenant's limits; the frontend asks on every query, so a
// reloaded overrides file applies from the next one. *limits.Overrides
// satisfies it.
type Limits interface {
	For(tenant string) *limits.Limits
}
