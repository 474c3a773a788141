//! Reading every firewall line exactly once across what logrotate, rsyslog and journald do
//! between runs. Each case runs the binary with the file transport and checks the stored hit
//! counts (the `observation` table) against the lines written, and that every attacker is
//! reported exactly once.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use common::*;
use proptest::prelude::*;

const IPS: [&str; 4] = [
    "3.5.140.2",
    "18.206.107.24",
    "34.223.47.190",
    "2600:1f18:4a3:6901::1",
];

/// A log folder that a test rotates like logrotate would, remembering what it wrote.
struct Log {
    setup: Setup,
    written: BTreeMap<String, u64>,
    seconds: u32,
    /// The live file ends in the middle of a line.
    partial: Option<String>,
    /// The renamed file ends in the middle of a line the daemon finishes before it reopens.
    renamed_partial: Option<String>,
}

impl Log {
    fn new(start_at_end: bool) -> Self {
        let extra = if start_at_end {
            "start_at = \"end\"\n"
        } else {
            ""
        };
        let config = standard_config("").replace(
            "path = \"{dir}/messages\"",
            &format!("path = \"{{dir}}/logs/messages\"\n{extra}"),
        );
        let setup = Setup::new(&config);
        fs::create_dir(setup.path("logs")).unwrap();
        fs::write(setup.path("logs/messages"), "").unwrap();
        Log {
            setup,
            written: BTreeMap::new(),
            seconds: 0,
            partial: None,
            renamed_partial: None,
        }
    }

    /// A log whose configured path is a symbolic link elsewhere, to `logs/messages`: the file
    /// is rotated where it is, beside the file the link points to.
    fn behind_a_link() -> Self {
        let config = standard_config("").replace(
            "path = \"{dir}/messages\"",
            "path = \"{dir}/current/messages\"",
        );
        let setup = Setup::new(&config);
        fs::create_dir(setup.path("logs")).unwrap();
        fs::create_dir(setup.path("current")).unwrap();
        fs::write(setup.path("logs/messages"), "").unwrap();
        std::os::unix::fs::symlink("../logs/messages", setup.path("current/messages")).unwrap();
        Log {
            setup,
            written: BTreeMap::new(),
            seconds: 0,
            partial: None,
            renamed_partial: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.setup.path("logs").join(name)
    }

    /// The next line: one second later than the last, from one of the attackers.
    fn next_line(&mut self, ip_index: usize) -> String {
        self.seconds += 1;
        let t = self.seconds;
        let ip = IPS[ip_index % IPS.len()];
        *self.written.entry(ip.to_string()).or_default() += 1;
        drop_line(
            &format!("{:02}:{:02}:{:02}", t / 3600 % 24, t / 60 % 60, t % 60),
            ip,
            "TCP",
            22,
        )
    }

    fn write_live(&self, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path("messages"))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Appends `n` whole lines; with `cut`, the last one is written only in part.
    fn append(&mut self, n: usize, cut: bool) {
        self.flush_renamed();
        self.finish_line();
        for i in 0..n {
            let line = self.next_line(i + self.seconds as usize);
            if cut && i + 1 == n {
                let (head, tail) = line.split_at(line.len() / 2);
                self.write_live(head);
                self.partial = Some(tail.to_string());
            } else {
                self.write_live(&line);
            }
        }
    }

    /// The daemon finishes the line it was writing to its renamed file.
    fn flush_renamed(&mut self) {
        if let Some(tail) = self.renamed_partial.take() {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(self.path("messages.1"))
                .unwrap();
            f.write_all(tail.as_bytes()).unwrap();
        }
    }

    /// Rename rotation while the daemon is in the middle of a line: it finishes it in the
    /// renamed file.
    fn rename_mid_line(&mut self, create: bool) {
        self.flush_renamed();
        if !self.path("messages").exists() {
            return;
        }
        self.shift();
        fs::rename(self.path("messages"), self.path("messages.1")).unwrap();
        self.renamed_partial = self.partial.take();
        if create {
            fs::write(self.path("messages"), "").unwrap();
        }
    }

    fn finish_line(&mut self) {
        self.flush_renamed();
        if let Some(tail) = self.partial.take() {
            self.write_live(&tail);
        }
    }

    /// Rotated files, numbered: `messages.N` or `messages.N.gz`.
    fn rotated(&self) -> Vec<(u32, bool)> {
        let mut out: Vec<(u32, bool)> = fs::read_dir(self.setup.path("logs"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let rest = name.strip_prefix("messages.")?;
                let gz = rest.ends_with(".gz");
                Some((rest.trim_end_matches(".gz").parse().ok()?, gz))
            })
            .collect();
        out.sort();
        out
    }

    fn name(n: u32, gz: bool) -> String {
        format!("messages.{n}{}", if gz { ".gz" } else { "" })
    }

    /// Makes room for a new `messages.1`.
    fn shift(&self) {
        for (n, gz) in self.rotated().into_iter().rev() {
            fs::rename(
                self.path(&Self::name(n, gz)),
                self.path(&Self::name(n + 1, gz)),
            )
            .unwrap();
        }
    }

    /// `messages` → `messages.1` by rename; `create` makes a new empty `messages`.
    fn rename_rotate(&mut self, create: bool) {
        self.flush_renamed();
        self.finish_line();
        if !self.path("messages").exists() {
            return;
        }
        self.shift();
        fs::rename(self.path("messages"), self.path("messages.1")).unwrap();
        if create {
            fs::write(self.path("messages"), "").unwrap();
        }
    }

    /// Lines written by the daemon to its still-open old file, after the rename.
    fn append_to_renamed(&mut self, n: usize) {
        self.flush_renamed();
        if !self.path("messages.1").exists() || self.path("messages.1.gz").exists() {
            return;
        }
        for i in 0..n {
            let line = self.next_line(i);
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(self.path("messages.1"))
                .unwrap();
            f.write_all(line.as_bytes()).unwrap();
        }
    }

    /// As [`Log::append_to_renamed`], the last line written only in part: the daemon
    /// finishes it before it reopens.
    fn append_to_renamed_cut(&mut self, n: usize) {
        self.append_to_renamed(n);
        if !self.path("messages.1").exists() || self.path("messages.1.gz").exists() {
            return;
        }
        let line = self.next_line(n);
        let (head, tail) = line.split_at(line.len() / 2);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.path("messages.1"))
            .unwrap();
        f.write_all(head.as_bytes()).unwrap();
        self.renamed_partial = Some(tail.to_string());
    }

    fn copy_truncate(&mut self) {
        self.flush_renamed();
        self.finish_line();
        if !self.path("messages").exists() {
            return;
        }
        self.shift();
        fs::copy(self.path("messages"), self.path("messages.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path("messages"))
            .unwrap();
    }

    /// Compresses every uncompressed rotated file but the newest (logrotate's delaycompress);
    /// with `all`, the newest too.
    fn compress(&mut self, all: bool) {
        self.flush_renamed();
        for (n, gz) in self.rotated() {
            if gz || (n == 1 && !all) {
                continue;
            }
            let plain = self.path(&Self::name(n, false));
            let bytes = fs::read(&plain).unwrap();
            let out = fs::File::create(self.path(&Self::name(n, true))).unwrap();
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            enc.finish().unwrap();
            fs::remove_file(plain).unwrap();
        }
    }

    /// Removes the oldest rotated file (only ever after a run has read it).
    fn delete_oldest(&mut self) {
        // The daemon has not finished its line in the renamed file: no run has read it.
        if self.renamed_partial.is_some() {
            return;
        }
        if let Some((n, gz)) = self.rotated().last().copied() {
            fs::remove_file(self.path(&Self::name(n, gz))).unwrap();
        }
    }

    fn run(&self) {
        self.setup.run(&["run"]).ok();
    }

    /// Hits per IP in the state database.
    fn observed(&self) -> BTreeMap<String, u64> {
        observed_hits(&self.setup)
    }

    /// Every line counted once, every attacker in exactly one report.
    fn check(&mut self) {
        self.finish_line();
        self.run();
        assert_eq!(
            self.observed(),
            self.written,
            "hits per IP equal the lines written"
        );
        let reports = self.setup.reported();
        let mut all: Vec<String> = reports.into_iter().flatten().collect();
        all.sort();
        let mut expected: Vec<String> = self.written.keys().cloned().collect();
        expected.sort();
        assert_eq!(all, expected, "each attacker reported exactly once");
    }
}

#[test]
fn plain_append_reads_only_new_lines() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(4, false);
    log.run();
    log.append(2, false);
    log.check();
}

#[test]
fn rename_rotation_with_lines_written_after_the_rename() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    log.rename_rotate(true);
    log.append_to_renamed(2);
    log.append(3, false);
    log.check();
}

#[test]
fn copytruncate_finishes_the_copy_then_reads_from_the_start() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    log.copy_truncate();
    log.append(4, false);
    log.check();
}

#[test]
fn rotated_file_compressed_before_it_was_finished_is_read_inside_the_gzip() {
    let mut log = Log::new(false);
    log.append(4, false);
    log.run();
    log.append(3, false);
    log.rename_rotate(true);
    log.compress(true);
    assert!(log.path("messages.1.gz").exists());
    log.append(2, false);
    log.check();
    // And never again afterwards.
    log.run();
    assert_eq!(log.observed(), log.written);
}

#[test]
fn delaycompress_and_two_rotations_between_runs() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    log.rename_rotate(true);
    log.append(2, false);
    log.rename_rotate(true);
    log.compress(false);
    assert!(log.path("messages.2.gz").exists() && log.path("messages.1").exists());
    log.append(1, false);
    log.check();
}

/// The configured path is a link to the live file, which is rotated beside itself: the lines
/// written to it after the last run, and to it once renamed, are read from where it went.
#[test]
fn a_source_that_is_a_link_finds_the_file_rotated_where_it_points() {
    let mut log = Log::behind_a_link();
    log.append(3, false);
    log.run();
    log.append(2, false);
    log.rename_rotate(true);
    log.append_to_renamed(2);
    log.append(3, false);
    log.run();
    log.append(1, false);
    log.rename_rotate(true);
    log.compress(true);
    log.append(2, false);
    log.check();
}

/// A link moved on to the next dated file at midnight: what the old file got after the last
/// run is read from where the cursor stopped (the file is found in its folder by what it is,
/// whatever its name), then the new one from its start; every line once.
#[test]
fn a_link_moved_on_to_a_new_dated_file_finishes_the_old_one() {
    let mut log = Log::behind_a_link();
    log.append(3, false);
    log.run();
    log.append(2, false);
    // The daemon opens the next day's file; the link moves on to it.
    let today = log.path("messages");
    fs::rename(&today, log.path("fw-2026-01-25.log")).unwrap();
    fs::write(log.path("fw-2026-01-26.log"), "").unwrap();
    fs::remove_file(log.setup.path("current/messages")).unwrap();
    std::os::unix::fs::symlink(
        "../logs/fw-2026-01-26.log",
        log.setup.path("current/messages"),
    )
    .unwrap();
    // Lines go to the new file through a name the test writes by: `messages`.
    std::os::unix::fs::symlink("fw-2026-01-26.log", &today).unwrap();
    log.append(3, false);
    log.check();
}

/// The log's folder copied to another disk (`rsync -a`, a restore from a backup, `cp -p` and
/// `mv`, `sed -i`): every file on another inode with the same text, a rotated `.gz`
/// compressed again at another level. The live file is read on from the cursor, and the
/// rotated ones are not read again: every packet was counted twice (a two-packet address
/// reported), and a warning said the text read last was nowhere.
#[test]
fn a_log_folder_copied_to_new_inodes_is_read_on_not_again() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.rename_rotate(true);
    log.append(3, false);
    log.rename_rotate(true);
    log.compress(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    let spare = log.setup.path("copy");
    for entry in fs::read_dir(log.setup.path("logs")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, &spare).unwrap();
        fs::rename(&spare, &path).unwrap();
    }
    let gz = log.path("messages.2.gz");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&gz).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let mut again = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    again.write_all(&text).unwrap();
    fs::write(&spare, again.finish().unwrap()).unwrap();
    fs::rename(&spare, &gz).unwrap();
    log.append(1, false);
    let out = log.setup.run(&["run"]).ok();
    assert!(
        !out.stderr.contains("is neither in the file"),
        "{}",
        out.stderr
    );
    log.check();
}

