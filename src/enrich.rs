//! Enrich: who owns each attacker. The origin AS number and organisation come from a
//! MaxMind-format ASN database (GeoLite2-ASN, DB-IP ASN Lite, ip-location-db) behind the small
//! [`AsnDb`] wrapper, so an upgrade of the reader crate touches this file only; the range's
//! region, services and border group come from the provider's range file.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::ingest::Observation;
use crate::provider::{Provider, RangeInfo, canonical};

/// What the ASN database says about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnInfo {
    pub asn: u32,
    pub org: Option<String>,
}

/// An opened ASN database.
pub struct AsnDb {
    reader: maxminddb::Reader<Vec<u8>>,
    pub database_type: String,
    pub built: Option<DateTime<Utc>>,
    /// The first lookup that failed: a damaged file (a bad block, a download cut short over
    /// the old one) opens, and then answers some or all lookups with errors.
    damage: std::sync::OnceLock<String>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

/// What starts a MaxMind DB's metadata, which lies within its last [`METADATA_WITHIN`] bytes.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
const METADATA_WITHIN: u64 = 128 << 10;

impl AsnDb {
    /// Opens and checks the database: a MaxMind DB whose records carry AS numbers.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        // A MaxMind DB says it is one in its last 128 KiB, its metadata: looked at first, so
        // that a file of another kind, or a sparse one of gigabytes, is not read whole into
        // memory to be refused.
        let tail = crate::source::tail_of_regular(path, METADATA_WITHIN)
            .map_err(|e| anyhow::anyhow!("asn_db {shown}: cannot read: {e}"))?;
        if memchr::memmem::find(&tail, METADATA_MARKER).is_none() {
            bail!("asn_db {shown}: not a MaxMind DB file: no metadata marker in its last 128 KiB");
        }
        // A full ASN database is tens of MiB; a city one a few hundred.
        let bytes = crate::source::read_regular(path, 4 << 30)
            .map_err(|e| anyhow::anyhow!("asn_db {shown}: cannot read: {e}"))?;
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| anyhow::anyhow!("asn_db {shown}: not a MaxMind DB file: {e}"))?;
        let database_type = reader.metadata().database_type.clone();
        let lower = database_type.to_ascii_lowercase();
        if !(lower.contains("asn") || lower.contains("isp")) {
            bail!(
                "asn_db {shown}: database type {database_type:?} holds no AS numbers (expected an ASN or ISP database)"
            );
        }
        let built = DateTime::from_timestamp(reader.metadata().build_epoch as i64, 0);
        let db = AsnDb {
            reader,
            database_type,
            built,
            damage: std::sync::OnceLock::new(),
        };
        // A damaged search tree opens: a few lookups across the address space find most
        // damage at once (one at its top fails every lookup), rather than the run taking the
        // addresses for no one's.
        for ip in probes() {
            db.lookup(ip);
            if let Some(damage) = db.damage() {
                bail!("asn_db {shown}: the file is damaged: {damage}");
            }
        }
        Ok(db)
    }

    /// The AS of `ip`; `None` when the database has no record for it, or when its record
    /// cannot be read (kept, for [`AsnDb::damage`]).
    pub fn lookup(&self, ip: IpAddr) -> Option<AsnInfo> {
        let ip = canonical(ip);
        // An IPv4 database knows no IPv6 address, and says so as an error.
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        let record = (self.reader.lookup(ip))
            .and_then(|found| found.decode::<AsnRecord<'_>>())
            .map_err(|e| {
                let _ = self.damage.set(format!("looking up {ip} fails: {e}"));
            })
            .ok()??;
        Some(AsnInfo {
            asn: record.autonomous_system_number?,
            org: record.autonomous_system_organization.map(str::to_string),
        })
    }

    /// Why a lookup failed, if one did: the file is damaged.
    pub fn damage(&self) -> Option<&str> {
        self.damage.get().map(String::as_str)
    }

    /// Every record of the file checked (a full pass: `check`'s, not every run's).
    pub fn verify(&self) -> Result<()> {
        self.reader
            .verify()
            .map_err(|e| anyhow::anyhow!("the file is damaged: {e}"))
    }

    /// Days since the database was built, as of `now`.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.built.map(|b| (now - b).num_days())
    }
}

