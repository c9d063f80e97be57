package vfs

import (
	"context"
	"strings"
	"syscall"
	"time"
)

// Linux limits (include/uapi/linux/limits.h, MAXSYMLINKS in namei.h).
const (
	maxNameLen  = 255  // NAME_MAX
	maxPathLen  = 4096 // PATH_MAX, including the terminating NUL
	maxSymlinks = 40   // MAXSYMLINKS: the 41st link followed is ELOOP
)

// walker resolves paths for one operation (Linux struct nameidata). It
// counts symlinks across the whole operation.
type walker struct {
	v     *VirtualFilesystem
	ctx   context.Context
	creds *Credentials
	links int
	// start is the walk's clock reading, taken at first use: entries
	// (and cached attributes, see AttrCache) are judged valid as of the
	// start of the operation. startTime is the same reading.
	start     int64
	startTime time.Time
	// fresh is the dentry of the last lookup this walk sent to the
	// filesystem whose reply carried attributes (Entry.HasAttr), and
	// freshAttr those attributes.
	fresh     *Dentry
	freshAttr Statx
}

// now returns the walk's clock reading.
func (w *walker) now() int64 {
	if w.start == 0 {
		w.startTime = w.v.clock()
		w.start = int64(w.startTime.Sub(w.v.epoch))
		if w.start == 0 {
			w.start = 1
		}
	}
	return w.start
}

// fastResolve resolves p from the share root when every component is
// cached and valid, holding vfs.mu once for the whole path and taking a
// reference on the result only (Linux path_lookupat in RCU-walk mode,
// LOOKUP_RCU). It reports ok=false, having changed nothing, for anything
// it leaves to the full walk, which then starts over (see fastWalkLocked).
// A valid negative dentry on the way gives ENOENT, as the full walk would.
// The result is not a symlink; trailing reports whether p ended in a slash
// (it is then a directory).
//
// Preconditions: checkPath(p) == nil.
func (w *walker) fastResolve(p string) (d *Dentry, trailing bool, err error, ok bool) {
	v := w.v
	w.now()
	v.mu.Lock()
	d, trailing, err, ok = w.fastWalkLocked(p)
	if ok && err == nil {
		v.incRefLocked(d)
	}
	v.mu.Unlock()
	return d, trailing, err, ok
}

// fastWalkLocked is fastResolve without the reference. It reports
// ok=false for a missing or expired dentry, "..", a symlink to follow or
// pass through, a component that is not a directory, a name over
// NAME_MAX, the root or a path ending in "." (which open and the create
// family treat specially), and a closed filesystem.
//
// Preconditions: vfs.mu is held; w.now() has been called; checkPath(p) ==
// nil.
func (w *walker) fastWalkLocked(p string) (d *Dentry, trailing bool, err error, ok bool) {
	v := w.v
	now := w.start
	end := len(p)
	for end > 0 && p[end-1] == '/' {
		end--
	}
	trailing = end < len(p) && end > 0
	rest := p[:end]
	if rest == "" || rest == "." || strings.HasSuffix(rest, "/.") || v.closed {
		return nil, false, nil, false
	}
	cur := v.root.root
	for rest != "" {
		if rest[0] == '/' {
			rest = rest[1:]
			continue
		}
		name := rest
		if k := strings.IndexByte(rest, '/'); k >= 0 {
			name, rest = rest[:k], rest[k+1:]
		} else {
			rest = ""
		}
		if name == "." {
			continue
		}
		if name == ".." || len(name) > maxNameLen {
			return nil, false, nil, false
		}
		c := cur.children[name]
		if c == nil || now >= c.deadline {
			return nil, false, nil, false
		}
		if c.inode == nil {
			v.lruTouchLocked(c)
			return nil, false, syscall.ENOENT, true
		}
		for c.mounted != nil {
			c = c.mounted.root
		}
		// rest holds a component unless it is empty: p's trailing
		// slashes were cut off.
		if c.isSymlink() || (rest != "" || trailing) && !c.IsDir() {
			return nil, false, nil, false
		}
		cur = c
	}
	return cur, trailing, nil, true
}

