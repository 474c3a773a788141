//! The ledger's rules, and the one place that sends: a report row, its IPs and the exact
//! message are written with status `sending` before a transport sees them, and marked `sent`
//! only after the transport accepted. No transport is called before the run holds what
//! recording its answer needs (the state's write lock and space on its disk), so a report
//! cannot go out on every run of a state that cannot be written. One configuration file runs
//! on a state: each source's cursor is its own. Reports left `sending` (a crash) or `failed` (a
//! transient error) are sent again, as stored, before anything new, unless the configuration
//! changed since so that they must not go (see [`withdrawn`]). A rejected report gives its
//! IPs back to the next one, except where the receiver would refuse them again (an API that
//! refused the content, a discovered desk whose mailbox refuses). An IP is in at most one report
//! per destination that is not rejected, and in at most one to any discovered desk.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::cli::Verbosity;
use crate::clock::{self, utc_text};
use crate::config::{self, Settings};
use crate::enrich::Reported;
use crate::error::ConfigError;
use crate::intake::{Destination, World};
use crate::provider::Provider;
use crate::send::{SendError, Transport};
use crate::state::{CONTACT_DESKS, IpSet, ReportRecord, SentAt, State, Status};

/// What the ledger says each destination must not be sent again: one entry per evidence
/// bucket (each provider, in order, then, with discovery, every discovered desk together).
pub(crate) struct Ledger {
    /// Each destination's rule: its key, and what of its history counts.
    desks: Vec<DeskRule>,
    since: Option<String>,
    /// With `rereport_after_days`: who was ever sent matters.
    rereport: bool,
    /// Test reports to the API count as reported (`aws_api.test`).
    test: bool,
    /// Reports a preview leaves out, as the run will withdraw them.
    withdrawn: Vec<String>,
    known: Known,
    pub(crate) thread_roots: Vec<Option<String>>,
}

/// A destination as the ledger reads it.
#[derive(Debug, Clone)]
struct DeskRule {
    key: String,
    /// Delivered through the AWS API: what it refused for content stays reported.
    api: bool,
    /// Every discovered desk together: what a desk refused stays reported.
    contacts: bool,
}

/// Where the answers come from.
enum Known {
    /// Nothing reported anywhere (no state, or a run that selects nothing).
    Nothing,
    /// The state, asked (see [`Asker`]).
    Asked(Box<Asker>),
}

/// Questions a run asks of the state one address at a time before it reads every
/// destination's addresses at once: asked through the address index, a question costs some
/// microseconds, and reading all costs about half a microsecond an address ever reported. A
/// run that reads a timer's worth of lines asks about its addresses, so that it costs what it
/// read, not what was reported before; a flood's run, or one that looks at every stored
/// address (no settled marker), reads all once it has asked this many.
const QUESTIONS_BEFORE_READING_ALL: usize = 2_000;

/// The state, asked address by address until [`QUESTIONS_BEFORE_READING_ALL`], then read
/// whole; every answer kept. Reader threads ask too, over a connection of its own.
struct Asker {
    state: std::sync::Mutex<State>,
    answers: std::sync::Mutex<std::collections::HashMap<(usize, std::net::IpAddr), Answer>>,
    /// Each destination's addresses reported and ever sent, once read whole.
    whole: std::sync::OnceLock<Result<Whole, String>>,
    /// Questions asked one at a time so far.
    asked: std::sync::atomic::AtomicUsize,
    /// The first question the state could not answer (see [`Ledger::check`]).
    failed: std::sync::Mutex<Option<String>>,
}

/// Every destination's addresses reported and ever sent.
struct Whole {
    reported: Vec<IpSet>,
    ever_sent: Vec<SentAt>,
}

/// Of one address and destination: whether it must not be sent again, and how the last
/// report sent listing it gave it, if one did.
type Answer = (bool, Option<Reported>);

/// The start of the reason a waiting report is withdrawn with: a withdrawn report's addresses
/// are free again, also where a rejected report's stay reported (an API's refusal, a
/// discovered desk's; see [`crate::state::State::rejected_ips`]). Nothing a server answers
/// begins so.
pub(crate) const WITHDRAWN: &str = "withdrawn unsent:";

/// Whether a stored API request was made as a test: tagged `lifecycle:test`.
fn made_as_test(request: &[u8]) -> bool {
    let tag = format!("\"{}\"", crate::aws_api::TEST_TAG);
    memchr::memmem::find(request, tag.as_bytes()).is_some()
}

/// Why a report waiting to be sent again must not go as stored, if so: the configuration
/// changed since it was made. One of its addresses is in `report.ignore` now; a provider's
/// report: its provider is gone, no longer holds one of its addresses (a range file replaced,
/// `services` or `regions` changed), or is mailed at other addresses; a discovered desk's
/// digest: discovery is off, the desk is in `never`, `cc` changed, or one of its addresses is
/// a configured provider's now. Such a report is withdrawn (`rejected`, with this reason)
/// rather than sent: its addresses still to be reported go in a new report, made as the
/// configuration says now. A report made for the AWS API is also withdrawn when it was made
/// as a test and `aws_api.test` is off now, or for real and it is on (its stored request is
/// read from `state`).
pub(crate) fn withdrawn(
    record: &ReportRecord,
    world: &World<'_>,
    state: &State,
) -> Result<Option<String>> {
    if let Some(why) = withdrawn_as_made(record, world) {
        return Ok(Some(why));
    }
    // Made with a `report.from` changed since (a relay refused it: "kept and goes out once
    // that is fixed") and never handed to any server: it would go under the new envelope
    // sender with the old From, which DMARC fails and the desk answers, and a Message-ID in
    // the old domain. No copy of it is anywhere, so it is made anew. (One that may have
    // reached a server goes as stored, alike to any copy there.)
    if record.handed == 0 && !record.made_for_api() {
        let message = match record.message.is_empty() {
            true => state.message_start(&record.id, HEAD_AT_MOST)?,
            false => record.message.clone(),
        };
        if let Some(old) = made_from_another(&message, &world.settings.report.from) {
            return Ok(Some(format!(
                "{WITHDRAWN} made with From {old}, and report.from is {} now; it never reached a server",
                world.settings.report.from.email
            )));
        }
    }
    let Some(now) = (world.settings.aws_api.as_ref())
        .map(|a| a.test)
        .filter(|_| record.made_for_api() && record.contact.is_none())
    else {
        return Ok(None);
    };
    let message = match record.message.is_empty() {
        true => state.message_of(&record.id)?,
        false => record.message.clone(),
    };
    let test = made_as_test(&message);
    Ok((test != now).then(|| match test {
        true => format!("{WITHDRAWN} made as a test report, and aws_api.test is off now"),
        false => format!("{WITHDRAWN} made as a real report, and aws_api.test is on now"),
    }))
}

