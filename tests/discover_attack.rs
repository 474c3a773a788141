//! Hostile networks and careless operators against contact discovery: registries that answer
//! more than they own, lookups that keep failing, desks that refuse or stall, budgets smaller
//! than the desks waiting, a cache edited by hand, and discovery switched on over a state with
//! history. Each test states what the tool should do; the set-ups are those of
//! `discover_run.rs` (`common/discovery.rs`).

mod common;
#[path = "common/discovery.rs"]
mod discovery;
#[path = "common/discover_stubs.rs"]
mod stubs;

use common::history;
use discovery::{
    abuse_net, desk_nets, log, outbox_to, setup, smtp_moved, use_mail, use_smtp, with_mail_budget,
};
use stubs::{Dns, Rdap, Reply, bootstrap, entity, network};

/// A registry answers for one of its addresses with a network that spans all of IPv4 (RIPE's
/// `IANA-BLK` stub is `0.0.0.0 - 255.255.255.255`; a hostile or broken registry can say the
/// same). That answer is cached for the whole range, so an address that the bootstrap gives to
/// another registry is never looked up there and goes to the first registry's desk.
#[test]
fn a_registry_cannot_answer_for_addresses_another_registry_serves() {
    let (rdap, other, dns) = (Rdap::start(), Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "0.0.0.0",
        "255.255.255.255",
        "IANA-BLK",
        "abuse@greedy-hoster.de",
    );
    abuse_net(
        &other,
        &["46.1.0.1"],
        "46.1.0.0",
        "46.1.0.255",
        "NET-46",
        "abuse@honest-hoster.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    s.write(
        "bootstrap/ipv4.json",
        &bootstrap(&[("45.0.0.0/8", &rdap.base()), ("46.0.0.0/8", &other.base())]),
    );
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "46.1.0.1")]);
    s.run(&["run"]).ok();
    assert_eq!(
        other.asked(),
        ["/rdap/ip/46.1.0.1"],
        "the registry the bootstrap names for 46/8 is asked"
    );
    assert_eq!(
        outbox_to(&s),
        ["abuse@greedy-hoster.de", "abuse@honest-hoster.de"]
    );
}

/// An address whose registry answers garbage (not "down": a 200 with a body that is not an
/// RDAP object) is looked up again on every run, first, since addresses are looked up in
/// numeric order. With `max_lookups_per_run` no larger than such addresses, every later
/// address waits for ever: nothing is lost only if it is eventually looked up.
#[test]
fn addresses_that_keep_failing_do_not_take_every_runs_lookups() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    rdap.route(
        "/rdap/ip/45.1.0.9",
        Reply::Json(200, "<html>maintenance</html>".into()),
    );
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-B",
        "abuse@hoster-b.nl",
    );
    let s = setup(&rdap, &dns, "max_lookups_per_run = 1\nabusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.2.0.7")]);
    for _ in 0..4 {
        s.run(&["run"]).ok();
    }
    assert!(
        rdap.asked().contains(&"/rdap/ip/45.2.0.7".to_string()),
        "asked: {:?}",
        rdap.asked()
    );
    assert_eq!(outbox_to(&s), ["abuse@hoster-b.nl"]);
}

/// `max_messages_per_run` smaller than the desks waiting: desks are planned in the order of
/// their addresses, so a desk early in the alphabet with new attackers on every run takes the
/// budget every time and a desk late in it is never written to (its addresses then age past
/// `max_age_days` unreported).
#[test]
fn a_busy_desk_early_in_the_alphabet_does_not_starve_the_others() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@aaa-hoster.de",
    );
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-Z",
        "abuse@zzz-hoster.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    with_mail_budget(&s, 1);
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.2.0.7")]);
    s.run(&["run"]).ok();
    // The busy network sends from a new address before every run.
    for k in 10..14 {
        log(&s, &[(&format!("11:00:{k}"), &format!("45.1.0.{k}"))]);
        s.run(&["run"]).ok();
    }
    let to = outbox_to(&s);
    assert!(
        to.contains(&"abuse@zzz-hoster.de".to_string()),
        "five runs, five messages, all to the same desk: {to:?}"
    );
}

/// A cache row whose address was edited into something that is no mail address: the addresses
/// of that network are silently dropped by planning (neither reported nor said to wait), and
/// the run settles as if everything was reported.
#[test]
fn a_cache_row_edited_to_garbage_is_said_and_looked_up_again() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9", "45.1.0.10"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run(&["run"]).ok();
    assert_eq!(outbox_to(&s), ["abuse@hoster-a.de"]);
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute(
        "UPDATE contact_cache SET address = 'not an address' WHERE source = 'rdap'",
        [],
    )
    .unwrap();
    drop(db);
    log(&s, &[("11:00:00", "45.1.0.10")]);
    let ran = s.run(&["run"]).ok();
    // Either the row is not believed (looked up again, reported) or the run says the address
    // waits; silence is the one wrong answer.
    let reported = outbox_to(&s).len() == 2;
    assert!(
        reported || ran.stderr.contains("45.1.0.10") || ran.stderr.contains("wait"),
        "45.1.0.10 neither reported nor said to wait: {}",
        ran.stderr
    );
}

