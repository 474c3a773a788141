//! Mail transport faults, each through the binary against a loopback server in a fault mode
//! (tests/common/faulty_smtp.rs) or a broken sendmail: the exit status, what the ledger says,
//! and that a later run against a healthy server delivers exactly once. Deadlines here are
//! generous bounds (a run must end within a minute), never speed checks.

mod common;
#[path = "common/faulty_smtp.rs"]
mod faulty_smtp;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use abuse_mailer::send::{MESSAGES_PER_RUN, TIMEOUTS_PER_MESSAGE};
use common::smtp::{self, Security};
use common::*;
use faulty_smtp::{FaultyServer, Mode};

/// A config for SMTP to 127.0.0.1:`port` with `timeout_secs = 2`; `extra` goes into `[mail]`.
fn smtp_config(port: u16, security: &str, extra: &str) -> String {
    standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!(
            "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             security = \"{security}\"\ntimeout_secs = 2\n\
             ca_file = \"{{repo}}/fixtures/tls/ca.pem\"\n{extra}"
        ),
    )
}

fn sendmail_config(extra: &str) -> String {
    standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        &format!("transport = \"sendmail\"\nsendmail_path = \"{{dir}}/sendmail\"\n{extra}"),
    )
}

fn attack_log() -> String {
    [
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        drop_line("10:00:02", "2600:1f18:4a3:6901::1", "TCP", 443),
    ]
    .concat()
}

/// The Message-ID header of a message, as stored (`<...>`).
fn message_id(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID: ")
                .or_else(|| l.strip_prefix("Message-Id: "))
        })
        .unwrap_or_else(|| panic!("no Message-ID in {}", String::from_utf8_lossy(data)))
        .trim()
        .to_string()
}

/// The one stored report is `failed`, never marked sent; returns its Message-ID.
fn one_failed_report(s: &Setup) -> String {
    let h = history(s);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["status"], "failed", "{h:?}");
    assert!(h[0]["sent_at"].is_null());
    h[0]["message_id"].as_str().unwrap().to_string()
}

/// After the fault: the next run delivers the stored report once, and a further run nothing.
fn healthy_run_delivers_once(s: &Setup, accepted: impl Fn() -> Vec<Vec<u8>>, id: &str) {
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = accepted();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(message_id(&got[0]), id, "the stored message, not a new one");
    let h = history(s);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "sent");
    s.run_bounded(&["run"]).ok();
    assert_eq!(accepted().len(), 1, "nothing sent twice");
}

#[test]
fn dripping_continuation_lines_end_the_run_at_the_message_deadline() {
    let server = FaultyServer::start(Mode::Drip);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("will retry"), "{}", out.stderr);
    assert!(server.received().is_empty());
    let id = one_failed_report(&s);
    // `check --smtp` has the same deadline: it ends, and does not say ok.
    let check = s.run_bounded(&["check", "--smtp"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(!check.stdout.contains("ok      mail"), "{}", check.stdout);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

#[test]
fn hang_after_data_is_given_up_and_the_same_message_goes_out_once_later() {
    let server = FaultyServer::start(Mode::HangAfterData);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert_eq!(server.received().len(), 1, "the body went out");
    assert!(server.accepted().is_empty());
    // Not confirmed, so not marked sent: it goes out again with the same Message-ID.
    let id = one_failed_report(&s);
    assert_eq!(message_id(&server.received()[0]), id);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

/// A relay whose content filter answers the body after longer than a read may wait, and a
/// whole dialogue may last: the reply to a body that went out is waited for, as RFC 5321
/// asks, so the message is sent once and marked so, not given up and sent again next run.
#[test]
fn a_slow_reply_to_the_body_is_waited_for_and_the_message_goes_out_once() {
    let server = FaultyServer::start(Mode::SlowBodyReply);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.accepted().len(), 1);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.received().len(), 1, "sent once, never again");
    let history = s.run(&["history", "--json"]).stdout;
    assert!(history.contains("\"status\": \"sent\""), "{history}");
}

/// A relay that takes the body but answers it in bytes that are not UTF-8, which the client
/// cannot read: the message may be the desk's. It goes out once more on the next run, and
/// after that is taken as delivered, with a warning: never sent on every run.
#[test]
fn a_body_answered_in_unreadable_bytes_goes_out_twice_at_most() {
    let server = FaultyServer::start(Mode::UnreadableBodyReply);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    first_try_unconfirmed(&s);
    sent_again_once_then_taken_as_delivered(&s, || server.received());
}

/// A relay that takes the body and answers it with text that is no SMTP reply (a banner,
/// a code of 999, a reply whose lines carry two codes): it was a failure to try again, so
/// every run sent the message once more, for ever. It goes out once more, then is taken as
/// delivered, as a reply in unreadable bytes is.
#[test]
fn a_body_answered_with_no_smtp_reply_goes_out_twice_at_most() {
    let server = FaultyServer::start(Mode::NoSmtpReplyToBody);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = first_try_unconfirmed(&s);
    assert!(
        out.stderr.contains("a reply this client cannot read"),
        "{}",
        out.stderr
    );
    sent_again_once_then_taken_as_delivered(&s, || server.received());
}

/// A body answered with a bare `250` (no text): the client cannot read it, and it is a
/// reply that cannot be read, as above: sent once more, then taken as delivered, the
/// warning naming a bare code as one such reply.
#[test]
fn a_body_answered_with_a_bare_code_goes_out_twice_at_most() {
    let server = FaultyServer::start(Mode::BareOkToBody);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = first_try_unconfirmed(&s);
    assert!(out.stderr.contains("`250` alone"), "{}", out.stderr);
    sent_again_once_then_taken_as_delivered(&s, || server.received());
}

/// A server that answers the body with 354 (one reply out of step, whose answer to the body
/// is still to come, and may be a refusal) has not taken the message: it was recorded sent,
/// with the 354 as the server's reply, and its addresses never reported again.
#[test]
fn a_354_to_the_body_is_not_taken_for_acceptance() {
    let server = FaultyServer::start(Mode::GoAheadToBody);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = first_try_unconfirmed(&s);
    assert!(out.stderr.contains("354"), "{}", out.stderr);
    let history = s.run(&["history", "--json"]).stdout;
    assert!(!history.contains("\"status\": \"sent\""), "{history}");
    server.set_mode(Mode::Healthy);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.accepted().len(),
        1,
        "taken once, by the healthy server"
    );
}

/// A server that answers DATA with 250 rather than 354 is out of step: the body is not
/// sent (the server's next reply would be taken for its answer), and the message waits.
#[test]
fn a_data_not_answered_with_354_sends_no_body() {
    let server = FaultyServer::start(Mode::OkToData);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("not 354"), "{}", out.stderr);
    assert!(server.received().is_empty(), "no body went out");
    let id = one_failed_report(&s);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

/// A relay whose content filter took 17 s over the first part: the run's time for delivery
/// has no room for the second part and the wait for its reply. That part was counted as
/// tried and recorded failed (75, "not delivered", though no server saw it), and went out
/// on the next day's run with the Date of the day it was made. It waits untried, as parts
/// past the budget do (exit 0), and goes out dated the day it is sent.
#[test]
fn a_part_the_runs_time_has_no_room_for_waits_untried() {
    let server = FaultyServer::start(Mode::SlowFirstBodyReply);
    let mut s = Setup::new(
        &smtp_config(server.port, "none", "")
            .replace("timeout_secs = 2", "timeout_secs = 1")
            .replace("min_hits = 1", "min_hits = 1\nmax_ips_per_message = 1"),
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
        ]
        .concat(),
    );
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("1 report(s) wait for the next run (this run's time for delivery is spent)"),
        "{}",
        first.stderr
    );
    assert_eq!(server.accepted().len(), 1);
    let history = s.run(&["history", "--json"]).ok().json();
    let waiting: Vec<_> = (history.as_array().unwrap().iter())
        .filter(|r| r["status"] != "sent")
        .collect();
    assert_eq!(waiting.len(), 1, "{history}");
    assert!(waiting[0]["sent_at"].is_null());
    s.now = "2026-01-27T12:00:00Z".into();
    let next = s.run_bounded(&["run"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 2);
    let text = String::from_utf8_lossy(&accepted[1]);
    assert!(text.contains("Date: Tue, 27 Jan 2026 12:00:00"), "{text}");
}

