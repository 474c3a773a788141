//! A run's cost does not follow the history: with a settled marker, a run looks only at the
//! IPs it read and those the ledger moved. These tests hold that to its rules — every IP that
//! a full look would report is still reported: one held back by the sending budget, by a
//! refusal, by `min_hits` until the setting changes, or by a re-report window that passes with
//! nothing new read — and show that a quiet run does not read the stored observations at all.

mod common;
#[path = "common/faulty_smtp.rs"]
mod faulty_smtp;

use std::fs;

use common::*;
use faulty_smtp::{FaultyServer, Mode};

/// Rows no reader can parse, in the stored observations, the ledger and the evidence: any run
/// that reads all of one of them fails.
const POISON: &[&str] = &[
    "INSERT INTO observation (ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports, dsts, hosts)
     VALUES ('not an address', 0, 0, 1, '', '', '', '', '')",
    "INSERT INTO report_ip (report_id, ip, hits, first_seen, last_seen)
     SELECT id, 'not an address', 1, 0, 0 FROM report LIMIT 1",
    "INSERT INTO evidence (provider, time, seq, ip, line) VALUES ('aws', 0, 999, 'not an address', 'x')",
];

fn sql(s: &Setup, statements: &[&str]) {
    let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    for statement in statements {
        conn.execute(statement, []).unwrap();
    }
}

#[test]
fn a_quiet_run_reads_neither_every_known_ip_nor_the_ledger() {
    let s = Setup::standard();
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "81.2.69.143", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    sql(&s, POISON);
    let quiet = s.run(&["run"]).ok();
    assert!(
        quiet.stderr.contains("nothing new to report"),
        "{}",
        quiet.stderr
    );
    s.run(&["preview"]).ok();
    // A run that reads a little asks the ledger about the addresses it read, not every row:
    // one no reader can parse, of another address, does not stop it.
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "UDP", 53),
    );
    s.run(&["preview"]).ok();
    sql(
        &s,
        &[
            "DELETE FROM observation WHERE ip = 'not an address'",
            "DELETE FROM report_ip WHERE ip = 'not an address'",
            "DELETE FROM evidence WHERE ip = 'not an address'",
        ],
    );
    // What is read next is looked up by address, and reported as before.
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![
            vec!["3.5.140.2".to_string()],
            vec!["34.223.47.190".to_string()]
        ]
    );
    let json = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        ip_list(&json["unattributed"]),
        ["81.2.69.143"],
        "every IP known"
    );
}

#[test]
fn ips_held_by_the_sending_budget_go_out_on_a_quiet_run() {
    let s = Setup::new(
        &with_other_provider(&standard_config(""))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
            drop_line("10:00:02", "81.2.69.143", "TCP", 80),
        ]
        .concat(),
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("1 report(s) wait"), "{}", out.stderr);
    s.run(&["run"]).ok();
    // The other provider's desk, never tried, takes the one message of the second run; the
    // first desk, tried by the first run, the third's.
    assert_eq!(
        s.reported(),
        vec![
            vec!["3.5.140.2".to_string()],
            vec!["81.2.69.143".to_string()],
            vec!["34.223.47.190".to_string()]
        ]
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 3, "nothing twice");
}

#[test]
fn ips_of_a_refused_report_go_out_on_a_quiet_run() {
    let server = FaultyServer::start(Mode::Healthy);
    let s = Setup::new(&standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_secs = 5",
            server.port
        ),
    ));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    server.set_mode(Mode::Reject552);
    s.append(
        "messages",
        &drop_line("10:00:01", "34.223.47.190", "UDP", 53),
    );
    assert_eq!(s.run(&["run"]).code, 1);
    server.set_mode(Mode::Healthy);
    s.run(&["run"]).ok();
    let reported = s.reported();
    assert_eq!(reported.len(), 3, "{reported:?}");
    assert_eq!(reported[2], vec!["34.223.47.190".to_string()]);
    s.run(&["run"]).ok();
    assert_eq!(server.accepted().len(), 2, "nothing twice");
}

#[test]
fn lowering_min_hits_reports_stored_ips_with_nothing_new_read() {
    let config =
        |hits: u32| standard_config("").replace("min_hits = 1", &format!("min_hits = {hits}"));
    let s = Setup::new(&config(3));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    let first = s.run(&["run"]).ok();
    assert!(
        first.stderr.contains("1 IPs below min_hits"),
        "{}",
        first.stderr
    );
    // The count of those held back is kept while nothing is read.
    let quiet = s.run(&["run"]).ok();
    assert!(
        quiet.stderr.contains("1 IPs below min_hits"),
        "{}",
        quiet.stderr
    );
    let lowered = config(2)
        .replace("{dir}", s.dir.path().to_str().unwrap())
        .replace("{repo}", repo().to_str().unwrap());
    fs::write(s.path("config.toml"), lowered).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
}

#[test]
fn a_re_report_window_passing_with_nothing_new_read_brings_the_ip_back() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 30"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    // Seen again within the window: not reported again yet.
    s.now = "2026-02-20T08:00:00Z".into();
    s.append(
        "messages",
        &drop_line("07:00:00", "3.5.140.2", "TCP", 22).replace("Jan 25", "Feb 20"),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.reported().len(), 1);
    // The window passes; nothing new is in the log.
    s.now = "2026-02-27T08:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string()], vec!["3.5.140.2".to_string()]]
    );
}

/// An address seen again just after its report is due for a re-report at the one run where
/// the window ends; when that run's sending budget is spent on a part that waited, or the run
/// is killed, a later run makes the re-report (it was lost: by then the address had been
/// quiet for longer than the window).
#[test]
fn a_re_report_due_at_a_run_that_cannot_make_it_is_made_by_a_later_run() {
    let mut s = Setup::new(
        &standard_config("max_ips_per_message = 1\nrereport_after_days = 7").replace(
            "transport = \"file\"",
            "transport = \"file\"\nmax_messages_per_run = 1",
        ),
    );
    let (x, a, b) = ("3.5.140.2", "3.5.140.3", "3.5.140.4");
    let on =
        |day: &str, time: &str, ip: &str| drop_line(time, ip, "TCP", 22).replace("Jan 25", day);
    s.now = "2026-01-01T10:00:00Z".into();
    s.write("messages", &on("Jan  1", "09:00:00", x));
    s.run(&["run"]).ok();
    // Seen again half an hour after its report.
    s.now = "2026-01-01T11:00:00Z".into();
    s.append("messages", &on("Jan  1", "10:30:00", x));
    s.run(&["run"]).ok();
    // Two new addresses a week on, one part each: the second waits for the next run.
    s.now = "2026-01-08T09:55:00Z".into();
    s.append(
        "messages",
        &(on("Jan  8", "09:50:00", a) + &on("Jan  8", "09:50:01", b)),
    );
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x], [a]]);
    // X's re-report is due; the run's one message is the waiting part.
    s.now = "2026-01-08T10:15:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x], [a], [b]]);
    // The window now reaches back past X's last packet: it is re-reported all the same.
    s.now = "2026-01-08T11:15:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x], [a], [b], [x]]);
    // Once, and an address not seen since its report is not re-reported.
    s.now = "2026-01-16T12:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x], [a], [b], [x]]);
}

