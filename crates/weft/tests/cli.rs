//! The `weft` binary end to end: exit codes and messages of validate and explain.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::{Command, Output};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/three-tier.hcl")
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft")
}

fn explain(from: &str, to: &str, proto: &str, port: &str) -> Output {
    let file = example();
    let path = file.to_str().unwrap();
    weft(&[
        "explain", "-f", path, "--from", from, "--to", to, "--proto", proto, "--port", port,
    ])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn web_to_app_8080_is_allowed_by_the_contract() {
    let o = explain("shop/store/web", "shop/store/app", "tcp", "8080");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(
        "allowed: contract shop/contract:web-to-app subject http filter http-8080 entry tcp-8080"
    ));
}

#[test]
fn web_to_db_5432_is_denied_for_want_of_a_contract() {
    let o = explain("shop/store/web", "shop/store/db", "tcp", "5432");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("denied: no contract between shop/store/web and shop/store/db"));
}

#[test]
fn app_to_db_5432_is_allowed() {
    let o = explain("shop/store/app", "shop/store/db", "tcp", "5432");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("contract shop/contract:app-to-db"));
}

#[test]
fn db_to_web_80_is_denied() {
    let o = explain("shop/store/db", "shop/store/web", "tcp", "80");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn a_wrong_port_names_what_the_contract_permits() {
    let o = explain("shop/store/web", "shop/store/app", "tcp", "80");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("permit only: tcp ip dport 8080"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_unknown_epg_is_an_error() {
    let o = explain("shop/store/web", "shop/store/cache", "tcp", "80");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown EPG shop/store/cache"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_accepts_the_example() {
    let file = example();
    let o = weft(&["validate", "-f", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("ok: 1 tenant(s), 3 EPG(s), 2 contract(s)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn malformed_documents_exit_2_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("weft-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.hcl");
    std::fs::write(&bad, "tenant \"t\" {\n  vrf \"v\" {\n    enforced = \"maybe\"\n  }\n  vrf \"w\" { size = 3 }\n}\n").unwrap();
    let o = weft(&["validate", "-f", bad.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.hcl:3: t/vrf:v: enforced must be true or false"),
        "{err}"
    );
    assert!(
        err.contains("bad.hcl:5: t/vrf:w: unknown attribute \"size\""),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&bad, "tenant \"t\" {\n  vrf \"v\" {\n").unwrap();
    let o = weft(&["validate", "-f", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("malformed HCL"), "{}", stderr(&o));

    let o = weft(&["validate", "-f", dir.join("missing.hcl").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.hcl"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
