//! The commands, and the only place that knows the order of the stages: ingest the sources,
//! store what was read, select each provider's delta, enrich, cut the excerpt, render, then
//! record and send under the ledger's rules.
//!
//! Ledger rules: a report row, its IPs and the exact message are written with status `sending`
//! before a transport sees them, and marked `sent` only after the transport accepted. No
//! transport is called before the run holds what recording its answer needs (the state's write
//! lock and space on its disk), so a report cannot go out on every run of a state that cannot
//! be written. One configuration file runs on a state: each source's cursor is its own. Reports
//! left `sending` (a crash) or `failed` (a transient error) are sent again, as stored, before
//! anything new. A rejected report gives its IPs back to the next one. An IP is in at most one
//! report per provider that is not rejected.
//!
//! A run that ends with nothing left to report leaves a [`Settled`] marker; while it stands
//! and the selection settings are the same, a run looks only at the IPs it read and those the
//! ledger moved, not at every IP ever seen, so a run with nothing new costs the same whatever
//! the history.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::{Cli, Command, ReportArgs};
use crate::clock::{self, utc_text};
use crate::config::{self, Settings, SourceKind};
use crate::enrich::{AsnDb, Attacker, enrich};
use crate::error::{ConfigError, EXIT_ERROR, EXIT_OK, TransientError, exit_code, one_line};
use crate::excerpt::{self, EvidenceLine, Window, densest};
use crate::ingest::{Attribution, Ingest, Observation, Observations, Summary};
use crate::journal;
use crate::parse::LineParser;
use crate::provider::Provider;
use crate::render::{Envelope, Report, ReportIp, Templates, fnv1a, message};
use crate::select::{delta, is_ignored, is_reportable};
use crate::send::{SendError, Transport, transport};
use crate::source;
use crate::state::{HistoryFilter, ReportRecord, ReportedIp, Settled, State, Status, StoredCursor};

/// Runs the command line and returns the exit status; errors are printed as one line.
pub fn main(cli: Cli) -> u8 {
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("abuse-mailer: {}", one_line(&e));
            exit_code(&e)
        }
    }
}

/// How much a command says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

fn dispatch(cli: &Cli) -> Result<u8> {
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let path = config::locate(cli.config.as_deref());
    let settings = config::load(&path)?;
    let now = clock::now()?;
    match &cli.command {
        Command::Run { dry_run, what } => run_or_preview(&settings, now, *dry_run, what, verbosity),
        Command::Preview { what } => run_or_preview(&settings, now, true, what, verbosity),
        Command::History {
            ip,
            provider,
            json,
            refresh,
        } => {
            if *refresh {
                crate::aws_api::refresh_command(&settings, provider.as_deref())?;
            }
            history(&settings, *ip, provider.clone(), *json)
        }
        Command::Show { report_id } => show(&settings, report_id),
        Command::Check { smtp, aws } => {
            let local = crate::check::check(&settings, now, *smtp)?;
            let api = crate::aws_api::check(&settings, *aws);
            // The worse verdict: a configuration error (78) over any other (1).
            Ok([local, api]
                .into_iter()
                .max_by_key(|c| (*c == 78, *c))
                .unwrap_or(local))
        }
        Command::Reread { source, since } => crate::reread::reread(
            &settings,
            now,
            source,
            since.map(|d| now - d),
            verbosity != Verbosity::Quiet,
        ),
        Command::Firewall {
            provider,
            format,
            ports,
        } => crate::firewall::print(&settings, provider, *format, ports.as_deref()),
    }
}

fn run_or_preview(
    settings: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
    what: &ReportArgs,
    verbosity: Verbosity,
) -> Result<u8> {
    let options = Options {
        only: what.provider.as_deref(),
        json: what.json,
        since: what.since.map(|d| now - d),
        verbosity,
    };
    if dry_run {
        preview(settings, now, &options)
    } else {
        run(settings, now, &options)
    }
}

/// The files a file source names now: the path itself, or a glob's matches plus files it
/// matched before that are gone for the moment (their rotated rest is still read).
fn files_of(pattern: &Path, state: Option<&State>) -> Result<Vec<PathBuf>> {
    let mut files = source::expand(pattern)?;
    if files.len() == 1 && files[0] == pattern {
        return Ok(files);
    }
    if let (Some(state), Ok(glob)) = (state, glob::Pattern::new(&pattern.to_string_lossy())) {
        for known in state.cursor_sources()? {
            let known = PathBuf::from(known);
            if glob.matches_path(&known) && !files.contains(&known) {
                files.push(known);
            }
        }
    }
    if files.is_empty() {
        return Err(ConfigError(format!("source {}: no file matches", pattern.display())).into());
    }
    files.sort();
    Ok(files)
}

/// What `run` and `preview` were asked for.
struct Options<'a> {
    /// Report to this provider only.
    only: Option<&'a str>,
    json: bool,
    /// Pass over packets logged before this time.
    since: Option<DateTime<Utc>>,
    verbosity: Verbosity,
}

/// A progress bar is for people watching a long read: on a terminal, not asked to be quiet,
/// and with enough to read; under cron or systemd there is none.
pub fn show_progress(stderr_is_terminal: bool, verbosity: Verbosity, bytes: u64) -> bool {
    const WORTH_A_BAR: u64 = 64 << 20;
    stderr_is_terminal && verbosity != Verbosity::Quiet && bytes >= WORTH_A_BAR
}

/// About how many bytes the file sources hold past their cursors.
fn expected_bytes(settings: &Settings, state: Option<&State>) -> u64 {
    let mut total = 0;
    for source in &settings.sources {
        let SourceKind::File(pattern) = &source.kind else {
            continue;
        };
        for path in source::expand(pattern).unwrap_or_default() {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let offset = state
                .and_then(|s| s.cursor(&path.to_string_lossy()).ok().flatten())
                .map_or(0, |c| c.offset);
            total += size.saturating_sub(offset);
        }
    }
    total
}

/// What every run needs loaded before it reads a line.
struct World<'s> {
    settings: &'s Settings,
    providers: Vec<Provider>,
    asn_db: Option<AsnDb>,
    templates: Templates,
    now: DateTime<Utc>,
}