/// Whether an address sent more since its report is counted in packets, not judged by the
/// time of its last one: a log's clock minutes ahead of the mailer's stamped a packet the
/// report counted after the report, and the address was re-reported once the window passed
/// with nothing new, its body saying it was seen again.
#[test]
fn a_log_clock_minutes_ahead_is_no_reason_to_report_again() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 7"));
    let x = "3.5.140.2";
    let on = |day: &str, time: &str| drop_line(time, x, "TCP", 22).replace("Jan 25", day);
    s.now = "2026-01-01T10:00:30Z".into();
    s.write(
        "messages",
        &(on("Jan  1", "10:00:00") + &on("Jan  1", "10:04:00")),
    );
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x]]);
    s.now = "2026-01-09T10:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x]], "re-reported with nothing since its report");
    // One packet more, and it is.
    s.append("messages", &on("Jan  9", "09:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x], [x]]);
}

/// Packets logged before a report but counted after it (a second source added, a `reread`,
/// a log host's late lines) are no reason to report again once the window passes: the desk
/// was told it was "seen again since".
#[test]
fn packets_logged_before_a_report_and_counted_after_it_bring_no_re_report() {
    let mut s = Setup::new(&standard_config("rereport_after_days = 7"));
    let x = "3.5.140.2";
    let on = |time: &str| drop_line(time, x, "TCP", 22).replace("Jan 25", "Jan  1");
    s.now = "2026-01-01T10:00:30Z".into();
    s.write("messages", &on("10:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x]]);
    // Another host's log, with its earlier packets, becomes a source.
    s.write("host2.log", &(on("09:00:00") + &on("09:10:00")));
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            "[[provider]]",
            &format!(
                "[[source]]\npath = \"{}\"\n\n[[provider]]",
                s.path("host2.log").display()
            ),
        );
    std::fs::write(s.path("config.toml"), config).unwrap();
    s.now = "2026-01-01T11:00:00Z".into();
    s.run(&["run"]).ok();
    s.now = "2026-01-09T10:00:00Z".into();
    let out = s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[x]], "{}", out.stderr);
}

/// A report that counted a stamp from a clock ahead (a log host's sender on local time read
/// as UTC, hours ahead; a host's clock minutes out) is measured from when it went: the packets
/// since, from a host whose clock is right (or the same host once NTP set it back), are
/// re-reported, though none is later than that stamp.
#[test]
fn packets_since_a_report_that_counted_a_stamp_from_a_clock_ahead_are_re_reported() {
    // (the host and stamp ahead the report counts, the host logging after it, when the
    // run after it comes, the times it logs)
    let cases: [(&str, &str, &str, &str, Vec<String>); 3] = [
        // web5 logs on UTC+5: its 15:00 is 10:00 UTC.
        (
            "web5",
            "15:00:00",
            "web1",
            "14:30",
            (10..14).map(|h| format!("{h}:30:00")).collect(),
        ),
        (
            "web1",
            "10:10:00",
            "web1",
            "10:07",
            (1..6).map(|m| format!("10:0{m}:30")).collect(),
        ),
        (
            "web1",
            "10:10:00",
            "web2",
            "10:07",
            (1..6).map(|m| format!("10:0{m}:30")).collect(),
        ),
    ];
    let x = "3.5.140.2";
    let on = |host: &str, time: &str| {
        (drop_line(time, x, "TCP", 22).replace("Jan 25", "Jan  1"))
            .replace(" web1 ", &format!(" {host} "))
    };
    for (ahead_host, ahead, host, then, times) in cases {
        let mut s = Setup::new(&standard_config("rereport_after_days = 7"));
        s.now = "2026-01-01T10:00:30Z".into();
        s.write(
            "messages",
            &(on("web1", "10:00:00") + &on(ahead_host, ahead)),
        );
        s.run(&["run"]).ok();
        assert_eq!(sent(&s), [[x]]);
        s.now = format!("2026-01-01T{then}:00Z");
        let since: String = times.iter().map(|t| on(host, t)).collect();
        s.append("messages", &since);
        s.run(&["run"]).ok();
        s.now = "2026-01-09T10:00:00Z".into();
        let out = s.run(&["run"]).ok();
        assert_eq!(
            sent(&s),
            [[x], [x]],
            "{ahead_host} {ahead}, {host}: {}",
            out.stderr
        );
    }
}

/// A run that comes late makes a re-report while the address's last packet is within two
/// windows, not for ever after: an address seen again just after a report a year ago is
/// history (with `max_age_days = 0`, which keeps every address, or once `rereport_after_days`
/// is set later). A window of 0 re-reports nothing, as before, rather than on every run.
#[test]
fn a_late_re_report_reaches_back_one_window_and_no_further() {
    let x = "3.5.140.2";
    let on = |day: &str, time: &str| drop_line(time, x, "TCP", 22).replace("Jan 25", day);
    for (days, late_by, expected) in [
        ("7", "2026-01-15T10:00:00Z", 2),
        ("7", "2026-01-15T11:00:00Z", 1),
        ("0", "2026-01-01T13:00:00Z", 1),
    ] {
        let mut s = Setup::new(&standard_config(&format!(
            "rereport_after_days = {days}\nmax_age_days = 0"
        )));
        s.now = "2026-01-01T10:00:30Z".into();
        s.write("messages", &on("Jan  1", "10:00:00"));
        s.run(&["run"]).ok();
        s.now = "2026-01-01T11:00:00Z".into();
        s.append("messages", &on("Jan  1", "10:30:00"));
        s.run(&["run"]).ok();
        // No run until `late_by`: due on Jan 8, its last packet Jan 1 10:30.
        s.now = late_by.into();
        s.run(&["run"]).ok();
        assert_eq!(
            sent(&s).len(),
            expected,
            "rereport_after_days = {days}, run at {late_by}"
        );
    }
}

/// The addresses of each report sent so far, in the order they were made.
fn sent(s: &Setup) -> Vec<Vec<String>> {
    let history = s.run(&["history", "--json"]).ok().json();
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "sent")
        .map(|r| ip_list_of(&r["ips"]))
        .collect()
}

