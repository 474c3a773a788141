//! RDAP for IP addresses: the IANA bootstrap files (RFC 9224) that say which registry serves
//! an address, the registry's IP network object (RFC 9083) fetched over HTTPS with a deadline
//! and a size limit, and from it the network's range and handle and the e-mail addresses of
//! its `abuse` entities (at the top level first, then nested ones, as ARIN and RIPE nest them).
//!
//! Redirects between registries are followed by hand, at most a few, each hop held to the same
//! rule as the first URL: `https://`, or `http://` only to a loopback host (for tests).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

/// Redirect hops followed (registries send an address transferred between them onwards).
const MAX_REDIRECTS: usize = 3;
/// Entity nesting searched for abuse roles.
const MAX_DEPTH: usize = 4;
/// Entities looked at in one object: a hostile answer cannot make the walk long.
const MAX_ENTITIES: usize = 200;

/// Why a registry gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdapError {
    /// Timeouts, refused connections, TLS: try again in a later run.
    Transport(String),
    /// An HTTP status other than 200 and 404 (429 and 5xx among them).
    Status(u16),
    /// More than the size limit.
    TooLarge(u64),
    /// Not JSON, or not an RDAP IP network object, or not a bootstrap file.
    Malformed(String),
    /// A URL (in a bootstrap file or a redirect) that is not https, or not loopback http.
    Refused(String),
    /// A well-formed answer about another network than the address's: the registry's own
    /// answer, not a fault, but its desk is that network's.
    OtherNetwork(String),
}

impl RdapError {
    /// Whether the server itself is unwell (not just this answer): the rest of the run leaves
    /// it alone.
    pub fn server_down(&self) -> bool {
        match self {
            RdapError::Transport(_) => true,
            RdapError::Status(s) => *s == 429 || *s >= 500,
            _ => false,
        }
    }
}

impl std::fmt::Display for RdapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RdapError::Transport(m) => f.write_str(m),
            RdapError::Status(s) => write!(f, "HTTP status {s}"),
            RdapError::TooLarge(n) => write!(f, "answer larger than {n} bytes"),
            RdapError::Malformed(m) => write!(f, "malformed answer: {m}"),
            RdapError::Refused(m) => f.write_str(m),
            RdapError::OtherNetwork(m) => write!(f, "an answer about another network: {m}"),
        }
    }
}

/// One bootstrap file: prefixes and the registries that serve them.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    services: Vec<(IpNet, Vec<String>)>,
}

impl Bootstrap {
    /// Parses `ipv4.json` or `ipv6.json`.
    pub fn parse(text: &[u8]) -> Result<Self, RdapError> {
        let v: Value =
            serde_json::from_slice(text).map_err(|e| RdapError::Malformed(e.to_string()))?;
        let services = v
            .get("services")
            .and_then(Value::as_array)
            .ok_or_else(|| RdapError::Malformed("no \"services\" array".into()))?;
        let mut out = Vec::new();
        for service in services {
            let (Some(nets), Some(urls)) = (
                service.get(0).and_then(Value::as_array),
                service.get(1).and_then(Value::as_array),
            ) else {
                continue;
            };
            let urls: Vec<String> = urls
                .iter()
                .filter_map(Value::as_str)
                .map(|u| {
                    if u.ends_with('/') {
                        u.to_string()
                    } else {
                        format!("{u}/")
                    }
                })
                .collect();
            for net in nets.iter().filter_map(Value::as_str) {
                if let Ok(net) = net.parse::<IpNet>() {
                    out.push((net.trunc(), urls.clone()));
                }
            }
        }
        if out.is_empty() {
            return Err(RdapError::Malformed(
                "a bootstrap file without services".into(),
            ));
        }
        Ok(Bootstrap { services: out })
    }

    /// The base URL of the registry for `ip`: the longest matching prefix, its `https` URL
    /// (or a loopback `http` one), `None` when no registry serves the address.
    pub fn server_for(&self, ip: IpAddr) -> Option<&str> {
        self.service_for(ip).map(|(_, url)| url)
    }

