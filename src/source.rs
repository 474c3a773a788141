//! Sources: which bytes of a log file are new since the last run, across rotation.
//!
//! A [`Cursor`] remembers the file (device, inode and a fingerprint of its first line) and how
//! far it was read. Each run compares it with what is on disk now and names the case in
//! [`Decision`], one exhaustive table: plain append, copytruncate (the same inode shrank or
//! starts with other text), rename rotation (a new inode at the path, the old file among its
//! siblings as `messages.1`, or later `messages.2.gz`), a file missing for a while, and an
//! unrelated file on a reused inode. Whatever the old file still held past the cursor is read
//! before the new one, so a line written just before a rotation is never lost. A first read
//! (or one after `reread`) goes through the rotated history, oldest first.
//!
//! Every file is opened once, identified by its descriptor (`fstat`) and read through it:
//! what a run remembers is always what it read, however the files are renamed meanwhile.
//! Only regular files are read; a `.gz` is read decompressed, and one that breaks off is read
//! up to the damage and named in a warning, never failing the run.
//!
//! This module decides and reads; parsing is `ingest`'s, storing the cursor is `state`'s, and
//! it is stored in the same transaction as what was read, so a crash re-reads, never skips.

use std::fs::{self, File};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::StartAt;
use crate::error::ConfigError;
use crate::ingest::Ingest;
use crate::parse::{Line, LineParser};

/// How many bytes of a file's first line identify it.
pub const FINGERPRINT_LEN: usize = 256;

/// How far before where a read starts (a thread's piece, a resumed cursor) it looks for the
/// packet line it reads on after, to tell which pass of a repeated hour its lines are in.
const LOOK_BACK: u64 = 1 << 16;

/// Where a source stopped reading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// When the cursor's file was made (seconds, nanoseconds), where the file system says:
    /// a file that has its inode number since it was deleted was made later. `None` where
    /// the file system keeps no such time, and in a state an older release wrote.
    pub born: Option<(i64, u32)>,
    /// The last bytes before `offset` (at most [`TAIL_LEN`]), as the file held them when the
    /// cursor was taken: a file cut back in place and written on past the offset holds other
    /// bytes there. Empty where unknown (a state an older release wrote, a compressed file).
    #[serde(default)]
    pub tail: Vec<u8>,
}

/// How many bytes before its offset a cursor keeps (see [`Cursor::tail`]): the end of the
/// last line read, which a line written since differs from in its time, its packet's
/// counter or its ports.
pub const TAIL_LEN: u64 = 256;

/// A rotated file as a cursor remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownFile {
    pub dev: u64,
    pub ino: u64,
    pub first_line: Vec<u8>,
    /// Its size then (compressed files: of the file on disk).
    pub size: u64,
    /// Compressed: its size is not an offset into its text, and a plain file that reuses its
    /// inode number is another file.
    /// `None` in a state an older release wrote: unknown.
    #[serde(default)]
    pub gzip: Option<bool>,
    /// When the file was made (seconds, nanoseconds), where the file system says: a new file
    /// that reuses the inode number of one that was deleted was made later.
    #[serde(default)]
    pub born: Option<(i64, u32)>,
}

impl KnownFile {
    /// Whether a file compressed as `gzip` says can be this one. Unknown (an older state),
    /// a file known by a first line is told by it; one known empty, only by its inode number,
    /// is not trusted: a new file on a compressed file's number would be read from the
    /// compressed file's size.
    fn same_kind(&self, gzip: bool) -> bool {
        match self.gzip {
            Some(known) => known == gzip,
            None => !self.first_line.is_empty(),
        }
    }

    /// Whether `open` is this file by its inode: the same number, and, where both birth
    /// times are known, the same birth.
    fn same_inode(&self, open: &OpenFile) -> bool {
        (self.dev, self.ino) == (open.dev, open.ino) && born_alike(self.born, open.born)
    }
}

/// Whether two birth times can be one file's: the same, or one of them unknown (a file
/// system that keeps none, a state an older release wrote).
fn born_alike(a: Option<(i64, u32)>, b: Option<(i64, u32)>) -> bool {
    a.zip(b).is_none_or(|(a, b)| a == b)
}

/// One file as it is on disk now, as its open descriptor says.
#[derive(Debug, Clone)]
struct FileNow {
    dev: u64,
    ino: u64,
    size: u64,
    /// Read decompressed: its size on disk says nothing about offsets into its text.
    gzip: bool,
    fingerprint: Vec<u8>,
    /// The bytes before the cursor are not those a rotated copy of the file holds there: it
    /// was copied away and truncated, and written past the cursor again since (see
    /// [`copied_and_rewritten`]).
    rewritten: bool,
    /// Another file than the cursor's, holding its text up to its offset: the same first
    /// line, the same bytes just before the offset, and the cursor's own file nowhere among
    /// the rotated ones (the log moved to another disk, restored from a backup, copied and
    /// renamed over). See [`moved_here`].
    moved: bool,
}

/// What happened to a source since its cursor was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never read before, or `reread` asked for it: read the rotated history, oldest first,
    /// then the file whole (or, with `start_at = "end"` and no `reread`, remember its end).
    Fresh(Catchup),
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

/// What `-v` says a run did with a source: the case, and the rotated files it finished.
impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            Decision::Fresh(_) => "first read",
            Decision::Append(_) => "read on from the cursor",
            Decision::Restarted(_) => "truncated or replaced in place: read from the start",
            Decision::Replaced(_) => "rotated: a new file at the path, read from the start",
            Decision::Missing(_) => "no file at the path now",
        };
        f.write_str(what)?;
        let c = self.catchup();
        let rotated: Vec<String> = c
            .grown
            .iter()
            .chain(&c.previous)
            .chain(&c.newer)
            .map(|r| r.path.display().to_string())
            .collect();
        if !rotated.is_empty() {
            write!(f, "; finished {}", rotated.join(", "))?;
        }
        Ok(())
    }
}

impl Decision {
    fn catchup(&self) -> &Catchup {
        match self {
            Decision::Fresh(c)
            | Decision::Append(c)
            | Decision::Restarted(c)
            | Decision::Replaced(c)
            | Decision::Missing(c) => c,
        }
    }

    fn catchup_mut(&mut self) -> &mut Catchup {
        match self {
            Decision::Fresh(c)
            | Decision::Append(c)
            | Decision::Restarted(c)
            | Decision::Replaced(c)
            | Decision::Missing(c) => c,
        }
    }
}

/// The rotated files a run must read before the live one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catchup {
    /// Rotated files the cursor knew that grew since, oldest first, each from where it was
    /// read to: a daemon writes to its renamed file until it reopens, and a run can come in
    /// between (logrotate without `delaycompress`).
    pub grown: Vec<Rotated>,
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

/// What reading a source did.
#[derive(Debug)]
pub struct SourceRead {
    pub decision: Decision,
    /// The cursor to store, or `None` when there is nothing to remember yet.
    pub cursor: Option<Cursor>,
    /// Rotated files passed over (compressed otherwise than with gzip, one the run may not
    /// open), said on every run that lists them.
    pub warnings: Vec<String>,
    /// Text this read lost for good, said once, by the run that finds it so, and under `-q`
    /// too: files that could be read only in part (a truncated `.gz`: what they held up to the
    /// damage was read, the rest is skipped, and they are not read again), and the text read
    /// last rotated out of reach (with the rotated files passed over, where it may be).
    pub lost: Vec<String>,
}

impl Cursor {
    /// The cursor `reread` leaves: it names no file (no file has inode 0), so the next run
    /// reads the source as if for the first time, rotated history included, whatever
    /// `start_at` says.
    pub fn reread() -> Self {
        Cursor {
            dev: 0,
            ino: 0,
            fingerprint: Vec::new(),
            offset: 0,
            known_siblings: Vec::new(),
            born: None,
            tail: Vec::new(),
        }
    }

    pub fn is_reread(&self) -> bool {
        self.ino == 0 && self.dev == 0 && self.fingerprint.is_empty() && self.offset == 0
    }
}

/// Reads a file by position (`pread`), never through the descriptor's own offset, so that
/// several readers (the two halves of a large file) can share one descriptor.
struct At<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let len = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if len == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..len], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Counts the bytes a reader gave, to know how far a damaged stream got.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A file opened once and identified by its descriptor (`fstat`). Every byte read of it
/// comes through that descriptor: a rename between looking and reading cannot make a run
/// read one file while it remembers another.
pub struct OpenFile {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    modified: Option<std::time::SystemTime>,
    born: Option<(i64, u32)>,
    gzip: bool,
}

/// Opening what is not a regular file is refused with this kind, so that callers can tell a
/// wrong `path` from a read error.
const NOT_REGULAR: io::ErrorKind = io::ErrorKind::InvalidInput;

pub(crate) fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// The whole of the regular file at `path`, refused as [`OpenFile::open`] refuses what is
/// not one (a FIFO would block the run, `/dev/zero` never ends), and when it holds more than
/// `limit` bytes (no range file, database or template comes near it; a sparse file of
/// gigabytes would take that much memory). For the files a configuration names beside the
/// logs: range files, the ASN database, templates, certificates.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_regular_opened(OpenFile::open(path)?, limit)
}

