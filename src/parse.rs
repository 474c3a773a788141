//! Netfilter LOG lines as syslog writes them, parsed into a borrowed [`Packet`].
//!
//! This module owns the line format only: syslog framing (optional `<N>` priority, BSD or
//! RFC 3339 timestamp, host, the `kernel:` tag, the kernel's `[uptime]` stamp), the configured
//! LOG prefixes and the `KEY=VALUE` fields the kernel prints after them. It does not read files,
//! count lines or decide what a packet means; that is `ingest`'s job.
//!
//! Only the outer packet counts: an ICMP error carries the packet that caused it inside
//! `[SRC=... DST=... ]`, and those addresses are the operator's own, never the attacker's.
//!
//! The rules, which `tests/differential.rs` restates as a plain reference reader:
//! - The prefix that counts is the first configured prefix in the kernel's message (after
//!   `kernel:` and the uptime stamp); of prefixes starting at the same place (`DROP ` and
//!   `DROP INVALID `), the longest. Words between it and the first field (`IN=`) are passed
//!   over, so a prefix configured shorter than the rule's still reads the line.
//! - Every value a report may show is checked against the shape the kernel prints it in:
//!   `PROTO=` is one of the kernel's names or a number up to 255, ports are digits, `MAC=`
//!   is hex and colons, the host name is ASCII letters, digits and `. _ - :`. A line with any
//!   other shape was not written by the kernel (anyone may log a line tagged `kernel:`), so it
//!   is malformed: counted, never reported, and its text never reaches a message.
//! - An IPv4-mapped IPv6 address (`::ffff:3.5.140.2`) is the IPv4 address, but for the
//!   source of an IPv6 packet, which no IPv4 host sent (see [`source_of`]).

use std::net::IpAddr;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use memchr::memmem;

use crate::clock::Zone;

/// One dropped packet, borrowing its text fields from the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Seconds since the Unix epoch (UTC) of the syslog timestamp.
    pub time: i64,
    /// The host that logged the line (syslog's HOSTNAME field).
    /// Only ASCII letters, digits and `. _ - :` (a line with any other host is malformed).
    pub host: &'a [u8],
    /// Which configured prefix matched (index into the prefixes the parser was built with).
    pub prefix: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// As the kernel prints it: `TCP`, `UDP`, `UDPLITE`, `ICMP`, `ICMPv6`, `AH`, `ESP`, or a
    /// protocol number (checked: nothing else gets here).
    pub proto: &'a str,
    pub spt: Option<u16>,
    pub dpt: Option<u16>,
    /// The packet answers traffic the operator's host started (backscatter): TCP with ACK or
    /// RST set, an ICMP error or echo reply. Not an attack by its sender.
    pub answer: bool,
    /// The packet left the operator's host: logged with an empty `IN=` (the OUTPUT chain, as
    /// ufw logs the outgoing packets it blocks, with the same prefix) or with `IN=lo` (only
    /// the host itself sends on loopback), so its source is the host itself; or its source is
    /// its destination, the host's own address (forged, as the raw table may log before the
    /// kernel drops it). Never an attack by its sender.
    pub outgoing: bool,
    /// How many packets the line stands for: 1, or N for rsyslog's `message repeated N
    /// times: [ ... ]`, which stands for N more of the line before it.
    pub copies: u32,
}

/// What one log line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A dropped packet with a configured prefix.
    Packet(Packet<'a>),
    /// No configured prefix in a kernel message: someone else's log line.
    Other,
    /// A configured prefix, but the line is not a whole netfilter LOG line.
    Malformed(&'static str),
}

/// Seconds a line's stamp may lie ahead of now: a day, for clocks that disagree a little.
/// Later than that, a line is not this year's (BSD stamps) or not to be trusted at all.
pub const CLOCK_SLACK: i64 = 86_400;

/// How far a log's clock may disagree with this host's, or its lines lag, where it decides
/// which pass of the hour a zone's clock shows twice a line is in: ten minutes, as clocks
/// that drift a little are told apart from a log ahead.
pub const PASS_SLACK: i64 = 600;

/// Seconds a counted line's stamp may lie ahead of now before the operator is told: more than
/// hosts' clocks drift apart, less than any zone's offset from another.
pub const CLOCK_AHEAD_TOLD: i64 = 600;

/// Parses lines for a fixed set of LOG prefixes, inferring the year of BSD timestamps
/// from `now` in `zone`.
#[derive(Clone)]
pub struct LineParser {
    prefixes: Vec<memmem::Finder<'static>>,
    zone: Zone,
    now: DateTime<Utc>,
    /// The last timestamp text and its value: a busy log repeats the same second many times.
    cached_stamp: Vec<u8>,
    cached_time: i64,
    /// The time of the line read last, which tells which of the two readings of a wall-clock
    /// time in the hour repeated in autumn a line has (syslog writes a file in time order);
    /// `None` when nothing came before that this reader knows of.
    last: Option<i64>,
    /// When the file being read was last written, as far as it tells (see
    /// [`LineParser::written_at`]): a year-less stamp takes its year from that, not from now.
    written: Option<i64>,
    /// When a run last read the source up to where this read resumes it (see
    /// [`LineParser::not_before`]).
    floor: Option<i64>,
    /// What the lines read so far leave for the next.
    memo: Memo,
}

/// What the last lines read leave for the next: a host's lines repeat their interfaces, MAC
/// and destination address, so each is read and checked once per distinct text.
#[derive(Clone, Default)]
struct Memo {
    dst: LastAddress,
    /// The fields' head up to `SRC=` (`IN=eth0 OUT= MAC=… `, ending in its space) of a line
    /// whose head read well, and where in it the MAC value lies (`None`: no `MAC=`).
    head: Vec<u8>,
    head_mac: Option<(usize, usize)>,
    /// The text between the timestamp and the message (` web1 kernel: `, with its spaces) of
    /// the last line that was a packet, and where in it the host name lies.
    syslog: Vec<u8>,
    syslog_host: (usize, usize),
}

/// A head read from the memo: the MAC value, whether `MAC=` was there, and the text from
/// `SRC=` on.
type Head<'a> = (Option<&'a [u8]>, bool, &'a [u8]);

impl Memo {
    /// For text after a timestamp that starts with the remembered host and tag: the host
    /// and the message, as reading them again would give them (the message with its leading
    /// spaces passed over).
    fn syslog_of<'a>(&self, after_time: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        if self.syslog.is_empty() || !after_time.starts_with(&self.syslog) {
            return None;
        }
        let (from, to) = self.syslog_host;
        Some((
            &after_time[from..to],
            trim_start(&after_time[self.syslog.len()..]),
        ))
    }

    /// Remembers the host and tag of a line that was a packet: `after_time` up to `message`,
    /// which lies at its end, and the host within it.
    fn keep_syslog(&mut self, after_time: &[u8], host: &[u8], message: &[u8]) {
        let len = after_time.len() - message.len();
        let host_at = host.as_ptr() as usize - after_time.as_ptr() as usize;
        self.syslog.clear();
        self.syslog.extend_from_slice(&after_time[..len]);
        self.syslog_host = (host_at, host_at + host.len());
    }

    /// For fields starting with the remembered head: the MAC value, whether `MAC=` was there,
    /// and the text from `SRC=` on, as reading the head again would give them.
    fn head_of<'a>(&self, text: &'a [u8]) -> Option<Head<'a>> {
        if self.head.is_empty() || !text.starts_with(&self.head) {
            return None;
        }
        let rest = &text[self.head.len()..];
        if self.head_mac.is_none() && rest.starts_with(b"MAC=") {
            // Read afresh, so that a head with a MAC is remembered instead.
            return None;
        }
        let mac = self.head_mac.map(|(from, to)| &text[from..to]);
        Some((mac.filter(|m| !m.is_empty()), mac.is_some(), rest))
    }

    /// Remembers `text[..len]` as a head that read well, its MAC value at `mac`, when it ends
    /// in the space after its last value (so that no longer value can start with it).
    fn keep_head(&mut self, text: &[u8], len: usize, mac: Option<(usize, usize)>) {
        if len == 0 || text[len - 1] != b' ' {
            return;
        }
        self.head.clear();
        self.head.extend_from_slice(&text[..len]);
        self.head_mac = mac;
    }
}

/// An address and the text it was read from, to spare reading the same text again.
#[derive(Clone, Default)]
struct LastAddress {
    text: Vec<u8>,
    address: Option<IpAddr>,
}

impl LastAddress {
    /// [`address`] of `text`, remembered for the next call.
    #[inline(always)]
    fn read(&mut self, text: &[u8]) -> Option<IpAddr> {
        if let Some(known) = self.address
            && same_bytes(text, &self.text)
        {
            return Some(known);
        }
        let read = address(text)?;
        self.text.clear();
        self.text.extend_from_slice(text);
        self.address = Some(read);
        Some(read)
    }
}

/// Where `byte` first is in a short text (a word, a stamp): a plain loop, as a vectorised
/// search costs more to set up than it saves on a few bytes.
fn find_byte(byte: u8, text: &[u8]) -> Option<usize> {
    text.iter().position(|&b| b == byte)
}

/// Where the `]` closing the kernel's uptime stamp is, when only digits, dots and spaces come
/// before it: one pass, looking at each byte once.
fn uptime_end(after: &[u8]) -> Option<usize> {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte that is zero, and of no other (no borrow crosses bytes).
    let zero = |v: u64| !(((v & LOW7) + LOW7) | v) & HIGH;
    let splat = |b: u8| u64::from_ne_bytes([b; 8]);
    let mut at = 0;
    while let Some(chunk) = after.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A byte below 0x80 is a digit when, xored with `0`, it is at most 9: adding 0x76
        // sets its high bit otherwise, and cannot carry out of a byte below 0x80.
        let digits = !(((word ^ splat(b'0')) & LOW7) + splat(0x76)) & !word & HIGH;
        let allowed = digits | zero(word ^ splat(b'.')) | zero(word ^ splat(b' '));
        let close = zero(word ^ splat(b']'));
        let stop = close | (!allowed & HIGH);
        if stop != 0 {
            let first = stop.trailing_zeros();
            return (close >> first & 1 == 1).then_some(at + first as usize / 8);
        }
        at += 8;
    }
    uptime_end_bytes(&after[at..]).map(|end| at + end)
}

/// [`uptime_end`] a byte at a time, for the last few bytes of a text.
fn uptime_end_bytes(after: &[u8]) -> Option<usize> {
    for (i, &b) in after.iter().enumerate() {
        match b {
            b']' => return Some(i),
            b'0'..=b'9' | b'.' | b' ' => {}
            _ => return None,
        }
    }
    None
}

/// Where the first space is in a short text: eight bytes at a time (a word's end is found in
/// one or two steps, not one step and one branch per byte), the rest one by one.
fn find_space(text: &[u8]) -> Option<usize> {
    find_either(b' ', b' ', text)
}

/// The words of a text split at each space, as `split(|b| *b == b' ')` gives them (empty ones
/// between two spaces too), each end found by [`find_space`].
fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match find_space(text) {
            Some(end) => {
                rest = Some(&text[end + 1..]);
                Some(&text[..end])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Where the first `a` or `b` is in a short text, eight bytes at a time.
fn find_either(a: u8, b: u8, text: &[u8]) -> Option<usize> {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte equal to the one sought is zero once xored with it: the lowest such byte sets
    // its high bit (bits above it may be set falsely, never below).
    let zero = |word: u64| word.wrapping_sub(LOW) & !word & HIGH;
    let (all_a, all_b) = (u64::from_ne_bytes([a; 8]), u64::from_ne_bytes([b; 8]));
    let mut chunks = text.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let found = zero(word ^ all_a) | zero(word ^ all_b);
        if found != 0 {
            // The lowest bit set is a true one of either.
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    (chunks.remainder().iter())
        .position(|&c| c == a || c == b)
        .map(|i| at + i)
}

/// Equality of short texts (a timestamp, an address, a protocol or host name), compared in
/// place rather than through a call: up to 3 bytes by their first, middle and last, from 4 to
/// 16 as two words that may overlap, without a loop.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(text: &[u8], at: usize) -> [u8; N] {
        text.get(at..at + N)
            .and_then(|w| w.try_into().ok())
            .unwrap_or([0; N])
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        _ => a == b,
    }
}

/// A line's text after its leading NUL bytes and its `<N>` priority, if any; `Err` for a
/// priority that is not one.
fn after_priority(line: &[u8]) -> Result<&[u8], ()> {
    // A crash can leave a block of NUL bytes where the file grew and its data never came:
    // the line written after them, on the same line, is whole.
    let rest = &line[line.iter().take_while(|b| **b == 0).count()..];
    // `<N>` priority, as forwarded syslog and some collectors keep it.
    let Some(after) = rest.strip_prefix(b"<") else {
        return Ok(rest);
    };
    match memchr::memchr(b'>', &after[..after.len().min(4)]) {
        Some(end) if end > 0 && after[..end].iter().all(u8::is_ascii_digit) => {
            Ok(&after[end + 1..])
        }
        _ => Err(()),
    }
}

/// The host a syslog line names and the text after it (its tag and message), however the
/// line is stamped: what a journal entry and a file's line of the same packet share. `None`
/// for a line without a syslog head.
pub(crate) fn host_and_rest(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, rest) = split_stamp(after_priority(line).ok()?)?;
    token(rest)
}

/// The syslog stamp at the start of `text` and the text after it: RFC 3339 up to its space,
/// or BSD's `Mmm dd HH:MM:SS` (15 bytes, the day padded with a space) followed by one.
fn split_stamp(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = find_space(text)?;
    if text.first()?.is_ascii_digit() {
        return Some(text.split_at(end));
    }
    if text.len() < 16 || text[15] != b' ' {
        return None;
    }
    Some(text.split_at(15))
}

impl LineParser {
    pub fn new(prefixes: &[String], zone: Zone, now: DateTime<Utc>) -> Self {
        Self {
            prefixes: prefixes
                .iter()
                .map(|p| memmem::Finder::new(p.as_bytes()).into_owned())
                .collect(),
            zone,
            now,
            cached_stamp: Vec::new(),
            cached_time: 0,
            last: None,
            written: None,
            floor: None,
            memo: Memo::default(),
        }
    }

