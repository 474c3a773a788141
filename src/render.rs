//! Render: a provider's enriched attackers and excerpt become a [`Report`] (what a template
//! sees), the templates turn it into a subject and a body, and those become the exact MIME
//! `Message` bytes that are stored and sent.
//!
//! Default templates are compiled in; `templates_dir` may override any of them, per provider
//! in `templates_dir/<provider>/`. Nothing from a log line reaches a header: the subject is
//! rendered from counts and names, then stripped of control characters, and every header value
//! is encoded by lettre (folded by [`crate::header`] where lettre leaves a line too long).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::{self, ContentTransferEncoding};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use serde::Serialize;

use crate::clock::Zone;
use crate::config::ReportConfig;
use crate::enrich::Attacker;
use crate::error::ConfigError;
use crate::excerpt::{EvidenceLine, Window, clean, is_address, redact};
use crate::ingest::{MAX_PORTS, Observation};

/// The version that `User-Agent` and report footers name.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where Linux's ephemeral ports begin (`net.ipv4.ip_local_port_range`, 32768 to 60999 by
/// default): the ports a host's own connections come from, and answers to them go to.
const EPHEMERAL_FROM: u16 = 32768;

/// At most this many sources are listed in a body; every one is in ips.csv and the JSON.
pub const BODY_LISTED: usize = 100;
/// The width a body's lines keep to, log lines apart (ticket systems and mail readers wrap
/// wider lines, which breaks tables).
pub const BODY_WIDTH: usize = 78;
/// At most this many of each address's own lines go into evidence.log.
pub const EVIDENCE_PER_ADDRESS: usize = 10;

/// The templates a report is rendered from, by file name.
pub const TEMPLATE_NAMES: [&str; 2] = ["subject.txt", "body.txt"];

/// The files a message may attach.
const CSV_FILE: &str = "ips.csv";
const EXCERPT_FILE: &str = "excerpt.log";
const EVIDENCE_FILE: &str = "evidence.log";
const XARF_FILE: &str = "xarf.json";
const DEFAULT_SUBJECT: &str = include_str!("../templates/subject.txt");
const DEFAULT_BODY: &str = include_str!("../templates/body.txt");

/// One attacker as a template sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportIp {
    pub ip: String,
    pub hits: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    /// Destination ports.
    pub ports: Vec<u16>,
    pub source_ports: Vec<u16>,
    pub protocols: Vec<String>,
    /// The operator's addresses it targeted.
    pub targets: Vec<String>,
    pub hosts: Vec<String>,
    pub range: Option<String>,
    pub region: Option<String>,
    pub services: Vec<String>,
    pub network_border_group: Option<String>,
    /// Reported to this provider before, and still attacking.
    pub rereport: bool,
    /// For a re-report: when the last report listed it, with how many packets, and how many
    /// have come since (all of them when the earlier ones have become history).
    pub reported_on: Option<String>,
    pub hits_then: u64,
    pub hits_since: u64,
    /// What this host did, in a few words (`TCP 22 probes`), judged from its own packets.
    pub kind: String,
    /// The destination ports, shortened to fit the body's table (`22, 80 and 12 more`).
    pub ports_text: String,
    /// This address's own log lines (cleaned and redacted), for the evidence attachment.
    pub evidence: Vec<String>,
    /// Seconds from its first packet to its last.
    #[serde(skip)]
    pub span_seconds: i64,
    /// Every line of it kept is an answer (TCP ACK or RST, an ICMP error or reply), and its
    /// ports have an answer's shape: counted only with `backscatter = true`, and named as
    /// answers, not probes.
    #[serde(skip)]
    pub answers: bool,
}

impl ReportIp {
    /// Names this host for the answers its lines kept all are (TCP ACK or RST, ICMP errors
    /// and replies, counted with `backscatter = true`); whether its kind changed. The lines
    /// kept are a few of its packets: a host with ports is taken for an answerer only when
    /// the ports of all its packets have an answer's shape too, from a service's port to the
    /// operator's ephemeral ones (Linux's, from [`EPHEMERAL_FROM`]: a scan from port 443 to
    /// 3389 is no answer). ICMP has no ports to tell by: such a host's packets are
    /// named without a word for what they were (a host that answered a few pings and sent
    /// sixty of its own keeps its replies among the lines kept).
    fn name_answers(&mut self) -> bool {
        let icmp = |p: &String| p.starts_with("ICMP");
        if !self.protocols.is_empty() && self.protocols.iter().all(icmp) {
            self.kind = format!("{} packets", protocol_words(&self.protocols));
            return true;
        }
        let shaped = !self.ports.is_empty()
            && self.ports.iter().all(|p| *p >= EPHEMERAL_FROM)
            && self.source_ports.iter().all(|p| *p < 1024);
        if !shaped {
            return false;
        }
        self.answers = true;
        self.kind = answers_kind(&self.protocols, &self.source_ports);
        // At a flood's rate, reflection: servers answering packets forged in the operator's
        // name (a SYN-ACK reflection), named as a flood, as XARF files it.
        if is_flood(self.hits, self.span_seconds) {
            self.kind.push_str(" (flood)");
        }
        true
    }

    /// An attacker as templates and JSON show it, times in `zone`.
    pub fn new(a: &Attacker, zone: Zone) -> Self {
        let o = &a.observation;
        let protocols = protocol_labels(o.protocols.iter());
        let ports: Vec<u16> = o.dst_ports.iter().copied().collect();
        let source_ports: Vec<u16> = o.src_ports.iter().copied().collect();
        let span = o.last_seen.saturating_sub(o.first_seen);
        let kind = reflection(&protocols, &source_ports, &ports)
            .unwrap_or_else(|| abuse_kind(&protocols, &ports, o.hits, span));
        ReportIp {
            kind,
            ip: o.ip.to_string(),
            hits: o.hits,
            first_seen: zone.rfc3339(o.first_seen),
            last_seen: zone.rfc3339(o.last_seen),
            asn: a.asn.as_ref().map(|x| x.asn),
            // The database is outside input too: its text is cleaned like a log's.
            as_org: a
                .asn
                .as_ref()
                .and_then(|x| x.org.as_deref())
                .map(|t| clean(t.as_bytes())),
            ports,
            source_ports,
            protocols,
            targets: o.dsts.iter().map(|d| d.to_string()).collect(),
            hosts: o.hosts.iter().map(|h| clean(h.as_bytes())).collect(),
            range: a.range.as_ref().map(|r| r.prefix.to_string()),
            region: a.range.as_ref().and_then(|r| r.region.clone()),
            services: a
                .range
                .as_ref()
                .map(|r| r.services.clone())
                .unwrap_or_default(),
            network_border_group: a
                .range
                .as_ref()
                .and_then(|r| r.network_border_group.clone()),
            rereport: a.before.is_some(),
            reported_on: (a.before.as_ref())
                .and_then(|b| b.at)
                .map(|at| zone.rfc3339(at)),
            hits_then: a.before.as_ref().map_or(0, |b| b.hits),
            hits_since: a.before.as_ref().map_or(o.hits, |b| b.hits_since(o)),
            ports_text: String::new(),
            evidence: Vec::new(),
            span_seconds: span,
            answers: false,
        }
    }
}

/// Who reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reporter {
    pub name: String,
    pub email: String,
    pub domain: String,
}

/// Everything a report's templates can use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub provider: String,
    /// The provider as people name it (`AWS` for `aws`), for the subject and the text.
    pub provider_label: String,
    /// Where replies go: `reply_to` if configured, else the sender.
    pub reply_address: String,
    /// The operator's targeted addresses in a few words: one address, `3 of our addresses`,
    /// or `our servers` when `DST` is redacted.
    pub target_summary: String,
    /// The destination ports in a line that fits the body (`22, 80 and 12 more`).
    pub ports_text: String,
    /// The sources the body lists: the `BODY_LISTED` with the most packets (all are in ips.csv).
    pub listed: Vec<ReportIp>,
    /// How many sources the body leaves to ips.csv.
    pub not_listed: usize,
    /// The width of the address column of the body's table.
    pub ip_width: usize,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reporter: Reporter,
    /// When the report was made, and the zone every time in it is given in.
    pub generated_at: String,
    pub timezone: String,
    pub ip_count: usize,
    pub rereport_count: usize,
    pub total_hits: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub protocols: Vec<String>,
    pub ports: Vec<u16>,
    pub targets: Vec<String>,
    pub hosts: Vec<String>,
    pub ips: Vec<ReportIp>,
    pub excerpt: Vec<String>,
    pub excerpt_seconds: u32,
    pub excerpt_start: Option<String>,
    /// How many lines from these IPs the excerpt's window held (the excerpt may show fewer).
    pub excerpt_window_lines: u64,
    /// Whether that is a least: lines of these addresses that were not kept may fall in the
    /// window too.
    pub excerpt_window_at_least: bool,
    /// The names of the files attached (`ips.csv`, `excerpt.log`, or `xarf.json`).
    pub attachments: Vec<String>,
    /// What kind of abuse, in a few words: `UDP 53 flood`, `TCP to 22/443`, `port scan (120 ports)`.
    pub abuse_kind: String,
    /// Many sources, each a few packets to the same port or two within minutes: the shape of
    /// a flood whose source addresses may be forged (see [`spread_flood`]).
    pub spoofing_likely: bool,
    /// Whether the message carries XARF (`xarf = true`, one IP that XARF can tell, with a
    /// source and a destination port: see [`crate::xarf::tells`]; others get the plain
    /// report).
    pub xarf: bool,
    /// This message's part of a split report, and how many parts there are.
    pub part: usize,
    pub parts: usize,
    /// The destination's addresses left for later reports (a delta larger than one run
    /// makes parts for): the parts of this report are not all there is, and the next
    /// report's numbering starts again at 1.
    pub later: usize,
    pub version: String,
    /// For a report to a desk that discovery found: why this desk (absent for a provider).
    pub desk: Option<Desk>,
}

