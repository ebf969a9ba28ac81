package vault_test

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault"
)

// A keyring seals one field of one row for its binding; only the same binding opens it.
func Example() {
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kek, err := local.New(key) // production: kms/backends.Open(AUTHPIPE_KEK_URI)
	if err != nil {
		panic(err)
	}
	ring, err := kms.NewRing(kek)
	if err != nil {
		panic(err)
	}
	// The DEK store is vault/store in the proxy; here the in-memory one of the tests.
	kr, err := vault.NewKeyring(vault.PurposeCredentials, ring, newMemStore())
	if err != nil {
		panic(err)
	}

	b := vault.AccessTokenBinding("ws_1", "conn_1", vault.NewOrigins("https://api.github.com/"))
	sealed, err := kr.Seal(ctx, b, vault.NewSecret("gho_16C7e42F292c6912E7710c838347Ae178B4a"))
	if err != nil {
		panic(err)
	}
	token, err := kr.Open(ctx, b, sealed)
	if err != nil {
		panic(err)
	}
	fmt.Println(token, token.Prefix(4), token.Len())

	_, err = kr.Open(ctx, vault.AccessTokenBinding("ws_1", "conn_2", vault.NewOrigins("https://api.github.com/")), sealed)
	fmt.Println(err)
	// Output:
	// [REDACTED] gho_ 40
	// vault: decrypt failed
}

// Secrets decode from request bodies but never print, log or marshal.
func ExampleSecret() {
	var body struct {
		APIKey vault.Secret `json:"api_key"`
	}
	_ = body.APIKey.UnmarshalJSON([]byte(`"sk_live_51HxyzABCDEF"`))
	fmt.Printf("%v %+v %q\n", body.APIKey, body, body.APIKey)
	fmt.Println(body.APIKey.Prefix(8))
	body.APIKey.Wipe()
	fmt.Println(body.APIKey.IsZero())
	// Output:
	// [REDACTED] {APIKey:[REDACTED]} [REDACTED]
	// sk_live_
	// true
}
