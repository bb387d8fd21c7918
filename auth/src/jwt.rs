//! Access tokens: JWTs signed with HS256 (default) or RS256.
//!
//! Rules (each has a test below):
//! - the algorithm comes from the [`JwtConfig`], **never from the token header**: verification
//!   accepts exactly one algorithm, so `alg: none`, an HS256 token presented to an RS256
//!   configuration (including the classic "HMAC signed with the RSA public key" confusion) and
//!   the reverse are all refused;
//! - `exp`, `nbf`, `iss`, `aud` and `sub` must be present; `exp` and `nbf` are checked with a
//!   leeway of [`LEEWAY_SECS`] seconds; `iss` and `aud` must equal the configured values;
//! - every failure is the same [`AuthError::InvalidToken`] (the reason is logged at debug
//!   level, never returned);
//! - an HS256 secret shorter than [`MIN_HS256_SECRET_BYTES`] is refused at configuration time.
//!
//! Verification reads the clock itself (the `jsonwebtoken` crate checks `exp`/`nbf` against the
//! system time); issuing takes `now` so that tests can mint expired or future tokens.

use crate::error::{AuthError, Result};
use chrono::{DateTime, TimeDelta, Utc};
use eventdesk_domain::values::Role;
use eventdesk_domain::{TenantId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use uuid::Uuid;

/// Minimum HS256 secret length (RFC 7518 §3.2: a key of at least the hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Default `iss`.
pub const DEFAULT_ISSUER: &str = "eventdesk";
/// Default `aud`.
pub const DEFAULT_AUDIENCE: &str = "eventdesk-api";
/// Default access-token lifetime (15 minutes).
pub const DEFAULT_ACCESS_TTL: TimeDelta = TimeDelta::minutes(15);

/// The signing algorithms we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (≥ 32 bytes).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA ≥ 2048 bits), PEM key files.
    Rs256,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

/// Signing and verification settings. Build once at start-up and share (`Clone` is cheap
/// enough; wrap in an `Arc` if you like). `Debug` never prints key material.
#[derive(Clone)]
pub struct JwtConfig {
    algorithm: JwtAlgorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `iss` written and required (default [`DEFAULT_ISSUER`]).
    pub issuer: String,
    /// `aud` written and required (default [`DEFAULT_AUDIENCE`]).
    pub audience: String,
    /// Lifetime of an access token (default [`DEFAULT_ACCESS_TTL`]).
    pub access_ttl: TimeDelta,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("keys", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

impl JwtConfig {
    fn with_keys(algorithm: JwtAlgorithm, encoding: EncodingKey, decoding: DecodingKey) -> Self {
        Self {
            algorithm,
            encoding,
            decoding,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
        }
    }

    /// HS256 with `secret` (raw bytes; at least [`MIN_HS256_SECRET_BYTES`], else
    /// [`AuthError::SecretTooShort`]).
    pub fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(AuthError::SecretTooShort {
                min: MIN_HS256_SECRET_BYTES,
                actual: secret.len(),
            });
        }
        Ok(Self::with_keys(
            JwtAlgorithm::Hs256,
            EncodingKey::from_secret(secret),
            DecodingKey::from_secret(secret),
        ))
    }

    /// RS256 from PEM bytes: the private key (PKCS#1 or PKCS#8) and the public key (PKCS#1 or
    /// SPKI). The pair is checked (a probe is signed and verified), so a mismatched pair fails
    /// here rather than at the first login.
    pub fn rs256_from_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self> {
        let encoding = EncodingKey::from_rsa_pem(private_pem)
            .map_err(|e| AuthError::Config(format!("RS256 private key: {e}")))?;
        let decoding = DecodingKey::from_rsa_pem(public_pem)
            .map_err(|e| AuthError::Config(format!("RS256 public key: {e}")))?;
        let probe = b"eventdesk-auth key pair probe";
        let signature = jsonwebtoken::crypto::sign(probe, &encoding, Algorithm::RS256)
            .map_err(|e| AuthError::Config(format!("RS256 private key cannot sign: {e}")))?;
        match jsonwebtoken::crypto::verify(&signature, probe, &decoding, Algorithm::RS256) {
            Ok(true) => Ok(Self::with_keys(JwtAlgorithm::Rs256, encoding, decoding)),
            Ok(false) => Err(AuthError::Config(
                "RS256 public key does not match the private key".to_owned(),
            )),
            Err(e) => Err(AuthError::Config(format!("RS256 public key: {e}"))),
        }
    }

    /// RS256 from two PEM files (see [`JwtConfig::rs256_from_pem`]).
    pub fn rs256_from_files(
        private_path: impl AsRef<Path>,
        public_path: impl AsRef<Path>,
    ) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| AuthError::Config(format!("reading {}: {e}", p.display())))
        };
        Self::rs256_from_pem(&read(private_path.as_ref())?, &read(public_path.as_ref())?)
    }

    /// Sets the issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Sets the audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Sets the access-token lifetime.
    pub fn with_access_ttl(mut self, ttl: TimeDelta) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// The configured algorithm (the only one [`verify`] accepts).
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(self.algorithm.jwt());
        v.algorithms = vec![self.algorithm.jwt()];
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The tenant id.
    pub tid: Uuid,
    /// The role: a built-in [`Role`] name, or `custom:<role id>` for the holder of a tenant's
    /// custom role (so that code reading only built-in roles refuses the token).
    pub role: String,
    /// For a custom role's holder: their base built-in role, which decides incident scoping
    /// only (ADR 0011). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_role: Option<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Unique token id (UUID v4).
    pub jti: Uuid,
}

