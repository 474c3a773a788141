//! The text of the log lines a read keeps as evidence: held in memory up to a budget, and past
//! it set aside in a file of the run's own that has no name, so that a flood of distinct
//! sources, each keeping lines of its own, costs disk rather than memory and nothing is left
//! behind however the run ends.
//!
//! Readers write the text of a kept line with their own [`Pen`] into blocks of their own, and
//! hand each block whole to the [`Spool`]: the threads share nothing while reading. A line is
//! known by a [`KeptLine`]: its second, its source and where its text is. Text is read back
//! when a report or the state needs it, line by line, or block by block through a
//! [`SpoolReader`] for a pass over many lines.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::excerpt::EvidenceLine;

/// The text a run holds in memory before it sets lines aside, unless
/// [`BUDGET_VAR`] says otherwise.
pub const BUDGET: u64 = 16 << 20;

/// The environment variable that sets [`BUDGET`] (bytes; `0` sets every line aside).
pub const BUDGET_VAR: &str = "ABUSE_MAILER_SPOOL_BYTES";

/// Bytes of text a pen gathers before it hands them to the spool.
const BLOCK: usize = 1 << 20;

/// Text is set aside in a folder only while the space left there holds this many times the
/// text the run keeps: the state stores the same lines, in its journal then its tables, on the
/// disk it is most often on.
const STATE_ROOM: u64 = 3;

/// Bytes free to unprivileged writers on the file system of `file`.
fn free_space(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatvfs(2) fills the struct given, which is ours and zeroed, from a
    // descriptor `file` keeps open for the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Both are 32 bits wide on some targets.
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Where a line's text is: its block, where in the block, and how long. Twelve bytes: a
/// flood's first lines are held by the million while they are read. (2^32 blocks of 1 MiB
/// would be 4 PiB of text.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    block: u32,
    place: u32,
    len: u32,
}

/// The block number of a place outside the spool (see [`Placed::outside`]): no spool has that
/// many blocks.
const OUTSIDE: u32 = u32::MAX;

impl Placed {
    /// `len` bytes from `at` of a reader's own text, outside the spool: a line the reader may
    /// yet let go of, written into the spool only if it keeps it.
    pub(crate) fn outside(at: u32, len: u32) -> Self {
        Placed {
            block: OUTSIDE,
            place: at,
            len,
        }
    }

    /// Where a place made by [`Placed::outside`] is, as a range of the reader's text.
    pub(crate) fn outside_at(&self) -> Option<std::ops::Range<usize>> {
        let at = self.place as usize;
        (self.block == OUTSIDE).then(|| at..at + self.len as usize)
    }
}

/// A kept line: when it was logged, its source address, and where its text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptLine {
    pub time: i64,
    pub ip: IpAddr,
    text: Placed,
    /// One of its address's own lines (see `Ingest::choose_own_lines`), not a window's only:
    /// the state keeps these first.
    pub own: bool,
}

impl KeptLine {
    /// The line logged at `time` by `ip`, its text kept at `text`.
    pub fn new(time: i64, ip: IpAddr, text: Placed) -> Self {
        Self {
            time,
            ip,
            text,
            own: false,
        }
    }
}

/// A file that has no name, in `dir`, open to read and write: nothing is left behind, however
/// the process ends. On a file system without unnamed files, a named one removed at once.
pub fn unnamed_file(dir: &Path) -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Ok(file) => Ok(file),
        Err(_) => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".abuse-mailer-{}-{n}.tmp", std::process::id()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
    }
}

/// The kept lines' text of one run, shared by its reading threads.
pub struct Spool {
    /// Where the file may go, in order of preference.
    dirs: Vec<PathBuf>,
    budget: u64,
    /// Bytes of text a pen gathers before it hands them over ([`BLOCK`]).
    block: usize,
    next_block: AtomicU32,
    blocks: Mutex<Blocks>,
    /// The space free beside a file ([`free_space`]; tests say how much).
    free: fn(&File) -> io::Result<u64>,
}

