//! The AWS Abuse Signal API as a second delivery beside mail: one XARF v4 report per source
//! address, sent with SigV4 over HTTPS, and the status AWS gives each report afterwards.
//!
//! It owns what is particular to that intake and nothing of the ledger's rules, which stay
//! `app`'s: the request body built at planning time (stored as the report's message, so a
//! retry sends the same bytes with the same `clientToken`), the call with its error sorting
//! and its waits for throttling, and the status refresh (`QUEUED` → `PROCESSING` →
//! `COMPLETED` with a reason) kept in the ledger's remote columns.

pub mod client;
pub mod credentials;
pub mod sigv4;

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use client::{ApiError, Client, RemoteStatus};

use crate::config::{Delivery, Settings};
use crate::error::{ConfigError, EXIT_CONFIG, EXIT_ERROR, EXIT_OK, TransientError};
use crate::lock::RunLock;
use crate::render::Report;
use crate::send::SendError;
use crate::state::{Remote, ReportRecord, State};

/// How many unfinished reports a run asks AWS about (newest first).
pub const REFRESH_PER_RUN: usize = 20;
/// How many `history --refresh` asks about.
pub const REFRESH_ON_DEMAND: usize = 500;
/// CreateAbuseReport's sustained quota is 10 a second: calls are spaced at least this far.
const SPACING: Duration = Duration::from_millis(100);
/// AWS keeps a clientToken 24 hours; an older report is looked up before it is sent again.
const TOKEN_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(23);
/// The XARF tag that makes AWS validate a report without acting on it.
pub const TEST_TAG: &str = "lifecycle:test";
/// XARF allows this many tags.
const MAX_TAGS: usize = 20;
/// What names the intake in messages.
const NAME: &str = "AWS Abuse Signal API";

/// Whether `provider`'s reports go through the API.
pub fn serves(settings: &Settings, provider: &str) -> bool {
    settings
        .provider(provider)
        .is_some_and(|p| p.delivery == Delivery::AwsAbuseApi)
}

/// Where API reports go, as a report records its recipient.
pub fn destination(settings: &Settings) -> String {
    settings
        .aws_api
        .as_ref()
        .map(|a| a.endpoint.clone())
        .unwrap_or_default()
}

/// A tag of this installation: eight hex digits of its machine's id, host name and
/// `state_dir`. Ledger ids are alike on two hosts that report the same address in the same
/// second to one AWS account; AWS would take the second host's report, of another body, for
/// the first one's token reused, and refuse it. The same on every run of one installation,
/// so that `preview` shows the request the run sends.
pub fn installation(state_dir: &std::path::Path) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let machine = match read("/etc/machine-id") {
        id if !id.trim().is_empty() => id,
        _ => read("/var/lib/dbus/machine-id"),
    };
    // As written, made absolute: the same before the folder exists (a preview before the
    // first run) as after.
    let folder = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let mut hash = Sha256::new();
    for part in [
        machine.trim().as_bytes(),
        read("/proc/sys/kernel/hostname").trim().as_bytes(),
        folder.as_os_str().as_encoded_bytes(),
    ] {
        hash.update(part);
        hash.update([0]);
    }
    hash.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `clientToken` of a report: its ledger id (`[\x21-\x7E]{1,128}`), so that a retry after
/// a crash or a 5xx is the same report to AWS; a hash where the id does not fit.
pub fn client_token(report_id: &str) -> String {
    if (1..=128).contains(&report_id.len()) && report_id.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        report_id.to_string()
    } else {
        format!("abuse-mailer-{:x}", Sha256::digest(report_id.as_bytes()))
    }
}

/// The `correlationId` of a report (`[a-zA-Z0-9-_]{1,256}`): its ledger id, which the
/// provider names and timestamps in it keep within that alphabet.
pub fn correlation_id(report_id: &str) -> String {
    let mut id: String = report_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(256)
        .collect();
    if id.is_empty() {
        id.push('-');
    }
    id
}

