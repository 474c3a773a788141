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

/// The text body of the one message in the outbox after a run, lines ending in `\n`.
fn only_body(s: &Setup) -> String {
    let raw = only_message(s);
    let message = MessageParser::default().parse(&raw).unwrap();
    message.body_text(0).unwrap().replace("\r\n", "\n")
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

/// A sender's name that ends a sentence itself (`Example, Inc.`) is not given a second full
/// stop at the end of the body.
#[test]
fn a_senders_name_ending_in_a_full_stop_gets_no_second_one() {
    for (from, signed) in [
        (
            "\"Example, Inc.\" <abuse@example.org>",
            "on behalf of Example, Inc.\n",
        ),
        (
            "Abuse desk <abuse@example.org>",
            "on behalf of Abuse desk.\n",
        ),
    ] {
        let s = Setup::new(&standard_config("").replace(
            "from = \"Abuse desk <abuse@example.org>\"",
            &format!("from = {from:?}"),
        ));
        s.write("messages", &many_sources_log(3, false));
        s.run(&["run"]).ok();
        let body = only_body(&s);
        assert!(body.contains(signed), "{from}: {body}");
        assert!(!body.contains(".."), "{from}: {body}");
    }
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

/// The standard setup with the product's defaults for what is counted (no `min_hits = 1`).
fn with_defaults(extra: &str) -> Setup {
    Setup::new(&standard_config(extra).replace("min_hits = 1\n", ""))
}

#[test]
fn one_packet_is_no_accusation_by_default() {
    let s = with_defaults("");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    assert!(s.outbox().is_empty(), "one packet reported");
    assert!(
        out.stderr.contains("1 IPs below min_hits so far"),
        "{}",
        out.stderr
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["ips_below_min_hits"], 1);
    // Two more packets later: now it is reported, with all three.
    s.append("messages", &drop_line("10:00:05", "3.5.140.2", "TCP", 22));
    s.append("messages", &drop_line("10:00:09", "3.5.140.2", "TCP", 23));
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
    let v = s.run(&["history", "--json"]).ok().json();
    assert_eq!(v[0]["ips"], serde_json::json!(["3.5.140.2"]));
}

/// A TCP packet from `src` port 443 to us with the given flags.
fn tcp_answer(time: &str, src: &str, flags: &str) -> String {
    format!(
        "Jan 25 {time} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=443 DPT=51234 WINDOW=65535 RES=0x00 {flags} URGP=0 \n"
    )
}

#[test]
fn backscatter_is_never_a_reason_to_report() {
    let mut log = String::new();
    for i in 0..5 {
        log.push_str(&tcp_answer(&format!("10:00:0{i}"), "3.5.140.2", "ACK SYN"));
        log.push_str(&tcp_answer(&format!("10:00:0{i}"), "3.5.140.3", "RST"));
        log.push_str(&tcp_answer(&format!("10:00:0{i}"), "3.5.140.4", "SYN"));
    }
    log.push_str(
        "Jan 25 10:00:06 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.5 DST=198.51.100.10 LEN=88 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST=3.5.140.5 LEN=60 PROTO=UDP SPT=53 DPT=62936 LEN=40 ] \n",
    );
    let s = with_defaults("");
    s.write("messages", &log);
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        ip_list(&v["reports"][0]["ips"]),
        ["3.5.140.4"],
        "only the SYN sender attacks; SYN-ACK, RST and ICMP errors answer us"
    );
    assert_eq!(v["summary"]["lines_backscatter"], 11);
    assert_eq!(v["summary"]["lines_matched"], 16);
    let excerpt = v["reports"][0]["excerpt"].to_string();
    assert!(!excerpt.contains("3.5.140.2") && !excerpt.contains("3.5.140.3"));

    let counted = with_defaults("backscatter = true");
    counted.write("messages", &log);
    let v = counted.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        ip_list(&v["reports"][0]["ips"]),
        ["3.5.140.2", "3.5.140.3", "3.5.140.4"],
        "backscatter = true counts answers; the lone ICMP error stays below min_hits"
    );
}

