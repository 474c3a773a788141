//! Discovery's memory in the state (schema 9): the `contact_cache` table, one row per network
//! (RDAP) or address (Abusix) with where the answer came from and until when, and the RDAP
//! bootstrap files. The layout and the lookup are those `discover::cache` specifies, so this
//! store answers as [`crate::discover::MemoryCache`] does.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::State;
use crate::discover::cache::Stabbing;
use crate::discover::cache::hex_key;
use crate::discover::{BootstrapCopy, CacheEntry, ContactCache, Source};

/// A cache row as `contacts` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedContact {
    pub entry: CacheEntry,
    /// Addresses reported to this contact so far (sent, or waiting to be sent).
    pub reported: u64,
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// The address a [`hex_key`] stands for, in the family given.
fn from_key(key: &str, family: u8) -> Option<IpAddr> {
    let n = u128::from_str_radix(key, 16).ok()?;
    match family {
        4 => u32::try_from(n)
            .ok()
            .map(|v| IpAddr::V4(std::net::Ipv4Addr::from(v))),
        6 => Some(IpAddr::V6(std::net::Ipv6Addr::from(n))),
        _ => None,
    }
}

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// One row as an entry; a row that does not read as one (edited by hand: a family that is no
/// number, an address that is no mail address) is passed over, so the address is looked up
/// again and the row replaced.
fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<CacheEntry>> {
    use rusqlite::types::Value;
    let text = |i: usize| match r.get::<_, Value>(i) {
        Ok(Value::Text(t)) => Some(t),
        _ => None,
    };
    let number = |i: usize| match r.get::<_, Value>(i) {
        Ok(Value::Integer(n)) => Some(n),
        _ => None,
    };
    let family = number(1).and_then(|f| u8::try_from(f).ok()).unwrap_or(0);
    let (Some(source), Some(first), Some(last), Some(origin), Some(fetched), Some(expires)) = (
        text(0).as_deref().and_then(Source::parse),
        text(2).and_then(|k| from_key(&k, family)),
        text(3).and_then(|k| from_key(&k, family)),
        text(5),
        number(7),
        number(8),
    ) else {
        return Ok(None);
    };
    let address = match r.get::<_, Value>(4)? {
        Value::Null => None,
        Value::Text(a) => match crate::discover::address::check(&a) {
            Ok(checked) => Some(checked.to_string()),
            Err(_) => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(CacheEntry {
        source,
        first,
        last,
        address,
        origin,
        handle: text(6),
        fetched_at: time(fetched),
        expires: time(expires),
    }))
}

const COLUMNS: &str = "source, family, first, last, address, origin, handle, fetched_at, expires";

impl State {
    /// Whether the state has discovery's tables (schema 9): a reader may open a state that no
    /// run has brought that far, and then nothing was discovered yet.
    pub fn has_contact_cache(&self) -> Result<bool> {
        Ok(self.version >= 9)
    }

    /// Every remembered answer, expired ones included, by source and address; with `ip`, only
    /// those covering it. Each with how many addresses were reported to its contact.
    pub fn contacts(&self, ip: Option<IpAddr>) -> Result<Vec<CachedContact>> {
        if !self.has_contact_cache()? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM contact_cache
             WHERE ?1 IS NULL OR (family = ?2 AND first <= ?1 AND last >= ?1)
             ORDER BY address IS NULL, address, source, family, first"
        ))?;
        let rows = stmt.query_map(params![ip.map(hex_key), ip.map(family)], entry)?;
        // Addresses reported per desk, in one query for all of them.
        let mut count = self.conn.prepare(&format!(
            "SELECT r.provider, count(DISTINCT i.ip) FROM report r JOIN report_ip i ON i.report_id = r.id
             WHERE r.provider LIKE '{}' AND r.status IN ('sent', 'sending', 'failed')
             GROUP BY r.provider",
            super::CONTACT_DESKS
        ))?;
        let counts: HashMap<String, i64> = count
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for row in rows {
            let Some(entry) = row? else { continue };
            let reported = match &entry.address {
                Some(a) => counts
                    .get(&super::contact_key(&a.to_ascii_lowercase()))
                    .copied()
                    .unwrap_or(0) as u64,
                None => 0,
            };
            out.push(CachedContact { entry, reported });
        }
        Ok(out)
    }
}

