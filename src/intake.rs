//! What a run knows before it plans: the configuration loaded (`World`: providers, ASN data,
//! templates, the clock) and the sources read and merged with what the state knew
//! (`Intake`). The only place that reads the sources for a run.
//!
//! A run that ends with nothing left to report leaves a [`crate::state::Settled`] marker; while
//! it stands and the selection settings are the same, a run looks only at the IPs it read and
//! those the ledger moved, not at every IP ever seen, so a run with nothing new costs the same
//! whatever the history.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::cli::Verbosity;
use crate::clock::utc_text;
use crate::config::{self, Settings, SourceKind};
use crate::enrich::AsnDb;
use crate::error::{ConfigError, TransientError, one_line};
use crate::excerpt::{self, EvidenceLine};
use crate::ingest::{Attribution, Ingest, Observation, Observations, SmallSet, Summary};
use crate::journal;
use crate::ledger::Ledger;
use crate::parse::LineParser;
use crate::provider::Provider;
use crate::render::Templates;
use crate::select::{Since, is_ignored, is_reportable};
use crate::source;
use crate::spool::{KeptLine, Spool};
use crate::state::{CONTACT_DESKS, Settled, State, StoredCursor};

/// Says what a first read of a source found, when it read lines and none carried a prefix
/// (see [`crate::reread::first_read_hint`]).
fn say_first_read(source: &str, prefixes: &[String], before: &Summary, after: &Summary) {
    if let Some(hint) = crate::reread::first_read_hint(source, prefixes, before, after) {
        crate::output::tell(format_args!("abuse-mailer: warning: {hint}"));
    }
}

/// The files a file source names now: the path itself, or a glob's `matches` (as
/// [`source::expand`] gives them) plus files it matched before that are gone for the moment
/// (their rotated rest is still read).
pub(crate) fn files_of(
    pattern: &Path,
    mut files: Vec<PathBuf>,
    state: Option<&State>,
) -> Result<Vec<PathBuf>> {
    if files.len() == 1 && files[0] == pattern {
        return Ok(files);
    }
    if let (Some(state), Ok(glob)) = (state, glob::Pattern::new(&pattern.to_string_lossy())) {
        // Looked up by name: a log host's glob matches thousands of files.
        let matched: std::collections::HashSet<PathBuf> = files.iter().cloned().collect();
        for known in state.cursor_sources()? {
            let known = PathBuf::from(known);
            // A path that named a file (brackets and all) and has none now is still that
            // file's name, which a pattern of it may not match.
            let named = glob.matches_path(&known) || known == pattern;
            if named && !matched.contains(&known) {
                files.push(known);
            }
        }
        // A match that is the rotated history of a name read before (`a.log.1` while the
        // daemon has not made a new `a.log` yet) is read as that name's history, not twice.
        let names: std::collections::HashSet<PathBuf> = files.iter().cloned().collect();
        files.retain(|f| !source::is_rotated_sibling_of_any(f, &names));
    }
    if files.is_empty() {
        let hint = match pattern.to_string_lossy().contains('[') {
            true => " (`[` opens a set of characters in a pattern: `[[]` is a `[` itself)",
            false => "",
        };
        return Err(ConfigError(format!(
            "source {}: no file matches{hint}",
            pattern.display()
        ))
        .into());
    }
    files.sort();
    Ok(files)
}

/// The names the file sources go by this run, and the files read under them so far.
struct FileNames {
    /// Every name a file source matches now (not names known only from the state), with the
    /// prefixes of the first source that matches it.
    configured: HashMap<String, Vec<String>>,
    /// Files read this run, by device and inode, with the name and prefixes each was first
    /// read under.
    read: HashMap<(u64, u64), (String, Vec<String>)>,
    /// The names read under this run: a name is one cursor, read once.
    names_read: std::collections::HashSet<String>,
    /// Names whose cursor another name took over this run.
    moved: std::collections::HashSet<String>,
    /// The names that took them over, with the name each took over from: their cursor is
    /// stored even if the read moved it not, and what the old name counted goes with it.
    taken_over: HashMap<String, String>,
    /// The stored names no source matches now, looked up once a run when needed.
    orphans: Option<Vec<String>>,
    /// The file sources' paths as configured (a glob's pattern among them, which names no
    /// file it matches).
    paths: std::collections::HashSet<String>,
}

