//! What the log sources do to a run, and the operator mistakes that used to lose history: a
//! rotated `.gz` that breaks off, a source that is a FIFO or a device, a prefix that matches
//! nothing, and `reread` to read a source again. Each case runs the binary end to end and
//! checks exact counts in the state database.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};

use common::*;

const A: &str = "3.5.140.2";
const B: &str = "18.206.107.24";
const C: &str = "34.223.47.190";
const D: &str = "2600:1f18:4a3:6901::1";

/// `n` drop lines from `ip`, a second apart from `at` (seconds after midnight), on `day`.
fn lines(day: &str, at: u32, ip: &str, n: u32) -> String {
    (0..n)
        .map(|i| {
            let t = at + i;
            drop_line(
                &format!("{:02}:{:02}:{:02}", t / 3600 % 24, t / 60 % 60, t % 60),
                ip,
                "TCP",
                22,
            )
            .replace("Jan 25 ", &format!("{day} "))
        })
        .collect()
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text).unwrap();
    enc.finish().unwrap()
}

fn hits(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(ip, n)| (ip.to_string(), *n)).collect()
}

/// What a rotated `.gz` held past its damage is lost for good, and said once: under `-q`
/// too, as cron runs it (a loss said only without `-q` reached nobody).
#[test]
fn a_damaged_rotated_gz_is_said_under_q() {
    use std::io::Write as _;
    let s = Setup::standard();
    let first = lines("Jan 25", 0, A, 1);
    let body = lines("Jan 25", 10, B, 400);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((first.clone() + &body).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    s.write("messages", &first);
    s.run(&["run"]).ok();
    s.append("messages", &body);
    fs::remove_file(s.path("messages")).unwrap();
    fs::write(s.path("messages.1.gz"), &gz[..gz.len() / 2]).unwrap();
    s.write("messages", &lines("Jan 25", 900, C, 1));
    let out = s.run(&["-q", "run"]).ok();
    assert_eq!(
        out.stderr.matches("is damaged").count(),
        1,
        "{}",
        out.stderr
    );
    let again = s.run(&["-q", "run"]).ok();
    assert!(again.stderr.is_empty(), "{}", again.stderr);
}

#[test]
fn truncated_rotated_gz_is_read_up_to_the_damage_and_named_once() {
    let config = standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/logs/messages\"\n\n[[source]]\npath = \"{dir}/other/messages\"",
    );
    let s = Setup::new(&config);
    fs::create_dir(s.path("logs")).unwrap();
    fs::create_dir(s.path("other")).unwrap();
    let first = lines("Jan 25", 0, A, 5);
    s.write("logs/messages", &first);
    s.write("other/messages", &lines("Jan 25", 100, C, 3));
    s.run(&["run"]).ok();

    // Written after that run, then rotated, compressed, and the copy broke off.
    let mut full = first.clone();
    for i in 0..1000 {
        full.push_str(&lines("Jan 25", 200 + i, if i % 2 == 0 { B } else { A }, 1));
    }
    let gz = gzip(full.as_bytes());
    let cut = &gz[..gz.len() * 6 / 10];
    let mut readable = Vec::new();
    let _ = flate2::read::MultiGzDecoder::new(cut).read_to_end(&mut readable);
    let readable = String::from_utf8(readable).unwrap();
    let whole: Vec<&str> = readable
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(whole.len() > 100 && whole.len() < 900, "{}", whole.len());
    let (mut a, mut b) = (5, 0);
    for line in &whole[5..] {
        if line.contains(&format!("SRC={A} ")) {
            a += 1;
        } else {
            b += 1;
        }
    }
    fs::rename(s.path("logs/messages"), s.path("logs/old")).unwrap();
    fs::write(s.path("logs/messages.1.gz"), cut).unwrap();
    s.write("logs/messages", &lines("Jan 25", 2000, D, 4));
    fs::remove_file(s.path("logs/old")).unwrap();
    s.append("other/messages", &lines("Jan 25", 3000, C, 2));

    let out = s.run(&["run"]).ok();
    assert_eq!(
        out.stderr.matches("is damaged").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "source {}: rotated file {} is damaged",
            s.path("logs/messages").display(),
            s.path("logs/messages.1.gz").display()
        )),
        "{}",
        out.stderr
    );
    let read = whole.len() - 5 + 4 + 2;
    assert!(
        out.stderr.contains(&format!("read {read} lines")),
        "{}",
        out.stderr
    );
    assert_eq!(observed_hits(&s), hits(&[(A, a), (B, b), (C, 5), (D, 4)]));

    // Not read again, not named again.
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("damaged"), "{}", out.stderr);
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, a), (B, b), (C, 5), (D, 4)]));
}

#[test]
fn truncated_gz_in_the_first_read_of_history_is_skipped_once() {
    let s = Setup::standard();
    let gz = gzip(lines("Jan 24", 0, A, 400).as_bytes());
    fs::write(s.path("messages.2.gz"), &gz[..gz.len() / 2]).unwrap();
    s.write("messages.1", &lines("Jan 25", 0, B, 3));
    s.write("messages", &lines("Jan 25", 100, C, 2));
    let mut readable = Vec::new();
    let _ = flate2::read::MultiGzDecoder::new(&gz[..gz.len() / 2]).read_to_end(&mut readable);
    let a = readable.iter().filter(|b| **b == b'\n').count() as u64;
    let out = s.run(&["run"]).ok();
    assert_eq!(
        out.stderr.matches("is damaged").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(observed_hits(&s), hits(&[(A, a), (B, 3), (C, 2)]));
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("damaged"), "{}", out.stderr);
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
}

/// A rotated file whose gzip member fails its checksum (a bit flipped on disk) is trusted
/// with none of that member's text: the flip may have made another address of a line, and
/// a report about a host that sent nothing would go to a stranger. A member before it that
/// checks out is read; the damage is said once.
#[test]
fn a_gzip_member_that_fails_its_checksum_gives_no_line() {
    let s = Setup::standard();
    let stored = |text: &str| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    // Stored, not deflated: the text is in the file as it is, and one address is changed
    // to another of the same length there, as a flipped bit could.
    let mut damaged = stored(&lines("Jan 24", 100, B, 3));
    let at = (damaged.windows(B.len()))
        .position(|w| w == B.as_bytes())
        .unwrap();
    damaged[at..at + B.len()].copy_from_slice(b"18.206.107.25");
    let mut file = gzip(lines("Jan 24", 0, A, 2).as_bytes());
    file.extend_from_slice(&damaged);
    fs::write(s.path("messages.1.gz"), &file).unwrap();
    s.write("messages", &lines("Jan 25", 100, C, 2));
    let out = s.run(&["run"]).ok();
    assert_eq!(
        out.stderr.matches("is damaged").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("checksum"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, 2), (C, 2)]));
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("damaged"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, 2), (C, 2)]));
}

