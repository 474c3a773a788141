//! Time as a host's calendar gives it: the hour a zone's clock shows twice in autumn, the
//! hour it skips in spring, the turn of the year, a clock moved between runs, and the times a
//! desk reads in the mail. The binary is run as a process on a pinned clock
//! (`ABUSE_MAILER_NOW`).

mod common;

use common::*;
use mail_parser::MimeHeaders;
use std::path::Path;
use std::process::Command;

/// A packet line with a BSD stamp (`Oct 25 02:30:00`) from `src`.
fn line(stamp: &str, src: &str) -> String {
    format!(
        "{stamp} web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 \n"
    )
}

/// The standard setup, its syslog stamps in `zone`, the clock at `now`.
fn setup_in(zone: &str, extra_report: &str, now: &str) -> Setup {
    let mut s = Setup::new(
        &standard_config(extra_report)
            .replace("timezone = \"UTC\"", &format!("timezone = \"{zone}\"")),
    );
    s.now = now.to_string();
    s
}

/// The entry of `ip` in the first report of a `preview --json`.
fn entry(preview: &serde_json::Value, ip: &str) -> serde_json::Value {
    preview["reports"][0]["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ip"] == ip)
        .unwrap_or_else(|| panic!("{ip} not reported: {preview}"))
        .clone()
}

/// First and last seen of `ip`, as `preview --json` gives them.
fn seen(preview: &serde_json::Value, ip: &str) -> (String, String) {
    let e = entry(preview, ip);
    (
        e["first_seen"].as_str().unwrap().to_string(),
        e["last_seen"].as_str().unwrap().to_string(),
    )
}

fn pair(first: &str, last: &str) -> (String, String) {
    (first.to_string(), last.to_string())
}

/// Berlin's clock shows 02:00-03:00 twice on 25 October 2026. `34.223.47.190` logs in the
/// first pass, `3.5.140.2` in the second: one read of the whole file gives each its own hour.
#[test]
fn a_line_of_the_repeated_hours_second_pass_is_reported_an_hour_later() {
    let s = setup_in("Europe/Berlin", "", "2026-10-25T06:00:00Z");
    let mut log = String::new();
    for (stamp, src) in [
        ("Oct 25 01:59:00", "34.223.47.190"),
        ("Oct 25 02:10:00", "34.223.47.190"),
        ("Oct 25 02:50:00", "34.223.47.190"),
        ("Oct 25 02:05:00", "3.5.140.2"),
        ("Oct 25 02:40:00", "3.5.140.2"),
        ("Oct 25 03:10:00", "34.223.47.190"),
    ] {
        log.push_str(&line(stamp, src));
    }
    s.write("messages", &log);
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:40:00+01:00")
    );
    assert_eq!(
        seen(&preview, "34.223.47.190"),
        pair("2026-10-25T01:59:00+02:00", "2026-10-25T03:10:00+01:00")
    );
}

/// A run stopped in the first pass of the repeated hour; the next reads on from its cursor
/// into the second pass, which it reads as the second, not as the hour already read; and a
/// run after that, three quarters of an hour of the second pass later, still does.
#[test]
fn a_run_resuming_in_the_repeated_hours_second_pass_reads_it_as_the_second() {
    let mut s = setup_in("Europe/Berlin", "", "2026-10-25T00:55:00Z");
    s.write(
        "messages",
        &[
            line("Oct 25 02:10:00", "34.223.47.190"),
            line("Oct 25 02:50:00", "34.223.47.190"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append("messages", &line("Oct 25 02:05:00", "3.5.140.2"));
    s.now = "2026-10-25T01:06:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:05:00+01:00")
    );
    s.run(&["run"]).ok();
    s.append("messages", &line("Oct 25 02:50:00", "18.204.1.7"));
    s.now = "2026-10-25T06:00:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "18.204.1.7"),
        pair("2026-10-25T02:50:00+01:00", "2026-10-25T02:50:00+01:00")
    );
}

