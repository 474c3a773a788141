//! The log reader checked against a reference: a deliberately plain, line-at-a-time reader
//! written here from the format's rules alone (byte slices split on `\n`, `starts_with`, std's
//! address parser; no SIMD search, no buffers, no threads), and generated logs fed to both.
//!
//! The real reader (`ingest` over `parse`, fed by `source` or by forks on threads) must give
//! the same summary and the same per-IP observations whatever the read sizes, the buffer size,
//! where the input is cut between threads, and the mix of prefixes. Whenever the fast reader
//! changes, this is what keeps it honest. `PROPTEST_CASES` sets how many logs are tried.

use std::io::Read;
use std::net::IpAddr;

use abuse_mailer::clock::Zone;
use abuse_mailer::config::StartAt;
use abuse_mailer::ingest::{Attribution, Ingest, Summary};
use abuse_mailer::parse::LineParser;
use abuse_mailer::source;
use abuse_mailer::spool::Spool;
use proptest::prelude::*;
mod common;

use chrono::DateTime;
use common::reference::{Observations, ReadSetup as Setup, attribute, now, reference};

// ---------------------------------------------------------------------------------------
// The real reader, driven in the ways production drives it.
// ---------------------------------------------------------------------------------------

/// A reader that hands out its bytes in the given sizes, in turn.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    turn: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn parser(setup: &Setup) -> LineParser {
    LineParser::new(&setup.prefixes, Zone::Utc, now())
}

fn scan<'a>(setup: &Setup, attribute: &'a (dyn Fn(IpAddr) -> Attribution + Sync)) -> Ingest<'a> {
    static SPOOL: std::sync::LazyLock<Spool> = std::sync::LazyLock::new(Spool::in_memory);
    let mut ingest = Ingest::new(parser(setup), 1, 5, 20, attribute, &SPOOL);
    ingest.set_buffer_size(setup.buffer);
    if let Some(since) = setup.since {
        ingest.skip_before(since);
    }
    if !setup.answers_are_hits {
        ingest.pass_over_answers();
    }
    ingest.begin_source(parser(setup));
    ingest
}

fn finish(ingest: Ingest<'_>) -> (Summary, Observations) {
    let batch = ingest.finish().unwrap();
    (batch.summary, batch.observations.into_iter().collect())
}

/// `input` cut at the line ends after the given places, as the threaded read cuts a file.
fn parts<'i>(input: &'i [u8], cuts: &[usize]) -> Vec<&'i [u8]> {
    let mut bounds = vec![0];
    for &cut in cuts {
        let from = cut.min(input.len()).max(*bounds.last().unwrap());
        if let Some(i) = input[from..].iter().position(|b| *b == b'\n') {
            bounds.push(from + i + 1);
        }
    }
    bounds.dedup();
    bounds
        .iter()
        .enumerate()
        .map(|(i, &from)| &input[from..bounds.get(i + 1).copied().unwrap_or(input.len())])
        .collect()
}

/// The real reader over `input`, cut into [`parts`] at line ends, each part read in `sizes`
/// on its own thread.
fn real(
    input: &[u8],
    setup: &Setup,
    sizes: &[usize],
    cuts: &[usize],
) -> (Summary, Observations, u64) {
    let attribute: &(dyn Fn(IpAddr) -> Attribution + Sync) = &attribute;
    let mut main = scan(setup, attribute);
    let parts = parts(input, cuts);
    let mut forks: Vec<Ingest<'_>> = parts[1..].iter().map(|_| main.fork()).collect();
    let consumed = std::thread::scope(|scope| {
        let workers: Vec<_> = forks
            .iter_mut()
            .zip(&parts[1..])
            .map(|(fork, part)| {
                scope.spawn(move || {
                    fork.feed(Chunked {
                        data: part,
                        sizes,
                        turn: 0,
                    })
                    .unwrap()
                })
            })
            .collect();
        let first = main
            .feed(Chunked {
                data: parts[0],
                sizes,
                turn: 0,
            })
            .unwrap();
        let rest: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        first + rest.iter().sum::<u64>()
    });
    for fork in forks {
        main.absorb(fork);
    }
    let (summary, observations) = finish(main);
    (summary, observations, consumed)
}

