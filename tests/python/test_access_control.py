"""Access control with AWS semantics, through boto3 against a real dev region: key policies with
conditions, identity policies, grants and grant tokens, cross-account access, the lockout safety
check. The dev region has two identities in account 111122223333 (role/Admin, an administrator,
and role/App, with no permissions of its own) and the root of a second account, 444455556666.
"""

import json
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
import urllib3
from botocore.exceptions import ClientError

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
APP = f"arn:aws:iam::{ACCOUNT}:role/App"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def error_code(e):
    return e.value.response["Error"]["Code"]


def error_message(e):
    return e.value.response["Error"]["Message"]


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ROOT_STATEMENT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": ROOT},
    "Action": "kms:*",
    "Resource": "*",
}


def allow(principal, actions, condition=None, sid=None):
    st = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions, "Resource": "*"}
    if condition:
        st["Condition"] = condition
    if sid:
        st["Sid"] = sid
    return st


def eventually(check, timeout=3.0):
    """Revocations reach every front within the cache staleness bound (1 s by default)."""
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except (AssertionError, ClientError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def client_for(region, access_key_id, secret, headers=None):
    c = boto3.client(
        "kms",
        config=botocore.config.Config(retries={"max_attempts": 1}),
        region_name=region.env["AWS_DEFAULT_REGION"],
        endpoint_url=region.env["KMS_ENDPOINT"],
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        verify=region.env["AWS_CA_BUNDLE"],
    )
    if headers:
        def add_headers(request, **_):
            for k, v in headers.items():
                request.headers[k] = v
        c.meta.events.register("before-sign.kms.*", add_headers)
    return c


def iam_call(region, access_key_id, secret, operation, body):
    """A KeyraftIam.* call, signed with SigV4 like any AWS JSON 1.1 request."""
    url = region.env["KMS_ENDPOINT"].rstrip("/") + "/"
    data = json.dumps(body).encode()
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url,
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"KeyraftIam.{operation}",
        },
    )
    creds = botocore.credentials.Credentials(access_key_id, secret)
    botocore.auth.SigV4Auth(creds, "kms", region.env["AWS_DEFAULT_REGION"]).add_auth(request)
    http = urllib3.PoolManager(ca_certs=region.env["AWS_CA_BUNDLE"])
    r = http.request("POST", url, body=data, headers=dict(request.headers.items()))
    out = json.loads(r.data or b"{}")
    if r.status != 200:
        raise AssertionError(f"{operation} failed: {r.status} {out}")
    return out


@pytest.fixture()
def admin(region):
    return region.client()


@pytest.fixture()
def app(region):
    return region.client(alt=True)