#[derive(Default)]
struct Blocks {
    /// Blocks held in memory, by number.
    held: HashMap<u64, Box<[u8]>>,
    held_bytes: u64,
    /// Blocks set aside: where each starts in the file, and its length.
    aside: HashMap<u64, (u64, u64)>,
    file: Option<File>,
    /// The folder the file is in.
    file_dir: Option<PathBuf>,
    file_len: u64,
    /// Why lines could not be set aside (they are held instead), said once.
    failure: Option<String>,
}

/// A failure to read set-aside lines back, as a run reports it.
pub fn read_back_failed(e: io::Error) -> anyhow::Error {
    anyhow::anyhow!("reading back kept log lines: {e}")
}

impl Spool {
    /// A spool that holds `budget` bytes of text in memory and sets the rest aside in a file in
    /// the first of `dirs` where one can be made.
    pub fn new(dirs: Vec<PathBuf>, budget: u64) -> Self {
        Self {
            dirs,
            budget,
            block: BLOCK,
            next_block: AtomicU32::new(0),
            blocks: Mutex::new(Blocks::default()),
            free: free_space,
        }
    }

    /// The same spool, its pens handing over blocks of `bytes` (tests make many blocks).
    #[cfg(test)]
    pub fn with_block(mut self, bytes: usize) -> Self {
        self.block = bytes;
        self
    }

    /// The same spool, seeing `free` bytes free wherever it writes.
    #[cfg(test)]
    pub fn with_free(mut self, free: fn(&File) -> io::Result<u64>) -> Self {
        self.free = free;
        self
    }

    /// A spool that holds everything in memory.
    pub fn in_memory() -> Self {
        Self::new(Vec::new(), u64::MAX)
    }

