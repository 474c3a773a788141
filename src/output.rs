//! What the commands print: `preview --json`/`run --json` reports, messages in mbox form, the
//! summary line every run ends with, `history` and `show`.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Stamp, Zone};
use crate::config::Settings;
use crate::enrich::AsnInfo;
use crate::error::{EXIT_ERROR, EXIT_OK};
use crate::ingest::{Observation, Observations, Summary};
use crate::plan::Planned;
use crate::render::ReportIp;
use crate::state::{HistoryFilter, ReportContact, State, Status};

/// A line for the operator on standard output. Output closed or gone (a pager quit, `| head`,
/// a closed descriptor under a daemon) neither stops the work the line is about nor panics
/// as `println!` would: a line that cannot be shown is dropped, and the first failure other
/// than a reader gone is kept for the commands whose lines are their answer (see
/// [`lines_lost`]).
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    if let Err(e) = write_line(std::io::stdout().lock(), line)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = STDOUT_FAILED.set(e.to_string());
    }
}

/// The first failure to write a line of [`say`]'s other than a reader gone: a command whose
/// lines are what it is for (`check`) fails with it.
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Why a line of [`say`]'s was lost, if one was (a full disk under a redirect).
pub(crate) fn lines_lost() -> Option<&'static str> {
    STDOUT_FAILED.get().map(String::as_str)
}

/// Standard output for a command's answer (messages, rows, rules): an error writing it says
/// where the text was going, not only why it did not get there.
pub(crate) fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

/// See [`stdout`].
pub(crate) struct Stdout(std::io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(to_stdout)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(to_stdout)
    }
}

/// `e` met writing standard output, saying so; of the same kind, so that a reader gone is
/// still told from a full disk.
fn to_stdout(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot write to standard output: {e}"))
}

/// A line for the operator on standard error: [`say`]'s rule, for warnings and summaries (a
/// pipe into `head` with `2>&1` closes both).
pub(crate) fn tell(line: std::fmt::Arguments<'_>) {
    let _ = write_line(std::io::stderr().lock(), line);
}

/// Writes `line` and a newline. A line may name what
/// others chose (a file a log host made from a sender's host name, a server's words): a
/// control character or invisible formatting in it is shown as its escape (`\x1b`,
/// `\u{202e}`), so that it can neither act on the terminal nor split the line.
fn write_line(mut out: impl Write, line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let text = shown(&line.to_string());
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
}

/// `text` with every control character (but the tab) and invisible formatting character
/// written as its escape.
pub(crate) fn shown(text: &str) -> String {
    use std::fmt::Write as _;
    let hidden = |c: char| (c.is_control() && c != '\t') || crate::excerpt::is_invisible_format(c);
    if !text.chars().any(hidden) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// `--json`'s document but its last member, `unattributed`, which [`print_json`] writes after
/// it (see [`Unattributed::write_pretty`]).
#[derive(Serialize)]
pub(crate) struct JsonHead<'a> {
    pub(crate) reports: Vec<JsonEntry<'a>>,
    pub(crate) summary: Summary,
}

/// A report in `--json`: one made now, or one made by an earlier run and waiting to be sent
/// again, as it was listed when made.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum JsonEntry<'a> {
    Made(JsonReport<'a>),
    Waiting(serde_json::Value),
}

#[derive(Serialize)]
pub(crate) struct JsonReport<'a> {
    /// `null` for a report to a discovered contact.
    pub(crate) provider: Option<&'a str>,
    /// Where a discovered contact's address came from; absent for a provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) contact: Option<&'a ReportContact>,
    pub(crate) to: &'a [String],
    pub(crate) subject: &'a str,
    pub(crate) ips: Vec<JsonIp<'a>>,
    pub(crate) excerpt: &'a [String],
}

#[derive(Serialize)]
pub(crate) struct JsonIp<'a> {
    pub(crate) ip: &'a str,
    pub(crate) hits: u64,
    pub(crate) first_seen: &'a str,
    pub(crate) last_seen: &'a str,
    pub(crate) asn: Option<u32>,
    pub(crate) as_org: Option<&'a str>,
    pub(crate) ports: &'a [u16],
}

