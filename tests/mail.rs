//! Mail delivery through the binary to a real SMTP server on loopback: plain, STARTTLS with a
//! test CA, AUTH with a password file, implicit TLS; transient and permanent failures; a crash
//! between acceptance and recording; header injection; the sending budget; the golden message.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::smtp::{self, Security};
use common::*;
use mail_parser::{MessageParser, MimeHeaders};

const PASSWORD: &str = "correct horse battery staple";

fn smtp_config(port: u16, security: &str, extra_mail: &str) -> String {
    standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n\
             timeout_secs = 5\nca_file = \"{{repo}}/fixtures/tls/ca.pem\"\n{extra_mail}"
        ),
    )
}

fn attack_log() -> String {
    [
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        drop_line("10:00:02", "2600:1f18:4a3:6901::1", "TCP", 443),
        drop_line("10:00:03", "81.2.69.143", "TCP", 80),
    ]
    .concat()
}

const ATTACKERS: [&str; 3] = ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"];

/// Checks a delivered message header by header, and its body and attachments.
fn check_message(data: &[u8], stored_id: &str) {
    let msg = MessageParser::default()
        .parse(data)
        .expect("a parseable message");
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("abuse@example.org")
    );
    assert_eq!(
        msg.from().unwrap().first().unwrap().name(),
        Some("Abuse desk")
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("ec2-abuse@amazon.com")
    );
    assert_eq!(msg.to().unwrap().iter().count(), 1);
    assert_eq!(
        msg.subject(),
        Some(
            "Abuse report: UDP 53 probes, TCP 22 probes and TCP 443 probes from 3 AWS hosts to 198.51.100.10"
        )
    );
    assert_eq!(msg.date().unwrap().to_rfc3339(), "2026-01-26T08:00:00Z");
    assert_eq!(format!("<{}>", msg.message_id().unwrap()), stored_id);
    assert!(
        stored_id.ends_with("@example.org>"),
        "Message-ID on the sender's domain"
    );
    assert_eq!(
        msg.header("Auto-Submitted").unwrap().as_text(),
        Some("auto-generated")
    );
    assert!(
        msg.header_raw("User-Agent")
            .unwrap()
            .trim()
            .starts_with("abuse-mailer/")
    );
    assert!(msg.bcc().is_none());
    let body = msg.body_text(0).unwrap();
    for ip in ATTACKERS {
        assert!(body.contains(ip), "{ip} in the body");
    }
    assert!(!body.contains("81.2.69.143"));
    assert!(
        body.contains("SRC=34.223.47.190 DST=198.51.100.10"),
        "the excerpt"
    );
    let names: Vec<String> = msg
        .attachments()
        .map(|a| a.attachment_name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ips.csv", "excerpt.log", "evidence.log"]);
    // A ticket system shows 78 columns; only verbatim log lines may be wider.
    for line in body.lines() {
        assert!(
            line.chars().count() <= 78 || line.contains(" kernel: "),
            "too wide for a ticket: {line:?}"
        );
    }
    // Every accused address has its own lines as evidence.
    let evidence = msg
        .attachments()
        .nth(2)
        .unwrap()
        .text_contents()
        .unwrap()
        .replace("\r\n", "\n");
    for ip in ATTACKERS {
        let own: Vec<&str> = evidence
            .split("\n\n")
            .find(|block| block.starts_with(&format!("# {ip}:")))
            .unwrap_or_else(|| panic!("{ip} has no evidence:\n{evidence}"))
            .lines()
            .skip(1)
            .collect();
        assert!(
            !own.is_empty() && own.iter().all(|l| l.contains(&format!("SRC={ip} "))),
            "{ip}: {own:?}"
        );
    }
    let csv = msg
        .attachments()
        .next()
        .unwrap()
        .text_contents()
        .unwrap()
        .to_string();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ip,first_seen,last_seen,hits,protocols,dst_ports,dst_ips,src_ports,asn,as_org,range,region,service"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[1],
        "34.223.47.190,2026-01-25T10:00:01+00:00,2026-01-25T10:00:01+00:00,2,UDP,53,198.51.100.10,40000,,,34.208.0.0/12,us-west-2,EC2"
    );
    for (row, ip) in rows.iter().zip(ATTACKERS) {
        assert!(row.starts_with(&format!("{ip},")));
    }
    let excerpt = msg
        .attachments()
        .nth(1)
        .unwrap()
        .text_contents()
        .unwrap()
        .to_string();
    assert!(
        excerpt.lines().all(|l| l.contains("INPUT-DROP:")) && excerpt.lines().count() == 4,
        "{excerpt}"
    );
}

