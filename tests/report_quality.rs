//! Reports read as an abuse desk reads them: parsed header by header and part by part. What
//! a desk would push back on (our own details in the evidence, a misleading subject, lines too
//! wide for a ticket system) is checked here.

mod common;

use common::*;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// The one message in the outbox after a run, parsed.
fn only_message(s: &Setup) -> Vec<u8> {
    let files = s.outbox();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

fn attachment(message: &Message<'_>, name: &str) -> String {
    let part = message
        .attachments()
        .find(|a| a.attachment_name() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"));
    String::from_utf8_lossy(part.contents()).replace("\r\n", "\n")
}

#[test]
fn our_mac_address_is_hidden_by_default() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap();
    assert!(body.contains("MAC=redacted"), "{body}");
    assert!(!body.contains("52:54:00"), "{body}");
    assert!(!attachment(&message, "excerpt.log").contains("52:54:00"));
}

#[test]
fn redact_dst_in_ufw_lines_keeps_the_attacker() {
    let s = Setup::new(&standard_config("redact = [\"MAC\", \"DST\"]").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/messages\"\nprefixes = [\"[UFW BLOCK] \"]",
    ));
    s.write(
        "messages",
        "Jan 25 10:00:00 vps kernel: [547996.640000] [UFW BLOCK] IN=eth0 OUT= MAC=56:00:03:aa:bb:cc:fe:00:03:aa:bb:cc:08:00 SRC=3.5.140.2 DST=158.247.1.2 LEN=44 TOS=0x00 PREC=0x00 TTL=241 ID=1 PROTO=TCP SPT=41868 DPT=8080 WINDOW=1024 RES=0x00 SYN URGP=0 \n",
    );
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    for text in [
        message.body_text(0).unwrap().to_string(),
        attachment(&message, "excerpt.log"),
    ] {
        assert!(text.contains("SRC=3.5.140.2 "), "{text}");
        assert!(!text.contains("158.247.1.2"), "{text}");
        assert!(text.contains("DST=redacted"), "{text}");
    }
}

/// `n` sources in the fixture's EC2 range 3.5.140.0/22, each probing three ports of its own.
fn many_sources_log(n: usize, v6: bool) -> String {
    let mut log = String::new();
    for i in 0..n {
        let src = if v6 && i % 2 == 1 {
            format!("2600:1f18:4a3:6901:ffff:ffff:ffff:{:x}", i + 1)
        } else {
            format!("3.5.{}.{}", 140 + i / 250, 1 + i % 250)
        };
        for k in 0..3 {
            log.push_str(&drop_line(
                &format!("10:{:02}:{:02}", i / 60 % 60, i % 60),
                &src,
                "TCP",
                (1000 + i * 3 + k) as u16,
            ));
        }
        // The busiest sources send more; the body lists those first.
        if i % 50 == 0 {
            for _ in 0..5 {
                log.push_str(&drop_line(
                    &format!("10:{:02}:{:02}", i / 60 % 60, i % 60),
                    &src,
                    "TCP",
                    22,
                ));
            }
        }
    }
    log
}

#[test]
fn subject_names_provider_count_kind_and_target_not_our_domain() {
    let s = Setup::new(&standard_config("reply_to = \"noc@example.net\""));
    s.write("messages", &many_sources_log(77, false));
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let subject = message.subject().unwrap();
    assert!(subject.contains("77 AWS hosts"), "{subject}");
    assert!(
        subject.contains("to 198.51.100.10"),
        "the target: {subject}"
    );
    assert!(
        !subject.contains("example.org"),
        "not the sender's domain: {subject}"
    );
    // No host hit more than 4 ports: not a port scan, though together they hit 232.
    assert!(!subject.contains("port scan"), "{subject}");
    let body = message.body_text(0).unwrap();
    assert!(body.contains("Replies reach noc@example.net."), "{body}");
    assert_eq!(
        message.reply_to().unwrap().first().unwrap().address(),
        Some("noc@example.net")
    );
}

#[test]
fn one_port_scanner_among_probes_is_named_per_host() {
    let s = Setup::standard();
    let mut log = String::new();
    for port in 1..=40 {
        log.push_str(&drop_line("10:00:00", "3.5.140.9", "TCP", port));
    }
    log.push_str(&drop_line("10:00:01", "3.5.140.10", "TCP", 22));
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let subject = message.subject().unwrap();
    assert!(
        subject.contains("port scan (40 ports, TCP)")
            && subject.contains("TCP 22 probes")
            && subject.contains("from 2 AWS hosts"),
        "each host's kind: {subject}"
    );
}

#[test]
fn body_keeps_to_78_columns_and_lists_the_top_100_at_any_size() {
    let s = Setup::new(&standard_config("max_excerpt_lines = 20"));
    s.write("messages", &many_sources_log(240, true));
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    let (prose, rest) = body.split_once("Log excerpt:").expect("an excerpt");
    let (_, after_log) = rest.rsplit_once(" kernel: ").unwrap();
    for line in prose.lines().chain(after_log.lines().skip(1)) {
        assert!(
            line.chars().count() <= 78,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
    assert!(
        prose.contains("The 100 sources with the most packets, of 240"),
        "{prose}"
    );
    let rows: Vec<&str> = prose
        .lines()
        .filter(|l| l.starts_with("  3.") || l.starts_with("  2600:"))
        .collect();
    assert_eq!(rows.len(), 100);
    // The busiest (8 packets) come first.
    assert!(rows[0].contains("       8  "), "{}", rows[0]);
    let csv = attachment(&message, "ips.csv");
    assert_eq!(csv.lines().count(), 241, "every source is in ips.csv");
    let evidence = attachment(&message, "evidence.log");
    assert_eq!(
        evidence.lines().filter(|l| l.starts_with("# ")).count(),
        240,
        "every accused address has its own lines"
    );
}

#[test]
fn excluded_regions_are_not_the_providers_even_by_asn() {
    let config = standard_config("")
        .replace("{dir}/messages", "{repo}/fixtures/logs/messages")
        .replace(
            "services = [\"EC2\"]",
            "services = [\"EC2\"]\nexclude_regions = [\"cn-north-1\", \"cn-northwest-1\"]\nasns = [16509, 55960]",
        )
        .replace(
            "[mail]",
            "[enrich]\nasn_db = \"{repo}/fixtures/asn/example-asn.mmdb\"\n[mail]",
        );
    let s = Setup::new(&config);
    let v = s.run(&["preview", "--json"]).ok().json();
    let reported = ip_list(&v["reports"][0]["ips"]);
    assert!(
        reported.contains(&"34.223.47.190".to_string()),
        "{reported:?}"
    );
    assert!(
        !reported.contains(&"52.80.174.40".to_string()),
        "AWS China (cn-north-1, AS55960) goes to its own desk: {reported:?}"
    );
    assert!(ip_list(&v["unattributed"]).contains(&"52.80.174.40".to_string()));

    let without = Setup::new(&config.replace("exclude_regions", "regions_unused_key"));
    assert_eq!(without.run(&["check"]).code, 78, "unknown keys are refused");
    let included = Setup::new(&config.replace(
        "exclude_regions = [\"cn-north-1\", \"cn-northwest-1\"]",
        "regions = [\"cn-north-1\"]",
    ));
    let v = included.run(&["preview", "--json"]).ok().json();
    let only = ip_list(&v["reports"][0]["ips"]);
    assert!(only.contains(&"52.80.174.40".to_string()), "{only:?}");
    assert!(!only.contains(&"3.5.140.2".to_string()), "{only:?}");
}