impl<'s> World<'s> {
    fn load(
        settings: &'s Settings,
        now: DateTime<Utc>,
        only: Option<&str>,
        verbosity: Verbosity,
    ) -> Result<Self> {
        if let Some(name) = only
            && settings.provider(name).is_none()
        {
            let known: Vec<&str> = settings.providers.iter().map(|p| p.name.as_str()).collect();
            return Err(ConfigError(format!(
                "no provider {name:?} configured (known: {})",
                known.join(", ")
            ))
            .into());
        }
        let providers = settings
            .providers
            .iter()
            .map(|p| Provider::load(p).map_err(|e| ConfigError(one_line(&e)).into()))
            .collect::<Result<Vec<_>>>()?;
        let asn_db = match &settings.asn_db {
            Some(path) => Some(AsnDb::open(path).map_err(|e| ConfigError(one_line(&e)))?),
            None => None,
        };
        if let Some(age) = asn_db.as_ref().and_then(|db| db.age_days(now))
            && age > crate::check::ASN_DB_MAX_AGE_DAYS
            && verbosity != Verbosity::Quiet
        {
            eprintln!(
                "abuse-mailer: warning: asn_db is {age} days old; AS assignments change, update it"
            );
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
        let templates = Templates::load(settings.report.templates_dir.as_deref(), &names)
            .map_err(|e| ConfigError(one_line(&e)))?;
        Ok(World {
            settings,
            providers,
            asn_db,
            templates,
            now,
        })
    }

    /// The origin AS of `ip`, when an ASN database is configured.
    fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn_db
            .as_ref()
            .and_then(|db| db.lookup(ip))
            .map(|a| a.asn)
    }

    /// The time before which a packet is history (`max_age_days`), if there is a limit.
    fn fresh_since(&self) -> Option<i64> {
        let days = self.settings.report.max_age_days;
        (days > 0).then(|| (self.now - chrono::Duration::days(i64::from(days))).timestamp())
    }

    /// A digest of everything that decides which stored IPs are in a delta: the providers
    /// and their ranges and ASN files (by size and time), and the report settings. A settled
    /// marker counts only under the same digest.
    fn selection_key(&self) -> String {
        use sha2::Digest;
        let settings = self.settings;
        let mut h = sha2::Sha256::new();
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(format!("{:?}", settings.providers));
        h.update(format!("{:?}", settings.report));
        h.update(format!("{:?}", settings.aws_api.as_ref().map(|a| a.test)));
        let files = settings
            .providers
            .iter()
            .filter_map(|p| p.ranges.as_ref())
            .chain(&settings.asn_db);
        for file in files {
            let stamp = std::fs::metadata(file).ok().map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                (m.len(), modified)
            });
            h.update(format!("{file:?} {stamp:?}"));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The time from which a sent report still counts (`rereport_after_days`).
    fn rereport_since(&self) -> Option<DateTime<Utc>> {
        self.settings
            .report
            .rereport_after_days
            .map(|d| self.now - chrono::Duration::days(i64::from(d)))
    }
}

/// What the ledger says each provider must not be sent again.
struct Ledger {
    reported: Vec<HashSet<IpAddr>>,
    ever_sent: Vec<HashSet<IpAddr>>,
    thread_roots: Vec<Option<String>>,
}

impl Ledger {
    /// Nothing reported anywhere: for a run that selects nothing.
    fn none(world: &World<'_>) -> Self {
        let n = world.providers.len();
        Ledger {
            reported: vec![HashSet::new(); n],
            ever_sent: vec![HashSet::new(); n],
            thread_roots: vec![None; n],
        }
    }

    fn read(world: &World<'_>, state: Option<&State>) -> Result<Self> {
        let since = world.rereport_since().map(utc_text);
        let mut ledger = Ledger {
            reported: Vec::new(),
            ever_sent: Vec::new(),
            thread_roots: Vec::new(),
        };
        for p in &world.providers {
            match state {
                Some(s) => {
                    let mut reported = s.reported(p.name(), since.as_deref())?;
                    // Only re-reports need to know who was sent before: without them every
                    // IP ever sent is in `reported` and never selected again.
                    let mut ever_sent = match since {
                        Some(_) => s.ever_sent(p.name())?,
                        None => HashSet::new(),
                    };
                    // An intake that refused a report's content refuses it again: wait for
                    // a re-report instead of sending it every run.
                    if p.config.delivery == config::Delivery::AwsAbuseApi {
                        reported.extend(s.rejected_ips(p.name(), since.as_deref())?);
                        // Test reports were validated, not acted on: with test off, their
                        // addresses are reported for real, as first reports.
                        if !world.settings.aws_api.as_ref().is_some_and(|a| a.test) {
                            for ip in s.test_only_ips(p.name())? {
                                reported.remove(&ip);
                                ever_sent.remove(&ip);
                            }
                        }
                    }
                    ledger.reported.push(reported);
                    ledger.ever_sent.push(ever_sent);
                    ledger.thread_roots.push(s.thread_root(p.name())?);
                }
                None => {
                    ledger.reported.push(HashSet::new());
                    ledger.ever_sent.push(HashSet::new());
                    ledger.thread_roots.push(None);
                }
            }
        }
        Ok(ledger)
    }
}

/// Everything read this run, merged with what was known before.
struct Intake {
    summary: Summary,
    /// Every IP known, or (`partial`) only those a delta can hold this run.
    observations: Observations,
    /// Selection looks at the IPs read and those the ledger moved, under a settled marker.
    partial: bool,
    /// IPs the ledger moved since the marker (resends, re-report windows): this run may
    /// report them, so the marker does not hold past it.
    moved: bool,
    /// The marker as stored, and the digest a new one is written with.
    stored_marker: Option<Settled>,
    selection_key: String,
    /// IPs whose totals changed this run (to store); the only entries of `observations`
    /// that are whole, the others being heads (see [`Intake::whole`]).
    touched: Vec<IpAddr>,
    cursors: Vec<(String, StoredCursor)>,
    /// Per file source and prefix, the last packet time counted as a hit this run.
    counted: Vec<(String, String, i64)>,
    /// Evidence to keep per provider, and the full pool the excerpt is cut from.
    evidence: Vec<Vec<EvidenceLine>>,
    /// The evidence as stored before this run.
    stored_evidence: Vec<Vec<EvidenceLine>>,
}

