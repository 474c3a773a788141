//! `check`: validates everything a run will touch and prints one line per item, so that a
//! broken part is found before a timer runs into it. Exit 78 when the configuration (or a file
//! it names, or what the mail server says of a setting: no STARTTLS, a failed TLS handshake, a
//! refused login) is wrong, 1 when something else is (the state database, the mail server
//! unreachable or slow).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::config::{BootstrapLocation, Security, Settings, SourceKind, TransportConfig};
use crate::enrich::AsnDb;
use crate::error::{EXIT_CONFIG, EXIT_ERROR, EXIT_OK, one_line};
use crate::provider::Provider;
use crate::render::{Report, Templates};
use crate::send::{SendError, Smtp, runnable};
use crate::state::State;

/// A database older than this is worth a warning: AS assignments move.
pub const ASN_DB_MAX_AGE_DAYS: i64 = 60;

#[derive(Default)]
struct Tally {
    config_errors: usize,
    other_errors: usize,
    /// `-q`: only the lines that fail the check.
    quiet: bool,
}

impl Tally {
    fn ok(&self, item: &str, text: &str) {
        if !self.quiet {
            crate::output::say(format_args!("ok      {item:<10} {text}"));
        }
    }
    fn warn(&self, item: &str, text: &str) {
        if !self.quiet {
            crate::output::say(format_args!("warning {item:<10} {text}"));
        }
    }
    /// A warning that fails the check: what it names loses data if left as it is.
    fn failing_warning(&mut self, item: &str, text: &str) {
        crate::output::say(format_args!("warning {item:<10} {text}"));
        self.other_errors += 1;
    }
    fn config(&mut self, item: &str, text: &str) {
        crate::output::say(format_args!("error   {item:<10} {text}"));
        self.config_errors += 1;
    }
    fn other(&mut self, item: &str, text: &str) {
        crate::output::say(format_args!("error   {item:<10} {text}"));
        self.other_errors += 1;
    }
}

/// One file under two names (a link, a second source, globs that overlap): a run reads it
/// once, under the name that has a cursor for it (`read_before`; or the first configured),
/// and says so; prefixes only another name has are not read, which loses their lines.
/// `check` says it as the run does, and fails on such a loss. `files` are the files the
/// sources read, in their order, each with its source's prefixes.
fn one_file_under_two_names(
    t: &mut Tally,
    files: &[(std::path::PathBuf, &[String])],
    read_before: impl Fn(&std::path::Path) -> bool,
) {
    use std::os::unix::fs::MetadataExt;
    // Each file's names (device and inode), in the order the sources give them.
    type Named<'f, 's> = Vec<&'f (std::path::PathBuf, &'s [String])>;
    let mut names: HashMap<(u64, u64), Named<'_, '_>> = HashMap::new();
    let mut order = Vec::new();
    for named in files {
        let Ok(meta) = std::fs::metadata(&named.0) else {
            continue;
        };
        let all = names.entry((meta.dev(), meta.ino())).or_default();
        if all.is_empty() {
            order.push((meta.dev(), meta.ino()));
        }
        if !all.iter().any(|(f, _)| *f == named.0) {
            all.push(named);
        }
    }
    for key in order {
        let named = &names[&key];
        if named.len() < 2 {
            continue;
        }
        let reader = named.iter().position(|(f, _)| read_before(f)).unwrap_or(0);
        let (name, read_for) = named[reader];
        for (k, (file, prefixes)) in named.iter().map(|n| (&n.0, n.1)).enumerate() {
            if k == reader {
                continue;
            }
            let left: Vec<&String> = (prefixes.iter())
                .filter(|p| !read_for.contains(p))
                .collect();
            let (file, name) = (file.display(), name.display());
            match left.is_empty() {
                true => t.warn(
                    "source",
                    &format!("{file} is the file {name} names: a run reads it once, as {name}"),
                ),
                false => t.failing_warning(
                    "source",
                    &format!(
                        "{file} is the file {name} names: a run reads it once, as {name}, so lines with {left:?} are not counted; give those prefixes to {name}'s source"
                    ),
                ),
            }
        }
    }
}

/// How many of the journal's last kernel messages `check` judges a journald source's
/// prefixes by.
const JOURNAL_SAMPLE: usize = 4096;

/// A journald source whose journalctl runs: its prefixes judged by the journal's last kernel
/// messages, as a file's are by its end (a wrong prefix went unsaid, and a first read of
/// the history moved the cursor on past what it missed).
fn journal_prefixes(
    t: &mut Tally,
    source: &crate::config::SourceConfig,
    settings: &Settings,
    now: DateTime<Utc>,
) {
    let lines = match crate::journal::last_lines(JOURNAL_SAMPLE) {
        Ok(lines) => lines,
        Err(e) => return t.other("source", &format!("journald: {}", one_line(&e))),
    };
    let sample = matches_in(&lines, &source.prefixes, settings, now);
    if sample.lines == 0 {
        t.ok(
            "source",
            "journald: journalctl runs; no kernel message so far",
        );
    } else if sample.carried == 0 {
        t.failing_warning(
            "source",
            &format!(
                "journald: none of the last {} kernel messages carries {}: check `prefixes` against them (`journalctl -k`; a run would read them and report nothing)",
                sample.lines,
                quoted(&source.prefixes)
            ),
        );
    } else {
        t.ok(
            "source",
            &format!(
                "journald: {} of the last {} kernel messages carry {}, {} of them packets",
                sample.carried,
                sample.lines,
                source.prefixes.join(" or "),
                sample.packets
            ),
        );
    }
}

