//! API keys.
//!
//! A key is `qg_live_<random>` or `qg_test_<random>`, where `<random>` is 32 bytes from the OS
//! CSPRNG encoded base64url without padding (43 characters, 256 bits; we require ≥ 128).
//!
//! - The **prefix** — the tag plus the first [`PREFIX_RANDOM_CHARS`] characters of the random
//!   part, e.g. `qg_live_Ab3x-9Qz` — is stored in clear, unique, used to find the key and shown
//!   in lists. It reveals 48 of the 256 bits.
//! - The **hash** is HMAC-SHA256 keyed with a server-side pepper over the whole key. A stolen
//!   database alone does not allow checking guesses. (A slow hash is not needed: the key has
//!   256 bits of entropy, unlike a password.)
//! - The plaintext is returned once by [`generate`] and never stored or logged (`Debug` of
//!   [`GeneratedKey`] redacts it).
//!
//! Test keys (`qg_test_`) authenticate like live keys; what differs (integrations run dry) is
//! decided by the caller from [`KeyMode`].

use crate::error::{AuthError, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// Random bytes per key (256 bits).
pub const RANDOM_BYTES: usize = 32;
/// Length of the base64url-no-pad encoding of [`RANDOM_BYTES`].
pub const RANDOM_CHARS: usize = 43;
/// Characters of the random part kept in the prefix.
pub const PREFIX_RANDOM_CHARS: usize = 8;
/// Length of an HMAC-SHA256 key hash.
pub const HASH_LEN: usize = 32;

/// Live or test key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// `qg_live_…`: acts on external systems.
    Live,
    /// `qg_test_…`: integrations run dry and are only logged.
    Test,
}

impl KeyMode {
    /// `live` or `test` (the `mode` column).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    /// `qg_live_` or `qg_test_`.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Live => "qg_live_",
            Self::Test => "qg_test_",
        }
    }
}

impl fmt::Display for KeyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown key mode string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API key mode {0:?} (expected live or test)")]
pub struct UnknownKeyMode(pub String);

impl FromStr for KeyMode {
    type Err = UnknownKeyMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            other => Err(UnknownKeyMode(other.to_owned())),
        }
    }
}

/// A freshly generated key. Show `plaintext` to the user once; store `prefix`, `hash`, `mode`.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The full key. Never store or log it.
    pub plaintext: String,
    /// The lookup prefix, e.g. `qg_live_Ab3x-9Qz`.
    pub prefix: String,
    /// HMAC-SHA256(pepper, plaintext).
    pub hash: [u8; HASH_LEN],
    /// Live or test.
    pub mode: KeyMode,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("plaintext", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .finish()
    }
}

/// HMAC-SHA256(`pepper`, `key`).
pub fn hash_key(key: &str, pepper: &[u8]) -> Result<[u8; HASH_LEN]> {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
        .map_err(|e| AuthError::Crypto(format!("HMAC key: {e}")))?;
    mac.update(key.as_bytes());
    Ok(mac.finalize().into_bytes().into())
}

/// Generates a new key of `mode`, hashed with `pepper` (a server secret; use ≥ 32 random
/// bytes, and keep it: changing it invalidates every key).
pub fn generate(mode: KeyMode, pepper: &[u8]) -> Result<GeneratedKey> {
    let mut random = [0u8; RANDOM_BYTES];
    OsRng.fill_bytes(&mut random);
    let encoded = URL_SAFE_NO_PAD.encode(random);
    let plaintext = format!("{}{encoded}", mode.tag());
    let prefix = format!("{}{}", mode.tag(), &encoded[..PREFIX_RANDOM_CHARS]);
    let hash = hash_key(&plaintext, pepper)?;
    Ok(GeneratedKey {
        plaintext,
        prefix,
        hash,
        mode,
    })
}

/// Parses a presented key: `Some((mode, prefix))` if it has the exact shape of one of our keys
/// (tag, then 43 base64url characters encoding 32 bytes), else `None` (answer
/// `InvalidCredentials` without touching the database).
pub fn parse(presented: &str) -> Option<(KeyMode, String)> {
    let (mode, random) = if let Some(r) = presented.strip_prefix(KeyMode::Live.tag()) {
        (KeyMode::Live, r)
    } else if let Some(r) = presented.strip_prefix(KeyMode::Test.tag()) {
        (KeyMode::Test, r)
    } else {
        return None;
    };
    if random.len() != RANDOM_CHARS
        || !random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    // Rejects non-canonical encodings (the last character carries 2 unused bits).
    let decoded = URL_SAFE_NO_PAD.decode(random).ok()?;
    if decoded.len() != RANDOM_BYTES {
        return None;
    }
    Some((
        mode,
        format!("{}{}", mode.tag(), &random[..PREFIX_RANDOM_CHARS]),
    ))
}

