//! Time: the clock a run reads once, and the zone log timestamps and reports are written in.
//!
//! Every stage gets `now` from here, passed in, never from the system directly, so that a run
//! can be replayed byte for byte: `ABUSE_MAILER_NOW` (RFC 3339) pins the clock.

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, TimeZone, Utc};

/// The environment variable that pins the clock, for reproducible previews and tests.
pub const NOW_VAR: &str = "ABUSE_MAILER_NOW";

/// Seconds in a day (of the clock's count, which has no leap seconds).
pub const DAY: i64 = 86_400;

/// No clock that is set shows a time before this (2026-01-01T00:00:00Z): this release was
/// made after it.
const SET_CLOCKS_SHOW_FROM: i64 = 1_767_225_600;

/// Why `now`, the host's clock (not one pinned in `ABUSE_MAILER_NOW`), cannot be the time: it
/// shows a time before this release was made, as a hardware clock without a battery does
/// until NTP sets it. A run under it would send reports dated 1970 and take their addresses
/// for reported; waiting sets it right.
pub fn unset(now: DateTime<Utc>) -> Option<String> {
    (std::env::var_os(NOW_VAR).is_none() && now.timestamp() < SET_CLOCKS_SHOW_FROM).then(|| {
        format!(
            "this host's clock shows {}, before this release was made: it is not set yet (a hardware clock without a battery, before NTP)",
            utc_text(now)
        )
    })
}

/// The current time, or the time pinned in `ABUSE_MAILER_NOW`. A pin that is not a time is
/// a configuration error: the run must not go on with another clock than the one asked for.
/// So is one outside the years a message's `Date:` can carry, 1970 to 9999 in UTC: later, the
/// mail library gave up mid-run (a panic); earlier, the message was dated 1970.
pub fn now() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var(NOW_VAR) {
        Ok(text) => pinned(&text),
        Err(_) => Ok(Utc::now()),
    }
}

/// The time `text` pins the clock at (see [`now`]). A leap second (`23:59:60`) is the second
/// before it, as the clock's count has it: the `Date:` header said `:59`, and the
/// Message-ID and the file name of the same message `60`.
fn pinned(text: &str) -> anyhow::Result<DateTime<Utc>> {
    use chrono::Timelike as _;
    let bad = |why: String| crate::error::ConfigError(format!("{NOW_VAR}={text:?} {why}"));
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|e| bad(format!("is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let time = time
        .with_nanosecond(time.nanosecond() % 1_000_000_000)
        .unwrap_or(time);
    if !(1970..=9999).contains(&time.year()) {
        return Err(bad(format!(
            "is {}, outside the years 1970 to 9999 (UTC) that a message's Date can carry",
            utc_text(time)
        ))
        .into());
    }
    Ok(time)
}

/// The zone of syslog timestamps that carry none, and of every time a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Utc,
    /// The system's zone (`TZ`, `/etc/localtime`).
    Local,
    Named(chrono_tz::Tz),
}

impl Zone {
    /// Whether the zone's clock may show a wall-clock time twice (autumn's repeated hour):
    /// only then does reading a time depend on the lines before it.
    pub fn may_repeat_times(&self) -> bool {
        *self != Zone::Utc
    }

    /// `local`, `UTC` (each in any case: `Local` is no IANA name, and `utc` was always
    /// read), or an IANA name such as `Europe/Berlin`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            _ if name.eq_ignore_ascii_case("local") => Ok(Zone::Local),
            _ if name.eq_ignore_ascii_case("utc") || name == "Etc/UTC" => Ok(Zone::Utc),
            _ => name
                .parse::<chrono_tz::Tz>()
                .map(Zone::Named)
                .map_err(|_| format!("unknown time zone {name:?}: expected \"local\", \"UTC\" or an IANA name such as \"Europe/Berlin\"")),
        }
    }

    /// Unix seconds as a time with this zone's offset.
    pub fn at(&self, unix: i64) -> DateTime<FixedOffset> {
        let utc = Utc
            .timestamp_opt(unix, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self {
            Zone::Utc => utc.fixed_offset(),
            Zone::Local => utc.with_timezone(&chrono::Local).fixed_offset(),
            Zone::Named(tz) => utc.with_timezone(tz).fixed_offset(),
        }
    }

    /// RFC 3339 with this zone's offset, to the second: `2026-01-25T23:51:25+00:00`.
    pub fn rfc3339(&self, unix: i64) -> String {
        self.stamp(unix).to_string()
    }

    /// [`Zone::rfc3339`] written where it goes, without a string of its own: a list of a
    /// flood's sources writes two for each.
    pub fn stamp(&self, unix: i64) -> Stamp {
        match self {
            // No conversion to ask of chrono: the seconds are the wall clock's.
            Zone::Utc => Stamp { unix, offset: 0 },
            _ => {
                let t = self.at(unix);
                Stamp {
                    unix: t.timestamp(),
                    offset: t.offset().local_minus_utc(),
                }
            }
        }
    }

    /// What to call the zone in a report: its IANA name, or `UTC`.
    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".to_string(),
            Zone::Local => iana_local().unwrap_or_else(|| "local time".to_string()),
            Zone::Named(tz) => tz.name().to_string(),
        }
    }
}

