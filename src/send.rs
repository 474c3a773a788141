//! Send: hands a stored message to a transport and says whether it was accepted, may be tried
//! again later, or was refused for good.
//!
//! [`Transport`] is deliberately small (the ledger semantics live above it, in `app`): SMTP
//! through lettre's connection (plain, STARTTLS or implicit TLS, AUTH), the local
//! `sendmail -t -i`, or a folder of `.eml` files. Messages are sent as the exact stored bytes,
//! so a retry sends the same Message-ID.
//!
//! Time is bounded twice, so that a run always ends: one message's whole dialogue has
//! [`Deadlines::message`], and a run's delivery as a whole has
//! [`Deadlines::run`]. lettre's own timeout bounds each read only, and a server that drips a
//! continuation line now and then would hold a run forever; the dialogue therefore runs on a
//! thread of its own that the caller stops waiting for at the deadline.
//!
//! Giving up is safe for the ledger: a message is reported accepted only on the server's
//! reply (a 2xx to the body). A dialogue given up before the body went out stops at its next
//! step and never sends the body; one given up while the body goes out writes no more of it,
//! and never the data's end, so that the server holds no message. The body, from its first
//! byte to its reply, has a wait of its own beyond the message's deadline,
//! [`body_reply_wait`] (ten minutes at the default, as RFC 5321 asks of a client: a slow link
//! carries a body whole, a relay's content filter may take minutes); a message starts only
//! while the run's deadline leaves room for that wait. A message given up once its body is
//! out may have been taken by the server, and goes out again, with the same Message-ID, on
//! the next run. A sendmail has the message's deadline and that wait together.

use std::cell::Cell;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Severity;

use crate::config::{Security, SmtpConfig, TransportConfig};
use crate::excerpt::clean_line;
use crate::parallel::lock;

/// One message's whole dialogue may last this many `mail.timeout_secs`: a healthy dialogue is
/// a handful of quick exchanges, and the reply to the body (the slow one) gets one allowance.
pub const TIMEOUTS_PER_MESSAGE: u32 = 4;
/// A run's delivery may last this many messages' deadlines; what is left waits for the next.
pub const MESSAGES_PER_RUN: u32 = 10;
/// The server's reply to a body that went out is waited for this many `mail.timeout_secs`
/// (RFC 5321 §4.5.3.2.6: ten minutes), up to [`BODY_REPLY_AT_MOST`]: given up, the message
/// would go out again, and the desk may get it twice.
pub const BODY_REPLY_TIMEOUTS: u32 = 20;
/// The longest wait for a reply to a body, unless `mail.timeout_secs` itself is longer.
pub const BODY_REPLY_AT_MOST: Duration = Duration::from_secs(600);

/// How long the reply to a body that went out is waited for, at `timeout` a read.
pub fn body_reply_wait(timeout: Duration) -> Duration {
    (timeout.saturating_mul(BODY_REPLY_TIMEOUTS))
        .min(BODY_REPLY_AT_MOST)
        .max(timeout)
}

/// How long a reply already in the socket is given to be read, once the wait for the reply
/// to a body that went out is over.
const UNREAD_REPLY_WAIT: Duration = Duration::from_millis(500);

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later with the same message (connection refused, timeout, a dropped
    /// connection, a deadline passed).
    Transient(String),
    /// The server answered, and said later (a 4xx reply): the way out works, this message or
    /// its recipient is what waits.
    Deferred(String),
    /// The server refused the message for good (5xx to the envelope or the body).
    Rejected(String),
    /// The server refused one recipient for good (5xx to its RCPT): a refusal of the message
    /// when the recipient is the desk's, the operator's own to fix when it is one of theirs
    /// (`report.cc`). The text names the recipient.
    RecipientRefused { recipient: String, text: String },
    /// The body went out, and no reply to it could be read: none came in time, the
    /// connection broke, or the reply was not one this client reads (bytes that are not
    /// UTF-8, a line too long). The server may have taken the message.
    Unconfirmed(String),
    /// A failure that may pass or may not: a sendmail's exit status that is no sysexits one
    /// (ssmtp's 1, for a mail hub it cannot reach or one misnamed), or one that says "later"
    /// (sysexits' 69–76, qmail's 111), which a local MTA says of refusals that never pass too.
    /// Tried again as a transient failure while the report is young, then taken for a setting
    /// to fix (see [`UNCLEAR_FOR`]).
    Unclear(String),
    /// The transport's settings are wrong and waiting will not heal them: a refused login
    /// (530/534/535/538), STARTTLS not offered, a failed TLS handshake, sendmail missing. The
    /// text names the key to fix; the message is kept to be sent once it is fixed.
    Config(String),
}

/// How long a report is tried again after an [`SendError::Unclear`] failure before the
/// failure is taken for a setting to fix (exit 78): a mail hub down for a day is looked at.
pub const UNCLEAR_FOR: chrono::Duration = chrono::Duration::days(1);

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

    /// Whether a message may start now within the run's time for delivery; why not if not.
    fn room(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether the last [`Transport::send`] may have handed the message's body to a server
    /// or a program (`false` only when it surely did not: the dialogue ended before its
    /// body began to go out). A report no attempt handed may be made anew.
    fn handed(&self) -> bool {
        true
    }
}

/// The transport the configuration names.
pub fn transport(config: &TransportConfig) -> Result<Box<dyn Transport>> {
    Ok(match config {
        TransportConfig::Smtp(smtp) => Box::new(Smtp::new(smtp)?),
        TransportConfig::Sendmail { path, timeout } => Box::new(Sendmail::new(path, *timeout)?),
        TransportConfig::File { dir } => {
            crate::folder::placeable(dir).map_err(|e| anyhow::anyhow!("mail.dir {e}"))?;
            Box::new(FileDrop { dir: dir.clone() })
        }
    })
}

/// The time a run's deliveries may take: each message, and all of them together.
#[derive(Debug)]
pub struct Deadlines {
    /// For one message, from connecting to the reply to its body.
    pub message: Duration,
    /// For the run's delivery, from the start of its first message.
    pub run: Duration,
    /// For the reply to a body that went out, beyond `message`: a message after the first
    /// starts only while the run leaves room for both.
    body_reply: Duration,
    first: Cell<Option<Instant>>,
}

impl Deadlines {
    /// The deadlines that follow from `mail.timeout_secs`.
    pub fn new(timeout: Duration) -> Self {
        let message = timeout.saturating_mul(TIMEOUTS_PER_MESSAGE);
        Deadlines {
            body_reply: body_reply_wait(timeout),
            ..Self::with(message, message.saturating_mul(MESSAGES_PER_RUN))
        }
    }

    fn with(message: Duration, run: Duration) -> Self {
        Deadlines {
            message,
            run,
            body_reply: Duration::ZERO,
            first: Cell::new(None),
        }
    }

    /// When the next message must be done by: its own deadline, or the run's if that is sooner.
    fn next(&self) -> Result<Instant, SendError> {
        let now = Instant::now();
        let run_end = self.room_at(now).map_err(SendError::Transient)?;
        self.first.set(Some(self.first.get().unwrap_or(now)));
        Ok(now
            .checked_add(self.message)
            .unwrap_or(run_end)
            .min(run_end))
    }

    /// Whether the run's deadline leaves room for a message started now; why not if it does
    /// not. Nothing is counted. Asked a moment before the message starts (its ledger row is
    /// written between), it leaves [`ROOM_MARGIN`] more, so that the start then finds the
    /// room too: a message refused then is counted as tried.
    pub fn room(&self) -> Result<(), String> {
        self.room_at(Instant::now() + ROOM_MARGIN).map(|_| ())
    }

    /// [`Deadlines::room`] at `now`: when the run's delivery must end.
    fn room_at(&self, now: Instant) -> Result<Instant, String> {
        let first = self.first.get().unwrap_or(now);
        let later = self.first.get().is_some();
        let run_end = first.checked_add(self.run).unwrap_or(now + self.message);
        // A message that may wait for its body's reply ends within the run's deadline.
        let whole = self.message.saturating_add(self.body_reply);
        if now >= run_end || (later && now.checked_add(whole).is_none_or(|end| end > run_end)) {
            return Err(format!(
                "this run's time for delivery ({} s: {} × mail.timeout_secs) has no room for another message and the wait for its reply; the rest goes out on the next run",
                self.run.as_secs(),
                TIMEOUTS_PER_MESSAGE * MESSAGES_PER_RUN
            ));
        }
        Ok(run_end)
    }
}

/// How much sooner [`Deadlines::room`] says no than a message's start would.
const ROOM_MARGIN: Duration = Duration::from_secs(5);

/// SMTP: each message in a dialogue of its own, on a connection of its own.
pub struct Smtp {
    session: Arc<Session>,
    deadlines: Deadlines,
    /// Whether the last dialogue's body began to go out (see [`Transport::handed`]).
    handed: AtomicBool,
}

/// What one SMTP dialogue needs; shared with the thread that holds the connection.
struct Session {
    host: String,
    port: u16,
    security: Security,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// For each read and write.
    timeout: Duration,
}

/// What a dialogue is for.
enum Job {
    /// Connect, EHLO, STARTTLS and AUTH as configured, NOOP.
    Probe,
    Send {
        envelope: Envelope,
        message: Vec<u8>,
    },
}

/// Where in the dialogue an error came: a 5xx before MAIL refuses us, not the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Session,
    Message,
}

/// The first address in other letters than ASCII that a message carries, with the setting
/// it comes from, so that the operator knows what to change.
fn wide_address_named(envelope: &lettre::address::Envelope, head: &[u8]) -> String {
    let wide = |a: &&Address| !AsRef::<str>::as_ref(*a).is_ascii();
    if let Some(from) = envelope.from().filter(wide) {
        return format!("{from} (report.from)");
    }
    // A header line, as written: its field names the setting.
    let header = String::from_utf8_lossy(head);
    for (field, key) in [
        ("From:", "report.from"),
        ("Reply-To:", "report.reply_to"),
        ("Cc:", "report.cc"),
        ("To:", "the provider's to"),
    ] {
        // Compared as bytes: a line may begin with a letter of several bytes.
        let named = |l: &&str| {
            (l.as_bytes().get(..field.len()))
                .is_some_and(|b| b.eq_ignore_ascii_case(field.as_bytes()))
        };
        if let Some(line) = (header.split("\r\n")).find(named).filter(|l| !l.is_ascii()) {
            return format!("{} ({key})", line[field.len()..].trim());
        }
    }
    match envelope.to().iter().find(wide) {
        Some(to) => format!("{to} (the provider's to, or report.cc)"),
        None => "an address in the message's header".to_string(),
    }
}

