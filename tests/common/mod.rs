//! Helpers for driving the `abuse-mailer` binary as a process: a temporary setup with its own
//! config, state folder and outbox, and a pinned clock.
#![allow(dead_code)]

pub mod reference;
pub mod smtp;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment variable naming the folder of real test data (`../shared/data` in CI).
pub const DATA_VAR: &str = "ABUSE_MAILER_DATA";

/// A file from the real test data set named by `ABUSE_MAILER_DATA`. Tests that call this
/// are `#[ignore = "needs ABUSE_MAILER_DATA"]`, so a plain `cargo test` passes without it.
pub fn shared_data(rel: &str) -> PathBuf {
    let Some(dir) = std::env::var_os(DATA_VAR).filter(|d| !d.is_empty()) else {
        panic!("{DATA_VAR} is not set: point it at the real test data (../shared/data)");
    };
    // Configurations written by tests live in temporary folders: the path must be absolute.
    let path = std::path::absolute(PathBuf::from(dir).join(rel)).unwrap();
    assert!(
        path.exists(),
        "test data missing: {} ({DATA_VAR} must name the shared data folder)",
        path.display()
    );
    path
}

/// Whether an outside program (nft, iptables-restore, systemd-analyze, python3 with xarf …)
/// answers `args`. Missing, a test skips it and says so; in CI a missing tool fails the test,
/// since CI installs them and nothing may skip there unnoticed.
pub fn tool(name: &str, args: &[&str]) -> bool {
    let found = Command::new(name)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {name} ({name} {} failed)",
            args.join(" ")
        );
        eprintln!("{name} not installed: skipped what needs it");
    }
    found
}

/// The clock every test run uses unless it says otherwise.
pub const NOW: &str = "2026-01-26T08:00:00Z";

