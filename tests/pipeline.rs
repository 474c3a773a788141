//! The core pipeline through the binary: preview, JSON contract, run with the file transport,
//! the delta across runs, and bad input.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::process::Command;

use common::*;

/// The EC2 addresses of `fixtures/logs/messages` that the example reports, in numeric order
/// (52.80.174.40 is in AWS China, which the example leaves out with `exclude_regions`;
/// 35.180.1.1 only sent an ICMP error, an answer to our own traffic).
const EXAMPLE_IPS: [&str; 4] = [
    "3.5.140.2",
    "18.206.107.24",
    "34.223.47.190",
    "2600:1f18:4a3:6901::1",
];

/// The keys of a JSON object.
fn keys_of(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn example(args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
        .current_dir(repo())
        .args(["--config", "config/example.toml"])
        .args(args)
        .env("ABUSE_MAILER_NOW", NOW)
        .output()
        .unwrap();
    Ran::from(out).ok()
}

#[test]
fn example_preview_prints_a_complete_message() {
    let out = example(&["preview"]);
    let text = &out.stdout;
    assert!(
        text.starts_with("From abuse-mailer "),
        "mbox separator first"
    );
    assert!(text.contains("\nTo: ec2-abuse@amazon.com\n"), "{text}");
    assert!(text.contains("\nFrom: \"Example Hosting abuse desk\" <abuse@example.org>\n"));
    assert!(
        text.contains("\nSubject: Abuse report: UDP 53 probes, TCP 22 probes and 2 other kinds from 4\n AWS hosts to 2 of our addresses\n"),
        "the subject names the kind, the provider, the count and the target: {text}"
    );
    assert!(text.contains("\nMessage-ID: <20260126T080000Z-aws-"));
    assert!(text.contains("\nDate: Mon, 26 Jan 2026 08:00:00 +0000\n"));
    let body = text.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    for ip in EXAMPLE_IPS {
        assert!(
            body.contains(&format!("\n  {ip} ")),
            "{ip} missing from the table"
        );
    }
    // Not EC2 (AMAZON only), not in any range, a LAN address: never reported.
    for ip in [
        "35.180.1.1",
        "52.80.174.40",
        "54.239.28.85",
        "81.2.69.143",
        "192.168.1.20",
        "203.0.113.77",
    ] {
        assert!(
            !text.contains(&format!("SRC={ip} ")) && !text.contains(&format!("\n  {ip} ")),
            "{ip}"
        );
    }
    assert!(
        body.contains("Log excerpt: the 5 seconds from 2026-01-25T23:51:25+00:00 held at least 7\npackets from these addresses:")
    );
    assert!(body.contains("SRC=34.223.47.190 DST=198.51.100.10"));
    assert!(
        body.contains("MAC=redacted"),
        "redact = [\"MAC\"] in the example"
    );
    assert!(out.stderr.contains("aws: 4 new"), "{}", out.stderr);
}

#[test]
fn example_preview_matches_the_golden_file() {
    let out = example(&["preview"]);
    let golden = repo().join("fixtures/expected/example-preview.mbox");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &out.raw_stdout).unwrap();
    }
    let expected = fs::read_to_string(&golden).unwrap();
    assert_eq!(
        out.stdout, expected,
        "set UPDATE_GOLDEN=1 to accept a deliberate change"
    );
}

#[test]
fn run_dry_run_prints_the_same_as_preview() {
    assert_eq!(
        example(&["run", "--dry-run"]).stdout,
        example(&["preview"]).stdout
    );
    assert_eq!(
        example(&["run", "--dry-run", "--json"]).stdout,
        example(&["preview", "--json"]).stdout
    );
}