/// The CreateAbuseReport request body for a one-address report: the project's XARF document,
/// dated by the latest sighting (AWS refuses a `timestamp` older than its lookback window),
/// tagged `lifecycle:test` when `test`. Its `clientToken` and `correlationId` are the ledger
/// id with the [`installation`] tag.
pub fn request_body(
    report: &Report,
    report_id: &str,
    installation: &str,
    message_id: &str,
    test: bool,
) -> Result<Vec<u8>> {
    let (token, correlation) = request_ids(report_id, installation);
    let Some(mut doc) = crate::xarf::document(report, message_id) else {
        anyhow::bail!(
            "XARF cannot tell what {} did (no source or destination port, or traffic it has no name for); the API takes no other report",
            report
                .ips
                .first()
                .map_or("the address", |ip| ip.ip.as_str())
        );
    };
    if let Some(last) = doc.get("last_seen").cloned() {
        doc["timestamp"] = last;
    }
    if test && let Some(tags) = doc.get_mut("tags").and_then(Value::as_array_mut) {
        // The test tag goes first; a port tag makes room for it.
        tags.insert(0, json!(TEST_TAG));
        tags.truncate(MAX_TAGS);
    }
    let body = json!({
        "report": { "xarf": doc },
        "clientToken": token,
        "correlationId": correlation,
    });
    Ok(serde_json::to_vec(&body)?)
}

/// The `clientToken` and `correlationId` of a report: its ledger id and the installation's
/// tag, which is kept whole however long the id (a long provider name).
fn request_ids(report_id: &str, installation: &str) -> (String, String) {
    let id: String = report_id.chars().take(200).collect();
    let ours = format!("{id}-{installation}");
    (client_token(&ours), correlation_id(&ours))
}

/// The API as one run uses it: the client and which providers it serves.
pub struct Api {
    client: Client,
    providers: Vec<String>,
    /// How long throttling may be waited out in all, counted from the first call (a long
    /// read before it costs nothing).
    budget: Duration,
    /// No wait for throttling reaches past this: set by the first call.
    deadline: Cell<Option<Instant>>,
    last_call: Cell<Option<Instant>>,
    quiet: bool,
}

impl Api {
    /// The API for the providers `only` selects, `None` when none of them uses it. Missing
    /// credentials are a configuration error, found before anything is sent.
    pub fn for_run(settings: &Settings, only: Option<&str>, quiet: bool) -> Result<Option<Api>> {
        let providers: Vec<String> = settings
            .providers
            .iter()
            .filter(|p| p.delivery == Delivery::AwsAbuseApi)
            .filter(|p| only.is_none_or(|o| o == p.name))
            .map(|p| p.name.clone())
            .collect();
        if providers.is_empty() {
            return Ok(None);
        }
        let Some(cfg) = &settings.aws_api else {
            return Err(ConfigError("[aws_api] is missing".into()).into());
        };
        let creds = credentials::load(cfg.profile.as_deref())?;
        let client = Client::new(cfg, creds)
            .map_err(|e| ConfigError(format!("aws_api: {}", crate::error::one_line(&e))))?;
        // A run waits for throttling only so long; the rest goes out with the next run.
        let budget = (cfg.timeout * 4).max(Duration::from_secs(120));
        Ok(Some(Api {
            client,
            providers,
            budget,
            deadline: Cell::new(None),
            last_call: Cell::new(None),
            quiet,
        }))
    }

    /// Whether this run sends `provider`'s reports through the API.
    pub fn serves(&self, provider: &str) -> bool {
        self.providers.iter().any(|p| p == provider)
    }

    /// Keeps calls within the sustained quota.
    fn pace(&self) {
        if let Some(last) = self.last_call.get() {
            let since = last.elapsed();
            if since < SPACING {
                std::thread::sleep(SPACING - since);
            }
        }
        self.last_call.set(Some(Instant::now()));
    }

