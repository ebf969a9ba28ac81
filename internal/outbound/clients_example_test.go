package outbound_test

import (
	"fmt"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// One Clients per base policy; each provider takes the client for its TLS floor and pins.
func ExampleClients() {
	clients, err := outbound.NewClients(outbound.Policy{}) // system roots, TLS 1.3
	if err != nil {
		panic(err)
	}
	pins := []string{
		"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // current key
		"sha256/BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=", // next key, for rotation
	}
	pinned, err := clients.For("", pins)
	if err != nil {
		panic(err)
	}
	same, _ := clients.For("1.3", []string{pins[1], pins[0]})
	fmt.Println(pinned == same)
	_, err = clients.For("", []string{"sha256/not-a-pin"})
	fmt.Println(err)
	// Output:
	// true
	// tlsutil: pin 1 is not sha256/<base64 of 32 bytes>
}