impl FileNames {
    /// The names of the file sources' `matches` (each as [`source::expand`] gives them), each
    /// with its source's prefixes.
    fn new<'p>(
        matches: impl IntoIterator<Item = (&'p PathBuf, &'p [String])>,
        paths: std::collections::HashSet<String>,
    ) -> Self {
        let mut configured = HashMap::new();
        for (path, prefixes) in matches {
            (configured.entry(path.to_string_lossy().to_string()))
                .or_insert_with(|| prefixes.to_vec());
        }
        FileNames {
            configured,
            read: HashMap::new(),
            names_read: std::collections::HashSet::new(),
            moved: std::collections::HashSet::new(),
            taken_over: HashMap::new(),
            orphans: None,
            paths,
        }
    }

    /// Reads, once a run, the names with a cursor that no source matches now.
    fn load_orphans(&mut self, s: &State) -> Result<()> {
        if self.orphans.is_none() {
            let names = s.cursor_sources()?.into_iter();
            self.orphans = Some(names.filter(|n| !self.configured.contains_key(n)).collect());
        }
        Ok(())
    }

    /// The cursor of a name no source matches now, for the file at `path` (named `key`) that
    /// was rotated since that name's last run: the name ends in `path`'s file name, and the
    /// cursor is on `path`'s rotated sibling (`a.log.1`) that still begins as it did. It is
    /// `path`'s own under the name it went by (an older version's relative path, a host's
    /// folder renamed, the path spelled anew), which the inode of the file logged to now
    /// cannot find; the read goes on from it as from any cursor of its own.
    fn rotated_since(
        &mut self,
        key: &str,
        path: &Path,
        s: &State,
    ) -> Result<Option<(String, source::Cursor)>> {
        let Some(file_name) = path.file_name() else {
            return Ok(None);
        };
        self.load_orphans(s)?;
        // Most states have no such name: the folder is not looked at then.
        let maybe = |n: &String| {
            *n != key && !self.moved.contains(n) && Path::new(n).file_name() == Some(file_name)
        };
        if !self.orphans.iter().flatten().any(maybe) {
            return Ok(None);
        }
        use std::os::unix::fs::MetadataExt;
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut siblings: Vec<PathBuf> = (std::fs::read_dir(folder).into_iter().flatten())
            .flatten()
            .map(|e| e.path())
            .filter(|p| source::is_rotated_sibling_of(p, path))
            .collect();
        siblings.sort();
        for sibling in siblings {
            let Ok(meta) = std::fs::metadata(&sibling) else {
                continue;
            };
            for (name, cursor) in s.cursors_of_file(meta.dev(), meta.ino())? {
                // A file that has a gone file's inode number since begins otherwise.
                if maybe(&name)
                    && !self.configured.contains_key(&name)
                    && source::begins_as(&sibling, &cursor.fingerprint)
                {
                    return Ok(Some((name, cursor)));
                }
            }
        }
        Ok(None)
    }

    /// The cursor of a name no source matches now, for the file at `path` (named `key`) that
    /// is a copy of that name's file (see [`source::copy_of`]): a source's path changed to a
    /// copy of the log it read (its folder moved to another disk, a backup restored to
    /// another place, the old one left or not). Read from the start, every packet was counted
    /// twice, with nothing said; the read goes on from the cursor as from any of its own,
    /// which finds its place in a copy as it does in one at the same path.
    fn copied_from(
        &mut self,
        key: &str,
        path: &Path,
        s: &State,
    ) -> Result<Option<(String, source::Cursor)>> {
        self.load_orphans(s)?;
        let candidates: Vec<String> = (self.orphans.iter().flatten())
            .filter(|n| *n != key && !self.moved.contains(*n))
            .cloned()
            .collect();
        for name in candidates {
            if let Some(cursor) = s.cursor(&name)?
                && source::copy_of(path, &cursor)
            {
                return Ok(Some((name, cursor)));
            }
        }
        Ok(None)
    }

    /// The cursor to read `path` (named `key`, with `prefixes`) from; `None` when it is not
    /// to be read. A file is read once a run, under one name: another name of it (a symlink,
    /// a second source, globs that overlap, a path and a glob giving it) is passed over, said,
    /// and keeps no cursor of its own; prefixes only it has are not read (a packet is never
    /// counted twice; the operator gives them to the one source). A name with no cursor of its
    /// own passes over to another configured name that has one for the file, and takes over
    /// the cursor of a name no source matches any more (its folder renamed, the path spelled
    /// anew), whose cursor then goes: every line once, whatever the file is called.
    fn cursor(
        &mut self,
        path: &Path,
        key: &str,
        prefixes: &[String],
        state: Option<&State>,
        cursors: &mut Vec<(String, StoredCursor)>,
        verbosity: Verbosity,
    ) -> Result<Option<Option<source::Cursor>>> {
        use std::os::unix::fs::MetadataExt;
        if self.moved.contains(key) {
            return Ok(None);
        }
        let warn = |text: String| {
            if verbosity != Verbosity::Quiet {
                crate::output::tell(format_args!("abuse-mailer: warning: source {key} {text}"));
            }
        };
        let file = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let own = match state {
            Some(s) => s.cursor(key)?,
            None => None,
        };
        // Passed over: said, and any cursor of its own goes, so that it never reads on from a
        // place the file has long passed once it is the file's one name.
        let mut pass_over = |this: &mut Self, first: &str, read_for: &[String]| {
            let left: Vec<&String> = prefixes.iter().filter(|p| !read_for.contains(p)).collect();
            if left.is_empty() {
                warn(format!("is the file {first} names: read once, as {first}"));
            } else {
                warn(format!(
                    "is the file {first} names: read once, as {first}, so lines with {left:?} are not counted; give those prefixes to {first}'s source"
                ));
            }
            if own.is_some() && first != key && !this.moved.contains(key) {
                this.moved.insert(key.to_string());
                cursors.push((key.to_string(), StoredCursor::Moved));
            }
        };
        if let Some((first, read_for)) = file.and_then(|f| self.read.get(&f)).cloned() {
            pass_over(self, &first, &read_for);
            return Ok(None);
        }
        if self.names_read.contains(key) {
            pass_over(self, key, &[]);
            return Ok(None);
        }
        if let (None, Some(s), Some((dev, ino))) = (&own, state, file) {
            // Another name that will be read this run has a cursor for this file: it reads it.
            let other = (s.cursors_of_file(dev, ino)?.into_iter()).find(|(name, cursor)| {
                name != key
                    && self.configured.contains_key(name)
                    && source::begins_as(path, &cursor.fingerprint)
            });
            if let Some((other, _)) = other {
                // Read for that name's prefixes: this one's others are not (they were said
                // to be read, and their lines were lost unsaid).
                let read_for = self.configured.get(&other).cloned().unwrap_or_default();
                pass_over(self, &other, &read_for);
                return Ok(None);
            }
        }
        self.names_read.insert(key.to_string());
        if let Some(file) = file {
            self.read.insert(file, (key.to_string(), prefixes.to_vec()));
        }
        let Some(s) = state else {
            return Ok(Some(None));
        };
        if let Some(own) = own {
            return Ok(Some(Some(own)));
        }
        let Some((dev, ino)) = file else {
            return Ok(Some(None));
        };
        // Not a cursor of the file's own history (`a.log.1` is `a.log`'s), and only of the
        // file it followed (a file that has a gone file's inode number since begins
        // otherwise).
        let earlier = s
            .cursors_of_file(dev, ino)?
            .into_iter()
            .find(|(name, cursor)| {
                name != key
                    && !self.configured.contains_key(name)
                    && !self.moved.contains(name)
                    && !source::is_rotated_sibling_of(path, Path::new(name))
                    && source::begins_as(path, &cursor.fingerprint)
            });
        let earlier = match earlier {
            Some(found) => Some(found),
            None => match self.rotated_since(key, path, s)? {
                Some(found) => Some(found),
                // A glob's new file (a log host's new host) is no configured path changed.
                None if self.paths.contains(key) => self.copied_from(key, path, s)?,
                None => None,
            },
        };
        Ok(Some(earlier.map(|(name, cursor)| {
            if verbosity == Verbosity::Verbose {
                crate::output::tell(format_args!(
                    "abuse-mailer: source {key}: the file read as {name} before: read on from there"
                ));
            }
            self.moved.insert(name.clone());
            self.taken_over.insert(key.to_string(), name.clone());
            cursors.push((name, StoredCursor::Moved));
            cursor
        })))
    }
}

/// What `run` and `preview` were asked for.
pub(crate) struct Options<'a> {
    /// Report to this provider only.
    pub(crate) only: Option<&'a str>,
    pub(crate) json: bool,
    /// Pass over packets logged before this time.
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) verbosity: Verbosity,
}

/// A progress bar is for people watching a long read: on a terminal, not asked to be quiet,
/// and with enough to read; under cron or systemd there is none.
pub fn show_progress(stderr_is_terminal: bool, verbosity: Verbosity, bytes: u64) -> bool {
    const WORTH_A_BAR: u64 = 64 << 20;
    stderr_is_terminal && verbosity != Verbosity::Quiet && bytes >= WORTH_A_BAR
}

/// About how many bytes the file sources hold past their cursors.
pub(crate) fn expected_bytes(settings: &Settings, state: Option<&State>) -> u64 {
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
pub(crate) struct World<'s> {
    pub(crate) settings: &'s Settings,
    pub(crate) providers: Vec<Provider>,
    /// Contact discovery for addresses in no provider, when configured. A run for one
    /// provider keeps their evidence but makes no digest.
    pub(crate) discover: Option<&'s config::DiscoverConfig>,
    pub(crate) asn_db: Option<AsnDb>,
    pub(crate) templates: Templates,
    pub(crate) now: DateTime<Utc>,
    /// This installation's tag in the requests of API reports (see
    /// [`crate::aws_api::installation`]).
    pub(crate) installation: String,
}

impl<'s> World<'s> {
    pub(crate) fn load(
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
            crate::output::tell(format_args!(
                "abuse-mailer: warning: asn_db is {age} days old; AS assignments change, update it"
            ));
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
        let templates = Templates::load(settings.report.templates_dir.as_deref(), &names)
            .map_err(|e| ConfigError(one_line(&e)))?;
        if let Some(warning) = &templates.unused
            && verbosity != Verbosity::Quiet
        {
            crate::output::tell(format_args!("abuse-mailer: warning: {warning}"));
        }
        // A bootstrap folder without its files (a path misspelt, a copy never made) would
        // leave every lookup failing, the addresses said to wait for a later run, for ever:
        // refused as `check` refuses it.
        if let Some(problem) = (settings.discover.iter())
            .flat_map(crate::discover::bootstrap_folder_problems)
            .next()
        {
            return Err(ConfigError(problem).into());
        }
        Ok(World {
            settings,
            providers,
            discover: settings.discover.as_ref(),
            asn_db,
            templates,
            now,
            installation: crate::aws_api::installation(&settings.state_dir),
        })
    }

