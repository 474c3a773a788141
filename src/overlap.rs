//! Sources that hold the same packets. Ubuntu's rsyslog writes ufw's lines to `ufw.log` and
//! to `kern.log`, Debian's writes the kernel's to `kern.log` and to `syslog`, and a glob such
//! as `/var/log/*.log` may match two such copies: read both, and every packet counts twice,
//! in the hits and in the excerpt a desk is shown. (One file under two names is read once,
//! see `intake`: it is not two copies.)
//! Two copies of one log end in the same lines, so the packet lines at the ends of the files
//! are compared; lines of different hosts (a log host's files) never are the same. The
//! journal holds the kernel's messages that rsyslog writes to `kern.log`, stamped otherwise:
//! a journald source's packet lines are compared with the files' by host and packet text.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use memchr::memmem::Finder;

/// How much of each file's end a run compares: the lines logged last, which two copies of
/// one log both hold when they are read moments apart.
pub const RUN_TAIL_BYTES: u64 = 8 << 10;

/// Two files found to hold the same packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub first: PathBuf,
    pub second: PathBuf,
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sources {} and {} hold the same packets: each packet is counted twice, in its address's hits and in the lines a report shows; read one of them",
            self.first.display(),
            self.second.display()
        )
    }
}

/// The first pair of `files` (each with the prefixes its source reads) whose last `tail` bytes
/// share a line carrying one of those prefixes. A file that cannot be read, or that is one
/// named before (read once), is passed over: reading it is where its error is said.
pub fn shared_packets(files: &[(PathBuf, &[String])], tail: u64) -> Option<Shared> {
    // Each packet line by its hash (of 64 bits: two different lines taken for one cost a
    // warning, and are as likely as a meteor), with the file it was met in. The lines
    // themselves are not kept: a log host's glob matches thousands of files.
    let mut lines: HashMap<u64, usize> = HashMap::new();
    let hasher = RandomState::new();
    for (i, path, finders, sample) in tails(files, tail) {
        for line in lines_of(&sample) {
            if !finders.iter().any(|f| f.find(line).is_some()) {
                continue;
            }
            match *lines.entry(hasher.hash_one(line)).or_insert(i) {
                other if other != i => {
                    return Some(Shared {
                        first: files[other].0.clone(),
                        second: path.clone(),
                    });
                }
                _ => {}
            }
        }
    }
    None
}

/// The packet lines of a journald source's read, the last [`HEARD_LINES`] of them, each by
/// its host and its text from the prefix on: rsyslog writes the same kernel messages to
/// `kern.log` with another stamp (and often the kernel's uptime before the text), so a file
/// source beside the journal counts every packet twice as surely as two files do.
pub struct Heard {
    finders: Vec<Finder<'static>>,
    keys: VecDeque<u64>,
    hasher: RandomState,
}

/// How many of a journal read's packet lines are kept to compare: the last ones, which a
/// copy's end holds too, of a read of any length.
pub const HEARD_LINES: usize = 4096;

impl Heard {
    pub fn new(prefixes: &[String]) -> Self {
        Heard {
            finders: finders(prefixes),
            keys: VecDeque::new(),
            hasher: RandomState::new(),
        }
    }

