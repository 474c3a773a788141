//! The state database (`state_dir/state.db`, SQLite): the tool's memory between runs.
//!
//! It holds the cursor of each source, what was observed per IP, the evidence lines kept for
//! the next excerpt, and the ledger of reports with their IPs and exact message bytes. Schema
//! changes are numbered migrations (`PRAGMA user_version`); a file that is not ours
//! (`PRAGMA application_id`) or is newer than this binary is refused, never reset.
//!
//! Times are stored in UTC: Unix seconds for log times, RFC 3339 text for the ledger.
//!
//! A state is made whole under a temporary name and linked into place, so a `state.db` that
//! exists is never empty: an empty or unreadable one is an error, never a fresh start (that
//! would send every report again). It runs in WAL mode, so readers (`history`, an operator's
//! `sqlite3`) neither wait for a run nor make it wait, and every connection waits a bounded
//! time for a lock instead of failing at once.
//!
//! Nothing is sent unless its outcome can be recorded: before each send an [`Attempt`] holds
//! the write lock (no other process can take it until the outcome is in) and space on the disk
//! (`state.reserve`, a file given back to record an outcome the full disk would refuse).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::enrich::Reported;
use crate::excerpt::EvidenceLine;
use crate::ingest::{Observation, Observations, SmallSet};
use crate::source::Cursor;
use crate::spool::{KeptLine, Spool};

mod contact_cache;
pub use contact_cache::{CachedContact, ReadThrough};

/// Reports to a contact that discovery found are filed under `contact:<address>` where a
/// provider's are filed under its name (which can hold no `:`).
pub const CONTACT_PREFIX: &str = "contact:";

/// The ledger key that stands for every discovered contact at once: an address reported to one
/// of them is not reported to another by discovery, and their evidence is kept together.
pub const CONTACT_DESKS: &str = "contact:%";

/// The ledger key of a discovered contact.
pub fn contact_key(address: &str) -> String {
    format!("{CONTACT_PREFIX}{address}")
}

/// `r.provider` matched against a ledger key: one provider or contact, or every contact.
fn desk_condition(key: &str) -> &'static str {
    if key == CONTACT_DESKS {
        "r.provider LIKE ?1"
    } else {
        "r.provider = ?1"
    }
}

/// The addresses of a destination's reports that keep them from being reported there again
/// (`?1` the destination, `?2` the re-report window's start, `?3` reports left out, as JSON).
fn reported_sql(provider: &str) -> String {
    format!(
        "SELECT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
         WHERE {} AND (r.status IN ('sending', 'failed')
                       OR (r.status = 'sent' AND (?2 IS NULL OR COALESCE(r.sent_at, r.created_at) >= ?2)))
           AND r.id NOT IN (SELECT value FROM json_each(?3))",
        desk_condition(provider)
    )
}

/// The addresses of a destination's reports refused for good that stay reported there (see
/// [`State::rejected_ips`]; `?1` the destination, `?2` the window's start).
fn rejected_sql(provider: &str) -> String {
    // Of a provider, only what the API itself refused: a mail report refused because the
    // provider's delivery changed gives its addresses back (its recipients are mail
    // addresses; an API report's is the endpoint's URL). A report withdrawn unsent because
    // the configuration changed was refused by nobody: its addresses are free.
    format!(
        "SELECT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
         WHERE {} AND r.status = 'rejected' AND (?2 IS NULL OR r.created_at >= ?2)
           AND (r.recipients LIKE '%://%' OR ?1 = '{CONTACT_DESKS}')
           AND {}",
        desk_condition(provider),
        not_withdrawn("r"),
    )
}

/// SQL: report `r` (an alias) was not withdrawn unsent because the configuration changed (see
/// [`crate::ledger::WITHDRAWN`]): nobody refused it.
pub(crate) fn not_withdrawn(r: &str) -> String {
    let marker = crate::ledger::WITHDRAWN;
    format!(
        "({r}.last_error IS NULL OR substr({r}.last_error, 1, {}) <> '{marker}')",
        marker.len()
    )
}

/// A ledger query over `report_ip i JOIN report r` asked of the one address bound as `?n`:
/// from the address's rows through its index, then their reports (CROSS JOIN keeps that
/// order). SQLite would otherwise start from every report of the destination, and a run
/// that asks about a few addresses would walk the history for each.
fn of_one_address(sql: &str, n: usize) -> String {
    let address_first = sql.replacen(
        "FROM report_ip i JOIN report r",
        "FROM report_ip i CROSS JOIN report r",
        1,
    );
    format!("{address_first} AND i.ip = ?{n} LIMIT 1")
}

/// The cursors of a file by its device and inode, newest first: asked of every name a run
/// has no cursor for, through the `cursor_by_file` index.
fn cursors_of_file_sql(version: i64) -> String {
    format!(
        "SELECT {}, source FROM cursor
         WHERE dev = ?1 AND ino = ?2 AND journal IS NULL ORDER BY updated_at DESC, source",
        cursor_columns(version)
    )
}

/// The addresses of the reports waiting to be sent again: the few waiting reports first, then
/// their addresses (CROSS JOIN keeps that order). The other way round walks every address
/// ever reported, on every run, a quiet one too.
const PENDING_IPS: &str =
    "SELECT DISTINCT i.ip FROM report r CROSS JOIN report_ip i ON i.report_id = r.id
     WHERE r.status IN ('sending', 'failed')";

/// `ABML` in ASCII: marks the file as ours.
const APPLICATION_ID: i32 = 0x4142_4d4c;

/// The SQL of [`HANDED_BEFORE_20`], which migration 20 is written with too.
macro_rules! handed_before_20 {
    () => {
        "CASE WHEN attempts = 1 AND status = 'failed'
              AND (last_error LIKE '%refused the sender%' OR last_error LIKE '%Connection refused%')
         THEN 0 ELSE attempts END"
    };
}

/// Each migration takes the schema from its index to the next version.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE cursor (
    source      TEXT PRIMARY KEY,
    dev         INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    fingerprint BLOB NOT NULL,
    offset      INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE observation (
    ip         TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    hits       INTEGER NOT NULL,
    protocols  TEXT NOT NULL,
    dst_ports  TEXT NOT NULL,
    src_ports  TEXT NOT NULL,
    dsts       TEXT NOT NULL,
    hosts      TEXT NOT NULL
);
CREATE TABLE evidence (
    provider TEXT NOT NULL,
    time     INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ip       TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (provider, seq)
);
CREATE TABLE report (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'rejected')),
    created_at   TEXT NOT NULL,
    sent_at      TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    server_reply TEXT,
    message      BLOB NOT NULL
);
CREATE TABLE report_ip (
    report_id  TEXT NOT NULL REFERENCES report(id),
    ip         TEXT NOT NULL,
    hits       INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (report_id, ip)
);
CREATE INDEX report_ip_by_ip ON report_ip (ip);
CREATE INDEX report_by_provider ON report (provider, created_at);
"#,
    // 2: journald sources remember the journal's own cursor.
    "ALTER TABLE cursor ADD COLUMN journal TEXT;",
    // 3: a cursor remembers the rotated files that existed when it was taken (JSON).
    "ALTER TABLE cursor ADD COLUMN known_siblings TEXT;",
    // 4: evidence is pruned by IP when a report takes it.
    "CREATE INDEX evidence_by_ip ON evidence (provider, ip);",
    // 5: facts about the state itself, such as the configuration file that runs on it.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 6: a report sent to an API keeps the intake's id and what the intake
    // last said about it (status, reason, its description, when that changed), and whether
    // it was a test the intake validated without acting on it.
    r#"
ALTER TABLE report ADD COLUMN remote_id TEXT;
ALTER TABLE report ADD COLUMN remote_status TEXT;
ALTER TABLE report ADD COLUMN remote_reason TEXT;
ALTER TABLE report ADD COLUMN remote_description TEXT;
ALTER TABLE report ADD COLUMN remote_changed_at TEXT;
ALTER TABLE report ADD COLUMN remote_test INTEGER NOT NULL DEFAULT 0;
CREATE INDEX report_by_remote_status ON report (remote_status) WHERE remote_id IS NOT NULL;
"#,
    // 7: observations and the addresses of reports are stored in their key's own b-tree,
    // not in a table beside an index holding the key again: a third less per address.
    r#"
CREATE TABLE observation_7 (
    ip         TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    hits       INTEGER NOT NULL,
    protocols  TEXT NOT NULL,
    dst_ports  TEXT NOT NULL,
    src_ports  TEXT NOT NULL,
    dsts       TEXT NOT NULL,
    hosts      TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO observation_7
    SELECT ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports, dsts, hosts
    FROM observation;
DROP TABLE observation;
ALTER TABLE observation_7 RENAME TO observation;
CREATE TABLE report_ip_7 (
    report_id  TEXT NOT NULL REFERENCES report(id),
    ip         TEXT NOT NULL,
    hits       INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (report_id, ip)
) WITHOUT ROWID;
INSERT INTO report_ip_7
    SELECT report_id, ip, hits, first_seen, last_seen FROM report_ip;
DROP TABLE report_ip;
ALTER TABLE report_ip_7 RENAME TO report_ip;
CREATE INDEX report_ip_by_ip ON report_ip (ip);
"#,
    // 8: per source and prefix, the last packet time counted as a hit, so that a source read
    // again after `reread` counts no packet twice.
    "CREATE TABLE counted (source TEXT NOT NULL, prefix TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (source, prefix)) WITHOUT ROWID;",
    // 9: abuse contacts discovered per network, with where each came from and until when
    // (see `discover::cache`), the RDAP bootstrap files, and, on a report to a discovered
    // contact, where its address came from.
    r#"
CREATE TABLE contact_cache (
    source     TEXT NOT NULL CHECK (source IN ('rdap', 'abusix')),
    family     INTEGER NOT NULL,
    first      TEXT NOT NULL,
    last       TEXT NOT NULL,
    address    TEXT,
    origin     TEXT NOT NULL,
    handle     TEXT,
    fetched_at INTEGER NOT NULL,
    expires    INTEGER NOT NULL,
    PRIMARY KEY (source, family, first, last)
) WITHOUT ROWID;
CREATE TABLE rdap_bootstrap (
    family     INTEGER PRIMARY KEY,
    origin     TEXT NOT NULL,
    body       BLOB NOT NULL,
    fetched_at INTEGER NOT NULL
);
CREATE TABLE lookup_failure (
    ip        TEXT PRIMARY KEY,
    failed_at INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE report ADD COLUMN contact_source TEXT;
ALTER TABLE report ADD COLUMN contact_network TEXT;
"#,
    // 10: the re-report window runs from when a report was sent, found by this index; and
    // a provider's reports waiting to go out are counted without reading its history.
    r#"
CREATE INDEX report_by_provider_sent ON report (provider, sent_at);
CREATE INDEX report_waiting ON report (provider) WHERE status IN ('sending', 'failed');
"#,
    // 11: evidence is kept line by line rather than rewritten whole by every run: the lines
    // of a desk's densest window are marked (and found through an index of their own), and
    // a report reads its own addresses' lines.
    r#"
ALTER TABLE evidence ADD COLUMN dense INTEGER NOT NULL DEFAULT 0;
CREATE INDEX evidence_dense ON evidence (provider, seq) WHERE dense = 1;
"#,
    // 12: how often a report's body went out without a reply that could be read: the
    // server may hold it, and it is not sent without end.
    "ALTER TABLE report ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;",
    // 13: a waiting report's entry in `preview --json`, as made: kept while it waits.
    "CREATE TABLE report_preview (report_id TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID;",
    // 14: when a cursor's file was made, which tells it from a later file of the folder that
    // has its inode number.
    "ALTER TABLE cursor ADD COLUMN born TEXT;",
    // 15: the addresses discovery decided not to report for now (no desk, a desk refused or
    // the operator's own, a `never` domain), each with when to decide again: what decided
    // may change (a registry's "none" expires) while nothing new is logged from them.
    "CREATE TABLE contact_recheck (ip TEXT PRIMARY KEY, due INTEGER NOT NULL) WITHOUT ROWID; CREATE INDEX contact_recheck_by_due ON contact_recheck (due);",
    // 16: cursors by their file, which a run asks of each name it has no cursor for (a file
    // renamed keeps its cursor): a log host's new files each walked every cursor.
    "CREATE INDEX cursor_by_file ON cursor (dev, ino);",
    // 17: when a desk's server first deferred a report, from which a discovered desk's
    // patience is counted (from when the report was made, a relay's own outage of days
    // spent it before the desk was ever asked). And the registries' answers remembered so
    // far are asked again: an earlier release took a contact with a line break in it for
    // the text around it, an answer about another network for the address's, and an answer
    // for a prefix the bootstrap gives in part to another registry for all of it.
    "ALTER TABLE report ADD COLUMN deferred_since TEXT;
     UPDATE contact_cache SET expires = 0 WHERE source = 'rdap';",
    // 18: the bytes a cursor's file held just before its offset, which tell a file cut back
    // in place and written on past the offset from the same file grown (the byte before the
    // offset alone, a line end either way a line in so many, did not).
    "ALTER TABLE cursor ADD COLUMN tail BLOB;",
    // 19: when a local MTA first failed a report in a way that may pass or not (see
    // `SendError::Unclear`), from which its patience is counted: from when the report was
    // made, a report that had waited days for its turn was a setting to fix at its first
    // "later".
    "ALTER TABLE report ADD COLUMN unclear_since TEXT;",
    // 20: how many of a report's attempts may have handed its body to a server (counted
    // before the transport sees it, and taken back when the attempt ended before the body
    // went): one that never reached any may be made anew (its Date, its From), since no
    // copy of it can be anywhere. Earlier attempts are taken to have, but for a report tried
    // once whose one failure came before any body (see [`HANDED_BEFORE_20`]).
    concat!(
        "ALTER TABLE report ADD COLUMN handed INTEGER NOT NULL DEFAULT 0;
         UPDATE report SET handed = ",
        handed_before_20!(),
        ";"
    ),
];

/// How many attempts of a report a state before schema 20 made may have handed its body to a
/// server, as migration 20 sets it: all of them, but for a report tried once whose failure
/// came before any body (a relay that refused the sender, a connection refused). Its other
/// failures may have come after the body (a 451 is the same words before it and after).
const HANDED_BEFORE_20: &str = handed_before_20!();

/// The parts of migrations added to them after states were made with the migration's
/// earlier form, made again wherever they are missing: what a migration makes must be there
/// whatever form of it a state went through.
const AFTERTHOUGHTS: &str = "
CREATE TABLE IF NOT EXISTS lookup_failure (
    ip        TEXT PRIMARY KEY,
    failed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS report_waiting ON report (provider) WHERE status IN ('sending', 'failed');
CREATE INDEX IF NOT EXISTS evidence_dense ON evidence (provider, seq) WHERE dense = 1;
";

/// A report whose body went out this many times without a reply that could be read is taken
/// as delivered: sent once more after the first, never a third time.
pub const UNCONFIRMED_AT_MOST: i64 = 2;

/// The oldest schema a reader understands: schemas 5 and 6 add only what a run needs (and
/// what a reader finds missing it takes as empty), and 7 changes only how rows are laid out,
/// so `history` and `preview` go on working after an upgrade until the next run migrates
/// the file.
const READABLE_SINCE: i64 = 4;

/// How long any connection waits for another one's lock before giving up: long enough for a
/// run's commit, short enough that a run under a timer always ends.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `meta` key: this source (the rest of the key) was chosen by `reread` to be read again.
const REREAD_KEY: &str = "reread:";

/// A `meta` key: the zones (`timezone`) the times counted from this source (the rest of the
/// key) were made in, a JSON object from each prefix to the zone of the last run that
/// counted a packet of it.
const COUNTED_ZONE_KEY: &str = "counted-zone:";
/// `meta` keys of when a warning said once a day under `-q` was last said.
const SAID_KEY: &str = "said:";
/// `meta` keys of when a provider's desk (the rest of the key) was last tried, for the
/// order the next run's budget goes in (see [`State::turns`]).
const TURN_KEY: &str = "turn:";

/// The file that holds disk space for recording outcomes, beside `state.db`.
const RESERVE_FILE: &str = "state.reserve";

/// The least space held in reserve; more for a large message, whose row is rewritten when its
/// outcome is recorded.
const RESERVE_MIN: u64 = 1 << 20;

/// Where a report stands. `sending` and `failed` are resent as stored; `rejected` gives its
/// IPs back to the next report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sending,
    Sent,
    Failed,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "sending" => Status::Sending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "rejected" => Status::Rejected,
            other => bail!("unknown report status {other:?}"),
        })
    }
}

/// One IP as a report listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedIp {
    pub ip: IpAddr,
    pub hits: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A ledger row: one report to one provider, and the exact message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub id: String,
    pub provider: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub status: Status,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub server_reply: Option<String>,
    /// How often its body went out without a reply that could be read.
    pub unconfirmed: u32,
    /// How many of its attempts may have handed its body to a server: none, and no copy of
    /// it is anywhere (see [`Attempt::not_handed`]).
    pub handed: u32,
    pub ips: Vec<ReportedIp>,
    pub message: Vec<u8>,
    /// For a report to a discovered contact: where its address came from.
    pub contact: Option<ReportContact>,
}

