//! A deliberately plain, line-at-a-time reader of netfilter LOG lines, written from the
//! format's rules alone (byte slices split on `\n`, `starts_with`, std's address parser; no
//! SIMD search, no buffers, no threads): the reference the real reader is held to, in
//! `differential.rs` on generated logs and in `pipeline.rs` on real ones.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use abuse_mailer::ingest::{
    Attribution, INLINE_NAME, LONG_NAMES, MAX_PORTS, MAX_SMALL_SET, Observation, SmallSet, Summary,
};
use chrono::{DateTime, Datelike, NaiveDate, Utc};

pub const NOW: &str = "2026-02-01T00:00:00Z";

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// Providers by a rule both readers share: a stand-in for the range lookup.
pub fn attribute(ip: IpAddr) -> Attribution {
    let odd = match ip {
        IpAddr::V4(a) => a.octets()[0] % 2 == 1,
        IpAddr::V6(a) => a.segments()[0] % 2 == 1,
    };
    if odd {
        Attribution {
            in_provider: true,
            candidates: [0].into_iter().collect(),
            ..Default::default()
        }
    } else {
        Attribution::default()
    }
}

/// How one reading is set up.
#[derive(Debug, Clone)]
pub struct ReadSetup {
    pub prefixes: Vec<String>,
    /// The reader's buffer: a line at least this long (without its newline) is junk.
    pub buffer: usize,
    pub since: Option<i64>,
    /// Whether answers to the operator's own traffic count as hits (`backscatter = true`).
    pub answers_are_hits: bool,
}

pub type Observations = BTreeMap<IpAddr, Observation>;

// ---------------------------------------------------------------------------------------
// The reference reader.
// ---------------------------------------------------------------------------------------

/// What a line is, by the format's rules.
pub enum Verdict {
    Packet(RefPacket),
    Other,
    Malformed,
}

pub struct RefPacket {
    time: i64,
    host: String,
    src: IpAddr,
    dst: IpAddr,
    proto: String,
    spt: Option<u16>,
    dpt: Option<u16>,
    answer: bool,
    outgoing: bool,
    copies: u32,
}

