package cache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"
)

// S3 is a Store in an S3-compatible bucket (AWS S3, GCS and R2 through
// their S3 APIs, SeaweedFS, Ceph RGW), shared by every replica that
// names it. Objects are content-addressed and written once: a fill spools
// to a local file, Commit verifies the digest and only then uploads, with
// If-None-Match: * so that of several replicas committing the same
// content one object is written and the others keep it. An object is
// never visible before its bytes verified, nor visible in part: S3 makes a
// PUT visible whole or not at all.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string
	spoolDir string
	timeout  time.Duration
}

var _ Store = (*S3)(nil)

// s3RoutesKey holds an object's provenance (Meta.Routes) in its user
// metadata. Adding a route rewrites the metadata with a copy conditional
// on the object's ETag; a lost race loses a route, which costs a later
// refetch through it, never a route that did not supply the bytes.
const s3RoutesKey = "Relay-Routes"

// s3Timeout bounds one call to the store that no request bounds: an
// upload at commit, a metadata update.
const s3Timeout = 10 * time.Minute

// NewS3 returns a store in bucket under prefix ("" or ending in "/"),
// spooling fills in spoolDir.
func NewS3(client *minio.Client, bucket, prefix, spoolDir string) *S3 {
	return &S3{client: client, bucket: bucket, prefix: prefix, spoolDir: spoolDir, timeout: s3Timeout}
}

// CheckBucket confirms the bucket is there and reachable, for start-up.
func (s *S3) CheckBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return ErrNoBucket
	}
	return nil
}

// ErrNoBucket means the store answered and has no such bucket.
var ErrNoBucket = errors.New("no such bucket")

// key is where content for dg lives: blobs/<alg>/<hex[:2]>/<hex>.
func (s *S3) key(dg string) (string, error) {
	d, err := digest.Parse(dg)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrDigestMismatch, dg)
	}
	hx := d.Encoded()
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + hx[:2] + "/" + hx, nil
}

// Open returns the published object, or ErrNotFound.
func (s *S3) Open(ctx context.Context, dg string) (Content, error) {
	key, err := s.key(dg)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &s3Content{Object: obj, meta: metaOf(info)}, nil
}

type s3Content struct {
	*minio.Object
	meta Meta
}

func (c *s3Content) Meta() Meta { return c.meta }

func metaOf(info minio.ObjectInfo) Meta {
	m := Meta{Size: info.Size, ContentType: info.ContentType, Stored: info.LastModified}
	if r := info.UserMetadata[s3RoutesKey]; r != "" {
		m.Routes = strings.Split(r, ",")
	}
	return m
}

// Create spools content for dg to a local file; Commit verifies and
// uploads it.
func (s *S3) Create(ctx context.Context, dg string, meta Meta) (Writer, error) {
	key, err := s.key(dg)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.spoolDir, "s3-fill-*")
	if err != nil {
		return nil, err
	}
	h := digest.Digest(dg).Algorithm().Hash()
	// The upload outlives the request that started the fill (followers
	// still read it); it is bounded by its own timeout instead.
	return &s3Writer{s: s, ctx: context.WithoutCancel(ctx), f: f, h: h, digest: dg, key: key, meta: meta}, nil
}

type s3Writer struct {
	s      *S3
	ctx    context.Context
	f      *os.File
	h      hash.Hash
	digest string
	key    string
	meta   Meta
	done   bool
}

func (w *s3Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	return n, err
}

func (w *s3Writer) Spool() string { return w.f.Name() }

func (w *s3Writer) Abort() {
	if !w.done {
		w.done = true
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// Commit verifies the bytes against the digest, then publishes them: a
// conditional PUT, or, when the object is already there (another replica
// or route got there first), the new route added to its provenance.
func (w *s3Writer) Commit() error {
	defer w.Abort()
	if got := digest.NewDigest(digest.Digest(w.digest).Algorithm(), w.h); got.String() != w.digest {
		return fmt.Errorf("%w: got %s", ErrDigestMismatch, got)
	}
	size, err := w.f.Seek(0, 1)
	if err != nil {
		return err
	}
	if _, err := w.f.Seek(0, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.s.timeout)
	defer cancel()
	opts := minio.PutObjectOptions{ContentType: w.meta.ContentType, UserMetadata: map[string]string{s3RoutesKey: strings.Join(w.meta.Routes, ",")}}
	opts.SetMatchETagExcept("*") // If-None-Match: *, written once
	_, err = w.s.client.PutObject(ctx, w.s.bucket, w.key, w.f, size, opts)
	if err == nil || !exists(err) {
		return err
	}
	return w.s.addRoutes(ctx, w.key, w.meta)
}

// exists reports whether a conditional PUT failed because the object is
// already there.
func exists(err error) bool {
	code := minio.ToErrorResponse(err).StatusCode
	return code == http.StatusPreconditionFailed || code == http.StatusConflict
}

// addRoutes merges meta's routes (and a specific media type for a generic
// one) into the published object's metadata, by a copy conditional on the
// ETag it read.
func (s *S3) addRoutes(ctx context.Context, key string, meta Meta) error {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return err
	}
	cur := metaOf(info)
	merged := cur.merged(meta)
	if slices.Equal(merged.Routes, cur.Routes) && merged.ContentType == cur.ContentType {
		return nil
	}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: key, MatchETag: info.ETag}
	dst := minio.CopyDestOptions{Bucket: s.bucket, Object: key, ReplaceMetadata: true,
		UserMetadata: map[string]string{s3RoutesKey: strings.Join(merged.Routes, ","), "Content-Type": merged.ContentType}}
	if _, err := s.client.CopyObject(ctx, dst, src); err != nil && !exists(err) {
		return err
	}
	return nil
}