/// With `backscatter = true` answers are reported, and named for what they are: a host
/// whose lines are all SYN-ACKs or RSTs from port 443 sent answers, not probes, and hosts
/// that answer are not forged sources. A host that also sent a SYN is probing.
#[test]
fn answers_counted_with_backscatter_are_named_answers_not_probes() {
    let icmp = |time: &str, src: &str| {
        format!(
            "Jan 25 {time} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=88 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST={src} LEN=60 PROTO=UDP SPT=53 DPT=62936 LEN=40 ] \n"
        )
    };
    let mut answers = String::new();
    for i in 0..5 {
        answers.push_str(&tcp_answer(&format!("10:00:0{i}"), "3.5.140.2", "ACK SYN"));
        answers.push_str(&tcp_answer(&format!("10:00:0{i}"), "3.5.140.3", "RST"));
        answers.push_str(&icmp(&format!("10:00:0{i}"), "3.5.140.5"));
    }
    let s = with_defaults("backscatter = true");
    s.write("messages", &answers);
    let v = s.run(&["preview", "--json"]).ok().json();
    let subject = v["reports"][0]["subject"].as_str().unwrap();
    assert!(
        subject.contains("TCP answers from port 443 and ICMP packets"),
        "{subject}"
    );
    assert!(!subject.contains("probes"), "{subject}");
    s.run(&["run"]).ok();
    let body = only_body(&s);
    assert!(
        body.contains("  What:     TCP answers from port 443 and ICMP packets"),
        "{body}"
    );
    assert!(!body.contains("may be forged"), "{body}");

    // A SYN to port 22 among a host's answers, after the lines kept of it: it probes.
    let s = with_defaults("backscatter = true");
    s.write(
        "messages",
        &(answers.clone() + &drop_line("10:00:09", "3.5.140.2", "TCP", 22)),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    let subject = v["reports"][0]["subject"].as_str().unwrap();
    assert!(subject.contains("TCP 22/51234 probes"), "{subject}");
    assert!(subject.contains("TCP answers from port 443"), "{subject}");

    // A scan from port 443 (`nmap -g 443`) to a port below the ephemeral ones, after SYN-ACKs
    // the lines kept are all of: no answers.
    let s = with_defaults("backscatter = true");
    let scan: String = (0..10)
        .map(|i| {
            tcp_answer(&format!("10:01:{i:02}"), "3.5.140.2", "SYN")
                .replace("DPT=51234", "DPT=3389")
        })
        .collect();
    s.write("messages", &(answers.clone() + &scan));
    let v = s.run(&["preview", "--json"]).ok().json();
    let subject = v["reports"][0]["subject"].as_str().unwrap();
    assert!(subject.contains("TCP 3389/51234 probes"), "{subject}");

    // ICMP has no ports to judge all of a host's packets by: three echo replies kept of a host
    // that then sent sixty pings do not make it an answerer.
    let ping = |time: &str, kind: u8| {
        format!(
            "Jan 25 {time} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 LEN=84 TOS=0x00 PREC=0x00 TTL=49 ID=0 PROTO=ICMP TYPE={kind} CODE=0 ID=7 SEQ=1 \n"
        )
    };
    let mut pings: String = (0..3).map(|i| ping(&format!("09:00:0{i}"), 0)).collect();
    pings.extend((1..=60).map(|m| ping(&format!("{:02}:{:02}:30", 9 + m / 60, m % 60), 8)));
    let s = with_defaults("backscatter = true");
    s.write("messages", &pings);
    let v = s.run(&["preview", "--json"]).ok().json();
    let subject = v["reports"][0]["subject"].as_str().unwrap();
    assert!(!subject.contains("answers"), "{subject}");
}

/// Answers at a flood's rate are named a flood, and XARF files them as one (`ddos`, with the
/// rate): 200 SYN-ACKs in 20 seconds, a SYN-ACK reflection at the operator.
#[test]
fn a_flood_of_answers_is_a_flood_to_the_desk_and_to_xarf() {
    let mut log = String::new();
    for i in 0..200 {
        log.push_str(&tcp_answer(
            &format!("10:00:{:02}", i / 10),
            "3.5.140.2",
            "ACK SYN",
        ));
    }
    let s = with_defaults("backscatter = true\nxarf = true");
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let subject = message.subject().unwrap();
    assert!(
        subject.contains("TCP answers from port 443 (flood)"),
        "{subject}"
    );
    let doc: serde_json::Value = serde_json::from_str(&attachment(&message, "xarf.json")).unwrap();
    assert_eq!(doc["type"], "ddos", "{doc}");
    assert_eq!(doc["attack_vector"], "tcp_flood", "{doc}");
    assert_eq!(doc["peak_pps"], 10, "{doc}");
}

#[test]
fn stale_packets_are_not_reported_and_are_counted() {
    let s = with_defaults("");
    // The clock is 2026-01-26: December's packets are older than the default 30 days.
    let old: String = (0..5)
        .map(|i| {
            drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22)
                .replacen("Jan 25", "Dec 20", 1)
        })
        .collect();
    let new: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.3", "TCP", 22))
        .collect();
    s.write("messages", &format!("{old}{new}"));
    let out = s.run(&["preview", "--json"]).ok();
    let v = out.json();
    assert_eq!(ip_list(&v["reports"][0]["ips"]), ["3.5.140.3"]);
    assert_eq!(v["summary"]["lines_stale"], 5);
    assert!(
        out.stderr.contains("5 lines older than max_age_days"),
        "{}",
        out.stderr
    );
    let all = with_defaults("max_age_days = 0");
    all.write("messages", &format!("{old}{new}"));
    let v = all.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&v["reports"][0]["ips"]), ["3.5.140.2", "3.5.140.3"]);
}

/// The subjects and IPs of the ledger's reports, oldest first.
fn ledger(s: &Setup) -> Vec<(String, Vec<String>, String)> {
    let v = s.run(&["history", "--json"]).ok().json();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["subject"].as_str().unwrap().to_string(),
                common::string_list(&r["ips"]),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn parts_keep_their_numbers_across_runs() {
    let s = Setup::new(
        &standard_config("max_ips_per_message = 2")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 3"),
    );
    s.write("messages", &many_sources_log(10, false));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 3);
    let first = ledger(&s);
    assert_eq!(first.len(), 5, "every part is written, the held ones wait");
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 5);
    let rows = ledger(&s);
    for (k, (subject, _, status)) in rows.iter().enumerate() {
        assert!(
            subject.ends_with(&format!("(part {} of 5)", k + 1)),
            "{subject}"
        );
        assert_eq!(status, "sent");
    }
    let mut all: Vec<String> = rows.iter().flat_map(|r| r.1.clone()).collect();
    assert_eq!(all.len(), 10);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "no address twice");
    // Every part is in the first part's thread.
    let history = s.run(&["history", "--json"]).ok().json();
    let root_id = history[0]["message_id"].as_str().unwrap().to_string();
    let mut threaded = 0;
    for file in s.outbox() {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains(&format!("In-Reply-To: {root_id}")) {
            threaded += 1;
        } else {
            assert!(text.contains(&format!("Message-ID: {root_id}")), "{file:?}");
        }
    }
    assert_eq!(threaded, 4);
    // Nothing left: a third run sends nothing.
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 5);
}

#[test]
fn no_message_is_larger_than_max_message_bytes() {
    let limit = 16 * 1024;
    let s = Setup::new(&standard_config(&format!("max_message_bytes = {limit}")));
    s.write("messages", &many_sources_log(120, true));
    s.run(&["run"]).ok();
    let files = s.outbox();
    assert!(files.len() > 1, "split to fit");
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len() as usize;
        assert!(size <= limit, "{f:?}: {size} bytes");
    }
    let mut all: Vec<String> = ledger(&s).into_iter().flat_map(|r| r.1).collect();
    assert_eq!(all.len(), 120);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120, "every address once");
}

