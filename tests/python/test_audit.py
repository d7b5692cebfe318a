"""Audit lookup: `KeyraftAudit.LookupEvents` on the JSON endpoint (CloudTrail's LookupEvents),
signed with botocore's SigV4 signer (service name "kms", like every other call)."""

import base64
import json

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpsession import URLLib3Session

PLAINTEXT = b"keyraft-audit-lookup-plaintext-7f3a9c"


def lookup(region, body, access_key_id=None, secret=None):
    """One signed `KeyraftAudit.LookupEvents` call; returns (HTTP status, parsed JSON body)."""
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
            "X-Amz-Target": "KeyraftAudit.LookupEvents",
        },
    )
    SigV4Auth(credentials, "kms", env["AWS_DEFAULT_REGION"]).add_auth(request)
    response = URLLib3Session(verify=env["AWS_CA_BUNDLE"]).send(request.prepare())
    text = response.content.decode() if response.content else ""
    return response.status_code, (json.loads(text) if text else {})


def ok(region, body, **kw):
    status, out = lookup(region, body, **kw)
    assert status == 200, out
    return out


@pytest.fixture(scope="module")
def activity(region):
    """A key created and used by the admin, and a call the App identity is denied."""
    admin = region.client()
    key = admin.create_key(Description="audit lookup")["KeyMetadata"]
    admin.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT)
    admin.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT)
    app = region.client(alt=True)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        app.schedule_key_deletion(KeyId=key["Arn"], PendingWindowInDays=7)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    return key


def test_recent_events_newest_first(region, activity):
    events = ok(region, {"MaxResults": 50})["Events"]
    names = [e["EventName"] for e in events]
    # Newest first: the App's denied call, then the two Encrypts, then CreateKey.
    i_denied = names.index("ScheduleKeyDeletion")
    i_encrypt = names.index("Encrypt")
    i_create = names.index("CreateKey")
    assert i_denied < i_encrypt < i_create
    assert events[i_denied]["Username"] == region.env["KMS_ALT_PRINCIPAL_ARN"]
    assert events[i_encrypt]["Username"] == region.env["KMS_PRINCIPAL_ARN"]
    assert events[i_encrypt]["ReadOnly"] == "true"
    assert events[i_create]["ReadOnly"] == "false"
    assert events[i_encrypt]["EventSource"] == "kms.amazonaws.com"
    assert events[i_encrypt]["AccessKeyId"] == region.env["AWS_ACCESS_KEY_ID"]
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    for e in events:
        inner = json.loads(e["CloudTrailEvent"])
        assert inner["eventID"] == e["EventId"]
        assert inner["eventName"] == e["EventName"]


def test_filter_by_event_name(region, activity):
    events = ok(region, {"LookupAttributes": [
        {"AttributeKey": "EventName", "AttributeValue": "Encrypt"}]})["Events"]
    assert len(events) >= 2
    assert {e["EventName"] for e in events} == {"Encrypt"}


def test_filter_by_resource_name(region, activity):
    for name in (activity["Arn"], activity["KeyId"]):
        events = ok(region, {"LookupAttributes": [
            {"AttributeKey": "ResourceName", "AttributeValue": name}]})["Events"]
        names = [e["EventName"] for e in events]
        assert names.count("Encrypt") == 2, names
        assert "CreateKey" in names
        for e in events:
            assert activity["Arn"] in [r["ResourceName"] for r in e["Resources"]]


def test_filter_by_error_code_and_username(region, activity):
    events = ok(region, {"LookupAttributes": [
        {"AttributeKey": "ErrorCode", "AttributeValue": "AccessDeniedException"}]})["Events"]
    denied = [e for e in events if e["EventName"] == "ScheduleKeyDeletion"]
    assert denied and denied[0]["Username"] == region.env["KMS_ALT_PRINCIPAL_ARN"]
    events = ok(region, {"LookupAttributes": [
        {"AttributeKey": "Username", "AttributeValue": region.env["KMS_ALT_PRINCIPAL_ARN"]}]})["Events"]
    assert events and {e["Username"] for e in events} == {region.env["KMS_ALT_PRINCIPAL_ARN"]}


def test_time_window(region, activity):
    events = ok(region, {})["Events"]
    newest = events[0]["EventTime"]
    inside = ok(region, {"StartTime": newest, "EndTime": newest + 1})["Events"]
    assert events[0]["EventId"] in [e["EventId"] for e in inside]
    assert ok(region, {"EndTime": 1})["Events"] == []


