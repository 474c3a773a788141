//! The journald source: kernel messages read with `journalctl -k -o json` from the journal's
//! own cursor (`--after-cursor`), for hosts that log without rsyslog.
//!
//! Each journal entry becomes a syslog-style line (`RFC3339 host kernel: MESSAGE`) and goes
//! through the same ingest as file lines, so parsing, counting and evidence are identical.
//! After `reread`, the stored cursor stands for "the whole journal" or "since a time".

use std::io::{BufRead, BufReader, Read, Seek};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat};

use crate::config::StartAt;
use crate::ingest::Ingest;

/// Lines are handed to ingest in batches of about this size.
const BATCH: usize = 1 << 20;

/// One journal entry as a syslog line, or `None` if it lacks a message or time.
fn syslog_line(entry: &serde_json::Value) -> Option<String> {
    let message = match &entry["MESSAGE"] {
        serde_json::Value::String(s) => s.clone(),
        // Messages that are not valid UTF-8 come as byte arrays.
        serde_json::Value::Array(bytes) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        _ => return None,
    };
    let micros: i64 = entry["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?;
    let time =
        DateTime::from_timestamp_micros(micros)?.to_rfc3339_opts(SecondsFormat::Micros, true);
    let host = entry["_HOSTNAME"].as_str().unwrap_or("localhost");
    let host: String = host
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let message = message.replace(['\n', '\r'], " ");
    Some(format!("{time} {host} kernel: {message}\n"))
}

/// The cursor `reread` leaves to read the whole journal again. Journal cursors are never
/// empty, and never begin with `@`, which [`reread_since`] uses.
pub const REREAD_ALL: &str = "";

/// The cursor `reread --since` leaves: journalctl's `--since` for a Unix time.
pub fn reread_since(time: i64) -> String {
    format!("@{time}")
}

/// Why the run's user cannot read the system journal, as journalctl says it when not told to
/// be quiet: a user outside the `systemd-journal` and `adm` groups sees no kernel message,
/// and `-q` (which keeps the read's output to entries) hides the hint that says so. Asked when
/// a read found no entry; the probe shows none (`-n 0`), and its output is not read.
pub(crate) fn access_problem() -> Option<String> {
    let (_, said) = probe().ok()?;
    denied(&said).then_some(said)
}

/// Whether journalctl's words say the user may not read the system journal.
pub(crate) fn denied(said: &str) -> bool {
    said.contains("insufficient permissions") || said.contains("not seeing messages from other")
}

/// What `journalctl -k -n 0` says when asked for no entry: whether it ended well, and its
/// words on stderr (one line); `Err` when it cannot be run or does not end within
/// [`PROBE_DEADLINE`] (it is stopped then).
pub(crate) fn probe() -> Result<(bool, String), String> {
    let said = crate::spool::unnamed_file(&std::env::temp_dir()).map_err(|e| e.to_string())?;
    let mut child = Command::new("journalctl")
        .args(["-k", "-n", "0", "-o", "json", "--no-pager"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(said.try_clone().map_err(|e| e.to_string())?))
        .spawn()
        .map_err(|e| format!("cannot run journalctl: {e}"))?;
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_DEADLINE => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "journalctl -k -n 0 did not end within {} s",
                    PROBE_DEADLINE.as_secs()
                ));
            }
        }
    };
    let mut text = Vec::new();
    let mut said = said;
    if said.seek(std::io::SeekFrom::Start(0)).is_ok() {
        let _ = said.take(crate::send::SAID_KEPT).read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text);
    Ok((
        status.success(),
        text.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// How long `journalctl -k -n 0` (no entry asked for) may take.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a read lets journalctl go without a line before it takes it for hung (a journal
/// on a disk that stopped answering, a journalctl waiting on something): stopped then, the
/// run fails (1) with the cursor where it was, rather than holding the run lock for ever
/// while every later run says "another run is in progress" and exits 0.
/// `ABUSE_MAILER_JOURNAL_STALL_SECS` sets it.
const STALL: u64 = 300;

/// The name of the variable that sets [`STALL`].
pub const STALL_VAR: &str = "ABUSE_MAILER_JOURNAL_STALL_SECS";

fn stall() -> Result<std::time::Duration> {
    match std::env::var(STALL_VAR) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                crate::error::ConfigError(format!(
                    "{STALL_VAR}={text:?} is not a number of seconds"
                ))
                .into()
            }),
        Err(_) => Ok(std::time::Duration::from_secs(STALL)),
    }
}

