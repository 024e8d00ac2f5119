package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/registry-relay/registry-relay/internal/cache"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/metrics"
	"github.com/registry-relay/registry-relay/internal/relay"
)

// newCache opens the pull-through cache: on disk (RELAY_CACHE_DIR), in a
// shared bucket (RELAY_CACHE_S3_*), or the disk in front of the bucket.
func newCache(cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*relay.Cache, error) {
	if cfg.CacheDir == "" && cfg.CacheS3Endpoint == "" {
		return nil, nil
	}
	var disk *cache.Disk
	if cfg.CacheDir != "" {
		var err error
		if disk, err = cache.OpenDisk(cfg.CacheDir, cfg.CacheMaxBytes, m.Evicted); err != nil {
			return nil, fmt.Errorf("RELAY_CACHE_DIR=%s: %w", cfg.CacheDir, err)
		}
		m.SetCacheSize(disk.Size)
	}
	var store cache.Store = disk
	if cfg.CacheS3Endpoint != "" {
		shared, err := newS3(cfg, log)
		if err != nil {
			return nil, err
		}
		store = shared
		if disk != nil {
			store = &cache.Tiered{Local: disk, Shared: shared}
		}
	}
	tags, authz := cache.NewTags(), cache.NewAuthz(cfg.CacheAuthTTL)
	tags.Now, authz.Now = cfg.Clock, cfg.Clock
	fills := cache.NewFills()
	episode := &faultEpisode{log: log, every: time.Minute}
	fills.PublishFailed = func(digest string, err error) {
		m.PublishFailed()
		episode.report(digest, err)
	}
	return &relay.Cache{
		Store: store, Fills: fills, Tags: tags, Authz: authz,
		TagTTL: cfg.CacheTagTTL, StaleMax: cfg.CacheStaleMax, FillTimeout: fillTimeout,
	}, nil
}

// newS3 connects the shared cache. A bucket that does not exist stops the
// start, as a typo would; a store that cannot be reached only warns, since
// the cache steps aside while it is down.
func newS3(cfg *config.Config, log *slog.Logger) (*cache.S3, error) {
	u, _ := url.Parse(cfg.CacheS3Endpoint) // validated by config
	lookup := minio.BucketLookupAuto
	if cfg.CacheS3PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds: credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
		}),
		Secure: u.Scheme == "https", Region: cfg.CacheS3Region, BucketLookup: lookup,
		// A store that is down must cost a request little: fail fast
		// and let the cache step aside, rather than retry for minutes.
		// The upstream transport's bounds; the store is the operator's
		// endpoint, so no request to it is marked for the hop guard.
		MaxRetries: 2, Transport: NewTransport(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("RELAY_CACHE_S3_ENDPOINT=%s: %w", cfg.CacheS3Endpoint, err)
	}
	// Fills spool next to the disk cache when there is one (the one
	// writable path of a hardened pod), else in $TMPDIR.
	spoolParent := ""
	if cfg.CacheDir != "" {
		spoolParent = filepath.Join(cfg.CacheDir, "tmp")
	}
	spool, err := os.MkdirTemp(spoolParent, "s3-spool-")
	if err != nil {
		return nil, fmt.Errorf("a spool directory for RELAY_CACHE_S3_*: %w", err)
	}
	store := cache.NewS3(client, cfg.CacheS3Bucket, cfg.CacheS3Prefix, spool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.CheckBucket(ctx); err != nil {
		if errors.Is(err, cache.ErrNoBucket) {
			return nil, fmt.Errorf("RELAY_CACHE_S3_BUCKET=%s: %w", cfg.CacheS3Bucket, err)
		}
		log.Warn("the shared cache cannot be reached; it steps aside until it can", "endpoint", cfg.CacheS3Endpoint, "err", err)
	}
	return store, nil
}

// faultEpisode logs a cache fault once per episode (at most once per
// every), with how many went unlogged since: a store that is down fails
// every fill, and one line a minute says so as well as thousands would.
// The metric counts each one.
type faultEpisode struct {
	log    *slog.Logger
	every  time.Duration
	mu     sync.Mutex
	last   time.Time
	silent int
}

func (e *faultEpisode) report(digest string, err error) {
	e.mu.Lock()
	now := time.Now()
	if now.Sub(e.last) < e.every {
		e.silent++
		e.mu.Unlock()
		return
	}
	silent := e.silent
	e.last, e.silent = now, 0
	e.mu.Unlock()
	e.log.Warn("cache: verified content could not be stored; its clients were served all the same (the cache steps aside)",
		"digest", digest, "err", err, "unlogged_since_last", silent)
}

// fillTimeout bounds one upstream transfer into the cache: generous, as a
// multi-GB layer over a slow link is one transfer.
const fillTimeout = 2 * time.Hour
