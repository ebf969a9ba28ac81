package proxy

import (
	"testing"

	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// FuzzParseSessionID: the connect route's parser of an untrusted path segment never
// panics, and accepts only the one canonical spelling of each id's bytes.
func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{"", "cs_", "cs_" + "aaaaaaaaaaaaaaaaaaaaaaaaaa", ids.New(ids.ConnectSession),
		"cs_hbjaa7wpsuvnkmvjlfop6ux7oldayk5ha3m7bxqje464sckf3z6a", "cs_hbjaa7wpsuvnkmvjlfop6ux7oldayk5ha3m7bxqje464sckf3z6b",
		"CS_x", "cs_====", "cs_\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		raw, legacy, ok := parseSessionID(id)
		if !ok {
			return
		}
		if legacy {
			if len(id) != 3+legacySessionIDLen {
				t.Fatalf("legacy id of length %d", len(id))
			}
			return
		}
		if len(raw) != sessionIDBytes {
			t.Fatalf("%d bytes", len(raw))
		}
		out := make([]byte, ids.EncodedLen(len(raw)))
		ids.Encode(out, raw)
		if "cs_"+string(out) != id {
			t.Fatalf("%q accepted but encodes as %q", id, out)
		}
	})
}
