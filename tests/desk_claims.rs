//! Every claim a report makes, checked against an independent reading of the log: a log of
//! several providers, sources in none, several of our hosts and addresses, TCP, UDP, ICMP and
//! IPv6, lines out of order and repeated, across midnight and a change to summer time in a
//! named zone. The expected numbers and times are computed here from a table of the packets
//! written by hand, not by the tool's own code; `preview --json`, the mail body, `ips.csv`,
//! `evidence.log`, `excerpt.log`, the summary line and `history --json` must all agree with
//! it, and no report may carry another desk's addresses or our own redacted details.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset};
use common::*;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// Our MAC as the kernel logs it, which no report may show.
const MAC: &str = "52:54:00:12:34:56:fe:54:00:ab:cd:ef:08:00";

/// One logged packet: the syslog stamp (Europe/Berlin wall clock, no year), the same moment
/// written as RFC 3339 with Berlin's offset by hand, our host, the source, our address, and
/// what was sent.
struct Packet {
    stamp: &'static str,
    at: &'static str,
    host: &'static str,
    src: &'static str,
    dst: &'static str,
    proto: &'static str,
    dpt: Option<u16>,
}

const fn p(
    stamp: &'static str,
    at: &'static str,
    host: &'static str,
    src: &'static str,
    dst: &'static str,
    proto: &'static str,
    dpt: Option<u16>,
) -> Packet {
    Packet {
        stamp,
        at,
        host,
        src,
        dst,
        proto,
        dpt,
    }
}

const WEB: &str = "198.51.100.10";
const DNS: &str = "198.51.100.53";
const WEB6: &str = "2001:db8::10";

/// The log, in the order written. Berlin moves from +01:00 to +02:00 at 02:00 on 29 March
/// 2026. Two lines come out of order (a relay's delay) and one packet is logged twice alike.
const LOG: &[Packet] = &[
    p(
        "Mar 28 23:59:58",
        "2026-03-28T23:59:58+01:00",
        "web1",
        "5.10.1.1",
        WEB,
        "TCP",
        Some(22),
    ),
    p(
        "Mar 29 00:00:03",
        "2026-03-29T00:00:03+01:00",
        "web1",
        "5.10.1.1",
        WEB,
        "TCP",
        Some(22),
    ),
    // Out of order: logged after a later line.
    p(
        "Mar 28 23:59:50",
        "2026-03-28T23:59:50+01:00",
        "dns1",
        "81.2.69.142",
        DNS,
        "UDP",
        Some(53),
    ),
    p(
        "Mar 29 00:00:04",
        "2026-03-29T00:00:04+01:00",
        "dns1",
        "81.2.69.142",
        DNS,
        "UDP",
        Some(53),
    ),
    p(
        "Mar 29 00:00:05",
        "2026-03-29T00:00:05+01:00",
        "web1",
        "45.33.1.99",
        WEB,
        "TCP",
        Some(80),
    ),
    p(
        "Mar 29 01:59:58",
        "2026-03-29T01:59:58+01:00",
        "web1",
        "5.10.2.22",
        WEB,
        "TCP",
        Some(443),
    ),
    p(
        "Mar 29 01:59:59",
        "2026-03-29T01:59:59+01:00",
        "web1",
        "5.10.2.22",
        WEB,
        "ICMP",
        None,
    ),
    // The clock jumped from 02:00 to 03:00.
    p(
        "Mar 29 03:00:00",
        "2026-03-29T03:00:00+02:00",
        "web1",
        "5.10.2.22",
        WEB,
        "TCP",
        Some(8080),
    ),
    p(
        "Mar 29 03:00:01",
        "2026-03-29T03:00:01+02:00",
        "web1",
        "2a05:d000::7",
        WEB6,
        "TCP",
        Some(22),
    ),
    p(
        "Mar 29 03:00:01",
        "2026-03-29T03:00:01+02:00",
        "web1",
        "2a05:d000::7",
        WEB6,
        "ICMPv6",
        None,
    ),
    p(
        "Mar 29 03:00:02",
        "2026-03-29T03:00:02+02:00",
        "dns1",
        "5.10.33.3",
        DNS,
        "UDP",
        Some(53),
    ),
    p(
        "Mar 29 03:00:02",
        "2026-03-29T03:00:02+02:00",
        "dns1",
        "5.10.33.3",
        DNS,
        "UDP",
        Some(123),
    ),
    p(
        "Mar 29 03:00:03",
        "2026-03-29T03:00:03+02:00",
        "dns1",
        "81.2.69.160",
        DNS,
        "UDP",
        Some(53),
    ),
    p(
        "Mar 29 03:00:03",
        "2026-03-29T03:00:03+02:00",
        "web1",
        "2a01:4f8::99",
        WEB6,
        "TCP",
        Some(25),
    ),
    p(
        "Mar 29 03:00:04",
        "2026-03-29T03:00:04+02:00",
        "web1",
        "5.10.1.1",
        WEB,
        "TCP",
        Some(2222),
    ),
    p(
        "Mar 29 03:00:04",
        "2026-03-29T03:00:04+02:00",
        "dns1",
        "5.10.1.1",
        DNS,
        "UDP",
        Some(53),
    ),
    // A burst: the densest five seconds of alpha's sources.
    p(
        "Mar 29 04:10:00",
        "2026-03-29T04:10:00+02:00",
        "web1",
        "5.10.33.3",
        WEB,
        "TCP",
        Some(22),
    ),
    p(
        "Mar 29 04:10:00",
        "2026-03-29T04:10:00+02:00",
        "web1",
        "5.10.2.22",
        WEB,
        "TCP",
        Some(22),
    ),
    p(
        "Mar 29 04:10:01",
        "2026-03-29T04:10:01+02:00",
        "web1",
        "5.10.33.3",
        WEB,
        "TCP",
        Some(23),
    ),
    p(
        "Mar 29 04:10:02",
        "2026-03-29T04:10:02+02:00",
        "web1",
        "2a05:d000::7",
        WEB6,
        "TCP",
        Some(22),
    ),
    p(
        "Mar 29 04:10:03",
        "2026-03-29T04:10:03+02:00",
        "web1",
        "5.10.33.3",
        WEB,
        "TCP",
        Some(24),
    ),
    p(
        "Mar 29 04:10:04",
        "2026-03-29T04:10:04+02:00",
        "web1",
        "5.10.2.22",
        WEB,
        "TCP",
        Some(25),
    ),
    p(
        "Mar 29 04:10:04",
        "2026-03-29T04:10:04+02:00",
        "dns1",
        "81.2.69.160",
        DNS,
        "UDP",
        Some(53),
    ),
    // A time the clock skipped (a host that kept winter time): read as winter time, 02:30
    // at +01:00, which Berlin's clocks called 03:30.
    p(
        "Mar 29 02:30:00",
        "2026-03-29T03:30:00+02:00",
        "web1",
        "5.10.2.22",
        WEB,
        "TCP",
        Some(443),
    ),
    // Out of order again, far from the burst.
    p(
        "Mar 29 00:30:00",
        "2026-03-29T00:30:00+01:00",
        "web1",
        "5.10.33.3",
        WEB,
        "TCP",
        Some(21),
    ),
    p(
        "Mar 29 05:00:00",
        "2026-03-29T05:00:00+02:00",
        "web1",
        "45.33.1.99",
        WEB,
        "TCP",
        Some(80),
    ),
];

