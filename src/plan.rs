//! Planning: from what was read to the reports a run would make. Each destination (a
//! configured provider, or an abuse desk that discovery found) is a `Desk`; its delta is
//! selected, enriched, split into parts that fit the size limits and rendered, with the
//! evidence lines of its own addresses.

use std::collections::HashSet;
use std::net::IpAddr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::clock::utc_text;
use crate::config::{self, Settings};
use crate::discover::{self, Contact, ContactCache, Discoverer, Limits};
use crate::enrich::{Attacker, Reported, enrich};
use crate::excerpt::{EvidenceLine, Window, densest};
use crate::ingest::{Observation, address_order};
use crate::intake::{Destination, Intake, Routes, World};
use crate::ledger::Ledger;
use crate::provider::Provider;
use crate::render::{Envelope, Report, Spread, fnv1a, fnv1a_on, message};
use crate::select::delta;
use crate::state::{ReportContact, ReportRecord, ReportedIp, State, Status};
use lettre::message::Mailbox;

/// One report ready to be recorded and sent (or printed).
pub(crate) struct Planned {
    pub(crate) report: Report,
    pub(crate) record: ReportRecord,
}

/// Who a report goes to: a configured provider, or a contact that discovery found.
pub(crate) struct Desk<'w> {
    /// The ledger key: the provider's name, or `contact:<address>`.
    pub(crate) key: String,
    /// What the report calls it: the provider's name, or the contact's domain.
    pub(crate) name: String,
    /// The evidence bucket that holds its lines.
    pub(crate) bucket: usize,
    pub(crate) provider: Option<&'w Provider>,
    pub(crate) contact: Option<&'w Contact>,
    pub(crate) to: Vec<Mailbox>,
    /// The first report sent to it, which later ones reply to.
    pub(crate) thread_root: Option<String>,
    /// For a discovered desk: how it was found, per address (the network RDAP found it
    /// for, or the Abusix name asked).
    pub(crate) found: Option<&'w std::collections::HashMap<IpAddr, Contact>>,
    /// What all the addresses selected for it are together (see [`Spread`]), when more are
    /// selected than a run's parts hold: its parts say so of theirs. `None`: what the parts
    /// planned are together.
    pub(crate) spread: Option<Spread>,
}

impl Desk<'_> {
    /// What the addresses of its parts are together: all those selected for it, or `attackers`.
    fn spread_of(&self, attackers: &[Attacker]) -> Spread {
        (self.spread.clone())
            .unwrap_or_else(|| Spread::of(attackers.iter().map(|a| &a.observation)))
    }

    /// The networks the desk was found for, of `attackers`, in words (one CIDR, or the first
    /// and how many others), and how many there are.
    fn networks_of(&self, attackers: &[Attacker]) -> Option<(String, usize)> {
        let mut all: Vec<ipnet::IpNet> = attackers
            .iter()
            .filter_map(|a| self.found?.get(&a.observation.ip)?.network)
            .collect();
        all.dedup();
        let first = *all.first()?;
        all.sort();
        all.dedup();
        let text = match all.len() {
            1 => first.to_string(),
            2 => format!("{first} and one other network"),
            n => format!("{first} and {} other networks", n - 1),
        };
        Some((text, all.len()))
    }

    pub(crate) fn api(&self) -> bool {
        self.provider
            .is_some_and(|p| p.config.delivery == config::Delivery::AwsAbuseApi)
    }

    /// How many addresses one part holds. XARF names one source per report, and the API
    /// takes one source per report too; a contact's digest is one message, XARF or not.
    fn part_size(&self, settings: &Settings) -> usize {
        if (settings.report.xarf && self.contact.is_none()) || self.api() {
            1
        } else {
            settings.report.max_ips_per_message.unwrap_or(usize::MAX)
        }
    }

    /// The name in report ids and Message-IDs.
    pub(crate) fn id_name(&self) -> &str {
        match self.contact {
            Some(_) => "contact",
            None => &self.name,
        }
    }
}

/// Addresses that planning leaves to a later run besides the reports it made.
#[derive(Default)]
pub(crate) struct Unplanned {
    /// In no provider, and their contact not known yet: past `max_lookups_per_run`, or a
    /// registry or resolver failed.
    pub(crate) lookups_waiting: usize,
    /// The run's time for lookups ran out (not `max_lookups_per_run`), in seconds.
    pub(crate) lookup_time_spent: Option<u64>,
    /// A few of the failures, to name them.
    pub(crate) failures: Vec<String>,
    /// Past what one report to a contact holds (a contact gets one report a run).
    pub(crate) over_contact_report: usize,
    /// In no provider with no log line kept (seen before discovery was enabled): not
    /// reported to a discovered desk unless they are logged again.
    pub(crate) without_lines: usize,
    /// Re-reports due with no log line since the report kept, one per desk and address: they
    /// wait for it to be logged again, a window at most (see `with_lines_to_show`), and the
    /// next run looks at them again.
    pub(crate) rereports_without_lines: usize,
    /// Parts of one address over `max_message_bytes` even without log lines: they wait for
    /// a larger limit or shorter templates, and the next run looks at them again.
    pub(crate) oversized: usize,
    /// Discovered desks past the digests one run makes (as many as a provider's parts), and
    /// their addresses: their turn comes in later runs, the longest waiting first.
    pub(crate) desks_waiting: usize,
    pub(crate) desks_waiting_addresses: usize,
    /// A provider's addresses past the parts one run makes for it ([`PARTS_PER_RUN`] times
    /// `max_messages_per_run`, less its parts still waiting), by provider.
    pub(crate) over_run_parts: Vec<(String, usize)>,
    /// Of those, the addresses that pass `max_age_days` within a day, by provider: unless a
    /// run sends them first, they become history and are never reported.
    pub(crate) aging_out: Vec<(String, usize)>,
}