    /// The most specific prefix of the file that holds `ip`, and its registry's base URL: that
    /// registry speaks for the prefix, and for nothing outside it.
    pub fn service_for(&self, ip: IpAddr) -> Option<(IpNet, &str)> {
        self.prefix_holding(ip)
            .and_then(|(net, urls)| urls.iter().find(|u| allowed(u)).map(|u| (*net, u.as_str())))
    }

    /// The addresses around `ip` that the registry serving it at `served` (the most specific
    /// prefix holding it) answers for: `served`, without the more specific prefixes inside
    /// it that the file gives to other registries (`45.1.0.0/16` within `45.0.0.0/8`). An
    /// answer cut to `served` alone stood for those too, and their addresses went to the
    /// wider registry's desk.
    pub fn answers_for(&self, served: IpNet, ip: IpAddr) -> (IpAddr, IpAddr) {
        use super::cache::number;
        let address = |n: u128| match ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(n)),
        };
        let (mut first, mut last) = (number(served.network()), number(served.broadcast()));
        let at = number(ip);
        let inside = (self.services.iter())
            .map(|(net, _)| *net)
            .filter(|net| net.prefix_len() > served.prefix_len() && served.contains(net));
        for net in inside.filter(|net| !net.contains(&ip)) {
            let (start, end) = (number(net.network()), number(net.broadcast()));
            if end < at {
                first = first.max(end + 1);
            } else if start > at {
                last = last.min(start - 1);
            }
        }
        (address(first), address(last))
    }

    /// The URLs the prefix holding `ip` lists when none of them is used (`http://` off this
    /// machine, another scheme): a registry serves the address, but no lookup can reach it.
    pub fn unusable_for(&self, ip: IpAddr) -> Option<&[String]> {
        self.prefix_holding(ip)
            .map(|(_, urls)| urls.as_slice())
            .filter(|urls| !urls.is_empty() && !urls.iter().any(|u| allowed(u)))
    }

    /// The most specific prefix of the file that holds `ip`, with its registry's URLs.
    fn prefix_holding(&self, ip: IpAddr) -> Option<&(IpNet, Vec<String>)> {
        self.services
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
    }
}

/// `https://`, or `http://` to a loopback host; never with user information or a backslash
/// in the authority (`http://evil\@127.0.0.1/`), which parsers read as different hosts.
pub fn allowed(url: &str) -> bool {
    let plain = |authority: &str| !authority.contains(['@', '\\']) && !authority.is_empty();
    if let Some(rest) = url.strip_prefix("https://") {
        return plain(authority_of(rest));
    }
    url.strip_prefix("http://")
        .map(authority_of)
        .is_some_and(|authority| {
            plain(authority) && crate::http::is_loopback_host(host_of(authority))
        })
}

/// The authority of a URL's text after its `scheme://`.
fn authority_of(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

/// A redirect target may be used: [`allowed`], and on this machine only when the first URL
/// was (a remote registry cannot send the tool to a local service).
pub fn hop_allowed(first: &str, to: &str) -> bool {
    allowed(to) && (is_local(first) || !is_local(to))
}

fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    crate::http::is_loopback_host(host_of(authority_of(rest)))
}

fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    }
}

/// What an IP network object says about the address asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// The registry's handle (`NET-192-0-2-0-1`, `192.0.2.0 - 192.0.2.255`), cleaned.
    pub handle: Option<String>,
    /// First and last address, when the object gives a range that contains the address.
    pub range: Option<(IpAddr, IpAddr)>,
    /// The abuse entities' e-mail addresses, top level first, as written (not yet checked).
    pub abuse_emails: Vec<String>,
    /// An allocation to a registry member (`type` `ALLOCATED PA`, `DIRECT ALLOCATION`, …)
    /// rather than an assignment: its customers' assignments inside may name desks of their
    /// own, so the answer speaks only for the address asked about and its neighbours.
    pub allocation: bool,
}

/// Reads an IP network object (RFC 9083 §5.4) for `ip`.
pub fn parse_network(body: &[u8], ip: IpAddr) -> Result<Network, RdapError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| RdapError::Malformed(e.to_string()))?;
    let class = v.get("objectClassName").and_then(Value::as_str);
    if !class.is_some_and(|c| c.eq_ignore_ascii_case("ip network")) {
        return Err(RdapError::Malformed(format!(
            "objectClassName {:?}, expected \"ip network\"",
            class.unwrap_or("(none)")
        )));
    }
    let handle = v
        .get("handle")
        .and_then(Value::as_str)
        .map(|h| crate::excerpt::clean_line(h, 100))
        .filter(|h| !h.is_empty());
    let allocation = v
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.to_ascii_uppercase().contains("ALLOCAT"));
    Ok(Network {
        handle,
        range: range(&v, ip)?,
        abuse_emails: abuse_emails(&v),
        allocation,
    })
}

