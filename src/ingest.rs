//! Ingest: turns the bytes of a log into per-IP [`Observation`]s, run counters and evidence
//! windows, in memory that grows with the number of distinct IPs, not with the log. While it
//! reads, a source is a record of a fixed size, its values in place (see `Seen`); only a
//! source with more variety than a record holds takes more, up to the bounds of its sets.
//!
//! The scan reads large buffers, counts lines with `memchr`, and looks for the configured
//! prefixes across the whole buffer, so only lines that carry a prefix are split out and parsed.
//! Reading files and remembering where they stopped is `source`'s job; storing what was seen
//! is `state`'s.
//!
//! What a read yields does not depend on how it is read: read sizes, where a file is cut
//! between threads, or the order prefixes are configured in. A line at least as long as the
//! read buffer (1 MiB; the kernel's lines are under 1 KiB) is one junk line. Bounded per-IP
//! sets keep their smallest values. `tests/differential.rs` holds the reader to this.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::net::IpAddr;

use serde::Serialize;

use crate::excerpt::{EvidenceLine, WindowTracker, clean, densest, kept_text};
use crate::parse::{Line, LineParser, Packet};
use crate::spool::{KeptLine, Pen, Placed, Spool};

/// Distinct values kept per IP and field: enough for a report, bounded for a port scan. A
/// bounded field keeps its smallest values (the lowest ports, for a scan).
pub const MAX_PORTS: usize = 64;
pub const MAX_SMALL_SET: usize = 16;

/// A sorted set that holds one value in place and more in one allocation of just their size:
/// an address's sets hold a handful of values, most often one (a scan, a spoofed flood: each
/// source seen once or twice), and a B-tree node, or a vector with room to grow, for each
/// would cost more than the address's whole record. A boxed slice rather than a vector keeps
/// the set to two words; its values are bounded, so growing one at a time costs little.
#[derive(Clone)]
pub struct SmallSet<T>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    One(T),
    /// No value, or two values or more, ascending. An empty slice holds no allocation, and
    /// without a variant of its own the set of a port fits in two words.
    Many(Box<[T]>),
}

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet(Repr::Many(Box::default()))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SmallSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.slice()).finish()
    }
}

impl<T: PartialEq> PartialEq for SmallSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.slice() == other.slice()
    }
}

impl<T: Eq> Eq for SmallSet<T> {}

impl<T: std::hash::Hash> std::hash::Hash for SmallSet<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.slice().hash(state);
    }
}

impl<T> SmallSet<T> {
    fn slice(&self) -> &[T] {
        match &self.0 {
            Repr::One(value) => std::slice::from_ref(value),
            Repr::Many(values) => values,
        }
    }
}

impl<T: Ord> SmallSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`; whether it was new.
    pub fn insert(&mut self, value: T) -> bool {
        match &mut self.0 {
            Repr::Many(values) if values.is_empty() => {
                self.0 = Repr::One(value);
                true
            }
            Repr::One(one) if *one == value => false,
            Repr::One(_) => {
                let Repr::One(one) = std::mem::take(self).0 else {
                    unreachable!("matched above")
                };
                let values: Box<[T]> = if one < value {
                    Box::new([one, value])
                } else {
                    Box::new([value, one])
                };
                self.0 = Repr::Many(values);
                true
            }
            Repr::Many(values) => match values.binary_search(&value) {
                Ok(_) => false,
                Err(at) => {
                    let mut grown = std::mem::take(values).into_vec();
                    grown.reserve_exact(1);
                    grown.insert(at, value);
                    *values = grown.into_boxed_slice();
                    true
                }
            },
        }
    }

    /// Adds `value` to a set that holds at most `cap` values, its `cap` smallest: a full set
    /// takes a smaller value in place of its largest. The plain insertion a reader's records
    /// are held to in the tests.
    #[cfg(test)]
    fn insert_capped(&mut self, value: T, cap: usize) {
        match &mut self.0 {
            Repr::Many(values) if values.len() >= cap => {
                if let Err(at) = values.binary_search(&value)
                    && at < values.len()
                {
                    // The largest value leaves; the larger ones move up to make room.
                    values[at..].rotate_right(1);
                    values[at] = value;
                }
            }
            Repr::One(one) if cap <= 1 => {
                if value < *one {
                    *one = value;
                }
            }
            _ => {
                self.insert(value);
            }
        }
    }

    /// Adds the values of `other` to a set that holds at most `cap` values, its `cap`
    /// smallest: the two sorted sets merged in one pass and one allocation, and none when
    /// `other` brings nothing (the usual case when two reads of one source meet).
    fn merge_capped(&mut self, other: &Self, cap: usize)
    where
        T: Clone,
    {
        if other
            .iter()
            .all(|v| self.contains(v) || !keeps(self, v, cap))
        {
            return;
        }
        let size = (self.len() + other.len()).min(cap);
        let mut mine = std::mem::take(self).into_iter().peekable();
        let mut theirs = other.iter().peekable();
        let mut merged = Vec::with_capacity(size);
        while merged.len() < cap {
            let take_mine = match (mine.peek(), theirs.peek()) {
                (Some(a), Some(b)) => match a.cmp(b) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        theirs.next();
                        true
                    }
                },
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            match take_mine {
                true => merged.extend(mine.next()),
                false => merged.extend(theirs.next().cloned()),
            }
        }
        *self = Self::from_sorted(merged);
    }

    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
    {
        self.slice()
            .binary_search_by(|x| x.borrow().cmp(value))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.slice().is_empty()
    }

    /// In ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.slice().iter()
    }

    pub fn first(&self) -> Option<&T> {
        self.slice().first()
    }

    pub fn last(&self) -> Option<&T> {
        self.slice().last()
    }

    pub fn pop_last(&mut self) -> Option<T> {
        match std::mem::take(self).0 {
            Repr::One(value) => Some(value),
            Repr::Many(values) => {
                let mut values = values.into_vec();
                let last = values.pop();
                self.0 = Self::from_sorted(values).0;
                last
            }
        }
    }

    /// The values, ascending.
    pub fn as_slice(&self) -> &[T] {
        self.slice()
    }

    /// From values that are ascending and distinct.
    fn from_sorted(mut values: Vec<T>) -> Self {
        SmallSet(match values.len() {
            1 => Repr::One(values.pop().expect("one value")),
            _ => Repr::Many(values.into_boxed_slice()),
        })
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    /// No vector for none or one value, the most common sets (a source's one provider).
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let (first, second) = match (iter.next(), iter.next()) {
            (None, _) => return SmallSet::new(),
            (Some(one), None) => return SmallSet(Repr::One(one)),
            (Some(first), Some(second)) => (first, second),
        };
        let mut values: Vec<T> = [first, second].into_iter().chain(iter).collect();
        values.sort();
        values.dedup();
        Self::from_sorted(values)
    }
}

impl<T: Ord> Extend<T> for SmallSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.insert(value);
        }
    }
}

impl<'a, T> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice().iter()
    }
}

impl<T> IntoIterator for SmallSet<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::One(value) => vec![value],
            Repr::Many(values) => values.into_vec(),
        }
        .into_iter()
    }
}

/// A protocol or host name as a source's record holds it: in place when short, as names in
/// a log are (`TCP`, `web1`), so that a million sources are not two million allocations, and
/// reading a line compares names without following a pointer to each.
#[derive(Clone)]
pub struct Name(NameRepr);

#[derive(Clone)]
enum NameRepr {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

/// Bytes a name holds in place: with its length and the variant's tag, three words.
pub const INLINE_NAME: usize = 22;

impl Name {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always whole UTF-8: the bytes were a whole `str`.
            NameRepr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            NameRepr::Heap(text) => text,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            NameRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            NameRepr::Heap(text) => text.as_bytes(),
        }
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Name(match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_NAME => {
                let mut bytes = [0; INLINE_NAME];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                NameRepr::Inline { len, bytes }
            }
            _ => NameRepr::Heap(text.into()),
        })
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Name::from(text.as_str())
    }
}

impl std::str::FromStr for Name {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Name::from(text))
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Ordered, equal and hashed as the text is, byte by byte, as `str` is.
impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// Whether a bounded set of names takes `name`: not held yet, and among its smallest.
#[cfg(test)]
fn takes_name(set: &SmallSet<Name>, name: &[u8], cap: usize) -> bool {
    // Most lines repeat a name the set holds (one protocol or two, one host): compared in
    // place, a word at a time, before any ordered search.
    let held = |n: &Name| crate::parse::same_bytes(n.as_bytes(), name);
    if set.slice().iter().take(4).any(held) {
        return false;
    }
    set.slice()
        .binary_search_by(|held| held.as_bytes().cmp(name))
        .is_err()
        && (set.len() < cap || set.last().is_some_and(|last| name < last.as_bytes()))
}

/// What the logs say about one source address, over every run so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub ip: IpAddr,
    /// Unix seconds of the first and last dropped packet.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Dropped packets (log lines).
    pub hits: u64,
    pub protocols: SmallSet<Name>,
    pub dst_ports: SmallSet<u16>,
    pub src_ports: SmallSet<u16>,
    pub dsts: SmallSet<IpAddr>,
    pub hosts: SmallSet<Name>,
}

/// Whether a set bounded to `cap` values keeps `value`: a bounded set holds its `cap`
/// smallest values, so that what it holds does not depend on the order lines were read in
/// (nor on how a file was split between threads, nor on the order runs are merged).
fn keeps<T: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized>(
    set: &SmallSet<T>,
    value: &Q,
    cap: usize,
) -> bool {
    set.len() < cap || set.last().is_some_and(|last| value < last.borrow())
}

#[cfg(test)]
fn insert_capped<T: Ord>(set: &mut SmallSet<T>, value: T, cap: usize) {
    if keeps(set, &value, cap) {
        set.insert_capped(value, cap);
    }
}

impl Observation {
    pub fn new(ip: IpAddr, time: i64) -> Self {
        Self {
            ip,
            first_seen: time,
            last_seen: time,
            hits: 0,
            protocols: SmallSet::new(),
            dst_ports: SmallSet::new(),
            src_ports: SmallSet::new(),
            dsts: SmallSet::new(),
            hosts: SmallSet::new(),
        }
    }

    /// Counts `p`, one value at a time into the sets: what a reader's compact records (see
    /// `Seen`) must come to, whatever the order and split of their packets, once the hosts,
    /// all kept here, are bounded.
    #[cfg(test)]
    fn record(&mut self, p: &Packet<'_>) {
        self.hits += u64::from(p.copies);
        self.first_seen = self.first_seen.min(p.time);
        self.last_seen = self.last_seen.max(p.time);
        if takes_name(&self.protocols, p.proto.as_bytes(), MAX_SMALL_SET) {
            insert_capped(&mut self.protocols, Name::from(p.proto), MAX_SMALL_SET);
        }
        if let Some(port) = p.dpt {
            insert_capped(&mut self.dst_ports, port, MAX_PORTS);
        }
        if let Some(port) = p.spt {
            insert_capped(&mut self.src_ports, port, MAX_SMALL_SET);
        }
        insert_capped(&mut self.dsts, p.dst, MAX_SMALL_SET);
        // Every host, bounded once all are in (see `kept_hosts` in the tests).
        // The parser let only ASCII through.
        self.hosts
            .insert(Name::from(String::from_utf8_lossy(p.host).as_ref()));
    }

    /// Adds what another observation of the same IP saw.
    pub fn merge(&mut self, other: &Observation) {
        self.hits = self.hits.saturating_add(other.hits);
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.protocols.merge_capped(&other.protocols, MAX_SMALL_SET);
        self.dst_ports.merge_capped(&other.dst_ports, MAX_PORTS);
        self.src_ports.merge_capped(&other.src_ports, MAX_SMALL_SET);
        self.dsts.merge_capped(&other.dsts, MAX_SMALL_SET);
        merge_hosts(&mut self.hosts, &other.hosts);
    }
}

/// Counters about the lines one run read (the `summary` of `preview --json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub lines_read: u64,
    pub lines_matched: u64,
    pub lines_malformed: u64,
    pub bytes_read: u64,
    pub ips_observed: u64,
    pub ips_unattributed: u64,
    /// Matched lines older than `max_age_days`, or dated more than a day ahead of the clock:
    /// not counted as hits.
    pub lines_stale: u64,
    /// Of `lines_stale`, those ahead of the clock: a clock set back (before NTP) takes every
    /// line since for one. Said on stderr, not a field of the summary.
    #[serde(skip)]
    pub lines_ahead: u64,
    /// Hits dated ahead of the clock by less than a day, more than a few minutes (see
    /// [`Ingest::soon_after`]), and the latest time among them: a `timezone` that is not
    /// the log's, or a host's clock ahead, puts the report's times out by as much. Said on
    /// stderr, not a field of the summary.
    #[serde(skip)]
    pub lines_soon: u64,
    #[serde(skip)]
    pub latest_soon: i64,
    /// Matched lines that answer the operator's own traffic (TCP ACK/RST, ICMP errors):
    /// not counted as hits unless `backscatter = true`.
    pub lines_backscatter: u64,
    /// Matched lines of a source read again (`reread`) that an earlier read counted already.
    pub lines_counted_before: u64,
    /// Matched lines of packets the operator's host sent (an empty `IN=`, or `IN=lo`) or that
    /// give its address as their source (`SRC=` the same as `DST=`). Never counted as hits.
    /// Said on stderr, not a field of the summary.
    #[serde(skip)]
    pub lines_outgoing: u64,
    /// Packet lines logged before `--since`: passed over, as the option asks. Said on stderr,
    /// not a field of the summary.
    #[serde(skip)]
    pub lines_before_since: u64,
    /// Of `lines_malformed`, those carrying a prefix outside a kernel message: another
    /// program's text (a user name, a web path), or a log layout that is not read (a tag other
    /// than `kernel:`). Told when a first read finds nothing else; not a field of the summary.
    #[serde(skip)]
    pub lines_not_kernel: u64,
    /// Addresses in a provider, not reported yet, held back because they sent fewer than
    /// `min_hits` packets so far.
    pub ips_below_min_hits: u64,
}

/// Where an IP's reports go, as the caller numbers its destinations (evidence buckets):
/// asked once per new IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// A configured provider holds the IP (it is not `unattributed`).
    pub in_provider: bool,
    /// The buckets it may still be reported to: evidence is kept for these. Mostly one, held
    /// in place; there is no bound on how many buckets there are.
    pub candidates: SmallSet<u32>,
    /// Keep one line of its own rather than [`LINES_PER_IP`]: for addresses that only a
    /// discovered desk may get (a flood of spoofed sources in no provider is most of them).
    pub few_lines: bool,
}

/// What a read holds of one source address while it reads: its counts, where its reports
/// may go, and its values. The common source (a few ports and protocols, one destination,
/// one host) keeps its values in the record itself, with no allocation of its own: a scan or
/// a spoofed flood is hundreds of thousands of such sources, each seen a few times. Each kind
/// of value that outgrows the record leaves it on its own, so that the kinds that still fit
/// are read without following a pointer: ports to vectors of the record's own, protocols,
/// destinations and hosts to the reader's side table ([`Tables::aside`]).
///
/// Becomes an [`Observation`] when the read ends, where it lies: it is the size of one (152
/// bytes), so that a flood's records are not copied to a second table of the same size,
/// each of its pages new to the process. Its room beyond its counts holds ports.
struct Seen {
    ip: IpAddr,
    first_seen: i64,
    last_seen: i64,
    hits: u64,
    candidates: SmallSet<u32>,
    in_provider: bool,
    few_lines: bool,
    /// How many of its first lines a candidate IP has in [`Ingest::first_lines`].
    first_lines: u8,
    /// Its protocols as [`protocol_code`]s, in the order first seen: the first
    /// `protocol_count`, or none when that is [`ASIDE_COUNT`].
    protocols: [u16; PROTOCOLS_IN_PLACE],
    protocol_count: u8,
    /// Its one destination and host, as the reader's [`Tables`] number them, or [`ASIDE`].
    dst: u32,
    host: u32,
    /// Its place in [`Tables::aside`], or [`ASIDE`] while it has none.
    aside: u32,
    ports: Ports,
}

/// Lines of its own kept per IP, beside the densest window.
pub const LINES_PER_IP: usize = 3;

/// From this many sources' lines kept on, a read chooses among them as it goes (see
/// [`Ingest::choose_own_lines`]).
const CHOOSE_FROM: usize = 1 << 16;

/// A read chooses among its lines as well when the text of those it may let go of reaches
/// this many bytes: those it keeps go into the spool, so a log host's thousands of hosts cost
/// disk, not memory.
const HELD_AT_MOST: usize = 16 << 20;

/// A number that stands for none: the values of its kind are in the side table.
const ASIDE: u32 = u32::MAX;
const ASIDE_COUNT: u8 = u8::MAX;

const PROTOCOLS_IN_PLACE: usize = 2;

/// Ports a record holds in place, destination and source ports together: a scan of many
/// ports from one source port fits, as does a client trying one port from many. As many as
/// make the record the size of an [`Observation`].
const PORTS_IN_PLACE: usize = 34;

/// A source's ports: in place, each as first seen, and every distinct one it took (its sets
/// are bounded when they leave the record, so that they keep their smallest values whatever
/// the order); or, past that room, ascending and bounded: destination ports in a vector that
/// grows by doubling, source ports in the record.
enum Ports {
    InPlace {
        /// Destination ports from the front, source ports from the back.
        ports: [u16; PORTS_IN_PLACE],
        dst: u8,
        src: u8,
    },
    Aside {
        dst: Vec<u16>,
        /// `dst`'s values while it has at most [`DST_IN_SIGHT`]: a source that sends from
        /// many source ports mostly sends to a handful of destination ports, found here
        /// without following the pointer to the vector (a cache miss on every line).
        dst_in_sight: [u16; DST_IN_SIGHT],
        /// The smallest source ports, ascending: the first `src_len`. Held in the record,
        /// not behind a pointer: a source that sends from a new port on many of its lines
        /// followed it on each, a cache miss (the costliest instruction of counting a line
        /// in, on the benchmark's log), and took an allocation of its own.
        src: [u16; MAX_SMALL_SET],
        src_len: u8,
    },
}

