//! The AWS Abuse Signal API delivery end to end: the binary against a stub of the API on
//! loopback (tests/aws_stub.py) that recomputes every SigV4 signature with botocore, an
//! implementation independent of ours, and validates every XARF document against the v4
//! schemas with PyPI's xarf.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Ran, Setup, drop_line, history, remove_the_lock_once_held, repo, standard_config,
    through_aws_api, tool, with_other_provider,
};
use serde_json::{Value, json};

const KEY: &str = "AKIAABUSEMAILERTEST1";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYabuseMailerSECRET42";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEabuseMailerSESSIONtoken77";

/// The stub API, killed when dropped.
struct Stub {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
}

impl Stub {
    /// Starts the stub; `None` (test skipped) where python3 with botocore and xarf is missing,
    /// which CI does not allow.
    fn start(token: Option<&str>) -> Option<Stub> {
        Self::start_with(token, false)
    }

    /// With `tls`, the stub speaks HTTPS with the certificate of fixtures/tls (localhost).
    fn start_with(token: Option<&str>, tls: bool) -> Option<Stub> {
        if !tool("python3", &["-c", "import botocore.auth, xarf"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/aws_stub.py"))
            .args(["--key", KEY, "--secret", SECRET, "--region", "us-east-1"])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(dir.path().join("log.jsonl"))
            .arg("--scenario")
            .arg(dir.path().join("scenario.json"))
            .args(["--lifetime", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        if tls {
            cmd.arg("--tls-cert")
                .arg(repo().join("fixtures/tls/server.pem"))
                .arg("--tls-key")
                .arg(repo().join("fixtures/tls/server.key"));
        }
        let child = cmd.spawn().unwrap();
        let started = Instant::now();
        let mut stub = Stub {
            child,
            dir,
            port: 0,
            tls,
        };
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                stub.port = port;
                return Some(stub);
            }
            if let Ok(Some(status)) = stub.child.try_wait() {
                panic!("the API stub ended before listening: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the API stub did not start listening within 60 s");
    }

    fn endpoint(&self) -> String {
        match self.tls {
            true => format!("https://localhost:{}", self.port),
            false => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Scripts the next answers (see tests/aws_stub.py).
    fn script(&self, scenario: Value) {
        std::fs::write(
            self.dir.path().join("scenario.json"),
            serde_json::to_vec(&scenario).unwrap(),
        )
        .unwrap();
    }

    /// Every request the stub saw, in order.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The CreateAbuseReport calls, after checking that every request was signed right and
    /// every document is valid XARF.
    fn creates(&self) -> Vec<Value> {
        let log = self.log();
        for entry in &log {
            assert_eq!(
                entry["signature_ok"], true,
                "botocore disagrees with our signature: {}",
                entry["signature_problem"]
            );
            if let Some(errors) = entry.get("xarf_errors") {
                assert_eq!(errors, &json!([]), "invalid XARF: {}", entry["xarf"]);
            }
        }
        log.into_iter()
            .filter(|e| e["method"] == "POST" && e["path"] == "/v1/abuse")
            .collect()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A setup whose `aws` provider delivers through the stub, credentials in the environment.
fn setup(stub: &Stub, extra: &str) -> Setup {
    let config = through_aws_api(
        &standard_config(""),
        &stub.endpoint(),
        &format!("timeout_secs = 20\n{extra}"),
    );
    let mut s = Setup::new(&config);
    credentials_in_env(&mut s);
    s
}

fn credentials_in_env(s: &mut Setup) {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        // Empty is unset: nothing of the machine's own AWS setup leaks in.
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
    ] {
        s.env.push((k.to_string(), v.to_string()));
    }
}

/// Three lines from each source, so any threshold passes.
/// `aws_api.test` turned off in the configuration, as an operator does after trying it.
fn test_mode_off(s: &Setup) {
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    s.write(
        "config.toml",
        &config.replace("test = true", "test = false"),
    );
}

fn attack(s: &Setup, sources: &[(&str, &str, u16)]) {
    let mut text = String::new();
    for (i, (ip, proto, port)) in sources.iter().enumerate() {
        for k in 0..3 {
            text.push_str(&drop_line(&format!("10:0{i}:0{k}"), ip, proto, *port));
        }
    }
    s.append("messages", &text);
}

const THREE: [(&str, &str, u16); 3] = [
    ("3.5.140.2", "TCP", 22),
    ("18.206.107.24", "TCP", 80),
    ("34.223.47.190", "UDP", 53),
];

/// Neither the secret key nor the session token is in any output or in the state folder.
fn assert_secrets_absent(s: &Setup, outputs: &[&Ran]) {
    for secret in [SECRET, TOKEN] {
        for ran in outputs {
            assert!(
                !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
                "a secret was printed"
            );
        }
        for (path, bytes) in common::snapshot(&s.path("state")) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in {}",
                path.display()
            );
        }
    }
}

#[test]
fn three_sources_make_three_signed_reports_with_aws_ids() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "");
    attack(&s, &THREE);
    let ran = s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 3, "one call per source address");
    let rows = history(&s);
    assert_eq!(rows.len(), 3, "one ledger row per source address");
    for row in &rows {
        assert_eq!(row["status"], "sent");
        assert_eq!(row["to"], json!([stub.endpoint()]));
        let id = row["id"].as_str().unwrap();
        let ours = |c: &serde_json::Value, key: &str| {
            c[key]
                .as_str()
                .and_then(|t| t.strip_prefix(id))
                .is_some_and(|tag| tag.len() == 9 && tag.starts_with('-'))
        };
        let call = creates
            .iter()
            .find(|c| ours(c, "correlation_id"))
            .expect("the correlationId names the ledger row");
        assert!(
            ours(call, "client_token"),
            "the clientToken is the report's id and the installation's tag"
        );
        assert_eq!(row["remote"]["id"], call["report_id"], "AWS's id is kept");
        assert_eq!(call["xarf"]["source_identifier"], row["ips"][0]);
        assert_eq!(call["xarf"]["category"], "connection");
        assert!(
            !call["xarf"]["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("lifecycle:test"))
        );
        // `show` prints exactly what was sent.
        let shown = s.run(&["show", id]).ok();
        assert_eq!(shown.stdout, call["body"].as_str().unwrap());
    }
    // The run asked how the new reports stand.
    assert!(rows.iter().all(|r| r["remote"]["status"] == "QUEUED"));
    let mut sources: Vec<String> = creates
        .iter()
        .map(|c| c["xarf"]["source_identifier"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, ["18.206.107.24", "3.5.140.2", "34.223.47.190"]);

    // Nothing new: nothing created again.
    let again = s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 3);
    let text = s.run(&["history"]).ok();
    assert!(text.stdout.contains("AWS report R"), "{}", text.stdout);
    assert_secrets_absent(&s, &[&ran, &again, &text]);
}

#[test]
fn server_error_then_success_is_one_report_with_one_client_token() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 500, "body": {
        "__type": "InternalServerException", "message": "Internal failure"}}}}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let first = s.run(&["run"]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    assert!(
        first.stderr.contains("Internal failure"),
        "{}",
        first.stderr
    );
    assert_eq!(history(&s)[0]["status"], "failed");
    s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["client_token"], creates[1]["client_token"]);
    assert_eq!(
        creates[0]["body"], creates[1]["body"],
        "the stored body, resent"
    );
    let rows = history(&s);
    assert_eq!(rows.len(), 1, "one report");
    assert_eq!(rows[0]["status"], "sent");
    assert_eq!(rows[0]["remote"]["id"], creates[1]["report_id"]);
}