/// A source's path changed to a copy of the log it read (the log folder moved to another
/// disk and the configuration changed to the new place; the old copy left or removed): the
/// copy is read on from where the runs stopped. Each packet was counted a second time, with
/// nothing said: two-packet addresses below `min_hits = 3` were reported as four-packet ones.
#[test]
fn a_source_changed_to_a_copy_of_its_log_is_read_on_not_again() {
    for keep_old in [false, true] {
        let config = standard_config("").replace("min_hits = 1", "min_hits = 3");
        let s = Setup::new(&config);
        let ips = ["3.5.140.2", "3.5.140.3", "34.223.47.190"];
        let twice: String = (ips.iter().enumerate())
            .flat_map(|(i, ip)| {
                [
                    drop_line(&format!("10:00:0{i}"), ip, "TCP", 22),
                    drop_line(&format!("10:00:1{i}"), ip, "TCP", 22),
                ]
            })
            .collect();
        s.write("messages", &twice);
        s.run(&["run"]).ok();
        assert!(s.outbox().is_empty(), "below min_hits");
        fs::create_dir(s.path("disk2")).unwrap();
        fs::copy(s.path("messages"), s.path("disk2/messages")).unwrap();
        if !keep_old {
            fs::remove_file(s.path("messages")).unwrap();
        }
        s.reconfigure(&config.replace("{dir}/messages", "{dir}/disk2/messages"));
        let out = s.run(&["-v", "run"]).ok();
        assert!(
            s.outbox().is_empty(),
            "{keep_old}: counted again: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("read on from there"),
            "{keep_old}: {}",
            out.stderr
        );
        // The third packet of one of them, logged to the new place, reaches `min_hits`.
        s.append("disk2/messages", &drop_line("10:00:30", ips[0], "TCP", 22));
        s.run(&["run"]).ok();
        assert_eq!(s.reported(), vec![vec![ips[0].to_string()]], "{keep_old}");
        let text = fs::read_to_string(&s.outbox()[0]).unwrap();
        let packets = (text.lines())
            .find_map(|l| l.trim().strip_prefix("Packets:"))
            .map(str::trim);
        assert_eq!(packets, Some("3 dropped"), "{keep_old}: {text}");
    }
}

/// Two logs a daemon rotates together (`kern.log` and `ufw.log`) begin with the same packet
/// line, and hold other lines after it: a source changed from one to the other is no copy.
/// Taken for one, the new file was read from the start and the old one's rest read on too,
/// each packet counted twice.
#[test]
fn a_sister_log_that_begins_with_the_same_line_is_no_copy() {
    let config = standard_config("").replace("{dir}/messages", "{dir}/kern.log");
    let s = Setup::new(&config);
    let first = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    let kernel = "Jan 25 10:00:01 web1 kernel: [810294.9] eth0: link up\n";
    s.write("kern.log", &format!("{first}{kernel}{kernel}"));
    s.write("ufw.log", &first);
    s.run(&["run"]).ok();
    let more = drop_line("10:00:05", "34.223.47.190", "TCP", 22);
    s.append("kern.log", &more);
    s.append("ufw.log", &more);
    s.reconfigure(&config.replace("{dir}/kern.log", "{dir}/ufw.log"));
    let out = s.run(&["-v", "run"]).ok();
    assert!(!out.stderr.contains("read on from there"), "{}", out.stderr);
    let json = s.run(&["history", "--json"]).ok().json();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    // Each address's packets as logged: one each, not two.
    let text: String = (s.outbox().iter())
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    assert!(!text.contains("Packets:  2"), "{text}");
}

/// Rotated `.gz` files compressed again at another level (`gzip -9`, `pigz`, to save
/// space): the same text on other inodes, in other bytes. Not read again: what lay past the
/// compressed size they had when known was counted a second time.
#[test]
fn rotated_files_compressed_again_are_not_read_again() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/logs/fw.log"));
    fs::create_dir(s.path("logs")).unwrap();
    let mut n = 0;
    let mut append = |count: u32| {
        let mut text = String::new();
        for _ in 0..count {
            n += 1;
            text += &format!(
                "2026-01-25T10:00:{:02}.{n:06}+00:00 host kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.{n} DST=198.51.100.10 LEN=60 PROTO=TCP SPT=40000 DPT=22 \n",
                n % 60
            );
        }
        s.append("logs/fw.log", &text);
    };
    let gzip = |text: &[u8], level| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(text).unwrap();
        enc.finish().unwrap()
    };
    // logrotate with `compress` and `delaycompress`: `fw.log.1` plain, the older ones `.gz`.
    let rotate = || {
        for k in (2..=3).rev() {
            let from = s.path(&format!("logs/fw.log.{k}.gz"));
            if from.exists() {
                fs::rename(from, s.path(&format!("logs/fw.log.{}.gz", k + 1))).unwrap();
            }
        }
        if let Ok(text) = fs::read(s.path("logs/fw.log.1")) {
            fs::write(s.path("logs/fw.log.2.gz"), gzip(&text, 6)).unwrap();
            fs::remove_file(s.path("logs/fw.log.1")).unwrap();
        }
        fs::rename(s.path("logs/fw.log"), s.path("logs/fw.log.1")).unwrap();
        fs::write(s.path("logs/fw.log"), "").unwrap();
    };
    append(5);
    s.run(&["run"]).ok();
    for _ in 0..3 {
        append(3);
        rotate();
        s.run(&["run"]).ok();
    }
    for k in [2, 3] {
        let path = s.path(&format!("logs/fw.log.{k}.gz"));
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(fs::File::open(&path).unwrap())
            .read_to_end(&mut text)
            .unwrap();
        fs::write(s.path("again"), gzip(&text, 9)).unwrap();
        fs::rename(s.path("again"), &path).unwrap();
    }
    append(1);
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.len(), 15);
    assert!(hits.values().all(|h| *h == 1), "{hits:?}");
}

/// `count` drop lines, each from an address of its own (`3.5.140.N`, `N` counting on from
/// `n`), a second apart.
fn fresh_lines(n: &mut u32, count: u32) -> String {
    let mut text = String::new();
    for _ in 0..count {
        *n += 1;
        text += &drop_line(
            &format!("10:00:{:02}", *n % 60),
            &format!("3.5.140.{n}"),
            "TCP",
            22,
        );
    }
    text
}

/// Every one of the first `written` addresses of [`fresh_lines`] was counted, each once.
fn each_counted_once(s: &Setup, written: u32) {
    let hits = observed_hits(s);
    assert_eq!(hits.len() as u32, written, "{hits:?}");
    assert!(hits.values().all(|h| *h == 1), "{hits:?}");
}

/// The log edited by hand between runs (`sed -i` deleting a line, which writes a new file
/// on a new inode): the same log, begun as before, but other bytes where the runs had read.
/// The packets the runs counted are passed over by their time, as after a file cut back in
/// place: it was read again whole, every packet counted twice, with a warning that the text
/// read last was nowhere.
#[test]
fn a_log_edited_by_hand_is_not_counted_again() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/logs/fw.log"));
    fs::create_dir(s.path("logs")).unwrap();
    let mut n = 0;
    let first = fresh_lines(&mut n, 4);
    s.write("logs/fw.log", &first);
    s.run(&["run"]).ok();
    let kept: Vec<&str> = (first.lines())
        .filter(|l| !l.contains("SRC=3.5.140.2 "))
        .collect();
    s.write("logs/.edit", &(kept.join("\n") + "\n"));
    fs::rename(s.path("logs/.edit"), s.path("logs/fw.log")).unwrap();
    s.append("logs/fw.log", &fresh_lines(&mut n, 2));
    let out = s.run(&["run"]).ok();
    assert!(
        !out.stderr.contains("is neither in the file"),
        "{}",
        out.stderr
    );
    each_counted_once(&s, n);
}

/// A source that is a link the daemon moves each midnight to a new dated file (`fw.log ->
/// fw-20260121.log`), and a run that comes while the new day's file is still empty: that
/// day's lines are read once the link has moved on again, and the lines the day before got
/// late too. The cursor stayed on the day before, and once the link moved on the empty
/// day's file was no file any run looked at (a dated file is no rotated file of the next):
/// its lines were lost unsaid.
#[test]
fn a_link_moved_on_to_dated_files_loses_no_day() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/logs/fw.log"));
    fs::create_dir(s.path("logs")).unwrap();
    let new_day = |day: u32| {
        let name = format!("fw-202601{day:02}.log");
        fs::write(s.path(&format!("logs/{name}")), "").unwrap();
        let link = s.path("logs/.fw.log");
        std::os::unix::fs::symlink(&name, &link).unwrap();
        fs::rename(&link, s.path("logs/fw.log")).unwrap();
    };
    let mut n = 0;
    let mut log = |day: u32, count: u32| {
        s.append(
            &format!("logs/fw-202601{day:02}.log"),
            &fresh_lines(&mut n, count),
        );
        n
    };
    new_day(20);
    log(20, 2);
    s.run(&["run"]).ok();
    new_day(21);
    s.run(&["run"]).ok();
    log(20, 1);
    log(21, 3);
    new_day(22);
    let written = log(22, 1);
    s.run(&["run"]).ok();
    each_counted_once(&s, written);
}

/// logrotate's `copy` with `compress` (and `rotate 2`): each rotation compresses a copy of
/// the log and leaves the log as it was. The copies' text is the log's, counted once, there:
/// a first read counted every packet twice (a two-packet address reported as four), and once
/// the oldest copy was deleted every run counted the newest copy again.
#[test]
fn copies_that_logrotate_compresses_are_not_counted_again() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/logs/fw.log"));
    fs::create_dir(s.path("logs")).unwrap();
    let mut n = 0;
    let mut append = |count: u32| {
        s.append("logs/fw.log", &fresh_lines(&mut n, count));
        n
    };
    let copy = || {
        let _ = fs::remove_file(s.path("logs/fw.log.2.gz"));
        if s.path("logs/fw.log.1.gz").exists() {
            fs::rename(s.path("logs/fw.log.1.gz"), s.path("logs/fw.log.2.gz")).unwrap();
        }
        let text = fs::read(s.path("logs/fw.log")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        fs::write(s.path("logs/fw.log.1.gz"), enc.finish().unwrap()).unwrap();
    };
    append(2);
    copy();
    let written = append(1);
    s.run(&["run"]).ok();
    each_counted_once(&s, written);
    for _ in 0..4 {
        let written = append(1);
        copy();
        s.run(&["run"]).ok();
        each_counted_once(&s, written);
    }
}

/// Two hosts' links to dated files in one folder (`web1.log -> web1-20260121.log`, `web2.log
/// -> web2-20260121.log`), read by daily runs: each source reads its own files alone, files
/// of the other named alike but for their digits included (a look for such files between
/// two days counted the other host's lines twice).
#[test]
fn links_to_dated_files_of_two_hosts_read_their_own_alone() {
    let s = Setup::new(&standard_config("").replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/logs/web1.log\"\n\n[[source]]\npath = \"{dir}/logs/web2.log\"",
    ));
    fs::create_dir(s.path("logs")).unwrap();
    let mut n = 0;
    for day in 20..24u32 {
        for host in ["web1", "web2"] {
            let name = format!("{host}-202601{day:02}.log");
            fs::write(s.path(&format!("logs/{name}")), fresh_lines(&mut n, 2)).unwrap();
            let link = s.path("logs/.link");
            std::os::unix::fs::symlink(&name, &link).unwrap();
            fs::rename(&link, s.path(&format!("logs/{host}.log"))).unwrap();
        }
        s.run(&["run"]).ok();
        each_counted_once(&s, n);
    }
}

/// Whether a run of `setup` with `args` says a source has no file at its path.
fn says_no_file(setup: &Setup, args: &[&str]) -> bool {
    let out = setup.run(args).ok();
    out.stderr.contains("no file at the path now")
}

/// A log that is not at its path any more (renamed away, nothing made in its place) is said
/// on every run, not only with `-v`: unattended, it would read nothing for ever unnoticed.
#[test]
fn a_source_with_no_file_at_its_path_is_said_on_every_run() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.rename_rotate(false);
    assert!(says_no_file(&log.setup, &["run"]));
    assert!(says_no_file(&log.setup, &["run"]));
    assert!(!says_no_file(&log.setup, &["-q", "run"]));
}

