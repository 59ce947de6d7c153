//! `weft bench failover`: leader kills on three `weft server` processes over a local
//! three-member etcd (etcd's election timeout 500 ms, so leases may be as short as 1 s;
//! the controllers' leader lease is `--leader-ttl-ms`). Per round: `kill -9` of the
//! leading controller, then, through a surviving one, a write (an endpoint create) and an
//! app scale-up by one; measured from the kill to the write's acknowledgement and to the
//! new task's record (the new leader's first scheduling decision). The killed controller
//! is restarted (same data dir) before the next round. Needs no root (no data path).

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointRequest, NodeRegistration, Resources};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster};

const LEADER_TTL_MS: u64 = 1000;
const LIMIT: Duration = Duration::from_secs(30);

struct Controller {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Controller {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self, endpoints: &str) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("server.log"))
            .with_context(|| format!("cannot create a log in {}", self.dir.display()))?;
        let child = Command::new(std::env::current_exe().context("cannot find weft")?)
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--store", "etcd", "--etcd-endpoints", endpoints])
            .args(["--etcd-prefix", "weft-bench/"])
            .args(["--leader-ttl-ms", &LEADER_TTL_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start weft server")?;
        self.child = Some(child);
        Ok(())
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
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

async fn leader_url(url: &str) -> Option<String> {
    let status: weft_api::ControllersStatus =
        reqwest::get(format!("{url}{}", weft_api::paths::LEADER))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
    status.leader_url
}

pub fn run(rounds: usize) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(measure(rounds))
}

async fn measure(rounds: usize) -> Result<ExitCode> {
    let progress = |s: &str| eprintln!("==> {s}");
    progress("starting a three-member etcd (election timeout 500 ms)");
    let etcd = EtcdCluster::start(ClusterOptions {
        election_timeout: Duration::from_millis(500),
        heartbeat: Duration::from_millis(50),
        ..ClusterOptions::members(3)
    })
    .await
    .map_err(|e| anyhow!("{e}"))?;
    let endpoints = etcd.endpoints().join(",");
    let base = tempdir()?;
    let mut controllers = Vec::new();
    for i in 0..3 {
        let dir = base.join(format!("c{i}"));
        std::fs::create_dir_all(&dir)?;
        let mut c = Controller {
            dir,
            port: free_port()?,
            child: None,
        };
        c.start(&endpoints)?;
        controllers.push(c);
    }
    progress("starting three controllers");
    for c in &controllers {
        let client = Client::new(&c.url(), None);
        wait_for("a controller", || {
            let client = client.clone();
            async move { client.health().await.is_ok() }
        })
        .await?;
    }
    let token = read(&controllers[0].dir.join("admin.token"))?;
    let join = read(&controllers[0].dir.join("join.token"))?;
    let admin = Client::new(&controllers[0].url(), Some(token.clone()));
    admin
        .apply(&weft_model::parse_hcl(
            "bench.hcl",
            r#"tenant "bench" {
  vrf "main" {}
  bridge_domain "net" {
    vrf = "main"
    subnet "10.60.0.0/16" { gateway = "10.60.0.1" }
  }
  application_profile "app" {
    epg "web" { bridge_domain = "net" }
  }
}"#,
        )?)
        .await?;
    Client::new(&controllers[0].url(), Some(join.clone()))
        .register_node(&NodeRegistration {
            name: "n1".into(),
            underlay_ip: "192.0.2.10".parse()?,
            netns: None,
            netns_prefix: "weft-bench-n1".into(),
            resources: Resources {
                cpus: 1000.0,
                mem_mb: 1_000_000,
                disk_mb: 1_000_000,
            },
            labels: Default::default(),
        })
        .await?;
    // The node's heartbeats, to whichever controller answers.
    let urls: Vec<String> = controllers.iter().map(Controller::url).collect();
    let beats = tokio::spawn(async move {
        loop {
            for url in &urls {
                let agent = Client::new(url, Some(join.clone()));
                let beat = tokio::time::timeout(Duration::from_millis(300), agent.heartbeat("n1"));
                if matches!(beat.await, Ok(Ok(()))) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut instances = 1u32;
    admin
        .apply_apps(serde_json::json!({"app": {"web": {
            "instances": instances, "cmd": "sleep 1000", "cpus": 0.01, "mem": 1,
            "epg": "bench/app/web"
        }}}))
        .await?;

    let (mut writes, mut schedules) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let urls: Vec<String> = controllers.iter().map(Controller::url).collect();
        let started = Instant::now();
        let leader = loop {
            if let Some(u) = leader_url(&urls[0]).await
                && let Some(i) = urls.iter().position(|x| *x == u)
            {
                break i;
            }
            if started.elapsed() > LIMIT {
                bail!("no leader within {LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The surviving controllers, as a client that fails over between them.
        let others: Vec<String> = (1..3).map(|k| urls[(leader + k) % 3].clone()).collect();
        let survivor = Client::with_servers(&others, Some(token.clone()));
        let tasks_before = survivor.tasks(Some("web")).await?.len();

        let killed = Instant::now();
        if let Some(mut child) = controllers[leader].child.take() {
            child.kill()?;
            child.wait()?;
        }
        let request = EndpointRequest {
            name: format!("fo-{round}"),
            epg: "bench/app/web".parse()?,
            node: "n1".into(),
            ip: None,
            mac: None,
            allowed_address_pairs: Vec::new(),
            port_security: true,
            security_groups: None,
        };
        if let Err(err) = survivor.create_endpoint(&request).await {
            if std::env::var_os("WEFT_BENCH_KEEP").is_some() {
                eprintln!("write failed: {err}; WEFT_BENCH_KEEP: keeping the processes for 60 s");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            return Err(anyhow!(err)).with_context(|| format!("write through {others:?}"));
        }
        writes.push(killed.elapsed());
        instances += 1;
        survivor.scale_app("web", instances).await?;
        wait_for("the new leader's task", || {
            let survivor = survivor.clone();
            async move {
                survivor
                    .tasks(Some("web"))
                    .await
                    .is_ok_and(|t| t.len() > tasks_before)
            }
        })
        .await?;
        schedules.push(killed.elapsed());
        eprintln!(
            "round {round}: write acknowledged after {:?}, scheduled after {:?}",
            writes[round], schedules[round]
        );
        controllers[leader].start(&endpoints)?;
        let back = Client::new(&controllers[leader].url(), None);
        wait_for("the restarted controller", || {
            let back = back.clone();
            async move { back.health().await.is_ok() }
        })
        .await?;
    }
    let (w50, w99) = (percentile(&mut writes, 0.5), percentile(&mut writes, 0.99));
    let (s50, s99) = (
        percentile(&mut schedules, 0.5),
        percentile(&mut schedules, 0.99),
    );
    println!(
        "{rounds} leader kills, leader lease {LEADER_TTL_MS} ms (etcd election timeout 500 ms):"
    );
    println!("  kill -9 -> first acknowledged write via a survivor: p50 {w50:.2?}, p99 {w99:.2?}");
    println!(
        "  kill -9 -> first scheduling decision of the new leader: p50 {s50:.2?}, p99 {s99:.2?}"
    );
    beats.abort();
    drop(controllers);
    drop(etcd);
    if std::env::var_os("WEFT_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_string())
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("weft-bench-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
