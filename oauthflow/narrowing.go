package oauthflow

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Narrowing limits a GitHub App installation token to some repositories and permissions
// (least privilege per read): GitHub's "repositories" and "permissions" body parameters of
// POST /app/installations/{installation_id}/access_tokens. GitHub refuses (422) a
// repository the installation cannot reach or a permission above the installation's; this
// type only keeps requests well-formed.
type Narrowing struct {
	// Repositories are repository names (without the owner), sorted, each once; nil: all
	// the installation's repositories.
	Repositories []string
	// Permissions map a permission name (contents, issues, metadata, ...) to read, write
	// or admin; nil: the installation's permissions.
	Permissions map[string]string
}

// Limits of a narrowing (GitHub: "Up to 500 repositories"; its permissions number a few
// dozen).
const (
	MaxNarrowRepositories = 500
	MaxNarrowPermissions  = 50
	maxRepositoryName     = 100
	maxPermissionName     = 64
)

// ParseNarrowing reads the token endpoint's narrowing parameters: repositories (a comma
// separated list of names, [A-Za-z0-9._-]{1,100}, "." and ".." excluded, at most 500) and
// permissions (a comma separated list of name:access, name [a-z_]{1,64}, access read,
// write or admin, each name once, at most 50). A parameter that is present must not be
// empty. It returns nil when neither is present, and a 400 invalid_request problem naming
// the parameter when one is malformed.
func ParseNarrowing(repositories string, hasRepositories bool, permissions string, hasPermissions bool) (*Narrowing, error) {
	if !hasRepositories && !hasPermissions {
		return nil, nil
	}
	n := &Narrowing{}
	if hasRepositories {
		if len(repositories) > MaxNarrowRepositories*(maxRepositoryName+1) {
			return nil, badNarrowing("repositories", "at most 500 names")
		}
		for name := range strings.SplitSeq(repositories, ",") {
			if !validRepositoryName(name) {
				return nil, badNarrowing("repositories", "a comma-separated list of repository names ([A-Za-z0-9._-], 1 to 100 characters)")
			}
			n.Repositories = append(n.Repositories, name)
		}
		slices.Sort(n.Repositories)
		if len(slices.Compact(slices.Clone(n.Repositories))) != len(n.Repositories) {
			return nil, badNarrowing("repositories", "a repository is named twice")
		}
		if len(n.Repositories) > MaxNarrowRepositories {
			return nil, badNarrowing("repositories", "at most 500 names")
		}
	}
	if hasPermissions {
		if len(permissions) > MaxNarrowPermissions*(maxPermissionName+7) {
			return nil, badNarrowing("permissions", "at most 50 permissions")
		}
		n.Permissions = map[string]string{}
		for item := range strings.SplitSeq(permissions, ",") {
			name, access, ok := strings.Cut(item, ":")
			if !ok || !validPermissionName(name) || !validAccess(access) {
				return nil, badNarrowing("permissions", "a comma-separated list of name:access (name [a-z_], access read, write or admin)")
			}
			if _, dup := n.Permissions[name]; dup {
				return nil, badNarrowing("permissions", "a permission is named twice")
			}
			n.Permissions[name] = access
		}
		if len(n.Permissions) > MaxNarrowPermissions {
			return nil, badNarrowing("permissions", "at most 50 permissions")
		}
	}
	return n, nil
}

func badNarrowing(field, detail string) error {
	return problem.ErrInvalidRequest.WithField(field, detail)
}

// Validate checks a narrowing built by other means than ParseNarrowing. A nil Narrowing
// is valid (no narrowing).
func (n *Narrowing) Validate() error {
	if n == nil {
		return nil
	}
	if len(n.Repositories) > MaxNarrowRepositories {
		return badNarrowing("repositories", "at most 500 names")
	}
	for _, r := range n.Repositories {
		if !validRepositoryName(r) {
			return badNarrowing("repositories", "invalid repository name")
		}
	}
	if len(n.Permissions) > MaxNarrowPermissions {
		return badNarrowing("permissions", "at most 50 permissions")
	}
	for name, access := range n.Permissions {
		if !validPermissionName(name) || !validAccess(access) {
			return badNarrowing("permissions", "invalid permission")
		}
	}
	return nil
}

// Empty reports whether n narrows nothing.
func (n *Narrowing) Empty() bool {
	return n == nil || len(n.Repositories) == 0 && len(n.Permissions) == 0
}

// PermissionList is the narrowing's permissions as sorted "name:access" strings, the form
// of token scopes and of audit data.
func (n *Narrowing) PermissionList() []string {
	if n == nil {
		return nil
	}
	out := make([]string, 0, len(n.Permissions))
	for _, name := range slices.Sorted(maps.Keys(n.Permissions)) {
		out = append(out, name+":"+n.Permissions[name])
	}
	return out
}

// requestBody is GitHub's JSON body for the narrowing.
func (n *Narrowing) requestBody() []byte {
	body := map[string]any{}
	if len(n.Repositories) > 0 {
		body["repositories"] = n.Repositories
	}
	if len(n.Permissions) > 0 {
		body["permissions"] = n.Permissions
	}
	b, _ := json.Marshal(body)
	return b
}

// validRepositoryName: [A-Za-z0-9._-]{1,100}, not "." or "..".
func validRepositoryName(s string) bool {
	if s == "" || len(s) > maxRepositoryName || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validPermissionName: [a-z_]{1,64}.
func validPermissionName(s string) bool {
	if s == "" || len(s) > maxPermissionName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

func validAccess(s string) bool { return s == "read" || s == "write" || s == "admin" }