impl Claims {
    /// The user.
    pub fn user_id(&self) -> UserId {
        UserId(self.sub)
    }

    /// The tenant.
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.tid)
    }

    /// The built-in role, if `role` names one (`None` for a custom role).
    pub fn builtin_role(&self) -> Option<Role> {
        self.role.parse().ok()
    }

    /// The custom role, if `role` is `custom:<role id>`.
    pub fn custom_role_id(&self) -> Option<Uuid> {
        self.role.strip_prefix(CUSTOM_ROLE_PREFIX)?.parse().ok()
    }

    /// A custom role holder's base built-in role.
    pub fn base_role(&self) -> Option<Role> {
        self.base_role.as_deref()?.parse().ok()
    }
}

/// The prefix of the `role` claim of a custom role's holder.
pub const CUSTOM_ROLE_PREFIX: &str = "custom:";

/// Issues an access token for `user` of `tenant` with `role`, valid from `now` for
/// `cfg.access_ttl`. Returns the token and its lifetime in seconds (the `expires_in` of the
/// login response).
pub fn issue(
    cfg: &JwtConfig,
    user: UserId,
    tenant: TenantId,
    role: &str,
    now: DateTime<Utc>,
) -> Result<(String, i64)> {
    let iat = now.timestamp();
    let expires_in = cfg.access_ttl.num_seconds();
    let claims = Claims {
        sub: user.as_uuid(),
        tid: tenant.as_uuid(),
        role: role.to_owned(),
        base_role: None,
        exp: iat + expires_in,
        nbf: iat,
        iat,
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        jti: Uuid::new_v4(),
    };
    let token = jsonwebtoken::encode(&Header::new(cfg.algorithm.jwt()), &claims, &cfg.encoding)
        .map_err(|e| AuthError::Crypto(format!("signing JWT: {e}")))?;
    Ok((token, expires_in))
}

