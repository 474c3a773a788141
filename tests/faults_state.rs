//! Faults of the state database, with the binary run end to end against a real SMTP server on
//! loopback: a disk that fills up while a message is being accepted, another process holding
//! the write lock, an emptied `state.db`, two configurations on one `state_dir`, readers that
//! meet a writer's lock, and stored times and counts at the ends of their range. Each test
//! counts exactly what reached the server across runs.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::smtp::{self, Delivery, MailServer, Security};
use common::*;
use mail_parser::MessageParser;

fn smtp_config(port: u16, extra_report: &str) -> String {
    standard_config(extra_report).replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_secs = 5"
        ),
    )
}

const ATTACKERS: [&str; 3] = ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"];

fn attack_log() -> String {
    [
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        drop_line("10:00:02", "2600:1f18:4a3:6901::1", "TCP", 443),
        drop_line("10:00:03", "81.2.69.143", "TCP", 80),
    ]
    .concat()
}

fn message_ids(server: &MailServer) -> Vec<String> {
    server
        .received()
        .iter()
        .map(|d| {
            MessageParser::default()
                .parse(&d.data)
                .unwrap()
                .message_id()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Every IP is in exactly one report, and every report was sent.
fn assert_all_sent_once(s: &Setup, ips: &[&str]) {
    let h = history(s);
    let mut seen = BTreeSet::new();
    for r in &h {
        assert_eq!(r["status"], "sent", "{r}");
        for ip in r["ips"].as_array().unwrap() {
            assert!(seen.insert(ip.as_str().unwrap().to_string()), "{ip} twice");
        }
    }
    let want: BTreeSet<String> = ips.iter().map(|i| i.to_string()).collect();
    assert_eq!(seen, want);
}

fn state_db(s: &Setup) -> PathBuf {
    s.path("state/state.db")
}

/// The run failed with 1, naming `state.db`.
fn fails_naming_the_state(s: &Setup, ran: &Ran) {
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(state_db(s).to_str().unwrap()),
        "{}",
        ran.stderr
    );
}

/// A size-limited file system mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes to `dir` until the file system has no byte left.
fn fill(dir: &Path) {
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0x5a; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

/// A mail server, and a setup with `extra` in its report settings whose `state_dir` is a
/// 4 MiB file system of its own (unmounted when the last part is dropped); `None`, said,
/// where no such file system can be mounted (not root).
fn on_a_small_disk(extra: &str) -> Option<(MailServer, Setup, PathBuf, Tmpfs)> {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, extra));
    let state_dir = s.path("state");
    match Tmpfs::mount(&state_dir, "4m") {
        Ok(m) => Some((server, s, state_dir, m)),
        Err(e) => {
            eprintln!("SKIPPED: cannot mount a size-limited tmpfs here (needs root): {e}");
            None
        }
    }
}

#[test]
fn disk_full_after_acceptance_sends_each_report_once() {
    let Some((server, s, state_dir, _fs)) = on_a_small_disk("max_ips_per_message = 1") else {
        return;
    };
    // The disk fills up while the first message is being accepted.
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let (accepted, state_dir) = (accepted.clone(), state_dir.clone());
        *server.on_accept.lock().unwrap() = Some(Box::new(move |_: &Delivery| {
            if accepted.fetch_add(1, Ordering::SeqCst) == 0 {
                fill(&state_dir);
            }
        }));
    }
    s.write("messages", &attack_log());
    let first = s.run(&["run"]);
    fails_naming_the_state(&s, &first);
    assert_eq!(server.received().len(), 1, "{}", first.stderr);
    // Said when it happens, also when no other report would have gone out in that run.
    assert!(
        first.stderr.contains("the disk is full"),
        "{}",
        first.stderr
    );

    // Still full: nothing goes out, not even the report the ledger holds as `sending`.
    let again = s.run(&["run"]);
    fails_naming_the_state(&s, &again);
    assert_eq!(server.received().len(), 1, "{}", again.stderr);

    // New lines meanwhile: nothing is sent, and they are not lost.
    s.append(
        "messages",
        &drop_line("10:30:00", "18.206.107.24", "TCP", 22),
    );
    let read = s.run(&["run"]);
    assert_eq!(server.received().len(), 1, "{}", read.stderr);
    fails_naming_the_state(&s, &read);

    fs::remove_file(state_dir.join("filler")).unwrap();
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let ids = message_ids(&server);
    assert_eq!(ids.len(), 4, "one message per IP, each once: {ids:?}");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "{ids:?}");
    let mut ips = ATTACKERS.to_vec();
    ips.push("18.206.107.24");
    assert_all_sent_once(&s, &ips);
}

