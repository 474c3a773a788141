//! The commands, and the only place that knows the order of the stages: ingest the sources,
//! store what was read, plan each destination's reports, then record and send under the
//! ledger's rules ([`crate::ledger`]).

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command, ReportArgs, Verbosity};
use crate::clock::{self, utc_text};
use crate::config::{self, Settings};
use crate::discover;
use crate::error::{ConfigError, EXIT_ERROR, EXIT_OK, TransientError, exit_code, one_line};
use crate::ingest::Observation;
use crate::intake::{Intake, Options, World, ingest};
use crate::ledger::{Outcome, Route, check_owner, claim, deliver};
use crate::output::{
    JsonEntry, Listed, Unattributed, history, json_report, json_waiting, print_json, print_mbox,
    show, summary_line,
};
use crate::plan::{Planned, Unplanned, plan, plan_discovered, plan_providers};
use crate::send::{Transport, transport};
use crate::state::{EvidenceUpdate, KeptLines};
use crate::state::{ReportRecord, Settled, State};

/// Runs the command line and returns the exit status; errors are printed as one line.
pub fn main(cli: Cli) -> u8 {
    // A write past a file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) fails with an
    // error, said and handled as a full disk is, rather than killing the process unheard
    // halfway through writing the state.
    // SAFETY: setting a signal's disposition to "ignore" runs no handler and touches no memory.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) if crate::error::stdout_closed(&e) => crate::error::EXIT_OK,
        Err(e) => {
            let limit = write_failed(&e).then(file_size_limit).flatten();
            let hint = limit.map_or_else(String::new, |bytes| {
                format!(
                    " (this process may write files of at most {bytes} bytes: a file size limit, `ulimit -f` or systemd's LimitFSIZE=)"
                )
            });
            crate::output::tell(format_args!("abuse-mailer: {}{hint}", one_line(&e)));
            exit_code(&e)
        }
    }
}

/// Whether `e` is a write that failed: SQLite's, or a file's.
fn write_failed(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    sqlite_says(e, |code| matches!(code, DiskFull | SystemIoFailure))
        || e.chain().any(|c| {
            (c.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::FileTooLarge)
        })
}

/// Whether SQLite raised `e`, or an error on its way, with a code `of` takes.
fn sqlite_says(e: &anyhow::Error, of: impl Fn(rusqlite::ErrorCode) -> bool) -> bool {
    e.chain().any(|c| {
        (c.downcast_ref::<rusqlite::Error>())
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(&of)
    })
}

