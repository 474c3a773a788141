//! The command line as clap sees it: flags and subcommands mirrored one to one. Checking what
//! they mean (does the provider exist, is the config valid) is `app`'s job.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Report attacking cloud hosts seen in netfilter logs to their provider's abuse desk.
#[derive(Debug, Parser)]
#[command(
    name = "abuse-mailer",
    version,
    about,
    long_about = None,
    after_long_help = "Exit status: 0 success (also nothing new to report, or another run in progress); \
                       1 other error; 75 mail could not be delivered now, the next run retries; \
                       78 configuration error.\n\n\
                       Environment: ABUSE_MAILER_CONFIG names the configuration file; \
                       ABUSE_MAILER__SECTION__KEY overrides a key (ABUSE_MAILER__MAIL__PASSWORD the SMTP password); \
                       ABUSE_MAILER_NOW pins the clock (RFC 3339)."
)]
pub struct Cli {
    /// Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Say less: only errors (the run summary line is not printed)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more: what was read from each source and why
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read new log lines, report new attackers to their providers, record what was sent
    Run {
        /// Print the messages that would be sent and change nothing (same as `preview`)
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        what: ReportArgs,
    },
    /// Print the messages a run would send now, changing nothing
    Preview {
        #[command(flatten)]
        what: ReportArgs,
    },
    /// List the reports in the ledger
    History {
        /// Only reports that list this IP
        #[arg(long)]
        ip: Option<IpAddr>,
        /// Only reports to this provider
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
        /// First ask remote intakes (the AWS Abuse Signal API) how each unfinished report stands
        #[arg(long)]
        refresh: bool,
    },
    /// Print the exact message of a report, as it was sent
    Show {
        /// The report's id, as `history` lists it
        report_id: String,
    },
    /// Check the configuration and everything it names
    Check {
        /// Also connect to the SMTP server (EHLO, STARTTLS, AUTH) without sending
        #[arg(long)]
        smtp: bool,
        /// Also make a harmless signed call to the AWS Abuse Signal API (lists one report)
        #[arg(long)]
        aws: bool,
    },
    /// Read a source again on the next run, rotated history included, after a wrong prefix say (the ledger keeps reports unique: nothing is sent twice; a packet counted before is not counted again)
    Reread {
        /// The source's `path` as configured, one file of a glob source, or `journald`
        #[arg(long, value_name = "PATH")]
        source: PathBuf,
        /// Read again from the first packet logged this long ago (e.g. 7d), not from the oldest rotated file
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<chrono::Duration>,
    },
    /// List the abuse contacts discovery found: address, where it came from, network, age
    Contacts {
        /// Only those whose network holds this IP
        #[arg(long)]
        ip: Option<IpAddr>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Print firewall rules that block and log a provider's ranges
    Firewall {
        /// The provider whose ranges to block
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// Rule syntax
        #[arg(long, value_enum, default_value_t = FirewallFormat::Iptables)]
        format: FirewallFormat,
        /// Block only these destination ports (e.g. 80,443), so other traffic still flows
        #[arg(long, value_name = "LIST")]
        ports: Option<String>,
    },
}

/// What `run` and `preview` report on, and how.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Report to this provider only (all sources are still read)
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Print the reports as one JSON object on stdout (run: those it made this run)
    #[arg(long)]
    pub json: bool,
    /// Pass over packets logged longer ago than this (e.g. 2h, 3d): skip old history
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<chrono::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirewallFormat {
    /// iptables-restore input for the IPv4 ranges
    Iptables,
    /// ip6tables-restore input for the IPv6 ranges
    Ip6tables,
    Nft,
    Ipset,
}

/// `90s`, `30m`, `2h`, `3d`, `1w`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, like 2h or 3d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    // What a time span can hold (milliseconds in 64 bits); subtracting it from now stops at
    // the calendar's start.
    match n.checked_mul(seconds) {
        Some(s) if s <= i64::MAX / 1000 => Ok(chrono::Duration::seconds(s)),
        _ => Err(format!("{text:?}: too long a span")),
    }
}

/// How much a command says on stderr (`-q`, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

impl Cli {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}