/// A file a glob matched and that went (a host retired, a dated file past its retention) is
/// let go of without a word: only a configured path is said when its file is missing, and a
/// glob when it matches no file at all.
#[test]
fn a_file_a_glob_matched_that_went_is_not_said_on_every_run() {
    let s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/hosts/*/kern.log\"",
    ));
    for host in ["web1", "old"] {
        let dir = s.path("hosts").join(host);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("kern.log"),
            drop_line("10:00:00", IPS[0], "TCP", 22),
        )
        .unwrap();
    }
    s.run(&["run"]).ok();
    fs::remove_dir_all(s.path("hosts").join("old")).unwrap();
    assert!(!says_no_file(&s, &["run"]));
    assert!(!says_no_file(&s, &["run"]));
    // Every file it matched gone (the log host's folder renamed): the source reads nothing
    // for ever, and that is said on every run but under `-q` (the run said nothing).
    fs::rename(s.path("hosts"), s.path("hosts-moved")).unwrap();
    let no_match = |args: &[&str]| {
        let out = s.run(args).ok();
        out.stderr
            .contains("no file matches it now (the files it matched are gone")
    };
    assert!(no_match(&["run"]));
    assert!(no_match(&["run"]));
    assert!(!no_match(&["-q", "run"]));
}

#[test]
fn file_missing_for_a_while() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    log.rename_rotate(false);
    log.run();
    log.run();
    log.append(2, false);
    log.check();
}

#[test]
fn unrelated_file_on_a_reused_inode_is_read_from_the_start() {
    let mut log = Log::new(false);
    log.append(5, false);
    log.run();
    // Removed and replaced by a new, shorter file: the inode number may well be reused.
    fs::remove_file(log.path("messages")).unwrap();
    fs::write(log.path("messages"), "").unwrap();
    log.append(2, false);
    log.check();
}

#[test]
fn last_line_without_newline_waits_for_the_next_run() {
    let mut log = Log::new(false);
    log.append(3, true);
    log.run();
    let before: u64 = log.observed().values().sum();
    assert_eq!(before, 2, "the unfinished line is not counted yet");
    log.append(1, false);
    log.check();
}

#[test]
fn start_at_end_skips_history() {
    let mut log = Log::new(true);
    log.append(5, false);
    log.written.clear();
    log.run();
    assert!(log.observed().is_empty());
    log.append(2, false);
    log.check();
}

#[test]
fn first_run_reads_rotated_history_oldest_first() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.rename_rotate(true);
    log.append(2, false);
    log.rename_rotate(true);
    log.append(4, false);
    log.rename_rotate(true);
    log.compress(false);
    assert!(log.path("messages.3.gz").exists() && log.path("messages.1").exists());
    log.append(1, false);
    // The first run ever: every rotated file and the live one, each line once.
    log.check();
    let out = log.setup.run(&["run"]).ok();
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
}

#[test]
fn start_at_end_skips_rotated_history_too() {
    let mut log = Log::new(true);
    log.append(3, false);
    log.rename_rotate(true);
    log.compress(true);
    log.append(2, false);
    log.written.clear();
    log.run();
    assert!(log.observed().is_empty());
    log.append(2, false);
    log.check();
}

#[test]
fn compressed_path_is_read_decompressed() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/messages.gz"));
    let text: String = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), IPS[0], "TCP", 22))
        .collect();
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(s.path("messages.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 3);
    let check = s.run(&["check"]).ok();
    assert!(
        check.stdout.contains("3 of the last 3 lines carry"),
        "{}",
        check.stdout
    );
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec![IPS[0].to_string()]]);
    let again = s.run(&["run"]).ok();
    assert!(again.stderr.contains("read 0 lines"), "{}", again.stderr);
}

#[test]
fn since_skips_old_packets() {
    let mut log = Log::new(false);
    log.append(3, false);
    // The clock is 2026-01-26T08:00Z; the lines are from 2026-01-25 00:00:01 on.
    // Lines passed over by `--since` parsed: matched, as the summary defines it, not counted.
    let v = (log.setup.run(&["preview", "--since", "2h", "--json"]).ok()).json();
    assert_eq!(v["summary"]["lines_matched"], 3, "{v}");
    assert_eq!(v["summary"]["ips_observed"], 0, "{v}");
    let out = log.setup.run(&["run", "--since", "2h"]).ok();
    assert!(log.observed().is_empty());
    // The summary line says why nothing was counted.
    assert!(
        out.stderr
            .contains("3 lines logged before the time --since gave"),
        "{}",
        out.stderr
    );
    let out = log.setup.run(&["preview", "--since", "2x"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("unknown unit"), "{}", out.stderr);
}

#[test]
fn glob_source_follows_every_host_and_keeps_host_names() {
    let s = Setup::new(&standard_config("").replace("{dir}/messages", "{dir}/remote/*/messages"));
    for (host, ip) in [("web1", "3.5.140.2"), ("dns1", "34.223.47.190")] {
        fs::create_dir_all(s.path(&format!("remote/{host}"))).unwrap();
        let line = |time| drop_line(time, ip, "UDP", 53).replace(" web1 ", &format!(" {host} "));
        s.write(&format!("remote/{host}/messages"), &line("10:00:00"));
        s.write(&format!("remote/{host}/messages.1"), &line("09:59:00"));
    }
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        v["summary"]["lines_matched"], 4,
        "each host's rotated file is read once, as the history of its live file, not as a source of its own"
    );
    let excerpt = v["reports"][0]["excerpt"].to_string();
    assert!(
        excerpt.contains(" web1 kernel:") && excerpt.contains(" dns1 kernel:"),
        "{excerpt}"
    );
    s.run(&["run"]).ok();
    let eml = fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(eml.contains(" dns1 kernel:"));
}

/// The standard setup with a journald source, read through [`fake_journalctl`].
fn journald_setup() -> Setup {
    let mut s =
        Setup::new(&standard_config("").replace("path = \"{dir}/messages\"", "journald = true"));
    let path = fake_journalctl(&s);
    s.env.push(("PATH".into(), path));
    s
}

/// A stand-in `journalctl` that prints journal export JSON after `--after-cursor`.
fn fake_journalctl(s: &Setup) -> String {
    let script = format!(
        r#"#!/bin/sh
after=""
for a in "$@"; do case "$a" in --after-cursor=*) after="${{a#--after-cursor=}}";; --version) echo "systemd 252"; exit 0;; esac; done
if [ -z "$after" ]; then cat {dir}/journal.json; exit 0; fi
awk -v c="\"__CURSOR\":\"$after\"" 'found {{ print }} index($0, c) {{ found = 1 }}' {dir}/journal.json
"#,
        dir = s.dir.path().display()
    );
    s.write_program("bin/journalctl", &script);
    format!(
        "{}:{}",
        s.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn journal_entry(n: u32, ip: &str) -> String {
    let micros = 1_769_385_085_000_000u64 + u64::from(n) * 1_000_000;
    serde_json::json!({
        "__CURSOR": format!("s=9f1c2e;i={n:x};b=77aa;m={n:x};t={micros:x};x=0"),
        "__REALTIME_TIMESTAMP": micros.to_string(),
        "__MONOTONIC_TIMESTAMP": (810_294_788_657u64 + u64::from(n)).to_string(),
        "_BOOT_ID": "77aa5e1ac3b54a9fa4ffb06b0b1a7f3e",
        "_TRANSPORT": "kernel",
        "PRIORITY": "4",
        "SYSLOG_FACILITY": "0",
        "SYSLOG_IDENTIFIER": "kernel",
        "_HOSTNAME": "web1",
        "MESSAGE": format!("INPUT-DROP:IN=eth0 OUT= MAC=52:54:00:12:34:56:fe:54:00:ab:cd:ef:08:00 SRC={ip} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=UDP SPT=4000 DPT=53 LEN=40 "),
    })
    .to_string()
}

/// A journald source's first read with entries and none that carries its prefix (a wrong
/// one) is said as a file's is, with the way back: the cursor moved on past them unsaid; and
/// `check` says the prefix carries nothing, as for a file.
#[test]
fn a_journald_first_read_that_matches_nothing_is_said() {
    let mut s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "journald = true\nprefixes = [\"UFW BLOCK:\"]",
    ));
    let path = fake_journalctl(&s);
    s.env.push(("PATH".into(), path));
    let entries: String = (1..=3).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &entries);
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr
            .contains("source journald: first read, 3 lines, none carries \"UFW BLOCK:\"")
            && out.stderr.contains("reread --source journald"),
        "{}",
        out.stderr
    );
    // Said of the first read alone: the next run reads on from the cursor.
    let again = s.run(&["run"]).ok();
    assert!(!again.stderr.contains("first read"), "{}", again.stderr);
    // `check` judges the prefixes by the journal's last kernel messages, as by a file's end
    // (it said "journalctl runs" and all was well).
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("journald: none of the last 3 kernel messages carries \"UFW BLOCK:\""),
        "{}",
        check.stdout
    );
    s.reconfigure(&standard_config("").replace("path = \"{dir}/messages\"", "journald = true"));
    let check = s.run(&["check"]).ok();
    assert!(
        check.stdout.contains(
            "journald: 3 of the last 3 kernel messages carry INPUT-DROP:, 3 of them packets"
        ),
        "{}",
        check.stdout
    );
}

#[test]
fn journald_source_reads_from_its_cursor() {
    let s = journald_setup();
    let first: String = (1..=3).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &first);
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["reports"][0]["ips"][0]["hits"], 3);
    let line = v["reports"][0]["excerpt"][0].as_str().unwrap();
    assert!(
        line.starts_with("2026-01-25T23:51:26.000000Z web1 kernel: INPUT-DROP:"),
        "{line}"
    );
    s.run(&["run"]).ok();
    let again = s.run(&["run"]).ok();
    assert!(
        again.stderr.contains("read 0 lines"),
        "a second run reads nothing old: {}",
        again.stderr
    );
    s.append(
        "journal.json",
        &(journal_entry(4, IPS[2]) + "\n" + &journal_entry(5, IPS[0]) + "\n"),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        v["summary"]["lines_read"], 2,
        "only the entries after the cursor"
    );
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec![IPS[2].to_string()], vec![IPS[0].to_string()]]
    );
}