#[test]
fn one_address_with_huge_forged_lines_still_fits() {
    let limit = 16 * 1024;
    let s = Setup::new(&standard_config(&format!("max_message_bytes = {limit}")));
    let padding = "X".repeat(3000);
    let log: String = (0..20)
        .map(|i| {
            drop_line(&format!("10:00:{i:02}"), "3.5.140.2", "TCP", 22)
                .replace(" \n", &format!(" WINDOW=1 {padding} \n"))
        })
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let files = s.outbox();
    assert_eq!(files.len(), 1);
    let size = std::fs::metadata(&files[0]).unwrap().len() as usize;
    assert!(size <= limit, "{size} bytes");
    let raw = std::fs::read(&files[0]).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert!(
        message.body_text(0).unwrap().contains("SRC=3.5.140.2 "),
        "some evidence is kept"
    );
}

/// The real ufw logs of a VPS (May 2022, rotated history included), the real AWS ranges and
/// the real-world ASN database, copied into a temporary setup; the clock is the day after.
fn real_ufw_setup(extra_report: &str, mail: &str) -> Setup {
    let dir = shared_data("iptables-logs/vultr-ufw-2022");
    let ranges = shared_data("cloud-ranges/aws-ip-ranges-2025-07-24.json");
    let db = shared_data("asn-realworld/ip-location-db-asn-20260617.mmdb");
    let mut s = Setup::new(
        &standard_config(extra_report)
            .replace("min_hits = 1\n", "")
            .replace(
                "path = \"{dir}/messages\"",
                "path = \"{dir}/ufw.log\"\nprefixes = [\"[UFW BLOCK] \"]\nstart_at = \"beginning\"",
            )
            .replace(
                "{repo}/fixtures/ranges/aws-ip-ranges.json",
                ranges.to_str().unwrap(),
            )
            .replace(
                "services = [\"EC2\"]",
                "services = [\"EC2\"]\nexclude_regions = [\"cn-north-1\", \"cn-northwest-1\"]",
            )
            .replace(
                "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
                &format!("[enrich]\nasn_db = \"{}\"\n\n{mail}", db.display()),
            ),
    );
    for name in ["ufw.log", "ufw.log.2.gz", "ufw.log.3.gz", "ufw.log.4.gz"] {
        std::fs::copy(dir.join(name), s.path(name)).unwrap();
    }
    s.now = "2022-05-30T00:00:00Z".into();
    s
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn a_real_log_delivery_reads_right_to_an_abuse_desk() {
    use common::smtp::{self, Security};
    let server = smtp::start(Security::Plain, None, 0);
    let s = real_ufw_setup(
        "reply_to = \"noc@example.net\"\nmax_ips_per_message = 8",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_secs = 10\nmax_messages_per_run = 50",
            server.port
        ),
    );
    let out = s.run(&["run"]).ok();
    let got = server.received();
    assert!(got.len() >= 2, "a split report: {}", out.stderr);
    let history = s.run(&["history", "--json"]).ok().json();
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), got.len());
    let root_id = rows[0]["message_id"].as_str().unwrap();
    let mut all_ips = Vec::new();
    for (k, delivery) in got.iter().enumerate() {
        assert!(delivery.data.len() <= 1 << 20, "every part at most 1 MiB");
        let m = MessageParser::default().parse(&delivery.data).unwrap();
        let row = rows
            .iter()
            .find(|r| format!("<{}>", m.message_id().unwrap()) == r["message_id"].as_str().unwrap())
            .expect("each message is in the ledger");
        let ips = common::string_list(&row["ips"]);
        // Envelope and headers.
        assert_eq!(
            m.to().unwrap().first().unwrap().address(),
            Some("ec2-abuse@amazon.com")
        );
        assert_eq!(
            m.from().unwrap().first().unwrap().address(),
            Some("abuse@example.org")
        );
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("noc@example.net")
        );
        assert_eq!(
            m.header("Auto-Submitted").unwrap().as_text(),
            Some("auto-generated")
        );
        assert!(m.date().is_some());
        if k > 0 {
            assert_eq!(
                m.in_reply_to().as_text(),
                Some(root_id.trim_matches(['<', '>'])),
                "follow-up parts are threaded"
            );
        }
        let subject = m.subject().unwrap();
        let count = if ips.len() == 1 {
            "one AWS host".to_string()
        } else {
            format!("{} AWS hosts", ips.len())
        };
        assert!(subject.contains(&count), "{subject}");
        assert!(
            subject.contains("probes") || subject.contains("flood") || subject.contains("scan"),
            "{subject}"
        );
        assert!(!subject.contains("example.org"), "{subject}");
        // The body: consistent, with zone and span, 78 columns outside the log block.
        let body = m.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(body.contains("Replies reach noc@example.net."));
        assert!(body.contains("  Period:   2022-05-"), "{body}");
        assert!(body.contains("(UTC)"));
        for line in body.lines().filter(|l| !l.contains(" kernel: ")) {
            assert!(line.chars().count() <= 78, "{line:?}");
        }
        for ip in &ips {
            assert!(body.contains(&format!("\n  {ip} ")), "{ip} has a row");
        }
        assert!(
            body.contains("+00:00 to 2022-05-"),
            "first and last seen with zone"
        );
        // The excerpt: only reported addresses, within its window.
        let excerpt = attachment(&m, "excerpt.log");
        for line in excerpt.lines().filter(|l| !l.is_empty()) {
            assert!(
                ips.iter().any(|ip| line.contains(&format!("SRC={ip} "))),
                "an excerpt line from an address not in this report: {line}"
            );
            assert!(!line.contains("MAC=56:00"), "our MAC is redacted: {line}");
        }
        // The CSV equals the rows.
        let csv = attachment(&m, "ips.csv");
        let csv_ips: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        assert_eq!(csv_ips, ips, "ips.csv lists exactly the report's addresses");
        // Each accused address has its own evidence.
        let evidence = attachment(&m, "evidence.log");
        for ip in &ips {
            assert!(evidence.contains(&format!("# {ip}: ")), "{ip} has evidence");
        }
        all_ips.extend(ips);
    }
    let n = all_ips.len();
    all_ips.sort();
    all_ips.dedup();
    assert_eq!(all_ips.len(), n, "no address in two parts");
    assert!(
        !all_ips.contains(&"52.80.174.40".to_string()),
        "AWS China left out"
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["reports"].as_array().unwrap().len(), 0, "all sent");

    // The same log as XARF: every document validates.
    let x = real_ufw_setup(
        "xarf = true",
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"\nmax_messages_per_run = 1000",
    );
    x.run(&["run"]).ok();
    let mut validated = 0;
    for file in x.outbox() {
        let raw = std::fs::read(&file).unwrap();
        assert!(raw.len() <= 1 << 20);
        let m = MessageParser::default().parse(&raw).unwrap();
        let Some(doc) = m
            .attachments()
            .find(|a| a.attachment_name() == Some("xarf.json"))
        else {
            continue;
        };
        if let Some(errors) = xarf_errors(doc.text_contents().unwrap()) {
            assert!(errors.is_empty(), "{file:?}: {errors:?}");
            validated += 1;
        }
    }
    assert!(validated > 0 || std::env::var_os("CI").is_none());
}