/// The real reader over `input` cut into [`parts`], the parts read one after another by one
/// reader, in `sizes`, as a run reads the files of a glob: what one read leaves in the reader's
/// buffer is no part of the next.
fn real_in_turn(
    input: &[u8],
    setup: &Setup,
    sizes: &[usize],
    cuts: &[usize],
) -> (Summary, Observations, u64) {
    let attribute: &(dyn Fn(IpAddr) -> Attribution + Sync) = &attribute;
    let mut ingest = scan(setup, attribute);
    let consumed = (parts(input, cuts).into_iter())
        .map(|data| {
            let chunked = Chunked {
                data,
                sizes,
                turn: 0,
            };
            ingest.feed(chunked).unwrap()
        })
        .sum();
    let (summary, observations) = finish(ingest);
    (summary, observations, consumed)
}

/// The real reader through `source::read` on a file, as a run reads a fresh source.
fn real_file(input: &[u8], setup: &Setup) -> (Summary, Observations, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages");
    std::fs::write(&path, input).unwrap();
    let attribute: &(dyn Fn(IpAddr) -> Attribution + Sync) = &attribute;
    let mut ingest = scan(setup, attribute);
    let folders = &mut source::Folders::default();
    let read = source::read(&path, None, None, StartAt::Beginning, &mut ingest, folders).unwrap();
    let (summary, observations) = finish(ingest);
    (summary, observations, read.cursor.map_or(0, |c| c.offset))
}

fn assert_same(
    what: &str,
    input: &[u8],
    want: &(Summary, Observations, u64),
    got: &(Summary, Observations, u64),
) {
    if want == got {
        return;
    }
    // Lines cut short: proptest prints the (shrunk) case that regenerates the whole input.
    let shown: String = input
        .split(|b| *b == b'\n')
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            let cut: String = l.chars().take(240).collect();
            format!("{cut:?}\n")
        })
        .collect();
    assert_eq!(want.0, got.0, "{what}: summary differs for\n{shown}");
    assert_eq!(want.2, got.2, "{what}: bytes consumed differ for\n{shown}");
    for (ip, o) in &want.1 {
        assert_eq!(Some(o), got.1.get(ip), "{what}: {ip} differs for\n{shown}");
    }
    assert_eq!(want.1, got.1, "{what}: observations differ for\n{shown}");
}

// ---------------------------------------------------------------------------------------
// Generated logs.
// ---------------------------------------------------------------------------------------

/// Prefix sets as operators configure them: nested, overlapping, one inside another.
const PREFIX_SETS: &[&[&str]] = &[
    &["DROP ", "DROP INVALID "],
    &["DROP INVALID ", "DROP "],
    &["INPUT-DROP:"],
    &["[UFW BLOCK] ", "[UFW AUDIT] "],
    &["[UFW BLOCK]"],
    &["DROP:", "DROP"],
    &["INVALID ", "DROP INVALID "],
    &["A-B", "B-C"],
    &["DROP ", "DROP ", "DROP INVALID "],
    // A prefix with a line end in it (the configuration takes any text) is in no line.
    &["INPUT-DROP:\n"],
    &["DROP:\n", "INPUT-DROP:"],
];

/// Prefix texts the lines use: the configured ones and near misses.
const LINE_PREFIXES: &[&str] = &[
    "DROP ",
    "DROP INVALID ",
    "INPUT-DROP:",
    "[UFW BLOCK] ",
    "[UFW AUDIT] ",
    "DROP:",
    "INVALID ",
    "A-B-C",
    "A-B",
    "B-C",
    "DROP INVALID",
    "INPUT-DRO",
    "",
];

const SOURCES: &[&str] = &[
    "3.5.140.2",
    "::ffff:3.5.140.2",
    "::FFFF:3.5.140.2",
    "0:0:0:0:0:ffff:0305:8c02",
    "34.223.47.190",
    "2600:1f18:0000:f101:0000:0000:0000:0002",
    "2600:1f18:0:f101::2",
    "2600:1F18::F101:0:0:0:2",
    "fe80::1%eth0",
    "::3.5.140.2",
    "::",
    "192.0.2.300",
    "03.5.140.2",
    "81.2.69.160",
    "1.2.3",
];

const PROTOS: &[&str] = &[
    "TCP",
    "UDP",
    "ICMP",
    "ICMPv6",
    "UDPLITE",
    "47",
    "255",
    "256",
    "tcp",
    "TCP\rBcc:y@evil.test",
    "TCP\x1b[31m",
    "",
    "1e3",
    "06",
    "0",
    "6",
];

/// A small deterministic source of choices, so that one number shrinks to one line.
struct Pick(u64);

