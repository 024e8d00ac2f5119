package check

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// freeAddr is a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess starts a server and waits until ready succeeds; the server
// is interrupted when the test ends, and its output shown if it failed.
func startProcess(t *testing.T, cmd *exec.Cmd, ready func() error) {
	t.Helper()
	name := filepath.Base(cmd.Path)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", name, out)
		}
	})
	err = waitFor(15*time.Second, func() error {
		select {
		case <-exited:
			return errProcessExited
		default:
			return ready()
		}
	})
	if err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("%s did not start: %v\n%s", name, err, out)
	}
}

var errProcessExited = errors.New("exited")

// waitFor polls ok until it succeeds, fails for good with
// errProcessExited, or the timeout passes.
func waitFor(timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil || errors.Is(err, errProcessExited) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
