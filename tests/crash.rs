//! Runs killed (`kill -9`: the OOM killer, a reboot, systemd's stop past its timeout) at points
//! of the SMTP dialogue the test server controls, then run again: what the server holds across
//! runs, and the ledger, must keep the promises (nothing lost, nothing sent twice but the one
//! message the server accepted just before the run died, and that one alike to the byte).

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use common::smtp::{self, Delivery, MailServer, Security};
use common::*;
use mail_parser::MessageParser;

fn smtp_config(port: u16, extra_report: &str, extra_mail: &str) -> String {
    standard_config(extra_report).replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_secs = 5\n{extra_mail}"
        ),
    )
}

const ATTACKERS: [&str; 3] = ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"];

fn attack_log() -> String {
    [
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        drop_line("10:00:02", "2600:1f18:4a3:6901::1", "TCP", 443),
    ]
    .concat()
}

/// The process the server's hook kills: set once the run is started, taken by the first
/// acceptance after that.
#[derive(Clone, Default)]
struct Victim(Arc<AtomicI32>);

impl Victim {
    /// Kills the run (SIGKILL, as the OOM killer does) when the server has accepted a message
    /// and before the run hears so.
    fn arm(server: &MailServer) -> Self {
        let victim = Victim::default();
        let pid = victim.0.clone();
        *server.on_accept.lock().unwrap() = Some(Box::new(move |_: &Delivery| {
            let pid = pid.swap(0, Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }));
        victim
    }

    /// Runs `run` on `s`, killed at the first acceptance; asserts that it was.
    fn run_killed(&self, s: &Setup) {
        let mut child = s
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.0.store(child.id() as i32, Ordering::SeqCst);
        let status = child.wait().unwrap();
        self.0.store(0, Ordering::SeqCst);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the run ended before the server accepted anything: {status}"
        );
    }
}

fn message_id(data: &[u8]) -> String {
    MessageParser::default()
        .parse(data)
        .unwrap()
        .message_id()
        .unwrap()
        .to_string()
}

/// The messages the server accepted, by Message-ID, in the order first seen.
fn by_message_id(server: &MailServer) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for d in server.received() {
        out.entry(message_id(&d.data)).or_default().push(d.data);
    }
    out
}

/// Every address in exactly one report, every report sent.
fn assert_all_sent_once(s: &Setup, ips: &[&str]) {
    let mut seen = Vec::new();
    for r in history(s) {
        assert_eq!(r["status"], "sent", "{r}");
        seen.extend(string_list(&r["ips"]));
    }
    seen.sort();
    let mut want: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}

/// A run killed once the server accepted the message, and the next run an hour or more later
/// (the next tick of an hourly timer): the server gets the same message again, as the ledger
/// allows, and it must be the same to the byte, Date included, so that the desk's mail system
/// sees one message twice and `show` gives what went out. The killed run's attempt never
/// reached the ledger, and the next run took the report for one never tried, giving it the
/// Date of the hour it went out again.
#[test]
fn a_report_resent_after_a_kill_at_acceptance_is_alike_to_the_byte_hours_later() {
    let server = smtp::start(Security::Plain, None, 0);
    let mut s = Setup::new(&smtp_config(server.port, "", ""));
    s.write("messages", &attack_log());
    let victim = Victim::arm(&server);
    s.now = "2026-01-26T08:00:00Z".into();
    victim.run_killed(&s);
    s.now = "2026-01-26T11:00:00Z".into();
    s.run(&["run"]).ok();
    s.now = "2026-01-26T14:00:00Z".into();
    s.run(&["run"]).ok();

    let got = by_message_id(&server);
    assert_eq!(got.len(), 1, "one report: {:?}", got.keys());
    let copies = got.values().next().unwrap();
    assert_eq!(copies.len(), 2, "accepted, killed, sent again once");
    assert!(
        copies[0] == copies[1],
        "the copy sent again differs from the one accepted:\n{}\n---\n{}",
        String::from_utf8_lossy(&copies[0]),
        String::from_utf8_lossy(&copies[1])
    );
    assert_all_sent_once(&s, &ATTACKERS);
    let id = history(&s)[0]["id"].as_str().unwrap().to_string();
    let shown = s.run(&["show", &id]).ok();
    assert!(
        copies[1] == shown.raw_stdout,
        "`show` gives the bytes that went out"
    );
}

