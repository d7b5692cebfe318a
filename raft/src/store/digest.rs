//! An order-independent digest of the state machine, kept up to date entry by entry, so that
//! the status RPC's `stateHash` costs the same at ten keys as at a million (hashing the whole
//! state's JSON took seconds at that size, under the lock applies wait on).
//!
//! ```text
//! entities table: key -> JSON value       (every put/delete of apply, install, load)
//!   per entity: h = SHA-256(len(key) ‖ key ‖ value)[..16]
//!   acc = XOR of every h                  (keys are unique, so XOR is a set hash)
//! stateHash = SHA-256("keyraft-state-2" ‖ acc ‖ JSON of the audit head)
//! ```

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

/// The digest of the stored entities, plus what it needs to update in O(1): each entity's own
/// hash, found by a hash of its key (32 bytes per entity instead of a copy of the key).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntityDigest {
    acc: u128,
    by_key: HashMap<u128, u128>,
}

fn truncated(hasher: Sha256) -> u128 {
    let full = hasher.finalize();
    u128::from_le_bytes(full[..16].try_into().expect("16 of 32 bytes"))
}

fn key_hash(key: &[u8]) -> u128 {
    truncated(Sha256::new_with_prefix(b"k").chain_update(key))
}

fn entity_hash(key: &[u8], value: &[u8]) -> u128 {
    truncated(
        Sha256::new_with_prefix((key.len() as u64).to_le_bytes())
            .chain_update(key)
            .chain_update(value),
    )
}

/// The two hashes the digest keeps of one stored entity, computed apart from the digest so
/// that loading can hash on several threads ([`EntityDigest::add_hashed`]).
#[derive(Clone, Copy, Debug)]
pub struct EntityHashes {
    key: u128,
    entity: u128,
}

impl EntityHashes {
    /// The hashes of the entity stored under `key` as `value`.
    pub fn of(key: &[u8], value: &[u8]) -> Self {
        EntityHashes {
            key: key_hash(key),
            entity: entity_hash(key, value),
        }
    }
}

impl EntityDigest {
    /// Records that the entity stored under `key` is now `value` (`None`: deleted).
    pub fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(value) => self.add_hashed(EntityHashes::of(key, value)),
            None => self.remove_key_hash(key_hash(key)),
        }
    }

    /// [`EntityDigest::set`] with hashes computed beforehand.
    pub fn add_hashed(&mut self, h: EntityHashes) {
        self.remove_key_hash(h.key);
        self.acc ^= h.entity;
        self.by_key.insert(h.key, h.entity);
    }

    fn remove_key_hash(&mut self, key: u128) {
        if let Some(old) = self.by_key.remove(&key) {
            self.acc ^= old;
        }
    }

    /// How many entities it covers.
    pub fn count(&self) -> usize {
        self.by_key.len()
    }

    /// The state hash (lowercase hex) of these entities with the audit head `audit_json`.
    pub fn state_hash_hex(&self, audit_json: &[u8]) -> String {
        let mut h = Sha256::new_with_prefix(b"keyraft-state-2");
        h.update(self.acc.to_le_bytes());
        h.update(audit_json);
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&[u8], &[u8])]) -> EntityDigest {
        let mut d = EntityDigest::default();
        for (k, v) in pairs {
            d.set(k, Some(v));
        }
        d
    }

    #[test]
    fn the_digest_depends_on_the_set_not_on_the_order_or_the_history() {
        let a = of(&[(b"k1", b"v1"), (b"k2", b"v2")]);
        let b = of(&[(b"k2", b"v2"), (b"k1", b"v1")]);
        assert_eq!(a.state_hash_hex(b"{}"), b.state_hash_hex(b"{}"));

        // Overwritten and deleted entities leave no trace.
        let mut c = of(&[(b"k1", b"old"), (b"k3", b"gone")]);
        c.set(b"k1", Some(b"v1"));
        c.set(b"k2", Some(b"v2"));
        c.set(b"k3", None);
        c.set(b"never", None);
        assert_eq!(c, a);
        assert_eq!(c.count(), 2);
    }

    #[test]
    fn any_difference_changes_the_hash() {
        let base = of(&[(b"k1", b"v1"), (b"k2", b"v2")]).state_hash_hex(b"{}");
        for other in [
            of(&[(b"k1", b"v1"), (b"k2", b"v3")]),
            of(&[(b"k1", b"v1")]),
            of(&[(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"")]),
            // The same bytes split differently between key and value.
            of(&[(b"k1", b"v1"), (b"k2v", b"2")]),
            EntityDigest::default(),
        ] {
            assert_ne!(other.state_hash_hex(b"{}"), base);
        }
        let same = of(&[(b"k1", b"v1"), (b"k2", b"v2")]);
        assert_ne!(
            same.state_hash_hex(b"{\"head\":1}"),
            base,
            "the audit head counts"
        );
    }
}
