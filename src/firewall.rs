//! `firewall`: the rules that produce the logs this tool reads, from a provider's range file.
//! Ranges are aggregated first (adjacent and nested prefixes merged), so the rule count is
//! the smallest that covers exactly the same addresses.

use std::fmt::Write as _;

use anyhow::Result;
use ipnet::IpNet;

use crate::cli::FirewallFormat;
use crate::config::{DEFAULT_PREFIX, Settings};
use crate::error::{ConfigError, EXIT_OK, one_line};
use crate::provider::Provider;

/// The provider's ranges less the networks `report.ignore` holds (the operator's own, which
/// a block would cut off), aggregated, IPv4 then IPv6.
pub fn aggregated(provider: &Provider, ignore: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    let nets: Vec<IpNet> = provider.ranges.infos().iter().map(|i| i.prefix).collect();
    let nets = IpNet::aggregate(&without(&IpNet::aggregate(&nets), ignore));
    nets.into_iter().partition(|n| matches!(n, IpNet::V4(_)))
}

/// The addresses of `nets` that no network of `holes` holds, as networks: a network a hole
/// covers goes, and one that holds holes is split into halves, down to each hole, keeping the
/// halves that hold none. Each network is asked only of the holes that touch it, found by a
/// binary search: asked of every hole, with the pieces each hole leaves asked of the next, ten
/// thousand `/128`s in `report.ignore` took minutes.
fn without(nets: &[IpNet], holes: &[IpNet]) -> Vec<IpNet> {
    let mut holes = IpNet::aggregate(&holes.iter().map(IpNet::trunc).collect::<Vec<_>>());
    holes.sort_by_key(|h| span(h).0);
    let mut left = Vec::with_capacity(nets.len());
    for net in nets.iter().map(IpNet::trunc) {
        // Holes are disjoint after aggregation: only the last one starting at or before the
        // network may hold it, and the ones that start inside it are all it holds.
        let (start, end) = span(&net);
        let from = holes.partition_point(|h| span(h).0 < start);
        let to = holes.partition_point(|h| span(h).0 <= end);
        if from > 0 && holes[from - 1].contains(&net) {
            continue;
        }
        cut_around(net, &holes[from..to], &mut left);
    }
    left
}

/// Where a network starts and ends, its family first: sorted by its start, networks of one
/// family that do not overlap are in address order.
fn span(net: &IpNet) -> ((bool, u128), (bool, u128)) {
    match net {
        IpNet::V4(n) => (
            (false, u32::from(n.network()).into()),
            (false, u32::from(n.broadcast()).into()),
        ),
        IpNet::V6(n) => ((true, n.network().into()), (true, n.broadcast().into())),
    }
}

/// `net` less `holes` (each inside it) into `out`, as the halves that hold no hole.
fn cut_around(net: IpNet, holes: &[IpNet], out: &mut Vec<IpNet>) {
    if holes.is_empty() {
        out.push(net);
        return;
    }
    if holes.iter().any(|h| h.contains(&net)) {
        return;
    }
    let Ok(halves) = net.subnets(net.prefix_len() + 1) else {
        return;
    };
    for half in halves {
        let inside: Vec<IpNet> = holes
            .iter()
            .filter(|h| half.contains(*h))
            .copied()
            .collect();
        cut_around(half, &inside, out);
    }
}

fn ports(list: Option<&str>, format: FirewallFormat) -> Result<Vec<u16>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let ports: Vec<u16> = list
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| anyhow::anyhow!("--ports: {p:?} is not a port number"))
        })
        .collect::<Result<_>>()?;
    // iptables' `multiport` match refuses more: the rules would not load, and an operator
    // under attack would be left with no block at all.
    if format != FirewallFormat::Nft && ports.len() > MULTIPORT_MAX {
        anyhow::bail!(
            "--ports: {} ports, and iptables' multiport match takes at most {MULTIPORT_MAX}; give fewer, or use --format nft",
            ports.len()
        );
    }
    Ok(ports)
}