/// The range the object gives for `ip`: its first and last address, or the most specific
/// of its cidr0 prefixes that holds the address. `None` when it gives neither; an error when
/// what it gives does not hold the address, since then the answer is about another network,
/// and its abuse contact is that network's, not the address's.
fn range(v: &Value, ip: IpAddr) -> Result<Option<(IpAddr, IpAddr)>, RdapError> {
    let addr = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    };
    let given = addr("startAddress").zip(addr("endAddress"));
    if let Some((first, last)) = given
        && first.is_ipv4() == ip.is_ipv4()
        && last.is_ipv4() == ip.is_ipv4()
        && first <= ip
        && ip <= last
    {
        return Ok(Some((first, last)));
    }
    // The cidr0 extension: the range as prefixes.
    let prefixes: Vec<IpNet> = (v.get("cidr0_cidrs").and_then(Value::as_array))
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let prefix = c
                .get("v4prefix")
                .or_else(|| c.get("v6prefix"))
                .and_then(Value::as_str)?;
            let len = u8::try_from(c.get("length").and_then(Value::as_u64)?).ok()?;
            IpNet::new(prefix.parse().ok()?, len)
                .ok()
                .map(|n| n.trunc())
        })
        .collect();
    let holding = (prefixes.iter())
        .filter(|n| n.contains(&ip))
        .max_by_key(|n| n.prefix_len());
    match (holding, given) {
        (Some(n), _) => Ok(Some((n.network(), n.broadcast()))),
        (None, Some((first, last))) => Err(RdapError::OtherNetwork(format!(
            "the network it describes ({first} - {last}) does not hold {ip}"
        ))),
        (None, None) => match prefixes.first() {
            Some(n) => Err(RdapError::OtherNetwork(format!(
                "the network it describes ({n}) does not hold {ip}"
            ))),
            None => Ok(None),
        },
    }
}

/// Breadth first through `entities`, so a top-level abuse entity wins over a nested one.
fn abuse_emails(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut level: Vec<&Value> = vec![v];
    let mut seen = 0;
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for obj in level {
            for entity in obj
                .get("entities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                seen += 1;
                if seen > MAX_ENTITIES {
                    return out;
                }
                let abuse = entity
                    .get("roles")
                    .and_then(Value::as_array)
                    .is_some_and(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .any(|r| r.eq_ignore_ascii_case("abuse"))
                    });
                if abuse {
                    out.extend(jcard_emails(entity));
                }
                next.push(entity);
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    out
}

/// The `email` properties of an entity's jCard (RFC 7095): `["vcard", [[name, params, type,
/// value], ...]]`.
fn jcard_emails(entity: &Value) -> Vec<String> {
    entity
        .get("vcardArray")
        .and_then(|a| a.get(1))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| {
            p.get(0)
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case("email"))
        })
        .filter_map(|p| p.get(3).and_then(Value::as_str))
        .take(10)
        .map(str::to_owned)
        .collect()
}

/// The HTTP side: one agent for remote registries (HTTPS only, the system's roots, the
/// environment's proxy) and one for loopback test servers (no proxy).
pub struct Http {
    remote: ureq::Agent,
    local: ureq::Agent,
    /// How long one [`Http::get`] may take, its redirects included.
    deadline: Duration,
}