/// A sendmail whose exit status is no sysexits one (ssmtp's 1, for a mail hub down or
/// misnamed), or says "later" of what may never pass (Postfix's sendmail exits 75 for a queue
/// it cannot write, and for a user not allowed to submit): tried again (75) while the report is young,
/// as a failure that may pass; once the report has waited a day, a setting to fix (78), the
/// report still kept. It was 75 on every run for ever, which the shipped unit counts as
/// success, and the report never went.
#[test]
fn a_sendmail_status_that_is_no_sysexits_one_waits_a_day_then_is_a_setting() {
    for (code, said, named) in [
        (
            1,
            "ssmtp: Cannot open mailhub:25",
            "exited 1, which is no sysexits status",
        ),
        (
            75,
            "sendmail: fatal: abuse@example.org(0): queue file write error",
            "exited 75: sendmail: fatal",
        ),
    ] {
        let mut s = Setup::new(&sendmail_config(""));
        s.write("messages", &attack_log());
        s.write_program(
            "sendmail",
            &format!("#!/bin/sh\ncat >/dev/null\necho '{said}' >&2\nexit {code}\n"),
        );
        let first = s.run_bounded(&["run"]);
        assert_eq!(first.code, 75, "{}", first.stderr);
        assert!(first.stderr.contains(said), "{}", first.stderr);
        s.now = "2026-01-27T09:00:00Z".into();
        let later = s.run_bounded(&["run"]);
        assert_eq!(later.code, 78, "{}", later.stderr);
        assert!(
            later.stderr.contains(named)
                && later.stderr.contains("mail.sendmail_path")
                && later.stderr.contains("it has failed so since"),
            "{}",
            later.stderr
        );
        healthy_sendmail(&s);
        s.run_bounded(&["run"]).ok();
        assert_eq!(history(&s)[0]["status"], "sent");
    }
}

/// OpenSMTPD's sendmail (`smtpctl`, which Debian links `/usr/sbin/sendmail` to) with `smtpd`
/// not running keeps the message in its offline queue, which `smtpd` sends once it starts,
/// and exits 75. Taken as "later", the report was queued again on every run, and the desk got
/// every copy. The stand-in does what `smtpctl`'s offline enqueue does: the message kept in a
/// folder, nothing said, 75. The same program under another name is any sendmail's 75.
#[test]
fn opensmtpd_keeping_a_report_offline_is_not_asked_to_again() {
    let mut s = Setup::new(&sendmail_config(""));
    s.write("messages", &attack_log());
    let offline = s.dir.path().join("offline");
    let enqueue = format!(
        "#!/bin/sh\nmkdir -p {0}\ncat > {0}/$$.msg\nexit 75\n",
        offline.display()
    );
    s.write_program("smtpctl", &enqueue);
    std::os::unix::fs::symlink(s.path("smtpctl"), s.path("sendmail")).unwrap();
    let kept = || fs::read_dir(&offline).map_or(0, |d| d.count());
    let first = s.run_bounded(&["-q", "run"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("offline queue") && first.stderr.contains("smtpd is not running"),
        "{}",
        first.stderr
    );
    assert_eq!(kept(), 1);
    assert_eq!(history(&s)[0]["status"], "sent");
    s.now = "2026-01-26T12:00:00Z".into();
    s.run_bounded(&["run"]).ok();
    assert_eq!(kept(), 1, "the report was queued again");
    // Any other sendmail's 75 is "later": the report waits.
    let other = Setup::new(&sendmail_config(""));
    other.write("messages", &attack_log());
    other.write_program("sendmail", &enqueue);
    let ran = other.run_bounded(&["run"]);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert_eq!(history(&other)[0]["status"], "failed");
}

/// ssmtp refusing the operator's own `cc` mailbox (it exits 1 for everything, naming the
/// recipient): a setting to fix (78), the report kept, as over SMTP. Read as the desk's
/// refusal, the report was refused for good, and a discovered desk shut out.
#[test]
fn a_sendmail_refusing_the_operators_own_cc_is_a_setting() {
    let s = Setup::new(
        &sendmail_config("").replace("min_hits = 1", "min_hits = 1\ncc = [\"noc@example.org\"]"),
    );
    s.write("messages", &attack_log());
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat >/dev/null\necho 'sendmail: RCPT TO:<noc@example.org> (550 5.1.1 no such user)' >&2\nexit 1\n",
    );
    let ran = s.run_bounded(&["run"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(ran.stderr.contains("report.cc"), "{}", ran.stderr);
    assert_eq!(history(&s)[0]["status"], "failed");
}

/// The day a failure that may pass or not is tried again is counted from its first time, not
/// from when the report was made: a report that waited days for its turn (a sendmail killed,
/// a backlog) was a setting to fix (78) at its first "later".
#[test]
fn a_sendmails_later_waits_a_day_from_its_first_time() {
    const KILLED: &str = "#!/bin/sh\ncat >/dev/null\nkill -9 $$\n";
    const LATER: &str = "#!/bin/sh\ncat >/dev/null\necho 'queue file write error' >&2\nexit 75\n";
    let mut s = Setup::new(&sendmail_config(""));
    s.write("messages", &attack_log());
    // A run at `when`, with `sendmail` as the program it hands reports to.
    let mut run_at = |when: &str, sendmail: &str| {
        s.write_program("sendmail", sendmail);
        s.now = when.into();
        s.run_bounded(&["run"])
    };
    assert_eq!(run_at("2026-01-26T08:00:00Z", KILLED).code, 75);
    assert_eq!(run_at("2026-01-29T08:00:00Z", LATER).code, 75);
    assert_eq!(run_at("2026-01-29T20:00:00Z", LATER).code, 75);
    // A setting to look at (78), failing so since `since`.
    let failing_since = |ran: Ran, since: &str| {
        assert_eq!(ran.code, 78, "{}", ran.stderr);
        let said = format!("it has failed so since {since}");
        assert!(ran.stderr.contains(&said), "{}", ran.stderr);
    };
    failing_since(
        run_at("2026-01-30T09:00:00Z", LATER),
        "2026-01-29T08:00:00Z",
    );
    // Another outcome between (sendmail killed) ends the run of such failures: the next
    // "later" is a first one again.
    assert_eq!(run_at("2026-01-30T10:00:00Z", KILLED).code, 75);
    assert_eq!(run_at("2026-01-30T11:00:00Z", LATER).code, 75);
    // One stored by a clock sixty days ahead counts from when the clock is right again, not
    // from sixty days on.
    run_at("2026-01-30T11:30:00Z", KILLED);
    assert_eq!(run_at("2026-03-31T11:00:00Z", LATER).code, 75);
    assert_eq!(run_at("2026-01-30T12:00:00Z", LATER).code, 75);
    failing_since(
        run_at("2026-01-31T13:00:00Z", LATER),
        "2026-01-30T12:00:00Z",
    );
}

/// Errors that are no reply of a server's name the server: "Connection refused", "response
/// error: incomplete response" said neither which server nor that it had closed the
/// connection. A `mail.host` that does not exist is a setting to fix (78), not a failure
/// to try again on every run (75), which the unit counts as success.
#[test]
fn mail_errors_name_the_server_and_a_host_that_does_not_exist_is_a_setting() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Setup::new(&smtp_config(closed, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("127.0.0.1:{closed}: Connection error")),
        "{}",
        out.stderr
    );
    // Under -q, the reason once, in the run's last line (each report's line said it too:
    // cron mailed every failure twice).
    let quiet = s.run_bounded(&["-q", "run"]);
    assert_eq!(quiet.code, 75, "{}", quiet.stderr);
    assert_eq!(
        quiet.stderr.matches("Connection refused").count(),
        1,
        "{}",
        quiet.stderr
    );
    let server = FaultyServer::start(Mode::CloseBeforeEndOfData);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{} ", server.port)),
        "{}",
        out.stderr
    );
    let s = Setup::new(
        &smtp_config(closed, "none", "")
            .replace("host = \"127.0.0.1\"", "host = \"no-such-host.invalid\""),
    );
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    // A resolver that cannot be reached says "try again", which waiting may mend.
    if out.stderr.contains("Temporary failure in name resolution") {
        assert_eq!(out.code, 75, "{}", out.stderr);
        return;
    }
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("mail.host no-such-host.invalid: no such host"),
        "{}",
        out.stderr
    );
}