/// A desk whose mailbox is gone refuses (550) each report. The network keeps attacking from
/// new addresses: every run writes to the dead desk again and ends with exit status 1, for
/// ever, although nothing about the operator's setup is wrong.
#[test]
fn a_desk_that_refused_is_not_written_to_again_for_each_new_address() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@gone-hoster.de",
    );
    let server = common::smtp::start(common::smtp::Security::Plain, None, 0);
    let s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, server.port);
    *server.rcpt.lock().unwrap() = Some((550, "5.1.1 no such mailbox".into()));
    log(&s, &[("10:00:00", "45.1.0.9")]);
    // A refusal is a rejected report (1), said, and kept in the ledger.
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(first.stderr.contains("rejected"), "{}", first.stderr);
    let mut codes = Vec::new();
    for k in 10..13 {
        log(&s, &[(&format!("11:00:{k}"), &format!("45.1.0.{k}"))]);
        codes.push(s.run_bounded(&["run"]).code);
    }
    let refused = history(&s)
        .iter()
        .filter(|r| r["status"] == "rejected")
        .count();
    assert_eq!(
        (refused, codes),
        (1, vec![0, 0, 0]),
        "one refusal is enough to know the desk is gone"
    );
}

/// A discovered desk's digest that the operator's own mail system refuses for its size
/// (Postfix's sendmail over `message_size_limit`): the desk refused nothing, and is written
/// to once the limit is met. It was taken for the desk's refusal, and the desk was never
/// written to again.
#[test]
fn a_digest_your_own_mail_system_refuses_for_its_size_does_not_shut_the_desk_out() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9", "45.1.0.10"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    let dir = s.dir.path().display().to_string();
    use_mail(
        &s,
        &format!("transport = \"sendmail\"\nsendmail_path = \"{dir}/sendmail\""),
    );
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat >/dev/null\necho 'sendmail: fatal: abuse@example.org(0): message file too big' >&2\nexit 75\n",
    );
    log(&s, &[("10:00:00", "45.1.0.9")]);
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("max_message_bytes"),
        "{}",
        first.stderr
    );
    s.write_program(
        "sendmail",
        &format!("#!/bin/sh\nmkdir -p {dir}/sent\ncat > {dir}/sent/$$.eml\n"),
    );
    log(&s, &[("10:00:05", "45.1.0.10")]);
    s.run_bounded(&["run"]).ok();
    let sent: Vec<String> = match std::fs::read_dir(s.path("sent")) {
        Ok(files) => (files.map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())).collect(),
        Err(_) => Vec::new(),
    };
    assert_eq!(sent.len(), 1, "the desk is written to");
    for ip in ["45.1.0.9", "45.1.0.10"] {
        assert!(sent[0].contains(ip), "{ip}: {}", sent[0]);
    }
}

/// A small SMTP server that answers RCPT with 450 for one recipient (a relay whose recipient
/// verification cannot reach that domain's MX) and accepts everything else.
fn stalling_smtp(stall: &'static str) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    stalling_smtp_saying(
        stall,
        b"450 4.1.1 recipient address verification in progress\r\n",
    )
}

/// [`stalling_smtp`], answering the stalled recipients with `later`.
fn stalling_smtp_saying(
    stall: &'static str,
    later: &'static [u8],
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let acc = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let acc = acc.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut input = BufReader::new(stream);
                let _ = out.write_all(b"220 stub ESMTP\r\n");
                let mut rcpts: Vec<String> = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if input.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-stub\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        rcpts.clear();
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT") {
                        if line.contains(stall) {
                            later
                        } else {
                            rcpts.push(line.trim().to_string());
                            b"250 ok\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        let _ = out.write_all(b"354 go\r\n");
                        loop {
                            line.clear();
                            if input.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                        }
                        acc.lock().unwrap().extend(rcpts.drain(..));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = out.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = out.write_all(reply);
                }
            });
        }
    });
    (port, accepted)
}

/// One discovered desk whose domain the relay cannot verify answers 4xx to RCPT on every
/// attempt. That report is retried first on every run, its 4xx closes the mail route for the
/// run, and so the configured providers' reports never go out again: a network that chooses
/// its own abuse address can stop all of the operator's reporting.
#[test]
fn one_stalling_discovered_desk_does_not_hold_back_the_providers() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@tarpit-hoster.de",
    );
    let (port, accepted) = stalling_smtp("tarpit-hoster.de");
    let s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, port);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run_bounded(&["run"]);
    // The next day an AWS address attacks; the provider's report should go out.
    log(&s, &[("11:00:00", "3.5.140.2")]);
    let mut last = None;
    for _ in 0..3 {
        last = Some(s.run_bounded(&["run"]));
    }
    let last = last.unwrap();
    let got = accepted.lock().unwrap().clone();
    assert!(
        got.iter().any(|r| r.contains("ec2-abuse@amazon.com")),
        "the AWS report never went out: {got:?}; last run exited {}: {}; ledger: {:?}",
        last.code,
        last.stderr,
        history(&s)
            .iter()
            .map(|r| (r["to"].clone(), r["status"].clone()))
            .collect::<Vec<_>>()
    );
}

