//! AWS Signature Version 4 for one HTTP request: the canonical request, the string to sign,
//! the derived key and the `Authorization` header.
//!
//! Small enough to own (HMAC-SHA256 from `hmac` over the `sha2` the project already has), and
//! checked from outside: the loopback tests recompute every signature with botocore.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

/// What is signed of one request. `path` and `query` are exactly as sent (already encoded);
/// `headers` are the ones to sign, names in lower case, `host` among them.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// `20260125T235125Z`: the form of `x-amz-date`.
pub fn amz_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, everything else
/// `%XX` in upper case; `/` kept only in paths.
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of a payload.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn canonical_request(r: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: String = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut pairs: Vec<&str> = r.query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_by(|a, b| {
        let split = |p: &str| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        };
        split(a).cmp(&split(b))
    });
    let query = pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some(_) => p.to_string(),
            None => format!("{p}="),
        })
        .collect::<Vec<_>>()
        .join("&");
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method,
        encode(r.path, true),
        query,
        canonical_headers,
        signed,
        payload_hash(r.body)
    );
    (text, signed)
}

/// The `Authorization` header value for `r`, signed at `amz_date` (which `x-amz-date`
/// among the headers must carry too).
pub fn authorization(
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    r: &Request<'_>,
) -> String {
    let day = &amz_date[..8];
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let (canonical, signed) = canonical_request(r);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        payload_hash(canonical.as_bytes())
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key.expose()).as_bytes(),
        day.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// The `get-vanilla` case of AWS's published SigV4 test suite.
    #[test]
    fn signs_the_published_vanilla_request() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        };
        let headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let r = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            authorization(&creds, "us-east-1", "service", "20150830T123600Z", &r),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn encoding_follows_sigv4() {
        assert_eq!(encode("a b/c~d=e", false), "a%20b%2Fc~d%3De");
        assert_eq!(encode("/v1/abuse/x y", true), "/v1/abuse/x%20y");
    }
}
