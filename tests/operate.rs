//! Running unattended: concurrent runs, `check` on good and broken setups, the systemd units,
//! secrets, and the one summary line every run ends with.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn two_runs_started_together_send_each_report_once() {
    let s = Setup::standard();
    let mut log = String::new();
    for i in 0..20_000 {
        let ip = ["3.5.140.2", "34.223.47.190", "18.206.107.24"][i % 3];
        log.push_str(&drop_line(
            &format!("10:{:02}:{:02}", i / 60 % 60, i % 60),
            ip,
            "TCP",
            22,
        ));
    }
    s.write("messages", &log);
    for _ in 0..3 {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                s.command(&["run"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(s.outbox().len(), 1, "one report, sent once");
    let reports = s.reported();
    assert_eq!(reports.len(), 1);
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let hits: i64 = db
        .query_row("SELECT sum(hits) FROM observation", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hits, 20_000, "no line counted twice by overlapping runs");
}

#[test]
fn check_passes_on_the_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"))
        .current_dir(repo())
        .args(["--config", "config/example.toml", "check"])
        .env("ABUSE_MAILER_NOW", NOW)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for item in [
        "config",
        "source",
        "ranges",
        "asn_db",
        "templates",
        "state",
        "mail",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.split_whitespace().nth(1) == Some(item)),
            "{item}: {text}"
        );
    }
    assert!(
        text.contains("fixtures/logs/messages: 22 of the last 25 lines carry INPUT-DROP:"),
        "{text}"
    );
    assert!(text.contains("(aws format, 5 prefixes)"), "{text}");
    // The clock is pinned before the example database was built: no negative age.
    assert!(
        text.contains("GeoLite2-ASN built 2026-11-25 (after the clock's time)"),
        "{text}"
    );
}