/// A time as RFC 3339 to the second (see [`Zone::stamp`]): Unix seconds and the zone's
/// offset from UTC at that time, in seconds.
pub struct Stamp {
    unix: i64,
    offset: i32,
}

impl Stamp {
    /// The text with its digits placed by hand, for years of four digits and whole-minute
    /// offsets, as every log holds; `None` for anything else.
    fn placed(&self) -> Option<[u8; 25]> {
        let offset = self.offset;
        if offset % 60 != 0 {
            return None;
        }
        // The wall clock's seconds since 1970, split into days and the second of the day.
        let local = self.unix.saturating_add(i64::from(offset));
        let (days, second) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        let (year, month, day) = civil(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00+00:00";
        let mut put = |at: usize, value: u32, digits: usize| {
            let mut v = value;
            for i in (at..at + digits).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        let second = second as u32;
        put(0, year as u32, 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, second / 3600, 2);
        put(14, second / 60 % 60, 2);
        put(17, second % 60, 2);
        let minutes = offset.unsigned_abs() / 60;
        put(20, minutes / 60, 2);
        put(23, minutes % 60, 2);
        if offset < 0 {
            out[19] = b'-';
        }
        Some(out)
    }

    /// The text as a JSON string, quotes and all, written where it goes: the digits placed
    /// by hand need no escaping, so the printer's scan for characters to escape is spared.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self.placed() {
            Some(text) => {
                out.push(b'"');
                out.extend_from_slice(&text);
                out.push(b'"');
                Ok(())
            }
            None => serde_json::to_writer(out, self),
        }
    }

    /// The time as chrono holds it, for the text of the times not placed by hand: as
    /// [`Zone::at`] makes it, with the offset kept. A time at the very ends of chrono's
    /// calendar whose wall clock would fall past them (a corrupt record's seconds, in a zone
    /// east or west of UTC) is given in UTC: chrono panics writing such a time.
    fn chrono(&self) -> DateTime<FixedOffset> {
        let utc = Zone::Utc.at(self.unix);
        match FixedOffset::east_opt(self.offset) {
            Some(offset) if utc.naive_utc().checked_add_offset(offset).is_some() => {
                utc.with_timezone(&offset)
            }
            _ => utc.fixed_offset(),
        }
    }

    /// Gives `f` the text: placed by hand where it can be, else in chrono's own words.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let placed = self.placed();
        // Only ASCII digits and punctuation were placed.
        match placed.as_ref().and_then(|b| std::str::from_utf8(b).ok()) {
            Some(text) => f(text),
            None => f(&self.chrono().to_rfc3339_opts(SecondsFormat::Secs, false)),
        }
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        // A string of its own, not written through `Display` piece by piece: a flood's list
        // writes two a source.
        self.with_text(|text| out.serialize_str(text))
    }
}

/// The proleptic Gregorian date (year, month, day) `days` days after 1970-01-01, in plain
/// arithmetic on 400-year eras (146,097 days each, starting on a March 1st so that a leap
/// day ends its year): two stamps for each of a flood's sources are written, and asking
/// chrono for each field of a zoned time adds the offset again each time.
fn civil(days: i64) -> (i64, u32, u32) {
    // Days since 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let of_era = z.rem_euclid(146_097);
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 0 is March, 11 is February.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The system zone's name where `TZ`, `/etc/timezone` or the file `/etc/localtime` links to
/// tells it.
fn iana_local() -> Option<String> {
    if let Ok(tz) = std::env::var("TZ")
        && !tz.is_empty()
    {
        let tz = tz.trim_start_matches(':');
        // A file (`TZ=:/etc/localtime`, set to spare programs a look at it): a report names
        // the zone, never a path on this host.
        if tz.starts_with('/') {
            return zoneinfo_name(std::path::Path::new(tz));
        }
        return Some(tz.to_string());
    }
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| zoneinfo_name(std::path::Path::new("/etc/localtime")))
}

