//! The log lines kept for later reports: each address's first lines and the desk's densest
//! window, kept line by line across runs. A packet is shown once however it was kept, in the
//! order it was logged; lines of history do not hold an address's place; a preview shows what
//! the run sends, on a migrated state or not; a state numbered to its end says what to do.

mod common;
#[path = "common/discovery.rs"]
mod discovery;
#[path = "common/discover_stubs.rs"]
mod stubs;

use std::fs;

use common::*;

fn sql(s: &Setup, statements: &str) {
    rusqlite::Connection::open(s.path("state/state.db"))
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

fn count(s: &Setup, query: &str) -> i64 {
    rusqlite::Connection::open(s.path("state/state.db"))
        .unwrap()
        .query_row(query, [], |r| r.get(0))
        .unwrap()
}

/// Three packets make a report: an address seen once waits, its line kept.
fn waiting_setup(extra_report: &str) -> Setup {
    Setup::new(&standard_config(extra_report).replace("min_hits = 1", "min_hits = 3"))
}

/// The "Log excerpt: ... held N packets ..." sentence of a message, on one line.
fn held(message: &str) -> String {
    let from = message.find("Log excerpt").unwrap();
    let to = message[from..].find("addresses:").unwrap();
    message[from..from + to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_line_kept_as_its_addresses_own_and_in_the_window_is_shown_once() {
    let s = waiting_setup("");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    // Both rows of the one packet stay: the window does not move on the next run.
    s.append(
        "messages",
        &[
            drop_line("10:00:10", "3.5.140.2", "TCP", 22),
            drop_line("10:00:20", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
    let first = "Jan 25 10:00:00 web1 kernel";
    // The body's excerpt, excerpt.log and evidence.log: once each.
    assert_eq!(sent.matches(first).count(), 3, "{sent}");
    assert_eq!(
        preview.stdout.matches(first).count(),
        3,
        "{}",
        preview.stdout
    );
    assert!(held(&sent).contains("held 1 packet"), "{}", held(&sent));
}

#[test]
fn a_report_held_by_the_budget_shows_its_one_packet_once_when_it_goes() {
    let s = Setup::new(
        &with_other_provider(&standard_config(""))
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:02", "81.2.69.143", "TCP", 80),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 2);
    for message in sent {
        let text = fs::read_to_string(&message).unwrap();
        assert!(held(&text).contains("held 1 packet"), "{}", held(&text));
        let lines = text
            .lines()
            .filter(|l| l.starts_with("Jan 25 10:00"))
            .count();
        assert_eq!(lines, 3, "{text}");
    }
}

#[test]
fn lines_kept_by_an_earlier_run_come_first_within_their_second() {
    let s = waiting_setup("");
    s.write(
        "messages",
        &[
            // A denser second elsewhere holds the window.
            drop_line("09:00:00", "34.223.47.190", "UDP", 53),
            drop_line("09:00:00", "34.223.47.190", "UDP", 54),
            drop_line("10:00:00", "3.5.140.2", "TCP", 1),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 2),
            drop_line("10:00:30", "3.5.140.2", "TCP", 3),
        ]
        .concat(),
    );
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
    let ports = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("Jan 25 10:00:00") && l.contains("SRC=3.5.140.2"))
            .map(|l| l.split("DPT=").nth(1).unwrap().trim().to_string())
            .collect()
    };
    for text in [&sent, &preview.stdout] {
        let order = ports(text);
        assert!(!order.is_empty(), "{text}");
        for pair in order.chunks(2) {
            assert_eq!(pair, ["1", "2"], "logged order within 10:00:00: {order:?}");
        }
    }
}

/// 2026-01-25T10:00:00Z: days before the clock of the tests below.
const LONG_AGO: i64 = 1_769_335_200;

#[test]
fn stale_lines_not_yet_let_go_do_not_hold_an_addresses_place() {
    let mut s = waiting_setup("max_age_days = 1");
    s.now = "2026-01-29T08:00:00Z".to_string();
    let line =
        |t: &str, ip: &str, dpt: u16| drop_line(t, ip, "TCP", dpt).replace("Jan 25", "Jan 29");
    s.write("messages", &line("07:00:00", "34.223.47.190", 1));
    s.run(&["run"]).ok();
    // A flood days ago: more lines than one run lets go, then three of the address's own.
    sql(
        &s,
        &format!(
            "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 99999)
             INSERT INTO evidence (provider, time, seq, ip, line)
             SELECT 'aws', {LONG_AGO}, 1000 + x, '18.206.' || (x / 256) || '.' || (x % 256), 'flood' FROM c;
             INSERT INTO evidence (provider, time, seq, ip, line) VALUES
               ('aws', {LONG_AGO}, 200000, '3.5.140.2', 'old a'),
               ('aws', {LONG_AGO}, 200001, '3.5.140.2', 'old b'),
               ('aws', {LONG_AGO}, 200002, '3.5.140.2', 'old c');"
        ),
    );
    s.append(
        "messages",
        &[
            line("07:10:00", "3.5.140.2", 10),
            line("07:20:00", "3.5.140.2", 20),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append("messages", &line("07:30:00", "3.5.140.2", 30));
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
    let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
    let heading = sent.lines().find(|l| l.starts_with("# 3.5.140.2")).unwrap();
    assert!(heading.ends_with("3 of its lines"), "{heading}");
    assert!(!sent.contains("old a"), "{sent}");
}

#[test]
fn a_desk_that_hears_nothing_more_still_lets_its_old_lines_go() {
    let mut s = waiting_setup("max_age_days = 1");
    s.now = "2026-01-29T08:00:00Z".to_string();
    let line = |t: &str| drop_line(t, "81.2.69.143", "TCP", 1).replace("Jan 25", "Jan 29");
    s.write("messages", &line("07:00:00"));
    s.run(&["run"]).ok();
    sql(
        &s,
        &format!(
            "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 149999)
             INSERT INTO evidence (provider, time, seq, ip, line, dense)
             SELECT 'aws', {LONG_AGO}, x, '18.' || (x / 65536) || '.' || ((x / 256) % 256) || '.' || (x % 256),
                    'flood', x = 149999 FROM c;"
        ),
    );
    // Runs that read lines of an address in no provider only: none for the desk.
    for t in ["07:01:00", "07:02:00"] {
        s.append("messages", &line(t));
        s.run(&["run"]).ok();
    }
    assert_eq!(
        count(
            &s,
            &format!("SELECT count(*) FROM evidence WHERE time = {LONG_AGO}")
        ),
        0
    );
}

#[test]
fn a_preview_on_a_state_not_yet_migrated_shows_what_the_run_sends() {
    let s = waiting_setup("");
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 1),
            drop_line("10:00:00", "34.223.47.190", "UDP", 53),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    // The state as the release before kept it.
    sql(
        &s,
        "DELETE FROM evidence WHERE dense = 1; DROP INDEX evidence_dense;
         ALTER TABLE evidence DROP COLUMN dense; ALTER TABLE report DROP COLUMN unconfirmed;
         DROP TABLE report_preview; ALTER TABLE cursor DROP COLUMN born;
         DROP TABLE contact_recheck; DROP INDEX cursor_by_file;
         ALTER TABLE report DROP COLUMN deferred_since;
         ALTER TABLE cursor DROP COLUMN tail;
         ALTER TABLE report DROP COLUMN unclear_since; ALTER TABLE report DROP COLUMN handed;
         PRAGMA user_version = 10;",
    );
    s.append(
        "messages",
        &[
            drop_line("10:00:05", "3.5.140.2", "TCP", 2),
            drop_line("10:00:06", "3.5.140.2", "TCP", 3),
        ]
        .concat(),
    );
    let preview = s.run(&["preview"]).ok();
    s.run(&["history"]).ok();
    s.run(&["run"]).ok();
    let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("Jan 25"))
            .map(str::to_string)
            .collect()
    };
    assert!(lines(&preview.stdout).iter().any(|l| l.contains("DPT=1 ")));
    assert_eq!(lines(&preview.stdout), lines(&sent));
}

#[test]
fn kept_lines_numbered_to_the_end_of_the_range_are_a_clear_error_not_a_wrap() {
    for last in [i64::MAX, i64::MAX - 1] {
        let s = waiting_setup("");
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 1));
        s.run(&["run"]).ok();
        sql(
            &s,
            &format!("UPDATE evidence SET seq = {last} WHERE dense = 0"),
        );
        s.append(
            "messages",
            &[
                drop_line("10:00:05", "34.223.47.190", "TCP", 2),
                drop_line("10:00:05", "34.223.47.190", "TCP", 3),
            ]
            .concat(),
        );
        let failed = s.run(&["run"]);
        assert_eq!(failed.code, 1, "{}", failed.stderr);
        assert!(
            failed.stderr.contains("state.db")
                && failed
                    .stderr
                    .contains("DELETE FROM evidence WHERE provider = 'aws'"),
            "{}",
            failed.stderr
        );
        assert_eq!(count(&s, "SELECT count(*) FROM evidence WHERE seq < 0"), 0);
        // What it says to do, done: the lines read go in again, numbered afresh.
        sql(&s, "DELETE FROM evidence WHERE provider = 'aws'");
        s.run(&["run"]).ok();
        assert_eq!(
            count(
                &s,
                "SELECT count(*) FROM evidence WHERE ip = '34.223.47.190' AND dense = 0"
            ),
            2
        );
    }
}

#[test]
fn preview_and_run_agree_on_an_address_whose_only_kept_line_is_in_the_window() {
    use discovery::{abuse_net, log, outbox_to, registry_down, setup};
    use stubs::{Dns, Rdap};
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
        "abuse@hoster-b.nl",
    );
    let s = setup(&rdap, &dns, "abusix = false", "");
    // The registry cannot be reached: the address waits, its line kept.
    registry_down(&s, true, &rdap);
    log(&s, &[("10:00:00", "45.1.0.9")]);
    assert_eq!(s.run_bounded(&["run"]).code, 0);
    // Its own line has gone; the window still holds it, until the next run moves it.
    sql(
        &s,
        "DELETE FROM evidence WHERE ip = '45.1.0.9' AND dense = 0",
    );
    registry_down(&s, false, &rdap);
    log(&s, &[("11:00:00", "45.2.0.7"), ("11:00:00", "45.2.0.7")]);
    let preview = s.run_bounded(&["preview"]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert_eq!(s.run_bounded(&["run"]).code, 0);
    let sent = outbox_to(&s);
    assert_eq!(
        preview.stdout.contains("To: abuse@hoster-a.de"),
        sent.contains(&"abuse@hoster-a.de".to_string()),
        "{}\n{sent:?}",
        preview.stdout
    );
    assert!(sent.contains(&"abuse@hoster-b.nl".to_string()), "{sent:?}");
}

#[test]
fn identical_packets_read_in_two_runs_are_two_packets_as_in_one() {
    let mut held_by_split = Vec::new();
    for split in [false, true] {
        let s = waiting_setup("");
        // Two packets alike to the byte (a log without the kernel's uptime stamp can have
        // them), then a third that makes the report.
        let alike = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
        let last = drop_line("10:00:30", "3.5.140.2", "TCP", 23);
        if split {
            s.write("messages", &alike);
            s.run(&["run"]).ok();
            s.append("messages", &[alike.clone(), last].concat());
        } else {
            s.write("messages", &[alike.clone(), alike.clone(), last].concat());
        }
        s.run(&["run"]).ok();
        let sent = fs::read_to_string(&s.outbox()[0]).unwrap();
        held_by_split.push((held(&sent), sent.matches("DPT=22 ").count()));
    }
    assert!(
        held_by_split[0].0.contains("held 2 packets"),
        "{held_by_split:?}"
    );
    assert_eq!(held_by_split[0], held_by_split[1]);
}

#[test]
fn kept_lines_numbered_with_other_than_whole_numbers_are_a_clear_error() {
    let s = waiting_setup("");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    for edit in [
        "UPDATE evidence SET seq = seq + 0.5",
        "UPDATE evidence SET seq = 'x' || seq",
    ] {
        sql(&s, edit);
        s.append("messages", &drop_line("10:00:10", "3.5.140.2", "TCP", 23));
        for command in ["run", "preview"] {
            let failed = s.run(&[command]);
            assert_eq!(failed.code, 1, "{}", failed.stderr);
            assert!(
                failed.stderr.contains("state.db")
                    && failed
                        .stderr
                        .contains("DELETE FROM evidence WHERE provider = 'aws'")
                    && failed.stderr.lines().count() == 1,
                "{}",
                failed.stderr
            );
        }
    }
    sql(&s, "DELETE FROM evidence WHERE provider = 'aws'");
    s.run(&["run"]).ok();
}

#[test]
fn an_address_only_a_discovered_desk_may_get_keeps_one_line_across_runs() {
    use discovery::{log, registry_down, setup};
    use stubs::{Dns, Rdap};
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let s = setup(&rdap, &dns, "abusix = false", "");
    // The registry cannot be reached: the address waits, run after run.
    registry_down(&s, true, &rdap);
    let own = "SELECT count(*) FROM evidence WHERE ip = '45.1.0.9' AND dense = 0";
    for t in ["10:00:00", "11:00:00", "12:00:00"] {
        log(&s, &[(t, "45.1.0.9")]);
        assert_eq!(s.run_bounded(&["run"]).code, 0);
        assert_eq!(count(&s, own), 1);
    }
}

#[test]
fn history_kept_for_a_provider_taken_out_of_the_configuration_is_let_go() {
    let mut s = Setup::new(&with_other_provider(
        &standard_config("max_age_days = 1").replace("min_hits = 1", "min_hits = 3"),
    ));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "81.2.69.143", "TCP", 22),
            drop_line("10:00:01", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let kept = |s: &Setup, desk: &str| {
        count(
            s,
            &format!("SELECT count(*) FROM evidence WHERE provider = '{desk}'"),
        )
    };
    assert!(kept(&s, "other") > 0 && kept(&s, "aws") > 0);
    // `other` taken out for a while: its lines are not history yet, and stay.
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let start = config.find("[[provider]]\nname = \"other\"").unwrap();
    let end = start + config[start..].find("[report]").unwrap();
    s.write(
        "config.toml",
        &format!("{}{}", &config[..start], &config[end..]),
    );
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "UDP", 53),
    );
    s.run(&["run"]).ok();
    assert!(kept(&s, "other") > 0);
    // Days on, they are history: the next run that reads anything lets them go.
    s.now = "2026-01-29T08:00:00Z".to_string();
    s.append(
        "messages",
        &drop_line("07:00:00", "34.223.47.190", "UDP", 53).replace("Jan 25", "Jan 29"),
    );
    s.run(&["run"]).ok();
    assert_eq!(kept(&s, "other"), 0);
    assert!(kept(&s, "aws") > 0);
}