fn ip_list_of(ips: &serde_json::Value) -> Vec<String> {
    ips.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_part_that_waited_for_its_turn_counts_from_when_it_was_sent() {
    let mut s = Setup::new(
        &standard_config("max_ips_per_message = 1\nrereport_after_days = 1").replace(
            "transport = \"file\"",
            "transport = \"file\"\nmax_messages_per_run = 1",
        ),
    );
    let (a, b) = ("3.5.140.2", "3.5.140.3");
    s.write(
        "messages",
        &(drop_line("07:00:00", a, "TCP", 22) + &drop_line("07:00:01", b, "TCP", 22)),
    );
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[a]], "one message a run");
    // B's part, made at 08:00, goes out 23 hours later.
    s.now = "2026-01-27T07:00:00Z".to_string();
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [[a], [b]]);
    // Both still attack; a day after A's report, but not after B's.
    s.now = "2026-01-27T09:00:00Z".to_string();
    let later = |ip| drop_line("08:30:00", ip, "TCP", 22).replace("Jan 25", "Jan 27");
    s.append("messages", &(later(a) + &later(b)));
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        [[a], [b], [a]],
        "B was sent two hours ago: no new report on it, sent or waiting"
    );
}

/// Two desks, one with more parts than a run's budget: the budget serves them in turn (each
/// desk's first part, then each one's second), so the desk listed second, whose addresses
/// were seen first, does not wait behind the other's backlog; preview prints that order.
#[test]
fn the_sending_budget_serves_the_desks_in_turn() {
    let s = Setup::new(
        &with_other_provider(&standard_config("max_ips_per_message = 1"))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 2"),
    );
    s.write(
        "messages",
        &[
            drop_line("09:00:00", "81.2.69.143", "TCP", 22),
            drop_line("09:00:01", "67.43.156.9", "TCP", 22),
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "3.5.140.3", "TCP", 22),
            drop_line("10:00:02", "3.5.140.4", "TCP", 22),
        ]
        .concat(),
    );
    let preview = s.run(&["preview"]).ok().stdout;
    let to: Vec<&str> = (preview.lines())
        .filter_map(|l| l.strip_prefix("To: "))
        .collect();
    assert_eq!(
        to,
        [
            "ec2-abuse@amazon.com",
            "abuse@other.example",
            "ec2-abuse@amazon.com",
            "abuse@other.example",
            "ec2-abuse@amazon.com"
        ]
    );
    s.run(&["run"]).ok();
    assert_eq!(sent(&s), [["3.5.140.2"], ["67.43.156.9"]]);
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let mut all: Vec<String> = sent(&s).concat();
    all.sort();
    assert_eq!(
        all,
        [
            "3.5.140.2",
            "3.5.140.3",
            "3.5.140.4",
            "67.43.156.9",
            "81.2.69.143"
        ],
        "each address once"
    );
}

/// A provider with a backlog of parts waiting for their turn run after run, and another
/// with one new address each run: the waiting parts leave the other a message of the budget,
/// so each of its reports goes out in the run that makes it, not once the backlog is gone;
/// the backlog still drains, and every address goes once.
#[test]
fn a_backlog_of_one_provider_keeps_no_other_provider_waiting() {
    let mut s = with_a_backlog(30, 2);
    for run in 1..=4u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + run);
        let ip = format!("81.2.69.{run}");
        s.append(
            "messages",
            &drop_line(&format!("10:00:0{run}"), &ip, "TCP", 22),
        );
        s.run(&["run"]).ok();
        let other: Vec<String> = sent(&s)
            .concat()
            .into_iter()
            .filter(|i| i.starts_with("81.2.69."))
            .collect();
        assert_eq!(other.len(), run as usize, "run {run}: {other:?}");
    }
    // The backlog drains, two a run.
    assert_eq!(drained_once(&mut s, 13), 34);
}

/// Runs hourly from `hour` on Jan 26 to 16:00 on Jan 27, and returns how many addresses the
/// sent reports hold, each once.
fn drained_once(s: &mut Setup, from: u32) -> usize {
    for hour in from..=40u32 {
        s.now = format!("2026-01-{:02}T{:02}:00:00Z", 26 + hour / 24, hour % 24);
        s.run(&["run"]).ok();
    }
    let mut all = sent(s).concat();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "each address once");
    all.len()
}

/// Two providers, one address a message and `budget` messages a run, after a first run that
/// read `addresses` of the first provider's: its backlog.
fn with_a_backlog(addresses: u32, budget: u32) -> Setup {
    let s = Setup::new(
        &with_other_provider(&standard_config("max_ips_per_message = 1")).replace(
            "[mail]",
            &format!("[mail]\nmax_messages_per_run = {budget}"),
        ),
    );
    s.write(
        "messages",
        &(1..=addresses)
            .map(|i| {
                drop_line(
                    &format!("09:{:02}:00", i - 1),
                    &format!("3.5.140.{i}"),
                    "TCP",
                    22,
                )
            })
            .collect::<String>(),
    );
    s.run(&["run"]).ok();
    s
}

/// With one message a run the budget is spent within the first round: the desks take it in
/// turn over the runs, the one tried longest ago first. Each run gave it to the provider
/// with a backlog, whose waiting part came first in every round, and the other provider's
/// addresses waited until they passed `max_age_days`.
#[test]
fn a_budget_of_one_message_a_run_goes_to_each_desk_in_turn() {
    let mut s = with_a_backlog(12, 1);
    for run in 1..=3u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + 2 * run);
        let ip = format!("81.2.69.{run}");
        s.append(
            "messages",
            &drop_line(&format!("10:00:0{run}"), &ip, "TCP", 22),
        );
        // Preview lists first what the run sends.
        let preview = s.run(&["preview"]).ok();
        let first = preview.stdout.find("To: ").map(|at| &preview.stdout[at..]);
        assert!(
            first.is_some_and(|t| t.starts_with("To: abuse@other.example")),
            "run {run}: {}",
            preview.stdout
        );
        s.run(&["run"]).ok();
        let other: Vec<String> = (sent(&s).concat().into_iter())
            .filter(|i| i.starts_with("81.2.69."))
            .collect();
        assert_eq!(other.len(), run as usize, "run {run}: {other:?}");
        // Then the provider with the backlog: its turn came before the other's.
        s.now = format!("2026-01-26T{:02}:30:00Z", 8 + 2 * run);
        let before = sent(&s).len();
        s.run(&["run"]).ok();
        let sent_now = sent(&s);
        assert_eq!(sent_now.len(), before + 1);
        assert!(
            (sent_now.concat().iter())
                .filter(|i| i.starts_with("3.5.140."))
                .count()
                == run as usize + 1,
            "run {run}: the backlog's turn"
        );
    }
    assert_eq!(drained_once(&mut s, 15), 15);
}