#[test]
fn throttled_call_waits_as_told_and_is_sent_once() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(
        json!({"create": {"1": {"status": 429, "headers": {"Retry-After": "1"}, "body": {
        "__type": "ThrottlingException", "message": "Rate exceeded"}}}}),
    );
    let s = setup(&stub, "");
    attack(&s, &THREE);
    let ran = s.run(&["run"]).ok();
    assert!(ran.stderr.contains("waiting 1s"), "{}", ran.stderr);
    let creates = stub.creates();
    assert_eq!(creates.len(), 4, "three reports, one of them twice");
    assert_eq!(creates[1]["answer"], 429);
    assert_eq!(creates[1]["client_token"], creates[2]["client_token"]);
    let rows = history(&s);
    assert_eq!(rows.len(), 3, "nothing doubled");
    assert!(rows.iter().all(|r| r["status"] == "sent"), "nothing lost");
}

/// `Retry-After` past any clock (2^64 - 1 seconds): the report waits for a later run (75)
/// rather than the run panicking on the sum; and `Retry-After: 0` again and again is waited
/// out with the backoff's growing waits, not called ten times a second.
#[test]
fn throttling_with_absurd_retry_after_values_neither_panics_nor_hammers() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let throttle = |after: &str| {
        json!({"status": 429, "headers": {"Retry-After": after}, "body": {
        "__type": "ThrottlingException", "message": "Rate exceeded"}})
    };
    stub.script(json!({"create": {"0": throttle("18446744073709551615")}}));
    let mut s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("past this run's deadline"),
        "{}",
        ran.stderr
    );
    assert_eq!(history(&s)[0]["status"], "failed");
    stub.script(json!({"create": {"1": throttle("0"), "2": throttle("0")}}));
    s.now = "2026-01-26T09:00:00Z".into();
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("waiting 2s"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("waiting 0s"), "{}", ran.stderr);
    let creates = stub.creates();
    assert_eq!(creates.len(), 4, "one try, then three");
    let rows = history(&s);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "sent");
}

#[test]
fn submission_requirement_rejects_with_aws_text_and_is_not_resent() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 422, "body": {
        "__type": "SubmissionRequirementException",
        "message": "The report does not meet submission requirements",
        "unmetRequirements": [{"code": "rule.timestamp.too_old", "path": "/timestamp",
                               "message": "The timestamp predates the lookback window"}]}}}}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("rule.timestamp.too_old"),
        "{}",
        ran.stderr
    );
    let rows = history(&s);
    assert_eq!(rows[0]["status"], "rejected");
    let text = s.run(&["history"]).ok().stdout;
    assert!(
        text.contains("The timestamp predates the lookback window"),
        "{text}"
    );
    // More packets from the same source: still not sent again and again.
    attack(&s, &THREE[..1]);
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 1, "a refused report is not resent");
}

#[test]
fn access_denied_is_a_configuration_error_and_the_report_waits() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"deny": true}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(ran.stderr.contains("IAM"), "{}", ran.stderr);
    assert!(history(&s).iter().all(|r| r["status"] != "sent"));
    stub.script(json!({}));
    s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["answer"], 403);
    assert_eq!(
        creates[0]["body"], creates[1]["body"],
        "the same report, resent"
    );
    assert_eq!(history(&s)[0]["status"], "sent");
}

/// AWS's JSON services refuse an expired token with a 400 as often as with a 403: that is
/// the credentials' fault (78), and the report waits for them, not refused for good with
/// its address used up.
#[test]
fn an_expired_token_refused_with_a_400_is_the_credentials_and_the_report_waits() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 400, "body": {
        "__type": "ExpiredTokenException", "message": "The security token included in the request is expired"}}}}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert_eq!(history(&s)[0]["status"], "failed", "waiting, not rejected");
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 2);
    assert_eq!(history(&s)[0]["status"], "sent");
}