#[test]
fn a_desk_name_of_any_type_or_bytes_in_the_state_stops_no_run() {
    let s = waiting_setup("max_age_days = 1");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    // Hand-made rows of history under a name that is a blob, one that is not UTF-8, a number.
    sql(
        &s,
        "INSERT INTO evidence (provider, time, seq, ip, line) VALUES
           (x'617773', 0, 0, '1.2.3.4', 'x'),
           (CAST(x'ff' AS TEXT), 0, 0, '1.2.3.4', 'x'),
           (7, 0, 0, '1.2.3.4', 'x');",
    );
    for t in ["10:00:05", "10:00:06"] {
        s.append("messages", &drop_line(t, "34.223.47.190", "UDP", 53));
        s.run(&["run"]).ok();
    }
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM evidence WHERE typeof(provider) != 'text' OR provider != 'aws'"
        ),
        0
    );
    assert_eq!(s.reported(), Vec::<Vec<String>>::new());
}

#[test]
fn history_of_desks_taken_out_goes_a_bounded_number_a_run_in_all() {
    let s = waiting_setup("max_age_days = 1");
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    sql(
        &s,
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 59999)
         INSERT INTO evidence (provider, time, seq, ip, line)
         SELECT d.name, 0, x, '1.2.3.4', 'x' FROM c, (SELECT 'gone1' AS name UNION ALL SELECT 'gone2') d;",
    );
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "UDP", 53),
    );
    s.run(&["run"]).ok();
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM evidence WHERE provider IN ('gone1', 'gone2')"
        ),
        20_000
    );
}