/// Where the address of a report to a discovered contact came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportContact {
    pub address: String,
    /// `rdap` or `abusix`.
    pub source: String,
    /// The registry's network (CIDR), or `None` (Abusix names none).
    pub network: Option<String>,
}

impl ReportRecord {
    /// Whether the row holds a request made for a remote intake (the AWS API), whose one
    /// recipient is the endpoint's URL, rather than a mail message. (`State::rejected_ips`
    /// tells them apart the same way, in SQL.)
    pub fn made_for_api(&self) -> bool {
        self.recipients.iter().any(|to| to.contains("://"))
    }
}

/// Where a source stopped: a file position, or journald's own cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCursor {
    File(Cursor),
    Journal(String),
    /// The file followed is read under another name now: this name's cursor goes.
    Moved,
}

/// A file source's cursor from a row that starts `dev, ino, fingerprint, offset,
/// known_siblings, born, tail` (see [`cursor_columns`]).
fn file_cursor(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        dev: r.get::<_, i64>(0)? as u64,
        ino: r.get::<_, i64>(1)? as u64,
        fingerprint: r.get(2)?,
        offset: r.get::<_, i64>(3)? as u64,
        known_siblings: r
            .get::<_, Option<String>>(4)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        born: r
            .get::<_, Option<String>>(5)?
            .and_then(|j| serde_json::from_str(&j).ok()),
        tail: r.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
    })
}

/// The columns [`file_cursor`] reads, for a state of schema `version` (one that keeps no
/// file's time or tail gives none).
fn cursor_columns(version: i64) -> &'static str {
    if version >= 18 {
        "dev, ino, fingerprint, offset, known_siblings, born, tail"
    } else if version >= 14 {
        "dev, ino, fingerprint, offset, known_siblings, born, NULL"
    } else {
        "dev, ino, fingerprint, offset, known_siblings, NULL, NULL"
    }
}

/// Which reports `history` lists.
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter {
    pub ip: Option<IpAddr>,
    pub provider: Option<String>,
}

/// What the last run that left nothing to report knew (the `settled` row of `meta`): with the
/// same selection settings, an IP that no run has read since cannot be in a delta unless the
/// ledger moved it (a pending resend, a re-report window passing), so a run needs the records
/// of the IPs it read and those only. Any run that may change the ledger removes it first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settled {
    /// A digest of everything that decides selection (providers, ranges, ASN data, report
    /// settings).
    pub key: String,
    /// Addresses held back by `min_hits` then, for the summary.
    pub below_min_hits: u64,
    /// Unix seconds of that run, from which re-report windows are counted on.
    pub at: i64,
}

/// The open state database.
pub struct State {
    conn: Connection,
    path: PathBuf,
    /// The schema it has: what a reader of an older state finds missing follows from it.
    version: i64,
    /// The contact cache, indexed when discovery first asks it (see `contact_cache`).
    contacts: std::cell::RefCell<Option<crate::discover::cache::Stabbing>>,
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split<T: std::str::FromStr + Ord>(text: &str) -> SmallSet<T> {
    text.split(' ').filter_map(|t| t.parse().ok()).collect()
}

fn ip(text: &str) -> rusqlite::Result<IpAddr> {
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A set of addresses: keyed by attacker-chosen addresses, so a seeded fast hash rather than
/// a predictable one; the ledger holds every address ever reported to a destination.
pub type IpSet = HashSet<IpAddr, foldhash::fast::RandomState>;

/// Addresses, each as the last report sent listing it gave it (see [`State::ever_sent`]).
pub type SentAt = HashMap<IpAddr, Reported, foldhash::fast::RandomState>;

/// The address in column `i` of a row, read in place (the ledger reads a row per address
/// ever reported).
fn ip_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<IpAddr> {
    let text = r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })?;
    ip(text)
}

