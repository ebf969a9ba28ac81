package proxy

// Internals of the form-body refusal (edge.go) for edge_form_test.go.
var (
	FormHasAccessToken     = formHasAccessToken[string]
	FormBodyHasAccessToken = formHasAccessToken[[]byte]
)