    /// The ledger keys of the destinations, in evidence bucket order: each provider, then
    /// every discovered contact together.
    pub(crate) fn desk_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
        if self.discover.is_some() {
            keys.push(CONTACT_DESKS);
        }
        keys
    }

    /// Where a report on `ip` goes, decided once per address: every configured provider
    /// whose ranges or ASNs hold it, else, with discovery, the desk of its network; nowhere
    /// (an empty set) without either. Configured providers always win over discovery.
    pub(crate) fn route(&self, ip: IpAddr) -> SmallSet<Destination> {
        // A source in IPv4-mapped form is no host's (see `parse::source_of`): the ranges that
        // hold the IPv4 address it names are not asked, nor is any desk.
        if crate::select::is_mapped(ip) {
            return SmallSet::default();
        }
        // An address no desk can act on is no AS's host: an ASN database files IPv4's old
        // `::a.b.c.d` form and 6to4 under the IPv4 address's network. Matched by AS, it
        // would be a provider's and never reported, and so listed nowhere.
        let asn = if is_reportable(ip) {
            self.asn(ip)
        } else {
            None
        };
        let mut to: SmallSet<Destination> = self
            .providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.matches(ip, asn))
            .map(|(i, _)| Destination::Provider(i))
            .collect();
        if to.is_empty() && self.discover.is_some() {
            to.insert(Destination::Discovered);
        }
        to
    }

    /// [`World::route`] of the addresses asked about, each decided once when first asked:
    /// selection asks only about addresses that passed its cheaper rules (enough packets,
    /// fresh, reportable), so a flood of one-packet sources costs no table of routes.
    pub(crate) fn routes(&self) -> Routes<'_, 's> {
        Routes {
            world: self,
            known: std::cell::RefCell::new(HashMap::new()),
            asked_once: self.desk_keys().len() <= 1,
        }
    }

    /// The evidence bucket and ledger entry of a destination (see [`World::desk_keys`]).
    pub(crate) fn bucket(&self, to: Destination) -> usize {
        match to {
            Destination::Provider(i) => i,
            Destination::Discovered => self.providers.len(),
        }
    }

    /// An error (78) if a lookup in the ASN database failed: the addresses it could not
    /// answer for were taken for no provider's. `then` says what the run did about it.
    pub(crate) fn asn_intact(&self, then: &str) -> Result<()> {
        match (
            &self.settings.asn_db,
            self.asn_db.as_ref().and_then(AsnDb::damage),
        ) {
            (Some(path), Some(damage)) => Err(ConfigError(format!(
                "asn_db {}: the file is damaged: {damage}; {then}",
                path.display()
            ))
            .into()),
            _ => Ok(()),
        }
    }

    /// The origin AS of `ip`, when an ASN database is configured.
    pub(crate) fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn_db
            .as_ref()
            .and_then(|db| db.lookup(ip))
            .map(|a| a.asn)
    }

    /// The time before which a packet is history (`max_age_days`), if there is a limit.
    /// Whether a source last seen at `last_seen` passes `max_age_days` within a day: not
    /// reported by then, it becomes history.
    pub(crate) fn ages_out_within_a_day(&self, last_seen: i64) -> bool {
        self.fresh_since()
            .is_some_and(|t| last_seen < t.saturating_add(24 * 3600))
    }

    pub(crate) fn fresh_since(&self) -> Option<i64> {
        let days = self.settings.report.max_age_days;
        (days > 0).then(|| days_before(self.now, days).timestamp())
    }

    /// A digest of everything that decides which stored IPs are in a delta: the providers
    /// and their ranges and ASN files (by size and time), and the report settings. A settled
    /// marker counts only under the same digest.
    pub(crate) fn selection_key(&self) -> String {
        use sha2::Digest;
        let settings = self.settings;
        let mut h = sha2::Sha256::new();
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(format!("{:?}", settings.providers));
        h.update(format!("{:?}", settings.report));
        h.update(format!("{:?}", settings.aws_api.as_ref().map(|a| a.test)));
        h.update(format!("{:?}", self.discover));
        let files = settings
            .providers
            .iter()
            .filter_map(|p| p.ranges.as_ref())
            .chain(&settings.asn_db);
        for file in files {
            // The change time and inode too: a file replaced by one of the same size with its
            // time set back (`cp -p`, `rsync -t`) is another file all the same.
            let stamp = std::fs::metadata(file).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                (m.len(), modified, m.ino(), m.ctime(), m.ctime_nsec())
            });
            h.update(format!("{file:?} {stamp:?}"));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest of what shapes the text of a report to `desk` (a provider's name, or a
    /// discovered desk's key): its templates and the `[report]` settings a message is made
    /// with, its limits included. Reports waiting to be sent again go as they were made; the
    /// run says so when this has changed since (see [`crate::state::State::made_under`]).
    pub(crate) fn made_under(&self, desk: &str) -> String {
        use sha2::Digest;
        let r = &self.settings.report;
        let provider = (!desk.starts_with(crate::state::CONTACT_PREFIX)).then_some(desk);
        let shape = format!(
            "{}\0{:?}\0{:?}\0{:?}\0{}\0{}\0{}\0{}\0{}\0{:?}\0{}",
            self.templates.digest_of(provider),
            r.from,
            r.reply_to,
            r.redact,
            r.sample_seconds,
            r.max_excerpt_lines,
            r.attach_csv,
            r.attach_excerpt,
            r.xarf,
            r.max_ips_per_message,
            r.max_message_bytes,
        );
        let digest = sha2::Sha256::digest(shape.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key [`World::made_under`] is recorded by for `desk`: every discovered desk's
    /// under one.
    pub(crate) fn made_under_key(desk: &str) -> &str {
        if desk.starts_with(crate::state::CONTACT_PREFIX) {
            CONTACT_DESKS
        } else {
            desk
        }
    }

    /// The ledger as the state has it for this run's destinations, through a connection of
    /// its own (see [`Ledger::read`]).
    pub(crate) fn ledger(&self) -> Result<Ledger> {
        let state = State::open_read_only(&self.settings.state_dir)?;
        Ledger::read(self.settings, &self.providers, self.rereport_since(), state)
    }

    /// The times selection measures against.
    pub(crate) fn since(&self) -> Since {
        Since {
            rereport: self.rereport_since().map(|t| t.timestamp()),
            fresh: self.fresh_since(),
        }
    }

    /// The time from which a sent report still counts (`rereport_after_days`).
    pub(crate) fn rereport_since(&self) -> Option<DateTime<Utc>> {
        self.settings
            .report
            .rereport_after_days
            .map(|d| days_before(self.now, d))
    }
}

/// `days` before `now`, or the calendar's start for a span reaching past it.
fn days_before(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    crate::clock::before(now, chrono::Duration::days(i64::from(days)))
}

/// Everything read this run, merged with what was known before.
pub(crate) struct Intake {
    pub(crate) summary: Summary,
    /// Every IP known, or (`partial`) only those a delta can hold this run.
    pub(crate) observations: Observations,
    /// Selection looks at the IPs read and those the ledger moved, under a settled marker.
    pub(crate) partial: bool,
    /// IPs the ledger moved since the marker (resends, re-report windows), or that discovery
    /// held back and are due to be decided again: this run may report them, so the marker
    /// does not hold past it.
    pub(crate) moved: bool,
    /// Addresses discovery held back are due to be decided again by this run, which then
    /// lets go of their times.
    pub(crate) rechecks_due: bool,
    /// The marker as stored, and the digest a new one is written with.
    pub(crate) stored_marker: Option<Settled>,
    pub(crate) selection_key: String,
    /// IPs whose totals changed this run (to store); the only entries of `observations`
    /// that are whole, the others being heads (see [`Intake::whole`]).
    pub(crate) touched: Vec<IpAddr>,
    /// Of `touched`, those no configured provider holds (see [`crate::ingest::Batch::unattributed`]).
    pub(crate) unattributed: Vec<(IpAddr, u32)>,
    pub(crate) cursors: Vec<(String, StoredCursor)>,
    /// Per file source and prefix, the last packet time counted as a hit this run.
    pub(crate) counted: Vec<(String, String, i64)>,
    /// Per desk (see [`World::desk_keys`]): the lines read now worth keeping (fresh, of
    /// addresses not reported), in time order, their text in `spool`.
    pub(crate) evidence: Vec<Vec<KeptLine>>,
    /// The text of the lines read now.
    pub(crate) spool: Spool,
    /// Per desk: its densest window of the lines kept before and these, when it is not the
    /// window kept.
    pub(crate) dense: Vec<Option<Vec<EvidenceLine>>>,
    /// Per desk: the number of the first line this run keeps. The lines numbered below it
    /// were kept by earlier runs; those this run keeps it also holds in memory, so a preview
    /// (which keeps nothing) and a run show the same lines.
    pub(crate) kept_before: Vec<i64>,
    /// Per desk: where in `evidence` each address's lines are (sorted by address, then by
    /// place), made when a report first asks, so that each report part finds its addresses'
    /// lines without looking through every line a flood left.
    by_ip: Vec<std::cell::OnceCell<Vec<u32>>>,
    /// The files that held packet lines dated ahead of the clock, with how many more than a
    /// day ahead and how many less: a log host's operator learns which host's clock (or
    /// zone) to fix.
    pub(crate) ahead_in: Vec<AheadIn>,
}

/// A source's packet lines dated ahead of the clock (see
/// [`crate::ingest::Summary::lines_ahead`] and [`crate::ingest::Summary::lines_soon`]): a file,
/// or `journald`, named as `reread --source` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AheadIn {
    pub(crate) source: String,
    pub(crate) far: u64,
    pub(crate) soon: u64,
}

impl AheadIn {
    /// Those of `source` its read counted, from the counts `before` it and `after`.
    fn of(source: &str, before: &Summary, after: &Summary) -> Option<Self> {
        let far = after.lines_ahead - before.lines_ahead;
        let soon = after.lines_soon - before.lines_soon;
        (far + soon > 0).then(|| AheadIn {
            source: source.to_string(),
            far,
            soon,
        })
    }
}

/// Per prefix of `prefixes`, the last packet time earlier runs counted from `source`, as
/// `counted` ([`State::counted_all`]) holds it: what a read after `reread`, or of a file cut
/// back in place, passes over.
fn counted_of(
    counted: &HashMap<String, HashMap<String, i64>>,
    source: &str,
    prefixes: &[String],
) -> Vec<Option<i64>> {
    let until = counted.get(source);
    (prefixes.iter())
        .map(|p| until.and_then(|u| u.get(p)).copied())
        .collect()
}

/// Notes, per prefix of the source just read, the last packet time counted as a hit: what a
/// later read after `reread` must not count again.
fn keep_counted(
    counted: &mut Vec<(String, String, i64)>,
    scan: &Ingest<'_>,
    key: &str,
    prefixes: &[String],
) {
    for (k, until) in scan.counted_until().iter().enumerate() {
        if let (Some(t), Some(prefix)) = (until, prefixes.get(k)) {
            counted.push((key.to_string(), prefix.clone(), *t));
        }
    }
}

/// Reads the sources and merges what they say with what was known; returns that and the
/// ledger as it stands. The ledger is read when the first packet line needs it (through a
/// connection of its own: the reading threads cannot share the run's), so a run that reads no
/// packet line from a settled state does not read it at all.
pub(crate) fn ingest(
    world: &World<'_>,
    state: Option<&State>,
    options: &Options<'_>,
    leaving_out: &[String],
) -> Result<(Intake, Ledger)> {
    let read = read_again_if_rewritten(options.verbosity, || match state {
        // The read's many small questions (a cursor and a flag for each file of a glob, of
        // which a log host has thousands) share one read transaction: each on its own took
        // and gave back the file's lock.
        Some(s) => s.reading(|| ingest_once(world, state, options, leaving_out)),
        None => ingest_once(world, state, options, leaving_out),
    })?;
    // Addresses a damaged ASN database could not answer for were taken for no provider's (an
    // `asns` provider's reports never made): nothing of the read is kept, and it is read
    // again once the file is mended.
    world.asn_intact(
        "nothing read was kept, and the run reads it again once the file is replaced",
    )?;
    Ok(read)
}

/// `read()` again while a log was rewritten in place during its own read (`copytruncate`
/// then new lines, within the read's milliseconds): that spoils what the run read, of which
/// nothing was kept, and the read starts over from the cursors, which then find the copy.
/// [`READS`] times in a row is no race: the run ends as one to try again later.
fn read_again_if_rewritten<T>(
    verbosity: Verbosity,
    mut read: impl FnMut() -> Result<T>,
) -> Result<T> {
    for _ in 1..READS {
        match read() {
            Err(e) if e.is::<source::RewrittenWhileRead>() => {
                if verbosity == Verbosity::Verbose {
                    crate::output::tell(format_args!("abuse-mailer: {e}: read again"));
                }
            }
            done => return done,
        }
    }
    read().map_err(|e| match e.downcast::<source::RewrittenWhileRead>() {
        Ok(rewritten) => TransientError(format!(
            "{rewritten}, on each of {READS} reads: nothing of this run was kept, and the next run reads it again"
        ))
        .into(),
        Err(other) => other,
    })
}

/// How many times a run reads its sources when a log is rewritten during its read.
const READS: usize = 3;

/// [`ingest`] once.
fn ingest_once(
    world: &World<'_>,
    state: Option<&State>,
    options: &Options<'_>,
    leaving_out: &[String],
) -> Result<(Intake, Ledger)> {
    let verbosity = options.verbosity;
    let settings = world.settings;
    let early: std::sync::OnceLock<Result<Ledger, String>> = std::sync::OnceLock::new();
    // The ledger as it is once the reports `leaving_out` are withdrawn (a preview's).
    let ledger_of_run = || world.ledger().map(|l| l.leaving_out(leaving_out.to_vec()));
    let ledger_now = || early.get_or_init(|| ledger_of_run().map_err(|e| format!("{e:#}")));
    // With `rereport_after_days`, an address reported within the window is reported again
    // once it passes: the lines it sends meanwhile are kept for that report, which would
    // otherwise show none of what it did since.
    let again = settings.report.rereport_after_days.is_some();
    let attribute = |ip: IpAddr| {
        let mut a = Attribution::default();
        let reportable = is_reportable(ip) && !is_ignored(ip, &settings.report.ignore);
        for to in world.route(ip) {
            let bucket = world.bucket(to);
            if let Destination::Provider(_) = to {
                a.in_provider = true;
            }
            // A ledger that cannot be read ends the run after the read (below).
            if reportable
                && ledger_now()
                    .as_ref()
                    .is_ok_and(|l| again || !l.reported(bucket, ip))
            {
                a.candidates.insert(bucket as u32);
            }
        }
        // Only discovery may report it: one line of its own is shown to a desk.
        a.few_lines = !a.in_provider;
        a
    };
    let mut cursors = Vec::new();
    // Each folder of file sources is listed once a run while it does not change.
    let mut folders = source::Folders::default();
    let mut counted = Vec::new();
    let parser = |prefixes: &[String]| LineParser::new(prefixes, settings.zone, world.now);
    // Lines kept past the budget go to a file beside the state (on disk, where the run may
    // write), else in the temporary folder.
    let spool = Spool::new(
        vec![settings.state_dir.clone(), std::env::temp_dir()],
        Spool::budget_from_env()?,
    );
    let mut scan = Ingest::new(
        parser(&[]),
        world.desk_keys().len(),
        settings.report.sample_seconds,
        settings.report.max_excerpt_lines,
        &attribute,
        &spool,
    );
    if let Some(since) = options.since {
        scan.skip_before(since.timestamp());
    }
    let report = &settings.report;
    if let Some(t) = world.fresh_since() {
        scan.stale_before(t);
    }
    scan.stale_after(world.now.timestamp() + crate::parse::CLOCK_SLACK);
    scan.soon_after(world.now.timestamp() + crate::parse::CLOCK_AHEAD_TOLD);
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
    // One file is one file, whatever it is called: read once a run, under one name, and
    // followed across names (see `FileNames::cursor`). Each glob is expanded once.
    let mut matches = Vec::with_capacity(settings.sources.len());
    for source_cfg in &settings.sources {
        matches.push(match &source_cfg.kind {
            SourceKind::File(pattern) => source::expand(pattern)?,
            SourceKind::Journald => Vec::new(),
        });
    }
    let mut names = FileNames::new(
        (settings.sources.iter().zip(&matches))
            .flat_map(|(s, m)| m.iter().map(move |path| (path, s.prefixes.as_slice()))),
        (settings.sources.iter())
            .filter_map(|s| match &s.kind {
                SourceKind::File(p) => Some(p.to_string_lossy().to_string()),
                SourceKind::Journald => None,
            })
            .collect(),
    );
    // Where earlier runs stopped reading each file, told to a read that goes on from its
    // cursor: in the hour a zone's clock shows twice it decides which of the two a line is
    // in. A zone without summer time never needs it.
    // What earlier runs counted, per source and prefix: read once for every file.
    let earlier = match state {
        Some(s) => s.counted_all()?,
        None => HashMap::new(),
    };
    // The zone each source's counted time of each prefix was made in: with `timezone`
    // changed since, a year-less stamp is another instant now than when it was counted.
    let zones = match state {
        Some(s) => s.counted_zones()?,
        None => HashMap::new(),
    };
    // When a run last read each file to its cursor: in the hour shown twice, what lies past
    // it was written after that.
    let read_at = match state {
        Some(s) if settings.zone.may_repeat_times() => s.cursor_times()?,
        _ => HashMap::new(),
    };
    let zone = settings.zone.name();
    let resumed = |key: &str| -> Option<i64> {
        let repeats = settings.zone.may_repeat_times();
        repeats
            .then(|| earlier.get(key)?.values().max().copied())
            .flatten()
    };
    // The files that gave packets this run, with their sources' prefixes: two copies of one
    // log among them are said (see `crate::overlap`).
    let mut with_packets: Vec<(PathBuf, &[String])> = Vec::new();
    let mut ahead_in = Vec::new();
    // The packet lines a journald source read this run, to look for in those files.
    let mut heard: Option<crate::overlap::Heard> = None;
    for (source_cfg, matches) in settings.sources.iter().zip(matches) {
        match &source_cfg.kind {
            SourceKind::Journald => {
                scan.begin_source(parser(&source_cfg.prefixes));
                let key = source_cfg.name();
                let cursor = match state {
                    Some(s) => s.journal_cursor(&key)?,
                    None => None,
                };
                if let Some(s) = state
                    && s.reread_pending(&key)?
                {
                    scan.counted_before(counted_of(&earlier, &key, &source_cfg.prefixes));
                }
                let heard = heard.insert(crate::overlap::Heard::new(&source_cfg.prefixes));
                let before = scan.counted();
                let read = journal::read(cursor.as_deref(), source_cfg.start_at, &mut scan, heard)?;
                // A first read of the history (or one `reread` asked for) with lines and
                // none that carries a prefix: said as for a file, or the cursor moves on
                // past what a wrong prefix missed, unsaid. (Started at the end, a first read
                // takes the last entry alone, for its cursor.)
                let history = match cursor.as_deref() {
                    None => source_cfg.start_at == crate::config::StartAt::Beginning,
                    Some(c) => c == journal::REREAD_ALL || c.starts_with('@'),
                };
                if history && verbosity != Verbosity::Quiet && options.since.is_none() {
                    say_first_read(&key, &source_cfg.prefixes, &before, &scan.counted());
                }
                ahead_in.extend(AheadIn::of(&key, &before, &scan.counted()));
                keep_counted(&mut counted, &scan, &key, &source_cfg.prefixes);
                if let Some(c) = read.filter(|c| Some(c) != cursor.as_ref()) {
                    cursors.push((key, StoredCursor::Journal(c)));
                }
            }
            SourceKind::File(pattern) => {
                let matched_none = matches.is_empty();
                // Matches are regular files; a file only remembered may be something else now.
                let matched: std::collections::HashSet<PathBuf> = matches.iter().cloned().collect();
                let files = files_of(pattern, matches, state)?;
                // A pattern that matches nothing now, where files it matched were read: the
                // logs moved (a changed rsyslog rule, a log host's folder renamed), and the
                // source reads nothing for ever, said on every run as a path gone is.
                if matched_none
                    && verbosity != Verbosity::Quiet
                    && !files.is_empty()
                    && files.iter().all(|f| f != pattern)
                {
                    crate::output::tell(format_args!(
                        "abuse-mailer: warning: source {}: no file matches it now (the files it matched are gone; what they got before they went was read where they went, if found); if the logs moved for good, change the source's path",
                        pattern.display()
                    ));
                }
                for path in files {
                    let key = path.to_string_lossy().to_string();
                    let Some(cursor) = names.cursor(
                        &path,
                        &key,
                        &source_cfg.prefixes,
                        state,
                        &mut cursors,
                        verbosity,
                    )?
                    else {
                        continue;
                    };
                    // A file a glob matched, something else now (a folder, a FIFO, a link
                    // that loops): passed over, where its runs had read kept, said on every
                    // run and under `-q` (its lines are not read). It stopped every run, and
                    // every other file of the glob with it.
                    if path != *pattern
                        && !matched.contains(&path)
                        && let Some(why) = source::no_file_now(&path)
                    {
                        crate::output::tell(format_args!(
                            "abuse-mailer: warning: source {key}: {why}: passed over, where the runs had read it kept; its lines are read once it is a file again"
                        ));
                        continue;
                    }
                    // Each file of a glob is a timeline of its own.
                    scan.begin_source(parser(&source_cfg.prefixes));
                    scan.counted_earlier(counted_of(&earlier, &key, &source_cfg.prefixes));
                    // Read again after `reread`: what an earlier read counted is not counted
                    // twice (a packet logged up to the last one counted, per prefix).
                    // That holds up to where the runs before `reread` had read: past it, no run
                    // read.
                    let (reread, through) = match (state, cursor.as_ref()) {
                        (Some(s), Some(c)) => {
                            let mark = s.reread_mark(&key)?;
                            (c.is_reread() || mark.is_some(), mark.flatten())
                        }
                        _ => (false, None),
                    };
                    if reread {
                        scan.counted_before(counted_of(&earlier, &key, &source_cfg.prefixes));
                        let made_in = zones.get(&key);
                        scan.counted_in_another_zone(
                            (source_cfg.prefixes.iter())
                                .map(|p| made_in.and_then(|z| z.get(p)).is_some_and(|z| *z != zone))
                                .collect(),
                        );
                    } else if cursor.is_some() {
                        // It goes on where a run stopped (one read again from its start
                        // follows nothing known), under this name or the one it took over.
                        let old = names.taken_over.get(&key);
                        scan.follows(resumed(&key).or_else(|| resumed(old?)));
                        let at = |k: &str| read_at.get(k).copied();
                        scan.not_before(at(&key).or_else(|| at(old?)));
                    }
                    let before = scan.counted();
                    let read = source::read(
                        &path,
                        cursor.as_ref(),
                        through.as_ref(),
                        source_cfg.start_at,
                        &mut scan,
                        &mut folders,
                    )
                    .map_err(|e| {
                        // Absent (a link to nothing, a file where a folder should be on the
                        // way), not out of the run's reach: a folder on the way the run's user
                        // may not enter hides the file from `exists()` too.
                        let absent = std::fs::metadata(&path).is_err_and(|e| {
                            matches!(
                                e.kind(),
                                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                            )
                        });
                        if cursor.is_none() && absent {
                            anyhow::Error::from(ConfigError(one_line(&e)))
                        } else {
                            e
                        }
                    })?;
                    if verbosity == Verbosity::Verbose {
                        crate::output::tell(format_args!(
                            "abuse-mailer: source {key}: {}",
                            read.decision
                        ));
                    }
                    // Said under `-q` too, as errors are, and once: lines lost for good (a
                    // run from cron says nothing else).
                    for lost in &read.lost {
                        crate::output::tell(format_args!("abuse-mailer: warning: {lost}"));
                    }
                    if verbosity != Verbosity::Quiet {
                        // Said on every run that lists them, so not under `-q`, which cron
                        // would mail every quarter of an hour for as long as they are kept.
                        for warning in &read.warnings {
                            crate::output::tell(format_args!("abuse-mailer: warning: {warning}"));
                        }
                        // Unattended, a log that moved for good (a changed rsyslog rule, a
                        // disk not mounted) would read nothing for ever: said on every run
                        // but under `-q` (a daemon makes its file anew with its next line,
                        // which on a quiet host may be hours after a rotation). A file a
                        // pattern matched is let go of when it goes (a host retired, a dated
                        // file past its retention): only a path is said.
                        let literal = matches!(&source_cfg.kind, SourceKind::File(p) if *p == path);
                        if literal && matches!(read.decision, source::Decision::Missing(_)) {
                            crate::output::tell(format_args!(
                                "abuse-mailer: warning: source {key}: no file at the path now; what its last file got was read where it went, if found (if the log moved for good, change the source's path)"
                            ));
                        }
                        let first = cursor.as_ref().is_none_or(source::Cursor::is_reread);
                        if first && options.since.is_none() {
                            say_first_read(&key, &source_cfg.prefixes, &before, &scan.counted());
                        }
                    }
                    // A cursor taken over keeps what its old name counted: a `reread` under
                    // the new name passes over those packets too.
                    if let Some(old) = names.taken_over.get(&key) {
                        for (prefix, until) in earlier.get(old).into_iter().flatten() {
                            if source_cfg.prefixes.contains(prefix) {
                                counted.push((key.clone(), prefix.clone(), *until));
                            }
                        }
                    }
                    keep_counted(&mut counted, &scan, &key, &source_cfg.prefixes);
                    let after = scan.counted();
                    if after.lines_matched > before.lines_matched {
                        with_packets.push((path.clone(), &source_cfg.prefixes));
                    }
                    ahead_in.extend(AheadIn::of(&key, &before, &after));
                    // An unchanged cursor is not written again: a quiet run commits nothing.
                    if let Some(c) = read.cursor.filter(|c| {
                        Some(c) != cursor.as_ref() || names.taken_over.contains_key(&key)
                    }) {
                        cursors.push((key, StoredCursor::File(c)));
                    }
                }
            }
        }
    }
    if verbosity != Verbosity::Quiet {
        let tail = crate::overlap::RUN_TAIL_BYTES;
        let files = (with_packets.len() > 1)
            .then(|| crate::overlap::shared_packets(&with_packets, tail))
            .flatten();
        let journal = (heard.as_ref())
            .filter(|h| !h.is_empty() && !with_packets.is_empty())
            .and_then(|h| h.copied_in(&with_packets, tail));
        for shared in files.iter().chain(&journal) {
            crate::output::tell(format_args!("abuse-mailer: warning: {shared}"));
        }
    }
    let mut batch = scan.finish().map_err(crate::spool::read_back_failed)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some((dir, bytes)) = spool.set_aside()
        && verbosity == Verbosity::Verbose
    {
        crate::output::tell(format_args!(
            "abuse-mailer: {bytes} bytes of log lines kept as evidence set aside in {} (a file with no name)",
            dir.display()
        ));
    }
    if let Some(why) = spool.failure()
        && verbosity != Verbosity::Quiet
    {
        crate::output::tell(format_args!(
            "abuse-mailer: warning: log lines kept as evidence could not be set aside on disk ({why}); they are held in memory"
        ));
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
    // Under a marker, the heads (address, packets, times) of the stored observations of the
    // addresses read: how the count of those `min_hits` holds back moves.
    let mut earlier: Vec<Observation> = Vec::new();
    let mut touched: Vec<IpAddr> = observations.ips().collect();
    crate::ingest::sort_addresses(&mut touched);
    let fresh = world.fresh_since();
    if let Some(s) = state {
        s.reading(|| {
            for o in observations.iter_mut() {
                if let Some(known) = s.observation(o.ip)? {
                    if marker.is_some() {
                        let mut head = Observation::new(known.ip, known.first_seen);
                        head.last_seen = known.last_seen;
                        head.hits = known.hits;
                        earlier.push(head);
                    }
                    // Packets all older than `max_age_days` are history: they count towards
                    // `min_hits` no more than stale lines read now do, and a report made on
                    // the new ones does not reach back to them.
                    if fresh.is_some_and(|t| known.last_seen < t) {
                        continue;
                    }
                    let mut merged = known;
                    merged.merge(o);
                    *o = merged;
                }
            }
            Ok(())
        })?;
        if marker.is_none() {
            s.add_observation_heads(&mut observations)?;
        }
    }
    let mut moved = false;
    // Addresses discovery held back whose time to be decided again has come.
    let due = match state {
        Some(s) => s.contact_rechecks_due(world.now.timestamp())?,
        None => Vec::new(),
    };
    if let (Some(s), Some(m)) = (state, &marker) {
        // Reports waiting to be sent again may be refused, giving their IPs back.
        let mut extra: Vec<IpAddr> = s.pending_ips()?;
        // Reports that left the re-report window since the marker free their IPs.
        if let Some(days) = settings.report.rereport_after_days {
            let at = DateTime::<Utc>::from_timestamp(m.at, 0).unwrap_or(world.now);
            let (from, to) = (days_before(at, days), days_before(world.now, days));
            if from < to {
                for key in world.desk_keys() {
                    extra.extend(s.leaving_window(key, &utc_text(from), &utc_text(to))?);
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
        // Addresses discovery held back, when what held them may have changed; one no longer
        // observed moves nothing, and the run lets its time go.
        for &ip in &due {
            if observations.contains(&ip) {
                moved = true;
            } else if let Some(o) = s.observation(ip)? {
                observations.add(o);
                moved = true;
            }
        }
    }

    // Nothing read and nothing moved under a marker: no delta, and the evidence stays as
    // stored; neither the ledger nor the evidence is needed.
    let quiet = marker.is_some() && touched.is_empty() && !moved;
    let ledger = match early.into_inner() {
        // Read while the log was, its error kept as text: named as the state's, as the
        // database's own errors are.
        Some(read) => read.map_err(|e| match state {
            Some(s) => crate::state::named_as_the_states(s.path(), &e),
            None => anyhow::Error::msg(e),
        })?,
        None if quiet => Ledger::none(world.desk_keys().len()),
        None => ledger_of_run()?,
    };
    // The lines read now worth keeping, and the desk's densest window of them and of the one
    // kept before. The lines kept before are not read here: a report reads its addresses'
    // own (see [`Intake::evidence_for`]), so that a run costs what it read, not every line
    // kept since a flood.
    let mut evidence = Vec::new();
    let mut dense = Vec::new();
    let mut kept_before = Vec::new();
    for (i, key) in world.desk_keys().into_iter().enumerate() {
        if quiet {
            // This run keeps no line: every line kept is an earlier run's.
            evidence.push(Vec::new());
            dense.push(None);
            kept_before.push(i64::MAX);
            continue;
        }
        kept_before.push(match state {
            Some(s) => s.next_evidence_seq(key)?,
            None => 0,
        });
        // Neither reported addresses' lines nor history are evidence any more; but with
        // `rereport_after_days` an address reported within the window keeps the lines it
        // sends meanwhile for its next report, which would otherwise show none of them. The
        // desk's window is of the addresses it may get now.
        let fresh = world.fresh_since();
        let again = settings.report.rereport_after_days.is_some();
        // A reported address's line logged at or before what its report counted (a log
        // host's late lines) is no evidence of what it did since: kept, it would take the
        // place of one that is. (Once its re-report is due, a late line is kept as any line
        // of an address to report is: left out there, the run stored other lines than its
        // preview showed.)
        let since_report = |ip: IpAddr, time: i64| {
            (ledger.last_sent(i, ip)).is_none_or(|b| time > b.counted_through())
        };
        let wanted =
            |ip: IpAddr, time: i64| !ledger.reported(i, ip) && fresh.is_none_or(|t| time >= t);
        let kept = |ip: IpAddr, time: i64| {
            fresh.is_none_or(|t| time >= t)
                && (!ledger.reported(i, ip) || (again && since_report(ip, time)))
        };
        let mut lines = std::mem::take(&mut batch.evidence[i]);
        lines.retain(|l| kept(l.ip, l.time));
        // Stable: lines of one second keep their log order.
        lines.sort_by_key(|l| l.time);
        let now_wanted: std::borrow::Cow<'_, [KeptLine]> = match again {
            true => (lines.iter())
                .filter(|l| wanted(l.ip, l.time))
                .copied()
                .collect::<Vec<_>>()
                .into(),
            false => lines.as_slice().into(),
        };
        let stored = match state {
            Some(s) => s.dense_evidence(key)?,
            None => Vec::new(),
        };
        let before: Vec<EvidenceLine> = (stored.iter())
            .filter(|l| wanted(l.ip, l.time))
            .cloned()
            .collect();
        let window = excerpt::densest_of_both(
            &before,
            &now_wanted,
            &spool,
            settings.report.sample_seconds,
            settings.report.max_excerpt_lines,
        )
        .map_err(crate::spool::read_back_failed)?
        .map(|w| w.lines)
        .unwrap_or_default();
        dense.push((window != stored).then_some(window));
        evidence.push(lines);
    }
    let mut intake = Intake {
        summary: batch.summary,
        observations,
        partial: marker.is_some(),
        moved,
        rechecks_due: !due.is_empty(),
        stored_marker,
        selection_key,
        touched,
        unattributed: std::mem::take(&mut batch.unattributed),
        cursors,
        counted,
        by_ip: evidence
            .iter()
            .map(|_| std::cell::OnceCell::new())
            .collect(),
        evidence,
        spool,
        dense,
        kept_before,
        ahead_in,
    };
    let fresh = world.fresh_since();
    intake.summary.ips_below_min_hits = match &marker {
        None => count_below_min_hits(world, fresh, intake.observations.iter(), &ledger),
        // The IPs read are the only ones whose hits changed: the count moves by theirs, each
        // taken out as the run that read it last counted it, when its packets were fresh (they
        // may have grown too old since, and it was counted all the same).
        Some(m) => {
            let now = (intake.touched.iter()).filter_map(|ip| intake.observations.get(ip));
            (m.below_min_hits + count_below_min_hits(world, fresh, now, &ledger))
                .saturating_sub(count_below_min_hits(world, None, earlier.iter(), &ledger))
        }
    };
    ledger.check()?;
    Ok((intake, ledger))
}

impl Intake {
    /// Takes the observations `gone`, let go of as history, out of the count of addresses
    /// `min_hits` holds back, which under a settled marker counted them as they were read.
    pub(crate) fn let_go(&mut self, world: &World<'_>, ledger: &Ledger, gone: &[Observation]) {
        if self.partial {
            let held = count_below_min_hits(world, None, gone.iter(), ledger);
            let count = &mut self.summary.ips_below_min_hits;
            *count = count.saturating_sub(held);
        }
    }

    /// Of the observations `gone`, let go of as history, those a provider's desk never got,
    /// counted per provider (in configuration order, those with none left out): addresses
    /// that waited for a run to report them (a sending budget, a host down for weeks) and
    /// passed `max_age_days` first. A run said they would wait; this says they are lost. Not
    /// those a provider reported to through the AWS API is never sent (XARF cannot tell
    /// them).
    pub(crate) fn never_reported(
        world: &World<'_>,
        ledger: &Ledger,
        gone: &[Observation],
    ) -> Vec<(String, usize)> {
        if !ledger.knows() {
            return Vec::new();
        }
        let report = &world.settings.report;
        let mut lost = vec![0usize; world.providers.len()];
        let reportable = |o: &&Observation| {
            o.hits >= report.min_hits && is_reportable(o.ip) && !is_ignored(o.ip, &report.ignore)
        };
        for o in gone.iter().filter(reportable) {
            for to in world.route(o.ip).iter() {
                let Destination::Provider(i) = *to else {
                    continue;
                };
                // The API takes only what XARF can tell (a source seen over ICMP alone is
                // not reported through it, as every run says).
                let api =
                    world.providers[i].config.delivery == crate::config::Delivery::AwsAbuseApi;
                if api && !crate::xarf::tells(o) {
                    continue;
                }
                let bucket = world.bucket(*to);
                if !ledger.reported(bucket, o.ip) && ledger.last_sent(bucket, o.ip).is_none() {
                    lost[i] += 1;
                }
            }
        }
        (world.providers.iter().zip(lost))
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| (p.name().to_string(), n))
            .collect()
    }

    /// The evidence of `ips` for desk number `bucket`: their lines kept by earlier runs, read
    /// from the state address by address, those read now, and the desk's densest window as it
    /// stands after this run. A packet in several of these is one line; within a second, the
    /// lines kept earlier come first, then those read now in the order read.
    pub(crate) fn evidence_for(
        &self,
        world: &World<'_>,
        bucket: usize,
        ips: &[IpAddr],
        state: Option<&State>,
    ) -> Result<Vec<EvidenceLine>> {
        let key = world.desk_keys()[bucket];
        let (own_before, window_before) = match state {
            Some(s) => s.evidence_of(key, ips, world.fresh_since(), self.kept_before[bucket])?,
            None => (Vec::new(), Vec::new()),
        };
        let window = match &self.dense[bucket] {
            Some(moved) => {
                let wanted: std::collections::HashSet<IpAddr> = ips.iter().copied().collect();
                moved
                    .iter()
                    .filter(|l| wanted.contains(&l.ip))
                    .cloned()
                    .collect()
            }
            None => window_before,
        };
        // Lines kept by earlier runs and lines read now are different packets, however alike
        // (a packet is read once); the window's lines are copies of some of them.
        let read_now = self.read_now_of(bucket, ips)?;
        let mut own = match state.is_some() && self.kept_before[bucket] != i64::MAX {
            true => as_stored(own_before, &read_now, own_lines_kept(key)),
            false => own_before,
        };
        own.extend(read_now);
        Ok(excerpt::union(own, window))
    }

    /// The lines read now of `ips` for desk number `bucket`, in the order held.
    fn read_now_of(&self, bucket: usize, ips: &[IpAddr]) -> Result<Vec<EvidenceLine>> {
        let lines = &self.evidence[bucket];
        let by_ip = self.by_ip[bucket].get_or_init(|| by_address(lines));
        (lines_of(lines, by_ip, ips).iter())
            .map(|l| self.spool.line(l))
            .collect::<std::io::Result<_>>()
            .map_err(crate::spool::read_back_failed)
    }

    /// For desk number `bucket`, whether [`Intake::evidence_for`] would give an address a
    /// line: read now, in the window made now, or kept by an earlier run. What does not
    /// change from one address to the next is worked out once.
    pub(crate) fn has_evidence<'a>(
        &'a self,
        world: &World<'_>,
        bucket: usize,
        state: Option<&'a State>,
    ) -> impl FnMut(IpAddr) -> Result<bool> + 'a {
        let read_now: std::collections::HashSet<IpAddr> = self.evidence[bucket]
            .iter()
            .map(|l| l.ip)
            .chain(self.dense[bucket].iter().flatten().map(|l| l.ip))
            .collect();
        let key = world.desk_keys()[bucket].to_string();
        let since = world.fresh_since();
        let (before, window) = (self.kept_before[bucket], self.dense[bucket].is_none());
        move |ip| {
            if read_now.contains(&ip) {
                return Ok(true);
            }
            match state {
                Some(s) => s.has_evidence(&key, ip, since, before, window),
                None => Ok(false),
            }
        }
    }

    /// `f` of the whole observation of `ip` (as [`Intake::whole`] finds it), without a copy
    /// of one held in memory.
    pub(crate) fn with_whole<T>(
        &self,
        ip: IpAddr,
        state: Option<&State>,
        f: impl FnOnce(&Observation) -> T,
    ) -> Result<Option<T>> {
        let in_memory = state.is_none() || self.touched.binary_search(&ip).is_ok();
        if in_memory {
            return Ok(self.observations.get(&ip).map(f));
        }
        Ok(self.whole(ip, state)?.as_ref().map(f))
    }

    /// The whole observation of `ip`: as merged this run, or as stored.
    pub(crate) fn whole(&self, ip: IpAddr, state: Option<&State>) -> Result<Option<Observation>> {
        if self.touched.binary_search(&ip).is_ok() {
            return Ok(self.observations.get(&ip).cloned());
        }
        match state {
            Some(s) => s.observation(ip),
            None => Ok(self.observations.get(&ip).cloned()),
        }
    }
}

/// Where in `lines` each address's lines are: their places, sorted by address, then place.
fn by_address(lines: &[KeptLine]) -> Vec<u32> {
    // Four bytes a place: a flood's run holds millions of lines. (Four billion lines would
    // not fit in memory long before a place of 32 bits ran out.)
    let mut order: Vec<u32> = (0..lines.len()).map(|i| i as u32).collect();
    // Each place once: an unstable sort gives the one order, without a buffer as large.
    order.sort_unstable_by_key(|&i| (lines[i as usize].ip, i));
    order
}

/// The lines of `ips` among `lines`, in their order there, found through `by_ip`
/// ([`by_address`] of `lines`) one search an address.
fn lines_of(lines: &[KeptLine], by_ip: &[u32], ips: &[IpAddr]) -> Vec<KeptLine> {
    let mut places: Vec<u32> = Vec::new();
    for ip in ips {
        let from = by_ip.partition_point(|&i| lines[i as usize].ip < *ip);
        places.extend((by_ip[from..].iter()).take_while(|&&i| lines[i as usize].ip == *ip));
    }
    places.sort_unstable();
    places.dedup();
    places.into_iter().map(|i| lines[i as usize]).collect()
}

/// Who a report on an address goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Destination {
    /// A configured provider, by its place in the configuration.
    Provider(usize),
    /// The abuse desk of the address's network, which discovery looks up.
    Discovered,
}