/// Destination ports of a record's vector also held in the record (see `Ports::Aside`): as
/// many as fit in the room the ports held in place leave.
const DST_IN_SIGHT: usize = 7;

/// A protocol as a record takes it: its [`protocol_code`], or text no code stands for.
#[derive(Clone, Copy)]
enum Protocol<'a> {
    Code(u16),
    Other(&'a str),
}

impl<'a> Protocol<'a> {
    fn of(name: &'a str) -> Self {
        protocol_code(name).map_or(Protocol::Other(name), Protocol::Code)
    }
}

/// The values of a kind a source's record has no room for: each ascending and bounded as the
/// observation's sets are, in vectors that grow by doubling; but for the protocols with a
/// code, which are few whatever a source sends: they are bounded when they leave.
#[derive(Default)]
struct Aside {
    /// [`protocol_code`]s, in the order first seen.
    protocols: Vec<u16>,
    /// Protocols no code stands for.
    other_protocols: Vec<Name>,
    dsts: Vec<IpAddr>,
    hosts: Vec<Name>,
}

/// What a reader's records number or set aside: destinations and hosts by number, and the
/// values of the sources with more variety than a record holds. The numbers are the
/// reader's own: another reader's records are renumbered as they are taken in.
#[derive(Default)]
struct Tables {
    dsts: Numbered<IpAddr>,
    hosts: Numbered<Name>,
    aside: Vec<Aside>,
}

/// Another reader's numbers of destinations and hosts, as this reader numbers the same
/// values.
struct Renumber {
    dsts: Vec<u32>,
    hosts: Vec<u32>,
}

impl Renumber {
    /// What `mine` takes of `theirs`: their numbers, numbered in `mine` too.
    fn new(theirs: &Tables, mine: &mut Tables) -> Self {
        let dsts = (theirs.dsts.values.iter())
            .map(|&ip| mine.dsts.number(&ip, || ip))
            .collect();
        let hosts = (theirs.hosts.values.iter())
            .map(|host| mine.hosts.number(host.as_bytes(), || host.clone()))
            .collect();
        Renumber { dsts, hosts }
    }

    /// A number of theirs as this reader numbers its value; [`ASIDE`] stays.
    fn dst(&self, number: u32) -> u32 {
        self.dsts.get(number as usize).copied().unwrap_or(ASIDE)
    }

    fn host(&self, number: u32) -> u32 {
        self.hosts.get(number as usize).copied().unwrap_or(ASIDE)
    }
}

/// Values numbered in the order first met, found by value through a seeded hash (the values
/// come from the log, which an attacker writes in part).
struct Numbered<T> {
    values: Vec<T>,
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<T> Default for Numbered<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            index: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// What a numbered value is found by.
trait Keyed {
    type Key: ?Sized + Eq + std::hash::Hash;
    fn key(&self) -> &Self::Key;
}

impl Keyed for IpAddr {
    type Key = IpAddr;
    fn key(&self) -> &IpAddr {
        self
    }
}

impl Keyed for Name {
    type Key = [u8];
    fn key(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<T: Keyed> Numbered<T> {
    /// The number of the value `key` finds, made by `make` when there is none yet.
    fn number(&mut self, key: &T::Key, make: impl FnOnce() -> T) -> u32 {
        // A reader meets a few of them (a firewall's own addresses and host names), most
        // often the one it met last.
        if let Some(last) = self.values.last()
            && last.key() == key
        {
            return slot(self.values.len() - 1);
        }
        let Self {
            values,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(key);
        let rehash = |&n: &u32| hasher.hash_one(values[n as usize].key());
        match index.entry(hash, |&n| values[n as usize].key() == key, rehash) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(e) => {
                let n = slot(values.len());
                e.insert(n);
                values.push(make());
                n
            }
        }
    }

    fn get(&self, number: u32) -> &T {
        &self.values[number as usize]
    }
}

/// A protocol as a number a record holds in two bytes: its own number (the kernel prints a
/// protocol it has no name for as its number, 0 to 255), or 256 and up for the names it
/// prints. `None` for other text, which a record can only hold in its side table ([`Aside`]).
fn protocol_code(name: &str) -> Option<u16> {
    // Most packets are TCP or UDP: told apart by a compare of a few bytes, inline.
    const TCP: u16 = named_protocol("TCP");
    const UDP: u16 = named_protocol("UDP");
    match name {
        "TCP" => return Some(TCP),
        "UDP" => return Some(UDP),
        _ => {}
    }
    if let Some(i) = (crate::parse::PROTOCOLS.iter()).position(|p| *p == name) {
        return u16::try_from(256 + i).ok();
    }
    // Only the kernel's own spelling: `06` would come back as `6`.
    let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    let spelled = digits && (name == "0" || !name.starts_with('0'));
    name.parse::<u8>().ok().filter(|_| spelled).map(u16::from)
}

/// The [`protocol_code`] of one of the kernel's names, found when compiled.
const fn named_protocol(name: &str) -> u16 {
    let names = crate::parse::PROTOCOLS;
    let mut i = 0;
    while i < names.len() {
        if names[i].len() == name.len() {
            let (a, b) = (names[i].as_bytes(), name.as_bytes());
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return 256 + i as u16;
            }
        }
        i += 1;
    }
    panic!("not a name the kernel prints")
}

/// The text of a [`protocol_code`].
fn protocol_name(code: u16) -> Name {
    match code.checked_sub(256) {
        Some(i) => Name::from(crate::parse::PROTOCOLS[usize::from(i)]),
        None => Name::from(code.to_string()),
    }
}

/// A host name as its bytes spell it (the parser let only ASCII through).
fn host_name(bytes: &[u8]) -> Name {
    Name::from(String::from_utf8_lossy(bytes).as_ref())
}

/// Adds `value` to `set` (ascending, distinct, at most `cap` values), which keeps its `cap`
/// smallest values.
fn add_bounded<T: Ord>(set: &mut Vec<T>, value: T, cap: usize) {
    // A source with many values of a kind fills its set: a larger value is turned away
    // without a search.
    if set.len() >= cap && set.last().is_some_and(|last| value >= *last) {
        return;
    }
    if let Err(at) = set.binary_search(&value) {
        set.truncate(cap - 1);
        set.insert(at, value);
    }
}

/// Host names longer than a record holds in place ([`INLINE_NAME`] bytes) that a source keeps:
/// its smallest. Each costs an allocation of its own, up to 255 bytes: a log host's forged
/// senders may name a new host on every line, and sixteen such names were 4 KB a source.
pub const LONG_NAMES: usize = 4;

/// Whether a name is longer than a record holds in place.
fn is_long(name: &[u8]) -> bool {
    name.len() > INLINE_NAME
}

/// Adds host `name` to `set` (ascending, distinct), made into a [`Name`] only when taken. Of
/// all the names added, the set holds the [`MAX_SMALL_SET`] smallest of those that are short
/// and the [`LONG_NAMES`] smallest long ones, whatever the order they came in: a long name
/// with as many long ones before it is turned away, and one taken in puts out the largest long
/// name past that many.
fn add_host_name(set: &mut Vec<Name>, name: &[u8], make: impl FnOnce() -> Name) {
    // Most lines repeat a name the set holds (one host or two), compared in place.
    let held = |n: &Name| crate::parse::same_bytes(n.as_bytes(), name);
    if set.iter().take(2).any(held) {
        return;
    }
    let Err(at) = set.binary_search_by(|n| n.as_bytes().cmp(name)) else {
        return;
    };
    let long_before = || set[..at].iter().filter(|n| is_long(n.as_bytes())).count();
    if at >= MAX_SMALL_SET || (is_long(name) && long_before() >= LONG_NAMES) {
        return;
    }
    set.insert(at, make());
    if is_long(name)
        && set.iter().filter(|n| is_long(n.as_bytes())).count() > LONG_NAMES
        && let Some(last) = set.iter().rposition(|n| is_long(n.as_bytes()))
    {
        set.remove(last);
    }
    set.truncate(MAX_SMALL_SET);
}

/// A source's hosts as a record keeps them (see [`add_host_name`]): a stored record that an
/// older version kept with more long names, or one edited by hand, is bounded when read.
pub fn bounded_hosts<'a>(hosts: impl IntoIterator<Item = &'a Name>) -> SmallSet<Name> {
    let mut names: Vec<Name> = Vec::with_capacity(MAX_SMALL_SET);
    for name in hosts {
        add_host_name(&mut names, name.as_bytes(), || name.clone());
    }
    SmallSet::from_sorted(names)
}

/// [`Observation::merge`]'s hosts: those of both, as [`add_host_name`] adds them (a record a
/// state kept before long names were bounded is bounded when it is next merged).
fn merge_hosts(set: &mut SmallSet<Name>, other: &SmallSet<Name>) {
    let long = |s: &SmallSet<Name>| s.iter().any(|n| is_long(n.as_bytes()));
    if !long(set) && !long(other) {
        set.merge_capped(other, MAX_SMALL_SET);
        return;
    }
    *set = bounded_hosts(set.iter().chain(other));
}

/// [`add_bounded`] for a name given as its bytes, made into a [`Name`] only when taken.
fn add_bounded_name(set: &mut Vec<Name>, name: &[u8], make: impl FnOnce() -> Name, cap: usize) {
    // Most lines repeat a name the set holds (one host or two), compared in place.
    let held = |n: &Name| crate::parse::same_bytes(n.as_bytes(), name);
    if set.iter().take(2).any(held) {
        return;
    }
    if let Err(at) = set.binary_search_by(|n| n.as_bytes().cmp(name))
        && at < cap
    {
        set.truncate(cap - 1);
        set.insert(at, make());
    }
}

/// The `cap` smallest of distinct `values`, ascending.
fn smallest_sorted<T: Ord>(values: impl IntoIterator<Item = T>, cap: usize) -> Vec<T> {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort_unstable();
    values.truncate(cap);
    values
}

/// The `cap` smallest of distinct `values` as a set: most sources have one value of a kind,
/// which goes in place without a vector made for it.
fn smallest_set<T: Ord>(values: impl IntoIterator<Item = T>, cap: usize) -> SmallSet<T> {
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (None, _) => SmallSet::new(),
        (Some(one), None) if cap > 0 => SmallSet(Repr::One(one)),
        (Some(one), two) => {
            let all = [one].into_iter().chain(two).chain(values);
            SmallSet::from_sorted(smallest_sorted(all, cap))
        }
    }
}

/// Whether `values`, a handful, hold `value`: all compared, without a branch per value
/// (`<[u16]>::contains` is a call that costs more than the compares).
fn holds(values: &[u16], value: u16) -> bool {
    values.iter().fold(false, |held, &v| held | (v == value))
}

impl Ports {
    fn new() -> Self {
        Ports::InPlace {
            ports: [0; PORTS_IN_PLACE],
            dst: 0,
            src: 0,
        }
    }

    fn add_dst(&mut self, port: u16) {
        if let Ports::InPlace { ports, dst, src } = self {
            let (d, s) = (usize::from(*dst), usize::from(*src));
            if holds(&ports[..d], port) {
                return;
            }
            if d + s < PORTS_IN_PLACE {
                ports[d] = port;
                *dst += 1;
                return;
            }
            self.set_aside();
        }
        if let Ports::Aside {
            dst, dst_in_sight, ..
        } = self
        {
            let held = dst.len();
            if held <= DST_IN_SIGHT && holds(&dst_in_sight[..held], port) {
                return;
            }
            add_bounded(dst, port, MAX_PORTS);
            if let Some(copy) = dst_in_sight.get_mut(..dst.len()) {
                copy.copy_from_slice(dst);
            }
        }
    }

    fn add_src(&mut self, port: u16) {
        if let Ports::InPlace { ports, dst, src } = self {
            let (d, s) = (usize::from(*dst), usize::from(*src));
            if holds(&ports[PORTS_IN_PLACE - s..], port) {
                return;
            }
            if d + s < PORTS_IN_PLACE {
                ports[PORTS_IN_PLACE - 1 - s] = port;
                *src += 1;
                return;
            }
            self.set_aside();
        }
        if let Ports::Aside { src, src_len, .. } = self {
            // `add_bounded` in place: the smallest ports kept, a larger one turned away once
            // they fill the room.
            let held = usize::from(*src_len);
            if held == MAX_SMALL_SET && port >= src[held - 1] {
                return;
            }
            if let Err(at) = src[..held].binary_search(&port) {
                let kept = held.min(MAX_SMALL_SET - 1);
                src.copy_within(at..kept, at + 1);
                src[at] = port;
                *src_len = (kept + 1) as u8;
            }
        }
    }

    /// The destination and source ports, in place or not.
    fn both(&self) -> (&[u16], &[u16]) {
        match self {
            Ports::InPlace { ports, dst, src } => (
                &ports[..usize::from(*dst)],
                &ports[PORTS_IN_PLACE - usize::from(*src)..],
            ),
            Ports::Aside {
                dst, src, src_len, ..
            } => (dst, &src[..usize::from(*src_len)]),
        }
    }

    /// Moves ports held in place to their bounded, sorted places: destination ports to a
    /// vector, source ports to the record's own room.
    fn set_aside(&mut self) {
        let (dst, src) = self.both();
        let (dst, src) = (
            smallest_sorted(dst.iter().copied(), MAX_PORTS),
            smallest_sorted(src.iter().copied(), MAX_SMALL_SET),
        );
        let mut dst_in_sight = [0; DST_IN_SIGHT];
        if let Some(copy) = dst_in_sight.get_mut(..dst.len()) {
            copy.copy_from_slice(&dst);
        }
        let mut src_held = [0; MAX_SMALL_SET];
        src_held[..src.len()].copy_from_slice(&src);
        *self = Ports::Aside {
            dst,
            dst_in_sight,
            src: src_held,
            src_len: src.len() as u8,
        };
    }

    /// Whether the sets made of these ports would take an allocation: ports in place, of
    /// one kind at least two.
    fn sets_allocate(&self) -> bool {
        match self {
            Ports::InPlace { dst, src, .. } => *dst >= 2 || *src >= 2,
            Ports::Aside { .. } => false,
        }
    }

    /// The bounded sets of destination and source ports.
    fn into_sets(self) -> (SmallSet<u16>, SmallSet<u16>) {
        match self {
            Ports::InPlace { .. } => {
                let (dst, src) = self.both();
                (
                    smallest_set(dst.iter().copied(), MAX_PORTS),
                    smallest_set(src.iter().copied(), MAX_SMALL_SET),
                )
            }
            Ports::Aside {
                dst, src, src_len, ..
            } => (
                SmallSet::from_sorted(dst),
                smallest_set(src[..usize::from(src_len)].iter().copied(), MAX_SMALL_SET),
            ),
        }
    }
}

impl Aside {
    fn add_protocol(&mut self, protocol: Protocol<'_>) {
        match protocol {
            Protocol::Code(code) if !holds(&self.protocols, code) => self.protocols.push(code),
            Protocol::Code(_) => {}
            Protocol::Other(name) => {
                let other = &mut self.other_protocols;
                add_bounded_name(other, name.as_bytes(), || Name::from(name), MAX_SMALL_SET);
            }
        }
    }

    fn add_dst(&mut self, ip: IpAddr) {
        // Most sources send to one address.
        if self.dsts.first() != Some(&ip) {
            add_bounded(&mut self.dsts, ip, MAX_SMALL_SET);
        }
    }

    fn add_host(&mut self, name: &[u8]) {
        add_host_name(&mut self.hosts, name, || host_name(name));
    }

    /// The protocols, bounded and ascending.
    fn protocol_names(&self) -> Vec<Name> {
        let coded = self.protocols.iter().map(|&c| protocol_name(c));
        smallest_sorted(
            coded.chain(self.other_protocols.iter().cloned()),
            MAX_SMALL_SET,
        )
    }
}

impl Seen {
    /// The record of `p`'s source, before `p` is counted in it (see [`Seen::record`]).
    fn new(p: &Packet<'_>, attribution: Attribution, t: &mut Tables) -> Self {
        let Attribution {
            in_provider,
            candidates,
            few_lines,
        } = attribution;
        Seen {
            ip: p.src,
            first_seen: p.time,
            last_seen: p.time,
            hits: 0,
            candidates,
            in_provider,
            few_lines,
            first_lines: 0,
            protocols: [0; PROTOCOLS_IN_PLACE],
            protocol_count: 0,
            dst: t.dsts.number(&p.dst, || p.dst),
            host: t.hosts.number(p.host, || host_name(p.host)),
            aside: ASIDE,
            ports: Ports::new(),
        }
    }

    /// Whether another of its lines is kept as its own.
    fn wants_a_line(&self) -> bool {
        usize::from(self.first_lines) < self.lines_kept()
    }

    /// Counts `p` in; whether its line is one the source's evidence shows whatever lines
    /// were kept before it (see [`Ingest::choose_own_lines`]): the earliest yet.
    fn record(&mut self, p: &Packet<'_>, t: &mut Tables) -> bool {
        self.hits += u64::from(p.copies);
        let earliest = p.time < self.first_seen;
        self.first_seen = self.first_seen.min(p.time);
        self.last_seen = self.last_seen.max(p.time);
        self.add_protocol(Protocol::of(p.proto), t);
        if let Some(port) = p.dpt {
            self.ports.add_dst(port);
        }
        if let Some(port) = p.spt {
            self.ports.add_src(port);
        }
        self.add_dst(p.dst, t);
        self.add_host(p.host, t);
        earliest
    }

    /// How many of its first lines read are its own.
    fn lines_kept(&self) -> usize {
        if self.few_lines { 1 } else { LINES_PER_IP }
    }

