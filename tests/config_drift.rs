//! The configuration edited between runs while the state carries on: providers renamed or
//! taken out, desks moved, range files replaced, discovery settings changed, with reports
//! waiting in the ledger. Each address is reported once, none is lost, nothing goes to a
//! desk or about an address the operator took out, and the run says what it did.

mod common;
#[path = "common/discovery.rs"]
mod discovery;
#[path = "common/faulty_smtp.rs"]
mod faulty_smtp;
#[path = "common/discover_stubs.rs"]
mod stubs;

use std::fs;

use common::*;

fn edit_config(s: &Setup, from: &str, to: &str) {
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    assert!(config.contains(from), "{from:?} not in {config}");
    fs::write(s.path("config.toml"), config.replacen(from, to, 1)).unwrap();
}

/// Every address in a sent report, with how many times, sorted.
fn sent_addresses(s: &Setup) -> Vec<String> {
    let mut all: Vec<String> = history(s)
        .iter()
        .filter(|r| r["status"] == "sent")
        .flat_map(|r| string_list(&r["ips"]))
        .collect();
    all.sort();
    all
}

/// A provider `cloud` whose ranges are the CIDR file `{dir}/cloud.txt`.
fn cidr_provider_config(extra_report: &str) -> String {
    standard_config(extra_report)
        .replace("name = \"aws\"", "name = \"cloud\"")
        .replace(
            "ranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]",
            "ranges = \"{dir}/cloud.txt\"",
        )
}