/// Why a discovered desk gets the report: where its address was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Desk {
    pub address: String,
    /// `rdap` or `abusix`.
    pub source: String,
    /// The registry's network holding the first address (CIDR), if the source names one.
    pub network: Option<String>,
    /// The registry's handle of that network.
    pub handle: Option<String>,
    /// Where the answer came from: the RDAP URL, or the DNS name asked.
    pub origin: String,
    /// When RDAP named the desk for some of the addresses and Abusix for the others: how
    /// many Abusix named it for, and the first DNS name asked.
    pub abusix_also: Option<AbusixAlso>,
}

/// The addresses of a digest that Abusix, not RDAP, named the desk for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AbusixAlso {
    pub addresses: usize,
    pub origin: String,
}

impl Report {
    /// Builds the report for a provider from its attackers (sorted) and evidence window.
    pub fn new(
        provider: &str,
        to: &[Mailbox],
        attackers: &[Attacker],
        window: Option<&Window>,
        cfg: &ReportConfig,
        zone: Zone,
        now: DateTime<Utc>,
    ) -> Self {
        let mut protocols = std::collections::BTreeSet::new();
        let mut ports = std::collections::BTreeSet::new();
        let mut targets = std::collections::BTreeSet::new();
        let mut hosts = std::collections::BTreeSet::new();
        for a in attackers {
            let o = &a.observation;
            protocols.extend(o.protocols.iter().cloned());
            ports.extend(o.dst_ports.iter().copied());
            targets.extend(o.dsts.iter().copied());
            hosts.extend(o.hosts.iter().cloned());
        }
        let first = attackers
            .iter()
            .map(|a| a.observation.first_seen)
            .min()
            .unwrap_or(0);
        let last = attackers
            .iter()
            .map(|a| a.observation.last_seen)
            .max()
            .unwrap_or(0);
        let mut ips = attackers
            .iter()
            .map(|a| ReportIp::new(a, zone))
            .collect::<Vec<_>>();
        // `redact = ["DST"]`: our addresses appear nowhere, not only in the log lines.
        let hide_targets = cfg.redact.contains(&crate::config::Redact::Dst);
        if hide_targets {
            targets.clear();
            for ip in &mut ips {
                ip.targets.clear();
                ip.hosts = hide_addresses(std::mem::take(&mut ip.hosts));
            }
        }
        let excerpt: Vec<String> = window
            .map(|w| {
                w.lines
                    .iter()
                    .map(|l| redact(&l.text, &cfg.redact))
                    .collect()
            })
            .unwrap_or_default();
        let ip_width = ips.iter().map(|i| i.ip.len()).max().unwrap_or(0).max(7);
        // `  address  packets  ports`: what is left of the width is the ports column's.
        let ports_budget = BODY_WIDTH.saturating_sub(2 + ip_width + 2 + 8 + 2);
        for ip in &mut ips {
            ip.ports_text = if ip.ports.is_empty() {
                ip.protocols.join(", ")
            } else {
                list_within(&ip.ports, ports_budget, ip.ports.len() >= MAX_PORTS)
            };
        }
        // The most packets first, then by address; only those listed are copied.
        let mut order: Vec<usize> = (0..ips.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&attackers[a].observation, &attackers[b].observation);
            b.hits.cmp(&a.hits).then_with(|| a.ip.cmp(&b.ip))
        });
        let listed: Vec<ReportIp> = (order.iter().take(BODY_LISTED))
            .map(|&i| ips[i].clone())
            .collect();
        let not_listed = ips.len() - listed.len();
        let target_summary = match targets.len() {
            0 => "our servers".to_string(),
            1 => targets
                .iter()
                .next()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            n => format!("{n} of our addresses"),
        };
        let ports_list: Vec<u16> = ports.iter().copied().collect();
        let protocol_names = protocol_labels(protocols.iter());
        let email = cfg.from.email.to_string();
        let xarf_applies =
            cfg.xarf && attackers.len() == 1 && crate::xarf::tells(&attackers[0].observation);
        let mut report = Report {
            provider: provider.to_string(),
            provider_label: provider_label(provider),
            reply_address: cfg
                .reply_to
                .as_ref()
                .map_or_else(|| email.clone(), |m| m.email.to_string()),
            target_summary,
            // `  Traffic:  ICMP, TCP, destination ports …` on one line of the body.
            ports_text: list_within(
                &ports_list,
                BODY_WIDTH
                    .saturating_sub(12 + protocol_names.join(", ").len() + 20)
                    .max(12),
                // An address's full set stands for more ports than it holds, and so does
                // the report's.
                attackers
                    .iter()
                    .any(|a| a.observation.dst_ports.len() >= MAX_PORTS),
            ),
            listed,
            not_listed,
            ip_width,
            to: to.iter().map(|m| m.email.to_string()).collect(),
            cc: cfg.cc.iter().map(|m| m.email.to_string()).collect(),
            reporter: Reporter {
                name: cfg.from.name.clone().unwrap_or_else(|| email.clone()),
                domain: cfg.from.email.domain().to_string(),
                email,
            },
            generated_at: zone.rfc3339(now.timestamp()),
            timezone: zone.name(),
            ip_count: ips.len(),
            rereport_count: ips.iter().filter(|i| i.rereport).count(),
            total_hits: (attackers.iter()).fold(0, |n, a| n.saturating_add(a.observation.hits)),
            first_seen: zone.rfc3339(first),
            last_seen: zone.rfc3339(last),
            protocols: protocol_names,
            ports: ports.into_iter().collect(),
            targets: targets.into_iter().map(|t| t.to_string()).collect(),
            hosts: {
                let hosts = hosts.into_iter().map(|h| clean(h.as_bytes())).collect();
                if hide_targets {
                    hide_addresses(hosts)
                } else {
                    hosts
                }
            },
            ips,
            excerpt,
            excerpt_seconds: cfg.sample_seconds,
            excerpt_start: window.map(|w| zone.rfc3339(w.start)),
            excerpt_window_lines: window.map_or(0, |w| w.count),
            excerpt_window_at_least: false,
            abuse_kind: String::new(),
            spoofing_likely: false,
            part: 1,
            parts: 1,
            later: 0,
            xarf: xarf_applies,
            attachments: Vec::new(),
            version: VERSION.to_string(),
            desk: None,
        };
        // What these addresses are together; a part of several is told what all its
        // report's are ([`Report::of_whole`]).
        report.tell(&Spread::of(attackers.iter().map(|a| &a.observation)));
        report.name_attachments(cfg);
        report
    }

    /// This report as one part of several, made of `whole`'s addresses ([`Spread::of`]): what
    /// they are together is what every part says of its own.
    pub fn of_whole(mut self, whole: &Spread) -> Self {
        self.tell(whole);
        self
    }

    /// `abuse_kind` and `spoofing_likely` for addresses that are together `spread`.
    fn tell(&mut self, spread: &Spread) {
        self.spoofing_likely = false;
        self.abuse_kind = match spread {
            // Answers of one reflected service from many hosts: servers answering questions
            // forged in the operator's name, whose own addresses are real.
            Spread::Reflection(port, service) => {
                format!("UDP {port} answers ({service} reflection)")
            }
            Spread::Flood(kind) => {
                self.spoofing_likely = true;
                kind.clone()
            }
            Spread::None => summarise_kinds(self.ips.iter().map(|i| (i.kind.as_str(), i.hits))),
        };
    }

    /// Lets go of what only the templates read, once the message is made: each address's own
    /// lines, hosts and targets, the report's hosts and targets, and the copies of the
    /// addresses the body lists. A planned report is kept for the summary, `--json` and
    /// sending, which show none of them, and a flood's parts held them until the run ended
    /// (a log host's forged senders, up to 16 long names an address: megabytes a part).
    pub fn let_go_of_template_values(&mut self) {
        for ip in &mut self.ips {
            ip.evidence = Vec::new();
            ip.hosts = Vec::new();
            ip.targets = Vec::new();
        }
        self.hosts = Vec::new();
        self.targets = Vec::new();
        self.listed = Vec::new();
    }

    /// Names the files the message attaches, from what the report holds now: the one rule
    /// for what the body says is attached and for what [`message`] attaches. XARF carries its
    /// document alone; otherwise `ips.csv` if asked for, and the logs if asked for and not
    /// empty (no log line kept, as for an address seen while in no provider whose ranges
    /// hold it now, attaches no empty file). Asked again whenever the excerpt or the
    /// addresses' own lines change.
    pub fn name_attachments(&mut self, cfg: &ReportConfig) {
        let named = if self.xarf {
            vec![XARF_FILE]
        } else {
            let evidence = self.ips.iter().any(|i| !i.evidence.is_empty());
            [
                (cfg.attach_csv, CSV_FILE),
                (cfg.attach_excerpt && !self.excerpt.is_empty(), EXCERPT_FILE),
                (cfg.attach_excerpt && evidence, EVIDENCE_FILE),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
        };
        self.attachments = named.into_iter().map(str::to_string).collect();
    }

    /// Whether the message attaches the file `name` (see [`Report::name_attachments`]).
    fn attaches(&self, name: &str) -> bool {
        self.attachments.iter().any(|a| a == name)
    }

    /// Gives each address its own lines from `pool` (the evidence kept for these addresses),
    /// cleaned and redacted as the excerpt is, at most [`EVIDENCE_PER_ADDRESS`] each (and at
    /// most `cap`).
    pub fn with_evidence(mut self, pool: &[EvidenceLine], cfg: &ReportConfig, cap: usize) -> Self {
        let mut by_ip: std::collections::HashMap<IpAddr, Vec<&EvidenceLine>> =
            std::collections::HashMap::new();
        for line in pool {
            by_ip.entry(line.ip).or_default().push(line);
        }
        // Whether a host's kind was named anew from its lines.
        let mut renamed = false;
        for ip in &mut self.ips {
            let Some(lines) = ip.ip.parse().ok().and_then(|a: IpAddr| by_ip.get_mut(&a)) else {
                continue;
            };
            lines.sort_by_key(|l| l.time);
            lines.dedup_by(|a, b| a.time == b.time && a.text == b.text);
            if (lines.iter()).all(|l| crate::parse::is_answer_line(l.text.as_bytes())) {
                renamed |= ip.name_answers();
            }
            ip.evidence = lines
                .iter()
                .take(EVIDENCE_PER_ADDRESS.min(cap))
                .map(|l| redact(&clean(l.text.as_bytes()), &cfg.redact))
                .collect();
        }
        // The body's list is a copy of the busiest entries, made before their lines were
        // known: a template that shows each listed address's lines needs them there too.
        let own: std::collections::HashMap<&str, &ReportIp> = (self.ips.iter())
            .filter(|i| !i.evidence.is_empty())
            .map(|i| (i.ip.as_str(), i))
            .collect();
        for listed in &mut self.listed {
            if let Some(ip) = own.get(listed.ip.as_str()) {
                listed.evidence = ip.evidence.clone();
                listed.kind = ip.kind.clone();
            }
        }
        // Answers are no probes, and hosts that answered are no forged sources: they answer
        // packets forged with the operator's address.
        if renamed {
            let all = self.ips.iter().all(|i| i.answers);
            if all || (!self.spoofing_likely && reflected_by_all(&self.ips).is_none()) {
                self.spoofing_likely &= !all;
                self.abuse_kind =
                    summarise_kinds(self.ips.iter().map(|i| (i.kind.as_str(), i.hits)));
            }
        }
        self.name_attachments(cfg);
        self
    }

    /// evidence.log: every address's own lines under a heading, in the order of the list.
    pub fn evidence_log(&self) -> String {
        let with_lines = || self.ips.iter().filter(|i| !i.evidence.is_empty());
        // Sized once: a part's log is most of a megabyte, and growing it by doubling cost
        // more than writing it.
        let size = with_lines()
            .map(|i| 128 + i.evidence.iter().map(|l| l.len() + 1).sum::<usize>())
            .sum();
        let mut out = String::with_capacity(size);
        for ip in with_lines() {
            let name = named_as_in_lines(&ip.ip, &ip.evidence);
            let heading = if ip.hits == 1 {
                format!("# {name}: 1 packet at {}; its line\n", ip.first_seen)
            } else {
                format!(
                    "# {name}: {} packets from {} to {}; {} of its lines\n",
                    ip.hits,
                    ip.first_seen,
                    ip.last_seen,
                    ip.evidence.len()
                )
            };
            out.push_str(&heading);
            for line in &ip.evidence {
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// The report as a discovered desk gets it, saying why it does. A discovered desk's
    /// digest is plain, of one address or many: a desk that never asked for reports gets no
    /// XARF (and no message per address).
    pub fn for_desk(mut self, desk: Option<Desk>) -> Self {
        if desk.is_some() {
            self.xarf = false;
        }
        self.desk = desk;
        self
    }

    /// Marks the report as part `part` of `parts`.
    pub fn part(mut self, part: usize, parts: usize) -> Self {
        self.part = part;
        self.parts = parts;
        self
    }

    /// Says that `later` more of the destination's addresses follow in later reports.
    pub fn later(mut self, later: usize) -> Self {
        self.later = later;
        self
    }

    /// The IP list as CSV: one row per IP, with what an abuse desk asks for.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "ip,first_seen,last_seen,hits,protocols,dst_ports,dst_ips,src_ports,asn,as_org,range,region,service\n",
        );
        // A thousand rows a part: each row is written into the one string, each cell that is
        // made of several values through the one buffer.
        let mut cell = String::new();
        let mut made = |out: &mut String, fill: &dyn Fn(&mut String)| {
            cell.clear();
            fill(&mut cell);
            out.push(',');
            push_csv_field(out, &cell);
        };
        let text = |out: &mut String, text: &str| {
            out.push(',');
            push_csv_field(out, text);
        };
        for i in &self.ips {
            push_csv_field(&mut out, &i.ip);
            text(&mut out, &i.first_seen);
            text(&mut out, &i.last_seen);
            made(&mut out, &|c| {
                let _ = write!(c, "{}", i.hits);
            });
            made(&mut out, &|c| push_joined(c, &i.protocols));
            made(&mut out, &|c| push_numbers(c, &i.ports));
            made(&mut out, &|c| push_joined(c, &i.targets));
            made(&mut out, &|c| push_numbers(c, &i.source_ports));
            made(&mut out, &|c| {
                if let Some(a) = i.asn {
                    let _ = write!(c, "{a}");
                }
            });
            for value in [&i.as_org, &i.range, &i.region] {
                text(&mut out, value.as_deref().unwrap_or_default());
            }
            made(&mut out, &|c| push_joined(c, &i.services));
            out.push('\n');
        }
        out
    }
}

/// `values` joined by spaces, onto `out`.
fn push_numbers(out: &mut String, values: &[u16]) {
    for (k, v) in values.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{v}");
    }
}

