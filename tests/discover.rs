//! Contact discovery through its library API against loopback servers: an RDAP registry
//! serving RFC 9083 network objects, bootstrap files pointing at it, and a DNS resolver for
//! the Abusix zone. Deadlines in these tests are generous where an answer is expected and
//! short only where the server is meant to stay silent.

#[path = "common/discover_stubs.rs"]
mod stubs;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use abuse_mailer::config::{BootstrapLocation, DiscoverConfig};
use abuse_mailer::discover::{
    ContactCache, Discoverer, Limits, Lookup, MemoryCache, Outcome, Source, dns,
};
use chrono::{DateTime, TimeZone, Utc};
use stubs::{Dns, Rdap, Reply, bootstrap, entity, network};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 20, 12, 0, 0).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A bootstrap folder sending every test range to `rdap`.
fn folder(dir: &Path, rdap: &Rdap) -> BootstrapLocation {
    std::fs::write(
        dir.join("ipv4.json"),
        bootstrap(&[
            ("192.0.2.0/24", &rdap.base()),
            ("198.51.100.0/24", &rdap.base()),
            ("203.0.113.0/24", &rdap.base()),
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.join("ipv6.json"),
        bootstrap(&[("2001:db8::/32", &rdap.base())]),
    )
    .unwrap();
    BootstrapLocation::Folder(dir.to_path_buf())
}

fn config(boot: BootstrapLocation, dns: &Dns) -> DiscoverConfig {
    DiscoverConfig {
        rdap_bootstrap: boot,
        abusix: true,
        dns_server: Some(dns.addr.to_string()),
        cache_days: 30,
        max_lookups_per_run: 200,
        never: vec![],
    }
}

fn limits() -> Limits {
    Limits {
        http_deadline: Duration::from_secs(20),
        dns_deadline: Duration::from_secs(20),
        ..Limits::default()
    }
}

fn run(cfg: &DiscoverConfig, cache: &mut MemoryCache, ips: &[&str]) -> Vec<Lookup> {
    run_with(cfg, limits(), cache, now(), ips)
}

fn run_with(
    cfg: &DiscoverConfig,
    limits: Limits,
    cache: &mut MemoryCache,
    at: DateTime<Utc>,
    ips: &[&str],
) -> Vec<Lookup> {
    let mut d = Discoverer::new(cfg, limits, cache, at);
    d.lookup_all(ips.iter().map(|t| ip(t)))
}

fn found(l: &Lookup) -> &abuse_mailer::discover::Contact {
    match &l.outcome {
        Outcome::Found(c) => c,
        other => panic!("{}: {other:?}", l.ip),
    }
}

fn abuse_net(rdap: &Rdap, first: &str, last: &str, handle: &str, email: &str) {
    rdap.route(
        &format!("/rdap/ip/{first}"),
        Reply::Json(
            200,
            network(first, last, handle, &[entity(&["abuse"], Some(email), &[])]),
        ),
    );
}

#[test]
fn top_level_abuse_entity_is_found_and_cached_per_network() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    abuse_net(
        &rdap,
        "192.0.2.10",
        "192.0.2.255",
        "NET-A",
        "Abuse@Alpha-Hosting.NET",
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    let first = run(&cfg, &mut cache, &["192.0.2.10"]);
    let c = found(&first[0]);
    assert_eq!(c.address, "Abuse@alpha-hosting.net");
    assert_eq!(c.source, Source::Rdap);
    assert_eq!(c.handle.as_deref(), Some("NET-A"));
    assert_eq!(c.origin, format!("{}ip/192.0.2.10", rdap.base()));
    // 192.0.2.10-255 is not one CIDR: the part holding the address is named.
    assert_eq!(c.network.unwrap().to_string(), "192.0.2.10/31");
    assert!(!first[0].cached);
    // Another address of the same network, in a later run: no request.
    let second = run(&cfg, &mut cache, &["192.0.2.200"]);
    assert_eq!(found(&second[0]).address, "Abuse@alpha-hosting.net");
    assert_eq!(
        found(&second[0]).network.unwrap().to_string(),
        "192.0.2.128/25"
    );
    assert!(second[0].cached);
    assert_eq!(rdap.asked(), ["/rdap/ip/192.0.2.10"]);
    assert!(dns.asked().is_empty());
}

#[test]
fn nested_abuse_entity_is_found() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    // ARIN's shape: the organisation is the registrant, its abuse contact nested in it.
    let org = entity(
        &["registrant"],
        Some("hostmaster@beta-transit.net"),
        &[
            entity(&["technical"], Some("noc@beta-transit.net"), &[]),
            entity(&["abuse"], Some("abuse@beta-transit.net"), &[]),
        ],
    );
    rdap.route(
        "/rdap/ip/198.51.100.5",
        Reply::Json(
            200,
            network("198.51.100.0", "198.51.100.255", "NET-B", &[org]),
        ),
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let got = run(&cfg, &mut MemoryCache::default(), &["198.51.100.5"]);
    let c = found(&got[0]);
    assert_eq!(c.address, "abuse@beta-transit.net");
    assert_eq!(c.network.unwrap().to_string(), "198.51.100.0/24");
    assert!(dns.asked().is_empty(), "RDAP answered: Abusix not asked");
}

#[test]
fn placeholder_is_refused_and_abusix_used_instead() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    let redacted = entity(&["abuse"], Some("REDACTED FOR PRIVACY"), &[]);
    let removed = entity(
        &["registrant"],
        None,
        &[entity(&["abuse"], Some("removed@registry.net"), &[])],
    );
    rdap.route(
        "/rdap/ip/203.0.113.5",
        Reply::Json(
            200,
            network(
                "203.0.113.0",
                "203.0.113.255",
                "NET-C",
                &[redacted, removed],
            ),
        ),
    );
    dns.txt(
        "5.113.0.203.abuse-contacts.abusix.zone",
        &["abuse@gamma-cloud.net"],
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    let got = run(&cfg, &mut cache, &["203.0.113.5"]);
    let c = found(&got[0]);
    assert_eq!(c.address, "abuse@gamma-cloud.net");
    assert_eq!(c.source, Source::Abusix);
    assert_eq!(c.network, None);
    assert_eq!(c.origin, "5.113.0.203.abuse-contacts.abusix.zone");
    // The registry's "none" is remembered for its network: a neighbour goes straight to Abusix.
    dns.txt(
        "6.113.0.203.abuse-contacts.abusix.zone",
        &["abuse@gamma-cloud.net"],
    );
    let again = run(&cfg, &mut cache, &["203.0.113.5", "203.0.113.6"]);
    assert!(again[0].cached);
    assert_eq!(found(&again[1]).source, Source::Abusix);
    assert_eq!(rdap.asked().len(), 1);
    assert_eq!(
        dns.asked(),
        [
            "5.113.0.203.abuse-contacts.abusix.zone",
            "6.113.0.203.abuse-contacts.abusix.zone"
        ]
    );
}

#[test]
fn no_abuse_entity_falls_back_to_abusix_and_none_is_remembered() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    let tech = entity(&["technical"], Some("noc@delta-net.net"), &[]);
    rdap.route(
        "/rdap/ip/192.0.2.1",
        Reply::Json(200, network("192.0.2.0", "192.0.2.255", "NET-D", &[tech])),
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    // Abusix has no record either (NXDOMAIN).
    let got = run(&cfg, &mut cache, &["192.0.2.1"]);
    assert_eq!(got[0].outcome, Outcome::NoContact);
    assert_eq!(dns.asked(), ["1.2.0.192.abuse-contacts.abusix.zone"]);
    let again = run(&cfg, &mut cache, &["192.0.2.1"]);
    assert_eq!(
        (again[0].outcome.clone(), again[0].cached),
        (Outcome::NoContact, true)
    );
    assert_eq!((rdap.asked().len(), dns.asked().len()), (1, 1));
    // "None" is trusted a week at most, whatever cache_days says (30 here): asked again then.
    assert_eq!(cfg.cache_days, 30);
    let week = run_with(
        &cfg,
        limits(),
        &mut cache,
        now() + chrono::Duration::days(8),
        &["192.0.2.1"],
    );
    assert!(!week[0].cached);
    assert_eq!((rdap.asked().len(), dns.asked().len()), (2, 2));
}

/// A registry that answers about another network (its range does not hold the address) names
/// that network's desk, not the address's. The lookup failed on every run, and the address
/// was never reported; Abusix's desk for it is now taken instead, remembered as Abusix's,
/// while the registry is asked again on a later run. Without a desk from Abusix either, the
/// lookup fails saying both why.
#[test]
fn an_answer_about_another_network_asks_abusix_instead() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    for ip in ["192.0.2.1", "192.0.2.2"] {
        rdap.route(
            &format!("/rdap/ip/{ip}"),
            Reply::Json(
                200,
                network(
                    "10.0.0.0",
                    "10.0.0.255",
                    "NET-ELSEWHERE",
                    &[entity(&["abuse"], Some("abuse@elsewhere.net"), &[])],
                ),
            ),
        );
    }
    dns.txt(
        "1.2.0.192.abuse-contacts.abusix.zone",
        &["abuse@right-desk.net"],
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    let got = run(&cfg, &mut cache, &["192.0.2.1", "192.0.2.2"]);
    let c = found(&got[0]);
    assert_eq!(c.address, "abuse@right-desk.net");
    assert_eq!(c.source, Source::Abusix);
    let Outcome::Failed(why) = &got[1].outcome else {
        panic!("{:?}", got[1])
    };
    assert!(
        why.contains("does not hold 192.0.2.2") && why.contains("Abusix"),
        "{why}"
    );
    // The next run asks the registry again, and takes Abusix's answer from the cache.
    let again = run(&cfg, &mut cache, &["192.0.2.1"]);
    assert_eq!(found(&again[0]).address, "abuse@right-desk.net");
    let asked = |ip: &str| rdap.asked().iter().filter(|p| p.ends_with(ip)).count();
    assert_eq!(asked("192.0.2.1"), 2);
    assert_eq!(
        dns.asked(),
        [
            "1.2.0.192.abuse-contacts.abusix.zone",
            "2.2.0.192.abuse-contacts.abusix.zone"
        ]
    );
    // With Abusix off, the address waits, as before.
    let mut off = cfg.clone();
    off.abusix = false;
    let waiting = run(&off, &mut MemoryCache::default(), &["192.0.2.1"]);
    assert!(
        matches!(&waiting[0].outcome, Outcome::Failed(why) if why.contains("does not hold 192.0.2.1")),
        "{:?}",
        waiting[0]
    );
}

#[test]
fn malformed_json_fails_only_its_address_and_is_asked_again_later() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    rdap.route(
        "/rdap/ip/192.0.2.1",
        Reply::Json(200, r#"{"objectClassName":"ip netw"#.into()),
    );
    rdap.route(
        "/rdap/ip/192.0.2.2",
        Reply::Json(200, "<html>proxy error</html>".into()),
    );
    abuse_net(
        &rdap,
        "198.51.100.1",
        "198.51.100.255",
        "NET-E",
        "abuse@epsilon.net",
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    let got = run(
        &cfg,
        &mut cache,
        &["192.0.2.1", "192.0.2.2", "198.51.100.1"],
    );
    for l in &got[..2] {
        let Outcome::Failed(why) = &l.outcome else {
            panic!("{l:?}")
        };
        assert!(
            why.contains("malformed") && why.contains("/rdap/ip/"),
            "{why}"
        );
    }
    assert_eq!(found(&got[2]).address, "abuse@epsilon.net");
    assert!(
        dns.asked().is_empty(),
        "a broken answer is not a registry's \"none\""
    );
    // Nothing was remembered for the broken ones: the next run asks again.
    run(&cfg, &mut cache, &["192.0.2.1"]);
    assert_eq!(
        rdap.asked()
            .iter()
            .filter(|p| p.ends_with("192.0.2.1"))
            .count(),
        2
    );
}

#[test]
fn a_silent_registry_fails_within_the_deadline_and_is_not_asked_again_that_run() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    rdap.route("/rdap/ip/192.0.2.1", Reply::Silent);
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let short = Limits {
        http_deadline: Duration::from_secs(1),
        ..limits()
    };
    let mut cache = MemoryCache::default();
    let mut d = Discoverer::new(&cfg, short, &mut cache, now());
    let got = d.lookup_all([ip("192.0.2.1"), ip("192.0.2.2")]);
    let Outcome::Failed(why) = &got[0].outcome else {
        panic!("{got:?}")
    };
    assert!(why.contains("deadline") || why.contains("imeout"), "{why}");
    let Outcome::Failed(why) = &got[1].outcome else {
        panic!("{got:?}")
    };
    assert!(why.contains("earlier in this run"), "{why}");
    // The second address cost no lookup: nothing was asked for it.
    assert_eq!(d.lookups_used(), 1);
    assert_eq!(rdap.asked(), ["/rdap/ip/192.0.2.1"]);
}

#[test]
fn an_oversized_answer_is_refused() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    let big = entity(&["abuse"], Some("abuse@zeta.net"), &[]);
    let body = network("192.0.2.0", "192.0.2.255", &"H".repeat(5000), &[big]);
    rdap.route("/rdap/ip/192.0.2.1", Reply::Json(200, body));
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let small = Limits {
        max_answer: 4096,
        ..limits()
    };
    let got = run_with(
        &cfg,
        small,
        &mut MemoryCache::default(),
        now(),
        &["192.0.2.1"],
    );
    let Outcome::Failed(why) = &got[0].outcome else {
        panic!("{got:?}")
    };
    assert!(why.contains("larger than"), "{why}");
}

#[test]
fn registry_errors_leave_the_address_waiting() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    rdap.route("/rdap/ip/192.0.2.1", Reply::Json(503, "{}".into()));
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let mut cache = MemoryCache::default();
    let got = run(&cfg, &mut cache, &["192.0.2.1", "192.0.2.2"]);
    assert!(matches!(&got[0].outcome, Outcome::Failed(w) if w.contains("503")));
    assert!(matches!(&got[1].outcome, Outcome::Failed(w) if w.contains("earlier in this run")));
    assert!(cache.entries.is_empty());
    assert!(dns.asked().is_empty());
}

