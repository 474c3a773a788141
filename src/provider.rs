//! Providers and their published IP ranges: loading range files (AWS `ip-ranges.json`, or one
//! CIDR a line) and answering "which provider's range holds this IP, and what does the file say
//! about that range" without a linear scan.
//!
//! Lookups go through a flat routing table: the ranges cut into disjoint spans, each naming
//! the most specific range that covers it, sorted, so that a lookup is one binary search
//! whatever the prefix lengths (a file of 25 lengths cost 25 hash probes per address missed,
//! and a flood of spoofed sources is mostly misses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::config::{ProviderConfig, RangeFormat};

/// What a provider's range file says about one of its prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeInfo {
    pub prefix: IpNet,
    pub region: Option<String>,
    /// The services the file lists for this prefix (AWS lists a prefix once per service).
    pub services: Vec<String>,
    pub network_border_group: Option<String>,
}

impl RangeInfo {
    /// Its words as reports show them and `services` and `regions` match them: one line,
    /// cleaned as log text is (no control characters, line breaks or bidirectional marks),
    /// at most [`MAX_WORD`] characters. A range file is outside input like a log.
    fn tidied(mut self) -> Self {
        fn tidy(word: String) -> Option<String> {
            let plain = word.len() <= MAX_WORD && word.bytes().all(|b| (0x20..0x7f).contains(&b));
            let word = match plain {
                true => word,
                false => crate::excerpt::clean_line(&word, MAX_WORD),
            };
            (!word.trim().is_empty()).then_some(word)
        }
        self.region = self.region.and_then(tidy);
        self.network_border_group = self.network_border_group.and_then(tidy);
        self.services = self.services.into_iter().filter_map(tidy).collect();
        self
    }
}

/// The longest region, service or border group name shown; AWS's longest are near 30.
const MAX_WORD: usize = 100;

/// A set of prefixes with longest-prefix-match lookup.
#[derive(Debug, Default)]
pub struct RangeTable {
    v4: Spans,
    v6: Spans,
    infos: Vec<RangeInfo>,
}

/// Disjoint spans of addresses, ascending, each with the index into `infos` of the most
/// specific range covering it; addresses between spans are in no range.
#[derive(Debug, Default)]
struct Spans {
    starts: Vec<u128>,
    /// Inclusive.
    ends: Vec<u128>,
    infos: Vec<usize>,
}

impl Spans {
    /// From prefixes as (first, last address, index): prefixes nest or are apart, so a
    /// sweep with the prefixes that hold the current address, innermost last, cuts them.
    fn new(mut ranges: Vec<(u128, u128, usize)>) -> Self {
        // Wider first where two start together: the narrower lies inside it.
        ranges.sort_by_key(|&(first, last, _)| (first, std::cmp::Reverse(last)));
        let mut spans = Spans::default();
        let mut open: Vec<(u128, usize)> = Vec::new();
        // The first address not yet given to a span; None once the top address is.
        let mut next = Some(0u128);
        for (first, last, info) in ranges {
            while let Some(&(end, outer)) = open.last() {
                if end >= first {
                    break;
                }
                next = spans.push(next, end, outer);
                open.pop();
            }
            if let Some(&(_, outer)) = open.last()
                && first > 0
            {
                next = spans.push(next, first - 1, outer);
            }
            next = next.map(|n| n.max(first));
            open.push((last, info));
        }
        while let Some((end, outer)) = open.pop() {
            next = spans.push(next, end, outer);
        }
        spans
    }

    /// Gives the addresses from `from` to `to` to `info`; returns the address after them.
    fn push(&mut self, from: Option<u128>, to: u128, info: usize) -> Option<u128> {
        let from = from?;
        if from > to {
            return Some(from);
        }
        self.starts.push(from);
        self.ends.push(to);
        self.infos.push(info);
        to.checked_add(1)
    }

    /// The first value both hold: the spans of each are apart and ascending, so one walk.
    fn first_shared(&self, other: &Spans) -> Option<u128> {
        let (mut i, mut j) = (0, 0);
        while i < self.starts.len() && j < other.starts.len() {
            if self.ends[i] < other.starts[j] {
                i += 1;
            } else if other.ends[j] < self.starts[i] {
                j += 1;
            } else {
                return Some(self.starts[i].max(other.starts[j]));
            }
        }
        None
    }

    fn get(&self, value: u128) -> Option<usize> {
        let i = self
            .starts
            .partition_point(|&s| s <= value)
            .checked_sub(1)?;
        (value <= self.ends[i]).then(|| self.infos[i])
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(value: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let keep = u32::from(width - len);
        (value >> keep) << keep
    }
}

/// The last address of the prefix of length `len` starting at `first`.
fn last_of(first: u128, len: u8, width: u8) -> u128 {
    let host = u32::from(width - len);
    let ones = if host == 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    first | ones
}

impl RangeTable {
    /// Builds the table; a prefix listed twice keeps its first metadata and merges services.
    pub fn new(infos: impl IntoIterator<Item = RangeInfo>) -> Self {
        let mut table = RangeTable::default();
        let mut index: HashMap<IpNet, usize> = HashMap::new();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for info in infos {
            let prefix = info.prefix.trunc();
            if let Some(&i) = index.get(&prefix) {
                let existing = &mut table.infos[i];
                for s in info.services {
                    if !existing.services.contains(&s) {
                        existing.services.push(s);
                    }
                }
                continue;
            }
            let i = table.infos.len();
            index.insert(prefix, i);
            table.infos.push(RangeInfo { prefix, ..info });
            let (ranges, width) = match prefix {
                IpNet::V4(_) => (&mut v4, 32),
                IpNet::V6(_) => (&mut v6, 128),
            };
            let len = prefix.prefix_len();
            let first = mask(bits(prefix.addr()), len, width);
            ranges.push((first, last_of(first, len, width), i));
        }
        table.v4 = Spans::new(v4);
        table.v6 = Spans::new(v6);
        for info in &mut table.infos {
            info.services.sort();
        }
        table
    }

