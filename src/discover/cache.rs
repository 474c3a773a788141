//! What discovery remembers between runs, behind a small trait: per network (the RDAP
//! object's range, not per address) the contact found or the registry's "none", per address
//! the Abusix answer, each with where it came from, when, and until when; and the RDAP
//! bootstrap files, refreshed rarely. [`MemoryCache`] is the reference implementation.
//!
//! What a state table needs (one row per entry, `UNIQUE (source, family, first, last)`,
//! a newer fetch replacing the row):
//!
//! | column       | type    | meaning                                                          |
//! |--------------|---------|------------------------------------------------------------------|
//! | `source`     | TEXT    | `rdap` or `abusix`                                               |
//! | `family`     | INTEGER | 4 or 6                                                           |
//! | `first`      | TEXT    | [`hex_key`] of the first address (32 hex digits, sorts as numbers)|
//! | `last`       | TEXT    | [`hex_key`] of the last address (= `first` for Abusix)            |
//! | `address`    | TEXT    | the contact's mail address; NULL: the source has none             |
//! | `origin`     | TEXT    | the RDAP URL that answered, or the DNS name asked                 |
//! | `handle`     | TEXT    | the RDAP network's handle, NULL for Abusix                        |
//! | `fetched_at` | INTEGER | Unix seconds                                                      |
//! | `expires`    | INTEGER | Unix seconds: `fetched_at + cache_days * 86400`                   |
//!
//! Lookup: `WHERE source = ? AND family = ? AND first <= ?key AND last >= ?key AND expires >
//! ?now ORDER BY first DESC, last ASC LIMIT 1`: registries' networks nest or are disjoint, so
//! the innermost one holding the address has the greatest `first` (then the smallest `last`).
//! Bootstrap files: `(family INTEGER PRIMARY KEY, origin TEXT, body BLOB, fetched_at INTEGER)`.
//! Expired rows are harmless (never used) and may be deleted by any run.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::Source;

/// One remembered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub source: Source,
    /// The range the answer covers: the RDAP network's, or the one address Abusix was asked for.
    pub first: IpAddr,
    pub last: IpAddr,
    /// `None`: the source answered and named no usable contact.
    pub address: Option<String>,
    /// The RDAP URL that answered, or the DNS name asked.
    pub origin: String,
    /// The RDAP network's handle.
    pub handle: Option<String>,
    pub fetched_at: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// How far ahead of a run's clock a time stored by an earlier run may be and still be
/// believed. Further ahead, it was stored by a clock that ran ahead and has been set back
/// since: an entry fetched then would be trusted for as long as the clock was ahead beyond
/// `cache_days` (a registry's "none" for weeks, not a week), and is not.
pub fn ahead_of(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::hours(1)
}

impl CacheEntry {
    /// Whether the entry answers at `now`: not expired, and fetched no later than `now`
    /// allows (see [`ahead_of`]).
    pub fn current(&self, now: DateTime<Utc>) -> bool {
        self.expires > now && self.fetched_at <= ahead_of(now)
    }

    /// Whether the entry answers for `ip` at `now`.
    pub fn covers(&self, ip: IpAddr, now: DateTime<Utc>) -> bool {
        self.current(now)
            && self.first.is_ipv4() == ip.is_ipv4()
            && self.last.is_ipv4() == ip.is_ipv4()
            && self.first <= ip
            && ip <= self.last
    }

    /// The network as `contacts` shows it: one CIDR when the range is one, else
    /// `first - last`; `None` for Abusix, which names no network.
    pub fn network_text(&self) -> Option<String> {
        if self.source == Source::Abusix {
            return None;
        }
        let net = super::cidr_within(self.first, self.last, self.first);
        Some(if net.broadcast() == self.last {
            net.to_string()
        } else {
            format!("{} - {}", self.first, self.last)
        })
    }

    /// The number of addresses covered minus one: smaller is more specific.
    pub fn span(&self) -> u128 {
        number(self.last).saturating_sub(number(self.first))
    }

    /// Which of the entries covering an address answers for it: the smallest is best, that
    /// is the most specific, of those the newest, of those the one starting last.
    pub fn rank(
        &self,
    ) -> (
        u128,
        std::cmp::Reverse<DateTime<Utc>>,
        std::cmp::Reverse<u128>,
    ) {
        (
            self.span(),
            std::cmp::Reverse(self.fetched_at),
            std::cmp::Reverse(number(self.first)),
        )
    }
}

