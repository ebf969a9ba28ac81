//go:build !race

package vault_test

const rwRace = false