/// A signature made by a clock more than 15 minutes off AWS's is refused with words that say
/// so: the host's clock is at fault, not the key. The run says so and ends 75 (NTP sets the
/// clock right), the report waiting; it ended 78, sending the operator to the key and its
/// IAM policy.
#[test]
fn a_signature_from_a_clock_far_off_is_the_clocks_fault_and_the_report_waits() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 403, "body": {
        "__type": "InvalidSignatureException",
        "message": "Signature expired: 20260126T073000Z is now earlier than 20260126T074500Z (20260126T080000Z - 15 min.)"}}}}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(ran.stderr.contains("clock"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("IAM"), "{}", ran.stderr);
    assert_eq!(history(&s)[0]["status"], "failed", "waiting, not rejected");
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 2);
    assert_eq!(history(&s)[0]["status"], "sent");
}

/// A key pasted with a character no header carries: `check` and `run` say so (78) before
/// any call, rather than `check` panicking or a run taking the failed request for AWS's
/// refusal of the report.
#[test]
fn a_key_no_header_can_carry_is_a_configuration_error_before_any_call() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let mut s = setup(&stub, "");
    s.env
        .push(("AWS_ACCESS_KEY_ID".into(), "€€€€€€€€€€".into()));
    attack(&s, &THREE[..1]);
    let checked = s.run(&["check"]);
    assert_eq!(checked.code, 78, "{}{}", checked.stdout, checked.stderr);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(ran.stderr.contains("printable ASCII"), "{}", ran.stderr);
    assert!(stub.log().is_empty(), "no call made");
    assert!(history(&s).iter().all(|r| r["status"] != "rejected"));
}

/// `s`'s runs find no AWS credentials: none in the environment, no shared files, a home of
/// their own.
fn without_aws_credentials(s: &mut Setup) {
    s.env.retain(|(k, _)| !k.starts_with("AWS_"));
    let home = s.path("home");
    std::fs::create_dir(&home).unwrap();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
        ("AWS_PROFILE", ""),
        ("HOME", home.to_str().unwrap()),
    ] {
        s.env.push((k.to_string(), v.to_string()));
    }
}

#[test]
fn missing_credentials_is_a_configuration_error_before_any_call() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let mut s = setup(&stub, "");
    without_aws_credentials(&mut s);
    attack(&s, &THREE);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(ran.stderr.contains("no AWS credentials"), "{}", ran.stderr);
    assert!(stub.log().is_empty(), "nothing sent");
    assert!(history(&s).is_empty());
    let check = s.run(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("error   aws_api"), "{}", check.stdout);
}

/// An `[aws_api]` section that no provider uses (every provider reports by mail), with no
/// AWS credentials anywhere: no run asks for them, so `check` says the section is unused and
/// passes, as `preview` and `run` do.
#[test]
fn an_aws_api_section_no_provider_uses_needs_no_credentials() {
    let mut s = Setup::new(
        &standard_config("").replace("[mail]", "[aws_api]\nregion = \"us-east-1\"\n\n[mail]"),
    );
    without_aws_credentials(&mut s);
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let check = s.run(&["check"]).ok();
    assert!(
        check.stdout.contains("warning aws_api") && check.stdout.contains("not used"),
        "{}",
        check.stdout
    );
    s.run(&["preview"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn refresh_shows_completed_and_actioned() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "");
    attack(&s, &THREE[..2]);
    s.run(&["run"]).ok();
    stub.script(
        json!({"status": {"*": {"status": "COMPLETED", "reasonCode": "ACTIONED",
        "description": "Enforcement action was taken"}}}),
    );
    let ran = s.run(&["history", "--refresh", "--json"]).ok();
    let rows = ran.json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["remote"]["status"], "COMPLETED");
        assert_eq!(row["remote"]["reason"], "ACTIONED");
    }
    let text = s.run(&["history"]).ok().stdout;
    assert!(text.contains("aws: AWS actioned 2"), "{text}");
    assert!(text.contains("Enforcement action was taken"), "{text}");
    // Finished reports are not asked about again.
    let asked = stub.log().iter().filter(|e| e["method"] == "GET").count();
    let run = s.run(&["run"]).ok();
    assert!(run.stderr.contains("AWS actioned 2"), "{}", run.stderr);
    assert_eq!(
        stub.log().iter().filter(|e| e["method"] == "GET").count(),
        asked
    );
}

/// One report whose status cannot be read (AWS answers a status this client does not know)
/// held back every other: the refresh stopped there, and as the newest is asked first, the
/// older reports were never refreshed. The others are refreshed, and the one is named (75).
#[test]
fn a_status_that_cannot_be_read_holds_back_no_other_report() {
    one_failing_report_holds_back_no_other(
        |newest| {
            json!({"status": {
            newest: {"status": "IN PROGRESS"},
            "*": {"status": "COMPLETED", "reasonCode": "ACTIONED"}}})
        },
        "not refreshed",
    );
}