/// A state closed cleanly (its shared-memory file gone), then the disk filled: opening it
/// needs room for that file. Said as a full disk, not as a file that cannot be read as a
/// state (which sent operators after a damage that is not there).
#[test]
fn a_state_opened_on_a_full_disk_says_the_disk_is_full() {
    let Some((_server, s, state_dir, _fs)) = on_a_small_disk("") else {
        return;
    };
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    fill(&state_dir);
    for command in [&["run"][..], &["history"]] {
        let full = s.run(command);
        fails_naming_the_state(&s, &full);
        assert!(
            full.stderr.contains("the disk is full")
                && !full.stderr.contains("cannot read it as a state database"),
            "{}",
            full.stderr
        );
    }
}

#[test]
fn a_state_made_on_a_full_disk_is_never_left_half_made() {
    let Some((server, s, state_dir, _fs)) = on_a_small_disk("") else {
        return;
    };
    fill(&state_dir);
    s.write("messages", &attack_log());
    let full = s.run(&["run"]);
    fails_naming_the_state(&s, &full);
    assert!(server.received().is_empty());
    let names: Vec<String> = fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("state"))
        .collect();
    assert!(names.is_empty(), "nothing half made: {names:?}");

    fs::remove_file(state_dir.join("filler")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 1);
    assert_all_sent_once(&s, &ATTACKERS);
}

/// A process killed while it made a new state leaves its temporary database (and WAL) in
/// `state_dir`, where nothing else would remove it: a run removes those of a process that is
/// gone, before and after a state exists, and leaves those of one still making its state.
#[test]
fn the_files_of_a_state_creation_killed_midway_are_removed_by_a_later_run() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    let state_dir = s.path("state");
    fs::create_dir_all(&state_dir).unwrap();
    let gone = |state_dir: &Path| {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        for name in [
            format!(".state.db.new-{pid}"),
            format!(".state.db.new-{pid}-wal"),
            format!(".state.db.new-{pid}-shm"),
        ] {
            fs::write(state_dir.join(name), b"half made").unwrap();
        }
        pid
    };
    let alive = state_dir.join(format!(".state.db.new-{}", std::process::id()));
    fs::write(&alive, b"being made").unwrap();
    let left = |state_dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(state_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".state.db.new-"))
            .collect();
        names.sort();
        names
    };
    let keeps = vec![format!(".state.db.new-{}", std::process::id())];
    // No state yet: the run that makes one.
    gone(&state_dir);
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    assert_eq!(left(&state_dir), keeps);
    // A state made: a later run.
    gone(&state_dir);
    s.run(&["run"]).ok();
    assert_eq!(left(&state_dir), keeps);
    assert!(alive.exists());
}

/// `state.db` moved away (to start afresh, as the tool advises for a damaged one) after a run
/// was killed with changes in its write-ahead log: the log stayed beside the new state, and
/// SQLite replayed the old state's pages into it. Every later run and `history` then failed
/// on a damaged file. The log is set aside and said; the new state is whole and empty, and
/// the old one, given its log back, holds what that run wrote.
#[test]
fn a_write_ahead_log_left_beside_no_state_is_set_aside_not_replayed() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    // A run killed before SQLite folded its last changes into the file.
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch(
        "PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE killed (n INTEGER);
         INSERT INTO killed VALUES (1);
         UPDATE report SET status = 'sent';",
    )
    .unwrap();
    std::mem::forget(db);
    let wal = s.path("state/state.db-wal");
    assert!(fs::metadata(&wal).unwrap().len() > 0);
    // Moved away to start afresh, with the mark of how far its ledger went.
    fs::rename(state_db(&s), s.path("old.db")).unwrap();
    fs::rename(s.path("state/reports.mark"), s.path("old.mark")).unwrap();
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("state.db-wal"), "{}", ran.stderr);
    assert!(!wal.exists());
    let history = s.run(&["history", "--json"]).ok();
    assert_eq!(
        history.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        history.stdout
    );
    let check = rusqlite::Connection::open(state_db(&s)).unwrap();
    let whole: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(whole, "ok");
    let tables: i64 = check
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'killed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the old state's changes are not in the new one");
    // The log set aside, put back beside the old state: its last changes are there.
    let aside = (fs::read_dir(s.path("state")).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("state.db-wal.orphan-"))
        .unwrap();
    fs::rename(&aside, s.path("old.db-wal")).unwrap();
    let old = rusqlite::Connection::open(s.path("old.db")).unwrap();
    let n: i64 = old
        .query_row("SELECT n FROM killed", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_lock_taken_when_the_server_accepts_cannot_keep_the_outcome_out() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    // Like an operator's `sqlite3` opening a write transaction at the worst moment.
    let held: Arc<Mutex<Option<rusqlite::Connection>>> = Arc::new(Mutex::new(None));
    let refused = Arc::new(Mutex::new(None::<String>));
    {
        let (held, refused, db) = (held.clone(), refused.clone(), state_db(&s));
        *server.on_accept.lock().unwrap() = Some(Box::new(move |_: &Delivery| {
            let conn = rusqlite::Connection::open(&db).unwrap();
            // Try once: the server must answer the client well within its timeout.
            conn.busy_timeout(std::time::Duration::ZERO).unwrap();
            match conn.execute_batch("BEGIN EXCLUSIVE") {
                Ok(()) => *held.lock().unwrap() = Some(conn),
                Err(e) => *refused.lock().unwrap() = Some(e.to_string()),
            }
        }));
    }
    let first = s.run(&["run"]);
    drop(held.lock().unwrap().take());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let refused = refused.lock().unwrap().clone();
    assert!(
        refused.as_deref().is_some_and(|e| e.contains("locked")),
        "the run holds the write lock while the server answers: {refused:?}"
    );
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 1);
    assert_all_sent_once(&s, &ATTACKERS);
}