#[test]
fn preview_json_matches_the_contract() {
    let v = example(&["preview", "--json"]).json();
    let top = keys_of(&v);
    assert_eq!(top, BTreeSet::from(["reports", "summary", "unattributed"]));
    let unattributed = ip_list(&v["unattributed"]);
    assert_eq!(
        unattributed,
        [
            "52.80.174.40",
            "54.239.28.85",
            "81.2.69.143",
            "192.168.1.20"
        ],
        "AWS China is left out by exclude_regions"
    );
    assert_eq!(v["unattributed"][2]["asn"], 20712);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    let keys = keys_of(r);
    assert_eq!(
        keys,
        BTreeSet::from(["provider", "to", "subject", "ips", "excerpt"])
    );
    assert_eq!(r["provider"], "aws");
    assert_eq!(r["to"], serde_json::json!(["ec2-abuse@amazon.com"]));
    assert!(
        r["subject"]
            .as_str()
            .unwrap()
            .ends_with("from 4 AWS hosts to 2 of our addresses")
    );
    let ips: Vec<&str> = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, EXAMPLE_IPS, "numeric order, IPv4 before IPv6");
    let first = &r["ips"][2];
    let keys = keys_of(first);
    assert_eq!(
        keys,
        BTreeSet::from([
            "ip",
            "hits",
            "first_seen",
            "last_seen",
            "asn",
            "as_org",
            "ports"
        ])
    );
    assert_eq!(first["ip"], "34.223.47.190");
    assert_eq!(first["hits"], 7, "the truncated line is not a hit");
    assert_eq!(first["first_seen"], "2026-01-25T23:51:25+00:00");
    assert_eq!(first["last_seen"], "2026-01-25T23:53:05+00:00");
    assert_eq!(first["ports"], serde_json::json!([53]));
    assert_eq!(first["asn"], 16509, "from the example's asn_db");
    assert_eq!(first["as_org"], "Amazon.com, Inc.");
    assert!(
        !ip_list(&r["ips"]).contains(&"35.180.1.1".to_string()),
        "an ICMP error answers our own traffic: backscatter, not an attack"
    );
    let excerpt: Vec<&str> = r["excerpt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(excerpt.len(), 7);
    assert!(
        excerpt.iter().all(|l| l.starts_with("Jan 25 23:51:2")),
        "{excerpt:?}"
    );
    assert_eq!(
        v["summary"],
        serde_json::json!({
            // The truncated line, and the prefix in sshd's message (a line with a prefix
            // that is no packet).
            "lines_read": 25, "lines_matched": 20, "lines_malformed": 2,
            "bytes_read": fs::metadata(repo().join("fixtures/logs/messages")).unwrap().len(),
            "ips_observed": 8, "ips_unattributed": 4,
            "lines_stale": 0, "lines_backscatter": 1, "lines_counted_before": 0,
            "ips_below_min_hits": 0
        })
    );
}