/// [`withdrawn`] of what a report's head tells.
fn withdrawn_as_made(record: &ReportRecord, world: &World<'_>) -> Option<String> {
    let settings = world.settings;
    if let Some(i) =
        (record.ips.iter()).find(|i| crate::select::is_ignored(i.ip, &settings.report.ignore))
    {
        return Some(format!("{WITHDRAWN} {} is in report.ignore now", i.ip));
    }
    if let Some(contact) = &record.contact {
        return contact_withdrawn(record, contact, world);
    }
    let Some(provider) = (world.providers.iter()).find(|p| p.name() == record.provider) else {
        return Some(format!(
            "{WITHDRAWN} provider {} is no longer configured",
            record.provider
        ));
    };
    if let Some(i) = (record.ips.iter()).find(|i| !provider.matches(i.ip, world.asn(i.ip))) {
        return Some(format!(
            "{WITHDRAWN} {} is no longer in provider {}'s ranges",
            i.ip, record.provider
        ));
    }
    // A report made for the API goes as stored; a provider switched between mail and the
    // API refuses the other way's report at the send, as it always has.
    if record.made_for_api() || provider.config.delivery == config::Delivery::AwsAbuseApi {
        return None;
    }
    let now = mailboxes(provider.config.to.iter().chain(&settings.report.cc));
    recipients_changed(
        &record.recipients,
        now,
        &format!("provider {}", record.provider),
    )
}

/// [`withdrawn`] for a digest to a discovered desk.
fn contact_withdrawn(
    record: &ReportRecord,
    contact: &crate::state::ReportContact,
    world: &World<'_>,
) -> Option<String> {
    let Some(discover) = world.discover else {
        return Some(format!("{WITHDRAWN} [discover] is no longer enabled"));
    };
    let domain = contact.address.rsplit_once('@').map_or("", |(_, d)| d);
    if crate::discover::address::is_never(&domain.to_lowercase(), &discover.never) {
        return Some(format!(
            "{WITHDRAWN} {} is in discover.never now",
            contact.address
        ));
    }
    let taken = |ip| {
        world.route(ip).iter().find_map(|to| match to {
            Destination::Provider(n) => Some(world.providers[*n].name().to_string()),
            Destination::Discovered => None,
        })
    };
    if let Some((ip, provider)) = (record.ips.iter()).find_map(|i| Some((i.ip, taken(i.ip)?))) {
        return Some(format!(
            "{WITHDRAWN} {ip} is in provider {provider}'s ranges now"
        ));
    }
    let mut now = mailboxes(&world.settings.report.cc);
    now.insert(contact.address.to_lowercase());
    recipients_changed(
        &record.recipients,
        now,
        &format!("the desk {}", contact.address),
    )
}

/// Mail addresses as a set, in lower case: a desk is one desk however it is spelt.
fn mailboxes<'m>(of: impl IntoIterator<Item = &'m lettre::message::Mailbox>) -> BTreeSet<String> {
    (of.into_iter())
        .map(|m| m.email.to_string().to_lowercase())
        .collect()
}

/// A stored recipient as the configuration gives one now: in lower case, its domain in its
/// `xn--` form where it is in other letters (an earlier release kept `abuse@bücher.example`
/// as written).
fn desk_address(recipient: &str) -> String {
    let lower = recipient.to_lowercase();
    match lower.rsplit_once('@') {
        Some((user, domain)) if !domain.is_ascii() => {
            config::ascii_domain(domain).map_or(lower.clone(), |d| format!("{user}@{d}"))
        }
        _ => lower,
    }
}

/// Why a report to `whom` is withdrawn when it was made for other recipients than `now`.
fn recipients_changed(recipients: &[String], now: BTreeSet<String>, whom: &str) -> Option<String> {
    let then: BTreeSet<String> = (recipients.iter()).map(|r| r.to_lowercase()).collect();
    if now == then {
        return None;
    }
    let shown = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>().join(", ");
    // The same desk, its domain written in other letters when the report was made: made
    // anew with the `xn--` form, which any relay takes (sent as made, it needs SMTPUTF8).
    let ascii: BTreeSet<String> = then.iter().map(|r| desk_address(r)).collect();
    if now == ascii {
        return Some(format!(
            "{WITHDRAWN} {whom}'s address, written in other letters when it was made ({}), goes out in its xn-- form now ({}), which any mail server takes",
            shown(then),
            shown(now)
        ));
    }
    Some(format!(
        "{WITHDRAWN} {whom} is mailed at {} now, not {}",
        shown(now),
        shown(then)
    ))
}

/// The reports waiting to be sent again that the configuration no longer lets go as stored,
/// each with why (see [`withdrawn`]), of every destination: a run for one provider reads
/// every source, and keeps the lines of their addresses for the reports that replace them.
/// `heads`: the state's [`State::pending_heads`], which the caller reads once for this and
/// for what else it says of them.
pub(crate) fn to_withdraw<'r>(
    heads: &'r [ReportRecord],
    state: &State,
    world: &World<'_>,
) -> Result<Vec<(&'r ReportRecord, String)>> {
    let mut out = Vec::new();
    for r in heads {
        if let Some(why) = withdrawn(r, world, state)? {
            out.push((r, why));
        }
    }
    Ok(out)
}

impl Ledger {
    /// Nothing reported anywhere: for a run that selects nothing.
    pub(crate) fn none(desks: usize) -> Self {
        Ledger {
            desks: Vec::new(),
            since: None,
            rereport: false,
            test: false,
            withdrawn: Vec::new(),
            known: Known::Nothing,
            thread_roots: vec![None; desks],
        }
    }

    /// The ledger as `state` has it for `providers` (and the discovered desks, when
    /// `[discover]` is configured); with `rereport_since`, reports sent before it no longer
    /// count as sent. Its answers are asked of `state` as they are needed (see [`Asker`]).
    pub(crate) fn read(
        settings: &Settings,
        providers: &[Provider],
        rereport_since: Option<DateTime<Utc>>,
        state: Option<State>,
    ) -> Result<Self> {
        let desks = providers.len() + usize::from(settings.discover.is_some());
        let Some(s) = state else {
            return Ok(Ledger::none(desks));
        };
        let mut rules: Vec<DeskRule> = providers
            .iter()
            .map(|p| DeskRule {
                key: p.name().to_string(),
                api: p.config.delivery == config::Delivery::AwsAbuseApi,
                contacts: false,
            })
            .collect();
        // An address reported to one discovered contact is not reported to another: the
        // contacts share one entry. Their threads are each contact's own (see `plan`).
        if settings.discover.is_some() {
            rules.push(DeskRule {
                key: CONTACT_DESKS.to_string(),
                api: false,
                contacts: true,
            });
        }
        let mut thread_roots = Vec::with_capacity(desks);
        for rule in &rules {
            thread_roots.push(match rule.contacts {
                true => None,
                false => s.thread_root(&rule.key)?,
            });
        }
        let mut ledger = Ledger {
            desks: rules,
            since: rereport_since.map(utc_text),
            rereport: rereport_since.is_some(),
            test: settings.aws_api.as_ref().is_some_and(|a| a.test),
            withdrawn: Vec::new(),
            known: Known::Nothing,
            thread_roots,
        };
        ledger.known = Known::Asked(Box::new(Asker {
            state: std::sync::Mutex::new(s),
            answers: Default::default(),
            whole: Default::default(),
            asked: Default::default(),
            failed: Default::default(),
        }));
        Ok(ledger)
    }