#[test]
fn a_state_locked_by_another_writer_sends_nothing_not_even_a_retry() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 1);
    // The process died between the server's acceptance and recording it: `sending`.
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute(
        "UPDATE report SET status = 'sending', sent_at = NULL, server_reply = NULL",
        [],
    )
    .unwrap();
    // Another writer holds the write lock (readers may still read) past the run's timeout.
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked = s.run(&["run"]);
    assert_eq!(server.received().len(), 1, "{}", locked.stderr);
    fails_naming_the_state(&s, &locked);
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);

    // Writable again: the report goes out once more, and only once.
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let ids = message_ids(&server);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], ids[1], "the same message, resent");
    assert_all_sent_once(&s, &ATTACKERS);
}

/// An attacker that comes after the first run's, with three packets.
const LATER: &str = "18.206.107.24";

fn a_later_attacker(s: &Setup) {
    let lines: String = (0..3)
        .map(|i| drop_line(&format!("10:30:0{i}"), LATER, "TCP", 22))
        .collect();
    s.append("messages", &lines);
}

/// Another writer (an operator's `sqlite3`, a `.backup`) holds the state's write lock for a
/// few seconds while a run comes to store what it read: the run waits its turn and goes on.
/// It was refused at once ("database is locked", exit 1): it read the state first, and
/// SQLite gives a reader no wait for a writer's lock.
#[test]
fn a_run_waits_for_a_write_lock_held_a_few_seconds() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    a_later_attacker(&s);
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        db.execute_batch("COMMIT").unwrap();
    });
    let ran = s.run_bounded(&["run"]);
    holder.join().unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(server.received().len(), 2, "{}", ran.stderr);
    assert_all_sent_once(&s, &[&ATTACKERS[..], &[LATER]].concat());
}

#[test]
fn an_empty_state_file_is_an_error_not_a_fresh_start() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 1);

    let db = state_db(&s);
    fs::write(&db, b"").unwrap();
    s.append(
        "messages",
        &drop_line("10:30:00", "18.206.107.24", "TCP", 22),
    );
    for args in [&["run"][..], &["history"], &["preview"]] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(db.to_str().unwrap()) && out.stderr.contains("empty"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(server.received().len(), 1);
    assert_eq!(fs::metadata(&db).unwrap().len(), 0, "left as it was found");

    fs::write(&db, b"not a database, just text that got here somehow").unwrap();
    let out = s.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(db.to_str().unwrap()), "{}", out.stderr);
    assert_eq!(server.received().len(), 1);

    // A missing state where runs made reports is refused (see
    // `an_older_state_put_back_is_refused_not_reported_from_again`); without the mark of
    // how far they went, it is a new one.
    fs::remove_file(&db).unwrap();
    assert_eq!(s.run(&["run"]).code, 78);
    assert_eq!(server.received().len(), 1);
    fs::remove_file(s.path("state/reports.mark")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 2);
    let names: Vec<String> = fs::read_dir(s.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".state.db"))
        .collect();
    assert!(names.is_empty(), "no temporary left behind: {names:?}");
}

/// Runs the binary with the configuration file at `config`.
fn run_with(s: &Setup, config: &Path, args: &[&str]) -> Ran {
    Ran::from(s.command_with(config, args).output().unwrap())
}

