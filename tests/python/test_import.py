"""Bring Your Own Key through boto3: CreateKey(Origin=EXTERNAL), GetParametersForImport,
ImportKeyMaterial, DeleteImportedKeyMaterial and expiry of imported material. The material is
wrapped here by the `cryptography` package with the public key keyraft returns, exactly as an
AWS customer wraps it with OpenSSL."""

import datetime
import hashlib
import hmac
import os
import time

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def oaep(hash_alg):
    return padding.OAEP(mgf=padding.MGF1(algorithm=hash_alg), algorithm=hash_alg, label=None)


def wrap(params, algorithm, material):
    """EncryptedKeyMaterial for `material` under GetParametersForImport's answer."""
    public = serialization.load_der_public_key(params["PublicKey"])
    hash_alg = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep(hash_alg))
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep(hash_alg)) + aes_key_wrap_with_padding(aes_key, material)


def external_key(kms, **kwargs):
    return kms.create_key(Origin="EXTERNAL", **kwargs)["KeyMetadata"]["KeyId"]


def import_material(kms, key, material, algorithm="RSAES_OAEP_SHA_256", spec="RSA_2048", **kwargs):
    params = kms.get_parameters_for_import(
        KeyId=key, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    )
    kms.import_key_material(
        KeyId=key,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params, algorithm, material),
        **kwargs,
    )
    return params


def test_an_external_key_waits_for_material_and_refuses_crypto(kms):
    key = external_key(kms)
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["Origin"] == "EXTERNAL"
    assert meta["KeyState"] == "PendingImport"
    assert meta["Enabled"] is False
    assert "ValidTo" not in meta
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert error_code(e) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert error_code(e) == "KMSInvalidStateException"


def test_get_parameters_for_import_returns_a_24_hour_rsa_key_and_token(kms):
    key = external_key(kms)
    for spec, bits in [("RSA_2048", 2048), ("RSA_3072", 3072), ("RSA_4096", 4096)]:
        p = kms.get_parameters_for_import(
            KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec=spec
        )
        assert p["KeyId"].endswith(key)
        public = serialization.load_der_public_key(p["PublicKey"])
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == bits
        expected = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=24)
        assert abs((p["ParametersValidTo"] - expected).total_seconds()) < 600
        assert len(p["ImportToken"]) > 16


@pytest.mark.parametrize(
    "algorithm,spec",
    [
        ("RSAES_OAEP_SHA_1", "RSA_2048"),
        ("RSAES_OAEP_SHA_256", "RSA_3072"),
        ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"),
    ],
)
def test_material_wrapped_by_cryptography_imports_and_encrypts(kms, algorithm, spec):
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key, material, algorithm=algorithm, spec=spec)
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in meta
    blob = kms.encrypt(KeyId=key, Plaintext=b"bring your own key")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"bring your own key"