impl Smtp {
    pub fn new(c: &SmtpConfig) -> Result<Self> {
        let tls = match c.security {
            Security::None => None,
            Security::StartTls | Security::Tls => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(ca) = &c.ca_file {
                    let pem = crate::source::read_regular(ca, 16 << 20)
                        .with_context(|| format!("mail.ca_file {}", ca.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("mail.ca_file {}: {e}", ca.display()))?;
                    params = params.add_root_certificate(cert);
                }
                Some(params.build_rustls().context("TLS setup")?)
            }
        };
        let credentials = match (&c.username, &c.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            )),
            _ => None,
        };
        Ok(Smtp {
            session: Arc::new(Session {
                host: c.host.clone(),
                port: c.port,
                security: c.security,
                tls,
                credentials,
                hello: c
                    .helo_name
                    .as_deref()
                    .map_or_else(ClientId::default, client_id),
                timeout: c.timeout,
            }),
            deadlines: Deadlines::new(c.timeout),
            handed: AtomicBool::new(true),
        })
    }

    /// Connects, says EHLO, does STARTTLS and AUTH as configured, and quits.
    pub fn probe(&self) -> Result<(), SendError> {
        self.within(Job::Probe).map(|_| ())
    }

    /// Runs a dialogue on its own thread and waits for it until the deadline, no longer;
    /// notes whether its body began to go out.
    fn within(&self, job: Job) -> Result<String, SendError> {
        let body = Arc::new(Mutex::new(Body::NotYet));
        let result = self.within_as(job, &body);
        let begun = !matches!(*lock(&body), Body::NotYet);
        self.handed.store(begun, Ordering::SeqCst);
        result
    }

    /// [`Smtp::within`], the body's progress kept in `body`.
    fn within_as(&self, job: Job, body: &Arc<Mutex<Body>>) -> Result<String, SendError> {
        let deadline = self.deadlines.next()?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let clock = Clock {
            deadline,
            per_read: self.session.timeout,
            body_wait: self.body_wait(),
            abandoned: abandoned.clone(),
            body: body.clone(),
        };
        let session = self.session.clone();
        let (done, answer) = mpsc::channel();
        std::thread::Builder::new()
            .name("smtp".into())
            .spawn(move || session.dialogue(&clock, &job, &done))
            .map_err(|e| SendError::Transient(format!("cannot start the SMTP dialogue: {e}")))?;
        let mut until = deadline;
        loop {
            match answer.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // The body going out, and its reply once it went out, have a wait of
                    // their own: a body a slow link carries steadily is not given up at the
                    // dialogue's deadline.
                    let body = lock(body);
                    if let Body::Writing { until: due } | Body::Written { reply_due: due } = *body
                        && Instant::now() < due
                    {
                        until = due;
                        continue;
                    }
                    // The dialogue stops at its next step (a body not yet sent is never sent,
                    // and one going out is not ended: the flag is set under the lock those
                    // steps take); its thread ends with the process at the latest. A reply
                    // that came in meanwhile still counts.
                    abandoned.store(true, Ordering::SeqCst);
                    let at = *body;
                    let body_sent = matches!(at, Body::Written { .. });
                    drop(body);
                    // A reply to a body that went out may be waiting unread: a process held
                    // still past the wait (a suspended machine, a frozen cgroup) finds it in
                    // the socket when it goes on, before the dialogue's thread has read it.
                    // Given up at once, a body the server had answered 250 went again.
                    let unread = match body_sent {
                        true => UNREAD_REPLY_WAIT,
                        false => Duration::ZERO,
                    };
                    return answer.recv_timeout(unread).unwrap_or_else(|_| {
                        let why = self.given_up(at);
                        Err(match body_sent {
                            true => SendError::Unconfirmed(why),
                            false => SendError::Transient(why),
                        })
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(SendError::Transient(
                        "the SMTP dialogue ended without an answer".into(),
                    ));
                }
            }
        }
    }

    /// How long a body may take, from its first byte to its reply: never less than a read.
    fn body_wait(&self) -> Duration {
        self.deadlines.body_reply.max(self.session.timeout)
    }

    /// Why a dialogue was given up: before its body went out, or waiting for the reply to it.
    fn given_up(&self, at: Body) -> String {
        let (host, port) = (&self.session.host, self.session.port);
        let body_wait = self.body_wait().as_secs();
        match at {
            Body::Written { .. } => format!(
                "{host}:{port} took the message body but did not answer it within {body_wait} s of its start; given up: the server may have it"
            ),
            Body::Writing { .. } => format!(
                "{host}:{port} did not take the whole message body within {body_wait} s; given up, and the end of the data not sent: the server holds no message"
            ),
            Body::NotYet => format!(
                "{host}:{port} did not finish the dialogue within {} s ({TIMEOUTS_PER_MESSAGE} × mail.timeout_secs); given up",
                self.deadlines.message.as_secs()
            ),
        }
    }
}

/// The EHLO name: an address literal for an IP (validated as a host name or IP by `config`).
fn client_id(name: &str) -> ClientId {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let bare = bare.strip_prefix("IPv6:").unwrap_or(bare);
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
        Ok(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
        Err(_) => ClientId::Domain(name.to_string()),
    }
}

/// A dialogue thread's view of its deadline, and of whether its caller stopped waiting.
struct Clock {
    deadline: Instant,
    per_read: Duration,
    /// How long the reply to a body that went out is waited for.
    body_wait: Duration,
    abandoned: Arc<AtomicBool>,
    /// Where the body is, and when the dialogue's wait for it ends. Set, and read by the
    /// caller before it gives up, under the lock.
    body: Arc<Mutex<Body>>,
}

/// Where a dialogue's body is.
#[derive(Debug, Clone, Copy)]
enum Body {
    NotYet,
    /// Going out, at the pace the server reads it, until at the latest.
    Writing {
        until: Instant,
    },
    /// All of it went out: its reply is due by then.
    Written {
        reply_due: Instant,
    },
}

