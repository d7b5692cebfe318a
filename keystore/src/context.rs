//! Encryption context: the non-secret key/value pairs bound to a ciphertext as AAD.
//!
//! Matching is exact and case-sensitive, as in AWS KMS: a ciphertext made with
//! `{"Purpose": "x"}` does not decrypt with `{"purpose": "x"}`, nor with an extra pair.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An encryption context. Ordered by key bytes, so equal maps have one canonical encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context from a map.
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    /// The pairs, ordered by key.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `u32 BE count`, then for each pair in key-byte order `u32 BE len(key) || key ||
    /// u32 BE len(value) || value`. Length prefixes make the encoding injective: no two
    /// different contexts share bytes (`{"ab": "c"}` vs `{"a": "bc"}`).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let size = 4 + self
            .0
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&len_u32(self.0.len()).to_be_bytes());
        // BTreeMap<String, _> iterates in `str` order, which is byte order for UTF-8.
        for (k, v) in &self.0 {
            out.extend_from_slice(&len_u32(k.len()).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&len_u32(v.len()).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl From<std::collections::HashMap<String, String>> for EncryptionContext {
    fn from(map: std::collections::HashMap<String, String>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptionContext {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The front caps contexts far below 4 GiB; saturating keeps this total.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs.iter().copied().collect()
    }

    #[test]
    fn empty_context_encodes_as_a_zero_count() {
        assert_eq!(EncryptionContext::new().canonical_bytes(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn canonical_bytes_are_count_then_length_prefixed_pairs_in_key_order() {
        let c = ctx(&[("b", "2"), ("a", "1")]);
        let expected: Vec<u8> = [
            &[0, 0, 0, 2][..],
            &[0, 0, 0, 1],
            b"a",
            &[0, 0, 0, 1],
            b"1",
            &[0, 0, 0, 1],
            b"b",
            &[0, 0, 0, 1],
            b"2",
        ]
        .concat();
        assert_eq!(c.canonical_bytes(), expected);
    }

    #[test]
    fn insertion_order_does_not_change_the_encoding() {
        let a = ctx(&[("x", "1"), ("y", "2"), ("z", "3")]);
        let b = ctx(&[("z", "3"), ("x", "1"), ("y", "2")]);
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn keys_sort_by_bytes_so_uppercase_precedes_lowercase() {
        let c = ctx(&[("a", ""), ("B", "")]);
        let keys: Vec<_> = c.as_map().keys().cloned().collect();
        assert_eq!(keys, vec!["B".to_string(), "a".to_string()]);
    }

    #[test]
    fn shifting_bytes_between_key_and_value_changes_the_encoding() {
        assert_ne!(
            ctx(&[("ab", "c")]).canonical_bytes(),
            ctx(&[("a", "bc")]).canonical_bytes()
        );
    }

    #[test]
    fn case_differences_change_the_encoding() {
        assert_ne!(
            ctx(&[("Purpose", "x")]).canonical_bytes(),
            ctx(&[("purpose", "x")]).canonical_bytes()
        );
        assert_ne!(
            ctx(&[("k", "Value")]).canonical_bytes(),
            ctx(&[("k", "value")]).canonical_bytes()
        );
    }

    proptest::proptest! {
        #[test]
        fn different_contexts_never_share_canonical_bytes(
            a in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
            b in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
        ) {
            let (ca, cb) = (EncryptionContext::from_map(a.clone()), EncryptionContext::from_map(b.clone()));
            proptest::prop_assert_eq!(a == b, ca.canonical_bytes() == cb.canonical_bytes());
        }
    }

    #[test]
    fn non_ascii_keys_and_values_are_encoded_by_utf8_byte_length() {
        let c = ctx(&[("é", "ü")]);
        let bytes = c.canonical_bytes();
        assert_eq!(&bytes[4..8], &[0, 0, 0, 2]);
        assert_eq!(bytes.len(), 4 + 4 + 2 + 4 + 2);
    }
}
