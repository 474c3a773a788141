//! Contact discovery end to end: the binary reads a log with attackers in no configured
//! provider, asks a loopback RDAP registry (bootstrap files pointing at it) and a loopback DNS
//! resolver for the Abusix zone, and writes one digest per contact under the ledger's rules,
//! beside the configured providers' reports.

mod common;
#[path = "common/discovery.rs"]
mod discovery;
#[path = "common/discover_stubs.rs"]
mod stubs;

use common::{Setup, drop_line, history, ip_list, snapshot, standard_config};
use discovery::{abuse_net, log, outbox_to, registry_down, setup};
use stubs::{Dns, Rdap, Reply, entity, network};

/// An AWS EC2 address of the fixture ranges: a configured provider's attacker.
const AWS_IP: &str = "3.5.140.2";

fn contact_reports(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["provider"].is_null())
        .collect()
}

/// Four networks: A (top-level abuse entity), B (nested under the registrant, as ARIN and
/// RIPE publish them), C (a placeholder, so Abusix decides), D (a desk in `never`).
fn four_networks(rdap: &Rdap, dns: &Dns) {
    abuse_net(
        rdap,
        &["45.1.0.9", "45.1.0.10"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let nested = entity(
        &["registrant"],
        None,
        &[entity(&["abuse"], Some("Abuse@Hoster-B.NL"), &[])],
    );
    rdap.route(
        "/rdap/ip/45.2.0.7",
        Reply::Json(200, network("45.2.0.0", "45.2.0.255", "NET-B", &[nested])),
    );
    rdap.route(
        "/rdap/ip/45.3.0.1",
        Reply::Json(
            200,
            network(
                "45.3.0.0",
                "45.3.0.255",
                "NET-C",
                &[entity(&["abuse"], Some("REDACTED FOR PRIVACY"), &[])],
            ),
        ),
    );
    dns.txt("1.0.3.45.abuse-contacts.abusix.zone", &["abuse@zone-c.fr"]);
    abuse_net(
        rdap,
        &["45.4.0.1"],
        "45.4.0.0",
        "45.4.0.255",
        "NET-D",
        "abuse@friends.example-isp.co.uk",
    );
}

const FOUR_NETWORK_LINES: &[(&str, &str)] = &[
    ("10:00:00", "45.1.0.9"),
    ("10:00:01", "45.1.0.10"),
    ("10:00:02", "45.2.0.7"),
    ("10:00:03", "45.3.0.1"),
    ("10:00:04", "45.4.0.1"),
    ("10:00:05", AWS_IP),
];

#[test]
fn each_network_gets_one_digest_at_its_own_desk() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "never = [\"example-isp.co.uk\"]", "");
    log(&s, FOUR_NETWORK_LINES);

    let before = snapshot(&s.path("state"));
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        snapshot(&s.path("state")),
        before,
        "a preview changes nothing"
    );
    let reports = preview["reports"].as_array().unwrap();
    let aws: Vec<_> = reports.iter().filter(|r| r["provider"] == "aws").collect();
    assert_eq!(aws.len(), 1);
    assert_eq!(ip_list(&aws[0]["ips"]), [AWS_IP]);
    assert!(aws[0].get("contact").is_none_or(|c| c.is_null()));

    let contacts = contact_reports(&preview);
    let mut got: Vec<serde_json::Value> = contacts
        .iter()
        .map(|r| {
            serde_json::json!([
                r["contact"],
                r["to"],
                r["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["ip"].clone())
                    .collect::<Vec<_>>()
            ])
        })
        .collect();
    got.sort_by_key(|v| v.to_string());
    let contact = |address: &str, source: &str, network: serde_json::Value, ips: &[&str]| {
        serde_json::json!([
            {"address": address, "source": source, "network": network},
            [address],
            ips
        ])
    };
    let mut want = vec![
        contact(
            "abuse@hoster-a.de",
            "rdap",
            "45.1.0.0/16".into(),
            &["45.1.0.9", "45.1.0.10"],
        ),
        // Found nested under the registrant.
        contact(
            "abuse@hoster-b.nl",
            "rdap",
            "45.2.0.0/24".into(),
            &["45.2.0.7"],
        ),
        // The registry's placeholder is refused: Abusix names the desk, and no network.
        contact(
            "abuse@zone-c.fr",
            "abusix",
            serde_json::Value::Null,
            &["45.3.0.1"],
        ),
    ];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
    // The `never` desk's address is in no report.
    assert!(
        !reports
            .iter()
            .any(|r| ip_list(&r["ips"]).contains(&"45.4.0.1".to_string()))
    );
    // The excerpt of a digest holds its own addresses' lines only.
    let a = contacts
        .iter()
        .find(|r| r["contact"]["address"] == "abuse@hoster-a.de")
        .unwrap();
    let excerpt = a["excerpt"].as_array().unwrap();
    assert!(!excerpt.is_empty());
    assert!(
        excerpt
            .iter()
            .all(|l| l.as_str().unwrap().contains("SRC=45.1.0."))
    );

    let ran = s.run(&["run"]).ok();
    assert!(
        ran.stderr
            .contains("discovered contacts: 4 new in 3 messages"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        outbox_to(&s),
        [
            "abuse@hoster-a.de",
            "abuse@hoster-b.nl",
            "abuse@zone-c.fr",
            "ec2-abuse@amazon.com"
        ]
    );
    // Each digest says why that desk gets it, and where its address was found.
    let bodies: Vec<String> = s
        .outbox()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().replace("\r\n", "\n"))
        .collect();
    let body_to = |to: &str| {
        bodies
            .iter()
            .find(|b| b.contains(&format!("To: {to}\n")))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        body_to("abuse@hoster-a.de").contains(
            "the registry's RDAP record NET-A names abuse@hoster-a.de as the abuse contact of 45.1.0.0/16"
        ),
        "{}",
        body_to("abuse@hoster-a.de")
    );
    assert!(body_to("abuse@zone-c.fr").contains(
        "the Abusix abuse contact database names abuse@zone-c.fr for these addresses (1.0.3.45.abuse-contacts.abusix.zone)"
    ));
    assert!(!body_to("ec2-abuse@amazon.com").contains("You receive it because"));
    let ledger = history(&s);
    let a = ledger
        .iter()
        .find(|r| r["contact"]["address"] == "abuse@hoster-a.de")
        .unwrap();
    assert!(a["provider"].is_null());
    assert_eq!(a["contact"]["network"], "45.1.0.0/16");
    assert_eq!(a["status"], "sent");

    // Nothing new: nothing sent again, and nobody asked again.
    let asked = (rdap.asked().len(), dns.asked().len());
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 4);
    assert_eq!((rdap.asked().len(), dns.asked().len()), asked);
}