/// A run held still (SIGSTOP: a suspended machine, a frozen cgroup) from the moment its
/// body reached the server until past the wait for the reply, which the server gave half a
/// second after the body: the reply waiting in the socket is read, and the report is sent,
/// once. It was given up at the deadline before the dialogue's thread read it, and sent
/// again by the next run.
#[test]
fn a_reply_waiting_unread_after_the_process_was_held_still_counts() {
    let server = FaultyServer::start(Mode::HalfSecondBodyReply);
    let s = Setup::new(
        &smtp_config(server.port, "none", "").replace("timeout_secs = 2", "timeout_secs = 1"),
    );
    s.write("messages", &attack_log());
    let child = s
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let started = std::time::Instant::now();
    while server.received().is_empty() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: signals to the child this test started, by its process id.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(server.received().len(), 1);
    // Past the wait for the body's reply at `timeout_secs = 1` (4 s and 20 s).
    std::thread::sleep(Duration::from_secs(26));
    assert_eq!(
        server.accepted().len(),
        1,
        "the server answered while it was held"
    );
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = Ran::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    s.run_bounded(&["run"]).ok();
    assert_eq!(server.received().len(), 1, "sent once");
    let history = s.run(&["history", "--json"]).stdout;
    assert!(history.contains("\"status\": \"sent\""), "{history}");
}

/// A first run whose body went out without a reply that could be read: 75, said to be
/// sent once more. Its output, for more to be asked of it.
fn first_try_unconfirmed(s: &Setup) -> Ran {
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains("sent once more on the next run"),
        "{}",
        out.stderr
    );
    out
}

/// After a first try whose body went out without a reply that could be read: the next run
/// sends it once more and takes it as delivered, no later run sends it again, and `history`
/// says it was not confirmed. `received`: the bodies the server read to their end.
fn sent_again_once_then_taken_as_delivered(s: &Setup, received: impl Fn() -> Vec<Vec<u8>>) {
    let id = one_failed_report(s);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("taken as delivered"), "{}", out.stderr);
    for _ in 0..2 {
        s.run_bounded(&["run"]).ok();
    }
    let received = received();
    assert_eq!(received.len(), 2, "the body went out twice, never more");
    assert!(received.iter().all(|m| message_id(m) == id));
    let history = s.run(&["history", "--json"]).stdout;
    assert!(history.contains("\"status\": \"sent\""), "{history}");
    let shown = s.run(&["history"]).stdout;
    assert!(shown.contains("not confirmed"), "{shown}");
}

/// A server that greets in bytes that are not UTF-8: no message can go through it, and
/// waiting does not change that. A configuration error (78) that says so, nothing sent.
#[test]
fn a_greeting_in_unreadable_bytes_is_a_configuration_error() {
    let server = FaultyServer::start(Mode::Latin1Greeting);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("not UTF-8"), "{}", out.stderr);
    assert!(server.received().is_empty());
}

/// A server whose replies are bare codes (`220`, no text: RFC 5321 allows it, and the client
/// cannot read it): every run ended 75 ("later", which waiting never mends, and which
/// systemd does not show as a failure), saying only `response error: error Tag at:`. It is
/// a configuration error that says what the server sent; nothing is sent, nothing lost.
#[test]
fn a_server_answering_with_bare_codes_is_a_configuration_error_said_plainly() {
    let server = FaultyServer::start(Mode::BareGreeting);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);
    assert!(out.stderr.contains("no text after it"), "{}", out.stderr);
    assert!(server.received().is_empty());
    let h = history(&s);
    assert_eq!(h.len(), 1);
    assert_ne!(h[0]["status"], "sent");
}

/// Of a desk's several addresses, one is refused at RCPT: the refusal names it, so that the
/// operator knows which one to fix.
#[test]
fn a_refused_recipient_is_named() {
    let server = FaultyServer::start(Mode::RefuseRecipient);
    let config = smtp_config(server.port, "none", "").replace(
        "to = [\"ec2-abuse@amazon.com\"]",
        "to = [\"ec2-abuse@amazon.com\", \"refused@example.net\"]",
    );
    assert!(config.contains("refused@example.net"));
    let s = Setup::new(&config);
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("recipient refused@example.net: permanent error (550)"),
        "{}",
        out.stderr
    );
}

/// The same over TLS, the server dropping the connection without TLS's close_notify, as
/// most servers that fall over do: sent twice at most, not once a run for ever.
#[test]
fn a_tls_server_gone_after_the_body_without_close_notify_gets_it_twice_at_most() {
    let server = smtp::start(Security::ImplicitTls, None, 0);
    server
        .drop_after_body
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let s = Setup::new(&smtp_config(server.port, "tls", ""));
    s.write("messages", &attack_log());
    first_try_unconfirmed(&s);
    sent_again_once_then_taken_as_delivered(&s, || {
        server.received().into_iter().map(|d| d.data).collect()
    });
}

/// An address with other letters than ASCII before its `@`, in the envelope (`from`) or
/// only in a header (`reply_to`), through a relay that does not offer SMTPUTF8: a
/// configuration error (78) saying so, naming the address and its setting (it named
/// neither), and nothing sent in bytes the relay did not agree to; the report waits. A
/// domain in other letters goes out in its `xn--` form through any relay (it stopped the
/// run's mail as well).
#[test]
fn an_address_in_other_letters_needs_a_relay_with_smtputf8() {
    for (extra, named) in [
        (
            "reply_to = \"nöc@bücher.example\"",
            "nöc@xn--bcher-kva.example (report.reply_to)",
        ),
        (
            "from_is_wide = true",
            "abüse@xn--exmple-cua.org (report.from)",
        ),
        // A letter of two bytes across the end of `Reply-To:` as the `To:` line is looked
        // at: compared as bytes (cut there as text, it panicked, a failure taken for the
        // relay's, 75, the report first in line holding every other desk's back).
        (
            "to_is_wide = true",
            "andré@xn--bcher-kva.example (the provider's to)",
        ),
    ] {
        let server = FaultyServer::start(Mode::Healthy);
        let mut config = smtp_config(server.port, "none", "");
        config = match extra {
            "from_is_wide = true" => config.replace("<abuse@example.org>", "<abüse@exämple.org>"),
            "to_is_wide = true" => config.replace("ec2-abuse@amazon.com", "andré@bücher.example"),
            _ => config.replace("[report]", &format!("[report]\n{extra}")),
        };
        let s = Setup::new(&config);
        s.write("messages", &attack_log());
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 78, "{extra}: {}", out.stderr);
        assert!(out.stderr.contains("SMTPUTF8"), "{}", out.stderr);
        assert!(out.stderr.contains(named), "{}", out.stderr);
        assert!(server.received().is_empty());
        one_failed_report(&s);
    }
    let server = FaultyServer::start(Mode::Healthy);
    let config = smtp_config(server.port, "none", "")
        .replace("<abuse@example.org>", "<abuse@exämple.org>")
        .replace("ec2-abuse@amazon.com", "abuse@bücher.example")
        .replace("[report]", "[report]\nreply_to = \"noc@bücher.example\"");
    let s = Setup::new(&config);
    s.write("messages", &attack_log());
    s.run_bounded(&["run"]).ok();
    let got = server.received();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]).to_string();
    for header in [
        "To: abuse@xn--bcher-kva.example",
        "From: \"Abuse desk\" <abuse@xn--exmple-cua.org>",
        "Reply-To: noc@xn--bcher-kva.example",
    ] {
        assert!(text.contains(header), "{header}: {text}");
    }
    assert!(text.is_ascii(), "{text}");
}

/// One provider's desk answers "later" (451) to its recipient, run after run: that desk's
/// report waits, and the other provider's reports go in every run meanwhile, not held back
/// as if the way out had failed.
#[test]
fn one_desk_answering_later_holds_back_no_other_desk() {
    let server = FaultyServer::start(Mode::DeferRecipient);
    let mut s = Setup::new(
        &with_other_provider(&smtp_config(server.port, "none", ""))
            .replace("abuse@other.example", "deferred@other.example"),
    );
    s.write("messages", &drop_line("09:00:00", "81.2.69.143", "TCP", 22));
    for run in 1..=3u32 {
        s.now = format!("2026-01-26T{:02}:00:00Z", 8 + run);
        s.append(
            "messages",
            &drop_line(
                &format!("10:0{run}:00"),
                &format!("3.5.140.{run}"),
                "TCP",
                22,
            ),
        );
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 75, "{}", out.stderr);
        assert!(
            out.stderr.contains("deferred (will retry)"),
            "{}",
            out.stderr
        );
        assert_eq!(
            server.accepted().len(),
            run as usize,
            "run {run}: {}",
            out.stderr
        );
    }
    let waiting: Vec<_> = (history(&s).into_iter())
        .filter(|r| r["status"] != "sent")
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["provider"], "other");
}