#[test]
fn plain_smtp_delivers_a_message_checked_header_by_header() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run(&["run"]).ok();
    assert!(out.stdout.contains("sent: 250"), "{}", out.stdout);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "abuse@example.org");
    assert_eq!(got[0].to, vec!["ec2-abuse@amazon.com".to_string()]);
    let h = history(&s);
    assert_eq!(h[0]["status"], "sent");
    check_message(&got[0].data, h[0]["message_id"].as_str().unwrap());
    // The ledger keeps exactly what went over the wire.
    let stored = s
        .run(&["show", h[0]["id"].as_str().unwrap()])
        .ok()
        .raw_stdout;
    let wire = MessageParser::default().parse(&got[0].data).unwrap();
    let kept = MessageParser::default().parse(&stored).unwrap();
    assert_eq!(wire.message_id(), kept.message_id());
    assert_eq!(wire.body_text(0), kept.body_text(0));
}

#[test]
fn starttls_with_auth_from_a_password_file_never_shows_the_password() {
    let server = smtp::start(Security::StartTls, Some(("abuse", PASSWORD)), 0);
    let s = Setup::new(&smtp_config(
        server.port,
        "starttls",
        "username = \"abuse\"\npassword_file = \"{dir}/smtp-password\"",
    ));
    s.write("smtp-password", &format!("{PASSWORD}\n"));
    fs::set_permissions(s.path("smtp-password"), fs::Permissions::from_mode(0o600)).unwrap();
    s.write("messages", &attack_log());
    let check = s.run(&["check", "--smtp"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert!(
        check.stdout.contains("STARTTLS, AUTH ok"),
        "{}",
        check.stdout
    );
    let out = s.run(&["-v", "run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].user.as_deref(),
        Some("abuse"),
        "authenticated before MAIL"
    );
    check_message(&got[0].data, history(&s)[0]["message_id"].as_str().unwrap());
    for text in [&out.stdout, &out.stderr, &check.stdout, &check.stderr] {
        assert!(!text.contains(PASSWORD));
    }
    for (path, bytes) in snapshot(&s.path("state")) {
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{}",
            path.display()
        );
    }
    assert!(!String::from_utf8_lossy(&got[0].data).contains(PASSWORD));
}

/// A run that logs in to a STARTTLS server with a wrong password, under the configuration
/// `config` makes of the SMTP one: refused, 78.
fn run_with_a_wrong_password(
    config: impl Fn(String) -> String,
) -> (common::smtp::MailServer, Setup, Ran) {
    let server = smtp::start(Security::StartTls, Some(("abuse", PASSWORD)), 0);
    let mut s = Setup::new(&config(smtp_config(
        server.port,
        "starttls",
        "username = \"abuse\"",
    )));
    s.env.push((
        "ABUSE_MAILER__MAIL__PASSWORD".into(),
        "not-the-password-42".into(),
    ));
    s.write("messages", &attack_log());
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    (server, s, out)
}

#[test]
fn wrong_password_is_a_config_error_and_the_report_waits_for_the_fix() {
    let (server, mut s, out) = run_with_a_wrong_password(|c| c);
    assert!(
        !out.stderr.contains("not-the-password-42") && !out.stdout.contains("not-the-password-42")
    );
    assert!(
        out.stderr.contains("535") && out.stderr.contains("mail.username"),
        "{}",
        out.stderr
    );
    assert!(server.received().is_empty());
    let h = history(&s);
    assert_eq!(
        h[0]["status"], "failed",
        "not rejected: the desk never saw it"
    );
    let message_id = h[0]["message_id"].as_str().unwrap().to_string();

    s.env.clear();
    s.env
        .push(("ABUSE_MAILER__MAIL__PASSWORD".into(), PASSWORD.into()));
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    check_message(&got[0].data, &message_id);
    assert_eq!(history(&s).len(), 1, "the same report, not a new one");
}

#[test]
fn implicit_tls_delivers() {
    let server = smtp::start(Security::ImplicitTls, Some(("abuse", PASSWORD)), 0);
    let mut s = Setup::new(&smtp_config(server.port, "tls", "username = \"abuse\""));
    s.env
        .push(("ABUSE_MAILER__MAIL__PASSWORD".into(), PASSWORD.into()));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user.as_deref(), Some("abuse"));
    check_message(&got[0].data, history(&s)[0]["message_id"].as_str().unwrap());
}

#[test]
fn tls_to_an_unknown_ca_is_a_config_error_and_sends_nothing() {
    let server = smtp::start(Security::StartTls, None, 0);
    let s = Setup::new(
        &smtp_config(server.port, "starttls", "")
            .replace("ca_file = \"{repo}/fixtures/tls/ca.pem\"\n", ""),
    );
    s.write("messages", &attack_log());
    let out = s.run(&["run"]);
    // Waiting does not make the certificate trusted: 78, so that the unit fails loudly.
    assert_eq!(out.code, 78, "{}", out.stderr);
    // In words, not only rustls's `UnknownIssuer`.
    assert!(
        out.stderr.contains(
            "signed by a CA this host does not trust: give that CA's certificate as mail.ca_file"
        ),
        "{}",
        out.stderr
    );
    assert!(server.received().is_empty());
    assert_eq!(history(&s)[0]["status"], "failed");
}

/// `mail.ca_file` that cannot be a certificate (a device, a FIFO): plain `check`, the one
/// README's set-up runs, names it as every run would. It said ok unless given `--smtp`.
#[test]
fn check_names_a_mail_ca_file_that_is_no_file_without_contacting_the_server() {
    for (ca, kind) in [
        ("/dev/zero", "a character device"),
        ("{dir}/ca.pem", "a FIFO"),
    ] {
        // No server listens: `check` without `--smtp` contacts none.
        let s = Setup::new(&smtp_config(9, "tls", "").replace(
            "ca_file = \"{repo}/fixtures/tls/ca.pem\"",
            &format!("ca_file = \"{ca}\""),
        ));
        if ca.starts_with("{dir}") {
            let made = std::process::Command::new("mkfifo")
                .arg(s.path("ca.pem"))
                .status()
                .unwrap();
            assert!(made.success());
        }
        s.write("messages", &attack_log());
        let out = s.run_bounded(&["check"]);
        assert_eq!(out.code, 78, "{kind}: {}", out.stdout);
        let line = (out.stdout.lines())
            .find(|l| l.starts_with("error") && l.contains("mail"))
            .unwrap_or_else(|| panic!("{kind}: {}", out.stdout));
        assert!(
            line.contains("mail.ca_file") && line.contains(kind),
            "{line}"
        );
    }
}

#[test]
fn server_down_exits_75_then_the_same_message_is_delivered() {
    let port = smtp::free_port();
    let s = Setup::new(&smtp_config(port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .trim()
            .lines()
            .last()
            .unwrap()
            .matches("abuse-mailer:")
            .count(),
        1
    );
    let h = history(&s);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "failed");
    assert!(h[0]["sent_at"].is_null());
    let message_id = h[0]["message_id"].as_str().unwrap().to_string();

    // Still down, and new lines arrive: they are stored, nothing new is queued.
    s.append(
        "messages",
        &drop_line("10:10:00", "18.206.107.24", "TCP", 80),
    );
    assert_eq!(s.run(&["run"]).code, 75);
    assert_eq!(
        history(&s).len(),
        1,
        "no new report while the old one waits"
    );

    let server = smtp::start(Security::Plain, None, port);
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 2, "the stored report first, then the new one");
    let first = MessageParser::default().parse(&got[0].data).unwrap();
    assert_eq!(format!("<{}>", first.message_id().unwrap()), message_id);
    check_message(&got[0].data, &message_id);
    let h = history(&s);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["status"], "sent");
    assert_eq!(h[1]["ips"], serde_json::json!(["18.206.107.24"]));
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 2, "nothing sent twice");
}