impl State {
    /// Opens the database for writing, creating the folder (0700) and file (0600) if there is
    /// none, and brings its schema up to date. An existing file that is empty or not a state
    /// database is an error: starting afresh would send every report again.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create state_dir {}", dir.display()))?;
        }
        let path = dir.join("state.db");
        remove_abandoned_creations(dir);
        if !exists(&path)? {
            create(dir, &path)?;
        }
        refuse_empty(&path)?;
        let conn = Connection::open(&path).with_context(|| open_failed(&path, "cannot open"))?;
        let mut state = State {
            conn,
            path,
            version: 0,
            contacts: Default::default(),
        };
        state.setup()?;
        Ok(state)
    }

    /// Opens an existing database without changing it (for previews); `None` if there is none.
    ///
    /// The file is opened for writing but every write is refused (`query_only`): in WAL mode
    /// only a connection that may write removes the WAL files it made when it closes, and a
    /// preview must leave `state_dir` as it found it.
    pub fn open_read_only(dir: &Path) -> Result<Option<Self>> {
        // A file there, or a link to nothing, is the configuration's fault, as a run says it.
        if let Some(e) = crate::folder::never_a_folder(dir) {
            return Err(crate::error::ConfigError(format!("state_dir {e}")).into());
        }
        let path = dir.join("state.db");
        if !exists(&path)? {
            return Ok(None);
        }
        refuse_empty(&path)?;
        // One this user may not read at all (the service user's state, 0600, looked at by
        // another): SQLite says only that it cannot open the database file. Asked without
        // opening it (see [`descriptors_left`]).
        if let Err(e) = crate::folder::access(&path, libc::R_OK)
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            bail!(
                "cannot read {}: {e}; run abuse-mailer as the user that owns {} (or as root)",
                path.display(),
                dir.display()
            );
        }
        // A state this user may not write beside (a backup, a snapshot, a read-only mount,
        // another user's state looked at): read as it is, where a connection that may
        // write would need to make its WAL files there, and fail.
        let conn = match crate::folder::writable(dir) {
            Ok(()) => Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
            Err(_) => open_unwritable(&path, dir),
        }
        .with_context(|| open_failed(&path, "cannot open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        // The last connection to close folds a write-ahead log left by a killed run into the
        // file: a reader that promises to change nothing leaves that to the next run. (With
        // no log there, closing removes the one this reader opened, as it should.)
        let left_by_a_run = std::fs::metadata(dir.join("state.db-wal")).is_ok_and(|m| m.len() > 0);
        if left_by_a_run {
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
        }
        let mut state = State {
            conn,
            path,
            version: 0,
            contacts: Default::default(),
        };
        let version = state.check_identity()?;
        state.version = version;
        if version < READABLE_SINCE {
            // Tables a later schema made (its `meta`, schema 5) under an earlier number: no
            // run upgrades that, as the run says too.
            let later: bool = state.conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get(0),
            )?;
            if version < 5 && later {
                bail!(below_its_tables(&state.path, version, ""));
            }
            bail!(
                "{}: written by an older abuse-mailer (schema {version}); run `abuse-mailer run` once to upgrade it",
                state.path.display()
            );
        }
        Ok(Some(state))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_identity(&self) -> Result<i64> {
        let path = &self.path;
        let read = |pragma: &str| -> Result<i64> {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .map_err(|e| {
                    // Out of file descriptors (`ulimit -n`): SQLite says only that it could
                    // not open the file, which looked like a permission.
                    let no_descriptors = cannot_open(&e) && descriptors_left().is_some();
                    let advice = if no_descriptors {
                        format!(
                            "cannot open it: this process may open no more files (ulimit -n {}); it is left as it is: raise the limit",
                            open_files_limit()
                        )
                    } else if cannot_open(&e) {
                        // Permissions or a read-only mount, not damage: moving the file
                        // away would report every address again.
                        format!(
                            "cannot open it or the files SQLite keeps beside it ({0}-wal, {0}-shm); left as it is: run abuse-mailer as the user that owns {1}, which must be writable",
                            path.display(),
                            path.parent().unwrap_or(Path::new(".")).display()
                        )
                    } else if no_room(&e) {
                        format!(
                            "the disk is full: SQLite cannot make the room it needs to open it ({}-shm); left as it is: make room and run again",
                            path.display()
                        )
                    } else {
                        format!(
                            "cannot read it as a state database (left as it is; if the disk is full or failing, make room and run again; only if the file itself is damaged, {RESTORE})"
                        )
                    };
                    anyhow::Error::new(e).context(format!("{}: {advice}", path.display()))
                })
        };
        let app = read("application_id")?;
        let version = read("user_version")?;
        if app != i64::from(APPLICATION_ID) {
            bail!(
                "{}: not an abuse-mailer state database (application_id {app:#x}); {RESTORE}",
                path.display()
            );
        }
        // No abuse-mailer writes a schema below 0: taken for an old one, the file was
        // stamped current without a migration.
        if version < 0 {
            bail!(
                "{}: schema {version}, which no abuse-mailer writes (a damaged or hand-edited state); {RESTORE}",
                path.display()
            );
        }
        if version > MIGRATIONS.len() as i64 {
            bail!(
                "{}: written by a newer abuse-mailer (schema {version}, this one knows {})",
                path.display(),
                MIGRATIONS.len()
            );
        }
        Ok(version)
    }

    fn setup(&mut self) -> Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        let version = self.check_identity()?;
        wal(&self.conn, &self.path)?;
        // Brought up to date below, or an error.
        self.version = MIGRATIONS.len() as i64;
        if version == MIGRATIONS.len() as i64 {
            // A state a build before these were made brought to this schema (see
            // `AFTERTHOUGHTS`): nothing is written where they are there.
            return self
                .conn
                .execute_batch(AFTERTHOUGHTS)
                .with_context(|| format!("{}: cannot write", self.path.display()));
        }
        migrate(&mut self.conn, version, &self.path)
    }

    /// The configuration file that last ran on this state, as it named itself.
    pub fn owner(&self) -> Result<Option<String>> {
        self.meta("config")
    }

    /// How far the ledger goes: the number of the last report written (reports are never
    /// taken out of it), 0 for none. A copy of the state taken earlier goes less far.
    pub fn reports_made(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM report", [], |r| {
                r.get(0)
            })?)
    }

    /// Records the configuration file that runs on this state.
    pub fn set_owner(&mut self, config: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('config', ?1)",
                [config],
            )
            .with_context(|| format!("{}: cannot record its configuration", self.path.display()))?;
        Ok(())
    }

    /// The journald cursor of a journal source.
    pub fn journal_cursor(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT journal FROM cursor WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        // Asked of every file of a run (thousands, on a log host): parsed once a run.
        let sql = format!(
            "SELECT {} FROM cursor WHERE source = ?1 AND journal IS NULL",
            cursor_columns(self.version)
        );
        Ok((self.conn.prepare_cached(&sql)?)
            .query_row([source], file_cursor)
            .optional()?)
    }

    /// Runs `f`, whose many small reads (one per address a flood left) then share one read
    /// transaction: each on its own would take and give back the file's lock.
    pub fn reading<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f();
        }
        self.conn.execute_batch("BEGIN")?;
        let done = f();
        // Nothing was written: ending it cannot lose anything.
        let ended = self
            .conn
            .execute_batch(if done.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let done = done?;
        ended?;
        Ok(done)
    }

    /// The sources whose cursor follows the file `(dev, ino)`, the one updated last first,
    /// with their cursors.
    pub fn cursors_of_file(&self, dev: u64, ino: u64) -> Result<Vec<(String, Cursor)>> {
        let mut stmt = self
            .conn
            .prepare_cached(&cursors_of_file_sql(self.version))?;
        let rows = stmt.query_map(params![dev as i64, ino as i64], |r| {
            Ok((r.get::<_, String>(7)?, file_cursor(r)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The names of every source with a stored cursor.
    pub fn cursor_sources(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source FROM cursor ORDER BY source")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The marker of the last settled run, if the state has one.
    pub fn settled(&self) -> Result<Option<Settled>> {
        let text = self.meta("settled")?;
        // A marker this binary cannot read is no marker: the run then looks at everything.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Per destination (a provider's name, or [`CONTACT_DESKS`]), a digest of the templates
    /// and `[report]` settings its newest reports were made under (see
    /// [`State::set_made_under`]); empty on a state that has none.
    pub fn made_under(&self) -> Result<HashMap<String, String>> {
        let text = self.meta("made_under")?;
        // A value this binary cannot read is no record: nothing is said.
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Records the digests `made` (destination, digest) that this run's reports were made
    /// under, beside those of other destinations.
    pub fn set_made_under(&mut self, made: &HashMap<String, String>) -> Result<()> {
        let mut all = self.made_under()?;
        all.extend(made.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('made_under', ?1)",
                [serde_json::to_string(&all)?],
            )
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// Records that a run left nothing to report (or, with `None`, forgets it).
    pub fn set_settled(&mut self, settled: Option<&Settled>) -> Result<()> {
        let written = match settled {
            Some(m) => self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('settled', ?1)",
                [serde_json::to_string(m)?],
            ),
            None => self
                .conn
                .execute("DELETE FROM meta WHERE key = 'settled'", []),
        };
        written.with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// Whether the state has the `meta` table (schema 5).
    fn has_meta(&self) -> Result<bool> {
        Ok(self.version >= 5)
    }

    /// The value kept under `key` in `meta`; none on a state older than the table.
    fn meta(&self, key: &str) -> Result<Option<String>> {
        if !self.has_meta()? {
            return Ok(None);
        }
        Ok((self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?)
        .query_row([key], |r| r.get(0))
        .optional()?)
    }

    /// Whether the warning `what`, of `count` things, was said in the `every` seconds before
    /// `now` of at least two thirds as many; if it was not, it is marked said at `now` of
    /// `count`. A mark ahead of `now` (a clock stepped back) is no mark, and half as many
    /// again as the mark's are said again.
    pub fn said_lately(&mut self, what: &str, now: i64, every: i64, count: u64) -> Result<bool> {
        let key = format!("{SAID_KEY}{what}");
        let said = self.meta(&key)?.and_then(|v| {
            let (at, of) = v.split_once(' ').unwrap_or((&v, "0"));
            Some((at.parse::<i64>().ok()?, of.parse::<u64>().unwrap_or(0)))
        });
        // A clear rise, not one more (a growing backlog would be said by every run).
        if said.is_some_and(|(at, of)| at <= now && now - at < every && count <= of + of / 2) {
            return Ok(true);
        }
        self.put_meta(&key, &format!("{now} {count}"))?;
        Ok(false)
    }

    /// Keeps `value` under `key` in `meta`.
    fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// IPs of a provider's reports that a re-report window counts and that it counts from a
    /// time in `[from, to)` (sent then, or refused by an API when made): those leave the
    /// window as it moves from `from` to `to`.
    pub fn leaving_window(&self, provider: &str, from: &str, to: &str) -> Result<Vec<IpAddr>> {
        // A sent report counts from when it went out (a part may wait runs for its turn);
        // a refused one from when it was made.
        let desk = desk_condition(provider);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT i.ip FROM report r JOIN report_ip i ON i.report_id = r.id
             WHERE {desk} AND r.status = 'sent' AND r.sent_at >= ?2 AND r.sent_at < ?3
             UNION
             SELECT i.ip FROM report r JOIN report_ip i ON i.report_id = r.id
             WHERE {desk} AND r.status = 'rejected' AND r.created_at >= ?2 AND r.created_at < ?3"
        ))?;
        let rows = stmt.query_map(params![provider, from, to], |r| ip_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The heads of the observations last seen before `stale_before` that a run storing
    /// `stored` addresses would let go of as history (see [`let_go_of_stale_observations`]),
    /// left in place: what a preview counts of that run.
    pub fn stale_observations_ahead(
        &self,
        stale_before: i64,
        stored: usize,
    ) -> Result<Vec<Observation>> {
        let StalePass { from, last, .. } =
            stale_pass(&self.conn, stale_visit(stored), self.has_meta()?)?;
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare(
            "SELECT ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports
             FROM observation WHERE ip > ?1 AND ip <= ?2 AND last_seen < ?3",
        )?;
        let rows = stmt.query_map(params![from, last, stale_before], stale_head)?;
        Ok(rows
            .filter_map(Result::transpose)
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Every IP observed so far (last seen at `fresh` or later, if given), and nothing else
    /// about them.
    pub fn observed_ips(&self, fresh: Option<i64>) -> Result<Vec<IpAddr>> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip FROM observation WHERE last_seen >= ?1")?;
        let rows = stmt.query_map([fresh.unwrap_or(i64::MIN)], |r| ip_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds every IP observed so far that `to` does not hold yet, with its times and hits but
    /// not its sets of ports, hosts and targets: enough to select a delta;
    /// [`State::observation`] gives the whole record.
    pub fn add_observation_heads(&self, to: &mut Observations) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, first_seen, last_seen, hits FROM observation")?;
        let rows = stmt.query_map([], |r| {
            let mut o = Observation::new(ip_at(r, 0)?, r.get(1)?);
            o.last_seen = r.get(2)?;
            o.hits = r.get::<_, i64>(3)? as u64;
            Ok(o)
        })?;
        for row in rows {
            to.add(row?);
        }
        Ok(())
    }

    /// The whole stored observation of one IP.
    pub fn observation(&self, address: IpAddr) -> Result<Option<Observation>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports, dsts, hosts
             FROM observation WHERE ip = ?1",
        )?;
        Ok(stmt
            .query_row([address.to_string()], |r| {
                Ok(Observation {
                    ip: ip_at(r, 0)?,
                    first_seen: r.get(1)?,
                    last_seen: r.get(2)?,
                    hits: r.get::<_, i64>(3)? as u64,
                    protocols: split(&r.get::<_, String>(4)?),
                    dst_ports: split(&r.get::<_, String>(5)?),
                    src_ports: split(&r.get::<_, String>(6)?),
                    dsts: split(&r.get::<_, String>(7)?),
                    hosts: crate::ingest::bounded_hosts(&split(&r.get::<_, String>(8)?)),
                })
            })
            .optional()?)
    }

    /// The number the next line kept for `provider` gets: the lines kept so far are numbered
    /// below it, so that a run tells the lines earlier runs kept from those it keeps itself.
    pub fn next_evidence_seq(&self, provider: &str) -> Result<i64> {
        let max = last_evidence_seq(&self.conn, provider)
            .with_context(|| format!("{}", self.path.display()))?;
        Ok(max.map_or(0, |m| m.saturating_add(1)))
    }

    /// The lines kept for `provider` of the addresses `ips` before line number `before`,
    /// logged at `since` or later, each in the order kept: the addresses' own lines, and
    /// those of the desk's densest window (a line can be both). Each address is one seek.
    pub fn evidence_of(
        &self,
        provider: &str,
        ips: &[IpAddr],
        since: Option<i64>,
        before: i64,
    ) -> Result<(Vec<EvidenceLine>, Vec<EvidenceLine>)> {
        // Before schema 11 every line kept is an address's own.
        let dense = if self.version >= 11 { "dense" } else { "0" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT time, ip, line, seq, {dense} FROM evidence INDEXED BY evidence_by_ip
             WHERE provider = ?1 AND ip = ?2 AND time >= ?3 AND seq < ?4"
        ))?;
        let (mut own, mut window) = (Vec::new(), Vec::new());
        for address in ips {
            let rows = stmt.query_map(
                params![
                    provider,
                    address.to_string(),
                    since.unwrap_or(i64::MIN),
                    before
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)? != 0,
                        evidence_line(r)?,
                    ))
                },
            )?;
            for row in rows {
                let (seq, in_window, line) = row?;
                match in_window {
                    true => window.push((seq, line)),
                    false => own.push((seq, line)),
                }
            }
        }
        // In the order kept, which within a second is the order logged.
        let in_order = |mut lines: Vec<(i64, EvidenceLine)>| -> Vec<EvidenceLine> {
            lines.sort_by_key(|(seq, _)| *seq);
            lines.into_iter().map(|(_, line)| line).collect()
        };
        Ok((in_order(own), in_order(window)))
    }

    /// Whether a line logged at `since` or later is kept for `ip` under `provider` before
    /// line number `before`; lines of the desk's window count only if `window`.
    pub fn has_evidence(
        &self,
        provider: &str,
        ip: IpAddr,
        since: Option<i64>,
        before: i64,
        window: bool,
    ) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(if !window && self.version >= 11 {
            "SELECT 1 FROM evidence INDEXED BY evidence_by_ip
             WHERE provider = ?1 AND ip = ?2 AND time >= ?3 AND seq < ?4 AND dense = 0 LIMIT 1"
        } else {
            "SELECT 1 FROM evidence INDEXED BY evidence_by_ip
             WHERE provider = ?1 AND ip = ?2 AND time >= ?3 AND seq < ?4 LIMIT 1"
        })?;
        Ok(stmt.exists(params![
            provider,
            ip.to_string(),
            since.unwrap_or(i64::MIN),
            before
        ])?)
    }

    /// The lines of `provider`'s densest window as kept (none before schema 11, whose
    /// lines are all an address's own).
    pub fn dense_evidence(&self, provider: &str) -> Result<Vec<EvidenceLine>> {
        if self.version < 11 {
            return Ok(Vec::new());
        }
        // A state made by schema 11's first form has no such index until a run makes it.
        let indexed: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'index' AND name = 'evidence_dense'",
            [],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT time, ip, line FROM evidence {}
             WHERE provider = ?1 AND dense = 1 ORDER BY seq",
            if indexed {
                "INDEXED BY evidence_dense"
            } else {
                ""
            }
        ))?;
        let rows = stmt.query_map([provider], evidence_line)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores what one run read, all or nothing: observations (merged totals for the IPs it
    /// saw), cursors and evidence. With new observations or `unsettle`, the [`Settled`] marker
    /// goes in the same transaction: this run may change what is to be reported. Returns the
    /// heads of the observations it let go of as history.
    pub fn commit_ingest(
        &mut self,
        observations: &[&Observation],
        cursors: &[(String, StoredCursor)],
        counted: Counted<'_>,
        kept: &KeptLines<'_>,
        now: &str,
        unsettle: bool,
    ) -> Result<Vec<Observation>> {
        let Counted {
            times: counted,
            zone,
        } = counted;
        let KeptLines {
            updates: evidence,
            desks,
            stale_before,
        } = *kept;
        let unsettle = (unsettle || !observations.is_empty()) && self.settled()?.is_some();
        if observations.is_empty() && cursors.is_empty() && evidence.is_empty() && !unsettle {
            return Ok(Vec::new());
        }
        let ingested = Ingested {
            observations,
            cursors,
            counted,
            evidence,
            desks,
            stale_before,
            now,
            zone,
            unsettle,
        };
        // A flood's lines and addresses land all over the tables' indexes: with SQLite's few
        // MiB of cache, the same pages would be written out again and again before the
        // commit. The cache is let grow for this write alone.
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{}", INGEST_CACHE_KIB))?;
        let written = write_ingest(&mut self.conn, &ingested);
        self.conn.execute_batch("PRAGMA cache_size = -2000")?;
        written.with_context(|| {
            format!(
                "{}: cannot store what was read (it is read again next time)",
                self.path.display()
            )
        })
    }

    /// Per source and prefix, the last packet time counted as a hit (none on a state no run
    /// has brought to schema 8 yet): where earlier runs stopped reading each source, and what a
    /// read after `reread` passes over.
    pub fn counted_all(&self) -> Result<HashMap<String, HashMap<String, i64>>> {
        let mut all: HashMap<String, HashMap<String, i64>> = HashMap::new();
        if self.version < 8 {
            return Ok(all);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT source, prefix, until FROM counted")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (source, prefix, until): (String, String, i64) = row?;
            all.entry(source).or_default().insert(prefix, until);
        }
        Ok(all)
    }

    /// Per file source, when a run last stored where it had read it to (Unix seconds): the
    /// text past its cursor was written after that.
    pub fn cursor_times(&self) -> Result<HashMap<String, i64>> {
        let mut stmt =
            (self.conn).prepare("SELECT source, updated_at FROM cursor WHERE journal IS NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut times = HashMap::new();
        for row in rows {
            let (source, at) = row?;
            if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&at) {
                times.insert(source, at.timestamp());
            }
        }
        Ok(times)
    }

    /// Per source and prefix, the zone the times of [`State::counted_all`] were made in (none
    /// for one counted from before the zone was kept).
    pub fn counted_zones(&self) -> Result<HashMap<String, BTreeMap<String, String>>> {
        Ok((self.meta_under(COUNTED_ZONE_KEY)?.into_iter())
            .map(|(source, value)| (source, zones_of(Some(&value))))
            .collect())
    }

    /// The `meta` rows whose key begins with `prefix`, by the rest of their key; none on a
    /// state older than the table.
    fn meta_under(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        if !self.has_meta()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2")?;
        // Every key that begins with the prefix: the next character after its `:` bounds it.
        let end = prefix.replace(':', ";");
        let rows = stmt.query_map([prefix, end.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut found = Vec::new();
        for row in rows {
            let (key, value) = row?;
            if let Some(rest) = key.strip_prefix(prefix) {
                found.push((rest.to_string(), value));
            }
        }
        Ok(found)
    }

    /// When each provider's desk was last tried, as [`State::took_turn`] noted it: the
    /// higher, the later (a count, not a time, so that no clock can put a desk's turn ahead).
    pub fn turns(&self) -> Result<HashMap<String, u64>> {
        Ok((self.meta_under(TURN_KEY)?.into_iter())
            .filter_map(|(desk, value)| Some((desk, value.parse().ok()?)))
            .collect())
    }

    /// Notes that `provider`'s desk was tried as turn `turn` (higher than every turn noted
    /// before it).
    pub fn took_turn(&mut self, provider: &str, turn: u64) -> Result<()> {
        if !self.has_meta()? {
            return Ok(());
        }
        self.put_meta(&format!("{TURN_KEY}{provider}"), &turn.to_string())
    }

    /// IPs that a report to `provider` holds and that must not go into another one: those
    /// sent, and those still waiting to be sent again (`sending`, `failed`). With `since`,
    /// only reports created at or after that time count as sent.
    pub fn reported(&self, provider: &str, since: Option<&str>) -> Result<IpSet> {
        self.reported_but(provider, since, &[], None)
    }

    /// [`State::reported`] as it will be once the reports `withdrawn` are withdrawn (a
    /// preview shows that, and changes nothing). With `only`, of that one address (it, or
    /// nothing).
    pub fn reported_but(
        &self,
        provider: &str,
        since: Option<&str>,
        withdrawn: &[&str],
        only: Option<IpAddr>,
    ) -> Result<IpSet> {
        let withdrawn = serde_json::to_string(withdrawn)?;
        self.addresses(
            &reported_sql(provider),
            &[&provider, &since, &withdrawn],
            only,
        )
    }

    /// Every IP a provider was ever sent, each as the last report sent listing it gave it
    /// (its packets, first and last packet then, and when that report was sent): for marking
    /// re-reports, telling whether the address sent more since, and saying what the desk was
    /// told; with `only`, of that one. Of two reports sent at one time, the one that counted
    /// more packets; a time that cannot be read comes before any other.
    pub fn ever_sent(&self, provider: &str, only: Option<IpAddr>) -> Result<SentAt> {
        let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(IpAddr, Reported)> {
            let at: Option<String> = r.get(3)?;
            let at = (at.as_deref())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp());
            let reported = Reported {
                at,
                hits: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                first_seen: r.get(2)?,
                last_seen: r.get(4)?,
            };
            Ok((ip_at(r, 0)?, reported))
        };
        let sql = format!(
            "SELECT i.ip, i.hits, i.first_seen, COALESCE(r.sent_at, r.created_at), i.last_seen
             FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE {} AND r.status = 'sent'",
            desk_condition(provider)
        );
        let text = only.map(|ip| ip.to_string());
        let mut stmt = match &text {
            // Through the address index, as the other questions about one address are.
            Some(_) => self.conn.prepare_cached(&format!(
                "{} AND i.ip = ?2",
                sql.replacen("JOIN report r", "CROSS JOIN report r", 1)
            ))?,
            None => self.conn.prepare_cached(&sql)?,
        };
        let rows = match &text {
            Some(ip) => stmt.query_map(params![provider, ip], row)?,
            None => stmt.query_map(params![provider], row)?,
        };
        let mut out = SentAt::default();
        for found in rows {
            let (ip, reported) = found?;
            let last = out.entry(ip).or_insert_with(|| reported.clone());
            if (reported.at, reported.hits) > (last.at, last.hits) {
                *last = reported;
            }
        }
        Ok(out)
    }

    /// The addresses a ledger query (`sql`, over `report_ip i`, with `args`) gives; with
    /// `only`, the same query asked of that one address alone, through its index: a run asks
    /// of the addresses it read, not of every address ever reported.
    fn addresses(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
        only: Option<IpAddr>,
    ) -> Result<IpSet> {
        let Some(ip) = only else {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map(args, |r| ip_at(r, 0))?;
            return Ok(rows.collect::<rusqlite::Result<_>>()?);
        };
        let text = ip.to_string();
        let mut with_ip: Vec<&dyn rusqlite::ToSql> = args.to_vec();
        with_ip.push(&text);
        let one = of_one_address(sql, with_ip.len());
        let mut stmt = self.conn.prepare_cached(&one)?;
        let found = stmt.exists(&with_ip[..])?;
        Ok(found.then_some(ip).into_iter().collect())
    }

    /// How the last report sent to `provider` (a desk key) listed `ip`, if one did.
    pub fn last_sent(&self, provider: &str, ip: IpAddr) -> Result<Option<Reported>> {
        Ok(self.ever_sent(provider, Some(ip))?.remove(&ip))
    }

    /// Writes a new report with status `sending`, before any transport sees it.
    pub fn insert_report(&mut self, r: &ReportRecord) -> Result<()> {
        write_report(&mut self.conn, r).with_context(|| {
            format!(
                "{}: cannot record report {} (nothing was sent)",
                self.path.display(),
                r.id
            )
        })
    }

    /// Lets go of the lines kept of the addresses of report `id`, once it is sent: they have
    /// served, and no later report on those addresses but a re-report would show them.
    pub fn let_go_of_lines(&mut self, id: &str) -> Result<()> {
        // Discovered contacts' evidence is kept together, under the key for all of them.
        self.conn
            .execute(
                &format!(
                    "DELETE FROM evidence INDEXED BY evidence_by_ip
                     WHERE provider = (SELECT CASE WHEN provider LIKE '{CONTACT_DESKS}'
                                                   THEN '{CONTACT_DESKS}' ELSE provider END
                                       FROM report WHERE id = ?1)
                       AND ip IN (SELECT ip FROM report_ip WHERE report_id = ?1)"
                ),
                [id],
            )
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// Whether a report id is taken.
    pub fn report_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM report WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records the outcome of one delivery attempt.
    pub fn mark(&mut self, id: &str, status: Status, detail: &str, at: &str) -> Result<()> {
        write_outcome(&self.conn, id, status, detail, at)
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }

    /// Replaces the stored message of a report no transport has seen yet (a part that waited
    /// for its turn gets the Date it goes out on); the stored bytes stay what is sent.
    pub fn refresh_unsent_message(&mut self, id: &str, message: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "UPDATE report SET message = ?2 WHERE id = ?1 AND handed = 0",
                params![id, message],
            )
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// Shows, before a report of `size` bytes is sent, that its outcome can be recorded, and
    /// keeps it so: space is held in reserve, then the write lock is taken and held until
    /// [`Attempt::record`]. An error here means nothing may be sent.
    pub fn begin_attempt(&mut self, id: &str, size: usize) -> Result<Attempt<'_>> {
        let path = self.path.display().to_string();
        self.reserve(size).with_context(|| {
            format!(
                "{path}: cannot hold space to record what is sent; nothing is sent until it can"
            )
        })?;
        let lock = |conn: &Connection| {
            conn.execute_batch("BEGIN IMMEDIATE").with_context(|| {
                format!("{path}: cannot take the write lock to record what is sent; nothing is sent until it can")
            })
        };
        // The attempt is counted, and committed, before the transport sees the message: a
        // run killed once the server has it leaves a report known as tried, which the next
        // run sends again as stored, alike to the byte, rather than as one never tried (a
        // part that waited for its turn gets the Date it goes out on).
        lock(&self.conn)?;
        let counted = self
            .conn
            .execute(
                "UPDATE report SET attempts = attempts + 1, handed = handed + 1 WHERE id = ?1",
                [id],
            )
            .map_err(anyhow::Error::from)
            .and_then(|n| match n {
                1 => Ok(self.conn.execute_batch("COMMIT")?),
                _ => bail!("report {id} is not in the ledger"),
            });
        if let Err(e) = counted {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e.context(format!(
                "{path}: cannot write; nothing is sent until it can"
            )));
        }
        lock(&self.conn)?;
        Ok(Attempt {
            state: self,
            id: id.to_string(),
            open: true,
            handed: true,
        })
    }

    /// Makes sure the reserve file holds at least what recording a message of `size` bytes
    /// needs, written out so the disk has really given it.
    fn reserve(&self, size: usize) -> Result<()> {
        let need = (2 * size as u64 + (256 << 10)).max(RESERVE_MIN);
        let file = self.reserve_path();
        // Never through a link: in a folder others may write to, a link planted here would
        // have the run write its reserve into a file of their choosing.
        let have = match std::fs::symlink_metadata(&file) {
            // Nor into a file with other names, linked here: this name is let go, and the
            // reserve made afresh under it.
            Ok(m) if std::os::unix::fs::MetadataExt::nlink(&m) > 1 => {
                std::fs::remove_file(&file)
                    .with_context(|| format!("cannot remove {}", file.display()))?;
                0
            }
            // A FIFO (which would hold the run in `open(2)` for ever), a socket or a device
            // holds no reserve: let go of, and the reserve made afresh. (A link is refused
            // when opened, naming it.)
            Ok(m) if !m.is_file() && !m.is_dir() && !m.is_symlink() => {
                std::fs::remove_file(&file)
                    .with_context(|| format!("cannot remove {}", file.display()))?;
                0
            }
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        if have >= need {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&file)
            .with_context(|| format!("cannot create {}", file.display()))?;
        if !f.metadata()?.is_file() {
            bail!("{} is not a regular file: remove it", file.display());
        }
        // Linked to another file between the look and the open.
        if std::os::unix::fs::MetadataExt::nlink(&f.metadata()?) > 1 {
            bail!(
                "{}: another name was linked to it as it was opened: not written",
                file.display()
            );
        }
        keep_owner(file.parent().unwrap_or(Path::new(".")), &f);
        f.seek(SeekFrom::Start(have))?;
        // Bytes that do not compress, so that no file system can store them in less space.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ have;
        let mut chunk = vec![0u8; 64 << 10];
        let mut left = need - have;
        while left > 0 {
            for word in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .with_context(|| format!("cannot write {}", file.display()))?;
            left -= n as u64;
        }
        f.sync_all()
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }

    fn reserve_path(&self) -> PathBuf {
        self.path.with_file_name(RESERVE_FILE)
    }

    /// Whether the space held to record outcomes is gone: spent recording one on a full disk
    /// (see [`Attempt::record`]). Nothing more is sent until it is won back.
    pub fn reserve_spent(&self) -> bool {
        std::fs::symlink_metadata(self.reserve_path())
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }

    /// Reports waiting to be sent again (`sending` after a crash, `failed` after a transient
    /// error), oldest first.
    pub fn pending(&self) -> Result<Vec<ReportRecord>> {
        self.query_reports("WHERE status IN ('sending', 'failed')", params![], true)
    }

    /// [`State::pending`] without the messages (empty): a backlog of hundreds of parts is
    /// not held in memory to send a few of them (see [`State::message_of`]).
    pub fn pending_heads(&self) -> Result<Vec<ReportRecord>> {
        self.query_reports("WHERE status IN ('sending', 'failed')", params![], false)
    }

    /// What SQLite's full check finds wrong with the file (its first finding), if anything:
    /// pages damaged, an index that lost or gained rows. It reads the whole file: `check`'s,
    /// not a run's.
    pub fn damage(&self) -> Result<Option<String>> {
        let first: String = self
            .conn
            .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
            .with_context(|| format!("{}: cannot read", self.path.display()))?;
        Ok((first != "ok").then(|| crate::excerpt::clean_line(&first, 200)))
    }

    /// Records the outcome of report `id` that an earlier run met and could not record (see
    /// `ledger::record_unrecorded`).
    pub fn record_outcome_again(
        &mut self,
        id: &str,
        status: Status,
        detail: &str,
        at: &str,
        remote: Option<&str>,
    ) -> Result<()> {
        // A state put back from a backup older than the report has nothing to record.
        if !self.report_exists(id)? {
            return Ok(());
        }
        let written = write_outcome(&self.conn, id, status, detail, at).and_then(|()| {
            // The id an API's intake gave it, so that `history --refresh` asks about it.
            // A stored request tagged `lifecycle:test` is remembered as a test, as when the
            // outcome is recorded at once.
            if let Some(remote) = remote {
                self.conn.execute(
                    "UPDATE report SET remote_id = ?2,
                            remote_test = instr(CAST(message AS TEXT), ?3) > 0 WHERE id = ?1",
                    params![id, remote, "\"lifecycle:test\""],
                )?;
            }
            Ok(())
        });
        written.with_context(|| format!("{}: cannot write", self.path.display()))
    }

    /// Forgets when report `id`'s desk first deferred it: what answered was not the desk (the
    /// operator's relay, down or deferring every desk), and the desk's patience starts again
    /// when it next defers.
    pub fn forget_deferral(&mut self, id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE report SET deferred_since = NULL WHERE id = ?1",
                [id],
            )
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        Ok(())
    }

    /// When report `id` first failed in a way that may pass or not (RFC 3339), if it did.
    pub fn unclear_since(&self, id: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT unclear_since FROM report WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?)
    }

    /// When report `id`'s desk first deferred it (RFC 3339), if it ever did.
    pub fn deferred_since(&self, id: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT deferred_since FROM report WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?)
    }

    /// The stored message of report `id`, exactly as it is sent.
    pub fn message_of(&self, id: &str) -> Result<Vec<u8>> {
        Ok(self
            .conn
            .query_row("SELECT message FROM report WHERE id = ?1", [id], |r| {
                r.get(0)
            })?)
    }

    /// The first `bytes` of report `id`'s stored message: its head, without reading a
    /// report of a MiB whole.
    pub fn message_start(&self, id: &str, bytes: usize) -> Result<Vec<u8>> {
        Ok(self.conn.query_row(
            "SELECT substr(message, 1, ?2) FROM report WHERE id = ?1",
            params![id, bytes as i64],
            |r| r.get(0),
        )?)
    }

    /// The addresses of [`State::pending`]'s reports, without their messages.
    pub fn pending_ips(&self) -> Result<Vec<IpAddr>> {
        let mut stmt = self.conn.prepare(PENDING_IPS)?;
        let rows = stmt.query_map([], |r| ip_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps report `id`'s entry in `preview --json` (JSON text) for as long as it waits.
    pub fn keep_preview(&mut self, id: &str, entry: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO report_preview (report_id, entry) VALUES (?1, ?2)",
            params![id, entry],
        )?;
        Ok(())
    }

    /// The kept `preview --json` entries of the reports waiting to be sent again, by id. A
    /// state no run has brought to schema 13 keeps none.
    pub fn previews(&self) -> Result<HashMap<String, String>> {
        if self.version < 13 {
            return Ok(HashMap::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT p.report_id, p.entry FROM report r JOIN report_preview p ON p.report_id = r.id
             WHERE r.status IN ('sending', 'failed')",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Lets go of the `preview --json` entries of reports that wait no more.
    pub fn let_go_of_previews(&mut self) -> Result<()> {
        self.conn.execute(
            "DELETE FROM report_preview WHERE report_id NOT IN
                (SELECT id FROM report WHERE status IN ('sending', 'failed'))",
            [],
        )?;
        Ok(())
    }

    /// Whether the ledger holds any report to `provider`.
    pub fn has_reports(&self, provider: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM report WHERE provider = ?1 LIMIT 1",
                [provider],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The providers' names the ledger holds sent reports to, each with the recipients of
    /// one of them (discovered desks left out). Found by one index seek per name, so that
    /// the cost follows the number of providers, not of reports.
    pub fn sent_provider_desks(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut next = self
            .conn
            .prepare("SELECT provider FROM report WHERE provider > ?1 ORDER BY provider LIMIT 1")?;
        let mut sent = self.conn.prepare(
            "SELECT recipients FROM report WHERE provider = ?1 AND status = 'sent' LIMIT 1",
        )?;
        let mut out = Vec::new();
        let mut after = String::new();
        while let Some(provider) = next
            .query_row([&after], |r| r.get::<_, String>(0))
            .optional()?
        {
            if provider.starts_with(CONTACT_PREFIX) {
                // Past every discovered desk at once: `;` follows `:`.
                after = CONTACT_PREFIX.replace(':', ";");
                continue;
            }
            if let Some(recipients) = sent
                .query_row([&provider], |r| r.get::<_, String>(0))
                .optional()?
            {
                out.push((
                    provider.clone(),
                    serde_json::from_str(&recipients).unwrap_or_default(),
                ));
            }
            after = provider;
        }
        Ok(out)
    }

    /// Up to `limit` addresses of a provider's sent reports.
    pub fn sent_sample(&self, provider: &str, limit: u32) -> Result<Vec<IpAddr>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT i.ip FROM report r JOIN report_ip i ON i.report_id = r.id
             WHERE r.provider = ?1 AND r.status = 'sent' LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![provider, limit], |r| ip_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many of a provider's reports wait to go out (`sending` or `failed`).
    pub fn waiting_reports(&self, provider: &str) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM report WHERE provider = ?1 AND status IN ('sending', 'failed')",
            [provider],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The first report sent to a provider, or if none was sent yet the first waiting to be
    /// sent (it goes before anything new to that desk): follow-ups reply to it, to keep one
    /// thread.
    pub fn thread_root(&self, provider: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT message_id FROM report WHERE provider = ?1 AND status IN ('sent', 'sending', 'failed')
                 ORDER BY status != 'sent', created_at, rowid LIMIT 1",
                [provider],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn report(&self, id: &str) -> Result<Option<ReportRecord>> {
        Ok(self
            .query_reports("WHERE id = ?1", params![id], true)?
            .into_iter()
            .next())
    }

    /// The reports `filter` picks, without their messages: `history` shows every report of a
    /// long history and none of their bytes (`show` prints one).
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<ReportRecord>> {
        self.query_reports(
            "WHERE (?1 IS NULL OR provider = ?1)
               AND (?2 IS NULL OR id IN (SELECT report_id FROM report_ip WHERE ip = ?2))",
            params![filter.provider, filter.ip.map(|i| i.to_string())],
            false,
        )
    }

    /// The reports `filter` picks, oldest first; with their messages, or with none
    /// (`messages` false: empty).
    fn query_reports(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
        messages: bool,
    ) -> Result<Vec<ReportRecord>> {
        // A state no run has brought to schema 9 has no discovered contacts.
        let contact_columns = match self.has_contact_columns()? {
            true => "contact_source, contact_network",
            false => "NULL, NULL",
        };
        let message = if messages { "message" } else { "X''" };
        // A state no run has brought to schema 12 never counted them.
        let unconfirmed = if self.version >= 12 {
            "unconfirmed"
        } else {
            "0"
        };
        // Nor told an attempt that handed nothing from one that may have: read as migration
        // 20 makes it.
        let handed = if self.version >= 20 {
            "handed"
        } else {
            HANDED_BEFORE_20
        };
        let sql = format!(
            "SELECT id, provider, recipients, subject, message_id, status, created_at, sent_at, attempts,
                    last_error, server_reply, {message}, {contact_columns}, {unconfirmed}, {handed}
             FROM report {filter} ORDER BY created_at, rowid"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            // An id names files (`mail.dir/ID.eml`): one this tool never makes (`../x`, a
            // path) would write outside the folder, as the run's user, often root.
            if !is_report_id(&id) {
                bail!(
                    "{}: report {id:?}: not an id this tool makes (a damaged or hand-edited row); restore the state from a backup, or delete that row",
                    self.path.display()
                );
            }
            let recipients: String = r.get(2)?;
            let status: String = r.get(5)?;
            let provider: String = r.get(1)?;
            let contact = match (provider.strip_prefix(CONTACT_PREFIX), r.get(12)?) {
                (Some(address), Some(source)) => Some(ReportContact {
                    address: address.to_string(),
                    source,
                    network: r.get(13)?,
                }),
                _ => None,
            };
            out.push(ReportRecord {
                id,
                provider,
                recipients: serde_json::from_str(&recipients).with_context(|| {
                    format!(
                        "{}: report {}: its recipients are not a list of addresses (a damaged or hand-edited row)",
                        self.path.display(),
                        r.get::<_, String>(0).unwrap_or_default()
                    )
                })?,
                subject: r.get(3)?,
                message_id: r.get(4)?,
                status: Status::parse(&status)?,
                created_at: r.get(6)?,
                sent_at: r.get(7)?,
                // Written as a u32: a number past it is a damaged row, read as the largest.
                attempts: u32::try_from(r.get::<_, i64>(8)?.max(0)).unwrap_or(u32::MAX),
                last_error: r.get(9)?,
                server_reply: r.get(10)?,
                unconfirmed: u32::try_from(r.get::<_, i64>(14)?.max(0)).unwrap_or(u32::MAX),
                handed: u32::try_from(r.get::<_, i64>(15)?.max(0)).unwrap_or(u32::MAX),
                ips: Vec::new(),
                message: r.get(11)?,
                contact,
            });
        }
        let mut stmt = self.conn.prepare(
            "SELECT ip, hits, first_seen, last_seen FROM report_ip WHERE report_id = ?1",
        )?;
        for record in &mut out {
            let rows = stmt.query_map([&record.id], |r| {
                Ok(ReportedIp {
                    ip: ip_at(r, 0)?,
                    hits: r.get::<_, i64>(1)? as u64,
                    first_seen: r.get(2)?,
                    last_seen: r.get(3)?,
                })
            })?;
            record.ips = rows.collect::<rusqlite::Result<_>>()?;
            record.ips.sort_by_key(|i| i.ip);
        }
        Ok(out)
    }

    /// Stores cursors that `reread` chose, alone: observations and the ledger stay as they
    /// are, so what the next run reads again is merged into them and nothing reported goes
    /// out again.
    /// Each source is marked as read again until a run stores its next cursor, so that the
    /// run counts no packet an earlier read counted, wherever the cursor points. The mark
    /// keeps the point given beside each cursor (`through`): where the text earlier runs read
    /// ends (for a source marked already, the point it was marked with).
    pub fn set_cursors(
        &mut self,
        cursors: &[(String, StoredCursor, Option<Cursor>)],
        now: &str,
    ) -> Result<()> {
        let stored: Vec<(String, StoredCursor)> = (cursors.iter())
            .map(|(source, cursor, _)| (source.clone(), cursor.clone()))
            .collect();
        let mut marked = Vec::with_capacity(cursors.len());
        for (source, _, through) in cursors {
            let value = match through {
                Some(c) => serde_json::to_string(c)?,
                None => "1".to_string(),
            };
            marked.push((format!("{REREAD_KEY}{source}"), value));
        }
        self.commit_ingest(
            &[],
            &stored,
            Counted::default(),
            &KeptLines {
                updates: &[],
                desks: &[],
                stale_before: None,
            },
            now,
            false,
        )?;
        for (key, value) in marked {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    [key, value],
                )
                .with_context(|| format!("{}: cannot write", self.path.display()))?;
        }
        Ok(())
    }

    /// Whether `reread` chose the source's cursor and no run has read it since.
    pub fn reread_pending(&self, source: &str) -> Result<bool> {
        Ok(self.meta(&format!("{REREAD_KEY}{source}"))?.is_some())
    }

    /// Whether `reread` chose the source's cursor and no run has read it since (`Some`), and
    /// then the cursor it had: where the text earlier runs read ends (`None` where it had
    /// none, or a release that kept no such point marked it).
    pub fn reread_mark(&self, source: &str) -> Result<Option<Option<Cursor>>> {
        Ok((self.meta(&format!("{REREAD_KEY}{source}"))?)
            .map(|value| serde_json::from_str(&value).ok()))
    }
}

/// What a remote intake (the AWS Abuse Signal API) last said about a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    pub id: String,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub description: Option<String>,
    pub changed_at: Option<String>,
}

/// How a provider's API reports stand: counted by what the intake last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTally {
    /// COMPLETED / ACTIONED.
    pub actioned: u64,
    /// COMPLETED with NEED_MORE_INFORMATION.
    pub need_info: u64,
    /// COMPLETED as not AWS's, no action warranted, or already down.
    pub declined: u64,
    /// COMPLETED with a reason this version does not know (AWS may add some), or none.
    pub other: u64,
    /// Not COMPLETED yet (or never asked).
    pub open: u64,
}

impl State {
    /// Marks a report `sent` and keeps the id the intake gave it, as a delivery's
    /// [`Attempt`] records it, for tests that need a ledger of sent API reports without
    /// delivering them. A stored request tagged `lifecycle:test` is remembered as a test.
    #[cfg(test)]
    pub fn mark_sent_remote(&mut self, id: &str, remote_id: &str, at: &str) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE report SET status = 'sent', sent_at = ?2, server_reply = ?3, remote_id = ?3,
                    remote_test = instr(CAST(message AS TEXT), ?4) > 0 WHERE id = ?1",
            params![id, at, remote_id, "\"lifecycle:test\""],
        )?;
        if changed != 1 {
            bail!("report {id} is not in the ledger");
        }
        // Sent: its addresses' lines have served (see `State::let_go_of_lines`).
        let _ = self.let_go_of_lines(id);
        Ok(())
    }

    /// Stores what the intake says now; `changed_at` moves only when status or reason did.
    /// Returns whether anything changed.
    pub fn set_remote_status(
        &mut self,
        id: &str,
        status: &str,
        reason: Option<&str>,
        description: Option<&str>,
        changed_at: &str,
    ) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE report SET remote_status = ?2, remote_reason = ?3, remote_description = ?4,
                    remote_changed_at = CASE WHEN remote_status IS ?2 AND remote_reason IS ?3
                                             THEN remote_changed_at ELSE ?5 END
             WHERE id = ?1 AND remote_id IS NOT NULL
               AND (remote_status IS NOT ?2 OR remote_reason IS NOT ?3 OR remote_description IS NOT ?4)",
            params![id, status, reason, description, changed_at],
        )?;
        Ok(changed == 1)
    }

    /// Sent reports with a remote id whose intake has not finished with them, newest first:
    /// `(report id, remote id)`.
    pub fn remote_open(&self, providers: &[String], limit: usize) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, provider, remote_id FROM report
             WHERE remote_id IS NOT NULL AND status = 'sent'
               -- COMPLETED is AWS's only final status; GONE: AWS no longer has the report.
               AND (remote_status IS NULL OR remote_status NOT IN ('COMPLETED', 'GONE'))
             ORDER BY created_at DESC, rowid DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, provider, remote) = row?;
            if providers.contains(&provider) {
                out.push((id, remote));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether the ledger has the columns of discovered contacts (schema 9).
    fn has_contact_columns(&self) -> Result<bool> {
        Ok(self.version >= 9)
    }

    /// Whether the ledger has the remote intake's columns (schema 6): a reader may open a
    /// state that no run has brought that far yet, and then no report has a remote side.
    fn has_remote_columns(&self) -> Result<bool> {
        Ok(self.version >= 6)
    }

    /// The remote side of every report that has one, by report id (none on a state that a
    /// run has not yet brought to schema 6).
    pub fn remotes(&self) -> Result<HashMap<String, Remote>> {
        if !self.has_remote_columns()? {
            return Ok(HashMap::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT id, remote_id, remote_status, remote_reason, remote_description, remote_changed_at
             FROM report WHERE remote_id IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Remote {
                    id: r.get(1)?,
                    status: r.get(2)?,
                    reason: r.get(3)?,
                    description: r.get(4)?,
                    changed_at: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How a provider's sent API reports stand.
    pub fn remote_tally(&self, provider: &str) -> Result<RemoteTally> {
        if !self.has_remote_columns()? {
            return Ok(RemoteTally::default());
        }
        let mut stmt = self.conn.prepare(
            "SELECT remote_status, remote_reason, count(*) FROM report
             WHERE provider = ?1 AND status = 'sent' AND remote_id IS NOT NULL
             GROUP BY remote_status, remote_reason",
        )?;
        let mut tally = RemoteTally::default();
        let mut rows = stmt.query([provider])?;
        while let Some(r) = rows.next()? {
            let status: Option<String> = r.get(0)?;
            let reason: Option<String> = r.get(1)?;
            let n = r.get::<_, i64>(2)? as u64;
            match (status.as_deref(), reason.as_deref()) {
                (Some("COMPLETED"), Some("ACTIONED")) => tally.actioned += n,
                (Some("COMPLETED"), Some("NEED_MORE_INFORMATION")) => tally.need_info += n,
                (
                    Some("COMPLETED"),
                    Some(
                        "NOT_RESOLVABLE_TO_AWS"
                        | "REVIEWED_NO_AWS_ACTION"
                        | "CONTENT_DOWN_OR_INACCESSIBLE",
                    ),
                ) => tally.declined += n,
                (Some("COMPLETED"), _) => tally.other += n,
                (Some("GONE"), _) => {}
                _ => tally.open += n,
            }
        }
        Ok(tally)
    }

    /// IPs a provider was sent only in test reports (and that no other report holds): the
    /// intake validated those without acting on them, so they are still to be reported.
    /// With `only`, of that one address.
    pub fn test_only_ips(&self, provider: &str, only: Option<IpAddr>) -> Result<IpSet> {
        if !self.has_remote_columns()? {
            return Ok(IpSet::default());
        }
        self.addresses(
            "SELECT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND r.status = 'sent' AND r.remote_test = 1
               AND NOT EXISTS (
                   SELECT 1 FROM report_ip j JOIN report q ON q.id = j.report_id
                   WHERE j.ip = i.ip AND q.provider = ?1
                     AND (q.status IN ('sending', 'failed')
                          OR (q.status = 'sent' AND q.remote_test = 0)))",
            &[&provider],
            only,
        )
    }

    /// IPs of a provider's rejected reports (created at or after `since`): an intake that
    /// refused a report for its content refuses the same report again, so these wait for a
    /// re-report rather than going out every run. With [`CONTACT_DESKS`], those of every
    /// discovered desk: a desk found by a lookup that refuses mail (an address that no longer
    /// exists) would refuse each new report too.
    /// With `only`, of that one address.
    pub fn rejected_ips(
        &self,
        provider: &str,
        since: Option<&str>,
        only: Option<IpAddr>,
    ) -> Result<IpSet> {
        self.addresses(&rejected_sql(provider), &[&provider, &since], only)
    }
}

fn evidence_line(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvidenceLine> {
    Ok(EvidenceLine {
        time: r.get(0)?,
        ip: ip(&r.get::<_, String>(1)?)?,
        text: r.get(2)?,
    })
}

/// What one run changes in the log lines kept: each desk's changes, and the desks configured
/// when the run read anything (the lines of history kept for any other are let go; empty:
/// none is).
#[derive(Debug, Clone, Copy)]
pub struct KeptLines<'a> {
    pub updates: &'a [EvidenceUpdate<'a>],
    pub desks: &'a [&'a str],
    /// Lines logged before this time are history (`max_age_days`), at any desk.
    pub stale_before: Option<i64>,
}

/// What one run changes in a desk's evidence: lines are added and let go one by one, so that
/// a run's cost follows what it read, not every line kept since a flood.
#[derive(Debug)]
pub struct EvidenceUpdate<'a> {
    pub desk: &'a str,
    /// Lines read now, in time order: each is kept if its address has fewer than `per_ip`
    /// lines kept, its own lines ([`KeptLine::own`]) before the windows' (and an earlier line
    /// than all kept in place of the latest). Their text is in `spool`.
    pub lines: &'a [KeptLine],
    pub spool: &'a Spool,
    pub per_ip: usize,
    /// The desk's densest window, when it is not the one kept.
    pub dense: Option<&'a [EvidenceLine]>,
    /// The number the first line kept now gets ([`State::next_evidence_seq`] when the run
    /// began; the run holds the state throughout).
    pub first_seq: i64,
}

/// The largest number of the lines kept for `desk`, if any. A number that is not a whole one
/// (a state edited by hand) is an error that says how to number them afresh.
fn last_evidence_seq(conn: &Connection, desk: &str) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT max(seq) FROM evidence WHERE provider = ?1",
        [desk],
        |r| r.get(0),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "the log lines kept for {desk} are not numbered with whole numbers ({e}; edited by hand?); to number them afresh: sqlite3 state.db \"DELETE FROM evidence WHERE provider = '{desk}'\""
        )
    })
}