/// The packet at this index is logged a second time, alike to the byte.
const REPEATED: usize = 14;

/// Which provider holds a source (`None`: no provider).
fn provider_of(src: &str) -> Option<&'static str> {
    if src.starts_with("5.10.") || src.starts_with("2a05:d000:") {
        Some("alpha")
    } else if src.starts_with("81.2.69.") {
        Some("beta")
    } else {
        None
    }
}

fn desk_of(provider: &str) -> &'static str {
    match provider {
        "alpha" => "abuse@alpha.example",
        _ => "abuse@beta.example",
    }
}

/// The kernel's line for a packet (`n` makes its uptime stamp, so that only the repeated
/// packet's two lines are alike).
fn line(n: usize, pk: &Packet) -> String {
    let v6 = pk.src.contains(':');
    let head = format!(
        "{} {} kernel: [{}.{:06}] INPUT-DROP:IN=eth0 OUT= MAC={MAC} SRC={} DST={} ",
        pk.stamp,
        pk.host,
        900_000 + n,
        n * 7,
        pk.src,
        pk.dst
    );
    let ip = if v6 {
        "LEN=80 TC=0 HOPLIMIT=50 FLOWLBL=0 ".to_string()
    } else {
        "LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=4242 ".to_string()
    };
    let l4 = match (pk.proto, pk.dpt) {
        ("TCP", Some(d)) => {
            format!(
                "PROTO=TCP SPT={} DPT={d} WINDOW=1024 RES=0x00 SYN URGP=0 ",
                40_000 + n
            )
        }
        ("UDP", Some(d)) => format!("PROTO=UDP SPT={} DPT={d} LEN=40 ", 40_000 + n),
        ("ICMP", None) => "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 ".to_string(),
        ("ICMPv6", None) => "PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1 ".to_string(),
        other => panic!("no such packet in the table: {other:?}"),
    };
    format!("{head}{ip}{l4}\n")
}

/// The log as written: every packet's line, the repeated one twice, and a line of other
/// kernel chatter that is no packet.
fn log_text() -> (String, Vec<(usize, String)>) {
    let mut text = String::from("Mar 28 23:00:00 web1 kernel: eth0: link up\n");
    let mut lines = Vec::new();
    for (n, pk) in LOG.iter().enumerate() {
        let l = line(n, pk);
        text.push_str(&l);
        lines.push((n, l.trim_end_matches('\n').to_string()));
        if n == REPEATED {
            text.push_str(&l);
            lines.push((n, l.trim_end_matches('\n').to_string()));
        }
    }
    (text, lines)
}

/// What the log says of one source, worked out here.
#[derive(Debug, Default, Clone)]
struct Expected {
    hits: u64,
    first: Option<DateTime<FixedOffset>>,
    last: Option<DateTime<FixedOffset>>,
    ports: BTreeSet<u16>,
    protocols: BTreeSet<String>,
    targets: BTreeSet<String>,
    /// Its log lines as written.
    lines: Vec<String>,
    /// When each of them was logged.
    times: Vec<DateTime<FixedOffset>>,
}

impl Expected {
    fn first(&self) -> String {
        self.first.unwrap().to_rfc3339()
    }
    fn last(&self) -> String {
        self.last.unwrap().to_rfc3339()
    }
}

fn expected() -> BTreeMap<String, Expected> {
    expected_of(&log_text().1)
}

/// What `lines` (numbered as in [`LOG`]) say of each source.
fn expected_of(lines: &[(usize, String)]) -> BTreeMap<String, Expected> {
    let lines = lines.to_vec();
    let mut by_ip: BTreeMap<String, Expected> = BTreeMap::new();
    for (n, text) in lines {
        let pk = &LOG[n];
        let at = DateTime::parse_from_rfc3339(pk.at).unwrap();
        let e = by_ip.entry(pk.src.to_string()).or_default();
        e.hits += 1;
        // Compared as instants: the offsets differ across the change.
        e.first = Some(e.first.map_or(at, |f| if at < f { at } else { f }));
        e.last = Some(e.last.map_or(at, |l| if at > l { at } else { l }));
        e.ports.extend(pk.dpt);
        e.protocols.insert(pk.proto.to_string());
        e.targets.insert(pk.dst.to_string());
        e.lines.push(text);
        e.times.push(at);
    }
    by_ip
}

fn config(extra_report: &str) -> String {
    format!(
        r#"
state_dir = "{{dir}}/state"
timezone = "Europe/Berlin"

[[source]]
path = "{{dir}}/messages"

[[provider]]
name = "alpha"
to = ["abuse@alpha.example"]
ranges = "{{dir}}/alpha.txt"

[[provider]]
name = "beta"
to = ["abuse@beta.example"]
ranges = "{{dir}}/beta.txt"

[report]
from = "Abuse desk <abuse@example.org>"
min_hits = 1
{extra_report}

[mail]
transport = "file"
dir = "{{dir}}/outbox"
"#
    )
}

fn setup(extra_report: &str) -> Setup {
    let mut s = Setup::new(&config(extra_report));
    s.now = "2026-03-29T12:00:00Z".to_string();
    s.write("alpha.txt", "5.10.0.0/16\n2a05:d000::/25\n");
    s.write("beta.txt", "81.2.69.0/24\n");
    s.write("messages", &log_text().0);
    s
}

/// Times in a report: RFC 3339 with the zone's offset, compared as the same instant *and*
/// the same offset (a desk reads the wall clock).
fn same_time(shown: &str, expected: &str, what: &str) {
    assert_eq!(shown, expected, "{what}");
}

