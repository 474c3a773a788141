//! `contacts`: what discovery remembers, for the operator to read before and after enabling
//! it. Each abuse contact found (or a registry's "none") with where it came from (the RDAP
//! server and network handle, or the DNS name asked), the network it covers, when it was
//! fetched, until when it is trusted, and how many addresses were reported to it. Reads the
//! state only.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::utc_text;
use crate::config::Settings;
use crate::error::EXIT_OK;
use crate::state::{CachedContact, State};

#[derive(Serialize)]
struct JsonContact<'a> {
    /// `null`: the source answered and named no usable contact.
    address: Option<&'a str>,
    source: &'static str,
    /// The registry's network (a CIDR, or `first - last`); `null` for Abusix.
    network: Option<String>,
    /// The RDAP URL that answered, or the DNS name asked.
    origin: &'a str,
    handle: Option<&'a str>,
    fetched_at: String,
    expires_at: String,
    age_days: i64,
    /// Past `expires_at`: the next lookup asks again.
    expired: bool,
    /// Addresses reported to this contact (sent, or waiting to be sent again).
    reported: u64,
}

fn json(c: &CachedContact, now: DateTime<Utc>) -> JsonContact<'_> {
    let e = &c.entry;
    JsonContact {
        address: e.address.as_deref(),
        source: e.source.name(),
        network: e.network_text(),
        origin: &e.origin,
        handle: e.handle.as_deref(),
        fetched_at: utc_text(e.fetched_at),
        expires_at: utc_text(e.expires),
        age_days: (now - e.fetched_at).num_days(),
        expired: e.expires <= now,
        reported: c.reported,
    }
}

/// Prints the contacts discovery remembers, all or those covering `ip`.
pub fn command(
    settings: &Settings,
    now: DateTime<Utc>,
    ip: Option<IpAddr>,
    as_json: bool,
) -> Result<u8> {
    let ip = ip.map(|i| i.to_canonical());
    let state = State::open_read_only(&settings.state_dir)?;
    let found = match &state {
        Some(s) => s.contacts(ip)?,
        None => Vec::new(),
    };
    let mut out = crate::output::stdout();
    if as_json {
        let rows: Vec<JsonContact<'_>> = found.iter().map(|c| json(c, now)).collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    if found.is_empty() {
        let off = match settings.discover {
            Some(_) => "",
            None => " ([discover] is not enabled)",
        };
        match (ip, &settings.discover) {
            (Some(ip), Some(_)) => writeln!(
                out,
                "no contact known for {ip}; `preview` looks it up without keeping it, a run looks it up and keeps it"
            )?,
            (Some(ip), None) => writeln!(
                out,
                "no contact known for {ip}{off}: enable it to have runs look addresses up"
            )?,
            (None, _) => writeln!(out, "no contacts discovered yet{off}")?,
        }
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{:<36} {:<6} {:<20} {:>8} {:>5}  expires",
        "address", "source", "network", "reported", "age"
    )?;
    for c in &found {
        let row = json(c, now);
        let expires = match row.expired {
            true => "expired".to_string(),
            false => row.expires_at.clone(),
        };
        writeln!(
            out,
            "{:<36} {:<6} {:<20} {:>8} {:>4}d  {expires}",
            row.address.unwrap_or("(none)"),
            row.source,
            row.network.as_deref().unwrap_or("-"),
            row.reported,
            row.age_days,
        )?;
        let handle = row.handle.map(|h| format!(" ({h})")).unwrap_or_default();
        writeln!(out, "{:<36} from {}{handle}", "", row.origin)?;
    }
    Ok(EXIT_OK)
}
