//! The per-stream hash chain (tamper evidence).
//!
//! For each event the application computes a *digest* over a canonical, length-prefixed
//! encoding of everything the event says (tenant, stream, id, type, schema version, data,
//! metadata, recorded time). JSON is encoded canonically: keys sorted, no whitespace (this is
//! `serde_json`'s output for a `Value`, whose maps are ordered). The database then chains:
//!
//! ```text
//! hash_v = sha256(hash_{v-1} || be_i64(v) || digest_v)      hash_0 = 32 zero bytes
//! ```
//!
//! so changing, removing or reordering any event breaks every later hash of its stream.
//! [`verify_chain`] recomputes the chain from stored rows (or from an exported file).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before the first event of a stream.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The fields an event's digest covers, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Stream type.
    pub stream_type: &'a str,
    /// Stream id.
    pub stream_id: Uuid,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: &'a str,
    /// Schema version as stored.
    pub schema_version: i32,
    /// Payload as stored, in canonical JSON ([`canonical_json`]).
    pub data: &'a str,
    /// Metadata as stored, in canonical JSON.
    pub metadata: &'a str,
    /// Recorded time (microseconds are what is stored and hashed).
    pub recorded_at: DateTime<Utc>,
}

fn put_str(h: &mut Sha256, s: &[u8]) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s);
}

/// sha256 over the canonical encoding of one event.
pub fn event_digest(input: &DigestInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"eventdesk/event/v1");
    h.update(input.tenant_id.as_bytes());
    put_str(&mut h, input.stream_type.as_bytes());
    h.update(input.stream_id.as_bytes());
    h.update(input.event_id.as_bytes());
    put_str(&mut h, input.event_type.as_bytes());
    h.update(input.schema_version.to_be_bytes());
    put_str(&mut h, input.data.as_bytes());
    put_str(&mut h, input.metadata.as_bytes());
    h.update(input.recorded_at.timestamp_micros().to_be_bytes());
    h.finalize().into()
}

/// The canonical JSON text of a value: keys sorted, no whitespace. (`serde_json::Value` maps
/// are BTreeMaps, so its compact serialisation is canonical; a value read back from `jsonb`
/// serialises to the same text.)
pub fn canonical_json(v: &serde_json::Value) -> String {
    v.to_string()
}

/// One link of the chain: `sha256(prev || be_i64(version) || digest)`.
pub fn chain(prev: &[u8], version: i64, digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update(digest);
    h.finalize().into()
}

/// Truncates a timestamp to what PostgreSQL stores (microseconds).
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The first problem found when verifying a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// A version is missing or out of order: `expected` was due, `found` came.
    VersionGap {
        /// The version that should have come next.
        expected: i64,
        /// The version that came.
        found: i64,
    },
    /// The stored hash does not match the recomputed one.
    HashMismatch {
        /// The version whose hash is wrong.
        version: i64,
    },
}

/// A verified link: the fields of a stored event the chain check needs.
#[derive(Debug, Clone, Copy)]
pub struct StoredLink<'a> {
    /// The event's version.
    pub version: i64,
    /// Its digest input.
    pub input: DigestInput<'a>,
    /// Its stored hash.
    pub hash: &'a [u8],
}

/// Incremental verifier for one stream's events in version order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: [u8; 32],
    next_version: i64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev: GENESIS,
            next_version: 1,
        }
    }
}

impl ChainVerifier {
    /// Checks the next event of the stream.
    pub fn check(&mut self, link: &StoredLink<'_>) -> Result<(), ChainFault> {
        self.check_digest(link.version, &event_digest(&link.input), link.hash)
    }

    /// [`Self::check`] with the event's digest ([`event_digest`]) computed beforehand, e.g. on
    /// another thread: the chain itself must be walked in version order, the digests need not.
    pub fn check_digest(
        &mut self,
        version: i64,
        digest: &[u8; 32],
        stored: &[u8],
    ) -> Result<(), ChainFault> {
        if version != self.next_version {
            return Err(ChainFault::VersionGap {
                expected: self.next_version,
                found: version,
            });
        }
        let expected = chain(&self.prev, version, digest);
        if expected.as_slice() != stored {
            return Err(ChainFault::HashMismatch { version });
        }
        self.prev = expected;
        self.next_version += 1;
        Ok(())
    }

    /// The head hash verified so far.
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }

    /// A verifier that continues a stream after `version`, whose stored hash is `hash`: to verify
    /// a stream from the middle (an export with `--since`) or to carry on after a fault.
    pub fn starting_after(version: i64, hash: [u8; 32]) -> Self {
        Self {
            prev: hash,
            next_version: version + 1,
        }
    }

    /// The version due next.
    pub fn next_version(&self) -> i64 {
        self.next_version
    }
}

/// Verifies a whole stream given in version order; returns the first fault.
pub fn verify_chain<'a>(links: impl IntoIterator<Item = StoredLink<'a>>) -> Result<(), ChainFault> {
    let mut v = ChainVerifier::default();
    for l in links {
        v.check(&l)?;
    }
    Ok(())
}