#[test]
fn ipv6_goes_to_abusix_as_reversed_nibbles() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    // The registry does not know the address (404): Abusix is asked.
    let name = dns::abusix_name(ip("2001:db8::a:1"));
    assert_eq!(
        name,
        "1.0.0.0.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.abuse-contacts.abusix.zone"
    );
    dns.txt(&name, &["abuse@eta-six.net"]);
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let got = run(&cfg, &mut MemoryCache::default(), &["2001:db8::a:1"]);
    assert_eq!(found(&got[0]).address, "abuse@eta-six.net");
    assert_eq!(rdap.asked(), ["/rdap/ip/2001:db8::a:1"]);
    assert_eq!(dns.asked(), [name]);
}

#[test]
fn bootstrap_sends_each_address_to_its_registry_and_follows_redirects() {
    let (a, b, dns, dir) = (
        Rdap::start(),
        Rdap::start(),
        Dns::start(),
        tempfile::tempdir().unwrap(),
    );
    std::fs::write(
        dir.path().join("ipv4.json"),
        bootstrap(&[("192.0.2.0/24", &a.base()), ("192.0.2.128/25", &b.base())]),
    )
    .unwrap();
    abuse_net(
        &a,
        "192.0.2.1",
        "192.0.2.1",
        "NET-A1",
        "abuse@registry-a-customer.net",
    );
    abuse_net(
        &b,
        "192.0.2.129",
        "192.0.2.129",
        "NET-B1",
        "abuse@registry-b-customer.net",
    );
    // A transferred address: registry A sends the client on to B.
    a.route(
        "/rdap/ip/192.0.2.77",
        Reply::Redirect(format!("{}ip/192.0.2.77", b.base())),
    );
    abuse_net(
        &b,
        "192.0.2.77",
        "192.0.2.77",
        "NET-B2",
        "abuse@transferred.net",
    );
    let cfg = config(BootstrapLocation::Folder(dir.path().to_path_buf()), &dns);
    let got = run(
        &cfg,
        &mut MemoryCache::default(),
        &["192.0.2.1", "192.0.2.129", "192.0.2.77"],
    );
    assert_eq!(found(&got[0]).address, "abuse@registry-a-customer.net");
    assert_eq!(found(&got[1]).address, "abuse@registry-b-customer.net");
    assert_eq!(found(&got[2]).address, "abuse@transferred.net");
    assert_eq!(found(&got[2]).origin, format!("{}ip/192.0.2.77", b.base()));
    assert_eq!(a.asked(), ["/rdap/ip/192.0.2.1", "/rdap/ip/192.0.2.77"]);
    // An address no registry serves: nothing asked, no contact.
    let none = run(&cfg, &mut MemoryCache::default(), &["203.0.113.9"]);
    assert_eq!(none[0].outcome, Outcome::NoContact);
}