/// The log read to its end, then rotated and compressed with its checksum damaged, and no
/// new log yet (logrotate's `nocreate`, a quiet host): the cursor is at the damaged member's
/// end, where nothing is left to read. No run goes back before it, and none says the damage
/// again and again.
#[test]
fn a_damaged_gzip_read_before_it_was_compressed_is_not_said_on_every_run() {
    let s = Setup::standard();
    s.write("messages", &lines("Jan 25", 0, A, 2));
    s.run(&["run"]).ok();
    let mut gz = gzip(lines("Jan 25", 0, A, 2).as_bytes());
    let crc = gz.len() - 8;
    gz[crc] ^= 1;
    fs::write(s.path("messages.1.gz"), &gz).unwrap();
    fs::remove_file(s.path("messages")).unwrap();
    for _ in 0..3 {
        let out = s.run(&["run"]).ok();
        assert!(!out.stderr.contains("damaged"), "{}", out.stderr);
        assert_eq!(observed_hits(&s), hits(&[(A, 2)]));
    }
}

fn fifo_or_device_is_refused(path: &str, kind: &str) {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", path));
    let shown = path.replace("{dir}", s.dir.path().to_str().unwrap());
    if path.contains("{dir}") {
        let made = std::process::Command::new("mkfifo")
            .arg(&shown)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let check = s.run_bounded(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains(&format!("{shown}: not a regular file ({kind})")),
        "{}",
        check.stdout
    );
    // The path is named once (it was twice: the source, then the file it is).
    assert!(
        !check.stdout.contains(&format!("{shown}: {shown}")),
        "{}",
        check.stdout
    );
    for command in ["run", "preview"] {
        let out = s.run_bounded(&[command]);
        assert_eq!(out.code, 78, "{command}: {}", out.stderr);
        assert_eq!(
            out.stderr,
            format!("abuse-mailer: source {shown}: not a regular file ({kind})\n")
        );
    }
}

#[test]
fn fifo_source_is_refused_without_blocking() {
    fifo_or_device_is_refused("{dir}/fifo", "a FIFO");
}

#[test]
fn dev_zero_source_is_refused_without_reading() {
    fifo_or_device_is_refused("/dev/zero", "a character device");
}

#[test]
fn check_warns_when_no_line_carries_a_prefix() {
    let s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/messages\"\nprefixes = [\"UFW BLOCK:\"]",
    ));
    s.write("messages", &lines("Jan 25", 0, A, 3));
    let out = s.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "warning source     {}: none of the last 3 lines carries \"UFW BLOCK:\"",
            s.path("messages").display()
        )),
        "{}",
        out.stdout
    );
    s.write("messages", "");
    let out = s.run(&["check"]).ok();
    assert!(out.stdout.contains("empty so far"), "{}", out.stdout);
}