/// Reads `input` the plain way: returns the summary, the observations and how many bytes
/// were consumed (complete lines, plus a last unfinished line too long to ever be a line).
pub fn reference(input: &[u8], setup: &ReadSetup) -> (Summary, Observations, u64) {
    let mut summary = Summary::default();
    let mut full: BTreeMap<IpAddr, Observation> = BTreeMap::new();
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        // NUL bytes at a line's start (a crash's block) are no part of it, however many:
        // passed over and counted as read, even with no line after them yet. A NUL byte
        // after text ends that text's line (cut short where the block began), and is passed
        // over with its block at the next line's start.
        let nul = rest.iter().take_while(|b| **b == 0).count();
        let body = &rest[nul..];
        let (line, taken) = match body.iter().position(|b| *b == b'\n' || *b == 0) {
            Some(i) if body[i] == 0 => (&body[..i], nul + i),
            Some(i) => (&body[..i], nul + i + 1),
            None if body.len() >= setup.buffer => (body, rest.len()),
            // May still be being written: left for the next run.
            None => {
                pos += nul;
                summary.bytes_read += nul as u64;
                break;
            }
        };
        pos += taken;
        summary.lines_read += 1;
        summary.bytes_read += taken as u64;
        if line.len() >= setup.buffer {
            let head = &line[..setup.buffer];
            if setup.prefixes.iter().any(|p| contains(head, p.as_bytes())) {
                summary.lines_malformed += 1;
            }
            continue;
        }
        // A line a NUL byte ends was cut by a crash: only its words up to its last space are
        // whole, and when its first prefix is not among them, nothing of it is.
        let line = match body.get(line.len()) {
            Some(0) => {
                let whole = line.iter().rposition(|b| *b == b' ').map_or(0, |i| i + 1);
                match first_prefix_end(line, &setup.prefixes) {
                    Some(end) if end > whole => {
                        summary.lines_malformed += 1;
                        continue;
                    }
                    _ => &line[..whole],
                }
            }
            _ => line,
        };
        match judge(line, &setup.prefixes) {
            Verdict::Packet(p) => {
                summary.lines_matched += 1;
                if setup.since.is_some_and(|s| p.time < s) {
                    summary.lines_before_since += 1;
                    continue;
                }
                if p.outgoing {
                    summary.lines_outgoing += 1;
                    continue;
                }
                if p.answer && !setup.answers_are_hits {
                    summary.lines_backscatter += 1;
                    continue;
                }
                let o = full
                    .entry(p.src)
                    .or_insert_with(|| Observation::new(p.src, p.time));
                o.hits += u64::from(p.copies);
                o.first_seen = o.first_seen.min(p.time);
                o.last_seen = o.last_seen.max(p.time);
                o.protocols.insert(p.proto.into());
                o.dst_ports.extend(p.dpt);
                o.src_ports.extend(p.spt);
                o.dsts.insert(p.dst);
                o.hosts.insert(p.host.into());
            }
            Verdict::Malformed => summary.lines_malformed += 1,
            // A prefix outside a kernel message: another program's text, or another layout.
            Verdict::Other if setup.prefixes.iter().any(|p| contains(line, p.as_bytes())) => {
                summary.lines_not_kernel += 1;
                summary.lines_malformed += 1;
            }
            Verdict::Other => {}
        }
    }
    // Bounded sets keep their smallest values, whatever order the lines came in.
    fn smallest<T: Ord + Clone>(set: &SmallSet<T>, n: usize) -> SmallSet<T> {
        set.iter().take(n).cloned().collect()
    }
    for o in full.values_mut() {
        o.protocols = smallest(&o.protocols, MAX_SMALL_SET);
        o.dst_ports = smallest(&o.dst_ports, MAX_PORTS);
        o.src_ports = smallest(&o.src_ports, MAX_SMALL_SET);
        o.dsts = smallest(&o.dsts, MAX_SMALL_SET);
        // Of the hosts, the long names (past what a record holds in place) take at most
        // LONG_NAMES places, their smallest.
        let long: Vec<_> = (o.hosts.iter())
            .filter(|n| n.len() > INLINE_NAME)
            .take(LONG_NAMES)
            .cloned()
            .collect();
        let hosts: SmallSet<_> = (o.hosts.iter())
            .filter(|n| n.len() <= INLINE_NAME || long.contains(n))
            .cloned()
            .collect();
        o.hosts = smallest(&hosts, MAX_SMALL_SET);
    }
    summary.ips_observed = full.len() as u64;
    summary.ips_unattributed = full
        .keys()
        .filter(|ip| !attribute(**ip).in_provider)
        .count() as u64;
    (summary, full, pos as u64)
}

/// Where the earliest prefix in `line` ends (of those starting there, the longest).
fn first_prefix_end(line: &[u8], prefixes: &[String]) -> Option<usize> {
    (0..line.len()).find_map(|at| {
        (prefixes.iter())
            .filter(|p| line[at..].starts_with(p.as_bytes()))
            .map(|p| at + p.len())
            .max()
    })
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn skip_spaces(text: &[u8]) -> &[u8] {
    let mut t = text;
    while let [b' ', rest @ ..] = t {
        t = rest;
    }
    t
}

/// The word at the start (after spaces) and what follows it.
pub fn word(text: &[u8]) -> (&[u8], &[u8]) {
    let t = skip_spaces(text);
    match t.iter().position(|b| *b == b' ') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, &[]),
    }
}

