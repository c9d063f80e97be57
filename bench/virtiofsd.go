package bench

import (
	"context"
	"os"
	"path/filepath"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/boot"
)

// HostVhostuserClient is govirtiofs over vhost-user on the host (host-vhostuser): each Start
// starts a virtiofsd (boot.StartVirtiofsd; bin, on dir, with the cache mode and the extra
// arguments args) and dials it with govirtiofs.Dial using opts. Cold means a fresh virtiofsd and
// FS: the client caches nothing at the start; the host's page cache stays warm.
func HostVhostuserClient(bin, dir, cache string, args []string, opts govirtiofs.Options) Client {
	return hostVhostuserClient(bin, dir, cache, args, opts, nil)
}

// hostVhostuserClient is HostVhostuserClient; started, if not nil, is called with each
// virtiofsd's process ID once it listens (the harness places it).
func hostVhostuserClient(bin, dir, cache string, args []string, opts govirtiofs.Options, started func(pid int)) Client {
	return Client{Name: ClientHostVhostuser, Start: func(ctx context.Context) (FS, func() error, error) {
		tmp, err := os.MkdirTemp("", "govirtiofs-bench-")
		if err != nil {
			return nil, nil, err
		}
		d, err := boot.StartVirtiofsd(ctx, boot.VirtiofsdConfig{
			Bin: bin, Socket: filepath.Join(tmp, "vfs.sock"), Dir: dir, Cache: cache, Args: args,
			Name: ClientHostVhostuser,
		})
		if err != nil {
			os.RemoveAll(tmp)
			return nil, nil, err
		}
		if started != nil {
			started(d.PID())
		}
		rt := NewRoundTrips(OpGetattr)
		opts := opts
		opts.OnRoundTrip = rt.Observe
		fsys, err := govirtiofs.Dial(ctx, d.Socket(), opts)
		if err != nil {
			d.Kill()
			os.RemoveAll(tmp)
			return nil, nil, err
		}
		return Govirtiofs{FS: fsys, RT: rt}, func() error {
			err := fsys.Close()
			d.Stop() // it exits by itself once Close has disconnected
			os.RemoveAll(tmp)
			return err
		}, nil
	}}
}