/// Two runs' worth of log: sixty addresses with one to five packets each, repeated packets
/// logging identical lines, in a few seconds so that a window holds some of them.
fn lines_of_many_addresses(run: u32) -> String {
    let mut log = String::new();
    for n in 1..=60u32 {
        let ip = format!("3.5.140.{n}");
        for k in 0..(n + run) % 5 + 1 {
            let second = format!("10:0{run}:{:02}", (n * 7 + k * 13) % 60);
            let line = drop_line(&second, &ip, if k % 2 == 0 { "TCP" } else { "UDP" }, 22);
            log.push_str(&line);
            if n % 7 == 0 {
                log.push_str(&line);
            }
        }
    }
    log
}

/// What a setup shows and keeps over two runs: the previews, the mail sent and the kept lines
/// after each run; and what the runs said, last.
fn shown_and_kept(s: &Setup) -> (Vec<String>, Vec<Vec<u8>>, Vec<String>) {
    let (mut previews, mut kept) = (Vec::new(), Vec::new());
    let mut stderr = String::new();
    for run in 0..2 {
        s.append("messages", &lines_of_many_addresses(run));
        previews.push(s.run(&["preview"]).ok().stdout);
        stderr.push_str(&s.run(&["run", "-v"]).ok().stderr);
        let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
        let mut rows = db
            .prepare(
                "SELECT provider, time, seq, ip, line, dense FROM evidence ORDER BY provider, seq",
            )
            .unwrap();
        let rows = rows
            .query_map([], |r| {
                Ok(format!(
                    "{run}: {} {} {} {} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?
                ))
            })
            .unwrap();
        kept.extend(rows.map(Result::unwrap));
    }
    let mail = s.outbox().iter().map(|p| fs::read(p).unwrap()).collect();
    previews.push(stderr);
    (previews, mail, kept)
}