def test_app_identity_is_denied(region, activity):
    status, out = lookup(
        region, {},
        access_key_id=region.env["KMS_ALT_ACCESS_KEY_ID"],
        secret=region.env["KMS_ALT_SECRET_ACCESS_KEY"],
    )
    assert status == 400 and out["__type"].endswith("AccessDeniedException"), out
    # ...and that refusal is itself audited.
    events = ok(region, {"LookupAttributes": [
        {"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}]})["Events"]
    assert any(e["Username"] == region.env["KMS_ALT_PRINCIPAL_ARN"] for e in events)


def test_other_account_sees_none_of_ours(region, activity):
    events = ok(
        region, {},
        access_key_id=region.env["KMS_OTHER_ACCESS_KEY_ID"],
        secret=region.env["KMS_OTHER_SECRET_ACCESS_KEY"],
    )["Events"]
    other = region.env["KMS_OTHER_ACCOUNT_ID"]
    for e in events:
        inner = json.loads(e["CloudTrailEvent"])
        assert other in (inner.get("recipientAccountId"), inner["userIdentity"].get("accountId"))
    ours = {e["EventId"] for e in ok(region, {})["Events"]}
    assert not ours & {e["EventId"] for e in events}


def test_paging_without_duplicates(region, activity):
    seen, times, token = [], [], None
    for _ in range(6):
        body = {"MaxResults": 2}
        if token:
            body["NextToken"] = token
        out = ok(region, body)
        # The chain holds far more than 12 of this account's events: every page is full.
        assert len(out["Events"]) == 2
        seen += [e["EventId"] for e in out["Events"]]
        times += [e["EventTime"] for e in out["Events"]]
        token = out["NextToken"]
    assert len(seen) == len(set(seen)) == 12
    assert times == sorted(times, reverse=True)


def test_validation(region, activity):
    two = [{"AttributeKey": "EventName", "AttributeValue": "Encrypt"},
           {"AttributeKey": "EventId", "AttributeValue": "x"}]
    for body in ({"MaxResults": 0}, {"MaxResults": 51}, {"LookupAttributes": two},
                 {"LookupAttributes": [{"AttributeKey": "Nope", "AttributeValue": "x"}]},
                 {"NextToken": "%%%"}, {"StartTime": 10, "EndTime": 5}):
        status, out = lookup(region, body)
        assert status == 400 and out["__type"].endswith("ValidationException"), (body, out)


def test_no_plaintext_in_events(region, activity):
    needles = [PLAINTEXT.decode(), base64.b64encode(PLAINTEXT).decode()]
    token = None
    for _ in range(5):
        body = {"MaxResults": 50}
        if token:
            body["NextToken"] = token
        out = ok(region, body)
        for e in out["Events"]:
            for needle in needles:
                assert needle not in e["CloudTrailEvent"]
        token = out.get("NextToken")
        if not token:
            break


# ---- GetKeyLastUsage (answered from the audit batches' usage marks) ----


def test_get_key_last_usage_reports_the_newest_successful_crypto_call(region):
    kms = region.client()
    key = kms.create_key(Description="last usage")["KeyMetadata"]
    fresh = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert fresh["KeyId"] == key["KeyId"]
    assert "KeyLastUsage" not in fresh
    assert fresh["KeyCreationDate"] == key["CreationDate"]
    # Tracking began with the region, before this key: tracked since its creation.
    assert fresh["TrackingStartDate"] == fresh["KeyCreationDate"]

    enc = kms.encrypt(KeyId=key["Arn"], Plaintext=PLAINTEXT)
    used = kms.get_key_last_usage(KeyId=key["Arn"])["KeyLastUsage"]
    assert used["Operation"] == "Encrypt"
    assert used["KmsRequestId"] == enc["ResponseMetadata"]["RequestId"]
    assert used["Timestamp"] >= key["CreationDate"].replace(microsecond=0)
    # The CloudTrailEventId names the Encrypt's own audit event.
    events = ok(
        region,
        {"LookupAttributes": [{"AttributeKey": "EventId", "AttributeValue": used["CloudTrailEventId"]}]},
    )["Events"]
    assert [e["EventName"] for e in events] == ["Encrypt"]

    # A failed decrypt changes nothing; a successful one does.
    with pytest.raises(botocore.exceptions.ClientError):
        kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"wrong": "ctx"})
    assert kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"] == used
    kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])
    after = kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]
    assert after["Operation"] == "Decrypt"


def test_get_key_last_usage_refuses_aliases(region):
    kms = region.client()
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/last-usage-py", TargetKeyId=key["KeyId"])
    with pytest.raises(botocore.exceptions.ClientError) as err:
        kms.get_key_last_usage(KeyId="alias/last-usage-py")
    assert err.value.response["Error"]["Code"] == "NotFoundException"
