//! `kafka.clusters.<name>.tls` and `.sasl`: how Sluice connects to a secured cluster.
//! Certificate verification is on by default (including the broker's host name), unlike
//! APISIX's kafka-logger. Field docs are user documentation.

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;

/// `kafka.clusters.<name>.tls:` — TLS to the brokers (`security.protocol` `ssl`, or
/// `sasl_ssl` with `sasl`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaTlsConfig {
    /// PEM file of the CA(s) that signed the brokers' certificates. Default: the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate, for brokers that require mutual TLS.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Verify the brokers' certificates and host names. Turning it off makes the
    /// connection open to interception. Default `true`.
    #[serde(default = "default_true")]
    pub verify: bool,
}

/// `kafka.clusters.<name>.sasl:` — SASL authentication (`security.protocol`
/// `sasl_plaintext`, or `sasl_ssl` with `tls`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password; use `${ENV_VAR}`.
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

const fn default_true() -> bool {
    true
}

/// librdkafka keys that `tls` and `sasl` own.
pub const SECURITY_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "enable.ssl.certificate.verification",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
];

/// The librdkafka properties for `tls` and `sasl` (empty for a plaintext cluster).
pub fn security_properties(
    tls: Option<&KafkaTlsConfig>,
    sasl: Option<&SaslConfig>,
) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => return p,
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    p.push(("security.protocol", protocol.to_string()));
    if let Some(t) = tls {
        if let Some(ca) = &t.ca_file {
            p.push(("ssl.ca.location", ca.clone()));
        }
        if let Some(c) = &t.cert_file {
            p.push(("ssl.certificate.location", c.clone()));
        }
        if let Some(k) = &t.key_file {
            p.push(("ssl.key.location", k.clone()));
        }
        p.push(("enable.ssl.certificate.verification", t.verify.to_string()));
        let hostname = if t.verify { "https" } else { "none" };
        p.push((
            "ssl.endpoint.identification.algorithm",
            hostname.to_string(),
        ));
    }
    if let Some(s) = sasl {
        p.push(("sasl.mechanism", s.mechanism.clone()));
        p.push(("sasl.username", s.username.clone()));
        p.push(("sasl.password", s.password.clone()));
    }
    p
}

/// Check `tls` and `sasl` of the cluster at `at`; `properties` must not set their keys.
pub fn check(
    tls: Option<&KafkaTlsConfig>,
    sasl: Option<&SaslConfig>,
    property_keys: &mut dyn Iterator<Item = &String>,
    at: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    if tls.is_some() || sasl.is_some() {
        for k in property_keys {
            if SECURITY_KEYS.contains(&k.as_str()) {
                errors.push(FieldError::key(
                    at.key("properties").key(k),
                    "set this with the cluster's `tls` / `sasl` fields",
                ));
            }
        }
    }
    if let Some(t) = tls {
        for (field, file) in [
            ("ca_file", &t.ca_file),
            ("cert_file", &t.cert_file),
            ("key_file", &t.key_file),
        ] {
            if let Some(f) = file {
                if let Err(e) = std::fs::metadata(f) {
                    errors.push(FieldError::value(
                        at.key("tls").key(field),
                        format!("cannot read {f}: {e}"),
                    ));
                }
            }
        }
        if t.cert_file.is_some() != t.key_file.is_some() {
            errors.push(FieldError::value(
                at.key("tls"),
                "`cert_file` and `key_file` go together (mutual TLS)",
            ));
        }
    }
    if let Some(s) = sasl {
        if !matches!(
            s.mechanism.as_str(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
        ) {
            errors.push(FieldError::value(
                at.key("sasl").key("mechanism"),
                "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
            ));
        }
        if s.username.is_empty() {
            errors.push(FieldError::value(
                at.key("sasl").key("username"),
                "must not be empty",
            ));
        }
        if s.mechanism == "PLAIN" && tls.is_none() {
            log::warn!("{at}: SASL PLAIN without `tls` sends the password in clear text");
        }
    }
}
