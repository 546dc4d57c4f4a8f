// heavylift patch 16: a ring of provided buffers (IORING_REGISTER_PBUF_RING,
// Linux 5.19) for socket receives on the main ring.
//
// A receive armed with IOSQE_BUFFER_SELECT holds no memory while it waits:
// the kernel takes a buffer from this ring only when bytes arrive, and the
// completion names it (IORING_CQE_F_BUFFER, the id in the flags' high 16
// bits). The bytes are then copied out and the buffer goes back to the ring
// by writing one entry and advancing the shared tail: no system call.
use crate::uring_sys;
use std::{
    alloc::{alloc_zeroed, dealloc, Layout},
    cell::Cell,
    os::unix::io::RawFd,
    rc::Rc,
    sync::atomic::{AtomicU16, Ordering},
};

/// The kernel's `struct io_uring_buf`; entry 0's `resv` is the ring's tail.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// The kernel's `struct io_uring_buf_reg`.
#[repr(C)]
struct BufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}

const IORING_REGISTER_PBUF_RING: libc::c_uint = 22;
const IORING_UNREGISTER_PBUF_RING: libc::c_uint = 23;
/// `sqe.ioprio` for a receive: arm the poll first, without trying the
/// receive (the caller has just found the socket empty).
pub(crate) const IORING_RECVSEND_POLL_FIRST: u16 = 1;
/// `cqe.flags`: the completion used a provided buffer, id in bits 16..32.
pub(crate) const IORING_CQE_F_BUFFER: u32 = 1;
/// `cqe.flags`: the socket still had bytes queued after this receive.
const IORING_CQE_F_SOCK_NONEMPTY: u32 = 1 << 2;
const IORING_CQE_BUFFER_SHIFT: u32 = 16;

/// The group id heavylift's receives select from (one group per ring).
pub(crate) const RECV_GROUP: u16 = 0x4c48;
/// Buffers in the ring: completions that can hold a buffer before their
/// task copies it out (a loop turn's worth; `wrk -c32` needs at most 32). A
/// receive that finds the ring empty completes with ENOBUFS and the stream
/// falls back to recv(2), so this bounds memory, not correctness.
const ENTRIES: u16 = 64;
/// Bytes per buffer: a request head of a typical client (curl, wrk,
/// browsers: 80-1500 bytes) fits in one; what a longer send leaves in the
/// socket is read with recv(2) straight after (see `SelectedBuf::more`).
/// The ring's RSS counts in `scripts/bench-conns.sh`'s memory per idle
/// connection (RSS growth over 15,000 connections): 128 x 4 KiB took it from
/// 0.97 to 1.01 KiB, 128 x 2 KiB to 0.99; 64 x 2 KiB (128 KiB) is the
/// size kept.
pub(crate) const BUF_SIZE: u32 = 2048;

/// One ring of [`ENTRIES`] buffers of [`BUF_SIZE`] bytes registered with one
/// io_uring instance (128 KiB per ring).
#[derive(Debug)]
pub(crate) struct BufRing {
    /// A descriptor of the ring of our own (see `register`).
    ring_fd: RawFd,
    entries: *mut RingEntry,
    bufs: *mut u8,
    /// The tail as we last published it.
    tail: Cell<u16>,
}

fn entries_layout() -> Layout {
    Layout::from_size_align(ENTRIES as usize * std::mem::size_of::<RingEntry>(), 4096).unwrap()
}

fn bufs_layout() -> Layout {
    Layout::from_size_align(ENTRIES as usize * BUF_SIZE as usize, 4096).unwrap()
}

impl BufRing {
    /// Registers a ring with the io_uring `ring_fd`; `None` when the kernel
    /// cannot (before 5.19) or memory is short, and the caller then keeps
    /// to poll plus recv(2).
    pub(crate) fn register(ring_fd: RawFd) -> Option<Rc<BufRing>> {
        // SAFETY: non-zero sizes; checked for null below.
        let entries = unsafe { alloc_zeroed(entries_layout()) } as *mut RingEntry;
        if entries.is_null() {
            return None;
        }
        let bufs = unsafe { alloc_zeroed(bufs_layout()) };
        if bufs.is_null() {
            unsafe { dealloc(entries as *mut u8, entries_layout()) };
            return None;
        }
        // SAFETY: the ring entries are memory we own, page-aligned, and
        // outlive the registration (freed only after `unregister`).
        let registered = unsafe {
            pbuf_ring(
                ring_fd,
                IORING_REGISTER_PBUF_RING,
                entries as u64,
                ENTRIES as u32,
            )
        };
        // Our own reference to the ring: it stays open (its requests
        // pending, none torn down) until `drop` has unregistered the
        // buffers, whenever glommio closes its descriptor, and the
        // unregistering can never reach another ring that reused the number.
        let own_fd = if registered {
            unsafe { libc::fcntl(ring_fd, libc::F_DUPFD_CLOEXEC, 0) }
        } else {
            -1
        };
        if own_fd < 0 {
            unsafe {
                if registered {
                    unregister(ring_fd);
                }
                dealloc(bufs, bufs_layout());
                dealloc(entries as *mut u8, entries_layout());
            }
            return None;
        }
        let ring = BufRing {
            ring_fd: own_fd,
            entries,
            bufs,
            tail: Cell::new(0),
        };
        for bid in 0..ENTRIES {
            ring.push(bid);
        }
        Some(Rc::new(ring))
    }

