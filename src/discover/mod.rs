//! Contact discovery: for an attacking address in no configured provider, the abuse desk of
//! the network that holds it. RDAP first (the registry the IANA bootstrap names; the network
//! object's `abuse` entities), then the Abusix zone (`<reversed-ip>.abuse-contacts.abusix.zone`
//! TXT), then nothing. Placeholders are refused, the operator's `never` domains are kept out,
//! and every answer is remembered per network with where it came from and until when.
//!
//! Failure is local: a registry or resolver that is down, slow, or answering garbage makes
//! that one address wait for a later run ([`Outcome::Failed`]); nothing here panics or fails a
//! run, and a server that failed is not asked again in the same [`Discoverer`]. Network work is
//! bounded per [`Discoverer`] (`max_lookups_per_run`, and a time budget); addresses past the
//! bound are [`Outcome::Deferred`], to be looked up by a later run.

pub mod address;
pub mod cache;
pub mod dns;
pub mod rdap;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::config::{BootstrapLocation, DiscoverConfig};
pub use cache::{BootstrapCopy, CacheEntry, ContactCache, MemoryCache};

/// Where a contact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Rdap,
    Abusix,
}

impl Source {
    /// `rdap` or `abusix`, as reports and the state write it.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rdap => "rdap",
            Source::Abusix => "abusix",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rdap" => Some(Source::Rdap),
            "abusix" => Some(Source::Abusix),
            _ => None,
        }
    }
}

/// An abuse desk found for an address, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// A checked mail address (domain in lower case).
    pub address: String,
    pub source: Source,
    /// For RDAP, the largest CIDR inside the registry's network that holds the address; `None`
    /// for Abusix, which names no network.
    pub network: Option<IpNet>,
    /// The RDAP URL that answered, or the DNS name asked.
    pub origin: String,
    /// The RDAP network's handle.
    pub handle: Option<String>,
    pub fetched_at: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Contact {
    /// The address's domain, lower case.
    pub fn domain(&self) -> &str {
        self.address.rsplit('@').next().unwrap_or("")
    }
}

/// What became of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A desk to report to.
    Found(Contact),
    /// A desk was found, but its domain is in `never`.
    Never(Contact),
    /// The registry and the zone answered and named no usable desk (until the cache expires).
    NoContact,
    /// A server was down, slow, or answered garbage: try again in a later run.
    Failed(String),
    /// Past this run's lookup bound: the next run looks it up.
    Deferred,
}

/// One address's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub ip: IpAddr,
    pub outcome: Outcome,
    /// Answered from the cache alone, without network work.
    pub cached: bool,
}

/// Deadlines and sizes (the configuration has none of these: they are the tool's).
#[derive(Debug, Clone)]
pub struct Limits {
    /// One HTTP request, redirects included.
    pub http_deadline: Duration,
    /// One DNS question, all resolvers included.
    pub dns_deadline: Duration,
    /// Bytes read of an RDAP answer or a bootstrap file.
    pub max_answer: u64,
    /// A bootstrap file fetched from a URL is fetched again after this long.
    pub bootstrap_max_age: chrono::Duration,
    /// Network work of one [`Discoverer`] starts only within this long of its first lookup;
    /// later addresses are deferred, so slow registries cannot stretch a run without end.
    pub run_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            http_deadline: Duration::from_secs(15),
            dns_deadline: Duration::from_secs(5),
            max_answer: 1 << 20,
            bootstrap_max_age: chrono::Duration::days(7),
            run_budget: Duration::from_secs(300),
        }
    }
}

/// How long at most a source's "no usable desk" is trusted.
const NONE_TRUSTED_DAYS: u32 = 7;

/// RDAP answers are asked for with this media type (RFC 9083 §4).
const RDAP_JSON: &str = "application/rdap+json, application/json;q=0.9";

