//! Sources: which bytes of a log file are new since the last run, across rotation.
//!
//! A [`Cursor`] remembers the file (device, inode and a fingerprint of its first line) and how
//! far it was read. Each run compares it with what is on disk now and names the case in
//! [`Decision`], one exhaustive table: plain append, copytruncate (the same inode shrank or
//! starts with other text), rename rotation (a new inode at the path, the old file among its
//! siblings as `messages.1`, or later `messages.2.gz`), a file missing for a while, and an
//! unrelated file on a reused inode. Whatever the old file still held past the cursor is read
//! before the new one, so a line written just before a rotation is never lost.
//!
//! This module decides and reads; parsing is `ingest`'s, storing the cursor is `state`'s, and
//! it is stored in the same transaction as what was read, so a crash re-reads, never skips.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ingest::Ingest;

/// How many bytes of a file's first line identify it.
pub const FINGERPRINT_LEN: usize = 256;

/// Where a source stopped reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub dev: u64,
    pub ino: u64,
    /// The file's first line (at most [`FINGERPRINT_LEN`] bytes) when the cursor was taken.
    pub fingerprint: Vec<u8>,
    /// Bytes of complete lines read.
    pub offset: u64,
    /// The rotated siblings that existed (by inode, first line and size), all read or older:
    /// a file that appears later is new, even when the cursor's own file is gone or was
    /// empty (nothing to fingerprint, as before a copytruncate).
    pub known_siblings: Vec<KnownFile>,
}

/// A rotated file as a cursor remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownFile {
    pub dev: u64,
    pub ino: u64,
    pub first_line: Vec<u8>,
    /// Its size then (compressed files: of the file on disk).
    pub size: u64,
}

/// One file as it is on disk now.
#[derive(Debug, Clone)]
struct FileNow {
    dev: u64,
    ino: u64,
    size: u64,
    fingerprint: Vec<u8>,
}

/// What happened to a source since its cursor was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never read before: read it whole (or, with `start_at = "end"`, remember its end).
    Fresh,
    /// The same file, grown or unchanged: read on from the offset. A cursor taken on an empty
    /// file also catches up with rotated files that appeared since (a copytruncate copy).
    Append(Catchup),
    /// The same inode, but it shrank or begins with other text (copytruncate, or an unrelated
    /// file on a reused inode): finish the old content from its copy if one is found, then
    /// read the file from the start.
    Restarted(Catchup),
    /// Another file at the path (rename rotation): finish the old one where it went, read any
    /// rotated after it, then read the new one from the start.
    Replaced(Catchup),
    /// Nothing at the path now: finish the old file where it went; the cursor stays on it.
    Missing(Catchup),
}

/// The rotated files a run must read before the live one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catchup {
    /// The file the cursor points at, wherever it went (read on from the offset).
    pub previous: Option<Rotated>,
    /// Files rotated after it, oldest first (read whole): the log rotated more than once
    /// between two runs.
    pub newer: Vec<Rotated>,
}

/// An old file of a source after rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub path: PathBuf,
    pub gzip: bool,
    /// Where reading it starts, for the files rotated after the cursor's (0 but for a file
    /// that grew after it was last seen).
    pub from: u64,
}

/// Where a source with no cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Read the whole file (the default).
    #[default]
    Beginning,
    /// Skip what the file holds now; read only what is written after the first run.
    End,
}

/// What reading a source did.
#[derive(Debug)]
pub struct SourceRead {
    pub decision: Decision,
    /// The cursor to store, or `None` when there is nothing to remember yet.
    pub cursor: Option<Cursor>,
}

fn stat(path: &Path) -> io::Result<Option<FileNow>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let fingerprint = first_line(File::open(path)?)?;
    Ok(Some(FileNow {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        fingerprint,
    }))
}

/// The first line of a stream, newline included, at most [`FINGERPRINT_LEN`] bytes.
fn first_line(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(FINGERPRINT_LEN);
    reader.take(FINGERPRINT_LEN as u64).read_to_end(&mut head)?;
    if let Some(end) = memchr::memchr(b'\n', &head) {
        head.truncate(end + 1);
    }
    Ok(head)
}

/// Whether a file that now begins with `now` is the one whose cursor recorded `then`.
fn same_start(then: &[u8], now: &[u8]) -> bool {
    now.starts_with(then)
}