#[test]
fn many_ports_and_protocols_still_keep_to_78_columns() {
    let s = Setup::standard();
    let mut log = String::new();
    // One host on 20 five-digit ports over TCP and UDP; another adds ICMP and 20 more ports.
    for port in 10000..10020u16 {
        log.push_str(&drop_line("10:00:00", "3.5.140.2", "TCP", port));
        log.push_str(&drop_line("10:00:01", "3.5.140.2", "UDP", port));
        log.push_str(&drop_line("10:00:02", "3.5.140.3", "UDP", port + 100));
    }
    log.push_str(
        "Jan 25 10:00:03 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.3 DST=198.51.100.10 LEN=84 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1 \n",
    );
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    for line in body.lines().filter(|l| !l.contains(" kernel: ")) {
        assert!(
            line.chars().count() <= 78,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
    assert!(body.contains("TCP/UDP probes of 20 ports"), "{body}");
    assert!(
        body.contains("\n  Traffic:  ICMP, TCP, UDP, destination ports 10000,"),
        "{body}"
    );
}

/// A host that scanned a hundred ports is kept with its 64 smallest: the body said
/// `… 10 and 54 more` of it, sixty-four ports in all, where it probed a hundred.
#[test]
fn a_host_with_more_ports_than_its_record_keeps_is_said_to_have_at_least_that_many() {
    let s = Setup::standard();
    let log: String = (1..=100u16)
        .map(|port| drop_line(&format!("10:00:{:02}", port % 60), "3.5.140.2", "TCP", port))
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    let row = (body.lines())
        .find(|l| l.trim_start().starts_with("3.5.140.2 "))
        .unwrap_or_else(|| panic!("{body}"));
    let traffic = (body.lines())
        .find(|l| l.trim_start().starts_with("Traffic:"))
        .unwrap_or_else(|| panic!("{body}"));
    for line in [row, traffic] {
        let (shown, rest) = line
            .rsplit_once(" and at least ")
            .unwrap_or_else(|| panic!("{line}"));
        let rest: usize = rest.trim_end_matches(" more").parse().unwrap();
        // The row's column of ports, or what follows `destination ports`.
        let list = shown
            .rsplit("  ")
            .next()
            .unwrap()
            .rsplit("ports ")
            .next()
            .unwrap();
        let listed = list
            .split(", ")
            .filter(|p| p.parse::<u16>().is_ok())
            .count();
        assert!(listed + rest == 64 && line.contains(" 1, 2, 3"), "{line}");
    }
}

/// A setup whose body template says more than `max_message_bytes = 16384` allows, whatever
/// the log holds.
fn with_a_body_too_large() -> Setup {
    let s = Setup::new(&standard_config(
        "max_message_bytes = 16384\ntemplates_dir = \"{dir}/templates\"",
    ));
    std::fs::create_dir(s.path("templates")).unwrap();
    let long = "This paragraph repeats. ".repeat(1000);
    s.write(
        "templates/body.txt",
        &format!("{long}\n{{{{ ip_count }}}}\n"),
    );
    s
}

/// It waits, named, and the run and its preview end 78: waiting makes it no smaller (each
/// run ended 0, for ever, under `-q` a warning mailed by cron every run).
#[test]
fn a_report_too_large_even_without_lines_waits_and_names_itself() {
    let s = with_a_body_too_large();
    let log: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.write("messages", &log);
    for args in [&["preview"][..], &["run"], &["-q", "run"]] {
        let out = s.run(args);
        assert_eq!(out.code, 78, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("3.5.140.2")
                && out
                    .stderr
                    .contains("1 report(s) of one address are over report.max_message_bytes"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(s.outbox().is_empty());
    // With room, it goes out: nothing was lost meanwhile.
    let text = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace("max_message_bytes = 16384", "max_message_bytes = 65536");
    std::fs::write(s.path("config.toml"), text).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

/// The same report, made small enough by a shorter template rather than a larger limit: the
/// run that held it back had marked the state settled, and a template's text is no setting,
/// so no later run looked at the address again until it sent more.
#[test]
fn a_report_held_back_as_too_large_goes_once_the_template_is_shortened() {
    let s = with_a_body_too_large();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    assert_eq!(s.run(&["run"]).code, 78);
    assert!(s.outbox().is_empty());
    s.write("templates/body.txt", "{{ ip_count }} address(es).\n");
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "held back, not forgotten");
}

#[test]
fn an_address_last_seen_before_max_age_days_is_history_not_a_report() {
    let mut s = with_defaults("");
    let log: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "81.2.69.143", "TCP", 22))
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty(), "in no provider yet");
    // Seven weeks later the operator adds the provider that holds it; nothing new was logged.
    s.now = "2026-03-15T08:00:00Z".into();
    let text = std::fs::read_to_string(s.path("config.toml")).unwrap().replace(
        "[report]",
        &format!(
            "[[provider]]\nname = \"other\"\nto = [\"abuse@other.example\"]\nranges = \"{}/fixtures/ranges/other-cloud.txt\"\n\n[report]",
            repo().display()
        ),
    );
    std::fs::write(s.path("config.toml"), text).unwrap();
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        v["reports"],
        serde_json::json!([]),
        "seven-week-old packets are history"
    );
    // Seen again now: reported.
    s.append(
        "messages",
        &(0..3)
            .map(|i| {
                drop_line(&format!("07:00:0{i}"), "81.2.69.143", "TCP", 22)
                    .replacen("Jan 25", "Mar 15", 1)
            })
            .collect::<String>(),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&v["reports"][0]["ips"]), ["81.2.69.143"]);
}

