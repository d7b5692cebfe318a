//! The built `kmsctl` binary against a real dev region, configured only by `--env-file`, used
//! the way the README and AWS CLI habits suggest: blobs through `fileb://`, `--query ... --output
//! text` piped through `base64 -d`, AWS error text on stderr and AWS CLI exit codes.

use crate::common::{port_base_for, DevRegion, Kmsctl};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_encrypts_and_decrypts_files_like_the_aws_cli() {
    let region = DevRegion::start(port_base_for(18));
    let kmsctl = Kmsctl::new(&region);
    let work = tempfile::tempdir().unwrap();

    let created = kmsctl.json(&["create-key", "--description", "demo"]);
    let meta = &created["KeyMetadata"];
    let key_id = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["Description"], "demo");
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Enabled"], true);
    assert_eq!(meta["AWSAccountId"], "111122223333");
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}")
    );
    assert!(
        meta["CreationDate"].as_str().unwrap().ends_with("+00:00"),
        "ISO 8601 like the AWS CLI: {}",
        meta["CreationDate"]
    );

    // Binary plaintext (every byte value) survives fileb:// -> base64 text -> base64 -d.
    let plaintext: Vec<u8> = (0..=255u8).chain(*b"config.json\n").collect();
    let input = work.path().join("config.json");
    std::fs::write(&input, &plaintext).unwrap();
    let fileb_in = format!("fileb://{}", input.display());
    let sealed = work.path().join("config.enc");
    kmsctl.base64_decode_into(
        &[
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &fileb_in,
            "--encryption-context",
            "app=orders",
            "--query",
            "CiphertextBlob",
            "--output",
            "text",
        ],
        &sealed,
    );
    let ciphertext = std::fs::read(&sealed).unwrap();
    assert!(!ciphertext.is_empty());
    assert!(!ciphertext.windows(11).any(|w| w == b"config.json"));

    let fileb_sealed = format!("fileb://{}", sealed.display());
    let opened = work.path().join("config.out");
    kmsctl.base64_decode_into(
        &[
            "decrypt",
            "--ciphertext-blob",
            &fileb_sealed,
            "--encryption-context",
            "app=orders",
            "--query",
            "Plaintext",
            "--output",
            "text",
        ],
        &opened,
    );
    assert_eq!(std::fs::read(&opened).unwrap(), plaintext);

    // Full JSON output of decrypt names the key by ARN; JSON contexts work as shorthand does.
    let out = kmsctl.json(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb_sealed,
        "--encryption-context",
        r#"{"app":"orders"}"#,
    ]);
    assert_eq!(out["KeyId"], meta["Arn"]);
    assert_eq!(out["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");

    // The context is bound to the ciphertext.
    let (code, stderr) = kmsctl.fails(&[
        "decrypt",
        "--ciphertext-blob",
        &fileb_sealed,
        "--encryption-context",
        "app=billing",
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "An error occurred (InvalidCiphertextException) when calling the Decrypt operation"
        ),
        "{stderr}"
    );

    // list-keys pages through everything by default.
    let second = kmsctl.json(&["create-key"]);
    let second_id = second["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let listed = kmsctl.json(&["list-keys"]);
    let mut ids: Vec<_> = listed["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![key_id.clone(), second_id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(listed["Truncated"], false);
    let page = kmsctl.json(&["list-keys", "--limit", "1"]);
    assert_eq!(page["Keys"].as_array().unwrap().len(), 1);
    assert_eq!(page["Truncated"], true);
    assert!(page["NextMarker"].is_string());

    // Aliases: create-alias prints nothing, list-aliases shows the target, and the alias
    // works wherever a key id does.
    let out = kmsctl.ok(&[
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &key_id,
    ]);
    assert_eq!(out, "");
    let aliases = kmsctl.json(&["list-aliases"]);
    let orders = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/orders")
        .unwrap_or_else(|| panic!("alias/orders not listed: {aliases}"));
    assert_eq!(orders["TargetKeyId"], key_id.as_str());
    assert_eq!(
        orders["AliasArn"],
        "arn:aws:kms:us-east-1:111122223333:alias/orders"
    );
    let arn = kmsctl.ok(&[
        "describe-key",
        "--key-id",
        "alias/orders",
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ]);
    assert_eq!(arn.trim(), meta["Arn"].as_str().unwrap());
    let via_alias = kmsctl.json(&[
        "encrypt",
        "--key-id",
        "alias/orders",
        "--plaintext",
        "literal text",
    ]);
    assert_eq!(via_alias["KeyId"], meta["Arn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_reports_failures_with_aws_cli_messages_and_exit_codes() {
    let region = DevRegion::start(port_base_for(19));
    let kmsctl = Kmsctl::new(&region);

    // A service error: exit 254, the AWS CLI's sentence on stderr, nothing on stdout.
    let (code, stderr) = kmsctl.fails(&["describe-key", "--key-id", "alias/nope"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "An error occurred (NotFoundException) when calling the DescribeKey operation"
        ),
        "{stderr}"
    );

    // The app identity, chosen by flags over the env file, is denied.
    let (code, stderr) = kmsctl.fails(&[
        "--client-cert",
        &region.var("KMS_ALT_CLIENT_CERT"),
        "--client-key",
        &region.var("KMS_ALT_CLIENT_KEY"),
        "create-key",
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("An error occurred (AccessDeniedException) when calling the CreateKey"),
        "{stderr}"
    );

    // Bad arguments never reach the service: exit 252.
    let (code, stderr) = kmsctl.fails(&[
        "encrypt",
        "--key-id",
        "alias/x",
        "--plaintext",
        "fileb:///definitely/not/here",
    ]);
    assert_eq!(code, 252, "{stderr}");
    assert!(stderr.contains("--plaintext"), "{stderr}");
    let (code, stderr) = kmsctl.fails(&["encrypt", "--plaintext", "x"]);
    assert_eq!(code, 252, "missing --key-id: {stderr}");

    // No front answering: exit 255, the AWS CLI's connection message.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let (code, stderr) = kmsctl.fails(&[
        "--endpoint",
        &dead,
        "--max-attempts",
        "1",
        "generate-random",
        "--number-of-bytes",
        "8",
    ]);
    assert_eq!(code, 255, "{stderr}");
    assert!(
        stderr.contains("Could not connect to the endpoint"),
        "{stderr}"
    );

    // The same command against the region's endpoint works, and shapes its output as AWS.
    let random = kmsctl.json(&["generate-random", "--number-of-bytes", "8"]);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(random["Plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_signs_verifies_exports_public_keys_and_rotates_like_the_aws_cli() {
    let region = DevRegion::start(port_base_for(63));
    let kmsctl = Kmsctl::new(&region);
    let work = tempfile::tempdir().unwrap();

    let created = kmsctl.json(&[
        "create-key",
        "--key-spec",
        "ECC_NIST_P256",
        "--key-usage",
        "SIGN_VERIFY",
    ]);
    let meta = &created["KeyMetadata"];
    let key_id = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["KeySpec"], "ECC_NIST_P256");
    assert_eq!(meta["KeyUsage"], "SIGN_VERIFY");
    assert_eq!(
        meta["SigningAlgorithms"],
        serde_json::json!(["ECDSA_SHA_256"])
    );
    assert!(meta.get("EncryptionAlgorithms").is_none(), "{meta}");

    // sign --message fileb:// | base64 -d > sig; verify --signature fileb://sig.
    let message = work.path().join("release.tar");
    std::fs::write(&message, (0..=255u8).cycle().take(3000).collect::<Vec<_>>()).unwrap();
    let fileb_message = format!("fileb://{}", message.display());
    let sig = work.path().join("release.sig");
    kmsctl.base64_decode_into(
        &[
            "sign",
            "--key-id",
            &key_id,
            "--message",
            &fileb_message,
            "--message-type",
            "RAW",
            "--signing-algorithm",
            "ECDSA_SHA_256",
            "--query",
            "Signature",
            "--output",
            "text",
        ],
        &sig,
    );
    let fileb_sig = format!("fileb://{}", sig.display());
    let verify = |sig_arg: &str| {
        vec![
            "verify".to_string(),
            "--key-id".into(),
            key_id.clone(),
            "--message".into(),
            fileb_message.clone(),
            "--message-type".into(),
            "RAW".into(),
            "--signature".into(),
            sig_arg.to_string(),
            "--signing-algorithm".into(),
            "ECDSA_SHA_256".into(),
        ]
    };
    let args = verify(&fileb_sig);
    let out = kmsctl.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out["SignatureValid"], true);
    assert_eq!(out["KeyId"], meta["Arn"]);
    assert_eq!(out["SigningAlgorithm"], "ECDSA_SHA_256");

    let mut tampered = std::fs::read(&sig).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad_sig = work.path().join("tampered.sig");
    std::fs::write(&bad_sig, tampered).unwrap();
    let args = verify(&format!("fileb://{}", bad_sig.display()));
    let (code, stderr) = kmsctl.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains(
            "An error occurred (KMSInvalidSignatureException) when calling the Verify operation"
        ),
        "{stderr}"
    );

    // get-public-key --output text --query PublicKey | base64 -d: the DER key AWS's API returns.
    let der = work.path().join("public.der");
    kmsctl.base64_decode_into(
        &[
            "get-public-key",
            "--key-id",
            &key_id,
            "--output",
            "text",
            "--query",
            "PublicKey",
        ],
        &der,
    );
    let over_json = region
        .admin_client()
        .get_public_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&der).unwrap(),
        over_json.public_key().unwrap().as_ref()
    );
    let public = kmsctl.json(&["get-public-key", "--key-id", &key_id]);
    assert_eq!(public["KeySpec"], "ECC_NIST_P256");
    assert_eq!(public["KeyUsage"], "SIGN_VERIFY");
    assert_eq!(
        public["SigningAlgorithms"],
        serde_json::json!(["ECDSA_SHA_256"])
    );

    // HMAC keys: generate-mac and verify-mac with fileb://.
    let hmac = kmsctl.json(&[
        "create-key",
        "--key-spec",
        "HMAC_256",
        "--key-usage",
        "GENERATE_VERIFY_MAC",
    ]);
    let hmac_id = hmac["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let mac = work.path().join("release.mac");
    kmsctl.base64_decode_into(
        &[
            "generate-mac",
            "--key-id",
            &hmac_id,
            "--message",
            &fileb_message,
            "--mac-algorithm",
            "HMAC_SHA_256",
            "--query",
            "Mac",
            "--output",
            "text",
        ],
        &mac,
    );
    let out = kmsctl.json(&[
        "verify-mac",
        "--key-id",
        &hmac_id,
        "--message",
        &fileb_message,
        "--mac-algorithm",
        "HMAC_SHA_256",
        "--mac",
        &format!("fileb://{}", mac.display()),
    ]);
    assert_eq!(out["MacValid"], true);

    // ECDH between two keys: derive-shared-secret --public-key fileb:// agrees both ways.
    let mut agreement = Vec::new();
    for name in ["a", "b"] {
        let k = kmsctl.json(&[
            "create-key",
            "--key-spec",
            "ECC_NIST_P256",
            "--key-usage",
            "KEY_AGREEMENT",
        ]);
        let id = k["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        assert_eq!(
            k["KeyMetadata"]["KeyAgreementAlgorithms"],
            serde_json::json!(["ECDH"])
        );
        let der = work.path().join(format!("{name}.der"));
        kmsctl.base64_decode_into(
            &[
                "get-public-key",
                "--key-id",
                &id,
                "--query",
                "PublicKey",
                "--output",
                "text",
            ],
            &der,
        );
        agreement.push((id, format!("fileb://{}", der.display())));
    }
    let derive = |key: &str, peer: &str| {
        kmsctl.json(&[
            "derive-shared-secret",
            "--key-id",
            key,
            "--key-agreement-algorithm",
            "ECDH",
            "--public-key",
            peer,
        ])
    };
    let ab = derive(&agreement[0].0, &agreement[1].1);
    let ba = derive(&agreement[1].0, &agreement[0].1);
    assert!(ab["SharedSecret"].is_string());
    assert_eq!(ab["SharedSecret"], ba["SharedSecret"]);
    assert_eq!(ab["KeyAgreementAlgorithm"], "ECDH");

    // generate-data-key-pair: the sealed private key decrypts to the plaintext one.
    let wrapping = kmsctl.json(&["create-key"]);
    let wrapping_id = wrapping["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let pair = kmsctl.json(&[
        "generate-data-key-pair",
        "--key-id",
        &wrapping_id,
        "--key-pair-spec",
        "ECC_NIST_P256",
        "--encryption-context",
        "device=7",
    ]);
    assert_eq!(pair["KeyPairSpec"], "ECC_NIST_P256");
    let sealed = work.path().join("private.enc");
    {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(pair["PrivateKeyCiphertextBlob"].as_str().unwrap())
            .unwrap();
        std::fs::write(&sealed, bytes).unwrap();
    }
    let opened = kmsctl.json(&[
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", sealed.display()),
        "--encryption-context",
        "device=7",
    ]);
    assert_eq!(opened["Plaintext"], pair["PrivateKeyPlaintext"]);
    let without = kmsctl.json(&[
        "generate-data-key-pair-without-plaintext",
        "--key-id",
        &wrapping_id,
        "--key-pair-spec",
        "RSA_2048",
    ]);
    assert!(without.get("PrivateKeyPlaintext").is_none());
    assert!(without["PublicKey"].is_string());

    // Rotation: rotate-key-on-demand answers the key id; the rotation is listed once.
    let symmetric = kmsctl.json(&["create-key"]);
    let sym_id = symmetric["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let status = kmsctl.json(&["get-key-rotation-status", "--key-id", &sym_id]);
    assert_eq!(status["KeyRotationEnabled"], false);
    let out = kmsctl.json(&["rotate-key-on-demand", "--key-id", &sym_id]);
    assert_eq!(out["KeyId"], sym_id.as_str());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let listed = loop {
        let listed = kmsctl.json(&["list-key-rotations", "--key-id", &sym_id]);
        if !listed["Rotations"].as_array().unwrap().is_empty() {
            break listed;
        }
        assert!(std::time::Instant::now() < deadline, "no rotation listed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let rotations = listed["Rotations"].as_array().unwrap();
    assert_eq!(rotations.len(), 1, "{listed}");
    assert_eq!(rotations[0]["RotationType"], "ON_DEMAND");
    assert_eq!(rotations[0]["KeyId"], sym_id.as_str());
    assert!(rotations[0]["RotationDate"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert_eq!(listed["Truncated"], false);
    let out = kmsctl.ok(&[
        "enable-key-rotation",
        "--key-id",
        &sym_id,
        "--rotation-period-in-days",
        "180",
    ]);
    assert_eq!(out, "");
    let days = kmsctl.ok(&[
        "get-key-rotation-status",
        "--key-id",
        &sym_id,
        "--query",
        "RotationPeriodInDays",
        "--output",
        "text",
    ]);
    assert_eq!(days.trim(), "180");

    // Asymmetric keys do not rotate: AWS's error and exit code.
    let (code, stderr) = kmsctl.fails(&["rotate-key-on-demand", "--key-id", &key_id]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("(UnsupportedOperationException) when calling the RotateKeyOnDemand"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_imports_key_material_like_the_aws_cli() {
    let region = DevRegion::start(port_base_for(72));
    let kmsctl = Kmsctl::new(&region);
    let work = tempfile::tempdir().unwrap();

    let created = kmsctl.json(&["create-key", "--origin", "EXTERNAL"]);
    let meta = &created["KeyMetadata"];
    assert_eq!(meta["Origin"], "EXTERNAL");
    assert_eq!(meta["KeyState"], "PendingImport");
    let key_id = meta["KeyId"].as_str().unwrap().to_string();

    let params = kmsctl.json(&[
        "get-parameters-for-import",
        "--key-id",
        &key_id,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--wrapping-key-spec",
        "RSA_2048",
    ]);
    assert!(
        params["KeyId"].as_str().unwrap().ends_with(&key_id),
        "{params}"
    );
    assert!(
        params["ParametersValidTo"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"),
        "{params}"
    );
    // The token and public key of one call belong together (each call makes new ones).
    let token = work.path().join("token.bin");
    let public = work.path().join("public.der");
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    std::fs::write(&token, b64(&params["ImportToken"])).unwrap();
    std::fs::write(&public, b64(&params["PublicKey"])).unwrap();

    // Wrapped offline (keyraft's own RSA-OAEP; tests use no crypto crate directly).
    let material = [0x5au8; 32];
    let wrapped = keystore::rsa_encrypt::encrypt_with_public_key(
        keystore::spec::AwsKeySpec::parse("RSA_2048").unwrap(),
        &std::fs::read(&public).unwrap(),
        keystore::spec::EncryptionAlgorithm::parse("RSAES_OAEP_SHA_256").unwrap(),
        &material,
    )
    .unwrap();
    let encrypted = work.path().join("material.enc");
    std::fs::write(&encrypted, wrapped).unwrap();

    // ValidTo within AWS's 365 days, given in ISO 8601 with a `Z` as AWS CLI users write it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid_to = client::cli::iso8601(((now / 86_400 + 30) * 86_400) as f64);
    let valid_to_arg = valid_to.replace("+00:00", "Z");
    let out = kmsctl.ok(&[
        "import-key-material",
        "--key-id",
        &key_id,
        "--import-token",
        &format!("fileb://{}", token.display()),
        "--encrypted-key-material",
        &format!("fileb://{}", encrypted.display()),
        "--expiration-model",
        "KEY_MATERIAL_EXPIRES",
        "--valid-to",
        &valid_to_arg,
    ]);
    assert_eq!(out, "", "ImportKeyMaterial prints nothing, as the AWS CLI");
    let meta = &kmsctl.json(&["describe-key", "--key-id", &key_id])["KeyMetadata"];
    assert_eq!(meta["KeyState"], "Enabled", "{meta}");
    assert_eq!(meta["ExpirationModel"], "KEY_MATERIAL_EXPIRES", "{meta}");
    assert_eq!(meta["ValidTo"], valid_to.as_str(), "{meta}");

    let encrypted = kmsctl.json(&["encrypt", "--key-id", &key_id, "--plaintext", "byok"]);
    assert!(encrypted["KeyId"].as_str().unwrap().ends_with(&key_id));
    let blob = work.path().join("blob");
    std::fs::write(&blob, b64(&encrypted["CiphertextBlob"])).unwrap();
    let plain = work.path().join("plain");
    kmsctl.base64_decode_into(
        &[
            "decrypt",
            "--ciphertext-blob",
            &format!("fileb://{}", blob.display()),
            "--query",
            "Plaintext",
            "--output",
            "text",
        ],
        &plain,
    );
    assert_eq!(std::fs::read(&plain).unwrap(), b"byok");

    // A token that is not the key's: AWS's error text and exit code.
    let (code, stderr) = kmsctl.fails(&[
        "import-key-material",
        "--key-id",
        &key_id,
        "--import-token",
        "bm90IGEgdG9rZW4=",
        "--encrypted-key-material",
        &format!("fileb://{}", work.path().join("material.enc").display()),
        "--cli-binary-format",
        "base64",
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("(InvalidImportTokenException) when calling the ImportKeyMaterial"),
        "{stderr}"
    );

    kmsctl.ok(&["delete-imported-key-material", "--key-id", &key_id]);
    let (code, stderr) = kmsctl.fails(&["encrypt", "--key-id", &key_id, "--plaintext", "x"]);
    assert_eq!(code, 254, "{stderr}");
    assert!(stderr.contains("KMSInvalidStateException"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_compliance_report_names_the_keys_and_principals_a_weekly_job_looks_for() {
    let region = DevRegion::start(port_base_for(140));
    let admin = region.admin_client();
    let app = region.app_client();
    let new_key = |description: &'static str| {
        let admin = admin.clone();
        async move {
            let md = admin
                .create_key()
                .description(description)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            (md.key_id().to_string(), md.arn().unwrap().to_string())
        }
    };
    let (rotating, rotating_arn) = new_key("rotating").await;
    let (unrotated, _) = new_key("never rotated").await;
    let (doomed, _) = new_key("doomed").await;
    admin
        .enable_key_rotation()
        .key_id(&rotating)
        .send()
        .await
        .unwrap();
    admin
        .schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    admin
        .encrypt()
        .key_id(&rotating)
        .plaintext(aws_sdk_kms::primitives::Blob::new("used"))
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let denied = app
            .encrypt()
            .key_id(&rotating)
            .plaintext(aws_sdk_kms::primitives::Blob::new("nope"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(crate::common::error_code(&denied), "AccessDeniedException");
    }

    let kmsctl = Kmsctl::new(&region);
    // Findings: printed all the same, exit code 3 for the scheduled job.
    let out = kmsctl.run(&["compliance", "report"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f["keyId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&report["keysWithoutRotation"]), vec![unrotated.clone()]);
    assert_eq!(ids(&report["keysPendingDeletion"]), vec![doomed.clone()]);
    assert!(ids(&report["unusedKeys"]).is_empty(), "{report}");
    assert_eq!(
        report["deniedCallsByPrincipal"]["arn:aws:iam::111122223333:role/App"],
        2
    );
    let by_key = &report["callsByKey"][&rotating_arn];
    assert!(by_key["calls"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(by_key["denied"], 2);

    // With a zero-day threshold every enabled key counts as unused, the used one included.
    let out = kmsctl.run(&["compliance", "report", "--unused-days", "0"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unused = ids(&report["unusedKeys"]);
    assert!(
        unused.contains(&unrotated) && unused.contains(&rotating),
        "{report}"
    );
    assert!(
        !unused.contains(&doomed),
        "pending deletion is its own finding"
    );

    let out = kmsctl.run(&["--output", "table", "compliance", "report"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Customer keys without automatic rotation: 1"),
        "{text}"
    );
    assert!(text.contains("Keys pending deletion: 1"), "{text}");
    assert!(text.contains("Verdict: findings above"), "{text}");

    // A bad period is a usage error, like the AWS CLI's.
    let (code, stderr) = kmsctl.fails(&[
        "compliance",
        "report",
        "--start-time",
        "2030-01-02T00:00:00Z",
        "--end-time",
        "2030-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 252, "{stderr}");
}