/// The largest file this process may write, if it is limited.
fn file_size_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) };
    (got == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

fn dispatch(cli: &Cli) -> Result<u8> {
    let verbosity = cli.verbosity();
    let path = config::locate(cli.config.as_deref());
    let settings = config::load(&path)?;
    let now = clock::now()?;
    let done = command(cli, &settings, now, verbosity);
    done.map_err(|e| with_the_state_named(e, &settings))
}

/// An error the state's database raised names the file, if nothing on its way did: a value
/// of the wrong type in a damaged row says which file is damaged.
fn with_the_state_named(e: anyhow::Error, settings: &Settings) -> anyhow::Error {
    let from_the_database = e
        .chain()
        .any(|c| c.downcast_ref::<rusqlite::Error>().is_some());
    if from_the_database && !one_line(&e).contains("state.db") {
        return e.context(settings.state_db().display().to_string());
    }
    e
}

fn command(cli: &Cli, settings: &Settings, now: DateTime<Utc>, verbosity: Verbosity) -> Result<u8> {
    // What writes the state, or mails, waits for a clock that is set.
    let writes = match &cli.command {
        Command::Run { dry_run, .. } => !dry_run,
        Command::Reread { .. } => true,
        _ => false,
    };
    if let Some(why) = clock::unset(now).filter(|_| writes) {
        return Err(TransientError(format!(
            "{why}; nothing was read or sent, and the next run once it is set does both"
        ))
        .into());
    }
    match &cli.command {
        Command::Run { dry_run, what } => run_or_preview(settings, now, *dry_run, what, verbosity),
        Command::Preview { what } => run_or_preview(settings, now, true, what, verbosity),
        Command::History {
            ip,
            provider,
            json,
            refresh,
        } => {
            if *refresh {
                crate::aws_api::refresh_command(settings, provider.as_deref())?;
            }
            // An address in IPv4-mapped form is the IPv4 address it maps, as in the logs.
            let ip = ip.map(crate::provider::canonical);
            history(settings, ip, provider.clone(), *json)
        }
        Command::Show { report_id } => show(settings, report_id),
        Command::Check { smtp, aws } => {
            let quiet = verbosity == Verbosity::Quiet;
            let local = crate::check::check(settings, now, *smtp, quiet)?;
            let api = crate::aws_api::check(settings, *aws, quiet);
            // Lines that could not be written are a check nobody sees: it did not pass.
            let shown = match crate::output::lines_lost() {
                Some(why) => {
                    crate::output::tell(format_args!(
                        "abuse-mailer: cannot write the check's lines to standard output: {why}"
                    ));
                    EXIT_ERROR
                }
                None => EXIT_OK,
            };
            // The worse verdict: a configuration error (78) over any other (1).
            Ok([local, api, shown]
                .into_iter()
                .max_by_key(|c| (*c == 78, *c))
                .unwrap_or(local))
        }
        Command::Reread { source, since } => crate::reread::reread(
            settings,
            now,
            source,
            since.map(|d| clock::before(now, d)),
            verbosity != Verbosity::Quiet,
        ),
        Command::Contacts { ip, json } => {
            let ip = ip.map(crate::provider::canonical);
            crate::contacts::command(settings, now, ip, *json)
        }
        Command::Firewall {
            provider,
            format,
            ports,
        } => crate::firewall::print(settings, provider, *format, ports.as_deref()),
    }
}

fn run_or_preview(
    settings: &Settings,
    now: DateTime<Utc>,
    dry_run: bool,
    what: &ReportArgs,
    verbosity: Verbosity,
) -> Result<u8> {
    let options = Options {
        only: what.provider.as_deref(),
        json: what.json,
        since: what.since.map(|d| clock::before(now, d)),
        verbosity,
    };
    if dry_run {
        preview(settings, now, &options)
    } else {
        run(settings, now, &options)
    }
}

fn preview(settings: &Settings, now: DateTime<Utc>, options: &Options<'_>) -> Result<u8> {
    let (only, json, verbosity) = (options.only, options.json, options.verbosity);
    let started = Instant::now();
    let world = World::load(settings, now, only, verbosity)?;
    let state = State::open_read_only(&settings.state_dir)?;
    crate::ledger::check_not_older(state.as_ref(), &settings.state_dir)?;
    if let Some(s) = &state {
        check_owner(s, settings)?;
        // A run would refuse, and so does its preview: it showed a message no run sends,
        // and ended 0 where the run ends 78.
        let renames = crate::ledger::renames(s, settings, &world.providers)?;
        if let Some(renamed) = renames.refused.into_iter().next() {
            return Err(ConfigError(renamed).into());
        }
        if verbosity != Verbosity::Quiet {
            for taking_over in &renames.taking_over {
                crate::output::tell(format_args!("abuse-mailer: warning: {taking_over}"));
            }
        }
    }
    // Read once: a preview's state is read only, and the same heads are asked of throughout.
    // Those an earlier run noted as gone out are recorded by the run before it sends.
    let gone = (state.as_ref()).map_or_else(Default::default, crate::ledger::noted_as_gone_out);
    let (noted, heads): (Vec<ReportRecord>, Vec<ReportRecord>) = match &state {
        Some(s) => (s.pending_heads()?.into_iter()).partition(|r| gone.contains_key(&r.id)),
        None => Default::default(),
    };
    // A provider's report noted as refused frees its addresses for a new report, as the
    // run records it.
    let freed = (noted.iter())
        .filter(|r| r.contact.is_none() && gone.get(&r.id) == Some(&crate::state::Status::Rejected))
        .map(|r| r.id.clone());
    // Reports the run would withdraw rather than send (the configuration changed since they
    // were made) are not shown, and the read asks a ledger that leaves them out, as the run's
    // does: their addresses are free for the new reports shown, with the lines read now.
    let withdrawn = match &state {
        Some(s) => crate::ledger::to_withdraw(&heads, s, &world)?,
        None => Vec::new(),
    };
    for (record, why) in &withdrawn {
        if only.is_none_or(|o| o == record.provider) && verbosity != Verbosity::Quiet {
            crate::output::tell(format_args!(
                "abuse-mailer: report {} would be {why}",
                record.id
            ));
        }
    }
    let ids: Vec<String> = withdrawn.iter().map(|(r, _)| r.id.clone()).collect();
    if let Some(s) = &state {
        tell_made_before(s, &world, &heads, &ids, only, verbosity)?;
    }
    let leaving_out: Vec<String> = ids.iter().cloned().chain(freed).collect();
    let (intake, ledger) = ingest(&world, state.as_ref(), options, &leaving_out)?;
    let mut intake = at_exit(intake);
    // The run that stores this read lets old records go as history, and they leave the count
    // of addresses `min_hits` holds back (see `run`): counted here as that run will.
    // (The records read now are fresh once that run stores them: none of them goes.)
    if let (Some(s), Some(t), false) = (&state, world.fresh_since(), intake.touched.is_empty()) {
        let touched: std::collections::HashSet<&IpAddr> = intake.touched.iter().collect();
        let mut gone = s.stale_observations_ahead(t, intake.touched.len())?;
        gone.retain(|o| !touched.contains(&o.ip));
        intake.let_go(&world, &ledger, &gone);
    }
    tell_lines_ahead(&intake, now, verbosity);
    // What discovery learns here is not kept: a preview changes nothing.
    let mut cache = crate::state::ReadThrough {
        state: state.as_ref(),
        fresh: discover::MemoryCache::default(),
    };
    let (planned, unplanned) = plan(&world, &intake, &ledger, only, state.as_ref(), &mut cache)?;
    world.asn_intact(UNPLANNED)?;
    ledger.check()?;
    let planned = at_exit(planned);
    if verbosity != Verbosity::Quiet {
        unplanned.tell(&world);
    }
    // What the next run sends, in the order it sends them: the providers' reports waiting to
    // be sent again and new ones, desk by desk, then the discovered desks'.
    let turns = match &state {
        Some(s) => s.turns()?,
        None => std::collections::HashMap::new(),
    };
    let goes = |r: &ReportRecord| {
        only.is_none_or(|o| o == r.provider) && !ids.contains(&r.id) && !gone.contains_key(&r.id)
    };
    if json {
        let kept = match &state {
            Some(s) => s.previews()?,
            None => std::collections::HashMap::new(),
        };
        let waiting: Vec<&ReportRecord> = heads.iter().filter(|r| goes(r)).collect();
        let reports = (send_order(waiting, &planned, &turns).into_iter())
            .map(|item| match item {
                // As listed when it was made.
                Outgoing::Waiting(r) => {
                    let kept = kept.get(&r.id).map(String::as_str);
                    JsonEntry::Waiting(json_waiting(r, kept, settings))
                }
                Outgoing::New(p) => JsonEntry::Made(json_report(p)),
            })
            .collect();
        print_json(
            reports,
            intake.summary,
            &unattributed(&world, &intake, state.as_ref())?,
            false,
        )?;
    } else {
        let waiting = match &state {
            Some(s) => s.pending()?,
            None => Vec::new(),
        };
        // An API report's request is printed as it would be sent, as a new one's is.
        let waiting: Vec<&ReportRecord> = waiting.iter().filter(|r| goes(r)).collect();
        let messages: Vec<std::borrow::Cow<'_, [u8]>> = (send_order(waiting, &planned, &turns)
            .into_iter())
        .map(|item| match item {
            // As the run sends it: a part never tried goes with the day's date.
            Outgoing::Waiting(r) => crate::ledger::message_sent_at(r, now),
            Outgoing::New(p) => p.record.message.as_slice().into(),
        })
        .collect();
        print_mbox(messages.iter().map(AsRef::as_ref), now)?;
    }
    let mut waiting = 0;
    if state.is_some() {
        waiting = heads.iter().filter(|r| goes(r)).count();
        if waiting > 0 && verbosity != Verbosity::Quiet {
            crate::output::tell(format_args!(
                "abuse-mailer: {waiting} earlier report(s) wait to be sent again by the next run, {} with the new ones in the order it sends them",
                if json { "listed" } else { "printed" }
            ));
        }
    }
    let budget = settings.mail.max_messages_per_run as usize;
    let messages = waiting + planned.len();
    if messages > budget && verbosity != Verbosity::Quiet {
        crate::output::tell(format_args!(
            "abuse-mailer: the next run sends {budget} of these {messages} messages (max_messages_per_run = {budget}); the others wait for the runs after it"
        ));
    }
    if verbosity != Verbosity::Quiet {
        crate::output::tell(format_args!(
            "{}",
            summary_line(
                "preview",
                &intake.summary,
                &planned,
                unplanned.any(),
                0,
                started
            )
        ));
    }
    // As the run ends (see `run`).
    if unplanned.oversized > 0 {
        return Err(ConfigError(too_large(unplanned.oversized)).into());
    }
    Ok(EXIT_OK)
}