    /// Sends a stored report as stored; AWS's reportId when it accepted it. Throttling is
    /// waited out as AWS asks, within the run's deadline.
    pub fn send(&self, record: &ReportRecord) -> Result<String, SendError> {
        let request = serde_json::from_slice::<Value>(&record.message)
            .ok()
            .filter(|_| record.made_for_api());
        let Some(request) = request else {
            return Err(SendError::Rejected(format!(
                "report {} was made for mail, not for the {NAME} (the provider's delivery changed): its addresses go into the next report",
                record.id
            )));
        };
        if let Some(id) = self.already_there(record, &request)? {
            return Ok(id);
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            self.pace();
            match self.client.create(&record.message) {
                Ok(id) => return Ok(id),
                Err(ApiError::Throttled {
                    retry_after,
                    message,
                }) => {
                    // What AWS asks, but never less than the backoff: `Retry-After: 0`
                    // again and again would make a run call ten times a second.
                    let wait = retry_after.unwrap_or(backoff).max(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    let deadline = match self.deadline.get() {
                        Some(d) => d,
                        None => {
                            let d = Instant::now() + self.budget;
                            self.deadline.set(Some(d));
                            d
                        }
                    };
                    // Compared as what is left: a wait of any length (a `Retry-After` of
                    // 2^64 seconds) cannot overflow the clock.
                    if wait > deadline.saturating_duration_since(Instant::now()) {
                        return Err(SendError::Transient(format!(
                            "{NAME}: {message}; waiting {}s more is past this run's deadline",
                            wait.as_secs()
                        )));
                    }
                    if !self.quiet {
                        crate::output::tell(format_args!(
                            "abuse-mailer: {NAME} throttles (429): waiting {}s before report {}",
                            wait.as_secs(),
                            record.id
                        ));
                    }
                    std::thread::sleep(wait);
                }
                Err(ApiError::Rejected(m)) => {
                    return Err(SendError::Rejected(format!("{NAME}: {m}")));
                }
                Err(ApiError::Denied(m)) => {
                    return Err(SendError::Config(format!(
                        "{NAME} refused our credentials: {m} (check the key and that its IAM policy allows abuse:CreateAbuseReport)"
                    )));
                }
                Err(ApiError::Local(m)) => return Err(SendError::Config(format!("{NAME}: {m}"))),
                Err(
                    e @ (ApiError::NotFound(_) | ApiError::Transient(_) | ApiError::Unreachable(_)),
                ) => {
                    return Err(SendError::Transient(format!("{NAME}: {e}")));
                }
            }
        }
    }

    /// A report first tried more than [`TOKEN_WINDOW`] ago may have reached AWS on that try
    /// (a crash or a lost answer after the 202), and its clientToken no longer protects it:
    /// AWS is asked by correlationId first. Sent again only on AWS's word that it does not
    /// have it: a question that fails leaves the report waiting, since sending it on a
    /// guess could file it twice.
    fn already_there(
        &self,
        record: &ReportRecord,
        request: &Value,
    ) -> Result<Option<String>, SendError> {
        let created = chrono::DateTime::parse_from_rfc3339(&record.created_at).ok();
        let now = crate::clock::now().ok();
        let (Some(created), Some(now)) = (created, now) else {
            return Ok(None);
        };
        if now.signed_duration_since(created) < TOKEN_WINDOW {
            return Ok(None);
        }
        let Some(correlation) = request.get("correlationId").and_then(Value::as_str) else {
            return Ok(None);
        };
        self.pace();
        let found = self.client.list(Some(correlation), 50).map_err(|e| {
            let asked = format!(
                "{NAME}: report {} was first tried over a day ago, and whether AWS has it could not be asked",
                record.id
            );
            match e {
                ApiError::Denied(m) | ApiError::Local(m) => SendError::Config(format!(
                    "{asked}: {m} (the IAM policy needs abuse:ListAbuseReportStatuses); it waits"
                )),
                // The question itself refused: no later run asks it better.
                ApiError::Rejected(m) | ApiError::NotFound(m) => SendError::Config(format!(
                    "{asked}: {m} (check aws_api.endpoint); it waits"
                )),
                other => SendError::Transient(format!("{asked}: {other}; it waits")),
            }
        })?;
        Ok(found
            .into_iter()
            .find(|s| s.correlation_id.as_deref() == Some(correlation))
            .map(|s| s.report_id))
    }

    /// Asks AWS about up to `limit` unfinished reports, newest first, and stores what it
    /// says. Returns how many were asked and how many changed.
    pub fn refresh(
        &self,
        state: &mut State,
        lock: &RunLock,
        limit: usize,
    ) -> Result<(usize, usize)> {
        let now = crate::clock::utc_text(crate::clock::now()?);
        let (mut asked, mut changed) = (0, 0);
        // One report whose status cannot be had (an answer not read, a failure for that id)
        // holds back no other: the newest is asked first, and stopping there left every
        // older one unasked for good. The first such failure is said at the end.
        let mut failed: Option<(String, usize)> = None;
        let open = state.remote_open(&self.providers, limit)?;
        let mut unasked = 0;
        for (k, (id, remote)) in open.iter().enumerate() {
            self.pace();
            asked += 1;
            let (status, reason, description, at) = match self.client.status(remote) {
                Ok(s) => (s.status, s.reason, s.description, s.updated_at),
                // Test reports are deleted soon after submission: nothing more will come.
                Err(ApiError::NotFound(_)) => (
                    GONE.to_string(),
                    None,
                    Some("AWS no longer has this report (test reports are deleted soon after submission)".to_string()),
                    None,
                ),
                Err(ApiError::Denied(m)) => {
                    return Err(ConfigError(format!(
                        "{NAME} refused the status query: {m} (the IAM policy needs abuse:GetAbuseReportStatus)"
                    ))
                    .into());
                }
                Err(ApiError::Local(m)) => return Err(ConfigError(format!("{NAME}: {m}")).into()),
                // No answer at all (the endpoint down or hung): every other question would
                // wait out the same deadline (an hour for a few hundred open reports, the
                // run lock held throughout). The others are asked by a later refresh. (An
                // answer, a 5xx or a 429 too, may be about this report alone: the others are
                // asked.)
                Err(e @ ApiError::Unreachable(_)) => {
                    let first = format!("status of report {id} not refreshed: {e}");
                    let (_, more) = failed.get_or_insert((first, 0));
                    *more += 1;
                    unasked = open.len() - k - 1;
                    break;
                }
                Err(e) => {
                    let first = format!("status of report {id} not refreshed: {e}");
                    let (_, more) = failed.get_or_insert((first, 0));
                    *more += 1;
                    continue;
                }
            };
            // An answer can take its deadline: the lock is asked for again before each
            // write, as a run does before each report.
            lock.still_held()?;
            if state.set_remote_status(
                id,
                &status,
                reason.as_deref(),
                description.as_deref(),
                at.as_deref().unwrap_or(&now),
            )? {
                changed += 1;
            }
        }
        if let Some((first, count)) = failed {
            let others = match count {
                1 => String::new(),
                n => format!(" ({} more not refreshed)", n - 1),
            };
            let later = match unasked {
                0 => String::new(),
                n => format!("; {n} not asked, left for a later refresh"),
            };
            return Err(TransientError(format!(
                "{NAME}: {first}{others}; asked about {asked}, {changed} changed{later}"
            ))
            .into());
        }
        Ok((asked, changed))
    }
}

/// The status kept for a report AWS no longer knows.
pub const GONE: &str = "GONE";

/// After a run's deliveries: refresh a few unfinished reports. A failure here is a warning;
/// the run's deliveries stand.
pub fn refresh_after_run(state: &mut State, lock: &RunLock, api: &Api) {
    if let Err(e) = api.refresh(state, lock, REFRESH_PER_RUN) {
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {}",
            crate::error::one_line(&e)
        ));
    }
}

