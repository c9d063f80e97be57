// Package virtiotest provides a fake virtio device with real semantics for
// tests of virtio drivers, in the pattern of net/http/httptest.
//
// Memory is plain Go memory that hands out buffers at fake device addresses
// (distinct from their virtual addresses, so a driver that puts the wrong
// kind of address into a ring is caught). Transport implements
// virtio.Transport on top of it: feature negotiation, a status register,
// a config space, and for each enabled queue a device goroutine that reads
// the split rings from that memory (virtio spec 1.2 section 2.7), walks
// descriptor chains (direct and indirect), calls a Handler with the
// device-readable and device-writable buffers, and publishes used entries.
// It honours EVENT_IDX in both directions (avail_event for notifications,
// used_event to count would-be interrupts).
//
// Tests inject faults with Transport.InjectUsed (a used entry the device
// makes up) and Transport.Disconnect (the device goes away).
//
// Lock order:
//
//	Transport.mu
//	  deviceQueue.mu
//	    Memory's arena lock
package virtiotest
