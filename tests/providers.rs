//! Providers, enrichment and what a report says: every published range format, several
//! providers in one run, matching and annotating by ASN, split and repeated reports, and the
//! `firewall` rules checked by the real netfilter tools.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use abuse_mailer::config::RangeFormat;
use abuse_mailer::provider::load_ranges;
use common::*;
use ipnet::IpNet;

fn ips_of(report: &serde_json::Value) -> Vec<String> {
    ip_list(&report["ips"])
}

/// The distinct prefixes a range file lists, counted without the code under test.
fn distinct_prefixes(file: &str) -> usize {
    let text = fs::read_to_string(shared_data(file)).unwrap();
    let mut set = BTreeSet::new();
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut walk = vec![&v];
        while let Some(node) = walk.pop() {
            match node {
                serde_json::Value::Object(map) => {
                    for (k, val) in map {
                        match (k.as_str(), val) {
                            (
                                "ip_prefix" | "ipv6_prefix" | "ipv4Prefix" | "ipv6Prefix" | "cidr",
                                serde_json::Value::String(p),
                            ) => {
                                set.insert(p.parse::<IpNet>().unwrap().trunc());
                            }
                            ("addressPrefixes", serde_json::Value::Array(list)) => {
                                set.extend(list.iter().map(|p| {
                                    p.as_str().unwrap().parse::<IpNet>().unwrap().trunc()
                                }));
                            }
                            _ => walk.push(val),
                        }
                    }
                }
                serde_json::Value::Array(list) => walk.extend(list),
                _ => {}
            }
        }
    } else {
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            set.insert(
                line.split(',')
                    .next()
                    .unwrap()
                    .trim()
                    .parse::<IpNet>()
                    .unwrap()
                    .trunc(),
            );
        }
    }
    set.len()
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn every_published_range_format_parses_with_its_metadata() {
    let cases: [(&str, RangeFormat, &str, &str, &[&str]); 6] = [
        (
            "cloud-ranges/aws-ip-ranges-2025-07-24.json",
            RangeFormat::Aws,
            "34.223.47.190",
            "us-west-2",
            &["ROUTE53_RESOLVER"],
        ),
        (
            "cloud-ranges/gcp-cloud-2025-07-24.json",
            RangeFormat::Gcp,
            "34.35.0.1",
            "africa-south1",
            &["Google Cloud"],
        ),
        (
            "cloud-ranges/azure-servicetags-public-2025-07-22.json",
            RangeFormat::Azure,
            "20.42.0.10",
            "eastus",
            &["AzureCloud.eastus"],
        ),
        (
            "cloud-ranges/oracle-cloud-ip-ranges-2025-07.json",
            RangeFormat::Oracle,
            "129.80.0.1",
            "us-ashburn-1",
            &["OCI"],
        ),
        (
            "cloud-ranges/digitalocean-geofeed-2025-07.csv",
            RangeFormat::Geofeed,
            "5.101.96.1",
            "Amsterdam, NL-NH, NL",
            &[],
        ),
        (
            "cloud-ranges/linode-geofeed-2025-07.txt",
            RangeFormat::Geofeed,
            "2600:3c00::1",
            "Richardson, US-TX, US",
            &[],
        ),
    ];
    for (file, format, ip, region, services) in cases {
        let (detected, table) = load_ranges(&shared_data(file), None, &[]).unwrap();
        assert_eq!(detected, format, "{file}");
        assert_eq!(table.len(), distinct_prefixes(file), "{file}");
        let hit = table
            .lookup(ip.parse().unwrap())
            .unwrap_or_else(|| panic!("{ip} in {file}"));
        assert_eq!(hit.region.as_deref(), Some(region), "{file}");
        for s in services {
            assert!(
                hit.services.iter().any(|x| x == s),
                "{file}: {:?}",
                hit.services
            );
        }
    }
    // The services filter: EC2's range, not the more specific resolver range.
    let aws = shared_data("cloud-ranges/aws-ip-ranges-2025-07-24.json");
    let (_, ec2) = load_ranges(&aws, None, &["EC2".to_string()]).unwrap();
    let hit = ec2.lookup("34.223.47.190".parse().unwrap()).unwrap();
    assert_eq!(hit.prefix, "34.208.0.0/12".parse::<IpNet>().unwrap());
    assert_eq!(hit.network_border_group.as_deref(), Some("us-west-2"));
    let china = ec2.lookup("52.80.174.40".parse().unwrap()).unwrap();
    assert_eq!(china.region.as_deref(), Some("cn-north-1"));
}

fn example_with(extra: &str) -> Setup {
    Setup::new(
        &standard_config("")
            .replace("{dir}/messages", "{repo}/fixtures/logs/messages")
            .replace("[mail]", &format!("{extra}\n[mail]")),
    )
}

#[test]
fn two_providers_on_one_log_get_disjoint_reports() {
    let s = example_with("").clone_with_provider(
        "other",
        "abuse@other.example",
        "{repo}/fixtures/ranges/other-cloud.txt",
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["provider"], "aws");
    assert_eq!(reports[1]["provider"], "other");
    assert_eq!(reports[1]["to"], serde_json::json!(["abuse@other.example"]));
    assert_eq!(ips_of(&reports[1]), vec!["81.2.69.143".to_string()]);
    let a: BTreeSet<String> = ips_of(&reports[0]).into_iter().collect();
    let b: BTreeSet<String> = ips_of(&reports[1]).into_iter().collect();
    assert!(a.is_disjoint(&b));
    let unattributed = ip_list(&v["unattributed"]);
    assert_eq!(unattributed, ["54.239.28.85", "192.168.1.20"]);
    assert_eq!(v["summary"]["ips_unattributed"], 2);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
}

