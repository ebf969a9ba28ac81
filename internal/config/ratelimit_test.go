package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

func TestParseRateLimit(t *testing.T) {
	ok := map[string]config.RateLimit{
		"1000/s":          {PerSecond: 1000, Burst: 2000},
		"600/m":           {PerSecond: 10, Burst: 20},
		"1/m":             {PerSecond: 1.0 / 60, Burst: 1},
		"20/s,burst=100":  {PerSecond: 20, Burst: 100},
		" 5/S , burst=1 ": {PerSecond: 5, Burst: 1},
		"off":             {Off: true},
		"OFF":             {Off: true},
		"0.5/s,burst=3":   {PerSecond: 0.5, Burst: 3},
	}
	for raw, want := range ok {
		t.Run(raw, func(t *testing.T) {
			got, err := config.ParseRateLimit(raw)
			require.NoError(t, err)
			require.Equal(t, want, got)
			again, err := config.ParseRateLimit(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String round-trips")
		})
	}
	for _, raw := range []string{"", "1000", "0/s", "-1/s", "10/h", "10/s,burst=0", "10/s,b=3", "x/s", "NaN/s", "Inf/s", "10/s,burst=1.5"} {
		t.Run("bad "+raw, func(t *testing.T) {
			_, err := config.ParseRateLimit(raw)
			require.Error(t, err)
		})
	}
	_, err := config.Load(nil, func(k string) (string, bool) {
		if k == config.EnvRateLimitPerKey {
			return "fast", true
		}
		return "", false
	})
	require.ErrorContains(t, err, config.EnvRateLimitPerKey)
}