/// Two providers through the mail server on `port`, each with one address logged.
fn two_desks_one_address_each(port: u16) -> Setup {
    let s = Setup::new(&with_other_provider(&smtp_config(port, "none", "")));
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "81.2.69.143", "TCP", 22),
        ]
        .concat(),
    );
    s
}

/// The relay answers "later" to the sender (451 to MAIL FROM): that is the way out waiting,
/// for every desk, not one desk's deferral: the first report waits, the others are not tried
/// in that run, and none is given up for it.
#[test]
fn the_relays_later_to_the_sender_holds_every_desk() {
    let server = FaultyServer::start(Mode::DeferSender);
    let s = two_desks_one_address_each(server.port);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        !out.stderr.contains("deferred (will retry)"),
        "{}",
        out.stderr
    );
    let mails = server
        .commands()
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(
        mails,
        1,
        "one try, then the way out waits: {:?}",
        server.commands()
    );
    assert!(
        out.stderr.contains("2 report(s) wait for the next run"),
        "{}",
        out.stderr
    );
}

/// A provider's first report waits (the mail server was down); the next run sends it and a
/// new one: the new one replies to it (In-Reply-To), as follow-ups do, since it went first.
#[test]
fn a_new_report_replies_to_the_first_report_sent_in_the_same_run() {
    let s = Setup::new(&smtp_config(smtp::free_port(), "none", ""));
    s.write("messages", &drop_line("09:00:00", "3.5.140.2", "TCP", 22));
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    let first = history(&s)[0]["message_id"].as_str().unwrap().to_string();
    let server = FaultyServer::start(Mode::Healthy);
    s.reconfigure(&smtp_config(server.port, "none", ""));
    s.append(
        "messages",
        &drop_line("09:05:00", "18.206.107.24", "TCP", 22),
    );
    s.run_bounded(&["run"]).ok();
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(message_id(&accepted[0]), first);
    let second = String::from_utf8_lossy(&accepted[1]).into_owned();
    assert!(
        second.contains(&format!("In-Reply-To: {first}")),
        "{second}"
    );
}

/// A server that goes away in the middle of the body, on every try: it cannot hold a message
/// it never read to the end, and its reset says so. However often that happens, the report
/// waits (never taken as delivered) and goes out once the server takes it.
#[test]
fn drop_mid_data_is_transient() {
    let server = FaultyServer::start(Mode::DropMidData);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    for _ in 0..3 {
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 75, "{}", out.stderr);
        assert!(!out.stderr.contains("taken as delivered"), "{}", out.stderr);
        assert!(!out.stderr.contains("sent once more"), "{}", out.stderr);
    }
    let id = one_failed_report(&s);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

/// A server that reads the message's text and closes the connection before the end of the
/// data comes (which the client writes after the text): its close is read first, then the
/// reset its kernel answers the data's end with. It never had the whole message: the report
/// waits, every try, and is never taken as delivered. Whether the close comes before the
/// data's end is the server's race on loopback: tried until it does, a few times at most.
#[test]
fn a_server_that_closed_before_the_end_of_the_data_does_not_have_the_message() {
    let server = FaultyServer::start(Mode::CloseBeforeEndOfData);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    for _ in 0..10 {
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 75, "{}", out.stderr);
        assert!(!out.stderr.contains("taken as delivered"), "{}", out.stderr);
        if server.closed_before_end() >= 2 {
            break;
        }
    }
    if server.closed_before_end() < 2 {
        eprintln!("the server's close came after the data's end in most tries: not shown");
    }
    let id = one_failed_report(&s);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

/// A server that reads the whole body and closes the connection without answering it, on
/// every try (it queued the message and fell over; a balancer gives up on a slow filter):
/// the desk may have each copy, so the body goes out twice at most, as an unreadable answer
/// does, never once a run for ever; `history` says it was not confirmed.
#[test]
fn a_connection_closed_after_the_body_without_an_answer_sends_it_twice_at_most() {
    let server = FaultyServer::start(Mode::DropAfterBody);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = first_try_unconfirmed(&s);
    assert!(
        out.stderr
            .contains("closed the connection after the message body"),
        "{}",
        out.stderr
    );
    sent_again_once_then_taken_as_delivered(&s, || server.received());
    assert!(server.accepted().is_empty());
}

/// A body that went out without an answer, then refused when sent again (a desk that turns
/// away a Message-ID it holds): the desk may have the first copy, so the report is taken as
/// delivered, and its addresses do not go out again in a new report (they did, under a new
/// Message-ID, with the first copy perhaps in the desk's hands).
#[test]
fn a_refusal_after_a_body_that_went_unanswered_sends_its_addresses_no_second_time() {
    let server = FaultyServer::start(Mode::DropAfterBody);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    first_try_unconfirmed(&s);
    server.set_mode(Mode::Reject552);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("refused when sent again") && out.stderr.contains("552"),
        "{}",
        out.stderr
    );
    server.set_mode(Mode::Healthy);
    s.run_bounded(&["run"]).ok();
    assert!(server.accepted().is_empty(), "no second report");
    let h = history(&s);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["status"], "sent");
    let shown = s.run(&["history"]).stdout;
    assert!(shown.contains("taken as delivered"), "{shown}");
}

/// What the server takes is, byte for byte, what `show` prints as sent: the message's own
/// last line end is the first of the data's end, not followed by an empty line more.
#[test]
fn the_server_takes_the_bytes_show_prints() {
    let server = FaultyServer::start(Mode::Healthy);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    s.run_bounded(&["run"]).ok();
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 1);
    let id = history(&s)[0]["id"].as_str().unwrap().to_string();
    let shown = s.run(&["show", &id]).ok().raw_stdout;
    assert!(shown.ends_with(b"\r\n"));
    assert_eq!(
        String::from_utf8_lossy(&accepted[0]),
        String::from_utf8_lossy(&shown)
    );
}

#[test]
fn a_451_then_250_delivers_once_on_the_next_run() {
    let server = FaultyServer::start(Mode::TempFailThenOk);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(out.stderr.contains("451"), "{}", out.stderr);
    let id = one_failed_report(&s);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

/// A relay that takes mail only over TLS answers a client that did not start it with `530
/// 5.7.0 Must issue a STARTTLS command first`: a setting to fix, `mail.security`. It was said
/// to be a refused login (`mail.username / password`), with no login configured.
#[test]
fn a_relay_that_wants_starttls_first_names_mail_security_not_the_login() {
    let server = FaultyServer::start(Mode::TlsFirst);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("mail.security = \"starttls\""),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("refused the login"), "{}", out.stderr);
    assert!(server.accepted().is_empty());
    // One that wants a login, with none set, says that none is set.
    server.set_mode(Mode::LoginFirst);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("none is set"), "{}", out.stderr);
}

/// A report no server took yet (the relay answered "later" to the sender, before the body)
/// goes out with the day it goes out on: it went with the Date it was made on, a week old,
/// which spam filters count against it. Its Message-ID stays.
#[test]
fn a_report_no_server_took_goes_with_the_day_it_goes_out_on() {
    let server = FaultyServer::start(Mode::DeferSender);
    let mut s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    let id = one_failed_report(&s);
    server.set_mode(Mode::Healthy);
    s.now = "2026-02-02T09:00:00Z".into();
    s.run_bounded(&["run"]).ok();
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(message_id(&got[0]), id);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Date: Mon, 02 Feb 2026 09:00:00"), "{text}");
    // The ledger holds the bytes sent.
    let report = history(&s)[0]["id"].as_str().unwrap().to_string();
    let shown = s.run(&["show", &report]).ok();
    assert!(
        shown.stdout.contains("Date: Mon, 02 Feb 2026 09:00:00"),
        "{}",
        shown.stdout
    );
}