/// A provider renamed in the same edit that changes `report.cc`: the desk (its `to`) is the
/// one the old name reported to, so the run refuses rather than report everything again.
#[test]
fn a_provider_renamed_while_cc_changes_is_still_refused() {
    let s = Setup::new(&standard_config("cc = [\"noc@example.org\"]"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    edit_config(&s, "name = \"aws\"", "name = \"amazon\"");
    edit_config(&s, "cc = [\"noc@example.org\"]", "");
    s.append("messages", &drop_line("10:00:05", "3.5.140.2", "TCP", 22));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("\"aws\""), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 1, "nothing reported again");
}

/// Three addresses of `cloud`, one a part, one part a run: after the first run two wait.
fn two_cloud_parts_waiting() -> Setup {
    let s = Setup::new(
        &cidr_provider_config("max_ips_per_message = 1")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1"),
    );
    s.write("cloud.txt", "3.5.140.0/22\n34.208.0.0/12\n18.204.0.0/14\n");
    s.write(
        "messages",
        &[
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
            drop_line("10:00:01", "34.223.47.190", "UDP", 53),
            drop_line("10:00:02", "18.206.107.24", "TCP", 80),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    s
}

/// The provider's range file is replaced by one that no longer holds an address of a
/// waiting part: that part is not sent to the provider (the address is not its any more),
/// said on stderr; the other waiting part goes; nothing is lost or sent twice.
#[test]
fn a_waiting_part_on_an_address_the_new_ranges_no_longer_hold_is_withdrawn() {
    let s = two_cloud_parts_waiting();
    s.write("cloud.txt", "3.5.140.0/22\n34.208.0.0/12\n");
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    let preview = s.run(&["preview"]).ok();
    let out = s.run(&["run"]).ok();
    let sent = sent_addresses(&s);
    assert_eq!(sent, ["3.5.140.2", "34.223.47.190"], "{}", out.stderr);
    assert!(out.stderr.contains("18.206.107.24"), "{}", out.stderr);
    assert!(
        preview.stderr.contains("18.206.107.24"),
        "{}",
        preview.stderr
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 2);
}

/// A digest to a discovered desk (abuse@desk.hoster.de, for 45.10.0.1 and 45.10.0.2) that
/// failed transiently and waits to be sent again; the outbox emptied.
fn waiting_digest() -> (stubs::Rdap, stubs::Dns, Setup) {
    let (rdap, dns) = (stubs::Rdap::start(), stubs::Dns::start());
    discovery::abuse_net(
        &rdap,
        &["45.10.0.1", "45.10.0.2"],
        "45.10.0.0",
        "45.10.0.255",
        "NET-0",
        "abuse@desk.hoster.de",
    );
    let s = discovery::setup(&rdap, &dns, "max_lookups_per_run = 100\nabusix = false", "");
    s.append(
        "messages",
        &(drop_line("10:00:00", "45.10.0.1", "TCP", 22)
            + &drop_line("10:00:01", "45.10.0.2", "TCP", 22)),
    );
    // The relay is down: the digest is made, and fails.
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    discovery::use_smtp(&s, port);
    let failed = s.run_bounded(&["run"]);
    assert_eq!(failed.code, 75, "{}", failed.stderr);
    assert_eq!(history(&s)[0]["status"], "failed");
    fs::write(s.path("config.toml"), config).unwrap();
    (rdap, dns, s)
}

/// Every message in the outbox, one after another.
fn all_mail(s: &Setup) -> String {
    s.outbox()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect()
}

/// An address put in `report.ignore` (the operator's own network, say) while a digest naming
/// it waits: the digest is withdrawn, never sent, and the desk never hears of the address;
/// its other address goes in a new digest, with its log line.
#[test]
fn a_waiting_digest_of_an_address_ignored_since_is_withdrawn() {
    let (_rdap, _dns, s) = waiting_digest();
    edit_config(&s, "[report]\n", "[report]\nignore = [\"45.10.0.2/32\"]\n");
    let preview = s.run_bounded(&["preview"]).ok();
    assert!(
        preview
            .stderr
            .contains("would be withdrawn unsent: 45.10.0.2 is in report.ignore now"),
        "{}",
        preview.stderr
    );
    assert!(!preview.stdout.contains("45.10.0.2"), "{}", preview.stdout);
    let out = s.run_bounded(&["run"]).ok();
    assert!(
        out.stderr
            .contains("withdrawn unsent: 45.10.0.2 is in report.ignore now"),
        "{}",
        out.stderr
    );
    s.run_bounded(&["run"]).ok();
    let mail = all_mail(&s);
    assert_eq!(s.outbox().len(), 1, "{mail}");
    assert!(!mail.contains("45.10.0.2"), "{mail}");
    assert!(mail.contains("SRC=45.10.0.1 "), "{mail}");
    assert_eq!(sent_addresses(&s), ["45.10.0.1"]);
}

/// A desk put in `discover.never` while its digest waits is not written to.
#[test]
fn a_waiting_digest_to_a_desk_put_in_never_is_withdrawn() {
    let (_rdap, _dns, s) = waiting_digest();
    edit_config(
        &s,
        "abusix = false",
        "abusix = false\nnever = [\"hoster.de\"]",
    );
    let out = s.run_bounded(&["run"]).ok();
    assert!(
        out.stderr
            .contains("withdrawn unsent: abuse@desk.hoster.de is in discover.never now"),
        "{}",
        out.stderr
    );
    s.run_bounded(&["run"]).ok();
    assert_eq!(s.outbox().len(), 0);
    let history = history(&s);
    assert_eq!(history[0]["status"], "rejected");
}

/// Discovery turned off while a digest waits: no stranger is written to.
#[test]
fn a_waiting_digest_is_not_sent_once_discovery_is_off() {
    let (_rdap, _dns, s) = waiting_digest();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    let at = config.find("[discover]").unwrap();
    s.write("config.toml", &config[..at]);
    let out = s.run_bounded(&["run"]).ok();
    assert!(
        out.stderr
            .contains("withdrawn unsent: [discover] is no longer enabled"),
        "{}",
        out.stderr
    );
    assert_eq!(s.outbox().len(), 0);
}

/// A provider configured since whose ranges hold a waiting digest's addresses: the provider
/// gets them (configured providers win over discovery), the discovered desk does not, and
/// each address is reported once.
#[test]
fn a_waiting_digest_of_addresses_a_provider_now_holds_goes_to_the_provider() {
    let (_rdap, _dns, s) = waiting_digest();
    s.write("cloud.txt", "45.10.0.0/24\n");
    edit_config(
        &s,
        "[report]",
        "[[provider]]\nname = \"cloud\"\nto = [\"abuse@cloud.example\"]\nranges = \"cloud.txt\"\n\n[report]",
    );
    let out = s.run_bounded(&["run"]).ok();
    assert!(
        out.stderr
            .contains("withdrawn unsent: 45.10.0.1 is in provider cloud's ranges now"),
        "{}",
        out.stderr
    );
    s.run_bounded(&["run"]).ok();
    let mail = all_mail(&s);
    assert_eq!(s.outbox().len(), 1, "{mail}");
    assert!(mail.contains("To: abuse@cloud.example"), "{mail}");
    assert_eq!(sent_addresses(&s), ["45.10.0.1", "45.10.0.2"]);
}

/// `report.cc` changed while a digest waits: it does not go to the address taken out.
#[test]
fn a_waiting_digest_does_not_go_to_a_cc_taken_out() {
    let (_rdap, _dns, s) = waiting_digest();
    // Made again with a cc, as if the digest had been made while it was configured.
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute(
        "UPDATE report SET recipients = '[\"abuse@desk.hoster.de\",\"old-noc@example.org\"]'",
        [],
    )
    .unwrap();
    drop(db);
    let out = s.run_bounded(&["run"]).ok();
    assert!(
        out.stderr.contains(
            "withdrawn unsent: the desk abuse@desk.hoster.de is mailed at abuse@desk.hoster.de now, not abuse@desk.hoster.de, old-noc@example.org"
        ),
        "{}",
        out.stderr
    );
    assert!(!all_mail(&s).contains("old-noc@"), "{}", all_mail(&s));
}

/// An address logged while in no provider, then a range file replaced by one that holds it
/// (written in place, of the same size, its time set back as `cp -p` or `rsync -t` leave
/// it): the next run reports it without a line read, as it does for any range file change.
#[test]
fn an_address_a_replaced_range_file_now_holds_is_reported_whatever_the_files_time() {
    let s = Setup::new(&cidr_provider_config(""));
    s.write("cloud.txt", "3.5.140.0/22\n");
    s.write("messages", &drop_line("10:00:00", "45.10.0.1", "TCP", 22));
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 0);
    let before = fs::metadata(s.path("cloud.txt"))
        .unwrap()
        .modified()
        .unwrap();
    // Another provider's ranges, as many bytes.
    s.write("cloud.txt", "45.10.0.0/24\n");
    fs::File::options()
        .write(true)
        .open(s.path("cloud.txt"))
        .unwrap()
        .set_modified(before)
        .unwrap();
    let out = s.run(&["run"]).ok();
    assert_eq!(sent_addresses(&s), ["45.10.0.1"], "{}", out.stderr);
}

/// The mail of 45.10.0.1, seen while in no provider and reported once the range file grows to
/// hold it (`extra` in `[report]`).
fn reported_once_the_ranges_hold_it(extra: &str) -> String {
    let s = Setup::new(&cidr_provider_config(extra));
    s.write("cloud.txt", "3.5.140.0/22\n");
    s.write("messages", &drop_line("10:00:00", "45.10.0.1", "TCP", 22));
    s.run(&["run"]).ok();
    s.write("cloud.txt", "3.5.140.0/22\n45.10.0.0/24\n");
    s.run(&["run"]).ok();
    assert_eq!(sent_addresses(&s), ["45.10.0.1"]);
    all_mail(&s)
}

/// An address seen while in no provider, reported once a new range file holds it: no line of
/// it was kept then, so its report attaches no empty excerpt.log, nor names one.
#[test]
fn a_report_with_no_log_line_kept_attaches_no_empty_excerpt() {
    let mail = reported_once_the_ranges_hold_it("");
    assert!(!mail.contains("excerpt.log"), "{mail}");
    assert!(mail.contains("Attached for your tools: ips.csv."), "{mail}");
}

/// The same without `ips.csv`: the message names no file and attaches none, so it is plain
/// text, not a multipart message of one part.
#[test]
fn a_report_with_nothing_to_attach_is_plain_text() {
    let mail = reported_once_the_ranges_hold_it("attach_csv = false");
    assert!(!mail.contains("Attached for your tools"), "{mail}");
    assert!(!mail.contains("multipart"), "{mail}");
    assert!(mail.contains("Content-Type: text/plain"), "{mail}");
}

/// A source taken out of the configuration for a while and put back: it is read on from where
/// it was left, so the lines logged meanwhile count once and those read before not again.
#[test]
fn a_source_taken_out_and_put_back_counts_every_packet_once() {
    let s = Setup::new(&standard_config("min_hits = 3").replace("min_hits = 1\n", ""));
    let second = format!(
        "[[source]]\npath = \"{}\"\n\n[[provider]]",
        s.path("kern.log").display()
    );
    edit_config(&s, "[[provider]]", &second);
    s.write("messages", "");
    s.write("kern.log", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    edit_config(&s, &second, "[[provider]]");
    s.append("kern.log", &drop_line("10:00:01", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    fs::write(s.path("config.toml"), config).unwrap();
    s.append("kern.log", &drop_line("10:00:02", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s)["3.5.140.2"], 3);
    assert_eq!(sent_addresses(&s), ["3.5.140.2"]);
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

/// A provider renamed while its only report waits to be retried (it failed, nothing of it
/// was sent): that report is withdrawn, said, and its address goes once, under the new name,
/// to the same desk.
#[test]
fn a_provider_renamed_with_only_a_failed_report_sends_it_once_under_the_new_name() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.execute("UPDATE report SET status = 'failed', sent_at = NULL", [])
        .unwrap();
    drop(db);
    for f in s.outbox() {
        fs::remove_file(f).unwrap();
    }
    edit_config(&s, "name = \"aws\"", "name = \"amazon\"");
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr
            .contains("withdrawn unsent: provider aws is no longer configured"),
        "{}",
        out.stderr
    );
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
    let sent: Vec<(String, Vec<String>)> = history(&s)
        .iter()
        .filter(|r| r["status"] == "sent")
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                string_list(&r["ips"]),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [("amazon".to_string(), vec!["3.5.140.2".to_string()])]
    );
}

/// The desk's address spelt anew in other letter case while parts wait: it is the same desk,
/// so the parts go as stored (a part tried before may have reached it: a new report would be
/// a second message on the same addresses).
#[test]
fn a_desk_address_spelt_in_other_case_keeps_the_waiting_parts() {
    let s = two_cloud_parts_waiting();
    let waiting: Vec<String> = history(&s)
        .iter()
        .filter(|r| r["status"] != "sent")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    edit_config(&s, "ec2-abuse@amazon.com", "EC2-Abuse@Amazon.com");
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("withdrawn"), "{}", out.stderr);
    let sent: Vec<String> = history(&s)
        .iter()
        .filter(|r| r["status"] == "sent")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(
        waiting.iter().all(|id| sent.contains(id)),
        "{waiting:?} {sent:?}"
    );
}

/// The subject template changed while parts wait: the waiting parts go as they were made
/// (their text and Message-ID unchanged, whether tried before or not), a new report follows
/// the new template, and the run and the preview say so in one line; nothing is said when
/// nothing changed.
#[test]
fn parts_waiting_when_the_templates_change_go_as_made_and_the_run_says_so() {
    let s = two_cloud_parts_waiting();
    let quiet = s.run(&["preview"]).ok();
    assert!(
        !quiet.stderr.contains("made under other"),
        "{}",
        quiet.stderr
    );
    let made: Vec<(String, String)> = history(&s)
        .iter()
        .filter(|r| r["status"] != "sent")
        .map(|r| {
            let id = r["id"].as_str().unwrap().to_string();
            let message = s.run(&["show", &id]).ok().stdout;
            (id, message)
        })
        .collect();
    fs::create_dir_all(s.path("templates")).unwrap();
    s.write(
        "templates/subject.txt",
        "Abuse from {{ ip_count }} hosts (new wording)",
    );
    edit_config(
        &s,
        "[report]\n",
        "[report]\ntemplates_dir = \"templates\"\n",
    );
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    s.append("messages", &drop_line("10:05:00", "3.5.141.9", "TCP", 22));
    let said = "2 waiting report(s) to cloud were made under other templates or [report] settings than these: they go as made";
    let preview = s.run(&["preview"]).ok();
    assert!(preview.stderr.contains(said), "{}", preview.stderr);
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains(said), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 4);
    for (id, message) in &made {
        let sent = s.run(&["show", id]).ok().stdout;
        // Only the Date of a part never tried is the day it goes out.
        let body = |m: &str| m.split_once("\r\n\r\n").unwrap().1.to_string();
        assert_eq!(body(&sent), body(message), "{id}");
        assert!(!sent.contains("new wording"), "{sent}");
    }
    let newest = history(&s)
        .iter()
        .find(|r| string_list(&r["ips"]) == ["3.5.141.9"])
        .unwrap()["subject"]
        .clone();
    assert_eq!(newest, "Abuse from 1 hosts (new wording)");
    let again = s.run(&["preview"]).ok();
    assert!(
        !again.stderr.contains("made under other"),
        "{}",
        again.stderr
    );
}

/// A provider taken out while its parts wait: `history` says the next run withdraws them,
/// and why; the run does, and `history` then shows them rejected with that reason.
#[test]
fn history_says_what_the_next_run_does_with_a_removed_providers_parts() {
    let s = two_cloud_parts_waiting();
    s.reconfigure(
        &cidr_provider_config("max_ips_per_message = 1")
            .replace("name = \"cloud\"", "name = \"other\"")
            .replace("ec2-abuse@amazon.com", "abuse@other.example")
            .replace("cloud.txt", "other.txt"),
    );
    s.write("other.txt", "192.0.2.0/24\n");
    let said = "next run: withdrawn unsent: provider cloud is no longer configured";
    let before = s.run(&["history"]).ok();
    assert_eq!(before.stdout.matches(said).count(), 2, "{}", before.stdout);
    let out = s.run(&["run"]).ok();
    assert_eq!(
        out.stderr
            .matches("withdrawn unsent: provider cloud is no longer configured")
            .count(),
        2,
        "{}",
        out.stderr
    );
    let after = s.run(&["history"]).ok();
    assert!(!after.stdout.contains("next run:"), "{}", after.stdout);
    assert_eq!(
        after
            .stdout
            .matches("last error: withdrawn unsent: provider cloud is no longer configured")
            .count(),
        2,
        "{}",
        after.stdout
    );
    assert_eq!(s.outbox().len(), 1, "nothing more to the desk taken out");
}

/// `history --provider` with a name neither configured nor in the ledger is refused as
/// `run --provider` refuses it (78, naming it), not answered "no reports"; a provider taken
/// out of the configuration still lists what went to it, and a configured one with nothing
/// sent says so and succeeds.
#[test]
fn history_of_a_provider_no_one_knows_is_refused_and_of_a_removed_one_is_listed() {
    let s = two_cloud_parts_waiting();
    s.reconfigure(
        &cidr_provider_config("")
            .replace("name = \"cloud\"", "name = \"other\"")
            .replace("ec2-abuse@amazon.com", "abuse@other.example")
            .replace("cloud.txt", "other.txt"),
    );
    s.write("other.txt", "192.0.2.0/24\n");
    for args in [
        &["history", "--provider", "clodu"][..],
        &["history", "--provider", "clodu", "--json"][..],
    ] {
        let typo = s.run(args);
        assert_eq!(typo.code, 78, "{args:?}: {}{}", typo.stdout, typo.stderr);
        assert!(typo.stderr.contains("\"clodu\""), "{}", typo.stderr);
        assert!(typo.stderr.contains("known: other"), "{}", typo.stderr);
        assert!(typo.stdout.is_empty(), "{}", typo.stdout);
    }
    let removed = s
        .run(&["history", "--provider", "cloud", "--json"])
        .ok()
        .json();
    assert_eq!(removed.as_array().unwrap().len(), 3, "{removed}");
    // Of an address it was never sent: none, said as such, not refused.
    let none = s.run(&[
        "history",
        "--provider",
        "cloud",
        "--ip",
        "192.0.2.1",
        "--json",
    ]);
    assert_eq!(none.ok().json(), serde_json::json!([]));
    let none = s.run(&["history", "--provider", "other"]).ok();
    assert_eq!(none.stdout, "no reports\n");
}

/// `max_message_bytes` lowered while a part made under the old limit waits: the part goes as
/// made, and the run says so.
#[test]
fn a_part_made_under_a_larger_size_limit_goes_as_made_and_the_run_says_so() {
    let s = two_cloud_parts_waiting();
    edit_config(
        &s,
        "max_ips_per_message = 1",
        "max_ips_per_message = 1\nmax_message_bytes = 20000",
    );
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    let out = s.run(&["run"]).ok();
    assert!(
        out.stderr.contains(
            "2 waiting report(s) to cloud were made under other templates or [report] settings"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(s.outbox().len(), 3);
    assert_eq!(
        sent_addresses(&s),
        ["18.206.107.24", "3.5.140.2", "34.223.47.190"]
    );
}

/// A report to the AWS API waits (the endpoint was down) when its address is put in
/// `report.ignore` (the operator's own instance, say): it is withdrawn, never sent, and the
/// API is not called about it.
#[test]
fn a_waiting_api_report_on_an_address_ignored_since_is_withdrawn() {
    let s = api_report_waiting();
    edit_config(&s, "[report]\n", "[report]\nignore = [\"3.5.140.2/32\"]\n");
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 0, "not tried again: {}", out.stderr);
    assert!(
        out.stderr
            .contains("withdrawn unsent: 3.5.140.2 is in report.ignore now"),
        "{}",
        out.stderr
    );
    assert_eq!(history(&s)[0]["status"], "rejected");
}

/// `aws_api.test` turned on while a real report to the API waits (the operator wants no real
/// report now): it is withdrawn unsent and its address goes in a test report; turned off
/// again, the waiting test report is withdrawn for a real one. Nothing is lost.
#[test]
fn a_waiting_api_report_follows_aws_api_test_as_it_is_now() {
    let s = api_report_waiting();
    edit_config(&s, "timeout_secs = 5\n", "timeout_secs = 5\ntest = true\n");
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "the endpoint is still down: {}", out.stderr);
    assert!(
        out.stderr
            .contains("withdrawn unsent: made as a real report, and aws_api.test is on now"),
        "{}",
        out.stderr
    );
    let rows = history(&s);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["status"], "rejected");
    let id = rows[1]["id"].as_str().unwrap();
    assert!(s.run(&["show", id]).ok().stdout.contains("lifecycle:test"));
    edit_config(&s, "test = true\n", "");
    let before = s.run(&["history"]).ok();
    assert!(
        before.stdout.contains(
            "next run: withdrawn unsent: made as a test report, and aws_api.test is off now"
        ),
        "{}",
        before.stdout
    );
    let out = s.run_bounded(&["run"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    let rows = history(&s);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let id = rows[2]["id"].as_str().unwrap();
    assert!(!s.run(&["show", id]).ok().stdout.contains("lifecycle:test"));
    assert_eq!(string_list(&rows[2]["ips"]), ["3.5.140.2"]);
}

/// A provider `aws` reporting through the AWS API at an endpoint nobody listens on: the
/// first run's report of 3.5.140.2 failed and waits.
fn api_report_waiting() -> Setup {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let config = through_aws_api(&standard_config(""), &endpoint, "timeout_secs = 5");
    let mut s = Setup::new(&config);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "AKIAABUSEMAILERTEST1"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYabuseMailerSECRET42",
        ),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
    ] {
        s.env.push((k.to_string(), v.to_string()));
    }
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let first = s.run_bounded(&["run"]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    assert_eq!(history(&s)[0]["status"], "failed");
    s
}

/// A provider renamed in the same edit that moves its desk to another address (`aws` mailed
/// at ec2-abuse@amazon.com becomes `amazon` mailed at abuse@amazonaws.com): the new desk
/// never heard of those addresses, so they go to it, but `check`, `preview` and the run say
/// so, naming the old name to give back to keep its history; giving it back reports nothing
/// again.
#[test]
fn a_provider_renamed_with_its_desk_moved_is_said_before_it_reports_again() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    edit_config(&s, "name = \"aws\"", "name = \"amazon\"");
    edit_config(&s, "ec2-abuse@amazon.com", "abuse@amazonaws.com");
    let said = "provider \"amazon\" has no reports yet, and at least 1 address(es) that provider \"aws\" (no longer configured) reported to ec2-abuse@amazon.com are in its ranges";
    let check = s.run(&["check"]);
    assert!(check.stdout.contains(said), "{}", check.stdout);
    let preview = s.run(&["preview"]).ok();
    assert!(preview.stderr.contains(said), "{}", preview.stderr);
    assert!(
        preview.stderr.contains("give it back the name \"aws\""),
        "{}",
        preview.stderr
    );
    // Given back its name, the desk moved: nothing is reported again.
    fs::write(
        s.path("config.toml"),
        config.replace("ec2-abuse@amazon.com", "abuse@amazonaws.com"),
    )
    .unwrap();
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("no reports yet"), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 1);
    // Another provider at another desk with other ranges: nothing to say.
    s.reconfigure(&with_other_provider(&standard_config("")).replace(
        "[[provider]]\nname = \"aws\"\nto = [\"ec2-abuse@amazon.com\"]\nranges = \"{repo}/fixtures/ranges/aws-ip-ranges.json\"\nservices = [\"EC2\"]\n",
        "",
    ));
    let other = s.run(&["preview"]).ok();
    assert!(!other.stderr.contains("no reports yet"), "{}", other.stderr);
}

