// Package pgtest gives tests a real PostgreSQL: the server named by
// STACYVM_TEST_POSTGRES_DSN, or else a throwaway one it starts itself
// (initdb + postgres from Debian's postgresql package, unix socket only,
// in a temporary directory, gone when the tests end). Each test gets its
// own database, created with a random name and dropped afterwards.
//
// Without a Postgres a test skips with the reason, except under CI=true,
// where it fails: CI must never pass by skipping the store contract.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/store/postgres"
)

// EnvDSN names the variable with an external server's DSN. Its role must
// be allowed to CREATE DATABASE.
const EnvDSN = "STACYVM_TEST_POSTGRES_DSN"

// Server is a Postgres for tests, started on first use. It is safe for
// concurrent use; Close stops a server it started.
type Server struct {
	once   sync.Once
	dsn    string // admin DSN: database postgres
	binDir string // the server's programs, also pg_dump and pg_restore
	err    error
	proc   *exec.Cmd
	exited chan struct{}
	dir    string
	pwOnce sync.Once
	pwErr  error
}

// New returns a Server that starts when a test first asks for a database.
// Call Close when the tests are done (TestMain, or use Start).
func New() *Server { return &Server{} }

// Start returns a Server that is closed when t ends.
func Start(t testing.TB) *Server {
	s := New()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: stop postgres: %v", err)
		}
	})
	return s
}

// Database creates an empty database for t, dropped when t ends, and
// returns its DSN. Without a Postgres, t is skipped (failed under CI=true).
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	admin := s.AdminDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "stacyvm_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exec1(ctx, admin, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := postgres.DropDatabase(ctx, admin, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := postgres.WithDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// AdminDSN returns the DSN of the server's maintenance database (for
// creating and dropping databases). Without a Postgres, t is skipped
// (failed under CI=true).
func (s *Server) AdminDSN(t testing.TB) string {
	t.Helper()
	s.once.Do(s.start)
	if s.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: no PostgreSQL (CI=true makes this a failure): %v", s.err)
		}
		t.Skipf("pgtest: no PostgreSQL, skipping (install Debian's postgresql or set %s): %v", EnvDSN, s.err)
	}
	return s.dsn
}

// PasswordRole is a superuser that must authenticate with
// Password; WithPassword connects as it.
const (
	PasswordRole = "stacyvm_pw"
	// Password has every character a DSN or a pgpass file must escape.
	Password = `p@ss:w\rd 'q' "x"`
)

// WithPassword returns dsn (from Database) connecting as PasswordRole with
// Password, creating the role on first use. It skips t on an external
// server, where the role's pg_hba.conf line cannot be set.
func (s *Server) WithPassword(t testing.TB, dsn string) string {
	t.Helper()
	admin := s.AdminDSN(t)
	if s.proc == nil {
		t.Skip("pgtest: password logins need the throwaway server, not " + EnvDSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.pwOnce.Do(func() {
		lit := "'" + strings.ReplaceAll(Password, "'", "''") + "'"
		s.pwErr = exec1(ctx, admin, `CREATE ROLE `+PasswordRole+` LOGIN SUPERUSER PASSWORD `+lit)
	})
	if s.pwErr != nil {
		t.Fatalf("pgtest: create role %s: %v", PasswordRole, s.pwErr)
	}
	out, err := postgres.WithParams(dsn, map[string]string{"user": PasswordRole, "password": Password})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return out
}

// BinDir is the directory of the server's programs ("" for an external
// server: use PATH), where pg_dump and pg_restore of the same version are.
func (s *Server) BinDir() string { return s.binDir }

// Close stops the server if this Server started it and removes its files.
func (s *Server) Close() error {
	s.once.Do(func() { s.err = errors.New("closed") }) // a Server never used never starts
	return s.stop()
}

func (s *Server) stop() error {
	if s.proc == nil {
		return nil
	}
	// SIGINT is Postgres' fast shutdown: roll back, disconnect, stop.
	_ = s.proc.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.proc.Process.Kill()
		<-s.exited
	}
	s.proc = nil
	return os.RemoveAll(s.dir)
}

func (s *Server) start() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		s.dsn = dsn
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec1(ctx, dsn, `SELECT 1`); err != nil {
			s.err = fmt.Errorf("%s: %w", EnvDSN, err)
		}
		return
	}
	s.err = s.startLocal()
}

// binDir finds initdb and postgres: PATH's initdb when it sits beside a
// postgres binary, else the newest /usr/lib/postgresql/*/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if d := filepath.Dir(real); fileExists(filepath.Join(d, "postgres")) {
				return d, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres not found (apt-get install postgresql)")
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startLocal runs initdb and postgres in a fresh temporary directory,
// listening on a unix socket only. initdb refuses to run as root, so as
// root both run as the postgres user; postgres gets SIGKILL if this test
// process dies without Close.
func (s *Server) startLocal() error {
	bin, err := binDir()
	if err != nil {
		return err
	}
	s.binDir = bin
	dir, err := os.MkdirTemp("", "stacyvm-pg-")
	if err != nil {
		return err
	}
	s.dir = dir
	var cred *syscall.Credential
	owner := "postgres"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user to run initdb: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return err
		}
	} else if u, err := user.Current(); err == nil {
		owner = u.Username
	}
	data, sock := filepath.Join(dir, "data"), dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", owner,
		"-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("initdb: %v: %s", err, lastLines(string(out), 5))
	}
	// PasswordRole must log in with its password (scram), every other
	// role is trusted on the socket; pg_hba.conf takes the first match.
	hba := filepath.Join(data, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	if err := os.WriteFile(hba, append([]byte("local all "+PasswordRole+" scram-sha-256\n"), old...), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Durability is not what these tests are about: no fsync makes
	// CREATE DATABASE and commits cheap on a small CI machine.
	s.proc = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	s.proc.Stdout, s.proc.Stderr = logf, logf
	s.proc.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.proc.Start(); err != nil {
		s.proc = nil
		_ = os.RemoveAll(dir)
		return fmt.Errorf("start postgres: %w", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.proc.Wait(); close(s.exited) }()
	s.dsn = fmt.Sprintf("host='%s' port=5432 user='%s' dbname=postgres sslmode=disable", sock, owner)
	for deadline := time.Now().Add(time.Minute); ; {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := exec1(pctx, s.dsn, `SELECT 1`)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(logPath)
			s.proc = nil
			_ = os.RemoveAll(dir)
			return fmt.Errorf("postgres exited: %s", lastLines(string(log), 5))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("postgres did not answer within a minute: %w", err)
		}
	}
}

// exec1 runs one statement on a fresh connection.
func exec1(ctx context.Context, dsn, sql string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
