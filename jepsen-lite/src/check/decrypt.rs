//! Decryptability: after healing, the runner decrypts every acknowledged ciphertext and
//! records each attempt as a `decrypt` call (invoke value: the ciphertext; ok value: the
//! plaintext). Every acknowledged ciphertext must come back as exactly what was encrypted.
//!
//! A failed decryption is excused only when the key's final DescribeKey shows it cannot be
//! used (disabled, pending deletion, purged), as AWS refuses those; a decryption that
//! succeeds must still return the right plaintext. An acknowledged ciphertext that the runner
//! never tried to decrypt makes the result `unknown`.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;

use super::linearizable::describe_call;
use super::lost::final_reads;
use super::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Call, OpType, Value, F};

/// The decryption attempts that got an answer (ok or failed), recorded as `f` calls (invoke
/// value: the ciphertext), by ciphertext.
pub(super) fn attempts_by_ciphertext<'a, 'h>(
    calls: &'a [Call<'h>],
    f: F,
) -> HashMap<&'a str, Vec<&'a Call<'h>>> {
    let mut decrypts: HashMap<&str, Vec<&Call<'_>>> = HashMap::new();
    for c in calls {
        if let Value::Ciphertext(ct) = &c.invoke.value {
            if c.invoke.f == f && matches!(c.outcome(), OpType::Ok | OpType::Fail) {
                decrypts.entry(ct.as_str()).or_default().push(c);
            }
        }
    }
    decrypts
}

/// Whether any of `attempts` returned the `plaintext` that `encrypt` sealed; flags every
/// attempt that returned another one (`place`: where it was decrypted, for the message).
pub(super) fn returned_plaintext(
    result: &mut CheckResult,
    key: &str,
    encrypt: &Call<'_>,
    plaintext: &str,
    attempts: &[&Call<'_>],
    place: &str,
) -> bool {
    let mut ok = false;
    for d in attempts {
        if let Some(Value::Plaintext(p)) = d.output().filter(|_| d.outcome() == OpType::Ok) {
            if p == plaintext {
                ok = true;
            } else {
                result.flag(Anomaly {
                    kind: AnomalyKind::WrongPlaintext,
                    key: Some(key.to_owned()),
                    ops: vec![encrypt.invoke.index, encrypt.end(), d.invoke.index, d.end()],
                    message: format!(
                        "ciphertext of {} decrypted{place} to {p:?} ({})",
                        describe_call(encrypt),
                        describe_call(d)
                    ),
                    detail: json!({ "expected": plaintext, "got": p }),
                });
            }
        }
    }
    ok
}

/// Checks every acknowledged Encrypt against the decryptions recorded for its ciphertext.
pub fn check(calls: &[Call<'_>]) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new("decryptable");
    let decrypts = attempts_by_ciphertext(calls, F::Decrypt);
    let reads = final_reads(calls);
    let (mut encrypted, mut verified, mut excused, mut unchecked) = (0, 0, 0, 0);
    for c in calls {
        let (F::Encrypt, OpType::Ok) = (c.invoke.f, c.outcome()) else {
            continue;
        };
        let Some(Value::Encrypted {
            plaintext,
            ciphertext,
        }) = c.output()
        else {
            continue;
        };
        encrypted += 1;
        let key = c.key().unwrap_or("?");
        let Some(attempts) = decrypts.get(ciphertext.as_str()) else {
            unchecked += 1;
            continue;
        };
        if returned_plaintext(&mut result, key, c, plaintext, attempts, "") {
            verified += 1;
            continue;
        }
        if attempts.iter().any(|d| d.outcome() == OpType::Ok) {
            continue; // flagged above
        }
        let usable = reads.get(key).map(|r| match r.output() {
            Some(Value::Meta(Some(m))) => m.enabled(),
            _ => false,
        });
        if usable == Some(false) {
            excused += 1;
            continue;
        }
        let d = attempts[0];
        result.flag(Anomaly {
            kind: AnomalyKind::Undecryptable,
            key: Some(key.to_owned()),
            ops: vec![c.invoke.index, c.end(), d.invoke.index, d.end()],
            message: format!(
                "ciphertext of {} does not decrypt: {} ({})",
                describe_call(c),
                d.complete
                    .and_then(|r| r.error.clone())
                    .unwrap_or_else(|| "failed".into()),
                if usable.is_some() {
                    "the key's final read shows it enabled"
                } else {
                    "the key has no final read"
                }
            ),
            detail: json!({ "attempts": attempts.len() }),
        });
    }
    if unchecked > 0 {
        result.unknown(format!(
            "{unchecked} acknowledged ciphertexts were never decrypted in the final phase"
        ));
    }
    result.stats = json!({
        "acknowledged_ciphertexts": encrypted,
        "verified": verified,
        "excused_key_unusable": excused,
        "unchecked": unchecked,
    });
    result.timed(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{meta, Script};
    use crate::check::Validity;
    use crate::history::KeyStatus::*;

    fn encrypted(s: &mut Script, key: &str, pt: &str, ct: &str) {
        s.call(
            1,
            F::Encrypt,
            key,
            Value::Plaintext(pt.into()),
            Value::Encrypted {
                plaintext: pt.into(),
                ciphertext: ct.into(),
            },
        );
    }

    fn decrypt(s: &mut Script, key: &str, ct: &str, got: Result<&str, &str>) {
        s.invoke(2, F::Decrypt, key, Value::Ciphertext(ct.into()));
        match got {
            Ok(pt) => s.ok(2, F::Decrypt, key, Value::Plaintext(pt.into())),
            Err(_) => s.ev(2, OpType::Fail, F::Decrypt, Some(key), Value::None),
        };
    }

    fn result(s: &Script) -> CheckResult {
        check(&s.history().calls().unwrap())
    }

    #[test]
    fn every_ciphertext_decrypting_to_its_plaintext_is_valid() {
        let mut s = Script::default();
        s.create(1, "k", "a");
        encrypted(&mut s, "k", "p1", "c1");
        decrypt(&mut s, "k", "c1", Ok("p1"));
        let r = result(&s);
        assert_eq!(r.validity, Validity::Valid);
        assert_eq!(r.stats["verified"], 1);
    }

    #[test]
    fn a_ciphertext_that_fails_under_an_enabled_key_is_undecryptable() {
        let mut s = Script::default();
        s.create(1, "k", "a");
        encrypted(&mut s, "k", "p1", "c1");
        s.read(3, "k", meta("a", Enabled));
        decrypt(&mut s, "k", "c1", Err("InvalidCiphertextException"));
        let r = result(&s);
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::Undecryptable);
    }

    #[test]
    fn a_failure_under_a_disabled_key_is_excused_but_a_wrong_plaintext_never_is() {
        let mut s = Script::default();
        s.create(1, "k", "a");
        encrypted(&mut s, "k", "p1", "c1");
        encrypted(&mut s, "k", "p2", "c2");
        s.read(3, "k", meta("a", Disabled));
        decrypt(&mut s, "k", "c1", Err("DisabledException"));
        let r = result(&s);
        assert_eq!(r.stats["excused_key_unusable"], 1);
        assert_eq!(r.validity, Validity::Unknown, "c2 was never decrypted");
        decrypt(&mut s, "k", "c2", Ok("p1"));
        let r = result(&s);
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::WrongPlaintext);
    }
}