#[test]
fn a_later_run_answers_from_the_cache_and_keeps_the_contacts_thread() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "", "");
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run(&["run"]).ok();
    assert_eq!(rdap.asked(), ["/rdap/ip/45.1.0.9"]);
    let first = history(&s)[0]["message_id"].as_str().unwrap().to_string();

    // Another address of the same network, a day later: known without a request.
    log(&s, &[("11:00:00", "45.1.200.3")]);
    s.run(&["run"]).ok();
    assert_eq!(rdap.asked(), ["/rdap/ip/45.1.0.9"], "cached per network");
    let ledger = history(&s);
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1]["contact"]["address"], "abuse@hoster-a.de");
    assert_eq!(ledger[1]["ips"], serde_json::json!(["45.1.200.3"]));
    let second = std::fs::read_to_string(&s.outbox()[1]).unwrap();
    let second = if second.contains("45.1.200.3") {
        second
    } else {
        std::fs::read_to_string(&s.outbox()[0]).unwrap()
    };
    assert!(
        second.contains(&format!("In-Reply-To: {first}")),
        "{second}"
    );

    // `contacts` shows what was learned, and where from.
    let listed = s.run(&["contacts", "--json"]).ok().json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["address"], "abuse@hoster-a.de");
    assert_eq!(listed[0]["source"], "rdap");
    assert_eq!(listed[0]["network"], "45.1.0.0/16");
    assert_eq!(listed[0]["handle"], "NET-A");
    assert_eq!(listed[0]["origin"], format!("{}ip/45.1.0.9", rdap.base()));
    assert_eq!(listed[0]["reported"], 2);
    assert_eq!(listed[0]["expired"], false);
    let one = s.run(&["contacts", "--ip", "45.1.7.7"]).ok();
    assert!(one.stdout.contains("abuse@hoster-a.de"), "{}", one.stdout);
    assert!(one.stdout.contains("NET-A"), "{}", one.stdout);
    let none = s
        .run(&["contacts", "--ip", "45.9.0.1", "--json"])
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]));

    // Past cache_days the registry is asked again.
    let mut later = s;
    later.now = "2026-03-10T08:00:00Z".to_string();
    later.append(
        "messages",
        &drop_line("12:00:00", "45.1.0.10", "TCP", 22).replace("Jan 25", "Mar  9"),
    );
    later.run(&["run"]).ok();
    assert_eq!(
        rdap.asked(),
        ["/rdap/ip/45.1.0.9", "/rdap/ip/45.1.0.10"],
        "an expired entry is fetched again"
    );
}