/// A relay refuses `report.from`: 78, "kept and goes out once that is fixed". Once the
/// operator sets another `from`, the report, which never reached a server, is made anew with
/// it: it went under the new envelope sender with the refused address in its From (which
/// DMARC fails, and which the desk's answers go to) and a Message-ID in that domain.
#[test]
fn a_report_whose_sender_was_refused_goes_with_the_from_set_since() {
    let server = FaultyServer::start(Mode::RefuseSender);
    let config = smtp_config(server.port, "none", "");
    assert!(config.contains("abuse@example.org"), "{config}");
    let s = Setup::new(&config.replace("abuse@example.org", "abuse@refused.example"));
    s.write("messages", &attack_log());
    for _ in 0..2 {
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 78, "{}", out.stderr);
    }
    assert!(server.accepted().is_empty());
    s.reconfigure(&config);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(!text.contains("refused.example"), "{text}");
    assert!(text.contains("abuse@example.org"), "{text}");
    for ip in ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"] {
        assert!(text.contains(ip), "{ip}: {text}");
    }
    let h = history(&s);
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h.iter().any(|r| r["status"] == "rejected"), "{h:?}");
    s.run_bounded(&["run"]).ok();
    assert_eq!(server.accepted().len(), 1, "sent once");
}

/// One whose body went out (and was answered with "later") goes as stored, From, Date and
/// all, whatever `from` says since: a copy of it may be on a server.
#[test]
fn a_report_whose_body_went_out_goes_as_stored_after_from_changes() {
    let server = FaultyServer::start(Mode::TempFailThenOk);
    let config = smtp_config(server.port, "none", "");
    let mut s = Setup::new(&config);
    s.write("messages", &attack_log());
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    let stored = server.received();
    assert_eq!(stored.len(), 1);
    s.reconfigure(&config.replace("abuse@example.org", "desk@example.net"));
    s.now = "2026-02-02T09:00:00Z".into();
    s.run_bounded(&["run"]).ok();
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], stored[0], "the bytes first sent");
}

/// A relay that takes fewer recipients a message than a report has (Postfix's
/// `smtpd_recipient_limit`, `452 4.5.3 too many recipients`): a setting to fix, said as one
/// (78), the report kept. It was deferred (75) on every run for ever.
#[test]
fn a_relay_taking_fewer_recipients_than_a_report_has_is_a_setting() {
    let server = FaultyServer::start(Mode::OneRecipient);
    let config = smtp_config(server.port, "none", "");
    let s = Setup::new(&config.replace("[report]\n", "[report]\ncc = [\"noc@example.org\"]\n"));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("smtpd_recipient_limit"),
        "{}",
        out.stderr
    );
    assert!(server.accepted().is_empty());
    let id = one_failed_report(&s);
    server.set_mode(Mode::Healthy);
    healthy_run_delivers_once(&s, || server.accepted(), &id);
}

#[test]
fn a_552_is_rejected_and_the_ips_go_out_once_in_a_new_report() {
    let server = FaultyServer::start(Mode::Reject552);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("552"), "{}", out.stderr);
    // A size limit says what meets it, if it is the operator's own relay's.
    assert!(
        out.stderr
            .contains("lower report.max_message_bytes below it"),
        "{}",
        out.stderr
    );
    let h = history(&s);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "rejected");

    server.set_mode(Mode::Healthy);
    s.run_bounded(&["run"]).ok();
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    let h = history(&s);
    assert_eq!(h.len(), 2);
    assert_eq!(h[1]["status"], "sent");
    assert_eq!(message_id(&got[0]), h[1]["message_id"].as_str().unwrap());
    let ips: BTreeSet<&str> = h[1]["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 3, "every IP of the rejected report: {ips:?}");
    s.run_bounded(&["run"]).ok();
    assert_eq!(server.accepted().len(), 1, "nothing sent twice");
}

#[test]
fn a_refusal_text_with_control_characters_is_shown_clean() {
    let server = FaultyServer::start(Mode::RejectWithControls);
    let s = Setup::new(&smtp_config(server.port, "none", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("(550): 5.7.1"), "{}", out.stderr);
    assert!(out.stderr.contains("denied gnp.exe"), "{}", out.stderr);
    let mut stored = fs::read(s.path("state/state.db")).unwrap();
    stored.extend(fs::read(s.path("state/state.db-wal")).unwrap_or_default());
    let stored = String::from_utf8_lossy(&stored);
    for c in ['\x1b', '\x07', '\u{202e}'] {
        assert!(!out.stderr.contains(c), "{c:?} in {:?}", out.stderr);
    }
    assert!(
        !stored.contains("\x1b]0;owned"),
        "the state keeps the raw reply"
    );
    assert_eq!(history(&s)[0]["status"], "rejected");
}

#[test]
fn starttls_required_but_not_offered_is_a_config_error() {
    let server = FaultyServer::start(Mode::NoStartTls);
    let s = Setup::new(&smtp_config(server.port, "starttls", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("mail.security") && out.stderr.contains("STARTTLS"),
        "{}",
        out.stderr
    );
    assert!(
        !server.commands().iter().any(|c| c.starts_with("MAIL")),
        "nothing sent in clear text: {:?}",
        server.commands()
    );
    let id = one_failed_report(&s);
    let check = s.run_bounded(&["check", "--smtp"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(!check.stdout.contains("ok      mail"), "{}", check.stdout);

    let healthy = smtp::start(Security::StartTls, None, 0);
    s.write(
        "config.toml",
        &smtp_config(healthy.port, "starttls", "")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    );
    healthy_run_delivers_once(
        &s,
        || healthy.received().into_iter().map(|d| d.data).collect(),
        &id,
    );
}

#[test]
fn tls_against_a_plaintext_port_is_a_config_error() {
    let server = FaultyServer::start(Mode::Healthy);
    let s = Setup::new(&smtp_config(server.port, "tls", ""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains("mail.security = \"tls\""),
        "{}",
        out.stderr
    );
    assert!(server.received().is_empty());
    let id = one_failed_report(&s);

    let healthy = smtp::start(Security::ImplicitTls, None, 0);
    s.write(
        "config.toml",
        &smtp_config(healthy.port, "tls", "")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    );
    healthy_run_delivers_once(
        &s,
        || healthy.received().into_iter().map(|d| d.data).collect(),
        &id,
    );
}

/// Postfix's sendmail with a message over `message_size_limit`: `postdrop` stops, and it
/// exits 75 ("later") saying "message file too big". Taken for a failure of the moment, the
/// report waited as made for a day, then was a setting to fix (78), and held back every
/// report behind it; lowering `max_message_bytes` changed nothing. It is refused as a size,
/// as a relay's 552 is: the addresses go out in a report made anew.
#[test]
fn a_sendmail_refusing_a_message_over_its_size_limit_is_a_refusal_not_a_later() {
    let s = Setup::new(&sendmail_config(""));
    s.write("messages", &attack_log());
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat >/dev/null\necho 'postdrop: warning: uid=0: File too large' >&2\n\
         echo 'sendmail: fatal: abuse@example.org(0): message file too big' >&2\nexit 75\n",
    );
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("max_message_bytes"), "{}", out.stderr);
    let h = history(&s);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "rejected");

    // The limit met: every address goes, once.
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\nmkdir -p {0}/sent\ncat > {0}/sent/$$.eml\n",
            s.dir.path().display()
        ),
    );
    s.run_bounded(&["run"]).ok();
    let got = sendmail_got(&s);
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]);
    for ip in ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"] {
        assert!(text.contains(ip), "{ip}: {text}");
    }
    s.run_bounded(&["run"]).ok();
    assert_eq!(sendmail_got(&s).len(), 1, "sent once");
}

