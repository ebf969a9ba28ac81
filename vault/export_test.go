package vault

// CachedKey returns the cached key slice of a DEK itself (not a copy), or nil, so tests
// can watch it being zeroed after it leaves the cache.
func CachedKey(k *Keyring, id string) []byte {
	k.cache.mu.RLock()
	defer k.cache.mu.RUnlock()
	if e := k.cache.byID[id]; e != nil {
		return e.key
	}
	return nil
}

// CacheLen is the number of cached DEKs, expired ones included until they are swept.
func CacheLen(k *Keyring) int { return k.cache.len() }

// ActiveDEKID is the cached active DEK id of a workspace, or "".
func ActiveDEKID(k *Keyring, workspaceID string) string {
	k.cache.mu.RLock()
	defer k.cache.mu.RUnlock()
	if e := k.cache.active[activeKey{workspaceID, k.purpose}]; e != nil {
		return e.rec.ID
	}
	return ""
}