/// The last `len` bytes (all, in a shorter file) of the regular file at `path`, refused as
/// [`read_regular`] refuses what is not one: a look at where a format keeps what says it is
/// one, before the whole file is read.
pub fn tail_of_regular(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let Some(open) = OpenFile::open(path)? else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    let mut bytes = Vec::new();
    open.at(open.size.saturating_sub(len))
        .take(len)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_regular`] of a file the tool writes itself beside the state, never through a link
/// at `path` (a run is often root): a link is refused as not a regular file.
pub fn read_own_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_regular_opened(OpenFile::open_with(path, libc::O_NOFOLLOW)?, limit)
}

fn read_regular_opened(open: Option<OpenFile>, limit: u64) -> io::Result<Vec<u8>> {
    let Some(open) = open else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    if open.size > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {limit} such a file may hold",
                open.size
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(open.size as usize);
    (&open.file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the {limit} bytes such a file may hold"),
        ));
    }
    Ok(bytes)
}

impl OpenFile {
    /// Opens a regular file, `None` when nothing is at `path`. Anything else is refused
    /// before a byte is read: a FIFO would block the run, `/dev/zero` never ends. The open
    /// itself does not wait for a FIFO's writer (`O_NONBLOCK`, which changes nothing for a
    /// regular file).
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        Self::open_with(path, 0)
    }

    /// [`OpenFile::open`] with more of `open(2)`'s `flags`: `O_NOFOLLOW` refuses a link.
    fn open_with(path: &Path, flags: i32) -> io::Result<Option<Self>> {
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | flags)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && flags & libc::O_NOFOLLOW != 0 => {
                return Err(io::Error::new(NOT_REGULAR, "not a regular file (a link)"));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(io::Error::new(
                    NOT_REGULAR,
                    "not a regular file (a socket or device)",
                ));
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                NOT_REGULAR,
                format!("not a regular file ({})", file_kind(&meta.file_type())),
            ));
        }
        Ok(Some(OpenFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            modified: meta.modified().ok(),
            born: unix_time(meta.created()),
            gzip: path.extension().is_some_and(|e| e == "gz"),
            file,
        }))
    }

    /// The raw bytes from `offset` to the end as it is when reading gets there.
    fn at(&self, offset: u64) -> At<'_> {
        self.at_until(offset, u64::MAX)
    }

    fn at_until(&self, offset: u64, end: u64) -> At<'_> {
        At {
            file: &self.file,
            pos: offset,
            end,
        }
    }

    /// The text: decompressed for a `.gz`.
    fn text(&self) -> Box<dyn Read + '_> {
        if self.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(self.at(0)))
        } else {
            Box::new(self.at(0))
        }
    }

    fn first_line(&self) -> io::Result<Vec<u8>> {
        first_line(self.text())
    }

    fn now(&self) -> io::Result<FileNow> {
        Ok(FileNow {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            gzip: self.gzip,
            fingerprint: self.first_line()?,
            rewritten: false,
            moved: false,
        })
    }

    /// The end of the last complete line within the size the file had when it was opened.
    fn complete_end(&self) -> io::Result<u64> {
        self.line_end_within(self.size)
    }

    /// The end of the last complete line within the first `size` bytes of a plain file (a
    /// line longer than 64 KiB counts as complete: it is junk, passed over). A line ends at a
    /// newline or at a crash's NUL bytes, as the reader has it.
    fn line_end_within(&self, size: u64) -> io::Result<u64> {
        let from = size.saturating_sub(1 << 16);
        let mut tail = Vec::new();
        self.at_until(from, size).read_to_end(&mut tail)?;
        Ok(match memchr::memrchr2(b'\n', 0, &tail) {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        })
    }

    /// The offset just after the last complete line.
    fn last_line_end(&self) -> io::Result<u64> {
        if self.gzip {
            // What a damaged file holds up to the damage counts as its text.
            let mut text = self.text();
            let (mut pos, mut end) = (0u64, 0u64);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = match text.read(&mut buf) {
                    Ok(0) | Err(_) => return Ok(end),
                    Ok(n) => n,
                };
                if let Some(i) = memchr::memrchr2(b'\n', 0, &buf[..n]) {
                    end = pos + i as u64 + 1;
                }
                pos += n as u64;
            }
        }
        self.line_end_within(self.file.metadata()?.len())
    }
}

/// Compressions other than gzip that logrotate may be told to use: the extension it gives
/// the file, the magic bytes the file starts with, and the name said.
const OTHER_COMPRESSIONS: [(&str, &[u8], &str); 5] = [
    (".xz", b"\xfd7zXZ\x00", "xz"),
    (".bz2", b"BZh", "bzip2"),
    (".zst", b"\x28\xb5\x2f\xfd", "zstd"),
    (".lz4", b"\x04\x22\x4d\x18", "lz4"),
    (".lzma", b"\x5d\x00\x00", "lzma"),
];

/// The compression a rotated file has other than gzip (`xz`, `bzip2`, `zstd`, `lz4`), by
/// its name or the first bytes of its first line: such a file cannot be read as text.
fn other_compression(name: &str, gzip: bool, first_line: &[u8]) -> Option<&'static str> {
    if gzip {
        return None;
    }
    // No magic holds a newline: the first line read as text starts with it.
    OTHER_COMPRESSIONS
        .iter()
        .find(|(ext, magic, _)| name.ends_with(ext) || first_line.starts_with(magic))
        .map(|(_, _, kind)| *kind)
}

/// Whether `suffix`, what follows a log's name in the name of another file of its folder,
/// is one that logrotate (or savelog) gives a rotated copy of it: `.` and a number (`.1`,
/// `.2.gz`), or `.` or `-` and a date, with or without separators: six digits or more, or a
/// year (`dateext`: `-20260125`, `-2026012513.gz`, `.2026-01-25`, `-2026`); compressed or
/// not. Any other suffix names another log: `web-1` and `fw-dmz` are other hosts' or other rules' files,
/// not the history of `web` and `fw`, and `fw.example.org` is no rotated `fw`.
fn is_rotation_suffix(suffix: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(suffix) else {
        return false;
    };
    let body = without_compression(text).as_bytes();
    let Some((&separator, rest)) = body.split_first() else {
        return false;
    };
    let numeral = |b: &u8| b.is_ascii_digit();
    if !matches!(separator, b'.' | b'-') || !rest.first().is_some_and(numeral) {
        return false;
    }
    if !(rest.iter()).all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')) {
        return false;
    }
    // `yearly` with `dateformat -%Y`: a year alone, which no host's number is taken for
    // unless it reads as one.
    let year = (rest.get(..4))
        .filter(|y| y.iter().all(numeral))
        .and_then(|y| std::str::from_utf8(y).ok()?.parse::<u16>().ok())
        .is_some_and(|y| (1970..2100).contains(&y));
    (separator == b'.' && rest.iter().all(numeral))
        || rest.iter().filter(|b| numeral(b)).count() >= 6
        || year
}

/// The digits of a dated rotation suffix (`-20260102`, `-2026-01-02.gz`), which sort as the
/// dates do; `None` for logrotate's numbering (`.1`), or a suffix with fewer than six digits.
fn date_digits(suffix: &str) -> Option<String> {
    if numbering(suffix).is_some() {
        return None;
    }
    let digits: String = (without_compression(suffix).chars())
        .filter(char::is_ascii_digit)
        .collect();
    (digits.len() >= 6).then_some(digits)
}

/// logrotate's number of a rotated file (`.1`, `.2.gz`): a dot and at most five digits. More
/// are a date (`dateformat .%Y%m%d`), which sorts the other way.
fn numbering(suffix: &str) -> Option<u64> {
    let digits = without_compression(suffix).strip_prefix('.')?;
    let numeral = (1..6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    numeral.then(|| digits.parse().ok()).flatten()
}

/// A rotation suffix without the extension of its compression, if it has one.
fn without_compression(suffix: &str) -> &str {
    (std::iter::once(".gz").chain(OTHER_COMPRESSIONS.iter().map(|(ext, _, _)| *ext)))
        .find_map(|ext| suffix.strip_suffix(ext))
        .unwrap_or(suffix)
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

/// The first line to know a file by once it was read, given the one it began with right
/// before the read and what it begins with now; `None` when it no longer begins that way. A
/// first line still being written when the read began is known by all of it; but a file
/// truncated while it was read (logrotate's `copytruncate`) begins with other bytes or none,
/// and what the read took from it after the truncate was not the text it began in.
fn first_line_after_read(before: &[u8], now: io::Result<Vec<u8>>) -> Option<Vec<u8>> {
    now.ok().filter(|now| same_start(before, now))
}

/// A log that began otherwise once read than when its read began: truncated in place and
/// written again meanwhile (logrotate's `copytruncate`), it gave the read bytes of two texts.
/// Nothing the run read may be kept: the run reads again from where it began, and then finds
/// the copy.
#[derive(Debug)]
pub struct RewrittenWhileRead(pub PathBuf);

impl std::fmt::Display for RewrittenWhileRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "source {}: truncated and written again while it was read (logrotate's copytruncate)",
            self.0.display()
        )
    }
}

impl std::error::Error for RewrittenWhileRead {}

/// Whether the plain file at `path` begins as a cursor recorded (`fingerprint`): the file a
/// cursor followed, not another that has its inode number since.
pub fn begins_as(path: &Path, fingerprint: &[u8]) -> bool {
    File::open(path)
        .and_then(first_line)
        .is_ok_and(|now| same_start(fingerprint, &now))
}

/// Whether the plain file at `path` is a copy of the file `cursor` followed, whatever its
/// inode: it begins as that file did (a first line that was whole when the cursor was
/// taken), and holds the bytes the cursor stopped after just before its offset, as
/// [`moved_here`] asks of a copy at the cursor's own path. Two logs a daemon rotates together
/// (`kern.log` and `ufw.log`) may begin with the same line; they hold other bytes further on.
pub fn copy_of(path: &Path, cursor: &Cursor) -> bool {
    use std::os::unix::fs::FileExt;
    let tail = &cursor.tail;
    if !known_by_first_line(&cursor.fingerprint)
        || tail.is_empty()
        || cursor.offset < tail.len() as u64
    {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut there = vec![0u8; tail.len()];
    first_line(&file).is_ok_and(|now| same_start(&cursor.fingerprint, &now))
        && (file.read_exact_at(&mut there, cursor.offset - tail.len() as u64))
            .is_ok_and(|()| there == *tail)
}

/// Whether a cursor's first line tells its file from others: it was whole (or as long as a
/// fingerprint gets) when the cursor was taken. A file seen empty, or with its first line
/// still being written, is known by nothing or by a few bytes (a timestamp's first digits)
/// that any later file may begin with, also one that reuses its inode number.
fn known_by_first_line(fingerprint: &[u8]) -> bool {
    fingerprint.ends_with(b"\n") || fingerprint.len() >= FINGERPRINT_LEN
}

/// Whether a file that now begins with `now` is the one whose cursor recorded `then`.
fn same_start(then: &[u8], now: &[u8]) -> bool {
    now.starts_with(then)
}

/// Whether the live file, the cursor's own and at least as long as its offset, holds
/// something other than a line's end just before it: cut back in place (a crash that lost
/// what was not on the disk yet, `truncate -s`) and written on past the offset since, so that
/// the offset is in the middle of a line written later. (A cursor stops after a line end, a
/// newline or a crash's NUL bytes, or inside a line of junk longer than the read's buffer.)
fn cut_back_and_rewritten(live: &OpenFile, cursor: &Cursor) -> io::Result<bool> {
    if (live.dev, live.ino) != (cursor.dev, cursor.ino)
        || live.gzip
        || cursor.offset == 0
        || live.size < cursor.offset
    {
        return Ok(false);
    }
    // Other bytes before the offset than the cursor saw there: written anew since, whatever
    // byte ends them.
    if !cursor.tail.is_empty() && tail_before(live, cursor.offset)? != cursor.tail {
        return Ok(true);
    }
    // The last line end before the offset: the offset itself after a line end, or where no
    // line end is in the 64 KiB before it (inside a line too long to be one: junk, passed over
    // to the end of the file while it was still being written); 0 where none is before it.
    let end = live.line_end_within(cursor.offset)?;
    Ok(end != 0 && end != cursor.offset)
}

/// Whether the live file (`now`), another than the cursor's, is the cursor's log, moved or
/// edited: it starts as the cursor's file did, and no rotated file starts so (one that does
/// is the cursor's file renamed away, a rotation).
fn edited_elsewhere(cursor: &Cursor, now: &FileNow, rotated: &[Sibling]) -> bool {
    (cursor.dev, cursor.ino) != (now.dev, now.ino)
        && known_by_first_line(&cursor.fingerprint)
        && same_start(&cursor.fingerprint, &now.fingerprint)
        && !(rotated.iter()).any(|s| same_start(&cursor.fingerprint, &s.first_line))
}

/// Whether the live file (`now`), another than the cursor's, holds the cursor's text up to
/// its offset: the cursor's log (see [`edited_elsewhere`]) holding the bytes the cursor
/// stopped after just before the offset. The text was moved: to another disk (`rsync -a`),
/// back from a backup, copied and renamed over. Read from the start, every packet in it was
/// counted twice.
fn moved_here(
    live: &OpenFile,
    now: &FileNow,
    cursor: &Cursor,
    rotated: &[Sibling],
) -> io::Result<bool> {
    if !edited_elsewhere(cursor, now, rotated)
        || live.gzip
        || cursor.tail.is_empty()
        || cursor.offset == 0
        || live.size < cursor.offset
    {
        return Ok(false);
    }
    Ok(tail_before(live, cursor.offset)? == cursor.tail)
}

/// The last bytes of `file` before `offset` (at most [`TAIL_LEN`]): none if the file no
/// longer holds them all (cut back since it was read, the next run's to find), or if it is
/// compressed (its offsets are into its text).
fn tail_before(file: &OpenFile, offset: u64) -> io::Result<Vec<u8>> {
    if file.gzip {
        return Ok(Vec::new());
    }
    let from = offset.saturating_sub(TAIL_LEN);
    let mut tail = Vec::with_capacity((offset - from) as usize);
    file.at_until(from, offset).read_to_end(&mut tail)?;
    if tail.len() as u64 != offset - from {
        tail.clear();
    }
    Ok(tail)
}

/// Reads past the first `n` bytes of `text`: how many there were, and the last of them.
fn skip(text: &mut impl Read, n: u64) -> io::Result<(u64, Option<u8>)> {
    if n == 0 {
        return Ok((0, None));
    }
    let mut buf = vec![0u8; 64 << 10];
    let (mut done, mut last) = (0u64, None);
    while done < n {
        let want = usize::try_from(n - done).map_or(buf.len(), |left| left.min(buf.len()));
        match text.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => {
                last = Some(buf[k - 1]);
                done += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((done, last))
}

/// Whether `offset` of `file` follows a line end (a newline, or a crash's NUL byte).
fn after_a_line_end(file: &OpenFile, offset: u64) -> io::Result<bool> {
    let mut before = Vec::with_capacity(1);
    file.at_until(offset - 1, offset).read_to_end(&mut before)?;
    Ok(before.first().is_none_or(|b| matches!(b, b'\n' | 0)))
}

/// Whether the live file, the cursor's own (same inode, same first line) and at least as long
/// as the cursor's offset, was copied away and truncated (logrotate's `copytruncate`) and
/// written past the offset again since: a rotated file the cursor did not know starts like
/// it but holds other bytes just before the offset. A fixed first line (a header every new
/// file gets) cannot tell these apart; the bytes the cursor stopped after can. A copy that
/// matches (a backup taken of the live file) changes nothing.
fn copied_and_rewritten(live: &OpenFile, cursor: &Cursor, rotated: &[Sibling]) -> io::Result<bool> {
    if (live.dev, live.ino) != (cursor.dev, cursor.ino)
        || live.gzip
        || cursor.fingerprint.is_empty()
        || cursor.offset == 0
        || live.size < cursor.offset
    {
        return Ok(false);
    }
    // A rotated file new since the cursor, plain, long enough, and starting like it: most
    // runs have none, and read nothing more.
    let copies: Vec<&Sibling> = rotated
        .iter()
        .filter(|s| {
            !s.open.gzip
                && s.open.size >= cursor.offset
                && same_start(&cursor.fingerprint, &s.first_line)
                && !cursor
                    .known_siblings
                    .iter()
                    .any(|k| k.same_inode(&s.open) && k.same_kind(s.open.gzip))
        })
        .collect();
    if copies.is_empty() {
        return Ok(false);
    }
    let window = cursor.offset.min(4096);
    let from = cursor.offset - window;
    let mut mine = Vec::new();
    live.at_until(from, cursor.offset).read_to_end(&mut mine)?;
    for s in copies {
        let mut theirs = Vec::new();
        s.open
            .at_until(from, cursor.offset)
            .read_to_end(&mut theirs)?;
        if theirs != mine {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the rotated file `s`, read from its start to `end`, held nothing but the first
/// `end` bytes of the live file, which begins with `begins`: a copy of it that logrotate's
/// `copytruncate` is making, or made and has not truncated the live file after yet. Its
/// lines were read in the copy, and the live file goes on after them: `end` then, else 0.
fn copy_read_of(live: &OpenFile, begins: &[u8], s: &Sibling, end: u64) -> io::Result<u64> {
    if !may_copy(live, begins, s) || end == 0 || !same_bytes_until(live, &s.open, end)? {
        return Ok(0);
    }
    Ok(end)
}

/// The size of the rotated file `s` when it holds nothing but the live file's first bytes
/// (the live file beginning with `begins`): a copy `copytruncate` is making, or made and has
/// not truncated the live file after yet.
fn copy_of_live(live: &OpenFile, begins: &[u8], s: &Sibling) -> io::Result<Option<u64>> {
    if !may_copy(live, begins, s) {
        return Ok(None);
    }
    let size = s.open.file.metadata()?.len();
    if size == 0 || size > live.file.metadata()?.len() {
        return Ok(None);
    }
    Ok(same_bytes_until(live, &s.open, size)?.then_some(size))
}

/// Whether `s` can be a copy of the live file, by their kind and first lines.
fn may_copy(live: &OpenFile, begins: &[u8], s: &Sibling) -> bool {
    !live.gzip && !s.open.gzip && known_by_first_line(&s.first_line) && begins == s.first_line
}

/// Whether the compressed rotated file `s` holds the start of the live file, which begins
/// with `begins`, and nothing else: a copy of it that logrotate's `copy` made and compressed,
/// leaving the live file as it was.
fn compressed_copy_of(live: &OpenFile, begins: &[u8], s: &Sibling) -> io::Result<bool> {
    if live.gzip || !s.open.gzip || !known_by_first_line(&s.first_line) || s.first_line != begins {
        return Ok(false);
    }
    let (mut theirs, mut mine) = (s.open.text(), live.at(0));
    let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fill(&mut theirs, &mut a)?;
        if n == 0 {
            return Ok(true);
        }
        if fill(&mut mine, &mut b[..n])? != n || a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

/// Reads into `buf` until it is full or the text ends; how many bytes were read.
fn fill(text: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match text.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether the two files hold the same bytes up to `end`.
fn same_bytes_until(a: &OpenFile, b: &OpenFile, end: u64) -> io::Result<bool> {
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < end {
        let upto = (at + (1 << 16)).min(end);
        mine.clear();
        theirs.clear();
        a.at_until(at, upto).read_to_end(&mut mine)?;
        b.at_until(at, upto).read_to_end(&mut theirs)?;
        if mine != theirs || mine.len() as u64 != upto - at {
            return Ok(false);
        }
        at = upto;
    }
    Ok(true)
}

/// The decision table: every combination of cursor and file on disk has its named case.
fn decide(
    cursor: Option<&Cursor>,
    now: Option<&FileNow>,
    siblings: &[Sibling],
    start: StartAt,
) -> Decision {
    let mut decision = decide_case(cursor, now, siblings, start);
    if let (Some(cursor), false) = (cursor, matches!(decision, Decision::Fresh(_))) {
        let c = decision.catchup_mut();
        c.grown = grown(siblings, cursor, c);
    }
    decision
}

/// The rotated files `cursor` knew that grew since it was taken and that `planned` does not
/// read already, oldest first, each from its known end. A file known plain and compressed
/// since (a new inode with the same first line) is read on from there too: logrotate
/// compresses after the daemon reopened, so its last lines may be in the `.gz` only.
fn grown(all: &[Sibling], cursor: &Cursor, planned: &Catchup) -> Vec<Rotated> {
    let planned: Vec<&Path> = planned
        .previous
        .iter()
        .chain(&planned.newer)
        .map(|r| r.path.as_path())
        .collect();
    // The known file itself, not another one that reuses its inode number.
    let on_disk = |k: &KnownFile| {
        all.iter().any(|s| {
            k.same_inode(&s.open)
                && k.same_kind(s.open.gzip)
                && same_start(&k.first_line, &s.first_line)
        })
    };
    all.iter()
        .rev()
        .filter(|s| !planned.contains(&s.open.path.as_path()))
        .filter_map(|s| {
            let known = &cursor.known_siblings;
            let same_inode = |k: &&KnownFile| k.same_inode(&s.open) && k.same_kind(s.open.gzip);
            let from = if !s.open.gzip {
                known
                    .iter()
                    .find(same_inode)
                    .filter(|k| same_start(&k.first_line, &s.first_line) && s.open.size > k.size)
                    .map(|k| k.size)
            } else if known.iter().any(|k| {
                (k.dev, k.ino) == (s.open.dev, s.open.ino)
                    && same_start(&k.first_line, &s.first_line)
            }) {
                // Compressed when it was known (also as a state from before `gzip` was kept
                // says it): not appended to since.
                None
            } else if compressed_again(all, known, s) {
                // Known compressed, on another inode now (moved to another disk, compressed
                // again at another level): read whole when it was known.
                None
            } else {
                // Compressed since: the plain file is gone, and its text is here (recognised
                // by its first line, or, known empty, by being the one text no known file
                // starts with).
                let gone = known.iter().filter(|k| !on_disk(k));
                let same_text = |k: &KnownFile| {
                    k.first_line == s.first_line
                        || (!k.first_line.is_empty() && same_start(&k.first_line, &s.first_line))
                };
                let by_text = gone
                    .clone()
                    .find(|k| !k.first_line.is_empty() && same_text(k));
                let unmatched = !known.iter().any(same_text);
                by_text
                    .or_else(|| {
                        gone.clone()
                            .find(|k| k.first_line.is_empty())
                            .filter(|_| unmatched)
                    })
                    .map(|k| k.size)
            }?;
            Some(s.rotated_from(from))
        })
        .collect()
}

/// Whether the compressed rotated file `s`, on an inode no known file had, is a file known
/// compressed before, compressed again or moved: the one file known, and the one file on
/// disk, that start with its first line. A first line many files share (a header each new
/// file gets) tells none of them apart, and such a file is not taken for a known one.
fn compressed_again(all: &[Sibling], known: &[KnownFile], s: &Sibling) -> bool {
    if !known_by_first_line(&s.first_line) {
        return false;
    }
    let alike = |first: &[u8]| !first.is_empty() && same_start(first, &s.first_line);
    let mut knowns = known.iter().filter(|k| alike(&k.first_line));
    let one_known = knowns.next().filter(|_| knowns.next().is_none());
    let on_disk = all.iter().filter(|o| alike(&o.first_line)).count();
    one_known.is_some_and(|k| k.gzip == Some(true)) && on_disk == 1
}

/// The case of [`decide`], before grown rotated files are added.
fn decide_case(
    cursor: Option<&Cursor>,
    now: Option<&FileNow>,
    siblings: &[Sibling],
    start: StartAt,
) -> Decision {
    let cursor = match cursor {
        None if start == StartAt::End => return Decision::Fresh(Catchup::default()),
        None => return Decision::Fresh(history(siblings)),
        Some(c) if c.is_reread() => return Decision::Fresh(history(siblings)),
        Some(c) => c,
    };
    let Some(now) = now else {
        return Decision::Missing(catch_up(siblings, cursor));
    };
    let same_inode = (now.dev, now.ino) == (cursor.dev, cursor.ino);
    let same_text = same_start(&cursor.fingerprint, &now.fingerprint);
    // A compressed file is not appended to; its size on disk is not comparable to an offset.
    let not_shrunk = now.gzip || now.size >= cursor.offset;
    match (same_inode, same_text, not_shrunk) {
        // Nothing of the file was read (it was empty, or its first line unfinished), and the
        // file on its inode number now may be another: the rotated files the cursor did not
        // know are read too.
        (true, true, true) if !known_by_first_line(&cursor.fingerprint) => {
            Decision::Append(catch_up(siblings, cursor))
        }
        (true, true, true) if now.rewritten => Decision::Restarted(catch_up(siblings, cursor)),
        (true, true, true) => Decision::Append(Catchup::default()),
        // The same text on another inode: read on from the offset, as in the file it was.
        (false, true, true) if now.moved => Decision::Append(Catchup::default()),
        (true, true, false) | (true, false, _) => Decision::Restarted(catch_up(siblings, cursor)),
        (false, _, _) => Decision::Replaced(catch_up(siblings, cursor)),
    }
}

/// Every rotated file, oldest first: what a first read goes through before the live file.
fn history(siblings: &[Sibling]) -> Catchup {
    Catchup {
        grown: Vec::new(),
        previous: None,
        newer: siblings.iter().rev().map(|s| s.rotated_from(0)).collect(),
    }
}

/// A rotated sibling on disk, open.
struct Sibling {
    open: OpenFile,
    first_line: Vec<u8>,
}

impl Sibling {
    /// The first line to know the file by once it was read: the one it was listed with, or,
    /// listed empty or with its first line unfinished (a rotated file the daemon still
    /// writes to, its reopen not done yet), the one it holds now, which the read began with.
    /// Known by the listing's empty text, the file compressed later (a new inode, and text no
    /// known file starts with) would be read again from its start.
    fn first_line_read(&self) -> Vec<u8> {
        if known_by_first_line(&self.first_line) {
            return self.first_line.clone();
        }
        first_line_after_read(&self.first_line, self.open.first_line())
            .unwrap_or_else(|| self.first_line.clone())
    }

    fn rotated_from(&self, from: u64) -> Rotated {
        Rotated {
            path: self.open.path.clone(),
            gzip: self.open.gzip,
            from,
        }
    }

    /// The file as a cursor remembers it. A plain file counts only up to its last complete
    /// line: a line still being written was not read, and must be read whole once it ends.
    fn known(&self) -> KnownFile {
        let size = match self.open.gzip {
            true => self.open.size,
            false => self.open.complete_end().unwrap_or(self.open.size),
        };
        KnownFile {
            dev: self.open.dev,
            ino: self.open.ino,
            first_line: self.first_line.clone(),
            size,
            gzip: Some(self.open.gzip),
            born: self.open.born,
        }
    }
}

/// Folder listings one run shares between its sources: a log host's flat folder of thousands
/// of per-host files is listed once a run, not once for each file in it (which grew with the
/// square of the files). A listing serves while the folder's modification time, which every
/// create, rename and removal in it moves, is what it was; and only if that time was older
/// than a tick of the file system's clock when the listing began (see [`settles_after`]), so
/// that a change in the same tick cannot hide. A rotation during the run is seen as it was
/// without it, and a folder that keeps changing (a log host making files as hosts appear) is
/// listed again after each change, not for each file.
#[derive(Default)]
pub struct Folders {
    listed: std::collections::HashMap<PathBuf, (std::time::SystemTime, Vec<String>)>,
    /// The last listing of a folder that was changing, not kept.
    fresh: Vec<String>,
    /// How many times a folder was listed.
    #[cfg(test)]
    listings: usize,
    /// Run once, right after the first listing or once the listed files are opened:
    /// logrotate at work while a read opens files.
    #[cfg(test)]
    meanwhile: Option<(Moment, Box<dyn FnOnce()>)>,
}

/// Where in a read's opening of files a test's `meanwhile` runs.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Moment {
    Listed,
    Opened,
}

#[cfg(test)]
impl Folders {
    fn at(&mut self, moment: Moment) {
        if self.meanwhile.as_ref().is_some_and(|(m, _)| *m == moment)
            && let Some((_, meanwhile)) = self.meanwhile.take()
        {
            meanwhile();
        }
    }
}

/// How old a folder's modification time must be for its listing to be kept, on a file system
/// whose clock is coarse (a FAT volume's ticks are two seconds, some network file systems'
/// one).
const SETTLED_FOLDER: std::time::Duration = std::time::Duration::from_secs(3);

/// The same on a file system whose clock is fine: a local one's ticks are a few milliseconds.
const SETTLED_FINE_FOLDER: std::time::Duration = std::time::Duration::from_millis(20);

/// How long after `modified`, a folder's modification time, a listing must begin for any
/// later change to move that time: longer than a tick of the clock that set it. Only a
/// folder whose times this host's own clock sets (`here`: see [`stamped_here`]) can be judged
/// by this host's clock to the hundredth of a second; of those, a time with digits below the
/// hundredth comes from a fine clock, and a coarse one shows none (nor, once in a while, does a
/// fine one, which then waits as long as a coarse one). Another machine's clock (a network
/// file system's server) may be behind this one by more than a tick.
fn settles_after(modified: std::time::SystemTime, here: bool) -> std::time::Duration {
    let nanos = (modified.duration_since(std::time::UNIX_EPOCH)).map_or(0, |d| d.subsec_nanos());
    match (here, nanos % 10_000_000) {
        (true, 1..) => SETTLED_FINE_FOLDER,
        _ => SETTLED_FOLDER,
    }
}

/// Whether the times of `dir` are set by this host's own clock: a file system on a local disk
/// or in memory (ext2/3/4, XFS, Btrfs, F2FS, ZFS, tmpfs, or an overlay of these). A network's
/// (NFS, SMB), a user-space one (FUSE, sshfs) or a virtual machine's host's (9p, virtiofs) may
/// stamp with another clock; so may any other, for all this knows.
fn stamped_here(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a zeroed `statfs` is a valid value of it (integers and arrays of them).
        let mut found: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a NUL-terminated string that outlives the call, and `found` is a
        // place of the type the call writes.
        if unsafe { libc::statfs(path.as_ptr(), &mut found) } != 0 {
            return false;
        }
        // The kinds' numbers as the kernel gives them (`linux/magic.h`), 32 bits each.
        const LOCAL: [u32; 7] = [
            0xEF53,      // ext2, ext3, ext4
            0x5846_5342, // XFS
            0x9123_683E, // Btrfs
            0xF2F5_2010, // F2FS
            0x2FC1_2FC1, // ZFS
            0x0102_1994, // tmpfs
            0x794C_7630, // overlay
        ];
        LOCAL.contains(&(found.f_type as u32))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl Folders {
    /// The names in `dir` that are UTF-8, sorted; why not, if it cannot be listed.
    fn names(&mut self, dir: &Path) -> io::Result<&[String]> {
        let modified = fs::metadata(dir).and_then(|m| m.modified()).ok();
        let still = |(then, _): &(std::time::SystemTime, Vec<String>)| Some(*then) == modified;
        if !self.listed.get(dir).is_some_and(still) {
            // Whatever changes once the listing begins may be missing from it.
            let begun = std::time::SystemTime::now();
            let mut names: Vec<String> = fs::read_dir(dir)?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            names.sort_unstable();
            #[cfg(test)]
            {
                self.listings += 1;
                self.at(Moment::Listed);
            }
            let settled = modified.filter(|m| {
                let wait = settles_after(*m, stamped_here(dir));
                (begun.duration_since(*m)).is_ok_and(|age| age >= wait)
            });
            match settled {
                Some(m) => {
                    self.listed.insert(dir.to_path_buf(), (m, names));
                }
                None => {
                    // Changing now: listed afresh for each source that asks.
                    self.listed.remove(dir);
                    self.fresh = names;
                    return Ok(&self.fresh);
                }
            }
        }
        Ok(self
            .listed
            .get(dir)
            .map_or(&[][..], |(_, names)| names.as_slice()))
    }
}

/// The path's rotated siblings (`messages.1`, `messages.2.gz`, `messages-20260125`), newest
/// first: by the number logrotate gives them when every sibling has one, else by mtime.
/// Each is opened once here and read through that descriptor later. The live file itself
/// (renamed between its open and this listing) is left out: it is read as the live file.
/// One that cannot be opened (or is no regular file) is left out and named in `unreadable`.
/// One compressed other than with gzip is left out and named in `compressed`.
fn siblings(path: &Path, live: Option<&OpenFile>, folders: &mut Folders) -> Siblings {
    let mut found = Siblings::default();
    let dir = folder_of(path);
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return found;
    };
    let names = match folders.names(dir) {
        Ok(names) => names,
        // A folder the run may enter but not list (0711): the file is read, and its rotated
        // files are not seen, so the end of one renamed away is never read.
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            let until = crate::state::out_of_descriptors(&e).unwrap_or_else(|| {
                "its rotated files, which hold what no run has read yet after a rotation, are not seen until the run's user may list it".to_string()
            });
            found.unlistable = Some(format!(
                "source {}: folder {} cannot be listed: {e}; {until}",
                path.display(),
                dir.display()
            ));
            return found;
        }
        Err(_) => return found,
    };
    let Siblings {
        listed: listed_names,
        rotated,
        unreadable,
        compressed,
        ..
    } = &mut found;
    *listed_names = rotation_names(names, base);
    let listed: Vec<(&String, Option<u64>, std::time::SystemTime, Sibling)> = (listed_names
        .iter())
        .filter_map(|name| {
            let entry = dir.join(name);
            let suffix = &name[base.len()..];
            let open = match OpenFile::open(&entry) {
                Ok(open) => open?,
                Err(err) => {
                    // A folder the run may not open is still no regular file: no history.
                    let meta = fs::metadata(&entry).ok();
                    let kind = match &meta {
                        Some(meta) if !meta.is_file() => NOT_REGULAR,
                        _ => err.kind(),
                    };
                    unreadable.push(Unreadable {
                        kind,
                        problem: format!(
                            "source {}: rotated file {} is not read: {err}",
                            path.display(),
                            entry.display()
                        ),
                        file: meta.map(|m| SeenFile::of(&m)),
                    });
                    return None;
                }
            };
            if live.is_some_and(|l| (l.dev, l.ino) == (open.dev, open.ino)) {
                return None;
            }
            let first_line = open.first_line().unwrap_or_default();
            if let Some(kind) = other_compression(name, open.gzip, &first_line) {
                compressed.push(format!(
                    "source {}: rotated file {} is compressed with {kind}, which abuse-mailer does not read (only gzip): lines in it that no run read are not counted; set logrotate's compresscmd to gzip",
                    path.display(),
                    entry.display()
                ));
                return None;
            }
            let number = numbering(suffix);
            let modified = open.modified?;
            Some((name, number, modified, Sibling { open, first_line }))
        })
        .collect();
    // A .gz beside its plain file is being written by gzip: the plain file, opened here,
    // holds the whole text even if gzip removes it now. Looked up among the files opened,
    // not on disk again: gzip may have finished since, and both would be read.
    let opened: std::collections::HashSet<&str> =
        (listed.iter()).map(|&(name, ..)| name.as_str()).collect();
    let being_compressed = |name: &str| {
        name.strip_suffix(".gz")
            .is_some_and(|plain| opened.contains(plain))
    };
    let mut listed: Vec<_> = (listed.into_iter())
        .filter(|(name, ..)| !being_compressed(name))
        .map(|(name, number, modified, sibling)| {
            (number, modified, sibling, date_digits(&name[base.len()..]))
        })
        .collect();
    // Dated names (logrotate's `dateext`) sort as their dates: logrotate requires them to
    // sort lexically, and a file's time is not its place (a `.gz` written by `gzip -c` has
    // the time it was compressed at, after the newer dated file's).
    let dated_alike = (listed.first())
        .and_then(|(_, _, _, d)| d.as_ref().map(String::len))
        .is_some_and(|len| {
            (listed.iter()).all(|(_, _, _, d)| d.as_ref().map(String::len) == Some(len))
        });
    if listed.iter().all(|(n, ..)| n.is_some()) {
        listed.sort_by_key(|(n, ..)| *n);
    } else if dated_alike {
        listed.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| b.1.cmp(&a.1)));
    } else {
        listed.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| b.2.open.path.cmp(&a.2.open.path))
        });
    }
    // One file opened under two names: logrotate shifted it (`.1.gz` to `.2.gz`) between the
    // opens of the two. It is one file, read once, under the place it was listed at first.
    let mut identities = std::collections::HashSet::new();
    *rotated = (listed.into_iter())
        .map(|(_, _, s, _)| s)
        .filter(|s| identities.insert((s.open.dev, s.open.ino)))
        .collect();
    #[cfg(test)]
    folders.at(Moment::Opened);
    found
}

/// The names among a folder's `names` (sorted) that are rotated files of `base`.
fn rotation_names(names: &[String], base: &str) -> Vec<String> {
    // Sorted: the names that start with the file's are together.
    let from = names.partition_point(|n| n.as_str() < base);
    (names[from..].iter())
        .take_while(|n| n.starts_with(base))
        .filter(|n| is_rotation_suffix(&n.as_bytes()[base.len()..]))
        .cloned()
        .collect()
}

/// How many times a read opens a source's files for a picture of one moment.
const LOOKS: usize = 3;

/// Whether the files a read opened are still what their names name: the live file at the
/// path, each rotated file under its name, and the same rotated names listed. logrotate at
/// work between the listing and the opens (a shift, a copy and its truncate, a `gzip` and its
/// unlink) leaves a picture of no one moment, in which a file is missed (its lines never
/// read) or seen twice (under its old name, open, and as its new `.gz`).
fn still_as_opened(
    path: &Path,
    home: &Path,
    live: Option<&OpenFile>,
    found: &Siblings,
    folders: &mut Folders,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    let identity = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    if identity(path) != live.map(|l| (l.dev, l.ino))
        || (found.rotated.iter()).any(|s| identity(&s.open.path) != Some((s.open.dev, s.open.ino)))
    {
        return false;
    }
    let Some(base) = home.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    folders
        .names(folder_of(home))
        .ok()
        .is_none_or(|names| rotation_names(names, base) == found.listed)
}

/// What [`siblings`] found of a path's rotated files.
/// A rotated file that could not be opened (or is no regular file).
struct Unreadable {
    kind: io::ErrorKind,
    /// Why, as a run says it.
    problem: String,
    /// What its folder says of it, where it says anything.
    file: Option<SeenFile>,
}

/// A file as `stat(2)` sees it, without opening it.
struct SeenFile {
    dev: u64,
    ino: u64,
    size: u64,
    born: Option<(i64, u32)>,
    /// Last written (seconds, nanoseconds).
    modified: Option<(i64, u32)>,
}

impl SeenFile {
    fn of(meta: &fs::Metadata) -> Self {
        SeenFile {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            born: unix_time(meta.created()),
            modified: unix_time(meta.modified()),
        }
    }

    /// Whether it is the file of inode `ino` on `dev`, made at `born` (see [`born_alike`]).
    fn is(&self, dev: u64, ino: u64, born: Option<(i64, u32)>) -> bool {
        (self.dev, self.ino) == (dev, ino) && born_alike(self.born, born)
    }
}

/// A file time the file system gives (its birth, its last write) as Unix seconds and
/// nanoseconds, where it gives one.
fn unix_time(time: io::Result<std::time::SystemTime>) -> Option<(i64, u32)> {
    (time.ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| (d.as_secs() as i64, d.subsec_nanos()))
}

impl Unreadable {
    /// Whether it may hold text of the log that no run has read, after a read that stopped
    /// at `cursor`: the cursor's own file grown past it, a rotated file the cursor knew grown
    /// since, or a file it did not know (a rotation since). Not what the cursor knew, read up
    /// to its size then; nor an empty file; nor one last written before the cursor's file was
    /// made, which holds only lines logged before the runs that read that file (history an
    /// earlier release passed over, as one it could not open).
    fn may_hold_unread(&self, cursor: &Cursor) -> bool {
        if self.kind == NOT_REGULAR {
            return false;
        }
        let Some(f) = &self.file else {
            return true;
        };
        if f.size == 0 || f.modified.zip(cursor.born).is_some_and(|(m, b)| m < b) {
            return false;
        }
        if f.is(cursor.dev, cursor.ino, cursor.born) {
            return f.size > cursor.offset;
        }
        !(cursor.known_siblings.iter())
            .any(|k| f.is(k.dev, k.ino, k.born) && (k.gzip == Some(true) || f.size <= k.size))
    }
}

#[derive(Default)]
struct Siblings {
    /// The names listed that are the path's rotated files', opened or not.
    listed: Vec<String>,
    /// Newest first.
    rotated: Vec<Sibling>,
    /// Those that could not be opened (or are no regular file), each with why.
    unreadable: Vec<Unreadable>,
    /// Why the folder could not be listed, if it could not: no rotated file is seen.
    unlistable: Option<String>,
    /// Those compressed other than with gzip, named.
    compressed: Vec<String>,
}

/// Finds where the cursor's file went among the rotated siblings (by inode, then by its first
/// line, which also finds it compressed), and the files rotated after it.
fn catch_up(all: &[Sibling], cursor: &Cursor) -> Catchup {
    let is_cursor_file = |s: &Sibling| same_start(&cursor.fingerprint, &s.first_line);
    // A file that was empty when last seen has nothing to be recognised by (and its inode
    // alone cannot tell it from a new file that reuses the number); one seen with part of its
    // first line, only a part that other files may begin with too.
    let found = if !known_by_first_line(&cursor.fingerprint) {
        None
    } else {
        all.iter()
            .position(|s| (s.open.dev, s.open.ino) == (cursor.dev, cursor.ino) && is_cursor_file(s))
            .or_else(|| all.iter().position(is_cursor_file))
    };
    match found {
        // The files listed before the cursor's are those rotated after it, read whole; but
        // one the cursor knew was there already (known by mtime as the newest only because
        // gzip, run later, gave it its own time) is read only past what the cursor knew.
        Some(i) => Catchup {
            grown: Vec::new(),
            previous: Some(all[i].rotated_from(0)),
            newer: (all[..i].iter().rev())
                .filter_map(|s| unread_part(cursor, s).map(|from| s.rotated_from(from)))
                .collect(),
        },
        // Nothing of an empty file (or of one whose first line was unfinished) was read, and
        // a file that is gone was read before it went:
        // either way, the rotated files the cursor did not know of hold the unread lines (a
        // copytruncate copy, wherever numbering put it, included).
        None => Catchup {
            grown: Vec::new(),
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
    let first = &s.first_line;
    let (size, gzip) = (s.open.size, s.open.gzip);
    let mut from = Some(0);
    for k in &cursor.known_siblings {
        let same_file =
            k.same_inode(&s.open) && k.same_kind(gzip) && same_start(&k.first_line, first);
        if same_file && size == k.size {
            return None;
        }
        if same_file && size > k.size && !gzip {
            from = Some(k.size);
        }
        if !first.is_empty() && k.first_line == *first && (gzip || size == k.size) {
            return None;
        }
    }
    from
}

/// Tells `ingest` when `file` was written (see [`Ingest::written_at`] and [`written`]).
fn tell_written(file: &OpenFile, ingest: &mut Ingest<'_>) -> io::Result<()> {
    // The file before's time is no part of this one's.
    ingest.written_at(None, None);
    let (modified, last) = written(file, |line, near| ingest.time_near(line, near))?;
    ingest.written_at(modified, last);
    Ok(())
}

/// When `file` was written, as [`LineParser::written_at`] takes it: when it was last modified
/// (a compressed file keeps the time of the text it holds), and, for a plain file, the time
/// of its last packet line (`time_near` reads it in the year nearest the file's time).
fn written(
    file: &OpenFile,
    time_near: impl Fn(&[u8], i64) -> Option<i64>,
) -> io::Result<(Option<i64>, Option<i64>)> {
    // Its time as the read begins, not as it was opened: lines written since count.
    let modified = (file.file.metadata()?.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let Some(near) = modified.filter(|_| !file.gzip) else {
        return Ok((modified, None));
    };
    // The last few lines first (a log host's run reads thousands of files), then more. A
    // last line being written, if it carries a stamp and a prefix, was written now.
    let last = match last_line_before(file, 0, file.size, &[4 << 10, LOOK_BACK], |line| {
        time_near(line, near)
    })? {
        Before::Line(t) => Some(t),
        Before::None | Before::Unknown => None,
    };
    Ok((modified, last))
}

/// How far reading a file got.
enum Reached {
    /// To its end (complete lines), at this offset.
    End(u64),
    /// A compressed file broke off (truncated, corrupt): its text up to `at` was read.
    Damaged { at: u64, error: io::Error },
}

/// Reads the complete lines of `file` from `offset` on, through its descriptor.
fn read_file(file: &OpenFile, offset: u64, ingest: &mut Ingest<'_>) -> io::Result<Reached> {
    if !file.gzip {
        let size = file.file.metadata()?.len();
        // A file with nothing new is not looked at again (a log host's run lists thousands).
        match offset < size {
            true => tell_written(file, ingest)?,
            false => ingest.written_at(None, None),
        }
        // A read that stopped inside a line stopped inside one too long to be one (junk,
        // passed over to the end of the file while it was still being written, and counted
        // then; a file cut back is read from its start): its rest is no line of its own.
        if offset > 0 && offset < size && !after_a_line_end(file, offset)? {
            ingest.begins_inside_a_line();
        }
        follow_lines_before(file, offset, size, ingest)?;
        return Ok(Reached::End(
            offset + read_plain(file, offset, size, ingest)?,
        ));
    }
    tell_written(file, ingest)?;
    // Only the text that can be trusted is read (see `trusted_text`); the cursor goes to
    // the damage's end all the same, never back, so that the damage is said once.
    let Trusted {
        trusted,
        reach,
        damage,
    } = trusted_text(file);
    let mut text = Counted {
        inner: flate2::read::MultiGzDecoder::new(file.at(0)).take(trusted),
        count: 0,
    };
    let damaged = |at: u64, error: Option<io::Error>| match error {
        Some(error) => Reached::Damaged {
            at: at.max(reach).max(offset),
            error,
        },
        None => Reached::End(at),
    };
    match skip(&mut text, offset) {
        // Shorter than the offset: nothing past it to read.
        Ok((skipped, _)) if skipped < offset => {
            return Ok(match damage {
                Some(error) => damaged(text.count, Some(error)),
                None => Reached::End(offset),
            });
        }
        // Stopped inside a line, as a plain file's read may (see below).
        Ok((_, last)) => {
            if offset > 0 && !last.is_some_and(|b| matches!(b, b'\n' | 0)) {
                ingest.begins_inside_a_line();
            }
        }
        Err(error) => return Ok(damaged(text.count, Some(error))),
    }
    match damage {
        // A compressed file is written whole: its last line is final, newline or not.
        None => match ingest.feed_all(&mut text) {
            Ok(consumed) => Ok(Reached::End(offset + consumed)),
            Err(error) => Ok(damaged(text.count, Some(error))),
        },
        // Cut short: its last line may be cut too, and is not read.
        Some(error) => Ok(match ingest.feed(&mut text) {
            Ok(_) => damaged(text.count, Some(error)),
            Err(error) => damaged(text.count, Some(error)),
        }),
    }
}

/// How much of a compressed file's text can be trusted, and what damage ends it: each gzip
/// member is decompressed once before a line of it is read, and one that fails its checksum
/// (or is otherwise corrupt) is trusted with none of its text, since the damage may lie
/// anywhere in it and a flipped bit can make another address of a line: a report to a
/// stranger about a host that sent nothing. A file cut short (a crash while it was
/// compressed) has no checksum to fail: its text up to the cut is read, as it was written.
fn trusted_text(file: &OpenFile) -> Trusted {
    let mut input = io::BufReader::new(file.at(0));
    let mut trusted = 0u64;
    let end = |trusted: u64, reach: u64, damage: Option<io::Error>| Trusted {
        trusted,
        reach,
        damage,
    };
    loop {
        match io::BufRead::fill_buf(&mut input) {
            Ok([]) => return end(trusted, trusted, None),
            Ok(_) => {}
            Err(e) => return end(trusted, trusted, Some(e)),
        }
        let mut member = Counted {
            inner: flate2::bufread::GzDecoder::new(&mut input),
            count: 0,
        };
        match io::copy(&mut member, &mut io::sink()) {
            Ok(n) => trusted += n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let cut = trusted + member.count;
                return end(cut, cut, Some(e));
            }
            Err(e) => return end(trusted, trusted + member.count, Some(e)),
        }
    }
}

/// What [`trusted_text`] found of a compressed file's text.
struct Trusted {
    /// The bytes of text that can be read.
    trusted: u64,
    /// The bytes of text decompressed before the damage (the untrusted member's included):
    /// where a cursor goes once the file was read, so that it is not read again.
    reach: u64,
    /// What ended the text short of the file's end.
    damage: Option<io::Error>,
}

/// Reads `file` from `offset` for the source at `source`: a damaged compressed file is read
/// up to the damage and named in a warning, the first time its damage is reached (a cursor
/// left at the damage reaches it again with nothing new: no second warning). Returns the
/// offset reached.
fn read_reporting(
    source: &Path,
    file: &OpenFile,
    offset: u64,
    ingest: &mut Ingest<'_>,
    damaged: &mut Vec<String>,
) -> Result<u64> {
    let which = if file.path == source {
        format!("source {}", source.display())
    } else {
        format!(
            "source {}: rotated file {}",
            source.display(),
            file.path.display()
        )
    };
    match read_file(file, offset, ingest).with_context(|| which.clone())? {
        Reached::End(end) => Ok(end),
        Reached::Damaged { at, error } => {
            if at != offset || offset == 0 {
                damaged.push(format!(
                    "{which} is damaged ({error}): read what it holds up to the damage, skipped the rest"
                ));
            }
            Ok(at)
        }
    }
}

/// Feeds `ingest` with what is new in the source at `path` since `cursor`. After `reread`,
/// `through` is the cursor the source had before it: the rule of [`Ingest::counted_before`]
/// holds up to that point, and what lies after it counts whatever its time.
pub fn read(
    path: &Path,
    cursor: Option<&Cursor>,
    through: Option<&Cursor>,
    start: StartAt,
    ingest: &mut Ingest<'_>,
    folders: &mut Folders,
) -> Result<SourceRead> {
    let mut looks = 0;
    let (live, now, home, found) = loop {
        looks += 1;
        let live = OpenFile::open(path).map_err(|e| source_error(path, e))?;
        // The live file as it was opened, before the folder is listed: a rotation after
        // this moment shows in the listing, or in the file's own text when it is read.
        let now = (live.as_ref().map(OpenFile::now).transpose())
            .with_context(|| format!("source {}", path.display()))?;
        let home = rotated_beside(path);
        let found = siblings(&home, live.as_ref(), folders);
        if looks == LOOKS || still_as_opened(path, &home, live.as_ref(), &found, folders) {
            break (live, now, home, found);
        }
    };
    let Siblings {
        mut rotated,
        unreadable,
        mut compressed,
        unlistable,
        ..
    } = found;
    if let Some(problem) = unlistable {
        anyhow::bail!("{problem}");
    }
    // The cursor's file neither at the path nor rotated beside it may have gone elsewhere in
    // the folder, under another name (a link moved on to the next dated file): it is found
    // there, as the newest of the files before the live one, to be read on from the cursor.
    if let Some(c) = cursor.filter(|c| !c.is_reread())
        && live
            .as_ref()
            .is_none_or(|l| (l.dev, l.ino) != (c.dev, c.ino))
        && !rotated
            .iter()
            .any(|s| (s.open.dev, s.open.ino) == (c.dev, c.ino))
        && let Some(moved) = moved_in_folder(&home, c, folders)
    {
        rotated.insert(0, moved);
    }
    // Behind a link, a file the cursor knows that is neither at the path nor rotated beside
    // it: the link's file a run found empty (see `read_opened`), which the link has moved on
    // from since. It is found in its folder by what it is, to be read from where it was known.
    if let Some(c) = cursor.filter(|c| !c.is_reread() && is_link(path)) {
        for k in &c.known_siblings {
            let here = |o: &OpenFile| (o.dev, o.ino) == (k.dev, k.ino);
            if live.as_ref().is_some_and(here) || rotated.iter().any(|s| here(&s.open)) {
                continue;
            }
            if let Some(found) = in_folder(&home, (k.dev, k.ino), k.born, &k.first_line, folders) {
                rotated.insert(0, found);
            }
        }
    }
    // A first read (or one after `reread`) is the one read of the rotated history: a file of
    // it passed over now is never read (later reads count only what is newer), so the read
    // waits for it as for a live file it cannot open.
    let history = match cursor {
        None => start == StartAt::Beginning,
        Some(c) => c.is_reread(),
    };
    // One that is no regular file (a folder named like a rotated file) holds no lines.
    if history && let Some(u) = unreadable.iter().find(|u| u.kind != NOT_REGULAR) {
        anyhow::bail!(
            "{}; the first read of a source reads its rotated files, so nothing of it is read until the run's user may read them (or they are moved away)",
            u.problem
        );
    }
    // A later read reads on where the last one stopped, through the files rotated since: one
    // of those it cannot open holds lines no run read, which passing it over would lose for
    // good (the cursor moves on to the file at the path). The read waits for it.
    if let Some(c) = cursor.filter(|_| !history)
        && let Some(u) = unreadable.iter().find(|u| u.may_hold_unread(c))
    {
        anyhow::bail!(
            "{}; it may hold lines logged since the last run, so the source is not read until the run's user may read it (or it is moved away)",
            u.problem
        );
    }
    let through = match through {
        Some(t) => {
            let live_first = now.as_ref().map(|n| n.fingerprint.as_slice());
            ReadThrough::among(t, live.as_ref().zip(live_first), &rotated)
        }
        None => ReadThrough::default(),
    };
    // The cursor's own file at the path, its text begun as before (a file cut back in place
    // still holds the text read last).
    let in_place = cursor.zip(now.as_ref()).is_some_and(|(c, n)| {
        ((n.dev, n.ino) == (c.dev, c.ino) && same_start(&c.fingerprint, &n.fingerprint))
            || edited_elsewhere(c, n, &rotated)
    });
    let mut read = read_opened(path, live, now, &rotated, cursor, start, through, ingest)?;
    // A file read to its end that cannot be opened now stays known as read, so that the
    // next run passes it over too (it knows only the files it listed and opened); so does
    // the file the last run's cursor was on, read to where it stopped.
    if let (Some(old), Some(next)) = (cursor, read.cursor.as_mut()) {
        let own = KnownFile {
            dev: old.dev,
            ino: old.ino,
            first_line: old.fingerprint.clone(),
            size: old.offset,
            gzip: Some(false),
            born: old.born,
        };
        for f in unreadable.iter().filter_map(|u| u.file.as_ref()) {
            let known = |k: &&KnownFile| f.is(k.dev, k.ino, k.born);
            if !next.known_siblings.iter().any(|k| known(&k))
                && let Some(k) = (old.known_siblings.iter())
                    .chain(std::iter::once(&own).filter(|_| f.size <= old.offset))
                    .find(known)
            {
                next.known_siblings.push(k.clone());
            }
        }
    }
    // A folder or a pipe named like a rotated file holds none of the log's text: nothing is
    // lost by passing it over, and nothing is said. The others (compressed otherwise than
    // with gzip, a file the run may not open) are said on every run that lists them.
    let mut standing: Vec<String> = (unreadable.into_iter())
        .filter(|u| u.kind != NOT_REGULAR)
        .map(|u| u.problem)
        .collect();
    standing.append(&mut compressed);
    // The text read last gone from the path and from the rotated files the run can read: a
    // loss, said once, by the run whose cursor leaves it for the file at the path (until that
    // file holds a line, the cursor stays, and each run would say it again). Where a rotated
    // file was passed over, the text may be there: those are named with it.
    let moved = |c: &Cursor| {
        (read.cursor.as_ref()).is_some_and(|n| {
            (n.dev, n.ino, n.offset, &n.fingerprint) != (c.dev, c.ino, c.offset, &c.fingerprint)
        })
    };
    // A cursor left on a rotated file it read to its end (the file at the path was empty
    // then) is said as that: a daemon not told of the rotation yet may have written on to it,
    // and a run cannot know how long the file was when it went.
    let read_whole = |c: &Cursor| {
        (c.known_siblings.iter())
            .any(|k| (k.dev, k.ino) == (c.dev, c.ino) && k.gzip != Some(true) && k.size == c.offset)
    };
    if let Some(c) = cursor.filter(|c| moved(c))
        && let Some(offset) = text_gone(c, in_place, &read.decision)
    {
        let (where_, passed) = match standing.is_empty() {
            true => ("", "rotated files are looked for beside the log"),
            false => (
                " that the run can read",
                "the rotated files it cannot read are named after this",
            ),
        };
        let what = match read_whole(c) {
            true => format!(
                "the rotated file the last run read to its end (byte {offset}) is neither beside the log nor at its path any more{where_}: lines written to it after that run, if any, were not read"
            ),
            false => format!(
                "the text it was read in last (to byte {offset}) is neither in the file at the path nor in a file rotated beside it{where_}: lines logged there after the last run, if any, were not read"
            ),
        };
        read.lost.push(format!(
            "source {}: {what} ({passed}; logrotate's `olddir` moves them away, `rotate 0` deletes them)",
            path.display()
        ));
        read.lost.append(&mut standing);
    }
    read.warnings = standing;
    Ok(read)
}

/// What keeps a run from the rotated files of the plain file `path`, as the run would say
/// it: a folder it may not list (which stops every run), or a rotated file it may not open
/// (which stops a first read, and a later one, after `cursor`, when it may hold lines no run
/// read; the flag: passed over, with a warning, holding none).
/// `folders` serves the files of one folder (a log host's thousands) with one listing.
/// Also the first rotated file compressed otherwise than with gzip, as a run says it: what
/// logrotate's `compresscmd` makes of every rotation, whose lines no run read are lost
/// (without `delaycompress`, those logged between the last run and each rotation).
pub fn history_unreadable(
    path: &Path,
    folders: &mut Folders,
    cursor: Option<&Cursor>,
) -> (Option<(String, bool)>, Option<String>) {
    let Some(live) = OpenFile::open(path).ok() else {
        return (None, None);
    };
    let found = siblings(&rotated_beside(path), live.as_ref(), folders);
    let compressed = found.compressed.into_iter().next();
    let later = cursor.filter(|c| !c.is_reread());
    let mut files: Vec<Unreadable> = (found.unreadable.into_iter())
        .filter(|u| u.kind != NOT_REGULAR)
        .collect();
    // One a run stops at first, else one it passes over.
    files.sort_by_key(|u| later.is_some_and(|c| !u.may_hold_unread(c)));
    let unreadable = (found.unlistable.map(|problem| (problem, false))).or_else(|| {
        let u = files.into_iter().next()?;
        let passed = later.is_some_and(|c| !u.may_hold_unread(c));
        Some((u.problem, passed))
    });
    (unreadable, compressed)
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The cursor's own file (its device and inode, and the first line it had) among the files
/// of `path`'s folder, whatever it is called now; looked for only when it is neither at the
/// path nor rotated beside it.
fn moved_in_folder(path: &Path, cursor: &Cursor, folders: &mut Folders) -> Option<Sibling> {
    in_folder(
        path,
        (cursor.dev, cursor.ino),
        cursor.born,
        &cursor.fingerprint,
        folders,
    )
}

/// The file of `path`'s folder that is the one known as `file` (device and inode), made
/// when it was (where the file system says) and starting with `first_line`, whatever its
/// name now.
fn in_folder(
    path: &Path,
    file: (u64, u64),
    born: Option<(i64, u32)>,
    first_line: &[u8],
    folders: &mut Folders,
) -> Option<Sibling> {
    use std::os::unix::fs::MetadataExt;
    let dir = folder_of(path);
    folders.names(dir).ok()?.iter().find_map(|name| {
        let entry = dir.join(name);
        let meta = fs::symlink_metadata(&entry).ok()?;
        if !meta.is_file() || (meta.dev(), meta.ino()) != file {
            return None;
        }
        let open = OpenFile::open(&entry).ok()??;
        // A file made after the known one was (a log of the folder that got its inode
        // number once it was deleted) is another file, however little of its first line
        // was known.
        if !born_alike(born, open.born) {
            return None;
        }
        let first = open.first_line().unwrap_or_default();
        same_start(first_line, &first).then_some(Sibling {
            open,
            first_line: first,
        })
    })
}

/// Whether `path` is a symbolic link.
fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The newest of `path`'s rotated files that can be opened (`messages.1`, `ufw.log-20261128`,
/// compressed or not), if any.
pub fn newest_rotated(path: &Path) -> Option<PathBuf> {
    let live = OpenFile::open(path).ok()?;
    let found = siblings(
        &rotated_beside(path),
        live.as_ref(),
        &mut Folders::default(),
    );
    found.rotated.into_iter().next().map(|s| s.open.path)
}

/// Where a source's rotated files are: beside the file itself. A path that is a symbolic link
/// (to a dated file, say, that logrotate renames where it is) has them beside the file it
/// points to, followed through links (the last one need not exist: its file may have been
/// renamed away); anything else, beside the path.
fn rotated_beside(path: &Path) -> PathBuf {
    let mut at = path.to_path_buf();
    // As many links as the system itself follows in a path, at most.
    for _ in 0..40 {
        let is_link = fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
        let Some(target) = is_link.then(|| fs::read_link(&at).ok()).flatten() else {
            break;
        };
        at = match at.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    at
}

/// A source that cannot be opened: a path that names no regular file is a configuration
/// error.
fn source_error(path: &Path, e: io::Error) -> anyhow::Error {
    let text = format!("source {}: {e}", path.display());
    if e.kind() == NOT_REGULAR {
        ConfigError(text).into()
    } else {
        anyhow::anyhow!(text)
    }
}

/// Where the text earlier runs read ends, for a read after `reread`: what lies before it
/// (the files before the one the source's cursor was in, and that file up to the cursor) was
/// read, and its packets counted then are passed over by their time; what lies after it no
/// run has read, and all of it counts, even lines stamped earlier than the last one counted
/// (a log host's host whose clock is behind). A file read after the cursor's that the cursor
/// knew as read (an older one that sorts after it by its time, compressed since) stays held to
/// the rule, up to where it was known. Where the cursor's file is not found (none was kept,
/// or the file is gone), the time alone decides everywhere, as it always did.
#[derive(Default)]
struct ReadThrough<'c> {
    /// The cursor, and its file (device and inode as it is now).
    through: Option<(&'c Cursor, (u64, u64))>,
    /// Whether that file was read.
    passed: bool,
    /// The rule as the source's read began.
    rule: Option<Vec<Option<i64>>>,
}

impl<'c> ReadThrough<'c> {
    /// Where `through` is among a source's files now: `live` (with its first line) and the
    /// rotated ones.
    fn among(through: &'c Cursor, live: Option<(&OpenFile, &[u8])>, rotated: &[Sibling]) -> Self {
        let files = (rotated.iter().map(|s| (&s.open, s.first_line.as_slice()))).chain(live);
        let file = (cursors_file(through, files.clone()))
            .and_then(|k| files.clone().nth(k))
            .map(|(f, _)| (f.dev, f.ino));
        Self {
            through: file.map(|file| (through, file)),
            passed: false,
            rule: None,
        }
    }

    /// [`read_reporting`] of `file` (`rotated`: as a rotated file) from `from`, held to the
    /// rule up to where earlier runs had read in it.
    fn read(
        &mut self,
        source: &Path,
        file: &OpenFile,
        rotated: Option<&Sibling>,
        from: u64,
        ingest: &mut Ingest<'_>,
        damaged: &mut Vec<String>,
    ) -> Result<u64> {
        let Some((cursor, id)) = self.through else {
            return read_reporting(source, file, from, ingest, damaged);
        };
        // Where in the file the rule ends (`None`: it holds for all of it). A file read after
        // the cursor's holds only what the cursor knew as read.
        let ends = if !self.passed && id == (file.dev, file.ino) {
            self.passed = true;
            Some(cursor.offset)
        } else if self.passed {
            match rotated {
                Some(s) => unread_part(cursor, s),
                None => Some(0),
            }
        } else {
            None
        };
        // The rule is given again for each file: a read lets go of it where it ends.
        let rule = self
            .rule
            .get_or_insert_with(|| ingest.counted_before_rule());
        ingest.counted_before(rule.clone());
        if let Some(end) = ends {
            ingest.counted_before_ends(end.saturating_sub(from));
        }
        read_reporting(source, file, from, ingest, damaged)
    }
}

/// Reads a source whose live file (if any) and rotated siblings are open already: nothing
/// here opens by path.
#[allow(clippy::too_many_arguments)]
fn read_opened(
    path: &Path,
    live: Option<OpenFile>,
    mut now: Option<FileNow>,
    rotated: &[Sibling],
    cursor: Option<&Cursor>,
    start: StartAt,
    mut through: ReadThrough,
    ingest: &mut Ingest<'_>,
) -> Result<SourceRead> {
    let shown = path.display();
    if let (Some(n), Some(file), Some(c)) = (now.as_mut(), live.as_ref(), cursor) {
        n.rewritten = copied_and_rewritten(file, c, rotated)
            .and_then(|copied| Ok(copied || cut_back_and_rewritten(file, c)?))
            .with_context(|| format!("source {shown}"))?;
        n.moved = moved_here(file, n, c, rotated).with_context(|| format!("source {shown}"))?;
    }
    if now.is_none() && cursor.is_none() {
        anyhow::bail!("source {shown}: no such file");
    }
    let mut decision = decide(cursor, now.as_ref(), rotated, start);
    // logrotate's `copy` with `compress` leaves the log as it was beside a compressed copy
    // of it: the copy's text is the log's, read there (it was counted twice, then once more
    // on every run once the oldest copies were deleted).
    if let (Some(file), Some(now)) = (live.as_ref(), now.as_ref()) {
        let c = decision.catchup_mut();
        let read: Vec<&Path> = (c.newer.iter().chain(&c.grown))
            .map(|r| r.path.as_path())
            .collect();
        let copies: Vec<PathBuf> = (rotated.iter())
            .filter(|s| read.contains(&s.open.path.as_path()))
            .filter(|s| compressed_copy_of(file, &now.fingerprint, s).unwrap_or(false))
            .map(|s| s.open.path.clone())
            .collect();
        c.newer.retain(|r| !copies.contains(&r.path));
        c.grown.retain(|r| !copies.contains(&r.path));
    }
    let mut known: Vec<KnownFile> = rotated.iter().map(Sibling::known).collect();
    let mut damaged = Vec::new();
    let mut next: Option<Cursor> = None;
    let mut known_empty: Option<KnownFile> = None;
    let sibling = |r: &Rotated| rotated.iter().position(|s| s.open.path == r.path);
    let catchup = decision.catchup();
    for file in &catchup.grown {
        let Some(i) = sibling(file) else { continue };
        let s = &rotated[i];
        // `copytruncate` still copying the live file, which this run reads on in from the
        // cursor: the copy's growth is the live file's text, counted there.
        if let (Decision::Append(_), Some(live), Some(now)) = (&decision, &live, &now)
            && let Some(size) = copy_of_live(live, &now.fingerprint, s)
                .with_context(|| format!("source {shown}"))?
        {
            known[i].size = size;
            continue;
        }
        let end = through.read(path, &s.open, Some(s), file.from, ingest, &mut damaged)?;
        if !s.open.gzip {
            known[i].size = end;
        }
        known[i].first_line = s.first_line_read();
    }
    if let (Some(old), Some(cursor)) = (&catchup.previous, cursor)
        && let Some(i) = sibling(old)
    {
        let s = &rotated[i];
        // A copy of the cursor's file (`copytruncate`'s) that the last run read as a rotated
        // file, the file itself truncated before the run could read on in it: read on from
        // where that read ended, not from where the cursor stopped in the file.
        let read_as_rotated = (cursor.known_siblings.iter())
            .filter(|k| !s.open.gzip && k.same_inode(&s.open) && k.same_kind(false))
            .filter(|k| same_start(&k.first_line, &s.first_line))
            .map(|k| k.size)
            .max();
        let from = cursor.offset.max(read_as_rotated.unwrap_or(0));
        let end = through.read(path, &s.open, Some(s), from, ingest, &mut damaged)?;
        if !s.open.gzip {
            known[i].size = end;
        }
        known[i].first_line = s.first_line_read();
        // Its first line may have been written since the cursor was taken.
        let fingerprint = if known[i].first_line.is_empty() {
            cursor.fingerprint.clone()
        } else {
            known[i].first_line.clone()
        };
        next = Some(Cursor {
            dev: cursor.dev,
            ino: cursor.ino,
            fingerprint,
            offset: end,
            known_siblings: Vec::new(),
            born: s.open.born.or(cursor.born),
            tail: Vec::new(),
        });
    }
    // The newest rotated file read from its start, and where its read ended.
    let mut last_read_whole = None;
    for file in &catchup.newer {
        let Some(i) = sibling(file) else { continue };
        let s = &rotated[i];
        let end = through.read(path, &s.open, Some(s), file.from, ingest, &mut damaged)?;
        if !s.open.gzip {
            known[i].size = end;
        }
        known[i].first_line = s.first_line_read();
        last_read_whole = (file.from == 0).then_some((s, end));
        next = Some(Cursor {
            dev: s.open.dev,
            ino: s.open.ino,
            fingerprint: known[i].first_line.clone(),
            offset: end,
            known_siblings: Vec::new(),
            born: s.open.born,
            tail: Vec::new(),
        });
    }
    if let (Some(file), Some(now)) = (&live, &now) {
        // Truncated and written to again since it was opened (`copytruncate` while the run
        // read the rotated files), the file holds another text from where its read would
        // start, and the cursor would take an offset in the one for an offset in the other.
        // It is left to the next run, which finds the copy and reads the new text from its
        // start. Looked at last thing before the read, and again after it (below).
        let begins = file
            .first_line()
            .with_context(|| format!("source {shown}"))?;
        // Empty when it was opened (or its first line unfinished), the file held nothing to
        // read then: what it holds now came since, perhaps after a `copytruncate` during the
        // run, whose copy has what came before and which the listing missed. It is left to
        // the next run, whose cursor then still knows no first line, and so reads the rotated
        // files it did not know before the file.
        let nothing_then = cursor.is_some() && !known_by_first_line(&now.fingerprint);
        // Behind a link moved on to a new file (a dated one, still empty): the cursor stays
        // on the file before, whose late lines are still read, and the new one is known as
        // it is, empty, so that the next run finds it wherever the link has moved on to by
        // then (a dated file is no rotated file of the next: it was lost, a day's lines).
        let moved_on = cursor.is_some_and(|c| (c.dev, c.ino) != (now.dev, now.ino));
        if nothing_then && moved_on && is_link(path) {
            known_empty = Some(KnownFile {
                dev: now.dev,
                ino: now.ino,
                first_line: Vec::new(),
                size: 0,
                gzip: Some(false),
                born: file.born,
            });
        }
        if same_start(&now.fingerprint, &begins) && !nothing_then {
            // A rotated file just read whole that is a copy of the live file's beginning
            // holds its first lines: logrotate's copytruncate copying it (or done copying,
            // the truncate still to come). The live file goes on after them.
            let copied = match last_read_whole {
                Some((s, end)) => copy_read_of(file, &begins, s, end)
                    .with_context(|| format!("source {shown}"))?,
                None => 0,
            };
            let from = match &decision {
                Decision::Append(_) => cursor.map_or(0, |c| c.offset).max(copied),
                Decision::Fresh(_) if cursor.is_none() && start == StartAt::End => file
                    .last_line_end()
                    .with_context(|| format!("source {shown}"))?,
                _ => copied,
            };
            // The cursor's own file, with the text it began with, read again from its start
            // where no copy of it was found: cut back in place (a crash that lost what was
            // not written to the disk yet, `truncate -s`) and perhaps written on. What is
            // left of the text an earlier run counted is passed over, as after `reread`.
            let cut_back = matches!(&decision, Decision::Restarted(c) if c.previous.is_none())
                && cursor.is_some_and(|c| {
                    (c.dev, c.ino) == (now.dev, now.ino)
                        && born_alike(c.born, file.born)
                        && known_by_first_line(&c.fingerprint)
                        && same_start(&c.fingerprint, &now.fingerprint)
                });
            // The same log on another inode, changed before where the runs had read (an
            // editor, `sed -i` on its earlier lines): it was read again whole, every packet
            // counted twice.
            let edited = matches!(&decision, Decision::Replaced(c) if c.previous.is_none())
                && cursor.is_some_and(|c| edited_elsewhere(c, now, rotated));
            // Cut back or edited, its offsets are no longer those of the text earlier runs
            // read: where that text ends is not known by position, and the time alone decides.
            let rule = (cut_back || edited).then(|| ingest.pass_over_counted_earlier());
            let end = match rule {
                Some(_) => read_reporting(path, file, from, ingest, &mut damaged),
                None => through.read(path, file, None, from, ingest, &mut damaged),
            };
            if let Some(rule) = rule {
                ingest.counted_before(rule);
            }
            let end = end?;
            // Truncated and written past the read's place while it was read (`copytruncate`
            // during the read), the file gave the read the new text's bytes at the old text's
            // offsets, lines of neither: what this run read cannot be kept, and it reads again.
            let Some(fingerprint) = first_line_after_read(&begins, file.first_line()) else {
                return Err(RewrittenWhileRead(path.to_path_buf()).into());
            };
            next = Some(Cursor {
                dev: now.dev,
                ino: now.ino,
                fingerprint,
                offset: end,
                known_siblings: Vec::new(),
                born: file.born,
                tail: Vec::new(),
            });
        }
    }
    let next = match next {
        // The rotated files as they were listed before reading, with how far each was
        // read: whatever appears later, or grows past that, holds unread lines.
        Some(mut c) => {
            c.known_siblings = known;
            // Read on to where it was (nothing new), the file's bytes there are the ones the
            // cursor kept, as the look for a cut-back has just found: not read again.
            let unmoved = cursor.filter(|o| {
                matches!(decision, Decision::Append(_))
                    && (o.dev, o.ino, o.offset) == (c.dev, c.ino, c.offset)
                    && !o.tail.is_empty()
            });
            let mut files = live.iter().chain(rotated.iter().map(|s| &s.open));
            if let Some(o) = unmoved {
                c.tail = o.tail.clone();
            } else if let Some(file) = files.find(|f| (f.dev, f.ino) == (c.dev, c.ino)) {
                c.tail = tail_before(file, c.offset).with_context(|| format!("source {shown}"))?;
            }
            Some(c)
        }
        None => cursor.cloned(),
    };
    let next = next.map(|mut c| {
        c.known_siblings.extend(known_empty);
        c
    });
    // A file read only up to its damage lost the rest for good: said once, by this run.
    Ok(SourceRead {
        decision,
        cursor: next,
        // The rotated files passed over are said by the caller, which listed them.
        warnings: Vec::new(),
        lost: damaged,
    })
}

/// Where the cursor's text ended, when a file other than the cursor's is at the path, and not
/// the cursor's log edited (or the cursor's was truncated and begins otherwise: not
/// `in_place`), and the cursor's text is not
/// found beside it: what was logged to it between the last run and its rotation is out of the
/// run's reach. Nothing is said of a cursor that read nothing.
fn text_gone(cursor: &Cursor, in_place: bool, decision: &Decision) -> Option<u64> {
    let gone = match decision {
        Decision::Replaced(c) | Decision::Restarted(c) => c.previous.is_none() && !in_place,
        _ => false,
    };
    (gone && cursor.offset > 0 && known_by_first_line(&cursor.fingerprint)).then_some(cursor.offset)
}

/// Reads complete lines from `offset` on, in as many threads as the `size` the file had
/// when the read began asks for; returns the bytes they took.
fn read_plain(file: &OpenFile, offset: u64, size: u64, ingest: &mut Ingest<'_>) -> io::Result<u64> {
    let parts = parts_for(size.saturating_sub(offset));
    if parts > 1 {
        return read_in_parts(file, offset, size, parts, ingest);
    }
    ingest.feed(file.at(offset))
}

/// From this many new bytes on, a file is read by more than one thread.
const PARALLEL_FROM: u64 = 32 << 20;

/// Each thread reads at least this much of a file, and there are never more than
/// [`MAX_PARTS`]: a thread costs a read buffer and a record of every source it sees.
const PART_AT_LEAST: u64 = 16 << 20;
const MAX_PARTS: usize = 16;

/// How many threads read `bytes` new bytes: one per core the machine gives this process.
fn parts_for(bytes: u64) -> usize {
    if bytes < PARALLEL_FROM {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_size = usize::try_from(bytes / PART_AT_LEAST).unwrap_or(MAX_PARTS);
    cores.clamp(2, MAX_PARTS).min(by_size).max(1)
}

/// Reads `[offset, size)` and on in `parts` pieces split at line boundaries, each on a
/// thread of its own, the last to the end (which may have grown). All read through the one
/// descriptor, each at its own offsets.
fn read_in_parts(
    file: &OpenFile,
    offset: u64,
    size: u64,
    parts: usize,
    ingest: &mut Ingest<'_>,
) -> io::Result<u64> {
    let mut starts = vec![offset];
    let mut probe = Vec::with_capacity(1 << 16);
    for k in 1..parts as u64 {
        let at = offset + (size - offset) / parts as u64 * k;
        if at <= *starts.last().unwrap_or(&offset) {
            continue;
        }
        probe.clear();
        file.at_until(at, at + (1 << 20)).read_to_end(&mut probe)?;
        // A piece without a line end near its start joins the one before it.
        if let Some(newline) = memchr::memchr(b'\n', &probe) {
            let split = at + newline as u64 + 1;
            if split > *starts.last().unwrap_or(&offset) && split < size {
                starts.push(split);
            }
        }
    }
    // A thread that starts mid-file reads on from the time of the packet line before its
    // piece, as one thread reading the whole would. A piece that starts after a line of
    // autumn's repeated hour would not know which of the two hours its lines are in, nor
    // one whose line before is too far back to look for: it joins the piece before it.
    let mut after = Vec::with_capacity(starts.len());
    let mut kept = vec![offset];
    for &split in &starts[1..] {
        let known = match time_before(file, offset, split, ingest)? {
            Before::Line((_, true)) | Before::Unknown => continue,
            Before::Line((t, false)) => Some(t),
            Before::None => ingest.followed(),
        };
        kept.push(split);
        after.push(known);
    }
    let starts = kept;
    if starts.len() == 1 {
        return ingest.feed(file.at(offset));
    }
    // Each behind a lock taken once, by whichever thread reads its piece.
    let forks: Vec<std::sync::Mutex<Ingest<'_>>> = (after.iter().zip(&starts[1..]))
        .map(|(&t, &from)| {
            let mut fork = ingest.fork_at(from - offset);
            fork.follows(t);
            std::sync::Mutex::new(fork)
        })
        .collect();
    let piece = |i: usize| {
        let (from, until) = (starts[i + 1], starts.get(i + 2).copied());
        let mut fork = forks[i].lock().unwrap_or_else(|e| e.into_inner());
        match until {
            Some(until) => fork.feed(file.at_until(from, until)),
            None => fork.feed(file.at(from)),
        }
    };
    let (first, rest) = std::thread::scope(|scope| {
        // A piece whose thread the system refuses (a limit on tasks, no memory for a stack)
        // is read by this thread after its own: slower, the same result.
        let workers: Vec<_> = (0..forks.len())
            .map(|i| {
                std::thread::Builder::new()
                    .name("read".into())
                    .spawn_scoped(scope, move || piece(i))
                    .ok()
            })
            .collect();
        let first = ingest.feed(file.at_until(offset, starts[1]));
        let rest: Vec<_> = (workers.into_iter().enumerate())
            .map(|(i, worker)| match worker {
                Some(thread) => thread.join().map_err(|_| ()),
                None => Ok(piece(i)),
            })
            .collect();
        (first, rest)
    });
    // A piece read short of its end met the end of the file: it was truncated while read
    // (logrotate's `copytruncate`). What the read counts must be one stretch from `offset`, as
    // the cursor says: the pieces after a short one are let go of, uncounted, and the next
    // run reads on from where it stopped (in the copy, where those lines are).
    let mut total = first?;
    let mut whole = total >= starts[1] - offset;
    let mut kept = Vec::with_capacity(forks.len());
    for ((i, read), fork) in rest.into_iter().enumerate().zip(forks) {
        if !whole {
            break;
        }
        let read = read.map_err(|()| io::Error::other("reading thread failed"))??;
        total += read;
        kept.push(fork);
        whole = starts
            .get(i + 2)
            .is_none_or(|until| read >= until - starts[i + 1]);
    }
    for fork in kept {
        ingest.absorb(fork.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    Ok(total)
}

/// A read that resumes `file` (`size` bytes long) at `offset` (a line start) with lines to
/// read past it goes on from the lines in the 64 KiB before it (see
/// [`Ingest::follows_lines`]); in a zone whose clock never shows a time twice, or with
/// nothing new, nothing is read for it.
fn follow_lines_before(
    file: &OpenFile,
    offset: u64,
    size: u64,
    ingest: &mut Ingest<'_>,
) -> io::Result<()> {
    if offset == 0 || !ingest.reads_on_from_lines() || size <= offset {
        return Ok(());
    }
    let from = offset.saturating_sub(LOOK_BACK);
    let mut text = Vec::with_capacity((offset - from) as usize);
    file.at_until(from, offset).read_to_end(&mut text)?;
    // The window may begin inside a line: that part is not a line.
    let whole = match memchr::memchr(b'\n', &text) {
        Some(i) if from > 0 => &text[i + 1..],
        None if from > 0 => &[][..],
        _ => &text[..],
    };
    ingest.follows_lines(whole, from == 0);
    Ok(())
}

/// What comes before a point of a file: the last line there that a search takes.
enum Before<T> {
    /// What the search took of the last line it takes.
    Line(T),
    /// No such line since the start looked from.
    None,
    /// None in as much as is looked at.
    Unknown,
}

/// The last line of `file` before `end` (a line end, or the end of a file being written) and
/// from `start` (a line start) on that `take` takes, and what it took: looked for in each of
/// `reaches` bytes before `end` in turn, never before `start`.
fn last_line_before<T>(
    file: &OpenFile,
    start: u64,
    end: u64,
    reaches: &[u64],
    mut take: impl FnMut(&[u8]) -> Option<T>,
) -> io::Result<Before<T>> {
    let mut text = Vec::new();
    for &reach in reaches {
        let from = end.saturating_sub(reach).max(start);
        text.clear();
        file.at_until(from, end).read_to_end(&mut text)?;
        let lines = text.strip_suffix(b"\n").unwrap_or(&text);
        // Lines end at a newline or a crash's NUL bytes, as the reader has it.
        let mut lines = lines.rsplit(|b| *b == b'\n' || *b == 0).peekable();
        while let Some(line) = lines.next() {
            // The first piece may be the end of a line begun before the window.
            if lines.peek().is_none() && from > start {
                break;
            }
            if let Some(found) = take(line) {
                return Ok(Before::Line(found));
            }
        }
        if from == start {
            return Ok(Before::None);
        }
    }
    Ok(Before::Unknown)
}

/// The last line before `end` (a line end) of `file` that a read from `start` (a line start)
/// would follow (see [`Ingest::stamp_time`]): looked for in the 64 KiB before `end`, then in
/// the MiB before, never before `start`. In a zone whose clock never shows a time twice,
/// nothing is looked for: what came before changes no reading.
fn time_before(
    file: &OpenFile,
    start: u64,
    end: u64,
    ingest: &Ingest<'_>,
) -> io::Result<Before<(i64, bool)>> {
    if !ingest.reads_on_from_lines() {
        return Ok(Before::None);
    }
    last_line_before(file, start, end, &[LOOK_BACK, 1 << 20], |line| {
        ingest.stamp_time(line)
    })
}

/// A sample of a source's text for `check`, read from a regular file only and never more
/// than `max` bytes: the end of a plain file (from its first whole line), the start of a
/// compressed one (what it holds up to any damage).
pub fn sample(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = OpenFile::open(path)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
    let mut out = Vec::new();
    if file.gzip {
        let _ = file.text().take(max).read_to_end(&mut out);
        return Ok(out);
    }
    // The size its descriptor gave when it was opened: no second look at the file.
    let size = file.size;
    let from = size.saturating_sub(max);
    file.at_until(from, size).read_to_end(&mut out)?;
    if from > 0 {
        let start = memchr::memchr(b'\n', &out).map_or(out.len(), |i| i + 1);
        out.drain(..start);
    }
    Ok(out)
}

/// Where a source is read from again after `reread`.
#[derive(Debug)]
pub struct RereadFrom {
    pub cursor: Cursor,
    pub start: RereadStart,
}

/// Where the next run starts reading a source again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RereadStart {
    /// At the start of its oldest rotated file.
    Oldest,
    /// In this file at this offset into its text: the first packet logged since then.
    At(PathBuf, u64),
    /// Nothing was logged since then: at the end of the live file.
    NothingSince,
    /// The source's cursor is before that point already: the next run reads on from it, and
    /// so reads everything since then, and what no run read before it.
    Behind,
}

/// The cursor that makes the next run read the source at `path` again: from the start of its
/// oldest rotated file, or, with `since` (Unix seconds), from the first packet logged at or
/// after that time (a log's files are in time order: what precedes it is not read again).
pub fn reread_from(
    path: &Path,
    since: Option<(i64, &mut LineParser)>,
    current: Option<&Cursor>,
) -> Result<RereadFrom> {
    let shown = path.display();
    let Some((since, parser)) = since else {
        return Ok(RereadFrom {
            cursor: Cursor::reread(),
            start: RereadStart::Oldest,
        });
    };
    let live = OpenFile::open(path).map_err(|e| source_error(path, e))?;
    // A file compressed other than with gzip holds nothing a reread could start in.
    let Siblings {
        rotated,
        unreadable,
        unlistable,
        ..
    } = siblings(
        &rotated_beside(path),
        live.as_ref(),
        &mut Folders::default(),
    );
    // One that is no regular file (a folder named like a rotated file) holds no lines.
    if let Some(problem) = (unlistable.into_iter())
        .chain(
            unreadable
                .into_iter()
                .filter(|u| u.kind != NOT_REGULAR)
                .map(|u| u.problem),
        )
        .next()
    {
        anyhow::bail!("{problem}");
    }
    let oldest_first: Vec<&OpenFile> = rotated
        .iter()
        .rev()
        .map(|s| &s.open)
        .chain(live.as_ref())
        .collect();
    // Where the source's cursor is among them: a point after it would have the next run pass
    // over lines no run has read.
    let live_first = match &live {
        Some(l) => l.first_line().unwrap_or_default(),
        None => Vec::new(),
    };
    let first_lines: Vec<&[u8]> = (rotated.iter().rev())
        .map(|s| s.first_line.as_slice())
        .chain(live.as_ref().map(|_| live_first.as_slice()))
        .collect();
    let at = (current.filter(|c| !c.is_reread())).and_then(|c| {
        let files = oldest_first
            .iter()
            .copied()
            .zip(first_lines.iter().copied());
        cursors_file(c, files).map(|k| (k, c.offset))
    });
    let behind = |point: (usize, u64)| {
        at.is_some_and(|here| here < point).then(|| RereadFrom {
            cursor: current.cloned().unwrap_or_else(Cursor::reread),
            start: RereadStart::Behind,
        })
    };
    for (k, file) in oldest_first.iter().enumerate() {
        let Some(offset) = first_packet_since(file, since, parser) else {
            continue;
        };
        if let Some(behind) = behind((k, offset)) {
            return Ok(behind);
        }
        if k == 0 && offset == 0 {
            return Ok(RereadFrom {
                cursor: Cursor::reread(),
                start: RereadStart::Oldest,
            });
        }
        let cursor = Cursor {
            dev: file.dev,
            ino: file.ino,
            fingerprint: file
                .first_line()
                .with_context(|| format!("source {shown}: {}", file.path.display()))?,
            offset,
            known_siblings: rotated.iter().rev().take(k).map(Sibling::known).collect(),
            born: file.born,
            tail: tail_before(file, offset)
                .with_context(|| format!("source {shown}: {}", file.path.display()))?,
        };
        return Ok(RereadFrom {
            cursor,
            start: RereadStart::At(file.path.clone(), offset),
        });
    }
    // Nothing logged since then: the next run reads only what comes.
    let Some(file) = live.as_ref() else {
        anyhow::bail!("source {shown}: no such file");
    };
    let offset = file
        .last_line_end()
        .with_context(|| format!("source {shown}"))?;
    if let Some(behind) = behind((oldest_first.len() - 1, offset)) {
        return Ok(behind);
    }
    Ok(RereadFrom {
        cursor: Cursor {
            dev: file.dev,
            ino: file.ino,
            fingerprint: file.first_line().unwrap_or_default(),
            offset,
            known_siblings: rotated.iter().map(Sibling::known).collect(),
            born: file.born,
            tail: tail_before(file, offset).with_context(|| format!("source {shown}"))?,
        },
        start: RereadStart::NothingSince,
    })
}

/// Which of a source's files (each with the text it begins with) is the one `c` was taken
/// in: its own inode (not a file that has its number since: made later, or beginning
/// otherwise), or, compressed since under a new inode, the gzip file that begins as it did.
fn cursors_file<'f>(
    c: &Cursor,
    files: impl Iterator<Item = (&'f OpenFile, &'f [u8])> + Clone,
) -> Option<usize> {
    let begins = |first: &[u8]| same_start(&c.fingerprint, first);
    let its_own = |(f, first): (&OpenFile, &[u8])| {
        (f.dev, f.ino) == (c.dev, c.ino) && born_alike(c.born, f.born) && begins(first)
    };
    let compressed = |(f, first): (&OpenFile, &[u8])| {
        f.gzip && known_by_first_line(&c.fingerprint) && begins(first)
    };
    (files.clone().position(its_own)).or_else(|| files.clone().position(compressed))
}

/// The offset of the first complete line of `file` holding a packet logged at or after
/// `since`; a damaged compressed file is searched up to the damage.
fn first_packet_since(file: &OpenFile, since: i64, parser: &mut LineParser) -> Option<u64> {
    // Its lines dated as a run dates them (see `written`).
    parser.written_at(None, None);
    let (modified, last) = written(file, |line, near| parser.time_near(line, near)).ok()?;
    parser.written_at(modified, last);
    let mut text = io::BufReader::with_capacity(1 << 20, file.text());
    let mut line = Vec::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        match text.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let whole = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        // A crash's NUL bytes end a line too, as the reader has it: the line after them is
        // one of its own, and may be the first of the time asked for.
        let mut start = 0;
        for piece in body.split(|b| *b == 0) {
            let ended = start + piece.len() < body.len() || whole;
            if !piece.is_empty()
                && ended
                && let Line::Packet(p) = parser.parse(piece)
                && p.time >= since
            {
                return Some(offset + start as u64);
            }
            start += piece.len() + 1;
        }
        if !whole {
            return None;
        }
        offset += line.len() as u64;
    }
}

/// The files a source's `path` names: itself, or every match of a glob pattern
/// (`/var/log/remote/*/messages`), leaving out matches that are rotated siblings of another.
/// Whether `path` is `OTHER.…` or `OTHER-…` for some `OTHER` among `names` in its folder.
pub(crate) fn is_rotated_sibling_of_any(
    path: &Path,
    names: &std::collections::HashSet<PathBuf>,
) -> bool {
    is_rotated_from(path, |other| names.contains(other))
}

/// Whether `path` is a rotated copy of `of` in its folder (`OF.1`, `OF-20260125.gz`: see
/// [`is_rotation_suffix`]).
pub(crate) fn is_rotated_sibling_of(path: &Path, of: &Path) -> bool {
    is_rotated_from(path, |other| other == of)
}

/// Whether `path` is a rotated copy of some `OTHER` in its folder that `named` is true of.
fn is_rotated_from(path: &Path, named: impl Fn(&Path) -> bool) -> bool {
    let Some(name) = path.file_name().map(|n| n.as_encoded_bytes()) else {
        return false;
    };
    let folder = path.parent().unwrap_or(Path::new(""));
    (1..name.len())
        .filter(|&cut| is_rotation_suffix(&name[cut..]))
        .any(|cut| {
            use std::os::unix::ffi::OsStrExt;
            named(&folder.join(std::ffi::OsStr::from_bytes(&name[..cut])))
        })
}

/// Refuses a glob whose files are in a folder the run's user may not look into (a log host's
/// per-host folder made 0700 by rsyslog): a glob passes over what it cannot see, and that
/// host's lines would never be read, without a word, where a file it cannot open stops the
/// run.
fn unreadable_folder(pattern: &Path) -> Result<()> {
    let wild = |p: &Path| p.to_string_lossy().contains(['*', '?', '[']);
    let (Some(parent), Some(last)) = (pattern.parent(), pattern.file_name()) else {
        return Ok(());
    };
    let folders: Vec<PathBuf> = if wild(parent) {
        // A folder hidden higher up (`remote/*/fw/kern.log`, the host's folder 0700) hides
        // the files below it as well.
        unreadable_folder(parent)?;
        glob::glob(&parent.to_string_lossy())
            .map(|found| found.filter_map(|m| m.ok()).collect())
            .unwrap_or_default()
    } else {
        vec![parent.to_path_buf()]
    };
    let literal = !wild(Path::new(last));
    // lost+found, made by mkfs where a file system is mounted (a log host's own volume for
    // its hosts' folders), is root's and holds no logs.
    let logs = |f: &&PathBuf| f.is_dir() && f.file_name().is_none_or(|n| n != "lost+found");
    for folder in folders.iter().filter(logs) {
        // A name is looked up with search permission alone; a pattern needs the listing.
        let looked = match literal {
            true => fs::symlink_metadata(folder.join(last)).map(|_| ()),
            false => fs::read_dir(folder).map(|_| ()),
        };
        if let Err(e) = looked
            && e.kind() == io::ErrorKind::PermissionDenied
        {
            anyhow::bail!(
                "source {}: folder {} cannot be read: {e}; the files in it are not read until the run's user may read it",
                pattern.display(),
                folder.display()
            );
        }
    }
    Ok(())
}

/// Why `path`, a file a glob matched before, is no file to read now: something else in its
/// place (a folder, a FIFO, a socket, a device) or a link that loops. `None` for a regular
/// file, and for nothing at all (a file that went is followed where it went).
pub fn no_file_now(path: &Path) -> Option<String> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Some(format!(
            "not a regular file now ({})",
            file_kind(&meta.file_type())
        )),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Some("a link that loops now (too many levels of links)".to_string())
        }
        _ => None,
    }
}

pub fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    // A path that names a file is that file, whatever its name holds: a log host's folder
    // named for an IPv6 sender (`[2001:db8::1]`) is no pattern.
    if !text.contains(['*', '?', '[']) || fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut matches: Vec<PathBuf> = glob::glob(&text)
        .with_context(|| format!("source {text}: bad glob pattern"))?
        .filter_map(|m| m.ok())
        .filter(|p| p.is_file())
        .collect();
    unreadable_folder(path)?;
    matches.sort();
    // A match that is another match's rotated sibling (`messages.1`, `kern.log-20260125`)
    // is that file's history, not a source. Looked up by name, not compared with every
    // other match: a log host's glob matches thousands of files.
    let names: std::collections::HashSet<PathBuf> = matches.iter().cloned().collect();
    matches.retain(|m| !is_rotated_sibling_of_any(m, &names));
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read whole is read to its end within the limit, and refused past it.
    #[test]
    fn a_file_read_whole_is_refused_past_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranges.txt");
        fs::write(&path, "3.5.140.0/22\n").unwrap();
        assert_eq!(read_regular(&path, 13).unwrap(), b"3.5.140.0/22\n");
        let e = read_regular(&path, 12).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("13 bytes"), "{e}");
        let missing = read_regular(&dir.path().join("nope"), 13).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let device = read_regular(Path::new("/dev/zero"), 13).unwrap_err();
        assert!(
            device.to_string().contains("a character device"),
            "{device}"
        );
    }

    fn now(dev: u64, ino: u64, size: u64, fp: &[u8]) -> FileNow {
        FileNow {
            dev,
            ino,
            size,
            gzip: false,
            fingerprint: fp.to_vec(),
            rewritten: false,
            moved: false,
        }
    }

    /// The rotated siblings of `path`, its folder listed afresh.
    fn siblings_of(path: &Path, live: Option<&OpenFile>) -> Vec<Sibling> {
        siblings(path, live, &mut Folders::default()).rotated
    }

    /// What logrotate and savelog name a rotated copy, and what other logs are called.
    #[test]
    fn rotated_copies_are_told_from_other_logs_by_their_suffix() {
        for rotated in [
            ".1",
            ".0",
            ".12",
            ".2.gz",
            ".3.xz",
            ".1.bz2",
            "-20260125",
            "-20260125.gz",
            "-2026012513",
            ".2026-01-25",
            "-2026-01-25_1737800000",
            ".20260125.zst",
            "-2026",
            "-2026.gz",
            "-2026-01",
            "-202601",
        ] {
            assert!(is_rotation_suffix(rotated.as_bytes()), "{rotated}");
        }
        for other in [
            "",
            ".",
            "-",
            ".gz",
            "-1",
            "-12",
            "-dmz",
            ".example.org",
            ".log",
            ".bak",
            "-old",
            "_20260125",
            ".1a",
            "-1001",
            "-123",
            "-3000",
            ".1.log",
            "-web-20260125",
            ".-1",
        ] {
            assert!(!is_rotation_suffix(other.as_bytes()), "{other}");
        }
    }

    /// A rotated file and its `.gz` while gzip writes it: the plain file, opened, is the one
    /// read; what gzip has written so far is not read as well.
    #[test]
    fn a_gz_beside_its_plain_file_is_left_to_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, "live\n").unwrap();
        fs::write(dir.path().join("messages.1"), "one\ntwo\n").unwrap();
        let gz = File::create(dir.path().join("messages.1.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"one\n").unwrap();
        std::io::Write::flush(&mut enc).unwrap();
        let live = OpenFile::open(&path).unwrap().unwrap();
        let rotated = siblings_of(&path, Some(&live));
        let names: Vec<_> = rotated.iter().map(|s| s.open.path.clone()).collect();
        assert_eq!(names, vec![dir.path().join("messages.1")]);
    }

    /// [`read`] of one source in a run of its own.
    fn read_alone(
        path: &Path,
        cursor: Option<&Cursor>,
        ingest: &mut Ingest<'_>,
    ) -> Result<SourceRead> {
        read(
            path,
            cursor,
            None,
            StartAt::Beginning,
            ingest,
            &mut Folders::default(),
        )
    }

    fn cursor(dev: u64, ino: u64, offset: u64, fp: &[u8]) -> Cursor {
        Cursor {
            dev,
            ino,
            fingerprint: fp.to_vec(),
            offset,
            known_siblings: Vec::new(),
            born: None,
            tail: Vec::new(),
        }
    }

    #[test]
    fn decision_table_names_each_case() {
        let c = cursor(1, 10, 100, b"first\n");
        let decide =
            |c: Option<&Cursor>, n: Option<&FileNow>| decide(c, n, &[], StartAt::Beginning);
        assert_eq!(
            decide(None, Some(&now(1, 10, 5, b"x"))),
            Decision::Fresh(Catchup::default())
        );
        assert_eq!(
            decide(Some(&Cursor::reread()), Some(&now(1, 10, 5, b"x"))),
            Decision::Fresh(Catchup::default()),
            "reread"
        );
        assert_eq!(
            decide(Some(&c), Some(&now(1, 10, 150, b"first\n"))),
            Decision::Append(Catchup::default())
        );
        assert_eq!(
            decide(Some(&c), Some(&now(1, 10, 100, b"first\n"))),
            Decision::Append(Catchup::default())
        );
        assert_eq!(
            decide(Some(&c), Some(&now(1, 10, 20, b"first\n"))),
            Decision::Restarted(Catchup::default()),
            "copytruncate: shrank"
        );
        assert_eq!(
            decide(Some(&c), Some(&now(1, 10, 500, b"other\n"))),
            Decision::Restarted(Catchup::default()),
            "copytruncate then grew past the offset, or inode reuse"
        );
        assert_eq!(
            decide(Some(&c), Some(&now(1, 11, 500, b"first\n"))),
            Decision::Replaced(Catchup::default())
        );
        assert_eq!(
            decide(Some(&c), None),
            Decision::Missing(Catchup::default())
        );
    }

    #[test]
    fn finds_renamed_and_compressed_siblings_and_what_rotated_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, b"first line\nsecond\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        let c = cursor(meta.dev(), meta.ino(), 11, b"first line\n");
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, b"new file\n").unwrap();
        let found = catch_up(&siblings_of(&path, None), &c);
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
        write_gz(&dir.path().join("messages.2.gz"), b"first line\nsecond\n");
        fs::remove_file(dir.path().join("messages.1")).unwrap();
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, b"newest\n").unwrap();
        let found = catch_up(&siblings_of(&path, None), &c);
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

    /// Writes a log large enough to be read by two threads; returns its packet lines.
    fn big_log(path: &Path) -> u64 {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(File::create(path).unwrap());
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
        n
    }

    fn parser() -> LineParser {
        LineParser::new(
            &["INPUT-DROP:".to_string()],
            crate::clock::Zone::Utc,
            chrono::Utc::now(),
        )
    }

    fn one_provider(_: std::net::IpAddr) -> crate::ingest::Attribution {
        crate::ingest::Attribution {
            in_provider: true,
            candidates: [0].into_iter().collect(),
            ..Default::default()
        }
    }

    fn scan<'a>() -> Ingest<'a> {
        scan_with(parser)
    }

    /// A scan of one source whose lines `parser` reads, each address in a provider.
    fn scan_with<'a>(parser: fn() -> LineParser) -> Ingest<'a> {
        let mut scan = Ingest::new(parser(), 1, 5, 50, &one_provider, crate::spool::for_tests());
        scan.begin_source(parser());
        scan
    }

    #[test]
    fn log_renamed_between_open_and_read_is_read_whole_through_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let n = big_log(&path);
        let size = fs::metadata(&path).unwrap().len();
        let live = OpenFile::open(&path).unwrap().unwrap();
        let ino = live.ino;
        // logrotate runs between identifying the file and reading it.
        fs::rename(&path, dir.path().join("messages.1")).unwrap();
        fs::write(&path, "Jan 25 11:00:00 web1 CRON[1]: a new file\n").unwrap();
        let rotated = siblings_of(&path, Some(&live));
        assert!(
            rotated.is_empty(),
            "the renamed live file is not also history"
        );
        let mut first = scan();
        let now = live.now().unwrap();
        let done = read_opened(
            &path,
            Some(live),
            Some(now),
            &rotated,
            None,
            StartAt::Beginning,
            ReadThrough::default(),
            &mut first,
        )
        .unwrap();
        let cursor = done.cursor.unwrap();
        assert_eq!((cursor.ino, cursor.offset), (ino, size));
        let summary = first.finish().unwrap().summary;
        assert_eq!(
            summary.lines_matched, n,
            "both halves came from the file identified, none from the new one"
        );
        assert_eq!(summary.bytes_read, size);

        // The next run finds it rotated, read to its end, and reads only the new file.
        let mut second = scan();
        let again = read_alone(&path, Some(&cursor), &mut second).unwrap();
        assert!(
            matches!(again.decision, Decision::Replaced(_)),
            "{:?}",
            again.decision
        );
        let summary = second.finish().unwrap().summary;
        assert_eq!((summary.lines_read, summary.lines_matched), (1, 0));
    }

    /// A drop line, one second after the one before, from one of a few sources.
    fn numbered_line(n: u64) -> String {
        format!(
            "Jan 25 10:{:02}:{:02} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.208.{}.{} DST=198.51.100.10 LEN=60 PROTO=UDP SPT={} DPT=53 LEN=40\n",
            n / 60 % 60,
            n % 60,
            n % 7,
            n % 13 + 1,
            n + 1
        )
    }

    /// A first read of `path` whose sources `attribute` attributes (and which may change the
    /// files when the read meets its first source): the cursor it leaves, and the lines it
    /// matched.
    fn first_read_with(
        path: &Path,
        attribute: &(dyn Fn(std::net::IpAddr) -> crate::ingest::Attribution + Sync),
    ) -> (Cursor, u64) {
        let mut first = Ingest::new(parser(), 1, 5, 50, attribute, crate::spool::for_tests());
        first.begin_source(parser());
        let cursor = read_alone(path, None, &mut first).unwrap().cursor.unwrap();
        (cursor, first.finish().unwrap().summary.lines_matched)
    }

    /// logrotate's `copytruncate`, the first time it is asked: `path` copied to `copy`, then
    /// emptied in place.
    fn copy_truncate_once(done: &std::sync::atomic::AtomicBool, path: &Path, copy: &Path) {
        if !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            copy_truncate(path, copy);
        }
    }

    /// logrotate's `copytruncate`: `path` copied to `copy`, then emptied in place.
    fn copy_truncate(path: &Path, copy: &Path) {
        fs::copy(path, copy).unwrap();
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    /// A scan of one source, its sources attributed by `attribute`, reading 4 KiB at a time:
    /// a file changed from `attribute` is changed a buffer or so into the read.
    fn scan_in_small_buffers<'a>(
        attribute: &'a (dyn Fn(std::net::IpAddr) -> crate::ingest::Attribution + Sync),
    ) -> Ingest<'a> {
        let mut scan = Ingest::new(parser(), 1, 5, 50, attribute, crate::spool::for_tests());
        scan.set_buffer_size(4096);
        scan.begin_source(parser());
        scan
    }

    /// A first read whose attribution does `during` once, at the first new source (a buffer
    /// of 4 KiB into the read): whether the read was spoilt by a log rewritten while it was
    /// read, and else its cursor and the lines it matched.
    fn first_read_disturbed(
        path: &Path,
        during: &(dyn Fn() + Sync),
    ) -> Result<(Cursor, crate::ingest::Batch)> {
        let done = std::sync::atomic::AtomicBool::new(false);
        let disturb_then_attribute = |ip| {
            if !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
                during();
            }
            one_provider(ip)
        };
        let mut first = scan_in_small_buffers(&disturb_then_attribute);
        let read = read_alone(path, None, &mut first)?;
        Ok((read.cursor.unwrap(), first.finish().unwrap()))
    }

    /// The first read is spoilt by a log rewritten in place while it was read: the run reads
    /// again from where it began, as `intake` does, and then each run after it reads what is
    /// new. Each address's packets of `logged`, counted by those reads, once each.
    fn counted_after_reading_again(
        path: &Path,
        during: &(dyn Fn() + Sync),
        then: impl FnOnce(),
        logged: impl Iterator<Item = u64>,
    ) -> Cursor {
        let Err(spoilt) = first_read_disturbed(path, during) else {
            panic!("the read is not spoilt");
        };
        assert!(spoilt.is::<RewrittenWhileRead>(), "{spoilt:#}");
        let mut again = scan();
        let cursor = read_alone(path, None, &mut again).unwrap().cursor.unwrap();
        let again = again.finish().unwrap();
        then();
        let mut next = scan();
        read_alone(path, Some(&cursor), &mut next).unwrap();
        let next = next.finish().unwrap();
        let mut counted = std::collections::BTreeMap::new();
        for o in again.observations.iter().chain(next.observations.iter()) {
            *counted.entry(o.ip).or_insert(0) += o.hits;
        }
        let mut expected = std::collections::BTreeMap::new();
        let mut lines = 0;
        for n in logged {
            let ip: std::net::IpAddr = format!("34.208.{}.{}", n % 7, n % 13 + 1).parse().unwrap();
            *expected.entry(ip).or_insert(0) += 1;
            lines += 1;
        }
        assert!(counted == expected, "each address's packets, once");
        assert_eq!(
            again.summary.lines_matched + next.summary.lines_matched,
            lines
        );
        cursor
    }

    /// logrotate's `copytruncate` lands while a run reads the file; then the daemon writes
    /// past where the read stopped. The run reads again (the copy, then the empty log), and
    /// the next run reads the new text from its start: every line once.
    #[test]
    fn copytruncate_during_a_read_then_more_lines_counts_every_line_once() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, lines(0..2000)).unwrap();
        let copy = dir.path().join("messages.1");
        let copytruncate = || copy_truncate_once(&Default::default(), &path, &copy);
        let new = lines(5000..8000);
        let write_on = || {
            let mut log = File::options().append(true).open(&path).unwrap();
            log.write_all(new.as_bytes()).unwrap();
        };
        let cursor = counted_after_reading_again(
            &path,
            &copytruncate,
            write_on,
            (0..2000).chain(5000..8000),
        );
        assert!(copy.exists(), "logrotate copied the log during the read");
        // The daemon wrote on past where the read after the copy stopped.
        assert!(new.len() as u64 > cursor.offset);
    }

    /// logrotate's `copytruncate` lands while a run reads the log, and the daemon writes more
    /// than the read had reached before the read goes on: the rest of the read would be the new
    /// text's bytes at the old text's offsets, lines of neither. The run keeps none of that
    /// read and reads again: the copy, then the new text; every line once, none in another's
    /// place.
    #[test]
    fn copytruncate_and_more_lines_during_the_logs_own_read_count_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, lines(0..2000)).unwrap();
        let copy = dir.path().join("messages.1");
        let rewrite = || {
            copy_truncate_once(&Default::default(), &path, &copy);
            fs::write(&path, lines(5000..8000)).unwrap();
        };
        let cursor =
            counted_after_reading_again(&path, &rewrite, || {}, (0..2000).chain(5000..8000));
        assert!(copy.exists(), "logrotate copied the log during the read");
        let new = lines(5000..5001);
        assert_eq!(
            cursor.fingerprint,
            new.as_bytes(),
            "known by the first line it holds now"
        );
    }

    /// Writes `text` gzip-compressed to `path`, as logrotate's `compress` does (a new file).
    fn write_gz(path: &Path, text: &[u8]) {
        let mut enc =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, text).unwrap();
        enc.finish().unwrap();
    }

    /// `delaycompress`, the daemon's reopen still to come: a run lists `messages.1` empty (or
    /// with its first line unfinished), and the daemon's lines land in it before the run
    /// reads it. The run reads them; once logrotate has compressed the file (another inode),
    /// the next run knows its text and does not count it again.
    #[test]
    fn a_rotated_file_listed_empty_that_got_lines_before_its_read_is_known_once_compressed() {
        use std::io::Write;
        for unfinished in [0, 20] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("messages");
            let rotated = dir.path().join("messages.1");
            let text = lines(0..3);
            fs::write(&path, &text.as_bytes()[..unfinished]).unwrap();
            let (cursor, first) = first_read_with(&path, &one_provider);
            assert_eq!(first, 0);
            // The daemon keeps writing to the file it has open, renamed.
            let mut daemon = File::options().append(true).open(&path).unwrap();
            fs::rename(&path, &rotated).unwrap();
            fs::write(&path, b"").unwrap();
            // The run lists the folder; then the daemon's lines land; then the run reads.
            let live = OpenFile::open(&path).unwrap();
            let now = live.as_ref().map(|l| l.now().unwrap());
            let listed = siblings_of(&path, live.as_ref());
            assert_eq!(listed[0].first_line, &text.as_bytes()[..unfinished]);
            daemon.write_all(&text.as_bytes()[unfinished..]).unwrap();
            let mut second = scan();
            let read = read_opened(
                &path,
                live,
                now,
                &listed,
                Some(&cursor),
                StartAt::Beginning,
                ReadThrough::default(),
                &mut second,
            )
            .unwrap();
            assert_eq!(second.finish().unwrap().summary.lines_matched, 3);
            let cursor = read.cursor.unwrap();
            // logrotate's next run compresses it.
            write_gz(&dir.path().join("messages.1.gz"), text.as_bytes());
            fs::remove_file(&rotated).unwrap();
            let mut third = scan();
            read_alone(&path, Some(&cursor), &mut third).unwrap();
            assert_eq!(
                third.finish().unwrap().summary.lines_matched,
                0,
                "read once, unfinished first line: {unfinished} bytes"
            );
        }
    }

    /// logrotate shifts a compressed file (`.1.gz` to `.2.gz`) between a run's opens of the
    /// names it listed, and the run opens the one file under both: a file with two names
    /// (here two links) is read once.
    #[test]
    fn a_rotated_file_under_two_names_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, lines(10..12)).unwrap();
        let one = dir.path().join("messages.1.gz");
        write_gz(&one, lines(0..5).as_bytes());
        fs::hard_link(&one, dir.path().join("messages.2.gz")).unwrap();
        let live = OpenFile::open(&path).unwrap();
        let listed = siblings_of(&path, live.as_ref());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].open.path, one, "under the newer name");
        let (_, first) = first_read_with(&path, &one_provider);
        assert_eq!(first, 7);
    }

    /// A read of `path` from `cursor` during which `meanwhile` runs at `moment`: right after
    /// the folder is listed, or once the files listed are opened. The cursor it leaves and
    /// the lines it matched.
    fn read_while(
        path: &Path,
        cursor: &Cursor,
        moment: Moment,
        meanwhile: impl FnOnce() + 'static,
    ) -> (Cursor, u64) {
        let mut folders = Folders {
            meanwhile: Some((moment, Box::new(meanwhile))),
            ..Folders::default()
        };
        let mut ingest = scan();
        let read = read(
            path,
            Some(cursor),
            None,
            StartAt::Beginning,
            &mut ingest,
            &mut folders,
        )
        .unwrap();
        (
            read.cursor.unwrap(),
            ingest.finish().unwrap().summary.lines_matched,
        )
    }

    /// A read of `path` from `cursor` with nothing happening meanwhile.
    fn read_quietly(path: &Path, cursor: &Cursor) -> (Cursor, u64) {
        read_while(path, cursor, Moment::Listed, || {})
    }

    /// `path`'s text compressed beside it as `path.gz`, and `path` removed: logrotate's
    /// `compress`.
    fn gzip_away(path: &Path) {
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        write_gz(Path::new(&gz), &fs::read(path).unwrap());
        fs::remove_file(path).unwrap();
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write;
        let mut file = File::options()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    /// `create` and `compress` without `delaycompress`: a whole rotation lands between a
    /// read's listing and its opens. The live file it opened before (renamed, compressed and
    /// gone meanwhile) and the new `messages.1.gz` hold one text: read once.
    #[test]
    fn a_rotation_between_the_listing_and_the_opens_counts_the_old_live_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let (one, one_gz, two_gz) = (
            dir.path().join("messages.1"),
            dir.path().join("messages.1.gz"),
            dir.path().join("messages.2.gz"),
        );
        fs::write(&path, lines(0..1)).unwrap();
        let (cursor, first) = first_read_with(&path, &one_provider);
        fs::rename(&path, &one).unwrap();
        fs::write(&path, "").unwrap();
        gzip_away(&one);
        append(&path, &lines(1..2));
        let rotate = {
            let (path, one, one_gz, two_gz) = (path.clone(), one.clone(), one_gz, two_gz);
            move || {
                fs::rename(&one_gz, &two_gz).unwrap();
                fs::rename(&path, &one).unwrap();
                fs::write(&path, "").unwrap();
                gzip_away(&one);
            }
        };
        let (cursor, during) = read_while(&path, &cursor, Moment::Listed, rotate);
        let (_, after) = read_quietly(&path, &cursor);
        assert_eq!((first, during, after), (1, 1, 0));
    }

    /// `copytruncate` lands once a read has opened the files it listed, before it reads, and
    /// the daemon writes on: the lines logged before the copy, unread, are in a copy the
    /// read did not open.
    /// Every line counted once over the reads.
    #[test]
    fn a_copytruncate_between_the_opens_and_the_read_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let (one, two) = (dir.path().join("messages.1"), dir.path().join("messages.2"));
        let copytruncate = |path: &Path, one: &Path, two: &Path| {
            if one.exists() {
                fs::rename(one, two).unwrap();
            }
            copy_truncate(path, one);
        };
        fs::write(&path, lines(0..1)).unwrap();
        let (cursor, mut counted) = first_read_with(&path, &one_provider);
        copytruncate(&path, &one, &two);
        append(&path, &lines(1..2));
        let (cursor, n) = read_quietly(&path, &cursor);
        counted += n;
        append(&path, &lines(2..4));
        let rotate = {
            let (path, one, two) = (path.clone(), one.clone(), two.clone());
            move || {
                copytruncate(&path, &one, &two);
                append(&path, &lines(4..6));
            }
        };
        let (cursor, n) = read_while(&path, &cursor, Moment::Opened, rotate);
        counted += n;
        let (_, n) = read_quietly(&path, &cursor);
        assert_eq!(counted + n, 6, "every line once");
    }

    /// `compress` done, and its unlink, between a read's listing and its opens: the cursor's
    /// file, renamed with lines unread, is gone under the name listed and is the new `.gz`.
    /// Every line counted once over the reads.
    #[test]
    fn a_compress_between_the_listing_and_the_opens_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let one = dir.path().join("messages.1");
        fs::write(&path, lines(0..1)).unwrap();
        let (cursor, first) = first_read_with(&path, &one_provider);
        append(&path, &lines(1..2));
        fs::rename(&path, &one).unwrap();
        fs::write(&path, "").unwrap();
        let compress = {
            let (path, one) = (path.clone(), one.clone());
            move || {
                gzip_away(&one);
                append(&path, &lines(2..4));
            }
        };
        let (cursor, during) = read_while(&path, &cursor, Moment::Listed, compress);
        let (_, after) = read_quietly(&path, &cursor);
        assert_eq!(first + during + after, 4, "every line once");
    }

    /// A run lists the log's copy while logrotate's `copytruncate` is still making it (half
    /// its bytes there); the next run finds the copy grown, with the log not truncated yet.
    /// The growth is the log's own text, which the cursor reads on in: not counted again
    /// from the copy. After the truncate, the new lines: every line once.
    #[test]
    fn a_copy_still_being_made_that_grows_is_not_read_as_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let copy = dir.path().join("messages.1");
        let old = lines(0..100);
        fs::write(&path, &old).unwrap();
        let (cursor, first) = first_read_with(&path, &one_provider);
        assert_eq!(first, 100);
        let read_on = |cursor: &Cursor| {
            let mut next = scan();
            let read = read_alone(&path, Some(cursor), &mut next).unwrap();
            let counted = next.finish().unwrap().summary.lines_matched;
            (read.cursor.unwrap(), counted)
        };
        fs::write(&copy, &old.as_bytes()[..old.len() / 2]).unwrap();
        let (cursor, during) = read_on(&cursor);
        fs::write(&copy, &old).unwrap();
        let (cursor, copied) = read_on(&cursor);
        assert_eq!(
            (during, copied),
            (0, 0),
            "the copy's lines are the log's, counted once"
        );
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        fs::write(&path, lines(200..230)).unwrap();
        let (_, after) = read_on(&cursor);
        assert_eq!(after, 30, "then the new lines alone");
    }

    /// A first read meets `copytruncate` done copying: the copy is read whole as a rotated
    /// file, and logrotate truncates the log while the run is at the copy, before it reads
    /// the log. The next run reads on in the copy from where that read ended (nothing is
    /// left), not from where the cursor stopped in the truncated log, and then the new lines.
    #[test]
    fn a_copy_read_whole_before_its_log_was_truncated_is_not_read_again() {
        use std::io::Write;
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let old: String = (0..2000).map(numbered_line).collect();
        fs::write(&path, &old).unwrap();
        fs::write(dir.path().join("messages.1"), &old).unwrap();
        let truncated = AtomicBool::new(false);
        let truncate_then_attribute = |ip| {
            if !truncated.swap(true, std::sync::atomic::Ordering::SeqCst) {
                File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
            one_provider(ip)
        };
        let (cursor, read_first) = first_read_with(&path, &truncate_then_attribute);
        assert_eq!(read_first, 2000);
        let mut log = File::options().append(true).open(&path).unwrap();
        let new: String = (5000..5100).map(numbered_line).collect();
        log.write_all(new.as_bytes()).unwrap();
        let mut second = scan();
        read_alone(&path, Some(&cursor), &mut second).unwrap();
        let read_second = second.finish().unwrap().summary.lines_matched;
        assert_eq!(read_second, 100, "the new lines, and not the copy again");
    }

    /// Numbered lines `from..to`.
    fn lines(range: std::ops::Range<u64>) -> String {
        range.map(numbered_line).collect()
    }

    /// Three reads of a log that `copytruncate` rotates twice: the log starts with `start`,
    /// gets `appended` and is copied and truncated (then gets `after`, if any); the second
    /// read meets the second copytruncate while it reads the first copy: the log gets
    /// `during` (if any), is copied and truncated again, and gets `last`. The lines each read
    /// matched.
    fn copytruncated_again_during_a_run(
        start: std::ops::Range<u64>,
        appended: std::ops::Range<u64>,
        after: Option<std::ops::Range<u64>>,
        during: Option<std::ops::Range<u64>>,
        last: std::ops::Range<u64>,
    ) -> (u64, u64, u64) {
        use std::io::Write;
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let (copy, older) = (dir.path().join("messages.1"), dir.path().join("messages.2"));
        fs::write(&path, lines(start)).unwrap();
        let (cursor, first) = first_read_with(&path, &one_provider);
        let mut log = File::options().append(true).open(&path).unwrap();
        log.write_all(lines(appended).as_bytes()).unwrap();
        copy_truncate_once(&AtomicBool::new(false), &path, &copy);
        if let Some(after) = after {
            fs::write(&path, lines(after)).unwrap();
        }
        let again = AtomicBool::new(false);
        let rotate_again = |ip| {
            if !again.swap(true, std::sync::atomic::Ordering::SeqCst) {
                if let Some(during) = during.clone() {
                    fs::write(&path, lines(during)).unwrap();
                }
                fs::rename(&copy, &older).unwrap();
                copy_truncate_once(&AtomicBool::new(false), &path, &copy);
                fs::write(&path, lines(last.clone())).unwrap();
            }
            one_provider(ip)
        };
        let mut second = Ingest::new(parser(), 1, 5, 50, &rotate_again, crate::spool::for_tests());
        second.begin_source(parser());
        let cursor = read_alone(&path, Some(&cursor), &mut second)
            .unwrap()
            .cursor
            .unwrap();
        let second = second.finish().unwrap().summary.lines_matched;
        let mut third = scan();
        read_alone(&path, Some(&cursor), &mut third).unwrap();
        (first, second, third.finish().unwrap().summary.lines_matched)
    }

    /// logrotate's `copytruncate` comes twice in a row: the run finishes the first copy, and
    /// while it does, the log is copied and truncated again and new lines written, more than
    /// the run would have read past. The log's new text is not read from where the old one
    /// was to be read, nor taken for the old: it is left to the next run, which reads the
    /// second copy and then the log, every line once.
    #[test]
    fn a_log_truncated_and_written_again_while_the_run_reads_its_copy_is_left_to_the_next_run() {
        let read = copytruncated_again_during_a_run(0..2, 2..5, Some(10..13), None, 20..26);
        assert_eq!(read, (2, 3, 3 + 6));
    }

    /// The log is empty when the run opens it, just after a `copytruncate`; while the run
    /// finishes the copy, lines come, the log is copied and truncated again, and more lines
    /// come. What it holds when it is read came after the second copy: the cursor is not
    /// moved on in it as if the run had seen it from its start, and the next run reads the
    /// second copy, which the run's listing missed, and then the log: every line once.
    #[test]
    fn a_log_empty_when_opened_and_copytruncated_during_the_run_is_left_to_the_next_run() {
        let read = copytruncated_again_during_a_run(0..1, 1..3, None, Some(10..15), 20..23);
        assert_eq!(read, (1, 2, 5 + 3));
    }

    /// The same, with the file read by several threads: the pieces after the first one read
    /// short (it met the truncated file's end) are let go of, so that what the read counts is
    /// one stretch from the start, and the copy read on from there holds the rest: no error,
    /// every line once.
    #[test]
    fn copytruncate_during_a_read_in_parts_counts_every_line_once() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let line = numbered_line;
        let old: String = (0..40_000).map(line).collect();
        fs::write(&path, &old).unwrap();
        let copy = dir.path().join("messages.1");
        let copied = AtomicBool::new(false);
        let rotate_then_attribute = |ip| {
            copy_truncate_once(&copied, &path, &copy);
            one_provider(ip)
        };
        let mut first = scan_in_small_buffers(&rotate_then_attribute);
        let file = OpenFile::open(&path).unwrap().unwrap();
        let read = read_in_parts(&file, 0, old.len() as u64, 4, &mut first).unwrap();
        assert!(copied.load(Ordering::SeqCst));
        assert!(read < old.len() as u64, "the truncation cut the read short");
        // Nothing at all, when another thread met the truncation before this one read a byte.
        let end = (read as usize).checked_sub(1).map(|i| old.as_bytes()[i]);
        assert!(end.is_none_or(|b| b == b'\n'), "a line's end");
        let read_first = first.finish().unwrap().summary.lines_matched;
        let mut second = scan();
        let mut rest = File::open(&copy).unwrap();
        std::io::Seek::seek(&mut rest, std::io::SeekFrom::Start(read)).unwrap();
        second.feed(rest).unwrap();
        let read_second = second.finish().unwrap().summary.lines_matched;
        assert_eq!(read_first + read_second, 40_000);
    }

    #[test]
    fn first_line_known_after_a_read_grows_only_from_the_one_before() {
        let line = b"Jan 25 10:00:00 web1 kernel: first\n".to_vec();
        let half = line[..10].to_vec();
        assert_eq!(
            first_line_after_read(&half, Ok(line.clone())),
            Some(line.clone())
        );
        assert_eq!(
            first_line_after_read(b"", Ok(line.clone())),
            Some(line.clone())
        );
        assert_eq!(
            first_line_after_read(&line, Ok(line.clone())),
            Some(line.clone())
        );
        assert_eq!(first_line_after_read(&line, Ok(Vec::new())), None);
        assert_eq!(
            first_line_after_read(&line, Ok(b"Jan 26 other\n".to_vec())),
            None
        );
        assert_eq!(
            first_line_after_read(&line, Err(io::Error::other("gone"))),
            None
        );
    }

    /// Every match compared with every other: the plain way to find rotated siblings.
    fn rotated_siblings_reference(matches: &[PathBuf]) -> Vec<PathBuf> {
        matches
            .iter()
            .filter(|m| {
                matches.iter().any(|other| {
                    other != *m
                        && other.parent() == m.parent()
                        && m.to_string_lossy()
                            .strip_prefix(other.to_string_lossy().as_ref())
                            .is_some_and(|rest| is_rotation_suffix(rest.as_bytes()))
                })
            })
            .cloned()
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn rotated_siblings_found_by_name_are_those_found_by_comparing_all(
            names in proptest::collection::vec(
                (0usize..3, "(messages|kern|a|web)([.-](1|2\\.gz|log|20260125|2026-01-25|dmz|example)){0,2}\\.?"),
                0..12,
            ),
        ) {
            let mut matches: Vec<PathBuf> = names
                .iter()
                .map(|(folder, name)| Path::new(["/l/a", "/l/b", "/l/a.1"][*folder]).join(name))
                .collect();
            matches.sort();
            matches.dedup();
            let set: std::collections::HashSet<PathBuf> = matches.iter().cloned().collect();
            let fast: Vec<PathBuf> = matches
                .iter()
                .filter(|m| is_rotated_sibling_of_any(m, &set))
                .cloned()
                .collect();
            proptest::prop_assert_eq!(fast, rotated_siblings_reference(&matches));
        }
    }

    #[test]
    fn first_read_goes_through_rotated_history_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        for (name, text) in [("messages.1", "one\n"), ("messages", "live\n")] {
            fs::write(dir.path().join(name), text).unwrap();
        }
        for n in 2..=4 {
            write_gz(
                &dir.path().join(format!("messages.{n}.gz")),
                format!("{n}\n").as_bytes(),
            );
        }
        let live = OpenFile::open(&path).unwrap().unwrap();
        let rotated = siblings_of(&path, Some(&live));
        let now = live.now().unwrap();
        let Decision::Fresh(history) = decide(None, Some(&now), &rotated, StartAt::Beginning)
        else {
            panic!("a first read")
        };
        let names: Vec<String> = history
            .newer
            .iter()
            .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "messages.4.gz",
                "messages.3.gz",
                "messages.2.gz",
                "messages.1"
            ]
        );
        assert_eq!(
            decide(None, Some(&now), &rotated, StartAt::End),
            Decision::Fresh(Catchup::default()),
            "start_at = \"end\" skips history"
        );
    }

    #[test]
    fn fifo_and_device_are_refused_without_waiting_or_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = OpenFile::open(path).err().unwrap();
            assert_eq!(e.kind(), NOT_REGULAR);
            assert_eq!(e.to_string(), format!("not a regular file ({kind})"));
            assert!(sample(path, 1 << 20).is_err());
        }
    }
    #[test]
    fn reading_in_two_threads_sees_exactly_what_one_thread_sees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let n = big_log(&path);
        let mut two = scan();
        let file = OpenFile::open(&path).unwrap().unwrap();
        let Reached::End(consumed) = read_file(&file, 0, &mut two).unwrap() else {
            panic!("damaged")
        };
        let mut one = scan();
        assert_eq!(one.feed(File::open(&path).unwrap()).unwrap(), consumed);
        let (two, one) = (two.finish().unwrap(), one.finish().unwrap());
        assert_eq!(consumed, fs::metadata(&path).unwrap().len());
        assert_eq!(two.summary, one.summary);
        assert_eq!(two.summary.lines_matched, n);
        assert_eq!(two.observations, one.observations);
        assert!(!two.evidence[0].is_empty());
    }

    /// The file's last lines are looked at for when it was written: a tail of one line end
    /// (a long last line), none, or nothing at all is read as any file is, never a panic (a
    /// tail with one line end was cut from after it to before it).
    #[test]
    fn a_file_whose_tail_holds_one_line_end_or_none_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let line = "Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40\n";
        let long = "x".repeat(5000);
        for (name, text) in [
            ("one end in the tail", format!("{line}{long}\n")),
            ("an end at the tail's start", format!("{long}\n{line}")),
            ("none", long.clone()),
            ("empty", String::new()),
            ("one line", line.to_string()),
            ("past 64 KiB", format!("{}{line}", "y".repeat(70_000))),
        ] {
            let path = dir.path().join("messages");
            fs::write(&path, &text).unwrap();
            let file = OpenFile::open(&path).unwrap().unwrap();
            let mut read = scan();
            let Reached::End(consumed) = read_file(&file, 0, &mut read).unwrap() else {
                panic!("{name}: damaged")
            };
            let whole = text.rfind('\n').map_or(0, |i| i + 1) as u64;
            assert_eq!(consumed, whole, "{name}");
        }
    }

    /// As many threads as the machine has cores, not two: every count is the same.
    #[test]
    fn reading_in_many_parts_sees_exactly_what_one_thread_sees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let n = big_log(&path);
        let size = fs::metadata(&path).unwrap().len();
        let mut one = scan();
        assert_eq!(one.feed(File::open(&path).unwrap()).unwrap(), size);
        let one = one.finish().unwrap();
        let file = OpenFile::open(&path).unwrap().unwrap();
        for parts in [3, 7] {
            let mut many = scan();
            assert_eq!(
                read_in_parts(&file, 0, size, parts, &mut many).unwrap(),
                size
            );
            let many = many.finish().unwrap();
            assert_eq!(many.summary, one.summary, "{parts} parts");
            assert_eq!(many.summary.lines_matched, n);
            assert_eq!(many.observations, one.observations, "{parts} parts");
        }
        assert_eq!(parts_for(PARALLEL_FROM - 1), 1);
        assert!(parts_for(PARALLEL_FROM) >= 2);
        assert!(parts_for(u64::MAX) <= MAX_PARTS);
    }

    /// A log over Berlin's repeated autumn hour, a line every second from 01:00 to 04:00 local
    /// time: `34.208.0.1` logs in the first pass of 02:00-03:00 only, `34.208.0.2` in the
    /// second only, `34.208.0.3` all along; `extra`, if given, after each line of the second
    /// pass.
    fn autumn_log_with(path: &Path, extra: Option<&str>) {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(File::create(path).unwrap());
        // 01:00:00 +02:00, in Unix seconds.
        let start = 1_792_882_800i64;
        let berlin = crate::clock::Zone::parse("Europe/Berlin").unwrap();
        for t in start..start + 4 * 3600 {
            let local = berlin.at(t);
            let offset = local.offset().local_minus_utc();
            let hour = local.format("%H").to_string();
            let ip = match (hour.as_str(), offset) {
                ("02", 7200) => "34.208.0.1",
                ("02", _) => "34.208.0.2",
                _ => "34.208.0.3",
            };
            writeln!(out, "{} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40", local.format("%b %e %H:%M:%S")).unwrap();
            if let (Some(extra), "34.208.0.2") = (extra, ip) {
                writeln!(out, "{extra}").unwrap();
            }
        }
        out.flush().unwrap();
    }

    /// A parser of Berlin's time the day after its autumn log.
    fn berlin_parser() -> LineParser {
        LineParser::new(
            &["INPUT-DROP:".to_string()],
            crate::clock::Zone::parse("Europe/Berlin").unwrap(),
            chrono::DateTime::parse_from_rfc3339("2026-10-26T00:00:00Z")
                .unwrap()
                .to_utc(),
        )
    }

    fn berlin_scan<'a>() -> Ingest<'a> {
        scan_with(berlin_parser)
    }

    /// The first and last packet times and the packets of `ip` in `batch`.
    fn seen(batch: &crate::ingest::Batch, ip: &str) -> (i64, i64, u64) {
        let o = batch.observations.get(&ip.parse().unwrap()).unwrap();
        (o.first_seen, o.last_seen, o.hits)
    }

    /// 34.208.0.2's packets in the autumn log: the hour's second pass, 02:00:00 and 02:59:59
    /// +01:00.
    const SECOND_PASS: (i64, i64, u64) = (1_792_890_000, 1_792_893_599, 3600);

    /// A thread that starts reading in the second pass of the repeated hour reads it as the
    /// second, as one thread reading the whole file does, not an hour early.
    #[test]
    fn a_thread_starting_in_the_repeated_hour_reads_it_as_one_thread_does() {
        let one = parts_agree_with_one_thread_in(None, None);
        // 02:00:00 and 02:59:59 +02:00, then +01:00.
        assert_eq!(
            seen(&one, "34.208.0.1"),
            (1_792_886_400, 1_792_889_999, 3600)
        );
    }

    /// Reads the autumn log with `extra` after each second-pass line in one thread and in
    /// several, which must agree line for line.
    fn parts_agree_with_one_thread(extra: &str) {
        parts_agree_with_one_thread_in(Some(extra), None);
    }

    /// Reads the autumn log, with `extra` after each second-pass line if given, in one thread
    /// and in several, the reader's buffer `buffer` bytes long if given: they must agree
    /// line for line, with the second pass read as the second. What one thread read.
    fn parts_agree_with_one_thread_in(
        extra: Option<&str>,
        buffer: Option<usize>,
    ) -> crate::ingest::Batch {
        let berlin_scan = || {
            let mut scan = berlin_scan();
            if let Some(bytes) = buffer {
                scan.set_buffer_size(bytes);
            }
            scan
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        autumn_log_with(&path, extra);
        let size = fs::metadata(&path).unwrap().len();
        let mut one = berlin_scan();
        assert_eq!(one.feed(File::open(&path).unwrap()).unwrap(), size);
        let one = one.finish().unwrap();
        assert_eq!(seen(&one, "34.208.0.2"), SECOND_PASS);
        let file = OpenFile::open(&path).unwrap().unwrap();
        for parts in [2, 3, 4, 5, 8, 16] {
            let mut many = berlin_scan();
            assert_eq!(
                read_in_parts(&file, 0, size, parts, &mut many).unwrap(),
                size
            );
            let many = many.finish().unwrap();
            assert_eq!(seen(&many, "34.208.0.2"), SECOND_PASS, "{parts} parts");
            assert_eq!(many.summary, one.summary, "{parts} parts");
            assert_eq!(many.observations, one.observations, "{parts} parts");
        }
        one
    }

    /// After `reread`, the rule of what earlier runs counted holds up to where they had read,
    /// and no further: read by one thread or in pieces, with any read size, the packet lines
    /// that start before that point are passed over, and those after it count.
    #[test]
    fn the_rule_of_what_was_counted_ends_where_earlier_runs_read_in_every_piece() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let mut text = String::new();
        let mut packets_at = Vec::new();
        for i in 0..40 {
            if i % 7 == 3 {
                text.push_str("Jan 25 10:00:00 web1 sshd[7]: Connection closed by 192.0.2.1\n");
            }
            packets_at.push(text.len() as u64);
            text.push_str(&format!(
                "Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.208.0.{i} DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40\n"
            ));
        }
        fs::write(&path, &text).unwrap();
        let size = text.len() as u64;
        let file = OpenFile::open(&path).unwrap().unwrap();
        let mut points: Vec<u64> = (packets_at.iter())
            .flat_map(|&at| [at.saturating_sub(1), at, at + 1])
            .chain([0, size - 1, size, size + 9])
            .collect();
        points.sort_unstable();
        points.dedup();
        for through in points {
            let before = packets_at.iter().filter(|&&at| at < through).count() as u64;
            for buffer in [None, Some(200), Some(333)] {
                for parts in [1, 2, 3, 5] {
                    let mut scan = scan_with(parser);
                    if let Some(bytes) = buffer {
                        scan.set_buffer_size(bytes);
                    }
                    scan.counted_before(vec![Some(i64::MAX)]);
                    scan.counted_before_ends(through);
                    let read = match parts {
                        1 => scan.feed(File::open(&path).unwrap()).unwrap(),
                        _ => read_in_parts(&file, 0, size, parts, &mut scan).unwrap(),
                    };
                    assert_eq!(read, size);
                    let summary = scan.finish().unwrap().summary;
                    let case = format!("through {through}, buffer {buffer:?}, {parts} parts");
                    assert_eq!(summary.lines_read, 46, "{case}");
                    assert_eq!(summary.lines_matched, 40, "{case}");
                    assert_eq!(summary.lines_counted_before, before, "{case}");
                }
            }
        }
    }

    /// A packet line, then a line longer than the read's buffer and than the 64 KiB a cut back
    /// is looked for in, still being written (no line end yet); and what is written after: the
    /// junk line's rest, a prefix in it, then a packet line of its own.
    fn junk_being_written() -> (String, String) {
        let packet = |ip: &str| {
            format!(
                "Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40\n"
            )
        };
        let junk = format!("Jan 25 10:00:00 web1 app: {}", "x".repeat(70_000));
        (
            packet("34.208.0.1") + &junk,
            " INPUT-DROP: the rest of the junk\n".to_string() + &packet("34.208.0.2"),
        )
    }

    /// A read of the junk line's rest and the line after it: one line, a packet.
    fn rest_read_as_one_line(summary: &crate::ingest::Summary, rest: &str) {
        assert_eq!(summary.lines_read, 1, "{summary:?}");
        assert_eq!(summary.lines_malformed, 0, "{summary:?}");
        assert_eq!(summary.lines_matched, 1, "{summary:?}");
        assert_eq!(summary.bytes_read, rest.len() as u64, "{summary:?}");
    }

    /// A line longer than the read's buffer, still being written when a run came, is counted
    /// once, as junk, by the read that met its start (which passes over it to the end of the
    /// file); the next read starts inside it, and passes over its rest rather than count it as
    /// a line of its own (it was counted twice, and as malformed when a prefix was in it).
    #[test]
    fn the_rest_of_a_junk_line_a_read_stopped_in_is_no_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let (head, rest) = junk_being_written();
        fs::write(&path, &head).unwrap();
        let folders = &mut Folders::default();
        let scan_of = || {
            let mut scan = scan_with(parser);
            scan.set_buffer_size(256);
            scan
        };
        let mut first = scan_of();
        let read = super::read(&path, None, None, StartAt::Beginning, &mut first, folders).unwrap();
        assert_eq!(first.finish().unwrap().summary.lines_read, 2);
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(rest.as_bytes())
            .unwrap();
        let mut second = scan_of();
        super::read(
            &path,
            read.cursor.as_ref(),
            None,
            StartAt::Beginning,
            &mut second,
            folders,
        )
        .unwrap();
        rest_read_as_one_line(&second.finish().unwrap().summary, &rest);
    }

    /// The same in the file compressed since (rotated and gzipped before the next run), which
    /// is read on from the same place in its text.
    #[test]
    fn the_rest_of_a_junk_line_is_no_line_of_its_own_in_the_file_compressed_since() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages.1.gz");
        let (head, rest) = junk_being_written();
        let mut gz = flate2::write::GzEncoder::new(
            fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all((head.clone() + &rest).as_bytes()).unwrap();
        gz.finish().unwrap();
        let file = OpenFile::open(&path).unwrap().unwrap();
        let mut scan = scan_with(parser);
        scan.set_buffer_size(256);
        read_file(&file, head.len() as u64, &mut scan).unwrap();
        rest_read_as_one_line(&scan.finish().unwrap().summary, &rest);
    }

    /// A line stamped after the clock just before a thread's piece is not what the piece
    /// follows (the one thread passes over it too): the line before it is.
    #[test]
    fn a_thread_after_a_line_stamped_ahead_of_the_clock_reads_the_repeated_hour_as_one_thread_does()
    {
        parts_agree_with_one_thread(
            "Oct 26 12:00:00 ahead kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.208.0.4 DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40",
        );
    }

    /// Nor is a line without a configured prefix, which the read never parses: a program's
    /// line from a host whose clock is behind says nothing of where the packets are.
    #[test]
    fn a_thread_after_a_line_of_another_program_reads_the_repeated_hour_as_one_thread_does() {
        parts_agree_with_one_thread("Oct 25 01:59:59 late sshd[7]: Connection closed by 1.2.3.4");
    }

    /// Nor a line longer than the reader's buffer, which it passes over as junk.
    #[test]
    fn a_thread_after_a_line_too_long_to_read_reads_the_repeated_hour_as_one_thread_does() {
        let long = format!(
            "Oct 25 01:59:59 late kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.208.0.4 DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40 {}",
            "x".repeat(300)
        );
        parts_agree_with_one_thread_in(Some(&long), Some(256));
    }

    /// Nor a line the read would not take a stamp from: a priority that is no number.
    #[test]
    fn a_thread_after_a_line_with_a_bad_priority_reads_the_repeated_hour_as_one_thread_does() {
        parts_agree_with_one_thread(
            "<x>Oct 25 01:59:59 late kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.208.0.4 DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40",
        );
    }

    /// Lines of Berlin's autumn log from `from` to `to` (Unix seconds, a line a second) from
    /// `ip`, answers to the operator's own traffic (TCP with ACK) when `answers`.
    fn berlin_lines(out: &mut String, from: i64, to: i64, ip: &str, answers: bool) {
        let berlin = crate::clock::Zone::parse("Europe/Berlin").unwrap();
        let flags = if answers { "ACK" } else { "SYN" };
        for t in from..to {
            let stamp = berlin.at(t).format("%b %e %H:%M:%S");
            out.push_str(&format!("{stamp} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=TCP SPT=4 DPT=22 WINDOW=1 RES=0x00 {flags} URGP=0\n"));
        }
    }

    /// A run that goes on from a cursor in the repeated hour's second pass, after a run whose
    /// last counted packet was long before the lines it read last (answers, not counted),
    /// reads the second pass as the one read of the whole file does, not an hour early.
    #[test]
    fn a_resumed_read_after_lines_not_counted_reads_the_repeated_hour_as_one_read_does() {
        // 01:00 +02:00, 02:20 +02:00, 03:00 +02:00 (02:00 +01:00), 02:30 +01:00.
        let (start, last_hit, back, end) =
            (1_792_882_800, 1_792_887_600, 1_792_890_000, 1_792_891_800);
        let mut before = String::new();
        berlin_lines(&mut before, start, last_hit + 1, "34.208.0.3", false);
        berlin_lines(&mut before, last_hit + 1, back, "34.208.0.5", true);
        let mut after = String::new();
        berlin_lines(&mut after, back, end, "34.208.0.2", false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let scan = || {
            let mut scan = berlin_scan();
            scan.pass_over_answers();
            scan
        };
        let folders = &mut Folders::default();
        fs::write(&path, &before).unwrap();
        let mut first = scan();
        let read = super::read(&path, None, None, StartAt::Beginning, &mut first, folders).unwrap();
        let cursor = read.cursor.unwrap();
        // What the state keeps: the last packet counted.
        let counted = first.counted_until().iter().flatten().max().copied();
        assert_eq!(counted, Some(last_hit));
        fs::write(&path, format!("{before}{after}")).unwrap();
        let mut resumed = scan();
        resumed.follows(counted);
        super::read(
            &path,
            Some(&cursor),
            None,
            StartAt::Beginning,
            &mut resumed,
            folders,
        )
        .unwrap();
        let resumed = resumed.finish().unwrap();
        let o = &resumed.observations[&"34.208.0.2".parse().unwrap()];
        assert_eq!((o.first_seen, o.last_seen), (back, end - 1));
    }

    /// `reread --since` a time in the repeated hour's second pass starts the next read at the
    /// first packet logged then; that read goes on from the lines before it, so it reads the
    /// second pass as the whole file's read does: a packet counted before is passed over, and
    /// one never counted is not mistaken for one (read an hour early, before the last counted).
    #[test]
    fn a_reread_since_a_time_of_the_second_pass_reads_it_as_the_second_pass() {
        // 01:00 +02:00; 02:05, 02:20 and 02:40 +01:00.
        let (start, since, counted, end) =
            (1_792_882_800, 1_792_890_300, 1_792_891_200, 1_792_892_400);
        let mut text = String::new();
        berlin_lines(&mut text, start, end + 1, "34.208.0.2", false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        fs::write(&path, &text).unwrap();
        let mut parser = berlin_parser();
        let from = reread_from(&path, Some((since, &mut parser)), None).unwrap();
        assert!(matches!(from.start, RereadStart::At(_, _)));
        let mut scan = berlin_scan();
        scan.counted_before(vec![Some(counted)]);
        let folders = &mut Folders::default();
        super::read(
            &path,
            Some(&from.cursor),
            None,
            StartAt::Beginning,
            &mut scan,
            folders,
        )
        .unwrap();
        let batch = scan.finish().unwrap();
        assert_eq!(
            batch.summary.lines_counted_before,
            (counted - since + 1) as u64
        );
        let o = &batch.observations[&"34.208.0.2".parse().unwrap()];
        assert_eq!(
            (o.first_seen, o.last_seen, o.hits),
            (counted + 1, end, 1200)
        );
    }

    /// A log over Berlin's repeated hour from hosts whose clocks disagree (one 40 minutes
    /// behind), with lines the read passes over (another program's, a bad priority, stamped
    /// ahead of the clock) and answers it does not count; each line's address its own, so
    /// that where a read puts each line in time shows.
    fn autumn_hosts_log(lines: &[(u16, usize, usize)]) -> String {
        let berlin = crate::clock::Zone::parse("Europe/Berlin").unwrap();
        let lags = [0, -600, 120, -2400];
        // 02:40 +02:00.
        let mut t = 1_792_888_800i64;
        let mut out = String::new();
        for (i, &(step, host, kind)) in lines.iter().enumerate() {
            t += i64::from(step);
            let stamp = berlin
                .at(t + lags[host])
                .format("%b %e %H:%M:%S")
                .to_string();
            let ip = format!("34.{}.{}.1", 100 + i / 250, i % 250);
            let fields = |flags: &str| {
                format!(
                    "INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=TCP SPT=4 DPT=22 WINDOW=1 RES=0x00 {flags} URGP=0"
                )
            };
            let line = match kind {
                0 => format!("{stamp} h{host} sshd[7]: Connection closed by {ip}"),
                1 => format!("<x>{stamp} h{host} kernel: {}", fields("SYN")),
                2 => format!("Oct 26 12:00:00 h{host} kernel: {}", fields("SYN")),
                3 => format!("{stamp} h{host} kernel: {}", fields("ACK")),
                _ => format!("{stamp} h{host} kernel: {}", fields("SYN")),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Where each address was seen, and how often.
    fn seen_at(
        b: &crate::ingest::Batch,
    ) -> std::collections::BTreeMap<std::net::IpAddr, (i64, i64, u64)> {
        (b.observations.iter())
            .map(|o| (o.ip, (o.first_seen, o.last_seen, o.hits)))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// However a log over the repeated hour is read (at once, in threads, or by two runs
        /// with a cursor between), each line is read at the same time.
        #[test]
        fn the_repeated_hour_is_read_alike_in_one_read_in_threads_and_across_runs(
            lines in proptest::collection::vec((0u16..30, 0usize..4, 0usize..16), 1..300),
            cut in 0.0f64..1.0,
        ) {
            let text = autumn_hosts_log(&lines);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("messages");
            fs::write(&path, &text).unwrap();
            let size = text.len() as u64;
            let scan = || {
                let mut scan = berlin_scan();
                scan.pass_over_answers();
                scan
            };
            let mut one = scan();
            one.feed(text.as_bytes()).unwrap();
            let one = one.finish().unwrap();
            let file = OpenFile::open(&path).unwrap().unwrap();
            for parts in [2, 3, 5] {
                let mut many = scan();
                read_in_parts(&file, 0, size, parts, &mut many).unwrap();
                let many = many.finish().unwrap();
                proptest::prop_assert_eq!(&many.summary, &one.summary, "{} parts", parts);
                proptest::prop_assert_eq!(seen_at(&many), seen_at(&one), "{} parts", parts);
            }
            // Two runs, the first stopping after some of the lines.
            let k = ((lines.len() as f64) * cut) as usize;
            let head: String = text.split_inclusive('\n').take(k).collect();
            let folders = &mut Folders::default();
            fs::write(&path, &head).unwrap();
            let mut first = scan();
            let read = super::read(&path, None, None, StartAt::Beginning, &mut first, folders).unwrap();
            let counted = first.counted_until().iter().flatten().max().copied();
            let mut both = seen_at(&first.finish().unwrap());
            fs::write(&path, &text).unwrap();
            let mut second = scan();
            second.follows(counted);
            super::read(&path, read.cursor.as_ref(), None, StartAt::Beginning, &mut second, folders)
                .unwrap();
            both.extend(seen_at(&second.finish().unwrap()));
            proptest::prop_assert_eq!(both, seen_at(&one), "cut after {} lines", k);
        }
    }

    /// A thread's piece whose 64 KiB before it hold no packet line, only other programs'
    /// lines, still reads the repeated hour as one thread does: it looks further back for
    /// the packet line before it, or joins the piece before.
    #[test]
    fn a_thread_after_much_text_without_a_packet_reads_the_repeated_hour_as_one_thread_does() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        let berlin = crate::clock::Zone::parse("Europe/Berlin").unwrap();
        let mut out = std::io::BufWriter::new(File::create(&path).unwrap());
        // 02:30 +02:00 to 02:30 +01:00, a packet a minute, 80 KiB of another program between.
        for t in (1_792_888_200i64..1_792_891_800).step_by(60) {
            let stamp = berlin.at(t).format("%b %e %H:%M:%S");
            let ip = if berlin.at(t).offset().local_minus_utc() == 7200 {
                "34.208.0.1"
            } else {
                "34.208.0.2"
            };
            writeln!(out, "{stamp} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.10 LEN=60 PROTO=UDP SPT=4 DPT=53 LEN=40").unwrap();
            for _ in 0..2000 {
                writeln!(out, "{stamp} web1 cron[7]: (root) CMD (run-parts)").unwrap();
            }
        }
        out.flush().unwrap();
        drop(out);
        let size = fs::metadata(&path).unwrap().len();
        let mut one = berlin_scan();
        assert_eq!(one.feed(File::open(&path).unwrap()).unwrap(), size);
        let one = one.finish().unwrap();
        let second = &one.observations[&"34.208.0.2".parse().unwrap()];
        assert_eq!((second.first_seen, second.hits), (1_792_890_000, 30));
        let file = OpenFile::open(&path).unwrap().unwrap();
        for parts in [2, 3, 4, 7] {
            let mut many = berlin_scan();
            read_in_parts(&file, 0, size, parts, &mut many).unwrap();
            let many = many.finish().unwrap();
            assert_eq!(many.summary, one.summary, "{parts} parts");
            assert_eq!(many.observations, one.observations, "{parts} parts");
        }
    }

    /// Sets a folder's modification time `seconds` into the past.
    fn age_folder(dir: &Path, seconds: u64) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
        File::open(dir).unwrap().set_modified(then).unwrap();
    }

    /// A folder is listed once a run while it does not change, and afresh once a file in it
    /// is created or renamed; a folder changed a moment ago is listed afresh each time.
    #[test]
    fn a_folder_listing_serves_until_the_folder_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.log"), "x\n").unwrap();
        let mut folders = Folders::default();
        // Just changed: not kept, so a rename at once is seen.
        assert_eq!(folders.names(dir.path()).unwrap(), ["a.log"]);
        fs::rename(dir.path().join("a.log"), dir.path().join("a.log.1")).unwrap();
        assert_eq!(folders.names(dir.path()).unwrap(), ["a.log.1"]);
        // Settled: kept, and given again while the folder's time is what it was.
        age_folder(dir.path(), 60);
        let settled = fs::metadata(dir.path()).unwrap().modified().unwrap();
        assert_eq!(folders.names(dir.path()).unwrap(), ["a.log.1"]);
        fs::write(dir.path().join("b.log"), "x\n").unwrap();
        File::open(dir.path())
            .unwrap()
            .set_modified(settled)
            .unwrap();
        assert_eq!(
            folders.names(dir.path()).unwrap(),
            ["a.log.1"],
            "the listing kept is the one given (the folder's time was put back)"
        );
        // A rotation moves the folder's time: listed afresh.
        fs::rename(dir.path().join("b.log"), dir.path().join("b.log.1")).unwrap();
        assert_eq!(folders.names(dir.path()).unwrap(), ["a.log.1", "b.log.1"]);
    }

    /// A folder that keeps changing (a log host making a file as each new host appears) is
    /// listed again after each change, not for each of its files: over ten thousand files a
    /// run with nothing new listed it ten thousand times, and took a minute and a half. A
    /// time of a coarse clock (whole seconds), or of a folder on a file system whose times
    /// another machine's clock may set, keeps a listing only once a few seconds old.
    #[test]
    fn a_folder_that_keeps_changing_is_listed_once_for_each_change() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(
            settles_after(at(1_800_000_000, 123_456_789), true),
            SETTLED_FINE_FOLDER
        );
        assert_eq!(
            settles_after(at(1_800_000_000, 120_000_000), true),
            SETTLED_FOLDER
        );
        assert_eq!(settles_after(at(1_800_000_000, 0), true), SETTLED_FOLDER);
        // A network file system's server's clock may be seconds behind this host's.
        assert_eq!(
            settles_after(at(1_800_000_000, 123_456_789), false),
            SETTLED_FOLDER
        );
        let dir = tempfile::tempdir().unwrap();
        for i in 0..200 {
            fs::write(dir.path().join(format!("h{i}.log")), "x\n").unwrap();
        }
        let set = |t: SystemTime| File::open(dir.path()).unwrap().set_modified(t).unwrap();
        // Changed a tenth of a second ago, by a fine clock.
        let fine = || {
            let t = SystemTime::now() - Duration::from_millis(100);
            match settles_after(t, true) == SETTLED_FINE_FOLDER {
                true => t,
                false => t - Duration::from_nanos(1),
            }
        };
        // Where the temporary folder's times are this host's own (a local disk, memory), a
        // listing is kept; elsewhere the folder is listed for each file, as it changed now.
        let kept = |listings: usize| match stamped_here(dir.path()) {
            true => listings,
            false => listings * 200,
        };
        set(fine());
        let mut folders = Folders::default();
        for _ in 0..200 {
            assert_eq!(folders.names(dir.path()).unwrap().len(), 200);
        }
        assert_eq!(folders.listings, kept(1));
        // A file made moves the folder's time: listed again once, the file in it.
        fs::write(dir.path().join("h200.log"), "x\n").unwrap();
        set(fine());
        for _ in 0..200 {
            assert_eq!(folders.names(dir.path()).unwrap().len(), 201);
        }
        assert_eq!(folders.listings, kept(2));
        // A whole second's time a second old may hide a change in its tick: listed each time.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        set(UNIX_EPOCH + Duration::from_secs(now - 1));
        for _ in 0..3 {
            folders.names(dir.path()).unwrap();
        }
        assert_eq!(folders.listings, kept(2) + 3);
    }

    /// Each mount of a kind of file system whose times this host's clock sets is told as such
    /// by its number (`statfs`), and the kernel's own kinds are not: told from the machine's
    /// own mounts (`/proc/self/mountinfo`: the mount point, and after ` - ` its kind), the
    /// last mounted at each point.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_local_kinds_of_file_system_are_told_by_their_numbers() {
        let local = [
            "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "tmpfs", "overlay",
        ];
        let kernels = ["proc", "sysfs", "devpts", "cgroup", "cgroup2"];
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut kinds = std::collections::HashMap::new();
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if let (Some(point), Some(dash)) =
                (fields.get(4), fields.iter().position(|f| *f == "-"))
                && let Some(kind) = fields.get(dash + 1)
            {
                kinds.insert(*point, *kind);
            }
        }
        for (point, kind) in kinds {
            // A point spelt with escapes (`\040` for a space), or out of this user's reach.
            if point.contains('\\') || fs::metadata(point).is_err() {
                continue;
            }
            let here = stamped_here(Path::new(point));
            if local.contains(&kind) {
                assert!(here, "{point} ({kind})");
            } else if kernels.contains(&kind) {
                assert!(!here, "{point} ({kind})");
            }
        }
        assert!(!stamped_here(Path::new("/proc")));
        assert!(!stamped_here(Path::new("/no/such/folder")));
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

    /// A log host's folder named for an IPv6 sender: the path names a file, and is that file,
    /// not a pattern that matches nothing.
    #[test]
    fn a_path_naming_a_file_is_that_file_whatever_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("[2001:db8::1]");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("kern.log"), b"x\n").unwrap();
        let path = host.join("kern.log");
        assert_eq!(expand(&path).unwrap(), vec![path.clone()]);
        // As a pattern, the brackets are a set of characters: it matches nothing here.
        assert!(
            expand(&dir.path().join("[2001:db8::2]/kern.log"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_decision_reads_as_words() {
        let rotated = Rotated {
            path: PathBuf::from("/var/log/messages.1"),
            gzip: false,
            from: 10,
        };
        let d = Decision::Replaced(Catchup {
            grown: Vec::new(),
            previous: Some(rotated),
            newer: Vec::new(),
        });
        assert_eq!(
            d.to_string(),
            "rotated: a new file at the path, read from the start; finished /var/log/messages.1"
        );
        assert_eq!(
            Decision::Fresh(Catchup::default()).to_string(),
            "first read"
        );
    }
}
