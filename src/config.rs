//! The configuration file: loaded with the `config` crate (TOML plus `ABUSE_MAILER__SECTION__KEY`
//! environment overrides) into raw structs that reject unknown keys, then checked into
//! [`Settings`], which the rest of the program uses without checking again.
//!
//! Every error names the file and the key. Relative paths are relative to the config file's
//! folder, so a configuration can be moved together with its data.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use lettre::message::Mailbox;
use serde::Deserialize;

use crate::clock::Zone;
use crate::error::ConfigError;
use crate::http::is_host_name;

/// Where the configuration is when neither `--config` nor `ABUSE_MAILER_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/abuse-mailer/config.toml";
/// The environment variable naming the configuration file.
pub const PATH_VAR: &str = "ABUSE_MAILER_CONFIG";
/// The LOG prefix a source matches when it names none.
pub const DEFAULT_PREFIX: &str = "INPUT-DROP:";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    timezone: Option<String>,
    #[serde(default)]
    source: Vec<RawSource>,
    #[serde(default)]
    provider: Vec<RawProvider>,
    report: Option<RawReport>,
    #[serde(default)]
    enrich: RawEnrich,
    #[serde(default)]
    mail: RawMail,
    aws_api: Option<RawAwsApi>,
    discover: Option<RawDiscover>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<PathBuf>,
    prefixes: Option<Vec<String>>,
    journald: Option<bool>,
    start_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    // Optional for a provider reached through an API rather than by mail.
    #[serde(default)]
    to: Vec<String>,
    delivery: Option<String>,
    ranges: Option<PathBuf>,
    format: Option<String>,
    services: Option<Vec<String>>,
    asns: Option<Vec<u32>>,
    regions: Option<Vec<String>>,
    exclude_regions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    from: String,
    sample_seconds: Option<u32>,
    min_hits: Option<u64>,
    rereport_after_days: Option<u32>,
    max_excerpt_lines: Option<usize>,
    redact: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    reply_to: Option<String>,
    templates_dir: Option<PathBuf>,
    ignore: Option<Vec<String>>,
    xarf: Option<bool>,
    attach_csv: Option<bool>,
    attach_excerpt: Option<bool>,
    max_ips_per_message: Option<usize>,
    max_message_bytes: Option<usize>,
    max_age_days: Option<u32>,
    backscatter: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrich {
    asn_db: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    transport: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    security: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password: Option<String>,
    timeout_secs: Option<u64>,
    helo_name: Option<String>,
    ca_file: Option<PathBuf>,
    dir: Option<PathBuf>,
    sendmail_path: Option<PathBuf>,
    max_messages_per_run: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAwsApi {
    region: Option<String>,
    endpoint: Option<String>,
    test: Option<bool>,
    profile: Option<String>,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscover {
    enabled: Option<bool>,
    rdap_bootstrap: Option<String>,
    abusix: Option<bool>,
    dns_server: Option<String>,
    cache_days: Option<u32>,
    max_lookups_per_run: Option<u32>,
    never: Option<Vec<String>>,
}

/// The longest provider name the file transport takes: a report's id (its time, the name and
/// a hash, 34 bytes besides) names its file there, and a file name is at most 255 bytes (its
/// temporary name, `.<id>.eml.tmp`, 9 more). Other transports take any length.
pub const MAX_FILE_PROVIDER_NAME: usize = 200;

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it was read from.
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub zone: Zone,
    pub sources: Vec<SourceConfig>,
    pub providers: Vec<ProviderConfig>,
    pub report: ReportConfig,
    pub asn_db: Option<PathBuf>,
    pub mail: MailConfig,
    /// `[aws_api]`: how providers with `delivery = "aws-abuse-api"` are reached.
    pub aws_api: Option<AwsApiConfig>,
    /// `[discover]`: abuse contacts looked up for addresses in no configured provider; `None`
    /// unless `enabled = true`.
    pub discover: Option<DiscoverConfig>,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub prefixes: Vec<String>,
    /// Where a source never read before starts.
    pub start_at: StartAt,
}

/// Where a source's lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A log file, or a glob pattern naming several (`/var/log/remote/*/messages`).
    File(PathBuf),
    /// The kernel messages of the systemd journal, through `journalctl`.
    Journald,
}

impl SourceConfig {
    /// How the source is named in messages and in the state database.
    pub fn name(&self) -> String {
        match &self.kind {
            SourceKind::File(p) => p.to_string_lossy().into_owned(),
            SourceKind::Journald => "journald".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub to: Vec<Mailbox>,
    pub ranges: Option<PathBuf>,
    pub format: Option<RangeFormat>,
    /// Only these services of a ranges file that names services (empty: all).
    pub services: Vec<String>,
    pub asns: Vec<u32>,
    /// Only the ranges of these regions (empty: all).
    pub regions: Vec<String>,
    /// Never the ranges of these regions, matched by ASN or not (AWS China has its own desk).
    pub exclude_regions: Vec<String>,
    /// How reports reach this provider.
    pub delivery: Delivery,
}

/// How a provider's reports are delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// By mail, as `[mail]` says: one message for many addresses.
    #[default]
    Mail,
    /// Through the AWS Abuse Signal API (`[aws_api]`): one XARF report per address.
    AwsAbuseApi,
}

impl Delivery {
    fn parse(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("mail") => Ok(Delivery::Mail),
            Some("aws-abuse-api") => Ok(Delivery::AwsAbuseApi),
            Some(other) => Err(format!("{other:?}: expected \"mail\" or \"aws-abuse-api\"")),
        }
    }
}

/// `[aws_api]`: where the AWS Abuse Signal API is and how to sign for it.
#[derive(Debug, Clone)]
pub struct AwsApiConfig {
    /// The signing region, and the endpoint's unless `endpoint` is given.
    pub region: String,
    /// `https://abuse.<region>.amazonaws.com`, or the override (`http` only to loopback).
    pub endpoint: String,
    /// Tag every report `lifecycle:test`: AWS validates it and does not act on it.
    pub test: bool,
    /// The profile of the shared credentials file, when the environment has no keys.
    pub profile: Option<String>,
    /// An extra root certificate (PEM) besides the system's.
    pub ca_file: Option<PathBuf>,
    /// The deadline of one call.
    pub timeout: Duration,
}

/// `[discover]`: where abuse contacts are looked up, and how much of that a run may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverConfig {
    /// Where the RDAP bootstrap files `ipv4.json` and `ipv6.json` are.
    pub rdap_bootstrap: BootstrapLocation,
    /// Ask `<reversed-ip>.abuse-contacts.abusix.zone` when RDAP names no usable contact.
    pub abusix: bool,
    /// The resolver for that question, `host:port`; `None`: the system's (`/etc/resolv.conf`).
    pub dns_server: Option<String>,
    /// How long a found contact (or a registry's "none") is trusted.
    pub cache_days: u32,
    /// Addresses looked up over the network in one run; the rest wait for the next.
    pub max_lookups_per_run: u32,
    /// Contact domains never written to (a domain covers its subdomains), lower case.
    pub never: Vec<String>,
}

/// Where a source with no cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Read the rotated history and the whole file (the default).
    #[default]
    Beginning,
    /// Skip what the file holds now; read only what is written after the first run.
    End,
}

/// Where the RDAP bootstrap files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapLocation {
    /// A folder URL ending in `/` (`https://`, or `http://` to loopback).
    Url(String),
    /// A local folder.
    Folder(PathBuf),
}

/// IANA's folder of RDAP bootstrap files.
pub const DEFAULT_RDAP_BOOTSTRAP: &str = "https://data.iana.org/rdap/";

/// The layout of a provider's ranges file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFormat {
    /// AWS `ip-ranges.json`.
    Aws,
    /// Google Cloud `cloud.json`.
    Gcp,
    /// Azure service tags (`ServiceTags_Public_*.json`).
    Azure,
    /// Oracle Cloud `public_ip_ranges.json`.
    Oracle,
    /// An RFC 8805 geofeed CSV (DigitalOcean, Linode, ...).
    Geofeed,
    /// One CIDR a line.
    Cidr,
}

impl RangeFormat {
    pub const NAMES: &'static str =
        "\"aws\", \"gcp\", \"azure\", \"oracle\", \"geofeed\" or \"cidr\"";

    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            RangeFormat::Aws => "aws",
            RangeFormat::Gcp => "gcp",
            RangeFormat::Azure => "azure",
            RangeFormat::Oracle => "oracle",
            RangeFormat::Geofeed => "geofeed",
            RangeFormat::Cidr => "cidr",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "aws" => RangeFormat::Aws,
            "gcp" => RangeFormat::Gcp,
            "azure" => RangeFormat::Azure,
            "oracle" => RangeFormat::Oracle,
            "geofeed" => RangeFormat::Geofeed,
            "cidr" => RangeFormat::Cidr,
            _ => return None,
        })
    }
}

/// What the operator's own packets carry and a report should not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redact {
    Mac,
    Dst,
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub from: Mailbox,
    pub cc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub sample_seconds: u32,
    pub min_hits: u64,
    pub rereport_after_days: Option<u32>,
    pub max_excerpt_lines: usize,
    pub redact: Vec<Redact>,
    pub templates_dir: Option<PathBuf>,
    /// Never reported, whatever provider they are in.
    pub ignore: Vec<IpNet>,
    pub attach_csv: bool,
    pub attach_excerpt: bool,
    /// Split a larger delta into numbered parts of one thread (default 1000).
    pub max_ips_per_message: Option<usize>,
    /// No message is larger than this, attachments included (default 1 MiB).
    pub max_message_bytes: usize,
    /// Packets logged longer ago than this at run time are not reported (default 30; 0: no limit).
    pub max_age_days: u32,
    /// Whether answers to our own traffic (TCP ACK/RST, ICMP errors) count as hits (default no).
    pub backscatter: bool,
    /// Send XARF v4: one report per IP, each with `xarf.json`.
    pub xarf: bool,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: TransportConfig,
    pub max_messages_per_run: u32,
}