    /// Its place in the side table, made when it has none.
    fn aside<'t>(&mut self, t: &'t mut Tables) -> &'t mut Aside {
        if self.aside == ASIDE {
            t.aside.push(Aside::default());
            self.aside = slot(t.aside.len() - 1);
        }
        &mut t.aside[self.aside as usize]
    }

    fn protocols(&self) -> &[u16] {
        match self.protocol_count {
            ASIDE_COUNT => &[],
            n => &self.protocols[..usize::from(n)],
        }
    }

    // Each `add_` has the common case first, and the rest in a call of its own: most lines
    // repeat what a record holds in place.

    #[inline]
    fn add_protocol(&mut self, protocol: Protocol<'_>, t: &mut Tables) {
        if let Protocol::Code(code) = protocol
            && holds(self.protocols(), code)
        {
            return;
        }
        self.add_new_protocol(protocol, t);
    }

    #[inline(never)]
    fn add_new_protocol(&mut self, protocol: Protocol<'_>, t: &mut Tables) {
        if self.protocol_count != ASIDE_COUNT {
            let n = usize::from(self.protocol_count);
            if let Protocol::Code(code) = protocol
                && n < PROTOCOLS_IN_PLACE
            {
                self.protocols[n] = code;
                self.protocol_count += 1;
                return;
            }
            let held = self.protocols[..n].to_vec();
            self.aside(t).protocols = held;
            self.protocol_count = ASIDE_COUNT;
        }
        self.aside(t).add_protocol(protocol);
    }

    #[inline]
    fn add_dst(&mut self, ip: IpAddr, t: &mut Tables) {
        if self.dst == ASIDE || *t.dsts.get(self.dst) != ip {
            self.add_other_dst(ip, t);
        }
    }

    #[inline(never)]
    fn add_other_dst(&mut self, ip: IpAddr, t: &mut Tables) {
        if self.dst != ASIDE {
            let held = *t.dsts.get(self.dst);
            self.aside(t).dsts = vec![held];
            self.dst = ASIDE;
        }
        self.aside(t).add_dst(ip);
    }

    #[inline]
    fn add_host(&mut self, name: &[u8], t: &mut Tables) {
        let same = |n: u32| crate::parse::same_bytes(t.hosts.get(n).as_bytes(), name);
        if self.host == ASIDE || !same(self.host) {
            self.add_other_host(name, t);
        }
    }

    #[inline(never)]
    fn add_other_host(&mut self, name: &[u8], t: &mut Tables) {
        if self.host != ASIDE {
            let held = t.hosts.get(self.host).clone();
            self.aside(t).hosts = vec![held];
            self.host = ASIDE;
        }
        self.aside(t).add_host(name);
    }

    /// Adds what another reader saw of the same address: `other`, whose numbers and side
    /// table are those of `theirs`, that reader's tables.
    fn merge(&mut self, other: &Seen, theirs: &Tables, t: &mut Tables) {
        self.hits = self.hits.saturating_add(other.hits);
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        let aside = theirs.aside.get(other.aside as usize);
        for &code in other.protocols() {
            self.add_protocol(Protocol::Code(code), t);
        }
        (aside.iter()).for_each(|a| {
            a.protocols.iter().for_each(|&c| {
                self.add_protocol(Protocol::Code(c), t);
            })
        });
        (aside.iter()).for_each(|a| {
            a.other_protocols.iter().for_each(|n| {
                self.add_protocol(Protocol::Other(n), t);
            })
        });
        let (dst_ports, src_ports) = other.ports.both();
        dst_ports.iter().for_each(|&p| self.ports.add_dst(p));
        src_ports.iter().for_each(|&p| self.ports.add_src(p));
        match other.dst {
            ASIDE => (aside.iter()).for_each(|a| a.dsts.iter().for_each(|&d| self.add_dst(d, t))),
            n => self.add_dst(*theirs.dsts.get(n), t),
        }
        match other.host {
            ASIDE => (aside.iter()).for_each(|a| {
                a.hosts.iter().for_each(|h| self.add_host(h.as_bytes(), t));
            }),
            n => self.add_host(theirs.hosts.get(n).as_bytes(), t),
        }
    }

    /// Makes the record one of another reader, whose tables are `mine`: its numbers
    /// renumbered, its side table entry moved from `theirs`.
    fn move_to(&mut self, renumber: &Renumber, theirs: &mut Tables, mine: &mut Tables) {
        self.dst = renumber.dst(self.dst);
        self.host = renumber.host(self.host);
        if let Some(aside) = theirs.aside.get_mut(self.aside as usize) {
            mine.aside.push(std::mem::take(aside));
            self.aside = slot(mine.aside.len() - 1);
        }
    }

    /// The observation the record stands for; the values it set aside leave `t`.
    fn into_observation(self, t: &mut Tables) -> Observation {
        let Tables { dsts, hosts, aside } = t;
        // Taken from its entry: most records have none.
        let mut aside = aside.get_mut(self.aside as usize);
        let mut o = Observation::new(self.ip, self.first_seen);
        o.last_seen = self.last_seen;
        o.hits = self.hits;
        o.protocols = match self.protocol_count {
            ASIDE_COUNT => {
                let names = aside.as_deref().map(Aside::protocol_names);
                SmallSet::from_sorted(names.unwrap_or_default())
            }
            _ => smallest_set(
                self.protocols().iter().map(|&c| protocol_name(c)),
                MAX_SMALL_SET,
            ),
        };
        (o.dst_ports, o.src_ports) = self.ports.into_sets();
        o.dsts = match self.dst {
            ASIDE => {
                let held = aside.as_deref_mut().map(|a| std::mem::take(&mut a.dsts));
                SmallSet::from_sorted(held.unwrap_or_default())
            }
            n => smallest_set([*dsts.get(n)], MAX_SMALL_SET),
        };
        o.hosts = match self.host {
            ASIDE => {
                let held = aside.map(|a| std::mem::take(&mut a.hosts));
                SmallSet::from_sorted(held.unwrap_or_default())
            }
            n => smallest_set([hosts.get(n).clone()], MAX_SMALL_SET),
        };
        o
    }
}

/// Everything one run learned from the logs, before it is stored.
/// Observations by address, in shards chosen by the address's hash: in each, the records one
/// after another in one vector, and an index to them (a few bytes a record), rather than a
/// hash table of whole records, most of its slots empty. The read's own shards become these
/// without a copy, each on a core of its own. A record's place ([`Observations::at`]) is its
/// position in its shard times the number of shards, plus its shard: places stay as they are
/// while any shard grows.
#[derive(Debug, Clone)]
pub struct Observations {
    hash: AddressHash,
    shelves: Vec<Shelf>,
}

/// One shard of [`Observations`].
#[derive(Debug, Default, Clone)]
struct Shelf {
    index: SlotIndex,
    records: Vec<Observation>,
}

impl Default for Observations {
    fn default() -> Self {
        let hash = AddressHash::default();
        Self {
            hash,
            shelves: vec![Shelf {
                index: SlotIndex::new(hash),
                records: Vec::new(),
            }],
        }
    }
}

/// The seeded hash of addresses that every shard of a read, the reads forked from it and the
/// observations made of them share: it picks an address's shard and its slot in the shard's
/// index alike, so that an address read is hashed once. Keyed by attacker-chosen addresses:
/// seeded, not predictable.
#[derive(Debug, Clone, Copy)]
struct AddressHash {
    state: foldhash::fast::RandomState,
    /// Tells hashes apart: only records hashed alike can be merged shard by shard.
    id: u64,
}

impl Default for AddressHash {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            state: foldhash::fast::RandomState::default(),
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl AddressHash {
    fn of(&self, ip: &IpAddr) -> u64 {
        self.state.hash_one(ip)
    }
}

/// The shard of `shards` that a hash picks, from bits 32 to 55: bits an index leaves alone
/// (it places by the low bits and tags with the top seven), so that the addresses of one
/// shard still spread over all of its index.
fn shard_of(hash: u64, shards: usize) -> usize {
    let bits = (hash >> 32) & 0x00ff_ffff;
    ((bits * shards as u64) >> 24) as usize
}

/// A place made of a record's position in its shard and the shard.
fn place_of(local: u32, shard: usize, shards: usize) -> u32 {
    slot(
        (local as usize)
            .saturating_mul(shards)
            .saturating_add(shard),
    )
}

/// [`place_of`] undone: the record's position in its shard, and the shard.
fn parts_of(place: u32, shards: usize) -> (usize, usize) {
    (place as usize / shards, place as usize % shards)
}

/// Each record of `shards` (their records in turn) with its place.
fn places_in<'a, T: 'a>(
    shards: impl ExactSizeIterator<Item = &'a [T]>,
) -> impl Iterator<Item = (u32, &'a T)> {
    let n = shards.len();
    (shards.enumerate()).flat_map(move |(k, records)| {
        (records.iter().enumerate()).map(move |(i, r)| (place_of(slot(i), k, n), r))
    })
}

/// Slots of records, found by their address: the table holds each slot (4 bytes) and compares
/// addresses through the records, rather than holding every address a second time (24 bytes
/// with its slot): a flood's million sources cost each reading thread 10 MB of index, not 50.
/// Asked with the address's hash, made once by the caller.
#[derive(Debug, Clone)]
struct SlotIndex {
    table: hashbrown::HashTable<u32>,
    hash: AddressHash,
}

impl Default for SlotIndex {
    fn default() -> Self {
        Self::new(AddressHash::default())
    }
}

impl SlotIndex {
    fn new(hash: AddressHash) -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hash,
        }
    }

    /// The slot of `ip`, whose hash is `hash`, where `ip_at` gives the address of a slot's
    /// record.
    fn find(&self, hash: u64, ip: &IpAddr, ip_at: impl Fn(u32) -> IpAddr) -> Option<u32> {
        self.table.find(hash, |&s| ip_at(s) == *ip).copied()
    }

    /// The slot of `ip` (whose hash is `hash`), and `false`; or, when it has none, `next`
    /// entered as its slot (the caller puts its record there), and `true`.
    fn find_or_enter(
        &mut self,
        hash: u64,
        ip: IpAddr,
        next: u32,
        ip_at: impl Fn(u32) -> IpAddr,
    ) -> (u32, bool) {
        let Self {
            table,
            hash: hasher,
        } = self;
        let rehash = |&s: &u32| hasher.of(&ip_at(s));
        match table.entry(hash, |&s| ip_at(s) == ip, rehash) {
            hashbrown::hash_table::Entry::Occupied(e) => (*e.get(), false),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(next);
                (next, true)
            }
        }
    }

    /// Calls `f` with every slot whose record the index would compare an address of hash
    /// `hash` with (most often one), finding none: so that those records are asked of the
    /// memory before they are needed.
    fn each_compared(&self, hash: u64, mut f: impl FnMut(u32)) {
        self.table.find(hash, |&s| {
            f(s);
            false
        });
    }
}

impl Shelf {
    fn get(&self, hash: u64, ip: &IpAddr) -> Option<&Observation> {
        let records = &self.records;
        let slot = self.index.find(hash, ip, |s| records[s as usize].ip)?;
        records.get(slot as usize)
    }
}

impl Observations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.shelves.iter().map(|s| s.records.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shelves.iter().all(|s| s.records.is_empty())
    }

    /// The shard of an address of hash `hash`.
    fn shelf(&self, hash: u64) -> usize {
        shard_of(hash, self.shelves.len())
    }

    pub fn get(&self, ip: &IpAddr) -> Option<&Observation> {
        let hash = self.hash.of(ip);
        self.shelves[self.shelf(hash)].get(hash, ip)
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.get(ip).is_some()
    }

    /// Adds `o` unless its address is in already; whether it was added.
    pub fn add(&mut self, o: Observation) -> bool {
        let hash = self.hash.of(&o.ip);
        let k = self.shelf(hash);
        let shelf = &mut self.shelves[k];
        let next = slot(shelf.records.len());
        let records = &shelf.records;
        let (_, new) = (shelf.index).find_or_enter(hash, o.ip, next, |s| records[s as usize].ip);
        if new {
            shelf.records.push(o);
        }
        new
    }

    /// The record at `place`, which adding records and changing them in place keep: the
    /// place the read gave its record, or that [`Observations::places`] gives.
    pub fn at(&self, place: u32) -> Option<&Observation> {
        let (local, k) = parts_of(place, self.shelves.len());
        self.shelves.get(k)?.records.get(local)
    }

    /// Each record with its place (see [`Observations::at`]), in no particular order.
    pub fn places(&self) -> impl Iterator<Item = (u32, &Observation)> {
        places_in(self.shelves.iter().map(|s| &s.records[..]))
    }

    /// In no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Observation> {
        self.shelves.iter().flat_map(|s| s.records.iter())
    }

    /// In no particular order; a record's address is its key and must stay as it is.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Observation> {
        self.shelves.iter_mut().flat_map(|s| s.records.iter_mut())
    }

    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.iter().map(|o| o.ip)
    }
}

/// The same records, whatever order they were added in.
impl PartialEq for Observations {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|o| other.get(&o.ip) == Some(o))
    }
}

impl Eq for Observations {}

impl std::ops::Index<&IpAddr> for Observations {
    type Output = Observation;
    fn index(&self, ip: &IpAddr) -> &Observation {
        self.get(ip).expect("no observation of that address")
    }
}

impl FromIterator<Observation> for Observations {
    fn from_iter<I: IntoIterator<Item = Observation>>(iter: I) -> Self {
        let mut out = Observations::new();
        for o in iter {
            out.add(o);
        }
        out
    }
}

impl IntoIterator for Observations {
    type Item = (IpAddr, Observation);
    type IntoIter = std::iter::Map<
        std::iter::Flatten<std::vec::IntoIter<Vec<Observation>>>,
        fn(Observation) -> (IpAddr, Observation),
    >;
    fn into_iter(self) -> Self::IntoIter {
        let shelves: Vec<Vec<Observation>> = self.shelves.into_iter().map(|s| s.records).collect();
        let pair: fn(Observation) -> (IpAddr, Observation) = |o| (o.ip, o);
        shelves.into_iter().flatten().map(pair)
    }
}

/// `IpAddr`'s order (every IPv4 address before every IPv6 one, each by its bits) as a key of
/// plain integers: a flood's hundreds of thousands of addresses sort several times faster by
/// it than by comparing `IpAddr`s.
pub fn address_order(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(a.to_bits())),
        IpAddr::V6(a) => (true, a.to_bits()),
    }
}

/// Sorts `ips` as `IpAddr`'s order does (see [`address_order`]): the IPv4 addresses as 32-bit
/// numbers, then the IPv6 ones as 128-bit numbers.
pub fn sort_addresses(ips: &mut [IpAddr]) {
    sort_as_numbers(
        ips,
        |ip| match ip {
            IpAddr::V4(a) => Ok(a.to_bits()),
            IpAddr::V6(a) => Err(a.to_bits()),
        },
        |bits| IpAddr::from(std::net::Ipv4Addr::from_bits(bits)),
        |bits| IpAddr::from(std::net::Ipv6Addr::from_bits(bits)),
    );
}

/// Sorts addresses each with a place as `(IpAddr, u32)`'s order does: the IPv4 ones as one
/// 64-bit number each (address, then place), then the IPv6 ones as pairs of numbers. A flood's
/// unattributed sources sort several times faster so than through [`address_order`].
pub fn sort_places(entries: &mut [(IpAddr, u32)]) {
    sort_as_numbers(
        entries,
        |&(ip, place)| match ip {
            IpAddr::V4(a) => Ok(u64::from(a.to_bits()) << 32 | u64::from(place)),
            IpAddr::V6(a) => Err((a.to_bits(), place)),
        },
        |key| {
            let ip = std::net::Ipv4Addr::from_bits((key >> 32) as u32);
            (IpAddr::from(ip), key as u32)
        },
        |(bits, place)| (IpAddr::from(std::net::Ipv6Addr::from_bits(bits)), place),
    );
}

/// Sorts `items` by plain keys, every IPv4 one (`Ok`) before every IPv6 one (`Err`), each
/// key made back into its item: integers sort several times faster than `IpAddr`s compare.
fn sort_as_numbers<T, V4: Ord, V6: Ord>(
    items: &mut [T],
    key: impl Fn(&T) -> Result<V4, V6>,
    v4_item: impl Fn(V4) -> T,
    v6_item: impl Fn(V6) -> T,
) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for item in items.iter() {
        match key(item) {
            Ok(k) => v4.push(k),
            Err(k) => v6.push(k),
        }
    }
    v4.sort_unstable();
    v6.sort_unstable();
    let sorted = (v4.into_iter().map(v4_item)).chain(v6.into_iter().map(v6_item));
    for (slot, item) in items.iter_mut().zip(sorted) {
        *slot = item;
    }
}