    /// Every destination's addresses, read at once.
    fn read_all(&self, s: &State) -> Result<Whole> {
        let mut reported = Vec::with_capacity(self.desks.len());
        let mut ever_sent = Vec::with_capacity(self.desks.len());
        for bucket in 0..self.desks.len() {
            let (r, e) = self.sets(s, bucket, None)?;
            reported.push(r);
            ever_sent.push(e);
        }
        Ok(Whole {
            reported,
            ever_sent,
        })
    }

    /// What destination `bucket` must not be sent again and was ever sent: all of it, or
    /// (`only`) of that one address. One rule for both ways of asking.
    fn sets(
        &self,
        s: &State,
        bucket: usize,
        only: Option<std::net::IpAddr>,
    ) -> Result<(IpSet, SentAt)> {
        let rule = &self.desks[bucket];
        let (key, since) = (rule.key.as_str(), self.since.as_deref());
        let withdrawn: Vec<&str> = self.withdrawn.iter().map(String::as_str).collect();
        let mut reported = s.reported_but(key, since, &withdrawn, only)?;
        // Only re-reports need to know who was sent before: without them every IP ever sent
        // is in `reported` and never selected again.
        let mut ever_sent = match self.rereport {
            true => s.ever_sent(key, only)?,
            false => SentAt::default(),
        };
        // An intake that refused a report's content refuses it again, and a desk found by a
        // lookup that refuses mail refuses each new report too: wait for a re-report instead
        // of sending it every run.
        let refused = match rule.api || rule.contacts {
            true => s.rejected_ips(key, since, only)?,
            false => Default::default(),
        };
        reported.extend(refused.iter().copied());
        // Test reports were validated, not acted on: with test off, their addresses are
        // reported for real, as first reports. One whose report the intake refused since
        // waits as any refused address does: made again every run, it was refused every run
        // and held the provider's other reports back.
        if rule.api && !self.test {
            for ip in s.test_only_ips(key, only)? {
                if !refused.contains(&ip) {
                    reported.remove(&ip);
                    ever_sent.remove(&ip);
                }
            }
        }
        Ok((reported, ever_sent))
    }

    /// Whether address `ip` must not be sent to destination `bucket` again.
    pub(crate) fn reported(&self, bucket: usize, ip: std::net::IpAddr) -> bool {
        self.answer(bucket, ip).0
    }

    /// How the last report sent to destination `bucket` listing `ip` gave it, if one did
    /// (with `rereport_after_days`).
    pub(crate) fn last_sent(&self, bucket: usize, ip: std::net::IpAddr) -> Option<Reported> {
        self.answer(bucket, ip).1
    }

    fn answer(&self, bucket: usize, ip: std::net::IpAddr) -> Answer {
        let Known::Asked(asker) = &self.known else {
            return (false, None);
        };
        let Asker {
            state,
            answers,
            whole,
            asked,
            failed,
        } = asker.as_ref();
        // A question the state cannot answer is answered "reported", so that nothing goes
        // out on a guess, and fails the run (see [`Ledger::check`]).
        let fail = |e: String| {
            if let Ok(mut f) = failed.lock() {
                f.get_or_insert(e);
            }
            // Sent, and nothing since.
            let last = Reported {
                at: None,
                hits: u64::MAX,
                first_seen: i64::MIN,
                last_seen: i64::MAX,
            };
            (true, Some(last))
        };
        let from_whole = |w: &Result<Whole, String>| match w {
            Ok(w) => (
                w.reported.get(bucket).is_some_and(|r| r.contains(&ip)),
                w.ever_sent.get(bucket).and_then(|e| e.get(&ip).cloned()),
            ),
            Err(e) => fail(e.clone()),
        };
        if let Some(w) = whole.get() {
            return from_whole(w);
        }
        if let Some(known) = answers
            .lock()
            .ok()
            .and_then(|a| a.get(&(bucket, ip)).cloned())
        {
            return known;
        }
        let read_whole = || match state.lock() {
            Ok(s) => self.read_all(&s).map_err(|e| format!("{e:#}")),
            Err(_) => Err("the ledger's connection was lost".to_string()),
        };
        if asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= QUESTIONS_BEFORE_READING_ALL
        {
            return from_whole(whole.get_or_init(read_whole));
        }
        let one = match state.lock() {
            Ok(s) => self
                .sets(&s, bucket, Some(ip))
                .map_err(|e| format!("{e:#}")),
            Err(_) => Err("the ledger's connection was lost".to_string()),
        };
        let one = match one {
            Ok((r, e)) => (r.contains(&ip), e.get(&ip).cloned()),
            Err(e) => fail(e),
        };
        if let Ok(mut a) = answers.lock() {
            a.insert((bucket, ip), one.clone());
        }
        one
    }

    /// The ledger as it will be once the reports `ids` are withdrawn (see [`withdrawn`]): for
    /// a preview, which withdraws nothing itself.
    pub(crate) fn leaving_out(mut self, ids: Vec<String>) -> Self {
        if ids.is_empty() {
            return self;
        }
        // A thread's first report, waiting, that goes nowhere: the next begins the thread.
        for root in &mut self.thread_roots {
            if root
                .as_deref()
                .is_some_and(|r| ids.iter().any(|id| r.starts_with(&format!("<{id}@"))))
            {
                *root = None;
            }
        }
        self.withdrawn = ids;
        if let Known::Asked(asker) = &mut self.known {
            // Asked again, with them left out.
            if let Ok(a) = asker.answers.get_mut() {
                a.clear();
            }
            asker.whole = Default::default();
        }
        self
    }

    /// Whether the answers come from a state (not a ledger that knows nothing, made for a
    /// run that selects nothing).
    pub(crate) fn knows(&self) -> bool {
        matches!(self.known, Known::Asked(_))
    }

