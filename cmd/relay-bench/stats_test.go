package main

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in               []float64
		median, min, max float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s := summarize(tc.in)
		if s.median != tc.median || s.min != tc.min || s.max != tc.max || s.n != len(tc.in) {
			t.Errorf("summarize(%v) = %+v", tc.in, s)
		}
	}
	if s := summarize(nil); !math.IsNaN(s.median) || s.format(1) != "–" {
		t.Errorf("summarize(nil) = %+v, formatted %q", s, s.format(1))
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 0: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", p, got, want)
		}
	}
}

// Ratios pair repetition i with repetition i, and ignore unpaired extras.
func TestPaired(t *testing.T) {
	got := paired([]float64{2, 9, 7}, []float64{1, 3}, ratio)
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("paired = %v", got)
	}
}

func TestRotate(t *testing.T) {
	a, b, c := &target{name: "a"}, &target{name: "b"}, &target{name: "c"}
	got := rotate([]*target{a, b, c}, 4)
	if got[0] != b || got[1] != c || got[2] != a {
		t.Errorf("rotate by 4 = %s %s %s", got[0].name, got[1].name, got[2].name)
	}
}

func TestFirstCause(t *testing.T) {
	cause := errors.New("HEAD manifest: 502")
	if got := firstCause([]error{nil, context.Canceled, cause}); got != cause {
		t.Errorf("firstCause = %v, want the non-cancellation error", got)
	}
	if got := firstCause([]error{nil, context.Canceled}); !errors.Is(got, context.Canceled) {
		t.Errorf("firstCause = %v, want context.Canceled", got)
	}
	if got := firstCause([]error{nil}); got != nil {
		t.Errorf("firstCause = %v, want nil", got)
	}
}
