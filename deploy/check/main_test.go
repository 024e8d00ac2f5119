package check

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// repoRoot is the relay's repository; deploy/check sits two levels below.
var repoRoot, _ = filepath.Abs(filepath.Join("..", ".."))

// relayBin is the relay binary TestMain builds from the working tree.
var relayBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deploy-check-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	relayBin = filepath.Join(dir, "registry-relay")
	// The flags of `make build` and the Dockerfile: the binary under test is
	// the one that ships, and the Dockerfile test reuses the build cache.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", relayBin, "./cmd/registry-relay")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the relay: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// repoPath names a file of the repository from its slash-separated path.
func repoPath(rel string) string {
	return filepath.Join(repoRoot, filepath.FromSlash(rel))
}

// readRepoFile returns a repository file's content or fails the test.
func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// needTool returns the path of an external program, or skips the test
// saying how to get it (`make deploy-check` installs them as root).
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (%s): these checks did not run", name, install)
	}
	return p
}