/// Reads the sources and merges what they say with what was known; returns that and the
/// ledger as it stands. The ledger is read when the first packet line needs it (through a
/// connection of its own: the reading threads cannot share the run's), so a run that reads no
/// packet line from a settled state does not read it at all.
fn ingest(
    world: &World<'_>,
    state: Option<&State>,
    options: &Options<'_>,
) -> Result<(Intake, Ledger)> {
    let verbosity = options.verbosity;
    let settings = world.settings;
    let early: std::sync::OnceLock<Result<Ledger, String>> = std::sync::OnceLock::new();
    let stored = state.is_some();
    let ledger_now = || {
        early.get_or_init(|| {
            let read = match stored {
                true => State::open_read_only(&settings.state_dir)
                    .and_then(|s| Ledger::read(world, s.as_ref())),
                false => Ledger::read(world, None),
            };
            read.map_err(|e| format!("{e:#}"))
        })
    };
    let attribute = |ip: IpAddr| {
        let mut a = Attribution::default();
        let reportable = is_reportable(ip) && !is_ignored(ip, &settings.report.ignore);
        let asn = world.asn(ip);
        for (i, p) in world.providers.iter().enumerate() {
            if p.matches(ip, asn) {
                a.providers |= 1 << i;
                // A ledger that cannot be read ends the run after the read (below).
                if reportable
                    && ledger_now()
                        .as_ref()
                        .is_ok_and(|l| !l.reported[i].contains(&ip))
                {
                    a.candidates |= 1 << i;
                }
            }
        }
        a
    };
    let mut cursors = Vec::new();
    let mut counted = Vec::new();
    let parser = |prefixes: &[String]| LineParser::new(prefixes, settings.zone, world.now);
    let mut scan = Ingest::new(
        parser(&[]),
        world.providers.len(),
        settings.report.sample_seconds,
        settings.report.max_excerpt_lines,
        &attribute,
    );
    if let Some(since) = options.since {
        scan.skip_before(since.timestamp());
    }
    let report = &settings.report;
    if let Some(t) = world.fresh_since() {
        scan.stale_before(t);
    }
    if !report.backscatter {
        scan.pass_over_answers();
    }
    // Sizing the read costs a look at every file: only where a bar could be shown.
    let watched = std::io::stderr().is_terminal() && verbosity != Verbosity::Quiet;
    let expected = if watched {
        expected_bytes(settings, state)
    } else {
        0
    };
    let bar = show_progress(watched, verbosity, expected).then(|| {
        let bar = indicatif::ProgressBar::new(expected);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let tick = |n: u64| {
        if let Some(bar) = &bar {
            bar.inc(n);
        }
    };
    scan.report_progress(&tick);
    for source_cfg in &settings.sources {
        match &source_cfg.kind {
            SourceKind::Journald => {
                scan.begin_source(parser(&source_cfg.prefixes));
                let key = source_cfg.name();
                let cursor = match state {
                    Some(s) => s.journal_cursor(&key)?,
                    None => None,
                };
                let read = journal::read(cursor.as_deref(), source_cfg.start_at, &mut scan)?;
                if let Some(c) = read.filter(|c| Some(c) != cursor.as_ref()) {
                    cursors.push((key, StoredCursor::Journal(c)));
                }
            }
            SourceKind::File(pattern) => {
                for path in files_of(pattern, state)? {
                    // Each file of a glob is a timeline of its own.
                    scan.begin_source(parser(&source_cfg.prefixes));
                    let key = path.to_string_lossy().to_string();
                    let cursor = match state {
                        Some(s) => s.cursor(&key)?,
                        None => None,
                    };
                    // Read again after `reread`: what an earlier read counted is not counted
                    // twice (a packet logged up to the last one counted, per prefix).
                    if let (Some(s), Some(c)) = (state, cursor.as_ref())
                        && c.is_reread()
                    {
                        let until = s.counted(&key)?;
                        scan.counted_before(
                            source_cfg
                                .prefixes
                                .iter()
                                .map(|p| until.get(p).copied())
                                .collect(),
                        );
                    }
                    let before = scan.counted();
                    let read = source::read(&path, cursor.as_ref(), source_cfg.start_at, &mut scan)
                        .map_err(|e| {
                            if cursor.is_none() && !path.exists() {
                                anyhow::Error::from(ConfigError(one_line(&e)))
                            } else {
                                e
                            }
                        })?;
                    if verbosity == Verbosity::Verbose {
                        eprintln!("abuse-mailer: source {key}: {}", read.decision);
                    }
                    if verbosity != Verbosity::Quiet {
                        for warning in &read.warnings {
                            eprintln!("abuse-mailer: warning: {warning}");
                        }
                        let first = cursor.as_ref().is_none_or(source::Cursor::is_reread);
                        if first
                            && options.since.is_none()
                            && let Some(hint) = crate::reread::first_read_hint(
                                &key,
                                &source_cfg.prefixes,
                                &before,
                                &scan.counted(),
                            )
                        {
                            eprintln!("abuse-mailer: warning: {hint}");
                        }
                    }
                    for (k, until) in scan.counted_until().iter().enumerate() {
                        if let (Some(t), Some(prefix)) = (until, source_cfg.prefixes.get(k)) {
                            counted.push((key.clone(), prefix.clone(), *t));
                        }
                    }
                    // An unchanged cursor is not written again: a quiet run commits nothing.
                    if let Some(c) = read.cursor.filter(|c| Some(c) != cursor.as_ref()) {
                        cursors.push((key, StoredCursor::File(c)));
                    }
                }
            }
        }
    }
    let mut batch = scan.finish();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let selection_key = world.selection_key();
    let stored_marker = match state {
        Some(s) => s.settled()?,
        None => None,
    };
    let marker = stored_marker
        .as_ref()
        .filter(|m| m.key == selection_key)
        .cloned();
    // Under a settled marker only the IPs read now can enter a delta (and those the ledger
    // moved, added below); without one, every IP known is looked at. Heads only (times and
    // hits): the sets are loaded for the IPs a report needs.
    // What was read is merged in place, so that the IPs read are not held twice.
    let mut observations = batch.observations;
    let mut earlier = Observations::new();
    let mut touched: Vec<IpAddr> = observations.ips().collect();
    touched.sort();
    if let Some(s) = state {
        for o in observations.iter_mut() {
            if let Some(known) = s.observation(o.ip)? {
                let mut merged = known.clone();
                merged.merge(o);
                *o = merged;
                if marker.is_some() {
                    earlier.add(known);
                }
            }
        }
        if marker.is_none() {
            s.add_observation_heads(&mut observations)?;
        }
    }
    let mut moved = false;
    if let (Some(s), Some(m)) = (state, &marker) {
        // Reports waiting to be sent again may be refused, giving their IPs back.
        let mut extra: Vec<IpAddr> = s
            .pending()?
            .iter()
            .flat_map(|r| r.ips.iter().map(|i| i.ip))
            .collect();
        // Reports that left the re-report window since the marker free their IPs.
        if let Some(days) = settings.report.rereport_after_days {
            let window = chrono::Duration::days(i64::from(days));
            let from = DateTime::<Utc>::from_timestamp(m.at, 0).unwrap_or(world.now) - window;
            let to = world.now - window;
            if from < to {
                for p in &world.providers {
                    extra.extend(s.leaving_window(p.name(), &utc_text(from), &utc_text(to))?);
                }
            }
        }
        moved = !extra.is_empty();
        for ip in extra {
            if !observations.contains(&ip)
                && let Some(o) = s.observation(ip)?
            {
                observations.add(o);
            }
        }
    }

    // Nothing read and nothing moved under a marker: no delta, and the evidence stays as
    // stored; neither the ledger nor the evidence is needed.
    let quiet = marker.is_some() && touched.is_empty() && !moved;
    let ledger = match early.into_inner() {
        Some(read) => read.map_err(anyhow::Error::msg)?,
        None if quiet => Ledger::none(world),
        None => Ledger::read(world, state)?,
    };
    let mut evidence = Vec::new();
    let mut stored_evidence = Vec::new();
    for (i, p) in world.providers.iter().enumerate() {
        if quiet {
            evidence.push(Vec::new());
            stored_evidence.push(Vec::new());
            continue;
        }
        let stored = match state {
            Some(s) => s.evidence(p.name())?,
            None => Vec::new(),
        };
        let mut pool = stored.clone();
        stored_evidence.push(stored);
        pool.append(&mut batch.evidence[i]);
        // Neither reported addresses' lines nor history are evidence any more.
        let fresh = world.fresh_since();
        pool.retain(|l| !ledger.reported[i].contains(&l.ip) && fresh.is_none_or(|t| l.time >= t));
        let keep = excerpt::keep(
            pool,
            settings.report.sample_seconds,
            settings.report.max_excerpt_lines,
            crate::ingest::LINES_PER_IP,
        );
        evidence.push(keep);
    }
    let mut intake = Intake {
        summary: batch.summary,
        observations,
        partial: marker.is_some(),
        moved,
        stored_marker,
        selection_key,
        touched,
        cursors,
        counted,
        evidence,
        stored_evidence,
    };
    intake.summary.ips_below_min_hits = match &marker {
        None => count_below_min_hits(world, &intake.observations, &ledger),
        // The IPs read are the only ones whose hits changed: the count moves by theirs.
        Some(m) => {
            let now: Observations = intake
                .touched
                .iter()
                .filter_map(|ip| intake.observations.get(ip).cloned())
                .collect();
            (m.below_min_hits + count_below_min_hits(world, &now, &ledger))
                .saturating_sub(count_below_min_hits(world, &earlier, &ledger))
        }
    };
    Ok((intake, ledger))
}

impl Intake {
    /// The whole observation of `ip`: as merged this run, or as stored.
    fn whole(&self, ip: IpAddr, state: Option<&State>) -> Result<Option<Observation>> {
        if self.touched.binary_search(&ip).is_ok() {
            return Ok(self.observations.get(&ip).cloned());
        }
        match state {
            Some(s) => s.observation(ip),
            None => Ok(self.observations.get(&ip).cloned()),
        }
    }
}

/// How many addresses `min_hits` holds back this run, for the summary.
fn count_below_min_hits(world: &World<'_>, observations: &Observations, ledger: &Ledger) -> u64 {
    let mut held: HashSet<IpAddr> = HashSet::new();
    for (i, provider) in world.providers.iter().enumerate() {
        held.extend(crate::select::below_min_hits(
            observations,
            provider,
            &ledger.reported[i],
            world.fresh_since(),
            &world.settings.report,
            &|ip| world.asn(ip),
        ));
    }
    held.len() as u64
}

/// One report ready to be recorded and sent (or printed).
struct Planned {
    report: Report,
    record: ReportRecord,
}

fn plan(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    only: Option<&str>,
    state: Option<&State>,
) -> Result<Vec<Planned>> {
    let settings = world.settings;
    let since = world.rereport_since().map(|t| t.timestamp());
    let mut planned = Vec::new();
    for (i, provider) in world.providers.iter().enumerate() {
        if only.is_some_and(|o| o != provider.name()) {
            continue;
        }
        let selected = delta(
            &intake.observations,
            provider,
            &ledger.reported[i],
            &ledger.ever_sent[i],
            crate::select::Since {
                rereport: since,
                fresh: world.fresh_since(),
            },
            &settings.report,
            &|ip| world.asn(ip),
        );
        if selected.is_empty() {
            continue;
        }
        // Selected by their heads; a report needs the whole records.
        let whole = selected
            .iter()
            .map(|s| {
                let o = intake.whole(s.observation.ip, state)?;
                Ok((o.unwrap_or_else(|| s.observation.clone()), s.rereport))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut attackers = enrich(whole, provider, world.asn_db.as_ref());
        // XARF v4 wants a source port for an address, and the API refuses a document
        // without one: a source seen only over ICMP is for mail, not for the API.
        if provider.config.delivery == config::Delivery::AwsAbuseApi {
            let before = attackers.len();
            attackers.retain(|a| a.observation.src_ports.iter().any(|p| *p > 0));
            // Said on every run, so that nobody takes them for reported.
            if attackers.len() < before {
                eprintln!(
                    "abuse-mailer: warning: {} address(es) of {} were seen only over ICMP (no source port); the AWS API takes no such report, so they are not reported",
                    before - attackers.len(),
                    provider.name()
                );
            }
        }
        // XARF names one source per report.
        // The API takes one source per report too.
        let size =
            if settings.report.xarf || provider.config.delivery == config::Delivery::AwsAbuseApi {
                1
            } else {
                settings.report.max_ips_per_message.unwrap_or(usize::MAX)
            };
        let limit = settings.report.max_message_bytes;
        let mut chunks: Vec<std::ops::Range<usize>> = (0..attackers.len())
            .step_by(size)
            .map(|start| start..(start + size).min(attackers.len()))
            .collect();
        // Numbered and rendered once; only when a part of several addresses is over the
        // limit are the parts sized and rendered again.
        let mut parts = number_parts(world, intake, ledger, i, &attackers, &chunks, state)?;
        let over =
            |p: &Planned, r: &std::ops::Range<usize>| r.len() > 1 && p.record.message.len() > limit;
        if parts.iter().zip(&chunks).any(|(p, r)| over(p, r)) {
            let fitted = fit_parts(world, intake, ledger, i, &attackers, chunks, state)?;
            parts = number_parts(world, intake, ledger, i, &attackers, &fitted, state)?;
            chunks = fitted;
        }
        let mut kept = Vec::with_capacity(parts.len());
        for (part, range) in parts.into_iter().zip(&chunks) {
            // One address, too large even without log lines (a template that says a lot):
            // it waits, named, and the others go out.
            if part.record.message.len() > limit {
                eprintln!(
                    "abuse-mailer: warning: the report on {} to {} is over report.max_message_bytes = {limit} even without log lines; it waits (raise the limit or shorten the templates)",
                    attackers[range.start].observation.ip,
                    provider.name()
                );
                continue;
            }
            kept.push(part);
        }
        let parts = kept;
        planned.extend(parts);
    }
    Ok(planned)
}

/// Renders `ranges` of `attackers` as the numbered parts of one thread.
fn number_parts(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    i: usize,
    attackers: &[Attacker],
    ranges: &[std::ops::Range<usize>],
    state: Option<&State>,
) -> Result<Vec<Planned>> {
    let mut parts = Vec::with_capacity(ranges.len());
    let mut thread_root = ledger.thread_roots[i].clone();
    for (k, range) in ranges.iter().enumerate() {
        let part = plan_part(
            world,
            intake,
            i,
            &attackers[range.clone()],
            (k + 1, ranges.len()),
            thread_root.as_deref(),
            state,
        )?;
        // Later parts reply to the first, so a split report reads as one thread.
        thread_root.get_or_insert_with(|| part.record.message_id.clone());
        parts.push(part);
    }
    Ok(parts)
}

/// Splits `chunks` until each of several addresses fits `max_message_bytes`: a chunk is tried
/// once as a part with the longest numbering and thread headers it could get, and only the
/// halves of one that is too large are tried again. A part numbered for real is no larger.
fn fit_parts(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    i: usize,
    attackers: &[Attacker],
    chunks: Vec<std::ops::Range<usize>>,
    state: Option<&State>,
) -> Result<Vec<std::ops::Range<usize>>> {
    let settings = world.settings;
    let probe_root = format!(
        "<{}-{}-{:016x}-99999@{}>",
        world.now.format("%Y%m%dT%H%M%SZ"),
        world.providers[i].name(),
        u64::MAX,
        settings.report.from.email.domain()
    );
    let probe_root = match &ledger.thread_roots[i] {
        Some(root) if root.len() > probe_root.len() => root.clone(),
        _ => probe_root,
    };
    let mut fitted = Vec::with_capacity(chunks.len());
    let mut queue: std::collections::VecDeque<std::ops::Range<usize>> = chunks.into();
    while let Some(range) = queue.pop_front() {
        if range.len() > 1 {
            let trial = plan_part(
                world,
                intake,
                i,
                &attackers[range.clone()],
                (99_999, 99_999),
                Some(&probe_root),
                state,
            )?;
            if trial.record.message.len() > settings.report.max_message_bytes {
                let mid = range.start + range.len() / 2;
                queue.push_front(mid..range.end);
                queue.push_front(range.start..mid);
                continue;
            }
        }
        fitted.push(range);
    }
    Ok(fitted)
}

/// One message: part `part.0` of `part.1` of a provider's delta.
fn plan_part(
    world: &World<'_>,
    intake: &Intake,
    i: usize,
    attackers: &[Attacker],
    part: (usize, usize),
    thread_root: Option<&str>,
    state: Option<&State>,
) -> Result<Planned> {
    let settings = world.settings;
    let provider = &world.providers[i];
    let ips: HashSet<IpAddr> = attackers.iter().map(|a| a.observation.ip).collect();
    let pool: Vec<EvidenceLine> = intake.evidence[i]
        .iter()
        .filter(|l| ips.contains(&l.ip))
        .cloned()
        .collect();
    let window: Option<Window> = densest(
        pool.clone(),
        settings.report.sample_seconds,
        settings.report.max_excerpt_lines,
    );
    let id = report_id(
        world.now,
        provider.name(),
        &attackers
            .iter()
            .map(|a| a.observation.ip)
            .collect::<Vec<_>>(),
        state,
    )?;
    let message_id = format!("<{id}@{}>", settings.report.from.email.domain());
    let head = Envelope {
        from: &settings.report.from,
        to: &provider.config.to,
        cc: &settings.report.cc,
        reply_to: settings.report.reply_to.as_ref(),
        message_id: &message_id,
        thread_root,
        date: world.now,
    };
    // A part of one address that is still too large carries fewer log lines (long lines
    // can be forged): halved until it fits, the address's own lines last of all.
    let api = provider.config.delivery == config::Delivery::AwsAbuseApi;
    let mut lines = usize::MAX;
    let (report, subject, bytes) = loop {
        let mut report = Report::new(
            provider.name(),
            &provider.config.to,
            attackers,
            window.as_ref(),
            &settings.report,
            settings.zone,
            world.now,
        )
        .part(part.0, part.1)
        .with_evidence(&pool, &settings.report, lines);
        report.excerpt.truncate(lines);
        let (subject, body) = world.templates.render(&report)?;
        // An API report stores the exact request body: a retry sends the same clientToken
        // with the same payload.
        let bytes = if api {
            let test = settings.aws_api.as_ref().is_some_and(|a| a.test);
            crate::aws_api::request_body(&report, &id, &message_id, test)?
        } else {
            message(&head, &subject, &body, &report, &settings.report)?
        };
        if bytes.len() <= settings.report.max_message_bytes || attackers.len() > 1 || lines == 0 {
            break (report, subject, bytes);
        }
        lines = lines.min(
            report
                .excerpt
                .len()
                .max(crate::render::EVIDENCE_PER_ADDRESS),
        ) / 2;
    };
    let recipients = if api {
        vec![crate::aws_api::destination(settings)]
    } else {
        provider
            .config
            .to
            .iter()
            .chain(&settings.report.cc)
            .map(|m| m.email.to_string())
            .collect()
    };
    let record = ReportRecord {
        id,
        provider: provider.name().to_string(),
        recipients,
        subject,
        message_id,
        status: Status::Sending,
        created_at: utc_text(world.now),
        sent_at: None,
        attempts: 0,
        last_error: None,
        server_reply: None,
        ips: attackers
            .iter()
            .map(|a| ReportedIp {
                ip: a.observation.ip,
                hits: a.observation.hits,
                first_seen: a.observation.first_seen,
                last_seen: a.observation.last_seen,
            })
            .collect(),
        message: bytes,
    };
    Ok(Planned { report, record })
}

/// `20260125T235125Z-aws-1a2b3c4d5e6f7a8b`: time, provider and a 64-bit hash of the IPs, so
/// that ids from several writers, and the thousands of one-address reports of one run, do not
/// collide; a taken id gets a counter.
fn report_id(
    now: DateTime<Utc>,
    provider: &str,
    ips: &[IpAddr],
    state: Option<&State>,
) -> Result<String> {
    let text = ips
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let base = format!(
        "{}-{provider}-{:016x}",
        now.format("%Y%m%dT%H%M%SZ"),
        fnv1a(text.as_bytes())
    );
    let Some(state) = state else {
        return Ok(base);
    };
    let mut id = base.clone();
    let mut n = 2;
    while state.report_exists(&id)? {
        id = format!("{base}-{n}");
        n += 1;
    }
    Ok(id)
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    reports: Vec<JsonReport<'a>>,
    summary: Summary,
    /// Observed sources that no configured provider holds.
    unattributed: &'a Unattributed<'a>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    provider: &'a str,
    to: &'a [String],
    subject: &'a str,
    ips: Vec<JsonIp<'a>>,
    excerpt: &'a [String],
}

#[derive(Serialize)]
struct JsonIp<'a> {
    ip: &'a str,
    hits: u64,
    first_seen: &'a str,
    last_seen: &'a str,
    asn: Option<u32>,
    as_org: Option<&'a str>,
    ports: &'a [u16],
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

/// Every observed source that no provider holds, sorted, as reports list IPs.
fn unattributed<'a>(
    world: &'a World<'a>,
    intake: &'a Intake,
    state: Option<&'a State>,
) -> Result<Unattributed<'a>> {
    let mut found: Vec<IpAddr> = match (state, intake.partial) {
        // Selection did not look at every IP known: the list does.
        (Some(s), true) => {
            let mut all = s.observed_ips()?;
            all.extend(intake.observations.ips());
            all
        }
        _ => intake.observations.ips().collect(),
    };
    found.retain(|ip| {
        let asn = world.asn(*ip);
        !world.providers.iter().any(|p| p.matches(*ip, asn))
    });
    found.sort();
    found.dedup();
    Ok(Unattributed {
        world,
        intake,
        state,
        ips: found,
    })
}

/// The `unattributed` list, each entry made as it is written: with many sources in no
/// provider (a scan, a flood), the whole list made first would cost more than the read.
struct Unattributed<'a> {
    world: &'a World<'a>,
    intake: &'a Intake,
    state: Option<&'a State>,
    ips: Vec<IpAddr>,
}

impl Serialize for Unattributed<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = out.serialize_seq(None)?;
        for ip in &self.ips {
            let observation = self
                .intake
                .whole(*ip, self.state)
                .map_err(|e| S::Error::custom(format!("{e:#}")))?;
            let Some(observation) = observation else {
                continue;
            };
            let attacker = Attacker {
                observation,
                range: None,
                asn: self.world.asn_db.as_ref().and_then(|db| db.lookup(*ip)),
                rereport: false,
            };
            let entry = ReportIp::new(&attacker, self.world.settings.zone);
            seq.serialize_element(&JsonIp::from(&entry))?;
        }
        seq.end()
    }
}

