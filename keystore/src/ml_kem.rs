//! ML-KEM (FIPS 203) data key pairs: GenerateDataKeyPair with `ML_KEM_512/768/1024`.
//!
//! # Layout
//!
//! ```text
//!  64 random bytes (d || z) --FIPS 203 KeyGen (RustCrypto ml-kem)--> encapsulation key
//!     |                                                               |
//!     v                                                               v
//!  PKCS#8 OneAsymmetricKey, privateKey = seed [0] (RFC 9935 form)    SPKI DER
//! ```
//!
//! The private key is the 64-byte seed, the form the IETF LAMPS profile recommends and
//! OpenSSL 3.5 and the Python `cryptography` package write by default: it is the smallest
//! encoding and always regenerates a valid key, unlike the expanded decapsulation key.
//! aws-lc-rs (used for every other asymmetric spec) cannot create a key from a seed, so keygen
//! uses RustCrypto's `ml-kem`; the tests check its keys against aws-lc-rs encapsulation.

use ml_kem::{DecapsulationKey, KeyExport, MlKem1024, MlKem512, MlKem768, Seed};

use crate::crypto::{random_secret, Secret};
use crate::error::DomainError;

/// ML-KEM seed length (d || z), the same for every parameter set.
pub const ML_KEM_SEED_LEN: usize = 64;

/// The three parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlKemParams {
    /// ML-KEM-512.
    MlKem512,
    /// ML-KEM-768.
    MlKem768,
    /// ML-KEM-1024.
    MlKem1024,
}

impl MlKemParams {
    /// `id-alg-ml-kem-*` (2.16.840.1.101.3.4.4.{1,2,3}), DER contents octets.
    fn oid(self) -> [u8; 9] {
        let last = match self {
            MlKemParams::MlKem512 => 1,
            MlKemParams::MlKem768 => 2,
            MlKemParams::MlKem1024 => 3,
        };
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, last]
    }

    /// The encapsulation key FIPS 203 KeyGen derives from `seed`.
    fn encapsulation_key(self, seed: &[u8; ML_KEM_SEED_LEN]) -> Vec<u8> {
        let seed = Seed::from(*seed);
        match self {
            MlKemParams::MlKem512 => DecapsulationKey::<MlKem512>::from_seed(seed)
                .encapsulation_key()
                .to_bytes()
                .to_vec(),
            MlKemParams::MlKem768 => DecapsulationKey::<MlKem768>::from_seed(seed)
                .encapsulation_key()
                .to_bytes()
                .to_vec(),
            MlKemParams::MlKem1024 => DecapsulationKey::<MlKem1024>::from_seed(seed)
                .encapsulation_key()
                .to_bytes()
                .to_vec(),
        }
    }
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn algorithm_identifier(params: MlKemParams) -> Vec<u8> {
    // The ML-KEM AlgorithmIdentifier has no parameters (not even NULL).
    tlv(0x30, &tlv(0x06, &params.oid()))
}