/// How many parts one run makes for a provider, as a multiple of `max_messages_per_run`:
/// enough that the budget is spent and a few runs' worth wait, few enough that a flood of a
/// million reportable sources is rendered a slice at a time, not all at once in memory.
pub(crate) const PARTS_PER_RUN: usize = 4;

/// The parts one run makes for a provider at most, before those still waiting count.
fn parts_per_run(settings: &Settings) -> usize {
    PARTS_PER_RUN * settings.mail.max_messages_per_run as usize
}

impl Unplanned {
    pub(crate) fn any(&self) -> bool {
        self.lookups_waiting > 0
            || self.over_contact_report > 0
            || self.desks_waiting > 0
            || !self.over_run_parts.is_empty()
            || self.oversized > 0
            || self.rereports_without_lines > 0
    }

    /// Says on stderr what waits, and why.
    pub(crate) fn tell(&self, world: &World<'_>) {
        if self.lookups_waiting > 0 {
            let max = world.discover.map_or(0, |d| d.max_lookups_per_run);
            let why = match (self.failures.first(), self.lookup_time_spent) {
                (Some(first), _) => format!("a lookup failed ({first})"),
                (None, Some(secs)) => format!(
                    "this run's {secs} s for lookups were spent (registries answering slowly) before discover.max_lookups_per_run = {max}"
                ),
                (None, None) => format!("discover.max_lookups_per_run = {max} reached"),
            };
            crate::output::tell(format_args!(
                "abuse-mailer: {} address(es) in no provider wait for their abuse contact to be looked up by a later run: {why}",
                self.lookups_waiting
            ));
        }
        if self.without_lines > 0 {
            crate::output::tell(format_args!(
                "abuse-mailer: {} address(es) in no provider have no log lines kept (seen before [discover] was enabled): they are reported to their network's desk only if they are logged again",
                self.without_lines
            ));
        }
        if self.rereports_without_lines > 0 {
            crate::output::tell(format_args!(
                "abuse-mailer: {} re-report(s) wait: the address has no log line kept since its report to that desk (logged while re-reporting was off, or its lines crowded out by others); each waits for it to be logged again, and goes without one at most rereport_after_days after it came due or after its last packet",
                self.rereports_without_lines
            ));
        }
        if self.over_contact_report > 0 {
            crate::output::tell(format_args!(
                "abuse-mailer: {} address(es) wait for a later run: a discovered contact gets one report a run",
                self.over_contact_report
            ));
        }
        if self.desks_waiting > 0 {
            crate::output::tell(format_args!(
                "abuse-mailer: {} address(es) of {} discovered desk(s) wait for a later run: a run makes at most {} digests ({PARTS_PER_RUN} x mail.max_messages_per_run), the longest waiting first",
                self.desks_waiting_addresses,
                self.desks_waiting,
                parts_per_run(world.settings)
            ));
        }
        for (provider, left) in &self.over_run_parts {
            crate::output::tell(format_args!(
                "abuse-mailer: {left} address(es) of {provider} wait for a later run: a run makes at most {} parts for a provider ({PARTS_PER_RUN} x mail.max_messages_per_run), less those still waiting; those seen first longest ago go first",
                parts_per_run(world.settings)
            ));
        }
        self.tell_losses();
    }

    /// What is said under `-q` too, as errors are: addresses about to be lost.
    pub(crate) fn tell_losses(&self) {
        for (provider, soon) in &self.aging_out {
            crate::output::tell(format_args!(
                "abuse-mailer: warning: {soon} address(es) of {provider} waiting for a later run pass max_age_days within a day: unless a run sends them first they become history and are never reported; raise mail.max_messages_per_run (or report.max_ips_per_message, for mail), or run more often"
            ));
        }
    }
}

