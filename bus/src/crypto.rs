//! Credentials at rest: AES-256-GCM with a key from the environment (`EVENTDESK_SECRETS_KEY`,
//! base64 of 32 bytes).
//!
//! A sealed value is the text `v1:` + base64(nonce (12 random bytes) ‖ ciphertext ‖ tag). The
//! associated data binds it to its row (e.g. `eventdesk:integration:slack:<tenant>`), so a
//! ciphertext copied into another tenant's row, or another column, does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

/// The key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("must be base64")]
    NotBase64,
    /// Not 32 bytes.
    #[error("must be 32 bytes (base64 of 32 random bytes), got {0}")]
    WrongLength(usize),
}

/// A sealed value could not be opened (wrong key, wrong row, or tampered with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored credential could not be decrypted (wrong EVENTDESK_SECRETS_KEY or tampered)")]
pub struct OpenError;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// Seals and opens credentials. `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    /// A box with the key `key_b64` (base64 of 32 bytes).
    pub fn from_base64(key_b64: &str) -> Result<Self, KeyError> {
        let bytes = B64
            .decode(key_b64.trim())
            .map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// A box with the raw 32-byte key.
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        let cipher =
            Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::WrongLength(key.len()))?;
        Ok(Self { cipher })
    }

    /// A fresh random key, base64 (for `EVENTDESK_SECRETS_KEY`).
    pub fn generate_key() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        B64.encode(k)
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs below the
        // AEAD's size limit (64 GiB); an empty ciphertext would only fail to open later.
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Opens a value sealed with `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, OpenError> {
        let b = sealed.strip_prefix(PREFIX).ok_or(OpenError)?;
        let raw = B64.decode(b).map_err(|_| OpenError)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(OpenError);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }

    /// Opens a value sealed from a UTF-8 string.
    pub fn open_string(&self, sealed: &str, aad: &str) -> Result<String, OpenError> {
        String::from_utf8(self.open(sealed, aad)?).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_aad() {
        let b = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let s = b.seal(b"xoxb-secret", "eventdesk:integration:slack:t1");
        assert!(s.starts_with("v1:"));
        assert!(!s.contains("xoxb"));
        assert_eq!(
            b.open_string(&s, "eventdesk:integration:slack:t1").unwrap(),
            "xoxb-secret"
        );
        // Another row, another key, or a flipped bit: refused.
        assert_eq!(b.open(&s, "eventdesk:integration:slack:t2"), Err(OpenError));
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert_eq!(
            other.open(&s, "eventdesk:integration:slack:t1"),
            Err(OpenError)
        );
        let mut raw = B64.decode(&s[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("v1:{}", B64.encode(raw));
        assert_eq!(
            b.open(&tampered, "eventdesk:integration:slack:t1"),
            Err(OpenError)
        );
        assert_eq!(b.open("v1:", "x"), Err(OpenError));
        assert_eq!(b.open("plain", "x"), Err(OpenError));
        // Fresh nonces: the same plaintext seals differently.
        assert_ne!(b.seal(b"x", "a"), b.seal(b"x", "a"));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            SecretBox::from_base64("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            SecretBox::from_base64(&B64.encode([0u8; 16])).unwrap_err(),
            KeyError::WrongLength(16)
        );
        assert!(format!("{:?}", SecretBox::from_bytes(&[7u8; 32]).unwrap()).contains("***"));
    }
}