/// A run ended by a signal while its sendmail delivers (Ctrl-C, `timeout`, a hangup): the
/// sendmail, in a process group of its own, went on under init and delivered the report,
/// which the state still held as being sent, and the next run sent it again. It is killed
/// with the run; the next run sends the report once.
#[test]
fn a_run_ended_by_a_signal_takes_its_sendmail_with_it() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let s = Setup::new(&sendmail_config(""));
        s.write("messages", &attack_log());
        let dir = s.dir.path().display().to_string();
        s.write_program(
            "sendmail",
            &format!(
                "#!/bin/sh\ntouch {dir}/started\nsleep 3\nmkdir -p {dir}/sent\ncat > {dir}/sent/$$.eml\n"
            ),
        );
        let mut command = s.command(&["-q", "run"]);
        // SAFETY: setrlimit(2) in the child before exec touches no memory of the parent's.
        // SIGQUIT's default action dumps core: none is wanted here.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                let none = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                Ok(())
            });
        }
        let mut run = command.spawn().unwrap();
        let waited = std::time::Instant::now();
        while !s.path("started").exists() {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(30),
                "no sendmail"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: kill(2) of the run's own process id touches no memory of ours.
        unsafe {
            libc::kill(run.id() as i32, signal);
        }
        let status = run.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(signal),
            "ended by the signal, as before"
        );
        std::thread::sleep(std::time::Duration::from_secs(4));
        assert!(
            sendmail_got(&s).is_empty(),
            "{signal}: the sendmail went on"
        );
        s.write_program(
            "sendmail",
            &format!("#!/bin/sh\nmkdir -p {dir}/sent\ncat > {dir}/sent/$$.eml\n"),
        );
        s.run_bounded(&["run"]).ok();
        s.run_bounded(&["run"]).ok();
        assert_eq!(sendmail_got(&s).len(), 1, "{signal}: sent once");
    }
}

/// The same through msmtp, which keeps no queue: its relay refusing the sender handed the
/// body to no server, and the report is made anew with the `from` set since.
#[test]
fn a_report_whose_sender_msmtp_saw_refused_goes_with_the_from_set_since() {
    let config = sendmail_config("");
    let s = Setup::new(&config.replace("abuse@example.org", "abuse@refused.example"));
    s.write("messages", &attack_log());
    let dir = s.dir.path().display().to_string();
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\ncase \"$*\" in *refused*) cat >/dev/null\n\
             echo 'msmtp: envelope from address abuse@refused.example not accepted by the server' >&2\n\
             echo 'msmtp: server message: 553 5.7.1 not yours' >&2\nexit 65;; esac\n\
             mkdir -p {dir}/sent\ncat > {dir}/sent/$$.eml\n"
        ),
    );
    for _ in 0..2 {
        let out = s.run_bounded(&["run"]);
        assert_eq!(out.code, 78, "{}", out.stderr);
    }
    s.reconfigure(&config);
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    let got = sendmail_got(&s);
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(!text.contains("refused.example"), "{text}");
    for ip in ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"] {
        assert!(text.contains(ip), "{ip}: {text}");
    }
}

fn sendmail_got(s: &Setup) -> Vec<Vec<u8>> {
    match fs::read_dir(s.path("sent")) {
        Ok(entries) => entries
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn sendmail_missing_or_not_executable_is_a_config_error() {
    let s = Setup::new(&sendmail_config(""));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("mail.sendmail_path"), "{}", out.stderr);
    let check = s.run_bounded(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);

    healthy_sendmail(&s);
    fs::set_permissions(s.path("sendmail"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("not executable"), "{}", out.stderr);
    assert!(
        history(&s).is_empty(),
        "nothing made before the transport is usable"
    );

    fs::set_permissions(s.path("sendmail"), fs::Permissions::from_mode(0o755)).unwrap();
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    let got = sendmail_got(&s);
    assert_eq!(got.len(), 1, "delivered exactly once");
    let h = history(&s);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "sent");
    assert_eq!(message_id(&got[0]), h[0]["message_id"].as_str().unwrap());
}

#[test]
fn sendmail_that_hangs_is_killed_at_the_deadline_and_the_report_waits() {
    let s = Setup::new(&sendmail_config("timeout_secs = 1"));
    s.write_program(
        "sendmail",
        &format!(
            // A child of its own too, as an MTA's queue runner would start; what it says
            // before it hangs (postdrop, retrying a maildrop it may not write) says why.
            "#!/bin/sh\necho $$ > {dir}/pid\nsleep 600 &\necho $! > {dir}/child\ncat > /dev/null\n\
             echo 'postdrop: warning: create file maildrop/1: Permission denied' >&2\n\
             echo 'postdrop: warning: create file maildrop/2: Permission denied' >&2\n\
             exec sleep 600\n",
            dir = s.dir.path().display()
        ),
    );
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "killed: it said: postdrop: warning: create file maildrop/1: Permission denied postdrop:"
        ),
        "{}",
        out.stderr
    );
    let pid = fs::read_to_string(s.path("pid")).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the hung sendmail is gone"
    );
    let child = fs::read_to_string(s.path("child")).unwrap();
    // Killed with its process group; gone once reaped by whoever inherited it.
    let gone = (0..100).any(|_| {
        let state = fs::read_to_string(format!("/proc/{}/stat", child.trim())).unwrap_or_default();
        let alive = !state.is_empty() && !state.contains(") Z ");
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        !alive
    });
    assert!(gone, "the hung sendmail's own child is gone too");
    let id = one_failed_report(&s);

    healthy_sendmail(&s);
    healthy_run_delivers_once(&s, || sendmail_got(&s), &id);
}

#[test]
fn clear_text_login_to_a_remote_host_is_refused_and_loopback_is_allowed() {
    let server = FaultyServer::start(Mode::Healthy);
    let remote = smtp_config(server.port, "none", "username = \"abuse\"")
        .replace("host = \"127.0.0.1\"", "host = \"mail.example.org\"");
    let mut s = Setup::new(&remote);
    s.env
        .push(("ABUSE_MAILER__MAIL__PASSWORD".into(), "s3cret-pw".into()));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("mail.security"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret-pw"));
    let check = s.run_bounded(&["check", "--smtp"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(!check.stdout.contains("ok"), "{}", check.stdout);
    assert!(!s.path("state/state.db").exists(), "nothing read or made");

    // The same login to a server on this host does not cross a network.
    s.write(
        "config.toml",
        &smtp_config(server.port, "none", "username = \"abuse\"")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    );
    s.run_bounded(&["check", "--smtp"]).ok();
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    assert_eq!(server.accepted().len(), 1, "delivered exactly once");
    assert!(
        server
            .logins()
            .iter()
            .all(|l| *l == ("abuse".to_string(), "s3cret-pw".to_string())),
        "{:?}",
        server.logins()
    );
    assert_eq!(history(&s)[0]["status"], "sent");
}

#[test]
fn helo_name_with_crlf_is_refused_before_any_connection() {
    let server = FaultyServer::start(Mode::Healthy);
    let s = Setup::new(&smtp_config(
        server.port,
        "none",
        "helo_name = \"web1.example\\r\\nRCPT TO:<y@evil.test>\"",
    ));
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("mail.helo_name"), "{}", out.stderr);
    assert_eq!(server.connections(), 0, "the server never saw it");

    s.write(
        "config.toml",
        &smtp_config(server.port, "none", "helo_name = \"web1.example\"")
            .replace("{dir}", s.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap()),
    );
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    assert_eq!(server.accepted().len(), 1, "delivered exactly once");
    let commands = server.commands();
    assert!(
        commands.contains(&"EHLO web1.example".to_string()),
        "{commands:?}"
    );
    assert!(
        !commands.iter().any(|c| c.contains("evil.test")),
        "{commands:?}"
    );
}

#[test]
fn eml_files_are_written_for_the_owner_only() {
    let s = Setup::standard();
    s.write("messages", &attack_log());
    s.run_bounded(&["run"]).ok();
    let files = s.outbox();
    assert_eq!(files.len(), 1);
    let mode = fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "an .eml quotes the operator's logs");
}

#[test]
fn the_unit_lets_the_longest_delivery_finish() {
    let unit = fs::read_to_string(repo().join("config/abuse-mailer.service")).unwrap();
    let value = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStartSec="))
        .expect("the service sets TimeoutStartSec");
    let minutes: u64 = value
        .strip_suffix("min")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("TimeoutStartSec={value}: expected minutes"));
    // The run's delivery deadline at the default timeout_secs (30 s), and time to read the
    // logs besides.
    let delivery = u64::from(TIMEOUTS_PER_MESSAGE * MESSAGES_PER_RUN) * 30;
    assert!(
        minutes * 60 >= delivery + 5 * 60,
        "TimeoutStartSec={value} leaves no room after {delivery} s of delivery"
    );
}

#[test]
fn preview_prints_the_reports_waiting_to_be_sent_again_first() {
    // Nobody listens on port 9: the report is stored and waits.
    let s = Setup::new(&standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\ntimeout_secs = 2",
    ));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    assert_eq!(s.run_bounded(&["run"]).code, 75);
    let id = history(&s)[0]["message_id"].as_str().unwrap().to_string();
    s.append(
        "messages",
        &drop_line("10:05:00", "34.223.47.190", "UDP", 53),
    );
    let out = s.run(&["preview"]).ok();
    let waiting = out.stdout.find(&format!("Message-ID: {id}"));
    let new = out.stdout.find("SRC=34.223.47.190 ");
    assert!(
        waiting.is_some() && new.is_some() && waiting < new,
        "the waiting report first, then the new one:\n{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("From abuse-mailer ").count(), 2);
}

