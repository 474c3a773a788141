//! One run at a time: an advisory lock on `state_dir/run.lock`, held for the whole run.
//!
//! A second run waits a bounded time for the first to finish (then reads what is new since),
//! and gives up quietly if it does not: under a timer the next tick will try again, and two
//! runs must never send the same report twice.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long a run waits for another one to finish.
pub const WAIT: Duration = Duration::from_secs(60);

/// The held lock; dropping it releases it.
pub struct RunLock {
    _file: File,
}

/// Why no run could take the lock in `state_dir` as it stands, if none could: the lock file
/// is a link or a folder (never opened through), or this user may not write it (one root's
/// run left). `check` asks; a run would fail (1) on it every time.
pub fn unusable(state_dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = state_dir.join("run.lock");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return Some(format!(
            "{} is not a regular file (a link or a folder): no run can take its lock; remove it",
            path.display()
        ));
    }
    let text = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: access(2) reads the NUL-terminated path it is given, which lives across the
    // call, and nothing else.
    if unsafe { libc::access(text.as_ptr(), libc::W_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return Some(format!(
            "{}: not writable by this user ({e}): no run can take its lock; run abuse-mailer as the user that owns {}",
            path.display(),
            state_dir.display()
        ));
    }
    None
}

/// Takes the lock, waiting up to [`WAIT`]; `None` if another run still holds it then.
pub fn acquire(state_dir: &Path, say: bool) -> Result<Option<RunLock>> {
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
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        // Never through a link planted in a folder others may write to.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
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
    crate::state::keep_owner(state_dir, &file);
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(RunLock { _file: file })),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if started.elapsed() >= WAIT {
            if say {
                crate::output::tell(format_args!(
                    "abuse-mailer: another run is in progress (lock {}); not running",
                    path.display()
                ));
            }
            return Ok(None);
        }
        if say && !told {
            crate::output::tell(format_args!(
                "abuse-mailer: waiting for another run to finish"
            ));
            told = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
