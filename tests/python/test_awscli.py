"""The `aws` CLI, unmodified, in a shell that ran `source DIR/env`."""

import base64
import json
import subprocess


def aws(region, *args, check=True):
    proc = subprocess.run(["aws", "kms", *args], env=region.cli_env(), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws kms {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def test_create_key_encrypt_decrypt_with_fileb(region, tmp_path):
    meta = json.loads(aws(region, "create-key", "--description", "cli key",
                          "--tags", "TagKey=Purpose,TagValue=DevOpsPipeline").stdout)["KeyMetadata"]
    key_id = meta["KeyId"]
    aws(region, "create-alias", "--alias-name", "alias/devops-pipeline-encryption", "--target-key-id", key_id)

    config = tmp_path / "deployment-config.json"
    config.write_bytes(b'{"db": "prod", "replicas": 3}')
    # The seed's CI step: encrypt, --query CiphertextBlob, base64 -d to a file.
    b64 = aws(region, "encrypt", "--key-id", "alias/devops-pipeline-encryption",
              "--plaintext", f"fileb://{config}",
              "--encryption-context", "Pipeline=DevOps,Environment=staging",
              "--output", "text", "--query", "CiphertextBlob").stdout.strip()
    encrypted = tmp_path / "deployment-config.encrypted"
    encrypted.write_bytes(base64.b64decode(b64))

    out = aws(region, "decrypt", "--ciphertext-blob", f"fileb://{encrypted}",
              "--encryption-context", "Pipeline=DevOps,Environment=staging",
              "--output", "text", "--query", "Plaintext").stdout.strip()
    assert base64.b64decode(out) == config.read_bytes()

    listed = json.loads(aws(region, "list-aliases", "--key-id", key_id).stdout)["Aliases"]
    assert [a["AliasName"] for a in listed] == ["alias/devops-pipeline-encryption"]


def test_cli_reports_aws_errors_with_exit_code(region):
    proc = aws(region, "describe-key", "--key-id", "alias/nope", check=False)
    assert proc.returncode in (254, 255)  # aws CLI v2 / v1 exit code for service errors
    assert "NotFoundException" in proc.stderr
    proc = aws(region, "decrypt", "--ciphertext-blob", "fileb:///dev/null", check=False)
    assert proc.returncode != 0


def test_cli_key_lifecycle(region):
    key_id = json.loads(aws(region, "create-key").stdout)["KeyMetadata"]["KeyId"]
    aws(region, "disable-key", "--key-id", key_id)
    state = json.loads(aws(region, "describe-key", "--key-id", key_id).stdout)["KeyMetadata"]["KeyState"]
    assert state == "Disabled"
    aws(region, "enable-key", "--key-id", key_id)
    out = json.loads(aws(region, "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7").stdout)
    assert out["KeyState"] == "PendingDeletion"
    aws(region, "cancel-key-deletion", "--key-id", key_id)
    keys = json.loads(aws(region, "list-keys").stdout)["Keys"]
    assert key_id in {k["KeyId"] for k in keys}
    rnd = json.loads(aws(region, "generate-random", "--number-of-bytes", "16").stdout)["Plaintext"]
    assert len(base64.b64decode(rnd)) == 16