/// Past the memory budget (`ABUSE_MAILER_SPOOL_BYTES`; here none), the lines a read keeps are
/// set aside in a file of the run's own: the previews, the reports and the lines kept are
/// byte for byte those of runs that held every line in memory.
#[test]
fn lines_set_aside_on_disk_make_the_reports_of_lines_held() {
    let held = waiting_setup("");
    let mut aside = waiting_setup("");
    aside
        .env
        .push(("ABUSE_MAILER_SPOOL_BYTES".to_string(), "0".to_string()));
    let (mut shown_held, mail_held, kept_held) = shown_and_kept(&held);
    let (mut shown_aside, mail_aside, kept_aside) = shown_and_kept(&aside);
    let said_aside = shown_aside.pop().unwrap();
    assert!(
        said_aside.contains("bytes of log lines kept as evidence set aside in")
            && said_aside.contains(&format!("{}", aside.path("state").display())),
        "{said_aside}"
    );
    assert!(!shown_held.pop().unwrap().contains("set aside"));
    assert_eq!(shown_aside, shown_held);
    assert!(!mail_held.is_empty() && kept_held.len() > 20);
    assert_eq!(mail_aside, mail_held);
    assert_eq!(kept_aside, kept_held);
}

/// Nowhere to set lines aside (no state folder yet, the temporary folder gone): the lines are
/// held in memory, the run says so, and shows what it would have shown.
#[test]
fn lines_that_cannot_be_set_aside_are_held_and_the_run_says_so() {
    let held = waiting_setup("");
    let mut nowhere = waiting_setup("");
    for (k, v) in [
        ("ABUSE_MAILER_SPOOL_BYTES", "0".to_string()),
        ("TMPDIR", nowhere.path("gone").display().to_string()),
    ] {
        nowhere.env.push((k.to_string(), v));
    }
    for s in [&held, &nowhere] {
        s.write("messages", &lines_of_many_addresses(0));
    }
    let shown = nowhere.run(&["preview"]).ok();
    assert!(
        shown.stderr.contains("could not be set aside on disk")
            && shown.stderr.contains("they are held in memory"),
        "{}",
        shown.stderr
    );
    assert_eq!(shown.stdout, held.run(&["preview"]).ok().stdout);
    assert!(!nowhere.path("state").exists(), "a preview writes nothing");
}