/// Where addresses go, as [`World::route`] decided it, each once.
///
/// Each address's destinations are kept as one bit each (a flood's million addresses are
/// asked about): bit `i` for provider number `i`, the top bit for discovery. A provider past
/// the 63rd is asked about afresh each time.
pub(crate) struct Routes<'w, 's> {
    world: &'w World<'s>,
    known: std::cell::RefCell<HashMap<IpAddr, u64>>,
    /// One destination: each address is asked about once, and nothing is kept (a table of a
    /// flood's million routes is tens of megabytes).
    asked_once: bool,
}

impl Routes<'_, '_> {
    /// The bit of a destination, if it has one.
    fn bit(to: Destination) -> Option<u64> {
        match to {
            Destination::Provider(i) if i < 63 => Some(1 << i),
            Destination::Provider(_) => None,
            Destination::Discovered => Some(1 << 63),
        }
    }

    /// Whether a report on `ip` goes to `to`.
    pub(crate) fn goes(&self, ip: IpAddr, to: Destination) -> bool {
        let Some(bit) = Self::bit(to).filter(|_| !self.asked_once) else {
            return self.world.route(ip).contains(&to);
        };
        let bits = *self.known.borrow_mut().entry(ip).or_insert_with(|| {
            self.world
                .route(ip)
                .iter()
                .filter_map(|&d| Self::bit(d))
                .fold(0, |bits, b| bits | b)
        });
        bits & bit != 0
    }
}

