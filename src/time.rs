//! Civil time in UTC: the text forms Ember writes and reads — mail headers (RFC 5322 `Date:`),
//! PowerMTA accounting timestamps (`2019-02-08 21:54:05+0000`), mbox `From ` lines and the
//! stamps in rotated accounting file names — and the current Unix time.
//!
//! The calendar arithmetic is the `time` crate's; every instant is written in UTC with `+0000`,
//! so no local offset or time-zone database is involved. The formats are spelled out rather than
//! taken from `time`'s well-known RFC 2822 form because mail headers here carry the day without
//! a leading zero (`Thu, 1 Jan 1970`), as Ember has always written them.

use std::time::{SystemTime, UNIX_EPOCH};

use ::time::format_description::BorrowedFormatItem;
use ::time::macros::format_description;
use ::time::{OffsetDateTime, PrimitiveDateTime};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

const RFC5322: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] \
     [offset_hour sign:mandatory][offset_minute]"
);
const ACCT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]");
const ASCTIME: &[BorrowedFormatItem<'_>] =
    format_description!("[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]");
const FILE_STAMP: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]-[hour][minute]");

/// The last second `time` can represent (9999-12-31 23:59:59 UTC). Later instants — "never"
/// sentinels, in practice — are written as this one instead of failing.
const LATEST: i64 = 253_402_300_799;

fn utc(secs: u64) -> OffsetDateTime {
    let secs = i64::try_from(secs).unwrap_or(LATEST).min(LATEST);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Formats a UTC instant. Cannot fail: an `OffsetDateTime` has every component these
/// descriptions name, and a `String` takes any output.
fn format(secs: u64, description: &[BorrowedFormatItem<'_>]) -> String {
    utc(secs).format(description).unwrap_or_default()
}

/// `Sun, 29 Nov 2026 16:26:22 +0000`.
pub fn rfc5322(secs: u64) -> String {
    format(secs, RFC5322)
}

/// `2026-11-29 16:26:22+0000`, PowerMTA's `iso-times` accounting format.
pub fn acct(secs: u64) -> String {
    format(secs, ACCT)
}

/// `Sun Nov 29 16:26:22 2026`, the C `asctime` form of an mbox `From ` line.
pub fn asctime(secs: u64) -> String {
    format(secs, ASCTIME)
}

/// `2007-09-05-0000`, the stamp in a rotated accounting file's name.
pub fn file_stamp(secs: u64) -> String {
    format(secs, FILE_STAMP)
}

/// `2019-02-08 21:54:05+0000` (any offset) → Unix seconds; `None` for anything else, or an
/// instant before the epoch.
pub fn parse_acct(text: &str) -> Option<u64> {
    u64::try_from(OffsetDateTime::parse(text, ACCT).ok()?.unix_timestamp()).ok()
}

/// `2007-09-05-0000` (UTC) → Unix seconds; `None` for anything else.
pub fn parse_file_stamp(text: &str) -> Option<u64> {
    u64::try_from(PrimitiveDateTime::parse(text, FILE_STAMP).ok()?.assume_utc().unix_timestamp()).ok()
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

    #[test]
    fn leap_years_century_and_year_ends() {
        // 2024 is a leap year; 2100 is not (so its 1 March follows 28 February).
        assert_eq!(rfc5322(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 +0000");
        assert_eq!(acct(4_107_542_399), "2100-02-28 23:59:59+0000");
        assert_eq!(rfc5322(4_107_542_400), "Mon, 1 Mar 2100 00:00:00 +0000");
        assert_eq!(asctime(4_107_542_400), "Mon Mar  1 00:00:00 2100");
        assert_eq!(rfc5322(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 +0000");
        assert_eq!(acct(1_735_689_600), "2025-01-01 00:00:00+0000");
        assert_eq!(asctime(1_735_689_599), "Tue Dec 31 23:59:59 2024");
        assert_eq!(rfc5322(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
    }

    #[test]
    fn instants_past_year_9999_are_written_as_its_last_second() {
        assert_eq!(acct(u64::MAX), "9999-12-31 23:59:59+0000");
        assert_eq!(rfc5322(LATEST as u64 + 1), "Fri, 31 Dec 9999 23:59:59 +0000");
    }

    #[test]
    fn accounting_times_parse_back() {
        for secs in [0, 951_782_400, 1_549_662_845, 4_107_542_400] {
            assert_eq!(parse_acct(&acct(secs)), Some(secs));
        }
        assert_eq!(parse_acct("2010-04-17 16:19:57-0400"), Some(1_271_535_597));
        assert_eq!(parse_acct("2010-04-17 16:19:57+0530"), Some(1_271_501_397));
        assert_eq!(parse_acct("1969-12-31 23:59:59+0000"), None);
        for bad in ["17/04/2010", "2010-04-17 16:19:57", "2010-04-17 16:19:57+0000 ", "2010-02-30 00:00:00+0000"] {
            assert_eq!(parse_acct(bad), None, "{bad}");
        }
    }

    #[test]
    fn file_stamps() {
        let midnight = 1_188_950_400; // 2007-09-05 00:00:00 UTC
        assert_eq!(file_stamp(midnight), "2007-09-05-0000");
        assert_eq!(file_stamp(midnight + 3600 + 420), "2007-09-05-0107");
        assert_eq!(parse_file_stamp("2007-09-05-0107"), Some(midnight + 3600 + 420));
        assert_eq!(parse_file_stamp("2007-09-05-00x0"), None);
        assert_eq!(parse_file_stamp("2007-09-05 0000"), None);
    }
}
