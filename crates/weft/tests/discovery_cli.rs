//! `weft kv` and `weft services` against a real `weft server --consul-listen`.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The server and its data directory, removed with it.
struct Server(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let consul = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--consul-listen",
            &consul,
            "--consul-anonymous-tenant",
            "shop",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&consul).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child, dir), consul)
}

fn weft(consul: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .args(["--consul", consul])
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn kv_and_services_through_the_consul_api() {
    let (_server, consul) = start();
    assert!(
        weft(&consul, &["kv", "put", "app/db/url", "postgres://db"])
            .status
            .success()
    );
    assert!(
        weft(&consul, &["kv", "put", "app/name", "shop"])
            .status
            .success()
    );
    let got = weft(&consul, &["kv", "get", "app/db/url"]);
    assert_eq!(stdout(&got), "postgres://db\n");
    let ls = weft(&consul, &["kv", "ls", "app/"]);
    assert_eq!(stdout(&ls), "app/db/\napp/name\n");
    assert!(
        weft(&consul, &["kv", "delete", "app/", "--recurse"])
            .status
            .success()
    );
    let missing = weft(&consul, &["kv", "get", "app/name"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no key"));
    let services = weft(&consul, &["services"]);
    assert!(services.status.success());
    assert!(
        stdout(&services).lines().any(|l| l.starts_with("consul")),
        "{}",
        stdout(&services)
    );
    // A key the API refuses is an error with the API's reason.
    let bad = weft(&consul, &["kv", "put", "a/../b", "x"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(".."),
        "{bad:?}"
    );
    assert_eq!(
        weft(&consul, &["kv", "get", "b"]).status.code(),
        Some(1),
        "nothing was written"
    );
    // The API's own refusal comes through with its reason.
    let nul = weft(&consul, &["kv", "put", "a%00b", "x"]);
    assert_eq!(nul.status.code(), Some(2), "{nul:?}");
    assert!(
        String::from_utf8_lossy(&nul.stderr).contains("NUL"),
        "{nul:?}"
    );
}