impl ContactCache for State {
    fn find(&self, source: Source, ip: IpAddr, now: DateTime<Utc>) -> Result<Option<CacheEntry>> {
        if !self.has_contact_cache()? {
            return Ok(None);
        }
        // Read once, indexed: a run asks for every address waiting for its contact.
        let mut index = self.contacts.borrow_mut();
        if index.as_ref().is_none_or(|i| i.now != now) {
            // Fetched later than the clock allows: by a clock that ran ahead (see
            // `cache::ahead_of`).
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {COLUMNS} FROM contact_cache WHERE expires > ?1 AND fetched_at <= ?2"
            ))?;
            let ahead = crate::discover::cache::ahead_of(now).timestamp();
            let rows = stmt
                .query_map([now.timestamp(), ahead], entry)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .with_context(|| format!("{}: cannot read contact_cache", self.path.display()))?;
            *index = Some(Stabbing::new(rows.into_iter().flatten().collect(), now));
        }
        Ok(index.as_ref().and_then(|i| i.find(source, ip)).cloned())
    }

    fn store(&mut self, e: CacheEntry) -> Result<()> {
        self.conn
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO contact_cache ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    e.source.name(),
                    family(e.first),
                    hex_key(e.first),
                    hex_key(e.last),
                    e.address,
                    e.origin,
                    e.handle,
                    e.fetched_at.timestamp(),
                    e.expires.timestamp(),
                ],
            )
            .with_context(|| format!("{}: cannot write contact_cache", self.path.display()))?;
        if let Some(index) = self.contacts.get_mut() {
            index.add(e);
        }
        Ok(())
    }

    fn bootstrap(&self, family: u8) -> Result<Option<BootstrapCopy>> {
        if !self.has_contact_cache()? {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT origin, body, fetched_at FROM rdap_bootstrap WHERE family = ?1",
                [family],
                |r| {
                    Ok(BootstrapCopy {
                        family,
                        origin: r.get(0)?,
                        body: r.get(1)?,
                        fetched_at: time(r.get(2)?),
                    })
                },
            )
            .optional()?)
    }

    fn failures(&self) -> Result<HashMap<IpAddr, i64>> {
        self.contact_failures()
    }

    fn note_failure(&mut self, ip: IpAddr, at: DateTime<Utc>) -> Result<()> {
        let write = || -> rusqlite::Result<()> {
            self.conn.execute(
                "INSERT OR REPLACE INTO lookup_failure (ip, failed_at) VALUES (?1, ?2)",
                params![ip.to_string(), at.timestamp()],
            )?;
            self.conn.execute(
                "DELETE FROM lookup_failure WHERE failed_at < ?1",
                [at.timestamp() - FAILURE_MEMORY_DAYS * 86_400],
            )?;
            Ok(())
        };
        write().with_context(|| format!("{}: cannot write lookup_failure", self.path.display()))
    }

    fn note_held(&mut self, held: &[IpAddr], due: DateTime<Utc>) -> Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        // One transaction, and a row only where none is due later: a run without a settled
        // selection decides every held address again, and writes none of them twice.
        let write = || -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO contact_recheck (ip, due) VALUES (?1, ?2)
                     ON CONFLICT (ip) DO UPDATE SET due = excluded.due
                     WHERE contact_recheck.due < excluded.due",
                )?;
                for ip in held {
                    stmt.execute(params![ip.to_string(), due.timestamp()])?;
                }
            }
            tx.commit()
        };
        write().with_context(|| format!("{}: cannot write contact_recheck", self.path.display()))
    }

    fn store_bootstrap(&mut self, copy: BootstrapCopy) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO rdap_bootstrap (family, origin, body, fetched_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    copy.family,
                    copy.origin,
                    copy.body,
                    copy.fetched_at.timestamp()
                ],
            )
            .with_context(|| format!("{}: cannot write rdap_bootstrap", self.path.display()))?;
        Ok(())
    }
}

/// The latest time a recheck stored by an earlier run may be due at and be believed (Unix
/// seconds): a recheck is set at most two days on; one due later was set by a clock that
/// ran ahead and has been set back since, and is due now, not weeks from now.
fn recheck_believed_until(now: i64) -> i64 {
    now + 3 * 86_400
}

/// Failures older than this are forgotten: by then the address has had its turns.
const FAILURE_MEMORY_DAYS: i64 = 30;

