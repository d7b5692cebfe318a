"""Every operation of the foundation, and the main ways each one fails, through boto3: the
`__type` botocore sees as the error code, and the HTTP status, exactly as AWS KMS answers."""

import uuid

import pytest
from botocore.exceptions import ClientError

MISSING_KEY = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def keys(region):
    """Keys in each interesting state, made once for the table below."""
    kms = region.client()
    enabled = kms.create_key(Description="enabled")["KeyMetadata"]["KeyId"]
    disabled = kms.create_key(Description="disabled")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)
    pending = kms.create_key(Description="pending deletion")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=30)
    blob = kms.encrypt(KeyId=enabled, Plaintext=b"p")["CiphertextBlob"]
    return {"enabled": enabled, "disabled": disabled, "pending": pending, "blob": blob}


def cases(k):
    e, d, p = k["enabled"], k["disabled"], k["pending"]
    many_tags = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]
    return [
        # CreateKey
        ("create_key", dict(KeyUsage="SIGN_BANANAS"), "ValidationException"),
        ("create_key", dict(Description="x" * 8193), "ValidationException"),
        ("create_key", dict(Tags=[{"TagKey": "aws:owner", "TagValue": "x"}]), "TagException"),
        ("create_key", dict(Policy="{not json"), "MalformedPolicyDocumentException"),
        # DescribeKey
        ("describe_key", dict(KeyId=MISSING_KEY), "NotFoundException"),
        ("describe_key", dict(KeyId="alias/missing"), "NotFoundException"),
        ("describe_key", dict(KeyId=""), "ValidationException"),
        # ListKeys
        ("list_keys", dict(Limit=1001), "ValidationException"),
        ("list_keys", dict(Marker="bogus"), "InvalidMarkerException"),
        # EnableKey / DisableKey
        ("enable_key", dict(KeyId=MISSING_KEY), "NotFoundException"),
        ("enable_key", dict(KeyId=p), "KMSInvalidStateException"),
        ("disable_key", dict(KeyId=p), "KMSInvalidStateException"),
        # UpdateKeyDescription
        ("update_key_description", dict(KeyId=MISSING_KEY, Description="x"), "NotFoundException"),
        ("update_key_description", dict(KeyId=p, Description="x"), "KMSInvalidStateException"),
        # ScheduleKeyDeletion / CancelKeyDeletion
        ("schedule_key_deletion", dict(KeyId=e, PendingWindowInDays=31), "ValidationException"),
        ("schedule_key_deletion", dict(KeyId=p, PendingWindowInDays=7), "KMSInvalidStateException"),
        ("schedule_key_deletion", dict(KeyId=MISSING_KEY), "NotFoundException"),
        ("cancel_key_deletion", dict(KeyId=e), "KMSInvalidStateException"),
        ("cancel_key_deletion", dict(KeyId=MISSING_KEY), "NotFoundException"),
        # Aliases
        ("create_alias", dict(AliasName="alias/aws/rds", TargetKeyId=e), "NotAuthorizedException"),
        ("create_alias", dict(AliasName="no-prefix", TargetKeyId=e), "ValidationException"),
        ("create_alias", dict(AliasName="alias/" + "x" * 251, TargetKeyId=e), "ValidationException"),
        ("create_alias", dict(AliasName="alias/to-pending", TargetKeyId=p), "KMSInvalidStateException"),
        ("create_alias", dict(AliasName="alias/to-missing", TargetKeyId=MISSING_KEY), "NotFoundException"),
        ("update_alias", dict(AliasName="alias/never-made", TargetKeyId=e), "NotFoundException"),
        ("delete_alias", dict(AliasName="alias/never-made"), "NotFoundException"),
        ("list_aliases", dict(Limit=1001), "ValidationException"),
        ("list_aliases", dict(Marker="bogus"), "InvalidMarkerException"),
        ("list_aliases", dict(KeyId=MISSING_KEY), "NotFoundException"),
        # Tags
        ("tag_resource", dict(KeyId=e, Tags=many_tags), "LimitExceededException"),
        ("tag_resource", dict(KeyId=e, Tags=[{"TagKey": "", "TagValue": "v"}]), "ValidationException"),
        ("tag_resource", dict(KeyId=p, Tags=[{"TagKey": "a", "TagValue": "v"}]), "KMSInvalidStateException"),
        ("tag_resource", dict(KeyId=MISSING_KEY, Tags=[{"TagKey": "a", "TagValue": "v"}]), "NotFoundException"),
        ("untag_resource", dict(KeyId=MISSING_KEY, TagKeys=["a"]), "NotFoundException"),
        ("list_resource_tags", dict(KeyId=MISSING_KEY), "NotFoundException"),
        ("list_resource_tags", dict(KeyId=e, Marker="bogus"), "InvalidMarkerException"),
        # Encrypt / Decrypt / ReEncrypt
        ("encrypt", dict(KeyId=d, Plaintext=b"x"), "DisabledException"),
        ("encrypt", dict(KeyId=p, Plaintext=b"x"), "KMSInvalidStateException"),
        ("encrypt", dict(KeyId=MISSING_KEY, Plaintext=b"x"), "NotFoundException"),
        ("encrypt", dict(KeyId=e, Plaintext=b"x" * 4097), "ValidationException"),
        ("encrypt", dict(KeyId=e, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"), "InvalidKeyUsageException"),
        ("decrypt", dict(CiphertextBlob=b"short"), "InvalidCiphertextException"),
        ("decrypt", dict(CiphertextBlob=k["blob"], KeyId=d), "IncorrectKeyException"),
        ("decrypt", dict(CiphertextBlob=k["blob"], EncryptionContext={"x": "y"}), "InvalidCiphertextException"),
        ("re_encrypt", dict(CiphertextBlob=k["blob"], DestinationKeyId=d), "DisabledException"),
        ("re_encrypt", dict(CiphertextBlob=k["blob"], DestinationKeyId=MISSING_KEY), "NotFoundException"),
        ("re_encrypt", dict(CiphertextBlob=b"garbage-garbage", DestinationKeyId=e), "InvalidCiphertextException"),
        # Data keys and random
        ("generate_data_key", dict(KeyId=e), "ValidationException"),
        ("generate_data_key", dict(KeyId=e, NumberOfBytes=1025), "ValidationException"),
        ("generate_data_key", dict(KeyId=d, KeySpec="AES_256"), "DisabledException"),
        ("generate_data_key", dict(KeyId=p, KeySpec="AES_256"), "KMSInvalidStateException"),
        ("generate_data_key_without_plaintext", dict(KeyId=d, KeySpec="AES_256"), "DisabledException"),
        ("generate_data_key_without_plaintext", dict(KeyId=MISSING_KEY, KeySpec="AES_256"), "NotFoundException"),
        ("generate_random", dict(NumberOfBytes=0), "ValidationException"),
        ("generate_random", dict(NumberOfBytes=1025), "ValidationException"),
    ]


def test_every_operation_fails_with_aws_error_types(region, keys):
    # botocore validates some members client-side; those checks are the server's job here.
    kms = region.client(validate=False)
    failures = []
    for op, params, expected in cases(keys):
        try:
            getattr(kms, op)(**params)
            failures.append(f"{op}({short(params)}): succeeded, expected {expected}")
            continue
        except ClientError as e:
            code = e.response["Error"]["Code"]
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            message = e.response["Error"].get("Message", "")
        # AWS sends InvalidCiphertextException without a message; everything else explains itself.
        if code != expected or status != 400 or (not message and code != "InvalidCiphertextException"):
            failures.append(f"{op}({short(params)}): got {code}/{status} {message!r}, expected {expected}/400")
    assert not failures, "\n".join(failures)


def short(params):
    return ", ".join(f"{k}={str(v)[:30]}" for k, v in params.items())


def test_refused_calls_leave_state_untouched(region, keys):
    kms = region.client()
    before = kms.describe_key(KeyId=keys["enabled"])["KeyMetadata"]
    with pytest.raises(ClientError):
        kms.tag_resource(KeyId=keys["enabled"], Tags=[{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)])
    with pytest.raises(ClientError):
        kms.schedule_key_deletion(KeyId=keys["enabled"], PendingWindowInDays=3)
    after = kms.describe_key(KeyId=keys["enabled"])["KeyMetadata"]
    assert after == before
    assert kms.list_resource_tags(KeyId=keys["enabled"])["Tags"] == []
