"""The seed document's application code (use case 1, envelope encryption with Fernet), run
against keyraft with only the endpoint changed."""

import base64
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.fernet import Fernet


class EnterpriseDataEncryption:
    """The seed's class, minus S3, with the client injected (the seed calls boto3.client('kms'))."""

    def __init__(self, kms_client):
        self.kms_client = kms_client

    def encrypt_sensitive_data(self, data, data_classification):
        key_mapping = {
            "highly_sensitive": "alias/customer-data-encryption",
            "sensitive": "alias/internal-business-data",
            "internal": "alias/application-data",
        }
        kms_key_id = key_mapping.get(data_classification)
        if not kms_key_id:
            raise ValueError(f"Invalid data classification: {data_classification}")
        response = self.kms_client.generate_data_key(
            KeyId=kms_key_id,
            KeySpec="AES_256",
            EncryptionContext={
                "DataClassification": data_classification,
                "Application": "FinancialDataProcessing",
                "Environment": os.environ.get("ENVIRONMENT", "dev"),
            },
        )
        cipher = Fernet(base64.urlsafe_b64encode(response["Plaintext"][:32]))
        return {
            "encrypted_data": cipher.encrypt(data.encode()),
            "encrypted_data_key": response["CiphertextBlob"],
            "encryption_context": {
                "DataClassification": data_classification,
                "Application": "FinancialDataProcessing",
            },
        }

    def decrypt_sensitive_data(self, encrypted_package):
        response = self.kms_client.decrypt(
            CiphertextBlob=encrypted_package["encrypted_data_key"],
            EncryptionContext=encrypted_package["encryption_context"],
        )
        cipher = Fernet(base64.urlsafe_b64encode(response["Plaintext"][:32]))
        return cipher.decrypt(encrypted_package["encrypted_data"]).decode()


@pytest.fixture(scope="module")
def classified_keys(region):
    kms = region.client()
    for alias, desc in [
        ("alias/customer-data-encryption", "Highly Sensitive Customer Data Encryption Key"),
        ("alias/internal-business-data", "Internal Business Data Encryption Key"),
        ("alias/application-data", "Application data"),
    ]:
        key = kms.create_key(Description=desc, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key)
    return kms


def test_seed_code_as_written_fails_like_aws(classified_keys):
    """The seed stores a context without 'Environment', so Decrypt must fail, as on AWS."""
    svc = EnterpriseDataEncryption(classified_keys)
    package = svc.encrypt_sensitive_data("4111 1111 1111 1111", "highly_sensitive")
    with pytest.raises(ClientError) as e:
        svc.decrypt_sensitive_data(package)
    assert e.value.response["Error"]["Code"] == "InvalidCiphertextException"


@pytest.mark.parametrize("classification", ["highly_sensitive", "sensitive", "internal"])
def test_seed_envelope_round_trip_with_full_context(classified_keys, classification):
    svc = EnterpriseDataEncryption(classified_keys)
    package = svc.encrypt_sensitive_data("payroll 2026-11", classification)
    package["encryption_context"]["Environment"] = os.environ.get("ENVIRONMENT", "dev")
    assert svc.decrypt_sensitive_data(package) == "payroll 2026-11"
