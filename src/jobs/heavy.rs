//! TEMPORARY STUB (replaced by the real job).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeavyReport { pub n: u32, pub digits: u64, pub seconds: f64 }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;
pub fn heavy_lifting(n: u32, mut should_stop: impl FnMut() -> bool) -> Result<HeavyReport, Cancelled> {
    let t = std::time::Instant::now();
    let mut x = 1u64;
    for k in 0..n { if should_stop() { return Err(Cancelled); } for _ in 0..(k as u64 * 200) { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); } }
    std::hint::black_box(x);
    Ok(HeavyReport { n, digits: 1, seconds: t.elapsed().as_secs_f64() })
}