    /// The most specific range holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&RangeInfo> {
        let ip = canonical(ip);
        let spans = match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        };
        spans.get(bits(ip)).map(|i| &self.infos[i])
    }

    /// An address both tables hold, the lowest (IPv4 first), if they share any.
    pub fn first_shared(&self, other: &RangeTable) -> Option<IpAddr> {
        if let Some(v4) = self.v4.first_shared(&other.v4) {
            return u32::try_from(v4)
                .ok()
                .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a)));
        }
        (self.v6.first_shared(&other.v6)).map(|a| IpAddr::from(std::net::Ipv6Addr::from(a)))
    }

    pub fn len(&self) -> usize {
        self.infos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    pub fn infos(&self) -> &[RangeInfo] {
        &self.infos
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 host they name.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A configured provider with its ranges loaded.
#[derive(Debug)]
pub struct Provider {
    pub config: ProviderConfig,
    pub ranges: RangeTable,
    pub format: RangeFormat,
    /// Ranges of the file left out by `services`, `regions` or `exclude_regions`: addresses
    /// in them are not this provider's, even when their AS is.
    pub excluded: RangeTable,
    /// Names in `exclude_regions` that are no region of the file, far from all of them (a
    /// region left out beforehand): they exclude nothing.
    pub unmatched_exclusions: Vec<String>,
}

impl Provider {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Loads the provider's range file.
    pub fn load(config: &ProviderConfig) -> Result<Self> {
        let context = || {
            format!(
                "provider {}: ranges {}",
                config.name,
                config.ranges.as_deref().unwrap_or(Path::new("")).display()
            )
        };
        let (format, listings, other_services) = match &config.ranges {
            Some(path) => {
                load_listings(path, config.format, &config.services).with_context(context)?
            }
            // Matched by ASN only.
            None => (RangeFormat::Cidr, Vec::new(), Vec::new()),
        };
        // A wanted region the file does not name keeps nothing of it; an excluded one that is
        // a misspelling (`cn-north1`) keeps the region the operator left out, unsaid. One
        // far from every name is left out beforehand (Azure China, not in the public file):
        // `check` says it excludes nothing.
        let all = || listings.iter().chain(&other_services);
        let mut unmatched_exclusions = Vec::new();
        for (key, names) in [
            ("regions", &config.regions),
            ("exclude_regions", &config.exclude_regions),
        ] {
            for (unknown, nearest) in unknown_regions(names, all()) {
                // A file that names no regions (one CIDR a line) has nothing to misspell.
                let misspelt = nearest.as_ref().is_some_and(|n| n.edits <= MISSPELT);
                if key == "exclude_regions" && !misspelt {
                    unmatched_exclusions.push(unknown);
                    continue;
                }
                let why = match nearest {
                    Some(n) => format!(
                        "{key}: {unknown:?} is no region of this file (the nearest it names is {:?})",
                        n.name
                    ),
                    None => format!("{key}: {unknown:?}: this file names no regions"),
                };
                return Err(anyhow::Error::msg(why)).with_context(context);
            }
        }
        let (ranges, excluded) = if config.regions.is_empty() && config.exclude_regions.is_empty() {
            (RangeTable::new(listings), RangeTable::new(other_services))
        } else {
            let (kept, mut left_out) =
                by_region(listings, &config.regions, &config.exclude_regions);
            if kept.is_empty() {
                return Err(anyhow::anyhow!(
                    "no prefixes left after regions / exclude_regions"
                ))
                .with_context(context);
            }
            left_out.extend(other_services);
            (RangeTable::new(kept), RangeTable::new(left_out))
        };
        Ok(Provider {
            config: config.clone(),
            ranges,
            format,
            excluded,
            unmatched_exclusions,
        })
    }

    /// Whether `ip` is this provider's: in its ranges, or originated by one of its ASNs, and
    /// not in a region the configuration leaves out.
    pub fn matches(&self, ip: IpAddr, asn: Option<u32>) -> bool {
        if self.lookup(ip).is_some() {
            return true;
        }
        self.excluded.lookup(ip).is_none() && asn.is_some_and(|a| self.config.asns.contains(&a))
    }

    /// The provider's range holding `ip`, if any.
    pub fn lookup(&self, ip: IpAddr) -> Option<&RangeInfo> {
        self.ranges.lookup(ip)
    }
}

/// An excluded name this many edits or fewer from a region of the file is taken for a
/// misspelling of it (`cn-north1`, `eu-west3`, `useast`).
const MISSPELT: usize = 2;

/// A region of the file, with how far a name is from it.
#[derive(Debug, PartialEq)]
struct Nearest {
    name: String,
    edits: usize,
}

/// Each of `names` that no listing's region is (letter case aside), with the region of the
/// file nearest to it: the one that shares the longest start with it (Azure's file writes
/// `germanywc` for `germanywestcentral`), then the fewest edits away.
fn unknown_regions<'a>(
    names: &[String],
    listings: impl Iterator<Item = &'a RangeInfo>,
) -> Vec<(String, Option<Nearest>)> {
    if names.is_empty() {
        return Vec::new();
    }
    let known: std::collections::BTreeSet<String> = listings
        .filter_map(|i| i.region.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    let shared = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (names.iter())
        .filter(|n| !known.contains(&n.to_ascii_lowercase()))
        .map(|n| {
            let n_low = n.to_ascii_lowercase();
            let nearest = (known.iter())
                .map(|k| (std::cmp::Reverse(shared(k, &n_low)), edits(k, &n_low), k))
                .min()
                .map(|(_, edits, k)| Nearest {
                    name: k.clone(),
                    edits,
                });
            (n.clone(), nearest)
        })
        .collect()
}

/// How many characters must be inserted, removed or changed to turn `a` into `b`.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Splits a file's listings into the ranges of the wanted regions and the rest. A prefix
/// listed more than once (Azure lists one under a region's tag and a service's without one)
/// is judged by all its listings, whatever their order: kept when any names a wanted region
/// (or no regions are wanted), unless any names an excluded one. A kept prefix takes its
/// metadata from a listing of a wanted region. A range with no region is kept unless an
/// include list is given.
fn by_region(
    listings: Vec<RangeInfo>,
    include: &[String],
    exclude: &[String],
) -> (Vec<RangeInfo>, Vec<RangeInfo>) {
    let named = |list: &[String], region: &Option<String>| {
        region
            .as_deref()
            .is_some_and(|r| list.iter().any(|w| w.eq_ignore_ascii_case(r)))
    };
    let mut regions: HashMap<IpNet, (bool, bool)> = HashMap::new();
    for i in &listings {
        let seen = regions.entry(i.prefix.trunc()).or_default();
        seen.0 |= named(include, &i.region);
        seen.1 |= named(exclude, &i.region);
    }
    let keep = |i: &RangeInfo| {
        let (wanted, excluded) = regions[&i.prefix.trunc()];
        (include.is_empty() || wanted) && !excluded
    };
    let (mut kept, left_out): (Vec<RangeInfo>, Vec<RangeInfo>) =
        listings.into_iter().partition(|i| keep(i));
    // The table keeps a prefix's first listing's metadata: a wanted region's first.
    kept.sort_by_key(|i| !named(include, &i.region));
    (kept, left_out)
}

/// Reads a range file, detecting its format unless one is given.
pub fn load_ranges(
    path: &Path,
    format: Option<RangeFormat>,
    services: &[String],
) -> Result<(RangeFormat, RangeTable)> {
    let (format, listings, _) = load_listings(path, format, services)?;
    Ok((format, RangeTable::new(listings)))
}

/// The most a range file is read of: AWS's, the largest, is a few MiB.
const RANGE_FILE_LIMIT: u64 = 256 << 20;

/// A range file's listings of `services`, each as the file gives it (a prefix may be listed
/// more than once, under other regions), and its listings of other services.
/// `prefix` as the file writes it, with its line (`line 2: 72.14.177.0/2`): a prefix read
/// is its network (`64.0.0.0/2`), which the file may not hold as text. The network alone
/// where no text of the file reads as it.
fn as_written(text: &str, prefix: IpNet) -> String {
    let is_cidr_byte = |c: char| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/');
    (text.lines().enumerate())
        .find_map(|(n, line)| {
            line.split(|c: char| !is_cidr_byte(c))
                .find(|word| {
                    word.parse::<IpNet>()
                        .is_ok_and(|p| p.trunc() == prefix.trunc())
                })
                .map(|word| format!("line {}: {word}", n + 1))
        })
        .unwrap_or_else(|| prefix.to_string())
}

fn load_listings(
    path: &Path,
    format: Option<RangeFormat>,
    services: &[String],
) -> Result<(RangeFormat, Vec<RangeInfo>, Vec<RangeInfo>)> {
    let bytes = crate::source::read_regular(path, RANGE_FILE_LIMIT)
        .map_err(|e| anyhow::anyhow!("cannot read: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("cannot read: stream did not contain valid UTF-8"))?;
    // A byte-order mark (an editor's, or a download's on another system) is no content; nor
    // is a line end of CR alone a line's content (old Mac editors write them).
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text: std::borrow::Cow<'_, str> = match text.contains('\r') {
        true => text.replace("\r\n", "\n").replace('\r', "\n").into(),
        false => text.into(),
    };
    let json: Option<serde_json::Value> = if text.trim_start().starts_with('{') {
        Some(serde_json::from_str(&text).context("not valid JSON")?)
    } else {
        None
    };
    let format = match format {
        Some(f) => f,
        None => detect(json.as_ref(), &text),
    };
    let mut infos = match (format, &json) {
        (RangeFormat::Aws, _) => parse_aws(&text)?,
        (RangeFormat::Gcp, Some(j)) => parse_gcp(j)?,
        (RangeFormat::Azure, Some(j)) => parse_azure(j)?,
        (RangeFormat::Oracle, Some(j)) => parse_oracle(j)?,
        (RangeFormat::Gcp | RangeFormat::Azure | RangeFormat::Oracle, None) => {
            bail!("expected a JSON file for format {format:?}")
        }
        (RangeFormat::Geofeed, _) => parse_geofeed(&text)?,
        (RangeFormat::Cidr, _) => parse_cidr(&text)?,
    };
    infos = infos.into_iter().map(RangeInfo::tidied).collect();
    // No provider holds a network this wide; a prefix cut short does make one
    // (`72.14.177.0/24` read while a download rewrites the file, as `72.14.177.0/2`), which
    // would give the provider a quarter of the Internet, in reports and in `firewall`.
    if let Some(wide) = infos
        .iter()
        .find(|i| i.prefix.prefix_len() < widest(i.prefix))
    {
        bail!(
            "{} is wider than any network a provider holds (a line cut short? write a new file under a temporary name and rename it into place)",
            as_written(&text, wide.prefix)
        );
    }
    let mut other_services = Vec::new();
    if !services.is_empty() {
        let wanted = |i: &RangeInfo| {
            i.services
                .iter()
                .any(|s| services.iter().any(|w| w.eq_ignore_ascii_case(s)))
        };
        (infos, other_services) = infos.into_iter().partition(wanted);
    }
    if infos.is_empty() {
        if services.is_empty() {
            bail!("no prefixes found");
        }
        bail!("no prefixes of the services {}", services.join(", "));
    }
    Ok((format, infos, other_services))
}

/// The shortest prefix a range file may hold: a /8 for IPv4 (as large as any block ever
/// allocated), a /16 for IPv6.
fn widest(net: ipnet::IpNet) -> u8 {
    match net {
        ipnet::IpNet::V4(_) => 8,
        ipnet::IpNet::V6(_) => 16,
    }
}

/// The format a file's content shows.
fn detect(json: Option<&serde_json::Value>, text: &str) -> RangeFormat {
    if let Some(j) = json {
        let first = |key: &str| j[key].as_array().and_then(|a| a.first()).cloned();
        if first("prefixes")
            .is_some_and(|p| p.get("ipv4Prefix").is_some() || p.get("ipv6Prefix").is_some())
        {
            return RangeFormat::Gcp;
        }
        if j.get("values").is_some() {
            return RangeFormat::Azure;
        }
        if j.get("regions").is_some() {
            return RangeFormat::Oracle;
        }
        return RangeFormat::Aws;
    }
    let data = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    if data.is_some_and(|l| l.contains(',')) {
        RangeFormat::Geofeed
    } else {
        RangeFormat::Cidr
    }
}

#[derive(Deserialize)]
struct AwsFile {
    #[serde(default)]
    prefixes: Vec<AwsPrefix>,
    #[serde(default)]
    ipv6_prefixes: Vec<AwsPrefix>,
}

#[derive(Deserialize)]
struct AwsPrefix {
    #[serde(alias = "ipv6_prefix")]
    ip_prefix: String,
    region: Option<String>,
    service: Option<String>,
    network_border_group: Option<String>,
}

/// A range file's prefix; one of IPv4-mapped addresses as the IPv4 network it maps, as in a
/// CIDR list (an address read in that form is its IPv4 address: as IPv6, the prefix would
/// hold no address a log gives).
fn net(text: &str) -> Result<IpNet> {
    text.trim()
        .parse()
        .map(crate::config::ipv4_of_mapped)
        .with_context(|| format!("bad prefix {text:?}"))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_aws(text: &str) -> Result<Vec<RangeInfo>> {
    let file: AwsFile = serde_json::from_str(text).context("not an AWS ip-ranges.json file")?;
    file.prefixes
        .into_iter()
        .chain(file.ipv6_prefixes)
        .map(|p| {
            Ok(RangeInfo {
                prefix: net(&p.ip_prefix)?,
                region: p.region,
                services: p.service.into_iter().collect(),
                network_border_group: p.network_border_group,
            })
        })
        .collect()
}

/// `{"prefixes": [{"ipv4Prefix": "...", "service": "Google Cloud", "scope": "us-east1"}]}`
fn parse_gcp(j: &serde_json::Value) -> Result<Vec<RangeInfo>> {
    let list = j["prefixes"]
        .as_array()
        .context("not a GCP cloud.json file: no prefixes")?;
    // An entry without its prefix (a key misspelt, a value of another type) is refused, not
    // passed over: the addresses it was to give would be no provider's, without a word.
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let prefix = (p["ipv4Prefix"].as_str().or(p["ipv6Prefix"].as_str()))
                .with_context(|| format!("prefixes[{i}]: no ipv4Prefix or ipv6Prefix text"))?;
            Ok(RangeInfo {
                prefix: net(prefix)?,
                region: non_empty(p["scope"].as_str()),
                services: non_empty(p["service"].as_str()).into_iter().collect(),
                network_border_group: None,
            })
        })
        .collect()
}

/// `{"values": [{"name": "AzureCloud.eastus", "properties": {"region": "eastus",
/// "systemService": "", "addressPrefixes": [...]}}]}`: a prefix is listed under many tags.
fn parse_azure(j: &serde_json::Value) -> Result<Vec<RangeInfo>> {
    let values = j["values"]
        .as_array()
        .context("not an Azure service tags file: no values")?;
    let mut infos = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let props = &v["properties"];
        let service =
            non_empty(props["systemService"].as_str()).or_else(|| non_empty(v["name"].as_str()));
        let region = non_empty(props["region"].as_str());
        let prefixes = (props["addressPrefixes"].as_array())
            .with_context(|| format!("values[{i}]: no addressPrefixes list"))?;
        for (k, prefix) in prefixes.iter().enumerate() {
            let prefix = (prefix.as_str()).with_context(|| {
                format!("values[{i}].addressPrefixes[{k}]: not a prefix's text")
            })?;
            infos.push(RangeInfo {
                prefix: net(prefix)?,
                region: region.clone(),
                services: service.clone().into_iter().collect(),
                network_border_group: None,
            });
        }
    }
    Ok(infos)
}

/// `{"regions": [{"region": "us-ashburn-1", "cidrs": [{"cidr": "...", "tags": ["OCI"]}]}]}`
fn parse_oracle(j: &serde_json::Value) -> Result<Vec<RangeInfo>> {
    let regions = j["regions"]
        .as_array()
        .context("not an Oracle ranges file: no regions")?;
    let mut infos = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        let region = non_empty(r["region"].as_str());
        let cidrs =
            (r["cidrs"].as_array()).with_context(|| format!("regions[{i}]: no cidrs list"))?;
        for (k, c) in cidrs.iter().enumerate() {
            let prefix = (c["cidr"].as_str())
                .with_context(|| format!("regions[{i}].cidrs[{k}]: no cidr text"))?;
            infos.push(RangeInfo {
                prefix: net(prefix)?,
                region: region.clone(),
                services: c["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| non_empty(t.as_str()))
                    .collect(),
                network_border_group: None,
            });
        }
    }
    Ok(infos)
}

/// RFC 8805: `prefix,country,region,city,postal`; the location becomes the region.
fn parse_geofeed(text: &str) -> Result<Vec<RangeInfo>> {
    let mut infos = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = csv_fields(line);
        let prefix = crate::config::parse_net(&fields[0])
            .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        let place: Vec<&str> = [fields.get(3), fields.get(2), fields.get(1)]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|f| !f.is_empty())
            .collect();
        infos.push(RangeInfo {
            prefix,
            region: (!place.is_empty()).then(|| place.join(", ")),
            services: Vec::new(),
            network_border_group: None,
        });
    }
    Ok(infos)
}