/// What a finished process said.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Ran {
    /// What a finished process said, from its output.
    pub fn from(out: Output) -> Self {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            raw_stdout: out.stdout,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    /// Asserts that the command ended with `code` and said each of `said` on standard error,
    /// and returns self.
    pub fn ended(self, code: i32, said: &[&str]) -> Self {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        for words in said {
            assert!(self.stderr.contains(words), "{words:?} in {}", self.stderr);
        }
        self
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// A temporary installation: `dir/config.toml`, `dir/state`, `dir/outbox`, `dir/messages`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub now: String,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A setup whose config is `config` (TOML); `{dir}` in it is replaced by the folder.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config
            .replace("{dir}", dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap());
        fs::write(dir.path().join("config.toml"), text).unwrap();
        Setup {
            dir,
            now: NOW.to_string(),
            env: Vec::new(),
        }
    }

    /// The usual setup: one log at `dir/messages`, the fixture AWS ranges (EC2 only), file transport.
    pub fn standard() -> Self {
        Self::new(&standard_config(""))
    }

    /// Writes `config` as the setup's configuration, `{dir}` and `{repo}` filled in as
    /// [`Setup::new`] does.
    pub fn reconfigure(&self, config: &str) {
        let text = config
            .replace("{dir}", self.dir.path().to_str().unwrap())
            .replace("{repo}", repo().to_str().unwrap());
        fs::write(self.path("config.toml"), text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap();
    }

    /// A stand-in program (`sendmail`, `journalctl`): `script` written at `rel`, its folder
    /// made, and made executable.
    pub fn write_program(&self, rel: &str, script: &str) {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    /// From now on the system refuses every thread the binary asks for: `RUST_MIN_STACK`
    /// asks for more address space than a process has (as a unit's `TasksMax`, or no memory
    /// left for a stack, would refuse them).
    pub fn refuse_threads(&mut self) {
        self.env
            .push(("RUST_MIN_STACK".into(), (1u64 << 47).to_string()));
    }

    /// `preview --json` run again with every thread refused: the same output, byte for byte,
    /// as `threaded`'s, which is returned.
    pub fn preview_alone_as(&mut self, threaded: &Ran) -> Ran {
        self.refuse_threads();
        let alone = self.run_bounded(&["preview", "--json"]).ok();
        assert!(
            alone.stdout == threaded.stdout,
            "one thread and several disagree"
        );
        alone
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(self.path("config.toml"), args)
    }

    /// [`Setup::command`] with `--config` spelled `config` (a path of another file, or one
    /// relative to the folder the command is run from).
    pub fn command_with(&self, config: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_abuse-mailer"));
        cmd.arg("--config").arg(config).args(args);
        cmd.env("ABUSE_MAILER_NOW", &self.now);
        cmd.env_remove("ABUSE_MAILER_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        Ran::from(self.command(args).output().unwrap())
    }

    /// `reread --source {dir}/messages --since ago`, which must succeed.
    pub fn reread_since(&self, ago: &str) -> Ran {
        let messages = self.path("messages");
        let source = messages.to_str().unwrap();
        self.run(&["reread", "--source", source, "--since", ago])
            .ok()
    }

    /// [`Setup::run`], failing the test if the run has not ended within 60 s (for faults
    /// that could make it hang). Its output is read while it runs, so a talkative run never
    /// blocks on a full pipe.
    pub fn run_bounded(&self, args: &[&str]) -> Ran {
        const BOUND: std::time::Duration = std::time::Duration::from_secs(60);
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > BOUND {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{}` still running after {BOUND:?}", args.join(" "));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let raw_stdout = stdout.join().unwrap();
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&raw_stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
            raw_stdout,
        }
    }

    /// The `.eml` files in the outbox, sorted by name.
    pub fn outbox(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.path("outbox")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
    }

    /// The IPs of each report in the ledger, oldest first.
    pub fn reported(&self) -> Vec<Vec<String>> {
        let history = self.run(&["history", "--json"]).ok().json();
        history
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    }
}

/// Makes `dir/sendmail` a sendmail that keeps each message it is given in `dir/sent/`.
pub fn healthy_sendmail(s: &Setup) {
    s.write_program(
        "sendmail",
        &format!(
            "#!/bin/sh\nmkdir -p {0}/sent\ncat > {0}/sent/$$.eml\n",
            s.dir.path().display()
        ),
    );
}

/// A config with one source at `{dir}/messages`, AWS fixture ranges and the file transport;
/// `extra_report` goes into `[report]`.
pub fn standard_config(extra_report: &str) -> String {
    format!(
        r#"
state_dir = "{{dir}}/state"
timezone = "UTC"

[[source]]
path = "{{dir}}/messages"

[[provider]]
name = "aws"
to = ["ec2-abuse@amazon.com"]
ranges = "{{repo}}/fixtures/ranges/aws-ip-ranges.json"
services = ["EC2"]

[report]
from = "Abuse desk <abuse@example.org>"
# Most tests log one packet per address; the default of 3 has tests of its own.
min_hits = 1
{extra_report}

[mail]
transport = "file"
dir = "{{dir}}/outbox"
"#
    )
}

/// `config` with its `aws` provider delivering through the AWS Abuse Signal API at `endpoint`,
/// its `[aws_api]` section holding `section` lines too (`timeout_secs = 20`, say).
pub fn through_aws_api(config: &str, endpoint: &str, section: &str) -> String {
    config
        .replace(
            "to = [\"ec2-abuse@amazon.com\"]\n",
            "delivery = \"aws-abuse-api\"\n",
        )
        .replace(
            "[mail]",
            &format!(
                "[aws_api]\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\n{section}\n\n[mail]"
            ),
        )
}

/// `config` with a second provider, `other`, holding the fixture's plain CIDR ranges
/// (81.2.69.0/24 among them), its desk `abuse@other.example`.
pub fn with_other_provider(config: &str) -> String {
    config.replace(
        "[report]",
        "[[provider]]\nname = \"other\"\nto = [\"abuse@other.example\"]\nranges = \"{repo}/fixtures/ranges/other-cloud.txt\"\n\n[report]",
    )
}

/// The `ip` of every entry of a JSON array (a report's `ips`, or `unattributed`).
pub fn ip_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap().to_string())
        .collect()
}

/// The strings of a JSON array (a ledger row's `ips`, say).
pub fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// A kernel LOG line as the default prefix writes it.
pub fn drop_line(time: &str, src: &str, proto: &str, dpt: u16) -> String {
    format!(
        "Jan 25 {time} web1 kernel: [810294.788657] INPUT-DROP:IN=eth0 OUT= MAC=52:54:00:12:34:56:fe:54:00:ab:cd:ef:08:00 SRC={src} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO={proto} SPT=40000 DPT={dpt} \n"
    )
}

/// Every file below `dir` with its bytes, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Validates a XARF document against the v4 schemas bundled with PyPI's `xarf` (strict:
/// recommended fields required too). `None` if that validator is not installed.
pub fn xarf_errors(document: &str) -> Option<Vec<String>> {
    let script = "import json, sys, xarf\n\
                  r = xarf.parse(sys.stdin.read(), strict=True)\n\
                  print(json.dumps([e.message for e in r.errors]))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Removes `state/run.lock` once another process holds it (a lock of the test's own is
/// refused), as a hand taking it for a stale lock would, mid-command.
pub fn remove_the_lock_once_held(s: &Setup) {
    let lock = s.path("state/run.lock");
    let waited = std::time::Instant::now();
    while !fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_err())
        && waited.elapsed().as_secs() < 30
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    fs::remove_file(&lock).unwrap();
}

/// The ledger of `s` as `history --json` prints it, oldest first.
pub fn history(s: &Setup) -> Vec<serde_json::Value> {
    s.run(&["history", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// Hits per IP as the state database of `s` holds them.
pub fn observed_hits(s: &Setup) -> std::collections::BTreeMap<String, u64> {
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let mut stmt = db.prepare("SELECT ip, hits FROM observation").unwrap();
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// The log lines under the evidence heading that begins `heading` (`# 3.5.140.2: `) in a
/// message's text, up to the blank line after them.
pub fn lines_under(text: &str, heading: &str) -> Vec<String> {
    let under = text
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in {text}"));
    (under.lines().skip(1))
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
