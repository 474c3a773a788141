//! One DNS question, TXT for one name, asked of a recursive resolver over UDP (TCP when the
//! answer is truncated), with a deadline and size checks: enough for the Abusix contact zone
//! without an async runtime. Also the zone's names (nibble-reversed for IPv6) and the system's
//! resolvers from `/etc/resolv.conf`.
//!
//! An answer is taken only from the server asked (a connected socket), with the query's id and
//! question echoed; anything else on the socket is ignored until the deadline.

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// The Abusix contact zone.
pub const ABUSIX_ZONE: &str = "abuse-contacts.abusix.zone";

const TYPE_TXT: u16 = 16;
const TYPE_CNAME: u16 = 5;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// The UDP payload size announced with EDNS(0): the size that avoids fragmentation.
const UDP_SIZE: u16 = 1232;
/// An answer larger than this (TCP) is refused: one contact TXT is tiny.
const MAX_TCP_ANSWER: usize = 16 * 1024;
/// TXT strings kept from one answer, and their total size.
const MAX_RECORDS: usize = 16;
const MAX_TEXT: usize = 4096;

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// No server answered within the deadline.
    Timeout,
    /// The resolver said SERVFAIL, REFUSED or another error code.
    Rcode(u8),
    /// A reply that does not parse, or is too large.
    Malformed(String),
    /// Sockets: no route, refused, no servers.
    Io(String),
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::Timeout => f.write_str("no DNS answer within the deadline"),
            DnsError::Rcode(2) => f.write_str("the resolver answered SERVFAIL"),
            DnsError::Rcode(5) => f.write_str("the resolver answered REFUSED"),
            DnsError::Rcode(c) => write!(f, "the resolver answered with error code {c}"),
            DnsError::Malformed(m) => write!(f, "malformed DNS answer: {m}"),
            DnsError::Io(m) => write!(f, "DNS: {m}"),
        }
    }
}

/// `d.c.b.a.abuse-contacts.abusix.zone`, or 32 reversed nibbles for IPv6.
pub fn abusix_name(ip: IpAddr) -> String {
    reversed(ip) + "." + ABUSIX_ZONE
}

/// The address in reverse-zone order, without a zone.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut parts = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                parts.push(format!("{:x}", byte & 0x0f));
                parts.push(format!("{:x}", byte >> 4));
            }
            parts.join(".")
        }
    }
}

/// The `nameserver` lines of a resolv.conf (port 53), in order; unparseable ones skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .take(3)
        .collect()
}

/// The system's resolvers; glibc's default (the local host) when the file names none.
pub fn system_servers() -> Vec<SocketAddr> {
    let found = std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default();
    if found.is_empty() {
        vec![SocketAddr::from(([127, 0, 0, 1], 53))]
    } else {
        found
    }
}

/// `host:port` (checked by the configuration) to addresses.
pub fn server_addrs(host_port: &str) -> Result<Vec<SocketAddr>, DnsError> {
    host_port
        .to_socket_addrs()
        .map(|a| a.collect::<Vec<_>>())
        .map_err(|e| DnsError::Io(format!("{host_port}: {e}")))
        .and_then(|a| {
            if a.is_empty() {
                Err(DnsError::Io(format!("{host_port}: no address")))
            } else {
                Ok(a)
            }
        })
}

/// The TXT strings of `name` (each record's strings joined), `Ok(vec![])` when the name or the
/// record does not exist. Servers are asked in turn, sharing the deadline.
pub fn query_txt(
    servers: &[SocketAddr],
    name: &str,
    deadline: Duration,
) -> Result<Vec<String>, DnsError> {
    if servers.is_empty() {
        return Err(DnsError::Io("no resolver to ask".into()));
    }
    let end = Instant::now() + deadline;
    let mut last = DnsError::Timeout;
    for (i, server) in servers.iter().enumerate() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Later servers still get their share if an earlier one is silent.
        let share = left / (servers.len() - i) as u32;
        match ask(*server, name, share) {
            Ok(answer) => return Ok(answer),
            // An error code is the resolver's answer; another resolver may be healthier.
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn random_id() -> u16 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u16
}

fn ask(server: SocketAddr, name: &str, deadline: Duration) -> Result<Vec<String>, DnsError> {
    let end = Instant::now() + deadline;
    let id = random_id();
    let query = build_query(id, name)?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| DnsError::Io(format!("{server}: {e}"));
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.send(&query).map_err(io)?;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DnsError::Timeout);
        }
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(DnsError::Timeout);
            }
            Err(e) => return Err(io(e)),
        };
        match parse_answer(&buf[..n], id, name) {
            Ok(Answer::Texts(t)) => return Ok(t),
            Ok(Answer::Truncated) => return ask_tcp(server, &query, id, name, end),
            Err(Parse::NotOurs) => continue,
            Err(Parse::Error(e)) => return Err(e),
        }
    }
}