impl Setup {
    /// This setup's config with one more provider.
    fn clone_with_provider(self, name: &str, to: &str, ranges: &str) -> Setup {
        let path = self.path("config.toml");
        let text = fs::read_to_string(&path).unwrap().replace(
            "[report]",
            &format!("[[provider]]\nname = \"{name}\"\nto = [\"{to}\"]\nranges = \"{ranges}\"\n\n[report]"),
        );
        let text = text.replace("{repo}", repo().to_str().unwrap());
        fs::write(&path, text).unwrap();
        self
    }
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn asn_enrichment_from_the_real_world_database() {
    let db = shared_data("asn-realworld/ip-location-db-asn-20260617.mmdb");
    let s = example_with(&format!("[enrich]\nasn_db = \"{}\"", db.display()));
    let v = s.run(&["preview", "--json"]).ok().json();
    let ips = v["reports"][0]["ips"].as_array().unwrap();
    let by_ip = |ip: &str| ips.iter().find(|i| i["ip"] == ip).unwrap().clone();
    assert_eq!(by_ip("34.223.47.190")["asn"], 16509);
    assert_eq!(by_ip("34.223.47.190")["as_org"], "Amazon.com, Inc.");
    // AWS China: in the provider's ranges, announced by another AS; both facts are shown.
    assert_eq!(by_ip("52.80.174.40")["asn"], 55960);
    assert_eq!(by_ip("2600:1f18:4a3:6901::1")["asn"], 14618);
    s.run(&["run"]).ok();
    let eml = fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(
        eml.contains("2026-01-25T23:51:29+00:00  AS55960\r\n"),
        "the table shows the AS (the region is in the CSV: the body keeps to 78 columns)"
    );
    assert!(
        eml.contains(",55960,Beijing Guanghuan Xinwang Digital,52.80.0.0/16,cn-north-1,EC2"),
        "and the CSV"
    );
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn no_record_in_the_maxmind_test_database_is_null_not_an_error() {
    let db = shared_data("maxmind-test/GeoLite2-ASN-Test.mmdb");
    let s = example_with(&format!("[enrich]\nasn_db = \"{}\"", db.display())).clone_with_provider(
        "other",
        "abuse@other.example",
        "{repo}/fixtures/ranges/other-cloud.txt",
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    let other = &v["reports"][1]["ips"][0];
    assert_eq!(other["ip"], "81.2.69.143");
    assert!(other["asn"].is_null() && other["as_org"].is_null());
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn broken_or_wrong_asn_databases_are_named() {
    for (file, code) in [
        ("maxmind-test/GeoLite2-City-Test.mmdb", 78),
        (
            "maxmind-test/bad-data/libmaxminddb-corrupt-search-tree.mmdb",
            78,
        ),
        ("SOURCES.md", 78),
    ] {
        let s = example_with(&format!(
            "[enrich]\nasn_db = \"{}\"",
            shared_data(file).display()
        ));
        let out = s.run(&["preview"]);
        assert_eq!(out.code, code, "{file}: {}", out.stderr);
        assert!(
            out.stderr.contains(file.rsplit('/').next().unwrap()),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"));
    }
    for file in [
        "maxmind-test/bad-data/cyclic-data-structure.mmdb",
        "maxmind-test/bad-data/invalid-data-record-offset.mmdb",
    ] {
        let s = example_with(&format!(
            "[enrich]\nasn_db = \"{}\"",
            shared_data(file).display()
        ));
        let out = s.run(&["preview", "--json"]);
        assert!(out.code == 0 || out.code == 78, "{file}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{file}: {}", out.stderr);
    }
}

/// The standard configuration with its provider matched by AS16509 alone, through the
/// example's ASN database.
fn matched_by_as16509() -> String {
    standard_config("")
        .replace(
            "ranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]",
            "asns = [16509]",
        )
        .replace(
            "[mail]",
            "[enrich]\nasn_db = \"{repo}/fixtures/asn/example-asn.mmdb\"\n[mail]",
        )
}

#[test]
fn provider_matched_by_asn_alone() {
    let s = Setup::new(
        &matched_by_as16509().replace("{dir}/messages", "{repo}/fixtures/logs/messages"),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        ips_of(&v["reports"][0]),
        ["3.5.140.2", "34.223.47.190", "54.239.28.85"],
        "every AS16509 address, and no other (35.180.1.1 sent only an ICMP error: backscatter)"
    );
    // `check` tells what the provider is known by (it named an empty file in a format).
    let out = s.run(&["check"]).ok();
    let ranges = (out.stdout.lines())
        .find(|l| l.contains(" ranges "))
        .unwrap();
    assert!(
        ranges.ends_with("aws: no range file; the addresses AS 16509 announce"),
        "{}",
        out.stdout
    );
    let bad = Setup::new(&standard_config("").replace("services = [\"EC2\"]", "asns = [16509]"));
    let out = bad.run(&["preview"]);
    assert_eq!(out.code, 78);
    assert!(out.stderr.contains("asn_db"), "{}", out.stderr);
}

/// A damaged ASN database opens (its metadata is at the end): lookups then fail, and a
/// provider matched by `asns` had every address taken for no one's, with exit 0 and no
/// word, while `check` said ok. Damage at the top of the search tree is found when the file is
/// opened; damage only some addresses meet, when they are looked up: the run stops (78)
/// keeping nothing it read, and reports them once the file is replaced.
#[test]
fn a_damaged_asn_database_stops_the_run_rather_than_lose_its_providers_addresses() {
    let config =
        matched_by_as16509().replace("{repo}/fixtures/asn/example-asn.mmdb", "{dir}/asn.mmdb");
    let s = Setup::new(&config);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let intact = std::fs::read(repo().join("fixtures/asn/example-asn.mmdb")).unwrap();
    // The top of the search tree overwritten: no lookup works.
    let mut top = intact.clone();
    top[..64].fill(0xff);
    std::fs::write(s.path("asn.mmdb"), &top).unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("is damaged"), "{}", out.stderr);
    // Amazon's record alone broken: the addresses probed at opening are no one's, and the
    // attacker's lookup is the one that fails.
    std::fs::write(s.path("asn.mmdb"), amazon_record_broken(&intact)).unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("is damaged") && out.stderr.contains("3.5.140.2"),
        "{}",
        out.stderr
    );
    assert!(s.outbox().is_empty());
    // `check` reads every record (a warning: the full check is stricter than the format).
    let check = s.run(&["check"]);
    assert!(
        (check.stdout.lines()).any(|l| l.starts_with("warning asn_db") && l.contains("is damaged")),
        "{}",
        check.stdout
    );
    // Mended: the address read before is read again and reported.
    std::fs::write(s.path("asn.mmdb"), &intact).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
}

/// The example ASN database with Amazon's record broken: its organisation's string is
/// marked with a type no reader knows.
fn amazon_record_broken(intact: &[u8]) -> Vec<u8> {
    let mut record = intact.to_vec();
    let at = (record.windows(16))
        .position(|w| w == b"Amazon.com, Inc.")
        .unwrap();
    record[at - 1] = 0;
    record
}

/// The damage met only when reports are planned: an address read by an earlier run and left
/// for a later one (the run's budget) is looked up again then, with nothing new read, while
/// the reports waiting hold addresses of a record that is whole. It was taken for no
/// provider's and never reported, with exit 0; the run stops (78) before any report is made,
/// and the address goes out once the file is replaced.
#[test]
fn asn_damage_met_when_reports_are_planned_stops_the_run() {
    let config = matched_by_as16509()
        .replace("asns = [16509]", "asns = [16509, 20712]")
        .replace("{repo}/fixtures/asn/example-asn.mmdb", "{dir}/asn.mmdb")
        .replace("min_hits = 1", "min_hits = 1\nmax_ips_per_message = 1")
        .replace("[mail]", "[mail]\nmax_messages_per_run = 1");
    let s = Setup::new(&config);
    let intact = std::fs::read(repo().join("fixtures/asn/example-asn.mmdb")).unwrap();
    std::fs::write(s.path("asn.mmdb"), &intact).unwrap();
    // Four of AS20712 first, then one of Amazon's, which the run's four parts leave waiting.
    let ips = [
        "81.2.64.1",
        "81.2.64.2",
        "81.2.64.3",
        "81.2.64.4",
        "3.5.140.2",
    ];
    let log: String = (ips.iter().enumerate())
        .map(|(k, ip)| drop_line(&format!("10:00:0{k}"), ip, "TCP", 22))
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    assert!(!s.reported().concat().contains(&"3.5.140.2".to_string()));
    std::fs::write(s.path("asn.mmdb"), amazon_record_broken(&intact)).unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("3.5.140.2"), "{}", out.stderr);
    std::fs::write(s.path("asn.mmdb"), &intact).unwrap();
    // The budget lets the waiting parts out one a run; the address is made once there is room.
    let mut last = s.run(&["run"]);
    for _ in 0..3 {
        assert_eq!(last.code, 0, "{}", last.stderr);
        last = s.run(&["run"]);
    }
    assert!(
        s.reported().concat().contains(&"3.5.140.2".to_string()),
        "{}",
        last.stderr
    );
}

/// IPv4's old `::a.b.c.d` form and a 6to4 address carry an IPv4 address an ASN database
/// answers for: neither is an AS16509 host to report, and both are listed in no provider,
/// not lost between the two.
#[test]
fn an_ipv4_address_inside_an_ipv6_one_is_no_providers_by_asn() {
    let s = Setup::new(&matched_by_as16509());
    let ipv6_line = |src: &str| {
        drop_line("23:50:10", src, "TCP", 22)
            .replace("08:00 SRC", "86:dd SRC")
            .replace(
                "DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321",
                "DST=2001:db8:10::10 LEN=60 TC=0 HOPLIMIT=52 FLOWLBL=0",
            )
    };
    let log = [
        drop_line("23:50:10", "3.5.140.2", "TCP", 22),
        ipv6_line("::3.5.140.2"),
        ipv6_line("2002:305:8c02::1"),
    ]
    .concat();
    s.write("messages", &log);
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ips_of(&v["reports"][0]), ["3.5.140.2"], "{v}");
    let listed = ip_list(&v["unattributed"]);
    assert!(
        listed.contains(&"::305:8c02".to_string())
            && listed.contains(&"2002:305:8c02::1".to_string()),
        "{listed:?}"
    );
    assert_eq!(v["summary"]["ips_observed"], 3, "{v}");
    assert_eq!(v["summary"]["ips_unattributed"], 2, "{v}");
}

#[test]
fn other_services_are_not_the_providers_even_by_asn() {
    let s = Setup::new(
        &standard_config("")
            .replace("{dir}/messages", "{repo}/fixtures/logs/messages")
            .replace(
                "services = [\"EC2\"]",
                "services = [\"EC2\"]\nasns = [16509]",
            )
            .replace(
                "[mail]",
                "[enrich]\nasn_db = \"{repo}/fixtures/asn/example-asn.mmdb\"\n[mail]",
            ),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    let reported = ips_of(&v["reports"][0]);
    assert!(
        reported.contains(&"34.223.47.190".to_string())
            && !reported.contains(&"54.239.28.85".to_string()),
        "54.239.28.85 is AS16509, but the file lists its prefix for AMAZON alone, not EC2: {reported:?}"
    );
    assert!(ip_list(&v["unattributed"]).contains(&"54.239.28.85".to_string()));
}

/// Runs `s` once with `max_ips_per_message = max`; the `aws` rows of its history.
fn run_in_parts(s: &Setup, max: usize) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(s.path("config.toml")).unwrap().replace(
        "[report]\n",
        &format!("[report]\nmax_ips_per_message = {max}\n"),
    );
    fs::write(s.path("config.toml"), text).unwrap();
    s.run(&["run"]).ok();
    let history = s
        .run(&["history", "--json", "--provider", "aws"])
        .ok()
        .json();
    history.as_array().unwrap().clone()
}

#[test]
fn a_large_delta_is_split_into_numbered_parts_of_one_thread() {
    let s = example_with("").clone_with_provider(
        "x",
        "x@example.net",
        "{repo}/fixtures/ranges/other-cloud.txt",
    );
    let rows = run_in_parts(&s, 4);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["ips"].as_array().unwrap().len() + rows[1]["ips"].as_array().unwrap().len(),
        5
    );
    assert!(
        rows[0]["subject"]
            .as_str()
            .unwrap()
            .ends_with("(part 1 of 2)")
    );
    assert!(
        rows[1]["subject"]
            .as_str()
            .unwrap()
            .ends_with("(part 2 of 2)")
    );
    let second = s
        .run(&["show", rows[1]["id"].as_str().unwrap()])
        .ok()
        .stdout;
    assert!(second.contains(&format!(
        "In-Reply-To: {}",
        rows[0]["message_id"].as_str().unwrap()
    )));
}