#[test]
fn rcpt_451_is_transient_and_550_is_rejected() {
    let server = smtp::start(Security::Plain, None, 0);
    let mut s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());

    *server.rcpt.lock().unwrap() = Some((451, "try again later".into()));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("451"), "{}", out.stderr);
    let h = history(&s);
    assert_eq!(h[0]["status"], "failed");
    let first_id = h[0]["message_id"].as_str().unwrap().to_string();

    *server.rcpt.lock().unwrap() = Some((550, "no such user here".into()));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("550") && out.stderr.contains("no such user here"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&s)[0]["status"], "rejected");
    assert!(server.received().is_empty());

    // The rejected report's IPs are still unreported: the next run makes a new report of them.
    *server.rcpt.lock().unwrap() = None;
    s.now = "2026-01-26T09:00:00Z".into();
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    let h = history(&s);
    assert_eq!(h.len(), 2);
    assert_eq!(h[1]["status"], "sent");
    assert_eq!(h[1]["ips"], serde_json::json!(ATTACKERS));
    assert_ne!(h[1]["message_id"].as_str().unwrap(), first_id);
}

/// Under `-q` (as cron runs it) a refusal is said once, on the run's last line, with the
/// report's id: it was said twice, the report's own line and the run's, and cron mailed both.
#[test]
fn a_refusal_is_said_once_under_q() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    *server.rcpt.lock().unwrap() = Some((550, "no such user here".into()));
    let out = s.run(&["-q", "run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let said: Vec<&str> = (out.stderr.lines())
        .filter(|l| l.contains("no such user here"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.stderr);
    let id = history(&s)[0]["id"].as_str().unwrap().to_string();
    assert!(
        said[0].contains(&format!("report {id} rejected")),
        "{}",
        said[0]
    );
}

#[test]
fn crash_after_acceptance_resends_the_same_message_and_never_splits_an_ip() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    let h = history(&s);
    let (id, message_id) = (
        h[0]["id"].as_str().unwrap().to_string(),
        h[0]["message_id"].as_str().unwrap().to_string(),
    );
    // The server accepted, then the process died before it could record that: the row is
    // exactly as it was written before the transport was called.
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute(
        "UPDATE report SET status = 'sending', sent_at = NULL, server_reply = NULL WHERE id = ?1",
        [&id],
    )
    .unwrap();
    drop(db);

    s.append(
        "messages",
        &[
            drop_line("10:20:00", "3.5.140.2", "TCP", 22),
            drop_line("10:20:01", "18.206.107.24", "TCP", 443),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 3, "resent once, then the new report");
    let ids: Vec<String> = got
        .iter()
        .map(|d| {
            format!(
                "<{}>",
                MessageParser::default()
                    .parse(&d.data)
                    .unwrap()
                    .message_id()
                    .unwrap()
            )
        })
        .collect();
    assert_eq!(ids[0], message_id);
    assert_eq!(
        ids[1], message_id,
        "at least once: the same Message-ID, so the desk can drop the copy"
    );
    let reports = s.reported();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1], vec!["18.206.107.24".to_string()]);
    let mut seen = BTreeSet::new();
    for ip in reports.iter().flatten() {
        assert!(seen.insert(ip.clone()), "{ip} is in two reports");
    }
}

