//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Every delivery carries `webhook-id` (the delivery's id, the same on every retry: receivers
//! deduplicate on it), `webhook-timestamp` (seconds since the epoch, of this attempt) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`. The secret is
//! `whsec_` + base64 of the key bytes. While a rotated secret is in its grace period, both
//! secrets sign: the header then holds two space-separated signatures, and a receiver that
//! knows either one accepts the message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Key bytes of a generated secret (Standard Webhooks: 24 to 64).
const KEY_BYTES: usize = 32;

/// A secret that is not `whsec_` + base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a webhook secret (whsec_ + base64)")]
pub struct BadSecret;

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut k = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut k);
    format!("{SECRET_PREFIX}{}", B64.encode(k))
}

/// The key bytes of a secret.
pub fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b = secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
    let key = B64.decode(b).map_err(|_| BadSecret)?;
    if key.is_empty() {
        return Err(BadSecret);
    }
    Ok(key)
}

/// `v1,<base64 signature>` of one message with one secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = key_of(secret)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let sigs = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sigs.join(" "))
}

/// Whether `header` holds a valid `v1` signature of the message by `secret` (what a receiver
/// does; constant-time comparison).
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(key) = key_of(secret) else {
        return false;
    };
    header.split(' ').any(|sig| {
        let Some(b) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = B64.decode(b) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The example of the Standard Webhooks reference implementations.
    #[test]
    fn matches_the_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, ts, body, &sig));
        assert!(!verify(secret, id, ts + 1, body, &sig));
        assert!(!verify(secret, id, ts, b"{}", &sig));
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let (old, new) = (generate_secret(), generate_secret());
        assert!(old.starts_with("whsec_") && old != new);
        assert_eq!(key_of(&old).unwrap().len(), 32);
        let h = signature_header(&[&new, &old], "id", 5, b"body").unwrap();
        assert_eq!(h.split(' ').count(), 2);
        assert!(verify(&old, "id", 5, b"body", &h));
        assert!(verify(&new, "id", 5, b"body", &h));
        assert!(!verify(&generate_secret(), "id", 5, b"body", &h));
        assert_eq!(key_of("nope"), Err(BadSecret));
        assert_eq!(key_of("whsec_"), Err(BadSecret));
    }
}