    /// The budget [`BUDGET_VAR`] sets, or [`BUDGET`]; a value that is not a number of bytes
    /// is a configuration error (78) naming the variable: waiting does not fix it.
    pub fn budget_from_env() -> anyhow::Result<u64> {
        Ok(crate::error::number_from_env(BUDGET_VAR, "bytes", 0)?.unwrap_or(BUDGET))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        // A reader that panicked left whole blocks behind: what is there is still right.
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes block number `number`: held while the budget allows, else set aside.
    fn put(&self, number: u64, text: Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let mut blocks = self.lock();
        let len = text.len() as u64;
        if blocks.held_bytes + len <= self.budget || !self.write_aside(&mut blocks, number, &text) {
            blocks.held_bytes += len;
            blocks.held.insert(number, text.into_boxed_slice());
        }
    }

    /// Writes a block to the file (made when first needed); whether it is there. A failure is
    /// kept to be said, and the block stays in memory: a line is never lost. A folder is
    /// written only while it keeps room for the state to store the lines after it (the
    /// state is most often the folder): a run must not fill the disk its commit needs, and
    /// leave it empty again for whoever looks.
    fn write_aside(&self, blocks: &mut Blocks, number: u64, text: &[u8]) -> bool {
        if blocks.failure.is_some() {
            return false;
        }
        let len = text.len() as u64;
        if blocks.file.is_none() {
            let mut why = Vec::new();
            for dir in &self.dirs {
                match unnamed_file(dir) {
                    Ok(file) => match self.short_of_room(&file, dir, blocks.held_bytes, len) {
                        None => {
                            blocks.file = Some(file);
                            blocks.file_dir = Some(dir.clone());
                            break;
                        }
                        Some(short) => why.push(short),
                    },
                    Err(e) => why.push(format!("{}: {e}", dir.display())),
                }
            }
            if blocks.file.is_none() {
                if why.is_empty() {
                    why.push("no folder to write to".to_string());
                }
                blocks.failure = Some(why.join("; "));
                return false;
            }
        }
        let Some(file) = &blocks.file else {
            return false;
        };
        let dir = blocks.file_dir.as_deref().unwrap_or(Path::new("the file"));
        let start = blocks.file_len;
        if let Some(short) = self.short_of_room(file, dir, blocks.held_bytes + start, len) {
            blocks.failure = Some(short);
            return false;
        }
        match file.write_all_at(text, start) {
            Ok(()) => {
                blocks.file_len += len;
                blocks.aside.insert(number, (start, len));
                true
            }
            Err(e) => {
                blocks.failure = Some(format!("{}: {len} bytes at {start}: {e}", dir.display()));
                false
            }
        }
    }

    /// Why `len` more bytes may not go to `file` in `dir`, the run keeping `kept` bytes of
    /// text already (held or set aside): the space left would not hold [`STATE_ROOM`] times
    /// the text kept. `None` when they may (or the free space is not known: the write says
    /// then).
    fn short_of_room(&self, file: &File, dir: &Path, kept: u64, len: u64) -> Option<String> {
        let free = (self.free)(file).ok()?;
        let after = kept.saturating_add(len);
        (free < len.saturating_add(after.saturating_mul(STATE_ROOM))).then(|| {
            format!(
                "{}: {free} bytes free, too few to set {len} more bytes aside and leave the state room to store {after} bytes of lines",
                dir.display()
            )
        })
    }

    /// Why lines could not be set aside and are held in memory instead, if they could not.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// The folder of the file lines were set aside in, and how many bytes of text it holds;
    /// `None` if every line is held.
    pub fn set_aside(&self) -> Option<(PathBuf, u64)> {
        let blocks = self.lock();
        (blocks.file_len > 0)
            .then(|| blocks.file_dir.clone().map(|dir| (dir, blocks.file_len)))
            .flatten()
    }

    /// Takes the lines set aside back into memory and lets their file go, giving its room
    /// back to the disk: the state stores those same lines, and on a disk too small for both
    /// the run would fail for want of the room its own spool took, and so would every run
    /// after it. Whether any were set aside. Nothing more is set aside after it.
    pub fn take_back(&self) -> io::Result<bool> {
        let mut blocks = self.lock();
        let Some(file) = &blocks.file else {
            return Ok(false);
        };
        let mut taken = Vec::with_capacity(blocks.aside.len());
        for (&number, &(start, len)) in &blocks.aside {
            let mut block = vec![0; len as usize];
            file.read_exact_at(&mut block, start)?;
            taken.push((number, block.into_boxed_slice()));
        }
        for (number, block) in taken {
            blocks.held_bytes += block.len() as u64;
            blocks.held.insert(number, block);
        }
        let dir = blocks.file_dir.take();
        blocks.aside.clear();
        blocks.file = None;
        blocks.file_len = 0;
        blocks.failure = Some(format!(
            "taken back from {}: the state needed the room",
            dir.as_deref().unwrap_or(Path::new("?")).display()
        ));
        Ok(true)
    }

    /// Takes the lines set aside back into memory ([`Spool::take_back`]) when their file is on
    /// the file system of `dir` and holds more of it than is left free: the rest of the run
    /// writes the state there. What was taken back: the folder and the bytes.
    pub fn give_way_to(&self, dir: &Path) -> io::Result<Option<(PathBuf, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let Some(aside) = self.set_aside() else {
            return Ok(None);
        };
        let free = {
            let blocks = self.lock();
            let Some(file) = &blocks.file else {
                return Ok(None);
            };
            if file.metadata()?.dev() != std::fs::metadata(dir)?.dev() {
                return Ok(None);
            }
            (self.free)(file)?
        };
        if free >= aside.1 {
            return Ok(None);
        }
        self.take_back()?;
        Ok(Some(aside))
    }

    /// The text of `line`.
    pub fn text(&self, line: &KeptLine) -> io::Result<String> {
        let at = &line.text;
        // A block of empty lines holds no byte and is never handed over.
        if at.len == 0 {
            return Ok(String::new());
        }
        let (number, place) = (u64::from(at.block), u64::from(at.place));
        let blocks = self.lock();
        let bytes = match blocks.held.get(&number) {
            Some(block) => block
                .get(place as usize..place as usize + at.len as usize)
                .ok_or_else(|| broken("a line past the end of its block"))?
                .to_vec(),
            None => {
                let (Some((start, _)), Some(file)) = (blocks.aside.get(&number), &blocks.file)
                else {
                    return Err(broken("a line in a block never written"));
                };
                let mut bytes = vec![0; at.len as usize];
                file.read_exact_at(&mut bytes, start + place)
                    .map_err(|e| unreadable(&blocks, e))?;
                bytes
            }
        };
        String::from_utf8(bytes).map_err(|_| broken("a line that is not the text written"))
    }

    /// `line` with its text.
    pub fn line(&self, line: &KeptLine) -> io::Result<EvidenceLine> {
        Ok(EvidenceLine {
            time: line.time,
            ip: line.ip,
            text: self.text(line)?,
        })
    }

    /// A reader for a pass over many lines: blocks set aside are read whole, a few kept.
    pub fn reader(&self) -> SpoolReader<'_> {
        SpoolReader {
            spool: self,
            recent: HashMap::new(),
            uses: 0,
            #[cfg(test)]
            bytes_read: 0,
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let blocks = self.lock();
        f.debug_struct("Spool")
            .field("budget", &self.budget)
            .field("held_bytes", &blocks.held_bytes)
            .field("set_aside_bytes", &blocks.file_len)
            .field("failure", &blocks.failure)
            .finish()
    }
}

/// A read of the set-aside file that failed, naming its folder.
fn unreadable(blocks: &Blocks, e: io::Error) -> io::Error {
    let dir = blocks.file_dir.as_deref().unwrap_or(Path::new("?"));
    io::Error::new(
        e.kind(),
        format!(
            "the log lines set aside in {} (a file with no name) cannot be read: {e}",
            dir.display()
        ),
    )
}

fn broken(what: &str) -> io::Error {
    io::Error::other(format!("the run's set-aside log lines hold {what}"))
}

/// Reads lines' text for a pass over many of them. A pass meets lines in time order, and
/// sources logging at once (a host's files read one after the other, a fleet's under one
/// glob) put neighbouring lines in blocks far apart: a piece of each block is kept, read
/// from the line asked on, so that a line costs about its own length however many blocks
/// the pass goes back and forth between.
pub struct SpoolReader<'s> {
    spool: &'s Spool,
    /// By block number: where the piece kept starts in the block, its bytes, and when it was
    /// last used (the least recently used goes first).
    recent: HashMap<u64, Piece>,
    uses: u64,
    /// Bytes read from the file (tests hold a pass to about the text it reads).
    #[cfg(test)]
    bytes_read: u64,
}

