//! The one integration test crate: real servers on 127.0.0.1:0, real sockets.
//! Each module covers one section of the contract.

mod util;

mod bodies;
mod cli;
mod client;
mod deadlines;
mod executor;
mod external_workers;
mod hostile_bytes;
mod http_conformance;
mod isolation;
mod limits;
mod overload;
mod ring_recv;
mod routes;
mod stats;