#[test]
fn a_log_line_cannot_inject_a_header() {
    let server = smtp::start(Security::Plain, None, 0);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    let evil = drop_line("10:00:00", "3.5.140.2", "TCP", 22)
        .replace(" \n", " \r\nBcc: someone@example.org\rX-Evil: 1\n");
    s.write(
        "messages",
        &format!("{evil}{}", drop_line("10:00:01", "3.5.140.2", "TCP", 22)),
    );
    let evil_host = "Jan 25 10:00:02 web1\u{1b}]0;x kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.3 DST=198.51.100.10 PROTO=TCP SPT=1 DPT=22\n";
    s.append("messages", evil_host);
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].to,
        vec!["ec2-abuse@amazon.com".to_string()],
        "no extra envelope recipient"
    );
    let msg = MessageParser::default().parse(&got[0].data).unwrap();
    assert!(msg.bcc().is_none());
    assert!(msg.header("X-Evil").is_none());
    let raw = String::from_utf8_lossy(&got[0].data);
    assert!(
        !raw.lines()
            .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil:")),
        "{raw}"
    );
    assert!(!raw.contains('\u{1b}'), "control characters are stripped");
}

/// A refused login holds back the reports after the first: the run says they wait for the
/// settings to be fixed, not for the sending budget.
#[test]
fn reports_held_back_by_a_refused_login_are_not_blamed_on_the_budget() {
    let (_server, _s, out) = run_with_a_wrong_password(|c| with_other_provider(&c));
    assert!(
        out.stderr
            .contains("report(s) wait for the next run (until the settings named below are fixed)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("max_messages_per_run"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_sending_budget_holds_the_rest_for_the_next_run() {
    let server = smtp::start(Security::Plain, None, 0);
    let config = with_other_provider(&smtp_config(
        server.port,
        "none",
        "max_messages_per_run = 1",
    ));
    let s = Setup::new(&config);
    s.write("messages", &attack_log());
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr
            .contains("1 report(s) wait for the next run (max_messages_per_run = 1)"),
        "{}",
        out.stderr
    );
    assert_eq!(server.received().len(), 1);
    assert_eq!(
        server.received()[0].to,
        vec!["ec2-abuse@amazon.com".to_string()]
    );
    s.run(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].to, vec!["abuse@other.example".to_string()]);
    let reports = s.reported();
    assert_eq!(reports[1], vec!["81.2.69.143".to_string()]);
    // Observed in the first run, reported in the second: its stored ports and targets are there.
    let held = String::from_utf8_lossy(&got[1].data).to_string();
    assert!(held.contains("\n81.2.69.143,2026-01-25T10:00:03+00:00,2026-01-25T10:00:03+00:00,1,TCP,80,198.51.100.10,40000,"), "{held}");
    s.run(&["run"]).ok();
    assert_eq!(server.received().len(), 2);
}

