//! A raw-socket SMTP server on loopback that misbehaves on purpose, one fault at a time:
//! dripping continuation lines, hanging after the body, dropping the connection inside DATA,
//! 451 once then 250, 552, never offering STARTTLS. Written line by line rather than with an
//! SMTP library, because the faults are exactly what a library would not do. Switched to
//! [`Mode::Healthy`] it completes dialogues (with AUTH PLAIN/LOGIN), so a test can show that
//! the next run delivers exactly once.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

/// How the server behaves from the next connection on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete, well-behaved dialogue.
    Healthy,
    /// Answers EHLO with a `250-` line every 100 ms (well inside any read timeout) and never
    /// a last line.
    Drip,
    /// Reads the whole body and never answers it.
    HangAfterData,
    /// Answers the body with 250 after 9 s: longer than a read may wait, and than a whole
    /// dialogue may last, at `timeout_secs = 2` (a relay's slow content filter).
    SlowBodyReply,
    /// Takes every body, answering `250` with a Latin-1 byte in its text: bytes that are not
    /// UTF-8, which the client cannot read.
    UnreadableBodyReply,
    /// Takes every body and answers it with text that is no SMTP reply: each of
    /// [`NO_REPLIES`] in turn, one a body (a banner, a code of 999, lines with two codes).
    NoSmtpReplyToBody,
    /// Takes every body and answers it with 354 again, as a server one reply out of step
    /// does (a stray line after its greeting): its real answer to the body is still to come.
    GoAheadToBody,
    /// Answers the first body with 250 after 17 s, later ones at once: at `timeout_secs = 1`,
    /// a run's time for delivery (40 s) then has no room for another message and the wait
    /// for its reply (4 s and 20 s).
    SlowFirstBodyReply,
    /// Answers every body with 250 half a second after it came ([`FaultyServer::received`]
    /// has it before then).
    HalfSecondBodyReply,
    /// Answers DATA with 250 rather than 354, and reads on as if it had said 354.
    OkToData,
    /// Greets with a Latin-1 byte in the server's name.
    Latin1Greeting,
    /// Greets with a reply code and no text (`220`, which RFC 5321 allows and the client
    /// cannot read).
    BareGreeting,
    /// Takes every body, answering it with `250` and no text.
    BareOkToBody,
    /// Refuses with 550 every recipient whose address holds `refused`.
    RefuseRecipient,
    /// Answers 451 ("later") to every recipient whose address holds `deferred`: one desk's
    /// greylisting, its full mailbox.
    DeferRecipient,
    /// Answers 451 to every MAIL FROM: the relay's own "later", whoever the message is for.
    DeferSender,
    /// Answers every MAIL FROM with RFC 3207's `530 5.7.0 Must issue a STARTTLS command
    /// first`, as Postfix does with `smtpd_tls_security_level = encrypt`.
    TlsFirst,
    /// Refuses every MAIL FROM whose address holds `refused` with `553 5.7.1 sender
    /// rejected`: a relay that will not send for the operator's `report.from`.
    RefuseSender,
    /// Takes one recipient a message: answers every later RCPT with `452 4.5.3 Error: too
    /// many recipients`, as Postfix does past `smtpd_recipient_limit`.
    OneRecipient,
    /// Answers every MAIL FROM with `530 5.7.0 Authentication required`: a relay that takes
    /// mail only after a login.
    LoginFirst,
    /// Goes away in the middle of the body: stops reading once it answered DATA, and closes
    /// the connection with the body unread, which the kernel answers with a reset.
    DropMidData,
    /// Reads the whole body, to its final dot, and closes the connection without answering
    /// it (a server that queued it and fell over, a balancer giving up on a slow filter).
    DropAfterBody,
    /// Reads once what has come of the body and closes the connection: the client writes
    /// the data's end after the message's text, and when that end comes after the close, the
    /// kernel answers it with a reset, after the close the client reads first.
    CloseBeforeEndOfData,
    /// Answers the first body with 451, every later one with 250.
    TempFailThenOk,
    /// Refuses every body with 552.
    Reject552,
    /// Refuses every body with a 550 whose text carries terminal escapes, a bell and a
    /// right-to-left override.
    RejectWithControls,
    /// Healthy, and (like every mode) never offers STARTTLS: for clients that require it.
    NoStartTls,
}

/// Answers to a body that are no SMTP reply, in the order [`Mode::NoSmtpReplyToBody`] gives
/// them.
pub const NO_REPLIES: [&str; 3] = [
    "Thank you, message queued\r\n",
    "999 what\r\n",
    "250-2.0.0 queued\r\n550 5.7.1 refused\r\n",
];

