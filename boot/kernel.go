package boot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// BaselineModules lists, in load order, the kernel modules that the kernel-client baselines
// (virtiofs and 9p) need. Nothing else is kept from the kernel package.
var BaselineModules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"fuse", "virtiofs", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
}

// KernelMeta is the Debian package that [Kernel] resolves linux-image-amd64 to.
const kernelMeta = "linux-image-amd64"

// KernelFiles is an unpacked, cached guest kernel.
type KernelFiles struct {
	// Package is the Debian package name (linux-image-<abi>-amd64); Version its version.
	Package string `json:"package"`
	Version string `json:"version"`
	// Vmlinuz is the absolute path of the kernel image.
	Vmlinuz string `json:"vmlinuz"`
	// Modules are absolute paths of uncompressed .ko files, in [BaselineModules] order.
	Modules []string `json:"modules"`
}

// Kernel returns Debian's current amd64 kernel, fetching it on first use: it resolves the package
// that linux-image-amd64 depends on (running apt-get update if the package lists are empty),
// downloads it with apt-get download, unpacks it with dpkg-deb -x and keeps vmlinuz and
// [BaselineModules] under cacheDir/kernel/<package>_<version>. A complete cached copy is reused
// without touching the network; if apt cannot resolve the package at all, the newest cached
// kernel is used.
//
// Errors: a failing apt-get or dpkg-deb (with its output), a package without vmlinuz or a
// missing module.
func Kernel(ctx context.Context, cacheDir string, log *slog.Logger) (*KernelFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(cacheDir, "kernel")
	pkg, version, err := resolveKernelPackageCached(ctx, root, log)
	if err != nil {
		if kf, cerr := newestCachedKernel(root); cerr == nil {
			log.Warn("cannot resolve kernel package; using cached kernel", "err", err, "package", kf.Package, "version", kf.Version)
			return kf, nil
		}
		return nil, err
	}
	dir := filepath.Join(root, pkg+"_"+version)
	if kf, err := loadKernelFiles(dir); err == nil {
		return kf, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(root+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if kf, err := loadKernelFiles(dir); err == nil { // fetched by another process meanwhile
		return kf, nil
	}
	start := time.Now()
	log.Info("fetching guest kernel", "package", pkg, "version", version)
	kf, err := fetchKernel(ctx, root, dir, pkg, version)
	if err != nil {
		return nil, err
	}
	log.Info("guest kernel ready", "package", pkg, "took", time.Since(start).Round(time.Millisecond))
	return kf, nil
}

// aptLists is where apt keeps its package lists; its mtime changes with apt-get update.
const aptLists = "/var/lib/apt/lists"

// resolution is the cached answer of resolveKernelPackage, valid while aptLists is unchanged
// (asking apt-cache costs seconds).
type resolution struct {
	Package    string    `json:"package"`
	Version    string    `json:"version"`
	ListsMTime time.Time `json:"lists_mtime"`
}

// resolveKernelPackageCached is resolveKernelPackage behind a cache file in root.
func resolveKernelPackageCached(ctx context.Context, root string, log *slog.Logger) (pkg, version string, err error) {
	cacheFile := filepath.Join(root, "resolved.json")
	fi, statErr := os.Stat(aptLists)
	if statErr == nil {
		var r resolution
		if data, err := os.ReadFile(cacheFile); err == nil && json.Unmarshal(data, &r) == nil &&
			r.ListsMTime.Equal(fi.ModTime()) && r.Package != "" && r.Version != "" {
			return r.Package, r.Version, nil
		}
	}
	if pkg, version, err = resolveKernelPackage(ctx, log); err != nil {
		return "", "", err
	}
	if fi, err := os.Stat(aptLists); err == nil { // after a possible apt-get update
		if data, err := json.Marshal(resolution{Package: pkg, Version: version, ListsMTime: fi.ModTime()}); err == nil {
			if os.MkdirAll(root, 0o755) == nil {
				writeFileAtomic(cacheFile, data, 0o644)
			}
		}
	}
	return pkg, version, nil
}

// resolveKernelPackage finds the versioned package behind linux-image-amd64 and its version.
func resolveKernelPackage(ctx context.Context, log *slog.Logger) (pkg, version string, err error) {
	out, err := aptShow(ctx, kernelMeta)
	if err != nil {
		log.Info("apt package lists look empty; running apt-get update", "err", err)
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return "", "", fmt.Errorf("boot: apt-get update: %w: %s", uerr, lastLines(out, 5))
		}
		if out, err = aptShow(ctx, kernelMeta); err != nil {
			return "", "", err
		}
	}
	pkg, version, err = parseKernelDepends(out)
	if err != nil || version != "" {
		return pkg, version, err
	}
	// No "(= version)" on the dependency: ask for the package itself.
	if out, err = aptShow(ctx, pkg); err != nil {
		return "", "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
			return pkg, strings.TrimSpace(v), nil
		}
	}
	return "", "", fmt.Errorf("boot: apt-cache show %s: no Version field", pkg)
}

// aptShow runs apt-cache show for the candidate version of pkg.
func aptShow(ctx context.Context, pkg string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return nil, fmt.Errorf("boot: apt-cache show %s: %w", pkg, err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, fmt.Errorf("boot: apt-cache show %s: no such package", pkg)
	}
	return out, nil
}