impl Clock {
    /// How long the next step may wait for one read, or why it must not start.
    fn next_wait(&self) -> Result<Duration, SendError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.abandoned.load(Ordering::SeqCst) {
            return Err(SendError::Transient(
                "the dialogue's deadline passed".into(),
            ));
        }
        Ok(left.min(self.per_read))
    }

    /// Before each step: stop if given up, else bound the step's reads by what is left.
    fn step(&self, conn: &mut SmtpConnection) -> Result<(), SendError> {
        let wait = self.next_wait()?;
        conn.set_timeout(Some(wait))
            .map_err(|e| SendError::Transient(format!("setting the SMTP timeout: {e}")))
    }

    /// Before the body: stop if given up, else each of the body's writes, and the read of
    /// the reply to it, may take as long as the reply is waited for, and so may the body
    /// as a whole.
    fn body_step(&self, conn: &mut SmtpConnection) -> Result<(), SendError> {
        self.next_wait()?;
        conn.set_timeout(Some(self.body_wait))
            .map_err(|e| SendError::Transient(format!("setting the SMTP timeout: {e}")))?;
        let mut body = lock(&self.body);
        if self.abandoned.load(Ordering::SeqCst) {
            return Err(SendError::Transient(
                "the dialogue's deadline passed".into(),
            ));
        }
        *body = Body::Writing {
            until: Instant::now() + self.body_wait,
        };
        Ok(())
    }

    /// The whole body went out: its reply is waited for from now, by the caller too. `false`
    /// if the caller has given up already: then the data's end must not go out.
    fn body_written(&self) -> bool {
        let mut body = lock(&self.body);
        if self.abandoned.load(Ordering::SeqCst) {
            return false;
        }
        // One wait for the body, from its first byte to its reply: a message's time is its
        // dialogue's and that one wait, as the run's room for it counts (the body written,
        // then a wait of its own for the reply, made a run last half as long again).
        let reply_due = match *body {
            Body::Writing { until } => until,
            _ => Instant::now() + self.body_wait,
        };
        *body = Body::Written { reply_due };
        true
    }

    /// Whether the caller has stopped waiting for this dialogue.
    fn given_up(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

/// How much of a body is written at a time: between pieces, a dialogue given up stops.
const BODY_PIECE: usize = 64 << 10;

/// A dialogue given up while its body was going out waits here until the process ends, its
/// connection open and the data's end never written: a server holds no message whose data
/// never ended (RFC 5321 §4.1.1.4), and whatever it read of this one it throws away when the
/// connection goes. Returning would have the client write the data's end after the rest:
/// a message delivered while the ledger says it failed, and sent again by the next run.
fn wait_for_the_end() -> ! {
    loop {
        std::thread::park();
    }
}

impl Session {
    /// The whole dialogue; the answer goes to `done` as soon as it is known, before QUIT.
    fn dialogue(&self, clock: &Clock, job: &Job, done: &mpsc::Sender<Result<String, SendError>>) {
        let mut conn = match self.connect(clock) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        let result = self.converse(clock, &mut conn, job);
        let _ = done.send(result);
        conn.abort();
    }

    fn connect(&self, clock: &Clock) -> Result<SmtpConnection, SendError> {
        let wait = clock.next_wait()?;
        let wrapper = match self.security {
            Security::Tls => self.tls.as_ref(),
            _ => None,
        };
        SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(wait),
            &self.hello,
            wrapper,
            None,
        )
        .map_err(|e| self.classify(&e, Stage::Session))
    }

    fn converse(
        &self,
        clock: &Clock,
        conn: &mut SmtpConnection,
        job: &Job,
    ) -> Result<String, SendError> {
        let session = |e: lettre::transport::smtp::Error| self.classify(&e, Stage::Session);
        if let (Security::StartTls, Some(tls)) = (self.security, &self.tls) {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                return Err(SendError::Config(format!(
                    "mail.security = \"starttls\", but {}:{} does not offer STARTTLS (use the server's submission port, or security = \"tls\" for an implicit-TLS port)",
                    self.host, self.port
                )));
            }
            clock.step(conn)?;
            conn.starttls(tls, &self.hello).map_err(session)?;
        }
        if let Some(credentials) = &self.credentials {
            if conn
                .server_info()
                .get_auth_mechanism(DEFAULT_MECHANISMS)
                .is_none()
            {
                return Err(SendError::Config(format!(
                    "mail.username is set, but {}:{} offers no AUTH PLAIN or LOGIN here{}",
                    self.host,
                    self.port,
                    if conn.is_encrypted() {
                        ""
                    } else {
                        " (many servers offer AUTH only after STARTTLS: see mail.security)"
                    }
                )));
            }
            clock.step(conn)?;
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .map_err(session)?;
        }
        let (envelope, message) = match job {
            Job::Probe => {
                clock.step(conn)?;
                return conn
                    .command(lettre::transport::smtp::commands::Noop)
                    .map(|r| reply_text(&r))
                    .map_err(session);
            }
            Job::Send { envelope, message } => (envelope, message),
        };
        let refused = |e: lettre::transport::smtp::Error| self.classify(&e, Stage::Message);
        let mut options = Vec::new();
        // An address in other letters in the envelope, or in a header (a `reply_to`: names
        // are encoded, addresses go as they are), needs SMTPUTF8.
        let head =
            memchr::memmem::find(message, b"\r\n\r\n").map_or(&message[..], |end| &message[..end]);
        let wide_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii())
            || !head.is_ascii();
        if wide_addresses {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(SendError::Config(format!(
                    "{}:{} does not take non-ASCII addresses (no SMTPUTF8): {}",
                    self.host,
                    self.port,
                    wide_address_named(envelope, head)
                )));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(SendError::Config(format!(
                    "{}:{} does not take 8-bit messages (no 8BITMIME)",
                    self.host, self.port
                )));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        clock.step(conn)?;
        // A sender refused for good is refused whoever the message is for: the relay's
        // rule or `report.from` is what to fix, and no desk refused anything.
        conn.command(Mail::new(envelope.from().cloned(), options))
            .map_err(|e| match refused(e) {
                SendError::Rejected(text) => SendError::Config(format!(
                    "the mail server refused the sender {} (report.from): {text}",
                    envelope.from().map_or(String::new(), |a| a.to_string())
                )),
                // "Later" to the sender is the relay's, whoever the message is for: the way
                // out waits, not one desk.
                SendError::Deferred(text) => SendError::Transient(text),
                other => other,
            })?;
        for to in envelope.to() {
            clock.step(conn)?;
            // Of several recipients, the operator must know which one to fix.
            conn.command(Rcpt::new(to.clone(), Vec::new()))
                .map_err(|e| match refused(e) {
                    // The relay's verdict on the sender, this host or its HELO name, given at
                    // RCPT (Postfix's `smtpd_delay_reject`, on by default; Exim's ACLs): a
                    // setting of the operator's, or the relay's "later", for every desk.
                    SendError::Rejected(text) if let Some(what) = ours_refused(&text) => {
                        SendError::Config(format!(
                            "the mail server refused {what}, answering for recipient {to}: {text}"
                        ))
                    }
                    SendError::Deferred(text) if ours_refused(&text).is_some() => {
                        SendError::Transient(format!("recipient {to}: {text}"))
                    }
                    // "Relay access denied", "Unable to relay", "relay not permitted": the
                    // relay will not pass mail on for us (no login, or a sender it does not
                    // know), whichever desk it is for.
                    SendError::Rejected(text) if refuses_to_relay(&text) => {
                        SendError::Config(format!(
                            "the mail server will not relay to {to} (check mail.username and mail.security: most relays pass mail on only for a sender that logged in): {text}"
                        ))
                    }
                    SendError::Rejected(text) => SendError::RecipientRefused {
                        recipient: to.to_string(),
                        text: format!("recipient {to}: {text}"),
                    },
                    SendError::Deferred(text) => {
                        SendError::Deferred(format!("recipient {to}: {text}"))
                    }
                    // The relay's own trouble (4.3.x) said of a recipient: the run's mail
                    // waits, and the line says where it was met.
                    SendError::Transient(text) => {
                        SendError::Transient(format!("recipient {to}: {text}"))
                    }
                    other => other,
                })?;
        }
        clock.step(conn)?;
        let asked = Instant::now();
        let go_ahead = conn.command(Data).map_err(refused)?;
        let round_trip = asked.elapsed();
        // Only 354 asks for the body: a server that says anything else (a 250) is out of
        // step with the dialogue, and its next reply would be taken for the body's.
        if go_ahead.code().to_string() != "354" {
            return Err(SendError::Transient(format!(
                "{}:{} answered DATA with {}, not 354: the body was not sent",
                self.host,
                self.port,
                reply_text(&go_ahead)
            )));
        }
        // The last point at which giving up leaves the server without the message.
        clock.body_step(conn)?;
        // A reply with a code is an answer. Without one, the body's fate is unknown once all
        // of it went out: the reply never came, could not be read, or the connection was
        // closed first (a server that queued the message and fell over, a balancer in front
        // of a slow filter that gives up on the connection every time): it goes out at most
        // twice, as a resend every run would give a desk a copy an hour for ever. A body cut
        // short while it was being written is not a message the server can hold, and nor is
        // one the server reset the connection on: a server that goes away with input unread
        // resets it, while one that read the body to its end closes it.
        let written = Cell::new(false);
        // The client ends the data with CRLF `.` CRLF: the message's own last line end is
        // the first CRLF of it, so that the desk gets the stored bytes, not an empty line
        // more than `show` prints.
        let text = message.strip_suffix(b"\r\n").unwrap_or(message);
        let mut pieces = text.chunks(BODY_PIECE);
        let body = std::iter::from_fn(|| {
            // Given up while the body goes out (a relay that drains it slowly): the rest of
            // it never goes, nor the data's end.
            if clock.given_up() {
                wait_for_the_end();
            }
            match pieces.next() {
                Some(piece) => Some(piece),
                None if clock.body_written() => {
                    written.set(true);
                    None
                }
                None => wait_for_the_end(),
            }
        });
        let e = match conn.message_iter(body) {
            // Only a 2xx takes the message: a 354 again (a server a reply out of step, whose
            // answer to the body is still to come) or another code says nothing of it.
            Ok(reply) if reply.code().severity == Severity::PositiveCompletion => {
                return Ok(reply_text(&reply));
            }
            Ok(reply) => {
                return Err(SendError::Unconfirmed(format!(
                    "{}:{} answered the message body with {}, which neither takes nor refuses it",
                    self.host,
                    self.port,
                    reply_text(&reply)
                )));
            }
            Err(e) => e,
        };
        let closed = e.is_response() && e.to_string().contains("incomplete response");
        // A reply that is no SMTP reply (`Thank you`, a code of 999, lines with two codes) is
        // no answer either: the server may have the message.
        let unreadable = e.is_response() && e.status().is_none() && !closed;
        // Over TLS, a close without TLS's close_notify (the usual way a server that fell over
        // goes) is an unexpected end of file.
        let ended = closed || io_kind(&e) == Some(std::io::ErrorKind::UnexpectedEof);
        let no_reply = ended
            || unreadable
            || matches!(
                io_kind(&e),
                Some(
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::InvalidData
                )
            );
        Err(match (e.status(), refused(e)) {
            // A server that closed the connection when it had read the body so far, before
            // the end of the data came, resets it when the end comes: it never had the
            // whole message. Its close is read first all the same.
            (None, SendError::Transient(text) | SendError::Config(text))
                if written.get() && ended && reset_after_close(conn, round_trip) =>
            {
                SendError::Transient(format!(
                    "the server closed the connection before the end of the message body came, and reset it then: it does not have the message ({text})"
                ))
            }
            (None, SendError::Transient(text) | SendError::Config(text))
                if written.get() && no_reply =>
            {
                SendError::Unconfirmed(match (closed, unreadable) {
                    (true, _) => format!(
                        "the server closed the connection after the message body without answering it ({text})"
                    ),
                    // The text names the server already.
                    (_, true) => format!(
                        "the message body was answered with a reply this client cannot read ({text}; a reply code with no text after it, `250` alone, is one)"
                    ),
                    _ => text,
                })
            }
            // A size limit: the relay's own, most often (it takes what it passes on, and a
            // desk's refusal comes back later as a bounce), which only a smaller report meets.
            (_, SendError::Rejected(text)) if size_refused(&text) => SendError::Rejected(format!(
                "{text} (the message is {} bytes: if the limit is your mail server's own, lower report.max_message_bytes below it)",
                message.len()
            )),
            (_, other) => other,
        })
    }

    /// What an error from lettre means for the report, and for the operator.
    fn classify(&self, e: &lettre::transport::smtp::Error, stage: Stage) -> SendError {
        let mut text = error_text(e);
        let (host, port) = (&self.host, self.port);
        match io_kind(e) {
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                text = format!(
                    "{host}:{port} did not answer within mail.timeout_secs ({} s): {text}",
                    self.timeout.as_secs()
                );
            }
            // A reply in bytes that are not UTF-8 (a Latin-1 greeting, say), which this
            // client cannot read: waiting does not change it. (Once the body is out, the
            // caller takes it as no reply: the server may have the message.)
            Some(std::io::ErrorKind::InvalidData) if !tls_failure(e) => {
                return SendError::Config(format!(
                    "{host}:{port} answered in bytes that are not UTF-8 text, which this client cannot read ({text}); a relay that answers in ASCII or UTF-8 is needed"
                ));
            }
            // A reply this client cannot read, before the body went (after it, the caller
            // takes it as no reply): a server that answers so answers so every time.
            _ if e.is_response()
                && e.status().is_none()
                && !text.contains("incomplete response") =>
            {
                return SendError::Config(format!(
                    "{host}:{port} answered with a reply this client cannot read ({text}): a reply code with no text after it (a bare `220`, which RFC 5321 allows), or text that is no SMTP reply; a relay that answers with a code and text is needed"
                ));
            }
            // The resolver's word that there is no such name (not "try again": that is
            // EAI_AGAIN's, a resolver not reachable yet): a `mail.host` misspelt, which no
            // waiting mends.
            _ if e.status().is_none() && NO_SUCH_HOST.iter().any(|said| text.contains(said)) => {
                return SendError::Config(format!("mail.host {host}: no such host ({text})"));
            }
            // An error that is no reply of the server's names the server it came from.
            _ if e.is_response() && text.contains("incomplete response") => {
                text = format!("{host}:{port} closed the connection without an answer ({text})");
            }
            _ if e.status().is_none() && !text.contains(&format!("{host}:{port}")) => {
                text = format!("{host}:{port}: {text}");
            }
            _ => {}
        }
        if self.security != Security::None && (e.is_tls() || tls_failure(e)) {
            let security = match self.security {
                Security::Tls => "tls",
                _ => "starttls",
            };
            return SendError::Config(format!(
                "mail.security = \"{security}\": TLS with {host}:{port} failed: {text} ({})",
                tls_advice(&text)
            ));
        }
        let code = e.status().map(|c| c.to_string());
        // RFC 3207's "530 Must issue a STARTTLS command first": no login was refused.
        let lower = text.to_ascii_lowercase();
        let tls_first = code.as_deref() == Some("530")
            && self.security == Security::None
            && lower.contains("starttls");
        // RFC 5321's 452 for a recipient past the relay's limit ("4.5.3 too many
        // recipients"): the same at every try, for every report to so many addresses.
        let too_many = code.as_deref() == Some("452")
            && (lower.contains("4.5.3") || lower.contains("too many recipients"));
        if too_many {
            SendError::Config(format!(
                "{host}:{port} takes fewer recipients a message than this report has (the provider's to and report.cc): raise the relay's limit (Postfix's smtpd_recipient_limit) or name fewer addresses: {text}"
            ))
        } else if tls_first {
            SendError::Config(format!(
                "{host}:{port} takes mail only over TLS (mail.security = \"none\"): set mail.security = \"starttls\" (with mail.ca_file if its certificate is your own CA's): {text}"
            ))
        } else if code.as_deref() == Some("530") && self.credentials.is_none() {
            SendError::Config(format!(
                "{host}:{port} takes mail only after a login, and none is set (mail.username, mail.password_file): {text}"
            ))
        } else if matches!(code.as_deref(), Some("530" | "534" | "535" | "538")) {
            SendError::Config(format!(
                "the mail server refused the login (mail.username / password): {text}"
            ))
        } else if e.is_permanent() && stage == Stage::Session {
            SendError::Config(format!(
                "{host}:{port} refused the session (check mail.host, mail.helo_name): {text}"
            ))
        } else if e.is_permanent() {
            SendError::Rejected(text)
        } else if e.is_transient() && (stage == Stage::Session || mail_system_status(e)) {
            // A 4xx to the greeting, EHLO or AUTH is the relay's "later", for every desk; so
            // is one whose enhanced code says the mail system itself is in trouble (RFC
            // 3463's 4.3.x: Postfix's "452 4.3.1 Insufficient system storage", "451 4.3.0
            // queue file write error"), whatever stage it came at.
            SendError::Transient(text)
        } else if e.is_transient() {
            SendError::Deferred(text)
        } else {
            SendError::Transient(text)
        }
    }
}

