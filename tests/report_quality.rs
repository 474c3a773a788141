//! Reports read as an abuse desk reads them: parsed header by header and part by part. What
//! a desk would push back on (our own details in the evidence, a misleading subject, lines too
//! wide for a ticket system) is checked here.

mod common;

use common::*;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// The one message in the outbox after a run, parsed.
fn only_message(s: &Setup) -> Vec<u8> {
    let files = s.outbox();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

fn attachment(message: &Message<'_>, name: &str) -> String {
    let part = message
        .attachments()
        .find(|a| a.attachment_name() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"));
    String::from_utf8_lossy(part.contents()).replace("\r\n", "\n")
}

#[test]
fn our_mac_address_is_hidden_by_default() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    let body = message.body_text(0).unwrap();
    assert!(body.contains("MAC=redacted"), "{body}");
    assert!(!body.contains("52:54:00"), "{body}");
    assert!(!attachment(&message, "excerpt.log").contains("52:54:00"));
}

#[test]
fn redact_dst_in_ufw_lines_keeps_the_attacker() {
    let s = Setup::new(&standard_config("redact = [\"MAC\", \"DST\"]").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/messages\"\nprefixes = [\"[UFW BLOCK] \"]",
    ));
    s.write(
        "messages",
        "Jan 25 10:00:00 vps kernel: [547996.640000] [UFW BLOCK] IN=eth0 OUT= MAC=56:00:03:aa:bb:cc:fe:00:03:aa:bb:cc:08:00 SRC=3.5.140.2 DST=158.247.1.2 LEN=44 TOS=0x00 PREC=0x00 TTL=241 ID=1 PROTO=TCP SPT=41868 DPT=8080 WINDOW=1024 RES=0x00 SYN URGP=0 \n",
    );
    s.run(&["run"]).ok();
    let raw = only_message(&s);
    let message = MessageParser::default().parse(&raw).unwrap();
    for text in [
        message.body_text(0).unwrap().to_string(),
        attachment(&message, "excerpt.log"),
    ] {
        assert!(text.contains("SRC=3.5.140.2 "), "{text}");
        assert!(!text.contains("158.247.1.2"), "{text}");
        assert!(text.contains("DST=redacted"), "{text}");
    }
}