// parseKernelDepends extracts the linux-image-* dependency of apt-cache show's Depends field,
// with its exact version if the field pins one ("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").
func parseKernelDepends(out []byte) (pkg, version string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		deps, ok := strings.CutPrefix(sc.Text(), "Depends: ")
		if !ok {
			continue
		}
		for _, dep := range strings.Split(deps, ",") {
			dep = strings.TrimSpace(strings.Split(dep, "|")[0])
			name, constraint, _ := strings.Cut(dep, " ")
			if !strings.HasPrefix(name, "linux-image-") {
				continue
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(constraint), "(="); ok {
				version = strings.TrimSpace(strings.TrimSuffix(v, ")"))
			}
			return name, version, nil
		}
	}
	return "", "", fmt.Errorf("boot: no linux-image dependency of %s in apt-cache output", kernelMeta)
}

func loadKernelFiles(dir string) (*KernelFiles, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var kf KernelFiles
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, err
	}
	// Paths are stored relative so that the cache directory can move.
	kf.Vmlinuz = filepath.Join(dir, kf.Vmlinuz)
	for i, m := range kf.Modules {
		kf.Modules[i] = filepath.Join(dir, m)
	}
	for _, p := range append([]string{kf.Vmlinuz}, kf.Modules...) {
		if !exists(p) {
			return nil, fmt.Errorf("boot: cached kernel incomplete: %s: %w", p, fs.ErrNotExist)
		}
	}
	return &kf, nil
}

func newestCachedKernel(root string) (*KernelFiles, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "linux-image-") {
			names = append(names, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		if kf, err := loadKernelFiles(filepath.Join(root, n)); err == nil {
			return kf, nil
		}
	}
	return nil, fmt.Errorf("boot: no cached kernel in %s: %w", root, fs.ErrNotExist)
}

func fetchKernel(ctx context.Context, root, dir, pkg, version string) (*KernelFiles, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(root, "fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	dl := exec.CommandContext(ctx, "apt-get", "download", pkg+"="+version)
	dl.Dir = work
	if out, err := dl.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("boot: apt-get download %s: %w: %s", pkg, err, lastLines(out, 5))
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("boot: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	tree := filepath.Join(work, "x")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tree).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("boot: dpkg-deb -x %s: %w: %s", debs[0], err, lastLines(out, 5))
	}

	stage := filepath.Join(work, "out")
	if err := os.MkdirAll(filepath.Join(stage, "modules"), 0o755); err != nil {
		return nil, err
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, fmt.Errorf("boot: %s: want one boot/vmlinuz-*, found %d", pkg, len(vmlinuz))
	}
	if err := os.Rename(vmlinuz[0], filepath.Join(stage, "vmlinuz")); err != nil {
		return nil, err
	}
	found, err := findModules(filepath.Join(tree, "lib", "modules"))
	if err != nil {
		return nil, err
	}
	kf := KernelFiles{Package: pkg, Version: version, Vmlinuz: "vmlinuz"}
	for _, name := range BaselineModules {
		src, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("boot: %s has no module %s: %w", pkg, name, fs.ErrNotExist)
		}
		rel := filepath.Join("modules", name+".ko")
		if err := installModule(ctx, src, filepath.Join(stage, rel)); err != nil {
			return nil, err
		}
		kf.Modules = append(kf.Modules, rel)
	}
	meta, err := json.MarshalIndent(&kf, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, "kernel.json"), meta, 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(dir) // an incomplete earlier attempt
	if err := os.Rename(stage, dir); err != nil {
		return nil, err
	}
	return loadKernelFiles(dir)
}

// findModules maps module names (file name without .ko[.xz|.zst|.gz]) to their paths.
func findModules(root string) (map[string]string, error) {
	found := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name, _, ok := moduleName(d.Name()); ok {
			found[name] = p
		}
		return nil
	})
	return found, err
}

// moduleName splits "fuse.ko.xz" into ("fuse", ".xz", true); plain .ko has compression "".
func moduleName(file string) (name, compression string, ok bool) {
	for _, c := range []string{"", ".xz", ".zst", ".gz"} {
		if n, found := strings.CutSuffix(file, ".ko"+c); found && n != "" {
			return n, c, true
		}
	}
	return "", "", false
}

// installModule copies a module to dst, decompressing it: finit_module only takes compressed
// modules with MODULE_INIT_COMPRESSED_FILE and a kernel built for that algorithm, and the guest
// wrapper loads plain .ko files.
func installModule(ctx context.Context, src, dst string) error {
	_, compression, _ := moduleName(filepath.Base(src))
	var data []byte
	var err error
	switch compression {
	case "":
		data, err = os.ReadFile(src)
	case ".xz":
		data, err = exec.CommandContext(ctx, "xz", "-dc", src).Output()
	case ".zst":
		data, err = exec.CommandContext(ctx, "zstd", "-dc", src).Output()
	case ".gz":
		data, err = exec.CommandContext(ctx, "gzip", "-dc", src).Output()
	}
	if err != nil {
		return fmt.Errorf("boot: reading module %s: %w", src, err)
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return fmt.Errorf("boot: module %s is not ELF after decompression", src)
	}
	return os.WriteFile(dst, data, 0o644)
}

// lastLines returns the last n lines of command output, for error messages.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