fn attachment(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .attachments()
        .find(|a| a.attachment_name() == Some(name))
        .map(|a| String::from_utf8_lossy(a.contents()).replace("\r\n", "\n"))
}

/// Every text a desk gets in one message: headers, body and each attachment.
fn all_text(message: &Message<'_>, raw: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    text.push_str(&message.body_text(0).unwrap());
    for a in message.attachments() {
        text.push_str(&String::from_utf8_lossy(a.contents()));
    }
    text
}

/// The sources of `provider`, as expected.
fn of_provider(all: &BTreeMap<String, Expected>, provider: &str) -> BTreeMap<String, Expected> {
    all.iter()
        .filter(|(ip, _)| provider_of(ip) == Some(provider))
        .map(|(ip, e)| (ip.clone(), e.clone()))
        .collect()
}

fn ip_order(ips: &BTreeMap<String, Expected>) -> Vec<String> {
    let mut v: Vec<std::net::IpAddr> = ips.keys().map(|i| i.parse().unwrap()).collect();
    v.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    v.iter().map(|i| i.to_string()).collect()
}

/// `preview --json` says of each source what the log says, in the configured zone.
#[test]
fn preview_json_agrees_with_an_independent_reading_of_the_log() {
    let s = setup("");
    let all = expected();
    let out = s.run(&["preview", "--json"]).ok().json();
    let reports = out["reports"].as_array().unwrap();
    let providers: Vec<&str> = reports
        .iter()
        .map(|r| r["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["alpha", "beta"]);
    for r in reports {
        let provider = r["provider"].as_str().unwrap();
        let mine = of_provider(&all, provider);
        assert_eq!(string_list(&r["to"]), [desk_of(provider)]);
        assert_eq!(ip_list(&r["ips"]), ip_order(&mine), "{provider}: order");
        for entry in r["ips"].as_array().unwrap() {
            let ip = entry["ip"].as_str().unwrap();
            let e = &mine[ip];
            assert_eq!(entry["hits"].as_u64(), Some(e.hits), "{ip} hits");
            same_time(entry["first_seen"].as_str().unwrap(), &e.first(), ip);
            same_time(entry["last_seen"].as_str().unwrap(), &e.last(), ip);
            let ports: Vec<u16> = entry["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u16)
                .collect();
            assert_eq!(ports, e.ports.iter().copied().collect::<Vec<_>>(), "{ip}");
        }
        // The excerpt holds this provider's lines only, as logged (MAC hidden).
        for l in string_list(&r["excerpt"]) {
            let src = l.split("SRC=").nth(1).unwrap().split(' ').next().unwrap();
            assert_eq!(provider_of(src), Some(provider), "{l}");
            assert!(!l.contains(MAC), "{l}");
        }
    }
    let unattributed = &out["unattributed"];
    let none: BTreeMap<String, Expected> = all
        .iter()
        .filter(|(ip, _)| provider_of(ip).is_none())
        .map(|(ip, e)| (ip.clone(), e.clone()))
        .collect();
    assert_eq!(ip_list(unattributed), ip_order(&none));
    for entry in unattributed.as_array().unwrap() {
        let ip = entry["ip"].as_str().unwrap();
        assert_eq!(entry["hits"].as_u64(), Some(none[ip].hits), "{ip}");
        same_time(entry["first_seen"].as_str().unwrap(), &none[ip].first(), ip);
        same_time(entry["last_seen"].as_str().unwrap(), &none[ip].last(), ip);
    }
    let (text, lines) = log_text();
    let summary = &out["summary"];
    assert_eq!(summary["lines_read"].as_u64(), Some(lines.len() as u64 + 1));
    assert_eq!(summary["bytes_read"].as_u64(), Some(text.len() as u64));
    assert_eq!(summary["lines_matched"].as_u64(), Some(lines.len() as u64));
    assert_eq!(summary["lines_malformed"].as_u64(), Some(0));
    assert_eq!(summary["ips_observed"].as_u64(), Some(all.len() as u64));
    assert_eq!(
        summary["ips_unattributed"].as_u64(),
        Some(none.len() as u64)
    );
}

/// Checks one delivered message against the expected reading: headers, body, ips.csv,
/// evidence.log and excerpt.log; and that it names nothing of another desk.
fn check_mail(raw: &[u8], provider: &str, all: &BTreeMap<String, Expected>, dst_hidden: bool) {
    check_part(raw, provider, &of_provider(all, provider), all, dst_hidden)
}

/// [`check_mail`] of a message that reports the sources `mine`, out of `all`.
fn check_part(
    raw: &[u8],
    provider: &str,
    mine: &BTreeMap<String, Expected>,
    all: &BTreeMap<String, Expected>,
    dst_hidden: bool,
) {
    let message = MessageParser::default().parse(raw).unwrap();
    let mine = mine.clone();
    let to: Vec<&str> = message
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap())
        .collect();
    assert_eq!(to, [desk_of(provider)]);
    let subject = message.subject().unwrap();
    let targets: BTreeSet<&String> = mine.values().flat_map(|e| &e.targets).collect();
    let hosts = if mine.len() == 1 {
        format!("from one {provider} host to ")
    } else {
        format!("from {} {provider} hosts to ", mine.len())
    };
    assert!(subject.contains(&hosts), "{subject}");
    let target_words = match (dst_hidden, targets.len()) {
        (true, _) => "our servers".to_string(),
        (false, 1) => targets.iter().next().unwrap().to_string(),
        (false, n) => format!("{n} of our addresses"),
    };
    let unnumbered = subject.split(" (part ").next().unwrap();
    assert!(unnumbered.ends_with(&target_words), "{subject}");

    let body = message.body_text(0).unwrap().to_string();
    let field = |label: &str| -> String {
        // A field's value with its wrapped lines joined.
        let mut lines = body
            .lines()
            .skip_while(|l| !l.starts_with(&format!("  {label}:")));
        let mut value = lines
            .next()
            .unwrap_or_else(|| panic!("no {label}:\n{body}"))[label.len() + 3..]
            .trim()
            .to_string();
        for l in lines {
            if l.starts_with("            ") && !l.trim().is_empty() {
                value.push(' ');
                value.push_str(l.trim());
            } else {
                break;
            }
        }
        value
    };
    let n = mine.len();
    assert_eq!(
        field("Sources"),
        format!(
            "{n} address{} in your network",
            if n == 1 { "" } else { "es" }
        )
    );
    let total: u64 = mine.values().map(|e| e.hits).sum();
    assert_eq!(field("Packets"), format!("{total} dropped"));
    let first = mine.values().map(|e| e.first.unwrap()).min().unwrap();
    let last = mine.values().map(|e| e.last.unwrap()).max().unwrap();
    assert_eq!(
        field("Period"),
        format!(
            "{} to {} (Europe/Berlin)",
            first.to_rfc3339(),
            last.to_rfc3339()
        )
    );
    if dst_hidden {
        assert!(!body.contains("  Targets:"), "{body}");
    } else {
        let t: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
        assert_eq!(field("Targets"), t.join(", "));
    }
    let protocols: BTreeSet<&String> = mine.values().flat_map(|e| &e.protocols).collect();
    let ports: BTreeSet<u16> = mine
        .values()
        .flat_map(|e| e.ports.iter().copied())
        .collect();
    let traffic = field("Traffic");
    let names: Vec<&str> = protocols.iter().map(|p| p.as_str()).collect();
    assert!(traffic.starts_with(&names.join(", ")), "{traffic}");
    // The ports, perhaps cut to fit a line: the lowest first, and how many more.
    let listed = traffic.split_once("destination port").unwrap().1;
    let listed = listed.strip_prefix('s').unwrap_or(listed).trim_start();
    let (shown, more) = match listed.split_once(" and ") {
        Some((shown, more)) => (shown, more.trim_end_matches(" more").parse().unwrap()),
        None => (listed, 0),
    };
    let shown: Vec<u16> = shown.split(", ").map(|p| p.parse().unwrap()).collect();
    assert_eq!(shown.len() + more, ports.len(), "{traffic}");
    assert_eq!(
        shown,
        ports.iter().copied().take(shown.len()).collect::<Vec<_>>(),
        "{traffic}"
    );
    // The table: each source's packets and period.
    for (ip, e) in &mine {
        let mut rows = body
            .lines()
            .skip_while(|l| !l.starts_with(&format!("  {ip} ")) || l.contains("kernel:"));
        let row = rows
            .next()
            .unwrap_or_else(|| panic!("{ip} not listed:\n{body}"));
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(words[1], e.hits.to_string(), "{row}");
        let period = rows.next().unwrap().trim();
        assert!(
            period.starts_with(&format!("{} to {}", e.first(), e.last())),
            "{ip}: {period}"
        );
    }

    // ips.csv: one row per source, in address order, every field as the log says.
    let csv = attachment(&message, "ips.csv").expect("ips.csv");
    let mut rows = csv.lines();
    rows.next();
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| r[0].to_string()).collect::<Vec<_>>(),
        ip_order(&mine)
    );
    for r in &rows {
        let e = &mine[r[0]];
        assert_eq!(r[1], e.first(), "{r:?}");
        assert_eq!(r[2], e.last(), "{r:?}");
        assert_eq!(r[3], e.hits.to_string(), "{r:?}");
        let protos: Vec<&str> = e.protocols.iter().map(|p| p.as_str()).collect();
        assert_eq!(r[4], protos.join(" "), "{r:?}");
        let ports: Vec<String> = e.ports.iter().map(u16::to_string).collect();
        assert_eq!(r[5], ports.join(" "), "{r:?}");
        if dst_hidden {
            assert_eq!(r[6], "", "{r:?}");
        } else {
            let t: Vec<&str> = e.targets.iter().map(|t| t.as_str()).collect();
            assert_eq!(r[6], t.join(" "), "{r:?}");
        }
    }

    // evidence.log: each source's heading is true, and its lines are its own, as logged.
    let evidence = attachment(&message, "evidence.log").expect("evidence.log");
    let mut seen = BTreeSet::new();
    for block in evidence.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let heading = lines.next().unwrap();
        let ip = heading
            .strip_prefix("# ")
            .and_then(|h| h.split(": ").next())
            .unwrap();
        let e = &mine[ip];
        let own: Vec<&str> = lines.collect();
        let want = if e.hits == 1 {
            format!("# {ip}: 1 packet at {}; its line", e.first())
        } else {
            format!(
                "# {ip}: {} packets from {} to {}; {} of its lines",
                e.hits,
                e.first(),
                e.last(),
                own.len()
            )
        };
        assert_eq!(heading, want);
        for l in &own {
            assert!(
                e.lines
                    .iter()
                    .any(|logged| shown_as(logged, dst_hidden) == *l),
                "{ip}: not a line it logged: {l}"
            );
        }
        seen.insert(ip.to_string());
    }
    assert_eq!(
        seen,
        mine.keys().cloned().collect(),
        "every source has evidence"
    );

    // excerpt.log and the body's excerpt: lines of this provider's sources, as logged.
    let excerpt = attachment(&message, "excerpt.log").expect("excerpt.log");
    for l in excerpt.lines().filter(|l| !l.is_empty()) {
        let src = l.split("SRC=").nth(1).unwrap().split(' ').next().unwrap();
        assert!(mine.contains_key(src), "{l}");
        assert!(
            mine[src]
                .lines
                .iter()
                .any(|logged| shown_as(logged, dst_hidden) == l),
            "not as logged: {l}"
        );
        assert!(body.contains(l), "the body shows the excerpt: {l}");
    }

    // The excerpt's heading: the densest `sample_seconds` (5) of this provider's lines.
    let times: Vec<DateTime<FixedOffset>> = mine
        .values()
        .flat_map(|e| e.times.iter().copied())
        .collect();
    // The heading says how many of these sources' packets its five seconds held: exactly,
    // or "at least" a number no larger than that, where the lines kept cannot tell.
    let joined = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let heading = joined
        .split_once("Log excerpt: the 5 seconds from ")
        .unwrap_or_else(|| panic!("no excerpt heading:\n{body}"))
        .1;
    let (start, rest) = heading.split_once(" held ").unwrap();
    let start = DateTime::parse_from_rfc3339(start).unwrap();
    let (at_least, rest) = match rest.strip_prefix("at least ") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let said: usize = rest.split(' ').next().unwrap().parse().unwrap();
    let held = times
        .iter()
        .filter(|u| **u >= start && (**u - start).num_seconds() < 5)
        .count();
    if at_least {
        assert!(said <= held, "said at least {said}, held {held}: {heading}");
    } else {
        assert_eq!(said, held, "{heading}");
    }
    let unit = if said == 1 { "packet" } else { "packets" };
    assert!(
        rest.starts_with(&format!("{said} {unit} from these addresses")),
        "{heading}"
    );

    // Nothing of another desk, nor our own redacted details, anywhere in the message.
    let text = all_text(&message, raw);
    for ip in all.keys().filter(|ip| !mine.contains_key(ip.as_str())) {
        assert!(!text.contains(ip.as_str()), "{provider}'s mail names {ip}");
    }
    for other in ["alpha", "beta"].iter().filter(|p| **p != provider) {
        assert!(
            !text.contains(desk_of(other)),
            "{provider}'s mail names {other}"
        );
    }
    assert!(
        !text.contains("52:54:00:12"),
        "our MAC in {provider}'s mail"
    );
    if dst_hidden {
        for ours in [WEB, DNS, WEB6] {
            assert!(!text.contains(ours), "{ours} in {provider}'s mail");
        }
    }
}