#[derive(Debug, Clone)]
pub enum TransportConfig {
    Smtp(SmtpConfig),
    /// `timeout` is `mail.timeout_secs`: a sendmail run gets the same deadline as a dialogue.
    Sendmail {
        path: PathBuf,
        timeout: Duration,
    },
    File {
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    pub helo_name: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// A secret (a password, an API key): never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which configuration file to read: `--config`, else `$ABUSE_MAILER_CONFIG`, else the default.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    match std::env::var_os(PATH_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// Reads and checks the configuration at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with(path, None)
}

/// [`load`] with the environment given instead of read from the process (for tests).
///
/// Environment values are taken verbatim: a password of `0123` stays `0123`. A key that wants
/// a number or a boolean is parsed from the text when it is deserialized, never guessed up
/// front, so a string key never turns into a number on the way.
fn load_with(
    path: &Path,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<Settings, ConfigError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        // A pipe (`--config <(…)`), a folder, a device: there, but no file its paths can be
        // relative to, and a pipe would hold the run until something writes to it.
        Ok(meta) => {
            return Err(ConfigError(format!(
                "{shown}: not a regular file ({}); give the path of the configuration file itself",
                crate::source::file_kind(&meta.file_type())
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError(format!(
                "{shown}: configuration file not found (give --config PATH or set {PATH_VAR})"
            )));
        }
        Err(e) => return Err(ConfigError(format!("{shown}: cannot read: {e}"))),
    }
    // Read once: the merged reading, and the looks at where the parser or a type refuses
    // it, are of the same text.
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{shown}: cannot read: {e}")))?;
    let names: Vec<String> = match &env {
        Some(map) => map.keys().cloned().collect(),
        None => std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect(),
    };
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("ABUSE_MAILER")
                .prefix_separator("__")
                .separator("__")
                .source(env.clone()),
        );
    if let Some(refused) = misshapen_in_environment(&names) {
        return Err(ConfigError(refused));
    }
    // The environment gives text: the keys that take a list read it as one.
    let list_vars = list_keys_from_environment(&names)?;
    for (key, var) in &list_vars {
        let (key, var) = (*key, var.clone());
        let text = match &env {
            Some(map) => map.get(&var).cloned(),
            None => std::env::var(&var).ok(),
        };
        let Some(text) = text else { continue };
        let list = env_list(&text).map_err(|why| ConfigError(format!("{var}: {why}")))?;
        builder = builder
            .set_override(key, list)
            .map_err(|e| ConfigError(format!("{var}: {e}")))?;
    }
    let values: Vec<(String, String)> = (names.iter())
        .filter_map(|name| {
            let value = match &env {
                Some(map) => map.get(name).cloned(),
                None => std::env::var(name).ok(),
            };
            Some((name.clone(), value?))
        })
        .collect();
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| {
            // A negative number from the environment, which the merged reading calls text.
            if let Some(refused) = number_said_in_words(&text, &values) {
                return ConfigError(refused);
            }
            // The parser's own message names neither the line nor the key: asked again.
            if let config::ConfigError::FileParse { .. } = &e
                && let Some(at) = refused_at(&text)
            {
                return ConfigError(format!("{shown}: {at}"));
            }
            let in_file = refused_by_file(&text);
            let text = describe(&e);
            if let Some(var) = value_from_environment(&text, &names) {
                return ConfigError(format!("{var}: {}", text.trim_end_matches(" in the environment")));
            }
            if let Some(var) = unknown_from_environment(&text, &names) {
                return ConfigError(format!("{var}: {text} (a misspelt environment variable)"));
            }
            let about_a_list =
                text.contains("for key `source") || text.contains("for key `provider");
            if let Some(var) = list_from_environment(&names).filter(|_| about_a_list) {
                return ConfigError(format!(
                    "{var}: [[source]] and [[provider]] are lists, whose keys cannot be set from the environment: set them in {shown}"
                ));
            }
            // The file's own fault (a negative number, a key misspelt): said with its line.
            if let Some(at) = in_file {
                let key = text.rfind(" for key `").map_or("", |i| &text[i..]);
                return ConfigError(format!("{shown}: {at}{key}"));
            }
            ConfigError(format!("{shown}: {text}"))
        })?;
    if let Some(at) = mistyped_in_file(&text) {
        return Err(ConfigError(format!("{shown}: {at}")));
    }
    if let Some(refused) = number_said_in_words(&text, &values) {
        return Err(ConfigError(refused));
    }
    // A value the checks refuse names the variable it came from, not the file.
    check(path, raw).map_err(|e| {
        match (
            value_from_environment(&e.0, &names),
            e.0.strip_prefix(&format!("{shown}: ")),
        ) {
            (Some(var), Some(rest)) => ConfigError(format!("{var}: {rest}")),
            _ => e,
        }
    })
}

/// Where the TOML parser refuses `text`, as `line N (key = …): why` (a value is never shown:
/// it may be a password); `None` if it does not.
fn refused_at(text: &str) -> Option<String> {
    let e = text.parse::<toml::Table>().err()?;
    Some(located(text, e.span()?.start, e.message()))
}

/// What the file alone is refused for, read as its own types, as [`refused_at`] says it;
/// `None` when it is read well (the merged reading's fault is the environment's).
fn refused_by_file(text: &str) -> Option<String> {
    refused_as_its_types(text, |_| true)
}

/// What the file alone is refused for, read as its own types, if `counts` takes the
/// parser's reason, as [`refused_at`] says it.
fn refused_as_its_types(text: &str, counts: impl Fn(&str) -> bool) -> Option<String> {
    let e = toml::from_str::<RawConfig>(text).err()?;
    let why = e.message();
    counts(why).then_some(())?;
    Some(located(text, e.span()?.start, why))
}

/// A value of the file that is not of its key's type, as [`refused_at`] says it; `None`
/// when each is. The reading that merges the environment's text converts what it can: a
/// number with a fraction rounded into a whole one (`max_age_days = 0.4` read as 0, no limit
/// at all), `"yes"` or `1` read as true, `state_dir = 5` as a folder named `5`, an unquoted
/// password of digits as text. The file's own values are held to their types here; the
/// environment's, which are text, are converted as before.
fn mistyped_in_file(text: &str) -> Option<String> {
    // Unknown keys and the rest were judged by the merged reading.
    refused_as_its_types(text, |why| {
        why.starts_with("invalid type") || why.starts_with("invalid value")
    })
}

/// An `ABUSE_MAILER__…` variable (among `vars`, each with its value) that gives a key wanting
/// a number a yes/no word, or a negative number where it takes 0 or more, said as the file's
/// reading says such a value. The merged reading takes `yes`, `on` and `true` for 1 and their
/// opposites for 0 (a typo that lowers `min_hits` without a word), where the file's
/// `min_hits = true` is refused; and it said `-1` was a string where an integer was expected.
/// Whether a key wants a number is asked of the types themselves: in the file's text, 1 there
/// is taken and `true` refused.
fn number_said_in_words(text: &str, vars: &[(String, String)]) -> Option<String> {
    const WORDS: [&str; 6] = ["true", "false", "yes", "no", "on", "off"];
    let table: toml::Table = text.parse().ok()?;
    vars.iter().find_map(|(var, value)| {
        let word = value.trim().to_ascii_lowercase();
        let negative = word.parse::<i64>().ok().filter(|n| *n < 0);
        if !WORDS.contains(&word.as_str()) && negative.is_none() {
            return None;
        }
        let rest = (var.get(..14)?.eq_ignore_ascii_case("ABUSE_MAILER__")).then(|| &var[14..])?;
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let refusal = |value: toml::Value| {
            let mut with = table.clone();
            let (key, tables) = path.split_last()?;
            let mut at = &mut with;
            for name in tables {
                at = (at.entry(name.as_str()))
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()?;
            }
            at.insert(key.clone(), value);
            Some(
                toml::Value::Table(with)
                    .try_into::<RawConfig>()
                    .err()?
                    .to_string(),
            )
        };
        let key = path.join(".");
        if let Some(n) = negative {
            return refusal(toml::Value::Integer(n))
                .is_some_and(|why| why.starts_with("invalid value: integer `-"))
                .then(|| {
                    format!(
                        "{var}: a negative number, where this key takes 0 or more, for key `{key}`"
                    )
                });
        }
        let number_refused = refusal(toml::Value::Integer(1))
            .is_some_and(|why| why.starts_with("invalid type: integer"));
        let word_refused = refusal(toml::Value::Boolean(true))
            .is_some_and(|why| why.starts_with("invalid type: boolean"));
        (word_refused && !number_refused).then(|| {
            format!("{var}: invalid type: the word {word:?}, expected an integer for key `{key}`")
        })
    })
}

/// `line N (key = …): why` for a refusal at byte `at` of `text`, the value `why` quotes
/// left out.
fn located(text: &str, at: usize, why: &str) -> String {
    let start = at.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let there = text.lines().nth(line - 1).unwrap_or_default().trim();
    let shown = match there.split_once('=') {
        Some((key, _)) => format!(" ({} = …)", crate::excerpt::clean_line(key.trim(), 80)),
        // A table's header; any other line may be inside a value.
        None if there.starts_with('[') => format!(" ({})", crate::excerpt::clean_line(there, 80)),
        None => String::new(),
    };
    // Whole numbers out of a key's range in words (the parser names the type it wanted, or
    // a 128-bit one for a number past 64 bits); any other reason without the value it quotes.
    let why = if why.starts_with("invalid type: integer")
        && why.contains("as i128")
        && why.contains("expected any valid TOML value")
    {
        "invalid number: a whole number past 64 bits, too large to read".to_string()
    } else if why.starts_with("invalid value: integer `-") {
        "a negative number, where this key takes 0 or more".to_string()
    } else if (why.starts_with("invalid value: integer `") && why.contains("expected u"))
        // Past the 63 bits of TOML's integers, within 64: the parser's own words.
        || why.starts_with("u64 value was too large")
    {
        "a number larger than any this key takes".to_string()
    } else {
        without_value(why.trim_end_matches('.'))
    };
    format!("line {line}{shown}: {why}")
}

