//! Key policies. For now only AWS's default key policy; the policy language and its
//! evaluation arrive with the access-control work.

/// The key policy AWS attaches when CreateKey is called without one: it delegates to the
/// account's IAM policies by allowing the account root everything. Formatted the way AWS
/// returns it from GetKeyPolicy (two-space indent, `" : "` separators).
pub fn default_key_policy(account_id: &str) -> String {
    // serde_json quotes and escapes, so an odd account id cannot break the document.
    let principal = serde_json::Value::String(format!("arn:aws:iam::{account_id}:root"));
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : {principal}
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_json_allowing_the_account_root_everything() {
        let doc: serde_json::Value =
            serde_json::from_str(&default_key_policy("111122223333")).unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Id"], "key-default-1");
        let st = &doc["Statement"][0];
        assert_eq!(st["Sid"], "Enable IAM User Permissions");
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
        assert_eq!(st["Action"], "kms:*");
        assert_eq!(st["Resource"], "*");
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn default_policy_is_pretty_printed_like_aws() {
        let p = default_key_policy("111122223333");
        assert!(p.starts_with("{\n  \"Version\" : \"2012-10-17\",\n"));
        assert!(p.contains("\"Statement\" : [ {\n"));
        assert!(p.contains("\"AWS\" : \"arn:aws:iam::111122223333:root\""));
        assert!(p.ends_with("} ]\n}"));
    }

    #[test]
    fn default_policy_escapes_a_hostile_account_id() {
        let p = default_key_policy("1\"}, \"x\": {\"");
        let doc: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(
            doc["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::1\"}, \"x\": {\":root"
        );
    }
}
