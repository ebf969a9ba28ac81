package vault

import (
	"context"
	"errors"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Purpose separates the two keyrings of a workspace. Each purpose has its own KEK, its own
// DEKs and its own tables, so a leak of one store does not open the other.
type Purpose string

const (
	// PurposeCredentials seals end users' tokens, API keys and webhook secrets.
	PurposeCredentials Purpose = "credentials"
	// PurposeClientSecrets seals OAuth client secrets of provider configurations.
	PurposeClientSecrets Purpose = "client_secrets"
)

// DEKRecord is a data-encryption key as it is stored: only wrapped, with the id and
// version of the KEK that wrapped it.
type DEKRecord struct {
	ID          string // opaque, at most 64 bytes; appears in every envelope it sealed
	WorkspaceID string
	Purpose     Purpose
	KEKID       string
	KEKVersion  string
	Wrapped     []byte
	CreatedAt   time.Time
}

// DEKStore is what a Keyring needs from persistence. vault/store implements it.
type DEKStore interface {
	// ActiveDEK returns the DEK that seals new values for the workspace and purpose
	// (the newest), or ErrNotFound.
	ActiveDEK(ctx context.Context, workspaceID string, purpose Purpose) (DEKRecord, error)
	// DEK returns the DEK with this id, or ErrNotFound.
	DEK(ctx context.Context, id string) (DEKRecord, error)
	// InsertDEK stores a new DEK. When the workspace already has a DEK for that purpose
	// (another request or replica won the race) it returns ErrDEKExists and stores nothing.
	InsertDEK(ctx context.Context, rec DEKRecord) error
}

var (
	// ErrNotFound: no such row (404 not_found).
	ErrNotFound = problem.Sentinel(problem.ErrNotFound, "vault: not found")
	// ErrDEKExists: a DEK for this workspace and purpose already exists.
	ErrDEKExists = errors.New("vault: workspace already has a DEK for this purpose")
)