/// Issues an access token for the holder of the tenant's custom role `custom_role`, whose base
/// role is `base` (`role: "custom:<id>"`, `base_role`). As [`issue`] otherwise.
pub fn issue_custom(
    cfg: &JwtConfig,
    user: UserId,
    tenant: TenantId,
    base: Role,
    custom_role: Uuid,
    now: DateTime<Utc>,
) -> Result<(String, i64)> {
    let iat = now.timestamp();
    let expires_in = cfg.access_ttl.num_seconds();
    let claims = Claims {
        sub: user.as_uuid(),
        tid: tenant.as_uuid(),
        role: format!("{CUSTOM_ROLE_PREFIX}{custom_role}"),
        base_role: Some(base.as_str().to_owned()),
        exp: iat + expires_in,
        nbf: iat,
        iat,
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        jti: Uuid::new_v4(),
    };
    let token = jsonwebtoken::encode(&Header::new(cfg.algorithm.jwt()), &claims, &cfg.encoding)
        .map_err(|e| AuthError::Crypto(format!("signing JWT: {e}")))?;
    Ok((token, expires_in))
}

/// Verifies `token` against `cfg` (signature with the configured algorithm only, `exp`, `nbf`,
/// `iss`, `aud`) and returns its claims. Any failure is [`AuthError::InvalidToken`].
pub fn verify(cfg: &JwtConfig, token: &str) -> Result<Claims> {
    match jsonwebtoken::decode::<Claims>(token, &cfg.decoding, &cfg.validation()) {
        Ok(data) => Ok(data.claims),
        Err(e) => {
            tracing::debug!(reason = ?e.kind(), "JWT rejected");
            Err(AuthError::InvalidToken)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";
    const PRIVATE_PEM: &[u8] = include_bytes!("../tests/fixtures/jwt_rs256_private.pem");
    const PUBLIC_PEM: &[u8] = include_bytes!("../tests/fixtures/jwt_rs256_public.pem");
    const OTHER_PRIVATE_PEM: &[u8] = include_bytes!("../tests/fixtures/other_rs256_private.pem");

    fn hs() -> JwtConfig {
        JwtConfig::hs256(SECRET).unwrap()
    }

    fn rs() -> JwtConfig {
        JwtConfig::rs256_from_pem(PRIVATE_PEM, PUBLIC_PEM).unwrap()
    }

    fn ids() -> (UserId, TenantId) {
        (UserId::new(), TenantId::new())
    }

    fn is_invalid(r: Result<Claims>) -> bool {
        matches!(r, Err(AuthError::InvalidToken))
    }

    #[test]
    fn defaults() {
        let cfg = hs();
        assert_eq!(cfg.algorithm(), JwtAlgorithm::Hs256);
        assert_eq!(cfg.issuer, "eventdesk");
        assert_eq!(cfg.audience, "eventdesk-api");
        assert_eq!(cfg.access_ttl, TimeDelta::minutes(15));
    }

    #[test]
    fn hs256_round_trip() {
        let cfg = hs();
        let (user, tenant) = ids();
        let now = Utc::now();
        let (token, expires_in) = issue(&cfg, user, tenant, "operator", now).unwrap();
        assert_eq!(expires_in, 900);
        let c = verify(&cfg, &token).unwrap();
        assert_eq!(c.user_id(), user);
        assert_eq!(c.tenant_id(), tenant);
        assert_eq!(c.role, "operator");
        assert_eq!(c.builtin_role(), Some(Role::Operator));
        assert_eq!(c.iat, now.timestamp());
        assert_eq!(c.nbf, now.timestamp());
        assert_eq!(c.exp, now.timestamp() + 900);
        assert_eq!(c.iss, "eventdesk");
        assert_eq!(c.aud, "eventdesk-api");
        // The header names the configured algorithm.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        // Each token has its own jti.
        let (t2, _) = issue(&cfg, user, tenant, "operator", now).unwrap();
        assert_ne!(verify(&cfg, &t2).unwrap().jti, c.jti);
    }

    #[test]
    fn short_hs256_secret_is_refused() {
        match JwtConfig::hs256(&[7u8; 31]) {
            Err(AuthError::SecretTooShort {
                min: 32,
                actual: 31,
            }) => {}
            other => panic!("expected SecretTooShort, got {other:?}"),
        }
        assert!(JwtConfig::hs256(&[7u8; 32]).is_ok());
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let dbg = format!("{:?}", hs());
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains("0123456789abcdef"));
        let dbg = format!("{:?}", rs());
        assert!(!dbg.contains("PRIVATE"));
        assert!(!dbg.contains("MII"));
    }

    #[test]
    fn custom_role_tokens_name_the_role_and_the_base_role() {
        let cfg = hs();
        let (user, tenant) = ids();
        let role = Uuid::new_v4();
        let (token, _) = issue_custom(&cfg, user, tenant, Role::User, role, Utc::now()).unwrap();
        let c = verify(&cfg, &token).unwrap();
        assert_eq!(c.role, format!("custom:{role}"));
        assert_eq!(c.custom_role_id(), Some(role));
        assert_eq!(c.base_role(), Some(Role::User));
        // Code that reads built-in roles only does not mistake it for one.
        assert_eq!(c.builtin_role(), None);
        // A built-in role's token has neither.
        let (token, _) = issue(&cfg, user, tenant, "operator", Utc::now()).unwrap();
        let c = verify(&cfg, &token).unwrap();
        assert_eq!((c.custom_role_id(), c.base_role()), (None, None));
        assert!(!token.contains("base_role"));
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        assert!(json.get("base_role").is_none());
    }

    #[test]
    fn alg_none_is_refused() {
        let cfg = hs();
        let (user, tenant) = ids();
        let now = Utc::now().timestamp();
        let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = B64.encode(
            serde_json::to_vec(&Claims {
                sub: user.as_uuid(),
                tid: tenant.as_uuid(),
                role: "admin".into(),
                base_role: None,
                exp: now + 600,
                nbf: now,
                iat: now,
                iss: "eventdesk".into(),
                aud: "eventdesk-api".into(),
                jti: Uuid::new_v4(),
            })
            .unwrap(),
        );
        // Unsigned, and with a signature copied from a genuine token.
        let (genuine, _) = issue(&cfg, user, tenant, "admin", Utc::now()).unwrap();
        let genuine_sig = genuine.rsplit('.').next().unwrap();
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{genuine_sig}"),
        ] {
            assert!(is_invalid(verify(&cfg, &token)), "{token}");
            assert!(is_invalid(verify(&rs(), &token)), "{token}");
        }
        // Other case spellings of "none".
        for alg in ["None", "NONE", "nOnE"] {
            let h = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert!(is_invalid(verify(&cfg, &format!("{h}.{payload}."))));
        }
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let other = JwtConfig::hs256(b"another secret, also 32 bytes long!!").unwrap();
        let (user, tenant) = ids();
        let (token, _) = issue(&other, user, tenant, "admin", Utc::now()).unwrap();
        assert!(is_invalid(verify(&hs(), &token)));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let cfg = hs();
        let (user, tenant) = ids();
        let (token, _) = issue(&cfg, user, tenant, "viewer", Utc::now()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        claims["role"] = "admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert!(is_invalid(verify(&cfg, &forged)));
        assert!(is_invalid(verify(&cfg, "")));
        assert!(is_invalid(verify(&cfg, "a.b.c")));
    }

    #[test]
    fn expired_token_is_refused() {
        let cfg = hs();
        let (user, tenant) = ids();
        let (token, _) = issue(
            &cfg,
            user,
            tenant,
            "admin",
            Utc::now() - TimeDelta::minutes(16),
        )
        .unwrap();
        assert!(is_invalid(verify(&cfg, &token)));
        // Expired by 1 s: within the leeway, still accepted; by a minute: refused.
        let just = issue(
            &cfg,
            user,
            tenant,
            "admin",
            Utc::now() - TimeDelta::seconds(901),
        )
        .unwrap()
        .0;
        assert!(verify(&cfg, &just).is_ok());
        let short = hs().with_access_ttl(TimeDelta::seconds(30));
        let t = issue(
            &short,
            user,
            tenant,
            "admin",
            Utc::now() - TimeDelta::seconds(90),
        )
        .unwrap()
        .0;
        assert!(is_invalid(verify(&short, &t)));
    }

    #[test]
    fn token_not_yet_valid_is_refused() {
        let cfg = hs();
        let (user, tenant) = ids();
        let (token, _) = issue(
            &cfg,
            user,
            tenant,
            "admin",
            Utc::now() + TimeDelta::minutes(5),
        )
        .unwrap();
        assert!(is_invalid(verify(&cfg, &token)));
        // A couple of seconds of skew is tolerated.
        let (token, _) = issue(
            &cfg,
            user,
            tenant,
            "admin",
            Utc::now() + TimeDelta::seconds(2),
        )
        .unwrap();
        assert!(verify(&cfg, &token).is_ok());
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let cfg = hs();
        let (user, tenant) = ids();
        let (t, _) = issue(
            &hs().with_audience("someone-else"),
            user,
            tenant,
            "admin",
            Utc::now(),
        )
        .unwrap();
        assert!(is_invalid(verify(&cfg, &t)));
        let (t, _) = issue(&hs().with_issuer("evil"), user, tenant, "admin", Utc::now()).unwrap();
        assert!(is_invalid(verify(&cfg, &t)));
    }

    #[test]
    fn missing_claims_are_refused() {
        // Signed with the right secret, but without nbf/aud/iss: refused.
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": Uuid::new_v4(), "tid": Uuid::new_v4(), "role": "admin",
            "exp": now + 600, "iat": now, "jti": Uuid::new_v4(),
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(is_invalid(verify(&hs(), &token)));
    }

    #[test]
    fn rs256_round_trip_from_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let cfg = JwtConfig::rs256_from_files(
            format!("{dir}/jwt_rs256_private.pem"),
            format!("{dir}/jwt_rs256_public.pem"),
        )
        .unwrap();
        assert_eq!(cfg.algorithm(), JwtAlgorithm::Rs256);
        let (user, tenant) = ids();
        let (token, _) = issue(&cfg, user, tenant, "manager", Utc::now()).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::RS256
        );
        let c = verify(&cfg, &token).unwrap();
        assert_eq!((c.user_id(), c.tenant_id()), (user, tenant));
        // A verifier with the public key only would accept it; HS256 configs do not.
        assert!(is_invalid(verify(&hs(), &token)));
    }

    #[test]
    fn rs256_config_errors() {
        let missing = JwtConfig::rs256_from_files("/nonexistent/a.pem", "/nonexistent/b.pem");
        assert!(matches!(missing, Err(AuthError::Config(_))));
        assert!(matches!(
            JwtConfig::rs256_from_pem(b"not a pem", PUBLIC_PEM),
            Err(AuthError::Config(_))
        ));
        // A private key that does not belong to the public key.
        assert!(matches!(
            JwtConfig::rs256_from_pem(OTHER_PRIVATE_PEM, PUBLIC_PEM),
            Err(AuthError::Config(_))
        ));
    }

    #[test]
    fn hs256_token_presented_to_rs256_config_is_refused() {
        let (user, tenant) = ids();
        let (hs_token, _) = issue(&hs(), user, tenant, "admin", Utc::now()).unwrap();
        assert!(is_invalid(verify(&rs(), &hs_token)));
        // Key confusion: HMAC "signed" with the RSA public key as the secret.
        let confused = JwtConfig::hs256(PUBLIC_PEM).unwrap();
        let (t, _) = issue(&confused, user, tenant, "admin", Utc::now()).unwrap();
        assert!(is_invalid(verify(&rs(), &t)));
    }

    #[test]
    fn rs256_token_signed_by_another_key_is_refused() {
        let foreign_token = {
            let key = EncodingKey::from_rsa_pem(OTHER_PRIVATE_PEM).unwrap();
            let now = Utc::now().timestamp();
            let claims = Claims {
                sub: Uuid::new_v4(),
                tid: Uuid::new_v4(),
                role: "admin".into(),
                base_role: None,
                exp: now + 600,
                nbf: now,
                iat: now,
                iss: DEFAULT_ISSUER.into(),
                aud: DEFAULT_AUDIENCE.into(),
                jti: Uuid::new_v4(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
        };
        assert!(is_invalid(verify(&rs(), &foreign_token)));
    }
}