    /// Takes note of a syslog line the journal's read made, if it carries a packet.
    pub fn note(&mut self, line: &[u8]) {
        if let Some(key) = packet_key(&self.hasher, &self.finders, line) {
            if self.keys.len() == HEARD_LINES {
                self.keys.pop_front();
            }
            self.keys.push_back(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The first of `files` whose last `tail` bytes hold a packet line this read heard: the
    /// same host's same packet, in the journal and in the file.
    pub fn copied_in(&self, files: &[(PathBuf, &[String])], tail: u64) -> Option<Shared> {
        let heard: HashSet<u64> = self.keys.iter().copied().collect();
        for (_, path, finders, sample) in tails(files, tail) {
            let mut lines = lines_of(&sample);
            if lines.any(|line| {
                packet_key(&self.hasher, &finders, line).is_some_and(|k| heard.contains(&k))
            }) {
                return Some(Shared {
                    first: PathBuf::from("journald"),
                    second: path.clone(),
                });
            }
        }
        None
    }
}

/// A packet line's key, whoever stamped it: its host's first label in any case (journald
/// names the host as the system does, rsyslog without its domain) and its text from the first
/// prefix on, without the spaces at its ends. Lines of two hosts never share one, although a
/// broadcast dropped by two hosts of one network prints the same text on both.
fn packet_key(hasher: &RandomState, finders: &[Finder<'_>], line: &[u8]) -> Option<u64> {
    let (host, rest) = crate::parse::host_and_rest(line)?;
    let at = finders.iter().filter_map(|f| f.find(rest)).min()?;
    let label = host.split(|b| *b == b'.').next().unwrap_or(host);
    Some(hasher.hash_one((label.to_ascii_lowercase(), rest[at..].trim_ascii())))
}

fn finders(prefixes: &[String]) -> Vec<Finder<'static>> {
    (prefixes.iter())
        .map(|p| Finder::new(p.as_bytes()).into_owned())
        .collect()
}

/// The last `tail` bytes of each of `files` read once, with its place in `files` and its
/// source's prefix finders.
fn tails<'f>(
    files: &'f [(PathBuf, &[String])],
    tail: u64,
) -> impl Iterator<Item = (usize, &'f PathBuf, Vec<Finder<'static>>, Vec<u8>)> {
    let mut identities: HashSet<(u64, u64)> = HashSet::new();
    (files.iter().enumerate()).filter_map(move |(i, (path, prefixes))| {
        let m = std::fs::metadata(path).ok()?;
        if !identities.insert((m.dev(), m.ino())) {
            return None;
        }
        let sample = crate::source::sample(path, tail).unwrap_or_default();
        Some((i, path, finders(prefixes), sample))
    })
}

/// A sample's lines, as the reader has them: ending at a newline or a crash's NUL bytes, a
/// carriage return before the newline no part of them.
fn lines_of(sample: &[u8]) -> impl Iterator<Item = &[u8]> {
    (sample.split(|b| *b == b'\n' || *b == 0)).map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROP: &str = "INPUT-DROP:";

    fn line(host: &str, second: u32, src: &str) -> String {
        format!(
            "Jan 25 10:00:{second:02} {host} kernel: {DROP}IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=60 PROTO=TCP SPT=40000 DPT=22 \n"
        )
    }

    fn files(dir: &std::path::Path, texts: &[(&str, String)]) -> Vec<PathBuf> {
        (texts.iter())
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect()
    }

    fn with_prefix(paths: &[PathBuf], prefixes: &[String]) -> Vec<(PathBuf, &'static [String])> {
        let prefixes: &'static [String] = Vec::leak(prefixes.to_vec());
        paths.iter().map(|p| (p.clone(), prefixes)).collect()
    }

    #[test]
    fn two_copies_of_one_log_are_found_and_named_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let kern = [line("web1", 1, "3.5.140.2"), line("web1", 2, "3.5.140.3")].concat();
        // ufw.log holds only the packets, syslog some other program's lines between them.
        let syslog = format!("Jan 25 10:00:01 web1 sshd[1]: hello\n{kern}");
        let paths = files(
            dir.path(),
            &[
                ("kern.log", kern.clone()),
                ("other.log", line("web2", 3, "3.5.140.9")),
                ("syslog", syslog),
            ],
        );
        let found = shared_packets(&with_prefix(&paths, &[DROP.to_string()]), RUN_TAIL_BYTES);
        assert_eq!(
            found,
            Some(Shared {
                first: paths[0].clone(),
                second: paths[2].clone(),
            })
        );
        let said = found.unwrap().to_string();
        assert!(
            said.contains("kern.log") && said.contains("syslog") && said.contains("twice"),
            "{said}"
        );
    }

    /// What is not two copies of one log: two hosts' files (a log host's glob), equal lines
    /// that carry no prefix, a packet repeated within one file, an unreadable file, one file
    /// under two names (read once), and a shared line beyond the compared end.
    #[test]
    fn files_of_different_logs_are_not_taken_for_copies() {
        let dir = tempfile::tempdir().unwrap();
        let mark = "Jan 25 10:00:00 web1 -- MARK --\n";
        let same = line("web1", 1, "3.5.140.2");
        let paths = files(
            dir.path(),
            &[
                ("web1.log", format!("{mark}{same}{same}")),
                (
                    "web2.log",
                    format!("{mark}{}", line("web2", 1, "3.5.140.2")),
                ),
            ],
        );
        let link = dir.path().join("current.log");
        std::os::unix::fs::symlink(&paths[0], &link).unwrap();
        let mut all = with_prefix(&paths, &[DROP.to_string()]);
        all.push((dir.path().join("missing.log"), all[0].1));
        all.push((link, all[0].1));
        assert_eq!(shared_packets(&all, RUN_TAIL_BYTES), None);
        // The same packet, but only at the start of a file longer than the compared end.
        let filler = (0..200)
            .map(|i| line("web3", i % 60, "3.5.140.7"))
            .collect::<String>();
        let paths = files(
            dir.path(),
            &[
                ("old.log", format!("{same}{filler}")),
                ("new.log", same.clone()),
            ],
        );
        let pair = with_prefix(&paths, &[DROP.to_string()]);
        assert_eq!(shared_packets(&pair, 4096), None);
        assert!(shared_packets(&pair, 1 << 20).is_some());
    }

    /// A kernel drop line as the journald source makes it of an entry: an RFC 3339 stamp in
    /// UTC, the host as the system names itself, no uptime.
    fn journal_line(host: &str, second: u32, src: &str) -> String {
        format!(
            "2026-01-25T10:00:{second:02}.000000Z {host} kernel: {DROP}IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=60 PROTO=TCP SPT=40000 DPT=22 \n"
        )
    }

    fn heard(lines: &[String]) -> Heard {
        let mut heard = Heard::new(&[DROP.to_string()]);
        for line in lines {
            heard.note(line.as_bytes());
        }
        heard
    }

    #[test]
    fn a_file_holding_the_journals_packets_is_found_however_rsyslog_stamped_them() {
        let dir = tempfile::tempdir().unwrap();
        let journal = heard(&[
            "2026-01-25T09:59:59.000000Z web1 kernel: usb 1-1: new device\n".to_string(),
            journal_line("web1.example.org", 1, "3.5.140.2"),
        ]);
        // rsyslog's kern.log: a BSD stamp, the host without its domain, the kernel's uptime.
        let kern = "Jan 25 10:00:01 web1 kernel: [810294.000001] INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 LEN=60 PROTO=TCP SPT=40000 DPT=22\r\n";
        let paths = files(
            dir.path(),
            &[
                ("other.log", line("web1", 1, "3.5.140.9")),
                (
                    "kern.log",
                    format!("{}{kern}", line("web1", 0, "3.5.140.8")),
                ),
            ],
        );
        let found = journal.copied_in(&with_prefix(&paths, &[DROP.to_string()]), RUN_TAIL_BYTES);
        assert_eq!(
            found,
            Some(Shared {
                first: PathBuf::from("journald"),
                second: paths[1].clone(),
            })
        );
        assert!(
            found
                .unwrap()
                .to_string()
                .starts_with("sources journald and ")
        );
    }

    #[test]
    fn another_hosts_file_or_other_packets_are_no_copy_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = heard(&[journal_line("web1", 1, "3.5.140.2")]);
        assert!(!journal.is_empty());
        let paths = files(
            dir.path(),
            &[
                // The same packet text from another host: a broadcast both dropped.
                ("web2.log", line("web2", 1, "3.5.140.2")),
                ("web1.log", line("web1", 1, "3.5.140.3")),
                // The same line but for its prefix, which this source does not read.
                ("plain.log", line("web1", 1, "3.5.140.2").replace(DROP, "")),
            ],
        );
        let all = with_prefix(&paths, &[DROP.to_string()]);
        assert_eq!(journal.copied_in(&all, RUN_TAIL_BYTES), None);
        // A journal read without packet lines holds nothing to compare.
        let quiet =
            heard(&["2026-01-25T09:59:59.000000Z web1 kernel: usb 1-1: new device\n".into()]);
        assert!(quiet.is_empty());
    }

    #[test]
    fn a_journal_read_keeps_its_last_packet_lines() {
        let lines: Vec<String> = (0..HEARD_LINES as u32 + 1)
            .map(|i| journal_line("web1", i % 60, &format!("10.{}.{}.1", i / 256, i % 256)))
            .collect();
        let journal = heard(&lines);
        let dir = tempfile::tempdir().unwrap();
        let first = files(dir.path(), &[("first.log", lines[0].clone())]);
        let last = files(dir.path(), &[("last.log", lines[HEARD_LINES].clone())]);
        let first = with_prefix(&first, &[DROP.to_string()]);
        let last = with_prefix(&last, &[DROP.to_string()]);
        assert_eq!(journal.copied_in(&first, RUN_TAIL_BYTES), None);
        assert!(journal.copied_in(&last, RUN_TAIL_BYTES).is_some());
    }
}