def test_the_same_material_comes_back_after_deletion_and_decrypts_old_ciphertexts(kms):
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key, material)
    blob = kms.encrypt(KeyId=key, Plaintext=b"made before deletion")["CiphertextBlob"]

    kms.delete_imported_key_material(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob)
    assert error_code(e) == "KMSInvalidStateException"

    with pytest.raises(ClientError) as e:
        import_material(kms, key, os.urandom(32))
    assert error_code(e) == "IncorrectKeyMaterialException"

    import_material(kms, key, material, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before deletion"


def test_different_material_is_refused_while_the_key_has_material(kms):
    key = external_key(kms)
    import_material(kms, key, os.urandom(32))
    with pytest.raises(ClientError) as e:
        import_material(kms, key, os.urandom(32))
    assert error_code(e) == "IncorrectKeyMaterialException"


def test_bad_tokens_material_and_expiry_get_aws_errors(kms):
    key = external_key(kms)
    p = kms.get_parameters_for_import(
        KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    material = os.urandom(32)

    def attempt(**kwargs):
        args = dict(
            KeyId=key,
            ImportToken=p["ImportToken"],
            EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_256", material),
        )
        args.update(kwargs)
        with pytest.raises(ClientError) as e:
            kms.import_key_material(**args)
        return error_code(e)

    token = bytearray(p["ImportToken"])
    token[len(token) // 2] ^= 1
    assert attempt(ImportToken=bytes(token)) == "InvalidImportTokenException"
    assert attempt(ImportToken=b"not a token at all") == "InvalidImportTokenException"
    assert attempt(EncryptedKeyMaterial=os.urandom(256)) == "InvalidCiphertextException"
    assert (
        attempt(EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_1", material))
        == "InvalidCiphertextException"
    )
    assert (
        attempt(EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_256", os.urandom(16)))
        == "IncorrectKeyMaterialException"
    )
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    assert (
        attempt(ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=past) == "ValidationException"
    )
    assert attempt(ExpirationModel="KEY_MATERIAL_EXPIRES") == "ValidationException"

    # A newer GetParametersForImport supersedes the older token.
    kms.get_parameters_for_import(
        KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    assert attempt() == "InvalidImportTokenException"


def test_import_operations_refuse_keys_with_generated_material(kms, new_key):
    key = new_key()
    with pytest.raises(ClientError) as e:
        kms.get_parameters_for_import(
            KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        )
    assert error_code(e) == "UnsupportedOperationException"
    with pytest.raises(ClientError) as e:
        kms.delete_imported_key_material(KeyId=key)
    assert error_code(e) == "UnsupportedOperationException"


def test_imported_rsa_ecc_and_hmac_keys_interoperate_with_cryptography(kms):
    # RSA signing key: PKCS#8 is too long for plain OAEP, so RSA_AES_KEY_WRAP.
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = external_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    import_material(kms, key, pkcs8, algorithm="RSA_AES_KEY_WRAP_SHA_256", spec="RSA_3072")
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kms.get_public_key(KeyId=key)["PublicKey"] == public_der
    sig = kms.sign(
        KeyId=key, Message=b"imported", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )["Signature"]
    private.public_key().verify(sig, b"imported", padding.PKCS1v15(), hashes.SHA256())

    # ECC signing key.
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_pkcs8 = ec_private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    import_material(kms, key, ec_pkcs8, algorithm="RSA_AES_KEY_WRAP_SHA_1")
    sig = kms.sign(KeyId=key, Message=b"imported", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    ec_private.public_key().verify(sig, b"imported", ec.ECDSA(hashes.SHA256()))

    # HMAC key: raw bytes, plain OAEP.
    secret = os.urandom(32)
    key = external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    import_material(kms, key, secret)
    mac = kms.generate_mac(KeyId=key, Message=b"imported", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(secret, b"imported", hashlib.sha256).digest()

    # Material that is not a key of the spec.
    key = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    with pytest.raises(ClientError) as e:
        import_material(kms, key, os.urandom(100), algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert error_code(e) == "IncorrectKeyMaterialException"


def wait_for_state(kms, key, state, timeout=20):
    deadline = time.time() + timeout
    while True:
        meta = kms.describe_key(KeyId=key)["KeyMetadata"]
        if meta["KeyState"] == state:
            return meta
        assert time.time() < deadline, f"waited for {state}, key is {meta['KeyState']}"
        time.sleep(0.2)


def test_expired_material_is_deleted_by_the_leader_and_can_be_reimported(clock_region):
    kms = clock_region.client()
    clock = clock_region.clock_file
    before = clock.read_text() if clock.exists() else None
    offset_ms = int(before or "0")
    try:
        key = external_key(kms)
        material = os.urandom(32)
        # One hour after the leader's (possibly offset) now.
        valid_to = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            milliseconds=offset_ms + 3_600_000
        )
        import_material(
            kms, key, material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to
        )
        meta = kms.describe_key(KeyId=key)["KeyMetadata"]
        assert meta["KeyState"] == "Enabled"
        assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
        assert abs((meta["ValidTo"] - valid_to).total_seconds()) < 2
        blob = kms.encrypt(KeyId=key, Plaintext=b"expires")["CiphertextBlob"]

        # Two hours later the leader's scheduler deletes the material.
        clock.write_text(str(offset_ms + 2 * 3_600_000))
        meta = wait_for_state(kms, key, "PendingImport")
        assert "ValidTo" not in meta
        # Crypto reads the front's cache, which the store's watch stream refreshes within
        # the staleness bound (1 s).
        deadline = time.time() + 5
        while True:
            try:
                kms.decrypt(CiphertextBlob=blob)
            except ClientError as err:
                assert err.response["Error"]["Code"] == "KMSInvalidStateException"
                break
            assert time.time() < deadline, "expired material still decrypts"
            time.sleep(0.2)

        # The same material comes back (not expiring this time) and old ciphertexts decrypt.
        import_material(kms, key, material)
        wait_for_state(kms, key, "Enabled")
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"expires"
    finally:
        if before is None:
            clock.unlink(missing_ok=True)
        else:
            clock.write_text(before)
