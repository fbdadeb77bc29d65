//! A WebSocket client for tests: tungstenite's own client (not Sluice's code) over a
//! blocking socket with a read timeout, so every wait is bounded; plain or over TLS
//! (rustls). And the state of the server's side of a TCP connection, from
//! `/proc/net/tcp`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// An open connection.
pub type Ws = WebSocket<TcpStream>;

/// An open connection over TLS.
pub type TlsWs = WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// Open `path` on the TLS listener at `port`, trusting the certificate in `ca_pem`
/// for `name` (no client headers).
pub fn connect_tls(port: u16, path: &str, ca_pem: &str, name: &str) -> TlsWs {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = format!("wss://{name}:{port}{path}")
        .into_client_request()
        .unwrap();
    match tungstenite::client(req, rustls::StreamOwned::new(conn, tcp)) {
        Ok((ws, _)) => ws,
        Err(e) => panic!("handshake: {e}"),
    }
}

/// The TCP state (`/proc/net/tcp`'s `st`: 1 established, 4 FIN-WAIT-1, ...) of the
/// server's side of the connection from local port `client` to port `server`, if it
/// still exists.
pub fn server_side_state(server: u16, client: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let port = |a: &str| {
            a.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        (port(f.get(1)?)? == server && port(f.get(2)?)? == client)
            .then(|| u8::from_str_radix(f.get(3)?, 16).ok())
            .flatten()
    })
}

/// Open `path` (with its query) on `port` with extra request headers; the refusal's
/// status when the server does not upgrade.
pub fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

/// What the server sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    /// A text frame, as JSON.
    Json(serde_json::Value),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The server closed with this code and reason.
    Closed(u16, String),
}

/// The next data frame or close within `limit` (pings are answered by tungstenite).
pub fn next<S: Read + Write>(ws: &mut WebSocket<S>, limit: Duration) -> Got {
    let deadline = Instant::now() + limit;
    loop {
        assert!(Instant::now() < deadline, "no frame within {limit:?}");
        match ws.read() {
            Ok(Message::Text(t)) => return Got::Json(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Binary(b)) => return Got::Binary(b.to_vec()),
            Ok(Message::Close(f)) => {
                return f.map_or(Got::Closed(1005, String::new()), |f| {
                    Got::Closed(u16::from(f.code), f.reason.to_string())
                })
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Got::Closed(1006, "connection closed".into())
            }
            Err(e) => return Got::Closed(1006, e.to_string()),
        }
    }
}

/// The next text frame as JSON; panics on anything else.
pub fn json(ws: &mut Ws, limit: Duration) -> serde_json::Value {
    match next(ws, limit) {
        Got::Json(v) => v,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// Send a text frame.
pub fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).unwrap();
}

/// Close normally.
pub fn close(mut ws: Ws) {
    let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }));
    let _ = ws.flush();
}
