//! The commands that exec programs check them first (issue 12): without `nft` on PATH,
//! `weft agent` and `weft demo` stop at once, naming the program and the Debian package
//! that provides it, instead of failing later with "No such file or directory". No root
//! needed: the check comes before anything is created.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs weft with an empty PATH (an empty directory); kills it after 20 s (an agent
/// without the check would retry its controller forever).
fn weft_without_path(args: &[&str]) -> (Output, bool) {
    let empty = std::env::temp_dir().join(format!("weft-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("PATH", &empty)
        .env_remove("WEFT_FABRIC_LINKS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir(&empty);
    (out, killed)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_agent_names_a_missing_nft_and_its_package_at_start() {
    let state = std::env::temp_dir().join(format!("weft-preflight-agent-{}", std::process::id()));
    let (out, killed) = weft_without_path(&[
        "agent",
        "--server",
        "http://127.0.0.1:1",
        "--join-token",
        "x",
        "--node",
        "n1",
        "--underlay-ip",
        "10.0.0.1",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&state);
    let err = stderr(&out);
    assert!(!killed, "the agent ran on without nft: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("weft agent needs `nft` (Debian package nftables), which is not on PATH"),
        "{err}"
    );
    // Either the install line, or where it is when it is installed but not on PATH.
    assert!(
        err.contains("apt-get install nftables") || err.contains("add /usr/sbin to PATH"),
        "{err}"
    );
}

#[test]
fn the_demo_names_every_missing_program_before_it_creates_anything() {
    let (out, killed) = weft_without_path(&["demo"]);
    let err = stderr(&out);
    assert!(!killed, "{err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    for line in [
        "weft demo needs `nft` (Debian package nftables), which is not on PATH",
        "weft demo needs `ip` (Debian package iproute2), which is not on PATH",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }
    assert!(!err.contains("creating"), "it went on: {err}");
}