/// A log host's file that runs read, replaced by something else (a FIFO, a folder, a link
/// that loops): passed over with a warning on every run, `-q` too, the other hosts read on;
/// `check` fails (1) naming it. It stopped every run (78), every host's lines with it, while
/// `check` said all was well.
#[test]
fn a_glob_file_that_is_no_file_now_is_passed_over_and_said() {
    for kind in ["fifo", "folder", "loop"] {
        let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/remote/*.log"));
        fs::create_dir(s.path("remote")).unwrap();
        s.write("remote/a.log", &lines("Jan 25", 0, A, 1));
        s.write("remote/b.log", &lines("Jan 25", 10, B, 1));
        s.run(&["run"]).ok();
        let b = s.path("remote/b.log");
        fs::remove_file(&b).unwrap();
        match kind {
            "fifo" => assert!(
                std::process::Command::new("mkfifo")
                    .arg(&b)
                    .status()
                    .unwrap()
                    .success()
            ),
            "folder" => fs::create_dir(&b).unwrap(),
            _ => std::os::unix::fs::symlink("b.log", &b).unwrap(),
        }
        s.append("remote/a.log", &lines("Jan 25", 20, C, 1));
        let out = s.run(&["-q", "run"]).ok();
        assert!(
            out.stderr.contains(&format!("source {}: ", b.display()))
                && out
                    .stderr
                    .contains("passed over, where the runs had read it kept"),
            "{kind}: {}",
            out.stderr
        );
        assert_eq!(observed_hits(&s), hits(&[(A, 1), (B, 1), (C, 1)]), "{kind}");
        let check = s.run(&["check"]);
        assert_eq!(check.code, 1, "{kind}: {}", check.stdout);
        assert!(
            check.stdout.contains("runs pass it over"),
            "{kind}: {}",
            check.stdout
        );
    }
}

/// Just after a rotation the new file holds rsyslog's restart line alone: `check` looks at
/// the newest rotated file before it warns (it failed, 1, on every host right after each
/// rotation, a health probe's false alarm). With no packet there either, it warns as before.
#[test]
fn check_just_after_a_rotation_looks_at_the_rotated_file() {
    let s = Setup::standard();
    s.write("messages.1", &lines("Jan 25", 0, A, 3));
    let restart =
        "Jan 25 06:25:01 web1 rsyslogd: [origin software=\"rsyslogd\"] rsyslogd was HUPed\n";
    s.write("messages", restart);
    let out = s.run(&["check"]).ok();
    assert!(
        out.stdout.contains(&format!(
            "ok      source     {}: none of its 1 lines so far carries INPUT-DROP:; its rotated file {} has 3 of 3 lines looked at that do, 3 of them packets",
            s.path("messages").display(),
            s.path("messages.1").display()
        )),
        "{}",
        out.stdout
    );
    s.write("messages.1", restart);
    let out = s.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("none of the last 1 lines carries"),
        "{}",
        out.stdout
    );
}

/// Lines that carry the prefix but are no packet are counted as malformed by a run, which
/// says how many, never which: `check` shows the first of them and why, cleaned of what a
/// terminal would act on, without failing (some such lines are normal in a real log).
#[test]
fn check_shows_the_first_line_that_carries_a_prefix_and_is_no_packet() {
    let s = Setup::new(&standard_config(""));
    let bad = drop_line("10:00:05", A, "TCP", 22)
        .replace("Jan 25", "Jan  5")
        .replace("web1", "<b>web\u{1b}[31m1</b>");
    s.write(
        "messages",
        &(lines("Jan 25", 0, A, 2)
            + &bad
            + &drop_line("10:00:06", A, "TCP", 22).replace("PROTO=TCP", "PROTO=06")),
    );
    let out = s.run(&["check"]).ok();
    let said = out
        .stdout
        .lines()
        .find(|l| l.contains("are no packet"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        said.contains("2 of those lines are no packet (a run counts them as malformed); the first, bad host name: Jan  5 10:00:05 <b>web[31m1</b> kernel:"),
        "{said}"
    );
    assert!(!said.contains('\u{1b}'), "{said}");
    s.write("messages", &(lines("Jan 25", 0, A, 2) + &bad));
    let out = s.run(&["check"]).ok();
    assert!(
        out.stdout.contains("1 of those lines is no packet"),
        "{}",
        out.stdout
    );
    s.write("messages", &lines("Jan 25", 0, A, 3));
    let out = s.run(&["check"]).ok();
    assert!(!out.stdout.contains("no packet"), "{}", out.stdout);
}

/// A glob's files are each looked at by `check`, not only the first: another host's lines in
/// a layout the run does not read passed `check`, and the run moved past them reporting
/// nothing from that host; and a first host with nothing dropped yet failed `check` while the
/// run reported the others.
#[test]
fn check_looks_at_every_file_of_a_glob() {
    let config = standard_config("").replace("{dir}/messages", "{dir}/hosts/*.log");
    let s = Setup::new(&config);
    std::fs::create_dir(s.path("hosts")).unwrap();
    s.write("hosts/a.log", &lines("Jan 25", 0, A, 3));
    let busybox = lines("Jan 25", 0, A, 3).replace("web1 kernel:", "router kern.warn kernel:");
    s.write("hosts/b.log", &busybox);
    let out = s.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "warning source     {}: 3 of the last 3 lines carry \"INPUT-DROP:\", but none reads as a packet",
            s.path("hosts/b.log").display()
        )),
        "{}",
        out.stdout
    );
    // A quiet first host, a second one dropping: what a run reads is fine.
    s.write(
        "hosts/a.log",
        "Jan 25 10:00:00 web1 sshd[1]: session opened\n",
    );
    s.write("hosts/b.log", &lines("Jan 25", 0, A, 3));
    let out = s.run(&["check"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("in the ends of its 2 files"),
        "{}",
        out.stdout
    );
}

/// Lines that carry the prefix in a layout a run does not read (busybox syslogd puts the
/// facility and level before the tag; RFC 5424 has no `kernel:` tag at all): `check` and
/// the first run say the prefix is there and the layout is the trouble, not "check
/// `prefixes`", which would send the operator after the wrong setting; a layout read says how
/// many of its lines are packets.
#[test]
fn a_log_layout_not_read_is_named_as_such_not_as_a_wrong_prefix() {
    let s = Setup::standard();
    let busybox = lines("Jan 25", 0, A, 3).replace("web1 kernel:", "router kern.warn kernel:");
    let rfc5424 = drop_line("10:00:09", A, "TCP", 22).replace(
        "Jan 25 10:00:09 web1 kernel: [810294.788657] ",
        "<12>1 2026-01-25T10:00:09.123+00:00 web1 kernel - - - ",
    );
    s.write("messages", &(busybox + &rfc5424));
    let out = s.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "warning source     {}: 4 of the last 4 lines carry \"INPUT-DROP:\", but none reads as a packet",
            s.path("messages").display()
        )),
        "{}",
        out.stdout
    );
    let source = s.path("messages").display().to_string();
    let ran = s.run(&["run"]).ok();
    assert!(
        ran.stderr.contains(&format!(
            "warning: source {source}: first read, 4 lines, 4 carry \"INPUT-DROP:\" but none reads as a packet (3 of them outside a kernel message)"
        )),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("check `prefixes`"), "{}", ran.stderr);
    s.write("messages", &lines("Jan 25", 0, A, 2));
    let read = s.run(&["check"]).ok();
    assert!(
        read.stdout
            .contains("2 of the last 2 lines carry INPUT-DROP:, 2 of them packets"),
        "{}",
        read.stdout
    );
}

/// The config with the source's prefix set to `prefix`.
fn with_prefix(prefix: &str) -> String {
    standard_config("").replace(
        "path = \"{dir}/messages\"",
        &format!("path = \"{{dir}}/messages\"\nprefixes = [\"{prefix}\"]"),
    )
}

/// `timezone` corrected from UTC to New York, then `reread`: the year-less stamps counted
/// then read five hours later now, past the last packet counted, and each was counted again:
/// an address of two packets crossed `min_hits` on four, with no warning. What the runs
/// before `reread` read is passed over by its place when its times were made in another
/// zone; what was logged since counts.
#[test]
fn a_reread_after_the_timezone_changed_counts_no_packet_twice() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 3"));
    let log: String = [(A, 2), (B, 3)]
        .iter()
        .flat_map(|&(ip, n)| (0..n).map(move |k| drop_line(&format!("10:00:0{k}"), ip, "TCP", 22)))
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    assert_eq!(observed_hits(&s), hits(&[(A, 2), (B, 3)]));
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let moved = config.replace("timezone = \"UTC\"", "timezone = \"America/New_York\"");
    assert_ne!(moved, config);
    fs::write(s.path("config.toml"), moved).unwrap();
    let source = s.path("messages").display().to_string();
    s.run(&["reread", "--source", &source]).ok();
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_counted_before"], 5, "{v}");
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(0), "{v}");
    // A packet logged since counts, once: the address has three now, and is reported.
    s.append("messages", &drop_line("10:05:00", A, "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s), hits(&[(A, 3), (B, 3)]));
    assert_eq!(s.outbox().len(), 2);
}

/// Two prefixes, `timezone` changed, then a run that counts a packet of the first prefix
/// only: the second prefix's time was still made in the old zone, though the source's zone
/// said the new one, and a `reread` counted its packets again. Each prefix's time keeps the
/// zone it was made in.
#[test]
fn a_reread_after_the_timezone_changed_knows_each_prefixs_zone() {
    const C: &str = "34.223.47.190";
    let s = Setup::new(
        &standard_config("")
            .replace("min_hits = 1", "min_hits = 3")
            .replace(
                "path = \"{dir}/messages\"",
                "path = \"{dir}/messages\"\nprefixes = [\"INPUT-DROP:\", \"UFW BLOCK:\"]",
            ),
    );
    let ufw = |t: &str, ip: &str| drop_line(t, ip, "TCP", 22).replace("INPUT-DROP:", "UFW BLOCK:");
    let log: String = (0..2)
        .map(|k| {
            let t = format!("10:00:0{k}");
            drop_line(&t, A, "TCP", 22) + &ufw(&t, C)
        })
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let moved = config.replace("timezone = \"UTC\"", "timezone = \"America/New_York\"");
    fs::write(s.path("config.toml"), moved).unwrap();
    s.append("messages", &drop_line("10:05:00", B, "TCP", 22));
    s.run(&["run"]).ok();
    let source = s.path("messages").display().to_string();
    s.run(&["reread", "--source", &source]).ok();
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s), hits(&[(A, 2), (B, 1), (C, 2)]));
    assert!(s.outbox().is_empty());
}

#[test]
fn wrong_prefix_then_reread_reports_the_history_once() {
    let s = Setup::new(&with_prefix("UFW BLOCK:"));
    fs::write(
        s.path("messages.2.gz"),
        gzip(lines("Jan 23", 0, A, 3).as_bytes()),
    )
    .unwrap();
    s.write("messages.1", &lines("Jan 24", 0, B, 4));
    s.write("messages", &lines("Jan 25", 0, C, 5));
    let source = s.path("messages").display().to_string();

    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "warning: source {source}: first read, 12 lines, none carries \"UFW BLOCK:\"; check `prefixes` (abuse-mailer check), then `abuse-mailer reread --source {source}`"
        )),
        "{}",
        out.stderr
    );
    assert!(s.outbox().is_empty());

    // The prefix fixed: the cursor has moved on, so nothing is read...
    fs::write(
        s.path("config.toml"),
        with_prefix("INPUT-DROP:")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    )
    .unwrap();
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
    assert!(!out.stderr.contains("first read"), "{}", out.stderr);

    // ...until the source is read again, rotated history included.
    let out = s.run(&["reread", "--source", &source]).ok();
    assert_eq!(
        out.stdout,
        format!(
            "source {source}: the next run reads it again from the start of its oldest rotated file\n"
        )
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 12 lines"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, 3), (B, 4), (C, 5)]));
    assert_eq!(s.outbox().len(), 1);
    let mut reported: Vec<String> = s.reported().concat();
    reported.sort();
    assert_eq!(reported, [B, A, C]);

    // Reading it all again sends nothing twice.
    s.run(&["reread", "--source", &source]).ok();
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 12 lines"), "{}", out.stderr);
    assert!(out.stderr.contains("0 sent"), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn reread_since_starts_at_the_first_packet_logged_then() {
    // The clock is 2026-01-26T08:00Z.
    let s = Setup::new(&with_prefix("UFW BLOCK:"));
    s.write("messages.1", &lines("Jan 26", 3600, A, 3));
    let early = lines("Jan 26", 5 * 3600, A, 2);
    s.write(
        "messages",
        &(early.clone() + &lines("Jan 26", 7 * 3600, B, 3)),
    );
    s.run(&["run"]).ok();
    fs::write(
        s.path("config.toml"),
        standard_config("")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    )
    .unwrap();
    let source = s.path("messages").display().to_string();

    let out = s
        .run(&["reread", "--source", &source, "--since", "10m"])
        .ok();
    assert!(
        out.stdout
            .contains("nothing logged since 2026-01-26T07:50:00Z"),
        "{}",
        out.stdout
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);

    let out = s
        .run(&["reread", "--source", &source, "--since", "2h"])
        .ok();
    assert_eq!(
        out.stdout,
        format!(
            "source {source}: the next run reads it again from {source} at byte {} (the first packet logged at or after 2026-01-26T06:00:00Z)\n",
            early.len()
        )
    );
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s), hits(&[(B, 3)]));

    let out = s
        .run(&["reread", "--source", &source, "--since", "1d"])
        .ok();
    assert!(out.stdout.contains("oldest rotated file"), "{}", out.stdout);
}

#[test]
fn reread_of_a_source_not_configured_is_a_config_error() {
    let s = Setup::standard();
    s.write("messages", &lines("Jan 25", 0, A, 1));
    let out = s.run(&["reread", "--source", "/var/log/elsewhere"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "abuse-mailer: reread --source /var/log/elsewhere: no such source configured (sources: {})\n",
            s.path("messages").display()
        )
    );
    assert!(!s.path("state/state.db").exists(), "nothing written");
}

/// The shared data folder named by `ABUSE_MAILER_DATA`.
fn data(rel: &str) -> std::path::PathBuf {
    let dir =
        std::env::var_os("ABUSE_MAILER_DATA").expect("ABUSE_MAILER_DATA names the data folder");
    std::path::PathBuf::from(dir).join(rel)
}

#[test]
#[ignore = "needs ABUSE_MAILER_DATA"]
fn real_ufw_logs_with_a_wrong_prefix_are_read_again_with_their_history() {
    let ufw = |prefix: &str| {
        standard_config("").replace(
            "path = \"{dir}/messages\"",
            &format!("path = \"{{dir}}/logs/ufw.log\"\nprefixes = [\"{prefix}\"]"),
        )
    };
    let copy = |s: &Setup| {
        fs::create_dir(s.path("logs")).unwrap();
        for name in ["ufw.log", "ufw.log.2.gz", "ufw.log.3.gz", "ufw.log.4.gz"] {
            fs::copy(
                data(&format!("iptables-logs/vultr-ufw-2022/{name}")),
                s.path(&format!("logs/{name}")),
            )
            .unwrap();
        }
    };
    // 1,832 lines in ufw.log, 124,563 in the three rotated files.
    let all = 1832 + 124_563;

    // What a first run with the right prefix reads.
    let right = Setup::new(&ufw("[UFW BLOCK] "));
    copy(&right);
    let expected = right.run(&["preview", "--json"]).ok().json()["summary"].clone();
    assert_eq!(expected["lines_read"], all);

    let s = Setup::new(&ufw("UFW BLOCK:"));
    copy(&s);
    let source = s.path("logs/ufw.log").display().to_string();
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "source {source}: first read, {all} lines, none carries \"UFW BLOCK:\""
        )),
        "{}",
        out.stderr
    );
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);

    fs::write(
        s.path("config.toml"),
        ufw("[UFW BLOCK] ")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    )
    .unwrap();
    s.run(&["reread", "--source", &source]).ok();
    let got = s.run(&["preview", "--json"]).ok().json()["summary"].clone();
    assert_eq!(got, expected);
}

#[test]
fn reread_counts_no_packet_twice() {
    // Two packets: below min_hits = 3, counted once, and after `reread` still two.
    let s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), A, "TCP", 22))
        .collect();
    s.write("messages", &two);
    s.run(&["run"]).ok();
    let messages = s.path("messages");
    s.run(&["reread", "--source", messages.to_str().unwrap()])
        .ok();
    let out = s.run(&["run"]).ok();
    assert!(
        s.outbox().is_empty(),
        "two packets are no three: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("2 lines read again that an earlier read counted"),
        "{}",
        out.stderr
    );
    // One more packet makes three: the report says three, with each line once.
    s.append("messages", &drop_line("10:00:05", A, "TCP", 22));
    s.run(&["run"]).ok();
    let files = s.outbox();
    assert_eq!(files.len(), 1);
    let text = fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Packets:  3 dropped"), "{text}");
    let csv_row = text
        .lines()
        .find(|l| l.starts_with(&format!("{A},")))
        .expect("the CSV row");
    assert_eq!(csv_row.split(',').nth(3), Some("3"), "{csv_row}");
}

/// Three packets of `src`, at 10:00 and `from` seconds and the two seconds after.
fn three(src: &str, from: u32) -> String {
    (from..from + 3)
        .map(|i| drop_line(&format!("10:00:{i:02}"), src, "TCP", 22))
        .collect()
}

/// Lines logged since the last run, stamped before the last packet it counted (a log host's
/// host whose clock is behind), then `reread`: no run read them, and the run after it counts
/// them (it passed them over as counted, by their time alone), in the cursor's file and in
/// the file the log rotated to since, while the packets the last run counted still count once.
#[test]
fn reread_counts_the_lines_no_run_read_whatever_their_time() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    s.write("messages", &three(A, 20));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get(A), Some(&3));
    // Behind the last packet counted: in the file the run read, and after it rotated.
    s.append("messages", &three(B, 10));
    let messages = s.path("messages");
    fs::rename(&messages, s.path("messages.1")).unwrap();
    s.write("messages", &three(C, 14));
    s.run(&["reread", "--source", messages.to_str().unwrap()])
        .ok();
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get(B), Some(&3), "{}", out.stderr);
    assert_eq!(hits.get(C), Some(&3), "{}", out.stderr);
    assert_eq!(hits.get(A), Some(&3), "counted once: {}", out.stderr);
    assert!(
        out.stderr
            .contains("3 lines read again that an earlier read counted"),
        "{}",
        out.stderr
    );
}

/// The same after `reread --since`, whose point is before where the last run stopped: the
/// lines logged after that are counted, whatever their time.
#[test]
fn reread_since_counts_the_lines_no_run_read_whatever_their_time() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    s.write("messages", &three(A, 20));
    s.run(&["run"]).ok();
    s.append("messages", &three(B, 10));
    s.reread_since("2d");
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get(B), Some(&3), "{}", out.stderr);
    assert_eq!(hits.get(A), Some(&3), "counted once: {}", out.stderr);
}

/// A `path` relative to the configuration's folder, named to `reread` as the configuration
/// spells it from another folder (cron's, a root shell in `/`): that source (it was "no such
/// source configured", 78, anywhere but in the configuration's folder).
#[test]
fn reread_takes_the_configured_spelling_from_any_folder() {
    let s = Setup::new(&standard_config("").replace("\"{dir}/messages\"", "\"messages\""));
    s.write("messages", &lines("Jan 25", 0, A, 1));
    s.run(&["run"]).ok();
    let out = s
        .command(&["reread", "--source", "messages"])
        .current_dir("/")
        .output()
        .unwrap();
    let ran = Ran::from(out).ok();
    assert!(
        ran.stdout.contains("the next run reads it again"),
        "{}",
        ran.stdout
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 1 lines"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, 1)]));
}

/// `run.lock` removed by hand while `reread --since` looks through a large rotated `.gz`
/// for where to start: a run let in beside it may move the cursors meanwhile. The reread
/// stops (1) and leaves them as they were: the next run reads on, nothing again.
#[test]
fn a_reread_whose_lock_is_removed_leaves_the_cursors_alone() {
    let s = Setup::standard();
    s.write("messages", &lines("Jan 25", 0, A, 1));
    s.run(&["run"]).ok();
    // About 200 MB of other programs' lines: one compressed piece, written many times over
    // (a `.gz` may hold members one after another), takes the reread seconds to go through.
    let other = "Jan 24 10:00:00 host cron[123]: (root) CMD (run-parts /etc/cron.hourly)\n";
    let member = gzip(other.repeat(40_000).as_bytes());
    fs::write(s.path("messages.1.gz"), member.repeat(70)).unwrap();
    let source = s.path("messages").display().to_string();
    let reread = (s.command(&["reread", "--source", &source, "--since", "3d"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    remove_the_lock_once_held(&s);
    let ran = Ran::from(reread.wait_with_output().unwrap());
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("removed or replaced"), "{}", ran.stderr);
    s.append("messages", &lines("Jan 25", 60, B, 1));
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 1 lines"), "{}", out.stderr);
    assert_eq!(observed_hits(&s), hits(&[(A, 1), (B, 1)]));
}

/// `reread --since` over lines a run counted already: the cursor it leaves is a real one
/// (a file and an offset), and the packets from there on were counted; they are not
/// counted again.
#[test]
fn reread_since_counts_no_packet_twice() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    // An older packet first, so that `--since 2d` starts inside the file, not at its top.
    let older = drop_line("09:00:00", B, "TCP", 22).replace("Jan 25", "Jan 23");
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), A, "TCP", 22))
        .collect();
    s.write("messages", &(older + &two));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get(A), Some(&2));
    s.reread_since("2d");
    let out = s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get(A), Some(&2), "{}", out.stderr);
    assert!(s.outbox().is_empty(), "two packets are no three");
}

/// `reread --since` to a point after where the last run stopped: the lines logged between,
/// which no run had read, were passed over for good (the way back made the next run read
/// less than a plain run). The cursor is left where it is, and the run reads them.
#[test]
fn reread_since_never_moves_a_cursor_past_lines_no_run_read() {
    let s = Setup::standard();
    let (x, y, z) = ("3.5.140.2", "3.5.140.3", "3.5.140.4");
    s.write(
        "messages",
        &drop_line("09:00:00", x, "TCP", 22).replace("Jan 25", "Jan 22"),
    );
    s.run(&["run"]).ok();
    // Logged after that run: one before the point asked for, one after.
    s.append(
        "messages",
        &drop_line("10:00:00", y, "TCP", 22).replace("Jan 25", "Jan 23"),
    );
    s.append(
        "messages",
        &drop_line("07:00:00", z, "TCP", 22).replace("Jan 25", "Jan 26"),
    );
    let said = s.reread_since("1d");
    assert!(
        said.stdout.contains("reads on from there"),
        "{}",
        said.stdout
    );
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(
        (hits.get(x), hits.get(y), hits.get(z)),
        (Some(&1), Some(&1), Some(&1)),
        "{}",
        out.stderr
    );
}

/// `reread --since` finds the first packet of the time asked for also when it follows a
/// crash's NUL block on the line a cut one began: it is a line of its own to the reader, and
/// is read again with the rest (and, counted before, not counted twice).
#[test]
fn reread_since_starts_at_a_packet_after_a_nul_block() {
    let s = Setup::standard();
    let cut = drop_line("09:30:00", A, "TCP", 22);
    let cut = &cut[..cut.find(" DST=").unwrap()];
    s.write(
        "messages",
        &format!(
            "{}{cut}{}{}{}",
            drop_line("09:00:00", C, "TCP", 22),
            "\0".repeat(500),
            drop_line("10:30:00", B, "TCP", 22),
            drop_line("11:00:00", D, "TCP", 22)
        ),
    );
    s.run(&["run"]).ok();
    // The clock is Jan 26 08:00: 22 hours back is Jan 25 10:00, between the cut line and B.
    let said = s.reread_since("22h");
    assert!(
        !said.stdout.contains("nothing logged since"),
        "{}",
        said.stdout
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_read"], 2, "{v}");
    assert_eq!(v["summary"]["lines_counted_before"], 2, "{v}");
}

#[test]
fn packets_older_than_max_age_days_do_not_count_towards_min_hits() {
    // min_hits 3 (the default), max_age_days 30 (the default).
    let mut s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), A, "TCP", 22))
        .collect();
    s.write("messages", &two);
    s.run(&["run"]).ok();
    assert!(s.outbox().is_empty(), "two packets are below min_hits");
    // Three months on, one more packet: the two from January are history.
    s.now = "2026-04-26T08:00:00Z".to_string();
    let april = |t: &str| drop_line(t, A, "TCP", 22).replace("Jan 25", "Apr 25");
    s.append("messages", &april("10:00:00"));
    let out = s.run(&["run"]).ok();
    assert!(
        s.outbox().is_empty(),
        "one fresh packet is no three: {}",
        out.stderr
    );
    assert_eq!(observed_hits(&s).get(A), Some(&1));
    s.append("messages", &(april("10:00:01") + &april("10:00:02")));
    s.run(&["run"]).ok();
    let v = history(&s);
    assert_eq!(v.len(), 1, "three fresh packets are reported");
    let eml = std::fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(
        !eml.contains("2026-01-25"),
        "the report reaches back to January:\n{eml}"
    );
}

/// An address held back by `min_hits` whose packets grew older than `max_age_days`, seen
/// again: the runs' count of addresses held back took the new sighting in, and the old one
/// out only if it was still fresh, so it counted the one address twice, and once more each
/// time such an address came back.
#[test]
fn an_address_held_back_counts_once_when_it_comes_back_after_its_packets_grew_old() {
    let mut s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    let below = |s: &Setup| {
        let v = s.run(&["preview", "--json"]).ok().json();
        v["summary"]["ips_below_min_hits"].as_u64().unwrap()
    };
    s.write("messages", &lines("Jan 25", 36_000, A, 2));
    s.run(&["run"]).ok();
    assert_eq!(below(&s), 1);
    s.now = "2026-04-26T08:00:00Z".to_string();
    s.append("messages", &lines("Apr 25", 36_000, A, 1));
    s.run(&["run"]).ok();
    assert_eq!(below(&s), 1, "one address, one fresh packet");
    s.append("messages", &lines("Apr 25", 36_010, A, 2));
    s.run(&["run"]).ok();
    assert_eq!(history(&s).len(), 1, "three fresh packets are reported");
    assert_eq!(below(&s), 0);
    // Runs in between that read other addresses (a timer's) change nothing of it.
    s.append("messages", &lines("Apr 25", 36_100, B, 2));
    s.run(&["run"]).ok();
    assert_eq!(below(&s), 1);
    s.now = "2026-07-20T08:00:00Z".to_string();
    s.append("messages", &lines("Jul 19", 36_000, C, 1));
    s.run(&["run"]).ok();
    s.now = "2026-07-26T08:00:00Z".to_string();
    s.append("messages", &lines("Jul 25", 36_000, B, 1));
    s.run(&["run"]).ok();
    // B's April packets grew old before it came back, after C's run: B and C, once each.
    assert_eq!(below(&s), 2);
}

/// A run that stores what it read lets old records go as history, and they leave the count
/// of addresses `min_hits` holds back; the preview before it counted them still, so the two
/// gave different counts for the same state and log.
#[test]
fn the_count_held_back_is_the_same_in_a_preview_and_the_run_after_it() {
    let mut s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    let count = |s: &Setup, command: &[&str]| {
        let v = s.run(command).ok().json();
        v["summary"]["ips_below_min_hits"].as_u64().unwrap()
    };
    let two = |ip| lines("Jan 25", 36_000, ip, 2);
    s.write("messages", &(two(A) + &two(B) + &two(C)));
    s.run(&["run"]).ok();
    assert_eq!(count(&s, &["preview", "--json"]), 3);
    // Weeks on, B's and C's packets are history; A sends one more.
    s.now = "2026-03-05T08:00:00Z".to_string();
    s.append("messages", &lines("Mar  5", 7_200, A, 1));
    let previewed = count(&s, &["preview", "--json"]);
    let ran = count(&s, &["run", "--json"]);
    assert_eq!(previewed, ran);
    assert_eq!(ran, 1, "A alone");
}

/// The run looked for old records after storing its own, whose places in key order pushed
/// the end of its bounded look back: past 20,000 stored addresses, the preview before it,
/// which looks at the table as it was, counted records the run did not let go of.
#[test]
fn the_count_held_back_is_alike_past_the_bounded_look_for_history() {
    let mut s = Setup::new(&standard_config("").replace("min_hits = 1\n", ""));
    let address = |i: u32| format!("34.208.{}.{}", i / 250, i % 250 + 1);
    let old: String = (0..20_100)
        .map(|i| drop_line("10:00:00", &address(i), "TCP", 22))
        .collect();
    s.write("messages", &old);
    s.run(&["run"]).ok();
    s.now = "2026-03-05T08:00:00Z".to_string();
    let new: String = (1..=10)
        .map(|i| drop_line("07:00:00", &format!("18.204.0.{i}"), "TCP", 22))
        .collect();
    s.append("messages", &new.replace("Jan 25", "Mar  5"));
    let count = |s: &Setup, command: &[&str]| {
        let v = s.run(command).ok().json();
        v["summary"]["ips_below_min_hits"].as_u64().unwrap()
    };
    let previewed = count(&s, &["preview", "--json"]);
    assert_eq!(previewed, count(&s, &["run", "--json"]));
}

#[test]
fn lines_stamped_in_the_future_are_stale_and_reread_still_counts_new_ones() {
    let s = Setup::new(&standard_config(""));
    let b = "3.5.140.3";
    let ahead =
        |stamp: &str, ip| drop_line("10:00:00", ip, "TCP", 22).replace("Jan 25 10:00:00", stamp);
    // A host whose clock is years ahead, and one at the end of time.
    let log = drop_line("10:00:00", A, "TCP", 22)
        + &ahead("2030-06-01T00:00:00+00:00", b)
        + &ahead("9999-12-31T23:59:59+00:00", b);
    s.write("messages", &log);
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_stale"], 2, "{}", v["summary"]);
    assert_eq!(ip_list(&v["reports"][0]["ips"]), [A]);
    // The summary line calls them what they are: ahead, not old.
    let said = s.run(&["preview"]).ok().stderr;
    assert!(
        said.contains("2 lines dated more than a day ahead of the clock")
            && !said.contains("older than max_age_days"),
        "{said}"
    );
    s.run(&["run"]).ok();
    let eml = fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(!eml.contains("9999") && !eml.contains("2030-06"), "{eml}");
    // A reread passes over what was counted, not what a wrong clock stamped.
    let messages = s.path("messages");
    s.run(&["reread", "--source", messages.to_str().unwrap()])
        .ok();
    s.append("messages", &drop_line("10:00:05", "3.5.140.4", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get("3.5.140.4"), Some(&1));
    assert_eq!(observed_hits(&s).get(A), Some(&1), "nothing counted twice");
}

#[test]
fn a_rotated_file_compressed_other_than_gzip_is_named_not_taken_as_read() {
    let s = Setup::new(&standard_config(""));
    s.write("messages", &drop_line("10:00:00", A, "TCP", 22));
    s.run(&["run"]).ok();
    // Written after that run, then rotated and compressed with xz (its magic bytes stand
    // for the compressed text) before the next.
    s.append("messages", &drop_line("10:00:01", "3.5.140.3", "TCP", 22));
    fs::remove_file(s.path("messages")).unwrap();
    fs::write(
        s.path("messages.1.xz"),
        b"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46\x02\x00\x21\x01",
    )
    .unwrap();
    s.write("messages", &drop_line("10:00:02", "3.5.140.4", "TCP", 22));
    let out = s.run(&["-v", "run"]).ok();
    assert!(
        out.stderr.contains("messages.1.xz is compressed with xz"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("finished"), "{}", out.stderr);
    assert_eq!(
        observed_hits(&s).get("3.5.140.4"),
        Some(&1),
        "{}",
        out.stderr
    );
    // Nothing a reread needs is in it: a reread is not refused for it.
    s.reread_since("2d");
}

#[test]
fn a_compressed_files_last_line_without_newline_is_read() {
    let s = Setup::new(&standard_config(""));
    let b = "3.5.140.3";
    let last = drop_line("10:00:01", b, "TCP", 22);
    let text = drop_line("10:00:00", A, "TCP", 22) + last.trim_end_matches('\n');
    s.write("messages", &text);
    s.run(&["run"]).ok();
    assert_eq!(
        observed_hits(&s).get(b),
        None,
        "it may still be being written"
    );
    // Rotated and compressed as it was: its last line will not grow any more.
    fs::remove_file(s.path("messages")).unwrap();
    fs::write(s.path("messages.1.gz"), gzip(text.as_bytes())).unwrap();
    s.write("messages", &drop_line("10:00:02", "3.5.140.4", "TCP", 22));
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s).get(b), Some(&1), "{}", out.stderr);
    assert_eq!(observed_hits(&s).get(A), Some(&1), "nothing twice");
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get(b), Some(&1), "read once");
}

#[test]
fn copytruncate_under_a_fixed_header_longer_than_before_is_read_from_its_start() {
    let s = Setup::new(&standard_config(""));
    let header = "Jan 25 00:00:00 web1 syslogd: restart\n";
    let sources = |from: u32, n: u32| -> String {
        (from..from + n)
            .map(|i| {
                drop_line(
                    "10:00:00",
                    &format!("3.5.{}.{}", 140 + i / 250, i % 250 + 1),
                    "TCP",
                    22,
                )
            })
            .collect()
    };
    s.write("messages", &(header.to_string() + &sources(0, 10)));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).len(), 10);
    // copytruncate: the copy holds what was read; the file starts again with the same
    // header and grows past where the last run stopped before this one.
    fs::copy(s.path("messages"), s.path("messages.1")).unwrap();
    s.write("messages", &(header.to_string() + &sources(10, 30)));
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s).len(), 40, "{}", out.stderr);
    assert!(observed_hits(&s).values().all(|h| *h == 1), "nothing twice");
    // A backup copy of a file that was only appended to changes nothing.
    fs::copy(s.path("messages"), s.path("messages.bak")).unwrap();
    s.append("messages", &sources(40, 5));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).len(), 45);
    assert!(observed_hits(&s).values().all(|h| *h == 1), "nothing twice");
}

/// A log written in another zone than `timezone` says (a server on local time, read as UTC)
/// puts its latest lines hours ahead of the clock: they were counted and reported at those
/// times, a report's packets coming after its Date, and nothing told the operator. The run
/// and the preview now say how far ahead; lines a few minutes ahead (clocks that drift) are
/// no cause to warn.
#[test]
fn lines_dated_hours_ahead_are_counted_and_said() {
    let mut s = Setup::standard();
    s.now = "2026-01-25T08:00:00Z".into();
    // 10:00:00 and 10:00:01 written on a server two hours east of UTC, at 08:00 UTC.
    s.write(
        "messages",
        &(lines("Jan 25", 7 * 3600, B, 1) + &lines("Jan 25", 8 * 3600 + 240, B, 1)),
    );
    let quiet = s.run(&["preview"]).ok();
    assert!(!quiet.stderr.contains("dated ahead"), "{}", quiet.stderr);
    s.append("messages", &lines("Jan 25", 10 * 3600, A, 2));
    for command in ["preview", "run"] {
        let out = s.run(&[command]).ok();
        let messages = s.path("messages");
        assert!(
            out.stderr.contains(&format!(
                "2 packet line(s) are dated ahead of this host's clock (2026-01-25T08:00:00Z), the latest 120 minute(s) ahead, at 2026-01-25T10:00:01Z, in {}: counted",
                messages.display()
            )) && out.stderr.contains("`timezone`"),
            "{command}: {}",
            out.stderr
        );
    }
    assert_eq!(observed_hits(&s).get(A), Some(&2));
}

/// On a log host, the warnings about lines dated ahead blamed "this host's clock" and asked
/// for `reread --source PATH` without saying which host's file held them: the operator could
/// not tell which server's clock (or zone) to fix. They now name the files.
#[test]
fn lines_dated_ahead_are_said_with_the_files_that_hold_them() {
    let mut s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/hosts/*/kern.log\"\nstart_at = \"beginning\"",
    ));
    s.now = "2026-01-25T08:00:00Z".into();
    let stamped = |stamp: &str, host: &str| {
        drop_line("10:00:00", A, "TCP", 22)
            .replace("Jan 25 10:00:00", stamp)
            .replace(" web1 kernel:", &format!(" {host} kernel:"))
    };
    for (host, stamp) in [
        ("web1", "2026-01-25T07:59:00+00:00"),
        ("web2", "2026-01-25T11:00:00+00:00"),
        ("web3", "2026-01-27T08:00:00+00:00"),
    ] {
        fs::create_dir_all(s.path(&format!("hosts/{host}"))).unwrap();
        s.write(&format!("hosts/{host}/kern.log"), &stamped(stamp, host));
    }
    let out = s.run(&["run"]).ok();
    let web2 = s.path("hosts/web2/kern.log");
    let web3 = s.path("hosts/web3/kern.log");
    let said = |text: &str| {
        out.stderr
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_default()
    };
    let soon = said("dated ahead of this host's clock");
    assert!(
        soon.contains(&format!(
            "at 2026-01-25T11:00:00Z, in {}: counted",
            web2.display()
        )),
        "{}",
        out.stderr
    );
    let far = said("more than a day ahead");
    assert!(
        far.contains(&format!(", in {}: passed over", web3.display()))
            && far.contains(&format!("reread --source {}`", web3.display())),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hosts/web1/"), "{}", out.stderr);
}