/// The decision table: every combination of cursor and file on disk has its named case.
fn decide(path: &Path, cursor: Option<&Cursor>, now: Option<&FileNow>) -> Decision {
    let Some(cursor) = cursor else {
        return Decision::Fresh;
    };
    let Some(now) = now else {
        return Decision::Missing(catch_up(path, cursor));
    };
    let same_inode = (now.dev, now.ino) == (cursor.dev, cursor.ino);
    let same_text = same_start(&cursor.fingerprint, &now.fingerprint);
    match (same_inode, same_text, now.size >= cursor.offset) {
        (true, true, true) if cursor.fingerprint.is_empty() => {
            Decision::Append(catch_up(path, cursor))
        }
        (true, true, true) => Decision::Append(Catchup::default()),
        (true, true, false) | (true, false, _) => Decision::Restarted(catch_up(path, cursor)),
        (false, _, _) => Decision::Replaced(catch_up(path, cursor)),
    }
}

/// A rotated sibling on disk.
struct Sibling {
    path: PathBuf,
    gzip: bool,
    dev: u64,
    ino: u64,
    size: u64,
}

impl Sibling {
    fn rotated(&self) -> Rotated {
        self.rotated_from(0)
    }

    fn rotated_from(&self, from: u64) -> Rotated {
        Rotated {
            path: self.path.clone(),
            gzip: self.gzip,
            from,
        }
    }

    fn first_line(&self) -> io::Result<Vec<u8>> {
        rotated_first_line(&self.rotated())
    }
}

/// The path's rotated siblings (`messages.1`, `messages.2.gz`, `messages-20260125`), newest
/// first: by the number logrotate gives them when every sibling has one, else by mtime.
fn siblings(path: &Path) -> Vec<Sibling> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Option<u64>, std::time::SystemTime, Sibling)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let suffix = name.strip_prefix(base)?;
            if !(suffix.starts_with('.') || suffix.starts_with('-')) {
                return None;
            }
            let meta = fs::metadata(e.path()).ok()?;
            if !meta.is_file() {
                return None;
            }
            let gzip = suffix.ends_with(".gz");
            let number = suffix
                .strip_prefix('.')
                .map(|s| s.trim_end_matches(".gz"))
                .and_then(|s| s.parse::<u64>().ok());
            let sibling = Sibling {
                path: e.path(),
                gzip,
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
            };
            Some((number, meta.modified().ok()?, sibling))
        })
        .collect();
    if found.iter().all(|(n, _, _)| n.is_some()) {
        found.sort_by_key(|(n, _, _)| *n);
    } else {
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.2.path.cmp(&a.2.path)));
    }
    found.into_iter().map(|(_, _, s)| s).collect()
}

/// Finds where the cursor's file went among the rotated siblings (by inode, then by its first
/// line, which also finds it compressed), and the files rotated after it.
fn catch_up(path: &Path, cursor: &Cursor) -> Catchup {
    let all = siblings(path);
    let is_cursor_file = |s: &Sibling| {
        s.first_line()
            .is_ok_and(|fp| same_start(&cursor.fingerprint, &fp))
    };
    // A file that was empty when last seen has nothing to be recognised by (and its inode
    // alone cannot tell it from a new file that reuses the number).
    let found = if cursor.fingerprint.is_empty() {
        None
    } else {
        all.iter()
            .position(|s| (s.dev, s.ino) == (cursor.dev, cursor.ino) && is_cursor_file(s))
            .or_else(|| all.iter().position(is_cursor_file))
    };
    match found {
        Some(i) => Catchup {
            previous: Some(all[i].rotated()),
            newer: all[..i].iter().rev().map(Sibling::rotated).collect(),
        },
        // Nothing of an empty file was read, and a file that is gone was read before it went:
        // either way, the rotated files the cursor did not know of hold the unread lines (a
        // copytruncate copy, wherever numbering put it, included).
        None => Catchup {
            previous: None,
            newer: all
                .iter()
                .rev()
                .filter_map(|s| unread_part(cursor, s).map(|from| s.rotated_from(from)))
                .collect(),
        },
    }
}