fn run(settings: &Settings, now: DateTime<Utc>, options: &Options<'_>) -> Result<u8> {
    let (only, json, verbosity) = (options.only, options.json, options.verbosity);
    let started = Instant::now();
    let world = World::load(settings, now, only, verbosity)?;
    let transport = transport(&settings.mail.transport).map_err(|e| ConfigError(one_line(&e)))?;
    let api = crate::aws_api::Api::for_run(settings, only, verbosity == Verbosity::Quiet)?;
    let Some(lock) = crate::lock::acquire(&settings.state_dir, verbosity != Verbosity::Quiet)?
    else {
        return Ok(EXIT_OK);
    };
    // A state removed where runs made reports: refused before one is made in its place.
    if !settings.state_db().exists() {
        crate::ledger::check_not_older(None, &settings.state_dir)?;
    }
    let mut state = State::open(&settings.state_dir)?;
    // Another configuration's state is refused before anything is read into it; this one
    // claims it once its sources have been read, so that a run refused for a source that is
    // not there (78) leaves the state to whichever configuration runs right.
    crate::ledger::check_owner(&state, settings)?;
    crate::ledger::check_not_older(Some(&state), &settings.state_dir)?;
    // What an earlier run sent and could not record is recorded first, or nothing is sent.
    crate::ledger::record_unrecorded(&mut state)?;
    let renames = crate::ledger::renames(&state, settings, &world.providers)?;
    if let Some(renamed) = renames.refused.into_iter().next() {
        return Err(ConfigError(renamed).into());
    }
    if verbosity != Verbosity::Quiet {
        for taking_over in &renames.taking_over {
            crate::output::tell(format_args!("abuse-mailer: warning: {taking_over}"));
        }
    }

    // Waiting reports the configuration no longer lets go as stored (of any provider: a run
    // for one provider reads every source) are left out of the ledger the read asks, so that
    // the lines read now of their addresses are kept for the reports that replace them. They
    // are withdrawn only once the read is stored (`resend`): a run that fails before leaves
    // them waiting.
    let heads = state.pending_heads()?;
    let withdrawing = crate::ledger::to_withdraw(&heads, &state, &world)?;
    let leaving_out: Vec<String> = withdrawing.iter().map(|(r, _)| r.id.clone()).collect();
    tell_made_before(&state, &world, &heads, &leaving_out, only, verbosity)?;

    // Store what the logs say before any mail goes out: a mail outage must not lose lines
    // that rotate away meanwhile.
    let (intake, ledger) = ingest(&world, Some(&state), options, &leaving_out)?;
    claim(&mut state, settings)?;
    let mut intake = at_exit(intake);
    tell_lines_ahead(&intake, now, verbosity);
    let touched: Vec<&Observation> = intake
        .touched
        .iter()
        .filter_map(|ip| intake.observations.get(ip))
        .collect();
    // Evidence changes where lines were read or the window moved, and history is let go at
    // every desk whenever anything was read (a desk that hears nothing more is not left with
    // its lines); a run with nothing new writes nothing.
    let read = !intake.touched.is_empty();
    let fresh = world.fresh_since();
    let desks = world.desk_keys();
    let evidence: Vec<EvidenceUpdate<'_>> = desks
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            !intake.evidence[i].is_empty() || intake.dense[i].is_some() || (read && fresh.is_some())
        })
        .map(|(i, &desk)| EvidenceUpdate {
            desk,
            lines: &intake.evidence[i],
            spool: &intake.spool,
            // An address only a discovered desk may get keeps one line (see
            // `Attribution::few_lines`), across runs as within one.
            per_ip: crate::intake::own_lines_kept(desk),
            dense: intake.dense[i].as_deref(),
            first_seq: intake.kept_before[i],
        })
        .collect();
    let kept = KeptLines {
        updates: &evidence,
        desks: if read { &desks } else { &[] },
        stale_before: fresh,
    };
    let store = |state: &mut State| {
        state.commit_ingest(
            &touched,
            &intake.cursors,
            crate::state::Counted {
                times: &intake.counted,
                zone: &settings.zone.name(),
            },
            &kept,
            &utc_text(now),
            intake.moved || !intake.partial,
        )
    };
    // Lines set aside on the disk the state is on take the room the state needs to store
    // them, and then to record what is sent: they are held in memory instead, as by a spool
    // that could not set them aside. Else a state that fits would fail every run.
    let gave_way = |(dir, bytes): (std::path::PathBuf, u64)| {
        if verbosity != Verbosity::Quiet {
            crate::output::tell(format_args!(
                "abuse-mailer: warning: the disk of {} is short of room: the {bytes} bytes of log lines kept as evidence set aside in {} are held in memory instead, left to the state",
                settings.state_dir.display(),
                dir.display()
            ));
        }
    };
    let let_go = match store(&mut state) {
        Ok(let_go) => let_go,
        Err(e) => {
            let Some(aside) = intake.spool.set_aside().filter(|_| disk_full(&e)) else {
                return Err(e);
            };
            intake.spool.take_back()?;
            gave_way(aside);
            store(&mut state)?
        }
    };
    intake.let_go(&world, &ledger, &let_go);
    // Said under `-q` too: addresses lost.
    for (provider, n) in Intake::never_reported(&world, &ledger, &let_go) {
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {n} address(es) of {provider} that no report listed became history (last seen more than max_age_days ago): they are not reported (those that waited for a run were lost to runs stopped for longer than that, or to a sending budget smaller than what is logged)"
        ));
    }
    if let Some(aside) = intake.spool.give_way_to(&settings.state_dir)? {
        gave_way(aside);
    }

    // Each round of desks goes in the order their desks were last tried (see `in_turn_after`).
    let turns = state.turns()?;
    let mut out = Sending {
        lock: &lock,
        world: &world,
        transport: transport.as_ref(),
        api: api.as_ref(),
        verbosity,
        json,
        only,
        budget: settings.mail.max_messages_per_run,
        outcome: Outcome::default(),
        tried: std::collections::HashSet::new(),
        aging_held: std::collections::BTreeMap::new(),
        under: std::collections::HashMap::new(),
        give_ups: Vec::new(),
        next_turn: turns.values().max().map_or(0, |t| t + 1),
    };
    // The configured providers first: a discovered desk (a stranger's mail server) never
    // holds back what the operator configured, and a run killed while it looks contacts up
    // has sent those already. Their reports waiting from earlier runs and the new ones go in
    // one order, desk by desk (see [`in_send_order`]).
    let routes = world.routes();
    let mut unplanned = Unplanned::default();
    let planned = plan_providers(
        &world,
        &intake,
        &ledger,
        only,
        Some(&state),
        &routes,
        &mut unplanned,
    )?;
    // Addresses held from earlier runs are looked up as reports are planned.
    world.asn_intact(UNPLANNED)?;
    ledger.check()?;
    // Reports withdrawn now take no turn: they go first, and the rest in the order `preview`
    // lists (a withdrawn report took its desk's turn, and another desk's report went instead).
    let (withdrawn, waiting): (Vec<ReportRecord>, Vec<ReportRecord>) =
        (state.pending_heads()?.into_iter())
            .filter(|r| r.contact.is_none() && only.is_none_or(|o| o == r.provider))
            .partition(|r| leaving_out.contains(&r.id));
    let mut made = Vec::new();
    let mut resent = 0;
    for record in withdrawn {
        resent += out.resend_one(&mut state, record, false)?;
    }
    for item in in_send_order(waiting, planned, &turns) {
        match item {
            Outgoing::Waiting(record) => resent += out.resend_one(&mut state, record, false)?,
            Outgoing::New(p) => made.extend(out.send_one(&mut state, p)?),
        }
    }
    out.write_made_under(&mut state);

    let resent = out.resend(&mut state, true)? + resent;
    if world.discover.is_some() && only.is_none() {
        let ledger = if resent > 0 { world.ledger()? } else { ledger };
        // Discovery remembers through a connection of its own: the run's is lent to the plan.
        let mut cache = State::open(&settings.state_dir)?;
        let planned = plan_discovered(
            &world,
            &intake,
            &ledger,
            Some(&state),
            &mut cache,
            &routes,
            &mut unplanned,
        )?;
        world.asn_intact(UNPLANNED)?;
        ledger.check()?;
        made.extend(out.send(&mut state, planned)?);
        out.write_made_under(&mut state);
    }
    out.settle_give_ups(&mut state)?;
    if only.is_none() && intake.rechecks_due {
        // The addresses discovery held back that were due were decided again above: those it
        // still holds have a later time.
        state.forget_contact_rechecks(now.timestamp())?;
    }
    // Reports held back by the budget are made again by a later run: addresses of theirs
    // about to pass `max_age_days` are said with the others.
    for (desk, soon) in std::mem::take(&mut out.aging_held) {
        match unplanned.aging_out.iter_mut().find(|(d, _)| *d == desk) {
            Some((_, n)) => *n += soon,
            None => unplanned.aging_out.push((desk, soon)),
        }
    }
    match verbosity {
        // Cron mails what a quiet run says: addresses about to age out are said once a day
        // for each desk, not by every run of their last day, unless more are about to than
        // were said. A mark that cannot be written leaves the warning said.
        Verbosity::Quiet => {
            unplanned.aging_out.retain(|(desk, soon)| {
                let what = format!("aging_out:{desk}");
                let (now, day, soon) = (now.timestamp(), crate::clock::DAY, *soon as u64);
                !(state.said_lately(&what, now, day, soon)).unwrap_or(false)
            });
            unplanned.tell_losses()
        }
        _ => unplanned.tell(&world),
    }
    out.outcome.unplanned = unplanned.any();
    let oversized = unplanned.oversized;
    let outcome = out.outcome;
    // The entries of reports sent or given up are not needed any more. A run that tried
    // nothing writes nothing: such entries wait for the next run that does.
    if !out.tried.is_empty() {
        let _ = state.let_go_of_previews();
    }
    settle(&mut state, &intake, &outcome, only, now)?;
    if let Some(api) = &api {
        crate::aws_api::refresh_after_run(&mut state, &lock, api);
    }
    // A document its reader did not take (a closed pipe, a full disk) is said after what
    // the run itself ends with: a failed delivery's status, and its lines, come first.
    let printed = match json {
        true => print_json(
            made.iter()
                .map(|p| JsonEntry::Made(json_report(p)))
                .collect(),
            intake.summary,
            &unattributed(&world, &intake, Some(&state))?,
            true,
        ),
        false => Ok(()),
    };
    if verbosity != Verbosity::Quiet {
        if outcome.held > 0 || outcome.waiting > 0 || outcome.queued > 0 {
            // Why they wait: what stopped delivery this run, if anything did.
            let why = match (&outcome.unauthorized_api, &outcome.unauthorized) {
                (Some(_), _) | (_, Some(_)) => {
                    "until the settings named below are fixed".to_string()
                }
                _ if !outcome.failed_routes.is_empty() || outcome.transient_reason().is_some() => {
                    "the way out failed this run".to_string()
                }
                _ if outcome.out_of_time.is_some() => {
                    "this run's time for delivery is spent".to_string()
                }
                _ => format!(
                    "max_messages_per_run = {}",
                    settings.mail.max_messages_per_run
                ),
            };
            // Held back before it was written, a report is made by the run that sends it:
            // `history` lists it then, not now.
            let unwritten = match outcome.held {
                0 => String::new(),
                n => format!(
                    "; {n} of them not written yet: the next run makes them of the addresses they hold, and history lists them once made"
                ),
            };
            crate::output::tell(format_args!(
                "abuse-mailer: {} report(s) wait for the next run ({why}){unwritten}",
                outcome.held + outcome.waiting + outcome.queued,
            ));
        }
        let waiting = outcome.held > 0 || outcome.unplanned;
        let mut line = summary_line(
            "run",
            &intake.summary,
            &made,
            waiting,
            outcome.sent,
            started,
        );
        if api.is_some() {
            for tally in crate::aws_api::tallies(&state, settings, only)? {
                line.push_str(&format!("; {tally}"));
            }
        }
        crate::output::tell(format_args!("{line}"));
    }
    if let Some(reason) = (outcome.unauthorized_api.as_ref()).or(outcome.unauthorized.as_ref()) {
        return Err(ConfigError(format!(
            "{reason}; the report is kept and goes out once that is fixed"
        ))
        .into());
    }
    // Under `-q` this is the one line said of it (each report's own line is not). A refusal
    // wins over a deferral: waiting fixes the one, not the other, and a unit that takes 75
    // for success would never show a dead mailbox while another desk defers.
    let transient = outcome.transient_reason();
    if let Some(last) = &outcome.rejected {
        let refused = match outcome.rejections {
            1 => last.clone(),
            n => format!("{n} reports rejected (history lists each); the last: {last}"),
        };
        match transient {
            Some(later) => {
                bail!("{refused}; and a report not delivered, will retry on the next run: {later}")
            }
            None => bail!("{refused}"),
        }
    }
    if let Some(reason) = transient {
        return Err(TransientError(format!(
            "report not delivered, will retry on the next run: {reason}"
        ))
        .into());
    }
    // Waiting does not make a report smaller: each run said so and ended 0, for ever. Said
    // last, so that a refusal or a failed delivery is not hidden behind it, run after run.
    if oversized > 0 {
        return Err(ConfigError(too_large(oversized)).into());
    }
    printed.map(|()| EXIT_OK)
}