/// Stops the process `pid` once `progress` (milliseconds since `start`) has not moved for
/// `stall`, setting `stopped`; ends when `done` is set. `None` when no thread can be had
/// (the read then goes on unwatched, as it did).
fn watchdog(
    pid: u32,
    stall: std::time::Duration,
    start: std::time::Instant,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    std::thread::Builder::new()
        .name("journal-watch".into())
        .spawn(move || {
            while !done.load(Ordering::Acquire) {
                let last = std::time::Duration::from_millis(progress.load(Ordering::Acquire));
                if start.elapsed().saturating_sub(last) > stall {
                    stopped.store(true, Ordering::Release);
                    if let Ok(pid) = libc::pid_t::try_from(pid) {
                        // SAFETY: a signal to our own child, which is not reaped before this
                        // thread is joined.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
        .ok()
}

/// Reads journalctl's entries into `ingest`, calling `progress` for each line; the last
/// cursor read (or `cursor`) and how many entries there were.
fn read_entries(
    stdout: std::process::ChildStdout,
    cursor: Option<&str>,
    skip_history: bool,
    ingest: &mut Ingest<'_>,
    progress: &dyn Fn(),
) -> Result<(Option<String>, u64)> {
    let mut last = cursor.map(str::to_string);
    let mut entries = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    for (n, line) in BufReader::new(stdout).lines().enumerate() {
        progress();
        let line = line.context("source journald: reading journalctl")?;
        let entry: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("source journald: journalctl line {} is not JSON", n + 1))?;
        entries += 1;
        if let Some(c) = entry["__CURSOR"].as_str() {
            last = Some(c.to_string());
        }
        if skip_history {
            continue;
        }
        if let Some(text) = syslog_line(&entry) {
            batch.extend_from_slice(text.as_bytes());
        }
        if batch.len() >= BATCH {
            ingest.feed(batch.as_slice())?;
            batch.clear();
        }
    }
    ingest.feed(batch.as_slice())?;
    Ok((last, entries))
}

/// Feeds `ingest` with the kernel messages after `cursor`; returns the cursor to store.
pub fn read(
    cursor: Option<&str>,
    start: StartAt,
    ingest: &mut Ingest<'_>,
) -> Result<Option<String>> {
    let stall = stall()?;
    let mut cmd = Command::new("journalctl");
    cmd.args(["-k", "-o", "json", "--no-pager", "-q"]);
    let skip_history = cursor.is_none() && start == StartAt::End;
    match cursor {
        // Left by `reread`: the whole journal, or what it holds since a time.
        Some(REREAD_ALL) => {}
        Some(c) if c.starts_with('@') => {
            cmd.arg(format!("--since={c}"));
        }
        Some(c) => {
            cmd.arg(format!("--after-cursor={c}"));
        }
        None if skip_history => {
            cmd.args(["-n", "1"]);
        }
        None => {}
    }
    // What journalctl says goes to a file of no name, read once it has ended: through a
    // pipe not read until then, 64 KiB of warnings (a journal of many damaged files) would
    // stop it mid-write, and the run with it, for ever.
    let said =
        crate::spool::unnamed_file(&std::env::temp_dir()).and_then(|f| Ok((f.try_clone()?, f)));
    let (stderr, mut said) = match said {
        Ok((theirs, ours)) => (Stdio::from(theirs), Some(ours)),
        Err(_) => (Stdio::null(), None),
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("source journald: cannot run journalctl")?;
    let stdout = child.stdout.take().context("source journald: no output")?;
    let start = std::time::Instant::now();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = watchdog(
        child.id(),
        stall,
        start,
        progress.clone(),
        done.clone(),
        stopped.clone(),
    );
    let read = read_entries(stdout, cursor, skip_history, ingest, &|| {
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress.store(now, std::sync::atomic::Ordering::Release);
    });
    done.store(true, std::sync::atomic::Ordering::Release);
    if let Some(watch) = watch {
        let _ = watch.join();
    }
    if stopped.load(std::sync::atomic::Ordering::Acquire) {
        let _ = child.wait();
        bail!(
            "source journald: journalctl printed nothing for {} s and was stopped ({STALL_VAR} sets how long it may); the journal's cursor stays where it was: try `journalctl -k -n 1` by hand",
            stall.as_secs()
        );
    }
    let (last, entries) = match read {
        Ok(read) => read,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let status = child.wait().context("source journald: journalctl")?;
    let mut stderr = Vec::new();
    if let Some(file) = said.as_mut()
        && file.seek(std::io::SeekFrom::Start(0)).is_ok()
    {
        let _ = file.take(crate::send::SAID_KEPT).read_to_end(&mut stderr);
    }
    let stderr = String::from_utf8_lossy(&stderr);
    if !status.success() {
        bail!(
            "source journald: journalctl exited with {status}: {}",
            stderr.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    // Nothing at all: read without the system journal, the source would be empty on every
    // run, silently. (A read that found entries could read the journal.)
    if entries == 0
        && let Some(said) = access_problem()
    {
        bail!(
            "source journald: the run's user cannot read the system journal's kernel messages (journalctl: {said}); add it to the systemd-journal or adm group (the shipped unit reads as a member of adm)"
        );
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_becomes_a_syslog_line() {
        let entry = serde_json::json!({
            "__CURSOR": "s=1;i=2", "__REALTIME_TIMESTAMP": "1769385085123456", "_HOSTNAME": "web1",
            "MESSAGE": "INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 PROTO=TCP SPT=1 DPT=22\nx"
        });
        assert_eq!(
            syslog_line(&entry).unwrap(),
            "2026-01-25T23:51:25.123456Z web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 PROTO=TCP SPT=1 DPT=22 x\n"
        );
        let bytes = serde_json::json!({"__REALTIME_TIMESTAMP": "0", "MESSAGE": [65, 255, 66]});
        assert_eq!(
            syslog_line(&bytes).unwrap(),
            "1970-01-01T00:00:00.000000Z localhost kernel: A\u{fffd}B\n"
        );
        assert!(syslog_line(&serde_json::json!({"MESSAGE": "x"})).is_none());
    }
}
