package config_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/config"
)

// FuzzLoadMaps feeds the JSON-valued variables to Load: whatever the
// operator writes, Load must return a configuration or an error, never
// panic, and what it accepts must be usable.
func FuzzLoadMaps(f *testing.F) {
	f.Add(`{"docker.io":"registry-1.docker.io","default":"registry-1.docker.io"}`, ``, ``)
	f.Add(`{"gcr.io":"gcr","default":"dockerhub","localhost:5000":"http://127.0.0.1:5000"}`, `{"registry-1.docker.io":"mirror.gcr.io"}`, `["nginx","alpine"]`)
	f.Add(`{"default":"https://x.example/"}`, `{"gcr.io":"https://mirror.example/v2"}`, `["a/b"]`)
	f.Add(`{"x":"y"}`, `[]`, `{}`)
	f.Add(`{"default":"ftp://x"}`, `{"":""}`, `[""]`)
	f.Add(`{"default":"dockerhub","default":"k8s"}`, `null`, `null`)
	f.Add(`{"default":"http://u:p@x"}`, `{"gcr.io":"http://[::1"}`, `["UPPER"]`)
	f.Fuzz(func(t *testing.T, regMap, fallbackMap, official string) {
		cfg, err := config.Load(map[string]string{
			"RELAY_BASE_DOMAIN":          "test",
			"DOCKER_REGISTRY_MAP":        regMap,
			"FALLBACK_REGISTRY_MAP":      fallbackMap,
			"DOCKER_HUB_OFFICIAL_IMAGES": official,
		})
		if err != nil {
			return
		}
		if cfg.Mirror == nil || cfg.Mirror.Default == nil {
			t.Fatalf("accepted %q without a default mirror route", regMap)
		}
		for _, r := range append(cfg.Routes, cfg.Mirror.Routes()...) {
			u := r.Upstream
			if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				t.Fatalf("route %s has upstream %v", r.Name, u)
			}
			if f := r.Fallback; f != nil && ((f.Scheme != "http" && f.Scheme != "https") || f.Host == "") {
				t.Fatalf("route %s has fallback %v", r.Name, f)
			}
		}
		for _, name := range []string{"gcr.io/x", "x", "a.b:1/c"} {
			_, _, _ = cfg.Mirror.Split(name)
		}
	})
}

// FuzzParseSize checks RELAY_CACHE_MAX_BYTES's parser: plain byte counts
// parse exactly, and whatever Load accepts is a positive size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10GiB", "2000000000", "1.5 TB", "0", "-1", "1e9", "KiB", ".", "1..2MB", " 7 MiB ", "99999999999999999999TiB", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := config.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d: a size is never negative", s, n)
		}
		digits := strings.TrimSpace(s)
		plain := digits != "" && strings.Trim(digits, "0123456789") == ""
		if v, perr := strconv.ParseInt(digits, 10, 64); plain && perr == nil && v < 1<<53 && (err != nil || n != v) {
			t.Fatalf("ParseSize(%q) = %d, %v; want %d", s, n, err, v)
		}
		cfg, err := config.Load(map[string]string{"RELAY_BASE_DOMAIN": "test", "RELAY_CACHE_MAX_BYTES": s})
		if err == nil && cfg.CacheMaxBytes <= 0 {
			t.Fatalf("RELAY_CACHE_MAX_BYTES=%q accepted as %d", s, cfg.CacheMaxBytes)
		}
	})
}