    /// The text read next was written after `time` (less [`PASS_SLACK`]): a run read the
    /// source up to where this read resumes it then. Of the two readings of a time in the
    /// hour a zone's clock shows twice, one before that is not taken when the other is not:
    /// a run that read to 02:35 summer time before the clock went back, and resumes after
    /// it, reads an appended `02:10` as winter time's (the half-hour rule took it for a host
    /// behind, and dated it before the run that had read the file). `None`: nothing known.
    pub fn not_before(&mut self, time: Option<i64>) {
        self.floor = time.map(|t| t.saturating_sub(PASS_SLACK));
        self.cached_stamp.clear();
    }

    /// Reads on after a line stamped `time` (`None`: after nothing known), as a reader that
    /// resumes a file, or starts in the middle of one, must: the time read last decides
    /// which hour a wall-clock time in the repeated hour falls in.
    /// A time after the run began is not taken: it came from a clock ahead.
    pub fn follows(&mut self, time: Option<i64>) {
        self.last = time.filter(|t| *t <= self.now.timestamp());
        self.cached_stamp.clear();
    }

    /// The file read next was last modified at `modified` (`None`: unknown, and nothing is
    /// taken from it; nor from a time less than a day old without a last line), and its last
    /// packet line is stamped `last_line` (see
    /// [`LineParser::time_near`]). A year-less stamp in it takes the latest year that does
    /// not put it after the later of the two (by more than clocks disagree), not after now:
    /// the January lines of a file last written in December are that January's, not this
    /// one's; the lines of a file whose last line is stamped in the new year (a host in a
    /// zone ahead, on New Year's Eve) are read from there. The file's time counts up to now
    /// (a clock set back since, or pinned), its last line up to a day ahead.
    pub fn written_at(&mut self, modified: Option<i64>, last_line: Option<i64>) {
        let now = self.now.timestamp();
        // Without a last line to agree, a time less than a day old says nothing a file being
        // written does not (a network file system's clock behind, lines written after it was
        // looked at would move a year back); an older one is a file no longer written.
        let modified = modified.filter(|m| last_line.is_some() || *m < now - CLOCK_SLACK);
        self.written = modified.map(|m| {
            m.min(now)
                .max(last_line.unwrap_or(i64::MIN))
                .min(now + CLOCK_SLACK)
        });
        self.cached_stamp.clear();
    }

    /// The time of a line that carries a prefix, for a line written about `near`: of the
    /// years a year-less stamp may be in, the one within a day of `near`, if any; otherwise
    /// as [`LineParser::time_to_follow`] reads it, without its bound.
    pub fn time_near(&self, line: &[u8], near: i64) -> Option<i64> {
        self.find_prefix(line)?;
        let (stamp, _) = split_stamp(after_priority(line).ok()?)?;
        if !stamp[0].is_ascii_digit() {
            let year = (self.zone).year_of(DateTime::from_timestamp(near, 0).unwrap_or(self.now));
            let (month, day, (h, m, s)) = bsd_fields(stamp)?;
            let found = (year - 1..=year + 1).find_map(|y| {
                let local = NaiveDate::from_ymd_opt(y, month, day)?.and_hms_opt(h, m, s)?;
                let (t, _) = self.zone.reading(local, None)?;
                ((t - near).abs() <= CLOCK_SLACK).then_some(t)
            });
            if found.is_some() {
                return found;
            }
        }
        self.stamp_value(stamp, None).map(|(t, _)| t)
    }

    /// The time of a line's syslog stamp (after an optional `<N>` priority), read as if it
    /// followed a line stamped `after`, and whether that reading depended on `after` (a
    /// wall-clock time the zone's clock showed twice). Whatever the line says after its
    /// stamp; nothing of the reader changes.
    pub fn stamp_time(&self, line: &[u8], after: Option<i64>) -> Option<(i64, bool)> {
        let (stamp, _) = split_stamp(after_priority(line).ok()?)?;
        self.stamp_value(stamp, after)
    }

    /// The time a stamp [`split_stamp`] found says, read as if it followed a line stamped
    /// `after`, and whether that reading depended on `after`.
    fn stamp_value(&self, stamp: &[u8], after: Option<i64>) -> Option<(i64, bool)> {
        if stamp[0].is_ascii_digit() {
            rfc3339(stamp).map(|t| (t, false))
        } else {
            self.bsd_after(stamp, after)
        }
    }

    /// Reads on after `text`, the whole lines before where a read resumes a file, as if it
    /// had read them (see [`LineParser::time_to_follow`]), without counting them: what the
    /// state keeps of an earlier read (its last packet counted, told by
    /// [`LineParser::follows`]) may lie long before the lines it read last, and a clock that
    /// went back after it would go unseen. With `from_start` (`text` is all the file holds
    /// before), the lines say all a read of the whole file would know; otherwise the later of
    /// the two is followed.
    pub fn follows_lines(&mut self, text: &[u8], from_start: bool) {
        if !self.zone.may_repeat_times() {
            return;
        }
        let known = self.last;
        self.last = None;
        // These lines were read by the run the floor comes from, so written before it (see
        // [`LineParser::not_before`]): held to it, a first pass's lines were taken for the
        // second's, and the new lines after them too, dated an hour late.
        let floor = self.floor.take();
        // Lines end at a newline or a crash's NUL bytes, as the reader has it.
        for line in text.split(|b| *b == b'\n' || *b == 0) {
            if let Some((t, _)) = self
                .find_prefix(line)
                .and_then(|_| self.stamp_time(line, self.last))
                .filter(|(t, _)| *t <= self.now.timestamp())
            {
                self.last = Some(t);
            }
        }
        if !from_start || self.last.is_none() {
            self.last = self.last.max(known);
        }
        self.floor = floor;
        self.cached_stamp.clear();
    }

    /// The time the next line is read after (see [`LineParser::follows`]).
    pub fn followed(&self) -> Option<i64> {
        self.last
    }

    /// Whether [`LineParser::follows_lines`] has anything to learn: a zone whose clock may
    /// show a time twice.
    pub fn reads_on_from_lines(&self) -> bool {
        self.zone.may_repeat_times()
    }

    /// [`LineParser::stamp_time`] of a line a read takes as the one before the next (see
    /// [`LineParser::follows`]): one it parses (a configured prefix in it), stamped no later
    /// than the run began. `None` for any other line, which says nothing of where a log is.
    pub fn time_to_follow(&self, line: &[u8]) -> Option<(i64, bool)> {
        self.find_prefix(line)?;
        self.stamp_time(line, None)
            .filter(|(t, _)| *t <= self.now.timestamp())
    }

    /// The prefixes, as finders, for scanning whole buffers before splitting lines.
    pub fn prefix_finders(&self) -> &[memmem::Finder<'static>] {
        &self.prefixes
    }

    /// Parses one line, without its trailing newline (a trailing `\r` is ignored).
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Line<'a> {
        match self.find_prefix(line) {
            Some((prefix, at)) => self.parse_found(line, prefix, at, true),
            None => Line::Other,
        }
    }

    /// Parses a line in which prefix number `prefix` was already found at byte `prefix_at`
    /// (the first configured prefix in the line, the longest of those found there), sparing a
    /// second search. `again`: whether a prefix may be in the line elsewhere too; when not,
    /// none is looked for after the fields begin.
    pub fn parse_found<'a>(
        &mut self,
        line: &'a [u8],
        prefix: usize,
        prefix_at: usize,
        again: bool,
    ) -> Line<'a> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(rest) = after_priority(line) else {
            return Line::Malformed("bad syslog priority");
        };
        let Some((time, after_time)) = self.timestamp(rest) else {
            return Line::Malformed("no syslog timestamp");
        };
        // A host's lines repeat its name and the kernel's tag: text equal to that of the last
        // packet read is not read again.
        let known = self.memo.syslog_of(after_time);
        let (host, message) = match known {
            Some(known) => known,
            None => {
                let Some((host, after_host)) = token(after_time) else {
                    return Line::Malformed("no host name");
                };
                let Some((tag, message)) = token(after_host) else {
                    return Line::Malformed("no message");
                };
                if tag != b"kernel:" {
                    // The prefix text in another program's message (an SSH user name, a web
                    // path): not a packet, and not a broken one either.
                    return Line::Other;
                }
                (host, trim_start(message))
            }
        };
        let syslog_message = message;
        let mut message = message;
        if let Some(after) = message.strip_prefix(b"[") {
            // The kernel's uptime stamp, `[12345.678901]` or `[  341.399450]`.
            if let Some(end) = uptime_end(after) {
                message = trim_start(&after[end + 1..]);
            }
        }
        let message_at = line.len() - message.len();
        // rsyslog's `message repeated N times: [ <the message>]` (`$RepeatedMsgReduction`,
        // on in Debian's and Ubuntu's rsyslog.conf): N more packets like the line before.
        // Its closing bracket is no part of the fields.
        let copies = (message.first() == Some(&b'm'))
            .then(|| repeated(message))
            .flatten();
        let (line, message) = match (copies, line.strip_suffix(b"]")) {
            (Some(_), Some(inner)) => (inner, &message[..message.len() - 1]),
            _ => (line, message),
        };
        let copies = copies.unwrap_or(1);
        let len = self.prefixes[prefix].needle().len();
        // The prefix found first may sit in the host, the tag or the uptime stamp: the one
        // that counts is the first in the message.
        let (prefix, fields_at) = if prefix_at >= message_at && prefix_at + len <= line.len() {
            (prefix, prefix_at + len)
        } else {
            match self.find_prefix(message) {
                Some((found, at)) => (found, message_at + at + self.prefixes[found].needle().len()),
                None => return Line::Other,
            }
        };
        if known.is_none() && !is_host_name(host) {
            return Line::Malformed("bad host name");
        }
        let field_text = first_field(&line[fields_at..]);
        // A prefix again after the fields began: a line cut short (a writer killed mid-line,
        // a file cut back by a crash) with the next line written on after it. Neither packet
        // can be told whole, and the text is no evidence of either.
        if again && self.prefixes.iter().any(|f| f.find(field_text).is_some()) {
            return Line::Malformed("a line cut short, with the next one run on after it");
        }
        match fields(field_text, &mut self.memo) {
            Ok(f) => {
                if known.is_none() {
                    self.memo.keep_syslog(after_time, host, syslog_message);
                }
                Line::Packet(Packet {
                    answer: f.tcp_flag.unwrap_or_else(|| is_answer(field_text, f.proto)),
                    outgoing: field_text.starts_with(b"IN= ")
                        || field_text.starts_with(b"IN=lo ")
                        || f.src == f.dst,
                    copies,
                    time,
                    host,
                    prefix,
                    src: source_of(f.src, f.dst),
                    dst: f.dst,
                    proto: f.proto,
                    spt: f.spt,
                    dpt: f.dpt,
                })
            }
            Err(reason) => Line::Malformed(reason),
        }
    }

    /// The first configured prefix in the text, and where; of prefixes starting at the same
    /// place (`DROP ` and `DROP INVALID `), the longest, so that the answer never depends on
    /// the order they were configured in or found in.
    fn find_prefix(&self, text: &[u8]) -> Option<(usize, usize)> {
        self.prefixes
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.find(text).map(|at| (i, at)))
            .min_by_key(|&(i, at)| (at, std::cmp::Reverse(self.prefixes[i].needle().len()), i))
    }

    /// A BSD (`Jan  5 23:51:25`) or RFC 3339 timestamp at the start of `text`, and the rest.
    fn timestamp<'a>(&mut self, text: &'a [u8]) -> Option<(i64, &'a [u8])> {
        let (stamp, rest) = split_stamp(text)?;
        if same_bytes(stamp, &self.cached_stamp) {
            return Some((self.cached_time, rest));
        }
        let (time, _) = self.stamp_value(stamp, self.last)?;
        self.cached_stamp.clear();
        self.cached_stamp.extend_from_slice(stamp);
        self.cached_time = time;
        // A line stamped after the run began came from a clock ahead (or forged one): it
        // says nothing of where in the log the lines after it are.
        if time <= self.now.timestamp() {
            self.last = Some(time);
        }
        Some((time, rest))
    }

    /// BSD syslog timestamps carry no year and no zone: the zone is configured, and the year
    /// is the latest one that does not put the line in the future (so December lines read
    /// in January belong to last year). A time the clock showed twice is the one nearer a
    /// line stamped `after` (see [`Zone::reading`]); the flag says it was such a time.
    fn bsd_after(&self, stamp: &[u8], after: Option<i64>) -> Option<(i64, bool)> {
        let (month, day, (h, m, s)) = bsd_fields(stamp)?;
        // No line is later than the file it is in was last written, nor than now.
        let base = self.written.unwrap_or(self.now.timestamp());
        let year = (self.zone).year_of(DateTime::from_timestamp(base, 0).unwrap_or(self.now));
        let limit = base + CLOCK_SLACK;
        // Next year only just ahead: `Jan  1 00:00:05` from a host whose clock is a little
        // ahead, read seconds before midnight on Dec 31, is in a few seconds, not a year
        // ago; a `Jan  1 10:00` read at noon on Dec 31 is last January's.
        let next_limit = base + 3600;
        // Every date but Feb 29 is this year's or last; Feb 29 is the last leap year's, which
        // may be up to eight years back (2096 read in 2104).
        for y in (year - 8..=year + 1).rev() {
            let Some(local) =
                NaiveDate::from_ymd_opt(y, month, day).and_then(|d| d.and_hms_opt(h, m, s))
            else {
                continue;
            };
            // Neither reading of a time shown twice lies after the file was written, nor
            // (when the other does not) before a run read on from here.
            let bounds = (self.floor, Some(base.saturating_add(PASS_SLACK)));
            let (t, twice) = self.zone.reading_within(local, after, bounds)?;
            if t <= if y > year { next_limit } else { limit } {
                return Some((t, twice));
            }
        }
        None
    }
}

/// A BSD stamp's month, day and time of day (`Jan  5 23:51:25`); `None` for any other text.
fn bsd_fields(stamp: &[u8]) -> Option<(u32, u32, (u32, u32, u32))> {
    let month = match stamp.get(0..3)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    if stamp.len() < 15 || stamp[3] != b' ' || stamp[6] != b' ' {
        return None;
    }
    let day = match (stamp[4], stamp[5]) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        (t, d) if t.is_ascii_digit() && d.is_ascii_digit() => {
            u32::from(t - b'0') * 10 + u32::from(d - b'0')
        }
        _ => return None,
    };
    Some((month, day, hms(&stamp[7..15])?))
}