/// A part withdrawn because the desk's address changed is replaced by a report to the new
/// address that shows its addresses' log lines, as the part did: the lines kept of an
/// address are let go when a report on it is sent, not when it is made.
#[test]
fn a_report_replacing_a_withdrawn_part_shows_its_log_lines() {
    let s = two_cloud_parts_waiting();
    edit_config(&s, "ec2-abuse@amazon.com", "abuse@cloud.example");
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    let preview = s.run(&["preview", "--json"]).ok().json();
    for report in preview["reports"].as_array().unwrap() {
        assert_eq!(report["excerpt"].as_array().unwrap().len(), 1, "{report}");
    }
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("withdrawn unsent"), "{}", out.stderr);
    let new: Vec<String> = s
        .outbox()
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .filter(|m| m.contains("To: abuse@cloud.example"))
        .collect();
    assert_eq!(new.len(), 2);
    for (m, ip) in new.iter().zip(["18.206.107.24", "34.223.47.190"]) {
        assert!(m.contains(&format!("SRC={ip} ")), "{m}");
    }
}

/// `state_dir` moved (the folder renamed, the configuration edited to name it) while a part
/// waits: the state carries on there, the part goes once, nothing is read or sent again.
#[test]
fn a_state_dir_moved_with_a_part_waiting_carries_on() {
    let s = two_cloud_parts_waiting();
    fs::rename(s.path("state"), s.path("moved-state")).unwrap();
    edit_config(&s, "/state\"", "/moved-state\"");
    edit_config(&s, "max_messages_per_run = 1", "max_messages_per_run = 10");
    let out = s.run(&["run"]).ok();
    assert!(out.stderr.contains("read 0 lines"), "{}", out.stderr);
    assert!(!s.path("state").exists());
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 3);
    let db = rusqlite::Connection::open(s.path("moved-state/state.db")).unwrap();
    let sent: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM report WHERE status = 'sent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent, 3);
}

