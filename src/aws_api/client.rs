//! The HTTPS client of the AWS Abuse Signal API (REST-JSON, signing name `abuse`): one signed
//! request per call, a deadline on each, and AWS's answers sorted into what the caller does
//! next (accepted, try later, fix the report, fix the configuration).
//!
//! TLS is rustls (ring) with the system's roots plus an optional `ca_file`; an `http://`
//! endpoint is refused unless it is on loopback, so a test stub never teaches the tool to send
//! secrets in the clear.

use std::time::Duration;

use serde_json::Value;

use super::credentials::Credentials;
use super::sigv4;
use crate::config::AwsApiConfig;

/// The service's signing name.
pub const SERVICE: &str = "abuse";

/// At most this much of an answer is read: AWS's are small, a stray proxy page is not.
const MAX_ANSWER: u64 = 1 << 20;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 429: wait `retry_after` (when AWS said), then the same request may pass.
    Throttled {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 400, 409, 422 and other refusals of the request itself: sending it again will not help.
    Rejected(String),
    /// 401/403: the credentials or the IAM policy; nothing passes until they are fixed.
    Denied(String),
    /// 404 of a status query.
    NotFound(String),
    /// An answer that says nothing of the report (a proxy's page, one that cannot be read, one
    /// about another report): try again later.
    Transient(String),
    /// No answer at all (a timeout, a refused or broken connection): every other call now
    /// would wait out the same deadline. Try again later. (A 5xx is an answer, and may be
    /// about one report: it is [`ApiError::Transient`].)
    Unreachable(String),
    /// The request could not be made here (a value no header may carry): nothing was sent,
    /// and the configuration is at fault.
    Local(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Throttled { message, .. } => f.write_str(message),
            ApiError::Rejected(m)
            | ApiError::Denied(m)
            | ApiError::NotFound(m)
            | ApiError::Transient(m)
            | ApiError::Unreachable(m)
            | ApiError::Local(m) => f.write_str(m),
        }
    }
}

/// One report's state as AWS tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteStatus {
    pub report_id: String,
    pub correlation_id: Option<String>,
    /// QUEUED, PROCESSING or COMPLETED (kept as given: AWS may add states).
    pub status: String,
    /// Set once COMPLETED: ACTIONED, NOT_RESOLVABLE_TO_AWS, ...
    pub reason: Option<String>,
    pub description: Option<String>,
    /// RFC 3339, UTC.
    pub updated_at: Option<String>,
}

/// Where the endpoint is, split for signing.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `https://host[:port]`, no trailing slash.
    base: String,
    /// The `Host` header: the port only when it is not the scheme's.
    host: String,
    loopback: bool,
}

/// A signed-request client for one endpoint and region.
pub struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    region: String,
    creds: Credentials,
}