#[test]
fn a_redirect_to_remote_http_is_refused() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    rdap.route(
        "/rdap/ip/192.0.2.1",
        Reply::Redirect("http://rdap.registry.net/ip/192.0.2.1".into()),
    );
    let cfg = config(folder(dir.path(), &rdap), &dns);
    let got = run(&cfg, &mut MemoryCache::default(), &["192.0.2.1"]);
    assert!(
        matches!(&got[0].outcome, Outcome::Failed(w) if w.contains("only https")),
        "{got:?}"
    );
}

#[test]
fn bootstrap_from_a_url_is_cached_and_refreshed_rarely() {
    let (rdap, dns) = (Rdap::start(), Dns::start());
    let boot = bootstrap(&[("192.0.2.0/24", &rdap.base())]);
    rdap.route("/iana/ipv4.json", Reply::Json(200, boot));
    abuse_net(&rdap, "192.0.2.1", "192.0.2.1", "N1", "abuse@theta.net");
    abuse_net(&rdap, "192.0.2.2", "192.0.2.2", "N2", "abuse@theta.net");
    abuse_net(&rdap, "192.0.2.3", "192.0.2.3", "N3", "abuse@theta.net");
    let url = format!("http://{}/iana/", rdap.addr);
    let cfg = config(BootstrapLocation::Url(url.clone()), &dns);
    let mut cache = MemoryCache::default();
    run(&cfg, &mut cache, &["192.0.2.1"]);
    let copy = cache.bootstrap(4).unwrap().unwrap();
    assert_eq!(copy.origin, format!("{url}ipv4.json"));
    // A day later: the copy serves.
    let day = now() + chrono::Duration::days(1);
    found(&run_with(&cfg, limits(), &mut cache, day, &["192.0.2.2"])[0]);
    let boots = |r: &Rdap| r.asked().iter().filter(|p| p.starts_with("/iana/")).count();
    assert_eq!(boots(&rdap), 1);
    // Past a week it is fetched again; when that fails, the old copy still serves.
    rdap.route("/iana/ipv4.json", Reply::Json(500, "{}".into()));
    let later = now() + chrono::Duration::days(8);
    found(&run_with(&cfg, limits(), &mut cache, later, &["192.0.2.3"])[0]);
    assert_eq!(boots(&rdap), 2);
}

