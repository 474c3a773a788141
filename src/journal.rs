//! The journald source: kernel messages read with `journalctl _TRANSPORT=kernel -o json`
//! from the journal's own cursor (`--after-cursor`), for hosts that log without rsyslog.
//! Not `-k`: it also means "this boot only", and after a reboot it gives nothing after a
//! cursor of the boot before, so the cursor would never move again.
//!
//! Each journal entry becomes a syslog-style line (`RFC3339 host kernel: MESSAGE`) and goes
//! through the same ingest as file lines, so parsing, counting and evidence are identical.
//! After `reread`, the stored cursor stands for "the whole journal" or "since a time".

use std::io::{Read, Seek};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat};

use crate::config::StartAt;
use crate::ingest::Ingest;
use crate::overlap::Heard;

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
    Ok((status.success(), said_in(said)))
}

/// Notes in `heard` the packet lines among the journal's last kernel messages, as many as it
/// keeps: for `check`, which compares them with the file sources' ends. journalctl has
/// [`PROBE_DEADLINE`] between lines, and is stopped past it.
pub(crate) fn hear_last(heard: &mut Heard) -> Result<()> {
    each_of_the_last(crate::overlap::HEARD_LINES, |text| {
        heard.note(text.as_bytes())
    })
}

/// The last `count` kernel messages as syslog lines, each ended by a newline, for `check` to
/// judge the prefixes by, as it judges a file by its end.
pub(crate) fn last_lines(count: usize) -> Result<Vec<u8>> {
    let mut lines = Vec::new();
    each_of_the_last(count, |text| lines.extend_from_slice(text.as_bytes()))?;
    Ok(lines)
}

/// Gives `each` the syslog line of each of the journal's last `count` kernel messages.
fn each_of_the_last(count: usize, mut each: impl FnMut(&str)) -> Result<()> {
    let mut child = Command::new("journalctl")
        .args(["_TRANSPORT=kernel", "-o", "json", "--no-pager", "-q", "-n"])
        .arg(count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run journalctl")?;
    let stdout = child.stdout.take().context("journalctl: no output")?;
    let mut output = Output::new(stdout, PROBE_DEADLINE);
    let heard_all = (|| -> Result<()> {
        while let Some(line) = output.next_line()? {
            let entry: serde_json::Value = serde_json::from_str(&line)?;
            if let Some(text) = syslog_line(&entry) {
                each(&text);
            }
        }
        Ok(())
    })();
    if heard_all.is_err() {
        let _ = child.kill();
    }
    let _ = child.try_wait();
    heard_all
}

/// What journalctl wrote to the file of no name its stderr went to: the first
/// [`crate::send::SAID_KEPT`] bytes, on one line.
fn said_in(mut file: std::fs::File) -> String {
    let mut text = Vec::new();
    if file.seek(std::io::SeekFrom::Start(0)).is_ok() {
        let _ = file.take(crate::send::SAID_KEPT).read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

pub(crate) fn stall() -> Result<std::time::Duration> {
    let secs = crate::error::number_from_env(STALL_VAR, "seconds", 1)?.unwrap_or(STALL);
    Ok(std::time::Duration::from_secs(secs))
}

/// journalctl's output, a line at a time as it comes, waited for at most `stall` between
/// bytes: a journalctl that sends nothing for that long is left where it is, whatever state it
/// is in (one waiting on a disk that stopped answering cannot even be killed), and the read
/// ends with [`Stalled`].
struct Output {
    pipe: std::process::ChildStdout,
    buffer: Vec<u8>,
    start: usize,
    ended: bool,
    stall: std::time::Duration,
    heard: std::time::Instant,
}

/// What an [`Output`] ends with when journalctl sent nothing for its `stall`.
#[derive(Debug)]
struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("journalctl sent nothing for too long")
    }
}

impl std::error::Error for Stalled {}

impl Output {
    fn new(pipe: std::process::ChildStdout, stall: std::time::Duration) -> Self {
        Output {
            pipe,
            buffer: Vec::new(),
            start: 0,
            ended: false,
            stall,
            heard: std::time::Instant::now(),
        }
    }

    /// The next line, without its line end; `None` at the end of the output.
    fn next_line(&mut self) -> Result<Option<String>> {
        use std::os::fd::AsRawFd;
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buffer[self.start..]) {
                let line = &self.buffer[self.start..self.start + at];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.start += at + 1;
                return String::from_utf8(line).map(Some).context(
                    "source journald: reading journalctl: stream did not contain valid UTF-8",
                );
            }
            if self.ended {
                if self.start == self.buffer.len() {
                    return Ok(None);
                }
                let rest = self.buffer.split_off(self.start);
                self.start = self.buffer.len();
                return String::from_utf8(rest).map(Some).context(
                    "source journald: reading journalctl: stream did not contain valid UTF-8",
                );
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            let left = self.stall.saturating_sub(self.heard.elapsed());
            if left.is_zero() {
                return Err(Stalled.into());
            }
            let mut ready = libc::pollfd {
                fd: self.pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let wait = i32::try_from(left.as_millis().min(1000)).unwrap_or(1000);
            // SAFETY: one pollfd, ours, for the duration of the call.
            let answer = unsafe { libc::poll(&mut ready, 1, wait) };
            if answer < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(anyhow::Error::from(e).context("source journald: reading journalctl"));
            }
            if answer == 0 {
                continue;
            }
            // Readable (or at its end): a read takes what is there without waiting for more.
            let mut chunk = [0u8; 64 << 10];
            match self.pipe.read(&mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    self.heard = std::time::Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(
                        anyhow::Error::from(e).context("source journald: reading journalctl")
                    );
                }
            }
        }
    }
}

