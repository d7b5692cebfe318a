//! The operations a run can drive, and the mix.

use serde::Serialize;

/// What a run measures (`--op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Encrypt `--payload-bytes` of plaintext under a symmetric key.
    Encrypt,
    /// Decrypt a ciphertext made at setup.
    Decrypt,
    /// A 256-bit data key, plaintext and encrypted.
    GenerateDataKey,
    /// ECDSA P-256 (SHA-256) signature of `--payload-bytes` of message.
    Sign,
    /// A new symmetric key per call (a Raft write plus its audit event on keyraft).
    CreateKey,
    /// Metadata of the setup key.
    DescribeKey,
    /// A weighted mix of the others, see [`MIX`].
    Mix,
}

/// One concrete call (what [`Op::Mix`] resolves to, per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// See [`Op::Encrypt`].
    Encrypt,
    /// See [`Op::Decrypt`].
    Decrypt,
    /// See [`Op::GenerateDataKey`].
    GenerateDataKey,
    /// See [`Op::Sign`].
    Sign,
    /// See [`Op::CreateKey`].
    CreateKey,
    /// See [`Op::DescribeKey`].
    DescribeKey,
}

/// The mix, in percent: an envelope-encryption-heavy service (data keys and decrypts
/// dominate), some direct encryption, a little signing and metadata, rare key creation.
pub const MIX: [(Call, u32); 6] = [
    (Call::Encrypt, 30),
    (Call::Decrypt, 35),
    (Call::GenerateDataKey, 25),
    (Call::Sign, 4),
    (Call::DescribeKey, 5),
    (Call::CreateKey, 1),
];

impl Op {
    /// The wire-neutral name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::GenerateDataKey => "generate-data-key",
            Op::Sign => "sign",
            Op::CreateKey => "create-key",
            Op::DescribeKey => "describe-key",
            Op::Mix => "mix",
        }
    }

    /// The calls this op may make (what setup must prepare for).
    pub fn calls(self) -> Vec<Call> {
        match self {
            Op::Encrypt => vec![Call::Encrypt],
            Op::Decrypt => vec![Call::Decrypt],
            Op::GenerateDataKey => vec![Call::GenerateDataKey],
            Op::Sign => vec![Call::Sign],
            Op::CreateKey => vec![Call::CreateKey],
            Op::DescribeKey => vec![Call::DescribeKey],
            Op::Mix => MIX.iter().map(|(c, _)| *c).collect(),
        }
    }

    /// The call for request number `seq`: fixed, or for the mix drawn from `roll` in 0..100.
    pub fn call(self, roll: u32) -> Call {
        match self {
            Op::Encrypt => Call::Encrypt,
            Op::Decrypt => Call::Decrypt,
            Op::GenerateDataKey => Call::GenerateDataKey,
            Op::Sign => Call::Sign,
            Op::CreateKey => Call::CreateKey,
            Op::DescribeKey => Call::DescribeKey,
            Op::Mix => {
                let mut acc = 0;
                for (call, weight) in MIX {
                    acc += weight;
                    if roll < acc {
                        return call;
                    }
                }
                Call::Encrypt
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_weights_sum_to_one_hundred_and_every_roll_resolves() {
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u32>(), 100);
        let mut seen = std::collections::HashSet::new();
        for roll in 0..100 {
            seen.insert(Op::Mix.call(roll));
        }
        assert_eq!(seen.len(), MIX.len(), "every call of the mix is reachable");
        assert_eq!(Op::Mix.call(0), Call::Encrypt);
        assert_eq!(Op::Mix.call(99), Call::CreateKey);
    }
}
