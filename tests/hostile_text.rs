//! Text an attacker controls reaches the log: spoofed fields, control and bidirectional
//! characters, spreadsheet formulas. None of it may reach a header, change how a report reads,
//! or run in the desk's spreadsheet.

mod common;

use common::*;
use mail_parser::{MessageParser, MimeHeaders};

/// A drop line with the given protocol field and host name.
fn line(time: &str, host: &str, src: &str, proto: &str) -> String {
    format!(
        "Jan 25 {time} {host} kernel: INPUT-DROP:IN=eth0 OUT= SRC={src} DST=198.51.100.10 LEN=60 TTL=241 ID=1 PROTO={proto} SPT=40000 DPT=22 \n"
    )
}

#[test]
fn hostile_log_fields_never_reach_headers_or_spreadsheets() {
    let s = Setup::standard();
    let mut log = String::new();
    for (i, (host, proto)) in [
        ("web1", "TCP\rBcc:y@evil.test"),
        ("web1\u{1b}[31m", "TCP"),
        ("web\u{202e}1", "=HYPERLINK(\"http://evil.test\",\"x\")"),
        ("web1", "TCP"),
    ]
    .iter()
    .enumerate()
    {
        log.push_str(&line(
            &format!("10:00:0{i}"),
            host,
            &format!("3.5.140.{}", i + 2),
            proto,
        ));
    }
    s.write("messages", &log);
    s.run(&["run"]).ok();
    let files = s.outbox();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(&files[0]).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();

    let subject = message.subject().unwrap();
    assert!(
        !subject.contains("Bcc") && !subject.contains("evil"),
        "{subject}"
    );
    assert!(message.header("Bcc").is_none());
    let headers =
        String::from_utf8_lossy(&raw[..message.root_part().raw_body_offset() as usize]).to_string();
    assert!(!headers.contains("evil.test"), "{headers}");

    // Line ends are CRLF on the wire; a lone CR is what a log smuggled in.
    let body = message.body_text(0).unwrap().replace("\r\n", "\n");
    for bad in ['\u{1b}', '\u{202e}', '\r'] {
        assert!(!body.contains(bad), "{bad:?} in the body:\n{body}");
    }
    let csv = message
        .attachments()
        .find(|a| a.attachment_name() == Some("ips.csv"))
        .expect("ips.csv");
    let csv = String::from_utf8_lossy(csv.contents()).replace("\r\n", "\n");
    for cell in csv.split([',', '\n']) {
        let cell = cell.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '@']),
            "a formula cell in ips.csv: {cell}\n{csv}"
        );
    }
    assert!(!csv.contains('\r') && !csv.contains("Bcc"), "{csv}");
    // Every attachment is free of escape and bidirectional characters too.
    for part in message.attachments() {
        let text = String::from_utf8_lossy(part.contents());
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{:?}: {text}",
            part.attachment_name()
        );
    }
}

#[test]
fn preview_json_carries_no_control_or_bidi_characters() {
    let s = Setup::standard();
    s.write(
        "messages",
        &line("10:00:00", "web\u{202e}1\u{1b}[2J", "3.5.140.2", "TCP"),
    );
    let out = s.run(&["preview", "--json"]).ok();
    let text = out.json().to_string();
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{1b}'),
        "{text}"
    );
    assert!(!out.stdout.contains("\\u001b"), "{}", out.stdout);
}

/// A block of NUL bytes before a line (a crash): the report shows the line itself, not the
/// NULs (cleaned away) nor a cut mark.
#[test]
fn the_line_after_a_block_of_nul_bytes_is_shown_in_the_report() {
    let s = Setup::standard();
    let line = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    s.write("messages", &format!("{}{line}", "\0".repeat(4096)));
    let out = s.run(&["run"]).ok();
    let outbox = s.outbox();
    assert_eq!(outbox.len(), 1, "{}", out.stderr);
    let mail = std::fs::read_to_string(&outbox[0]).unwrap();
    assert!(mail.contains("INPUT-DROP:IN=eth0"), "{mail}");
}