/// Lets go of the lines logged before `stale_before` (history, by `max_age_days`) that are
/// kept for desks not in `desks` (a provider taken out of the configuration, discovery turned
/// off), at most [`STALE_EVIDENCE_PER_RUN`] a run: history goes at every desk, configured or
/// not, and a desk taken out for a while loses nothing else. The desks holding lines are found
/// one seek each, in SQL, so that no stored name, however odd its type or bytes, stops a run.
fn let_go_of_other_desks(tx: &Transaction<'_>, desks: &[&str], stale_before: i64) -> Result<()> {
    let marks: Vec<String> = (2..desks.len() + 2).map(|i| format!("?{i}")).collect();
    let marks = marks.join(", ");
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&stale_before];
    values.extend(desks.iter().map(|d| d as &dyn rusqlite::ToSql));
    tx.execute(
        &format!(
            "WITH RECURSIVE held(desk) AS (
                 SELECT min(provider) FROM evidence
                 UNION ALL
                 SELECT (SELECT provider FROM evidence WHERE provider > held.desk
                         ORDER BY provider LIMIT 1)
                 FROM held WHERE held.desk IS NOT NULL
             )
             DELETE FROM evidence WHERE rowid IN (
                 SELECT evidence.rowid FROM held JOIN evidence ON evidence.provider = held.desk
                 WHERE held.desk IS NOT NULL AND held.desk NOT IN ({marks})
                   AND evidence.time < ?1
                 LIMIT {STALE_EVIDENCE_PER_RUN})"
        ),
        values.as_slice(),
    )?;
    Ok(())
}

