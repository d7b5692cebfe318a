"""Every key spec of issue 3's table through boto3, checked against an independent
implementation (the Python `cryptography` package, OpenSSL underneath):

- signatures keyraft makes verify with `cryptography` (RSA-PSS with salt = digest length,
  RSA PKCS#1 v1.5, ECDSA DER incl. secp256k1, Ed25519, ML-DSA);
- keyraft's Verify accepts digests computed by `cryptography` and re-encoded (malleated)
  ECDSA signatures built with `cryptography`, and rejects tampered ones;
- RSA-OAEP ciphertexts made by `cryptography` with GetPublicKey's key decrypt in keyraft;
- ECDH shared secrets equal `cryptography`'s exchange with a local key pair;
- HMAC tags have the right length, verify, and a flipped one is KMSInvalidMacException;
- GenerateDataKeyPair private keys load with `load_der_private_key` and match the public key.

Ed25519ph (ED25519_PH_SHA_512): `cryptography` has no Ed25519ph, so those signatures are
verified with PyCryptodome's RFC 8032 implementation instead (and keystore checks RFC 8032's
own test vector).
"""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

RSA_SIGNING = [
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
]
RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]

# spec -> signing algorithms of a SIGN_VERIFY key, as DescribeKey lists them.
SIGNING = {
    "RSA_2048": RSA_SIGNING,
    "RSA_3072": RSA_SIGNING,
    "RSA_4096": RSA_SIGNING,
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    "ECC_NIST_EDWARDS25519": ["ED25519_SHA_512", "ED25519_PH_SHA_512"],
    "ML_DSA_44": ["ML_DSA_SHAKE_256"],
    "ML_DSA_65": ["ML_DSA_SHAKE_256"],
    "ML_DSA_87": ["ML_DSA_SHAKE_256"],
}
CURVES = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
# (spec, usage) -> the one DescribeKey list member that must be present, and its value.
DESCRIBE = [
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", ["SYMMETRIC_DEFAULT"]),
    ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", RSA_ENCRYPTION),
    ("RSA_3072", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", RSA_ENCRYPTION),
    ("RSA_4096", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", RSA_ENCRYPTION),
    *[(spec, "SIGN_VERIFY", "SigningAlgorithms", algs) for spec, algs in SIGNING.items()],
    ("ECC_NIST_P256", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ("ECC_NIST_P384", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ("ECC_NIST_P521", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ("HMAC_224", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_224"]),
    ("HMAC_256", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_256"]),
    ("HMAC_384", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_384"]),
    ("HMAC_512", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_512"]),
]
ALGORITHM_MEMBERS = [
    "EncryptionAlgorithms",
    "SigningAlgorithms",
    "MacAlgorithms",
    "KeyAgreementAlgorithms",
]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def hash_of(alg):
    for suffix, h in (("SHA_256", hashes.SHA256()), ("SHA_384", hashes.SHA384()),
                      ("SHA_512", hashes.SHA512()), ("SHA_1", hashes.SHA1())):
        if alg.endswith(suffix):
            return h
    raise ValueError(alg)


def digest(alg, message):
    h = hashes.Hash(hash_of(alg))
    h.update(message)
    return h.finalize()


@pytest.fixture(scope="module")
def keys(region):
    """Creates each (spec, usage) key once per module, through boto3."""
    kms = region.client()
    made = {}

    def get(spec, usage):
        if (spec, usage) not in made:
            made[(spec, usage)] = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        return made[(spec, usage)]["KeyId"]

    return get


def public_key(kms, key_id):
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def verify_locally(spec, alg, pub, signature, message, message_type):
    """Raises InvalidSignature unless `cryptography` accepts the signature."""
    prehashed = message_type == "DIGEST"
    if alg.startswith("RSASSA_PSS"):
        h = hash_of(alg)
        pad = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        pub.verify(signature, message, pad, utils.Prehashed(h) if prehashed else h)
    elif alg.startswith("RSASSA_PKCS1"):
        h = hash_of(alg)
        pub.verify(signature, message, padding.PKCS1v15(), utils.Prehashed(h) if prehashed else h)
    elif alg.startswith("ECDSA"):
        h = hash_of(alg)
        pub.verify(signature, message, ec.ECDSA(utils.Prehashed(h) if prehashed else h))
    elif alg == "ED25519_SHA_512":
        pub.verify(signature, message)
    elif alg == "ML_DSA_SHAKE_256":
        pub.verify(signature, message)
    else:
        raise AssertionError(f"no local verifier for {alg}")


# ---- CreateKey / DescribeKey / GetPublicKey ----------------------------------------------------


@pytest.mark.parametrize("spec,usage,member,algorithms", DESCRIBE,
                         ids=[f"{s}-{u}" for s, u, _, _ in DESCRIBE])
def test_describe_key_reports_spec_usage_and_algorithms(kms, keys, spec, usage, member, algorithms):
    meta = kms.describe_key(KeyId=keys(spec, usage))["KeyMetadata"]
    assert meta["KeySpec"] == spec
    assert meta["CustomerMasterKeySpec"] == spec
    assert meta["KeyUsage"] == usage
    assert meta[member] == algorithms
    for other in ALGORITHM_MEMBERS:
        if other != member:
            assert other not in meta, other


def test_legacy_customer_master_key_spec_creates_the_same_kind_of_key(kms):
    meta = kms.create_key(CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert (meta["KeySpec"], meta["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")


@pytest.mark.parametrize("spec,usage,member,algorithms",
                         [row for row in DESCRIBE if row[0] != "SYMMETRIC_DEFAULT" and not row[0].startswith("HMAC")],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_get_public_key_returns_a_der_spki_of_the_spec(kms, keys, spec, usage, member, algorithms):
    key = keys(spec, usage)
    out = kms.get_public_key(KeyId=key)
    assert out["KeySpec"] == spec and out["KeyUsage"] == usage
    assert out[member] == algorithms
    assert out["KeyId"].endswith(key)
    if spec.startswith("ML_DSA"):
        return  # checked by test_ml_dsa_signatures_verify_with_cryptography
    pub = serialization.load_der_public_key(out["PublicKey"])
    if spec.startswith("RSA"):
        assert isinstance(pub, rsa.RSAPublicKey)
        assert pub.key_size == int(spec.split("_")[1])
    elif spec in CURVES:
        assert isinstance(pub.curve, CURVES[spec])
    else:
        assert isinstance(pub, ed25519.Ed25519PublicKey)
    # Re-encoding with OpenSSL gives the same bytes: the SPKI is canonical DER.
    again = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert again == out["PublicKey"]


# ---- Sign / Verify -----------------------------------------------------------------------------

SIGN_CASES = [
    (spec, alg, mt)
    for spec, algs in SIGNING.items()
    if not spec.startswith("ML_DSA")
    for alg in algs
    for mt in (["RAW"] if alg == "ED25519_SHA_512" else ["DIGEST"] if alg == "ED25519_PH_SHA_512" else ["RAW", "DIGEST"])
]


@pytest.mark.parametrize("spec,alg,message_type", SIGN_CASES, ids=["-".join(c) for c in SIGN_CASES])
def test_signatures_interoperate_with_cryptography(kms, keys, spec, alg, message_type):
    key = keys(spec, "SIGN_VERIFY")
    message = os.urandom(100)
    if alg == "ED25519_PH_SHA_512":
        payload = hashlib.sha512(message).digest()
    elif message_type == "DIGEST":
        payload = digest(alg, message)  # the digest is computed by cryptography, not keyraft
    else:
        payload = message
    out = kms.sign(KeyId=key, Message=payload, MessageType=message_type, SigningAlgorithm=alg)
    assert out["SigningAlgorithm"] == alg
    signature = out["Signature"]
    if alg == "ED25519_PH_SHA_512":
        verify_ed25519ph_with_pycryptodome(kms, key, message, signature)
    else:
        verify_locally(spec, alg, public_key(kms, key), signature, payload, message_type)
    # keyraft verifies its own signature, both ways the message can be given.
    ok = kms.verify(KeyId=key, Message=payload, MessageType=message_type, Signature=signature,
                    SigningAlgorithm=alg)
    assert ok["SignatureValid"] is True
    if message_type == "DIGEST" and alg.startswith(("RSA", "ECDSA")):
        assert kms.verify(KeyId=key, Message=message, MessageType="RAW", Signature=signature,
                          SigningAlgorithm=alg)["SignatureValid"] is True
    # A flipped bit is KMSInvalidSignatureException, never SignatureValid=false.
    bad = bytearray(signature)
    bad[len(bad) // 2] ^= 0x01
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=payload, MessageType=message_type, Signature=bytes(bad),
                   SigningAlgorithm=alg)
    assert error_code(e) == "KMSInvalidSignatureException"
    if alg == "ED25519_PH_SHA_512":
        with pytest.raises(ValueError):
            verify_ed25519ph_with_pycryptodome(kms, key, message, bytes(bad))
    else:
        with pytest.raises(InvalidSignature):
            verify_locally(spec, alg, public_key(kms, key), bytes(bad), payload, message_type)


def verify_ed25519ph_with_pycryptodome(kms, key, message, signature):
    """RFC 8032 Ed25519ph (empty context) over SHA-512(message), by PyCryptodome: passing a
    hash object instead of bytes selects the prehash variant. Raises ValueError if invalid."""
    from Crypto.Hash import SHA512
    from Crypto.PublicKey import ECC
    from Crypto.Signature import eddsa

    spki = kms.get_public_key(KeyId=key)["PublicKey"]
    eddsa.new(ECC.import_key(spki), "rfc8032").verify(SHA512.new(message), signature)


@pytest.mark.parametrize("spec", list(CURVES))
def test_keyraft_verify_accepts_an_ecdsa_signature_re_encoded_by_cryptography(kms, keys, spec):
    """(r, n - s) is a different, equally valid ECDSA signature: built with `cryptography`'s
    DER encoder, keyraft must accept it (AWS does not enforce low-s) and `cryptography` too."""
    key = keys(spec, "SIGN_VERIFY")
    alg = SIGNING[spec][0]
    message = b"malleable message"
    signature = kms.sign(KeyId=key, Message=message, SigningAlgorithm=alg)["Signature"]
    r, s = utils.decode_dss_signature(signature)
    order = {
        "ECC_NIST_P256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "ECC_NIST_P384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                             "581A0DB248B0A77AECEC196ACCC52973", 16),
        "ECC_NIST_P521": int("01" + "F" * 65 + "A51868783BF2F966B7FCC0148F709A5D03BB5C9B"
                             "8899C47AEBB6FB71E91386409", 16),
        "ECC_SECG_P256K1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    }[spec]
    other = utils.encode_dss_signature(r, order - s)
    assert other != signature
    verify_locally(spec, alg, public_key(kms, key), other, message, "RAW")
    assert kms.verify(KeyId=key, Message=message, Signature=other, SigningAlgorithm=alg)["SignatureValid"]
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=b"another message", Signature=other, SigningAlgorithm=alg)
    assert error_code(e) == "KMSInvalidSignatureException"


def test_keyraft_verify_rejects_a_signature_of_another_key_made_by_cryptography(kms, keys):
    key = keys("ECC_NIST_P256", "SIGN_VERIFY")
    local = ec.generate_private_key(ec.SECP256R1())
    foreign = local.sign(b"hello", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=b"hello", Signature=foreign, SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "KMSInvalidSignatureException"


def ml_dsa_supported():
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa

        mldsa.MLDSA44PrivateKey.generate()
        return True
    except Exception:
        return False


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_signatures_verify_with_cryptography(kms, keys, spec):
    key = keys(spec, "SIGN_VERIFY")
    message = os.urandom(300)
    signature = kms.sign(KeyId=key, Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    assert len(signature) == {"ML_DSA_44": 2420, "ML_DSA_65": 3309, "ML_DSA_87": 4627}[spec]
    assert kms.verify(KeyId=key, Message=message, Signature=signature,
                      SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"] is True
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=message + b"!", Signature=signature,
                   SigningAlgorithm="ML_DSA_SHAKE_256")
    assert error_code(e) == "KMSInvalidSignatureException"
    if not ml_dsa_supported():
        pytest.skip("this cryptography build has no ML-DSA: keyraft round trip only")
    pub = public_key(kms, key)
    pub.verify(signature, message)
    with pytest.raises(InvalidSignature):
        pub.verify(signature, message + b"!")


# ---- RSA encryption ----------------------------------------------------------------------------

OAEP_LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}


@pytest.mark.parametrize("spec,alg", list(OAEP_LIMITS), ids=["-".join(k) for k in OAEP_LIMITS])
def test_rsa_oaep_interoperates_with_cryptography(kms, keys, spec, alg):
    key = keys(spec, "ENCRYPT_DECRYPT")
    pub = public_key(kms, key)
    h = hash_of(alg)
    limit = OAEP_LIMITS[(spec, alg)]
    for plaintext in (b"p", os.urandom(limit)):
        # cryptography encrypts with GetPublicKey's key; keyraft decrypts the raw OAEP bytes.
        blob = pub.encrypt(plaintext, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
        out = kms.decrypt(CiphertextBlob=blob, KeyId=key, EncryptionAlgorithm=alg)
        assert out["Plaintext"] == plaintext
        assert out["EncryptionAlgorithm"] == alg
    # keyraft's own ciphertext is raw OAEP of the modulus size, and decrypts.
    out = kms.encrypt(KeyId=key, Plaintext=b"hello", EncryptionAlgorithm=alg)
    assert out["EncryptionAlgorithm"] == alg
    assert len(out["CiphertextBlob"]) == pub.key_size // 8
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=key,
                       EncryptionAlgorithm=alg)["Plaintext"] == b"hello"
    # One byte over AWS's per-size limit is refused.
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x" * (limit + 1), EncryptionAlgorithm=alg)
    assert error_code(e) == "ValidationException"
    # The other OAEP hash does not decrypt it: one opaque error.
    other = [a for a in RSA_ENCRYPTION if a != alg][0]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=key, EncryptionAlgorithm=other)
    assert error_code(e) == "InvalidCiphertextException"


# ---- ECDH --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_derive_shared_secret_equals_cryptography_exchange(kms, keys, spec):
    key = keys(spec, "KEY_AGREEMENT")
    local = ec.generate_private_key(CURVES[spec]())
    local_public = local.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=local_public)
    assert out["KeyAgreementAlgorithm"] == "ECDH"
    assert out["KeyOrigin"] == "AWS_KMS"
    expected = local.exchange(ec.ECDH(), public_key(kms, key))
    assert out["SharedSecret"] == expected


# ---- HMAC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,length", [("HMAC_224", 28), ("HMAC_256", 32), ("HMAC_384", 48), ("HMAC_512", 64)])
def test_hmac_generate_and_verify(kms, keys, spec, length):
    key = keys(spec, "GENERATE_VERIFY_MAC")
    alg = "HMAC_SHA_" + spec.split("_")[1]
    message = os.urandom(64)
    out = kms.generate_mac(KeyId=key, Message=message, MacAlgorithm=alg)
    assert out["MacAlgorithm"] == alg and len(out["Mac"]) == length
    # HMAC is deterministic: the same message gives the same tag; another one does not.
    assert kms.generate_mac(KeyId=key, Message=message, MacAlgorithm=alg)["Mac"] == out["Mac"]
    assert kms.generate_mac(KeyId=key, Message=message + b"x", MacAlgorithm=alg)["Mac"] != out["Mac"]
    ok = kms.verify_mac(KeyId=key, Message=message, MacAlgorithm=alg, Mac=out["Mac"])
    assert ok["MacValid"] is True
    for bad in (bytes([out["Mac"][0] ^ 1]) + out["Mac"][1:], out["Mac"][:-1]):
        with pytest.raises(ClientError) as e:
            kms.verify_mac(KeyId=key, Message=message, MacAlgorithm=alg, Mac=bad)
        assert error_code(e) == "KMSInvalidMacException"


# ---- data key pairs ----------------------------------------------------------------------------

PAIR_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
              "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"]


def spki(public):
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("pair_spec", PAIR_SPECS)
def test_generate_data_key_pair_private_key_loads_and_matches(kms, keys, pair_spec):
    key = keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    ctx = {"purpose": "test"}
    out = kms.generate_data_key_pair(KeyId=key, KeyPairSpec=pair_spec, EncryptionContext=ctx)
    assert out["KeyPairSpec"] == pair_spec
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    assert spki(private.public_key()) == out["PublicKey"]
    if pair_spec == "ECC_NIST_EDWARDS25519":
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        signature = private.sign(b"made with a keyraft data key pair")
        private.public_key().verify(signature, b"made with a keyraft data key pair")
    elif pair_spec in CURVES:
        assert isinstance(private.curve, CURVES[pair_spec])
    else:
        assert private.key_size == int(pair_spec.split("_")[1])
    # The sealed private key is an ordinary ciphertext of the symmetric key, context bound.
    opened = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert opened["Plaintext"] == out["PrivateKeyPlaintext"]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])
    assert error_code(e) == "InvalidCiphertextException"


ML_KEM_SEED_PKCS8_PREFIX = {
    # PKCS#8 v1, AlgorithmIdentifier id-alg-ml-kem-*, privateKey = seed [0] (64 bytes).
    "ML_KEM_512": bytes.fromhex("3054020100300b060960864801650304040104428040"),
    "ML_KEM_768": bytes.fromhex("3054020100300b060960864801650304040204428040"),
    "ML_KEM_1024": bytes.fromhex("3054020100300b060960864801650304040304428040"),
}


@pytest.mark.parametrize("pair_spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_ml_kem_data_key_pair_works_with_cryptography(kms, keys, pair_spec):
    key = keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    out = kms.generate_data_key_pair(KeyId=key, KeyPairSpec=pair_spec)
    assert out["KeyPairSpec"] == pair_spec
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    assert spki(private.public_key()) == out["PublicKey"]
    # Someone holding only the public key encapsulates; the private key recovers the secret.
    public = serialization.load_der_public_key(out["PublicKey"])
    shared, ciphertext = public.encapsulate()
    assert private.decapsulate(ciphertext) == shared
    # The private key is the 64-byte seed form, and it round-trips the sealed copy.
    assert out["PrivateKeyPlaintext"].startswith(ML_KEM_SEED_PKCS8_PREFIX[pair_spec])
    assert kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])["Plaintext"] == out["PrivateKeyPlaintext"]


def test_ml_kem_512_data_key_pair_matches_kyber_py(kms, keys):
    # cryptography has no ML-KEM-512; kyber-py (a pure-Python FIPS 203 implementation) does.
    from kyber_py.ml_kem import ML_KEM_512

    key = keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    out = kms.generate_data_key_pair_without_plaintext(KeyId=key, KeyPairSpec="ML_KEM_512")
    private_der = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])["Plaintext"]
    prefix = ML_KEM_SEED_PKCS8_PREFIX["ML_KEM_512"]
    assert private_der.startswith(prefix) and len(private_der) == len(prefix) + 64
    seed = private_der[len(prefix):]
    ek, dk = ML_KEM_512.key_derive(seed)
    # SPKI: SEQUENCE { AlgorithmIdentifier { id-alg-ml-kem-512 }, BIT STRING { 00 || ek } }.
    public_prefix = bytes.fromhex("30820332" "300b0609608648016503040401" "0382032100")
    assert out["PublicKey"] == public_prefix + ek
    shared, ciphertext = ML_KEM_512.encaps(ek)
    assert ML_KEM_512.decaps(dk, ciphertext) == shared


@pytest.mark.parametrize("pair_spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"])
def test_generate_data_key_pair_without_plaintext(kms, keys, pair_spec):
    key = keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    out = kms.generate_data_key_pair_without_plaintext(KeyId=key, KeyPairSpec=pair_spec)
    assert "PrivateKeyPlaintext" not in out
    private_der = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])["Plaintext"]
    private = serialization.load_der_private_key(private_der, password=None)
    assert spki(private.public_key()) == out["PublicKey"]


# ---- errors, as AWS raises them ----------------------------------------------------------------


@pytest.fixture(scope="module")
def error_keys(region, keys):
    kms = region.client()
    disabled = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)
    disabled_hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled_hmac)
    disabled_ecdh = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled_ecdh)
    pending = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    return {
        "sym": keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        "rsa_enc": keys("RSA_2048", "ENCRYPT_DECRYPT"),
        "rsa_sign": keys("RSA_2048", "SIGN_VERIFY"),
        "p256": keys("ECC_NIST_P256", "SIGN_VERIFY"),
        "p256_ka": keys("ECC_NIST_P256", "KEY_AGREEMENT"),
        "ed": keys("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
        "mldsa": keys("ML_DSA_44", "SIGN_VERIFY"),
        "hmac": keys("HMAC_256", "GENERATE_VERIFY_MAC"),
        "disabled": disabled,
        "disabled_hmac": disabled_hmac,
        "disabled_ecdh": disabled_ecdh,
        "pending": pending,
        "p384_spki": spki(p384),
    }


def error_cases(k):
    sig = dict(SigningAlgorithm="ECDSA_SHA_256", Message=b"m")
    return [
        # CreateKey: KeyUsage is required but for SYMMETRIC_DEFAULT, and must fit the spec.
        ("create_key", dict(KeySpec="ECC_NIST_P256"), "ValidationException"),
        ("create_key", dict(KeySpec="RSA_2048"), "ValidationException"),
        ("create_key", dict(KeySpec="HMAC_256"), "ValidationException"),
        ("create_key", dict(KeySpec="HMAC_256", KeyUsage="SIGN_VERIFY"), "ValidationException"),
        ("create_key", dict(KeySpec="ECC_SECG_P256K1", KeyUsage="KEY_AGREEMENT"), "ValidationException"),
        ("create_key", dict(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="KEY_AGREEMENT"), "ValidationException"),
        ("create_key", dict(KeySpec="RSA_2048", KeyUsage="GENERATE_VERIFY_MAC"), "ValidationException"),
        ("create_key", dict(KeySpec="ML_DSA_65", KeyUsage="ENCRYPT_DECRYPT"), "ValidationException"),
        ("create_key", dict(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY"), "ValidationException"),
        ("create_key", dict(KeySpec="SM2", KeyUsage="SIGN_VERIFY"), "UnsupportedOperationException"),
        ("create_key", dict(KeySpec="ML_KEM_768", KeyUsage="KEY_AGREEMENT"), "UnsupportedOperationException"),
        ("create_key", dict(KeySpec="RSA_2048", CustomerMasterKeySpec="RSA_2048", KeyUsage="SIGN_VERIFY"),
         "ValidationException"),
        # GetPublicKey
        ("get_public_key", dict(KeyId=k["sym"]), "UnsupportedOperationException"),
        ("get_public_key", dict(KeyId=k["hmac"]), "UnsupportedOperationException"),
        ("get_public_key", dict(KeyId=k["disabled"]), "DisabledException"),
        ("get_public_key", dict(KeyId=k["pending"]), "KMSInvalidStateException"),
        # Sign / Verify: wrong usage, wrong algorithm, message rules
        ("sign", dict(KeyId=k["sym"], **sig), "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["rsa_enc"], SigningAlgorithm="RSASSA_PSS_SHA_256", Message=b"m"),
         "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["hmac"], **sig), "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["p256_ka"], **sig), "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["p256"], SigningAlgorithm="ECDSA_SHA_384", Message=b"m"), "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["rsa_sign"], SigningAlgorithm="ECDSA_SHA_256", Message=b"m"),
         "InvalidKeyUsageException"),
        ("sign", dict(KeyId=k["p256"], SigningAlgorithm="NOT_AN_ALG", Message=b"m"), "ValidationException"),
        ("sign", dict(KeyId=k["p256"], MessageType="DIGEST", **{**sig, "Message": b"x" * 31}), "ValidationException"),
        ("sign", dict(KeyId=k["p256"], MessageType="DIGEST", **{**sig, "Message": b"x" * 48}), "ValidationException"),
        ("sign", dict(KeyId=k["p256"], **{**sig, "Message": b"x" * 4097}), "ValidationException"),
        ("sign", dict(KeyId=k["ed"], SigningAlgorithm="ED25519_SHA_512", MessageType="DIGEST", Message=b"x" * 64),
         "ValidationException"),
        ("sign", dict(KeyId=k["ed"], SigningAlgorithm="ED25519_PH_SHA_512", MessageType="RAW", Message=b"m"),
         "ValidationException"),
        ("sign", dict(KeyId=k["ed"], SigningAlgorithm="ED25519_PH_SHA_512", MessageType="DIGEST", Message=b"x" * 32),
         "ValidationException"),
        ("sign", dict(KeyId=k["mldsa"], SigningAlgorithm="ML_DSA_SHAKE_256", MessageType="DIGEST", Message=b"x" * 64),
         "ValidationException"),
        ("sign", dict(KeyId=k["mldsa"], SigningAlgorithm="ML_DSA_SHAKE_256", MessageType="EXTERNAL_MU",
                      Message=b"x" * 63), "ValidationException"),
        ("sign", dict(KeyId=k["disabled"], **sig), "DisabledException"),
        ("sign", dict(KeyId=k["pending"], **sig), "KMSInvalidStateException"),
        ("verify", dict(KeyId=k["p256"], Signature=b"\x30\x06\x02\x01\x01\x02\x01\x01", **sig),
         "KMSInvalidSignatureException"),
        ("verify", dict(KeyId=k["p256"], Signature=b"garbage", **sig), "KMSInvalidSignatureException"),
        ("verify", dict(KeyId=k["sym"], Signature=b"x", **sig), "InvalidKeyUsageException"),
        ("verify", dict(KeyId=k["disabled"], Signature=b"x", **sig), "DisabledException"),
        # GenerateMac / VerifyMac
        ("generate_mac", dict(KeyId=k["p256"], MacAlgorithm="HMAC_SHA_256", Message=b"m"), "InvalidKeyUsageException"),
        ("generate_mac", dict(KeyId=k["sym"], MacAlgorithm="HMAC_SHA_256", Message=b"m"), "InvalidKeyUsageException"),
        ("generate_mac", dict(KeyId=k["hmac"], MacAlgorithm="HMAC_SHA_512", Message=b"m"), "InvalidKeyUsageException"),
        ("generate_mac", dict(KeyId=k["hmac"], MacAlgorithm="HMAC_SHA_256", Message=b"x" * 4097), "ValidationException"),
        ("generate_mac", dict(KeyId=k["disabled_hmac"], MacAlgorithm="HMAC_SHA_256", Message=b"m"), "DisabledException"),
        ("verify_mac", dict(KeyId=k["hmac"], MacAlgorithm="HMAC_SHA_256", Message=b"m", Mac=b"\x00" * 32),
         "KMSInvalidMacException"),
        # DeriveSharedSecret
        ("derive_shared_secret", dict(KeyId=k["p256"], KeyAgreementAlgorithm="ECDH", PublicKey=k["p384_spki"]),
         "InvalidKeyUsageException"),
        ("derive_shared_secret", dict(KeyId=k["p256_ka"], KeyAgreementAlgorithm="ECDH", PublicKey=k["p384_spki"]),
         "ValidationException"),
        ("derive_shared_secret", dict(KeyId=k["p256_ka"], KeyAgreementAlgorithm="ECDH", PublicKey=b"\x04" * 65),
         "ValidationException"),
        ("derive_shared_secret", dict(KeyId=k["disabled_ecdh"], KeyAgreementAlgorithm="ECDH",
                                      PublicKey=k["p384_spki"]), "DisabledException"),
        # Encrypt / Decrypt with RSA keys
        ("encrypt", dict(KeyId=k["rsa_enc"], Plaintext=b"x"), "InvalidKeyUsageException"),
        ("encrypt", dict(KeyId=k["rsa_sign"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "InvalidKeyUsageException"),
        ("encrypt", dict(KeyId=k["p256"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "InvalidKeyUsageException"),
        ("encrypt", dict(KeyId=k["p256"], Plaintext=b"x"), "InvalidKeyUsageException"),
        ("encrypt", dict(KeyId=k["sym"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1"),
         "InvalidKeyUsageException"),
        ("encrypt", dict(KeyId=k["rsa_enc"], Plaintext=b"x" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "ValidationException"),
        ("encrypt", dict(KeyId=k["rsa_enc"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256",
                         EncryptionContext={"a": "b"}), "ValidationException"),
        ("decrypt", dict(CiphertextBlob=b"\x01" * 256, EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "ValidationException"),
        ("decrypt", dict(CiphertextBlob=b"\x01" * 256, KeyId=k["rsa_enc"], EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "InvalidCiphertextException"),
        ("decrypt", dict(CiphertextBlob=b"\x01" * 255, KeyId=k["rsa_enc"], EncryptionAlgorithm="RSAES_OAEP_SHA_1"),
         "InvalidCiphertextException"),
        # Symmetric-only operations with other keys
        ("generate_data_key", dict(KeyId=k["rsa_enc"], KeySpec="AES_256"), "InvalidKeyUsageException"),
        ("generate_data_key", dict(KeyId=k["hmac"], KeySpec="AES_256"), "InvalidKeyUsageException"),
        ("generate_data_key_pair", dict(KeyId=k["p256"], KeyPairSpec="ECC_NIST_P256"), "InvalidKeyUsageException"),
        ("generate_data_key_pair", dict(KeyId=k["sym"], KeyPairSpec="SM2"), "ValidationException"),
        ("generate_data_key_pair_without_plaintext", dict(KeyId=k["rsa_enc"], KeyPairSpec="RSA_2048"),
         "InvalidKeyUsageException"),
    ]


KEY_NAMES = ["sym", "rsa_enc", "rsa_sign", "p256", "p256_ka", "ed", "mldsa", "hmac", "disabled",
             "disabled_hmac", "disabled_ecdh", "pending", "p384_spki"]
# The table is written against placeholders so that pytest ids exist before any key does.
CASES = error_cases({name: f"<{name}>" for name in KEY_NAMES})


def case_id(case):
    op, args, expected = case
    shown = ",".join(
        f"{a}={v[1:-1]}" if isinstance(v, str) and v.startswith("<")
        else f"{a}={v}" if isinstance(v, str) and len(v) < 24
        else a
        for a, v in sorted(args.items()))
    return f"{op}({shown})->{expected}"


@pytest.mark.parametrize("op,args,expected", CASES, ids=[case_id(c) for c in CASES])
def test_error_table(region, error_keys, op, args, expected):
    real = {a: error_keys[v[1:-1]] if isinstance(v, str) and v.startswith("<") else v
            for a, v in args.items()}
    kms = region.client(validate=False)  # let the server, not botocore, judge the request
    with pytest.raises(ClientError) as e:
        getattr(kms, op)(**real)
    assert error_code(e) == expected, str(e.value)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---- ReEncrypt across symmetric and RSA keys ---------------------------------------------------


def test_re_encrypt_between_symmetric_and_rsa_keys(kms, keys):
    sym = keys("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    rsa_key = keys("RSA_2048", "ENCRYPT_DECRYPT")
    rsa_other = keys("RSA_3072", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=sym, Plaintext=b"move me", EncryptionContext={"a": "1"})["CiphertextBlob"]
    # symmetric -> RSA
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"a": "1"}, DestinationKeyId=rsa_key,
                         DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert out["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    rsa_blob = out["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=rsa_blob, KeyId=rsa_key,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"move me"
    # RSA -> RSA (another size, another hash)
    out = kms.re_encrypt(CiphertextBlob=rsa_blob, SourceKeyId=rsa_key, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                         DestinationKeyId=rsa_other, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=rsa_other,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == b"move me"
    # RSA (made by cryptography) -> symmetric
    h = hashes.SHA256()
    local_blob = public_key(kms, rsa_key).encrypt(b"from outside", padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    out = kms.re_encrypt(CiphertextBlob=local_blob, SourceKeyId=rsa_key,
                         SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=sym,
                         DestinationEncryptionContext={"b": "2"})
    assert out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"b": "2"})["Plaintext"] == b"from outside"
    # The source key must be named for an RSA ciphertext.
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=local_blob, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                       DestinationKeyId=sym)
    assert error_code(e) == "ValidationException"


# ---- ML-DSA with MessageType EXTERNAL_MU -------------------------------------------------------

ML_DSA_PUBLIC_KEY_LEN = {"ML_DSA_44": 1312, "ML_DSA_65": 1952, "ML_DSA_87": 2592}


def ml_dsa_raw_public_key(spki_der, spec):
    """The FIPS 204 public key inside GetPublicKey's SPKI."""
    try:
        pub = serialization.load_der_public_key(spki_der)
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except Exception:
        # No ML-DSA in this `cryptography`: the SPKI ends with BIT STRING { 0 unused bits, pk }.
        n = ML_DSA_PUBLIC_KEY_LEN[spec]
        assert spki_der[-n - 1] == 0, "BIT STRING must have 0 unused bits"
        raw = spki_der[-n:]
    assert len(raw) == ML_DSA_PUBLIC_KEY_LEN[spec]
    return raw


def external_mu(raw_public_key, message):
    """FIPS 204 §6.2 mu for pure ML-DSA with an empty context, as AWS documents it."""
    tr = hashlib.shake_256(raw_public_key).digest(64)
    return hashlib.shake_256(tr + b"\x00\x00" + message).digest(64)


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_external_mu_sign_and_verify(kms, keys, spec):
    key = keys(spec, "SIGN_VERIFY")
    spki_der = kms.get_public_key(KeyId=key)["PublicKey"]
    message = os.urandom(10_000)  # larger than Sign's 4096-byte RAW limit: the point of mu
    mu = external_mu(ml_dsa_raw_public_key(spki_der, spec), message)
    signature = kms.sign(KeyId=key, Message=mu, MessageType="EXTERNAL_MU",
                         SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    assert len(signature) == {"ML_DSA_44": 2420, "ML_DSA_65": 3309, "ML_DSA_87": 4627}[spec]
    assert kms.verify(KeyId=key, Message=mu, MessageType="EXTERNAL_MU", Signature=signature,
                      SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"] is True
    flipped = bytearray(signature)
    flipped[17] ^= 0x01
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=mu, MessageType="EXTERNAL_MU", Signature=bytes(flipped),
                   SigningAlgorithm="ML_DSA_SHAKE_256")
    assert error_code(e) == "KMSInvalidSignatureException"
    for bad_len in (63, 65):
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=key, Message=mu[:bad_len] if bad_len < 64 else mu + b"\x00",
                     MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256")
        assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key, Message=mu[:63], MessageType="EXTERNAL_MU", Signature=signature,
                   SigningAlgorithm="ML_DSA_SHAKE_256")
    assert error_code(e) == "ValidationException"
    if not ml_dsa_supported():
        pytest.skip("this cryptography build has no ML-DSA: keyraft round trip only")
    # Independent implementation: an ordinary ML-DSA signature of the message itself.
    pub = serialization.load_der_public_key(spki_der)
    pub.verify(signature, message)
    with pytest.raises(InvalidSignature):
        pub.verify(signature, message + b"!")


def test_external_mu_is_refused_for_other_algorithms(kms, keys):
    key = keys("ECC_NIST_P256", "SIGN_VERIFY")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"x" * 64, MessageType="EXTERNAL_MU", SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "ValidationException"