/// Three reports sent through the stub, then a `history --refresh` with the newest answered
/// as `scenario` says (every other COMPLETED / ACTIONED): it fails to try again (75), saying
/// `said`, and the two others are refreshed.
fn one_failing_report_holds_back_no_other(scenario: impl Fn(&str) -> Value, said: &str) {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "");
    attack(&s, &THREE);
    s.run(&["run"]).ok();
    let rows = s.run(&["history", "--json"]).ok().json();
    let newest = rows.as_array().unwrap().last().unwrap()["remote"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    stub.script(scenario(&newest));
    let ran = s.run(&["history", "--refresh"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(ran.stderr.contains(said), "{}", ran.stderr);
    let rows = s.run(&["history", "--json"]).ok().json();
    let actioned = (rows.as_array().unwrap().iter())
        .filter(|r| r["remote"]["reason"] == "ACTIONED")
        .count();
    assert_eq!(actioned, 2, "{rows}");
}

/// A 404 page that is not AWS's (a proxy's, or an endpoint misspelt) was taken for AWS's
/// word that each report was gone: every open report was marked GONE and never asked about
/// again. It is a failure to try again; once the endpoint is right, AWS's answers count.
#[test]
fn a_404_page_that_is_not_aws_marks_no_report_gone() {
    use std::io::{Read, Write};
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "");
    attack(&s, &THREE[..2]);
    s.run(&["run"]).ok();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = "<html><body>404 Not Found</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    let proxied = config.replace(&stub.endpoint(), &format!("http://127.0.0.1:{page}"));
    assert_ne!(proxied, config);
    s.write("config.toml", &proxied);
    let ran = s.run(&["history", "--refresh"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    let rows = s.run(&["history", "--json"]).ok().json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["remote"]["status"], "QUEUED", "{row}");
    }
    s.write("config.toml", &config);
    every_report_actioned_after_a_refresh(&stub, &s);
}

/// AWS answering every status query COMPLETED / ACTIONED: a refresh records it for every
/// report, the endpoint being right again.
fn every_report_actioned_after_a_refresh(stub: &Stub, s: &Setup) {
    stub.script(json!({"status": {"*": {"status": "COMPLETED", "reasonCode": "ACTIONED"}}}));
    s.run(&["history", "--refresh"]).ok();
    let rows = s.run(&["history", "--json"]).ok().json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["remote"]["reason"], "ACTIONED", "{row}");
    }
}

/// A status endpoint that answers too slowly (a hung gateway): each open report was asked in
/// turn and waited out the whole deadline, a refresh of hundreds taking hours with the run
/// lock held, and every cron run meanwhile skipped. The first such failure stops the
/// refresh; the others are asked by a later one.
#[test]
fn a_status_endpoint_that_does_not_answer_is_asked_once_a_refresh() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let config = through_aws_api(&standard_config(""), &stub.endpoint(), "timeout_secs = 1");
    let mut s = Setup::new(&config);
    credentials_in_env(&mut s);
    attack(&s, &THREE);
    s.run(&["run"]).ok();
    let questions = || {
        (stub.log().iter())
            .filter(|e| {
                e["method"] == "GET" && e["path"].as_str().unwrap().starts_with("/v1/abuse/")
            })
            .count()
    };
    let before = questions();
    stub.script(json!({"status_delay": 3}));
    let ran = s.run(&["history", "--refresh"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("2 not asked, left for a later refresh"),
        "{}",
        ran.stderr
    );
    // The stub logs a question once its late answer is written.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(questions() - before, 1);
    every_report_actioned_after_a_refresh(&stub, &s);
}

/// `run.lock` removed by hand while a refresh waits for AWS's answer: a run let in beside it
/// writes the same rows. The refresh stops before it writes (1), and writes nothing.
#[test]
fn a_refresh_whose_lock_is_removed_stops_before_it_writes() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    s.run(&["run"]).ok();
    stub.script(json!({"status_delay": 3, "status": {"*": {"status": "COMPLETED", "reasonCode": "ACTIONED"}}}));
    let refresh = s
        .command(&["history", "--refresh"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    remove_the_lock_once_held(&s);
    let ran = Ran::from(refresh.wait_with_output().unwrap());
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("removed or replaced"), "{}", ran.stderr);
    for row in history(&s) {
        assert_eq!(row["remote"]["status"], "QUEUED", "{row}");
    }
}

/// A 5xx about one report (AWS's InternalServerException on one record) is an answer, not an
/// endpoint that cannot answer: the refresh goes on to the others, as for any one report's
/// failure, and the one is named.
#[test]
fn a_server_error_about_one_report_holds_back_no_other() {
    one_failing_report_holds_back_no_other(
        |newest| {
            json!({
            "status_answer_for": {newest: {"status": 500,
                "body": {"__type": "InternalServerException", "message": "try later"}}},
            "status": {"*": {"status": "COMPLETED", "reasonCode": "ACTIONED"}}})
        },
        "InternalServerException",
    );
}

/// A status answer about another report than the one asked (a cache or gateway mixing
/// answers up) was stored as the asked one's: COMPLETED, and never asked about again. It is
/// no answer: the reports stay open.
#[test]
fn a_status_answer_about_another_report_is_not_taken() {
    let ran = refreshed_and_left_open(json!({
        "status_about": "ROTHERREPORTOTHERREPORT0000",
        "status": {"*": {"status": "COMPLETED", "reasonCode": "ACTIONED"}}}));
    if let Some(ran) = ran {
        assert!(ran.stderr.contains("answered about"), "{}", ran.stderr);
    }
}

/// Two reports sent through the stub, then a `history --refresh` under `scenario`: it fails
/// to try again (75), and both reports are still open. `None` where the stub cannot run.
fn refreshed_and_left_open(scenario: Value) -> Option<Ran> {
    let stub = Stub::start(None)?;
    let s = setup(&stub, "");
    attack(&s, &THREE[..2]);
    s.run(&["run"]).ok();
    stub.script(scenario);
    let ran = s.run(&["history", "--refresh"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    let rows = s.run(&["history", "--json"]).ok().json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["remote"]["status"], "QUEUED", "{row}");
    }
    Some(ran)
}

/// A JSON 404 that is not AWS's (`{"message":"Not Found"}`, an API gateway's for a path it
/// does not serve) marked every open report GONE for good. Only AWS's own
/// ResourceNotFoundException does.
#[test]
fn a_gateways_json_404_marks_no_report_gone() {
    refreshed_and_left_open(
        json!({"status_answer": {"status": 404, "body": {"message": "Not Found"}}}),
    );
}