/// A provider's own new addresses do not go ahead of its addresses waiting from earlier
/// runs, whatever budget the other providers leave unused: with one message a run, the
/// addresses go out oldest first; and a run counts each waiting report once.
#[test]
fn a_providers_new_reports_wait_behind_its_older_ones() {
    let mut s = Setup::new(
        &with_other_provider(&standard_config("max_ips_per_message = 1"))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    let first: Vec<String> = (1..=5).map(|i| format!("3.5.140.{i}")).collect();
    s.write(
        "messages",
        &(first.iter().enumerate())
            .map(|(i, ip)| drop_line(&format!("09:00:0{i}"), ip, "TCP", 22))
            .collect::<String>(),
    );
    let out = s.run(&["run"]).ok();
    // One sent; three parts of the four made are stored to wait (the fifth address waits
    // for a later run's parts), said once each.
    assert!(
        out.stderr.contains("3 report(s) wait for the next run"),
        "{}",
        out.stderr
    );
    let mut order = first.clone();
    for run in 1..=6u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + run);
        let ip = format!("3.5.141.{run}");
        s.append(
            "messages",
            &drop_line(&format!("10:0{run}:00"), &ip, "TCP", 22),
        );
        order.push(ip);
        s.run(&["run"]).ok();
        let mut got = sent(&s).concat();
        got.sort();
        let mut oldest: Vec<String> = order[..=run as usize].to_vec();
        oldest.sort();
        assert_eq!(got, oldest, "after run {run}");
    }
}

/// Three providers: one with parts waiting from earlier runs, one with new addresses each
/// run, one idle. Every run sends the first `max_messages_per_run` messages `preview --json`
/// listed just before, the backlog goes down by at least one a run (a busy provider does not
/// starve it, the idle one takes nothing), and a provider's waiting and new reports both go
/// when the budget has room for them.
#[test]
fn the_budget_goes_desk_by_desk_as_preview_lists_it() {
    let mut s = Setup::new(
        &with_other_provider(&standard_config("max_ips_per_message = 1"))
            .replace(
                "[report]",
                "[[provider]]\nname = \"idle\"\nto = [\"abuse@idle.example\"]\nranges = \"{dir}/idle.txt\"\n\n[report]",
            )
            .replace("[mail]", "[mail]\nmax_messages_per_run = 2"),
    );
    s.write("idle.txt", "192.0.2.0/24\n");
    let aws: Vec<String> = (1..=6).map(|i| format!("3.5.140.{i}")).collect();
    s.write(
        "messages",
        &(aws.iter().enumerate())
            .map(|(i, ip)| drop_line(&format!("09:00:0{i}"), ip, "TCP", 22))
            .collect::<String>(),
    );
    s.run(&["run"]).ok();
    let waiting = |s: &Setup| history(s).iter().filter(|r| r["status"] != "sent").count();
    for run in 1..=3u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + run);
        s.append(
            "messages",
            &[
                drop_line(
                    &format!("10:0{run}:00"),
                    &format!("81.2.69.{run}"),
                    "TCP",
                    22,
                ),
                drop_line(
                    &format!("10:0{run}:01"),
                    &format!("67.43.156.{run}"),
                    "TCP",
                    22,
                ),
            ]
            .concat(),
        );
        let before = waiting(&s);
        let listed = s.run(&["preview", "--json"]).ok().json();
        let first_two: Vec<String> = listed["reports"].as_array().unwrap()[..2]
            .iter()
            .flat_map(|r| ip_list(&r["ips"]))
            .collect();
        let sent_before: Vec<String> = sent(&s).concat();
        s.run(&["run"]).ok();
        let mut now_sent: Vec<String> = (sent(&s).concat().into_iter())
            .filter(|ip| !sent_before.contains(ip))
            .collect();
        now_sent.sort();
        let mut expected = first_two.clone();
        expected.sort();
        assert_eq!(now_sent, expected, "run {run}: preview listed {listed}");
        assert!(
            now_sent.iter().any(|ip| ip.starts_with("3.5.140.")),
            "run {run}: the backlog went on: {now_sent:?}"
        );
        assert!(
            now_sent.iter().any(|ip| !ip.starts_with("3.5.140.")),
            "run {run}: the new desk had its turn: {now_sent:?}"
        );
        assert!(waiting(&s) < before + 2, "run {run}");
    }
}

/// A report held back by the budget (a single message, made again by a later run) whose
/// addresses pass `max_age_days` within a day: the run says so, as for addresses no part
/// holds yet, rather than letting them become history unsaid; under `-q` too, as cron runs it
/// (a loss said only without `-q` reached nobody).
#[test]
fn a_held_report_about_to_age_out_is_said() {
    let s = Setup::new(
        &with_other_provider(&standard_config("max_age_days = 1"))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "81.2.69.143", "TCP", 22),
        ]
        .concat(),
    );
    let out = s.run(&["-q", "run"]).ok();
    assert_eq!(sent(&s).len(), 1);
    assert!(
        out.stderr.contains(
            "1 address(es) of other waiting for a later run pass max_age_days within a day"
        ),
        "{}",
        out.stderr
    );
}

