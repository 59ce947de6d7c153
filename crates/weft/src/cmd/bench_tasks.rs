//! `weft bench tasks`: submit → running latency of a process task, end to end through
//! the controller, the scheduler, the agent, the fabric and the runtime, against
//! `docker run --rm --network none` of a busybox image in the same run.
//!
//! Two cases: "warm", the usual one, where the node already serves the task's VRF
//! (another app's task keeps it there), and "cold", the first task of its VRF on the
//! node, which also pays for the VRF namespace, its bridge, VXLAN device and tables.

use crate::cluster::DevCluster;
use crate::cmd::bench_cluster::{ms, percentile};
use crate::documents::parse_embedded;
use crate::remote::describe;
use anyhow::{Context, Result, anyhow, bail};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, TaskState};

const THREE_TIER: &str = include_str!("../../../../examples/three-tier.hcl");
const IMAGE: &str = "weft-bench/busybox:latest";

pub fn run(runs: usize) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let progress = |step: &str| eprintln!("==> {step}");
    let cluster = rt.block_on(DevCluster::start(
        "weft-bench",
        &["com1".to_string()],
        &progress,
    ))?;
    let result = rt.block_on(measure(&cluster.client(), runs, &progress));
    cluster.stop()?;
    let (mut warm, mut cold) = result?;

    progress("docker baseline: building a busybox image locally");
    build_image(IMAGE, None)?;
    let mut docker = Vec::new();
    for i in 0..runs {
        eprint!("\r    docker run {}/{runs}", i + 1);
        let start = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", "--network", "none", IMAGE, "true"])
            .stdout(Stdio::null())
            .status()
            .context("cannot run docker")?;
        if !status.success() {
            bail!("docker run failed: {status}");
        }
        docker.push(start.elapsed());
    }
    eprintln!();
    let (w50, w99) = (percentile(&mut warm, 0.5), percentile(&mut warm, 0.99));
    let (c50, c99) = (percentile(&mut cold, 0.5), percentile(&mut cold, 0.99));
    let (d50, d99) = (percentile(&mut docker, 0.5), percentile(&mut docker, 0.99));
    println!(
        "task start latency, {runs} runs each (submit -> running, endpoint + policy in place)"
    );
    println!(
        "  weft process task, VRF already on the node:   p50 {:.1} ms  p99 {:.1} ms",
        ms(w50),
        ms(w99)
    );
    println!(
        "  weft process task, first of its VRF on node:  p50 {:.1} ms  p99 {:.1} ms",
        ms(c50),
        ms(c99)
    );
    println!(
        "  docker run --rm --network none busybox true:  p50 {:.1} ms  p99 {:.1} ms",
        ms(d50),
        ms(d99)
    );
    println!(
        "  ratio of p50s: warm {:.3}, cold {:.3} (goal <= 0.100)",
        ms(w50) / ms(d50),
        ms(c50) / ms(d50)
    );
    Ok(ExitCode::SUCCESS)
}

/// Warm samples (an anchor app keeps the VRF on the node), then cold ones.
async fn measure(
    client: &Client,
    runs: usize,
    progress: &dyn Fn(&str),
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let model = parse_embedded("three-tier.hcl", THREE_TIER)?;
    client
        .apply(&model)
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    progress("starting an anchor app that keeps the VRF on the node");
    start_app(client, "anchor").await?;
    progress(&format!(
        "warm: submitting {runs} apps of one process task, one after another"
    ));
    let warm = samples(client, "w", runs).await?;
    remove_app(client, "anchor").await?;
    progress(&format!(
        "cold: submitting {runs} apps, each the only one of its VRF on the node"
    ));
    let cold = samples(client, "c", runs).await?;
    Ok((warm, cold))
}

/// Starts and removes `runs` apps named `<prefix><i>`, one after another: their start
/// latencies.
async fn samples(client: &Client, prefix: &str, runs: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        eprint!("\r    app {}/{runs}", i + 1);
        let id = format!("{prefix}{i}");
        out.push(start_app(client, &id).await?);
        remove_app(client, &id).await?;
    }
    eprintln!();
    Ok(out)
}

/// Submits app `id` (one process task) and waits until its task runs.
async fn start_app(client: &Client, id: &str) -> Result<Duration> {
    let app = serde_json::json!({ "app": { id: {
        "instances": 1, "cmd": "exec sleep 1000000", "cpus": 0.05, "mem": 16,
        "epg": "shop/store/web"
    }}});
    let start = Instant::now();
    client
        .apply_apps(app)
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    loop {
        let tasks = client
            .tasks(Some(id))
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
        if tasks.iter().any(|t| t.status.state == TaskState::Running) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("app {id} did not start within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Removes app `id` and waits until its endpoint namespaces are gone, then a little
/// longer: the kernel destroys a deleted namespace (and, in the cold case, the VRF's
/// devices) asynchronously, and that work should not overlap the next start.
async fn remove_app(client: &Client, id: &str) -> Result<()> {
    let netns: Vec<String> = client
        .endpoints()
        .await
        .map_err(|e| anyhow!(describe(&e)))?
        .into_iter()
        .filter(|e| e.name.starts_with(&format!("{id}-")))
        .map(|e| e.netns)
        .collect();
    client
        .delete_app(id)
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    let gone = Instant::now();
    while netns.iter().any(|ns| weft_fabric::netns::exists(ns)) {
        if gone.elapsed() > Duration::from_secs(30) {
            bail!("app {id}'s namespaces were not removed within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// `FROM scratch` plus the static busybox, tagged `tag`, with `cmd` (an exec-form JSON
/// array) as its command when given: no registry needed.
pub(crate) fn build_image(tag: &str, cmd: Option<&str>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("weft-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).context("cannot create the image context")?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .context("cannot copy /bin/busybox (apt-get install busybox-static)")?;
    let mut dockerfile = "FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n".to_string();
    if let Some(cmd) = cmd {
        dockerfile.push_str(&format!("CMD {cmd}\n"));
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile).context("cannot write the Dockerfile")?;
    let status = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot run docker build");
    let _ = std::fs::remove_dir_all(&dir);
    if !status?.success() {
        bail!("docker build of {tag} failed");
    }
    Ok(())
}