/// What a crash usually leaves: the data of a line's last block never came, so the line is
/// cut where the block began, a block of NUL bytes stands for the rest, and the daemon's next
/// line follows the NULs. The cut line is one line (malformed, its fields cut); the next is
/// read whole, with its own address and port, and nothing of one is taken for the other.
#[test]
fn a_line_cut_by_a_crash_and_the_line_after_its_nul_block_are_two_lines() {
    let s = Setup::standard();
    let before = drop_line("09:59:59", "18.206.107.24", "UDP", 53);
    let cut = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    let cut = &cut[..cut.find(" DST=").unwrap() + 3];
    let after = drop_line("10:00:01", "34.223.47.190", "TCP", 3389);
    s.write(
        "messages",
        &format!("{before}{cut}{}{after}", "\0".repeat(3000)),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_read"], 3, "{v}");
    assert_eq!(v["summary"]["lines_matched"], 2, "{v}");
    assert_eq!(v["summary"]["lines_malformed"], 1, "{v}");
    let ips = &v["reports"][0]["ips"];
    assert_eq!(ip_list(ips), ["18.206.107.24", "34.223.47.190"], "{v}");
    assert_eq!(ips[1]["ports"], serde_json::json!([3389]), "{v}");
    let excerpt = v["reports"][0]["excerpt"].to_string();
    assert!(!excerpt.contains("3.5.140.2"), "{excerpt}");
    // The same with the cut line's fields all there, up to the space after the last: still
    // two packets, not one.
    let whole_cut = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    let whole_cut = whole_cut.trim_end_matches('\n');
    let fresh = Setup::standard();
    fresh.write(
        "messages",
        &format!("{whole_cut}{}{after}", "\0".repeat(100)),
    );
    let v = fresh.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 2, "{v}");
    assert_eq!(
        ip_list(&v["reports"][0]["ips"]),
        ["3.5.140.2", "34.223.47.190"],
        "{v}"
    );
}

/// A crash's NUL block that cuts a line inside a value: `DPT=2` of `DPT=22` or `SRC=3.5.14` of
/// `SRC=3.5.140.2` would name a port or an address the packet never had, to a desk. Only the
/// words up to the line's last space are whole: cut inside a value the packet reads needs,
/// the line is malformed; cut after them (inside `WINDOW=`), it is the packet it was.
#[test]
fn a_line_a_crash_cut_inside_a_value_names_no_other_port_or_address() {
    let line = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    let after = drop_line("10:00:01", "34.223.47.190", "TCP", 3389);
    let cut_after = |word: &str, keep: usize| {
        let at = line.find(word).unwrap() + word.len() + keep;
        format!("{}{}{after}", &line[..at], "\0".repeat(512))
    };
    for (log, what) in [
        (cut_after(" DPT=", 1), "DPT=2 of DPT=22"),
        (cut_after(" SRC=", 6), "SRC=3.5.14 of SRC=3.5.140.2"),
        (
            cut_after("INPUT-DROP:IN=", 2),
            "IN=et of IN=eth0, right after the prefix",
        ),
    ] {
        let s = Setup::standard();
        s.write("messages", &log);
        let v = s.run(&["preview", "--json"]).ok().json();
        assert_eq!(v["summary"]["lines_read"], 2, "{what}: {v}");
        assert_eq!(v["summary"]["lines_malformed"], 1, "{what}: {v}");
        let ips = &v["reports"][0]["ips"];
        assert_eq!(ip_list(ips), ["34.223.47.190"], "{what}: {v}");
    }
    let windowed = line.replace(" \n", " WINDOW=1024 RES=0x00 SYN URGP=0 \n");
    let at = windowed.find("WINDOW=10").unwrap() + "WINDOW=10".len();
    let s = Setup::standard();
    s.write(
        "messages",
        &format!("{}{}{after}", &windowed[..at], "\0".repeat(512)),
    );
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_malformed"], 0, "{v}");
    let ips = &v["reports"][0]["ips"];
    assert_eq!(ip_list(ips), ["3.5.140.2", "34.223.47.190"], "{v}");
    assert_eq!(ips[0]["ports"], serde_json::json!([22]), "{v}");
}