/// The host's clock is set back two days (a bad hardware clock at boot, before NTP): every
/// line logged since looks dated ahead of it and is passed over. The run says so and how to
/// get them back; once the clock is right, `reread` counts them, and nothing twice.
#[test]
fn a_clock_set_back_says_so_and_reread_counts_the_lines_once_it_is_right() {
    let mut s = Setup::standard();
    s.write("messages", &lines("Jan 25", 36_000, A, 1));
    s.run(&["run"]).ok();
    // rsyslog's RFC 3339 stamps carry their year; BSD stamps have none, and a line a little
    // ahead of the clock reads as last year's: passed over as history, said as such.
    let rfc = |second: u32| {
        drop_line("10:00:00", B, "TCP", 22).replace(
            "Jan 25 10:00:00",
            &format!("2026-01-26T07:00:{second:02}+00:00"),
        )
    };
    s.append("messages", &(rfc(1) + &rfc(2)));
    s.now = "2026-01-24T06:00:00Z".into();
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr
            .contains("2 packet line(s) are dated more than a day ahead")
            && out.stderr.contains("reread --source"),
        "{}",
        out.stderr
    );
    assert!(!observed_hits(&s).contains_key(B));
    s.now = "2026-01-26T09:00:00Z".into();
    let path = s.path("messages");
    s.run(&["reread", "--source", path.to_str().unwrap()]).ok();
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)[A], 1, "counted once");
    assert_eq!(observed_hits(&s)[B], 2);
    assert_eq!(s.reported().concat(), [A, B]);
}

