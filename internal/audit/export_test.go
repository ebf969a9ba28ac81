package audit_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

func exportOf(t *testing.T, s *audit.Signer, evs []audit.Event, start audit.ExportPoint, startCP *audit.Checkpoint) string {
	t.Helper()
	last := evs[len(evs)-1]
	var buf bytes.Buffer
	x, err := audit.NewExportWriter(&buf, audit.ExportHeader{WorkspaceID: "ws_x", ExportedAt: time.Now(), Start: start,
		Head: audit.ExportPoint{Seq: last.Seq, Hash: last.Hash, EventID: last.ID}, StartCheckpoint: startCP})
	require.NoError(t, err)
	for _, e := range evs {
		require.NoError(t, x.Event(e))
	}
	require.NoError(t, x.Close(s.Sign("ws_x", last.Seq, last.Hash, last.ID, time.Now())))
	return buf.String()
}

func exportChain(n int) []audit.Event {
	evs := make([]audit.Event, n)
	head, seq := audit.GenesisHash, int64(0)
	for i := range evs {
		evs[i] = audit.Event{ID: "evt_" + string(rune('a'+i)), WorkspaceID: "ws_x", At: time.Unix(1_800_000_000+int64(i), 0),
			Type: audit.TokenRead, Actor: "apk_1", ConnectionID: "conn_1", Outcome: audit.Success, Data: `{"count":3}`}
		audit.Link(&evs[i], seq, head)
		seq, head = evs[i].Seq, evs[i].Hash
	}
	return evs
}

func TestExportVerifiesOfflineAndRefusesEdits(t *testing.T) {
	seed := sha256.Sum256([]byte("export test"))
	s, err := audit.NewSigner(seed[:])
	require.NoError(t, err)
	other, _ := audit.NewSigner(make([]byte, 32))
	evs := exportChain(5)
	genesis := audit.ExportPoint{Hash: audit.GenesisHash}
	file := exportOf(t, s, evs, genesis, nil)

	res, err := audit.VerifyExport(strings.NewReader(file), s.KeyID())
	require.NoError(t, err)
	require.True(t, res.OK, res.Reason)
	require.Equal(t, 5, res.Events)

	_, err = audit.VerifyExport(strings.NewReader(file))
	require.Error(t, err, "no trusted key: the key inside the file proves nothing")
	res, err = audit.VerifyExport(strings.NewReader(file), other.KeyID())
	require.NoError(t, err)
	require.False(t, res.OK, "signed by a key that is not trusted")

	lines := strings.Split(strings.TrimSuffix(file, "\n"), "\n")
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }

	edited := append([]string(nil), lines...)
	edited[3] = strings.Replace(edited[3], `\"count\":3`, `\"count\":2`, 1)
	require.NotEqual(t, lines[3], edited[3])
	res, err = audit.VerifyExport(strings.NewReader(join(edited)), s.KeyID())
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, evs[2].ID, res.FirstBad)

	// The tail cut, with the header's head and the checkpoint kept: the chain ends early.
	cut := append(append([]string(nil), lines[:4]...), lines[len(lines)-1])
	res, err = audit.VerifyExport(strings.NewReader(join(cut)), s.KeyID())
	require.NoError(t, err)
	require.False(t, res.OK)

	// Cut short (no checkpoint line): an error, not a verdict.
	_, err = audit.VerifyExport(strings.NewReader(join(lines[:len(lines)-1])), s.KeyID())
	require.ErrorIs(t, err, audit.ErrExportFormat)

	// Re-chained after an edit (every hash recomputed, a fresh header), but the checkpoint
	// cannot be re-signed without the key.
	rechained := exportChain(5)
	rechained[2].Data = `{"count":2}`
	head, seq := audit.GenesisHash, int64(0)
	for i := range rechained {
		audit.Link(&rechained[i], seq, head)
		seq, head = rechained[i].Seq, rechained[i].Hash
	}
	forged := strings.Split(strings.TrimSuffix(exportOf(t, other, rechained, genesis, nil), "\n"), "\n")
	forged[len(forged)-1] = lines[len(lines)-1] // the genuine checkpoint of the old head
	res, err = audit.VerifyExport(strings.NewReader(join(forged)), s.KeyID())
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Contains(t, res.Reason, "another head")

	// A pruned chain starts at a signed anchor; one without (front cut) is refused.
	anchor := evs[1]
	cp := s.Sign("ws_x", anchor.Seq, anchor.Hash, anchor.ID, time.Now())
	pruned := exportOf(t, s, evs[2:], audit.ExportPoint{Seq: anchor.Seq, Hash: anchor.Hash, EventID: anchor.ID}, &cp)
	res, err = audit.VerifyExport(strings.NewReader(pruned), s.KeyID())
	require.NoError(t, err)
	require.True(t, res.OK, res.Reason)
	frontCut := exportOf(t, s, evs[2:], audit.ExportPoint{Seq: anchor.Seq, Hash: anchor.Hash, EventID: anchor.ID}, nil)
	res, err = audit.VerifyExport(strings.NewReader(frontCut), s.KeyID())
	require.NoError(t, err)
	require.False(t, res.OK)
}