def test_the_unprivileged_role_is_denied_by_default(admin, app):
    key = admin.create_key()["KeyMetadata"]
    for call in (
        lambda: app.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
        lambda: app.describe_key(KeyId=key["Arn"]),
        lambda: app.create_key(),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDeniedException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert APP in error_message(e)
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert error_message(e) == (
        f"User: {APP} is not authorized to perform: kms:Encrypt on resource: {key['Arn']} "
        "because no identity-based policy allows the kms:Encrypt action"
    )


def test_a_key_policy_allows_exactly_the_actions_it_grants(admin, app):
    doc = policy(ROOT_STATEMENT, allow(APP, ["kms:Encrypt", "kms:DescribeKey"]))
    arn = admin.create_key(Policy=doc)["KeyMetadata"]["Arn"]
    blob = app.encrypt(KeyId=arn, Plaintext=b"allowed")["CiphertextBlob"]
    assert app.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    for call in (
        lambda: app.decrypt(CiphertextBlob=blob),
        lambda: app.generate_data_key(KeyId=arn, KeySpec="AES_256"),
        lambda: app.disable_key(KeyId=arn),
        lambda: app.put_key_policy(KeyId=arn, PolicyName="default", Policy=doc),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDeniedException"
        assert "because no resource-based policy allows" in error_message(e) or \
            "because no identity-based policy allows" in error_message(e)
    # The administrator still decrypts: the root statement delegates to its identity policy.
    assert admin.decrypt(CiphertextBlob=blob)["Plaintext"] == b"allowed"
    assert json.loads(admin.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]) == json.loads(doc)
    assert admin.list_key_policies(KeyId=arn)["PolicyNames"] == ["default"]


def test_an_encryption_context_condition_denies_a_mismatching_context(admin, app):
    doc = policy(
        ROOT_STATEMENT,
        allow(
            APP,
            ["kms:Encrypt", "kms:Decrypt"],
            {"StringEquals": {"kms:EncryptionContext:Department": "Finance"}},
        ),
    )
    arn = admin.create_key(Policy=doc)["KeyMetadata"]["Arn"]
    ctx = {"Department": "Finance"}
    blob = app.encrypt(KeyId=arn, Plaintext=b"ledger", EncryptionContext=ctx)["CiphertextBlob"]
    assert app.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"ledger"
    for bad in ({"Department": "HR"}, {"department": "finance"}, None):
        kwargs = {"EncryptionContext": bad} if bad is not None else {}
        with pytest.raises(ClientError) as e:
            app.encrypt(KeyId=arn, Plaintext=b"ledger", **kwargs)
        assert error_code(e) == "AccessDeniedException", bad


def test_explicit_deny_wins_over_every_allow(admin):
    doc = policy(
        ROOT_STATEMENT,
        {
            "Sid": "NoDecryptForAdmin",
            "Effect": "Deny",
            "Principal": {"AWS": ADMIN},
            "Action": "kms:Decrypt",
            "Resource": "*",
        },
    )
    arn = admin.create_key(Policy=doc)["KeyMetadata"]["Arn"]
    blob = admin.encrypt(KeyId=arn, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        admin.decrypt(CiphertextBlob=blob)
    assert error_code(e) == "AccessDeniedException"
    assert error_message(e).endswith("with an explicit deny in a resource-based policy")


def test_a_grant_token_works_at_once_and_stops_after_retire_and_revoke(admin, app):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError):
        app.encrypt(KeyId=arn, Plaintext=b"x")
    grant = admin.create_grant(
        KeyId=arn, GranteePrincipal=APP, RetiringPrincipal=APP,
        Operations=["Encrypt", "Decrypt"], Name="app-encrypt",
    )
    token, grant_id = grant["GrantToken"], grant["GrantId"]
    assert len(grant_id) == 64
    blob = app.encrypt(KeyId=arn, Plaintext=b"granted", GrantTokens=[token])["CiphertextBlob"]
    assert app.decrypt(CiphertextBlob=blob, GrantTokens=[token])["Plaintext"] == b"granted"
    # The grant is not for data keys.
    with pytest.raises(ClientError) as e:
        app.generate_data_key(KeyId=arn, KeySpec="AES_256", GrantTokens=[token])
    assert error_code(e) == "AccessDeniedException"
    listed = admin.list_grants(KeyId=arn)["Grants"]
    assert [g["GrantId"] for g in listed] == [grant_id]
    assert listed[0]["GranteePrincipal"] == APP
    assert sorted(listed[0]["Operations"]) == ["Decrypt", "Encrypt"]
    assert listed[0]["IssuingAccount"] == ROOT
    # Same name and parameters: the same grant, not a second one.
    again = admin.create_grant(
        KeyId=arn, GranteePrincipal=APP, RetiringPrincipal=APP,
        Operations=["Decrypt", "Encrypt"], Name="app-encrypt",
    )
    assert again["GrantId"] == grant_id
    retirable = admin.list_retirable_grants(RetiringPrincipal=APP)["Grants"]
    assert [g["GrantId"] for g in retirable].count(grant_id) == 1
    # The retiring principal retires it with the token; the token stops working at once.
    app.retire_grant(GrantToken=token)
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=[token])
    assert error_code(e) == "AccessDeniedException"
    assert admin.list_grants(KeyId=arn)["Grants"] == []
    # A second grant, revoked by the key's administrator.
    token2 = admin.create_grant(KeyId=arn, GranteePrincipal=APP, Operations=["Encrypt"])
    app.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=[token2["GrantToken"]])
    admin.revoke_grant(KeyId=arn, GrantId=token2["GrantId"])
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=arn, Plaintext=b"x", GrantTokens=[token2["GrantToken"]])
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        admin.revoke_grant(KeyId=arn, GrantId=token2["GrantId"])
    assert error_code(e) == "InvalidGrantIdException"