impl State {
    /// The ledger keys of discovered desks that refused a report created at or after `since`.
    /// A report created after `until` was made by a clock that ran ahead: its refusal is
    /// not held for longer than the clock was ahead.
    pub fn refused_desks(
        &self,
        since: &str,
        until: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT DISTINCT provider FROM report r
             WHERE provider LIKE '{}' AND status = 'rejected' AND created_at >= ?1
               AND created_at <= ?2 AND {}",
            super::CONTACT_DESKS,
            super::not_withdrawn("r"),
        ))?;
        let rows = stmt.query_map([since, until], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The addresses discovery held back whose time to be decided again has come by `now`
    /// (Unix seconds): a run whose selection is settled looks at them as at those it read.
    pub fn contact_rechecks_due(&self, now: i64) -> Result<Vec<IpAddr>> {
        if self.version < 15 {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT ip FROM contact_recheck WHERE due <= ?1 OR due > ?2")?;
        let rows = stmt.query_map([now, recheck_believed_until(now)], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            // A row edited by hand into something else is passed over.
            if let Ok(ip) = row?.parse() {
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// Lets go of the rechecks due by `now`: the run that looked at those addresses held
    /// back again those it still holds, with a later time.
    pub fn forget_contact_rechecks(&mut self, now: i64) -> Result<()> {
        if self.version < 15 {
            return Ok(());
        }
        self.conn
            .execute(
                "DELETE FROM contact_recheck WHERE due <= ?1 OR due > ?2",
                [now, recheck_believed_until(now)],
            )
            .with_context(|| format!("{}: cannot write contact_recheck", self.path.display()))?;
        Ok(())
    }

    fn contact_failures(&self) -> Result<HashMap<IpAddr, i64>> {
        if !self.has_contact_cache()? {
            return Ok(HashMap::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT ip, failed_at FROM lookup_failure")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (ip, at) = row?;
            // A row edited by hand into something else is passed over.
            if let Ok(ip) = ip.parse() {
                out.insert(ip, at);
            }
        }
        Ok(out)
    }
}

/// What a preview learns stays in memory: the state's answers are read, new ones are not
/// written (a preview changes nothing).
pub struct ReadThrough<'s> {
    pub state: Option<&'s State>,
    pub fresh: crate::discover::MemoryCache,
}

impl ContactCache for ReadThrough<'_> {
    /// The best of what was looked up now and what the state keeps, as a run that had
    /// stored what it looked up would find it: a network asked now does not hide a more
    /// specific one kept from before.
    fn find(&self, source: Source, ip: IpAddr, now: DateTime<Utc>) -> Result<Option<CacheEntry>> {
        let fresh = self.fresh.find(source, ip, now)?;
        let kept = match self.state {
            Some(s) => s.find(source, ip, now)?,
            None => None,
        };
        Ok(fresh.into_iter().chain(kept).min_by_key(CacheEntry::rank))
    }

    fn store(&mut self, entry: CacheEntry) -> Result<()> {
        self.fresh.store(entry)
    }

    fn bootstrap(&self, family: u8) -> Result<Option<BootstrapCopy>> {
        if let Some(b) = self.fresh.bootstrap(family)? {
            return Ok(Some(b));
        }
        match self.state {
            Some(s) => s.bootstrap(family),
            None => Ok(None),
        }
    }

    fn store_bootstrap(&mut self, copy: BootstrapCopy) -> Result<()> {
        self.fresh.store_bootstrap(copy)
    }

    fn failures(&self) -> Result<HashMap<IpAddr, i64>> {
        let mut all = match self.state {
            Some(s) => s.contact_failures()?,
            None => HashMap::new(),
        };
        all.extend(self.fresh.failures()?);
        Ok(all)
    }

    fn note_failure(&mut self, ip: IpAddr, at: DateTime<Utc>) -> Result<()> {
        self.fresh.note_failure(ip, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::MemoryCache;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    fn entry(source: Source, first: &str, last: &str, address: &str, day: u32) -> CacheEntry {
        CacheEntry {
            source,
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
            address: (!address.is_empty()).then(|| address.to_string()),
            origin: "https://rdap.example/ip/x".into(),
            handle: Some("NET-1".into()),
            fetched_at: at(day),
            expires: at(day) + chrono::Duration::days(10),
        }
    }

    /// A preview looks a network up that holds a more specific one the state keeps: the
    /// address in the kept one still gets the kept desk, as it does in a run, where what
    /// was looked up is stored beside it.
    #[test]
    fn a_preview_finds_what_a_run_would_of_what_it_looked_up_and_what_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let customer = entry(
            Source::Rdap,
            "45.1.2.0",
            "45.1.2.255",
            "abuse@customer.net",
            1,
        );
        state.store(customer.clone()).unwrap();
        let isp = entry(Source::Rdap, "45.1.0.0", "45.1.255.255", "abuse@isp.net", 3);
        let mut preview = ReadThrough {
            state: Some(&state),
            fresh: MemoryCache::default(),
        };
        preview.store(isp.clone()).unwrap();
        let mut run = MemoryCache::default();
        run.store(customer).unwrap();
        run.store(isp).unwrap();
        for ip in ["45.1.2.77", "45.1.0.5", "45.2.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                preview.find(Source::Rdap, ip, at(4)).unwrap(),
                run.find(Source::Rdap, ip, at(4)).unwrap(),
                "{ip}"
            );
        }
        let desk = preview.find(Source::Rdap, "45.1.2.77".parse().unwrap(), at(4));
        assert_eq!(
            desk.unwrap().unwrap().address.unwrap(),
            "abuse@customer.net"
        );
    }

    /// Held addresses are written together; one held again keeps the later of its times,
    /// and those due are listed, then let go of.
    #[test]
    fn held_addresses_keep_their_latest_time_and_are_let_go_of_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("45.1.2.3".parse().unwrap(), "45.1.2.4".parse().unwrap());
        state.note_held(&[a, b], at(5)).unwrap();
        state.note_held(&[a], at(3)).unwrap();
        assert!(
            state
                .contact_rechecks_due(at(4).timestamp())
                .unwrap()
                .is_empty()
        );
        let mut due = state.contact_rechecks_due(at(5).timestamp()).unwrap();
        due.sort();
        assert_eq!(due, [a, b]);
        state.note_held(&[b], at(7)).unwrap();
        state.forget_contact_rechecks(at(5).timestamp()).unwrap();
        assert!(
            state
                .contact_rechecks_due(at(6).timestamp())
                .unwrap()
                .is_empty()
        );
        assert_eq!(state.contact_rechecks_due(at(7).timestamp()).unwrap(), [b]);
        // Due later than any run sets it (more than three days on): set by a clock that ran
        // ahead and was set back since, and due now.
        state.note_held(&[a], at(30)).unwrap();
        assert_eq!(
            state.contact_rechecks_due(at(7).timestamp()).unwrap().len(),
            2
        );
        state.forget_contact_rechecks(at(7).timestamp()).unwrap();
        assert!(
            state
                .contact_rechecks_due(at(7).timestamp())
                .unwrap()
                .is_empty()
        );
    }

    /// The SQL store and the in-memory reference agree on every question, over nested,
    /// disjoint, expired and replaced entries of both families.
    #[test]
    fn the_state_answers_as_the_reference_cache_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let mut reference = MemoryCache::default();
        let entries = [
            entry(
                Source::Rdap,
                "45.0.0.0",
                "45.255.255.255",
                "abuse@big-hoster.de",
                1,
            ),
            entry(
                Source::Rdap,
                "45.1.0.0",
                "45.1.255.255",
                "abuse@small-hoster.de",
                1,
            ),
            entry(Source::Rdap, "45.1.2.0", "45.1.2.255", "", 2),
            entry(
                Source::Rdap,
                "46.0.0.0",
                "46.0.0.255",
                "abuse@old-hoster.de",
                1,
            ),
            entry(
                Source::Rdap,
                "46.0.0.0",
                "46.0.0.255",
                "abuse@new-hoster.de",
                5,
            ),
            entry(
                Source::Abusix,
                "45.1.2.3",
                "45.1.2.3",
                "abuse@zone-desk.de",
                3,
            ),
            entry(
                Source::Rdap,
                "2a01::",
                "2a01:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "abuse@v6-hoster.de",
                1,
            ),
        ];
        for e in entries {
            state.store(e.clone()).unwrap();
            reference.store(e).unwrap();
        }
        let ips = [
            "45.0.0.1",
            "45.1.0.9",
            "45.1.2.3",
            "45.1.2.4",
            "46.0.0.7",
            "47.0.0.1",
            "2a01::5",
            "2a02::5",
            "::ffff:45.1.0.9",
        ];
        for day in [1, 4, 8, 12, 20] {
            for ip in ips {
                let ip: IpAddr = ip.parse().unwrap();
                for source in [Source::Rdap, Source::Abusix] {
                    assert_eq!(
                        state.find(source, ip, at(day)).unwrap(),
                        reference.find(source, ip, at(day)).unwrap(),
                        "{source:?} {ip} on day {day}"
                    );
                }
            }
        }
        let listed = state.contacts(Some("45.1.2.3".parse().unwrap())).unwrap();
        assert_eq!(listed.len(), 4, "{listed:?}");
        assert_eq!(state.contacts(None).unwrap().len(), 6);
    }

    #[test]
    fn bootstrap_copies_are_kept_per_family() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(state.bootstrap(4).unwrap(), None);
        let copy = |family, body: &str| BootstrapCopy {
            family,
            origin: "https://data.iana.org/rdap/ipv4.json".into(),
            body: body.as_bytes().to_vec(),
            fetched_at: at(1),
        };
        state.store_bootstrap(copy(4, "a")).unwrap();
        state.store_bootstrap(copy(6, "b")).unwrap();
        state.store_bootstrap(copy(4, "c")).unwrap();
        assert_eq!(state.bootstrap(4).unwrap(), Some(copy(4, "c")));
        assert_eq!(state.bootstrap(6).unwrap(), Some(copy(6, "b")));
    }
}