/// At most this many of the lines kept longest are looked at for history by one run.
const STALE_EVIDENCE_PER_RUN: i64 = 100_000;

/// Lets go of the observations of addresses last seen before `stale_before` (`max_age_days`):
/// selection passes them over, and an address seen again starts afresh, so they only took
/// room. A spoofed flood leaves a million of them a day; kept, the state would grow until the
/// disk is full. Each run looks at `visit` of them on from where the last one stopped, in the
/// order of the table's key (there is no index by time, which would cost a tenth more per
/// address): twice as many as it wrote and [`STALE_OBSERVATIONS_VISITED`] more, so that the
/// search keeps ahead of any flood and a run's cost stays bounded whatever the history.
/// Returns the heads of those let go of.
fn let_go_of_stale_observations(
    tx: &Transaction<'_>,
    stale_before: i64,
    pass: StalePass,
) -> Result<Vec<Observation>> {
    let StalePass {
        from,
        last,
        visited,
        visit,
    } = pass;
    let Some(last) = last else {
        // At the end of the table (or it is empty): the next run starts from its beginning.
        tx.execute(
            "DELETE FROM meta WHERE key = ?1",
            [OBSERVATIONS_VISITED_KEY],
        )?;
        return Ok(Vec::new());
    };
    let let_go = tx
        .prepare(
            "DELETE FROM observation WHERE ip > ?1 AND ip <= ?2 AND last_seen < ?3
             RETURNING ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports",
        )?
        .query_map(params![from, last, stale_before], stale_head)?
        .filter_map(Result::transpose)
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if visited < visit {
        tx.execute(
            "DELETE FROM meta WHERE key = ?1",
            [OBSERVATIONS_VISITED_KEY],
        )?;
    } else {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![OBSERVATIONS_VISITED_KEY, last],
        )?;
    }
    Ok(let_go)
}

/// The head (address, times, packets) of an observation let go of as history, and its
/// protocols and ports (whether XARF can tell it), from a row of `ip, first_seen, last_seen,
/// hits, protocols, dst_ports, src_ports`; `None` for a row whose address is no address (a
/// state edited by hand), which is let go of all the same.
fn stale_head(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Observation>> {
    let Ok(ip) = ip_at(r, 0) else {
        return Ok(None);
    };
    let mut o = Observation::new(ip, r.get(1)?);
    o.last_seen = r.get(2)?;
    o.hits = r.get::<_, i64>(3)? as u64;
    o.protocols = split(&r.get::<_, String>(4)?);
    o.dst_ports = split(&r.get::<_, String>(5)?);
    o.src_ports = split(&r.get::<_, String>(6)?);
    Ok(Some(o))
}

/// A look for history: the observations after `from` up to `last` (`None` at the end of the
/// table) in key order, `visited` of the `visit` it may look at.
struct StalePass {
    from: String,
    last: Option<String>,
    visited: i64,
    visit: i64,
}

/// How many observations the look for history of a run that stores `stored` looks at.
fn stale_visit(stored: usize) -> i64 {
    (stored as i64).saturating_mul(2) + STALE_OBSERVATIONS_VISITED
}

/// The next look for history, of `visit` observations, on the table as it is.
/// `has_meta`: whether the state has the table that keeps where the last look ended (a state
/// no run has brought to schema 5 has none, and is looked at from its start).
fn stale_pass(conn: &Connection, visit: i64, has_meta: bool) -> Result<StalePass> {
    let from: String = match has_meta {
        true => conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [OBSERVATIONS_VISITED_KEY],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default(),
        false => String::new(),
    };
    let (last, visited) = conn.query_row(
        "SELECT max(ip), count(*) FROM
             (SELECT ip FROM observation WHERE ip > ?1 ORDER BY ip LIMIT ?2)",
        params![from, visit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(StalePass {
        from,
        last,
        visited,
        visit,
    })
}

/// At least this many stored observations are looked at for history by each run that stores
/// what it read.
const STALE_OBSERVATIONS_VISITED: i64 = 20_000;

/// Where in the observations' key order the last look for history stopped.
const OBSERVATIONS_VISITED_KEY: &str = "observations_visited_to";

fn update_evidence(
    tx: &Transaction<'_>,
    update: &EvidenceUpdate<'_>,
    stale_before: Option<i64>,
) -> Result<()> {
    let desk = update.desk;
    if let Some(t) = stale_before {
        // History is let go from the lines kept longest, a bounded number a run: lines are
        // kept in about the order they were logged, so those kept first are the first to age,
        // and a line kept out of order goes when the lines before it have gone. (An index by
        // time would do it at once, but costs more than the lines themselves to keep up.)
        // Until then a stale line is neither shown nor counted as one of its address's.
        tx.execute(
            "DELETE FROM evidence WHERE provider = ?1 AND time < ?2 AND seq IN
                (SELECT seq FROM evidence WHERE provider = ?1 ORDER BY seq LIMIT ?3)",
            params![desk, t, STALE_EVIDENCE_PER_RUN],
        )?;
    }
    if update.dense.is_some() {
        tx.execute(
            "DELETE FROM evidence INDEXED BY evidence_dense WHERE provider = ?1 AND dense = 1",
            [desk],
        )?;
    }
    let dense = update.dense.unwrap_or_default();
    // Numbered on from where the run began, whatever went since: a number is never given
    // again within a run, so that the lines a run keeps are numbered above all that earlier
    // runs kept (see `Intake::kept_before`).
    let wanted = i64::try_from(update.lines.len() + dense.len()).unwrap_or(i64::MAX);
    let mut seq = update.first_seq;
    if seq.checked_add(wanted).is_none() {
        bail!(
            "the log lines kept for {desk} are numbered up to the largest number the file holds (edited by hand?); to start their numbering afresh: sqlite3 state.db \"DELETE FROM evidence WHERE provider = '{desk}'\""
        );
    }
    let mut own = tx.prepare(
        "INSERT INTO evidence (provider, time, seq, ip, line, dense)
         SELECT ?1, ?2, ?3, ?4, ?5, 0
         WHERE (SELECT count(*) FROM evidence INDEXED BY evidence_by_ip
                WHERE provider = ?1 AND ip = ?4 AND dense = 0 AND time >= ?7) < ?6",
    )?;
    // An address with its lines kept already keeps a line earlier than them all in place of
    // its latest: the time a report says it was first seen is in a line, whatever order the
    // runs found its lines in (a log host's file of another host read later, a line logged
    // late).
    let mut earliest = tx.prepare(
        "INSERT INTO evidence (provider, time, seq, ip, line, dense)
         SELECT ?1, ?2, ?3, ?4, ?5, 0
         WHERE ?2 < (SELECT min(time) FROM evidence INDEXED BY evidence_by_ip
                     WHERE provider = ?1 AND ip = ?4 AND dense = 0 AND time >= ?6)",
    )?;
    let mut latest_out = tx.prepare(
        "DELETE FROM evidence WHERE provider = ?1 AND seq =
            (SELECT seq FROM evidence INDEXED BY evidence_by_ip
             WHERE provider = ?1 AND ip = ?2 AND dense = 0 AND time >= ?3
             ORDER BY time DESC, seq DESC LIMIT 1)",
    )?;
    let per_ip = i64::try_from(update.per_ip).unwrap_or(i64::MAX);
    let fresh = stale_before.unwrap_or(i64::MIN);
    let mut texts = update.spool.reader();
    // An address's own lines are kept first, then those of the run's densest windows while
    // it has room; each is numbered by its place in time order, so that the lines of one
    // second read back in the order logged.
    let numbered = || update.lines.iter().zip(seq..);
    let own_first = (numbered().filter(|(l, _)| l.own)).chain(numbered().filter(|(l, _)| !l.own));
    for (l, seq) in own_first {
        let text = texts.text(l).map_err(crate::spool::read_back_failed)?;
        let ip = l.ip.to_string();
        let put = own.execute(params![desk, l.time, seq, ip, text, per_ip, fresh])?;
        if put == 0 && earliest.execute(params![desk, l.time, seq, ip, text, fresh])? > 0 {
            latest_out.execute(params![desk, ip, fresh])?;
        }
    }
    seq += update.lines.len() as i64;
    let mut window = tx.prepare(
        "INSERT INTO evidence (provider, time, seq, ip, line, dense) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
    )?;
    for l in dense {
        window.execute(params![desk, l.time, seq, l.ip.to_string(), l.text])?;
        seq += 1;
    }
    Ok(())
}

/// The page cache a run's store of what it read may use (KiB): a flood's million records and
/// three million lines are stored a third faster with it than with SQLite's 2 MiB, and a
/// larger one would take the run that stores them past half a GiB.
const INGEST_CACHE_KIB: u32 = 48 << 10;

/// The zones of a source's prefixes as kept in `meta` (a JSON object, prefix to zone); none
/// from a value that is not one.
fn zones_of(value: Option<&str>) -> BTreeMap<String, String> {
    value
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Per source and prefix, the last packet time a run counted as a hit, and the zone
/// (`timezone`) those times were made in: what a read after `reread` passes over.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted<'a> {
    /// (source, prefix, last packet time counted as a hit).
    pub times: &'a [(String, String, i64)],
    pub zone: &'a str,
}

/// What [`State::commit_ingest`] writes.
struct Ingested<'a> {
    observations: &'a [&'a Observation],
    cursors: &'a [(String, StoredCursor)],
    /// (source, prefix, last packet time counted as a hit).
    counted: &'a [(String, String, i64)],
    evidence: &'a [EvidenceUpdate<'a>],
    /// The desks configured, when the run read anything: the lines kept for any other (a
    /// provider taken out of the configuration, discovery turned off) are let go.
    desks: &'a [&'a str],
    stale_before: Option<i64>,
    now: &'a str,
    /// The zone the times of `counted` were made in.
    zone: &'a str,
    unsettle: bool,
}