/// A parser's reason without the value it quotes: `invalid type: integer `1234`, expected a
/// string` is said as `invalid type: integer, expected a string`. Only reasons about a value
/// quote one; the others (`expected `=``) quote the syntax, and are kept whole.
fn without_value(why: &str) -> String {
    if !(why.starts_with("invalid type") || why.starts_with("invalid value")) {
        return why.to_string();
    }
    let mut out = String::new();
    let mut rest = why;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = &rest[open..open + 1];
        let Some(close) = rest[open + 1..].find(quote) else {
            break;
        };
        out.push_str(rest[..open].trim_end());
        rest = &rest[open + 1 + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The `ABUSE_MAILER__SECTION__KEY` variable among `names` that set the value an error is
/// about (`mail.port: …`, or the parser's ``for key `mail.port` ``), if one did: the error
/// then names the variable, which holds the value, not the file, which may not.
fn value_from_environment(error: &str, names: &[String]) -> Option<String> {
    names.iter().find_map(|name| {
        let rest = name
            .get(..14)?
            .eq_ignore_ascii_case("ABUSE_MAILER__")
            .then(|| &name[14..])?;
        let key = rest.to_ascii_lowercase().replace("__", ".");
        (!key.is_empty()
            && (error.starts_with(&format!("{key}:"))
                || error.contains(&format!(": {key}:"))
                || error.contains(&format!("for key `{key}`"))))
        .then(|| name.clone())
    })
}

/// The `ABUSE_MAILER__…` variable that brought in the unknown key an error names, if one did:
/// the error then names the variable, not the file.
fn unknown_from_environment(error: &str, names: &[String]) -> Option<String> {
    let rest = error.strip_prefix("unknown field `")?;
    let field = &rest[..rest.find('`')?];
    names
        .iter()
        .filter(|n| n.starts_with("ABUSE_MAILER__"))
        // The unknown key may be the last part of the name or a section's (a misspelt
        // `ABUSE_MAILER__REPROT__MIN_HITS`).
        .find(|n| {
            n.split("__")
                .skip(1)
                .any(|part| part.eq_ignore_ascii_case(field))
        })
        .cloned()
}

/// An `ABUSE_MAILER__…` variable among `names` whose name has no setting's shape (an empty
/// part, `ABUSE_MAILER__REPORT__`, or a part past the key, `ABUSE_MAILER__REPORT__MIN_HITS__X`),
/// named with the shape expected: the merged reading blamed the configuration file for it.
fn misshapen_in_environment(names: &[String]) -> Option<String> {
    const PREFIX: &str = "ABUSE_MAILER__";
    names
        .iter()
        .filter_map(|n| {
            let prefix = n.get(..PREFIX.len())?;
            prefix.eq_ignore_ascii_case(PREFIX).then(|| (n, &n[PREFIX.len()..]))
        })
        .find(|(_, rest)| {
            let parts: Vec<&str> = rest.split("__").collect();
            // The lists' keys are said as such (they cannot be set from the environment).
            let list = ["source", "provider"].iter().any(|l| parts[0].eq_ignore_ascii_case(l));
            !list && (parts.len() > 2 || parts.iter().any(|p| p.is_empty()))
        })
        .map(|(n, _)| {
            format!(
                "{n}: not a setting's name: expected ABUSE_MAILER__SECTION__KEY (ABUSE_MAILER__KEY for a key outside a section)"
            )
        })
}

/// The keys outside `[[source]]` and `[[provider]]` that take a list.
const LIST_KEYS: [&str; 4] = [
    "report.ignore",
    "report.redact",
    "report.cc",
    "discover.never",
];

/// The list keys set by an `ABUSE_MAILER__…` variable among `names`, with the variable; two
/// variables for one key (spelt in other cases) are refused, as neither would be sure to win.
fn list_keys_from_environment(
    names: &[String],
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let mut found = Vec::new();
    for key in LIST_KEYS {
        let wanted = format!("ABUSE_MAILER__{}", key.replace('.', "__"));
        let mut vars = names.iter().filter(|n| n.eq_ignore_ascii_case(&wanted));
        if let Some(var) = vars.next() {
            if let Some(other) = vars.next() {
                return Err(ConfigError(format!(
                    "{var} and {other} both set {key}: keep one"
                )));
            }
            found.push((key, var.clone()));
        }
    }
    Ok(found)
}

/// A list as an environment variable gives it: a TOML array of strings (`["a", "b"]`, and
/// `[]` for none), or its values between commas (`a, b`; a comma inside double quotes, as in
/// `"NOC, Example" <noc@example.org>`, is part of its value). Empty text is refused: a
/// template that left a value out would otherwise empty the file's list (`ignore`, say) in
/// silence.
fn env_list(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    let refused =
        || "not a list of strings: write [\"a\", \"b\"] (or [] for none) or a, b".to_string();
    if text.is_empty() {
        return Err("empty: write [] for no values, or unset the variable".to_string());
    }
    if text.starts_with('[') {
        let table: toml::Table = format!("v = {text}").parse().map_err(|_| refused())?;
        let values = table
            .get("v")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        return (values.iter())
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(refused);
    }
    let mut values = Vec::new();
    let (mut value, mut quoted) = (String::new(), false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                value.push(c);
            }
            ',' if !quoted => values.push(std::mem::take(&mut value)),
            _ => value.push(c),
        }
    }
    values.push(value);
    let values: Vec<String> = (values.iter())
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    // Commas alone (`${A},${B}` with both left out) are no list either.
    if values.is_empty() {
        return Err(
            "no values between the commas: write [] for none, or unset the variable".to_string(),
        );
    }
    Ok(values)
}

/// An `ABUSE_MAILER__SOURCE__…` or `ABUSE_MAILER__PROVIDER__…` variable: the environment
/// turns it into a table where the file has a list, and the error would blame the file.
fn list_from_environment(names: &[String]) -> Option<String> {
    names
        .iter()
        .find(|n| {
            let upper = n.to_ascii_uppercase();
            upper.starts_with("ABUSE_MAILER__SOURCE__")
                || upper.starts_with("ABUSE_MAILER__PROVIDER__")
        })
        .cloned()
}

/// The `config` crate's message, with its key named the way the file spells it.
///
/// A TOML syntax error comes with a snippet of the offending line; that line may hold a
/// password, so only the position and the parser's verdict are kept.
fn describe(err: &config::ConfigError) -> String {
    let text = err.to_string();
    let text = text.replace(" in the configuration file", "");
    // The parser writes a key inside a list without its dot (`provider[0]to`).
    let mut dotted = String::with_capacity(text.len());
    for c in text.chars() {
        if dotted.ends_with(']') && c.is_ascii_alphabetic() {
            dotted.push('.');
        }
        dotted.push(c);
    }
    let text = dotted;
    let kept: Vec<&str> = text.lines().filter(|l| !is_snippet_line(l)).collect();
    kept.join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line of a parser's source excerpt: `  |`, `3 | password = "…`, `  |     ^`.
fn is_snippet_line(line: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    rest.starts_with('|')
}

/// `path` with its `..` (and `.`) taken out by name: `--config ../abuse/config.toml` from a
/// folder beside it names the file as `/etc/abuse/config.toml` does, so its sources keep the
/// one cursor a timer's run reads on from (by inode alone, a file rotated between the two
/// spellings' runs would be read again whole). Unless a link before a `..` makes the name
/// without it another folder: `path` is kept as it is then.
pub(crate) fn without_dot_dot(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    let folder = |p: &Path| {
        std::fs::metadata(p.parent().unwrap_or(Path::new("/")))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    match folder(&out) {
        Some(at) if Some(at) == folder(path) => out,
        _ => path.to_path_buf(),
    }
}

/// Checks a parsed configuration section by section; the first mistake is the error, naming
/// the file and the key.
fn check(file: &Path, raw: RawConfig) -> Result<Settings, ConfigError> {
    // From the file's absolute place, not the spelling `--config` gave it: a source's path
    // names its cursor, and a relative one would name a new cursor from each working folder
    // (a `reread` under one spelling then counts again what the other counted).
    let absolute =
        without_dot_dot(&std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
    let base = absolute.parent().unwrap_or(Path::new("."));
    let err = |key: &str, what: String| ConfigError(format!("{}: {key}: {what}", file.display()));
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let zone = match Zone::parse(raw.timezone.as_deref().unwrap_or("local")) {
        Ok(Zone::Local) => crate::clock::local_zone(),
        other => other,
    }
    .map_err(|e| err("timezone", e))?;

    let sources = sources(raw.source, &err, &resolve)?;
    // An empty path would put the state beside the configuration, unasked.
    if raw
        .state_dir
        .as_deref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(err("state_dir", "empty: expected a folder".into()));
    }
    let providers = providers(raw.provider, raw.enrich.asn_db.is_some(), &err, &resolve)?;
    let report = report(raw.report, &err, &resolve)?;
    // `cc` goes with every provider's report: a desk's address in it would get every other
    // provider's reports too, and its own twice.
    for cc in &report.cc {
        let cc_text = cc.email.to_string();
        if let Some(p) = (providers.iter())
            .find(|p| (p.to.iter()).any(|to| to.email.to_string().eq_ignore_ascii_case(&cc_text)))
        {
            return Err(err(
                "report.cc",
                format!(
                    "{cc_text} is provider {:?}'s desk (its `to`): cc goes with every provider's report, so it would get the others' reports too, and its own twice; take it out of cc",
                    p.name
                ),
            ));
        }
    }
    let (transport, max_messages_per_run) = mail(raw.mail, file, &err, &resolve)?;
    // The name is part of each report's id, which names its file in `mail.dir`: a name too
    // long for a file name failed every send to the folder, run after run.
    if let TransportConfig::File { .. } = transport
        && let Some((i, p)) =
            (providers.iter().enumerate()).find(|(_, p)| p.name.len() > MAX_FILE_PROVIDER_NAME)
    {
        return Err(err(
            &format!("provider[{i}].name"),
            format!(
                "{} characters: at most {MAX_FILE_PROVIDER_NAME} with transport = \"file\", whose files are named by it",
                p.name.len()
            ),
        ));
    }
    let aws_api = aws_api(raw.aws_api, &providers, &err, &resolve)?;
    let discover = discover(raw.discover, &err, &resolve)?;

    Ok(Settings {
        file: file.to_path_buf(),
        state_dir: resolve(
            raw.state_dir
                .as_deref()
                .unwrap_or(Path::new("/var/lib/abuse-mailer")),
        ),
        zone,
        sources,
        providers,
        report,
        asn_db: raw.enrich.asn_db.as_deref().map(resolve),
        mail: MailConfig {
            transport,
            max_messages_per_run,
        },
        aws_api,
        discover,
    })
}

/// Checks the `[[source]]` list: a path or journald each, non-empty prefixes, no source twice.
fn sources(
    raw: Vec<RawSource>,
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let mut sources = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("source[{i}]");
        let kind = match (s.path, s.journald.unwrap_or(false)) {
            (Some(_), true) => {
                return Err(err(&key, "give path or journald = true, not both".into()));
            }
            (Some(path), false) => SourceKind::File(resolve(&path)),
            (None, true) => SourceKind::Journald,
            (None, false) => {
                return Err(err(
                    &format!("{key}.path"),
                    "missing: the log file to read (or journald = true)".into(),
                ));
            }
        };
        let prefixes = s
            .prefixes
            .unwrap_or_else(|| vec![DEFAULT_PREFIX.to_string()]);
        if prefixes.is_empty() || prefixes.iter().any(|p| p.trim().is_empty()) {
            return Err(err(
                &format!("{key}.prefixes"),
                "expected at least one non-empty LOG prefix".into(),
            ));
        }
        let start_at = match s.start_at.as_deref() {
            None | Some("beginning") => StartAt::Beginning,
            Some("end") => StartAt::End,
            Some(other) => {
                return Err(err(
                    &format!("{key}.start_at"),
                    format!("{other:?}: expected \"beginning\" or \"end\""),
                ));
            }
        };
        if sources.iter().any(|o: &SourceConfig| o.kind == kind) {
            return Err(err(&key, "the same source is configured twice".into()));
        }
        sources.push(SourceConfig {
            kind,
            prefixes,
            start_at,
        });
    }
    if sources.is_empty() {
        return Err(err(
            "source",
            "no [[source]] configured: add one with path = \"/var/log/messages\"".into(),
        ));
    }

    Ok(sources)
}

/// Checks the `[[provider]]` list: names, addresses, range files or ASNs, regions, delivery.
fn providers(
    raw: Vec<RawProvider>,
    has_asn_db: bool,
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut providers: Vec<ProviderConfig> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("provider[{i}]");
        let name = p.name.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                &format!("{key}.name"),
                format!(
                    "{:?}: expected letters, digits, - or _",
                    crate::excerpt::clean_line(&p.name, 80)
                ),
            ));
        }
        if providers.iter().any(|q| q.name == name) {
            return Err(err(
                &format!("{key}.name"),
                format!("provider {name:?} is configured twice"),
            ));
        }
        if p.to.is_empty() && Delivery::parse(p.delivery.as_deref()) == Ok(Delivery::Mail) {
            return Err(err(
                &format!("{key}.to"),
                "expected at least one abuse address".into(),
            ));
        }
        let to =
            p.to.iter()
                .map(|a| mailbox(a).map_err(|e| err(&format!("{key}.to"), e)))
                .collect::<Result<Vec<_>, _>>()?;
        let format = match p.format.as_deref() {
            None => None,
            Some(f) => Some(RangeFormat::parse(f).ok_or_else(|| {
                err(
                    &format!("{key}.format"),
                    format!("{f:?}: expected {}", RangeFormat::NAMES),
                )
            })?),
        };
        let delivery = Delivery::parse(p.delivery.as_deref())
            .map_err(|e| err(&format!("{key}.delivery"), e))?;
        let by_asn = p.asns.as_ref().is_some_and(|a| !a.is_empty());
        if p.ranges.is_none() && !by_asn {
            return Err(err(
                &format!("{key}.ranges"),
                "missing: the provider's IP range file (or asns)".into(),
            ));
        }
        if by_asn && !has_asn_db {
            return Err(err(
                &format!("{key}.asns"),
                "matching by ASN needs [enrich] asn_db".into(),
            ));
        }
        let regions = p.regions.unwrap_or_default();
        let exclude_regions = p.exclude_regions.unwrap_or_default();
        if (!regions.is_empty() || !exclude_regions.is_empty()) && p.ranges.is_none() {
            let which = if regions.is_empty() {
                "exclude_regions"
            } else {
                "regions"
            };
            return Err(err(
                &format!("{key}.{which}"),
                "regions are named by a range file: set ranges too".into(),
            ));
        }
        providers.push(ProviderConfig {
            name,
            to,
            ranges: p.ranges.as_deref().map(resolve),
            format,
            services: p.services.unwrap_or_default(),
            asns: p.asns.unwrap_or_default(),
            regions,
            exclude_regions,
            delivery,
        });
    }
    if providers.is_empty() {
        return Err(err(
            "provider",
            "no [[provider]] configured: add one with name, to and ranges".into(),
        ));
    }

    Ok(providers)
}