/// What a registry said of an address.
enum RdapAnswer {
    /// Its network and desk, or that it has none: remembered.
    Entry(CacheEntry),
    /// A network that does not hold the address (see [`rdap::RdapError::OtherNetwork`]).
    OtherNetwork(String),
}

/// One run's discovery: lookups share the bound, the cache, and what is known to be down.
pub struct Discoverer<'c> {
    cfg: DiscoverConfig,
    limits: Limits,
    cache: &'c mut dyn ContactCache,
    now: DateTime<Utc>,
    http: Option<rdap::Http>,
    bootstraps: [Option<Result<rdap::Bootstrap, String>>; 2],
    resolvers: Option<Result<Vec<SocketAddr>, String>>,
    used: u32,
    started: Option<std::time::Instant>,
    down: HashSet<String>,
    dns_down: Option<String>,
}

impl<'c> Discoverer<'c> {
    /// Nothing is fetched until an address needs it.
    pub fn new(
        cfg: &DiscoverConfig,
        limits: Limits,
        cache: &'c mut dyn ContactCache,
        now: DateTime<Utc>,
    ) -> Self {
        Discoverer {
            cfg: cfg.clone(),
            limits,
            cache,
            now,
            http: None,
            bootstraps: [None, None],
            resolvers: None,
            used: 0,
            started: None,
            down: HashSet::new(),
            dns_down: None,
        }
    }

    /// Addresses looked up over the network so far (at most `max_lookups_per_run`).
    pub fn lookups_used(&self) -> u32 {
        self.used
    }

    /// The run's time for lookups, when it ran out before `max_lookups_per_run` did: the
    /// addresses deferred wait for that, not for the count.
    pub fn time_spent(&self) -> Option<Duration> {
        let budget = self.limits.run_budget;
        (self.used < self.cfg.max_lookups_per_run
            && self.started.is_some_and(|s| s.elapsed() >= budget))
        .then_some(budget)
    }

    /// Each address in turn; the order is the caller's (the bound falls on the last ones).
    pub fn lookup_all(&mut self, ips: impl IntoIterator<Item = IpAddr>) -> Vec<Lookup> {
        ips.into_iter().map(|ip| self.lookup(ip)).collect()
    }

    /// The contact of one address: from the cache, else from the network within the bound.
    pub fn lookup(&mut self, ip: IpAddr) -> Lookup {
        let ip = ip.to_canonical();
        let (outcome, cached) = match self.resolve(ip) {
            Ok(r) => r,
            Err(why) => (Outcome::Failed(why), false),
        };
        let outcome = match outcome {
            Outcome::Found(c) if address::is_never(c.domain(), &self.cfg.never) => {
                Outcome::Never(c)
            }
            other => other,
        };
        Lookup {
            ip,
            outcome,
            cached,
        }
    }

    fn resolve(&mut self, ip: IpAddr) -> Result<(Outcome, bool), String> {
        let store = |e: anyhow::Error| format!("contact cache: {e:#}");
        let now = self.now;
        let rdap_entry = self.cache.find(Source::Rdap, ip, now).map_err(store)?;
        if let Some(entry) = &rdap_entry
            && entry.address.is_some()
        {
            return Ok((Outcome::Found(contact(entry, ip)), true));
        }
        if rdap_entry.is_some() {
            // The registry has no usable desk for this network: Abusix's answer decides.
            if !self.cfg.abusix {
                return Ok((Outcome::NoContact, true));
            }
            if let Some(entry) = self.cache.find(Source::Abusix, ip, now).map_err(store)? {
                return Ok((found_or_none(&entry, ip), true));
            }
        }
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if self.used >= self.cfg.max_lookups_per_run || started.elapsed() >= self.limits.run_budget
        {
            return Ok((Outcome::Deferred, false));
        }
        // A server known to be down costs no lookup: the bound is on network work.
        if let Some(why) = self.known_down(ip, rdap_entry.is_none()) {
            return Err(why);
        }
        self.used += 1;
        if rdap_entry.is_none() {
            let entry = match self.rdap(ip)? {
                RdapAnswer::Entry(entry) => entry,
                RdapAnswer::OtherNetwork(why) => return self.instead_of_another_network(ip, why),
            };
            self.cache.store(entry.clone()).map_err(store)?;
            if entry.address.is_some() {
                return Ok((Outcome::Found(contact(&entry, ip)), false));
            }
            if !self.cfg.abusix {
                return Ok((Outcome::NoContact, false));
            }
        }
        let entry = self.abusix(ip)?;
        self.cache.store(entry.clone()).map_err(store)?;
        Ok((found_or_none(&entry, ip), false))
    }