/// Discovery switched on over a state that has read weeks of log: the addresses read before
/// have no log lines kept (nobody kept evidence for addresses in no provider), so the first
/// run writes digests that claim attacks and show none of them.
#[test]
fn enabling_discovery_over_history_sends_no_digest_without_log_lines() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    let with = std::fs::read_to_string(s.path("config.toml")).unwrap();
    let without = with.replace("enabled = true", "enabled = false");
    s.write("config.toml", &without);
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.1.0.9")]);
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty());
    s.write("config.toml", &with);
    s.run(&["run"]).ok();
    for p in s.outbox() {
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("45.1.0.9") || text.contains("SRC=45.1.0.9"),
            "a digest names 45.1.0.9 but shows none of its log lines:\n{text}"
        );
    }
}

/// Networks nest: an ISP's allocation holds its customers' assignments, each with a desk of its
/// own, and a registry answers for an address with the most specific network holding it. An
/// answer for the allocation is cached for the whole allocation, so an address inside a
/// customer's assignment met after it goes to the ISP, and the customer's desk is never asked.
#[test]
fn a_customers_assignment_inside_a_cached_allocation_is_still_asked() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    // The ISP's network is an allocation (RIPE's "ALLOCATED PA", ARIN's "DIRECT ALLOCATION").
    let isp = network(
        "45.1.0.0",
        "45.1.255.255",
        "NET-ISP",
        &[entity(&["abuse"], Some("abuse@big-isp.de"), &[])],
    )
    .replace("\"type\":\"ASSIGNED\"", "\"type\":\"ALLOCATED PA\"");
    assert!(isp.contains("ALLOCATED PA"));
    rdap.route("/rdap/ip/45.1.0.9", Reply::Json(200, isp));
    abuse_net(
        &rdap,
        &["45.1.77.7"],
        "45.1.77.0",
        "45.1.77.255",
        "NET-CUSTOMER",
        "abuse@customer-hoster.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.1.77.7")]);
    s.run(&["run"]).ok();
    assert_eq!(
        outbox_to(&s),
        ["abuse@big-isp.de", "abuse@customer-hoster.de"],
        "asked: {:?}",
        rdap.asked()
    );
}

/// Hostile registry answers, each a failure of its one address and nothing more: a redirect
/// loop, an answer over the size limit, a contact with CR LF and a header after it, a
/// non-ASCII contact, a 300-character contact. The run ends, exits 0, and writes no message to
/// any of them.
#[test]
fn hostile_registry_answers_fail_only_their_address() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    rdap.route(
        "/rdap/ip/45.1.0.1",
        Reply::Redirect(format!("{}ip/45.1.0.1", rdap.base())),
    );
    let huge = format!(
        r#"{{"objectClassName":"ip network","remarks":[{{"description":["{}"]}}]}}"#,
        "x".repeat(2 << 20)
    );
    rdap.route("/rdap/ip/45.1.0.2", Reply::Json(200, huge));
    abuse_net(
        &rdap,
        &["45.1.0.3"],
        "45.1.0.3",
        "45.1.0.3",
        "NET-CRLF",
        "abuse@hoster.de\\r\\nBcc: victim@elsewhere.de",
    );
    abuse_net(
        &rdap,
        &["45.1.0.4"],
        "45.1.0.4",
        "45.1.0.4",
        "NET-UTF8",
        "abus\u{e9}@h\u{f6}ster.de",
    );
    let long = format!("{}@hoster.de", "a".repeat(300));
    abuse_net(
        &rdap,
        &["45.1.0.5"],
        "45.1.0.5",
        "45.1.0.5",
        "NET-LONG",
        &long,
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(
        &s,
        &[
            ("10:00:01", "45.1.0.1"),
            ("10:00:02", "45.1.0.2"),
            ("10:00:03", "45.1.0.3"),
            ("10:00:04", "45.1.0.4"),
            ("10:00:05", "45.1.0.5"),
            ("10:00:06", "3.5.140.2"),
        ],
    );
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"], "{}", ran.stderr);
    for p in s.outbox() {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.contains("victim@"), "{text}");
    }
}

/// A contact with a line break, a NUL or a bidi mark inside it named a mailbox once that
/// character was taken out (`abuse@hoster.de\r\n.attacker-site.com` went to
/// `abuse@hoster.de.attacker-site.com`); and an answer about another network (its range not
/// holding the address asked about) gave its desk to the address. Neither mails anyone: the
/// good desk beside them still gets its address, and the run exits 0.
#[test]
fn a_contact_with_a_hidden_character_or_of_another_network_gets_no_mail() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let joined = [
        ("45.1.0.1", "abuse@hoster.de\\r\\n.attacker-site.com"),
        ("45.1.0.2", "abuse@isp-two.net\\u0000x"),
        ("45.1.0.3", "abuse@isp-three.net\\u202e.attacker-site.com"),
    ];
    for (ip, email) in joined {
        abuse_net(&rdap, &[ip], ip, ip, "NET-HIDDEN", email);
    }
    abuse_net(
        &rdap,
        &["45.2.0.1"],
        "99.0.0.0",
        "99.0.0.255",
        "NET-ELSEWHERE",
        "abuse@wrongnet.net",
    );
    abuse_net(
        &rdap,
        &["45.3.0.1"],
        "45.3.0.0",
        "45.3.255.255",
        "NET-GOOD",
        "abuse@good.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(
        &s,
        &[
            ("10:00:01", "45.1.0.1"),
            ("10:00:02", "45.1.0.2"),
            ("10:00:03", "45.1.0.3"),
            ("10:00:04", "45.2.0.1"),
            ("10:00:05", "45.3.0.1"),
        ],
    );
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(outbox_to(&s), ["abuse@good.de"], "{}", ran.stderr);
    assert!(
        ran.stderr.contains("does not hold 45.2.0.1"),
        "the lookup says why it failed: {}",
        ran.stderr
    );
}