/// One line (without its newline) by the rules of the format.
pub fn judge(line: &[u8], prefixes: &[String]) -> Verdict {
    if !prefixes.iter().any(|p| contains(line, p.as_bytes())) {
        return Verdict::Other;
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // (NUL bytes never reach here: they end lines, and the reader passes over them.)
    let mut rest = line;
    if let Some(after) = rest.strip_prefix(b"<") {
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=3).contains(&digits) && after.get(digits) == Some(&b'>') {
            rest = &after[digits + 1..];
        } else {
            return Verdict::Malformed;
        }
    }
    let Some((time, rest)) = stamp(rest) else {
        return Verdict::Malformed;
    };
    let (host, rest) = word(rest);
    if host.is_empty() {
        return Verdict::Malformed;
    }
    let (tag, rest) = word(rest);
    if tag.is_empty() {
        return Verdict::Malformed;
    }
    if tag != b"kernel:" {
        return Verdict::Other;
    }
    let mut message = skip_spaces(rest);
    if let Some(inner) = message.strip_prefix(b"[")
        && let Some(close) = inner.iter().position(|b| *b == b']')
        && inner[..close]
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b'.' || *b == b' ')
    {
        message = skip_spaces(&inner[close + 1..]);
    }
    // rsyslog's `message repeated N times: [ <the message>]`: N packets, the closing bracket
    // no part of the fields.
    let mut copies = 1;
    if let Some(after) = message.strip_prefix(b"message repeated ") {
        let digits: Vec<u8> = after
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        let n = String::from_utf8(digits.clone())
            .ok()
            .and_then(|d| d.parse::<u32>().ok());
        if (1..=9).contains(&digits.len())
            && after[digits.len()..].starts_with(b" times: [")
            && let Some(n) = n.filter(|n| *n > 0)
        {
            copies = n;
            message = message.strip_suffix(b"]").unwrap_or(message);
        }
    }
    // The earliest prefix in the message; of those starting there, the longest.
    let mut found = None;
    'search: for at in 0..message.len() {
        for p in prefixes {
            if message[at..].starts_with(p.as_bytes()) && found.is_none_or(|(_, len)| p.len() > len)
            {
                found = Some((at, p.len()));
            }
        }
        if found.is_some() {
            break 'search;
        }
    }
    let Some((at, len)) = found else {
        return Verdict::Other;
    };
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(b));
    if !host_ok {
        return Verdict::Malformed;
    }
    match reference_fields(&message[at + len..], prefixes) {
        Some((src, dst, proto, spt, dpt)) => Verdict::Packet(RefPacket {
            time,
            host: String::from_utf8(host.to_vec()).unwrap(),
            answer: answers(&message[at + len..], &proto),
            outgoing: sent_by_the_host(&message[at + len..]) || src == dst,
            copies,
            src,
            dst,
            proto,
            spt,
            dpt,
        }),
        None => Verdict::Malformed,
    }
}

/// Whether the packet left the operator's host: its first field is an empty `IN=` or `IN=lo`.
/// (One whose source is its destination claims to have: see [`judge`].)
fn sent_by_the_host(text: &[u8]) -> bool {
    let mut words = text.split(|b| *b == b' ').filter(|w| !w.is_empty());
    matches!(words.find(|w| w.contains(&b'=')), Some(b"IN=" | b"IN=lo"))
}

/// Whether the packet answers the operator's own traffic, judged on the words of the outer
/// packet (from `IN=` up to a quoted one): TCP with an `ACK` or `RST` word; ICMP whose first
/// `TYPE=` is an echo reply, an error or another reply; ICMPv6 errors, echo reply and
/// neighbour discovery.
fn answers(text: &[u8], proto: &str) -> bool {
    let words: Vec<&[u8]> = text.split(|b| *b == b' ').collect();
    let Some(first) = words.iter().position(|w| w.starts_with(b"IN=")) else {
        return false;
    };
    let outer: Vec<&[u8]> = words[first..]
        .iter()
        .copied()
        .take_while(|w| !w.starts_with(b"["))
        .collect();
    let icmp_type = || {
        let digits = outer.iter().find_map(|w| w.strip_prefix(b"TYPE="))?;
        std::str::from_utf8(digits).ok()?.parse::<u8>().ok()
    };
    match proto {
        "TCP" | "6" => outer.iter().any(|w| *w == b"ACK" || *w == b"RST"),
        "ICMP" | "1" => icmp_type().is_some_and(|t| [0, 3, 4, 5, 11, 12, 14, 16, 18].contains(&t)),
        "ICMPv6" | "58" => icmp_type()
            .is_some_and(|t| (1..=4).contains(&t) || (129..=137).contains(&t) || t == 143),
        _ => false,
    }
}

pub type RefFields = (IpAddr, IpAddr, String, Option<u16>, Option<u16>);

