package storetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Cluster is a throwaway PostgreSQL cluster of its own (initdb, pg_ctl) on a free loopback
// port, for the tests that need to configure, stop or restart the server itself: TLS with
// client certificates, restarts under load. It is stopped and removed when the test ends.
// initdb refuses to run as root, so as root the cluster runs as the postgres OS user.
type Cluster struct {
	Port int
	Base string // a directory of the test's: the socket, the server log, anything else
	Data string // the data directory

	t   testing.TB
	bin string
}

// ClusterConfig configures StartCluster.
type ClusterConfig struct {
	// Conf is appended to postgresql.conf (listen address, port, socket directory and
	// fsync=off are set already).
	Conf string
	// HBA is the whole pg_hba.conf; default: trust on 127.0.0.1.
	HBA string
	// Prepare writes files into the data directory before the first start (certificates).
	Prepare func(data string)
}

// PostgresBinDir finds initdb and pg_ctl: AUTHPIPE_TEST_PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin (Debian; scripts/deps/40-postgres-tls.sh). Their absence fails
// the test on CI and skips it, loudly, elsewhere.
func PostgresBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("AUTHPIPE_TEST_PG_BINDIR"); d != "" {
		return d
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(found, func(i, j int) bool { return pgMajor(found[i]) < pgMajor(found[j]) })
	if len(found) == 0 {
		RequireOrSkip(t, "PostgreSQL server binaries (initdb, pg_ctl; scripts/deps/40-postgres-tls.sh)",
			fmt.Errorf("not found (install postgresql or set AUTHPIPE_TEST_PG_BINDIR)"))
	}
	return filepath.Dir(found[len(found)-1])
}

func pgMajor(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// StartCluster initialises and starts a cluster.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: PostgresBinDir(t)}
	base, err := os.MkdirTemp("", "authpipe-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.Base, c.Data = base, filepath.Join(base, "data")
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	asPostgres := os.Geteuid() == 0
	uid, gid := -1, -1
	if asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			RequireOrSkip(t, "the postgres OS user (initdb refuses root)", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.run("initdb", "-D", c.Data, "-U", "postgres", "--auth=reject", "--no-sync", "-E", "UTF8")
	c.Port = freePort(t)
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n%s\n",
		c.Port, base, cfg.Conf)
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	hba := cfg.HBA
	if hba == "" {
		hba = "host all all 127.0.0.1/32 trust\n"
	}
	if err := os.WriteFile(filepath.Join(c.Data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg.Prepare != nil {
		cfg.Prepare(c.Data)
	}
	if asPostgres { // the server's files must belong to its user (a key 0600)
		err := filepath.Walk(c.Data, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.Start()
	t.Cleanup(func() { _ = c.pgctl("-D", c.Data, "-m", "immediate", "-w", "stop") })
	return c
}

// Start starts the (stopped) server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.Data, "-l", filepath.Join(c.Base, "server.log"), "-w", "-t", "30", "start")
}

// Stop stops the server with pg_ctl's shutdown mode: "fast" (sessions are terminated,
// a clean shutdown) or "immediate" (no shutdown checkpoint: crash recovery at the next
// start).
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.Data, "-m", mode, "-w", "-t", "30", "stop")
}

// URL is the URL of database db as user postgres, with extra query parameters.
func (c *Cluster) URL(db, query string) string {
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s", c.Port, db)
	if query != "" {
		u += "?" + query
	}
	return u
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.command(name, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v: %s", name, err, out)
	}
}

func (c *Cluster) pgctl(args ...string) error { return c.command("pg_ctl", args...).Run() }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
	}
	return exec.Command(filepath.Join(c.bin, name), args...)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
