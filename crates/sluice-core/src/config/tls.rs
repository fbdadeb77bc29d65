//! `server.tls:` — TLS termination: HTTPS listeners, their certificates (chosen by SNI)
//! and HTTP/2 through ALPN. Field docs are user documentation.

use std::net::SocketAddr;

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;

/// `server.tls:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// HTTPS listen addresses, as `ip:port` (e.g. `["0.0.0.0:8443"]`).
    pub listen: Vec<String>,
    /// Certificates. A client's SNI name picks the certificate whose `names` (default:
    /// the certificate's DNS subject alternative names) match it, exactly or by
    /// `*.domain` wildcard; clients without SNI, or with an unknown name, get the first.
    pub certificates: Vec<CertificateConfig>,
    /// Offer HTTP/2 through ALPN (with HTTP/1.1 as fallback). Default `true`.
    #[serde(default = "default_true")]
    pub http2: bool,
}

/// `server.tls.certificates[]:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Host names this certificate serves; default its DNS subject alternative names.
    #[serde(default)]
    pub names: Vec<String>,
}

const fn default_true() -> bool {
    true
}

impl TlsConfig {
    /// Check addresses and lists; `taken` are the plain listeners and the admin one.
    pub fn check(&self, at: &FieldPath, taken: &[&str], errors: &mut Vec<FieldError>) {
        if self.listen.is_empty() {
            errors.push(FieldError::value(
                at.key("listen"),
                "at least one address is needed",
            ));
        }
        for (i, l) in self.listen.iter().enumerate() {
            if l.parse::<SocketAddr>().is_err() {
                errors.push(FieldError::value(
                    at.key("listen").index(i),
                    format!("{l:?} is not an `ip:port` address"),
                ));
            } else if taken.contains(&l.as_str()) {
                errors.push(FieldError::value(
                    at.key("listen").index(i),
                    "already used by a plain HTTP or the admin listener",
                ));
            }
        }
        if self.certificates.is_empty() {
            errors.push(FieldError::value(
                at.key("certificates"),
                "at least one certificate is needed",
            ));
        }
    }
}