/// Test reports, then `test = false` with nothing new logged: the real reports carry the
/// lines the test reports showed. They went out with none, and a flood's without the rate in
/// bits XARF requires: refused, made again and refused on every run, holding the provider's
/// other addresses back for good.
#[test]
fn real_reports_after_test_reports_carry_their_lines_and_go_once() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "test = true");
    attack(&s, &THREE);
    // 150 packets in five seconds from one source: a flood, `ddos` to XARF.
    let flood: String = (0..150)
        .map(|i| drop_line(&format!("10:10:0{}", i / 30), "3.5.140.9", "UDP", 53))
        .collect();
    s.append("messages", &flood);
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 4);
    test_mode_off(&s);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let creates = stub.creates();
    assert_eq!(creates.len(), 8, "{}", ran.stderr);
    for c in &creates[4..] {
        let xarf = &c["xarf"];
        let evidence = xarf["evidence"][0]["payload"].as_str().unwrap_or_default();
        assert!(!evidence.is_empty(), "a real report with no line: {xarf}");
        if xarf["type"] == "ddos" {
            assert!(xarf["peak_bps"].as_u64().is_some_and(|b| b > 0), "{xarf}");
        }
    }
    assert!(creates[4..].iter().any(|c| c["xarf"]["type"] == "ddos"));
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 8, "each once");
}

/// A real report refused after a test report of the same address waits as any refused
/// report does: the test report made it a first report again on every run, refused every
/// time, with the provider's other reports held back behind it.
#[test]
fn a_real_report_refused_after_a_test_report_is_not_made_again_every_run() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"1": {"status": 400, "body": {
        "__type": "ValidationException", "message": "Invalid request"}}}}));
    let s = setup(&stub, "test = true");
    attack(&s, &THREE[..1]);
    s.run(&["run"]).ok();
    test_mode_off(&s);
    s.run(&["run"]).ended(1, &["Invalid request"]);
    assert_eq!(stub.creates().len(), 2);
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(
        stub.creates().len(),
        2,
        "a refused report is not made again"
    );
}

#[test]
fn test_mode_tags_every_report_lifecycle_test() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "test = true");
    attack(&s, &THREE);
    s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 3);
    for c in creates {
        let tags = c["xarf"]["tags"].as_array().unwrap();
        assert!(tags.contains(&json!("lifecycle:test")), "{tags:?}");
        assert!(tags.len() <= 20);
    }
    // AWS did not act on the tests: with test off, the same sources are reported for real.
    test_mode_off(&s);
    attack(&s, &THREE);
    s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 6);
    for c in &creates[3..] {
        let tags = c["xarf"]["tags"].as_array().unwrap();
        assert!(!tags.contains(&json!("lifecycle:test")), "{tags:?}");
    }
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 6, "and only once");
}

#[test]
fn profile_with_session_token_signs_and_stays_secret() {
    let Some(stub) = Stub::start(Some(TOKEN)) else {
        return;
    };
    let mut s = setup(&stub, "profile = \"abuse\"");
    s.env.retain(|(k, _)| !k.starts_with("AWS_"));
    let file = s.path("aws-credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n[abuse]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"
        ),
    )
    .unwrap();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
    ] {
        s.env.push((k.to_string(), v.to_string()));
    }
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run", "-v"]).ok();
    assert_eq!(stub.creates().len(), 1);
    assert_eq!(history(&s)[0]["status"], "sent");
    let check = s.run(&["check", "--aws"]);
    assert!(
        check.stdout.contains("ok      aws_api") && check.stdout.contains("signed call accepted"),
        "{}",
        check.stdout
    );
    let lists: Vec<Value> = stub
        .log()
        .into_iter()
        .filter(|e| e["path"] == "/v1/abusestatuses")
        .collect();
    assert_eq!(lists.len(), 1, "check --aws makes one harmless call");
    let refresh = s.run(&["history", "--refresh"]).ok();
    stub.creates();
    assert_secrets_absent(&s, &[&ran, &check, &refresh]);
}

#[test]
fn plain_http_endpoint_off_loopback_is_refused() {
    let config = standard_config("")
        .replace("to = [\"ec2-abuse@amazon.com\"]\n", "delivery = \"aws-abuse-api\"\n")
        .replace(
            "[mail]",
            "[aws_api]\nregion = \"us-east-1\"\nendpoint = \"http://abuse.us-east-1.amazonaws.com\"\n\n[mail]",
        );
    let s = Setup::new(&config);
    s.write("messages", "");
    let ran = s.run(&["check"]);
    assert_eq!(ran.code, 78);
    assert!(
        ran.stderr.contains("aws_api.endpoint") && ran.stderr.contains("loopback"),
        "{}",
        ran.stderr
    );
    let no_section = Setup::new(&standard_config("").replace(
        "to = [\"ec2-abuse@amazon.com\"]\n",
        "delivery = \"aws-abuse-api\"\n",
    ));
    let ran = no_section.run(&["check"]);
    assert_eq!(ran.code, 78);
    assert!(ran.stderr.contains("[aws_api]"), "{}", ran.stderr);
    let bad = Setup::new(&standard_config("").replace(
        "to = [\"ec2-abuse@amazon.com\"]\n",
        "to = [\"ec2-abuse@amazon.com\"]\ndelivery = \"carrier-pigeon\"\n",
    ));
    let ran = bad.run(&["check"]);
    assert_eq!(ran.code, 78);
    assert!(
        ran.stderr.contains("provider[0].delivery"),
        "{}",
        ran.stderr
    );
}

