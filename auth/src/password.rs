//! Password hashing: Argon2id (v0x13) with the OWASP parameters m = 19 456 KiB, t = 2, p = 1,
//! a 16-byte random salt and a 32-byte output, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! Verification reads the parameters from the stored PHC string, so hashes made with older
//! parameters keep verifying after the parameters are raised.
//!
//! Login must cost the same whether or not the username exists, or response times reveal which
//! usernames are taken: when the user is unknown, call [`dummy_verify`] (a real verification
//! against a fixed hash) and answer `InvalidCredentials` as for a wrong password.

use crate::error::{AuthError, Result};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use eventdesk_domain::values::PasswordHash;
use rand::rngs::OsRng;
use std::sync::LazyLock;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Iterations (OWASP: 2).
pub const T_COST: u32 = 2;
/// Parallelism (OWASP: 1).
pub const P_COST: u32 = 1;

/// The hasher with the OWASP parameters.
fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(Params::DEFAULT_OUTPUT_LEN))
        .map_err(|e| AuthError::Crypto(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random salt. The result is what the user aggregate stores.
pub fn hash_password(password: &str) -> Result<PasswordHash> {
    let salt = SaltString::generate(&mut OsRng);
    let phc = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Crypto(format!("argon2 hash: {e}")))?
        .to_string();
    PasswordHash::parse(phc).map_err(|e| AuthError::Crypto(format!("argon2 output: {e}")))
}

/// True if `password` matches the PHC string `phc`. A malformed `phc` verifies nothing (false).
/// The comparison of the outputs is constant-time (done by the `password-hash` crate).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = argon2::password_hash::PasswordHash::new(phc) else {
        tracing::warn!("stored password hash is not a valid PHC string");
        return false;
    };
    // `Argon2::default()` is only the verifier; the parameters come from `parsed`.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a random password, computed once (first use) with the same parameters as real
/// hashes, so that [`dummy_verify`] costs what a real verification costs.
static DUMMY_HASH: LazyLock<Option<PasswordHash>> = LazyLock::new(|| {
    let mut random = [0u8; 32];
    rand::RngCore::fill_bytes(&mut OsRng, &mut random);
    match hash_password(&hex::encode(random)) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "could not compute the dummy password hash");
            None
        }
    }
});

/// Runs a full verification of `password` against a fixed hash and throws the answer away.
/// Call it when the username is unknown, so the login takes as long as for a known user.
pub fn dummy_verify(password: &str) {
    if let Some(hash) = DUMMY_HASH.as_ref() {
        let _ = verify_password(password, hash.expose());
    }
}

/// Computes the dummy hash now (e.g. at start-up), so the first login for an unknown user does
/// not pay for hashing *and* verifying.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// The shortest password accepted anywhere (NIST SP 800-63B: at least 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest (Argon2id hashes any length, but unbounded input is a denial-of-service lever).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Checks a new password's length; the message names no field (callers add it).
pub fn check_new_password(password: &str) -> std::result::Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"))
    } else if n > MAX_PASSWORD_CHARS {
        Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_is_argon2id_phc_with_owasp_parameters() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(
            h.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            h.expose()
        );
        // Salted: the same password hashes differently.
        let h2 = hash_password("correct horse battery staple").unwrap();
        assert_ne!(h.expose(), h2.expose());
    }

    #[test]
    fn verify_accepts_the_password_and_rejects_others() {
        let h = hash_password("s3cret pässword").unwrap();
        assert!(verify_password("s3cret pässword", h.expose()));
        assert!(!verify_password("s3cret password", h.expose()));
        assert!(!verify_password("", h.expose()));
    }

    #[test]
    fn malformed_hash_verifies_nothing() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "not a phc string"));
        assert!(!verify_password(
            "x",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
        ));
    }

    #[test]
    fn hashes_with_other_parameters_still_verify() {
        // A hash made with cheaper parameters (as an older release might have) verifies with
        // the parameters recorded in it.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let phc = cheap.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password("pw", &phc));
        assert!(!verify_password("pw2", &phc));
    }

    #[test]
    fn dummy_verify_runs_a_real_verification() {
        warm_up();
        assert!(DUMMY_HASH.is_some());
        let start = std::time::Instant::now();
        dummy_verify("whatever");
        // Not a timing assertion (CI is noisy): only that it did real Argon2 work.
        assert!(start.elapsed() > std::time::Duration::from_millis(1));
    }
}