impl<'a> From<&'a ReportIp> for JsonIp<'a> {
    fn from(i: &'a ReportIp) -> Self {
        JsonIp {
            ip: &i.ip,
            hits: i.hits,
            first_seen: &i.first_seen,
            last_seen: &i.last_seen,
            asn: i.asn,
            as_org: i.as_org.as_deref(),
            ports: &i.ports,
        }
    }
}

/// The `unattributed` list, each entry made as it is written: with many sources in no
/// provider (a scan, a flood), the whole list made first would cost more than the read.
pub(crate) struct Unattributed<'a> {
    /// Ascending, each with the place of its whole record in `held`, if it is there.
    pub(crate) entries: Vec<(IpAddr, Option<u32>)>,
    pub(crate) held: &'a Observations,
    /// Makes the entry of an address from its record held in memory, on any thread.
    pub(crate) listed: Listing<'a>,
    /// Makes the entry of an address whose record is not held, from the state (`None`:
    /// nothing is known of it any more).
    pub(crate) not_held: NotHeld<'a>,
}

/// Makes the `unattributed` entry of an address from its record.
pub(crate) type Listing<'a> = Box<dyn Fn(&Observation) -> Listed + Sync + 'a>;

/// Makes the `unattributed` entry of an address whose record is not in memory.
pub(crate) type NotHeld<'a> = Box<dyn Fn(IpAddr) -> Result<Option<Listed>> + 'a>;

/// An address as `unattributed` lists it: the fields of a report's `ips`, made straight from
/// the observation (a report's other fields, costly for a flood's hundred thousand sources,
/// are not listed).
#[derive(Serialize)]
pub(crate) struct Listed {
    ip: IpAddr,
    hits: u64,
    first_seen: Stamp,
    last_seen: Stamp,
    asn: Option<u32>,
    as_org: Option<String>,
    ports: Vec<u16>,
}

impl Listed {
    pub(crate) fn new(o: &Observation, asn: Option<&AsnInfo>, zone: Zone) -> Self {
        Listed {
            ip: o.ip,
            hits: o.hits,
            first_seen: zone.stamp(o.first_seen),
            last_seen: zone.stamp(o.last_seen),
            asn: asn.map(|a| a.asn),
            // The database is outside input too: its text is cleaned like a log's.
            as_org: asn
                .and_then(|a| a.org.as_deref())
                .map(|t| crate::excerpt::clean(t.as_bytes())),
            ports: o.dst_ports.iter().copied().collect(),
        }
    }
}

impl Listed {
    /// The entry as serde_json's pretty printer writes it as an element of `unattributed`
    /// (two levels deep), after a separator unless it is the `first`: a flood's list has a
    /// hundred thousand entries, and writing each through the printer a token at a time cost
    /// more than finding them. A test holds it to the printer's own output.
    fn write_pretty(&self, out: &mut Vec<u8>, first: bool) -> serde_json::Result<()> {
        /// One member of the entry, after the one before it.
        fn member(out: &mut Vec<u8>, key: &str, value: &impl Serialize) -> serde_json::Result<()> {
            name(out, key);
            serde_json::to_writer(&mut *out, value)
        }
        /// A member's name, after the one before it.
        fn name(out: &mut Vec<u8>, key: &str) {
            out.extend_from_slice(b",\n      \"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\": ");
        }
        out.extend_from_slice(if first { b"\n" } else { b",\n" });
        out.extend_from_slice(b"    {\n      \"ip\": ");
        serde_json::to_writer(&mut *out, &self.ip)?;
        member(out, "hits", &self.hits)?;
        name(out, "first_seen");
        self.first_seen.write_json(out)?;
        name(out, "last_seen");
        self.last_seen.write_json(out)?;
        member(out, "asn", &self.asn)?;
        member(out, "as_org", &self.as_org)?;
        out.extend_from_slice(b",\n      \"ports\": ");
        if self.ports.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            out.push(b'[');
            for (k, port) in self.ports.iter().enumerate() {
                out.extend_from_slice(if k == 0 { b"\n" } else { b",\n" });
                out.extend_from_slice(b"        ");
                serde_json::to_writer(&mut *out, port)?;
            }
            out.extend_from_slice(b"\n      ]");
        }
        out.extend_from_slice(b"\n    }");
        Ok(())
    }
}