    /// The first question about an address the state could not answer, as an error: the
    /// run that asked ends with it rather than act on a guess.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.known {
            Known::Asked(asker) => match asker.failed.lock().ok().and_then(|f| f.clone()) {
                // Kept as text across the reading threads: named as the state's, as the
                // database's own errors are.
                Some(e) => {
                    let state = crate::parallel::lock(&asker.state);
                    Err(crate::state::named_as_the_states(state.path(), &e))
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// The configuration file as the state remembers it: absolute, links resolved.
pub(crate) fn config_name(settings: &Settings) -> String {
    std::fs::canonicalize(&settings.file)
        .unwrap_or_else(|_| settings.file.clone())
        .to_string_lossy()
        .into_owned()
}

/// Refuses a state that another configuration file runs on: each keeps a cursor per source,
/// and two readers of one cursor would each lose what the other read. A configuration file
/// that is gone, or now names another `state_dir`, has left it (a moved file is no conflict).
pub fn check_owner(state: &State, settings: &Settings) -> Result<()> {
    let me = config_name(settings);
    let Some(other) = state.owner()?.filter(|o| *o != me) else {
        return Ok(());
    };
    let other_path = Path::new(&other);
    if !other_path.exists() {
        return Ok(());
    }
    let same_dir = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    // Unreadable, it may still run: only a configuration that clearly left is let go.
    let left = config::load(other_path).is_ok_and(|o| !same_dir(&o.state_dir, &settings.state_dir));
    if left {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{}: state_dir {} is the state of {other}, which still names it; two configurations on one state move each other's source cursors and lose lines. Give {me} a state_dir of its own, or, if {other} is no longer used, remove it or change its state_dir",
        settings.file.display(),
        settings.state_dir.display(),
    ))
    .into())
}

/// The file beside `state.db` that says how far the ledger of the runs in `state_dir` went
/// ([`State::reports_made`]), written after the runs that made reports: a state that goes
/// less far is an older copy (a backup put back, a file replaced or deleted), whose runs
/// would report again every address reported since it was taken.
pub(crate) fn mark_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("reports.mark")
}

/// How far the mark says the ledger went; none when there is no mark, or it says nothing
/// readable (a damaged mark holds back no run). Never read through a link.
fn marked(state_dir: &Path) -> Option<i64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(mark_path(state_dir))
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().strip_prefix("reports ")?.parse().ok()
}

/// Notes how far the ledger of `state` (in `state_dir`) goes, where it went further than the
/// mark says. Only the check of a state put back depends on it: a mark that cannot be written
/// (a full disk) is left as it was, and the check may then miss the last reports.
pub(crate) fn mark_reports(state: &State, state_dir: &Path) {
    let Ok(made) = state.reports_made() else {
        return;
    };
    if made > 0 && marked(state_dir).is_none_or(|m| m < made) {
        let path = mark_path(state_dir);
        let _ =
            crate::send::write_atomically(state_dir, &path, format!("reports {made}\n").as_bytes());
    }
}

/// Refuses a state that goes less far than the runs in `state_dir` went (see [`mark_path`]),
/// or none there (`None`) where they made reports: its runs would report again, unsaid,
/// every address reported since it was taken.
pub fn check_not_older(state: Option<&State>, state_dir: &Path) -> Result<()> {
    let Some(mark) = marked(state_dir) else {
        return Ok(());
    };
    let made = match state {
        Some(s) => s.reports_made()?,
        None => 0,
    };
    if made >= mark {
        return Ok(());
    }
    let db = state_dir.join("state.db");
    let what = match made {
        0 => format!(
            "{} has no report, while the runs here made {mark}",
            db.display()
        ),
        _ => format!(
            "{} goes as far as report {made}, while the runs here made {mark}",
            db.display()
        ),
    };
    Err(ConfigError(format!(
        "{what}: it is an older state (a backup put back, the file replaced or removed), and the addresses reported since would be reported again; put back the newer state.db, or, to go on with this one and report them again, remove {}",
        mark_path(state_dir).display()
    ))
    .into())
}

/// `message` with its `Date:` header set to `now`, when that header says a time more than an
/// hour earlier; `None` when it is recent or cannot be read (the message is sent as made).
fn with_date(message: &[u8], now: DateTime<Utc>) -> Option<Vec<u8>> {
    let (value_at, end) = field_value(message, "Date")?;
    let old = std::str::from_utf8(&message[value_at..end]).ok()?;
    let dated = DateTime::parse_from_rfc2822(old).ok()?;
    if now.signed_duration_since(dated) <= chrono::Duration::hours(1) {
        return None;
    }
    let mut out = Vec::with_capacity(message.len() + 8);
    out.extend_from_slice(&message[..value_at]);
    // In the layout the message was made with (two-digit day), so that parts made at once
    // and sent on different days look alike.
    let stamp = now.format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    out.extend_from_slice(stamp.as_bytes());
    out.extend_from_slice(&message[end..]);
    Some(out)
}

/// The bytes a waiting report goes out as if sent at `now`: a part no attempt handed to a
/// server yet (never tried, or tried while the server was down) gets the day it goes out on
/// (see [`deliver`]); anything else goes as stored, alike to the byte to any copy a server
/// may hold. `preview` shows these, so that it prints what the run sends.
pub(crate) fn message_sent_at(
    record: &ReportRecord,
    now: DateTime<Utc>,
) -> std::borrow::Cow<'_, [u8]> {
    match (record.handed, record.made_for_api()) {
        (0, false) => match with_date(&record.message, now) {
            Some(message) => std::borrow::Cow::Owned(message),
            None => std::borrow::Cow::Borrowed(&record.message),
        },
        _ => std::borrow::Cow::Borrowed(&record.message),
    }
}

/// Providers that look renamed, read from the state once for what a run refuses and what it
/// only says.
#[derive(Debug, Default)]
pub struct Renames {
    /// Configured, with no report in the state yet, while the state holds sent reports to a
    /// provider no longer configured that mailed one of its addresses (`to`, whatever `cc`
    /// was then; or the same API endpoint) and some of whose addresses are in its ranges
    /// (`providers`, loaded; one without ranges may hold any). The ledger knows a provider by
    /// its name, so under a new name those addresses would go to that desk again: a run
    /// refuses. One line each. A provider that takes over from another at the same desk with
    /// other ranges (EC2 after S3) is none of these.
    pub refused: Vec<String>,
    /// Renamed with their desk moved in the same edit: configured, with no report in the
    /// state yet, while the state holds sent reports to a provider no longer configured, at
    /// other addresses, on addresses in its ranges. Those go to the new desk, which never
    /// heard of them (a provider that takes over another's ranges may want them); the
    /// operator is told, one line each, before (preview) and when it happens.
    pub taking_over: Vec<String>,
}