    /// The registry answered for `ip` about another network (`why` says which): the desk it
    /// names is that network's. Abusix's desk for the address is taken instead, from the
    /// cache or asked; without one (or with Abusix off) the address waits, the lookup failed
    /// for `why`. Nothing is remembered of the registry's answer: it is asked again next run.
    fn instead_of_another_network(
        &mut self,
        ip: IpAddr,
        why: String,
    ) -> Result<(Outcome, bool), String> {
        if !self.cfg.abusix {
            return Err(why);
        }
        let store = |e: anyhow::Error| format!("contact cache: {e:#}");
        let entry = match self
            .cache
            .find(Source::Abusix, ip, self.now)
            .map_err(store)?
        {
            Some(entry) => entry,
            None => {
                let entry = self.abusix(ip).map_err(|e| format!("{why}; {e}"))?;
                self.cache.store(entry.clone()).map_err(store)?;
                entry
            }
        };
        match entry.address {
            Some(_) => Ok((found_or_none(&entry, ip), false)),
            None => Err(format!("{why}; Abusix names no desk for {ip}")),
        }
    }

    /// Why the server `ip` would go to first is not asked: it failed earlier in this run,
    /// or the bootstrap file could not be had.
    fn known_down(&mut self, ip: IpAddr, rdap_first: bool) -> Option<String> {
        if rdap_first {
            let down = match self.bootstrap(ip) {
                Err(e) => return Some(e),
                Ok(b) => b.server_for(ip).map(str::to_string),
            };
            return down
                .filter(|base| self.down.contains(base))
                .map(|base| format!("RDAP {base}: failed earlier in this run"));
        }
        self.dns_down.as_ref().map(|why| {
            format!(
                "Abusix {}: {why} (earlier in this run)",
                dns::abusix_name(ip)
            )
        })
    }

    fn entry(
        &self,
        source: Source,
        range: (IpAddr, IpAddr),
        address: Option<String>,
        origin: String,
        handle: Option<String>,
    ) -> CacheEntry {
        // A "none" (no desk, no record) is asked again within a week: a registry that had no
        // desk for a network may have one soon, and silence is what costs the operator most.
        let days = match address {
            Some(_) => self.cfg.cache_days,
            None => self.cfg.cache_days.min(NONE_TRUSTED_DAYS),
        };
        CacheEntry {
            source,
            first: range.0,
            last: range.1,
            address,
            origin,
            handle,
            fetched_at: self.now,
            expires: self.now + chrono::Duration::days(i64::from(days)),
        }
    }

    fn http(&mut self) -> &rdap::Http {
        let deadline = self.limits.http_deadline;
        self.http.get_or_insert_with(|| rdap::Http::new(deadline))
    }