/// ICMPv6 neighbour discovery (router solicitation and advertisement, neighbour solicitation
/// and advertisement, redirect): only the host's own link sends it, and a host whose address
/// is in the provider's ranges (an instance in that cloud) has neighbours there too. Blocked,
/// the host could no longer reach them.
const NEIGHBOUR_DISCOVERY: [u8; 5] = [133, 134, 135, 136, 137];

/// The hop limit neighbour discovery is sent with, which no router passes on unlowered: a
/// packet that still has it comes from the host's own link (RFC 4861).
const ON_LINK_HOPS: u8 = 255;

/// What the rules never block, as iptables matches: the host's own packets to itself (on
/// `lo`, from an address of its own that may be in the ranges), the answers to connections
/// the host opened (an instance in that cloud, a package mirror, the provider's own API:
/// blocked, the host could reach none of them, nor learn a path's MTU from their routers)
/// and, for IPv6, neighbour discovery, which conntrack counts as no connection.
fn exempt_matches(v6: bool) -> Vec<String> {
    let mut matches = vec![
        "-i lo".to_string(),
        format!("-m conntrack --ctstate {ANSWERS}"),
    ];
    if v6 {
        matches.extend(neighbour_discovery_matches());
    }
    matches
}

/// IPv6 neighbour discovery from the host's own link, as iptables matches, one a type.
fn neighbour_discovery_matches() -> [String; 5] {
    NEIGHBOUR_DISCOVERY
        .map(|t| format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t} -m hl --hl-eq {ON_LINK_HOPS}"))
}

/// The conntrack states of packets that answer the host's own: a connection it opened, or an
/// ICMP error about one.
const ANSWERS: &str = "ESTABLISHED,RELATED";

/// The most ports one iptables `multiport` match takes.
const MULTIPORT_MAX: usize = 15;

/// What an iptables rule adds to keep to `ports`, one rule's worth each: ` -p tcp -m
/// multiport --dports …` and its `udp` twin, or one empty match (every port) without them.
fn port_matches(ports: &[u16]) -> Vec<String> {
    if ports.is_empty() {
        return vec![String::new()];
    }
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    ["tcp", "udp"]
        .iter()
        .map(|p| format!(" -p {p} -m multiport --dports {list}"))
        .collect()
}

/// Prints the rules for `provider` in `format`.
pub fn print(
    settings: &Settings,
    provider: &str,
    format: FirewallFormat,
    port_list: Option<&str>,
) -> Result<u8> {
    let Some(config) = settings.provider(provider) else {
        return Err(ConfigError(format!("no provider {provider:?} configured")).into());
    };
    let provider = Provider::load(config).map_err(|e| ConfigError(one_line(&e)))?;
    // Empty rules would load without a word and block nothing: an operator under attack
    // must not take them for a block.
    if provider.ranges.infos().is_empty() {
        let why = if config.ranges.is_none() {
            "it is matched by asns alone, and AS announcements are no rules"
        } else {
            "its range file, with its services and regions, leaves none"
        };
        return Err(ConfigError(format!(
            "firewall --provider {}: no ranges to block: {why}; give the provider a ranges file",
            config.name
        ))
        .into());
    }
    // Every range among the operator's own networks: the rules would block nothing.
    let (v4, v6) = aggregated(&provider, &settings.report.ignore);
    if v4.is_empty() && v6.is_empty() {
        return Err(ConfigError(format!(
            "firewall --provider {}: no ranges to block: report.ignore holds every one of them",
            config.name
        ))
        .into());
    }
    let ports = ports(port_list, format)?;
    let prefix = settings
        .sources
        .first()
        .and_then(|s| s.prefixes.first())
        .map_or(DEFAULT_PREFIX, String::as_str);
    loggable(prefix, format).map_err(ConfigError)?;
    // Each provider's rules replace what has their names when loaded: two providers whose
    // names meet (`cloud-a` and `cloud_a` in one nft table; `x`'s drop chain and `x-drop`'s
    // own) would each unblock the other.
    let mine = kernel_names(provider.name(), format);
    // (One without ranges has no rules to load.)
    for other in
        (settings.providers.iter()).filter(|p| p.name != provider.name() && p.ranges.is_some())
    {
        if let Some(shared) = (kernel_names(&other.name, format).iter()).find(|n| mine.contains(n))
        {
            return Err(ConfigError(format!(
                "firewall --provider {}: its rules would be named {shared:?}, as provider {:?}'s are: loading either would replace the other's; rename one of them",
                provider.name(),
                other.name
            ))
            .into());
        }
    }
    let text = render(provider.name(), (&v4, &v6), format, &ports, prefix);
    // Written, not printed: a reader that quits (`iptables-restore` failing) is an error
    // to return, not a panic.
    std::io::Write::write_all(&mut crate::output::stdout(), text.as_bytes())?;
    Ok(EXIT_OK)
}

