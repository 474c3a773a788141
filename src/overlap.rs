//! Sources that hold the same packets. Ubuntu's rsyslog writes ufw's lines to `ufw.log` and
//! to `kern.log`, Debian's writes the kernel's to `kern.log` and to `syslog`, and a glob such
//! as `/var/log/*.log` may match two such copies: read both, and every packet counts twice,
//! in the hits and in the excerpt a desk is shown. (One file under two names is read once,
//! see `intake`: it is not two copies.)
//! Two copies of one log end in the same lines, so the packet lines at the ends of the files
//! are compared; lines of different hosts (a log host's files) never are the same.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

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
    let mut identities: HashSet<(u64, u64)> = HashSet::new();
    // Each packet line by its hash (of 64 bits: two different lines taken for one cost a
    // warning, and are as likely as a meteor), with the file it was met in. The lines
    // themselves are not kept: a log host's glob matches thousands of files.
    let mut lines: HashMap<u64, usize> = HashMap::new();
    let hasher = std::hash::RandomState::new();
    for (i, (path, prefixes)) in files.iter().enumerate() {
        let sample = match std::fs::metadata(path) {
            Ok(m) if identities.insert((m.dev(), m.ino())) => {
                crate::source::sample(path, tail).unwrap_or_default()
            }
            _ => continue,
        };
        let finders: Vec<_> = (prefixes.iter())
            .map(|p| memchr::memmem::Finder::new(p.as_bytes()))
            .collect();
        // Lines end at a newline or a crash's NUL bytes, as the reader has it.
        for line in sample.split(|b| *b == b'\n' || *b == 0) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
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
}