#[test]
fn evidence_headings_count_one_packet_as_one() {
    let s = Setup::new(&standard_config(""));
    let log = drop_line("10:00:00", "3.5.140.2", "TCP", 22)
        + &drop_line("10:00:01", "3.5.140.3", "TCP", 22)
        + &drop_line("10:00:02", "3.5.140.3", "TCP", 23);
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let raw = std::fs::read(&s.outbox()[0]).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    let evidence = attachment(&m, "evidence.log");
    assert!(
        evidence.contains("# 3.5.140.2: 1 packet at 2026-01-25T10:00:00+00:00; its line\n"),
        "{evidence}"
    );
    assert!(
        evidence.contains("# 3.5.140.3: 2 packets from 2026-01-25T10:00:01+00:00 to "),
        "{evidence}"
    );
}

#[test]
fn a_run_makes_a_few_runs_worth_of_parts_and_the_rest_follow() {
    let s = Setup::new(
        &standard_config("max_ips_per_message = 1")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
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
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        v["reports"].as_array().unwrap().len(),
        4,
        "four times max_messages_per_run parts a run"
    );
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr
            .contains("2 address(es) of aws wait for a later run"),
        "{}",
        out.stderr
    );
    for _ in 0..8 {
        s.run(&["run"]).ok();
        let history = s.run(&["history", "--json"]).ok().json();
        let waiting = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] != "sent")
            .count();
        assert!(
            waiting <= 4,
            "a backlog drains before it grows: {waiting} waiting"
        );
    }
    let mut all: Vec<String> = s.reported().into_iter().flatten().collect();
    assert_eq!(all.len(), 6, "{all:?}");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "every address once");
    assert_eq!(s.outbox().len(), 6);
}

/// Parts split further to fit `max_message_bytes` (long lines) count against the parts a run
/// makes too: a run makes four times `max_messages_per_run` messages at most, whatever the
/// lines' length, and the others' addresses follow in later runs, each once.
#[test]
fn parts_split_by_size_still_keep_to_the_parts_a_run_makes() {
    let limit = 16 * 1024;
    let s = Setup::new(
        &standard_config(&format!("max_message_bytes = {limit}"))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write("messages", &many_sources_log(120, true));
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["reports"].as_array().unwrap().len(), 4, "one run's parts");
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains("of aws wait for a later run"),
        "{}",
        out.stderr
    );
    let mut runs = 1;
    while s.reported().concat().len() < 120 {
        s.run(&["run"]).ok();
        let waiting = history(&s).iter().filter(|r| r["status"] != "sent").count();
        assert!(waiting <= 4, "{waiting} parts waiting");
        runs += 1;
        assert!(runs < 200, "every address goes out in the end");
    }
    let mut all = s.reported().concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120, "every address once");
}

/// The subject and plain text of the one message a run of a fresh setup makes of `log`.
fn subject_and_body_of(log: &str) -> (String, String) {
    let s = Setup::new(&standard_config(""));
    s.write("messages", log);
    s.run(&["run"]).ok();
    let raw = std::fs::read(&s.outbox()[0]).unwrap();
    let m = MessageParser::default().parse(&raw).unwrap();
    (
        m.subject().unwrap().to_string(),
        m.body_text(0).unwrap().to_string(),
    )
}

