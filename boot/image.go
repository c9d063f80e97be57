package boot

import (
	"bytes"
	"context"
	"debug/elf"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// Sentinels printed by the guest wrapper on the console. [Start] parses them.
const (
	// StartSentinel is printed on a line of its own right before the program starts.
	StartSentinel = "GOVIRTIOFS-START"
	// ExitSentinel is followed by a space and the program's exit status (128+signal if killed).
	ExitSentinel = "GOVIRTIOFS-EXIT"
)

// TagEnv is the environment variable through which the guest program learns the share's tag.
const TagEnv = "GOVIRTIOFS_TAG"

// Paths inside the image.
const (
	// GuestModulesDir holds the kernel modules; u-root's init ignores it (it loads /lib/modules).
	GuestModulesDir = "/modules"
	// GuestProgramDir holds the guest program.
	GuestProgramDir = "/prog"
)

// BaseCommands are the u-root core commands in the base image: init, the gosh shell and the
// tools worth having when debugging a guest by hand. The full cmds/core set costs about twice
// the build time (two minutes on two cores) for sshd, gpgv and the like.
var BaseCommands = []string{
	"init", "gosh", "cat", "cp", "date", "dd", "df", "dmesg", "du", "echo", "false", "find", "free",
	"grep", "head", "hexdump", "insmod", "io", "kill", "ln", "ls", "lsfd", "lsmod", "mkdir", "mknod",
	"mount", "mv", "pci", "poweroff", "printenv", "ps", "readlink", "realpath", "rm", "rmmod",
	"shutdown", "sleep", "sync", "tail", "tee", "touch", "true", "umount", "uname", "uptime", "wc",
}

// The module in which the u-root base is built: it pins u-root v0.16.0 and its dependencies, so the
// build needs nothing from the caller's module and only the Go module proxy the first time.
var (
	//go:embed urootmod/go.mod.txt
	urootGoMod []byte
	//go:embed urootmod/go.sum.txt
	urootGoSum []byte
	//go:embed guestinit/main.go
	guestInitSource []byte
)

// ImageSpec describes a guest image: the u-root base plus one program and what it needs.
type ImageSpec struct {
	// Program is either a directory holding a main package (or, with Test, a package with tests),
	// built for linux/amd64 with CGO_ENABLED=0 by running go in that directory (so it may belong to
	// another module), or a prebuilt static linux/amd64 executable.
	Program string
	// Test builds Program with "go test -c" instead of "go build"; see [TestArgs].
	Test bool
	// BuildFlags are extra flags for go build / go test -c, e.g. "-tags=guest".
	BuildFlags []string
	// Args are the program's arguments (argv[1:]).
	Args []string
	// Env holds extra KEY=VALUE variables for the program.
	Env []string
	// Tag is exported to the program as GOVIRTIOFS_TAG unless empty.
	Tag string
	// Kernel, if set, contributes its modules to /modules/<name>.ko.
	Kernel *KernelFiles
	// LoadModules makes the wrapper load Kernel's modules, in order, before the program starts
	// (the kernel-client baselines); by default no module is loaded and nothing claims the devices.
	LoadModules bool
	// Commands are extra main package directories built for the guest and installed as /bin/<name>.
	Commands []string
	// Files maps absolute paths inside the image to host files.
	Files map[string]string
}

// Image is a built initramfs.
type Image struct {
	// Path is the initramfs (uncompressed newc cpio: it unpacks faster under TCG than a
	// compressed one).
	Path string
	// Size is the file size in bytes.
	Size int64
	// Cached reports whether an identical image already existed.
	Cached bool
}

// TestArgs returns the arguments a binary built with "go test -c" needs to run its tests
// verbosely inside the guest, followed by extra (e.g. "-test.run=TestX").
func TestArgs(extra ...string) []string {
	return append([]string{"-test.v", "-test.timeout=10m"}, extra...)
}

// guestConfig is the wrapper's configuration (guestinit's config).
type guestConfig struct {
	Path    string   `json:"path"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Modules []string `json:"modules"`
}

// BuildImage builds the image that spec describes below cacheDir/images, reusing the u-root base
// ([BaseImage]) and an identical earlier image. Go programs are rebuilt with go build each time;
// the Go build cache makes that cheap when nothing changed.
//
// Errors: build failures (with the compiler output), a Program that is neither a directory nor a
// static linux/amd64 executable, missing Files.
func BuildImage(ctx context.Context, cacheDir string, spec ImageSpec, log *slog.Logger) (*Image, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if spec.Program == "" {
		return nil, errors.New("boot: ImageSpec.Program is empty")
	}
	base, baseKey, err := BaseImage(ctx, cacheDir, log)
	if err != nil {
		return nil, err
	}
	init, err := buildGuestInit(ctx, cacheDir)
	if err != nil {
		return nil, err
	}
	prog, err := GuestProgram(ctx, cacheDir, spec.Program, spec.Test, spec.BuildFlags)
	if err != nil {
		return nil, err
	}
	progPath := path.Join(GuestProgramDir, filepath.Base(prog))
	cfg := guestConfig{Path: progPath, Args: spec.Args, Env: spec.Env, Dir: "/"}
	if spec.Tag != "" {
		cfg.Env = append([]string{TagEnv + "=" + spec.Tag}, cfg.Env...)
	}
	files := map[string]string{ // image path -> host path
		"/bin/uinit": init,
		progPath:     prog,
	}
	if spec.Kernel != nil {
		for _, m := range spec.Kernel.Modules {
			p := path.Join(GuestModulesDir, filepath.Base(m))
			files[p] = m
			if spec.LoadModules {
				cfg.Modules = append(cfg.Modules, p)
			}
		}
	}
	for _, dir := range spec.Commands {
		bin, err := GuestProgram(ctx, cacheDir, dir, false, spec.BuildFlags)
		if err != nil {
			return nil, err
		}
		files[path.Join("/bin", filepath.Base(bin))] = bin
	}
	for dst, src := range spec.Files {
		if !path.IsAbs(dst) {
			return nil, fmt.Errorf("boot: image path %q is not absolute", dst)
		}
		files[path.Clean(dst)] = src
	}
	cfgJSON, err := json.MarshalIndent(&cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	overlay, err := writeOverlay(files, map[string][]byte{"/etc/govirtiofs/init.json": cfgJSON})
	if err != nil {
		return nil, err
	}

	k, sum := newHasher()
	k.str("base", baseKey)
	k.str("overlay", string(overlay))
	dst := filepath.Join(cacheDir, "images", sum()+".cpio")
	if fi, err := os.Stat(dst); err == nil {
		now := time.Now()
		os.Chtimes(dst, now, now) // recency for whoever prunes the cache
		return &Image{Path: dst, Size: fi.Size(), Cached: true}, nil
	}
	baseData, err := os.ReadFile(base)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	// The kernel unpacks concatenated newc archives in order (Documentation/driver-api/
	// early-userspace/buffer-format.rst), so the overlay is appended to the base as is.
	img := append(baseData, overlay...)
	if err := writeFileAtomic(dst, img, 0o644); err != nil {
		return nil, err
	}
	log.Debug("built guest image", "path", dst, "bytes", len(img))
	pruneImages(filepath.Dir(dst), keepImages)
	return &Image{Path: dst, Size: int64(len(img))}, nil
}

// keepImages is how many recently used images the cache keeps (each is 10-20 MB).
const keepImages = 24

// pruneImages removes all but the keep most recently used images in dir (reuse refreshes an
// image's mtime). The newest ones, which callers are about to boot, always survive.
func pruneImages(dir string, keep int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type img struct {
		path string
		used time.Time
	}
	var imgs []img
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".cpio") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			imgs = append(imgs, img{filepath.Join(dir, e.Name()), fi.ModTime()})
		}
	}
	if len(imgs) <= keep {
		return
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].used.After(imgs[j].used) })
	for _, im := range imgs[keep:] {
		os.Remove(im.path)
	}
}

// writeOverlay returns a newc archive holding files (image path -> host path) and static contents,
// with parent directories, in sorted order and with zero timestamps so equal inputs give equal bytes.
func writeOverlay(files map[string]string, static map[string][]byte) ([]byte, error) {
	var recs []cpio.Record
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("boot: image file %s: %w", dst, err)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{
			Name: strings.TrimPrefix(dst, "/"),
			Mode: syscall.S_IFREG | uint64(fi.Mode().Perm()),
		}))
	}
	for dst, data := range static {
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: strings.TrimPrefix(dst, "/"), Mode: syscall.S_IFREG | 0o644}))
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BaseImage returns the path of the u-root base initramfs ([BaseCommands], u-root init, gosh as
// the shell) and its cache key, building it on first use (about a minute on two cores).
func BaseImage(ctx context.Context, cacheDir string, log *slog.Logger) (path, key string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k, sum := newHasher()
	k.str("go.mod", string(urootGoMod))
	k.str("go.sum", string(urootGoSum))
	k.str("commands", strings.Join(BaseCommands, " "))
	k.str("version", "base-v1")
	key = sum()
	path = filepath.Join(cacheDir, "base", "uroot-"+key+".cpio")
	if exists(path) {
		return path, key, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "base.lock"))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if exists(path) { // built by another process while we waited
		return path, key, nil
	}
	start := time.Now()
	log.Info("building u-root base image (about a minute, once)", "commands", len(BaseCommands))
	if err := buildBase(ctx, cacheDir, path, log); err != nil {
		return "", "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	log.Info("u-root base image ready", "took", time.Since(start).Round(time.Millisecond), "bytes", fi.Size())
	return path, key, nil
}

func buildBase(ctx context.Context, cacheDir, dst string, log *slog.Logger) error {
	mod := filepath.Join(cacheDir, "uroot-mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), urootGoMod, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), urootGoSum, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "base.cpio")

	var cmds []string
	for _, c := range BaseCommands {
		cmds = append(cmds, "github.com/u-root/u-root/cmds/core/"+c)
	}
	l := llog.New(slog.LevelInfo, func(format string, args ...any) {
		log.Debug("mkuimage: " + fmt.Sprintf(format, args...))
	})
	// The library runs go directly; it cannot be cancelled, so check ctx around it.
	if err := ctx.Err(); err != nil {
		return err
	}
	err = uimage.Create(l,
		uimage.WithReplaceEnv(golang.Default(golang.DisableCGO(), golang.WithGOOS("linux"),
			golang.WithGOARCH("amd64"), golang.WithWorkingDir(mod))),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithBusyboxCommands(cmds...),
		uimage.WithInit("init"),
		uimage.WithShell("gosh"),
		uimage.WithSkipLDD(),
		uimage.WithTempDir(tmp),
		uimage.WithCPIOOutput(out),
	)
	if err != nil {
		return fmt.Errorf("boot: building u-root base: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(out, dst)
}

// buildGuestInit builds the wrapper from its embedded source in a scratch module.
func buildGuestInit(ctx context.Context, cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, "guestinit")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module govirtiofs.local/guestinit\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), guestInitSource, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "guestinit")
	// Without symbol tables it is a third smaller; panics still print stack traces (pclntab).
	return out, goBuild(ctx, src, out, false, []string{"-ldflags=-s -w"})
}

// GuestProgram returns a static linux/amd64 executable for prog: prog itself if it is one, else the
// result of building the package directory prog (with "go test -c" if test) into
// cacheDir/progs/<hash of the directory and flags>/<name>. The go command runs in prog, so the
// package may belong to any module; the Go build cache keeps unchanged rebuilds fast.
//
// Errors: a dynamically linked or non-amd64 prebuilt binary; build errors with the go output.
func GuestProgram(ctx context.Context, cacheDir, prog string, test bool, flags []string) (string, error) {
	abs, err := filepath.Abs(prog)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("boot: guest program: %w", err)
	}
	if !fi.IsDir() {
		return abs, checkStaticBinary(abs)
	}
	k, sum := newHasher()
	k.str("dir", abs)
	k.str("test", fmt.Sprint(test))
	k.str("flags", strings.Join(flags, "\x00"))
	name := filepath.Base(abs)
	if test {
		name += ".test"
	}
	out := filepath.Join(cacheDir, "progs", sum(), name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	return out, goBuild(ctx, abs, out, test, flags)
}

// goBuild builds the package in dir for the guest.
func goBuild(ctx context.Context, dir, out string, test bool, flags []string) error {
	args := []string{"build"}
	if test {
		args = []string{"test", "-c"}
	}
	args = append(args, "-trimpath", "-o", out)
	args = append(args, flags...)
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("boot: go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, b)
	}
	return nil
}

// checkStaticBinary rejects files that cannot run in the guest: not ELF, not x86-64, or
// dynamically linked (the image has no libc).
func checkStaticBinary(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("boot: guest program %s is not an ELF executable: %w", p, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("boot: guest program %s is for %v, want x86-64", p, f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("boot: guest program %s is dynamically linked; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends; the result releases it.
func lockFile(ctx context.Context, p string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, err
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file does not interrupt flock; the goroutine ends when the holder unlocks,
		// and the lock it then takes is released by this close.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
}
