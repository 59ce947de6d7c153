//! A real Consul client against weft's Consul API: py-consul 1.8.0's own test suite
//! (kv, catalog, health, agent, session, status; the exclusions and why are in
//! `crates/weft-consul/tests/py-consul/excluded.txt`) and weft's scenarios, each test
//! against a fresh `weft server --consul-listen 127.0.0.1:8500`.
//!
//! `scripts/test` installs the client (`scripts/python-clients.sh`). Without it this
//! test fails in CI and skips loudly elsewhere.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn py_consul_suite_and_scenarios_pass_against_weft() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/pyvenv/bin/python");
    let source = root.join("target/py-consul/py_consul-1.8.0");
    if !python.exists() || !source.join("tests").exists() {
        let why = "py-consul is not installed: run scripts/python-clients.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** SKIPPED py_consul_suite_and_scenarios_pass_against_weft: {why} ***\n");
        return;
    }
    let script = root.join("crates/weft-consul/tests/py-consul/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_weft"))
        .arg(&python)
        .arg(&source)
        .output()
        .expect("run py-consul");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "py-consul against weft failed");
    // The suite really ran: 51 of py-consul's tests and weft's 6 scenarios.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains("passed"))
        .unwrap_or("");
    assert!(
        summary.contains("57 passed") && !summary.contains("failed"),
        "unexpected summary: {summary}"
    );
}
