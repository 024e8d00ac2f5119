package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func putVia(t *testing.T, d *Disk, route, ct string, content []byte) error {
	t.Helper()
	w, err := d.Create(t.Context(), digestOf(content), Meta{Size: int64(len(content)), ContentType: ct, Routes: []string{route}})
	if err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func routesOf(t *testing.T, d *Disk, digest string) []string {
	t.Helper()
	c, err := d.Open(t.Context(), digest)
	if err != nil {
		t.Fatalf("open %s: %v", digest, err)
	}
	defer c.Close()
	return c.Meta().Routes
}

// TestProvenanceGrowsOnlyByVerifiedBytes: a second route's verified copy
// of published content adds that route; bytes that do not verify add
// nothing; provenance survives a restart; entries from before provenance
// was kept serve no route.
func TestProvenanceGrowsOnlyByVerifiedBytes(t *testing.T) {
	dir := t.TempDir()
	d, _ := OpenDisk(dir, 1<<20, nil)
	content := []byte(`{"schemaVersion":2}`)
	dg := digestOf(content)
	if err := putVia(t, d, "hub", "application/vnd.oci.image.manifest.v1+json", content); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, d, dg); !slices.Equal(got, []string{"hub"}) {
		t.Fatalf("routes %v after the first fill", got)
	}
	w, _ := d.Create(t.Context(), dg, Meta{Routes: []string{"evil"}})
	_, _ = w.Write([]byte("forged"))
	if err := w.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("forged bytes for a published digest: %v", err)
	}
	// A blob pull of the same bytes via another route: provenance grows,
	// the manifest media type and the content stay.
	if err := putVia(t, d, "twin", "application/octet-stream", content); err != nil {
		t.Fatalf("second verified copy: %v", err)
	}
	if d.Size() != int64(len(content)) {
		t.Errorf("size %d: the duplicate was counted", d.Size())
	}
	d2, err := OpenDisk(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d2.Open(t.Context(), dg)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(c)
	c.Close()
	m := c.Meta()
	if !slices.Equal(m.Routes, []string{"hub", "twin"}) || m.ContentType != "application/vnd.oci.image.manifest.v1+json" || string(body) != string(content) {
		t.Errorf("after a restart: routes %v type %q body %q", m.Routes, m.ContentType, body)
	}
	if m.From("evil") || !m.From("twin") {
		t.Errorf("From: evil %v twin %v", m.From("evil"), m.From("twin"))
	}
	legacy := put(t, d2, []byte("written before provenance"))
	if got := routesOf(t, d2, legacy); len(got) != 0 {
		t.Errorf("an entry without provenance has routes %v", got)
	}
}

// TestSpoolsCountAgainstTheBound: a transfer's reservation shows in Size,
// evicts published content to make room, is refused when it cannot fit,
// and is released by Abort.
func TestSpoolsCountAgainstTheBound(t *testing.T) {
	dir := t.TempDir()
	d, _ := OpenDisk(dir, 100, nil)
	old := put(t, d, []byte(strings.Repeat("o", 60)))
	w, err := d.Create(t.Context(), digestOf([]byte(strings.Repeat("n", 50))), Meta{Size: 50})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != 50 {
		t.Errorf("size %d with a 50-byte reservation, want 50 after evicting the 60-byte entry", d.Size())
	}
	if _, err := d.Open(t.Context(), old); err == nil {
		t.Error("published entry not evicted to make room for the transfer")
	}
	if _, err := d.Create(t.Context(), digestOf([]byte("x")), Meta{Size: 51}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("a reservation beyond the room beside another transfer: %v", err)
	}
	w.Abort()
	if d.Size() != 0 {
		t.Errorf("size %d after Abort", d.Size())
	}
	// Unknown length: written bytes count, and the bound holds.
	u, _ := d.Create(t.Context(), digestOf([]byte("y")), Meta{Size: -1})
	if _, err := u.Write(make([]byte, 80)); err != nil || d.Size() != 80 {
		t.Fatalf("unknown-length write: %v, size %d", err, d.Size())
	}
	if _, err := u.Write(make([]byte, 30)); !errors.Is(err, ErrNoSpace) {
		t.Errorf("write past the bound: %v", err)
	}
	u.Abort()
	if n, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(n) != 0 || d.Size() != 0 {
		t.Errorf("after Abort: %d spool files, size %d", len(n), d.Size())
	}
	if err := putVia(t, d, "r", "", make([]byte, 100)); err != nil || d.Size() != 100 {
		t.Errorf("a fill the size of the bound: %v, size %d", err, d.Size())
	}
}

