package outbound

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewValidatesPolicy(t *testing.T) {
	bad := map[string]Policy{
		"TLS 1.1":           {MinTLSVersion: tls.VersionTLS11},
		"TLS 1.0":           {MinTLSVersion: tls.VersionTLS10},
		"bogus TLS":         {MinTLSVersion: 0x9999},
		"pin without algo":  {Pins: []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
		"pin sha1":          {Pins: []string{"sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
		"pin short":         {Pins: []string{"sha256/AAAA"}},
		"pin not base64":    {Pins: []string{"sha256/!!!!"}},
		"negative timeout":  {Timeouts: Timeouts{Dial: -time.Second}},
		"negative overall":  {Timeouts: Timeouts{Overall: -1}},
		"invalid prefix":    {AllowCIDRs: []netip.Prefix{{}}},
		"negative max body": {MaxResponseBytes: -2},
	}
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := New(p)
			require.Error(t, err)
		})
	}
	_, err := New(Policy{}, WithResolver(nil))
	require.Error(t, err)

	c, err := New(Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}})
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), c.transport.base.TLSClientConfig.MinVersion)
	require.False(t, c.transport.base.TLSClientConfig.InsecureSkipVerify)
	require.Equal(t, DefaultDialTimeout, c.policy.Timeouts.Dial)
	require.Equal(t, DefaultTLSHandshakeTimeout, c.transport.base.TLSHandshakeTimeout)
	require.Equal(t, DefaultResponseHeaderTimeout, c.transport.base.ResponseHeaderTimeout)
	require.Equal(t, DefaultOverallTimeout, c.TokenClient().Timeout)
	require.EqualValues(t, DefaultMaxResponseBytes, c.transport.max)
	require.Nil(t, c.transport.base.TLSClientConfig.VerifyConnection, "no pins, no pin check")
}
