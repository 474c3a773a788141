//! One run at a time: an advisory lock on `state_dir/run.lock`, held for the whole run.
//!
//! A second run waits a bounded time for the first to finish (then reads what is new since),
//! and gives up quietly if it does not: under a timer the next tick will try again, and two
//! runs must never send the same report twice. A lock held for hours is no run in progress
//! but a stuck one (a disk that stopped answering): the run that finds it says so, and fails.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long a run waits for another one to finish.
pub const WAIT: Duration = Duration::from_secs(60);

/// How long a run may hold the lock before a run that finds it held takes it for stuck: far
/// longer than a run takes, its deadlines for mail and lookups spent included.
pub const STUCK: Duration = Duration::from_secs(6 * 3600);

/// The held lock; dropping it releases it.
pub struct RunLock {
    file: File,
    path: std::path::PathBuf,
    /// Whether the file system tells the file at the path for the one locked: where the
    /// open file and the path never agree (a file system that numbers them apart), nothing
    /// is checked rather than every run stopped.
    checkable: bool,
}

impl RunLock {
    /// Fails unless the lock file at its path is still the one this run locked. One removed
    /// (by a hand taking it for a stale lock) or replaced lets another run start beside this
    /// one, each thinking itself alone: this run then stops before sending or writing more,
    /// and the other goes on.
    pub fn still_held(&self) -> Result<()> {
        if !self.checkable || same_file(&self.file, &self.path) {
            return Ok(());
        }
        anyhow::bail!(
            "{} was removed or replaced while this run held it, so another run may have started beside it: this run stops before sending more (the lock goes with the process that holds it; never remove it by hand)",
            self.path.display()
        )
    }
}

/// Whether `path` names `file` (the same device and inode), never through a link.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(held), Ok(there)) => (held.dev(), held.ino()) == (there.dev(), there.ino()),
        _ => false,
    }
}

/// Why no run could take the lock in `state_dir` as it stands, if none could: the lock file
/// is a link or a folder (never opened through), or this user may not write it (one root's
/// run left). `check` asks; a run would fail (1) on it every time.
pub fn unusable(state_dir: &Path) -> Option<String> {
    let path = state_dir.join("run.lock");
    // None there yet: the first run makes it.
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if let Some(problem) = not_regular_as(&path, &meta) {
        return Some(problem);
    }
    if let Err(e) = crate::folder::access(&path, libc::W_OK) {
        return Some(format!(
            "{}: not writable by this user ({e}): no run can take its lock; run abuse-mailer as the user that owns {}",
            path.display(),
            state_dir.display()
        ));
    }
    None
}

/// Takes the lock, waiting up to [`WAIT`]; `None` if another run still holds it then, an
/// error if that run has held it past [`STUCK`].
pub fn acquire(state_dir: &Path, say: bool) -> Result<Option<RunLock>> {
    acquire_within(state_dir, say, WAIT, STUCK)
}

fn acquire_within(
    state_dir: &Path,
    say: bool,
    wait: Duration,
    stuck: Duration,
) -> Result<Option<RunLock>> {
    // A file there, or a link to nothing, is no folder any run could make: said as the
    // configuration's, as `check` says it.
    if let Some(e) = crate::folder::never_a_folder(state_dir) {
        return Err(crate::error::ConfigError(format!("state_dir {e}")).into());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("cannot create state_dir {}", state_dir.display()))?;
    let path = state_dir.join("run.lock");
    let started = Instant::now();
    let mut told = false;
    // Locked, but removed or replaced between the open and the lock: another run may lock
    // the file there now, so it is opened again; a few times, since a file system that never
    // tells the two for one would have this loop for ever.
    for _ in 0..REOPENS {
        let file = open_lock_file(state_dir, &path)?;
        match wait_for(file, &path, say, wait, stuck, started, &mut told)? {
            Some(lock) if !same_file(&lock.file, &path) => continue,
            taken => return Ok(taken),
        }
    }
    let file = open_lock_file(state_dir, &path)?;
    let taken = wait_for(file, &path, say, wait, stuck, started, &mut told)?;
    Ok(taken.map(|lock| RunLock {
        checkable: false,
        ..lock
    }))
}

/// How many times a lock file found removed or replaced once locked is opened again.
const REOPENS: usize = 5;

/// Opens (or makes) the lock file at `path` in `state_dir`.
/// What is wrong with `path` when something other than a regular file is there (a link, a
/// folder, a FIFO that would hold the run in `open(2)` for ever, a socket).
fn not_regular(path: &Path) -> Option<String> {
    not_regular_as(path, &std::fs::symlink_metadata(path).ok()?)
}

/// [`not_regular`] of what `lstat(2)` said of `path`.
fn not_regular_as(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    (!meta.is_file()).then(|| {
        format!(
            "{} is not a regular file ({}): no run can take its lock; remove it",
            path.display(),
            crate::source::file_kind(&meta.file_type())
        )
    })
}