/// True if `presented` hashes (with `pepper`) to `stored_hash`. Constant-time comparison.
pub fn verify(presented: &str, stored_hash: &[u8], pepper: &[u8]) -> bool {
    match hash_key(presented, pepper) {
        Ok(computed) => computed.ct_eq(stored_hash).into(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PEPPER: &[u8] = b"test pepper, not a real secret!!";

    #[test]
    fn format_and_entropy() {
        for mode in [KeyMode::Live, KeyMode::Test] {
            let k = generate(mode, PEPPER).unwrap();
            assert!(k.plaintext.starts_with(mode.tag()));
            let random = &k.plaintext[mode.tag().len()..];
            assert_eq!(random.len(), RANDOM_CHARS);
            let bytes = URL_SAFE_NO_PAD.decode(random).unwrap();
            assert!(bytes.len() * 8 >= 128);
            assert_eq!(bytes.len() * 8, 256);
            assert_eq!(k.prefix.len(), mode.tag().len() + PREFIX_RANDOM_CHARS);
            assert!(k.plaintext.starts_with(&k.prefix));
            assert_eq!(k.mode, mode);
            assert_eq!(k.hash, hash_key(&k.plaintext, PEPPER).unwrap());
        }
        let a = generate(KeyMode::Live, PEPPER).unwrap();
        let b = generate(KeyMode::Live, PEPPER).unwrap();
        assert_ne!(a.plaintext, b.plaintext);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn debug_redacts_plaintext() {
        let k = generate(KeyMode::Live, PEPPER).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&k.prefix));
        assert!(!dbg.contains(&k.plaintext));
    }

    #[test]
    fn verify_true_and_false() {
        let k = generate(KeyMode::Test, PEPPER).unwrap();
        assert!(verify(&k.plaintext, &k.hash, PEPPER));
        // Wrong pepper, wrong key, truncated hash, one flipped character.
        assert!(!verify(&k.plaintext, &k.hash, b"another pepper"));
        let other = generate(KeyMode::Test, PEPPER).unwrap();
        assert!(!verify(&other.plaintext, &k.hash, PEPPER));
        assert!(!verify(&k.plaintext, &k.hash[..31], PEPPER));
        assert!(!verify(&k.plaintext, &[], PEPPER));
        let mut flipped = k.plaintext.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(!verify(
            std::str::from_utf8(&flipped).unwrap(),
            &k.hash,
            PEPPER
        ));
    }

    #[test]
    fn parse_accepts_our_keys_only() {
        let live = generate(KeyMode::Live, PEPPER).unwrap();
        assert_eq!(
            parse(&live.plaintext),
            Some((KeyMode::Live, live.prefix.clone()))
        );
        let test = generate(KeyMode::Test, PEPPER).unwrap();
        assert_eq!(parse(&test.plaintext), Some((KeyMode::Test, test.prefix)));

        let random = &live.plaintext[8..];
        assert_eq!(parse(""), None);
        assert_eq!(parse("qg_live_"), None);
        assert_eq!(parse(&format!("qg_prod_{random}")), None);
        assert_eq!(parse(&format!("QG_LIVE_{random}")), None);
        assert_eq!(parse(&format!("qg_live_{}", &random[1..])), None); // too short
        assert_eq!(parse(&format!("{}A", live.plaintext)), None); // too long
        assert_eq!(parse(&format!("{} ", live.plaintext)), None);
        assert_eq!(parse(&format!("qg_live_{}=", &random[1..])), None);
        assert_eq!(parse(&format!("qg_live_{}+", &random[1..])), None);
        assert_eq!(parse(&format!("qg_live_{}é", &random[2..])), None);
    }

    #[test]
    fn mode_names() {
        assert_eq!("live".parse::<KeyMode>().unwrap(), KeyMode::Live);
        assert_eq!("test".parse::<KeyMode>().unwrap(), KeyMode::Test);
        assert!("prod".parse::<KeyMode>().is_err());
        assert_eq!(KeyMode::Test.to_string(), "test");
        assert_eq!(serde_json::to_string(&KeyMode::Live).unwrap(), "\"live\"");
    }
}