/// A run read two lines of the repeated hour's first pass; the next, an hour later, reads on
/// from its cursor through more of the first pass into the second. Each line is read in the
/// pass it was logged in: the lines before the cursor were held to the time that run began,
/// which they were written before, and taken for the second pass, and the new first-pass
/// lines after them with them, an hour late (a report's times after its own Date).
#[test]
fn lines_before_the_cursor_in_the_repeated_hour_keep_their_pass() {
    let mut s = setup_in("America/New_York", "", "2026-11-01T05:17:00Z");
    s.write(
        "messages",
        &[
            line("Nov  1 01:05:00", "34.223.47.190"),
            line("Nov  1 01:15:00", "34.223.47.190"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            line("Nov  1 01:20:00", "3.5.140.2"),
            line("Nov  1 01:40:00", "3.5.140.3"),
            line("Nov  1 01:10:00", "18.204.1.7"),
        ]
        .concat(),
    );
    s.now = "2026-11-01T06:17:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    for (ip, at) in [
        ("3.5.140.2", "2026-11-01T01:20:00-04:00"),
        ("3.5.140.3", "2026-11-01T01:40:00-04:00"),
        ("18.204.1.7", "2026-11-01T01:10:00-05:00"),
    ] {
        assert_eq!(seen(&preview, ip), pair(at, at), "{ip}");
    }
}

/// A run read the log to 02:35 summer time before the clock went back; the next reads an
/// appended `02:10`, 25 minutes behind that, as winter time's: summer time's would be
/// before the run that had read the file. The half-hour rule alone took it for a host a
/// little behind, and dated it half an hour before that run.
#[test]
fn a_line_appended_after_a_run_is_not_dated_before_that_run() {
    let mut s = setup_in("Europe/Berlin", "", "2026-10-25T00:40:00Z");
    s.write(
        "messages",
        &[
            line("Oct 25 02:30:00", "34.223.47.190"),
            line("Oct 25 02:35:00", "34.223.47.190"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            line("Oct 25 02:10:00", "3.5.140.2"),
            line("Oct 25 02:12:00", "3.5.140.2"),
        ]
        .concat(),
    );
    s.now = "2026-10-25T01:20:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:10:00+01:00", "2026-10-25T02:12:00+01:00")
    );
}

/// Lines 34 minutes behind the one before them, read while the clock is still in the first
/// pass of the repeated hour (the file last written then): they are in the first pass too.
/// The half-hour rule alone put them in the second, an hour after the file was written.
#[test]
fn a_line_is_not_put_in_a_second_pass_that_has_not_begun() {
    let s = setup_in("Europe/Berlin", "", "2026-10-25T00:40:00Z");
    s.write(
        "messages",
        &[
            line("Oct 25 02:39:00", "34.223.47.190"),
            line("Oct 25 02:05:00", "3.5.140.2"),
            line("Oct 25 02:06:00", "3.5.140.2"),
        ]
        .concat(),
    );
    modified_at(&s, "messages", "2026-10-25T00:39:30Z");
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+02:00", "2026-10-25T02:06:00+02:00")
    );
}

/// A run that counted its last packet long before the lines it read last (answers to the
/// host's own traffic, which count as no packet) stopped in the first pass; the next reads on
/// into the second pass from what those lines say, not from the last packet counted, which
/// would put it an hour early.
#[test]
fn a_run_resuming_after_lines_it_did_not_count_reads_the_second_pass_as_the_second() {
    let mut s = setup_in("Europe/Berlin", "", "2026-10-25T00:55:00Z");
    let mut log = line("Oct 25 02:10:00", "34.223.47.190");
    for minute in 11..=50 {
        let answer = line(&format!("Oct 25 02:{minute}:00"), "18.204.1.7");
        log.push_str(&answer.replace(" SYN ", " ACK "));
    }
    s.write("messages", &log);
    s.run(&["run"]).ok();
    s.append("messages", &line("Oct 25 02:05:00", "3.5.140.2"));
    s.now = "2026-10-25T01:06:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:05:00+01:00")
    );
}