    /// The registry's answer for `ip` as an entry to remember, or why there is none yet.
    fn rdap(&mut self, ip: IpAddr) -> Result<RdapAnswer, String> {
        let (boot_origin, served) = {
            let origin = self.bootstrap_origin(ip);
            let boot = self.bootstrap(ip)?;
            (
                origin,
                boot.service_for(ip)
                    .map(|(net, url)| (net, url.to_string())),
            )
        };
        let Some((served, base)) = served else {
            // A registry serves it, at no URL that is used: no lookup can say "none" for it.
            if let Some(urls) = self.bootstrap(ip)?.unusable_for(ip) {
                return Err(format!(
                    "the bootstrap file names for {ip} only registry URLs that are not used (https://, or http:// to this machine): {}",
                    crate::excerpt::clean_line(&urls.join(" "), 200)
                ));
            }
            // No registry serves the address (reserved space): nothing RDAP can say.
            let none = self.entry(Source::Rdap, (ip, ip), None, boot_origin, None);
            return Ok(RdapAnswer::Entry(none));
        };
        // (A server that failed earlier in this run is not asked: see `known_down`.)
        let url = rdap::ip_url(&base, ip);
        let limit = self.limits.max_answer;
        let fetched = match self.http().get(&url, RDAP_JSON, limit) {
            Ok(f) => f,
            Err(e) => {
                if e.server_down() {
                    self.down.insert(base);
                }
                return Err(format!("RDAP {url}: {e}"));
            }
        };
        match fetched.status {
            200 => {}
            404 => {
                let none = self.entry(Source::Rdap, (ip, ip), None, fetched.url, None);
                return Ok(RdapAnswer::Entry(none));
            }
            status => {
                let e = rdap::RdapError::Status(status);
                if e.server_down() {
                    self.down.insert(base);
                }
                return Err(format!("RDAP {}: {e}", fetched.url));
            }
        }
        let network = match rdap::parse_network(&fetched.body, ip) {
            Ok(network) => network,
            Err(e @ rdap::RdapError::OtherNetwork(_)) => {
                return Ok(RdapAnswer::OtherNetwork(format!(
                    "RDAP {}: {e}",
                    fetched.url
                )));
            }
            Err(e) => return Err(format!("RDAP {}: {e}", fetched.url)),
        };
        let address = rdap_address(&network.abuse_emails);
        // A registry answers for the prefix the bootstrap gave it, not beyond (an answer of
        // 0.0.0.0 - 255.255.255.255 must not stand for the other registries' space); an
        // allocation answers for the address's own /24 or /48 only (an assignment inside it
        // may have a desk of its own).
        let answers_for = self.bootstrap(ip)?.answers_for(served, ip);
        let mut range = clamp(network.range.unwrap_or((ip, ip)), answers_for);
        if network.allocation {
            let neighbours = match ip {
                IpAddr::V4(_) => IpNet::new(ip, 24),
                IpAddr::V6(_) => IpNet::new(ip, 48),
            }
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(ip));
            range = clamp(range, (neighbours.network(), neighbours.broadcast()));
        }
        let entry = self.entry(Source::Rdap, range, address, fetched.url, network.handle);
        Ok(RdapAnswer::Entry(entry))
    }

    fn bootstrap_origin(&self, ip: IpAddr) -> String {
        let file = bootstrap_file(ip);
        match &self.cfg.rdap_bootstrap {
            BootstrapLocation::Url(base) => format!("{base}{file}"),
            BootstrapLocation::Folder(dir) => dir.join(file).display().to_string(),
        }
    }

    /// The bootstrap file for `ip`'s family: loaded once per run, from the folder, or from
    /// the cache while fresh, else fetched (a stale copy serves when the fetch fails).
    fn bootstrap(&mut self, ip: IpAddr) -> Result<&rdap::Bootstrap, String> {
        let slot = usize::from(ip.is_ipv6());
        if self.bootstraps[slot].is_none() {
            let loaded = self.load_bootstrap(ip);
            self.bootstraps[slot] = Some(loaded);
        }
        match &self.bootstraps[slot] {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no bootstrap".into()),
        }
    }

    fn load_bootstrap(&mut self, ip: IpAddr) -> Result<rdap::Bootstrap, String> {
        let origin = self.bootstrap_origin(ip);
        let family = if ip.is_ipv4() { 4 } else { 6 };
        let what = |e: &dyn std::fmt::Display| format!("RDAP bootstrap {origin}: {e}");
        match self.cfg.rdap_bootstrap.clone() {
            BootstrapLocation::Folder(dir) => {
                let path = dir.join(bootstrap_file(ip));
                let body = read_limited(&path, self.limits.max_answer).map_err(|e| what(&e))?;
                rdap::Bootstrap::parse(&body).map_err(|e| what(&e))
            }
            BootstrapLocation::Url(_) => {
                let copy = self
                    .cache
                    .bootstrap(family)
                    .map_err(|e| what(&format!("contact cache: {e:#}")))?
                    .filter(|c| c.origin == origin);
                if let Some(c) = &copy
                    && self.now - c.fetched_at < self.limits.bootstrap_max_age
                    && c.fetched_at <= cache::ahead_of(self.now)
                    && let Ok(b) = rdap::Bootstrap::parse(&c.body)
                {
                    return Ok(b);
                }
                let limit = self.limits.max_answer;
                let fetched = self
                    .http()
                    .get(&origin, "application/json", limit)
                    .and_then(|f| match f.status {
                        200 => Ok(f.body),
                        s => Err(rdap::RdapError::Status(s)),
                    })
                    .and_then(|body| rdap::Bootstrap::parse(&body).map(|b| (b, body)));
                match (fetched, copy) {
                    (Ok((b, body)), _) => {
                        self.cache
                            .store_bootstrap(BootstrapCopy {
                                family,
                                origin: origin.clone(),
                                body,
                                fetched_at: self.now,
                            })
                            .map_err(|e| what(&format!("contact cache: {e:#}")))?;
                        Ok(b)
                    }
                    // IANA's files change rarely: an old copy beats none.
                    (Err(e), Some(c)) => rdap::Bootstrap::parse(&c.body).map_err(|_| what(&e)),
                    (Err(e), None) => Err(what(&e)),
                }
            }
        }
    }

    /// Abusix's answer for `ip` as an entry to remember, or why there is none yet.
    fn abusix(&mut self, ip: IpAddr) -> Result<CacheEntry, String> {
        let name = dns::abusix_name(ip);
        if let Some(why) = &self.dns_down {
            return Err(format!("Abusix {name}: {why} (earlier in this run)"));
        }
        let servers = self
            .resolvers
            .get_or_insert_with(|| match &self.cfg.dns_server {
                Some(hp) => dns::server_addrs(hp).map_err(|e| e.to_string()),
                None => Ok(dns::system_servers()),
            })
            .clone()?;
        match dns::query_txt(&servers, &name, self.limits.dns_deadline) {
            Ok(texts) => {
                let address = abusix_address(&texts);
                Ok(self.entry(Source::Abusix, (ip, ip), address, name, None))
            }
            Err(e) => {
                if matches!(e, dns::DnsError::Timeout | dns::DnsError::Io(_)) {
                    self.dns_down = Some(e.to_string());
                }
                Err(format!("Abusix {name}: {e}"))
            }
        }
    }
}

