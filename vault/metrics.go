package vault

// CachedDEKs returns how many unwrapped DEKs the keyring's cache holds now (for the
// authpipe_dek_cache_entries gauge). It takes the cache's read lock only.
func (k *Keyring) CachedDEKs() int { return k.cache.len() }