/// The records of `selected` as a report needs them: whole, with what the last report said of
/// each one reported again (a re-report says what came since, not only the totals, which hold
/// what the desk was told before).
pub(crate) fn whole_records(
    intake: &Intake,
    selected: &[&crate::select::Selected<'_>],
    state: Option<&State>,
) -> Result<Vec<(Observation, Option<Reported>)>> {
    // Selected by their heads; a report needs the whole records.
    selected
        .iter()
        .map(|s| {
            let o = intake.whole(s.observation.ip, state)?;
            Ok((o.unwrap_or_else(|| s.observation.clone()), s.before.clone()))
        })
        .collect()
}

/// The reports this run would make: each provider's delta, then, with discovery, one digest
/// per contact of the addresses in no provider. `cache` is where discovery remembers.
pub(crate) fn plan(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    only: Option<&str>,
    state: Option<&State>,
    cache: &mut dyn ContactCache,
) -> Result<(Vec<Planned>, Unplanned)> {
    let routes = world.routes();
    let mut unplanned = Unplanned::default();
    let mut planned = plan_providers(world, intake, ledger, only, state, &routes, &mut unplanned)?;
    if only.is_none() {
        planned.extend(plan_discovered(
            world,
            intake,
            ledger,
            state,
            cache,
            &routes,
            &mut unplanned,
        )?);
    }
    Ok((planned, unplanned))
}

/// Each configured provider's reports (`only`: that provider's alone).
pub(crate) fn plan_providers(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    only: Option<&str>,
    state: Option<&State>,
    routes: &Routes<'_, '_>,
    unplanned: &mut Unplanned,
) -> Result<Vec<Planned>> {
    let settings = world.settings;
    let since = world.since();
    let mut planned = Vec::new();
    for (i, provider) in world.providers.iter().enumerate() {
        if only.is_some_and(|o| o != provider.name()) {
            continue;
        }
        let mut selected = delta(
            &intake.observations,
            &|ip| routes.goes(ip, Destination::Provider(i)),
            &|ip| ledger.reported(i, ip),
            &|ip| ledger.last_sent(i, ip),
            since,
            &settings.report,
        );
        if selected.iter().any(|s| s.before.is_some()) {
            let first = |_| Ok(true);
            selected = with_lines_to_show(world, intake, i, state, selected, first, unplanned)?;
        }
        if selected.is_empty() {
            continue;
        }
        let desk = Desk {
            key: provider.name().to_string(),
            name: provider.name().to_string(),
            bucket: i,
            provider: Some(provider),
            contact: None,
            to: provider.config.to.clone(),
            thread_root: ledger.thread_roots[i].clone(),
            found: None,
            // Of every address selected: those the run's parts hold are a few of a flood's.
            spread: Some(Spread::of(selected.iter().map(|s| s.observation))),
        };
        // The first addresses, as many as the parts this run makes hold; the others are
        // selected again by a later run. Parts still waiting count against the run's: a
        // backlog drains before it grows.
        let waiting = match state {
            Some(s) => s.waiting_reports(provider.name())?,
            None => 0,
        };
        let parts = parts_per_run(settings).saturating_sub(waiting);
        let room = desk.part_size(settings).saturating_mul(parts);
        // More than the run's parts hold: first come, first served, by when each was first
        // seen, so that every address gets its turn, one that goes on attacking too, and those
        // nearest to passing `max_age_days` (history, never reported) are among the first. (In
        // address order, a flood of low addresses kept the high ones waiting until they aged
        // out; by last packet, one that went on attacking was always last.)
        let aging = |o: &Observation| world.ages_out_within_a_day(o.last_seen);
        let turn = |o: &Observation| (o.first_seen, address_order(o.ip));
        let over_room = selected.len() > room;
        if over_room {
            // The first `room` found in one pass, then put in order; a flood's million
            // others are not sorted.
            selected.select_nth_unstable_by_key(room, |s| turn(s.observation));
            selected[..room].sort_unstable_by_key(|s| turn(s.observation));
        }
        // Taken a slice at a time, whole records and all, until the room is filled with
        // addresses this provider's way out takes: a source the API cannot take (seen only
        // over ICMP, or only to or from port 0) neither holds a place nor keeps the others out.
        let mut attackers = Vec::new();
        let mut untold = 0;
        let mut rest = &selected[..];
        while attackers.len() < room && !rest.is_empty() {
            let (slice, after) = rest.split_at((room - attackers.len()).min(rest.len()));
            rest = after;
            let whole = whole_records(intake, &slice.iter().collect::<Vec<_>>(), state)?;
            let mut taken = enrich(whole, Some(provider), world.asn_db.as_ref());
            // The API takes XARF only: a source XARF cannot tell (no source or destination
            // port) is for mail, not for the API.
            if desk.api() {
                let before = taken.len();
                taken.retain(|a| crate::xarf::tells(&a.observation));
                untold += before - taken.len();
            }
            attackers.extend(taken);
        }
        // In their turn, a part's worth at a time, each part in address order: a part that
        // size splits further, or the run's last parts, leave the last in turn to wait.
        if over_room {
            let size = desk.part_size(settings).max(1);
            for part in attackers.chunks_mut(size) {
                part.sort_by_key(|a| address_order(a.observation.ip));
            }
        }
        let mut over = rest.len();
        let mut aging_out = rest.iter().filter(|s| aging(s.observation)).count();
        // Said on every run, so that nobody takes them for reported.
        if untold > 0 {
            crate::output::tell(format_args!(
                "abuse-mailer: warning: {untold} address(es) of {} were seen with no source or destination port (only over ICMP, or only to or from port 0); the AWS API takes no such report, so they are not reported",
                provider.name()
            ));
        }
        if !attackers.is_empty() {
            // Parts split further by size count too: the run makes no more messages than
            // its parts, whatever the lines' length.
            let (parts, left, oversized) =
                plan_desk(world, intake, &desk, &attackers, over, state, parts)?;
            unplanned.oversized += oversized;
            over += left;
            // What the parts left are the last of those taken.
            let left_over = &attackers[attackers.len() - left.min(attackers.len())..];
            aging_out += left_over.iter().filter(|a| aging(&a.observation)).count();
            planned.extend(parts);
        }
        // Said, as a budget too small for what is logged loses them.
        if aging_out > 0 {
            (unplanned.aging_out).push((provider.name().to_string(), aging_out));
        }
        if over > 0 {
            unplanned
                .over_run_parts
                .push((provider.name().to_string(), over));
        }
    }
    // In the order they are sent, with the reports waiting: see `app::in_send_order`.
    Ok(planned)
}

/// Items of several desks in turn: each desk's first, then each one's second, and so on; in
/// each round, and within a desk, in the order they come in `items`.
pub(crate) fn in_turn<T>(items: Vec<T>, desk: impl Fn(&T) -> &str) -> Vec<T> {
    in_turn_after(items, desk, &std::collections::HashMap::new())
}

/// [`in_turn`], the desks of each round in the order of their last turns (`turns`, the
/// higher the later): a desk never tried first, then the one tried longest ago. A budget
/// spent within the first round (one message a run) so goes to each desk in turn over the
/// runs, not to the same first desk every run.
pub(crate) fn in_turn_after<T>(
    items: Vec<T>,
    desk: impl Fn(&T) -> &str,
    turns: &std::collections::HashMap<String, u64>,
) -> Vec<T> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut keyed: Vec<(usize, Option<u64>, T)> = Vec::with_capacity(items.len());
    for item in items {
        let name = desk(&item);
        let turn = turns.get(name).copied();
        let nth = seen.entry(name.to_string()).or_insert(0);
        keyed.push((*nth, turn, item));
        *nth += 1;
    }
    // Stable: within a round, desks alike in their turns in the order given.
    keyed.sort_by_key(|(round, turn, _)| (*round, *turn));
    keyed.into_iter().map(|(_, _, item)| item).collect()
}