/// Where the system keeps zone files, looked in for a `TZ` that names one.
const ZONE_FOLDERS: [&str; 4] = [
    "/usr/share/zoneinfo",
    "/share/zoneinfo",
    "/etc/zoneinfo",
    "/usr/share/lib/zoneinfo",
];

/// The zone `timezone = "local"` is: the system's, or why `TZ` names none when it is set
/// and does not: a name with no zone file (a case slip, `Europe/berlin`), a file that is not
/// there, or text that is no POSIX zone rule. The time library reads such a `TZ` as the
/// system's zone or UTC without a word, while a report names the zone `TZ` says: every time
/// in it would be off by the zone's offset, under a name that says otherwise.
///
/// A zone's name that the system has no file for (no zone files installed) is the zone of
/// that name all the same, from the data this program carries.
pub fn local_zone() -> Result<Zone, String> {
    let Some(tz) = std::env::var_os("TZ") else {
        return Ok(Zone::Local);
    };
    let Some(tz) = tz.to_str() else {
        return Err("TZ is not UTF-8 text".to_string());
    };
    if tz.is_empty() || tz == "localtime" {
        return Ok(Zone::Local);
    }
    let named = tz.strip_prefix(':');
    let file = named.unwrap_or(tz);
    let is_zone_file = |path: &std::path::Path| {
        let mut magic = [0u8; 4];
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok_and(|()| &magic == b"TZif")
    };
    let found = match std::path::Path::new(file).is_absolute() {
        true => is_zone_file(std::path::Path::new(file)),
        false => (ZONE_FOLDERS.iter()).any(|d| is_zone_file(&std::path::Path::new(d).join(file))),
    };
    if found || (named.is_none() && is_posix_rule(tz)) {
        return Ok(Zone::Local);
    }
    if let Ok(zone) = file.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Named(zone));
    }
    Err(format!(
        "TZ={tz:?} names no time zone (no zone file of that name, and no POSIX zone rule), so timezone = \"local\" would read every time stamp in another zone than the one a report names; set TZ to a zone such as Europe/Berlin, unset it, or set timezone"
    ))
}

