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

/// The host's `/etc/resolv.conf`, byte for byte (`None` if it has none).
pub fn host_resolv_conf() -> Option<Vec<u8>> {
    std::fs::read("/etc/resolv.conf").ok()
}

/// A DNS server of the test's own, on UDP port 53 of `addr` inside the namespace at
/// `netns_path` (its socket is made on a thread that entered that namespace, so no packet
/// of it leaves the namespace). It knows one name: `name` IN A `answer`; other types of
/// that name get an empty answer (NODATA), other names NXDOMAIN. Stops on drop.
pub struct DnsResponder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DnsResponder {
    pub fn start(
        netns_path: &std::path::Path,
        addr: std::net::Ipv4Addr,
        name: &str,
        answer: std::net::Ipv4Addr,
    ) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let queries = std::sync::Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = std::fs::File::open(netns_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", netns_path.display()));
        let name = name.to_ascii_lowercase();
        let thread = {
            let (stop, queries) = (stop.clone(), queries.clone());
            std::thread::spawn(move || {
                // This thread only: the rest of the test process stays where it is.
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns into the test namespace");
                let socket = std::net::UdpSocket::bind((addr, 53)).expect("bind port 53");
                socket
                    .set_read_timeout(Some(std::time::Duration::from_millis(50)))
                    .expect("timeout");
                ready_tx.send(()).expect("ready");
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Acquire) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = dns_reply(&buf[..n], &name, answer) {
                        queries.fetch_add(1, Ordering::AcqRel);
                        let _ = socket.send_to(&reply, from);
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("DNS responder did not come up");
        DnsResponder {
            stop,
            thread: Some(thread),
            queries,
        }
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to one DNS query (RFC 1035 §4.1), or `None` if it is not one question.
fn dns_reply(query: &[u8], name: &str, answer: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    const TYPE_A: u16 = 1;
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question_end = i + 4;
    let question = query.get(12..question_end)?;
    let known = labels.join(".") == name;
    let answers: u16 = (known && qtype == TYPE_A).into();
    let mut out = Vec::with_capacity(question_end + 16);
    out.extend_from_slice(&query[0..2]); // id
    out.push(0x80 | 0x04 | (query[2] & 0x01)); // QR, AA, RD as asked
    out.push(0x80 | if known { 0 } else { 3 }); // RA; NOERROR or NXDOMAIN
    for count in [1, answers, 0, 0] {
        out.extend_from_slice(&u16::to_be_bytes(count));
    }
    out.extend_from_slice(question);
    if answers == 1 {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]); // the question's name, A, IN
        out.extend_from_slice(&30u32.to_be_bytes()); // TTL
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&answer.octets());
    }
    Some(out)
}
