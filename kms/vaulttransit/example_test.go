package vaulttransit_test

import (
	"context"
	"fmt"

	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
)

// Open a Transit key with AppRole credentials (normally from the process environment;
// here from a map) and wrap a data key bound to its workspace.
func Example() {
	vars := map[string]string{"VAULT_ROLE_ID": "…", "VAULT_SECRET_ID": "…", "VAULT_CACERT": "/etc/authpipe/vault-ca.pem"}
	kek, err := vaulttransit.Open("vault-transit://vault.internal:8200/transit/authpipe-credentials",
		vaulttransit.WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer kek.Close()
	dek := make([]byte, 32)
	w, err := kek.Wrap(context.Background(), dek, []byte("ws_1|credentials"))
	if err != nil {
		fmt.Println(err) // kms.ErrUnavailable: fail closed with 503
		return
	}
	fmt.Println(w.KEKID, w.KEKVersion)
}
