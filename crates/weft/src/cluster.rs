//! A whole cluster on one machine: node namespaces joined by an underlay bridge, one
//! controller process and one agent process per node. `weft dev` and `weft demo` use it.
//!
//! Everything is named `<tag>-...`; the cluster's directory `/run/weft/<tag>` holds the
//! controller's data, each agent's state, the logs and `cluster.json` (what `down`
//! needs to remove a kept cluster).
//!
//! With [`DevCluster::start_ha`] (`weft dev --ha 3`) the control plane is highly available: a
//! three-member etcd cluster on loopback ports (Debian's `etcd-server`, data and logs in
//! `/run/weft/<tag>/etcd`), N controllers on it (`controller-<i>` data dirs, one
//! `--etcd-prefix`, a 1 s leader lease so that a takeover is quick), and agents that
//! know every controller (`--server URL1,URL2,URL3`). Every controller serves Consul's
//! API and, when asked, Keystone and Neutron, each on its own port (the first on the
//! well-known ports when they are free), so each foreign API survives any one
//! controller.

use crate::remote::{CliConfig, write_config};
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, Resources};
use weft_fabric::testbed::Testbed;
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster};

/// What a running cluster leaves on disk so that another process can stop it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    pub tag: String,
    /// The first controller's API.
    pub api: String,
    /// Every process of the cluster: agents, controllers, etcd members.
    pub pids: Vec<u32>,
    /// Every controller (one unless HA), with its process.
    #[serde(default)]
    pub controllers: Vec<ControllerFile>,
    /// The etcd members' processes (HA only).
    #[serde(default)]
    pub etcd: Vec<u32>,
}

/// One controller of a running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControllerFile {
    pub url: String,
    pub pid: u32,
}

/// One `weft server` process of a dev cluster.
#[derive(Debug)]
pub struct Controller {
    /// Its API.
    pub url: String,
    /// Its Consul-compatible API.
    pub consul: String,
    /// Its Keystone and Neutron, when asked for (`Services::openstack`).
    pub openstack: Option<String>,
    /// Its log.
    pub log: PathBuf,
    child: Option<Child>,
}

#[derive(Debug)]
pub struct DevCluster {
    pub tag: String,
    /// The first controller's API.
    pub api: String,
    /// Every controller's API (one unless HA).
    pub servers: Vec<String>,
    /// The Consul-compatible API (`http://127.0.0.1:8500` when that port is free).
    pub consul: String,
    /// Keystone and Neutron (`http://127.0.0.1:5000` when that port is free), when asked
    /// for (`Services::openstack`).
    pub openstack: Option<String>,
    pub admin_token: String,
    pub dir: PathBuf,
    /// The controllers (the first is the one `api`, `consul` and `openstack` name).
    pub controllers: Vec<Controller>,
    testbed: Option<Testbed>,
    etcd: Option<EtcdCluster>,
    agents: Vec<(String, Child)>,
}

fn cluster_dir(tag: &str) -> PathBuf {
    PathBuf::from("/run/weft").join(tag)
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out
        .try_clone()
        .context("cannot duplicate a log file handle")?;
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))
}

const CONSUL_PORT: &str = "127.0.0.1:8500";
const OPENSTACK_PORT: &str = "127.0.0.1:5000";

/// What a cluster's controller serves besides weft's own API and Consul's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Services {
    /// OpenStack's Keystone and Neutron (`weft server --openstack-listen`).
    pub openstack: bool,
}

/// What [`DevCluster::kill_leader`] saw.
#[derive(Debug, Clone)]
pub struct Takeover {
    /// The API of the controller killed.
    pub killed: String,
    /// The API of the controller that leads now.
    pub leader: String,
    /// From the kill until a survivor named the new leader.
    pub after: Duration,
}

/// The leader lease of a dev cluster's controllers in HA mode (etcd rounds it up to its
/// minimum, 2 s with the members' default timing).
pub const HA_LEADER_TTL_MS: &str = "1000";
/// How many etcd members an HA dev cluster runs.
pub const HA_ETCD_MEMBERS: usize = 3;