/// Checks `[report]`: the sender, limits, redaction and what is never reported.
fn report(
    raw: Option<RawReport>,
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<ReportConfig, ConfigError> {
    let Some(r) = raw else {
        return Err(err(
            "report",
            "missing [report] section with from = \"Name <address>\"".into(),
        ));
    };
    let from = mailbox(&r.from).map_err(|e| err("report.from", e))?;
    let cc =
        r.cc.unwrap_or_default()
            .iter()
            .map(|a| mailbox(a).map_err(|e| err("report.cc", e)))
            .collect::<Result<Vec<_>, _>>()?;
    let reply_to = match r.reply_to.as_deref() {
        None => None,
        Some(a) => Some(mailbox(a).map_err(|e| err("report.reply_to", e))?),
    };
    let sample_seconds = r.sample_seconds.unwrap_or(5);
    if sample_seconds == 0 || sample_seconds > 3600 {
        return Err(err(
            "report.sample_seconds",
            format!("{sample_seconds}: expected 1 to 3600"),
        ));
    }
    let max_excerpt_lines = r.max_excerpt_lines.unwrap_or(50);
    if max_excerpt_lines == 0 || max_excerpt_lines > 10_000 {
        return Err(err(
            "report.max_excerpt_lines",
            format!("{max_excerpt_lines}: expected 1 to 10000"),
        ));
    }
    // One packet is no reason to accuse anyone: a stray or spoofed packet looks the same.
    let min_hits = r.min_hits.unwrap_or(3).max(1);
    let max_message_bytes = r.max_message_bytes.unwrap_or(1 << 20);
    // Mail servers refuse far less than this; a larger part would be refused, and its
    // addresses made into a new one every run.
    if !(16 << 10..=64 << 20).contains(&max_message_bytes) {
        return Err(err(
            "report.max_message_bytes",
            format!("{max_message_bytes}: expected 16384 (16 KiB) to 67108864 (64 MiB)"),
        ));
    }
    // The operator's own MAC address is no business of the desk's: hidden unless asked.
    let redact = r
        .redact
        .unwrap_or_else(|| vec!["MAC".to_string()])
        .iter()
        .map(|x| match x.to_ascii_uppercase().as_str() {
            "MAC" => Ok(Redact::Mac),
            "DST" => Ok(Redact::Dst),
            _ => Err(err(
                "report.redact",
                format!("{x:?}: expected \"MAC\" or \"DST\""),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // An empty path would read templates from the configuration's folder, unasked (an
    // environment template that left the value out), as an empty `state_dir` would put the
    // state there.
    if (r.templates_dir.as_deref()).is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(err(
            "report.templates_dir",
            "empty: expected a folder".into(),
        ));
    }
    let ignore = r
        .ignore
        .unwrap_or_default()
        .iter()
        .map(|c| parse_net(c).map_err(|e| err("report.ignore", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReportConfig {
        from,
        cc,
        reply_to,
        sample_seconds,
        min_hits,
        rereport_after_days: r.rereport_after_days,
        max_excerpt_lines,
        redact,
        templates_dir: r.templates_dir.as_deref().map(resolve),
        ignore,
        attach_csv: r.attach_csv.unwrap_or(true),
        attach_excerpt: r.attach_excerpt.unwrap_or(true),
        xarf: r.xarf.unwrap_or(false),
        max_ips_per_message: match r.max_ips_per_message {
            Some(0) => {
                return Err(err(
                    "report.max_ips_per_message",
                    "expected at least 1".into(),
                ));
            }
            Some(n) => Some(n),
            None => Some(1000),
        },
        max_message_bytes,
        max_age_days: r.max_age_days.unwrap_or(30),
        backscatter: r.backscatter.unwrap_or(false),
    })
}

/// Checks `[mail]`: the transport and its settings (`file` is the configuration file, whose
/// permissions matter when it holds the password), and the per-run budget.
fn mail(
    m: RawMail,
    file: &Path,
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(TransportConfig, u32), ConfigError> {
    // Bounded so that the deadlines built on it (send::Deadlines) stay sensible.
    let timeout_secs = m.timeout_secs.unwrap_or(30);
    if !(1..=3600).contains(&timeout_secs) {
        return Err(err(
            "mail.timeout_secs",
            format!("{timeout_secs}: expected 1 to 3600"),
        ));
    }
    let timeout = Duration::from_secs(timeout_secs);
    let transport = match m.transport.as_deref().unwrap_or("smtp") {
        "smtp" => {
            let security = match m.security.as_deref().unwrap_or("none") {
                "none" => Security::None,
                "starttls" => Security::StartTls,
                "tls" => Security::Tls,
                other => {
                    return Err(err(
                        "mail.security",
                        format!("{other:?}: expected \"none\", \"starttls\" or \"tls\""),
                    ));
                }
            };
            let password = match (&m.password_file, &m.password) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        "mail.password_file",
                        "give password_file or password, not both".into(),
                    ));
                }
                (Some(file), None) => {
                    let file = resolve(file);
                    refuse_readable_by_others(&file).map_err(|e| err("mail.password_file", e))?;
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        err(
                            "mail.password_file",
                            format!("cannot read {}: {e}", file.display()),
                        )
                    })?;
                    Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
                }
                (None, Some(p)) => {
                    // Written in the config file (not given in the environment): then the
                    // file is a secret too.
                    if std::env::var_os("ABUSE_MAILER__MAIL__PASSWORD").is_none() {
                        refuse_readable_by_others(file).map_err(|e| err("mail.password", e))?;
                    }
                    Some(Secret(p.clone()))
                }
                (None, None) => None,
            };
            if password.is_some() && m.username.is_none() {
                return Err(err(
                    "mail.username",
                    "a password is set but no username".into(),
                ));
            }
            // AUTH PLAIN separates its fields with NUL; a control character has no place in
            // either. The password itself is never shown.
            if let Some(user) = &m.username
                && (user.is_empty() || user.chars().any(char::is_control))
            {
                return Err(err(
                    "mail.username",
                    format!("{user:?}: expected a login name without control characters"),
                ));
            }
            if password
                .as_ref()
                .is_some_and(|p| p.expose().chars().any(char::is_control))
            {
                let key = if m.password_file.is_some() {
                    "mail.password_file"
                } else {
                    "mail.password"
                };
                return Err(err(key, "the password contains a control character".into()));
            }
            let host = m.host.unwrap_or_else(|| "localhost".to_string());
            // Lenient on `_` (container names resolve with it); never spaces or controls.
            let name_like = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !name_like && host.parse::<std::net::IpAddr>().is_err() {
                return Err(err(
                    "mail.host",
                    format!("{host:?}: expected a host name or an IP address"),
                ));
            }
            // A login in clear text is readable on every hop; only a server on this host
            // is spared that.
            if security == Security::None
                && m.username.is_some()
                && !crate::http::is_loopback_host(&host)
            {
                return Err(err(
                    "mail.security",
                    format!(
                        "\"none\" would send the login for mail.username in clear text to {host}: use \"starttls\" or \"tls\" (clear text is allowed only to a loopback host)"
                    ),
                ));
            }
            let port = m.port.unwrap_or(match security {
                Security::Tls => 465,
                Security::StartTls => 587,
                Security::None => 25,
            });
            if port == 0 {
                return Err(err("mail.port", "0: expected 1 to 65535".into()));
            }
            // Written into EHLO as is: anything but a host name or address literal would
            // let the configuration speak SMTP commands.
            if let Some(helo) = &m.helo_name
                && !is_helo_name(helo)
            {
                return Err(err(
                    "mail.helo_name",
                    format!("{helo:?}: expected a host name (mail.example.org) or an IP address"),
                ));
            }
            TransportConfig::Smtp(SmtpConfig {
                host,
                port,
                security,
                username: m.username,
                password,
                timeout,
                helo_name: m.helo_name,
                ca_file: m.ca_file.as_deref().map(resolve),
            })
        }
        "sendmail" => match m.sendmail_path {
            // Empty, it named the configuration's folder ("…/: not a file").
            Some(p) if p.as_os_str().is_empty() => {
                return Err(err(
                    "mail.sendmail_path",
                    "empty: expected a program (leave the key out for /usr/sbin/sendmail)".into(),
                ));
            }
            path => TransportConfig::Sendmail {
                path: path
                    .map(|p| resolve(&p))
                    .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail")),
                timeout,
            },
        },
        "file" => match m.dir {
            // Empty, the messages would go beside the configuration, unasked.
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(err("mail.dir", "empty: expected a folder".into()));
            }
            Some(dir) => TransportConfig::File { dir: resolve(&dir) },
            None => {
                return Err(err(
                    "mail.dir",
                    "transport = \"file\" needs dir, the folder to write .eml files into".into(),
                ));
            }
        },
        other => {
            return Err(err(
                "mail.transport",
                format!("{other:?}: expected \"smtp\", \"sendmail\" or \"file\""),
            ));
        }
    };
    let budget = match m.max_messages_per_run {
        // Reports would be made and wait for ever.
        Some(0) => {
            return Err(err(
                "mail.max_messages_per_run",
                "expected at least 1 (to send nothing, use preview or run --dry-run)".into(),
            ));
        }
        n => n.unwrap_or(10),
    };
    Ok((transport, budget))
}

