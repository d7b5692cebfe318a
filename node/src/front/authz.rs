//! Authorization: the single decision point every operation passes through before it acts.
//!
//! For now the rule is the bootstrap one: an account's root (`arn:aws:iam::<acct>:root`) and
//! identities whose [`IdentityRecord`] says `admin` may do everything with their own account's
//! resources; every other request is denied with AWS's message. Key policies, identity
//! policies and grants replace this function's body with the access-control work; callers
//! already pass everything those need (principal, action, resource, encryption context).

use keystore::model::IdentityRecord;

use super::errors::KmsError;

/// The authenticated caller, whichever transport it came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `arn:aws:iam::<account>:root|user/<name>|role/<name>`.
    pub principal_arn: String,
    /// The principal's account (12 digits).
    pub account_id: String,
}

impl Caller {
    /// A caller from an IAM principal ARN (`arn:aws:iam::<account>:...`); `None` if the ARN
    /// is not an IAM principal ARN. The gRPC adapter uses this for certificate URI SANs.
    pub fn from_principal_arn(arn: &str) -> Option<Caller> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
        let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = prefix == "arn"
            && (partition == "aws" || partition.starts_with("aws-"))
            && (service == "iam" || service == "sts")
            && region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !resource.is_empty();
        ok.then(|| Caller {
            principal_arn: arn.to_string(),
            account_id: account.to_string(),
        })
    }

    /// Whether this is the account's root principal.
    pub fn is_root(&self) -> bool {
        self.principal_arn == format!("arn:aws:iam::{}:root", self.account_id)
    }
}

/// What is being acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The ARN named in denials (`*` for account-level actions like CreateKey).
    pub arn: &'a str,
    /// The account owning the resource.
    pub account_id: &'a str,
}

/// Everything a decision may depend on.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Who.
    pub caller: &'a Caller,
    /// The caller's identity record, if the cluster knows it.
    pub identity: Option<&'a IdentityRecord>,
    /// `kms:Encrypt`, ...
    pub action: &'a str,
    /// On what.
    pub resource: Resource<'a>,
    /// The request's encryption context (for `kms:EncryptionContext:` conditions later).
    pub encryption_context: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// Allow or deny. Pure: the caller looked up the identity record.
pub fn authorize(req: &Request<'_>) -> Result<(), KmsError> {
    let same_account = req.resource.account_id == req.caller.account_id;
    let admin = req.caller.is_root()
        || req.identity.is_some_and(|i| {
            i.admin && i.arn == req.caller.principal_arn && i.account_id == req.caller.account_id
        });
    if same_account && admin {
        return Ok(());
    }
    let why = if same_account {
        format!(
            "because no identity-based policy allows the {} action",
            req.action
        )
    } else {
        format!(
            "because no resource-based policy allows the {} action",
            req.action
        )
    };
    Err(KmsError::AccessDenied(format!(
        "User: {} is not authorized to perform: {} on resource: {} {why}",
        req.caller.principal_arn, req.action, req.resource.arn
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

    fn caller(arn: &str) -> Caller {
        Caller::from_principal_arn(arn).unwrap()
    }

    fn identity(arn: &str, admin: bool) -> IdentityRecord {
        IdentityRecord {
            arn: arn.into(),
            account_id: arn[13..25].into(),
            admin,
        }
    }

    fn decide(c: &Caller, id: Option<&IdentityRecord>, account: &str) -> Result<(), KmsError> {
        authorize(&Request {
            caller: c,
            identity: id,
            action: "kms:Encrypt",
            resource: Resource {
                arn: KEY,
                account_id: account,
            },
            encryption_context: None,
        })
    }

    #[test]
    fn decision_table() {
        let root = caller("arn:aws:iam::111122223333:root");
        let admin = caller("arn:aws:iam::111122223333:user/admin");
        let app = caller("arn:aws:iam::111122223333:role/App");
        let other_root = caller("arn:aws:iam::444455556666:root");
        let admin_rec = identity("arn:aws:iam::111122223333:user/admin", true);
        let app_rec = identity("arn:aws:iam::111122223333:role/App", false);
        let own = "111122223333";
        let table: [(&Caller, Option<&IdentityRecord>, bool); 7] = [
            (&root, None, true),
            (&admin, Some(&admin_rec), true),
            (&admin, None, false),
            (&app, Some(&app_rec), false),
            (&app, None, false),
            (&other_root, None, false),
            // An admin record for someone else does not make this caller an admin.
            (&app, Some(&admin_rec), false),
        ];
        for (c, id, allowed) in table {
            assert_eq!(decide(c, id, own).is_ok(), allowed, "{c:?} {id:?}");
        }
        let admin_other = identity("arn:aws:iam::444455556666:user/admin", true);
        let c = caller("arn:aws:iam::444455556666:user/admin");
        assert!(decide(&c, Some(&admin_other), own).is_err());
    }

    #[test]
    fn denial_uses_aws_message_shape() {
        let app = caller("arn:aws:iam::111122223333:role/App");
        let e = decide(&app, None, "111122223333").unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
        assert_eq!(
            e.to_string(),
            "User: arn:aws:iam::111122223333:role/App is not authorized to perform: kms:Encrypt \
             on resource: arn:aws:kms:us-east-1:111122223333:key/k because no identity-based \
             policy allows the kms:Encrypt action"
        );
    }

    #[test]
    fn principal_arns_parse_strictly() {
        assert_eq!(
            caller("arn:aws:iam::111122223333:root").account_id,
            "111122223333"
        );
        assert!(caller("arn:aws:iam::111122223333:root").is_root());
        assert!(!caller("arn:aws:iam::111122223333:user/root").is_root());
        for bad in [
            "",
            "arn:aws:iam::1111:root",
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "arn:aws:iam:us-east-1:111122223333:root",
            "arn:aws:iam::111122223333:",
            "arn:aws:iam::11112222333x:root",
        ] {
            assert_eq!(Caller::from_principal_arn(bad), None, "{bad}");
        }
    }
}