/// A failed send loses nothing, and `preview --json` says so: a report waiting to be sent
/// again is listed first, as it was listed when made (addresses, counts, excerpt), then the
/// new ones; `run --dry-run --json` gives the same. Once it is sent, it is listed no more.
/// A waiting report made before the state kept its listing is listed from the ledger.
#[test]
fn preview_json_lists_the_reports_waiting_to_be_sent_again() {
    let config = standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\ntimeout_secs = 2",
    );
    let s = Setup::new(&config);
    s.write("messages", &attack_log());
    let before = s.run(&["preview", "--json"]).ok().json();
    let failed = s.run_bounded(&["run"]);
    assert_eq!(failed.code, 75);
    // The report tried and failed waits too, and is counted.
    assert!(
        failed.stderr.contains("1 report(s) wait for the next run"),
        "{}",
        failed.stderr
    );
    let waiting = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(waiting["reports"], before["reports"], "{waiting}");
    assert_eq!(waiting["summary"]["lines_read"], 0, "nothing new read");
    let dry = s.run(&["run", "--dry-run", "--json"]).ok().json();
    assert_eq!(dry["reports"], waiting["reports"]);
    // New lines: the waiting report first, then the new one.
    s.append(
        "messages",
        &drop_line("10:05:00", "18.206.107.24", "UDP", 53),
    );
    let both = s.run(&["preview", "--json"]).ok().json();
    let reports = both["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{both}");
    assert_eq!(reports[0], before["reports"][0]);
    assert_eq!(ip_list(&reports[1]["ips"]), ["18.206.107.24"]);
    // Listed from the ledger when the state kept no listing of it.
    let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    conn.execute("DELETE FROM report_preview", []).unwrap();
    drop(conn);
    let from_ledger = s.run(&["preview", "--json"]).ok().json();
    let first = &from_ledger["reports"][0];
    assert_eq!(
        first["ips"].as_array().unwrap().len(),
        before["reports"][0]["ips"].as_array().unwrap().len()
    );
    for (got, was) in first["ips"]
        .as_array()
        .unwrap()
        .iter()
        .zip(before["reports"][0]["ips"].as_array().unwrap())
    {
        for key in ["ip", "hits", "first_seen", "last_seen"] {
            assert_eq!(got[key], was[key], "{key}: {from_ledger}");
        }
    }
    assert_eq!(first["subject"], before["reports"][0]["subject"]);
    assert_eq!(first["to"], before["reports"][0]["to"]);
    // Sent: listed no more, and its listing let go.
    let server = FaultyServer::start(Mode::Healthy);
    s.reconfigure(&smtp_config(server.port, "none", ""));
    s.run_bounded(&["run"]).ok();
    let after = s.run(&["preview", "--json"]).ok().json();
    assert!(after["reports"].as_array().unwrap().is_empty(), "{after}");
    let conn = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM report_preview", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 0);
}

/// Waits (boundedly) until `path` exists.
fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The run is killed (the OOM killer, a `timeout` in cron) while sendmail has not yet read
/// the message: sendmail still reads all of it, never the first 64 KiB a pipe held, and the
/// next run sends the same message, whole and alike to the byte.
#[test]
fn a_run_killed_before_sendmail_reads_leaves_it_the_whole_message() {
    let s = Setup::new(&sendmail_config(
        "timeout_secs = 60\nmax_messages_per_run = 1",
    ));
    // Reads only once the run is gone, as a slow MTA under load would.
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\ntouch {dir}/started\nwhile [ ! -e {dir}/go ]; do sleep 0.02; done\n\
             mkdir -p {dir}/slow\ncat > {dir}/slow/$$.eml\ntouch {dir}/done\n",
            dir = s.dir.path().display()
        ),
    );
    // A thousand sources with their lines: a message of several pipes' worth.
    let log: String = (0..1000)
        .map(|n| {
            drop_line(
                "10:00:00",
                &format!("34.208.{}.{}", n / 250, n % 250 + 1),
                "TCP",
                22,
            )
        })
        .collect();
    s.write("messages", &log);
    let mut run = s.command(&["run"]).spawn().unwrap();
    wait_for(&s.path("started"));
    run.kill().unwrap();
    run.wait().unwrap();
    fs::write(s.path("go"), "").unwrap();
    wait_for(&s.path("done"));
    let slow: Vec<Vec<u8>> = fs::read_dir(s.path("slow"))
        .unwrap()
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(slow.len(), 1);
    assert!(slow[0].len() > 1 << 17, "{} bytes", slow[0].len());

    healthy_sendmail(&s);
    s.run_bounded(&["run"]).ok();
    let again = sendmail_got(&s);
    assert_eq!(again.len(), 1, "the one report, sent again");
    assert_eq!(message_id(&again[0]), message_id(&slow[0]));
    assert!(
        again[0] == slow[0],
        "the killed run's sendmail got {} of the message's {} bytes",
        slow[0].len(),
        again[0].len()
    );
}

/// A sendmail, or a wrapper around one, that reads its message through `/dev/stdin` opens
/// the message file afresh: it takes the whole message once, and the run counts it sent.
#[test]
fn sendmail_reading_dev_stdin_gets_the_report_once() {
    let s = Setup::new(&sendmail_config(""));
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\nmkdir -p {0}/sent\ncat /dev/stdin > {0}/sent/$$.eml\n",
            s.dir.path().display()
        ),
    );
    s.write("messages", &attack_log());
    let first = s.run_bounded(&["run"]);
    let second = s.run_bounded(&["run"]);
    assert_eq!((first.code, second.code), (0, 0), "{}", first.stderr);
    let got = sendmail_got(&s);
    assert_eq!(got.len(), 1, "sent once");
    assert_eq!(
        message_id(&got[0]),
        history(&s)[0]["message_id"].as_str().unwrap()
    );
}

/// `mail.dir` under a plain file can never hold a message: refused before any log is read,
/// naming the key, by `run` and by `check`, not retried for ever as if it might heal.
#[test]
fn a_mail_dir_that_cannot_be_a_folder_is_a_config_error() {
    let s = Setup::new(&standard_config("").replace("{dir}/outbox", "{dir}/plain/outbox"));
    s.write("plain", "a file, not a folder\n");
    s.write("messages", &attack_log());
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("mail.dir"), "{}", out.stderr);
    assert!(!s.path("state/state.db").exists(), "nothing read or made");
    let check = s.run_bounded(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("mail.dir"), "{}", check.stdout);

    fs::remove_file(s.path("plain")).unwrap();
    s.run_bounded(&["check"]).ok();
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    assert_eq!(fs::read_dir(s.path("plain/outbox")).unwrap().count(), 1);
}

/// A relay that checks a recipient with the desk's server before taking it passes that
/// server's refusal on, "Relay access denied" and all: that is the desk's refusal, not the
/// relay's, so it refuses that report alone (1), and the other desk's report still goes out,
/// this run and the next.
#[test]
fn a_desks_refusal_passed_on_by_a_verifying_relay_holds_back_no_other_report() {
    let server = common::smtp::start(common::smtp::Security::Plain, None, 0);
    *server.rcpt_of.lock().unwrap() = Some((
        "ec2-abuse@".into(),
        550,
        "5.1.1 <ec2-abuse@amazon.com>: Recipient address rejected: unverified address: host mx.amazon.example[192.0.2.1] said: 554 5.7.1 <ec2-abuse@amazon.com>: Relay access denied (in reply to RCPT TO command)".into(),
    ));
    let s = two_desks_one_address_each(server.port);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("rejected"), "{}", out.stderr);
    let to: Vec<Vec<String>> = server.received().iter().map(|d| d.to.clone()).collect();
    assert_eq!(to, [vec!["abuse@other.example".to_string()]]);
    s.append("messages", &drop_line("11:00:00", "81.2.69.144", "TCP", 22));
    let out = s.run_bounded(&["run"]);
    assert_ne!(out.code, 78, "{}", out.stderr);
    assert_eq!(server.received().len(), 2, "{}", out.stderr);
}