/// The warnings about lines dated ahead of the clock name where they were read: a journal's
/// lines beside a file's were said to be the file's, and `reread --source` named the file
/// for them.
#[test]
fn lines_dated_ahead_in_the_journal_are_said_to_be_the_journals() {
    let mut s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "journald = true\n\n[[source]]\npath = \"{dir}/messages\"",
    ));
    let path = fake_journalctl(&s);
    s.env.push(("PATH".into(), path));
    // The journal's entries are of Jan 25 23:51; the clock is two days before.
    s.now = "2026-01-23T20:00:00Z".into();
    let entries: String = (1..=2).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &entries);
    s.write(
        "messages",
        &drop_line("19:00:00", IPS[0], "TCP", 22).replace("Jan 25", "Jan 23"),
    );
    let out = s.run(&["run"]).ok();
    let far = (out.stderr.lines())
        .find(|l| l.contains("more than a day ahead"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(
        far.contains("2 packet line(s)")
            && far.contains(", in journald: passed over")
            && far.contains("reread --source journald`"),
        "{far}"
    );
}

/// `journal_entry(n, ip)` as rsyslog writes the same kernel message to `kern.log` on `host`:
/// a BSD stamp and the kernel's uptime before the text.
fn kern_log_line(n: u32, ip: &str, host: &str) -> String {
    let entry: serde_json::Value = serde_json::from_str(&journal_entry(n, ip)).unwrap();
    format!(
        "Jan 25 23:51:{:02} {host} kernel: [810294.{n:06}] {}\n",
        25 + n,
        entry["MESSAGE"].as_str().unwrap()
    )
}

/// rsyslog writes the kernel's messages to `kern.log` as journald keeps them: a journald
/// source beside a file source on `kern.log` counts every packet twice. A run that reads
/// packets from both says so, naming the file (not under `-q`); a file of another host's
/// lines of the same packets, or of other packets, is no copy.
#[test]
fn a_file_source_holding_the_journals_packets_is_named() {
    let setup = || {
        let mut s = Setup::new(&standard_config("").replace(
            "path = \"{dir}/messages\"",
            "journald = true\n\n[[source]]\npath = \"{dir}/kern.log\"",
        ));
        let path = fake_journalctl(&s);
        s.env.push(("PATH".into(), path));
        s
    };
    let entries = |range: std::ops::RangeInclusive<u32>| -> String {
        range.map(|n| journal_entry(n, IPS[2]) + "\n").collect()
    };
    let kern = |range: std::ops::RangeInclusive<u32>, host: &str| -> String {
        range.map(|n| kern_log_line(n, IPS[2], host)).collect()
    };
    let s = setup();
    s.write("journal.json", &entries(1..=3));
    s.write(
        "kern.log",
        &format!(
            "Jan 25 23:51:20 web1 kernel: [810290.000001] usb 1-1: new device\n{}",
            kern(1..=3, "web1")
        ),
    );
    let checked = s.run(&["check"]);
    assert!(
        checked.stdout.contains("warning source")
            && checked.stdout.contains("sources journald and ")
            && checked.stdout.contains("kern.log hold the same packets"),
        "{}",
        checked.stdout
    );
    let ran = s.run(&["run"]).ok();
    let warnings: Vec<&str> = (ran.stderr.lines())
        .filter(|l| l.contains("hold the same packets"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", ran.stderr);
    assert!(
        warnings[0].contains("sources journald and ")
            && warnings[0].contains("kern.log hold the same packets")
            && warnings[0].contains("counted twice"),
        "{}",
        warnings[0]
    );
    assert_eq!(observed_hits(&s)[IPS[2]], 6, "both sources counted");
    s.append("journal.json", &entries(4..=4));
    s.append("kern.log", &kern(4..=4, "web1"));
    let quiet = s.run(&["-q", "run"]).ok();
    assert!(!quiet.stderr.contains("same packets"), "{}", quiet.stderr);
    // A file of another host's lines of the same packets (a log host's), or of other packets.
    for other in [kern(1..=3, "web2"), kern_log_line(9, IPS[0], "web1")] {
        let s = setup();
        s.write("journal.json", &entries(1..=3));
        s.write("kern.log", &other);
        let ran = s.run(&["run"]).ok();
        assert!(!ran.stderr.contains("same packets"), "{}", ran.stderr);
        assert!(!s.run(&["check"]).stdout.contains("same packets"));
    }
}

/// Journal export text of one kernel drop line from `ip`, `n` seconds into the test's day,
/// logged in boot `boot` at `monotonic` microseconds after it started.
fn exported_entry(n: u64, boot: &str, monotonic: u64, ip: &str) -> String {
    let realtime = 1_769_385_085_000_000u64 + n * 1_000_000;
    format!(
        "__REALTIME_TIMESTAMP={realtime}\n__MONOTONIC_TIMESTAMP={monotonic}\n_BOOT_ID={boot}\n\
         _TRANSPORT=kernel\nPRIORITY=4\nSYSLOG_FACILITY=0\nSYSLOG_IDENTIFIER=kernel\n_HOSTNAME=web1\n\
         MESSAGE=INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=UDP SPT=4000 DPT=53 LEN=40 \n\n"
    )
}

/// A reboot between two runs, on a real journal (written by systemd-journal-remote, read by
/// the real journalctl): the end of the boot before, logged after the run's cursor, and the
/// new boot's lines are both read. `journalctl -k` means this boot only, and after a cursor
/// of the boot before it gives nothing at all: the source read nothing again, ever.
#[test]
fn a_reboot_between_runs_loses_neither_boots_lines() {
    let remote = [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("systemd-journal-remote");
    if !tool("journalctl", &["--version"]) || !tool(remote, &["--version"]) {
        return;
    }
    let real = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("journalctl"))
                .find(|p| p.is_file())
        })
        .expect("journalctl is on PATH");
    // The boot journalctl takes for "this boot": the machine's own.
    let this_boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let before = "0123456789abcdef0123456789abcdef";
    let mut s =
        Setup::new(&standard_config("").replace("path = \"{dir}/messages\"", "journald = true"));
    let journal = s.path("journal");
    fs::create_dir(&journal).unwrap();
    s.write_program(
        "bin/journalctl",
        &format!(
            "#!/bin/sh\nexec {} -D {} \"$@\"\n",
            real.display(),
            journal.display()
        ),
    );
    let path = format!(
        "{}:{}",
        s.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    s.env.push(("PATH".into(), path));
    let log = |export: &str| {
        let file = s.path("entries.export");
        fs::write(&file, export).unwrap();
        let out = std::process::Command::new(remote)
            .arg(format!(
                "--output={}",
                journal.join("remote.journal").display()
            ))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    log(&[
        exported_entry(1, before, 1_000_000, IPS[0]),
        exported_entry(2, before, 2_000_000, IPS[0]),
    ]
    .concat());
    let first = s.run(&["run"]).ok();
    assert!(first.stderr.contains("read 2 lines"), "{}", first.stderr);
    // The boot before logs once more after the run, then the host reboots.
    log(&[
        exported_entry(3, before, 3_000_000, IPS[1]),
        exported_entry(4, &this_boot, 1_000_000, IPS[2]),
    ]
    .concat());
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_read"], 2, "{v}");
    let mut listed = ip_list(&v["reports"][0]["ips"]);
    listed.sort();
    let mut expected = vec![IPS[1].to_string(), IPS[2].to_string()];
    expected.sort();
    assert_eq!(listed, expected);
    s.run(&["run"]).ok();
    let again = s.run(&["run"]).ok();
    assert!(again.stderr.contains("read 0 lines"), "{}", again.stderr);
}

#[test]
fn journald_reread_reads_the_journal_again_and_sends_nothing_twice() {
    let s = journald_setup();
    let entries: String = (1..=3).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &entries);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    let out = s.run(&["reread", "--source", "journald"]).ok();
    assert_eq!(
        out.stdout,
        "source journald: the next run reads the whole journal again\n"
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 3 lines"), "{}", out.stderr);
    assert!(out.stderr.contains("0 sent"), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 1);
    assert_eq!(
        observed_hits(&s).get(IPS[2]),
        Some(&3),
        "the journal read again counts no packet twice"
    );
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
    // A packet logged after the reread still counts.
    s.append("journal.json", &(journal_entry(4, IPS[2]) + "\n"));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get(IPS[2]), Some(&4));
}

/// A point of a run at which it is killed, and how the test sees the run has reached it.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// The state is open (its WAL file exists): the log is being read.
    StateOpen,
    /// `-v` said what it read from the source: reading is done, nothing committed yet.
    SourceRead,
    /// A message is in the outbox: delivered, perhaps not yet recorded as sent.
    MessageWritten,
}

#[test]
fn killed_mid_ingest_the_next_run_counts_exactly() {
    use std::io::{BufRead, BufReader};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let mut log = Log::new(false);
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&log.next_line(i));
    }
    log.write_live(&text);
    for point in [
        KillPoint::StateOpen,
        KillPoint::SourceRead,
        KillPoint::MessageWritten,
    ] {
        let mut child = log
            .setup
            .command(&["-v", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let read_done = Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().unwrap();
        let flag = read_done.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(": source ") {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        });
        let reached = || match point {
            KillPoint::StateOpen => log.setup.path("state/state.db-wal").exists(),
            KillPoint::SourceRead => read_done.load(Ordering::SeqCst),
            KillPoint::MessageWritten => !log.setup.outbox().is_empty(),
        };
        // Waits for the signal, not for a time: the run is killed where it stands then,
        // or has ended by itself (the next run must count exactly either way).
        let deadline = Instant::now() + Duration::from_secs(120);
        while !reached() && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{point:?} never reached");
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        let _ = child.wait();
        reader.join().unwrap();
        // Start each kill point from scratch but for what the killed runs left behind.
        let _ = fs::remove_dir_all(log.setup.path("outbox"));
    }
    log.append(3, false);
    log.check();
}

/// A run between logrotate's rename and the daemon's reopen finishes the renamed file; the
/// lines the daemon writes to it after that run are read by the next, once, whether or not a
/// new file was at the path yet.
#[test]
fn lines_written_to_the_renamed_file_after_a_run_are_read_once() {
    for create in [true, false] {
        let mut log = Log::new(false);
        log.append(3, false);
        log.run();
        log.rename_rotate(create);
        log.run();
        // The daemon goes on writing to the renamed file, then reopens and writes the new
        // one, before the next run.
        log.append_to_renamed(2);
        log.append(2, false);
        log.run();
        log.append_to_renamed(1);
        log.append(1, false);
        log.check();
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize, bool),
    Rename(bool),
    WriteToRenamed(usize),
    CopyTruncate,
    Compress(bool),
    DeleteOldest,
    Run,
    RenameMidLine(bool),
    WriteToRenamedCut(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6, any::<bool>()).prop_map(|(n, cut)| Op::Append(n, cut)),
        2 => any::<bool>().prop_map(Op::Rename),
        1 => (1usize..3).prop_map(Op::WriteToRenamed),
        1 => Just(Op::CopyTruncate),
        1 => any::<bool>().prop_map(Op::Compress),
        1 => Just(Op::DeleteOldest),
        3 => Just(Op::Run),
        1 => any::<bool>().prop_map(Op::RenameMidLine),
        1 => (0usize..2).prop_map(Op::WriteToRenamedCut),
    ]
}

proptest! {
    // PROPTEST_CASES=500 explores further; CI keeps the suite short.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_rotation_sequence_counts_every_line_once(ops in prop::collection::vec(op(), 1..18)) {
        let mut log = Log::new(false);
        // Installed before the log lives; a first run with no file at all is a config error.
        log.run();
        let mut last_was_run = false;
        // The daemon writes to its renamed file only until it is told to reopen, which
        // logrotate does before anything else touches the files.
        let mut renamed_open = false;
        for op in &ops {
            match *op {
                Op::Append(n, cut) => log.append(n, cut),
                Op::Rename(create) => log.rename_rotate(create),
                Op::WriteToRenamed(n) if renamed_open => log.append_to_renamed(n),
                Op::WriteToRenamed(_) => {}
                Op::CopyTruncate => log.copy_truncate(),
                Op::Compress(all) => log.compress(all),
                // Deleting what no run has read yet would lose lines by design.
                Op::DeleteOldest if last_was_run => log.delete_oldest(),
                Op::DeleteOldest => {}
                Op::Run => log.run(),
                Op::RenameMidLine(create) => log.rename_mid_line(create),
                Op::WriteToRenamedCut(n) if renamed_open => log.append_to_renamed_cut(n),
                Op::WriteToRenamedCut(_) => {}
            }
            last_was_run = matches!(op, Op::Run);
            // A run may come before the daemon reopens (logrotate without delaycompress
            // renames, then signals): its lines still go to the renamed file after that run.
            renamed_open = match op {
                Op::Rename(_) | Op::RenameMidLine(_) => true,
                Op::Append(..)
                | Op::WriteToRenamed(_)
                | Op::WriteToRenamedCut(_)
                | Op::Run => renamed_open,
                // logrotate's delaycompress compresses the older files while the daemon
                // still writes to the newest.
                Op::Compress(false) => renamed_open,
                _ => false,
            };
        }
        log.check();
    }
}
/// A compressed rotated file is deleted, and a new live file gets its inode number: the new
/// file is another file (the known one was compressed, its size no offset into this text),
/// read whole when it is rotated in turn. Found by the sequence test.
#[test]
fn a_plain_file_on_a_compressed_files_inode_is_read_whole() {
    let mut log = Log::new(false);
    log.run();
    log.rename_rotate(false);
    log.compress(true);
    log.run();
    log.delete_oldest();
    log.append(2, false);
    log.rename_rotate(false);
    log.append(1, true);
    log.copy_truncate();
    log.check();
}

/// The daemon had written only part of the first line of its log when logrotate renamed it;
/// a run saw the renamed file that way, then the daemon finished the line, wrote more, and
/// logrotate compressed the file. The `.gz` begins with the whole line, which the part the
/// run remembered is a prefix of: its lines are read, once.
#[test]
fn a_renamed_file_known_by_half_its_first_line_is_read_once_compressed() {
    let mut log = Log::new(false);
    log.run();
    let line = log.next_line(0);
    let (head, tail) = line.split_at(line.len() / 2);
    log.write_live(head);
    log.run();
    fs::rename(log.path("messages"), log.path("messages.1")).unwrap();
    log.append(1, false);
    log.run();
    let more = log.next_line(1);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(log.path("messages.1"))
        .unwrap();
    f.write_all(format!("{tail}{more}").as_bytes()).unwrap();
    drop(f);
    log.compress(true);
    log.check();
}

