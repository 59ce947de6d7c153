//! Controllers as processes over one etcd, for the HA tests; and a whole HA dev cluster
//! (`weft dev --ha 3`) as a process.

use super::{wait_until, weft};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;
use weft_api::{Client, ControllersStatus};

pub const LEADER_TTL_MS: &str = "1000";

/// A `weft server` process; killed (and continued first, if stopped) on drop.
pub struct Controller {
    pub url: String,
    pub child: Option<Child>,
}

impl Controller {
    /// `kill -9`, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `weft server` on etcd (prefix `weft-ha/`, leader lease 1 s, node deadline 5 s), its
/// log in `dir/server.log`; `env` is added to its environment.
pub fn start_controller(dir: &Path, endpoints: &str, env: &[(&str, &str)]) -> Controller {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = weft()
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(["--store", "etcd", "--etcd-endpoints", endpoints])
        .args([
            "--etcd-prefix",
            "weft-ha/",
            "--leader-ttl-ms",
            LEADER_TTL_MS,
        ])
        .args(["--node-deadline", "5"])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Controller {
        url: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    }
}

/// `GET /v1/status/leader` of the controller at `url` (open, like health), or `None`
/// when it does not answer within 2 s.
pub async fn leader_status(url: &str) -> Option<ControllersStatus> {
    leader_of(&Client::new(url, None)).await
}

/// [`Client::controllers`] within 2 s (a stopped controller never answers), or `None`.
pub async fn leader_of(client: &Client) -> Option<ControllersStatus> {
    tokio::time::timeout(Duration::from_secs(2), client.controllers())
        .await
        .ok()?
        .ok()
}

pub fn signal(c: &Controller, sig: nix::sys::signal::Signal) {
    let pid = c.child.as_ref().unwrap().id();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// `weft dev --ha 3 --nodes 2` as a process, its cluster up: node namespaces, a
/// three-member etcd cluster, three controllers, an agent per node. Its CLI file and
/// clouds.yaml go to a directory of the test's own (`WEFT_CONFIG`, `HOME`). Dropping it
/// stops the cluster as Ctrl-C would (SIGTERM), then checks that nothing is left.
pub struct HaDev {
    pub tag: String,
    /// Every controller's API and process id, in order.
    pub controllers: Vec<(String, u32)>,
    /// The etcd members' process ids.
    pub etcd: Vec<u32>,
    /// Every process of the cluster (agents, controllers, etcd members).
    pub pids: Vec<u32>,
    pub admin_token: String,
    /// `/run/weft/<tag>`: the controllers' and agents' logs, `etcd/` for the members'.
    pub run_dir: PathBuf,
    home: tempfile::TempDir,
    child: Option<Child>,
}

impl HaDev {
    pub fn start(tag: &str) -> Self {
        assert!(tag.starts_with("weft"), "{tag}");
        let home = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(home.path().join("dev.log")).unwrap();
        let child = weft()
            .args(["dev", "--ha", "3", "--nodes", "2", "--tag", tag])
            .env("HOME", home.path())
            .env("WEFT_CONFIG", home.path().join("cli.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut dev = Self {
            tag: tag.to_string(),
            controllers: Vec::new(),
            etcd: Vec::new(),
            pids: Vec::new(),
            admin_token: String::new(),
            run_dir: PathBuf::from("/run/weft").join(tag),
            home,
            child: Some(child),
        };
        wait_until("weft dev --ha 3 up", Duration::from_secs(90), || {
            if let Some(status) = dev.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("weft dev exited ({status}):\n{}", dev.log());
            }
            dev.log().contains("Ctrl-C stops the cluster")
        });
        let file: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dev.run_dir.join("cluster.json")).unwrap(),
        )
        .unwrap();
        dev.controllers = file["controllers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let pid = c["pid"].as_u64().unwrap();
                (c["url"].as_str().unwrap().to_string(), pid as u32)
            })
            .collect();
        let pids = |key: &str| -> Vec<u32> {
            let list = file[key].as_array().unwrap();
            list.iter().map(|p| p.as_u64().unwrap() as u32).collect()
        };
        dev.pids = pids("pids");
        dev.etcd = pids("etcd");
        let cli: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dev.home.path().join("cli.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            cli["server"].as_str().unwrap(),
            dev.urls().join(","),
            "the CLI file names every controller"
        );
        dev.admin_token = cli["token"].as_str().unwrap().to_string();
        assert_eq!(dev.controllers.len(), 3, "{file}");
        assert_eq!(dev.etcd.len(), 3, "{file}");
        dev
    }

    pub fn urls(&self) -> Vec<String> {
        self.controllers.iter().map(|(u, _)| u.clone()).collect()
    }

    /// An admin client of every controller (it moves on when one fails).
    pub fn client(&self) -> Client {
        Client::with_servers(&self.urls(), Some(self.admin_token.clone()))
    }

    /// `kill -9` of the controller at `url`.
    pub fn kill_controller(&self, url: &str) {
        let (_, pid) = self.controllers.iter().find(|(u, _)| u == url).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// `weft dev down --tag <tag>` (with the same `HOME` and `WEFT_CONFIG`).
    fn dev_down(&self) -> std::process::Output {
        weft()
            .args(["dev", "down", "--tag", &self.tag])
            .env("HOME", self.home.path())
            .env("WEFT_CONFIG", self.home.path().join("cli.json"))
            .output()
            .unwrap()
    }

    /// Leaves the cluster as `weft demo --keep` would (`kill -9` of `weft dev`: its
    /// processes, each in its own process group, go on), then removes it with
    /// `weft dev down`; returns what that printed.
    pub fn keep_then_down(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            self.pids.iter().all(|p| self.is_ours(*p)),
            "the cluster's processes outlive weft dev"
        );
        let out = self.dev_down();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "weft dev down: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// A process of this cluster still runs (a zombie's command line is empty; a reused
    /// pid's names no tag of ours).
    fn is_ours(&self, pid: u32) -> bool {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&self.tag))
    }

    /// No namespace, process or directory of the cluster is left.
    pub fn assert_gone(&self) {
        let namespaces = weft_fabric::netns::list_with_prefix(&format!("{}-", self.tag));
        assert!(
            namespaces.is_empty(),
            "namespaces left behind: {namespaces:?}"
        );
        let alive: Vec<u32> = self
            .pids
            .iter()
            .copied()
            .filter(|p| self.is_ours(*p))
            .collect();
        assert!(alive.is_empty(), "processes left behind: {alive:?}");
        assert!(
            !self.run_dir.exists(),
            "{} left behind",
            self.run_dir.display()
        );
    }

    /// What `weft dev` printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("dev.log")).unwrap_or_default()
    }

    /// The last lines of every log of the cluster.
    fn print_logs(&self) {
        let mut logs = vec![self.home.path().join("dev.log")];
        for dir in [self.run_dir.clone(), self.run_dir.join("etcd")] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            found.sort();
            logs.extend(found);
        }
        for path in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            eprintln!("--- {} (last lines)", path.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for HaDev {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        let mut stopped = None;
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            stopped = Some(loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if std::time::Instant::now() > deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(100));
            });
            if stopped == Some(None) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = self.dev_down();
            }
        }
        if !std::thread::panicking() {
            if let Some(status) = stopped {
                assert!(
                    status.is_some_and(|s| s.success()),
                    "weft dev after SIGTERM: {status:?}\n{}",
                    self.log()
                );
            }
            self.assert_gone();
        }
    }
}
