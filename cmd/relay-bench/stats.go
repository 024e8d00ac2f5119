package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// store keeps one value per repetition for each (metric, target).
type store map[[2]string][]float64

func (s store) add(metric, target string, v float64) {
	k := [2]string{metric, target}
	s[k] = append(s[k], v)
}

func (s store) get(metric, target string) []float64 { return s[[2]string{metric, target}] }

// summary is the median of a series and its spread over the repetitions.
type summary struct {
	median, min, max float64
	n                int
}

func summarize(vs []float64) summary {
	if len(vs) == 0 {
		return summary{median: math.NaN()}
	}
	s := slices.Sorted(slices.Values(vs))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

// paired combines two series repetition by repetition (the targets were
// measured interleaved, so rep i of each saw the same machine state).
func paired(a, b []float64, f func(x, y float64) float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, n)
	for i := range n {
		out[i] = f(a[i], b[i])
	}
	return out
}

func ratio(x, y float64) float64 { return x / y }
func diff(x, y float64) float64  { return x - y }

// percentile of sorted durations, in milliseconds (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// format renders "median [min–max]" with the given precision.
func (s summary) format(prec int) string {
	if s.n == 0 {
		return "–"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.*f", prec, s.median)
	}
	return fmt.Sprintf("%.*f [%.*f–%.*f]", prec, s.median, prec, s.min, prec, s.max)
}