#[test]
fn check_smtp_reports_an_unreachable_server() {
    let s = Setup::new(&smtp_config(smtp::free_port(), "none", ""));
    s.write("messages", &attack_log());
    let out = s.run(&["check", "--smtp"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("error") && l.contains("mail")),
        "{}",
        out.stdout
    );
}

#[test]
fn sendmail_transport_pipes_the_message_to_sendmail_t_i() {
    let s = Setup::new(&standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"sendmail\"\nsendmail_path = \"{dir}/fake-sendmail\"",
    ));
    s.write_program(
        "fake-sendmail",
        &format!(
            "#!/bin/sh\necho \"$@\" > {0}/args\ncat > {0}/message\n",
            s.dir.path().display()
        ),
    );
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    assert_eq!(
        fs::read_to_string(s.path("args")).unwrap().trim(),
        "-t -i -f abuse@example.org"
    );
    let message = fs::read(s.path("message")).unwrap();
    assert!(
        !message.contains(&b'\r'),
        "Unix line ends for the local MTA"
    );
    let msg = MessageParser::default().parse(&message).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("ec2-abuse@amazon.com")
    );
    assert_eq!(history(&s)[0]["status"], "sent");
}

#[test]
fn file_transport_message_matches_the_golden_eml() {
    let s = Setup::new(
        &standard_config("redact = [\"MAC\"]")
            .replace("{dir}/messages", "{repo}/fixtures/logs/messages"),
    );
    s.run(&["run"]).ok();
    let files = s.outbox();
    assert_eq!(files.len(), 1);
    let golden = repo().join("fixtures/expected/example-report.eml");
    let bytes = fs::read(&files[0]).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &bytes).unwrap();
    }
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        fs::read_to_string(&golden).unwrap(),
        "set UPDATE_GOLDEN=1 to accept a deliberate change"
    );
}