/// What ends a run (and its preview) that left reports of one address each over
/// `report.max_message_bytes` even without log lines.
fn too_large(reports: usize) -> String {
    format!(
        "{reports} report(s) of one address are over report.max_message_bytes even without log lines (named above): they wait until the limit is raised or the templates are shortened"
    )
}

/// What a run stopped by a damaged ASN database at planning did: the read is kept, and the
/// reports are made once the file is replaced.
const UNPLANNED: &str = "no report was made from the addresses it could not answer for; what was read is kept, and they are reported once the file is replaced";

/// Packet lines dated more than a day ahead of the clock are passed over: a host's clock set
/// back (a bad hardware clock at boot, before NTP) takes every line since for one. The
/// operator learns it, and how to have them read again once the clock is right.
///
/// Lines dated ahead by less than a day are counted, and reported at the times they give: the
/// operator learns of them too, since the likely cause (a `timezone` that is not the log's)
/// puts every time of every report out by as much, and a desk reads a report whose packets
/// come after its Date.
fn tell_lines_ahead(intake: &crate::intake::Intake, now: DateTime<Utc>, verbosity: Verbosity) {
    if verbosity == Verbosity::Quiet {
        return;
    }
    let summary = &intake.summary;
    let files = |count: fn(&crate::intake::AheadIn) -> u64| -> Vec<(&str, u64)> {
        (intake.ahead_in.iter())
            .filter(|a| count(a) > 0)
            .map(|a| (a.source.as_str(), count(a)))
            .collect()
    };
    if summary.lines_soon > 0 {
        let latest = DateTime::from_timestamp(summary.latest_soon, 0).unwrap_or(now);
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {} packet line(s) are dated ahead of this host's clock ({}), the latest {} minute(s) ahead, at {}{}: counted, and reported at those times; if the log is written in another zone than `timezone`, or a host's clock runs ahead, fix that",
            summary.lines_soon,
            utc_text(now),
            (latest - now).num_minutes(),
            utc_text(latest),
            in_files(&files(|a| a.soon))
        ));
    }
    if summary.lines_ahead > 0 {
        let far = files(|a| a.far);
        let path = match &far[..] {
            [(one, _)] => (*one).to_string(),
            _ => "PATH".to_string(),
        };
        crate::output::tell(format_args!(
            "abuse-mailer: warning: {} packet line(s) are dated more than a day ahead of this host's clock ({}){}: passed over, not counted; if the clock is wrong, fix it, then `abuse-mailer reread --source {path}` reads them again (nothing counted before is counted twice)",
            summary.lines_ahead,
            utc_text(now),
            in_files(&far)
        ));
    }
}

