//! Controllers as processes over one etcd, for the HA tests.

use super::weft;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use weft_api::ControllersStatus;

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

/// `GET /v1/status/leader` (open, like health), with a short timeout.
pub async fn leader_status(url: &str) -> Option<ControllersStatus> {
    let response = reqwest::Client::new()
        .get(format!("{url}{}", weft_api::paths::LEADER))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

pub fn signal(c: &Controller, sig: nix::sys::signal::Signal) {
    let pid = c.child.as_ref().unwrap().id();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}