/// Dotted-quad IPv4 from bytes, the common case done without the general parser; anything
/// else (IPv6, odd forms) is left to `std`.
#[inline(always)]
fn ipv4(text: &[u8]) -> Option<std::net::Ipv4Addr> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        // An octet at a time: up to three digits, then its dot; not a branch on every byte's
        // kind.
        let start = at;
        let mut value = 0u32;
        while at - start < 3 {
            match text.get(at).map(|b| b.wrapping_sub(b'0')) {
                Some(d) if d <= 9 => value = value * 10 + u32::from(d),
                _ => break,
            }
            at += 1;
        }
        // No leading zeros (std reads none).
        if at == start || value > 255 || (at - start > 1 && text[start] == b'0') {
            return None;
        }
        *octet = value as u8;
        if n < 3 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
    }
    (at == text.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// Each byte's value as a hex digit, either case; 255 for a byte that is none: one load per
/// digit of an IPv6 address, not a test of its ranges.
const HEX: [u8; 256] = {
    let mut table = [255u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            d @ b'A'..=b'F' => d - b'A' + 10,
            _ => 255,
        };
        b += 1;
    }
    table
};

/// IPv6 as the kernel prints it: groups of up to four hex digits, one `::` at most. `None`
/// for anything else (an embedded IPv4 address, a zone, junk), which is left to `std`; what
/// this reads, `std` reads the same (a test holds it to that).
fn ipv6(text: &[u8]) -> Option<std::net::Ipv6Addr> {
    let len = text.len();
    if !(2..=39).contains(&len) {
        return None;
    }
    // Groups before the gap, and after it.
    let (mut head, mut tail) = ([0u16; 8], [0u16; 8]);
    let (mut heads, mut tails, mut gap) = (0usize, 0usize, false);
    let mut i = 0;
    if text.starts_with(b"::") {
        gap = true;
        i = 2;
    }
    while i < len {
        let (mut value, mut digits) = (0u16, 0);
        while i < len && digits < 4 {
            let d = HEX[usize::from(text[i])];
            if d > 15 {
                break;
            }
            value = value << 4 | u16::from(d);
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        if gap {
            if tails == 7 {
                return None;
            }
            tail[tails] = value;
            tails += 1;
        } else {
            if heads == 8 {
                return None;
            }
            head[heads] = value;
            heads += 1;
        }
        if i == len {
            break;
        }
        if text[i] != b':' {
            return None;
        }
        i += 1;
        if text.get(i) == Some(&b':') {
            if gap {
                return None;
            }
            gap = true;
            i += 1;
        } else if i == len {
            return None;
        }
    }
    if (gap && heads + tails > 7) || (!gap && heads != 8) {
        return None;
    }
    head[8 - tails..].copy_from_slice(&tail[..tails]);
    Some(std::net::Ipv6Addr::from(head))
}

/// `HH:MM:SS`
fn hms(text: &[u8]) -> Option<(u32, u32, u32)> {
    if text.len() != 8 || text[2] != b':' || text[5] != b':' {
        return None;
    }
    Some((two(&text[0..2])?, two(&text[3..5])?, two(&text[6..8])?))
}

fn two(text: &[u8]) -> Option<u32> {
    match text {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// `2021-03-12T14:10:18Z`, `2015-03-07T05:09:30.045015+02:00`: rsyslog's high-precision format.
fn rfc3339(stamp: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(stamp).ok()?;
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    Some(parsed.timestamp())
}

/// The next space-separated token and the rest after it (leading spaces skipped).
fn token(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let text = trim_start(text);
    if text.is_empty() {
        return None;
    }
    match find_space(text) {
        Some(end) => Some((&text[..end], &text[end..])),
        None => Some((text, &[])),
    }
}

fn trim_start(text: &[u8]) -> &[u8] {
    let skip = text.iter().take_while(|b| **b == b' ').count();
    &text[skip..]
}

/// The fields a packet is read from. The interfaces and the MAC address are checked (they
/// must have the kernel's shape) but not kept.
struct Fields<'a> {
    mac: Option<&'a [u8]>,
    src: IpAddr,
    dst: IpAddr,
    proto: &'a str,
    spt: Option<u16>,
    dpt: Option<u16>,
    /// For TCP, whether ACK or RST is among the outer packet's words, when the reader
    /// already looked (see [`is_answer`]).
    tcp_flag: Option<bool>,
}

/// Whether a packet answers the operator's own traffic, from the outer packet's fields (a
/// quoted packet `[SRC=…` ends them): TCP flags ACK or RST; ICMP echo reply or an error
/// (unreachable, source quench, redirect, time exceeded, parameter problem) and the
/// timestamp, information and mask replies; ICMPv6 errors (types 1–4), echo reply,
/// multicast listener discovery (130–132, 143) and neighbour discovery (133–137), which only
/// a host on the same link sends (they are never routed) and which answer or serve the
/// host's own traffic.
fn is_answer(fields: &[u8], proto: &str) -> bool {
    let words = fields
        .split(|b| *b == b' ')
        .take_while(|w| w.first() != Some(&b'['));
    match proto {
        // Most lines carry neither flag: two SIMD searches rule both out before the words
        // are split.
        "TCP" | "6" => {
            static ACK: std::sync::LazyLock<memmem::Finder<'static>> =
                std::sync::LazyLock::new(|| memmem::Finder::new(b"ACK"));
            static RST: std::sync::LazyLock<memmem::Finder<'static>> =
                std::sync::LazyLock::new(|| memmem::Finder::new(b"RST"));
            (ACK.find(fields).is_some() || RST.find(fields).is_some())
                && words.into_iter().any(|w| w == b"ACK" || w == b"RST")
        }
        "ICMP" | "1" => {
            icmp_type(words).is_some_and(|t| matches!(t, 0 | 3 | 4 | 5 | 11 | 12 | 14 | 16 | 18))
        }
        "ICMPv6" | "58" => icmp_type(words).is_some_and(|t| matches!(t, 1..=4 | 129..=137 | 143)),
        _ => false,
    }
}

/// Whether a kept log line is an answer (see [`is_answer`]), read from its first `IN=` on:
/// for judging what a source's lines show once they are kept, when the packets themselves
/// are no longer at hand.
pub(crate) fn is_answer_line(line: &[u8]) -> bool {
    let Some(fields) = kept_fields(line) else {
        return false;
    };
    let proto = own_value(fields, b"PROTO=").and_then(|p| std::str::from_utf8(p).ok());
    proto.is_some_and(|p| is_answer(fields, p))
}

/// A kept log line's packet fields, from its first `IN=` on.
fn kept_fields(line: &[u8]) -> Option<&[u8]> {
    memmem::find(line, b"IN=").map(|at| &line[at..])
}

/// The value of the first word `name` of a packet's own `fields`, before the packet an ICMP
/// error quotes (`[SRC=…`).
fn own_value<'a>(fields: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    (words(fields).take_while(|w| w.first() != Some(&b'['))).find_map(|w| w.strip_prefix(name))
}

/// A kept log line's packet as a flow: its `PROTO=` as the kernel wrote it, and its source
/// and destination ports, neither 0 (see [`is_answer_line`] for how a kept line is read).
pub(crate) fn kept_flow(line: &[u8]) -> Option<(&str, u16, u16)> {
    let fields = kept_fields(line)?;
    let port = |name: &[u8]| {
        let digits = std::str::from_utf8(own_value(fields, name)?).ok()?;
        digits.parse::<u16>().ok().filter(|p| *p > 0)
    };
    let proto = std::str::from_utf8(own_value(fields, b"PROTO=")?).ok()?;
    Some((proto, port(b"SPT=")?, port(b"DPT=")?))
}

/// A kept log line's packet's destination, its `DST=` as the kernel wrote it (none where the
/// report hides it: a value redacted is no address).
pub(crate) fn kept_destination(line: &[u8]) -> Option<std::net::IpAddr> {
    let fields = kept_fields(line)?;
    std::str::from_utf8(own_value(fields, b"DST=")?)
        .ok()?
        .parse()
        .ok()
}

/// The value of the first `TYPE=` word.
fn icmp_type<'a>(mut words: impl Iterator<Item = &'a [u8]>) -> Option<u8> {
    let digits = words.find_map(|w| w.strip_prefix(b"TYPE="))?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A syslog host name as it may reach a report: a name, or an address, in ASCII letters,
/// digits and `. _ - :`. Anything else (control characters, bidi marks, quotes) is not a
/// host a kernel line came from.
fn is_host_name(host: &[u8]) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// The protocol names the kernel's LOG target prints; any other protocol it prints as a number.
pub(crate) const PROTOCOLS: [&str; 7] = ["TCP", "UDP", "UDPLITE", "ICMP", "ICMPv6", "AH", "ESP"];

/// `PROTO=` as the kernel prints it: a known name or a protocol number (0 to 255, without
/// a leading zero: `06` is not how the kernel writes TCP, and is not read as TCP).
fn is_protocol(proto: &str) -> bool {
    PROTOCOLS.contains(&proto)
        || (!proto.is_empty()
            && proto.len() <= 3
            && proto.bytes().all(|b| b.is_ascii_digit())
            && (proto == "0" || !proto.starts_with('0'))
            && proto.parse::<u16>().is_ok_and(|n| n <= 255))
}

/// `MAC=` as the kernel prints it: hex bytes joined by `:`.
fn is_mac(mac: &[u8]) -> bool {
    mac.iter().all(|b| b.is_ascii_hexdigit() || *b == b':')
}

/// N of a message that starts `message repeated N times: [` (rsyslog's words for N more of
/// the message before), N from 1 to a billion; `None` for any other message.
fn repeated(message: &[u8]) -> Option<u32> {
    let rest = message.strip_prefix(b"message repeated ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=9).contains(&digits) || !rest[digits..].starts_with(b" times: [") {
        return None;
    }
    let n: u32 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    (n > 0).then_some(n)
}

/// The text from the first field (`IN=`) on: words between the prefix and it (a prefix
/// configured shorter than the rule's, `DROP ` for `DROP INVALID `) are passed over. The first
/// word that is a field must be `IN=`.
fn first_field(text: &[u8]) -> &[u8] {
    let mut text = trim_start(text);
    loop {
        if text.starts_with(b"IN=") {
            return text;
        }
        let end = find_space(text).unwrap_or(text.len());
        if end == 0 || find_byte(b'=', &text[..end]).is_some() {
            return text;
        }
        text = trim_start(&text[end..]);
    }
}

/// The kernel's `IN=eth0 OUT= MAC=... SRC=... DST=... PROTO=TCP SPT=1 DPT=2 ...` fields,
/// up to the quoted inner packet of an ICMP error (`[SRC=... ]`), which is not ours.
/// The value of `key` (`b"SRC="`) at the start of `text`, and the text after its space.
fn take_raw<'a, const N: usize>(text: &'a [u8], key: &[u8; N]) -> Option<(&'a [u8], &'a [u8])> {
    let rest = text.strip_prefix(key)?;
    let end = find_space(rest).unwrap_or(rest.len());
    Some((&rest[..end], rest.get(end + 1..).unwrap_or_default()))
}

/// [`take_raw`] of a value in ASCII (so whole UTF-8); `None` for any other.
fn take_ascii<'a, const N: usize>(text: &'a [u8], key: &[u8; N]) -> Option<(&'a [u8], &'a [u8])> {
    take_raw(text, key).filter(|(value, _)| value.is_ascii())
}

/// A port number from its digits.
fn port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    // One pass: a byte that is not a digit makes the value too large to be a port.
    let value = digits.iter().fold(0u32, |n, &d| {
        let digit = u32::from(d.wrapping_sub(b'0'));
        if digit > 9 {
            u32::MAX
        } else {
            n.saturating_mul(10).saturating_add(digit)
        }
    });
    u16::try_from(value).ok()
}

/// An address from its text: dotted-quad IPv4 directly, anything else through `std`. An
/// IPv4-mapped IPv6 address (`::ffff:3.5.140.2`) is the IPv4 address: one source, however
/// the kernel or a collector spelled it.
///
/// Inlined into the line's reader, as [`ipv4`] and [`LastAddress::read`] are: returned
/// through memory, an address was stored in pieces (its tag, then its bytes) and loaded back
/// whole right away, a load the processor cannot take from the stores in flight: a stall on
/// every line, the line reader's costliest instruction.
#[inline(always)]
fn address(text: &[u8]) -> Option<IpAddr> {
    if let Some(a) = ipv4(text) {
        return Some(IpAddr::V4(a));
    }
    match ipv6(text) {
        Some(a) => Some(IpAddr::V6(a).to_canonical()),
        None => std::str::from_utf8(text)
            .ok()?
            .parse::<IpAddr>()
            .ok()
            .map(|a| a.to_canonical()),
    }
}

/// The source a packet line names, as a report may take it: an IPv4 address in an IPv6
/// packet (`SRC=::ffff:3.5.140.2 DST=2001:db8::1`) is no IPv4 host's. No IPv6 packet travels
/// with a mapped source (Linux drops one before the firewall since 5.3): the line is forged,
/// or the packet was, and the host it names sent nothing. It keeps its mapped form, which
/// no provider's ranges and no desk are asked about. An IPv4 packet written in the mapped form
/// (both addresses so, as a collector may write them) is the IPv4 host's.
#[inline(always)]
pub(crate) fn source_of(src: IpAddr, dst: IpAddr) -> IpAddr {
    match (src, dst) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => src,
    }
}