#[test]
fn a_flood_spread_over_many_quiet_sources_is_called_a_flood_that_may_be_spoofed() {
    // 60 sources in two seconds, two or three UDP 53 packets each: 140, a flood together.
    let log: String = (0..60)
        .map(|i| {
            let ip = format!("34.223.{}.{}", i / 200, i % 200 + 1);
            let line = drop_line(&format!("10:00:0{}", i % 2), &ip, "UDP", 53);
            if i % 3 == 0 {
                line.repeat(3)
            } else {
                line.repeat(2)
            }
        })
        .collect();
    let (subject, body) = subject_and_body_of(&log);
    assert!(
        subject.starts_with("Abuse report: UDP 53 flood from 60 AWS hosts"),
        "{subject}"
    );
    assert!(body.contains("may be forged (spoofed)"), "{body}");
    assert!(!body.contains("Please make the hosts below stop"), "{body}");
    for line in body.lines().take(25) {
        assert!(line.chars().count() <= 78, "{line:?}");
    }

    // Sixty DNS servers' answers to the same port (questions forged in the operator's
    // name): their addresses are real, and the report says what they are, not forged.
    let (subject, body) = subject_and_body_of(&log.replace("SPT=40000 DPT=53", "SPT=53 DPT=40001"));
    assert!(
        subject.starts_with("Abuse report: UDP 53 answers (DNS reflection) from 60 AWS hosts"),
        "{subject}"
    );
    assert!(!body.contains("spoofed"), "{body}");
    // From port 53 to a well-known port, the flood may still be forged (`hping3
    // --rand-source -s 53 -p 80`): no answers, whatever their number.
    let (subject, body) = subject_and_body_of(&log.replace("SPT=40000 DPT=53", "SPT=53 DPT=80"));
    assert!(
        subject.starts_with("Abuse report: UDP 80 flood from 60 AWS hosts"),
        "{subject}"
    );
    assert!(body.contains("may be forged (spoofed)"), "{body}");

    // Fifty hosts probing SSH, two SYNs each over a minute and a half, are a distributed
    // scan by real hosts: not that.
    let syns: String = (0..50)
        .map(|i| {
            let ip = format!("34.223.0.{}", i + 1);
            let t = |k: u32| format!("10:0{}:{:02}", (i * 2 + k) / 60, (i * 2 + k) % 60);
            drop_line(&t(0), &ip, "TCP", 22) + &drop_line(&t(1), &ip, "TCP", 22)
        })
        .collect();
    let (subject, body) = subject_and_body_of(&syns);
    assert!(!subject.contains("flood"), "{subject}");
    assert!(!body.contains("spoofed"), "{body}");
    // The same sixty sources' SYNs to port 80 within two seconds, each from a port of its
    // own: a SYN flood, the flood most often forged. It asked sixty customers to stop, with
    // no word of forgery.
    let mut port = 40_000;
    let syn_flood: String = (log.lines())
        .map(|l| {
            port += 1;
            let l = l.replace("PROTO=UDP", "PROTO=TCP");
            format!(
                "{}\n",
                l.replace("SPT=40000 DPT=53", &format!("SPT={port} DPT=80"))
            )
        })
        .collect();
    let (subject, body) = subject_and_body_of(&syn_flood);
    assert!(
        subject.starts_with("Abuse report: TCP 80 flood from 60 AWS hosts"),
        "{subject}"
    );
    assert!(body.contains("may be forged (spoofed)"), "{body}");
    // Each source's SYN and its retries from one port: real hosts' stacks, not forged ones.
    let retries = log
        .replace("PROTO=UDP", "PROTO=TCP")
        .replace("DPT=53", "DPT=80");
    let (subject, body) = subject_and_body_of(&retries);
    assert!(!body.contains("spoofed"), "{subject}\n{body}");
    assert!(body.contains("Please make the hosts below stop"), "{body}");

    // A few hosts probing are not that.
    let few: String = log.lines().take(6).map(|l| format!("{l}\n")).collect();
    let (_, body) = subject_and_body_of(&few);
    assert!(body.contains("Please make the hosts below stop"), "{body}");
}

/// Subjects and bodies of every message a run sends with `extra` in `[report]`.
fn parts_of(log: &str, extra: &str) -> Vec<(String, String)> {
    let s = Setup::new(&standard_config(extra));
    s.write("messages", log);
    s.run(&["run"]).ok();
    (s.outbox().iter())
        .map(|path| {
            let raw = std::fs::read(path).unwrap();
            let m = MessageParser::default().parse(&raw).unwrap();
            let subject = m.subject().unwrap().to_string();
            (subject, m.body_text(0).unwrap().to_string())
        })
        .collect()
}

/// A flood split into parts is a flood in every part: each part was told by its own addresses,
/// and one of fewer than fifty (the twenty left after 280) said `probes` and asked the desk to
/// stop hosts whose addresses may be forged, beside parts that said `flood`. Nor is a part a
/// flood of forged sources when the report's addresses together are not.
#[test]
fn a_report_split_into_parts_says_in_each_what_its_addresses_are_together() {
    let quiet = |i: u32| format!("34.223.0.{}", i + 1);
    // Two packets each: 120 in two seconds together, each source quiet.
    let flood: String = (0..60)
        .map(|i| drop_line(&format!("10:00:0{}", i % 2), &quiet(i), "UDP", 53).repeat(2))
        .collect();
    let parts = parts_of(&flood, "max_ips_per_message = 40");
    assert_eq!(parts.len(), 2);
    for (subject, body) in &parts {
        assert!(
            subject.starts_with("Abuse report: UDP 53 flood from "),
            "{subject}"
        );
        assert!(body.contains("may be forged (spoofed)"), "{body}");
        assert!(!body.contains("Please make the hosts below stop"), "{body}");
    }

    // The same sixty, and forty hosts above them probing SSH twenty times each: the first
    // part holds sixty quiet UDP sources alone, and is no flood of forged ones either.
    let probes: String = (0..40)
        .flat_map(|i| {
            (0..20).map(move |k| {
                drop_line(
                    &format!("10:0{}:{:02}", k / 10, k * 5 % 60),
                    &format!("34.223.1.{}", i + 1),
                    "TCP",
                    22,
                )
            })
        })
        .collect();
    let parts = parts_of(&(flood + &probes), "max_ips_per_message = 60");
    assert_eq!(parts.len(), 2);
    for (subject, body) in &parts {
        assert!(!subject.contains("flood"), "{subject}");
        assert!(!body.contains("spoofed"), "{body}");
    }
}

/// The same flood reported one address a message (XARF), ten a run: every message says what
/// the flood is, with the caveat, though the run's ten hold ten of its sixty sources (they were
/// told by those ten: probes); and each XARF document files its own source by its own two
/// packets, not as a denial of service (`ddos` with a peak of one packet a second).
#[test]
fn xarf_messages_of_a_spread_flood_say_the_flood_and_file_each_source_by_its_packets() {
    let flood: String = (0..60)
        .map(|i| {
            let ip = format!("34.223.0.{}", i + 1);
            drop_line(&format!("10:00:0{}", i % 2), &ip, "UDP", 53).repeat(2)
        })
        .collect();
    let s = Setup::new(&standard_config("xarf = true"));
    s.write("messages", &flood);
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 10);
    for path in sent {
        let raw = std::fs::read(&path).unwrap();
        let message = MessageParser::default().parse(&raw).unwrap();
        let subject = message.subject().unwrap();
        assert!(
            subject.contains("UDP 53 flood from one AWS host"),
            "{subject}"
        );
        let body = message.body_text(0).unwrap();
        assert!(body.contains("may be forged (spoofed)"), "{body}");
        let doc: serde_json::Value =
            serde_json::from_str(&attachment(&message, "xarf.json")).unwrap();
        assert_eq!(doc["type"], "port_scan", "{doc}");
        let description = doc["description"].as_str().unwrap();
        assert!(
            description.starts_with("UDP 53 probes: 2 packets from 34.223.0."),
            "{doc}"
        );
        // The flood the text names, and less confidence that this source sent its packets.
        assert!(
            description.ends_with(
                "; one of many sources of a UDP 53 flood whose source addresses may be forged"
            ),
            "{doc}"
        );
        assert_eq!(doc["confidence"], 0.5, "{doc}");
    }
}