// lookupChild returns the positive dentry at name in dir with a reference
// for the caller, or nil if the name does not exist. A cached dentry is
// used until its deadline; then the filesystem revalidates it (Linux
// lookup_fast with d_revalidate, then lookup_slow). With cross, a mount
// point is replaced by the root of the mount on it.
//
// Errors: those of FilesystemImpl.Lookup and Revalidate, ENOENT excepted.
// Preconditions: the caller holds a reference on dir, a directory; name is
// a valid component. If dirLocked, the caller holds dir.dirMu exclusively.
func (w *walker) lookupChild(dir *Dentry, name string, cross, dirLocked bool) (*Dentry, error) {
	v := w.v
	now := w.now()
	v.mu.Lock()
	c := dir.children[name]
	if c != nil && now < c.deadline {
		if c.inode == nil {
			v.lruTouchLocked(c)
			v.mu.Unlock()
			return nil, nil
		}
		v.incRefLocked(c)
		if cross {
			c = v.crossLocked(c)
		}
		v.mu.Unlock()
		return c, nil
	}
	var cached Inode
	if c != nil {
		cached = c.inode
	}
	v.mu.Unlock()

	if !dirLocked {
		dir.dirMu.RLock()
		defer dir.dirMu.RUnlock()
	}
	fs := dir.mount.fs
	var e Entry
	var err error
	if cached != nil {
		e, err = fs.Revalidate(w.ctx, w.creds, dir.inode, name, cached)
	} else {
		e, err = fs.Lookup(w.ctx, w.creds, dir.inode, name)
	}
	if err == syscall.ENOENT {
		e, err = Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	c = v.insertLocked(dir, name, &e, now)
	if c != nil && cross {
		c = v.crossLocked(c)
	}
	v.unlock()
	if c != nil && e.HasAttr && c.inode == e.Inode {
		w.fresh, w.freshAttr = c, e.Attr
	}
	return c, nil
}

// crossLocked follows a mount point to the root of the mount on it,
// moving the caller's reference (Linux follow_managed).
//
// Preconditions: vfs.mu is held; the caller holds a reference on d.
func (v *VirtualFilesystem) crossLocked(d *Dentry) *Dentry {
	for d.mounted != nil {
		r := d.mounted.root
		v.incRefLocked(r)
		v.decRefLocked(d)
		d = r
	}
	return d
}

// dotdot moves the caller's reference from d to its parent, crossing back
// out of mounts and never above the share root (Linux follow_dotdot).
func (w *walker) dotdot(d *Dentry) *Dentry {
	v := w.v
	v.mu.Lock()
	p := d
	for {
		if p == v.root.root {
			break
		}
		if p.parent != nil {
			p = p.parent
			break
		}
		m := p.mount
		if !m.attached || m.mountpoint == nil {
			break
		}
		p = m.mountpoint
	}
	if p != d {
		v.incRefLocked(p)
		v.decRefLocked(d)
	}
	v.unlock()
	return p
}

// readlink returns a symlink's target for following it, counting it
// against the symlink limit.
//
// Errors: ELOOP past 40 symlinks; ENOENT for an empty target; the
// filesystem's errors.
func (w *walker) readlink(d *Dentry) (string, error) {
	w.links++
	if w.links > maxSymlinks {
		return "", syscall.ELOOP
	}
	t, err := d.mount.fs.Readlink(w.ctx, w.creds, d.inode)
	if err != nil {
		return "", err
	}
	if t == "" {
		return "", syscall.ENOENT
	}
	return t, nil
}

// checkPath applies the limits every path argument gets.
//
// Errors: ENOENT for "", ENAMETOOLONG for PATH_MAX or more bytes.
func checkPath(p string) error {
	if p == "" {
		return syscall.ENOENT
	}
	if len(p) >= maxPathLen {
		return syscall.ENAMETOOLONG
	}
	if strings.IndexByte(p, 0) >= 0 {
		return syscall.EINVAL
	}
	return nil
}

// parentOf resolves all but the last component of p, starting at start (a
// directory; the root if p is absolute), following every symlink on the
// way (Linux link_path_walk). It returns the directory with a reference,
// the last component ("" if p names the starting directory itself, as "/"
// does; "." and ".." are returned as they are) and whether p had trailing
// slashes. The caller's reference on start is untouched.
//
// Errors: ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, and the filesystem's.
func (w *walker) parentOf(start *Dentry, p string) (*Dentry, string, bool, error) {
	v := w.v
	w.now()
	v.mu.Lock()
	if p[0] == '/' {
		if v.closed {
			v.mu.Unlock()
			return nil, "", false, syscall.ENOTCONN
		}
		start = v.root.root
	}
	if d, last, trailing, ok := w.fastParentLocked(start, p); ok {
		v.incRefLocked(d)
		v.mu.Unlock()
		return d, last, trailing, nil
	}
	v.incRefLocked(start)
	v.mu.Unlock()
	cur := start

	trimmed := strings.TrimRight(p, "/")
	trailing := len(trimmed) < len(p) && trimmed != ""
	rest := strings.TrimLeft(trimmed, "/")
	for {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			if len(rest) > maxNameLen {
				v.decRef(cur)
				return nil, "", false, syscall.ENAMETOOLONG
			}
			return cur, rest, trailing, nil
		}
		comp := rest[:i]
		rest = strings.TrimLeft(rest[i+1:], "/")
		next, err := w.step(cur, comp)
		if err != nil {
			v.decRef(cur)
			return nil, "", false, err
		}
		cur = next
	}
}