/// `items` joined by spaces, onto `out`.
fn push_joined(out: &mut String, items: &[String]) {
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(item);
    }
}

/// Host names with those that are addresses (a log host names a sender without a name by its
/// address, which is the operator's) or that spell one (`ip-198-51-100-10`, see
/// [`crate::excerpt::spells_an_address`]) as `redacted`, once.
fn hide_addresses(hosts: Vec<String>) -> Vec<String> {
    let hosts: std::collections::BTreeSet<String> = hosts
        .into_iter()
        .map(|h| {
            if is_address(&h) || crate::excerpt::spells_an_address(&h) {
                "redacted".to_string()
            } else {
                h
            }
        })
        .collect();
    hosts.into_iter().collect()
}

/// A few words an abuse desk can triage by, from the protocols, ports and rate: `TCP 22
/// probes`, `UDP 53 flood`, `TCP probes of 12 ports`, `port scan (120 ports, TCP)`. Short
/// whatever the ports: it goes into a subject and a body line.
fn abuse_kind(protocols: &[String], ports: &[u16], hits: u64, span_seconds: i64) -> String {
    let proto = protocol_words(protocols);
    if ports.len() >= MAX_PORTS {
        // A source's record keeps its lowest ports only: a full set may stand for thousands.
        return format!("port scan ({} or more ports, {proto})", ports.len());
    }
    if ports.len() > 20 {
        return format!("port scan ({} ports, {proto})", ports.len());
    }
    let flood = is_flood(hits, span_seconds);
    match (ports.len(), flood) {
        (0, true) => format!("{proto} flood"),
        (0, false) => format!("{proto} probes"),
        (1..=3, _) => format!(
            "{proto} {} {}",
            slashed(ports),
            if flood { "flood" } else { "probes" }
        ),
        (n, true) => format!("{proto} flood on {n} ports"),
        (n, false) => format!("{proto} probes of {n} ports"),
    }
}

/// The protocols of a kind (`TCP/UDP`), `IP` for none.
fn protocol_words(protocols: &[String]) -> String {
    match protocols.is_empty() {
        true => "IP".to_string(),
        false => protocols.join("/"),
    }
}

