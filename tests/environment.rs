//! The host around a run: its temporary folder, the file system its state lives on. A run
//! under cron or a systemd unit meets what a shell never shows: a `TMPDIR` that is not there,
//! a read-only `/tmp`, a small state file system.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

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
    healthy_sendmail(&s);
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
    let check = s.run_bounded(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("TMPDIR"), "{}", check.stdout);
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

/// Runs `args` with `s`'s state folder a file system of `size` (a tmpfs, in a mount namespace
/// of the run's own) and `env` set; `None` where this host lets no such file system be made
/// (it takes root).
fn run_on_small_state(s: &Setup, size: &str, env: &[(&str, &str)], args: &[&str]) -> Option<Ran> {
    runs_on_small_state(s, size, env, args, 1)
}

/// [`run_on_small_state`], `times` runs one after the other on the one file system, each
/// followed on standard error by a line `exit N`.
fn runs_on_small_state(
    s: &Setup,
    size: &str,
    env: &[(&str, &str)],
    args: &[&str],
    times: usize,
) -> Option<Ran> {
    let state = s.path("state");
    fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size},mode=0700 none \"$0\" || exit 199; {}",
            "\"$@\"; echo \"exit $?\" >&2; ".repeat(times)
        ))
        .arg(&state)
        .arg(env!("CARGO_BIN_EXE_abuse-mailer"))
        .arg("--config")
        .arg(s.path("config.toml"))
        .args(args)
        .env("ABUSE_MAILER_NOW", &s.now)
        .env_remove("ABUSE_MAILER_CONFIG")
        .env_remove(abuse_mailer::spool::BUDGET_VAR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = Ran::from(cmd.output().ok()?);
    if out.code == 199 || out.stderr.contains("unshare:") {
        eprintln!(
            "no file system of its own for the state here: {}",
            out.stderr
        );
        return None;
    }
    Some(out)
}

#[test]
fn lines_set_aside_leave_the_state_the_room_to_store_them() {
    // Nothing reaches min_hits: the run stores what it read and its kept lines, no more.
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 3"));
    s.write("messages", &flood(20_000));
    // 20,000 kept lines, 5 MB of text: in a state file system of 18 MiB the state stores
    // them when the run holds them in memory.
    const SIZE: &str = "18m";
    let Some(held) = run_on_small_state(&s, SIZE, &[], &["run"]) else {
        return;
    };
    assert!(
        held.stderr.ends_with("exit 0\n"),
        "the state fits: {}",
        held.stderr
    );
    // Set aside on the same disk, they took the room the state needed: the run failed, and
    // every run after it, reading the same lines again.
    let Some(spooled) = run_on_small_state(
        &s,
        SIZE,
        &[(abuse_mailer::spool::BUDGET_VAR, "0")],
        &["-v", "run"],
    ) else {
        return;
    };
    assert!(spooled.stderr.ends_with("exit 0\n"), "{}", spooled.stderr);
    assert!(
        spooled
            .stderr
            .contains("held in memory instead, left to the state"),
        "{}",
        spooled.stderr
    );
    assert!(
        spooled.stderr.contains("20000 IPs"),
        "every source read and stored: {}",
        spooled.stderr
    );
}

#[test]
fn lines_set_aside_never_keep_what_was_read_from_being_stored() {
    let s = Setup::new(&standard_config("").replace("min_hits = 1", "min_hits = 3"));
    s.write("messages", &flood(20_000));
    // Too small for the state and the lines set aside both: the read must still be stored,
    // or every run reads the same lines again and fails the same way. (The disk is full
    // after it: what the run writes later may fail, naming state.db.)
    let Some(out) = runs_on_small_state(
        &s,
        "11m",
        &[(abuse_mailer::spool::BUDGET_VAR, "0")],
        &["run"],
        2,
    ) else {
        return;
    };
    assert!(
        !out.stderr.contains("cannot store what was read"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("held in memory instead, left to the state"),
        "{}",
        out.stderr
    );
    let second = out.stderr.split("exit ").nth(1).unwrap_or_default();
    assert!(
        !second.contains("read 20000 lines"),
        "the second run reads nothing again: {}",
        out.stderr
    );
}

/// `n` drop lines, each from a source of its own in the fixture's EC2 ranges.
fn flood(n: u32) -> String {
    let first = u32::from(std::net::Ipv4Addr::new(18, 204, 0, 1));
    (0..n)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(first + i);
            drop_line(
                &format!("10:{:02}:{:02}", i / 60 % 60, i % 60),
                &ip.to_string(),
                "TCP",
                22,
            )
        })
        .collect()
}