/// How many of its own lines an address keeps for desk `desk`: one for the desks discovery
/// finds (an address only they may get is most often one of a spoofed flood's), else
/// [`crate::ingest::LINES_PER_IP`].
pub(crate) fn own_lines_kept(desk: &str) -> usize {
    if desk == crate::state::CONTACT_DESKS {
        1
    } else {
        crate::ingest::LINES_PER_IP
    }
}

/// An address's own lines kept by earlier runs (`kept`, in the order kept) as the state holds
/// them once the lines `read_now` are stored: an address with `per_ip` lines kept that reads
/// a line earlier than them all keeps it in place of its latest (see
/// [`State::commit_ingest`]). A run has stored them when it asks; a preview, which stores
/// nothing, shows the same lines.
fn as_stored(
    mut kept: Vec<EvidenceLine>,
    read_now: &[EvidenceLine],
    per_ip: usize,
) -> Vec<EvidenceLine> {
    let mut earliest_now: HashMap<IpAddr, i64> = HashMap::new();
    for l in read_now {
        let t = earliest_now.entry(l.ip).or_insert(l.time);
        *t = (*t).min(l.time);
    }
    let mut by_ip: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (i, l) in kept.iter().enumerate() {
        by_ip.entry(l.ip).or_default().push(i);
    }
    let mut given_way: Vec<usize> = (by_ip.iter())
        .filter(|(ip, at)| {
            let least = at.iter().map(|&i| kept[i].time).min();
            at.len() >= per_ip
                && least.is_some_and(|least| earliest_now.get(ip).is_some_and(|&t| t < least))
        })
        // The latest, of equal times the one kept last.
        .filter_map(|(_, at)| at.iter().copied().max_by_key(|&i| (kept[i].time, i)))
        .collect();
    given_way.sort_unstable();
    for i in given_way.into_iter().rev() {
        kept.remove(i);
    }
    kept
}

