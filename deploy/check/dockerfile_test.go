package check

import (
	"bytes"
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerStage is one FROM ... section of the Dockerfile.
type dockerStage struct {
	name         string
	instructions []*parser.Node
}

// parseDockerfile reads the Dockerfile with BuildKit's own parser and
// returns the ARGs before the first FROM and the stages.
func parseDockerfile(t *testing.T) (globalArgs map[string]string, stages []dockerStage) {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	globalArgs = map[string]string{}
	for _, n := range res.AST.Children {
		n.Value = strings.ToLower(n.Value) // the instruction, as written
		switch {
		case n.Value == "from":
			st := dockerStage{}
			if args := nodeArgs(n); len(args) == 3 && strings.EqualFold(args[1], "AS") {
				st.name = args[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && n.Value == "arg":
			k, v, _ := strings.Cut(n.Next.Value, "=")
			globalArgs[k] = v
		case len(stages) > 0:
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, n)
		}
	}
	if len(stages) < 2 {
		t.Fatal("Dockerfile: want a build stage and a runtime stage")
	}
	return globalArgs, stages
}

func nodeArgs(n *parser.Node) []string {
	var args []string
	for a := n.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	return args
}

func TestDockerfileGoVersionMatchesGoMod(t *testing.T) {
	args, _ := parseDockerfile(t)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if args["GO_VERSION"] != string(m[1]) {
		t.Errorf("Dockerfile ARG GO_VERSION=%s, go.mod says go %s", args["GO_VERSION"], m[1])
	}
}

// goBuildRun is the build stage's RUN that compiles the relay.
func goBuildRun(t *testing.T, build dockerStage) string {
	t.Helper()
	for _, n := range build.instructions {
		if n.Value == "run" && strings.Contains(n.Next.Value, "go build") {
			return n.Next.Value
		}
	}
	t.Fatal("Dockerfile: the build stage has no RUN ... go build")
	return ""
}

// TestDockerfileBuildsLikeMake: the image's binary is the one `make build`
// makes, apart from where it is written.
func TestDockerfileBuildsLikeMake(t *testing.T) {
	makeBin := needTool(t, "make", "apt-get install make")
	_, stages := parseDockerfile(t)
	out, err := exec.Command(makeBin, "-s", "-n", "-C", repoRoot, "build", "GO=go").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	outputFlag := regexp.MustCompile(`\s-o\s+\S+`)
	normalize := func(s string) string { return strings.Join(strings.Fields(outputFlag.ReplaceAllString(s, "")), " ") }
	want := normalize(strings.TrimSpace(string(out)))
	if got := normalize(goBuildRun(t, stages[0])); got != want {
		t.Errorf("Dockerfile builds with\n  %s\nbut `make build` with\n  %s", got, want)
	}
}

// TestDockerfileBuildStage runs the build stage's instructions here, on
// exactly the files .dockerignore lets into the build context, and checks
// that the runtime stage gets a static binary and runs it as non-root on
// the relay's ports. Only the base images are not involved.
func TestDockerfileBuildStage(t *testing.T) {
	_, stages := parseDockerfile(t)
	build, runtime := stages[0], stages[len(stages)-1]
	root := t.TempDir() // the build stage's filesystem
	emulateStage(t, build, root, dockerignore(t))

	var binary string
	var user string
	var exposed []string
	var entrypoint []string
	for _, n := range runtime.instructions {
		args := nodeArgs(n)
		switch n.Value {
		case "copy":
			if !slices.Contains(n.Flags, "--from="+build.name) || len(args) != 2 {
				t.Fatalf("runtime stage: want COPY --from=%s <binary> <path>, got %s", build.name, n.Original)
			}
			checkStatic(t, filepath.Join(root, filepath.FromSlash(args[0])))
			binary = args[1]
		case "user":
			user = args[0]
		case "expose":
			exposed = args
		case "entrypoint":
			entrypoint = args
		case "healthcheck":
			t.Error("no HEALTHCHECK: orchestrators probe /healthz and /readyz on the admin port")
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root uid, which runAsNonRoot can verify", user)
	}
	vars := readmeVars(t)
	for _, listen := range []string{"RELAY_LISTEN", "RELAY_ADMIN_LISTEN"} {
		p := strconv.Itoa(int(port(t, vars.defaults[listen])))
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s, %s's default port", exposed, p, listen)
		}
	}
	if !slices.Equal(entrypoint, []string{binary}) {
		t.Errorf("ENTRYPOINT %v, want [%q] in exec form, so SIGTERM reaches the relay", entrypoint, binary)
	}
}

func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(repoPath(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// emulateStage carries out WORKDIR, ARG, COPY (from the context) and RUN
// (with sh, in the working directory) with root as the filesystem.
func emulateStage(t *testing.T, st dockerStage, root string, ignore *patternmatcher.PatternMatcher) {
	t.Helper()
	workdir := "/"
	env := os.Environ()
	for _, n := range st.instructions {
		args := nodeArgs(n)
		switch n.Value {
		case "workdir":
			workdir = path.Join(workdir, args[0])
		case "arg":
			if strings.Contains(args[0], "=") {
				env = append(env, args[0])
			}
		case "copy":
			if len(n.Flags) > 0 || len(args) < 2 {
				t.Fatalf("build stage: deploy/check copies only plain COPY <src>... <dest>: %s", n.Original)
			}
			dest := path.Join(workdir, args[len(args)-1])
			intoDir := len(args) > 2 || strings.HasSuffix(args[len(args)-1], "/")
			for _, src := range args[:len(args)-1] {
				copyFromContext(t, ignore, src, filepath.Join(root, filepath.FromSlash(dest)), intoDir)
			}
		case "run":
			if n.Attributes["json"] || len(n.Flags) > 0 {
				t.Fatalf("build stage: deploy/check runs only shell-form RUN without flags: %s", n.Original)
			}
			dir := filepath.Join(root, filepath.FromSlash(workdir))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-c", args[0])
			cmd.Dir, cmd.Env = dir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build stage: %s: %v\n%s", n.Original, err, out)
			}
		default:
			t.Fatalf("build stage: deploy/check does not emulate %s; extend emulateStage", n.Original)
		}
	}
}

// copyFromContext copies src (relative to the build context) as COPY does:
// a directory's contents into dest, a file to dest or into it. Files that
// .dockerignore excludes are not in the context and so not copied.
func copyFromContext(t *testing.T, ignore *patternmatcher.PatternMatcher, src, dest string, intoDir bool) {
	t.Helper()
	copied := 0
	err := filepath.WalkDir(repoPath(src), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		if excluded, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel)); err != nil || excluded {
			return err
		}
		inSrc, _ := filepath.Rel(repoPath(src), p)
		target := filepath.Join(dest, inSrc)
		if inSrc == "." { // src is a file
			target = dest
			if intoDir {
				target = filepath.Join(dest, filepath.Base(p))
			}
		}
		copied++
		return copyFile(p, target)
	})
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if copied == 0 {
		t.Fatalf("COPY %s: nothing in the build context (.dockerignore excludes it?)", src)
	}
}

func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// checkStatic fails unless path is an ELF executable that needs no dynamic
// loader: distroless/static and scratch have no libc.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("the runtime stage copies %s: %v", path, err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			libs = append(libs, "a dynamic loader")
		}
	}
	if len(libs) > 0 {
		t.Errorf("%s is not static: it needs %v", path, libs)
	}
}