/// Entries a thread writes at a time (about 1.4 MB of text): a few such pieces are held at
/// once, not the whole list.
const ENTRIES_A_PIECE: usize = 8192;

impl Unattributed<'_> {
    /// The list as the value of the document's last member, as serde_json's pretty printer
    /// writes it: pieces of `piece` entries written side by side, as
    /// many at once as there are cores, and put out in order. A piece with an entry whose
    /// record is not held is written by this thread, which alone may ask the state.
    fn write_pretty(&self, out: &mut impl Write, piece: usize) -> Result<()> {
        let piece = piece.max(1);
        let (held, listed) = (self.held, &self.listed);
        let mut first = true;
        out.write_all(b"[")?;
        for batch in self.entries.chunks(piece * crate::parallel::threads()) {
            let texts = crate::parallel::map_in_order(batch.chunks(piece).collect(), |entries| {
                held_entries(entries, held, listed)
            });
            for (entries, text) in batch.chunks(piece).zip(texts) {
                let text = match text? {
                    Some(text) => text,
                    None => self.entries_here(entries)?,
                };
                // Each entry is written after a separator; the list's first has none.
                let text = match text.split_first() {
                    Some((_, after)) if first => {
                        first = false;
                        after
                    }
                    _ => &text[..],
                };
                out.write_all(text)?;
            }
        }
        out.write_all(if first { b"]" } else { b"\n  ]" })?;
        Ok(())
    }

    /// The text of `entries`, each after its separator, asking the state for those whose
    /// record is not held.
    fn entries_here(&self, entries: &[(IpAddr, Option<u32>)]) -> Result<Vec<u8>> {
        let mut text = Vec::new();
        for &(ip, place) in entries {
            if let Some(entry) = self.entry(ip, place)? {
                entry.write_pretty(&mut text, false)?;
            }
        }
        Ok(text)
    }

    /// The entry of `ip`, from its record at `place` if held, else from the state (`None`:
    /// nothing is known of it any more).
    fn entry(&self, ip: IpAddr, place: Option<u32>) -> Result<Option<Listed>> {
        match place.and_then(|p| self.held.at(p)) {
            Some(o) => Ok(Some((self.listed)(o))),
            None => (self.not_held)(ip),
        }
    }
}

/// The text of `entries`, each after its separator, when every one's record is held (`None`
/// when one is not).
fn held_entries(
    entries: &[(IpAddr, Option<u32>)],
    held: &Observations,
    listed: &Listing<'_>,
) -> serde_json::Result<Option<Vec<u8>>> {
    // The records are in the order their addresses were first read, not in the list's: each
    // would be a cache miss of its own, waited for while its entry is written. A few dozen
    // are asked of the memory ahead, so that their misses overlap.
    const AHEAD: usize = 64;
    let mut records: Vec<&Observation> = Vec::with_capacity(entries.len());
    for (_, place) in entries {
        match place.and_then(|p| held.at(p)) {
            Some(o) => records.push(o),
            None => return Ok(None),
        }
    }
    // An entry takes about 260 bytes (times, ports, an AS name): a piece sized for them is
    // not grown, and copied, on the way.
    let mut text = Vec::with_capacity(entries.len() * 320);
    for records in records.chunks(AHEAD) {
        for o in records {
            crate::ingest::prefetch(*o);
        }
        for o in records {
            listed(o).write_pretty(&mut text, false)?;
        }
    }
    Ok(Some(text))
}

/// The plain way to write the list, through serde_json's printer: what
/// [`Unattributed::write_pretty`] is held to.
#[cfg(test)]
impl Serialize for Unattributed<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = out.serialize_seq(None)?;
        for &(ip, place) in &self.entries {
            let entry = (self.entry(ip, place)).map_err(|e| S::Error::custom(format!("{e:#}")))?;
            if let Some(entry) = entry {
                seq.serialize_element(&entry)?;
            }
        }
        seq.end()
    }
}

/// A report made now, as `--json` lists it.
pub(crate) fn json_report(p: &Planned) -> JsonReport<'_> {
    JsonReport {
        provider: match p.record.contact {
            Some(_) => None,
            None => Some(&p.report.provider),
        },
        contact: p.record.contact.as_ref(),
        to: &p.report.to,
        subject: &p.record.subject,
        ips: p.report.ips.iter().map(JsonIp::from).collect(),
        excerpt: &p.report.excerpt,
    }
}

