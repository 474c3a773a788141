//! The log excerpt a report carries as evidence: the `sample_seconds` window holding the most
//! lines from the reported IPs, capped in lines, cleaned of control characters and, if asked,
//! of the operator's own MAC and addresses.
//!
//! [`WindowTracker`] finds that window in one pass over time-ordered lines while holding at most
//! `sample_seconds × max_lines` lines, however long the log: a window is judged when its first
//! second can no longer gain lines, and only the best one seen is kept.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::config::Redact;
use crate::spool::{KeptLine, Spool};

/// One log line kept as evidence, with the second it was logged and its source address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EvidenceLine {
    pub time: i64,
    pub ip: IpAddr,
    /// The line as logged, with control characters removed.
    pub text: String,
}

/// A window of the log: its first second, how many lines fell in it, and the first of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    pub start: i64,
    pub count: u64,
    pub lines: Vec<EvidenceLine>,
}

/// One second of lines: how many, and the raw text of the first `cap` of them in one buffer
/// (buffers are reused, so a busy log costs no allocation per line).
#[derive(Default)]
struct Bucket {
    second: i64,
    count: u64,
    text: Vec<u8>,
    /// End offset in `text`, source address and own second of each kept line (a line logged
    /// after a later one counts in the later second, but is still the line it is).
    lines: Vec<(usize, IpAddr, i64)>,
}

/// Finds the densest window of a stream of lines in time order.
pub struct WindowTracker {
    seconds: i64,
    cap: usize,
    buckets: VecDeque<Bucket>,
    spare: Vec<Bucket>,
    sum: u64,
    /// The best window so far, its lines still raw (cleaned once, by `finish`).
    best: Option<RawWindow>,
}

#[derive(Default)]
struct RawWindow {
    start: i64,
    count: u64,
    text: Vec<u8>,
    /// End offset in `text`, source address and second of each line.
    lines: Vec<(usize, IpAddr, i64)>,
}

impl WindowTracker {
    pub fn new(seconds: u32, cap: usize) -> Self {
        Self {
            seconds: i64::from(seconds.max(1)),
            cap: cap.max(1),
            buckets: VecDeque::new(),
            spare: Vec::new(),
            sum: 0,
            best: None,
        }
    }

