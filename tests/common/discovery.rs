//! Set-ups shared by the end-to-end discovery tests: a configuration with `[discover]` on and
//! bootstrap files sending 45.0.0.0/8 and 2a0f::/16 to a loopback registry, networks with an
//! abuse desk, log lines, and what left by mail.
#![allow(dead_code)]

use super::common::{Setup, drop_line, standard_config};
use super::stubs::{Dns, Rdap, Reply, bootstrap, entity, network};

/// A setup with discovery on: bootstrap files in `{dir}/bootstrap` sending 45.0.0.0/8 to
/// `rdap`, Abusix asked through `dns`, and `discover_extra` in `[discover]`.
pub fn setup(rdap: &Rdap, dns: &Dns, discover_extra: &str, report_extra: &str) -> Setup {
    let config = format!(
        "{}\n[discover]\nenabled = true\nrdap_bootstrap = \"{{dir}}/bootstrap\"\ndns_server = \"{}\"\n{discover_extra}\n",
        standard_config(report_extra),
        dns.addr
    );
    let s = Setup::new(&config);
    std::fs::create_dir_all(s.path("bootstrap")).unwrap();
    s.write(
        "bootstrap/ipv4.json",
        &bootstrap(&[("45.0.0.0/8", &rdap.base())]),
    );
    s.write(
        "bootstrap/ipv6.json",
        &bootstrap(&[("2a0f::/16", &rdap.base())]),
    );
    s
}

/// Sends 45.0.0.0/8 to a registry nobody listens on (a registry that is down), or back to
/// `rdap`.
pub fn registry_down(s: &Setup, down: bool, rdap: &Rdap) {
    let base = if down {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/rdap/", closed.local_addr().unwrap())
    } else {
        rdap.base()
    };
    s.write("bootstrap/ipv4.json", &bootstrap(&[("45.0.0.0/8", &base)]));
}

/// The registry's network `first`-`last` with a top-level abuse entity, served for `ips`.
pub fn abuse_net(rdap: &Rdap, ips: &[&str], first: &str, last: &str, handle: &str, email: &str) {
    let body = network(first, last, handle, &[entity(&["abuse"], Some(email), &[])]);
    for ip in ips {
        rdap.route(&format!("/rdap/ip/{ip}"), Reply::Json(200, body.clone()));
    }
}

/// For each `(address, desk)`, the /24 holding the address as a network of its own with that
/// desk, served for the address.
pub fn desk_nets(rdap: &Rdap, desks: &[(&str, &str)]) {
    for (k, (ip, email)) in desks.iter().enumerate() {
        let net = ip.rsplit_once('.').unwrap().0;
        abuse_net(
            rdap,
            &[ip],
            &format!("{net}.0"),
            &format!("{net}.255"),
            &format!("NET-{k}"),
            email,
        );
    }
}

/// Appends one TCP 22 drop line per `(time, source)`.
pub fn log(s: &Setup, lines: &[(&str, &str)]) {
    let text: String = lines
        .iter()
        .map(|(time, ip)| drop_line(time, ip, "TCP", 22))
        .collect();
    s.append("messages", &text);
}

/// The `To:` header of each message in the outbox, sorted.
pub fn outbox_to(s: &Setup) -> Vec<String> {
    let mut to: Vec<String> = s
        .outbox()
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap()
                .to_string()
        })
        .collect();
    to.sort();
    to
}

/// Replaces the file transport of `s` with `[mail]` lines (`mail` holds everything after
/// `[mail]\n`).
pub fn use_mail(s: &Setup, mail: &str) {
    let file_transport = format!(
        "[mail]\ntransport = \"file\"\ndir = \"{}/outbox\"",
        s.dir.path().display()
    );
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    assert!(config.contains(&file_transport));
    s.write(
        "config.toml",
        &config.replace(&file_transport, &format!("[mail]\n{mail}")),
    );
}

/// Plain SMTP to a loopback server on `port`.
pub fn use_smtp(s: &Setup, port: u16) {
    use_mail(
        s,
        &format!(
            "transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_secs = 5"
        ),
    );
}

/// The SMTP server [`use_smtp`] gave moved from port `from` to `to` (a relay mended).
pub fn smtp_moved(s: &Setup, from: u16, to: u16) {
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    assert!(config.contains(&format!("port = {from}\n")));
    s.write(
        "config.toml",
        &config.replace(&format!("port = {from}\n"), &format!("port = {to}\n")),
    );
}

/// The file transport with `max_messages_per_run = n`.
pub fn with_mail_budget(s: &Setup, n: u32) {
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            "transport = \"file\"",
            &format!("transport = \"file\"\nmax_messages_per_run = {n}"),
        );
    s.write("config.toml", &config);
}