/// The fields of a CSV line (RFC 4180, as a geofeed is written): a field in double quotes may
/// hold commas, and `""` in it is one quote; fields are trimmed of the spaces around them.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

fn parse_cidr(text: &str) -> Result<Vec<RangeInfo>> {
    let mut infos = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let prefix =
            crate::config::parse_net(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        infos.push(RangeInfo {
            prefix,
            region: None,
            services: Vec::new(),
            network_border_group: None,
        });
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A geofeed's fields in quotes (RFC 4180) keep their commas and quotes: the place is
    /// read whole, not cut at a comma inside it and left with its quote marks.
    #[test]
    fn a_geofeed_reads_quoted_fields_whole() {
        assert_eq!(csv_fields("a, b ,c"), ["a", "b", "c"]);
        assert_eq!(
            csv_fields(r#"1.2.3.0/24,US,"New York, NY","Say ""hi""",10001"#),
            ["1.2.3.0/24", "US", "New York, NY", r#"Say "hi""#, "10001"]
        );
        assert_eq!(csv_fields(r#" "x" ,"#), ["x", ""]);
        let infos =
            parse_geofeed("192.0.2.0/24,US,\"New York, NY\",\"=HYPERLINK(\"\"http://x\"\",1)\",\n")
                .unwrap();
        assert_eq!(
            infos[0].region.as_deref(),
            Some(r#"=HYPERLINK("http://x",1), New York, NY, US"#)
        );
    }

    fn loaded(text: &[u8]) -> Result<(RangeFormat, RangeTable)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranges");
        std::fs::write(&path, text).unwrap();
        load_ranges(&path, None, &[])
    }

    /// A range file's words reached `ips.csv` as written: ESC sequences, BEL, U+202E, line
    /// breaks. They are cleaned as log text is, on one line, at most 100 characters; a word
    /// with nothing left is no word; `services` matches the cleaned word.
    #[test]
    fn a_range_files_words_are_cleaned() {
        let text = format!(
            r#"{{"prefixes": [
                {{"ip_prefix": "3.5.140.0/22", "region": "us-east-1\u001b[31m\u0007\u202e\r\nX", "service": "EC2\u200b", "network_border_group": "{}"}},
                {{"ip_prefix": "18.204.0.0/14", "region": "\u0007", "service": "EC2"}}]}}"#,
            "g".repeat(300)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranges");
        std::fs::write(&path, text).unwrap();
        let (_, table) = load_ranges(&path, None, &["EC2".to_string()]).unwrap();
        let info = table.lookup("3.5.140.2".parse().unwrap()).unwrap();
        // The line break parts the words it stood between.
        assert_eq!(info.region.as_deref(), Some("us-east-1[31m X"));
        assert_eq!(info.services, ["EC2"]);
        let group = info.network_border_group.as_deref().unwrap();
        assert_eq!(group.chars().count(), 101, "100 and the mark of the cut");
        let bare = table.lookup("18.204.0.1".parse().unwrap()).unwrap();
        assert_eq!(bare.region, None);
    }

    /// An entry of a JSON range file without its prefix (a key misspelt, a list where text
    /// goes) is refused naming the entry, not passed over: its addresses would be no
    /// provider's, and `check` would count one prefix fewer without a word.
    #[test]
    fn an_entry_without_its_prefix_is_refused_naming_it() {
        for (text, entry) in [
            (
                r#"{"prefixes": [{"ipv4Prefix": "34.1.208.0/20"}, {"ipv4prefix": "81.2.69.0/24"}]}"#,
                "prefixes[1]",
            ),
            (
                r#"{"prefixes": [{"ipv4Prefix": ["81.2.69.0/24"]}]}"#,
                "prefixes[0]",
            ),
            (
                r#"{"changeNumber": 1, "cloud": "Public", "values": [{"name": "A", "properties": {"addressPrefixes": "81.2.69.0/24"}}]}"#,
                "values[0]",
            ),
            (
                r#"{"changeNumber": 1, "cloud": "Public", "values": [{"name": "A", "properties": {"addressPrefixes": ["1.2.3.0/24", 5]}}]}"#,
                "values[0].addressPrefixes[1]",
            ),
            (
                r#"{"last_updated_timestamp": "x", "regions": [{"region": "r", "cidrs": [{"cidb": "81.2.69.0/24"}]}]}"#,
                "regions[0].cidrs[0]",
            ),
        ] {
            let e = format!("{:#}", loaded(text.as_bytes()).unwrap_err());
            assert!(e.contains(entry), "{text}: {e}");
        }
    }

    /// A line cut short by a download that rewrites the file in place (`72.14.177.0/24` as
    /// `72.14.177.0/2`) is refused, in every format, rather than giving the provider a
    /// quarter of the Internet; a /8 (IPv4) or /16 (IPv6) is still a provider's.
    #[test]
    fn a_prefix_wider_than_any_providers_is_refused() {
        // Quoted as the file writes it, with its line: the network read (`64.0.0.0/2`) is no
        // text of the file, and `grep` found nothing.
        for (text, quoted) in [
            (&b"45.33.0.0/16\n72.14.177.0/2"[..], "line 2: 72.14.177.0/2"),
            (
                b"72.14.177.0/2,US,US-NJ,Cedar Knolls,\n",
                "line 1: 72.14.177.0/2",
            ),
            (b"2600::/12\n", "line 1: 2600::/12"),
            (
                br#"{"prefixes": [{"ip_prefix": "3.0.0.0/7", "region": "x", "service": "EC2"}]}"#,
                "line 1: 3.0.0.0/7",
            ),
        ] {
            let e = loaded(text).unwrap_err().to_string();
            assert!(e.contains("wider than any network a provider holds"), "{e}");
            assert!(e.contains(&format!("{quoted} is wider")), "{e}");
        }
        let (_, t) = loaded(b"3.0.0.0/8\n2600::/16\n").unwrap();
        assert_eq!(t.infos().len(), 2);
    }

    /// A byte-order mark at the start, and line ends of CR alone, are read as what they
    /// are: the JSON is JSON, and a geofeed of CR lines has all its lines.
    #[test]
    fn a_byte_order_mark_and_cr_line_ends_are_read() {
        let (format, t) = loaded(
            "\u{feff}{\"prefixes\": [{\"ip_prefix\": \"3.5.140.0/22\", \"region\": \"x\", \"service\": \"EC2\"}]}"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((format, t.infos().len()), (RangeFormat::Aws, 1));
        let (format, t) =
            loaded(b"45.33.0.0/16,US,US-NJ,,\r45.56.64.0/18,US,US-TX,,\r2600:3c00::/32,US,,,\r")
                .unwrap();
        assert_eq!((format, t.infos().len()), (RangeFormat::Geofeed, 3));
    }

    fn info(net: &str, region: &str) -> RangeInfo {
        RangeInfo {
            prefix: net.parse().unwrap(),
            region: Some(region.into()),
            services: vec![],
            network_border_group: None,
        }
    }

    /// A prefix listed twice, first under a service with no region and then under a region
    /// (as Azure lists them), is judged by both listings in either order: `regions` keeps it
    /// with the region's metadata, `exclude_regions` leaves it out.
    #[test]
    fn regions_judge_a_prefix_by_all_its_listings_in_any_order() {
        let regionless = RangeInfo {
            region: None,
            ..info("20.0.0.0/16", "-")
        };
        let listings = [
            regionless,
            info("20.0.0.0/16", "eastus"),
            info("20.1.0.0/16", "westus"),
        ];
        for order in [listings.to_vec(), listings.iter().rev().cloned().collect()] {
            let (kept, _) = by_region(order.clone(), &["eastus".to_string()], &[]);
            let t = RangeTable::new(kept);
            let ip = "20.0.1.1".parse().unwrap();
            assert_eq!(
                t.lookup(ip).and_then(|i| i.region.as_deref()),
                Some("eastus")
            );
            assert!(t.lookup("20.1.1.1".parse().unwrap()).is_none());
            let (kept, _) = by_region(order, &[], &["eastus".to_string()]);
            let t = RangeTable::new(kept);
            assert!(t.lookup(ip).is_none(), "excluded whatever the order");
            assert!(t.lookup("20.1.1.1".parse().unwrap()).is_some());
        }
    }

    /// A region the file does not name is found, with the file's region nearest to it (the
    /// longest shared start, then the fewest edits); names match in any case, as
    /// `by_region` matches them.
    #[test]
    fn regions_the_file_does_not_name_are_found_with_the_nearest() {
        let listings = [
            info("52.80.0.0/16", "cn-north-1"),
            info("52.83.0.0/16", "cn-northwest-1"),
            info("20.0.0.0/16", "germanywc"),
            info("20.1.0.0/16", "israelcentral"),
        ];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let near = |name: &str, edits| {
            Some(Nearest {
                name: name.to_string(),
                edits,
            })
        };
        assert!(unknown_regions(&names(&["CN-North-1"]), listings.iter()).is_empty());
        assert_eq!(
            unknown_regions(
                &names(&["cn-north-1", "cn-north1", "germanywestcentral"]),
                listings.iter()
            ),
            [
                ("cn-north1".to_string(), near("cn-north-1", 1)),
                ("germanywestcentral".to_string(), near("germanywc", 9)),
            ]
        );
        let regionless = RangeInfo {
            region: None,
            ..info("20.0.0.0/16", "-")
        };
        assert_eq!(
            unknown_regions(&names(&["eastus"]), [regionless].iter()),
            [("eastus".to_string(), None)]
        );
        assert_eq!(edits("cn-north1", "cn-north-1"), 1);
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
    }

    /// A wanted region the file does not name is refused, and so is an excluded one that is
    /// a misspelling of one it names; an excluded one far from every name (a region left out
    /// beforehand) excludes nothing, and is kept to be said by `check`.
    #[test]
    fn a_misspelt_region_is_refused_and_a_far_exclusion_is_kept_to_be_said() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ranges.json");
        std::fs::write(
            &file,
            r#"{"prefixes": [{"ip_prefix": "52.80.0.0/16", "region": "cn-north-1", "service": "EC2"}, {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "EC2"}], "ipv6_prefixes": []}"#,
        )
        .unwrap();
        let config = |regions: &[&str], exclude: &[&str]| ProviderConfig {
            name: "aws".into(),
            ranges: Some(file.clone()),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            exclude_regions: exclude.iter().map(|s| s.to_string()).collect(),
            to: Vec::new(),
            format: None,
            services: Vec::new(),
            asns: Vec::new(),
            delivery: crate::config::Delivery::Mail,
        };
        let refused = |c: ProviderConfig| format!("{:#}", Provider::load(&c).unwrap_err());
        assert!(
            refused(config(&[], &["cn-north1"])).contains(
                "exclude_regions: \"cn-north1\" is no region of this file (the nearest it names is \"cn-north-1\")"
            )
        );
        assert!(refused(config(&["ap-northeast2"], &[])).contains("regions: \"ap-northeast2\""));
        assert!(refused(config(&["chinaeast2"], &[])).contains("regions: \"chinaeast2\""));
        let loaded = Provider::load(&config(&[], &["cn-north-1", "chinaeast2"])).unwrap();
        assert_eq!(loaded.unmatched_exclusions, ["chinaeast2"]);
        assert!(loaded.lookup("52.80.1.1".parse().unwrap()).is_none());
        // A file of one CIDR a line names no regions: an exclusion excludes nothing, and
        // is said, as it loaded before; a wanted region keeps nothing, refused.
        std::fs::write(&file, "52.80.0.0/16\n").unwrap();
        let loaded = Provider::load(&config(&[], &["cn-north-1"])).unwrap();
        assert_eq!(loaded.unmatched_exclusions, ["cn-north-1"]);
        assert!(refused(config(&["cn-north-1"], &[])).contains("this file names no regions"));
    }

    /// Two providers' ranges that share addresses are found by the first address they share,
    /// and tables that only touch share none.
    #[test]
    fn ranges_two_tables_share_are_found() {
        let table = |cidrs: &[&str]| RangeTable::new(cidrs.iter().map(|c| info(c, "-")));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let aws = table(&["35.180.0.0/16", "52.94.0.0/22", "2600:1f18::/32"]);
        assert_eq!(
            aws.first_shared(&table(&["10.0.0.0/8", "35.180.128.0/17"])),
            Some(ip("35.180.128.0"))
        );
        assert_eq!(
            aws.first_shared(&table(&["35.179.0.0/16", "35.181.0.0/16", "52.94.4.0/22"])),
            None
        );
        assert_eq!(
            aws.first_shared(&table(&["2600:1f18:4a3::/48"])),
            Some(ip("2600:1f18:4a3::"))
        );
        assert_eq!(
            table(&["0.0.0.0/0"]).first_shared(&aws),
            Some(ip("35.180.0.0"))
        );
    }

    #[test]
    fn most_specific_prefix_wins() {
        let t = RangeTable::new([info("52.0.0.0/10", "wide"), info("52.94.0.0/22", "narrow")]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            t.lookup(ip("52.94.1.7")).unwrap().region.as_deref(),
            Some("narrow")
        );
        assert_eq!(
            t.lookup(ip("52.1.1.1")).unwrap().region.as_deref(),
            Some("wide")
        );
        assert!(t.lookup(ip("51.1.1.1")).is_none());
        assert!(t.lookup(ip("2600::1")).is_none());
    }

    /// The flat table answers as a longest-prefix match over every range would, with ranges
    /// nested several deep, side by side, starting or ending together, at both ends of the
    /// address space.
    #[test]
    fn flat_lookup_is_the_longest_prefix_match() {
        let nets = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.0.0/16",
            "10.0.0.0/24",
            "10.0.0.128/25",
            "10.0.1.0/24",
            "10.255.255.0/24",
            "10.255.255.255/32",
            "52.94.0.0/22",
            "52.94.4.0/22",
            "255.255.255.0/24",
            "255.255.255.255/32",
            "::/0",
            "2600::/16",
            "2600:1f18::/33",
            "2600:1f18:8000::/33",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Every subset drawn as a bit mask, so that the wide ranges are sometimes missing.
        for _ in 0..200 {
            let mask = next();
            let chosen: Vec<IpNet> = nets
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> i & 1 == 1)
                .map(|(_, n)| n.parse().unwrap())
                .collect();
            let t = RangeTable::new(chosen.iter().map(|n| info(&n.to_string(), "r")));
            let longest = |ip: IpAddr| {
                chosen
                    .iter()
                    .filter(|n| n.contains(&ip))
                    .max_by_key(|n| n.prefix_len())
                    .copied()
            };
            let mut probes: Vec<IpAddr> = Vec::new();
            for n in &chosen {
                for edge in [n.network(), n.broadcast()] {
                    probes.push(edge);
                    let v = bits(edge);
                    let family = |v: u128| match edge {
                        IpAddr::V4(_) => u32::try_from(v)
                            .ok()
                            .map(|v| IpAddr::V4(std::net::Ipv4Addr::from(v))),
                        IpAddr::V6(_) => Some(IpAddr::V6(std::net::Ipv6Addr::from(v))),
                    };
                    probes.extend(v.checked_sub(1).and_then(family));
                    probes.extend(v.checked_add(1).and_then(family));
                }
            }
            for _ in 0..50 {
                let v = next();
                probes.push(IpAddr::V4(std::net::Ipv4Addr::from(v as u32)));
                probes.push(IpAddr::V4(std::net::Ipv4Addr::from(
                    0x0a00_0000 | (v as u32 & 0x1ff),
                )));
                probes.push(IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(v) << 64 | u128::from(next()),
                )));
            }
            for ip in probes {
                assert_eq!(
                    t.lookup(ip).map(|i| i.prefix),
                    longest(ip),
                    "{ip} among {chosen:?}"
                );
            }
        }
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let t = RangeTable::new([info("2600:1f00::/24", "v6"), info("3.5.0.0/16", "v4")]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            t.lookup(ip("2600:1f18::2")).unwrap().region.as_deref(),
            Some("v6")
        );
        assert_eq!(
            t.lookup(ip("::ffff:3.5.1.1")).unwrap().region.as_deref(),
            Some("v4")
        );
    }

    /// A prefix of IPv4-mapped addresses in a JSON range file is the IPv4 network it maps,
    /// as in a CIDR list: read as IPv6, it went into the IPv6 rules, and no address in it was
    /// ever the provider's.
    #[test]
    fn a_mapped_prefix_in_a_json_file_is_the_ipv4_network() {
        let text = r#"{"syncToken":"1","createDate":"x","prefixes":[
            {"ip_prefix":"::ffff:3.5.140.0/120","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"}],
            "ipv6_prefixes":[]}"#;
        let ranges = parse_aws(text).unwrap();
        assert_eq!(ranges[0].prefix, "3.5.140.0/24".parse::<IpNet>().unwrap());
        let t = RangeTable::new(ranges);
        assert!(t.lookup("3.5.140.9".parse().unwrap()).is_some());
    }

    #[test]
    fn aws_file_merges_services_and_filters() {
        let text = r#"{"syncToken":"1","createDate":"x","prefixes":[
            {"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON","network_border_group":"ap-northeast-2"},
            {"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"EC2","network_border_group":"ap-northeast-2"},
            {"ip_prefix":"13.34.37.64/27","region":"ap-southeast-4","service":"AMAZON","network_border_group":"ap-southeast-4"}],
            "ipv6_prefixes":[{"ipv6_prefix":"2600:1f18::/33","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"}]}"#;
        let all = RangeTable::new(parse_aws(text).unwrap());
        assert_eq!(all.len(), 3);
        let hit = all.lookup("3.5.141.9".parse().unwrap()).unwrap();
        assert_eq!(hit.services, vec!["AMAZON".to_string(), "EC2".to_string()]);
        let mut ec2 = parse_aws(text).unwrap();
        ec2.retain(|i| i.services.iter().any(|s| s.eq_ignore_ascii_case("ec2")));
        let ec2 = RangeTable::new(ec2);
        assert_eq!(ec2.len(), 2);
        assert!(ec2.lookup("13.34.37.70".parse().unwrap()).is_none());
        assert_eq!(
            ec2.lookup("2600:1f18::1".parse().unwrap())
                .unwrap()
                .region
                .as_deref(),
            Some("us-east-1")
        );
    }

    #[test]
    fn cidr_file_with_comments_and_a_bad_line() {
        let ok =
            parse_cidr("# ranges\n\n198.51.100.0/24  # lab\n2001:db8::/32\n203.0.113.7\n").unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[2].prefix, "203.0.113.7/32".parse::<IpNet>().unwrap());
        let e = parse_cidr("10.0.0.0/8\nnonsense\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