#[test]
fn never_domains_are_kept_out() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    abuse_net(
        &rdap,
        "192.0.2.1",
        "192.0.2.255",
        "N",
        "abuse@mail.iota-hosting.net",
    );
    let mut cfg = config(folder(dir.path(), &rdap), &dns);
    cfg.never = vec!["iota-hosting.net".into()];
    let mut cache = MemoryCache::default();
    let got = run(&cfg, &mut cache, &["192.0.2.1"]);
    let Outcome::Never(c) = &got[0].outcome else {
        panic!("{got:?}")
    };
    assert_eq!(c.address, "abuse@mail.iota-hosting.net");
    // From the cache too.
    assert!(matches!(
        run(&cfg, &mut cache, &["192.0.2.9"])[0].outcome,
        Outcome::Never(_)
    ));
    assert!(
        dns.asked().is_empty(),
        "a refused desk is not replaced by Abusix's"
    );
}

#[test]
fn the_lookup_bound_defers_the_rest_and_nothing_is_lost() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    let ips = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
        "192.0.2.5",
    ];
    for (i, a) in ips.iter().enumerate() {
        abuse_net(
            &rdap,
            a,
            a,
            &format!("N{i}"),
            &format!("abuse@kappa{i}.net"),
        );
    }
    let mut cfg = config(folder(dir.path(), &rdap), &dns);
    cfg.max_lookups_per_run = 2;
    let mut cache = MemoryCache::default();
    let mut done = std::collections::BTreeMap::new();
    for round in 1..=3 {
        let got = run(&cfg, &mut cache, &ips);
        let fresh = got
            .iter()
            .filter(|l| !l.cached && l.outcome != Outcome::Deferred)
            .count();
        assert!(fresh <= 2, "round {round}: {got:?}");
        for l in got {
            if let Outcome::Found(c) = l.outcome {
                done.insert(l.ip, c.address);
            }
        }
    }
    assert_eq!(done.len(), 5);
    assert_eq!(rdap.asked().len(), 5, "each network asked once");
    // Zero lookups: only the cache answers.
    cfg.max_lookups_per_run = 0;
    let got = run(&cfg, &mut MemoryCache::default(), &["192.0.2.1"]);
    assert_eq!(got[0].outcome, Outcome::Deferred);
    assert_eq!(rdap.asked().len(), 5);
}

