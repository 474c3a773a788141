//! AWS credentials: from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
//! else from a profile of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`). The secret parts never reach `Debug`, an error or the ledger.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::Secret;
use crate::error::ConfigError;

/// What signs a request.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// Where these came from, for `check`: the key id's first and last characters only.
    pub fn describe(&self) -> String {
        let id: Vec<char> = self.access_key_id.chars().collect();
        let shown = if id.len() > 8 {
            let (head, tail): (String, String) = (
                id[..4].iter().collect(),
                id[id.len() - 4..].iter().collect(),
            );
            format!("{head}…{tail}")
        } else {
            "…".to_string()
        };
        format!(
            "access key {shown}{}",
            if self.session_token.is_some() {
                " with a session token"
            } else {
                ""
            }
        )
    }
}

/// Loads the credentials from the process environment and files.
pub fn load(profile: Option<&str>) -> Result<Credentials, ConfigError> {
    load_with(profile, &|name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    })
}

/// [`load`] with the environment given as a function (for tests).
pub fn load_with(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let creds = found(profile, env)?;
    // Each goes into a header as it is: a character no header may carry (a pasted line
    // break, a typographic quote) would fail every request, as if AWS had refused the report.
    let plain = |value: &str| value.bytes().all(|b| b.is_ascii_graphic());
    for (name, value) in [
        ("access key id", Some(creds.access_key_id.as_str())),
        ("secret access key", Some(creds.secret_access_key.expose())),
        (
            "session token",
            creds.session_token.as_ref().map(Secret::expose),
        ),
    ] {
        if value.is_some_and(|v| !plain(v)) {
            return Err(ConfigError(format!(
                "aws_api: the AWS {name} holds a character other than printable ASCII (a space, a line break, a letter outside ASCII): copy it again"
            )));
        }
    }
    Ok(creds)
}

/// The credentials the environment or the shared file gives, as written.
fn found(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::new(secret.trim().to_string()),
                session_token: env("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim().to_string())),
            });
        }
        (Some(_), None) => {
            return Err(ConfigError(
                "aws_api: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError(
                "aws_api: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
            ));
        }
        (None, None) => {}
    }
    let profile = profile
        .map(str::to_string)
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    let file = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(f) => PathBuf::from(f),
        None => match env("HOME") {
            Some(home) => Path::new(&home).join(".aws").join("credentials"),
            None => {
                return Err(ConfigError(
                    "aws_api: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE".into(),
                ));
            }
        },
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError(format!(
                "aws_api: no AWS credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set and {} does not exist",
                file.display()
            )));
        }
        Err(e) => {
            return Err(ConfigError(format!(
                "aws_api: cannot read {}: {e}",
                file.display()
            )));
        }
    };
    let sections = parse_ini(&text).map_err(|line| {
        ConfigError(format!(
            "aws_api: {}: line {line} is neither [profile], key = value nor a comment",
            file.display()
        ))
    })?;
    let Some(keys) = sections.get(&profile) else {
        return Err(ConfigError(format!(
            "aws_api.profile: no profile [{profile}] in {}",
            file.display()
        )));
    };
    let get = |k: &str| keys.get(k).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id.clone(),
            secret_access_key: Secret::new(secret.clone()),
            session_token: get("aws_session_token").map(|t| Secret::new(t.clone())),
        }),
        _ => Err(ConfigError(format!(
            "aws_api.profile: profile [{profile}] in {} lacks aws_access_key_id or aws_secret_access_key",
            file.display()
        ))),
    }
}

/// The sections of an INI file, keys in lower case; `Err(line)` names a line that is none of
/// the forms. A line's text is never echoed: it may be a secret.
fn parse_ini(text: &str) -> Result<HashMap<String, HashMap<String, String>>, usize> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // The config file's spelling, `[profile name]`, is accepted too.
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            current = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(n + 1);
        };
        if let Some(section) = &current {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_comes_first_and_debug_hides_the_secret() {
        let c = load_with(
            Some("other"),
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE123456"),
                ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
                ("AWS_SESSION_TOKEN", "token-value"),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKIAEXAMPLE123456");
        let shown = format!("{c:?} {}", c.describe());
        assert!(!shown.contains("very-secret-value") && !shown.contains("token-value"));
        let e = load_with(None, &env(&[("AWS_ACCESS_KEY_ID", "x")])).unwrap_err();
        assert!(e.0.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }

    /// A key pasted with a character no header carries is the configuration's fault, said
    /// at once, not a request that fails as if AWS had refused the report; and `check`
    /// shows a key of any characters without a panic.
    #[test]
    fn credentials_no_header_can_carry_are_refused_at_once() {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "€€€€€€€€€€"),
            ("AWS_SECRET_ACCESS_KEY", "secret\u{1b}x"),
            ("AWS_SESSION_TOKEN", "tok en"),
            ("AWS_SESSION_TOKEN", "token\u{201d}"),
        ] {
            let mut pairs = vec![
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE123456"),
                ("AWS_SECRET_ACCESS_KEY", "secretexample"),
            ];
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value));
            let got = load_with(None, &env(&pairs));
            let Err(ConfigError(why)) = got else {
                panic!("{name}={value:?} was taken");
            };
            assert!(!why.contains(value), "the value is not echoed: {why}");
        }
        let odd = Credentials {
            access_key_id: "€€€€€€€€€€".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
        };
        assert_eq!(odd.describe(), "access key €€€€…€€€€");
    }

    #[test]
    fn profile_of_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "# comment\n[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n\n[profile ops]\naws_access_key_id=A2\naws_secret_access_key=S2\naws_session_token = T2\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = load_with(None, &env(&[("AWS_SHARED_CREDENTIALS_FILE", f)])).unwrap();
        assert_eq!(c.access_key_id, "A1");
        let c = load_with(Some("ops"), &env(&[("AWS_SHARED_CREDENTIALS_FILE", f)])).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.unwrap().expose()),
            ("A2", "T2")
        );
        let e = load_with(Some("nope"), &env(&[("AWS_SHARED_CREDENTIALS_FILE", f)])).unwrap_err();
        assert!(e.0.contains("[nope]"), "{e}");
        std::fs::write(&file, "[default]\nS3CRET-LINE\n").unwrap();
        let e = load_with(None, &env(&[("AWS_SHARED_CREDENTIALS_FILE", f)])).unwrap_err();
        assert!(e.0.contains("line 2") && !e.0.contains("S3CRET"), "{e}");
        let e = load_with(None, &env(&[("HOME", dir.path().to_str().unwrap())])).unwrap_err();
        assert!(e.0.contains("no AWS credentials"), "{e}");
    }
}