/// Whether a server's reply begins with an enhanced status code of class 4.3 ("mail system
/// status", RFC 3463): the server's own storage or software, not anything about the recipient.
/// (A relay that passes on a recipient's server's word gives it a code of its own, such as
/// Postfix's 4.1.1 for an address it could not verify.)
fn mail_system_status(e: &lettre::transport::smtp::Error) -> bool {
    let Some(text) = std::error::Error::source(e).map(ToString::to_string) else {
        return false;
    };
    let code = text.split_whitespace().next().unwrap_or_default();
    code.strip_prefix("4.3.")
        .is_some_and(|n| (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What the system's resolver says of a name that does not exist: glibc's EAI_NONAME and
/// EAI_NODATA, musl's.
const NO_SUCH_HOST: [&str; 3] = [
    "Name or service not known",
    "No address associated with hostname",
    "Name does not resolve",
];

/// What to do about a failed TLS handshake, in words, for the verdicts rustls names in its
/// own (`UnknownIssuer`, `CaUsedAsEndEntity`) that an operator cannot be expected to read.
fn tls_advice(text: &str) -> &'static str {
    // rustls's words as its errors print them, and the names they are printed under in
    // debug form (`invalid peer certificate: UnknownIssuer`).
    const SAID: &[(&[&str], &str)] = &[
        (
            &["unknownissuer"],
            "the server's certificate is signed by a CA this host does not trust: give that CA's certificate as mail.ca_file",
        ),
        (
            &["causedasendentity"],
            "the server shows a CA's own certificate (CA:TRUE, which `openssl req -x509` makes by default): it needs a certificate that a CA signed, and that CA as mail.ca_file",
        ),
        (
            &["not valid for name", "notvalidforname"],
            "the server's certificate is not for mail.host: set mail.host to a name on it",
        ),
        (
            &["certificate expired", "expired"],
            "the server's certificate has expired, or this host's clock is wrong",
        ),
        (
            &["not valid yet", "notvalidyet"],
            "the server's certificate is not valid yet, or this host's clock is wrong",
        ),
    ];
    let lower = text.to_ascii_lowercase();
    SAID.iter()
        .find(|(said, _)| said.iter().any(|s| lower.contains(s)))
        .map_or(
            "check mail.port, mail.ca_file, and that mail.host is the name on the server's certificate",
            |(_, advice)| *advice,
        )
}

/// Whether a refusal, over SMTP or as a sendmail says it, is of the message's size: a
/// relay's (see [`size_refused`]), or Postfix's own words when `postdrop` stops at
/// `message_size_limit` (`message file too big`).
pub(crate) fn refused_for_size(said: &str) -> bool {
    let lower = said.to_ascii_lowercase();
    size_refused(said) || lower.contains("message file too big")
}

/// Whether a refusal of a message's body is one of its size: RFC 3463's X.3.4 (too big for
/// the system) or X.2.3 (past a limit), or a 552 that says so in words.
fn size_refused(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    words.iter().any(|w| matches!(*w, "5.3.4" | "5.2.3"))
        || (lower.contains("552")
            && lower.contains("size")
            && ["exceed", "too big", "too large", "limit"]
                .iter()
                .any(|said| lower.contains(said)))
}

/// What a refusal of the sender is said as, by either way [`sendmail_refusal`] finds one
/// (see [`Transport::handed`]).
const SENDER_REFUSED: &str = "the mail server refused the sender (report.from)";

/// A relay's own words in a reply (lowercased): what comes before the words it passes on of
/// another server's (Postfix's `host … said: …`, `(in reply to …)`, `remote host`, Exim's
/// `Callout verification failed:` and the recipient's server's reply after it).
fn own_part(lower: &str) -> &str {
    const PASSED_ON: &[&str] = &[
        " said:",
        "in reply to",
        "remote host",
        "callout verification failed",
    ];
    PASSED_ON
        .iter()
        .filter_map(|passed| lower.find(passed))
        .min()
        .map_or(lower, |end| &lower[..end])
}

/// What of the operator's own a reply to a recipient refuses, when it is not the recipient:
/// Postfix, whose `smtpd_delay_reject` (on by default) holds its verdict on the client, its
/// HELO name and the sender until RCPT, names them (`<abuse@example.org>: Sender address
/// rejected`, `<unknown[192.0.2.1]>: Client host rejected`, `Helo command rejected`), Exim's
/// ACLs say `Sender verify failed` (their verdict on the sender, whatever its callout was
/// told), and RFC 3463's X.1.7 and X.1.8 are the sender's address. Taken for the desk's, a
/// refusal shut a discovered desk out and a "later" gave it up. Only the relay's own words
/// count: what it passes on of another server's (Postfix's `host … said: …`, Exim's
/// `Callout verification failed:` of a recipient) is the desk's, unless the relay's own part
/// says it refuses the sender (Postfix's `reject_unverified_sender`: `Sender address
/// rejected: unverified address: host … said: …`).
fn ours_refused(text: &str) -> Option<&'static str> {
    const SAID: &[(&str, &str)] = &[
        ("sender address rejected", "the sender (report.from)"),
        ("client host rejected", "this host as its client"),
        (
            "helo command rejected",
            "this host's HELO name (mail.helo_name)",
        ),
    ];
    const EXIM_SENDER: &[&str] = &["sender verify failed", "could not complete sender verify"];
    let lower = text.to_ascii_lowercase();
    let own = own_part(&lower);
    let sender_status = |word: &str| {
        let mut parts = word.split('.');
        matches!(
            (parts.next(), parts.next(), parts.next(), parts.next()),
            (Some("4" | "5"), Some("1"), Some("7" | "8"), None)
        )
    };
    SAID.iter()
        .find(|(said, _)| own.contains(said))
        .map(|(_, what)| *what)
        .or_else(|| {
            (EXIM_SENDER.iter().any(|said| own.contains(said))
                || own.split_whitespace().any(sender_status))
            .then_some("the sender (report.from)")
        })
}

/// Whether a refusal of a recipient is the relay's own word that it will not pass mail on,
/// in the words of the common servers (Postfix, Exim, Sendmail, Exchange, qmail): not "User
/// unknown in relay recipient table", a gateway's word that the desk's address does not
/// exist, nor the desk's own server's refusal that a relay checking the recipient first
/// passes on (Postfix's "unverified address: host … said: …", Exim's "Callout verification
/// failed"): those are the desk's, and must not hold back every other report.
fn refuses_to_relay(text: &str) -> bool {
    const SAID: &[&str] = &[
        "relay access denied",
        "relaying denied",
        "relay denied",
        "unable to relay",
        "relay not permitted",
        "relaying not permitted",
        "relaying not allowed",
        "not permitted to relay",
        "not allowed to relay",
        "do not relay",
        "relaying disallowed",
    ];
    let lower = text.to_ascii_lowercase();
    let own = own_part(&lower);
    SAID.iter().any(|said| own.contains(said))
}

/// Whether the server, whose close was read after the message body, reset the connection
/// when more data came: the end of the body, written after the body itself, came after the
/// close. Its reset comes a round trip after that write; `round_trip` is how long the reply
/// to DATA took. Asked by writing QUIT, which fails on a connection reset.
fn reset_after_close(conn: &mut SmtpConnection, round_trip: Duration) -> bool {
    let wait = (round_trip * 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    std::thread::sleep(wait);
    match conn.command(lettre::transport::smtp::commands::Quit) {
        Ok(_) => false,
        Err(e) => matches!(
            io_kind(&e),
            Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
        ),
    }
}

/// The kind of the first I/O error among an error's causes.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    io_error(e).map(std::io::Error::kind)
}

/// The first I/O error among an error's causes.
fn io_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// A TLS layer's verdict (certificate, name, protocol) rather than the network's: rustls
/// reports it as invalid data with its own error inside; a plain socket never does.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    io_error(e)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData && io.get_ref().is_some())
}

/// Longest text of a server's or a program's own that an error or a log line repeats.
const REMOTE_TEXT: usize = 500;

/// How much of what a program the run starts (sendmail, journalctl) says on stderr is kept,
/// whatever it goes on to say: enough for the line an error or a refusal is recorded with.
pub(crate) const SAID_KEPT: u64 = 64 << 10;

/// A server's reply as an error repeats it: on one line, without control characters or
/// invisible formatting (the server's text reaches a terminal and the state).
fn reply_text(reply: &lettre::transport::smtp::response::Response) -> String {
    let text = reply.message().collect::<Vec<_>>().join(" ");
    clean_line(&format!("{} {text}", reply.code()), REMOTE_TEXT)
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
    // The causes may quote the server.
    clean_line(&text, REMOTE_TEXT)
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
    fn room(&self) -> Result<(), String> {
        self.deadlines.room()
    }

    fn handed(&self) -> bool {
        self.handed.load(Ordering::SeqCst)
    }

    fn send(
        &self,
        _id: &str,
        from: &Mailbox,
        recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError> {
        // No envelope, nothing sent (and nothing of the last dialogue said of this one).
        self.handed.store(false, Ordering::SeqCst);
        let envelope = envelope(from, recipients)?;
        self.within(Job::Send {
            envelope,
            message: message.to_vec(),
        })
    }
}

/// Whether `path` can be run as the local MTA; the reason if not.
pub fn runnable(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{}: not executable", path.display()));
    }
    Ok(())
}

/// The local MTA: `sendmail -t -i`, recipients from the message's own headers.
pub struct Sendmail {
    path: PathBuf,
    deadlines: Deadlines,
    /// It is OpenSMTPD's (see [`is_opensmtpd`]), whose 75 says the message was kept.
    opensmtpd: bool,
    /// Whether the last message may have reached a server (see [`Transport::handed`]).
    handed: AtomicBool,
}

impl Sendmail {
    /// Refuses a path that cannot be run: no waiting makes it appear.
    pub fn new(path: &Path, timeout: Duration) -> Result<Self> {
        runnable(path).map_err(|e| anyhow::anyhow!("mail.sendmail_path {e}"))?;
        Ok(Sendmail {
            path: path.to_path_buf(),
            deadlines: Deadlines::new(timeout),
            opensmtpd: is_opensmtpd(path),
            handed: AtomicBool::new(true),
        })
    }
}

/// The start of what a sendmail that kept a message for later is taken to have said: the
/// run tells the operator, whatever its verbosity (see [`Sendmail`]'s exit 75).
pub const KEPT_FOR_LATER: &str = "kept for later";

/// The process group of the sendmail running now, 0 for none (see [`SendmailGroup`]).
static SENDMAIL_GROUP: AtomicI32 = AtomicI32::new(0);

/// The signals that end a run and, while a sendmail runs, its group first.
const ENDING: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// A signal that came while a sendmail was being started, before its group was known: the
/// run takes it once the group is noted (see [`Deferral`]).
static STARTING: Deferral = Deferral::new();

/// A signal that comes between a sendmail's start and its group being noted: held, and
/// taken by whichever of the handler and the starting thread sees it last, so that it is
/// neither lost nor taken twice, and never before the group is known.
struct Deferral {
    starting: AtomicBool,
    signal: AtomicI32,
}

impl Deferral {
    const fn new() -> Self {
        Deferral {
            starting: AtomicBool::new(false),
            signal: AtomicI32::new(0),
        }
    }

    /// A sendmail is about to start.
    fn begin(&self) {
        self.signal.store(0, Ordering::SeqCst);
        self.starting.store(true, Ordering::SeqCst);
    }

    /// The handler got `signal`: the signal to take now, or `None` when the starting thread
    /// takes it (or already took it).
    fn signalled(&self, signal: libc::c_int) -> Option<libc::c_int> {
        self.signal.store(signal, Ordering::SeqCst);
        if self.starting.load(Ordering::SeqCst) {
            return None;
        }
        match self.signal.swap(0, Ordering::SeqCst) {
            0 => None,
            taken => Some(taken),
        }
    }

    /// The sendmail started (its group noted) or failed to: the signal that came meanwhile,
    /// to take now.
    fn end(&self) -> Option<libc::c_int> {
        self.starting.store(false, Ordering::SeqCst);
        match self.signal.swap(0, Ordering::SeqCst) {
            0 => None,
            taken => Some(taken),
        }
    }
}

/// A sendmail running, in a process group of its own (so that at its deadline whatever it
/// started is killed with it): a signal that ends the run (Ctrl-C, `timeout`, a hangup,
/// `kill` of the run's group) reached the run alone, and the sendmail, under init, went on
/// delivering a report the state still held as being sent, which the next run sent again.
/// While one runs, TERM, INT, HUP and QUIT (where they would end the process) kill its
/// group first, and then end the run as they would have. One that comes while it is being
/// started is taken once its group is known.
struct SendmailGroup;

