// Package archtest keeps the package graph the way ../shared/DESIGN.md draws it:
//
//	cmd → internal/app → proxy → {admin, providers, refresher} → {oauthflow, controlplane}
//	    → vault/store → vault → internal/audit → kms, with leaf helpers under internal/ below all.
//
// It reads `go list` output (non-test imports) and fails on any edge the design does not
// allow, naming the edge and the rule.
package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/authpipe/authpipe-proxy"

// rank orders the domain packages: a package may import only packages of a lower rank
// (or of its own subtree, or leaves). Keys are module-relative paths; a key covers its
// subtree. A package that matches no key fails the test until it is placed here.
var rank = map[string]int{
	"sdk":            0, // the client SDKs: separate modules, on nothing of the server's (forbidden below)
	"kms":            10,
	"internal/audit": 15,
	"vault":          20,
	"vault/store":    30,
	"oauthflow":      40,
	"controlplane":   40,
	"refresher":      50,
	"providers":      50,
	"admin":          50,
	"inbound":        55, // provider webhooks: secrets, verification, relay (uses providers and refresher's envelope)
	"proxy":          60,
	"internal/app":   70,
	"cmd":            80,
	"bench":          80, // the benchmark harness is a command, like cmd/
	"charts":         80, // chart tooling commands
	"vectors":        65, // test-vector generation (docs/formats.md): it uses every format's code
}

// leaves are the helpers under internal/ that every layer may use: they import no
// domain package, only other leaves (and the standard library and third-party modules).
func isLeaf(rel string) bool {
	if !strings.HasPrefix(rel, "internal/") {
		return false
	}
	top := strings.Join(strings.SplitN(rel, "/", 3)[:2], "/")
	return top != "internal/app" && top != "internal/audit" && top != "internal/archtest"
}

// forbidden are edges the design names explicitly (an importer prefix, an imported
// prefix, and why), checked in addition to the ranks.
var forbidden = []struct{ from, to, why string }{
	{"cmd", module + "/proxy", "the CLI calls admin or internal/app, never the HTTP server"},
	{"cmd", module + "/vault/store", "the CLI reaches the database through admin or internal/app"},
	{"refresher", "golang.org/x/oauth2", "every token-endpoint call lives in oauthflow"},
	{"refresher", module + "/controlplane", "the refresher declares the event sink it needs; internal/app adapts it"},
	{"controlplane", module + "/vault/store", "the control-plane link cannot name the credential store"},
	{"proxy", "gorm.io", "the HTTP layer never reaches into gorm"},
	{"sdk", module + "/", "a client SDK is its own module and never depends on the server's packages"},
}

// onlyFrom are imports that one package (subtree) alone may make.
var onlyFrom = []struct{ to, owner, why string }{
	{"golang.org/x/oauth2", "oauthflow", "oauthflow is the only package that talks to token endpoints"},
	{module + "/internal/app", "", "only commands (package main) build the application"},
}

type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
}