/// The abuse address an Abusix answer gives: the first valid one of its texts' words. An
/// answer with a control character in any text (`abuse@a.example\r\nBcc: x@y.example`) is
/// not what the zone publishes: it gives none, as an RDAP contact with one fails, rather than
/// the address smuggled after it.
fn abusix_address(texts: &[String]) -> Option<String> {
    first_address(texts, |t| t.chars().any(char::is_control))
}

/// The abuse address an RDAP answer gives: the first valid one of its abuse contacts (of the
/// addresses in a value that lists several, `abuse@a.example, noc@a.example`, as an Abusix
/// text may: it gave none). A contact with a character no mailbox holds inside it (a line
/// break, NUL, a bidi mark:
/// `abuse@a.example\r\n.b.example`) is not what the registry means to publish: the answer
/// gives none, as an Abusix answer with one does, rather than the text with the character
/// taken out (`abuse@a.example.b.example`, a mailbox the registry never named) or another
/// contact beside it.
fn rdap_address(emails: &[String]) -> Option<String> {
    let hidden = |c: char| c.is_control() || crate::excerpt::is_invisible_format(c);
    first_address(emails, |e| e.trim().chars().any(hidden))
}

/// The first valid address among the words of `values` (split at `,`, `;` and spaces), none
/// when a value is `smuggled` (holds what no published address does).
fn first_address(values: &[String], smuggled: impl Fn(&str) -> bool) -> Option<String> {
    if values.iter().any(|v| smuggled(v)) {
        return None;
    }
    (values.iter())
        .flat_map(|v| v.split([',', ';', ' ']))
        .find_map(|v| address::check(v).ok())
        .map(|a| a.to_string())
}