/// A report takes whole records from the state and from what was read now alike: a report
/// of 1,400 addresses, half of them stored by an earlier run (no marker after `min_hits`
/// changed) and half read now, their addresses interleaved, lists each once, in address
/// order, with its ports, and as one thread does.
#[test]
fn whole_records_from_the_state_and_from_the_read_keep_address_order_and_their_ports() {
    let config = |min_hits: u32| {
        standard_config("").replace("min_hits = 1", &format!("min_hits = {min_hits}"))
    };
    let mut s = Setup::new(&config(3));
    let line = |n: u32, port: u16| {
        let ip = format!("34.208.{}.{}", n / 200, n % 200 + 1);
        drop_line(
            &format!("10:{:02}:{:02}", n / 60 % 60, n % 60),
            &ip,
            "TCP",
            port,
        )
    };
    // Even numbers first, below `min_hits`: stored, not reported.
    let stored: String = (0..1400).step_by(2).map(|n| line(n, 22)).collect();
    s.write("messages", &stored);
    s.run_bounded(&["run"]).ok();
    assert!(history(&s).is_empty());
    // Odd numbers now, with another port; `min_hits = 1` leaves no marker to go by, so the
    // stored addresses are looked at again.
    s.reconfigure(&config(1));
    let read_now: String = (1..1400).step_by(2).map(|n| line(n, 443)).collect();
    s.append("messages", &read_now);
    let threaded = s.run_bounded(&["preview", "--json"]).ok();
    let v = threaded.json();
    let reports = v["reports"].as_array().unwrap();
    let ips: Vec<&serde_json::Value> = reports
        .iter()
        .flat_map(|r| r["ips"].as_array().unwrap())
        .collect();
    let want: Vec<String> = (0..1400)
        .map(|n| format!("34.208.{}.{}", n / 200, n % 200 + 1))
        .collect();
    let mut sorted = want.clone();
    sorted.sort_by_key(|ip| ip.parse::<std::net::Ipv4Addr>().unwrap());
    let got: Vec<String> = ips
        .iter()
        .map(|i| i["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, sorted, "addresses out of order, lost or twice");
    for ip in &ips {
        let n = want
            .iter()
            .position(|w| w == ip["ip"].as_str().unwrap())
            .unwrap();
        let port = if n % 2 == 0 { 22 } else { 443 };
        assert_eq!(ip["ports"], serde_json::json!([port]), "{ip}");
        assert_eq!(ip["hits"], 1, "{ip}");
    }
    s.preview_alone_as(&threaded);
}

/// Parts are made a few at a time, side by side: however many there are, and however they
/// fall into batches, each is numbered in address order and every later one replies to the
/// first.
#[test]
fn parts_made_side_by_side_are_numbered_in_order_and_all_reply_to_the_first() {
    let s = example_with("");
    let mut rows = run_in_parts(&s, 1);
    let n = rows.len();
    assert!(n >= 5, "one part per address: {n}");
    let part = |row: &serde_json::Value| {
        let subject = row["subject"].as_str().unwrap().to_string();
        (1..=n)
            .find(|k| subject.ends_with(&format!("(part {k} of {n})")))
            .unwrap_or_else(|| panic!("not numbered of {n}: {subject}"))
    };
    rows.sort_by_key(part);
    let first_id = rows[0]["message_id"].as_str().unwrap().to_string();
    let mut ips = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(part(row), k + 1);
        let message = s.run(&["show", row["id"].as_str().unwrap()]).ok().stdout;
        if k == 0 {
            assert!(!message.contains("In-Reply-To:"), "{message}");
        } else {
            assert!(
                message.contains(&format!("In-Reply-To: {first_id}")),
                "part {} does not reply to the first:\n{message}",
                k + 1
            );
        }
        ips.extend(
            string_list(&row["ips"])
                .into_iter()
                .map(|ip| ip.parse::<std::net::IpAddr>().unwrap()),
        );
    }
    let mut sorted = ips.clone();
    sorted.sort();
    assert_eq!(ips, sorted, "parts in address order");
}

/// A later run's parts, made side by side a few at a time, reply to the provider's first
/// report, every one of them, the first part too: the thread is the earlier run's.
#[test]
fn parts_of_a_later_run_made_side_by_side_all_reply_to_the_first_report() {
    let s = Setup::new(&standard_config("max_ips_per_message = 1"));
    s.write("messages", &drop_line("10:00:00", "34.208.0.1", "TCP", 22));
    s.run(&["run"]).ok();
    let root = history(&s)[0]["message_id"].as_str().unwrap().to_string();
    let mut later = String::new();
    for k in (2..=8).rev() {
        later.push_str(&drop_line("11:00:00", &format!("34.208.0.{k}"), "TCP", 22));
    }
    s.append("messages", &later);
    s.run(&["run"]).ok();
    let rows: Vec<_> = (history(&s).into_iter())
        .filter(|r| r["message_id"] != root.as_str())
        .collect();
    assert_eq!(rows.len(), 7);
    for row in rows {
        let subject = row["subject"].as_str().unwrap();
        let ip = string_list(&row["ips"])[0].clone();
        // Parts are numbered in address order: 34.208.0.2 is the first.
        let k: u32 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(
            subject.ends_with(&format!("(part {} of 7)", k - 1)),
            "{ip}: {subject}"
        );
        let message = s.run(&["show", row["id"].as_str().unwrap()]).ok().stdout;
        assert!(
            message.contains(&format!("In-Reply-To: {root}")),
            "{ip} does not reply to the first report:\n{message}"
        );
    }
}

#[test]
fn rereport_after_days_brings_back_attackers_still_at_it() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 30"));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    // Forty days later one of them is back; the other is not.
    s.now = "2026-03-07T08:00:00Z".into();
    s.append(
        "messages",
        &drop_line("10:00:02", "3.5.140.2", "TCP", 22).replace("Jan 25", "Mar  7"),
    );
    s.run(&["run"]).ok();
    let reports = s.reported();
    assert_eq!(
        reports,
        vec![
            vec!["3.5.140.2".to_string(), "34.223.47.190".to_string()],
            vec!["3.5.140.2".to_string()]
        ]
    );
    let second = latest_mail(&s);
    // What came since the first report, not the totals that hold what the desk was told.
    assert!(
        second.contains("reported to you on 2026-01-26T08:00:00+00:00 with 1 packet; 1 since")
            && second.contains("Repeat:"),
        "{second}"
    );
    // Without rereport_after_days an IP is never reported twice.
    let mut once = Setup::standard();
    once.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    once.run(&["run"]).ok();
    once.now = "2026-03-07T08:00:00Z".into();
    once.append(
        "messages",
        &drop_line("10:00:02", "3.5.140.2", "TCP", 22).replace("Jan 25", "Mar  7"),
    );
    once.run(&["run"]).ok();
    assert_eq!(once.reported().len(), 1);
}

