package affinity

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetIRQAffinity steers interrupt irq to cpus by writing them to
// ROOT/proc/irq/IRQ/smp_affinity_list (ROOT is t.Root). Every CPU must be
// present and online (a *CPUError otherwise); the process's allowed set does
// not matter, since the interrupt is not the process. Writing the real file
// needs CAP_SYS_ADMIN, and the kernel refuses (EIO) for interrupts whose
// affinity it manages itself; the error then says so.
//
// Steering a queue's interrupt to the core that polls the queue keeps the
// wake-up (and the cache lines the driver touches) on that core.
func (t *Topology) SetIRQAffinity(irq int, cpus ...int) error {
	return t.setIRQAffinity("irq "+strconv.Itoa(irq)+" affinity", irq, cpus)
}

// setIRQAffinity is SetIRQAffinity with op naming what is being done in
// errors.
func (t *Topology) setIRQAffinity(op string, irq int, cpus []int) error {
	if irq < 0 {
		return fmt.Errorf("affinity: %s: no such irq", op)
	}
	if len(cpus) == 0 {
		return fmt.Errorf("affinity: %s: no cpus given", op)
	}
	for _, c := range cpus {
		if err := t.checkCPU(op, c, false); err != nil {
			return err
		}
	}
	path := t.irqPath(irq)
	// No O_CREATE: like procfs, a missing file is an error, not a new file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("affinity: %s: %w", op, err)
	}
	// One write: procfs parses each write(2) on its own.
	_, err = f.Write([]byte(FormatCPUList(cpus) + "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, unix.EIO) {
		return fmt.Errorf("affinity: %s: write %s: %w (the kernel manages this interrupt's affinity)", op, path, err)
	}
	if err != nil {
		return fmt.Errorf("affinity: %s: %w", op, err)
	}
	return nil
}

// IRQAffinity reads the CPUs interrupt irq may be delivered to, from
// ROOT/proc/irq/IRQ/smp_affinity_list.
func (t *Topology) IRQAffinity(irq int) ([]int, error) {
	cpus, err := readCPUListFile(t.irqPath(irq))
	if err != nil {
		return nil, fmt.Errorf("affinity: irq %d affinity: %w", irq, err)
	}
	return cpus, nil
}

// SetQueueIRQAffinity steers every queue interrupt of nic to one CPU: those
// of queue q to cpus[q % len(cpus)]. With cpus from Plan, queue i's
// interrupts go to the CPU of core i, the core that polls queue i. It stops
// at the first failure.
func (t *Topology) SetQueueIRQAffinity(nic *NIC, cpus []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("affinity: %s queue irq affinity: no cpus given", nic.Name)
	}
	for _, q := range nic.QueueIRQs {
		op := fmt.Sprintf("%s queue %d irq %d affinity", nic.Name, q.Queue, q.IRQ)
		if err := t.setIRQAffinity(op, q.IRQ, []int{cpus[q.Queue%len(cpus)]}); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) irqPath(irq int) string {
	return t.path("proc/irq", strconv.Itoa(irq), "smp_affinity_list")
}
