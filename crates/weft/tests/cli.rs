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

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weft-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `text` to `file` and runs `weft validate -f` on it.
    fn validate(&self, file: &str, text: &str) -> Output {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        weft(&["validate", "-f", path.to_str().unwrap()])
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn document_errors_say_error_once() {
    let dir = Scratch::new("error-once");
    // A parse error, a validation error, a JSON error.
    let cases = [
        ("parse.hcl", "tenant \"t\" {\n  vrf \"v\" { size = 3 }\n}\n"),
        (
            "valid.hcl",
            "tenant \"t\" {\n  bridge_domain \"bd\" {\n    vrf = \"nope\"\n  }\n}\n",
        ),
        (
            "doc.json",
            "{\"tenant\": {\"t\": {\"vrf\": {\"v\": {\"size\": 3}}}}}",
        ),
    ];
    for (file, text) in cases {
        let o = dir.validate(file, text);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("error: error:"), "{err}");
        assert!(
            err.starts_with(&format!("error: {}", dir.0.join(file).display())),
            "{err}"
        );
        assert!(err.contains("1 error(s) in the documents"), "{err}");
    }
    // App documents too.
    let path = dir.0.join("apps.hcl");
    std::fs::write(&path, "app \"a\" {\n  instances = \"x\"\n}\n").unwrap();
    let o = weft(&["app", "apply", "-f", path.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("error: error:"), "{err}");
    assert!(
        err.starts_with(&format!("error: {}:2: app a: instances", path.display())),
        "{err}"
    );
    // Other errors still say what they are.
    let o = weft(&[
        "validate",
        "-f",
        dir.0.join("missing.hcl").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).starts_with("error: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_huge_port_is_echoed_as_written() {
    let dir = Scratch::new("huge-port");
    let huge = "100000000000000000000000000000000";
    let text = format!(
        "tenant \"t\" {{\n  filter \"f\" {{\n    entry \"e\" {{\n      protocol = \"tcp\"\n      destination_port = {huge}\n    }}\n  }}\n}}\n"
    );
    let o = dir.validate("port.hcl", &text);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "port.hcl:5: t/filter:f/entry:e: destination_port: port {huge} is out of range 0..65535"
        )),
        "{err}"
    );
    assert!(!err.contains("1e32"), "{err}");

    let json = format!(
        "{{\"tenant\": {{\"t\": {{\"filter\": {{\"f\": {{\"entry\": {{\"e\": {{\n  \"protocol\": \"tcp\",\n  \"destination_port\": {huge}\n}}}}}}}}}}}}}}}}\n"
    );
    let o = dir.validate("port.json", &json);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "port.json:3: port {huge} is out of range 0..65535"
        )),
        "{err}"
    );
    assert!(!err.contains("1e32"), "{err}");
}

#[test]
fn json_name_errors_name_the_line() {
    let dir = Scratch::new("json-line");
    let text = "{\n  \"tenant\": {\n    \"t\": {\n      \"application_profile\": {\n        \"a\": {\n          \"epg\": {\n            \"we b\": { \"bridge_domain\": \"bd\" }\n          }\n        }\n      }\n    }\n  }\n}\n";
    let o = dir.validate("names.json", text);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("names.json:7: t/application_profile:a/epg:we b: epg: name \"we b\""),
        "{err}"
    );
}

#[test]
fn a_bad_tenant_name_hides_no_other_error() {
    let dir = Scratch::new("tenant-name");
    let text = "tenant \"a/b\" {\n  vrf \"v\" {\n    size = 3\n  }\n  filter \"f\" {\n    entry \"e\" {\n      destination_port = 70000\n    }\n  }\n}\n";
    let o = dir.validate("tenant.hcl", text);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("tenant.hcl:1: tenant: name \"a/b\""), "{err}");
    assert!(
        err.contains("tenant.hcl:3: a/b/vrf:v: unknown attribute \"size\""),
        "{err}"
    );
    assert!(
        err.contains("tenant.hcl:7: a/b/filter:f/entry:e: destination_port: port 70000"),
        "{err}"
    );
    assert!(err.contains("3 error(s) in the documents"), "{err}");
}

/// TLS to etcd is checked before anything starts: an https:// endpoint without the CA,
/// TLS files with an http:// endpoint, and a client certificate without its key are
/// refused at once with the flag to give (nothing listens on port 9; no etcd needed).
#[test]
fn etcd_tls_flags_that_disagree_with_the_endpoints_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let ca = ca.to_str().unwrap();
    let listen = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--store",
        "etcd",
    ];
    for (extra, expected) in [
        (
            vec!["--etcd-endpoints", "https://127.0.0.1:9"],
            "--etcd-cacert",
        ),
        (
            vec![
                "--etcd-endpoints",
                "http://127.0.0.1:9",
                "--etcd-cacert",
                ca,
            ],
            "https://",
        ),
        (
            vec!["--etcd-endpoints", "https://127.0.0.1:9", "--etcd-cert", ca],
            "--etcd-key",
        ),
    ] {
        let started = std::time::Instant::now();
        let mut args = vec!["server"];
        args.extend(listen);
        args.extend(extra.iter().copied());
        let out = weft(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "refused at once, not after the connect timeout"
        );
    }
}