/// The public key as DER SubjectPublicKeyInfo.
fn spki(params: MlKemParams, encapsulation_key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(encapsulation_key);
    let mut body = algorithm_identifier(params);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// PKCS#8 v1 PrivateKeyInfo whose privateKey OCTET STRING holds `seed [0] IMPLICIT OCTET
/// STRING (SIZE (64))`.
fn pkcs8_seed(params: MlKemParams, seed: &[u8; ML_KEM_SEED_LEN]) -> Secret {
    let mut body = tlv(0x02, &[0]); // version v1
    body.extend(algorithm_identifier(params));
    body.extend(tlv(0x04, &tlv(0x80, seed)));
    Secret::new(tlv(0x30, &body))
}

/// A fresh pair: (PKCS#8 private key in the seed form, SPKI public key).
pub(crate) fn generate(params: MlKemParams) -> Result<(Secret, Vec<u8>), DomainError> {
    let seed_secret = random_secret(ML_KEM_SEED_LEN);
    let seed: &[u8; ML_KEM_SEED_LEN] = seed_secret
        .expose_secret()
        .try_into()
        .map_err(|_| DomainError::Internal("ML-KEM seed has the wrong length".into()))?;
    let public = spki(params, &params.encapsulation_key(seed));
    Ok((pkcs8_seed(params, seed), public))
}

/// The seed inside a PKCS#8 document [`generate`] wrote, if `der` is one for `params`.
pub fn seed_from_pkcs8(params: MlKemParams, der: &[u8]) -> Option<[u8; ML_KEM_SEED_LEN]> {
    let mut prefix = tlv(0x02, &[0]);
    prefix.extend(algorithm_identifier(params));
    prefix.extend([0x04, 0x42, 0x80, 0x40]);
    let body = der.strip_prefix(&[0x30, (prefix.len() + ML_KEM_SEED_LEN) as u8][..])?;
    body.strip_prefix(prefix.as_slice())?.try_into().ok()
}

/// The encapsulation key inside an SPKI document [`generate`] wrote, if `der` is one for
/// `params`.
pub fn encapsulation_key_from_spki(params: MlKemParams, der: &[u8]) -> Option<Vec<u8>> {
    let ek_len = match params {
        MlKemParams::MlKem512 => 800,
        MlKemParams::MlKem768 => 1184,
        MlKemParams::MlKem1024 => 1568,
    };
    let expected = spki(params, &vec![0; ek_len]);
    let header = expected.len() - ek_len;
    (der.len() == expected.len() && der[..header] == expected[..header])
        .then(|| der[header..].to_vec())
}

/// The encapsulation key FIPS 203 KeyGen derives from `seed` (for checking pairs).
pub fn encapsulation_key_from_seed(params: MlKemParams, seed: &[u8; ML_KEM_SEED_LEN]) -> Vec<u8> {
    params.encapsulation_key(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::kem::{
        DecapsulationKey as LcDecapsulationKey, EncapsulationKey as LcEncapsulationKey,
        ML_KEM_1024, ML_KEM_512, ML_KEM_768,
    };
    use ml_kem::{Ciphertext, Decapsulate};

    const ALL: [MlKemParams; 3] = [
        MlKemParams::MlKem512,
        MlKemParams::MlKem768,
        MlKemParams::MlKem1024,
    ];

    fn lc_alg(p: MlKemParams) -> &'static aws_lc_rs::kem::Algorithm {
        match p {
            MlKemParams::MlKem512 => &ML_KEM_512,
            MlKemParams::MlKem768 => &ML_KEM_768,
            MlKemParams::MlKem1024 => &ML_KEM_1024,
        }
    }

    fn decapsulate(p: MlKemParams, seed: &[u8; 64], ct: &[u8]) -> Vec<u8> {
        let seed = Seed::from(*seed);
        match p {
            MlKemParams::MlKem512 => DecapsulationKey::<MlKem512>::from_seed(seed)
                .decapsulate(&Ciphertext::<MlKem512>::try_from(ct).unwrap())
                .to_vec(),
            MlKemParams::MlKem768 => DecapsulationKey::<MlKem768>::from_seed(seed)
                .decapsulate(&Ciphertext::<MlKem768>::try_from(ct).unwrap())
                .to_vec(),
            MlKemParams::MlKem1024 => DecapsulationKey::<MlKem1024>::from_seed(seed)
                .decapsulate(&Ciphertext::<MlKem1024>::try_from(ct).unwrap())
                .to_vec(),
        }
    }

    #[test]
    fn aws_lc_encapsulates_to_our_public_key_and_our_seed_decapsulates() {
        for p in ALL {
            let (private, public) = generate(p).unwrap();
            let seed = seed_from_pkcs8(p, private.expose_secret()).unwrap();
            let ek = encapsulation_key_from_spki(p, &public).unwrap();
            let lc_ek = LcEncapsulationKey::new(lc_alg(p), &ek).unwrap();
            let (ct, lc_secret) = lc_ek.encapsulate().unwrap();
            let ours = decapsulate(p, &seed, ct.as_ref());
            assert_eq!(ours.as_slice(), lc_secret.as_ref(), "{p:?}");
        }
    }

    #[test]
    fn a_key_generated_by_aws_lc_round_trips_through_our_encapsulation_key_check() {
        // aws-lc-rs generates its own pair; our decoder must reject its key for the wrong
        // parameter set and accept the right one.
        for p in ALL {
            let dk = LcDecapsulationKey::generate(lc_alg(p)).unwrap();
            let ek = dk.encapsulation_key().unwrap().key_bytes().unwrap();
            let der = spki(p, ek.as_ref());
            assert_eq!(
                encapsulation_key_from_spki(p, &der).unwrap(),
                ek.as_ref(),
                "{p:?}"
            );
            for other in ALL.into_iter().filter(|o| *o != p) {
                assert!(encapsulation_key_from_spki(other, &der).is_none());
            }
        }
    }

    #[test]
    fn pkcs8_matches_the_seed_form_openssl_writes() {
        // OpenSSL 3.5 / cryptography write ML-KEM-768 seeds as 30 54 02 01 00 30 0b 06 09
        // 60 86 48 01 65 03 04 04 02 04 42 80 40 <seed>.
        let seed = [7u8; 64];
        let der = pkcs8_seed(MlKemParams::MlKem768, &seed);
        let expected_prefix = hex::decode("3054020100300b060960864801650304040204428040").unwrap();
        assert_eq!(&der.expose_secret()[..22], expected_prefix.as_slice());
        assert_eq!(&der.expose_secret()[22..], &seed);
        assert_eq!(
            seed_from_pkcs8(MlKemParams::MlKem768, der.expose_secret()),
            Some(seed)
        );
        assert_eq!(
            seed_from_pkcs8(MlKemParams::MlKem512, der.expose_secret()),
            None
        );
    }

    #[test]
    fn spki_lengths_follow_fips_203() {
        for (p, total) in [
            (MlKemParams::MlKem512, 822),
            (MlKemParams::MlKem768, 1206),
            (MlKemParams::MlKem1024, 1590),
        ] {
            let (_, public) = generate(p).unwrap();
            assert_eq!(public.len(), total, "{p:?}");
        }
    }
}