/// A registry names a mailbox with a quoted local part (`"abuse desk"@…`): no desk writes one,
/// and its header did not read back as an address, so building its message failed the whole
/// command, `preview` and the providers' reports included, for as long as it was cached.
#[test]
fn a_quoted_local_part_is_no_desk_and_fails_nothing_else() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.6"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-QUOTED",
        "\\\"abuse desk\\\"@hoster.de",
    );
    abuse_net(
        &rdap,
        &["45.2.0.1"],
        "45.2.0.0",
        "45.2.255.255",
        "NET-GOOD",
        "abuse@good.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(
        &s,
        &[
            ("10:00:01", "45.1.0.6"),
            ("10:00:02", "45.2.0.1"),
            ("10:00:03", "3.5.140.2"),
        ],
    );
    let previewed = s.run_bounded(&["preview"]);
    assert_eq!(previewed.code, 0, "{}", previewed.stderr);
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        outbox_to(&s),
        ["abuse@good.de", "ec2-abuse@amazon.com"],
        "{}",
        ran.stderr
    );
}

/// A preview against a bootstrap URL keeps nothing: not the bootstrap file, not the answers.
#[test]
fn a_preview_with_a_bootstrap_url_changes_nothing_in_state_dir() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    rdap.route(
        "/boot/ipv4.json",
        Reply::Json(200, bootstrap(&[("45.0.0.0/8", &rdap.base())])),
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            &format!("rdap_bootstrap = \"{}/bootstrap\"", s.dir.path().display()),
            &format!("rdap_bootstrap = \"http://{}/boot/\"", rdap.addr),
        );
    assert!(config.contains("/boot/"));
    s.write("config.toml", &config);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run(&["run", "--provider", "aws"]).ok(); // a state exists
    let before = common::snapshot(&s.path("state"));
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(preview["reports"].as_array().unwrap().len(), 1);
    assert_eq!(common::snapshot(&s.path("state")), before);
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let boots = rdap
        .asked()
        .iter()
        .filter(|p| p.starts_with("/boot/"))
        .count();
    // Once for the preview, once for the run; the second run has it cached.
    assert_eq!(boots, 2, "{:?}", rdap.asked());
    assert_eq!(outbox_to(&s), ["abuse@hoster-a.de"]);
}

/// A cache row whose family was edited into text: `contacts` says which row, and a run still
/// reports the configured providers.
#[test]
fn a_cache_row_with_a_garbage_family_does_not_break_contacts_or_runs() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9", "45.1.0.10"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute("UPDATE contact_cache SET family = 'four'", [])
        .unwrap();
    drop(db);
    let listed = s.run(&["contacts"]);
    log(&s, &[("11:00:00", "45.1.0.10"), ("11:00:01", "3.5.140.2")]);
    let ran = s.run(&["run"]);
    eprintln!("RUN: {} {}", ran.code, ran.stderr);
    assert!(
        listed.code == 0 || listed.stderr.contains("contact_cache"),
        "{}",
        listed.stderr
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        outbox_to(&s),
        [
            "abuse@hoster-a.de",
            "abuse@hoster-a.de",
            "ec2-abuse@amazon.com"
        ],
        "{}",
        ran.stderr
    );
}

/// A typo in `rdap_bootstrap` (a folder that does not exist) is a configuration mistake:
/// `check` names it. Without that, every run only says "a lookup failed" and exits 0 for ever.
#[test]
fn check_names_a_bootstrap_folder_that_does_not_exist() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let s = setup(&rdap, &dns, "", "");
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace("/bootstrap\"", "/bootstrapp\"");
    s.write("config.toml", &config);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    let checked = s.run(&["check"]);
    assert_ne!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
    assert!(
        (checked.stdout.clone() + &checked.stderr).contains("bootstrapp"),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
}

/// A bootstrap file in the folder that is no bootstrap file (a download cut short) is as
/// much a configuration mistake as a missing one: `check` fails naming it, and `run` refuses
/// (78) rather than saying on every run that addresses wait.
#[test]
fn a_bootstrap_file_that_does_not_parse_is_a_configuration_mistake() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let s = setup(&rdap, &dns, "", "");
    let whole = std::fs::read_to_string(s.path("bootstrap/ipv4.json")).unwrap();
    s.write("bootstrap/ipv4.json", &whole[..whole.len() / 2]);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    let checked = s.run(&["check"]);
    assert_eq!(checked.code, 78, "{}{}", checked.stdout, checked.stderr);
    assert!(
        (checked.stdout.clone() + &checked.stderr).contains("ipv4.json"),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("not an RDAP bootstrap file"),
        "{}",
        ran.stderr
    );
}