/// The same for a part that waited runs for its turn (`max_messages_per_run`): it gets the
/// Date of the run it first goes out in, and keeps it when that run is killed once the
/// server has it.
#[test]
fn a_part_that_waited_and_was_killed_at_acceptance_goes_again_alike_to_the_byte() {
    let server = smtp::start(Security::Plain, None, 0);
    let mut s = Setup::new(&smtp_config(
        server.port,
        "max_ips_per_message = 1",
        "max_messages_per_run = 1",
    ));
    s.write("messages", &attack_log());
    s.now = "2026-01-26T08:00:00Z".into();
    s.run(&["run"]).ok();
    let victim = Victim::arm(&server);
    s.now = "2026-01-26T10:00:00Z".into();
    victim.run_killed(&s);
    for hour in [12, 14, 16, 18] {
        s.now = format!("2026-01-26T{hour}:00:00Z");
        s.run(&["run"]).ok();
    }

    let got = by_message_id(&server);
    assert_eq!(got.len(), 3, "three parts: {:?}", got.keys());
    let twice: Vec<&Vec<Vec<u8>>> = got.values().filter(|c| c.len() > 1).collect();
    assert_eq!(twice.len(), 1, "only the part the kill caught goes twice");
    assert_eq!(twice[0].len(), 2);
    assert!(
        twice[0][0] == twice[0][1],
        "the copy sent again differs from the one accepted:\n{}\n---\n{}",
        String::from_utf8_lossy(&twice[0][0]),
        String::from_utf8_lossy(&twice[0][1])
    );
    assert_all_sent_once(&s, &ATTACKERS);
}

/// A file created on an inode number freed a moment before (ext4 hands it out again), or, if
/// the file system does not, `None`.
fn on_inode(dir: &std::path::Path, ino: u64) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut made = Vec::new();
    let mut found = None;
    for i in 0..200 {
        let path = dir.join(format!(".candidate-{i}"));
        std::fs::write(&path, "").unwrap();
        if std::fs::metadata(&path).unwrap().ino() == ino {
            found = Some(path);
            break;
        }
        made.push(path);
    }
    for p in made {
        std::fs::remove_file(p).unwrap();
    }
    found
}

/// A run finds the log holding only the start of its first line (the daemon writes a line in
/// two pieces); logrotate then renames and compresses it, and the daemon's new log gets the
/// freed inode number and begins with the same bytes (the same hour's timestamp). The cursor
/// knew the old file by those few bytes only: the new file was taken for it, read on from
/// where nothing had been read, and the old file's lines, now in the `.gz`, were never read.
#[test]
fn a_half_written_first_line_then_its_inode_reused_by_the_next_log_loses_no_line() {
    use std::os::unix::fs::MetadataExt;
    let s = Setup::standard();
    let first = drop_line("10:00:01", "34.208.0.1", "TCP", 22);
    s.write("messages", &first[..12]);
    let ino = std::fs::metadata(s.path("messages")).unwrap().ino();
    s.run(&["run"]).ok();
    s.append("messages", &first[12..]);
    s.append("messages", &drop_line("10:00:02", "34.208.0.2", "TCP", 22));
    // logrotate: rename, then gzip the renamed file, which removes it.
    std::fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &std::fs::read(s.path("messages.1")).unwrap()).unwrap();
    std::fs::write(s.path("messages.1.gz"), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(s.path("messages.1")).unwrap();
    let Some(reused) = on_inode(s.dir.path(), ino) else {
        eprintln!("this file system does not hand out a freed inode number again: skipped");
        return;
    };
    std::fs::write(&reused, drop_line("10:00:03", "34.208.0.3", "TCP", 22)).unwrap();
    std::fs::rename(&reused, s.path("messages")).unwrap();
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let want: BTreeMap<String, u64> = ["34.208.0.1", "34.208.0.2", "34.208.0.3"]
        .iter()
        .map(|ip| (ip.to_string(), 1))
        .collect();
    assert_eq!(observed_hits(&s), want);
}