/// For a source of one file whose lines carry no prefix, its newest rotated file and what
/// a sample of it holds, when some of its lines are packets: a log just rotated holds a line
/// or two of other programs' (rsyslog's restart) until the next packet is logged.
fn carried_before_rotation(
    path: &std::path::Path,
    prefixes: &[String],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<(std::path::PathBuf, Sample)> {
    let rotated = crate::source::newest_rotated(path)?;
    let sample = recent_matches(&rotated, SAMPLE_BYTES, prefixes, settings, now).ok()?;
    (sample.packets > 0).then_some((rotated, sample))
}

/// How many bytes of a source `check` reads: enough lines to judge the prefixes, never a
/// whole log (or an endless device).
const SAMPLE_BYTES: u64 = 1 << 20;

/// How many bytes of a glob's files `check` reads in all, a log host's thousands of files
/// shared out, each at least [`SAMPLE_AT_LEAST`].
const SAMPLES_BYTES: u64 = 16 << 20;
const SAMPLE_AT_LEAST: u64 = 16 << 10;

/// What a sample of a source's lines (the last MiB; a compressed file's first) holds.
#[derive(Default, Clone)]
struct Sample {
    /// Lines carrying one of the prefixes.
    carried: usize,
    /// Of those, the lines a run reads as packets.
    packets: usize,
    /// Lines in the sample.
    lines: usize,
    /// The first line carrying a prefix that is no packet, cleaned and cut, and why.
    unread: Option<(String, &'static str)>,
}

/// How many of a sample of the source's lines carry one of the prefixes, and how many of
/// those read as packets, of how many.
fn recent_matches(
    path: &std::path::Path,
    bytes: u64,
    prefixes: &[String],
    settings: &Settings,
    now: DateTime<Utc>,
) -> std::io::Result<Sample> {
    Ok(matches_in(
        &crate::source::sample(path, bytes)?,
        prefixes,
        settings,
        now,
    ))
}

/// [`recent_matches`] of lines read already.
fn matches_in(
    sample: &[u8],
    prefixes: &[String],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Sample {
    // Lines end at a newline or a crash's NUL bytes, as the reader has it.
    let lines: Vec<&[u8]> = sample
        .split(|b| *b == b'\n' || *b == 0)
        .filter(|l| !l.is_empty())
        .collect();
    let finders: Vec<_> = prefixes
        .iter()
        .map(|p| memchr::memmem::Finder::new(p.as_bytes()))
        .collect();
    let carrying: Vec<&[u8]> = (lines.iter().copied())
        .filter(|l| finders.iter().any(|f| f.find(l).is_some()))
        .collect();
    let mut parser = crate::parse::LineParser::new(prefixes, settings.zone, now);
    let mut packets = 0;
    let mut unread = None;
    for line in &carrying {
        let why = match parser.parse(line) {
            crate::parse::Line::Packet(_) => {
                packets += 1;
                continue;
            }
            crate::parse::Line::Malformed(why) => why,
            crate::parse::Line::Other => "the prefix is not in a kernel message",
        };
        // As logged, spaces too (`Jan  1`), but for what a terminal would act on.
        unread.get_or_insert_with(|| (crate::excerpt::cut(crate::excerpt::clean(line), 160), why));
    }
    Sample {
        carried: carrying.len(),
        packets,
        lines: lines.len(),
        unread,
    }
}

fn quoted(prefixes: &[String]) -> String {
    prefixes
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Checks the configuration and everything it names, one section after the other, and says
/// so line by line; the exit status is the worst verdict (78 for a setting to fix).
pub fn check(settings: &Settings, now: DateTime<Utc>, smtp: bool, quiet: bool) -> Result<u8> {
    let mut t = Tally {
        quiet,
        ..Tally::default()
    };
    t.ok(
        "config",
        &format!(
            "{} ({} sources, {} providers, time zone {})",
            settings.file.display(),
            settings.sources.len(),
            settings.providers.len(),
            settings.zone.name()
        ),
    );
    // A run reads it before any log: a value it refuses stops every run.
    if let Err(e) = crate::spool::Spool::budget_from_env() {
        t.config("config", &one_line(&e));
    }
    // A journald source's run reads it too.
    let journald = (settings.sources.iter()).any(|s| matches!(s.kind, SourceKind::Journald));
    if journald && let Err(e) = crate::journal::stall() {
        t.config("config", &one_line(&e));
    }
    // Every run waits (75, which the shipped unit counts as success) until it is set.
    if let Some(why) = crate::clock::unset(now) {
        t.other(
            "clock",
            &format!("{why}: every run reads and sends nothing (75) until it is set"),
        );
    }
    check_sources(&mut t, settings, now);
    let providers = check_providers(&mut t, settings);
    let names: Vec<&str> = providers.iter().map(Provider::name).collect();
    check_asn_db(&mut t, settings, now);
    check_templates(&mut t, settings, &names, now);
    check_discover(&mut t, settings);
    check_state(&mut t, settings, &providers);
    check_mail(&mut t, settings, smtp);
    Ok(if t.config_errors > 0 {
        EXIT_CONFIG
    } else if t.other_errors > 0 {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// Each source: journalctl runs, or the file exists and its last lines carry a prefix.
fn check_sources(t: &mut Tally, settings: &Settings, now: DateTime<Utc>) {
    let mut folders = crate::source::Folders::default();
    // Whether a run read a file before (a first read stops on what a later one passes over).
    let state = State::open_read_only(&settings.state_dir).ok().flatten();
    let read_before = |file: &std::path::Path| {
        (state.as_ref()).is_some_and(|s| s.cursor(&file.to_string_lossy()).ok().flatten().is_some())
    };
    // Run as root, the logs are judged as the shipped unit's user would find them.
    let unit_reads = UnitUser::when_root();
    for s in &settings.sources {
        let path = match &s.kind {
            SourceKind::File(path) => path,
            SourceKind::Journald => {
                match std::process::Command::new("journalctl")
                    .arg("--version")
                    .output()
                {
                    Ok(out) if out.status.success() => match crate::journal::probe() {
                        Ok((_, said)) if crate::journal::denied(&said) => {
                            t.config(
                                "source",
                                &format!("journald: the system journal's kernel messages cannot be read (journalctl: {said}); add the user to the systemd-journal or adm group"),
                            )
                        }
                        Ok((true, _)) => journal_prefixes(t, s, settings, now),
                        // A run would fail the same way.
                        Ok((false, said)) => t.other(
                            "source",
                            &format!("journald: journalctl -k -n 0 failed: {said}"),
                        ),
                        Err(why) => t.other("source", &format!("journald: {why}")),
                    },
                    _ => t.config("source", "journald: cannot run journalctl"),
                }
                continue;
            }
        };
        let shown = path.display();
        let files = match crate::source::expand(path) {
            Ok(files) if files.is_empty() => Err("no file matches".to_string()),
            Ok(files) => Ok(files),
            Err(e) => Err(one_line(&e)),
        };
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                t.config("source", &format!("{shown}: {e}"));
                continue;
            }
        };
        // A run opens every match, and stops at one it cannot open.
        // A match of a pattern is named; the path itself is named once.
        let named = |file: &std::path::Path, e: &dyn std::fmt::Display| match file == path {
            true => e.to_string(),
            false => format!("{}: {e}", file.display()),
        };
        // A file missing stops a run as one it cannot open does (and is said once: neither
        // who may read it nor its being empty is told of a file that is not there).
        let unopened = (files.iter()).find_map(|file| match crate::source::OpenFile::open(file) {
            Ok(Some(_)) => None,
            Ok(None) => Some(named(file, &"no such file")),
            Err(e) => Some(named(file, &e)),
        });
        if let Some(e) = unopened {
            t.config("source", &format!("{shown}: {e}"));
            continue;
        }
        // A glob's files, or the one file a path names.
        let glob = files != [path.as_path()];
        // A file of a glob that runs read, something else now: runs pass it over, its lines
        // not read, and say so.
        if let Some(state) = state.as_ref().filter(|_| glob)
            && let Ok(pattern) = glob::Pattern::new(&path.to_string_lossy())
        {
            for known in state.cursor_sources().unwrap_or_default() {
                let known = std::path::PathBuf::from(known);
                if pattern.matches_path(&known)
                    && let Some(why) = crate::source::no_file_now(&known)
                {
                    t.failing_warning(
                        "source",
                        &format!(
                            "{}: {why}: runs pass it over, and its lines are not read until it is a file again",
                            known.display()
                        ),
                    );
                }
            }
        }
        // `check` run as root reads what the service's own user may not: a file only root
        // may read passes here and fails every run of the shipped unit.
        if let Some(file) = files
            .iter()
            .find(|f| unit_reads.is_some_and(|r| !r.may_read(f)))
        {
            t.warn(
                "source",
                &format!(
                    "{}: the shipped unit's user (a dynamic user in the adm group) may not read it, and check runs as root: make it readable by adm (root:adm, mode 0640, its folders open to adm, or an access list)",
                    file.display()
                ),
            );
        }
        // What keeps a run from a file's rotated history stops it (a folder it may not
        // list: every run; a rotated file it may not open: the first read, and a later one
        // when the file may hold lines no run read, while one read to its end is passed over).
        // A rotation compressed otherwise than with gzip is said of the first file of a
        // source that has one: a run passes such files over, and the lines in them it had not
        // read are lost (each rotation's last ones, without `delaycompress`).
        let mut compressed = None;
        for file in &files {
            let cursor =
                (state.as_ref()).and_then(|s| s.cursor(&file.to_string_lossy()).ok().flatten());
            let (unreadable, other) =
                crate::source::history_unreadable(file, &mut folders, cursor.as_ref());
            match unreadable {
                Some((problem, true)) => t.warn(
                    "source",
                    &format!("{problem}; runs pass it over: it holds no line they have not read"),
                ),
                Some((problem, _)) => t.other("source", &problem),
                None => {}
            }
            compressed = compressed.or(other);
        }
        if let Some(problem) = compressed {
            t.warn("source", &problem);
        }
        // Every file a run reads, a log host's thousands included: one host's lines in a
        // layout the run does not read are as lost as a lone file's.
        let each = match files.len() {
            0..=16 => SAMPLE_BYTES,
            n => (SAMPLES_BYTES / n as u64).max(SAMPLE_AT_LEAST),
        };
        let mut sum = Sample::default();
        let mut unread: Vec<(&std::path::Path, Sample)> = Vec::new();
        for file in &files {
            match recent_matches(file, each, &s.prefixes, settings, now) {
                Ok(sample) => {
                    sum.carried += sample.carried;
                    sum.packets += sample.packets;
                    sum.lines += sample.lines;
                    if sum.unread.is_none() {
                        sum.unread = sample.unread.clone();
                    }
                    if sample.carried > 0 && sample.packets == 0 {
                        unread.push((file, sample));
                    }
                }
                Err(e) => t.config("source", &format!("{shown}: {}", named(file, &e))),
            }
        }
        let within = match files.len() {
            1 => String::new(),
            n => format!(" (in the ends of its {n} files)"),
        };
        if let Some((first, sample)) = unread.first() {
            // The prefix is there, the layout is not one read (busybox's `kern.warn
            // kernel:`, RFC 5424, a stamp with a fraction after the seconds): a run would
            // count these lines as malformed or pass them over.
            let more = match unread.len() {
                1 => String::new(),
                n => format!(" (and {} more of its files)", n - 1),
            };
            t.failing_warning(
                "source",
                &format!(
                    "{}{more}: {} of the last {} lines carry {}, but none reads as a packet (`HOST kernel: PREFIX IN=... SRC=...` after a BSD or RFC 3339 time): a run would report nothing from them; see README \"How a run works\" for the layouts read",
                    first.display(),
                    sample.carried,
                    sample.lines,
                    quoted(&s.prefixes)
                ),
            );
        } else if sum.lines == 0 {
            t.ok("source", &format!("{shown}: empty so far"));
        } else if let Some((rotated, sample)) = (sum.carried == 0 && !glob)
            .then(|| carried_before_rotation(path, &s.prefixes, settings, now))
            .flatten()
        {
            // Just rotated: the new file holds a line or two of other programs' so far.
            t.ok(
                "source",
                &format!(
                    "{shown}: none of its {} lines so far carries {}; its rotated file {} has {} of {} lines looked at that do, {} of them packets",
                    sum.lines,
                    s.prefixes.join(" or "),
                    rotated.display(),
                    sample.carried,
                    sample.lines,
                    sample.packets
                ),
            );
        } else if sum.carried == 0 {
            // A run would read these lines, match nothing and move on: the history would
            // never be reported once the prefix is fixed.
            t.failing_warning(
                "source",
                &format!(
                    "{shown}: none of the last {} lines{within} carries {}: check `prefixes` against the log (a run would read it and report nothing)",
                    sum.lines,
                    quoted(&s.prefixes)
                ),
            );
        } else {
            t.ok(
                "source",
                &format!(
                    "{shown}: {} of the last {} lines{within} carry {}, {} of them packets",
                    sum.carried,
                    sum.lines,
                    s.prefixes.join(" or "),
                    sum.packets
                ),
            );
            // The others are counted as malformed by a run, which says how many, not which.
            if let Some((line, why)) = &sum.unread {
                t.warn(
                    "source",
                    &format!(
                        "{shown}: {} of those lines {} no packet (a run counts them as malformed); the first, {why}: {line}",
                        sum.carried - sum.packets,
                        if sum.carried - sum.packets == 1 { "is" } else { "are" }
                    ),
                );
            }
        }
    }
    let mut files: Vec<(std::path::PathBuf, &[String])> = Vec::new();
    for s in &settings.sources {
        if let SourceKind::File(path) = &s.kind {
            let matches = crate::source::expand(path).unwrap_or_default();
            // A match that is another's rotated history is read as that history.
            let names: std::collections::HashSet<_> = matches.iter().cloned().collect();
            files.extend(
                (matches.iter())
                    .filter(|f| !crate::source::is_rotated_sibling_of_any(f, &names))
                    .map(|f| (f.clone(), s.prefixes.as_slice())),
            );
        }
    }
    one_file_under_two_names(t, &files, read_before);
    // The end of each file, a few hundred lines: a log host's glob matches thousands.
    if let Some(shared) = crate::overlap::shared_packets(&files, 64 << 10) {
        t.warn("source", &shared.to_string());
    }
    // And the journal's last kernel messages beside them (journalctl's failures are said
    // above).
    let journald = (settings.sources.iter()).find(|s| matches!(s.kind, SourceKind::Journald));
    if let Some(journald) = journald.filter(|_| !files.is_empty()) {
        let mut heard = crate::overlap::Heard::new(&journald.prefixes);
        if crate::journal::hear_last(&mut heard).is_ok()
            && let Some(shared) = heard.copied_in(&files, 64 << 10)
        {
            t.warn("source", &shared.to_string());
        }
    }
}

/// Each provider's range file loads; returns those that do.
fn check_providers(t: &mut Tally, settings: &Settings) -> Vec<Provider> {
    let mut loaded = Vec::new();
    for p in &settings.providers {
        match Provider::load(p) {
            Ok(provider) => {
                let what = match &p.ranges {
                    Some(file) => format!(
                        "{} ({} format, {} prefixes)",
                        file.display(),
                        provider.format.name(),
                        provider.ranges.len()
                    ),
                    // A provider known by its AS numbers alone has no file to tell of.
                    None => format!("no range file; the addresses {} announce", as_list(&p.asns)),
                };
                t.ok("ranges", &format!("{}: {what}", p.name));
                for name in &provider.unmatched_exclusions {
                    t.warn(
                        "ranges",
                        &format!(
                            "{}: exclude_regions: {name:?} is no region of its range file, and excludes nothing",
                            p.name
                        ),
                    );
                }
                loaded.push(provider);
            }
            Err(e) => t.config("ranges", &one_line(&e)),
        }
    }
    // Each provider reports what its ranges hold: an address in two providers' ranges (a
    // list of one's own that holds a cloud's, a range file given twice) goes to both desks.
    for (k, a) in loaded.iter().enumerate() {
        for b in &loaded[k + 1..] {
            if let Some(ip) = a.ranges.first_shared(&b.ranges) {
                t.warn(
                    "ranges",
                    &format!(
                        "{} and {} share addresses ({ip} is in both): an attacker there is reported to both desks",
                        a.name(),
                        b.name()
                    ),
                );
            }
        }
    }
    loaded
}

/// `AS 16509`, `ASes 16509 and 14618`, `ASes 1, 2 and 3`.
fn as_list(asns: &[u32]) -> String {
    let each: Vec<String> = asns.iter().map(u32::to_string).collect();
    match each.as_slice() {
        [one] => format!("AS {one}"),
        [rest @ .., last] => format!("ASes {} and {last}", rest.join(", ")),
        [] => "no AS".to_string(),
    }
}

/// The ASN database opens and is recent enough.
fn check_asn_db(t: &mut Tally, settings: &Settings, now: DateTime<Utc>) {
    match &settings.asn_db {
        None => t.ok("asn_db", "not configured: reports carry no AS numbers"),
        Some(path) => match AsnDb::open(path) {
            Ok(db) => {
                // Stricter than the format: a file that fails it may still answer, and a
                // run stops only on a lookup that fails.
                if let Err(e) = db.verify() {
                    t.warn(
                        "asn_db",
                        &format!(
                            "{}: {e}; a run stops (78) on a lookup that meets the damage",
                            path.display()
                        ),
                    );
                }
                let built = db
                    .built
                    .map(|b| b.format("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                let age = db.age_days(now).unwrap_or(0);
                // A clock pinned before the build (`ABUSE_MAILER_NOW`) is no negative age.
                let when = match age {
                    ..0 => "after the clock's time".to_string(),
                    _ => format!("{age} days ago"),
                };
                let text = format!(
                    "{}: {} built {built} ({when})",
                    path.display(),
                    db.database_type
                );
                if age > ASN_DB_MAX_AGE_DAYS {
                    t.warn(
                        "asn_db",
                        &format!("{text}: older than {ASN_DB_MAX_AGE_DAYS} days, update it"),
                    );
                } else {
                    t.ok("asn_db", &text);
                }
            }
            Err(e) => t.config("asn_db", &one_line(&e)),
        },
    }
}

/// The templates load and render a sample report.
fn check_templates(t: &mut Tally, settings: &Settings, names: &[&str], now: DateTime<Utc>) {
    match Templates::load(settings.report.templates_dir.as_deref(), names) {
        Ok(templates) => {
            // Each provider's, as its reports render them (its own templates where
            // `templates_dir/<provider>/` has them), and the shared ones, which discovered
            // desks get.
            let desks = (names.iter().map(|n| (*n, false))).chain([("sample", true)]);
            let mut errors: Vec<String> = Vec::new();
            for (desk, discovered) in desks {
                for whole in [true, false] {
                    let mut sample = sample_report(desk, discovered, whole, settings, now);
                    if let Err(e) = templates.render(&mut sample) {
                        let e = one_line(&e);
                        if !errors.contains(&e) {
                            errors.push(e);
                        }
                    }
                }
            }
            for e in &errors {
                t.config("templates", e);
            }
            if errors.is_empty() {
                t.ok("templates", "render with sample data");
            }
            if let Some(warning) = &templates.unused {
                t.warn("templates", warning);
            }
            // `redact` replaces its default: `["DST"]` for "hide my addresses too" shows
            // the MAC, which the default hid.
            if !settings.report.redact.contains(&crate::config::Redact::Mac) {
                t.warn(
                    "templates",
                    "report.redact leaves out \"MAC\": your own MAC address is shown in every report (redact = [\"MAC\", \"DST\"] hides both)",
                );
            }
        }
        Err(e) => t.config("templates", &one_line(&e)),
    }
}

/// A report such as runs make for `desk` (a `discovered` one's digest, or a provider's), to
/// render the templates with: every branch a real report can take is taken by one of the two
/// kinds. A `whole` one is the only part, of two addresses: one with everything a record can
/// hold (a range with its words, an AS, ports, a re-report), one seen over ICMP alone with
/// nothing known of it. The other is part 2 of 3, of the bare address, with addresses left
/// for later and a desk known only by its address.
fn sample_report(
    desk: &str,
    discovered: bool,
    whole: bool,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Report {
    use crate::enrich::{AsnInfo, Attacker, Reported};
    use crate::ingest::{Name, Observation};
    let time = now.timestamp() - 3600;
    let (full_ip, bare_ip): (std::net::IpAddr, std::net::IpAddr) = (
        std::net::Ipv4Addr::new(192, 0, 2, 10).into(),
        std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20).into(),
    );
    let mut full = Observation::new(full_ip, time);
    full.last_seen = time + 60;
    full.hits = 12;
    full.protocols.insert(Name::from("TCP"));
    full.dst_ports.extend([22, 443]);
    full.src_ports.insert(51234);
    full.dsts
        .insert(std::net::Ipv4Addr::new(198, 51, 100, 1).into());
    full.hosts.insert(Name::from("web1"));
    let mut bare = Observation::new(bare_ip, time);
    bare.hits = 1;
    bare.protocols.insert(Name::from("ICMPv6"));
    let bare = Attacker {
        observation: bare,
        range: None,
        asn: None,
        before: None,
    };
    let range = crate::provider::RangeInfo {
        prefix: "192.0.2.0/24".parse().expect("a prefix"),
        region: Some("eu-west-1".into()),
        services: vec!["EC2".into()],
        network_border_group: Some("eu-west-1".into()),
    };
    let attackers = match whole {
        true => vec![
            Attacker {
                observation: full,
                range: Some(range),
                asn: Some(AsnInfo {
                    asn: 64496,
                    org: Some("Example AS".into()),
                }),
                before: Some(Reported {
                    at: Some(time - 86_400 * 30),
                    hits: 3,
                    first_seen: time,
                    last_seen: time,
                }),
            },
            bare,
        ],
        false => vec![bare],
    };
    let line = |ip: std::net::IpAddr, at: i64| crate::excerpt::EvidenceLine {
        time: at,
        ip,
        text: format!(
            "Jan  1 00:00:00 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=198.51.100.1 LEN=60 PROTO=TCP SPT=51234 DPT=22"
        ),
    };
    let pool: Vec<_> = (attackers.iter())
        .map(|a| line(a.observation.ip, a.observation.first_seen))
        .collect();
    let window = crate::excerpt::Window {
        start: time,
        count: pool.len() as u64,
        lines: pool.clone(),
    };
    let to: Vec<lettre::message::Mailbox> = match discovered {
        true => "abuse@hoster.example".parse().into_iter().collect(),
        false => (settings.providers.iter())
            .find(|p| p.name == desk)
            .map(|p| p.to.clone())
            .unwrap_or_default(),
    };
    let contact = discovered.then(|| crate::render::Desk {
        address: "abuse@hoster.example".into(),
        source: "rdap".into(),
        network: whole.then(|| "192.0.2.0/24".into()),
        handle: whole.then(|| "NET-EXAMPLE".into()),
        origin: "https://rdap.example/ip/192.0.2.10".into(),
        abusix_also: whole.then(|| crate::render::AbusixAlso {
            addresses: 1,
            origin: "20.0.db8.2.0.0.1.0.0.2.abuse-contacts.abusix.zone".into(),
        }),
    });
    let (part, parts, later) = match whole {
        true => (1, 1, 0),
        false => (2, 3, 5),
    };
    let mut report = Report::new(
        desk,
        &to,
        &attackers,
        Some(&window),
        &settings.report,
        settings.zone,
        now,
    )
    .part(part, parts)
    .later(later)
    .for_desk(contact)
    .with_evidence(&pool, &settings.report, usize::MAX);
    report.name_attachments(&settings.report);
    report.excerpt_window_at_least = !whole;
    report
}

/// The sample report a provider `aws` of a minimal configuration gets ([`sample_report`], the
/// whole one), for unit tests of what is done with a report.
#[cfg(test)]
pub(crate) fn sample_aws_report() -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = "state_dir = \"state\"\n[[source]]\npath = \"messages\"\n\
        [[provider]]\nname = \"aws\"\nto = [\"ec2-abuse@amazon.com\"]\nranges = \"ranges.json\"\n\
        [report]\nfrom = \"abuse@example.org\"\n[mail]\ntransport = \"file\"\ndir = \"outbox\"\n";
    std::fs::write(&path, config).unwrap();
    let settings = crate::config::load(&path).unwrap();
    sample_report("aws", false, true, &settings, chrono::Utc::now())
}

/// The state opens and belongs to this configuration.
fn check_state(t: &mut Tally, settings: &Settings, providers: &[Provider]) {
    // A file there, or a link to nothing: a run refuses it (78).
    if let Some(e) = crate::folder::never_a_folder(&settings.state_dir) {
        t.config("state", &format!("state_dir {e}"));
        return;
    }
    // A run writes there, first of all to make the state or to take its lock: a folder this
    // user cannot write in (or make) fails every run.
    if let Err(e) = crate::folder::writable(&settings.state_dir) {
        t.other("state", &format!("state_dir {e}"));
        return;
    }
    if let Some(e) = crate::lock::unusable(&settings.state_dir) {
        t.other("state", &e);
    }
    match State::open_read_only(&settings.state_dir) {
        Ok(Some(state)) => match crate::ledger::check_owner(&state, settings) {
            // Another configuration runs on this state: a run would refuse it (78).
            Err(e) => t.config("state", &one_line(&e)),
            Ok(()) => {
                let renames =
                    crate::ledger::renames(&state, settings, providers).unwrap_or_default();
                for renamed in &renames.refused {
                    t.config("state", renamed);
                }
                for taking_over in &renames.taking_over {
                    t.warn("state", taking_over);
                }
                // A damaged page a run would not notice (an index that lost rows: the
                // ledger's answers "never reported" would report addresses again).
                match state.damage() {
                    Ok(None) => {}
                    Ok(Some(damage)) => {
                        t.other(
                            "state",
                            &format!(
                                "{}: damaged ({damage}): a run may report addresses again or fail; restore it from a backup, or move it away with reports.mark to start afresh",
                                settings.state_db().display()
                            ),
                        );
                        return;
                    }
                    Err(e) => {
                        t.other("state", &one_line(&e));
                        return;
                    }
                }
                // An older copy of the state put back: a run refuses it (78).
                if let Err(e) = crate::ledger::check_not_older(Some(&state), &settings.state_dir) {
                    t.config("state", &one_line(&e));
                    return;
                }
                // Outcomes an earlier run could not record: the next run records them first.
                let note = settings.state_dir.join(crate::ledger::UNRECORDED);
                if note.symlink_metadata().is_ok() {
                    t.warn(
                        "state",
                        &format!(
                            "{}: an earlier run noted outcomes of reports it could not record; the next run records them before it sends anything, or stops until the state can",
                            note.display()
                        ),
                    );
                }
                let pending = state.pending_heads().map(|p| p.len()).unwrap_or(0);
                t.ok(
                    "state",
                    &format!(
                        "{}: {pending} report(s) waiting to be sent again",
                        settings.state_db().display()
                    ),
                );
            }
        },
        Ok(None) => match crate::ledger::check_not_older(None, &settings.state_dir) {
            Err(e) => t.config("state", &one_line(&e)),
            Ok(()) => t.ok(
                "state",
                &format!(
                    "{}: not created yet (the first run creates it)",
                    settings.state_db().display()
                ),
            ),
        },
        Err(e) => t.other("state", &one_line(&e)),
    }
}

/// The shipped unit's user, a dynamic user in the `adm` group, as `check` run as root judges
/// what it may read.
#[derive(Clone, Copy)]
struct UnitUser {
    /// The `adm` group's id.
    adm: Option<u32>,
}

impl UnitUser {
    /// `None` unless this process runs as root (as another user, what it reads is what it may).
    fn when_root() -> Option<Self> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        (unsafe { libc::geteuid() } == 0).then(|| UnitUser { adm: adm_group() })
    }

    /// Whether it may read `file`: as the kernel judges it, by the group's bits where the
    /// file (or a folder on its way) is `adm`'s, and by the others' bits elsewhere. One with
    /// an access list is not judged: its bits do not tell.
    fn may_read(self, file: &std::path::Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let may = |path: &std::path::Path, other: u32, group: u32| {
            has_access_list(path)
                || std::fs::metadata(path).is_ok_and(|m| match Some(m.gid()) == self.adm {
                    true => m.mode() & group != 0,
                    false => m.mode() & other != 0,
                })
        };
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        may(&file, 0o004, 0o040)
            && (file.ancestors().skip(1)).all(|folder| may(folder, 0o001, 0o010))
    }
}

/// Whether `path` carries a POSIX access list (`setfacl -m g:adm:r`).
fn has_access_list(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and live across the call; a size of 0 asks
    // only whether the attribute is there, and nothing is written.
    let size = unsafe {
        libc::getxattr(
            name.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size >= 0
}

/// The `adm` group's id, from `/etc/group`.
fn adm_group() -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some("adm"))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The mail transport: described, and with `smtp` contacted (EHLO, STARTTLS, AUTH).
fn check_mail(t: &mut Tally, settings: &Settings, smtp: bool) {
    match &settings.mail.transport {
        TransportConfig::Smtp(c) => {
            let security = match c.security {
                Security::None => "no TLS",
                Security::StartTls => "STARTTLS",
                Security::Tls => "implicit TLS",
            };
            let auth = c
                .username
                .as_deref()
                .map(|u| format!(", AUTH as {u}"))
                .unwrap_or_default();
            let text = format!("smtp {}:{} ({security}{auth})", c.host, c.port);
            if smtp {
                let started = Instant::now();
                let probed = Smtp::new(c)
                    .map_err(|e| SendError::Config(one_line(&e)))
                    .and_then(|s| s.probe());
                match probed {
                    Ok(()) => t.ok(
                        "mail",
                        &format!(
                            "{text}: connected, EHLO{}{} ok in {} ms",
                            if c.security == Security::StartTls {
                                ", STARTTLS"
                            } else {
                                ""
                            },
                            if auth.is_empty() { "" } else { ", AUTH" },
                            started.elapsed().as_millis()
                        ),
                    ),
                    // A setting to fix is a configuration error: 78, as a run would exit.
                    Err(SendError::Config(e)) => t.config("mail", &format!("{text}: {e}")),
                    Err(
                        SendError::Transient(e)
                        | SendError::Deferred(e)
                        | SendError::Rejected(e)
                        | SendError::RecipientRefused { text: e, .. }
                        | SendError::Unconfirmed(e)
                        | SendError::Unclear(e),
                    ) => t.other("mail", &format!("{text}: {e}")),
                }
            } else {
                // Set up as a run would (its `ca_file` read), without a connection.
                match Smtp::new(c) {
                    Ok(_) => t.ok("mail", &format!("{text} (not contacted; add --smtp)")),
                    Err(e) => t.config("mail", &format!("{text}: {}", one_line(&e))),
                }
            }
        }
        TransportConfig::Sendmail { path, .. } => match runnable(path) {
            // The message is handed over as a file in the temporary folder.
            Ok(()) => match crate::spool::unnamed_file(&std::env::temp_dir()) {
                Ok(_) => t.ok("mail", &format!("sendmail {}", path.display())),
                Err(e) => t.config(
                    "mail",
                    &format!(
                        "sendmail {}: the temporary folder {} (TMPDIR) cannot hold a message: {e}",
                        path.display(),
                        std::env::temp_dir().display()
                    ),
                ),
            },
            Err(e) => t.config("mail", &format!("mail.sendmail_path {e}")),
        },
        // Written by the run's user, as the state is: a folder it may not write in fails every
        // run (78), the reports waiting.
        TransportConfig::File { dir } => {
            match crate::folder::placeable(dir).and_then(|()| crate::folder::writable(dir)) {
                Ok(()) => t.ok("mail", &format!("file: .eml files into {}", dir.display())),
                Err(e) => t.config("mail", &format!("mail.dir {e}")),
            }
        }
    }
}

/// Contact discovery: off, or where it looks (a bootstrap folder must hold both files; the
/// network is not contacted).
fn check_discover(t: &mut Tally, settings: &Settings) {
    let Some(d) = &settings.discover else {
        t.ok(
            "discover",
            "off: addresses in no provider are counted, not reported",
        );
        return;
    };
    let boot = match &d.rdap_bootstrap {
        BootstrapLocation::Url(url) => url.clone(),
        BootstrapLocation::Folder(dir) => {
            for problem in crate::discover::bootstrap_folder_problems(d) {
                t.config("discover", &problem);
            }
            dir.display().to_string()
        }
    };
    let abusix = match (d.abusix, &d.dns_server) {
        (false, _) => "no Abusix".to_string(),
        (true, Some(server)) => format!("then Abusix through {server}"),
        (true, None) => "then Abusix through the system's resolver".to_string(),
    };
    t.ok(
        "discover",
        &format!(
            "RDAP from {boot}, {abusix}; answers kept {} days, at most {} lookups a run (not contacted)",
            d.cache_days, d.max_lookups_per_run
        ),
    );
}