/// How many log lines the state keeps of `ip`.
fn lines_kept(s: &Setup, ip: &str) -> i64 {
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM evidence WHERE ip = ?1", [ip], |r| {
        r.get(0)
    })
    .unwrap()
}

/// A report the mail server refuses (552) gives its address back: the report that replaces
/// it, once the mail goes, shows the address's log line, and once that is sent the line is
/// let go. A digest a discovered desk's server refuses keeps its addresses from that desk,
/// and their lines are let go at once; but not one refused for its size, which the
/// operator's own relay refuses (withdrawn: its addresses and lines wait for the next).
#[test]
fn lines_stay_until_a_report_is_sent_or_refused_for_good() {
    let server = faulty_smtp::FaultyServer::start(faulty_smtp::Mode::Reject552);
    let s = Setup::standard();
    let config = fs::read_to_string(s.path("config.toml")).unwrap();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    discovery::use_smtp(&s, server.port);
    assert_eq!(s.run_bounded(&["run"]).code, 1);
    assert_eq!(history(&s)[0]["status"], "rejected");
    assert!(lines_kept(&s, "3.5.140.2") > 0, "kept for the next report");
    fs::write(s.path("config.toml"), &config).unwrap();
    s.run(&["run"]).ok();
    let mail = all_mail(&s);
    assert!(mail.contains("SRC=3.5.140.2 "), "{mail}");
    assert_eq!(lines_kept(&s, "3.5.140.2"), 0, "sent: let go");

    let (_rdap, _dns, d) = waiting_digest();
    assert!(lines_kept(&d, "45.10.0.1") > 0);
    discovery::use_smtp(&d, server.port);
    assert_eq!(d.run_bounded(&["run"]).code, 1);
    assert_eq!(history(&d)[0]["status"], "rejected");
    assert!(
        lines_kept(&d, "45.10.0.1") > 0,
        "refused for its size: kept"
    );
    server.set_mode(faulty_smtp::Mode::RejectWithControls);
    assert_eq!(d.run_bounded(&["run"]).code, 1);
    assert_eq!(history(&d).len(), 2, "a digest made anew");
    assert_eq!(lines_kept(&d, "45.10.0.1"), 0, "refused for good: let go");
}