/// The providers that look renamed (see [`Renames`]).
pub fn renames(state: &State, settings: &Settings, providers: &[Provider]) -> Result<Renames> {
    let mut fresh = Vec::new();
    for p in &settings.providers {
        if !state.has_reports(&p.name)? {
            fresh.push(p);
        }
    }
    if fresh.is_empty() {
        return Ok(Renames::default());
    }
    let configured: HashSet<&str> = settings.providers.iter().map(|p| p.name.as_str()).collect();
    // Where each new provider's reports would go: the API's endpoint, or the desk's own mail
    // addresses (`cc` is the operator's, and may have changed in the same edit).
    let fresh: Vec<(&config::ProviderConfig, BTreeSet<String>)> = fresh
        .into_iter()
        .map(|p| {
            let to = if p.delivery == config::Delivery::AwsAbuseApi {
                BTreeSet::from([crate::aws_api::destination(settings).to_lowercase()])
            } else {
                mailboxes(&p.to)
            };
            (p, to)
        })
        .collect();
    let (mut refusals, mut warnings) = (Vec::new(), Vec::new());
    for (old, recipients) in state.sent_provider_desks()? {
        if configured.contains(old.as_str()) {
            continue;
        }
        let desk: BTreeSet<String> = recipients.iter().map(|r| desk_address(r)).collect();
        // Asked for once an old desk, and only when a new provider writes to it.
        let mut sample = None;
        for (p, to) in &fresh {
            // One address of the desk is enough: it would get every report again.
            let same_desk = !to.is_empty() && !to.is_disjoint(&desk);
            let ranges = providers.iter().find(|l| l.name() == p.name);
            let mut in_ranges = 0;
            if let Some(l) = ranges.filter(|l| l.config.ranges.is_some()) {
                if sample.is_none() {
                    sample = Some(state.sent_sample(&old, 1000)?);
                }
                in_ranges = (sample.iter().flatten())
                    .filter(|ip| l.lookup(**ip).is_some())
                    .count();
            }
            // Matched by ASN alone: any address may be its (at the same desk; at another,
            // only what its ranges show is said).
            let overlaps = match ranges {
                Some(l) if l.config.ranges.is_none() => same_desk,
                Some(_) => in_ranges > 0,
                // Not loaded (a run for another provider): it makes no report now.
                None => false,
            };
            if overlaps && !same_desk {
                let then: Vec<&str> = recipients.iter().map(String::as_str).collect();
                warnings.push(format!(
                    "provider {:?} has no reports yet, and at least {in_ranges} address(es) that provider {old:?} (no longer configured) reported to {} are in its ranges: they go to {:?}'s desk as new reports; if {:?} is {old:?} renamed, give it back the name {old:?} to keep its history",
                    p.name,
                    then.join(", "),
                    p.name,
                    p.name
                ));
            } else if overlaps {
                refusals.push(format!(
                    "provider {:?} has no reports yet, but the state holds reports to the same desk by provider {old:?} (no longer configured) on addresses in {:?}'s ranges: the ledger knows a provider by its name, so they would all be reported again. Give it back the name {old:?} to keep its history (or, to report them again on purpose, give this configuration a state_dir of its own)",
                    p.name, p.name
                ));
            }
        }
    }
    Ok(Renames {
        refused: refusals,
        taking_over: warnings,
    })
}

/// Makes this configuration the one that runs on the state, unless another one still does.
pub(crate) fn claim(state: &mut State, settings: &Settings) -> Result<()> {
    check_owner(state, settings)?;
    let me = config_name(settings);
    if state.owner()?.as_deref() != Some(me.as_str()) {
        state.set_owner(&me)?;
    }
    Ok(())
}

/// The way a report goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// `[mail]`: SMTP, sendmail or a folder.
    Mail,
    /// The AWS Abuse Signal API.
    Api,
}

#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) sent: usize,
    pub(crate) transient: Option<String>,
    /// Routes that failed this run (transient or configuration): nothing more goes that way.
    pub(crate) failed_routes: HashSet<Route>,
    /// A mail setting is wrong (login, TLS, sendmail): fix it, then the report goes out.
    pub(crate) unauthorized: Option<String>,
    /// The same for the AWS API's credentials.
    pub(crate) unauthorized_api: Option<String>,
    /// The last report refused for good this run, with its id, and how many were.
    pub(crate) rejected: Option<String>,
    pub(crate) rejections: usize,
    pub(crate) rejected_providers: HashSet<String>,
    /// New reports not made this run (budget or outage); their IPs stay in the delta.
    pub(crate) held: usize,
    /// Parts of a split report written to the ledger but not tried: the next run sends them.
    pub(crate) queued: usize,
    /// Stored reports not retried this run.
    pub(crate) waiting: usize,
    /// Addresses left for a later run by discovery (lookups, a contact's one report a run).
    pub(crate) unplanned: bool,
    /// Why the run's time for delivery left no room for more messages, if it did.
    pub(crate) out_of_time: Option<String>,
    /// Discovered desks whose server deferred a report this run: their other reports wait.
    pub(crate) deferred_desks: HashSet<String>,
    /// The reports deferred this run and still waiting, each with what its server said: a
    /// transient failure of the run, unless given up (see `app`).
    pub(crate) deferred: std::collections::BTreeMap<String, String>,
    /// Those deferred since the last report that went out.
    pub(crate) desks_deferred_in_a_row: HashSet<String>,
}

impl Outcome {
    /// Why the run ends as a transient failure (75), if it does: a failure to try again, or
    /// a report deferred and still waiting.
    pub(crate) fn transient_reason(&self) -> Option<&str> {
        (self.transient.as_deref()).or_else(|| self.deferred.values().next().map(String::as_str))
    }
}

/// Distinct discovered desks deferred in a row after which the mail route counts as down for
/// the run: one desk's server deferring holds back that desk alone, a relay that defers
/// everything does not cost an attempt per desk.
const DESKS_DEFERRED_IS_AN_OUTAGE: usize = 3;

/// How the reply kept for a report taken as delivered after a refusal begins.
pub(crate) const TAKEN_AS_DELIVERED: &str = "taken as delivered";

/// The file beside `state.db` where a run notes the outcomes it met and could not record.
pub(crate) const UNRECORDED: &str = "unrecorded";

/// Notes beside the state at `db` that report `id` went out (`status`, at `at`) and the state
/// could not record it. Best effort: a note that cannot be written either leaves things as
/// they were (the report goes out again next run, as after a crash).
fn note_unrecorded(
    db: &Path,
    id: &str,
    status: Status,
    at: &str,
    remote: Option<&str>,
    detail: &str,
) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = db.parent() else { return };
    let detail = crate::excerpt::clean_line(detail, 500).replace('\t', " ");
    let remote = crate::excerpt::clean_line(remote.unwrap_or_default(), 500).replace('\t', " ");
    let line = format!("{id}\t{}\t{at}\t{remote}\t{detail}\n", status.as_str());
    // Never through a link: the run is often root.
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(UNRECORDED))
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()));
}

/// One outcome of [`UNRECORDED`]: a report that went out.
struct Noted<'a> {
    id: &'a str,
    status: Status,
    at: &'a str,
    remote: Option<&'a str>,
    detail: &'a str,
}

/// The outcomes of a note's `text`, one a line (`id status at remote detail`, or without the
/// API's id four fields); a line of another shape is passed over.
fn noted(text: &str) -> impl Iterator<Item = Noted<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let (id, status, at, remote, detail) = match fields[..] {
            [id, status, at, remote, detail] => (id, status, at, remote, detail),
            [id, status, at, detail] => (id, status, at, "", detail),
            _ => return None,
        };
        Some(Noted {
            id,
            status: Status::parse(status).ok()?,
            at,
            remote: Some(remote).filter(|r| !r.is_empty()),
            detail,
        })
    })
}