/// XARF v4 cannot tell a source without a source or destination port: one seen only over
/// ICMP, or only to port 0 (a common probe, whose document went without `destination_port`,
/// was refused, and the run exited 1). Neither is sent, and the operator is told. A UDP-Lite
/// source is told as UDP (it was told as ICMP, beside its ports).
#[test]
fn sources_xarf_cannot_tell_are_not_sent_to_the_api() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let mut s = setup(&stub, "");
    attack(
        &s,
        &[
            ("3.5.140.2", "TCP", 22),
            ("34.223.47.190", "TCP", 0),
            ("35.180.0.9", "UDPLITE", 53),
        ],
    );
    let icmp = (0..3)
        .map(|k| {
            format!(
                "Jan 25 10:05:0{k} web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= SRC=18.206.107.24 DST=198.51.100.10 LEN=84 TOS=0x00 PREC=0x00 TTL=52 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ={k} \n"
            )
        })
        .collect::<String>();
    s.append("messages", &icmp);
    let ran = s.run(&["run"]).ok();
    assert!(
        ran.stderr
            .contains("2 address(es) of aws were seen with no source or destination port"),
        "the operator is told: {}",
        ran.stderr
    );
    let creates = stub.creates();
    let told: Vec<(&str, &str)> = (creates.iter())
        .map(|c| {
            let x = &c["xarf"];
            (
                x["source_identifier"].as_str().unwrap(),
                x["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(told, [("3.5.140.2", "tcp"), ("35.180.0.9", "udp")]);
    assert_eq!(creates[1]["xarf"]["destination_port"], 53);
    assert_eq!(history(&s).len(), 2);
    // Weeks on, a run lets them go as history: they were never for the API, which every run
    // said; no loss is said of them.
    s.now = "2026-03-10T08:00:00Z".into();
    s.append(
        "messages",
        &drop_line("07:00:00", "3.5.140.99", "TCP", 22).replace("Jan 25", "Mar 10"),
    );
    let later = s.run(&["-q", "run"]).ok();
    assert!(!later.stderr.contains("became history"), "{}", later.stderr);
}

/// Addresses waiting for the API's sending budget when runs stop for longer than
/// `max_age_days` become history unreported, and the run that lets them go says so, under
/// `-q`, as for mail (the sources the API is never sent are no such loss: see above).
#[test]
fn addresses_waiting_for_the_apis_budget_that_age_out_are_said_lost() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let mut s = setup(&stub, "");
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace("[mail]", "[mail]\nmax_messages_per_run = 1")
        .replace("[report]", "[report]\nmax_age_days = 30");
    std::fs::write(s.path("config.toml"), config).unwrap();
    let log: String = (2..12)
        .map(|i| {
            drop_line("10:00:00", &format!("3.5.140.{i}"), "TCP", 22).replace("Jan 25", "Jan  1")
        })
        .collect();
    s.now = "2026-01-01T11:00:00Z".into();
    s.write("messages", &log);
    s.run(&["-q", "run"]).ok();
    s.now = "2026-02-05T12:00:00Z".into();
    s.append(
        "messages",
        &drop_line("11:00:00", "3.5.140.99", "TCP", 22).replace("Jan 25", "Feb  5"),
    );
    let late = s.run(&["-q", "run"]).ok();
    assert!(
        late.stderr
            .contains("9 address(es) of aws that no report listed became history"),
        "{}",
        late.stderr
    );
}

#[test]
fn report_aws_no_longer_has_is_not_asked_about_again() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = setup(&stub, "test = true");
    attack(&s, &THREE[..1]);
    s.run(&["run"]).ok();
    stub.script(json!({"forget": true}));
    let rows = s.run(&["history", "--refresh", "--json"]).ok().json();
    // The interface's statuses only: AWS is done with it, and the reason says it is gone.
    assert_eq!(rows[0]["remote"]["status"], "COMPLETED");
    assert_eq!(rows[0]["remote"]["reason"], "GONE");
    // AWS gave no time: the change is stamped with the run's clock, the injected one here.
    let text = s.run(&["history"]).ok().stdout;
    assert!(text.contains(&format!("[since {}]", s.now)), "{text}");
    let asked = stub.log().len();
    s.run(&["history", "--refresh"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(
        stub.log().len(),
        asked,
        "a finished report costs no more calls"
    );
}

#[test]
fn https_endpoint_is_verified_against_the_roots_and_ca_file() {
    let Some(stub) = Stub::start_with(None, true) else {
        return;
    };
    // The stub's certificate is signed by the test CA only: without ca_file, no connection.
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(stub.log().is_empty(), "nothing reached the stub");
    let s = setup(
        &stub,
        &format!(
            "ca_file = \"{}\"",
            repo().join("fixtures/tls/ca.pem").display()
        ),
    );
    attack(&s, &THREE[..1]);
    s.run(&["run"]).ok();
    assert_eq!(stub.creates().len(), 1);
    assert_eq!(history(&s)[0]["status"], "sent");
}

/// `[aws_api] ca_file` a FIFO or a device: `check` names it and a run is refused, as for
/// `mail.ca_file`. A run read `/dev/zero` until memory ran out, and blocked on a FIFO for
/// ever holding the run lock, every later run giving way to it; `check` said ok.
#[test]
fn an_aws_api_ca_file_that_is_a_fifo_or_a_device_is_refused() {
    for (ca, kind) in [
        ("{dir}/ca.pem", "a FIFO"),
        ("/dev/zero", "a character device"),
    ] {
        let config = through_aws_api(
            &standard_config(""),
            "https://abuse.us-east-1.amazonaws.com",
            &format!("ca_file = \"{ca}\""),
        );
        let mut s = Setup::new(&config);
        credentials_in_env(&mut s);
        if ca.starts_with("{dir}") {
            let made = Command::new("mkfifo")
                .arg(s.path("ca.pem"))
                .status()
                .unwrap();
            assert!(made.success());
        }
        attack(&s, &THREE[..1]);
        let checked = s.run_bounded(&["check"]);
        assert_eq!(checked.code, 78, "{kind}: {}", checked.stdout);
        let line = (checked.stdout.lines())
            .find(|l| l.starts_with("error") && l.contains("aws_api"))
            .unwrap_or_else(|| panic!("{kind}: {}", checked.stdout));
        assert!(
            line.contains("aws_api.ca_file") && line.contains(kind),
            "{line}"
        );
        let ran = s.run_bounded(&["run"]);
        assert_eq!(ran.code, 78, "{kind}: {}", ran.stderr);
        assert!(ran.stderr.contains("aws_api.ca_file"), "{}", ran.stderr);
    }
}

/// AWS keeps a report but its answer never arrives (a 503 after storing it); the setup's
/// clock is then two days on, past the clientToken's 24 hours.
fn stored_unanswered_two_days_ago(stub: &Stub) -> Setup {
    stub.script(
        json!({"create": {"0": {"status": 503, "after_storing": true, "body": {
        "__type": "InternalServerException", "message": "Service unavailable"}}}}),
    );
    let mut s = setup(stub, "");
    attack(&s, &THREE[..1]);
    assert_eq!(s.run(&["run"]).code, 75);
    s.now = "2026-01-28T08:00:00Z".to_string();
    s
}

/// The one report is recorded as the one AWS stored on the first try: not created again.
fn found_not_created_again(stub: &Stub, s: &Setup) {
    assert_eq!(stub.creates().len(), 1, "not created a second time");
    let rows = history(s);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "sent");
    assert_eq!(rows[0]["remote"]["id"], stub.creates()[0]["report_id"]);
}

#[test]
fn report_retried_after_the_token_window_is_looked_up_not_sent_twice() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = stored_unanswered_two_days_ago(&stub);
    // The clientToken has expired at AWS: the report is found by correlationId.
    s.run(&["run"]).ok();
    found_not_created_again(&stub, &s);
}

/// Two hosts on one AWS account see the same scanner and run at the same second: their
/// ledger ids are alike, but their requests' tokens are not, so AWS takes both reports
/// rather than refusing the second as the first's token reused with another body (409),
/// which lost that host's report.
#[test]
fn two_installations_reporting_alike_in_one_second_are_two_reports() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let (a, b) = (setup(&stub, ""), setup(&stub, ""));
    for s in [&a, &b] {
        attack(s, &THREE[..1]);
        let ran = s.run(&["run"]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    assert_eq!(
        history(&a)[0]["id"],
        history(&b)[0]["id"],
        "alike ledger ids"
    );
    let creates = stub.creates();
    assert_eq!(creates.len(), 2);
    assert_ne!(creates[0]["client_token"], creates[1]["client_token"]);
    assert!(creates.iter().all(|c| c["answer"] == 202), "{creates:?}");
    for s in [&a, &b] {
        assert_eq!(history(s)[0]["status"], "sent");
    }
}

/// A report waiting for the API (a 5xx) is printed by `preview` with the new ones, as its
/// request, as stderr says; it was left out of the messages while said to be printed.
#[test]
fn preview_prints_a_waiting_api_report_with_the_new_ones() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 503, "body": {
        "__type": "InternalServerException", "message": "Service unavailable"}}}}));
    let s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    assert_eq!(s.run(&["run"]).code, 75);
    let token = stub.creates()[0]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let previewed = s.run(&["preview"]).ok();
    assert!(
        previewed.stderr.contains("1 earlier report(s) wait"),
        "{}",
        previewed.stderr
    );
    assert!(previewed.stdout.contains(&token), "{}", previewed.stdout);
    assert_eq!(stub.creates().len(), 1, "a preview calls nothing");
}

