//! The heavy job: the seed's `heavy_lifting`, and the only CPU-heavy code in the crate.
//!
//! For k in 0..n it computes k! exactly, each k! from scratch as the seed does (no k! is
//! built from (k-1)!: the work is the point), and calls `should_stop` before every step, a
//! step being one k. It is pure and synchronous and knows nothing of cores, channels or
//! HTTP: the compute worker (jobs/worker.rs) runs it with a closure that reads the job's
//! CancelToken (and yields when its core is shared), and the `/slow` route runs it inline
//! on its I/O core, which is the point of that route. It stops at the report; turning a
//! report into a body is the route's business.
//!
//! # How one k! is computed
//! k! = odd(k!) << (k - popcount(k)), since k - popcount(k) is the power of two in k!
//! (Legendre). The odd part comes from Luschny's prime swing, odd(k!) = odd((k/2)!)^2 *
//! odd(swing(k)) with swing(k) = k! / (k/2)!^2, whose factorisation is read off the
//! quotients k / p^i, so a step is log2(k) squarings plus a few small products. Prime
//! powers are packed into u64 words before any bignum is touched, and the words are
//! multiplied in a balanced tree. Bignums are `dashu_int::UBig` (Karatsuba, Toom-3,
//! dedicated squaring). The only thing the steps share is the table of primes, which
//! depends on no factorial. On the 2-core dev machine this runs n = 2000 about 4x and
//! n = 3500 about 6x faster than CPython's `math.factorial` loop, and n = 20000 in well
//! under 10 s; benches/heavy.rs and scripts/python_baseline.py measure both.

use std::hint::black_box;
use std::time::Instant;

use dashu_int::ops::BitTest;
use dashu_int::UBig;

pub use super::Cancelled;

/// The job size when a request names none. Default is 2000.
pub const DEFAULT_N: u32 = 2000;

/// The largest job size the contract accepts.
pub const MAX_N: u32 = 20_000;

/// Odd parts of k! up to this k are computed in a u64 (odd(20!) < 2^64).
const SMALL_K: u32 = 20;

/// Product-tree leaves multiply up to this many words into a bignum one by one.
const LEAF_WORDS: usize = 16;

/// What one finished job reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeavyReport {
    /// The job size: k ran over 0..n.
    pub n: u32,
    /// Decimal digits of (n-1)!, the last factorial computed; 0 when n is 0.
    pub digits: u64,
    /// The job's own compute time in seconds (the loop and the digit count), which is
    /// what the seed prints, not the time spent queued.
    pub seconds: f64,
}