/// The reports an earlier run noted as gone out and could not record (see
/// [`record_unrecorded`]), with how they went: the next run records them before it sends
/// anything, so none of them waits to be sent. Read only, as a preview reads; a note that
/// cannot be read names none (the run then stops before sending, and says why).
pub(crate) fn noted_as_gone_out(state: &State) -> std::collections::HashMap<String, Status> {
    let Some(dir) = state.path().parent() else {
        return Default::default();
    };
    match crate::source::read_own_regular(&dir.join(UNRECORDED), 16 << 20) {
        Ok(bytes) => noted(&String::from_utf8_lossy(&bytes))
            .map(|n| (n.id.to_string(), n.status))
            .collect(),
        Err(_) => Default::default(),
    }
}

/// Records the outcomes an earlier run noted it could not record, before this run sends
/// anything: a report that went out is not sent again while its outcome is unrecorded. A
/// state that still cannot record them stops the run (exit 1), sending nothing.
pub(crate) fn record_unrecorded(state: &mut State) -> Result<()> {
    let Some(dir) = state.path().parent().map(Path::to_path_buf) else {
        return Ok(());
    };
    let path = dir.join(UNRECORDED);
    // A regular file of a bounded size, never through a link: never a FIFO waited on with
    // the lock held, a device read without end, or another file read as root.
    let bytes = match crate::source::read_own_regular(&path, 16 << 20) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if let Some(advice) = crate::state::out_of_descriptors(&e) => {
            anyhow::bail!("cannot open {}: {e}; {advice}", path.display())
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot read the note of outcomes an earlier run could not record (a regular file this tool writes); once `history` shows the reports it names as sent, remove it",
                    path.display()
                )
            });
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    for Noted {
        id,
        status,
        at,
        remote,
        detail,
    } in noted(&text)
    {
        let detail = format!("recorded by a later run: {detail}");
        state
            .record_outcome_again(id, status, &detail, at, remote)
            .with_context(|| {
                format!(
                    "report {id} went out on an earlier run ({}), and the state cannot record it: nothing is sent until it can (restore state.db from a backup, or move it away with reports.mark and start afresh); {} holds what to record",
                    status.as_str(),
                    path.display()
                )
            })?;
        // Its lines have served, as after any report sent.
        if status == Status::Sent {
            let _ = state.let_go_of_lines(id);
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(())
}

// The mail transport and the API are the two ways out; the ledger step is shared.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deliver(
    state: &mut State,
    transport: &dyn Transport,
    api: Option<&crate::aws_api::Api>,
    settings: &Settings,
    record: &ReportRecord,
    now: DateTime<Utc>,
    outcome: &mut Outcome,
    verbosity: Verbosity,
    json: bool,
) -> Result<()> {
    // A part that waited runs for its turn, or for a server that was down, goes out with the
    // day it goes out on: a Date days old is a spam sign. The stored message follows, so
    // that `show` gives the bytes sent.
    let refreshed;
    let record = match message_sent_at(record, now) {
        std::borrow::Cow::Owned(message) => {
            state.refresh_unsent_message(&record.id, &message)?;
            refreshed = ReportRecord {
                message,
                ..record.clone()
            };
            &refreshed
        }
        std::borrow::Cow::Borrowed(_) => record,
    };
    // Whatever the transport answers must reach the ledger: without that proven first, a
    // report could go out on every run.
    let mut attempt = state.begin_attempt(&record.id, record.message.len())?;
    let api = api.filter(|a| a.serves(&record.provider));
    let result = match api {
        Some(api) => api.send(record),
        // A request stored for the API, whose provider now reports by mail: it is no mail.
        None if record.made_for_api() => Err(SendError::Rejected(format!(
            "report {} was made for the AWS API, and the provider now reports by mail: its addresses go into the next report",
            record.id
        ))),
        None => {
            let sent = transport.send(
                &record.id,
                &settings.report.from,
                &record.recipients,
                &record.message,
            );
            if sent.is_err() && !transport.handed() {
                attempt.not_handed();
            }
            sent
        }
    };
    // A mail server's refusal of the body (not of a recipient) of a report whose body went
    // out before without a reply that could be read: the desk may hold that copy, and the
    // refusal may be it turning away a Message-ID it has. Giving the addresses back would
    // report them again in a new message: the report is taken as delivered instead.
    let unclear = matches!(result, Err(SendError::Unclear(_)));
    // A failure that may pass or not waits a day from its first time.
    let unclear_since = match unclear {
        true => attempt.unclear_since()?,
        false => None,
    };
    // A discovered desk's digest refused for its size: by the operator's own relay or local
    // MTA, which a run hands it to (a desk's own refusal comes back as a bounce), not by the
    // desk, which is not shut out for it (a desk that refused is not written to again).
    // Withdrawn: its addresses and their lines go in the next digest, as a provider's do.
    let own_size_limit = record.contact.is_some()
        && matches!(&result, Err(SendError::Rejected(t)) if crate::send::refused_for_size(t));
    let refused_held = match (&result, &settings.mail.transport) {
        (Err(SendError::Rejected(e)), config::TransportConfig::Smtp(_))
            if api.is_none() && !record.made_for_api() && record.unconfirmed > 0 =>
        {
            Some(e.clone())
        }
        _ => None,
    };
    // A recipient of the operator's own (`report.cc`, or `from` or `reply_to` given as one)
    // refused is theirs to fix: the report waits, and no desk is taken to have refused it.
    let result = result.map_err(|e| match e {
        SendError::RecipientRefused { recipient, text } if is_own(settings, &recipient) => {
            SendError::Config(format!(
                "the mail server refused {recipient}, an address of your own (report.cc): {text}"
            ))
        }
        SendError::RecipientRefused { text, .. } => SendError::Rejected(text),
        SendError::Rejected(text) if own_size_limit => SendError::Rejected(format!(
            "{WITHDRAWN} refused for its size by your own mail system, not by the desk: {text}"
        )),
        // Tried again for a day from the first such failure; after that, a setting to fix,
        // not a wait that ends every run 75 for ever.
        SendError::Unclear(text) => match unclear_since.as_deref() {
            Some(since)
                if waited_since(since, now).is_some_and(|w| w >= crate::send::UNCLEAR_FOR) =>
            {
                SendError::Config(format!("{text}; it has failed so since {since}"))
            }
            _ => SendError::Transient(text),
        },
        other => other,
    });
    let at = utc_text(clock::now().unwrap_or(now));
    let (status, detail) = match (&result, &refused_held) {
        (_, Some(e)) => (
            Status::Sent,
            format!(
                "{TAKEN_AS_DELIVERED}: its body went out before without a reply that could be read, and was refused when sent again: {e}"
            ),
        ),
        (result, None) => match result {
            Ok(reply) => (Status::Sent, reply.clone()),
            Err(
                SendError::Transient(e)
                | SendError::Deferred(e)
                | SendError::Config(e)
                | SendError::Unconfirmed(e)
                | SendError::Unclear(e),
            ) => (Status::Failed, e.clone()),
            Err(SendError::Rejected(e) | SendError::RecipientRefused { text: e, .. }) => {
                (Status::Rejected, e.clone())
            }
        },
    };
    // A body that went out without a readable reply, again: taken as delivered (see
    // `UNCONFIRMED_AT_MOST`), so that a relay whose replies this client cannot read, or that
    // answers too late, does not get the message on every run.
    let status = match (api, &result) {
        (Some(_), Ok(remote_id)) => attempt.record_sent_remote(remote_id, &at).map(|()| status),
        // Tried again, or a setting to fix after a day of it: the run of such failures goes
        // on either way until something else comes of a try.
        (_, Err(SendError::Transient(_) | SendError::Config(_))) if unclear => {
            attempt.record_unclear(&detail, &at).map(|()| status)
        }
        (_, Err(SendError::Unconfirmed(_))) => attempt.record_unconfirmed(&detail, &at),
        (None, Err(SendError::Deferred(_))) => {
            attempt.record_deferred(&detail, &at).map(|()| status)
        }
        // Not a word from the desk (the relay down, a dialogue given up): a discovered desk's
        // patience, counted from its first deferral, starts again when it next defers, so
        // that the operator's own outage between two deferrals is not the desk's.
        (None, Err(SendError::Transient(_))) if record.contact.is_some() => {
            attempt.record_unreached(&detail, &at).map(|()| status)
        }
        _ => attempt.record(status, &detail, &at).map(|()| status),
    }
    .map_err(|e| {
        // One that went out (sent, or refused by its desk) must not go out again on every
        // run while the state cannot record it: noted beside the state for the next run.
        // A body that went out without a reply that could be read is noted as sent: a state
        // that cannot count its tries would send it on every run.
        let went_out = match (&result, status) {
            (Err(SendError::Unconfirmed(_)), _) => Some(Status::Sent),
            (_, Status::Sent | Status::Rejected) => Some(status),
            _ => None,
        };
        let remote = match (api, &result) {
            (Some(_), Ok(remote_id)) => Some(remote_id.as_str()),
            _ => None,
        };
        if let Some(status) = went_out {
            note_unrecorded(state.path(), &record.id, status, &at, remote, &detail);
        }
        e.context(format!(
            "report {} was {}, but recording that failed",
            record.id,
            status.as_str()
        ))
    })?;
    if state.reserve_spent() {
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {}: the disk is full: the outcome of report {} was written into the space held for it, and nothing more is sent until that space is there again",
            state.path().display(),
            record.id
        ));
    }
    // Sent, or refused where a refusal keeps the addresses reported (by the API itself, or a
    // discovered desk): their lines have served. A request refused here because its provider
    // reports by mail now gives its addresses to the next mail report, which shows them. Only
    // what a later report shows depends on it: the outcome is recorded already.
    let for_good =
        !own_size_limit && (record.contact.is_some() || (record.made_for_api() && api.is_some()));
    // A test report was validated and acted on by nobody: its lines are kept for the real
    // report made once `aws_api.test` is off (which went out with none, and a flood's
    // without the rate XARF asks of it, refused on every run).
    let test = record.made_for_api() && made_as_test(&record.message);
    if (status == Status::Sent && !test) || (status == Status::Rejected && for_good) {
        let _ = state.let_go_of_lines(&record.id);
    }
    match result {
        Err(SendError::Unconfirmed(_)) if status == Status::Sent => {
            outcome.sent += 1;
            crate::output::tell(format_args!(
                "abuse-mailer: warning: report {} to {}: its body went out {} times without a reply that could be read; taken as delivered and not sent again (the desk may hold it twice, once, or not at all, if the server kept none of them: `history` says it is not confirmed): {detail}",
                record.id,
                record.recipients.join(", "),
                crate::state::UNCONFIRMED_AT_MOST
            ));
        }
        Err(SendError::Rejected(_)) if let Some(refusal) = &refused_held => {
            outcome.sent += 1;
            crate::output::tell(format_args!(
                "abuse-mailer: warning: report {} to {}: refused when sent again, after its body went out without a reply that could be read (the desk may hold that copy): taken as delivered, and its addresses are not sent again in a new report: {refusal}",
                record.id,
                record.recipients.join(", "),
            ));
        }
        // Taken by the local MTA, which cannot send it yet: said even under `-q`, since
        // nothing leaves the host until the operator starts it.
        Ok(reply) if reply.starts_with(crate::send::KEPT_FOR_LATER) => {
            outcome.sent += 1;
            outcome.desks_deferred_in_a_row.clear();
            crate::output::tell(format_args!(
                "abuse-mailer: warning: report {} to {}: {reply}",
                record.id,
                record.recipients.join(", "),
            ));
        }
        Ok(_) => {
            outcome.sent += 1;
            outcome.desks_deferred_in_a_row.clear();
            if verbosity != Verbosity::Quiet {
                let line = format!(
                    "report {} to {} ({} IPs): sent: {detail}",
                    record.id,
                    record.recipients.join(", "),
                    record.ips.len()
                );
                // `run --json` keeps standard output for the one JSON document a script
                // parses; the line goes beside the summary then.
                if json {
                    crate::output::tell(format_args!("{line}"));
                } else {
                    crate::output::say(format_args!("{line}"));
                }
            }
        }
        // A report the server answered with "later" (a 4xx: a desk's greylisting, its full
        // mailbox): that desk waits (its other reports are not tried this run), the way out
        // works and the other desks' reports go. Several desks in a row deferred say it does
        // not. Either way the run ends as a transient failure (75).
        Err(SendError::Deferred(_)) if api.is_none() => {
            // Under `-q`, the run's last line says it (once), with the first reason.
            if verbosity != Verbosity::Quiet {
                crate::output::tell(format_args!(
                    "abuse-mailer: report {} to {} deferred (will retry): {detail}",
                    record.id,
                    record.recipients.join(", ")
                ));
            }
            outcome.deferred_desks.insert(record.provider.clone());
            // It waits for the next run, as those not tried do.
            outcome.waiting += 1;
            outcome
                .desks_deferred_in_a_row
                .insert(record.provider.clone());
            if outcome.desks_deferred_in_a_row.len() >= DESKS_DEFERRED_IS_AN_OUTAGE {
                outcome.failed_routes.insert(Route::Mail);
                // The way out's trouble, not the desks': 75 even once the reports it
                // deferred are given up.
                outcome.transient = Some(format!(
                    "{DESKS_DEFERRED_IS_AN_OUTAGE} desks in a row deferred their reports: the way out defers ({detail})"
                ));
            }
            outcome.deferred.insert(record.id.clone(), detail);
        }
        Err(
            SendError::Transient(_)
            | SendError::Deferred(_)
            | SendError::Config(_)
            | SendError::Unconfirmed(_)
            | SendError::Unclear(_),
        ) => {
            let retry = match result {
                Err(SendError::Unconfirmed(_)) => {
                    "its body went out without a reply that could be read: the server may have it; sent once more on the next run, never a third time"
                }
                _ => "will retry",
            };
            if verbosity != Verbosity::Quiet {
                crate::output::tell(format_args!(
                    "abuse-mailer: report {} not delivered ({retry}): {detail}",
                    record.id
                ));
            }
            outcome.waiting += 1;
            outcome.failed_routes.insert(match api {
                Some(_) => Route::Api,
                None => Route::Mail,
            });
            if matches!(result, Err(SendError::Config(_))) {
                match api {
                    Some(_) => outcome.unauthorized_api = Some(detail.clone()),
                    None => outcome.unauthorized = Some(detail.clone()),
                }
            }
            outcome.transient = Some(detail);
        }
        Err(SendError::Rejected(_) | SendError::RecipientRefused { .. }) => {
            // Under `-q` the run's last line says it (said here too, it reached cron twice).
            if verbosity != Verbosity::Quiet {
                crate::output::tell(format_args!(
                    "abuse-mailer: report {} rejected: {detail}",
                    record.id
                ));
            }
            outcome.rejected = Some(format!("report {} rejected: {detail}", record.id));
            outcome.rejections += 1;
            outcome.rejected_providers.insert(record.provider.clone());
        }
    }
    Ok(())
}

