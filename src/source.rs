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
    /// Never read before: read it whole.
    Fresh,
    /// The same file, grown or unchanged: read on from the offset.
    Append,
    /// The same inode, but it shrank or begins with other text (copytruncate, or an unrelated
    /// file on a reused inode): finish the old content from its copy if one is found, then
    /// read the file from the start.
    Restarted { previous: Option<Rotated> },
    /// Another file at the path (rename rotation): finish the old one where it went, if it is
    /// found, then read the new one from the start.
    Replaced { previous: Option<Rotated> },
    /// Nothing at the path now: finish the old file where it went; the cursor stays on it.
    Missing { previous: Option<Rotated> },
}

/// The old file of a source after rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub path: PathBuf,
    pub gzip: bool,
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
        return Decision::Missing {
            previous: find_previous(path, cursor),
        };
    };
    let same_inode = (now.dev, now.ino) == (cursor.dev, cursor.ino);
    let same_text = same_start(&cursor.fingerprint, &now.fingerprint);
    match (same_inode, same_text, now.size >= cursor.offset) {
        (true, true, true) => Decision::Append,
        (true, true, false) | (true, false, _) => Decision::Restarted {
            previous: find_previous(path, cursor).filter(|r| r.path != path),
        },
        (false, _, _) => Decision::Replaced {
            previous: find_previous(path, cursor),
        },
    }
}

/// Looks for the file a cursor points at among the path's rotated siblings (`messages.1`,
/// `messages-20260125`, `messages.2.gz`): by inode first, then by its first line.
fn find_previous(path: &Path, cursor: &Cursor) -> Option<Rotated> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name()?.to_str()?;
    let mut siblings: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.len() > base.len() && n.starts_with(base))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            Some((meta.modified().ok()?, e.path()))
        })
        .collect::<Vec<_>>();
    // The most recently rotated first.
    siblings.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, sibling) in &siblings {
        if let Ok(meta) = fs::metadata(sibling)
            && (meta.dev(), meta.ino()) == (cursor.dev, cursor.ino)
            && File::open(sibling)
                .and_then(first_line)
                .is_ok_and(|fp| same_start(&cursor.fingerprint, &fp))
        {
            return Some(Rotated {
                path: sibling.clone(),
                gzip: false,
            });
        }
    }
    if cursor.fingerprint.is_empty() {
        // Nothing to recognise the old file by, and nothing of it was read.
        return None;
    }
    for (_, sibling) in &siblings {
        let gzip = sibling.extension().is_some_and(|e| e == "gz");
        let head = File::open(sibling).and_then(|f| {
            if gzip {
                first_line(flate2::read::MultiGzDecoder::new(f))
            } else {
                first_line(f)
            }
        });
        if head.is_ok_and(|fp| same_start(&cursor.fingerprint, &fp)) {
            return Some(Rotated {
                path: sibling.clone(),
                gzip,
            });
        }
    }
    None
}

/// Feeds `ingest` with what is new in the source at `path` since `cursor`.
pub fn read(path: &Path, cursor: Option<&Cursor>, ingest: &mut Ingest<'_>) -> Result<SourceRead> {
    let shown = path.display();
    let now = stat(path).with_context(|| format!("source {shown}"))?;
    if now.is_none() && cursor.is_none() {
        anyhow::bail!("source {shown}: no such file");
    }
    let decision = decide(path, cursor, now.as_ref());
    let previous = match &decision {
        Decision::Restarted { previous }
        | Decision::Replaced { previous }
        | Decision::Missing { previous } => previous.clone(),
        Decision::Fresh | Decision::Append => None,
    };
    let mut next = None;
    if let (Some(old), Some(cursor)) = (&previous, cursor) {
        let consumed = read_from(&old.path, old.gzip, cursor.offset, ingest)
            .with_context(|| format!("source {shown}: rotated file {}", old.path.display()))?;
        if now.is_none() {
            // Keep following the old file until a new one appears at the path.
            next = Some(Cursor {
                offset: cursor.offset + consumed,
                ..cursor.clone()
            });
        }
    } else if now.is_none() {
        next = cursor.cloned();
    }
    if let Some(file) = &now {
        let from = match decision {
            Decision::Append => cursor.map_or(0, |c| c.offset),
            _ => 0,
        };
        let consumed =
            read_from(path, false, from, ingest).with_context(|| format!("source {shown}"))?;
        let fingerprint = fs::File::open(path)
            .and_then(first_line)
            .unwrap_or_else(|_| file.fingerprint.clone());
        next = Some(Cursor {
            dev: file.dev,
            ino: file.ino,
            fingerprint,
            offset: from + consumed,
        });
    }
    Ok(SourceRead {
        decision,
        cursor: next,
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
        file.seek(SeekFrom::Start(offset))?;
        ingest.feed(file)
    }
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
            Decision::Append
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 100, b"first\n"))),
            Decision::Append
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 20, b"first\n"))),
            Decision::Restarted { previous: None },
            "copytruncate: shrank"
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 10, 500, b"other\n"))),
            Decision::Restarted { previous: None },
            "copytruncate then grew past the offset, or inode reuse"
        );
        assert_eq!(
            decide(&path, Some(&c), Some(&now(1, 11, 500, b"first\n"))),
            Decision::Replaced { previous: None }
        );
        assert_eq!(
            decide(&path, Some(&c), None),
            Decision::Missing { previous: None }
        );
    }

    #[test]
    fn finds_renamed_and_compressed_siblings() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, b"first line\nsecond\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let c = cursor(meta.dev(), meta.ino(), 11, b"first line\n");
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, b"new file\n").unwrap();
        let found = find_previous(&path, &c).unwrap();
        assert_eq!(
            found,
            Rotated {
                path: dir.path().join("messages.1"),
                gzip: false
            }
        );

        let gz = File::create(dir.path().join("messages.2.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(b"first line\nsecond\n").unwrap();
        enc.finish().unwrap();
        fs::remove_file(dir.path().join("messages.1")).unwrap();
        let found = find_previous(&path, &c).unwrap();
        assert_eq!(
            found,
            Rotated {
                path: dir.path().join("messages.2.gz"),
                gzip: true
            }
        );
    }
}