impl Client {
    pub fn new(cfg: &AwsApiConfig, creds: Credentials) -> anyhow::Result<Self> {
        let crate::http::Url {
            https, host, port, ..
        } = crate::http::parse_endpoint(&cfg.endpoint).map_err(anyhow::Error::msg)?;
        let default_port = if https { 443 } else { 80 };
        let host_header = match port {
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.clone(),
        };
        let scheme = if https { "https" } else { "http" };
        let endpoint = Endpoint {
            base: format!("{scheme}://{host_header}"),
            loopback: crate::http::is_loopback_host(&host),
            host: host_header,
        };
        let mut roots: Vec<ureq::tls::Certificate<'static>> = Vec::new();
        if https {
            // A host without system roots can still work with ca_file alone.
            roots = crate::http::system_roots();
            if let Some(ca) = &cfg.ca_file {
                // Never a FIFO waited on or a device read without end: a run holds its lock.
                let pem = crate::source::read_regular(ca, 16 << 20).map_err(|e| {
                    anyhow::Error::from(crate::error::ConfigError(format!(
                        "aws_api.ca_file {}: {e}",
                        ca.display()
                    )))
                })?;
                for item in ureq::tls::parse_pem(&pem) {
                    if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                        roots.push(c);
                    }
                }
            }
            if roots.is_empty() {
                return Err(crate::error::ConfigError(
                    "aws_api: no root certificates: the system has none and aws_api.ca_file names none"
                        .into(),
                )
                .into());
            }
        }
        let tls = crate::http::tls_config(roots);
        Ok(Client {
            agent: crate::http::agent(tls, cfg.timeout, endpoint.loopback),
            endpoint,
            region: cfg.region.clone(),
            creds,
        })
    }

    /// The endpoint, as reports record where they went.
    pub fn base(&self) -> &str {
        &self.endpoint.base
    }

    /// One signed request; `Ok((status, retry_after, body))` for any HTTP answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, ApiError> {
        let now = chrono::Utc::now();
        let date = sigv4::amz_date(now);
        let mut headers = vec![
            ("host".to_string(), self.endpoint.host.clone()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        if let Some(token) = &self.creds.session_token {
            headers.push((
                "x-amz-security-token".to_string(),
                token.expose().to_string(),
            ));
        }
        let payload = body.unwrap_or_default();
        let authorization = sigv4::authorization(
            &self.creds,
            &self.region,
            SERVICE,
            &date,
            &sigv4::Request {
                method,
                path,
                query,
                headers: &headers,
                body: payload,
            },
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint.base)
        } else {
            format!("{}{path}?{query}", self.endpoint.base)
        };
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        request = request
            .header("authorization", authorization)
            .header("accept", "application/json");
        let result = match body {
            Some(b) => request
                .body(b.to_vec())
                .map_err(|e| ApiError::Local(format!("the request cannot be made: {e}")))
                .and_then(|r| {
                    self.agent
                        .run(r)
                        .map_err(|e| ApiError::Unreachable(network(&e)))
                }),
            None => request
                .body(())
                .map_err(|e| ApiError::Local(format!("the request cannot be made: {e}")))
                .and_then(|r| {
                    self.agent
                        .run(r)
                        .map_err(|e| ApiError::Unreachable(network(&e)))
                }),
        };
        let mut response = result?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // REST-JSON services name an error in this header, and not always in the body.
        let error_type = (response.headers().get("x-amzn-errortype"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| {
                let why = format!("reading AWS's answer: {}", network(&e));
                // An answer too long is that answer's; one cut off, the connection's.
                match e {
                    ureq::Error::BodyExceedsLimit(_) => ApiError::Transient(why),
                    _ => ApiError::Unreachable(why),
                }
            })?;
        Ok(Answer {
            status,
            retry_after,
            error_type,
            body,
        })
    }

    /// CreateAbuseReport with a stored request body; AWS's reportId when accepted.
    pub fn create(&self, body: &[u8]) -> Result<String, ApiError> {
        let Answer {
            status,
            retry_after,
            error_type,
            body: answer,
        } = self.call("POST", "/v1/abuse", "", Some(body))?;
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            return match v.get("reportId").and_then(Value::as_str) {
                Some(id) if is_report_id(id) => Ok(id.to_string()),
                _ => Err(ApiError::Transient(format!(
                    "{status} without a valid reportId in the answer"
                ))),
            };
        }
        Err(classify(
            status,
            retry_after,
            error_type.as_deref(),
            &answer,
        ))
    }

    /// GetAbuseReportStatus.
    pub fn status(&self, report_id: &str) -> Result<RemoteStatus, ApiError> {
        if !is_report_id(report_id) {
            return Err(ApiError::Rejected(format!(
                "{report_id:?} is not an AWS report id"
            )));
        }
        let path = format!("/v1/abuse/{report_id}");
        let Answer {
            status,
            retry_after,
            error_type,
            body: answer,
        } = self.call("GET", &path, "", None)?;
        if status == 200 {
            let v: Value = serde_json::from_slice(&answer).map_err(|e| {
                ApiError::Transient(format!("GetAbuseReportStatus: not JSON ({e})"))
            })?;
            let found = remote_status(&v).ok_or_else(|| {
                ApiError::Transient("GetAbuseReportStatus: no status in the answer".into())
            })?;
            // Stored as this report's, an answer about another would settle it for good.
            if found.report_id != report_id {
                return Err(ApiError::Transient(format!(
                    "GetAbuseReportStatus: asked about report {report_id}, answered about {}",
                    found.report_id
                )));
            }
            return Ok(found);
        }
        Err(classify(
            status,
            retry_after,
            error_type.as_deref(),
            &answer,
        ))
    }

    /// One page of ListAbuseReportStatuses (at most `max` items, 1 to 50), optionally for
    /// one correlation id: a harmless signed call that proves the credentials.
    pub fn list(
        &self,
        correlation_id: Option<&str>,
        max: u32,
    ) -> Result<Vec<RemoteStatus>, ApiError> {
        let mut query = format!("maxResults={}", max.clamp(1, 50));
        if let Some(c) = correlation_id {
            query = format!("correlationId={}&{query}", sigv4::encode(c, false));
        }
        let Answer {
            status,
            retry_after,
            error_type,
            body: answer,
        } = self.call("GET", "/v1/abusestatuses", &query, None)?;
        if status == 200 {
            let v: Value = serde_json::from_slice(&answer).map_err(|e| {
                ApiError::Transient(format!("ListAbuseReportStatuses: not JSON ({e})"))
            })?;
            return Ok(v
                .get("reports")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(remote_status).collect())
                .unwrap_or_default());
        }
        Err(
            match classify(status, retry_after, error_type.as_deref(), &answer) {
                // A list has no report to be gone: a 404 in JSON (an API gateway's, a path
                // it does not serve) is the endpoint's, which no later run asks better.
                ApiError::Transient(text)
                    if status == 404
                        && serde_json::from_slice::<Value>(&answer)
                            .is_ok_and(|v| v.is_object()) =>
                {
                    ApiError::NotFound(text)
                }
                other => other,
            },
        )
    }
}