/// One desk's mailbox refused for good (550) while another desk's server defers (451): the
/// run ended 75, "waiting fixes it", on every run, so a unit that takes 75 for success never
/// showed the dead mailbox. The refusal wins (1), and the line says the deferral too.
#[test]
fn a_refusal_is_not_hidden_behind_another_desks_deferral() {
    let server = common::smtp::start(common::smtp::Security::Plain, None, 0);
    *server.rcpt_of.lock().unwrap() =
        Some(("ec2-abuse@".into(), 550, "5.1.1 no such mailbox".into()));
    *server.rcpt.lock().unwrap() = Some((451, "4.3.0 try again later".into()));
    let s = two_desks_one_address_each(server.port);
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("5.1.1 no such mailbox") && last.contains("4.3.0 try again later"),
        "{}",
        out.stderr
    );
    // The deferred report goes once its desk takes it; the refused desk refuses again.
    *server.rcpt.lock().unwrap() = None;
    s.run_bounded(&["run"]).ended(1, &["5.1.1 no such mailbox"]);
    let to: Vec<Vec<String>> = server.received().iter().map(|d| d.to.clone()).collect();
    assert_eq!(to, [vec!["abuse@other.example".to_string()]]);
}

/// `run.lock` removed by hand while a run sends (taken for a stale lock), and the next run
/// started at once: the second ran beside the first, and both sent the addresses the first
/// had not written yet, under two Message-IDs. The first stops before it writes or sends
/// more; every address reaches the desk under one Message-ID.
#[test]
fn a_run_whose_lock_is_removed_stops_before_sending_what_another_run_sends() {
    let s = Setup::new(
        &sendmail_config("").replace("min_hits = 1", "min_hits = 1\nmax_ips_per_message = 1"),
    );
    s.write("messages", &attack_log());
    let (dir, bin) = (s.path(""), env!("CARGO_BIN_EXE_abuse-mailer"));
    let dir = dir.display();
    // At the first message sent, the lock is removed and the next run started.
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\ncat > \"{dir}/sent.$$\"\nif mkdir \"{dir}/once\" 2>/dev/null; then\n  rm -f \"{dir}/state/run.lock\"\n  ( \"{bin}\" --config \"{dir}/config.toml\" run 2> \"{dir}/second.err\"; echo $? > \"{dir}/second.tmp\"; mv \"{dir}/second.tmp\" \"{dir}/second.code\" ) < /dev/null > /dev/null 2>&1 &\nfi\nexit 0\n"
        ),
    );
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("removed or replaced"),
        "{}",
        first.stderr
    );
    // The second run, started beside it, runs to its end.
    let waited = std::time::Instant::now();
    while !s.path("second.code").exists() && waited.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = fs::read_to_string(s.path("second.code")).unwrap();
    assert_eq!(
        second.trim(),
        "0",
        "{:?}",
        fs::read_to_string(s.path("second.err"))
    );
    let mut ids: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for entry in fs::read_dir(s.path("")).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sent.")
        {
            continue;
        }
        let data = fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&data);
        for ip in ["3.5.140.2", "34.223.47.190", "2600:1f18:4a3:6901::1"] {
            if text.contains(ip) {
                ids.entry(ip).or_default().insert(message_id(&data));
            }
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.values().all(|m| m.len() == 1), "{ids:?}");
}

/// The way out down for about `max_age_days` (a relay refusing, a sendmail deferring) with
/// two providers' addresses logged: the first report made is written and waits, the other's
/// was held back unwritten, to be made again by a later run, until its addresses' packets
/// were history and it was made by none, without a word. A report held back by the failure
/// whose addresses pass `max_age_days` within a day is written to wait with the first: when
/// the way out is back, both go.
#[test]
fn a_report_held_back_by_a_long_outage_is_written_before_its_addresses_age_out() {
    let mut s = Setup::new(
        &with_other_provider(&sendmail_config(""))
            .replace("min_hits = 1", "min_hits = 1\nmax_age_days = 3"),
    );
    let deferring = "#!/bin/sh\ncat > /dev/null\necho 'queue full' >&2\nexit 75\n";
    s.write_program("sendmail", deferring);
    s.write(
        "messages",
        &[
            drop_line("07:00:00", "3.5.140.2", "TCP", 22),
            drop_line("07:00:01", "81.2.69.142", "TCP", 22),
        ]
        .concat(),
    );
    s.now = "2026-01-25T08:00:00Z".to_string();
    let first = s.run(&["run"]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    assert_eq!(history(&s).len(), 1, "{}", first.stderr);
    // The evening before their packets are three days old: the first report has waited more
    // than a day for a sendmail that says "later", which is now a setting to look at.
    s.now = "2026-01-27T20:00:00Z".to_string();
    // The other desk, never tried, goes first (the way out defers it too), then the first
    // desk in its turn.
    let second = s.run(&["run"]);
    assert_eq!(second.code, 75, "{}", second.stderr);
    assert_eq!(history(&s).len(), 2, "{}", second.stderr);
    s.now = "2026-01-27T20:15:00Z".to_string();
    let second = s.run(&["run"]);
    assert_eq!(second.code, 78, "{}", second.stderr);
    assert_eq!(history(&s).len(), 2, "{}", second.stderr);
    // The way out is back, after they passed max_age_days.
    healthy_sendmail(&s);
    s.now = "2026-01-28T09:00:00Z".to_string();
    let third = s.run(&["run"]).ok();
    let sent: BTreeSet<String> = s.reported().concat().into_iter().collect();
    assert_eq!(
        sent,
        BTreeSet::from(["3.5.140.2".to_string(), "81.2.69.142".to_string()]),
        "{}",
        third.stderr
    );
    assert_eq!(sendmail_got(&s).len(), 2);
}

/// The way out down while a delta is split into parts: the first part was tried and stored
/// to wait ("part 1 of 3"), the others held back unwritten and made again later as a thread
/// of their own ("part 1 of 2"), or, once some were about to age out, only those written:
/// the desk got part 1 and part 3 of 3, then parts of another count. Every part is written
/// to wait, and the desk gets parts 1, 2 and 3 of 3.
#[test]
fn parts_held_back_by_a_failed_way_out_keep_their_numbers() {
    let s = Setup::new(
        &sendmail_config("").replace("min_hits = 1", "min_hits = 1\nmax_ips_per_message = 1"),
    );
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat > /dev/null\necho 'queue full' >&2\nexit 75\n",
    );
    s.write("messages", &attack_log());
    assert_eq!(s.run(&["run"]).code, 75);
    assert_eq!(history(&s).len(), 3);
    healthy_sendmail(&s);
    s.run(&["run"]).ok();
    let subjects: Vec<String> = (sendmail_got(&s).iter())
        .map(|m| {
            // The header unfolded.
            let text = (String::from_utf8_lossy(m).replace("\r\n", "\n")).replace("\n ", " ");
            let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
            subject.to_string()
        })
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    for k in 1..=3 {
        let part = format!("(part {k} of 3)");
        assert_eq!(
            subjects.iter().filter(|s| s.ends_with(&part)).count(),
            1,
            "{subjects:?}"
        );
    }
}

/// A report too large to go even without log lines (78 once the run is done) beside another
/// desk's delivery the way out deferred (75): the run ends 75, the deferral said under `-q`,
/// and the report too large is named as well. The 78 came first and hid the deferral, run
/// after run.
#[test]
fn a_report_too_large_hides_no_failed_delivery() {
    let config = with_other_provider(&sendmail_config("")).replace(
        "[report]",
        "[report]\nmax_message_bytes = 16384\ntemplates_dir = \"{dir}/templates\"",
    );
    let s = Setup::new(&config);
    fs::create_dir_all(s.path("templates/aws")).unwrap();
    s.write(
        "templates/aws/body.txt",
        &format!(
            "{}\n{{{{ ip_count }}}}\n",
            "This paragraph repeats. ".repeat(1000)
        ),
    );
    s.write_program(
        "sendmail",
        "#!/bin/sh\ncat > /dev/null\necho 'queue full' >&2\nexit 75\n",
    );
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "81.2.69.142", "TCP", 22),
        ]
        .concat(),
    );
    let out = s.run_bounded(&["-q", "run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains("queue full") && out.stderr.contains("report.max_message_bytes"),
        "{}",
        out.stderr
    );
}
