//! Which contact addresses a registry or a DNS zone gives are real mailboxes worth a report,
//! and which are placeholders: redacted values (RFC 9537 and the registries' own wording),
//! "removed", "no-abuse" and no-reply mailboxes, the registries' own desks, documentation
//! domains, and text that is not a mail address at all. Also the operator's `never` list.

use lettre::Address;

/// Why an address given as a contact is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a mail address (lettre's parser, or a domain without a dot, or an IP literal).
    Invalid,
    /// A stand-in: redacted, removed, no-reply, a reserved domain, a registry's own desk.
    Placeholder,
}

/// Local parts registries use when they withhold or never had a desk.
const PLACEHOLDER_LOCALS: &[&str] = &[
    "removed", "redacted", "none", "null", "nobody", "unknown", "invalid", "example", "test", "na",
    "n.a", "void",
];

/// Words that make any local part a placeholder, wherever they appear in it.
const PLACEHOLDER_WORDS: &[&str] = &[
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "noabuse",
    "no-abuse",
    "no_abuse",
    "redacted",
    "withheld",
    "privacy",
    "not-available",
    "notavailable",
];

/// Domains of RFC 2606 / RFC 6761 and the other special-use names (`.onion`, `.arpa` with
/// `home.arpa`, `.internal`, `.alt`) that never have a real desk on the public network, and
/// the private names in common use that the root never delegated (RFC 6762's appendix G:
/// `.lan`, `.home`, `.corp`, `.intranet`, `.private`; and `localhost.localdomain`): mail to
/// one of them stays on the operator's own hosts.
const RESERVED_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "example",
    "invalid",
    "test",
    "localhost",
    "local",
    "onion",
    "arpa",
    "internal",
    "alt",
    "localdomain",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
];

/// The registries themselves: their desks appear on blocks they do not manage (unallocated
/// space, "not managed by this registry" stubs) and handle no one else's abuse.
const REGISTRY_DOMAINS: &[&str] = &[
    "iana.org",
    "icann.org",
    "arin.net",
    "ripe.net",
    "apnic.net",
    "lacnic.net",
    "afrinic.net",
];

/// The address a contact record gives, checked: lower-cased domain, trimmed, or why not.
pub fn check(text: &str) -> Result<Address, Refusal> {
    let text = text.trim();
    let text = text.strip_prefix("mailto:").unwrap_or(text);
    if text.is_empty() || text.len() > 254 || !text.is_ascii() {
        return Err(Refusal::Invalid);
    }
    let lower = text.to_ascii_lowercase();
    if ["redacted", "withheld", "privacy"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Err(Refusal::Placeholder);
    }
    let address: Address = text.parse().map_err(|_| Refusal::Invalid)?;
    let user = address.user().to_ascii_lowercase();
    let domain = address.domain().to_ascii_lowercase();
    // A mailbox as a desk writes it: a dot-atom before the `@` (a quoted one, `"a b"@…`, is
    // no desk's, and its header may not read back as one address), a host name after it.
    if !is_dot_atom(&user)
        || !crate::http::is_host_name(&domain)
        || !domain.contains('.')
        || domain.ends_with('.')
    {
        return Err(Refusal::Invalid);
    }
    if domain
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Refusal::Invalid);
    }
    if PLACEHOLDER_LOCALS.contains(&user.as_str())
        || PLACEHOLDER_WORDS.iter().any(|w| user.contains(w))
        || domain.contains("redacted")
        || RESERVED_DOMAINS
            .iter()
            .chain(REGISTRY_DOMAINS)
            .any(|r| domain == *r || domain.ends_with(&format!(".{r}")))
    {
        return Err(Refusal::Placeholder);
    }
    Address::new(address.user(), domain).map_err(|_| Refusal::Invalid)
}

/// RFC 5322's dot-atom: atoms of letters, digits and ``!#$%&'*+-/=?^_`{|}~``, joined by
/// single dots.
fn is_dot_atom(local: &str) -> bool {
    local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
    })
}

