//! The state database (`state_dir/state.db`, SQLite): the tool's memory between runs.
//!
//! It holds the cursor of each source, what was observed per IP, the evidence lines kept for
//! the next excerpt, and the ledger of reports with their IPs and exact message bytes. Schema
//! changes are numbered migrations (`PRAGMA user_version`); a file that is not ours
//! (`PRAGMA application_id`) or is newer than this binary is refused, never reset.
//!
//! Times are stored in UTC: Unix seconds for log times, RFC 3339 text for the ledger.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::excerpt::EvidenceLine;
use crate::ingest::Observation;
use crate::source::Cursor;

/// `ABML` in ASCII: marks the file as ours.
const APPLICATION_ID: i32 = 0x4142_4d4c;

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
    // 5 (remote intake): a report sent to an API keeps the intake's id and what the intake
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
];

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

    fn parse(text: &str) -> Result<Self> {
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
    pub ips: Vec<ReportedIp>,
    pub message: Vec<u8>,
}

/// Where a source stopped: a file position, or journald's own cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCursor {
    File(Cursor),
    Journal(String),
}

/// Which reports `history` lists.
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter {
    pub ip: Option<IpAddr>,
    pub provider: Option<String>,
}

/// The open state database.
pub struct State {
    conn: Connection,
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split<T: std::str::FromStr + Ord>(text: &str) -> BTreeSet<T> {
    text.split(' ').filter_map(|t| t.parse().ok()).collect()
}

fn ip(text: &str) -> rusqlite::Result<IpAddr> {
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl State {
    /// Opens the database for writing, creating the folder (0700) and file (0600) if needed,
    /// and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create state_dir {}", dir.display()))?;
        }
        let path = dir.join("state.db");
        let fresh = !path.exists();
        if fresh {
            create_private(&path)?;
        }
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut state = State { conn };
        state.setup(&path)?;
        Ok(state)
    }

    /// Opens an existing database without changing it (for previews); `None` if there is none.
    pub fn open_read_only(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("state.db");
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let state = State { conn };
        let version = state.check_identity(&path)?;
        if version < MIGRATIONS.len() as i64 {
            bail!(
                "{}: written by an older abuse-mailer (schema {version}); run `abuse-mailer run` once to upgrade it",
                path.display()
            );
        }
        Ok(Some(state))
    }

