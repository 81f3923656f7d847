// Package lifecycle is the one start/ready/stop pattern every long-running
// Orrery component follows, and the manager that runs a set of them in order.
//
// It owns ordering only: it never knows what a component does, and it must
// never start goroutines on a component's behalf.
package lifecycle