/// `history --refresh`: asks AWS about every unfinished report (up to [`REFRESH_ON_DEMAND`]).
pub fn refresh_command(settings: &Settings, provider: Option<&str>) -> Result<()> {
    let Some(api) = Api::for_run(settings, provider, false)? else {
        crate::output::tell(format_args!(
            "abuse-mailer: no provider has delivery = \"aws-abuse-api\": nothing to refresh"
        ));
        return Ok(());
    };
    if !settings.state_db().exists() {
        return Ok(());
    }
    // A run writes the same rows: refresh between runs, not across one.
    let Some(lock) = crate::lock::acquire(&settings.state_dir, true)? else {
        return Ok(());
    };
    let mut state = State::open(&settings.state_dir)?;
    let (asked, changed) = api.refresh(&mut state, &lock, REFRESH_ON_DEMAND)?;
    crate::output::tell(format_args!(
        "abuse-mailer: asked AWS about {asked} report(s); {changed} changed"
    ));
    Ok(())
}

/// What `history --json` shows of a report's remote side.
#[derive(Debug, Serialize)]
pub struct JsonRemote<'a> {
    pub id: &'a str,
    /// One of AWS's own statuses, QUEUED | PROCESSING | COMPLETED, as the interface promises.
    pub status: &'a str,
    pub reason: Option<&'a str>,
}