/// Every address the rules block, as aggregated networks, from the rule text.
fn networks_in(text: &str) -> BTreeSet<IpNet> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|w| w.parse::<IpNet>().ok())
        .collect()
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn firewall_rules_cover_exactly_the_aggregated_ranges_and_load() {
    let aws = shared_data("cloud-ranges/aws-ip-ranges-2025-07-24.json");
    let s = Setup::new(&standard_config("").replace(
        "{repo}/fixtures/ranges/aws-ip-ranges.json",
        aws.to_str().unwrap(),
    ));
    let (_, table) = load_ranges(&aws, None, &["EC2".to_string()]).unwrap();
    let all: Vec<IpNet> = table.infos().iter().map(|i| i.prefix).collect();
    let aggregated: BTreeSet<IpNet> = IpNet::aggregate(&all).into_iter().collect();
    let v4: BTreeSet<IpNet> = aggregated
        .iter()
        .filter(|n| matches!(n, IpNet::V4(_)))
        .copied()
        .collect();
    assert!(
        aggregated.len() < all.len(),
        "aggregation merges adjacent ranges"
    );

    let nft = s
        .run(&["firewall", "--provider", "aws", "--format", "nft"])
        .ok()
        .stdout;
    assert_eq!(networks_in(&nft), aggregated);
    assert!(nft.contains("log prefix \"INPUT-DROP:\""));
    let ipt = s
        .run(&[
            "firewall",
            "--provider",
            "aws",
            "--format",
            "iptables",
            "--ports",
            "80,443",
        ])
        .ok()
        .stdout;
    assert_eq!(networks_in(&ipt), v4, "iptables covers the IPv4 ranges");
    let ip6t = s
        .run(&["firewall", "--provider", "aws", "--format", "ip6tables"])
        .ok()
        .stdout;
    let v6: BTreeSet<IpNet> = aggregated.difference(&v4).copied().collect();
    assert!(!v6.is_empty());
    assert_eq!(networks_in(&ip6t), v6, "ip6tables covers the IPv6 ranges");
    assert!(
        ipt.contains("--format ip6tables"),
        "iptables output points to the IPv6 rules"
    );
    assert!(ipt.contains("--dports 80,443") && ipt.contains("--log-prefix \"INPUT-DROP:\""));
    let ipset = s
        .run(&["firewall", "--provider", "aws", "--format", "ipset"])
        .ok()
        .stdout;
    assert_eq!(networks_in(&ipset), aggregated);
    let bad = s.run(&["firewall", "--provider", "aws", "--ports", "80,http"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("http"));

    // The real tools accept them (installed by .ci/run; skipped where absent).
    let check = |tool_name: &str, args: &[&str], text: &str| {
        if !tool(tool_name, &["--version"]) {
            return;
        }
        let file = s.path("rules");
        fs::write(&file, text).unwrap();
        let out = Command::new(tool_name)
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    check("nft", &["-c", "-f"], &nft);
    for (restore, rules) in [("iptables-restore", &ipt), ("ip6tables-restore", &ip6t)] {
        if !tool(restore, &["--version"]) {
            continue;
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{restore} --test < \"$0\""))
            .arg({
                fs::write(s.path("rules"), rules).unwrap();
                s.path("rules")
            })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{restore}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn xarf_mode_sends_one_valid_xarf_report_per_ip_in_one_thread() {
    use base64::Engine as _;
    use mail_parser::{MessageParser, MimeHeaders};
    use sha2::Digest;
    let s = example_with("").clone_with_provider("x", "x@example.net", "/dev/null");
    let text = fs::read_to_string(s.path("config.toml"))
        .unwrap()
        // backscatter = true: the ICMP error's sender is reported too, without a source port.
        .replace(
            "[report]\n",
            "[report]\nxarf = true\nbackscatter = true\nreply_to = \"replies@example.org\"\n",
        )
        .replace(
            "[[provider]]\nname = \"x\"\nto = [\"x@example.net\"]\nranges = \"/dev/null\"\n\n",
            "",
        );
    fs::write(s.path("config.toml"), text).unwrap();
    s.run(&["run"]).ok();
    let history = s.run(&["history", "--json"]).ok().json();
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 6, "one report per IP");
    let root = rows[0]["message_id"].as_str().unwrap().to_string();
    let mut validated = 0;
    for row in rows {
        let ip = row["ips"][0].as_str().unwrap();
        let raw = s
            .run(&["show", row["id"].as_str().unwrap()])
            .ok()
            .raw_stdout;
        let msg = MessageParser::default().parse(&raw).unwrap();
        if row["message_id"] != root.as_str() {
            assert!(
                String::from_utf8_lossy(&raw).contains(&format!("In-Reply-To: {root}")),
                "one thread"
            );
        }
        let Some(json) = msg
            .attachments()
            .find(|a| a.attachment_name() == Some("xarf.json"))
        else {
            assert_eq!(
                ip, "35.180.1.1",
                "only the ICMP-only source (no source port) goes without XARF"
            );
            continue;
        };
        let raw_text = String::from_utf8_lossy(&raw);
        assert!(raw_text.contains("Content-Type: multipart/report; report-type=feedback-report;"));
        assert!(raw_text.contains("Content-Type: message/feedback-report\r\n"));
        assert!(raw_text.contains("Feedback-Type: xarf\r\n"));
        let document = json.text_contents().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&document).unwrap();
        assert_eq!(v["xarf_version"], "4.0.0");
        assert_eq!(v["source_identifier"], ip);
        assert_eq!(v["category"], "connection");
        assert_eq!(v["reporter"]["domain"], "example.org");
        // Replies reach the reporter where the message says they do.
        assert_eq!(v["reporter"]["contact"], "replies@example.org");
        assert_eq!(v["sender"]["contact"], "abuse@example.org");
        assert!(v["source_port"].as_u64().unwrap() > 0);
        let evidence = &v["evidence"][0];
        let payload = base64::engine::general_purpose::STANDARD
            .decode(evidence["payload"].as_str().unwrap())
            .unwrap();
        let log = String::from_utf8(payload.clone()).unwrap();
        assert!(
            !log.is_empty() && log.lines().all(|l| l.contains(&format!("SRC={ip} "))),
            "{log}"
        );
        assert_eq!(
            evidence["hash"],
            format!("sha256:{:x}", sha2::Sha256::digest(&payload))
        );
        match xarf_errors(&document) {
            Some(errors) => {
                assert!(errors.is_empty(), "{ip}: {errors:?}\n{document}");
                validated += 1;
            }
            None => assert!(
                std::env::var_os("CI").is_none(),
                "CI must install PyPI's xarf to validate"
            ),
        }
    }
    eprintln!("{validated} XARF documents validated against the v4 schema");
}

/// XARF tells what it has words for: a UDP-Lite source as UDP (it said `icmp`, beside the
/// source's ports), and a source seen only to port 0 (a common probe) gets the plain report,
/// since its document went without `destination_port`, which strict validation requires.
#[test]
fn xarf_tells_udp_lite_as_udp_and_leaves_port_zero_to_the_plain_report() {
    use mail_parser::{MessageParser, MimeHeaders};
    let s = Setup::new(&standard_config("xarf = true"));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 0),
            drop_line("10:00:01", "3.5.140.3", "UDPLITE", 53),
            drop_line("10:00:02", "3.5.140.4", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let mut told = Vec::new();
    for file in s.outbox() {
        let raw = fs::read(&file).unwrap();
        let m = MessageParser::default().parse(&raw).unwrap();
        let subject = m.subject().unwrap().to_string();
        let ip = ["3.5.140.2", "3.5.140.3", "3.5.140.4"]
            .into_iter()
            .find(|ip| String::from_utf8_lossy(&raw).contains(&format!("SRC={ip} ")))
            .unwrap();
        let Some(json) = m
            .attachments()
            .find(|a| a.attachment_name() == Some("xarf.json"))
        else {
            told.push((ip, "plain".to_string()));
            continue;
        };
        let document = json.text_contents().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&document).unwrap();
        told.push((ip, v["protocol"].as_str().unwrap().to_string()));
        match xarf_errors(&document) {
            Some(errors) => assert!(errors.is_empty(), "{ip}: {errors:?}\n{document}"),
            None => assert!(
                std::env::var_os("CI").is_none(),
                "CI must install PyPI's xarf to validate"
            ),
        }
        assert!(!subject.is_empty());
    }
    told.sort();
    assert_eq!(
        told,
        [
            ("3.5.140.2", "plain".to_string()),
            ("3.5.140.3", "udp".to_string()),
            ("3.5.140.4", "tcp".to_string())
        ]
    );
}

