//! `reread`: makes the next run read one source again, its rotated history included, after a
//! first read went wrong (a wrong prefix matched nothing and the cursor moved on). Only the
//! source's cursor changes; the ledger keeps every report unique, so an IP already reported
//! is not sent again. The journald source is named `journald`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

use crate::clock::utc_text;
use crate::config::{Settings, SourceConfig, SourceKind};
use crate::error::{ConfigError, EXIT_OK};
use crate::ingest::Summary;
use crate::journal;
use crate::parse::LineParser;
use crate::source::{self, RereadStart};
use crate::state::{State, StoredCursor};

/// Leaves a cursor for each file of the source named `wanted` so that the next run reads it
/// again: from its oldest rotated file, or with `since`, from the first packet logged then.
pub fn reread(
    settings: &Settings,
    now: DateTime<Utc>,
    wanted: &Path,
    since: Option<DateTime<Utc>>,
    say: bool,
) -> Result<u8> {
    let (config, wanted) = configured_as(settings, wanted)?;
    let wanted = wanted.as_path();
    // `-q`: only errors, as for every command.
    let tell = |line: std::fmt::Arguments<'_>| {
        if say {
            crate::output::say(line);
        }
    };
    let Some(lock) = crate::lock::acquire(&settings.state_dir, say)? else {
        bail!("another run holds the state; try again when it is done");
    };
    let mut state = State::open(&settings.state_dir)?;
    let since_text = since.map(utc_text).unwrap_or_default();
    let mut cursors = Vec::new();
    if config.kind == SourceKind::Journald {
        let cursor = match since {
            Some(t) => {
                tell(format_args!(
                    "source journald: the next run reads the journal again from {since_text}"
                ));
                journal::reread_since(t.timestamp())
            }
            None => {
                tell(format_args!(
                    "source journald: the next run reads the whole journal again"
                ));
                journal::REREAD_ALL.to_string()
            }
        };
        cursors.push((config.name(), StoredCursor::Journal(cursor), None));
    }
    for file in files(config, wanted, &state)? {
        let mut parser = LineParser::new(&config.prefixes, settings.zone, now);
        let key = file.to_string_lossy().into_owned();
        // Where the runs had read: the cursor, or, chosen by `reread` already and not read
        // since, the cursor it had then.
        let mark = state.reread_mark(&key)?;
        let pending = mark.is_some();
        let read_up_to = match mark {
            Some(through) => through,
            None => state.cursor(&key)?.filter(|c| !c.is_reread()),
        };
        let since_at = since.map(|t| (t.timestamp(), &mut parser));
        let from = source::reread_from(&file, since_at, read_up_to.as_ref())?;
        let shown = file.display();
        match &from.start {
            RereadStart::Oldest => tell(format_args!(
                "source {shown}: the next run reads it again from the start of its oldest rotated file"
            )),
            RereadStart::At(at, offset) => tell(format_args!(
                "source {shown}: the next run reads it again from {} at byte {offset} (the first packet logged at or after {since_text})",
                at.display()
            )),
            RereadStart::NothingSince => tell(format_args!(
                "source {shown}: nothing logged since {since_text}; the next run reads what is written from now on"
            )),
            // Left as it is: moved on to the point, it would pass over lines no run read.
            // Chosen by `reread` already, it goes back to where the runs had read.
            RereadStart::Behind => {
                tell(format_args!(
                    "source {shown}: the last run stopped before {since_text}; the next run reads on from there, which reads everything since"
                ));
                if !pending {
                    continue;
                }
            }
        }
        // Where the text earlier runs read ends: the next run counts what lies after it
        // whatever its lines' time.
        cursors.push((key, StoredCursor::File(from.cursor), read_up_to));
    }
    // Looking for where to start again reads the files (a large one compressed takes
    // seconds): a run let in meanwhile by a lock file removed may have moved the cursors.
    lock.still_held()?;
    state.set_cursors(&cursors, &utc_text(now))?;
    Ok(EXIT_OK)
}