/// The same, but asking AWS whether it has the report fails (a 500, or a policy without
/// the list permission): the report is not sent again on a guess, which with the token
/// expired would file it twice. It waits until AWS can say, then is found, not created.
#[test]
fn a_report_whose_lookup_fails_after_the_token_window_waits_rather_than_going_twice() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    let s = stored_unanswered_two_days_ago(&stub);
    for (answer, code) in [
        (
            json!({"status": 500, "body": {"__type": "InternalServerException", "message": "down"}}),
            75,
        ),
        (
            json!({"status": 403, "body": {"__type": "AccessDeniedException", "message": "not allowed: abuse:ListAbuseReportStatuses"}}),
            78,
        ),
    ] {
        stub.script(json!({"list": answer}));
        let ran = s.run(&["run"]);
        assert_eq!(ran.code, code, "{}", ran.stderr);
        assert_eq!(stub.creates().len(), 1, "not created again: {}", ran.stderr);
        assert_eq!(history(&s)[0]["status"], "failed");
    }
    stub.script(json!({}));
    s.run(&["run"]).ok();
    found_not_created_again(&stub, &s);
}

#[test]
fn an_api_that_refuses_us_holds_back_only_the_api_reports() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"deny": true}));
    let mut s = setup(&stub, "");
    // A second provider whose reports go by mail (the file transport).
    let text = with_other_provider(&std::fs::read_to_string(s.path("config.toml")).unwrap());
    std::fs::write(
        s.path("config.toml"),
        text.replace("{repo}", repo().to_str().unwrap()),
    )
    .unwrap();
    attack(&s, &[THREE[0], ("81.2.69.143", "TCP", 22)]);
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert_eq!(
        s.outbox().len(),
        1,
        "the mail provider's report went out: {}",
        ran.stderr
    );
    // A later run: the API still refuses, new mail still goes.
    attack(&s, &[("67.43.156.7", "UDP", 53)]);
    s.now = "2026-01-26T09:00:00Z".into();
    let ran = s.run(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert_eq!(s.outbox().len(), 2, "{}", ran.stderr);
    // Once the API takes reports again, the waiting one goes out, once.
    stub.script(json!({}));
    s.run(&["run"]).ok();
    let rows = history(&s);
    let aws: Vec<&Value> = rows.iter().filter(|r| r["provider"] == "aws").collect();
    assert_eq!(aws.len(), 1);
    assert_eq!(aws[0]["status"], "sent");
    assert_eq!(s.outbox().len(), 2, "nothing sent twice by mail");
}