/// The kernel's fixed order, read in one pass without tokenising every field:
/// `IN= OUT= [MAC=] SRC= DST= ... PROTO= [SPT= DPT=]`. `None` sends the line to the general
/// reader, which also explains what is wrong, and which has the last word: whenever a key
/// the general reader looks for sits somewhere this one does not look, or a value is not
/// ASCII, the line goes there. The words read on the way tell whether a TCP packet carries
/// ACK or RST, so that [`is_answer`] need not look again.
fn fields_in_order<'a>(text: &'a [u8], memo: &mut Memo) -> Option<Fields<'a>> {
    let (mac, mac_seen, rest) = match memo.head_of(text) {
        Some(known) => known,
        None => {
            let (_, rest) = take_ascii(text, b"IN=")?;
            let (_, rest) = take_ascii(rest, b"OUT=")?;
            let mac_at = text.len() - rest.len() + b"MAC=".len();
            let (mac, rest) = match take_ascii(rest, b"MAC=") {
                Some((mac, rest)) => (Some(mac), rest),
                None => (None, rest),
            };
            if mac.is_some_and(|m| !is_mac(m)) {
                return None;
            }
            let span = mac.map(|m| (mac_at, mac_at + m.len()));
            memo.keep_head(text, text.len() - rest.len(), span);
            (mac.filter(|m| !m.is_empty()), mac.is_some(), rest)
        }
    };
    let (src, rest) = take_raw(rest, b"SRC=")?;
    let (dst, rest) = take_raw(rest, b"DST=")?;
    let is_later = |word: &[u8]| read_after_proto(word, mac_seen);
    // The words the kernel prints before PROTO= in their usual shape are passed over at once;
    // any others are read one by one.
    let (skip, flag) = match header_words(rest) {
        Some(skip) => (skip, false),
        None => words_to_proto(rest, mac_seen)?,
    };
    let (proto, rest) = take_raw(&rest[skip..], b"PROTO=")?;
    let (spt, rest) = match take_raw(rest, b"SPT=") {
        Some((p, rest)) => (Some(port(p)?), rest),
        None => (None, rest),
    };
    let (dpt, rest) = match take_raw(rest, b"DPT=") {
        Some((p, rest)) => (Some(port(p)?), rest),
        // The general reader goes on looking past PROTO= until it has DPT=.
        None if words(rest)
            .take_while(|w| w.first() != Some(&b'['))
            .any(is_later) =>
        {
            return None;
        }
        None => (None, rest),
    };
    // A source port alone is a line cut short (the general reader says so).
    if spt.is_some() && dpt.is_none() {
        return None;
    }
    let proto = kernel_protocol(proto)?;
    let tcp_flag = matches!(proto, "TCP" | "6").then(|| {
        flag || words(rest)
            .take_while(|w| w.first() != Some(&b'['))
            .any(is_answer_flag)
    });
    let (src, dst) = (address(src)?, memo.dst.read(dst)?);
    Some(Fields {
        mac,
        src,
        dst,
        proto,
        spt,
        dpt,
        tcp_flag,
    })
}

/// A key read after PROTO= (or MAC=, when it was not read before SRC=).
fn read_after_proto(word: &[u8], mac_seen: bool) -> bool {
    match word.first() {
        Some(b'S') => word.starts_with(b"SPT="),
        Some(b'D') => word.starts_with(b"DPT="),
        Some(b'P') => word.starts_with(b"PROTO="),
        Some(b'M') => !mac_seen && word.starts_with(b"MAC="),
        _ => false,
    }
}

/// Where the first word that is `PROTO=` starts in `text`, and whether an ACK or RST word
/// comes before it. `None` when a word before it quotes a packet (`[`: a PROTO= after it is
/// not ours) or is a key read after PROTO=, or when there is none.
fn words_to_proto(text: &[u8], mac_seen: bool) -> Option<(usize, bool)> {
    let mut rest = text;
    let mut flag = false;
    while !rest.starts_with(b"PROTO=") {
        let end = find_either(b' ', b'[', rest).unwrap_or(rest.len());
        if rest.get(end) == Some(&b'[') {
            return None;
        }
        let word = &rest[..end];
        if read_after_proto(word, mac_seen) {
            return None;
        }
        flag |= is_answer_flag(word);
        rest = rest.get(end + 1..)?;
    }
    Some((text.len() - rest.len(), flag))
}

/// The length of the words the kernel prints between `DST=` and `PROTO=` when `text` starts
/// with them in their usual shape: IPv4's `LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 `, any
/// of `CE `, `DF `, `MF ` after it, or IPv6's `LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=0 `, then
/// `PROTO=`. No such word quotes a packet, is a key read after `PROTO=` or is a TCP flag, so
/// [`words_to_proto`] would pass them all: here they are passed in one go (read word by word,
/// they took a fifth of the time spent on a drop line's fields). `None` for any other text.
fn header_words(text: &[u8]) -> Option<usize> {
    /// `key` at `at`, then a value of 1 to `most` bytes that `is_value` takes, then a space:
    /// where the text after that space starts.
    fn field(
        text: &[u8],
        at: usize,
        key: &[u8],
        most: usize,
        is_value: fn(&u8) -> bool,
    ) -> Option<usize> {
        let from = at + key.len();
        if text.get(at..from)? != key {
            return None;
        }
        let len = (text.get(from..)?.iter())
            .take(most + 1)
            .take_while(|b| is_value(b))
            .count();
        ((1..=most).contains(&len) && text.get(from + len) == Some(&b' ')).then_some(from + len + 1)
    }
    let digit: fn(&u8) -> bool = u8::is_ascii_digit;
    let hex: fn(&u8) -> bool = u8::is_ascii_hexdigit;
    let at = field(text, 0, b"LEN=", 5, digit)?;
    let at = match field(text, at, b"TOS=0x", 2, hex) {
        Some(at) => {
            let at = field(text, at, b"PREC=0x", 2, hex)?;
            let at = field(text, at, b"TTL=", 3, digit)?;
            let mut at = field(text, at, b"ID=", 5, digit)?;
            while let Some(b"CE " | b"DF " | b"MF ") = text.get(at..at + 3) {
                at += 3;
            }
            at
        }
        None => {
            let at = field(text, at, b"TC=", 3, digit)?;
            let at = field(text, at, b"HOPLIMIT=", 3, digit)?;
            field(text, at, b"FLOWLBL=", 7, digit)?
        }
    };
    text[at..].starts_with(b"PROTO=").then_some(at)
}

/// A TCP flag that marks an answer: ACK or RST.
fn is_answer_flag(word: &[u8]) -> bool {
    word == b"ACK" || word == b"RST"
}

/// `PROTO=` as text: one of the kernel's names (as the table holds it), or other ASCII that
/// [`is_protocol`] then judges. `None` for an empty or non-ASCII value.
fn protocol_name(value: &[u8]) -> Option<&str> {
    if value.is_empty() || !value.is_ascii() {
        return None;
    }
    match PROTOCOLS.iter().find(|p| p.as_bytes() == value) {
        Some(name) => Some(name),
        None => std::str::from_utf8(value).ok(),
    }
}

/// `PROTO=` as the kernel prints it ([`is_protocol`]): a name found in the table is one
/// without asking again.
fn kernel_protocol(value: &[u8]) -> Option<&str> {
    match PROTOCOLS.iter().find(|p| p.as_bytes() == value) {
        Some(name) => Some(name),
        None => protocol_name(value).filter(|p| is_protocol(p)),
    }
}

/// The fields after a prefix, each value checked against the shape the kernel prints it in:
/// a line whose values have another shape did not come from the kernel, and is malformed.
fn fields<'a>(text: &'a [u8], memo: &mut Memo) -> Result<Fields<'a>, &'static str> {
    if !text.starts_with(b"IN=") {
        return Err("no IN= after the prefix");
    }
    // The fast reader takes a line only when every value it read has the kernel's shape.
    if let Some(f) = fields_in_order(text, memo) {
        return Ok(f);
    }
    let f = fields_by_name(text)?;
    if !is_protocol(f.proto) {
        return Err("bad PROTO=");
    }
    if f.mac.is_some_and(|m| !is_mac(m)) {
        return Err("bad MAC=");
    }
    Ok(f)
}

/// Any order: every `KEY=VALUE` up to a quoted packet, the first occurrence of a key winning.
fn fields_by_name(text: &[u8]) -> Result<Fields<'_>, &'static str> {
    let (mut in_iface, mut out_iface, mut mac) = (None, None, None);
    let (mut src, mut dst, mut proto, mut spt, mut dpt) = (None, None, None, None, None);
    for item in text.split(|b| *b == b' ') {
        if item.first() == Some(&b'[') {
            break;
        }
        let Some(eq) = memchr::memchr(b'=', item) else {
            continue; // flags such as DF, SYN, ACK
        };
        let (key, value) = (&item[..eq], &item[eq + 1..]);
        let slot = match key {
            b"IN" => &mut in_iface,
            b"OUT" => &mut out_iface,
            b"MAC" => &mut mac,
            b"SRC" => &mut src,
            b"DST" => &mut dst,
            b"PROTO" => &mut proto,
            b"SPT" => &mut spt,
            b"DPT" => &mut dpt,
            _ => continue,
        };
        // The first occurrence wins (UDP lines print LEN= twice; ICMP prints ID= twice).
        if slot.is_none() {
            *slot = Some(std::str::from_utf8(value).map_err(|_| "a field is not UTF-8")?);
        }
        // DPT= is the last field wanted; what follows (WINDOW, flags, LEN) is not needed.
        if key == b"DPT" && src.is_some() && dst.is_some() && proto.is_some() {
            break;
        }
    }
    let ip = |v: Option<&str>, missing: &'static str, bad: &'static str| {
        address(v.ok_or(missing)?.as_bytes()).ok_or(bad)
    };
    let port = |v: Option<&str>| match v {
        None => Ok(None),
        Some(v) => port(v.as_bytes()).map(Some).ok_or("bad port"),
    };
    let proto = match proto {
        Some(p) if !p.is_empty() => p,
        _ => return Err("no PROTO="),
    };
    // The kernel prints the two ports together: a source port alone is a line cut short,
    // inside its value perhaps.
    if spt.is_some() && dpt.is_none() {
        return Err("SPT= without DPT= (a line cut short)");
    }
    Ok(Fields {
        mac: mac.filter(|m| !m.is_empty()).map(str::as_bytes),
        src: ip(src, "no SRC=", "bad SRC= address")?,
        dst: ip(dst, "no DST=", "bad DST= address")?,
        proto,
        spt: port(spt)?,
        dpt: port(dpt)?,
        tcp_flag: None,
    })
}

impl Zone {
    /// The calendar year of `now` in this zone.
    fn year_of(&self, now: DateTime<Utc>) -> i32 {
        match self {
            Zone::Utc => now.year(),
            Zone::Local => now.with_timezone(&chrono::Local).year(),
            Zone::Named(tz) => now.with_timezone(tz).year(),
        }
    }

    /// A wall-clock time in this zone as Unix seconds. In a DST gap the time is read as if the
    /// clock had not jumped yet (with the offset of the day before: `02:30` on the day Berlin
    /// skips to summer time is 02:30 +01:00); in a repeated hour, the first of the two.
    pub fn to_utc(&self, local: NaiveDateTime) -> Option<i64> {
        self.reading(local, None).map(|(t, _)| t)
    }

    /// [`Zone::to_utc`] for a line that follows one stamped `after`, and whether the clock
    /// showed this time twice. Syslog writes a file in time order, so of the two readings
    /// of such a time (autumn's repeated hour) the later is taken when the line before is
    /// in the second pass already (or after it), or when the wall clock went back more than
    /// half the hour from it: a first pass ending at 02:59 is followed by a second beginning
    /// at 02:00. A line of a host whose clock is a little behind (less than half the hour)
    /// stays in its pass. Without `after`, the first of the two.
    pub fn reading(&self, local: NaiveDateTime, after: Option<i64>) -> Option<(i64, bool)> {
        self.reading_within(local, after, (None, None))
    }

    /// [`Zone::reading`] of a line known to be written within `bounds` (not before the
    /// first, not after the second, either may be unknown): of the two readings of a time
    /// shown twice, one outside them is not taken when the other is inside. The second
    /// pass of a line read while the clock was still in the first is in the future: a line
    /// 34 minutes behind the one before it was taken for the second pass, an hour ahead of
    /// the file's last write. The later bound wins when both say no.
    pub fn reading_within(
        &self,
        local: NaiveDateTime,
        after: Option<i64>,
        bounds: (Option<i64>, Option<i64>),
    ) -> Option<(i64, bool)> {
        fn pick<T: TimeZone>(
            tz: &T,
            local: NaiveDateTime,
            after: Option<i64>,
            (floor, ceiling): (Option<i64>, Option<i64>),
        ) -> Option<(i64, bool)> {
            use chrono::Offset;
            match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => Some((t.timestamp(), false)),
                LocalResult::Ambiguous(a, b) => {
                    let (early, late) = if a.timestamp() <= b.timestamp() {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    let (from, to) = (early.timestamp(), late.timestamp());
                    let later = after.filter(|t| *t > from).is_some_and(|t| {
                        // The clock went back from the line before: the second pass begins.
                        t.saturating_sub(from) >= (to - from) / 2
                            // The line before is in the second pass, which keeps the later
                            // offset until the next spring.
                            || DateTime::from_timestamp(t, 0).is_some_and(|at| {
                                tz.offset_from_utc_datetime(&at.naive_utc()).fix()
                                    == late.offset().fix()
                            })
                    });
                    let past = |t: i64| ceiling.is_some_and(|c| t > c);
                    let before = |t: i64| floor.is_some_and(|f| t < f);
                    let later = match later {
                        true if past(to) && !past(from) => false,
                        false if before(from) && !before(to) && !past(to) => true,
                        chosen => chosen,
                    };
                    Some((if later { to } else { from }, true))
                }
                LocalResult::None => {
                    let before = tz
                        .from_local_datetime(&(local - chrono::Duration::days(1)))
                        .earliest()?;
                    let offset = before.offset().fix().local_minus_utc();
                    Some((local.and_utc().timestamp() - i64::from(offset), false))
                }
            }
        }
        match self {
            Zone::Utc => Some((local.and_utc().timestamp(), false)),
            Zone::Local => pick(&chrono::Local, local, after, bounds),
            Zone::Named(tz) => pick(tz, local, after, bounds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn parser(prefixes: &[&str]) -> LineParser {
        let now = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        LineParser::new(&prefixes, Zone::Utc, now)
    }

    fn packet<'a>(p: &mut LineParser, line: &'a str) -> Packet<'a> {
        match p.parse(line.as_bytes()) {
            Line::Packet(packet) => packet,
            other => panic!("not a packet: {other:?} for {line}"),
        }
    }

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp()
    }

    /// A kept line is judged an answer as the reader judged its packet when it read it.
    #[test]
    fn a_kept_line_is_an_answer_as_its_packet_was() {
        let mut p = parser(&["INPUT-DROP:", "[UFW BLOCK] "]);
        let head = "Jan 25 10:00:00 web1 kernel: [1.000000] ";
        let tcp = "SRC=3.5.140.2 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=443 DPT=51234 WINDOW=65535 RES=0x00";
        let icmp = "SRC=3.5.140.2 DST=192.0.2.10 LEN=88 PROTO=ICMP";
        for (fields, answer) in [
            (format!("{tcp} ACK SYN URGP=0"), true),
            (format!("{tcp} RST URGP=0"), true),
            (format!("{tcp} SYN URGP=0"), false),
            (format!("{icmp} TYPE=3 CODE=3 [SRC=192.0.2.10 DST=3.5.140.2 LEN=40 PROTO=TCP SPT=1 DPT=2 ACK ]"), true),
            (format!("{icmp} TYPE=8 CODE=0 ID=1 SEQ=1"), false),
            (format!("{icmp} TYPE=0 CODE=0 ID=1 SEQ=1"), true),
            ("SRC=2600:1f18::1 DST=2001:db8::1 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=136 CODE=0".to_string(), true),
        ] {
            for prefix in ["INPUT-DROP:", "[UFW BLOCK] "] {
                let line = format!("{head}{prefix}IN=eth0 OUT= {fields}");
                assert_eq!(packet(&mut p, &line).answer, answer, "{line}");
                assert_eq!(is_answer_line(line.as_bytes()), answer, "{line}");
            }
        }
    }