/// What the server saw and took.
#[derive(Default)]
struct Log {
    /// Every command line received, without CRLF, in order.
    commands: Vec<String>,
    /// Bodies answered with 250.
    accepted: Vec<Vec<u8>>,
    /// Bodies received completely, whatever the answer.
    received: Vec<Vec<u8>>,
    /// AUTH logins received, as (user, password).
    logins: Vec<(String, String)>,
}

/// A running server; it serves until the test process ends.
pub struct FaultyServer {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Log>>,
    connections: Arc<AtomicUsize>,
    bodies_answered: Arc<AtomicUsize>,
    /// Connections closed with the body's text read, nothing unread, and the data's end yet
    /// to come.
    closed_before_end: Arc<AtomicUsize>,
}

impl FaultyServer {
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = FaultyServer {
            port,
            mode: Arc::new(Mutex::new(mode)),
            log: Arc::default(),
            connections: Arc::default(),
            bodies_answered: Arc::default(),
            closed_before_end: Arc::default(),
        };
        let shared = server.share();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let session = shared.share();
                std::thread::spawn(move || {
                    let _ = session.serve(stream);
                });
            }
        });
        server
    }

    fn share(&self) -> Self {
        FaultyServer {
            port: self.port,
            mode: self.mode.clone(),
            log: self.log.clone(),
            connections: self.connections.clone(),
            bodies_answered: self.bodies_answered.clone(),
            closed_before_end: self.closed_before_end.clone(),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Bodies the server answered with 250.
    pub fn accepted(&self) -> Vec<Vec<u8>> {
        self.log.lock().unwrap().accepted.clone()
    }

    /// Bodies the server read to the end, answered or not.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.log.lock().unwrap().received.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.log.lock().unwrap().commands.clone()
    }

    pub fn logins(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().logins.clone()
    }

    /// How many connections [`Mode::CloseBeforeEndOfData`] closed before the data's end came.
    pub fn closed_before_end(&self) -> usize {
        self.closed_before_end.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mode = *self.mode.lock().unwrap();
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        let mut say = |text: &str| -> std::io::Result<()> {
            out.write_all(text.as_bytes())?;
            out.flush()
        };
        // Bytes that are not text, written as they are.
        let mut raw = input.get_ref().try_clone()?;
        match mode {
            Mode::Latin1Greeting => raw.write_all(b"220 mail.m\xfcller.test ESMTP\r\n")?,
            Mode::BareGreeting => say("220\r\n")?,
            _ => say("220 faulty.test ESMTP\r\n")?,
        }
        let mut line = String::new();
        // Recipients taken in this dialogue.
        let mut recipients = 0;
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let command = line.trim_end_matches(['\r', '\n']).to_string();
            if command.to_ascii_uppercase().starts_with("RCPT") && mode == Mode::OneRecipient {
                recipients += 1;
                if recipients > 1 {
                    say("452 4.5.3 Error: too many recipients\r\n")?;
                    continue;
                }
            }
            self.log.lock().unwrap().commands.push(command.clone());
            let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" if mode == Mode::Drip => {
                    say("250-faulty.test\r\n")?;
                    loop {
                        std::thread::sleep(Duration::from_millis(100));
                        // Ends when the client has gone.
                        say("250-x\r\n")?;
                    }
                }
                "EHLO" => say(
                    "250-faulty.test\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000\r\n",
                )?,
                "RCPT" if mode == Mode::RefuseRecipient && command.contains("refused") => {
                    say("550 5.1.1 mailbox unavailable\r\n")?
                }
                "MAIL" if mode == Mode::TlsFirst => {
                    say("530 5.7.0 Must issue a STARTTLS command first\r\n")?
                }
                "MAIL" if mode == Mode::RefuseSender && command.contains("refused") => {
                    say("553 5.7.1 sender rejected: not yours\r\n")?
                }
                "MAIL" if mode == Mode::LoginFirst => say("530 5.7.0 Authentication required\r\n")?,
                "MAIL" if mode == Mode::DeferSender => {
                    say("451 4.3.2 system not accepting messages now\r\n")?
                }
                "RCPT" if mode == Mode::DeferRecipient && command.contains("deferred") => {
                    say("451 4.2.0 mailbox busy, try again later\r\n")?
                }
                "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => say("250 ok\r\n")?,
                "AUTH" => {
                    let login = self.auth(&command, &mut input, &mut say)?;
                    self.log.lock().unwrap().logins.push(login);
                    say("235 2.7.0 authenticated\r\n")?;
                }
                "STARTTLS" => say("502 5.5.1 STARTTLS not offered\r\n")?,
                "QUIT" => {
                    say("221 bye\r\n")?;
                    return Ok(());
                }
                "DATA" if mode == Mode::CloseBeforeEndOfData => {
                    say("354 go ahead\r\n")?;
                    let got = input.fill_buf()?.to_vec();
                    input.consume(got.len());
                    let stream = input.get_ref();
                    stream.set_nonblocking(true)?;
                    let queued = stream.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
                    if !queued && !got.ends_with(b"\r\n.\r\n") {
                        self.closed_before_end.fetch_add(1, Ordering::SeqCst);
                    }
                    return Ok(());
                }
                "DATA" if mode == Mode::DropMidData => {
                    say("354 go ahead\r\n")?;
                    // The body arrives, and is never read.
                    std::thread::sleep(Duration::from_millis(300));
                    return Ok(());
                }
                "DATA" => {
                    match mode {
                        Mode::OkToData => say("250 ok\r\n")?,
                        _ => say("354 go ahead\r\n")?,
                    }
                    let mut body = Vec::new();
                    loop {
                        line.clear();
                        if input.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                        body.extend_from_slice(unstuffed.as_bytes());
                    }
                    self.log.lock().unwrap().received.push(body.clone());
                    match mode {
                        Mode::DropAfterBody => {
                            input.get_ref().shutdown(Shutdown::Both)?;
                            return Ok(());
                        }
                        Mode::HangAfterData => loop {
                            // Never answers; ends when the client has gone.
                            line.clear();
                            if input.read_line(&mut line)? == 0 {
                                return Ok(());
                            }
                        },
                        Mode::UnreadableBodyReply => {
                            self.log.lock().unwrap().accepted.push(body);
                            raw.write_all(b"250 2.0.0 Nachricht \xfcbernommen\r\n")?
                        }
                        Mode::SlowFirstBodyReply
                            if self.bodies_answered.fetch_add(1, Ordering::SeqCst) == 0 =>
                        {
                            std::thread::sleep(Duration::from_secs(17));
                            self.log.lock().unwrap().accepted.push(body);
                            say("250 2.0.0 queued after a long look\r\n")?
                        }
                        Mode::NoSmtpReplyToBody => {
                            let k = self.bodies_answered.fetch_add(1, Ordering::SeqCst);
                            say(NO_REPLIES[k % NO_REPLIES.len()])?
                        }
                        Mode::GoAheadToBody => say("354 go ahead\r\n")?,
                        Mode::BareOkToBody => {
                            self.log.lock().unwrap().accepted.push(body);
                            say("250\r\n")?
                        }
                        Mode::SlowBodyReply => {
                            std::thread::sleep(std::time::Duration::from_secs(9));
                            self.log.lock().unwrap().accepted.push(body);
                            say("250 2.0.0 queued after a long look\r\n")?
                        }
                        Mode::HalfSecondBodyReply => {
                            std::thread::sleep(Duration::from_millis(500));
                            self.log.lock().unwrap().accepted.push(body);
                            say("250 2.0.0 queued\r\n")?
                        }
                        Mode::Reject552 => say("552 5.3.4 message too big for this desk\r\n")?,
                        Mode::RejectWithControls => {
                            say("550 5.7.1 \x1b]0;owned\x07\x1b[2Jdenied \u{202e}gnp.exe\r\n")?
                        }
                        Mode::TempFailThenOk
                            if self.bodies_answered.fetch_add(1, Ordering::SeqCst) == 0 =>
                        {
                            say("451 4.3.0 try again later\r\n")?
                        }
                        _ => {
                            self.log.lock().unwrap().accepted.push(body);
                            say("250 2.0.0 queued\r\n")?
                        }
                    }
                }
                _ => say("500 5.5.2 unknown command\r\n")?,
            }
        }
    }

    /// AUTH PLAIN (with or without an initial response) or LOGIN: the user and password.
    fn auth(
        &self,
        command: &str,
        input: &mut BufReader<TcpStream>,
        say: &mut impl FnMut(&str) -> std::io::Result<()>,
    ) -> std::io::Result<(String, String)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |text: &str| {
            String::from_utf8_lossy(&b64.decode(text.trim()).unwrap_or_default()).into_owned()
        };
        let mut next = |say: &mut dyn FnMut(&str) -> std::io::Result<()>, prompt: &str| {
            say(prompt)?;
            let mut line = String::new();
            input.read_line(&mut line)?;
            Ok::<_, std::io::Error>(line)
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        if words
            .get(1)
            .is_some_and(|m| m.eq_ignore_ascii_case("LOGIN"))
        {
            let user = decode(&next(say, "334 VXNlcm5hbWU6\r\n")?);
            let password = decode(&next(say, "334 UGFzc3dvcmQ6\r\n")?);
            return Ok((user, password));
        }
        let initial = match words.get(2) {
            Some(r) => r.to_string(),
            None => next(say, "334 \r\n")?,
        };
        let plain = decode(&initial);
        let mut parts = plain.split('\0').skip(1);
        Ok((
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        ))
    }
}
