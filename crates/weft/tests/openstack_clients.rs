//! Real OpenStack clients against weft's OpenStack APIs: python-openstackclient (the
//! `openstack` CLI) and openstacksdk from PyPI, against a fresh `weft server
//! --openstack-listen 127.0.0.1:0`. The scenario
//! (`crates/weft-openstack/tests/openstack-clients/scenario.py`) creates a user through
//! weft's API, writes a clouds.yaml, and runs `token issue`, `catalog list`, `network
//! create|list|show|set|delete`, `subnet create|delete` and the same through the SDK;
//! refusals (overlapping and invalid CIDRs, unknown ids, networks and subnets in use,
//! unsupported extensions) answer Neutron's codes and bodies and change nothing.
//!
//! `scripts/test` installs the clients (`scripts/python-clients.sh`). Without them this
//! test fails in CI and skips loudly elsewhere.
#![allow(clippy::unwrap_used)] // tests fail loudly

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn openstack_cli_and_sdk_work_against_weft() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/pyvenv/bin/python");
    let openstack = root.join("target/pyvenv/bin/openstack");
    if !python.exists() || !openstack.exists() {
        let why = "python-openstackclient is not installed: run scripts/python-clients.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** SKIPPED openstack_cli_and_sdk_work_against_weft: {why} ***\n");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--openstack-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    // The banner names both addresses; the rest of stderr is drained and echoed.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[weft server] {line}");
            let _ = tx.send(line);
        }
    });
    let (mut api, mut os) = (None, None);
    while api.is_none() || os.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("weft server did not print its addresses");
        let url_after = |marker: &str| {
            line.split(marker)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|addr| format!("http://{addr}"))
        };
        if let Some(url) = url_after("listening on http://") {
            api = Some(url);
        }
        if let Some(url) = url_after("OpenStack APIs on http://") {
            os = Some(url);
        }
    }
    let admin = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let out = Command::new(&python)
        .arg(root.join("crates/weft-openstack/tests/openstack-clients/scenario.py"))
        .arg(api.unwrap())
        .arg(admin.trim())
        .arg(os.unwrap())
        .arg(&openstack)
        .output()
        .expect("run the scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    drop(server);
    assert!(
        out.status.success(),
        "the OpenStack clients' scenario failed"
    );
    let summary = stdout.lines().last().unwrap_or("");
    assert!(
        summary.starts_with("openstack scenario: ") && summary.ends_with(" checks passed"),
        "unexpected summary: {summary}"
    );
    let checks: usize = summary
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(checks >= 59, "only {checks} checks ran");
}
