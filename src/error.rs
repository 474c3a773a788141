//! The few error kinds a caller must tell apart, and the exit status each one maps to.
//!
//! Everything else travels as `anyhow::Error` with context; only these two change what an
//! operator (or cron, or systemd) should do next.

use std::fmt;

/// Exit status: success, also when there was nothing new to report.
pub const EXIT_OK: u8 = 0;
/// Exit status: any other error.
pub const EXIT_ERROR: u8 = 1;
/// Exit status (EX_TEMPFAIL): mail could not be delivered now; nothing was lost, try again later.
pub const EXIT_TEMPFAIL: u8 = 75;
/// Exit status (EX_CONFIG): the configuration is wrong; retrying will not help.
pub const EXIT_CONFIG: u8 = 78;

/// The configuration (file, key, value or a file it names) is wrong.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The whole number of `unit` the environment variable `var` gives, at least `least`; `None`
/// when it is not set. Any other value is a configuration error naming the variable: waiting
/// does not fix it.
pub fn number_from_env(var: &str, unit: &str, least: u64) -> Result<Option<u64>, ConfigError> {
    match std::env::var(var) {
        Ok(text) => (text.trim().parse::<u64>().ok())
            .filter(|n| *n >= least)
            .map(Some)
            .ok_or_else(|| ConfigError(format!("{var}={text:?} is not a number of {unit}"))),
        Err(_) => Ok(None),
    }
}

/// A mail transport failed in a way that may pass: the report is kept and sent again later.
#[derive(Debug)]
pub struct TransientError(pub String);

impl fmt::Display for TransientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransientError {}

/// Whether the error is standard output closed by its reader (a pager quit, `| head`): the
/// work is done or stopped where nothing more could be shown, and there is no one to tell.
pub fn stdout_closed(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

/// The exit status for an error: the kind found first in its chain decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return EXIT_CONFIG;
        }
        if cause.is::<TransientError>() {
            return EXIT_TEMPFAIL;
        }
    }
    EXIT_ERROR
}

/// An error as one line: the context chain joined with `: `, newlines folded.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for (i, cause) in err.chain().enumerate() {
        let part = cause.to_string();
        if i > 0 {
            // anyhow wraps with context; skip a cause already spelled out by its wrapper.
            if text.ends_with(&part) {
                continue;
            }
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    cut_short(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
        MAX_LINE,
    )
}

/// The most of an error's line shown: an input quoted whole (a range file's line of a
/// hundred megabytes of junk) would otherwise be one line of that size, mailed by cron.
const MAX_LINE: usize = 2000;

/// `text` whole when it holds at most `most` characters, else its start and how much of it
/// is left out.
pub fn cut_short(text: &str, most: usize) -> String {
    match text.char_indices().nth(most) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} more bytes)", &text[..at], text.len() - at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// An error quoting a huge input is one line of bounded length that says how much it
    /// left out; a range file's junk line is quoted by its start alone.
    #[test]
    fn an_error_quoting_a_huge_input_stays_a_short_line() {
        let junk = "\0".repeat(10_000_000);
        let e = anyhow::anyhow!("ranges x: line 1: {junk:?}");
        let line = one_line(&e);
        assert!(line.chars().count() < MAX_LINE + 40, "{}", line.len());
        assert!(line.starts_with("ranges x: line 1: \"\\0") && line.ends_with("more bytes)"));
        assert_eq!(one_line(&anyhow::anyhow!("short")), "short");
        let net = crate::config::parse_net(&"x".repeat(1_000_000)).unwrap_err();
        assert!(net.len() < 200 && net.contains("more bytes"), "{net}");
    }

    #[test]
    fn kinds_map_to_exit_codes_through_context() {
        let config: anyhow::Result<()> = Err(ConfigError("bad key".into()).into());
        let config = config.context("loading").unwrap_err();
        assert_eq!(exit_code(&config), EXIT_CONFIG);
        let mail = anyhow::Error::from(TransientError("421".into()));
        assert_eq!(exit_code(&mail), EXIT_TEMPFAIL);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), EXIT_ERROR);
    }

    #[test]
    fn one_line_joins_the_chain_and_folds_newlines() {
        let err: anyhow::Result<()> = Err(anyhow::anyhow!("line one\nline two"));
        let err = err.context("outer").unwrap_err();
        assert_eq!(one_line(&err), "outer: line one line two");
    }
}
