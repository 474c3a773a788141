//! Loopback stand-ins for the servers contact discovery talks to: an RDAP registry (HTTP on
//! 127.0.0.1 serving canned RFC 9083 answers per path) and a DNS resolver for the Abusix zone
//! (UDP, and TCP on the same port for truncated answers). Both count what they were asked.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the registry answers on one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status and body, `application/rdap+json`.
    Json(u16, String),
    /// A redirect to another URL.
    Redirect(String),
    /// Nothing until the client gives up (or 30 s pass).
    Silent,
}

/// An RDAP registry on loopback.
pub struct Rdap {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Rdap {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, a) = (routes.clone(), asked.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, a) = (r.clone(), a.clone());
                thread::spawn(move || serve(stream, &r, &a));
            }
        });
        Rdap {
            addr,
            routes,
            asked,
        }
    }

    /// The base URL a bootstrap file names: `http://127.0.0.1:port/rdap/`.
    pub fn base(&self) -> String {
        format!("http://{}/rdap/", self.addr)
    }

    /// Answer `path` (e.g. `/rdap/ip/192.0.2.1`) with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    /// The paths asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Reply>>, asked: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    asked.lock().unwrap().push(path.clone());
    let reply = routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or(Reply::Json(
            404,
            r#"{"errorCode":404,"title":"Not Found"}"#.into(),
        ));
    let mut stream = stream;
    let text = match reply {
        Reply::Json(status, body) => format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/rdap+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Redirect(to) => format!(
            "HTTP/1.1 301 Moved\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Silent => {
            // Wait for the client to hang up; bounded so a broken client cannot keep it.
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let _ = stream.read(&mut [0u8; 1]);
            return;
        }
    };
    let _ = stream.write_all(text.as_bytes());
}

/// A jCard with one `email`.
pub fn vcard(email: &str) -> String {
    format!(
        r#"["vcard",[["version",{{}},"text","4.0"],["fn",{{}},"text","Abuse desk"],["kind",{{}},"text","group"],["email",{{"type":"work"}},"text","{email}"]]]"#
    )
}

/// An IP network object with a range, a handle and entities (JSON text of the array items).
pub fn network(first: &str, last: &str, handle: &str, entities: &[String]) -> String {
    format!(
        r#"{{"rdapConformance":["rdap_level_0","cidr0"],"objectClassName":"ip network","handle":"{handle}","startAddress":"{first}","endAddress":"{last}","ipVersion":"{}","name":"TEST-NET","type":"ASSIGNED","entities":[{}]}}"#,
        if first.contains(':') { "v6" } else { "v4" },
        entities.join(",")
    )
}

/// An entity with roles, a jCard, and nested entities.
pub fn entity(roles: &[&str], email: Option<&str>, nested: &[String]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    let mut text = format!(
        r#"{{"objectClassName":"entity","handle":"E-{}","roles":[{}]"#,
        roles.len(),
        roles.join(",")
    );
    if let Some(e) = email {
        text.push_str(&format!(r#","vcardArray":{}"#, vcard(e)));
    }
    if !nested.is_empty() {
        text.push_str(&format!(r#","entities":[{}]"#, nested.join(",")));
    }
    text.push('}');
    text
}

/// A bootstrap file (RFC 9224) mapping each prefix to its base URL.
pub fn bootstrap(services: &[(&str, &str)]) -> String {
    let items: Vec<String> = services
        .iter()
        .map(|(net, url)| format!(r#"[["{net}"],["{url}"]]"#))
        .collect();
    format!(
        r#"{{"version":"1.0","publication":"2026-01-01T00:00:00Z","description":"test","services":[{}]}}"#,
        items.join(",")
    )
}

/// A DNS resolver on loopback answering TXT questions from a table (NXDOMAIN otherwise).
pub struct Dns {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
    asked: Arc<Mutex<Vec<String>>>,
    /// Answer UDP with TC set, so the client must ask again over TCP.
    truncate: Arc<Mutex<bool>>,
}

impl Dns {
    pub fn start() -> Self {
        // The same port for UDP and TCP, as a resolver has.
        let (udp, tcp) = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
            if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let truncate: Arc<Mutex<bool>> = Arc::default();
        let (r, a, t) = (records.clone(), asked.clone(), truncate.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let tc = *t.lock().unwrap();
                if let Some(reply) = answer(&buf[..n], &r, &a, tc) {
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        let (r, a) = (records.clone(), asked.clone());
        thread::spawn(move || {
            for mut stream in tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if stream.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(reply) = answer(&q, &r, &a, false) {
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = stream.write_all(&framed);
                }
            }
        });
        Dns {
            addr,
            records,
            asked,
            truncate,
        }
    }

    pub fn txt(&self, name: &str, texts: &[&str]) {
        self.records.lock().unwrap().insert(
            name.to_ascii_lowercase(),
            texts.iter().map(|t| t.to_string()).collect(),
        );
    }

    pub fn truncate_udp(&self, on: bool) {
        *self.truncate.lock().unwrap() = on;
    }

    /// The names asked so far (UDP and TCP).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn answer(
    q: &[u8],
    records: &Mutex<HashMap<String, Vec<String>>>,
    asked: &Mutex<Vec<String>>,
    truncate: bool,
) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qend = at + 4;
    let question = q.get(12..qend)?;
    let name = labels.join(".");
    asked.lock().unwrap().push(name.clone());
    let texts = records.lock().unwrap().get(&name).cloned();
    let mut m = q[..2].to_vec();
    let rcode = if texts.is_some() { 0 } else { 3 };
    let tc = if truncate { 0x0200 } else { 0 };
    m.extend_from_slice(&(0x8180u16 | tc | rcode).to_be_bytes());
    let texts = if truncate {
        vec![]
    } else {
        texts.unwrap_or_default()
    };
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&(texts.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(question);
    for t in texts {
        m.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0x0e, 0x10]);
        m.extend_from_slice(&((t.len() + 1) as u16).to_be_bytes());
        m.push(t.len() as u8);
        m.extend_from_slice(t.as_bytes());
    }
    Some(m)
}