/// One answer: the URL that gave it, its status and body.
#[derive(Debug)]
pub struct Fetched {
    pub url: String,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Http {
    /// Agents whose calls each end within `deadline`.
    pub fn new(deadline: Duration) -> Self {
        // Without system roots every HTTPS call fails on its own, which is a local failure.
        let tls = crate::http::tls_config(crate::http::system_roots());
        Http {
            remote: crate::http::agent(tls.clone(), deadline, false),
            local: crate::http::agent(tls, deadline, true),
            deadline,
        }
    }

    /// GETs `url`, following redirects; at most `limit` bytes of the body are read. The whole
    /// of it, every redirect's hop included, ends within the agents' deadline: a registry that
    /// answers each hop slowly costs no more than one that answers once slowly.
    pub fn get(&self, url: &str, accept: &str, limit: u64) -> Result<Fetched, RdapError> {
        let end = std::time::Instant::now() + self.deadline;
        let start = url;
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(RdapError::Transport(format!(
                    "{}: no answer within {} s, redirects included",
                    crate::excerpt::clean_line(&url, 200),
                    self.deadline.as_secs_f32()
                )));
            }
            if !hop_allowed(start, &url) {
                return Err(RdapError::Refused(format!(
                    "{}: only https:// (or http:// to loopback) is used",
                    crate::excerpt::clean_line(&url, 200)
                )));
            }
            let agent = if url.starts_with("http://") {
                &self.local
            } else {
                &self.remote
            };
            let mut response = agent
                .get(&url)
                .config()
                .timeout_global(Some(left))
                .build()
                .header("accept", accept)
                .call()
                .map_err(|e| RdapError::Transport(network(&e)))?;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or(RdapError::Status(status))?;
                url = join(&url, location);
                continue;
            }
            let body = response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(n) => RdapError::TooLarge(n),
                    other => RdapError::Transport(network(&other)),
                })?;
            return Ok(Fetched { url, status, body });
        }
        Err(RdapError::Transport(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            crate::excerpt::clean_line(&url, 200)
        )))
    }
}

/// A redirect target against the URL that sent it (absolute, with the sender's scheme
/// (`//host/path`), or a path on the same host).
fn join(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if location.starts_with("//") {
        return format!("{}{location}", &base[..scheme_end.saturating_sub(2)]);
    }
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &base[..host_end])
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|i| *i >= host_end)
            .unwrap_or(host_end);
        format!("{}/{location}", &base[..dir_end])
    }
}

fn network(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("no answer within the deadline ({t})"),
        other => crate::excerpt::clean_line(&other.to_string(), 300),
    }
}

