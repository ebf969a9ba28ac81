package refresher_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/refresher"
)

func TestWebhookSignaturesCarryKids(t *testing.T) {
	oldS, newS, other := []byte("whsec_old-0123456789"), []byte("whsec_new-0123456789"), []byte("whsec_other-0123456789")
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	header := refresher.Sign(newS, now, body, oldS)
	parts := strings.Split(header, ",")
	require.Len(t, parts, 3)
	require.Equal(t, "t=1800000000", parts[0])
	require.True(t, strings.HasPrefix(parts[1], "v1="+refresher.WebhookKID(newS)+":"), "the active secret's first")
	require.True(t, strings.HasPrefix(parts[2], "v1="+refresher.WebhookKID(oldS)+":"))
	require.NotEqual(t, refresher.WebhookKID(oldS), refresher.WebhookKID(newS))
	require.Regexp(t, `^whk_[0-9a-f]{12}$`, refresher.WebhookKID(oldS))

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
		"single, new":       {newS, refresher.Sign(newS, now, body), body, true},
		"single, not yours": {oldS, refresher.Sign(newS, now, body), body, false},
		// The old secret's valid MAC relabelled with the new secret's kid: the kid picks
		// the key, and nothing else is tried.
		"relabelled": {newS, "t=1800000000,v1=" + refresher.WebhookKID(newS) + ":" + strings.SplitN(parts[2], ":", 2)[1], body, false},
		"mac under the wrong kid": {oldS, "t=1800000000,v1=" + refresher.WebhookKID(newS) + ":" +
			strings.SplitN(parts[2], ":", 2)[1], body, false},
		"legacy bare hex": {oldS, "t=1800000000,v1=" + strings.SplitN(parts[2], ":", 2)[1], body, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := refresher.Verify(tc.secret, tc.header, tc.body, now, time.Minute)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, refresher.ErrBadSignature)
			}
		})
	}
	_, err := hex.DecodeString(strings.SplitN(parts[1], ":", 2)[1])
	require.NoError(t, err)
}
