//! Times as an administrator reads them: the machine's local time with its
//! UTC offset (`2026-12-02 14:03:07 +01:00`), or UTC with `--utc`; ISO 8601
//! for JSON; durations in plain words.
//!
//! No calendar arithmetic here. A kernel system time (100-ns ticks since
//! 1601-01-01 UTC, a `FILETIME`) becomes calendar fields through the
//! Windows API on Windows (`FileTimeToSystemTime`, then
//! `SystemTimeToTzSpecificLocalTime` with the current time zone and its
//! daylight-saving rule for that date; `os.rs`), and through the `time`
//! crate in host builds (the unit tests). Durations are differences of
//! tick counts, never read from a clock: "how long ago" is measured
//! against the loader's own `now`.

/// 100-ns ticks per second.
pub const TICKS_PER_SECOND: u64 = 10_000_000;

/// A calendar date and time of day, to the second, with the offset from
/// UTC (minutes east) it is expressed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub offset_minutes: i32,
}

/// Converts a system time to calendar fields.
pub trait Zone {
    /// `ticks` in UTC.
    fn utc(&self, ticks: u64) -> Option<Civil>;
    /// `ticks` in the zone times are shown in.
    fn local(&self, ticks: u64) -> Option<Civil>;
}

/// Which of the two a person asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The machine's local time with its offset (the default).
    Local,
    /// UTC (`--utc`).
    Utc,
}

/// How this run shows times.
pub struct Clock<'z> {
    pub zone: &'z dyn Zone,
    pub shown: Shown,
}

fn offset_text(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

fn date_time(c: &Civil, sep: char) -> String {
    format!("{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

impl Clock<'_> {
    /// `2026-12-02 14:03:07 +01:00` (local) or `2026-12-02 13:03:07 UTC`;
    /// `-` for 0 (never).
    #[must_use]
    pub fn stamp(&self, ticks: u64) -> String {
        if ticks == 0 {
            return "-".to_owned();
        }
        let civil = match self.shown {
            Shown::Local => self.zone.local(ticks),
            Shown::Utc => self.zone.utc(ticks),
        };
        match (civil, self.shown) {
            (Some(c), Shown::Local) => format!("{} {}", date_time(&c, ' '), offset_text(c.offset_minutes)),
            (Some(c), Shown::Utc) => format!("{} UTC", date_time(&c, ' ')),
            (None, _) => format!("(time {ticks})"),
        }
    }

    /// ISO 8601 in UTC (`2026-12-02T13:03:07Z`), `None` for 0.
    #[must_use]
    pub fn iso_utc(&self, ticks: u64) -> Option<String> {
        if ticks == 0 {
            return None;
        }
        self.zone.utc(ticks).map(|c| format!("{}Z", date_time(&c, 'T')))
    }

    /// ISO 8601 in local time with its offset (`2026-12-02T14:03:07+01:00`),
    /// `None` for 0.
    #[must_use]
    pub fn iso_local(&self, ticks: u64) -> Option<String> {
        if ticks == 0 {
            return None;
        }
        self.zone.local(ticks).map(|c| format!("{}{}", date_time(&c, 'T'), offset_text(c.offset_minutes)))
    }
}

/// The machine's zone: Windows' conversion on Windows, the `time` crate's
/// (UTC, which is what a host build can know) elsewhere.
#[must_use]
pub fn system_zone() -> &'static dyn Zone {
    #[cfg(windows)]
    {
        &crate::os::WindowsZone
    }
    #[cfg(not(windows))]
    {
        &host::FixedOffset(0)
    }
}

/// The host builds' conversion: the `time` crate, at a fixed offset.
#[cfg(not(windows))]
pub mod host {
    use super::{Civil, Zone, TICKS_PER_SECOND};

    /// Seconds from 1601-01-01 to 1970-01-01 (the FILETIME and Unix epochs).
    const EPOCH_DIFFERENCE_SECS: i64 = 11_644_473_600;

    /// A zone at a fixed offset from UTC, in minutes east.
    pub struct FixedOffset(pub i32);

    fn civil(ticks: u64, offset_minutes: i32) -> Option<Civil> {
        let secs = i64::try_from(ticks / TICKS_PER_SECOND).ok()? - EPOCH_DIFFERENCE_SECS;
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes.checked_mul(60)?).ok()?;
        let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?.to_offset(offset);
        Some(Civil {
            year: u16::try_from(t.year()).ok()?,
            month: u8::from(t.month()),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
            offset_minutes,
        })
    }

    impl Zone for FixedOffset {
        fn utc(&self, ticks: u64) -> Option<Civil> {
            civil(ticks, 0)
        }
        fn local(&self, ticks: u64) -> Option<Civil> {
            civil(ticks, self.0)
        }
    }
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

    /// A clock at `offset` minutes east, showing `shown`.
    pub(crate) fn clock(offset: i32, shown: Shown) -> Clock<'static> {
        let zone: &'static dyn Zone = Box::leak(Box::new(host::FixedOffset(offset)));
        Clock { zone, shown }
    }

    #[test]
    fn local_times_carry_their_offset_and_utc_says_so() {
        // 2026-12-02 13:03:07 UTC.
        let t = ticks_from_unix(1_796_216_587);
        assert_eq!(clock(60, Shown::Local).stamp(t), "2026-12-02 14:03:07 +01:00");
        assert_eq!(clock(-330, Shown::Local).stamp(t), "2026-12-02 07:33:07 -05:30");
        assert_eq!(clock(60, Shown::Utc).stamp(t), "2026-12-02 13:03:07 UTC");
        assert_eq!(clock(60, Shown::Local).iso_local(t).as_deref(), Some("2026-12-02T14:03:07+01:00"));
        assert_eq!(clock(60, Shown::Local).iso_utc(t).as_deref(), Some("2026-12-02T13:03:07Z"));
        // Past midnight the date moves with the offset.
        assert_eq!(clock(660, Shown::Local).stamp(t), "2026-12-03 00:03:07 +11:00");
    }

    #[test]
    fn never_is_a_dash_and_null() {
        let c = clock(0, Shown::Local);
        assert_eq!(c.stamp(0), "-");
        assert_eq!(c.iso_utc(0), None);
        assert_eq!(c.iso_local(0), None);
        // Sub-second ticks are truncated, not rounded.
        assert_eq!(c.stamp(ticks_from_unix(60) + 9_999_999), "1970-01-01 00:01:00 +00:00");
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