/// The lookup URL of `ip` under a registry's base URL.
pub fn ip_url(base: &str, ip: IpAddr) -> String {
    format!("{base}ip/{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = r#"{"version":"1.0","publication":"2026-01-01T00:00:00Z","services":[
        [["192.0.0.0/8"],["http://rdap.example.test/","https://rdap.example.test/"]],
        [["192.0.2.0/24"],["https://small.example.test"]],
        [["198.51.100.0/24"],["http://127.0.0.1:9/rdap/"]],
        [["2001:db8::/32"],["https://v6.example.test/"]]]}"#;

    #[test]
    fn bootstrap_picks_the_longest_prefix_and_https() {
        let b = Bootstrap::parse(BOOT.as_bytes()).unwrap();
        let at = |ip: &str| b.server_for(ip.parse().unwrap());
        assert_eq!(at("192.0.3.1"), Some("https://rdap.example.test/"));
        assert_eq!(at("192.0.2.1"), Some("https://small.example.test/"));
        assert_eq!(at("198.51.100.7"), Some("http://127.0.0.1:9/rdap/"));
        assert_eq!(at("2001:db8::1"), Some("https://v6.example.test/"));
        assert_eq!(at("203.0.113.1"), None);
        // Served by a registry, but at no URL that is used.
        let plain = Bootstrap::parse(
            br#"{"services":[[["203.0.113.0/24"],["http://rdap.example.test/","ftp://x/"]]]}"#,
        )
        .unwrap();
        let ip = "203.0.113.9".parse().unwrap();
        assert_eq!(plain.server_for(ip), None);
        assert_eq!(plain.unusable_for(ip).map(<[String]>::len), Some(2));
        assert_eq!(b.unusable_for("203.0.113.1".parse().unwrap()), None);
        // A prefix listed with no URL at all is served by nobody.
        let none = Bootstrap::parse(br#"{"services":[[["203.0.113.0/24"],[]]]}"#).unwrap();
        assert_eq!(none.unusable_for(ip), None);
        assert_eq!(b.unusable_for("192.0.3.1".parse().unwrap()), None);
    }

    /// A loopback server that answers each request after `delay`: a redirect to the next
    /// hop for the first `hops`, then an RDAP object.
    fn slow_redirects(hops: usize, delay: Duration) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for hop in 0..=hops {
                let Ok((client, _)) = listener.accept() else {
                    return;
                };
                let mut reader = std::io::BufReader::new(client);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                std::thread::sleep(delay);
                let answer = if hop < hops {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: /hop{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        hop + 1
                    )
                } else {
                    let body = r#"{"objectClassName":"ip network"}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/rdap+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        format!("{base}/hop0")
    }

    #[test]
    fn redirects_share_one_deadline() {
        let http = Http::new(Duration::from_millis(900));
        // Each hop within the deadline, the three together past it.
        let url = slow_redirects(2, Duration::from_millis(400));
        let got = http.get(&url, "application/rdap+json", 1 << 20);
        assert!(matches!(&got, Err(RdapError::Transport(_))), "{got:?}");
        // The same server, answering at once: the redirects are followed.
        let http = Http::new(Duration::from_secs(30));
        let url = slow_redirects(2, Duration::ZERO);
        let got = http.get(&url, "application/rdap+json", 1 << 20).unwrap();
        assert_eq!(got.status, 200);
        assert!(got.url.ends_with("/hop2"), "{}", got.url);
    }

    /// A URL with user information or a backslash before its host is read as one host here
    /// and as another by an HTTP client: never used, for a first request or a redirect.
    #[test]
    fn urls_with_user_information_or_a_backslash_are_not_used() {
        for url in [
            "http://evil\\@127.0.0.1/",
            "http://evil.example@127.0.0.1/",
            "https://user@rdap.example.test/",
            "https://rdap.example.test\\@other.test/",
            "https:///ip/1.2.3.4",
        ] {
            assert!(!allowed(url), "{url}");
            assert!(!hop_allowed("http://127.0.0.1:9/rdap/", url), "{url}");
        }
        assert!(allowed("https://rdap.example.test/ip/"));
        assert!(allowed("http://127.0.0.1:9/rdap/"));
        assert!(allowed("http://[::1]:9/rdap/"));
    }

    #[test]
    fn bootstrap_garbage_is_malformed() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"services":[]}"#,
            r#"{"services":[[["x"],[]]]}"#,
        ] {
            assert!(
                matches!(
                    Bootstrap::parse(text.as_bytes()),
                    Err(RdapError::Malformed(_))
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn remote_http_is_not_allowed() {
        assert!(allowed("https://rdap.arin.net/registry/"));
        assert!(allowed("http://127.0.0.1:8080/"));
        assert!(allowed("http://[::1]:8080/x"));
        assert!(!allowed("http://rdap.arin.net/registry/"));
        assert!(!allowed("http://127.0.0.1.evil.test/"));
        assert!(!allowed("ftp://127.0.0.1/"));
        let remote = "https://rdap.arin.net/registry/ip/192.0.2.1";
        assert!(hop_allowed(remote, "https://rdap.db.ripe.net/ip/192.0.2.1"));
        assert!(!hop_allowed(remote, "http://127.0.0.1:8080/ip/192.0.2.1"));
        assert!(!hop_allowed(remote, "https://[::1]/ip/192.0.2.1"));
        assert!(hop_allowed("http://127.0.0.1:1/x", "http://127.0.0.1:2/y"));
    }

    fn vcard(email: &str) -> String {
        format!(
            r#"["vcard",[["version",{{}},"text","4.0"],["fn",{{}},"text","Abuse"],["email",{{}},"text","{email}"]]]"#
        )
    }

    #[test]
    fn top_level_abuse_wins_over_nested() {
        let body = format!(
            r#"{{"objectClassName":"ip network","handle":"NET-1\n","startAddress":"192.0.2.0","endAddress":"192.0.2.255",
            "entities":[{{"roles":["registrant"],"entities":[{{"roles":["ABUSE"],"vcardArray":{}}}]}},
                        {{"roles":["technical","abuse"],"vcardArray":{}}}]}}"#,
            vcard("nested@hoster.test"),
            vcard("top@hoster.test")
        );
        let n = parse_network(body.as_bytes(), "192.0.2.9".parse().unwrap()).unwrap();
        assert_eq!(n.abuse_emails, ["top@hoster.test", "nested@hoster.test"]);
        assert_eq!(n.handle.as_deref(), Some("NET-1"));
        assert_eq!(
            n.range,
            Some(("192.0.2.0".parse().unwrap(), "192.0.2.255".parse().unwrap()))
        );
    }

    #[test]
    fn cidr0_gives_the_range_when_addresses_do_not() {
        let body = r#"{"objectClassName":"ip network","cidr0_cidrs":[
            {"v6prefix":"2001:db8::","length":48},{"v6prefix":"2001:db8:1::","length":48}]}"#;
        let n = parse_network(body.as_bytes(), "2001:db8:1::5".parse().unwrap()).unwrap();
        assert_eq!(
            n.range,
            Some((
                "2001:db8:1::".parse().unwrap(),
                "2001:db8:1:ffff:ffff:ffff:ffff:ffff".parse().unwrap()
            ))
        );
    }

    /// An answer whose network does not hold the address asked about (another network, or
    /// another family) is about another network: its abuse contact is not the address's, and
    /// the answer says so (the lookup asks Abusix instead, or the address waits). An answer
    /// that gives no range at all is read as before.
    #[test]
    fn an_answer_about_another_network_is_told_apart() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let desk = vcard("abuse@other.test");
        for (range, said) in [
            (
                r#""startAddress":"10.0.0.0","endAddress":"10.0.0.255""#,
                "10.0.0.0 - 10.0.0.255",
            ),
            (
                r#""startAddress":"2001:db8::","endAddress":"2001:db8::ffff""#,
                "2001:db8:: - ",
            ),
            (
                r#""cidr0_cidrs":[{"v4prefix":"198.51.100.0","length":24}]"#,
                "198.51.100.0/24",
            ),
        ] {
            let body = format!(
                r#"{{"objectClassName":"ip network",{range},"entities":[{{"roles":["abuse"],"vcardArray":{desk}}}]}}"#
            );
            let e = parse_network(body.as_bytes(), ip).unwrap_err();
            assert!(matches!(e, RdapError::OtherNetwork(_)), "{e:?}");
            let e = e.to_string();
            assert!(
                e.contains(said) && e.contains("does not hold 192.0.2.1"),
                "{e}"
            );
        }
        let body = format!(
            r#"{{"objectClassName":"ip network","startAddress":"junk","entities":[{{"roles":["abuse"],"vcardArray":{desk}}}]}}"#
        );
        let n = parse_network(body.as_bytes(), ip).unwrap();
        assert_eq!(
            (n.range, &n.abuse_emails[..]),
            (None, &["abuse@other.test".to_string()][..])
        );
    }

    #[test]
    fn other_objects_and_garbage_are_malformed() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for body in [
            "<html>",
            "",
            r#"{"objectClassName":"entity"}"#,
            r#"{"errorCode":404}"#,
            "[1,2]",
        ] {
            assert!(
                matches!(
                    parse_network(body.as_bytes(), ip),
                    Err(RdapError::Malformed(_))
                ),
                "{body}"
            );
        }
        // Deep nesting is cut off, not followed.
        let mut deep = String::from(r#"{"objectClassName":"ip network","entities":["#);
        for _ in 0..50 {
            deep.push_str(r#"{"roles":["abuse"],"entities":["#);
        }
        deep.push_str(&"]}".repeat(50));
        deep.push_str("]}");
        assert!(parse_network(deep.as_bytes(), ip).is_ok());
    }

    #[test]
    fn redirects_join_against_the_sender() {
        assert_eq!(
            join("https://a.test/registry/ip/1.2.3.4", "/ip/1.2.3.4"),
            "https://a.test/ip/1.2.3.4"
        );
        assert_eq!(
            join("https://a.test/x/ip/1", "https://b.test/ip/1"),
            "https://b.test/ip/1"
        );
        assert_eq!(
            join("http://127.0.0.1:9/a/b", "c"),
            "http://127.0.0.1:9/a/c"
        );
        // Another host, the sender's scheme: it was asked as a path on the sender's host,
        // and the 404 there taken for the registry naming nobody, for a week.
        assert_eq!(
            join("https://a.test/ip/1", "//b.test/rdap/ip/1"),
            "https://b.test/rdap/ip/1"
        );
    }
}