fn print_json(
    planned: &[Planned],
    summary: Summary,
    unattributed: &Unattributed<'_>,
) -> Result<()> {
    let reports = planned
        .iter()
        .map(|p| JsonReport {
            provider: &p.report.provider,
            to: &p.report.to,
            subject: &p.record.subject,
            ips: p.report.ips.iter().map(JsonIp::from).collect(),
            excerpt: &p.report.excerpt,
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(
        &mut out,
        &JsonOutput {
            reports,
            summary,
            unattributed,
        },
    )?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Messages in mbox form: each after a `From ` line, with Unix line ends and `From ` quoting.
fn print_mbox<'a>(messages: impl Iterator<Item = &'a [u8]>, now: DateTime<Utc>) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
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

fn preview(settings: &Settings, now: DateTime<Utc>, options: &Options<'_>) -> Result<u8> {
    let (only, json, verbosity) = (options.only, options.json, options.verbosity);
    let started = Instant::now();
    let world = World::load(settings, now, only, verbosity)?;
    let state = State::open_read_only(&settings.state_dir)?;
    if let Some(s) = &state {
        check_owner(s, settings)?;
    }
    let (intake, ledger) = ingest(&world, state.as_ref(), options)?;
    let planned = plan(&world, &intake, &ledger, only, state.as_ref())?;
    if json {
        print_json(
            &planned,
            intake.summary,
            &unattributed(&world, &intake, state.as_ref())?,
        )?;
    } else {
        // What the next run sends: first the stored reports waiting to be sent again, exactly
        // as stored, then the new ones. (The JSON lists the new reports: the waiting ones are
        // in `history --json`.)
        let waiting = match &state {
            Some(s) => s.pending()?,
            None => Vec::new(),
        };
        let waiting = waiting
            .iter()
            .filter(|r| only.is_none_or(|o| o == r.provider))
            .filter(|r| !r.made_for_api());
        print_mbox(
            waiting
                .map(|r| r.message.as_slice())
                .chain(planned.iter().map(|p| p.record.message.as_slice())),
            now,
        )?;
    }
    if let Some(s) = &state {
        let waiting = s.pending()?.len();
        if waiting > 0 && verbosity != Verbosity::Quiet {
            eprintln!(
                "abuse-mailer: {waiting} earlier report(s) wait to be sent again by the next run{}",
                if json {
                    " (see history)"
                } else {
                    ", printed first"
                }
            );
        }
    }
    if verbosity != Verbosity::Quiet {
        eprintln!(
            "{}",
            summary_line("preview", &intake.summary, &planned, 0, started)
        );
    }
    Ok(EXIT_OK)
}

/// The one line every run ends with.
fn summary_line(
    what: &str,
    s: &Summary,
    reports: &[Planned],
    sent: usize,
    started: Instant,
) -> String {
    let new = if reports.is_empty() {
        "nothing new to report".to_string()
    } else {
        let mut by_provider: Vec<(&str, usize, usize)> = Vec::new();
        for p in reports {
            match by_provider
                .iter_mut()
                .find(|(name, ..)| *name == p.record.provider)
            {
                Some((_, ips, messages)) => {
                    *ips += p.record.ips.len();
                    *messages += 1;
                }
                None => by_provider.push((&p.record.provider, p.record.ips.len(), 1)),
            }
        }
        by_provider
            .iter()
            .map(|(name, ips, messages)| match messages {
                1 => format!("{name}: {ips} new"),
                _ => format!("{name}: {ips} new in {messages} messages"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // What the defaults left out, so that an operator sees why an address was not reported.
    let mut left_out = Vec::new();
    if s.lines_stale > 0 {
        left_out.push(format!("{} lines older than max_age_days", s.lines_stale));
    }
    if s.lines_backscatter > 0 {
        left_out.push(format!(
            "{} lines answering our own traffic (backscatter)",
            s.lines_backscatter
        ));
    }
    if s.lines_counted_before > 0 {
        left_out.push(format!(
            "{} lines read again that an earlier read counted",
            s.lines_counted_before
        ));
    }
    if s.ips_below_min_hits > 0 {
        left_out.push(format!(
            "{} IPs below min_hits so far",
            s.ips_below_min_hits
        ));
    }
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

fn run(settings: &Settings, now: DateTime<Utc>, options: &Options<'_>) -> Result<u8> {
    let (only, json, verbosity) = (options.only, options.json, options.verbosity);
    let started = Instant::now();
    let world = World::load(settings, now, only, verbosity)?;
    let transport = transport(&settings.mail.transport).map_err(|e| ConfigError(one_line(&e)))?;
    let api = crate::aws_api::Api::for_run(settings, only, verbosity == Verbosity::Quiet)?;
    let Some(_lock) = crate::lock::acquire(&settings.state_dir, verbosity != Verbosity::Quiet)?
    else {
        return Ok(EXIT_OK);
    };
    let mut state = State::open(&settings.state_dir)?;
    claim(&mut state, settings)?;

    // Store what the logs say before any mail goes out: a mail outage must not lose lines
    // that rotate away meanwhile.
    let (intake, ledger) = ingest(&world, Some(&state), options)?;
    let touched: Vec<&Observation> = intake
        .touched
        .iter()
        .filter_map(|ip| intake.observations.get(ip))
        .collect();
    // Evidence is rewritten only where it changed: a run with nothing new writes nothing.
    let evidence: Vec<(String, Vec<EvidenceLine>)> = world
        .providers
        .iter()
        .zip(&intake.evidence)
        .zip(&intake.stored_evidence)
        .filter(|((_, lines), stored)| lines != stored)
        .map(|((p, lines), _)| (p.name().to_string(), lines.clone()))
        .collect();
    state.commit_ingest(
        &touched,
        &intake.cursors,
        &intake.counted,
        &evidence,
        &utc_text(now),
        intake.moved || !intake.partial,
    )?;

    let mut budget = settings.mail.max_messages_per_run;
    let mut outcome = Outcome::default();
    // The way a provider's reports go: a failure of one (the mail server is down, the API's
    // key expired) holds back only the reports that go that way.
    let route = |provider: &str| match &api {
        Some(api) if api.serves(provider) => Route::Api,
        _ => Route::Mail,
    };
    let mut resent = 0;
    for record in state.pending()? {
        if only.is_some_and(|o| o != record.provider) {
            continue;
        }
        if budget == 0 || outcome.failed_routes.contains(&route(&record.provider)) {
            outcome.waiting += 1;
            continue;
        }
        budget -= 1;
        resent += 1;
        deliver(
            &mut state,
            transport.as_ref(),
            api.as_ref(),
            settings,
            &record,
            now,
            &mut outcome,
            verbosity,
        )?;
    }

    // A resend changes the ledger (a rejection frees its IPs, a first delivery starts the
    // provider's thread): read it anew then.
    let ledger = if resent > 0 {
        Ledger::read(&world, Some(&state))?
    } else {
        ledger
    };
    let mut planned = plan(&world, &intake, &ledger, only, Some(&state))?;
    // A desk that just refused a report is not sent its IPs again in the same run.
    planned.retain(|p| !outcome.rejected_providers.contains(&p.record.provider));
    let mut made = Vec::new();
    for p in planned {
        let way = route(&p.record.provider);
        if outcome.failed_routes.contains(&way) {
            // Its IPs stay in the delta: the next run plans them again.
            outcome.held += 1;
            continue;
        }
        if budget == 0 {
            // A part of a split message keeps its number: written now, never tried, it goes
            // out as stored ("part 11 of 16") before anything new on a later run. One report
            // per address (XARF, the API) has no numbers to keep: it is planned afresh.
            let one_per_address = settings.report.xarf || way == Route::Api;
            if p.report.parts > 1 && !one_per_address {
                state.insert_report(&p.record)?;
                outcome.queued += 1;
            } else {
                outcome.held += 1;
            }
            continue;
        }
        budget -= 1;
        state.insert_report(&p.record)?;
        deliver(
            &mut state,
            transport.as_ref(),
            api.as_ref(),
            settings,
            &p.record,
            now,
            &mut outcome,
            verbosity,
        )?;
        made.push(p);
    }
    settle(&mut state, &intake, &outcome, only, now)?;
    if let Some(api) = &api {
        crate::aws_api::refresh_after_run(&mut state, api);
    }
    if json {
        print_json(
            &made,
            intake.summary,
            &unattributed(&world, &intake, Some(&state))?,
        )?;
    }
    if verbosity != Verbosity::Quiet {
        if outcome.held > 0 || outcome.waiting > 0 || outcome.queued > 0 {
            eprintln!(
                "abuse-mailer: {} report(s) wait for the next run (max_messages_per_run = {}, or the mail server is unavailable)",
                outcome.held + outcome.waiting + outcome.queued,
                settings.mail.max_messages_per_run
            );
        }
        let mut line = summary_line("run", &intake.summary, &made, outcome.sent, started);
        if api.is_some() {
            for tally in crate::aws_api::tallies(&state, settings, only)? {
                line.push_str(&format!("; {tally}"));
            }
        }
        eprintln!("{line}");
    }
    if let Some(reason) = outcome.unauthorized_api {
        return Err(ConfigError(format!(
            "{reason}; the report is kept and goes out once that is fixed"
        ))
        .into());
    }
    if let Some(reason) = outcome.unauthorized {
        return Err(ConfigError(format!(
            "{reason}; the report is kept and goes out once that is fixed"
        ))
        .into());
    }
    if let Some(reason) = outcome.transient {
        return Err(TransientError(format!(
            "report not delivered, will retry on the next run: {reason}"
        ))
        .into());
    }
    if let Some(reason) = outcome.rejected {
        bail!("report rejected: {reason}");
    }
    Ok(EXIT_OK)
}

/// Leaves a [`Settled`] marker when every provider's delta went into the ledger this run and
/// nothing was refused, and removes it otherwise. A quiet run under a marker writes nothing.
fn settle(
    state: &mut State,
    intake: &Intake,
    outcome: &Outcome,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let settled = only.is_none()
        && outcome.transient.is_none()
        && outcome.unauthorized.is_none()
        && outcome.unauthorized_api.is_none()
        && outcome.rejected.is_none()
        && outcome.rejected_providers.is_empty()
        && outcome.held == 0
        && outcome.queued == 0
        && outcome.waiting == 0;
    let marker = settled.then(|| Settled {
        key: intake.selection_key.clone(),
        below_min_hits: intake.summary.ips_below_min_hits,
        at: now.timestamp(),
    });
    // Nothing read and nothing moved under a marker: the delta was empty, the marker holds.
    if intake.partial && !intake.moved && intake.touched.is_empty() {
        return Ok(());
    }
    match (&marker, &intake.stored_marker) {
        (None, None) => Ok(()),
        _ => state.set_settled(marker.as_ref()),
    }
}

/// The configuration file as the state remembers it: absolute, links resolved.
fn config_name(settings: &Settings) -> String {
    std::fs::canonicalize(&settings.file)
        .unwrap_or_else(|_| settings.file.clone())
        .to_string_lossy()
        .into_owned()
}

/// Refuses a state that another configuration file runs on: each keeps a cursor per source,
/// and two readers of one cursor would each lose what the other read. A configuration file
/// that is gone, or now names another `state_dir`, has left it (a moved file is no conflict).
pub fn check_owner(state: &State, settings: &Settings) -> Result<()> {
    let me = config_name(settings);
    let Some(other) = state.owner()?.filter(|o| *o != me) else {
        return Ok(());
    };
    let other_path = Path::new(&other);
    if !other_path.exists() {
        return Ok(());
    }
    let same_dir = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    // Unreadable, it may still run: only a configuration that clearly left is let go.
    let left = config::load(other_path).is_ok_and(|o| !same_dir(&o.state_dir, &settings.state_dir));
    if left {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{}: state_dir {} is the state of {other}, which still names it; two configurations on one state move each other's source cursors and lose lines. Give {me} a state_dir of its own, or, if {other} is no longer used, remove it or change its state_dir",
        settings.file.display(),
        settings.state_dir.display(),
    ))
    .into())
}

/// Makes this configuration the one that runs on the state, unless another one still does.
fn claim(state: &mut State, settings: &Settings) -> Result<()> {
    check_owner(state, settings)?;
    let me = config_name(settings);
    if state.owner()?.as_deref() != Some(me.as_str()) {
        state.set_owner(&me)?;
    }
    Ok(())
}

/// The way a report goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    /// `[mail]`: SMTP, sendmail or a folder.
    Mail,
    /// The AWS Abuse Signal API.
    Api,
}

#[derive(Default)]
struct Outcome {
    sent: usize,
    transient: Option<String>,
    /// Routes that failed this run (transient or configuration): nothing more goes that way.
    failed_routes: HashSet<Route>,
    /// A mail setting is wrong (login, TLS, sendmail): fix it, then the report goes out.
    unauthorized: Option<String>,
    /// The same for the AWS API's credentials.
    unauthorized_api: Option<String>,
    rejected: Option<String>,
    rejected_providers: HashSet<String>,
    /// New reports not made this run (budget or outage); their IPs stay in the delta.
    held: usize,
    /// Parts of a split report written to the ledger but not tried: the next run sends them.
    queued: usize,
    /// Stored reports not retried this run.
    waiting: usize,
}

// The mail transport and the API are the two ways out; the ledger step is shared.
#[allow(clippy::too_many_arguments)]
fn deliver(
    state: &mut State,
    transport: &dyn Transport,
    api: Option<&crate::aws_api::Api>,
    settings: &Settings,
    record: &ReportRecord,
    now: DateTime<Utc>,
    outcome: &mut Outcome,
    verbosity: Verbosity,
) -> Result<()> {
    // Whatever the transport answers must reach the ledger: without that proven first, a
    // report could go out on every run.
    let attempt = state.begin_attempt(&record.id, record.message.len())?;
    let api = api.filter(|a| a.serves(&record.provider));
    let result = match api {
        Some(api) => api.send(record),
        // A request stored for the API, whose provider now reports by mail: it is no mail.
        None if record.made_for_api() => Err(SendError::Rejected(format!(
            "report {} was made for the AWS API, and the provider now reports by mail: its addresses go into the next report",
            record.id
        ))),
        None => transport.send(
            &record.id,
            &settings.report.from,
            &record.recipients,
            &record.message,
        ),
    };
    let at = utc_text(clock::now().unwrap_or(now));
    let (status, detail) = match &result {
        Ok(reply) => (Status::Sent, reply.clone()),
        Err(SendError::Transient(e) | SendError::Config(e)) => (Status::Failed, e.clone()),
        Err(SendError::Rejected(e)) => (Status::Rejected, e.clone()),
    };
    match (api, &result) {
        (Some(_), Ok(remote_id)) => attempt.record_sent_remote(remote_id, &at),
        _ => attempt.record(status, &detail, &at),
    }
    .with_context(|| {
        format!(
            "report {} was {}, but recording that failed",
            record.id,
            status.as_str()
        )
    })?;
    match result {
        Ok(_) => {
            outcome.sent += 1;
            if verbosity != Verbosity::Quiet {
                println!(
                    "report {} to {} ({} IPs): sent: {detail}",
                    record.id,
                    record.recipients.join(", "),
                    record.ips.len()
                );
            }
        }
        Err(SendError::Transient(_) | SendError::Config(_)) => {
            eprintln!(
                "abuse-mailer: report {} not delivered (will retry): {detail}",
                record.id
            );
            outcome.failed_routes.insert(match api {
                Some(_) => Route::Api,
                None => Route::Mail,
            });
            if matches!(result, Err(SendError::Config(_))) {
                match api {
                    Some(_) => outcome.unauthorized_api = Some(detail.clone()),
                    None => outcome.unauthorized = Some(detail.clone()),
                }
            }
            // Either way nothing more goes that way in this run.
            outcome.transient = Some(detail);
        }
        Err(SendError::Rejected(_)) => {
            eprintln!("abuse-mailer: report {} rejected: {detail}", record.id);
            outcome.rejected = Some(detail);
            outcome.rejected_providers.insert(record.provider.clone());
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonHistory<'a> {
    id: &'a str,
    provider: &'a str,
    to: &'a [String],
    subject: &'a str,
    message_id: &'a str,
    status: &'a str,
    created_at: &'a str,
    sent_at: Option<&'a str>,
    ips: Vec<String>,
    /// What a remote intake (the AWS API) said; null for mail.
    remote: Option<crate::aws_api::JsonRemote<'a>>,
}

fn history(
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
    let remotes = match &state {
        Some(s) => s.remotes()?,
        None => HashMap::new(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<JsonHistory<'_>> = records
            .iter()
            .map(|r| JsonHistory {
                id: &r.id,
                provider: &r.provider,
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
    writeln!(
        out,
        "{:<40} {:<20} {:<12} {:<8} {:>5}  subject",
        "id", "created (UTC)", "provider", "status", "ips"
    )?;
    for r in &records {
        writeln!(
            out,
            "{:<40} {:<20} {:<12} {:<8} {:>5}  {}",
            r.id,
            r.created_at,
            r.provider,
            r.status.as_str(),
            r.ips.len(),
            r.subject
        )?;
        if let Some(e) = r.last_error.as_deref().filter(|_| r.status != Status::Sent) {
            writeln!(out, "{:<40} last error: {e}", "")?;
        }
        if let Some(remote) = remotes.get(&r.id) {
            writeln!(out, "{:<40} {}", "", crate::aws_api::describe(remote))?;
        }
    }
    if let Some(s) = &state {
        for tally in crate::aws_api::tallies(s, settings, only.as_deref())? {
            writeln!(out, "{tally}")?;
        }
    }
    Ok(EXIT_OK)
}

fn show(settings: &Settings, id: &str) -> Result<u8> {
    let state = State::open_read_only(&settings.state_dir)?;
    let Some(record) = state.as_ref().map(|s| s.report(id)).transpose()?.flatten() else {
        eprintln!("abuse-mailer: no report {id:?} in the ledger (see `abuse-mailer history`)");
        return Ok(EXIT_ERROR);
    };
    std::io::stdout().lock().write_all(&record.message)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bar_only_on_a_terminal_for_a_long_read() {
        let big = 1 << 30;
        assert!(show_progress(true, Verbosity::Normal, big));
        assert!(show_progress(true, Verbosity::Verbose, big));
        assert!(
            !show_progress(false, Verbosity::Normal, big),
            "cron and systemd: no bar"
        );
        assert!(!show_progress(true, Verbosity::Quiet, big));
        assert!(
            !show_progress(true, Verbosity::Normal, 1 << 20),
            "a short read needs none"
        );
    }
}