/// How many addresses `min_hits` holds back this run, for the summary: those it holds back
/// from a destination they were not reported to yet.
fn count_below_min_hits<'o>(
    world: &World<'_>,
    fresh: Option<i64>,
    observations: impl Iterator<Item = &'o Observation>,
    ledger: &Ledger,
) -> u64 {
    let report = &world.settings.report;
    observations
        .filter(|o| crate::select::held_by_min_hits(o, fresh, report))
        .filter(|o| {
            world
                .route(o.ip)
                .iter()
                .any(|to| !ledger.reported(world.bucket(*to), o.ip))
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads spoilt by a log rewritten during them are done again, up to three in all; a
    /// run whose every read is spoilt ends as one to try later (75), and any other error is
    /// the run's at once.
    #[test]
    fn a_read_spoilt_by_a_rewritten_log_is_done_again_three_times_at_most() {
        let spoilt =
            || anyhow::Error::from(source::RewrittenWhileRead(PathBuf::from("/var/log/x")));
        let mut calls = 0;
        let got = read_again_if_rewritten(Verbosity::Quiet, || {
            calls += 1;
            if calls < 3 { Err(spoilt()) } else { Ok(calls) }
        });
        assert_eq!(got.unwrap(), 3);
        let mut calls = 0;
        let got = read_again_if_rewritten(Verbosity::Quiet, || -> Result<()> {
            calls += 1;
            Err(spoilt())
        });
        let e = got.unwrap_err();
        assert_eq!(calls, READS);
        assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_TEMPFAIL);
        assert!(e.to_string().contains("/var/log/x"), "{e}");
        let mut calls = 0;
        let got = read_again_if_rewritten(Verbosity::Quiet, || -> Result<()> {
            calls += 1;
            Err(anyhow::anyhow!("disk gone"))
        });
        assert_eq!(
            (calls, got.unwrap_err().to_string()),
            (1, "disk gone".to_string())
        );
    }

    #[test]
    pub(crate) fn progress_bar_only_on_a_terminal_for_a_long_read() {
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

    proptest::proptest! {
        /// Finding an address's lines through the index gives what looking at every line does.
        #[test]
        fn lines_found_by_address_are_those_a_full_look_finds(
            raw in proptest::collection::vec((0u8..6, 0i64..5), 0..40),
            asked in proptest::collection::vec(0u8..8, 0..6),
        ) {
            let ip = |n: u8| IpAddr::from([3, 5, 140, n]);
            let spool = Spool::in_memory();
            let lines: Vec<KeptLine> = raw
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    let line = EvidenceLine { time: *t, ip: ip(*n), text: format!("line {i}") };
                    KeptLine::keep(&spool, &line)
                })
                .collect();
            let ips: Vec<IpAddr> = asked.iter().map(|n| ip(*n)).collect();
            let plain: Vec<KeptLine> =
                lines.iter().filter(|l| ips.contains(&l.ip)).copied().collect();
            proptest::prop_assert_eq!(lines_of(&lines, &by_address(&lines), &ips), plain);
        }
    }
}