impl SendmailGroup {
    /// Before a sendmail is started: the handlers are in place, and a signal from now on is
    /// held until [`SendmailGroup::started`] says what was started.
    fn starting() {
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| {
            for signal in ENDING {
                // SAFETY: sigaction(2) reads and writes the structs given, which live across
                // the calls; the handler only calls async-signal-safe functions.
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                        || old.sa_sigaction != libc::SIG_DFL
                    {
                        // Ignored (`nohup`, a background job's SIGINT) or handled: left so.
                        continue;
                    }
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = end_with_sendmail as extern "C" fn(libc::c_int) as usize;
                    // A signal held while a sendmail starts returns to the code it came in.
                    new.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut new.sa_mask);
                    libc::sigaction(signal, &new, std::ptr::null_mut());
                }
            }
        });
        STARTING.begin();
    }

    /// The sendmail started as `child` (its group noted from now on), or could not be
    /// started (`None`); a signal held meanwhile is taken now.
    fn started(child: Option<&std::process::Child>) -> Self {
        if let Some(child) = child {
            SENDMAIL_GROUP.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
        }
        if let Some(signal) = STARTING.end() {
            end_by(signal);
        }
        SendmailGroup
    }
}

impl Drop for SendmailGroup {
    fn drop(&mut self) {
        SENDMAIL_GROUP.store(0, Ordering::SeqCst);
    }
}

/// The handler of [`SendmailGroup`]: kills the running sendmail's group, then ends the
/// process by `signal` as its default action does; while one is being started, leaves that
/// to the starting thread.
extern "C" fn end_with_sendmail(signal: libc::c_int) {
    if let Some(signal) = STARTING.signalled(signal) {
        end_by(signal);
    }
}

/// Kills the running sendmail's group, if one runs, and ends the process by `signal`.
fn end_by(signal: libc::c_int) {
    let group = SENDMAIL_GROUP.load(Ordering::SeqCst);
    // SAFETY: kill(2), signal(2) and raise(3) are async-signal-safe and touch no memory of
    // ours; the group is the sendmail's own.
    unsafe {
        if group > 0 {
            libc::kill(-group, libc::SIGKILL);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Whether `path` is OpenSMTPD's sendmail: its `smtpctl`, which Debian's package links
/// `/usr/sbin/sendmail` to. With `smtpd` not running it keeps the message in its offline
/// queue (`/var/spool/smtpd/offline`), which `smtpd` sends once it starts, and exits 75:
/// sent again on each run, every copy would reach the desk. No other of its failures exits
/// 75 (they exit 1, 69 or 70).
fn is_opensmtpd(path: &Path) -> bool {
    fs::canonicalize(path).is_ok_and(|real| real.file_name().is_some_and(|n| n == "smtpctl"))
}

impl Sendmail {
    /// Hands `message` to the sendmail once, and says what came of it.
    fn send_once(&self, from: &Mailbox, message: &[u8]) -> Result<String, SendError> {
        let deadline = self.deadlines.next()?;
        let shown = self.path.display();
        // A local MTA reads Unix line ends.
        let unix = String::from_utf8_lossy(message)
            .replace("\r\n", "\n")
            .into_bytes();
        let whole = message_file(&unix).map_err(|e| {
            let text = format!(
                "cannot write the message for {shown} in the temporary folder {} (TMPDIR): {e}",
                std::env::temp_dir().display()
            );
            // A folder that is not there, not ours to write or read-only stays so: a report
            // waiting for it would wait for ever, each run ending in "try again later".
            use std::io::ErrorKind::{
                NotADirectory, NotFound, PermissionDenied, ReadOnlyFilesystem,
            };
            if matches!(
                e.kind(),
                NotFound | PermissionDenied | ReadOnlyFilesystem | NotADirectory
            ) {
                SendError::Config(format!("{text}; set TMPDIR to a folder it may write"))
            } else {
                SendError::Transient(text)
            }
        })?;
        // A process group of its own, so that at the deadline whatever it started (an MTA's
        // queue runner, a helper) is killed with it, not left to run on under init.
        SendmailGroup::starting();
        let child = Command::new(&self.path)
            .process_group(0)
            .args(["-t", "-i", "-f"])
            .arg(&from.email)
            .stdin(Stdio::from(whole))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let text = format!("mail.sendmail_path: cannot run {shown}: {e}");
                // Gone, not permitted, or not a program (ENOEXEC): waiting will not fix it.
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) || e.raw_os_error() == Some(8)
                {
                    SendError::Config(text)
                } else {
                    SendError::Transient(text)
                }
            });
        let _group = SendmailGroup::started(child.as_ref().ok());
        let mut child = child?;
        // What it says on stderr is read while it runs, as much as is there each time it is
        // looked at, never waiting: a sendmail that neither exits nor stops talking must not
        // hold the run, nor block on a full pipe, nor fill the run's memory (the first of it
        // is kept). No thread is needed for it.
        let mut said = Said::new(child.stderr.take());
        // It has the message's deadline and the wait an SMTP body's reply has: msmtp or
        // ssmtp waits on its relay as this client would (its content filter, its answer).
        // How far it read cannot be told (one that opens `/dev/stdin` reads the file afresh,
        // and msmtp reads a message whole before it connects): whatever it did, a sendmail
        // killed is a failure to try again, never taken as delivered.
        let deadline = deadline + self.deadlines.body_reply;
        let status = loop {
            said.read_what_is_there();
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    if let Ok(group) = i32::try_from(child.id()) {
                        // SAFETY: kill(2) with a negative pid signals that process group;
                        // it touches no memory of ours. The group is the child's own
                        // (process_group(0) above), so nothing else is hit.
                        unsafe {
                            libc::kill(-group, libc::SIGKILL);
                        }
                    }
                    let _ = child.kill();
                    // Reaped, so that no zombie is left behind.
                    let _ = child.wait();
                    // What it said may say why (postdrop retrying a maildrop it may not
                    // write, for ever).
                    said.read_what_is_there();
                    let said = clean_line(&String::from_utf8_lossy(&said.kept), REMOTE_TEXT);
                    let said = if said.is_empty() {
                        String::new()
                    } else {
                        format!(": it said: {said}")
                    };
                    return Err(SendError::Transient(format!(
                        "{shown} did not finish within {} s ({} × mail.timeout_secs); killed{said}",
                        (self.deadlines.message + self.deadlines.body_reply).as_secs(),
                        TIMEOUTS_PER_MESSAGE + BODY_REPLY_TIMEOUTS
                    )));
                }
                Ok(None) => said.wait(Duration::from_millis(20)),
                Err(e) => return Err(SendError::Transient(format!("{shown}: {e}"))),
            }
        };
        // The pipe may stay open in a child of sendmail's: read on a moment only.
        let settle = Instant::now() + Duration::from_secs(1);
        while !said.read_what_is_there() && Instant::now() < settle {
            said.wait(Duration::from_millis(20));
        }
        let said = said.kept;
        let said = clean_line(&String::from_utf8_lossy(&said), REMOTE_TEXT);
        // Exim, refusing a message it will not take, says nothing and mails the error to the
        // sender instead.
        let said = match said.is_empty() {
            true => "it said nothing (its own log, or a bounce to report.from, says why)".into(),
            false => said,
        };
        let refused = |code: i32| sendmail_refusal(&shown.to_string(), code, &said);
        match status.code() {
            // How much of its input an MTA read cannot be told (one that opens `/dev/stdin`
            // reads the file afresh): its exit status is its word.
            Some(0) => Ok(format!("{shown} accepted the message")),
            // sysexits: data error, no such user: the message itself is refused, unless what
            // it says is the relay refusing the operator's own (see `sendmail_refusal`).
            Some(code @ (65 | 67 | 100)) => Err(refused(code)),
            // sysexits' no such host: msmtp says it of its own relay whenever a lookup fails,
            // for a moment too (a name server that did not answer), which refuses no message.
            Some(68) => Err(SendError::Unclear(format!(
                "mail.sendmail_path: {shown} exited 68 (host name unknown): {said}"
            ))),
            // sysexits: its command line refused (one that takes no `-t -i -f`), its input not
            // there, permission denied, configuration error: waiting will not fix any.
            Some(code @ (64 | 66 | 77 | 78)) => Err(SendError::Config(format!(
                "mail.sendmail_path: {shown} exited {code}: {said}"
            ))),
            Some(75) if self.opensmtpd => Ok(format!(
                "{KEPT_FOR_LATER} by {shown} (OpenSMTPD) in its offline queue: smtpd is not running, and sends it once it starts; not sent again"
            )),
            // A status that says nothing of why, with the server's permanent refusal in what it
            // says (ssmtp exits 1 for every failure: `RCPT TO:<…> (550 …)`; msmtp 69 for any
            // refusal of the body: `server message: 552 …`): a refusal, not a "later".
            Some(code) if code != 75 && permanent_reply_said(&said) => Err(refused(code)),
            // A size limit, whatever the status: Postfix's sendmail exits 75 for a message
            // over `message_size_limit` ("message file too big"), which was taken for "later"
            // until it became a setting to fix a day on; the report waited, made as it was,
            // and held back every report behind it. Only a smaller report meets it.
            Some(code) if refused_for_size(&said) => Err(SendError::Rejected(format!(
                "{shown} exited {code}: {said} (the message is {} bytes: lower report.max_message_bytes below the mail system's limit, Postfix's message_size_limit)",
                message.len()
            ))),
            // sysexits' failures of the moment: the service, the system, a file it could not
            // make, input or output, the remote side, a temporary failure: tried again, for a
            // day. A local MTA says so of refusals that do not pass too: Postfix's sendmail
            // exits 75 for a message larger than `message_size_limit` or a user not allowed
            // to submit; taken for "later" for ever, each run ended 75, which the shipped
            // unit counts as success, and the report never went.
            Some(code @ 69..=76) => Err(SendError::Unclear(format!(
                "mail.sendmail_path: {shown} exited {code}: {said}"
            ))),
            // qmail's own word for later (100, never, is a refusal above).
            Some(111) => Err(SendError::Unclear(format!(
                "mail.sendmail_path: {shown} exited 111: {said}"
            ))),
            // No sysexits status (ssmtp's 1, for a mail hub down or misnamed; Exim's for a
            // full spool; a shell's 127): whether waiting helps cannot be told. Taken for a
            // wait for ever, every run ended 75, which the shipped unit counts as success.
            Some(code) => Err(SendError::Unclear(format!(
                "mail.sendmail_path: {shown} exited {code}, which is no sysexits status (75 says try later): {said}"
            ))),
            None => Err(SendError::Transient(format!(
                "{shown} was killed by a signal"
            ))),
        }
    }
}

impl Transport for Sendmail {
    fn room(&self) -> Result<(), String> {
        self.deadlines.room()
    }

    fn send(
        &self,
        _id: &str,
        from: &Mailbox,
        _recipients: &[String],
        message: &[u8],
    ) -> Result<String, SendError> {
        let sent = self.send_once(from, message);
        // A sendmail that says its relay refused the sender (msmtp, ssmtp: they keep no
        // queue) handed the body to no server: that comes after the sender is taken.
        let refused_sender =
            matches!(&sent, Err(SendError::Config(t)) if t.contains(SENDER_REFUSED));
        self.handed.store(!refused_sender, Ordering::SeqCst);
        sent
    }

    fn handed(&self) -> bool {
        self.handed.load(Ordering::SeqCst)
    }
}