    /// Counts a line logged at `time`. A line older than the one before it (several hosts'
    /// clocks, a reordered relay) counts with the newest second instead of reopening closed
    /// windows.
    pub fn push(&mut self, time: i64, ip: IpAddr, text: &[u8]) {
        let pushed = self.push_with(time, ip, |kept| {
            kept.extend_from_slice(text);
            Ok::<(), std::convert::Infallible>(())
        });
        match pushed {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// [`WindowTracker::push`] of a line whose text `text` appends to the buffer given, asked
    /// only when the line is kept (lines set aside are read back only then).
    pub fn push_with<E>(
        &mut self,
        time: i64,
        ip: IpAddr,
        text: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.buckets.back().is_none_or(|last| time > last.second) {
            while self
                .buckets
                .front()
                .is_some_and(|f| f.second <= time - self.seconds)
            {
                self.close_front();
            }
            let mut bucket = self.spare.pop().unwrap_or_default();
            bucket.second = time;
            self.buckets.push_back(bucket);
        }
        if let Some(bucket) = self.buckets.back_mut() {
            bucket.count += 1;
            if bucket.lines.len() < self.cap {
                text(&mut bucket.text)?;
                bucket.lines.push((bucket.text.len(), ip, time));
            }
        }
        self.sum += 1;
        Ok(())
    }

    /// The densest window seen (the earliest of equals), or `None` if no line was pushed.
    pub fn finish(mut self) -> Option<Window> {
        while !self.buckets.is_empty() {
            self.close_front();
        }
        let best = self.best?;
        let mut start = 0;
        let lines = best
            .lines
            .iter()
            .map(|&(end, ip, time)| {
                let line = EvidenceLine {
                    time,
                    ip,
                    text: clean(&best.text[start..end]),
                };
                start = end;
                line
            })
            .collect();
        Some(Window {
            start: best.start,
            count: best.count,
            lines,
        })
    }

    /// Every bucket left lies within `seconds` of the front: together they are the window
    /// that starts at the front, complete now that a later second has arrived.
    fn close_front(&mut self) {
        let Some(front_second) = self.buckets.front().map(|b| b.second) else {
            return;
        };
        if self.best.as_ref().is_none_or(|b| self.sum > b.count) {
            let best = self.best.get_or_insert_with(RawWindow::default);
            best.start = front_second;
            best.count = self.sum;
            best.text.clear();
            best.lines.clear();
            'copy: for bucket in &self.buckets {
                let mut from = 0;
                for &(end, ip, time) in &bucket.lines {
                    if best.lines.len() == self.cap {
                        break 'copy;
                    }
                    best.text.extend_from_slice(&bucket.text[from..end]);
                    best.lines.push((best.text.len(), ip, time));
                    from = end;
                }
            }
        }
        if let Some(mut front) = self.buckets.pop_front() {
            self.sum -= front.count;
            front.count = 0;
            front.text.clear();
            front.lines.clear();
            self.spare.push(front);
        }
    }
}

/// The densest window among lines already kept (from earlier runs and this one).
pub fn densest(mut lines: Vec<EvidenceLine>, seconds: u32, cap: usize) -> Option<Window> {
    // Stable: lines of one second keep their log order. Identical lines are separate packets.
    lines.sort_by_key(|l| l.time);
    let mut tracker = WindowTracker::new(seconds, cap);
    for line in &lines {
        tracker.push(line.time, line.ip, line.text.as_bytes());
    }
    tracker.finish()
}

/// [`densest`] of two lists of lines, each in time order, taken as one in time order
/// without a copy of either: lines kept before (`a`, a short list) and lines read now (`b`,
/// maybe a long one, its text in `spool` and read only for the lines a window keeps),
/// different packets however alike their text.
pub fn densest_of_both(
    a: &[EvidenceLine],
    b: &[KeptLine],
    spool: &Spool,
    seconds: u32,
    cap: usize,
) -> std::io::Result<Option<Window>> {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    let mut tracker = WindowTracker::new(seconds, cap);
    let mut reader = spool.reader();
    loop {
        // The earlier first; of lines of one second, those of `a` (logged before) first.
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.time < x.time => {}
            (Some(x), _) => {
                tracker.push(x.time, x.ip, x.text.as_bytes());
                a.next();
                continue;
            }
            (None, None) => break,
            (None, Some(_)) => {}
        }
        if let Some(y) = b.next() {
            tracker.push_with(y.time, y.ip, |kept| {
                kept.extend_from_slice(reader.text(y)?.as_bytes());
                Ok::<(), std::io::Error>(())
            })?;
        }
    }
    Ok(tracker.finish())
}

/// Lines of `b` that `a` does not hold yet, counting equal lines as a multiset: a repeated
/// packet logs identical lines, and each is evidence of its own. Lines are equal by source and
/// text (the text holds the line's own stamp): a window kept by an older version gave a line
/// logged out of order its window's later second, and it is still the same line.
pub fn union(mut a: Vec<EvidenceLine>, b: Vec<EvidenceLine>) -> Vec<EvidenceLine> {
    type Key<'l> = (IpAddr, &'l str);
    let new: Vec<bool> = {
        let mut have: std::collections::HashMap<Key<'_>, usize, foldhash::fast::RandomState> =
            std::collections::HashMap::default();
        for l in &a {
            *have.entry((l.ip, l.text.as_str())).or_default() += 1;
        }
        (b.iter())
            .map(|l| match have.get_mut(&(l.ip, l.text.as_str())) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            })
            .collect()
    };
    a.extend(
        b.into_iter()
            .zip(new)
            .filter_map(|(l, new)| new.then_some(l)),
    );
    a.sort_by_key(|l| l.time);
    a
}