/// There is no bound on how many providers a configuration names: with a hundred, each
/// address goes to its own, with its own log lines.
#[test]
fn a_hundred_providers_each_get_their_own_addresses_and_lines() {
    let mut config = String::from(
        "state_dir = \"{dir}/state\"\ntimezone = \"UTC\"\n\n[[source]]\npath = \"{dir}/messages\"\n\n",
    );
    let s = Setup::new("");
    let mut log = String::new();
    for k in 1..=100u32 {
        s.write(&format!("ranges-{k}.txt"), &format!("45.{k}.0.0/16\n"));
        config.push_str(&format!(
            "[[provider]]\nname = \"p{k}\"\nto = [\"abuse@p{k}.example-hoster.de\"]\nranges = \"{{dir}}/ranges-{k}.txt\"\n\n"
        ));
        if k % 33 == 0 {
            log.push_str(&drop_line("10:00:00", &format!("45.{k}.0.7"), "TCP", 22));
        }
    }
    config.push_str(
        "[report]\nfrom = \"Abuse desk <abuse@example.org>\"\nmin_hits = 1\n\n[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"\n",
    );
    s.write(
        "config.toml",
        &config.replace("{dir}", s.dir.path().to_str().unwrap()),
    );
    s.write("messages", &log);
    let v = s.run(&["preview", "--json"]).ok().json();
    let got: Vec<(String, Vec<String>, usize)> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                ips_of(r),
                r["excerpt"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("p33".to_string(), vec!["45.33.0.7".to_string()], 1),
            ("p66".to_string(), vec!["45.66.0.7".to_string()], 1),
            ("p99".to_string(), vec!["45.99.0.7".to_string()], 1),
        ]
    );
}

#[test]
fn a_renamed_provider_is_refused_rather_than_reporting_everything_again() {
    // With a cc, as a report's recipients record it.
    let s = Setup::new(&standard_config("cc = [\"archive@example.org\"]"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    fs::write(
        s.path("config.toml"),
        config.replace("name = \"aws\"", "name = \"amazon\""),
    )
    .unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("Give it back the name \"aws\""),
        "{}",
        out.stderr
    );
    assert_eq!(s.outbox().len(), 1, "nothing sent again");
    let check = s.run(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("\"amazon\""), "{}", check.stdout);
    // Its preview refuses as the run does: it showed a message no run sends, and ended 0.
    for dry in [
        &["preview"][..],
        &["run", "--dry-run"],
        &["preview", "--json"],
    ] {
        let preview = s.run(dry);
        assert_eq!(preview.code, 78, "{dry:?}: {}", preview.stderr);
        assert!(preview.stdout.is_empty(), "{dry:?}: {}", preview.stdout);
        assert!(
            preview.stderr.contains("provider \"amazon\"")
                && preview.stderr.contains("Give it back the name \"aws\""),
            "{dry:?}: {}",
            preview.stderr
        );
    }
    // Its old name back: nothing new, nothing again.
    fs::write(s.path("config.toml"), &config).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    // Another provider at the same desk with other ranges takes over: no address of the old
    // one is in them, so nothing would go out twice, and it runs.
    fs::write(
        s.path("config.toml"),
        config
            .replace("name = \"aws\"", "name = \"other\"")
            .replace(
                "aws-ip-ranges.json\"\nservices = [\"EC2\"]",
                "other-cloud.txt\"",
            ),
    )
    .unwrap();
    s.append("messages", &drop_line("10:00:01", "81.2.69.143", "TCP", 22));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.outbox().len(), 2);
}

#[test]
fn each_of_sixty_five_providers_gets_the_addresses_in_its_ranges() {
    // Where addresses go is remembered as one bit per provider, up to the 63rd; the ones
    // after are asked about each time. Each must still get exactly its own.
    let providers: String = (0..65)
        .map(|i| {
            format!(
                "[[provider]]\nname = \"p{i}\"\nto = [\"abuse@p{i}.example\"]\nranges = \"{{dir}}/ranges-{i}.txt\"\n\n"
            )
        })
        .collect();
    let s = Setup::new(&standard_config("").replace(
        "[[provider]]\nname = \"aws\"\nto = [\"ec2-abuse@amazon.com\"]\nranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]\n",
        &providers,
    ));
    for i in 0..65 {
        s.write(&format!("ranges-{i}.txt"), &format!("45.{i}.0.0/16\n"));
    }
    let picked = [0, 62, 63, 64];
    s.write(
        "messages",
        &picked
            .iter()
            .map(|i| drop_line("10:00:00", &format!("45.{i}.0.1"), "TCP", 22))
            .collect::<String>(),
    );
    s.run(&["run"]).ok();
    let sent: BTreeSet<(String, Vec<String>)> = history(&s)
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                string_list(&r["ips"]),
            )
        })
        .collect();
    let expected: BTreeSet<(String, Vec<String>)> = picked
        .iter()
        .map(|i| (format!("p{i}"), vec![format!("45.{i}.0.1")]))
        .collect();
    assert_eq!(sent, expected);
}

