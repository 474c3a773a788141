//! HTTPS for the remote parties the tool talks to (the AWS Abuse Signal API, RDAP registries):
//! ureq over the rustls (ring) that lettre already brings, the system's root certificates plus
//! any the operator adds, which URLs a configuration may name, and which hosts may be spoken
//! to in plain HTTP (loopback alone). Each client gets its agent from [`agent`], with its own
//! deadline and its own rule for which peers are local.

use std::sync::Arc;

/// A host that is this machine: `localhost`, 127.0.0.0/8 or `::1`, bracketed or not, with or
/// without a trailing dot. Only such a host may be spoken to without TLS.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A DNS host name: dot-separated labels of letters, digits and inner hyphens (RFC 1123).
pub fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A URL a configuration names: `https://host[:port][/path]`, `http` only to loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// A host name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
    /// From the `/` after the authority on; empty when there is none.
    pub path: String,
}

/// Checks a URL from the configuration; the error says what is wrong with it, quoting it.
/// No query, fragment, credentials, spaces, backslashes or control characters.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = text.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "{text:?}: expected https://host/... (or http://127.0.0.1:port/... for a local test)"
        ));
    };
    if text.contains(['?', '#', ' ', '\\']) || text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?}: expected a URL without query, fragment or spaces"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!(
            "{text:?}: credentials in the URL are not supported"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{text:?}: bad host [{h}]"));
            }
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: junk after the host")),
            };
            (format!("[{h}]"), port)
        }
        None => {
            let (h, p) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if !(is_host_name(h) || h.parse::<std::net::Ipv4Addr>().is_ok()) {
                return Err(format!("{text:?}: bad host {h:?}"));
            }
            (h.to_string(), p)
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{text:?}: bad port {p:?}"))
        })
        .transpose()?;
    if !https && !is_loopback_host(&host) {
        return Err(format!(
            "{text:?}: http:// is allowed only for a loopback host (127.0.0.1, [::1], localhost); use https://"
        ));
    }
    Ok(Url {
        https,
        host,
        port,
        path: path.to_string(),
    })
}

/// An API endpoint: a URL with no path (a trailing `/` is allowed).
pub fn parse_endpoint(text: &str) -> Result<Url, String> {
    let text = text.trim().trim_end_matches('/');
    let url = parse_url(text)?;
    if !url.path.is_empty() {
        return Err(format!(
            "{text:?}: expected scheme://host[:port] with no path"
        ));
    }
    Ok(url)
}

/// A folder URL, returned with its trailing `/` so that file names can be appended.
pub fn folder_url(text: &str) -> Result<String, String> {
    parse_url(text)?;
    Ok(if text.ends_with('/') {
        text.to_string()
    } else {
        format!("{text}/")
    })
}

/// The system's root certificates (none where the system has none).
pub fn system_roots() -> Vec<ureq::tls::Certificate<'static>> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|cert| ureq::tls::Certificate::from_der(cert.as_ref()).to_owned())
        .collect()
}

/// TLS that trusts exactly `roots`, on rustls with ring.
pub fn tls_config(roots: Vec<ureq::tls::Certificate<'static>>) -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build()
}

/// An agent as every client here wants one: these roots, every call ended within
/// `deadline`, error statuses read rather than raised, no redirect followed by itself (each
/// client judges where one leads), and the tool's name. HTTPS only unless the peer is this
/// machine (`local`), whose traffic no proxy from the environment sees either.
pub fn agent(tls: ureq::tls::TlsConfig, deadline: std::time::Duration, local: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(deadline))
        .http_status_as_error(false)
        .max_redirects(0)
        .https_only(!local)
        .user_agent(format!("abuse-mailer/{}", env!("CARGO_PKG_VERSION")));
    if local {
        config = config.proxy(None);
    }
    ureq::Agent::with_parts(
        config.build(),
        ureq::unversioned::transport::DefaultConnector::default(),
        Lookup,
    )
}

/// Names looked up as ureq's own resolver does: on a thread of their own, so that a lookup
/// ends with the call's deadline. Its resolver spawns that thread with a panic if the system
/// refuses it (a unit's `TasksMax` reached, no memory left for a thread's stack); here the
/// lookup is then made on the calling thread, bounded by the system resolver's own timeouts.
#[derive(Debug)]
struct Lookup;

impl ureq::unversioned::resolver::Resolver for Lookup {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        use std::net::ToSocketAddrs;
        // "host:port" as ureq's own resolver makes it, with the scheme's port (a proxy's too).
        let name = (uri.scheme().zip(uri.authority()))
            .and_then(|(scheme, authority)| {
                ureq::unversioned::resolver::DefaultResolver::host_and_port(scheme, authority)
            })
            .ok_or(ureq::Error::HostNotFound)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let asked = name.clone();
        let thread = std::thread::Builder::new()
            .name("lookup".into())
            .spawn(move || tx.send(asked.to_socket_addrs()).ok());
        let found = match thread {
            Ok(_) => match rx.recv_timeout(*timeout.after) {
                Ok(found) => found?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ureq::Error::HostNotFound);
                }
            },
            Err(_) => name.to_socket_addrs()?,
        };
        let mut addresses = self.empty();
        for address in config.ip_family().keep_wanted(found) {
            if addresses.try_push(address).is_err() {
                break;
            }
        }
        if addresses.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http_without_extras() {
        let ok = parse_endpoint("https://abuse.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (ok.https, ok.host.as_str(), ok.port),
            (true, "abuse.us-east-1.amazonaws.com", None)
        );
        let local = parse_endpoint("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (local.https, local.host.as_str(), local.port),
            (false, "127.0.0.1", Some(8080))
        );
        assert_eq!(parse_endpoint("http://[::1]:9").unwrap().host, "[::1]");
        assert!(parse_endpoint("http://localhost:9").is_ok());
        let e = parse_endpoint("http://abuse.us-east-1.amazonaws.com").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        for bad in [
            "ftp://x",
            "https://x/path",
            "https://x:0",
            "https://x:99999",
            "https://user:pw@x",
            "https://x?q=1",
            "https://x#f",
            "https://bad_host",
            "https://[::1",
            "https://[zz]",
            "https://x\\y",
            "https://x\ny",
            "https://",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert_eq!(
            folder_url("https://data.iana.org/rdap").unwrap(),
            "https://data.iana.org/rdap/"
        );
        assert_eq!(
            folder_url("http://127.0.0.1:9/r/").unwrap(),
            "http://127.0.0.1:9/r/"
        );
        assert!(folder_url("http://rdap.example.net/").is_err());
        assert!(folder_url("https://x/a b/").is_err());
    }

    #[test]
    fn loopback_hosts_in_every_spelling() {
        for host in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.org",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.example.org",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