/// The longest line kept as evidence, in bytes. The kernel writes a LOG line in a few hundred;
/// a longer one was written by someone else (anyone may log as `kernel:`), and a flood of
/// megabyte lines must not fill the reporter's memory nor the desk's mailbox.
pub const MAX_KEPT_LINE: usize = 2048;

/// A line as it is kept: without the NUL bytes a crash left before it (see
/// `LineParser::parse_found`), cut after [`MAX_KEPT_LINE`] bytes (at a character's start), the
/// cut marked with ` …`.
pub fn kept_text(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let text = &text[text.iter().take_while(|b| **b == 0).count()..];
    if text.len() <= MAX_KEPT_LINE {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut cut = MAX_KEPT_LINE;
    while cut > 0 && text[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    let mut kept = text[..cut].to_vec();
    kept.extend_from_slice(" …".as_bytes());
    std::borrow::Cow::Owned(kept)
}

/// Log text made safe to show: invalid UTF-8 replaced, control characters, Unicode line
/// separators and invisible formatting characters (bidirectional overrides such as U+202E,
/// zero-width characters) removed, tabs turned into spaces.
pub fn clean(text: &[u8]) -> String {
    // Nearly every log line is printable ASCII already: asked of every byte without
    // stopping early, which the compiler turns into a look at many bytes at once (a flood
    // keeps a line of each of a million sources).
    let outside = text
        .iter()
        .fold(0u8, |any, &b| any | u8::from(b.wrapping_sub(0x20) >= 0x5f));
    if outside == 0 {
        return String::from_utf8(text.to_vec()).unwrap_or_default();
    }
    let text = String::from_utf8_lossy(text);
    text.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() || is_invisible_format(c) => None,
            c => Some(c),
        })
        .collect()
}