// closingBody blocks in Read until a chunk arrives or it is closed, as an
// HTTP body does when its request is cancelled.
type closingBody struct {
	chunks chan []byte
	closed chan struct{}
}

func newClosingBody() *closingBody {
	return &closingBody{chunks: make(chan []byte), closed: make(chan struct{})}
}

func (b *closingBody) Read(p []byte) (int, error) {
	select {
	case c := <-b.chunks:
		return copy(p, c), nil
	case <-b.closed:
		return 0, errors.New("body closed")
	}
}

func (b *closingBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func (b *closingBody) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// TestFillAbortedWhenNobodyReads: the fill goes on while any reader is
// left, even if a follower joins and leaves before the leader reads, and
// is cancelled, discarded and forgotten once the last reader leaves.
func TestFillAbortedWhenNobodyReads(t *testing.T) {
	dir := t.TempDir()
	d, _ := OpenDisk(dir, 1<<20, nil)
	content := []byte("0123456789")
	dg := digestOf(content)
	fills := NewFills()
	f, _ := fills.Join("r", dg)
	w, _ := d.Create(t.Context(), dg, Meta{Size: 10})
	body := newClosingBody()
	leader, err := f.Start(context.Background(), body, w, Meta{Size: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := f.Reader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	follower.Close()
	body.chunks <- content[:4]
	if body.isClosed() {
		t.Fatal("a follower leaving aborted the fill its leader still reads")
	}
	buf := make([]byte, 10)
	if n, err := leader.Read(buf); err != nil || string(buf[:n]) != "012" {
		t.Fatalf("leader read %q, %v", buf[:n], err)
	}
	leader.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !body.isClosed() || d.Size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("abandoned fill still running: body closed %v, size %d", body.isClosed(), d.Size())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := f.Reader(context.Background()); err == nil {
		t.Error("a late follower joined an abandoned fill")
	}
	if _, lead := fills.Join("r", dg); !lead {
		t.Error("the abandoned fill is still joinable")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(n) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned spool was not discarded")
		}
	}
	if _, err := d.Open(t.Context(), dg); err == nil {
		t.Error("an abandoned fill was published")
	}
}

// TestMediaTypeIsNotAnotherRoutesToChange: the same bytes supplied by a
// second route's upstream add that route to the provenance, and may turn
// a blob pull's generic type into a manifest's, but never replace one
// specific media type with another (a second upstream would otherwise
// decide what the first route's clients are told the content is).
func TestMediaTypeIsNotAnotherRoutesToChange(t *testing.T) {
	const (
		blob  = "application/octet-stream"
		oci   = "application/vnd.oci.image.manifest.v1+json"
		other = "application/vnd.docker.distribution.manifest.v2+json"
	)
	for _, tc := range []struct{ first, second, want string }{
		{blob, oci, oci},
		{oci, blob, oci},
		{oci, other, oci},
		{"", oci, oci},
	} {
		m := Meta{ContentType: tc.first, Routes: []string{"a"}}.merged(Meta{ContentType: tc.second, Routes: []string{"b"}})
		if m.ContentType != tc.want || !m.From("a") || !m.From("b") {
			t.Errorf("%q then %q: type %q routes %v, want %q from both", tc.first, tc.second, m.ContentType, m.Routes, tc.want)
		}
	}
}