/// A host's folder renamed under a glob between two runs in the repeated hour, its last
/// packet far back behind another program's lines: the run that reads on under the new name
/// goes on from what the old name counted, and reads the second pass as the second.
#[test]
fn a_file_read_on_under_a_new_name_reads_the_second_pass_from_what_the_old_name_counted() {
    let config = standard_config("").replace("{dir}/messages", "{dir}/remote/*/messages");
    let mut s = Setup::new(&config.replace("timezone = \"UTC\"", "timezone = \"Europe/Berlin\""));
    s.now = "2026-10-25T00:55:00Z".to_string();
    std::fs::create_dir_all(s.path("remote/hosta")).unwrap();
    let mut log = line("Oct 25 02:50:00", "34.223.47.190");
    for _ in 0..2000 {
        log.push_str("Oct 25 02:50:00 web1 cron[7]: (root) CMD (run-parts /etc/cron.hourly)\n");
    }
    s.write("remote/hosta/messages", &log);
    s.run(&["run"]).ok();
    std::fs::rename(s.path("remote/hosta"), s.path("remote/hosta.example.org")).unwrap();
    s.append(
        "remote/hosta.example.org/messages",
        &line("Oct 25 02:05:00", "3.5.140.2"),
    );
    s.now = "2026-10-25T01:06:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:05:00+01:00")
    );
}

/// What a desk reads of the repeated hour: the mail's body and `ips.csv` give the second
/// pass's times with the offset the clock then had, as `preview --json` does.
#[test]
fn the_mail_gives_the_repeated_hours_second_pass_with_its_own_offset() {
    let s = setup_in("Europe/Berlin", "", "2026-10-25T06:00:00Z");
    s.write(
        "messages",
        &[
            line("Oct 25 02:50:00", "34.223.47.190"),
            line("Oct 25 02:05:00", "3.5.140.2"),
            line("Oct 25 02:40:00", "3.5.140.2"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    let sent = s.outbox();
    assert_eq!(sent.len(), 1);
    let raw = std::fs::read(&sent[0]).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        body.contains("Period:   2026-10-25T02:50:00+02:00 to 2026-10-25T02:40:00+01:00\n"),
        "{body}"
    );
    assert!(
        body.contains("2026-10-25T02:05:00+01:00 to 2026-10-25T02:40:00+01:00"),
        "{body}"
    );
    let csv = message
        .attachments()
        .find(|a| a.attachment_name() == Some("ips.csv"))
        .map(|a| String::from_utf8_lossy(a.contents()).into_owned())
        .unwrap();
    assert!(
        csv.contains("3.5.140.2,2026-10-25T02:05:00+01:00,2026-10-25T02:40:00+01:00,2,"),
        "{csv}"
    );
}

/// The spring gap: a host still on winter time logs 02:30 on the day Berlin skips it; the
/// line is read at +01:00 (03:30 summer time), after the line of 01:59, not before it.
#[test]
fn a_line_in_the_spring_gap_is_read_after_the_line_before_it() {
    let s = setup_in("Europe/Berlin", "", "2026-03-29T06:00:00Z");
    s.write(
        "messages",
        &[
            line("Mar 29 01:59:00", "3.5.140.2"),
            line("Mar 29 02:30:00", "3.5.140.2"),
        ]
        .concat(),
    );
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-03-29T01:59:00+01:00", "2026-03-29T03:30:00+02:00")
    );
}

/// Lines of Dec 31 read a second into January (in the configured zone, not UTC) are last
/// year's; those of Jan 1 this year's.
#[test]
fn december_lines_read_in_the_first_second_of_january_are_last_years() {
    for (zone, now, offset) in [
        ("UTC", "2027-01-01T00:00:01Z", "+00:00"),
        ("Europe/Berlin", "2026-12-31T23:00:01Z", "+01:00"),
        ("America/New_York", "2027-01-01T05:00:01Z", "-05:00"),
    ] {
        let s = setup_in(zone, "", now);
        s.write(
            "messages",
            &[
                line("Dec 31 23:59:59", "3.5.140.2"),
                line("Jan  1 00:00:00", "3.5.140.2"),
            ]
            .concat(),
        );
        let preview = s.run(&["preview", "--json"]).ok().json();
        assert_eq!(
            seen(&preview, "3.5.140.2"),
            pair(
                &format!("2026-12-31T23:59:59{offset}"),
                &format!("2027-01-01T00:00:00{offset}")
            ),
            "{zone}"
        );
    }
}

/// `max_age_days` counts to the second: a packet logged exactly that long ago is reported,
/// one a second older is stale.
#[test]
fn a_packet_exactly_max_age_days_old_counts_and_a_second_older_is_stale() {
    let s = setup_in("UTC", "max_age_days = 30", "2026-01-26T08:00:00Z");
    s.write(
        "messages",
        &[
            line("Dec 27 07:59:59", "34.223.47.190"),
            line("Dec 27 08:00:00", "3.5.140.2"),
        ]
        .concat(),
    );
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&preview["reports"][0]["ips"]), ["3.5.140.2"]);
    assert_eq!(preview["summary"]["lines_stale"], 1);
}

