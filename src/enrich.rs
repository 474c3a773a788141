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
use crate::select::Selected;

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
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

impl AsnDb {
    /// Opens and checks the database: a MaxMind DB whose records carry AS numbers.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("asn_db {shown}: cannot read: {e}"))?;
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
        Ok(AsnDb {
            reader,
            database_type,
            built,
        })
    }

    /// The AS of `ip`; `None` when the database has no record (or a broken one) for it.
    pub fn lookup(&self, ip: IpAddr) -> Option<AsnInfo> {
        let ip = canonical(ip);
        let found = self.reader.lookup(ip).ok()?;
        let record: AsnRecord<'_> = found.decode().ok()??;
        Some(AsnInfo {
            asn: record.autonomous_system_number?,
            org: record.autonomous_system_organization.map(str::to_string),
        })
    }

    /// Days since the database was built, as of `now`.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.built.map(|b| (now - b).num_days())
    }
}

/// A selected IP with everything known about it: what a report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attacker {
    pub observation: Observation,
    pub range: Option<RangeInfo>,
    pub asn: Option<AsnInfo>,
    pub rereport: bool,
}

/// Annotates a provider's delta with range and ASN data.
pub fn enrich(
    selected: &[Selected<'_>],
    provider: &Provider,
    asn_db: Option<&AsnDb>,
) -> Vec<Attacker> {
    selected
        .iter()
        .map(|s| Attacker {
            observation: s.observation.clone(),
            range: provider.lookup(s.observation.ip).cloned(),
            asn: asn_db.and_then(|db| db.lookup(s.observation.ip)),
            rereport: s.rereport,
        })
        .collect()
}
