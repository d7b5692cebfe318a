"""Key rotation through boto3: GetKeyRotationStatus, Enable/DisableKeyRotation,
RotateKeyOnDemand, ListKeyRotations, and that every ciphertext a key ever produced keeps
decrypting. On-demand rotations complete in the background (the Raft leader activates material
a front prepared), as in AWS, so the tests poll like an AWS client would."""

import datetime
import time

import pytest
from botocore.exceptions import ClientError


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def rotations(kms, key, **kwargs):
    return kms.list_key_rotations(KeyId=key, **kwargs)["Rotations"]


def wait_for_rotations(kms, key, n, timeout=20):
    deadline = time.time() + timeout
    while True:
        got = rotations(kms, key)
        if len(got) >= n:
            assert len(got) == n, got
            return got
        assert time.time() < deadline, f"waited for {n} rotations, have {got}"
        time.sleep(0.2)


def test_a_new_key_does_not_rotate(kms, new_key):
    key = new_key()
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is False
    assert status["KeyId"].endswith(key)
    assert "NextRotationDate" not in status
    assert "RotationPeriodInDays" not in status
    assert "OnDemandRotationStartDate" not in status
    listed = kms.list_key_rotations(KeyId=key)
    assert listed["Rotations"] == []
    assert listed["Truncated"] is False


def test_enable_key_rotation_defaults_to_365_days_and_reports_the_next_date(kms, new_key):
    key = new_key()
    kms.enable_key_rotation(KeyId=key)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 365
    expected = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 120

    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["RotationPeriodInDays"] == 90
    expected = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=90)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 120

    kms.disable_key_rotation(KeyId=key)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is False
    assert "NextRotationDate" not in status
    # Enabling or disabling rotation does not rotate.
    assert rotations(kms, key) == []


@pytest.mark.parametrize("days", [0, 89, 2561])
def test_rotation_periods_outside_90_to_2560_days_are_refused(region, new_key, days):
    kms = region.client(validate=False)
    key = new_key()
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=days)
    assert error_code(e) == "ValidationException"
    assert "rotationPeriodInDays" in e.value.response["Error"]["Message"]


def test_on_demand_rotations_keep_old_ciphertexts_decrypting_up_to_the_limit_of_ten(kms, new_key):
    key = new_key()
    blobs = [(kms.encrypt(KeyId=key, Plaintext=b"v0")["CiphertextBlob"], b"v0")]
    for i in range(1, 11):
        assert kms.rotate_key_on_demand(KeyId=key)["KeyId"] == key
        wait_for_rotations(kms, key, i)
        text = f"v{i}".encode()
        blobs.append((kms.encrypt(KeyId=key, Plaintext=text)["CiphertextBlob"], text))

    # The eleventh on-demand rotation is over AWS's quota.
    with pytest.raises(ClientError) as e:
        kms.rotate_key_on_demand(KeyId=key)
    assert error_code(e) == "LimitExceededException"

    for blob, text in blobs:
        out = kms.decrypt(CiphertextBlob=blob)
        assert out["Plaintext"] == text
        assert out["KeyId"].endswith(key)
    # Each ciphertext was made under different material.
    assert len({blob for blob, _ in blobs}) == len(blobs)

    listed = rotations(kms, key)
    assert [r["RotationType"] for r in listed] == ["ON_DEMAND"] * 10
    assert all(r["KeyId"] == key for r in listed)
    dates = [r["RotationDate"] for r in listed]
    assert dates == sorted(dates)
    status = kms.get_key_rotation_status(KeyId=key)
    assert "OnDemandRotationStartDate" not in status
    # On-demand rotation leaves automatic rotation off.
    assert status["KeyRotationEnabled"] is False

    # Pages of four: 4 + 4 + 2, each rotation exactly once.
    seen, marker = [], None
    while True:
        kwargs = {"Limit": 4}
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_key_rotations(KeyId=key, **kwargs)
        seen.append(len(page["Rotations"]))
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert seen == [4, 4, 2]


def test_an_on_demand_rotation_in_progress_is_reported_and_conflicts(kms, new_key):
    # The leader activates a requested rotation within about a second, so the window is
    # short: try a few times to look at it, as any client of an asynchronous API would.
    key = new_key()
    for attempt in range(1, 4):
        kms.rotate_key_on_demand(KeyId=key)
        status = kms.get_key_rotation_status(KeyId=key)
        try:
            kms.rotate_key_on_demand(KeyId=key)
            second = None
        except ClientError as err:
            second = err.response["Error"]["Code"]
        if "OnDemandRotationStartDate" in status and second == "ConflictException":
            started = status["OnDemandRotationStartDate"]
            now = datetime.datetime.now(datetime.timezone.utc)
            assert abs((now - started).total_seconds()) < 60
            break
        wait_until_no_rotation_in_progress(kms, key)
    else:
        pytest.fail("never saw an on-demand rotation in progress")
    # It completes on its own, and is listed once.
    wait_until_no_rotation_in_progress(kms, key)
    assert len(rotations(kms, key)) >= attempt