/// Stores what a run read; returns the heads (address, times, packets) of the observations it
/// let go of as history.
fn write_ingest(conn: &mut Connection, ingested: &Ingested<'_>) -> Result<Vec<Observation>> {
    let Ingested {
        observations,
        cursors,
        counted,
        evidence,
        desks,
        stale_before,
        now,
        zone,
        unsettle,
    } = *ingested;
    // The write lock is taken first, waiting its turn: a transaction that read first and then
    // met another writer would be refused at once ("database is locked"), SQLite giving a
    // reader no wait for a writer's lock.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut let_go = Vec::new();
    // The look for history is fixed on the table as it is before this run's records go in, as
    // a preview sees it (see [`State::stale_observations_ahead`]).
    let pass = match (desks.is_empty(), stale_before) {
        (false, Some(_)) => Some(stale_pass(&tx, stale_visit(observations.len()), true)?),
        _ => None,
    };
    if unsettle {
        tx.execute("DELETE FROM meta WHERE key = 'settled'", [])?;
    }
    {
        let mut put = tx.prepare(
            "INSERT OR REPLACE INTO observation (ip, first_seen, last_seen, hits, protocols, dst_ports, src_ports, dsts, hosts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for o in observations {
            put.execute(params![
                o.ip.to_string(),
                o.first_seen,
                o.last_seen,
                o.hits as i64,
                join(&o.protocols),
                join(&o.dst_ports),
                join(&o.src_ports),
                join(&o.dsts),
                join(&o.hosts),
            ])?;
        }
        // Per source, the zone each prefix's time was made in: a time made in another zone
        // than this run's is replaced, not kept when later (a year-less stamp is another
        // instant in each), and the prefix is labelled with this run's zone.
        // Each with whether this run changed it: a log host's thousands of files keep
        // their zones from run to run, and are not written again.
        let mut zones: BTreeMap<&str, (BTreeMap<String, String>, bool)> = BTreeMap::new();
        let mut get = tx.prepare("SELECT value FROM meta WHERE key = ?1")?;
        let mut later = tx.prepare(
            "INSERT INTO counted (source, prefix, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (source, prefix) DO UPDATE SET until = max(until, excluded.until)",
        )?;
        let mut replace = tx.prepare(
            "INSERT OR REPLACE INTO counted (source, prefix, until) VALUES (?1, ?2, ?3)",
        )?;
        for (source, prefix, until) in counted {
            let (of_source, changed) = match zones.entry(source) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let stored: Option<String> = get
                        .query_row([format!("{COUNTED_ZONE_KEY}{source}")], |r| r.get(0))
                        .optional()?;
                    e.insert((zones_of(stored.as_deref()), false))
                }
            };
            let made_in = of_source.get(prefix).map(String::as_str);
            let put = match made_in {
                Some(z) if z != zone => &mut replace,
                _ => &mut later,
            };
            put.execute(params![source, prefix, until])?;
            if made_in != Some(zone) {
                of_source.insert(prefix.clone(), zone.to_string());
                *changed = true;
            }
        }
        let mut put = tx.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
        for (source, (of_source, _)) in zones.iter().filter(|(_, (_, changed))| *changed) {
            let value = serde_json::to_string(of_source)?;
            put.execute(params![format!("{COUNTED_ZONE_KEY}{source}"), value])?;
        }
        let mut put = tx.prepare(
            "INSERT OR REPLACE INTO cursor (source, dev, ino, fingerprint, offset, updated_at, journal, known_siblings, born, tail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut done = tx.prepare("DELETE FROM meta WHERE key = ?1")?;
        for (source, cursor) in cursors {
            // A source read again is read: its next cursor is an ordinary one.
            done.execute([format!("{REREAD_KEY}{source}")])?;
            match cursor {
                StoredCursor::File(c) => put.execute(params![
                    source,
                    c.dev as i64,
                    c.ino as i64,
                    c.fingerprint,
                    c.offset as i64,
                    now,
                    None::<String>,
                    (!c.known_siblings.is_empty())
                        .then(|| serde_json::to_string(&c.known_siblings))
                        .transpose()?,
                    c.born.map(|b| serde_json::to_string(&b)).transpose()?,
                    (!c.tail.is_empty()).then_some(&c.tail)
                ])?,
                StoredCursor::Journal(j) => put.execute(params![
                    source,
                    0,
                    0,
                    Vec::<u8>::new(),
                    0,
                    now,
                    j,
                    None::<String>,
                    None::<String>,
                    None::<Vec<u8>>
                ])?,
                StoredCursor::Moved => {
                    tx.execute("DELETE FROM cursor WHERE source = ?1", [source])?
                }
            };
        }
        for update in evidence {
            update_evidence(&tx, update, stale_before)?;
        }
        if let (false, Some(t)) = (desks.is_empty(), stale_before) {
            let_go_of_other_desks(&tx, desks, t)?;
            if let Some(pass) = pass {
                let_go = let_go_of_stale_observations(&tx, t, pass)?;
            }
        }
    }
    tx.commit()?;
    Ok(let_go)
}

fn write_report(conn: &mut Connection, r: &ReportRecord) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO report (id, provider, recipients, subject, message_id, status, created_at, sent_at, attempts, message,
                             contact_source, contact_network, handed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            r.id,
            r.provider,
            serde_json::to_string(&r.recipients)?,
            r.subject,
            r.message_id,
            r.status.as_str(),
            r.created_at,
            r.sent_at,
            r.attempts,
            r.message,
            r.contact.as_ref().map(|c| &c.source),
            r.contact.as_ref().and_then(|c| c.network.as_ref()),
            r.handed,
        ],
    )?;
    {
        let mut put = tx.prepare(
            "INSERT INTO report_ip (report_id, ip, hits, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        // The lines kept of these IPs stay until the report is sent (see
        // `State::let_go_of_lines`): a report withdrawn or refused unsent gives its addresses
        // back, and the report that replaces it shows them.
        for i in &r.ips {
            let ip = i.ip.to_string();
            put.execute(params![r.id, ip, i.hits as i64, i.first_seen, i.last_seen])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Writes the outcome of one delivery attempt to the report's row.
fn write_outcome(
    conn: &Connection,
    id: &str,
    status: Status,
    detail: &str,
    at: &str,
) -> Result<()> {
    let changed = match status {
        // Attempts are counted when they begin (see `State::begin_attempt`).
        Status::Sent => conn.execute(
            "UPDATE report SET status = 'sent', sent_at = ?2, server_reply = ?3 WHERE id = ?1",
            params![id, at, detail],
        )?,
        Status::Failed | Status::Rejected => conn.execute(
            "UPDATE report SET status = ?2, last_error = ?3 WHERE id = ?1",
            params![id, status.as_str(), detail],
        )?,
        Status::Sending => {
            conn.execute("UPDATE report SET status = 'sending' WHERE id = ?1", [id])?
        }
    };
    if changed != 1 {
        bail!("report {id} is not in the ledger");
    }
    Ok(())
}

/// One delivery between [`State::begin_attempt`] and its outcome: the write lock is held, so
/// nothing else can stand between the transport's answer and the ledger.
pub struct Attempt<'a> {
    state: &'a mut State,
    id: String,
    open: bool,
    /// Whether the body may have reached a server (see [`Attempt::not_handed`]).
    handed: bool,
}

impl Attempt<'_> {
    /// Says that this attempt ended before the report's body went to any server (a refused
    /// sender, a connection refused): recorded with its outcome, it is not counted among
    /// those that may have handed it.
    pub fn not_handed(&mut self) {
        self.handed = false;
    }

    /// When the report first failed in a way that may pass or not (see
    /// [`State::unclear_since`]).
    pub fn unclear_since(&self) -> Result<Option<String>> {
        self.state.unclear_since(&self.id)
    }

    /// Records the transport's answer. Should the disk refuse it, the reserve is given back and
    /// the outcome written into that space; the next attempt must win the reserve back first.
    pub fn record(self, status: Status, detail: &str, at: &str) -> Result<()> {
        self.record_outcome(status, detail, at, Outcome::Plain)
            .map(|_| ())
    }

    /// [`Attempt::record`] for a report a remote intake accepted: `sent`, with the id the
    /// intake gave it, in the same transaction.
    pub fn record_sent_remote(self, remote_id: &str, at: &str) -> Result<()> {
        let remote = Outcome::Remote(remote_id);
        self.record_outcome(Status::Sent, remote_id, at, remote)
            .map(|_| ())
    }

    /// Records a report its desk's server deferred (a 4xx): `failed`, to be sent again, and
    /// the first time it was deferred kept (see [`State::deferred_since`]).
    pub fn record_deferred(self, detail: &str, at: &str) -> Result<()> {
        self.record_outcome(Status::Failed, detail, at, Outcome::Deferred)
            .map(|_| ())
    }

    /// Records a report that did not reach its desk (the relay down, a dialogue given up):
    /// `failed`, to be sent again, and when the desk first deferred it forgotten.
    pub fn record_unreached(self, detail: &str, at: &str) -> Result<()> {
        self.record_outcome(Status::Failed, detail, at, Outcome::Unreached)
            .map(|_| ())
    }

    /// Records a failure that may pass or not (see `SendError::Unclear`): `failed`, to be
    /// sent again, the first of an unbroken run of such times kept (see
    /// [`State::unclear_since`]; any other outcome ends the run); no word from the desk
    /// either (as [`Attempt::record_unreached`]).
    pub fn record_unclear(self, detail: &str, at: &str) -> Result<()> {
        self.record_outcome(Status::Failed, detail, at, Outcome::Unclear)
            .map(|_| ())
    }

    /// Records a body that went out without a reply that could be read: `failed`, to be sent
    /// again, until it is the [`UNCONFIRMED_AT_MOST`]th such time; then `sent`, its reply
    /// saying it was not confirmed. Returns the status recorded.
    pub fn record_unconfirmed(self, detail: &str, at: &str) -> Result<Status> {
        self.record_outcome(Status::Failed, detail, at, Outcome::Unconfirmed)
    }

    fn record_outcome(
        mut self,
        status: Status,
        detail: &str,
        at: &str,
        outcome: Outcome<'_>,
    ) -> Result<Status> {
        let first = match self.commit(status, detail, at, outcome) {
            Ok(status) => return Ok(status),
            Err(first) => first,
        };
        self.rollback();
        let _ = std::fs::remove_file(self.state.reserve_path());
        let again = match self.state.conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                self.open = true;
                self.commit(status, detail, at, outcome)
            }
            Err(e) => Err(e.into()),
        };
        match again {
            Ok(status) => Ok(status),
            Err(_) => {
                self.rollback();
                Err(first.context(format!("{}: cannot write", self.state.path.display())))
            }
        }
    }

    fn commit(
        &mut self,
        status: Status,
        detail: &str,
        at: &str,
        outcome: Outcome<'_>,
    ) -> Result<Status> {
        let mut status = status;
        let mut detail = std::borrow::Cow::Borrowed(detail);
        if let Outcome::Unconfirmed = outcome {
            let times: i64 = self.state.conn.query_row(
                "UPDATE report SET unconfirmed = unconfirmed + 1 WHERE id = ?1
                 RETURNING unconfirmed",
                [&self.id],
                |r| r.get(0),
            )?;
            if times >= UNCONFIRMED_AT_MOST {
                status = Status::Sent;
                detail = format!(
                    "not confirmed: the body went out {times} times without a reply that could be read (taken as delivered, not sent again): {detail}"
                )
                .into();
            }
        }
        write_outcome(&self.state.conn, &self.id, status, &detail, at)?;
        if !self.handed {
            self.state.conn.execute(
                "UPDATE report SET handed = max(handed - 1, 0) WHERE id = ?1",
                [&self.id],
            )?;
        }
        match outcome {
            Outcome::Deferred => self.state.conn.execute(
                "UPDATE report SET deferred_since = coalesce(deferred_since, ?2) WHERE id = ?1",
                params![self.id, at],
            )?,
            Outcome::Unreached => self.state.conn.execute(
                "UPDATE report SET deferred_since = NULL WHERE id = ?1",
                [&self.id],
            )?,
            // Kept from the first of an unbroken run of such failures; one stored by a clock
            // that was ahead counts from now.
            Outcome::Unclear => self.state.conn.execute(
                "UPDATE report SET deferred_since = NULL,
                        unclear_since = CASE WHEN unclear_since IS NULL OR unclear_since > ?2
                                             THEN ?2 ELSE unclear_since END
                 WHERE id = ?1",
                params![self.id, at],
            )?,
            _ => 0,
        };
        // Any other outcome ends such a run of failures.
        if !matches!(outcome, Outcome::Unclear) {
            self.state.conn.execute(
                "UPDATE report SET unclear_since = NULL WHERE id = ?1 AND unclear_since IS NOT NULL",
                [&self.id],
            )?;
        }
        if let Outcome::Remote(remote_id) = outcome {
            // A stored request tagged `lifecycle:test` is remembered as a test.
            self.state.conn.execute(
                "UPDATE report SET remote_id = ?2,
                        remote_test = instr(CAST(message AS TEXT), ?3) > 0 WHERE id = ?1",
                params![self.id, remote_id, "\"lifecycle:test\""],
            )?;
        }
        self.state.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(status)
    }

    fn rollback(&mut self) {
        if self.open && !self.state.conn.is_autocommit() {
            let _ = self.state.conn.execute_batch("ROLLBACK");
        }
        self.open = false;
    }
}

/// What else an outcome records beside its status.
#[derive(Clone, Copy)]
enum Outcome<'a> {
    Plain,
    /// The id a remote intake gave the report.
    Remote(&'a str),
    /// The body went out without a reply that could be read.
    Unconfirmed,
    /// The desk's server said later (a 4xx): the first such time is kept.
    Deferred,
    /// No word from the desk (the relay down, a dialogue given up): when it first deferred
    /// is forgotten, so that the operator's own outage between two deferrals is not the
    /// desk's.
    Unreached,
    /// A failure that may pass or not: its first time is kept, and it is no word from the
    /// desk (as `Unreached`).
    Unclear,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.rollback();
    }
}

/// Opens `path` in a folder this user may not write in, to read only. With no WAL files
/// beside it (no run has it open: a backup, a snapshot) the file is all there is, and is
/// read as a file that does not change, which needs no WAL files made; with them (a run
/// may be writing it), SQLite reads through them as they stand, under their locks.
fn open_unwritable(path: &Path, dir: &Path) -> rusqlite::Result<Connection> {
    let in_use = ["state.db-wal", "state.db-shm"]
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if in_use {
        return Connection::open_with_flags(path, flags);
    }
    // A URI's path: its `%`, `?` and `#` written as escapes.
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
}

/// A state at `path` whose schema number (`version`) is below what its tables are, said with
/// the way out; `how` says how it was found (after the path's colon).
fn below_its_tables(path: &Path, version: i64, how: &str) -> String {
    format!(
        "{}:{how} its schema number ({version}) is below its tables' (a damaged or hand-edited file); restore it from a backup, or move it away with reports.mark to start afresh",
        path.display()
    )
}

/// Text an error was kept as (across threads), named as the state's at `path` unless it
/// names the state already, as the database's own errors are (see `app`).
pub(crate) fn named_as_the_states(path: &Path, e: &str) -> anyhow::Error {
    match e.contains("state.db") {
        true => anyhow::anyhow!("{e}"),
        false => anyhow::anyhow!("{}: {e}", path.display()),
    }
}

/// Whether `id` could be a report id this tool makes: a file name of its own, never a path
/// or a hidden file.
fn is_report_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
}

/// Whether `path` exists; an error other than "not there" is not taken as a no.
/// What to say when SQLite could not open `path` ("cannot open …"): with the limit of open
/// files when that is why, which SQLite does not say.
fn open_failed(path: &Path, what: &str) -> String {
    match descriptors_left() {
        Some(advice) => format!("{what} {}: {advice}", path.display()),
        None => format!("{what} {}", path.display()),
    }
}

/// Whether this process may open no more files, and what to say of it: found by opening the
/// root folder, never the state's file. A process's locks on a file go with any descriptor
/// of it that it closes (`fcntl(2)`), and SQLite's on `state.db`, which keep another process
/// from folding away a write-ahead log a run still writes to, would go with them.
fn descriptors_left() -> Option<String> {
    std::fs::File::open("/")
        .err()
        .as_ref()
        .and_then(out_of_descriptors)
}

/// What to say of an error that is this process having no file descriptor left (EMFILE,
/// ENFILE): no file is at fault, and advice about the file would mislead.
pub(crate) fn out_of_descriptors(e: &std::io::Error) -> Option<String> {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)).then(|| {
        format!(
            "this process may open no more files (ulimit -n {}): raise the limit",
            open_files_limit()
        )
    })
}

/// This process's limit of open files (`RLIMIT_NOFILE`'s soft limit), as text.
fn open_files_limit() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the one struct it is given, which lives across the call.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur.to_string(),
        _ => "unknown".to_string(),
    }
}

fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        // A folder this user may not enter: the state is another user's.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot read {}: {e}; run abuse-mailer as the user that owns {} (or as root)",
            path.display(),
            path.parent().unwrap_or(Path::new(".")).display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Whether SQLite could not open the database or its journal: a permission or a read-only
/// mount, not a damaged file.
fn cannot_open(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::PermissionDenied
        )
    )
}

/// Whether SQLite failed for want of room on the disk: said so, or unable to grow the
/// shared-memory file it keeps beside the database (what a full disk gives when a state is
/// opened).
fn no_room(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            f.code == rusqlite::ErrorCode::DiskFull
                || f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
        }
        _ => false,
    }
}

/// What an operator can do about a state that cannot be read.
const RESTORE: &str = "restore it from a backup, or move it away (with its state.db-wal, if there is one, and reports.mark) to start afresh (every IP seen before is then reported again)";

/// A state is never empty (see [`create`]): an empty file is damage, not a new state.
fn refuse_empty(path: &Path) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() == 0 {
        bail!(
            "{}: the file is empty, not an abuse-mailer state database; {RESTORE}",
            path.display()
        );
    }
    Ok(())
}

