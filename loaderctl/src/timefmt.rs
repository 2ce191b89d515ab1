//! Kernel system time (100-ns ticks since 1601-01-01 UTC) to calendar text,
//! and durations in plain words. Pure arithmetic, no clock is ever read:
//! every "how long ago" is measured against the loader's own `now`.

/// 100-ns ticks per second.
pub const TICKS_PER_SECOND: u64 = 10_000_000;
/// Days from 1601-01-01 to 1970-01-01.
const DAYS_1601_TO_1970: i64 = 134_774;

/// A UTC calendar date and time of day, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Converts a system time to its UTC calendar fields.
#[must_use]
pub fn utc_from_system_time(ticks: u64) -> UtcTime {
    let secs = ticks / TICKS_PER_SECOND;
    let days_since_1601 = secs / 86_400;
    let sec_of_day = secs % 86_400;
    // Fits easily: u64::MAX ticks is about 21_350_000 days.
    let days_since_1601 = i64::try_from(days_since_1601).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days_since_1601 - DAYS_1601_TO_1970);
    UtcTime {
        year,
        month,
        day,
        hour: u32::try_from(sec_of_day / 3600).unwrap_or(0),
        minute: u32::try_from(sec_of_day % 3600 / 60).unwrap_or(0),
        second: u32::try_from(sec_of_day % 60).unwrap_or(0),
    }
}

/// Proleptic Gregorian date of a day count relative to 1970-01-01.
///
/// The calendar repeats every 400 years (146 097 days); counting years from
/// 1 March makes the leap day the last day of a year, so month lengths follow
/// a simple linear formula.
fn civil_from_days(days_since_1970: i64) -> (i64, u32, u32) {
    let z = days_since_1970 + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// `2026-11-21 05:03:12`, or `-` for 0 (never).
#[must_use]
pub fn format_system_time(ticks: u64) -> String {
    if ticks == 0 {
        return "-".to_owned();
    }
    let t = utc_from_system_time(ticks);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

/// ISO 8601 form for JSON (`2026-11-21T05:03:12Z`), `None` for 0.
#[must_use]
pub fn iso_system_time(ticks: u64) -> Option<String> {
    if ticks == 0 {
        return None;
    }
    let t = utc_from_system_time(ticks);
    Some(format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second))
}

/// `later - earlier` in ticks, 0 if the clock went backwards.
#[must_use]
pub fn elapsed_ticks(earlier: u64, later: u64) -> u64 {
    later.saturating_sub(earlier)
}

/// A duration in plain words: `350 ms`, `42 s`, `4 min 12 s`, `3 h 05 min`, `2 d 4 h`.
#[must_use]
pub fn format_duration(ticks: u64) -> String {
    let ms = ticks / 10_000;
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{s} s");
    }
    let (m, s) = (s / 60, s % 60);
    if m < 60 {
        return format!("{m} min {s:02} s");
    }
    let (h, m) = (m / 60, m % 60);
    if h < 24 {
        return format!("{h} h {m:02} min");
    }
    format!("{} d {} h", h / 24, h % 24)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Ticks for a Unix time in seconds (test helper).
    pub(crate) fn ticks_from_unix(unix_secs: u64) -> u64 {
        (unix_secs + 11_644_473_600) * TICKS_PER_SECOND
    }

    #[test]
    fn unix_epoch_is_1970() {
        assert_eq!(format_system_time(116_444_736_000_000_000), "1970-01-01 00:00:00");
        assert_eq!(ticks_from_unix(0), 116_444_736_000_000_000);
    }

    #[test]
    fn first_tick_is_1601() {
        let t = utc_from_system_time(1);
        assert_eq!((t.year, t.month, t.day, t.hour), (1601, 1, 1, 0));
        assert_eq!(format_system_time(0), "-");
        assert_eq!(iso_system_time(0), None);
    }

    #[test]
    fn known_dates() {
        // 2000-02-29 12:34:56 UTC = 951_827_696 Unix seconds (a leap day in a /400 year).
        assert_eq!(format_system_time(ticks_from_unix(951_827_696)), "2000-02-29 12:34:56");
        // 2009-07-22, Windows 7 RTM: 1_248_220_800.
        assert_eq!(format_system_time(ticks_from_unix(1_248_220_800)), "2009-07-22 00:00:00");
        // 2038-01-19 03:14:08, one past i32 Unix time.
        assert_eq!(format_system_time(ticks_from_unix(2_147_483_648)), "2038-01-19 03:14:08");
        // 2100-03-01: 2100 is not a leap year, so Feb 28 is followed by Mar 1.
        assert_eq!(format_system_time(ticks_from_unix(4_107_542_400)), "2100-03-01 00:00:00");
        assert_eq!(format_system_time(ticks_from_unix(4_107_542_399)), "2100-02-28 23:59:59");
        assert_eq!(iso_system_time(ticks_from_unix(1_795_237_392)).as_deref(), Some("2026-11-21T05:03:12Z"));
        // Sub-second ticks are truncated, not rounded.
        assert_eq!(format_system_time(ticks_from_unix(60) + 9_999_999), "1970-01-01 00:01:00");
    }

    #[test]
    fn durations_in_words() {
        let s = TICKS_PER_SECOND;
        assert_eq!(format_duration(3_500_000), "350 ms");
        assert_eq!(format_duration(42 * s), "42 s");
        assert_eq!(format_duration(252 * s), "4 min 12 s");
        assert_eq!(format_duration((3 * 3600 + 5 * 60) * s), "3 h 05 min");
        assert_eq!(format_duration((52 * 3600) * s), "2 d 4 h");
        assert_eq!(elapsed_ticks(10, 5), 0);
        assert_eq!(elapsed_ticks(5, 10), 5);
    }
}
