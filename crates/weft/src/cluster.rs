//! A whole cluster on one machine: node namespaces joined by an underlay bridge, one
//! controller process and one agent process per node. `weft dev` and `weft demo` use it.
//!
//! Everything is named `<tag>-...`; the cluster's directory `/run/weft/<tag>` holds the
//! controller's data, each agent's state, the logs and `cluster.json` (what `down`
//! needs to remove a kept cluster).

use crate::remote::{CliConfig, write_config};
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::Client;
use weft_fabric::testbed::Testbed;

/// What a running cluster leaves on disk so that another process can stop it.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterFile {
    tag: String,
    api: String,
    pids: Vec<u32>,
}

#[derive(Debug)]
pub struct DevCluster {
    pub tag: String,
    pub api: String,
    /// The Consul-compatible API (`http://127.0.0.1:8500` when that port is free).
    pub consul: String,
    /// Keystone and Neutron (`http://127.0.0.1:5000` when that port is free), when asked
    /// for (`Services::openstack`).
    pub openstack: Option<String>,
    pub admin_token: String,
    pub dir: PathBuf,
    testbed: Option<Testbed>,
    server: Option<Child>,
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
            consul: String::new(),
            openstack: None,
            admin_token: String::new(),
            dir: dir.clone(),
            testbed: Some(testbed),
            server: None,
            agents: Vec::new(),
        };

        progress("starting the controller");
        let port = free_port()?;
        cluster.api = format!("http://127.0.0.1:{port}");
        // Consul's and Keystone's own ports when they are free, as clients default to them.
        let consul = port_or_free(CONSUL_PORT)?;
        cluster.consul = format!("http://127.0.0.1:{consul}");
        let data = dir.join("server");
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
            .arg(&data);
        if services.openstack {
            let openstack = port_or_free(OPENSTACK_PORT)?;
            server.args(["--openstack-listen", &format!("127.0.0.1:{openstack}")]);
            cluster.openstack = Some(format!("http://127.0.0.1:{openstack}"));
        }
        cluster.server = Some(spawn_logged(&mut server, &dir.join("server.log"))?);
        let health = Client::new(&cluster.api, None);
        wait_for("the controller", Duration::from_secs(20), || {
            let health = health.clone();
            async move { Ok(health.health().await.is_ok()) }
        })
        .await
        .with_context(|| format!("see {}", dir.join("server.log").display()))?;
        cluster.admin_token = read_token(&data.join("admin.token"))?;
        let join_token = read_token(&data.join("join.token"))?;

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
                .args([
                    "agent",
                    "--server",
                    &cluster.api,
                    "--join-token",
                    &join_token,
                ])
                .args(["--node", &node.name, "--netns", &netns])
                .args(["--underlay-ip", &node.underlay_ip.to_string()])
                .args(["--netns-prefix", &node.vrf_netns_prefix, "--state-dir"])
                .arg(dir.join(format!("agent-{}", node.name)));
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

    pub fn client(&self) -> Client {
        Client::new(&self.api, Some(self.admin_token.clone()))
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
        let mut pids: Vec<u32> = self.agents.iter().map(|(_, c)| c.id()).collect();
        pids.extend(self.server.as_ref().map(Child::id));
        let file = ClusterFile {
            tag: self.tag.clone(),
            api: self.api.clone(),
            pids,
        };
        let path = self.dir.join("cluster.json");
        std::fs::write(&path, serde_json::to_string_pretty(&file)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        write_config(&CliConfig {
            server: self.api.clone(),
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
        self.server = None;
        self.agents.clear();
    }

    /// Stops every process, then removes every namespace, link, table and file.
    pub fn stop(mut self) -> Result<()> {
        let mut children: Vec<Child> = self.agents.drain(..).map(|(_, c)| c).collect();
        children.extend(self.server.take());
        stop_children(children);
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
        let mut children: Vec<Child> = self.agents.drain(..).map(|(_, c)| c).collect();
        children.extend(self.server.take());
        stop_children(children);
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

/// Removes a kept cluster: its processes, namespaces and directory.
pub fn down(tag: &str) -> Result<Vec<String>> {
    if !tag.starts_with("weft") {
        bail!("cluster tags start with weft");
    }
    let dir = cluster_dir(tag);
    if let Ok(text) = std::fs::read_to_string(dir.join("cluster.json"))
        && let Ok(file) = serde_json::from_str::<ClusterFile>(&text)
    {
        for pid in file.pids {
            // Only our own processes: the pid may have been reused since.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(tag);
            if let (true, Ok(pid)) = (ours, i32::try_from(pid)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let names = weft_fabric::netns::list_with_prefix(&format!("{tag}-"));
    for ns in &names {
        weft_fabric::netns::delete(ns).with_context(|| format!("cannot delete namespace {ns}"))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(names)
}
