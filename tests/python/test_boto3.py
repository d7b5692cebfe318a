"""boto3 (botocore's KMS model, SigV4 and JSON 1.1 client) against a real dev region."""

import base64
import uuid

import pytest
from botocore.exceptions import ClientError


def error_of(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_key_returns_aws_metadata(kms):
    meta = kms.create_key(
        Description="Highly Sensitive Customer Data Encryption Key",
        KeyUsage="ENCRYPT_DECRYPT",
        CustomerMasterKeySpec="SYMMETRIC_DEFAULT",
        Origin="AWS_KMS",
        Tags=[{"TagKey": "DataClassification", "TagValue": "HighlySensitive"}],
    )["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["Enabled"] is True
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["Origin"] == "AWS_KMS"
    assert meta["KeyManager"] == "CUSTOMER"
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["Arn"] == f"arn:aws:kms:us-east-1:111122223333:key/{meta['KeyId']}"
    uuid.UUID(meta["KeyId"])
    assert meta["CreationDate"].year >= 2024
    tags = kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"]
    assert tags == [{"TagKey": "DataClassification", "TagValue": "HighlySensitive"}]


def test_encrypt_decrypt_with_context(kms, new_key):
    key = new_key()
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret", EncryptionContext={"a": "1", "b": "2"})["CiphertextBlob"]
    # Context order does not matter; content does.
    out = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"b": "2", "a": "1"})
    assert out["Plaintext"] == b"secret"
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"})
    assert error_of(e) == ("InvalidCiphertextException", 400)


def test_errors_have_aws_type_and_status(kms, new_key):
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=str(uuid.uuid4()))
    assert error_of(e) == ("NotFoundException", 400)
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=new_key(), Plaintext=b"x" * 4097)
    assert error_of(e) == ("ValidationException", 400)
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=b"\x01" * 80)
    assert error_of(e) == ("InvalidCiphertextException", 400)
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/bad name", TargetKeyId=new_key())
    assert error_of(e)[0] == "ValidationException"


def test_unprivileged_identity_is_denied(region, new_key):
    key = new_key()
    app = region.client(alt=True)
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=key, Plaintext=b"x")
    code, status = error_of(e)
    assert (code, status) == ("AccessDeniedException", 400)
    assert region.env["KMS_ALT_PRINCIPAL_ARN"] in e.value.response["Error"]["Message"]


def test_list_keys_paginator_sees_every_key(kms, new_key):
    created = {new_key() for _ in range(4)}
    seen = set()
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}):
        seen.update(k["KeyId"] for k in page["Keys"])
    assert created <= seen


def test_list_aliases_paginator_and_filter(kms, new_key):
    key = new_key()
    names = [f"alias/page-{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]
    for n in names:
        kms.create_alias(AliasName=n, TargetKeyId=key)
    seen = []
    for page in kms.get_paginator("list_aliases").paginate(KeyId=key, PaginationConfig={"PageSize": 1}):
        seen.extend(a["AliasName"] for a in page["Aliases"])
    assert sorted(seen) == sorted(names)


def test_generate_data_key_and_random(kms, new_key):
    key = new_key()
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"app": "db"})
    assert len(dk["Plaintext"]) == 32
    back = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"app": "db"})
    assert back["Plaintext"] == dk["Plaintext"]
    no_pt = kms.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=48)
    assert "Plaintext" not in no_pt
    assert len(kms.decrypt(CiphertextBlob=no_pt["CiphertextBlob"])["Plaintext"]) == 48
    r = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    assert len(r) == 32 and r != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key, KeySpec="AES_256", NumberOfBytes=32)
    assert error_of(e)[0] == "ValidationException"


def test_re_encrypt_between_keys(kms, new_key):
    a, b = new_key(), new_key()
    blob = kms.encrypt(KeyId=a, Plaintext=b"move me")["CiphertextBlob"]
    moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=b)
    assert moved["SourceKeyId"].endswith(a) and moved["KeyId"].endswith(b)
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"move me"


def test_schedule_and_cancel_deletion(kms, new_key):
    key = new_key()
    out = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    with pytest.raises(ClientError) as e:
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=31)
    assert error_of(e)[0] == "ValidationException"
    kms.cancel_key_deletion(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"


def test_wire_level_protocol_errors(region):
    """Requests no SDK would send still get AWS-shaped answers, never a hang or a crash."""
    import json
    import ssl
    import http.client
    from urllib.parse import urlparse

    url = urlparse(region.env["KMS_ENDPOINT"])
    ctx = ssl.create_default_context(cafile=region.env["AWS_CA_BUNDLE"])

    def post(headers, body):
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, json.loads(payload or b"{}")

    status, body = post({"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}, b"{}")
    assert status == 400 and body["__type"] == "MissingAuthenticationTokenException"
    status, body = post(
        {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "TrentService.ListKeys",
            "Authorization": "AWS4-HMAC-SHA256 garbage",
            "X-Amz-Date": "20260101T000000Z",
        },
        b"{}",
    )
    assert status == 400 and body["__type"] == "IncompleteSignatureException"
