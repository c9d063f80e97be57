package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/boot"
)

// A helper process for TestPlacementQEMU: run as the test binary with placementHelperEnv set, it
// names one thread as QEMU names a vCPU's and another as an I/O thread's, then sleeps until
// killed.
const placementHelperEnv = "GOVIRTIOFS_PLACEMENT_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(placementHelperEnv) != "" {
		placementHelper()
		return
	}
	os.Exit(m.Run())
}

func placementHelper() {
	ready := make(chan struct{}, 2)
	for _, name := range []string{"CPU 0/TCG", "worker"} {
		go func() {
			runtime.LockOSThread()
			b, _ := unix.BytePtrFromString(name)
			unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(b)), 0, 0, 0)
			ready <- struct{}{}
			select {}
		}()
	}
	<-ready
	<-ready
	fmt.Println("ready")
	select {}
}

// lastCPU is the highest CPU the test may run on: any machine, one CPU or many, has one.
func lastCPU(t *testing.T) int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpu = i
		}
	}
	return cpu
}

// checkTask checks a thread's CPU set (just cpu) and scheduling policy.
func checkTask(t *testing.T, tid, cpu int, policy uint32, nice int) {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	if set.Count() != 1 || !set.IsSet(cpu) {
		t.Errorf("thread %d: %d CPUs, CPU %d set: %v; want only CPU %d", tid, set.Count(), cpu, set.IsSet(cpu), cpu)
	}
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	if a.Policy != policy {
		t.Errorf("thread %d: policy %d, want %d", tid, a.Policy, policy)
	}
	if policy == unix.SCHED_FIFO && a.Priority != placementPrio {
		t.Errorf("thread %d: priority %d, want %d", tid, a.Priority, placementPrio)
	}
	if policy == unix.SCHED_NORMAL && int(a.Nice) != nice {
		t.Errorf("thread %d: nice %d, want %d", tid, a.Nice, nice)
	}
}

// With one CPU to run on, the harness places nothing and says why.
func TestPlaceCPUOneCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	var one unix.CPUSet
	one.Set(lastCPU(t))
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	p := placeCPU(false)
	if p.active() || !strings.Contains(p.note("VM"), "not placed (the harness may run on 1 host CPU)") {
		t.Errorf("one CPU: active %v, note %q", p.active(), p.note("VM"))
	}
	// Nothing placed means nothing done, and no error, for any process.
	if err := p.server(1); err != nil {
		t.Errorf("server with no placement: %v", err)
	}
	if err := p.qemu(1); err != nil {
		t.Errorf("qemu with no placement: %v", err)
	}
	restore, err := p.self()
	if err != nil {
		t.Errorf("self with no placement: %v", err)
	}
	restore()
	if p := placeCPU(true); p.active() || !strings.Contains(p.note("Host"), "not placed (-unpinned)") {
		t.Errorf("disabled: active %v, note %q", p.active(), p.note("Host"))
	}
}

// A real virtiofsd: every thread of its process group (its sandboxed child included) goes on
// the CPU at SCHED_FIFO, and so do the queue threads it starts later.
func TestPlacementServer(t *testing.T) {
	dir := t.TempDir()
	d, err := boot.StartVirtiofsd(context.Background(), boot.VirtiofsdConfig{
		Socket: filepath.Join(t.TempDir(), "v.sock"), Dir: dir, Name: "placement",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill()
	p := &placement{cpu: lastCPU(t)}
	if err := p.server(d.PID()); err != nil {
		t.Fatalf("server: %v", err)
	}
	tids, err := groupTasks(d.PID())
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < 2 {
		t.Errorf("virtiofsd's group has %d threads (%v), want its child's too", len(tids), tids)
	}
	for tid := range tids {
		checkTask(t, tid, p.cpu, unix.SCHED_FIFO, 0)
	}
	// Bad input: a process group that does not exist.
	if err := p.server(1 << 30); err == nil {
		t.Error("server of a missing process group: no error")
	}
}

// QEMU's threads: the vCPU's (named "CPU 0/TCG") at nice -20, the others at SCHED_FIFO, all on
// the CPU. A stand-in process names its threads as QEMU does.
func TestPlacementQEMU(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), placementHelperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper: %q, %v", buf, err)
	}
	p := &placement{cpu: lastCPU(t)}
	if err := p.qemu(cmd.Process.Pid); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	tids, err := groupTasks(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	vcpus := 0
	for tid, comm := range tids {
		if isVCPU(comm) {
			vcpus++
			checkTask(t, tid, p.cpu, unix.SCHED_NORMAL, clientNice)
		} else {
			checkTask(t, tid, p.cpu, unix.SCHED_FIFO, 0)
		}
	}
	if vcpus != 1 {
		t.Errorf("%d vCPU threads in %v, want 1", vcpus, tids)
	}
}

// A QEMU without named vCPU threads is pinned, its priorities left alone, and the error says so.
func TestPlacementQEMUNoVCPU(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	defer func(w time.Duration) { vcpuWait = w }(vcpuWait)
	vcpuWait = 100 * time.Millisecond
	p := &placement{cpu: lastCPU(t)}
	err := p.qemu(cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), "no vCPU thread") {
		t.Fatalf("qemu without vCPU threads: %v", err)
	}
	checkTask(t, cmd.Process.Pid, p.cpu, unix.SCHED_NORMAL, 0)
}

// The harness's own threads go on the CPU at nice -20 and come back as they were.
func TestPlacementSelf(t *testing.T) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	p := &placement{cpu: lastCPU(t)}
	restore, err := p.self()
	if err != nil {
		t.Fatal(err)
	}
	tids, err := selfTasks()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		checkTask(t, tid, p.cpu, unix.SCHED_NORMAL, clientNice)
	}
	restore()
	tids, _ = selfTasks()
	for _, tid := range tids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err == nil && set != orig {
			t.Errorf("thread %d after restore: %d CPUs, want %d", tid, set.Count(), orig.Count())
		}
		if a, err := unix.SchedGetAttr(tid, 0); err == nil && a.Nice != 0 {
			t.Errorf("thread %d after restore: nice %d, want 0", tid, a.Nice)
		}
	}
}

func TestStatPgrp(t *testing.T) {
	for _, tt := range []struct {
		stat string
		want int
		ok   bool
	}{
		{"123 (qemu-system-x86) S 1 123 123 0 -1", 123, true},
		{"7 (a) b) (c) R 1 42 7 0", 42, true},
		{"7 (x", 0, false},
		{"7 (x) S 1", 0, false},
		{"7 (x) S 1 notanumber", 0, false},
	} {
		if got, ok := statPgrp(tt.stat); got != tt.want || ok != tt.ok {
			t.Errorf("statPgrp(%q) = %d, %v; want %d, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}