/// A re-report of an address whose earlier packets are still counted says how many it had
/// when it was reported and how many came since, not only the totals.
#[test]
fn a_rereport_says_what_came_since_the_last_report() {
    let mut s = Setup::new(&standard_config(
        "rereport_after_days = 1\nmax_age_days = 0",
    ));
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.write("messages", &two);
    s.run(&["run"]).ok();
    s.now = "2026-01-28T12:00:00Z".into();
    let three: String = (0..3)
        .map(|i| {
            drop_line(&format!("11:00:0{i}"), "3.5.140.2", "TCP", 22).replace("Jan 25", "Jan 28")
        })
        .collect();
    s.append("messages", &three);
    let ran = s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    // The run's line says it reported an address again, not a new one.
    assert!(
        ran.stderr.contains("aws: 1 again; 1 sent"),
        "{}",
        ran.stderr
    );
    let second = latest_mail(&s);
    assert!(
        second.contains("reported to you on 2026-01-26T08:00:00+00:00 with 2 packets; 3 since"),
        "{second}"
    );
}

/// With `min_hits = 3`, a re-report needs three packets since the report before, as a first
/// report needs three: one packet a few days on was reported again ("4 packets; 1 since").
#[test]
fn a_rereport_needs_min_hits_packets_since_the_report_before() {
    let mut s = Setup::new(&min_hits_3("rereport_after_days = 1"));
    s.write("messages", &three_packets("Jan 25", "10"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    s.now = "2026-01-28T12:00:00Z".into();
    s.append("messages", &packet_on("Jan 28", "11:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "one packet since is no re-report");
    s.now = "2026-01-28T13:00:00Z".into();
    s.append("messages", &packet_on("Jan 28", "12:00:00"));
    s.append("messages", &packet_on("Jan 28", "12:00:01"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    assert!(
        latest_mail(&s).contains("with 3 packets; 3 since"),
        "{}",
        latest_mail(&s)
    );
}

/// A report sent on Jan 26, its address sending three more packets on Jan 27 while
/// re-reporting is off, and `rereport_after_days = 2` turned on then: those packets were
/// counted but none of their lines kept.
fn due_with_no_line_since() -> Setup {
    due_with_no_line_since_on("web1", "198.51.100.10")
}

/// [`due_with_no_line_since`] logged by `host`, its packets sent to `target`.
fn due_with_no_line_since_on(host: &str, target: &str) -> Setup {
    let on = |text: String| {
        text.replace(" web1 ", &format!(" {host} "))
            .replace("198.51.100.10", target)
    };
    let mut s = Setup::new(&min_hits_3(""));
    s.write("messages", &on(three_packets("Jan 25", "10")));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    s.now = "2026-01-27T12:00:00Z".into();
    s.append("messages", &on(three_packets("Jan 27", "11")));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "re-reporting is off");
    s.reconfigure(&min_hits_3("rereport_after_days = 2"));
    s.now = "2026-01-28T12:00:00Z".into();
    // The preview's summary says what the run's says (it said "nothing new to report").
    let preview = s.run(&["preview"]).ok();
    let last = |text: &str| text.lines().last().unwrap_or_default().to_string();
    assert!(
        last(&preview.stderr).contains("no new report made, addresses wait for a later run"),
        "{}",
        preview.stderr
    );
    let held = s.run(&["run"]).ok();
    assert!(
        last(&held.stderr).contains("no new report made, addresses wait for a later run"),
        "{}",
        held.stderr
    );
    assert_eq!(s.outbox().len(), 1, "nothing to show: {}", latest_mail(&s));
    assert!(
        held.stderr
            .contains("1 re-report(s) wait: the address has no log line kept since"),
        "{}",
        held.stderr
    );
    s
}

/// The re-report of [`due_with_no_line_since`] went out with no excerpt and no evidence.log
/// ("6 dropped; 3 since", nothing to show). It waits until the address is logged again, and
/// then shows that line.
#[test]
fn a_rereport_with_no_line_since_the_report_waits_until_it_is_logged_again() {
    let mut s = due_with_no_line_since();
    s.now = "2026-01-28T13:00:00Z".into();
    s.append("messages", &packet_on("Jan 28", "12:30:00"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    let mail = latest_mail(&s);
    assert!(mail.contains("with 3 packets; 4 since"), "{mail}");
    assert!(mail.contains("Jan 28 12:30:00 web1"), "{mail}");
}

/// Not logged again, the re-report of [`due_with_no_line_since`] waits until
/// `rereport_after_days` after the address's last packet, then goes without a line rather
/// than never (a run looks at it again on every run meanwhile, and says why it waits).
#[test]
fn a_rereport_with_no_line_since_goes_without_one_a_window_on() {
    let mut s = due_with_no_line_since();
    s.now = "2026-01-29T10:00:00Z".into();
    let held = s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    assert!(
        held.stderr.contains("no log line kept since"),
        "{}",
        held.stderr
    );
    s.now = "2026-01-29T12:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    let mail = latest_mail(&s);
    assert!(mail.contains("with 3 packets; 3 since"), "{mail}");
    assert!(
        !mail.contains("Jan 25 10:00:0"),
        "no line the desk was told of: {mail}"
    );
}

/// `rereport_after_days` as long as `max_age_days` (README's example has 30 and 30): the wait
/// for a line ended when the address's packets became history, and it was never reported
/// again, nothing said. The wait ends in half of `max_age_days` after its last packet.
#[test]
fn a_rereport_waiting_for_a_line_goes_before_its_packets_are_history() {
    let config = |extra: &str| {
        standard_config(&format!("max_age_days = 2\n{extra}"))
            .replace("min_hits = 1", "min_hits = 3")
    };
    let mut s = Setup::new(&config(""));
    s.write("messages", &three_packets("Jan 25", "10"));
    s.run(&["run"]).ok();
    s.now = "2026-01-27T12:00:00Z".into();
    s.append("messages", &three_packets("Jan 27", "11"));
    s.run(&["run"]).ok();
    s.reconfigure(&config("rereport_after_days = 2"));
    for now in ["2026-01-28T12:00:00Z", "2026-01-29T12:00:00Z"] {
        s.now = now.into();
        s.run(&["run"]).ok();
    }
    assert_eq!(
        s.outbox().len(),
        2,
        "re-reported before its packets were history"
    );
}

/// Two servers of one operator re-reporting one address without a line, in the same second:
/// a report's id is made of its lines, and with none both made one Message-ID, of which a
/// desk keeps one message. The hosts and targets of its packets tell them apart.
#[test]
fn rereports_without_lines_from_two_hosts_have_two_message_ids() {
    let message_id = |host: &str, target: &str| {
        let mut s = due_with_no_line_since_on(host, target);
        s.now = "2026-01-29T12:00:00Z".into();
        s.run(&["run"]).ok();
        assert_eq!(s.outbox().len(), 2);
        let mail = latest_mail(&s);
        let id = mail.lines().find(|l| l.starts_with("Message-ID:"));
        id.unwrap_or_else(|| panic!("{mail}")).to_string()
    };
    let one = message_id("web1", "198.51.100.10");
    assert_eq!(one, message_id("web1", "198.51.100.10"), "made alike");
    assert_ne!(one, message_id("web2", "198.51.100.11"));
}

/// Lines a log host forwards late, stamped before a report, are no evidence of what came
/// since: the re-report a day on showed them as its excerpt and as the address's lines since,
/// earlier even than the first report's own period. It shows the lines logged after it.
#[test]
fn a_rereport_shows_no_line_stamped_before_the_report_before() {
    let mut s = Setup::new(&min_hits_3("rereport_after_days = 1"));
    s.now = "2026-01-25T20:00:00Z".into();
    s.write("messages", &three_packets("Jan 25", "10"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    s.now = "2026-01-26T20:00:00Z".into();
    s.append("messages", &three_packets("Jan 25", "08"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "late lines are no new attack");
    s.now = "2026-01-27T20:00:00Z".into();
    s.append("messages", &three_packets("Jan 27", "10"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    let mail = latest_mail(&s);
    assert!(mail.contains("Jan 27 10:00:00 web1"), "{mail}");
    assert!(!mail.contains("Jan 25 08:00:0"), "{mail}");
    assert!(!mail.contains("Jan 25 10:00:0"), "{mail}");
}

/// Late lines, stamped before the report, read before the address's lines since: they took
/// the places of the lines an address keeps, and the lines since were never kept, so the
/// re-report due two days on had nothing to show and waited for good. Late lines of a
/// reported address are not kept; the re-report shows the lines since.
#[test]
fn late_lines_take_no_place_of_the_lines_a_rereport_shows() {
    let mut s = Setup::new(&min_hits_3("rereport_after_days = 2"));
    s.now = "2026-01-25T20:00:00Z".into();
    s.write("messages", &three_packets("Jan 25", "10"));
    s.run(&["run"]).ok();
    s.now = "2026-01-26T12:00:00Z".into();
    s.append("messages", &three_packets("Jan 25", "08"));
    s.run(&["run"]).ok();
    s.now = "2026-01-26T13:00:00Z".into();
    s.append("messages", &three_packets("Jan 26", "12"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "not due yet");
    s.now = "2026-01-28T12:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2, "due, with lines since to show");
    let mail = latest_mail(&s);
    assert!(mail.contains("Jan 26 12:00:00 web1"), "{mail}");
    assert!(!mail.contains("Jan 25 08:00:0"), "{mail}");
}

/// A late line read by the run the re-report is due in, beside lines since: left out of what
/// the run kept, it still counted among the lines the read chose, and the run stored other
/// lines than its preview had shown (one line fewer in the message than in the preview).
#[test]
fn a_late_line_in_the_run_a_rereport_is_due_leaves_preview_and_run_alike() {
    // A second source: a log host's file, whose lines come late.
    let hub = "[[source]]\npath = \"{dir}/hub\"\n\n[[provider]]";
    let mut s = Setup::new(&min_hits_3("rereport_after_days = 1").replacen("[[provider]]", hub, 1));
    let from_hub = |day: &str, t: &str, port: u16| {
        drop_line(t, "3.5.140.2", "TCP", port)
            .replace("Jan 25", day)
            .replace(" web1 ", " db1 ")
    };
    s.now = "2026-01-25T20:00:00Z".into();
    s.write("messages", &three_packets("Jan 25", "10"));
    s.write("hub", "");
    s.run(&["run"]).ok();
    s.now = "2026-01-26T06:00:00Z".into();
    s.append("messages", &packet_on("Jan 26", "04:41:23"));
    s.append("messages", &packet_on("Jan 26", "04:41:27"));
    s.run(&["run"]).ok();
    s.now = "2026-01-26T22:00:00Z".into();
    s.append("hub", &from_hub("Jan 26", "04:41:24", 3389));
    s.append("hub", &from_hub("Jan 25", "22:32:23", 3389));
    s.append("hub", &from_hub("Jan 25", "10:00:02", 3389));
    s.append("messages", &packet_on("Jan 26", "21:10:11"));
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    let mail = latest_mail(&s).replace("\r\n", "\n");
    let own = |text: &str| lines_under(text, "# 3.5.140.2: ");
    assert_eq!(own(&preview.stdout), own(&mail));
}

/// A backlog drained every day just before the address's new lines (a lagging server's
/// queue, stamped before the report): the late lines came first in each run's read and kept
/// the new ones out, so the re-report had a line to show on no day, and never went though
/// the address was logged every day. It goes a window after it came due.
#[test]
fn a_rereport_crowded_out_every_day_goes_a_window_after_it_came_due() {
    let mut s = Setup::new(&min_hits_3("rereport_after_days = 1"));
    s.now = "2026-01-25T20:00:00Z".into();
    s.write("messages", &three_packets("Jan 25", "10"));
    s.run(&["run"]).ok();
    for (day, late) in [("26", "07"), ("27", "08"), ("28", "09")] {
        s.now = format!("2026-01-{day}T20:00:00Z");
        s.append("messages", &three_packets("Jan 25", late));
        s.append("messages", &three_packets(&format!("Jan {day}"), "19"));
        s.run(&["run"]).ok();
    }
    assert!(
        s.outbox().len() >= 2,
        "re-reported by Jan 28: {}",
        s.outbox().len()
    );
}

/// A configuration of `min_hits = 3`, `max_age_days = 0` and `extra` in `[report]`.
fn min_hits_3(extra: &str) -> String {
    standard_config(&format!("max_age_days = 0\n{extra}")).replace("min_hits = 1", "min_hits = 3")
}

/// One packet of 3.5.140.2 logged on `day` (`Jan 27`) at `time`.
fn packet_on(day: &str, time: &str) -> String {
    drop_line(time, "3.5.140.2", "TCP", 22).replace("Jan 25", day)
}

/// Three packets of 3.5.140.2 logged on `day`, a second apart from `hour`:00:00.
fn three_packets(day: &str, hour: &str) -> String {
    (0..3)
        .map(|i| packet_on(day, &format!("{hour}:00:0{i}")))
        .collect()
}

/// A list of the operator's own that holds part of a cloud's ranges: `check` says the two
/// providers share addresses, and which, since an attacker there goes to both desks (nothing
/// said so).
#[test]
fn check_says_when_two_providers_share_addresses() {
    let hoster = "[[provider]]\nname = \"hoster\"\nto = [\"abuse@hoster.example\"]\nranges = \"{dir}/hoster.txt\"\n\n[report]";
    let s = Setup::new(&standard_config("").replace("[report]", hoster));
    s.write("hoster.txt", "192.0.2.0/24\n3.5.140.0/24\n");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["check"]);
    assert!(
        out.stdout
            .contains("warning ranges     aws and hoster share addresses (3.5.140.0 is in both)"),
        "{}",
        out.stdout
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2, "one report to each desk, as it says");
    // Apart, nothing is said.
    s.write("hoster.txt", "192.0.2.0/24\n");
    let out = s.run(&["check"]);
    assert!(!out.stdout.contains("share addresses"), "{}", out.stdout);
}

/// The message written last to the outbox.
fn latest_mail(s: &Setup) -> String {
    let newest = s
        .outbox()
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    fs::read_to_string(newest).unwrap()
}

/// Whether the tests run as root, which loading rules in a network namespace needs.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The nft and ipset rules loaded again after the range file changed hold the new ranges
/// alone, and their rules once: a timer that reloads them never keeps a removed range
/// blocked nor piles up rules. Loaded for real in a network namespace of their own (as root,
/// with `unshare`, `nft` and `ipset`; skipped elsewhere).
#[test]
fn firewall_rules_loaded_again_hold_the_new_ranges_alone() {
    let root = is_root();
    if !root || !tool("unshare", &["--version"]) || !tool("nft", &["--version"]) {
        return;
    }
    let s = Setup::new(&standard_config("").replace(
        "ranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]",
        "ranges = \"{dir}/ranges.txt\"",
    ));
    s.write("messages", "");
    let rules = |ranges: &str, format: &str| {
        s.write("ranges.txt", ranges);
        let out = s
            .run(&["firewall", "--provider", "aws", "--format", format])
            .ok();
        let file = s.path(&format!("{format}-{}", ranges.len()));
        fs::write(&file, out.stdout).unwrap();
        file
    };
    let (first, second) = ("3.5.140.0/22\n18.204.0.0/14\n", "18.204.0.0/14\n");
    // Each format's rules for the two files, loaded one after the other in a namespace of
    // their own, then what `list` says: only the second file's ranges.
    let load_twice = |format: &str, load: &str, list: &str| -> String {
        let (a, b) = (rules(first, format), rules(second, format));
        let script = format!("{load} {} && {load} {} && {list}", a.display(), b.display());
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listed.contains("18.204.0.0/14") && !listed.contains("3.5.140.0/22"),
            "{format}: {listed}"
        );
        listed
    };
    let nft = load_twice("nft", "nft -f", "nft list ruleset");
    assert_eq!(nft.matches("log prefix").count(), 2, "{nft}");
    if tool("ipset", &["--version"]) {
        let sets = load_twice(
            "ipset",
            "ipset restore <",
            "ipset list abuse-aws-v4 && ipset list -n",
        );
        assert!(
            !sets.contains("abuse-new-"),
            "the set filled is swapped in: {sets}"
        );
    }
}

/// A host in the provider's cloud loads the rules and keeps its network: its neighbours in
/// the same IPv6 /64 (neighbour discovery), the answers to connections it opens to them, and
/// its own global address over `lo` all still work, while a neighbour's new connection is
/// still dropped. Loaded for real in two network namespaces joined by a veth pair, in every
/// format whose tools are there (as root; skipped elsewhere).
#[test]
fn the_rules_leave_a_host_in_the_cloud_its_neighbours_and_itself() {
    let root = is_root();
    if !root
        || !tool("unshare", &["--version"])
        || !tool("nsenter", &["--version"])
        || !tool("ip", &["-V"])
        || !tool("python3", &["--version"])
    {
        return;
    }
    let s = Setup::new(&standard_config("").replace(
        "ranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]",
        "ranges = \"{dir}/ranges.txt\"",
    ));
    s.write("messages", "");
    s.write("ranges.txt", "2600:1f14::/35\n3.5.140.0/22\n");
    // Each line: a TCP connection the host opens, and whether it must be answered.
    let probe = r#"
import socket, sys
for target, want in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        socket.create_connection((target, 8080), timeout=2).recv(3)
        got = "open"
    except OSError:
        got = "closed"
    print(target, got, "ok" if got == want else "WRONG")
"#;
    let serve = r#"
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080)); s.listen(8); s.settimeout(30)
while True:
    c, _ = s.accept(); c.sendall(b"hi\n"); c.close()
"#;
    s.write("probe.py", probe);
    s.write("serve.py", serve);
    let mut formats: Vec<(&str, String)> = Vec::new();
    if tool("nft", &["--version"]) {
        formats.push(("nft", "nft -f RULES".into()));
    }
    if tool("ip6tables-restore", &["--version"]) {
        formats.push((
            "ip6tables",
            "ip6tables-restore --noflush < RULES && ip6tables -I INPUT -j abuse-aws".into(),
        ));
    }
    if tool("ipset", &["--version"]) && tool("ip6tables", &["--version"]) {
        // The rules the file gives as comments, run as they are.
        formats.push((
            "ipset",
            "ipset restore < RULES && grep '^#   ip6tables ' RULES | sed 's/^#   //' | sh -e"
                .into(),
        ));
    }
    for (format, load) in formats {
        let rules = s.path(&format!("rules.{format}"));
        let out = s
            .run(&["firewall", "--provider", "aws", "--format", format])
            .ok();
        fs::write(&rules, out.stdout).unwrap();
        let load_script = s.path("load.sh");
        fs::write(&load_script, load.replace("RULES", rules.to_str().unwrap())).unwrap();
        let (dir, probe, serve) = (s.path(""), s.path("probe.py"), s.path("serve.py"));
        let script = format!(
            r#"set -e
cd {dir}
SH= SN=
unshare -n sleep 60 & H=$!
unshare -n sleep 60 & N=$!
for pid in $H $N; do
  until [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ]; do sleep 0.05; done
done
trap 'kill $H $N $SH $SN 2>/dev/null' EXIT
ip link add h0 netns /proc/$H/ns/net type veth peer name n0 netns /proc/$N/ns/net
nsenter -t $H -n sh -c 'ip link set lo up; ip link set h0 up; ip -6 addr add 2600:1f14:abc:1::10/64 dev h0 nodad'
nsenter -t $N -n sh -c 'ip link set lo up; ip link set n0 up; ip -6 addr add 2600:1f14:abc:1::20/64 dev n0 nodad'
nsenter -t $H -n python3 {serve} & SH=$!
nsenter -t $N -n python3 {serve} & SN=$!
sleep 0.5
nsenter -t $H -n sh -e {load}
nsenter -t $H -n python3 {probe} 2600:1f14:abc:1::20 open 2600:1f14:abc:1::10 open
nsenter -t $N -n python3 {probe} 2600:1f14:abc:1::10 closed
"#,
            dir = dir.display(),
            probe = probe.display(),
            serve = serve.display(),
            load = load_script.display(),
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.matches(" ok").count() == 3 && !said.contains("WRONG"),
            "{format}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Two providers whose rules would have one name: `aws`'s drop chain is `aws-drop`'s own
/// chain, and loading one's file flushed the other's, unblocking it. `firewall` refuses
/// (78) naming the other; in a format where their names are apart it prints the rules.
#[test]
fn firewall_refuses_rules_that_would_replace_another_providers() {
    let second = "[[provider]]\nname = \"aws-drop\"\nto = [\"abuse@example.net\"]\nranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\n\n[report]";
    let s = Setup::new(&standard_config("").replace("[report]", second));
    let out = s.run(&["firewall", "--provider", "aws", "--format", "iptables"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("\"aws-drop\"") && out.stderr.contains("abuse-aws-drop"),
        "{}",
        out.stderr
    );
    let nft = s.run(&["firewall", "--provider", "aws", "--format", "nft"]);
    assert_eq!(nft.code, 0, "{}", nft.stderr);
}

/// UDP answers from a DNS server's port 53 to the operator's high ports: three of them are a
/// port scan to XARF as before (which passes the XARF project's own validation), and at a
/// flood's rate an amplification attack (`ddos`, `dns_amplification`), as XARF's DDoS type
/// files reflection. Told as answers, their flood lost its `ddos`.
#[test]
fn xarf_files_reflected_answers_at_a_floods_rate_as_amplification() {
    use mail_parser::{MessageParser, MimeHeaders};
    let document_of = |packets: u16| {
        let s = Setup::new(&standard_config("xarf = true"));
        let log: String = (0..packets)
            .map(|i| {
                drop_line(
                    &format!("10:00:{:02}", i / 40),
                    "3.5.140.2",
                    "UDP",
                    40_001 + i,
                )
                .replace("SPT=40000", "SPT=53")
            })
            .collect();
        s.write("messages", &log);
        s.run(&["run"]).ok();
        let files = s.outbox();
        assert_eq!(files.len(), 1);
        let raw = fs::read(&files[0]).unwrap();
        let m = MessageParser::default().parse(&raw).unwrap();
        let json = m
            .attachments()
            .find(|a| a.attachment_name() == Some("xarf.json"))
            .expect("xarf.json");
        json.text_contents().unwrap().to_string()
    };
    let few = document_of(3);
    let v: serde_json::Value = serde_json::from_str(&few).unwrap();
    assert_eq!(v["type"], "port_scan", "{few}");
    match xarf_errors(&few) {
        Some(errors) => assert!(errors.is_empty(), "{errors:?}\n{few}"),
        None => assert!(
            std::env::var_os("CI").is_none(),
            "CI must install PyPI's xarf to validate"
        ),
    }
    let flood = document_of(400);
    let v: serde_json::Value = serde_json::from_str(&flood).unwrap();
    assert_eq!(v["type"], "ddos", "{flood}");
    assert_eq!(v["attack_vector"], "dns_amplification", "{flood}");
    // 400 packets over ten seconds, 60 bytes each: 40 a second, 19,200 bits.
    assert_eq!(v["peak_pps"], 40, "{flood}");
    assert_eq!(v["peak_bps"], 19_200, "{flood}");
    // Forty in a second, fewer than a flood's hundred, are answers: a port scan to XARF.
    let answers = document_of(40);
    let v: serde_json::Value = serde_json::from_str(&answers).unwrap();
    assert_eq!(v["type"], "port_scan", "{answers}");
    match xarf_errors(&flood) {
        Some(errors) => assert!(errors.is_empty(), "{errors:?}\n{flood}"),
        None => assert!(
            std::env::var_os("CI").is_none(),
            "CI must install PyPI's xarf to validate"
        ),
    }
}
