//! A server with a custom fast handler and a custom heavy job, registered
//! through the same public API the `heavylift` binary uses for the seed routes.
//!
//! Run: `cargo run --release --example custom_job` then
//! `curl 'http://127.0.0.1:8899/primes?below=5000000'` and `curl http://127.0.0.1:8899/hello`.

use heavylift::{fast, offload, Cancelled, CoreLayout, Response, Router, ServeConfig, Server};

/// `below` from the query, if it is a number from 2 to 50,000,000.
fn below(query: &str) -> Option<u64> {
    heavylift::http::query::query_value(query, "below")
        .and_then(Result::ok)
        .and_then(|v| v.parse().ok())
        .filter(|v| (2..=50_000_000).contains(v))
}

/// Counts primes below `limit`, checking for cancellation every 10,000 numbers.
fn count_primes(limit: u64, mut should_stop: impl FnMut() -> bool) -> Option<u64> {
    let mut count = 0;
    for n in 2..limit {
        if n % 10_000 == 0 && should_stop() {
            return None;
        }
        if (2..).take_while(|d| d * d <= n).all(|d| n % d != 0) {
            count += 1;
        }
    }
    Some(count)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .init();
    let router = Router::new()
        .get(
            "/hello",
            fast(|req| Response::text(200, format!("hello from I/O core {}", req.io_core))),
        )
        .get(
            "/primes",
            offload(|input, ctx| {
                let below = below(&input.query).unwrap_or(2);
                let count = count_primes(below, || ctx.should_stop()).ok_or(Cancelled)?;
                Ok(Response::text(
                    200,
                    format!(
                        "{count} primes below {below} (compute core {})",
                        ctx.compute_core
                    ),
                ))
            })
            .check(|req| match below(req.query()) {
                Some(_) => Ok(()),
                None => Err(Response::text(400, "use ?below=N with 2 <= N <= 50000000")),
            }),
        );
    let cpus = CoreLayout::usable_cpus();
    let layout = CoreLayout::resolve(&cpus, None, None, None)?;
    let config = ServeConfig::new("127.0.0.1:8899".parse()?, layout);
    println!("listening on http://{}; Ctrl-C to stop", config.listen);
    Server::run_until_signal(config, router)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_primes_and_stops() {
        assert_eq!(super::count_primes(100, || false), Some(25));
        assert_eq!(super::count_primes(100_000, || true), None);
    }
}
