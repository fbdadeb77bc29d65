//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, one space-separated entry per secret (key rotation).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Decode a secret: `whsec_<base64>`, or raw bytes without the prefix.
pub fn decode_secret(s: &str) -> Result<Vec<u8>, String> {
    match s.strip_prefix("whsec_") {
        Some(b64) => STANDARD
            .decode(b64)
            .map_err(|_| "the part after `whsec_` is not base64".to_string()),
        None if s.is_empty() => Err("empty secret".into()),
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// The `webhook-signature` header value for `keys` (empty when there is no key).
pub fn sign(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            continue;
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        out.push(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                std::slice::from_ref(&key),
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = sign(&[key, b"other".to_vec()], "m", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
        assert!(decode_secret("whsec_!!").is_err());
        assert_eq!(decode_secret("plain").unwrap(), b"plain");
    }
}