/// `well_known` when it is free (clients default to it), else any free port.
fn port_or_free(well_known: &str) -> Result<u16> {
    std::net::TcpListener::bind(well_known)
        .ok()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(free_port, |a| Ok(a.port()))
}

/// The tenant that Consul requests without a token act for in a dev cluster.
pub const CONSUL_TENANT: &str = "default";

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot pick a port")?;
    Ok(listener.local_addr().context("cannot pick a port")?.port())
}

fn read_token(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// Waits for `check` to succeed, polling.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(_) if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(false) => bail!("timed out after {}s waiting for {what}", limit.as_secs()),
            Err(e) => return Err(e.context(format!("waiting for {what}"))),
        }
    }
}

impl DevCluster {
    /// Starts the controller and one agent per node; returns once every node is ready.
    pub async fn start(tag: &str, nodes: &[String], progress: &dyn Fn(&str)) -> Result<Self> {
        Self::start_with(tag, nodes, progress, Services::default()).await
    }

    /// [`DevCluster::start`], the controller also serving `services`.
    pub async fn start_with(
        tag: &str,
        nodes: &[String],
        progress: &dyn Fn(&str),
        services: Services,
    ) -> Result<Self> {
        Self::start_ha(tag, nodes, progress, services, None).await
    }

    /// [`DevCluster::start_with`]; with `ha` = `Some(n)`, n controllers (each serving
    /// `services`) over a three-member etcd cluster, else one on its embedded store.
    pub async fn start_ha(
        tag: &str,
        nodes: &[String],
        progress: &dyn Fn(&str),
        services: Services,
        ha: Option<usize>,
    ) -> Result<Self> {
        Self::launch(tag, nodes, progress, services, ha, None).await
    }

    /// [`DevCluster::start_with`], every node declaring `declared` CPUs and memory to the
    /// scheduler (`weft agent --cpus --mem-mb`) instead of the host's: the nodes share
    /// one host, and a benchmark may need room for more tasks than its cores.
    pub async fn start_declared(
        tag: &str,
        nodes: &[String],
        progress: &dyn Fn(&str),
        services: Services,
        declared: &Resources,
    ) -> Result<Self> {
        Self::launch(tag, nodes, progress, services, None, Some(declared)).await
    }

