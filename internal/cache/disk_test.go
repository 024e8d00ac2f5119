package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func put(t *testing.T, d *Disk, content []byte) string {
	t.Helper()
	dg := digestOf(content)
	w, err := d.Create(t.Context(), dg, Meta{ContentType: "application/test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return dg
}

func TestDiskPublishesOnlyVerifiedContent(t *testing.T) {
	d, err := OpenDisk(t.TempDir(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := put(t, d, []byte("hello"))
	c, err := d.Open(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(c)
	c.Close()
	if string(body) != "hello" || c.Meta().Size != 5 || c.Meta().ContentType != "application/test" {
		t.Errorf("got %q %+v", body, c.Meta())
	}

	w, _ := d.Create(t.Context(), digestOf([]byte("expected")), Meta{})
	_, _ = w.Write([]byte("tampered"))
	if err := w.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit of mismatching bytes: %v", err)
	}
	if _, err := d.Open(t.Context(), digestOf([]byte("expected"))); !errors.Is(err, ErrNotFound) {
		t.Error("mismatching content was published")
	}

	w, _ = d.Create(t.Context(), digestOf([]byte("partial")), Meta{})
	_, _ = w.Write([]byte("par"))
	w.Abort()
	if _, err := d.Open(t.Context(), digestOf([]byte("partial"))); !errors.Is(err, ErrNotFound) {
		t.Error("aborted content was published")
	}
	for _, bad := range []string{
		"sha256:../../etc", "md5:abcdef0123", "sha256:ABCDEF0123", "sha256:abcdef0123",
		"blake3:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("a", 64),
	} {
		if _, err := d.Create(t.Context(), bad, Meta{}); err == nil {
			t.Errorf("Create(%q) accepted a bad digest", bad)
		}
	}
}

// TestDiskVerifiesEveryAlgorithmItAccepts stores content under each
// algorithm go-digest computes; Create refuses the rest (above).
func TestDiskVerifiesEveryAlgorithmItAccepts(t *testing.T) {
	d, err := OpenDisk(t.TempDir(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		dg := alg.FromString("hello").String()
		w, err := d.Create(t.Context(), dg, Meta{})
		if err != nil {
			t.Fatalf("Create(%s): %v", dg, err)
		}
		_, _ = w.Write([]byte("hello"))
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit(%s): %v", alg, err)
		}
		if c, err := d.Open(t.Context(), dg); err != nil {
			t.Errorf("Open(%s): %v", alg, err)
		} else {
			c.Close()
		}
		w, _ = d.Create(t.Context(), alg.FromString("other").String(), Meta{})
		_, _ = w.Write([]byte("hello"))
		if err := w.Commit(); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("Commit of mismatching %s content: %v", alg, err)
		}
	}
}

func TestDiskEvictsLeastRecentlyUsed(t *testing.T) {
	evicted := 0
	d, err := OpenDisk(t.TempDir(), 100, func(int64) { evicted++ })
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for i := range 30 {
		digests = append(digests, put(t, d, []byte(strings.Repeat(string(rune('a'+i%26)), 20)+string(rune('0'+i/26)))))
		if _, err := d.Open(t.Context(), digests[0]); err != nil && i < 3 {
			t.Fatalf("recently used entry evicted early: %v", err)
		}
		if d.Size() > 100 {
			t.Fatalf("size %d over the bound after %d puts", d.Size(), i+1)
		}
	}
	if evicted == 0 {
		t.Fatal("nothing evicted under churn")
	}
	if _, err := d.Open(t.Context(), digests[0]); err != nil {
		t.Error("the entry used on every round was evicted")
	}
	if _, err := d.Open(t.Context(), digests[1]); err == nil {
		t.Error("an old, unused entry survived")
	}
}

func TestDiskSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d, _ := OpenDisk(dir, 1<<20, nil)
	dg := put(t, d, []byte("persisted"))
	d2, err := OpenDisk(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d2.Open(t.Context(), dg)
	if err != nil {
		t.Fatalf("content lost over a restart: %v", err)
	}
	c.Close()
	if d2.Size() != int64(len("persisted")) || c.Meta().ContentType != "application/test" {
		t.Errorf("size %d meta %+v after restart", d2.Size(), c.Meta())
	}
}

// slowBody hands out chunks one at a time, when told to.
type slowBody struct {
	chunks chan []byte
	err    error
}

func (b *slowBody) Read(p []byte) (int, error) {
	c, ok := <-b.chunks
	if !ok {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	return copy(p, c), nil
}
func (b *slowBody) Close() error { return nil }

func TestFillStreamsToFollowersAndHoldsBackTheEnd(t *testing.T) {
	d, _ := OpenDisk(t.TempDir(), 1<<20, nil)
	content := []byte("0123456789")
	fills := NewFills()
	f, leader := fills.Join("r", digestOf(content))
	if !leader {
		t.Fatal("first Join did not lead")
	}
	if _, again := fills.Join("r", digestOf(content)); again {
		t.Fatal("second Join also leads")
	}
	if _, other := fills.Join("other", digestOf(content)); !other {
		t.Fatal("another route's Join follows this route's fill")
	}
	w, _ := d.Create(t.Context(), digestOf(content), Meta{})
	body := &slowBody{chunks: make(chan []byte)}
	r, err := f.Start(context.Background(), body, w, Meta{Size: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body.chunks <- content[:4]
	buf := make([]byte, 100)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "012" {
		t.Fatalf("first read %q: want the arrived bytes minus the held-back last one", buf[:n])
	}
	body.chunks <- content[4:]
	close(body.chunks)
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "3456789" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if _, err := d.Open(t.Context(), digestOf(content)); err != nil {
		t.Error("verified fill was not published")
	}
}

func TestFillFailureReachesEveryReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		body *slowBody
		data []byte
		size int64
	}{
		{"upstream dies", &slowBody{chunks: make(chan []byte, 1), err: io.ErrUnexpectedEOF}, []byte("abc"), 10},
		{"short body", &slowBody{chunks: make(chan []byte, 1)}, []byte("abc"), 10},
		{"corrupt bytes", &slowBody{chunks: make(chan []byte, 1)}, []byte("abd"), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := OpenDisk(t.TempDir(), 1<<20, nil)
			dg := digestOf([]byte("abc"))
			f, _ := NewFills().Join("r", dg)
			w, _ := d.Create(t.Context(), dg, Meta{})
			r, _ := f.Start(context.Background(), tc.body, w, Meta{Size: tc.size}, nil)
			defer r.Close()
			tc.body.chunks <- tc.data
			close(tc.body.chunks)
			done := make(chan error, 1)
			go func() { _, err := io.ReadAll(r); done <- err }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("reader saw a clean end of a failed fill")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("reader hangs after the fill failed")
			}
			if _, err := d.Open(t.Context(), dg); err == nil {
				t.Error("failed fill was published")
			}
		})
	}
}