/// When an address discovery holds back at `now` is decided again (from the cache, unless
/// what decided expired; a registry's "none" is trusted for a week at most, a refused desk
/// for `cache_days`): the next midnight (UTC) at least a day on, so that the addresses held
/// in a day are looked at again together, by one run, not each by another.
fn recheck_at(now: DateTime<Utc>) -> DateTime<Utc> {
    let next = now.timestamp() + 2 * 86_400;
    DateTime::from_timestamp(next - next.rem_euclid(86_400), 0).unwrap_or(now)
}

/// One digest per discovered contact of the addresses in no provider: each address's contact
/// is looked up (the cache first, then the network within `max_lookups_per_run`), and each
/// contact gets at most one report this run. Addresses whose lookup waits stay in the delta.
pub(crate) fn plan_discovered(
    world: &World<'_>,
    intake: &Intake,
    ledger: &Ledger,
    state: Option<&State>,
    cache: &mut dyn ContactCache,
    routes: &Routes<'_, '_>,
    unplanned: &mut Unplanned,
) -> Result<Vec<Planned>> {
    let Some(cfg) = world.discover else {
        return Ok(Vec::new());
    };
    let n = world.bucket(Destination::Discovered);
    let selected = delta(
        &intake.observations,
        &|ip| routes.goes(ip, Destination::Discovered),
        &|ip| ledger.reported(n, ip),
        &|ip| ledger.last_sent(n, ip),
        world.since(),
        &world.settings.report,
    );
    // A desk that never heard from us is shown the log lines: an address with none kept (seen
    // before discovery was enabled) is not reported to it, unless it is logged again.
    let first = intake.has_evidence(world, n, state);
    let selected = with_lines_to_show(world, intake, n, state, selected, first, unplanned)?;
    if selected.is_empty() {
        return Ok(Vec::new());
    }
    // Addresses whose lookup failed before are looked up after the others, the most recent
    // failure last: a few that always fail cannot take every run's lookups.
    let failed = cache.failures().unwrap_or_default();
    let mut order: Vec<&crate::select::Selected<'_>> = selected.iter().collect();
    order.sort_by_key(|s| (failed.get(&s.observation.ip).copied(), s.observation.ip));
    // Desks that refused a report (a mailbox that does not exist) are not written to again
    // while what discovery found is trusted.
    let refused = match state {
        Some(s) => s.refused_desks(
            &utc_text(world.now - chrono::Duration::days(i64::from(cfg.cache_days))),
            &utc_text(crate::discover::cache::ahead_of(world.now)),
        )?,
        None => HashSet::new(),
    };
    // The operator's own mailboxes are never a desk (a registrant may name them).
    let report = &world.settings.report;
    let own: Vec<String> = std::iter::once(&report.from)
        .chain(&report.cc)
        .chain(&report.reply_to)
        .map(|m| m.email.to_string().to_ascii_lowercase())
        .collect();
    let mut discoverer = Discoverer::new(cfg, Limits::default(), cache, world.now);
    // One digest per mailbox, however its registry spells it.
    let mut by_contact: std::collections::BTreeMap<String, (Contact, Vec<&_>)> =
        std::collections::BTreeMap::new();
    // How each address's desk was found: a mailbox may be named by RDAP for some of its
    // addresses and by Abusix for others, and a digest says which for which.
    let mut found: std::collections::HashMap<IpAddr, Contact> = std::collections::HashMap::new();
    let mut failures = Vec::new();
    // Addresses decided not to be reported for now: decided again a day on, when what
    // decided may have changed (a "none" expired, a refusal forgotten), even if nothing new
    // is logged from them.
    let mut held = Vec::new();
    for s in order {
        let ip = s.observation.ip;
        let lookup = discoverer.lookup(ip);
        match lookup.outcome {
            discover::Outcome::Found(c) => {
                let key = c.address.to_ascii_lowercase();
                if own.contains(&key) || refused.contains(&crate::state::contact_key(&key)) {
                    held.push(ip);
                    continue;
                }
                found.insert(ip, c.clone());
                by_contact
                    .entry(key)
                    .or_insert_with(|| (c, Vec::new()))
                    .1
                    .push(s);
            }
            // Decided: nobody to write to (until the cache entry expires).
            discover::Outcome::Never(_) | discover::Outcome::NoContact => held.push(ip),
            discover::Outcome::Failed(why) => {
                unplanned.lookups_waiting += 1;
                if !lookup.cached {
                    failures.push(ip);
                }
                if unplanned.failures.len() < 3 {
                    unplanned.failures.push(format!("{ip}: {why}"));
                }
            }
            discover::Outcome::Deferred => unplanned.lookups_waiting += 1,
        }
    }
    if unplanned.lookups_waiting > 0 {
        unplanned.lookup_time_spent = discoverer.time_spent().map(|t| t.as_secs());
    }
    drop(discoverer);
    for ip in failures {
        // Not remembering it only loses the order: the address is looked up again anyway.
        let _ = cache.note_failure(ip, world.now);
    }
    cache
        .note_held(&held, recheck_at(world.now))
        .context("remembering the addresses discovery held back")?;
    // The desk whose address has waited longest goes first: within max_messages_per_run, no
    // desk waits for ever behind others.
    let mut groups: Vec<(String, Contact, Vec<&crate::select::Selected<'_>>)> = by_contact
        .into_iter()
        .map(|(key, (mut contact, mut group))| {
            contact.address = key.clone();
            group.sort_by_key(|s| s.observation.ip);
            // The contact named is the first address's that RDAP found, with its network;
            // else the first's (Abusix names no network).
            let lead = (group.iter())
                .filter_map(|s| found.get(&s.observation.ip))
                .find(|c| c.source == discover::Source::Rdap)
                .or_else(|| group.first().and_then(|s| found.get(&s.observation.ip)));
            if let Some(lead) = lead {
                contact.source = lead.source;
                contact.network = lead.network;
                contact.origin = lead.origin.clone();
                contact.handle = lead.handle.clone();
            }
            (key, contact, group)
        })
        .collect();
    groups.sort_by_key(|(key, _, group)| {
        let oldest = group.iter().map(|s| s.observation.first_seen).min();
        (oldest, key.clone())
    });
    // As many digests as a run's parts: the others (a backlog of thousands of desks found a
    // few hundred a run) are made by later runs, not made and let go by every run.
    let room = parts_per_run(world.settings);
    for (_, _, group) in groups.iter().skip(room) {
        unplanned.desks_waiting += 1;
        unplanned.desks_waiting_addresses += group.len();
    }
    groups.truncate(room);
    let mut planned = Vec::new();
    for (key, contact, group) in &groups {
        let Ok(email) = contact.address.parse::<lettre::Address>() else {
            // Only a cache row edited by hand gets here: the address waits, said.
            unplanned.lookups_waiting += group.len();
            unplanned.failures.push(format!(
                "cached contact {:?} is no mail address",
                contact.address
            ));
            continue;
        };
        let whole = whole_records(intake, group, state)?;
        let mut attackers = enrich(whole, None, world.asn_db.as_ref());
        let key = crate::state::contact_key(key);
        // Discovered desks share one ledger entry (an address goes to one of them): what this
        // desk was told is its own last report's, and an address sent to another desk before,
        // due again now, is new to this one.
        if let Some(s) = state {
            for a in attackers.iter_mut().filter(|a| a.before.is_some()) {
                a.before = s.last_sent(&key, a.observation.ip)?;
            }
        }
        let thread_root = match state {
            Some(s) => s.thread_root(&key)?,
            None => None,
        };
        let desk = Desk {
            key,
            name: contact.domain().to_string(),
            bucket: n,
            provider: None,
            contact: Some(contact),
            to: vec![Mailbox::new(None, email)],
            thread_root,
            found: Some(&found),
            spread: None,
        };
        let (parts, left, oversized) = plan_desk(world, intake, &desk, &attackers, 0, state, 1)?;
        unplanned.oversized += oversized;
        unplanned.over_contact_report += left;
        planned.extend(parts);
    }
    Ok(planned)
}

/// `selected` less the addresses with no log line to show desk number `bucket`: a re-report
/// shows what the address did since the report before, and one with no line of that kept
/// (logged while re-reporting was off, its lines crowded out by others) waits until it is
/// logged again, at most until `rereport_after_days` after it came due or after its last
/// packet, whichever is first: then it goes without, rather than never. A first report goes
/// where `first` says of its address. Each left out is counted in `unplanned`.
fn with_lines_to_show<'s>(
    world: &World<'_>,
    intake: &Intake,
    bucket: usize,
    state: Option<&State>,
    selected: Vec<crate::select::Selected<'s>>,
    mut first: impl FnMut(IpAddr) -> Result<bool>,
    unplanned: &mut Unplanned,
) -> Result<Vec<crate::select::Selected<'s>>> {
    let report = &world.settings.report;
    let window = i64::from(report.rereport_after_days.unwrap_or(0)) * 86_400;
    // Nor so long that its packets pass `max_age_days` meanwhile, and it is never reported.
    let quiet = match report.max_age_days {
        0 => window,
        days => window.min(i64::from(days) * 86_400 / 2),
    };
    let now = world.now.timestamp();
    // Not longer than a window after it came due (an address logged every day whose lines
    // since are crowded out every day), nor than a window after its last packet: a window
    // more, and it is no re-report at all (see `select::delta`).
    let waited = |s: &crate::select::Selected<'_>, before: &Reported| {
        let due_until = (before.at).map_or(i64::MIN, |at| at.saturating_add(2 * window));
        let quiet_until = s.observation.last_seen.saturating_add(quiet);
        now >= due_until.min(quiet_until)
    };
    // The re-reports still waited for with a line since, asked as their reports' lines are
    // chosen (see `start_part`), a few thousand addresses at a time.
    let asked: Vec<(IpAddr, i64)> = (selected.iter())
        .filter_map(|s| s.before.as_ref().filter(|b| !waited(s, b)).map(|b| (s, b)))
        .map(|(s, b)| (s.observation.ip, b.counted_through()))
        .collect();
    let mut with_line = HashSet::new();
    for chunk in asked.chunks(4096) {
        let ips: Vec<IpAddr> = chunk.iter().map(|&(ip, _)| ip).collect();
        let lines = intake.evidence_for(world, bucket, &ips, state)?;
        with_line.extend(
            lines_to_show(lines, &chunk.iter().copied().collect())
                .iter()
                .map(|l| l.ip),
        );
    }
    let mut shown = Vec::with_capacity(selected.len());
    for s in selected {
        let ip = s.observation.ip;
        match &s.before {
            Some(before) => match waited(&s, before) || with_line.contains(&ip) {
                true => shown.push(s),
                false => unplanned.rereports_without_lines += 1,
            },
            None => match first(ip)? {
                true => shown.push(s),
                false => unplanned.without_lines += 1,
            },
        }
    }
    Ok(shown)
}

