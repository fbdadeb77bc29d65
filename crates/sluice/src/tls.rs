//! TLS termination (rustls, through Pingora's `rustls` backend — no system TLS library
//! to install or patch): certificates loaded at start, chosen per connection by SNI, and
//! HTTP/2 offered through ALPN.

use std::collections::HashMap;
use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use pingora_rustls::sign::CertifiedKey;
use pingora_rustls::{load_certs_and_key_files, ClientHello, CryptoProvider, ResolvesServerCert};
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::tls::{CertificateConfig, TlsConfig};

/// Picks a certificate by the client's SNI name.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` certificates by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        let by_wildcard = || {
            name.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        };
        Some(
            self.exact
                .get(&name)
                .or_else(by_wildcard)
                .unwrap_or(&self.default)
                .clone(),
        )
    }
}

impl SniResolver {
    /// Load every certificate of `c`; errors carry paths under `at`.
    pub fn load(c: &TlsConfig, at: &FieldPath) -> Result<Arc<Self>, Vec<FieldError>> {
        pingora_rustls::install_default_crypto_provider();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut errors = Vec::new();
        for (i, cert) in c.certificates.iter().enumerate() {
            let cat = at.key("certificates").index(i);
            match certified(cert) {
                Ok((key, sans)) => {
                    let names = if cert.names.is_empty() {
                        sans
                    } else {
                        cert.names.clone()
                    };
                    for n in names {
                        let n = n.to_ascii_lowercase();
                        match n.strip_prefix("*.") {
                            Some(parent) => wildcard.entry(parent.to_string()),
                            None => exact.entry(n),
                        }
                        .or_insert_with(|| key.clone());
                    }
                    default.get_or_insert(key);
                }
                Err(e) => errors.push(FieldError::value(cat, e)),
            }
        }
        match default {
            Some(default) if errors.is_empty() => Ok(Arc::new(Self {
                exact,
                wildcard,
                default,
            })),
            _ => Err(errors),
        }
    }

    /// Pingora settings for one listener using this resolver.
    pub fn settings(self: &Arc<Self>, http2: bool) -> pingora_error::Result<TlsSettings> {
        // `intermediate` with empty paths: the resolver replaces them.
        let mut s = TlsSettings::intermediate("", "")?;
        s.set_cert_resolver(self.clone());
        if http2 {
            s.enable_h2();
        }
        Ok(s)
    }
}

/// A certificate with its signing key, and its DNS subject alternative names.
fn certified(c: &CertificateConfig) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let (certs, key) = load_certs_and_key_files(&c.cert, &c.key)
        .map_err(|e| format!("cannot read {} / {}: {e}", c.cert, c.key))?
        .ok_or_else(|| {
            format!(
                "no certificate in {} or no private key in {}",
                c.cert, c.key
            )
        })?;
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider installed")?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unusable private key in {}: {e}", c.key))?;
    let sans = certs
        .first()
        .map(|leaf| dns_names(leaf.as_ref()))
        .unwrap_or_default();
    if sans.is_empty() && c.names.is_empty() {
        return Err(format!(
            "{} has no DNS subject alternative name; list the host names in `names`",
            c.cert
        ));
    }
    Ok((Arc::new(CertifiedKey::new(certs, signer)), sans))
}

fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}
