//! A real SMTP server on loopback for the mail tests: mailin's protocol state machine, served
//! plain or with STARTTLS by mailin-embedded, or behind implicit TLS by a session loop over
//! rustls. It records every accepted message and can be told to answer RCPT with an error.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};

use super::repo;

/// How the server talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    ImplicitTls,
}

/// One accepted message.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    pub user: Option<String>,
}

/// What the server says to RCPT (or MAIL): `None` accepts.
pub type RcptAnswer = Arc<Mutex<Option<(u16, String)>>>;

/// What the server says to RCPT of the recipients whose address holds the text: `None`
/// accepts.
pub type RcptOfAnswer = Arc<Mutex<Option<(String, u16, String)>>>;

/// Called with each message once it is accepted, before the client hears so: a test does there
/// what happens to a host between a server's acceptance and the sender's recording of it.
pub type AcceptHook = Arc<Mutex<Option<Box<dyn FnMut(&Delivery) + Send>>>>;

#[derive(Clone)]
struct Recorder {
    inbox: Arc<Mutex<Vec<Delivery>>>,
    mail: RcptAnswer,
    rcpt: RcptAnswer,
    rcpt_of: RcptOfAnswer,
    on_accept: AcceptHook,
    login: Option<(String, String)>,
    current: Delivery,
    user: Option<String>,
}

impl Recorder {
    fn check_login(&mut self, user: &str, password: &str) -> Response {
        match &self.login {
            Some((u, p)) if u == user && p == password => {
                self.user = Some(user.to_string());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        if let Some((code, text)) = self.mail.lock().unwrap().clone() {
            return Response::custom(code, text);
        }
        self.current = Delivery {
            from: from.to_string(),
            user: self.user.clone(),
            ..Delivery::default()
        };
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        // The answer for one recipient first, then the one for all others.
        if let Some((of, code, text)) = self.rcpt_of.lock().unwrap().clone()
            && to.contains(&of)
        {
            return Response::custom(code, text);
        }
        if let Some((code, text)) = self.rcpt.lock().unwrap().clone() {
            return Response::custom(code, text);
        }
        self.current.to.push(to.to_string());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let delivery = std::mem::take(&mut self.current);
        if let Some(hook) = self.on_accept.lock().unwrap().as_mut() {
            hook(&delivery);
        }
        self.inbox.lock().unwrap().push(delivery);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check_login(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check_login(user, password)
    }
}

/// A running server; it serves until the test process ends.
pub struct MailServer {
    pub port: u16,
    pub inbox: Arc<Mutex<Vec<Delivery>>>,
    pub mail: RcptAnswer,
    pub rcpt: RcptAnswer,
    pub rcpt_of: RcptOfAnswer,
    pub on_accept: AcceptHook,
    /// Behind implicit TLS: once a message is taken, the server drops the connection without
    /// answering and without TLS's close_notify (a process that fell over, a balancer giving
    /// up), as most such closes come.
    pub drop_after_body: Arc<std::sync::atomic::AtomicBool>,
}

impl MailServer {
    pub fn received(&self) -> Vec<Delivery> {
        self.inbox.lock().unwrap().clone()
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A port on which nothing listens (for "server down").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server; `port` 0 picks a free one. `login` enables AUTH (after TLS).
pub fn start(security: Security, login: Option<(&str, &str)>, port: u16) -> MailServer {
    install_crypto();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let mail: RcptAnswer = Arc::new(Mutex::new(None));
    let rcpt: RcptAnswer = Arc::new(Mutex::new(None));
    let rcpt_of: RcptOfAnswer = Arc::new(Mutex::new(None));
    let on_accept: AcceptHook = Arc::new(Mutex::new(None));
    let drop_after_body = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorder = Recorder {
        inbox: inbox.clone(),
        mail: mail.clone(),
        rcpt: rcpt.clone(),
        rcpt_of: rcpt_of.clone(),
        on_accept: on_accept.clone(),
        login: login.map(|(u, p)| (u.to_string(), p.to_string())),
        current: Delivery::default(),
        user: None,
    };
    let tls = repo().join("fixtures/tls");
    match security {
        Security::Plain | Security::StartTls => {
            let mut server = mailin_embedded::Server::new(recorder);
            server
                .with_name("localhost")
                .with_tcp_listener(listener)
                .with_num_threads(2);
            if security == Security::StartTls {
                server
                    .with_ssl(mailin_embedded::SslConfig::SelfSigned {
                        cert_path: tls.join("server.pem").to_str().unwrap().to_string(),
                        key_path: tls.join("server.key").to_str().unwrap().to_string(),
                    })
                    .unwrap();
            }
            if login.is_some() {
                server
                    .with_auth(AuthMechanism::Plain)
                    .with_auth(AuthMechanism::Login);
            }
            std::thread::spawn(move || {
                let _ = server.serve();
            });
        }
        Security::ImplicitTls => {
            let config = Arc::new(tls_config(&tls));
            let with_auth = login.is_some();
            let drop_after_body = drop_after_body.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let config = config.clone();
                    let handler = recorder.clone();
                    let with_auth = with_auth;
                    let drop_after_body = drop_after_body.clone();
                    std::thread::spawn(move || {
                        let _ = serve_tls(stream, config, handler, with_auth, &drop_after_body);
                    });
                }
            });
        }
    }
    MailServer {
        port,
        inbox,
        mail,
        rcpt,
        rcpt_of,
        on_accept,
        drop_after_body,
    }
}

fn tls_config(dir: &std::path::Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_file(dir.join("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

/// One SMTP session inside TLS from the first byte (SMTPS).
fn serve_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    handler: Recorder,
    with_auth: bool,
    drop_after_body: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let inbox = handler.inbox.clone();
    let remote = tcp.peer_addr()?.ip();
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut stream = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut builder = SessionBuilder::new("localhost");
    if with_auth {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login);
    }
    let mut session = builder.build(remote, handler);
    session.tls_active();
    let reply =
        |stream: &mut BufReader<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>,
         r: &Response| {
            r.write_to(stream.get_mut())?;
            stream.get_mut().flush()
        };
    reply(&mut stream, &session.greeting())?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let taken = inbox.lock().unwrap().len();
        let r = session.process(&line);
        if drop_after_body.load(std::sync::atomic::Ordering::SeqCst)
            && inbox.lock().unwrap().len() > taken
        {
            // The TCP connection goes, with no TLS record after the body.
            stream.get_ref().sock.shutdown(std::net::Shutdown::Both)?;
            return Ok(());
        }
        match r.action {
            Action::Reply => reply(&mut stream, &r)?,
            Action::Close => {
                reply(&mut stream, &r)?;
                return Ok(());
            }
            Action::UpgradeTls | Action::NoReply => {}
        }
    }
}