/// A logged line as a report shows it: MAC (and with `DST`, our address) redacted.
fn shown_as(logged: &str, dst_hidden: bool) -> String {
    let mut out = logged.replace(&format!("MAC={MAC}"), "MAC=redacted");
    if dst_hidden {
        for ours in [WEB, DNS, WEB6] {
            out = out.replace(&format!("DST={ours} "), "DST=redacted ");
        }
    }
    out
}

fn mails(s: &Setup) -> Vec<(String, Vec<u8>)> {
    s.outbox()
        .iter()
        .map(|f| {
            let raw = std::fs::read(f).unwrap();
            let m = MessageParser::default().parse(&raw).unwrap();
            let to = m
                .to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_string();
            let provider = if to == desk_of("alpha") {
                "alpha"
            } else {
                "beta"
            };
            (provider.to_string(), raw)
        })
        .collect()
}

/// The messages a run sends say what the log says, each to its own desk, with nothing of
/// the other desk's; the summary line and `history --json` say what was sent.
#[test]
fn every_number_and_time_in_the_mail_agrees_with_the_log() {
    for dst_hidden in [false, true] {
        let s = setup(if dst_hidden {
            "redact = [\"MAC\", \"DST\"]"
        } else {
            ""
        });
        let all = expected();
        let ran = s.run(&["run"]).ok();
        let sent = mails(&s);
        assert_eq!(sent.len(), 2, "one message per provider");
        for (provider, raw) in &sent {
            check_mail(raw, provider, &all, dst_hidden);
        }
        let alpha = of_provider(&all, "alpha").len();
        let beta = of_provider(&all, "beta").len();
        let (_, lines) = log_text();
        let none = all.len() - alpha - beta;
        let line = ran.stderr.lines().last().unwrap();
        assert!(
            line.contains(&format!(
                "{} matched, 0 malformed, {} IPs ({none} in no provider); alpha: {alpha} new, beta: {beta} new; 2 sent;",
                lines.len(),
                all.len()
            )),
            "{line}"
        );
        let history = history(&s);
        assert_eq!(history.len(), 2);
        for row in &history {
            let provider = row["provider"].as_str().unwrap();
            assert_eq!(row["status"], "sent");
            assert_eq!(string_list(&row["to"]), [desk_of(provider)]);
            assert_eq!(
                string_list(&row["ips"]),
                ip_order(&of_provider(&all, provider))
            );
        }
    }
}