/// What an HTTP call to the API got back.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    /// The `x-amzn-ErrorType` header, naming the error of a refusal.
    error_type: Option<String>,
    body: Vec<u8>,
}

/// AWS's report ids: `[a-zA-Z0-9]{20,64}`.
pub fn is_report_id(text: &str) -> bool {
    (20..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A transport error in one line, without the URL's query (there is none secret, but keep it short).
fn network(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("no answer within the deadline ({t})"),
        other => crate::excerpt::clean_line(&other.to_string(), 300),
    }
}

/// A token AWS defines (status, reason, error name): kept only if it looks like one.
fn token(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        })
        .map(str::to_string)
}

/// A timestamp of the REST-JSON protocol: epoch seconds (a number), or text.
fn timestamp(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            chrono::DateTime::from_timestamp(secs.floor() as i64, 0).map(crate::clock::utc_text)
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| crate::clock::utc_text(t.with_timezone(&chrono::Utc))),
        _ => None,
    }
}

fn remote_status(v: &Value) -> Option<RemoteStatus> {
    let report_id = v.get("reportId").and_then(Value::as_str)?;
    if !is_report_id(report_id) {
        return None;
    }
    Some(RemoteStatus {
        report_id: report_id.to_string(),
        correlation_id: token(v.get("correlationId")).or_else(|| {
            v.get("correlationId")
                .and_then(Value::as_str)
                .filter(|c| {
                    c.len() <= 256
                        && c.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_string)
        }),
        status: token(v.get("status"))?,
        reason: token(v.get("reasonCode")),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .map(|d| crate::excerpt::clean_line(d, 500)),
        updated_at: timestamp(v.get("lastUpdatedAt")).or_else(|| timestamp(v.get("submittedAt"))),
    })
}

/// The error types AWS gives for credentials it does not take, of any status.
const CREDENTIAL_ERRORS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "AccessDeniedException",
    "UnauthorizedException",
];