#[test]
fn a_rotated_file_the_first_read_cannot_open_is_waited_for_not_passed_over() {
    let s = Setup::standard();
    // The history a first read goes through, not to be opened: for a service user, a file
    // only root may read (`messages-20260118` left 0600 while `messages` was opened to the
    // adm group); here a link to itself, which no one opens.
    std::os::unix::fs::symlink("messages.1", s.path("messages.1")).unwrap();
    s.write("messages", &drop_line("10:00:00", "3.5.140.3", "TCP", 22));
    let out = s.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("messages.1"), "{}", out.stderr);
    assert!(s.outbox().is_empty(), "nothing read, nothing sent");
    let preview = s.run(&["preview"]);
    assert_eq!(preview.code, 1, "{}", preview.stderr);
    // `check` says so as the run does (it said ok).
    let check = s.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stdout.contains("rotated file"), "{}", check.stdout);

    // Once it can be read, the first read reads it: passed over, it was never read, not
    // even by `reread`, which counts nothing older than what was counted.
    fs::remove_file(s.path("messages.1")).unwrap();
    s.write("messages.1", &drop_line("09:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string(), "3.5.140.3".to_string()]]
    );
}

#[test]
fn a_run_as_root_on_a_service_users_state_leaves_it_files_that_user_opens() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    // The state of a service user (cron's `abuse-mailer`, systemd's dynamic user), and the
    // operator retrying by hand as root: `sudo abuse-mailer run`.
    const USER: u32 = 65534;
    let s = Setup::standard();
    if std::os::unix::fs::chown(s.path("config.toml"), Some(USER), Some(USER)).is_err() {
        eprintln!("not root: no run as another user here");
        return;
    }
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["state", "outbox"] {
        fs::create_dir(s.path(dir)).unwrap();
        fs::set_permissions(s.path(dir), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(s.path(dir), Some(USER), Some(USER)).unwrap();
    }
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    for file in ["state.db", "state.reserve", "run.lock"] {
        let owner = fs::metadata(s.path("state").join(file)).unwrap().uid();
        assert_eq!(owner, USER, "{file} is the state's owner's");
    }

    s.append("messages", &drop_line("10:00:01", "3.5.140.3", "TCP", 22));
    let mut as_user = s.command(&["run"]);
    as_user.uid(USER).gid(USER);
    let out = Ran::from(as_user.output().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string()], vec!["3.5.140.3".to_string()]]
    );

    // The folder root's, the state the user's (as an operator may set it up): the state's
    // owner is the one its files keep.
    std::os::unix::fs::chown(s.path("state"), Some(0), Some(0)).unwrap();
    s.run(&["run"]).ok();
    for file in ["state.db", "state.reserve", "run.lock"] {
        let owner = fs::metadata(s.path("state").join(file)).unwrap().uid();
        assert_eq!(owner, USER, "{file} stays the state's owner's");
    }
}

#[test]
fn a_local_zone_given_as_a_file_is_named_not_shown_as_a_path() {
    let mut s =
        Setup::new(&standard_config("").replace("timezone = \"UTC\"", "timezone = \"local\""));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    // Set to spare programs a look at /etc/localtime; the zone is that file's.
    s.env.push(("TZ".into(), ":/etc/localtime".into()));
    let out = s.run(&["preview"]).ok();
    assert!(
        !out.stdout.contains("/etc/localtime"),
        "a report names a zone, not a path on this host: {}",
        out.stdout
    );
    let berlin = "/usr/share/zoneinfo/Europe/Berlin";
    if std::path::Path::new(berlin).exists() {
        s.env = vec![("TZ".into(), format!(":{berlin}"))];
        let out = s.run(&["preview"]).ok();
        assert!(out.stdout.contains("(Europe/Berlin)"), "{}", out.stdout);
        assert!(out.stdout.contains("+01:00"), "{}", out.stdout);
        assert!(!out.stdout.contains("zoneinfo"), "{}", out.stdout);
    }
}

/// The unprivileged user some tests run the tool as.
const NOBODY: u32 = 65534;