/// A first run refused for its configuration (a source path misspelt: 78) made the state
/// and claimed it for its file: the corrected configuration, in another file, was then
/// refused as a second configuration on one state. A refused run claims nothing.
#[test]
fn a_run_refused_for_its_sources_claims_no_state() {
    let s = Setup::new(&standard_config(""));
    let typo = s.path("typo.toml");
    let text = fs::read_to_string(s.path("config.toml")).unwrap();
    fs::write(&typo, text.replace("/messages\"", "/mesages\"")).unwrap();
    s.write("messages", &attack_log());
    let refused = run_with(&s, &typo, &["run"]);
    assert_eq!(refused.code, 78, "{}", refused.stderr);
    let right = s.run(&["run"]);
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn two_configurations_on_one_state_dir_are_refused_and_a_moved_one_is_not() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    let (a, b) = (s.path("a.toml"), s.path("b.toml"));
    fs::copy(s.path("config.toml"), &a).unwrap();
    fs::copy(s.path("config.toml"), &b).unwrap();
    s.write("messages", &attack_log());
    run_with(&s, &a, &["run"]).ok();
    assert_eq!(server.received().len(), 1);

    s.append(
        "messages",
        &drop_line("10:30:00", "18.206.107.24", "TCP", 22),
    );
    let other = run_with(&s, &b, &["run"]);
    assert_eq!(other.code, 78, "{}", other.stderr);
    for name in ["a.toml", "b.toml", "state_dir"] {
        assert!(other.stderr.contains(name), "{name}: {}", other.stderr);
    }
    assert_eq!(run_with(&s, &b, &["preview"]).code, 78);
    // `check` says so before any run does.
    let check = run_with(&s, &b, &["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("a.toml"), "{}", check.stdout);
    assert_eq!(server.received().len(), 1);

    // Nothing was lost: the first configuration still reads what came meanwhile.
    run_with(&s, &a, &["run"]).ok();
    assert_eq!(server.received().len(), 2);

    // An operator who moves the configuration file is not refused.
    let moved = s.path("moved.toml");
    fs::rename(&a, &moved).unwrap();
    s.append("messages", &drop_line("10:40:00", "35.180.1.1", "TCP", 22));
    run_with(&s, &moved, &["run"]).ok();
    assert_eq!(server.received().len(), 3);
    let other = run_with(&s, &b, &["run"]);
    assert_eq!(other.code, 78, "{}", other.stderr);
    assert!(other.stderr.contains("moved.toml"), "{}", other.stderr);

    // Nor is one whose old file now names another state_dir.
    let text = fs::read_to_string(&moved)
        .unwrap()
        .replace("/state\"", "/state-moved\"");
    fs::write(&moved, text).unwrap();
    s.append(
        "messages",
        &drop_line("10:50:00", "52.80.174.40", "TCP", 22),
    );
    run_with(&s, &b, &["run"]).ok();
    assert_eq!(server.received().len(), 4);
    let mut ips: Vec<&str> = ATTACKERS.to_vec();
    ips.extend(["18.206.107.24", "35.180.1.1", "52.80.174.40"]);
    assert_all_sent_once(&s, &ips);
}

#[test]
fn readers_wait_for_a_writer_instead_of_failing() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    let id = history(&s)[0]["id"].as_str().unwrap().to_string();

    // A state as an older release left it (rollback journal), a writer in its commit.
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    db.execute_batch("BEGIN EXCLUSIVE; UPDATE report SET attempts = attempts;")
        .unwrap();
    let readers: Vec<_> = [vec!["history"], vec!["show", id.as_str()], vec!["preview"]]
        .iter()
        .map(|args| {
            s.command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    db.execute_batch("COMMIT").unwrap();
    for reader in readers {
        let out = reader.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A run turns on WAL mode: from then on a writer's lock does not stop a reader at all.
    s.run(&["run"]).ok();
    db.execute_batch("BEGIN EXCLUSIVE; UPDATE report SET attempts = attempts;")
        .unwrap();
    assert_eq!(history(&s).len(), 1);
    s.run(&["show", &id]).ok();
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_state_it_cannot_open_is_not_called_damaged() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    // Where SQLite must write its journal, something it cannot open (as a read-only mount
    // or another owner would leave it).
    let _ = fs::remove_file(s.path("state/state.db-wal"));
    fs::create_dir(s.path("state/state.db-wal")).unwrap();
    for args in [&["run"][..], &["preview"], &["history"]] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("run abuse-mailer as the user that owns"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("move it away"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(s.outbox().len(), 1, "nothing sent again");
}

/// A packet each from an address in no provider and one in AWS's ranges, logged at `time`.
fn two_addresses(time: &str) -> String {
    [
        drop_line(time, "81.2.69.143", "TCP", 80),
        drop_line(time, "3.5.140.2", "TCP", 22),
    ]
    .concat()
}

/// The folder's owner links another file in place of the space the state holds in reserve
/// (a service account's folder, a run as root, `fs.protected_hardlinks` off): the run wrote a
/// MiB of random bytes into that file, and handed it to the folder's owner. The name is let
/// go and the reserve made afresh; the other file is left as it was.
#[test]
fn a_file_linked_in_place_of_the_reserve_is_not_written() {
    use std::os::unix::fs::MetadataExt;
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let reserve = s.path("state/state.reserve");
    assert!(reserve.exists());
    let victim = s.path("victim");
    fs::write(&victim, "someone else's file\n").unwrap();
    fs::remove_file(&reserve).unwrap();
    fs::hard_link(&victim, &reserve).unwrap();
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "TCP", 22),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "someone else's file\n"
    );
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1);
    assert!(fs::metadata(&reserve).unwrap().len() > 0);
}

/// A FIFO made where the state keeps its reserve or its run lock (by the folder's owner, under
/// a run as root): the run waited in `open(2)` for a reader for ever, the lock held or not
/// yet taken, and every run after it waited behind it, unsaid. The reserve's is let go and
/// made afresh; the lock's stops the run (1) naming it, as `check` does.
#[test]
fn a_fifo_in_place_of_the_reserve_or_the_lock_holds_no_run() {
    let mkfifo = |path: &std::path::Path| {
        let made = std::process::Command::new("mkfifo").arg(path).status();
        made.unwrap().success()
    };
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let reserve = s.path("state/state.reserve");
    fs::remove_file(&reserve).unwrap();
    if !mkfifo(&reserve) {
        eprintln!("no mkfifo here");
        return;
    }
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "TCP", 22),
    );
    s.run_bounded(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    assert!(fs::symlink_metadata(&reserve).unwrap().is_file());

    let lock = s.path("state/run.lock");
    fs::remove_file(&lock).unwrap();
    assert!(mkfifo(&lock));
    s.append("messages", &drop_line("10:00:09", "3.5.140.9", "TCP", 22));
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("run.lock is not a regular file (a FIFO)"),
        "{}",
        out.stderr
    );
    let check = s.run_bounded(&["check"]);
    assert!(check.stdout.contains("(a FIFO)"), "{}", check.stdout);
    fs::remove_file(&lock).unwrap();
    s.run_bounded(&["run"]).ok();
    assert_eq!(s.outbox().len(), 3);
}

/// A state made while a migration had an earlier form carries the migration's number without
/// what was added to it later: schema 11 once made `evidence.dense` without its index, schema
/// 9 its tables without `lookup_failure`, schema 10 one index of two. After the upgrade every
/// run stopped on "no such index: evidence_dense", for good. The upgrade makes what is missing.
#[test]
fn a_state_made_by_an_earlier_form_of_a_migration_is_made_whole() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch(
        "DROP INDEX evidence_dense; DROP INDEX report_waiting; DROP TABLE lookup_failure;
         ALTER TABLE report DROP COLUMN unconfirmed; DROP TABLE report_preview;
         ALTER TABLE cursor DROP COLUMN born; DROP TABLE contact_recheck;
         DROP INDEX cursor_by_file; ALTER TABLE report DROP COLUMN deferred_since;
         ALTER TABLE cursor DROP COLUMN tail; ALTER TABLE report DROP COLUMN unclear_since; ALTER TABLE report DROP COLUMN handed;
         PRAGMA user_version = 11;",
    )
    .unwrap();
    drop(db);
    s.append(
        "messages",
        &drop_line("10:00:05", "34.223.47.190", "TCP", 22),
    );
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(s.outbox().len(), 2);
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    let made = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT count(*) FROM sqlite_master
             WHERE name IN ('evidence_dense', 'report_waiting', 'lookup_failure')",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(made(&db), 3);
    // Brought to the current schema by a build before the upgrade made what is missing:
    // `preview` reads it as it is, and the next run makes what is missing.
    db.execute_batch("DROP INDEX evidence_dense").unwrap();
    s.append(
        "messages",
        &drop_line("10:00:09", "18.206.107.24", "TCP", 22),
    );
    let preview = s.run(&["preview", "--json"]);
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview.stdout.contains("18.206.107.24"),
        "{}",
        preview.stdout
    );
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(s.outbox().len(), 3);
    assert_eq!(made(&db), 3);
}