/// The slot of the next record: four billion records would not fit in memory long before
/// an index of 32 bits ran out.
fn slot(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[derive(Debug, Default)]
pub struct Batch {
    pub observations: Observations,
    pub summary: Summary,
    /// The addresses read that no configured provider holds, as attributed when first read,
    /// ascending, each with the place of its record in `observations` (see
    /// [`Observations::at`]): the `unattributed` list of what was read, without asking the
    /// ranges again, nor the table for the records.
    pub unattributed: Vec<(IpAddr, u32)>,
    /// Evidence per provider (same order as the configured providers): the lines of each
    /// source's densest window, pooled, so that one attack seen by several hosts shows them all,
    /// and each candidate address's own lines (see [`Ingest::choose_own_lines`]); their text
    /// is in the read's [`Spool`].
    pub evidence: Vec<Vec<KeptLine>>,
}

/// The records of the sources a read saw, in shards chosen by the address's hash (as many as
/// the run has cores): the reads' records are merged, and become observations, shard by
/// shard on every core, rather than on one while the others wait. A flood's records are taken
/// in by the hundred thousand. A record's place is as in [`Observations::at`].
struct Sources {
    hash: AddressHash,
    shards: Vec<Shard>,
}

/// One shard of [`Sources`]: an index from address to a slot, and the records one after
/// another in one vector. A hash table of whole records would hold a power of two of them,
/// most empty, and copy them all each time it grows; the index's slots are small, and a large
/// vector grows in place, its capacity not yet written taking no memory.
struct Shard {
    index: SlotIndex,
    records: Vec<Seen>,
    tables: Tables,
}

impl Sources {
    /// No records yet, in `shards` shards (at least one) keyed by `hash`.
    fn new(hash: AddressHash, shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Shard {
                index: SlotIndex::new(hash),
                records: Vec::new(),
                tables: Tables::default(),
            })
            .collect();
        Sources { hash, shards }
    }

    /// No records yet, hashed and sharded as these are: a read whose records these will
    /// take in.
    fn fork(&self) -> Self {
        Self::new(self.hash, self.shards.len())
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.records.len()).sum()
    }

    /// The hash of an address, which [`Sources::record`] and [`Sources::prefetch`] are asked
    /// with.
    fn hash_of(&self, ip: &IpAddr) -> u64 {
        self.hash.of(ip)
    }

    /// Asks the memory for the record of an address of hash `hash`, if it has one, without
    /// waiting for it.
    fn prefetch(&self, hash: u64) {
        self.shards[shard_of(hash, self.shards.len())].prefetch(hash);
    }

    /// Counts `p` (its source's hash `hash`) in the record of its source, made with what
    /// `attribute` says of the source when there is none yet; the record and its place, and
    /// whether the line is one its evidence shows (see [`Seen::record`]).
    fn record(
        &mut self,
        hash: u64,
        p: &Packet<'_>,
        attribute: impl FnOnce() -> Attribution,
    ) -> (u32, &mut Seen, bool) {
        let n = self.shards.len();
        let k = shard_of(hash, n);
        let (local, seen, shown) = self.shards[k].record(hash, p, attribute);
        (place_of(local, k, n), seen, shown)
    }

    /// The record at `place`.
    fn at(&self, place: u32) -> &Seen {
        let (local, k) = parts_of(place, self.shards.len());
        &self.shards[k].records[local]
    }

    /// Each record with its place, shard by shard.
    fn places(&self) -> impl Iterator<Item = (u32, &Seen)> {
        places_in(self.shards.iter().map(|s| &s.records[..]))
    }

    /// Takes in the records of a read forked from this one (see [`Shard::absorb`]), each
    /// shard on a core of its own. Returns where each of the other's places went.
    fn absorb(&mut self, other: Sources) -> impl Fn(u32) -> u32 + use<> {
        debug_assert_eq!(self.hash.id, other.hash.id, "records hashed alike");
        debug_assert_eq!(self.shards.len(), other.shards.len());
        let n = self.shards.len();
        let pairs: Vec<(&mut Shard, Shard)> = self.shards.iter_mut().zip(other.shards).collect();
        let moved: Vec<Vec<u32>> =
            crate::parallel::map_in_order(pairs, |(mine, theirs)| mine.absorb(theirs));
        move |place: u32| {
            let (local, k) = parts_of(place, n);
            place_of(moved[k][local], k, n)
        }
    }

    /// The observations by address: each shard on a core of its own, its index kept, and
    /// each record become an observation in its place, in the records' own memory.
    fn into_observations(self) -> Observations {
        let Sources { hash, shards } = self;
        let shelves = crate::parallel::map_in_order(shards, Shard::into_shelf);
        Observations { hash, shelves }
    }
}

impl Shard {
    /// Takes in the records of the same shard of another read: records of the same address
    /// merge, the others are added. The other's records are let go of while they are taken
    /// in, so that the two reads' records are not all held at once (with a million sources,
    /// a hundred MiB). Returns where each of the other's slots went.
    fn absorb(&mut self, other: Shard) -> Vec<u32> {
        let Shard {
            index,
            mut records,
            tables: mut theirs,
        } = other;
        drop(index);
        let renumber = Renumber::new(&theirs, &mut self.tables);
        let mut moved = Vec::with_capacity(records.len());
        // Taken from the end, in the order they were read.
        records.reverse();
        let mut since_shrink = 0;
        // Records of this read that the next few will be merged into: each a cache miss.
        let mut ahead = 0;
        while let Some(mut seen) = records.pop() {
            if ahead == 0 {
                let coming = &records[records.len().saturating_sub(AHEAD)..];
                for s in coming {
                    self.prefetch(self.index.hash.of(&s.ip));
                }
                ahead = AHEAD;
            }
            ahead -= 1;
            let next = self.slot();
            let mine = &self.records;
            let hash = self.index.hash.of(&seen.ip);
            match (self.index).find_or_enter(hash, seen.ip, next, |s| mine[s as usize].ip) {
                (slot, false) => {
                    let mine = &mut self.records[slot as usize];
                    // The other read's first lines follow this one's (see `Ingest::absorb`).
                    let first = usize::from(mine.first_lines) + usize::from(seen.first_lines);
                    mine.first_lines = first.min(mine.lines_kept()) as u8;
                    mine.merge(&seen, &theirs, &mut self.tables);
                    moved.push(slot);
                }
                (_, true) => {
                    seen.move_to(&renumber, &mut theirs, &mut self.tables);
                    self.records.push(seen);
                    moved.push(next);
                }
            }
            since_shrink += 1;
            if since_shrink == 1 << 14 {
                since_shrink = 0;
                records.shrink_to_fit();
            }
        }
        moved
    }

    /// Asks the memory for the record of an address of hash `hash`, if this shard has one.
    fn prefetch(&self, hash: u64) {
        let records = &self.records;
        self.index.each_compared(hash, |s| {
            if let Some(record) = records.get(s as usize) {
                prefetch(record);
            }
        });
    }

    /// [`Sources::record`] in this shard: the record's slot here.
    fn record(
        &mut self,
        hash: u64,
        p: &Packet<'_>,
        attribute: impl FnOnce() -> Attribution,
    ) -> (u32, &mut Seen, bool) {
        let next = self.slot();
        let records = &self.records;
        let (slot, added) =
            (self.index).find_or_enter(hash, p.src, next, |s| records[s as usize].ip);
        if added {
            let new = Seen::new(p, attribute(), &mut self.tables);
            self.records.push(new);
        }
        let seen = &mut self.records[slot as usize];
        let shown = seen.record(p, &mut self.tables);
        (slot, seen, shown)
    }

    fn slot(&self) -> u32 {
        slot(self.records.len())
    }

    /// The shard's observations: the index is kept, and each record becomes an observation
    /// in its place, in the records' own memory.
    fn into_shelf(self) -> Shelf {
        let Shard {
            index,
            mut records,
            mut tables,
        } = self;
        // Port sets are what allocates: the ports of each record whose sets would are set
        // aside, as sorted and bounded. The records then become observations where they lie,
        // taking the destination ports' vectors as they are and copying out the source ports
        // held in the record.
        for seen in records.iter_mut().filter(|s| s.ports.sets_allocate()) {
            seen.ports.set_aside();
        }
        let observations = (records.into_iter())
            .map(|seen| seen.into_observation(&mut tables))
            .collect();
        Shelf {
            index,
            records: observations,
        }
    }
}

/// The scan of one run over any number of sources.
pub struct Ingest<'a> {
    parser: LineParser,
    finders: Vec<memchr::memmem::Finder<'static>>,
    attribute: &'a (dyn Fn(IpAddr) -> Attribution + Sync),
    seen: Sources,
    /// The lines of each candidate IP that may be its own evidence wherever the densest
    /// window is (see [`Ingest::choose_own_lines`]), in the order read. Beside the records
    /// rather than in them, as most IPs have none; each with its record's slot, so that a
    /// flood's million lines find their records without a million lookups by address. Their
    /// text is in the spool (a flood's lines would not fit in memory), or in `held`.
    first_lines: Vec<FirstLine>,
    /// Whether `first_lines` holds lines beyond those [`Ingest::choose_own_lines`] keeps;
    /// and from how many lines it is asked to choose while the read goes on, so that a log
    /// read in no order of time keeps a bounded number.
    lines_to_choose: bool,
    choose_from: usize,
    /// The text of the lines in `first_lines` that may yet be let go of (those kept beyond
    /// the first read): a log read in no order of time would fill the spool with them.
    held: Vec<u8>,
    /// [`HELD_AT_MOST`], or less in tests.
    held_at_most: usize,
    spool: &'a Spool,
    /// The block of text this reader is writing into the spool.
    pen: Pen,
    summary: Summary,
    sample_seconds: u32,
    max_lines: usize,
    /// Trackers of the source being read; each source's times are ordered only within it.
    trackers: Vec<WindowTracker>,
    evidence: Vec<Vec<EvidenceLine>>,
    /// The lines of a buffer that carry a prefix (kept to reuse the allocation).
    starts: Vec<Found>,
    /// Packets logged before this time (Unix seconds) are passed over (`--since`).
    since: Option<i64>,
    /// Packets logged before this time are stale: counted as such, never hits.
    stale_before: Option<i64>,
    /// Packets stamped after this time come from a clock set wrong: stale too.
    stale_after: Option<i64>,
    /// Hits stamped after this time are counted in `lines_soon` too.
    soon_after: Option<i64>,
    /// Whether answers to the operator's own traffic count as hits.
    answers_are_hits: bool,
    /// Per prefix of the source being read: packets logged up to this time were counted by
    /// an earlier read (a source read again after `reread`), and are not counted twice.
    counted_before: Vec<Option<i64>>,
    /// Per prefix: the time of `counted_before` was made in another zone than this run's.
    /// Where a read knows where the runs before `reread` stopped, every packet of such a
    /// prefix before that point is passed over by its place (see
    /// [`Ingest::counted_before_rule`]).
    counted_in_another_zone: Vec<bool>,
    /// Where in the next feed the rule of `counted_before` ends: the lines that start within
    /// its first this many bytes are held to it, the rest count whatever their time (they
    /// lie past where the runs before `reread` had read). `None`: the whole feed is.
    rule_ends: Option<u64>,
    /// Whether the next feed starts inside a line: the rest of a line longer than the read
    /// buffer, which an earlier read passed over up to the end of the file while it was still
    /// being written, and counted then.
    inside_a_line: bool,
    /// Per prefix, the last packet time an earlier run counted from the file being read: what
    /// a read of a file cut back in place passes over (see
    /// [`Ingest::pass_over_counted_earlier`]).
    counted_earlier: Vec<Option<i64>>,
    /// Per prefix of the source being read: the last packet time counted as a hit.
    counted_until: Vec<Option<i64>>,
    /// Told how many bytes each read took, for a progress display.
    progress: Option<&'a (dyn Fn(u64) + Sync)>,
    /// Read size, and the length from which a line is junk (see [`Ingest::set_buffer_size`]).
    buffer: usize,
    /// The buffer the last read read into, for the next: a log host's glob has thousands of
    /// files, most with nothing new, and a buffer made and zeroed for each took a quiet run
    /// a fifth of its time.
    spare: Vec<u8>,
}

/// `text` put at the end of `held`, a reader's own text; in the spool, through `pen`, when
/// `held` would pass 4 GiB.
fn hold(held: &mut Vec<u8>, pen: &mut Pen, spool: &Spool, text: &str) -> Placed {
    let at = u32::try_from(held.len()).ok();
    let end = u32::try_from(held.len() + text.len()).ok();
    match at.zip(end) {
        Some((at, end)) => {
            held.extend_from_slice(text.as_bytes());
            Placed::outside(at, end - at)
        }
        None => pen.keep(spool, text),
    }
}

/// One of a source's first lines, as a read holds it: its record's slot stands for its address
/// (24 bytes a line; a flood's sources each keep three).
#[derive(Debug, Clone, Copy)]
struct FirstLine {
    time: i64,
    text: Placed,
    slot: u32,
}

/// A line that carries a prefix: where it starts and ends in the buffer, where the prefix is,
/// and which prefix.
#[derive(Debug, Clone, Copy)]
struct Found {
    start: usize,
    at: usize,
    /// The prefix's length.
    len: usize,
    end: usize,
    prefix: usize,
    /// A prefix is in the line more than once (or two start at one place): the parser looks
    /// whether one comes again after the fields begin (a line run on after a cut one).
    again: bool,
}

/// Whether the line end at `end` ends a line that started at `start`: a newline always does
/// (an empty line is a line), a NUL byte only after text. A crash leaves a block of NUL bytes
/// where the file grew and its data never came, often in the middle of a line; the daemon's
/// next line follows the block. The text before the block is a line cut short, the block is
/// no line at all, and the line after it is whole.
#[inline]
fn ends_a_line(region: &[u8], start: usize, end: usize) -> bool {
    region[end] == b'\n' || end > start
}

/// The lines `region` holds (see [`ends_a_line`]).
fn lines_in(region: &[u8]) -> u64 {
    let mut start = 0;
    let mut lines = 0u64;
    for end in memchr::memchr2_iter(b'\n', 0, region) {
        lines += u64::from(ends_a_line(region, start, end));
        start = end + 1;
    }
    lines
}

/// The lines of `region` that hold `finder`'s prefix, into `found`, and the count of lines in
/// `region` (a line ends at a newline, or at a NUL byte: see [`ends_a_line`]): one pass over
/// the line ends beside the search for the prefix, rather than a pass to count them and two
/// searches for each line found, back to its start and on to its end. A line counts once,
/// however often the prefix is in it; a prefix with a line end in it is in no line.
fn lines_found(region: &[u8], finder: &memchr::memmem::Finder<'_>, found: &mut Vec<Found>) -> u64 {
    let len = finder.needle().len();
    let mut ends = memchr::memchr2_iter(b'\n', 0, region);
    // The first line end not passed yet, and where the line it ends starts.
    let (mut end, mut start) = (ends.next(), 0);
    let mut passed = 0u64;
    // Where the line after the last one found starts: a prefix before it is in that line.
    let mut after = 0;
    for at in finder.find_iter(region) {
        if at < after {
            // Once more in the line found last.
            if let Some(last) = found.last_mut()
                && at + len <= last.end
            {
                last.again = true;
            }
            continue;
        }
        while let Some(e) = end
            && e < at
        {
            passed += u64::from(ends_a_line(region, start, e));
            start = e + 1;
            end = ends.next();
        }
        let line_end = end.unwrap_or(region.len());
        if at + len > line_end {
            continue;
        }
        found.push(Found {
            start,
            at,
            len,
            end: line_end,
            prefix: 0,
            again: false,
        });
        after = line_end + 1;
    }
    while let Some(e) = end {
        passed += u64::from(ends_a_line(region, start, e));
        start = e + 1;
        end = ends.next();
    }
    passed
}

/// A line a crash's NUL bytes end, back to its last whole word: it never got its newline, so
/// its data stopped there, maybe inside a value (`DPT=2` of `DPT=22`, `SRC=3.5.14` of
/// `SRC=3.5.140.2`), and a value cut so would be read as another port or address. The kernel
/// ends every field with a space, so the text up to the last space is whole. `None` when that
/// leaves the prefix, which ends at `prefix_end`, cut too: nothing of the packet is whole.
fn cut_back(text: &[u8], prefix_end: usize) -> Option<&[u8]> {
    let whole = memchr::memrchr(b' ', text).map_or(0, |space| space + 1);
    (prefix_end <= whole).then(|| &text[..whole])
}

/// [`lines_found`] for several prefixes, each looked for on its own: a line is placed by
/// looking back from a prefix found to the line's start (never further than the end of the
/// line found before it) and on to its end, and the line ends are counted in a pass of
/// their own. Of several prefixes on one line the first counts, and of prefixes found at the
/// same place (`DROP ` inside `DROP INVALID `), the longest.
fn lines_found_by_any(
    region: &[u8],
    finders: &[memchr::memmem::Finder<'_>],
    found: &mut Vec<Found>,
) -> u64 {
    for (prefix, finder) in finders.iter().enumerate() {
        let len = finder.needle().len();
        // Where the line after the last one found starts: nothing before it is looked at.
        let mut after = 0;
        for at in finder.find_iter(region) {
            if at < after {
                if let Some(last) = found.last_mut()
                    && at + len <= last.end
                {
                    last.again = true;
                }
                continue;
            }
            let start =
                memchr::memrchr2(b'\n', 0, &region[after..at]).map_or(after, |i| after + i + 1);
            let end = memchr::memchr2(b'\n', 0, &region[at..]).map_or(region.len(), |i| at + i);
            if at + len > end {
                // A prefix with a newline in it spans two lines: it is in neither.
                continue;
            }
            found.push(Found {
                start,
                at,
                len,
                end,
                prefix,
                again: false,
            });
            after = end + 1;
        }
    }
    found.sort_unstable_by_key(|f| (f.start, f.at, std::cmp::Reverse(f.len), f.prefix));
    // One line found by two prefixes holds more than one.
    found.dedup_by(|later, kept| {
        let same = later.start == kept.start;
        kept.again |= same;
        same
    });
    lines_in(region)
}

/// How many records are asked of the memory before they are used: the records of the lines
/// parsed before they are counted in ([`Ingest::read_lines`]), or of those a merge comes to next.
const AHEAD: usize = 16;

/// Asks for the cache lines of `value` (a record spans several) without waiting for them: a
/// hint, which changes nothing a program can see.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = std::ptr::from_ref(value).cast::<i8>();
        let size = std::mem::size_of::<T>();
        let mut at = 0;
        // SAFETY: a prefetch reads nothing a program sees and cannot fault, whatever the
        // address; these lie within `value`.
        unsafe {
            while at < size {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(at));
                at += 64;
            }
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(size.saturating_sub(1)));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Read size: large enough that a syscall and a prefix search cost little per line.
const BUFFER: usize = 1 << 20;