/// `s` made ready for runs as [`NOBODY`]: its configuration, `state` and `outbox` theirs, its
/// folder open to them. `false` where this process may not give files away (not root): such
/// a test has nothing to run.
fn ready_for_nobody(s: &Setup) -> bool {
    if std::os::unix::fs::chown(s.path("config.toml"), Some(NOBODY), Some(NOBODY)).is_err() {
        eprintln!("not root: no run as another user here");
        return false;
    }
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["state", "outbox"] {
        fs::create_dir(s.path(dir)).unwrap();
        std::os::unix::fs::chown(s.path(dir), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    true
}

/// The tool run as [`NOBODY`] (see [`ready_for_nobody`]).
fn as_nobody(s: &Setup, args: &[&str]) -> Ran {
    use std::os::unix::process::CommandExt;
    let mut cmd = s.command(args);
    cmd.uid(NOBODY).gid(NOBODY);
    Ran::from(cmd.output().unwrap())
}

#[test]
fn a_host_folder_under_a_glob_the_run_cannot_read_stops_it_not_passed_over() {
    let config = standard_config("").replace("{dir}/messages", "{dir}/remote/*/kern.log");
    let s = Setup::new(&config);
    if !ready_for_nobody(&s) {
        return;
    }
    for (host, ip) in [("web1", "3.5.140.2"), ("web2", "3.5.140.3")] {
        let folder = s.path("remote").join(host);
        fs::create_dir_all(&folder).unwrap();
        fs::write(
            folder.join("kern.log"),
            drop_line("10:00:00", ip, "TCP", 22).replace("web1", host),
        )
        .unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(s.path("remote"), fs::Permissions::from_mode(0o755)).unwrap();
    // rsyslog's dirCreateMode = "0700", the folder root's: the run's user cannot look in.
    fs::set_permissions(s.path("remote/web2"), fs::Permissions::from_mode(0o700)).unwrap();
    let as_user = |args: &[&str]| as_nobody(&s, args);
    let out = as_user(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("remote/web2"), "{}", out.stderr);
    assert!(s.outbox().is_empty(), "nothing read, nothing sent");

    let check = as_user(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(check.stdout.contains("remote/web2"), "{}", check.stdout);

    // Its folder opened, the file itself only root's: check says so as the run does.
    fs::set_permissions(s.path("remote/web2"), fs::Permissions::from_mode(0o755)).unwrap();
    let file = s.path("remote/web2/kern.log");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(as_user(&["run"]).code, 1);
    let check = as_user(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(
        check.stdout.contains("remote/web2/kern.log"),
        "{}",
        check.stdout
    );

    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    as_user(&["run"]).ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string(), "3.5.140.3".to_string()]]
    );
}

/// A file rotated since the last run that the run's user may not open (logrotate's `create
/// 0600` for a while, the operator fixing only the file the error named) holds the lines
/// logged between that run and the rotation: the read stops (1) until it can be read. It
/// was passed over with a warning, the cursor moved on to the new file, and its lines were
/// never read, also once it was readable. One the runs read to its end is passed over.
#[test]
fn a_rotated_file_a_later_read_cannot_open_stops_it_until_it_can() {
    let s = Setup::standard();
    if !ready_for_nobody(&s) {
        return;
    }
    let line = |time, ip| drop_line(time, ip, "TCP", 22);
    s.write("messages", &line("10:00:00", "3.5.140.2"));
    as_nobody(&s, &["run"]).ok();
    s.append("messages", &line("10:01:00", "3.5.140.3"));
    fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    fs::set_permissions(s.path("messages.1"), fs::Permissions::from_mode(0o600)).unwrap();
    s.write("messages", &line("10:02:00", "3.5.140.4"));
    for _ in 0..2 {
        let out = as_nobody(&s, &["-q", "run"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("messages.1") && out.stderr.contains("may hold lines"),
            "{}",
            out.stderr
        );
    }
    let check = as_nobody(&s, &["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stdout.contains("messages.1"), "{}", check.stdout);

    fs::set_permissions(s.path("messages.1"), fs::Permissions::from_mode(0o644)).unwrap();
    as_nobody(&s, &["run"]).ok();
    // Read to its end, then closed again: nothing in it is unread, the run goes on.
    fs::set_permissions(s.path("messages.1"), fs::Permissions::from_mode(0o600)).unwrap();
    s.append("messages", &line("10:03:00", "3.5.140.5"));
    let out = as_nobody(&s, &["run"]).ok();
    assert!(out.stderr.contains("messages.1"), "said: {}", out.stderr);
    // And on every later run: the cursor still knows it as read.
    s.append("messages", &line("10:04:00", "3.5.140.6"));
    as_nobody(&s, &["run"]).ok();
    let check = as_nobody(&s, &["check"]);
    assert!(
        check.stdout.contains("runs pass it over"),
        "{}",
        check.stdout
    );
    let ips = |ips: &[&str]| ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.reported(),
        vec![
            ips(&["3.5.140.2"]),
            ips(&["3.5.140.3", "3.5.140.4"]),
            ips(&["3.5.140.5"]),
            ips(&["3.5.140.6"])
        ]
    );
}

/// Rotated files the run's user cannot open that hold nothing no run read: the file the last
/// run's cursor was on, read to its end and rotated and closed since; an empty one; one last
/// written before the file the cursor is on was made (history a release before this one
/// passed over). Each is passed over with a warning, on every run; they stopped the runs
/// (the first only from the second run on, once the cursor that had been on it was gone).
#[test]
fn a_rotated_file_that_holds_nothing_unread_stops_no_run() {
    let s = Setup::standard();
    if !ready_for_nobody(&s) {
        return;
    }
    let closed = |name: &str| {
        fs::set_permissions(s.path(name), fs::Permissions::from_mode(0o600)).unwrap();
    };
    let line = |time, ip| drop_line(time, ip, "TCP", 22);
    s.write("messages", &line("10:00:00", "3.5.140.2"));
    as_nobody(&s, &["run"]).ok();
    fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    closed("messages.1");
    s.write("messages", &line("10:01:00", "3.5.140.3"));
    // Touched after the new file was made (by a daemon not told of the rotation yet, with
    // nothing more to write): known by the cursor, not by its time.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let set_time = |name: &str, time| {
        let file = fs::File::options().write(true).open(s.path(name)).unwrap();
        file.set_modified(time).unwrap();
    };
    set_time("messages.1", later);
    // Older history, closed: empty, and last written long before.
    s.write("messages.3", "");
    closed("messages.3");
    s.write("messages.4", &line("09:00:00", "3.5.140.9"));
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    set_time("messages.4", old);
    closed("messages.4");
    for (time, ip) in [("10:02:00", "3.5.140.4"), ("10:03:00", "3.5.140.5")] {
        s.append("messages", &line(time, ip));
        let out = as_nobody(&s, &["run"]).ok();
        assert!(out.stderr.contains("messages.1"), "said: {}", out.stderr);
    }
    let reported: Vec<String> = s.reported().concat();
    assert_eq!(
        reported,
        ["3.5.140.2", "3.5.140.3", "3.5.140.4", "3.5.140.5"]
    );
}

/// `history` or `preview` by a user who may not read the state (the service user's, 0600 in
/// a 0700 folder): SQLite said only "unable to open database file: file:…?immutable=1".
#[test]
fn a_state_this_user_may_not_read_says_whose_it_is() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    if std::os::unix::fs::chown(s.path("config.toml"), Some(NOBODY), Some(NOBODY)).is_err() {
        return;
    }
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for folder in [0o700, 0o755] {
        fs::set_permissions(s.path("state"), fs::Permissions::from_mode(folder)).unwrap();
        for command in ["history", "preview"] {
            let out = as_nobody(&s, &[command]);
            assert_eq!(out.code, 1, "{}", out.stderr);
            assert!(
                out.stderr
                    .contains("run abuse-mailer as the user that owns"),
                "{folder:o} {command}: {}",
                out.stderr
            );
        }
    }
}

/// A source's file in a folder the run's user may not enter: the file is there, out of the
/// run's reach, as a file it may not read is (exit 1). The run took it for a path naming no
/// file and ended 78, telling the operator to fix a configuration that was right.
#[test]
fn a_log_in_a_folder_the_run_cannot_enter_is_no_configuration_error() {
    let config = standard_config("").replace("{dir}/messages", "{dir}/log/messages");
    let s = Setup::new(&config);
    if !ready_for_nobody(&s) {
        return;
    }
    fs::create_dir(s.path("log")).unwrap();
    fs::write(
        s.path("log/messages"),
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
    )
    .unwrap();
    fs::set_permissions(s.path("log/messages"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(s.path("log"), fs::Permissions::from_mode(0o700)).unwrap();
    let as_user = |args: &[&str]| as_nobody(&s, args);
    let out = as_user(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("log/messages"), "{}", out.stderr);
    fs::set_permissions(s.path("log"), fs::Permissions::from_mode(0o755)).unwrap();
    as_user(&["run"]).ok();
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
}

#[test]
fn links_planted_in_the_state_folder_are_never_written_through() {
    // A state_dir others may write to (mode 0777, by mistake): what the run makes there by
    // name must not follow a link to a file of someone else's choosing.
    let s = Setup::standard();
    fs::create_dir(s.path("state")).unwrap();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    std::os::unix::fs::symlink(s.path("made-by-the-run"), s.path("state/run.lock")).unwrap();
    let out = s.run(&["run"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("run.lock"), "{}", out.stderr);
    assert!(
        !s.path("made-by-the-run").exists(),
        "no file made through the link"
    );

    fs::remove_file(s.path("state/run.lock")).unwrap();
    s.write("victim", "a file of someone else's\n");
    std::os::unix::fs::symlink(s.path("victim"), s.path("state/state.reserve")).unwrap();
    let out = s.run(&["run"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("state.reserve"), "{}", out.stderr);
    assert_eq!(
        fs::read_to_string(s.path("victim")).unwrap(),
        "a file of someone else's\n",
        "nothing written through the link"
    );
    assert!(
        s.outbox().is_empty(),
        "nothing sent that could not be recorded"
    );

    // The link gone, the report goes out once.
    fs::remove_file(s.path("state/state.reserve")).unwrap();
    s.run(&["run"]).ok();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

/// The run's user may enter the log's folder but not list it (0711): the file is read, and
/// its rotated files are not seen. The end of one renamed away by logrotate was never read,
/// without a word (exit 0), and `check` said ok. The run now stops, naming the folder, and
/// the lines are read once it may list it.
#[test]
fn a_log_folder_the_run_may_not_list_stops_it_rather_than_lose_the_rotated_end() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let Some(first) = as_service_user(&s, &["run"]) else {
        eprintln!("not root: no run as another user here");
        return;
    };
    assert_eq!(first.code, 0, "{}", first.stderr);
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    // Logged after the run, then rotated away.
    let mut log = fs::read_to_string(s.path("messages")).unwrap();
    log.push_str(&drop_line("10:05:00", "3.5.140.3", "TCP", 22));
    s.write("messages", &log);
    fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    s.write("messages", &drop_line("10:10:00", "3.5.140.4", "TCP", 22));
    let as_user = |args: &[&str]| as_user_65534(&s, args);
    let stopped = as_user(&["run"]);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("cannot be listed"),
        "{}",
        stopped.stderr
    );
    let check = as_user(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("cannot be listed"),
        "{}",
        check.stdout
    );
    assert_eq!(s.outbox().len(), 1, "nothing more sent");

    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    as_user(&["run"]).ok();
    let mut reported: Vec<String> = s.reported().concat();
    reported.sort();
    assert_eq!(reported, ["3.5.140.2", "3.5.140.3", "3.5.140.4"]);
}

/// `mail.dir` the run's user may not write in: `check` said ok, and every run then made its
/// report and failed (78) writing it. `check` says so now.
#[test]
fn check_names_a_mail_dir_this_user_cannot_write() {
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let Some(_) = as_service_user(&s, &["check"]) else {
        eprintln!("not root: no run as another user here");
        return;
    };
    std::os::unix::fs::chown(s.path("outbox"), Some(0), Some(0)).unwrap();
    fs::set_permissions(s.path("outbox"), fs::Permissions::from_mode(0o755)).unwrap();
    let check = as_user_65534(&s, &["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    assert!(
        check.stdout.contains("mail.dir") && check.stdout.contains("not writable"),
        "{}",
        check.stdout
    );
}

/// Runs `args` as the unprivileged user 65534 on `s` as it stands (see [`as_service_user`],
/// which gives that user the state and the outbox first).
fn as_user_65534(s: &Setup, args: &[&str]) -> Ran {
    use std::os::unix::process::CommandExt;
    let mut cmd = s.command(args);
    cmd.uid(65534).gid(65534);
    Ran::from(cmd.output().unwrap())
}

/// Runs `args` as the unprivileged user 65534 on `s`, its state and outbox that user's;
/// `None` when this test is not root and cannot run as another user.
fn as_service_user(s: &Setup, args: &[&str]) -> Option<Ran> {
    const USER: u32 = 65534;
    std::os::unix::fs::chown(s.path("config.toml"), Some(USER), Some(USER)).ok()?;
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["state", "outbox"] {
        fs::create_dir_all(s.path(dir)).unwrap();
        std::os::unix::fs::chown(s.path(dir), Some(USER), Some(USER)).unwrap();
    }
    Some(as_user_65534(s, args))
}

#[test]
fn lost_and_found_beside_the_host_folders_of_a_glob_stops_no_run() {
    // A log host's own file system mounted at the glob's folder: mkfs made lost+found there,
    // root's and 0700. It holds no host's logs; the hosts' folders are read.
    let config = standard_config("").replace("{dir}/messages", "{dir}/remote/*/kern.log");
    let s = Setup::new(&config);
    let folder = s.path("remote/web1");
    fs::create_dir_all(&folder).unwrap();
    fs::write(
        folder.join("kern.log"),
        drop_line("10:00:00", "3.5.140.2", "TCP", 22),
    )
    .unwrap();
    fs::create_dir(s.path("remote/lost+found")).unwrap();
    fs::set_permissions(
        s.path("remote/lost+found"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    for dir in ["remote", "remote/web1"] {
        fs::set_permissions(s.path(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let Some(check) = as_service_user(&s, &["check"]) else {
        eprintln!("not root: no run as another user here");
        return;
    };
    assert_eq!(check.code, 0, "{}", check.stdout);
    let out = as_service_user(&s, &["run"]).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
}

#[test]
fn a_folder_named_like_a_rotated_file_the_run_cannot_open_stops_no_first_read() {
    // Old logs moved by hand into a folder beside the log, root's and 0700: no rotated file,
    // and the first read reads the log.
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    fs::create_dir(s.path("messages-20260101")).unwrap();
    fs::set_permissions(
        s.path("messages-20260101"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let Some(out) = as_service_user(&s, &["run"]) else {
        eprintln!("not root: no run as another user here");
        return;
    };
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.reported(), vec![vec!["3.5.140.2".to_string()]]);
}

#[test]
fn reread_since_a_time_passes_over_a_folder_named_like_a_rotated_file() {
    // A folder beside the log named like its rotated file holds no lines: a reread from a
    // time starts in the log, as a run reads it.
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    fs::create_dir(s.path("messages-20260101")).unwrap();
    s.run(&["run"]).ok();
    let source = s.path("messages").display().to_string();
    s.run(&["reread", "--source", &source, "--since", "1d"])
        .ok();
}

#[test]
fn a_host_folder_above_the_files_of_a_glob_the_run_cannot_read_stops_it() {
    // rsyslog's dirCreateMode = "0700" holds for every folder it makes: with the hosts'
    // files a level further down, the host's own folder hides them.
    let config = standard_config("").replace("{dir}/messages", "{dir}/remote/*/fw/kern.log");
    let s = Setup::new(&config);
    for (host, ip) in [("web1", "3.5.140.2"), ("web2", "3.5.140.3")] {
        let folder = s.path("remote").join(host).join("fw");
        fs::create_dir_all(&folder).unwrap();
        fs::write(
            folder.join("kern.log"),
            drop_line("10:00:00", ip, "TCP", 22).replace("web1", host),
        )
        .unwrap();
        for dir in [folder.parent().unwrap(), &folder] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    fs::set_permissions(s.path("remote"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(s.path("remote/web2"), fs::Permissions::from_mode(0o700)).unwrap();
    let Some(out) = as_service_user(&s, &["run"]) else {
        eprintln!("not root: no run as another user here");
        return;
    };
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("remote/web2"), "{}", out.stderr);
    assert!(s.outbox().is_empty(), "nothing read, nothing sent");
    let check = as_service_user(&s, &["check"]).unwrap();
    assert_eq!(check.code, 78, "{}", check.stdout);

    fs::set_permissions(s.path("remote/web2"), fs::Permissions::from_mode(0o755)).unwrap();
    as_service_user(&s, &["run"]).unwrap().ok();
    assert_eq!(
        s.reported(),
        vec![vec!["3.5.140.2".to_string(), "3.5.140.3".to_string()]]
    );
}

/// A host with no thread to be had: a unit's `TasksMax` reached, or no memory left for a
/// thread's stack. Here `RUST_MIN_STACK` asks for more address space than a process has, so
/// the system refuses every thread for real. A log large enough to be read in parts, a report
/// in several parts and an `unattributed` list of many pieces come out as they do with
/// threads, and sendmail is still run: nothing panics, nothing is lost.
#[test]
fn with_no_thread_to_be_had_a_run_does_on_one_thread_what_it_does_on_several() {
    use std::io::Write;
    let config = standard_config("max_ips_per_message = 2").replace(
        "transport = \"file\"\ndir = \"{dir}/outbox\"",
        "transport = \"sendmail\"\nsendmail_path = \"{dir}/sendmail\"",
    );
    let mut s = Setup::new(&config);
    healthy_sendmail(&s);
    // 34 MiB (a file is read in parts from 32 MiB on): 7 EC2 addresses, and 10,000 in no
    // provider, more than one piece of the list.
    let mut log = std::io::BufWriter::new(fs::File::create(s.path("messages")).unwrap());
    let (mut written, mut lines) = (0usize, 0u64);
    while written < 34 << 20 {
        let ip = match lines % 4 {
            0 => format!("34.208.0.{}", lines / 4 % 7 + 1),
            // The n-th line from no provider comes from the n-th of 10,000 addresses in turn.
            k => {
                let n = (lines / 4 * 3 + k - 1) % 10_000;
                format!("81.2.{}.{}", n / 250, n % 250 + 1)
            }
        };
        let t = lines / 100;
        let line = drop_line(
            &format!("10:{:02}:{:02}", t / 60 % 60, t % 60),
            &ip,
            "TCP",
            22,
        );
        log.write_all(line.as_bytes()).unwrap();
        written += line.len();
        lines += 1;
    }
    log.flush().unwrap();
    drop(log);
    let threaded = s.run_bounded(&["preview", "--json"]).ok();
    let alone = s.preview_alone_as(&threaded);
    let v = alone.json();
    assert_eq!(v["summary"]["lines_read"], lines);
    assert_eq!(v["reports"].as_array().unwrap().len(), 4);
    assert_eq!(v["unattributed"].as_array().unwrap().len(), 10_000);
    s.run_bounded(&["run"]).ok();
    assert_eq!(sent_by_sendmail(&s), 4);
}

/// With no thread to be had, a name the AWS Abuse Signal API is reached by is still looked
/// up (the HTTP client looks names up on a thread of its own, for its deadline): the report
/// fails as the call fails, and waits, rather than the run panicking.
#[test]
fn with_no_thread_to_be_had_an_api_report_waits_rather_than_the_run_panicking() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = through_aws_api(
        &standard_config(""),
        &format!("http://127.0.0.1:{port}"),
        "timeout_secs = 20",
    );
    let mut s = Setup::new(&config);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "AKIAABUSEMAILERTEST1"),
        ("AWS_SECRET_ACCESS_KEY", "not-a-secret"),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
        ("RUST_MIN_STACK", &(1u64 << 47).to_string()),
    ] {
        s.env.push((k.to_string(), v.to_string()));
    }
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let ran = s.run_bounded(&["run"]);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert_eq!(ran.code, 75, "{}", ran.stderr);
    assert!(ran.stderr.contains("not delivered"), "{}", ran.stderr);
    assert!(history(&s).iter().all(|r| r["status"] != "sent"));
}

/// With no thread to be had, what sendmail says when it refuses a message is still read:
/// the report it rejects for good is recorded with sendmail's reason, not an empty one.
#[test]
fn with_no_thread_to_be_had_a_sendmail_refusal_still_says_why() {
    let mut s = sendmail_setup();
    s.write(
        "sendmail",
        "#!/bin/sh\ncat > /dev/null\necho '550 5.1.1 <ec2-abuse@amazon.com>: no such user here' >&2\nexit 67\n",
    );
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.refuse_threads();
    let ran = s.run_bounded(&["run"]);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(ran.stderr.contains("no such user here"), "{}", ran.stderr);
    assert_eq!(history(&s)[0]["status"], "rejected");
    let listed = s.run(&["history"]).ok().stdout;
    assert!(listed.contains("no such user here"), "{listed}");
}

/// A run with few file descriptors left (`ulimit -n`, a unit's `LimitNOFILE`): whatever it
/// could not open, it says the limit, not a permission to fix ("run abuse-mailer as the
/// user that owns …") or a note to remove ("… remove it", of a file that was not there),
/// either of which would send the operator after the wrong thing. Nothing is lost.
#[test]
fn a_run_out_of_file_descriptors_says_the_limit() {
    use std::os::unix::process::CommandExt;
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    s.append("messages", &drop_line("10:00:05", "3.5.140.3", "TCP", 22));
    let mut failed = 0;
    for open_files in 4..=12 {
        let mut run = s.command(&["run"]);
        // SAFETY: setrlimit(2) in the child between fork and exec touches no memory shared
        // with the parent.
        unsafe {
            run.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: open_files,
                    rlim_max: open_files,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let ran = Ran::from(run.output().unwrap());
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
        if ran.code != 0 {
            failed += 1;
            assert!(
                ran.stderr.contains(&format!("ulimit -n {open_files}"))
                    && !ran.stderr.contains("remove it")
                    && !ran.stderr.contains("the user that owns"),
                "{open_files}: {}",
                ran.stderr
            );
        }
    }
    assert!(failed > 0, "no limit was low enough to fail a run");
    s.run(&["run"]).ok();
    let reported: Vec<String> = s.reported().concat();
    assert_eq!(reported, ["3.5.140.2", "3.5.140.3"]);
}

/// A sendmail that says far more than a reason on stderr (a loop, a debug switch left on)
/// before it refuses the message: the run keeps the first of it and reads the rest away,
/// with a reading thread and without one. Under an address space of 1 GiB, 1.5 GB of it
/// held in memory would end the run.
#[test]
fn a_sendmail_that_says_too_much_is_heard_only_in_part() {
    use std::os::unix::process::CommandExt;
    for threads in [true, false] {
        let mut s = sendmail_setup();
        s.write(
            "sendmail",
            "#!/bin/sh\ncat > /dev/null\necho 'refused: no such user here' >&2\nhead -c 1500000000 /dev/zero | tr '\\0' x >&2\nexit 67\n",
        );
        s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
        if !threads {
            s.refuse_threads();
        }
        let mut run = s.command(&["run"]);
        // SAFETY: setrlimit(2) in the child between fork and exec touches no memory shared
        // with the parent.
        unsafe {
            run.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1 << 30,
                    rlim_max: 1 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let ran = Ran::from(run.output().unwrap());
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
        assert!(
            ran.stderr.contains("refused: no such user here"),
            "threads {threads}: {}",
            ran.stderr
        );
        assert_eq!(history(&s)[0]["status"], "rejected", "threads {threads}");
    }
}

/// `check` said "ok" for a `state_dir` the run's user cannot make (under a folder root owns),
/// and the run then failed: it names the folder it cannot write in, and exits 1 as the run
/// would. As root the check runs as the unprivileged user 65534; otherwise as this user,
/// the folder made read-only.
#[test]
fn check_names_a_state_dir_this_user_cannot_make() {
    use std::os::unix::process::CommandExt;
    const USER: u32 = 65534;
    let s =
        Setup::new(&standard_config("").replace("{dir}/state", "{dir}/locked/abuse-mailer/state"));
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    fs::create_dir(s.path("locked")).unwrap();
    fs::set_permissions(s.path("locked"), fs::Permissions::from_mode(0o555)).unwrap();
    let Some(root) = as_root_then_as(&s, USER) else {
        return;
    };
    let mut check = s.command(&["check"]);
    if root {
        fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(s.path("outbox")).unwrap();
        std::os::unix::fs::chown(s.path("outbox"), Some(USER), Some(USER)).unwrap();
        check.uid(USER).gid(USER);
    }
    let out = Ran::from(check.output().unwrap());
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(&format!(
            "{}/locked to be made in: not writable by this user",
            s.dir.path().display()
        )),
        "{said}"
    );
    // Where this user may write, the same configuration checks out.
    fs::set_permissions(s.path("locked"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = Ran::from(match root {
        true => s.command(&["check"]).uid(USER).gid(USER).output().unwrap(),
        false => s.command(&["check"]).output().unwrap(),
    });
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// `history`, `show` and `preview` on a state this user may not write beside (a backup, a
/// snapshot, another user's state): they failed (exit 1), as opening it for writing needs
/// its WAL files made there. They read it as it is, and leave the folder as it was. As root
/// they run as the unprivileged user 65534; otherwise as this user, the folder read-only.
#[test]
fn a_state_in_a_folder_this_user_cannot_write_is_still_read() {
    use std::os::unix::process::CommandExt;
    const USER: u32 = 65534;
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    s.run(&["run"]).ok();
    let id = history(&s)[0]["id"].as_str().unwrap().to_string();
    let Some(root) = as_root_then_as(&s, USER) else {
        return;
    };
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(s.path("state"), fs::Permissions::from_mode(0o555)).unwrap();
    for file in ["state.db", "state.reserve"] {
        let _ = fs::set_permissions(
            s.path("state").join(file),
            fs::Permissions::from_mode(0o644),
        );
    }
    let before: Vec<_> = fs::read_dir(s.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for args in [&["history"][..], &["show", &id], &["preview", "--json"]] {
        let mut cmd = s.command(args);
        if root {
            cmd.uid(USER).gid(USER);
        }
        let out = Ran::from(cmd.output().unwrap());
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        if args[0] == "history" {
            assert!(out.stdout.contains(&id), "{}", out.stdout);
        }
    }
    let after: Vec<_> = fs::read_dir(s.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "the folder as it was");
    // A run there cannot take its lock: it says whose state to run as, not just a path.
    let mut run = s.command(&["run"]);
    if root {
        run.uid(USER).gid(USER);
    }
    let out = Ran::from(run.output().unwrap());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("run abuse-mailer as the user that owns"),
        "{}",
        out.stderr
    );
    fs::set_permissions(s.path("state"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether this test is root, and so runs the command as `user` (the configuration made
/// theirs), rather than as itself, where a folder's mode holds. `None` when it is root but
/// may not give files away (a container without CAP_CHOWN): no mode holds it back then,
/// and no other user can be had.
fn as_root_then_as(s: &Setup, user: u32) -> Option<bool> {
    // SAFETY: geteuid(2) reads the process's effective user id and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some(false);
    }
    match std::os::unix::fs::chown(s.path("config.toml"), Some(user), Some(user)) {
        Ok(()) => Some(true),
        Err(e) => {
            eprintln!("root, but cannot give a file to another user ({e}): not run");
            None
        }
    }
}

/// `check` run as root (with `sudo`, as README's install steps do) reads a log only root may
/// read, as the service's own user (a dynamic user in `adm`) cannot: it says so, where it said
/// ok and every run of the shipped unit failed. So for a log its group may read when that
/// group is not `adm`, and for one in a folder only root may enter; not for `root:adm 0640`.
#[test]
fn check_as_root_warns_of_a_log_only_root_may_read() {
    use std::os::unix::fs::chown;
    let s = Setup::standard();
    s.write("messages", &drop_line("10:00:00", "3.5.140.2", "TCP", 22));
    let log = s.path("messages");
    if chown(&log, Some(0), Some(0)).is_err() {
        eprintln!("SKIPPED: not root");
        return;
    }
    let warned = |s: &Setup| {
        let check = s.run(&["check"]);
        check
            .stdout
            .contains("(a dynamic user in the adm group) may not read it")
    };
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for mode in [0o600, 0o640] {
        fs::set_permissions(&log, fs::Permissions::from_mode(mode)).unwrap();
        assert!(warned(&s), "root:root {mode:o}");
    }
    let adm = fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("adm:x:")?
                .split(':')
                .next()?
                .parse::<u32>()
                .ok()
        });
    let Some(adm) = adm else {
        eprintln!("SKIPPED the rest: no adm group here");
        return;
    };
    chown(&log, Some(0), Some(adm)).unwrap();
    assert!(!warned(&s), "root:adm 0640");
    // Others may read it, adm may not: the kernel judges adm's members by the group's bits.
    fs::set_permissions(&log, fs::Permissions::from_mode(0o604)).unwrap();
    assert!(warned(&s), "root:adm 0604");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(warned(&s), "in a folder only root may enter");
    // An access list that lets adm in (`setfacl -m g:adm:r`) is not judged by the bits.
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown(&log, Some(0), Some(0)).unwrap();
    let acl = Command::new("setfacl")
        .args(["-m", "g:adm:r"])
        .arg(&log)
        .status();
    if acl.is_ok_and(|s| s.success()) {
        assert!(!warned(&s), "an access list letting adm read it");
    } else {
        eprintln!(
            "SKIPPED the access list: no setfacl here, or no access lists on this file system"
        );
    }
}
