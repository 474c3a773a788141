//! The host around a run: its temporary folder, the file system its state lives on. A run
//! under cron or a systemd unit meets what a shell never shows: a `TMPDIR` that is not there,
//! a read-only `/tmp`, a small state file system.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// The standard setup with the sendmail transport, `dir/sendmail` keeping each message it
/// is given in `dir/sent/`.
fn sendmail_setup() -> Setup {
    let config = standard_config("").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"sendmail\"\nsendmail_path = \"{dir}/sendmail\"",
    );
    assert!(config.contains("sendmail_path"), "{config}");
    let s = Setup::new(&config);
    s.write(
        "sendmail",
        &format!(
            "#!/bin/sh\nmkdir -p {0}/sent\ncat > {0}/sent/$$.eml\n",
            s.dir.path().display()
        ),
    );
    fs::set_permissions(s.path("sendmail"), fs::Permissions::from_mode(0o755)).unwrap();
    s
}

fn sent_by_sendmail(s: &Setup) -> usize {
    fs::read_dir(s.path("sent")).map_or(0, |e| e.count())
}

#[test]
fn a_temporary_folder_sendmail_cannot_use_is_a_config_error_not_a_wait() {
    let mut s = sendmail_setup();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    // A crontab's TMPDIR naming a folder since removed (or a read-only /tmp under
    // ProtectSystem=strict without PrivateTmp): no run will ever write the message there.
    let missing = s.path("no-such-folder");
    s.env
        .push(("TMPDIR".into(), missing.to_str().unwrap().to_string()));
    for _ in 0..2 {
        let out = s.run_bounded(&["run"]);
        // 75 says "the next run sends it": systemd's unit counts it a success, and the report
        // would wait for ever unseen.
        assert_eq!(out.code, 78, "{}", out.stderr);
        assert!(out.stderr.contains("TMPDIR"), "{}", out.stderr);
        assert!(
            out.stderr.contains(missing.to_str().unwrap()),
            "{}",
            out.stderr
        );
    }
    assert_eq!(sent_by_sendmail(&s), 0);
    let h = history(&s);
    assert_eq!(h.len(), 1, "the report is kept");
    assert_ne!(h[0]["status"], "sent");

    s.env.clear();
    s.run_bounded(&["run"]).ok();
    s.run_bounded(&["run"]).ok();
    assert_eq!(
        sent_by_sendmail(&s),
        1,
        "delivered once the folder is fixed"
    );
    assert_eq!(history(&s)[0]["status"], "sent");
}