#[test]
fn the_lookup_bound_spreads_contacts_over_runs_and_loses_none() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "max_lookups_per_run = 1\nabusix = false", "");
    log(
        &s,
        &[
            ("10:00:00", "45.1.0.9"),
            ("10:00:01", "45.1.0.10"),
            ("10:00:02", "45.2.0.7"),
        ],
    );
    let first = s.run(&["run"]).ok();
    assert!(
        first.stderr.contains("wait for their abuse contact"),
        "{}",
        first.stderr
    );
    assert_eq!(rdap.asked().len(), 1);
    // Nothing new in the log: the addresses left waiting are still looked up.
    s.run(&["run"]).ok();
    assert_eq!(rdap.asked().len(), 2);
    let third = s.run(&["run"]).ok();
    assert!(!third.stderr.contains("wait for"), "{}", third.stderr);
    let mut reported: Vec<String> = common::history(&s)
        .iter()
        .flat_map(|r| common::string_list(&r["ips"]))
        .collect();
    reported.sort();
    assert_eq!(reported, ["45.1.0.10", "45.1.0.9", "45.2.0.7"]);
    assert_eq!(
        rdap.asked().len(),
        2,
        "one request per network, not per address"
    );
}

#[test]
fn discovery_is_off_unless_enabled() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = Setup::new(&standard_config(""));
    log(&s, FOUR_NETWORK_LINES);
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert!(contact_reports(&preview).is_empty());
    assert_eq!(preview["unattributed"].as_array().unwrap().len(), 5);
    s.run(&["run"]).ok();
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"]);
    assert!(rdap.asked().is_empty());
    assert!(dns.asked().is_empty());
    let listed = s.run(&["contacts"]).ok();
    assert!(listed.stdout.contains("not enabled"), "{}", listed.stdout);
}

#[test]
fn a_registry_that_is_down_holds_back_only_the_discovered_reports() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "abusix = false", "");
    // The bootstrap names a registry nobody listens on.
    registry_down(&s, true, &rdap);
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", AWS_IP)]);
    let down = s.run_bounded(&["run"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(down.stderr.contains("a lookup failed"), "{}", down.stderr);
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"]);

    // The registry is back: the waiting address goes out, the AWS one not again.
    registry_down(&s, false, &rdap);
    s.run(&["run"]).ok();
    assert_eq!(outbox_to(&s), ["abuse@hoster-a.de", "ec2-abuse@amazon.com"]);
}

#[test]
fn a_run_for_one_provider_leaves_discovery_alone() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "", "");
    log(&s, FOUR_NETWORK_LINES);
    s.run(&["run", "--provider", "aws"]).ok();
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"]);
    assert!(rdap.asked().is_empty());
    // The next run reports the others, with the log lines that run read as evidence.
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 5);
    let digest = s
        .outbox()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains("To: abuse@zone-c.fr"))
        .unwrap();
    assert!(digest.contains("SRC=45.3.0.1 "), "{digest}");
}