    /// Gives buffer `bid` back to the kernel.
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        // SAFETY: the index is masked into the ring; the kernel reads an
        // entry only between the old and the new tail, published below.
        unsafe {
            let entry = &mut *self.entries.add((tail & (ENTRIES - 1)) as usize);
            entry.addr = self.bufs.add(bid as usize * BUF_SIZE as usize) as u64;
            entry.len = BUF_SIZE;
            entry.bid = bid;
            let shared_tail = &*(std::ptr::addr_of_mut!((*self.entries).resv) as *const AtomicU16);
            shared_tail.store(tail.wrapping_add(1), Ordering::Release);
        }
        self.tail.set(tail.wrapping_add(1));
    }

    /// The id of the buffer a completion with `cqe_flags` used, if any.
    pub(crate) fn buffer_id(cqe_flags: u32) -> Option<u16> {
        (cqe_flags & IORING_CQE_F_BUFFER != 0)
            .then_some((cqe_flags >> IORING_CQE_BUFFER_SHIFT) as u16)
    }
}

/// Registers (`IORING_REGISTER_PBUF_RING`, with the ring at `ring_addr`
/// holding `entries`) or unregisters (`IORING_UNREGISTER_PBUF_RING`, both
/// zero) [`RECV_GROUP`] on the io_uring `ring_fd`; true when the kernel
/// did.
unsafe fn pbuf_ring(ring_fd: RawFd, opcode: libc::c_uint, ring_addr: u64, entries: u32) -> bool {
    let reg = BufReg {
        ring_addr,
        ring_entries: entries,
        bgid: RECV_GROUP,
        flags: 0,
        resv: [0; 3],
    };
    uring_sys::syscalls::io_uring_register(
        ring_fd,
        opcode,
        &reg as *const BufReg as *const libc::c_void,
        1,
    ) == 0
}

/// Unregisters [`RECV_GROUP`] from the io_uring `ring_fd`; true when it was
/// registered there. After it returns no request can select a buffer: those
/// still waiting complete with ENOBUFS.
unsafe fn unregister(ring_fd: RawFd) -> bool {
    pbuf_ring(ring_fd, IORING_UNREGISTER_PBUF_RING, 0, 0)
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: `ring_fd` is our own descriptor of the ring, so the ring
        // is still there. The kernel copies into a buffer only while it
        // selects one (in this thread's task work, under the ring's lock),
        // so once unregistered nothing writes into the memory. If it ever
        // fails, the memory is leaked rather than freed under the kernel.
        unsafe {
            if unregister(self.ring_fd) {
                dealloc(self.bufs, bufs_layout());
                dealloc(self.entries as *mut u8, entries_layout());
            }
            libc::close(self.ring_fd);
        }
    }
}

/// What a receive armed with buffer selection got: the ring it selects
/// from and, once completed with bytes, the buffer holding them. The
/// buffer goes back to the ring when this is dropped, so a receive whose
/// source was dropped before it completed returns its buffer too.
#[derive(Debug)]
pub(crate) struct SelectedBuf {
    ring: Rc<BufRing>,
    bid: Option<u16>,
    len: u32,
    pos: u32,
    /// More bytes may wait in the socket: the kernel said so, or they
    /// filled the whole buffer.
    more: bool,
}

impl SelectedBuf {
    pub(crate) fn new(ring: Rc<BufRing>) -> SelectedBuf {
        SelectedBuf {
            ring,
            bid: None,
            len: 0,
            pos: 0,
            more: false,
        }
    }

    /// Records the completion: buffer `bid` holds `len` bytes; `cqe_flags`
    /// are the completion's flags.
    pub(crate) fn fill(&mut self, bid: u16, len: usize, cqe_flags: u32) {
        debug_assert!(self.bid.is_none() && bid < ENTRIES);
        self.bid = Some(bid);
        self.len = (len as u32).min(BUF_SIZE);
        self.pos = 0;
        self.more = cqe_flags & IORING_CQE_F_SOCK_NONEMPTY != 0 || self.len == BUF_SIZE;
    }

    /// Whether more bytes may be waiting in the socket behind this
    /// receive's (a long upload): the reader should then go on with
    /// recv(2), not a receive per buffer.
    pub(crate) fn more(&self) -> bool {
        self.more
    }

    /// Whether a buffer is held (the receive completed with bytes).
    pub(crate) fn holds(&self) -> bool {
        self.bid.is_some()
    }

    /// Copies the bytes not yet taken into `out`; returns how many. The
    /// buffer goes back to the ring once all are taken.
    pub(crate) fn take_into(&mut self, out: &mut [u8]) -> usize {
        let Some(bid) = self.bid else {
            return 0;
        };
        let left = (self.len - self.pos) as usize;
        let n = left.min(out.len());
        // SAFETY: the kernel wrote `len` bytes into buffer `bid` and gave
        // it to us; it is not in the ring until `push`.
        unsafe {
            let src = self
                .ring
                .bufs
                .add(bid as usize * BUF_SIZE as usize + self.pos as usize);
            std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), n);
        }
        self.pos += n as u32;
        if self.pos == self.len {
            self.bid = None;
            self.ring.push(bid);
        }
        n
    }

    /// Bytes received and not yet taken.
    pub(crate) fn remaining(&self) -> usize {
        if self.bid.is_some() {
            (self.len - self.pos) as usize
        } else {
            0
        }
    }
}

impl Drop for SelectedBuf {
    fn drop(&mut self) {
        if let Some(bid) = self.bid.take() {
            self.ring.push(bid);
        }
    }
}
