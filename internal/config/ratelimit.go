package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RateLimit is a token bucket (AUTHPIPE_RATE_LIMIT_PER_KEY, AUTHPIPE_RATE_LIMIT_PER_IP):
// PerSecond requests on average and Burst at once. Off disables the limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
	Off       bool
}

// ParseRateLimit reads "off", "<n>/s" or "<n>/m", optionally followed by ",burst=<n>"
// (default burst: twice the per-second rate, at least 1): "1000/s", "600/m,burst=50".
func ParseRateLimit(raw string) (RateLimit, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if s == "off" {
		return RateLimit{Off: true}, nil
	}
	spec, burstPart, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(strings.TrimSpace(spec), "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return RateLimit{}, fmt.Errorf("%q is not a rate (use off, <n>/s or <n>/m, optionally ,burst=<n>)", raw)
	}
	switch strings.TrimSpace(unit) {
	case "s":
	case "m":
		n /= 60
	default:
		return RateLimit{}, fmt.Errorf("%q: the unit must be /s or /m", raw)
	}
	l := RateLimit{PerSecond: n, Burst: int(math.Max(1, math.Ceil(2*n)))}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstPart), "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b < 1 {
			return RateLimit{}, fmt.Errorf("%q: burst must be burst=<whole number ≥ 1>", raw)
		}
		l.Burst = b
	}
	return l, nil
}

// String renders the limit in the syntax ParseRateLimit reads.
func (l RateLimit) String() string {
	if l.Off {
		return "off"
	}
	return strconv.FormatFloat(l.PerSecond, 'f', -1, 64) + "/s,burst=" + strconv.Itoa(l.Burst)
}

func rateLimitField(p func(*Config) *RateLimit) field {
	return field{
		parse: func(c *Config, raw string) string {
			l, err := ParseRateLimit(raw)
			if err != nil {
				return err.Error()
			}
			*p(c) = l
			return ""
		},
		show: func(c *Config) string { return p(c).String() },
	}
}