func under(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

func rel(p string) (string, bool) {
	if p == module {
		return "", true
	}
	r, ok := strings.CutPrefix(p, module+"/")
	return r, ok
}

func rankOf(r string) (int, string, bool) {
	best, key := -1, ""
	for k, v := range rank {
		if under(r, k) && len(k) > len(key) {
			best, key = v, k
		}
	}
	return best, key, key != ""
}

// scaffolding is a test-support package (kmstest, storetest, oauthtest, cptest, ...):
// fakes and fixtures that may import whatever they stand in for.
func scaffolding(r string) bool {
	for _, el := range strings.Split(r, "/") {
		if strings.HasSuffix(el, "test") {
			return true
		}
	}
	return false
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to list packages with: %v", err)
		}
	}
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Name,Imports", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// violations returns every edge of pkgs the design does not allow.
func violations(pkgs []pkg) []string {
	var bad []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok || from == "" || scaffolding(from) || under(from, "internal/archtest") {
			continue
		}
		fromRank, fromKey, placed := rankOf(from)
		leaf := isLeaf(from)
		if !placed && !leaf {
			bad = append(bad, from+": not placed in the design's layers (add it to archtest's rank map)")
			continue
		}
		for _, imp := range p.Imports {
			for _, f := range forbidden {
				if under(from, f.from) && under(imp, f.to) {
					bad = append(bad, from+" → "+imp+": "+f.why)
				}
			}
			for _, o := range onlyFrom {
				if !under(imp, o.to) {
					continue
				}
				// The client SDKs (separate modules) talk to the proxy, not to token endpoints.
				if under(from, "sdk") {
					continue
				}
				if o.owner == "" && p.Name != "main" || o.owner != "" && !under(from, o.owner) {
					bad = append(bad, from+" → "+imp+": "+o.why)
				}
			}
			to, ours := rel(imp)
			if !ours || scaffolding(to) && !leaf {
				continue
			}
			switch toRank, toKey, toPlaced := rankOf(to); {
			case leaf && !isLeaf(to):
				bad = append(bad, from+" → "+to+": a leaf under internal/ imports no domain package")
			case leaf, isLeaf(to):
			case !toPlaced:
				// reported where it is the importer
			case toKey == fromKey, under(to, fromKey):
				// within one package's own subtree
			case toRank >= fromRank:
				bad = append(bad, from+" → "+to+": imports upward or sideways in the design's layers")
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestImportGraphFollowsTheDesign(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, v := range violations(listPackages(t)) {
		t.Error(v)
	}
}

// TestRulesCatchBadEdges shows the checker can fail: each edge below breaks a rule.
func TestRulesCatchBadEdges(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	for name, p := range map[string]pkg{
		"cmd imports proxy":            {ImportPath: m("cmd/authpipe-proxy"), Name: "main", Imports: []string{m("proxy")}},
		"cmd imports the store":        {ImportPath: m("cmd/authpipe-proxy"), Name: "main", Imports: []string{m("vault/store")}},
		"refresher imports x/oauth2":   {ImportPath: m("refresher"), Name: "refresher", Imports: []string{"golang.org/x/oauth2"}},
		"refresher imports cp":         {ImportPath: m("refresher"), Name: "refresher", Imports: []string{m("controlplane")}},
		"leaf imports vault":           {ImportPath: m("internal/config"), Name: "config", Imports: []string{m("vault")}},
		"leaf imports kms":             {ImportPath: m("internal/metrics"), Name: "metrics", Imports: []string{m("kms")}},
		"library imports app":          {ImportPath: m("proxy"), Name: "proxy", Imports: []string{m("internal/app")}},
		"vault imports oauthflow":      {ImportPath: m("vault"), Name: "vault", Imports: []string{m("oauthflow")}},
		"sideways refresher→admin":     {ImportPath: m("refresher"), Name: "refresher", Imports: []string{m("admin")}},
		"cp imports the store":         {ImportPath: m("controlplane"), Name: "controlplane", Imports: []string{m("vault/store")}},
		"unplaced package":             {ImportPath: m("newthing"), Name: "newthing"},
		"proxy uses x/oauth2 directly": {ImportPath: m("proxy"), Name: "proxy", Imports: []string{"golang.org/x/oauth2"}},
		"the Go client imports vault":  {ImportPath: m("sdk/go"), Name: "authpipe", Imports: []string{m("vault")}},
	} {
		if v := violations([]pkg{p}); len(v) == 0 {
			t.Errorf("%s: no violation reported", name)
		}
	}
	ok := []pkg{
		{ImportPath: m("cmd/authpipe-proxy"), Name: "main", Imports: []string{m("internal/app"), m("admin")}},
		{ImportPath: m("proxy"), Name: "proxy", Imports: []string{m("admin"), m("providers"), m("refresher"), m("internal/problem")}},
		{ImportPath: m("kms/backends"), Name: "backends", Imports: []string{m("kms/awskms"), m("kms")}},
		{ImportPath: m("internal/tlsutil"), Name: "tlsutil", Imports: []string{m("internal/ids")}},
		{ImportPath: m("sdk/go"), Name: "authpipe", Imports: []string{"golang.org/x/oauth2", "net/http"}},
		{ImportPath: m("proxy"), Name: "proxy_test", Imports: []string{m("sdk/go")}},
	}
	if v := violations(ok); len(v) != 0 {
		t.Errorf("allowed edges reported: %v", v)
	}
}