/// Stored times past the calendar's ends, of addresses and of their kept lines, and a packet
/// count at its largest (a damaged state, or one written by hand) are written as they are, in
/// a zone west of UTC, not a panic: the address in no provider is listed
/// by `--json`, the one in a provider is reported, and both are shown.
#[test]
fn stored_times_past_the_calendars_ends_are_written_not_a_panic() {
    let config = standard_config("")
        .replace("timezone = \"UTC\"", "timezone = \"America/Los_Angeles\"")
        .replace("min_hits = 1", "min_hits = 2");
    let s = Setup::new(&config);
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 0, "below min_hits");
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    let changed = db
        .execute(
            "UPDATE observation SET first_seen = ?1, last_seen = ?2, hits = ?2",
            [i64::MIN, i64::MAX],
        )
        .unwrap();
    assert_eq!(changed, 2);
    let kept = db
        .execute(
            "UPDATE evidence SET time = CASE WHEN seq % 2 = 0 THEN ?1 ELSE ?2 END",
            [i64::MIN, i64::MAX],
        )
        .unwrap();
    assert!(kept > 0);
    drop(db);
    s.append("messages", &two_addresses("10:00:05"));
    let json = s.run(&["preview", "--json"]).ok();
    assert!(json.stdout.contains("\"81.2.69.143\""), "{}", json.stdout);
    let text = s.run(&["preview"]).ok();
    assert!(text.stdout.contains("3.5.140.2"), "{}", text.stdout);
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), [["3.5.140.2"]]);
    let ledger = history(&s);
    let id = ledger[0]["id"].as_str().unwrap();
    let shown = s.run(&["show", id]).ok();
    assert!(shown.stdout.contains("3.5.140.2"), "{}", shown.stdout);
    s.run(&["history"]).ok();
}