/// Addresses an opened database is asked about at once: the first of each IPv4 /8 that is
/// routed, and of the IPv6 regional blocks.
fn probes() -> impl Iterator<Item = IpAddr> {
    let v4 = (1..=223u8).map(|a| IpAddr::from([a, 0, 0, 1]));
    let v6 = [0x2001u16, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00]
        .into_iter()
        .map(|a| IpAddr::from([a, 0, 0, 0, 0, 0, 0, 1]));
    v4.chain(v6)
}

/// A selected IP with everything known about it: what a report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attacker {
    pub observation: Observation,
    pub range: Option<RangeInfo>,
    pub asn: Option<AsnInfo>,
    /// For a re-report: what the last report sent to this destination said of it.
    pub before: Option<Reported>,
}

/// An address as a report sent earlier listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// When the report was sent (Unix seconds); `None` for a time that cannot be read.
    pub at: Option<i64>,
    pub hits: u64,
    pub first_seen: i64,
    /// Its last packet the report counted, by the log's clock.
    pub last_seen: i64,
}

impl Reported {
    /// Whether the address sent packets since this report: more than it counted, and its last
    /// logged after the report, or after the last packet the report counted if that is
    /// earlier. A packet logged before the report but counted since (a source added, a
    /// `reread`, a log host's late lines) is no reason to report again. The record's last
    /// time is the latest of all its hosts' stamps: a report that counted a stamp from a clock
    /// ahead is measured from when it went, not from that stamp, which the packets since,
    /// from a host whose clock is right, may never pass. (So packets counted late still bring
    /// a re-report when the report counted a stamp after its own time: the one record cannot
    /// tell them from new ones stamped before that stamp, and an attack missed is the worse.)
    pub fn seen_since(&self, now: &Observation) -> bool {
        self.hits_since(now) > 0 && now.last_seen > self.counted_through()
    }

    /// The time a packet is logged after to be one since this report: the last packet it
    /// counted, or when it went if that is earlier (see [`Reported::seen_since`]). A line
    /// stamped at or before it is one the desk was told of, or one logged before the report
    /// and read late: no evidence of what the address did since.
    pub fn counted_through(&self) -> i64 {
        self.at.map_or(self.last_seen, |at| self.last_seen.min(at))
    }

    /// The packets of `now` (the address's record) that came after this report: the totals
    /// still hold the packets reported then, unless the address's stored packets all aged
    /// out meanwhile and it began counting afresh (a later first packet), when all are new.
    /// Counted in packets, not judged by time: a log's clock a little ahead of the one the
    /// report was sent by would make its last packets look later than the report.
    pub fn hits_since(&self, now: &Observation) -> u64 {
        // (Whether any of them was logged after the report is [`Reported::seen_since`].)
        match now.first_seen <= self.first_seen {
            true => now.hits.saturating_sub(self.hits),
            false => now.hits,
        }
    }
}