/// Where a sibling's unread part starts, judged by the siblings the cursor knew: `None` if it
/// was known whole (the same file, or the same text compressed), its old size if it grew
/// since, 0 if it is new.
fn unread_part(cursor: &Cursor, s: &Sibling) -> Option<u64> {
    let first = s.first_line().unwrap_or_default();
    let mut from = Some(0);
    for k in &cursor.known_siblings {
        let same_file = (k.dev, k.ino) == (s.dev, s.ino) && same_start(&k.first_line, &first);
        if same_file && s.size == k.size {
            return None;
        }
        if same_file && s.size > k.size && !s.gzip {
            from = Some(k.size);
        }
        if !first.is_empty() && k.first_line == first && (s.gzip || s.size == k.size) {
            return None;
        }
    }
    from
}

/// The rotated siblings as a cursor on an empty file remembers them.
fn known_siblings(path: &Path) -> Vec<KnownFile> {
    siblings(path)
        .iter()
        .map(|s| KnownFile {
            dev: s.dev,
            ino: s.ino,
            first_line: s.first_line().unwrap_or_default(),
            size: s.size,
        })
        .collect()
}

fn rotated_first_line(file: &Rotated) -> io::Result<Vec<u8>> {
    let f = File::open(&file.path)?;
    if file.gzip {
        first_line(flate2::read::MultiGzDecoder::new(f))
    } else {
        first_line(f)
    }
}

/// A cursor on a file of the source at `path`, remembering the rotated siblings that exist
/// now: whatever appears later and is not among them holds unread lines.
fn new_cursor(path: &Path, dev: u64, ino: u64, fingerprint: Vec<u8>, offset: u64) -> Cursor {
    Cursor {
        dev,
        ino,
        fingerprint,
        offset,
        known_siblings: known_siblings(path),
    }
}

/// Feeds `ingest` with what is new in the source at `path` since `cursor`.
pub fn read(
    path: &Path,
    cursor: Option<&Cursor>,
    start: StartAt,
    ingest: &mut Ingest<'_>,
) -> Result<SourceRead> {
    let shown = path.display();
    let now = stat(path).with_context(|| format!("source {shown}"))?;
    if now.is_none() && cursor.is_none() {
        anyhow::bail!("source {shown}: no such file");
    }
    let decision = decide(path, cursor, now.as_ref());
    let mut next = None;
    if let (
        Decision::Append(c) | Decision::Restarted(c) | Decision::Replaced(c) | Decision::Missing(c),
        Some(cursor),
    ) = (&decision, cursor)
    {
        if let Some(old) = &c.previous {
            let consumed = read_from(&old.path, old.gzip, cursor.offset, ingest)
                .with_context(|| format!("source {shown}: rotated file {}", old.path.display()))?;
            // Its first line may have been written since the cursor was taken.
            let fingerprint =
                rotated_first_line(old).unwrap_or_else(|_| cursor.fingerprint.clone());
            next = Some(new_cursor(
                path,
                cursor.dev,
                cursor.ino,
                fingerprint,
                cursor.offset + consumed,
            ));
        }
        for file in &c.newer {
            let consumed = read_from(&file.path, file.gzip, file.from, ingest)
                .with_context(|| format!("source {shown}: rotated file {}", file.path.display()))?;
            let meta = fs::metadata(&file.path).with_context(|| format!("source {shown}"))?;
            let fingerprint = rotated_first_line(file).unwrap_or_default();
            let offset = file.from + consumed;
            next = Some(new_cursor(
                path,
                meta.dev(),
                meta.ino(),
                fingerprint,
                offset,
            ));
        }
    }
    if next.is_none() && now.is_none() {
        next = cursor.cloned();
    }
    if let Some(file) = &now {
        let from = match (&decision, start) {
            (Decision::Append(_), _) => cursor.map_or(0, |c| c.offset),
            (Decision::Fresh, StartAt::End) => last_line_end(path, file.size)?,
            _ => 0,
        };
        let consumed =
            read_from(path, false, from, ingest).with_context(|| format!("source {shown}"))?;
        let fingerprint = File::open(path)
            .and_then(first_line)
            .unwrap_or_else(|_| file.fingerprint.clone());
        next = Some(new_cursor(
            path,
            file.dev,
            file.ino,
            fingerprint,
            from + consumed,
        ));
    }
    Ok(SourceRead {
        decision,
        cursor: next,
    })
}

