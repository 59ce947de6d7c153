//! TLS to etcd, and endpoints that are wrong: a real etcd serving TLS with client
//! certificate checks (certificates made by `openssl` for the test), a plaintext etcd,
//! and a port that answers HTTP/1 but is not etcd. What works connects; every mismatch
//! fails at once (not after the connect timeout, since waiting cures none of them) with
//! an error that names the endpoint and says what to change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_store::{KvStore, StoreError};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test, etcd_binary};
use weft_store_etcd::{EtcdOptions, EtcdStore, EtcdTls};

/// Long enough for a TLS etcd to come up; the mismatches must fail well before it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const FAST: Duration = Duration::from_secs(5);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for `name` with `extensions` (SAN, key usage).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn signed(dir: &Path, ca: &str, name: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member serving clients over TLS only, and checking their certificates.
struct TlsEtcd {
    child: Child,
    url: String,
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_etcd(dir: &Path) -> TlsEtcd {
    let (client, peer) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new(etcd_binary().unwrap())
        .args(["--name", "weft-tls", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("weft-tls={peer_url}")])
        .arg("--cert-file")
        .arg(dir.join("server.pem"))
        .arg("--key-file")
        .arg(dir.join("server.key"))
        .arg("--client-cert-auth")
        .arg("--trusted-ca-file")
        .arg(dir.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    TlsEtcd { child, url }
}

fn options(tls: Option<EtcdTls>, connect_timeout: Duration) -> EtcdOptions {
    EtcdOptions {
        connect_timeout,
        tls,
        ..EtcdOptions::default()
    }
}

fn tls(dir: &Path, ca: &str, client: bool) -> EtcdTls {
    let file = |name: &str| -> PathBuf { dir.join(name) };
    EtcdTls {
        cacert: file(&format!("{ca}.pem")),
        cert: client.then(|| file("client.pem")),
        key: client.then(|| file("client.key")),
    }
}

/// Connects and expects a refusal within [`FAST`]; returns its message.
async fn refused(endpoint: &str, tls: Option<EtcdTls>) -> String {
    let started = Instant::now();
    let result = EtcdStore::connect(
        &[endpoint.to_string()],
        Vec::new(),
        options(tls, CONNECT_TIMEOUT),
    )
    .await;
    let err = match result {
        Ok(_) => panic!("{endpoint}: connected, but should have been refused"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        started.elapsed() < FAST,
        "{endpoint}: refused only after {:?} (waiting cures nothing here): {message}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            StoreError::Unavailable { .. } | StoreError::InvalidArgument(_)
        ),
        "{err:?}"
    );
    if matches!(err, StoreError::Unavailable { .. }) {
        assert!(message.contains(endpoint), "names the endpoint: {message}");
    }
    message
}

#[tokio::test]
async fn tls_connects_with_the_right_files_and_every_mismatch_is_named_at_once() {
    if !etcd_available_for_test(
        "tls_connects_with_the_right_files_and_every_mismatch_is_named_at_once",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ca(dir, "ca");
    ca(dir, "other-ca");
    signed(
        dir,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    signed(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
    let etcd = start_tls_etcd(dir);

    // The CA and a client certificate: connected, and it works.
    let store = EtcdStore::connect(
        std::slice::from_ref(&etcd.url),
        b"weft-tls/".to_vec(),
        options(Some(tls(dir, "ca", true)), CONNECT_TIMEOUT),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\netcd log:\n{}",
            std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
        )
    });
    store.put(b"k", b"v", None).await.unwrap();
    let got = store.get(b"k").await.unwrap();
    assert_eq!(got.kv.unwrap().value, b"v");

    // Plaintext to the TLS port.
    let plain = etcd.url.replace("https://", "http://");
    let message = refused(&plain, None).await;
    assert!(message.contains("TLS"), "{message}");
    // etcd's certificate signed by another CA than the one given.
    let message = refused(&etcd.url, Some(tls(dir, "other-ca", true))).await;
    assert!(message.contains("certificate is not accepted"), "{message}");
    // No client certificate, which this etcd requires.
    let message = refused(&etcd.url, Some(tls(dir, "ca", false))).await;
    assert!(message.contains("--etcd-cert"), "{message}");
    // The scheme and the files disagree: refused before any attempt.
    let message = refused(&etcd.url, None).await;
    assert!(message.contains("--etcd-cacert"), "{message}");
    let message = refused(&plain, Some(tls(dir, "ca", true))).await;
    assert!(message.contains("https://"), "{message}");
    // A CA file that is missing or not a certificate names the flag and the file.
    let mut missing = tls(dir, "ca", true);
    missing.cacert = dir.join("nope.pem");
    let message = refused(&etcd.url, Some(missing)).await;
    assert!(
        message.contains("--etcd-cacert") && message.contains("nope.pem"),
        "{message}"
    );
    let mut not_pem = tls(dir, "ca", true);
    not_pem.cacert = dir.join("server.ext");
    let message = refused(&etcd.url, Some(not_pem)).await;
    assert!(message.contains("not a PEM certificate"), "{message}");
}

#[tokio::test]
async fn tls_to_a_plaintext_etcd_and_a_port_that_is_not_etcd_are_named_at_once() {
    if !etcd_available_for_test(
        "tls_to_a_plaintext_etcd_and_a_port_that_is_not_etcd_are_named_at_once",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ca(dir, "ca");
    let cluster = EtcdCluster::start(ClusterOptions::single()).await.unwrap();
    let https = cluster.endpoint(0).unwrap().replace("http://", "https://");
    let message = refused(&https, Some(tls(dir, "ca", false))).await;
    assert!(message.contains("does not speak TLS"), "{message}");

    // An HTTP/1 server (a web server, weft's own API, ...) given as etcd.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let message = refused(&format!("http://127.0.0.1:{port}"), None).await;
    assert!(message.contains("not as plaintext etcd"), "{message}");
    // A scheme etcd does not have.
    let message = refused(&format!("ftp://127.0.0.1:{port}"), None).await;
    assert!(message.contains("http://host:port"), "{message}");
}
