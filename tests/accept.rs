//! The vendored glommio's accept on a non-blocking listener (patch 6 in
//! vendor/glommio/HEAVYLIFT.md): it waits for a connection even when the
//! ring's accept completes with EAGAIN, as it does on kernels before 5.18
//! and, on newer ones, once io_uring hands a request whose connections keep
//! being taken from under it (128 times) to its worker threads.
//!
//! The race is not forced: on the 2-core VM with kernel 6.18 the accept
//! without the retry failed here with EAGAIN in one run of four.

use std::io::ErrorKind;
use std::net::{TcpListener as StdListener, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

/// Connections another thread takes from under the pending accept; far
/// more than io_uring's 128 poll retries before it falls back to io-wq.
const STOLEN: usize = 10_000;

#[test]
fn an_accept_waits_while_another_thread_takes_every_connection() {
    let std_listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    // Two descriptors for one socket (one open file description, so the
    // O_NONBLOCK glommio sets is seen by both).
    let thief_listener = std_listener.try_clone().unwrap();
    let fd = std_listener.into_raw_fd();
    // Connections taken by the thief, and by glommio's accept.
    let taken = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));

    let thief = std::thread::spawn({
        let (taken, accepted) = (taken.clone(), accepted.clone());
        move || {
            // Off the executor's CPU (0), so that both run at once.
            if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
                core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
            }
            for i in 0..STOLEN {
                // Closed at once; the connection still waits in the queue.
                drop(TcpStream::connect(addr).unwrap());
                let deadline = Instant::now() + Duration::from_secs(30);
                // Until one of the two has taken connection i.
                while taken.load(SeqCst) + accepted.load(SeqCst) <= i {
                    match thief_listener.accept() {
                        Ok(_) => {
                            taken.fetch_add(1, SeqCst);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            assert!(Instant::now() < deadline, "connection {i} never accepted");
                            std::hint::spin_loop();
                        }
                        Err(e) => panic!("thief accept: {e}"),
                    }
                }
            }
            // The last one is left for glommio.
            drop(TcpStream::connect(addr).unwrap());
        }
    });

    let outcome = LocalExecutorBuilder::new(Placement::Fixed(0))
        // As heavylift's executors: glommio's default of 10 MiB per ring
        // is past a normal user's RLIMIT_MEMLOCK.
        .io_memory(64 << 10)
        .spawn({
            let (taken, accepted) = (taken.clone(), accepted.clone());
            move || async move {
                // SAFETY: `fd` is a bound, listening socket this executor
                // now owns.
                let listener = unsafe { <TcpListener as FromRawFd>::from_raw_fd(fd) };
                // Every accept must end in a connection, never in EAGAIN.
                while taken.load(SeqCst) + accepted.load(SeqCst) <= STOLEN {
                    match glommio::timer::timeout(Duration::from_secs(30), listener.accept()).await
                    {
                        Ok(_) => {
                            accepted.fetch_add(1, SeqCst);
                        }
                        Err(e) => {
                            return Err(format!(
                                "accept failed after {} (thief {}): {e}",
                                accepted.load(SeqCst),
                                taken.load(SeqCst)
                            ))
                        }
                    }
                }
                Ok(())
            }
        })
        .unwrap()
        .join()
        .unwrap();
    thief.join().unwrap();
    outcome.unwrap();
    let (taken, accepted) = (taken.load(SeqCst), accepted.load(SeqCst));
    assert_eq!(
        taken + accepted,
        STOLEN + 1,
        "thief {taken}, glommio {accepted}"
    );
    // The race this is about happened often.
    assert!(taken > 128, "the thief took only {taken} of {STOLEN}");
}