/// The files the body says are attached, from its "Attached for your tools: …" sentence (the
/// body wraps it over lines). A name's own dot is not followed by a space: the sentence's is.
fn named_in_body(body: &str) -> Vec<String> {
    let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some((_, after)) = text.split_once("Attached for your tools: ") else {
        return Vec::new();
    };
    let list = after.split_once(". ").map_or(after, |(list, _)| list);
    list.split(", ").map(str::to_string).collect()
}

/// For every choice of `attach_csv` and `attach_excerpt`, the message attaches exactly the
/// files its body names, in the order named: one rule decides both.
#[test]
fn the_body_names_exactly_the_files_the_message_attaches() {
    for (csv, excerpt) in [(true, true), (true, false), (false, true), (false, false)] {
        let s = Setup::new(&standard_config(&format!(
            "attach_csv = {csv}\nattach_excerpt = {excerpt}"
        )));
        s.write("messages", &attack_log());
        s.run(&["run"]).ok();
        let sent = s.outbox();
        assert_eq!(sent.len(), 1, "csv {csv}, excerpt {excerpt}");
        let data = fs::read(&sent[0]).unwrap();
        let msg = MessageParser::default().parse(&data[..]).unwrap();
        let attached: Vec<String> = msg
            .attachments()
            .map(|a| a.attachment_name().unwrap().to_string())
            .collect();
        let mut wanted = Vec::new();
        if csv {
            wanted.push("ips.csv");
        }
        if excerpt {
            wanted.extend(["excerpt.log", "evidence.log"]);
        }
        assert_eq!(attached, wanted, "csv {csv}, excerpt {excerpt}");
        let body = msg.body_text(0).unwrap();
        assert_eq!(
            named_in_body(&body),
            attached,
            "csv {csv}, excerpt {excerpt}: {body}"
        );
    }
}

/// With `xarf = true` each address goes in a message of its own, which attaches the XARF
/// document alone, whatever `attach_csv` and `attach_excerpt` say: its body names that file,
/// and no other.
#[test]
fn an_xarf_message_names_only_the_document_it_attaches() {
    for (csv, excerpt) in [(true, true), (false, false)] {
        let s = Setup::new(&standard_config(&format!(
            "xarf = true\nattach_csv = {csv}\nattach_excerpt = {excerpt}"
        )));
        s.write("messages", &attack_log());
        s.run(&["run"]).ok();
        let sent = s.outbox();
        assert_eq!(sent.len(), ATTACKERS.len(), "csv {csv}, excerpt {excerpt}");
        for path in &sent {
            let data = fs::read(path).unwrap();
            let msg = MessageParser::default().parse(&data[..]).unwrap();
            let attached: Vec<String> = msg
                .attachments()
                .filter_map(|a| a.attachment_name().map(str::to_string))
                .collect();
            assert_eq!(attached, ["xarf.json"], "csv {csv}, excerpt {excerpt}");
            let body = msg.body_text(0).unwrap();
            assert_eq!(named_in_body(&body), attached, "{body}");
        }
    }
}