/// A budget that is not a number of bytes is a configuration error that names the variable,
/// and `check` says so before a run meets it.
#[test]
fn a_spool_budget_that_is_not_a_number_is_named() {
    let mut s = waiting_setup("");
    s.write("messages", &lines_of_many_addresses(0));
    s.env
        .push(("ABUSE_MAILER_SPOOL_BYTES".to_string(), "32M".to_string()));
    for command in ["preview", "run", "check"] {
        let ran = s.run(&[command]);
        assert_eq!(ran.code, 78, "{command}: {}", ran.stderr);
        assert!(
            format!("{}{}", ran.stdout, ran.stderr).contains("ABUSE_MAILER_SPOOL_BYTES=\"32M\""),
            "{}",
            ran.stderr
        );
    }
}

/// A clock pinned to something that is not a time is a configuration error (78), named, like
/// any other bad setting: not a failure the unit retries.
#[test]
fn a_pinned_clock_that_is_not_a_time_is_named() {
    let mut s = waiting_setup("");
    s.write("messages", &lines_of_many_addresses(0));
    // Times outside the years a Date header carries too: past 9999 in UTC the run stopped
    // mid-way (a panic, 101) once it had a report to make; before 1970 it was dated 1970.
    for pin in [
        "yesterday",
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-00:01",
        "1969-12-31T23:59:59Z",
    ] {
        s.env
            .push(("ABUSE_MAILER_NOW".to_string(), pin.to_string()));
        for command in ["preview", "run", "history"] {
            let ran = s.run(&[command]);
            assert_eq!(ran.code, 78, "{pin} {command}: {}", ran.stderr);
            assert!(
                ran.stderr.contains(&format!("ABUSE_MAILER_NOW={pin:?}")),
                "{}",
                ran.stderr
            );
        }
        s.env.pop();
    }
}

