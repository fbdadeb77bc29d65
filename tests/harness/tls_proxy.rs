//! A TLS-terminating TCP proxy (tokio-rustls) for Kafka tests: Tansu 0.6 does not
//! terminate TLS itself, so it listens in plain text and advertises this proxy's port;
//! every client connection then goes through TLS with the given certificate.

use std::net::TcpListener as StdListener;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A running proxy; stops when dropped.
pub struct TlsProxy {
    /// Its port.
    pub port: u16,
    _rt: tokio::runtime::Runtime,
}

impl TlsProxy {
    /// Listen on `listener` with the PEM `cert`/`key` files, forwarding to `target`.
    pub fn start(listener: StdListener, cert: &str, key: &str, target: u16) -> Self {
        let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
            std::fs::File::open(cert).unwrap(),
        ))
        .collect::<Result<_, _>>()
        .unwrap();
        let key: PrivateKeyDer = rustls_pemfile::private_key(&mut std::io::BufReader::new(
            std::fs::File::open(key).unwrap(),
        ))
        .unwrap()
        .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake (an untrusting client) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                });
            }
        });
        Self { port, _rt: rt }
    }
}
