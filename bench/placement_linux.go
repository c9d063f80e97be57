package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Host CPU placement. A round trip of a guest's request to a virtiofsd (or to QEMU's 9p server)
// starts when the vCPU thread writes the queue's eventfd and the server's thread wakes. Measured
// on a 2-CPU host with perf sched (rtbench, GETATTR): a server thread woken on the vCPU thread's
// own CPU ran after 4 µs (p50; it preempts the spinning vCPU), one woken on the other CPU after
// 26 µs (p50: that CPU was halted, the host being a virtual machine itself, or running another
// process), and the scheduler put it on either from one phase to the next: guest round trips
// were 13-20 µs in some phases and 45-65 µs in others of the same boot. The same holds on the host side for a
// client thread and its virtiofsd (host-vhostuser: 8-11 µs on one CPU, 33-59 µs across two).
// So for the round-trip workloads (getattr, which compares the guest's transport with the
// host's) the harness puts each side on one host CPU (placeCPU): in the VM QEMU (every thread)
// and every virtiofsd of the VM, once the guest asks for it (PlaceLine) before running them last;
// in the host phase the harness itself and host-vhostuser's virtiofsd. The servers (every virtiofsd thread, QEMU's threads other than the
// vCPUs', where 9p is served) run SCHED_FIFO at the lowest priority, so that a wake-up preempts
// whatever else runs on that CPU at once; the client side (the vCPU threads, the harness)
// runs at nice -20, so that other processes on a shared machine take little of its CPU. The rest
// of the machine keeps the other CPUs. Every other workload runs unplaced: one CPU does not suit
// every client alike. Measured back to back with every workload placed (4 workloads x 3 rounds,
// twice each way), the guest kernel's virtiofs and 9p, which overlap their own work with the
// server's on another CPU, ran stat-cold, open-read-close and create 20-50% slower placed than
// not, while govirtiofs's spinning clients ran them up to 2x faster; its GETATTR round trip went
// from 46-51 µs to 14 µs (host-vhostuser: 10-16 µs either way).

// placementPrio is the SCHED_FIFO priority of the servers: the lowest.
const placementPrio = 1

// clientNice is the nice value of the client side: the vCPU threads, the harness.
const clientNice = -20

// vcpuWait bounds the wait for QEMU's vCPU threads to appear after its start (a variable for
// the tests).
var vcpuWait = 10 * time.Second

// placement is where a phase of the harness runs; see the comment above. The zero value places
// nothing.
type placement struct {
	cpu  int    // the host CPU of the phase; -1: not placed
	why  string // why not placed, if cpu < 0
	warn []string
	used bool // a round-trip workload was placed
}

// placeCPU chooses the CPU for placement among those the harness may run on: the highest, if
// there are at least two (the others are left to the rest of the machine). With one CPU, or if
// the set cannot be read, it returns a placement that places nothing and says why.
func placeCPU(disabled bool) *placement {
	if disabled {
		return &placement{cpu: -1, why: "-unpinned"}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return &placement{cpu: -1, why: fmt.Sprintf("the harness's CPU set is unreadable: %v", err)}
	}
	if set.Count() < 2 {
		return &placement{cpu: -1, why: fmt.Sprintf("the harness may run on %d host CPU", set.Count())}
	}
	cpu := -1
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpu = i
		}
	}
	return &placement{cpu: cpu}
}

// active reports whether p places anything.
func (p *placement) active() bool { return p != nil && p.cpu >= 0 }

// warnf records a placement step that failed: the run goes on and the report says so.
func (p *placement) warnf(format string, a ...any) {
	p.warn = append(p.warn, fmt.Sprintf(format, a...))
}

// groupTasks returns the thread IDs of every process in process group pgid (a started virtiofsd
// or QEMU leads one; virtiofsd forks its sandboxed server into it), with each thread's name.
func groupTasks(pgid int) (map[int]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	tids := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		if g, ok := statPgrp(string(st)); !ok || g != pgid {
			continue
		}
		ts, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, t := range ts {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
			tids[tid] = strings.TrimSpace(string(comm))
		}
	}
	if len(tids) == 0 {
		return nil, fmt.Errorf("no process in group %d", pgid)
	}
	return tids, nil
}

// statPgrp returns the process group from the text of /proc/PID/stat (field 5; the name in
// field 2 may hold spaces and parentheses, so fields are counted after its last ')').
func statPgrp(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 3 {
		return 0, false
	}
	g, err := strconv.Atoi(f[2])
	return g, err == nil
}

// isVCPU reports whether a QEMU thread name is a vCPU's ("CPU 0/TCG" with -name
// debug-threads=on).
func isVCPU(comm string) bool { return strings.HasPrefix(comm, "CPU ") }

func pin(tid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(tid, &set)
}

func setFIFO(tid int) error {
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: placementPrio}, 0)
}

func setNice(tid, nice int) error {
	if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0); err != nil {
		return err
	}
	return unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
}