/// Counts at the ends of their range in a damaged state: a packet count stored as -1 (the
/// largest a record holds, as counts are written) and a report's tries past any number a run
/// keeps. The count stays the largest as packets are added to it, and the ledger is listed.
#[test]
fn stored_counts_at_the_ends_of_their_range_are_read_not_a_panic() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), [["3.5.140.2"]]);
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute("UPDATE observation SET hits = -1", []).unwrap();
    db.execute("UPDATE report SET attempts = ?1", [i64::MAX])
        .unwrap();
    drop(db);
    s.append("messages", &two_addresses("10:00:05"));
    let json = s.run(&["preview", "--json"]).ok();
    assert!(json.stdout.contains("\"81.2.69.143\""), "{}", json.stdout);
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)["81.2.69.143"], u64::MAX);
    let ledger = history(&s);
    assert_eq!(ledger.len(), 1);
    s.run(&["history"]).ok();
}

/// A stored value of the wrong type (a hand's `UPDATE`, a damaged row): the error says which
/// file is damaged, on one line, whichever command meets it.
#[test]
fn a_stored_value_of_the_wrong_type_names_the_state_file() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute("UPDATE observation SET hits = 'many'", [])
        .unwrap();
    drop(db);
    s.append("messages", &two_addresses("10:00:05"));
    for args in [&["preview"][..], &["run"]] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("state.db"), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