/// A report made by an earlier run and waiting to be sent again, as `--json` lists it: as
/// listed when it was made, kept in the state; else (made before the state kept that) from
/// the ledger, its addresses with their counts and times, and no excerpt.
pub(crate) fn json_waiting(
    record: &crate::state::ReportRecord,
    kept: Option<&str>,
    settings: &Settings,
) -> serde_json::Value {
    if let Some(value) = kept.and_then(|k| serde_json::from_str(k).ok()) {
        return value;
    }
    let cc: Vec<String> = (settings.report.cc.iter())
        .map(|m| m.email.to_string())
        .collect();
    // The desk's own addresses (an API request's is its endpoint: none, as when it was made).
    let to: Vec<&String> = (record.recipients.iter())
        .filter(|r| !record.made_for_api() && !cc.iter().any(|c| c.eq_ignore_ascii_case(r)))
        .collect();
    let ips: Vec<serde_json::Value> = (record.ips.iter())
        .map(|i| {
            serde_json::json!({
                "ip": i.ip.to_string(),
                "hits": i.hits,
                "first_seen": settings.zone.rfc3339(i.first_seen),
                "last_seen": settings.zone.rfc3339(i.last_seen),
                "asn": null,
                "as_org": null,
                "ports": [],
            })
        })
        .collect();
    let mut entry = serde_json::json!({
        "provider": record.contact.as_ref().map_or(Some(&record.provider), |_| None),
        "to": to,
        "subject": record.subject,
        "ips": ips,
        "excerpt": [],
    });
    if let Some(contact) = &record.contact {
        entry["contact"] = serde_json::json!(contact);
    }
    entry
}

