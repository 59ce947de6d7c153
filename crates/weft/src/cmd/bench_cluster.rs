//! What the controller benchmarks share (`weft bench failover`, `writes`, `propagation`):
//! `weft server` processes of this binary on loopback ports, on redb or over a local etcd
//! cluster, their tokens, fake nodes (a registration and heartbeats, no agent) and
//! percentiles. Needs no root (no data path).

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, NodeRegistration, Resources};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster};

/// How long any single wait of a benchmark may take before it gives up.
pub const LIMIT: Duration = Duration::from_secs(30);

/// One `weft server` process, restartable with the same arguments and data dir.
#[derive(Debug)]
pub struct Controller {
    pub dir: PathBuf,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Controller {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (its stderr goes to `server.log` in its data dir).
    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("server.log"))
            .with_context(|| format!("cannot create a log in {}", self.dir.display()))?;
        let child = Command::new(std::env::current_exe().context("cannot find weft")?)
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start weft server")?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9` and reap; nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// CPU time (user + system) the running process has used so far.
    pub fn cpu(&self) -> Option<Duration> {
        let pid = self.child.as_ref()?.id();
        cpu_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Waits until it answers `GET /v1/health`.
    pub async fn wait_healthy(&self) -> Result<()> {
        let client = Client::new(&self.url(), None);
        wait_for("a controller", || {
            let client = client.clone();
            async move { client.health().await.is_ok() }
        })
        .await
    }
}

/// What the controllers store their state in.
#[derive(Debug)]
pub enum Backend {
    /// One controller on its embedded redb file.
    Redb,
    /// `controllers` controllers over a local etcd cluster of these options.
    Etcd {
        controllers: usize,
        options: ClusterOptions,
        leader_ttl_ms: u64,
    },
}

/// Controllers (and their etcd) of one benchmark; all are killed and their files removed
/// on drop (the files are kept when `WEFT_BENCH_KEEP` is set).
#[derive(Debug)]
pub struct Cluster {
    pub controllers: Vec<Controller>,
    pub etcd: Option<EtcdCluster>,
    pub base: PathBuf,
    pub admin_token: String,
    pub join_token: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Controllers before their etcd, then the files.
        self.controllers.clear();
        self.etcd.take();
        if std::env::var_os("WEFT_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

impl Cluster {
    /// Starts the store and the controllers and waits until every controller answers.
    /// `extra` goes to every `weft server` (e.g. `--node-deadline 30`).
    pub async fn start(tag: &str, backend: Backend, extra: &[&str]) -> Result<Self> {
        let base = std::env::temp_dir().join(format!("weft-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create {}", base.display()))?;
        let mut cluster = Cluster {
            controllers: Vec::new(),
            etcd: None,
            base,
            admin_token: String::new(),
            join_token: String::new(),
        };
        let (count, mut args) = match backend {
            Backend::Redb => (1, Vec::new()),
            Backend::Etcd {
                controllers,
                options,
                leader_ttl_ms,
            } => {
                let etcd = EtcdCluster::start(options)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let endpoints = etcd.endpoints().join(",");
                cluster.etcd = Some(etcd);
                let args = vec![
                    "--store".to_string(),
                    "etcd".into(),
                    "--etcd-endpoints".into(),
                    endpoints,
                    "--etcd-prefix".into(),
                    format!("weft-bench-{tag}/"),
                    "--leader-ttl-ms".into(),
                    leader_ttl_ms.to_string(),
                ];
                (controllers.max(1), args)
            }
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        for i in 0..count {
            let dir = cluster.base.join(format!("c{i}"));
            std::fs::create_dir_all(&dir)?;
            let mut c = Controller {
                dir,
                port: free_port()?,
                args: args.clone(),
                child: None,
            };
            c.start()?;
            cluster.controllers.push(c);
        }
        for c in &cluster.controllers {
            c.wait_healthy().await?;
        }
        cluster.admin_token = read(&cluster.controllers[0].dir.join("admin.token"))?;
        cluster.join_token = read(&cluster.controllers[0].dir.join("join.token"))?;
        Ok(cluster)
    }

    pub fn urls(&self) -> Vec<String> {
        self.controllers.iter().map(Controller::url).collect()
    }

    /// The controllers in turn from the `i`-th (modulo their count): a client that starts
    /// at its own controller and fails over to the others, as an agent given every
    /// controller's address does.
    pub fn urls_from(&self, i: usize) -> Vec<String> {
        let urls = self.urls();
        let n = urls.len();
        (0..n).map(|k| urls[(i + k) % n].clone()).collect()
    }

    /// An admin client that starts at the `i`-th controller.
    pub fn admin(&self, i: usize) -> Client {
        Client::with_servers(&self.urls_from(i), Some(self.admin_token.clone()))
    }

    /// A node-agent client (join token) that starts at the `i`-th controller.
    pub fn agent(&self, i: usize) -> Client {
        Client::with_servers(&self.urls_from(i), Some(self.join_token.clone()))
    }

    /// Which controller leads the loops, as `GET /v1/status/leader` of any of them says.
    pub async fn leader(&self) -> Option<usize> {
        let status = Client::with_servers(&self.urls(), None)
            .controllers()
            .await
            .ok()?;
        let url = status.leader_url?;
        self.controllers.iter().position(|c| c.url() == url)
    }
}

/// A node registration for a node without an agent (nothing runs on it).
pub fn fake_node(name: &str, underlay_ip: std::net::Ipv4Addr) -> NodeRegistration {
    NodeRegistration {
        name: name.into(),
        underlay_ip,
        netns: None,
        netns_prefix: format!("weft-bench-{name}"),
        api: None,
        resources: Resources {
            cpus: 1000.0,
            mem_mb: 1_000_000,
            disk_mb: 1_000_000,
        },
        labels: Default::default(),
    }
}

/// Heartbeats of `node` every 300 ms, to whichever of `urls` answers within 300 ms (the
/// others may have been killed), until the task is aborted.
pub fn heartbeats(
    urls: Vec<String>,
    join_token: String,
    node: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for url in &urls {
                let agent = Client::new(url, Some(join_token.clone()));
                let beat = tokio::time::timeout(Duration::from_millis(300), agent.heartbeat(&node));
                if matches!(beat.await, Ok(Ok(()))) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// Tenant `name`: EPGs web and db in one VRF, web consumes a contract db provides, whose
/// one filter entry allows tcp/`port`. Its subnet is the `n`-th /16 of 10.0.0.0/8.
pub fn tenant(name: &str, n: usize, port: u16) -> Result<weft_model::Model> {
    let text = format!(
        r#"tenant "{name}" {{
  vrf "main" {{}}
  bridge_domain "net" {{
    vrf = "main"
    subnet "10.{n}.0.0/16" {{ gateway = "10.{n}.0.1" }}
  }}
  filter "f" {{
    entry "e" {{
      protocol         = "tcp"
      destination_port = {port}
    }}
  }}
  contract "c" {{
    subject "s" {{ filters = ["f"] }}
  }}
  application_profile "app" {{
    epg "web" {{
      bridge_domain = "net"
      consumes      = ["c"]
    }}
    epg "db" {{
      bridge_domain = "net"
      provides      = ["c"]
    }}
  }}
}}"#
    );
    Ok(weft_model::parse_hcl(&format!("{name}.hcl"), &text)?)
}

/// CPU time (user + system) of this process so far.
pub fn own_cpu() -> Option<Duration> {
    cpu_of(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User + system time from a `/proc/<pid>/stat` line (fields 14 and 15, in clock ticks of
/// 1/100 s, Linux's `USER_HZ` on every architecture weft runs on).
fn cpu_of(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: count after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // `rest` starts at field 3 (the state).
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `p`-quantile (0..=1) of `samples` by nearest rank (sorts them); zero when empty.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Polls `check` every 5 ms until it holds, for at most [`LIMIT`].
pub async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        if start.elapsed() > LIMIT {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub fn read(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = Duration::from_millis;
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentile(&mut samples, 0.0), ms(1));
        assert_eq!(percentile(&mut samples, 0.5), ms(51));
        assert_eq!(percentile(&mut samples, 0.99), ms(99));
        assert_eq!(percentile(&mut samples, 1.0), ms(100));
        assert_eq!(percentile(&mut samples, 2.0), ms(100));
        assert_eq!(percentile(&mut [ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&mut [], 0.5), Duration::ZERO);
    }

    #[test]
    fn cpu_time_from_proc_stat() {
        let stat =
            "4242 (weft (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_of(stat), Some(Duration::from_millis(3250)));
        assert_eq!(cpu_of("4242 (weft) S 1"), None);
        assert!(own_cpu().is_some());
    }
}