// fastParentLocked is parentOf for a path whose directories are all cached
// and valid, walked under one hold of vfs.mu without references (as
// fastWalkLocked walks a whole path): it saves the two lock round trips
// per directory of the full walk, for every operation whose last
// component is not cached (a stat or open of a name not seen yet, a
// create, an unlink). It reports ok=false, having changed nothing, for
// anything it leaves to the full walk: a missing, expired or negative
// dentry, "..", a symlink, a non-directory, a name over NAME_MAX, a
// closed filesystem.
//
// Preconditions: vfs.mu is held; w.now() has been called; p is not empty.
func (w *walker) fastParentLocked(start *Dentry, p string) (d *Dentry, last string, trailing, ok bool) {
	v := w.v
	if v.closed {
		return nil, "", false, false
	}
	now := w.start
	trimmed := strings.TrimRight(p, "/")
	trailing = len(trimmed) < len(p) && trimmed != ""
	rest := strings.TrimLeft(trimmed, "/")
	cur := start
	for {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			if len(rest) > maxNameLen {
				return nil, "", false, false
			}
			return cur, rest, trailing, true
		}
		comp := rest[:i]
		rest = strings.TrimLeft(rest[i+1:], "/")
		if comp == "." {
			continue
		}
		if comp == ".." || len(comp) > maxNameLen {
			return nil, "", false, false
		}
		c := cur.children[comp]
		if c == nil || now >= c.deadline || c.inode == nil {
			return nil, "", false, false
		}
		for c.mounted != nil {
			c = c.mounted.root
		}
		if !c.IsDir() {
			return nil, "", false, false
		}
		cur = c
	}
}

// step moves the caller's reference from dir (a directory) to the
// directory that the component comp leads to, following a symlink.
//
// Errors: ENAMETOOLONG, ENOENT, ENOTDIR, ELOOP, and the filesystem's. On
// error the caller keeps its reference on dir.
func (w *walker) step(dir *Dentry, comp string) (*Dentry, error) {
	switch {
	case len(comp) > maxNameLen:
		return nil, syscall.ENAMETOOLONG
	case comp == ".":
		return dir, nil
	case comp == "..":
		return w.dotdot(dir), nil
	}
	c, err := w.lookupChild(dir, comp, true, false)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, syscall.ENOENT
	}
	if c.isSymlink() {
		t, err := w.readlink(c)
		w.v.decRef(c)
		if err != nil {
			return nil, err
		}
		d, err := w.resolve(dir, t, true, true)
		if err != nil {
			return nil, err
		}
		w.v.decRef(dir)
		return d, nil
	}
	if !c.IsDir() {
		w.v.decRef(c)
		return nil, syscall.ENOTDIR
	}
	w.v.decRef(dir)
	return c, nil
}

// resolve returns the node p names, with a reference, starting at start
// (the caller keeps its reference). A final symlink is followed if follow
// or p has a trailing slash; the result must be a directory if mustDir or
// p has a trailing slash (Linux path_lookupat).
//
// Errors: ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, and the filesystem's.
func (w *walker) resolve(start *Dentry, p string, follow, mustDir bool) (*Dentry, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	v := w.v
	var held *Dentry // a reference this loop took on start
	defer func() {
		if held != nil {
			v.decRef(held)
		}
	}()
	for {
		dir, last, trailing, err := w.parentOf(start, p)
		if err != nil {
			return nil, err
		}
		var c *Dentry
		switch last {
		case "", ".":
			c = dir
		case "..":
			c = w.dotdot(dir)
		default:
			c, err = w.lookupChild(dir, last, true, false)
			if err != nil {
				v.decRef(dir)
				return nil, err
			}
			if c == nil {
				v.decRef(dir)
				return nil, syscall.ENOENT
			}
			if c.isSymlink() && (follow || trailing) {
				t, err := w.readlink(c)
				v.decRef(c)
				if err != nil {
					v.decRef(dir)
					return nil, err
				}
				if trailing {
					t += "/"
				}
				if held != nil {
					v.decRef(held)
				}
				held, start, p = dir, dir, t
				if err := checkPath(p); err != nil {
					return nil, err
				}
				continue
			}
			v.decRef(dir)
		}
		if (mustDir || trailing) && !c.IsDir() {
			v.decRef(c)
			return nil, syscall.ENOTDIR
		}
		return c, nil
	}
}