#[test]
fn a_part_that_waited_goes_out_with_the_date_it_is_sent() {
    let mut s = Setup::new(
        &standard_config("max_ips_per_message = 1")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write(
        "messages",
        &(drop_line("07:00:00", "3.5.140.2", "TCP", 22)
            + &drop_line("07:00:01", "3.5.140.3", "TCP", 22)),
    );
    s.run(&["run"]).ok();
    s.now = "2026-01-26T11:00:00Z".to_string();
    s.run(&["run"]).ok();
    let mut dates = Vec::new();
    for file in s.outbox() {
        let text = std::fs::read_to_string(&file).unwrap();
        let date = text
            .lines()
            .find(|l| l.starts_with("Date: "))
            .unwrap()
            .to_string();
        let id = file.file_stem().unwrap().to_str().unwrap().to_string();
        // What `show` gives is what went out.
        let shown = s.run(&["show", &id]).ok();
        assert_eq!(shown.raw_stdout, std::fs::read(&file).unwrap(), "{id}");
        dates.push(date);
    }
    dates.sort();
    assert_eq!(
        dates,
        [
            "Date: Mon, 26 Jan 2026 08:00:00 +0000",
            "Date: Mon, 26 Jan 2026 11:00:00 +0000"
        ]
    );
}

/// The addresses a preview of `body` (a body template) prints, one per line after `IPS:`.
fn ips_a_body_lists(body: &str) -> Vec<String> {
    let s = Setup::new(&standard_config("templates_dir = \"{dir}/templates\""));
    std::fs::create_dir(s.path("templates")).unwrap();
    s.write("templates/body.txt", body);
    let log: String = ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"]
        .iter()
        .map(|ip| drop_line("10:00:00", ip, "TCP", 22))
        .collect();
    s.write("messages", &log);
    let out = s.run(&["preview"]).ok();
    let mut listed: Vec<String> = (out.stdout.lines())
        .filter_map(|l| l.strip_prefix("IPS: "))
        .map(str::to_string)
        .collect();
    listed.sort();
    listed
}

/// The default templates do not read `ips`, and are rendered without it (it is the bulk of
/// a part's template values); a template that reads it sees every address, however it
/// reads it: by name, through a variable that was set only on a path not taken (a use its
/// variables do not show), or in the dumped context.
#[test]
fn a_template_that_reads_ips_sees_every_address_however_it_reads_it() {
    let all = ["2600:1f18:4a3:6901::1", "3.5.140.2", "34.223.47.190"];
    let by_name = "{% for a in ips %}IPS: {{ a.ip }}\n{% endfor %}";
    assert_eq!(ips_a_body_lists(by_name), all);
    let hidden = "{% if ip_count > 1000 %}{% set ips = [] %}{% endif %}\
                  {% for a in ips %}IPS: {{ a.ip }}\n{% endfor %}";
    assert_eq!(ips_a_body_lists(hidden), all);
    let s = Setup::new(&standard_config("templates_dir = \"{dir}/templates\""));
    std::fs::create_dir(s.path("templates")).unwrap();
    s.write("templates/body.txt", "{{ __tera_context }}\n");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap();
    assert!(body.contains("\"ips\": [{"), "{body}");
}

/// A template that reads `ips` through a test or filter that takes a missing variable for an
/// answer (`is defined`, `default`) renders without failing when `ips` is left out: were its
/// read hidden by a `set` on a path not taken, it would list no address, and say so to the
/// provider. Any template that names `ips` is given it.
#[test]
fn a_template_that_reads_ips_past_a_set_not_taken_and_a_default_sees_every_address() {
    let all = ["2600:1f18:4a3:6901::1", "3.5.140.2", "34.223.47.190"];
    let defaulted = "{% if ip_count > 1000 %}{% set ips = [] %}{% endif %}\
                     {% for a in ips | default(value=[]) %}IPS: {{ a.ip }}\n{% endfor %}";
    assert_eq!(ips_a_body_lists(defaulted), all);
    let tested = "{% if ip_count > 1000 %}{% set_global ips = [] %}{% endif %}\
                  {% if ips is defined %}{% for a in ips %}IPS: {{ a.ip }}\n{% endfor %}{% endif %}";
    assert_eq!(ips_a_body_lists(tested), all);
}

/// ufw logs the outgoing packets it blocks with the same `[UFW BLOCK] ` prefix, `IN=` empty
/// and the host's own address as the source: on a host inside a provider's ranges (a droplet
/// blocking its own provider), that is the operator's address. It is never reported, nor
/// shown in the evidence, with or without `backscatter = true`; the run says how many such
/// lines it passed over. A packet that comes in (`IN=eth0`) with the host's own address as its
/// source, as a raw-table rule logs one before the kernel drops it, was reported to the
/// host's own provider: its address is never an attacker's either.
#[test]
fn packets_the_host_sent_never_report_its_own_address() {
    for extra in ["", "backscatter = true"] {
        let s = Setup::new(&standard_config(extra));
        let ours = "Jan 25 10:00:00 web1 kernel: [810294.788657] INPUT-DROP:IN= OUT=eth0 SRC=3.5.140.2 DST=34.223.47.190 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 \n";
        // Loopback: only the host sends there, whatever address it gives as the source.
        let looped = "Jan 25 10:00:01 web1 kernel: [810294.788657] INPUT-DROP:IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=3.5.140.2 DST=3.5.140.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=49007 DPT=8080 WINDOW=65495 RES=0x00 SYN URGP=0 \n";
        let forged = "Jan 25 10:00:01 web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= MAC=0e:1f:2a:3b:4c:5d:0e:1f:2a:3b:4c:5e:08:00 SRC=3.5.140.2 DST=3.5.140.2 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=41000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 \n";
        s.write(
            "messages",
            &[
                ours.to_string(),
                looped.to_string(),
                forged.to_string(),
                drop_line("10:00:02", "18.206.107.24", "TCP", 22),
            ]
            .concat(),
        );
        let ran = s.run(&["run"]).ok();
        assert!(
            ran.stderr.contains("3 lines of packets this host sent"),
            "{}",
            ran.stderr
        );
        let message = String::from_utf8_lossy(&only_message(&s)).into_owned();
        assert!(message.contains("18.206.107.24"), "{message}");
        assert!(!message.contains("3.5.140.2"), "{extra}: {message}");
        let listed = s.run(&["preview", "--json"]).ok().json();
        assert_eq!(listed["summary"]["lines_matched"], 0, "nothing new");
        let ledger = history(&s);
        assert_eq!(ledger.len(), 1);
        assert_eq!(string_list(&ledger[0]["ips"]), ["18.206.107.24"]);
    }
}

/// A `from` whose domain is in other letters than ASCII: the message's Message-ID carries the
/// domain's `xn--` form, a Message-ID every reader takes, not an encoded word.
#[test]
fn a_from_domain_in_other_letters_gives_an_ascii_message_id() {
    let s = Setup::new(&standard_config("").replace(
        "from = \"Abuse desk <abuse@example.org>\"",
        "from = \"Abuse desk <abuse@exämple.org>\"",
    ));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let message = String::from_utf8_lossy(&only_message(&s)).into_owned();
    let id = message
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("{message}"));
    assert!(
        id.is_ascii() && id.ends_with("@xn--exmple-cua.org>"),
        "{id}"
    );
}

