package relay_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// faultSwitch makes a registry answer every request with a fixed status
// while it is set, as an upstream in trouble does.
type faultSwitch struct{ status atomic.Int32 }

func (f *faultSwitch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code := int(f.status.Load()); code != 0 {
			w.Header().Set("Retry-After", "30")
			http.Error(w, "upstream in trouble", code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestFallback pulls the same image while the primary fails in each way
// that calls for the fallback (each with its own token service), and
// checks that answers which are not outages never reach it.
func TestFallback(t *testing.T) {
	var fault faultSwitch
	primaryAuth := relaytest.NewTokenIssuer(t, relaytest.IssuerOptions{})
	primary := relaytest.NewRegistry(t, relaytest.RegistryOptions{Auth: primaryAuth, Wrap: fault.wrap})
	fallbackAuth := relaytest.NewTokenIssuer(t, relaytest.IssuerOptions{})
	fallback := relaytest.NewRegistry(t, relaytest.RegistryOptions{Auth: fallbackAuth})
	img := relaytest.RandomImage(t, 2, 8192)
	want := relaytest.PushImage(t, primary, "library/app:1", img)
	relaytest.PushImage(t, fallback, "library/app:1", img)

	// The fallback's realm is on a host of its own, so a route to the
	// fallback lists it, as the built-in routes list theirs.
	relay, a := startRelay(t, map[string]string{
		"RELAY_BASE_DOMAIN":     "test",
		"DOCKERHUB_UPSTREAM":    primary.URL,
		"DOCKERHUB_AUTH_HOSTS":  primaryAuth.Host,
		"RELAY_CUSTOM_ROUTES":   "fb",
		"FB_UPSTREAM":           fallback.URL,
		"FB_AUTH_HOSTS":         fallbackAuth.Host,
		"FALLBACK_REGISTRY_MAP": `{"` + primary.Host + `":"` + fallback.URL + `"}`,
	})
	w := &world{relay: relay, app: a}
	pull := func(t *testing.T) error {
		got, err := remote.Image(ref(t, "dhcr.test/app:1"), w.options(t, nil)...)
		if err != nil {
			return err
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("digest %s, want %s", d, want)
		}
		return validate.Image(got)
	}
	for _, tc := range []struct {
		name   string
		status int
		reason string
	}{
		{"primary answers 500", http.StatusInternalServerError, "5xx"},
		{"primary answers 429", http.StatusTooManyRequests, "429"},
		{"primary answers 503", http.StatusServiceUnavailable, "5xx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fault.status.Store(int32(tc.status))
			if err := pull(t); err != nil {
				t.Fatalf("pull with a failing primary: %v", err)
			}
			if !metricPresent(t, a.Gatherer(), `relay_fallback_total{reason="`+tc.reason+`",route="dockerhub"}`) {
				t.Errorf("no relay_fallback_total{reason=%q}", tc.reason)
			}
		})
	}

	t.Run("404 is an answer, not an outage", func(t *testing.T) {
		fault.status.Store(http.StatusNotFound)
		before := fallbackCount(t, w)
		if err := pull(t); err == nil {
			t.Fatal("pull succeeded although the primary said 404")
		}
		if after := fallbackCount(t, w); after != before {
			t.Errorf("fallback used for a 404 (%v -> %v)", before, after)
		}
	})

	t.Run("primary stopped", func(t *testing.T) {
		fault.status.Store(0)
		if err := pull(t); err != nil {
			t.Fatalf("healthy primary: %v", err)
		}
		primary.Close()
		if err := pull(t); err != nil {
			t.Fatalf("pull after the primary went away: %v", err)
		}
		if !metricPresent(t, a.Gatherer(), `relay_fallback_total{reason="error",route="dockerhub"}`) {
			t.Error(`no relay_fallback_total{reason="error"}`)
		}
	})
	if len(fallbackAuth.Requests()) == 0 {
		t.Error("the fallback's own token service was never asked")
	}
}

// fallbackCount sums relay_fallback_total over its labels.
func fallbackCount(t *testing.T, w *world) float64 {
	var n float64
	for _, line := range strings.Split(scrape(t, w.app.Gatherer()), "\n") {
		if strings.HasPrefix(line, "relay_fallback_total{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			n += v
		}
	}
	return n
}