/// What a run tells the operator when the first read of a source found lines but none with a
/// configured prefix: its cursor moves on, and once the prefix is fixed only `reread` brings
/// that history back.
pub fn first_read_hint(
    source: &str,
    prefixes: &[String],
    before: &Summary,
    after: &Summary,
) -> Option<String> {
    let read = after.lines_read - before.lines_read;
    let matched = after.lines_matched - before.lines_matched;
    let malformed = after.lines_malformed - before.lines_malformed;
    let elsewhere = after.lines_not_kernel - before.lines_not_kernel;
    let quoted = prefixes
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(" or ");
    (read > 0 && matched == 0).then(|| match malformed {
        0 => format!(
            "source {source}: first read, {read} lines, none carries {quoted}; check `prefixes` (abuse-mailer check), then `abuse-mailer reread --source {source}` to read it again"
        ),
        // The prefix is there, the layout is not one read: pointing at `prefixes` would
        // send the operator after the wrong setting.
        carried => format!(
            "source {source}: first read, {read} lines, {carried} carry {quoted} but none reads as a packet ({elsewhere} of them outside a kernel message): a log layout that is not read, or another program's text; a packet line is `HOST kernel: PREFIX IN=... SRC=...` after a BSD or RFC 3339 time (see README \"How a run works\"); once the log is written so, `abuse-mailer reread --source {source}` reads it again"
        ),
    })
}

/// [`configured`], with a relative `wanted` taken from the current folder, or failing that,
/// as the configuration spells its paths, from its file's folder (`--source log` for
/// `path = "log"`, from wherever the command is run); and the path it names.
fn configured_as<'s>(settings: &'s Settings, wanted: &Path) -> Result<(&'s SourceConfig, PathBuf)> {
    let found = configured(settings, wanted);
    let beside = (settings.file.parent()).filter(|_| found.is_err() && wanted.is_relative());
    if let Some(folder) = beside
        && let Ok(config) = configured(settings, &folder.join(wanted))
    {
        return Ok((config, folder.join(wanted)));
    }
    Ok((found?, wanted.to_path_buf()))
}

/// The configured source that `wanted` names: its `path` itself, a file its glob matches, or
/// `journald`.
fn configured<'s>(settings: &'s Settings, wanted: &Path) -> Result<&'s SourceConfig> {
    let absolute = std::path::absolute(wanted).unwrap_or_else(|_| wanted.to_path_buf());
    let names = |p: &Path| p == wanted || p == absolute || same_file(p, &absolute);
    for s in &settings.sources {
        let found = match &s.kind {
            SourceKind::File(pattern) => {
                // A relative `path` keeps the config folder's `..` in its name
                // (`/etc/abuse/../logs/*.log`): the file's own name is matched too.
                let plain = crate::config::without_dot_dot(pattern);
                let globs = [pattern.as_path(), plain.as_path()]
                    .map(|p| glob::Pattern::new(&p.to_string_lossy()).ok());
                names(pattern)
                    || globs
                        .iter()
                        .flatten()
                        .any(|g| g.matches_path(&absolute) || g.matches_path(&plain_of(&absolute)))
            }
            SourceKind::Journald => wanted == Path::new("journald"),
        };
        if found {
            return Ok(s);
        }
    }
    let known: Vec<String> = settings.sources.iter().map(SourceConfig::name).collect();
    Err(ConfigError(format!(
        "reread --source {}: no such source configured (sources: {})",
        wanted.display(),
        known.join(", ")
    ))
    .into())
}

/// The files to read again: the one named, or every file of a glob source, those gone for
/// the moment but remembered included.
fn files(config: &SourceConfig, wanted: &Path, state: &State) -> Result<Vec<PathBuf>> {
    let SourceKind::File(pattern) = &config.kind else {
        return Ok(Vec::new());
    };
    let text = pattern.to_string_lossy();
    let absolute = std::path::absolute(wanted).unwrap_or_else(|_| wanted.to_path_buf());
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![pattern.clone()]);
    }
    let mut files = source::expand(pattern)?;
    if let Ok(glob) = glob::Pattern::new(&text) {
        for known in state.cursor_sources()? {
            let known = PathBuf::from(known);
            if glob.matches_path(&known) && !files.contains(&known) {
                files.push(known);
            }
        }
    }
    let whole =
        wanted == pattern || absolute == *pattern || plain_of(&absolute) == plain_of(pattern);
    if !whole {
        // The one file named, under the name runs read it by (its cursor's).
        let named = (files.iter())
            .find(|f| **f == absolute || same_file(f, &absolute))
            .cloned();
        return match named {
            Some(named) => Ok(vec![named]),
            // A cursor for it would be one no run reads by.
            None if !absolute.exists() => Err(ConfigError(format!(
                "reread --source {}: no such file, and no run has read one by that name",
                wanted.display()
            ))
            .into()),
            None => Ok(vec![absolute]),
        };
    }
    files.sort();
    Ok(files)
}

/// Whether two names are one file: the same file where both are there, else the same name
/// once `.` and `..` are taken out.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => plain_of(a) == plain_of(b),
    }
}

/// `path` with `.` and `..` taken out by name.
fn plain_of(path: &Path) -> PathBuf {
    crate::config::without_dot_dot(path)
}