/// `lines` less those of a re-reported address stamped at or before what its report counted
/// (`since`, by address: [`Reported::counted_through`]): what the desk was told then, or
/// late lines of no new attack. A re-report shows what its address did since.
fn lines_to_show(
    mut lines: Vec<EvidenceLine>,
    since: &std::collections::HashMap<IpAddr, i64>,
) -> Vec<EvidenceLine> {
    if !since.is_empty() {
        lines.retain(|l| since.get(&l.ip).is_none_or(|&after| l.time > after));
    }
    lines
}

/// The reports of one destination's attackers: split by `max_ips_per_message` (one address
/// each for XARF and the API) and `max_message_bytes`, numbered as parts of one thread, at
/// most `max_parts` of them (a discovered contact is given 1); returns the parts, how many
/// addresses that leaves for a later run, and how many parts of one address wait as too
/// large even without log lines. `beyond`: the destination's addresses already left for a
/// later run besides `attackers`, which the parts say are still to come.
pub(crate) fn plan_desk(
    world: &World<'_>,
    intake: &Intake,
    desk: &Desk<'_>,
    attackers: &[Attacker],
    beyond: usize,
    state: Option<&State>,
    max_parts: usize,
) -> Result<(Vec<Planned>, usize, usize)> {
    let settings = world.settings;
    let size = desk.part_size(settings);
    let limit = settings.report.max_message_bytes;
    let mut chunks: Vec<std::ops::Range<usize>> = (0..attackers.len())
        .step_by(size)
        .map(|start| start..(start + size).min(attackers.len()))
        .collect();
    let mut left = 0;
    // At most `max_parts` messages (a discovered desk gets one); the addresses of the others
    // wait for a later run.
    let at_most = |chunks: &mut Vec<std::ops::Range<usize>>, left: &mut usize| {
        chunks.truncate(max_parts.max(1));
        *left = attackers.len() - chunks.iter().map(|r| r.len()).sum::<usize>();
    };
    at_most(&mut chunks, &mut left);
    // Numbered and rendered once; only when a part of several addresses is over the
    // limit are the parts sized and rendered again.
    let mut parts = number_parts(
        world,
        intake,
        desk,
        attackers,
        &chunks,
        beyond + left,
        state,
    )?;
    let over =
        |p: &Planned, r: &std::ops::Range<usize>| r.len() > 1 && p.record.message.len() > limit;
    if parts.iter().zip(&chunks).any(|(p, r)| over(p, r)) {
        let mut fitted = fit_parts(world, intake, desk, attackers, chunks, state, max_parts)?;
        at_most(&mut fitted, &mut left);
        parts = number_parts(
            world,
            intake,
            desk,
            attackers,
            &fitted,
            beyond + left,
            state,
        )?;
        chunks = fitted;
    }
    let mut kept = Vec::with_capacity(parts.len());
    let mut oversized = 0;
    for (part, range) in parts.into_iter().zip(&chunks) {
        // One address, too large even without log lines (a template that says a lot):
        // it waits, named, and the others go out.
        if part.record.message.len() > limit {
            crate::output::tell(format_args!(
                "abuse-mailer: warning: the report on {} to {} is over report.max_message_bytes = {limit} even without log lines; it waits (raise the limit or shorten the templates)",
                attackers[range.start].observation.ip, desk.name
            ));
            oversized += 1;
            continue;
        }
        kept.push(part);
    }
    Ok((kept, left, oversized))
}