/// With `xarf = true`, each source's XARF document says what the log says of it: times in the
/// zone, packets, protocol, one of its ports and of our addresses (none with `DST` redacted),
/// and evidence that is its own lines only, as logged.
#[test]
fn each_xarf_document_agrees_with_the_log() {
    use base64::Engine as _;
    for dst_hidden in [false, true] {
        let s = setup(if dst_hidden {
            "xarf = true\nredact = [\"MAC\", \"DST\"]"
        } else {
            "xarf = true"
        });
        let all = expected();
        s.run(&["run"]).ok();
        let sent = mails(&s);
        assert_eq!(
            sent.len(),
            all.len() - 2,
            "one message per attributed source"
        );
        for (provider, raw) in &sent {
            let message = MessageParser::default().parse(raw).unwrap();
            let doc: serde_json::Value =
                serde_json::from_str(&attachment(&message, "xarf.json").unwrap()).unwrap();
            let ip = doc["source_identifier"].as_str().unwrap();
            assert_eq!(provider_of(ip), Some(provider.as_str()), "{ip}");
            let e = &all[ip];
            assert_eq!(doc["first_seen"], e.first(), "{ip}");
            assert_eq!(doc["last_seen"], e.last(), "{ip}");
            let description = doc["description"].as_str().unwrap();
            assert!(
                description.contains(&format!(": {} packets from {ip} ", e.hits)),
                "{description}"
            );
            let proto = doc["protocol"].as_str().unwrap();
            assert!(
                e.protocols.iter().any(|p| p.eq_ignore_ascii_case(proto)),
                "{ip}: {proto}"
            );
            if let Some(port) = doc["destination_port"].as_u64() {
                assert!(e.ports.contains(&(port as u16)), "{ip}: {port}");
            }
            match doc["destination_ip"].as_str() {
                Some(target) => {
                    assert!(!dst_hidden, "{ip}: our address {target} in the XARF");
                    assert!(e.targets.contains(target), "{ip}: {target}");
                }
                None => assert!(dst_hidden, "{ip}: no destination"),
            }
            let payload = base64::engine::general_purpose::STANDARD
                .decode(doc["evidence"][0]["payload"].as_str().unwrap())
                .unwrap();
            let payload = String::from_utf8(payload).unwrap();
            assert!(!payload.is_empty(), "{ip}");
            // Its earliest line and as many as its own lines are (three), not its densest
            // few seconds alone: the first-seen time the document gives is in a line.
            let earliest = (e.times.iter().zip(&e.lines))
                .min_by_key(|(t, _)| **t)
                .map(|(_, l)| shown_as(l, dst_hidden))
                .unwrap();
            assert!(
                payload.lines().any(|l| l == earliest),
                "{ip}: its earliest line is not in the evidence:\n{payload}"
            );
            assert!(
                payload.lines().count() >= e.lines.len().min(3),
                "{ip}: {} of its {} lines:\n{payload}",
                payload.lines().count(),
                e.lines.len()
            );
            for l in payload.lines() {
                assert!(
                    e.lines
                        .iter()
                        .any(|logged| shown_as(logged, dst_hidden) == l),
                    "{ip}: not its own line as logged: {l}"
                );
            }
            // Nothing of any other source anywhere in the message.
            let text = all_text(&message, raw);
            for other in all.keys().filter(|o| o.as_str() != ip) {
                assert!(
                    !text.contains(&format!("{other} ")) && !text.contains(&format!("\"{other}\"")),
                    "{ip}'s report names {other}"
                );
            }
        }
    }
}

