//! Task start latency (root only; not a timed test):
//!
//!     cargo bench -p weft-runtime --bench start_latency -- [ITERATIONS]
//!
//! * process runtime: from `start()` to the task exec'd inside its netns, in its cgroup with
//!   limits written and capabilities dropped (all of that happens before exec, and `start`
//!   returns once exec succeeded);
//! * `docker run --rm --network none <busybox image> true`, the CLI baseline;
//! * the docker runtime's `start()` (create + start + publish the netns).

use std::process::Command;
use std::time::{Duration, Instant};

use weft_runtime::{DockerRuntime, ProcessRuntime, TaskSpec};

const IMAGE: &str = "weft-test/busybox:latest";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{name:<40} n={:<3} p50={:>9.2} ms  p99={:>9.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    p50
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build_image() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .map_err(|e| format!("busybox-static: {e}"))?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
    )
    .map_err(|e| e.to_string())?;
    sh(&[
        "docker",
        "build",
        "-q",
        "-t",
        IMAGE,
        dir.path().to_str().unwrap_or("."),
    ])
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("!!! start_latency needs root (namespaces, cgroups, docker); skipped");
        return Ok(());
    }
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let pid = std::process::id();
    let ns = Netns(format!("weft-rt-bench-{pid}"));
    sh(&["ip", "netns", "add", &ns.0])?;
    sh(&[
        "ip", "netns", "exec", &ns.0, "ip", "link", "set", "lo", "up",
    ])?;
    println!(
        "start latency, {iterations} starts each, {}",
        std::env::consts::ARCH
    );

    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let process = ProcessRuntime::new(state.path()).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..iterations {
        let spec = TaskSpec::process(
            &format!("weft-rt-bench-{pid}-p{i}"),
            &ns.0,
            &["sleep", "60"],
        )
        .with_limits(0.5, 64);
        let t0 = Instant::now();
        process.start(&spec).await.map_err(|e| e.to_string())?;
        samples.push(t0.elapsed());
        process
            .stop(&spec.id, Duration::from_secs(2))
            .await
            .map_err(|e| e.to_string())?;
    }
    let process_p50 = report("process runtime start()", samples);

    build_image()?;
    let docker_iterations = iterations.min(30);
    let mut samples = Vec::new();
    for _ in 0..docker_iterations {
        let t0 = Instant::now();
        sh(&["docker", "run", "--rm", "--network", "none", IMAGE, "true"])?;
        samples.push(t0.elapsed());
    }
    let cli_p50 = report("docker run --rm --network none .. true", samples);

    let docker = DockerRuntime::new(weft_runtime::docker::DEFAULT_SOCKET);
    docker.ping().await.map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..docker_iterations {
        let spec = TaskSpec::container(
            &format!("weft-rt-bench-{pid}-d{i}"),
            &format!("weft-rt-bench-{pid}-d{i}"),
            IMAGE,
            &["sleep", "300"],
        )
        .with_limits(0.5, 64);
        let t0 = Instant::now();
        docker.start(&spec).await.map_err(|e| e.to_string())?;
        samples.push(t0.elapsed());
        docker
            .stop(&spec.id, Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
    }
    let runtime_p50 = report("docker runtime start()", samples);

    println!(
        "process p50 / docker-cli p50 = 1/{:.0}; process p50 / docker runtime p50 = 1/{:.0}",
        cli_p50.as_secs_f64() / process_p50.as_secs_f64(),
        runtime_p50.as_secs_f64() / process_p50.as_secs_f64()
    );
    Ok(())
}
