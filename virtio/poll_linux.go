package virtio

import (
	"syscall"
	"time"
)

// nanosleep blocks the calling thread for d; see Backoff for why not
// time.Sleep.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // EINTR only shortens the sleep
}
