//! Send: hands a stored message to a transport and says whether it was accepted, may be tried
//! again later, or was refused for good.
//!
//! [`Transport`] is deliberately small (the ledger semantics live above it, in `app`): SMTP
//! through lettre (plain, STARTTLS or implicit TLS, AUTH, timeouts), the local `sendmail -t -i`,
//! or a folder of `.eml` files. Messages are sent as the exact stored bytes, so a retry sends
//! the same Message-ID.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use lettre::Transport as _;
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::config::{Security, SmtpConfig, TransportConfig};

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later with the same message (connection refused, timeout, 4xx).
    Transient(String),
    /// The server refused the message for good (5xx).
    Rejected(String),
    /// The server refused us, not the message (530/534/535/538: authentication): a
    /// configuration problem; the message is kept to be sent once it is fixed.
    Unauthorized(String),
}

/// Something that delivers a message.
pub trait Transport {
    /// Delivers `message` from `from` to `recipients`; returns the server's reply.
    fn send(
        &self,
        id: &str,
        from: &Mailbox,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError>;
}

/// The transport the configuration names.
pub fn transport(config: &TransportConfig) -> Result<Box<dyn Transport>> {
    Ok(match config {
        TransportConfig::Smtp(smtp) => Box::new(Smtp::new(smtp)?),
        TransportConfig::Sendmail { path } => Box::new(Sendmail { path: path.clone() }),
        TransportConfig::File { dir } => Box::new(FileDrop { dir: dir.clone() }),
    })
}

/// SMTP through lettre.
pub struct Smtp {
    inner: lettre::SmtpTransport,
}

impl Smtp {
    pub fn new(c: &SmtpConfig) -> Result<Self> {
        let tls = match c.security {
            Security::None => None,
            Security::StartTls | Security::Tls => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(ca) = &c.ca_file {
                    let pem =
                        fs::read(ca).with_context(|| format!("mail.ca_file {}", ca.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("mail.ca_file {}: {e}", ca.display()))?;
                    params = params.add_root_certificate(cert);
                }
                Some(params.build_rustls().context("TLS setup")?)
            }
        };
        let mut builder = lettre::SmtpTransport::builder_dangerous(c.host.as_str())
            .port(c.port)
            .timeout(Some(c.timeout));
        builder = match (c.security, tls) {
            (Security::StartTls, Some(p)) => builder.tls(Tls::Required(p)),
            (Security::Tls, Some(p)) => builder.tls(Tls::Wrapper(p)),
            _ => builder.tls(Tls::None),
        };
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        if let Some(helo) = &c.helo_name {
            builder = builder.hello_name(ClientId::Domain(helo.clone()));
        }
        Ok(Smtp {
            inner: builder.build(),
        })
    }

    /// Connects, says EHLO, does STARTTLS and AUTH as configured, and quits.
    pub fn probe(&self) -> Result<(), SendError> {
        match self.inner.test_connection() {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError::Transient(
                "the server did not answer NOOP".into(),
            )),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let text = error_text(e);
    let code = e.status().map(|c| c.to_string());
    if matches!(code.as_deref(), Some("530" | "534" | "535" | "538")) {
        SendError::Unauthorized(text)
    } else if e.is_permanent() {
        SendError::Rejected(text)
    } else {
        SendError::Transient(text)
    }
}

/// lettre's error with its causes, on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn envelope(from: &Mailbox, recipients: &[String]) -> Result<Envelope, SendError> {
    let to = recipients
        .iter()
        .map(|r| r.parse::<Address>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SendError::Rejected(format!("bad recipient: {e}")))?;
    Envelope::new(Some(from.email.clone()), to)
        .map_err(|e| SendError::Rejected(format!("bad envelope: {e}")))
}

impl Transport for Smtp {
    fn send(
        &self,
        _id: &str,
        from: &Mailbox,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError> {
        let envelope = envelope(from, recipients)?;
        match self.inner.send_raw(&envelope, message) {
            Ok(reply) => {
                let text = reply.message().collect::<Vec<_>>().join(" ");
                Ok(format!("{} {text}", reply.code()).trim().to_string())
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

/// The local MTA: `sendmail -t -i`, recipients from the message's own headers.
pub struct Sendmail {
    pub path: PathBuf,
}

impl Transport for Sendmail {
    fn send(
        &self,
        _id: &str,
        from: &Mailbox,
        _recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError> {
        let shown = self.path.display();
        let mut child = Command::new(&self.path)
            .args(["-t", "-i", "-f"])
            .arg(&from.email)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SendError::Transient(format!("cannot run {shown}: {e}")))?;
        // A local MTA reads Unix line ends.
        let unix = String::from_utf8_lossy(message).replace("\r\n", "\n");
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(unix.as_bytes()));
        let output = child
            .wait_with_output()
            .map_err(|e| SendError::Transient(format!("{shown}: {e}")))?;
        let said = String::from_utf8_lossy(&output.stderr)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        match output.status.code() {
            Some(0) if matches!(written, Some(Ok(()))) => {
                Ok(format!("{shown} accepted the message"))
            }
            // sysexits: data error, no such user, no such host: the message itself is refused.
            Some(code @ (65 | 67 | 68)) => Err(SendError::Rejected(format!(
                "{shown} exited {code}: {said}"
            ))),
            Some(code) => Err(SendError::Transient(format!(
                "{shown} exited {code}: {said}"
            ))),
            None => Err(SendError::Transient(format!(
                "{shown} was killed by a signal"
            ))),
        }
    }
}

/// A folder of `.eml` files, one per report, written atomically.
pub struct FileDrop {
    pub dir: PathBuf,
}

impl Transport for FileDrop {
    fn send(
        &self,
        id: &str,
        _from: &Mailbox,
        _recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError> {
        let path = self.dir.join(format!("{id}.eml"));
        write_atomically(&self.dir, &path, message)
            .map_err(|e| SendError::Transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(format!("written to {}", path.display()))
    }
}

/// Writes a file so that it is either absent or complete: temp file, fsync, rename, fsync dir.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("message");
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_drop_writes_the_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileDrop {
            dir: dir.path().join("out"),
        };
        let from: Mailbox = "a@example.org".parse().unwrap();
        let reply = t
            .send("r1", &from, &[], b"Subject: x\r\n\r\nbody\r\n")
            .unwrap();
        assert!(reply.contains("r1.eml"));
        assert_eq!(
            fs::read(dir.path().join("out/r1.eml")).unwrap(),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("out")).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn sendmail_exit_codes_map_to_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let from: Mailbox = "a@example.org".parse().unwrap();
        let script = |code: i32| {
            let path = dir.path().join(format!("sendmail{code}"));
            fs::write(
                &path,
                format!("#!/bin/sh\ncat > {}.out\nexit {code}\n", path.display()),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            Sendmail { path }
        };
        assert!(
            script(0)
                .send("r", &from, &[], b"A: b\r\n\r\nx\r\n")
                .is_ok()
        );
        let out = fs::read_to_string(dir.path().join("sendmail0.out")).unwrap();
        assert_eq!(out, "A: b\n\nx\n", "Unix line ends for the local MTA");
        assert!(matches!(
            script(75).send("r", &from, &[], b"x"),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            script(67).send("r", &from, &[], b"x"),
            Err(SendError::Rejected(_))
        ));
        let missing = Sendmail {
            path: dir.path().join("nope"),
        };
        assert!(matches!(
            missing.send("r", &from, &[], b"x"),
            Err(SendError::Transient(_))
        ));
    }
}