/// An error answer in the caller's terms, with AWS's own words.
fn classify(
    status: u16,
    retry_after: Option<Duration>,
    error_type: Option<&str>,
    answer: &[u8],
) -> ApiError {
    let v: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    // `__type` (or the `x-amzn-ErrorType` header) may carry the service's namespace before a
    // `#` and a link after a `:`.
    let named = (v.get("__type").and_then(Value::as_str))
        .or(error_type)
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .map(|t| Value::from(t.split(':').next().unwrap_or(t)));
    let kind = token(named.as_ref())
        .or_else(|| token(v.get("code")))
        .unwrap_or_else(|| match status {
            400 => "ValidationException".into(),
            403 => "AccessDeniedException".into(),
            409 => "ConflictException".into(),
            422 => "SubmissionRequirementException".into(),
            429 => "ThrottlingException".into(),
            _ => "error".into(),
        });
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map(|m| crate::excerpt::clean_line(m, 500))
        .unwrap_or_else(|| crate::excerpt::clean_line(&String::from_utf8_lossy(answer), 200));
    let mut text = format!("{status} {kind}: {message}");
    // What exactly failed: ValidationException's fieldList, SubmissionRequirementException's
    // unmetRequirements.
    let details: Vec<String> = ["fieldList", "unmetRequirements"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_array))
        .flatten()
        .take(10)
        .map(|item| {
            let field = |k: &str| {
                item.get(k)
                    .and_then(Value::as_str)
                    .map(|s| crate::excerpt::clean_line(s, 200))
            };
            let mut d = String::new();
            if let Some(code) = field("code") {
                d.push_str(&code);
                d.push(' ');
            }
            if let Some(path) = field("path").filter(|p| !p.is_empty()) {
                d.push_str(&format!("at {path} "));
            }
            d.push_str(&field("message").unwrap_or_default());
            d.trim().to_string()
        })
        .collect();
    if !details.is_empty() {
        text.push_str(&format!(" ({})", details.join("; ")));
    }
    // A signature made by a clock more than 15 minutes off AWS's is refused as one it does
    // not take, in words that say so: the host's clock is at fault, not the key, and a clock
    // set right (NTP) sends the report as it is.
    let skewed = ["Signature expired", "Signature not yet current"]
        .iter()
        .any(|words| message.contains(words))
        || ["RequestExpired", "RequestTimeTooSkewed"].contains(&kind.as_str());
    if skewed {
        return ApiError::Transient(format!(
            "{text} (this host's clock is more than 15 minutes off AWS's: set it right, as NTP does; the report waits)"
        ));
    }
    // AWS's JSON services answer a key, token or signature they do not take with a 400 as
    // often as with a 403: the credentials, whatever the status.
    if CREDENTIAL_ERRORS.contains(&kind.as_str()) {
        return ApiError::Denied(text);
    }
    // A refusal is AWS's when it speaks JSON; a page of a proxy or balancer between (an
    // HTML 413, a 400 of its own) says nothing of the report: it waits.
    let aws_spoke = v.is_object();
    match status {
        429 => ApiError::Throttled {
            retry_after,
            message: text,
        },
        401 | 403 => ApiError::Denied(text),
        // A 404 too: a proxy's page, or an endpoint misspelt, says nothing of a report, and
        // taken for AWS's word that the report is gone, it was never asked about again.
        400..=499 if !aws_spoke => ApiError::Transient(text),
        // AWS's own word that it has no such report; a gateway's JSON 404 (`{"message":
        // "Not Found"}`, a path it does not serve) says nothing of the report.
        404 if kind == "ResourceNotFoundException" => ApiError::NotFound(text),
        404 => ApiError::Transient(text),
        // A redirect is an endpoint problem, not the report's: keep the report.
        300..=399 | 408 | 500..=599 => ApiError::Transient(text),
        _ => ApiError::Rejected(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_with_aws_words() {
        let e = classify(
            422,
            None,
            None,
            br#"{"message":"Report does not meet requirements","unmetRequirements":[{"code":"rule.timestamp.too_old","path":"/timestamp","message":"older than 90 days"}]}"#,
        );
        let ApiError::Rejected(text) = e else {
            panic!("{e:?}")
        };
        assert!(
            text.contains("422 SubmissionRequirementException")
                && text.contains("rule.timestamp.too_old at /timestamp older than 90 days"),
            "{text}"
        );
        assert!(matches!(
            classify(429, Some(Duration::from_secs(2)), None, b"{}"),
            ApiError::Throttled {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify(403, None, None, b""),
            ApiError::Denied(_)
        ));
        assert!(matches!(
            classify(503, None, None, b"<html>"),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            classify(409, None, None, b"{}"),
            ApiError::Rejected(_)
        ));
        // Credentials refused with a 400, as AWS's JSON services do.
        for kind in [
            "ExpiredTokenException",
            "UnrecognizedClientException",
            "com.amazonaws.abuse#InvalidSignatureException",
        ] {
            let answer = format!(r#"{{"__type":"{kind}","message":"no"}}"#);
            assert!(
                matches!(
                    classify(400, None, None, answer.as_bytes()),
                    ApiError::Denied(_)
                ),
                "{kind}"
            );
        }
        // A proxy's page, not AWS's refusal: the report waits.
        assert!(matches!(
            classify(413, None, None, b"<html>Request Entity Too Large</html>"),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            classify(301, None, None, b""),
            ApiError::Transient(_)
        ));
        // A 404 is AWS's "no such report" only when AWS says it.
        assert!(matches!(
            classify(404, None, None, b"<html>Not Found</html>"),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            classify(
                404,
                None,
                None,
                br#"{"__type":"ResourceNotFoundException","message":"no"}"#
            ),
            ApiError::NotFound(_)
        ));
        // A gateway's JSON 404 is no word of AWS's about the report; AWS's own, named in the
        // header alone, is.
        assert!(matches!(
            classify(404, None, None, br#"{"message":"Not Found"}"#),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            classify(
                404,
                None,
                Some("ResourceNotFoundException:http://internal.amazon.com/"),
                br#"{"message":"no such report"}"#
            ),
            ApiError::NotFound(_)
        ));
        let hostile = classify(
            400,
            None,
            None,
            "{\"message\":\"bad\\nline\\u001b[31m\"}".as_bytes(),
        );
        assert!(!hostile.to_string().contains(['\n', '\u{1b}']));
    }

    #[test]
    fn status_answers_parse_with_epoch_times() {
        let v: Value = serde_json::from_str(
            r#"{"reportId":"ABCDEFGHIJ0123456789","status":"COMPLETED","reasonCode":"ACTIONED","description":"done","submittedAt":1769400000,"lastUpdatedAt":1769403600.5}"#,
        )
        .unwrap();
        let s = remote_status(&v).unwrap();
        assert_eq!(s.status, "COMPLETED");
        assert_eq!(s.reason.as_deref(), Some("ACTIONED"));
        assert_eq!(s.updated_at.as_deref(), Some("2026-01-26T05:00:00Z"));
    }
}
