//go:build race

package vault_test

// rwRace: the race detector instruments the pure-Go SQLite driver and pgx, which makes a
// rotation about 15x slower; TestRotationUnderLoad shrinks to stay within a minute.
const rwRace = true
