//! HTTPS for the remote parties the tool talks to (the AWS Abuse Signal API, RDAP registries):
//! ureq over the rustls (ring) that lettre already brings, the system's root certificates plus
//! any the operator adds, and which hosts may be spoken to in plain HTTP (loopback alone).
//! Each client builds its own agent (deadlines, redirects and proxies differ); this module owns
//! only what they must agree on.

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

#[cfg(test)]
mod tests {
    use super::*;

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
