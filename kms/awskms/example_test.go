package awskms_test

import (
	"fmt"

	"github.com/authpipe/authpipe-proxy/kms/awskms"
)

// An ARN carries its region; a key id or an alias takes ?region= or the SDK default
// (AWS_REGION). The backend is opened with awskms.Open(ctx, uri, awskms.Options{}), or
// through kms/backends.Open with the same URI.
func ExampleParseURI() {
	cfg, err := awskms.ParseURI("awskms://arn:aws:kms:eu-west-1:111122223333:alias/authpipe/credentials")
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.Key)
	fmt.Println(cfg.Region)
	// Output:
	// arn:aws:kms:eu-west-1:111122223333:alias/authpipe/credentials
	// eu-west-1
}