/// A registrant can name any mailbox as its abuse contact, the operator's own among them: the
/// tool then writes its reports to itself (and into its own ticket system). The operator's
/// `from`, `reply_to` and `cc` are never a discovered desk.
#[test]
fn the_operators_own_address_is_never_a_discovered_desk() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-MIRROR",
        "abuse@operator-site.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace("<abuse@example.org>", "<abuse@operator-site.de>");
    s.write("config.toml", &config);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    s.run(&["run"]).ok();
    assert_eq!(outbox_to(&s), Vec::<String>::new());
}

/// Two networks of one organisation name its desk with the local part spelt differently
/// (`ABUSE@` in one registry object, `abuse@` in another). It is one mailbox: one digest a run.
#[test]
fn one_mailbox_spelt_in_two_cases_gets_one_digest() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-1",
        "ABUSE@hoster-a.de",
    );
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-2",
        "abuse@hoster-a.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.2.0.7")]);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "{:?}", outbox_to(&s));
    // `contacts` counts the addresses sent to the mailbox under either spelling.
    let listed = s.run(&["contacts", "--json"]).ok().json();
    let reported: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reported"].as_u64().unwrap())
        .collect();
    assert_eq!(reported, [2, 2], "{listed}");
}

/// One desk whose server defers holds back that desk alone: another desk's digest goes out in
/// the same run, and after three days of deferrals the report is given up (`rejected`, said
/// once) instead of failing every run.
#[test]
fn a_deferring_desk_waits_alone_and_is_given_up_after_three_days() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    desk_nets(
        &rdap,
        &[
            ("45.1.0.9", "abuse@aaa-tarpit.de"),
            ("45.2.0.7", "abuse@bbb-hoster.nl"),
        ],
    );
    let (port, accepted) = stalling_smtp("aaa-tarpit.de");
    let mut s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, port);
    log(&s, &[("10:00:00", "45.1.0.9"), ("10:00:01", "45.2.0.7")]);
    // A stranger's server deferring is a transient failure (75): said, and retried.
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    assert!(
        first.stderr.contains("deferred (will retry)"),
        "{}",
        first.stderr
    );
    let got = accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("abuse@bbb-hoster.nl"), "{got:?}");

    // A day later: tried again, still deferred, still waiting.
    s.now = "2026-01-27T08:00:00Z".into();
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    // Past three days: given up, said, and never tried again.
    s.now = "2026-01-29T09:00:00Z".into();
    let given_up = s.run_bounded(&["run"]);
    assert!(given_up.stderr.contains("given up"), "{}", given_up.stderr);
    let ledger = history(&s);
    let tarpit = ledger
        .iter()
        .find(|r| r["contact"]["address"] == "abuse@aaa-tarpit.de")
        .unwrap();
    assert_eq!(tarpit["status"], "rejected");
    let again = s.run_bounded(&["run"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(accepted.lock().unwrap().len(), 1);
}

/// A desk that defers everything, with three reports waiting from earlier runs (one network
/// attacking from a new address each run), is retried three times at the start of every run:
/// three deferrals in a row close the mail route, and another desk's new report waits behind
/// that one stranger for as long as its reports are not given up.
#[test]
fn one_deferring_desk_with_three_waiting_reports_holds_back_no_other_desk() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9", "45.1.0.10", "45.1.0.11"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@aaa-tarpit.de",
    );
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-B",
        "abuse@bbb-hoster.nl",
    );
    let (port, accepted) = stalling_smtp("aaa-tarpit.de");
    let mut s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, port);
    for (i, (now, ip)) in [
        ("2026-01-26T10:00:00Z", "45.1.0.9"),
        ("2026-01-26T11:00:00Z", "45.1.0.10"),
        ("2026-01-26T12:00:00Z", "45.1.0.11"),
    ]
    .into_iter()
    .enumerate()
    {
        s.now = now.into();
        log(&s, &[(&format!("1{i}:00:00"), ip)]);
        s.run_bounded(&["run"]);
    }
    s.now = "2026-01-26T13:00:00Z".into();
    log(&s, &[("13:00:00", "45.2.0.7")]);
    let ran = s.run_bounded(&["run"]);
    let got = accepted.lock().unwrap().clone();
    assert!(
        got.iter().any(|m| m.contains("abuse@bbb-hoster.nl")),
        "another desk's report waits behind the deferring one: {}",
        ran.stderr
    );
}