/// Cron mails what a `-q` run says: addresses about to age out are said once a day, not by
/// every quarter-hourly run of their last day; a run without `-q` says them each time.
#[test]
fn addresses_about_to_age_out_are_said_once_a_day_under_q() {
    let mut s = Setup::new(
        &with_other_provider(&standard_config(
            "max_age_days = 1\nmax_ips_per_message = 1",
        ))
        .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    // A run makes four parts at most (four times the budget), less those still waiting: a
    // dozen addresses leave some unmade for runs to come.
    let log: String = (143..155)
        .map(|i| drop_line("10:00:00", &format!("81.2.69.{i}"), "TCP", 22))
        .collect();
    s.write("messages", &log);
    let aging =
        |stderr: &str| stderr.contains("of other waiting for a later run pass max_age_days");
    let first = s.run(&["-q", "run"]).ok();
    assert!(aging(&first.stderr), "{}", first.stderr);
    s.now = "2026-01-26T08:15:00Z".into();
    let again = s.run(&["-q", "run"]).ok();
    assert!(!aging(&again.stderr), "{}", again.stderr);
    // More about to age out than were said: said again the same day.
    let more: String = (160..190)
        .map(|i| drop_line("10:30:00", &format!("81.2.69.{i}"), "TCP", 22))
        .collect();
    s.append("messages", &more);
    s.now = "2026-01-26T08:20:00Z".into();
    let grown = s.run(&["-q", "run"]).ok();
    assert!(aging(&grown.stderr), "{}", grown.stderr);
    // One more is no clear rise: a growing backlog is not said by every run.
    s.append("messages", &drop_line("10:31:00", "81.2.69.200", "TCP", 22));
    s.now = "2026-01-26T08:25:00Z".into();
    let one_more = s.run(&["-q", "run"]).ok();
    assert!(!aging(&one_more.stderr), "{}", one_more.stderr);
    s.now = "2026-01-26T08:30:00Z".into();
    let loud = s.run(&["run"]).ok();
    assert!(aging(&loud.stderr), "{}", loud.stderr);
    // Each run still sent its one message: the warning is what changed, not the sending.
    assert_eq!(sent(&s).len(), 5);
}

/// Addresses that waited for a run to report them and passed `max_age_days` first (runs that
/// stopped for weeks behind a sending budget) are said lost, under `-q` too, by the run that
/// lets them go as history; addresses reported before they aged out are not. They went
/// without a word: the run before had said they would wait.
#[test]
fn addresses_that_became_history_before_a_run_reported_them_are_said_lost() {
    let mut s = Setup::new(
        &standard_config("max_ips_per_message = 1\nmax_age_days = 30")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    // Six addresses; a run makes four parts at most (sends one, three wait), two wait unmade.
    let log: String = (2..8)
        .map(|i| {
            drop_line("10:00:00", &format!("3.5.140.{i}"), "TCP", 22).replace("Jan 25", "Jan  1")
        })
        .collect();
    s.now = "2026-01-01T11:00:00Z".into();
    s.write("messages", &log);
    let first = s.run(&["-q", "run"]).ok();
    assert!(!first.stderr.contains("became history"), "{}", first.stderr);
    // No run for five weeks; then one that reads a line.
    s.now = "2026-02-05T12:00:00Z".into();
    s.append(
        "messages",
        &drop_line("11:00:00", "3.5.140.99", "TCP", 22).replace("Jan 25", "Feb  5"),
    );
    let late = s.run(&["-q", "run"]).ok();
    let said: Vec<&str> = (late.stderr.lines())
        .filter(|l| l.contains("became history"))
        .collect();
    assert_eq!(said.len(), 1, "{}", late.stderr);
    assert!(
        said[0].contains("warning: 2 address(es) of aws that no report listed became history"),
        "{}",
        said[0]
    );
    // The parts written to wait go as made, one a run; their addresses were not lost.
    assert_eq!(sent(&s).len(), 2);
}

/// A part held back by the sending budget goes out days later with the day it goes out on
/// in its `Date:` (a Date days old is a spam sign); `preview` prints it so, byte for byte
/// what the run then sends, in the same layout as a message made that day.
#[test]
fn preview_shows_a_held_part_with_the_date_it_goes_out_with() {
    let mut s = Setup::new(&standard_config("max_ips_per_message = 1").replace(
        "transport = \"file\"",
        "transport = \"file\"\nmax_messages_per_run = 1",
    ));
    s.write(
        "messages",
        &(drop_line("07:00:00", "3.5.140.2", "TCP", 22)
            + &drop_line("07:00:01", "3.5.140.3", "TCP", 22)),
    );
    s.run(&["run"]).ok();
    s.now = "2026-02-03T09:30:00Z".to_string();
    let preview = s.run(&["preview"]).ok().stdout;
    let shown: Vec<&str> = preview.split("\nFrom abuse-mailer ").collect();
    assert_eq!(shown.len(), 1, "one waiting part, nothing new:\n{preview}");
    assert!(
        preview.contains("\nDate: Tue, 03 Feb 2026 09:30:00 +0000\n"),
        "{preview}"
    );
    let before: std::collections::BTreeSet<_> = s.outbox().into_iter().collect();
    s.run(&["run"]).ok();
    let sent: Vec<_> = (s.outbox().into_iter())
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(sent.len(), 1);
    let bytes = String::from_utf8(fs::read(&sent[0]).unwrap()).unwrap();
    let body = preview.split_once('\n').unwrap().1;
    assert_eq!(body.trim_end(), bytes.replace("\r\n", "\n").trim_end());
}

/// Kept lines no reader can parse, as an address's own and in the desk's window.
/// A record whose address is no address (a state edited by hand), old enough to be let go
/// of as history: a run that reads something lets it go, as any other, and goes on; the
/// count of addresses held back, which such records leave, is not stopped by it either.
#[test]
fn a_record_that_is_no_address_is_let_go_of_as_history_without_stopping_the_run() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    sql(&s, &POISON[..1]);
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "UDP", 53),
    );
    s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    let left: i64 = rusqlite::Connection::open(s.path("state/state.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM observation WHERE ip = 'not an address'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(s.reported().len(), 2);
}

const POISON_EVIDENCE: &str = "INSERT INTO evidence (provider, time, seq, ip, line) VALUES ('aws', 0, 999, 'not an address', 'x')";

#[test]
fn a_run_reads_the_kept_lines_of_the_addresses_it_reports_and_no_others() {
    // Three packets make a report: an address seen once waits, its line kept for later.
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 3"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert!(s.reported().is_empty());
    // Every kept line read by a run would fail it (a flood's million lines, read by every
    // run after it, would cost that run the memory of all of them).
    sql(&s, &[POISON_EVIDENCE]);
    s.append(
        "messages",
        &[
            drop_line("10:00:05", "34.223.47.190", "UDP", 53),
            drop_line("10:00:06", "34.223.47.190", "UDP", 53),
            drop_line("10:00:07", "34.223.47.190", "UDP", 53),
            drop_line("10:00:08", "3.5.140.2", "TCP", 22),
            drop_line("10:00:09", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string(), "34.223.47.190".to_string()]]
    );
    // The line the first run kept reaches the report, as the preview showed it.
    let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
    let first = "Jan 25 10:00:00 web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= MAC=redacted SRC=3.5.140.2";
    assert!(sent.contains(first), "{sent}");
    assert!(preview.stdout.contains(first), "{}", preview.stdout);
}

#[test]
fn kept_lines_older_than_max_age_days_are_let_go() {
    let mut s =
        Setup::new(&standard_config("max_age_days = 1").replace("min_hits = 1", "min_hits = 3"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let kept = |s: &Setup| -> i64 {
        rusqlite::Connection::open(s.path("state/state.db"))
            .unwrap()
            .query_row(
                "SELECT count(DISTINCT line) FROM evidence WHERE ip = '3.5.140.2'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(kept(&s), 1);
    // Three days on, another address is logged: the run that stores its line lets the old
    // one go, and the address, now history, is not reported on the packets of today.
    s.now = "2026-01-29T08:00:00Z".to_string();
    s.append(
        "messages",
        &[
            "Jan 29 07:00:00 web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= MAC=52:54:00:12:34:56:fe:54:00:ab:cd:ef:08:00 SRC=34.223.47.190 DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=UDP SPT=40000 DPT=53 \n",
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(kept(&s), 0);
}

/// An address last seen longer ago than `max_age_days` is history: selection passes it over
/// and it starts afresh if seen again, so its stored observation only takes room (a spoofed
/// flood leaves a million a day). A run that stores what it read lets it go, and `--json`
/// no longer lists it, before that run as after.
#[test]
fn observations_older_than_max_age_days_are_let_go_and_not_listed() {
    let s =
        Setup::new(&standard_config("max_age_days = 1").replace("min_hits = 1", "min_hits = 3"));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "81.2.69.143", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let stored = |s: &Setup| -> Vec<String> {
        let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT ip FROM observation ORDER BY ip")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    assert_eq!(stored(&s), ["3.5.140.2", "81.2.69.143"]);
    let listed = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&listed["unattributed"]), ["81.2.69.143"]);
    // Three days on: before any run stores anything, the old address is not listed.
    let mut s = s;
    s.now = "2026-01-29T08:00:00Z".to_string();
    let listed = s.run(&["preview", "--json"]).ok().json();
    assert!(ip_list(&listed["unattributed"]).is_empty(), "{listed}");
    // A run reads a new address: the two old ones go from the state.
    s.append(
        "messages",
        &drop_line("07:00:00", "5.6.7.8", "TCP", 80).replace("Jan 25", "Jan 29"),
    );
    s.run(&["run"]).ok();
    assert_eq!(stored(&s), ["5.6.7.8"]);
    let listed = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&listed["unattributed"]), ["5.6.7.8"]);
}

/// `unattributed` joins the addresses read now, attributed as they were read, with those
/// known from earlier runs, looked up in the ranges: one list in address order either way,
/// under a settled marker or with every IP known looked at (a changed setting).
#[test]
fn unattributed_lists_addresses_read_now_and_known_before_in_one_order() {
    let s = Setup::standard();
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "81.2.69.143", "TCP", 22),
            drop_line("10:00:01", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "89.160.20.112", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            drop_line("10:00:02", "198.51.100.200", "UDP", 53),
            drop_line("10:00:03", "34.223.47.190", "UDP", 53),
            drop_line("10:00:04", "5.6.7.8", "TCP", 80),
            drop_line("10:00:05", "81.2.69.143", "TCP", 23),
        ]
        .concat(),
    );
    let expected = ["5.6.7.8", "81.2.69.143", "89.160.20.112", "198.51.100.200"];
    let under_marker = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&under_marker["unattributed"]), expected);
    assert_eq!(under_marker["summary"]["ips_unattributed"], 3);
    // Each entry is its own address's record, as read now and merged with what was stored.
    let entries = under_marker["unattributed"].as_array().unwrap();
    let packets: Vec<(u64, serde_json::Value)> = (entries.iter())
        .map(|e| (e["hits"].as_u64().unwrap(), e["ports"].clone()))
        .collect();
    assert_eq!(
        packets,
        [
            (1, serde_json::json!([80])),
            (2, serde_json::json!([22, 23])),
            (1, serde_json::json!([22])),
            (1, serde_json::json!([53])),
        ]
    );
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    fs::write(
        s.path("config.toml"),
        config.replace("min_hits = 1", "min_hits = 1\nsample_seconds = 7"),
    )
    .unwrap();
    let every_ip = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&every_ip["unattributed"]), expected);
    // The address known before and read again is listed once, with both runs' packets.
    assert_eq!(every_ip["unattributed"][1]["hits"], 2);
    assert_eq!(
        every_ip["unattributed"][1]["ports"],
        serde_json::json!([22, 23])
    );
}

