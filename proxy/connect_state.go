package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// The OAuth state of a connect flow authenticates itself (oauthflow/state.go): 256 random
// bits and the kid of the state key that MAC'd them. The callback checks the MAC before
// anything else, so a forged, truncated or tampered state, or one naming a key this
// replica does not hold, is refused with 400 invalid_state without a database query; only
// a state this deployment made is looked up, by its SHA-256, and the store's single-use
// consume stays the authority on whether it is still good.
//
// The state key set is the browser binding's (admin.PurposeState): a flow started
// before a rotation completes after it, for as long as the old key is verify-only (the
// flow lifetime and a margin). Verification looks the kid up only in the loaded set
// (KeySet.Loaded), never in the database, so a new key must be known to every replica
// before it signs a state: states are MAC'd with the newest key older than
// stateKeyPublishDelay (KeySet.Published), twice the interval at which each replica
// re-reads its key sets. The browser binding, checked after the lookup, is still made with
// the active key at once.

// stateKeyPublishDelay is how long a new state key waits before it MACs states: every
// replica re-reads the set within admin.KeySetRefresh, and the rest is a margin for clock skew.
const stateKeyPublishDelay = 2 * admin.KeySetRefresh

// legacyStateWindow is how long after start this replica still accepts the states of
// flows started before states carried a MAC (43 base64url characters, looked up as
// before): a flow that was under way during the upgrade completes. After it, such a state
// is refused like any other malformed one.
const legacyStateWindow = admin.StateKeyRetireIn

// flowKeys makes and checks the connect flows' MAC'd values (oauthflow.FlowKeys) under
// the state key set: states (this file), session ids (connect_session.go) and browser
// bindings (connect_binding.go).
type flowKeys struct {
	state *admin.KeySet // admin.PurposeState
	// hashKeys are the API-key hashing keys, from which browser bindings were derived
	// before the state key set existed (connect_binding.go).
	hashKeys *admin.KeySet
	now      func() time.Time
}

var _ oauthflow.FlowKeys = (*flowKeys)(nil)

// inLegacyWindow reports whether this replica still accepts the unMAC'd states and
// session ids of the version before (legacyStateWindow after it started).
func (fk *flowKeys) inLegacyWindow() bool { return fk.now().Sub(fk.state.Born()) < legacyStateWindow }

// NewState makes a flow's state and its SHA-256 (what the store keeps).
func (fk *flowKeys) NewState(ctx context.Context) (string, []byte, error) {
	k, err := fk.state.Published(ctx, stateKeyPublishDelay)
	if err != nil {
		return "", nil, fmt.Errorf("proxy: state key: %w", err)
	}
	return oauthflow.NewState(k.KID(), k.Material())
}

// CheckState reports whether a callback's state may be looked up: its MAC holds under the
// loaded state key its kid names (that key and no other; hmac.Equal in
// oauthflow.VerifyState). It never reads the database because of the state; an error
// means the state key set could not be loaded at all.
func (fk *flowKeys) CheckState(ctx context.Context, state string) (bool, error) {
	if oauthflow.IsLegacyState(state) {
		return fk.inLegacyWindow(), nil
	}
	kid, err := oauthflow.StateKeyID(state)
	if err != nil {
		return false, nil
	}
	k, err := fk.state.Loaded(ctx, kid)
	if err != nil {
		return false, fmt.Errorf("proxy: state key: %w", err)
	}
	if k == nil { // retired, unknown or never made: no other key is tried
		return false, nil
	}
	return oauthflow.VerifyState(k.Material(), state), nil
}