/// A state that cannot record a send (a damaged page under the ledger's index, here a trigger
/// refusing the write): the report went out once, the run ends 1, and later runs send it no
/// more while its outcome cannot be recorded, ending 1 naming the state; once the state can
/// record, the next run records it as sent and sends nothing again. Every run sent it anew.
#[test]
fn a_send_the_state_cannot_record_is_not_sent_again_on_every_run() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &attack_log());
    let first = s.run(&["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(server.received().len(), 1);
    // The next report's outcome cannot be written.
    a_later_attacker(&s);
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER damaged BEFORE UPDATE OF status ON report WHEN NEW.status = 'sent'
         BEGIN SELECT RAISE(ABORT, 'database disk image is malformed'); END;",
    )
    .unwrap();
    s.run(&["run"]).ended(1, &["recording that failed"]);
    assert_eq!(server.received().len(), 2);
    // `check` says the note is there (it said the state was ok).
    let checked = s.run(&["check"]);
    assert!(
        checked
            .stdout
            .lines()
            .any(|l| l.starts_with("warning state") && l.contains("unrecorded")),
        "{}",
        checked.stdout
    );
    for _ in 0..2 {
        s.run(&["run"])
            .ended(1, &["went out on an earlier run", "state.db"]);
        assert_eq!(server.received().len(), 2, "not sent again");
    }
    // Nor does `preview` list it as one to send again: it showed a message no run sends.
    let preview = s.run(&["preview"]).ok();
    assert!(!preview.stdout.contains("Message-ID"), "{}", preview.stdout);
    assert!(
        !preview.stderr.contains("wait to be sent again"),
        "{}",
        preview.stderr
    );
    let json = s.run(&["preview", "--json"]).ok();
    assert!(json.stdout.contains("\"reports\": []"), "{}", json.stdout);
    db.execute_batch("DROP TRIGGER damaged").unwrap();
    drop(db);
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 2, "not sent again once recorded");
    assert_all_sent_once(&s, &[&ATTACKERS[..], &[LATER]].concat());
    assert!(!s.path("state/unrecorded").exists());
    // Its log lines have served, as a report's recorded when it went out.
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    let kept: i64 = db
        .query_row(
            "SELECT count(*) FROM evidence WHERE ip = '18.206.107.24' AND dense = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 0);
    // A note that is no regular file (a FIFO) is refused at once, naming it: never waited on
    // with the run lock held.
    let made = Command::new("mkfifo")
        .arg(s.path("state/unrecorded"))
        .status()
        .unwrap();
    assert!(made.success());
    s.run_bounded(&["run"])
        .ended(1, &["unrecorded", "not a regular file"]);
    // Nor a link, followed by a run as root to whatever it names, and then removed.
    fs::remove_file(s.path("state/unrecorded")).unwrap();
    s.write("elsewhere", "secret\n");
    std::os::unix::fs::symlink(s.path("elsewhere"), s.path("state/unrecorded")).unwrap();
    let refused = s.run_bounded(&["run"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("(a link)"), "{}", refused.stderr);
    assert!(s.path("state/unrecorded").is_symlink(), "left as it is");
}

/// A file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) below what the state grows to: the
/// write past it raised a signal that killed the run unheard, halfway through the state (exit
/// 153, nothing said, on every run). The write fails instead: the run ends 1 on one line that
/// names `state.db` and the limit, and once the limit is gone every address goes once.
#[test]
fn a_file_size_limit_ends_the_run_with_a_line_not_a_signal() {
    use std::os::unix::process::CommandExt;
    let s = Setup::new(&standard_config(""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    let small = fs::metadata(state_db(&s)).unwrap().len() + (64 << 10);
    let many: Vec<String> = (0..5_000u32)
        .map(|i| format!("18.206.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let log: String = (many.iter())
        .map(|ip| drop_line("10:00:09", ip, "TCP", 22))
        .collect();
    s.append("messages", &log);
    let mut limited = s.command(&["run"]);
    // SAFETY: setrlimit is async-signal-safe, called between fork and exec.
    unsafe {
        limited.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: small,
                rlim_max: small,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let ran = Ran::from(limited.output().unwrap());
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("state.db") && ran.stderr.contains(&format!("at most {small} bytes")),
        "{}",
        ran.stderr
    );
    s.run(&["run"]).ok();
    let all: Vec<&str> = (ATTACKERS.iter().copied())
        .chain(many.iter().map(String::as_str))
        .collect();
    assert_all_sent_once(&s, &all);
}

/// A note that a waiting report was refused for good (550) and the state could not record it:
/// the run records it, and its addresses, given back, go in a new report. `preview` left the
/// report out but still held its addresses as reported, and showed nothing to send.
#[test]
fn a_report_noted_as_refused_frees_its_addresses_in_preview_as_in_the_run() {
    let server = smtp::start(Security::Plain, None, 0);
    *server.rcpt.lock().unwrap() = Some((451, "4.3.0 later".into()));
    let s = Setup::new(&smtp_config(server.port, ""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ended(75, &["later"]);
    let waiting = history(&s);
    let id = waiting[0]["id"].as_str().unwrap().to_string();
    s.write(
        "state/unrecorded",
        &format!("{id}\trejected\t2026-01-26T08:00:00+00:00\t\t550 5.1.1 no such mailbox\n"),
    );
    *server.rcpt.lock().unwrap() = None;
    let preview = s.run(&["preview", "--json"]).ok().json();
    let shown = preview["reports"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{preview}");
    assert_eq!(shown[0]["ips"][0]["ip"], "3.5.140.2", "{preview}");
    s.run(&["run"]).ok();
    assert_eq!(
        server.received().len(),
        1,
        "the new report, as preview showed"
    );
    let ledger = history(&s);
    assert!(
        ledger
            .iter()
            .any(|r| r["id"] == id.as_str() && r["status"] == "rejected")
    );
}

/// A waiting report whose id is a path (`../x`: a damaged or hand-edited row) is refused,
/// naming `state.db` and the id, before anything is written: the file transport wrote it to
/// `mail.dir/../x.eml`, outside the folder, as the run's user (often root).
#[test]
fn a_report_id_that_is_a_path_writes_nothing_outside_the_folder() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch(
        "PRAGMA foreign_keys = OFF;
         UPDATE report SET id = '../outside', status = 'failed';
         UPDATE report_ip SET report_id = '../outside';",
    )
    .unwrap();
    drop(db);
    for args in [&["run"][..], &["history"], &["preview"]] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("state.db") && out.stderr.contains("../outside"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    assert!(!s.path("outside.eml").exists());
}

/// The ledger that cannot be read (a stored id that is not UTF-8, or a page of its index
/// zeroed by a bad block), met by `preview` and `run` while they read the log: the error
/// names `state.db` (it named no file: the reading threads kept it as text), and `check`
/// says the damaged page.
#[test]
fn a_ledger_that_cannot_be_read_is_named_as_the_states() {
    use std::io::{Seek, SeekFrom};
    type Damage = fn(&Path);
    let not_utf8: Damage = |db| {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute("UPDATE report SET message_id = CAST(x'41ff42' AS TEXT)", [])
            .unwrap();
    };
    let zeroed_index: Damage = |db| {
        let c = rusqlite::Connection::open(db).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let (root, size): (i64, i64) = c
            .query_row(
                "SELECT rootpage, (SELECT page_size FROM pragma_page_size())
                 FROM sqlite_master WHERE name = 'report_ip_by_ip'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        drop(c);
        let mut f = fs::OpenOptions::new().write(true).open(db).unwrap();
        f.seek(SeekFrom::Start(((root - 1) * size) as u64)).unwrap();
        f.write_all(&vec![0u8; size as usize]).unwrap();
    };
    for (what, damage) in [
        ("not UTF-8", not_utf8),
        ("a zeroed index page", zeroed_index),
    ] {
        let s = Setup::new(&standard_config(""));
        s.write("messages", &two_addresses("10:00:00"));
        s.run(&["run"]).ok();
        damage(&state_db(&s));
        s.append("messages", &two_addresses("10:00:05"));
        for args in [&["preview"][..], &["run"]] {
            let out = s.run(args);
            assert_eq!(out.code, 1, "{what} {args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains("state.db"),
                "{what} {args:?}: {}",
                out.stderr
            );
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        }
        assert_eq!(s.outbox().len(), 1, "{what}: nothing more sent");
        // `check` reads the whole file: a damaged page is said (it said the state was ok).
        if what == "a zeroed index page" {
            let checked = s.run(&["check"]);
            assert_eq!(checked.code, 1, "{}", checked.stdout);
            let line = (checked.stdout.lines())
                .find(|l| l.starts_with("error") && l.contains("state"))
                .unwrap_or_else(|| panic!("{}", checked.stdout));
            assert!(line.contains("state.db: damaged"), "{line}");
        }
    }
}

/// A report's recipients that are not JSON (a hand's `UPDATE`, as README invites for
/// `status`): `history` said only "ledger: bad recipients". It names the file and the
/// report. A schema number below 0 was taken for an old state, and a run stamped it current
/// without a migration: it is refused, naming the file, and left as it is.
#[test]
fn a_damaged_ledger_row_or_schema_number_is_named() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &two_addresses("10:00:00"));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute("UPDATE report SET recipients = 'abuse@x'", [])
        .unwrap();
    let id: String = db
        .query_row("SELECT id FROM report", [], |r| r.get(0))
        .unwrap();
    drop(db);
    for args in [&["history"][..], &["history", "--json"]] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("state.db") && out.stderr.contains(&id),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    db.execute_batch("PRAGMA user_version = -1").unwrap();
    drop(db);
    let out = s.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("schema -1"), "{}", out.stderr);
    let db = rusqlite::Connection::open(state_db(&s)).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, -1, "left as it is");
    // A number below the tables (0 or 1, the tables current): the migration meets what it
    // makes; said as damage with the way out, not "run once to upgrade it" again and again.
    for number in [0, 1] {
        db.execute_batch(&format!("PRAGMA user_version = {number}"))
            .unwrap();
        let out = s
            .run(&["run"])
            .ended(1, &["is below its tables'", "restore it from a backup"]);
        // Said in a line, not with the migration's SQL.
        assert!(out.stderr.len() < 600, "{}", out.stderr);
        assert!(!out.stderr.contains("CREATE"), "{}", out.stderr);
        // `history` says it alike, not "run once to upgrade it", which loops.
        s.run(&["history"]).ended(1, &["is below its tables'"]);
    }
}

/// An older copy of the state put back (a backup restored, `state.db` replaced), or the state
/// removed, where the runs had made reports: a run, its preview and `check` refuse it (78),
/// naming `reports.mark`, and nothing is sent. Every address reported since the copy was
/// taken went to its desk again, with nothing said. Once the mark is removed, as the message
/// says, the run goes on with that state.
#[test]
fn an_older_state_put_back_is_refused_not_reported_from_again() {
    let mut s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let backup = s.path("state.db.backup");
    fs::copy(s.path("state/state.db"), &backup).unwrap();
    s.now = "2026-01-26T09:00:00Z".to_string();
    s.append(
        "messages",
        &drop_line("10:00:01", "34.223.47.190", "UDP", 53),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
    fs::copy(&backup, s.path("state/state.db")).unwrap();
    s.now = "2026-01-26T10:00:00Z".to_string();
    for args in [&["run"][..], &["preview"], &["check"]] {
        let out = s.run(args);
        assert_eq!(out.code, 78, "{args:?}: {}{}", out.stdout, out.stderr);
        let said = out.stdout + &out.stderr;
        assert!(
            said.contains("goes as far as report 1, while the runs here made 2")
                && said.contains("reports.mark"),
            "{args:?}: {said}"
        );
    }
    assert_eq!(s.outbox().len(), 2, "nothing sent again");
    // Removed: refused as well.
    fs::remove_file(s.path("state/state.db")).unwrap();
    let out = s.run(&["preview"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("has no report"), "{}", out.stderr);
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert_eq!(s.outbox().len(), 2, "nothing sent again");
    assert!(!s.path("state/state.db").exists(), "none made in its place");
    // The operator's choice, as the message says: on with the state there.
    fs::remove_file(s.path("state/reports.mark")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string(), "34.223.47.190".to_string()]],
        "both reported again, as chosen"
    );
    assert_eq!(s.outbox().len(), 3);
    assert!(s.run(&["check"]).code == 0);
}