def wait_until_no_rotation_in_progress(kms, key, timeout=20):
    deadline = time.time() + timeout
    while "OnDemandRotationStartDate" in kms.get_key_rotation_status(KeyId=key):
        assert time.time() < deadline, "on-demand rotation never completed"
        time.sleep(0.2)


def test_rotation_of_disabled_and_pending_deletion_keys(kms, new_key):
    key = new_key()
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=180)
    kms.disable_key(KeyId=key)
    for call in (
        lambda: kms.enable_key_rotation(KeyId=key),
        lambda: kms.disable_key_rotation(KeyId=key),
        lambda: kms.rotate_key_on_demand(KeyId=key),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "DisabledException"
    # The status survives disabling.
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True

    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=key)
    assert error_code(e) == "KMSInvalidStateException"
    # Cancelling the deletion restores the original status, as in AWS.
    kms.cancel_key_deletion(KeyId=key)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 180


def test_rotation_errors_use_aws_exception_types(region, kms, new_key):
    missing = "11111111-2222-3333-4444-555555555555"
    for call in (
        lambda: kms.enable_key_rotation(KeyId=missing),
        lambda: kms.disable_key_rotation(KeyId=missing),
        lambda: kms.get_key_rotation_status(KeyId=missing),
        lambda: kms.rotate_key_on_demand(KeyId=missing),
        lambda: kms.list_key_rotations(KeyId=missing),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NotFoundException"

    key = new_key()
    with pytest.raises(ClientError) as e:
        kms.list_key_rotations(KeyId=key, Marker="not-a-marker-we-issued")
    assert error_code(e) == "InvalidMarkerException"
    with pytest.raises(ClientError) as e:
        region.client(validate=False).list_key_rotations(KeyId=key, Limit=0)
    assert error_code(e) == "ValidationException"

    # Without a grant or policy, another principal may not rotate the key.
    app = region.client(alt=True)
    with pytest.raises(ClientError) as e:
        app.rotate_key_on_demand(KeyId=key)
    assert error_code(e) == "AccessDeniedException"


@pytest.mark.parametrize(
    "spec,usage", [("RSA_2048", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")]
)
def test_asymmetric_and_hmac_keys_cannot_rotate(kms, spec, usage):
    try:
        key = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "UnsupportedOperationException":
            pytest.skip(f"{spec} keys are not served by this build")
        raise
    for call in (
        lambda: kms.enable_key_rotation(KeyId=key),
        lambda: kms.rotate_key_on_demand(KeyId=key),
        lambda: kms.get_key_rotation_status(KeyId=key),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "UnsupportedOperationException"


def test_a_key_rotated_on_demand_and_by_the_clock_decrypts_everything_it_produced(clock_region):
    kms = clock_region.client()
    day_ms = 86_400_000
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    blobs = []

    def encrypt(text):
        blobs.append((kms.encrypt(KeyId=key, Plaintext=text)["CiphertextBlob"], text))

    encrypt(b"original material")
    kms.rotate_key_on_demand(KeyId=key)
    wait_for_rotations(kms, key, 1)
    encrypt(b"after on-demand")

    # 91 days later the leader rotates on schedule (with material a front prepared after the
    # on-demand rotation consumed the one stored by EnableKeyRotation).
    clock_region.clock_file.write_text(str(91 * day_ms))
    wait_for_rotations(kms, key, 2)
    encrypt(b"after automatic")
    time.sleep(2.5)
    assert len(rotations(kms, key)) == 2, "one automatic rotation per period"

    kms.rotate_key_on_demand(KeyId=key)
    wait_for_rotations(kms, key, 3)
    encrypt(b"after second on-demand")

    listed = rotations(kms, key)
    assert [r["RotationType"] for r in listed] == ["ON_DEMAND", "AUTOMATIC", "ON_DEMAND"]
    for blob, text in blobs:
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == text
    status = kms.get_key_rotation_status(KeyId=key)
    # The schedule stays anchored to the enable date (seconds ago): next is 180 days after it.
    expected = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=180)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 600
