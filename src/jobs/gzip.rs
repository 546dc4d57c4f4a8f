//! The gzip job's core: compress a request body into an RFC 1952 gzip stream.
//!
//! Like `heavy`, it is pure and synchronous and knows nothing of cores,
//! channels or HTTP: the `POST /gzip` route (not wired here) hands it the
//! collected body and a `should_stop` closure that reads the job's
//! CancelToken, and turns the bytes it returns into an `application/gzip`
//! answer. The input is fed to the compressor in steps of at most
//! [`CHECK_EVERY`] bytes (64 KiB, the contract's bound) with a cancel check
//! before each. [`parse_level`] reads `?level=L` the way `http::query`
//! reads `n`.
//!
//! Compression is flate2 with the zlib-rs backend (pure Rust, no C build),
//! which benches/gzip.rs measured faster than flate2's default miniz_oxide
//! at level 6 on the same bytes.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::Cancelled;
use crate::http::query::parse_whole;

/// The level when a request names none. Default is 6, as `gzip` itself.
pub const DEFAULT_LEVEL: u32 = 6;
/// The fastest level accepted.
pub const MIN_LEVEL: u32 = 1;
/// The smallest output level accepted.
pub const MAX_LEVEL: u32 = 9;
/// Input bytes compressed between two cancel checks, at most: 64 KiB.
pub const CHECK_EVERY: usize = 64 * 1024;

/// Compresses `input` into one gzip member (RFC 1952: header with mtime 0 and
/// no name, deflate data, CRC-32 and length trailer).
///
/// `level` is 1 (fastest) to 9 (smallest); [`parse_level`] only gives those,
/// and anything else is clamped into that range. `should_stop` is called
/// before each step of at most [`CHECK_EVERY`] input bytes, so a job over N
/// bytes calls it ceil(N / 64 KiB) times when nothing stops it, and j + 1
/// times when it says stop after j steps; an empty input calls it never and
/// gives a valid gzip of nothing (20 bytes). Returns the whole stream, or
/// `Err(Cancelled)` when `should_stop` returned true.
pub fn gzip(
    input: &[u8],
    level: u32,
    mut should_stop: impl FnMut() -> bool,
) -> Result<Vec<u8>, Cancelled> {
    let level = level.clamp(MIN_LEVEL, MAX_LEVEL);
    // Text at level 6 shrinks to about a third, so half the input is rarely
    // outgrown, and then only once.
    let out = Vec::with_capacity(input.len() / 2 + 64);
    let mut encoder = GzEncoder::new(out, Compression::new(level));
    for step in input.chunks(CHECK_EVERY) {
        if should_stop() {
            return Err(Cancelled);
        }
        // Writing into a Vec cannot fail, and neither can deflate on valid state.
        encoder
            .write_all(step)
            .expect("gzip into memory cannot fail");
    }
    Ok(encoder.finish().expect("gzip into memory cannot fail"))
}

