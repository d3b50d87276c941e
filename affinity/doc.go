// Package affinity owns where mkstack's code runs: the machine's CPU
// topology, pinning a goroutine to one CPU, choosing the CPUs for N cores,
// and steering a NIC queue's interrupts to the core that polls the queue.
//
// # What it owns
//
// The topology (ReadTopology) comes from sysfs: present and online CPUs,
// each CPU's NUMA node and package, its SMT siblings (the other hardware
// threads of its physical core), and for a network interface (Topology.NIC)
// the NUMA node of its device, its queue counts and the interrupts of its
// queues (from the device's msi_irqs and the names in /proc/interrupts).
// Every function that reads the machine takes a root directory, "/" for
// this machine, so tests read fixture trees laid out like sysfs and procfs
// (testdata/ holds a two-socket, 64-CPU machine and a small one).
//
// Pin binds the calling goroutine to one CPU. Plan (and Topology.Plan)
// chooses CPUs for N cores: the NIC's NUMA node first, one hardware thread
// per physical core before any SMT sibling, CPU 0 last. SetIRQAffinity and
// SetQueueIRQAffinity write /proc/irq/N/smp_affinity_list, so that queue
// i's interrupts arrive at the CPU of core i.
//
// CPU sets are []int, sorted, in and out; ParseCPUList and FormatCPUList
// convert to and from the kernel's list format ("0-3,8").
//
// # The allowed set
//
// A process may be confined to some CPUs (taskset, numactl, a container's
// cgroup cpuset). AllowedCPUs is that set for the process as a whole, read
// once as the package initialises, not the calling thread's mask: after
// Pin, a thread's own mask is a single CPU, and asking it would make every
// later check think the process owns just that CPU.
//
// # Why Pin never unlocks
//
// Pin calls runtime.LockOSThread and then sched_setaffinity on the thread,
// and never calls runtime.UnlockOSThread. An unlocked thread returns to the
// Go scheduler's pool and runs whatever goroutine comes next; with its mask
// narrowed, that goroutine would be confined to one CPU without knowing it,
// and the runtime offers no hook to widen the mask back. Keeping the lock
// makes the thread belong to the pinned goroutine until it exits, and a
// goroutine that exits while locked takes its thread with it: the runtime
// ends the thread rather than reuse it. This suits mkstack's cores, each a
// goroutine that runs one loop for the life of the stack.
//
// # Errors
//
// Errors wrap sentinels to match with errors.Is: ErrNoSuchCPU,
// ErrCPUOffline, ErrCPUNotAllowed (inside a *CPUError, whose message names
// the CPU and the set it is missing from), ErrNotEnoughCPUs and
// ErrNoSuchInterface.
//
// # What it must not do
//
// It must not start goroutines: it pins the caller's goroutine, and a core
// runtime that owns its goroutines (package core) decides which exist. It
// holds no state but the allowed set read at start, and it is the one
// place, with the NIC drivers, where these system calls are made, so the
// stack above stays portable and testable.
package affinity