/// A report split into parts that take several runs (`max_messages_per_run`), with the runs
/// killed, one after another, at the first, then the second message the server accepts, and
/// more lines logged between them: once runs end by themselves, every address went out in
/// exactly one part, every line counted once, and only the messages a kill caught reached
/// the server twice, each copy alike to the byte.
#[test]
fn runs_killed_at_each_acceptance_in_turn_send_every_part_once_and_lose_nothing() {
    use std::sync::atomic::AtomicUsize;
    let server = smtp::start(Security::Plain, None, 0);
    let mut s = Setup::new(&smtp_config(
        server.port,
        "max_ips_per_message = 2",
        "max_messages_per_run = 2",
    ));
    // Kills at the n-th acceptance of a run (0: none).
    let pid = Arc::new(AtomicI32::new(0));
    let nth = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    // The Message-ID of each message a kill caught.
    let caught = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (pid, nth, seen, caught) = (pid.clone(), nth.clone(), seen.clone(), caught.clone());
        *server.on_accept.lock().unwrap() = Some(Box::new(move |d: &Delivery| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if n == nth.load(Ordering::SeqCst) {
                let p = pid.swap(0, Ordering::SeqCst);
                if p > 0 {
                    caught.lock().unwrap().push(message_id(&d.data));
                    // SAFETY: kill(2) on the pid of a child this test spawned, not reaped yet.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
        }));
    }
    let mut lines = 0;
    let mut log = |s: &Setup, from: u32, to: u32| {
        for i in from..to {
            s.append(
                "messages",
                &drop_line(
                    &format!("10:{:02}:00", i),
                    &format!("34.208.1.{i}"),
                    "TCP",
                    22,
                ),
            );
            lines += 1;
        }
    };
    log(&s, 1, 8);
    let mut killed_hours = Vec::new();
    for (hour, kill_at) in [(8, 1), (9, 2), (10, 1), (11, 2)] {
        s.now = format!("2026-01-26T{hour:02}:00:00Z");
        seen.store(0, Ordering::SeqCst);
        nth.store(kill_at, Ordering::SeqCst);
        let mut child = s
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        pid.store(child.id() as i32, Ordering::SeqCst);
        let status = child.wait().unwrap();
        pid.store(0, Ordering::SeqCst);
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(libc::SIGKILL) {
            killed_hours.push(hour);
        }
        log(&s, 8 + 2 * (hour - 8), 10 + 2 * (hour - 8));
    }
    assert!(killed_hours.len() >= 3, "killed at {killed_hours:?}");
    nth.store(0, Ordering::SeqCst);
    for hour in 12..20 {
        s.now = format!("2026-01-26T{hour:02}:00:00Z");
        s.run(&["run"]).ok();
    }

    let ips: Vec<String> = (1..16).map(|i| format!("34.208.1.{i}")).collect();
    let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    assert_all_sent_once(&s, &ip_refs);
    let hits = observed_hits(&s);
    assert_eq!(hits.values().sum::<u64>(), lines);
    assert!(hits.values().all(|&h| h == 1), "{hits:?}");
    let got = by_message_id(&server);
    assert_eq!(
        got.len(),
        history(&s).len(),
        "every part reached the server"
    );
    // A message goes again once for each kill that caught it just after the server took it
    // (a message caught twice, in two runs, reaches the server three times), alike each time.
    let caught = caught.lock().unwrap().clone();
    assert_eq!(caught.len(), killed_hours.len());
    for (id, copies) in &got {
        let kills = caught.iter().filter(|c| *c == id).count();
        assert_eq!(copies.len(), 1 + kills, "{id}: caught by {kills} kill(s)");
        assert!(
            copies.iter().all(|c| *c == copies[0]),
            "{id}: a copy sent again differs"
        );
    }
}