/// A sendmail's refusal, by what it said: the relay refusing the sender, this host or to
/// relay at all is the operator's to fix (78), as over SMTP (msmtp: `envelope from address …
/// not accepted by the server`; ssmtp quotes the server's reply bare: `550 … Sender address
/// rejected`); a refused recipient is named, so that one of the operator's own (`report.cc`)
/// is a setting to fix too (ssmtp: `RCPT TO:<…> (550 …)`; msmtp: `recipient address … not
/// accepted by the server`); any other refuses the message. msmtp's 65 for a refused sender
/// was taken for the desk's refusal, which shut a discovered desk out. Only the relay's own
/// words count, not what it passes on of the desk's server's.
fn sendmail_refusal(shown: &str, code: i32, said: &str) -> SendError {
    let lower = said.to_ascii_lowercase();
    let own = own_part(&lower);
    let head = format!("mail.sendmail_path: {shown} exited {code}");
    if own.contains("envelope from address") {
        return SendError::Config(format!("{head}: {SENDER_REFUSED}: {said}"));
    }
    if let Some(what) = ours_refused(said) {
        return SendError::Config(format!("{head}: the mail server refused {what}: {said}"));
    }
    if refuses_to_relay(said) {
        return SendError::Config(format!(
            "{head}: the mail server will not relay (check the login sendmail's own settings give it): {said}"
        ));
    }
    let text = format!("{shown} exited {code}: {said}");
    match refused_recipient(own) {
        Some(recipient) => SendError::RecipientRefused {
            recipient: recipient.to_string(),
            text,
        },
        None => SendError::Rejected(text),
    }
}

/// The recipient a sendmail says the server refused for good: ssmtp's `RCPT TO:<x> (5…`,
/// msmtp's `recipient address x not accepted by the server`.
fn refused_recipient(lower: &str) -> Option<&str> {
    refused_rcpt(lower).or_else(|| {
        let rest = &lower[lower.find("recipient address ")? + "recipient address ".len()..];
        let (address, after) = rest.split_once(' ')?;
        after.starts_with("not accepted").then_some(address)
    })
}

/// The address of ssmtp's `RCPT TO:<x> (5…`: a server's permanent refusal of recipient `x`.
fn refused_rcpt(lower: &str) -> Option<&str> {
    const RCPT: &str = "rcpt to:<";
    lower.match_indices(RCPT).find_map(|(at, _)| {
        let rest = &lower[at + RCPT.len()..];
        let end = rest.find('>')?;
        rest[end + 1..]
            .trim_start()
            .starts_with("(5")
            .then(|| &rest[..end])
    })
}

/// Whether what a sendmail said quotes a server's permanent refusal: ssmtp's
/// `RCPT TO:<…> (550 …)`, or the server's reply bare after its name (`sendmail: 550 …`, as
/// ssmtp says a refusal of the sender or the body), msmtp's `server message: 550 …`.
fn permanent_reply_said(said: &str) -> bool {
    let lower = said.to_ascii_lowercase();
    let bare_reply = lower.split_once(": ").is_some_and(|(_, rest)| {
        let code = rest.as_bytes();
        code.len() > 3
            && code[0] == b'5'
            && code[1..3].iter().all(u8::is_ascii_digit)
            && matches!(code[3], b' ' | b'-')
    });
    refused_rcpt(&lower).is_some() || bare_reply || lower.contains("server message: 5")
}

/// What a sendmail says on stderr, read without ever waiting for it: the first [`SAID_KEPT`]
/// bytes kept, the rest read and let go.
struct Said {
    pipe: Option<std::process::ChildStderr>,
    kept: Vec<u8>,
}

impl Said {
    fn new(pipe: Option<std::process::ChildStderr>) -> Self {
        use std::os::fd::AsRawFd;
        // A read that would wait returns at once instead. Should the pipe refuse that, it is
        // not read at all: a read that waits could hold the run past its deadline.
        let pipe = pipe.filter(|p| {
            let fd = p.as_raw_fd();
            // SAFETY: fcntl(2) on the pipe's read end, a descriptor `p` owns while it lives:
            // it reads and sets that descriptor's flags, and touches no memory.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
            }
        });
        Said {
            pipe,
            kept: Vec::new(),
        }
    }

    /// Waits up to `at_most` for something to read (or the pipe's end), no longer; with no
    /// pipe to read, waits `at_most`.
    fn wait(&self, at_most: Duration) {
        use std::os::fd::AsRawFd;
        let Some(pipe) = &self.pipe else {
            std::thread::sleep(at_most);
            return;
        };
        let mut watched = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(at_most.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll(2) is given one pollfd that lives on this stack for the call, and a
        // count of one; it writes only that pollfd's `revents`.
        let ready = unsafe { libc::poll(&mut watched, 1, ms) };
        if ready < 0 {
            // Interrupted, or refused: the wait is not what holds the run back.
            std::thread::sleep(at_most);
        }
    }

    /// Reads what is in the pipe now, up to 4 MiB (so that a sendmail talking without end
    /// still lets the caller look at the clock); `true` once the pipe has ended.
    fn read_what_is_there(&mut self) -> bool {
        let Some(pipe) = self.pipe.as_mut() else {
            return true;
        };
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..64 {
            match pipe.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let room = usize::try_from(SAID_KEPT).unwrap_or(usize::MAX);
                    let room = room.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // Its end, or a pipe that cannot be read: nothing more will come.
                _ => {
                    self.pipe = None;
                    return true;
                }
            }
        }
        false
    }
}

/// The message as a file for the MTA to read from its start: written whole before the MTA
/// starts, so that however the run ends (killed by the OOM killer, a `timeout`, Ctrl-C) the
/// MTA never takes part of a message for all of it. A pipe would hold only its first 64 KiB
/// once the run was gone. The file has no name: nothing is left behind.
fn message_file(text: &[u8]) -> std::io::Result<fs::File> {
    let mut file = crate::spool::unnamed_file(&std::env::temp_dir())?;
    file.write_all(text)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(file)
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
        write_atomically(&self.dir, &path, message).map_err(|e| {
            let text = format!("cannot write {}: {e}", path.display());
            // A full disk empties; a folder that is a file, or not ours to write, or one
            // that takes no name this long, does not.
            use std::io::ErrorKind::{
                InvalidFilename, NotADirectory, PermissionDenied, ReadOnlyFilesystem,
            };
            match e.kind() {
                NotADirectory | PermissionDenied | ReadOnlyFilesystem | InvalidFilename => {
                    SendError::Config(format!("mail.dir: {text}"))
                }
                _ => SendError::Transient(text),
            }
        })?;
        Ok(format!("written to {}", path.display()))
    }
}