/// `, in FILE` or `, in FILE (N), FILE (M) and K more files`: where lines a warning is about
/// were read, the first three named.
fn in_files(files: &[(&str, u64)]) -> String {
    const NAMED: usize = 3;
    let named: Vec<String> = match files {
        [] => return String::new(),
        [(one, _)] => vec![(*one).to_string()],
        many => (many.iter().take(NAMED))
            .map(|(file, n)| format!("{file} ({n})"))
            .collect(),
    };
    let more = match files.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more file(s)"),
    };
    format!(", in {}{more}", named.join(", "))
}

/// Reports waiting to be sent again go as they were made, also when the templates or the
/// `[report]` settings that shape a message changed since: a part tried before must reach the
/// desk as it was first sent (one Message-ID, one text), and a part never tried keeps its
/// place in its thread ("part 3 of 5"). The operator who changed them learns it, in one line,
/// of `heads` (the state's pending heads) but those `leaving_out`.
fn tell_made_before(
    state: &State,
    world: &World<'_>,
    heads: &[ReportRecord],
    leaving_out: &[String],
    only: Option<&str>,
    verbosity: Verbosity,
) -> Result<()> {
    if verbosity == Verbosity::Quiet {
        return Ok(());
    }
    let made = state.made_under()?;
    if made.is_empty() {
        return Ok(());
    }
    let mut count = 0;
    let mut desks = std::collections::BTreeSet::new();
    for r in heads {
        if leaving_out.contains(&r.id) || only.is_some_and(|o| o != r.provider) {
            continue;
        }
        let then = made.get(World::made_under_key(&r.provider));
        if then.is_some_and(|k| *k != world.made_under(&r.provider)) {
            count += 1;
            desks.insert(match &r.contact {
                Some(c) => c.address.clone(),
                None => r.provider.clone(),
            });
        }
    }
    if count > 0 {
        crate::output::tell(format_args!(
            "abuse-mailer: {count} waiting report(s) to {} were made under other templates or [report] settings than these: they go as made, their text and Message-ID unchanged; new reports follow the settings of now",
            desks.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// Whether `e` is SQLite saying the disk is full.
fn disk_full(e: &anyhow::Error) -> bool {
    sqlite_says(e, |code| code == rusqlite::ErrorCode::DiskFull)
}

/// What a read built, held until the process ends and let go with it: a million sources'
/// records and lines take longer to free one allocation at a time than to report, and a
/// command's process ends when it returns.
fn at_exit<T>(value: T) -> std::mem::ManuallyDrop<T> {
    std::mem::ManuallyDrop::new(value)
}

/// A discovered desk's report that its mail server keeps deferring is given up after this
/// long (it is `rejected`, naming why): a stranger's server must not keep a run failing.
const DESK_PATIENCE_DAYS: i64 = 3;

/// One run's sending: the ways out, what the run may still send, and what came of it.
struct Sending<'a> {
    /// The run's lock: nothing is written or sent once it is no longer this run's alone.
    lock: &'a crate::lock::RunLock,
    /// What the configuration says now (a waiting report it no longer lets go is withdrawn),
    /// and the run's time.
    world: &'a World<'a>,
    transport: &'a dyn Transport,
    api: Option<&'a crate::aws_api::Api>,
    verbosity: Verbosity,
    /// Standard output carries the run's JSON document (`run --json`).
    json: bool,
    only: Option<&'a str>,
    budget: u32,
    outcome: Outcome,
    /// The waiting reports tried this run, and the reports made this run: one that failed is
    /// not tried again by a later pass of the same run, nor one stored to wait counted twice.
    tried: std::collections::HashSet<String>,
    /// Per desk, the addresses of reports held back by the budget (made again by a later
    /// run) that pass `max_age_days` within a day.
    aging_held: std::collections::BTreeMap<String, usize>,
    /// What the reports written this run were made under, per destination, not yet written.
    under: std::collections::HashMap<String, String>,
    /// Discovered desks' reports deferred again this run, to give up once the run knows
    /// whether the deferrals were the desks' or the way out's (see
    /// [`Sending::settle_give_ups`]).
    give_ups: Vec<ReportRecord>,
    /// The turn the next provider's desk tried takes (see [`State::turns`]).
    next_turn: u64,
}

impl Sending<'_> {
    /// The way a provider's reports go: a failure of one (the mail server is down, the API's
    /// key expired) holds back only the reports that go that way.
    fn route(&self, provider: &str) -> Route {
        match self.api {
            Some(api) if api.serves(provider) => Route::Api,
            _ => Route::Mail,
        }
    }

    /// Whether the run's time for delivery has no room for another message by mail: then
    /// nothing more is tried that way, as when the budget is spent (the API's reports go
    /// on). A message refused for time before any server saw it is no attempt: it was
    /// counted as one, and recorded failed, and so went out later with the day it was made
    /// as its Date.
    fn out_of_time(&mut self, way: Route) -> bool {
        if way != Route::Mail {
            return false;
        }
        match self.transport.room() {
            Ok(()) => false,
            Err(why) => {
                self.outcome.out_of_time = Some(why);
                true
            }
        }
    }

    /// Notes that a configured provider's desk was just tried, for the order of the rounds
    /// of later runs (see [`crate::plan::in_turn_after`]), whatever came of it: a try the
    /// way out failed took the run's budget too, and a desk whose way is down (an API key
    /// expired) that kept its place went first in every run, the budget of one message a run
    /// spent on it while the desks whose way works waited. Only that order depends on the
    /// note: a state that cannot take it (a full disk) loses the note, not the report.
    fn took_turn(&mut self, state: &mut State, record: &ReportRecord) {
        if record.contact.is_none() {
            let _ = state.took_turn(&record.provider, self.next_turn);
            self.next_turn += 1;
        }
    }

    fn deliver(&mut self, state: &mut State, record: &ReportRecord) -> Result<()> {
        self.lock.still_held()?;
        deliver(
            state,
            self.transport,
            self.api,
            self.world.settings,
            record,
            self.world.now,
            &mut self.outcome,
            self.verbosity,
            self.json,
        )
    }

    /// Sends the stored reports to discovered desks waiting to be sent again, desk by desk
    /// (see [`Sending::resend_one`]). Returns how many were tried or withdrawn.
    fn resend(&mut self, state: &mut State, discovered: bool) -> Result<usize> {
        let pending = (state.pending_heads()?.into_iter())
            .filter(|r| r.contact.is_some() == discovered)
            .filter(|r| self.only.is_none_or(|o| o == r.provider));
        let mut resent = 0;
        for record in crate::plan::in_turn(pending.collect(), |r| r.provider.as_str()) {
            resent += self.resend_one(state, record, discovered)?;
        }
        Ok(resent)
    }

    /// Sends a stored report waiting to be sent again, within the budget, or withdraws it if
    /// the configuration no longer lets it go as stored (see [`crate::ledger::withdrawn`]);
    /// a report tried once this run is not tried again. Returns 1 if it was tried or
    /// withdrawn (the ledger changed), else 0.
    fn resend_one(
        &mut self,
        state: &mut State,
        mut record: ReportRecord,
        discovered: bool,
    ) -> Result<usize> {
        if self.tried.contains(&record.id) {
            return Ok(0);
        }
        // A request to the API tells by its stored body whether it was made as a test,
        // which `withdrawn` reads: read once, for that and for the send.
        if record.made_for_api() && record.contact.is_none() {
            record.message = state.message_of(&record.id)?;
        }
        if let Some(why) = crate::ledger::withdrawn(&record, self.world, state)? {
            self.put_aside(state, &record, &why)?;
            // Its addresses are free again: the ledger is read anew.
            return Ok(1);
        }
        let way = self.route(&record.provider);
        if self.budget == 0
            || self.out_of_time(way)
            || (self.outcome.failed_routes).contains(&way)
            || self.outcome.deferred_desks.contains(&record.provider)
        {
            self.outcome.waiting += 1;
            return Ok(0);
        }
        self.budget -= 1;
        self.tried.insert(record.id.clone());
        if record.message.is_empty() {
            record.message = state.message_of(&record.id)?;
        }
        self.deliver(state, &record)?;
        self.took_turn(state, &record);
        // Deferred by the desk's own server again, just now: past the patience, given up
        // once the run is done with sending (see `settle_give_ups`).
        if discovered && self.outcome.deferred_desks.contains(&record.provider) {
            self.give_ups.push(record);
        }
        Ok(1)
    }

    /// Gives up the discovered desks' reports deferred again this run past their patience,
    /// unless the way out itself failed this run (a relay that answers "later" for every
    /// desk, or went down): then the deferrals were the relay's, not the desks', and each
    /// desk's patience starts again when the desk itself next defers.
    fn settle_give_ups(&mut self, state: &mut State) -> Result<()> {
        let candidates = std::mem::take(&mut self.give_ups);
        if self.outcome.failed_routes.contains(&Route::Mail) {
            for id in self.outcome.deferred.keys() {
                state.forget_deferral(id)?;
            }
            return Ok(());
        }
        for record in &candidates {
            self.give_up(state, record)?;
        }
        Ok(())
    }

    /// Gives up a discovered desk's report that its server deferred, this run and for longer
    /// than [`DESK_PATIENCE_DAYS`] since it first did (an outage of the operator's own relay
    /// defers nothing: it fails to connect, and the report waits as long as it takes, and
    /// the desk's patience starts when the desk is first asked).
    fn give_up(&mut self, state: &mut State, record: &ReportRecord) -> Result<()> {
        let since = (state.deferred_since(&record.id)?)
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(self.world.now, |t| t.with_timezone(&Utc));
        if self.world.now - since < chrono::Duration::days(DESK_PATIENCE_DAYS) {
            return Ok(());
        }
        let why = format!(
            "given up: the desk's mail server has deferred it for more than {DESK_PATIENCE_DAYS} days"
        );
        self.put_aside(state, record, &why)?;
        // Counted as waiting, and as the run's transient failure, when it was deferred just
        // now: it waits no more.
        self.outcome.waiting = self.outcome.waiting.saturating_sub(1);
        self.outcome.deferred.remove(&record.id);
        // Its addresses stay reported to the desks: their lines have served.
        let _ = state.let_go_of_lines(&record.id);
        Ok(())
    }

    /// Marks a waiting report `rejected`, never to be sent, and says why, also under
    /// `--quiet`: the operator must learn that a report will not go.
    fn put_aside(&self, state: &mut State, record: &ReportRecord, why: &str) -> Result<()> {
        state.mark(
            &record.id,
            crate::state::Status::Rejected,
            why,
            &utc_text(self.world.now),
        )?;
        crate::output::tell(format_args!("abuse-mailer: report {} {why}", record.id));
        Ok(())
    }

    /// Records and sends new reports within the budget; returns those made (sent, or written
    /// to wait).
    fn send(&mut self, state: &mut State, planned: Vec<Planned>) -> Result<Vec<Planned>> {
        let mut made = Vec::new();
        for p in planned {
            made.extend(self.send_one(state, p)?);
        }
        Ok(made)
    }

    /// Records and sends one new report within the budget, or stores it to wait (a numbered
    /// part), or holds it for a later run to make again; returns it if it was made (sent, or
    /// stored to wait).
    fn send_one(&mut self, state: &mut State, p: Planned) -> Result<Option<Planned>> {
        // A desk that just refused a report is not sent its IPs again in the same run.
        if self.outcome.rejected_providers.contains(&p.record.provider) {
            return Ok(None);
        }
        let way = self.route(&p.record.provider);
        // Addresses of the report whose packets are history within a day: asked only of a
        // report held back.
        let world = self.world;
        let soon = |p: &Planned| {
            (p.record.ips.iter())
                .filter(|i| world.ages_out_within_a_day(i.last_seen))
                .count()
        };
        if self.outcome.failed_routes.contains(&way)
            || self.outcome.deferred_desks.contains(&p.record.provider)
        {
            // Its IPs stay in the delta: the next run plans them again. Unless some of them
            // would be history by then (the way out down for about `max_age_days`): written
            // now, it waits with the report that failed, and none of them ages out unsent.
            // A part of a split message is written whatever its addresses' age, as when the
            // budget holds it (below): its thread's parts go out with the numbers they were
            // made with (an earlier part, tried and stored, keeps its own).
            if soon(&p) > 0 || (p.report.parts > 1 && way != Route::Api) {
                return self.queue(state, p).map(Some);
            }
            self.outcome.held += 1;
            return Ok(None);
        }
        if self.budget == 0 || self.out_of_time(way) {
            // A part of a split message keeps its number: written now, never tried, it goes
            // out as stored ("part 11 of 16") before anything new on a later run. XARF's one
            // message per address is numbered too: planned afresh, the desk would get parts 1
            // and 2 "of 6" and never the other four. A report to the API has no numbers to
            // keep: it is planned afresh.
            if p.report.parts > 1 && way != Route::Api {
                return self.queue(state, p).map(Some);
            } else {
                self.outcome.held += 1;
                // Made again by a later run, if it comes before they are history.
                let soon = soon(&p);
                if soon > 0 {
                    *self
                        .aging_held
                        .entry(p.record.provider.clone())
                        .or_default() += soon;
                }
            }
            return Ok(None);
        }
        self.budget -= 1;
        self.lock.still_held()?;
        state.insert_report(&p.record)?;
        self.tried.insert(p.record.id.clone());
        keep_preview(state, &p);
        self.made_under(&p.record.provider);
        self.deliver(state, &p.record)?;
        self.took_turn(state, &p.record);
        Ok(Some(p))
    }

    /// Writes a new report to wait, never tried: it goes out as stored before anything new
    /// on a later run.
    fn queue(&mut self, state: &mut State, p: Planned) -> Result<Planned> {
        self.lock.still_held()?;
        state.insert_report(&p.record)?;
        keep_preview(state, &p);
        self.made_under(&p.record.provider);
        self.outcome.queued += 1;
        // Counted as queued: not counted again, nor sent, by a later pass.
        self.tried.insert(p.record.id.clone());
        Ok(p)
    }

    /// Writes what the reports written so far were made under. Only what a later run says
    /// depends on it: a state that cannot take it (a full disk) has what was sent recorded,
    /// and the run goes on.
    fn write_made_under(&mut self, state: &mut State) {
        if !self.under.is_empty() {
            let _ = state.set_made_under(&std::mem::take(&mut self.under));
            crate::ledger::mark_reports(state, &self.world.settings.state_dir);
        }
    }

    /// Notes what a report to `desk` was made under (see [`World::made_under`]).
    fn made_under(&mut self, desk: &str) {
        let key = World::made_under_key(desk);
        if !self.under.contains_key(key) {
            let made = self.world.made_under(desk);
            self.under.insert(key.to_string(), made);
        }
    }
}

/// A report a run may send: one waiting from an earlier run, or one made now.
pub(crate) enum Outgoing<W, N> {
    Waiting(W),
    New(N),
}

/// The order a run sends the configured providers' reports in, which is the order the budget
/// serves them in: desk by desk, each desk's first, then each one's second, and so on, and a
/// desk's reports waiting from earlier runs before its new ones. So a provider with a backlog
/// never keeps another waiting, whatever their order in the configuration, a desk's oldest
/// addresses go first, and the budget goes wherever there is something to send. `preview`
/// prints in this order.
pub(crate) fn in_send_order<W, N>(
    waiting: Vec<W>,
    planned: Vec<N>,
    turns: &std::collections::HashMap<String, u64>,
) -> Vec<Outgoing<W, N>>
where
    W: std::borrow::Borrow<ReportRecord>,
    N: std::borrow::Borrow<Planned>,
{
    let items: Vec<Outgoing<W, N>> = (waiting.into_iter().map(Outgoing::Waiting))
        .chain(planned.into_iter().map(Outgoing::New))
        .collect();
    crate::plan::in_turn_after(
        items,
        |item| match item {
            Outgoing::Waiting(r) => r.borrow().provider.as_str(),
            Outgoing::New(p) => p.borrow().record.provider.as_str(),
        },
        turns,
    )
}

/// The order a run sends reports in (see [`in_send_order`]), for `preview`: the providers'
/// waiting and new ones, desk by desk, then the discovered desks' waiting ones, desk by desk,
/// then their new ones.
fn send_order<'a>(
    waiting: Vec<&'a ReportRecord>,
    planned: &'a [Planned],
    turns: &std::collections::HashMap<String, u64>,
) -> Vec<Outgoing<&'a ReportRecord, &'a Planned>> {
    let (desks_waiting, waiting): (Vec<_>, Vec<_>) =
        waiting.into_iter().partition(|r| r.contact.is_some());
    let (desks_new, new): (Vec<_>, Vec<_>) =
        planned.iter().partition(|p| p.record.contact.is_some());
    let mut order = in_send_order(waiting, new, turns);
    let desks_waiting = crate::plan::in_turn(desks_waiting, |r| r.provider.as_str());
    order.extend(desks_waiting.into_iter().map(Outgoing::Waiting));
    order.extend(desks_new.into_iter().map(Outgoing::New));
    order
}

/// Keeps a report's entry in `preview --json` for as long as it may wait to be sent again.
/// Only what `preview` shows depends on it: a state that cannot take it (a full disk) loses
/// the excerpt of that entry, not the report.
fn keep_preview(state: &mut State, p: &Planned) {
    if let Ok(entry) = serde_json::to_string(&json_report(p)) {
        let _ = state.keep_preview(&p.record.id, &entry);
    }
}

/// Leaves a [`Settled`] marker when every provider's delta went into the ledger this run and
/// nothing was refused, and removes it otherwise. A quiet run under a marker writes nothing.
fn settle(
    state: &mut State,
    intake: &Intake,
    outcome: &Outcome,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let settled = only.is_none()
        && outcome.transient_reason().is_none()
        && outcome.unauthorized.is_none()
        && outcome.unauthorized_api.is_none()
        && outcome.rejected.is_none()
        && outcome.rejected_providers.is_empty()
        && outcome.held == 0
        && outcome.queued == 0
        && outcome.waiting == 0
        && outcome.deferred_desks.is_empty()
        && !outcome.unplanned;
    let marker = settled.then(|| Settled {
        key: intake.selection_key.clone(),
        below_min_hits: intake.summary.ips_below_min_hits,
        at: now.timestamp(),
    });
    // Nothing read and nothing moved under a marker: the delta was empty, the marker holds.
    if intake.partial && !intake.moved && intake.touched.is_empty() {
        return Ok(());
    }
    match (&marker, &intake.stored_marker) {
        (None, None) => Ok(()),
        _ => state.set_settled(marker.as_ref()),
    }
}

/// Every observed source that no provider holds, sorted, as reports list IPs.
pub(crate) fn unattributed<'a>(
    world: &'a World<'a>,
    intake: &'a Intake,
    state: Option<&'a State>,
) -> Result<Unattributed<'a>> {
    // What was read was attributed as it was read; only addresses known from earlier runs
    // and not read now are looked up in the ranges.
    // Those read now with the place of their whole record, merged in place with what was
    // stored (see `Intake::whole`).
    let mut found: Vec<(IpAddr, Option<u32>)> = (intake.unattributed.iter())
        .map(|&(ip, place)| (ip, Some(place)))
        .collect();
    let read_now = |ip: &IpAddr| intake.touched.binary_search(ip).is_ok();
    // Of those, the ones seen within `max_age_days`: older ones are history, and a run lets
    // them go from the state (see `State::commit_ingest`).
    let fresh = world.fresh_since();
    let earlier: Vec<IpAddr> = match (state, intake.partial) {
        // Selection did not look at every IP known: the list does.
        (Some(s), true) => s.observed_ips(fresh)?,
        (Some(_), false) => (intake.observations.iter())
            .filter(|o| fresh.is_none_or(|t| o.last_seen >= t))
            .map(|o| o.ip)
            .collect(),
        (None, _) => Vec::new(),
    };
    found.extend(
        (earlier.into_iter())
            // Routed as the read routes them: a provider's by its ranges or its AS (asked
            // only of an address a desk could act on), and a mapped source nobody's.
            .filter(|ip| {
                !read_now(ip)
                    && !(world.route(*ip).iter())
                        .any(|to| matches!(to, crate::intake::Destination::Provider(_)))
            })
            .map(|ip| (ip, None)),
    );
    found.sort_unstable_by_key(|&(ip, place)| (crate::ingest::address_order(ip), place.is_none()));
    found.dedup_by_key(|(ip, _)| *ip);
    let listed = move |o: &Observation| {
        // A mapped source is no IPv4 host's: its AS is not that host's either.
        let asn = (world.asn_db.as_ref())
            .filter(|_| !crate::select::is_mapped(o.ip))
            .and_then(|db| db.lookup(o.ip));
        Listed::new(o, asn.as_ref(), world.settings.zone)
    };
    Ok(Unattributed {
        entries: found,
        held: &intake.observations,
        listed: Box::new(listed),
        not_held: Box::new(move |ip| intake.with_whole(ip, state, listed)),
    })
}