/// A few ports as a kind names them: `22/80/443`.
fn slashed(ports: &[u16]) -> String {
    (ports.iter())
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

/// What a host whose every line kept is an answer sent, in a few words: `TCP answers from
/// port 443`, `TCP answers from 12 ports`, `ICMP answers`.
fn answers_kind(protocols: &[String], source_ports: &[u16]) -> String {
    let proto = protocol_words(protocols);
    let ports: Vec<u16> = source_ports.iter().copied().filter(|p| *p > 0).collect();
    match ports.len() {
        0 => format!("{proto} answers"),
        1 => format!("{proto} answers from port {}", ports[0]),
        2 | 3 => format!("{proto} answers from ports {}", slashed(&ports)),
        // A record keeps an address's lowest source ports only.
        n if n >= crate::ingest::MAX_SMALL_SET => {
            format!("{proto} answers from {n} or more ports")
        }
        n => format!("{proto} answers from {n} ports"),
    }
}

/// An address as the list names it, and, for an IPv6 address its lines spell in full as
/// the kernel writes it (`2600:1f30:a400:0000:0000:0000:0000:c7de`), that spelling too: a
/// desk that looks for the listed address in the lines finds it.
fn named_as_in_lines(ip: &str, lines: &[String]) -> String {
    let Ok(std::net::IpAddr::V6(v6)) = ip.parse::<std::net::IpAddr>() else {
        return ip.to_string();
    };
    let full = (v6.segments().iter())
        .map(|s| format!("{s:04x}"))
        .collect::<Vec<_>>()
        .join(":");
    let spelt = format!("SRC={full} ");
    match full != ip && lines.iter().any(|l| l.contains(&spelt)) {
        true => format!("{ip} (written {full} in its lines)"),
        false => ip.to_string(),
    }
}

/// UDP services whose answers, many times the size of a forged question, reflection attacks
/// send to the address the questions claimed to come from.
const REFLECTED: [(u16, &str); 12] = [
    (17, "QOTD"),
    (19, "chargen"),
    (53, "DNS"),
    (111, "portmap"),
    (123, "NTP"),
    (137, "NetBIOS"),
    (161, "SNMP"),
    (389, "CLDAP"),
    (1900, "SSDP"),
    (3702, "WS-Discovery"),
    (5353, "mDNS"),
    (11211, "memcached"),
];

/// The service whose answers these are (its port and name): UDP alone, from one such
/// service's port, to the operator's ephemeral ports (1024 and up, other than the service's
/// own), where the forged questions named the asker's port. What the desk acts on is an open
/// service answering anyone, not a host probing. A host that sends from port 53 to well-known
/// ports is a scan past firewalls that trust that port (`nmap -g 53`), not answers. `None`
/// for anything else.
pub(crate) fn reflected(
    protocols: &[String],
    source_ports: &[u16],
    ports: &[u16],
) -> Option<(u16, &'static str)> {
    let ([proto], [port]) = (protocols, source_ports) else {
        return None;
    };
    let (_, service) = REFLECTED.iter().find(|(p, _)| p == port)?;
    let to_askers = !ports.is_empty() && ports.iter().all(|p| *p >= 1024 && p != port);
    (proto == "UDP" && to_askers).then_some((*port, *service))
}

/// What the addresses of a report are together: a flood spread over many quiet sources
/// ([`spread_flood`]), the answers of one reflected service from every one of them (a
/// reflection attack, real servers), or neither (each host is told by its own kind). A report
/// split into parts is told by all its addresses at once: a part alone (the twenty addresses
/// left after 280) can be too few to tell, and it said `probes` without the caveat beside a
/// part that said `flood`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spread {
    None,
    Flood(String),
    Reflection(u16, &'static str),
}

impl Spread {
    /// What `observations`, all the addresses of a report, are together.
    pub fn of<'a>(observations: impl Iterator<Item = &'a Observation> + Clone) -> Self {
        let mut protocols = std::collections::BTreeSet::new();
        let mut ports = std::collections::BTreeSet::new();
        let (mut hits, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        let (mut sources, mut quiet, mut retried) = (0, 0, 0);
        for o in observations.clone() {
            // A source port sent from again: a real TCP stack retrying its SYN.
            retried += usize::from(usize::try_from(o.hits).is_ok_and(|h| o.src_ports.len() < h));
            protocols.extend(o.protocols.iter());
            ports.extend(o.dst_ports.iter().copied());
            hits = hits.saturating_add(o.hits);
            first = first.min(o.first_seen);
            last = last.max(o.last_seen);
            sources += 1;
            quiet += usize::from(o.hits <= QUIET_PACKETS);
        }
        let protocols = protocol_labels(protocols.into_iter());
        let ports: Vec<u16> = ports.into_iter().collect();
        let span = last.saturating_sub(first);
        let shape = (sources, quiet, retried);
        let Some(kind) = spread_flood(shape, &protocols, &ports, hits, span) else {
            return Spread::None;
        };
        // A flood of one protocol, UDP or ICMP: answers if every source's packets are a
        // reflected service's, each asked as `reflected` asks a host.
        let answered = |o: &Observation| {
            let (Some(port), 1) = (o.src_ports.iter().next(), o.src_ports.len()) else {
                return None;
            };
            let ports: Vec<u16> = o.dst_ports.iter().copied().collect();
            reflected(&protocols, &[*port], &ports)
        };
        let mut all = observations.clone().map(answered);
        let service = all.next().flatten();
        match service.filter(|s| all.all(|a| a == Some(*s))) {
            Some((port, service)) => Spread::Reflection(port, service),
            None => Spread::Flood(kind),
        }
    }
}

/// The service all of `ips` answered from: each one's packets are [`reflected`] answers of
/// that one service. Many hosts doing that at once are a reflection attack, not forged
/// sources. Answers to a well-known port are not answers ([`reflected`]), however many send
/// them: a flood with forged sources may claim port 53 as well.
fn reflected_by_all(ips: &[ReportIp]) -> Option<(u16, &'static str)> {
    let first = ips.first()?;
    let service = reflected(&first.protocols, &first.source_ports, &first.ports)?;
    ips.iter()
        .all(|i| reflected(&i.protocols, &i.source_ports, &i.ports) == Some(service))
        .then_some(service)
}

/// `UDP 53 answers (DNS reflection)` for the answers of a [`reflected`] service.
fn reflection(protocols: &[String], source_ports: &[u16], ports: &[u16]) -> Option<String> {
    reflected(protocols, source_ports, ports)
        .map(|(port, service)| format!("UDP {port} answers ({service} reflection)"))
}

/// Packets a second a flood keeps up on average, from one host or from many together.
const FLOOD_RATE: f64 = 10.0;

/// Packets one host sends before its rate can make it a flood.
const FLOOD_PACKETS: u64 = 100;

/// Whether `hits` packets over `span_seconds` are a flood: [`FLOOD_PACKETS`] or more at
/// [`FLOOD_RATE`] a second or more, not probing. What is called a flood goes to XARF as
/// `ddos`: ten SYNs in nine seconds (the bar was ten packets at one a second) are not what
/// a desk takes a denial of service to be.
pub(crate) fn is_flood(hits: u64, span_seconds: i64) -> bool {
    hits >= FLOOD_PACKETS && per_second(hits, span_seconds) >= FLOOD_RATE
}

/// Packets a source of a flood spread over many sends at most, most of them: each too quiet
/// to be a flood of its own.
const QUIET_PACKETS: u64 = 10;

/// Sources a flood needs before its shape says more than each host's does.
const SPREAD_SOURCES: usize = 50;

/// Packets a second over `span_seconds` (the seconds from the first packet to the last, that
/// second counted): neither a span from a damaged record nor a negative one overflows or
/// divides by zero.
pub(crate) fn per_second(hits: u64, span_seconds: i64) -> f64 {
    hits as f64 / span_seconds.max(0).saturating_add(1) as f64
}

/// A flood spread over many sources, each too quiet to be a flood on its own: at least
/// [`SPREAD_SOURCES`] addresses, nine in ten of them with 10 packets or fewer, UDP or ICMP
/// alone (a source can be forged there; TCP sources that probe a port are a distributed
/// scan, real hosts), at most three destination ports, and together a flood ([`is_flood`]:
/// what one host's packets would be). Spoofed source addresses look like this, so the report
/// says they may be forged. `sources` and how many of them are `quiet` (10 packets or fewer);
/// `None` otherwise.
fn spread_flood(
    (sources, quiet, retried): (usize, usize, usize),
    protocols: &[String],
    ports: &[u16],
    hits: u64,
    span_seconds: i64,
) -> Option<String> {
    // TCP too: a SYN flood is the flood most often sent from forged addresses. Not when
    // one source in ten or more sent again from a port it had sent from (`retried`): real
    // hosts' stacks retrying their SYNs, a burst of connections by real hosts; a forged
    // flood's packets each name a port of their own.
    let forgeable = match protocols {
        [p] if p == "TCP" => retried * 10 < sources,
        [p] => ["UDP", "UDPLITE", "ICMP", "ICMPv6"].contains(&p.as_str()),
        _ => false,
    };
    let shaped = sources >= SPREAD_SOURCES
        && quiet * 10 >= sources * 9
        && forgeable
        && ports.len() <= 3
        && is_flood(hits, span_seconds);
    shaped.then(|| {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        if ports.is_empty() {
            format!("{} flood", protocols[0])
        } else {
            format!("{} {} flood", protocols[0], ports.join("/"))
        }
    })
}

/// The kinds of the hosts of a report in a few words, from each host's kind and packets: the
/// one kind they share, or the most common ones and how many more (`TCP 22 probes, TCP 80
/// probes and 3 other kinds`), kinds shared by as many hosts first by their packets (five
/// pings came before a scan of a hundred packets, by name). Past three kinds, kinds that
/// differ only in how many ports they count are one kind (`TCP probes` for `TCP probes of 7
/// ports` and `of 8 ports`), so that the words name different things.
fn summarise_kinds<'a>(kinds: impl Iterator<Item = (&'a str, u64)>) -> String {
    let mut exact: std::collections::BTreeMap<&str, (usize, u64)> =
        std::collections::BTreeMap::new();
    for (k, hits) in kinds {
        let (hosts, packets) = exact.entry(k).or_default();
        *hosts += 1;
        *packets = packets.saturating_add(hits);
    }
    let mut counts: std::collections::BTreeMap<String, (usize, u64)> =
        std::collections::BTreeMap::new();
    for (k, (hosts, packets)) in exact.iter() {
        let k = match exact.len() {
            0..=3 => k.to_string(),
            _ => kind_family(k),
        };
        let (h, p) = counts.entry(k).or_default();
        *h += hosts;
        *p = p.saturating_add(*packets);
    }
    let mut ranked: Vec<(&str, (usize, u64))> =
        counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    ranked.sort_by(|a, b| (b.1).cmp(&a.1).then(a.0.cmp(b.0)));
    match ranked.as_slice() {
        [] => "traffic".to_string(),
        [(one, _)] => one.to_string(),
        [(a, _), (b, _)] => format!("{a} and {b}"),
        [(a, _), (b, _), (c, _)] => format!("{a}, {b} and {c}"),
        [(a, _), (b, _), rest @ ..] => format!("{a}, {b} and {} other kinds", rest.len()),
    }
}

/// A kind without its count of ports: `TCP probes of 7 ports` is `TCP probes`, `UDP flood
/// on 5 ports` is `UDP flood`, `port scan (120 ports, TCP)` is `TCP port scans`.
fn kind_family(kind: &str) -> String {
    let kind = kind.strip_suffix(" (flood)").unwrap_or(kind);
    if let Some((head, _)) = kind
        .split_once(" answers from ")
        .filter(|(_, n)| n.ends_with(" ports"))
    {
        return format!("{head} answers");
    }
    if let Some((head, _)) = kind
        .split_once(" of ")
        .filter(|(_, n)| n.ends_with(" ports"))
    {
        return head.to_string();
    }
    if let Some((head, _)) = kind
        .split_once(" on ")
        .filter(|(_, n)| n.ends_with(" ports"))
    {
        return head.to_string();
    }
    if let Some(inner) = kind
        .strip_prefix("port scan (")
        .and_then(|k| k.strip_suffix(')'))
        && let Some((_, proto)) = inner.rsplit_once(", ")
    {
        return format!("{proto} port scans");
    }
    kind.to_string()
}