/// The offset just after the last complete line of a file of `size` bytes.
fn last_line_end(path: &Path, size: u64) -> Result<u64> {
    let mut file = File::open(path)?;
    let from = size.saturating_sub(1 << 16);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(size - from).read_to_end(&mut tail)?;
    Ok(match memchr::memrchr(b'\n', &tail) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    })
}

/// Reads complete lines from `offset` on; returns the bytes they took.
fn read_from(path: &Path, gzip: bool, offset: u64, ingest: &mut Ingest<'_>) -> io::Result<u64> {
    let mut file = File::open(path)?;
    if gzip {
        let mut decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
        let skipped = io::copy(&mut (&mut decoder).take(offset), &mut io::sink())?;
        if skipped < offset {
            return Ok(0);
        }
        ingest.feed(decoder)
    } else {
        let size = file.metadata()?.len();
        if size.saturating_sub(offset) >= PARALLEL_FROM {
            return read_in_two(path, file, offset, size, ingest);
        }
        file.seek(SeekFrom::Start(offset))?;
        ingest.feed(file)
    }
}

/// From this many new bytes on, a file is read by two threads.
const PARALLEL_FROM: u64 = 32 << 20;

/// Reads `[offset, size)` and on: the first half here, the rest (to the end, which may have
/// grown) on another thread, split at a line boundary.
fn read_in_two(
    path: &Path,
    mut file: File,
    offset: u64,
    size: u64,
    ingest: &mut Ingest<'_>,
) -> io::Result<u64> {
    let middle = offset + (size - offset) / 2;
    file.seek(SeekFrom::Start(middle))?;
    let mut probe = Vec::with_capacity(1 << 16);
    (&mut file).take(1 << 20).read_to_end(&mut probe)?;
    let Some(newline) = memchr::memchr(b'\n', &probe) else {
        file.seek(SeekFrom::Start(offset))?;
        return ingest.feed(file);
    };
    let split = middle + newline as u64 + 1;
    let mut second = File::open(path)?;
    second.seek(SeekFrom::Start(split))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut other = ingest.fork();
    let (first_part, second_part) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| other.feed(second));
        let first_part = ingest.feed(file.take(split - offset));
        (first_part, worker.join())
    });
    let first_part = first_part?;
    let second_part = second_part.map_err(|_| io::Error::other("reading thread failed"))??;
    if first_part < split - offset {
        // The split line was not whole after all (a line longer than the probe): the second
        // part's count would start mid-line. Never happens with newline-terminated text.
        return Err(io::Error::other(
            "log line boundary lost while reading in two",
        ));
    }
    ingest.absorb(other);
    Ok(first_part + second_part)
}

