//! Time: the clock a run reads once, and the zone log timestamps and reports are written in.
//!
//! Every stage gets `now` from here, passed in, never from the system directly, so that a run
//! can be replayed byte for byte: `ABUSE_MAILER_NOW` (RFC 3339) pins the clock.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};

/// The environment variable that pins the clock, for reproducible previews and tests.
pub const NOW_VAR: &str = "ABUSE_MAILER_NOW";

/// The current time, or the time pinned in `ABUSE_MAILER_NOW`.
pub fn now() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var(NOW_VAR) {
        Ok(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| anyhow::anyhow!("{NOW_VAR}={text:?} is not an RFC 3339 time: {e}")),
        Err(_) => Ok(Utc::now()),
    }
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
    /// `local`, `UTC`, or an IANA name such as `Europe/Berlin`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "local" => Ok(Zone::Local),
            "UTC" | "utc" | "Etc/UTC" => Ok(Zone::Utc),
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
        self.at(unix).to_rfc3339_opts(SecondsFormat::Secs, false)
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

/// The system zone's name where `/etc/timezone` or `TZ` tells it.
fn iana_local() -> Option<String> {
    if let Ok(tz) = std::env::var("TZ")
        && !tz.is_empty()
    {
        return Some(tz.trim_start_matches(':').to_string());
    }
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
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
}