/// Numbers as `22, 80, 443`, cut to fit `width` columns with ` and N more` when needed.
/// `partial`: `values` are the smallest of more than they hold (a source's record keeps
/// [`crate::ingest::MAX_PORTS`]), so what the text leaves out is `at least N more`, and a
/// list shown whole ends `and more`.
fn list_within(values: &[u16], width: usize, partial: bool) -> String {
    let rest = |n: usize| match (partial, n) {
        (true, 0) => " and more".to_string(),
        (true, n) => format!(" and at least {n} more"),
        (false, 0) => String::new(),
        (false, n) => format!(" and {n} more"),
    };
    let mut shown = String::new();
    for (i, v) in values.iter().enumerate() {
        let mut next = shown.clone();
        if !next.is_empty() {
            next.push_str(", ");
        }
        next.push_str(&v.to_string());
        // The rest after this value, were the list cut there: none at the last.
        if next.len() + rest(values.len() - i - 1).len() > width && !shown.is_empty() {
            return shown + &rest(values.len() - i);
        }
        shown = next;
    }
    shown + &rest(0)
}

/// How people name a provider: the well-known ones by their brand, others as configured.
fn provider_label(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "aws" | "amazon" | "ec2" => "AWS".to_string(),
        "gcp" | "google" => "Google Cloud".to_string(),
        "azure" | "microsoft" => "Azure".to_string(),
        "oracle" | "oci" => "Oracle Cloud".to_string(),
        "digitalocean" | "do" => "DigitalOcean".to_string(),
        "linode" | "akamai" => "Linode".to_string(),
        "ovh" => "OVH".to_string(),
        "hetzner" => "Hetzner".to_string(),
        _ => name.to_string(),
    }
}

/// Protocol names as a report shows them: a name of letters and digits as logged, anything
/// else (text smuggled into a `PROTO=` field) as `other`; sorted, without repeats. The kernel
/// names the protocols it reads further (TCP, UDP, ICMP, ESP…) and logs any other by its
/// number: those are named by their usual names (`GRE` for 47), or `proto-253`, never a bare
/// number, which a body's list of ports or a subject (`47 probes`) would take for a port or
/// a count; one word, as `ips.csv` lists a host's protocols between spaces.
fn protocol_labels<'a>(names: impl Iterator<Item = &'a crate::ingest::Name>) -> Vec<String> {
    let labels: std::collections::BTreeSet<String> = names
        .map(|p| {
            let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if digits {
                match p.parse::<u8>() {
                    Ok(n) => protocol_named(n).map_or_else(|| format!("proto-{n}"), Into::into),
                    Err(_) => "other".to_string(),
                }
            } else if !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                p.to_string()
            } else {
                "other".to_string()
            }
        })
        .collect();
    labels.into_iter().collect()
}

/// The usual name of an IP protocol the kernel logs by number (IANA's keyword, or the name
/// Linux gives it), for those a firewall meets.
fn protocol_named(number: u8) -> Option<&'static str> {
    Some(match number {
        0 => "HOPOPT",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPIP",
        6 => "TCP",
        17 => "UDP",
        33 => "DCCP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        89 => "OSPF",
        97 => "ETHERIP",
        103 => "PIM",
        112 => "VRRP",
        115 => "L2TP",
        132 => "SCTP",
        136 => "UDPLITE",
        137 => "MPLS",
        _ => return None,
    })
}