#[test]
fn run_writes_one_message_then_reports_only_new_ips() {
    let s = Setup::standard();
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
            drop_line("10:00:02", "81.2.69.143", "TCP", 80),
        ]
        .concat(),
    );
    let first = s.run(&["run"]).ok();
    assert!(first.stdout.contains("sent"), "{}", first.stdout);
    let outbox = s.outbox();
    assert_eq!(outbox.len(), 1);
    let history = s.run(&["history", "--json"]).ok().json();
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let keys = keys_of(row);
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "provider",
            "to",
            "subject",
            "message_id",
            "status",
            "created_at",
            "sent_at",
            "ips",
            "remote"
        ])
    );
    assert_eq!(
        row["remote"],
        serde_json::Value::Null,
        "mail has no remote side"
    );
    assert_eq!(row["status"], "sent");
    assert_eq!(
        row["ips"],
        serde_json::json!(["3.5.140.2", "34.223.47.190"])
    );
    assert_eq!(row["created_at"], NOW);
    let id = row["id"].as_str().unwrap();
    assert_eq!(
        outbox[0].file_name().unwrap().to_str().unwrap(),
        format!("{id}.eml")
    );
    let shown = s.run(&["show", id]).ok();
    assert_eq!(
        shown.raw_stdout,
        fs::read(&outbox[0]).unwrap(),
        "show prints the exact message"
    );
    let eml = String::from_utf8(shown.raw_stdout).unwrap();
    assert!(eml.contains(&format!(
        "Message-ID: {}\r\n",
        row["message_id"].as_str().unwrap()
    )));

    let second = s.run(&["run"]).ok();
    assert!(
        second.stderr.contains("nothing new to report"),
        "{}",
        second.stderr
    );
    assert_eq!(s.outbox().len(), 1, "a second run sends nothing");

    s.append(
        "messages",
        &[
            drop_line("10:05:00", "34.223.47.190", "UDP", 53),
            drop_line("10:05:01", "18.206.107.24", "TCP", 443),
            drop_line("10:05:02", "2600:1f18:4a3:6901::1", "TCP", 443),
            drop_line("10:05:03", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    assert_eq!(
        s.reported(),
        vec![
            vec!["3.5.140.2".to_string(), "34.223.47.190".to_string()],
            vec![
                "18.206.107.24".to_string(),
                "2600:1f18:4a3:6901::1".to_string()
            ],
        ],
        "the follow-up holds exactly the new IPs"
    );
    let third = fs::read_to_string(
        s.outbox()
            .into_iter()
            .find(|p| !p.ends_with(format!("{id}.eml")))
            .unwrap(),
    )
    .unwrap();
    assert!(
        third.contains(&format!(
            "In-Reply-To: {}",
            row["message_id"].as_str().unwrap()
        )),
        "one thread per provider"
    );
}

/// A run killed before SQLite folded its log into the file leaves `state.db-wal` beside it.
/// `preview` and `history` read it as it is: the file keeps its bytes and the log stays,
/// rather than the last reader to close writing the log into the file.
#[test]
fn preview_and_history_leave_a_write_ahead_log_as_they_found_it() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('left-in-the-log', 'x')",
        [],
    )
    .unwrap();
    drop(db);
    let read = || {
        (
            std::fs::read(s.path("state/state.db")).unwrap(),
            std::fs::read(s.path("state/state.db-wal")).unwrap(),
        )
    };
    let before = read();
    assert!(!before.1.is_empty(), "a log left beside the file");
    s.run(&["preview", "--json"]).ok();
    s.run(&["history"]).ok();
    assert!(read() == before, "state.db and its log as they were");
}

