//! XARF v4: the machine-readable report abuse desks parse automatically, built from a
//! single-IP [`Report`] (XARF names one source per report).
//!
//! The traffic decides the type: a flood is `connection/ddos`, anything else dropped at the
//! firewall is `connection/port_scan`; the address's own lines travel as base64 evidence with their
//! sha256. Sending it the way XARF's e-mail transport describes (a `multipart/report` with a
//! `message/feedback-report` part saying `Feedback-Type: xarf`) is `render`'s job.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ingest::Observation;
use crate::render::{Report, fnv1a};

/// The XARF version these reports follow.
pub const XARF_VERSION: &str = "4.0.0";

/// A UUID (version 4 layout) derived from `seed`, so a stored report keeps its id.
fn uuid(seed: &str) -> String {
    let a = fnv1a(seed.as_bytes());
    let b = fnv1a(format!("{seed}/xarf").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// XARF's name for the traffic of an address seen over `protocols` (as the kernel names
/// them): `tcp`, `udp` (UDP-Lite is UDP's variant, as its ports are), `sctp` or `icmp`, the
/// first of these it was seen over. `None` when it was seen over none of them (ESP, GRE):
/// XARF has no name for its traffic, and no other name is true.
fn protocol<'a>(protocols: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'static str> {
    let has = |names: &[&str]| {
        (protocols.clone().into_iter()).any(|x| names.iter().any(|p| x.eq_ignore_ascii_case(p)))
    };
    [
        (&["TCP", "6"][..], "tcp"),
        (&["UDP", "17", "UDPLITE", "136"][..], "udp"),
        (&["SCTP", "132"][..], "sctp"),
        (&["ICMP", "1", "ICMPv6", "58"][..], "icmp"),
    ]
    .into_iter()
    .find_map(|(names, xarf)| has(names).then_some(xarf))
}

/// Whether XARF v4 can tell what an address did: traffic it names ([`protocol`]), a source
/// port (v4 requires one for an address source) and a destination port (which the v4 types
/// recommend, and which a strict validator requires). Port 0 is no port. An address that
/// cannot be told gets the plain report, and no API report.
pub fn tells(observation: &Observation) -> bool {
    protocol(observation.protocols.iter().map(|p| p.as_str())).is_some()
        && observation.src_ports.iter().any(|p| *p > 0)
        && observation.dst_ports.iter().any(|p| *p > 0)
}

/// The longest `org` of a party XARF's schema takes, in characters.
const ORG_MAX: usize = 200;

/// The XARF document for a report of one IP; `message_id` seeds its stable `report_id`.
/// `None` for an address XARF cannot tell ([`tells`]).
pub fn document(report: &Report, message_id: &str) -> Option<Value> {
    let ip = report.ips.first()?;
    // Its own lines (its earliest, its first read, and those of its densest window), as the
    // plain report's evidence.log gives them; the window alone when none were kept.
    let lines = match ip.evidence.is_empty() {
        true => &report.excerpt,
        false => &ip.evidence,
    };
    // One packet it sent, as a desk checks it against its flow logs: the protocol and ports
    // taken one by one from the address's sets made a flow no one sent (a UDP packet's
    // source port with a TCP packet's destination). Only when no line kept shows a whole
    // one are the sets' first taken.
    // Its destination, as the ports are: the packet's own (none where `redact` hid it, its
    // line then reading `DST=redacted`, and the targets are gone too), or the first target
    // beside the sets' first ports.
    let (proto, source_port, destination_port, destination) = match one_flow(lines) {
        Some((proto, spt, dpt, dst)) => (proto, spt, dpt, dst.map(|d| d.to_string())),
        None => (
            protocol(ip.protocols.iter().map(String::as_str))?,
            *ip.source_ports.iter().find(|p| **p > 0)?,
            *ip.ports.iter().find(|p| **p > 0)?,
            ip.targets.first().cloned(),
        ),
    };
    // The reporter is reached where replies go (`reply_to`, when there is one); the sender is
    // the address the message comes from.
    // XARF's schema takes an organisation's name of at most 200 characters.
    let name = &report.reporter.name;
    let org = match name.chars().count() > ORG_MAX {
        true => crate::excerpt::cut(name.clone(), ORG_MAX - 1),
        false => name.clone(),
    };
    let party = |email: &str| {
        json!({
            "org": org,
            "contact": email,
            "domain": report.reporter.domain,
        })
    };
    // Answers of an open service reflected at the operator (whose kind says so, not its
    // rate): at a flood's rate, an amplification attack.
    let reflected = crate::render::reflected(&ip.protocols, &ip.source_ports, &ip.ports);
    // Told by the host's own packets, as its kind is: one source of a flood spread over
    // many sent a packet or two, which no desk takes for a denial of service (the report's
    // words are the whole flood's).
    let flood = crate::render::is_flood(ip.hits, ip.span_seconds);
    let log = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    // One of many quiet sources of a flood whose addresses may be forged, as the message's
    // text says: its own packets are filed, with less confidence that it sent them, and the
    // flood named (the text said flood and forged, the document a port scan, sure at 0.9).
    let (confidence, spread) = match report.spoofing_likely {
        true => (
            0.5,
            format!(
                "; one of many sources of a {} whose source addresses may be forged",
                report.abuse_kind
            ),
        ),
        false => (0.9, String::new()),
    };
    let mut doc = json!({
        "xarf_version": XARF_VERSION,
        "report_id": uuid(message_id),
        "timestamp": ip.first_seen,
        "reporter": party(&report.reply_address),
        "sender": party(&report.reporter.email),
        "source_identifier": ip.ip,
        "category": "connection",
        "type": if flood { "ddos" } else { "port_scan" },
        "protocol": proto,
        "first_seen": ip.first_seen,
        "last_seen": ip.last_seen,
        "evidence_source": "firewall_logs",
        "confidence": confidence,
        "description": format!(
            "{}: {} packets from {} dropped by our firewall between {} and {}{spread}",
            ip.kind, ip.hits, ip.ip, ip.first_seen, ip.last_seen
        ),
        "evidence": [{
            "content_type": "text/plain",
            "description": format!("Lines of our firewall log on packets from {}", ip.ip),
            "payload": base64::engine::general_purpose::STANDARD.encode(log.as_bytes()),
            "hash": format!("sha256:{:x}", Sha256::digest(log.as_bytes())),
            "size": log.len(),
        }],
        "source_port": source_port,
        "destination_port": destination_port,
        "tags": [format!("protocol:{proto}"), "evidence:firewall-drop".to_string()],
    });
    let fields = doc.as_object_mut()?;
    // The address's first target with another packet's ports was a connection no one made;
    // so was one of its 16 lowest targets, where the packet's own was not among them.
    if let Some(target) = destination {
        fields.insert("destination_ip".into(), json!(target));
    }
    match reflected {
        Some((_, service)) if flood => {
            let service = service.to_ascii_lowercase().replace('-', "_");
            fields.insert(
                "attack_vector".into(),
                json!(format!("{service}_amplification")),
            );
        }
        _ if flood => {
            fields.insert("attack_vector".into(), json!(format!("{proto}_flood")));
        }
        _ => {}
    }
    if flood {
        // The busiest second is not kept: the rate said is the average over the address's
        // packets, which the peak was at least.
        let pps = (crate::render::per_second(ip.hits, ip.span_seconds).ceil() as u64).max(1);
        fields.insert("peak_pps".into(), json!(pps));
        // XARF's DDoS type requires a rate in bits: with no line of the address kept to
        // average `LEN=` over, the smallest such packet can be (a request without it was
        // refused, on every run).
        let v6 = ip.ip.contains(':');
        let bytes = mean_length(&ip.evidence).unwrap_or_else(|| headers_only(proto, v6));
        fields.insert(
            "peak_bps".into(),
            json!(pps.saturating_mul(bytes).saturating_mul(8)),
        );
    }
    // Every destination port, as tags (XARF allows 20).
    if let Some(tags) = fields.get_mut("tags").and_then(Value::as_array_mut) {
        tags.extend(ip.ports.iter().take(18).map(|p| json!(format!("port:{p}"))));
    }
    Some(doc)
}

/// The first packet of `lines` (log lines of one address) that XARF can tell whole: its
/// protocol ([`protocol`]), its source and destination ports (neither 0), and its
/// destination address where the line shows one. Only the packet's own fields count, not
/// those of the packet an ICMP error quotes (in brackets).
fn one_flow(lines: &[String]) -> Option<(&'static str, u16, u16, Option<std::net::IpAddr>)> {
    lines.iter().find_map(|line| {
        let (proto, spt, dpt) = crate::parse::kept_flow(line.as_bytes())?;
        let dst = crate::parse::kept_destination(line.as_bytes());
        Some((protocol([proto])?, spt, dpt, dst))
    })
}

/// The mean of the packet lengths (`LEN=`, the first in a line: the IP packet's) the lines
/// give, in bytes; `None` when none gives one.
fn mean_length(lines: &[String]) -> Option<u64> {
    let lengths: Vec<u64> = (lines.iter())
        .filter_map(|l| {
            let at = l.find(" LEN=")? + 5;
            let digits = l[at..].split(' ').next()?;
            digits.parse::<u64>().ok().filter(|n| *n > 0)
        })
        .collect();
    let n = u64::try_from(lengths.len()).ok().filter(|n| *n > 0)?;
    Some(lengths.iter().sum::<u64>().div_ceil(n))
}

/// Bytes of the smallest packet of XARF's protocol `proto`, its IP and transport headers
/// alone (`LEN=` counts the IP header).
fn headers_only(proto: &str, v6: bool) -> u64 {
    let ip = if v6 { 40 } else { 20 };
    ip + match proto {
        "tcp" => 20,
        "sctp" => 12,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood whose lines are all gone still tells XARF a rate in bits, the least its
    /// packets could make: the API refused a `ddos` without `peak_bps`, on every run.
    #[test]
    fn a_floods_rate_in_bits_is_its_smallest_packets_without_lines() {
        let line = "Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 SRC=3.5.140.2 LEN=80 PROTO=UDP";
        assert_eq!(mean_length(&[line.to_string()]), Some(80));
        assert_eq!(mean_length(&[]), None);
        assert_eq!(headers_only("udp", false), 28);
        assert_eq!(headers_only("tcp", false), 40);
        assert_eq!(headers_only("tcp", true), 60);
        assert_eq!(headers_only("icmp", true), 48);
        // A flood's document whose address kept no line.
        let mut report = crate::check::sample_aws_report();
        report.ips.truncate(1);
        report.excerpt.clear();
        let ip = &mut report.ips[0];
        (ip.hits, ip.span_seconds) = (1_000, 9);
        ip.evidence.clear();
        let doc = document(&report, "<x@example.org>").unwrap();
        assert_eq!(doc["type"], "ddos", "{doc}");
        let v6 = report.ips[0].ip.contains(':');
        let bytes = headers_only(doc["protocol"].as_str().unwrap(), v6);
        assert_eq!(doc["peak_bps"], json!(100 * bytes * 8), "{doc}");
    }

    #[test]
    fn uuid_is_stable_and_version_4() {
        let a = uuid("<x@example.org>");
        assert_eq!(a, uuid("<x@example.org>"));
        assert_ne!(a, uuid("<y@example.org>"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn protocol_names_follow_xarf() {
        let p = |v: &[&str]| protocol(v.iter().copied());
        assert_eq!(p(&["UDP"]), Some("udp"));
        assert_eq!(p(&["ICMP", "TCP"]), Some("tcp"));
        assert_eq!(p(&["ICMPv6"]), Some("icmp"));
        assert_eq!(p(&["132"]), Some("sctp"));
        // UDP-Lite was told as ICMP, with its ports beside it.
        assert_eq!(p(&["UDPLITE"]), Some("udp"));
        assert_eq!(p(&["ICMP", "UDPLITE"]), Some("udp"));
        // XARF has no name for ESP or GRE: no name at all rather than a wrong one.
        assert_eq!(p(&["ESP", "47"]), None);
    }

    /// The protocol and ports are one packet the address sent, as a desk checks against its
    /// flow logs: taken one by one from its sets, they named a UDP packet's source port with
    /// a TCP packet's destination port, a flow no one sent.
    #[test]
    fn the_flow_named_is_one_packet_the_address_sent() {
        let head = "Nov 28 10:04:38 web1 kernel: [ 1234.567890] INPUT-DROP:IN=eth0 OUT= SRC=15.193.9.24 DST=198.51.100.10 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=1";
        let lines = [
            // An ICMP error: the ports in brackets are the quoted packet's, not its own.
            format!(
                "{head} PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST=15.193.9.24 LEN=40 PROTO=TCP SPT=80 DPT=4444 ] "
            ),
            format!("{head} PROTO=UDP SPT=30438 DPT=53 LEN=20 "),
            format!("{head} PROTO=TCP SPT=34574 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 "),
        ];
        let dst = "198.51.100.10".parse().ok();
        assert_eq!(one_flow(&lines), Some(("udp", 30438, 53, dst)));
        assert_eq!(one_flow(&lines[2..]), Some(("tcp", 34574, 22, dst)));
        assert_eq!(one_flow(&lines[..1]), None);
        let mut report = crate::check::sample_aws_report();
        report.ips.truncate(1);
        let ip = &mut report.ips[0];
        ip.protocols = vec!["TCP".into(), "UDP".into()];
        ip.source_ports = vec![30438, 34574];
        ip.ports = vec![22, 53];
        ip.evidence = lines.to_vec();
        let doc = document(&report, "<x@example.org>").unwrap();
        assert_eq!(
            (
                &doc["protocol"],
                &doc["source_port"],
                &doc["destination_port"]
            ),
            (&json!("udp"), &json!(30438), &json!(53)),
            "{doc}"
        );
        // The packet's own destination, not the address's first target: the pair was a
        // connection no one made.
        report.ips[0].targets = vec!["198.51.100.5".into(), "198.51.100.10".into()];
        let doc = document(&report, "<x@example.org>").unwrap();
        assert_eq!(doc["destination_ip"], "198.51.100.10", "{doc}");
        // Also when the report's targets, the 16 lowest kept, leave it out.
        report.ips[0].targets = vec!["198.51.100.1".into()];
        let doc = document(&report, "<x@example.org>").unwrap();
        assert_eq!(doc["destination_ip"], "198.51.100.10", "{doc}");
        // One the report hides (`redact`) is not named.
        report.ips[0].targets.clear();
        report.ips[0].evidence = (lines.iter())
            .map(|l| l.replace("DST=198.51.100.10", "DST=redacted"))
            .collect();
        let doc = document(&report, "<x@example.org>").unwrap();
        assert!(doc.get("destination_ip").is_none(), "{doc}");
        report.ips[0].evidence = lines.to_vec();
        // With no line that shows a whole packet, the sets still give a document.
        report.ips[0].evidence = lines[..1].to_vec();
        report.excerpt.clear();
        let doc = document(&report, "<x@example.org>").unwrap();
        assert_eq!(doc["protocol"], "tcp", "{doc}");
    }
}
