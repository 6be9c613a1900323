//! Civil-time formatting in UTC for mail headers (RFC 5322 `Date:`), PowerMTA accounting
//! timestamps (`2019-02-08 21:54:05+0000`) and mbox `From ` lines.
//!
//! Written by hand because the two formats are fixed and small; a date-time crate would add a
//! time-zone database Ember does not need (all times are UTC, written with `+0000`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    weekday: usize,
}

fn civil(secs: u64) -> Civil {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ((days + 4).rem_euclid(7)) as usize;
    Civil { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60, weekday }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Sun, 29 Nov 2026 16:26:22 +0000`.
pub fn rfc5322(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday],
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// `2026-11-29 16:26:22+0000`, PowerMTA's `iso-times` accounting format.
pub fn acct(secs: u64) -> String {
    let c = civil(secs);
    format!("{}-{:02}-{:02} {:02}:{:02}:{:02}+0000", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `Sun Nov 29 16:26:22 2026`, the C `asctime` form of an mbox `From ` line.
pub fn asctime(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday],
        MONTHS[c.month as usize - 1],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(acct(1_549_662_845), "2019-02-08 21:54:05+0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(acct(4_102_444_799), "2099-12-31 23:59:59+0000");
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_549_662_845), "Fri Feb  8 21:54:05 2019");
    }
}