def test_grant_constraints_bind_the_encryption_context(admin, app):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    token = admin.create_grant(
        KeyId=arn, GranteePrincipal=APP, Operations=["Encrypt"],
        Constraints={"EncryptionContextSubset": {"tenant": "acme"}},
    )["GrantToken"]
    app.encrypt(KeyId=arn, Plaintext=b"x", EncryptionContext={"tenant": "acme", "extra": "1"},
                GrantTokens=[token])
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=arn, Plaintext=b"x", EncryptionContext={"tenant": "other"},
                    GrantTokens=[token])
    assert error_code(e) == "AccessDeniedException"


def test_bad_grant_requests_get_aws_errors(admin):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as e:
        admin.create_grant(KeyId=arn, GranteePrincipal=APP, Operations=["Sign"])
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        admin.retire_grant(GrantToken="garbage")
    assert error_code(e) == "InvalidGrantTokenException"


def test_put_key_policy_that_would_lock_the_caller_out_is_refused(admin):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    lockout = policy(allow(APP, "kms:*"))
    with pytest.raises(ClientError) as e:
        admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=lockout)
    assert error_code(e) == "MalformedPolicyDocumentException"
    with pytest.raises(ClientError) as e:
        admin.create_key(Policy=lockout)
    assert error_code(e) == "MalformedPolicyDocumentException"
    # Nothing changed.
    assert "Enable IAM User Permissions" in admin.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]
    # With the bypass, AWS accepts it, and the administrator is locked out at once.
    admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=lockout,
                         BypassPolicyLockoutSafetyCheck=True)
    with pytest.raises(ClientError) as e:
        admin.describe_key(KeyId=arn)
    assert error_code(e) == "AccessDeniedException"


@pytest.mark.parametrize("doc, fragment", [
    ("not json", ""),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}), "rincipal"),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}), "Effect"),
    (json.dumps({"Version": "2012-10-17", "Statement": [dict(ROOT_STATEMENT, Condition={"StringSortOf": {"a": "b"}})]}), "StringSortOf"),
])
def test_malformed_policies_are_refused_with_a_useful_message(admin, doc, fragment):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as e:
        admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=doc)
    assert error_code(e) == "MalformedPolicyDocumentException"
    assert fragment in error_message(e)


def test_revoking_a_key_policy_statement_takes_effect_within_the_bound(admin, app):
    allowing = policy(ROOT_STATEMENT, allow(APP, "kms:Encrypt"))
    arn = admin.create_key(Policy=allowing)["KeyMetadata"]["Arn"]
    app.encrypt(KeyId=arn, Plaintext=b"x")
    admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=policy(ROOT_STATEMENT))

    def denied():
        with pytest.raises(ClientError) as e:
            app.encrypt(KeyId=arn, Plaintext=b"x")
        assert error_code(e) == "AccessDeniedException"
    eventually(denied)