/// Checks `[discover]`; every key is checked even while `enabled` is not true, so turning it
/// on later does not reveal an old mistake.
fn discover(
    raw: Option<RawDiscover>,
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<DiscoverConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let rdap_bootstrap = match raw.rdap_bootstrap.as_deref().map(str::trim) {
        None => BootstrapLocation::Url(DEFAULT_RDAP_BOOTSTRAP.to_string()),
        Some(text) if text.contains("://") => BootstrapLocation::Url(
            crate::http::folder_url(text).map_err(|why| err("discover.rdap_bootstrap", why))?,
        ),
        Some("") => {
            return Err(err(
                "discover.rdap_bootstrap",
                "empty: expected an https:// folder URL or a local folder".into(),
            ));
        }
        Some(path) => BootstrapLocation::Folder(resolve(Path::new(path))),
    };
    let dns_server = match raw.dns_server.as_deref().map(str::trim) {
        None => None,
        Some(text) => Some(
            host_port(text)
                .map(|()| text.to_string())
                .map_err(|why| err("discover.dns_server", why))?,
        ),
    };
    let cache_days = raw.cache_days.unwrap_or(30);
    if cache_days == 0 || cache_days > 3650 {
        return Err(err(
            "discover.cache_days",
            format!("{cache_days}: expected 1 to 3650"),
        ));
    }
    let max_lookups_per_run = raw.max_lookups_per_run.unwrap_or(200);
    // With none, an address not known yet would wait for ever and no run would settle.
    if !(1..=100_000).contains(&max_lookups_per_run) {
        return Err(err(
            "discover.max_lookups_per_run",
            format!("{max_lookups_per_run}: expected 1 to 100000"),
        ));
    }
    let mut never = Vec::new();
    for text in raw.never.unwrap_or_default() {
        let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if !is_host_name(&domain) || !domain.contains('.') {
            return Err(err(
                "discover.never",
                format!("{text:?}: expected a mail domain such as \"example.net\""),
            ));
        }
        never.push(domain);
    }
    if raw.enabled != Some(true) {
        return Ok(None);
    }
    Ok(Some(DiscoverConfig {
        rdap_bootstrap,
        abusix: raw.abusix.unwrap_or(true),
        dns_server,
        cache_days,
        max_lookups_per_run,
        never,
    }))
}

/// `host:port` with a host name, an IPv4 address or a bracketed IPv6 address, and a port.
fn host_port(text: &str) -> Result<(), String> {
    let bad = || format!("{text:?}: expected host:port, e.g. \"127.0.0.1:53\" or \"[::1]:53\"");
    let port = match text.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            after.strip_prefix(':').ok_or_else(bad)?
        }
        None => {
            let (h, p) = text.rsplit_once(':').ok_or_else(bad)?;
            if !(is_host_name(h) || h.parse::<std::net::Ipv4Addr>().is_ok()) {
                return Err(bad());
            }
            p
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// Checks `[aws_api]`: required when a provider delivers through the API.
fn aws_api(
    raw: Option<RawAwsApi>,
    providers: &[ProviderConfig],
    err: &dyn Fn(&str, String) -> ConfigError,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<AwsApiConfig>, ConfigError> {
    let user = providers
        .iter()
        .find(|p| p.delivery == Delivery::AwsAbuseApi);
    let Some(raw) = raw else {
        return match user {
            Some(p) => Err(err(
                "aws_api",
                format!(
                    "provider {:?} has delivery = \"aws-abuse-api\": add an [aws_api] section with region = \"us-east-1\"",
                    p.name
                ),
            )),
            None => Ok(None),
        };
    };
    let Some(region) = raw.region.map(|r| r.trim().to_string()) else {
        return Err(err(
            "aws_api.region",
            "missing: the AWS region to sign for, e.g. \"us-east-1\"".into(),
        ));
    };
    if region.is_empty()
        || region.len() > 32
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err(
            "aws_api.region",
            format!("{region:?}: expected a region name like \"us-east-1\""),
        ));
    }
    let endpoint = match raw.endpoint {
        None => format!("https://abuse.{region}.amazonaws.com"),
        Some(e) => {
            crate::http::parse_endpoint(&e).map_err(|why| err("aws_api.endpoint", why))?;
            // As checked: without surrounding blanks or a trailing slash.
            e.trim().trim_end_matches('/').to_string()
        }
    };
    let timeout_secs = raw.timeout_secs.unwrap_or(30);
    if timeout_secs == 0 || timeout_secs > 600 {
        return Err(err(
            "aws_api.timeout_secs",
            format!("{timeout_secs}: expected 1 to 600"),
        ));
    }
    Ok(Some(AwsApiConfig {
        region,
        endpoint,
        test: raw.test.unwrap_or(false),
        profile: raw.profile.filter(|p| !p.trim().is_empty()),
        ca_file: raw.ca_file.as_deref().map(resolve),
        timeout: Duration::from_secs(timeout_secs),
    }))
}