fn open_lock_file(state_dir: &Path, path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        // Never through a link planted in a folder others may write to, and never waiting
        // in `open(2)` for a reader of a FIFO planted there.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if let Some(problem) = not_regular(path) {
                return anyhow::anyhow!(problem);
            }
            // A folder this user may not write in (another owner, a read-only mount): the
            // state is fine, the user is not the one to run on it.
            let not_ours = matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            );
            let advice = match not_ours {
                true => format!(
                    "; run abuse-mailer as the user that owns {}, which must be writable",
                    state_dir.display()
                ),
                false => String::new(),
            };
            anyhow::anyhow!("cannot open {}: {e}{advice}", path.display())
        })?;
    if !file.metadata()?.is_file() {
        anyhow::bail!(
            not_regular(path)
                .unwrap_or_else(|| format!("{} is not a regular file: remove it", path.display()))
        );
    }
    crate::state::keep_owner(state_dir, &file);
    Ok(file)
}

/// Takes the lock on `file` once another run lets it go, waiting up to `wait` from
/// `started`; `None` if the wait ends (see [`acquire`]).
fn wait_for(
    file: File,
    path: &Path,
    say: bool,
    wait: Duration,
    stuck: Duration,
    started: Instant,
    told: &mut bool,
) -> Result<Option<RunLock>> {
    loop {
        match file.try_lock() {
            Ok(()) => {
                let path = path.to_path_buf();
                return Ok(Some(RunLock {
                    file,
                    path,
                    checkable: true,
                }));
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if started.elapsed() >= wait {
            if let Some((pid, age)) = holder(&file, path)
                && age >= stuck
            {
                anyhow::bail!(
                    "another run (pid {pid}) has held the lock {} for {} hours or more: a run takes minutes, so it may be stuck (a disk or mount that stopped answering, a hung process), and no run goes on until it ends; look at it (ps -p {pid}) and stop it if it is",
                    path.display(),
                    age.as_secs() / 3600
                );
            }
            if say {
                crate::output::tell(format_args!(
                    "abuse-mailer: another run is in progress (lock {}); not running",
                    path.display()
                ));
            }
            return Ok(None);
        }
        if say && !*told {
            crate::output::tell(format_args!(
                "abuse-mailer: waiting for another run to finish"
            ));
            *told = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process holding the lock on `file` and how long it has run (no shorter than it has
/// held the lock), as Linux tells any process in `/proc`: nothing is written to tell it, so a
/// quiet run still writes nothing. `None` where it cannot be told (no `/proc`, a holder in
/// another process namespace).
fn holder(file: &File, path: &Path) -> Option<(u32, Duration)> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let path = std::fs::canonicalize(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // `1: FLOCK  ADVISORY  WRITE 3965 fe:00:10010751 0 EOF`; a waiter's line has `->` first.
    // The device there is the file system's own, which on btrfs is not the one `stat` gives
    // (each subvolume has its own): the inode picks the lines, and the holder is the process
    // that has this very file open, where its open files may be looked at.
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, _, pid, id, ..] = fields.as_slice() else {
            return None;
        };
        let pid: u32 = pid.parse().ok()?;
        let same_inode = id.rsplit(':').next()?.parse::<u64>().ok()? == ino;
        (same_inode && has_open(pid, &path) != Some(false)).then_some(pid)
    })?;
    Some((pid, running_for(pid)?))
}

/// Whether process `pid` has the file at `path` open, by the names of its open files (read
/// from the links, never by a look at the files: the holder may be stuck on a mount that
/// answers nothing, and a look at its files would hang too). `None` where its open files
/// cannot be listed (another user's process).
fn has_open(pid: u32, path: &Path) -> Option<bool> {
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        open.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path)),
    )
}

/// How long process `pid` has run: the system's uptime less the process's start, in clock
/// ticks since boot (the 22nd field of its `stat`, after a name that may hold anything).
fn running_for(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf(3) takes a name and reads nothing of the caller's.
    let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    let uptime: f64 = (std::fs::read_to_string("/proc/uptime").ok()?)
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let started = start.checked_div(ticks)? as f64;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that finds the lock held waits, then gives up quietly (the holder is a run in
    /// progress); held past [`STUCK`], it fails, naming the holder, for the operator to look
    /// at. A stuck run made every later run exit 0, silent under `-q`, for ever. (The holder
    /// here is this test's own process, as long-lived as it is; `stuck` stands for six hours.)
    #[test]
    fn a_lock_held_for_hours_is_said_to_be_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire_within(dir.path(), false, Duration::ZERO, STUCK)
            .unwrap()
            .unwrap();
        let path = dir.path().join("run.lock");
        let lock = File::open(&path).unwrap();
        let (pid, age) = holder(&lock, &path).unwrap();
        assert_eq!(pid, std::process::id());
        assert!(age < STUCK, "{age:?}");
        assert!((acquire_within(dir.path(), false, Duration::ZERO, STUCK).unwrap()).is_none());
        let e = acquire_within(dir.path(), false, Duration::ZERO, Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("pid {pid}")) && e.contains("may be stuck"),
            "{e}"
        );
        assert_eq!(
            has_open(pid, &std::fs::canonicalize(&path).unwrap()),
            Some(true)
        );
        assert_eq!(has_open(pid, Path::new("/no/such/run.lock")), Some(false));
        drop(held);
        assert!(holder(&lock, &path).is_none());
        let taken = acquire_within(dir.path(), false, Duration::ZERO, Duration::ZERO).unwrap();
        assert!(taken.is_some());
    }
}