/// Renders `ranges` of `attackers` as the numbered parts of one thread; `later` addresses
/// of the destination are left for later reports.
pub(crate) fn number_parts(
    world: &World<'_>,
    intake: &Intake,
    desk: &Desk<'_>,
    attackers: &[Attacker],
    ranges: &[std::ops::Range<usize>],
    later: usize,
    state: Option<&State>,
) -> Result<Vec<Planned>> {
    let mut parts = Vec::with_capacity(ranges.len());
    // Later parts reply to the first, so a split report reads as one thread.
    let mut later_root = desk.thread_root.clone();
    // Every part says what all the addresses are together.
    let whole = desk.spread_of(attackers);
    // As many parts at a time as there are cores: the state is asked for them in order, then
    // their messages are made side by side. A run of many parts holds a few parts' lines at
    // once, not every part's.
    let batch = crate::parallel::threads();
    for first in (0..ranges.len()).step_by(batch) {
        let these = &ranges[first..(first + batch).min(ranges.len())];
        let starts = (these.iter())
            .map(|range| start_part(world, intake, desk, &attackers[range.clone()], state))
            .collect::<Result<Vec<_>>>()?;
        if later_root.is_none() {
            later_root = starts.first().map(|s| s.message_id.clone());
        }
        let jobs = (these.iter().zip(starts).enumerate())
            .map(|(i, (range, start))| (first + i, range.clone(), start))
            .collect();
        let made = crate::parallel::map_in_order(jobs, |(k, range, start)| {
            let root = match k {
                0 => desk.thread_root.as_deref(),
                _ => later_root.as_deref(),
            };
            let part = (k + 1, ranges.len(), later);
            compose_part(world, desk, &attackers[range], part, root, &whole, start)
        });
        for part in made {
            parts.push(part?);
        }
    }
    Ok(parts)
}