/// A secret that group or others can read is refused: it would not stay one.
fn refuse_readable_by_others(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let who = match mode & 0o007 {
            0 => "its group",
            _ => "others",
        };
        return Err(format!(
            "{} is open to {who} (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// What EHLO may carry: a host name, an IP, or an address literal (`[192.0.2.1]`,
/// `[IPv6:2001:db8::1]`).
fn is_helo_name(text: &str) -> bool {
    if is_host_name(text) {
        return true;
    }
    let literal = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => match inner.strip_prefix("IPv6:") {
            Some(v6) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => inner,
        },
        None => text,
    };
    literal.parse::<std::net::IpAddr>().is_ok()
}

/// A mail address as configured, its domain in ASCII: one in other letters (`bücher.example`)
/// in its `xn--` form, as mail carries it. Written raw into the headers and the envelope it
/// needs a server that takes SMTPUTF8: a relay that did not refused it, and the run stopped
/// all mail (78), the other desks' reports too.
fn mailbox(text: &str) -> Result<Mailbox, String> {
    let mailbox = text
        .parse::<Mailbox>()
        .map_err(|e| format!("{text:?} is not a mail address: {e}"))?;
    let domain = mailbox.email.domain();
    if domain.is_ascii() {
        return Ok(mailbox);
    }
    let ascii = ascii_domain(domain)
        .ok_or_else(|| format!("{text:?}: {domain:?} is no domain name (IDNA)"))?;
    let email = lettre::Address::new(mailbox.email.user(), ascii)
        .map_err(|e| format!("{text:?} is not a mail address: {e}"))?;
    Ok(Mailbox::new(mailbox.name, email))
}

/// A domain in other letters than ASCII in its `xn--` form, as mail carries it (IDNA); `None`
/// for text that is no domain name.
pub(crate) fn ascii_domain(domain: &str) -> Option<String> {
    idna::domain_to_ascii(domain)
        .ok()
        .filter(|d| d.is_ascii() && !d.is_empty())
}

/// A CIDR (`198.51.100.0/24`) or a single address.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| ipv4_of_mapped(n.trunc()))
        .map_err(|_| {
            let shown = crate::error::cut_short(text, 100);
            format!("{shown:?} is not a CIDR or IP address")
        })
}

/// A network of IPv4-mapped addresses (`::ffff:3.5.140.0/120`) as the IPv4 network it maps,
/// since an address read in that form is taken as its IPv4 address; any other as it is.
pub(crate) fn ipv4_of_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

impl ReportConfig {
    /// The domain in Message-IDs: `from`'s, in ASCII (a domain in other letters in its
    /// `xn--` form), as a Message-ID in other letters would go out as an encoded word, which
    /// is no Message-ID to any reader.
    pub fn message_id_domain(&self) -> String {
        let domain = self.from.email.domain();
        match domain.is_ascii() {
            true => domain.to_string(),
            false => ascii_domain(domain).unwrap_or_else(|| "abuse-mailer.invalid".to_string()),
        }
    }
}

impl Settings {
    /// The state database's path.
    pub fn state_db(&self) -> PathBuf {
        self.state_dir.join("state.db")
    }

    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_spelt_with_dot_dot_is_named_without_it_unless_a_link_makes_that_another_folder() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real/abuse");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(dir.path().join("real/other")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real/other"), dir.path().join("link")).unwrap();
        let plain = dir.path().join("real/other/../abuse/config.toml");
        assert_eq!(without_dot_dot(&plain), real.join("config.toml"));
        // Through the link, `..` is `real`: by name it would be `dir`, another folder.
        let linked = dir.path().join("link/../abuse/config.toml");
        assert_eq!(without_dot_dot(&linked), linked);
    }

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    const MINIMAL: &str = r#"
state_dir = "state"
timezone = "UTC"
[[source]]
path = "/var/log/messages"
[[provider]]
name = "aws"
to = ["ec2-abuse@amazon.com"]
ranges = "ranges.json"
[report]
from = "Abuse desk <abuse@example.org>"
[mail]
transport = "file"
dir = "outbox"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_relative_paths() {
        let s = load_text(MINIMAL).unwrap();
        assert!(s.state_dir.ends_with("state") && s.state_dir.is_absolute());
        assert_eq!(s.sources[0].prefixes, vec!["INPUT-DROP:".to_string()]);
        assert_eq!(s.report.sample_seconds, 5);
        assert_eq!(s.report.max_excerpt_lines, 50);
        assert_eq!(s.report.min_hits, 3);
        assert_eq!(s.report.max_age_days, 30);
        assert!(!s.report.backscatter);
        assert_eq!(s.report.redact, vec![Redact::Mac]);
        assert_eq!(s.report.max_ips_per_message, Some(1000));
        assert_eq!(s.report.max_message_bytes, 1 << 20);
        assert_eq!(s.mail.max_messages_per_run, 10);
        assert!(matches!(s.mail.transport, TransportConfig::File { .. }));
    }

    /// The parser refuses a number past its range (or a broken table header) without saying
    /// where: the error names the line and shows it, key and all.
    #[test]
    fn text_the_parser_refuses_is_named_by_its_line() {
        let line_of = |text: &str, what: &str| 1 + text.lines().position(|l| l == what).unwrap();
        let text = MINIMAL.replace("[mail]", "min_hits = 18446744073709551615\n[mail]");
        let e = load_text(&text).unwrap_err().0;
        let n = line_of(&text, "min_hits = 18446744073709551615");
        assert!(
            e.contains(&format!("config.toml: line {n} (min_hits = …)")),
            "{e}"
        );
        let text = MINIMAL.replace("[report]", "[report");
        let e = load_text(&text).unwrap_err().0;
        let n = line_of(&text, "[report");
        assert!(
            e.contains(&format!("config.toml: line {n} ([report)")),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // Numbers out of a key's range, and a key misspelt, are named by their line too, in
        // words (they were said with no line, as "64-bit integer `-1`, expected an unsigned
        // 64 bit or less integer", or as "integer as i128").
        for (line, why) in [
            (
                "min_hits = -1",
                "a negative number, where this key takes 0 or more",
            ),
            (
                "min_hits = 99999999999999999999",
                "invalid number: a whole number past 64 bits, too large to read",
            ),
            (
                "max_age_days = 99999999999",
                "a number larger than any this key takes",
            ),
            (
                "min_hits = 18446744073709551615",
                "a number larger than any this key takes",
            ),
            ("bogus_key = 1", "unknown field `bogus_key`"),
        ] {
            let text = MINIMAL.replace("[mail]", &format!("{line}\n[mail]"));
            let e = load_text(&text).unwrap_err().0;
            let (key, _) = line.split_once(" = ").unwrap();
            let n = line_of(&text, line);
            assert!(
                e.contains(&format!("config.toml: line {n} ({key} = …): {why}")),
                "{e}"
            );
        }
        // A long value of another type: the line and the key, not the value cut short before
        // the key was named.
        let long = format!("min_hits = \"{}\"", "x".repeat(3000));
        let text = MINIMAL.replace("[mail]", &format!("{long}\n[mail]"));
        let e = load_text(&text).unwrap_err().0;
        let n = line_of(&text, &long);
        assert!(
            e.contains(&format!(
                "config.toml: line {n} (min_hits = …): invalid type"
            )),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
    }

    /// An empty folder path would put the state, read templates or write messages beside
    /// the configuration, unasked.
    #[test]
    fn an_empty_folder_path_is_refused() {
        let e =
            load_text(&MINIMAL.replace("state_dir = \"state\"", "state_dir = \"\"")).unwrap_err();
        assert!(e.0.contains("state_dir: empty"), "{e}");
        let e =
            load_text(&MINIMAL.replace("[report]", "[report]\ntemplates_dir = \"\"")).unwrap_err();
        assert!(e.0.contains("report.templates_dir: empty"), "{e}");
        let file = MINIMAL.replace("dir = \"outbox\"", "dir = \"\"");
        let e = load_text(&file).unwrap_err();
        assert!(e.0.contains("mail.dir: empty"), "{e}");
        // An empty program path named the configuration's folder, "…/: not a file".
        let sendmail = MINIMAL.replace(
            "transport = \"file\"",
            "transport = \"sendmail\"\nsendmail_path = \"\"",
        );
        assert_ne!(sendmail, MINIMAL);
        let e = load_text(&sendmail).unwrap_err();
        assert!(e.0.contains("mail.sendmail_path: empty"), "{e}");
    }

    /// A domain in other letters goes out in its `xn--` form, in the headers and the envelope
    /// alike: raw, it needed a server that takes SMTPUTF8, and a relay that did not stopped
    /// every report of the run.
    #[test]
    fn addresses_in_other_letters_go_out_in_ascii() {
        let text = MINIMAL
            .replace(
                "Abuse desk <abuse@example.org>",
                "Abuse <abuse@exämple.org>",
            )
            .replace("ec2-abuse@amazon.com", "abuse@bücher.example");
        assert_ne!(text, MINIMAL);
        let s = load_text(&text).unwrap();
        assert_eq!(s.report.from.email.to_string(), "abuse@xn--exmple-cua.org");
        assert_eq!(s.report.from.name.as_deref(), Some("Abuse"));
        let to: Vec<String> = (s.providers.iter())
            .flat_map(|p| p.to.iter().map(|m| m.email.to_string()))
            .collect();
        assert!(
            to.contains(&"abuse@xn--bcher-kva.example".to_string()),
            "{to:?}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[mail]", "[mail]\nhots = \"x\"");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("hots"), "{e}");
        assert!(e.contains("config.toml"), "{e}");
    }

    #[test]
    fn a_budget_of_no_message_is_refused() {
        let text = MINIMAL.replace("[mail]", "[mail]\nmax_messages_per_run = 0");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("mail.max_messages_per_run"), "{e}");
        let text = MINIMAL.replace("[mail]", "[mail]\nmax_messages_per_run = 1");
        assert_eq!(load_text(&text).unwrap().mail.max_messages_per_run, 1);
        let text = MINIMAL.replace("[report]", "[report]\nmax_message_bytes = 4294967295");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("report.max_message_bytes"), "{e}");
    }

    /// A provider's name is part of each report's id, which names its file in `mail.dir`: a
    /// name of a few hundred characters made every send fail as temporary, run after run,
    /// while `check` said it was fine.
    #[test]
    fn a_provider_name_too_long_for_a_report_id_is_refused() {
        let long = "a".repeat(MAX_FILE_PROVIDER_NAME + 1);
        let text = MINIMAL.replace("name = \"aws\"", &format!("name = \"{long}\""));
        let e = load_text(&text).unwrap_err().0;
        assert!(
            e.contains("provider[0].name") && e.contains("at most 200"),
            "{e}"
        );
        let text = MINIMAL.replace("name = \"aws\"", &format!("name = \"{}\"", &long[1..]));
        assert_eq!(load_text(&text).unwrap().providers[0].name.len(), 200);
        // Over SMTP no file is named by it: a name that worked there goes on working.
        let smtp = text.replace(&long[1..], &long).replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"smtp\"\nhost = \"mail.example.org\"",
        );
        assert_eq!(load_text(&smtp).unwrap().providers[0].name.len(), 201);
    }

    #[test]
    fn wrong_type_is_named() {
        let text = MINIMAL.replace("[report]", "[report]\nmin_hits = \"many\"");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("min_hits"), "{e}");
        // A key in a list of tables is named with its dot (the parser says `provider[0]to`).
        let text = MINIMAL.replace(
            "to = [\"ec2-abuse@amazon.com\"]",
            "to = \"ec2-abuse@amazon.com\"",
        );
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("`provider[0].to`"), "{e}");
    }

    /// A file's value of another type than its key's was converted where it could be: a
    /// fraction rounded (`max_age_days = 0.4` read as 0, which is no limit), `"yes"` or `1`
    /// read as true, a number as a folder's name or a password. Each is refused naming its
    /// line and key, the value left out (it may be a password); the environment's text is
    /// still read as the key's type.
    #[test]
    fn a_file_value_of_another_type_is_refused_not_converted() {
        for (section, line, key) in [
            ("[report]", "max_age_days = 0.4", "max_age_days"),
            ("[report]", "min_hits = 2.6", "min_hits"),
            ("[report]", "xarf = \"yes\"", "xarf"),
            ("[report]", "attach_csv = 0", "attach_csv"),
            ("[mail]", "password = 918273645546372819283746", "password"),
            ("[mail]", "password = 1234", "password"),
            ("[[provider]]", "asns = [true]", "asns"),
            ("[[provider]]", "asns = [14617.6]", "asns"),
        ] {
            let text = MINIMAL.replace(section, &format!("{section}\n{line}"));
            let e = load_text(&text).unwrap_err().0;
            assert!(e.contains(&format!("({key} = …): invalid")), "{line}: {e}");
            let value = line
                .split(" = ")
                .nth(1)
                .unwrap()
                .trim_matches(['[', ']', '"']);
            // The reason, after the file's name (a temporary one here, which may hold any
            // digit) and the line's number.
            let said = e.split_once(" = …): ").unwrap().1;
            assert!(!said.contains(value), "{line}: the value is shown: {e}");
        }
        let text = MINIMAL.replace("state_dir = \"state\"", "state_dir = 5");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("(state_dir = …): invalid type"), "{e}");
        let s = load_env(
            MINIMAL,
            &[
                ("ABUSE_MAILER__REPORT__MAX_AGE_DAYS", "3"),
                ("ABUSE_MAILER__REPORT__XARF", "true"),
                ("ABUSE_MAILER__MAIL__PASSWORD", "0123"),
            ],
        )
        .unwrap();
        assert_eq!(s.report.max_age_days, 3);
        assert!(s.report.xarf);
    }

    /// A configuration path that names a pipe (`--config <(cat config.toml)`) or a folder
    /// is said to be one: it was "not found", though it was there.
    #[test]
    fn a_config_path_that_is_no_file_is_said_to_be_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let said = |path: &Path| {
            load_with(path, Some(std::collections::HashMap::new()))
                .unwrap_err()
                .0
        };
        if made.is_ok_and(|s| s.success()) {
            assert!(
                said(&fifo).contains("not a regular file (a FIFO)"),
                "{}",
                said(&fifo)
            );
        }
        assert!(said(dir.path()).contains("not a regular file (a directory)"));
        assert!(said(&dir.path().join("none.toml")).contains("not found"));
    }

    fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        // The process environment holds no password here, so the file must be private.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load_with(&path, Some(env))
    }

    /// A value from an `ABUSE_MAILER__…` variable that the checks or the parser refuse was
    /// said to be the file's (`config.toml: mail.transport: …`), a file that holds no such
    /// value: the error names the variable.
    #[test]
    fn a_bad_value_from_the_environment_names_the_variable_not_the_file() {
        for (var, value, about) in [
            (
                "ABUSE_MAILER__MAIL__TRANSPORT",
                "carrier-pigeon",
                "mail.transport",
            ),
            ("ABUSE_MAILER__MAIL__PORT", "99999", "mail.port"),
            ("ABUSE_MAILER__TIMEZONE", "Mars/Base", "timezone"),
            ("abuse_mailer__report__min_hits", "abc", "report.min_hits"),
        ] {
            let e = load_env(MINIMAL, &[(var, value)]).unwrap_err().0;
            assert!(e.starts_with(&format!("{var}: ")), "{e}");
            assert!(e.contains(about), "{e}");
        }
        // A name of no setting's shape: named, with the shape (it blamed the file).
        for var in [
            "ABUSE_MAILER__REPORT__MIN_HITS__X",
            "ABUSE_MAILER__REPORT__",
            "ABUSE_MAILER____",
            "abuse_mailer__mail__port__",
        ] {
            let e = load_env(MINIMAL, &[(var, "5")]).unwrap_err().0;
            assert!(
                e.starts_with(&format!("{var}: not a setting's name")),
                "{e}"
            );
        }
        // The file's own bad value still names the file.
        let text = MINIMAL.replace("transport = \"file\"", "transport = \"pigeon\"");
        let e = load_env(&text, &[("ABUSE_MAILER__MAIL__PORT", "25")])
            .unwrap_err()
            .0;
        assert!(e.contains("config.toml: mail.transport"), "{e}");
    }

    /// The merged reading took `yes`, `on` and `true` for 1 and their opposites for 0, so
    /// `ABUSE_MAILER__REPORT__MIN_HITS=yes` lowered `min_hits` to 1 without a word, where
    /// `min_hits = true` in the file is refused. A key that wants a yes/no word still takes
    /// every spelling of one, and a key that wants text takes the word as text.
    #[test]
    fn a_yes_no_word_for_a_number_from_the_environment_is_refused() {
        for (var, value) in [
            ("ABUSE_MAILER__REPORT__MIN_HITS", "yes"),
            ("ABUSE_MAILER__REPORT__MIN_HITS", "Off"),
            ("abuse_mailer__mail__port", "on"),
            ("ABUSE_MAILER__REPORT__MAX_EXCERPT_LINES", "false"),
            ("ABUSE_MAILER__REPORT__REREPORT_AFTER_DAYS", "true"),
        ] {
            let e = load_env(MINIMAL, &[(var, value)]).unwrap_err().0;
            assert!(e.starts_with(&format!("{var}: ")), "{e}");
            assert!(e.contains("expected an integer"), "{e}");
        }
        for word in ["yes", "on", "true", "no", "off", "false"] {
            let s = load_env(MINIMAL, &[("ABUSE_MAILER__REPORT__XARF", word)]).unwrap();
            assert_eq!(
                s.report.xarf,
                ["yes", "on", "true"].contains(&word),
                "{word}"
            );
        }
        // A negative number for a key that takes 0 or more, in the file's words (it was "a
        // string, expected an integer").
        for var in [
            "ABUSE_MAILER__REPORT__MIN_HITS",
            "ABUSE_MAILER__REPORT__MAX_EXCERPT_LINES",
        ] {
            let e = load_env(MINIMAL, &[(var, "-1")]).unwrap_err().0;
            assert!(
                e.starts_with(&format!(
                    "{var}: a negative number, where this key takes 0 or more"
                )),
                "{e}"
            );
        }
        let s = load_env(MINIMAL, &[("ABUSE_MAILER__STATE_DIR", "yes")]).unwrap();
        assert!(s.state_dir.ends_with("yes"), "{:?}", s.state_dir);
        let s = load_env(MINIMAL, &[("ABUSE_MAILER__REPORT__MIN_HITS", "4")]).unwrap();
        assert_eq!(s.report.min_hits, 4);
    }

    #[test]
    fn a_list_key_set_from_the_environment_names_the_variable_not_the_file() {
        for var in [
            "ABUSE_MAILER__SOURCE__PATH",
            "ABUSE_MAILER__PROVIDER__0__NAME",
        ] {
            let e = load_env(MINIMAL, &[(var, "x")]).unwrap_err().0;
            assert!(e.starts_with(var), "{e}");
            assert!(e.contains("cannot be set from the environment"), "{e}");
        }
    }

    /// A network written in IPv4-mapped form is the IPv4 network, as addresses read in that
    /// form are their IPv4 addresses; other IPv6 networks stay as they are.
    #[test]
    fn an_ipv4_mapped_network_is_read_as_the_ipv4_network() {
        for (given, read) in [
            ("::ffff:3.5.140.2", "3.5.140.2/32"),
            ("::ffff:3.5.140.7/120", "3.5.140.0/24"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
            ("::ffff:0:0/95", "::fffe:0:0/95"),
            ("2600:1f14::/35", "2600:1f14::/35"),
        ] {
            assert_eq!(parse_net(given).unwrap().to_string(), read, "{given}");
        }
    }

    /// The keys that take a list read one from the environment, as a TOML array or between
    /// commas; a value that is neither is refused naming the variable.
    #[test]
    fn list_keys_are_read_from_the_environment() {
        let text = MINIMAL.replace("[report]", "[report]\nignore = [\"192.0.2.0/24\"]");
        for given in [
            "[\"34.223.47.190\", \"198.51.100.0/24\"]",
            "34.223.47.190, 198.51.100.0/24",
        ] {
            let s = load_env(
                &text,
                &[
                    ("ABUSE_MAILER__REPORT__IGNORE", given),
                    ("abuse_mailer__report__redact", "MAC,DST"),
                    ("ABUSE_MAILER__REPORT__CC", "noc@example.org"),
                ],
            )
            .unwrap();
            let ignored: Vec<String> = s.report.ignore.iter().map(|n| n.to_string()).collect();
            assert_eq!(ignored, ["34.223.47.190/32", "198.51.100.0/24"], "{given}");
            assert_eq!(s.report.redact, [Redact::Mac, Redact::Dst]);
            assert_eq!(s.report.cc.len(), 1);
        }
        // `[]` empties the file's list; empty text (a template that left the value out) is
        // refused rather than silently reporting what `ignore` held.
        let s = load_env(&text, &[("ABUSE_MAILER__REPORT__IGNORE", "[]")]).unwrap();
        assert!(s.report.ignore.is_empty());
        let e = load_env(&text, &[("ABUSE_MAILER__REPORT__IGNORE", " ")])
            .unwrap_err()
            .0;
        assert!(e.starts_with("ABUSE_MAILER__REPORT__IGNORE: empty"), "{e}");
        let e = load_env(&text, &[("ABUSE_MAILER__REPORT__IGNORE", " , ")])
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("ABUSE_MAILER__REPORT__IGNORE: no values"),
            "{e}"
        );
        let e = load_env(&text, &[("ABUSE_MAILER__REPORT__IGNORE", "[1, 2]")])
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("ABUSE_MAILER__REPORT__IGNORE: not a list"),
            "{e}"
        );
        // A comma inside quotes is part of the value; a value the checks refuse names the
        // variable, not the file.
        let s = load_env(
            &text,
            &[(
                "ABUSE_MAILER__REPORT__CC",
                "\"NOC, Example\" <noc@example.org>, x@example.org",
            )],
        )
        .unwrap();
        assert_eq!(s.report.cc.len(), 2);
        let e = load_env(&text, &[("ABUSE_MAILER__REPORT__CC", "not an address")])
            .unwrap_err()
            .0;
        assert!(e.starts_with("ABUSE_MAILER__REPORT__CC: report.cc"), "{e}");
        // Two spellings of one variable: neither is sure to win.
        let e = load_env(
            &text,
            &[
                ("ABUSE_MAILER__REPORT__IGNORE", "192.0.2.1"),
                ("abuse_mailer__report__ignore", "192.0.2.2"),
            ],
        )
        .unwrap_err()
        .0;
        assert!(e.contains("both set report.ignore"), "{e}");
    }

    #[test]
    fn environment_password_is_taken_verbatim() {
        let text = MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"smtp\"\nhost = \"127.0.0.1\"\nusername = \"u\"",
        );
        for value in [
            "0123",
            "1e3",
            "12345678901234567890123",
            "true",
            "-0",
            " 7 ",
        ] {
            let s = load_env(&text, &[("ABUSE_MAILER__MAIL__PASSWORD", value)]).unwrap();
            let TransportConfig::Smtp(c) = s.mail.transport else {
                panic!("smtp")
            };
            assert_eq!(c.password.unwrap().expose(), value);
        }
    }

    #[test]
    fn environment_numbers_and_flags_still_parse() {
        let text = MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"smtp\"\nhost = \"127.0.0.1\"",
        );
        let s = load_env(
            &text,
            &[
                ("ABUSE_MAILER__MAIL__PORT", "2525"),
                ("ABUSE_MAILER__MAIL__HOST", "0123"),
                ("ABUSE_MAILER__REPORT__XARF", "true"),
                ("ABUSE_MAILER__REPORT__SAMPLE_SECONDS", "9"),
            ],
        )
        .unwrap();
        let TransportConfig::Smtp(c) = &s.mail.transport else {
            panic!("smtp")
        };
        assert_eq!((c.port, c.host.as_str()), (2525, "0123"));
        assert!(s.report.xarf);
        assert_eq!(s.report.sample_seconds, 9);
        let e = load_env(&text, &[("ABUSE_MAILER__MAIL__PORT", "twenty")]).unwrap_err();
        assert!(e.0.contains("port"), "{e}");
    }

    #[test]
    fn a_misspelt_environment_variable_is_named_not_the_file() {
        let e = load_env(MINIMAL, &[("ABUSE_MAILER__MAIL__PASWORD", "x")]).unwrap_err();
        assert!(e.0.starts_with("ABUSE_MAILER__MAIL__PASWORD: "), "{e}");
        assert!(e.0.contains("pasword"), "{e}");
        // A misspelt section, the key right.
        let e = load_env(MINIMAL, &[("ABUSE_MAILER__REPROT__MIN_HITS", "3")]).unwrap_err();
        assert!(e.0.starts_with("ABUSE_MAILER__REPROT__MIN_HITS: "), "{e}");
        let e = load_text(&MINIMAL.replace("[mail]", "[mail]\nhots = \"x\"")).unwrap_err();
        assert!(
            e.0.contains("config.toml"),
            "a key in the file names the file: {e}"
        );
    }

    #[test]
    fn syntax_error_never_shows_the_password() {
        let text = MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"smtp\"\nusername = \"u\"\npassword = \"hunter2-secret",
        );
        let e = load_text(&text).unwrap_err().0;
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 15"), "the position is kept: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn bad_address_names_the_key() {
        let text = MINIMAL.replace("ec2-abuse@amazon.com", "not an address");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("provider[0].to"), "{e}");
    }

    #[test]
    fn missing_report_from_is_named() {
        let text = MINIMAL.replace("from = \"Abuse desk <abuse@example.org>\"", "");
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("from"), "{e}");
    }

    /// A desk's address in `cc` would get every provider's reports: refused, in any case.
    #[test]
    fn a_desks_address_in_cc_is_refused() {
        let text = MINIMAL.replace("[report]", "[report]\ncc = [\"EC2-Abuse@Amazon.com\"]");
        let e = load_text(&text).unwrap_err().0;
        assert!(
            e.contains("report.cc") && e.contains("\"aws\"'s desk"),
            "{e}"
        );
        let text = MINIMAL.replace("[report]", "[report]\ncc = [\"noc@example.org\"]");
        assert!(load_text(&text).is_ok());
    }

    /// A `from` in other letters than ASCII (a relay with SMTPUTF8 takes it) gives Message-IDs
    /// in ASCII: the domain in its `xn--` form, never an encoded word no reader takes.
    #[test]
    fn message_ids_of_a_from_in_other_letters_are_ascii() {
        let text = MINIMAL.replace("<abuse@example.org>", "<jöhn@exämple.org>");
        let settings = load_text(&text).unwrap();
        assert_eq!(settings.report.message_id_domain(), "xn--exmple-cua.org");
        let plain = load_text(MINIMAL).unwrap();
        assert_eq!(plain.report.message_id_domain(), "example.org");
    }

    #[test]
    fn password_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret-value\n").unwrap();
        let text = MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            &format!(
                "transport = \"smtp\"\nusername = \"u\"\npassword_file = \"{}\"",
                pw.display()
            ),
        );
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_text(&text).unwrap_err().0;
        assert!(
            e.contains("mail.password_file") && e.contains("open to others"),
            "{e}"
        );
        assert!(!e.contains("secret-value"));
        // Its group alone (0640, the adm group's mode for logs): said as that.
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_text(&text).unwrap_err().0;
        assert!(e.contains("open to its group (mode 640)"), "{e}");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = load_text(&text).unwrap();
        match s.mail.transport {
            TransportConfig::Smtp(c) => assert_eq!(c.password.unwrap().expose(), "secret-value"),
            _ => panic!("smtp"),
        }
    }

    fn smtp(lines: &str) -> Result<Settings, ConfigError> {
        load_text(&MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            &format!("transport = \"smtp\"\n{lines}"),
        ))
    }

    #[test]
    fn clear_text_login_to_a_remote_host_is_refused() {
        let e = smtp("host = \"mail.example.org\"\nusername = \"u\"")
            .unwrap_err()
            .0;
        assert!(
            e.contains("mail.security") && e.contains("clear text"),
            "{e}"
        );
        for host in ["localhost", "127.0.0.1", "127.8.9.10", "::1", "LOCALHOST."] {
            smtp(&format!("host = \"{host}\"\nusername = \"u\""))
                .unwrap_or_else(|e| panic!("{host}: {}", e.0));
        }
        smtp("host = \"mail.example.org\"\nsecurity = \"starttls\"\nusername = \"u\"").unwrap();
        smtp("host = \"mail.example.org\"").unwrap();
    }

    #[test]
    fn helo_name_with_crlf_is_refused() {
        for bad in [
            "a.example\\r\\nRCPT TO:<y@evil.test>",
            "two words",
            "-lead.example",
            "",
            "[999.1.1.1]",
        ] {
            let e = smtp(&format!("helo_name = \"{bad}\"")).unwrap_err().0;
            assert!(e.contains("mail.helo_name"), "{bad}: {e}");
        }
        for good in [
            "mail.example.org",
            "web1",
            "192.0.2.1",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            smtp(&format!("helo_name = \"{good}\"")).unwrap_or_else(|e| panic!("{good}: {}", e.0));
        }
    }

    #[test]
    fn protocol_values_are_checked() {
        let e = smtp("host = \"mail.example.org\\r\\n\"").unwrap_err().0;
        assert!(e.contains("mail.host"), "{e}");
        smtp("host = \"smtp_relay\"").unwrap();
        let e = smtp("username = \"u\\u0000x\"").unwrap_err().0;
        assert!(e.contains("mail.username"), "{e}");
        let e = smtp("port = 0").unwrap_err().0;
        assert!(e.contains("mail.port"), "{e}");
        for t in ["0", "3601"] {
            let e = smtp(&format!("timeout_secs = {t}")).unwrap_err().0;
            assert!(e.contains("mail.timeout_secs"), "{e}");
        }
    }

    #[test]
    fn a_password_with_a_control_character_is_refused_unshown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let text = MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"smtp\"\nusername = \"u\"\npassword = \"hun\\u0000ter2\"",
        );
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load(&path).unwrap_err().0;
        assert!(e.contains("mail.password") && !e.contains("ter2"), "{e}");
    }

    #[test]
    fn sendmail_gets_the_mail_timeout() {
        let s = load_text(&MINIMAL.replace(
            "transport = \"file\"\ndir = \"outbox\"",
            "transport = \"sendmail\"\ntimeout_secs = 7",
        ))
        .unwrap();
        match s.mail.transport {
            TransportConfig::Sendmail { timeout, .. } => assert_eq!(timeout.as_secs(), 7),
            _ => panic!("sendmail"),
        }
    }

    #[test]
    fn secret_debug_hides_the_password() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    fn discover(lines: &str) -> Result<Settings, ConfigError> {
        load_text(&format!("{MINIMAL}\n[discover]\n{lines}\n"))
    }

    #[test]
    fn discover_is_off_unless_enabled() {
        assert!(load_text(MINIMAL).unwrap().discover.is_none());
        assert!(discover("abusix = false").unwrap().discover.is_none());
        assert!(discover("enabled = false").unwrap().discover.is_none());
        let d = discover("enabled = true").unwrap().discover.unwrap();
        assert_eq!(
            d,
            DiscoverConfig {
                rdap_bootstrap: BootstrapLocation::Url(DEFAULT_RDAP_BOOTSTRAP.into()),
                abusix: true,
                dns_server: None,
                cache_days: 30,
                max_lookups_per_run: 200,
                never: vec![],
            }
        );
    }

    #[test]
    fn discover_keys_are_checked() {
        let d = discover(
            "enabled = true\nrdap_bootstrap = \"http://127.0.0.1:8080/rdap\"\nabusix = false\n\
             dns_server = \"[::1]:5353\"\ncache_days = 7\nmax_lookups_per_run = 1\n\
             never = [\"Example.NET.\"]",
        )
        .unwrap()
        .discover
        .unwrap();
        assert_eq!(
            d.rdap_bootstrap,
            BootstrapLocation::Url("http://127.0.0.1:8080/rdap/".into())
        );
        assert_eq!(d.dns_server.as_deref(), Some("[::1]:5353"));
        assert_eq!(
            (d.abusix, d.cache_days, d.max_lookups_per_run),
            (false, 7, 1)
        );
        assert_eq!(d.never, ["example.net"]);
        let folder = discover("enabled = true\nrdap_bootstrap = \"bootstrap\"")
            .unwrap()
            .discover
            .unwrap();
        assert!(
            matches!(&folder.rdap_bootstrap, BootstrapLocation::Folder(p) if p.is_absolute() && p.ends_with("bootstrap"))
        );
        for (line, key) in [
            ("rdap_bootstrap = \"http://rdap.example.net/\"", "loopback"),
            ("rdap_bootstrap = \"ftp://x/\"", "discover.rdap_bootstrap"),
            (
                "rdap_bootstrap = \"https://u@x/\"",
                "discover.rdap_bootstrap",
            ),
            (
                "rdap_bootstrap = \"https://x/?a=b\"",
                "discover.rdap_bootstrap",
            ),
            ("dns_server = \"127.0.0.1\"", "discover.dns_server"),
            ("dns_server = \"::1:53\"", "discover.dns_server"),
            ("dns_server = \"127.0.0.1:0\"", "discover.dns_server"),
            ("cache_days = 0", "discover.cache_days"),
            ("never = [\"not a domain\"]", "discover.never"),
            ("never = [\"localhost\"]", "discover.never"),
            ("ttl = 3", "ttl"),
        ] {
            // Checked even while disabled.
            let e = discover(line).unwrap_err().0;
            assert!(e.contains(key), "{line}: {e}");
        }
        for ok in [
            "resolver.example.net:53",
            "192.0.2.1:5353",
            "[2001:db8::1]:53",
        ] {
            discover(&format!("enabled = true\ndns_server = \"{ok}\""))
                .unwrap_or_else(|e| panic!("{ok}: {}", e.0));
        }
    }
}
