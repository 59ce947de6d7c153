//! `weft bench tasks`: submit → running latency of a process task, end to end through
//! the controller, the scheduler, the agent, the fabric and the runtime, against
//! `docker run --rm --network none` of a busybox image in the same run.

use crate::cluster::DevCluster;
use crate::documents::parse_embedded;
use crate::remote::describe;
use anyhow::{Context, Result, anyhow, bail};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use weft_api::{Client, TaskState};

const THREE_TIER: &str = include_str!("../../../../examples/three-tier.hcl");
const IMAGE: &str = "weft-bench/busybox:latest";

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

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
    let mut weft = result?;

    progress("docker baseline: building a busybox image locally");
    build_image()?;
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
    let (w50, w99) = (percentile(&mut weft, 0.5), percentile(&mut weft, 0.99));
    let (d50, d99) = (percentile(&mut docker, 0.5), percentile(&mut docker, 0.99));
    println!("task start latency, {runs} runs each");
    println!(
        "  weft process task (submit -> running, endpoint + policy in place): p50 {:.1} ms  p99 {:.1} ms",
        ms(w50),
        ms(w99)
    );
    println!(
        "  docker run --rm --network none busybox true:                      p50 {:.1} ms  p99 {:.1} ms",
        ms(d50),
        ms(d99)
    );
    println!("  ratio of p50s: {:.3} (goal <= 0.100)", ms(w50) / ms(d50));
    Ok(ExitCode::SUCCESS)
}

async fn measure(client: &Client, runs: usize, progress: &dyn Fn(&str)) -> Result<Vec<Duration>> {
    let model = parse_embedded("three-tier.hcl", THREE_TIER)?;
    client
        .apply(&model)
        .await
        .map_err(|e| anyhow!(describe(&e)))?;
    progress(&format!(
        "submitting {runs} apps of one process task, one after another"
    ));
    let mut samples = Vec::new();
    for i in 0..runs {
        eprint!("\r    app {}/{runs}", i + 1);
        let id = format!("b{i}");
        let app = serde_json::json!({ "app": { id.clone(): {
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
                .tasks(Some(&id))
                .await
                .map_err(|e| anyhow!(describe(&e)))?;
            if tasks.iter().any(|t| t.status.state == TaskState::Running) {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("app {id} did not start within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(start.elapsed());
        // Tear down outside the clock, and completely, so that one app's removal does not
        // run on the agent while the next one starts.
        let netns: Vec<String> = client
            .endpoints()
            .await
            .map_err(|e| anyhow!(describe(&e)))?
            .into_iter()
            .filter(|e| e.name.starts_with(&format!("{id}-")))
            .map(|e| e.netns)
            .collect();
        client
            .delete_app(&id)
            .await
            .map_err(|e| anyhow!(describe(&e)))?;
        let gone = Instant::now();
        while netns.iter().any(|ns| weft_fabric::netns::exists(ns)) {
            if gone.elapsed() > Duration::from_secs(30) {
                bail!("app {id}'s namespaces were not removed within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!();
    Ok(samples)
}

/// `FROM scratch` plus the static busybox: no registry needed.
fn build_image() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("weft-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).context("cannot create the image context")?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .context("cannot copy /bin/busybox (apt-get install busybox-static)")?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )
    .context("cannot write the Dockerfile")?;
    let status = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot run docker build");
    let _ = std::fs::remove_dir_all(&dir);
    if !status?.success() {
        bail!("docker build of {IMAGE} failed");
    }
    Ok(())
}
