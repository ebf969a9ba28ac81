package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/pkcs11"
)

// softhsmModule is where Debian's softhsm2 package puts the PKCS#11 library
// (scripts/deps/20-softhsm.sh installs it); AUTHPIPE_TEST_SOFTHSM_MODULE overrides.
const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMKEKs creates a SoftHSM2 token in dir (SOFTHSM2_CONF points there for this
// process) and two AES keys on it, generated inside the token, and opens them. When
// SoftHSM2 is not installed (or this is a build without cgo) it returns why, and no error.
func softHSMKEKs(ctx context.Context, dir string) (oldK, newK kms.KEK, why string, err error) {
	module := os.Getenv("AUTHPIPE_TEST_SOFTHSM_MODULE")
	if module == "" {
		module = softhsmModule
	}
	if _, err := os.Stat(module); err != nil {
		return nil, nil, "no SoftHSM2 module at " + module + " (apt-get install softhsm2)", nil
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return nil, nil, "softhsm2-util not found (apt-get install softhsm2)", nil
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return nil, nil, "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, nil, "", err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, nil, "", err
	}
	const label, soPIN, pin = "authpipe-bench", "1234", "5678"
	if out, err := exec.CommandContext(ctx, util, "--init-token", "--free", "--label", label,
		"--so-pin", soPIN, "--pin", pin).CombinedOutput(); err != nil {
		return nil, nil, "", fmt.Errorf("softhsm2-util --init-token: %w: %s", err, out)
	}
	pinFile := filepath.Join(dir, "user.pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		return nil, nil, "", err
	}
	var keks []kms.KEK
	for _, object := range []string{"kek-old", "kek-new"} {
		uri := pkcs11.URI{Token: label, Object: object, ModulePath: module, PinFile: pinFile}.String()
		if err := pkcs11.GenerateKey(ctx, uri); err != nil {
			if len(keks) > 0 {
				_ = keks[0].Close()
			}
			return nil, nil, "", err
		}
		k, err := pkcs11.Open(ctx, uri, pkcs11.Options{})
		if err != nil {
			if len(keks) > 0 {
				_ = keks[0].Close()
			}
			return nil, nil, "", err
		}
		keks = append(keks, k)
	}
	return keks[0], keks[1], "", nil
}