def test_a_cross_account_caller_needs_both_the_key_policy_and_its_identity_policy(region, admin):
    other = (region.env["KMS_OTHER_ACCESS_KEY_ID"], region.env["KMS_OTHER_SECRET_ACCESS_KEY"])
    ci = f"arn:aws:iam::{OTHER_ACCOUNT}:role/Ci"
    existing = iam_call(region, *other, "ListPrincipals", {})
    if ci not in [p["Arn"] for p in existing.get("Principals", [])]:
        iam_call(region, *other, "CreatePrincipal", {"PrincipalName": "role/Ci"})
    ak = iam_call(region, *other, "CreateAccessKey", {"PrincipalArn": ci})["AccessKey"]
    ci_kms = client_for(region, ak["AccessKeyId"], ak["SecretAccessKey"])

    cross = policy(ROOT_STATEMENT, allow(ci, ["kms:Encrypt", "kms:Decrypt"]))
    arn = admin.create_key(Policy=cross)["KeyMetadata"]["Arn"]
    plain_arn = admin.create_key()["KeyMetadata"]["Arn"]

    # Key policy only: the other account has not allowed its role to use the key.
    with pytest.raises(ClientError) as e:
        ci_kms.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"

    identity = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]})
    iam_call(region, *other, "PutPrincipalPolicy",
             {"PrincipalArn": ci, "PolicyName": "use-shared-keys", "PolicyDocument": identity})

    def allowed():
        return ci_kms.encrypt(KeyId=arn, Plaintext=b"cross")["CiphertextBlob"]
    blob = eventually(allowed)
    assert ci_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"cross"
    # Identity policy only: the key's own account never allowed it.
    with pytest.raises(ClientError) as e:
        ci_kms.encrypt(KeyId=plain_arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"
    assert error_message(e).endswith("because no resource-based policy allows the kms:Encrypt action")
    # And a bare key id names a key in the caller's own account, where there is none.
    with pytest.raises(ClientError) as e:
        ci_kms.encrypt(KeyId=arn.split("/")[-1], Plaintext=b"x")
    assert error_code(e) == "NotFoundException"
    iam_call(region, *other, "DeleteAccessKey", {"AccessKeyId": ak["AccessKeyId"]})


def test_a_service_calling_on_behalf_of_a_role_satisfies_via_service(region, admin, app):
    # The first example policy of the issue: root delegation, two roles through S3/RDS only,
    # and CloudTrail as a service principal.
    app_b = f"arn:aws:iam::{ACCOUNT}:role/AppB"
    doc = policy(
        ROOT_STATEMENT,
        {
            "Sid": "AllowUseThroughS3AndRds",
            "Effect": "Allow",
            "Principal": {"AWS": [APP, app_b]},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                       "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": [
                "s3.us-east-1.amazonaws.com", "rds.us-east-1.amazonaws.com"]}},
        },
        {
            "Sid": "AllowCloudTrail",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": ["kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
        },
    )
    arn = admin.create_key(Policy=doc)["KeyMetadata"]["Arn"]
    # role/Admin holds AdministratorAccess, which includes the iam:* management actions.
    admin_creds = (region.env["AWS_ACCESS_KEY_ID"], region.env["AWS_SECRET_ACCESS_KEY"])
    services = {}
    for name, service in (("user/s3-service", "s3.us-east-1.amazonaws.com"),
                          ("user/cloudtrail-service", "cloudtrail.us-east-1.amazonaws.com"),
                          ("user/lambda-service", "lambda.us-east-1.amazonaws.com")):
        principal = f"arn:aws:iam::{ACCOUNT}:{name}"
        listed = iam_call(region, *admin_creds, "ListPrincipals", {})
        if principal not in [p["Arn"] for p in listed.get("Principals", [])]:
            iam_call(region, *admin_creds, "CreatePrincipal", {"PrincipalName": name, "Service": service})
        ak = iam_call(region, *admin_creds, "CreateAccessKey", {"PrincipalArn": principal})["AccessKey"]
        services[service] = ak
    # Directly, the role is denied.
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"
    s3 = services["s3.us-east-1.amazonaws.com"]
    via_s3 = client_for(region, s3["AccessKeyId"], s3["SecretAccessKey"],
                        headers={"x-keyraft-on-behalf-of": APP})
    blob = via_s3.encrypt(KeyId=arn, Plaintext=b"through s3")["CiphertextBlob"]
    assert via_s3.decrypt(CiphertextBlob=blob)["Plaintext"] == b"through s3"
    lam = services["lambda.us-east-1.amazonaws.com"]
    via_lambda = client_for(region, lam["AccessKeyId"], lam["SecretAccessKey"],
                            headers={"x-keyraft-on-behalf-of": APP})
    with pytest.raises(ClientError) as e:
        via_lambda.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"
    # The CloudTrail service principal may make data keys and describe, nothing else.
    ct = services["cloudtrail.us-east-1.amazonaws.com"]
    trail = client_for(region, ct["AccessKeyId"], ct["SecretAccessKey"])
    assert len(trail.generate_data_key(KeyId=arn, KeySpec="AES_256")["Plaintext"]) == 32
    with pytest.raises(ClientError) as e:
        trail.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"
    # Only service identities may name another principal.
    impostor = client_for(region, region.env["KMS_ALT_ACCESS_KEY_ID"],
                          region.env["KMS_ALT_SECRET_ACCESS_KEY"],
                          headers={"x-keyraft-on-behalf-of": ADMIN})
    with pytest.raises(ClientError) as e:
        impostor.describe_key(KeyId=arn)
    assert error_code(e) == "AccessDeniedException"