impl<'a> Ingest<'a> {
    /// A scan for `providers` providers; `attribute` is asked once per new IP.
    pub fn new(
        parser: LineParser,
        providers: usize,
        sample_seconds: u32,
        max_lines: usize,
        attribute: &'a (dyn Fn(IpAddr) -> Attribution + Sync),
        spool: &'a Spool,
    ) -> Self {
        let finders = parser.prefix_finders().to_vec();
        Self {
            parser,
            finders,
            attribute,
            seen: Sources::new(AddressHash::default(), crate::parallel::threads()),
            first_lines: Vec::new(),
            lines_to_choose: false,
            choose_from: CHOOSE_FROM,
            held: Vec::new(),
            held_at_most: HELD_AT_MOST,
            spool,
            pen: Pen::default(),
            summary: Summary::default(),
            sample_seconds,
            max_lines,
            trackers: Vec::new(),
            evidence: vec![Vec::new(); providers],
            starts: Vec::new(),
            since: None,
            stale_before: None,
            stale_after: None,
            soon_after: None,
            answers_are_hits: true,
            counted_before: Vec::new(),
            counted_in_another_zone: Vec::new(),
            rule_ends: None,
            inside_a_line: false,
            counted_earlier: Vec::new(),
            counted_until: Vec::new(),
            progress: None,
            buffer: BUFFER,
            spare: Vec::new(),
        }
    }

    /// Reports the bytes read to `progress` as they are read.
    pub fn report_progress(&mut self, progress: &'a (dyn Fn(u64) + Sync)) {
        self.progress = Some(progress);
    }

    /// Reads in pieces of `bytes` (at least 64) instead of the default: a line of at least
    /// this many bytes is junk, counted once and not parsed. For tests that put line ends at
    /// every place a read can stop; forks made after this call inherit it.
    pub fn set_buffer_size(&mut self, bytes: usize) {
        self.buffer = bytes.max(64);
    }

    /// Passes over packets logged before `time` (Unix seconds): history the operator skips.
    pub fn skip_before(&mut self, time: i64) {
        self.since = Some(time);
    }

    /// Packets logged before `time` are too old to report: counted in `lines_stale`, not hits.
    pub fn stale_before(&mut self, time: i64) {
        self.stale_before = Some(time);
    }

    /// Packets stamped after `time` (a host whose clock runs a year ahead) cannot have been
    /// logged yet: counted in `lines_stale`, never hits, and never the last packet counted.
    pub fn stale_after(&mut self, time: i64) {
        self.stale_after = Some(time);
    }

    /// Hits stamped after `time` but not stale are counted in `lines_soon` as well: lines the
    /// clock says are not written yet.
    pub fn soon_after(&mut self, time: i64) {
        self.soon_after = Some(time);
    }

    /// Answers to the operator's own traffic (see [`crate::parse::Packet::answer`]) are
    /// counted in `lines_backscatter` and are not hits.
    pub fn pass_over_answers(&mut self) {
        self.answers_are_hits = false;
    }

    /// Starts a source with its own prefixes: the files read until [`Ingest::end_source`]
    /// form one timeline.
    pub fn begin_source(&mut self, parser: LineParser) {
        self.finders = parser.prefix_finders().to_vec();
        self.parser = parser;
        self.end_source();
        self.trackers = self.new_trackers();
        self.counted_before.clear();
        self.counted_in_another_zone.clear();
        self.rule_ends = None;
        self.inside_a_line = false;
        self.counted_earlier.clear();
        self.counted_until.clear();
    }

    /// For the source just begun, read again after `reread`: packets with prefix number `k`
    /// logged up to `until[k]` were counted by an earlier read and are passed over (counted
    /// in `lines_counted_before`), so that no packet counts twice.
    pub fn counted_before(&mut self, until: Vec<Option<i64>>) {
        self.counted_before = until;
        self.rule_ends = None;
    }

    /// Per prefix, as the rule is given: whether the time of the rule of
    /// [`Ingest::counted_before`] was made in another zone than this run's (`timezone` changed
    /// since). A year-less stamp read now is another instant than it was then, and a packet
    /// counted then may read as later than the last counted.
    pub fn counted_in_another_zone(&mut self, moved: Vec<bool>) {
        self.counted_in_another_zone = moved;
    }

    /// The rule of [`Ingest::counted_before`] for text that lies before where the runs before
    /// `reread` stopped: as it stands, or, when its times were made in another zone, every
    /// packet of a prefix that counted any (a packet stamped in the zone of then would be
    /// compared with a time made in another).
    pub fn counted_before_rule(&self) -> Vec<Option<i64>> {
        let moved = |k: usize| {
            self.counted_in_another_zone
                .get(k)
                .copied()
                .unwrap_or(false)
        };
        (self.counted_before.iter().enumerate())
            .map(|(k, t)| t.map(|t| if moved(k) { i64::MAX } else { t }))
            .collect()
    }

    /// The next feed starts inside a line an earlier read counted (see
    /// [`Ingest::overlong`]): its rest, up to its end, is passed over, not read as a line.
    pub fn begins_inside_a_line(&mut self) {
        self.inside_a_line = true;
    }

    /// For the next feed: the rule of [`Ingest::counted_before`] holds for the lines that
    /// start within its first `bytes` (the text earlier runs read), and is let go of for the
    /// rest, which no run has read and which counts whatever its lines' time. With 0, it is
    /// let go of at once.
    pub fn counted_before_ends(&mut self, bytes: u64) {
        if bytes == 0 {
            self.counted_before(Vec::new());
        } else {
            self.rule_ends = Some(bytes);
        }
    }

