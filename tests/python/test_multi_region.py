"""Multi-region keys with boto3 against `keyraft dev --regions us-east-1,us-west-2`: two
region clusters whose fronts replicate key material between them (issue 7's "done when").

Region A's endpoint and region come from KMS_ENDPOINT / AWS_DEFAULT_REGION of the env file,
region B's from KMS_ENDPOINT_B / KMS_REGION_B; the same credentials work in both.
"""

import shutil
import tempfile
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import PORT_BASE, Region, free_port_base

A = "us-east-1"
B = "us-west-2"


@pytest.fixture(scope="module")
def two_regions():
    directory = tempfile.mkdtemp(prefix="keyraft-py-mr-")
    r = Region(
        directory,
        # Region A uses base.., region B base+20..: 40 ports.
        port_base=free_port_base(PORT_BASE + 300, width=40, span=3000),
        extra_args=["--regions", f"{A},{B}"],
    )
    r.start()
    yield r
    r.stop()
    shutil.rmtree(directory, ignore_errors=True)


def client(region, endpoint_var, region_var):
    return boto3.client(
        "kms",
        config=botocore.config.Config(retries={"max_attempts": 1}),
        region_name=region.env[region_var],
        endpoint_url=region.env[endpoint_var],
        aws_access_key_id=region.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=region.env["AWS_SECRET_ACCESS_KEY"],
        verify=region.env["AWS_CA_BUNDLE"],
    )


@pytest.fixture(scope="module")
def kms_a(two_regions):
    return client(two_regions, "KMS_ENDPOINT", "AWS_DEFAULT_REGION")


@pytest.fixture(scope="module")
def kms_b(two_regions):
    return client(two_regions, "KMS_ENDPOINT_B", "KMS_REGION_B")


def eventually(what, f, within=10.0):
    deadline = time.time() + within
    while True:
        try:
            v = f()
            if v:
                return v
        except ClientError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def replicated_key(kms_a, kms_b, **replicate_args):
    key_id = kms_a.create_key(MultiRegion=True, Description="primary")["KeyMetadata"]["KeyId"]
    kms_a.replicate_key(KeyId=key_id, ReplicaRegion=B, **replicate_args)
    eventually(
        "the replica to be Enabled",
        lambda: kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled",
    )
    return key_id


def test_env_file_names_the_second_region(two_regions):
    assert two_regions.env["KMS_REGION_B"] == B
    assert two_regions.env["KMS_ENDPOINT_B"].startswith("https://")
    assert two_regions.env["KMS_ENDPOINT_B"] != two_regions.env["KMS_ENDPOINT"]


def test_create_replicate_encrypt_in_a_decrypt_in_b(kms_a, kms_b):
    meta = kms_a.create_key(MultiRegion=True)["KeyMetadata"]
    key_id = meta["KeyId"]
    assert key_id.startswith("mrk-") and len(key_id) == 36
    assert meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert meta["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == A

    out = kms_a.replicate_key(
        KeyId=key_id,
        ReplicaRegion=B,
        Description="replica",
        Tags=[{"TagKey": "site", "TagValue": "b"}],
    )
    assert out["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert out["ReplicaKeyMetadata"]["Arn"] == f"arn:aws:kms:{B}:111122223333:key/{key_id}"
    assert out["ReplicaTags"] == [{"TagKey": "site", "TagValue": "b"}]
    assert "Statement" in out["ReplicaPolicy"]

    eventually(
        "the replica to be Enabled",
        lambda: kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled",
    )
    replica = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
    assert replica["Description"] == "replica"
    cfg = replica["MultiRegionConfiguration"]
    assert cfg["MultiRegionKeyType"] == "REPLICA"
    assert cfg["PrimaryKey"] == {"Arn": f"arn:aws:kms:{A}:111122223333:key/{key_id}", "Region": A}
    assert [r["Region"] for r in cfg["ReplicaKeys"]] == [B]
    assert kms_b.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "site", "TagValue": "b"}]

    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"from a")["CiphertextBlob"]
    assert kms_b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from a"
    blob_b = kms_b.encrypt(KeyId=key_id, Plaintext=b"from b")["CiphertextBlob"]
    assert kms_a.decrypt(CiphertextBlob=blob_b)["Plaintext"] == b"from b"