fn ask_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    end: Instant,
) -> Result<Vec<String>, DnsError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => DnsError::Timeout,
        _ => DnsError::Io(format!("{server} (TCP): {e}")),
    };
    let left = || {
        let l = end.saturating_duration_since(Instant::now());
        if l.is_zero() {
            Err(DnsError::Timeout)
        } else {
            Ok(l)
        }
    };
    let mut stream = TcpStream::connect_timeout(&server, left()?).map_err(io)?;
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 2];
    read_before(&mut stream, &mut len, end).map_err(io)?;
    let len = u16::from_be_bytes(len) as usize;
    if len > MAX_TCP_ANSWER {
        return Err(DnsError::Malformed(format!("{len}-byte answer")));
    }
    let mut buf = vec![0u8; len];
    read_before(&mut stream, &mut buf, end).map_err(io)?;
    match parse_answer(&buf, id, name) {
        Ok(Answer::Texts(t)) => Ok(t),
        Ok(Answer::Truncated) => Err(DnsError::Malformed("truncated over TCP".into())),
        Err(Parse::NotOurs) => Err(DnsError::Malformed("an answer to another question".into())),
        Err(Parse::Error(e)) => Err(e),
    }
}

/// Fills `buf` from `stream` by `end`: a timeout on each read alone would let a server that
/// sends a byte now and then hold the question for as long as the answer is long.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], end: Instant) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A recursive query for `name` TXT IN, with an EDNS(0) OPT record.
pub fn build_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(64 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    encode_name(&mut q, name)?;
    q.extend_from_slice(&TYPE_TXT.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q.push(0);
    q.extend_from_slice(&TYPE_OPT.to_be_bytes());
    q.extend_from_slice(&UDP_SIZE.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(q)
}

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    let name = name.trim_end_matches('.');
    if name.len() > 253 {
        return Err(DnsError::Malformed(format!("name too long: {name}")));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Malformed(format!("bad label in {name}")));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

#[derive(Debug)]
enum Answer {
    Texts(Vec<String>),
    Truncated,
}

#[derive(Debug)]
enum Parse {
    /// Not the answer to this query (another id or question): keep waiting.
    NotOurs,
    Error(DnsError),
}

fn malformed(what: &str) -> Parse {
    Parse::Error(DnsError::Malformed(what.to_string()))
}

struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Parse> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.msg.len())
            .ok_or_else(|| malformed("cut short"))?;
        let s = &self.msg[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Parse> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A name, lower case and dotted, following compression pointers (bounded: no loops).
    fn name(&mut self) -> Result<String, Parse> {
        let mut out = String::new();
        let mut at = self.at;
        let mut jumped = false;
        let mut hops = 0;
        loop {
            let len = *self
                .msg
                .get(at)
                .ok_or_else(|| malformed("name cut short"))? as usize;
            if len & 0xc0 == 0xc0 {
                let low = *self
                    .msg
                    .get(at + 1)
                    .ok_or_else(|| malformed("pointer cut short"))?;
                if !jumped {
                    self.at = at + 2;
                    jumped = true;
                }
                hops += 1;
                if hops > 32 {
                    return Err(malformed("name pointers loop"));
                }
                at = ((len & 0x3f) << 8) | low as usize;
                continue;
            }
            if len & 0xc0 != 0 {
                return Err(malformed("unknown label type"));
            }
            if len == 0 {
                if !jumped {
                    self.at = at + 1;
                }
                return Ok(out);
            }
            let label = self
                .msg
                .get(at + 1..at + 1 + len)
                .ok_or_else(|| malformed("label cut short"))?;
            if !out.is_empty() {
                out.push('.');
            }
            out.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
            if out.len() > 255 {
                return Err(malformed("name too long"));
            }
            at += 1 + len;
        }
    }
}

/// The TXT strings answering `name` in a reply to query `id`.
fn parse_answer(msg: &[u8], id: u16, name: &str) -> Result<Answer, Parse> {
    let mut r = Reader { msg, at: 0 };
    if r.u16()? != id {
        return Err(Parse::NotOurs);
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(Parse::NotOurs);
    }
    let (qd, an) = (r.u16()?, r.u16()?);
    r.take(4)?;
    let want = name.trim_end_matches('.').to_ascii_lowercase();
    if qd != 1 {
        return Err(Parse::NotOurs);
    }
    let qname = r.name()?;
    let (qtype, qclass) = (r.u16()?, r.u16()?);
    if qname != want || qtype != TYPE_TXT || qclass != CLASS_IN {
        return Err(Parse::NotOurs);
    }
    if flags & 0x0200 != 0 {
        return Ok(Answer::Truncated);
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Ok(Answer::Texts(Vec::new())), // NXDOMAIN: no contact there
        code => return Err(Parse::Error(DnsError::Rcode(code))),
    }
    // The names that stand for the question: it, and where CNAMEs lead.
    let mut names = vec![want];
    let mut texts = Vec::new();
    let mut total = 0;
    for _ in 0..an {
        let owner = r.name()?;
        let (rtype, rclass) = (r.u16()?, r.u16()?);
        r.take(4)?;
        let len = r.u16()? as usize;
        let start = r.at;
        let data = r.take(len)?;
        if rclass != CLASS_IN || !names.contains(&owner) {
            continue;
        }
        match rtype {
            TYPE_CNAME => {
                let mut inner = Reader { msg, at: start };
                names.push(inner.name()?);
            }
            TYPE_TXT => {
                let mut text = Vec::new();
                let mut d = Reader { msg: data, at: 0 };
                while d.at < data.len() {
                    let n = d.take(1)?[0] as usize;
                    text.extend_from_slice(d.take(n)?);
                }
                total += text.len();
                if texts.len() >= MAX_RECORDS || total > MAX_TEXT {
                    return Err(malformed("too much TXT text"));
                }
                texts.push(String::from_utf8_lossy(&text).into_owned());
            }
            _ => {}
        }
    }
    Ok(Answer::Texts(texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reversed_nibbles_for_ipv6() {
        assert_eq!(
            abusix_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.abuse-contacts.abusix.zone"
        );
        assert_eq!(
            abusix_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.abuse-contacts.abusix.zone"
        );
    }

    #[test]
    fn resolv_conf_gives_nameservers_in_order() {
        let text = "# comment\nsearch example.net\nnameserver 192.0.2.53\nnameserver  2001:db8::53\nnameserver fe80::1%eth0\noptions timeout:1\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    /// A reply built the way a resolver builds one: the question, then answers.
    fn reply(id: u16, rcode: u16, answers: &[(u16, &[u8])], name: &str) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        encode_name(&mut m, name).unwrap();
        m.extend_from_slice(&[0, 16, 0, 1]);
        for (rtype, data) in answers {
            m.extend_from_slice(&[0xc0, 12]); // the question's name
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn txt_strings_of_a_record_are_joined() {
        let name = "1.2.0.192.abuse-contacts.abusix.zone";
        let msg = reply(7, 0, &[(16, b"\x06abuse@\x0bhoster.test")], name);
        match parse_answer(&msg, 7, name).unwrap() {
            Answer::Texts(t) => assert_eq!(t, ["abuse@hoster.test"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_ids_and_questions_are_not_ours() {
        let name = "1.2.0.192.abuse-contacts.abusix.zone";
        let msg = reply(7, 0, &[], name);
        assert!(matches!(parse_answer(&msg, 8, name), Err(Parse::NotOurs)));
        assert!(matches!(
            parse_answer(&msg, 7, "2.2.0.192.abuse-contacts.abusix.zone"),
            Err(Parse::NotOurs)
        ));
    }

    #[test]
    fn nxdomain_is_no_record_and_servfail_an_error() {
        let name = "x.abuse-contacts.abusix.zone";
        assert!(matches!(
            parse_answer(&reply(1, 3, &[], name), 1, name),
            Ok(Answer::Texts(t)) if t.is_empty()
        ));
        assert!(matches!(
            parse_answer(&reply(1, 2, &[], name), 1, name),
            Err(Parse::Error(DnsError::Rcode(2)))
        ));
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        let name = "x.abuse-contacts.abusix.zone";
        let good = reply(1, 0, &[(16, b"\x05a@b.c")], name);
        for cut in 0..good.len() {
            let _ = parse_answer(&good[..cut], 1, name);
        }
        // A compression pointer to itself.
        let mut looped = reply(1, 0, &[], name);
        looped[7] = 1; // one answer
        looped.extend_from_slice(&[0xc0, (looped.len()) as u8]);
        assert!(matches!(
            parse_answer(&looped, 1, name),
            Err(Parse::Error(DnsError::Malformed(_)))
        ));
        // A TXT string longer than its record.
        let bad = reply(1, 0, &[(16, b"\x30abc")], name);
        assert!(matches!(
            parse_answer(&bad, 1, name),
            Err(Parse::Error(DnsError::Malformed(_)))
        ));
    }

    /// A resolver that answers over TCP a byte at a time, each byte within any one read's
    /// timeout: the question still ends at its deadline.
    #[test]
    fn an_answer_trickled_over_tcp_ends_at_the_questions_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let name = "1.2.0.192.abuse-contacts.abusix.zone";
        let answer = reply(9, 0, &[(16, b"\x06abuse@\x0bhoster.test")], name);
        std::thread::spawn(move || {
            let (mut client, _) = listener.accept().unwrap();
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            for byte in framed {
                std::thread::sleep(Duration::from_millis(100));
                if client.write_all(&[byte]).is_err() {
                    return;
                }
            }
        });
        let query = build_query(9, name).unwrap();
        let end = Instant::now() + Duration::from_millis(500);
        let asked = ask_tcp(server, &query, 9, name, end);
        assert!(matches!(asked, Err(DnsError::Timeout)), "{asked:?}");
    }

    #[test]
    fn queries_refuse_bad_names() {
        assert!(build_query(1, "a..b").is_err());
        assert!(build_query(1, &"a".repeat(64)).is_err());
        let q = build_query(0x1234, "a.b").unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
    }
}