/// A thousand networks, each with a desk of its own, in one run's delta: the run looks each
/// up once, sends no more than `max_messages_per_run`, and later runs send the rest, each
/// address once, without asking the registry again.
#[test]
fn a_thousand_contacts_go_out_within_the_budgets() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let mut lines = String::new();
    for k in 0..1000u32 {
        let (b, c) = (10 + k / 250, k % 250);
        let ip = format!("45.{b}.{c}.1");
        abuse_net(
            &rdap,
            &[&ip],
            &format!("45.{b}.{c}.0"),
            &format!("45.{b}.{c}.255"),
            &format!("NET-{k}"),
            &format!("abuse@desk{k}.hoster.de"),
        );
        let time = format!("10:{:02}:{:02}", k / 60 % 60, k % 60);
        lines.push_str(&drop_line(&time, &ip, "TCP", 22));
    }
    let s = setup(
        &rdap,
        &dns,
        "max_lookups_per_run = 1000\nabusix = false",
        "",
    );
    s.append("messages", &lines);
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            "transport = \"file\"",
            "transport = \"file\"\nmax_messages_per_run = 400",
        );
    s.write("config.toml", &config);

    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(s.outbox().len(), 400);
    assert_eq!(rdap.asked().len(), 1000);
    s.run_bounded(&["run"]);
    s.run_bounded(&["run"]);
    assert_eq!(s.outbox().len(), 1000);
    let mut reported: Vec<String> = history(&s)
        .iter()
        .flat_map(|r| common::string_list(&r["ips"]))
        .collect();
    let all = reported.len();
    reported.sort();
    reported.dedup();
    assert_eq!((all, reported.len()), (1000, 1000), "each address once");
    assert_eq!(rdap.asked().len(), 1000, "later runs answer from the cache");
}

/// More desks found than a run's digests: a run makes four times `max_messages_per_run`
/// digests, the desks waiting longest first, and says how many wait; later runs reach the
/// others, each desk once, without every run making a digest for every desk it knows.
#[test]
fn a_backlog_of_desks_is_made_a_few_runs_worth_at_a_time() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let mut lines = String::new();
    for k in 0..10u32 {
        let ip = format!("45.10.{k}.1");
        abuse_net(
            &rdap,
            &[&ip],
            &format!("45.10.{k}.0"),
            &format!("45.10.{k}.255"),
            &format!("NET-{k}"),
            &format!("abuse@desk{k}.hoster.de"),
        );
        lines.push_str(&drop_line(&format!("10:00:{k:02}"), &ip, "TCP", 22));
    }
    let s = setup(&rdap, &dns, "max_lookups_per_run = 100\nabusix = false", "");
    s.append("messages", &lines);
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            "transport = \"file\"",
            "transport = \"file\"\nmax_messages_per_run = 1",
        );
    s.write("config.toml", &config);
    let preview = s.run_bounded(&["preview", "--json"]);
    assert_eq!(
        contact_reports(&preview.json()).len(),
        4,
        "{}",
        preview.stderr
    );
    assert!(
        preview
            .stderr
            .contains("6 address(es) of 6 discovered desk(s) wait for a later run"),
        "{}",
        preview.stderr
    );
    for _ in 0..12 {
        s.run_bounded(&["run"]);
    }
    assert_eq!(s.outbox().len(), 10);
    let mut reported: Vec<String> = history(&s)
        .iter()
        .flat_map(|r| common::string_list(&r["ips"]))
        .collect();
    reported.sort();
    reported.dedup();
    assert_eq!(reported.len(), 10, "each desk's address once");
}

/// The digests over a real SMTP server with STARTTLS and AUTH: each goes to its desk alone,
/// and a desk whose mailbox refuses is not written to again on every run.
#[test]
fn digests_go_over_smtp_to_their_desk_and_a_refusing_desk_is_not_retried_every_run() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let server = common::smtp::start(common::smtp::Security::StartTls, Some(("abuse", "pw")), 0);
    let s = setup(&rdap, &dns, "", "");
    discovery::use_mail(
        &s,
        &format!(
            "transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\n\
             username = \"abuse\"\ntimeout_secs = 5\nca_file = \"{}/fixtures/tls/ca.pem\"",
            server.port,
            common::repo().display()
        ),
    );
    let mut s = s;
    s.env
        .push(("ABUSE_MAILER__MAIL__PASSWORD".into(), "pw".into()));

    log(&s, &[("10:00:00", "45.2.0.7"), ("10:00:01", AWS_IP)]);
    s.run_bounded(&["run"]).ok();
    let mut envelopes: Vec<Vec<String>> = server.received().iter().map(|d| d.to.clone()).collect();
    envelopes.sort();
    assert_eq!(
        envelopes,
        [
            vec!["abuse@hoster-b.nl".to_string()],
            vec!["ec2-abuse@amazon.com".to_string()]
        ]
    );

    // The next desk's mailbox is gone: the server refuses the recipient.
    *server.rcpt.lock().unwrap() = Some((550, "5.1.1 no such mailbox".into()));
    log(&s, &[("11:00:00", "45.3.0.1")]);
    let refused = s.run_bounded(&["run"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("rejected"), "{}", refused.stderr);
    *server.rcpt.lock().unwrap() = None;
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    assert_eq!(
        server.received().len(),
        2,
        "the refusing desk is not written to again"
    );
    let ledger = history(&s);
    assert_eq!(ledger.len(), 3);
    assert_eq!(ledger[2]["status"], "rejected");
    assert_eq!(ledger[2]["contact"]["address"], "abuse@zone-c.fr");
}