/// Splits `chunks` until each of several addresses fits `max_message_bytes`: a chunk is tried
/// once as a part with the longest numbering and thread headers it could get, and only the
/// halves of one that is too large are tried again. A part numbered for real is no larger.
pub(crate) fn fit_parts(
    world: &World<'_>,
    intake: &Intake,
    desk: &Desk<'_>,
    attackers: &[Attacker],
    chunks: Vec<std::ops::Range<usize>>,
    state: Option<&State>,
    max_parts: usize,
) -> Result<Vec<std::ops::Range<usize>>> {
    let settings = world.settings;
    let probe_root = format!(
        "<{}-{}-{:016x}-99999@{}>",
        world.now.format("%Y%m%dT%H%M%SZ"),
        desk.id_name(),
        u64::MAX,
        settings.report.message_id_domain()
    );
    let probe_root = match &desk.thread_root {
        Some(root) if root.len() > probe_root.len() => root.clone(),
        _ => probe_root,
    };
    let whole = desk.spread_of(attackers);
    let mut fitted = Vec::with_capacity(chunks.len());
    let mut queue: std::collections::VecDeque<std::ops::Range<usize>> = chunks.into();
    // In address order: once `max_parts` fit, the rest wait for a later run unrendered.
    while let Some(range) = queue.pop_front() {
        if fitted.len() >= max_parts.max(1) {
            break;
        }
        if range.len() > 1 {
            let these = &attackers[range.clone()];
            let start = start_part(world, intake, desk, these, state)?;
            // The longest numbering and count of what follows it could get.
            let part = (99_999, 99_999, usize::MAX);
            let trial = compose_part(world, desk, these, part, Some(&probe_root), &whole, start)?;
            if trial.record.message.len() > settings.report.max_message_bytes {
                let mid = range.start + range.len() / 2;
                queue.push_front(mid..range.end);
                queue.push_front(range.start..mid);
                continue;
            }
        }
        fitted.push(range);
    }
    Ok(fitted)
}

/// What a part asks of the state, in the order its parts are made: the lines of its
/// addresses and an id no stored report has.
pub(crate) struct PartStart {
    pool: Vec<EvidenceLine>,
    id: String,
    message_id: String,
}

/// A part's [`PartStart`].
fn start_part(
    world: &World<'_>,
    intake: &Intake,
    desk: &Desk<'_>,
    attackers: &[Attacker],
    state: Option<&State>,
) -> Result<PartStart> {
    let ips: Vec<IpAddr> = attackers.iter().map(|a| a.observation.ip).collect();
    let since = (attackers.iter())
        .filter_map(|a| Some((a.observation.ip, a.before.as_ref()?.counted_through())))
        .collect();
    let pool = lines_to_show(
        intake.evidence_for(world, desk.bucket, &ips, state)?,
        &since,
    );
    // A report with no line to make its id of (a re-report whose lines since were not kept)
    // is told apart by the hosts that logged its packets and their targets: two servers of
    // one operator re-reporting one address in the same second gave one Message-ID.
    let seen_by = match pool.is_empty() {
        true => (attackers.iter())
            .flat_map(|a| {
                let o = &a.observation;
                (o.hosts.iter().map(|h| h.to_string())).chain(o.dsts.iter().map(|d| d.to_string()))
            })
            .collect::<Vec<_>>()
            .join(","),
        false => String::new(),
    };
    let id = report_id(world.now, desk.id_name(), &ips, &pool, &seen_by, state)?;
    let message_id = format!("<{id}@{}>", world.settings.report.message_id_domain());
    Ok(PartStart {
        pool,
        id,
        message_id,
    })
}

/// The message of a part from its [`PartStart`]: asks nothing of the state, so that a desk's
/// parts are made side by side.
fn compose_part(
    world: &World<'_>,
    desk: &Desk<'_>,
    attackers: &[Attacker],
    part: (usize, usize, usize),
    thread_root: Option<&str>,
    whole: &Spread,
    start: PartStart,
) -> Result<Planned> {
    let settings = world.settings;
    let PartStart {
        pool,
        id,
        message_id,
    } = start;
    let mut window: Option<Window> = densest(
        pool.clone(),
        settings.report.sample_seconds,
        settings.report.max_excerpt_lines,
    );
    // The kept lines are a few of each address's: the window's count is made from what the
    // addresses' records say, and said to be a least where they cannot tell.
    let at_least = window.as_mut().is_some_and(|w| {
        let (count, exact) = lines_in_window(w, settings.report.sample_seconds, attackers, &pool);
        w.count = count;
        !exact
    });
    let head = Envelope {
        from: &settings.report.from,
        to: &desk.to,
        cc: &settings.report.cc,
        reply_to: settings.report.reply_to.as_ref(),
        message_id: &message_id,
        thread_root,
        date: world.now,
    };
    // A part of one address that is still too large carries fewer log lines (long lines
    // can be forged): halved until it fits, the address's own lines last of all.
    let api = desk.api();
    let mut lines = usize::MAX;
    let (report, subject, bytes) = loop {
        let mut report = Report::new(
            &desk.name,
            &desk.to,
            attackers,
            window.as_ref(),
            &settings.report,
            settings.zone,
            world.now,
        )
        .part(part.0, part.1)
        .later(part.2)
        .for_desk(desk.contact.map(|c| {
            let networks = desk.networks_of(attackers);
            // A handle and a URL name one network's record: given only when there is one.
            let one = networks.as_ref().is_none_or(|(_, n)| *n == 1);
            // This part's addresses: by RDAP (the sentence names its network), or by Abusix.
            let by = |source| {
                (attackers.iter())
                    .filter_map(|a| desk.found?.get(&a.observation.ip))
                    .filter(|f| f.source == source)
                    .collect::<Vec<_>>()
            };
            let (rdap, abusix) = (by(discover::Source::Rdap), by(discover::Source::Abusix));
            let lead = rdap.first().or(abusix.first()).copied().unwrap_or(c);
            crate::render::Desk {
                address: c.address.clone(),
                source: lead.source.name().to_string(),
                network: networks.map(|(text, _)| text),
                handle: lead.handle.clone().filter(|_| one),
                origin: lead.origin.clone(),
                abusix_also: (!rdap.is_empty() && !abusix.is_empty()).then(|| {
                    crate::render::AbusixAlso {
                        addresses: abusix.len(),
                        origin: abusix[0].origin.clone(),
                    }
                }),
            }
        }))
        .of_whole(whole)
        .with_evidence(&pool, &settings.report, lines);
        report.excerpt.truncate(lines);
        report.name_attachments(&settings.report);
        report.excerpt_window_at_least = at_least;
        let (subject, body) = world.templates.render(&mut report)?;
        // An API report stores the exact request body: a retry sends the same clientToken
        // with the same payload.
        let bytes = if api {
            let test = settings.aws_api.as_ref().is_some_and(|a| a.test);
            crate::aws_api::request_body(&report, &id, &world.installation, &message_id, test)?
        } else {
            let document = match report.xarf {
                true => crate::xarf::document(&report, &message_id),
                false => None,
            };
            message(&head, &subject, &body, &report, document.as_ref())?
        };
        if bytes.len() <= settings.report.max_message_bytes || attackers.len() > 1 || lines == 0 {
            // Each address's own lines are in the message now: a flood's parts would hold a
            // hundred thousand of them until the run ends, with what else only templates read.
            report.let_go_of_template_values();
            break (report, subject, bytes);
        }
        lines = lines.min(
            report
                .excerpt
                .len()
                .max(crate::render::EVIDENCE_PER_ADDRESS),
        ) / 2;
    };
    let recipients = if api {
        vec![crate::aws_api::destination(settings)]
    } else {
        desk.to
            .iter()
            .chain(&settings.report.cc)
            .map(|m| m.email.to_string())
            .collect()
    };
    let record = ReportRecord {
        id,
        provider: desk.key.clone(),
        recipients,
        subject,
        message_id,
        status: Status::Sending,
        created_at: utc_text(world.now),
        sent_at: None,
        attempts: 0,
        last_error: None,
        server_reply: None,
        unconfirmed: 0,
        handed: 0,
        ips: attackers
            .iter()
            .map(|a| ReportedIp {
                ip: a.observation.ip,
                hits: a.observation.hits,
                first_seen: a.observation.first_seen,
                last_seen: a.observation.last_seen,
            })
            .collect(),
        message: bytes,
        contact: desk.contact.map(|c| ReportContact {
            address: c.address.clone(),
            source: c.source.name().to_string(),
            network: c.network.map(|n| n.to_string()),
        }),
    };
    Ok(Planned { report, record })
}