    #[test]
    fn bsd_line_with_kernel_stamp_gives_every_field() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Jan 25 23:51:25 web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= \
                    MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:08:00 SRC=34.223.47.190 DST=192.0.2.10 \
                    LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=53123 PROTO=UDP SPT=37933 DPT=53 LEN=20";
        let got = packet(&mut p, line);
        assert_eq!(
            got,
            Packet {
                time: at("2026-01-25T23:51:25Z"),
                host: b"web1",
                prefix: 0,
                src: IpAddr::V4(Ipv4Addr::new(34, 223, 47, 190)),
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                proto: "UDP",
                spt: Some(37933),
                dpt: Some(53),
                answer: false,
                outgoing: false,
                copies: 1,
            }
        );
    }

    /// A crash left NUL bytes where the file grew; the daemon's next line follows them on
    /// the same line, and is read as if they were not there.
    #[test]
    fn a_line_after_a_block_of_nul_bytes_is_whole() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 \
                    DST=192.0.2.10 PROTO=UDP SPT=37933 DPT=53";
        let after_crash = format!("{}{line}", "\0".repeat(4096));
        assert_eq!(packet(&mut p, &after_crash), packet(&mut p, line));
        assert!(matches!(p.parse(b"\0\0\0"), Line::Other));
    }

    #[test]
    fn icmp_error_reports_the_outer_source_not_the_quoted_one() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Jan  8 03:37:09 gw kernel: INPUT-DROP: IN=eth0 OUT= MAC=90:10:28:5f:62:24:90:10:18:5a:89:2a:08:00 \
                    SRC=52.94.1.7 DST=192.0.2.83 LEN=88 TOS=0x00 PREC=0x00 TTL=118 ID=21684 PROTO=ICMP TYPE=3 CODE=3 \
                    [SRC=192.0.2.83 DST=52.94.1.7 LEN=60 TOS=0x00 PREC=0x00 TTL=54 ID=0 DF PROTO=UDP SPT=21458 DPT=62936 LEN=40 ]";
        let got = packet(&mut p, line);
        assert_eq!(got.src, "52.94.1.7".parse::<IpAddr>().unwrap());
        assert_eq!(got.dst, "192.0.2.83".parse::<IpAddr>().unwrap());
        assert_eq!(got.proto, "ICMP");
        assert_eq!((got.spt, got.dpt), (None, None));
        assert_eq!(got.time, at("2026-01-08T03:37:09Z"));
    }

    /// Neighbour discovery comes only from the host's own link: an advertisement from a
    /// neighbour in the same cloud /64 answers the host and is no attack; an echo request
    /// from afar is a probe.
    #[test]
    fn ipv6_neighbour_discovery_is_an_answer_and_an_echo_request_is_not() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = |kind: u8| {
            format!(
                "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= MAC=02:00:00:00:00:01:02:00:00:00:00:02:86:dd \
                 SRC=2600:1f00::5 DST=2600:1f00::10 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE={kind} CODE=0"
            )
        };
        // Neighbour discovery, and multicast listener discovery (a router's query, a
        // neighbour's report), which a link's routers and hosts send to it alone.
        for kind in (130..=137).chain([143]) {
            assert!(packet(&mut p, &line(kind)).answer, "type {kind}");
        }
        for kind in [128, 138, 142, 144] {
            assert!(!packet(&mut p, &line(kind)).answer, "type {kind}");
        }
    }

    #[test]
    fn ipv6_source_is_a_whole_address() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Mar 17 13:39:13 linux kernel: [956932.482352] INPUT-DROP:IN=eth0 OUT= \
                    MAC=00:13:46:3a:41:36:00:1b:b9:76:9c:e4:86:dd SRC=2600:1f18:0000:f101:0000:0000:0000:0002 \
                    DST=2001:0db8:0000:f101:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP \
                    SPT=46395 DPT=80 WINDOW=5760 RES=0x00 SYN URGP=0 ";
        let got = packet(&mut p, line);
        assert_eq!(
            got.src,
            IpAddr::V6(Ipv6Addr::new(0x2600, 0x1f18, 0, 0xf101, 0, 0, 0, 2))
        );
        assert_eq!(got.dpt, Some(80));
        assert_eq!(
            got.time,
            at("2025-03-17T13:39:13Z"),
            "March is after now: last year"
        );
    }

    #[test]
    fn rfc3339_stamp_with_fraction_and_offset() {
        let mut p = parser(&["DROP:"]);
        let line = "2015-03-07T05:09:30.045015+02:00 servername kernel: DROP: IN=eth0 OUT= \
                    MAC=00:00:00:00:00:00:00:00:00:00:00:00:00:00 SRC=4.4.4.4 DST=1.2.3.4 LEN=40 \
                    TOS=0x00 PREC=0x00 TTL=228 ID=54321 PROTO=TCP SPT=58923 DPT=21 WINDOW=65535 RES=0x00 SYN URGP=0 ";
        let got = packet(&mut p, line);
        assert_eq!(got.time, at("2015-03-07T03:09:30Z"));
        assert_eq!(got.host, b"servername");
        assert_eq!(got.src, "4.4.4.4".parse::<IpAddr>().unwrap());
        assert_eq!((got.spt, got.dpt), (Some(58923), Some(21)));
    }

    #[test]
    fn priority_before_rfc3339_stamp_and_bracketed_prefix() {
        let mut p = parser(&["[wan-lan-default-D]"]);
        let line = "<6>2021-03-12T14:10:18Z Hostname kernel: [wan-lan-default-D]IN=eth0 OUT= \
                    MAC=90:10:20:76:8d:20:90:10:65:29:b6:2a:08:00 SRC=67.43.156.15 DST=10.4.0.5 LEN=52 \
                    TOS=0x00 PREC=0x00 TTL=63 ID=0 DF PROTO=TCP SPT=38842 DPT=443 WINDOW=2853 RES=0x00 ACK URGP=0";
        let got = packet(&mut p, line);
        assert_eq!(got.time, at("2021-03-12T14:10:18Z"));
        assert_eq!(got.host, b"Hostname");
        assert_eq!(got.src, "67.43.156.15".parse::<IpAddr>().unwrap());
        assert_eq!(got.dpt, Some(443));
    }

    #[test]
    fn priority_before_bsd_stamp() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "<4>Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=22";
        let got = packet(&mut p, line);
        assert_eq!(got.src, "3.5.140.2".parse::<IpAddr>().unwrap());
        assert_eq!(got.time, at("2026-01-25T23:51:25Z"));
    }

    #[test]
    fn ufw_prefix_with_space_and_brackets() {
        let mut p = parser(&["[UFW BLOCK] "]);
        let line = "May 29 06:53:55 vultr kernel: [547219.375133] [UFW BLOCK] IN=ens3 OUT= \
                    MAC=56:00:03:85:82:df:fe:00:03:85:82:df:08:00 SRC=192.241.219.198 DST=158.247.223.84 \
                    LEN=40 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=60834 DPT=5985 WINDOW=65535 RES=0x00 SYN URGP=0 ";
        let got = packet(&mut p, line);
        assert_eq!(got.host, b"vultr");
        assert_eq!(got.src, "192.241.219.198".parse::<IpAddr>().unwrap());
        assert_eq!(got.dpt, Some(5985));
    }

    #[test]
    fn second_of_several_prefixes_is_found() {
        let mut p = parser(&["INPUT-DROP:", "[UFW BLOCK] "]);
        let line = "May 29 06:53:55 vultr kernel: [UFW BLOCK] IN=ens3 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2";
        assert_eq!(packet(&mut p, line).prefix, 1);
    }

    #[test]
    fn truncated_lines_are_malformed() {
        let mut p = parser(&["INPUT-DROP:"]);
        let base = "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0.2.10 LEN=40 PROTO=TCP SPT=1 DPT=80";
        for cut in [
            "Jan 25 23:51:25 web1 kernel: INPUT-DROP:",
            "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.22",
            "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0",
            "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0.2.10 LEN=40",
            // Cut inside the source port: a packet from port 1 to none was counted.
            "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0.2.10 LEN=40 PROTO=TCP SPT=1",
        ] {
            assert!(base.starts_with(cut));
            assert!(
                matches!(p.parse(cut.as_bytes()), Line::Malformed(_)),
                "{cut}"
            );
        }
        assert!(matches!(p.parse(base.as_bytes()), Line::Packet(_)));
    }

    #[test]
    fn a_field_other_than_in_first_is_malformed() {
        let mut p = parser(&["DROP:"]);
        let line = "Jun  8 14:34:33 sd-126005 kernel: [50028442.088484] DROP: XX=enp1s0 OUT= SRC=195.54.160.107 DST=51.15.166.67 PROTO=TCP SPT=8080 DPT=8123";
        assert_eq!(
            p.parse(line.as_bytes()),
            Line::Malformed("no IN= after the prefix")
        );
    }

    #[test]
    fn crlf_line_ending_is_ignored() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0.2.10 PROTO=TCP SPT=1 DPT=443\r";
        assert_eq!(packet(&mut p, line).dpt, Some(443));
    }

    #[test]
    fn prefix_in_another_programs_message_is_not_a_packet() {
        let mut p = parser(&["INPUT-DROP:"]);
        let line = "Jan 25 23:51:26 web1 sshd[812]: Invalid user INPUT-DROP:IN=eth0 SRC=6.6.6.6 DST=1.1.1.1 PROTO=TCP from 203.0.113.9 port 4242";
        assert_eq!(p.parse(line.as_bytes()), Line::Other);
        let line = "Jan 25 23:51:26 web1 kernel: some other message";
        assert_eq!(p.parse(line.as_bytes()), Line::Other);
    }

    #[test]
    fn binary_junk_and_invalid_utf8_do_not_panic() {
        let mut p = parser(&["INPUT-DROP:"]);
        let mut line = b"Jan 25 23:51:25 web\xff1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=192.0.2.10 PROTO=TCP".to_vec();
        assert!(matches!(p.parse(&line), Line::Malformed(_)));
        line = b"\x00\x01INPUT-DROP:\xfe\xff".to_vec();
        assert!(matches!(p.parse(&line), Line::Malformed(_)));
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let mut with_prefix = junk.clone();
            with_prefix.extend_from_slice(b"INPUT-DROP:IN=");
            with_prefix.extend_from_slice(&junk);
            let _ = p.parse(&junk);
            let _ = p.parse(&with_prefix);
        }
    }

    /// What a read is told of the lines before it (a thread's piece, a resumed file) comes
    /// from any bytes at all without a panic: short, cut inside a stamp or a priority, NUL.
    #[test]
    fn the_lines_before_a_read_may_be_any_bytes() {
        let mut p = berlin_in_autumn();
        let line = berlin_line("02:15:00");
        let mut texts: Vec<Vec<u8>> = (0..=line.len())
            .map(|n| line.as_bytes()[..n].to_vec())
            .collect();
        for head in [
            "<",
            "<4",
            "<4>",
            "<>",
            "<12345>",
            "\0\0<1>",
            "\0",
            "2026",
            "Oct 25 02:15:0",
        ] {
            texts.push(head.as_bytes().to_vec());
            texts.push(format!("{head} D:").into_bytes());
        }
        texts.extend((0..64).map(|len| (0..len).map(|i| (i * 53 % 256) as u8).collect()));
        for text in &texts {
            let _ = p.stamp_time(text, Some(at("2026-10-25T02:30:00+01:00")));
            let _ = p.time_to_follow(text);
            p.follows_lines(text, false);
            p.follows_lines(text, true);
        }
        // Nothing stamped: what the reader was told stands.
        p.follows(Some(at("2026-10-25T02:50:00+02:00")));
        p.follows_lines(b"-- MARK --\nD: no stamp\n", false);
        assert_eq!(
            packet(&mut p, &berlin_line("02:15:00")).time,
            at("2026-10-25T02:15:00+01:00")
        );
        // A line the read would not take as the one before is passed over: no prefix, a
        // priority that is no number, a time after the clock.
        for passed_over in [
            "Oct 25 02:50:00 h sshd[1]: x",
            "<x>Oct 25 02:50:00 h kernel: D:IN=",
            "Oct 25 09:00:00 h kernel: D:IN=",
        ] {
            p.follows(Some(at("2026-10-25T01:50:00+02:00")));
            p.follows_lines(passed_over.as_bytes(), false);
            assert_eq!(
                packet(&mut p, &berlin_line("02:15:00")).time,
                at("2026-10-25T02:15:00+02:00"),
                "{passed_over}"
            );
        }
    }

    proptest::proptest! {
        /// The first space found eight bytes at a time is the first a plain look finds.
        #[test]
        fn spaces_found_eight_at_a_time_are_those_found_one_by_one(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b' ', b'[', b'a', 0, 0x80, 0xa0, 0x1f, 0x21, 0x5a, 0xdb, 0xff]),
                0..40,
            ),
        ) {
            proptest::prop_assert_eq!(
                words(&text).collect::<Vec<_>>(),
                text.split(|b| *b == b' ').collect::<Vec<_>>()
            );
            proptest::prop_assert_eq!(find_space(&text), text.iter().position(|&b| b == b' '));
            proptest::prop_assert_eq!(
                find_either(b' ', b'[', &text),
                text.iter().position(|&b| b == b' ' || b == b'[')
            );
        }
    }

    proptest::proptest! {
        /// Texts alike but for one byte, at each place in turn, at every length the words
        /// cover and past, and texts one byte longer.
        #[test]
        fn short_texts_compare_as_slices_do(
            a in proptest::collection::vec(proptest::sample::select(vec![b'a', b'b', 0, 0xff]), 0..24),
            to in proptest::sample::select(vec![b'a', b'b', 0, 0xff]),
        ) {
            proptest::prop_assert!(same_bytes(&a, &a));
            for at in 0..a.len() {
                let mut b = a.clone();
                b[at] = to;
                proptest::prop_assert_eq!(same_bytes(&a, &b), a == b, "{:?} {:?}", a, b);
            }
            let mut longer = a.clone();
            longer.push(b'a');
            proptest::prop_assert!(!same_bytes(&a, &longer));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_uptime_stamp_ends_where_the_plain_reading_says(
            // Mostly a stamp's own bytes, so that the word-wide path meets a long run of them,
            // with one odd byte somewhere, a `]` or none, and anything after.
            head in proptest::collection::vec(proptest::sample::select(vec![b'1', b'0', b'9', b'.', b' ']), 0..24),
            odd in proptest::option::of((
                0usize..24,
                // Bytes that differ from an allowed one only in the high bit, or sit just
                // beside the digits.
                proptest::sample::select(vec![b']', b'[', b'a', b'/', b':', 0xff, 0xb0, 0xb9, 0xa0, 0xae, 0xdd]),
            )),
            close in proptest::bool::ANY,
            tail in proptest::collection::vec(proptest::sample::select(vec![b'1', b']', b'a', 0xb0]), 0..12),
        ) {
            let mut text = head;
            if let Some((at, byte)) = odd {
                text.insert(at.min(text.len()), byte);
            }
            if close {
                text.push(b']');
            }
            text.extend(tail);
            let plain = text.iter().position(|&b| b == b']').filter(|&end| {
                text[..end].iter().all(|b| b.is_ascii_digit() || *b == b'.' || *b == b' ')
            });
            proptest::prop_assert_eq!(uptime_end(&text), plain);
        }
    }

    proptest::proptest! {
        #[test]
        fn port_digits_agree_with_std_on_any_text(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'0', b'1', b'6', b'5', b'9', b'/', b':', b'a', 0xb0]),
                0..8,
            ),
        ) {
            // One to five digits, as the kernel prints a port, read by std.
            let plain = (text.len() <= 5 && text.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(&text).ok()?.parse::<u16>().ok())
                .flatten();
            proptest::prop_assert_eq!(port(&text), plain);
        }
    }

    #[test]
    fn port_digits_agree_with_std() {
        for text in ["0", "22", "65535", "65536", "", "1a", "-1", "007", "123456"] {
            assert_eq!(port(text.as_bytes()), text.parse().ok(), "{text:?}");
        }
    }

    #[test]
    fn fast_ipv4_agrees_with_std() {
        for text in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "a.b.c.d",
            "",
            "1.2.3.4 ",
            // Octets ending at the first byte, or at the last.
            ".12.3.45",
            "12.3.45.",
            "1.2.3.4\u{b0}",
            "1.2.\u{ae}.4",
            "1.2.3.400",
            "1.2.3.099",
            "1.2.3..",
            "1.2.3.255",
            "1.2.3.256",
        ] {
            assert_eq!(ipv4(text.as_bytes()), text.parse().ok(), "{text:?}");
        }
    }

    /// The kernel's usual words before `PROTO=`, as [`header_words`] passes them at once.
    const HEADERS: [&str; 6] = [
        "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=1 DPT=2 ",
        "LEN=1500 TOS=0x1C PREC=0xE0 TTL=5 ID=0 DF PROTO=UDP SPT=1 DPT=2 LEN=40",
        "LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=65535 CE DF MF PROTO=ICMP TYPE=8 CODE=0 ",
        "LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=1048575 PROTO=TCP SPT=1 DPT=2 ",
        "LEN=72 TC=255 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ",
        "LEN=52 TOS=0x08 PREC=0x00 TTL=1 ID=7 MF PROTO=47 ",
    ];

    #[test]
    fn the_kernels_usual_words_before_proto_are_passed_at_once() {
        for text in HEADERS {
            let at = text.find("PROTO=").unwrap();
            assert_eq!(header_words(text.as_bytes()), Some(at), "{text:?}");
        }
        // Any other shape is read a word at a time.
        for text in [
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 FRAG=185 PROTO=UDP ",
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321  PROTO=UDP ",
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 DF",
            "LEN=123456 TOS=0x00 PREC=0x00 TTL=241 ID=5 PROTO=UDP ",
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 SPT=5 PROTO=UDP ",
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 ACK PROTO=TCP ",
            "LEN=60 TOS=0x00 PREC=0x00 TTL=241 [SRC=1.2.3.4 PROTO=TCP ",
        ] {
            assert_eq!(header_words(text.as_bytes()), None, "{text:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        /// Whatever text [`header_words`] passes over at once, the word-by-word reader passes
        /// too, to the same `PROTO=`, without a TCP flag: the kernel's usual words with a few
        /// bytes changed (a quoted packet, a later key, a flag, a lost space or digit).
        #[test]
        fn words_passed_at_once_are_those_read_one_by_one(
            base in proptest::sample::select(HEADERS.to_vec()),
            changes in proptest::collection::vec(
                (
                    0usize..80,
                    proptest::sample::select(b" [SDPMARCKTF0x=9a.".to_vec()),
                    proptest::bool::ANY,
                ),
                0..3,
            ),
            mac_seen in proptest::bool::ANY,
        ) {
            let mut text = base.as_bytes().to_vec();
            for (at, byte, insert) in changes {
                let at = at % text.len();
                if insert {
                    text.insert(at, byte);
                } else {
                    text[at] = byte;
                }
            }
            if let Some(at) = header_words(&text) {
                proptest::prop_assert_eq!(
                    words_to_proto(&text, mac_seen),
                    Some((at, false)),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    proptest::proptest! {
        // Each case costs a microsecond: many, so that texts an address differs from by one
        // byte come up often.
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        #[test]
        fn fast_ipv4_agrees_with_std_on_any_text(
            text in proptest::collection::vec(
                // `°` and `®` hold 0xB0 and 0xAE: `0` and `.` with the high bit set; `/` and `:`
                // are the bytes either side of the digits.
                proptest::sample::select(vec!["0", "1", "2", "5", "9", ".", ".", "a", " ", ":", "/", "°", "®"]),
                0..18,
            ),
        ) {
            let text = text.concat();
            proptest::prop_assert_eq!(ipv4(text.as_bytes()), text.parse().ok(), "{:?}", text);
        }

        #[test]
        fn fast_ipv4_agrees_with_std_on_any_octets(
            // Mostly four octets of every length, a dot between them, and about one text in
            // ten an address; the rest differs from one in one way or two: an octet missing,
            // too large, or with a leading zero; two dots, or another byte, between octets;
            // a dot before or after.
            count in proptest::sample::select(vec![4, 4, 4, 4, 4, 4, 4, 4, 3, 5]),
            octets in proptest::collection::vec(
                proptest::prop_oneof![
                    1 => proptest::strategy::Just(None),
                    2 => proptest::sample::select(vec![Some(0), Some(255), Some(256)]),
                    3 => proptest::strategy::Strategy::prop_map(0u32..10, Some),
                    3 => proptest::strategy::Strategy::prop_map(10u32..100, Some),
                    3 => proptest::strategy::Strategy::prop_map(100u32..256, Some),
                    1 => proptest::strategy::Strategy::prop_map(256u32..10_000, Some),
                ],
                5,
            ),
            zeros in proptest::collection::vec(proptest::bool::weighted(0.1), 5),
            between in proptest::collection::vec(
                proptest::prop_oneof![
                    12 => proptest::strategy::Just("."),
                    1 => proptest::strategy::Just(".."),
                    1 => proptest::strategy::Just("\u{b0}"),
                    1 => proptest::strategy::Just("\u{ae}"),
                ],
                5,
            ),
            ends in (proptest::bool::weighted(0.1), proptest::bool::weighted(0.1)),
        ) {
            let mut text = String::from(if ends.0 { "." } else { "" });
            for (k, (o, zero)) in octets.iter().zip(&zeros).take(count).enumerate() {
                if k > 0 {
                    text.push_str(between[k]);
                }
                if let Some(o) = o {
                    text.push_str(&format!("{}{o}", if *zero { "0" } else { "" }));
                }
            }
            text.push_str(if ends.1 { "." } else { "" });
            proptest::prop_assert_eq!(ipv4(text.as_bytes()), text.parse().ok(), "{:?}", text);
        }
    }

    #[test]
    fn fast_ipv6_agrees_with_std() {
        for text in [
            "::",
            "::1",
            "1::",
            "2600:1f18:7fff:ffff::1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "1:2:3:4:5:6:7",
            ":1::",
            "1:::2",
            "1::2::3",
            "12345::",
            "ABCD:ef01::",
            "0000:0000::0001",
            "1:",
            ":",
            "::g",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "1:2:3:4:5:6:7:8:9",
        ] {
            assert_eq!(
                ipv6(text.as_bytes()).map(IpAddr::V6),
                std_read(text),
                "{text:?}"
            );
        }
        assert!(ipv6(b"::ffff:1.2.3.4").is_none(), "left to std");
    }

    /// What `std` reads as an IPv6 address; `None` for text the fast reader leaves to it.
    fn std_read(text: &str) -> Option<IpAddr> {
        let read = text.parse::<std::net::Ipv6Addr>().ok()?;
        (!text.contains(['.', '%'])).then_some(IpAddr::V6(read))
    }

    proptest::proptest! {
        #[test]
        fn fast_ipv6_agrees_with_std_on_any_groups(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["", "0", "1", "ff", "FFFF", "abcd", "12345", "1.2.3.4", "g", "%x"]),
                0..11,
            ),
        ) {
            let text = parts.join(":");
            let fast = ipv6(text.as_bytes());
            if let Some(read) = fast {
                proptest::prop_assert_eq!(Some(read), text.parse().ok(), "{:?}", text);
            } else if !text.contains(['.', '%']) {
                proptest::prop_assert!(text.parse::<std::net::Ipv6Addr>().is_err(), "{:?}", text);
            }
            proptest::prop_assert_eq!(address(text.as_bytes()), text.parse::<IpAddr>().ok().map(|a| a.to_canonical()));
        }
    }

    #[test]
    fn fast_and_general_field_readers_agree() {
        let lines: [&[u8]; 10] = [
            b"IN=eth0 OUT= MAC=aa:bb SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TTL=3 PROTO=TCP SPT=1 DPT=22 WINDOW=1 SYN",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 ACK PROTO=TCP SPT=1 DPT=22 WINDOW=1 SYN",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=22 RST [SRC=5.6.7.8 ACK ]",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=22 SYN [SRC=5.6.7.8 ACK ]",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=UDP SPT=53 DPT=4000 LEN=20",
            b"IN=eth0 OUT= SRC=2600::1 DST=2001:db8::1 LEN=80 TC=0 PROTO=ICMPv6 TYPE=128 CODE=0",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=88 PROTO=ICMP TYPE=3 CODE=3 [SRC=5.6.7.8 DST=1.2.3.4 PROTO=UDP SPT=1 DPT=2 ]",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=36 [SRC=9.9.9.9 DST=1.1.1.1 PROTO=UDP ]",
            b"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=2",
            b"IN=eth0 OUT= DST=5.6.7.8 SRC=1.2.3.4 PROTO=TCP DPT=80",
        ];
        let fast_taken = lines
            .iter()
            .filter(|line| fields_in_order(line, &mut Memo::default()).is_some())
            .count();
        for line in lines {
            readers_agree(line);
        }
        assert_eq!(fast_taken, 8, "the kernel's usual lines take the fast path");
        let tcp = |line: &[u8]| {
            fields_in_order(line, &mut Memo::default())
                .unwrap()
                .tcp_flag
        };
        assert_eq!(tcp(lines[1]), Some(true), "ACK before PROTO=");
        assert_eq!(tcp(lines[2]), Some(true), "RST after DPT=");
        assert_eq!(tcp(lines[3]), Some(false), "ACK of the quoted packet");
        assert!(
            fields_in_order(lines[7], &mut Memo::default()).is_none(),
            "no outer PROTO: never the quoted one"
        );
        assert_eq!(
            fields(lines[7], &mut Memo::default()).err(),
            Some("no PROTO=")
        );
        assert!(
            fields_in_order(lines[9], &mut Memo::default()).is_none(),
            "another order goes to the general reader"
        );
        assert_eq!(
            fields(lines[9], &mut Memo::default()).unwrap().dpt,
            Some(80)
        );
    }

    #[test]
    fn remembered_address_is_read_again_for_other_text() {
        let mut last = LastAddress::default();
        for text in [
            "192.0.2.1",
            "192.0.2.1",
            "192.0.2.10",
            "192.0.2.1",
            "2001:db8::1",
            "x",
            "192.0.2.1",
            "::ffff:192.0.2.1",
            "",
        ] {
            assert_eq!(
                last.read(text.as_bytes()),
                address(text.as_bytes()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_head_is_remembered_only_up_to_its_space() {
        let mut memo = Memo::default();
        assert!(fields(b"IN=eth0 OUT=", &mut memo).is_err());
        // `OUT=` holds `SRC=1.2.3.4` here: there is no SRC= field.
        let glued = b"IN=eth0 OUT=SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP DPT=2";
        assert_eq!(fields(glued, &mut memo).err(), Some("no SRC="));
        let mut memo = Memo::default();
        let mac = b"IN=eth0 OUT= MAC=aa:bb SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP DPT=2";
        assert!(fields(mac, &mut memo).is_ok());
        assert_eq!(memo.head, b"IN=eth0 OUT= MAC=aa:bb ");
        let longer = b"IN=eth0 OUT= MAC=aa:bbcc SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP DPT=2";
        assert_eq!(
            fields(longer, &mut memo).unwrap().mac,
            Some(&b"aa:bbcc"[..])
        );
    }

    proptest::proptest! {
        /// Whatever lines came before, a line reads as it reads alone: what the memo keeps
        /// (a head, a destination) never stands in for text that differs.
        #[test]
        fn lines_read_after_others_read_as_alone(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "IN=eth0 OUT= MAC=aa:bb ", "IN=eth0 OUT= MAC=aa:bbc ", "IN=eth0 OUT= MAC= ",
                        "IN=eth0 OUT= MAC=zz ", "IN=eth0 OUT= ", "IN=eth0 OUT=", "IN=eth OUT= ",
                        "IN=eth0 OUT=x ", "IN=eth0 OUT= MAC=aa:bb MAC=cc ", "IN=\u{e9} OUT= ",
                        "IN=eth0 OUT= MAC=aa:bb",
                    ]),
                    proptest::sample::select(vec![
                        "SRC=1.2.3.4 DST=5.6.7.8 LEN=1 PROTO=TCP SPT=1 DPT=2 ACK",
                        "SRC=1.2.3.4 DST=5.6.7.89 PROTO=UDP SPT=1 DPT=2",
                        "SRC=2600::1 DST=2600::2 PROTO=ICMPv6 TYPE=1",
                        "SRC=1.2.3.4 DST=5.6.7.8 MAC=11:22 PROTO=TCP DPT=2",
                        "MAC=11:22 SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP DPT=2",
                        "SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCPX DPT=2",
                        "",
                    ]),
                ),
                1..12,
            ),
        ) {
            let mut memo = Memo::default();
            let key = |f: Result<Fields<'_>, &'static str>| {
                f.map(|f| (f.mac.map(<[u8]>::to_vec), f.src, f.dst, f.proto.to_string(), f.spt, f.dpt))
            };
            for (head, tail) in lines {
                let line = format!("{head}{tail}");
                let after = key(fields(line.as_bytes(), &mut memo));
                let alone = key(fields(line.as_bytes(), &mut Memo::default()));
                proptest::prop_assert_eq!(after, alone, "{}", line);
            }
        }
    }

    proptest::proptest! {
        /// Whatever lines came before, a whole line reads as it reads alone: the host and tag
        /// the parser remembers never stand in for text that differs.
        #[test]
        fn whole_lines_read_after_others_read_as_alone(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "Jan  5 10:00:00", "Jan  5 10:00:01", "2026-01-05T10:00:00Z",
                        "<4>Jan  5 10:00:00", "\0Jan  5 10:00:00",
                    ]),
                    proptest::sample::select(vec![
                        " web1 kernel: ", "  web1 kernel: ", " web1  kernel: ", " web1 kernel:  ",
                        " we$b1 kernel: ", " web1 sshd: ", " web1 kernel:", " web2 kernel: ",
                        " web1 kernelx: ", " 1.2.3.4 kernel: ", " INPUT-DROP: kernel: ", " web1",
                    ]),
                    proptest::sample::select(vec!["[1.5] ", "[ 12.25]  ", "[1a] ", "", "[] ", "[1.5]"]),
                    proptest::sample::select(vec![
                        "INPUT-DROP: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2",
                        "DROP IN=eth0 OUT= MAC=aa:bb SRC=2600::1 DST=2600::2 PROTO=TCP SPT=1 DPT=2 ACK",
                        "INPUT-DROP: IN=eth0 OUT= SRC=x DST=5.6.7.8 PROTO=UDP",
                        "hello INPUT-DROP: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2",
                        "INPUT-DROP: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2\r",
                    ]),
                ),
                1..12,
            ),
        ) {
            let prefixes = ["INPUT-DROP: ", "DROP "];
            let mut reader = parser(&prefixes);
            for (stamp, head, uptime, tail) in lines {
                let line = format!("{stamp}{head}{uptime}{tail}");
                let after = reader.parse(line.as_bytes());
                let alone = parser(&prefixes).parse(line.as_bytes());
                proptest::prop_assert_eq!(after, alone, "{:?}", line);
            }
        }
    }

    /// When the fast reader takes a line, the general reader reads the same fields from it,
    /// and the flags it saw are those [`is_answer`] finds.
    fn readers_agree(line: &[u8]) {
        let key = |f: Fields<'_>| {
            (
                f.mac.map(<[u8]>::to_vec),
                f.src,
                f.dst,
                f.proto.to_string(),
                f.spt,
                f.dpt,
            )
        };
        let Some(fast) = fields_in_order(line, &mut Memo::default()) else {
            return;
        };
        let text = String::from_utf8_lossy(line);
        if let Some(flag) = fast.tcp_flag {
            assert_eq!(flag, is_answer(line, fast.proto), "{text}");
        }
        assert_eq!(Ok(key(fast)), fields_by_name(line).map(key), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn fast_and_general_readers_agree_on_any_words(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "IN=eth0", "OUT=", "MAC=aa:bb", "MAC=", "MAC=zz", "SRC=1.2.3.4",
                    "SRC=2600::1", "SRC=::ffff:1.2.3.4", "DST=5.6.7.8", "DST=x", "LEN=40",
                    "PROTO=TCP", "PROTO=6", "PROTO=UDP", "PROTO=ICMP", "PROTO=", "PROTO=T\u{e9}",
                    "SPT=1", "SPT=99999", "DPT=22", "DPT=", "ACK", "RST", "SYN", "ACKS", "[SRC=9.9.9.9",
                    "x[", "]", "", "TYPE=3", "IN=\u{e9}",
                ]),
                0..14,
            ),
            head in 0usize..4,
        ) {
            // The usual start most of the time, so that the fast reader is tried.
            let start = ["IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 ", "IN=eth0 OUT= MAC=aa:bb SRC=1.2.3.4 DST=5.6.7.8 ",
                "IN=eth0 OUT= ", ""][head];
            let line = format!("{start}{}", words.join(" "));
            readers_agree(line.as_bytes());
        }
    }

    const PSAD_INVALID: &str = "Jan 25 23:51:25 fw kernel: DROP INVALID IN=eth0 OUT= \
        MAC=00:13:46:3a:41:36:00:1b:b9:76:9c:e4:08:00 SRC=3.5.140.2 DST=192.0.2.1 LEN=40 \
        TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=443 DPT=51234 WINDOW=0 RES=0x00 RST URGP=0";

    #[test]
    fn overlapping_prefixes_the_longest_at_a_place_wins() {
        let mut p = parser(&["DROP ", "DROP INVALID "]);
        assert_eq!(packet(&mut p, PSAD_INVALID).prefix, 1);
        let mut p = parser(&["DROP INVALID ", "DROP "]);
        assert_eq!(packet(&mut p, PSAD_INVALID).prefix, 0);
        // Earlier in the line beats longer.
        let mut p = parser(&["INVALID ", "DROP INVALID "]);
        assert_eq!(packet(&mut p, PSAD_INVALID).prefix, 1);
    }

    #[test]
    fn words_between_the_prefix_and_in_are_passed_over() {
        let mut p = parser(&["DROP "]);
        let got = packet(&mut p, PSAD_INVALID);
        assert_eq!(got.src, "3.5.140.2".parse::<IpAddr>().unwrap());
        assert_eq!(got.dpt, Some(51234));
        let mut p = parser(&["[UFW "]);
        let line = "May 29 06:53:55 vultr kernel: [547219.375133] [UFW BLOCK] IN=ens3 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2";
        assert_eq!(packet(&mut p, line).dpt, Some(2));
        // A field first is still not a netfilter line.
        let mut p = parser(&["DROP "]);
        let line =
            "Jan 25 23:51:25 fw kernel: DROP OUT= IN=eth0 SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP";
        assert_eq!(
            p.parse(line.as_bytes()),
            Line::Malformed("no IN= after the prefix")
        );
    }

    #[test]
    fn prefix_text_in_the_host_name_does_not_hide_the_one_in_the_message() {
        let mut p = parser(&["web", "INPUT-DROP:"]);
        let line = "Jan 25 23:51:25 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=22";
        assert_eq!(packet(&mut p, line).prefix, 1);
        // The uptime stamp is not the message either.
        let mut p = parser(&["1]", "DROP:"]);
        let line = "Jan 25 23:51:25 h kernel: [ 12.1] DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP";
        assert_eq!(packet(&mut p, line).prefix, 1);
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_ipv4_address() {
        let mut p = parser(&["INPUT-DROP:"]);
        let v4: IpAddr = "3.5.140.2".parse().unwrap();
        for src in [
            "::ffff:3.5.140.2",
            "::FFFF:3.5.140.2",
            "0000:0000:0000:0000:0000:ffff:0305:8c02",
        ] {
            let line = format!(
                "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC={src} DST=::ffff:192.0.2.1 LEN=60 PROTO=TCP SPT=1 DPT=22"
            );
            let got = packet(&mut p, &line);
            assert_eq!(got.src, v4, "{src}");
            assert_eq!(got.dst, "192.0.2.1".parse::<IpAddr>().unwrap());
        }
        // In any field order too (the general reader).
        let line = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= DST=192.0.2.1 SRC=::ffff:3.5.140.2 PROTO=TCP";
        assert_eq!(packet(&mut p, line).src, v4);
        // Not the IPv4-compatible form, which is a real IPv6 address.
        let line = "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=::3.5.140.2 DST=192.0.2.1 PROTO=TCP";
        assert!(packet(&mut p, line).src.is_ipv6());
        // Nor a mapped source in an IPv6 packet, which no such packet travels with: it keeps
        // its mapped form, no IPv4 host's address (in the fast reader and the general one).
        for line in [
            "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= SRC=::ffff:3.5.140.2 DST=2001:db8::1 LEN=60 TC=0 HOPLIMIT=50 FLOWLBL=0 PROTO=TCP SPT=1 DPT=22",
            "Jan 25 23:51:25 h kernel: INPUT-DROP:IN=eth0 OUT= DST=2001:db8::1 SRC=::ffff:3.5.140.2 PROTO=TCP",
        ] {
            assert_eq!(
                packet(&mut p, line).src,
                "::ffff:3.5.140.2".parse::<std::net::Ipv6Addr>().unwrap(),
                "{line}"
            );
        }
    }

    #[test]
    fn proto_is_a_known_name_or_a_number() {
        let mut p = parser(&["D:"]);
        let line = |proto: &str| {
            format!(
                "Jan 25 23:51:25 h kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 LEN=40 PROTO={proto} SPT=1 DPT=22"
            )
        };
        for good in [
            "TCP", "UDP", "UDPLITE", "ICMP", "ICMPv6", "AH", "ESP", "0", "47", "255",
        ] {
            assert_eq!(packet(&mut p, &line(good)).proto, good);
        }
        for bad in [
            "TCP\rBcc:y@evil.test",
            "TCP\x1b[31m",
            "TCP\u{202e}",
            "=HYPERLINK(\"x\")",
            "tcp",
            "256",
            "1e3",
            "0047",
            "06",
            "006",
            "00",
        ] {
            assert_eq!(
                p.parse(line(bad).as_bytes()),
                Line::Malformed("bad PROTO="),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mac_and_host_outside_their_alphabet_are_malformed() {
        let mut p = parser(&["D:"]);
        let mac = "Jan 25 23:51:25 h kernel: D:IN=eth0 OUT= MAC=00:11:<b>:x SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=22";
        assert_eq!(p.parse(mac.as_bytes()), Line::Malformed("bad MAC="));
        for host in ["web\u{202e}1", "h\x1b[31m", "=cmd|x", "h\"x"] {
            let line = format!(
                "Jan 25 23:51:25 {host} kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=22"
            );
            assert_eq!(
                p.parse(line.as_bytes()),
                Line::Malformed("bad host name"),
                "{host:?}"
            );
        }
        for host in ["web-1.example.net", "2001:db8::5", "sd_1"] {
            let line = format!(
                "Jan 25 23:51:25 {host} kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=22"
            );
            assert_eq!(packet(&mut p, &line).host, host.as_bytes());
        }
        let port = "Jan 25 23:51:25 h kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=+1 DPT=22";
        assert_eq!(p.parse(port.as_bytes()), Line::Malformed("bad port"));
    }

    #[test]
    fn prefix_ending_in_cr_or_newline_does_not_panic() {
        let mut p = parser(&["D:\r", "X\nY"]);
        let line = "Jan 25 23:51:25 h kernel: D:\r";
        assert_eq!(p.parse(line.as_bytes()), Line::Other);
    }

    #[test]
    fn december_read_in_january_is_last_year() {
        let mut p = parser(&["D:"]);
        let dec = "Dec 31 23:59:59 h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        let jan = "Jan  1 00:00:01 h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        assert_eq!(packet(&mut p, dec).time, at("2025-12-31T23:59:59Z"));
        assert_eq!(packet(&mut p, jan).time, at("2026-01-01T00:00:01Z"));
        let eve = DateTime::parse_from_rfc3339("2026-12-31T23:59:50Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut p = LineParser::new(&["D:".to_string()], Zone::Utc, eve);
        let ahead = jan.replace("00:00:01", "00:00:05");
        assert_eq!(packet(&mut p, &ahead).time, at("2027-01-01T00:00:05Z"));
        assert_eq!(packet(&mut p, dec).time, at("2026-12-31T23:59:59Z"));
        let noon = DateTime::parse_from_rfc3339("2026-12-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut p = LineParser::new(&["D:".to_string()], Zone::Utc, noon);
        let morning = jan.replace("00:00:01", "10:00:00");
        assert_eq!(packet(&mut p, &morning).time, at("2026-01-01T10:00:00Z"));
    }

    /// A file last written in December holds no line of this January: its January is last
    /// January (a yearly rotated `fw-2025`, read on Jan 20), whether its time or its last line
    /// says so. Neither can move a line into an earlier year alone: a file written after now
    /// (a clock set back since, or a pinned one) leaves the year to now, and so does a last
    /// line older than the file's time (forged, or a host's clock set wrong).
    #[test]
    fn a_year_less_stamp_is_no_later_than_its_file_was_written() {
        let now = DateTime::parse_from_rfc3339("2026-01-20T10:00:00Z")
            .unwrap()
            .to_utc();
        let mut p = LineParser::new(&["D:".to_string()], Zone::Utc, now);
        let jan = "Jan 12 08:00:00 h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        let december = Some(at("2025-12-31T23:59:00Z"));
        for (modified, last_line, year) in [
            (december, None, "2025"),
            (december, december, "2025"),
            (Some(at("2025-06-01T00:00:00Z")), december, "2025"),
            (Some(at("2026-01-19T00:00:00Z")), december, "2026"),
            (Some(at("2026-06-01T00:00:00Z")), december, "2026"),
            (None, december, "2026"),
        ] {
            p.written_at(modified, last_line);
            let got = packet(&mut p, jan).time;
            assert_eq!(
                got,
                at(&format!("{year}-01-12T08:00:00Z")),
                "{modified:?} {last_line:?}"
            );
        }
    }

    /// On New Year's Eve a host two hours ahead of UTC logs the new year: a file whose last
    /// line is stamped then (in the year nearest the file's time) has its `Jan  1` lines read
    /// as the new year's, not as last January's; a line alone, or a file whose last line is
    /// this year's, still takes last January.
    #[test]
    fn a_file_whose_last_line_is_in_the_new_year_is_read_from_there() {
        let now = DateTime::parse_from_rfc3339("2026-12-31T22:15:00Z")
            .unwrap()
            .to_utc();
        let mut p = LineParser::new(&["D:".to_string()], Zone::Utc, now);
        let line = |stamp: &str| {
            format!("{stamp} h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP")
        };
        let modified = at("2026-12-31T22:14:00Z");
        let last = p.time_near(line("Jan  1 00:14:00").as_bytes(), modified);
        assert_eq!(last, Some(at("2027-01-01T00:14:00Z")));
        p.written_at(Some(modified), last);
        assert_eq!(
            packet(&mut p, &line("Jan  1 00:05:00")).time,
            at("2027-01-01T00:05:00Z")
        );
        assert_eq!(
            packet(&mut p, &line("Dec 31 23:59:00")).time,
            at("2026-12-31T23:59:00Z")
        );
        // A yearly file's last line is this evening's: its first lines are last January's.
        let last = p.time_near(line("Dec 31 22:13:00").as_bytes(), modified);
        p.written_at(Some(modified), last);
        assert_eq!(
            packet(&mut p, &line("Jan  1 00:05:00")).time,
            at("2026-01-01T00:05:00Z")
        );
        p.written_at(None, None);
        assert_eq!(
            packet(&mut p, &line("Jan  1 00:06:00")).time,
            at("2026-01-01T00:06:00Z")
        );
        // Without a last line, a time less than a day old (a network file system's clock two
        // hours behind) says nothing: the new year's line is the new year's.
        let now = DateTime::parse_from_rfc3339("2027-01-01T00:35:00Z")
            .unwrap()
            .to_utc();
        let mut p = LineParser::new(&["D:".to_string()], Zone::Utc, now);
        p.written_at(Some(at("2026-12-31T22:31:00Z")), None);
        assert_eq!(
            packet(&mut p, &line("Jan  1 00:30:00")).time,
            at("2027-01-01T00:30:00Z")
        );
        // No line without a prefix tells the file's time.
        assert_eq!(
            p.time_near(b"Jan  1 00:14:00 h kernel: other", modified),
            None
        );
    }

    /// A Feb 29 line read in a year that has none is the last leap year's: stale, not a line
    /// without a time.
    #[test]
    fn feb_29_read_two_years_later_is_the_last_leap_years() {
        let at_time = |now: &str| {
            let now = DateTime::parse_from_rfc3339(now).unwrap().to_utc();
            LineParser::new(&["D:".to_string()], Zone::Utc, now)
        };
        let leap = "Feb 29 12:00:00 h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        for (now, expected) in [
            ("2026-03-01T00:00:00Z", "2024-02-29T12:00:00Z"),
            ("2025-01-10T00:00:00Z", "2024-02-29T12:00:00Z"),
            ("2024-03-01T00:00:00Z", "2024-02-29T12:00:00Z"),
            ("2028-02-28T13:00:00Z", "2028-02-29T12:00:00Z"),
            ("2028-02-28T11:00:00Z", "2024-02-29T12:00:00Z"),
            ("2103-06-01T00:00:00Z", "2096-02-29T12:00:00Z"),
        ] {
            assert_eq!(packet(&mut at_time(now), leap).time, at(expected), "{now}");
        }
        // A day no year has is no time.
        let never = leap.replace("Feb 29", "Feb 30");
        assert_eq!(
            at_time("2026-03-01T00:00:00Z").parse(never.as_bytes()),
            Line::Malformed("no syslog timestamp")
        );
    }

    #[test]
    fn named_zone_applies_to_bsd_stamps_only() {
        let now = Utc::now();
        let prefixes = vec!["D:".to_string()];
        let mut p = LineParser::new(&prefixes, Zone::Named(chrono_tz::Europe::Berlin), now);
        let bsd = "Jan 15 12:00:00 h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        let got = packet(&mut p, bsd).time;
        let expected_year = if now.month() == 1 && now.day() < 15 {
            now.year() - 1
        } else {
            now.year()
        };
        assert_eq!(got, at(&format!("{expected_year}-01-15T11:00:00Z")));
        let rfc = "2026-01-15T12:00:00Z h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP";
        assert_eq!(packet(&mut p, rfc).time, at("2026-01-15T12:00:00Z"));
    }

    #[test]
    fn answers_to_our_own_traffic_are_told_apart() {
        let f = |t: &str| t.as_bytes().to_vec();
        let cases = [
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=443 DPT=5 WINDOW=1 RES=0x00 ACK SYN URGP=0",
                "TCP",
                true,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=443 DPT=5 WINDOW=0 RES=0x00 RST URGP=0",
                "TCP",
                true,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=4 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0",
                "TCP",
                false,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=4 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0 ACKS",
                "TCP",
                false,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=ICMP TYPE=3 CODE=3 [SRC=5.6.7.8 DST=1.2.3.4 PROTO=TCP SPT=1 DPT=2 ACK ]",
                "ICMP",
                true,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=2",
                "ICMP",
                false,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=2",
                "ICMP",
                true,
            ),
            (
                "IN=eth0 OUT= SRC=::1 DST=::2 PROTO=ICMPv6 TYPE=1 CODE=4",
                "ICMPv6",
                true,
            ),
            (
                "IN=eth0 OUT= SRC=::1 DST=::2 PROTO=ICMPv6 TYPE=128 CODE=0",
                "ICMPv6",
                false,
            ),
            (
                "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=53 DPT=5 LEN=40",
                "UDP",
                false,
            ),
        ];
        for (text, proto, answer) in cases {
            assert_eq!(is_answer(&f(text), proto), answer, "{text}");
        }
        // The quoted packet's flags are not the outer packet's.
        let quoted =
            "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=4 DPT=22 SYN [SRC=5.6.7.8 ACK ]";
        assert!(!is_answer(&f(quoted), "TCP"));
        // The letters of a flag inside another word (an interface, a host) are not the flag.
        let inside = "IN=BACKUP OUT=FIRST SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP SPT=4 DPT=22 SYN";
        assert!(!is_answer(&f(inside), "TCP"));
        assert!(is_answer(&f(&format!("{inside} RST")), "TCP"));
    }

    /// A parser of Berlin's BSD stamps on the morning after autumn's repeated hour.
    fn berlin_in_autumn() -> LineParser {
        let now = DateTime::parse_from_rfc3339("2026-10-25T04:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let zone = Zone::parse("Europe/Berlin").unwrap();
        LineParser::new(&["D:".to_string()], zone, now)
    }

    fn berlin_line(stamp: &str) -> String {
        format!("Oct 25 {stamp} h kernel: D:IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP")
    }

    /// Syslog writes the hour Berlin's clock shows twice twice: a line of the second pass is
    /// an hour after the line of the first with the same text, not the same time.
    #[test]
    fn a_line_of_the_repeated_hours_second_pass_is_read_an_hour_later_than_the_first() {
        let mut p = berlin_in_autumn();
        let read = [
            ("01:59:59", "2026-10-25T01:59:59+02:00"),
            ("02:00:00", "2026-10-25T02:00:00+02:00"),
            ("02:30:00", "2026-10-25T02:30:00+02:00"),
            // A host twenty minutes behind the one before is still in the first pass.
            ("02:10:00", "2026-10-25T02:10:00+02:00"),
            ("02:59:59", "2026-10-25T02:59:59+02:00"),
            // A line stamped ahead of the clock, then the first pass goes on.
            ("06:00:00", "2026-10-25T06:00:00+01:00"),
            ("02:59:59", "2026-10-25T02:59:59+02:00"),
            // Another host's line a second behind is still the first pass.
            ("02:59:58", "2026-10-25T02:59:58+02:00"),
            ("02:00:00", "2026-10-25T02:00:00+01:00"),
            ("02:00:00", "2026-10-25T02:00:00+01:00"),
            // Three quarters of an hour without a line, in the second pass.
            ("02:45:00", "2026-10-25T02:45:00+01:00"),
            ("02:30:00", "2026-10-25T02:30:00+01:00"),
            ("02:29:59", "2026-10-25T02:29:59+01:00"),
            ("02:59:59", "2026-10-25T02:59:59+01:00"),
            ("03:00:00", "2026-10-25T03:00:00+01:00"),
            // A host behind the others, still in its second pass after the log host's.
            ("02:59:30", "2026-10-25T02:59:30+01:00"),
            ("03:00:01", "2026-10-25T03:00:01+01:00"),
        ];
        for (stamp, expected) in read {
            assert_eq!(
                packet(&mut p, &berlin_line(stamp)).time,
                at(expected),
                "{stamp}"
            );
        }
    }

    /// The limit of reading the repeated hour from the line before: a line of a host whose
    /// clock is more than half the hour behind, logged late in the first pass, cannot be told
    /// from the clock going back, and the lines after it are read in the second pass until
    /// the hour is over (an hour late) - whoever logged them. Pinned so that a change of the
    /// rule is a choice.
    #[test]
    fn a_line_more_than_half_the_hour_behind_in_the_first_pass_is_taken_for_the_second() {
        let mut p = berlin_in_autumn();
        for (stamp, expected) in [
            ("02:50:00", "2026-10-25T02:50:00+02:00"),
            // Forty minutes behind: taken for the second pass beginning.
            ("02:10:00", "2026-10-25T02:10:00+01:00"),
            // The log host's next line is then read in the second pass too.
            ("02:50:01", "2026-10-25T02:50:01+01:00"),
        ] {
            assert_eq!(
                packet(&mut p, &berlin_line(stamp)).time,
                at(expected),
                "{stamp}"
            );
        }
        // Twenty-nine minutes behind is still the first pass.
        let mut p = berlin_in_autumn();
        for (stamp, expected) in [
            ("02:50:00", "2026-10-25T02:50:00+02:00"),
            ("02:21:01", "2026-10-25T02:21:01+02:00"),
            ("02:50:01", "2026-10-25T02:50:01+02:00"),
        ] {
            assert_eq!(
                packet(&mut p, &berlin_line(stamp)).time,
                at(expected),
                "{stamp}"
            );
        }
    }

    /// A reader that resumes a file, or starts in its middle, is told what came before; told
    /// nothing, it reads the first of the two.
    #[test]
    fn a_reader_told_what_came_before_reads_the_repeated_hour_from_there() {
        let line = berlin_line("02:15:00");
        let mut p = berlin_in_autumn();
        p.follows(Some(at("2026-10-25T02:50:00+02:00")));
        assert_eq!(packet(&mut p, &line).time, at("2026-10-25T02:15:00+01:00"));
        p.follows(Some(at("2026-10-25T01:50:00+02:00")));
        assert_eq!(packet(&mut p, &line).time, at("2026-10-25T02:15:00+02:00"));
        p.follows(None);
        assert_eq!(packet(&mut p, &line).time, at("2026-10-25T02:15:00+02:00"));
        // Nor from a time after the clock.
        p.follows(Some(at("2026-10-25T06:00:00+01:00")));
        assert_eq!(packet(&mut p, &line).time, at("2026-10-25T02:15:00+02:00"));
        // Read without the reader: the stamp, and whether what came before decided it.
        let after = Some(at("2026-10-25T02:10:00+01:00"));
        assert_eq!(
            p.stamp_time(line.as_bytes(), after),
            Some((at("2026-10-25T02:15:00+01:00"), true))
        );
        let before = berlin_line("01:15:00");
        assert_eq!(
            p.stamp_time(before.as_bytes(), after),
            Some((at("2026-10-25T01:15:00+02:00"), false))
        );
        let rfc = "<4>2026-10-25T02:15:00+01:00 h kernel: D:IN=eth0";
        assert_eq!(
            p.stamp_time(rfc.as_bytes(), None),
            Some((at("2026-10-25T01:15:00Z"), false))
        );
        assert_eq!(p.stamp_time(b"-- MARK --", None), None);
        assert_eq!(p.stamp_time(b"", None), None);
        assert_eq!(p.stamp_time(b"<4", None), None);
    }

    /// Zones whose clocks go back other than by an hour at 03:00: Lord Howe by half an hour
    /// at 02:00, Santiago from midnight to 23:00 the day before.
    #[test]
    fn repeated_times_of_half_an_hour_and_at_midnight_are_read_from_the_line_before() {
        let reading = |zone: &str, local: &str, after: &str| {
            let zone = Zone::parse(zone).unwrap();
            let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
            zone.reading(local, Some(at(after))).unwrap()
        };
        // Lord Howe: 01:30-02:00 twice on 5 April 2026, at +11:00 then +10:30.
        let howe = "Australia/Lord_Howe";
        assert_eq!(
            reading(howe, "2026-04-05 01:40:00", "2026-04-05T01:35:00+11:00"),
            (at("2026-04-05T01:40:00+11:00"), true)
        );
        assert_eq!(
            reading(howe, "2026-04-05 01:31:00", "2026-04-05T01:59:00+11:00"),
            (at("2026-04-05T01:31:00+10:30"), true)
        );
        assert_eq!(
            reading(howe, "2026-04-05 01:59:00", "2026-04-05T01:31:00+10:30"),
            (at("2026-04-05T01:59:00+10:30"), true)
        );
        // Santiago: 23:00-24:00 of 4 April 2026 twice, at -03:00 then -04:00.
        let santiago = "America/Santiago";
        assert_eq!(
            reading(santiago, "2026-04-04 23:05:00", "2026-04-04T23:58:00-03:00"),
            (at("2026-04-04T23:05:00-04:00"), true)
        );
        assert_eq!(
            reading(santiago, "2026-04-04 23:05:00", "2026-04-04T22:58:00-03:00"),
            (at("2026-04-04T23:05:00-03:00"), true)
        );
        // Not repeated: whatever came before.
        assert_eq!(
            reading(santiago, "2026-04-05 00:05:00", "2026-04-04T23:58:00-04:00"),
            (at("2026-04-05T00:05:00-04:00"), false)
        );
    }

    /// A time the clock skipped is read with the offset before the jump, not an hour early
    /// (which made a line logged at 02:30 the first of a source that began at 01:59:58).
    #[test]
    fn a_time_in_the_spring_gap_is_read_as_winter_time_not_an_hour_early() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let at = |text: &str| {
            let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
            berlin.to_utc(local).unwrap()
        };
        let utc = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().timestamp();
        assert_eq!(at("2026-03-29 02:30:00"), utc("2026-03-29T02:30:00+01:00"));
        assert_eq!(at("2026-03-29 01:59:59"), utc("2026-03-29T01:59:59+01:00"));
        assert_eq!(at("2026-03-29 03:00:00"), utc("2026-03-29T03:00:00+02:00"));
        // The hour repeated in autumn: the first of the two.
        assert_eq!(at("2026-10-25 02:30:00"), utc("2026-10-25T02:30:00+02:00"));
        // New York skips 02:00-03:00 too, at -05:00.
        let ny = Zone::parse("America/New_York").unwrap();
        let local = NaiveDateTime::parse_from_str("2026-03-08 02:15:00", "%Y-%m-%d %H:%M:%S");
        assert_eq!(
            ny.to_utc(local.unwrap()),
            Some(utc("2026-03-08T02:15:00-05:00"))
        );
    }
}