/// A desk's network (45.2.0.0/24, `abuse@bbb-hoster.nl`) attacking, and a first run while
/// the operator's relay is down (75). The registry and resolver stubs, the setup, and a
/// function that points the relay setting at a port.
fn a_desks_report_waiting_for_the_relay() -> (Rdap, Dns, common::Setup, impl Fn(&common::Setup, u16))
{
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.2.0.7"],
        "45.2.0.0",
        "45.2.0.255",
        "NET-B",
        "abuse@bbb-hoster.nl",
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, closed);
    log(&s, &[("10:00:00", "45.2.0.7")]);
    let down = s.run_bounded(&["run"]);
    assert_eq!(down.code, 75, "{}", down.stderr);
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    let relay_at = move |s: &common::Setup, port: u16| {
        let text = config.replace(&format!("port = {closed}"), &format!("port = {port}"));
        s.write("config.toml", &text);
    };
    (rdap, dns, s, relay_at)
}

/// The operator's own relay is down over a long weekend: every report fails with a
/// connection error, the providers' and the discovered desks' alike. When it is back, the
/// desks' reports are given up as if their servers had deferred them, without being tried
/// once more: addresses reported to nobody, and a false reason in the ledger.
#[test]
fn a_relay_outage_of_three_days_does_not_give_up_the_desks_reports() {
    let (_rdap, _dns, mut s, relay_at) = a_desks_report_waiting_for_the_relay();
    let (port, accepted) = stalling_smtp("nobody.invalid");
    relay_at(&s, port);
    s.now = "2026-01-29T09:00:00Z".into();
    let back = s.run_bounded(&["run"]);
    let got = accepted.lock().unwrap().clone();
    assert!(
        got.iter().any(|m| m.contains("abuse@bbb-hoster.nl")),
        "the desk's report is tried once the relay is back: {}",
        back.stderr
    );
}

/// The relay was down for three days; when it is back, the desk's server greylists the
/// report once. The desk's patience starts when it is first asked: the report was given up
/// on that one deferral ("deferred it for more than 3 days"), never to reach the desk, and
/// the run still said it would retry. It waits, and goes out once the desk takes it.
#[test]
fn a_desk_that_defers_once_after_a_relay_outage_is_not_given_up() {
    let (_rdap, _dns, mut s, relay_at) = a_desks_report_waiting_for_the_relay();
    let (greylisting, _) = stalling_smtp("bbb-hoster.nl");
    relay_at(&s, greylisting);
    s.now = "2026-01-29T09:00:00Z".into();
    let back = s.run_bounded(&["run"]);
    assert_eq!(back.code, 75, "{}", back.stderr);
    assert!(!back.stderr.contains("given up"), "{}", back.stderr);
    let ledger = history(&s);
    assert_eq!(ledger[0]["status"], "failed", "{ledger:?}");
    let (port, accepted) = stalling_smtp("nobody.invalid");
    relay_at(&s, port);
    s.now = "2026-01-29T10:00:00Z".into();
    let taken = s.run_bounded(&["run"]);
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    let got = accepted.lock().unwrap().clone();
    assert!(
        got.iter().any(|m| m.contains("abuse@bbb-hoster.nl")),
        "{got:?}"
    );
}

/// The operator's relay is out of disk for days and says so to the one desk's recipient
/// (Postfix's "452 4.3.1 Insufficient system storage"): the mail system's own trouble, by its
/// enhanced code, not the desk's. The desk's report was given up after three days as if its
/// server had deferred it; it waits, and goes out once the relay has room again. So for
/// Postfix's "later" to this host or to the sender, which its `smtpd_delay_reject` (on by
/// default) gives at RCPT: a client restriction, or the sender's domain not found in DNS.
#[test]
fn a_relays_own_trouble_at_a_recipient_is_not_the_desks() {
    for said in [
        &b"452 4.3.1 Insufficient system storage\r\n"[..],
        b"450 4.7.1 <unknown[127.0.0.1]>: Client host rejected: try again later\r\n",
        b"450 4.1.8 <abuse@example.org>: Sender address rejected: Domain not found\r\n",
    ] {
        the_relay_says_later_for_days(said);
    }
}

fn the_relay_says_later_for_days(said: &'static [u8]) {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-A",
        "abuse@hoster-a.de",
    );
    let (full, accepted) = stalling_smtp_saying("hoster-a.de", said);
    let mut s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, full);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    for day in ["2026-01-27", "2026-01-28", "2026-01-29", "2026-01-30"] {
        s.now = format!("{day}T09:00:00Z");
        let later = s.run_bounded(&["run"]);
        assert_eq!(later.code, 75, "{day}: {}", later.stderr);
        assert!(
            !later.stderr.contains("given up"),
            "{day}: {}",
            later.stderr
        );
    }
    assert!(accepted.lock().unwrap().is_empty());
    let (port, taken) = stalling_smtp("nobody.invalid");
    smtp_moved(&s, full, port);
    s.now = "2026-01-30T10:00:00Z".into();
    let mended = s.run_bounded(&["run"]);
    assert_eq!(mended.code, 0, "{}", mended.stderr);
    let got = taken.lock().unwrap().clone();
    assert!(
        got.iter().any(|m| m.contains("abuse@hoster-a.de")),
        "{got:?}"
    );
}