/// Text from a remote party (an API's message, a registry's answer) made safe to show on one
/// line: cleaned as log text is, white space folded, at most `max` characters (`…` marks a
/// cut).
pub fn clean_line(text: &str, max: usize) -> String {
    // Line ends part words: a program's lines run together read as one word across them.
    const BREAKS: [char; 7] = [
        '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    let one = clean(text.replace(BREAKS, " ").as_bytes());
    cut(one.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// `text`, at most `max` characters (`…` marks a cut).
pub fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Characters that change how text around them is shown without being seen themselves: a
/// reader of a report must see the bytes that were logged, in the order they were logged.
pub(crate) fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Hides the operator's own details in a line: `MAC=` values, and for `DST` the destination
/// address, the quoted source of an ICMP error (which is also the operator's address), the
/// router an ICMP redirect names (`GATEWAY=`, on the operator's own network), and a
/// host field that is an address (a log host writes the sender's address when it has no
/// name, and that is the operator's own: a packet line names the attacker only in `SRC=`).
///
/// Only the packet's own fields count: an ICMP error quotes the packet it answers as
/// `[SRC=… DST=… …]`, and only a bracket that opens such a quote switches to the inner packet.
/// Other bracketed words (`[UFW BLOCK]`, the kernel's `[547996.64]` uptime) change nothing.
pub fn redact(line: &str, what: &[Redact]) -> String {
    if what.is_empty() {
        return line.to_string();
    }
    let (mac, dst) = (what.contains(&Redact::Mac), what.contains(&Redact::Dst));
    if !dst {
        return redact_macs(line);
    }
    // A report shows three lines of each of a thousand addresses: each line is written into
    // one string, a word at a time.
    let mut out = String::with_capacity(line.len());
    let mut inner = false;
    for (i, token) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if token.starts_with("[SRC=") {
            inner = true;
        }
        let bare = token.strip_prefix('[').unwrap_or(token);
        // `--log-macdecode` prints the two addresses as MACSRC= and MACDST=.
        let is_mac = ["MAC=", "MACSRC=", "MACDST="]
            .iter()
            .any(|k| bare.starts_with(k));
        let hide = (mac && is_mac)
            || (dst
                && ((!inner && (bare.starts_with("DST=") || bare.starts_with("GATEWAY=")))
                    || (inner && bare.starts_with("SRC="))));
        match token.find('=').filter(|_| hide) {
            Some(eq) => {
                out.push_str(&token[..=eq]);
                out.push_str("redacted");
            }
            None if dst && (is_address(token) || spells_an_address(token)) => {
                out.push_str("redacted")
            }
            None => out.push_str(token),
        }
    }
    out
}

/// Whether `word`, no `key=value`, spells an IPv4 address as host names do: four numbers of
/// 0 to 255 in a row between dots or dashes, in either order (`ip-198-51-100-10`,
/// `static.10.100.51.198.clients.example.net`). A log line's syslog host is the machine
/// that logged it, ours: a name that spells an address spells one of ours (its IPv4 one,
/// also on a line about an IPv6 packet, or another of its addresses).
pub(crate) fn spells_an_address(word: &str) -> bool {
    if word.contains('=') {
        return false;
    }
    let mut in_a_row = 0;
    for part in word.split(['.', '-']) {
        let number = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        in_a_row = if number { in_a_row + 1 } else { 0 };
        if in_a_row == 4 {
            return true;
        }
    }
    false
}

/// [`redact`] of the MAC addresses alone, the default: only a word that starts with `MAC`
/// (after one `[`, if any) can change, so the line is searched for those three bytes and
/// copied around them, rather than split into words and written again word by word.
fn redact_macs(line: &str) -> String {
    static MAC: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"MAC"));
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    // Copied up to here.
    let mut done = 0;
    for at in MAC.find_iter(bytes) {
        if at < done {
            continue;
        }
        // A word's start: the line's, or a space's; or a `[` at one of those.
        let starts_word = |i: usize| i == 0 || bytes[i - 1] == b' ';
        let word_start =
            at == 0 || bytes[at - 1] == b' ' || (bytes[at - 1] == b'[' && starts_word(at - 1));
        let rest = &line[at..];
        // `--log-macdecode` prints the two addresses as MACSRC= and MACDST=.
        let Some(key) = ["MAC=", "MACSRC=", "MACDST="]
            .into_iter()
            .find(|k| rest.starts_with(k))
            .filter(|_| word_start)
        else {
            continue;
        };
        let end = memchr::memchr(b' ', &bytes[at..]).map_or(line.len(), |i| at + i);
        out.push_str(&line[done..at]);
        out.push_str(key);
        out.push_str("redacted");
        done = end;
    }
    out.push_str(&line[done..]);
    out
}