/// How much of a stored message is read for its head (see [`made_from_another`]): a report's
/// head is a few hundred bytes, its subject and recipients included.
const HEAD_AT_MOST: usize = 16 << 10;

/// Where the value of the header field `name` of a message this tool made lies (after
/// `Name: `, up to the end of its last folded line), as byte offsets into `message`.
fn field_value(message: &[u8], name: &str) -> Option<(usize, usize)> {
    let head = &message[..memchr::memmem::find(message, b"\r\n\r\n")?];
    let field = format!("{name}: ");
    let start = match head.starts_with(field.as_bytes()) {
        true => 0,
        false => memchr::memmem::find(head, format!("\r\n{field}").as_bytes())? + 2,
    };
    let value_at = start + field.len();
    // The field ends at a line end not followed by a folded line's space or tab.
    let mut end = value_at;
    loop {
        match memchr::memmem::find(&head[end..], b"\r\n") {
            Some(at) if matches!(head.get(end + at + 2), Some(b' ' | b'\t')) => end += at + 2,
            Some(at) => return Some((value_at, end + at)),
            None => return Some((value_at, head.len())),
        }
    }
}

/// The address a stored message's `From:` names, when it is not `from`'s (`report.from` now;
/// letter case aside): the message was made under another setting.
fn made_from_another(message: &[u8], from_now: &lettre::message::Mailbox) -> Option<String> {
    let (value_at, end) = field_value(message, "From")?;
    let from = String::from_utf8_lossy(&message[value_at..end]).replace("\r\n", "");
    // The address in angle brackets, or the whole field when it has none.
    let address = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => from[a + 1..b].trim().to_string(),
        _ => from.trim().to_string(),
    };
    let now = from_now.email.to_string();
    (!address.is_empty() && !address.eq_ignore_ascii_case(&now)).then_some(address)
}