/// A `from` without a display name is named once in the body, not as
/// `abuse@example.org <abuse@example.org>`.
#[test]
fn a_from_without_a_name_is_named_once() {
    let s = Setup::new(&standard_config("").replace(
        "from = \"Abuse desk <abuse@example.org>\"",
        "from = \"abuse@example.org\"",
    ));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let message = String::from_utf8_lossy(&only_message(&s)).replace("\r\n", "\n");
    assert!(
        message.contains("report from abuse@example.org about"),
        "{message}"
    );
    assert!(
        !message.contains("abuse@example.org <abuse@example.org>"),
        "{message}"
    );
}

/// Two hosts of a fleet that see the same address, each reporting it in the same second (a
/// timer fires on all of them at once): their messages differ (another host, another target),
/// and so do their Message-IDs, which a desk's mail system keeps one message of. Made of the
/// time, the provider and the addresses alone, the two were alike.
#[test]
fn two_hosts_reporting_the_same_address_at_once_send_two_message_ids() {
    let log: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    let message_id = |host: &str, target: &str| {
        let s = Setup::standard();
        s.write(
            "messages",
            &log.replace("web1", host).replace("198.51.100.10", target),
        );
        s.run(&["run"]).ok();
        let message = only_message(&s);
        let parsed = MessageParser::default().parse(&message).unwrap();
        parsed.message_id().unwrap().to_string()
    };
    let one = message_id("web1", "198.51.100.10");
    assert_eq!(one, message_id("web1", "198.51.100.10"), "made alike");
    assert_ne!(one, message_id("web2", "198.51.100.11"));
}

/// UDP from a DNS server's port 53 to the operator's high ports: answers to questions forged
/// in the operator's name (reflection). The subject says so, where it called them probes and
/// the desk went after a scanner rather than an open resolver.
#[test]
fn dns_answers_are_reported_as_reflection_not_probes() {
    let s = Setup::standard();
    let log: String = [40_001, 40_002, 40_003]
        .iter()
        .enumerate()
        .map(|(i, port)| {
            drop_line(&format!("10:00:0{i}"), "3.5.140.2", "UDP", *port)
                .replace("SPT=40000", "SPT=53")
        })
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let message = only_message(&s);
    let parsed = MessageParser::default().parse(&message).unwrap();
    let subject = parsed.subject().unwrap();
    assert!(
        subject.contains("UDP 53 answers (DNS reflection)") && !subject.contains("probes"),
        "{subject}"
    );
}

/// An IPv6 packet line whose source is an EC2 host's IPv4 address in mapped form
/// (`SRC=::ffff:3.5.140.2 DST=2001:db8::10`): no such packet travels (Linux drops one before
/// the firewall since 5.3), so the line or the packet was forged, and the host sent nothing.
/// It is never reported, and is listed in its mapped form among the addresses in no provider;
/// it was reported as the IPv4 host, an IPv4 address hitting an IPv6 target.
#[test]
fn a_mapped_source_in_an_ipv6_packet_is_no_ipv4_hosts() {
    let s = Setup::standard();
    let line = drop_line("10:00:00", "::ffff:3.5.140.2", "TCP", 22)
        .replace("DST=198.51.100.10", "DST=2001:db8::10");
    s.write("messages", &line.repeat(3));
    let preview = s.run(&["preview", "--json"]).ok();
    let v = preview.json();
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(0), "{v}");
    let unattributed = v["unattributed"].to_string();
    assert!(unattributed.contains("::ffff:3.5.140.2"), "{unattributed}");
    // Also once a run has stored it, in a later run that does not read it again.
    s.run(&["run"]).ok();
    let v = s.run(&["preview", "--json"]).ok().json();
    let unattributed = v["unattributed"].to_string();
    assert!(unattributed.contains("::ffff:3.5.140.2"), "{unattributed}");
}
