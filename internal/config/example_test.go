package config_test

import (
	"errors"
	"fmt"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

func ExampleLoad() {
	environ := map[string]string{
		"AUTHPIPE_PROFILE":      "production",
		"AUTHPIPE_DATABASE_URL": "sqlite:///var/lib/authpipe.db",
		"AUTHPIPE_RETENTION":    "800h",
	}
	lookupEnv := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }

	_, err := config.Load([]string{"--public-url", "https://proxy.example.com"}, lookupEnv)
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		for _, is := range verr.Issues {
			fmt.Println(is.Var)
		}
		// main prints err and exits with status 2.
	}
	// Output:
	// AUTHPIPE_DATABASE_URL
	// AUTHPIPE_KEK_URI
	// AUTHPIPE_CLIENT_SECRET_KEK_URI
	// AUTHPIPE_RETENTION
}