/// `level` from a query string: absent gives [`DEFAULT_LEVEL`]; present must
/// be plain ASCII decimal digits with a value in 1..=9 (`level=06` is 6).
/// The error is a one-line reason for a 400 body, showing at most 32
/// characters of the raw value.
pub fn parse_level(query: &str) -> Result<u32, String> {
    parse_whole(query, "level", DEFAULT_LEVEL, MIN_LEVEL..=MAX_LEVEL)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// xorshift64*: deterministic bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// `len` bytes: runs of random bytes between runs of log-like text.
    fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        let words = [
            "GET",
            "/fast?id=",
            "200",
            "slow_threaded",
            "user",
            "ok",
            "\n",
        ];
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            if rng.next().is_multiple_of(4) {
                for _ in 0..rng.next() % 4096 {
                    out.push(rng.next() as u8);
                }
            } else {
                for _ in 0..rng.next() % 512 {
                    out.extend_from_slice(words[(rng.next() % 7) as usize].as_bytes());
                    out.extend_from_slice((rng.next() % 1000).to_string().as_bytes());
                    out.push(b' ');
                }
            }
        }
        out.truncate(len);
        out
    }

    fn gunzip(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn never() -> bool {
        false
    }

    /// Magic, deflate method, and ISIZE (length mod 2^32) as RFC 1952 lays them out.
    fn assert_gzip_frame(stream: &[u8], input_len: usize) {
        assert!(stream.len() >= 18, "{} bytes", stream.len());
        assert_eq!(&stream[..3], &[0x1f, 0x8b, 8], "ID1 ID2 CM");
        let isize = u32::from_le_bytes(stream[stream.len() - 4..].try_into().unwrap());
        assert_eq!(isize, input_len as u32);
    }

    #[test]
    fn round_trips_byte_for_byte() {
        let mib = 1024 * 1024;
        let mut big = mixed(8 * mib, 7);
        big.extend(b"heavylift ".iter().cycle().take(8 * mib));
        let cases: Vec<(Vec<u8>, u32)> = vec![
            (Vec::new(), 6),
            (vec![0x42], 6),
            (vec![0; 1], 1),
            (mixed(mib, 1), 6),
            (mixed(mib, 2), 9),
            (mixed(CHECK_EVERY + 1, 3), 1),
            (big, 1),
        ];
        for (input, level) in cases {
            let stream = gzip(&input, level, never).unwrap();
            assert_gzip_frame(&stream, input.len());
            assert!(
                gunzip(&stream) == input,
                "{} bytes at level {level}",
                input.len()
            );
        }
    }

    #[test]
    fn empty_input_is_a_valid_gzip_of_nothing() {
        let stream = gzip(b"", DEFAULT_LEVEL, || panic!("no step, no check")).unwrap();
        assert_gzip_frame(&stream, 0);
        assert_eq!(stream.len(), 20, "10 header + 2 empty block + 8 trailer");
        assert!(gunzip(&stream).is_empty());
    }

    #[test]
    fn levels_change_the_output_and_out_of_range_levels_clamp() {
        let input = mixed(1024 * 1024, 4);
        let fastest = gzip(&input, 1, never).unwrap();
        let smallest = gzip(&input, 9, never).unwrap();
        assert!(
            smallest.len() < fastest.len(),
            "{} vs {}",
            smallest.len(),
            fastest.len()
        );
        assert!(fastest.len() < input.len() * 3 / 4, "mixed data compresses");
        assert_eq!(gzip(&input, 0, never).unwrap(), fastest);
        assert_eq!(gzip(&input, 42, never).unwrap(), smallest);
    }

    #[test]
    fn checks_the_cancel_flag_every_64_kib() {
        for (len, steps) in [
            (0, 0),
            (1, 1),
            (CHECK_EVERY, 1),
            (CHECK_EVERY + 1, 2),
            (1024 * 1024, 16),
            (1024 * 1024 + 5, 17),
        ] {
            let mut calls = 0;
            gzip(&vec![7; len], 6, || {
                calls += 1;
                false
            })
            .unwrap();
            assert_eq!(calls, steps, "{len} bytes");
        }
    }

    #[test]
    fn stops_at_the_first_check_after_the_flag_is_set() {
        let input = mixed(1024 * 1024, 5);
        for j in [0, 1, 7, 15] {
            let mut calls = 0;
            let outcome = gzip(&input, 6, || {
                calls += 1;
                calls > j
            });
            assert_eq!(outcome, Err(Cancelled));
            assert_eq!(calls, j + 1, "stop after {j} steps of 64 KiB");
        }
    }

    #[test]
    fn system_gzip_reads_our_stream() {
        use std::process::{Command, Stdio};
        let input = mixed(300 * 1024, 6);
        let stream = gzip(&input, 6, never).unwrap();
        let child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("no gzip on PATH; skipped");
            return;
        };
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&stream));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        assert!(
            out.stdout == input,
            "gzip -dc gave {} bytes",
            out.stdout.len()
        );
    }

    #[test]
    fn level_cases() {
        assert_eq!(parse_level(""), Ok(DEFAULT_LEVEL));
        assert_eq!(parse_level("id=3"), Ok(DEFAULT_LEVEL));
        assert_eq!(parse_level("level=1"), Ok(1));
        assert_eq!(parse_level("x=1&level=9"), Ok(9));
        assert_eq!(parse_level("level=06"), Ok(6));
        assert_eq!(parse_level("level=%35"), Ok(5), "decoded first");
        for bad in [
            "level",
            "level=",
            "level=0",
            "level=10",
            "level=-1",
            "level=+5",
            "level=%2B5",
            "level= 5",
            "level=5a",
            "level=99999999999999999999999",
        ] {
            let why = parse_level(bad).unwrap_err();
            assert!(why.contains("from 1 to 9"), "{bad}: {why}");
        }
        let long = format!("level={}", "9".repeat(100));
        assert!(parse_level(&long).unwrap_err().contains("..."));
    }
}
