//! The `Date` header value: an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
//! cached per thread and re-rendered at most once a second, as hyper's
//! common/date.rs does. `Response::encode_into` reads it through
//! [`with_date`]; each I/O core has its own copy, so no locking or `Sync`.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub const DATE_LEN: usize = 29;

/// The latest second representable in four year digits (9999-12-31 23:59:59).
const MAX_SECS: u64 = 253_402_300_799;

struct CachedDate {
    /// The second `bytes` was rendered for.
    secs: u64,
    bytes: [u8; DATE_LEN],
}

thread_local! {
    static CACHED: RefCell<CachedDate> =
        RefCell::new(CachedDate { secs: 0, bytes: format_imf_fixdate(0) });
}

/// Calls `f` with the current date as an IMF-fixdate (29 ASCII bytes).
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = unix_secs_coarse();
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.secs != now {
            *cached = CachedDate {
                secs: now,
                bytes: format_imf_fixdate(now),
            };
        }
        f(&cached.bytes)
    })
}

/// Seconds since the Unix epoch from CLOCK_REALTIME_COARSE: the clock as of
/// the last kernel tick, read from the vDSO without touching the TSC. A
/// second-resolution header does not need more, and this runs per response.
fn unix_secs_coarse() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        u64::try_from(ts.tv_sec).unwrap_or(0)
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Renders seconds since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7);
/// times past year 9999 are clamped to its last second.
pub fn format_imf_fixdate(unix_secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = unix_secs.min(MAX_SECS);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[(days % 7) as usize]; // 1970-01-01 was a Thursday
    let month_name = MONTHS[(month as usize - 1) % 12];
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(weekday);
    out[5..7].copy_from_slice(&two(day));
    out[8..11].copy_from_slice(month_name);
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year));
    out[17..19].copy_from_slice(&two(rem / 3600));
    out[20..22].copy_from_slice(&two(rem / 60 % 60));
    out[23..25].copy_from_slice(&two(rem % 60));
    out
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days`, for non-negative days only.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: u64) -> String {
        String::from_utf8(format_imf_fixdate(secs).to_vec()).expect("ascii")
    }

    #[test]
    fn known_timestamps() {
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"); // RFC 9110's example
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(fmt(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn every_day_for_800_years_is_consecutive() {
        let (mut prev, mut weekday) = ((1969, 12, 31), 3); // a Wednesday
        for days in 0..800 * 366 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let next_month =
                (y, m, d) == (prev.0, prev.1 + 1, 1) || (y, m, d) == (prev.0 + 1, 1, 1);
            assert!(next_day || next_month, "{prev:?} -> {:?}", (y, m, d));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!(d <= month_len[m as usize - 1]);
            weekday = (weekday + 1) % 7;
            let name = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][weekday];
            assert!(fmt(days * 86_400).starts_with(name), "{days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn cached_date_is_now() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cached = with_date(<[u8]>::to_vec);
        let expected: Vec<_> = [now, now + 1]
            .iter()
            .map(|&s| format_imf_fixdate(s).to_vec())
            .collect();
        assert!(
            expected.contains(&cached),
            "{:?}",
            String::from_utf8_lossy(&cached)
        );
        assert_eq!(with_date(<[u8]>::len), DATE_LEN);
    }
}
