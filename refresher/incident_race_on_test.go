//go:build race

package refresher_test

// incidentConns is how many connections the incident test rotates (fewer under -race).
const incidentConns = 20