#[test]
fn check_names_each_broken_part() {
    let broken = |what: &str, config: String, prepare: &dyn Fn(&Setup), code: i32, expect: &str| {
        let s = Setup::new(&config);
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        prepare(&s);
        let out = s.run(&["check"]);
        assert_eq!(out.code, code, "{what}: {}", out.stdout);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or_else(|| panic!("{what}: {}", out.stdout));
        assert!(line.contains(expect), "{what}: {line}");
    };
    let base = standard_config("");
    broken(
        "missing source",
        base.replace("{dir}/messages", "{dir}/nope.log"),
        &|_| {},
        78,
        "nope.log",
    );
    // Said once: a file that is not there is neither unreadable to the unit's user nor
    // "empty so far".
    let s = Setup::new(&base.replace("{dir}/messages", "{dir}/nope.log"));
    let out = s.run(&["check"]);
    let said: Vec<&str> = (out.stdout.lines())
        .filter(|l| l.contains("nope.log"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.stdout);
    assert!(
        said[0].ends_with("nope.log: no such file"),
        "{}",
        out.stdout
    );
    broken(
        "bad ranges",
        base.replace(
            "{repo}/fixtures/ranges/aws-ip-ranges.json",
            "{dir}/ranges.json",
        ),
        &|s| s.write("ranges.json", "{ not json"),
        78,
        "ranges.json",
    );
    broken(
        "wrong database",
        base.replace("[mail]", "[enrich]\nasn_db = \"{dir}/asn.mmdb\"\n[mail]"),
        &|s| s.write("asn.mmdb", "not a database"),
        78,
        "asn.mmdb",
    );
    broken(
        "broken template",
        base.replace(
            "[report]\n",
            "[report]\ntemplates_dir = \"{dir}/templates\"\n",
        ),
        &|s| {
            fs::create_dir(s.path("templates")).unwrap();
            s.write("templates/body.txt", "{% for x in %}");
        },
        78,
        "body.txt",
    );
    // A FIFO or a device where a file is read whole: refused, never waited on or read
    // without end (a run blocked on a FIFO holds the lock, and every later run gives way).
    let mkfifo = |s: &Setup, name: &str| {
        let made = std::process::Command::new("mkfifo")
            .arg(s.path(name))
            .status()
            .unwrap();
        assert!(made.success());
    };
    broken(
        "ranges a FIFO",
        base.replace(
            "{repo}/fixtures/ranges/aws-ip-ranges.json",
            "{dir}/ranges.json",
        ),
        &|s| mkfifo(s, "ranges.json"),
        78,
        "not a regular file (a FIFO)",
    );
    broken(
        "asn_db a device",
        base.replace("[mail]", "[enrich]\nasn_db = \"/dev/zero\"\n[mail]"),
        &|_| {},
        78,
        "not a regular file (a character device)",
    );
    broken(
        "a template a FIFO",
        base.replace(
            "[report]\n",
            "[report]\ntemplates_dir = \"{dir}/templates\"\n",
        ),
        &|s| {
            fs::create_dir(s.path("templates")).unwrap();
            mkfifo(s, "templates/body.txt");
        },
        78,
        "not a regular file (a FIFO)",
    );
    // `mail.dir` a link to nothing: no run could ever write there (it said 75, "try again",
    // on every run).
    let dangling = |s: &Setup| std::os::unix::fs::symlink("nowhere", s.path("outbox")).unwrap();
    broken(
        "mail.dir a dangling link",
        base.clone(),
        &dangling,
        78,
        "a link to nowhere, which does not exist",
    );
    let s = Setup::new(&base);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    dangling(&s);
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    // `state_dir` a link to nothing, or a file: no run could make the state there.
    let link = |s: &Setup| std::os::unix::fs::symlink("nowhere", s.path("state")).unwrap();
    let file = |s: &Setup| s.write("state", "x");
    type Prepare<'a> = &'a dyn Fn(&Setup);
    let no_folder: [(&str, Prepare<'_>); 2] = [
        ("a link to nowhere, which does not exist", &link),
        ("not a folder", &file),
    ];
    for (what, prepare) in no_folder {
        broken("state_dir no folder", base.clone(), prepare, 78, what);
        let s = Setup::new(&base);
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        prepare(&s);
        // `preview` and `history` read the state: they say it as a run does (they ended 1,
        // "cannot read …/state.db: Not a directory", naming no key).
        for command in ["run", "preview", "history"] {
            let out = s.run(&[command]);
            assert_eq!(out.code, 78, "{command}: {}", out.stderr);
            assert!(
                out.stderr.contains("state_dir") && out.stderr.contains(what),
                "{command}: {}",
                out.stderr
            );
        }
    }
    // Written with its slash (`state_dir = "state/"`), a file there is as lasting: 78 naming
    // the key, where it was 1 ("File exists", "Not a directory").
    let slashed = base.replace(
        "state_dir = \"{dir}/state\"",
        "state_dir = \"{dir}/state/\"",
    );
    assert_ne!(slashed, base);
    broken(
        "state_dir a file, with its slash",
        slashed.clone(),
        &file,
        78,
        "not a folder",
    );
    let s = Setup::new(&slashed);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    file(&s);
    for command in ["run", "preview", "history"] {
        let out = s.run(&[command]);
        assert_eq!(out.code, 78, "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains("state_dir"),
            "{command}: {}",
            out.stderr
        );
    }
    // A provider's own template is rendered too, as its reports render it, and named first
    // as that file (it led with the shared `subject.txt`, which holds nothing wrong).
    broken(
        "a provider's own broken template",
        base.replace(
            "[report]\n",
            "[report]\ntemplates_dir = \"{dir}/templates\"\n",
        ),
        &|s| {
            fs::create_dir_all(s.path("templates/aws")).unwrap();
            s.write("templates/aws/subject.txt", "{{ nonexistent }}");
        },
        78,
        "template aws/subject.txt: ",
    );
    // The shared ones too, when every provider has its own: discovered desks get them.
    broken(
        "a shared template every provider overrides",
        base.replace(
            "[report]\n",
            "[report]\ntemplates_dir = \"{dir}/templates\"\n",
        ),
        &|s| {
            fs::create_dir_all(s.path("templates/aws")).unwrap();
            s.write("templates/aws/subject.txt", "{{ provider }}");
            s.write("templates/aws/body.txt", "{{ provider }}");
            s.write("templates/body.txt", "{{ nonexistent }}");
        },
        78,
        "body.txt",
    );
    // A column wider than a mail line, asked of a filter, is refused naming the filter; it
    // made a process that panicked, or that took all memory and was killed.
    for (template, filter) in [
        (
            "{{ provider | pad(width=9223372036854775807) }}",
            "pad: width",
        ),
        (
            "{{ 'a b c' | wrap(width=1, indent=9223372036854775807) }}",
            "wrap: indent",
        ),
        ("{{ 'a b c' | wrap(start=999) }}", "wrap: start"),
    ] {
        broken(
            "a column wider than a mail line",
            base.replace(
                "[report]\n",
                "[report]\ntemplates_dir = \"{dir}/templates\"\n",
            ),
            &|s| {
                fs::create_dir(s.path("templates")).unwrap();
                s.write("templates/subject.txt", template);
            },
            78,
            filter,
        );
        let s = Setup::new(&base.replace(
            "[report]\n",
            "[report]\ntemplates_dir = \"{dir}/templates\"\n",
        ));
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        fs::create_dir(s.path("templates")).unwrap();
        s.write("templates/subject.txt", template);
        let out = s.run(&["preview"]);
        assert_eq!(out.code, 78, "{}", out.stderr);
        assert!(
            out.stderr.contains(filter) && !out.stderr.contains("panicked"),
            "{}",
            out.stderr
        );
    }
    // A templates folder that is not there would leave every report on the defaults
    // unsaid: `check` names it, and a run refuses to send on them.
    let misspelt = base.replace(
        "[report]\n",
        "[report]\ntemplates_dir = \"{dir}/tempaltes\"\n",
    );
    broken(
        "missing templates folder",
        misspelt.clone(),
        &|_| {},
        78,
        "report.templates_dir",
    );
    let s = Setup::new(&misspelt);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("tempaltes"), "{}", out.stderr);
    assert!(s.outbox().is_empty());
}

#[test]
fn check_smtp_names_an_unreachable_server() {
    let port = common::smtp::free_port();
    let s = Setup::new(&standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!("transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_secs = 2"),
    ));
    s.write("messages", "");
    let out = s.run(&["check", "--smtp"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("error") && l.contains(&format!("127.0.0.1:{port}")))
    );
}