/// Runs k! for k in 0..n, each from scratch.
///
/// `should_stop` is called before each step; when it returns true the job stops there
/// and returns `Err(Cancelled)`, so stopping after j steps calls it j + 1 times. The
/// contract keeps n in 1..=20000; n = 0 runs no step and reports 0 digits, and a larger
/// n just runs longer (the prime table grows as k does, never all at once).
pub fn heavy_lifting(
    n: u32,
    mut should_stop: impl FnMut() -> bool,
) -> Result<HeavyReport, Cancelled> {
    let started = Instant::now();
    let mut primes = Primes::up_to(n.saturating_sub(1).min(MAX_N));
    let mut last = None;
    for k in 0..n {
        if should_stop() {
            return Err(Cancelled);
        }
        primes.cover(k);
        last = Some(black_box(factorial_with(k, &primes)));
    }
    let digits = last.as_ref().map_or(0, decimal_digits);
    Ok(HeavyReport {
        n,
        digits,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Exact k!, with a prime table of its own.
pub fn factorial(k: u32) -> UBig {
    factorial_with(k, &Primes::up_to(k))
}

/// The number of decimal digits of `x`, exactly `x.to_string().len()` but without the
/// radix conversion: a float guess of floor(log10 x) checked against powers of ten.
pub fn decimal_digits(x: &UBig) -> u64 {
    let bits = x.bit_len();
    if bits <= 1 {
        return 1; // "0" or "1"
    }
    // 2^(bits-1) <= x, so floor(log10 x) >= floor((bits-1) * log10 2); the guess is at
    // most one off, and the two loops below settle it exactly.
    let mut e = ((bits - 1) as f64 * std::f64::consts::LOG10_2) as usize;
    let mut p = pow10(e);
    while e > 0 && *x < p {
        e -= 1;
        p = pow10(e);
    }
    loop {
        let next = &p * 10u8;
        if *x < next {
            return e as u64 + 1;
        }
        p = next;
        e += 1;
    }
}

/// 10^e as 5^e * 2^e: the power of five is 30% shorter and the shift is almost free.
fn pow10(e: usize) -> UBig {
    UBig::from(5u8).pow(e) << e
}

/// k! from the odd part and the power of two; `primes` must cover k.
fn factorial_with(k: u32, primes: &Primes) -> UBig {
    let mut words = Vec::new();
    odd_factorial(k, primes, &mut words) << (k - k.count_ones()) as usize
}

/// odd(k!) = odd((k/2)!)^2 * odd(swing(k)); `words` is scratch space for the swing.
fn odd_factorial(k: u32, primes: &Primes, words: &mut Vec<u64>) -> UBig {
    if k <= SMALL_K {
        return UBig::from(small_odd_factorial(k));
    }
    let half = odd_factorial(k / 2, primes, words);
    swing_words(k, primes, words);
    half.sqr() * product(words)
}

/// odd(k!) in a word, for k <= SMALL_K.
fn small_odd_factorial(k: u32) -> u64 {
    (2..=u64::from(k))
        .map(|i| i >> i.trailing_zeros())
        .product()
}

/// Fills `words` with the odd prime powers of swing(k) = k! / (k/2)!^2, packed so each
/// word is as full as a u64 allows. Prime p appears to the number of odd quotients
/// floor(k / p^i), i >= 1, and p^e <= k, so every factor fits a word.
fn swing_words(k: u32, primes: &Primes, words: &mut Vec<u64>) {
    words.clear();
    let mut acc = 1u64;
    let mut push = |factor: u64, words: &mut Vec<u64>| match acc.checked_mul(factor) {
        Some(product) => acc = product,
        None => {
            words.push(acc);
            acc = factor;
        }
    };
    for &p in primes.odd.iter().take_while(|&&p| p <= k) {
        if p > k / 2 {
            push(u64::from(p), words); // k / p == 1
        } else if u64::from(p) * u64::from(p) > u64::from(k) {
            if (k / p) % 2 == 1 {
                push(u64::from(p), words);
            }
        } else {
            let (mut q, mut power) = (k, 1u64);
            while q >= p {
                q /= p;
                if q % 2 == 1 {
                    power *= u64::from(p);
                }
            }
            if power > 1 {
                push(power, words);
            }
        }
    }
    if acc > 1 {
        words.push(acc);
    }
}

/// The product of `words` as a balanced tree, so the big multiplies are between equals.
fn product(words: &[u64]) -> UBig {
    if words.len() <= LEAF_WORDS {
        return words.iter().fold(UBig::ONE, |acc, &w| acc * w);
    }
    let (low, high) = words.split_at(words.len() / 2);
    product(low) * product(high)
}

/// The odd primes up to `limit`: the one table the steps share, since no factorial is in it.
struct Primes {
    limit: u32,
    odd: Vec<u32>,
}

impl Primes {
    /// Sieve of Eratosthenes over the odd numbers; slot i stands for 2i + 1.
    fn up_to(limit: u32) -> Self {
        let slots = (limit as usize).div_ceil(2);
        let mut composite = vec![false; slots];
        let mut odd = Vec::new();
        for i in 1..slots {
            if composite[i] {
                continue;
            }
            let p = 2 * i + 1;
            odd.push(p as u32);
            let mut j = p * p / 2;
            while j < slots {
                composite[j] = true;
                j += p;
            }
        }
        Primes { limit, odd }
    }

    /// Grows the table, doubling, when k runs past it (only for n beyond MAX_N).
    fn cover(&mut self, k: u32) {
        if k > self.limit {
            *self = Primes::up_to(k.max(self.limit.saturating_mul(2)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k! the slow, obvious way, to check the fast way against.
    fn naive_factorial(k: u32) -> UBig {
        (2..=k).fold(UBig::ONE, |acc, i| acc * i)
    }

    fn digit_sum(x: &UBig) -> u32 {
        x.to_string().bytes().map(|b| u32::from(b - b'0')).sum()
    }

    #[test]
    fn factorial_matches_u128_products_for_small_k() {
        let mut expected = 1u128;
        for k in 0..=34u32 {
            if k > 0 {
                expected *= u128::from(k);
            }
            assert_eq!(factorial(k), UBig::from(expected), "{k}!");
        }
        assert_eq!(factorial(25).to_string(), "15511210043330985984000000");
    }

    #[test]
    fn factorial_matches_the_naive_product() {
        for k in (35..400).chain([511, 512, 513, 1000, 1023, 1024, 2047]) {
            assert_eq!(factorial(k), naive_factorial(k), "{k}!");
        }
    }

    #[test]
    fn factorial_matches_python_digit_counts_and_sums() {
        // Python: len(str(math.factorial(k))), sum(map(int, str(math.factorial(k))))
        for (k, digits, sum) in [(100, 158, 648), (1000, 2568, 10539), (2999, 9128, 37656)] {
            let f = factorial(k);
            assert_eq!(f.to_string().len() as u64, digits, "{k}!");
            assert_eq!(digit_sum(&f), sum, "{k}!");
        }
    }

    #[test]
    fn decimal_digits_equals_the_string_length() {
        for k in [
            0, 1, 2, 3, 9, 10, 13, 22, 25, 99, 100, 1000, 1999, 2999, 4999,
        ] {
            let f = factorial(k);
            assert_eq!(decimal_digits(&f), f.to_string().len() as u64, "{k}!");
        }
        // Around powers of ten, where a float estimate is most likely to be off by one.
        for e in 0..400 {
            let p = pow10(e);
            for x in [&p - UBig::ONE, p.clone(), &p + UBig::ONE] {
                assert_eq!(
                    decimal_digits(&x),
                    x.to_string().len() as u64,
                    "10^{e} +- 1"
                );
            }
        }
    }

    #[test]
    fn heavy_lifting_reports_python_digits() {
        // Python: len(str(math.factorial(n - 1)))
        for (n, digits) in [(1, 1), (2, 1), (10, 6), (2000, 5733), (3500, 10883)] {
            let mut calls = 0;
            let report = heavy_lifting(n, || {
                calls += 1;
                false
            })
            .expect("never asked to stop");
            assert_eq!((report.n, report.digits), (n, digits), "n={n}");
            assert!(report.seconds.is_finite() && report.seconds >= 0.0);
            assert_eq!(calls, n, "one check per step");
        }
    }

    #[test]
    fn heavy_lifting_stops_before_the_first_step() {
        let mut calls = 0;
        let outcome = heavy_lifting(DEFAULT_N, || {
            calls += 1;
            true
        });
        assert_eq!(outcome, Err(Cancelled));
        assert_eq!(calls, 1);
    }

    #[test]
    fn heavy_lifting_stops_after_j_steps() {
        for (n, j) in [(MAX_N, 1), (MAX_N, 5), (MAX_N, 300), (u32::MAX, 40)] {
            let mut calls = 0;
            let outcome = heavy_lifting(n, || {
                calls += 1;
                calls > j
            });
            assert_eq!(outcome, Err(Cancelled));
            assert_eq!(calls, j + 1, "n={n} j={j}");
        }
    }

    #[test]
    fn heavy_lifting_of_zero_runs_nothing() {
        let report = heavy_lifting(0, || panic!("no step, no check")).unwrap();
        assert_eq!((report.n, report.digits), (0, 0));
    }

    #[test]
    fn prime_table_grows_past_its_limit() {
        let mut primes = Primes::up_to(10);
        assert_eq!(primes.odd, [3, 5, 7]);
        primes.cover(30);
        assert_eq!(primes.odd, [3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(factorial_with(30, &primes), naive_factorial(30));
    }
}