impl<'a> From<&'a Remote> for JsonRemote<'a> {
    fn from(r: &'a Remote) -> Self {
        match r.status.as_deref() {
            // Accepted and not asked about yet: AWS queues what it accepts.
            None => JsonRemote {
                id: &r.id,
                status: "QUEUED",
                reason: None,
            },
            // AWS no longer has it (a test report, deleted once validated): finished with
            // AWS, and the reason says why nothing more is known.
            Some(GONE) => JsonRemote {
                id: &r.id,
                status: "COMPLETED",
                reason: Some(r.reason.as_deref().unwrap_or(GONE)),
            },
            Some(status) => JsonRemote {
                id: &r.id,
                status,
                reason: r.reason.as_deref(),
            },
        }
    }
}

/// What a reason code means to an operator, in a few words.
pub fn reason_text(reason: &str) -> &'static str {
    match reason {
        "ACTIONED" => "AWS acted on the reported resource",
        "NOT_RESOLVABLE_TO_AWS" => "not an AWS resource",
        "REVIEWED_NO_AWS_ACTION" => "reviewed, no action warranted",
        "CONTENT_DOWN_OR_INACCESSIBLE" => "already down or unreachable",
        "NEED_MORE_INFORMATION" => "AWS needs more information",
        _ => "a reason this version does not know",
    }
}

/// One line under a report in `history`: what AWS last said.
pub fn describe(remote: &Remote) -> String {
    let mut text = format!(
        "AWS report {}: {}",
        remote.id,
        remote.status.as_deref().unwrap_or("not asked yet")
    );
    if let Some(reason) = &remote.reason {
        text.push_str(&format!(" {reason} ({})", reason_text(reason)));
    }
    if let Some(d) = remote.description.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(&format!(": {d}"));
    }
    if let Some(at) = &remote.changed_at {
        text.push_str(&format!(" [since {at}]"));
    }
    text
}

/// Per API provider: how many reports AWS actioned, declined, needs more information for,
/// and has not finished; providers that sent none through the API are left out.
pub fn tallies(state: &State, settings: &Settings, only: Option<&str>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in &settings.providers {
        if p.delivery != Delivery::AwsAbuseApi || only.is_some_and(|o| o != p.name) {
            continue;
        }
        let t = state.remote_tally(&p.name)?;
        if t == Default::default() {
            continue;
        }
        let mut line = format!(
            "{}: AWS actioned {}, declined {}, needs more information for {}, {} open",
            p.name, t.actioned, t.declined, t.need_info, t.open
        );
        if t.other > 0 {
            line.push_str(&format!(
                ", {} finished for a reason this version does not know",
                t.other
            ));
        }
        out.push(line);
    }
    Ok(out)
}