/// The files a source's `path` names: itself, or every match of a glob pattern
/// (`/var/log/remote/*/messages`), leaving out matches that are rotated siblings of another.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut matches: Vec<PathBuf> = glob::glob(&text)
        .with_context(|| format!("source {text}: bad glob pattern"))?
        .filter_map(|m| m.ok())
        .filter(|p| p.is_file())
        .collect();
    matches.sort();
    let names: Vec<PathBuf> = matches.clone();
    matches.retain(|m| {
        !names.iter().any(|other| {
            other != m
                && other.parent() == m.parent()
                && m.to_string_lossy()
                    .strip_prefix(other.to_string_lossy().as_ref())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
        })
    });
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(dev: u64, ino: u64, size: u64, fp: &[u8]) -> FileNow {
        FileNow {
            dev,
            ino,
            size,
            fingerprint: fp.to_vec(),
        }
    }

    fn cursor(dev: u64, ino: u64, offset: u64, fp: &[u8]) -> Cursor {
        Cursor {
            dev,
            ino,
            fingerprint: fp.to_vec(),
            offset,
            known_siblings: Vec::new(),
        }
    }

    #[test]
    fn decision_table_names_each_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let c = cursor(1, 10, 100, b"first\n");
        assert_eq!(
            decide(&path, None, Some(&now(1, 10, 5, b"x"))),
            Decision::Fresh
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 150, b"first\n"))),
            Decision::Append(Catchup::default())
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 100, b"first\n"))),
            Decision::Append(Catchup::default())
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 20, b"first\n"))),
            Decision::Restarted(Catchup::default()),
            "copytruncate: shrank"
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 500, b"other\n"))),
            Decision::Restarted(Catchup::default()),
            "copytruncate then grew past the offset, or inode reuse"
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 11, 500, b"first\n"))),
            Decision::Replaced(Catchup::default())
        );
        assert_eq!(
            decide(&path, Some(&c), None),
            Decision::Missing(Catchup::default())
        );
    }

    #[test]
    fn finds_renamed_and_compressed_siblings_and_what_rotated_since() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, b"first line\nsecond\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let c = cursor(meta.dev(), meta.ino(), 11, b"first line\n");
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, b"new file\n").unwrap();
        let found = catch_up(&path, &c);
        assert_eq!(
            found.previous,
            Some(Rotated {
                path: dir.path().join("messages.1"),
                gzip: false,
                from: 0
            })
        );
        assert!(found.newer.is_empty());

        // Compressed later, and the log rotated once more since.
        let gz = File::create(dir.path().join("messages.2.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(b"first line\nsecond\n").unwrap();
        enc.finish().unwrap();
        fs::remove_file(dir.path().join("messages.1")).unwrap();
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, b"newest\n").unwrap();
        let found = catch_up(&path, &c);
        assert_eq!(
            found.previous,
            Some(Rotated {
                path: dir.path().join("messages.2.gz"),
                gzip: true,
                from: 0
            })
        );
        assert_eq!(
            found.newer,
            vec![Rotated {
                path: dir.path().join("messages.1"),
                gzip: false,
                from: 0
            }]
        );
    }

    #[test]
    fn reading_in_two_threads_sees_exactly_what_one_thread_sees() {
        use crate::clock::Zone;
        use crate::ingest::Attribution;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let mut out = std::io::BufWriter::new(File::create(&path).unwrap());
        let mut n = 0u64;
        while out.get_ref().metadata().unwrap().len() < PARALLEL_FROM + (1 << 20) {
            for _ in 0..1000 {
                n += 1;
                let ip = format!("34.208.{}.{}", n % 7, n % 13 + 1);
                writeln!(out, "Jan 25 10:{:02}:{:02} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=UDP SPT={} DPT=53 LEN=40 padding padding padding padding padding", n / 60 % 60, n % 60, n % 60000 + 1).unwrap();
                if n.is_multiple_of(10) {
                    writeln!(out, "Jan 25 10:00:00 web1 CRON[1]: not a packet").unwrap();
                }
            }
            out.flush().unwrap();
        }
        drop(out);
        let attribute = |_| Attribution {
            providers: 1,
            candidates: 1,
        };
        let parser = || {
            crate::parse::LineParser::new(
                &["INPUT-DROP:".to_string()],
                Zone::Utc,
                chrono::Utc::now(),
            )
        };
        let mut two = Ingest::new(parser(), 1, 5, 50, &attribute);
        two.begin_source(parser());
        let consumed = read_from(&path, false, 0, &mut two).unwrap();
        let mut one = Ingest::new(parser(), 1, 5, 50, &attribute);
        one.begin_source(parser());
        assert_eq!(one.feed(File::open(&path).unwrap()).unwrap(), consumed);
        let (two, one) = (two.finish(), one.finish());
        assert_eq!(consumed, fs::metadata(&path).unwrap().len());
        assert_eq!(two.summary, one.summary);
        assert_eq!(two.summary.lines_matched, n);
        assert_eq!(two.observations, one.observations);
        assert!(!two.evidence[0].is_empty());
    }

    #[test]
    fn glob_leaves_out_rotated_siblings() {
        let dir = tempfile::tempdir().unwrap();
        for host in ["a", "b"] {
            fs::create_dir(dir.path().join(host)).unwrap();
            fs::write(dir.path().join(host).join("messages"), b"x\n").unwrap();
            fs::write(dir.path().join(host).join("messages.1"), b"x\n").unwrap();
        }
        let all = expand(&dir.path().join("*/messages*")).unwrap();
        assert_eq!(
            all,
            vec![dir.path().join("a/messages"), dir.path().join("b/messages")]
        );
        assert_eq!(
            expand(&dir.path().join("a/messages")).unwrap(),
            vec![dir.path().join("a/messages")]
        );
    }
}