def test_independent_properties_stay_per_region(kms_a, kms_b):
    key_id = replicated_key(kms_a, kms_b)
    kms_b.update_key_description(KeyId=key_id, Description="only in b")
    kms_b.disable_key(KeyId=key_id)
    a = kms_a.describe_key(KeyId=key_id)["KeyMetadata"]
    assert a["Description"] == "primary"
    assert a["KeyState"] == "Enabled"
    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms_b.decrypt(CiphertextBlob=blob)
    assert error_code(e) == "DisabledException"


def test_rotation_on_the_primary_reaches_the_replica_within_10_seconds(kms_a, kms_b):
    key_id = replicated_key(kms_a, kms_b)
    before = kms_a.encrypt(KeyId=key_id, Plaintext=b"v1")["CiphertextBlob"]
    kms_a.rotate_key_on_demand(KeyId=key_id)
    eventually(
        "the rotation on the primary",
        lambda: kms_a.list_key_rotations(KeyId=key_id)["Rotations"],
        within=20,
    )
    after = kms_a.encrypt(KeyId=key_id, Plaintext=b"v2")["CiphertextBlob"]
    assert after != before
    eventually(
        "the replica to decrypt a post-rotation ciphertext",
        lambda: kms_b.decrypt(CiphertextBlob=after)["Plaintext"] == b"v2",
        within=10,
    )
    assert kms_b.decrypt(CiphertextBlob=before)["Plaintext"] == b"v1"
    with pytest.raises(ClientError) as e:
        kms_b.rotate_key_on_demand(KeyId=key_id)
    assert error_code(e) == "UnsupportedOperationException"


def test_update_primary_region_moves_the_primary_and_both_keep_working(kms_a, kms_b):
    key_id = replicated_key(kms_a, kms_b)
    kms_a.update_primary_region(KeyId=key_id, PrimaryRegion=B)

    def moved():
        a = kms_a.describe_key(KeyId=key_id)["KeyMetadata"]
        b = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
        return (
            b["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
            and a["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
            and a["KeyState"] == "Enabled"
        )

    eventually("B to become primary", moved, within=15)
    b_cfg = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    assert b_cfg["PrimaryKey"]["Region"] == B
    assert [r["Region"] for r in b_cfg["ReplicaKeys"]] == [A]
    blob = kms_b.encrypt(KeyId=key_id, Plaintext=b"b primary")["CiphertextBlob"]
    assert kms_a.decrypt(CiphertextBlob=blob)["Plaintext"] == b"b primary"
    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"a replica")["CiphertextBlob"]
    assert kms_b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"a replica"
    # Only the new primary rotates now, and the old one can no longer replicate.
    with pytest.raises(ClientError) as e:
        kms_a.rotate_key_on_demand(KeyId=key_id)
    assert error_code(e) == "UnsupportedOperationException"


def test_replicate_key_bad_inputs(kms_a, kms_b):
    key_id = kms_a.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms_a.replicate_key(KeyId=key_id, ReplicaRegion=A)
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms_a.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-3")
    assert error_code(e) == "UnsupportedOperationException"
    single = kms_a.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms_a.replicate_key(KeyId=single, ReplicaRegion=B)
    assert error_code(e) == "UnsupportedOperationException"
    kms_a.replicate_key(KeyId=key_id, ReplicaRegion=B)
    with pytest.raises(ClientError) as e:
        kms_a.replicate_key(KeyId=key_id, ReplicaRegion=B)
    assert error_code(e) == "AlreadyExistsException"
    with pytest.raises(ClientError) as e:
        kms_a.replicate_key(KeyId="mrk-00000000000000000000000000000000", ReplicaRegion=B)
    assert error_code(e) == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms_a.update_primary_region(KeyId=single, PrimaryRegion=B)
    assert error_code(e) == "UnsupportedOperationException"


def test_scheduling_deletion_of_a_primary_with_replicas_waits_for_them(kms_a, kms_b):
    key_id = replicated_key(kms_a, kms_b)
    out = kms_a.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingReplicaDeletion"
    assert kms_a.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"
    kms_a.cancel_key_deletion(KeyId=key_id)
    assert kms_a.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