pub(crate) fn print_json(
    reports: Vec<JsonEntry<'_>>,
    summary: Summary,
    unattributed: &Unattributed<'_>,
    of_a_run: bool,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Written after the run did its work: a standard output that takes no more (a full
    // disk under a redirect) loses the document, not what was sent, which the ledger holds
    // (`of_a_run`; a preview sent nothing).
    (|| -> Result<()> {
        write_document(
            &mut out,
            &JsonHead { reports, summary },
            unattributed,
            ENTRIES_A_PIECE,
        )?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    })()
    .with_context(|| match of_a_run {
        true => "cannot write the JSON document to standard output (what a run sent is recorded: see `abuse-mailer history`)",
        false => "cannot write the JSON document to standard output (a preview changes nothing)",
    })
}

/// The document of `--json`: `head`'s members, then `unattributed` (written `piece` entries
/// to a thread), as serde_json's pretty printer writes one object of them all.
fn write_document(
    out: &mut impl Write,
    head: &JsonHead<'_>,
    unattributed: &Unattributed<'_>,
    piece: usize,
) -> Result<()> {
    let text = serde_json::to_vec_pretty(head)?;
    // The head's object, open again for one more member.
    let open = text
        .strip_suffix(b"\n}")
        .ok_or_else(|| anyhow::anyhow!("the JSON document's head does not end its object"))?;
    out.write_all(open)?;
    out.write_all(b",\n  \"unattributed\": ")?;
    unattributed.write_pretty(out, piece)?;
    out.write_all(b"\n}")?;
    Ok(())
}

/// Messages in mbox form: each after a `From ` line, with Unix line ends and `From ` quoting.
pub(crate) fn print_mbox<'a>(
    messages: impl Iterator<Item = &'a [u8]>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(stdout());
    for message in messages {
        writeln!(
            out,
            "From abuse-mailer {}",
            now.format("%a %b %e %H:%M:%S %Y")
        )?;
        let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
        for line in text.lines() {
            if line.trim_start_matches('>').starts_with("From ") {
                write!(out, ">")?;
            }
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// The one line every run ends with: what was read, the reports made (sent, or written to
/// wait), how many went out. `waiting`: addresses to report wait for a later run (the
/// budget, a lookup), said before it; a run that made no report then says so, not that there
/// was nothing new.
pub(crate) fn summary_line(
    what: &str,
    s: &Summary,
    reports: &[Planned],
    waiting: bool,
    sent: usize,
    started: Instant,
) -> String {
    let new = if reports.is_empty() && waiting {
        "no new report made, addresses wait for a later run".to_string()
    } else if reports.is_empty() {
        "nothing new to report".to_string()
    } else {
        // Per desk: addresses, those of them reported before (`rereport_after_days`), and
        // messages.
        let mut by_provider: Vec<(&str, usize, usize, usize)> = Vec::new();
        for p in reports {
            // Discovered contacts are many: they are counted together.
            let name = match p.record.contact {
                Some(_) => "discovered contacts",
                None => p.record.provider.as_str(),
            };
            let (ips, again) = (p.record.ips.len(), p.report.rereport_count);
            match by_provider.iter_mut().find(|(n, ..)| *n == name) {
                Some((_, all, before, messages)) => {
                    *all += ips;
                    *before += again;
                    *messages += 1;
                }
                None => by_provider.push((name, ips, again, 1)),
            }
        }
        by_provider
            .iter()
            .map(|&(name, ips, again, messages)| {
                // Re-reports are no new addresses: said apart.
                let what = match (ips.saturating_sub(again), again) {
                    (new, 0) => format!("{new} new"),
                    (0, again) => format!("{again} again"),
                    (new, again) => format!("{new} new and {again} again"),
                };
                match messages {
                    1 => format!("{name}: {what}"),
                    _ => format!("{name}: {what} in {messages} messages"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // What the defaults left out, so that an operator sees why an address was not reported.
    // Stale lines are those too old and those dated ahead of the clock, each said as such.
    let counts = [
        (
            s.lines_stale.saturating_sub(s.lines_ahead),
            "lines older than max_age_days",
        ),
        (
            s.lines_ahead,
            "lines dated more than a day ahead of the clock",
        ),
        (
            s.lines_backscatter,
            "lines answering our own traffic (backscatter)",
        ),
        (
            s.lines_before_since,
            "lines logged before the time --since gave",
        ),
        (
            s.lines_outgoing,
            "lines of packets this host sent (an empty IN= or IN=lo, or a SRC= that is the DST=: its own address)",
        ),
        (
            s.lines_counted_before,
            "lines read again that an earlier read counted",
        ),
        (s.ips_below_min_hits, "IPs below min_hits so far"),
    ];
    let left_out: Vec<String> = (counts.iter())
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let left_out = if left_out.is_empty() {
        String::new()
    } else {
        format!("; not counted: {}", left_out.join(", "))
    };
    format!(
        "abuse-mailer {what}: read {} lines ({} bytes), {} matched, {} malformed, {} IPs ({} in no provider){left_out}; {new}; {sent} sent; {:.2}s",
        s.lines_read,
        s.bytes_read,
        s.lines_matched,
        s.lines_malformed,
        s.ips_observed,
        s.ips_unattributed,
        started.elapsed().as_secs_f64()
    )
}

#[derive(Serialize)]
pub(crate) struct JsonHistory<'a> {
    pub(crate) id: &'a str,
    /// `null` for a report to a discovered contact.
    pub(crate) provider: Option<&'a str>,
    /// Where a discovered contact's address came from; absent for a provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) contact: Option<&'a ReportContact>,
    pub(crate) to: &'a [String],
    pub(crate) subject: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) status: &'a str,
    pub(crate) created_at: &'a str,
    pub(crate) sent_at: Option<&'a str>,
    pub(crate) ips: Vec<String>,
    /// What a remote intake (the AWS API) said; null for mail.
    pub(crate) remote: Option<crate::aws_api::JsonRemote<'a>>,
}

pub(crate) fn history(
    settings: &Settings,
    ip: Option<IpAddr>,
    provider: Option<String>,
    json: bool,
) -> Result<u8> {
    let state = State::open_read_only(&settings.state_dir)?;
    let only = provider.clone();
    let records = match &state {
        Some(s) => s.history(&HistoryFilter { ip, provider })?,
        None => Vec::new(),
    };
    // A name neither configured nor in the ledger is a typo, said as `run --provider` says it,
    // not an empty history that reads as "nothing was ever sent there".
    if let Some(name) = only.as_deref()
        && records.is_empty()
        && settings.provider(name).is_none()
        && !state
            .as_ref()
            .map(|s| s.has_reports(name))
            .transpose()?
            .unwrap_or(false)
    {
        let known: Vec<&str> = settings.providers.iter().map(|p| p.name.as_str()).collect();
        return Err(crate::error::ConfigError(format!(
            "no provider {name:?} configured, and no report to it in the ledger (known: {})",
            known.join(", ")
        ))
        .into());
    }
    let remotes = match &state {
        Some(s) => s.remotes()?,
        None => HashMap::new(),
    };
    let mut out = stdout();
    if json {
        let rows: Vec<JsonHistory<'_>> = records
            .iter()
            .map(|r| JsonHistory {
                id: &r.id,
                provider: match r.contact {
                    Some(_) => None,
                    None => Some(&r.provider),
                },
                contact: r.contact.as_ref(),
                to: &r.recipients,
                subject: &r.subject,
                message_id: &r.message_id,
                status: r.status.as_str(),
                created_at: &r.created_at,
                sent_at: r.sent_at.as_deref(),
                ips: r.ips.iter().map(|i| i.ip.to_string()).collect(),
                remote: remotes.get(&r.id).map(Into::into),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    if records.is_empty() {
        writeln!(out, "no reports")?;
        return Ok(EXIT_OK);
    }
    // A waiting report the configuration no longer lets go is said to be withdrawn by the
    // next run, as the run would say it. Without the configuration's files (a range file
    // missing) nothing is said: the run would stop before it anyway.
    let waiting =
        |r: &crate::state::ReportRecord| matches!(r.status, Status::Sending | Status::Failed);
    let world = (records.iter().any(waiting))
        .then(crate::clock::now)
        .and_then(Result::ok)
        .and_then(|now| {
            crate::intake::World::load(settings, now, None, crate::cli::Verbosity::Quiet).ok()
        });
    // Columns as wide as their longest value: ids and discovered desks' keys vary in length.
    let id_width = records
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(0)
        .max(40);
    let to_width = records
        .iter()
        .map(|r| r.provider.len())
        .max()
        .unwrap_or(0)
        .max(12);
    writeln!(
        out,
        "{:<id_width$} {:<20} {:<to_width$} {:<8} {:>5}  subject",
        "id", "created (UTC)", "provider", "status", "ips"
    )?;
    for r in &records {
        writeln!(
            out,
            "{:<id_width$} {:<20} {:<to_width$} {:<8} {:>5}  {}",
            r.id,
            r.created_at,
            r.provider,
            r.status.as_str(),
            r.ips.len(),
            r.subject
        )?;
        if let Some(e) = r.last_error.as_deref().filter(|_| r.status != Status::Sent) {
            writeln!(out, "{:<id_width$} last error: {e}", "")?;
        }
        // Taken as delivered without the server's word, or against its refusal of a copy sent
        // again: the operator may want to ask the desk.
        if let Some(reply) = r.server_reply.as_deref().filter(|reply| {
            r.status == Status::Sent
                && (i64::from(r.unconfirmed) >= crate::state::UNCONFIRMED_AT_MOST
                    || (r.unconfirmed > 0 && reply.starts_with(crate::ledger::TAKEN_AS_DELIVERED)))
        }) {
            writeln!(out, "{:<id_width$} {reply}", "")?;
        }
        let next = match (&world, &state) {
            (Some(w), Some(s)) if waiting(r) => crate::ledger::withdrawn(r, w, s)?,
            _ => None,
        };
        if let Some(why) = next {
            writeln!(out, "{:<id_width$} next run: {why}", "")?;
        }
        if let Some(remote) = remotes.get(&r.id) {
            writeln!(
                out,
                "{:<id_width$} {}",
                "",
                crate::aws_api::describe(remote)
            )?;
        }
    }
    if let Some(s) = &state {
        for tally in crate::aws_api::tallies(s, settings, only.as_deref())? {
            writeln!(out, "{tally}")?;
        }
    }
    Ok(EXIT_OK)
}

pub(crate) fn show(settings: &Settings, id: &str) -> Result<u8> {
    let state = State::open_read_only(&settings.state_dir)?;
    let Some(record) = state.as_ref().map(|s| s.report(id)).transpose()?.flatten() else {
        // Cut as every error is: an id is whatever was typed, or pasted.
        let id = crate::error::cut_short(&format!("{id:?}"), 200);
        crate::output::tell(format_args!(
            "abuse-mailer: no report {id} in the ledger (see `abuse-mailer history`)"
        ));
        return Ok(EXIT_ERROR);
    };
    stdout().write_all(&record.message)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The document as serde_json's printer writes it in one piece.
    #[derive(Serialize)]
    struct Whole<'a> {
        reports: Vec<JsonReport<'a>>,
        summary: Summary,
        unattributed: &'a Unattributed<'a>,
    }

    /// One source: IPv6?, its bits, hits, first seen, seconds to its last, its AS number and
    /// name, its ports, and whether its record is held (else it is known from the state, or,
    /// every third time, not known any more).
    type Source = (
        bool,
        u128,
        u64,
        i64,
        i64,
        Option<u32>,
        Option<String>,
        Vec<u16>,
        bool,
    );

    fn source() -> impl Strategy<Value = Source> {
        (
            any::<bool>(),
            any::<u128>(),
            1u64..100_000,
            // Years before 0 and after 9999 too, which chrono writes in its own words.
            -100_000_000_000i64..300_000_000_000,
            0i64..10_000_000,
            proptest::option::of(any::<u32>()),
            proptest::option::of("[a-zA-Z \"\\\\\u{0}-\u{1f}é€]{0,12}"),
            proptest::collection::vec(any::<u16>(), 0..5),
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn the_document_written_in_pieces_is_the_one_the_printer_writes_whole(
            sources in proptest::collection::vec(source(), 0..24),
            kathmandu in any::<bool>(),
            // Entries written a piece at a time, side by side: pieces of one, a few, or all.
            piece in prop_oneof![1usize..6, Just(ENTRIES_A_PIECE)],
        ) {
            // A zone whose offset is not whole hours, and UTC.
            let zone = if kathmandu {
                Zone::Named(chrono_tz::Asia::Kathmandu)
            } else {
                Zone::Utc
            };
            let mut held = Observations::new();
            let mut stored: BTreeMap<IpAddr, Observation> = BTreeMap::new();
            let mut asns: BTreeMap<IpAddr, AsnInfo> = BTreeMap::new();
            let mut entries: BTreeMap<IpAddr, Option<u32>> = BTreeMap::new();
            for (k, (v6, bits, hits, first, span, asn, org, ports, is_held)) in
                sources.into_iter().enumerate()
            {
                let ip = if v6 {
                    IpAddr::from(std::net::Ipv6Addr::from_bits(bits))
                } else {
                    IpAddr::from(std::net::Ipv4Addr::from_bits(bits as u32))
                };
                if entries.contains_key(&ip) {
                    continue;
                }
                let mut o = Observation::new(ip, first);
                o.last_seen = first + span;
                o.hits = hits;
                for p in ports {
                    o.dst_ports.insert(p);
                }
                if let Some(asn) = asn {
                    asns.insert(ip, AsnInfo { asn, org });
                }
                let place = if is_held {
                    held.add(o);
                    Some(held.len() as u32 - 1)
                } else {
                    if k % 3 != 0 {
                        stored.insert(ip, o);
                    }
                    None
                };
                entries.insert(ip, place);
            }
            let list = Unattributed {
                entries: entries.into_iter().collect(),
                held: &held,
                listed: Box::new(|o| Listed::new(o, asns.get(&o.ip), zone)),
                not_held: Box::new(|ip| Ok(stored.get(&ip).map(|o| Listed::new(o, asns.get(&ip), zone)))),
            };
            let summary = Summary {
                lines_read: 7,
                ips_observed: 3,
                ..Summary::default()
            };
            let mut pieces = Vec::new();
            write_document(&mut pieces, &JsonHead { reports: Vec::new(), summary }, &list, piece)
                .unwrap();
            let whole = serde_json::to_vec_pretty(&Whole {
                reports: Vec::new(),
                summary,
                unattributed: &list,
            })
            .unwrap();
            prop_assert_eq!(String::from_utf8(pieces).unwrap(), String::from_utf8(whole).unwrap());
        }
    }
}
