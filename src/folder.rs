//! Whether a configured folder (`state_dir`, `mail.dir`) can be used or made: the check the
//! run lock, the file transport and `check` share, so that each says the same thing about the
//! same path.

use std::fs;
use std::path::Path;

/// What makes `dir` a folder no run can ever use, if anything: a file where it or a folder on
/// its way goes, or a symbolic link to nothing. Other trouble looking at it (a slow network
/// mount, permissions) is not said here: the run that needs the folder meets it and says it.
pub fn never_a_folder(dir: &Path) -> Option<String> {
    match folder_fault(dir) {
        Err(Fault::Lasting(e)) => Some(e),
        _ => None,
    }
}

/// Whether `.eml` files can go into `dir`: it is a folder, or can be made one (the nearest
/// thing on its way that exists is a folder, not a file). Waiting does not change that.
pub fn placeable(dir: &Path) -> Result<(), String> {
    folder_fault(dir).map_err(|(Fault::Lasting(e) | Fault::Other(e))| e)
}

/// Makes what was written in `dir` (a file made, a name changed) last through a crash: the
/// folder is opened as a folder only, so that something else put at its name meanwhile (a
/// FIFO, by whoever may write where it lies) is refused at once, not waited on for ever with
/// the run's lock held.
pub fn sync(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?
        .sync_all()
}

/// Whether this user may use `path` as `mode` asks (`libc::R_OK`, `W_OK`, `X_OK`), asked of
/// the kernel by name (access(2)), without opening it.
pub fn access(path: &Path, mode: libc::c_int) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let text = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: access(2) reads the NUL-terminated path it is given, which lives across the
    // call, and nothing else.
    match unsafe { libc::access(text.as_ptr(), mode) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether this process may write in `dir`, or make it: the nearest of it and the folders
/// it would be made in that exists is one this user may write in and enter (a read-only
/// mount says no too). The reason if not, naming that folder.
pub fn writable(dir: &Path) -> Result<(), String> {
    let mut at = Some(dir);
    while let Some(p) = at {
        match fs::symlink_metadata(p) {
            Ok(_) => {
                let e = match access(p, libc::W_OK | libc::X_OK) {
                    Ok(()) => return Ok(()),
                    // A name no C string holds (a NUL in it): not this check's to refuse.
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(()),
                    Err(e) => e,
                };
                let made = if p == dir { "" } else { " to be made in" };
                return Err(format!(
                    "{}{made}: not writable by this user: {e}",
                    p.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => at = p.parent(),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(())
}

/// Why a folder cannot be used or made at `dir`.
enum Fault {
    /// A file on its way, or a link to nothing: so until the operator changes it.
    Lasting(String),
    /// Anything else met looking.
    Other(String),
}

/// Looks at `dir` and, while nothing is there, at the folders it would be made in.
fn folder_fault(dir: &Path) -> Result<(), Fault> {
    let mut at = Some(dir);
    while let Some(p) = at {
        match fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(Fault::Lasting(format!("{}: not a folder", p.display()))),
            // A link to nothing: the folder cannot be made where it points, ever.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && p.is_symlink() => {
                let to = fs::read_link(p).unwrap_or_default();
                return Err(Fault::Lasting(format!(
                    "{}: a link to {}, which does not exist",
                    p.display(),
                    to.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => at = p.parent(),
            // A file where a folder is on the way (`state_dir = "messages/"`, written with
            // its slash): as lasting as the file at the path itself.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(Fault::Lasting(format!(
                    "{}: not a folder (a file is on its way)",
                    p.display()
                )));
            }
            Err(e) => return Err(Fault::Other(format!("{}: {e}", p.display()))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO put where the folder was is refused at once: opened as a file for its sync, it
    /// was waited on for ever (a writer that never comes), with the run's lock held.
    #[test]
    fn a_fifo_at_the_folders_name_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync(dir.path()).is_ok());
        let fifo = dir.path().join("outbox");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path it is given, nothing else.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(sync(&fifo).is_err()).unwrap());
        let refused = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(refused, Ok(true), "waited on the FIFO");
    }
}
