//! Select: which observed IPs are a provider's attackers, and which of them it has not been
//! sent yet (the delta).
//!
//! An attacker is an observed IP inside the provider's ranges (or originated by one of its
//! `asns`), with at least `min_hits`
//! dropped packets, that is a public address and not in the operator's `ignore` list. The delta
//! is the attackers minus those already in a report to that provider that was sent (or is
//! waiting to be sent again); with `rereport_after_days`, an IP reported longer ago than that
//! comes back if it was seen again since. An IP last seen longer ago than `max_age_days` is
//! history: it is not selected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::ReportConfig;
use crate::enrich::Reported;
use crate::ingest::{Observation, Observations};
use crate::provider::canonical;

/// Whether an address can belong to someone an abuse desk could act on: not private,
/// loopback, link-local, CGNAT, documentation, benchmarking, multicast or reserved.
pub fn is_reportable(ip: IpAddr) -> bool {
    // An address in IPv4-mapped form is no IPv4 host's here: the reader keeps that form for
    // a source only where no packet could have one (see `parse::source_of`).
    match ip {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [x, y, ..] = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_multicast()
        || a.is_unspecified()
        || x == 0
        || (x == 100 && (64..128).contains(&y)) // CGNAT 100.64.0.0/10
        || (x == 198 && (y == 18 || y == 19)) // benchmarking 198.18.0.0/15
        || (x == 192 && y == 0 && a.octets()[2] == 0) // IETF protocol assignments
        || x >= 240)
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard 100::/64
        // IETF protocol assignments 2001::/23: Teredo (2001::/32, an IPv4 host behind a
        // tunnel), benchmarking (2001:2::/48), ORCHID identifiers, anycast services
        || (s[0] == 0x2001 && s[1] < 0x0200)
        // 6to4 2002::/16: an IPv4 host's tunnel, which an ASN database files under the
        // IPv4 address's network, not a provider's host
        || s[0] == 0x2002
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
}

/// Whether `ip` is written in IPv4-mapped form (`::ffff:3.5.140.2`): what the reader keeps
/// for a source no packet could have (see `parse::source_of`), no host's.
pub fn is_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Whether the operator asked never to report this address.
pub fn is_ignored(ip: IpAddr, ignore: &[IpNet]) -> bool {
    let ip = canonical(ip);
    ignore.iter().any(|net| net.contains(&ip))
}

/// The times selection measures against (Unix seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Since {
    /// A report sent before this may be repeated (`rereport_after_days`).
    pub rereport: Option<i64>,
    /// An address last seen before this is history (`max_age_days`).
    pub fresh: Option<i64>,
}

/// One IP of a provider's delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    pub observation: &'a Observation,
    /// For a re-report (it was sent to this destination before, longer ago than
    /// `rereport_after_days`): what the last report sent listing it said of it.
    pub before: Option<Reported>,
}

/// A destination's attackers not yet reported to it, sorted by address (IPv4 first):
/// `belongs` says which addresses are the destination's (a provider's ranges or ASNs; for
/// discovery, those in no provider).
pub fn delta<'a>(
    observations: &'a Observations,
    belongs: &dyn Fn(IpAddr) -> bool,
    reported: &dyn Fn(IpAddr) -> bool,
    last_sent: &dyn Fn(IpAddr) -> Option<Reported>,
    since: Since,
    report: &ReportConfig,
) -> Vec<Selected<'a>> {
    let Since {
        rereport: rereport_since,
        fresh: fresh_since,
    } = since;
    let window = i64::from(report.rereport_after_days.unwrap_or(0)).saturating_mul(86_400);
    let mut out: Vec<Selected<'a>> = observations
        .iter()
        .filter(|o| o.hits >= report.min_hits && eligible(o, fresh_since, report))
        .filter(|o| belongs(o.ip))
        .filter(|o| !reported(o.ip))
        .filter_map(|o| {
            let before = last_sent(o.ip);
            // A re-report is for an attacker that sent more since it was last reported, not
            // for history: in the window, or in the one before it, so that a run that comes
            // late (its budget spent on parts that waited, a run killed, a timer that did not
            // fire) makes it. (Measured by the window alone, an address seen again just after
            // its report was due at the one run where the window ended.)
            // And, as a first report, it needs `min_hits` packets: since the report before
            // (one packet after a report of hundreds proves as little as one alone).
            if let Some(b) = &before {
                let reach = rereport_since.map(|since| since.saturating_sub(window));
                let again = b.seen_since(o)
                    && b.hits_since(o) >= report.min_hits
                    && reach.is_none_or(|t| o.last_seen >= t);
                if !again {
                    return None;
                }
            }
            Some(Selected {
                observation: o,
                before,
            })
        })
        .collect();
    out.sort_by_key(|s| s.observation.ip);
    out
}

/// Whether `min_hits` alone holds the attacker back: fewer packets than that so far, but
/// fresh and reportable (it is reported once it reaches `min_hits`, to a destination it was
/// not reported to).
pub fn held_by_min_hits(o: &Observation, fresh_since: Option<i64>, report: &ReportConfig) -> bool {
    o.hits < report.min_hits && eligible(o, fresh_since, report)
}

/// What selection asks of any attacker, whatever its packet count: seen since `max_age_days`
/// (older is history, not a report), and an address that may be reported at all.
fn eligible(o: &Observation, fresh_since: Option<i64>, report: &ReportConfig) -> bool {
    fresh_since.is_none_or(|t| o.last_seen >= t)
        && is_reportable(o.ip)
        && !is_ignored(o.ip, &report.ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_never_reportable() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "2001:2::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:20::1",
            "2001:1ff:ffff::1",
            "2002:c612:1::1",
            "2002:100:4::1",
            "::3.5.140.2",
            // The reader keeps the mapped form only for a source no packet could have.
            "::ffff:52.94.1.7",
        ] {
            assert!(!is_reportable(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "34.223.47.190",
            "3.5.140.2",
            "2600:1f18::1",
            "100.128.0.1",
            "2001:200::1",
            "2003::1",
        ] {
            assert!(is_reportable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ignore_list_matches_networks_and_mapped_addresses() {
        let ignore = vec!["52.94.0.0/16".parse().unwrap()];
        assert!(is_ignored("52.94.1.7".parse().unwrap(), &ignore));
        assert!(is_ignored("::ffff:52.94.1.7".parse().unwrap(), &ignore));
        assert!(!is_ignored("52.95.1.7".parse().unwrap(), &ignore));
    }
}