/// Two lines, the second logged five seconds before the first.
fn out_of_order() -> String {
    [
        drop_line("10:00:10", "3.5.140.2", "TCP", 22),
        drop_line("10:00:05", "3.5.140.3", "TCP", 22),
    ]
    .concat()
}

/// The lines of the mail's evidence.log under `heading` (an address's own lines).
fn own_lines(mail: &std::path::Path, heading: &str) -> String {
    let mail = fs::read_to_string(mail).unwrap();
    let own = mail.split(heading).nth(1).unwrap();
    own.split("\n\n").next().unwrap().to_string()
}

/// A line logged after a later one (hosts' clocks apart, a relay that reorders) is one packet:
/// its address's own lines show it once, whether or not the window holds it too.
#[test]
fn a_line_logged_out_of_order_is_shown_once() {
    let s = Setup::standard();
    s.write("messages", &out_of_order());
    s.run(&["run"]).ok();
    let own = own_lines(&s.outbox()[0], "# 3.5.140.3: 1 packet");
    assert_eq!(own.matches("SRC=3.5.140.3 ").count(), 1, "{own}");
}

/// A window kept by an older version gave a line logged out of order the window's later
/// second: the line is still the one its address keeps, and a report shows it once.
#[test]
fn a_window_line_kept_with_a_later_second_is_shown_once() {
    let s = waiting_setup("");
    s.write("messages", &out_of_order());
    s.run(&["run"]).ok();
    assert!(
        count(
            &s,
            "SELECT count(*) FROM evidence WHERE dense = 1 AND ip = '3.5.140.3'"
        ) > 0
    );
    sql(
        &s,
        "UPDATE evidence SET time = time + 5 WHERE dense = 1 AND ip = '3.5.140.3'",
    );
    s.append(
        "messages",
        &[
            drop_line("10:00:20", "3.5.140.3", "TCP", 22),
            drop_line("10:00:30", "3.5.140.3", "TCP", 22),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let own = own_lines(s.outbox().last().unwrap(), "# 3.5.140.3: 3 packets");
    assert_eq!(own.matches("Jan 25 10:00:05").count(), 1, "{own}");
}

/// A log host's glob reads one host's file after another. An address that reached the host
/// read second first, hours before the other, and outside that host's densest window, showed
/// only the first file's lines: none at the time the report says it was first seen, none
/// from that host. Its own lines now hold its earliest, then its first read.
#[test]
fn an_address_seen_by_two_hosts_shows_its_earliest_line() {
    let s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/hosts/*/kern.log\"\nstart_at = \"beginning\"",
    ));
    let web1: String = (0..5)
        .map(|i| drop_line(&format!("12:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    // web2's densest window is another address's burst, half an hour later.
    let burst = (0..6).map(|i| drop_line(&format!("10:30:0{i}"), "34.223.47.190", "UDP", 53));
    let web2: String = std::iter::once(drop_line("10:00:00", "3.5.140.2", "TCP", 80))
        .chain(burst)
        .collect::<String>()
        .replace(" web1 kernel:", " web2 kernel:");
    fs::create_dir_all(s.path("hosts/web1")).unwrap();
    fs::create_dir_all(s.path("hosts/web2")).unwrap();
    s.write("hosts/web1/kern.log", &web1);
    s.write("hosts/web2/kern.log", &web2);
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let own = own_lines(
        &sent[0],
        "# 3.5.140.2: 6 packets from 2026-01-25T10:00:00+00:00",
    );
    assert!(
        own.contains("Jan 25 10:00:00 web2 kernel:"),
        "the first-seen line, web2's only one, is missing:\n{own}"
    );
    assert!(own.contains("Jan 25 12:00:00 web1 kernel:"), "{own}");
}

/// An address below `min_hits` had its three lines kept when a later run read an earlier one
/// (the file of a host read for the first time, or a line logged late): the state kept the
/// first three it was given, so the report said when the address was first seen, and which
/// port it tried then, with no line that showed it. The earlier line now takes the place of
/// the latest kept.
#[test]
fn an_earlier_line_read_by_a_later_run_is_kept_in_place_of_the_latest() {
    let mut s = Setup::new(
        &standard_config("")
            .replace("min_hits = 1", "min_hits = 6")
            .replace(
                "path = \"{dir}/messages\"",
                "path = \"{dir}/hosts/*/kern.log\"\nstart_at = \"beginning\"",
            ),
    );
    let web1: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    fs::create_dir_all(s.path("hosts/web1")).unwrap();
    s.write("hosts/web1/kern.log", &web1);
    s.run(&["run"]).ok();
    // A host whose file appears now logged the address two hours before.
    fs::create_dir_all(s.path("hosts/web2")).unwrap();
    s.write(
        "hosts/web2/kern.log",
        &drop_line("08:00:00", "3.5.140.2", "TCP", 3389).replace(" web1 kernel:", " web2 kernel:"),
    );
    s.now = "2026-01-26T09:00:00Z".into();
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty(), "four packets wait for six");
    let later: String = (0..2)
        .map(|i| drop_line(&format!("11:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.append("hosts/web1/kern.log", &later);
    s.now = "2026-01-26T10:00:00Z".into();
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let mail = fs::read_to_string(&sent[0]).unwrap();
    for text in [&mail, &preview.stdout] {
        let own = text
            .split("# 3.5.140.2: 6 packets from 2026-01-25T08:00:00+00:00")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        let own = own.split("\n\n").next().unwrap();
        assert!(
            own.contains("Jan 25 08:00:00 web2 kernel:") && own.contains("DPT=3389"),
            "the first-seen line is missing:\n{own}"
        );
    }
}

/// A run stores what it read before it makes its reports, and an address given an earlier
/// line lets go of its latest kept one there: the report made in that run lacked a line the
/// preview just before it showed (and so had another id). The preview now shows the lines
/// as the run will have stored them.
#[test]
fn a_line_given_way_in_the_state_is_shown_alike_by_preview_and_run() {
    let mut s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 6"));
    let (a, b) = ("3.5.140.2", "18.206.107.24");
    let mut first: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), a, "TCP", 22))
        .collect();
    // A denser attacker holds the desk's window, so that A's lines are only its own.
    first += &(0..5)
        .map(|_| drop_line("12:00:00", b, "TCP", 23))
        .collect::<String>();
    s.write("messages", &first);
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty());
    let late = [
        drop_line("08:00:00", a, "TCP", 3389),
        drop_line("13:00:00", a, "TCP", 22),
        drop_line("13:00:01", a, "TCP", 22),
    ];
    s.append("messages", &late.concat());
    s.now = "2026-01-26T09:00:00Z".into();
    let preview = s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let mail = fs::read_to_string(&sent[0]).unwrap().replace("\r\n", "\n");
    let own = |text: &str| lines_under(text, "# 3.5.140.2: 6 packets");
    assert_eq!(own(&preview.stdout), own(&mail));
    assert!(
        own(&mail)[0].starts_with("Jan 25 08:00:00 "),
        "{:?}",
        own(&mail)
    );
    let id = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Message-ID:"))
            .map(str::to_string)
    };
    assert_eq!(id(&preview.stdout), id(&mail));
}

/// The state kept an address's first three lines in time order of all a run gave it, its
/// own and those of the densest window alike: a log in falling time order, whose window
/// holds most of its lines, kept the earliest and two of the window's, not the lines read
/// first. Its own lines are kept first.
#[test]
fn the_state_keeps_an_addresses_own_lines_before_the_windows() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 50"));
    // Twenty packets a minute apart, written latest first, each to its own port.
    let falling: String = (0..20u16)
        .map(|i| {
            let t = 1200 - 60 * u32::from(i);
            drop_line(
                &format!("10:{:02}:00", t / 60),
                "3.5.140.2",
                "TCP",
                1000 + i,
            )
        })
        .collect();
    s.write("messages", &falling);
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty());
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT line FROM evidence WHERE dense = 0 AND ip = '3.5.140.2' ORDER BY time")
        .unwrap();
    let ports: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|l| l.unwrap().split("DPT=").nth(1).unwrap().trim().to_string())
        .collect();
    // The earliest, then the first two read.
    assert_eq!(ports, ["1019", "1001", "1000"]);
}