/// A word that is an IP address by itself (not a `KEY=value` field).
pub(crate) fn is_address(word: &str) -> bool {
    word.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_hexdigit() || b == b':')
        && word.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A program's or a server's lines, quoted on one line, stay apart as words whatever
    /// breaks them; other control characters are dropped.
    #[test]
    fn line_breaks_of_every_kind_part_the_words_they_stood_between() {
        for text in [
            "File too large\nsendmail: warning",
            "File too large\r\nsendmail: warning",
            "File too large\u{0B}sendmail: warning",
            "File too large\u{0C}sendmail: warning",
            "File too large\u{85}sendmail: warning",
            "File too large\u{2028}sendmail: warning",
            "File too large\u{2029}sendmail: warning",
        ] {
            assert_eq!(
                clean_line(text, 100),
                "File too large sendmail: warning",
                "{text:?}"
            );
        }
        assert_eq!(clean_line("a\u{7}b\u{1b}[2Jc", 100), "ab[2Jc");
    }

    /// The plain way to redact: every word its own string, joined again.
    fn redact_reference(line: &str, what: &[Redact]) -> String {
        if what.is_empty() {
            return line.to_string();
        }
        let mut inner = false;
        line.split(' ')
            .map(|token| {
                if token.starts_with("[SRC=") {
                    inner = true;
                }
                let bare = token.strip_prefix('[').unwrap_or(token);
                let mac = ["MAC=", "MACSRC=", "MACDST="]
                    .iter()
                    .any(|k| bare.starts_with(k));
                let ours = ["DST=", "GATEWAY="].iter().any(|k| bare.starts_with(k));
                let hide = (what.contains(&Redact::Mac) && mac)
                    || (what.contains(&Redact::Dst)
                        && ((!inner && ours) || (inner && bare.starts_with("SRC="))));
                if hide {
                    let eq = token.find('=').unwrap_or(0);
                    format!("{}redacted", &token[..=eq])
                } else if what.contains(&Redact::Dst)
                    && (token.parse::<IpAddr>().is_ok() || spells_an_address(token))
                {
                    "redacted".to_string()
                } else {
                    token.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A megabyte line is kept as its first 2 KiB, cut before a character, the cut marked;
    /// a line of the kernel's length is kept whole.
    #[test]
    fn a_line_is_kept_up_to_its_first_two_kib() {
        let short = b"Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 SRC=3.5.140.2";
        assert_eq!(kept_text(short).as_ref(), short);
        let long = [b"x".repeat(MAX_KEPT_LINE - 1), "é".repeat(500).into_bytes()].concat();
        let kept = clean(&kept_text(&long));
        // The 2,048th byte is the first of a two-byte character: the cut comes before it.
        assert_eq!(kept, "x".repeat(MAX_KEPT_LINE - 1) + " …");
        let megabyte = b"y".repeat(1 << 20);
        assert_eq!(kept_text(&megabyte).len(), MAX_KEPT_LINE + " …".len());
    }

    /// Cleaning character by character, with no shortcut for printable ASCII.
    fn clean_reference(text: &[u8]) -> String {
        String::from_utf8_lossy(text)
            .chars()
            .filter_map(|c| match c {
                '\t' => Some(' '),
                c if c.is_control() || is_invisible_format(c) => None,
                c => Some(c),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn clean_writes_what_the_character_by_character_reference_writes(
            text in prop::collection::vec(
                prop_oneof![
                    8 => 0x20u8..0x7f,
                    1 => prop::sample::select(vec![0x00u8, 0x09, 0x0a, 0x1f, 0x7e, 0x7f, 0x80, 0xc2, 0xe2, 0xff]),
                ],
                0..300,
            ),
        ) {
            prop_assert_eq!(clean(&text), clean_reference(&text));
        }

        #[test]
        fn redact_writes_what_the_word_by_word_reference_writes(
            words in prop::collection::vec(
                prop_oneof![
                    Just("MAC=52:54:00:12".to_string()),
                    Just("MACSRC=aa".to_string()),
                    Just("[MACDST=bb".to_string()),
                    Just("DST=198.51.100.10".to_string()),
                    Just("GATEWAY=198.51.100.1".to_string()),
                    Just("[GATEWAY=1.2.3.4".to_string()),
                    Just("SRC=3.5.140.2".to_string()),
                    Just("[SRC=198.51.100.10".to_string()),
                    Just("[DST=1.2.3.4".to_string()),
                    Just("[UFW".to_string()),
                    Just("[[MAC=cc".to_string()),
                    Just("XMAC=dd".to_string()),
                    Just("MACX=ee".to_string()),
                    Just("MAC".to_string()),
                    Just("[MAC=".to_string()),
                    Just("MACSRC".to_string()),
                    Just("198.51.100.10".to_string()),
                    Just("2001:db8::10".to_string()),
                    Just("::1".to_string()),
                    Just("ip-198-51-100-10".to_string()),
                    Just("static.10.100.51.198.clients.example".to_string()),
                    Just("ip-198-51-100-100".to_string()),
                    Just("DST=1.2.3.4".to_string()),
                    Just("1-2-3-4".to_string()),
                    Just(String::new()),
                    "[A-Z\\[=:é.0-9]{0,12}",
                ],
                0..24,
            ),
            what in prop::sample::subsequence(vec![Redact::Mac, Redact::Dst], 0..=2),
        ) {
            let line = words.join(" ");
            prop_assert_eq!(redact(&line, &what), redact_reference(&line, &what));
        }
    }

    fn line(time: i64, text: &str) -> EvidenceLine {
        EvidenceLine {
            time,
            ip: "3.5.140.2".parse().unwrap(),
            text: text.into(),
        }
    }

    fn run(times: &[i64], seconds: u32, cap: usize) -> Window {
        let mut t = WindowTracker::new(seconds, cap);
        for (i, &time) in times.iter().enumerate() {
            let l = line(time, &format!("l{i}"));
            t.push(time, l.ip, l.text.as_bytes());
        }
        t.finish().unwrap()
    }

    #[test]
    fn finds_the_densest_burst_among_sparse_lines() {
        let w = run(
            &[0, 100, 200, 300, 301, 302, 303, 304, 305, 400, 500],
            5,
            50,
        );
        assert_eq!(w.start, 300);
        assert_eq!(w.count, 5);
        let texts: Vec<_> = w.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["l3", "l4", "l5", "l6", "l7"]);
    }

    #[test]
    fn cap_keeps_the_first_lines_but_counts_all() {
        let w = run(&[10, 10, 10, 11, 11, 12], 5, 4);
        assert_eq!(w.count, 6);
        assert_eq!(w.lines.len(), 4);
        assert_eq!(w.lines[3].text, "l3");
    }

    #[test]
    fn earliest_of_equal_windows_wins_and_out_of_order_lines_count() {
        let w = run(&[0, 1, 50, 51], 5, 10);
        assert_eq!((w.start, w.count), (0, 2));
        let w = run(&[100, 99, 100, 200], 5, 10);
        assert_eq!((w.start, w.count), (100, 3));
    }

    #[test]
    fn brute_force_agrees_on_random_streams() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % 7
        };
        for _ in 0..200 {
            let mut times = Vec::new();
            let mut t = 0;
            for _ in 0..40 {
                t += next() as i64;
                times.push(t);
            }
            let w = run(&times, 5, 1000);
            let best = times
                .iter()
                .map(|&s| times.iter().filter(|&&x| x >= s && x < s + 5).count() as u64)
                .max()
                .unwrap();
            assert_eq!(w.count, best, "{times:?}");
        }
    }

    #[test]
    fn densest_keeps_identical_lines_and_log_order() {
        let pool = vec![line(5, "b"), line(5, "a"), line(5, "a"), line(1, "z")];
        let w = densest(pool, 5, 10).unwrap();
        let texts: Vec<_> = w.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["z", "b", "a", "a"]);
        assert_eq!(w.count, 4);
    }

    #[test]
    fn clean_strips_control_characters_and_bad_bytes() {
        assert_eq!(
            clean(b"a\r\nBcc: x\x1b[31m\tz\xff"),
            "aBcc: x[31m z\u{fffd}"
        );
        assert_eq!(clean("a\u{2028}b\u{85}c".as_bytes()), "abc");
        assert_eq!(
            clean("evil\u{202E}gpj.exe \u{2066}x\u{2069}\u{200B}y\u{FEFF}".as_bytes()),
            "evilgpj.exe xy",
            "bidirectional overrides and zero-width characters"
        );
    }

    #[test]
    fn redact_hides_own_mac_and_addresses() {
        let l = "h kernel: D:IN=eth0 OUT= MAC=aa:bb SRC=3.5.140.2 DST=192.0.2.1 PROTO=ICMP TYPE=3 [SRC=192.0.2.1 DST=3.5.140.2 ]";
        assert_eq!(
            redact(l, &[Redact::Mac, Redact::Dst]),
            "h kernel: D:IN=eth0 OUT= MAC=redacted SRC=3.5.140.2 DST=redacted PROTO=ICMP TYPE=3 [SRC=redacted DST=3.5.140.2 ]"
        );
        assert_eq!(redact(l, &[]), l);
        // A redirect names the router the host should use: one on the operator's network.
        let redirect = "h kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=ICMP TYPE=5 CODE=1 GATEWAY=192.0.2.254 [SRC=192.0.2.1 DST=3.5.140.9 ]";
        assert_eq!(
            redact(redirect, &[Redact::Dst]),
            "h kernel: D:IN=eth0 OUT= SRC=3.5.140.2 DST=redacted PROTO=ICMP TYPE=5 CODE=1 GATEWAY=redacted [SRC=redacted DST=3.5.140.9 ]"
        );
        assert_eq!(redact(redirect, &[Redact::Mac]), redirect);
        let decoded = "h kernel: D:IN=eth0 OUT= MACSRC=52:54:00:12:34:56 MACDST=fe:54:00:ab:cd:ef MACPROTO=0800 SRC=3.5.140.2 DST=192.0.2.1";
        assert_eq!(
            redact(decoded, &[Redact::Mac]),
            "h kernel: D:IN=eth0 OUT= MACSRC=redacted MACDST=redacted MACPROTO=0800 SRC=3.5.140.2 DST=192.0.2.1"
        );
    }

    /// A log host that names a sender by its address (it has no name) writes our address
    /// before `kernel:`: with `DST` redacted it was still shown there.
    #[test]
    fn redact_dst_hides_a_host_field_that_is_our_address() {
        for (host, dst) in [
            ("198.51.100.10", "198.51.100.10"),
            ("2001:db8::10", "2001:db8::10"),
            ("192.168.1.5", "198.51.100.10"),
        ] {
            let l = format!(
                "Jan 25 10:00:00 {host} kernel: [810294.788657] D:IN=eth0 OUT= SRC=3.5.140.2 DST={dst} PROTO=TCP SPT=1 DPT=22"
            );
            let r = redact(&l, &[Redact::Dst]);
            assert_eq!(
                r,
                "Jan 25 10:00:00 redacted kernel: [810294.788657] D:IN=eth0 OUT= SRC=3.5.140.2 DST=redacted PROTO=TCP SPT=1 DPT=22"
            );
            // Only with DST: the host keeps its name otherwise.
            assert!(redact(&l, &[Redact::Mac]).contains(&format!(" {host} kernel:")));
        }
        // Host names, stamps and the uptime are no addresses.
        let named = "2026-01-25T10:00:00+00:00 web1 kernel: [810294.788657] D:IN=eth0 SRC=3.5.140.2 DST=1.2.3.4";
        assert_eq!(
            redact(named, &[Redact::Dst]),
            "2026-01-25T10:00:00+00:00 web1 kernel: [810294.788657] D:IN=eth0 SRC=3.5.140.2 DST=redacted"
        );
        let padded = "Jan  5 10:00:00 cafe kernel: D:IN=eth0 SRC=3.5.140.2 DST=1.2.3.4";
        assert!(redact(padded, &[Redact::Dst]).starts_with("Jan  5 10:00:00 cafe kernel:"));
        // A name that spells our address, as hosting providers' names do: it was shown.
        for host in [
            "ip-94-130-10-20",
            "static.20.10.130.94.clients.your-server.de",
            "94-130-10-20.example.net",
        ] {
            let l = format!(
                "Jan 25 10:00:00 {host} kernel: D:IN=eth0 SRC=3.5.140.2 DST=94.130.10.20 PROTO=TCP"
            );
            assert!(
                redact(&l, &[Redact::Dst]).starts_with("Jan 25 10:00:00 redacted kernel:"),
                "{host}"
            );
        }
        // Another of our addresses than the packet's (a dual-stack host named after its IPv4
        // address, logging an IPv6 packet; a second address): ours all the same.
        let l =
            "Jan 25 10:00:00 ip-94-130-10-20 kernel: D:IN=eth0 SRC=2600:1f18::5 DST=2a01:4f8::10";
        assert!(redact(l, &[Redact::Dst]).starts_with("Jan 25 10:00:00 redacted kernel:"));
        // Names that spell no address are left.
        for host in [
            "web1",
            "host-12-34",
            "node-300-1-1-1",
            "db-10-0-0",
            "a1.b2.c3.d4",
        ] {
            let l =
                format!("Jan 25 10:00:00 {host} kernel: D:IN=eth0 SRC=3.5.140.2 DST=94.130.10.20");
            assert!(redact(&l, &[Redact::Dst]).contains(host), "{host}");
        }
    }

    /// A word spells an address when four numbers of 0 to 255 come in a row between dots or
    /// dashes.
    #[test]
    fn a_name_spells_an_address_by_four_numbers_in_a_row() {
        for yes in [
            "ip-198-51-100-10",
            "static.10.100.51.198.clients.example.net",
            "198-51-100-10.example.net",
            "k8s-node-10-0-0-1",
            "1.2.3.4.5",
        ] {
            assert!(spells_an_address(yes), "{yes}");
        }
        for no in [
            "web1",
            "ip-198-51-100",
            "ip-198-51-100-256",
            "ip-198-51-1000-10",
            "DST=1.2.3.4",
            "[810294.788657]",
            "",
        ] {
            assert!(!spells_an_address(no), "{no}");
        }
    }

    #[test]
    fn redact_dst_in_ufw_lines_hides_our_address_not_the_attacker() {
        // ufw's lines carry bracketed words before the packet: they are not a quoted packet.
        let l = "Jan 10 06:25:55 vps kernel: [547996.64] [UFW BLOCK] IN=eth0 OUT= MAC=56:00:03:aa:bb:cc:fe:00:03:aa:bb:cc:08:00 SRC=52.80.174.40 DST=158.247.1.2 LEN=44 PROTO=TCP SPT=41868 DPT=8080 WINDOW=1024 RES=0x00 SYN URGP=0";
        let r = redact(l, &[Redact::Mac, Redact::Dst]);
        assert!(r.contains(" SRC=52.80.174.40 "), "{r}");
        assert!(
            r.contains(" DST=redacted ") && !r.contains("158.247"),
            "{r}"
        );
        assert!(
            r.contains(" MAC=redacted ") && !r.contains("56:00:03"),
            "{r}"
        );
        assert!(r.contains("[547996.64] [UFW BLOCK] IN=eth0"), "{r}");
    }

    proptest::proptest! {
        /// The merge of a kept window and a read's lines finds the window the plain way
        /// finds in the two put one after the other and sorted.
        #[test]
        fn densest_of_both_agrees_with_densest_of_the_two_together(
            a in proptest::collection::vec((0i64..40, 0u8..4), 0..12),
            b in proptest::collection::vec((0i64..40, 0u8..4), 0..60),
            seconds in 1u32..8,
            cap in 1usize..6,
            set_aside: bool,
        ) {
            // Texts alike in both lists and within one (identical packets) and texts apart.
            let lines = |raw: &[(i64, u8)], tag: &str| -> Vec<EvidenceLine> {
                let mut lines: Vec<EvidenceLine> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, (t, shared))| match shared {
                        0 => line(*t, &format!("alike {t}")),
                        _ => line(*t, &format!("{tag} {i}")),
                    })
                    .collect();
                lines.sort_by_key(|l| l.time);
                lines
            };
            let (a, b) = (lines(&a, "a"), lines(&b, "b"));
            // The lines read now as a run keeps them: held, or set aside in a file.
            let dir = tempfile::tempdir().unwrap();
            let budget = if set_aside { 0 } else { u64::MAX };
            let spool = Spool::new(vec![dir.path().to_path_buf()], budget).with_block(64);
            let kept: Vec<KeptLine> = b.iter().map(|l| KeptLine::keep(&spool, l)).collect();
            prop_assert_eq!(spool.set_aside().is_some(), set_aside && !b.is_empty());
            let merged = densest_of_both(&a, &kept, &spool, seconds, cap).unwrap();
            let plain = densest([a.clone(), b.clone()].concat(), seconds, cap);
            proptest::prop_assert_eq!(merged, plain);
        }
    }
}
