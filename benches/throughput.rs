//! Throughput benchmark: `cargo bench` (or `BENCH_MB=256 cargo bench` for a smaller log).
//!
//! Generates a deterministic syslog file (seeded; `BENCH_MB`, default 1024 MiB): about 70%
//! INPUT-DROP lines from a few thousand IPs with a heavy-tailed distribution (IPv6 among
//! them), the rest other kernel and daemon lines. Then, in the same run and on the same file
//! (in page cache after the first read), it times:
//!
//! - `grep -c INPUT-DROP:` (the floor: reading the file),
//! - `abuse-mailer preview --json` (wall time, MB/s, lines/s, peak RSS),
//! - the seed pipeline `grep | sed | sort | uniq` (skip it with `BENCH_SEED=0`),
//! - a full `run`, then a no-op `run` with nothing new,
//! - rendering one report of 8,000 IPs (in process).
//!
//! Nothing here asserts a time; it prints figures for README's table.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use abuse_mailer::config::load;
use abuse_mailer::enrich::Attacker;
use abuse_mailer::ingest::Observation;
use abuse_mailer::render::{Envelope, Report, Templates, message};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, and the same sequence everywhere.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A few thousand attackers: mostly EC2 ranges of the fixture file, some IPv6, some elsewhere.
fn attackers(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 10 {
            0 => format!(
                "2600:1f18:{:x}:{:x}::{:x}",
                rng.below(0x7fff),
                rng.below(0xffff),
                rng.below(0xffff) + 1
            ),
            1 => format!("81.2.{}.{}", rng.below(256), rng.below(254) + 1),
            2 | 3 => format!(
                "18.{}.{}.{}",
                204 + rng.below(4),
                rng.below(256),
                rng.below(254) + 1
            ),
            _ => format!(
                "34.{}.{}.{}",
                208 + rng.below(16),
                rng.below(256),
                rng.below(254) + 1
            ),
        })
        .collect()
}

fn generate(path: &Path, bytes: u64) -> u64 {
    let mut rng = Rng(0x5eed_0ab0_5e00_0001);
    let ips = attackers(&mut rng, 4000);
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let (mut written, mut lines, mut second) = (0u64, 0u64, 0u64);
    let months = ["Jan", "Feb"];
    while written < bytes {
        if rng.below(40) == 0 {
            second += 1;
        }
        let day = 1 + second / 86_400 % 28;
        let month = months[(second / (86_400 * 28) % 2) as usize];
        let stamp = format!(
            "{month} {day:2} {:02}:{:02}:{:02}",
            second / 3600 % 24,
            second / 60 % 60,
            second % 60
        );
        let line = if rng.below(10) < 7 {
            // Heavy tail: a few IPs send most packets.
            let ip = &ips[(rng.unit().powi(4) * ips.len() as f64) as usize];
            let (proto, dpt) = match rng.below(4) {
                0 => ("TCP", 22),
                1 => ("TCP", 443),
                _ => ("UDP", 53),
            };
            format!(
                "{stamp} web1 kernel: [{}.{:06}] INPUT-DROP:IN=eth0 OUT= MAC=52:54:00:12:34:56:fe:54:00:ab:cd:ef:08:00 SRC={ip} DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=241 ID={} PROTO={proto} SPT={} DPT={dpt} LEN=40 \n",
                810_000 + second,
                rng.below(1_000_000),
                rng.below(65536),
                1024 + rng.below(60000)
            )
        } else {
            match rng.below(3) {
                0 => format!(
                    "{stamp} web1 sshd[{}]: Connection closed by authenticating user root 203.0.113.{} port {} [preauth]\n",
                    rng.below(30000),
                    rng.below(255),
                    rng.below(65536)
                ),
                1 => format!(
                    "{stamp} web1 CRON[{}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)\n",
                    rng.below(30000)
                ),
                _ => format!(
                    "{stamp} web1 kernel: [{}.000000] eth0: link is up, 1000 Mbps full duplex\n",
                    810_000 + second
                ),
            }
        };
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        lines += 1;
    }
    out.flush().unwrap();
    lines
}

/// Runs a shell command, returning its wall time and peak RSS (KiB, from /proc while it runs).
fn measure(cmd: &mut Command) -> (Duration, u64, Vec<u8>) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::copy(&mut std::io::BufReader::new(stdout), &mut out).unwrap();
        out
    });
    let mut peak = 0;
    loop {
        if let Some(kib) = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(str::to_string)
            })
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    (elapsed, peak, reader.join().unwrap())
}

fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let seed = std::env::var("BENCH_SEED")
        .map(|v| v != "0")
        .unwrap_or(true);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    let started = Instant::now();
    let lines = generate(&log, mb << 20);
    let bytes = fs::metadata(&log).unwrap().len();
    println!(
        "log: {} MiB, {lines} lines, generated in {:.1}s",
        bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "state_dir = \"{d}/state\"\ntimezone = \"UTC\"\n[[source]]\npath = \"{d}/messages\"\n\
             [[provider]]\nname = \"aws\"\nto = [\"ec2-abuse@amazon.com\"]\nranges = \"{r}/fixtures/ranges/aws-ip-ranges.json\"\n\
             [report]\nfrom = \"abuse@example.org\"\n[mail]\ntransport = \"file\"\ndir = \"{d}/outbox\"\n",
            d = dir.path().display(),
            r = env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_abuse-mailer");
    // Warm the page cache.
    let _ = measure(Command::new("cat").arg(&log).stdout(Stdio::null()));
    let row = |name: &str, t: Duration, rss: u64| {
        let s = t.as_secs_f64();
        println!(
            "{name:<28} {:>8.3} s {:>9.0} MB/s {:>12.0} lines/s {:>8} MiB peak RSS",
            s,
            bytes as f64 / 1e6 / s,
            lines as f64 / s,
            rss / 1024
        );
        s
    };
    let (t, rss, out) = measure(Command::new("grep").args(["-c", "INPUT-DROP:"]).arg(&log));
    let grep = row("grep -c INPUT-DROP:", t, rss);
    println!(
        "  ({} matching lines)",
        String::from_utf8_lossy(&out).trim()
    );
    let (t, rss, out) = measure(
        Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["preview", "--json"]),
    );
    let ours = row("abuse-mailer preview --json", t, rss);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    println!(
        "  ({} IPs reported, summary {})",
        v["reports"][0]["ips"].as_array().map_or(0, |a| a.len()),
        v["summary"]
    );
    println!("  preview / grep: {:.2}x", ours / grep);
    if seed {
        let (t, rss, out) = measure(Command::new("bash").arg("-c").arg(format!(
            "grep INPUT-DROP: {} | sed -rn 's,.* SRC=([0-9.]+).*,\\1,p' | sort -t . -k1,1n -k2,2n -k3,3n -k4,4n | uniq | wc -l",
            log.display()
        )));
        let s = row("seed grep|sed|sort|uniq", t, rss);
        println!(
            "  ({} addresses; preview is {:.0}x faster)",
            String::from_utf8_lossy(&out).trim(),
            s / ours
        );
    }
    let (t, rss, _) = measure(Command::new(bin).arg("--config").arg(&config).arg("run"));
    row("abuse-mailer run (full)", t, rss);
    let (t, rss, _) = measure(Command::new(bin).arg("--config").arg(&config).arg("run"));
    println!(
        "{:<28} {:>8.1} ms {:>8} MiB peak RSS",
        "abuse-mailer run (no-op)",
        t.as_secs_f64() * 1e3,
        rss / 1024
    );

    // Rendering a report of 8,000 IPs, in process.
    let settings = load(&config).unwrap();
    let mut rng = Rng(7);
    let attackers: Vec<Attacker> = attackers(&mut rng, 8000)
        .into_iter()
        .map(|ip| {
            let mut o = Observation::new(ip.parse().unwrap(), 1_769_385_085);
            o.hits = 1 + rng.below(1000);
            o.last_seen += rng.below(86_400) as i64;
            o.dst_ports.extend([22, 53, 443]);
            o.protocols.insert("TCP".into());
            Attacker {
                observation: o,
                range: None,
                asn: None,
                rereport: false,
            }
        })
        .collect();
    let templates = Templates::load(None, &["aws"]).unwrap();
    let started = Instant::now();
    let report = Report::new(
        "aws",
        &settings.providers[0].to,
        &attackers,
        None,
        &settings.report,
        settings.zone,
        chrono::Utc::now(),
    );
    let (subject, body) = templates.render(&report).unwrap();
    let head = Envelope {
        from: &settings.report.from,
        to: &settings.providers[0].to,
        cc: &[],
        reply_to: None,
        message_id: "<bench@example.org>",
        thread_root: None,
        date: chrono::Utc::now(),
    };
    let bytes = message(&head, &subject, &body, &report, &settings.report).unwrap();
    println!(
        "{:<28} {:>8.1} ms ({} KiB message)",
        "render 8,000 IPs",
        started.elapsed().as_secs_f64() * 1e3,
        bytes.len() >> 10
    );
}