struct Piece {
    start: usize,
    bytes: Box<[u8]>,
    used: u64,
}

/// Bytes a [`SpoolReader`] reads from the file at a time (more for a longer line).
const PIECE: usize = 8 << 10;

/// Pieces a [`SpoolReader`] keeps: as many sources logging at once read at the cost of one.
const RECENT_PIECES: usize = 512;

impl SpoolReader<'_> {
    /// The text of `line`.
    pub fn text(&mut self, line: &KeptLine) -> io::Result<String> {
        let number = u64::from(line.text.block);
        let place = line.text.place as usize;
        let len = line.text.len as usize;
        if len == 0 {
            return Ok(String::new());
        }
        self.uses += 1;
        let covers = |p: &Piece| p.start <= place && place + len <= p.start + p.bytes.len();
        if !self.recent.get(&number).is_some_and(covers) {
            let blocks = self.spool.lock();
            let (Some(&(start, block_len)), Some(file)) = (blocks.aside.get(&number), &blocks.file)
            else {
                drop(blocks);
                return self.spool.text(line);
            };
            let end = (block_len as usize).min(place + len.max(PIECE));
            if end < place + len {
                return Err(broken("a line past the end of its block"));
            }
            let mut bytes = vec![0; end - place];
            file.read_exact_at(&mut bytes, start + place as u64)
                .map_err(|e| unreadable(&blocks, e))?;
            drop(blocks);
            #[cfg(test)]
            {
                self.bytes_read += bytes.len() as u64;
            }
            if self.recent.len() >= RECENT_PIECES && !self.recent.contains_key(&number) {
                let oldest = (self.recent.iter())
                    .min_by_key(|(_, p)| p.used)
                    .map(|(n, _)| *n);
                if let Some(oldest) = oldest {
                    self.recent.remove(&oldest);
                }
            }
            self.recent.insert(
                number,
                Piece {
                    start: place,
                    bytes: bytes.into_boxed_slice(),
                    used: 0,
                },
            );
        }
        let uses = self.uses;
        let piece = (self.recent.get_mut(&number))
            .ok_or_else(|| broken("a line in a block never written"))?;
        piece.used = uses;
        let bytes = piece
            .bytes
            .get(place - piece.start..place - piece.start + len)
            .ok_or_else(|| broken("a line past the end of its block"))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| broken("a line that is not the text written"))
    }
}