/// A run comes while logrotate compresses the renamed file: `messages.1` is still there and
/// so is the `.gz` being written (here already whole, as in the moment before gzip removes
/// the plain file). The text is one file's: counted once.
#[test]
fn a_run_during_compression_counts_the_renamed_file_once() {
    for whole in [true, false] {
        let mut log = Log::new(false);
        log.append(3, false);
        log.run();
        log.append(2, false);
        log.rename_rotate(true);
        log.append(1, false);
        let bytes = fs::read(log.path("messages.1")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        let mut gz = enc.finish().unwrap();
        if !whole {
            gz.truncate(gz.len() / 2);
        }
        fs::write(log.path("messages.1.gz"), &gz).unwrap();
        log.run();
        // gzip finishes and removes the plain file.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        fs::write(log.path("messages.1.gz"), enc.finish().unwrap()).unwrap();
        fs::remove_file(log.path("messages.1")).unwrap();
        log.check();
    }
}

/// As above with dated names (logrotate's `dateext`), where siblings are ordered by time:
/// the `.gz` has the plain file's time, and the tie puts it first.
#[test]
fn a_run_during_compression_of_a_dated_file_counts_it_once() {
    let mut log = Log::new(false);
    log.append(3, false);
    log.run();
    log.append(2, false);
    fs::rename(log.path("messages"), log.path("messages-20260126")).unwrap();
    log.append(1, false);
    let bytes = fs::read(log.path("messages-20260126")).unwrap();
    let gz = || {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap()
    };
    // gzip gives the .gz the time of the file it compresses.
    let plain_time = fs::metadata(log.path("messages-20260126"))
        .unwrap()
        .modified()
        .unwrap();
    fs::write(log.path("messages-20260126.gz"), gz()).unwrap();
    fs::File::options()
        .write(true)
        .open(log.path("messages-20260126.gz"))
        .unwrap()
        .set_modified(plain_time)
        .unwrap();
    log.run();
    fs::remove_file(log.path("messages-20260126")).unwrap();
    log.check();
}

/// The same through the sequence model: logrotate renames while the daemon is in the middle
/// of the log's only line, a run sees the renamed file so, and the file is compressed after
/// the daemon finished the line.
#[test]
fn rename_in_the_middle_of_the_first_line_then_compress() {
    let mut log = Log::new(false);
    log.run();
    log.append(1, true);
    log.run();
    log.rename_mid_line(true);
    log.run();
    log.append(1, false);
    log.compress(true);
    log.check();
}

/// As [`a_plain_file_on_a_compressed_files_inode_is_read_whole`], over a state the previous
/// release wrote: its cursor's rotated files have no `gzip` field, so the compressed file it
/// knew reads as a plain one, and a new plain file on its inode number as that file grown.
#[test]
fn a_plain_file_on_a_compressed_files_inode_is_read_whole_over_an_older_state() {
    let mut log = Log::new(false);
    log.run();
    log.rename_rotate(false);
    log.compress(true);
    log.run();
    let db = rusqlite::Connection::open(log.setup.path("state/state.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE cursor SET known_siblings = replace(replace(known_siblings, ',\"gzip\":true', ''), ',\"gzip\":false', '')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    log.delete_oldest();
    log.append(2, false);
    log.rename_rotate(false);
    log.append(1, true);
    log.copy_truncate();
    log.check();
}

/// logrotate rotates an empty log (its default `ifempty`); a run sees the renamed file
/// empty; the daemon writes to it before it reopens; logrotate compresses it (no
/// `delaycompress`), and the log rotates once more before the next run, the new file taking
/// the inode number the plain renamed file had. Known by its inode number alone (it had no
/// first line), the empty file is taken to be still on disk, and its lines in the `.gz` are
/// never read. Found by the sequence model.
#[test]
fn an_empty_renamed_file_written_then_compressed_is_read_when_its_inode_is_reused() {
    let mut log = Log::new(false);
    log.run();
    log.rename_rotate(false);
    log.append(1, false);
    log.run();
    log.append_to_renamed(1);
    log.compress(true);
    log.rename_rotate(false);
    log.append(1, false);
    log.rename_rotate(false);
    log.check();
}

/// `name` compressed as logrotate does it: `name.gz` written, then `name` removed.
fn gzip_in_place(s: &Setup, name: &str) {
    let text = fs::read(s.path(name)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(s.path(&format!("{name}.gz"))).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&text).unwrap();
    gz.finish().unwrap();
    fs::remove_file(s.path(name)).unwrap();
}

/// The log was empty when a run took its cursor (nothing of a first line to know it by).
/// Then it is written to, rotated and compressed at once, and the file system gives its inode
/// number to another log of the folder (`syslog`, rotated next). That file is made later than
/// the cursor's: it is no file of this source, and none of its lines is counted.
#[test]
fn another_log_that_gets_an_empty_logs_inode_number_is_not_read_as_its_history() {
    use std::os::unix::fs::MetadataExt;
    let s = Setup::standard();
    let (mine, other) = ("3.5.140.2", "54.239.28.85");
    s.write("messages", "");
    s.write(
        "syslog",
        "Jan 25 09:00:00 web1 systemd[1]: Started something.\n",
    );
    s.run(&["run"]).ok();
    let before = fs::metadata(s.path("messages")).unwrap().ino();
    let four: String = (0..4)
        .map(|i| drop_line(&format!("10:00:0{i}"), mine, "TCP", 22))
        .collect();
    s.append("messages", &four);
    // logrotate without delaycompress: renamed, a new file made, the old one compressed.
    fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    s.write("messages", "");
    gzip_in_place(&s, "messages.1");
    // The next log of the folder rotated: its new file may get the freed number.
    fs::rename(s.path("syslog"), s.path("syslog.1")).unwrap();
    s.write("syslog", "");
    let reused = fs::metadata(s.path("syslog")).unwrap().ino() == before;
    s.append("syslog", &drop_line("10:01:00", other, "TCP", 22));
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get(mine), Some(&4), "{}", out.stderr);
    assert_eq!(
        hits.get(other),
        None,
        "inode reused: {reused}; {}",
        out.stderr
    );
}

/// `dateext` with `delaycompress`: at the second rotation the older dated file is compressed
/// and the log renamed. A `.gz` made by a tool that gives it its own time looks newer than
/// the file renamed after it, which the cursor was reading: it is known text all the same,
/// and is not read again.
#[test]
fn a_compressed_dated_file_newer_by_its_time_than_the_cursors_is_not_read_again() {
    let s = Setup::standard();
    let (a, b, c) = ("3.5.140.2", "3.5.140.3", "3.5.140.4");
    s.write("messages", &minutes(a, 0, 2));
    s.run(&["run"]).ok();
    fs::rename(s.path("messages"), s.path("messages-20260124")).unwrap();
    s.write("messages", &minutes(b, 10, 2));
    s.run(&["run"]).ok();
    // The next rotation: the older dated file compressed (now), the log renamed.
    gzip_in_place(&s, "messages-20260124");
    fs::rename(s.path("messages"), s.path("messages-20260125")).unwrap();
    s.write("messages", &minutes(c, 20, 2));
    compressed_after_the_newer(&s, "messages-20260124.gz", "messages-20260125");
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!((hits[a], hits[b], hits[c]), (2, 2, 2), "{}", out.stderr);
}

/// Two `dateext` rotations between runs (the timer off for a day), with `delaycompress`: the
/// older dated file is compressed by a tool that gives the `.gz` its own time, later than the
/// newer dated file's. Sorted by time, the newer dated file, which no run had read, came
/// after the one the cursor was in and was taken for older history: never read. Dated names
/// sort as their dates.
#[test]
fn two_dated_rotations_between_runs_are_read_in_their_dates_order() {
    two_dated_rotations_between_runs("-", |s| {
        gzip_in_place(s, "messages-20260124");
        compressed_after_the_newer(s, "messages-20260124.gz", "messages-20260125");
    });
}

/// A run, then two rotations to dated names (`messages{sep}20260124`, then `…25`) before the
/// next run, `meanwhile` done to the files before it: every packet counted once, the newer
/// dated file's too.
fn two_dated_rotations_between_runs(sep: &str, meanwhile: impl FnOnce(&Setup)) {
    let s = Setup::standard();
    let (a, b, c, d) = ("3.5.140.2", "3.5.140.3", "3.5.140.4", "3.5.140.5");
    s.write("messages", &minutes(a, 0, 2));
    s.run(&["run"]).ok();
    s.append("messages", &minutes(b, 2, 2));
    fs::rename(
        s.path("messages"),
        s.path(&format!("messages{sep}20260124")),
    )
    .unwrap();
    s.write("messages", &minutes(c, 10, 2));
    fs::rename(
        s.path("messages"),
        s.path(&format!("messages{sep}20260125")),
    )
    .unwrap();
    s.write("messages", &minutes(d, 20, 2));
    meanwhile(&s);
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(
        (hits.get(a), hits.get(b), hits.get(c), hits.get(d)),
        (Some(&2), Some(&2), Some(&2), Some(&2)),
        "{}",
        out.stderr
    );
}

/// `messages` cut back in place to its first `lines`, as a crash that lost what was not on the
/// disk yet leaves it (`truncate -s`).
fn cut_back_to(s: &Setup, lines: &[String]) {
    let kept: usize = lines.iter().map(String::len).sum();
    let file = fs::File::options()
        .write(true)
        .open(s.path("messages"))
        .unwrap();
    file.set_len(kept as u64).unwrap();
}

/// A log cut back in place, its first line kept (a crash that lost what was not on the disk
/// yet, `truncate -s`), then written on. Written past the cursor, the run read on from the
/// cursor, in the middle of a new line, and the new lines before it were never read;
/// written less, the file was read from its start and the lines left of the earlier read
/// counted twice (an address logged once passed `min_hits = 2`). The file is read from its
/// start, passing over what an earlier run counted.
#[test]
fn a_log_cut_back_in_place_and_written_on_is_read_once() {
    for more in [true, false] {
        let s = Setup::standard();
        let earlier: Vec<String> = (0..10)
            .map(|k| {
                drop_line(
                    &format!("10:0{k}:00"),
                    &format!("3.5.140.{}", 10 + k),
                    "TCP",
                    22,
                )
            })
            .collect();
        s.write("messages", &earlier.concat());
        s.run(&["run"]).ok();
        // The last five lines lost, then new ones.
        cut_back_to(&s, &earlier[..5]);
        let n = if more { 8 } else { 2 };
        let later: String = (0..n)
            .map(|k| {
                drop_line(
                    &format!("11:0{k}:00"),
                    &format!("3.5.140.{}", 100 + k),
                    "TCP",
                    22,
                )
            })
            .collect();
        s.append("messages", &later);
        let out = s.run(&["-v", "run"]).ok();
        let hits = observed_hits(&s);
        for k in 0..10 {
            assert_eq!(
                hits.get(&format!("3.5.140.{}", 10 + k)),
                Some(&1),
                "{more}: {}",
                out.stderr
            );
        }
        for k in 0..n {
            assert_eq!(
                hits.get(&format!("3.5.140.{}", 100 + k)),
                Some(&1),
                "{more}: {}",
                out.stderr
            );
        }
    }
}

/// A log cut back in place and written on so that a new line ends where the cursor is: the
/// byte before the cursor was a line end again, and the run read on from it, never reading the
/// new lines before it (all lines one length: cut back by five, written on by eight). The
/// bytes before the cursor tell the new text from the old, and the file is read from its
/// start, passing over what an earlier run counted.
#[test]
fn a_log_cut_back_and_written_on_to_a_line_end_at_the_cursor_is_read_once() {
    let s = Setup::standard();
    let line = |time: &str, ip: &str| drop_line(time, ip, "TCP", 22);
    let earlier: Vec<String> = (0..10)
        .map(|k| line(&format!("10:0{k}:00"), &format!("3.5.140.{}", 10 + k)))
        .collect();
    s.write("messages", &earlier.concat());
    s.run(&["run"]).ok();
    cut_back_to(&s, &earlier[..5]);
    let later: Vec<String> = (0..8)
        .map(|k| line(&format!("11:0{k}:00"), &format!("3.5.140.{}", 30 + k)))
        .collect();
    assert!(
        later
            .iter()
            .chain(&earlier)
            .all(|l| l.len() == earlier[0].len())
    );
    s.append("messages", &later.concat());
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    for ip in (10..20).chain(30..38).map(|k| format!("3.5.140.{k}")) {
        assert_eq!(hits.get(&ip), Some(&1), "{ip}: {}", out.stderr);
    }
}

/// logrotate's `olddir` (the rotated file moved into another folder) or `rotate 0` (deleted),
/// with lines logged after the last run: the run read the new file from its start and said
/// only "rotated", the lines it could not reach lost without a word. It says so, naming the
/// source, under `-q` too (as cron runs it: said only without `-q`, a loss reached nobody); a
/// rotation beside the log is read on and says nothing of the kind. Rotated into a file in a
/// compression the run cannot read (logrotate's `compress` with `zstd`, no `delaycompress`),
/// the lines are lost as well: said so, naming the file, under `-q` too; and so when the text
/// went to `olddir` while an old such file sits beside the log.
#[test]
fn a_log_rotated_out_of_reach_with_unread_lines_is_said() {
    let line = |time: &str, ip: &str| drop_line(time, ip, "TCP", 22);
    for away in [
        "old/messages.1",
        "messages.1",
        "messages.1.zst",
        "old xz beside",
    ] {
        let s = Setup::standard();
        s.write("messages", &line("10:00:00", "3.5.140.2"));
        s.run(&["run"]).ok();
        s.append("messages", &line("10:00:05", "3.5.140.3"));
        fs::create_dir_all(s.path("old")).unwrap();
        // A folder named like a rotated file holds no text: the warning is still given.
        fs::create_dir_all(s.path("messages.2")).unwrap();
        if away.ends_with(".zst") {
            // Compressed, so a file of its own (its text, as the run cannot read it anyway).
            fs::copy(s.path("messages"), s.path(away)).unwrap();
            fs::remove_file(s.path("messages")).unwrap();
        } else if away == "old xz beside" {
            fs::write(s.path("messages.4.xz"), b"\xfd7zXZ\x00weeks old").unwrap();
            fs::rename(s.path("messages"), s.path("old/messages.1")).unwrap();
        } else {
            fs::rename(s.path("messages"), s.path(away)).unwrap();
        }
        s.write("messages", &line("10:00:09", "3.5.140.4"));
        let out = s.run(&["-q", "run"]).ok();
        let hits = observed_hits(&s);
        assert_eq!(hits.get("3.5.140.4"), Some(&1), "{}", out.stderr);
        let said = out.stderr.contains("were not read");
        if away == "messages.1" {
            assert!(out.stderr.is_empty(), "{}", out.stderr);
            assert_eq!(hits.get("3.5.140.3"), Some(&1), "{}", out.stderr);
        } else if away == "messages.1.zst" {
            assert!(said, "{}", out.stderr);
            assert!(
                out.stderr
                    .contains("messages.1.zst is compressed with zstd"),
                "{}",
                out.stderr
            );
        } else if away == "old xz beside" {
            assert!(said, "{}", out.stderr);
            assert!(
                out.stderr.contains("messages.4.xz is compressed with xz"),
                "{}",
                out.stderr
            );
        } else {
            assert!(said, "{}", out.stderr);
            let warning = (out.stderr.lines())
                .find(|l| l.contains("were not read"))
                .unwrap();
            assert!(warning.contains(&format!("source {}", s.path("messages").display())));
            assert!(warning.contains("olddir"), "{warning}");
        }
    }
}

/// A log rotated out of reach (`olddir`) is said once, not by every run until its new file
/// gets a line (cron mailed the same loss every quarter of an hour of a quiet night): by the
/// run that leaves the text for the new file.
#[test]
fn a_log_rotated_out_of_reach_is_said_once_however_long_its_new_file_stays_empty() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.append("messages", &drop_line("10:00:05", "3.5.140.3", "TCP", 22));
    fs::create_dir_all(s.path("old")).unwrap();
    fs::rename(s.path("messages"), s.path("old/messages.1")).unwrap();
    s.write("messages", "");
    let said_in = |runs: usize| -> usize {
        (0..runs)
            .map(|_| {
                s.run(&["-q", "run"])
                    .ok()
                    .stderr
                    .matches("were not read")
                    .count()
            })
            .sum()
    };
    let mut said = said_in(3);
    s.append("messages", &drop_line("10:00:09", "3.5.140.4", "TCP", 22));
    said += said_in(2);
    assert_eq!(said, 1);
    assert_eq!(observed_hits(&s).get("3.5.140.4"), Some(&1));
}

/// A cursor left on a rotated file it read to its end (the file at the path empty then),
/// that file then compressed with xz at the next rotation or deleted by `rotate 1`: lines a
/// daemon not told of the rotation wrote on to it are lost, and the run cannot know whether
/// there were any. Said once, as that, under `-q` (not as text it had not read).
#[test]
fn a_rotated_file_read_to_its_end_that_then_goes_is_said_once_as_that() {
    let line = |n: u32, ip: &str| drop_line(&format!("10:00:{n:02}"), ip, "TCP", 22);
    for (next, late) in [
        ("xz", false),
        ("rotate 1", false),
        ("xz", true),
        ("rotate 1", true),
    ] {
        let s = Setup::standard();
        s.write("messages", &line(0, "3.5.140.2"));
        let mut said = s.run(&["-q", "run"]).ok().stderr;
        s.append("messages", &line(1, "3.5.140.3"));
        fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
        s.write("messages", "");
        said += &s.run(&["-q", "run"]).ok().stderr;
        assert_eq!(observed_hits(&s).get("3.5.140.3"), Some(&1));
        if late {
            // The daemon, not told yet, writes on to the rotated file.
            s.append("messages.1", &line(5, "18.206.107.24"));
        }
        // The next rotation, the file at the path still empty.
        fs::remove_file(s.path("messages.1")).unwrap();
        if next == "xz" {
            fs::write(s.path("messages.2.xz"), b"\xfd7zXZ\x00text").unwrap();
        }
        fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
        s.write("messages", "");
        said += &s.run(&["-q", "run"]).ok().stderr;
        s.append("messages", &line(2, "3.5.140.4"));
        said += &s.run(&["-q", "run"]).ok().stderr;
        said += &s.run(&["-q", "run"]).ok().stderr;
        assert_eq!(
            said.matches("the rotated file the last run read to its end")
                .count(),
            1,
            "{next}: {said}"
        );
        assert_eq!(observed_hits(&s).get("3.5.140.4"), Some(&1), "{next}");
    }
}

/// A rotated file in a compression the run cannot read, kept beside the log for weeks (xz
/// with `delaycompress`): said on every run that lists it, so not under `-q`, which cron would
/// mail every quarter of an hour for as long as logrotate keeps it; and by `check`, which said
/// every line was ok.
#[test]
fn a_rotated_file_the_run_cannot_read_is_not_said_on_every_quiet_run() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let mut xz = b"\xfd7zXZ\x00".to_vec();
    xz.extend_from_slice(b"old text, read while it was the log");
    fs::write(s.path("messages.2.xz"), xz).unwrap();
    for _ in 0..2 {
        s.append("messages", &drop_line("10:00:05", "3.5.140.3", "TCP", 22));
        let out = s.run(&["-q", "run"]).ok();
        assert!(out.stderr.is_empty(), "{}", out.stderr);
    }
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("compressed with xz"), "{}", out.stderr);
    // `check` says it too: without `delaycompress`, each rotation's last lines are lost.
    let check = s.run(&["check"]).ok();
    assert!(
        check.stdout.contains(&format!(
            "warning source     source {}: rotated file {} is compressed with xz",
            s.path("messages").display(),
            s.path("messages.2.xz").display()
        )),
        "{}",
        check.stdout
    );
    fs::remove_file(s.path("messages.2.xz")).unwrap();
    let check = s.run(&["check"]).ok();
    assert!(
        !check.stdout.contains("compressed with"),
        "{}",
        check.stdout
    );
    // Beside the file a link at the path names, where a run looks.
    fs::create_dir_all(s.path("logs")).unwrap();
    fs::rename(s.path("messages"), s.path("logs/messages")).unwrap();
    std::os::unix::fs::symlink(s.path("logs/messages"), s.path("messages")).unwrap();
    fs::write(s.path("logs/messages.1.zst"), b"\x28\xb5\x2f\xfdold").unwrap();
    let check = s.run(&["check"]).ok();
    assert!(
        check.stdout.contains("compressed with zstd"),
        "{}",
        check.stdout
    );
}