/// Reads journalctl's entries into `ingest`; the last cursor read (or `cursor`) and how many
/// entries there were.
fn read_entries(
    output: &mut Output,
    cursor: Option<&str>,
    skip_history: bool,
    ingest: &mut Ingest<'_>,
    heard: &mut Heard,
) -> Result<(Option<String>, u64)> {
    let mut last = cursor.map(str::to_string);
    let mut entries = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 0;
    while let Some(line) = output.next_line()? {
        n += 1;
        let entry: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("source journald: journalctl line {n} is not JSON"))?;
        entries += 1;
        if let Some(c) = entry["__CURSOR"].as_str() {
            last = Some(c.to_string());
        }
        if skip_history {
            continue;
        }
        if let Some(text) = syslog_line(&entry) {
            heard.note(text.as_bytes());
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

/// Feeds `ingest` with the kernel messages after `cursor`, and `heard` with the packet lines
/// among them; returns the cursor to store.
pub fn read(
    cursor: Option<&str>,
    start: StartAt,
    ingest: &mut Ingest<'_>,
    heard: &mut Heard,
) -> Result<Option<String>> {
    let stall = stall()?;
    let mut cmd = Command::new("journalctl");
    // Every boot's kernel messages: the end of the boot before a reboot, after the cursor,
    // is read too (see the module's note on `-k`).
    cmd.args(["_TRANSPORT=kernel", "-o", "json", "--no-pager", "-q"]);
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
    let (stderr, said) = match said {
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
    let mut output = Output::new(stdout, stall);
    let (last, entries) = match read_entries(&mut output, cursor, skip_history, ingest, heard) {
        Ok(read) => read,
        Err(e) => {
            // Stopped, and not waited for: one stuck on a disk outlives any signal.
            let _ = child.kill();
            let _ = child.try_wait();
            if e.is::<Stalled>() {
                bail!(
                    "source journald: journalctl printed nothing for {} s and was stopped ({STALL_VAR} sets how long it may); the journal's cursor stays where it was: try `journalctl -k -n 1` by hand",
                    stall.as_secs()
                );
            }
            return Err(e);
        }
    };
    let status = child.wait().context("source journald: journalctl")?;
    if !status.success() {
        let stderr = said.map(said_in).unwrap_or_default();
        bail!("source journald: journalctl exited with {status}: {stderr}");
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