/// One reader's block being written: lines' text gathered here, handed to the spool whole.
#[derive(Default)]
pub struct Pen {
    number: Option<u32>,
    text: Vec<u8>,
}

impl Pen {
    /// Keeps `text`; where it is kept.
    pub fn keep(&mut self, spool: &Spool, text: &str) -> Placed {
        // A line longer than a block (never a kept one: they are cut at 2 KiB) gets one of
        // its own, as long as a length can say.
        let mut end = text.len().min(u32::MAX as usize);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text.as_bytes()[..end];
        if self.number.is_none() || self.text.len() + text.len() > spool.block.max(text.len()) {
            self.hand_over(spool);
            self.number = Some(spool.next_block.fetch_add(1, Ordering::Relaxed));
        }
        let place = self.text.len() as u32;
        self.text.extend_from_slice(text);
        Placed {
            block: self.number.unwrap_or_default(),
            place,
            len: text.len() as u32,
        }
    }

    /// Keeps `text` as the line logged at `time` by `ip`.
    pub fn keep_line(&mut self, spool: &Spool, time: i64, ip: IpAddr, text: &str) -> KeptLine {
        KeptLine::new(time, ip, self.keep(spool, text))
    }

    /// Hands the block being written to the spool; the pen starts a new one when next used.
    pub fn hand_over(&mut self, spool: &Spool) {
        if let Some(number) = self.number.take() {
            spool.put(u64::from(number), std::mem::take(&mut self.text));
        }
    }
}

impl KeptLine {
    /// `line` kept by itself in `spool` (held or set aside as its budget says).
    pub fn keep(spool: &Spool, line: &EvidenceLine) -> KeptLine {
        let mut pen = Pen::default();
        let kept = pen.keep_line(spool, line.time, line.ip, &line.text);
        pen.hand_over(spool);
        kept
    }
}