#[test]
fn a_password_others_can_read_is_refused() {
    let s = Setup::new(&standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"smtp\"\nusername = \"abuse\"\npassword_file = \"{dir}/pw\"",
    ));
    s.write("messages", "");
    s.write("pw", "s3cret-value\n");
    fs::set_permissions(s.path("pw"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("open to others") && !out.stderr.contains("s3cret-value"),
        "{}",
        out.stderr
    );

    // A password in the config file itself: that file must be private too.
    let s = Setup::new(&standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"smtp\"\nusername = \"abuse\"\npassword = \"s3cret-value\"",
    ));
    s.write("messages", "");
    fs::set_permissions(s.path("config.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.run(&["preview"]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("config.toml") && out.stderr.contains("open to others"),
        "{}",
        out.stderr
    );
    fs::set_permissions(s.path("config.toml"), fs::Permissions::from_mode(0o600)).unwrap();
    s.run(&["preview"]).ok();
}

#[test]
fn every_run_ends_with_one_summary_line_and_quiet_silences_it() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    let last = out.stderr.lines().last().unwrap();
    assert!(last.starts_with("abuse-mailer run: read 1 lines"), "{last}");
    assert!(
        last.contains("aws: 1 new") && last.contains("1 sent"),
        "{last}"
    );
    let again = s.run(&["run"]).ok();
    assert!(
        again
            .stderr
            .lines()
            .last()
            .unwrap()
            .contains("nothing new to report")
    );
    let quiet = s.run(&["-q", "run"]).ok();
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, "");
}

