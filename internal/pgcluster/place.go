package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// placement is where a cluster's data directory really is.
type placement struct {
	// dir is the data directory, symlinks resolved.
	dir string
	// home and link are set when the cluster lives under the reachable
	// root: its own directory there (dir's parent) and the symlink at the
	// requested path.
	home, link string
}

// originFile, in a relocated cluster's home, names the requested path it
// serves, for whoever wonders what the directory is.
const originFile = "origin"

// place creates the data directory at requested, or, when we are root and
// the postgres user could not reach it, under root (see
// Options.ReachableRoot), linked from requested. The permissions of the
// caller's existing directories are never changed.
func (r runner) place(ctx context.Context, requested, root string, logw io.Writer) (placement, error) {
	// Missing parents are made searchable by all, so the postgres user can
	// reach the data directory; only the data directory itself is private.
	if err := os.MkdirAll(filepath.Dir(requested), 0o755); err != nil {
		return placement{}, fmt.Errorf("create data directory: %w", err)
	}
	if fi, err := os.Lstat(requested); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return follow(requested)
	}
	if r.owner == nil || r.unreachable(filepath.Dir(requested)) == "" {
		if err := os.Mkdir(requested, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return placement{}, fmt.Errorf("create data directory: %w", err)
		}
		// Resolve symlinks so the permission checks look at the real path.
		dir, err := filepath.EvalSymlinks(requested)
		if err != nil {
			return placement{}, fmt.Errorf("resolve data directory: %w", err)
		}
		return placement{dir: dir}, nil
	}
	// An empty directory (an earlier start that stopped at the permission
	// check left it) makes way for the link. A directory with contents,
	// perhaps a cluster, is not moved: prepareDir explains the problem.
	if err := os.Remove(requested); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return placement{dir: requested}, nil
	}
	return r.relocate(ctx, requested, root, logw)
}

// follow resolves a data directory that is a symlink, re-creating its
// target when that is gone (someone cleaned the reachable root).
func follow(link string) (placement, error) {
	dir, err := filepath.EvalSymlinks(link)
	if errors.Is(err, fs.ErrNotExist) {
		target, rerr := os.Readlink(link)
		if rerr != nil {
			return placement{}, fmt.Errorf("resolve data directory: %w", rerr)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(link), target)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return placement{}, fmt.Errorf("create data directory: %w", err)
		}
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return placement{}, fmt.Errorf("create data directory: %w", err)
		}
		dir, err = filepath.EvalSymlinks(link)
	}
	if err != nil {
		return placement{}, fmt.Errorf("resolve data directory: %w", err)
	}
	p := placement{dir: dir, link: link}
	if fileExists(filepath.Join(filepath.Dir(dir), originFile)) {
		p.home = filepath.Dir(dir)
	}
	return p, nil
}

// relocate makes the data directory root/<hash of requested>/data and links
// requested to it. Keying by the requested path gives each checkout its own
// cluster and lets a restart find it through the link.
func (r runner) relocate(ctx context.Context, requested, root string, logw io.Writer) (placement, error) {
	if root == "" {
		root = DefaultReachableRoot
	}
	sum := sha256.Sum256([]byte(requested))
	home := filepath.Join(root, hex.EncodeToString(sum[:8]))
	dir := filepath.Join(home, "data")
	for _, d := range []string{root, home} {
		if err := mkdirSearchable(d); err != nil {
			return placement{}, fmt.Errorf("create data directory under %s: %w", root, err)
		}
	}
	// A cluster here without its link belongs to a data directory that was
	// deleted, which means "start afresh" -- unless its server still runs.
	if fileExists(filepath.Join(dir, "PG_VERSION")) {
		if err := r.clearStalePID(ctx, dir); err != nil {
			return placement{}, err
		}
		fmt.Fprintf(logw, "pgcluster: removing %s, left by an earlier %s\n", dir, requested)
	}
	if err := os.RemoveAll(dir); err != nil {
		return placement{}, fmt.Errorf("remove stale data directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return placement{}, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(home, originFile), []byte(requested+"\n"), 0o644); err != nil {
		return placement{}, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Symlink(dir, requested); err != nil {
		return placement{}, fmt.Errorf("link data directory: %w", err)
	}
	return placement{dir: dir, home: home, link: requested}, nil
}

// mkdirSearchable creates dir (and its parents) if missing. A directory it
// creates is searchable by all, whatever the umask, so the postgres user can
// pass through it; an existing one is left as it is.
func mkdirSearchable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// unreachable returns the first of path and its ancestors that the postgres
// user cannot search, or "" when it can reach path. Only meaningful when we
// run the server as that user (r.owner is set).
func (r runner) unreachable(path string) string {
	uid, _ := strconv.Atoi(r.owner.Uid)
	gid, _ := strconv.Atoi(r.owner.Gid)
	groups := []int{gid}
	if ids, err := r.owner.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil {
				groups = append(groups, n)
			}
		}
	}
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return p
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		ok := mode&0o001 != 0 ||
			int(st.Uid) == uid && mode&0o100 != 0 ||
			slices.Contains(groups, int(st.Gid)) && mode&0o010 != 0
		if !ok {
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