#[test]
fn abusix_off_means_no_dns_question() {
    let (rdap, dns, dir) = (Rdap::start(), Dns::start(), tempfile::tempdir().unwrap());
    let mut cfg = config(folder(dir.path(), &rdap), &dns);
    cfg.abusix = false;
    dns.txt(
        "1.2.0.192.abuse-contacts.abusix.zone",
        &["abuse@lambda.net"],
    );
    let got = run(&cfg, &mut MemoryCache::default(), &["192.0.2.1"]);
    assert_eq!(got[0].outcome, Outcome::NoContact);
    assert!(dns.asked().is_empty());
}

#[test]
fn a_silent_resolver_fails_the_address_and_is_not_asked_again_that_run() {
    let (rdap, dir) = (Rdap::start(), tempfile::tempdir().unwrap());
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = DiscoverConfig {
        dns_server: Some(silent.local_addr().unwrap().to_string()),
        ..config(folder(dir.path(), &rdap), &Dns::start())
    };
    cfg.abusix = true;
    let short = Limits {
        dns_deadline: Duration::from_secs(1),
        ..limits()
    };
    let mut cache = MemoryCache::default();
    let got = run_with(&cfg, short, &mut cache, now(), &["192.0.2.1", "192.0.2.2"]);
    assert!(
        matches!(&got[0].outcome, Outcome::Failed(w) if w.contains("deadline")),
        "{got:?}"
    );
    assert!(matches!(&got[1].outcome, Outcome::Failed(_)), "{got:?}");
    // The registry's "none" (404) is remembered; the Abusix half is asked again next run.
    assert!(
        cache
            .entries
            .iter()
            .all(|e| e.source == Source::Rdap && e.address.is_none())
    );
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let dns = Dns::start();
    dns.truncate_udp(true);
    dns.txt("9.2.0.192.abuse-contacts.abusix.zone", &["abuse@mu.net"]);
    let got = dns::query_txt(
        &[dns.addr],
        "9.2.0.192.abuse-contacts.abusix.zone",
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(got, ["abuse@mu.net"]);
    assert_eq!(dns.asked().len(), 2);
}

/// A bootstrap file whose registry for a prefix is named only at URLs that are not used
/// (`http://` off this machine): no lookup can reach it, so its addresses fail and wait, said
/// on stderr, rather than being taken as reserved space and cached as having nobody to write
/// to.
#[test]
fn a_registry_named_only_at_unused_urls_fails_the_lookup_rather_than_saying_none() {
    let (dns, dir) = (Dns::start(), tempfile::tempdir().unwrap());
    std::fs::write(
        dir.path().join("ipv4.json"),
        bootstrap(&[("192.0.2.0/24", "http://rdap.example.test/")]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ipv6.json"),
        bootstrap(&[("2001:db8::/32", "http://rdap.example.test/")]),
    )
    .unwrap();
    let cfg = config(BootstrapLocation::Folder(dir.path().to_path_buf()), &dns);
    let mut cache = MemoryCache::default();
    let got = run(&cfg, &mut cache, &["192.0.2.7"]);
    let Outcome::Failed(why) = &got[0].outcome else {
        panic!("{:?}", got[0])
    };
    assert!(why.contains("not used"), "{why}");
    assert!(cache.entries.is_empty(), "no \"none\" remembered");
    assert!(
        dns.asked().is_empty(),
        "not taken for a registry's \"none\""
    );
}