/// Whether `domain` is one of `never` (lower case, no trailing dot) or below one.
pub fn is_never(domain: &str, never: &[String]) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    never.iter().any(|n| {
        domain == *n
            || domain
                .strip_suffix(n.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_desks_pass_lower_cased() {
        for (text, want) in [
            ("abuse@ovh.net", "abuse@ovh.net"),
            ("  Abuse@Example-Hoster.DE ", "Abuse@example-hoster.de"),
            ("mailto:abuse@hetzner.com", "abuse@hetzner.com"),
            (
                "abuse-reports@cert.example-isp.co.uk",
                "abuse-reports@cert.example-isp.co.uk",
            ),
        ] {
            assert_eq!(check(text).unwrap().to_string(), want, "{text}");
        }
    }

    #[test]
    fn placeholders_are_refused() {
        for text in [
            "REDACTED FOR PRIVACY",
            "redacted@redacted.invalid",
            "abuse@redacted.net",
            "removed@ripe.net",
            "no-abuse@registry.net",
            "noreply@arin.net",
            "do-not-reply@apnic.net",
            "abuse@example.com",
            "abuse@hoster.example",
            "abuse@hoster.test",
            "Withheld.For.Privacy@registrar.net",
            "abuse@ripe.net",
            "hostmaster@mail.arin.net",
        ] {
            assert_eq!(check(text), Err(Refusal::Placeholder), "{text}");
        }
    }

    #[test]
    fn non_addresses_are_invalid() {
        for text in [
            "",
            "abuse",
            "abuse@",
            "@hoster.net",
            "abuse@localhost-only",
            "abuse@[192.0.2.1]",
            "abuse@192.0.2.1",
            "two words@hoster.net",
            "abuse@hoster.net\r\nBcc: x@y.net",
            "abusé@hoster.net",
            "abuse@hoster.net.",
            // Quoted local parts: no desk writes one, and the header of one with a space or an
            // `@` did not read back as one address, which failed the whole run.
            "\"abuse desk\"@hoster.net",
            "\"victim@b.net\"@hoster.net",
            "\"x>, <y\"@hoster.net",
            "\"abuse\"@hoster.net",
            ".abuse@hoster.net",
            "ab..use@hoster.net",
            // Domains that are no host name.
            "mailto:abuse@a26.net?subject=x",
            "abuse@a26.net?subject=x",
            "abuse@hos/ter.net",
            "abuse@hos%ter.net",
            "abuse@hos!ter.net",
            "abuse@-hoster.net",
        ] {
            assert_eq!(check(text), Err(Refusal::Invalid), "{text:?}");
        }
    }

    #[test]
    fn special_use_domains_are_placeholders() {
        for text in [
            "abuse@hoster.internal",
            "abuse@hiddenservice.onion",
            "abuse@1.2.3.4.in-addr.arpa",
            "abuse@router.home.arpa",
            "abuse@hoster.alt",
            // Mailed to the operator's own hosts, and counted as reported.
            "abuse@localhost.localdomain",
            "abuse@mail.lan",
            "abuse@nas.home",
            "abuse@it.corp",
            "abuse@noc.intranet",
            "abuse@desk.private",
        ] {
            assert_eq!(check(text), Err(Refusal::Placeholder), "{text:?}");
        }
    }

    #[test]
    fn every_dot_atom_character_passes() {
        for text in [
            "abuse+reports@hoster.net",
            "abuse_desk@hoster.net",
            "o'brien@hoster.net",
            "a.b-c=d@xn--hster-jua.net",
        ] {
            let address = check(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
            // A message to it can be made: its header reads back as its envelope.
            let message = lettre::Message::builder()
                .from("reports@example.org".parse().unwrap())
                .to(lettre::message::Mailbox::new(None, address))
                .subject("report")
                .body(String::new());
            assert!(message.is_ok(), "{text:?}: {message:?}");
        }
    }

    #[test]
    fn never_covers_subdomains_only_at_a_dot() {
        let never = vec!["example.net".to_string()];
        assert!(is_never("example.net", &never));
        assert!(is_never("Mail.EXAMPLE.net.", &never));
        assert!(!is_never("badexample.net", &never));
        assert!(!is_never("example.network", &never));
    }
}