// server puts every thread of process group pgid (a virtiofsd) on p's CPU at SCHED_FIFO.
// Threads it starts later inherit both.
//
// Errors: the first failing step (the group is gone, or the calls are not permitted).
func (p *placement) server(pgid int) error {
	if !p.active() {
		return nil
	}
	return eachNewTask(pgid, func(tid int, _ string) error {
		if err := pin(tid, p.cpu); err != nil {
			return fmt.Errorf("pinning thread %d: %w", tid, err)
		}
		if err := setFIFO(tid); err != nil {
			return fmt.Errorf("SCHED_FIFO for thread %d: %w", tid, err)
		}
		return nil
	})
}

// eachNewTask calls f for every thread of process group pgid, then again for those started
// meanwhile (by a thread not yet placed) until a pass finds none new, at most placePasses
// passes. A thread that is gone by the time f acts on it (ESRCH) is no error.
//
// Errors: the group has no process, or the first error of f.
func eachNewTask(pgid int, f func(tid int, comm string) error) error {
	done := map[int]bool{}
	for range placePasses {
		tids, err := groupTasks(pgid)
		if err != nil {
			return err
		}
		fresh := false
		for tid, comm := range tids {
			if done[tid] {
				continue
			}
			fresh = true
			done[tid] = true
			if err := f(tid, comm); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
		if !fresh {
			break
		}
	}
	return nil
}

// placePasses bounds eachNewTask's passes.
const placePasses = 5

// qemu places QEMU (process group pgid): every thread on p's CPU, the vCPU threads at nice
// clientNice, the others at SCHED_FIFO. It first waits (up to vcpuWait) for a vCPU thread: a
// thread that QEMU's main thread starts after it went SCHED_FIFO would inherit that, and a
// spinning vCPU at SCHED_FIFO would starve the servers. Without a vCPU thread by then it pins
// the threads and changes no priority.
//
// Errors: the first failing step.
func (p *placement) qemu(pgid int) error {
	if !p.active() {
		return nil
	}
	var tids map[int]string
	deadline := time.Now().Add(vcpuWait)
	vcpus := 0
	for {
		var err error
		if tids, err = groupTasks(pgid); err != nil {
			return err
		}
		for _, comm := range tids {
			if isVCPU(comm) {
				vcpus++
			}
		}
		if vcpus > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if vcpus == 0 {
		if err := eachNewTask(pgid, func(tid int, _ string) error { return pin(tid, p.cpu) }); err != nil {
			return fmt.Errorf("pinning: %w", err)
		}
		return fmt.Errorf("no vCPU thread (named \"CPU n/...\") within %v: QEMU pinned, priorities unchanged", vcpuWait)
	}
	// The vCPUs first: none may be left at SCHED_FIFO, nor start from a thread at SCHED_FIFO.
	err := eachNewTask(pgid, func(tid int, comm string) error {
		if !isVCPU(comm) {
			return nil
		}
		if err := pin(tid, p.cpu); err != nil {
			return fmt.Errorf("pinning vCPU thread %d: %w", tid, err)
		}
		if err := setNice(tid, clientNice); err != nil {
			return fmt.Errorf("nice %d for vCPU thread %d: %w", clientNice, tid, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return eachNewTask(pgid, func(tid int, comm string) error {
		if isVCPU(comm) {
			return nil
		}
		if err := pin(tid, p.cpu); err != nil {
			return fmt.Errorf("pinning QEMU thread %d: %w", tid, err)
		}
		if err := setFIFO(tid); err != nil {
			return fmt.Errorf("SCHED_FIFO for QEMU thread %d: %w", tid, err)
		}
		return nil
	})
}

// self places the harness's own threads on p's CPU at nice clientNice, for the host phase, and
// returns the function that puts them back (the CPU set and nice value they had; threads
// started meanwhile inherit the placement and are put back too).
//
// Errors: the first failing step; the threads are then already put back.
func (p *placement) self() (restore func(), err error) {
	if !p.active() {
		return func() {}, nil
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return nil, err
	}
	nice, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return nil, err
	}
	// getpriority's system call returns 20-nice, so that it is never negative.
	origNice := 20 - nice
	restore = func() {
		tids, _ := selfTasks()
		for _, tid := range tids {
			unix.SchedSetaffinity(tid, &orig)
			unix.Setpriority(unix.PRIO_PROCESS, tid, origNice)
		}
	}
	tids, err := selfTasks()
	if err != nil {
		return nil, err
	}
	for _, tid := range tids {
		if err := pin(tid, p.cpu); err != nil && !errors.Is(err, unix.ESRCH) {
			restore()
			return nil, fmt.Errorf("pinning the harness's thread %d: %w", tid, err)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, clientNice); err != nil && !errors.Is(err, unix.ESRCH) {
			restore()
			return nil, fmt.Errorf("nice %d for the harness's thread %d: %w", clientNice, tid, err)
		}
	}
	return restore, nil
}

func selfTasks() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// note says in results.md how phase ("host" or "VM") was placed.
func (p *placement) note(phase string) string {
	if !p.active() {
		return fmt.Sprintf("%s phase: not placed (%s).", phase, p.why)
	}
	if !p.used {
		return fmt.Sprintf("%s phase: not placed (no round-trip workload ran).", phase)
	}
	s := fmt.Sprintf("%s phase: round-trip workloads on host CPU %d.", phase, p.cpu)
	if len(p.warn) > 0 {
		s += " Placement failed in part: " + strings.Join(p.warn, "; ") + "."
	}
	return s
}
