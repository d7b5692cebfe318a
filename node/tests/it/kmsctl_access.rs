//! The built `kmsctl` binary against a real dev region, for access control: put/get/list key
//! policies and create/list/retire/revoke grants the way the AWS CLI does them, with grant
//! tokens passed to the crypto commands (`--grant-tokens t1,t2`).

use crate::common::{port_base_for, DevRegion, Kmsctl};

const APP_ARN: &str = "arn:aws:iam::111122223333:role/App";
const ROOT_ARN: &str = "arn:aws:iam::111122223333:root";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_manages_key_policies_and_grants_like_the_aws_cli() {
    let region = DevRegion::start(port_base_for(92));
    let (admin, app) = (Kmsctl::new(&region), Kmsctl::app(&region));
    let work = tempfile::tempdir().unwrap();
    let key_id = admin.ok(&[
        "create-key",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    let key_id = key_id.trim();
    let key_arn = format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}");

    // The app is denied until a grant or a policy lets it in.
    let (code, err) = app.fails(&["encrypt", "--key-id", key_id, "--plaintext", "x"]);
    assert_eq!(code, 254);
    assert!(
        err.contains(
            "An error occurred (AccessDeniedException) when calling the Encrypt operation"
        ),
        "{err}"
    );

    // create-grant with comma-separated operations and a shorthand constraint.
    let grant = admin.json(&[
        "create-grant",
        "--key-id",
        key_id,
        "--grantee-principal",
        APP_ARN,
        "--operations",
        "Encrypt,Decrypt",
        "--retiring-principal",
        APP_ARN,
        "--name",
        "cli-grant",
        "--constraints-encryption-context-subset",
        "team=blue",
    ]);
    let token = grant["GrantToken"].as_str().unwrap().to_string();
    let grant_id = grant["GrantId"].as_str().unwrap().to_string();
    assert_eq!(grant_id.len(), 64);

    // The token works at once, also as one of several comma-separated tokens.
    let tokens = format!("{token},{token}");
    let ct = app.json(&[
        "encrypt",
        "--key-id",
        key_id,
        "--plaintext",
        "secret",
        "--encryption-context",
        "team=blue,env=prod",
        "--grant-tokens",
        &tokens,
    ]);
    let blob = work.path().join("ct.bin");
    std::fs::write(&blob, base64_decode(ct["CiphertextBlob"].as_str().unwrap())).unwrap();
    let pt = app.ok(&[
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", blob.display()),
        "--encryption-context",
        "team=blue,env=prod",
        "--grant-tokens",
        &token,
        "--query",
        "Plaintext",
        "--output",
        "text",
    ]);
    assert_eq!(base64_decode(pt.trim()), b"secret");
    // The subset constraint: another team is denied even with the token.
    let (code, _) = app.fails(&[
        "encrypt",
        "--key-id",
        key_id,
        "--plaintext",
        "x",
        "--encryption-context",
        "team=red",
        "--grant-tokens",
        &token,
    ]);
    assert_eq!(code, 254);

    // list-grants shows the grant in the AWS CLI's shape.
    let listed = admin.json(&["list-grants", "--key-id", key_id]);
    assert_eq!(listed["Truncated"], false);
    let g = &listed["Grants"][0];
    assert_eq!(g["GrantId"], grant_id.as_str());
    assert_eq!(g["KeyId"], key_arn.as_str());
    assert_eq!(g["Name"], "cli-grant");
    assert_eq!(g["GranteePrincipal"], APP_ARN);
    assert_eq!(g["RetiringPrincipal"], APP_ARN);
    assert_eq!(g["IssuingAccount"], ROOT_ARN);
    assert_eq!(g["Operations"], serde_json::json!(["Encrypt", "Decrypt"]));
    assert_eq!(
        g["Constraints"],
        serde_json::json!({ "EncryptionContextSubset": { "team": "blue" } })
    );
    assert!(g["CreationDate"].as_str().unwrap().ends_with("+00:00"));
    let retirable = admin.json(&["list-retirable-grants", "--retiring-principal", APP_ARN]);
    assert_eq!(retirable["Grants"][0]["GrantId"], grant_id.as_str());

    // retire-grant by token (as the retiring principal): the token stops at once, and the
    // command prints nothing, like the AWS CLI.
    assert_eq!(app.ok(&["retire-grant", "--grant-token", &token]), "");
    let (code, err) = app.fails(&[
        "encrypt",
        "--key-id",
        key_id,
        "--plaintext",
        "x",
        "--encryption-context",
        "team=blue",
        "--grant-tokens",
        &token,
    ]);
    assert_eq!(code, 254);
    assert!(err.contains("AccessDeniedException"), "{err}");
    let listed = admin.json(&["list-grants", "--key-id", key_id]);
    assert_eq!(listed["Grants"], serde_json::json!([]));

    // revoke-grant, and an unknown grant id.
    let second = admin.json(&[
        "create-grant",
        "--key-id",
        key_id,
        "--grantee-principal",
        APP_ARN,
        "--operations",
        "GenerateDataKey",
    ]);
    let second_id = second["GrantId"].as_str().unwrap();
    assert_eq!(
        admin.ok(&["revoke-grant", "--key-id", key_id, "--grant-id", second_id]),
        ""
    );
    let (code, err) = admin.fails(&["retire-grant", "--key-id", key_id, "--grant-id", second_id]);
    assert_eq!(code, 254);
    assert!(
        err.contains(
            "An error occurred (InvalidGrantIdException) when calling the RetireGrant operation"
        ),
        "{err}"
    );
    // Half of the key + grant id pair is a usage error, as in the AWS CLI.
    let (code, _) = admin.fails(&["retire-grant", "--key-id", key_id]);
    assert_eq!(code, 252);

    // put-key-policy from a file, get-key-policy returns it as written.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": { "AWS": ROOT_ARN },
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "App encrypts for team blue",
                "Effect": "Allow",
                "Principal": { "AWS": APP_ARN },
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": { "StringEquals": { "kms:EncryptionContext:team": "blue" } }
            }
        ]
    })
    .to_string();
    let policy_file = work.path().join("policy.json");
    std::fs::write(&policy_file, &policy).unwrap();
    assert_eq!(
        admin.ok(&[
            "put-key-policy",
            "--key-id",
            key_id,
            "--policy",
            &format!("file://{}", policy_file.display()),
        ]),
        ""
    );
    let got = admin.json(&["get-key-policy", "--key-id", key_id]);
    assert_eq!(got["Policy"], policy.as_str());
    assert_eq!(got["PolicyName"], "default");
    let text = admin.ok(&[
        "get-key-policy",
        "--key-id",
        &key_arn,
        "--policy-name",
        "default",
        "--query",
        "Policy",
        "--output",
        "text",
    ]);
    assert_eq!(text.trim_end(), policy);
    let names = admin.json(&["list-key-policies", "--key-id", key_id]);
    assert_eq!(names["PolicyNames"], serde_json::json!(["default"]));
    // A policy that locks the admin out is refused; an inline one that is not JSON too.
    let lockout = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{APP_ARN}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let (code, err) = admin.fails(&["put-key-policy", "--key-id", key_id, "--policy", &lockout]);
    assert_eq!(code, 254);
    assert!(
        err.contains("(MalformedPolicyDocumentException) when calling the PutKeyPolicy operation"),
        "{err}"
    );
    let (code, err) = admin.fails(&["put-key-policy", "--key-id", key_id, "--policy", "{"]);
    assert_eq!(code, 254);
    assert!(err.contains("MalformedPolicyDocumentException"), "{err}");
    let (code, err) = admin.fails(&[
        "put-key-policy",
        "--key-id",
        key_id,
        "--policy",
        "file:///nonexistent/policy.json",
    ]);
    assert_eq!(code, 252);
    assert!(err.contains("--policy"), "{err}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64 output")
}
