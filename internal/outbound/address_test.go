package outbound

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnsafeReason(t *testing.T) {
	unsafe := []string{
		"0.0.0.0", "0.255.255.255", "10.0.0.0", "10.255.255.255", "100.64.0.1", "100.127.255.255",
		"127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1",
		"172.31.255.255", "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.0.1", "198.18.0.1",
		"198.19.255.255", "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.255",
		"240.0.0.1", "255.255.255.255",
		"::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:101", "64:ff9b:1::1", "100::1",
		"2001:2::1", "2001:db8::1", "3fff::1", "5f00::1", "fc00::1", "fdff::1", "fe80::1",
		"febf::1", "fec0::1", "ff02::1", "ff0e::1",
		"2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:0a00:0001::",
		"2001:0:7f00:1::1",                     // Teredo server loopback
		"2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo client 10.0.0.1
		"2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo client 127.0.0.1
		"fe80::1%eth0",
	}
	for _, s := range unsafe {
		t.Run(s, func(t *testing.T) {
			require.NotEmpty(t, unsafeReason(netip.MustParseAddr(s)))
		})
	}
	safe := []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255",
		"172.32.0.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
		"223.255.255.255", "93.184.215.14",
		"2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
		"2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo client 8.8.8.8
	}
	for _, s := range safe {
		t.Run(s, func(t *testing.T) {
			require.Empty(t, unsafeReason(netip.MustParseAddr(s)))
		})
	}
	require.NotEmpty(t, unsafeReason(netip.Addr{}))
}

func TestAllowListCheck(t *testing.T) {
	al, err := newAllowList([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("127.0.0.1/8")})
	require.NoError(t, err)
	require.NoError(t, al.check("h", netip.MustParseAddr("10.1.2.3")))
	require.NoError(t, al.check("h", netip.MustParseAddr("::ffff:10.1.2.3")))
	require.NoError(t, al.check("h", netip.MustParseAddr("127.9.9.9")), "prefix is masked")
	require.ErrorIs(t, al.check("h", netip.MustParseAddr("10.2.0.1")), ErrUnsafeURL)
	require.ErrorIs(t, al.check("h", netip.MustParseAddr("fe80::1%eth0")), ErrUnsafeURL)

	everything, err := newAllowList([]netip.Prefix{netip.MustParsePrefix("::/0")})
	require.NoError(t, err)
	require.ErrorIs(t, everything.check("h", netip.MustParseAddr("fe80::1%eth0")), ErrUnsafeURL, "zones are never allowed")
}

func TestLegacyIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = not an IPv4 address
	}{
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"169.254.43518", "169.254.169.254"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"1..1", ""},
		{"0xg", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			a, ok := parseLegacyIPv4(tc.in)
			if tc.want == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, a.String())
		})
	}
}

func TestEndsInNumber(t *testing.T) {
	for in, want := range map[string]bool{
		"127.1": true, "example.1": true, "0x": true, "0x7f": true, "a.0xff.": true,
		"example.com": false, "1.example": false, "0x7g": false, "1e5": false, "": false,
	} {
		require.Equal(t, want, endsInNumber(in), in)
	}
}