/// One run under a clock set ahead, then the right clock: later runs read and report as
/// ever; nothing stored by the wrong clock stops them.
#[test]
fn a_run_under_a_clock_set_ahead_stops_no_later_run() {
    let mut s = Setup::standard();
    let right = s.now.clone();
    s.write("messages", &lines("Jan 25", 36_000, A, 1));
    s.now = "2027-06-01T00:00:00Z".into();
    s.run(&["run"]).ok();
    s.now = right;
    s.append("messages", &lines("Jan 25", 36_100, B, 1));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)[B], 1);
}

/// `ABUSE_MAILER_NOW` pins a preview at any time, also before the last run.
#[test]
fn a_preview_pinned_before_the_last_run_works() {
    let mut s = Setup::standard();
    s.write("messages", &lines("Jan 25", 36_000, A, 1));
    s.run(&["run"]).ok();
    s.now = "2026-01-20T00:00:00Z".into();
    s.run(&["preview"]).ok();
}

/// Ubuntu's rsyslog writes ufw's lines to `ufw.log` and to `kern.log`: a configuration that
/// reads both counts every packet twice. Each run that reads packets from both says so,
/// naming the two (not under `-q`), and `check` says so before any run.
#[test]
fn two_sources_holding_the_same_packets_are_named_by_run_and_check() {
    let config = standard_config("").replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/messages\"\n\n[[source]]\npath = \"{dir}/kern.log\"",
    );
    let s = Setup::new(&config);
    let packets = [
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
    ]
    .concat();
    s.write("messages", &packets);
    s.write(
        "kern.log",
        &format!("Jan 25 09:59:59 web1 kernel: [810294.000001] usb 1-1: new device\n{packets}"),
    );
    let checked = s.run(&["check"]);
    assert!(
        checked.stdout.contains("warning source")
            && checked.stdout.contains("messages and ")
            && checked.stdout.contains("kern.log hold the same packets"),
        "{}",
        checked.stdout
    );
    let quiet = s.run(&["-q", "preview"]).ok();
    assert!(!quiet.stderr.contains("same packets"), "{}", quiet.stderr);
    let ran = s.run(&["run"]).ok();
    let warnings: Vec<&str> = (ran.stderr.lines())
        .filter(|l| l.contains("hold the same packets"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", ran.stderr);
    assert!(warnings[0].contains("counted twice"), "{}", warnings[0]);
    // A run that reads new packets from one of them only says nothing.
    s.append("kern.log", &drop_line("10:00:02", "3.5.140.3", "TCP", 22));
    let ran = s.run(&["run"]).ok();
    assert!(!ran.stderr.contains("same packets"), "{}", ran.stderr);
    // Different packets in the two say nothing either.
    let other = Setup::new(&config);
    other.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    other.write("kern.log", &drop_line("10:00:00", "3.5.140.9", "TCP", 22));
    let ran = other.run(&["run"]).ok();
    assert!(!ran.stderr.contains("same packets"), "{}", ran.stderr);
    assert!(!other.run(&["check"]).stdout.contains("same packets"));
}

/// A relative `path` keeps the config folder's `..` in the source's name
/// (`/etc/abuse/../logs/messages`): `reread --source` takes the file's own absolute name too,
/// for a path and for a file a glob matches, and the next run reads it again under the
/// name its cursor has.
#[test]
fn reread_takes_a_sources_plain_absolute_name() {
    let s = Setup::new(
        &standard_config("")
            .replace(
                "path = \"{dir}/messages\"",
                "path = \"etc/../logs/messages\"",
            )
            .replace(
                "[[provider]]",
                "[[source]]\npath = \"etc/../hosts/*.log\"\n\n[[provider]]",
            ),
    );
    for folder in ["etc", "logs", "hosts"] {
        fs::create_dir_all(s.path(folder)).unwrap();
    }
    s.write("logs/messages", &lines("Jan 25", 0, A, 2));
    s.write("hosts/web1.log", &lines("Jan 25", 10, B, 3));
    assert!(s.run(&["run"]).ok().stderr.contains("read 5 lines"));
    for plain in [s.path("logs/messages"), s.path("hosts/web1.log")] {
        let plain = plain.display().to_string();
        let out = s.run(&["reread", "--source", &plain]).ok();
        assert!(
            out.stdout.contains("the next run reads it again"),
            "{}",
            out.stdout
        );
        // Under the cursor's own name: the run reads that file again, and only it.
        let again = if plain.ends_with("messages") { 2 } else { 3 };
        let out = s.run(&["run"]).ok();
        assert!(
            out.stderr.contains(&format!("read {again} lines")),
            "{plain}: {}",
            out.stderr
        );
    }
    // A file of the glob that is not there, and that no run read: no cursor is left under a
    // name no run reads by.
    let missing = s.path("hosts/web9.log").display().to_string();
    let out = s.run(&["reread", "--source", &missing]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("no such file"), "{}", out.stderr);
}