/// One CSV cell, onto `out`. A cell that a spreadsheet would take for a formula (`=`, `+`,
/// `-`, `@`, or a tab or carriage return first) is prefixed with `'`, so opening the file runs
/// nothing.
fn push_csv_field(out: &mut String, text: &str) {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quoted {
        for (k, piece) in text.split('"').enumerate() {
            if k > 0 {
                out.push_str("\"\"");
            }
            out.push_str(piece);
        }
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The report templates, defaults overridden from a folder.
pub struct Templates {
    tera: tera::Tera,
    /// The texts read from the folder, by template name (`NAME`, or `PROVIDER/NAME` for a
    /// provider's own): what tells reports made under other texts apart.
    overrides: Vec<(String, String)>,
    /// Whether a template may read `ips`: the defaults do not (the body lists `listed`, and
    /// `ips.csv` holds them all).
    reads_ips: bool,
    /// What to say of what the folder holds that no report reads (see [`unused_in`]), if it
    /// holds any.
    pub unused: Option<String>,
}

impl Templates {
    /// Loads the defaults and any override in `dir` (`dir/NAME` for every provider,
    /// `dir/PROVIDER/NAME` for one).
    pub fn load(dir: Option<&Path>, providers: &[&str]) -> Result<Self> {
        // A folder that is not there would leave every report on the defaults without a
        // word: the operator's texts, thought in use, never sent.
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            let why = match std::fs::metadata(dir) {
                Ok(_) => "not a folder".to_string(),
                Err(e) => e.to_string(),
            };
            anyhow::bail!("report.templates_dir {}: {why}", dir.display());
        }
        let mut tera = tera::Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_filter("pad", pad);
        tera.register_filter("wrap", wrap);
        let mut overrides = Vec::new();
        for name in TEMPLATE_NAMES {
            let default = match name {
                "subject.txt" => DEFAULT_SUBJECT,
                _ => DEFAULT_BODY,
            };
            let shared = read_override(dir, None, name)?;
            add(&mut tera, name, shared.as_deref().unwrap_or(default), dir)?;
            if let Some(text) = &shared {
                overrides.push((name.to_string(), text.clone()));
            }
            // A provider's own, where it has one; the others render the shared one under its
            // own name, which is the name an error gives.
            for provider in providers {
                if let Some(text) = read_override(dir, Some(provider), name)? {
                    add(&mut tera, &format!("{provider}/{name}"), &text, dir)?;
                    overrides.push((format!("{provider}/{name}"), text));
                }
            }
        }
        let reads_ips = may_read_ips(&tera, &overrides);
        let unused = dir.and_then(|dir| unused_warning(dir, &unused_in(dir, providers), providers));
        Ok(Templates {
            tera,
            overrides,
            reads_ips,
            unused,
        })
    }

    /// A digest of the texts a report to `provider` (`None`: a discovered desk) is made
    /// with, as far as the folder overrides the defaults.
    pub fn digest_of(&self, provider: Option<&str>) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (name, text) in &self.overrides {
            let own = name.split_once('/').map(|(p, _)| p);
            if own.is_none() || own == provider {
                h.update(format!("{name}\0{}\0{text}\0", text.len()));
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The subject (one line, control characters removed) and body for a report.
    ///
    /// Templates that do not read `ips` are given a context without it: a part's thousand
    /// addresses, each with its own lines, made into template values only to be dropped,
    /// cost more than the rest of the part. Should one read it after all, in a way not seen
    /// when it was loaded, it is rendered again with everything. `report` is as it was.
    pub fn render(&self, report: &mut Report) -> Result<(String, String)> {
        if !self.reads_ips {
            let ips = std::mem::take(&mut report.ips);
            let context = tera::Context::from_serialize(&*report);
            report.ips = ips;
            let mut context = context.context("template context")?;
            // Absent, not empty: a read of it fails rather than finds no address.
            context.remove("ips");
            if let Ok(rendered) = self.render_with(report, &context) {
                return Ok(rendered);
            }
        }
        let context = tera::Context::from_serialize(&*report).context("template context")?;
        self.render_with(report, &context)
    }

    /// The template a report to `provider` renders as `name`: the provider's own, where it
    /// has one (`PROVIDER/NAME`), else the shared one; the name an error gives.
    fn key_of(&self, provider: &str, name: &str) -> String {
        let own = format!("{provider}/{name}");
        match self.tera.contains_template(&own) {
            true => own,
            false => name.to_string(),
        }
    }

    /// [`Templates::render`] with the context made.
    fn render_with(&self, report: &Report, context: &tera::Context) -> Result<(String, String)> {
        let render = |name: &str| -> Result<String> {
            let key = self.key_of(&report.provider, name);
            // A render past its patience ends the run (see `crate::watchdog`).
            let _watch = crate::watchdog::watch(RENDER_PATIENCE, || {
                format!(
                    "template {key}: still rendering after {} s of work (a loop over a large range, or one inside another?): stopped; the reports made with it wait until it is fixed",
                    RENDER_PATIENCE.as_secs()
                )
            });
            let mut out = Capped::default();
            match self.tera.render_to(&key, context, &mut out) {
                Ok(()) => Ok(String::from_utf8(out.text)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
                Err(_) if out.refused => Err(ConfigError(format!(
                    "template {key}: rendered more than {} MiB (a loop over a large range, or one inside another?): stopped; the reports made with it wait until it is fixed",
                    RENDERED_AT_MOST >> 20
                ))
                .into()),
                // A template that cannot render (a variable that is not there, a filter
                // misused) is the operator's to fix, as `check` says: waiting fixes nothing.
                // Named as the file that failed: the provider's own, where it has one.
                Err(e) => {
                    Err(ConfigError(format!("template {key}: {}", tera_message(&e))).into())
                }
            }
        };
        let subject = render("subject.txt")?;
        let subject = clean(subject.as_bytes())
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let body = body_text(render("body.txt")?);
        // A report that says nothing of what it is (a template left empty, or one whose
        // text for this report is all in a branch not taken) is the operator's to fix: it
        // went out with `Subject: ` and nothing after it, or an empty text part.
        for (name, text) in [("subject.txt", &subject), ("body.txt", &body)] {
            if text.trim().is_empty() {
                let key = self.key_of(&report.provider, name);
                return Err(ConfigError(format!(
                    "template {key}: rendered nothing for the report to {}: a report must say what it is; the reports made with it wait until it is fixed",
                    report.provider
                ))
                .into());
            }
        }
        Ok((subject, body))
    }
}

/// A rendered body as a mail body carries it: line ends of any kind (a template saved with
/// CRLF or lone CRs) as newlines, and no other control character but tabs (a NUL or a lone
/// CR in a text part is no text, and a reader shows one run-together line).
fn body_text(text: String) -> String {
    if !(text.chars()).any(|c| c.is_control() && c != '\n' && c != '\t') {
        return text;
    }
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    (text.chars())
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// How much text one template may render for a report: twice the largest message
/// (`report.max_message_bytes`, 64 MiB at most). A loop inside another that writes a line each
/// time reached gigabytes of memory, and an abort, well within [`RENDER_PATIENCE`].
const RENDERED_AT_MOST: usize = 128 << 20;

/// What a template renders, refused past [`RENDERED_AT_MOST`] (`refused` once it was). Text
/// Tera keeps for itself before it writes it (a `filter` section, a `set` block) is not
/// counted until it is written: only the time that takes is bounded.
#[derive(Default)]
struct Capped {
    text: Vec<u8>,
    refused: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > RENDERED_AT_MOST {
            self.refused = true;
            return Err(std::io::Error::other("rendered too much"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long one template may work at rendering a report (its thread's own time). A part of a
/// thousand addresses renders in milliseconds: ten seconds is no template's that sends mail,
/// and a run stuck on one holds the lock of every run after it.
const RENDER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The warning for what the templates folder `dir` holds that no report reads (`unused`), if
/// anything.
fn unused_warning(dir: &Path, unused: &[String], providers: &[&str]) -> Option<String> {
    if unused.is_empty() {
        return None;
    }
    let folders = match providers {
        [] => String::new(),
        names => format!(
            ", or in a folder named as a provider: {}",
            names
                .iter()
                .map(|n| format!("{n}/"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some(format!(
        "report.templates_dir {}: {}: no report reads them (a template misspelt so leaves its reports on the default text); a template is {} in that folder{folders}",
        dir.display(),
        unused.join(", "),
        TEMPLATE_NAMES.join(" or ")
    ))
}

/// What the templates folder `dir` holds that no report reads: files other than the
/// templates' names, and folders not named as a provider, at its top; files other than the
/// templates' names in a provider's folder. A name misspelt (`subjet.txt`, `Subject.txt`,
/// `body.tera`, a folder `AWS/` for the provider `aws`) left the reports on the default texts
/// while the operator's were thought in use. Hidden files, notes (`README`, `*.md`) and the
/// copies editors and package managers leave (`body.txt~`, `#body.txt#`, `.bak`, `.orig`,
/// `.rej`, `.swp`, `.dpkg-old`, `.dpkg-dist`, `.ucf-old`, `.rpmnew`, `.rpmsave`) are passed
/// over.
fn unused_in(dir: &Path, providers: &[&str]) -> Vec<String> {
    fn passed_over(name: &str) -> bool {
        const COPIES: [&str; 12] = [
            ".bak",
            ".orig",
            ".rej",
            ".swp",
            ".dpkg-old",
            ".dpkg-dist",
            ".dpkg-new",
            ".ucf-old",
            ".ucf-dist",
            ".rpmnew",
            ".rpmsave",
            ".md",
        ];
        name.starts_with('.')
            || name.starts_with('#')
            || name.ends_with('~')
            || name.starts_with("README")
            || COPIES.iter().any(|c| name.ends_with(c))
    }
    let listed = |folder: &Path| -> Vec<(String, bool)> {
        let mut entries: Vec<(String, bool)> = (std::fs::read_dir(folder).into_iter().flatten())
            .flatten()
            .map(|e| {
                let folder = e.path().is_dir();
                (e.file_name().to_string_lossy().into_owned(), folder)
            })
            .filter(|(name, _)| !passed_over(name))
            .collect();
        entries.sort();
        entries
    };
    let mut unused = Vec::new();
    for (name, folder) in listed(dir) {
        if folder && providers.contains(&name.as_str()) {
            for (inner, inner_folder) in listed(&dir.join(&name)) {
                if inner_folder || !TEMPLATE_NAMES.contains(&inner.as_str()) {
                    let slash = if inner_folder { "/" } else { "" };
                    unused.push(format!("{name}/{inner}{slash}"));
                }
            }
        } else if folder {
            unused.push(format!("{name}/"));
        } else if !TEMPLATE_NAMES.contains(&name.as_str()) {
            unused.push(name);
        }
    }
    unused
}

fn read_override(dir: Option<&Path>, provider: Option<&str>, name: &str) -> Result<Option<String>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let path = match provider {
        Some(p) => dir.join(p).join(name),
        None => dir.join(name),
    };
    let text = crate::source::read_regular(&path, 16 << 20).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    });
    match text {
        Ok(text) => Ok(Some(text)),
        // A link to nothing is the operator's template, not there: its reports went on the
        // default text, unsaid.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(&path).is_ok() =>
        {
            Err(anyhow::anyhow!(
                "template {}: a link to nothing ({e})",
                path.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("template {}: {e}", path.display())),
    }
}

/// Whether any template loaded may read `ips`: an operator's text that names it as a word
/// (judged by its words, not by tera's list of the variables it reads: that list leaves out a
/// name once a `set` of it was seen, taken or not, and a read that takes a missing variable
/// for an answer, `is defined` or `default`, renders without it and without failing: a
/// report that lists no address), or that could reach the context in a way no word shows
/// (the `__tera_` variables, which dump it whole; a component). The defaults do not read it
/// (a test holds them to that); in doubt, yes.
fn may_read_ips(tera: &tera::Tera, overrides: &[(String, String)]) -> bool {
    overrides
        .iter()
        .any(|(_, text)| text.contains("__tera_") || names_word(text, "ips"))
        || tera.get_component_names().next().is_some()
}

/// Whether `text` holds `word` with no letter, digit or `_` either side: anywhere, in a
/// tag, a string or plain text alike.
fn names_word(text: &str, word: &str) -> bool {
    let part_of_name = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i));
        !part_of_name(before) && !part_of_name(bytes.get(at + word.len()))
    })
}

fn add(tera: &mut tera::Tera, name: &str, text: &str, dir: Option<&Path>) -> Result<()> {
    tera.add_raw_template(name, text).map_err(|e| {
        let place = dir.map(|d| format!("{}/", d.display())).unwrap_or_default();
        anyhow::anyhow!("template {place}{name}: {}", tera_message(&e))
    })
}

/// Tera's error with its causes, on one line.
fn tera_message(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `{{ value | pad(width=15) }}`: left-aligned in a column of at least `width` characters
/// (`right=true` aligns right), for plain-text tables.
fn pad(value: tera::Value, kwargs: tera::Kwargs, _: &tera::State) -> tera::TeraResult<String> {
    let width = columns(&kwargs, "pad", "width", 0)?;
    let right = kwargs.get::<bool>("right")?.unwrap_or(false);
    let text = match value.as_str() {
        Some(s) => s.to_string(),
        None if value.is_none() => String::new(),
        None => value.to_string(),
    };
    Ok(if right {
        format!("{text:>width$}")
    } else {
        format!("{text:<width$}")
    })
}

/// `{{ text | wrap(width=78, indent=12, start=12) }}`: prose broken at spaces into lines of at most
/// `width` columns (default [`BODY_WIDTH`]), lines after the first indented by `indent`. A word
/// longer than a line stays whole.
fn wrap(value: tera::Value, kwargs: tera::Kwargs, _: &tera::State) -> tera::TeraResult<String> {
    let width = columns(&kwargs, "wrap", "width", BODY_WIDTH)?;
    let indent = columns(&kwargs, "wrap", "indent", 0)?;
    // `start`: the column the text begins at on its first line (after a label), default the
    // indent.
    let start = columns(&kwargs, "wrap", "start", indent)?;
    let text = match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    };
    Ok(wrap_text(&text, width, indent, start))
}

/// The longest line a mail may carry (RFC 5322), in characters: no column of a table or a
/// text can be wider.
const MAX_COLUMNS: usize = 998;

/// A filter's column count `key`, `default` when not given: one wider than a mail line is
/// refused naming the filter, rather than a template taking all memory to fill it.
fn columns(
    kwargs: &tera::Kwargs,
    filter: &str,
    key: &str,
    default: usize,
) -> tera::TeraResult<usize> {
    let n = kwargs.get::<usize>(key)?.unwrap_or(default);
    if n > MAX_COLUMNS {
        return Err(tera::Error::message(format!(
            "{filter}: {key}={n} is wider than a mail line may be ({MAX_COLUMNS} characters)"
        )));
    }
    Ok(n)
}

fn wrap_text(text: &str, width: usize, indent: usize, start: usize) -> String {
    let mut out = String::new();
    let mut line_len = start;
    let mut first = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if first {
            out.push_str(word);
            line_len += len;
            first = false;
        } else if line_len + 1 + len <= width {
            out.push(' ');
            out.push_str(word);
            line_len += 1 + len;
        } else {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            out.push_str(word);
            line_len = indent + len;
        }
    }
    out
}

/// Header fields of one message.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub to: &'a [Mailbox],
    pub cc: &'a [Mailbox],
    pub reply_to: Option<&'a Mailbox>,
    pub message_id: &'a str,
    /// The first report to this provider, for `In-Reply-To`/`References`.
    pub thread_root: Option<&'a str>,
    pub date: DateTime<Utc>,
}

/// The complete message: headers, the text body, and the attachments the report names (see
/// [`Report::name_attachments`]), none a plain text; with `xarf`, the XARF document in its
/// e-mail transport's layout instead.
pub fn message(
    head: &Envelope<'_>,
    subject: &str,
    body: &str,
    report: &Report,
    xarf: Option<&serde_json::Value>,
) -> Result<Vec<u8>> {
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(head.date.timestamp().max(0) as u64);
    let mut builder = lettre::Message::builder()
        .from(head.from.clone())
        .subject(subject)
        .date(date)
        .message_id(Some(head.message_id.to_string()))
        .user_agent(format!("abuse-mailer/{VERSION}"))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    for to in head.to {
        builder = builder.to(to.clone());
    }
    for cc in head.cc {
        builder = builder.cc(cc.clone());
    }
    if let Some(reply_to) = head.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(root) = head.thread_root {
        builder = builder
            .in_reply_to(root.to_string())
            .references(root.to_string());
    }
    // Each in its place, folded where lettre would leave a line too long for a mail server.
    let refolded = [
        crate::header::subject(subject),
        crate::header::mailboxes::<header::From>(std::slice::from_ref(head.from)),
        crate::header::mailboxes::<header::To>(head.to),
        crate::header::mailboxes::<header::Cc>(head.cc),
        (head.reply_to)
            .and_then(|r| crate::header::mailboxes::<header::ReplyTo>(std::slice::from_ref(r))),
    ];
    for value in refolded.into_iter().flatten() {
        builder = builder.raw_header(value);
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(readable(body));
    // A boundary from the message's own id: unique, and the same bytes on every render.
    let boundary = format!("=_abuse-mailer_{:016x}", fnv1a(head.message_id.as_bytes()));
    let message = if let Some(document) = xarf {
        // XARF's e-mail transport: the human text, a feedback report naming the format, and
        // the JSON document (RFC 6522 / RFC 5965 layout).
        let feedback =
            format!("Feedback-Type: xarf\r\nUser-Agent: abuse-mailer/{VERSION}\r\nVersion: 1\r\n");
        let parts = MultiPart::builder()
            .header(ContentType::parse(&format!(
                "multipart/report; report-type=feedback-report; boundary=\"{boundary}\""
            ))?)
            .build()
            .singlepart(text)
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::parse("message/feedback-report")?)
                    .body(readable(&feedback)),
            )
            .singlepart(Attachment::new(XARF_FILE.to_string()).body(
                readable(&serde_json::to_string_pretty(document)?),
                ContentType::parse("application/json")?,
            ));
        builder.multipart(parts)
    } else if !report.attachments.is_empty() {
        // The files the body names, and no other.
        let mut parts = MultiPart::mixed().boundary(boundary).singlepart(text);
        if report.attaches(CSV_FILE) {
            parts = parts.singlepart(Attachment::new(CSV_FILE.to_string()).body(
                readable(&report.csv()),
                ContentType::parse("text/csv; charset=utf-8")?,
            ));
        }
        if report.attaches(EXCERPT_FILE) {
            let mut log = report.excerpt.join("\n");
            log.push('\n');
            parts = parts.singlepart(
                Attachment::new(EXCERPT_FILE.to_string())
                    .body(readable(&log), ContentType::TEXT_PLAIN),
            );
        }
        if report.attaches(EVIDENCE_FILE) {
            parts = parts.singlepart(
                Attachment::new(EVIDENCE_FILE.to_string())
                    .body(readable(&report.evidence_log()), ContentType::TEXT_PLAIN),
            );
        }
        builder.multipart(parts)
    } else {
        builder.singlepart(text)
    }
    .context("building the message")?;
    Ok(message.formatted())
}

/// Text as the reader will see it: 7bit when it is ASCII with lines a mail server accepts
/// (log lines are longer than quoted-printable's 76 columns, and readable as they are),
/// quoted-printable otherwise.
fn readable(text: &str) -> Body {
    match seven_bit(text) {
        Some(lines) => Body::dangerous_pre_encoded(lines, ContentTransferEncoding::SevenBit),
        None => Body::new(text.replace("\r\n", "\n")),
    }
}

/// `text` with CRLF line ends, if it is ASCII without NUL or a lone CR and no line is longer
/// than 998 bytes: in one pass, as a message of a thousand addresses is most of a megabyte.
fn seven_bit(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.is_ascii() || memchr::memchr(0, bytes).is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if bytes[at] == b'\r' {
            if bytes.get(at + 1) == Some(&b'\n') {
                continue;
            }
            return None;
        }
        let end = if at > start && bytes[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        if end - start > 998 {
            return None;
        }
        out.extend_from_slice(&bytes[start..end]);
        out.extend_from_slice(b"\r\n");
        start = at + 1;
    }
    if bytes.len() - start > 998 {
        return None;
    }
    out.extend_from_slice(&bytes[start..]);
    Some(out)
}

/// FNV-1a: a small stable hash for ids and boundaries (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_on(0xcbf2_9ce4_8422_2325, bytes)
}

/// [`fnv1a`] of what the hash `h` was made of, followed by `bytes`.
pub fn fnv1a_on(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain way to quote a CSV cell: a string of its own.
    fn csv_field(text: &str) -> String {
        let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            std::borrow::Cow::Owned(format!("'{text}"))
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        let text = text.as_ref();
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }

    /// The plain way to make text 7bit: whole-text replacements, then a look at each line.
    fn readable_by_replacing(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let unix = text.replace("\r\n", "\n");
        let plain = unix.bytes().all(|b| b.is_ascii() && b != 0 && b != b'\r')
            && unix.lines().all(|l| l.len() <= 998);
        if plain {
            (
                ContentTransferEncoding::SevenBit,
                unix.replace('\n', "\r\n").into_bytes(),
            )
        } else {
            let body = Body::new(unix);
            (body.encoding(), body.into_vec())
        }
    }

    proptest! {
        #[test]
        fn a_cell_written_in_place_is_the_cell_quoted_on_its_own(text in "[=+@a-c,\"\r\n\t -]{0,12}") {
            let mut out = String::from("x,");
            push_csv_field(&mut out, &text);
            prop_assert_eq!(out, format!("x,{}", csv_field(&text)));
        }

        #[test]
        fn text_made_7bit_in_one_pass_is_what_replacing_makes(
            lines in proptest::collection::vec(
                (
                    prop_oneof![
                        "[a-z ]{0,3}",
                        // Lines at the limit a mail server takes, either side of it.
                        (995usize..1001).prop_map(|n| "x".repeat(n)),
                        Just("a\0b".to_string()),
                        Just("é".to_string()),
                        Just("a\rb".to_string()),
                    ],
                    prop_oneof![Just("\r\n"), Just("\n"), Just("\r"), Just("")],
                ),
                0..6,
            )
        ) {
            let pieces: Vec<String> = lines.iter().map(|(l, end)| format!("{l}{end}")).collect();
            let text = pieces.concat();
            let body = readable(&text);
            prop_assert_eq!((body.encoding(), body.into_vec()), readable_by_replacing(&text));
        }
    }

    /// A report, once its message is made, keeps what the summary, `--json` and sending show
    /// of it, and nothing that only its templates read.
    #[test]
    fn a_made_report_keeps_only_what_is_shown_of_it() {
        let mut report = crate::check::sample_aws_report();
        assert!(!report.hosts.is_empty() && !report.targets.is_empty());
        assert!(!report.listed.is_empty() && !report.ips[0].hosts.is_empty());
        assert!(!report.ips[0].evidence.is_empty() && !report.ips[0].targets.is_empty());
        // What `--json` writes of each address, and what sending and the summary read.
        let shown = |r: &Report| {
            let ips: Vec<crate::output::JsonIp<'_>> = r.ips.iter().map(Into::into).collect();
            let ips = serde_json::to_string(&ips).unwrap();
            (
                r.provider.clone(),
                r.to.clone(),
                r.parts,
                r.excerpt.clone(),
                ips,
            )
        };
        let before = shown(&report);
        report.let_go_of_template_values();
        assert_eq!(shown(&report), before);
        assert!(report.hosts.is_empty() && report.targets.is_empty() && report.listed.is_empty());
        for ip in &report.ips {
            assert!(ip.hosts.is_empty() && ip.targets.is_empty() && ip.evidence.is_empty());
        }
    }

    /// The default templates list `listed`, not `ips`: their reports are rendered without
    /// the list, the costliest of their values.
    #[test]
    fn the_default_templates_do_not_read_ips() {
        let templates = Templates::load(None, &["aws"]).unwrap();
        assert!(!templates.reads_ips);
        for name in templates.tera.get_template_names() {
            let names = templates.tera.get_template_variables(name).unwrap();
            assert!(!names.contains("ips"), "{name}");
        }
        let read = [("body.txt".to_string(), "{{ ips | length }}".to_string())];
        assert!(may_read_ips(&tera::Tera::new(), &read));
    }

    /// `ips` as a word of its own, wherever it stands; not part of another name.
    #[test]
    fn a_text_names_ips_only_as_a_word_of_its_own() {
        for text in [
            "ips",
            "{{-ips-}}",
            "{{ ips?.0 }}",
            "x ips.csv",
            "(ips)",
            "[ips]",
        ] {
            assert!(names_word(text, "ips"), "{text:?}");
        }
        for text in ["tips", "ipsum", "listed_ips", "ips_2", "IPS", "", "ip s"] {
            assert!(!names_word(text, "ips"), "{text:?}");
        }
    }

    /// An IPv6 address the kernel spelt in full in its lines is named both ways in the
    /// evidence's heading, so that the listed spelling finds its lines' heading and the lines'
    /// spelling finds the heading; other addresses, and lines in the short form, as listed.
    #[test]
    fn an_ipv6_address_spelt_in_full_in_its_lines_is_named_both_ways() {
        let full =
            "x SRC=2600:1f30:a400:0000:0000:0000:0000:c7de DST=2001:db8::1 LEN=60".to_string();
        assert_eq!(
            named_as_in_lines("2600:1f30:a400::c7de", std::slice::from_ref(&full)),
            "2600:1f30:a400::c7de (written 2600:1f30:a400:0000:0000:0000:0000:c7de in its lines)"
        );
        let short = "x SRC=2600:1f30:a400::c7de DST=2001:db8::1 LEN=60".to_string();
        assert_eq!(
            named_as_in_lines("2600:1f30:a400::c7de", &[short]),
            "2600:1f30:a400::c7de"
        );
        assert_eq!(named_as_in_lines("3.5.140.2", &[full]), "3.5.140.2");
    }

    /// Answers from one reflected service's port to the operator's other ports are told as
    /// reflection, not probes; a service's port on both ends (NTP's 123 to 123), other
    /// protocols, or several source ports are not.
    #[test]
    fn answers_from_a_reflected_services_port_are_told_as_reflection() {
        let udp = ["UDP".to_string()];
        assert_eq!(
            reflection(&udp, &[53], &[40_001, 51_234]).as_deref(),
            Some("UDP 53 answers (DNS reflection)")
        );
        assert_eq!(
            reflection(&udp, &[11211], &[8080]).as_deref(),
            Some("UDP 11211 answers (memcached reflection)")
        );
        assert_eq!(reflection(&udp, &[123], &[123]), None);
        // From port 53 to well-known ports: a scan past firewalls that trust port 53.
        assert_eq!(reflection(&udp, &[53], &[7, 9, 111, 40_001]), None);
        assert_eq!(reflection(&udp, &[1900], &[1900, 40_001]), None);
        assert_eq!(reflection(&udp, &[53, 54], &[40_001]), None);
        assert_eq!(reflection(&udp, &[40_000], &[53]), None);
        assert_eq!(reflection(&["TCP".to_string()], &[53], &[40_001]), None);
        assert_eq!(
            reflection(&["TCP".to_string(), "UDP".to_string()], &[53], &[40_001]),
            None
        );
        assert_eq!(reflection(&udp, &[53], &[]), None);
    }

    /// A hundred packets or more at ten a second or more: ten SYNs in nine seconds were a
    /// `TCP 22 flood`, and XARF's `ddos`.
    #[test]
    fn a_flood_is_a_hundred_packets_at_ten_a_second_or_more() {
        assert!(!is_flood(10, 9));
        assert!(!is_flood(99, 0));
        assert!(is_flood(100, 9));
        assert!(!is_flood(100, 10));
        assert!(!is_flood(1_000, 200));
        assert!(is_flood(u64::MAX, -5) && !is_flood(u64::MAX, i64::MAX));
        let tcp = ["TCP".to_string()];
        assert_eq!(abuse_kind(&tcp, &[22], 10, 9), "TCP 22 probes");
        assert_eq!(abuse_kind(&tcp, &[22], 200, 9), "TCP 22 flood");
    }

    #[test]
    fn a_scan_past_the_kept_ports_is_said_to_be_at_least_that_wide() {
        let tcp = ["TCP".to_string()];
        let ports: Vec<u16> = (1..=40).collect();
        assert_eq!(
            abuse_kind(&tcp, &ports, 40, 40),
            "port scan (40 ports, TCP)"
        );
        let ports: Vec<u16> = (1..=crate::ingest::MAX_PORTS as u16).collect();
        assert_eq!(
            abuse_kind(&tcp, &ports, 65_535, 600),
            "port scan (64 or more ports, TCP)"
        );
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-cmd"), "'-cmd");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("AMAZON-02"), "AMAZON-02");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    #[test]
    fn wrap_keeps_lines_within_the_width_and_words_whole() {
        let text = "one two three four five six seven eight nine ten";
        let wrapped = wrap_text(text, 20, 4, 10);
        assert_eq!(
            wrapped,
            "one two\n    three four five\n    six seven eight\n    nine ten"
        );
        for (i, line) in wrapped.lines().enumerate() {
            let used = if i == 0 { 10 } else { 0 };
            assert!(used + line.chars().count() <= 20, "{line:?}");
        }
        assert_eq!(
            wrap_text("a-very-long-word x", 5, 0, 0),
            "a-very-long-word\nx"
        );
    }

    #[test]
    fn lists_are_cut_to_fit_with_a_count_of_the_rest() {
        assert_eq!(list_within(&[22, 80, 443], 30, false), "22, 80, 443");
        let many: Vec<u16> = (1000..1030).collect();
        let cut = list_within(&many, 25, false);
        assert!(cut.len() <= 25, "{cut}");
        assert!(
            cut.starts_with("1000, 1001") && cut.ends_with(" more"),
            "{cut}"
        );
        let shown = cut.split(" and ").next().unwrap().split(", ").count();
        let rest: usize = cut
            .split(" and ")
            .nth(1)
            .unwrap()
            .trim_end_matches(" more")
            .parse()
            .unwrap();
        assert_eq!(shown + rest, 30);
    }

    /// A source that probed 100 ports keeps its 64 smallest: the list says what it leaves out
    /// is at least that many, not that it is all (`… 10 and 54 more` read as 64 ports).
    #[test]
    fn a_list_of_the_smallest_ports_kept_says_the_rest_is_at_least_its_count() {
        let kept: Vec<u16> = (1..=MAX_PORTS as u16).collect();
        let cut = list_within(&kept, 40, true);
        assert!(cut.len() <= 40, "{cut}");
        let shown = cut.split(" and ").next().unwrap().split(", ").count();
        let rest: usize = (cut.split(" and at least ").nth(1))
            .and_then(|r| r.strip_suffix(" more"))
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{cut}"));
        assert_eq!(shown + rest, MAX_PORTS);
        assert_eq!(list_within(&[22, 80], 40, true), "22, 80 and more");
        assert_eq!(list_within(&[22, 80], 40, false), "22, 80");
    }

    /// Many hosts, each probing its own number of ports: the words name what they did, not
    /// two of the counts (`TCP probes of 7 ports, TCP probes of 8 ports and 136 other kinds`).
    #[test]
    fn kinds_that_differ_in_their_count_of_ports_alone_are_one_kind_past_three() {
        let mut kinds: Vec<String> = (4..=20)
            .map(|n| format!("TCP probes of {n} ports"))
            .collect();
        kinds.extend((4..=9).map(|n| format!("UDP flood on {n} ports")));
        kinds.push("port scan (40 ports, TCP)".to_string());
        kinds.push("port scan (64 or more ports, TCP)".to_string());
        kinds.push("TCP 22 probes".to_string());
        assert_eq!(
            summarise_kinds(kinds.iter().map(|k| (k.as_str(), 1))),
            "TCP probes, UDP flood and 2 other kinds"
        );
        // Three kinds or fewer are named as they are.
        let few = ["TCP probes of 7 ports", "TCP probes of 8 ports"];
        assert_eq!(
            summarise_kinds(few.into_iter().map(|k| (k, 1))),
            "TCP probes of 7 ports and TCP probes of 8 ports"
        );
        assert_eq!(
            kind_family("UDP 53 answers (DNS reflection)"),
            "UDP 53 answers (DNS reflection)"
        );
        assert_eq!(
            kind_family("TCP answers from 12 ports (flood)"),
            "TCP answers"
        );
        assert_eq!(
            kind_family("TCP answers from port 443 (flood)"),
            "TCP answers from port 443"
        );
        assert_eq!(
            kind_family("port scan (64 or more ports, TCP/UDP)"),
            "TCP/UDP port scans"
        );
    }

    #[test]
    fn kinds_are_summarised_by_how_many_hosts_share_them() {
        let once = |kinds: &[&'static str]| summarise_kinds(kinds.iter().map(|k| (*k, 1)));
        assert_eq!(once(&["a", "a", "b"]), "a and b");
        assert_eq!(once(&["x"]), "x");
        assert_eq!(once(&["c", "b", "b", "a", "d"]), "b, a and 2 other kinds");
    }

    /// Six hosts of six kinds: five pings and a hundred-packet scan came in the order of
    /// their names (`ICMP probes, TCP 22 probes and 4 other kinds`), the scan among the rest.
    #[test]
    fn kinds_shared_by_as_many_hosts_come_by_their_packets() {
        let kinds = [
            ("ICMP probes", 5),
            ("TCP 22 probes", 3),
            ("UDP 53 probes", 4),
            ("port scan (64 or more ports, TCP)", 100),
            ("TCP 80 probes", 3),
            ("UDP 123 probes", 6),
        ];
        assert_eq!(
            summarise_kinds(kinds.into_iter()),
            "TCP port scans, UDP 123 probes and 4 other kinds"
        );
        let few = [("b", 3), ("a", 5), ("c", 5)];
        assert_eq!(summarise_kinds(few.into_iter()), "a, c and b");
        // As many hosts come first whatever their packets.
        let shared = [("b", 1), ("b", 1), ("a", 500)];
        assert_eq!(summarise_kinds(shared.into_iter()), "b and a");
    }

    /// The short names people configure are brands in the subject (`from 5 do hosts` read
    /// as a verb); a name of the operator's own is kept as written.
    #[test]
    fn providers_are_named_as_people_name_them() {
        let label = |name: &str| provider_label(name);
        assert_eq!(label("do"), "DigitalOcean");
        assert_eq!(label("AWS"), "AWS");
        assert_eq!(label("gcp"), "Google Cloud");
        assert_eq!(label("my-colo"), "my-colo");
    }

    /// GRE is logged as `PROTO=47`: it is named, where the body's column of ports and the
    /// subject showed `47` (`47 probes` read as a count of packets).
    #[test]
    fn protocol_text_from_a_log_is_a_name_or_other() {
        let names = [
            "TCP",
            "TCP\rBcc:y@evil.test",
            "47",
            "=HYPERLINK(1)",
            "UDP",
            "253",
            "300",
        ]
        .map(crate::ingest::Name::from);
        assert_eq!(
            protocol_labels(names.iter()),
            ["GRE", "TCP", "UDP", "other", "proto-253"]
        );
        assert_eq!(abuse_kind(&["GRE".into()], &[], 3, 2), "GRE probes");
    }
}