/// Rotated files from before the first run are read by it; the log beside them holds only the
/// start of its first line then. Once that line is finished and more is written, the cursor
/// (which knew the log by that start only) reads the log from its start, and the rotated
/// files it listed are not read a second time: each packet counts once.
#[test]
fn a_half_written_first_line_beside_rotated_files_read_before_counts_each_packet_once() {
    let s = Setup::standard();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        drop_line("09:00:00", "34.208.0.11", "TCP", 22).as_bytes(),
    )
    .unwrap();
    std::fs::write(s.path("messages.2.gz"), gz.finish().unwrap()).unwrap();
    s.write(
        "messages.1",
        &drop_line("09:30:00", "34.208.0.10", "TCP", 22),
    );
    let first = drop_line("10:00:01", "34.208.0.1", "TCP", 22);
    s.write("messages", &first[..12]);
    s.run(&["run"]).ok();
    s.append("messages", &first[12..]);
    s.append("messages", &drop_line("10:00:02", "34.208.0.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.append("messages", &drop_line("10:00:03", "34.208.0.3", "TCP", 22));
    s.run(&["run"]).ok();
    // logrotate renames the finished log; the daemon starts a new one.
    std::fs::rename(s.path("messages"), s.path("messages.0")).unwrap();
    s.write("messages", &drop_line("10:00:04", "34.208.0.4", "TCP", 22));
    s.run(&["run"]).ok();
    let want: BTreeMap<String, u64> = [
        "34.208.0.1",
        "34.208.0.2",
        "34.208.0.3",
        "34.208.0.4",
        "34.208.0.10",
        "34.208.0.11",
    ]
    .iter()
    .map(|ip| (ip.to_string(), 1))
    .collect();
    assert_eq!(observed_hits(&s), want);
}

/// Parts wait when the provider's desk moves: the run withdraws them and is killed once the
/// server has accepted the first report that replaces them. The run after it withdraws
/// nothing more and sends that report again as it was (the one copy the kill allows); every
/// address reaches the new desk, none the old one twice.
#[test]
fn a_run_killed_after_it_withdrew_parts_is_safe_to_repeat() {
    let server = smtp::start(Security::Plain, None, 0);
    let mut s = Setup::new(&smtp_config(
        server.port,
        "max_ips_per_message = 1",
        "max_messages_per_run = 1",
    ));
    s.write("messages", &attack_log());
    s.now = "2026-01-26T08:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 1, "one part went, two wait");
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    assert!(config.contains("ec2-abuse@amazon.com"), "{config}");
    std::fs::write(
        s.path("config.toml"),
        config
            .replace("ec2-abuse@amazon.com", "abuse@cloud.example")
            .replace("max_messages_per_run = 1", "max_messages_per_run = 10"),
    )
    .unwrap();
    let victim = Victim::arm(&server);
    s.now = "2026-01-26T10:00:00Z".into();
    victim.run_killed(&s);
    for hour in [12, 14] {
        s.now = format!("2026-01-26T{hour}:00:00Z");
        s.run(&["run"]).ok();
    }

    let got = by_message_id(&server);
    assert_eq!(
        got.len(),
        3,
        "one part to the old desk, two new: {:?}",
        got.keys()
    );
    let twice: Vec<&Vec<Vec<u8>>> = got.values().filter(|c| c.len() > 1).collect();
    assert_eq!(twice.len(), 1, "only the report the kill caught goes twice");
    assert!(twice[0][0] == twice[0][1], "sent again alike to the byte");
    let mut sent = Vec::new();
    let mut withdrawn = 0;
    for r in history(&s) {
        match r["status"].as_str() {
            Some("sent") => sent.extend(string_list(&r["ips"])),
            Some("rejected") => withdrawn += 1,
            other => panic!("left {other:?}: {r}"),
        }
    }
    sent.sort();
    let mut want: Vec<String> = ATTACKERS.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(sent, want, "every address in one sent report");
    assert_eq!(withdrawn, 2);
    let to_new = (server.received().iter())
        .filter(|d| d.to.iter().any(|t| t.contains("abuse@cloud.example")))
        .count();
    assert_eq!(to_new, 3, "two reports to the new desk, one of them twice");
}