/// Switches to WAL mode (kept in the file), so that readers never block a run's commits.
fn wal(conn: &Connection, path: &Path) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .with_context(|| format!("{}: cannot switch to WAL mode", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "{}: cannot switch to WAL mode (the file system keeps it in {mode} mode)",
            path.display()
        );
    }
    Ok(())
}

/// Takes the schema from `version` to the newest, all or nothing.
fn migrate(conn: &mut Connection, version: i64, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        // A migration that meets what it makes already there: the schema number says less
        // than the tables do (a damaged or hand-edited file), and running it again will not
        // mend that.
        tx.execute_batch(migration).map_err(|e| {
            let text = e.to_string();
            let met = text.contains("duplicate column name") || text.contains("already exists");
            if !met {
                return anyhow::Error::from(e).context(format!(
                    "{}: migration to schema {}",
                    path.display(),
                    i + 1
                ));
            }
            // Said without the migration's SQL, which the error quotes whole.
            let found = crate::excerpt::clean_line(text.lines().next().unwrap_or_default(), 120);
            let met = format!(
                " migration to schema {} met its tables already there ({found}):",
                i + 1
            );
            anyhow::anyhow!(below_its_tables(path, version, &met))
        })?;
    }
    // What migrations were given after states were made with them: a state made in between
    // has the migration's number without it (`evidence_dense` missing stopped every run).
    tx.execute_batch(AFTERTHOUGHTS).with_context(|| {
        format!(
            "{}: migration to schema {}",
            path.display(),
            MIGRATIONS.len()
        )
    })?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// The temporary name a new state is made under by process `pid` (see [`create`]).
fn creation_name(pid: u32) -> String {
    format!("{CREATION_PREFIX}{pid}")
}

/// What [`creation_name`] puts before the process id.
const CREATION_PREFIX: &str = ".state.db.new-";

/// Removes what a process killed while it made a new state left behind (its temporary
/// database and WAL files): nothing else would, and a state folder should hold only what
/// the state is. A process still alive, of any user, keeps its files.
fn remove_abandoned_creations(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = (name.to_str())
            .and_then(|n| n.strip_prefix(CREATION_PREFIX))
            .map(|rest| rest.trim_end_matches("-wal").trim_end_matches("-shm"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists: signal 0 checks without sending anything, and a process
/// of another user answers "not permitted" rather than "no such process".
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: kill with signal 0 sends nothing and touches no memory of ours.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Makes a new state under a temporary name and links it into place only when it is whole,
/// so no crash or full disk can leave a `state.db` that looks new but is not.
fn create(dir: &Path, path: &Path) -> Result<()> {
    set_aside_orphans(path)?;
    let temp = dir.join(creation_name(std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let made = (|| -> Result<()> {
        create_private(&temp)?;
        let mut conn =
            Connection::open(&temp).with_context(|| open_failed(&temp, "cannot create"))?;
        wal(&conn, &temp)?;
        migrate(&mut conn, 0, &temp)?;
        // Migrations that rebuild a table leave its old pages free: a new state starts
        // without them, its size what its schema needs.
        conn.execute_batch("VACUUM")
            .with_context(|| format!("cannot write {}", temp.display()))?;
        // Closing folds the WAL into the file, so the file alone is the whole state.
        conn.close()
            .map_err(|(_, e)| e)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::File::open(&temp)?.sync_all()?;
        // A link never replaces a state made meanwhile by another process; where the file
        // system has no links, a rename after a last look is as close as it gets.
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(_) if !exists(path)? => std::fs::rename(&temp, path),
            other => other,
        }
        .with_context(|| format!("cannot create {}", path.display()))?;
        crate::folder::sync(dir)?;
        Ok(())
    })();
    for leftover in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{leftover}", temp.display()));
    }
    made.with_context(|| format!("{}: cannot create a new state", path.display()))
}

/// A write-ahead log beside no `state.db` (the state moved away while a killed run had it
/// open, its last changes not yet folded in): SQLite would replay it into the new state made
/// there, a file then damaged, or the old state back. It is set aside under a name of its
/// own, and said: it belongs beside the state it came from. Its index (`-shm`) only speeds
/// up reading it, and goes.
fn set_aside_orphans(path: &Path) -> Result<()> {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::symlink_metadata(&wal).is_ok() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = PathBuf::from(format!("{}-wal.orphan-{stamp}", path.display()));
        std::fs::rename(&wal, &aside).with_context(|| {
            format!(
                "{} is beside no state.db (the state moved away while a run had it open) and cannot be set aside: move it away too, to where that state went",
                wal.display()
            )
        })?;
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {} was beside no state.db (the state moved away while a run had it open): set aside as {}, as it holds that state's last changes; put it back beside that state as state.db-wal before opening it",
            wal.display(),
            aside.display()
        ));
    }
    match std::fs::remove_file(format!("{}-shm", path.display())) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)
            .with_context(|| format!("cannot remove {}-shm, beside no state.db", path.display())),
        _ => Ok(()),
    }
}