/// The operator's own relay refuses what is no desk's doing: the sender (`report.from` not
/// allowed, at MAIL or, as Postfix's `smtpd_delay_reject` gives it, at RCPT), this host as its
/// client, the operator's own `cc` mailbox, or relaying at all (no login). Each is a setting
/// to fix (78): no report is taken as refused, no discovered desk is shut out, and once the
/// relay is fixed every report goes out once, to its desk.
#[test]
fn a_refusal_by_the_operators_own_relay_shuts_out_no_desk_and_loses_no_address() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let server = common::smtp::start(common::smtp::Security::Plain, None, 0);
    let s = setup(&rdap, &dns, "", "cc = [\"noc@example.org\"]");
    discovery::use_smtp(&s, server.port);
    log(&s, &[("10:00:00", "45.2.0.7"), ("10:00:01", AWS_IP)]);
    let faults = [
        (
            "sender",
            "refused the sender abuse@example.org (report.from)",
        ),
        (
            "cc",
            "refused noc@example.org, an address of your own (report.cc)",
        ),
        ("relay", "will not relay to"),
        (
            "sender at rcpt",
            "refused the sender (report.from), answering for recipient",
        ),
        ("client at rcpt", "refused this host as its client"),
    ];
    for (fault, said) in faults {
        *server.mail.lock().unwrap() = None;
        *server.rcpt.lock().unwrap() = None;
        *server.rcpt_of.lock().unwrap() = None;
        match fault {
            "sender" => {
                *server.mail.lock().unwrap() = Some((
                    553,
                    "5.7.1 <abuse@example.org>: Sender address rejected: not owned by user".into(),
                ))
            }
            "cc" => {
                *server.rcpt_of.lock().unwrap() =
                    Some(("noc@".into(), 550, "5.1.1 mailbox unavailable".into()))
            }
            "sender at rcpt" => {
                *server.rcpt.lock().unwrap() = Some((
                    554,
                    "5.7.1 <abuse@example.org>: Sender address rejected: Access denied".into(),
                ))
            }
            "client at rcpt" => {
                *server.rcpt.lock().unwrap() = Some((
                    554,
                    "5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied".into(),
                ))
            }
            _ => *server.rcpt.lock().unwrap() = Some((554, "5.7.1 Relay access denied".into())),
        }
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 78, "{fault}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{fault}: {}", out.stderr);
        let refused = (out.stderr.lines()).any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.get(..2) == Some(&["abuse-mailer:", "report"])
                && words.get(3) == Some(&"rejected:")
        });
        assert!(!refused, "{fault}: {}", out.stderr);
        assert!(server.received().is_empty(), "{fault}");
    }
    *server.mail.lock().unwrap() = None;
    *server.rcpt.lock().unwrap() = None;
    *server.rcpt_of.lock().unwrap() = None;
    // The same networks attack from new addresses meanwhile.
    log(&s, &[("11:00:00", "45.2.0.8")]);
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    let mut envelopes: Vec<Vec<String>> = server.received().iter().map(|d| d.to.clone()).collect();
    envelopes.sort();
    assert_eq!(
        envelopes,
        [
            vec![
                "abuse@hoster-b.nl".to_string(),
                "noc@example.org".to_string()
            ],
            vec![
                "ec2-abuse@amazon.com".to_string(),
                "noc@example.org".to_string()
            ]
        ]
    );
    let ledger = history(&s);
    assert!(ledger.iter().all(|r| r["status"] == "sent"), "{ledger:#?}");
    let digest = String::from_utf8_lossy(&server.received()[0].data).into_owned()
        + &String::from_utf8_lossy(&server.received()[1].data);
    assert!(digest.contains("45.2.0.7") && digest.contains("45.2.0.8"));
}