/// `range` cut to `to` (both hold the address the range was asked for).
fn clamp(range: (IpAddr, IpAddr), to: (IpAddr, IpAddr)) -> (IpAddr, IpAddr) {
    (range.0.max(to.0), range.1.min(to.1))
}

/// The IANA bootstrap files: for IPv4, then IPv6.
pub const BOOTSTRAP_FILES: [&str; 2] = ["ipv4.json", "ipv6.json"];

/// What is wrong with a bootstrap folder: each of its files that is not there, as
/// `discover.rdap_bootstrap: FILE: ERROR`. Nothing for a URL, which a run fetches.
pub fn bootstrap_folder_problems(config: &DiscoverConfig) -> Vec<String> {
    let BootstrapLocation::Folder(dir) = &config.rdap_bootstrap else {
        return Vec::new();
    };
    (BOOTSTRAP_FILES.iter())
        .filter_map(|name| {
            let file = dir.join(name);
            // Not there, or not a bootstrap file: no later run finds it otherwise. Other
            // trouble reading it is each lookup's, and waits.
            let said = |e: &dyn std::fmt::Display| {
                Some(format!("discover.rdap_bootstrap: {}: {e}", file.display()))
            };
            match read_limited(&file, Limits::default().max_answer) {
                Ok(body) => match rdap::Bootstrap::parse(&body) {
                    Ok(_) => None,
                    Err(e) => said(&format_args!("not an RDAP bootstrap file ({e})")),
                },
                Err(_) => match std::fs::metadata(&file) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => said(&e),
                    _ => None,
                },
            }
        })
        .collect()
}

fn bootstrap_file(ip: IpAddr) -> &'static str {
    BOOTSTRAP_FILES[usize::from(ip.is_ipv6())]
}

fn read_limited(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(body)
}

fn found_or_none(entry: &CacheEntry, ip: IpAddr) -> Outcome {
    match entry.address {
        Some(_) => Outcome::Found(contact(entry, ip)),
        None => Outcome::NoContact,
    }
}

/// A remembered entry as the contact of `ip`.
pub fn contact(entry: &CacheEntry, ip: IpAddr) -> Contact {
    Contact {
        address: entry.address.clone().unwrap_or_default(),
        source: entry.source,
        network: match entry.source {
            Source::Rdap => Some(cidr_within(entry.first, entry.last, ip)),
            Source::Abusix => None,
        },
        origin: entry.origin.clone(),
        handle: entry.handle.clone(),
        fetched_at: entry.fetched_at,
        expires: entry.expires,
    }
}

