package affinity_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/mkstack/mkstack/affinity"
)

// Plan four cores on a two-socket machine whose NIC, eth0, sits on node 1,
// and see which interrupts serve the queue that core 0 will poll. The
// topology is read from a fixture tree; on a real machine the root is "/".
func ExampleTopology_Plan() {
	topo, err := affinity.ReadTopology("testdata/twosocket64")
	if err != nil {
		log.Fatal(err)
	}
	nic, err := topo.NIC("eth0")
	if err != nil {
		log.Fatal(err)
	}
	cpus, err := topo.Plan(4, affinity.PlanOptions{Interface: "eth0"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s is on node %d with %d queues\n", nic.Name, nic.Node, nic.RxQueues)
	fmt.Println("cores on cpus", cpus, "=", affinity.FormatCPUList(cpus))
	fmt.Println("queue 0 interrupts:", nic.QueueIRQsOf(0))

	_, err = topo.Plan(65, affinity.PlanOptions{})
	fmt.Println(errors.Is(err, affinity.ErrNotEnoughCPUs))
	// Output:
	// eth0 is on node 1 with 8 queues
	// cores on cpus [16 17 18 19] = 16-19
	// queue 0 interrupts: [100]
	// true
}

// A core's goroutine pins itself before it starts its loop; the pin lasts
// until the goroutine returns.
func ExamplePin() {
	cpus, err := affinity.Plan(2, "")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error)
	for _, cpu := range cpus {
		go func() {
			if err := affinity.Pin(cpu); err != nil {
				// errors.Is(err, affinity.ErrCPUNotAllowed) and friends say why.
				done <- err
				return
			}
			// ... the core's poll loop runs here, on cpu only ...
			done <- nil
		}()
	}
	for range cpus {
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}
}