/// The sending budget holds most of a delta back: the summary counts every report the run
/// made, those written to wait included (as `run --json` lists them), and a run that made
/// none while addresses wait does not say there was nothing new.
#[test]
fn the_summary_counts_the_parts_made_to_wait_and_never_calls_waiting_addresses_nothing_new() {
    let s = Setup::new(
        &standard_config("max_ips_per_message = 1")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    let log: String = (1..=10)
        .map(|i| drop_line(&format!("10:00:{i:02}"), &format!("3.5.140.{i}"), "TCP", 22))
        .collect();
    s.write("messages", &log);
    let out = s.run(&["run", "--json"]).ok();
    let last = out.stderr.lines().last().unwrap();
    assert!(last.contains("aws: 4 new in 4 messages; 1 sent"), "{last}");
    assert_eq!(out.json()["reports"].as_array().unwrap().len(), 4);
    // The next run sends a waiting part and makes none: six addresses wait.
    let next = s.run(&["run"]).ok();
    let last = next.stderr.lines().last().unwrap();
    assert!(
        !last.contains("nothing new to report") && last.contains("addresses wait"),
        "{}",
        next.stderr
    );
}

#[test]
fn systemd_units_verify() {
    // `Persistent=` catches up on missed `OnCalendar=` times only: beside the monotonic
    // `OnBootSec=`/`OnUnitActiveSec=` it does nothing, and `verify` does not say so.
    let timer = fs::read_to_string(repo().join("config/abuse-mailer.timer")).unwrap();
    assert!(
        !timer.contains("Persistent=") || timer.contains("OnCalendar="),
        "{timer}"
    );
    if !tool("systemd-analyze", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = fs::read_to_string(repo().join("config/abuse-mailer.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/abuse-mailer",
            env!("CARGO_BIN_EXE_abuse-mailer"),
        );
    fs::write(dir.path().join("abuse-mailer.service"), service).unwrap();
    fs::copy(
        repo().join("config/abuse-mailer.timer"),
        dir.path().join("abuse-mailer.timer"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("abuse-mailer.service"))
        .arg(dir.path().join("abuse-mailer.timer"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("abuse-mailer"),
        "warnings about our units: {said}"
    );
}

/// Runs `args` with standard output a pipe whose reader has already gone (a pager quit, a
/// `| head` done reading, a daemon's closed descriptor).
fn run_with_closed_stdout(s: &Setup, args: &[&str]) -> Ran {
    let mut child = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    Ran::from(child.wait_with_output().unwrap())
}

/// Runs `args` with standard output and error one pipe whose reader has gone (`2>&1 | head`),
/// returning the exit status.
fn status_with_all_output_closed(s: &Setup, args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = s
        .command(args)
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    child.wait().unwrap()
}

/// `run --json | head -c 10` (or a reader gone before the document came) on a run whose
/// delivery failed: the run ends with its own status, 75, and says why, as without `--json`.
/// It ended 0 with its last lines unsaid: the document's write failed first, and a closed
/// output is no error of the run's.
#[test]
fn a_json_reader_gone_hides_no_failed_delivery() {
    let s = Setup::new(&standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"sendmail\"\nsendmail_path = \"{dir}/sendmail\"",
    ));
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat >/dev/null\necho 'queue file write error' >&2\nexit 75\n",
    );
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = run_with_closed_stdout(&s, &["-q", "run", "--json"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("will retry"), "{}", out.stderr);
}

#[test]
fn output_closed_by_its_reader_neither_panics_nor_stops_a_run() {
    let s = Setup::new(&standard_config("max_ips_per_message = 1"));
    let log: String = ["3.5.140.2", "3.5.140.3", "3.5.140.4"]
        .iter()
        .enumerate()
        .map(|(i, ip)| drop_line(&format!("10:00:0{i}"), ip, "TCP", 22))
        .collect();
    s.write("messages", &log);
    // Each report sent is said on standard output: the first such line used to panic, so
    // the run stopped after one report.
    let out = run_with_closed_stdout(&s, &["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.outbox().len(), 3, "every part goes out: {}", out.stderr);
    for args in [
        &["history"][..],
        &["history", "--json"],
        &["preview"],
        &["preview", "--json"],
        &["check"],
        &["firewall", "--provider", "aws"],
        &["show", "nothing-by-this-id"],
    ] {
        let out = run_with_closed_stdout(&s, args);
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("Broken pipe"),
            "{args:?}: {}",
            out.stderr
        );
        assert_ne!(out.code, 101, "{args:?}: {}", out.stderr);
    }
    // Standard error gone too: the summary line and any warning are dropped, the run goes on.
    s.append(
        "messages",
        &(drop_line("10:00:07", "3.5.140.8", "TCP", 22)
            + &drop_line("10:00:08", "3.5.140.9", "TCP", 22)),
    );
    let status = status_with_all_output_closed(&s, &["run"]);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(s.outbox().len(), 5, "both new parts go out");
}

#[test]
fn spans_longer_than_the_calendar_mean_always_not_a_crash() {
    let log = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    // `4294967295` is a natural way to write "never again" / "no limit".
    for (key, value) in [
        ("rereport_after_days", "4294967295"),
        ("max_age_days", "4294967295"),
    ] {
        let s = Setup::new(&standard_config(&format!("{key} = {value}")));
        s.write("messages", &log);
        for args in [&["preview"][..], &["check"], &["run"]] {
            let out = s.run(args);
            assert!(
                !out.stderr.contains("panicked"),
                "{key} {args:?}: {}",
                out.stderr
            );
            assert_eq!(out.code, 0, "{key} {args:?}: {}", out.stderr);
        }
        assert_eq!(s.outbox().len(), 1, "{key}");
        s.run(&["run"]).ok();
        assert_eq!(s.outbox().len(), 1, "{key}: nothing again");
    }
    let s = Setup::new(&standard_config(""));
    s.write("messages", &log);
    let out = s.run(&["preview", "--since", "999999999d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for args in [
        &["preview", "--since", "99999999999999w"][..],
        &["reread", "--source", "x", "--since", "99999999999999w"],
    ] {
        let out = s.run(args);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("too long a span"),
            "{args:?}: {}",
            out.stderr
        );
        assert_ne!(out.code, 0, "{args:?}");
    }
}

/// `redact` replaces its default: an operator who writes `["DST"]` to hide their addresses
/// too shows the MAC the default hid. `check` says so (a warning, exit 0), and says nothing
/// with both listed.
#[test]
fn check_warns_when_redact_leaves_out_the_mac() {
    for (redact, warned) in [("[\"DST\"]", true), ("[\"MAC\", \"DST\"]", false)] {
        let s = Setup::new(&standard_config(&format!("redact = {redact}")));
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        let out = s.run(&["check"]);
        assert_eq!(out.code, 0, "{}", out.stdout);
        let warning = (out.stdout.lines())
            .any(|l| l.starts_with("warning") && l.contains("leaves out \"MAC\""));
        assert_eq!(warning, warned, "{redact}: {}", out.stdout);
    }
}

/// `-q` says only errors, for `check` as for every command: a healthy check prints nothing,
/// a plain warning nothing either, and a broken part its error line alone.
#[test]
fn quiet_check_prints_only_what_fails() {
    let s = Setup::new(&standard_config("redact = [\"DST\"]"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["-q", "check"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stdout);
    let s = Setup::new(&standard_config("templates_dir = \"{dir}/none\""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["-q", "check"]);
    assert_eq!(out.code, 78);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(lines[0].starts_with("error   templates"), "{}", out.stdout);
}

/// `contacts --ip` with discovery off says it is off, not that `preview` would look the
/// address up (it would not).
#[test]
fn contacts_for_an_address_with_discovery_off_says_so() {
    let s = Setup::standard();
    s.write("messages", "");
    let out = s.run(&["contacts", "--ip", "45.1.0.9"]).ok();
    assert!(
        out.stdout.contains("[discover] is not enabled") && !out.stdout.contains("looks it up"),
        "{}",
        out.stdout
    );
}

/// `run --json` into a standard output that takes no more (a full disk under a redirect):
/// the run's work is done and recorded, and the error says what was lost (it was a bare
/// "No space left on device").
#[test]
fn a_json_document_that_cannot_be_written_says_so() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full") else {
        eprintln!("no /dev/full here");
        return;
    };
    let out = s.command(&["run", "--json"]).stdout(full).output().unwrap();
    let out = Ran::from(out).ended(1, &["cannot write the JSON document to standard output"]);
    assert!(
        out.stderr.contains("what a run sent is recorded"),
        "{}",
        out.stderr
    );
    assert_eq!(s.outbox().len(), 1, "the report went out");
    assert_eq!(history(&s).len(), 1, "and is recorded");
    // A preview sent nothing: it does not say a run's words (it did).
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Ran::from(
        s.command(&["preview", "--json"])
            .stdout(full)
            .output()
            .unwrap(),
    )
    .ended(1, &["a preview changes nothing"]);
    assert!(!out.stderr.contains("what a run sent"), "{}", out.stderr);
}

/// The commands whose output is their answer, into a standard output that takes no more:
/// each fails, saying where the text was going. `check` said ok (exit 0) with its lines
/// lost, and the others gave a bare "No space left on device".
#[test]
fn an_answer_that_cannot_be_written_fails_and_says_where_it_went() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full") else {
        eprintln!("no /dev/full here");
        return;
    };
    // The preview while there is a report to show, then the others with one in the ledger.
    let out = s
        .command(&["preview"])
        .stdout(full.try_clone().unwrap())
        .output();
    let out = Ran::from(out.unwrap());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot write to standard output: No space left on device")
    );
    s.run(&["run"]).ok();
    let commands: [&[&str]; 5] = [
        &["check"],
        &["history"],
        &["history", "--json"],
        &["contacts"],
        &["firewall", "--provider", "aws"],
    ];
    for args in commands {
        let out = s.command(args).stdout(full.try_clone().unwrap()).output();
        let out = Ran::from(out.unwrap());
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("standard output: No space left on device"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// `check` renders the templates as reports are: with addresses. It rendered them with none,
/// so a mistake inside `{% for ip in ips %}` passed it and failed every run (78), while
/// `{{ ips[0].ip }}`, which every report can render, failed it. And the run's error named
/// `aws/body.txt`, a file nobody wrote, for the shared `body.txt`.
#[test]
fn check_renders_the_templates_with_addresses_as_reports_do() {
    let s = Setup::new(&standard_config("templates_dir = \"{dir}/templates\""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    std::fs::create_dir(s.path("templates")).unwrap();
    let body = std::fs::read_to_string(repo().join("templates/body.txt")).unwrap();
    s.write(
        "templates/body.txt",
        &format!("{body}{{% for i in ips %}}{{{{ i.adress }}}}{{% endfor %}}\n"),
    );
    let check = s.run(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(
        check.stdout.contains("template body.txt") && check.stdout.contains("adress"),
        "{}",
        check.stdout
    );
    let run = s.run(&["run"]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(
        run.stderr.contains("template body.txt") && !run.stderr.contains("aws/body.txt"),
        "{}",
        run.stderr
    );
    s.write(
        "templates/body.txt",
        &format!("{body}First: {{{{ ips[0].ip }}}}\n"),
    );
    let check = s.run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    let run = s.run(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Template files no report reads, which left the reports on the default texts unsaid: a
/// link to nothing is refused (78) by `check` and `run`, a name misspelt or a folder that
/// names no provider is said by `check`, `preview` and `run`; a template that renders
/// nothing for a report (a subject left empty, or all in a branch not taken) is refused.
/// Each went out as the default text, or as `Subject: ` with nothing after it.
#[test]
fn templates_no_report_reads_or_that_say_nothing_are_said() {
    let s = Setup::new(&standard_config("templates_dir = \"{dir}/templates\""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    std::fs::create_dir_all(s.path("templates/AWS")).unwrap();
    s.write(
        "templates/AWS/subject.txt",
        "Abuse from {{ ip_count }} hosts\n",
    );
    s.write("templates/subjet.txt", "Abuse from {{ ip_count }} hosts\n");
    for harmless in [".notes", "README.md", "#body.txt#", "subject.txt.dpkg-old"] {
        s.write(&format!("templates/{harmless}"), "mine\n");
    }
    std::os::unix::fs::symlink(s.path("nowhere/body.txt"), s.path("templates/body.txt")).unwrap();
    for args in [&["check"][..], &["run"]] {
        let out = s.run(args);
        assert_eq!(out.code, 78, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            (out.stdout.clone() + &out.stderr).contains("body.txt: a link to nothing"),
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    assert!(s.outbox().is_empty());
    std::fs::remove_file(s.path("templates/body.txt")).unwrap();
    let check = s.run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    let said = |text: &str| {
        text.contains("AWS/, subjet.txt: no report reads them")
            && text.contains("subject.txt or body.txt")
            && text.contains("named as a provider: aws/")
            && !text.contains(".notes")
            && !text.contains("README")
            && !text.contains("#body")
            && !text.contains("dpkg")
    };
    assert!(said(&check.stdout), "{}", check.stdout);
    let preview = s.run(&["preview"]).ok();
    assert!(said(&preview.stderr), "{}", preview.stderr);
    let quiet = s.run(&["-q", "preview"]).ok();
    assert!(!quiet.stderr.contains("not read"), "{}", quiet.stderr);
    // A subject that is empty for this report.
    std::fs::remove_dir_all(s.path("templates/AWS")).unwrap();
    std::fs::remove_file(s.path("templates/subjet.txt")).unwrap();
    s.write(
        "templates/subject.txt",
        "{% if ip_count > 1 %}Abuse from {{ ip_count }} hosts{% endif %}\n",
    );
    let run = s.run(&["run"]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("template subject.txt: rendered nothing"),
        "{}",
        run.stderr
    );
    assert!(s.outbox().is_empty());
    s.write(
        "templates/subject.txt",
        "Abuse from {{ ip_count }} host{% if ip_count > 1 %}s{% endif %}\n",
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "sent once fixed");
}

/// What fails every run, `check` fails too: a `run.lock` that is a link (never opened
/// through) or a folder, and an `ABUSE_MAILER_JOURNAL_STALL_SECS` that is no number with a
/// journald source. `check` said ok to both.
#[test]
fn check_fails_on_what_fails_every_run() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    std::fs::create_dir(s.path("state")).unwrap();
    std::os::unix::fs::symlink("elsewhere", s.path("state/run.lock")).unwrap();
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("run.lock is not a regular file"),
        "{}",
        check.stdout
    );
    assert_eq!(s.run(&["run"]).code, 1);

    let journald =
        Setup::new(&standard_config("").replace("path = \"{dir}/messages\"", "journald = true"));
    let check = journald
        .command(&["check"])
        .env("ABUSE_MAILER_JOURNAL_STALL_SECS", "5m")
        .output()
        .unwrap();
    let check = Ran::from(check);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(
        check.stdout.contains("ABUSE_MAILER_JOURNAL_STALL_SECS"),
        "{}",
        check.stdout
    );
}