/// How many packets of `attackers` the window `w` (`seconds` long) holds, and whether that is
/// exact. The lines kept as evidence are each address's first few and a run's densest
/// window, capped at `max_excerpt_lines`: a flood of 200 packets in a second keeps 50 of
/// them, and counting kept lines said the second "held 50 lines". An address whose packets
/// all fall inside the window (its first and last sighting do) has all its hits there; one
/// whose packets all fall outside has none; one whose every packet was kept is counted line
/// by line. Any other address is counted by its kept lines, and the count is a least.
fn lines_in_window(
    w: &Window,
    seconds: u32,
    attackers: &[Attacker],
    pool: &[EvidenceLine],
) -> (u64, bool) {
    let (start, end) = (w.start, w.start + i64::from(seconds.max(1)));
    let mut kept: std::collections::HashMap<IpAddr, (u64, u64)> = std::collections::HashMap::new();
    for l in pool {
        let (all, inside) = kept.entry(l.ip).or_default();
        *all += 1;
        if (start..end).contains(&l.time) {
            *inside += 1;
        }
    }
    let (mut count, mut exact) = (0, true);
    for a in attackers {
        let o = &a.observation;
        let (all, inside) = kept.get(&o.ip).copied().unwrap_or_default();
        if o.last_seen < start || o.first_seen >= end {
            continue;
        }
        if o.first_seen >= start && o.last_seen < end {
            count += o.hits.max(inside);
        } else {
            count += inside;
            exact &= all >= o.hits;
        }
    }
    (count, exact)
}

/// `20260125T235125Z-aws-1a2b3c4d5e6f7a8b`: time, provider and a 64-bit hash of the IPs and
/// of the log lines the message is made from, so that ids from several writers, and the thousands of
/// one-address reports of one run, do not collide; a taken id gets a counter. The lines tell
/// apart the reports of a fleet's hosts that report the same addresses in the same second
/// (a timer fires on all of them at once): the Message-ID is made of the id, and a desk's
/// mail system keeps one message of each Message-ID. A report without lines is told apart
/// by `seen_by` (the hosts that logged its packets, and their targets).
pub(crate) fn report_id(
    now: DateTime<Utc>,
    provider: &str,
    ips: &[IpAddr],
    lines: &[EvidenceLine],
    seen_by: &str,
    state: Option<&State>,
) -> Result<String> {
    let text = ips
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut hash = (lines.iter()).fold(fnv1a(text.as_bytes()), |h, line| {
        fnv1a_on(fnv1a_on(h, b"\n"), line.text.as_bytes())
    });
    // Folded in only when there is something to fold: the ids of reports with lines are as
    // they always were.
    if !seen_by.is_empty() {
        hash = fnv1a_on(fnv1a_on(hash, b"\t"), seen_by.as_bytes());
    }
    let base = format!("{}-{provider}-{hash:016x}", now.format("%Y%m%dT%H%M%SZ"));
    let Some(state) = state else {
        return Ok(base);
    };
    let mut id = base.clone();
    let mut n = 2;
    while state.report_exists(&id)? {
        id = format!("{base}-{n}");
        n += 1;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_addresses_are_decided_again_at_a_midnight_a_day_or_two_on() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let morning = recheck_at(at("2026-01-26T08:00:00Z"));
        let night = recheck_at(at("2026-01-26T23:59:00Z"));
        assert_eq!(morning, at("2026-01-28T00:00:00Z"));
        assert_eq!(
            night,
            at("2026-01-28T00:00:00Z"),
            "one run takes a day's together"
        );
        assert_eq!(
            recheck_at(at("2026-01-27T00:00:00Z")),
            at("2026-01-29T00:00:00Z")
        );
    }
}