/// A delta larger than one run makes parts for is drained over several runs, each run's
/// parts numbered on their own. The desk must not read "part 8 of 8" as the end, nor take
/// the next run's "part 1 of 4" for a resend of the first: each part names the report it
/// belongs to (by when it was made), the last part of a report that leaves addresses for
/// later ones says more follow, and the count it gives is what the later reports hold.
#[test]
fn parts_of_a_delta_drained_over_several_runs_say_which_report_and_what_follows() {
    let mut s = Setup::new(
        &standard_config("max_ips_per_message = 2")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 2"),
    );
    let log: String = (0..30)
        .map(|i| {
            drop_line(
                &format!("10:00:{i:02}"),
                &format!("3.5.140.{}", i + 2),
                "TCP",
                22,
            )
        })
        .collect();
    s.write("messages", &log);
    let mut seen = BTreeSet::new();
    let mut sent = Vec::new();
    for hour in 8..20 {
        s.now = format!("2026-01-26T{hour:02}:00:00Z");
        s.run(&["run"]).ok();
        for f in s.outbox() {
            if seen.insert(f.clone()) {
                sent.push(std::fs::read(&f).unwrap());
            }
        }
    }
    // report (when it was made) -> parts: (part, parts, subject, addresses, more said to follow)
    type Part = (usize, usize, String, Vec<String>, usize);
    let mut reports: BTreeMap<String, Vec<Part>> = BTreeMap::new();
    let (mut roots, mut starts) = (BTreeSet::new(), BTreeSet::new());
    for raw in &sent {
        let m = MessageParser::default().parse(raw.as_slice()).unwrap();
        let body = m
            .body_text(0)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let subject = m.subject().unwrap().to_string();
        let csv = attachment(&m, "ips.csv").unwrap();
        let ips: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|r| r.split(',').next().unwrap().to_string())
            .collect();
        // "N more addresses in your network follow in later reports[, numbered on their own]."
        let more = body
            .split_once(" in your network follow")
            .map_or(0, |(before, _)| {
                let words: Vec<&str> = before.rsplit(' ').take(3).collect();
                assert!(words[1] == "more", "{body}");
                words[2].parse().unwrap()
            });
        let (made, part, parts) = match body.split_once("This is part ") {
            Some((_, rest)) => {
                let (k, rest) = rest.split_once(" of ").unwrap();
                let (n, rest) = rest.split_once(" of our report of ").unwrap();
                let made = rest
                    .split_once(". ")
                    .map_or(rest, |(t, _)| t)
                    .trim_end_matches('.');
                (made.to_string(), k.parse().unwrap(), n.parse().unwrap())
            }
            None => (m.date().unwrap().to_rfc3339(), 1, 1),
        };
        match m.in_reply_to().as_text() {
            Some(root) => roots.insert(root.to_string()),
            None => starts.insert(m.message_id().unwrap().to_string()),
        };
        reports
            .entry(made)
            .or_default()
            .push((part, parts, subject, ips, more));
    }
    assert_eq!(starts.len(), 1, "one message starts the thread");
    assert_eq!(roots, starts, "every other message replies to it");
    assert!(
        reports.len() > 1,
        "the delta took several runs: {:?}",
        reports.keys()
    );
    let mut all: Vec<String> = Vec::new();
    let sizes: Vec<usize> = reports
        .values()
        .map(|p| p.iter().map(|x| x.3.len()).sum())
        .collect();
    for (i, (made, parts)) in reports.iter().enumerate() {
        let n = parts[0].1;
        let mut numbers: Vec<usize> = parts.iter().map(|p| p.0).collect();
        numbers.sort();
        assert_eq!(
            numbers,
            (1..=n).collect::<Vec<_>>(),
            "report of {made}: each part once"
        );
        let after: usize = sizes[i + 1..].iter().sum();
        for (part, parts_n, subject, ips, more) in parts {
            assert_eq!(*parts_n, n, "{subject}");
            assert_eq!(*more, after, "report of {made}, part {part}: what follows");
            let last = part == parts_n;
            assert_eq!(
                subject.contains("more to follow"),
                last && after > 0,
                "{subject}"
            );
            all.extend(ips.iter().cloned());
        }
    }
    assert_eq!(all.len(), 30);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30, "every address once");
}

/// With `xarf = true` every address is a numbered part of its own; when the sending budget
/// holds some back, those parts wait as written, as split parts do. Planned afresh, the desk
/// got "part 1 of 6" and "part 2 of 6" and never parts 3 to 6: the next run's were "1 of 4".
#[test]
fn xarf_parts_held_by_the_budget_keep_their_numbers() {
    let mut s = Setup::new(
        &standard_config("xarf = true").replace("[mail]", "[mail]\nmax_messages_per_run = 2"),
    );
    let log: String = (0..6)
        .map(|i| {
            drop_line(
                &format!("10:00:0{i}"),
                &format!("3.5.140.{}", i + 2),
                "TCP",
                22,
            )
        })
        .collect();
    s.write("messages", &log);
    let mut seen = BTreeSet::new();
    let mut subjects = Vec::new();
    for hour in 8..13 {
        s.now = format!("2026-01-26T{hour:02}:00:00Z");
        s.run(&["run"]).ok();
        for f in s.outbox() {
            if seen.insert(f.clone()) {
                let raw = std::fs::read(&f).unwrap();
                let m = MessageParser::default().parse(raw.as_slice()).unwrap();
                subjects.push(m.subject().unwrap().to_string());
            }
        }
    }
    let mut numbers: Vec<String> = subjects
        .iter()
        .map(|s| s.rsplit_once(" (").unwrap().1.to_string())
        .collect();
    numbers.sort();
    let want: Vec<String> = (1..=6).map(|k| format!("part {k} of 6)")).collect();
    assert_eq!(numbers, want, "{subjects:#?}");
    let mut all = s.reported().concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "every address once");
}