/// A line of junk longer than the read's buffer, still being written when a run came: the run
/// passes over it to the end of the file, and its cursor is inside it. That is no log cut back
/// in place: the next run reads on, and a packet logged in the same second as the last one
/// counted is counted.
#[test]
fn a_cursor_inside_a_line_of_junk_is_no_cut_back() {
    let s = Setup::standard();
    s.write(
        "messages",
        &(drop_line("10:00:00", "3.5.140.2", "TCP", 22) + &"x".repeat(2 << 20)),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &format!("x\n{}", drop_line("10:00:00", "3.5.140.3", "TCP", 22)),
    );
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(
        (hits.get("3.5.140.2"), hits.get("3.5.140.3")),
        (Some(&1), Some(&1)),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("read on from the cursor"),
        "{}",
        out.stderr
    );
}

/// `reread --since` a time after where the last run stopped, in a file compressed since (a
/// new inode): the cursor's file was not found among the rotated ones, the cursor was moved
/// on to the time, and the lines logged between, which no run had read, were passed over.
/// Found by the text it began with, the cursor is left where it is.
#[test]
fn reread_since_finds_the_cursors_file_compressed_since() {
    let s = Setup::standard();
    let at =
        |day: &str, time: &str, ip: &str| drop_line(time, ip, "TCP", 22).replace("Jan 25", day);
    s.write("messages", &at("Jan 22", "09:00:00", "3.5.140.2"));
    s.run(&["run"]).ok();
    s.append("messages", &at("Jan 23", "09:00:00", "3.5.140.3"));
    fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    gzip_in_place(&s, "messages.1");
    s.write(
        "messages",
        &(at("Jan 24", "09:00:00", "3.5.140.4") + &at("Jan 26", "07:00:00", "3.5.140.5")),
    );
    let said = s.reread_since("1d");
    assert!(
        said.stdout.contains("reads on from there"),
        "{}",
        said.stdout
    );
    let out = s.run(&["-v", "run"]).ok();
    let hits = observed_hits(&s);
    for ip in ["3.5.140.2", "3.5.140.3", "3.5.140.4", "3.5.140.5"] {
        assert_eq!(hits.get(ip), Some(&1), "{ip}: {}", out.stderr);
    }
}

/// Dated names with a dot (`dateformat .%Y%m%d`): `messages.20260124` read as logrotate's
/// number 20260124, so the older date sorted as the newer file. Two rotations between runs
/// then left the newer dated file, which no run had read, taken for older history.
#[test]
fn dated_names_with_a_dot_sort_as_dates() {
    two_dated_rotations_between_runs(".", |_| {});
}

/// `gz` given a time a minute from now and `newer` one a minute ago: a compressor that gives
/// its file its own time, after the file rotated after it.
fn compressed_after_the_newer(s: &Setup, gz: &str, newer: &str) {
    let now = std::time::SystemTime::now();
    let minute = std::time::Duration::from_secs(60);
    for (name, time) in [(gz, now + minute), (newer, now - minute)] {
        let file = fs::File::options().write(true).open(s.path(name)).unwrap();
        file.set_modified(time).unwrap();
    }
}

/// The packets of `ip` at minutes `from..from + n` past 10:00, one a minute.
fn minutes(ip: &str, from: u32, n: u32) -> String {
    (from..from + n)
        .map(|m| drop_line(&format!("10:{m:02}:00"), ip, "TCP", 22))
        .collect()
}

/// logrotate's `copytruncate` copies the log to `messages.1`, then truncates it; a run can
/// come between the two. The log was copied and truncated once before with no run after it,
/// so its first line is not the one the cursor knows: it is read from its start, and the
/// copy in the making, which holds nothing but the log's beginning, is not read as well.
#[test]
fn a_run_between_copy_and_truncate_after_an_unseen_copytruncate_counts_every_line_once() {
    run_between_copy_and_truncate(false);
}

/// The same when the run after the first copytruncate saw the log empty (nothing of a first
/// line to know it by): the copy's lines are read once, in the copy.
#[test]
fn a_run_between_copy_and_truncate_after_seeing_the_log_empty_counts_every_line_once() {
    run_between_copy_and_truncate(true);
}

/// Two copytruncates, a run between the second one's copy and its truncate, and one after;
/// `seen_empty`: a run came between the first truncate and the next lines.
fn run_between_copy_and_truncate(seen_empty: bool) {
    let s = Setup::new(&standard_config("min_hits = 3").replace("min_hits = 1\n", ""));
    let (early, late) = ("3.5.140.9", "3.5.140.2");
    s.write("messages", &minutes(early, 0, 1));
    s.run(&["run"]).ok();
    fs::copy(s.path("messages"), s.path("messages.1")).unwrap();
    s.write("messages", "");
    if seen_empty {
        s.run(&["run"]).ok();
    }
    s.append("messages", &minutes(late, 10, 2));
    // copytruncate again: the old copy moves on, the log is copied, and a run comes before
    // the truncate.
    fs::rename(s.path("messages.1"), s.path("messages.2")).unwrap();
    fs::copy(s.path("messages"), s.path("messages.1")).unwrap();
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s)[late], 2, "{}", out.stderr);
    s.write("messages", "");
    s.append("messages", &minutes(late, 20, 1));
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s)[late], 3, "{}", out.stderr);
    assert_eq!(
        s.reported(),
        vec![vec![late.to_string()]],
        "three packets, min_hits 3"
    );
}

/// The same window on a first run (a new installation, or the first after `reread`): the
/// copy logrotate has made so far of the log's beginning is read, and the log after it; once
/// the copy is finished and the log truncated, the rest of the copy is read, once.
#[test]
fn a_first_run_during_a_copytruncate_counts_every_line_once() {
    let s = Setup::new(&standard_config("min_hits = 100").replace("min_hits = 1\n", ""));
    let ip = "3.5.140.2";
    s.write("messages", &minutes(ip, 0, 6));
    // The copy has reached the first four lines when the run comes.
    let text = fs::read(s.path("messages")).unwrap();
    let four = text.split_inclusive(|b| *b == b'\n').take(4).flatten();
    fs::write(s.path("messages.1"), four.copied().collect::<Vec<u8>>()).unwrap();
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s)[ip], 6, "{}", out.stderr);
    // The copy is finished, a line came before the truncate, and one after it.
    s.append("messages", &minutes(ip, 10, 1));
    fs::copy(s.path("messages"), s.path("messages.1")).unwrap();
    s.write("messages", &minutes(ip, 20, 1));
    let out = s.run(&["-v", "run"]).ok();
    assert_eq!(observed_hits(&s)[ip], 8, "{}", out.stderr);
}

