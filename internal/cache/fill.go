package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ErrAbandoned ends a fill that every client stopped reading: nobody is
// charged for the transfer any more, so it does not go on.
var ErrAbandoned = errors.New("fill abandoned: no client reads it")

// Fills lets concurrent misses for one digest through one route share a
// single upstream fetch. The first request leads: it fetches and hands
// the body to Start. Every request, the leader's included, then reads the
// spool file as it grows, so bytes reach all clients as they arrive.
type Fills struct {
	// PublishFailed, when set, is told of content that verified but could
	// not be published (a store that is full, slow or down): its readers
	// still get the whole, verified body, since the cache is an
	// optimisation and its fault is never the client's.
	PublishFailed func(digest string, err error)

	mu     sync.Mutex
	active map[string]*Fill
}

// NewFills returns an empty set of fills.
func NewFills() *Fills { return &Fills{active: map[string]*Fill{}} }

// Fill is one in-progress fetch of a digest.
type Fill struct {
	fills  *Fills
	key    string
	digest string
	ready  chan struct{} // closed once the leader knows the outcome of its request
	ok     bool          // the leader got content; followers may read

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever written/done change
	meta    Meta
	// spool is opened once, before any byte is written, and shared by all
	// readers: publishing renames the file, and a client that joins late
	// must still find it. It is closed when the copy and every reader
	// are done with it.
	spool   *os.File
	refs    int       // users of spool: the copy and every open reader
	readers int       // open readers; the last leaving early aborts the fill
	body    io.Closer // the upstream body, closed to abort
	aborted bool
	written int64
	done    bool
	err     error
}

// Join returns the fill of digest through route and whether the caller
// leads it (and must call Start or Abandon). Fills are per route: a
// follower is served what its own route's upstream sends, never bytes
// another route's upstream is still proving.
func (fs *Fills) Join(route, digest string) (*Fill, bool) {
	key := route + "\x00" + digest
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.active[key]; ok {
		return f, false
	}
	f := &Fill{fills: fs, key: key, digest: digest, ready: make(chan struct{}), changed: make(chan struct{})}
	fs.active[key] = f
	return f, true
}

func (fs *Fills) remove(f *Fill) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.active[f.key] == f {
		delete(fs.active, f.key)
	}
}

// Abandon is the leader saying its request got no content (an error, a
// redirect refused, a 401): followers must fetch for themselves, since
// another client's answer is not theirs to share.
func (f *Fill) Abandon() {
	f.fills.remove(f)
	close(f.ready)
}

// Wait blocks until the leader knows whether content is coming.
func (f *Fill) Wait(ctx context.Context) bool {
	select {
	case <-f.ready:
		return f.ok
	case <-ctx.Done():
		return false
	}
}

// Meta is the content's size (-1 if the upstream did not say) and type.
func (f *Fill) Meta() Meta { return f.meta }

// Start copies body into w in the background until EOF, then commits,
// which verifies the digest, and returns the leader's reader. The leader
// reads from the start, so no gap between Start and its reader lets the
// fill look abandoned. When every reader has closed before the end, body
// is closed (its Close must unblock a pending Read, as an HTTP body's
// does once its request is cancelled) and the spool discarded. onBytes,
// if not nil, is told of every chunk read from the upstream.
func (f *Fill) Start(ctx context.Context, body io.ReadCloser, w Writer, meta Meta, onBytes func(int)) (io.ReadCloser, error) {
	spool, err := os.Open(w.Spool())
	if err != nil {
		body.Close()
		w.Abort()
		f.Abandon()
		return nil, err
	}
	f.meta, f.spool, f.body, f.ok = meta, spool, body, true
	f.refs, f.readers = 2, 1
	close(f.ready)
	go f.copy(body, w, onBytes)
	return &fillReader{f: f, ctx: ctx}, nil
}

// release drops one user of the spool handle and closes it after the last.
func (f *Fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	f.mu.Unlock()
	if last {
		f.spool.Close()
	}
}

func (f *Fill) copy(body io.ReadCloser, w Writer, onBytes func(int)) {
	defer body.Close()
	err := f.transfer(body, w, onBytes)
	if err == nil && f.meta.Size >= 0 && f.written != f.meta.Size {
		err = fmt.Errorf("upstream sent %d of %d bytes of %s", f.written, f.meta.Size, f.digest)
	}
	if f.isAborted() {
		err = ErrAbandoned
	}
	if err == nil {
		err = f.publish(w)
	} else {
		w.Abort()
	}
	f.fills.remove(f)
	f.update(0, true, err)
	f.release()
}

// publish commits w. Bytes that do not match the digest fail the fill
// (its readers get an error, never a wrong body); bytes that verified but
// could not be stored do not: the readers finish, and PublishFailed hears
// of it.
func (f *Fill) publish(w Writer) error {
	err := w.Commit()
	if err == nil || errors.Is(err, ErrDigestMismatch) {
		return err
	}
	if f.fills.PublishFailed != nil {
		f.fills.PublishFailed(f.digest, err)
	}
	return nil
}

func (f *Fill) transfer(body io.Reader, w Writer, onBytes func(int)) error {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("caching %s: %w", f.digest, werr)
			}
			if onBytes != nil {
				onBytes(n)
			}
			f.update(int64(n), false, nil)
		}
		switch {
		case f.isAborted():
			return ErrAbandoned
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return fmt.Errorf("upstream transfer of %s: %w", f.digest, rerr)
		}
	}
}

func (f *Fill) isAborted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aborted
}

func (f *Fill) update(n int64, done bool, err error) {
	f.mu.Lock()
	f.written += n
	f.done, f.err = f.done || done, err
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Reader streams the content as it arrives, for a follower. It fails if
// the fill is over and let go of its spool, or was abandoned: the caller
// then looks in the store or fetches for itself. The last byte is held
// back until the digest is verified: a client never receives a complete
// body whose digest turned out wrong, only an error.
func (f *Fill) Reader(ctx context.Context) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs == 0 || f.aborted {
		return nil, fmt.Errorf("fill of %s already released", f.digest)
	}
	f.refs++
	f.readers++
	return &fillReader{f: f, ctx: ctx}, nil
}

// leave is one reader closing; the last one leaving before the end
// aborts the transfer, which nobody would read.
func (f *Fill) leave() {
	f.mu.Lock()
	f.readers--
	abort := f.readers == 0 && !f.done && !f.aborted
	f.aborted = f.aborted || abort
	f.mu.Unlock()
	if abort {
		f.fills.remove(f)
		f.body.Close()
	}
	f.release()
}

type fillReader struct {
	f      *Fill
	ctx    context.Context
	pos    int64
	closed sync.Once
}

func (r *fillReader) Read(p []byte) (int, error) {
	for {
		r.f.mu.Lock()
		avail, done, err, changed := r.f.written, r.f.done, r.f.err, r.f.changed
		r.f.mu.Unlock()
		if !done {
			avail-- // hold back the last byte until verified
		}
		switch {
		case done && err != nil:
			return 0, err
		case r.pos < avail:
			n, rerr := r.f.spool.ReadAt(p[:min(int64(len(p)), avail-r.pos)], r.pos)
			r.pos += int64(n)
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return n, rerr
			}
			return n, nil
		case done:
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) Close() error {
	r.closed.Do(r.f.leave)
	return nil
}
