//! Many servers, one log host: a real rsyslogd on loopback receives two hosts' firewall lines
//! over TCP and writes one file per host, as README's fleet section sets it up; one instance
//! reading a glob over those files reports both hosts' attackers and keeps each host in the
//! evidence.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// rsyslogd in the foreground, stopped when dropped.
struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The log host's configuration: TCP input on `port`, one file per sending host, after
/// Ubuntu's `$RepeatedMsgReduction on`, which README's `off` undoes.
fn log_host_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"global(workDirectory="{d}/work")
$RepeatedMsgReduction on
$RepeatedMsgReduction off
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="remote")
template(name="PerHostKernLog" type="string" string="{d}/hosts/%HOSTNAME%/kern.log")
ruleset(name="remote") {{
    action(type="omfile" dynaFile="PerHostKernLog" template="RSYSLOG_FileFormat"
           dirCreateMode="0700" fileCreateMode="0600")
}}
"#
    )
}

fn start(dir: &Path) -> (Rsyslogd, u16) {
    // One daemon starts at a time: between a free port's being taken from the kernel and
    // rsyslogd's listening on it, another test of this file could be handed the same port;
    // one daemon then went without its input, and that test's lines reached the other's.
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    // A free port: taken from the kernel, then handed to rsyslogd.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = spawn(dir, &log_host_config(dir, port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, port)
}

/// rsyslogd in the foreground with the configuration `conf`, its files in `dir`.
fn spawn(dir: &Path, conf: &str) -> Rsyslogd {
    std::fs::create_dir_all(dir.join("work")).unwrap();
    let path = dir.join("rsyslog.conf");
    std::fs::write(&path, conf).unwrap();
    // Its BSD stamps in UTC, the zone the tests' configuration reads them in.
    let child = Command::new("rsyslogd")
        .env("TZ", "UTC")
        .arg("-n")
        .arg("-f")
        .arg(&path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rsyslogd starts");
    Rsyslogd(child)
}

/// What a server's rsyslog forwards with `RSYSLOG_ForwardFormat`: `<PRI>RFC3339-STAMP HOST
/// kernel: …`, one frame a line, the stamp in the server's own zone (its local `date` and
/// `offset`, `+09:00`).
fn forward(port: u16, host: &str, (date, offset): (&str, &str), lines: &[String]) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for line in lines {
        // `Jan 25 10:00:00 web1 …` as the server stamps it.
        let (bsd, rest) = line.split_at(15);
        let time = &bsd[7..];
        let frame = format!(
            "{date}T{time}{offset}{}",
            rest.replacen(" web1 ", &format!(" {host} "), 1)
        );
        // kern.warning: facility 0, severity 4.
        writeln!(conn, "<4>{}", frame.trim_end()).unwrap();
    }
    conn.flush().unwrap();
}