/// Three addresses, one a part, one part a run: after the first run two parts wait.
fn two_parts_waiting() -> Setup {
    let s = Setup::new(
        &standard_config("max_ips_per_message = 1")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
            drop_line("10:00:02", "18.206.107.24", "TCP", 80),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    s
}

/// The addresses of the reports waiting to be sent again.
fn waiting_addresses(s: &Setup) -> Vec<String> {
    history(s)
        .iter()
        .filter(|r| r["status"] != "sent")
        .flat_map(|r| string_list(&r["ips"]))
        .collect()
}

/// Every message in the outbox, one after another.
fn all_mail(s: &Setup) -> String {
    s.outbox()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect()
}

/// The provider's desk moves to another address, and a run may send every message.
fn desk_moved(s: &Setup) {
    edit_config(
        s,
        "to = [\"ec2-abuse@amazon.com\"]",
        "to = [\"abuse@amazonaws.com\"]",
    );
    edit_config(s, "max_messages_per_run = 1", "max_messages_per_run = 10");
}

fn edit_config(s: &Setup, from: &str, to: &str) {
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    assert!(config.contains(from), "{config}");
    fs::write(s.path("config.toml"), config.replacen(from, to, 1)).unwrap();
}

/// The `to` of every message in the outbox, by report id.
fn outbox_to(s: &Setup) -> Vec<String> {
    s.outbox()
        .iter()
        .map(|p| {
            let eml = fs::read_to_string(p).unwrap();
            eml.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Reports waiting to be sent again were made before the desk's address changed: they are
/// withdrawn, not mailed to the old address, and their addresses go to the new one; the
/// preview shows what the run then sends.
#[test]
fn waiting_reports_go_to_the_address_configured_now_not_the_old_one() {
    let s = two_parts_waiting();
    desk_moved(&s);
    let preview = s.run(&["preview", "--json"]).ok();
    assert!(
        preview.stderr.contains("would be withdrawn unsent"),
        "{}",
        preview.stderr
    );
    let shown = preview.json();
    let shown: Vec<(String, Vec<String>)> = shown["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["to"][0].as_str().unwrap().to_string(), ip_list(&r["ips"])))
        .collect();
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("withdrawn unsent"), "{}", out.stderr);
    let to = outbox_to(&s);
    assert_eq!(to.len(), 3, "{to:?}");
    assert_eq!(
        to.iter()
            .filter(|t| t.contains("abuse@amazonaws.com"))
            .count(),
        2,
        "{to:?}"
    );
    let history = history(&s);
    let sent: Vec<(String, Vec<String>)> = history
        .iter()
        .filter(|r| r["status"] == "sent" && r["to"][0] == "abuse@amazonaws.com")
        .map(|r| {
            (
                r["to"][0].as_str().unwrap().to_string(),
                string_list(&r["ips"]),
            )
        })
        .collect();
    assert_eq!(shown.len(), 2);
    for (to, ips) in &shown {
        assert!(
            sent.contains(&(to.clone(), ips.clone())),
            "{shown:?} vs {sent:?}"
        );
    }
    let withdrawn = history.iter().filter(|r| r["status"] == "rejected").count();
    assert_eq!(withdrawn, 2);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 3, "nothing sent twice");
}

/// An address put in `report.ignore` while its report waits is not sent; the others of
/// that report go in a new one.
#[test]
fn a_waiting_report_of_an_address_ignored_since_is_not_sent() {
    let s = two_parts_waiting();
    let waiting = waiting_addresses(&s);
    assert_eq!(waiting.len(), 2);
    edit_config(
        &s,
        "max_ips_per_message = 1",
        &format!("max_ips_per_message = 1\nignore = [\"{}/32\"]", waiting[0]),
    );
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let sent: Vec<String> = history(&s)
        .iter()
        .filter(|r| r["status"] == "sent")
        .flat_map(|r| string_list(&r["ips"]))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(!sent.contains(&waiting[0]));
    assert!(sent.contains(&waiting[1]));
}

/// A provider taken out of the configuration gets none of its waiting reports.
#[test]
fn a_provider_taken_out_gets_none_of_its_waiting_reports() {
    let s = two_parts_waiting();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let start = config.find("[[provider]]").unwrap();
    let end = config.find("[report]").unwrap();
    let other = "[[provider]]\nname = \"other\"\nto = [\"abuse@other.example\"]\nranges = \"REPO/fixtures/ranges/other-cloud.txt\"\n\n"
        .replace("REPO", repo().to_str().unwrap());
    fs::write(
        s.path("config.toml"),
        format!("{}{other}{}", &config[..start], &config[end..]),
    )
    .unwrap();
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains("provider aws is no longer configured"),
        "{}",
        out.stderr
    );
    assert_eq!(s.outbox().len(), 1, "nothing more to AWS");
}

/// A preview shows every message a delta makes; it says how many the next run sends when
/// `max_messages_per_run` holds some back, counting the reports already waiting.
#[test]
fn a_preview_says_how_many_messages_the_next_run_sends() {
    let s = two_parts_waiting();
    s.append("messages", &drop_line("10:00:05", "35.180.0.7", "TCP", 22));
    let out = s.run(&["preview"]).ok();
    assert!(
        out.stderr
            .contains("the next run sends 1 of these 3 messages (max_messages_per_run = 1)"),
        "{}",
        out.stderr
    );
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 3");
    let out = s.run(&["preview"]).ok();
    assert!(!out.stderr.contains("the next run sends"), "{}", out.stderr);
}

/// A run asks the ledger about the addresses it read, one at a time; one with more to ask
/// (a flood) reads every address reported at once. Both decide alike: what was reported is
/// not reported again, what was not is.
#[test]
fn a_run_asking_about_few_or_many_addresses_decides_alike() {
    for sources in [3u32, 2_500] {
        let s = Setup::standard();
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        s.run(&["run"]).ok();
        let new: Vec<String> = (0..sources)
            .map(|n| format!("34.208.{}.{}", n / 250, n % 250 + 1))
            .collect();
        let lines: String = new
            .iter()
            .map(|ip| drop_line("10:00:02", ip, "UDP", 53))
            .collect();
        // The reported address comes last: asked after the many others, when the run reads
        // the ledger whole.
        s.append(
            "messages",
            &(lines + &drop_line("10:00:03", "3.5.140.2", "TCP", 22)),
        );
        s.run(&["run"]).ok();
        let reported = s.reported();
        assert_eq!(reported[0], ["3.5.140.2"], "{sources} new sources");
        let mut later: Vec<String> = reported[1..].concat();
        later.sort();
        let mut expected = new.clone();
        expected.sort();
        assert_eq!(
            later, expected,
            "{sources} new sources, none twice, 3.5.140.2 not again"
        );
    }
}

/// The run that withdraws a waiting report reads a new packet of one of its addresses: the
/// report that replaces it shows that packet's line beside the lines kept before, and preview
/// shows the same report.
#[test]
fn a_withdrawn_reports_addresses_go_with_the_lines_read_in_that_run() {
    let s = two_parts_waiting();
    let waiting = waiting_addresses(&s);
    desk_moved(&s);
    s.append("messages", &drop_line("10:05:07", &waiting[0], "TCP", 2222));
    let preview = s.run(&["preview", "--json"]).ok().json();
    let shown = preview["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| ip_list(&r["ips"]) == [waiting[0].clone()])
        .unwrap()
        .clone();
    assert_eq!(
        shown["ips"][0]["ports"],
        serde_json::json!([80, 2222]),
        "{shown}"
    );
    s.run(&["run"]).ok();
    let mails = all_mail(&s);
    assert!(mails.contains("DPT=2222"), "{mails}");
    // The line kept when the withdrawn report was made is shown too.
    let replaced = (s.outbox().iter())
        .map(|p| fs::read_to_string(p).unwrap())
        .find(|m| m.contains("DPT=2222"))
        .unwrap();
    assert!(replaced.contains("DPT=80 "), "{replaced}");
}

/// `run --provider other` withdraws none of aws's waiting reports, but the lines it reads of
/// their addresses are kept: the report that later replaces a withdrawn one shows them.
#[test]
fn a_run_for_another_provider_keeps_the_lines_of_a_report_to_be_withdrawn() {
    let s = two_parts_waiting();
    let waiting = waiting_addresses(&s);
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    fs::write(
        s.path("config.toml"),
        with_other_provider(&config).replace("{repo}", repo().to_str().unwrap()),
    )
    .unwrap();
    desk_moved(&s);
    s.append("messages", &drop_line("10:05:07", &waiting[0], "TCP", 2222));
    let out = s.run(&["run", "--provider", "other"]).ok();
    assert!(!out.stderr.contains("withdrawn"), "{}", out.stderr);
    s.run(&["run"]).ok();
    let mails = all_mail(&s);
    assert!(mails.contains("DPT=2222"), "{mails}");
}

/// A run refused for a configuration error found in the read (a glob that matches nothing,
/// exit 78) withdraws nothing: the waiting reports wait for a run that goes through.
#[test]
fn a_run_refused_for_its_sources_withdraws_nothing() {
    let s = two_parts_waiting();
    edit_config(
        &s,
        "to = [\"ec2-abuse@amazon.com\"]",
        "to = [\"abuse@amazonaws.com\"]",
    );
    edit_config(
        &s,
        "[[provider]]",
        "[[source]]\npath = \"/nonexistent-review/nothing*\"\n\n[[provider]]",
    );
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    let rejected = history(&s)
        .iter()
        .filter(|r| r["status"] == "rejected")
        .count();
    assert_eq!(rejected, 0, "refused (78), yet: {}", out.stderr);
}

/// A run died while sending a report made under an earlier configuration (its row is set so:
/// `sending`, to another address), with the last settled run's marker still stored and the
/// configuration back as that run had it. The report is withdrawn and its address goes in a
/// new report to the desk configured now, under the marker as without it; preview shows the
/// same.
#[test]
fn a_withdrawn_reports_address_is_reported_again_under_a_settled_marker() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let marker: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'settled'", [], |r| {
            r.get(0)
        })
        .ok();
    assert!(marker.is_some(), "the first run settled");
    conn.execute(
        "UPDATE report SET status = 'sending', sent_at = NULL, recipients = '[\"abuse@amazonaws.com\"]'",
        [],
    )
    .unwrap();
    drop(conn);
    let preview = s.run(&["preview", "--json"]).ok();
    let shown = preview.json()["reports"].as_array().unwrap().len();
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("withdrawn unsent"), "{}", out.stderr);
    assert_eq!(
        (shown, s.outbox().len()),
        (1, 2),
        "preview shows one new report; the run sends: {}",
        out.stderr
    );
    assert_eq!(
        s.outbox().len(),
        2,
        "its address goes in a new report: {}",
        out.stderr
    );
}