/// The names under which `s`'s state keeps a cursor.
fn cursor_names(s: &Setup) -> Vec<String> {
    let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT source FROM cursor ORDER BY source")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A host's folder renamed under a glob (its name now fully qualified): the file is the one
/// read before, under a new name. It is read on from where it was, not again from its start,
/// and the old name's cursor goes.
#[test]
fn a_host_folder_renamed_under_a_glob_is_read_on_not_again() {
    let s = Setup::new(
        &standard_config("min_hits = 3")
            .replace("min_hits = 1\n", "")
            .replace("{dir}/messages", "{dir}/remote/*/messages"),
    );
    fs::create_dir_all(s.path("remote/hosta")).unwrap();
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.write("remote/hosta/messages", &two);
    s.run(&["run"]).ok();
    fs::rename(s.path("remote/hosta"), s.path("remote/hosta.example.org")).unwrap();
    let out = s.run(&["run"]).ok();
    assert!(
        s.outbox().is_empty(),
        "two packets are below min_hits: {}",
        out.stderr
    );
    assert_eq!(observed_hits(&s)["3.5.140.2"], 2);
    assert_eq!(
        cursor_names(&s),
        [s.path("remote/hosta.example.org/messages")
            .to_string_lossy()]
    );
    s.append(
        "remote/hosta.example.org/messages",
        &drop_line("10:00:05", "3.5.140.2", "TCP", 22),
    );
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)["3.5.140.2"], 3);
    assert_eq!(s.reported(), [["3.5.140.2"]]);
}

/// Two sources that name one file (one through a symlink), or a source whose path is spelled
/// anew through a linked folder: the file is read once a run, and on from its cursor.
#[test]
fn one_file_under_two_names_is_read_once() {
    let config = standard_config("min_hits = 3").replace("min_hits = 1\n", "");
    let s = Setup::new(&config.replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/messages\"\n\n[[source]]\npath = \"{dir}/linked/messages\"",
    ));
    std::os::unix::fs::symlink(s.dir.path(), s.path("linked")).unwrap();
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.write("messages", &two);
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read once"), "{}", out.stderr);
    assert!(
        s.outbox().is_empty(),
        "two packets, not four: {}",
        out.stderr
    );
    assert_eq!(observed_hits(&s)["3.5.140.2"], 2);
    s.run(&["run"]).ok();
    assert_eq!(
        observed_hits(&s)["3.5.140.2"],
        2,
        "nothing new, nothing counted"
    );

    // The configuration now names the file only through the link.
    s.reconfigure(&config.replace("{dir}/messages", "{dir}/linked/messages"));
    s.append("messages", &drop_line("10:00:05", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)["3.5.140.2"], 3);
    assert_eq!(s.reported(), [["3.5.140.2"]]);
    assert_eq!(
        cursor_names(&s),
        [s.path("linked/messages").to_string_lossy()]
    );
}

/// Two sources name one file (one through a symlink) for different prefixes (iptables' own
/// and ufw's): the file is read once a run, as the first names it, and the run says which
/// prefix is then not counted and what to do, as `check` does: a line is never counted twice
/// (prefixes are found anywhere in a line, so two prefixes can match one).
#[test]
fn one_file_under_two_sources_for_other_prefixes_is_read_once_and_says_what_is_not_counted() {
    let s = linked_sources(1, &[("linked", r#"["[UFW BLOCK] "]"#)]);
    let ufw =
        drop_line("10:00:01", "18.206.107.24", "TCP", 22).replace("INPUT-DROP:", "[UFW BLOCK] ");
    s.write(
        "messages",
        &(drop_line("10:00:00", "3.5.140.2", "TCP", 22) + &ufw),
    );
    // `check` says it too, and fails on the lines lost (it said both sources were ok).
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("are not counted; give those prefixes to"),
        "{}",
        check.stdout
    );
    let out = s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(
        (hits.get("3.5.140.2"), hits.get("18.206.107.24")),
        (Some(&1), None),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("are not counted; give those prefixes to"),
        "{}",
        out.stderr
    );
}

/// A new name of a file read before, listed first and for more prefixes: the run reads the
/// file under the name that has its cursor, for that name's prefixes, and says the new
/// name's others are not counted, as `check` does (the run said nothing of the lines lost,
/// and `check` named the new name as the one read, exit 0).
#[test]
fn a_new_name_listed_first_for_more_prefixes_is_said_to_lose_them() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    std::os::unix::fs::symlink(s.dir.path(), s.path("linked")).unwrap();
    s.reconfigure(&standard_config("").replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/linked/messages\"\nprefixes = [\"INPUT-DROP:\", \"[UFW BLOCK] \"]\n\n[[source]]\npath = \"{dir}/messages\"",
    ));
    let ufw =
        drop_line("10:00:01", "18.206.107.24", "TCP", 22).replace("INPUT-DROP:", "[UFW BLOCK] ");
    s.append("messages", &ufw);
    let messages = s.path("messages").display().to_string();
    let lost = format!(
        "is the file {messages} names: a run reads it once, as {messages}, so lines with [\"[UFW BLOCK] \"] are not counted"
    );
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stdout.contains(&lost), "{}", check.stdout);
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "is the file {messages} names: read once, as {messages}, so lines with [\"[UFW BLOCK] \"] are not counted"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(observed_hits(&s).get("18.206.107.24"), None);
}

/// A setup whose one source is the glob `fw/*` (min_hits high: nothing is sent).
fn fw_glob() -> Setup {
    let s = Setup::new(
        &standard_config("min_hits = 100")
            .replace("min_hits = 1\n", "")
            .replace("{dir}/messages", "{dir}/fw/*"),
    );
    fs::create_dir_all(s.path("fw")).unwrap();
    s
}

/// Under a glob, logrotate renamed `a.log` to `a.log.1` and the daemon has not made a new
/// `a.log` yet when the run comes: `a.log.1` is `a.log`'s history, read on from its cursor
/// once, not a file of its own.
#[test]
fn under_a_glob_a_file_rotated_before_its_successor_exists_is_read_once() {
    let s = fw_glob();
    let ip = "3.5.140.2";
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), ip, "TCP", 22))
        .collect();
    s.write("fw/a.log", &two);
    s.run(&["run"]).ok();
    s.append("fw/a.log", &drop_line("10:00:05", ip, "TCP", 22));
    fs::rename(s.path("fw/a.log"), s.path("fw/a.log.1")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)[ip], 3, "three lines written");
}

/// The same, then the daemon makes a new `a.log` and logrotate rotates once more: every line
/// of every generation once.
#[test]
fn under_a_glob_two_rotations_count_every_line_once() {
    let s = fw_glob();
    let (a, b, c) = ("3.5.140.2", "3.5.140.3", "3.5.140.4");
    s.write("fw/a.log", &drop_line("10:00:00", a, "TCP", 22));
    s.run(&["run"]).ok();
    fs::rename(s.path("fw/a.log"), s.path("fw/a.log.1")).unwrap();
    s.run(&["run"]).ok();
    s.write("fw/a.log", &drop_line("10:01:00", b, "TCP", 22));
    s.run(&["run"]).ok();
    s.append("fw/a.log", &drop_line("10:01:05", b, "TCP", 22));
    fs::rename(s.path("fw/a.log.1"), s.path("fw/a.log.2")).unwrap();
    fs::rename(s.path("fw/a.log"), s.path("fw/a.log.1")).unwrap();
    s.write("fw/a.log", &drop_line("10:02:00", c, "TCP", 22));
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!((hits[a], hits[b], hits[c]), (1, 2, 1), "{hits:?}");
}

/// A log host's files named by host name under a glob: `web` and `web-1` are two hosts, not
/// a log and its rotated copy. Each is read as a source of its own when either is rotated:
/// every line once, none taken for the other's history.
#[test]
fn hosts_named_alike_under_a_glob_are_each_a_log_of_its_own() {
    let s = fw_glob();
    let (web, web1) = ("3.5.140.2", "3.5.140.3");
    let lines = |ip: &str, from: u32, n: u32| -> String {
        (from..from + n)
            .map(|i| drop_line(&format!("10:{:02}:00", i), ip, "TCP", 22))
            .collect()
    };
    s.write("fw/web", &lines(web, 0, 3));
    s.write("fw/web-1", &lines(web1, 0, 5));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)[web1], 5, "web-1 read once");
    // web is rotated; web-1, written to later, is the newest file beside web.1.
    fs::rename(s.path("fw/web"), s.path("fw/web.1")).unwrap();
    s.write("fw/web", &lines(web, 10, 2));
    s.append("fw/web-1", &lines(web1, 10, 1));
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!((hits[web], hits[web1]), (5, 6), "{hits:?}");
    // web-1 is rotated in turn: its new file is its own, not a file of web's history.
    fs::rename(s.path("fw/web-1"), s.path("fw/web-1.1")).unwrap();
    s.write("fw/web-1", &lines(web1, 20, 4));
    s.run(&["run"]).ok();
    s.append("fw/web-1", &lines(web1, 30, 2));
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!((hits[web], hits[web1]), (5, 12), "{hits:?}");
}

/// Two configured logs of one folder, one named like the other and a word (`fw` and
/// `fw-dmz`): each is read as its own source only, not also as the other's rotated copy.
#[test]
fn a_log_named_like_another_and_a_word_is_no_rotated_copy_of_it() {
    let config = standard_config("").replace(
        "{dir}/messages\"",
        "{dir}/fw\"\n\n[[source]]\npath = \"{dir}/fw-dmz\"",
    );
    let s = Setup::new(&config);
    let (fw, dmz) = ("3.5.140.2", "54.239.28.85");
    s.write("fw", &drop_line("10:00:00", fw, "TCP", 22));
    s.write("fw-dmz", &drop_line("10:00:01", dmz, "TCP", 22));
    s.run(&["run"]).ok();
    s.append("fw-dmz", &drop_line("10:00:02", dmz, "TCP", 22));
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!((hits[fw], hits[dmz]), (1, 2), "{hits:?}");
}

/// `ufw`'s prefix in place of iptables' own.
fn ufw(line: String) -> String {
    line.replace("INPUT-DROP:", "[UFW BLOCK] ")
}

