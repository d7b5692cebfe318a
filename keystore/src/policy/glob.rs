//! Wildcard matching as IAM does it: `*` matches any run of characters (including none),
//! `?` exactly one; there is no escape. ARNs match component by component so that a
//! wildcard never spans a colon between the first five components.

/// Whether `text` matches `pattern`. Iterative with single backtracking to the last `*`,
/// so it is O(len(pattern) * len(text)) at worst and cannot blow the stack on hostile input.
pub(crate) fn glob_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |c: char| -> char {
        if ignore_case {
            // Single-char lowercase keeps indices aligned; multi-char folds are rare in
            // action names and only make the match stricter.
            c.to_lowercase().next().unwrap_or(c)
        } else {
            c
        }
    };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let t: Vec<char> = text.chars().map(fold).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// `ArnLike` matching (also `ArnEquals`, which IAM defines identically, and `Resource`):
/// both sides split into six components on the first five colons, each component matched
/// as a case-sensitive glob. A bare `*` matches anything. A value that is not ARN-shaped
/// matches nothing else.
pub(crate) fn arn_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    if p.len() != 6 || v.len() != 6 {
        return false;
    }
    p.iter().zip(v.iter()).all(|(p, v)| glob_match(p, v, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool, bool)] = &[
            ("kms:*", "kms:Encrypt", true, true),
            ("kms:*", "kmsx:Encrypt", true, false),
            ("kms:Generate*", "kms:GenerateDataKeyPair", true, true),
            ("kms:generate*", "KMS:GenerateDataKey", true, true),
            ("kms:generate*", "kms:GenerateDataKey", false, false),
            ("kms:ReEncrypt*", "kms:ReEncryptFrom", true, true),
            ("kms:ReEncrypt*", "kms:ReEncrypt", true, true),
            ("kms:?ncrypt", "kms:Encrypt", true, true),
            ("kms:?ncrypt", "kms:ncrypt", true, false),
            ("*", "", false, true),
            ("", "", false, true),
            ("", "a", false, false),
            ("a*b*c", "aXXbYYc", false, true),
            ("a*b*c", "aXXbYY", false, false),
            ("a*", "a", false, true),
            ("**", "abc", false, true),
            ("*a", "bbbbbbbbba", false, true),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false),
            ("caf?", "café", false, true),
        ];
        for &(p, t, ic, want) in cases {
            assert_eq!(
                glob_match(p, t, ic),
                want,
                "{p:?} vs {t:?} ignore_case={ic}"
            );
        }
    }

    #[test]
    fn arn_wildcards_do_not_cross_components() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/abc";
        assert!(arn_match("*", key));
        assert!(arn_match("arn:aws:kms:*:111122223333:key/*", key));
        assert!(arn_match("arn:aws:kms:us-east-?:*:*", key));
        assert!(!arn_match("arn:aws:kms:*", key));
        assert!(!arn_match("arn:aws:kms:*:444455556666:key/*", key));
        assert!(!arn_match(
            "arn:aws:kms:us-east-1:111122223333:key/ABC",
            key
        ));
        // The resource component keeps its own colons.
        assert!(arn_match(
            "arn:aws:logs:*:1:log-group:*",
            "arn:aws:logs:r:1:log-group:g:x"
        ));
        assert!(!arn_match("arn:*:*:*:*:*", "not-an-arn"));
    }
}
