//! A front over three in-process storage nodes, driven over real HTTPS with hand-made SigV4
//! requests: CreateKey, Encrypt, Decrypt, GenerateDataKey, and a forged signature.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keystore::command::{Command, CommandOutput};
use keystore::crypto::{self, DomainKey, Secret};
use keystore::model::{AccessKeyRecord, IdentityRecord};
use keystore::sigv4;
use node::certs::{write_pair, DevCa};
use node::front::{Front, FrontConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "111122223333";
const ADMIN: &str = "arn:aws:iam::111122223333:user/admin";
const AKID: &str = "AKIAFRONTBASICTEST01";
const SECRET: &str = "frontBasicSecret/abcdefghijklmnopqrstuvw";

struct Cluster {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    tls: raft::TlsFiles,
    endpoints: Vec<String>,
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("test CA").unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let hosts = ["localhost", "127.0.0.1"];
    let storage = write_pair(
        dir.path(),
        "storage",
        ca.issue_storage("storage", &hosts).unwrap(),
    )
    .unwrap();
    let front = write_pair(
        dir.path(),
        "front",
        ca.issue_front("front", &hosts).unwrap(),
    )
    .unwrap();

    let mut listeners = BTreeMap::new();
    for id in 1..=3u64 {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let peers: BTreeMap<u64, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for (id, listener) in listeners {
        let cfg = raft::StorageNodeConfig {
            node_id: id,
            listen: listener.local_addr().unwrap(),
            advertise: peers[&id].clone(),
            data_dir: dir.path().join(format!("node-{id}")),
            backend: raft::Backend::default(),
            tls: raft::TlsFiles {
                ca: dir.path().join("ca.pem"),
                cert: storage.cert.clone(),
                key: storage.key.clone(),
            },
            peers: peers.clone(),
            clock: Default::default(),
            log_retention: Default::default(),
        };
        let mut rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = raft::run_storage_node_with_listener(cfg, listener, shutdown).await {
                eprintln!("storage node {id} failed: {e}");
            }
        }));
    }
    Cluster {
        stop,
        tasks,
        tls: raft::TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: front.cert,
            key: front.key,
        },
        endpoints: peers.values().cloned().collect(),
        _dir: dir,
    }
}

async fn propose_with_retry(store: &raft::StoreClient, command: Command) -> CommandOutput {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.propose(command.clone()).await {
            Ok(out) => return out,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the cluster: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("cluster never accepted a write: {e}"),
        }
    }
}

/// One HTTP/1.1 request over TLS; returns (status, JSON body).
async fn post(
    port: u16,
    tls: &raft::TlsFiles,
    op: &str,
    body: &str,
    secret: &str,
) -> (u16, serde_json::Value) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&tls.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    let host = format!("localhost:{port}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let amz_date = sigv4::format_amz_date(now);
    let target = format!("TrentService.{op}");
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", host.as_bytes()),
        ("content-type", b"application/x-amz-json-1.1".as_slice()),
        ("x-amz-date", amz_date.as_bytes()),
        ("x-amz-target", target.as_bytes()),
    ];
    let sreq = sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload: body.as_bytes(),
    };
    let auth = sigv4::sign(
        &sreq,
        &["host", "content-type", "x-amz-date", "x-amz-target"],
        AKID,
        secret.as_bytes(),
        REGION,
        "kms",
    )
    .unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Date: {amz_date}\r\n\
         X-Amz-Target: {target}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // rustls reports a missing close_notify as an error after the data; the data is complete.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        text.to_ascii_lowercase().contains("x-amzn-requestid:"),
        "{text}"
    );
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypt_decrypt_over_https_with_sigv4() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = start_cluster().await;

    let domain_key = DomainKey::generate(1);
    let store = raft::StoreClient::connect(cluster.endpoints.clone(), &cluster.tls)
        .await
        .unwrap();
    propose_with_retry(
        &store,
        Command::PutIdentity {
            identity: IdentityRecord {
                arn: ADMIN.into(),
                account_id: ACCOUNT.into(),
                admin: true,
                ..Default::default()
            },
        },
    )
    .await;
    let wrapped =
        crypto::wrap_access_secret(&domain_key, AKID, &Secret::new(SECRET.as_bytes().to_vec()));
    propose_with_retry(
        &store,
        Command::PutAccessKey {
            record: AccessKeyRecord {
                access_key_id: AKID.into(),
                principal_arn: ADMIN.into(),
                account_id: ACCOUNT.into(),
                wrapped_secret: wrapped,
                created_at: 0,
            },
        },
    )
    .await;

    let (front, addr) = Front::bind(FrontConfig {
        region: REGION.into(),
        json_listen: "127.0.0.1:0".parse().unwrap(),
        store_endpoints: cluster.endpoints.clone(),
        tls: cluster.tls.clone(),
        domain_key,
        strict_client_cert: false,
        cache_staleness: Duration::from_secs(1),
        audit: Default::default(),
    })
    .await
    .unwrap();
    let (front_stop, mut front_stopped) = watch::channel(false);
    let serving = tokio::spawn(front.serve(async move {
        let _ = front_stopped.wait_for(|s| *s).await;
    }));
    let port = addr.port();
    let tls = &cluster.tls;

    let (s, v) = post(
        port,
        tls,
        "CreateKey",
        r#"{"Description":"front_basic"}"#,
        SECRET,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let key_id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    assert_eq!(v["KeyMetadata"]["KeyState"], "Enabled");

    let (s, v) = post(
        port,
        tls,
        "DescribeKey",
        &format!(r#"{{"KeyId":"{key_id}"}}"#),
        SECRET,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["KeyMetadata"]["Description"], "front_basic");

    let body = format!(
        r#"{{"KeyId":"{key_id}","Plaintext":"aGVsbG8gd29ybGQ=","EncryptionContext":{{"a":"b"}}}}"#
    );
    let (s, v) = post(port, tls, "Encrypt", &body, SECRET).await;
    assert_eq!(s, 200, "{v}");
    let blob = v["CiphertextBlob"].as_str().unwrap().to_string();
    assert!(v["KeyId"].as_str().unwrap().ends_with(&key_id));

    let (s, v) = post(
        port,
        tls,
        "Decrypt",
        &format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"a":"b"}}}}"#),
        SECRET,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Plaintext"], "aGVsbG8gd29ybGQ=");

    let (s, v) = post(
        port,
        tls,
        "Decrypt",
        &format!(r#"{{"CiphertextBlob":"{blob}"}}"#),
        SECRET,
    )
    .await;
    assert_eq!(
        (s, v["__type"].as_str()),
        (400, Some("InvalidCiphertextException"))
    );

    let (s, v) = post(
        port,
        tls,
        "GenerateDataKey",
        &format!(r#"{{"KeyId":"{key_id}","KeySpec":"AES_256"}}"#),
        SECRET,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let data_key = v["Plaintext"].as_str().unwrap().to_string();
    let dk_blob = v["CiphertextBlob"].as_str().unwrap().to_string();
    let (s, v) = post(
        port,
        tls,
        "Decrypt",
        &format!(r#"{{"CiphertextBlob":"{dk_blob}"}}"#),
        SECRET,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Plaintext"].as_str(), Some(data_key.as_str()));

    let (s, v) = post(port, tls, "ListKeys", "{}", "not-the-secret").await;
    assert_eq!(
        (s, v["__type"].as_str()),
        (400, Some("InvalidSignatureException"))
    );

    let _ = front_stop.send(true);
    serving.await.unwrap().unwrap();
    let _ = cluster.stop.send(true);
    for t in cluster.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}