/// RFC 3339 stamps carry their own offset and may carry fractions of a second: they are read
/// as the instant they name, whatever `timezone` says, and shown in `timezone`.
#[test]
fn rfc3339_stamps_with_offsets_and_fractions_are_the_instants_they_name() {
    let s = setup_in("Europe/Berlin", "", "2026-01-26T08:00:00Z");
    s.write(
        "messages",
        &[
            line("2026-01-25T10:00:00.999999+09:00", "3.5.140.2"),
            line("2026-01-25T01:30:00.5-05:45", "3.5.140.2"),
            line("2026-01-25T00:59:59.000001Z", "34.223.47.190"),
            line("2026-01-25T03:00:00+05:45", "34.223.47.190"),
        ]
        .concat(),
    );
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-01-25T02:00:00+01:00", "2026-01-25T08:15:00+01:00")
    );
    assert_eq!(
        seen(&preview, "34.223.47.190"),
        pair("2026-01-24T22:15:00+01:00", "2026-01-25T01:59:59+01:00")
    );
}

/// The clock set back three hours between runs (NTP correcting a clock that ran ahead): what
/// is new is still reported, once, and nothing reported is sent again when the clock is
/// right once more.
#[test]
fn a_clock_set_back_between_runs_reports_what_is_new_once() {
    let mut s = setup_in("UTC", "", "2026-01-26T08:00:00Z");
    s.write("messages", &line("Jan 26 07:50:00", "34.223.47.190"));
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), [["34.223.47.190"]]);
    s.now = "2026-01-26T05:00:00Z".to_string();
    s.append(
        "messages",
        &[
            line("Jan 26 04:50:00", "3.5.140.2"),
            line("Jan 26 04:51:00", "34.223.47.190"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    // The ledger lists reports by when the clock said they were made.
    let both = [["3.5.140.2"], ["34.223.47.190"]];
    assert_eq!(s.reported(), both);
    s.now = "2026-01-26T09:00:00Z".to_string();
    s.append("messages", &line("Jan 26 08:55:00", "3.5.140.2"));
    s.run(&["run"]).ok();
    assert_eq!(s.reported(), both);
    assert_eq!(s.outbox().len(), 2);
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(preview["reports"].as_array().unwrap().len(), 0, "{preview}");
}

/// With `rereport_after_days`, a clock set back does not make a report sent "later" than
/// now hold an address back for longer, nor send it again early.
#[test]
fn a_clock_set_back_does_not_rereport_early() {
    let mut s = setup_in("UTC", "rereport_after_days = 1", "2026-01-26T08:00:00Z");
    s.write("messages", &line("Jan 26 07:50:00", "34.223.47.190"));
    s.run(&["run"]).ok();
    s.now = "2026-01-26T02:00:00Z".to_string();
    s.append("messages", &line("Jan 26 01:59:00", "34.223.47.190"));
    s.run(&["run"]).ok();
    assert_eq!(s.reported().len(), 1);
    // A day and a minute after the report, still sending: reported again, once.
    s.now = "2026-01-27T08:01:00Z".to_string();
    s.append("messages", &line("Jan 27 08:00:00", "34.223.47.190"));
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(s.reported().len(), 2);
}

/// `timezone = "local"` is the system's zone (here `TZ`): its repeated hour is read as a
/// named zone's is, and reports name the zone and give its offsets.
#[test]
fn the_local_zone_reads_the_repeated_hour_as_the_named_zone_does() {
    let mut s = setup_in("local", "", "2026-10-25T06:00:00Z");
    s.env.push(("TZ".to_string(), "Europe/Berlin".to_string()));
    s.write(
        "messages",
        &[
            line("Oct 25 02:50:00", "34.223.47.190"),
            line("Oct 25 02:05:00", "3.5.140.2"),
            line("Oct 25 02:40:00", "3.5.140.2"),
        ]
        .concat(),
    );
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:40:00+01:00")
    );
    assert_eq!(
        seen(&preview, "34.223.47.190"),
        pair("2026-10-25T02:50:00+02:00", "2026-10-25T02:50:00+02:00")
    );
    let text = s.run(&["preview"]).ok().stdout;
    assert!(text.contains("(Europe/Berlin)"), "{text}");
}

/// The zone's name is matched as the documentation writes it, and `Local` or `utc` are the
/// same zones as `local` and `UTC`; an unknown name is a configuration error naming it.
#[test]
fn zone_names_in_any_case_of_local_and_utc_are_those_zones() {
    for zone in ["Local", "LOCAL", "utc", "Utc"] {
        let mut s = setup_in(zone, "", "2026-01-26T08:00:00Z");
        s.env.push(("TZ".to_string(), "UTC".to_string()));
        s.write("messages", &line("Jan 25 10:00:00", "3.5.140.2"));
        let preview = s.run(&["preview", "--json"]).ok().json();
        assert_eq!(
            seen(&preview, "3.5.140.2"),
            pair("2026-01-25T10:00:00+00:00", "2026-01-25T10:00:00+00:00"),
            "{zone}"
        );
    }
    let s = setup_in("Europe/Berlln", "", "2026-01-26T08:00:00Z");
    s.write("messages", &line("Jan 25 10:00:00", "3.5.140.2"));
    let ran = s.run(&["preview", "--json"]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    assert!(ran.stderr.contains("Europe/Berlln"), "{}", ran.stderr);
}

/// `timezone = "local"` under a `TZ` that names no zone (a case slip, a file not there,
/// no zone rule) is a setting to fix, naming `TZ`: every stamp was read as UTC, without a
/// word, under the name `TZ` gives. A zone file's name, a file, and a POSIX rule are zones.
#[test]
fn a_tz_that_names_no_zone_is_a_setting_to_fix() {
    for tz in [
        "Europe/berlin",
        "Nowhere/Invalid",
        ":/nonexistent/zone",
        "CET-1CEST,M3.5.0",
    ] {
        let mut s = setup_in("local", "", "2026-01-26T08:00:00Z");
        s.env.push(("TZ".to_string(), tz.to_string()));
        s.write("messages", &line("Jan 25 10:00:00", "3.5.140.2"));
        let ran = s.run(&["preview", "--json"]);
        assert_eq!(ran.code, 78, "{tz}: {}", ran.stderr);
        assert!(ran.stderr.contains(&format!("TZ={tz:?}")), "{}", ran.stderr);
        assert!(ran.stderr.contains("timezone"), "{}", ran.stderr);
        let checked = s.run(&["check"]);
        assert_eq!(checked.code, 78, "{tz}: {}", checked.stdout);
    }
    for (tz, offset) in [
        ("Europe/Berlin", "+01:00"),
        (":Europe/Berlin", "+01:00"),
        ("/usr/share/zoneinfo/Europe/Berlin", "+01:00"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", "+01:00"),
        ("<+0330>-3:30", "+03:30"),
        ("EST5EDT", "-05:00"),
        ("", "+00:00"),
    ] {
        if tz.contains("Europe") && !Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            continue;
        }
        let mut s = setup_in("local", "", "2026-01-26T08:00:00Z");
        s.env.push(("TZ".to_string(), tz.to_string()));
        s.write("messages", &line("Jan 25 10:00:00", "3.5.140.2"));
        let preview = s.run(&["preview", "--json"]).ok().json();
        let (first, _) = seen(&preview, "3.5.140.2");
        assert!(first.ends_with(offset), "{tz:?}: {first}");
    }
}

/// Sets the time `rel` of `s` was last modified, as the clock of the host that wrote it had it.
fn modified_at(s: &Setup, rel: &str, time: &str) {
    let time = chrono::DateTime::parse_from_rfc3339(time).unwrap();
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.timestamp() as u64);
    let file = std::fs::File::options()
        .write(true)
        .open(s.path(rel))
        .unwrap();
    file.set_modified(at).unwrap();
}

/// A yearly rotated log (`messages.1`, last written on New Year's Eve) read by a first run on
/// Jan 20: its January lines are last January's, a year old, not this January's. They were
/// reported as attacks of Jan 12, a year after they were logged.
#[test]
fn a_rotated_years_january_is_that_years_not_this_ones() {
    let s = setup_in("UTC", "", "2026-01-20T10:00:00Z");
    s.write(
        "messages.1",
        &[
            line("Jan 12 08:00:00", "3.5.140.2"),
            line("Jan 12 08:00:01", "3.5.140.2"),
            line("Jan 12 08:00:02", "3.5.140.2"),
            line("Jun 15 08:00:00", "34.223.47.190"),
            line("Dec 30 08:00:00", "34.223.47.190"),
        ]
        .concat(),
    );
    modified_at(&s, "messages.1", "2026-01-01T00:00:00Z");
    s.write(
        "messages",
        &[
            line("Jan 19 08:00:00", "34.223.47.190"),
            line("Jan 19 08:00:01", "34.223.47.190"),
        ]
        .concat(),
    );
    modified_at(&s, "messages", "2026-01-19T08:00:01Z");
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(ip_list(&preview["reports"][0]["ips"]), ["34.223.47.190"]);
    assert_eq!(
        seen(&preview, "34.223.47.190"),
        pair("2025-12-30T08:00:00+00:00", "2026-01-19T08:00:01+00:00")
    );
    // The three January lines and June's: older than max_age_days.
    assert_eq!(preview["summary"]["lines_stale"], 4);
    // `reread --since` dates them as a run does: thirty days back is December's line, not
    // the rotated year's first (it said it would read again from the oldest file's start).
    let messages = s.path("messages");
    let out = (s.run(&[
        "reread",
        "--source",
        messages.to_str().unwrap(),
        "--since",
        "30d",
    ]))
    .ok()
    .stdout;
    let december = line("Jun 15 08:00:00", "34.223.47.190");
    let at = 3 * line("Jan 12 08:00:00", "3.5.140.2").len() + december.len();
    assert!(
        out.contains("messages.1 at byte") && out.contains(&format!("at byte {at} ")),
        "{out}"
    );
}

/// On New Year's Eve a host whose log is two hours ahead of `timezone` logs the new year
/// while runs go on every quarter of an hour: its `Jan  1` lines are counted (and said to be
/// ahead), as its lines of any other day are. They were read as last January's and passed
/// over as history without a word, so the attacker of that evening was never reported.
#[test]
fn a_log_ahead_on_new_years_eve_has_its_new_year_counted() {
    let mut s = setup_in("UTC", "", "2026-12-31T22:00:00Z");
    s.write("messages", &line("Dec 31 23:59:58", "3.5.140.2"));
    modified_at(&s, "messages", "2026-12-31T21:59:58Z");
    s.run(&["run"]).ok();
    s.now = "2026-12-31T22:15:00Z".into();
    s.append(
        "messages",
        &[
            line("Jan  1 00:10:00", "34.223.47.190"),
            line("Jan  1 00:10:01", "34.223.47.190"),
            line("Jan  1 00:10:02", "34.223.47.190"),
        ]
        .concat(),
    );
    modified_at(&s, "messages", "2026-12-31T22:10:02Z");
    let out = s.run(&["run", "--json"]).ok();
    let json = out.json();
    assert_eq!(
        seen(&json, "34.223.47.190"),
        pair("2027-01-01T00:10:00+00:00", "2027-01-01T00:10:02+00:00")
    );
    assert!(
        out.stderr.contains("dated ahead of this host's clock"),
        "{}",
        out.stderr
    );
    assert_eq!(json["summary"]["lines_stale"], 0);
}

/// A host whose clock is not set yet (a hardware clock without a battery, before NTP) runs
/// the timer at "1970": the run reads and sends nothing and ends 75, saying why; once the
/// clock is set, the next run reads the lines and reports them. It sent a report dated 1970,
/// and the address was taken for reported. Runs under the host's own clock (`faketime` sets
/// it for the process), not a pinned one, which is always taken as asked.
#[test]
fn a_run_under_a_clock_not_yet_set_reads_and_sends_nothing() {
    if !tool("faketime", &["2026-01-01", "true"]) {
        return;
    }
    let s = setup_in("UTC", "", "2026-01-26T08:00:00Z");
    s.write(
        "messages",
        &[
            line("Jan 25 10:00:00", "3.5.140.2"),
            line("Jan 25 10:00:01", "3.5.140.2"),
            line("Jan 25 10:00:02", "3.5.140.2"),
        ]
        .concat(),
    );
    let unset = |args: &[&str]| {
        let mut cmd = Command::new("faketime");
        cmd.arg("1970-01-01 00:05:00")
            .arg(env!("CARGO_BIN_EXE_abuse-mailer"))
            .arg("--config")
            .arg(s.path("config.toml"))
            .args(args)
            .env_remove("ABUSE_MAILER_NOW");
        Ran::from(cmd.output().unwrap())
    };
    for args in [&["run"][..], &["reread", "--source", "{dir}/messages"]] {
        let messages = s.path("messages");
        let args: Vec<&str> = (args.iter())
            .map(|a| {
                if a.starts_with("{dir}") {
                    messages.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let ran = unset(&args);
        assert_eq!(ran.code, 75, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("not set yet"), "{}", ran.stderr);
    }
    assert!(
        !s.path("outbox").exists() || std::fs::read_dir(s.path("outbox")).unwrap().count() == 0
    );
    // A preview changes nothing: it runs, under any clock. `check` fails (1) saying why
    // every run waits: it said all was well while the runs ended 75 for ever.
    assert_eq!(unset(&["preview"]).code, 0);
    let check = unset(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("error   clock") && check.stdout.contains("not set yet"),
        "{}",
        check.stdout
    );
    let ran = s.run(&["run", "--json"]).ok().json();
    assert_eq!(
        seen(&ran, "3.5.140.2"),
        pair("2026-01-25T10:00:00+00:00", "2026-01-25T10:00:02+00:00")
    );
}

/// Three packet lines from `src` in the minute `minute` (`Jan  1 00:30`), then some 70 KiB of
/// another program's lines stamped in `noise_minute`: a log whose last 64 KiB hold no packet.
fn three_then_noise(minute: &str, src: &str, noise_minute: &str) -> String {
    let packets = (0..3).map(|i| line(&format!("{minute}:0{i}"), src));
    let noise = (0..1200).map(|i| {
        format!(
            "{noise_minute}:{:02} web1 sshd[812]: Connection closed by 192.0.2.77 port 51234 [preauth] {i}\n",
            i % 60
        )
    });
    packets.chain(noise).collect()
}

/// A file's time says nothing without a packet line at its end to agree: a log whose last
/// 64 KiB are other programs' lines, on a network file system whose clock is two hours
/// behind, at New Year, has its new year's packets counted as the new year's. Its time
/// alone put them a year back, passed over as history without a word.
#[test]
fn a_files_time_alone_moves_no_line_into_last_year() {
    let s = setup_in("UTC", "", "2027-01-01T00:35:00Z");
    s.write(
        "messages",
        &three_then_noise("Jan  1 00:30", "34.223.47.190", "Jan  1 00:31"),
    );
    modified_at(&s, "messages", "2026-12-31T22:31:59Z");
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "34.223.47.190"),
        pair("2027-01-01T00:30:00+00:00", "2027-01-01T00:30:02+00:00")
    );
}

/// A rotated year of a mixed syslog, its last 64 KiB other programs' lines, last written on
/// New Year's Eve and read on Jan 20: its time alone dates its January packets a year back
/// (a file no longer written). They were reported as this January's attacks.
#[test]
fn a_rotated_years_time_alone_dates_its_january() {
    let s = setup_in("UTC", "", "2026-01-20T10:00:00Z");
    s.write(
        "messages.1",
        &three_then_noise("Jan 12 08:00", "3.5.140.2", "Dec 31 23:59"),
    );
    modified_at(&s, "messages.1", "2025-12-31T23:59:00Z");
    s.write("messages", "");
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        preview["reports"].as_array().map(Vec::len),
        Some(0),
        "{preview}"
    );
    assert_eq!(preview["summary"]["lines_stale"], 3);
}