/// The clock ran 60 days ahead for a run (a bad hardware clock before NTP) that learnt a
/// registry's "none"; once the clock was set back, that "none" was trusted for 60 days
/// more, not a week, and the network's attackers were held until their lines aged out. An
/// answer fetched later than the clock allows is not believed: the registry is asked again.
#[test]
fn a_none_learnt_while_the_clock_ran_ahead_is_not_trusted_once_it_is_back() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let none = network("45.1.0.0", "45.1.0.255", "NET-A", &[]);
    rdap.route("/rdap/ip/45.1.0.1", Reply::Json(200, none));
    // The log's own stamps are right; only the run's clock is ahead (and no line is too old
    // for it to count).
    let mut s = setup(&rdap, &dns, "abusix = false", "max_age_days = 0");
    s.now = "2026-03-27T12:00:00Z".into();
    log(&s, &[("10:00:00", "45.1.0.1")]);
    s.run_bounded(&["run"]).ok();
    assert!(s.outbox().is_empty());
    // The registry names a desk now.
    abuse_net(
        &rdap,
        &["45.1.0.1", "45.1.0.2"],
        "45.1.0.0",
        "45.1.0.255",
        "NET-A",
        "abuse@a-hoster.de",
    );
    s.now = "2026-01-26T12:00:00Z".into();
    log(&s, &[("10:00:00", "45.1.0.2")]);
    let back = s.run_bounded(&["run"]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(outbox_to(&s), ["abuse@a-hoster.de"], "{}", back.stderr);
}

/// The desk greylists the report once, then the operator's relay is down for days, then
/// the desk greylists the first try after it again (greylisting does): the desk was asked
/// twice, and the days between were the operator's outage, yet the report was given up as
/// deferred by the desk for more than three days. The outage restarts the desk's patience.
#[test]
fn a_desk_that_deferred_before_a_relay_outage_is_not_given_up_after_it() {
    let (_rdap, _dns, mut s, relay_at) = a_desks_report_waiting_for_the_relay();
    let (greylisting, _) = stalling_smtp("bbb-hoster.nl");
    relay_at(&s, greylisting);
    s.now = "2026-01-26T10:00:00Z".into();
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    relay_at(&s, down);
    for day in [
        "2026-01-27T10:00:00Z",
        "2026-01-28T10:00:00Z",
        "2026-01-29T10:00:00Z",
    ] {
        s.now = day.into();
        assert_eq!(s.run_bounded(&["run"]).code, 75);
    }
    relay_at(&s, greylisting);
    s.now = "2026-01-30T10:00:00Z".into();
    let back = s.run_bounded(&["run"]);
    assert_eq!(back.code, 75, "{}", back.stderr);
    assert!(!back.stderr.contains("given up"), "{}", back.stderr);
    assert_eq!(history(&s)[0]["status"], "failed");
}

/// A bootstrap file that gives `45.0.0.0/8` to one registry and `45.1.0.0/16` within it to
/// another: the wider registry's answer for 45.0.0.1 (all of 45/8) was cut to its /8 and
/// stood for the /16 too, so 45.1.0.9 went to the wider registry's desk and the other
/// registry was never asked. It stands for the /8 without the /16.
#[test]
fn a_registrys_answer_does_not_stand_for_a_prefix_the_bootstrap_gives_another() {
    let (wide, narrow, dns) = (Rdap::start(), Rdap::start(), Dns::start());
    abuse_net(
        &wide,
        &["45.0.0.1"],
        "45.0.0.0",
        "45.255.255.255",
        "NET-WIDE",
        "abuse@big-member.de",
    );
    abuse_net(
        &narrow,
        &["45.1.0.9"],
        "45.1.0.0",
        "45.1.0.255",
        "NET-NARROW",
        "abuse@b-customer.de",
    );
    let s = setup(&wide, &dns, "abusix = false", "");
    s.write(
        "bootstrap/ipv4.json",
        &bootstrap(&[
            ("45.0.0.0/8", &wide.base()),
            ("45.1.0.0/16", &narrow.base()),
        ]),
    );
    // The wider registry's address first, so that its answer is in hand for the other.
    log(&s, &[("10:00:00", "45.0.0.1"), ("10:00:01", "45.1.0.9")]);
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        outbox_to(&s),
        ["abuse@b-customer.de", "abuse@big-member.de"],
        "{}",
        ran.stderr
    );
    assert_eq!(narrow.asked(), ["/rdap/ip/45.1.0.9"]);
}

/// What the release before remembered of a registry's answers, taken with rules since
/// mended (a contact with a line break in it joined to the text around it, as
/// `abuse@hoster.de.attacker-site.com`), went on being used after the upgrade: the new
/// rules act only on answers stored by them. The upgrade asks the registries again.
#[test]
fn registry_answers_remembered_before_the_upgrade_are_asked_again() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    abuse_net(
        &rdap,
        &["45.1.0.1", "45.1.0.2"],
        "45.1.0.0",
        "45.1.0.255",
        "NET-A",
        "abuse@hoster.de",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    log(&s, &[("10:00:00", "45.1.0.1")]);
    s.run_bounded(&["run"]).ok();
    assert_eq!(outbox_to(&s), ["abuse@hoster.de"]);
    // The state as the release before left it, with the answer it took.
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute_batch(
        "UPDATE contact_cache SET address = 'abuse@hoster.de.attacker-site.com';
         ALTER TABLE report DROP COLUMN deferred_since;
         ALTER TABLE cursor DROP COLUMN tail;
         ALTER TABLE report DROP COLUMN unclear_since; ALTER TABLE report DROP COLUMN handed;
         PRAGMA user_version = 16;",
    )
    .unwrap();
    drop(db);
    log(&s, &[("10:00:05", "45.1.0.2")]);
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        outbox_to(&s),
        ["abuse@hoster.de", "abuse@hoster.de"],
        "{}",
        ran.stderr
    );
    assert_eq!(rdap.asked().len(), 2, "asked again: {:?}", rdap.asked());
}

