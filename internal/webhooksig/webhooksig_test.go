package webhooksig_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
)

func TestWebhookSignaturesCarryKids(t *testing.T) {
	oldS, newS, other := []byte("whsec_old-0123456789"), []byte("whsec_new-0123456789"), []byte("whsec_other-0123456789")
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	header := webhooksig.Sign(newS, now, body, oldS)
	parts := strings.Split(header, ",")
	require.Len(t, parts, 3)
	require.Equal(t, "t=1800000000", parts[0])
	require.True(t, strings.HasPrefix(parts[1], "v1="+webhooksig.KID(newS)+":"), "the active secret's first")
	require.True(t, strings.HasPrefix(parts[2], "v1="+webhooksig.KID(oldS)+":"))
	require.NotEqual(t, webhooksig.KID(oldS), webhooksig.KID(newS))
	require.Regexp(t, `^whk_[0-9a-f]{12}$`, webhooksig.KID(oldS))

	tests := map[string]struct {
		secret []byte
		header string
		body   []byte
		ok     bool
	}{
		"new secret":        {newS, header, body, true},
		"old secret":        {oldS, header, body, true},
		"unknown secret":    {other, header, body, false},
		"tampered body":     {newS, header, []byte(`{"id":"evt_2"}`), false},
		"single, new":       {newS, webhooksig.Sign(newS, now, body), body, true},
		"single, not yours": {oldS, webhooksig.Sign(newS, now, body), body, false},
		// The old secret's valid MAC relabelled with the new secret's kid: the kid picks
		// the key, and nothing else is tried.
		"relabelled": {newS, "t=1800000000,v1=" + webhooksig.KID(newS) + ":" + strings.SplitN(parts[2], ":", 2)[1], body, false},
		"mac under the wrong kid": {oldS, "t=1800000000,v1=" + webhooksig.KID(newS) + ":" +
			strings.SplitN(parts[2], ":", 2)[1], body, false},
		"legacy bare hex": {oldS, "t=1800000000,v1=" + strings.SplitN(parts[2], ":", 2)[1], body, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := webhooksig.Verify(tc.secret, tc.header, tc.body, now, time.Minute)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, webhooksig.ErrBadSignature)
			}
		})
	}
	_, err := hex.DecodeString(strings.SplitN(parts[1], ":", 2)[1])
	require.NoError(t, err)
}

func TestSignVerify(t *testing.T) {
	secret := []byte("whsec_test")
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	h := webhooksig.Sign(secret, now, body)
	require.True(t, strings.HasPrefix(h, "t=1800000000,v1="))
	require.NoError(t, webhooksig.Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute))
	for name, tc := range map[string]struct {
		secret, body []byte
		header       string
		at           time.Time
	}{
		"other secret":   {[]byte("whsec_other"), body, h, now},
		"changed body":   {secret, []byte(`{"id":"evt_2"}`), h, now},
		"stale":          {secret, body, h, now.Add(10 * time.Minute)},
		"no signature":   {secret, body, "t=1800000000", now},
		"garbage header": {secret, body, "v1=zz", now},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, webhooksig.Verify(tc.secret, tc.header, tc.body, tc.at, 5*time.Minute), webhooksig.ErrBadSignature)
		})
	}
}
