package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machineRows describes the machine and the versions of what was measured.
func machineRows(bin string) [][]string {
	return [][]string{
		{"CPU", fmt.Sprintf("%d × %s (nproc %d)", runtime.NumCPU(), procField("/proc/cpuinfo", "model name"), runtime.NumCPU())},
		{"memory", memTotal()},
		{"kernel", readTrim("/proc/sys/kernel/osrelease")},
		{"OS", strings.Trim(procField("/etc/os-release", "PRETTY_NAME"), `"`)},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"registry-relay", "built from " + version("git", "describe", "--always", "--dirty")},
		{"registry", version(filepath.Join(bin, "registry"), "--version")},
		{"nginx", toolVersion("nginx", "-v")},
		{"caddy", toolVersion("caddy", "version")},
	}
}

// procField returns the value of the first "key: value" or "key=value"
// line of a /proc-style file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			k, v, ok = strings.Cut(sc.Text(), "=")
		}
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func toolVersion(name string, args ...string) string {
	path, ok := lookTool(name)
	if !ok {
		return "not installed"
	}
	return version(path, args...)
}

// version runs a version command (nginx prints to stderr) and returns its
// first line.
func version(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "not available"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// cpuMeter measures the CPU time other processes took during the run: the
// machine may be shared, and the figures compare only on an idle one.
type cpuMeter struct {
	busy0 float64
	start time.Time
}

func startCPUMeter() cpuMeter { return cpuMeter{busy0: machineBusy(), start: time.Now()} }

// others returns the CPU seconds that neither this process nor its
// children (all stopped and waited for by now) used, and the wall time.
func (m cpuMeter) others() (float64, float64) {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	ours := seconds(self.Utime) + seconds(self.Stime) + seconds(children.Utime) + seconds(children.Stime)
	return max(machineBusy()-m.busy0-ours, 0), time.Since(m.start).Seconds()
}

func seconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// machineBusy is the non-idle CPU time of the whole machine from
// /proc/stat: user, nice, system, irq and softirq.
func machineBusy() float64 {
	f := strings.Fields(procLine("/proc/stat", "cpu "))
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
	}
	return float64(ticks) / clockTicks
}

func procLine(path, prefix string) string {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// memTotal is MemTotal from /proc/meminfo in GiB.
func memTotal() string {
	kib, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}