    fn check_identity(&self, path: &Path) -> Result<i64> {
        let read = |pragma: &str| -> Result<i64> {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .with_context(|| format!("{}: not a readable SQLite database", path.display()))
        };
        let app = read("application_id")?;
        let version = read("user_version")?;
        if app != i64::from(APPLICATION_ID) && !(app == 0 && version == 0 && self.is_empty()?) {
            bail!(
                "{}: not an abuse-mailer state database (application_id {app:#x})",
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

    fn is_empty(&self) -> Result<bool> {
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        Ok(tables == 0)
    }

    fn setup(&mut self, path: &Path) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(30))?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        let version = self.check_identity(path)?;
        if version == MIGRATIONS.len() as i64 {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(migration)
                .with_context(|| format!("{}: migration to schema {}", path.display(), i + 1))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        tx.commit()?;
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
        Ok(self
            .conn
            .query_row(
                "SELECT dev, ino, fingerprint, offset, known_siblings FROM cursor WHERE source = ?1 AND journal IS NULL",
                [source],
                |r| {
                    Ok(Cursor {
                        dev: r.get::<_, i64>(0)? as u64,
                        ino: r.get::<_, i64>(1)? as u64,
                        fingerprint: r.get(2)?,
                        offset: r.get::<_, i64>(3)? as u64,
                        known_siblings: r
                            .get::<_, Option<String>>(4)?
                            .and_then(|j| serde_json::from_str(&j).ok())
                            .unwrap_or_default(),
                    })
                },
            )
            .optional()?)
    }

    /// The names of every source with a stored cursor.
    pub fn cursor_sources(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source FROM cursor ORDER BY source")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every IP observed so far with its times and hits, but not its sets of ports, hosts
    /// and targets: enough to select a delta; [`State::observation`] gives the whole record.
    pub fn observation_heads(&self) -> Result<HashMap<IpAddr, Observation>> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, first_seen, last_seen, hits FROM observation")?;
        let rows = stmt.query_map([], |r| {
            let mut o = Observation::new(ip(&r.get::<_, String>(0)?)?, r.get(1)?);
            o.last_seen = r.get(2)?;
            o.hits = r.get::<_, i64>(3)? as u64;
            Ok(o)
        })?;
        let mut all = HashMap::new();
        for row in rows {
            let o = row?;
            all.insert(o.ip, o);
        }
        Ok(all)
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
                    ip: ip(&r.get::<_, String>(0)?)?,
                    first_seen: r.get(1)?,
                    last_seen: r.get(2)?,
                    hits: r.get::<_, i64>(3)? as u64,
                    protocols: split(&r.get::<_, String>(4)?),
                    dst_ports: split(&r.get::<_, String>(5)?),
                    src_ports: split(&r.get::<_, String>(6)?),
                    dsts: split(&r.get::<_, String>(7)?),
                    hosts: split(&r.get::<_, String>(8)?),
                })
            })
            .optional()?)
    }

    /// The evidence lines kept for a provider's next excerpt.
    pub fn evidence(&self, provider: &str) -> Result<Vec<EvidenceLine>> {
        let mut stmt = self
            .conn
            .prepare("SELECT time, ip, line FROM evidence WHERE provider = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([provider], |r| {
            Ok(EvidenceLine {
                time: r.get(0)?,
                ip: ip(&r.get::<_, String>(1)?)?,
                text: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores what one run read, all or nothing: observations (merged totals for the IPs it
    /// saw), cursors and evidence.
    pub fn commit_ingest(
        &mut self,
        observations: &[&Observation],
        cursors: &[(String, StoredCursor)],
        evidence: &[(String, Vec<EvidenceLine>)],
        now: &str,
    ) -> Result<()> {
        if observations.is_empty() && cursors.is_empty() && evidence.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
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
            let mut put = tx.prepare(
                "INSERT OR REPLACE INTO cursor (source, dev, ino, fingerprint, offset, updated_at, journal, known_siblings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (source, cursor) in cursors {
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
                            .transpose()?
                    ])?,
                    StoredCursor::Journal(j) => put.execute(params![
                        source,
                        0,
                        0,
                        Vec::<u8>::new(),
                        0,
                        now,
                        j,
                        None::<String>
                    ])?,
                };
            }
            for (provider, lines) in evidence {
                replace_evidence(&tx, provider, lines)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// IPs that a report to `provider` holds and that must not go into another one: those
    /// sent, and those still waiting to be sent again (`sending`, `failed`). With `since`,
    /// only reports created at or after that time count as sent.
    pub fn reported(&self, provider: &str, since: Option<&str>) -> Result<HashSet<IpAddr>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND (r.status IN ('sending', 'failed')
                                        OR (r.status = 'sent' AND (?2 IS NULL OR r.created_at >= ?2)))",
        )?;
        let rows = stmt.query_map(params![provider, since], |r| ip(&r.get::<_, String>(0)?))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every IP a provider was ever sent, for marking re-reports.
    pub fn ever_sent(&self, provider: &str) -> Result<HashSet<IpAddr>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND r.status = 'sent'",
        )?;
        let rows = stmt.query_map([provider], |r| ip(&r.get::<_, String>(0)?))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes a new report with status `sending`, before any transport sees it.
    pub fn insert_report(&mut self, r: &ReportRecord) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO report (id, provider, recipients, subject, message_id, status, created_at, sent_at, attempts, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
            ],
        )?;
        {
            let mut put = tx.prepare(
                "INSERT INTO report_ip (report_id, ip, hits, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            // Lines kept as evidence for these IPs have served: they are in this report now.
            let mut prune = tx.prepare("DELETE FROM evidence WHERE provider = ?1 AND ip = ?2")?;
            for i in &r.ips {
                let ip = i.ip.to_string();
                put.execute(params![r.id, ip, i.hits as i64, i.first_seen, i.last_seen])?;
                prune.execute(params![r.provider, ip])?;
            }
        }
        tx.commit()?;
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
        let changed = match status {
            Status::Sent => self.conn.execute(
                "UPDATE report SET status = 'sent', sent_at = ?2, server_reply = ?3, attempts = attempts + 1 WHERE id = ?1",
                params![id, at, detail],
            )?,
            Status::Failed | Status::Rejected => self.conn.execute(
                "UPDATE report SET status = ?2, last_error = ?3, attempts = attempts + 1 WHERE id = ?1",
                params![id, status.as_str(), detail],
            )?,
            Status::Sending => self
                .conn
                .execute("UPDATE report SET status = 'sending' WHERE id = ?1", [id])?,
        };
        if changed != 1 {
            bail!("report {id} is not in the ledger");
        }
        Ok(())
    }

    /// Reports waiting to be sent again (`sending` after a crash, `failed` after a transient
    /// error), oldest first.
    pub fn pending(&self) -> Result<Vec<ReportRecord>> {
        self.query_reports("WHERE status IN ('sending', 'failed')", params![])
    }

    /// The first report sent to a provider: follow-ups reply to it, to keep one thread.
    pub fn thread_root(&self, provider: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT message_id FROM report WHERE provider = ?1 AND status = 'sent' ORDER BY created_at, rowid LIMIT 1",
                [provider],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn report(&self, id: &str) -> Result<Option<ReportRecord>> {
        Ok(self
            .query_reports("WHERE id = ?1", params![id])?
            .into_iter()
            .next())
    }

    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<ReportRecord>> {
        self.query_reports(
            "WHERE (?1 IS NULL OR provider = ?1)
               AND (?2 IS NULL OR id IN (SELECT report_id FROM report_ip WHERE ip = ?2))",
            params![filter.provider, filter.ip.map(|i| i.to_string())],
        )
    }

    fn query_reports(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ReportRecord>> {
        let sql = format!(
            "SELECT id, provider, recipients, subject, message_id, status, created_at, sent_at, attempts,
                    last_error, server_reply, message
             FROM report {filter} ORDER BY created_at, rowid"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let recipients: String = r.get(2)?;
            let status: String = r.get(5)?;
            out.push(ReportRecord {
                id: r.get(0)?,
                provider: r.get(1)?,
                recipients: serde_json::from_str(&recipients).context("ledger: bad recipients")?,
                subject: r.get(3)?,
                message_id: r.get(4)?,
                status: Status::parse(&status)?,
                created_at: r.get(6)?,
                sent_at: r.get(7)?,
                attempts: r.get(8)?,
                last_error: r.get(9)?,
                server_reply: r.get(10)?,
                ips: Vec::new(),
                message: r.get(11)?,
            });
        }
        let mut stmt = self.conn.prepare(
            "SELECT ip, hits, first_seen, last_seen FROM report_ip WHERE report_id = ?1",
        )?;
        for record in &mut out {
            let rows = stmt.query_map([&record.id], |r| {
                Ok(ReportedIp {
                    ip: ip(&r.get::<_, String>(0)?)?,
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
    /// COMPLETED with any other reason: not AWS's, no action warranted, already down.
    pub declined: u64,
    /// Not COMPLETED yet (or never asked).
    pub open: u64,
}

impl State {
    /// Marks a report `sent` and keeps the id the intake gave it, in one statement: a crash
    /// cannot leave a sent report without its remote id. A stored request tagged
    /// `lifecycle:test` is remembered as a test.
    pub fn mark_sent_remote(&mut self, id: &str, remote_id: &str, at: &str) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE report SET status = 'sent', sent_at = ?2, server_reply = ?3, remote_id = ?3,
                    remote_test = instr(CAST(message AS TEXT), ?4) > 0,
                    attempts = attempts + 1 WHERE id = ?1",
            params![id, at, remote_id, "\"lifecycle:test\""],
        )?;
        if changed != 1 {
            bail!("report {id} is not in the ledger");
        }
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

    /// The remote side of every report that has one, by report id.
    pub fn remotes(&self) -> Result<HashMap<String, Remote>> {
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
                (Some("COMPLETED"), _) => tally.declined += n,
                (Some("GONE"), _) => {}
                _ => tally.open += n,
            }
        }
        Ok(tally)
    }

    /// IPs a provider was sent only in test reports (and that no other report holds): the
    /// intake validated those without acting on them, so they are still to be reported.
    pub fn test_only_ips(&self, provider: &str) -> Result<HashSet<IpAddr>> {
        let mut stmt = self.conn.prepare(
            "SELECT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND r.status = 'sent' AND r.remote_test = 1
             EXCEPT
             SELECT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND (r.status IN ('sending', 'failed')
                                        OR (r.status = 'sent' AND r.remote_test = 0))",
        )?;
        let rows = stmt.query_map([provider], |r| ip(&r.get::<_, String>(0)?))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// IPs of a provider's rejected reports (created at or after `since`): an intake that
    /// refused a report for its content refuses the same report again, so these wait for a
    /// re-report rather than going out every run.
    pub fn rejected_ips(&self, provider: &str, since: Option<&str>) -> Result<HashSet<IpAddr>> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT i.ip FROM report_ip i JOIN report r ON r.id = i.report_id
             WHERE r.provider = ?1 AND r.status = 'rejected' AND (?2 IS NULL OR r.created_at >= ?2)",
        )?;
        let rows = stmt.query_map(params![provider, since], |r| ip(&r.get::<_, String>(0)?))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn replace_evidence(tx: &Transaction<'_>, provider: &str, lines: &[EvidenceLine]) -> Result<()> {
    tx.execute("DELETE FROM evidence WHERE provider = ?1", [provider])?;
    let mut put = tx.prepare(
        "INSERT INTO evidence (provider, time, seq, ip, line) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (seq, l) in lines.iter().enumerate() {
        put.execute(params![
            provider,
            l.time,
            seq as i64,
            l.ip.to_string(),
            l.text
        ])?;
    }
    Ok(())
}

/// Creates an empty file only its owner can read: it will hold the messages sent.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(aws, HashSet::from(["3.5.140.2".parse().unwrap()]));
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
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        drop(State::open(&state_dir).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state_dir), 0o700);
        assert_eq!(mode(&state_dir.join("state.db")), 0o600);
    }
}