/// The mail relay is down for days while one address attacks on and new ones come: the
/// lines kept (now until a report is sent) stay at three of each address's own, whether it
/// waits in a failed report or in none yet, so the state grows with the addresses, not with
/// the packets (and `max_age_days` lets them go).
#[test]
fn lines_kept_while_mail_fails_for_days_stay_bounded_per_address() {
    let mut s = Setup::new(&standard_config("").replace(
        "[mail]\ntransport = \"file\"\ndir = \"{dir}/outbox\"",
        "[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"\ntimeout_secs = 2",
    ));
    for day in 0..6 {
        let mut text = String::new();
        for k in 0..20 {
            text.push_str(&drop_line(
                &format!("1{day}:00:{k:02}"),
                "3.5.140.2",
                "TCP",
                22,
            ));
            let new = format!("34.223.47.{}", 100 + day * 20 + k);
            text.push_str(&drop_line(&format!("1{day}:01:{k:02}"), &new, "UDP", 53));
        }
        s.append("messages", &text);
        s.now = format!("2026-01-{:02}T09:00:00Z", 26 + day);
        assert_eq!(s.run(&["run"]).code, 75, "nobody listens on port 9");
    }
    assert_eq!(history(&s)[0]["status"], "failed");
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let (most, addresses): (i64, i64) = db
        .query_row(
            "SELECT max(n), count(*) FROM
                 (SELECT count(*) AS n FROM evidence WHERE dense = 0 GROUP BY ip)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(most, 3, "at most three lines of one address");
    assert_eq!(addresses, 121);
}

/// A state an older version kept has no record of what its waiting parts were made under:
/// with the templates changed, they go as made all the same, and the run claims nothing
/// about them (it cannot know).
#[test]
fn parts_waiting_in_a_state_without_a_made_under_record_go_as_made() {
    let s = two_cloud_parts_waiting();
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    assert_eq!(
        db.execute("DELETE FROM meta WHERE key = 'made_under'", [])
            .unwrap(),
        1
    );
    drop(db);
    fs::create_dir_all(s.path("templates")).unwrap();
    s.write(
        "templates/subject.txt",
        "Abuse from {{ ip_count }} hosts (new)",
    );
    edit_config(
        &s,
        "[report]\n",
        "[report]\ntemplates_dir = \"templates\"\n",
    );
    let out = s.run(&["run"]).ok();
    assert!(!out.stderr.contains("made under"), "{}", out.stderr);
    assert_eq!(s.outbox().len(), 2, "the next part goes, as made");
    for mail in s.outbox() {
        let text = fs::read_to_string(&mail).unwrap();
        assert!(!text.contains("(new)"), "{text}");
    }
}

/// Parts waiting for the budget, two of them withdrawn now (an address of each left the
/// provider's ranges), and another provider's new report: the run sends what `preview` lists
/// first. A withdrawn part took its provider's turn, and the other provider's report went
/// instead of the part `preview` said.
#[test]
fn a_withdrawn_report_takes_no_turn_from_what_preview_lists_first() {
    let s = Setup::new(
        &cidr_provider_config("max_ips_per_message = 2")
            .replace("[mail]", "[mail]\nmax_messages_per_run = 1")
            .replace(
                "[report]",
                "[[provider]]\nname = \"other\"\nto = [\"abuse@other.example\"]\nranges = \"{dir}/other.txt\"\n\n[report]",
            ),
    );
    s.write("cloud.txt", "92.118.10.0/24\n92.118.11.0/24\n");
    s.write("other.txt", "45.77.1.0/24\n");
    // Four parts of two, each but the first with one address of 92.118.10.0/24.
    let cloud = [
        "10.1", "10.2", "10.3", "11.1", "10.4", "11.2", "10.5", "11.3",
    ];
    let mut log: String = (cloud.iter().enumerate())
        .map(|(n, x)| drop_line(&format!("10:00:0{n}"), &format!("92.118.{x}"), "TCP", 22))
        .collect();
    log.push_str(&drop_line("10:00:08", "45.77.1.1", "TCP", 22));
    log.push_str(&drop_line("10:00:09", "45.77.1.2", "TCP", 22));
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let before = sent_addresses(&s);
    assert_eq!(before.len(), 2, "{before:?}");
    s.write("cloud.txt", "92.118.11.0/24\n");
    let preview = s.run(&["preview", "--json"]).ok().json();
    let first: Vec<String> = (preview["reports"][0]["ips"].as_array().unwrap().iter())
        .map(|i| i["ip"].as_str().unwrap().to_string())
        .collect();
    let out = s.run(&["run"]).ok();
    let mut sent = sent_addresses(&s);
    sent.retain(|ip| !before.contains(ip));
    assert_eq!(sent, first, "{}", out.stderr);
    assert!(out.stderr.contains("withdrawn unsent"), "{}", out.stderr);
}