/// Gives `file`, made in the state folder `dir`, to the owner of the state (of `state.db`, or
/// of `dir` while there is none), as SQLite does with the files it makes beside a database:
/// a run as root (`sudo abuse-mailer run` to retry) on the state of a service user must not
/// leave it files that user cannot open, which would stop every later run. Only root may
/// give a file away; for anyone else this changes nothing.
pub(crate) fn keep_owner(dir: &Path, file: &std::fs::File) {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(dir.join("state.db")).or_else(|_| std::fs::metadata(dir));
    let (Ok(owner), Ok(file_meta)) = (owner, file.metadata()) else {
        return;
    };
    // A file with other names is no file of ours alone: the owner of a folder the run is
    // given may have linked one of root's files there (where `fs.protected_hardlinks` is
    // off), for a run as root to hand it over.
    if file_meta.nlink() > 1 {
        return;
    }
    if (owner.uid(), owner.gid()) != (file_meta.uid(), file_meta.gid()) {
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
}

/// Creates an empty file only its owner can read: it will hold the messages sent.
fn create_private(path: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    keep_owner(path.parent().unwrap_or(Path::new(".")), &file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file as a release at `version` left it: its migrations run, nothing after.
    fn state_at_schema(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for m in &MIGRATIONS[..version] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    /// A question about one address starts from that address's rows, whatever the history
    /// holds: never from every report of the destination.
    #[test]
    fn a_question_about_one_address_starts_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        for i in 0..200 {
            let ip = format!("3.5.{}.{}", i / 250, i % 250);
            s.insert_report(&record(&format!("r{i}"), "aws", &[&ip], Status::Sent))
                .unwrap();
        }
        for provider in ["aws", CONTACT_DESKS] {
            let none: Option<&str> = None;
            let reported: [&dyn rusqlite::ToSql; 4] = [&provider, &none, &"[]", &"3.5.0.1"];
            let rejected: [&dyn rusqlite::ToSql; 3] = [&provider, &none, &"3.5.0.1"];
            for (sql, args) in [
                (reported_sql(provider), &reported[..]),
                (rejected_sql(provider), &rejected[..]),
            ] {
                let plan: Vec<String> = s
                    .conn
                    .prepare(&format!(
                        "EXPLAIN QUERY PLAN {}",
                        of_one_address(&sql, args.len())
                    ))
                    .unwrap()
                    .query_map(args, |r| r.get(3))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert!(
                    plan[0].starts_with("SEARCH i USING COVERING INDEX report_ip_by_ip (ip=?"),
                    "{plan:?}"
                );
            }
        }
    }

    /// A run asks for the cursors of each file it has no cursor for by name: through the
    /// index, never by walking every cursor (a log host has thousands).
    #[test]
    fn a_files_cursors_are_found_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let plan: Vec<String> = s
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                cursors_of_file_sql(s.version)
            ))
            .unwrap()
            .query_map([1, 2], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan[0].starts_with("SEARCH cursor USING INDEX cursor_by_file (dev=? AND ino=?)"),
            "{plan:?}"
        );
    }

    /// A quiet run asks for the waiting reports' addresses: from the waiting reports, never
    /// by walking every address ever reported.
    #[test]
    fn the_waiting_addresses_are_found_from_the_waiting_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        for i in 0..50 {
            let ip = format!("3.5.140.{i}");
            s.insert_report(&record(&format!("r{i}"), "aws", &[&ip], Status::Sent))
                .unwrap();
        }
        s.insert_report(&record("w", "aws", &["34.223.47.190"], Status::Failed))
            .unwrap();
        let plan: Vec<String> = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PENDING_IPS}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan[0].starts_with("SCAN r"), "{plan:?}");
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN i")),
            "{plan:?}"
        );
        assert_eq!(
            s.pending_ips().unwrap(),
            ["34.223.47.190".parse::<IpAddr>().unwrap()]
        );
    }

    /// A long history, or a backlog of parts, is listed without the messages' bytes; the
    /// one message sent or shown is read on its own.
    #[test]
    fn history_and_the_backlog_are_listed_without_their_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        for (id, status) in [
            ("a", Status::Sent),
            ("b", Status::Sending),
            ("c", Status::Failed),
        ] {
            s.insert_report(&record(id, "aws", &["3.5.140.2"], status))
                .unwrap();
        }
        let history = s.history(&HistoryFilter::default()).unwrap();
        assert_eq!(history.len(), 3);
        assert!(
            history
                .iter()
                .all(|r| r.message.is_empty() && r.ips.len() == 1)
        );
        let heads = s.pending_heads().unwrap();
        assert_eq!(
            heads.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(heads.iter().all(|r| r.message.is_empty()));
        assert_eq!(s.message_of("c").unwrap(), b"msg");
        assert_eq!(s.pending().unwrap()[1].message, b"msg");
        assert_eq!(s.report("a").unwrap().unwrap().message, b"msg");
    }

    fn record(id: &str, provider: &str, ips: &[&str], status: Status) -> ReportRecord {
        ReportRecord {
            id: id.into(),
            provider: provider.into(),
            recipients: vec!["abuse@example.net".into()],
            subject: "s".into(),
            message_id: format!("<{id}@example.org>"),
            status,
            created_at: "2026-01-01T00:00:00Z".into(),
            sent_at: None,
            attempts: 0,
            last_error: None,
            server_reply: None,
            unconfirmed: 0,
            handed: 0,
            ips: ips
                .iter()
                .map(|i| ReportedIp {
                    ip: i.parse().unwrap(),
                    hits: 1,
                    first_seen: 0,
                    last_seen: 0,
                })
                .collect(),
            message: b"msg".to_vec(),
            contact: None,
        }
    }

    proptest::proptest! {
        /// Each ledger query asked of one address answers what the same query over every
        /// address says of it: a run asking address by address decides as one reading all.
        #[test]
        fn ledger_queries_asked_of_one_address_answer_as_over_all(
            reports in proptest::collection::vec(
                (0usize..3, proptest::collection::btree_set(0u8..8, 1..4), 0u8..6, 0u8..4, proptest::prelude::any::<bool>()),
                0..14,
            ),
            since in proptest::option::of(0u8..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = State::open(dir.path()).unwrap();
            let desks = ["aws", "gcp", "contact:abuse@desk.example"];
            let day = |d: u8| format!("2026-01-0{}T00:00:00Z", d + 1);
            for (n, (desk, ips, status, when, api)) in reports.iter().enumerate() {
                let ips: Vec<String> = ips.iter().map(|i| format!("3.5.140.{i}")).collect();
                let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
                let mut r = record(&format!("r{n}"), desks[*desk], &ips, Status::Sending);
                r.created_at = day(*when);
                if *api {
                    r.recipients = vec!["https://abuse.us-east-1.amazonaws.com".into()];
                    // Every other one a test report, as `aws_api.test` makes them.
                    if n % 2 == 0 {
                        r.message = br#"{"lifecycle:test"}"#.to_vec();
                    }
                }
                s.insert_report(&r).unwrap();
                match status {
                    0 => {}
                    1 => s.mark(&r.id, Status::Failed, "451", &day(*when)).unwrap(),
                    2 => s.mark(&r.id, Status::Rejected, "550", &day(*when)).unwrap(),
                    3 => s.mark_sent_remote(&r.id, "R1", &day(*when)).unwrap(),
                    _ => s.mark(&r.id, Status::Sent, "250", &day(*when)).unwrap(),
                }
            }
            let since = since.map(day);
            let since = since.as_deref();
            for desk in ["aws", "gcp", CONTACT_DESKS] {
                let withdrawn = ["r1", "r4"];
                type Query<'q> = Box<dyn Fn(Option<IpAddr>) -> Result<IpSet> + 'q>;
                let queries: Vec<Query<'_>> = vec![
                    Box::new(|only| s.reported_but(desk, since, &[], only)),
                    Box::new(|only| s.reported_but(desk, since, &withdrawn, only)),
                    Box::new(|only| s.rejected_ips(desk, since, only)),
                    Box::new(|only| s.test_only_ips(desk, only)),
                ];
                for query in &queries {
                    let all = query(None).unwrap();
                    for i in 0..8 {
                        let ip: IpAddr = format!("3.5.140.{i}").parse().unwrap();
                        let one = query(Some(ip)).unwrap();
                        proptest::prop_assert_eq!(one.contains(&ip), all.contains(&ip));
                        proptest::prop_assert!(one.len() <= 1);
                    }
                }
                // The time of the last report sent too, asked either way.
                let all = s.ever_sent(desk, None).unwrap();
                for i in 0..8 {
                    let ip: IpAddr = format!("3.5.140.{i}").parse().unwrap();
                    let one = s.ever_sent(desk, Some(ip)).unwrap();
                    proptest::prop_assert_eq!(one.get(&ip), all.get(&ip));
                    proptest::prop_assert!(one.len() <= 1);
                }
            }
        }
    }

    #[test]
    fn ledger_statuses_decide_what_counts_as_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        s.insert_report(&record("a", "aws", &["3.5.140.2"], Status::Sending))
            .unwrap();
        s.insert_report(&record("b", "aws", &["3.5.140.3"], Status::Sending))
            .unwrap();
        s.insert_report(&record("c", "gcp", &["34.1.1.1"], Status::Sending))
            .unwrap();
        s.mark("a", Status::Sent, "250 ok", "2026-01-01T00:00:01Z")
            .unwrap();
        s.mark("b", Status::Rejected, "550 no", "2026-01-01T00:00:01Z")
            .unwrap();
        let aws = s.reported("aws", None).unwrap();
        assert_eq!(aws, IpSet::from_iter(["3.5.140.2".parse().unwrap()]));
        assert_eq!(s.pending().unwrap().len(), 1, "gcp is still sending");
        assert_eq!(
            s.thread_root("aws").unwrap().as_deref(),
            Some("<a@example.org>")
        );
        let history = s
            .history(&HistoryFilter {
                ip: Some("3.5.140.3".parse().unwrap()),
                provider: None,
            })
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, Status::Rejected);
        assert!(s.mark("zzz", Status::Sent, "", "").is_err());
    }

    #[test]
    fn remote_status_is_kept_and_finished_reports_are_not_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        for (id, ip) in [("a", "3.5.140.2"), ("b", "3.5.140.3"), ("c", "3.5.140.4")] {
            s.insert_report(&record(id, "aws", &[ip], Status::Sending))
                .unwrap();
        }
        s.mark_sent_remote("a", "RAAAAAAAAAAAAAAAAAAAA", "2026-01-01T00:00:01Z")
            .unwrap();
        s.mark_sent_remote("b", "RBBBBBBBBBBBBBBBBBBBB", "2026-01-01T00:00:01Z")
            .unwrap();
        let aws = ["aws".to_string()];
        assert_eq!(s.remote_open(&aws, 10).unwrap().len(), 2);
        assert_eq!(s.remote_open(&aws, 1).unwrap().len(), 1, "bounded");
        assert!(s.remote_open(&["gcp".to_string()], 10).unwrap().is_empty());
        assert!(
            s.set_remote_status("a", "QUEUED", None, Some("Received"), "t1")
                .unwrap()
        );
        assert!(
            !s.set_remote_status("a", "QUEUED", None, Some("Received"), "t2")
                .unwrap(),
            "nothing new, nothing written"
        );
        s.set_remote_status("a", "COMPLETED", Some("ACTIONED"), None, "t3")
            .unwrap();
        s.set_remote_status("b", "GONE", None, None, "t3").unwrap();
        assert!(s.remote_open(&aws, 10).unwrap().is_empty());
        let remotes = s.remotes().unwrap();
        assert_eq!(remotes["a"].changed_at.as_deref(), Some("t3"));
        assert_eq!(remotes["a"].reason.as_deref(), Some("ACTIONED"));
        assert!(!remotes.contains_key("c"), "not sent through an API");
        let tally = s.remote_tally("aws").unwrap();
        assert_eq!((tally.actioned, tally.open), (1, 0));
    }

    /// A report finished for a reason AWS added after this version is not counted as
    /// declined: it is counted apart.
    #[test]
    fn a_finished_report_of_a_reason_not_known_is_not_counted_declined() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        let reasons = [
            Some("NOT_RESOLVABLE_TO_AWS"),
            Some("REVIEWED_NO_AWS_ACTION"),
            Some("CONTENT_DOWN_OR_INACCESSIBLE"),
            Some("FORWARDED_TO_CUSTOMER"),
            None,
        ];
        for (n, reason) in reasons.iter().enumerate() {
            let id = format!("r{n}");
            let ip = format!("3.5.140.{n}");
            s.insert_report(&record(&id, "aws", &[&ip], Status::Sending))
                .unwrap();
            s.mark_sent_remote(&id, &format!("R{n:0>20}"), "2026-01-01T00:00:01Z")
                .unwrap();
            s.set_remote_status(&id, "COMPLETED", *reason, None, "t1")
                .unwrap();
        }
        let tally = s.remote_tally("aws").unwrap();
        assert_eq!((tally.declined, tally.other), (3, 2));
    }

    #[test]
    fn foreign_and_newer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let other = Connection::open(&path).unwrap();
        other.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(other);
        let e = State::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("not an abuse-mailer state database"), "{e}");

        std::fs::remove_file(&path).unwrap();
        drop(State::open(dir.path()).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = State::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");

        std::fs::write(&path, b"this is not sqlite at all, just text").unwrap();
        let e = format!("{:#}", State::open(dir.path()).err().unwrap());
        assert!(e.contains("state.db"), "{e}");
    }

    #[test]
    fn an_empty_state_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"").unwrap();
        for e in [
            State::open(dir.path()).err().unwrap(),
            State::open_read_only(dir.path()).err().unwrap(),
        ] {
            let e = format!("{e:#}");
            assert!(e.contains("state.db") && e.contains("empty"), "{e}");
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(
            State::open_read_only(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_new_state_is_whole_before_it_has_its_name() {
        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.db"], "no temporary is left");
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
    }

    #[test]
    fn a_schema_4_state_is_migrated_keeping_its_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(state_at_schema(&path, 4));
        let reader = State::open_read_only(dir.path()).unwrap().unwrap();
        assert!(
            reader
                .history(&HistoryFilter::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(reader.owner().unwrap(), None, "readers know schema 4");
        // The remote intake's queries of `history` and `preview` find nothing there yet.
        assert!(reader.remotes().unwrap().is_empty());
        assert_eq!(reader.remote_tally("aws").unwrap(), RemoteTally::default());
        assert!(reader.test_only_ips("aws", None).unwrap().is_empty());
        assert!(reader.rejected_ips("aws", None, None).unwrap().is_empty());
        drop(reader);
        let mut s = State::open(dir.path()).unwrap();
        s.insert_report(&record("a", "aws", &["3.5.140.2"], Status::Sending))
            .unwrap();
        drop(s);
        // Reopened in the old rollback mode, as a release before WAL left it.
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .unwrap();
        drop(conn);
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.pending().unwrap().len(), 1);
        assert_eq!(s.owner().unwrap(), None);
        s.set_owner("/etc/abuse-mailer/config.toml").unwrap();
        assert_eq!(
            s.owner().unwrap().as_deref(),
            Some("/etc/abuse-mailer/config.toml")
        );
    }

    /// A reader (preview, history, contacts) on a state that no run has brought to schema 9
    /// yet: nothing was discovered, and nothing fails for the missing tables and columns.
    #[test]
    fn a_schema_8_state_reads_as_one_with_nothing_discovered() {
        use crate::discover::{ContactCache, Source};
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = state_at_schema(&dir.path().join("state.db"), 8);
            conn.execute_batch(
                "INSERT INTO report (id, provider, recipients, subject, message_id, status, created_at, message)
                     VALUES ('a', 'aws', '[\"abuse@example.net\"]', 's', '<a@example.org>', 'sent', '2026-01-01T00:00:00Z', x'6d7367');",
            )
            .unwrap();
        }
        let s = State::open_read_only(dir.path()).unwrap().unwrap();
        let ip: IpAddr = "45.1.0.9".parse().unwrap();
        assert_eq!(s.find(Source::Rdap, ip, chrono::Utc::now()).unwrap(), None);
        assert_eq!(s.bootstrap(4).unwrap(), None);
        assert!(s.failures().unwrap().is_empty());
        assert!(s.contacts(None).unwrap().is_empty());
        assert!(
            (s.refused_desks("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
                .unwrap())
            .is_empty()
        );
        assert!(s.reported(CONTACT_DESKS, None).unwrap().is_empty());
        let history = s.history(&HistoryFilter::default()).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].contact, None);
    }

    /// A reader opened beside a run's connection (a run asks for the ledger that way) leaves
    /// the run's locks on `state.db` as they are: another process that then closes its own
    /// connection finds the file in use and leaves the write-ahead log the run writes to.
    /// The reader had opened and closed `state.db` itself, to see whether it was readable,
    /// and a process's `fcntl` locks on a file go with any descriptor of it it closes.
    #[test]
    fn a_reader_beside_a_run_leaves_the_runs_locks() {
        let dir = tempfile::tempdir().unwrap();
        let run = State::open(dir.path()).unwrap();
        run.conn
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let wal = dir.path().join("state.db-wal");
        assert!(wal.exists());
        drop(State::open_read_only(dir.path()).unwrap());
        let other = std::process::Command::new("python3")
            .arg("-c")
            .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM t').fetchall(); c.close()")
            .arg(dir.path().join("state.db"))
            .status();
        if !other.is_ok_and(|s| s.success()) {
            eprintln!("no python3 with sqlite3 here");
            return;
        }
        assert!(
            wal.exists(),
            "the run's write-ahead log was folded away under it"
        );
        run.conn.execute_batch("INSERT INTO t VALUES (2);").unwrap();
    }

    /// A report of a state of schema 19 (which did not tell an attempt that handed nothing
    /// from one that may have) counts each of its attempts as one that may have handed its
    /// body, read as it is and once migrated: it goes as stored, never dated anew or remade.
    /// But for one tried once whose failure came before any body: a relay that refused the
    /// sender, a connection refused (it went with the From refused, and a day-old Date, after
    /// the upgrade and `from` fixed together). A 451 may have answered the body.
    #[test]
    fn a_schema_19_states_attempts_count_as_handed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = state_at_schema(&dir.path().join("state.db"), 19);
            let row = |id: &str, attempts: u32, error: &str| {
                format!(
                    "INSERT INTO report (id, provider, recipients, subject, message_id, status, created_at, attempts, last_error, message)
                         VALUES ('{id}', 'aws', '[\"abuse@example.net\"]', 's', '<{id}@example.org>', 'failed', '2026-01-01T00:00:0{attempts}Z', {attempts}, '{error}', x'6d7367');"
                )
            };
            for sql in [
                row(
                    "a",
                    2,
                    "the mail server refused the sender abuse@example.org (report.from)",
                ),
                row("b", 0, ""),
                row(
                    "c",
                    1,
                    "the mail server refused the sender abuse@example.org (report.from)",
                ),
                row(
                    "d",
                    1,
                    "127.0.0.1:25: Connection error: Connection refused (os error 111)",
                ),
                row("e", 1, "transient error (451): 4.3.0 later"),
            ] {
                conn.execute_batch(&sql).unwrap();
            }
        }
        let handed = |s: &State| {
            (s.history(&HistoryFilter::default()).unwrap().iter())
                .map(|r| (r.id.clone(), r.handed))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect::<Vec<_>>()
        };
        let want: Vec<(String, u32)> = [("a", 2), ("b", 0), ("c", 0), ("d", 0), ("e", 1)]
            .map(|(id, n)| (id.to_string(), n))
            .to_vec();
        let read_only = State::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(handed(&read_only), want);
        drop(read_only);
        let migrated = State::open(dir.path()).unwrap();
        assert_eq!(handed(&migrated), want);
    }

    /// A state of schema 17 keeps no bytes before a cursor's offset: read as it is (a
    /// preview's) and migrated (a run's), its cursors are there with none, and a cursor
    /// written since keeps them. A `reread` mark written by that release still reads.
    #[test]
    fn a_schema_17_states_cursors_read_without_their_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = state_at_schema(&dir.path().join("state.db"), 17);
            conn.execute_batch(
                "INSERT INTO cursor (source, dev, ino, fingerprint, offset, updated_at, born)
                     VALUES ('/var/log/messages', 3, 7, x'4a616e', 120, '2026-01-01T00:00:00Z', '[1,2]');
                 INSERT INTO meta (key, value) VALUES ('reread:/var/log/messages',
                     '{\"dev\":3,\"ino\":7,\"fingerprint\":[74],\"offset\":120,\"known_siblings\":[],\"born\":null}');",
            )
            .unwrap();
        }
        let old = Cursor {
            dev: 3,
            ino: 7,
            fingerprint: b"Jan".to_vec(),
            offset: 120,
            known_siblings: Vec::new(),
            born: Some((1, 2)),
            tail: Vec::new(),
        };
        let read_only = State::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(
            read_only.cursor("/var/log/messages").unwrap(),
            Some(old.clone())
        );
        assert_eq!(
            read_only.cursors_of_file(3, 7).unwrap(),
            [("/var/log/messages".to_string(), old.clone())]
        );
        drop(read_only);
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.cursor("/var/log/messages").unwrap(), Some(old.clone()));
        let mark = s.reread_mark("/var/log/messages").unwrap();
        assert!(matches!(mark, Some(Some(ref c)) if c.offset == 120 && c.tail.is_empty()));
        let new = Cursor {
            offset: 180,
            tail: b"URGP=0 \n".to_vec(),
            ..old
        };
        s.set_cursors(
            &[(
                "/var/log/messages".to_string(),
                StoredCursor::File(new.clone()),
                None,
            )],
            "2026-01-02T00:00:00Z",
        )
        .unwrap();
        assert_eq!(s.cursor("/var/log/messages").unwrap(), Some(new.clone()));
        assert_eq!(
            s.cursors_of_file(3, 7).unwrap(),
            [("/var/log/messages".to_string(), new)]
        );
    }

    /// A record an older version stored with more long host names than are kept now (a log
    /// host's forged senders) reads as bounded: the short names and the four smallest long
    /// ones.
    #[test]
    fn a_stored_record_with_many_long_host_names_reads_as_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let long = |i: u32| format!("h{i}-a-sender-named-at-more-length-than-a-record-holds");
        let hosts: Vec<String> = (0..6).map(long).chain(["web1".to_string()]).collect();
        s.conn
            .execute(
                "INSERT INTO observation VALUES ('3.5.140.2', 10, 20, 7, 'TCP', '22', '40000', '198.51.100.10', ?1)",
                [hosts.join(" ")],
            )
            .unwrap();
        let read = s
            .observation("3.5.140.2".parse().unwrap())
            .unwrap()
            .unwrap();
        let names: Vec<&str> = read.hosts.iter().map(|n| n.as_str()).collect();
        let mut wanted: Vec<String> = (0..4).map(long).collect();
        wanted.push("web1".into());
        assert_eq!(names, wanted);
    }

    #[test]
    fn a_schema_6_state_is_migrated_keeping_its_observations_and_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = state_at_schema(&path, 6);
            conn.execute_batch(
                "INSERT INTO observation VALUES ('3.5.140.2', 10, 20, 7, 'TCP UDP', '22 53', '40000', '198.51.100.10', 'web1');
                 INSERT INTO observation VALUES ('2600:1f18::1', 11, 12, 1, 'TCP', '443', '', '2001:db8::1', 'web2');
                 INSERT INTO report (id, provider, recipients, subject, message_id, status, created_at, message)
                     VALUES ('a', 'aws', '[\"abuse@example.net\"]', 's', '<a@example.org>', 'sent', '2026-01-01T00:00:00Z', x'6d7367');
                 INSERT INTO report_ip VALUES ('a', '3.5.140.2', 7, 10, 20);",
            )
            .unwrap();
        }
        let s = State::open(dir.path()).unwrap();
        let o = s
            .observation("3.5.140.2".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((o.first_seen, o.last_seen, o.hits), (10, 20, 7));
        assert_eq!(o.dst_ports.as_slice(), [22, 53]);
        assert_eq!(o.hosts.as_slice(), ["web1"]);
        let mut all = Observations::new();
        s.add_observation_heads(&mut all).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            s.reported("aws", None).unwrap(),
            IpSet::from_iter(["3.5.140.2".parse().unwrap()])
        );
        let history = s
            .history(&HistoryFilter {
                ip: Some("3.5.140.2".parse().unwrap()),
                provider: None,
            })
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].ips[0].hits, 7);
        let without_rowid: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('observation', 'report_ip')
                 AND sql LIKE '%WITHOUT ROWID%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(without_rowid, 2);
    }

    #[test]
    fn an_attempt_keeps_other_writers_out_until_its_outcome_is_in() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        s.insert_report(&record("a", "aws", &["3.5.140.2"], Status::Sending))
            .unwrap();
        let other = Connection::open(dir.path().join("state.db")).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let attempt = s.begin_attempt("a", 3 << 20).unwrap();
        let reserve = dir.path().join(RESERVE_FILE);
        let meta = std::fs::metadata(&reserve).unwrap();
        assert!(meta.len() >= 6 << 20, "twice the message: {}", meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let e = other.execute_batch("BEGIN IMMEDIATE").unwrap_err();
        assert!(e.to_string().contains("locked"), "{e}");
        // Readers go on meanwhile.
        let reader = State::open_read_only(dir.path()).unwrap().unwrap();
        assert_eq!(reader.pending().unwrap().len(), 1);
        attempt
            .record(Status::Sent, "250 ok", "2026-01-01T00:00:01Z")
            .unwrap();
        assert!(reader.pending().unwrap().is_empty());
        other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();

        // Dropped without an outcome (an error on the way): the lock is let go, nothing written.
        s.insert_report(&record("b", "aws", &["3.5.140.3"], Status::Sending))
            .unwrap();
        drop(s.begin_attempt("b", 10).unwrap());
        other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
        assert_eq!(s.pending().unwrap().len(), 1);
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        drop(State::open(&state_dir).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state_dir), 0o700);
        assert_eq!(mode(&state_dir.join("state.db")), 0o600);
    }

    #[test]
    fn an_unreadable_state_names_both_causes_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let junk = b"not a database at all, but not empty either".repeat(200);
        std::fs::write(&path, &junk).unwrap();
        let e = format!("{:#}", State::open(dir.path()).err().unwrap());
        assert!(e.contains("state.db") && e.contains("disk is full"), "{e}");
        assert!(e.contains("restore it from a backup"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), junk, "left as it is");
    }

    /// A state no run has brought to schema 5 has no `meta`: what the next run lets go of is
    /// told from the start of the table.
    #[test]
    fn stale_observations_ahead_are_told_on_a_state_older_than_its_meta_table() {
        // A state no run has brought to schema 5 has no `meta`: `preview` of what the next
        // run lets go of stopped on "no such table: meta".
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        s.conn
            .execute(
                "INSERT INTO observation VALUES ('10.0.0.1', 1, 5, 1, 'TCP', '22', '', '', '')",
                [],
            )
            .unwrap();
        s.conn.execute_batch("DROP TABLE meta").unwrap();
        s.version = 4;
        let ahead = s.stale_observations_ahead(100, 1).unwrap();
        assert_eq!(ahead.len(), 1);
    }

    /// The search for history goes a bounded stretch a run, on from where the last stopped,
    /// and comes round again: every stale observation goes in time, no fresh one ever does.
    #[test]
    fn stale_observations_go_a_bounded_stretch_a_run_and_every_one_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        let tx = s.conn.transaction().unwrap();
        // Ten addresses, in key order `10.0.0.0` .. `10.0.0.9`; the odd ones last seen at 5,
        // before the cut at 100.
        for i in 0..10 {
            let last = if i % 2 == 1 { 5 } else { 500 };
            tx.execute(
                "INSERT INTO observation VALUES (?1, 1, ?2, 1, 'TCP', '22', '', '', '')",
                params![format!("10.0.0.{i}"), last],
            )
            .unwrap();
        }
        let left = |tx: &Transaction<'_>| -> Vec<String> {
            let mut stmt = tx
                .prepare("SELECT ip FROM observation ORDER BY ip")
                .unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        let_go_of_stale_observations(&tx, 100, stale_pass(&tx, 4, true).unwrap()).unwrap();
        // The first four looked at: `10.0.0.1` and `10.0.0.3` gone, `10.0.0.5` not yet.
        let after_one = left(&tx);
        assert!(!after_one.contains(&"10.0.0.1".to_string()));
        assert!(!after_one.contains(&"10.0.0.3".to_string()));
        assert!(after_one.contains(&"10.0.0.5".to_string()));
        assert_eq!(after_one.len(), 8);
        let_go_of_stale_observations(&tx, 100, stale_pass(&tx, 4, true).unwrap()).unwrap();
        let_go_of_stale_observations(&tx, 100, stale_pass(&tx, 4, true).unwrap()).unwrap();
        let even: Vec<String> = (0..10).step_by(2).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(left(&tx), even);
        // Round again from the start: a stale one added before the stretch already looked
        // at is found on the next round.
        tx.execute(
            "INSERT INTO observation VALUES ('10.0.0.1', 1, 5, 1, '', '', '', '', '')",
            [],
        )
        .unwrap();
        for _ in 0..3 {
            let_go_of_stale_observations(&tx, 100, stale_pass(&tx, 4, true).unwrap()).unwrap();
        }
        assert_eq!(left(&tx), even);
    }
}