/// Words before `IN=` are passed over; from `IN=` on, the first of each key counts, up to a
/// quoted packet (`[`), or up to `DPT=` once the addresses and protocol are known.
pub fn reference_fields(text: &[u8], prefixes: &[String]) -> Option<RefFields> {
    let words: Vec<&[u8]> = text
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let first = words.iter().position(|w| w.contains(&b'='))?;
    if !words[first].starts_with(b"IN=") {
        return None;
    }
    // A configured prefix again from the first field on: the next line, run on after this
    // one was cut. No packet.
    let from = words[first].as_ptr() as usize - text.as_ptr() as usize;
    if prefixes
        .iter()
        .any(|p| contains(&text[from..], p.as_bytes()))
    {
        return None;
    }
    let mut seen: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    for w in &words[first..] {
        if w.starts_with(b"[") {
            break;
        }
        let Some(eq) = w.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (key, value) = (&w[..eq], &w[eq + 1..]);
        if ![
            &b"IN"[..],
            b"OUT",
            b"MAC",
            b"SRC",
            b"DST",
            b"PROTO",
            b"SPT",
            b"DPT",
        ]
        .contains(&key)
        {
            continue;
        }
        seen.entry(key).or_insert(value);
        if key == b"DPT"
            && [&b"SRC"[..], b"DST", b"PROTO"]
                .iter()
                .all(|k| seen.contains_key(k))
        {
            break;
        }
    }
    let text = |k: &[u8]| std::str::from_utf8(seen.get(k).copied().unwrap_or_default()).ok();
    for k in [
        &b"IN"[..],
        b"OUT",
        b"MAC",
        b"SRC",
        b"DST",
        b"PROTO",
        b"SPT",
        b"DPT",
    ] {
        text(k)?;
    }
    let mac = text(b"MAC")?;
    if !mac.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
        return None;
    }
    let addr = |k: &[u8]| text(k)?.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    let proto = text(b"PROTO")?;
    let known = ["TCP", "UDP", "UDPLITE", "ICMP", "ICMPv6", "AH", "ESP"].contains(&proto)
        || (!proto.is_empty()
            && proto.len() <= 3
            && proto.bytes().all(|b| b.is_ascii_digit())
            && (proto == "0" || !proto.starts_with('0'))
            && proto.parse::<u16>().is_ok_and(|n| n <= 255));
    if !known {
        return None;
    }
    let port = |k: &[u8]| -> Option<Option<u16>> {
        match seen.get(k) {
            None => Some(None),
            Some(v) if !v.is_empty() && v.len() <= 5 && v.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(v).ok()?.parse::<u16>().ok().map(Some)
            }
            Some(_) => None,
        }
    };
    let (src, dst) = (addr(b"SRC")?, addr(b"DST")?);
    // An IPv4 source in an IPv6 packet (a mapped one) is no IPv4 host's: it stays mapped.
    let src = match (src, dst) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => src,
    };
    // A source port without a destination port: a line cut short.
    let (spt, dpt) = (port(b"SPT")?, port(b"DPT")?);
    if spt.is_some() && dpt.is_none() {
        return None;
    }
    Some((src, dst, proto.to_string(), spt, dpt))
}

/// The syslog timestamp at the start and the text after it: RFC 3339 up to the first space, or
/// BSD's `Mmm dd HH:MM:SS` in UTC, in the latest year that has the date and is not more than a
/// day ahead.
pub fn stamp(text: &[u8]) -> Option<(i64, &[u8])> {
    let space = text.iter().position(|b| *b == b' ')?;
    if text[0].is_ascii_digit() {
        let t = DateTime::parse_from_rfc3339(std::str::from_utf8(&text[..space]).ok()?).ok()?;
        return Some((t.timestamp(), &text[space..]));
    }
    if text.len() < 16 || text[15] != b' ' {
        return None;
    }
    let s = std::str::from_utf8(&text[..15]).ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| s.starts_with(m))? as u32 + 1;
    let b = s.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let day_text = s[4..6].trim_start_matches(' ');
    let num = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (day, h, m, sec) = (
        num(day_text)?,
        num(&s[7..9])?,
        num(&s[10..12])?,
        num(&s[13..15])?,
    );
    let year = now().year();
    // Feb 29 is the last leap year's, up to eight years back.
    for y in (year - 8..=year + 1).rev() {
        if let Some(t) =
            NaiveDate::from_ymd_opt(y, month, day).and_then(|d| d.and_hms_opt(h, m, sec))
        {
            let t = t.and_utc().timestamp();
            // Next year's only within the hour; this year's and last within the day.
            let slack = if y > year { 3600 } else { 86_400 };
            if t <= now().timestamp() + slack {
                return Some((t, &text[15..]));
            }
        }
    }
    None
}