fn wait_for_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {have} of {n} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log host's installation: one source, a glob over the per-host files.
fn log_host_setup() -> Setup {
    Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/hosts/*/kern.log\"\nstart_at = \"beginning\"",
    ))
}

#[test]
fn two_hosts_through_rsyslog_are_reported_with_their_host_names() {
    if !tool("rsyslogd", &["-v"]) {
        return;
    }
    let s = log_host_setup();
    let (_daemon, port) = start(s.dir.path());
    let web1: Vec<String> = (0..3)
        .map(|i| drop_line(&format!("10:00:0{i}"), "3.5.140.2", "TCP", 22))
        .collect();
    let web2: Vec<String> = (0..2)
        .map(|i| drop_line(&format!("20:00:0{i}"), "34.223.47.190", "UDP", 53))
        .collect();
    // Two servers in two zones, attacked at the same moment: each line keeps its own
    // offset through the log host.
    forward(port, "web1", ("2026-01-25", "+09:00"), &web1);
    forward(port, "web2", ("2026-01-24", "-05:00"), &web2);
    wait_for_lines(&s.path("hosts/web1/kern.log"), 3);
    wait_for_lines(&s.path("hosts/web2/kern.log"), 2);

    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 5, "{v}");
    let report = &v["reports"][0];
    assert_eq!(ip_list(&report["ips"]), ["3.5.140.2", "34.223.47.190"]);
    // 10:00 in Tokyo and 20:00 the day before in New York are one moment (the configured
    // zone is UTC).
    assert_eq!(report["ips"][0]["first_seen"], "2026-01-25T01:00:00+00:00");
    assert_eq!(report["ips"][1]["first_seen"], "2026-01-25T01:00:00+00:00");
    let excerpt: Vec<&str> = report["excerpt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        excerpt
            .iter()
            .any(|l| l.contains(" web1 kernel: ") && l.contains("SRC=3.5.140.2 ")),
        "{excerpt:?}"
    );
    assert!(
        excerpt
            .iter()
            .any(|l| l.contains(" web2 kernel: ") && l.contains("SRC=34.223.47.190 ")),
        "{excerpt:?}"
    );

    // A run reports both; lines forwarded later are new to the next run only.
    s.run(&["run"]).ok();
    forward(
        port,
        "web2",
        ("2026-01-24", "-05:00"),
        &[drop_line("20:05:00", "18.206.107.24", "TCP", 443)],
    );
    wait_for_lines(&s.path("hosts/web2/kern.log"), 3);
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 1, "{v}");
    assert_eq!(ip_list(&v["reports"][0]["ips"]), ["18.206.107.24"]);
}

/// A local user's `logger -t kernel` line, sent with the kernel's own facility: rsyslog
/// writes it where Ubuntu's ufw rule and `syslog` take it, never to `kern.log`, which the
/// README tells a host with untrusted users to read. Read from `kern.log`, it reports
/// nobody; read from `ufw.log`, the forged address would be reported.
#[test]
fn a_local_users_kernel_tagged_line_never_reaches_kern_log() {
    if !tool("rsyslogd", &["-v"]) || !tool("logger", &["--version"]) {
        return;
    }
    let s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/kern.log\"\nprefixes = [\"[UFW BLOCK] \"]\nstart_at = \"beginning\"",
    ));
    let d = s.dir.path().display();
    s.write("kern.log", "");
    let _daemon = spawn(
        s.dir.path(),
        &format!(
            r#"global(workDirectory="{d}/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock")
:msg,contains,"[UFW " {d}/ufw.log
kern.* {d}/kern.log
*.*;kern.none {d}/syslog
"#
        ),
    );
    let socket = s.path("log.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "rsyslogd made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let forged = "[UFW BLOCK] IN=eth0 OUT= SRC=3.5.140.2 DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0";
    let sent = Command::new("logger")
        .arg("-u")
        .arg(&socket)
        .args(["-p", "kern.warning", "-t", "kernel", forged])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_for_lines(&s.path("ufw.log"), 1);
    wait_for_lines(&s.path("syslog"), 1);
    assert_eq!(std::fs::read_to_string(s.path("kern.log")).unwrap(), "");
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 0, "{v}");
    assert!(v["reports"].as_array().unwrap().is_empty(), "{v}");
    // The same line read from ufw.log is taken for a packet: why the README says so.
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    s.write("config.toml", &config.replace("/kern.log", "/ufw.log"));
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 1, "{v}");
}

/// rsyslog's `$RepeatedMsgReduction` (on in Debian's and Ubuntu's rsyslog.conf) writes one
/// line and then `message repeated N times: [ … ]` for a packet logged again alike (no uptime
/// stamp, a scanner's fixed IP ID and port): the packets are counted, N more, not one line.
/// Sent the way the host's own kernel lines reach rsyslog, through its local socket.
#[test]
fn rsyslogs_repeated_message_counts_every_packet_it_stands_for() {
    if !tool("rsyslogd", &["-v"]) {
        return;
    }
    let mut s = Setup::new(&standard_config("").replace(
        "path = \"{dir}/messages\"",
        "path = \"{dir}/kern.log\"\nstart_at = \"beginning\"",
    ));
    // rsyslog stamps what comes through its socket with the time it came.
    s.now = chrono::Utc::now().to_rfc3339();
    let d = s.dir.path().display();
    let _daemon = spawn(
        s.dir.path(),
        &format!(
            r#"global(workDirectory="{d}/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock")
$RepeatedMsgReduction on
*.* action(type="omfile" file="{d}/kern.log" template="RSYSLOG_TraditionalFileFormat")
"#
        ),
    );
    let socket = s.path("log.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "rsyslogd made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kernel_line = |src: &str, proto: &str, dpt: u16| {
        let line = drop_line("10:00:00", src, proto, dpt);
        let message = line.split_once("] ").unwrap().1.trim_end().to_string();
        format!("<4>Jan 25 10:00:00 kernel: {message}")
    };
    let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let same = kernel_line("3.5.140.2", "TCP", 22);
    for _ in 0..4 {
        sender.send_to(same.as_bytes(), &socket).unwrap();
    }
    let other = kernel_line("34.223.47.190", "UDP", 53);
    sender.send_to(other.as_bytes(), &socket).unwrap();
    wait_for_lines(&s.path("kern.log"), 3);
    let written = std::fs::read_to_string(s.path("kern.log")).unwrap();
    assert!(written.contains("message repeated 3 times: ["), "{written}");
    let v = s.run(&["preview", "--json"]).ok().json();
    assert_eq!(v["summary"]["lines_matched"], 3, "{v}");
    assert_eq!(v["summary"]["lines_malformed"], 0, "{v}");
    let ips = &v["reports"][0]["ips"];
    assert_eq!(ips[0]["ip"], "3.5.140.2", "{v}");
    assert_eq!(ips[0]["hits"], 4, "{v}");
    assert_eq!(ips[1]["hits"], 1, "{v}");
}

/// A server forwards the same packet's line several times over (no uptime stamp, a
/// scanner's fixed fields): with README's log host configuration each copy is written and
/// counted. (With Ubuntu's `$RepeatedMsgReduction on` left in force, rsyslog drops the
/// copies received over TCP without a `message repeated` line.)
#[test]
fn identical_lines_forwarded_to_the_log_host_are_each_counted() {
    if !tool("rsyslogd", &["-v"]) {
        return;
    }
    let s = log_host_setup();
    let (_daemon, port) = start(s.dir.path());
    let same = drop_line("10:00:00", "3.5.140.2", "TCP", 22).replace("[810294.788657] ", "");
    let mut lines = vec![same; 4];
    lines.push(drop_line("10:00:01", "34.223.47.190", "UDP", 53));
    forward(port, "web1", ("2026-01-25", "+00:00"), &lines);
    wait_for_lines(&s.path("hosts/web1/kern.log"), 5);
    let v = s.run(&["preview", "--json"]).ok().json();
    let ips = &v["reports"][0]["ips"];
    assert_eq!(ips[0]["ip"], "3.5.140.2", "{v}");
    assert_eq!(ips[0]["hits"], 4, "{v}");
}
