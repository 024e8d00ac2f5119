package relaytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a real S3 server for tests: SeaweedFS's `weed mini` on loopback,
// serving one bucket. Its binary comes from WEED_BIN (make s3 builds it).
type S3 struct {
	Endpoint string // http://127.0.0.1:8333
	Bucket   string
	// AccessKey and SecretKey are what the relay must present, through
	// the standard AWS variables.
	AccessKey, SecretKey string

	cmd *exec.Cmd
}

// s3Port is where weed mini serves S3; it is not configurable there, so
// tests that use it run one server at a time.
const s3Port = "8333"

// StartS3 starts weed mini with a fresh data directory, waits until its
// S3 port answers, and stops it when the test ends. A test without
// WEED_BIN fails: the shared cache's tests must run against a real store.
func StartS3(t testing.TB, bucket string) *S3 {
	t.Helper()
	bin := os.Getenv("WEED_BIN")
	if bin == "" {
		t.Fatal("WEED_BIN is unset: run these tests with make s3, which builds SeaweedFS")
	}
	s := &S3{Endpoint: "http://127.0.0.1:" + s3Port, Bucket: bucket, AccessKey: "relaytest", SecretKey: "relaytest-secret"}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+s3Port, time.Second); err == nil {
		c.Close()
		t.Fatalf("127.0.0.1:%s is taken: another S3 server runs (run its tests one package at a time, go test -p 1)", s3Port)
	}
	dir := t.TempDir()
	s.cmd = exec.Command(bin, "mini", "-dir="+dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket="+bucket)
	s.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey)
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting weed: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := waitPort("127.0.0.1:"+s3Port, 60*time.Second); err != nil {
		out, _ := os.ReadFile(log.Name())
		t.Fatalf("weed mini: %v\n%s", err, out)
	}
	if err := s.waitBucket(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// Env is what a relay needs to use the server: its endpoint, bucket and
// credentials.
func (s *S3) Env() map[string]string {
	return map[string]string{
		"RELAY_CACHE_S3_ENDPOINT": s.Endpoint, "RELAY_CACHE_S3_BUCKET": s.Bucket, "RELAY_CACHE_S3_PATH_STYLE": "true",
		"AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey,
	}
}

// Stop ends the server and every process it started.
func (s *S3) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func waitPort(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", addr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitBucket waits until the bucket exists: weed creates it a moment
// after its port opens.
func (s *S3) waitBucket(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for ctx.Err() == nil {
		if ok, _ := bucketExists(ctx, s); ok {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("bucket %s did not appear within %s", s.Bucket, within)
}

// Client is a client of the server, for tests that look at the bucket.
func (s *S3) Client() *minio.Client {
	c, err := minio.New("127.0.0.1:"+s3Port, &minio.Options{
		Creds: miniocreds.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath, MaxRetries: 1,
	})
	if err != nil {
		panic(err) // only for a malformed endpoint, which this one is not
	}
	return c
}

func bucketExists(ctx context.Context, s *S3) (bool, error) {
	return s.Client().BucketExists(ctx, s.Bucket)
}
