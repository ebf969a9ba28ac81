package audit_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

func newSigner(t *testing.T) *audit.Signer {
	t.Helper()
	seed := make([]byte, 32)
	_, err := rand.Read(seed)
	require.NoError(t, err)
	s, err := audit.NewSigner(seed)
	require.NoError(t, err)
	return s
}

// chain builds n linked events of workspace ws.
func chain(ws string, n int) []audit.Event {
	var out []audit.Event
	seq, head := int64(0), audit.GenesisHash
	for i := 0; i < n; i++ {
		e := audit.Event{ID: fmt.Sprintf("evt_%d", i+1), WorkspaceID: ws, At: time.Unix(1700000000+int64(i), 0),
			Type: audit.TokenRead, Actor: "apk_x", Outcome: audit.Success}
		audit.Link(&e, seq, head)
		seq, head = e.Seq, e.Hash
		out = append(out, e)
	}
	return out
}

// walk verifies evs from (startSeq, startHash) against cps, as the store does.
func walk(evs []audit.Event, cps []audit.Checkpoint, startSeq int64, startHash string) (bool, string, string) {
	v := audit.NewVerifierFrom(startSeq, startHash)
	w := audit.NewWitness(cps, startSeq, startHash)
	for _, e := range evs {
		if !v.Add(e) {
			break
		}
		w.Observe(e)
	}
	if ok, _, _, bad := v.Result(); !ok {
		return false, bad, "chain"
	}
	return w.Finish()
}

func TestCheckpointSignVerify(t *testing.T) {
	s := newSigner(t)
	c := s.Sign("ws_a", 7, strings.Repeat("ab", 32), "evt_7", time.Now())
	require.NoError(t, c.Verify())
	require.NoError(t, c.Verify(s.KeyID()))
	require.ErrorIs(t, c.Verify("ckp_someoneelse"), audit.ErrUntrustedKey)

	tamper := map[string]func(*audit.Checkpoint){
		"seq":       func(c *audit.Checkpoint) { c.Seq++ },
		"hash":      func(c *audit.Checkpoint) { c.Hash = strings.Repeat("cd", 32) },
		"workspace": func(c *audit.Checkpoint) { c.WorkspaceID = "ws_b" },
		"at":        func(c *audit.Checkpoint) { c.At = c.At.Add(time.Second) },
		"other key": func(c *audit.Checkpoint) {
			o := newSigner(t).Sign(c.WorkspaceID, c.Seq, c.Hash, c.EventID, c.At)
			c.PublicKey = o.PublicKey // kid no longer matches
		},
		"resigned by another key": func(c *audit.Checkpoint) {
			*c = newSigner(t).Sign(c.WorkspaceID, c.Seq+5, c.Hash, c.EventID, c.At)
		},
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			cc := c
			f(&cc)
			err := cc.Verify(s.KeyID())
			require.Error(t, err)
		})
	}

	var buf bytes.Buffer
	buf.Write(c.Line())
	buf.WriteString("\n")
	buf.Write(s.Sign("ws_a", 9, strings.Repeat("ef", 32), "evt_9", time.Now()).Line())
	got, err := audit.ReadCheckpoints(&buf, s.KeyID())
	require.NoError(t, err)
	require.Len(t, got, 2)

	var bad audit.Checkpoint
	require.NoError(t, json.Unmarshal(c.Line(), &bad))
	bad.Seq = 100
	b, _ := json.Marshal(bad)
	_, err = audit.ReadCheckpoints(bytes.NewReader(append(c.Line(), b...)))
	require.ErrorIs(t, err, audit.ErrBadCheckpoint)
	require.Contains(t, err.Error(), "line 2")
	_, err = audit.ReadCheckpoints(strings.NewReader("not json\n"))
	require.ErrorIs(t, err, audit.ErrCheckpointParse)
	_, err = audit.NewSigner([]byte("short"))
	require.Error(t, err)
}

func TestWitness(t *testing.T) {
	s := newSigner(t)
	evs := chain("ws_a", 10)
	cp := func(e audit.Event) audit.Checkpoint { return s.Sign(e.WorkspaceID, e.Seq, e.Hash, e.ID, e.At) }
	cps := []audit.Checkpoint{cp(evs[3]), cp(evs[7])}

	// A re-chain: event 6 edited and every hash from there recomputed.
	rechained := append([]audit.Event(nil), evs[:5]...)
	for i := 5; i < 10; i++ {
		e := evs[i]
		if i == 5 {
			e.Type = audit.ConnectionCreated
		}
		audit.Link(&e, rechained[i-1].Seq, rechained[i-1].Hash)
		rechained = append(rechained, e)
	}

	tests := []struct {
		name    string
		evs     []audit.Event
		cps     []audit.Checkpoint
		start   int // events pruned before the walk
		ok      bool
		bad     string
		snippet string
	}{
		{name: "intact", evs: evs, cps: cps, ok: true},
		{name: "intact, no checkpoints", evs: evs, ok: true},
		{name: "deleted tail", evs: evs[:6], cps: cps, bad: "evt_8", snippet: "tail"},
		{name: "deleted tail, head rewritten too", evs: evs[:8], cps: append(cps, cp(evs[9])), bad: "evt_10", snippet: "tail"},
		{name: "re-chained", evs: rechained, cps: cps, bad: "evt_8", snippet: "rewritten"},
		{name: "re-chained, no checkpoint: not detectable", evs: rechained, ok: true},
		{name: "pruned before a checkpoint", evs: evs[5:], cps: cps, start: 5, ok: true},
		{name: "pruned at a checkpoint", evs: evs[4:], cps: cps, start: 4, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, head := int64(0), audit.GenesisHash
			if tc.start > 0 {
				seq, head = evs[tc.start-1].Seq, evs[tc.start-1].Hash
			}
			ok, bad, reason := walk(tc.evs, tc.cps, seq, head)
			require.Equal(t, tc.ok, ok, reason)
			if !tc.ok {
				require.Equal(t, tc.bad, bad)
				require.Contains(t, reason, tc.snippet)
			}
		})
	}

	t.Run("forged anchor", func(t *testing.T) {
		w := audit.NewWitness(cps, evs[3].Seq, strings.Repeat("00", 32))
		ok, bad, _ := w.Finish()
		require.False(t, ok)
		require.Equal(t, "evt_4", bad)
	})
	t.Run("other workspace", func(t *testing.T) {
		mixed := []audit.Checkpoint{s.Sign("ws_b", 99, "x", "evt_b", time.Now()), cps[1], cps[0]}
		got := audit.ForWorkspace(mixed, "ws_a")
		require.Equal(t, []int64{4, 8}, []int64{got[0].Seq, got[1].Seq})
	})
}