/// Whether `text` is a POSIX `TZ` rule: a zone's abbreviation and its offset from UTC
/// (`EST5`, `<+0330>-3:30`), optionally a summer zone with its own offset and the rules of
/// its start and end (`EST5EDT,M3.2.0,M11.1.0`, `CET-1CEST,M3.5.0,M10.5.0/3`).
fn is_posix_rule(text: &str) -> bool {
    fn name(t: &str) -> Option<&str> {
        if let Some(rest) = t.strip_prefix('<') {
            let end = rest.find('>')?;
            let inner = &rest[..end];
            let ok = inner.len() >= 3
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
            return ok.then_some(&rest[end + 1..]);
        }
        let end = t
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(t.len());
        (end >= 3).then_some(&t[end..])
    }
    // `[+-]hh[:mm[:ss]]`, hours up to `most`.
    fn offset(t: &str, most: u32) -> Option<&str> {
        let t = t.strip_prefix(['+', '-']).unwrap_or(t);
        let mut rest = t;
        for (i, limit) in [most, 59, 59].into_iter().enumerate() {
            if i > 0 {
                match rest.strip_prefix(':') {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let value: u32 = rest[..end].parse().ok().filter(|_| end <= 3)?;
            if value > limit {
                return None;
            }
            rest = &rest[end..];
        }
        Some(rest)
    }
    // `Mm.w.d`, `Jn` or `n`, with an optional `/time`.
    fn date(t: &str) -> bool {
        let (day, time) = t.split_once('/').unwrap_or((t, "0"));
        let numbers =
            |s: &str| -> Option<Vec<u32>> { s.split('.').map(|n| n.parse().ok()).collect() };
        let day_ok = if let Some(m) = day.strip_prefix('M') {
            numbers(m).is_some_and(|v| {
                matches!(v[..], [m, w, d] if (1..=12).contains(&m) && (1..=5).contains(&w) && d <= 6)
            })
        } else {
            let n = day.strip_prefix('J').unwrap_or(day);
            n.parse::<u32>().is_ok_and(|n| n <= 365)
        };
        day_ok && offset(time, 167).is_some_and(str::is_empty)
    }
    let Some(rest) = name(text).and_then(|r| offset(r, 24)) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = name(rest) else {
        return false;
    };
    let rest = match rest.starts_with(',') || rest.is_empty() {
        true => rest,
        false => match offset(rest, 24) {
            Some(r) => r,
            None => return false,
        },
    };
    match rest
        .strip_prefix(',')
        .map(|r| r.split(',').collect::<Vec<_>>())
    {
        None => rest.is_empty(),
        Some(rules) => rules.len() == 2 && rules.iter().all(|r| date(r)),
    }
}

/// The IANA name of a zone file, from where it lies under a `zoneinfo` folder (through
/// links): `/usr/share/zoneinfo/Europe/Berlin` is `Europe/Berlin`.
fn zoneinfo_name(path: &std::path::Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let (_, name) = real.to_str()?.rsplit_once("/zoneinfo/")?;
    let name = ["posix/", "right/"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    name.parse::<chrono_tz::Tz>().ok().map(|_| name.to_string())
}

/// `span` before `now`, or the calendar's start for a span that reaches past it ("never",
/// "no limit" written as a very large number).
pub fn before(now: DateTime<Utc>, span: chrono::Duration) -> DateTime<Utc> {
    now.checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// UTC time as the state database stores it.
pub fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// chrono's own RFC 3339, the reference the hand-placed digits must equal.
    fn reference(zone: Zone, unix: i64) -> String {
        zone.at(unix).to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    proptest! {
        #[test]
        fn stamps_are_chronos_rfc3339_in_any_zone(
            unix in prop_oneof![
                -70_000_000_000i64..300_000_000_000,
                0i64..4_102_444_800,
            ],
            zone in prop::sample::select(vec![
                "UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu",
                "Pacific/Chatham", "Africa/Monrovia", "America/Los_Angeles",
            ]),
        ) {
            let zone = Zone::parse(zone).unwrap();
            prop_assert_eq!(zone.rfc3339(unix), reference(zone, unix));
        }
    }

    proptest! {
        #[test]
        fn civil_dates_are_chronos(days in -3_000_000i64..3_000_000) {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(
                i32::try_from(days + 719_163).unwrap(),
            )
            .unwrap();
            prop_assert_eq!(civil(days), (i64::from(date.year()), date.month(), date.day()));
        }

        #[test]
        fn stamps_as_json_are_serde_jsons(
            unix in -70_000_000_000i64..300_000_000_000,
            zone in prop::sample::select(vec!["UTC", "Asia/Kathmandu", "America/St_Johns"]),
        ) {
            let zone = Zone::parse(zone).unwrap();
            let mut out = Vec::new();
            zone.stamp(unix).write_json(&mut out).unwrap();
            prop_assert_eq!(out, serde_json::to_vec(&reference(zone, unix)).unwrap());
        }
    }

    #[test]
    fn calendar_turns_are_placed_as_chrono_places_them() {
        // Leap days of a leap century and of a common one's neighbours, the era's turn, and
        // the last second of a four-digit year.
        for text in [
            "2000-02-29T23:59:59+00:00",
            "1900-02-28T23:59:59+00:00",
            "1900-03-01T00:00:00+00:00",
            "2400-02-29T12:00:00+00:00",
            "0000-03-01T00:00:00+00:00",
            "0000-01-01T00:00:00+00:00",
            "1969-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59+00:00",
        ] {
            let unix = DateTime::parse_from_rfc3339(text).unwrap().timestamp();
            assert_eq!(Zone::Utc.rfc3339(unix), text);
            assert_eq!(reference(Zone::Utc, unix), text);
        }
    }

    #[test]
    fn the_calendars_edges_are_placed_with_a_zones_offset_as_chrono_places_them() {
        let zone = |name| Zone::parse(name).unwrap();
        for (zone, unix, text) in [
            (
                zone("Etc/GMT+5"),
                -62_167_201_200,
                "0000-01-01T00:00:00-05:00",
            ),
            (
                zone("Etc/GMT+5"),
                -62_167_201_201,
                "-0001-12-31T23:59:59-05:00",
            ),
            (
                zone("Etc/GMT-14"),
                -62_167_269_600,
                "0000-01-01T00:00:00+14:00",
            ),
            (
                zone("America/Los_Angeles"),
                253_402_300_800,
                "9999-12-31T16:00:00-08:00",
            ),
            (
                zone("Europe/Berlin"),
                253_402_297_200,
                "+10000-01-01T00:00:00+01:00",
            ),
        ] {
            assert_eq!(reference(zone, unix), text);
            assert_eq!(zone.rfc3339(unix), text);
            let mut json = Vec::new();
            zone.stamp(unix).write_json(&mut json).unwrap();
            assert_eq!(json, format!("\"{text}\"").into_bytes());
        }
    }

    #[test]
    fn seconds_past_the_calendars_ends_are_written_in_utc_in_any_zone() {
        // A corrupt record's seconds: chrono's own writing of these panics in a zone whose
        // wall clock falls past the calendar's ends.
        let max = DateTime::<Utc>::MAX_UTC.timestamp();
        for zone in ["America/Los_Angeles", "Europe/Berlin", "Etc/GMT-14", "UTC"] {
            let zone = Zone::parse(zone).unwrap();
            for unix in [i64::MIN, i64::MIN + 1, -1 - max, max, i64::MAX] {
                let text = zone.rfc3339(unix);
                assert!(text.ends_with('Z') || text.contains(':'), "{text}");
            }
        }
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            berlin.rfc3339(max),
            Zone::Utc
                .at(max)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        );
    }

    #[test]
    fn stamps_outside_four_digit_years_and_odd_offsets_are_chronos() {
        let monrovia = Zone::parse("Africa/Monrovia").unwrap();
        // Before 1972 Liberia kept -0:44:30: seconds chrono rounds its own way.
        for (zone, unix) in [
            (Zone::Utc, -62_167_219_201),
            (Zone::Utc, 253_402_300_800),
            (Zone::Utc, DateTime::<Utc>::MIN_UTC.timestamp() - 1),
            (monrovia, 0),
        ] {
            assert_eq!(zone.rfc3339(unix), reference(zone, unix));
        }
        assert_eq!(
            Zone::Utc.rfc3339(253_402_300_800),
            "+10000-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn zones_parse_and_format_with_offset() {
        assert_eq!(
            Zone::parse("UTC").unwrap().rfc3339(0),
            "1970-01-01T00:00:00+00:00"
        );
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(berlin.rfc3339(0), "1970-01-01T01:00:00+01:00");
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert!(
            Zone::parse("Mars/Olympus")
                .unwrap_err()
                .contains("Mars/Olympus")
        );
    }

    /// POSIX zone rules as `TZ` takes them, and text that is none (which the time library
    /// reads as another zone without a word).
    #[test]
    fn posix_zone_rules_are_told_from_other_text() {
        for rule in [
            "UTC0",
            "EST5",
            "EST+5",
            "<+0330>-3:30",
            "EST5EDT",
            "EST5EDT4,M3.2.0/2,M11.1.0",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "NZST-12NZDT,M9.5.0,M4.1.0/3",
            "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
            "WART4WARST,J1/0,J365/25",
            "IST-2IDT,M3.4.4/26,M10.5.0",
        ] {
            assert!(is_posix_rule(rule), "{rule}");
        }
        for text in [
            "Europe/berlin",
            "EST",
            "ES5",
            "EST25",
            "EST5EDT,M3.2.0",
            "EST5EDT,M13.2.0,M11.1.0",
            "CET-1CEST,M3.5.0,M10.5.0/3,x",
            "<ab>5",
            "5",
        ] {
            assert!(!is_posix_rule(text), "{text}");
        }
    }

    /// A leap second pinned is the second before it, in every place a message gives it.
    #[test]
    fn a_pinned_leap_second_is_the_second_before_it() {
        let t = pinned("2026-01-26T09:10:60+14:00").unwrap();
        assert_eq!(t.format("%H%M%S").to_string(), "191059");
        assert_eq!(utc_text(t), "2026-01-25T19:10:59Z");
        assert_eq!(pinned("2026-06-30T23:59:59Z").unwrap().timestamp() % 60, 59);
        assert!(pinned("2026-06-30T23:59:61Z").is_err());
    }
}