/// A third name of a file, for a prefix a second name already reads it for: read once.
#[test]
fn a_third_name_for_a_prefix_already_read_reads_nothing_twice() {
    let s = linked_sources(
        1,
        &[
            ("linked", r#"["[UFW BLOCK] "]"#),
            ("linked2", r#"["[UFW BLOCK] "]"#),
        ],
    );
    s.write(
        "messages",
        &(drop_line("10:00:00", "3.5.140.2", "TCP", 22)
            + &ufw(drop_line("10:00:01", "18.206.107.24", "TCP", 22))),
    );
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(
        (hits.get("3.5.140.2"), hits.get("18.206.107.24")),
        (Some(&1), None),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("read once"), "{}", out.stderr);
}

/// A second name of a file for a prefix the first reads it for, and one more: not read, and
/// said, rather than each packet of the shared prefix counted twice.
#[test]
fn a_second_name_sharing_a_prefix_is_not_read_and_counts_nothing_twice() {
    let s = linked_sources(2, &[("linked", r#"["INPUT-DROP:", "[UFW BLOCK] "]"#)]);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    counted_once(&s, &out);
    assert!(
        s.outbox().is_empty(),
        "one packet, min_hits 2: {}",
        out.stderr
    );
    assert!(out.stderr.contains("are not counted"), "{}", out.stderr);
}

/// A path and a glob that gives the same path, for other prefixes: one name is one cursor,
/// read once, with the first source's prefixes; the second is said not to be read, and no
/// run loses the first's lines to the second's cursor.
#[test]
fn a_path_and_a_glob_giving_it_are_one_cursor_read_once() {
    let config = standard_config("").replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/messages\"\n\n[[source]]\npath = \"{dir}/mess*\"\nprefixes = [\"[UFW BLOCK] \"]",
    );
    let s = Setup::new(&config);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read once"), "{}", out.stderr);
    s.append(
        "messages",
        &(drop_line("10:00:01", "3.5.140.2", "TCP", 22)
            + &ufw(drop_line("10:00:02", "18.206.107.24", "TCP", 22))),
    );
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get("3.5.140.2"), Some(&2));
    assert_eq!(
        observed_hits(&s).get("18.206.107.24"),
        None,
        "its prefix is read by no source"
    );
}

/// The standard setup with more sources: each a folder linked to the setup's own (so that it
/// names the same `messages`) and the prefixes it is read for.
fn linked_sources(min_hits: u32, links: &[(&str, &str)]) -> Setup {
    let extra: String = links
        .iter()
        .map(|(link, prefixes)| {
            format!("\n\n[[source]]\npath = \"{{dir}}/{link}/messages\"\nprefixes = {prefixes}")
        })
        .collect();
    let config = standard_config("")
        .replace("min_hits = 1\n", &format!("min_hits = {min_hits}\n"))
        .replace(
            "[[source]]\npath = \"{dir}/messages\"",
            &format!("[[source]]\npath = \"{{dir}}/messages\"{extra}"),
        );
    let s = Setup::new(&config);
    for (link, _) in links {
        std::os::unix::fs::symlink(s.dir.path(), s.path(link)).unwrap();
    }
    s
}

/// The one packet of 3.5.140.2 was counted once, whatever the run said.
fn counted_once(s: &Setup, out: &Ran) {
    assert_eq!(
        observed_hits(s).get("3.5.140.2"),
        Some(&1),
        "{}",
        out.stderr
    );
}

/// Prefixes are found anywhere in a line, so two different ones can match one line
/// (`DROP:` is inside `INPUT-DROP:`): a second name of the file for such a prefix does not
/// read it again, and the packet is counted once.
#[test]
fn a_second_name_whose_prefix_is_inside_the_first_counts_nothing_twice() {
    let s = linked_sources(1, &[("linked", r#"["DROP:"]"#)]);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    counted_once(&s, &out);
}

/// A new name of a file already read, listed before the old one: it has no cursor of its
/// own and leaves the file to the old name, which reads on from its cursor; nothing already
/// counted is counted again.
#[test]
fn a_new_name_listed_before_the_old_one_counts_nothing_twice() {
    let s = Setup::standard();
    std::os::unix::fs::symlink(s.dir.path(), s.path("linked")).unwrap();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s).get("3.5.140.2"), Some(&1));
    s.reconfigure(&standard_config("").replace(
        "[[source]]\npath = \"{dir}/messages\"",
        "[[source]]\npath = \"{dir}/linked/messages\"\n\n[[source]]\npath = \"{dir}/messages\"",
    ));
    let out = s.run(&["run"]).ok();
    counted_once(&s, &out);
}

/// A second name of a file is passed over while the first source reads it, and keeps no
/// cursor; once the first source is taken out, the second reads on from where the first
/// stopped, counting nothing the first counted.
#[test]
fn a_name_passed_over_for_runs_reads_nothing_twice_once_the_other_goes() {
    let with = |second_prefixes: &str, first: bool| {
        let mut sources = String::new();
        if first {
            sources.push_str("[[source]]\npath = \"{dir}/messages\"\n\n");
        }
        sources.push_str(&format!(
            "[[source]]\npath = \"{{dir}}/linked/messages\"\nprefixes = [{second_prefixes}]"
        ));
        standard_config("").replace("[[source]]\npath = \"{dir}/messages\"", &sources)
    };
    let s = Setup::new(&with("\"[UFW BLOCK] \"", true));
    std::os::unix::fs::symlink(s.dir.path(), s.path("linked")).unwrap();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    // The second source is given the first's prefix too: passed over, with a warning.
    s.reconfigure(&with("\"INPUT-DROP:\", \"[UFW BLOCK] \"", true));
    s.append("messages", &drop_line("10:00:01", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read once"), "{}", out.stderr);
    assert_eq!(observed_hits(&s).get("3.5.140.2"), Some(&2));
    // The first source is taken out: the second reads on.
    s.reconfigure(&with("\"INPUT-DROP:\", \"[UFW BLOCK] \"", false));
    let out = s.run(&["run"]).ok();
    assert_eq!(
        observed_hits(&s).get("3.5.140.2"),
        Some(&2),
        "the line of 10:00:01 was counted already: {}",
        out.stderr
    );
}

/// A user outside the journal's groups sees no kernel message, and journalctl says so only
/// when not told to be quiet: the run stops, naming the groups, instead of reading nothing on
/// every run.
#[test]
fn a_journal_the_run_may_not_read_stops_the_run() {
    let mut s =
        Setup::new(&standard_config("").replace("path = \"{dir}/messages\"", "journald = true"));
    let script = r#"#!/bin/sh
for a in "$@"; do case "$a" in -q) exit 0;; esac; done
echo "Hint: You are currently not seeing messages from other users and the system." >&2
echo "      Users in groups 'adm', 'systemd-journal' can see all messages." >&2
echo "      Pass -q to turn off this notice." >&2
"#;
    s.write_program("bin/journalctl", script);
    let path = format!(
        "{}:{}",
        s.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    s.env.push(("PATH".into(), path));
    for command in ["preview", "run"] {
        let ran = s.run(&[command]);
        assert_eq!(ran.code, 1, "{command}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("source journald")
                && ran.stderr.contains("systemd-journal or adm group"),
            "{}",
            ran.stderr
        );
    }
    assert!(!s.path("state/state.db").exists() || s.reported().is_empty());
    let checked = s.run(&["check"]);
    assert_eq!(checked.code, 78, "{}", checked.stdout);
    assert!(
        checked.stdout.contains("systemd-journal or adm group"),
        "{}",
        checked.stdout
    );
}

/// A host's folder renamed under a glob source, and its log rotated before the next run: the
/// rotated file is read on from the old name's cursor and the new file from its start, every
/// packet once (found by the inode alone, the cursor was on a file no longer the live one,
/// and the new name read everything again).
#[test]
fn a_host_folder_renamed_and_its_log_rotated_before_a_run_counts_every_packet_once() {
    let s = Setup::new(
        &standard_config("min_hits = 9")
            .replace("min_hits = 1\n", "")
            .replace("{dir}/messages", "{dir}/remote/*/messages"),
    );
    fs::create_dir_all(s.path("remote/hosta")).unwrap();
    let two: String = (0..2)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    s.write("remote/hosta/messages", &two);
    s.run(&["run"]).ok();
    s.append(
        "remote/hosta/messages",
        &drop_line("10:00:05", "3.5.140.2", "TCP", 22),
    );
    fs::rename(
        s.path("remote/hosta/messages"),
        s.path("remote/hosta/messages.1"),
    )
    .unwrap();
    s.write(
        "remote/hosta/messages",
        &drop_line("10:00:06", "3.5.140.2", "TCP", 22),
    );
    fs::rename(s.path("remote/hosta"), s.path("remote/hostb")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)["3.5.140.2"], 4);
    assert_eq!(
        cursor_names(&s),
        [s.path("remote/hostb/messages").to_string_lossy()]
    );
}

/// A journal of many damaged files: journalctl warns about each on stderr (200 KiB of it)
/// before it prints the entries. The run neither stops on a full pipe nor loses the entries;
/// when journalctl then fails, its first words say why.
#[test]
fn journalctl_warning_at_length_stops_no_run() {
    let s = journald_setup();
    let real = s.path("bin/journalctl-real");
    fs::rename(s.path("bin/journalctl"), &real).unwrap();
    let talkative = format!(
        "#!/bin/sh\ni=0\nwhile [ $i -lt 2000 ]; do echo \"Journal file /var/log/journal/x/system@$i.journal~ is truncated, ignoring file.\" >&2; i=$((i+1)); done\n{} \"$@\"\nexit $(cat {}/status 2>/dev/null || echo 0)\n",
        real.display(),
        s.dir.path().display()
    );
    s.write_program("bin/journalctl", &talkative);
    let entries: String = (1..=3).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &entries);
    let v = s.run_bounded(&["preview", "--json"]).ok().json();
    assert_eq!(v["reports"][0]["ips"][0]["hits"], 3);
    s.write("status", "1");
    let failed = s.run_bounded(&["run"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("journalctl exited with")
            && failed.stderr.contains("system@0.journal~ is truncated"),
        "{}",
        failed.stderr
    );
}

/// A journalctl that hangs (a journal on a disk that stopped answering) is stopped once it
/// has printed nothing for `ABUSE_MAILER_JOURNAL_STALL_SECS`: the run fails (1) saying so and
/// lets go of the run lock, rather than holding it for ever while every later run exits 0
/// "in progress". The cursor stays: once journalctl answers, its entries are read and
/// reported. `check` names a journalctl that fails where a run would.
#[test]
fn a_journalctl_that_hangs_is_stopped_and_locks_no_later_run_out() {
    let mut bad = journald_setup();
    bad.env
        .push(("ABUSE_MAILER_JOURNAL_STALL_SECS".into(), "soon".into()));
    let out = bad.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("ABUSE_MAILER_JOURNAL_STALL_SECS=\"soon\""),
        "{}",
        out.stderr
    );
    let mut s = journald_setup();
    s.env
        .push(("ABUSE_MAILER_JOURNAL_STALL_SECS".into(), "1".into()));
    let entries: String = (1..=3).map(|n| journal_entry(n, IPS[2]) + "\n").collect();
    s.write("journal.json", &entries);
    let real = s.path("bin/journalctl-real");
    fs::rename(s.path("bin/journalctl"), &real).unwrap();
    // Hangs after one entry, its output held open by a process the stop does not reach (as
    // one stuck on a dead disk outlives any signal): the read lets it be.
    let hangs = format!(
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --version) echo systemd 252; exit 0;; esac; done\nhead -n 1 {}/journal.json\nsleep 90\n",
        s.dir.path().display()
    );
    s.write_program("bin/journalctl", &hangs);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("journalctl printed nothing for 1 s and was stopped"),
        "{}",
        out.stderr
    );
    assert!(s.reported().is_empty());
    fs::rename(&real, s.path("bin/journalctl")).unwrap();
    // The default deadline again: a busy machine may take longer than a second to start it.
    s.env
        .retain(|(k, _)| k != "ABUSE_MAILER_JOURNAL_STALL_SECS");
    let out = s.run_bounded(&["run"]).ok();
    assert!(!out.stderr.contains("in progress"), "{}", out.stderr);
    assert_eq!(s.reported(), vec![vec![IPS[2].to_string()]]);
    // A journalctl that fails when asked for nothing fails a run: `check` says so.
    s.write_program(
        "bin/journalctl",
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --version) echo systemd 252; exit 0;; esac; done\necho 'Failed to open journal' >&2\nexit 1\n",
    );
    let checked = s.run(&["check"]);
    assert_eq!(checked.code, 1, "{}", checked.stdout);
    assert!(
        checked
            .stdout
            .contains("journalctl -k -n 0 failed: Failed to open journal"),
        "{}",
        checked.stdout
    );
}

/// After `reread`, a rotated file older than the one the cursor was in, that is read after it
/// because it sorts after it by its time (names mixed, numbered and dated: compressed after
/// the switch to `dateext`), is still text earlier runs read: the packets they counted in it
/// are not counted twice (one packet made two, and a report, at `min_hits = 2`).
#[test]
fn reread_holds_an_older_file_read_after_the_cursors_to_what_was_counted() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1\n", "min_hits = 2\n"));
    s.write("messages.1", &drop_line("09:00:00", IPS[2], "TCP", 22));
    s.write("messages", &minutes(IPS[0], 0, 2));
    s.run(&["run"]).ok();
    fs::rename(s.path("messages"), s.path("messages-20260125")).unwrap();
    s.write("messages", &minutes(IPS[0], 30, 1));
    gzip_in_place(&s, "messages.1");
    compressed_after_the_newer(&s, "messages.1.gz", "messages-20260125");
    let messages = s.path("messages");
    s.run(&["reread", "--source", messages.to_str().unwrap()])
        .ok();
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get(IPS[2]), Some(&1), "{}", out.stderr);
    assert_eq!(hits.get(IPS[0]), Some(&3), "{}", out.stderr);
}

/// `reread`, then `reread --since` a time after where the last run stopped, with no run
/// between: the first left no position to tell that by, so the cursor moved on to the time and
/// the lines logged between were never read. It goes back to where the runs had read.
#[test]
fn a_reread_since_after_a_reread_never_moves_past_lines_no_run_read() {
    let s = Setup::standard();
    s.write("messages", &minutes(IPS[0], 0, 2));
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &(drop_line("10:02:00", IPS[2], "TCP", 22) + &drop_line("10:05:00", IPS[0], "TCP", 22)),
    );
    let messages = s.path("messages");
    s.run(&["reread", "--source", messages.to_str().unwrap()])
        .ok();
    // 10:04 on the day before the setup's clock.
    s.reread_since("1316m");
    let out = s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get(IPS[2]), Some(&1), "{}", out.stderr);
    assert_eq!(hits.get(IPS[0]), Some(&3), "{}", out.stderr);
}