/// How long ago `since` (an RFC 3339 time the state wrote) was, if it reads as a time.
fn waited_since(since: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let since = DateTime::parse_from_rfc3339(since).ok()?;
    Some(now.signed_duration_since(since))
}

/// Whether `recipient` is one of the operator's own addresses: `report.cc`, `from`,
/// `reply_to` (letter case aside).
fn is_own(settings: &Settings, recipient: &str) -> bool {
    let report = &settings.report;
    (report.cc.iter())
        .chain(std::iter::once(&report.from))
        .chain(&report.reply_to)
        .any(|m| m.email.to_string().eq_ignore_ascii_case(recipient))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A desk's address stored as an earlier release wrote it, in other letters, is the
    /// address the configuration gives now, in its `xn--` form.
    #[test]
    fn a_stored_address_in_other_letters_is_the_desk_it_was() {
        assert_eq!(
            desk_address("Abuse@Bücher.example"),
            "abuse@xn--bcher-kva.example"
        );
        assert_eq!(desk_address("Abuse@Example.org"), "abuse@example.org");
        let then = ["abuse@bücher.example".to_string()];
        let now = BTreeSet::from(["abuse@xn--bcher-kva.example".to_string()]);
        let why = recipients_changed(&then, now.clone(), "provider aws").unwrap();
        assert!(why.contains("goes out in its xn-- form now"), "{why}");
        assert!(!why.contains("is mailed at"), "{why}");
        let other = BTreeSet::from(["abuse@other.example".to_string()]);
        let why = recipients_changed(&then, other, "provider aws").unwrap();
        assert!(
            why.contains("is mailed at abuse@other.example now"),
            "{why}"
        );
        let same = ["abuse@xn--bcher-kva.example".to_string()];
        assert_eq!(recipients_changed(&same, now, "provider aws"), None);
    }

    /// The address of a message's From is read whole: after a field in other letters than
    /// ASCII (where slicing the text at a byte count could land inside a letter), with its
    /// display name folded onto a second line; a field merely ending in `From: ` is not it.
    #[test]
    fn the_from_a_message_was_made_with_is_read_whole() {
        let message = "X-Ünïcode: é\r\nReply-From: <not@example.net>\r\nFrom: \"A long\r\n name\" <Abuse@Example.ORG>\r\nDate: x\r\n\r\nFrom: <body@example.net>\r\n";
        let (at, end) = field_value(message.as_bytes(), "From").unwrap();
        assert_eq!(&message[at..end], "\"A long\r\n name\" <Abuse@Example.ORG>");
        let from = |text: &str| text.parse::<lettre::message::Mailbox>().unwrap();
        let made = |now: &str| made_from_another(message.as_bytes(), &from(now));
        assert_eq!(made("Desk <abuse@example.org>"), None);
        assert_eq!(
            made("Desk <abuse@example.net>").as_deref(),
            Some("Abuse@Example.ORG")
        );
    }

    #[test]
    fn an_old_date_header_is_set_to_now_and_nothing_else_changes() {
        let now = DateTime::parse_from_rfc3339("2026-01-26T11:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let message = b"From: a@example.org\r\nDate: Mon, 26 Jan 2026 08:00:00 +0000\r\nSubject: Date: x\r\n\r\nDate: in the body\r\n";
        let got = with_date(message, now).unwrap();
        assert_eq!(
            got,
            b"From: a@example.org\r\nDate: Mon, 26 Jan 2026 11:00:00 +0000\r\nSubject: Date: x\r\n\r\nDate: in the body\r\n"
        );
        // Recent, missing, or unreadable: sent as made.
        let recent = now - chrono::Duration::minutes(30);
        let fresh = format!("Date: {}\r\n\r\nbody", recent.to_rfc2822());
        assert_eq!(with_date(fresh.as_bytes(), now), None);
        assert_eq!(
            with_date(
                b"From: a\r\n\r\nDate: Mon, 26 Jan 2026 08:00:00 +0000\r\n",
                now
            ),
            None
        );
        assert_eq!(with_date(b"Date: soon\r\n\r\n", now), None);
        assert_eq!(with_date(b"no header end", now), None);
    }
}
