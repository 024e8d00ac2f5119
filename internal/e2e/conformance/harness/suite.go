//go:build e2e

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// runSuite runs the suite binary in s.dir with only env's OCI_* variables.
func runSuite(s runSpec, env map[string]string) (*report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.suite)
	cmd.Dir = s.dir // no stray oci-conformance.yaml
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var envFile strings.Builder
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
		fmt.Fprintf(&envFile, "%s=%q\n", k, env[k])
	}
	if err := os.WriteFile(filepath.Join(s.dir, "env"), []byte(envFile.String()), 0o644); err != nil {
		return nil, err
	}
	stdout, err := os.Create(filepath.Join(s.dir, "out.txt"))
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(s.dir, "err.txt"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return nil, runErr
	}
	rep, err := parseReport(filepath.Join(s.dir, "out.txt"))
	if err != nil {
		return nil, err
	}
	rep.exitCode = cmd.ProcessState.ExitCode()
	if b, err := os.ReadFile(filepath.Join(s.dir, "err.txt")); err == nil && strings.Contains(string(b), "panic:") {
		rep.panicked = true
	}
	return rep, nil
}