/// Entries indexed to answer [`ContactCache::find`] by a binary search, as [`MemoryCache`]
/// answers it by looking at every entry: the addresses of each source and family are cut
/// into segments at every entry's ends, and each segment knows its best entry. A run with
/// discovery asks for every address waiting for its contact; looking through the cache, or
/// walking an index of it, for each is a run's cost growing with the cache.
#[derive(Debug)]
pub struct Stabbing {
    /// The time the entries were current at: an entry expired then is not in.
    pub now: DateTime<Utc>,
    entries: Vec<CacheEntry>,
    /// Per source and family (IPv4 or not): where each segment starts, and its best entry.
    segments: std::collections::HashMap<(Source, bool), Segments>,
    /// Entries remembered since: a run's few lookups, looked through.
    added: Vec<CacheEntry>,
}

impl Stabbing {
    /// The index of `entries` as they stand at `now`.
    pub fn new(entries: Vec<CacheEntry>, now: DateTime<Utc>) -> Self {
        let entries: Vec<CacheEntry> = entries
            .into_iter()
            .filter(|e| {
                e.current(now) && e.first.is_ipv4() == e.last.is_ipv4() && e.first <= e.last
            })
            .collect();
        let mut groups: std::collections::HashMap<(Source, bool), Vec<u32>> =
            std::collections::HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            groups
                .entry((e.source, e.first.is_ipv4()))
                .or_default()
                .push(i as u32);
        }
        let segments = groups
            .into_iter()
            .map(|(key, members)| (key, segments_of(&entries, members)))
            .collect();
        Stabbing {
            now,
            entries,
            segments,
            added: Vec::new(),
        }
    }

    /// Remembers an entry stored after the index was made.
    pub fn add(&mut self, entry: CacheEntry) {
        self.added.retain(|e| {
            !(e.source == entry.source && e.first == entry.first && e.last == entry.last)
        });
        self.added.push(entry);
    }

    /// The best entry of `source` covering `ip` at the index's time.
    pub fn find(&self, source: Source, ip: IpAddr) -> Option<&CacheEntry> {
        let indexed = self
            .segments
            .get(&(source, ip.is_ipv4()))
            .and_then(|(starts, best)| {
                let at = starts
                    .partition_point(|&s| s <= number(ip))
                    .checked_sub(1)?;
                best[at].map(|i| &self.entries[i as usize])
            });
        let added = (self.added.iter()).filter(|e| e.source == source && e.covers(ip, self.now));
        indexed.into_iter().chain(added).min_by_key(|e| e.rank())
    }
}

/// Where each segment of one source and family starts, and the entry best for it.
type Segments = (Vec<u128>, Vec<Option<u32>>);

/// The segments of one source and family: starts at every entry's first address and after
/// every entry's last, each with the best entry covering it (a sweep keeping the entries
/// begun so far by rank, those ended dropped from the top as they surface).
fn segments_of(entries: &[CacheEntry], mut members: Vec<u32>) -> Segments {
    use std::cmp::Reverse;
    let e = |i: u32| &entries[i as usize];
    members.sort_by_key(|&i| number(e(i).first));
    let mut starts: Vec<u128> = members.iter().map(|&i| number(e(i).first)).collect();
    starts.extend((members.iter()).filter_map(|&i| number(e(i).last).checked_add(1)));
    starts.sort_unstable();
    starts.dedup();
    let mut best = Vec::with_capacity(starts.len());
    let mut open = std::collections::BinaryHeap::new();
    let mut next = members.iter().peekable();
    for &at in &starts {
        while let Some(&&i) = next.peek().filter(|&&&i| number(e(i).first) <= at) {
            open.push(Reverse((e(i).rank(), i)));
            next.next();
        }
        while open
            .peek()
            .is_some_and(|Reverse((_, i))| number(e(*i).last) < at)
        {
            open.pop();
        }
        best.push(open.peek().map(|Reverse((_, i))| *i));
    }
    (starts, best)
}

