//go:build !linux

package virtio

import "time"

func nanosleep(d time.Duration) { time.Sleep(d) }