/// Writes a file so that it is either absent or complete: temp file, fsync, rename, fsync dir.
/// The file is the operator's only (0600, in a 0700 folder if this creates it): a message
/// quotes their logs.
pub(crate) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("message");
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash keeps its mode when opened again: start afresh.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(e) = written {
        // A part written to a full disk is not left to fill it.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    crate::folder::sync(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relays' refusals to pass mail on are the operator's to fix; a gateway's "user
    /// unknown in relay recipient table" is the desk's address gone, and a desk's server's
    /// refusal passed on by a relay that checks recipients is the desk's.
    #[test]
    fn a_refusal_to_relay_is_told_from_a_desk_address_gone() {
        for said in [
            "permanent error (554): 5.7.1 <a@b.example>: Relay access denied",
            "permanent error (550): 5.7.1 Unable to relay",
            "permanent error (550): relay not permitted",
            "permanent error (550): 5.7.1 Relaying denied. Proper authentication required.",
            "permanent error (553): sorry, that domain isn't in my list of allowed rcpthosts; no valid cert for gatewaying (#5.7.1) we do not relay",
        ] {
            assert!(refuses_to_relay(said), "{said}");
        }
        for said in [
            "permanent error (550): 5.1.1 <abuse@b.example>: Recipient address rejected: User unknown in relay recipient table",
            "permanent error (550): 5.1.1 <abuse@b.example>: Recipient address rejected: unverified address: host mx.b.example[192.0.2.1] said: 554 5.7.1 <abuse@b.example>: Relay access denied (in reply to RCPT TO command)",
            "permanent error (550): Callout verification failed: 550 Relaying denied",
            "permanent error (550): 5.1.1 mailbox unavailable",
            "permanent error (550): 5.7.1 message refused",
        ] {
            assert!(!refuses_to_relay(said), "{said}");
        }
    }

    /// rustls's verdicts are told in words, with what to do; one it gives no name for falls
    /// back to what to check.
    #[test]
    fn a_failed_handshake_says_what_to_do() {
        use rustls::CertificateError as E;
        use rustls::pki_types::{ServerName, UnixTime};
        // As rustls prints its verdicts, in the words an error's text carries.
        let said = |e: E| rustls::Error::InvalidCertificate(e).to_string();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(2_000_000_000));
        let before = UnixTime::since_unix_epoch(Duration::from_secs(1_000_000_000));
        for (error, advice) in [
            (E::UnknownIssuer, "mail.ca_file"),
            (E::BadSignature, "check mail.port"),
            (
                E::NotValidForNameContext {
                    expected: ServerName::try_from("mail.example.org").unwrap(),
                    presented: vec!["localhost".into()],
                },
                "not for mail.host",
            ),
            (
                E::ExpiredContext {
                    time: at,
                    not_after: before,
                },
                "has expired",
            ),
            (
                E::NotValidYetContext {
                    time: before,
                    not_before: at,
                },
                "not valid yet",
            ),
        ] {
            let text = said(error);
            assert!(
                tls_advice(&text).contains(advice),
                "{text}: {}",
                tls_advice(&text)
            );
        }
        let advice = tls_advice("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))");
        assert!(advice.contains("a CA's own certificate"), "{advice}");
    }

    /// A relay's verdict on the sender, this host or its HELO name, given in its reply to a
    /// recipient, is told from the desk's refusal of its address, and from a desk's server's
    /// word that the relay passes on.
    #[test]
    fn a_relays_refusal_of_the_sender_at_rcpt_is_told_from_the_desks() {
        for (said, what) in [
            (
                "permanent error (554): 5.7.1 <abuse@example.org>: Sender address rejected: Access denied",
                "report.from",
            ),
            (
                "transient error (450): 4.1.8 <abuse@example.org>: Sender address rejected: Domain not found",
                "report.from",
            ),
            ("permanent error (550): Sender verify failed", "report.from"),
            (
                "permanent error (553): 5.1.7 bad sender address syntax",
                "report.from",
            ),
            // Postfix checking the sender's address with its own MX.
            (
                "permanent error (550): 5.1.7 <abuse@example.org>: Sender address rejected: unverified address: host mx.example.org[192.0.2.9] said: 550 5.1.1 no such user (in reply to RCPT TO command)",
                "report.from",
            ),
            // Exim's callout to the sender's domain, and its verdict on the sender.
            (
                "permanent error (550): Verification failed for <abuse@example.org> Called: 192.0.2.9 Sent: RCPT TO:<abuse@example.org> Response: 550 no such user Sender verify failed",
                "report.from",
            ),
            (
                "transient error (450): 4.7.1 <unknown[127.0.0.1]>: Client host rejected: try again later",
                "client",
            ),
            (
                "permanent error (504): 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
                "mail.helo_name",
            ),
        ] {
            assert!(
                ours_refused(said).is_some_and(|w| w.contains(what)),
                "{said}: {:?}",
                ours_refused(said)
            );
        }
        for said in [
            "permanent error (550): 5.1.1 <abuse@b.example>: Recipient address rejected: User unknown in local recipient table",
            "permanent error (550): 5.1.1 <abuse@b.example>: Recipient address rejected: unverified address: host mx.b.example[192.0.2.1] said: 550 5.7.1 <probe@relay.example>: Sender address rejected (in reply to RCPT TO command)",
            "transient error (450): 4.2.0 <abuse@b.example>: Recipient address rejected: Greylisted",
            // Exim passing on the desk's refusal of its callout's sender.
            "permanent error (550): Callout verification failed: 550 550 5.7.1 <postmaster@relay.example>: Sender address rejected: Domain not found",
            "permanent error (552): 5.2.2 mailbox full",
        ] {
            assert_eq!(ours_refused(said), None, "{said}");
        }
    }
    use std::net::TcpListener;

    /// A server that reads a command and closes the connection without answering; the
    /// client reads the close, then, if `more`, writes on (as the end of a message body
    /// written after the close): the server resets the connection then, and the client's
    /// look for a reset sees it; without more, it sees none.
    fn closed_after_a_command(more: bool) -> bool {
        use std::io::BufRead;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut lines = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            let mut line = String::new();
            out.write_all(b"220 test\r\n").unwrap();
            lines.read_line(&mut line).unwrap();
            out.write_all(b"250 test\r\n").unwrap();
            line.clear();
            lines.read_line(&mut line).unwrap();
            // Dropped here: closed, with nothing unread.
        });
        let hello = ClientId::Domain("client.example".into());
        let mut conn =
            SmtpConnection::connect(addr, Some(Duration::from_secs(5)), &hello, None, None)
                .unwrap();
        assert!(
            conn.command(lettre::transport::smtp::commands::Noop)
                .is_err()
        );
        server.join().unwrap();
        if more {
            let _ = conn.message(b"the end of a body");
        }
        reset_after_close(&mut conn, Duration::ZERO)
    }

    #[test]
    fn a_server_that_closed_before_the_end_of_the_body_is_told_by_its_reset() {
        assert!(closed_after_a_command(true), "written to after the close");
        assert!(
            !closed_after_a_command(false),
            "nothing written after the close"
        );
    }

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

    /// A file name the folder's file system cannot hold waits for nothing: it is the
    /// configuration's to mend (78), not a send to try again on every run (75).
    #[test]
    fn a_name_too_long_for_the_folder_is_no_temporary_failure() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileDrop {
            dir: dir.path().join("out"),
        };
        let from: Mailbox = "a@example.org".parse().unwrap();
        let e = t.send(&"x".repeat(300), &from, &[], b"x").unwrap_err();
        assert!(
            matches!(&e, SendError::Config(text) if text.starts_with("mail.dir: ")),
            "{e:?}"
        );
    }

    #[test]
    fn eml_files_are_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // A temp file left world-readable by a crash must not pass its mode on.
        fs::create_dir(&out).unwrap();
        fs::write(out.join(".r1.eml.tmp"), "stale").unwrap();
        fs::set_permissions(out.join(".r1.eml.tmp"), fs::Permissions::from_mode(0o644)).unwrap();
        let t = FileDrop { dir: out.clone() };
        let from: Mailbox = "a@example.org".parse().unwrap();
        t.send("r1", &from, &[], b"x").unwrap();
        let mode = fs::metadata(out.join("r1.eml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let fresh = dir.path().join("new/outbox");
        FileDrop { dir: fresh.clone() }
            .send("r2", &from, &[], b"x")
            .unwrap();
        let mode = fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "a folder it creates is the owner's only"
        );
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// What msmtp and ssmtp say tells a refusal of the operator's own (the sender, relaying)
    /// from a desk's, and a refusal from a "later", whatever status they exit with; Exim's
    /// silence is said.
    /// A signal between a sendmail's start and its group being known is held for the
    /// starting thread, and taken once, whichever side sees it last; any other is taken by
    /// the handler at once.
    #[test]
    fn a_signal_while_a_sendmail_starts_is_taken_once_its_group_is_known() {
        let d = Deferral::new();
        assert_eq!(
            d.signalled(libc::SIGTERM),
            Some(libc::SIGTERM),
            "none starting"
        );
        d.begin();
        assert_eq!(d.signalled(libc::SIGTERM), None, "held while starting");
        assert_eq!(d.end(), Some(libc::SIGTERM), "taken once started");
        assert_eq!(
            d.signalled(libc::SIGINT),
            Some(libc::SIGINT),
            "started: at once"
        );
        d.begin();
        assert_eq!(d.end(), None, "nothing came");
        assert_eq!(d.end(), None);
        // A handler on another thread and the starting thread, racing: each signal sent is
        // taken exactly once.
        for _ in 0..2_000 {
            let d = std::sync::Arc::new(Deferral::new());
            d.begin();
            let other = std::sync::Arc::clone(&d);
            let handler = std::thread::spawn(move || other.signalled(libc::SIGHUP));
            let by_starter = d.end();
            let by_handler = handler.join().unwrap();
            assert!(
                by_starter.is_some() != by_handler.is_some(),
                "taken once: {by_starter:?} {by_handler:?}"
            );
        }
    }

    #[test]
    fn what_a_sendmail_says_tells_whose_refusal_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let from: Mailbox = "a@example.org".parse().unwrap();
        let says = |n: usize, code: i32, said: &str| {
            let path = script(
                dir.path(),
                &format!("sendmail-says-{n}"),
                &format!("cat > /dev/null\nprintf '%s\\n' '{said}' >&2\nexit {code}"),
            );
            Sendmail::new(&path, Duration::from_secs(5))
                .unwrap()
                .send("r", &from, &[], b"x")
        };
        type Expected = fn(&SendError) -> bool;
        let cases: [(i32, &str, Expected); 14] = [
            (
                65,
                "msmtp: envelope from address a@example.org not accepted by the server",
                |e| matches!(e, SendError::Config(t) if t.contains("report.from")),
            ),
            (
                65,
                "msmtp: server message: 554 5.7.1 <x@y.example>: Relay access denied",
                |e| matches!(e, SendError::Config(t) if t.contains("will not relay")),
            ),
            (65, "msmtp: server message: 550 5.1.1 no such user", |e| {
                matches!(e, SendError::Rejected(_))
            }),
            // The refused recipient named, for the ledger to tell the operator's own.
            (
                1,
                "sendmail: RCPT TO:<ec2-abuse@amazon.com> (550 5.1.1 no such user)",
                |e| matches!(e, SendError::RecipientRefused { recipient, .. } if recipient == "ec2-abuse@amazon.com"),
            ),
            (
                65,
                "msmtp: recipient address noc@example.org not accepted by the server msmtp: server message: 550 5.1.1 no such user",
                |e| matches!(e, SendError::RecipientRefused { recipient, .. } if recipient == "noc@example.org"),
            ),
            // A desk's server's words passed on by the relay are the desk's, whatever they say.
            (
                1,
                "sendmail: RCPT TO:<ec2-abuse@amazon.com> (550 5.1.1 <ec2-abuse@amazon.com>: Recipient address rejected: unverified address: host mx.amazon.example[192.0.2.1] said: 550 Sender verify failed (in reply to RCPT TO command))",
                |e| matches!(e, SendError::RecipientRefused { .. }),
            ),
            (
                65,
                "msmtp: server message: 550 5.1.1 <x@y.example>: Recipient address rejected: host mx.y.example said: 553 5.1.8 envelope from address <double-bounce@relay.example> rejected",
                |e| matches!(e, SendError::Rejected(_)),
            ),
            // ssmtp says a refusal of the body with the server's reply bare.
            (
                1,
                "sendmail: 552 5.3.4 Message size exceeds fixed limit",
                |e| matches!(e, SendError::Rejected(_)),
            ),
            (
                1,
                "sendmail: 550 5.7.1 <a@example.org>: Sender address rejected: not yours",
                |e| matches!(e, SendError::Config(t) if t.contains("report.from")),
            ),
            (
                1,
                "sendmail: RCPT TO:<ec2-abuse@amazon.com> (451 4.7.1 later)",
                |e| matches!(e, SendError::Unclear(_)),
            ),
            (
                69,
                "msmtp: server message: 552 5.3.4 message file too big",
                |e| matches!(e, SendError::Rejected(_)),
            ),
            (
                69,
                "msmtp: server message: 451 4.3.0 queue file write error",
                |e| matches!(e, SendError::Unclear(_)),
            ),
            // Postfix's sendmail over `message_size_limit`: 75, which says "later", in words
            // that say never at this size.
            (
                75,
                "postdrop: warning: uid=0: File too large sendmail: warning: mail_stream_cleanup: close error sendmail: fatal: abuse@example.org(0): message file too big",
                |e| matches!(e, SendError::Rejected(t) if t.contains("max_message_bytes")),
            ),
            // Its other 75s stay failures of the moment.
            (
                75,
                "sendmail: fatal: abuse@example.org(0): queue file write error",
                |e| matches!(e, SendError::Unclear(_)),
            ),
        ];
        for (n, (code, said, expected)) in cases.into_iter().enumerate() {
            let got = says(n, code, said);
            assert!(
                got.as_ref().err().is_some_and(expected),
                "{code} {said}: {got:?}"
            );
        }
        let silent = script(dir.path(), "sendmail-silent", "cat > /dev/null\nexit 1");
        let got = Sendmail::new(&silent, Duration::from_secs(5))
            .unwrap()
            .send("r", &from, &[], b"x");
        assert!(
            matches!(&got, Err(SendError::Unclear(t)) if t.contains("it said nothing")),
            "{got:?}"
        );
    }

    #[test]
    fn sendmail_exit_codes_map_to_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let from: Mailbox = "a@example.org".parse().unwrap();
        let exits = |code: i32| {
            let out = dir.path().join(format!("sendmail{code}.out"));
            let path = script(
                dir.path(),
                &format!("sendmail{code}"),
                &format!("cat > {}\nexit {code}", out.display()),
            );
            Sendmail::new(&path, Duration::from_secs(5)).unwrap()
        };
        assert!(exits(0).send("r", &from, &[], b"A: b\r\n\r\nx\r\n").is_ok());
        let out = fs::read_to_string(dir.path().join("sendmail0.out")).unwrap();
        assert_eq!(out, "A: b\n\nx\n", "Unix line ends for the local MTA");
        assert!(matches!(
            exits(75).send("r", &from, &[], b"x"),
            Err(SendError::Unclear(_))
        ));
        assert!(matches!(
            exits(67).send("r", &from, &[], b"x"),
            Err(SendError::Rejected(_))
        ));
        // No such host: msmtp's for its relay's name not found, for a moment too.
        assert!(matches!(
            exits(68).send("r", &from, &[], b"x"),
            Err(SendError::Unclear(_))
        ));
        // Other failures of the moment that sysexits names: tried again, for a day.
        for code in [69, 74, 76] {
            assert!(matches!(
                exits(code).send("r", &from, &[], b"x"),
                Err(SendError::Unclear(_))
            ));
        }
        // qmail's words for later (for a day) and never.
        assert!(matches!(
            exits(111).send("r", &from, &[], b"x"),
            Err(SendError::Unclear(_))
        ));
        assert!(matches!(
            exits(100).send("r", &from, &[], b"x"),
            Err(SendError::Rejected(_))
        ));
        // No sysexits status at all (ssmtp's 1, a shell's 127): it may pass or not.
        for code in [1, 2, 127] {
            assert!(matches!(
                exits(code).send("r", &from, &[], b"x"),
                Err(SendError::Unclear(_))
            ));
        }
        // Its command line refused (EX_USAGE): waiting does not change it.
        for code in [64, 78] {
            assert!(matches!(
                exits(code).send("r", &from, &[], b"x"),
                Err(SendError::Config(_))
            ));
        }
    }

    /// A sendmail that did not finish by the message's deadline (msmtp waiting on a relay's
    /// content filter, whether it read its input through fd 0 or `/dev/stdin`): it is
    /// waited for as an SMTP body's reply is, and one that finishes then is taken at its
    /// word. One killed after that wait is a failure to try again, never taken as delivered:
    /// reading the message (msmtp reads it whole before it connects) is not passing it on.
    #[test]
    fn a_sendmail_is_waited_for_as_a_body_reply_is_and_killed_is_never_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let from: Mailbox = "a@example.org".parse().unwrap();
        let message = "A: b\r\n\r\nx\r\n".repeat(2_000);
        for (name, script_text, sent) in [
            ("slow", "cat > /dev/null\nsleep 2\nexit 0", true),
            ("stdin", "cat /dev/stdin > /dev/null\nsleep 2\nexit 0", true),
            ("whole", "cat > /dev/null\nexec sleep 600", false),
            ("none", "exec sleep 600", false),
        ] {
            let path = script(dir.path(), name, script_text);
            let mut t = Sendmail::new(&path, Duration::from_secs(1)).unwrap();
            t.deadlines = Deadlines::with(Duration::from_secs(1), Duration::from_secs(60));
            t.deadlines.body_reply = Duration::from_secs(3);
            let got = t.send("r", &from, &[], message.as_bytes());
            match sent {
                true => assert!(got.is_ok(), "{name}: {got:?}"),
                false => assert!(
                    matches!(&got, Err(SendError::Transient(t)) if t.contains("killed")),
                    "{name}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn sendmail_missing_or_not_executable_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Sendmail::new(&dir.path().join("nope"), Duration::from_secs(5));
        let e = missing.err().unwrap().to_string();
        assert!(e.contains("mail.sendmail_path"), "{e}");
        let path = dir.path().join("plain");
        fs::write(&path, "#!/bin/sh\n").unwrap();
        let e = Sendmail::new(&path, Duration::from_secs(5))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not executable"), "{e}");
        // Removed after the run started: the send says so, as a setting to fix.
        let gone = script(dir.path(), "gone", "cat >/dev/null");
        let t = Sendmail::new(&gone, Duration::from_secs(5)).unwrap();
        fs::remove_file(&gone).unwrap();
        let from: Mailbox = "a@example.org".parse().unwrap();
        assert!(matches!(
            t.send("r", &from, &[], b"x"),
            Err(SendError::Config(e)) if e.contains("mail.sendmail_path")
        ));
    }

    #[test]
    fn sendmail_that_hangs_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let path = script(
            dir.path(),
            "hang",
            &format!("echo $$ > {}\nexec sleep 600", pid.display()),
        );
        let mut t = Sendmail::new(&path, Duration::from_secs(1)).unwrap();
        t.deadlines = Deadlines::with(Duration::from_secs(1), Duration::from_secs(60));
        let from: Mailbox = "a@example.org".parse().unwrap();
        let e = t.send("r", &from, &[], b"x").unwrap_err();
        assert!(
            matches!(&e, SendError::Transient(t) if t.contains("killed")),
            "{e:?}"
        );
        let pid = fs::read_to_string(&pid).unwrap();
        // Killed and reaped: no process (not even a zombie) is left with that id.
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "sendmail {pid} still there"
        );
    }

    #[test]
    fn a_spent_run_deadline_sends_nothing_more() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let config = loopback(port);
        let mut smtp = Smtp::new(&config).unwrap();
        smtp.deadlines = Deadlines::with(Duration::from_secs(5), Duration::ZERO);
        let from: Mailbox = "a@example.org".parse().unwrap();
        let e = smtp
            .send("r", &from, &["b@example.org".into()], b"x")
            .unwrap_err();
        assert!(
            matches!(&e, SendError::Transient(t) if t.contains("next run")),
            "{e:?}"
        );
        assert!(listener.accept().is_err(), "the server was not contacted");
    }

    /// A server on `listener` that reads a body 64 KiB at a time, `pause` apart, until its
    /// end (answered 250) or until nothing more comes for two seconds. How much it read,
    /// and whether the data's end came.
    fn slow_reader(
        listener: TcpListener,
        pause: Duration,
    ) -> std::thread::JoinHandle<(usize, bool)> {
        use std::io::{BufRead, BufReader};
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut input = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            out.write_all(b"220 test\r\n").unwrap();
            for answer in [
                "250 test\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go ahead\r\n",
            ] {
                let mut line = String::new();
                input.read_line(&mut line).unwrap();
                out.write_all(answer.as_bytes()).unwrap();
            }
            let timeout = Some(Duration::from_secs(2));
            input.get_ref().set_read_timeout(timeout).unwrap();
            let (mut read, mut last) = (0, Vec::new());
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = input.read(&mut buf) {
                read += n;
                last.extend_from_slice(&buf[..n]);
                last.drain(..last.len().saturating_sub(5));
                if last == b"\r\n.\r\n" {
                    out.write_all(b"250 queued\r\n").unwrap();
                    return (read, true);
                }
                std::thread::sleep(pause);
            }
            (read, false)
        })
    }

    /// Plain SMTP to `port` on loopback, five seconds a read.
    fn loopback(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: Security::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
            helo_name: None,
            ca_file: None,
        }
    }

    /// A body of 16 MiB or more (far more than the kernel buffers on the way: Linux's
    /// largest send buffer is the last of `tcp_wmem`), and an SMTP client on `port` whose
    /// dialogue may last `dialogue`, and whose body, with its reply, `body`.
    fn big_body_and_client(port: u16, dialogue: Duration, body: Duration) -> (Vec<u8>, Smtp) {
        let config = loopback(port);
        let mut smtp = Smtp::new(&config).unwrap();
        smtp.deadlines = Deadlines::with(dialogue, Duration::from_secs(120));
        smtp.deadlines.body_reply = body;
        let buffered: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
            .ok()
            .and_then(|t| t.split_whitespace().last()?.parse().ok())
            .unwrap_or(4 << 20);
        let size = buffered.saturating_mul(4).clamp(16 << 20, 256 << 20);
        let line = format!("{}\r\n", "x".repeat(998));
        (line.repeat(size / line.len()).into_bytes(), smtp)
    }

    /// A relay that drains the body slowly but steadily, too slowly for all of it to go out
    /// within the wait a body has: the dialogue is given up while its body goes out, a
    /// failure to try again. Its thread wrote on to the end, then the data's end, and the
    /// server took the message the ledger said had failed, which the next run sent again,
    /// run after run. Given up, the rest of the body and the data's end never go out.
    #[test]
    fn a_dialogue_given_up_while_its_body_goes_out_never_ends_the_data() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = slow_reader(listener, Duration::from_millis(50));
        let (message, smtp) =
            big_body_and_client(port, Duration::from_secs(5), Duration::from_secs(1));
        let from: Mailbox = "a@example.org".parse().unwrap();
        let e = (smtp.send("r", &from, &["b@example.org".into()], &message)).unwrap_err();
        assert!(
            matches!(&e, SendError::Transient(t) if t.contains("given up")),
            "{e:?}"
        );
        let (read, ended) = server.join().unwrap();
        assert!(
            !ended,
            "the data's end went out: the server took the message"
        );
        assert!(
            read > 0 && read < message.len(),
            "given up while the body went out: {read} bytes read"
        );
    }

    /// A body a slow link carries steadily outlasts the dialogue's own deadline: it has the
    /// wait a body's reply has, and goes out whole, taken by the server, not given up
    /// halfway on every run.
    #[test]
    fn a_body_a_slow_link_carries_steadily_goes_out_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // 64 KiB every 40 ms: the body outlasts the dialogue's three seconds (which leave a
        // busy machine time for the commands before it).
        let server = slow_reader(listener, Duration::from_millis(40));
        let (message, smtp) =
            big_body_and_client(port, Duration::from_secs(3), Duration::from_secs(60));
        let from: Mailbox = "a@example.org".parse().unwrap();
        let reply = smtp.send("r", &from, &["b@example.org".into()], &message);
        assert!(reply.is_ok(), "{reply:?}");
        assert!(server.join().unwrap().1);
    }

    /// A body's reply is due when the wait its body began ends, not a whole wait after the
    /// body went out: a body written slowly, then a reply waited for as long again, made a
    /// message last 44 × `timeout_secs` where the run's room counts 24, and a run half as
    /// long again as its bound.
    #[test]
    fn a_bodys_reply_is_due_when_the_wait_its_body_began_ends() {
        let clock = Clock {
            deadline: Instant::now() + Duration::from_secs(4),
            per_read: Duration::from_secs(1),
            body_wait: Duration::from_secs(20),
            abandoned: Arc::new(AtomicBool::new(false)),
            body: Arc::new(Mutex::new(Body::NotYet)),
        };
        let until = Instant::now() + Duration::from_secs(20);
        *lock(&clock.body) = Body::Writing { until };
        assert!(clock.body_written());
        assert!(matches!(*lock(&clock.body), Body::Written { reply_due } if reply_due == until));
        // Given up meanwhile: the data's end must not go out.
        *lock(&clock.body) = Body::Writing { until };
        clock.abandoned.store(true, Ordering::SeqCst);
        assert!(!clock.body_written());
    }

    /// RFC 5321's ten minutes for the reply to a body at the default, scaled with shorter
    /// reads, never longer unless a read itself may be.
    #[test]
    fn the_reply_to_a_body_is_waited_for_ten_minutes_at_most() {
        let wait = |secs| body_reply_wait(Duration::from_secs(secs)).as_secs();
        assert_eq!(wait(30), 600);
        assert_eq!(wait(2), 40);
        assert_eq!(wait(100), 600);
        assert_eq!(wait(3600), 3600);
    }

    /// A message after the first starts only while the run's deadline leaves room for its
    /// dialogue and the wait for its body's reply: a run never outlasts 40 × timeout_secs.
    #[test]
    fn a_later_message_starts_only_while_the_run_can_wait_for_its_reply() {
        let d = Deadlines::new(Duration::from_secs(30));
        d.next().unwrap();
        let started = |ago: u64| {
            Instant::now()
                .checked_sub(Duration::from_secs(ago))
                .unwrap()
        };
        // 1200 s for the run; 120 for a message and 600 for its reply.
        d.first.set(Some(started(400)));
        assert!(d.next().is_ok());
        d.first.set(Some(started(500)));
        assert!(matches!(d.next(), Err(SendError::Transient(t)) if t.contains("next run")));
    }

    #[test]
    fn message_deadline_is_clipped_by_the_run_deadline() {
        let roomy = Deadlines::with(Duration::from_secs(100), Duration::from_secs(1000));
        let due = roomy.next().unwrap();
        assert_eq!(due, roomy.first.get().unwrap() + Duration::from_secs(100));
        let tight = Deadlines::with(Duration::from_secs(100), Duration::from_secs(50));
        let due = tight.next().unwrap();
        assert_eq!(due, tight.first.get().unwrap() + Duration::from_secs(50));
        let defaults = Deadlines::new(Duration::from_secs(30));
        assert_eq!(
            (defaults.message.as_secs(), defaults.run.as_secs()),
            (120, 1200)
        );
    }

    #[test]
    fn helo_ips_become_address_literals() {
        assert_eq!(
            client_id("192.0.2.1"),
            ClientId::Ipv4("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            client_id("[IPv6:2001:db8::1]"),
            ClientId::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            client_id("mail.example.org"),
            ClientId::Domain("mail.example.org".into())
        );
    }
}