/// Annotates a provider's delta (whole observations, and for a re-report what the last report
/// said of each) with range and ASN data.
pub fn enrich(
    selected: impl IntoIterator<Item = (Observation, Option<Reported>)>,
    provider: Option<&Provider>,
    asn_db: Option<&AsnDb>,
) -> Vec<Attacker> {
    selected
        .into_iter()
        .map(|(observation, before)| Attacker {
            range: provider.and_then(|p| p.lookup(observation.ip).cloned()),
            asn: asn_db.and_then(|db| db.lookup(observation.ip)),
            observation,
            before,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the real test data named by `ABUSE_MAILER_DATA` (`../shared/data` in CI).
    fn shared(rel: &str) -> std::path::PathBuf {
        let dir = std::env::var_os("ABUSE_MAILER_DATA")
            .expect("ABUSE_MAILER_DATA names the real test data (../shared/data)");
        std::path::PathBuf::from(dir).join(rel)
    }

    /// A sparse file of gigabytes, or any file that is no MaxMind DB, is refused from its last
    /// 128 KiB: it was read whole first (1.5 GB of memory for this one, an abort for larger).
    #[test]
    fn a_file_without_the_metadata_marker_is_refused_before_it_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.mmdb");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(3 << 29)
            .unwrap();
        let e = AsnDb::open(&path).err().unwrap().to_string();
        assert!(e.contains("no metadata marker"), "{e}");
        // The marker further from the end than the metadata may lie is none either.
        let mut far = METADATA_MARKER.to_vec();
        far.resize(METADATA_WITHIN as usize + 1, 0);
        std::fs::write(&path, far).unwrap();
        let e = AsnDb::open(&path).err().unwrap().to_string();
        assert!(e.contains("no metadata marker"), "{e}");
        // The shipped example opens.
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/asn/example-asn.mmdb");
        assert!(AsnDb::open(&example).is_ok());
    }

    #[test]
    #[ignore = "needs ABUSE_MAILER_DATA"]
    fn real_world_database_names_the_owner() {
        let db = AsnDb::open(&shared("asn-realworld/ip-location-db-asn-20260617.mmdb")).unwrap();
        let aws = db.lookup("34.223.47.190".parse().unwrap()).unwrap();
        assert_eq!(aws.asn, 16509);
        let china = db.lookup("52.80.174.40".parse().unwrap()).unwrap();
        assert_ne!(
            china.asn, 16509,
            "AWS China is announced by another AS: {china:?}"
        );
        assert!(
            db.lookup("::ffff:34.223.47.190".parse().unwrap())
                .is_some_and(|a| a.asn == 16509)
        );
        assert_eq!(db.lookup("10.1.2.3".parse().unwrap()), None);
        assert!(
            db.built
                .is_some_and(|b| b.format("%Y").to_string() == "2026")
        );
    }

    #[test]
    #[ignore = "needs ABUSE_MAILER_DATA"]
    fn maxmind_test_database_without_a_record_gives_none() {
        let db = AsnDb::open(&shared("maxmind-test/GeoLite2-ASN-Test.mmdb")).unwrap();
        assert_eq!(db.lookup("81.2.69.143".parse().unwrap()), None);
        let known = db.lookup("1.128.0.0".parse().unwrap()).unwrap();
        assert_eq!(known.asn, 1221);
        assert_eq!(known.org.as_deref(), Some("Telstra Pty Ltd"));
    }

    #[test]
    #[ignore = "needs ABUSE_MAILER_DATA"]
    fn broken_and_wrong_databases_are_clear_errors() {
        for bad in [
            "maxmind-test/bad-data/cyclic-data-structure.mmdb",
            "maxmind-test/bad-data/invalid-data-record-offset.mmdb",
            "maxmind-test/bad-data/libmaxminddb-corrupt-search-tree.mmdb",
        ] {
            // Opening may succeed; a lookup must then fail softly, never panic.
            match AsnDb::open(&shared(bad)) {
                Ok(db) => {
                    for ip in ["1.1.1.1", "81.2.69.143", "2001:db8::1", "::1"] {
                        let _ = db.lookup(ip.parse().unwrap());
                    }
                }
                Err(e) => assert!(
                    e.to_string().contains(bad.rsplit('/').next().unwrap()),
                    "{e}"
                ),
            }
        }
        let e = AsnDb::open(&shared("maxmind-test/GeoLite2-City-Test.mmdb"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds no AS numbers"), "{e}");
        let e = AsnDb::open(&shared("SOURCES.md"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("not a MaxMind DB file") && e.contains("SOURCES.md"),
            "{e}"
        );
    }
}