    /// [`Ingest::fork`] for the piece of the next feed's text that starts `at` bytes into it:
    /// where the rule of [`Ingest::counted_before`] ends is moved to the piece's own start.
    pub fn fork_at(&self, at: u64) -> Ingest<'a> {
        let mut fork = self.fork();
        fork.rule_from(at);
        fork
    }

    fn rule_from(&mut self, at: u64) {
        if let Some(end) = self.rule_ends {
            self.counted_before_ends(end.saturating_sub(at));
        }
    }

    /// For the file about to be read: per prefix, the last packet time an earlier run counted
    /// from it.
    pub fn counted_earlier(&mut self, until: Vec<Option<i64>>) {
        self.counted_earlier = until;
    }

    /// Until the returned rule is given back to [`Ingest::counted_before`], packets logged up
    /// to [`Ingest::counted_earlier`] are passed over as counted: a file cut back in place (a
    /// crash that lost its unwritten end, `truncate -s`) and written on is read from its
    /// start, where the lines an earlier run counted are still.
    pub fn pass_over_counted_earlier(&mut self) -> Vec<Option<i64>> {
        let at = |rule: &[Option<i64>], k: usize| rule.get(k).copied().flatten();
        let rule = (0..self.finders.len())
            .map(|k| at(&self.counted_before, k).max(at(&self.counted_earlier, k)))
            .collect();
        std::mem::replace(&mut self.counted_before, rule)
    }

    /// Per prefix of the source begun last, the last packet time counted as a hit.
    pub fn counted_until(&self) -> &[Option<i64>] {
        &self.counted_until
    }

    fn raise(times: &mut Vec<Option<i64>>, k: usize, t: i64) {
        if times.len() <= k {
            times.resize(k + 1, None);
        }
        times[k] = Some(times[k].map_or(t, |old| old.max(t)));
    }

    /// One window tracker per provider, for a new timeline.
    fn new_trackers(&self) -> Vec<WindowTracker> {
        (0..self.evidence.len())
            .map(|_| WindowTracker::new(self.sample_seconds, self.max_lines))
            .collect()
    }

    /// Adds the source's densest window per provider to the evidence pool, which is cut back
    /// to its own densest window when many sources have filled it.
    pub fn end_source(&mut self) {
        for (i, tracker) in std::mem::take(&mut self.trackers).into_iter().enumerate() {
            if let Some(w) = tracker.finish() {
                let pool = &mut self.evidence[i];
                pool.extend(w.lines);
                if pool.len() > 8 * self.max_lines {
                    *pool = densest(std::mem::take(pool), self.sample_seconds, self.max_lines)
                        .map(|w| w.lines)
                        .unwrap_or_default();
                }
            }
        }
    }

    /// A scan with the same settings and source, and nothing seen yet: it reads another part
    /// of a file on another thread, then [`Ingest::absorb`] takes in what it saw.
    pub fn fork(&self) -> Ingest<'a> {
        Ingest {
            parser: self.parser.clone(),
            finders: self.finders.clone(),
            attribute: self.attribute,
            seen: self.seen.fork(),
            first_lines: Vec::new(),
            lines_to_choose: false,
            choose_from: CHOOSE_FROM,
            held: Vec::new(),
            held_at_most: HELD_AT_MOST,
            spool: self.spool,
            pen: Pen::default(),
            summary: Summary::default(),
            sample_seconds: self.sample_seconds,
            max_lines: self.max_lines,
            trackers: self.new_trackers(),
            evidence: vec![Vec::new(); self.evidence.len()],
            starts: Vec::new(),
            since: self.since,
            stale_before: self.stale_before,
            stale_after: self.stale_after,
            soon_after: self.soon_after,
            answers_are_hits: self.answers_are_hits,
            counted_before: self.counted_before.clone(),
            counted_in_another_zone: self.counted_in_another_zone.clone(),
            rule_ends: self.rule_ends,
            inside_a_line: false,
            counted_earlier: Vec::new(),
            counted_until: Vec::new(),
            progress: self.progress,
            buffer: self.buffer,
            spare: Vec::new(),
        }
    }

    /// Reads on after a line stamped `time` (`None`: nothing known): what a fork starting in
    /// the middle of a file, or a read resuming one, is told of the lines before.
    pub fn follows(&mut self, time: Option<i64>) {
        self.parser.follows(time);
    }

    /// A run read the source up to where this read resumes it at `time` (see
    /// [`LineParser::not_before`]).
    pub fn not_before(&mut self, time: Option<i64>) {
        self.parser.not_before(time);
    }

    /// When the file read next was written (see [`LineParser::written_at`]).
    pub fn written_at(&mut self, modified: Option<i64>, last_line: Option<i64>) {
        self.parser.written_at(modified, last_line);
    }

    /// The time of a packet line written about `near` (see [`LineParser::time_near`]); `None`
    /// for a line the read never parses.
    pub fn time_near(&self, line: &[u8], near: i64) -> Option<i64> {
        let nul = line.iter().take_while(|b| **b == 0).count();
        if line.len() - nul >= self.buffer {
            return None;
        }
        self.parser.time_near(line, near)
    }

    /// Reads on after `text`, the whole lines before where a read resumes a file (see
    /// [`LineParser::follows_lines`]).
    pub fn follows_lines(&mut self, text: &[u8], from_start: bool) {
        self.parser.follows_lines(text, from_start);
    }

    /// The time the next line is read after (see [`Ingest::follows`]).
    pub fn followed(&self) -> Option<i64> {
        self.parser.followed()
    }

    /// Whether [`Ingest::follows_lines`] is worth reading the lines for.
    pub fn reads_on_from_lines(&self) -> bool {
        self.parser.reads_on_from_lines()
    }

    /// A line's stamp as this scan's parser reads it, knowing nothing before it, and whether
    /// the reading would depend on what came before; `None` for a line the read does not
    /// take as the one before the next (see [`LineParser::time_to_follow`]).
    pub fn stamp_time(&self, line: &[u8]) -> Option<(i64, bool)> {
        // A line that fills the buffer is junk the read never parses (see `overlong`); NUL
        // bytes before it are passed over, and are no part of it.
        let nul = line.iter().take_while(|b| **b == 0).count();
        if line.len() - nul >= self.buffer {
            return None;
        }
        self.parser.time_to_follow(line)
    }

    /// Takes in what a fork saw in a later part of the same source: its counts add up, and its
    /// densest window joins the evidence (a window across the two parts' border is not seen).
    pub fn absorb(&mut self, mut other: Ingest<'a>) {
        other.end_source();
        other.pen.hand_over(self.spool);
        let s = &mut self.summary;
        s.lines_read += other.summary.lines_read;
        s.lines_matched += other.summary.lines_matched;
        s.lines_malformed += other.summary.lines_malformed;
        s.bytes_read += other.summary.bytes_read;
        s.lines_stale += other.summary.lines_stale;
        s.lines_ahead += other.summary.lines_ahead;
        s.lines_soon += other.summary.lines_soon;
        s.latest_soon = s.latest_soon.max(other.summary.latest_soon);
        s.lines_outgoing += other.summary.lines_outgoing;
        s.lines_before_since += other.summary.lines_before_since;
        s.lines_not_kernel += other.summary.lines_not_kernel;
        s.lines_backscatter += other.summary.lines_backscatter;
        s.lines_counted_before += other.summary.lines_counted_before;
        for (k, theirs) in other.counted_until.iter().enumerate() {
            if let Some(t) = *theirs {
                Self::raise(&mut self.counted_until, k, t);
            }
        }
        let moved = self.seen.absorb(other.seen);
        // This read's lines, then the later part's: which of them each source shows is
        // chosen when the read ends, of them all.
        self.lines_to_choose |= other.lines_to_choose || !other.first_lines.is_empty();
        for line in other.first_lines {
            let text = match line.text.outside_at() {
                Some(range) => {
                    let text = String::from_utf8_lossy(other.held.get(range).unwrap_or_default());
                    hold(&mut self.held, &mut self.pen, self.spool, &text)
                }
                None => line.text,
            };
            self.first_lines.push(FirstLine {
                slot: moved(line.slot),
                text,
                ..line
            });
        }
        if self.held.len() >= self.held_at_most {
            self.choose_own_lines(false);
        }
        for (pool, lines) in self.evidence.iter_mut().zip(other.evidence) {
            pool.extend(lines);
        }
    }

    /// The counts so far (the IP totals are filled in by [`Ingest::finish`]).
    pub fn counted(&self) -> Summary {
        self.summary
    }

    /// Reads complete lines from `reader` until its end and returns how many bytes they took.
    /// A last line without its newline is left unread: it may still be being written, unless
    /// it already fills the buffer (see [`Ingest::overlong`]).
    pub fn feed(&mut self, reader: impl Read) -> io::Result<u64> {
        self.feed_until(reader, false)
    }

    /// [`Ingest::feed`] for text that will not grow (a compressed rotated file): a last line
    /// without its newline is whole, and read as a line.
    pub fn feed_all(&mut self, reader: impl Read) -> io::Result<u64> {
        self.feed_until(reader, true)
    }

    fn feed_until(&mut self, reader: impl Read, last_line_whole: bool) -> io::Result<u64> {
        let mut buf = std::mem::take(&mut self.spare);
        if buf.len() != self.buffer {
            buf = vec![0u8; self.buffer];
        }
        let inside = std::mem::take(&mut self.inside_a_line);
        let read = self.feed_through(&mut buf, reader, last_line_whole, inside);
        self.spare = buf;
        // Where the rule ends was said of this feed alone.
        self.rule_ends = None;
        read
    }

    /// [`Ingest::feed_until`] through `buf`, of the read size, starting `inside_a_line` or not.
    fn feed_through(
        &mut self,
        buf: &mut [u8],
        mut reader: impl Read,
        last_line_whole: bool,
        inside_a_line: bool,
    ) -> io::Result<u64> {
        let mut filled = 0;
        let mut consumed = 0u64;
        // Inside a line longer than the buffer: the rest of it is passed over.
        let mut skipping = inside_a_line;
        loop {
            let n = match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            filled += n;
            let mut done = 0;
            if !skipping {
                consumed += self.pass_nuls(buf, &mut filled);
            }
            if skipping {
                // To its end: a newline, taken with it, or a crash's NUL bytes, passed over
                // as at any line's start.
                done = match memchr::memchr2(b'\n', 0, &buf[..filled]) {
                    Some(i) => {
                        skipping = false;
                        i + usize::from(buf[i] == b'\n')
                    }
                    None => filled,
                };
                self.summary.bytes_read += done as u64;
            }
            // Up to the last line end, a newline or a NUL byte (see `ends_a_line`).
            match memchr::memrchr2(b'\n', 0, &buf[done..filled]) {
                Some(i) => {
                    self.scan_at(&buf[done..done + i + 1], consumed + done as u64);
                    done += i + 1;
                }
                None if done == 0 && filled == buf.len() => {
                    self.overlong(&buf[..filled]);
                    done = filled;
                    skipping = true;
                }
                None => {}
            }
            if done > 0 {
                consumed += done as u64;
                if let Some(progress) = self.progress {
                    progress(done as u64);
                }
                buf.copy_within(done..filled, 0);
                filled -= done;
                if !skipping {
                    consumed += self.pass_nuls(buf, &mut filled);
                }
            }
        }
        if last_line_whole && filled > 0 && !skipping {
            // Never a whole buffer here (that one is junk, passed over above): there is room
            // for the newline it lacks, which is not counted as read.
            buf[filled] = b'\n';
            self.scan_at(&buf[..=filled], consumed);
            self.summary.bytes_read -= 1;
            consumed += filled as u64;
            if let Some(progress) = self.progress {
                progress(filled as u64);
            }
        }
        Ok(consumed)
    }

    /// Passes over the NUL bytes that start the line at the start of `buf` (`filled` bytes
    /// held), and returns how many. A crash can leave a block of them, of any length, where
    /// the file grew and its data never came: they are no part of the line written after them,
    /// which is read whole however long the block. Counted as read.
    fn pass_nuls(&mut self, buf: &mut [u8], filled: &mut usize) -> u64 {
        let nul = buf[..*filled].iter().take_while(|b| **b == 0).count();
        if nul > 0 {
            self.summary.bytes_read += nul as u64;
            if let Some(progress) = self.progress {
                progress(nul as u64);
            }
            buf.copy_within(nul..*filled, 0);
            *filled -= nul;
        }
        nul as u64
    }

    /// A whole buffer without a newline: no kernel line is this long (the kernel's own limit
    /// is 1 KiB), so it is junk, counted as one line however long it goes on, and malformed
    /// if a prefix is in the part read. Its rest, up to its newline, is passed over; one that
    /// is still being written is consumed up to the end of the file all the same.
    fn overlong(&mut self, head: &[u8]) {
        self.summary.lines_read += 1;
        self.summary.bytes_read += head.len() as u64;
        if self.finders.iter().any(|f| f.find(head).is_some()) {
            self.summary.lines_malformed += 1;
        }
    }

    /// [`Ingest::scan`] of `region`, which starts `at` bytes into the feed: the lines that
    /// start before where the rule of [`Ingest::counted_before`] ends are held to it, and it is
    /// let go of for the rest.
    fn scan_at(&mut self, region: &[u8], at: u64) {
        let Some(end) = self.rule_ends.filter(|&end| end < at + region.len() as u64) else {
            self.scan(region);
            return;
        };
        // The line holding the last byte before the end ends the part held to the rule.
        let split = match usize::try_from(end.saturating_sub(at)) {
            Ok(0) | Err(_) => 0,
            Ok(before) => memchr::memchr2(b'\n', 0, &region[before - 1..])
                .map_or(region.len(), |i| before + i),
        };
        if split > 0 {
            self.scan(&region[..split]);
        }
        self.counted_before(Vec::new());
        if split < region.len() {
            self.scan(&region[split..]);
        }
    }

    /// Counts every line of `region` (complete lines, the last one ending it) and parses those
    /// carrying a prefix.
    fn scan(&mut self, region: &[u8]) {
        self.summary.bytes_read += region.len() as u64;
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        self.summary.lines_read += match &self.finders[..] {
            [finder] => lines_found(region, finder, &mut starts),
            finders => lines_found_by_any(region, finders, &mut starts),
        };
        self.read_lines(region, &starts);
        self.starts = starts;
    }

    /// Reads the lines `starts` found in `region`, and counts them in.
    fn read_lines(&mut self, region: &[u8], starts: &[Found]) {
        // The lines are read a few at a time: all of them parsed, then the records of their
        // sources asked of the memory at once, then counted in. With many sources the records
        // are not in the cache, and their misses overlap rather than wait for each in turn.
        // Each with its source's hash, made once for the prefetch and the count.
        let mut hits: Vec<(&[u8], Packet<'_>, u64)> = Vec::with_capacity(AHEAD);
        for group in starts.chunks(AHEAD) {
            for f in group {
                let mut text = &region[f.start..f.end];
                if region.get(f.end) == Some(&0) {
                    match cut_back(text, f.at - f.start + f.len) {
                        Some(whole) => text = whole,
                        None => {
                            self.summary.lines_malformed += 1;
                            continue;
                        }
                    }
                }
                if let Some(packet) = self.hit(text, f.prefix, f.at - f.start, f.again) {
                    let hash = self.seen.hash_of(&packet.src);
                    hits.push((text, packet, hash));
                }
            }
            for &(_, _, hash) in &hits {
                self.seen.prefetch(hash);
            }
            // Counted where they lie: a packet copied out of the vector would be read back
            // from the stack right after, in other pieces than it was stored in, a load the
            // processor cannot take from the stores in flight.
            for (text, packet, hash) in &hits {
                self.count(text, packet, *hash);
            }
            hits.clear();
        }
    }

    /// The packet of a line that counts as a hit; any other line is counted in the summary
    /// for what it is.
    fn hit<'t>(
        &mut self,
        text: &'t [u8],
        prefix: usize,
        prefix_at: usize,
        again: bool,
    ) -> Option<Packet<'t>> {
        let packet = match self.parser.parse_found(text, prefix, prefix_at, again) {
            Line::Packet(p) => p,
            Line::Malformed(_) => {
                self.summary.lines_malformed += 1;
                return None;
            }
            // A line with a prefix that is no packet, whatever the reason, is malformed (the
            // summary's definition); the ones outside a kernel message are told apart.
            Line::Other => {
                self.summary.lines_not_kernel += 1;
                self.summary.lines_malformed += 1;
                return None;
            }
        };
        // A line before `--since` parsed: matched (the summary's definition), not counted.
        self.summary.lines_matched += 1;
        if self.since.is_some_and(|since| packet.time < since) {
            self.summary.lines_before_since += 1;
            return None;
        }
        if self
            .counted_before
            .get(packet.prefix)
            .copied()
            .flatten()
            .is_some_and(|t| packet.time <= t)
        {
            self.summary.lines_counted_before += 1;
            return None;
        }
        let ahead = self.stale_after.is_some_and(|t| packet.time > t);
        if ahead || self.stale_before.is_some_and(|t| packet.time < t) {
            self.summary.lines_stale += 1;
            self.summary.lines_ahead += u64::from(ahead);
            return None;
        }
        if packet.outgoing {
            self.summary.lines_outgoing += 1;
            return None;
        }
        if packet.answer && !self.answers_are_hits {
            self.summary.lines_backscatter += 1;
            return None;
        }
        if self.soon_after.is_some_and(|t| packet.time > t) {
            self.summary.lines_soon += 1;
            self.summary.latest_soon = self.summary.latest_soon.max(packet.time);
        }
        Some(packet)
    }

    /// Counts a hit in the record of its source, and keeps its line where evidence wants it.
    fn count(&mut self, text: &[u8], packet: &Packet<'_>, hash: u64) {
        let attribute = self.attribute;
        let (slot, seen, shown) = self.seen.record(hash, packet, || attribute(packet.src));
        Self::raise(&mut self.counted_until, packet.prefix, packet.time);
        if seen.candidates.is_empty() {
            return;
        }
        let kept = kept_text(text);
        let first = seen.wants_a_line();
        if first || shown {
            if first {
                seen.first_lines += 1;
            } else {
                self.lines_to_choose = true;
            }
            let text = clean(&kept);
            let text = match first {
                true => self.pen.keep(self.spool, &text),
                false => hold(&mut self.held, &mut self.pen, self.spool, &text),
            };
            self.first_lines.push(FirstLine {
                time: packet.time,
                text,
                slot,
            });
        }
        for &i in &seen.candidates {
            if let Some(tracker) = self.trackers.get_mut(i as usize) {
                tracker.push(packet.time, packet.src, &kept);
            }
        }
        if self.first_lines.len() >= self.choose_from || self.held.len() >= self.held_at_most {
            self.choose_own_lines(false);
            self.choose_from = (2 * self.first_lines.len()).max(CHOOSE_FROM);
        }
    }

    /// Of each source's lines kept so far, those that may be among the ones its evidence
    /// shows (or with `last`, those it shows), in the order read. A source shows its
    /// earliest line, so that the time it was first seen is in a line whatever order the
    /// files were read in (a log host's files, one per host, are read one after another), then
    /// unless it keeps few lines its first lines read, up to [`LINES_PER_IP`] in all. Each is
    /// the first or least of its kind over every line of the source, so the choice is the same
    /// however the lines were split between readers: before the last, a reader keeps every
    /// line that may be one of them.
    fn choose_own_lines(&mut self, last: bool) {
        if !self.lines_to_choose {
            return;
        }
        // Lines kept before the last choice are more than it keeps.
        self.lines_to_choose = !last;
        let lines = std::mem::take(&mut self.first_lines);
        let mut order: Vec<(u32, u32)> = (lines.iter().enumerate())
            .map(|(i, l)| (l.slot, i as u32))
            .collect();
        order.sort_unstable();
        let mut chosen = vec![false; lines.len()];
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let earliest = group
                .iter()
                .min_by_key(|&&(_, i)| (lines[i as usize].time, i));
            let Some(&(_, earliest)) = earliest else {
                continue;
            };
            chosen[earliest as usize] = true;
            if self.seen.at(group[0].0).few_lines {
                continue;
            }
            // Its first read: all that may be among them, or as many as there is room for.
            let room = if last { LINES_PER_IP - 1 } else { LINES_PER_IP };
            (group.iter())
                .filter(|&&(_, i)| i != earliest)
                .take(room)
                .for_each(|&(_, i)| chosen[i as usize] = true);
        }
        let mut lines: Vec<FirstLine> = (lines.into_iter().zip(chosen))
            .filter_map(|(line, chosen)| chosen.then_some(line))
            .collect();
        // The text of the lines held that are chosen, or may be, goes into the spool (which sets
        // aside on disk what its budget does not hold), the rest is let go.
        let held = std::mem::take(&mut self.held);
        for line in &mut lines {
            if let Some(range) = line.text.outside_at() {
                let text = String::from_utf8_lossy(held.get(range).unwrap_or_default());
                line.text = self.pen.keep(self.spool, &text);
            }
        }
        self.first_lines = lines;
    }

    /// What the run saw. Its lines' text is in the spool; `Err` if the spool cannot give
    /// back a line it set aside.
    pub fn finish(mut self) -> io::Result<Batch> {
        self.end_source();
        self.summary.ips_observed = self.seen.len() as u64;
        // Records keep their places in the observations made of them.
        let mut unattributed: Vec<(IpAddr, u32)> = (self.seen.places())
            .filter(|(_, s)| !s.in_provider)
            .map(|(place, s)| (s.ip, place))
            .collect();
        sort_places(&mut unattributed);
        self.summary.ips_unattributed = unattributed.len() as u64;
        let own = self.own_lines();
        let windows = std::mem::take(&mut self.evidence);
        let mut evidence = Vec::with_capacity(windows.len());
        for (window, own) in windows.into_iter().zip(own) {
            evidence.push(self.with_window(window, own)?);
        }
        self.pen.hand_over(self.spool);
        Ok(Batch {
            observations: self.seen.into_observations(),
            summary: self.summary,
            unattributed,
            evidence,
        })
    }

    /// The first lines read, per bucket: those of the addresses it may get, each with its
    /// address.
    fn own_lines(&mut self) -> Vec<Vec<KeptLine>> {
        self.choose_own_lines(true);
        let buckets = self.evidence.len();
        let seen = &self.seen;
        let bucket_of = |slot: u32| {
            (seen.at(slot).candidates.iter())
                .map(|&i| i as usize)
                .filter(move |&i| i < buckets)
        };
        let kept = |line: &FirstLine| {
            let ip = seen.at(line.slot).ip;
            let mut kept = KeptLine::new(line.time, ip, line.text);
            kept.own = true;
            kept
        };
        let mut counts = vec![0usize; buckets];
        for line in &self.first_lines {
            for i in bucket_of(line.slot) {
                counts[i] += 1;
            }
        }
        let mut own: Vec<Vec<KeptLine>> = (counts.iter()).map(|&n| Vec::with_capacity(n)).collect();
        for line in &self.first_lines {
            for i in bucket_of(line.slot) {
                own[i].push(kept(line));
            }
        }
        self.first_lines = Vec::new();
        // In the order of time, those of a time in the order read (see `EvidenceUpdate`).
        for lines in &mut own {
            if !lines.is_sorted_by_key(|l| l.time) {
                lines.sort_by_key(|l| l.time);
            }
        }
        own
    }

    /// A bucket's pool: the lines of its sources' densest windows, then the first lines read
    /// that are not among them (a packet is one line, in the window or not), in time order.
    /// Equal lines are counted as a multiset: a repeated packet logs identical lines, and each
    /// is evidence of its own.
    fn with_window(
        &mut self,
        window: Vec<EvidenceLine>,
        own: Vec<KeptLine>,
    ) -> io::Result<Vec<KeptLine>> {
        // Per second and address, each text of the window with the places in `pool` of its
        // lines not yet matched by an own line.
        type Places = Vec<(String, Vec<usize>)>;
        let mut have: HashMap<(i64, IpAddr), Places, foldhash::fast::RandomState> =
            HashMap::default();
        let mut pool = Vec::with_capacity(window.len() + own.len());
        for line in window {
            let at = pool.len();
            pool.push(
                self.pen
                    .keep_line(self.spool, line.time, line.ip, &line.text),
            );
            let texts = have.entry((line.time, line.ip)).or_default();
            match texts.iter_mut().find(|(t, _)| *t == line.text) {
                Some((_, places)) => places.push(at),
                None => texts.push((line.text, vec![at])),
            }
        }
        if have.is_empty() {
            return Ok(own);
        }
        // The pen's block is handed over, so that the lines in it can be read.
        self.pen.hand_over(self.spool);
        for line in own {
            if let Some(texts) = have.get_mut(&(line.time, line.ip)) {
                let text = self.spool.text(&line)?;
                let copy = texts.iter_mut().find(|(t, p)| !p.is_empty() && *t == text);
                // The window's copy of it stands for it, as its own line.
                if let Some(at) = copy.and_then(|(_, places)| places.pop()) {
                    pool[at].own = true;
                    continue;
                }
            }
            pool.push(line);
        }
        pool.sort_by_key(|l| l.time);
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Zone;
    use chrono::Utc;

    fn ingest_text(text: &str, attribute: &(dyn Fn(IpAddr) -> Attribution + Sync)) -> Batch {
        let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
        let mut ingest = Ingest::new(parser(), 1, 5, 50, attribute, crate::spool::for_tests());
        ingest.begin_source(parser());
        let consumed = ingest.feed(text.as_bytes()).unwrap();
        assert_eq!(consumed as usize, text.rfind('\n').map_or(0, |i| i + 1));
        ingest.finish().unwrap()
    }

    fn aws() -> Attribution {
        Attribution {
            in_provider: true,
            candidates: [0].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_lines_and_aggregates_per_ip() {
        let text = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n\
                    Jan 25 23:51:25 h sshd[1]: hello\n\
                    Jan 25 23:51:26 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=6 DPT=80\n\
                    Jan 25 23:51:27 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.14\n\
                    Jan 25 23:51:28 h2 kernel: INPUT-DROP:IN=eth0 OUT= SRC=9.9.9.9 DST=192.0.2.1 PROTO=TCP SPT=6 DPT=22\n\
                    Jan 25 23:51:29 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP";
        let attribute = |ip: IpAddr| {
            if ip.to_string() == "3.5.140.2" {
                aws()
            } else {
                Attribution::default()
            }
        };
        let batch = ingest_text(text, &attribute);
        assert_eq!(
            batch.summary,
            Summary {
                lines_read: 5,
                lines_matched: 3,
                lines_malformed: 1,
                bytes_read: text.rfind('\n').unwrap() as u64 + 1,
                ips_observed: 2,
                ips_unattributed: 1,
                lines_stale: 0,
                lines_ahead: 0,
                lines_soon: 0,
                latest_soon: 0,
                lines_outgoing: 0,
                lines_before_since: 0,
                lines_not_kernel: 0,
                lines_backscatter: 0,
                lines_counted_before: 0,
                ips_below_min_hits: 0,
            }
        );
        let o = &batch.observations[&"3.5.140.2".parse::<IpAddr>().unwrap()];
        assert_eq!(o.hits, 2);
        assert_eq!(
            o.dst_ports.iter().copied().collect::<Vec<_>>(),
            vec![53, 80]
        );
        assert_eq!(
            o.protocols.iter().cloned().collect::<Vec<_>>(),
            vec!["TCP", "UDP"]
        );
        assert_eq!(o.last_seen - o.first_seen, 1);
        let lines = &batch.evidence[0];
        assert_eq!(lines.len(), 2, "only candidate IPs are evidence");
        let spool = crate::spool::for_tests();
        assert!((lines.iter()).all(|l| spool.text(l).unwrap().contains("SRC=3.5.140.2")));
    }

    #[test]
    fn line_longer_than_the_buffer_is_one_junk_line() {
        let mut text = String::new();
        text.push_str(&"x".repeat(BUFFER + 10));
        text.push('\n');
        text.push_str("Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n");
        // A prefix early in an overlong line, a packet's worth of fields after the buffer.
        text.push_str("Jan 25 23:51:25 h kernel: INPUT-DROP:");
        text.push_str(&"y".repeat(BUFFER));
        text.push_str(" Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=9.9.9.9 DST=192.0.2.1 PROTO=UDP\n");
        let batch = ingest_text(&text, &|_| aws());
        assert_eq!(batch.summary.lines_read, 3);
        assert_eq!(batch.summary.lines_matched, 1);
        assert_eq!(batch.summary.lines_malformed, 1);
        assert_eq!(batch.summary.ips_observed, 1);
        assert_eq!(batch.summary.bytes_read as usize, text.len());
    }

    /// A crash's block of NUL bytes longer than the read buffer, before a packet line: the
    /// line is read whole, not taken for junk and lost. (A block at the end of the input is
    /// held to the reference reader in `tests/differential.rs`.)
    #[test]
    fn a_packet_after_a_nul_block_longer_than_the_buffer_is_counted() {
        let packet = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 \
                      DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n";
        let mut text = packet.to_string();
        text.push_str(&"\0".repeat(3 * BUFFER + 7));
        text.push_str(packet);
        let batch = ingest_text(&text, &|_| aws());
        assert_eq!(batch.summary.lines_read, 2);
        assert_eq!(batch.summary.lines_matched, 2);
        assert_eq!(batch.summary.lines_malformed, 0);
        assert_eq!(batch.summary.bytes_read as usize, text.len());
        let ip: IpAddr = "3.5.140.2".parse().unwrap();
        assert_eq!(batch.observations[&ip].hits, 2);
    }

    #[test]
    fn unfinished_overlong_last_line_is_consumed_once() {
        let parser = || LineParser::new(&["D:".to_string()], Zone::Utc, Utc::now());
        let attribute = |_| aws();
        let mut ingest = Ingest::new(parser(), 1, 5, 50, &attribute, crate::spool::for_tests());
        ingest.set_buffer_size(100);
        let text = format!("a\n{}", "z".repeat(250));
        assert_eq!(ingest.feed(text.as_bytes()).unwrap() as usize, text.len());
        let short = "a\nnot yet";
        assert_eq!(ingest.feed(short.as_bytes()).unwrap(), 2);
        assert_eq!(ingest.finish().unwrap().summary.lines_read, 3);
    }

    /// psad's rule sets log with `DROP ` and `DROP INVALID `: both prefixes are found at the
    /// same place in an invalid-state line.
    #[test]
    fn drop_invalid_lines_among_drop_lines_are_read() {
        let invalid = |n: u32| {
            format!(
                "Jan 25 23:51:{n:02} fw kernel: DROP INVALID IN=eth0 OUT= SRC=3.5.140.{n} \
                 DST=192.0.2.1 LEN=40 PROTO=TCP SPT=443 DPT=51234 WINDOW=0 RES=0x00 RST URGP=0\n"
            )
        };
        let drop = |n: u32| {
            format!(
                "Jan 25 23:52:{:02} fw kernel: DROP IN=eth0 OUT= SRC=34.223.47.{} DST=192.0.2.1 \
                 LEN=60 PROTO=TCP SPT={} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0\n",
                n % 60,
                n % 200 + 1,
                40000 + n
            )
        };
        let mut text = invalid(1) + &invalid(2);
        for n in 0..100 {
            text.push_str(&drop(n));
        }
        for prefixes in [["DROP ", "DROP INVALID "], ["DROP INVALID ", "DROP "]] {
            let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
            let parser = || LineParser::new(&prefixes, Zone::Utc, Utc::now());
            let attribute = |_| aws();
            let mut ingest = Ingest::new(parser(), 1, 5, 50, &attribute, crate::spool::for_tests());
            ingest.begin_source(parser());
            ingest.feed(text.as_bytes()).unwrap();
            let batch = ingest.finish().unwrap();
            assert_eq!(batch.summary.lines_matched, 102);
            assert_eq!(batch.summary.lines_malformed, 0);
            for ip in ["3.5.140.1", "3.5.140.2"] {
                assert_eq!(batch.observations[&ip.parse::<IpAddr>().unwrap()].hits, 1);
            }
            // The line is read with the longest prefix found at its place.
            let mut ingest = Ingest::new(parser(), 1, 5, 50, &attribute, crate::spool::for_tests());
            ingest.scan(text.as_bytes());
            let longest = prefixes.iter().position(|p| p == "DROP INVALID ").unwrap();
            assert_eq!(ingest.starts[0].prefix, longest);
            assert_eq!(ingest.starts[1].prefix, longest);
        }
    }

    #[test]
    fn bounded_sets_keep_the_same_values_in_any_order() {
        let ip: IpAddr = "3.5.140.2".parse().unwrap();
        let packet = |port: u16| Packet {
            time: 1,
            host: b"h",
            prefix: 0,
            src: ip,
            dst: ip,
            proto: "TCP",
            spt: Some(port),
            dpt: Some(port),
            answer: false,
            outgoing: false,
            copies: 1,
        };
        let ports: Vec<u16> = (0..200).map(|i| (i * 7919 % 1000) as u16).collect();
        let mut forward = Observation::new(ip, 1);
        ports.iter().for_each(|p| forward.record(&packet(*p)));
        let mut backward = Observation::new(ip, 1);
        ports
            .iter()
            .rev()
            .for_each(|p| backward.record(&packet(*p)));
        let (mut first, mut second) = (Observation::new(ip, 1), Observation::new(ip, 1));
        ports[..100].iter().for_each(|p| first.record(&packet(*p)));
        ports[100..].iter().for_each(|p| second.record(&packet(*p)));
        second.merge(&first);
        assert_eq!(forward, backward);
        assert_eq!(forward, second);
        assert_eq!(forward.dst_ports.len(), MAX_PORTS);
        let smallest: SmallSet<u16> = ports
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .take(MAX_PORTS)
            .collect();
        assert_eq!(forward.dst_ports, smallest);
    }

    #[test]
    fn a_small_set_is_a_sorted_set_however_it_is_built() {
        let values = [5u16, 1, 9, 1, 3, 5, 0, 9];
        let mut built = SmallSet::new();
        let mut model = std::collections::BTreeSet::new();
        for v in values {
            assert_eq!(built.insert(v), model.insert(v));
            assert_eq!(built.as_slice(), model.iter().copied().collect::<Vec<_>>());
            assert!(built.contains(&v));
            assert_eq!(built.len(), model.len());
        }
        assert_eq!(built, values.into_iter().collect::<SmallSet<_>>());
        while let Some(last) = model.pop_last() {
            assert_eq!(built.pop_last(), Some(last));
            assert_eq!(built.as_slice(), model.iter().copied().collect::<Vec<_>>());
        }
        assert!(built.is_empty() && built.pop_last().is_none());
        let one: SmallSet<String> = ["TCP".to_string()].into_iter().collect();
        assert_eq!(one, {
            let mut s = SmallSet::new();
            s.insert("TCP".to_string());
            s
        });
        assert!(one.contains("TCP") && !one.contains("UDP"));
        assert_eq!(one.into_iter().collect::<Vec<_>>(), ["TCP"]);
    }

    /// An IPv4 packet written in the mapped form (both addresses so, as a collector may
    /// write them) is the IPv4 host's: one source with its plain spelling. A mapped source in
    /// an IPv6 packet is no IPv4 host's: a source of its own, in the mapped form.
    #[test]
    fn ipv4_mapped_and_plain_source_are_one_ip() {
        let text = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n\
                    Jan 25 23:51:26 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=::ffff:3.5.140.2 DST=::ffff:192.0.2.1 PROTO=TCP SPT=6 DPT=80\n\
                    Jan 25 23:51:27 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=::ffff:3.5.140.2 DST=2001:db8::1 PROTO=TCP SPT=6 DPT=80\n";
        let batch = ingest_text(text, &|_| aws());
        assert_eq!(batch.summary.ips_observed, 2);
        let hits = |ip: &str| batch.observations[&ip.parse::<IpAddr>().unwrap()].hits;
        assert_eq!(hits("3.5.140.2"), 2);
        assert_eq!(hits("::ffff:3.5.140.2"), 1);
    }

    /// An address only a discovered desk may get keeps one line of its own, others three.
    #[test]
    fn few_lines_keeps_one_own_line() {
        let text: String = (0..5)
            .map(|i| format!("Jan 25 23:51:2{i} h kernel: INPUT-DROP:IN=eth0 OUT= SRC=45.1.0.9 DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n"))
            .collect();
        for (few_lines, kept) in [(false, LINES_PER_IP), (true, 1)] {
            let attribute = move |_: IpAddr| Attribution {
                in_provider: !few_lines,
                candidates: [0].into_iter().collect(),
                few_lines,
            };
            // A window of one second holds one line: the rest are the address's own.
            let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
            let mut ingest = Ingest::new(parser(), 1, 1, 1, &attribute, crate::spool::for_tests());
            ingest.begin_source(parser());
            ingest.feed(text.as_bytes()).unwrap();
            let batch = ingest.finish().unwrap();
            assert_eq!(
                batch.evidence[0].len(),
                kept.max(1),
                "few_lines {few_lines}"
            );
        }
    }

    /// Destinations are numbered without a bound: an IP of the 100th provider keeps its
    /// evidence in the 100th bucket (a bit mask of 64 providers was the limit once).
    #[test]
    fn evidence_goes_to_any_numbered_bucket() {
        let text = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=UDP SPT=5 DPT=53\n";
        let attribute = |_: IpAddr| Attribution {
            in_provider: true,
            candidates: [99, 130].into_iter().collect(),
            few_lines: false,
        };
        let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
        let mut ingest = Ingest::new(parser(), 131, 5, 50, &attribute, crate::spool::for_tests());
        ingest.begin_source(parser());
        ingest.feed(text.as_bytes()).unwrap();
        let batch = ingest.finish().unwrap();
        let filled: Vec<usize> = (0..batch.evidence.len())
            .filter(|&i| !batch.evidence[i].is_empty())
            .collect();
        assert_eq!(filled, [99, 130]);
        assert_eq!(batch.summary.ips_unattributed, 0);
    }

    /// Ports past a record's room go aside: destination ports to a vector, of which the record
    /// keeps a few in sight, and the smallest source ports to the record's own room. The copies
    /// follow every change, port 0 (the unset slots' value) included, so that what they turn
    /// away the vector would too, and the source ports kept are the smallest whatever came.
    #[test]
    fn ports_set_aside_keep_their_copies_in_the_record_true() {
        let mut ports = Ports::new();
        // Forty source ports: past the room in place.
        for p in 1000..1040 {
            ports.add_src(p);
        }
        assert!(matches!(ports, Ports::Aside { .. }));
        for p in [443, 22, 0, 22, 8080, 0] {
            ports.add_dst(p);
        }
        // Full, its largest 1015: a smaller port comes in, a larger one is turned away.
        for p in [999, 5, 60_000, 1015] {
            ports.add_src(p);
        }
        let (dst, src) = ports.into_sets();
        assert_eq!(dst.as_slice(), [0, 22, 443, 8080]);
        let mut wanted: Vec<u16> = [5, 999].into_iter().chain(1000..1014).collect();
        wanted.sort();
        assert_eq!(src.as_slice(), wanted);
    }

    /// A million spoofed sources are a million records: a few bytes more each is megabytes.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_source_record_stays_small() {
        assert!(std::mem::size_of::<SmallSet<u16>>() <= 16);
        assert!(std::mem::size_of::<SmallSet<String>>() <= 24);
        assert!(std::mem::size_of::<Name>() <= 24);
        assert!(std::mem::size_of::<SmallSet<Name>>() <= 24);
        assert!(std::mem::size_of::<Observation>() <= 152);
        // The size of an observation: each record turns into one where it lies.
        assert_eq!(
            std::mem::size_of::<Seen>(),
            std::mem::size_of::<Observation>()
        );
        assert_eq!(
            std::mem::align_of::<Seen>(),
            std::mem::align_of::<Observation>()
        );
    }

    #[test]
    fn a_capped_set_holds_the_smallest_values_whatever_the_order() {
        let values = [9u16, 3, 7, 3, 1, 8, 0, 5, 9, 2, 6, 4];
        for cap in 0..6 {
            for start in 0..values.len() {
                let mut set = SmallSet::new();
                for v in values[start..].iter().chain(&values[..start]) {
                    insert_capped(&mut set, *v, cap);
                    assert!(set.len() <= cap);
                }
                let want: Vec<u16> = (0..10).take(cap).collect();
                assert_eq!(set.as_slice(), want, "cap {cap}, from {start}");
            }
        }
    }

    /// Merging two capped sets gives what inserting the other's values one by one gives.
    #[test]
    fn a_merged_capped_set_is_the_one_built_value_by_value() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..2000 {
            let cap = next(6) as usize;
            let (mut a, mut b) = (SmallSet::new(), SmallSet::new());
            for _ in 0..next(8) {
                insert_capped(&mut a, next(12) as u16, cap);
            }
            for _ in 0..next(8) {
                insert_capped(&mut b, next(12) as u16, cap);
            }
            let mut one_by_one = a.clone();
            b.iter()
                .for_each(|v| insert_capped(&mut one_by_one, *v, cap));
            let mut merged = a.clone();
            merged.merge_capped(&b, cap);
            assert_eq!(merged, one_by_one, "{a:?} + {b:?}, cap {cap}");
            let names = |s: &SmallSet<u16>| s.iter().map(|v| format!("p{v:02}")).collect();
            let (mut a, b): (SmallSet<String>, SmallSet<String>) = (names(&a), names(&b));
            a.merge_capped(&b, cap);
            assert_eq!(a, names(&merged));
        }
    }

    /// An IP's first lines are its own evidence: a later part read by another thread adds
    /// its lines only up to the number kept per IP, the earlier part's first.
    #[test]
    fn a_later_part_adds_first_lines_up_to_the_number_kept() {
        let line = |n: u32, ip: &str| {
            format!(
                "Jan 25 23:51:{n:02} h kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=192.0.2.1 PROTO=UDP SPT={n} DPT=53\n"
            )
        };
        let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
        let attribute = |_| aws();
        let mut first = Ingest::new(parser(), 1, 5, 50, &attribute, crate::spool::for_tests());
        first.begin_source(parser());
        let early = line(1, "3.5.140.2") + &line(2, "3.5.140.2");
        first.feed(early.as_bytes()).unwrap();
        let mut later = first.fork();
        let late = line(3, "3.5.140.2") + &line(4, "3.5.140.2") + &line(5, "3.5.140.9");
        later.feed(late.as_bytes()).unwrap();
        first.absorb(later);
        first.choose_own_lines(true);
        let kept: Vec<(String, i64)> = first
            .first_lines
            .iter()
            .map(|l| {
                let ip = first.seen.at(l.slot).ip;
                (ip.to_string(), l.time % 60)
            })
            .collect();
        assert_eq!(
            kept,
            [
                ("3.5.140.2".to_string(), 1),
                ("3.5.140.2".to_string(), 2),
                ("3.5.140.2".to_string(), 3),
                ("3.5.140.9".to_string(), 5),
            ]
        );
        let batch = first.finish().unwrap();
        assert_eq!(batch.observations.len(), 2);
        assert_eq!(batch.observations[&"3.5.140.2".parse().unwrap()].hits, 4);
    }

    /// Names are held in place up to a length and on the heap beyond it, and sort, compare
    /// and print as their text does either way.
    #[test]
    fn a_name_is_its_text_however_it_is_held() {
        let texts = [
            "",
            "TCP",
            "web1",
            "a-host-name-of-22-byte",
            "a-host-name-of-23-bytes",
            "host.example.org.with.a.long.name",
            "é",
        ];
        let names: Vec<Name> = texts.iter().map(|t| Name::from(*t)).collect();
        for (name, text) in names.iter().zip(texts) {
            assert_eq!(name.as_str(), text);
            assert_eq!(name.to_string(), text);
            assert_eq!(*name, text);
            assert_eq!(text.parse::<Name>().unwrap(), *name);
        }
        for (a, ta) in names.iter().zip(texts) {
            for (b, tb) in names.iter().zip(texts) {
                assert_eq!(a.cmp(b), ta.cmp(tb), "{ta} against {tb}");
            }
        }
        let mut set = SmallSet::new();
        for t in ["web2", "web1", "web2"] {
            if takes_name(&set, t.as_bytes(), 2) {
                insert_capped(&mut set, Name::from(t), 2);
            }
        }
        assert_eq!(set.as_slice(), ["web1", "web2"]);
        assert!(!takes_name(&set, b"web3", 2) && takes_name(&set, b"web0", 2));
        assert!(set.contains("web1"));
    }

    /// A record holds a protocol as a number: every protocol the kernel prints comes back as
    /// the same text, and text the kernel does not print has no number.
    #[test]
    fn a_protocol_code_gives_back_its_text() {
        let numbers = (0..=255u16).map(|n| n.to_string());
        let printed: Vec<String> = (crate::parse::PROTOCOLS.iter().map(|p| p.to_string()))
            .chain(numbers)
            .collect();
        let mut codes = std::collections::BTreeSet::new();
        for text in &printed {
            let code = protocol_code(text).unwrap_or_else(|| panic!("no code for {text}"));
            assert_eq!(protocol_name(code), text.as_str());
            assert!(codes.insert(code), "{text} shares a code");
        }
        for text in ["", "06", "00", "256", "+6", "-1", "tcp", "IGMP", "6 "] {
            assert_eq!(protocol_code(text), None, "{text:?}");
        }
    }

    /// A line with the prefix twice is one line, counted once: the prefix again after the
    /// fields began is the next line run on after a cut one, so the line is malformed.
    #[test]
    fn prefix_twice_on_one_line_counts_once() {
        let text = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=UDP INPUT-DROP: x\n";
        let batch = ingest_text(text, &|_| aws());
        assert_eq!(batch.summary.lines_read, 1);
        assert_eq!(batch.summary.lines_malformed, 1);
        assert_eq!(batch.summary.lines_matched, 0);
    }

    /// Protocols as a packet may give them: the kernel's names, numbers, and texts no code
    /// stands for (`06` is not how the kernel writes 6).
    const SOME_PROTOCOLS: [&str; 30] = [
        "TCP", "UDP", "ICMP", "ICMPv6", "UDPLITE", "AH", "ESP", "0", "1", "2", "6", "17", "41",
        "47", "50", "99", "100", "103", "132", "199", "200", "250", "255", "3", "4", "5", "06",
        "IGMP", "254", "9",
    ];

    /// The packets of `raw`, each field's value taken modulo its width in `widths` (sources,
    /// protocols, destination and source ports, destinations, hosts), so that a case has
    /// sources seen once or twice, sources of little variety, whose values stay in their
    /// records, and sources past every bound.
    fn packets_of<'a>(
        raw: &[(u8, u8, u16, u16, u8, u8, u16)],
        widths: (u8, u8, u16, u16, u8, u8),
        hosts: &'a [String],
    ) -> Vec<Packet<'a>> {
        let (sources, protocols, dst_ports, src_ports, dsts, host_names) = widths;
        (raw.iter())
            .map(|&(src, proto, dpt, spt, dst, host, time)| {
                let dst = dst % dsts;
                Packet {
                    time: i64::from(time),
                    host: hosts[usize::from(host % host_names)].as_bytes(),
                    prefix: 0,
                    src: IpAddr::from([3, 5, 140, src % sources]),
                    dst: match dst % 3 {
                        0 => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(dst)]),
                        _ => IpAddr::from([192, 0, 2, dst]),
                    },
                    proto: SOME_PROTOCOLS[usize::from(proto % protocols)],
                    // The width itself stands for none (ICMP has no ports); port 0 is a
                    // port like any other (the kernel logs SPT=0).
                    dpt: Some(dpt % (dst_ports + 1)).filter(|&p| p != dst_ports),
                    spt: Some(spt % (src_ports + 1)).filter(|&p| p != src_ports),
                    answer: false,
                    outgoing: false,
                    // Now and then a line of rsyslog's that stands for several packets.
                    copies: 1 + u32::from(time % 7 == 0) * u32::from(spt % 5),
                }
            })
            .collect()
    }

    proptest::proptest! {
        /// A set collected from values holds them ascending, each once, however few: the
        /// plain sorted, deduplicated vector is the reference.
        #[test]
        fn a_set_collected_holds_its_values_ascending_once(
            values in proptest::collection::vec(0u16..8, 0..6),
        ) {
            let set: SmallSet<u16> = values.iter().copied().collect();
            let mut plain = values.clone();
            plain.sort_unstable();
            plain.dedup();
            proptest::prop_assert_eq!(set.iter().copied().collect::<Vec<_>>(), plain);
        }
    }

    /// The hosts a source keeps of all it was seen by, the plain way: every short name and
    /// the [`LONG_NAMES`] smallest long ones, then the [`MAX_SMALL_SET`] smallest of those.
    fn kept_hosts(all: &SmallSet<Name>) -> SmallSet<Name> {
        let long: Vec<&Name> = (all.iter())
            .filter(|n| n.len() > INLINE_NAME)
            .take(LONG_NAMES)
            .collect();
        (all.iter())
            .filter(|n| n.len() <= INLINE_NAME || long.contains(n))
            .take(MAX_SMALL_SET)
            .cloned()
            .collect()
    }

    proptest::proptest! {
        /// A source's hosts, added one at a time in any order and merged from any split,
        /// are the plain bound of all of them: long names (a log host's forged senders) take
        /// at most a few places, short ones the rest.
        #[test]
        fn hosts_kept_are_the_plain_bound_of_all_whatever_the_order(
            picks in proptest::collection::vec((0usize..30, proptest::bool::ANY), 0..90),
            cut in 0usize..90,
        ) {
            // Short and long names in among each other in their order, more than are kept.
            let names: Vec<String> = (0..30)
                .map(|i| match i % 3 {
                    0 => format!("h{i:02}"),
                    _ => format!("h{i:02}-a-sender-named-at-more-length-than-a-record-holds"),
                })
                .collect();
            let picked: Vec<&str> = picks.iter().map(|&(i, _)| names[i].as_str()).collect();
            let all: SmallSet<Name> = picked.iter().map(|&n| Name::from(n)).collect();
            let one_by_one = |names: &[&str]| {
                let mut set = Vec::new();
                for n in names {
                    add_host_name(&mut set, n.as_bytes(), || Name::from(*n));
                }
                SmallSet::from_sorted(set)
            };
            let (whole, kept) = (one_by_one(&picked), kept_hosts(&all));
            proptest::prop_assert_eq!(whole.as_slice(), kept.as_slice());
            // Two readers' halves, merged as observations are.
            let cut = cut.min(picked.len());
            let mut first = Observation::new(IpAddr::from([192, 0, 2, 1]), 0);
            first.hosts = one_by_one(&picked[..cut]);
            let mut second = Observation::new(IpAddr::from([192, 0, 2, 1]), 0);
            second.hosts = one_by_one(&picked[cut..]);
            first.merge(&second);
            proptest::prop_assert_eq!(first.hosts.as_slice(), kept.as_slice());
            // A record kept before long names were bounded (every name, the smallest 16) is
            // bounded when read, and when merged.
            let older: SmallSet<Name> = all.iter().take(MAX_SMALL_SET).cloned().collect();
            let read = bounded_hosts(&older);
            let plain = kept_hosts(&older);
            proptest::prop_assert_eq!(read.as_slice(), plain.as_slice());
            let mut merged = Observation::new(IpAddr::from([192, 0, 2, 1]), 0);
            merged.hosts = older;
            merged.merge(&Observation::new(IpAddr::from([192, 0, 2, 1]), 0));
            proptest::prop_assert_eq!(merged.hosts.as_slice(), plain.as_slice());
        }
    }

    proptest::proptest! {
        // Many cases: a bug in the rarer paths (two readers' records of one source, each in
        // place, that do not fit together) shows in a few of them.
        #![proptest_config(proptest::test_runner::Config::with_cases(2048))]

        /// A reader's compact records (values in place, set aside past their room, numbered
        /// per reader) come to the observations that plain bounded sets make of the same
        /// packets, value by value, in another order: however the packets are split between
        /// readers, in however many shards, and whatever each source's variety. Each record
        /// taken in is found where the merge says it went, and each observation at its place.
        #[test]
        fn compact_records_make_the_observations_plain_sets_make(
            raw in proptest::collection::vec(
                (proptest::num::u8::ANY, proptest::num::u8::ANY, proptest::num::u16::ANY, proptest::num::u16::ANY,
                 proptest::num::u8::ANY, proptest::num::u8::ANY, 0u16..1000),
                0..700,
            ),
            // Half the time a narrow width, so that a source's values fit in its record, or
            // few sources, so that each is seen often.
            widths in (
                proptest::prop_oneof![1u8..8, 1u8..255],
                proptest::prop_oneof![1u8..3, 1u8..30],
                proptest::prop_oneof![1u16..30, 1u16..150],
                proptest::prop_oneof![1u16..30, 1u16..150],
                proptest::prop_oneof![proptest::strategy::Just(1u8), 1u8..40],
                proptest::prop_oneof![proptest::strategy::Just(1u8), 1u8..24],
            ),
            cuts in (0usize..700, 0usize..700),
            shards in 1usize..6,
        ) {
            let hosts: Vec<String> = (0..24)
                .map(|i| match i % 4 {
                    0 => format!("web{i}"),
                    1 => format!("a-host-with-a-name-too-long-to-hold-in-place-{i}"),
                    _ => format!("fw{i}.example.org"),
                })
                .collect();
            let packets = packets_of(&raw, widths, &hosts);
            let (a, b) = (cuts.0.min(cuts.1).min(packets.len()), cuts.0.max(cuts.1).min(packets.len()));
            let hash = AddressHash::default();
            let read = |packets: &[Packet<'_>]| {
                let mut sources = Sources::new(hash, shards);
                for p in packets {
                    sources.record(hash.of(&p.src), p, Attribution::default);
                }
                sources
            };
            let addresses = |sources: &Sources| -> Vec<(u32, IpAddr)> {
                sources.places().map(|(place, s)| (place, s.ip)).collect()
            };
            // Three readers: the last is taken in by the second, which the first takes in.
            let mut first = read(&packets[..a]);
            let mut second = read(&packets[a..b]);
            let third = read(&packets[b..]);
            let (of_second, of_third) = (addresses(&second), addresses(&third));
            let moved = second.absorb(third);
            for (place, ip) in of_third {
                proptest::prop_assert_eq!(second.at(moved(place)).ip, ip);
            }
            let moved = first.absorb(second);
            for (place, ip) in of_second {
                proptest::prop_assert_eq!(first.at(moved(place)).ip, ip);
            }
            proptest::prop_assert_eq!(first.places().count(), first.len());
            let mut compact = first.into_observations();
            let places: Vec<(u32, Observation)> =
                compact.places().map(|(place, o)| (place, o.clone())).collect();
            // Records added later (from the state) leave every place where it was.
            for i in 0..40u16 {
                let ip = IpAddr::from([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, i]);
                proptest::prop_assert!(compact.add(Observation::new(ip, 0)));
            }
            for (place, o) in &places {
                proptest::prop_assert_eq!(compact.at(*place), Some(o));
                proptest::prop_assert_eq!(compact.get(&o.ip), Some(o));
            }
            proptest::prop_assert_eq!(compact.places().count(), places.len() + 40);
            for (place, o) in compact.places() {
                proptest::prop_assert_eq!(compact.at(place), Some(o));
            }
            let compact: Observations =
                compact.into_iter().map(|(_, o)| o).filter(|o| o.ip.is_ipv4()).collect();
            let mut plain: std::collections::BTreeMap<IpAddr, Observation> = Default::default();
            for p in packets.iter().rev() {
                (plain.entry(p.src))
                    .or_insert_with(|| Observation::new(p.src, p.time))
                    .record(p);
            }
            for o in plain.values_mut() {
                o.hosts = kept_hosts(&o.hosts);
            }
            let plain: Observations = plain.into_values().collect();
            proptest::prop_assert_eq!(compact, plain);
        }
    }

    proptest::proptest! {
        /// Records found through the index of slots are those a map keyed by address holds:
        /// the first record added for each address, however many addresses share a hash
        /// bucket and however often the table grew.
        #[test]
        fn the_index_of_slots_finds_what_a_map_by_address_finds(
            added in proptest::collection::vec((0u8..3, 0u16..600), 0..2_000),
            asked in proptest::collection::vec((0u8..3, 0u16..700), 0..200),
        ) {
            let ip = |(kind, n): (u8, u16)| -> IpAddr {
                let [hi, lo] = n.to_be_bytes();
                match kind {
                    0 => IpAddr::from([3, 5, hi, lo]),
                    1 => IpAddr::from([0x2600, 0x1f18, 0, 0, 0, 0, u16::from(hi), u16::from(lo)]),
                    _ => IpAddr::from([52, 0, hi, lo]),
                }
            };
            let mut index = Observations::new();
            let mut reference: std::collections::BTreeMap<IpAddr, Observation> =
                std::collections::BTreeMap::new();
            for (i, &raw) in added.iter().enumerate() {
                let o = Observation::new(ip(raw), i as i64);
                let new = !reference.contains_key(&o.ip);
                reference.entry(o.ip).or_insert_with(|| o.clone());
                proptest::prop_assert_eq!(index.add(o), new);
            }
            proptest::prop_assert_eq!(index.len(), reference.len());
            for &raw in added.iter().chain(&asked) {
                proptest::prop_assert_eq!(index.get(&ip(raw)), reference.get(&ip(raw)));
                proptest::prop_assert_eq!(index.contains(&ip(raw)), reference.contains_key(&ip(raw)));
            }
        }

        /// Addresses sorted as integers are in `IpAddr`'s own order, IPv4 before IPv6, and
        /// the key orders any two addresses as `IpAddr` does.
        #[test]
        fn addresses_sorted_as_numbers_are_in_the_order_of_ip_addr(
            raw in proptest::collection::vec((proptest::bool::ANY, proptest::num::u128::ANY), 0..300),
        ) {
            // Small numbers too, where an IPv6 address's bits equal an IPv4 one's.
            let ips: Vec<IpAddr> = (raw.iter())
                .map(|&(v6, bits)| match (v6, bits % 3) {
                    (false, _) => IpAddr::from(std::net::Ipv4Addr::from_bits(bits as u32)),
                    (true, 0) => IpAddr::from(std::net::Ipv6Addr::from_bits(bits % 5)),
                    (true, _) => IpAddr::from(std::net::Ipv6Addr::from_bits(bits)),
                })
                .collect();
            let mut fast = ips.clone();
            sort_addresses(&mut fast);
            let mut plain = ips.clone();
            plain.sort();
            proptest::prop_assert_eq!(&fast, &plain);
            // With places, repeated addresses among them: address first, then place.
            let mut places: Vec<(IpAddr, u32)> = (ips.iter().zip(&raw))
                .map(|(&ip, &(_, bits))| (ip, (bits >> 64) as u32 % 4 * (u32::MAX / 3)))
                .chain(ips.iter().take(5).map(|&ip| (ip, 7)))
                .collect();
            let mut plain = places.clone();
            plain.sort();
            sort_places(&mut places);
            proptest::prop_assert_eq!(&places, &plain);
            for pair in ips.windows(2) {
                proptest::prop_assert_eq!(
                    address_order(pair[0]).cmp(&address_order(pair[1])),
                    pair[0].cmp(&pair[1])
                );
            }
        }
    }

    /// A generated packet line: its second of the hour, host, source and a number of its
    /// own (its source port), so that each line is told apart.
    fn own_line(second: u32, host: &str, ip: &str, number: usize) -> String {
        format!(
            "Jan 25 10:{:02}:{:02} {host} kernel: INPUT-DROP:IN=eth0 OUT= SRC={ip} DST=192.0.2.1 PROTO=UDP SPT={number} DPT=53",
            second / 60,
            second % 60
        )
    }

    /// The sources' own lines as a plain reading of the rule says, every line of a source
    /// looked at: its earliest (the first read of the earliest time), and unless it keeps few
    /// lines, then its first lines read, three in all. In the order of time, then of reading.
    fn own_lines_by_the_rule(
        lines: &[(u32, String, String)],
        few: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut chosen = Vec::new();
        let ips: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        for ip in ips {
            let mine: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].2 == ip).collect();
            let earliest = *mine.iter().min_by_key(|&&i| (lines[i].0, i)).unwrap();
            let mut picked = vec![earliest];
            if !few(ip) {
                for &i in &mine {
                    if picked.len() < LINES_PER_IP && !picked.contains(&i) {
                        picked.push(i);
                    }
                }
            }
            chosen.extend(picked);
        }
        chosen.sort_by_key(|&i| (lines[i].0, i));
        (chosen.into_iter())
            .map(|i| own_line(lines[i].0, &lines[i].1, &lines[i].2, i))
            .collect()
    }

    /// What a reader's own lines are once the read ends, in the order it holds them.
    fn own_lines_read(mut ingest: Ingest<'_>) -> Vec<String> {
        let own = ingest.own_lines();
        ingest.pen.hand_over(ingest.spool);
        own.into_iter()
            .flatten()
            .map(|line| ingest.spool.text(&line).unwrap())
            .collect()
    }

    /// A log in falling time order makes every line of a source its earliest yet, each kept
    /// until the next: their text was written to the spool (set aside on disk past its
    /// budget) as they came, the spool growing with the log. Only the lines chosen reach it.
    #[test]
    fn a_log_in_falling_time_order_sets_aside_only_the_lines_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(vec![dir.path().to_path_buf()], 0);
        let text: String = (0..3000)
            .map(|i| own_line(3599 - i, "a", "3.5.140.3", i as usize) + "\n")
            .collect();
        let attribute = |_| aws();
        let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
        let mut ingest = Ingest::new(parser(), 1, 5, 50, &attribute, &spool);
        ingest.choose_from = 16;
        ingest.begin_source(parser());
        ingest.feed(text.as_bytes()).unwrap();
        let own = ingest.own_lines();
        ingest.pen.hand_over(&spool);
        let texts: Vec<String> = own[0].iter().map(|l| spool.text(l).unwrap()).collect();
        // Its earliest, then its first two read.
        assert_eq!(texts.len(), 3);
        assert!(
            texts[0].contains("10:10:00 ") && texts[0].contains("SPT=2999 "),
            "{texts:?}"
        );
        let (_, bytes) = spool.set_aside().unwrap();
        assert!(bytes < 1000, "{bytes} bytes set aside for three lines");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// Each source's own lines are its earliest, then its first read, whatever order of
        /// time its lines were logged in, however many files they are in and however a file
        /// is split between readers; and a read that chooses among its lines as it goes (to
        /// keep few of a log read in no order of time, or of many hosts) keeps the same.
        #[test]
        fn own_lines_are_the_earliest_and_the_first_however_read(
            raw in proptest::collection::vec((0u32..3600, 0usize..20, 0usize..5), 1..160),
            files in proptest::collection::vec(0usize..160, 0..4),
            cuts in proptest::collection::vec(0usize..160, 0..4),
            choose_from in proptest::prop_oneof![proptest::strategy::Just(CHOOSE_FROM), 1usize..12],
            held_at_most in proptest::prop_oneof![proptest::strategy::Just(HELD_AT_MOST), 1usize..600],
        ) {
            let hosts: Vec<String> = (0..20).map(|h| format!("host{h:02}")).collect();
            let ips = ["3.5.140.2", "3.5.140.3", "3.5.140.4", "2600:1f18::1", "2600:1f18::2"];
            // Sources ending in an even digit keep few lines.
            let few = |ip: &str| ip.ends_with(['2', '4']);
            let lines: Vec<(u32, String, String)> = (raw.iter())
                .map(|&(second, host, ip)| (second, hosts[host].clone(), ips[ip].to_string()))
                .collect();
            let text: Vec<String> = (lines.iter().enumerate())
                .map(|(i, (second, host, ip))| own_line(*second, host, ip, i) + "\n")
                .collect();
            let want = own_lines_by_the_rule(&lines, few);
            let attribute = |ip: IpAddr| Attribution {
                few_lines: few(&ip.to_string()),
                ..aws()
            };
            let parser = || LineParser::new(&["INPUT-DROP:".to_string()], Zone::Utc, Utc::now());
            let reader = || {
                let mut ingest = Ingest::new(parser(), 1, 5, 50, &attribute, crate::spool::for_tests());
                ingest.choose_from = choose_from;
                ingest.held_at_most = held_at_most;
                ingest.begin_source(parser());
                ingest
            };
            // Bounds of pieces: files read one after another, or one file's parts.
            let bounds = |at: &[usize]| {
                let mut b: Vec<usize> = at.iter().map(|&i| i.min(text.len())).collect();
                b.extend([0, text.len()]);
                b.sort_unstable();
                b.dedup();
                b
            };
            // One reader, one file.
            let mut one = reader();
            one.feed(text.concat().as_bytes()).unwrap();
            proptest::prop_assert_eq!(&own_lines_read(one), &want);
            // One reader, the lines in several files read in turn.
            let mut in_turn = reader();
            for w in bounds(&files).windows(2) {
                in_turn.begin_source(parser());
                in_turn.feed(text[w[0]..w[1]].concat().as_bytes()).unwrap();
            }
            proptest::prop_assert_eq!(&own_lines_read(in_turn), &want);
            // One file split between readers, each later part taken in in turn.
            let pieces = bounds(&cuts);
            let mut main = reader();
            main.feed(text[pieces[0]..pieces[1]].concat().as_bytes()).unwrap();
            let forks: Vec<Ingest<'_>> = (pieces.windows(2).skip(1))
                .map(|w| {
                    let mut fork = main.fork();
                    fork.choose_from = choose_from;
                    fork.held_at_most = held_at_most;
                    fork.feed(text[w[0]..w[1]].concat().as_bytes()).unwrap();
                    // What may be let go of stays within its bound, a line past it at most.
                    proptest::prop_assert!(fork.held.len() < held_at_most + 200);
                    Ok(fork)
                })
                .collect::<Result<_, proptest::test_runner::TestCaseError>>()?;
            for fork in forks {
                main.absorb(fork);
                proptest::prop_assert!(main.held.len() < held_at_most + 200);
            }
            proptest::prop_assert_eq!(&own_lines_read(main), &want);
        }
    }
}