/// A budget too small for what is logged: each run makes parts for a few addresses, and the
/// rest wait. Those seen longest ago go first, as they are the first to pass `max_age_days`
/// and become history: high addresses logged early are not kept waiting, day after day,
/// behind new lower ones until they age out unreported. Those about to age out are said.
#[test]
fn addresses_held_by_the_budget_go_oldest_first_and_those_aging_out_are_said() {
    let mut s = Setup::new(
        &standard_config("max_age_days = 3\nmax_ips_per_message = 1").replace(
            "dir = \"{dir}/outbox\"",
            "dir = \"{dir}/outbox\"\nmax_messages_per_run = 1",
        ),
    );
    // The day before the first run, two high addresses (18.204.0.0/14); then every day new
    // low ones (3.5.140.0/22), more than a run of one message a day sends.
    let day = |d: u32, ips: &[&str]| -> String {
        (ips.iter())
            .map(|ip| drop_line("07:00:00", ip, "TCP", 22).replace("Jan 25", &format!("Jan {d}")))
            .collect()
    };
    s.write("messages", &day(25, &["18.206.107.24", "18.206.107.25"]));
    let mut said_aging = false;
    for d in 26..31 {
        let low: Vec<String> = (0..4)
            .map(|k| format!("3.5.140.{}", (d - 26) * 4 + k + 1))
            .collect();
        let low: Vec<&str> = low.iter().map(String::as_str).collect();
        s.append("messages", &day(d, &low));
        s.now = format!("2026-01-{d}T08:00:00Z");
        let ran = s.run(&["run"]).ok();
        said_aging |= ran.stderr.contains("pass max_age_days within a day");
    }
    let sent: Vec<String> = s.reported().concat();
    for high in ["18.206.107.24", "18.206.107.25"] {
        assert!(
            sent.contains(&high.to_string()),
            "{high} aged out unreported: {sent:?}"
        );
    }
    assert!(said_aging, "the addresses about to age out were not said");
}