/// Whether the rules can log `prefix` as the source will read it: iptables' LOG takes at
/// most 29 bytes and nft's 127, and a prefix the rules cut short, or whose quotes,
/// backslashes or `$` the rule files would take as their own, is logged as another text,
/// which no source matches: the firewall would drop and log, and nothing be reported.
fn loggable(prefix: &str, format: FirewallFormat) -> Result<(), String> {
    let most = match format {
        FirewallFormat::Nft => 127,
        _ => 29,
    };
    if prefix.len() > most {
        return Err(format!(
            "source.prefixes: {prefix:?} is {} bytes, and the LOG rule {} takes at most {most}: the log would carry it cut short and no line would match; configure a shorter prefix{}",
            prefix.len(),
            match format {
                FirewallFormat::Nft => "of nft",
                _ => "of iptables",
            },
            match format {
                FirewallFormat::Nft => "",
                _ => ", or use --format nft (127 bytes)",
            }
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\' | '$' | '`'))
    {
        return Err(format!(
            "source.prefixes: {prefix:?} holds {c:?}, which a rule file cannot carry as it is: configure a prefix without it"
        ));
    }
    Ok(())
}

/// `name` as short as a kernel name with `room` characters for it allows: itself when it
/// fits, else its start and a hash of the whole (the same on every run and release).
fn short_name(name: &str, room: usize) -> String {
    if name.len() <= room {
        return name.to_string();
    }
    let hash = fnv(name);
    let keep: String = name.chars().take(room.saturating_sub(9)).collect();
    format!("{keep}-{hash:08x}")
}

/// The names the rules for provider `name` give what they make in the kernel: chains, a
/// table, sets.
fn kernel_names(name: &str, format: FirewallFormat) -> Vec<String> {
    match format {
        FirewallFormat::Iptables | FirewallFormat::Ip6tables => chains(name).to_vec(),
        FirewallFormat::Nft => vec![nft_table(name)],
        FirewallFormat::Ipset => (["v4", "v6"].iter())
            .flat_map(|set| [live_set(name, set), next_set(name, set)])
            .collect(),
    }
}

/// The chains of provider `name`'s iptables rules: the one hooked in, and the one it sends
/// the provider's ranges to, which logs and drops.
fn chains(name: &str) -> [String; 2] {
    let short = short_name(name, CHAIN_NAME_ROOM);
    [format!("abuse-{short}"), format!("abuse-{short}-drop")]
}

/// The ipset set of provider `name`'s ranges of family `set` (`v4`, `v6`) that rules match.
fn live_set(name: &str, set: &str) -> String {
    format!("abuse-{}-{set}", short_name(name, SET_NAME_ROOM))
}

/// The nft table of provider `name`. nft takes names of 255 characters at most: a longer one
/// is cut to its start and a hash, as the other formats' are.
fn nft_table(name: &str) -> String {
    format!(
        "abuse_{}",
        short_name(name, 255 - "abuse_".len()).replace('-', "_")
    )
}

/// Room for a provider's name in `abuse-NAME-drop`, an iptables chain (28 characters).
const CHAIN_NAME_ROOM: usize = 28 - "abuse-".len() - "-drop".len();

/// Room for a provider's name in `abuse-NAME-v4`, an ipset set (31 characters). The set
/// being filled is named from a hash alone ([`next_set`]), so that names that fitted before
/// it was there keep fitting, and rules that match them keep working.
const SET_NAME_ROOM: usize = 31 - "abuse-".len() - "-v4".len();

/// The `maxelem` of a provider's sets for `n` ranges. ipset makes a set only if one of its
/// name has the same settings (`-exist`), so a size that moved with the count refused every
/// load that crossed a power of two: ipset's default below 65,536 ranges, as sets made
/// before were, and one size above, so that only crossing 65,536 needs the set made anew.
fn set_size(n: usize) -> usize {
    match n {
        ..65_536 => 65_536,
        _ => (1 << 24usize).max((n + 1).next_power_of_two()),
    }
}

/// The set a load fills before it is swapped in for `abuse-NAME-v4`: 21 characters, whatever
/// the name's length.
fn next_set(name: &str, set: &str) -> String {
    format!("abuse-new-{:08x}-{set}", fnv(name))
}

/// FNV-1a of 32 bits: the same on every run and release, unlike the standard library's
/// hasher.
fn fnv(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `iptables-restore` (or `ip6tables-restore`) input for one address family: a chain that
/// sends the provider's ranges to a chain that logs and drops. `other` is how many ranges of
/// the other family there are and the tool that takes them, so that none is left open unsaid.
#[allow(clippy::too_many_arguments)]
fn restore_rules(
    out: &mut String,
    tool: &str,
    family: &str,
    nets: &[IpNet],
    other: (usize, &str),
    name: &str,
    ports: &[u16],
    log_prefix: &str,
) {
    let [chain, drop] = chains(name);
    let _ = writeln!(out, "# {tool}-restore --noflush < this-file");
    let _ = writeln!(
        out,
        "# {} {family} ranges of {name} (aggregated); hook the chain in with: {tool} -I INPUT -j {chain}",
        nets.len()
    );
    if other.0 > 0 {
        let _ = writeln!(
            out,
            "# {} more ranges of the other family: print them with --format {}",
            other.0, other.1
        );
    }
    let _ = writeln!(out, "*filter");
    let _ = writeln!(out, ":{chain} - [0:0]");
    let _ = writeln!(out, ":{drop} - [0:0]");
    let _ = writeln!(
        out,
        "-A {drop} -j LOG --log-level warning --log-prefix \"{log_prefix}\""
    );
    let _ = writeln!(out, "-A {drop} -j DROP");
    for exempt in exempt_matches(family == "IPv6") {
        let _ = writeln!(out, "-A {chain} {exempt} -j RETURN");
    }
    let matches = port_matches(ports);
    for net in nets {
        for ports in &matches {
            let _ = writeln!(out, "-A {chain} -s {net}{ports} -j {drop}");
        }
    }
    let _ = writeln!(out, "COMMIT");
}

/// The rules as text.
pub fn render(
    name: &str,
    (v4, v6): (&[IpNet], &[IpNet]),
    format: FirewallFormat,
    ports: &[u16],
    log_prefix: &str,
) -> String {
    let mut out = String::new();
    // `print` refused a prefix the rules could not carry as it is (see `loggable`).
    let log_prefix = log_prefix.to_string();
    match format {
        FirewallFormat::Iptables => restore_rules(
            &mut out,
            "iptables",
            "IPv4",
            v4,
            (v6.len(), "ip6tables"),
            name,
            ports,
            &log_prefix,
        ),
        FirewallFormat::Ip6tables => restore_rules(
            &mut out,
            "ip6tables",
            "IPv6",
            v6,
            (v4.len(), "iptables"),
            name,
            ports,
            &log_prefix,
        ),
        FirewallFormat::Nft => {
            let table = nft_table(name);
            let _ = writeln!(out, "# nft -f this-file");
            // Made if missing, then deleted and made anew, in the one transaction `nft -f`
            // is: loaded again after the ranges changed, the table holds the new ranges
            // alone, and its rules once.
            let _ = writeln!(out, "table inet {table}\ndelete table inet {table}");
            let _ = writeln!(out, "table inet {table} {{");
            for (set, kind, nets) in [("v4", "ipv4_addr", v4), ("v6", "ipv6_addr", v6)] {
                let _ = writeln!(out, "\tset {set} {{\n\t\ttype {kind}\n\t\tflags interval");
                if !nets.is_empty() {
                    let list = nets
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",\n\t\t\t");
                    let _ = writeln!(out, "\t\telements = {{\n\t\t\t{list}\n\t\t}}");
                }
                let _ = writeln!(out, "\t}}");
            }
            let _ = writeln!(
                out,
                "\tchain input {{\n\t\ttype filter hook input priority filter - 10; policy accept;"
            );
            // Accepted here, the packet still meets every other table's rules.
            let _ = writeln!(out, "\t\tiif \"lo\" accept");
            let _ = writeln!(out, "\t\tct state established,related accept");
            let types = NEIGHBOUR_DISCOVERY.map(|t| t.to_string()).join(", ");
            let _ = writeln!(
                out,
                "\t\ticmpv6 type {{ {types} }} ip6 hoplimit {ON_LINK_HOPS} accept"
            );
            let port_match = if ports.is_empty() {
                String::new()
            } else {
                format!(
                    "meta l4proto {{ tcp, udp }} th dport {{ {} }} ",
                    ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            for (family, set) in [("ip", "v4"), ("ip6", "v6")] {
                let _ = writeln!(
                    out,
                    "\t\t{family} saddr @{set} {port_match}log prefix \"{log_prefix}\" level warn drop"
                );
            }
            let _ = writeln!(out, "\t}}\n}}");
        }
        FirewallFormat::Ipset => {
            // The sets block nothing by themselves: the rules that use them must DROP what
            // they LOG, and keep to --ports, as the other formats do.
            let _ = writeln!(
                out,
                "# ipset restore < this-file; then hook the sets in (each packet LOGged, then DROPped; not the host's own on lo, answers to its connections or IPv6 neighbour discovery):"
            );
            let protos = port_matches(ports);
            for (tool, set) in [("iptables", "v4"), ("ip6tables", "v6")] {
                let mut at = 1;
                let members = format!("-m set --match-set {} src", live_set(name, set));
                // Accepted: in INPUT itself a RETURN would take the chain's policy.
                if set == "v6" {
                    for exempt in neighbour_discovery_matches() {
                        let _ =
                            writeln!(out, "#   {tool} -I INPUT {at} {members} {exempt} -j ACCEPT");
                        at += 1;
                    }
                }
                for proto in &protos {
                    let rule =
                        format!("{members} ! -i lo -m conntrack ! --ctstate {ANSWERS}{proto}");
                    let _ = writeln!(
                        out,
                        "#   {tool} -I INPUT {at} {rule} -j LOG --log-level warning --log-prefix \"{log_prefix}\""
                    );
                    let _ = writeln!(out, "#   {tool} -I INPUT {} {rule} -j DROP", at + 1);
                    at += 2;
                }
            }
            // Filled under another name and swapped in: loaded again after the ranges
            // changed, the set holds the new ranges alone, and is never empty meanwhile.
            for (family, set, nets) in [("inet", "v4", v4), ("inet6", "v6", v6)] {
                let (live, next) = (live_set(name, set), next_set(name, set));
                let size = set_size(nets.len());
                for made in [&live, &next] {
                    let _ = writeln!(
                        out,
                        "create {made} hash:net family {family} maxelem {size} -exist"
                    );
                }
                let _ = writeln!(out, "flush {next}");
                for net in nets.iter() {
                    let _ = writeln!(out, "add {next} {net} -exist");
                }
                let _ = writeln!(out, "swap {next} {live}\ndestroy {next}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider's name too long for a kernel name is cut to its start and a stable hash:
    /// the chain (28 characters) and the sets, the one being filled too (31), always load.
    #[test]
    fn long_provider_names_make_names_the_kernel_takes() {
        let long = "a-provider-with-a-very-long-name";
        let chain = format!("abuse-{}-drop", short_name(long, CHAIN_NAME_ROOM));
        let set = format!("abuse-{}-v4", short_name(long, SET_NAME_ROOM));
        assert!(next_set(long, "v4").len() <= 31);
        // A name that fitted before the set being filled was named keeps its sets' names.
        assert_eq!(
            short_name("twenty-two-characters!", SET_NAME_ROOM),
            "twenty-two-characters!"
        );
        assert!(chain.len() <= 28 && set.len() <= 31, "{chain} {set}");
        assert_eq!(
            short_name(long, CHAIN_NAME_ROOM),
            short_name(long, CHAIN_NAME_ROOM)
        );
        assert_ne!(
            short_name(long, CHAIN_NAME_ROOM),
            short_name("a-provider-with-a-very-long-nam3", CHAIN_NAME_ROOM)
        );
        assert_eq!(short_name("aws", CHAIN_NAME_ROOM), "aws");
    }

    /// A prefix the LOG rule would cut short or could not carry as it is is refused: the
    /// logs would carry another text, which no source matches.
    #[test]
    fn a_prefix_the_log_rule_cannot_carry_is_refused() {
        let thirty = "X".repeat(30);
        for format in [FirewallFormat::Iptables, FirewallFormat::Ipset] {
            let e = loggable(&thirty, format).unwrap_err();
            assert!(
                e.contains("at most 29") && e.contains("--format nft"),
                "{e}"
            );
        }
        assert!(loggable(&thirty, FirewallFormat::Nft).is_ok());
        assert!(loggable(&"X".repeat(128), FirewallFormat::Nft).is_err());
        // A backtick too: the ipset hook lines are shell commands with the prefix in double
        // quotes, where it runs what it holds.
        for bad in ["A\"B:", "A\\B:", "A$B:", "A\nB:", "A`touch x`B:"] {
            assert!(loggable(bad, FirewallFormat::Nft).is_err(), "{bad:?}");
        }
        assert!(loggable("[UFW BLOCK] ", FirewallFormat::Iptables).is_ok());
    }

    /// A set's size moves only where it must: loaded again with more ranges, `create -exist`
    /// refuses a set of its name with another `maxelem`, and the load failed at each power
    /// of two.
    #[test]
    fn a_sets_size_moves_once() {
        assert_eq!(set_size(0), 65_536);
        assert_eq!(set_size(65_535), 65_536);
        assert_eq!(set_size(65_536), set_size(500_000));
        assert_eq!(set_size(131_072), set_size(1_000_000));
        assert!(set_size(20_000_000) > 20_000_000);
    }

    /// Two providers whose rules would have one name (`cloud-a` and `cloud_a` one nft table,
    /// `x`'s drop chain and `x-drop`'s own chain): loading either replaced the other's, and
    /// unblocked it. Names apart in every format are told apart.
    #[test]
    fn providers_whose_rules_share_a_name_are_found() {
        let meet = |a: &str, b: &str, format| {
            let theirs = kernel_names(b, format);
            kernel_names(a, format).iter().any(|n| theirs.contains(n))
        };
        assert!(meet("cloud-a", "cloud_a", FirewallFormat::Nft));
        assert!(meet("x", "x-drop", FirewallFormat::Iptables));
        assert!(meet("x", "x-drop", FirewallFormat::Ip6tables));
        for format in [
            FirewallFormat::Iptables,
            FirewallFormat::Ip6tables,
            FirewallFormat::Nft,
            FirewallFormat::Ipset,
        ] {
            assert!(!meet("aws", "gcp", format));
            assert!(meet("aws", "aws", format));
        }
    }

    /// nft takes table names of 255 characters at most: a provider's longer name is cut to
    /// its start and a hash (a file for a 251-character name did not load); a name that fitted
    /// keeps its table.
    #[test]
    fn an_nft_table_name_fits_nft() {
        let long = "p".repeat(300);
        let table = nft_table(&long);
        assert!(table.len() <= 255, "{}", table.len());
        assert_ne!(table, nft_table(&"p".repeat(301)));
        assert_eq!(nft_table("cloud-a"), "abuse_cloud_a");
        assert_eq!(
            nft_table(&"q".repeat(249)),
            format!("abuse_{}", "q".repeat(249))
        );
    }

    /// Networks in a /16, so that generated ones nest and overlap.
    fn net_in_a_16() -> impl proptest::strategy::Strategy<Value = IpNet> {
        use proptest::prelude::*;
        (any::<u16>(), 16u8..=32).prop_map(|(low, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | u32::from(low));
            IpNet::new(addr.into(), len).unwrap().trunc()
        })
    }

    /// The plain way, the reference [`without`] must agree with: each hole in turn taken out
    /// of every piece the holes before it left.
    fn without_one_hole_at_a_time(nets: &[IpNet], holes: &[IpNet]) -> Vec<IpNet> {
        let mut left = nets.to_vec();
        for hole in holes.iter().map(IpNet::trunc) {
            let mut next = Vec::new();
            for net in left {
                if hole.contains(&net) {
                    continue;
                }
                if !net.contains(&hole) {
                    next.push(net);
                    continue;
                }
                let mut at = net;
                while at != hole {
                    let halves: Vec<IpNet> = at.subnets(at.prefix_len() + 1).unwrap().collect();
                    next.extend(halves.iter().filter(|h| !h.contains(&hole)));
                    at = *halves.iter().find(|h| h.contains(&hole)).unwrap();
                }
            }
            left = next;
        }
        left
    }

    /// Networks of both families, nesting and overlapping.
    fn net_of_either_family() -> impl proptest::strategy::Strategy<Value = IpNet> {
        use proptest::prelude::*;
        prop_oneof![
            net_in_a_16(),
            (any::<u16>(), 32u8..=128).prop_map(|(low, len)| {
                let addr = std::net::Ipv6Addr::from(0x2600_1f14_u128 << 96 | u128::from(low) << 80);
                IpNet::new(addr.into(), len).unwrap().trunc()
            }),
        ]
    }

    proptest::proptest! {
        /// The holes looked up per network leave what taking out one hole at a time leaves.
        #[test]
        fn ranges_without_holes_agree_with_one_hole_at_a_time(
            nets in proptest::collection::vec(net_of_either_family(), 1..8),
            holes in proptest::collection::vec(net_of_either_family(), 0..16),
        ) {
            let nets = IpNet::aggregate(&nets);
            proptest::prop_assert_eq!(
                IpNet::aggregate(&without(&nets, &holes)),
                IpNet::aggregate(&without_one_hole_at_a_time(&nets, &holes))
            );
        }

        /// The ranges less the holes hold exactly the addresses of the ranges that no hole
        /// holds, asked of each address at and around every network's edges.
        #[test]
        fn ranges_without_the_ignored_hold_exactly_the_addresses_left(
            nets in proptest::collection::vec(net_in_a_16(), 1..6),
            holes in proptest::collection::vec(net_in_a_16(), 0..4),
        ) {
            let left = without(&IpNet::aggregate(&nets), &holes);
            let holds = |list: &[IpNet], ip: std::net::IpAddr| list.iter().any(|n| n.contains(&ip));
            for edge in nets.iter().chain(&holes) {
                let (first, last) = match (edge.network(), edge.broadcast()) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => (u32::from(a), u32::from(b)),
                    _ => unreachable!(),
                };
                for n in [first.wrapping_sub(1), first, first + 1, last - 1, last, last.wrapping_add(1)] {
                    let ip = std::net::IpAddr::V4(n.into());
                    proptest::prop_assert_eq!(
                        holds(&left, ip),
                        holds(&nets, ip) && !holds(&holes, ip),
                        "{} in {:?} less {:?}: {:?}", ip, nets, holes, left
                    );
                }
            }
        }
    }

    /// A network of `report.ignore` in the ranges (the operator's own /64 in the cloud) is
    /// left out of the rules; one that covers a range takes it out whole; the other family's
    /// ranges stay as they were.
    #[test]
    fn the_ignored_networks_are_not_blocked() {
        let nets: Vec<IpNet> = ["2600:1f14::/35", "3.5.140.0/22"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let own: IpNet = "2600:1f14:abc:1::/64".parse().unwrap();
        let left = without(&nets, &[own, "3.0.0.0/8".parse().unwrap()]);
        assert!(
            left.iter().all(|n| !n.contains(&own) && !own.contains(n)),
            "{left:?}"
        );
        assert!(left.iter().all(|n| matches!(n, IpNet::V6(_))), "{left:?}");
        // The halves around it, one a level: 64 - 35 of them.
        assert_eq!(left.len(), 29, "{left:?}");
        assert_eq!(without(&nets, &[]), nets);
    }

    #[test]
    fn restore_rules_match_each_protocol_of_the_ports_or_every_port() {
        let nets: Vec<IpNet> = vec!["3.5.140.0/22".parse().unwrap()];
        let rules = |ports: &[u16]| {
            let mut out = String::new();
            restore_rules(
                &mut out,
                "iptables",
                "IPv4",
                &nets,
                (0, "ip6tables"),
                "aws",
                ports,
                "P:",
            );
            let rules: Vec<String> = (out.lines())
                .filter(|l| l.starts_with("-A abuse-aws "))
                .map(str::to_string)
                .collect();
            // The host's own packets and the answers to its connections go back first.
            assert_eq!(
                rules[..2],
                [
                    "-A abuse-aws -i lo -j RETURN",
                    "-A abuse-aws -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
                ]
            );
            rules[2..].to_vec()
        };
        assert_eq!(
            rules(&[]),
            ["-A abuse-aws -s 3.5.140.0/22 -j abuse-aws-drop"]
        );
        assert_eq!(
            rules(&[80, 443]),
            [
                "-A abuse-aws -s 3.5.140.0/22 -p tcp -m multiport --dports 80,443 -j abuse-aws-drop",
                "-A abuse-aws -s 3.5.140.0/22 -p udp -m multiport --dports 80,443 -j abuse-aws-drop",
            ]
        );
    }

    #[test]
    fn more_ports_than_iptables_multiport_takes_are_refused_not_printed() {
        let many: String = (1..=16)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for format in [
            FirewallFormat::Iptables,
            FirewallFormat::Ip6tables,
            FirewallFormat::Ipset,
        ] {
            let e = ports(Some(&many), format).unwrap_err().to_string();
            assert!(e.contains("at most 15"), "{e}");
        }
        assert_eq!(ports(Some(&many), FirewallFormat::Nft).unwrap().len(), 16);
        let fifteen: String = (1..=15)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            ports(Some(&fifteen), FirewallFormat::Iptables)
                .unwrap()
                .len(),
            15
        );
    }
}