/// `check` says where discovery looks without contacting anyone, and names a bootstrap
/// folder that lacks a file.
#[test]
fn check_describes_discovery_without_a_lookup() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let s = setup(&rdap, &dns, "max_lookups_per_run = 7", "");
    s.write("messages", "");
    let ok = s.run(&["check"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains("at most 7 lookups a run"),
        "{}",
        ok.stdout
    );
    std::fs::remove_file(s.path("bootstrap/ipv6.json")).unwrap();
    let missing = s.run(&["check"]);
    assert_eq!(missing.code, 78, "{}", missing.stdout);
    assert!(
        missing.stdout.contains("discover.rdap_bootstrap") && missing.stdout.contains("ipv6.json"),
        "{}",
        missing.stdout
    );
    // A run refuses it as `check` does, rather than saying on every run that the addresses
    // wait for a lookup that can never be made.
    s.write("messages", &drop_line("10:00:00", "45.2.0.7", "TCP", 22));
    let run = s.run(&["run"]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(run.stderr.contains("ipv6.json"), "{}", run.stderr);
    assert!(rdap.asked().is_empty() && dns.asked().is_empty());
}

/// `preview` prints the messages in the order a run sends them: the providers' first, then
/// the discovered desks'.
#[test]
fn preview_prints_in_the_order_a_run_sends() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "", "");
    // The AWS address attacks last; its report is still printed first.
    log(&s, &[("10:00:00", "45.2.0.7"), ("10:00:05", AWS_IP)]);
    let printed = s.run(&["preview"]).ok().stdout;
    let to: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("To: "))
        .collect();
    assert_eq!(to, ["ec2-abuse@amazon.com", "abuse@hoster-b.nl"]);
    s.run(&["run"]).ok();
    let sent: Vec<String> = history(&s)
        .iter()
        .map(|r| r["to"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, to);
}

/// One desk for two networks: one digest, naming the first address's network in the JSON and
/// both in words in the body, without one network's handle standing for both.
#[test]
fn one_desk_of_two_networks_names_both() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-B",
        "abuse@hoster-a.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.2.0.7"), ("10:00:01", "45.1.0.9")]);
    let v = s.run(&["preview", "--json"]).ok().json();
    let digests = contact_reports(&v);
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0]["contact"]["network"], "45.1.0.0/16");
    s.run(&["run"]).ok();
    let body = std::fs::read_to_string(&s.outbox()[0])
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        body.contains("RDAP record names abuse@hoster-a.de as the abuse contact of 45.1.0.0/16 and one other network"),
        "{body}"
    );
}

/// `history` keeps its columns straight with discovered desks' longer keys: every row's
/// subject starts where the header says.
#[test]
fn history_columns_hold_discovered_desks() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(&rdap, &dns, "", "");
    log(&s, FOUR_NETWORK_LINES);
    s.run(&["run"]).ok();
    let text = s.run(&["history"]).ok().stdout;
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = header.find("subject").unwrap();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5, "{text}");
    for row in rows {
        assert!(row[at..].starts_with("Abuse report:"), "{text}");
    }
    assert!(
        text.contains("contact:abuse@friends.example-isp.co.uk"),
        "{text}"
    );
}