    async fn launch(
        tag: &str,
        nodes: &[String],
        progress: &dyn Fn(&str),
        services: Services,
        ha: Option<usize>,
        declared: Option<&Resources>,
    ) -> Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            bail!("a dev cluster needs root (network namespaces, nftables)");
        }
        let existing = weft_fabric::netns::list_with_prefix(&format!("{tag}-"));
        if !existing.is_empty() {
            bail!(
                "namespaces of a cluster named {tag} exist already ({}); stop it with `weft dev down --tag {tag}`",
                existing.join(", ")
            );
        }
        let dir = cluster_dir(tag);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let exe = std::env::current_exe().context("cannot find the weft binary")?;

        progress(&format!(
            "creating {} node namespaces and the underlay",
            nodes.len()
        ));
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let testbed =
            Testbed::with_tag(tag.to_string(), &names).context("creating node namespaces")?;
        let mut cluster = Self {
            tag: tag.to_string(),
            api: String::new(),
            servers: Vec::new(),
            consul: String::new(),
            openstack: None,
            admin_token: String::new(),
            dir: dir.clone(),
            controllers: Vec::new(),
            testbed: Some(testbed),
            etcd: None,
            agents: Vec::new(),
        };

        let mut store_args: Vec<String> = Vec::new();
        let count = match ha {
            None => 1,
            Some(n) => {
                progress(&format!(
                    "starting a {HA_ETCD_MEMBERS}-member etcd cluster (data in {})",
                    dir.join("etcd").display()
                ));
                let etcd = EtcdCluster::start(
                    ClusterOptions::members(HA_ETCD_MEMBERS).in_dir(dir.join("etcd")),
                )
                .await
                .context("starting the etcd cluster")?;
                store_args = vec![
                    "--store".into(),
                    "etcd".into(),
                    "--etcd-endpoints".into(),
                    etcd.endpoints().join(","),
                    "--etcd-prefix".into(),
                    format!("{tag}/"),
                    "--leader-ttl-ms".into(),
                    HA_LEADER_TTL_MS.into(),
                ];
                cluster.etcd = Some(etcd);
                n.max(1)
            }
        };

        progress(&if count == 1 {
            "starting the controller".to_string()
        } else {
            format!("starting {count} controllers")
        });
        for i in 1..=count {
            let (data, log) = if ha.is_none() {
                (dir.join("server"), dir.join("server.log"))
            } else {
                (
                    dir.join(format!("controller-{i}")),
                    dir.join(format!("controller-{i}.log")),
                )
            };
            let port = free_port()?;
            // Consul's and Keystone's own ports for the first controller when they are
            // free, as clients default to them.
            let consul = if i == 1 {
                port_or_free(CONSUL_PORT)?
            } else {
                free_port()?
            };
            let mut server = Command::new(&exe);
            server
                .args([
                    "server",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--consul-listen",
                    &format!("127.0.0.1:{consul}"),
                    "--consul-anonymous-tenant",
                    CONSUL_TENANT,
                    "--data-dir",
                ])
                .arg(&data)
                .args(&store_args);
            let openstack = if services.openstack {
                let openstack = if i == 1 {
                    port_or_free(OPENSTACK_PORT)?
                } else {
                    free_port()?
                };
                server.args(["--openstack-listen", &format!("127.0.0.1:{openstack}")]);
                Some(format!("http://127.0.0.1:{openstack}"))
            } else {
                None
            };
            let child = spawn_logged(&mut server, &log)?;
            cluster.controllers.push(Controller {
                url: format!("http://127.0.0.1:{port}"),
                consul: format!("http://127.0.0.1:{consul}"),
                openstack,
                log,
                child: Some(child),
            });
        }
        cluster.servers = cluster.controllers.iter().map(|c| c.url.clone()).collect();
        cluster.api = cluster.servers[0].clone();
        cluster.consul = cluster.controllers[0].consul.clone();
        cluster.openstack = cluster.controllers[0].openstack.clone();
        for (i, controller) in cluster.controllers.iter().enumerate() {
            let health = Client::new(&controller.url, None);
            wait_for(
                &format!("controller {}", i + 1),
                Duration::from_secs(30),
                || {
                    let health = health.clone();
                    async move { Ok(health.health().await.is_ok()) }
                },
            )
            .await
            .with_context(|| format!("see {}", controller.log.display()))?;
        }
        // Every controller of one store writes the same tokens (the first to start
        // makes them, the others adopt them).
        let data = if ha.is_none() {
            dir.join("server")
        } else {
            dir.join("controller-1")
        };
        cluster.admin_token = read_token(&data.join("admin.token"))?;
        let join_token = read_token(&data.join("join.token"))?;
        let servers = cluster.servers.join(",");

        let specs = cluster
            .testbed
            .as_ref()
            .map(|t| t.nodes.clone())
            .unwrap_or_default();
        for node in &specs {
            progress(&format!("starting the agent of {}", node.name));
            let netns = node.netns.clone().unwrap_or_default();
            let mut agent = Command::new(&exe);
            agent
                .args(["agent", "--server", &servers, "--join-token", &join_token])
                .args(["--node", &node.name, "--netns", &netns])
                .args(["--underlay-ip", &node.underlay_ip.to_string()])
                .args(["--netns-prefix", &node.vrf_netns_prefix, "--state-dir"])
                .arg(dir.join(format!("agent-{}", node.name)));
            if let Some(declared) = declared {
                agent
                    .args(["--cpus", &declared.cpus.to_string()])
                    .args(["--mem-mb", &declared.mem_mb.to_string()]);
            }
            let log = dir.join(format!("agent-{}.log", node.name));
            cluster
                .agents
                .push((node.name.clone(), spawn_logged(&mut agent, &log)?));
        }
        let client = cluster.client();
        let want = specs.len();
        wait_for("every node to register", Duration::from_secs(30), || {
            let client = client.clone();
            async move {
                let nodes = client.nodes().await?;
                Ok(nodes.iter().filter(|n| n.ready).count() == want)
            }
        })
        .await
        .with_context(|| format!("see the agent logs in {}", dir.display()))?;

        cluster.write_files()?;
        Ok(cluster)
    }

    /// A client of every controller (it moves on when one fails).
    pub fn client(&self) -> Client {
        Client::with_servers(&self.servers, Some(self.admin_token.clone()))
    }

    /// True when the control plane is several controllers over etcd.
    pub fn is_ha(&self) -> bool {
        self.etcd.is_some()
    }

    /// The etcd members' client URLs (HA only).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.etcd
            .as_ref()
            .map(EtcdCluster::endpoints)
            .unwrap_or_default()
    }

    /// `kill -9` of the leading controller, then waits (up to `limit`) until another
    /// leads, asking the survivors (`GET /v1/status/leader`).
    pub async fn kill_leader(&self, limit: Duration) -> Result<Takeover> {
        let client = self.client();
        let status = client
            .controllers()
            .await
            .context("asking the controllers who leads")?;
        let Some(killed) = status.leader_url else {
            bail!("no controller leads");
        };
        self.kill_controller(&killed)?;
        let killed_at = Instant::now();
        let survivors: Vec<String> = self
            .servers
            .iter()
            .filter(|u| **u != killed)
            .cloned()
            .collect();
        let survivors = Client::with_servers(&survivors, None);
        loop {
            if let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_secs(1), survivors.controllers()).await
                && let Some(leader) = status.leader_url.filter(|l| *l != killed)
            {
                return Ok(Takeover {
                    killed,
                    leader,
                    after: killed_at.elapsed(),
                });
            }
            if killed_at.elapsed() > limit {
                bail!(
                    "no other controller led within {}s of killing {killed}",
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9` of the controller serving `url` (as a crash would); it is reaped when
    /// the cluster stops.
    pub fn kill_controller(&self, url: &str) -> Result<()> {
        let Some(child) = self
            .controllers
            .iter()
            .find(|c| c.url == url)
            .and_then(|c| c.child.as_ref())
        else {
            bail!("no controller of this cluster serves {url}");
        };
        let pid = i32::try_from(child.id()).context("a process id out of range")?;
        kill(Pid::from_raw(pid), Signal::SIGKILL)
            .with_context(|| format!("cannot kill the controller at {url} (pid {pid})"))
    }

    /// Creates (or replaces) the Keystone user `name` of `project` through weft's API
    /// (`POST /v1/openstack/users`) and waits until Keystone answers; returns its
    /// `auth_url` (`http://127.0.0.1:5000/v3`).
    pub async fn openstack_user(
        &self,
        name: &str,
        password: &str,
        project: &str,
    ) -> Result<String> {
        let Some(base) = &self.openstack else {
            bail!("the controller does not serve OpenStack");
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot make an HTTP client")?;
        let users = format!("{}/v1/openstack/users", self.api);
        http.post(&users)
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({ "name": name, "password": password, "project": project }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("creating the Keystone user {name} ({users})"))?;
        let auth_url = format!("{base}/v3");
        wait_for("Keystone", Duration::from_secs(20), || {
            let (http, url) = (http.clone(), auth_url.clone());
            async move { Ok(http.get(&url).send().await?.status().is_success()) }
        })
        .await
        .with_context(|| format!("see {}", self.dir.join("server.log").display()))?;
        Ok(auth_url)
    }

    fn write_files(&self) -> Result<()> {
        let controllers: Vec<ControllerFile> = self
            .controllers
            .iter()
            .filter_map(|c| {
                c.child.as_ref().map(|child| ControllerFile {
                    url: c.url.clone(),
                    pid: child.id(),
                })
            })
            .collect();
        let etcd = self
            .etcd
            .as_ref()
            .map(EtcdCluster::pids)
            .unwrap_or_default();
        let mut pids: Vec<u32> = self.agents.iter().map(|(_, c)| c.id()).collect();
        pids.extend(controllers.iter().map(|c| c.pid));
        pids.extend(&etcd);
        let file = ClusterFile {
            tag: self.tag.clone(),
            api: self.api.clone(),
            pids,
            controllers,
            etcd,
        };
        let path = self.dir.join("cluster.json");
        std::fs::write(&path, serde_json::to_string_pretty(&file)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        write_config(&CliConfig {
            server: self.servers.join(","),
            token: self.admin_token.clone(),
            consul: Some(self.consul.clone()),
        })?;
        Ok(())
    }

    /// Leaves everything running; `weft dev down --tag TAG` removes it later.
    pub fn keep(mut self) {
        if let Some(testbed) = self.testbed.take() {
            testbed.keep();
        }
        for controller in &mut self.controllers {
            controller.child = None;
        }
        self.agents.clear();
        if let Some(etcd) = self.etcd.take() {
            etcd.keep();
        }
    }

    /// The agents, then the controllers (etcd outlives them, so that none of them sees
    /// its store vanish); the etcd members last.
    fn stop_processes(&mut self) {
        stop_children(self.agents.drain(..).map(|(_, c)| c).collect());
        stop_children(
            self.controllers
                .iter_mut()
                .filter_map(|c| c.child.take())
                .collect(),
        );
        drop(self.etcd.take());
    }

    /// Stops every process, then removes every namespace, link, table and file.
    pub fn stop(mut self) -> Result<()> {
        self.stop_processes();
        if let Some(mut testbed) = self.testbed.take() {
            testbed
                .destroy()
                .context("removing the cluster's namespaces")?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.stop_processes();
    }
}

/// SIGTERM, then SIGKILL what is still running after a grace period.
fn stop_children(mut children: Vec<Child>) {
    for child in &children {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for child in &mut children {
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM to those of `pids` that are still this cluster's processes (their command
/// line names `tag`: a pid may have been reused since), then SIGKILL to what still runs
/// after 5 s.
fn terminate(tag: &str, pids: &[u32]) {
    let ours = |pid: u32| -> Option<Pid> {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(tag)
            .then_some(Pid::from_raw(i32::try_from(pid).ok()?))
    };
    let running: Vec<Pid> = pids.iter().filter_map(|p| ours(*p)).collect();
    for pid in &running {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = |pid: &Pid| {
        // A zombie has exited; its parent has not reaped it yet.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    while Instant::now() < deadline && running.iter().any(alive) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in running.iter().filter(|p| alive(p)) {
        let _ = kill(*pid, Signal::SIGKILL);
    }
}

/// Removes a kept cluster: its processes, namespaces and directory.
pub fn down(tag: &str) -> Result<Vec<String>> {
    if !tag.starts_with("weft") {
        bail!("cluster tags start with weft");
    }
    let dir = cluster_dir(tag);
    if let Ok(text) = std::fs::read_to_string(dir.join("cluster.json"))
        && let Ok(file) = serde_json::from_str::<ClusterFile>(&text)
    {
        // Agents and controllers first, the etcd members (HA) once those are gone.
        let (etcd, others): (Vec<u32>, Vec<u32>) =
            file.pids.iter().partition(|pid| file.etcd.contains(pid));
        terminate(tag, &others);
        terminate(tag, &etcd);
    }
    let names = weft_fabric::netns::list_with_prefix(&format!("{tag}-"));
    for ns in &names {
        weft_fabric::netns::delete(ns).with_context(|| format!("cannot delete namespace {ns}"))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `weft dev down` of a cluster kept by an older weft, whose file names no
    /// controllers or etcd members.
    #[test]
    fn an_older_cluster_file_is_read() {
        let file: ClusterFile = serde_json::from_str(
            r#"{"tag": "weft-dev", "api": "http://127.0.0.1:1", "pids": [7, 8]}"#,
        )
        .expect("parse");
        assert_eq!(file.pids, [7, 8]);
        assert!(file.controllers.is_empty() && file.etcd.is_empty());
    }
}
