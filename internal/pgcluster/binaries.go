package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// runner runs PostgreSQL's programs from one bin directory, as the postgres
// OS user when we are root: initdb and postgres refuse to run as root.
type runner struct {
	bin     string
	runuser string     // path of runuser when running as root, else ""
	owner   *user.User // the postgres OS user when running as root
}

func newRunner(bin string) (runner, error) {
	r := runner{bin: bin}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return r, fmt.Errorf("running as root needs a postgres OS user to run the server as (Debian's postgresql package creates it): %w", err)
	}
	path, err := exec.LookPath("runuser")
	if err != nil {
		for _, p := range []string{"/usr/sbin/runuser", "/sbin/runuser"} {
			if fileExists(p) {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return r, fmt.Errorf("running as root needs runuser (util-linux) to run the server as the postgres user: %w", err)
	}
	r.runuser, r.owner = path, u
	return r, nil
}

// command runs the named program from the bin directory. Its working
// directory is "/" because the postgres user may not be able to enter ours,
// which makes PostgreSQL's programs complain.
func (r runner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(r.bin, name)
	var cmd *exec.Cmd
	if r.runuser != "" {
		cmd = exec.CommandContext(ctx, r.runuser, append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	return cmd
}

// prepareDir gives the data directory to the postgres user when we are root,
// and checks that user can reach it.
func (r runner) prepareDir(dir string, initialised bool) error {
	if r.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(r.owner.Uid)
	gid, _ := strconv.Atoi(r.owner.Gid)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if initialised && int(st.Uid) != uid {
		return fmt.Errorf("data directory %s belongs to uid %d, not the postgres user (uid %d): run chown -R postgres: %s", dir, st.Uid, uid, dir)
	}
	if !initialised {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("give data directory to postgres user: %w", err)
		}
	}
	if p := r.unreachable(filepath.Dir(dir)); p != "" {
		mode := os.FileMode(0)
		if fi, err := os.Stat(p); err == nil {
			mode = fi.Mode().Perm()
		}
		return fmt.Errorf("the postgres user cannot reach data directory %s: %s (mode %v) is not searchable by it: run chmod o+x %s, or move the data directory elsewhere", dir, p, mode, p)
	}
	return nil
}

// required are the programs Start runs; a bin directory must hold all.
var required = []string{"initdb", "pg_ctl", "postgres"}

func hasBinaries(dir string) bool {
	for _, name := range required {
		if !fileExists(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

// findBinaries returns the directory holding initdb, pg_ctl and postgres,
// installing Debian's postgresql package when there is none and we are root.
func findBinaries(ctx context.Context, logw io.Writer) (string, error) {
	if dir := lookupBinaries(ctx); dir != "" {
		return dir, nil
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			if err := aptInstall(ctx, logw); err != nil {
				return "", err
			}
			if dir := lookupBinaries(ctx); dir != "" {
				return dir, nil
			}
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15) or set DATABASE_URL / TEST_DATABASE_URL to an existing server")
}

// BinDir is the directory of the PostgreSQL server binaries Start would
// use, or "" when there are none (Start would install them). Tools that
// need PostgreSQL's other programs (pgbench) look there first.
func BinDir(ctx context.Context) string { return lookupBinaries(ctx) }

// lookupBinaries tries pg_config, then Debian's versioned directories
// (newest first), then PATH. Debian puts pg_config on PATH even when only
// libpq-dev is installed, hence the check that the server programs exist.
func lookupBinaries(ctx context.Context) string {
	if _, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); hasBinaries(dir) {
				return dir
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return compareVersions(versionOf(b), versionOf(a)) })
	for _, dir := range dirs {
		if hasBinaries(dir) {
			return dir
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(path); hasBinaries(dir) {
			return dir
		}
	}
	return ""
}

// versionOf extracts "15" from /usr/lib/postgresql/15/bin.
func versionOf(bin string) string {
	return filepath.Base(filepath.Dir(bin))
}

// compareVersions orders "9.6" < "15" < "16", which string order gets wrong.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// aptInstall installs Debian's PostgreSQL. Parallel test binaries may all
// get here at once, so a file lock makes them take turns; whoever waited
// then finds the binaries installed.
func aptInstall(ctx context.Context, logw io.Writer) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "pgcluster-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("install postgresql: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("install postgresql: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if lookupBinaries(ctx) != "" {
		return nil
	}

	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		logw.Write(out)
		if err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lastLines(string(out), 10))
		}
		return nil
	}
	fmt.Fprintln(logw, "pgcluster: no PostgreSQL binaries found; installing Debian's postgresql package")
	if err := apt("update"); err != nil {
		return fmt.Errorf("install postgresql: %w", err)
	}
	// postgresql-contrib (pg_trgm) is a virtual package on Debian 12, part
	// of postgresql-NN; if apt will not pick a provider, the server
	// package alone still brings the contrib modules.
	if err := apt("install", "-y", "postgresql", "postgresql-contrib"); err != nil {
		if err := apt("install", "-y", "postgresql"); err != nil {
			return fmt.Errorf("install postgresql: %w", err)
		}
	}
	return nil
}
