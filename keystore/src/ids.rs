//! Identifiers: key ids and the ARNs that name keys and aliases.

/// A new key id: a random (v4) UUID in lowercase hyphenated form, as AWS uses.
pub fn new_key_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// `arn:aws:kms:<region>:<account>:key/<key_id>`.
pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// `arn:aws:kms:<region>:<account>:alias/<name>`. `alias_name` normally includes the
/// `alias/` prefix (as in the API); it is added if missing.
pub fn alias_arn(region: &str, account: &str, alias_name: &str) -> String {
    if alias_name.starts_with("alias/") {
        format!("arn:aws:kms:{region}:{account}:{alias_name}")
    } else {
        format!("arn:aws:kms:{region}:{account}:alias/{alias_name}")
    }
}

/// Splits a KMS ARN `arn:<partition>:kms:<region>:<account>:<resource>` into
/// `(region, account, resource)`, e.g. `("us-east-1", "111122223333", "key/1234…")`.
/// `None` for anything else: another service, an empty region, account or resource, or a
/// partition other than `aws`, `aws-cn`, `aws-us-gov` and the other `aws-*` ones.
pub fn parse_kms_arn(arn: &str) -> Option<(String, String, String)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let partition_ok = partition == "aws" || partition.starts_with("aws-");
    if prefix != "arn" || !partition_ok || service != "kms" {
        return None;
    }
    if region.is_empty() || account.is_empty() || resource.is_empty() {
        return None;
    }
    Some((region.to_owned(), account.to_owned(), resource.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_key_ids_are_lowercase_hyphenated_v4_uuids() {
        let id = new_key_id();
        assert_eq!(id.len(), 36);
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id, id.to_lowercase());
    }

    #[test]
    fn new_key_ids_differ() {
        assert_ne!(new_key_id(), new_key_id());
    }

    #[test]
    fn key_arn_has_the_aws_shape() {
        assert_eq!(
            key_arn("us-east-1", "111122223333", "abcd"),
            "arn:aws:kms:us-east-1:111122223333:key/abcd"
        );
    }

    #[test]
    fn alias_arn_uses_the_alias_prefix_exactly_once() {
        let want = "arn:aws:kms:eu-west-1:111122223333:alias/app";
        assert_eq!(alias_arn("eu-west-1", "111122223333", "alias/app"), want);
        assert_eq!(alias_arn("eu-west-1", "111122223333", "app"), want);
    }

    #[test]
    fn parse_kms_arn_round_trips_key_and_alias_arns() {
        let arn = key_arn("us-west-2", "111122223333", "k-1");
        assert_eq!(
            parse_kms_arn(&arn),
            Some(("us-west-2".into(), "111122223333".into(), "key/k-1".into()))
        );
        let arn = alias_arn("us-west-2", "111122223333", "alias/a:b");
        assert_eq!(
            parse_kms_arn(&arn).map(|t| t.2),
            Some("alias/a:b".to_string())
        );
    }

    #[test]
    fn parse_kms_arn_accepts_other_aws_partitions() {
        assert!(parse_kms_arn("arn:aws-cn:kms:cn-north-1:111122223333:key/x").is_some());
        assert!(parse_kms_arn("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/x").is_some());
    }

    #[test]
    fn parse_kms_arn_rejects_non_kms_and_malformed_arns() {
        for bad in [
            "",
            "arn",
            "arn:aws:kms",
            "arn:aws:kms:us-east-1:111122223333",
            "arn:aws:kms:us-east-1:111122223333:",
            "arn:aws:kms::111122223333:key/x",
            "arn:aws:kms:us-east-1::key/x",
            "arn:aws:iam::111122223333:root",
            "arn:gcp:kms:us-east-1:111122223333:key/x",
            "urn:aws:kms:us-east-1:111122223333:key/x",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/foo",
        ] {
            assert_eq!(parse_kms_arn(bad), None, "{bad:?}");
        }
    }
}
