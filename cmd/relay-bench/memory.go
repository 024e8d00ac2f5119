package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// memoryResult is the relay's memory while many blob streams are open.
type memoryResult struct {
	streams       int   // streams open at once at the fullest
	baselineKiB   int64 // VmRSS before the streams
	peakSampleKiB int64 // highest VmRSS sampled during the streams
	hwmKiB        int64 // VmHWM: the kernel's own peak, since the process started
	failed        int   // streams that ended in an error before release
}

// Slow reading: each stream takes streamChunk every streamTick, 160 KB/s,
// so a 64 MiB blob would take minutes and every stream stays open (and
// the relay holds its buffers) for the whole hold period.
const (
	streamChunk = 16 << 10
	streamTick  = 100 * time.Millisecond
)

// relayMemory opens streams slow GETs of b through t (a relay started for
// this alone, so VmHWM covers nothing else), waits until all are open,
// keeps them open for hold while sampling VmRSS, then cuts them.
func relayMemory(ctx context.Context, t *target, b blob, streams int, hold time.Duration) (memoryResult, error) {
	ctx, cancel := context.WithTimeout(ctx, hold+60*time.Second)
	defer cancel()
	c := newClient(streams)
	defer c.CloseIdleConnections()
	pid := t.proc.pid()
	var res memoryResult
	var err error
	if res.baselineKiB, err = procStatusKiB(pid, "VmRSS"); err != nil {
		return res, err
	}
	var open, failed atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			err := slowStream(ctx, c, t, b, &open, release)
			if err != nil && !isClosed(release) {
				failed.Add(1)
			}
		})
	}
	res.peakSampleKiB, res.streams = sampleRSS(ctx, pid, &open, streams, hold)
	close(release)
	cancel()
	wg.Wait()
	res.failed = int(failed.Load())
	if res.hwmKiB, err = procStatusKiB(pid, "VmHWM"); err != nil {
		return res, err
	}
	if res.streams < streams {
		return res, fmt.Errorf("only %d of %d streams were open at once (%d failed)", res.streams, streams, res.failed)
	}
	return res, nil
}

// sampleRSS samples VmRSS every 50 ms until all streams are open (at most
// 30 s) and then for hold more; it returns the highest sample and the
// most streams seen open at once.
func sampleRSS(ctx context.Context, pid int, open *atomic.Int64, want int, hold time.Duration) (int64, int) {
	var peak int64
	most := 0
	opened := time.Time{}
	limit := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		if rss, err := procStatusKiB(pid, "VmRSS"); err == nil && rss > peak {
			peak = rss
		}
		n := int(open.Load())
		most = max(most, n)
		if opened.IsZero() && (n >= want || time.Now().After(limit)) {
			opened = time.Now()
		}
		if !opened.IsZero() && time.Since(opened) >= hold {
			break
		}
		<-tick.C
	}
	return peak, most
}

// slowStream reads the blob slowly until release; open counts the streams
// that have received their first bytes and not yet ended.
func slowStream(ctx context.Context, c *http.Client, t *target, b blob, open *atomic.Int64, release <-chan struct{}) error {
	req, err := newRequest(ctx, http.MethodGet, t.blobURL(bigRepo, b.digest), t.host)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close() // unread: the connection is closed, the relay sees the client go
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	buf := make([]byte, streamChunk)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return err
	}
	open.Add(1)
	defer open.Add(-1)
	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	for {
		select {
		case <-release:
			return nil
		case <-tick.C:
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				return err
			}
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