/// The largest CIDR that holds `ip` and lies within `first..=last` (registries' ranges need
/// not be one CIDR).
pub fn cidr_within(first: IpAddr, last: IpAddr, ip: IpAddr) -> IpNet {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .filter_map(|len| IpNet::new(ip, len).ok().map(|n| n.trunc()))
        .find(|n| n.network() >= first && n.broadcast() <= last)
        .unwrap_or_else(|| IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    /// An Abusix answer smuggling a second address behind a line break gives none: not the
    /// smuggled one. A plain answer gives its first valid address.
    #[test]
    fn an_abusix_answer_with_a_line_break_gives_no_address() {
        let texts = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for hostile in [
            texts(&["abuse@a5-net.de\r\nBcc: victim@third-party.de"]),
            texts(&["abuse@a3-net.de\nBcc: victim@third-party.de"]),
            texts(&["abuse@a4-net.de", "x\u{7}victim@third-party.de"]),
        ] {
            assert_eq!(abusix_address(&hostile), None, "{hostile:?}");
        }
        assert_eq!(
            abusix_address(&texts(&["not-an-address, abuse@a6-net.de; noc@a6-net.de"])),
            Some("abuse@a6-net.de".to_string())
        );
    }

    /// A registry's e-mail value listing two addresses gave no desk at all; its first valid
    /// one is the desk, as for Abusix. One with a line break in it still gives none.
    #[test]
    fn an_rdap_value_listing_addresses_gives_its_first_valid_one() {
        let emails = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rdap_address(&emails(&["abuse@a7-net.de, noc@a7-net.de"])),
            Some("abuse@a7-net.de".to_string())
        );
        assert_eq!(
            rdap_address(&emails(&["redacted@redacted.invalid; abuse@a8-net.de"])),
            Some("abuse@a8-net.de".to_string())
        );
        assert_eq!(
            rdap_address(&emails(&["abuse@a9-net.de\r\nnoc@x.de"])),
            None
        );
    }

    fn cfg(max: u32, abusix: bool) -> DiscoverConfig {
        DiscoverConfig {
            // Nothing may be fetched in these tests: a folder that does not exist.
            rdap_bootstrap: BootstrapLocation::Folder("/nonexistent/bootstrap".into()),
            abusix,
            dns_server: Some("127.0.0.1:9".into()),
            cache_days: 30,
            max_lookups_per_run: max,
            never: vec![],
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    fn rdap_entry(address: Option<&str>) -> CacheEntry {
        CacheEntry {
            source: Source::Rdap,
            first: "192.0.2.0".parse().unwrap(),
            last: "192.0.2.255".parse().unwrap(),
            address: address.map(str::to_string),
            origin: "https://rdap.registry.net/ip/192.0.2.1".into(),
            handle: Some("NET-1".into()),
            fetched_at: at(1),
            expires: at(10),
        }
    }

    #[test]
    fn the_cache_answers_without_a_lookup() {
        let mut cache = MemoryCache::default();
        cache.store(rdap_entry(Some("abuse@hoster.net"))).unwrap();
        let mut d = Discoverer::new(&cfg(0, true), Limits::default(), &mut cache, at(5));
        // An IPv4-mapped IPv6 source is the IPv4 address.
        let l = d.lookup("::ffff:192.0.2.9".parse().unwrap());
        assert_eq!(l.ip.to_string(), "192.0.2.9");
        assert!(l.cached);
        let Outcome::Found(c) = &l.outcome else {
            panic!("{l:?}")
        };
        assert_eq!(c.address, "abuse@hoster.net");
        assert_eq!(c.source.name(), "rdap");
        assert_eq!(
            c.network.map(|n| n.to_string()).as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(d.lookups_used(), 0);
    }

    #[test]
    fn an_expired_entry_needs_a_lookup_again() {
        let mut cache = MemoryCache::default();
        cache.store(rdap_entry(Some("abuse@hoster.net"))).unwrap();
        let mut d = Discoverer::new(&cfg(0, true), Limits::default(), &mut cache, at(11));
        assert_eq!(
            d.lookup("192.0.2.9".parse().unwrap()).outcome,
            Outcome::Deferred
        );
        // Deferred for the count, not the time: the run says which.
        assert_eq!(d.time_spent(), None);
    }

    #[test]
    fn past_the_time_budget_addresses_are_deferred() {
        let mut cache = MemoryCache::default();
        cache.store(rdap_entry(Some("abuse@hoster.net"))).unwrap();
        let limits = Limits {
            run_budget: Duration::ZERO,
            ..Limits::default()
        };
        let mut d = Discoverer::new(&cfg(5, true), limits, &mut cache, at(5));
        // The cache still answers; nothing new is looked up.
        assert!(matches!(
            d.lookup("192.0.2.9".parse().unwrap()).outcome,
            Outcome::Found(_)
        ));
        assert_eq!(
            d.lookup("198.51.100.1".parse().unwrap()).outcome,
            Outcome::Deferred
        );
        assert_eq!(d.lookups_used(), 0);
        // The run said max_lookups_per_run was reached, and an operator raised a limit that
        // was never hit: it says the time ran out.
        assert_eq!(d.time_spent(), Some(Duration::ZERO));
    }

    #[test]
    fn a_registry_none_without_abusix_is_no_contact() {
        let mut cache = MemoryCache::default();
        cache.store(rdap_entry(None)).unwrap();
        let mut d = Discoverer::new(&cfg(0, false), Limits::default(), &mut cache, at(5));
        let l = d.lookup("192.0.2.9".parse().unwrap());
        assert_eq!((l.outcome, l.cached), (Outcome::NoContact, true));
        // With Abusix on and no Abusix entry, it is network work: past a zero bound, deferred.
        let mut cache = MemoryCache::default();
        cache.store(rdap_entry(None)).unwrap();
        let mut d = Discoverer::new(&cfg(0, true), Limits::default(), &mut cache, at(5));
        assert_eq!(
            d.lookup("192.0.2.9".parse().unwrap()).outcome,
            Outcome::Deferred
        );
    }

    /// A store that cannot be read, like a state database on a failing disk.
    struct Broken;

    impl ContactCache for Broken {
        fn find(
            &self,
            _: Source,
            _: IpAddr,
            _: DateTime<Utc>,
        ) -> anyhow::Result<Option<CacheEntry>> {
            anyhow::bail!("disk I/O error")
        }
        fn store(&mut self, _: CacheEntry) -> anyhow::Result<()> {
            anyhow::bail!("disk I/O error")
        }
        fn bootstrap(&self, _: u8) -> anyhow::Result<Option<BootstrapCopy>> {
            anyhow::bail!("disk I/O error")
        }
        fn store_bootstrap(&mut self, _: BootstrapCopy) -> anyhow::Result<()> {
            anyhow::bail!("disk I/O error")
        }
    }

    #[test]
    fn a_failing_store_fails_the_address_not_the_run() {
        let mut broken = Broken;
        let mut d = Discoverer::new(&cfg(5, true), Limits::default(), &mut broken, at(5));
        let got = d.lookup_all(["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
        for l in got {
            assert!(
                matches!(&l.outcome, Outcome::Failed(w) if w.contains("contact cache: disk I/O error")),
                "{l:?}"
            );
        }
    }

    #[test]
    fn a_missing_bootstrap_folder_fails_the_address_without_a_lookup() {
        let mut cache = MemoryCache::default();
        let mut d = Discoverer::new(&cfg(5, true), Limits::default(), &mut cache, at(5));
        let l = d.lookup("192.0.2.1".parse().unwrap());
        assert!(
            matches!(&l.outcome, Outcome::Failed(w) if w.contains("/nonexistent/bootstrap/ipv4.json")),
            "{l:?}"
        );
        assert_eq!(d.lookups_used(), 0);
    }

    #[test]
    fn a_range_that_is_not_one_cidr_gives_the_part_holding_the_address() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            cidr_within(a("192.0.2.0"), a("192.0.3.127"), a("192.0.3.5")).to_string(),
            "192.0.3.0/25"
        );
        assert_eq!(
            cidr_within(a("192.0.2.0"), a("192.0.3.127"), a("192.0.2.5")).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            cidr_within(
                a("2001:db8::"),
                a("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
                a("2001:db8::1")
            )
            .to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            cidr_within(a("192.0.2.7"), a("192.0.2.7"), a("192.0.2.7")).to_string(),
            "192.0.2.7/32"
        );
    }
}
