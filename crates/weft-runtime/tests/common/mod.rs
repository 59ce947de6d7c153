//! Helpers shared by the integration tests: root check, test namespaces with a veth pair,
//! the local busybox image. Everything is named `weft-rt-<pid>-...` / `wv<pid>...` and
//! removed by exact name.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub const TEST_IMAGE: &str = "weft-test/busybox:latest";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns false (and says so loudly) when the test cannot run here.
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    // Straight to fd 2: libtest captures eprintln! of passing tests, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "!!! SKIPPED {test}: needs root (namespaces, cgroups, docker). CI runs it as root."
    );
    false
}

pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ns_name(tag: &str) -> String {
    format!("weft-rt-{}-{tag}", std::process::id())
}

/// Interface names are at most 15 bytes.
pub fn if_name(tag: &str) -> String {
    format!("wv{}{tag}", std::process::id() % 100_000)
}

/// A namespace made with `ip netns add`, `lo` up, holding both ends of a veth pair
/// (`inner` and `outer`): no packet leaves it. Deleted on drop.
#[derive(Debug)]
pub struct TestNetns {
    pub name: String,
    pub inner: String,
    pub outer: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> Self {
        let name = ns_name(tag);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = TestNetns {
            inner: if_name(&format!("{tag}i")),
            outer: if_name(&format!("{tag}o")),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&[
            "link", "add", &ns.inner, "type", "veth", "peer", "name", &ns.outer,
        ]);
        ns.ip(&["link", "set", &ns.inner, "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Moves the `outer` veth end into another named namespace (what the fabric does with an
    /// endpoint veth).
    pub fn move_outer_to(&self, netns: &str) {
        self.ip(&["link", "set", &self.outer, "netns", netns]);
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// (device, inode) of a namespace file, to compare namespaces.
pub fn ns_id(path: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (meta.dev(), meta.ino())
}

/// Builds `weft-test/busybox` FROM scratch with the host's static busybox (no registry).
pub fn build_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox-static is not installed (apt-get install busybox-static)");
        std::fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
        )
        .expect("Dockerfile");
        let ctx = dir.path().to_str().expect("utf-8 path");
        run(&["docker", "build", "-q", "-t", TEST_IMAGE, ctx]);
    });
}