/// The log read in two runs, the first for one provider only: each message says what the
/// lines read until it was made say of its sources, the other provider's report (made by the
/// second run from lines kept since the first) is as if one run had read all, and no address
/// goes out twice.
#[test]
fn reports_made_over_two_runs_agree_with_the_lines_read_until_then() {
    let s = setup("");
    let (text, lines) = log_text();
    // The first run reads up to the change to summer time.
    let cut = lines
        .iter()
        .position(|(n, _)| LOG[*n].stamp == "Mar 29 03:00:01")
        .unwrap();
    let head: String = text
        .lines()
        .take(cut + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    s.write("messages", &head);
    s.run(&["run", "--provider", "alpha"]).ok();
    let first = mails(&s);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "alpha");
    let early = expected_of(&lines[..cut]);
    let all = expected();
    check_part(
        &first[0].1,
        "alpha",
        &of_provider(&early, "alpha"),
        &all,
        false,
    );
    let reported_first: BTreeSet<String> = of_provider(&early, "alpha").into_keys().collect();

    s.write("messages", &text);
    s.run(&["run"]).ok();
    let files = s.outbox();
    let later: Vec<(String, Vec<u8>)> = mails(&s)
        .into_iter()
        .filter(|(_, raw)| raw != &first[0].1)
        .collect();
    assert_eq!(later.len(), 2, "{files:?}");
    for (provider, raw) in &later {
        let mine: BTreeMap<String, Expected> = of_provider(&all, provider)
            .into_iter()
            .filter(|(ip, _)| !reported_first.contains(ip))
            .collect();
        assert!(!mine.is_empty(), "{provider}");
        check_part(raw, provider, &mine, &all, false);
    }
    let mut sent = s.reported().concat();
    let n = sent.len();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), n, "no address twice");
    assert_eq!(n, all.len() - 2, "every attributed address once");
}