/// What the operator configures reaches the headers and the body: a subject template that
/// lists a hundred IPv6 addresses (one word without a space) after a word that looks
/// encoded, a `from` whose display name is one long word, thirty `cc` addresses, and a body
/// template saved with lone CRs and a NUL. Every header line is within 78 columns and every
/// line within 998 (lettre left them on one line, up to thousands of bytes, which a strict
/// server refuses), CRLF ends every line, and a reader reads what was rendered.
#[test]
fn every_line_of_a_message_fits_whatever_the_templates_and_addresses() {
    let name = "X".repeat(300);
    let cc: Vec<String> = (0..30)
        .map(|i| format!("abuse-archive-{i:02}@reports.example.org"))
        .collect();
    let s = Setup::new(
        &standard_config(&format!(
            "cc = {cc:?}\ntemplates_dir = \"{{dir}}/templates\""
        ))
        .replace("Abuse desk <", &format!("{name} <")),
    );
    fs::create_dir_all(s.path("templates")).unwrap();
    s.write(
        "templates/subject.txt",
        "=?utf-8?q?Totally_legit?= {% for a in ips %}{{ a.ip }}{% if not loop.last %},{% endif %}{% endfor %}",
    );
    s.write("templates/body.txt", "Hello,\rthis is\r\0a report\r\n");
    let ips: Vec<String> = (1..=100)
        .map(|i| format!("2600:1f18:4a3:6901::{i:x}"))
        .collect();
    let log: String = (ips.iter().enumerate())
        .map(|(i, ip)| drop_line(&format!("10:{:02}:{:02}", i / 60, i % 60), ip, "TCP", 22))
        .collect();
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let raw = fs::read(&sent[0]).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    for line in head.split("\r\n") {
        assert!(line.len() <= 78, "{} columns: {line}", line.len());
    }
    for line in text.split("\r\n") {
        assert!(
            line.len() <= 998 && !line.contains(['\r', '\n', '\0']),
            "{line:?}"
        );
    }
    let message = MessageParser::default().parse(&raw[..]).unwrap();
    let mut sorted = ips.clone();
    sorted.sort_by_key(|ip| ip.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(
        message.subject().unwrap(),
        format!("=?utf-8?q?Totally_legit?= {}", sorted.join(","))
    );
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some(name.as_str()));
    assert_eq!(from.address(), Some("abuse@example.org"));
    let copied: Vec<&str> = (message.cc().unwrap().iter())
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(copied, cc);
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    assert_eq!(body, "Hello,\nthis is\na report\n");
}

/// A `from` display name longer than XARF's schema takes for an organisation (200
/// characters): the document's reporter and sender name it cut to 200, and the document is
/// valid (it named it whole, and a desk that validates XARF refused it). One of 200 is whole.
#[test]
fn a_long_display_name_is_cut_to_what_xarf_takes() {
    let long = "Example Hosting Operations Centre ".repeat(8);
    let just = "X".repeat(200);
    for name in [long.trim(), just.as_str()] {
        a_display_name_in_xarf(name);
    }
}

/// Runs with `from` named `name` and `xarf = true`: each document's reporter and sender
/// are 200 characters at most, `name` itself when it is no longer, and the document valid.
fn a_display_name_in_xarf(name: &str) {
    let head: String = name.chars().take(199).collect();
    let s =
        Setup::new(&standard_config("xarf = true").replace("Abuse desk <", &format!("{name} <")));
    s.write("messages", &attack_log());
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert!(!sent.is_empty());
    for path in sent {
        let data = fs::read(path).unwrap();
        let msg = MessageParser::default().parse(&data[..]).unwrap();
        let document = (msg.attachments())
            .find(|a| a.attachment_name() == Some("xarf.json"))
            .and_then(|a| a.text_contents().map(str::to_string))
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&document).unwrap();
        for party in ["reporter", "sender"] {
            let org = doc[party]["org"].as_str().unwrap();
            match name.chars().count() > 200 {
                true => assert_eq!(org, format!("{head}…")),
                false => assert_eq!(org, name),
            }
        }
        if let Some(errors) = xarf_errors(&document) {
            assert!(errors.is_empty(), "{errors:?}");
        }
    }
}