/// A spool holding everything in memory, for the whole of a test process.
#[cfg(test)]
pub fn for_tests() -> &'static Spool {
    static SPOOL: std::sync::LazyLock<Spool> = std::sync::LazyLock::new(Spool::in_memory);
    &SPOOL
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([3, 5, 140, n])
    }

    fn keep_all(spool: &Spool, texts: &[String]) -> Vec<KeptLine> {
        let mut pen = Pen::default();
        let kept: Vec<KeptLine> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| pen.keep_line(spool, i as i64, ip(i as u8), t))
            .collect();
        pen.hand_over(spool);
        kept
    }

    #[test]
    fn lines_past_the_budget_are_set_aside_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 4 << 20);
        let texts: Vec<String> = (0..40_000)
            .map(|i| format!("line {i} SRC=3.5.140.{} {}", i % 256, "x".repeat(i % 300)))
            .collect();
        let kept = keep_all(&spool, &texts);
        assert!(
            spool.set_aside().is_some(),
            "6 MiB of text under a 4 MiB budget"
        );
        assert!(spool.lock().held_bytes <= 4 << 20);
        let mut reader = spool.reader();
        for (line, text) in kept.iter().zip(&texts) {
            assert_eq!(&spool.text(line).unwrap(), text);
            assert_eq!(&reader.text(line).unwrap(), text);
        }
        // Nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_that_takes_no_file_passes_to_the_next_and_then_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let spool = Spool::new(vec![missing.clone(), dir.path().to_path_buf()], 0);
        let texts = vec!["one".to_string(), "two".to_string()];
        let kept = keep_all(&spool, &texts);
        assert_eq!(spool.set_aside(), Some((dir.path().to_path_buf(), 6)));
        assert_eq!(spool.failure(), None);
        assert_eq!(spool.text(&kept[1]).unwrap(), "two");

        let spool = Spool::new(vec![missing.clone()], 0);
        let kept = keep_all(&spool, &texts);
        assert_eq!(spool.set_aside(), None);
        let failure = spool.failure().unwrap();
        assert!(failure.contains("missing"), "{failure}");
        assert_eq!(spool.text(&kept[0]).unwrap(), "one");
        assert_eq!(spool.reader().text(&kept[1]).unwrap(), "two");
    }

    #[test]
    fn a_full_disk_keeps_the_lines_in_memory() {
        // /dev/full takes no byte: every write fails as on a full disk.
        let Ok(full) = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open("/dev/full")
        else {
            return;
        };
        // However much room the device says it has: the write is what fails.
        let spool = Spool::new(Vec::new(), 0).with_free(|_| Ok(u64::MAX));
        spool.lock().file = Some(full);
        let texts = vec!["one".to_string(), "two".to_string()];
        let kept = keep_all(&spool, &texts);
        let failure = spool.failure().unwrap();
        assert!(failure.contains("space"), "{failure}");
        assert_eq!(spool.text(&kept[0]).unwrap(), "one");
        assert_eq!(spool.text(&kept[1]).unwrap(), "two");
    }

    #[test]
    fn lines_taken_back_read_as_written_and_free_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 1 << 10).with_block(100);
        let texts: Vec<String> = (0..2_000).map(|i| format!("line {i:>40}")).collect();
        let kept = keep_all(&spool, &texts);
        assert!(spool.set_aside().is_some());
        assert!(spool.take_back().unwrap());
        assert_eq!(spool.set_aside(), None, "the file is let go");
        assert!(spool.lock().file.is_none());
        assert!(!spool.take_back().unwrap(), "nothing left to take back");
        // Later lines are held too: the disk's room is the state's now.
        let later = KeptLine::keep(
            &spool,
            &EvidenceLine {
                time: 0,
                ip: ip(1),
                text: "later".into(),
            },
        );
        assert_eq!(spool.set_aside(), None);
        assert!(spool.failure().unwrap().contains("taken back"));
        let mut reader = spool.reader();
        for (line, text) in kept.iter().zip(&texts) {
            assert_eq!(&spool.text(line).unwrap(), text);
            assert_eq!(&reader.text(line).unwrap(), text);
        }
        assert_eq!(spool.text(&later).unwrap(), "later");
    }

    #[test]
    fn several_pens_share_a_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 1 << 20);
        let texts: Vec<String> = (0..30_000).map(|i| format!("{i:>80}")).collect();
        let (left, right) = texts.split_at(12_345);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| keep_all(&spool, left));
            let b = s.spawn(|| keep_all(&spool, right));
            (a.join().unwrap(), b.join().unwrap())
        });
        for (line, text) in a.iter().chain(&b).zip(&texts) {
            assert_eq!(&spool.text(line).unwrap(), text);
        }
    }

    /// A folder with too little room for the state to store the lines after them takes none
    /// or stops taking them: the lines are held, the next folder is tried first, and why is
    /// said, naming the folder.
    #[test]
    fn a_folder_short_of_room_for_the_state_is_passed_over() {
        let (state, temp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let texts: Vec<String> = (0..100).map(|i| format!("{i:>99}")).collect();
        let dirs = vec![state.path().to_path_buf(), temp.path().to_path_buf()];
        // 10 kB free, as a file system says before the file takes any: blocks of a line
        // (99 bytes) go aside until the next would leave less than three times the text.
        let spool = Spool::new(dirs.clone(), 0)
            .with_block(100)
            .with_free(|_| Ok(10_000));
        let kept = keep_all(&spool, &texts);
        let (dir, bytes) = spool.set_aside().unwrap();
        assert_eq!(dir, state.path());
        assert!(
            99 + 3 * bytes <= 10_000 && 99 + 3 * (bytes + 99) > 10_000,
            "{bytes}"
        );
        let failure = spool.failure().unwrap();
        assert!(
            failure.contains(&state.path().display().to_string()) && failure.contains("room"),
            "{failure}"
        );
        for (line, text) in kept.iter().zip(&texts) {
            assert_eq!(&spool.text(line).unwrap(), text);
            assert_eq!(&spool.reader().text(line).unwrap(), text);
        }
        // No room for even a block: both folders are named, every line is held.
        let spool = Spool::new(dirs, 0).with_block(100).with_free(|_| Ok(300));
        let kept = keep_all(&spool, &texts);
        assert_eq!(spool.set_aside(), None);
        let failure = spool.failure().unwrap();
        assert!(
            failure.contains(&temp.path().display().to_string()),
            "{failure}"
        );
        assert_eq!(spool.text(&kept[99]).unwrap(), texts[99]);
        assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
        // Lines held count too: the state stores them as well.
        let spool = Spool::new(vec![state.path().to_path_buf()], 4_000)
            .with_block(100)
            .with_free(|_| Ok(10_000));
        keep_all(&spool, &texts);
        assert_eq!(spool.set_aside(), None, "{:?}", spool.failure());
    }

    /// A set-aside file that cannot be read back (a failing disk) is an error that names
    /// its folder, not a bare system error.
    #[test]
    fn a_set_aside_file_that_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 0);
        let kept = keep_all(&spool, &["one".to_string()]);
        // A descriptor open only to write: every read fails, as on a disk gone bad.
        let path = dir.path().join("write-only");
        let write_only = std::fs::File::create(&path).unwrap();
        spool.lock().file = Some(write_only);
        let shown = dir.path().display().to_string();
        let e = spool.text(&kept[0]).unwrap_err().to_string();
        assert!(e.contains(&shown) && e.contains("set aside"), "{e}");
        let e = spool.reader().text(&kept[0]).unwrap_err().to_string();
        assert!(e.contains(&shown) && e.contains("set aside"), "{e}");
    }

    /// An empty line takes no byte: a block holding nothing else is never handed over, and
    /// the line still reads back, empty, not as a line in a block never written.
    #[test]
    fn an_empty_line_reads_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        for budget in [0, u64::MAX] {
            let spool = Spool::new(vec![dir.path().to_path_buf()], budget);
            let kept = keep_all(&spool, &[String::new()]);
            assert_eq!(spool.text(&kept[0]).unwrap(), "");
            assert_eq!(spool.reader().text(&kept[0]).unwrap(), "");
        }
    }

    /// Sources logging at once keep their lines in blocks of their own; a pass in time order
    /// goes from one to the next at each line. Each line read costs about its own length, not
    /// a block's: a flood seen in a fleet's files was read back a megabyte a line.
    #[test]
    fn a_pass_between_the_blocks_of_sources_logging_at_once_reads_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 0);
        let sources = 6;
        let texts: Vec<Vec<String>> = (0..sources)
            .map(|s| (0..2000).map(|i| format!("host{s} line {i:>80}")).collect())
            .collect();
        let kept: Vec<Vec<KeptLine>> = texts.iter().map(|t| keep_all(&spool, t)).collect();
        let total: usize = texts.iter().flatten().map(String::len).sum();
        let mut reader = spool.reader();
        for i in 0..2000 {
            for s in 0..sources {
                assert_eq!(reader.text(&kept[s][i]).unwrap(), texts[s][i]);
            }
        }
        assert!(
            reader.bytes_read <= 2 * total as u64,
            "{} bytes read for {total} bytes of text",
            reader.bytes_read
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the budget and however many lines, every line reads back as written, one
        /// at a time and in a pass, in any order.
        #[test]
        fn every_line_reads_back_as_written(
            texts in proptest::collection::vec("[ -~äß…]{0,40}", 0..300),
            budget in 0u64..4_000,
            block in 1usize..500,
            reversed: bool,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let spool = Spool::new(vec![dir.path().to_path_buf()], budget).with_block(block);
            let kept = keep_all(&spool, &texts);
            let mut reader = spool.reader();
            let mut order: Vec<usize> = (0..texts.len()).collect();
            if reversed {
                order.reverse();
            }
            for i in order {
                prop_assert_eq!(&spool.text(&kept[i]).unwrap(), &texts[i]);
                prop_assert_eq!(&reader.text(&kept[i]).unwrap(), &texts[i]);
            }
        }
    }
}