/// Three desks in a row deferred by the server: the way out itself defers (the relay's own
/// trouble), so the run stops trying, the rest waits, and the run says so with 75.
#[test]
fn three_desks_deferred_in_a_row_are_the_relays_trouble() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    desk_nets(
        &rdap,
        &[
            ("45.1.0.9", "abuse@aaa-tarpit.de"),
            ("45.2.0.9", "abuse@bbb-tarpit.de"),
            ("45.3.0.9", "abuse@ccc-tarpit.de"),
            ("45.4.0.9", "abuse@ddd-hoster.nl"),
        ],
    );
    let (port, accepted) = stalling_smtp("tarpit");
    let s = setup(&rdap, &dns, "abusix = false", "");
    use_smtp(&s, port);
    log(
        &s,
        &[
            ("10:00:00", "45.1.0.9"),
            ("10:00:01", "45.2.0.9"),
            ("10:00:02", "45.3.0.9"),
            ("10:00:03", "45.4.0.9"),
        ],
    );
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(accepted.lock().unwrap().is_empty());
    // The fourth desk's report is not lost: it goes out once the relay takes mail again.
    let ledger = history(&s);
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    // Days later, the three deferred again, in a row: the way out's trouble, not the
    // desks'. Nothing is given up (each was, as if its desk had deferred it for three days,
    // and the desks never got them), and the run is the relay's transient failure.
    let mut s = s;
    s.now = "2026-01-30T08:00:00Z".into();
    let later = s.run_bounded(&["run"]);
    assert!(!later.stderr.contains("given up"), "{}", later.stderr);
    assert_eq!(later.code, 75, "{}", later.stderr);
    let ledger = history(&s);
    assert!(ledger.iter().all(|r| r["status"] == "failed"), "{ledger:?}");
    // Once the way out takes mail again, every desk gets its report.
    let (open, taken) = stalling_smtp("nobody.invalid");
    smtp_moved(&s, port, open);
    s.now = "2026-01-30T09:00:00Z".into();
    let mended = s.run_bounded(&["run"]);
    assert_eq!(mended.code, 0, "{}", mended.stderr);
    assert_eq!(taken.lock().unwrap().len(), 4, "{}", mended.stderr);
}

/// The registry names nobody for a network (only a registrant, and Abusix knows no desk): its
/// attacker is not reported, and that "none" is trusted for a week. A week later the registry
/// names a desk. With nothing new in the log, the next run after the "none" expired looks the
/// address up again and reports it while its packets are recent; before, the run took
/// everything as settled and the address was never looked at again.
#[test]
fn an_address_held_back_by_a_registrys_none_is_looked_up_again_when_it_expires() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let nobody = network(
        "45.1.0.0",
        "45.1.255.255",
        "NET-ISP",
        &[entity(&["registrant"], Some("noc@isp.de"), &[])],
    );
    rdap.route("/rdap/ip/45.1.2.3", Reply::Json(200, nobody));
    let mut s = setup(&rdap, &dns, "", "");
    log(&s, &[("10:00:01", "45.1.2.3"), ("10:00:02", "3.5.140.2")]);
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"], "{}", first.stderr);
    // The registry names a desk; the "none" is still trusted the next day.
    abuse_net(
        &rdap,
        &["45.1.2.3"],
        "45.1.0.0",
        "45.1.255.255",
        "NET-ISP",
        "abuse@isp.de",
    );
    s.now = "2026-01-27T08:00:00Z".into();
    let next_day = s.run_bounded(&["run"]);
    assert_eq!(next_day.code, 0, "{}", next_day.stderr);
    assert_eq!(outbox_to(&s), ["ec2-abuse@amazon.com"]);
    // Eight days on, within max_age_days of the packets.
    s.now = "2026-02-03T08:00:00Z".into();
    let previewed = s.run_bounded(&["preview", "--json"]);
    assert!(
        previewed.stdout.contains("abuse@isp.de"),
        "{}",
        previewed.stderr
    );
    let later = s.run_bounded(&["run"]);
    assert_eq!(later.code, 0, "{}", later.stderr);
    assert_eq!(
        outbox_to(&s),
        ["abuse@isp.de", "ec2-abuse@amazon.com"],
        "{}",
        later.stderr
    );
    // Reported, it is not looked at again.
    let asked = rdap.asked().len();
    s.now = "2026-02-05T08:00:00Z".into();
    let after = s.run_bounded(&["run"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(outbox_to(&s).len(), 2);
    assert_eq!(rdap.asked().len(), asked);
}
