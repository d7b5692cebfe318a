"""Identity management: the `KeyraftIam.*` targets of the JSON endpoint, signed with botocore's
SigV4 signer (service name "kms", like every other call), and the `kmsctl iam` subcommands."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpsession import URLLib3Session

ROOT = Path(__file__).resolve().parents[2]

ALLOW_CREATE_KEY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}],
})


def iam(region, operation, body, access_key_id=None, secret=None):
    """One signed `KeyraftIam.<operation>` call; returns (HTTP status, parsed JSON body)."""
    env = region.env
    credentials = Credentials(
        access_key_id or env["AWS_ACCESS_KEY_ID"],
        secret or env["AWS_SECRET_ACCESS_KEY"],
    )
    request = AWSRequest(
        method="POST",
        url=env["KMS_ENDPOINT"] + "/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"KeyraftIam.{operation}",
        },
    )
    SigV4Auth(credentials, "kms", env["AWS_DEFAULT_REGION"]).add_auth(request)
    response = URLLib3Session(verify=env["AWS_CA_BUNDLE"]).send(request.prepare())
    text = response.content.decode() if response.content else ""
    return response.status_code, (json.loads(text) if text else {})


def other(region):
    return {
        "access_key_id": region.env["KMS_OTHER_ACCESS_KEY_ID"],
        "secret": region.env["KMS_OTHER_SECRET_ACCESS_KEY"],
    }


def kms_client(region, access_key_id, secret):
    return boto3.client(
        "kms",
        config=botocore.config.Config(retries={"max_attempts": 1}),
        region_name=region.env["AWS_DEFAULT_REGION"],
        endpoint_url=region.env["KMS_ENDPOINT"],
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        verify=region.env["AWS_CA_BUNDLE"],
    )


def create_key_outcome(region, access_key_id, secret):
    try:
        kms_client(region, access_key_id, secret).create_key()
        return "ok"
    except Exception as e:  # botocore ClientError
        return e.response["Error"]["Code"]


def eventually(check, expected, within=3.0):
    deadline = time.time() + within
    while True:
        got = check()
        if got == expected or time.time() > deadline:
            assert got == expected
            return
        time.sleep(0.1)


def test_principal_access_key_and_policy_lifecycle_over_json(region):
    name = f"role/Py{uuid.uuid4().hex[:8]}"
    status, out = iam(region, "CreatePrincipal", {"PrincipalName": name}, **other(region))
    assert status == 200, out
    arn = out["Principal"]["Arn"]
    assert arn == f"arn:aws:iam::{region.env['KMS_OTHER_ACCOUNT_ID']}:{name}"
    assert out["Principal"]["PolicyNames"] == []

    status, out = iam(region, "CreatePrincipal", {"PrincipalName": name}, **other(region))
    assert (status, out["__type"]) == (400, "AlreadyExistsException")

    status, out = iam(region, "CreateAccessKey", {"PrincipalArn": arn}, **other(region))
    assert status == 200, out
    key_id = out["AccessKey"]["AccessKeyId"]
    secret = out["AccessKey"]["SecretAccessKey"]
    status, out = iam(region, "ListAccessKeys", {"PrincipalArn": arn}, **other(region))
    assert [k["AccessKeyId"] for k in out["AccessKeys"]] == [key_id]
    assert "SecretAccessKey" not in json.dumps(out)

    assert create_key_outcome(region, key_id, secret) == "AccessDeniedException"
    status, out = iam(region, "PutPrincipalPolicy", {
        "PrincipalArn": arn, "PolicyName": "CreateKeys", "PolicyDocument": ALLOW_CREATE_KEY,
    }, **other(region))
    assert status == 200, out
    eventually(lambda: create_key_outcome(region, key_id, secret), "ok")

    status, out = iam(region, "GetPrincipalPolicy",
                      {"PrincipalArn": arn, "PolicyName": "CreateKeys"}, **other(region))
    assert json.loads(out["PolicyDocument"]) == json.loads(ALLOW_CREATE_KEY)
    status, out = iam(region, "ListPrincipalPolicies", {"PrincipalArn": arn}, **other(region))
    assert out["PolicyNames"] == ["CreateKeys"]

    status, out = iam(region, "DeletePrincipalPolicy",
                      {"PrincipalArn": arn, "PolicyName": "CreateKeys"}, **other(region))
    assert status == 200, out
    eventually(lambda: create_key_outcome(region, key_id, secret), "AccessDeniedException")

    status, out = iam(region, "DeletePrincipal", {"PrincipalArn": arn}, **other(region))
    assert status == 200, out
    eventually(lambda: create_key_outcome(region, key_id, secret), "UnrecognizedClientException")


def test_bad_requests_get_aws_shaped_errors(region):
    env = region.env
    cases = [
        ("CreatePrincipal", {}, "ValidationException"),
        ("CreatePrincipal", {"PrincipalName": "admins"}, "ValidationException"),
        ("CreatePrincipal", {"PrincipalName": 7}, "SerializationException"),
        ("GetPrincipal", {"PrincipalArn": "arn:aws:kms:us-east-1:111122223333:key/x"},
         "ValidationException"),
        ("GetPrincipal", {"PrincipalArn": f"arn:aws:iam::{env['KMS_ACCOUNT_ID']}:role/Nobody"},
         "NotFoundException"),
        ("DeletePrincipal", {"PrincipalArn": f"arn:aws:iam::{env['KMS_ACCOUNT_ID']}:root"},
         "ValidationException"),
        ("PutPrincipalPolicy", {"PrincipalArn": env["KMS_ALT_PRINCIPAL_ARN"],
                                "PolicyName": "p", "PolicyDocument": "{not json"},
         "MalformedPolicyDocumentException"),
        ("PutPrincipalPolicy", {"PrincipalArn": env["KMS_ALT_PRINCIPAL_ARN"],
                                "PolicyName": "p", "PolicyDocument": "x" * 7000},
         "LimitExceededException"),
        ("ListPrincipals", {"Limit": 0}, "ValidationException"),
        ("ListPrincipals", {"Marker": "bogus"}, "InvalidMarkerException"),
        ("DeleteAccessKey", {"AccessKeyId": "AKIAAAAAAAAAAAAAAAAA"}, "NotFoundException"),
        ("IssueClientCertificate", {"PrincipalArn": env["KMS_ALT_PRINCIPAL_ARN"],
                                    "ValidityDays": 99999}, "ValidationException"),
        # Another account's principals are out of reach.
        ("GetPrincipal", {"PrincipalArn": env["KMS_OTHER_PRINCIPAL_ARN"]},
         "AccessDeniedException"),
        ("CreateAccessKey", {"PrincipalArn": f"arn:aws:iam::{env['KMS_OTHER_ACCOUNT_ID']}:role/X"},
         "AccessDeniedException"),
    ]
    for operation, body, expected in cases:
        status, out = iam(region, operation, body)
        assert out.get("__type") == expected, (operation, body, status, out)
        expected_status = 400
        assert status == expected_status, (operation, status, out)

    # The unprivileged identity may not manage identities at all.
    status, out = iam(region, "ListPrincipals", {},
                      env["KMS_ALT_ACCESS_KEY_ID"], env["KMS_ALT_SECRET_ACCESS_KEY"])
    assert (status, out["__type"]) == (400, "AccessDeniedException")
    assert "iam:ListPrincipals" in out["message"]

    # An unknown KeyraftIam target is still UnknownOperationException.
    status, out = iam(region, "DoSomething", {})
    assert out["__type"] == "UnknownOperationException"


def kmsctl_binary():
    keyraft = os.environ.get("KEYRAFT_BIN")
    if keyraft:
        candidate = Path(keyraft).parent / "kmsctl"
        if candidate.exists():
            return str(candidate)
    return str(ROOT / "target" / "debug" / "kmsctl")


def kmsctl(region, *args, identity="admin", check=True):
    extra = []
    if identity == "other":
        extra = ["--client-cert", region.env["KMS_OTHER_CLIENT_CERT"],
                 "--client-key", region.env["KMS_OTHER_CLIENT_KEY"]]
    proc = subprocess.run(
        [kmsctl_binary(), "--env-file", str(region.dir / "env"), *extra, "iam", *args],
        capture_output=True, text=True, env=region.cli_env(), timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_kmsctl_iam_subcommands(region, tmp_path):
    name = f"user/cli{uuid.uuid4().hex[:8]}"
    out = json.loads(kmsctl(region, "create-principal", "--principal-name", name).stdout)
    arn = out["Principal"]["Arn"]
    assert arn.endswith(":" + name)

    listed = json.loads(kmsctl(region, "list-principals").stdout)
    assert arn in [p["Arn"] for p in listed["Principals"]]
    page = json.loads(kmsctl(region, "list-principals", "--limit", "1").stdout)
    assert len(page["Principals"]) == 1 and page["Truncated"] is True and page["NextMarker"]

    got = json.loads(kmsctl(region, "get-principal", "--principal-arn", arn).stdout)
    assert got["Principal"]["Arn"] == arn

    key = json.loads(kmsctl(region, "create-access-key", "--principal-arn", arn).stdout)
    key_id = key["AccessKey"]["AccessKeyId"]
    secret = key["AccessKey"]["SecretAccessKey"]
    keys = json.loads(kmsctl(region, "list-access-keys", "--principal-arn", arn).stdout)
    assert [k["AccessKeyId"] for k in keys["AccessKeys"]] == [key_id]

    policy = tmp_path / "policy.json"
    policy.write_text(ALLOW_CREATE_KEY)
    kmsctl(region, "put-principal-policy", "--principal-arn", arn, "--policy-name", "FromFile",
           "--policy-document", f"file://{policy}")
    kmsctl(region, "put-principal-policy", "--principal-arn", arn, "--policy-name", "Inline",
           "--policy-document", ALLOW_CREATE_KEY)
    names = json.loads(kmsctl(region, "list-principal-policies", "--principal-arn", arn).stdout)
    assert names["PolicyNames"] == ["FromFile", "Inline"]
    doc = json.loads(kmsctl(region, "get-principal-policy", "--principal-arn", arn,
                            "--policy-name", "Inline").stdout)
    assert json.loads(doc["PolicyDocument"]) == json.loads(ALLOW_CREATE_KEY)
    eventually(lambda: create_key_outcome(region, key_id, secret), "ok")
    kmsctl(region, "delete-principal-policy", "--principal-arn", arn, "--policy-name", "Inline")
    kmsctl(region, "delete-principal-policy", "--principal-arn", arn, "--policy-name", "FromFile")

    bad = kmsctl(region, "put-principal-policy", "--principal-arn", arn, "--policy-name", "Bad",
                 "--policy-document", "[]", check=False)
    assert bad.returncode == 254
    assert "MalformedPolicyDocumentException" in bad.stderr
    assert "PutPrincipalPolicy" in bad.stderr

    cert, keyfile = tmp_path / "c.pem", tmp_path / "c.key"
    issued = json.loads(kmsctl(region, "issue-client-certificate", "--principal-arn", arn,
                               "--out-cert", str(cert), "--out-key", str(keyfile)).stdout)
    assert "PrivateKeyPem" not in issued
    assert "BEGIN CERTIFICATE" in cert.read_text()
    assert "PRIVATE KEY" in keyfile.read_text()
    assert (keyfile.stat().st_mode & 0o777) == 0o600

    kmsctl(region, "delete-access-key", "--access-key-id", key_id)
    eventually(lambda: create_key_outcome(region, key_id, secret), "UnrecognizedClientException")

    # Cross-account: the other root cannot see this account's principals.
    denied = kmsctl(region, "get-principal", "--principal-arn", arn, identity="other",
                    check=False)
    assert denied.returncode == 254 and "AccessDeniedException" in denied.stderr

    kmsctl(region, "delete-principal", "--principal-arn", arn)
    gone = kmsctl(region, "get-principal", "--principal-arn", arn, check=False)
    assert gone.returncode == 254 and "NotFoundException" in gone.stderr

    help_text = kmsctl(region, "create-access-key", "--help").stdout
    assert "rotate" in help_text.lower()