/// A re-report's "Repeat:" line reads right for one address, for all of them, and for some:
/// it said "1 of these addresses were reported to you before" of a report on one address.
#[test]
fn the_repeat_line_reads_right_for_one_all_or_some_addresses() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 1"));
    let day = |d: u32, time: &str, ip: &str| {
        drop_line(time, ip, "TCP", 22).replace("Jan 25", &format!("Jan {d}"))
    };
    s.now = "2026-01-10T12:00:00Z".into();
    s.write(
        "messages",
        &[
            day(10, "10:00:00", "3.5.140.2"),
            day(10, "10:00:01", "3.5.140.3"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let repeat = |s: &Setup| {
        let mail = std::fs::read_to_string(s.outbox().last().unwrap()).unwrap();
        let body = mail.replace("\r\n", "\n");
        let at = body
            .find("  Repeat:   ")
            .unwrap_or_else(|| panic!("{body}"));
        body[at..]
            .split("\n\n")
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // One address back.
    s.now = "2026-01-12T12:00:00Z".into();
    s.append("messages", &day(12, "10:00:00", "3.5.140.2"));
    s.run(&["run"]).ok();
    assert_eq!(
        repeat(&s),
        "Repeat: reported to you before, and seen again since"
    );
    // Both back.
    s.now = "2026-01-14T12:00:00Z".into();
    s.append(
        "messages",
        &[
            day(14, "10:00:00", "3.5.140.2"),
            day(14, "10:00:01", "3.5.140.3"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(
        repeat(&s),
        "Repeat: all were reported to you before and were seen again since"
    );
    // One back with a new one.
    s.now = "2026-01-16T12:00:00Z".into();
    s.append(
        "messages",
        &[
            day(16, "10:00:00", "3.5.140.2"),
            day(16, "10:00:01", "3.5.140.4"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(
        repeat(&s),
        "Repeat: 1 of these addresses was reported to you before and seen again since"
    );
}

/// An address reported, seen again inside `rereport_after_days`, then reported again once
/// the window passed, on a run that read nothing new: the re-report shows the packets it
/// sent since the first report as its own lines in evidence.log, not none at all.
#[test]
fn a_re_report_shows_the_lines_sent_since_the_report_before() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 5"));
    let day = |d: u32, time: &str| {
        drop_line(time, "3.5.140.2", "TCP", 22).replace("Jan 25", &format!("Jan {d:>2}"))
    };
    s.now = "2026-01-10T12:00:00Z".into();
    s.write("messages", &day(10, "10:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    // Two days later, inside the window: nothing is sent, the lines are kept.
    s.now = "2026-01-12T12:00:00Z".into();
    s.append(
        "messages",
        &[
            day(12, "10:00:00"),
            day(12, "10:00:07"),
            day(12, "10:00:09"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    // The window passed; nothing new logged.
    s.now = "2026-01-16T12:00:00Z".into();
    s.run(&["run"]).ok();
    let outbox = s.outbox();
    assert_eq!(outbox.len(), 2, "re-reported once");
    let raw = std::fs::read(outbox.last().unwrap()).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    let evidence = attachment(&message, "evidence.log").expect("evidence.log");
    for time in ["10:00:00", "10:00:07", "10:00:09"] {
        assert!(
            evidence.contains(&format!("Jan 12 {time} web1 kernel:")),
            "{time}: {evidence}"
        );
    }
    assert!(!evidence.contains("Jan 10 "), "{evidence}");
}

/// A log host names a sender that has no name by its address, which is ours: with `DST`
/// redacted it was still shown before `kernel:` in every line of the excerpt, evidence.log
/// and `preview --json` (and in a template's `hosts`), while the subject said "our servers".
#[test]
fn redact_dst_hides_our_address_where_the_log_host_names_a_sender_by_it() {
    let s = Setup::new(&standard_config(
        "redact = [\"MAC\", \"DST\"]\ntemplates_dir = \"{dir}/templates\"",
    ));
    std::fs::create_dir(s.path("templates")).unwrap();
    s.write(
        "templates/body.txt",
        "hosts: {{ hosts | join(sep=\", \") }}\n{% for a in ips %}{{ a.ip }}: {{ a.hosts | join(sep=\", \") }}\n{% endfor %}{% for l in excerpt %}{{ l }}\n{% endfor %}",
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22).replace(" web1 ", " 198.51.100.10 "),
            drop_line("10:00:01", "3.5.140.2", "TCP", 22)
                .replace(" web1 ", " 2001:db8::10 ")
                .replace("DST=198.51.100.10", "DST=2001:db8::10"),
            drop_line("10:00:02", "3.5.140.3", "TCP", 22),
            // A hosting provider's name for our address, in its order or reversed.
            drop_line("10:00:03", "3.5.140.4", "TCP", 22).replace(" web1 ", " ip-198-51-100-10 "),
            drop_line("10:00:04", "3.5.140.4", "TCP", 22)
                .replace(" web1 ", " static.10.100.51.198.clients.example.net "),
        ]
        .concat(),
    );
    let preview = s.run(&["preview", "--json"]).ok();
    s.run(&["run"]).ok();
    let raw = std::fs::read(&s.outbox()[0]).unwrap();
    let message = MessageParser::default().parse(raw.as_slice()).unwrap();
    let text = all_text(&message, &raw) + &preview.stdout;
    for ours in [
        "198.51.100.10",
        "2001:db8::10",
        "198-51-100-10",
        "10.100.51.198",
    ] {
        assert!(!text.contains(ours), "{ours} shown:\n{text}");
    }
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(body.contains("hosts: redacted, web1\n"), "{body}");
    assert!(body.contains("3.5.140.2: redacted\n"), "{body}");
    assert!(body.contains("3.5.140.4: redacted\n"), "{body}");
    assert!(body.contains("Jan 25 10:00:00 redacted kernel: "), "{body}");
    // The attacker stays, and so does a host's name.
    assert!(body.contains("SRC=3.5.140.2 DST=redacted"), "{body}");
    assert!(body.contains("Jan 25 10:00:02 web1 kernel: "), "{body}");
}

/// What a report says follows it reads right for one address left.
#[test]
fn one_address_left_for_a_later_report_is_said_in_the_singular() {
    let s = Setup::new(
        &standard_config("max_ips_per_message = 2")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    let log: String = (0..9)
        .map(|i| {
            drop_line(
                &format!("10:00:0{i}"),
                &format!("3.5.140.{}", i + 2),
                "TCP",
                22,
            )
        })
        .collect();
    s.write("messages", &log);
    let out = s.run(&["preview"]).ok();
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        text.matches("This is part ").count(),
        4,
        "four parts a run: {}",
        out.stdout
    );
    assert_eq!(
        text.matches(
            "1 more address in your network follows in later reports, numbered on their own."
        )
        .count(),
        4,
        "{}",
        out.stdout
    );
    assert_eq!(text.matches("more to follow)").count(), 1, "{}", out.stdout);
}

/// A provider's report split into parts: each part says what the log says of its own
/// sources and names none of the other parts' (excerpt, evidence.log, ips.csv, body).
#[test]
fn each_part_of_a_split_report_holds_its_own_sources_only() {
    let s = setup("max_ips_per_message = 2");
    let all = expected();
    s.run(&["run"]).ok();
    let sent = mails(&s);
    let alpha = of_provider(&all, "alpha");
    let mut covered = BTreeSet::new();
    let mut parts = 0;
    for (provider, raw) in sent.iter().filter(|(p, _)| p == "alpha") {
        let m = MessageParser::default().parse(raw.as_slice()).unwrap();
        let csv = attachment(&m, "ips.csv").unwrap();
        let ips: BTreeSet<String> = (csv.lines().skip(1))
            .map(|r| r.split(',').next().unwrap().to_string())
            .collect();
        let mine: BTreeMap<String, Expected> = (alpha.iter())
            .filter(|(ip, _)| ips.contains(ip.as_str()))
            .map(|(ip, e)| (ip.clone(), e.clone()))
            .collect();
        assert_eq!(mine.len(), ips.len(), "{ips:?}");
        check_part(raw, provider, &mine, &all, false);
        covered.extend(ips);
        parts += 1;
    }
    assert_eq!(parts, 2);
    assert_eq!(covered, alpha.into_keys().collect());
}

/// The excerpt's heading counted the lines kept as evidence, at most `max_excerpt_lines`: a
/// flood of 200 packets in one second was said to have "held 50 lines". It now says the
/// packets the records count there, and "at least" where kept lines are all it can count.
#[test]
fn the_excerpt_heading_counts_packets_not_the_lines_kept() {
    let heading = |s: &Setup| {
        let mail = std::fs::read_to_string(s.outbox().last().unwrap()).unwrap();
        let body = mail
            .replace("\r\n", "\n")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let at = body.find("Log excerpt: ").unwrap();
        // Up to the first log line.
        let heading = &body[at..];
        heading[..heading.find(" Jan ").unwrap()].to_string()
    };
    // 200 packets in one second: all of the address's packets are in the window.
    let s = Setup::standard();
    let flood: String = (0..200)
        .map(|i| drop_line("09:00:00", "3.5.140.9", "TCP", 1000 + i))
        .collect();
    s.write("messages", &flood);
    s.run(&["run"]).ok();
    assert!(
        heading(&s).contains("held 200 packets from these addresses; 50 log lines follow"),
        "{}",
        heading(&s)
    );
    // 20 packets in five seconds, read while below min_hits (their first lines are kept),
    // then two more an hour later: the window's count is a least.
    let mut s = Setup::new(&standard_config("min_hits = 22").replace("min_hits = 1\n", ""));
    let burst: String = (0..20u16)
        .map(|i| drop_line(&format!("10:00:0{}", i / 4), "3.5.140.2", "TCP", 22 + i))
        .collect();
    // Another address's denser burst takes the run's window.
    let other: String = (0..40)
        .map(|i| drop_line("09:00:00", "3.5.140.9", "TCP", 1000 + i))
        .collect();
    s.write("messages", &(other + &burst));
    s.run(&["run"]).ok();
    s.now = "2026-01-26T09:00:00Z".into();
    s.append(
        "messages",
        &(drop_line("11:00:00", "3.5.140.2", "TCP", 22)
            + &drop_line("11:00:01", "3.5.140.2", "TCP", 22)),
    );
    s.run(&["run"]).ok();
    let said = heading(&s);
    let count: usize = said
        .split("held at least ")
        .nth(1)
        .unwrap_or_else(|| panic!("{said}"))
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let start = said.split("seconds from ").nth(1).unwrap();
    let logged = match &start[..25] {
        "2026-01-25T10:00:00+00:00" => 20,
        "2026-01-25T11:00:00+00:00" => 2,
        other => panic!("{other}"),
    };
    assert!(count <= logged, "{said}");
}

/// A report of one source lists it as one: "The source, most packets first:" ordered a list
/// of one.
#[test]
fn a_report_of_one_source_lists_it_as_one() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let one = s.run(&["preview"]).ok().stdout.replace("\r\n", "\n");
    assert!(one.contains("\nThe source:\n"), "{one}");
    assert!(!one.contains("most packets first"), "{one}");
    s.append("messages", &drop_line("10:00:01", "3.5.140.3", "TCP", 22));
    let two = s.run(&["preview"]).ok().stdout.replace("\r\n", "\n");
    assert!(
        two.contains("\nThe sources, most packets first:\n"),
        "{two}"
    );
}