/// The config with the `aws` provider switched between mail and the API.
fn switch_to_mail(s: &Setup) {
    let text = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace(
            "delivery = \"aws-abuse-api\"\n",
            "to = [\"ec2-abuse@amazon.com\"]\n",
        );
    std::fs::write(s.path("config.toml"), text).unwrap();
}

#[test]
fn a_provider_switched_between_mail_and_the_api_loses_no_address() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    // API -> mail: a request stored for the API is not mailed; its address goes by mail.
    stub.script(json!({"create": {"0": {"status": 500, "body": {
        "__type": "InternalServerException", "message": "Internal failure"}}}}));
    let mut s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    assert_eq!(s.run(&["run"]).code, 75);
    switch_to_mail(&s);
    s.now = "2026-01-26T09:00:00Z".into();
    let ran = s.run(&["run"]);
    assert_eq!(
        ran.code, 1,
        "the stored request is refused for mail: {}",
        ran.stderr
    );
    assert!(s.outbox().is_empty(), "no JSON request mailed");
    s.now = "2026-01-26T10:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "the address went by mail");
    let text = std::fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(text.contains("3.5.140.2"));

    // Mail -> API: a mail report waiting to be resent gives its address to an API report.
    let stub2 = Stub::start(None).unwrap();
    let mut m = Setup::new(&standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\ntimeout_secs = 2",
    ));
    credentials_in_env(&mut m);
    attack(&m, &THREE[..1]);
    assert_eq!(m.run(&["run"]).code, 75, "nobody listens on port 9");
    let text = through_aws_api(
        &std::fs::read_to_string(m.path("config.toml")).unwrap(),
        &stub2.endpoint(),
        "timeout_secs = 20",
    );
    std::fs::write(m.path("config.toml"), text).unwrap();
    m.now = "2026-01-26T09:00:00Z".into();
    assert_eq!(
        m.run(&["run"]).code,
        1,
        "the mail report is refused for the API"
    );
    m.now = "2026-01-26T10:00:00Z".into();
    m.run(&["run"]).ok();
    let creates = stub2.creates();
    assert_eq!(creates.len(), 1, "the address went to the API");
    let rows = history(&m);
    assert!(
        rows.iter()
            .any(|r| r["status"] == "sent" && r["ips"] == json!(["3.5.140.2"])),
        "{rows:?}"
    );
}

/// A request stored for the API, refused at the send because its provider reports by mail
/// now, is refused by nobody at AWS: its address goes into the next mail report, and that
/// report shows the address's log lines, as the one replacing any other refusal does.
#[test]
fn a_request_refused_for_a_provider_now_on_mail_keeps_its_lines_for_the_mail() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    stub.script(json!({"create": {"0": {"status": 500, "body": {
        "__type": "InternalServerException", "message": "Internal failure"}}}}));
    let mut s = setup(&stub, "");
    attack(&s, &THREE[..1]);
    assert_eq!(s.run(&["run"]).code, 75);
    switch_to_mail(&s);
    s.now = "2026-01-26T09:00:00Z".into();
    assert_eq!(s.run(&["run"]).code, 1);
    s.now = "2026-01-26T10:00:00Z".into();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1, "the address went by mail");
    let text = std::fs::read_to_string(&s.outbox()[0]).unwrap();
    assert!(
        text.contains("SRC=3.5.140.2 "),
        "the mail shows the address's log lines: {text}"
    );
}

#[test]
fn sources_the_api_cannot_take_do_not_fill_a_runs_room() {
    let Some(stub) = Stub::start(None) else {
        return;
    };
    // A run makes 4 x max_messages_per_run parts, one address each for the API: four
    // ICMP-only sources sorted first must not keep the one it can take out, run after run.
    let s = setup(&stub, "");
    let config = std::fs::read_to_string(s.path("config.toml"))
        .unwrap()
        .replace("[mail]", "[mail]\nmax_messages_per_run = 1");
    std::fs::write(s.path("config.toml"), config).unwrap();
    let icmp: String = (1..=4)
        .map(|k| {
            format!(
                "Jan 25 10:05:0{k} web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.{k} DST=198.51.100.10 LEN=84 TOS=0x00 PREC=0x00 TTL=52 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ={k} \n"
            )
        })
        .collect();
    s.write(
        "messages",
        &(icmp + &drop_line("10:06:00", "18.206.107.24", "TCP", 22)),
    );
    s.run(&["run"]).ok();
    let creates = stub.creates();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0]["xarf"]["source_identifier"], "18.206.107.24");
}

/// One message a run, and the API down (its endpoint refuses connections): the provider
/// reported through it takes its turn when tried, as any desk does, and the provider
/// reported by mail goes in the runs between. Kept first in every run while its way was
/// down, it spent every run's one message, and the other desk's reports waited.
#[test]
fn a_desk_whose_way_is_down_takes_its_turn_and_no_more() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let config = through_aws_api(
        &with_other_provider(&standard_config("")),
        &endpoint,
        "timeout_secs = 5",
    )
    .replace("[mail]", "[mail]\nmax_messages_per_run = 1");
    let mut s = Setup::new(&config);
    credentials_in_env(&mut s);
    s.write("messages", "");
    for run in 1..=4u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + run);
        s.append(
            "messages",
            &[
                drop_line(
                    &format!("10:00:0{run}"),
                    &format!("3.5.140.{run}"),
                    "TCP",
                    22,
                ),
                drop_line(
                    &format!("10:00:1{run}"),
                    &format!("81.2.69.{run}"),
                    "TCP",
                    22,
                ),
            ]
            .concat(),
        );
        let out = s.run(&["run"]);
        assert!(matches!(out.code, 0 | 75), "run {run}: {}", out.stderr);
    }
    let other = s.outbox().len();
    assert!(other >= 2, "the desk whose way works, in 4 runs: {other}");
}