/// A line cut short with no NUL block after it (a writer killed mid-line, a file cut back by
/// a crash) and the next line run on after it: the fields end where the prefix comes again,
/// so the cut line's address gets none of the next line's protocol and port, nor a hit, and
/// the glued text is evidence to no desk.
#[test]
fn a_line_run_on_after_a_cut_one_lends_it_no_fields() {
    let s = Setup::standard();
    let cut = drop_line("10:00:00", "3.5.140.2", "TCP", 22);
    let cut = &cut[..cut.find(" DST=").unwrap() + 3];
    let next = drop_line("10:00:01", "34.223.47.190", "UDP", 3389).replace("[810294.788657] ", "");
    s.write("messages", &format!("{cut}{next}"));
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_read"], 1, "{v}");
    assert_eq!(v["summary"]["lines_malformed"], 1, "{v}");
    assert_eq!(v["summary"]["lines_matched"], 0, "{v}");
    assert!(v["reports"].as_array().unwrap().is_empty(), "{v}");
    // Cut after every field was written: the next line's flags (an answer's ACK) and its
    // text are not the cut line's either; nor an ICMP type run on after a cut one.
    for (cut, next) in [
        (
            drop_line("10:00:00", "3.5.140.2", "TCP", 22)
                .replace(" \n", " WIN")
                .replace("[810294.788657] ", ""),
            "Jan 25 10:00:01 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=198.51.100.10 LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=0 DF PROTO=TCP SPT=443 DPT=51234 WINDOW=0 RES=0x00 ACK RST URGP=0 \n",
        ),
        (
            "Jan 25 10:00:00 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 LEN=84 TOS=0x00 PREC=0x00 TTL=49 ID=0 PROTO=ICMP TY".to_string(),
            "Jan 25 10:00:01 web1 kernel: INPUT-DROP:IN=eth0 OUT= SRC=34.223.47.190 DST=198.51.100.10 LEN=88 TOS=0x00 PREC=0x00 TTL=49 ID=0 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST=34.223.47.190 LEN=60 PROTO=UDP SPT=53 DPT=4000 LEN=40 ] \n",
        ),
    ] {
        let fresh = Setup::standard();
        fresh.write("messages", &format!("{cut}{next}"));
        let v = fresh.run(&["preview", "--json"]).ok().json();
        assert_eq!(v["summary"]["lines_malformed"], 1, "{v}");
        assert_eq!(v["summary"]["lines_backscatter"], 0, "{v}");
        assert!(v["reports"].as_array().unwrap().is_empty(), "{v}");
    }
}

/// A log host names its per-host folders after what senders call themselves: a folder whose
/// name carries terminal escapes and a line end, under a glob source. Whatever names it, in
/// `-v`'s notes, a warning or an error, reaches the terminal as escapes, one line each.
#[test]
fn control_characters_in_a_sources_file_name_reach_the_terminal_as_escapes() {
    let s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/hosts/*/kern.log\"",
    ));
    let evil = "evil\x1b]0;owned\x07\x1b[2J\nx\u{202e}";
    for host in ["web1", evil] {
        let dir = s.path("hosts").join(host);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("kern.log"),
            drop_line("10:00:00", "3.5.140.2", "TCP", 22),
        )
        .unwrap();
    }
    let out = s.run(&["-v", "run"]).ok();
    let shown = |text: &str| {
        assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{text:?}");
        for line in text.lines() {
            assert!(
                line.starts_with("abuse-mailer") || line.starts_with("report "),
                "{line:?}"
            );
        }
    };
    shown(&out.stderr);
    shown(&out.stdout);
    assert!(
        out.stderr
            .contains(r"evil\x1b]0;owned\x07\x1b[2J\x0ax\u{202e}/kern.log"),
        "{}",
        out.stderr
    );
}
