package outbound

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// ssrfPayloads are the bypass classes every layer must refuse. host is the URL authority
// without port; an empty resolve means the host is a literal (or localhost) and no DNS
// answer is involved.
var ssrfPayloads = []struct {
	name    string
	host    string
	resolve []netip.Addr
}{
	{"decimal", "2130706433", nil},
	{"octal", "0177.0.0.1", nil},
	{"hex dword", "0x7f000001", nil},
	{"hex short", "0x7f.1", nil},
	{"short", "127.1", nil},
	{"trailing dot", "127.0.0.1.", nil},
	{"mapped v6", "[::ffff:127.0.0.1]", nil},
	{"mapped v6 hex", "[::ffff:7f00:1]", nil},
	{"v6 loopback", "[::1]", nil},
	{"unspecified v4", "0.0.0.0", nil},
	{"unspecified v6", "[::]", nil},
	{"this-network", "0.1.2.3", nil},
	{"localhost", "localhost", nil},
	{"localhost upper", "LOCALHOST", nil},
	{"localhost dot", "localhost.", nil},
	{"sub.localhost", "foo.localhost", nil},
	{"metadata", "169.254.169.254", nil},
	{"cgnat", "100.64.0.1", nil},
	{"rfc1918 10", "10.0.0.1", nil},
	{"rfc1918 172", "172.16.5.4", nil},
	{"rfc1918 172 top", "172.31.255.255", nil},
	{"rfc1918 192", "192.168.1.1", nil},
	{"ula", "[fc00::1]", nil},
	{"ula fd", "[fd12:3456::1]", nil},
	{"link-local v6", "[fe80::1]", nil},
	{"link-local v6 zone", "[fe80::1%25eth0]", nil},
	{"nat64 to private", "[64:ff9b::a00:1]", nil},
	{"nat64 to metadata", "[64:ff9b::a9fe:a9fe]", nil},
	{"6to4 private", "[2002:c0a8:101::1]", nil},
	{"teredo loopback client", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", nil},
	{"documentation v4", "192.0.2.10", nil},
	{"documentation v6", "[2001:db8::1]", nil},
	{"broadcast", "255.255.255.255", nil},
	{"multicast", "224.0.0.1", nil},
	{"multicast v6", "[ff02::1]", nil},
	{"name resolving to loopback", "evil.example.com", []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
	{"name resolving to metadata", "meta.example.com", []netip.Addr{netip.MustParseAddr("169.254.169.254")}},
	{"name resolving to mapped", "mapped.example.com", []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}},
	{"name with one private answer", "mixed.example.com", []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3")}},
}

func TestCheckURLRefusesSSRFPayloads(t *testing.T) {
	for _, tc := range ssrfPayloads {
		if tc.resolve != nil {
			continue // names are only checked at dial time (TestDialRefusesSSRFPayloads)
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, scheme := range []string{"http", "https"} {
				err := CheckURL(scheme+"://"+tc.host+":8080/token?client_secret=s3cr3t", nil)
				require.ErrorIs(t, err, ErrUnsafeURL)
				require.NotContains(t, err.Error(), "s3cr3t")
				err = CheckURL(scheme+"://"+tc.host+"/", nil)
				require.ErrorIs(t, err, ErrUnsafeURL)
			}
		})
	}
}

func TestCheckURLMalformed(t *testing.T) {
	for _, raw := range []string{
		"", "token", "/relative", "//host.example/x", "ftp://example.com/", "file:///etc/passwd",
		"gopher://example.com/", "javascript:alert(1)", "http:example.com", "https://",
		"https://user:pw@example.com/", "https://user@example.com/", "https://example.com:0/",
		"https://example.com:65536/", "https://example.com:/", "https://exa mple.com/",
		"https://example..com/", "https://.example.com/", "https://example.com../",
		"https://[127.0.0.1]/", "https://1.2.3.4.5/", "https://example.1/", "https://0x/",
		"https://09.0.0.1/", "https://ex%41mple.com/", "https://%31%32%37.0.0.1/",
		"https://\uff11\uff12\uff17.0.0.1/", "https://b\u00fccher.example/", "https://a\\b.example/",
		"https://1.2.3.4%0a/", "https://[::1%2525]/", "https://evil.com%2f@127.0.0.1/",
		"https://example.com/?x=%zz&secret=s3cr3t\x7f",
	} {
		t.Run(raw, func(t *testing.T) {
			err := CheckURL(raw, nil)
			require.ErrorIs(t, err, ErrUnsafeURL)
			require.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestCheckURLAccepts(t *testing.T) {
	for _, raw := range []string{
		"https://github.com/login/oauth/access_token",
		"https://oauth2.googleapis.com/token?x=1",
		"http://api.example.com:8080/v1/",
		"HTTPS://API.EXAMPLE.COM/",
		"https://example.com./",
		"https://_service.example.com/",
		"https://8.8.8.8/dns",
		"https://[2606:4700:4700::1111]/",
		"https://[64:ff9b::808:808]/", // NAT64 to a public address
		"https://[2002:808:808::1]/",  // 6to4 of a public address
		"https://xn--bcher-kva.example/",
		"https://0x7f.example.com/", // a DNS name: checked at dial time
		"https://127.0.0.1.nip.io/", // a DNS name: checked at dial time
	} {
		t.Run(raw, func(t *testing.T) {
			require.NoError(t, CheckURL(raw, nil))
		})
	}
}

func TestCheckURLAllowCIDRs(t *testing.T) {
	tests := []struct {
		raw   string
		allow []netip.Prefix
		ok    bool
	}{
		{"http://127.0.0.1:8080/token", loopbackAllow, true},
		{"http://[::1]:8080/token", loopbackAllow, true},
		{"http://[::ffff:127.0.0.1]:8080/", loopbackAllow, true}, // mapped form of an allowed v4
		{"http://localhost:8080/", loopbackAllow, true},
		{"http://localhost:8080/", []netip.Prefix{netip.MustParsePrefix("::1/128")}, true},
		{"http://foo.localhost/", loopbackAllow, true},
		{"http://10.0.0.5/", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, true},
		{"http://10.0.1.5/", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, false},
		{"http://localhost/", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, false},
		{"http://169.254.169.254/", loopbackAllow, false},
		// Legacy numeric spellings stay refused even when their address is allowed.
		{"http://2130706433/", loopbackAllow, false},
		{"http://127.1/", loopbackAllow, false},
		// NAT64 to loopback is the translator's loopback: only an explicit allow covers it.
		{"http://[64:ff9b::7f00:1]/", loopbackAllow, false},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			err := CheckURL(tc.raw, tc.allow)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrUnsafeURL)
			}
		})
	}
	require.Error(t, CheckURL("https://example.com/", []netip.Prefix{{}}), "invalid prefix")
}

func TestUnsafeAddressErrorIs(t *testing.T) {
	err := CheckURL("http://169.254.169.254/latest/meta-data/?q=s3cr3t", nil)
	var ue *UnsafeAddressError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "169.254.169.254", ue.Host)
	require.Equal(t, netip.MustParseAddr("169.254.169.254"), ue.Addr)
	require.Contains(t, ue.Reason, "link-local")
	require.True(t, errors.Is(err, ErrUnsafeURL))
	require.False(t, errors.Is(err, ErrPinMismatch))

	err = CheckURL("http://0x7f.1/", nil)
	require.ErrorAs(t, err, &ue)
	require.Equal(t, netip.MustParseAddr("127.0.0.1"), ue.Addr, "the legacy form is interpreted for the message")
	require.Contains(t, err.Error(), "non-canonical")
}
