package pkcs11_test

import (
	"context"
	"fmt"
	"log"

	"github.com/authpipe/authpipe-proxy/kms/pkcs11"
)

// An operator creates the KEK once, on the HSM, then the proxy opens it by URI. The PIN
// comes from a file (a mounted secret), never from the URI itself.
func Example() {
	ctx := context.Background()
	uri := "pkcs11:token=authpipe;object=authpipe-kek" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin"

	if err := pkcs11.GenerateKey(ctx, uri); err != nil {
		log.Fatal(err)
	}
	kek, err := pkcs11.Open(ctx, uri, pkcs11.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer kek.Close()

	dek := make([]byte, 32) // from crypto/rand in the vault
	wrapped, err := kek.Wrap(ctx, dek, []byte("ws_1|credentials"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wrapped.KEKID, len(wrapped.Ciphertext)) // pkcs11:authpipe/authpipe-kek 60
}

func ExampleParseURI() {
	u, err := pkcs11.ParseURI("pkcs11:token=authpipe;object=kek;id=%01" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=5678")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.KEKID())
	fmt.Println(u) // the PIN is never printed
	// Output:
	// pkcs11:authpipe/kek/01
	// pkcs11:token=authpipe;object=kek;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so
}