#[test]
fn preview_changes_nothing_in_the_state_dir() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["preview"]).ok();
    assert!(
        !s.path("state").exists(),
        "a preview before the first run creates nothing"
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "UDP", 53),
    );
    let before = snapshot(&s.path("state"));
    assert!(!before.is_empty());
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(preview["reports"][0]["ips"][0]["ip"], "34.223.47.190");
    s.run(&["run", "--dry-run"]).ok();
    assert_eq!(
        snapshot(&s.path("state")),
        before,
        "byte-identical after preview and run --dry-run"
    );
    assert_eq!(s.outbox().len(), 1);
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported().len(),
        2,
        "the previewed report is sent by the next run"
    );
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn reported_set_equals_the_seed_pipeline_on_ipv4_tcp_udp_lines() {
    let ufw = fs::read_to_string(shared_data("iptables-logs/vultr-ufw-2022/ufw.log")).unwrap();
    let log: String = ufw
        .lines()
        .filter(|l| {
            l.contains("[UFW BLOCK]") && (l.contains("PROTO=TCP") || l.contains("PROTO=UDP"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(log.lines().count() > 1000);
    let ranges = shared_data("cloud-ranges/aws-ip-ranges-2025-07-24.json");
    for (name, ranges_line) in [
        ("aws", format!("ranges = \"{}\"", ranges.display())),
        ("everything", "ranges = \"{dir}/all.txt\"".to_string()),
    ] {
        let s = Setup::new(&format!(
            r#"
state_dir = "{{dir}}/state"
timezone = "UTC"
[[source]]
path = "{{dir}}/messages"
prefixes = ["[UFW BLOCK] "]
[[provider]]
name = "{name}"
to = ["abuse@example.net"]
{ranges_line}
[report]
from = "abuse@example.org"
# The seed pipeline reports every source of every line: so does this comparison.
min_hits = 1
max_age_days = 0
backscatter = true
[mail]
transport = "file"
dir = "{{dir}}/outbox"
"#
        ));
        // Every IPv4 address, as /8s: no provider's file holds a wider prefix.
        let all: String = (0..=255).map(|a| format!("{a}.0.0.0/8\n")).collect();
        s.write("all.txt", &all);
        s.write("messages", &log);
        let seed = Command::new("bash")
            .arg("-c")
            .arg(
                "grep '\\[UFW BLOCK\\] ' messages | sed -rn 's,.* SRC=([0-9.]+).*,\\1,p' | sort -u",
            )
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        let seed: BTreeSet<IpAddr> = String::from_utf8(seed.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let table = abuse_mailer::provider::load_ranges(&s.path("all.txt"), None, &[])
            .unwrap()
            .1;
        let table = if name == "aws" {
            abuse_mailer::provider::load_ranges(&ranges, None, &[])
                .unwrap()
                .1
        } else {
            table
        };
        let expected: BTreeSet<IpAddr> = seed
            .iter()
            .copied()
            .filter(|ip| table.lookup(*ip).is_some() && abuse_mailer::select::is_reportable(*ip))
            .collect();
        let got: BTreeSet<IpAddr> = s.run(&["preview", "--json"]).ok().json()["reports"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["ip"].as_str().unwrap().parse().unwrap())
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "provider {name}");
    }
}

#[test]
fn unknown_config_key_exits_78_naming_the_key() {
    let s =
        Setup::new(&standard_config("").replace("[mail]", "[mail]\nhots = \"smtp.example.org\""));
    let out = s.run(&["preview"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("hots") && out.stderr.contains("config.toml"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "one line: {}",
        out.stderr
    );
}

#[test]
fn environment_overrides_a_key_and_a_bad_value_is_named() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let mut cmd = s.command(&["preview", "--json"]);
    cmd.env("ABUSE_MAILER__REPORT__MIN_HITS", "2");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["reports"],
        serde_json::json!([]),
        "min_hits = 2 from the environment"
    );

    let mut cmd = s.command(&["preview"]);
    cmd.env("ABUSE_MAILER__MAIL__TRANSPORT", "pigeon");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mail.transport"));
}

#[test]
fn missing_source_and_ranges_files_are_named() {
    let s = Setup::standard();
    let out = s.run(&["preview"]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr
            .contains(&format!("{}", s.path("messages").display())),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1);
    // A link to nothing, and a path through a file where a folder should be, name no file
    // either (a folder the run may not enter is another matter: see `environment`).
    std::os::unix::fs::symlink(s.path("gone"), s.path("messages")).unwrap();
    assert_eq!(s.run(&["run"]).code, 78);
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/afile/messages"));
    s.write("afile", "");
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);

    let s = Setup::new(&standard_config("").replace(
        "fixtures/ranges/aws-ip-ranges.json",
        "fixtures/ranges/nope.json",
    ));
    s.write("messages", "");
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("nope.json") && out.stderr.contains("provider aws"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1);
    assert!(
        !s.path("state").exists(),
        "nothing is written before the config checks out"
    );
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
        .args(["--config", "/nonexistent/abuse-mailer.toml", "preview"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/abuse-mailer.toml"));
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn real_and_hostile_logs_never_panic() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in ["iptables-logs/psad", "iptables-logs/edge-cases"] {
        for e in fs::read_dir(shared_data(dir)).unwrap() {
            let p = e.unwrap().path();
            if !p
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("LICENSE")
            {
                inputs.push(fs::read(p).unwrap());
            }
        }
    }
    inputs.push(fs::read(shared_data("iptables-logs/vultr-ufw-2022/kern.log")).unwrap());
    inputs.push(fs::read(shared_data("iptables-logs/vultr-ufw-2022/ufw.log.2.gz")).unwrap());
    let mut junk = Vec::new();
    let mut x = 12345u32;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        junk.push((x >> 16) as u8);
        if x.is_multiple_of(97) {
            junk.extend_from_slice(b"INPUT-DROP:IN=eth0 SRC=");
        }
        if x.is_multiple_of(89) {
            junk.extend_from_slice(b"DROP SRC=52.80.174.40 [UFW BLOCK] IN=");
        }
    }
    inputs.push(junk);
    let prefixes = ["INPUT-DROP:", "DROP", "[UFW BLOCK] ", "DENY:"];
    // Every packet counted as the plain reference reader counts it: no age limit, and
    // answers to our own traffic counted too.
    let mut s = Setup::new(
        &standard_config("max_age_days = 0\nbackscatter = true").replace(
            "path = \"{dir}/messages\"",
            "path = \"{dir}/messages\"\nprefixes = [\"INPUT-DROP:\", \"DROP\", \"[UFW BLOCK] \", \"DENY:\"]",
        ),
    );
    s.now = common::reference::NOW.to_string();
    let read = common::reference::ReadSetup {
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        buffer: 1 << 20,
        since: None,
        answers_are_hits: true,
    };
    // Each input a log of its own, as a rotation gives: one written over another in place,
    // with the same first line, is the earlier log cut back and written on, whose packets
    // counted before are not counted again.
    for input in inputs {
        let _ = fs::remove_file(s.path("messages"));
        fs::write(s.path("messages"), &input).unwrap();
        let out = s.run(&["preview", "--json"]).ok();
        let summary = &out.json()["summary"];
        let (want, observed, _) = common::reference::reference(&input, &read);
        for (key, value) in [
            ("lines_read", want.lines_read),
            ("bytes_read", want.bytes_read),
            ("lines_matched", want.lines_matched),
            ("lines_malformed", want.lines_malformed),
            ("ips_observed", observed.len() as u64),
        ] {
            assert_eq!(summary[key], value, "{key}: {summary}");
        }
        s.run(&["run"]).ok();
    }
}

#[test]
fn a_run_with_nothing_new_writes_nothing() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let before = snapshot(&s.path("state"));
    let mtime = fs::metadata(s.path("state/state.db"))
        .unwrap()
        .modified()
        .unwrap();
    s.run(&["run"]).ok();
    assert_eq!(snapshot(&s.path("state")), before);
    assert_eq!(
        fs::metadata(s.path("state/state.db"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "not even rewritten"
    );
}

#[test]
fn the_example_shows_a_report_on_any_day() {
    // README's first command runs on the real clock, months after the bundled log's date.
    for now in ["2026-11-25T12:00:00Z", "2031-06-01T00:00:00Z"] {
        let out = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
            .current_dir(repo())
            .args(["--config", "config/example.toml", "preview", "--json"])
            .env("ABUSE_MAILER_NOW", now)
            .output()
            .unwrap();
        let v = Ran::from(out).ok().json();
        assert_eq!(
            ip_list(&v["reports"][0]["ips"]).len(),
            4,
            "at {now}: {}",
            v["summary"]
        );
    }
}

/// What the state keeps of each address seen is small: 30,000 sources, a fifth of them IPv6,
/// each with three packets to two ports, a fifth in a provider's ranges (as in the
/// benchmark's many-sources log), none reported yet, take at most 300 bytes an address in
/// `state.db`. (A source in a provider also keeps its first three lines as evidence until it
/// is reported: about 700 bytes more.)
#[test]
fn the_state_keeps_at_most_300_bytes_an_address_seen() {
    use std::io::Write;
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 1000"));
    let sources: Vec<String> = (0..30_000u32)
        .map(|n| match n % 5 {
            0 => format!("2001:db8:{:x}:{:x}::1", n >> 8, n & 0xff),
            1 => format!("34.{}.{}.{}", 208 + (n >> 16), (n >> 8) & 0xff, n & 0xff),
            _ => format!("81.{}.{}.{}", 2 + (n >> 16), (n >> 8) & 0xff, n & 0xff),
        })
        .collect();
    let mut log = std::io::BufWriter::new(fs::File::create(s.path("messages")).unwrap());
    for packet in 0..3u16 {
        for (n, ip) in sources.iter().enumerate() {
            let t = n as u64 + u64::from(packet) * 30_000;
            let time = format!("{:02}:{:02}:{:02}", 10 + t / 3600 % 12, t / 60 % 60, t % 60);
            log.write_all(
                drop_line(&time, ip, "TCP", [22, 443][usize::from(packet) % 2]).as_bytes(),
            )
            .unwrap();
        }
    }
    drop(log);
    let ran = s.run_bounded(&["run", "--json"]).ok();
    assert_eq!(
        ran.json()["summary"]["ips_observed"],
        30_000,
        "{}",
        ran.stderr
    );
    assert!(history(&s).is_empty(), "nothing reaches min_hits");
    let bytes = fs::metadata(s.path("state/state.db")).unwrap().len();
    assert!(
        bytes <= 300 * 30_000,
        "{bytes} bytes: {} an address",
        bytes / 30_000
    );
}

/// A misspelt region in `exclude_regions` (`cn-north1`) matched no range: AWS China went in
/// the report to AWS's desk, and `check` said all was well. `check` and `preview` refuse it
/// (78), naming the setting, the name and the region of the file nearest to it; a name far
/// from all of them is a region left out beforehand, which `check` says excludes nothing.
#[test]
fn a_misspelt_region_is_refused_not_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo();
    let config = fs::read_to_string(repo.join("config/example.toml"))
        .unwrap()
        .replace("\"../target/", &format!("\"{}/", dir.path().display()))
        .replace("\"../", &format!("\"{}/", repo.display()))
        .replace("\"cn-north-1\"", "\"cn-north1\"");
    let path = dir.path().join("config.toml");
    fs::write(&path, config).unwrap();
    for command in ["check", "preview"] {
        let out = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
            .args(["--config", path.to_str().unwrap(), command])
            .env("ABUSE_MAILER_NOW", NOW)
            .output()
            .unwrap();
        let ran = Ran::from(out);
        assert_eq!(ran.code, 78, "{command}: {}{}", ran.stdout, ran.stderr);
        let said = format!("{}{}", ran.stdout, ran.stderr);
        assert!(
            said.contains(
                "exclude_regions: \"cn-north1\" is no region of this file (the nearest it names is \"cn-north-1\")"
            ),
            "{command}: {said}"
        );
        assert!(!said.contains("52.80.174.40"), "{command}: {said}");
    }
    // A region left out beforehand, far from every name of the file (Azure China is not in
    // Azure's public file): it excludes nothing, which `check` says; runs go on.
    let config = fs::read_to_string(&path)
        .unwrap()
        .replace("\"cn-north1\"", "\"cn-north-1\", \"chinaeast2\"");
    fs::write(&path, config).unwrap();
    let run = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
            .args(["--config", path.to_str().unwrap(), command])
            .env("ABUSE_MAILER_NOW", NOW)
            .output()
            .unwrap()
    };
    let check = Ran::from(run("check")).ok();
    assert!(
        check.stdout.contains(
            "warning ranges     aws: exclude_regions: \"chinaeast2\" is no region of its range file, and excludes nothing"
        ),
        "{}",
        check.stdout
    );
    Ran::from(run("preview")).ok();
}