def test_alias_condition_keys_follow_the_request_and_the_key(admin, app):
    doc = policy(
        ROOT_STATEMENT,
        allow(APP, "kms:Encrypt", {"StringEquals": {"kms:RequestAlias": "alias/acl-request"}},
              sid="OnlyThroughTheAlias"),
        allow(APP, "kms:DescribeKey",
              {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/acl-finance"}},
              sid="OnlyWhileTheKeyIsFinance"),
    )
    arn = admin.create_key(Policy=doc)["KeyMetadata"]["Arn"]
    admin.create_alias(AliasName="alias/acl-request", TargetKeyId=arn)
    app.encrypt(KeyId="alias/acl-request", Plaintext=b"x")
    with pytest.raises(ClientError) as e:
        app.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        app.describe_key(KeyId=arn)
    assert error_code(e) == "AccessDeniedException"
    admin.create_alias(AliasName="alias/acl-finance", TargetKeyId=arn)
    assert eventually(lambda: app.describe_key(KeyId=arn))["KeyMetadata"]["Arn"] == arn


def test_a_grantee_may_pass_its_grant_on_but_never_widen_it(admin, app):
    arn = admin.create_key()["KeyMetadata"]["Arn"]
    token = admin.create_grant(
        KeyId=arn, GranteePrincipal=APP, Operations=["Encrypt", "CreateGrant"],
        Constraints={"EncryptionContextSubset": {"tenant": "acme"}},
    )["GrantToken"]
    helper = f"arn:aws:iam::{ACCOUNT}:role/Helper"
    narrower = app.create_grant(
        KeyId=arn, GranteePrincipal=helper, Operations=["Encrypt"], GrantTokens=[token],
        Constraints={"EncryptionContextEquals": {"tenant": "acme"}},
    )
    assert len(narrower["GrantId"]) == 64
    for ops, constraints in (
        (["Decrypt"], {"EncryptionContextEquals": {"tenant": "acme"}}),
        (["Encrypt"], None),
        (["Encrypt"], {"EncryptionContextSubset": {"tenant": "other"}}),
    ):
        kwargs = {"Constraints": constraints} if constraints else {}
        with pytest.raises(ClientError) as e:
            app.create_grant(KeyId=arn, GranteePrincipal=helper, Operations=ops,
                             GrantTokens=[token], **kwargs)
        assert error_code(e) == "AccessDeniedException", (ops, constraints)
