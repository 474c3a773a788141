//! Time as a host's calendar gives it: the hour a zone's clock shows twice in autumn, the
//! hour it skips in spring, the turn of the year, a clock moved between runs, and the times a
//! desk reads in the mail. The binary is run as a process on a pinned clock
//! (`ABUSE_MAILER_NOW`).

mod common;

use common::*;

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
/// into the second pass, which it reads as the second, not as the hour already read.
#[test]
fn a_run_resuming_in_the_repeated_hours_second_pass_reads_it_as_the_second() {
    let s = setup_in("Europe/Berlin", "", "2026-10-25T00:55:00Z");
    s.write(
        "messages",
        &[
            line("Oct 25 02:10:00", "34.223.47.190"),
            line("Oct 25 02:50:00", "34.223.47.190"),
        ]
        .concat(),
    );
    s.run(&["run"]).ok();
    s.append(
        "messages",
        &[
            line("Oct 25 02:05:00", "3.5.140.2"),
            line("Oct 25 02:40:00", "3.5.140.2"),
        ]
        .concat(),
    );
    let mut s = s;
    s.now = "2026-10-25T06:00:00Z".to_string();
    let preview = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(
        seen(&preview, "3.5.140.2"),
        pair("2026-10-25T02:05:00+01:00", "2026-10-25T02:40:00+01:00")
    );
}