impl Pick {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 8
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn one<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One log line (with its line end), drawn from `seed`.
fn line(seed: u64, configured: &[&str]) -> Vec<u8> {
    let mut r = Pick(seed | 1);
    let mut out: Vec<u8> = Vec::new();
    let kind = r.below(100);
    if kind < 4 {
        // Binary junk, NUL and invalid UTF-8 included, maybe with a prefix inside.
        for _ in 0..r.below(60) {
            out.push(r.below(256) as u8);
        }
        if r.chance(50) {
            out.extend_from_slice(r.one(LINE_PREFIXES).as_bytes());
            out.extend_from_slice(b"IN=\x00\xff");
        }
        out.retain(|b| *b != b'\n');
    } else if kind < 7 {
        // Far longer than any read buffer the tests use.
        let len = 300 + r.below(5000);
        let at = r.below(len);
        out.extend_from_slice(b"Jan 25 23:51:25 web1 kernel: ");
        out.extend(std::iter::repeat_n(b'x', at));
        out.extend_from_slice(r.one(LINE_PREFIXES).as_bytes());
        out.extend_from_slice(b"IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=2 ");
        out.extend(std::iter::repeat_n(b'y', len - at));
    } else if kind < 9 {
        out.extend_from_slice(b"Jan 25 23:51:26 web1 sshd[812]: Invalid user ");
        out.extend_from_slice(r.one(LINE_PREFIXES).as_bytes());
        out.extend_from_slice(b"IN=eth0 SRC=6.6.6.6 DST=1.1.1.1 PROTO=TCP from 203.0.113.9");
    } else if kind < 10 {
        // An empty line.
    } else if kind < 45 {
        // The kernel's usual line, from a few busy sources.
        let src = r.one(&["3.5.140.2", "::ffff:3.5.140.2", "2600:1f18:0:f101::2"]);
        let proto = r.one(&["TCP", "UDP"]);
        let line = format!(
            "Jan {:>2} {:02}:{:02}:{:02} web{} kernel: [  341.399450] {}IN=eth0 OUT= \
             MAC=56:00:03:85:82:df:fe:00:03:85:82:df:08:00 SRC={src} DST=192.0.2.{} LEN=40 \
             TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO={proto} SPT={} DPT={} WINDOW=65535 RES=0x00 SYN URGP=0 ",
            1 + r.below(31),
            r.below(24),
            r.below(60),
            r.below(60),
            r.below(20),
            r.one(configured),
            r.below(20),
            1 + r.below(65535),
            1 + r.below(200),
        );
        out.extend_from_slice(line.as_bytes());
    } else {
        packet_line(&mut r, &mut out, configured);
    }
    if r.chance(8) {
        out.push(b'\r');
    }
    out.push(b'\n');
    out
}

fn packet_line(r: &mut Pick, out: &mut Vec<u8>, configured: &[&str]) {
    if r.chance(3) {
        // What a crash leaves: the file grew, its data never came. Some blocks are longer
        // than the read buffer: the line after them is still whole.
        let len = match r.chance(30) {
            true => 1 + r.below(9000),
            false => 1 + r.below(600),
        };
        out.extend(std::iter::repeat_n(0u8, len));
    }
    if r.chance(5) {
        out.extend_from_slice(r.one(&["<4>", "<13>", "<1234>", "<x>", "<>"]).as_bytes());
    }
    let stamp = match r.below(20) {
        0 => "2026-01-25T10:00:00Z".to_string(),
        1 => "2015-03-07T05:09:30.045015+02:00".to_string(),
        2 => r
            .one(&[
                "Feb 29 10:00:00",
                "Jan  5 25:00:00",
                "Foo 12 10:00:00",
                "Jan 5 10:00:00",
                "2026-13-01T00:00:00Z",
            ])
            .to_string(),
        3 => "Dec 31 23:59:59".to_string(),
        _ => format!(
            "Jan {:>2} {:02}:{:02}:{:02}",
            1 + r.below(31),
            r.below(24),
            r.below(60),
            r.below(60)
        ),
    };
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    if r.chance(3) {
        out.push(b' ');
    }
    let host = if r.chance(25) {
        // A log host's senders named at length (past what a record holds in place): a source
        // keeps a few of them.
        r.one(&[
            "sender-1-named-at.length",
            "sender-2-named-at.length",
            "sender-3-named-at.length",
            "sender-4-named-at.length",
            "sender-5-named-at.length",
            "sender-6-named-at.length",
        ])
    } else if r.chance(85) {
        r.one(&[
            "web1",
            "web10",
            "web1.",
            "gw",
            "vultr",
            "sd-126005",
            "h.example.net",
            "2001:db8::5",
        ])
    } else {
        r.one(&[
            "web\u{202e}1",
            "DROP:x",
            "we\x1bb",
            "A-B",
            "",
            "h\"x",
            "INVALID",
            "h\0x",
        ])
    };
    out.extend_from_slice(host.as_bytes());
    if r.chance(2) {
        out.extend_from_slice(b"\xff");
    }
    out.push(b' ');
    out.extend_from_slice(
        r.one(&[
            "kernel:",
            "kernel:",
            "kernel:",
            "kernel:",
            "kernel:",
            "kernel:",
            "kernel:",
            "kernel:",
            "sshd[1]:",
            "kernel",
            "kernel:x",
            "kernel:\t",
        ])
        .as_bytes(),
    );
    out.push(b' ');
    // The host and tag of a line alike those of the line before up to a byte or a space.
    if r.chance(5) {
        out.push(b' ');
    }
    if r.chance(40) {
        // Stamps of every length around the eight bytes read at a time, and bytes a word-wide
        // reading could take for allowed ones (the high bit set, NUL).
        let stamp = r.one::<[u8]>(&[
            b"[810294.788657] ",
            b"[  341.399450] ",
            b"[12.5]",
            b"[1x] ",
            b"[1234567] ",
            b"[12345678] ",
            b"[123456789012345] ",
            b"[1234567\xb0] ",
            b"[12345678\xae] ",
            b"[\x00] ",
            b"[\xa0341.5] ",
            b"[ 12.5",
        ]);
        out.extend_from_slice(stamp);
        if r.chance(5) {
            // The stamp at the line's end, where no eight bytes are left to read.
            return;
        }
    }
    // rsyslog's stand-in for repeats of the line before, and texts nearly like it.
    let repeated = r.chance(6);
    if repeated {
        out.extend_from_slice(
            r.one(&[
                "message repeated 3 times: [ ",
                "message repeated 2 times: [",
                "message repeated 4000000000 times: [ ",
                "message repeated 0 times: [ ",
                "message repeated x times: [ ",
                "message repeated 12 times: ",
                "message repeated 999999999 times: [ ",
            ])
            .as_bytes(),
        );
    }
    let prefix = if r.chance(75) {
        r.one(configured)
    } else {
        r.one(LINE_PREFIXES)
    };
    out.extend_from_slice(prefix.as_bytes());
    if r.chance(10) {
        out.extend_from_slice(r.one(&["INVALID ", "STATE ", "x ", " "]).as_bytes());
    }
    let src = if r.chance(85) {
        r.one(&SOURCES[..8])
    } else {
        r.one(SOURCES)
    };
    let dst = r.one(&[
        "192.0.2.10",
        "192.0.2.11",
        "::ffff:192.0.2.10",
        "2001:db8::1",
    ]);
    let proto = if r.chance(85) {
        r.one(&PROTOS[..5])
    } else {
        r.one(PROTOS)
    };
    let mac = r.one(&[
        "MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:08:00 ",
        "MAC= ",
        "",
        "MAC=zz:<b> ",
    ]);
    let port = |r: &mut Pick| -> String {
        match r.below(20) {
            0 => r.one(&["65536", "+22", "-1", "007", "1a", ""]).to_string(),
            1..=8 => (1 + r.below(1024)).to_string(),
            _ => (1 + r.below(65535)).to_string(),
        }
    };
    let (spt, dpt) = (port(r), port(r));
    let ports = match proto {
        "ICMP" | "ICMPv6" => match r.below(4) {
            0 => format!(
                "TYPE=3 CODE=3 [SRC={dst} DST={src} LEN=60 PROTO=UDP SPT={dpt} DPT={spt} LEN=40 ]"
            ),
            // Echo requests (probes), echo replies, and ICMPv6's neighbour discovery and
            // its neighbours in number (an ICMP type 136 is none of those).
            1 => format!(
                "TYPE={} CODE=0 ID=1 SEQ=2",
                r.one(&[
                    "8", "0", "128", "129", "130", "132", "133", "135", "136", "137", "138", "143"
                ])
            ),
            2 => format!(
                "TYPE=3 CODE=3 [SRC={dst} DST={src} PROTO=TCP SPT={dpt} DPT={spt} ] SPT={spt} DPT={dpt}"
            ),
            _ => format!("SPT={spt} DPT={dpt}"),
        },
        // A probe, or an answer to the operator's own traffic (ACK, RST), or a flag in the
        // quoted packet or inside another word, which is neither.
        _ => format!(
            "SPT={spt} DPT={dpt} WINDOW=1024 RES=0x00 {} URGP=0",
            r.one(&[
                "SYN",
                "SYN",
                "ACK",
                "RST",
                "ACK SYN",
                "ACKS",
                "SYN [SRC=1.2.3.4 ACK ]"
            ])
        ),
    };
    // Now and then a packet the host sent: an empty `IN=` (the OUTPUT chain), or one on
    // loopback; and one on an interface whose name only starts like loopback's.
    let (iface_in, iface_out) = match r.below(20) {
        0 | 1 => ("IN=", "OUT=eth0"),
        2 => ("IN=lo", "OUT="),
        3 => ("IN=lo0x", "OUT="),
        _ => ("IN=eth0", "OUT="),
    };
    let mut fields = vec![
        iface_in.to_string(),
        iface_out.to_string(),
        mac.trim_end().to_string(),
        format!("SRC={src}"),
        format!("DST={dst}"),
        "LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=53123".to_string(),
        format!("PROTO={proto}"),
        ports,
    ];
    fields.retain(|f| !f.is_empty());
    match r.below(20) {
        // Another order, a field twice, a field missing, a key moved after the ports.
        0 => {
            let (a, b) = (r.below(fields.len()), r.below(fields.len()));
            fields.swap(a, b);
        }
        1 => {
            let a = r.below(fields.len());
            let again = fields[r.below(fields.len())].clone();
            fields.insert(a, again);
        }
        2 => {
            fields.remove(r.below(fields.len()));
        }
        3 => fields.push(
            r.one(&[
                "MAC=00:11:22:33:44:55",
                "SPT=99",
                "DPT=99",
                "PROTO=UDP",
                "SRC=9.9.9.9",
            ])
            .to_string(),
        ),
        4 => {
            let a = r.below(fields.len());
            fields.insert(
                a,
                r.one(&[
                    "SPT=7",
                    "DPT=8",
                    "MAC=aa:bb",
                    "X=1",
                    "FLAG",
                    "ACK",
                    "RST",
                    "TYPE=0",
                ])
                .to_string(),
            );
        }
        _ => {}
    }
    out.extend_from_slice(fields.join(" ").as_bytes());
    if r.chance(30) {
        out.push(b' ');
    }
    if repeated && r.chance(90) {
        out.push(b']');
    }
    if r.chance(3) {
        // Cut short, as a full disk or a killed writer leaves a line.
        let keep = r.below(out.len() + 1);
        out.truncate(keep);
    }
}

fn log(seeds: &[u64], set: usize, last_unfinished: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &s in seeds {
        let mut one = line(s, PREFIX_SETS[set]);
        if s % 11 == 5 && one.len() > 1 {
            // What a crash leaves: a line cut where its data stopped, a block of NUL bytes,
            // then the daemon's next line.
            one.truncate((s / 11) as usize % one.len());
            one.extend(std::iter::repeat_n(0u8, 1 + (s / 7 % 600) as usize));
        } else if s % 13 == 7 && one.len() > 1 {
            // A line cut short with no block after it: the next line runs on after it.
            one.truncate((s / 13) as usize % one.len());
        }
        out.extend(one);
    }
    match seeds.first() {
        // A crash's NUL block at the end, no line written after it yet: read as far as it
        // goes, and nothing counted.
        Some(&s) if last_unfinished && s % 3 == 0 => {
            out.extend(std::iter::repeat_n(0u8, 1 + (s / 3 % 7000) as usize));
        }
        _ if last_unfinished && out.last() == Some(&b'\n') => {
            out.pop();
        }
        _ => {}
    }
    out
}

fn setup_from(set: usize, buffer: usize, since: bool, answers_are_hits: bool) -> Setup {
    Setup {
        prefixes: PREFIX_SETS[set].iter().map(|p| p.to_string()).collect(),
        buffer,
        since: since.then(|| {
            DateTime::parse_from_rfc3339("2026-01-20T00:00:00Z")
                .unwrap()
                .timestamp()
        }),
        answers_are_hits,
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn real_reader_agrees_with_the_reference(
        seeds in prop::collection::vec(any::<u64>(), 0..200),
        last_unfinished in any::<bool>(),
        set in 0..PREFIX_SETS.len(),
        buffer in prop_oneof![Just(1usize << 20), Just(4096), 200usize..600],
        since in any::<bool>(),
        answers_are_hits in any::<bool>(),
        sizes in prop::collection::vec(prop_oneof![1usize..8, 8usize..300, Just(1usize << 20)], 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let input = log(&seeds, set, last_unfinished);
        let setup = setup_from(set, buffer, since, answers_are_hits);
        let want = reference(&input, &setup);
        let whole = real(&input, &setup, &[usize::MAX], &[]);
        assert_same("one read, one thread", &input, &want, &whole);
        let chunked = real(&input, &setup, &sizes, &[]);
        assert_same("chunked reads, one thread", &input, &want, &chunked);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let threads = real(&input, &setup, &sizes, &cuts);
        assert_same("chunked reads, several threads", &input, &want, &threads);
        let in_turn = real_in_turn(&input, &setup, &sizes, &cuts);
        assert_same("parts read in turn by one reader", &input, &want, &in_turn);
        let file = real_file(&input, &setup);
        assert_same("source::read", &input, &want, &file);
    }
}

/// Every place a read can end, on a log that mixes every kind of line, one of them longer
/// than the buffer.
#[test]
fn every_read_split_point_agrees_with_the_reference() {
    for set in [0, 3] {
        let mut input = Vec::new();
        let mut seed = 1u64;
        while input.len() < 3000 {
            seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(7);
            let l = line(seed, PREFIX_SETS[set]);
            if l.len() < 300 {
                input.extend(l);
            }
        }
        input.extend_from_slice(b"Jan 25 23:51:25 web1 kernel: ");
        input.extend(std::iter::repeat_n(b'x', 250));
        input.extend_from_slice(PREFIX_SETS[set][0].as_bytes());
        input
            .extend_from_slice(b"IN=eth0 OUT= SRC=3.5.140.2 DST=192.0.2.1 PROTO=TCP SPT=1 DPT=2\n");
        input.extend(line(5, PREFIX_SETS[set]));
        input.extend_from_slice(b"Jan 25 23:51:25 web1 kernel: unfinished");
        let setup = setup_from(set, 300, false, set % 2 == 0);
        let want = reference(&input, &setup);
        assert!(want.0.lines_matched > 5, "the sample has packets");
        assert!(want.0.lines_malformed > 0, "the sample has broken lines");
        for split in 0..=input.len() {
            let sizes = [split, usize::MAX];
            let got = real(&input, &setup, &sizes, &[]);
            assert_same(&format!("split at {split}"), &input, &want, &got);
        }
    }
}

/// psad's rule sets log invalid-state packets with `DROP INVALID ` and the rest with `DROP `:
/// two of the first among a hundred of the second, read every way the reader reads.
#[test]
fn psad_drop_invalid_among_drop_lines() {
    let mut input = Vec::new();
    for n in 1..=2 {
        input.extend(format!(
            "Jan 25 23:51:0{n} fw kernel: DROP INVALID IN=eth0 OUT= SRC=3.5.140.{n} DST=192.0.2.1 \
             LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=443 DPT=51234 WINDOW=0 RES=0x00 RST URGP=0\n"
        ).bytes());
    }
    for n in 0..100 {
        input.extend(format!(
            "Jan 25 23:52:{:02} fw kernel: DROP IN=eth0 OUT= SRC=34.223.47.{} DST=192.0.2.1 LEN=60 \
             TOS=0x00 PREC=0x00 TTL=49 ID=1 DF PROTO=TCP SPT={} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0\n",
            n % 60,
            n % 50 + 1,
            40000 + n
        ).bytes());
    }
    for set in [0, 1] {
        let setup = setup_from(set, 1 << 20, false, true);
        let want = reference(&input, &setup);
        assert_eq!(want.0.lines_matched, 102);
        assert_eq!(want.0.ips_observed, 52);
        assert_same(
            "one read",
            &input,
            &want,
            &real(&input, &setup, &[usize::MAX], &[]),
        );
        assert_same("source::read", &input, &want, &real_file(&input, &setup));
        for cut in (0..input.len()).step_by(97) {
            let got = real(&input, &setup, &[cut.max(1), 4096], &[cut]);
            assert_same(&format!("cut at {cut}"), &input, &want, &got);
        }
    }
}
