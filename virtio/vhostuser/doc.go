// Package vhostuser is a vhost-user front end (QEMU docs/interop/
// vhost-user.rst) that implements virtio.Transport over a unix socket to a
// back end such as the C virtiofsd, so that the driver stack runs on a
// host, without a VM.
//
// Dial connects and negotiates (GET_FEATURES, protocol features, queue
// count, SET_OWNER, GET_CONFIG when offered), and creates the DMA memory:
// one memfd region, mapped here and handed to the back end with
// SET_MEM_TABLE and SCM_RIGHTS, from which Memory allocates. Device
// addresses in descriptors are "guest-physical" addresses in that memory
// table; SET_VRING_ADDR takes this process's virtual addresses.
//
// vhost-user has no status register; SetStatus maps the virtio
// initialisation steps (virtio spec 1.2 section 3.1.1) onto messages, in
// the order QEMU's vhost_dev_start sends them: FEATURES_OK sends
// SET_FEATURES and SET_MEM_TABLE, EnableQueue sends SET_VRING_NUM,
// SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK and SET_VRING_CALL, and
// DRIVER_OK enables the rings (SET_VRING_ENABLE), which start disabled once
// VHOST_USER_F_PROTOCOL_FEATURES is acked. Notify writes the queue's kick
// eventfd. Completions are found by polling used idx: the call eventfd is
// handed over because back ends expect one, but a signal on it is not a
// reply.
//
// A back end that closes the socket (virtiofsd exits, or is killed) is
// noticed by a goroutine polling the socket for hang-up: Done closes and
// later calls return virtio.ErrDeviceGone.
//
// Lock order:
//
//	Transport.mu (held across one message exchange)
//	  Arena.mu
package vhostuser