/// With `xarf = true`, a configured provider gets a report per address, but a discovered
/// desk still gets its one plain digest a run: a desk that never asked for reports is not
/// sent a message per address.
#[test]
fn with_xarf_a_discovered_desk_still_gets_one_plain_digest() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    four_networks(&rdap, &dns);
    let s = setup(
        &rdap,
        &dns,
        "never = [\"example-isp.co.uk\"]",
        "xarf = true",
    );
    log(&s, FOUR_NETWORK_LINES);
    s.run(&["run"]).ok();
    let to_hoster_a: Vec<String> = (s.outbox().iter())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.contains("\r\nTo: abuse@hoster-a.de\r\n"))
        .collect();
    assert_eq!(to_hoster_a.len(), 1, "one digest");
    let digest = &to_hoster_a[0];
    assert!(
        digest.contains("45.1.0.9") && digest.contains("45.1.0.10"),
        "both of the desk's addresses in it"
    );
    assert!(!digest.contains("xarf.json"), "a plain digest");
    // A desk with one address gets a plain digest too (it got a XARF message).
    let to_desks: Vec<String> = (s.outbox().iter())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| !m.contains("\r\nTo: ec2-abuse@amazon.com\r\n"))
        .collect();
    assert!(to_desks.len() > 1, "{}", to_desks.len());
    for m in &to_desks {
        assert!(!m.contains("xarf.json"), "{m}");
    }
    let to_aws = (s.outbox().iter())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.contains("\r\nTo: ec2-abuse@amazon.com\r\n"))
        .collect::<Vec<_>>();
    assert!(
        !to_aws.is_empty() && to_aws.iter().all(|m| m.contains("xarf.json")),
        "the provider's reports carry XARF"
    );
}

/// One mailbox that RDAP names for one address and Abusix for another (RDAP naming nobody
/// there): the digest said only one of them ("the registry's RDAP record NET-A names … as
/// the abuse contact of 45.1.0.0/24", or the Abusix sentence alone), as if it held for
/// every address. It says both: the RDAP record for its network, and Abusix for the rest.
#[test]
fn a_desk_named_by_rdap_and_by_abusix_is_told_both() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.1"],
        "45.1.0.0",
        "45.1.0.255",
        "NET-A",
        "abuse@hoster.de",
    );
    rdap.route(
        "/rdap/ip/45.9.0.1",
        Reply::Json(200, network("45.9.0.0", "45.9.0.255", "NET-Z", &[])),
    );
    dns.txt("1.0.9.45.abuse-contacts.abusix.zone", &["abuse@hoster.de"]);
    let s = setup(&rdap, &dns, "", "");
    log(&s, &[("10:00:00", "45.9.0.1"), ("10:00:01", "45.1.0.1")]);
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let text = std::fs::read_to_string(&sent[0]).unwrap();
    let body = text.replace("\r\n", "\n");
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        one_line.contains(
            "RDAP record NET-A names abuse@hoster.de as the abuse contact of 45.1.0.0/24"
        ),
        "{one_line}"
    );
    assert!(
        one_line.contains(
            "For 1 other address, the Abusix abuse contact database names it (1.0.9.45.abuse-contacts.abusix.zone)"
        ),
        "{one_line}"
    );
}

/// An address re-reported once `rereport_after_days` passed, whose network names another
/// desk by then: that desk gets a first report, not one saying the address was "reported to
/// you before" (the desk it went to before is another).
#[test]
fn a_re_report_to_a_desk_that_did_not_get_the_first_is_a_first_report() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let ip = "45.1.0.9";
    abuse_net(
        &rdap,
        &[ip],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let mut s = setup(
        &rdap,
        &dns,
        "abusix = false\ncache_days = 1",
        "rereport_after_days = 7",
    );
    log(&s, &[("10:00:00", ip)]);
    s.run(&["run"]).ok();
    assert_eq!(outbox_to(&s), ["abuse@hoster-a.de"]);
    // The network changes hands; the address attacks on.
    abuse_net(
        &rdap,
        &[ip],
        "45.1.0.0",
        "45.1.255.255",
        "NET-B",
        "abuse@hoster-b.de",
    );
    s.append(
        "messages",
        &drop_line("07:00:00", ip, "TCP", 22).replace("Jan 25", "Feb  3"),
    );
    s.now = "2026-02-03T08:00:00Z".to_string();
    s.run(&["run"]).ok();
    let to_b: Vec<String> = (s.outbox().iter())
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|m| m.contains("To: abuse@hoster-b.de"))
        .collect();
    assert_eq!(to_b.len(), 1, "{:?}", outbox_to(&s));
    assert!(!to_b[0].contains("reported to you"), "{}", to_b[0]);
    assert!(!to_b[0].contains("Repeat:"), "{}", to_b[0]);
}