/// A bootstrap file as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapCopy {
    /// 4 or 6.
    pub family: u8,
    /// Where it was fetched from.
    pub origin: String,
    pub body: Vec<u8>,
    pub fetched_at: DateTime<Utc>,
}

/// Where discovery keeps what it learned. Errors are the store's (a state database that
/// cannot be written); discovery turns them into a failure of the one address concerned.
pub trait ContactCache {
    /// The most specific unexpired entry of `source` that covers `ip`.
    fn find(
        &self,
        source: Source,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<CacheEntry>>;
    /// Remembers an entry, replacing one of the same source and range.
    fn store(&mut self, entry: CacheEntry) -> anyhow::Result<()>;
    /// The last bootstrap file of a family, however old.
    fn bootstrap(&self, family: u8) -> anyhow::Result<Option<BootstrapCopy>>;
    fn store_bootstrap(&mut self, copy: BootstrapCopy) -> anyhow::Result<()>;
    /// When each address whose lookup failed last failed (Unix seconds): a run looks those
    /// up after the others, so that a few that always fail cannot take every run's lookups.
    fn failures(&self) -> anyhow::Result<std::collections::HashMap<IpAddr, i64>> {
        Ok(std::collections::HashMap::new())
    }
    /// Remembers that looking `ip` up failed at `at`.
    fn note_failure(&mut self, _ip: IpAddr, _at: DateTime<Utc>) -> anyhow::Result<()> {
        Ok(())
    }
    /// Remembers that the addresses `held` are not reported for now, whatever their desk
    /// (none, refused, the operator's own, `never`), and are to be decided again at `due`;
    /// one already due later keeps its time.
    fn note_held(&mut self, _held: &[IpAddr], _due: DateTime<Utc>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Entries in memory, for tests and for a run without a state table.
#[derive(Debug, Clone, Default)]
pub struct MemoryCache {
    pub entries: Vec<CacheEntry>,
    pub bootstraps: Vec<BootstrapCopy>,
    pub failures: std::collections::HashMap<IpAddr, i64>,
}

impl ContactCache for MemoryCache {
    fn find(
        &self,
        source: Source,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<CacheEntry>> {
        Ok(self
            .entries
            .iter()
            .filter(|e| e.source == source && e.covers(ip, now))
            .min_by_key(|e| e.rank())
            .cloned())
    }

    fn store(&mut self, entry: CacheEntry) -> anyhow::Result<()> {
        self.entries.retain(|e| {
            !(e.source == entry.source && e.first == entry.first && e.last == entry.last)
        });
        self.entries.push(entry);
        Ok(())
    }

    fn bootstrap(&self, family: u8) -> anyhow::Result<Option<BootstrapCopy>> {
        Ok(self.bootstraps.iter().find(|b| b.family == family).cloned())
    }

    fn store_bootstrap(&mut self, copy: BootstrapCopy) -> anyhow::Result<()> {
        self.bootstraps.retain(|b| b.family != copy.family);
        self.bootstraps.push(copy);
        Ok(())
    }

    fn failures(&self) -> anyhow::Result<std::collections::HashMap<IpAddr, i64>> {
        Ok(self.failures.clone())
    }

    fn note_failure(&mut self, ip: IpAddr, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.failures.insert(ip, at.timestamp());
        Ok(())
    }
}

/// An address as a number; IPv4 as itself (families are compared separately).
pub(super) fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// 32 lower-case hex digits of the address as a number: text that sorts like the address
/// within a family, for a range query in SQL.
pub fn hex_key(ip: IpAddr) -> String {
    format!("{:032x}", number(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// An address of a family from a small number: ranges drawn from few addresses overlap,
    /// nest and touch often.
    fn address(v4: bool, n: u8) -> IpAddr {
        if v4 {
            IpAddr::V4(std::net::Ipv4Addr::new(45, 0, 0, n))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0x2a0f,
                0,
                0,
                0,
                0,
                0,
                0,
                u16::from(n),
            ))
        }
    }

    proptest! {
        #[test]
        fn the_index_finds_what_looking_at_every_entry_finds(
            drawn in prop::collection::vec(
                (any::<bool>(), any::<bool>(), 0u8..40, 0u8..12, 0i64..4, -2i64..3),
                0..40,
            ),
            later in prop::collection::vec((any::<bool>(), 0u8..40, 0u8..6), 0..4),
        ) {
            let now = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
            let make = |rdap: bool, v4: bool, first: u8, width: u8, fetched: i64, expires: i64| {
                CacheEntry {
                    source: if rdap { Source::Rdap } else { Source::Abusix },
                    first: address(v4, first),
                    last: address(v4, first.saturating_add(width)),
                    address: Some(format!("abuse{first}-{width}@example.net")),
                    origin: "o".into(),
                    handle: None,
                    fetched_at: now - chrono::Duration::days(5 - fetched),
                    expires: now + chrono::Duration::days(expires),
                }
            };
            let mut every = MemoryCache::default();
            for &(rdap, v4, first, width, fetched, expires) in &drawn {
                every.store(make(rdap, v4, first, width, fetched, expires)).unwrap();
            }
            let mut index = Stabbing::new(every.entries.clone(), now);
            // Stored after the index was made, as a run's lookups are.
            for &(v4, first, width) in &later {
                let e = make(true, v4, first, width, 4, 2);
                every.store(e.clone()).unwrap();
                index.add(e);
            }
            for v4 in [true, false] {
                for n in 0..=60u8 {
                    for source in [Source::Rdap, Source::Abusix] {
                        let ip = address(v4, n);
                        let plain = every.find(source, ip, now).unwrap();
                        prop_assert_eq!(index.find(source, ip), plain.as_ref());
                    }
                }
            }
        }
    }

    fn entry(first: &str, last: &str, address: &str, day: u32) -> CacheEntry {
        let at = Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap();
        CacheEntry {
            source: Source::Rdap,
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
            address: Some(address.into()),
            origin: "https://rdap.example.test/ip/x".into(),
            handle: None,
            fetched_at: at,
            expires: at + chrono::Duration::days(30),
        }
    }

    #[test]
    fn the_most_specific_unexpired_entry_wins() {
        let mut c = MemoryCache::default();
        c.store(entry("192.0.0.0", "192.0.255.255", "wide@a.test", 1))
            .unwrap();
        c.store(entry("192.0.2.0", "192.0.2.255", "narrow@a.test", 1))
            .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        let find = |ip: &str| {
            c.find(Source::Rdap, ip.parse().unwrap(), now)
                .unwrap()
                .and_then(|e| e.address)
        };
        assert_eq!(find("192.0.2.7").as_deref(), Some("narrow@a.test"));
        assert_eq!(find("192.0.3.7").as_deref(), Some("wide@a.test"));
        assert_eq!(find("::ffff:192.0.2.7"), None);
        assert_eq!(
            c.find(Source::Abusix, "192.0.2.7".parse().unwrap(), now)
                .unwrap(),
            None
        );
        let later = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        assert_eq!(
            c.find(Source::Rdap, "192.0.2.7".parse().unwrap(), later)
                .unwrap(),
            None
        );
    }

    #[test]
    fn network_text_is_a_cidr_when_the_range_is_one() {
        assert_eq!(
            entry("192.0.2.0", "192.0.2.255", "a@b.net", 1)
                .network_text()
                .as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(
            entry("192.0.2.0", "192.0.3.127", "a@b.net", 1)
                .network_text()
                .as_deref(),
            Some("192.0.2.0 - 192.0.3.127")
        );
        let mut abusix = entry("192.0.2.7", "192.0.2.7", "a@b.net", 1);
        abusix.source = Source::Abusix;
        assert_eq!(abusix.network_text(), None);
    }

    #[test]
    fn a_newer_fetch_replaces_the_same_range() {
        let mut c = MemoryCache::default();
        c.store(entry("192.0.2.0", "192.0.2.255", "old@a.test", 1))
            .unwrap();
        c.store(entry("192.0.2.0", "192.0.2.255", "new@a.test", 2))
            .unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].address.as_deref(), Some("new@a.test"));
    }

    #[test]
    fn hex_keys_sort_like_addresses() {
        let a = hex_key("9.255.255.255".parse().unwrap());
        let b = hex_key("10.0.0.0".parse().unwrap());
        assert!(a < b && a.len() == 32);
        assert!(
            hex_key("2001:db8::1".parse().unwrap()) < hex_key("2001:db8::1:0".parse().unwrap())
        );
    }
}