/// `check`'s lines for the API: the configuration, the credentials, and with `online` a
/// harmless signed call (ListAbuseReportStatuses, one item). Returns the exit status.
pub fn check(settings: &Settings, online: bool, quiet: bool) -> u8 {
    let users: Vec<&str> = settings
        .providers
        .iter()
        .filter(|p| p.delivery == Delivery::AwsAbuseApi)
        .map(|p| p.name.as_str())
        .collect();
    let Some(cfg) = &settings.aws_api else {
        return EXIT_OK;
    };
    // Through the operator's output, which shows control characters as escapes: the
    // answer's text is the API's.
    let line = |verdict: &str, text: &str| {
        if !(quiet && verdict == "ok") {
            crate::output::say(format_args!("{verdict:<7} {:<10} {text}", "aws_api"));
        }
    };
    // A section no provider uses is no error: no run asks for credentials or calls the API.
    if users.is_empty() {
        line(
            "warning",
            &format!(
                "{} (region {}): no provider has delivery = \"aws-abuse-api\"; the section is not used",
                cfg.endpoint, cfg.region
            ),
        );
        return EXIT_OK;
    }
    let what = format!(
        "{} (region {}{}) for {}",
        cfg.endpoint,
        cfg.region,
        if cfg.test { ", test reports" } else { "" },
        if users.is_empty() {
            "no provider".to_string()
        } else {
            users.join(", ")
        }
    );
    let creds = match credentials::load(cfg.profile.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            line("error", &format!("{what}: {e}"));
            return EXIT_CONFIG;
        }
    };
    let shown = creds.describe();
    // Made offline too: it reads `ca_file`, which every run would.
    let client = match Client::new(cfg, creds) {
        Ok(c) => c,
        Err(e) => {
            line("error", &format!("{what}: {}", crate::error::one_line(&e)));
            return EXIT_CONFIG;
        }
    };
    if !online {
        line("ok", &format!("{what}: {shown} (not contacted; add --aws)"));
        return EXIT_OK;
    }
    let started = Instant::now();
    match client.list(None, 1) {
        Ok(_) => {
            line(
                "ok",
                &format!(
                    "{what}: {shown}: signed call accepted in {} ms",
                    started.elapsed().as_millis()
                ),
            );
            EXIT_OK
        }
        Err(ApiError::Denied(m)) => {
            line(
                "error",
                &format!(
                    "{what}: {shown}: refused: {m} (IAM policy: abuse:ListAbuseReportStatuses)"
                ),
            );
            EXIT_CONFIG
        }
        Err(ApiError::Local(m)) => {
            line("error", &format!("{what}: {m}"));
            EXIT_CONFIG
        }
        Err(e) => {
            line("error", &format!("{what}: {e}"));
            EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_is_tagged_by_its_state_dir_too() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tag = installation(a.path());
        assert_eq!(tag.len(), 8);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, installation(a.path()), "the same on every run");
        assert_ne!(tag, installation(b.path()));
        // The same before the folder is made (a preview before the first run) as after.
        let later = a.path().join("state");
        let before = installation(&later);
        std::fs::create_dir(&later).unwrap();
        assert_eq!(before, installation(&later));
    }

    /// However long the ledger id, both ids keep the installation's tag.
    #[test]
    fn a_long_report_id_keeps_the_installation_tag() {
        let id = format!("20260125T235125Z-{}-1a2b3c4d", "p".repeat(300));
        let (token, correlation) = request_ids(&id, "0f1e2d3c");
        assert!(correlation.ends_with("-0f1e2d3c") && correlation.len() <= 256);
        assert!(token.len() <= 128);
        assert_ne!(request_ids(&id, "99999999").0, token);
        let short = "20260125T235125Z-aws-1a2b3c4d";
        assert_eq!(
            request_ids(short, "0f1e2d3c"),
            (format!("{short}-0f1e2d3c"), format!("{short}-0f1e2d3c"))
        );
    }

    #[test]
    fn tokens_follow_the_model_patterns() {
        let id = "20260125T235125Z-aws-1a2b3c4d-0f1e2d3c";
        assert_eq!(client_token(id), id);
        assert_eq!(correlation_id(id), id);
        let long = "x".repeat(200);
        let token = client_token(&long);
        assert!(token.len() <= 128 && token == client_token(&long));
        assert_eq!(correlation_id("a b/c"), "a-b-c");
    }
}