/// Under a steady backlog, an address that goes on attacking every day still gets its turn:
/// addresses go in the order they were first seen, not by their last packet (which kept the
/// one still attacking last in line for ever).
#[test]
fn an_address_that_goes_on_attacking_gets_its_turn_under_a_backlog() {
    let mut s = Setup::new(
        &standard_config("max_age_days = 3\nmax_ips_per_message = 1").replace(
            "dir = \"{dir}/outbox\"",
            "dir = \"{dir}/outbox\"\nmax_messages_per_run = 1",
        ),
    );
    let line = |d: u32, at: &str, ip: &str| {
        drop_line(at, ip, "TCP", 22).replace("Jan 25", &format!("Jan {d:02}"))
    };
    s.write("messages", "");
    let mut n = 0;
    for d in 16..26 {
        let mut text = String::new();
        if d >= 17 {
            text += &line(d, "07:00:00", "18.206.107.24");
        }
        for k in 1..=6 {
            n += 1;
            text += &line(d, &format!("07:00:0{k}"), &format!("34.223.47.{n}"));
        }
        s.append("messages", &text);
        s.now = format!("2026-01-{d}T08:00:00Z");
        s.run(&["-q", "run"]).ok();
    }
    let reported: Vec<String> = history(&s)
        .iter()
        .flat_map(|r| string_list(&r["ips"]))
        .collect();
    assert!(
        reported.contains(&"18.206.107.24".to_string()),
        "{reported:?}"
    );
}

/// A part split by size leaves the last in turn to wait, not the first: those seen first
/// (high addresses here) go out before newer lower ones, whatever `max_message_bytes` does to
/// the parts.
#[test]
fn parts_split_by_size_leave_the_newest_to_wait() {
    let mut s = Setup::new(
        &standard_config(
            "max_age_days = 3\nmax_ips_per_message = 2\nmax_message_bytes = 16384\nmax_excerpt_lines = 1000",
        )
        .replace("dir = \"{dir}/outbox\"", "dir = \"{dir}/outbox\"\nmax_messages_per_run = 1"),
    );
    let many = |d: u32, ip: &str| -> String {
        (0..40)
            .map(|_| drop_line("09:00:00", ip, "TCP", 22).replace("Jan 25", &format!("Jan {d}")))
            .collect()
    };
    let old: Vec<String> = (1..=4).map(|i| format!("34.223.47.{i}")).collect();
    let mut text: String = old.iter().map(|ip| many(23, ip)).collect();
    text += &(1..=8)
        .map(|i| many(25, &format!("3.5.140.{i}")))
        .collect::<String>();
    s.write("messages", &text);
    for d in [26, 27] {
        s.now = format!("2026-01-{d}T08:00:00Z");
        s.run(&["-q", "run"]).ok();
    }
    let sent: Vec<String> = (history(&s).iter())
        .filter(|r| r["status"] == "sent")
        .flat_map(|r| string_list(&r["ips"]))
        .collect();
    for ip in &old {
        assert!(sent.contains(ip), "{ip} left to age out: {sent:?}");
    }
}

/// An address written in IPv4-mapped form is the IPv4 address, as it is in the logs: for
/// `history --ip` and for `report.ignore` alike.
#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address_in_history_and_ignore() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &drop_line("23:50:10", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    for spelt in ["3.5.140.2", "::ffff:3.5.140.2", "::FFFF:0305:8C02"] {
        let rows = s.run(&["history", "--json", "--ip", spelt]).ok().json();
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{spelt}: {rows}");
    }
    let ignoring = Setup::new(&standard_config("ignore = [\"::ffff:3.5.140.0/120\"]"));
    ignoring.write("messages", &drop_line("23:50:10", "3.5.140.2", "TCP", 22));
    let v = ignoring.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(0), "{v}");
}

/// `show` with an id of 100,000 characters (pasted wrong) said it whole, on one line of
/// 100 KB, where every other error is cut: it is cut too.
#[test]
fn show_with_a_huge_id_says_it_cut_short() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let id = "x".repeat(100_000);
    let out = s.run(&["show", &id]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no report \"xxx"), "{}", out.stderr);
    assert!(out.stderr.len() < 1_000, "{} bytes", out.stderr.len());
}

/// Two providers' reports of one part each, one message a run: the other provider's report is
/// held back before it is written, so `history` does not list it yet. The run says so, where
/// it counted it among the reports waiting and `history` showed none.
#[test]
fn a_report_held_back_unwritten_is_said_to_be_unwritten() {
    let s = Setup::new(
        &with_other_provider(&standard_config(""))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write(
        "messages",
        &(drop_line("09:00:00", "3.5.140.2", "TCP", 22)
            + &drop_line("09:00:01", "81.2.69.160", "TCP", 22)),
    );
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains(
            "1 report(s) wait for the next run (max_messages_per_run = 1); 1 of them not written yet"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(history(&s).len(), 1, "the one sent");
}
