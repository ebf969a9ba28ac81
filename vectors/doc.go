// Package vectors generates the test vectors of docs/formats.md: for every byte format an
// auditor may check — the sealed-field envelope and its associated data, the wrapped DEK,
// the audit chain, checkpoints, webhook signatures, OAuth states, connect session ids,
// browser bindings and API-key hashes — the inputs, the expected bytes, and invalid cases
// with the failure a verifier must report.
//
// Generation is deterministic (fixed keys, nonces, randomness and clocks), so the files in
// testdata/vectors are reproducible: `go run ./vectors/gen` rewrites them, and the package's
// test fails when the code that produces or checks a format and the committed vectors
// disagree. tools/verify_vectors.py is a second, independent verifier (Python standard
// library only) that runs the same files.
package vectors
