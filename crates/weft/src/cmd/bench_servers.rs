//! `weft bench servers`: from creating a Nova server to the server ACTIVE and answering
//! TCP from a peer port, against `docker run -d` of the same image answering TCP from the
//! host, in one run on one two-node dev cluster; then many servers created at once
//! against as many `docker run -d` in parallel.
//!
//! The image is built locally (`FROM scratch` plus the static busybox): a TCP echo server
//! on port 7007 under a shell that exits on SIGTERM. It is registered through Glance, the
//! project's network and subnet are made through Neutron, and the servers are created
//! with `POST /compute/v2.1/servers` (m1.tiny, a Keystone token of the project). A peer
//! port on com2 (Neutron, so in the project's default security group, as every server)
//! connects to the server's address; an anchor port keeps the VRF on com1, where the
//! single servers are placed (`availability_zone: nova:com1`), so each sample is the warm
//! case. The clock of a server runs from sending the create until `GET /servers/{id}`
//! shows it ACTIVE (polled every 5 ms) and then the peer gets its echo back; the clock of
//! a container from starting `docker run -d` (default bridge) until the host gets its
//! echo back from the container's bridge address (read from the engine's API, the
//! counterpart of reading the server's address). Samples alternate (ABBA); each server
//! or container is deleted, and its namespace gone, outside the clock.
//!
//! The agents keep a warm container per image and flavor (`weft agent --docker-spares`,
//! `weft_runtime::docker_spare`): the first server starts cold and is not counted, and
//! every sample, of either side, starts once com1's warm container has been made again,
//! so that its making is inside neither clock. `WEFT_DOCKER_SPARES=0` measures cold
//! starts only (the agents inherit it).
//!
//! The nodes declare room for every server of the burst (`weft agent --cpus --mem-mb`):
//! both run on this host, whose cores the scheduler would otherwise count twice over.

use crate::cluster::{DevCluster, Services};
use crate::cmd::bench_cluster::{ms, percentile};
use crate::cmd::bench_ports::{Project, answer, quick_neighbours, ready, settle};
use crate::cmd::bench_tasks::build_image;
use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weft_api::Resources;

const TAG: &str = "weft-bench-servers";
const PROJECT: &str = "bench";
const IMAGE: &str = "weft-bench/servers-echo:latest";
/// The port the image's echo server listens on.
const ECHO: u16 = 7007;
/// The image's command: busybox's `nc` answering every connection with `cat`, under a
/// shell that exits on SIGTERM (a PID 1 without a handler ignores it, and every delete
/// would wait for the stop's grace period).
const CMD: &str = r#"["/bin/sh", "-c", "trap 'exit 0' TERM; nc -ll -p 7007 -e /bin/cat & wait"]"#;
/// m1.tiny: 1 vCPU, 512 MiB.
const FLAVOR: &str = "1";
const TINY_CPUS: f64 = 1.0;
const TINY_MB: u64 = 512;
/// The docker engine's socket (the agents' default too).
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

pub const MAX_RUNS: usize = 500;
pub const MAX_PARALLEL: usize = 250;
/// How long one server or container may take to answer before the run fails.
const LIMIT: Duration = Duration::from_secs(60);
/// How long after the first server the bench waits for a warm container.
const WARM_WAIT: Duration = Duration::from_secs(15);
/// How long a burst may take before the run fails.
const BURST_LIMIT: Duration = Duration::from_secs(900);

/// Refuses run counts that measure nothing or would not finish.
pub fn check_bounds(runs: usize, parallel: usize) -> Result<()> {
    if runs == 0 || runs > MAX_RUNS {
        bail!("--runs must be between 1 and {MAX_RUNS} (got {runs})");
    }
    if parallel > MAX_PARALLEL {
        bail!(
            "--parallel must be at most {MAX_PARALLEL} (got {parallel}; 0 skips the burst): \
             every server is a container on this host"
        );
    }
    Ok(())
}

/// What every node declares to the scheduler, in m1.tiny servers: half the burst and
/// two more, so that two nodes hold it (the scheduler packs one node, then fills the
/// other) and com1 the single samples' server.
fn declared(parallel: usize) -> Resources {
    let servers = parallel.div_ceil(2) as u64 + 2;
    Resources {
        cpus: servers as f64 * TINY_CPUS,
        mem_mb: servers * TINY_MB,
        disk_mb: 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Nova,
    Docker,
}

/// When a server or container reached each step, from the start of its clock.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    /// Nova: the create answered (202); Docker: `docker run -d` returned (running).
    accepted: Duration,
    /// Nova: first seen placed (`task_state` past `scheduling`).
    placed: Option<Duration>,
    /// Nova: first seen ACTIVE; Docker: as `accepted`.
    active: Duration,
    /// The echo came back.
    answered: Duration,
}

/// Many created at once.
#[derive(Debug, Clone)]
struct Burst {
    side: Side,
    /// Nova: every create answered; Docker: every `docker run -d` returned.
    accepted: Duration,
    /// Per server or container: ACTIVE (Nova, seen by a list every 20 ms) or running
    /// (`docker run -d` returned).
    active: Vec<Duration>,
    /// Per server or container: its echo came back.
    answered: Vec<Duration>,
}

impl Burst {
    fn all_active(&self) -> Duration {
        self.active.iter().copied().max().unwrap_or_default()
    }

    fn all_answered(&self) -> Duration {
        self.answered.iter().copied().max().unwrap_or_default()
    }
}

/// p50, p99 and mean of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Summary {
    fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        let mean = if samples.is_empty() {
            Duration::ZERO
        } else {
            samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap_or(u32::MAX)
        };
        Self {
            p50: percentile(&mut sorted, 0.5),
            p99: percentile(&mut sorted, 0.99),
            mean,
        }
    }

    fn json(&self) -> Value {
        json!({"p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "mean_ms": ms(self.mean)})
    }
}

/// `a / b`, or NaN when `b` is zero.
fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

pub fn run(runs: usize, parallel: usize, json_out: bool) -> Result<ExitCode> {
    check_bounds(runs, parallel)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let progress = |step: &str| eprintln!("==> {step}");
    engine_get("/_ping")
        .with_context(|| format!("the docker engine does not answer on {DOCKER_SOCKET}"))?;
    progress(&format!(
        "building {IMAGE} (FROM scratch, static busybox, TCP echo on {ECHO})"
    ));
    build_image(IMAGE, Some(CMD))?;
    let containers = Containers;
    containers.remove();
    let nodes = ["com1".to_string(), "com2".to_string()];
    let services = Services { openstack: true };
    let cluster = rt.block_on(DevCluster::start_declared(
        TAG,
        &nodes,
        &progress,
        services,
        &declared(parallel),
    ))?;
    let result = rt.block_on(measure(&cluster, runs, parallel, &progress));
    // The agents leave containers running for their successors: remove them first.
    containers.remove();
    if let Some(dir) = std::env::var_os("WEFT_BENCH_LOGS") {
        keep_logs(&cluster.dir, std::path::Path::new(&dir));
    }
    cluster.stop()?;
    let (nova, docker, bursts) = result?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(runs, &nova, &docker, &bursts))?
        );
    } else {
        print_report(runs, &nova, &docker, &bursts);
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the cluster's logs (controller, agents) to `to`, for the analysis of where
/// the time goes (`WEFT_BENCH_LOGS=DIR`).
fn keep_logs(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::create_dir_all(to);
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log")
            && let Some(name) = path.file_name()
            && let Err(e) = std::fs::copy(&path, to.join(name))
        {
            eprintln!("cannot keep {}: {e}", path.display());
        }
    }
}

fn column(samples: &[Phases], f: impl Fn(&Phases) -> Duration) -> Vec<Duration> {
    samples.iter().map(f).collect()
}

fn report_json(runs: usize, nova: &[Phases], docker: &[Phases], bursts: &[Burst]) -> Value {
    let n = Summary::of(&column(nova, |p| p.answered));
    let d = Summary::of(&column(docker, |p| p.answered));
    let placed: Vec<Duration> = nova.iter().filter_map(|p| p.placed).collect();
    json!({
        "runs": runs,
        "single": {
            "nova": {
                "answered": n.json(),
                "accepted": Summary::of(&column(nova, |p| p.accepted)).json(),
                "placed": Summary::of(&placed).json(),
                "active": Summary::of(&column(nova, |p| p.active)).json(),
            },
            "docker": {
                "answered": d.json(),
                "running": Summary::of(&column(docker, |p| p.active)).json(),
            },
            "ratio_p50": ratio(n.p50, d.p50),
            "ratio_p99": ratio(n.p99, d.p99),
            "goal_ratio_at_most": 0.5,
        },
        "bursts": bursts.iter().map(|b| json!({
            "side": format!("{:?}", b.side).to_lowercase(),
            "count": b.active.len(),
            "accepted_ms": ms(b.accepted),
            "all_active_ms": ms(b.all_active()),
            "all_answered_ms": ms(b.all_answered()),
            "active": Summary::of(&b.active).json(),
            "answered": Summary::of(&b.answered).json(),
        })).collect::<Vec<_>>(),
    })
}

fn print_report(runs: usize, nova: &[Phases], docker: &[Phases], bursts: &[Burst]) {
    let n = Summary::of(&column(nova, |p| p.answered));
    let d = Summary::of(&column(docker, |p| p.answered));
    let p50 = |s: &[Duration]| ms(Summary::of(s).p50);
    let placed: Vec<Duration> = nova.iter().filter_map(|p| p.placed).collect();
    println!(
        "server create -> ACTIVE (running) and answering TCP, {runs} each, alternating (ABBA)"
    );
    println!(
        "  Nova POST /compute/v2.1/servers, peer on com2:  p50 {:.1} ms  p99 {:.1} ms  mean {:.1} ms",
        ms(n.p50),
        ms(n.p99),
        ms(n.mean)
    );
    println!(
        "    p50 of: create answered {:.1} ms, placed {:.1} ms, ACTIVE {:.1} ms",
        p50(&column(nova, |p| p.accepted)),
        p50(&placed),
        p50(&column(nova, |p| p.active)),
    );
    println!(
        "  docker run -d (default bridge), from the host:  p50 {:.1} ms  p99 {:.1} ms  mean {:.1} ms",
        ms(d.p50),
        ms(d.p99),
        ms(d.mean)
    );
    println!(
        "    p50 of: docker run -d returned {:.1} ms",
        p50(&column(docker, |p| p.active)),
    );
    println!(
        "  weft / docker: {:.3} at p50, {:.3} at p99 (goal <= 0.500)",
        ratio(n.p50, d.p50),
        ratio(n.p99, d.p99)
    );
    for b in bursts {
        let what = match b.side {
            Side::Nova => "Nova servers created at once",
            Side::Docker => "docker run -d in parallel   ",
        };
        println!(
            "  {} {what}: all {} {:.2} s, all answering {:.2} s (median one: {:.2} s / {:.2} s; requests done {:.2} s)",
            b.active.len(),
            if b.side == Side::Nova {
                "ACTIVE"
            } else {
                "running"
            },
            b.all_active().as_secs_f64(),
            b.all_answered().as_secs_f64(),
            Summary::of(&b.active).p50.as_secs_f64(),
            Summary::of(&b.answered).p50.as_secs_f64(),
            b.accepted.as_secs_f64(),
        );
    }
    let mean_of = |side: Side, f: fn(&Burst) -> Duration| {
        let v: Vec<Duration> = bursts.iter().filter(|b| b.side == side).map(f).collect();
        Summary::of(&v).mean
    };
    if !bursts.is_empty() {
        println!(
            "  burst weft / docker (means of the rounds): all ACTIVE / all running {:.3}, all answering {:.3}",
            ratio(
                mean_of(Side::Nova, Burst::all_active),
                mean_of(Side::Docker, Burst::all_active)
            ),
            ratio(
                mean_of(Side::Nova, Burst::all_answered),
                mean_of(Side::Docker, Burst::all_answered)
            ),
        );
    }
}

/// Removes the containers of [`IMAGE`] (the baseline's and the servers' the agents left)
/// when dropped.
struct Containers;

impl Containers {
    fn remove(&self) {
        let ids = ours().unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The JSON body of the answer to `GET path` on the engine's socket (HTTP/1.0: the
/// engine answers with the whole body and closes).
fn engine_get(path: &str) -> Result<Value> {
    let mut s = std::os::unix::net::UnixStream::connect(DOCKER_SOCKET)
        .with_context(|| format!("cannot connect to {DOCKER_SOCKET}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .with_context(|| format!("reading the engine's answer to {path}"))?;
    engine_body(&text).with_context(|| format!("the engine's answer to GET {path}"))
}

/// The JSON body of an HTTP/1.x answer of status 200 (`OK` for an empty body).
fn engine_body(text: &str) -> Result<Value> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP answer: {text:.200}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("HTTP {status}: {body:.300}");
    }
    if body.trim() == "OK" {
        return Ok(Value::Null);
    }
    serde_json::from_str(body).with_context(|| format!("not JSON: {body:.200}"))
}

/// A container's address on the default bridge, from `GET /containers/{id}/json`.
fn bridge_ip(inspect: &Value) -> Option<Ipv4Addr> {
    let settings = &inspect["NetworkSettings"];
    [
        &settings["IPAddress"],
        &settings["Networks"]["bridge"]["IPAddress"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().and_then(|s| s.parse().ok()))
}

/// Ids of every container (running or not) of [`IMAGE`] that is a server or the
/// baseline's: the agents' warm containers waiting for a server are not.
fn ours() -> Result<Vec<String>> {
    Ok(of_image()?
        .into_iter()
        .filter(|c| !c.warm)
        .map(|c| c.id)
        .collect())
}

/// How many warm containers of [`IMAGE`] wait for a server, running (the agents make
/// them after the first server of the image and flavor; `weft_runtime::docker_spare`).
fn warm() -> Result<usize> {
    Ok(of_image()?
        .into_iter()
        .filter(|c| c.warm && c.running)
        .count())
}

/// A container of [`IMAGE`].
struct OfImage {
    id: String,
    /// A warm container that took no server yet.
    warm: bool,
    running: bool,
}

fn of_image() -> Result<Vec<OfImage>> {
    let all = engine_get("/containers/json?all=1")?;
    Ok(all
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|c| {
                    let image = c["Image"].as_str().unwrap_or_default();
                    image == IMAGE || image.strip_prefix("docker.io/") == Some(IMAGE)
                })
                .filter_map(|c| {
                    let warm = c["Names"].as_array().is_some_and(|names| {
                        names
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|n| n.trim_start_matches('/').starts_with("weft-_spare-"))
                    });
                    Some(OfImage {
                        id: c["Id"].as_str()?.to_string(),
                        warm,
                        running: c["State"] == "running",
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

/// How a probe tries.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// A new connection attempt this often while none has answered (earlier ones stay
    /// pending: a SYN dropped before the policy was in place would otherwise cost the
    /// kernel's one-second retransmission).
    every: Duration,
    /// How long each attempt may wait for its connection and echo.
    each: Duration,
}

const SINGLE: Probe = Probe {
    every: Duration::from_millis(5),
    each: Duration::from_millis(500),
};
const MANY: Probe = Probe {
    every: Duration::from_millis(100),
    each: Duration::from_millis(300),
};

/// Connects to `ip`:[`ECHO`] (from inside `netns` when given, else from the host) until
/// one connection echoes; the time since `start`.
fn until_echo(
    netns: Option<&str>,
    ip: Ipv4Addr,
    start: Instant,
    probe: Probe,
    limit: Duration,
) -> Result<Duration> {
    let (tx, rx) = mpsc::channel::<bool>();
    loop {
        // The socket belongs to the namespace it is made in; it is used from any thread.
        let made = match netns {
            Some(ns) => weft_fabric::netns::in_netns(ns, tcp_socket)?,
            None => tcp_socket(),
        };
        let fd = made.with_context(|| format!("cannot open a TCP socket in {netns:?}"))?;
        let tx = tx.clone();
        let each = probe.each;
        std::thread::spawn(move || {
            let _ = tx.send(echo(fd, ip, each));
        });
        let next = Instant::now() + probe.every;
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(true) => return Ok(start.elapsed()),
                Ok(false) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if start.elapsed() > limit {
            bail!("{ip}:{ECHO} did not answer within {}s", limit.as_secs());
        }
    }
}

fn tcp_socket() -> nix::Result<std::os::fd::OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// One blocking connection attempt on `fd` (connect bounded by its send timeout) and
/// one echo.
fn echo(fd: std::os::fd::OwnedFd, ip: Ipv4Addr, within: Duration) -> bool {
    let timeout = nix::sys::time::TimeVal::new(
        i64::try_from(within.as_secs()).unwrap_or(1),
        i64::from(within.subsec_micros()),
    );
    if setsockopt(&fd, sockopt::SendTimeout, &timeout).is_err()
        || setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).is_err()
    {
        return false;
    }
    let to = SockaddrIn::from(SocketAddrV4::new(ip, ECHO));
    if connect(fd.as_raw_fd(), &to).is_err() {
        return false;
    }
    let mut stream = TcpStream::from(fd);
    let mut buf = [0u8; 4];
    stream.write_all(b"weft").is_ok() && stream.read_exact(&mut buf).is_ok() && &buf == b"weft"
}

/// Nova and Glance of the project, with its network.
#[derive(Clone)]
struct Nova {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/compute/v2.1`
    compute: String,
    token: String,
    network_id: String,
    image_id: String,
}

impl Nova {
    /// Registers [`IMAGE`] through Glance.
    async fn new(project: &Project) -> Result<Self> {
        let sent = project
            .http
            .post(format!("{}/image/v2/images", project.base))
            .header("X-Auth-Token", &project.os_token)
            .json(&json!({
                "name": "bench-echo", "container_format": "docker", "disk_format": "raw",
                "weft_docker_ref": IMAGE,
            }));
        let image = answer("POST /image/v2/images", sent).await?;
        Ok(Self {
            http: project.http.clone(),
            compute: format!("{}/compute/v2.1", project.base),
            token: project.os_token.clone(),
            network_id: project.network_id.clone(),
            image_id: image["id"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// `POST /servers`: the new server's id.
    async fn create(&self, name: &str, zone: Option<&str>) -> Result<String> {
        let mut server = json!({"server": {
            "name": name, "imageRef": self.image_id, "flavorRef": FLAVOR,
            "networks": [{"uuid": self.network_id}],
        }});
        if let Some(zone) = zone {
            server["server"]["availability_zone"] = json!(zone);
        }
        let sent = self
            .http
            .post(format!("{}/servers", self.compute))
            .header("X-Auth-Token", &self.token)
            .json(&server);
        let made = answer("POST /servers", sent).await?;
        made["server"]["id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("no server id in {made}"))
    }

    async fn show(&self, id: &str) -> Result<Value> {
        let sent = self
            .http
            .get(format!("{}/servers/{id}", self.compute))
            .header("X-Auth-Token", &self.token);
        Ok(answer(&format!("GET /servers/{id}"), sent).await?["server"].take())
    }

    /// `GET /servers/detail?name=` (a substring).
    async fn detail(&self, name: &str) -> Result<Vec<Value>> {
        let sent = self
            .http
            .get(format!("{}/servers/detail", self.compute))
            .query(&[("name", name)])
            .header("X-Auth-Token", &self.token);
        let mut list = answer("GET /servers/detail", sent).await?;
        Ok(match list["servers"].take() {
            Value::Array(servers) => servers,
            _ => Vec::new(),
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let sent = self
            .http
            .delete(format!("{}/servers/{id}", self.compute))
            .header("X-Auth-Token", &self.token);
        answer(&format!("DELETE /servers/{id}"), sent)
            .await
            .map(drop)
    }
}

/// A server's address (`accessIPv4`) and fault message, when it has them.
fn access_ip(server: &Value) -> Option<Ipv4Addr> {
    server["accessIPv4"].as_str().and_then(|s| s.parse().ok())
}

fn fault(server: &Value) -> Option<String> {
    server["fault"]["message"].as_str().map(String::from)
}

/// What the measurements share: the peer's namespace and the endpoint namespaces that
/// stay (peer and anchor).
struct Bench {
    nova: Nova,
    peer: String,
    baseline: Vec<String>,
    /// Whether com1's agent keeps a warm container for the servers: then every sample,
    /// of either side, starts once it is there, so that its making (a container create
    /// and start) is inside neither clock.
    warm: bool,
}

async fn measure(
    cluster: &DevCluster,
    runs: usize,
    parallel: usize,
    progress: &dyn Fn(&str),
) -> Result<(Vec<Phases>, Vec<Phases>, Vec<Burst>)> {
    progress("creating a Keystone user, a token, a network and its subnet; registering the image");
    let project = Project::create(cluster, PROJECT, "10.78.0.0/16").await?;
    let nova = Nova::new(&project).await?;
    progress("starting the peer (com2) and an anchor that keeps the VRF on com1");
    let client = cluster.client();
    let (_, peer) = project.port("bench-peer", "com2", None).await?;
    let peer = ready(&client, peer).await?;
    let (_, anchor) = project.port("bench-anchor", "com1", None).await?;
    ready(&client, anchor).await?;
    quick_neighbours(&peer)?;
    let mut bench = Bench {
        nova,
        peer,
        baseline: weft_fabric::netns::list_with_prefix(&format!("{TAG}-")),
        warm: false,
    };
    progress(
        "one server to warm up (not counted): the first of an image and flavor on a node starts cold",
    );
    let first = bench.server(usize::MAX).await?;
    eprintln!(
        "    the cold one: ACTIVE in {:.1} ms, answering in {:.1} ms",
        ms(first.active),
        ms(first.answered)
    );
    bench.warm = bench.until_warm(WARM_WAIT).await?;
    if bench.warm {
        eprintln!("    com1's agent keeps a warm container for the servers");
    } else {
        eprintln!(
            "    no warm container after {}s: every server starts cold (WEFT_DOCKER_SPARES=0, or no static /bin/busybox)",
            WARM_WAIT.as_secs()
        );
    }

    progress(&format!(
        "{runs} servers (on com1) and {runs} containers, alternating (create -> ACTIVE -> echo from the peer)"
    ));
    let (mut nova, mut docker) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        eprint!("\r    pair {}/{runs}", i + 1);
        let order = if i % 2 == 0 {
            [Side::Nova, Side::Docker]
        } else {
            [Side::Docker, Side::Nova]
        };
        for side in order {
            if bench.warm {
                bench.until_warm(LIMIT).await?;
            }
            match side {
                Side::Nova => nova.push(bench.server(i).await?),
                Side::Docker => docker.push(bench.container(i).await?),
            }
        }
    }
    eprintln!();

    let mut bursts = Vec::new();
    if parallel > 0 {
        for (round, side) in [Side::Nova, Side::Docker, Side::Docker, Side::Nova]
            .into_iter()
            .enumerate()
        {
            progress(&format!(
                "burst {}/4: {parallel} {} at once",
                round + 1,
                match side {
                    Side::Nova => "Nova servers",
                    Side::Docker => "docker run -d",
                }
            ));
            let burst = match side {
                Side::Nova => bench.server_burst(round, parallel).await?,
                Side::Docker => bench.container_burst(round, parallel).await?,
            };
            eprintln!(
                "\r    all {} in {:.2} s, all answering in {:.2} s",
                if side == Side::Nova {
                    "ACTIVE"
                } else {
                    "running"
                },
                burst.all_active().as_secs_f64(),
                burst.all_answered().as_secs_f64()
            );
            bursts.push(burst);
        }
    }
    Ok((nova, docker, bursts))
}

impl Bench {
    /// Whether a warm container of [`IMAGE`] is there within `limit`.
    async fn until_warm(&self, limit: Duration) -> Result<bool> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if warm()? > 0 {
                // The agent takes it as ready once its start is inspected, a few ms
                // after the engine shows it running.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.warm {
            bail!("com1's warm container was not made again within {limit:?}");
        }
        Ok(false)
    }

    /// One server on com1: created, ACTIVE, answering; then deleted outside the clock.
    async fn server(&self, i: usize) -> Result<Phases> {
        let start = Instant::now();
        let id = self
            .nova
            .create(&format!("bench-{i}"), Some("nova:com1"))
            .await?;
        let accepted = start.elapsed();
        let mut placed = None;
        let (ip, active) = loop {
            let server = self.nova.show(&id).await?;
            if placed.is_none() && server["OS-EXT-STS:task_state"] != "scheduling" {
                placed = Some(start.elapsed());
            }
            if server["status"] == "ACTIVE"
                && let Some(ip) = access_ip(&server)
            {
                break (ip, start.elapsed());
            }
            if start.elapsed() > LIMIT {
                bail!(
                    "server {id} is {} after {}s: {}",
                    server["status"],
                    LIMIT.as_secs(),
                    fault(&server).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let peer = self.peer.clone();
        let answered =
            tokio::task::spawn_blocking(move || until_echo(Some(&peer), ip, start, SINGLE, LIMIT))
                .await?
                .with_context(|| format!("server {id}"))?;
        self.nova.delete(&id).await?;
        self.settle().await?;
        Ok(Phases {
            accepted,
            placed,
            active,
            answered,
        })
    }

    /// One container on the default bridge: `docker run -d`, answering the host; then
    /// removed outside the clock.
    async fn container(&self, i: usize) -> Result<Phases> {
        let name = format!("{TAG}-d{i}");
        let phases = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let id = docker_run(&name)?;
            let running = start.elapsed();
            let ip = bridge_ip(&engine_get(&format!("/containers/{id}/json"))?)
                .ok_or_else(|| anyhow!("container {name} has no bridge address"))?;
            let answered = until_echo(None, ip, start, SINGLE, LIMIT)
                .with_context(|| format!("container {name}"))?;
            Ok::<_, anyhow::Error>(Phases {
                accepted: running,
                placed: None,
                active: running,
                answered,
            })
        })
        .await??;
        self.remove_containers()?;
        Ok(phases)
    }

    /// `parallel` servers created at once (unpinned: the scheduler spreads them), until
    /// every one is ACTIVE and answers the peer; then deleted.
    async fn server_burst(&self, round: usize, parallel: usize) -> Result<Burst> {
        let prefix = format!("burst-{round}-");
        let start = Instant::now();
        let mut creates = tokio::task::JoinSet::new();
        for k in 0..parallel {
            let (nova, name) = (self.nova.clone(), format!("{prefix}{k}"));
            creates.spawn(async move { nova.create(&name, None).await });
        }
        let mut ids = Vec::with_capacity(parallel);
        let mut failed = None;
        while let Some(made) = creates.join_next().await {
            match made? {
                Ok(id) => ids.push(id),
                Err(e) => failed = Some(e),
            }
        }
        let accepted = start.elapsed();
        let outcome = match failed {
            Some(e) => Err(e),
            None => self.until_all_answer(&prefix, parallel, start).await,
        };
        // Outside the clock, whatever happened: delete what was made.
        for id in &ids {
            self.nova.delete(id).await?;
        }
        let (active, answered) = outcome?;
        self.settle().await?;
        Ok(Burst {
            side: Side::Nova,
            accepted,
            active,
            answered,
        })
    }

    /// Lists the burst's servers every 20 ms; each that is ACTIVE gets a probe from the
    /// peer. Per server: ACTIVE and answered, from `start`.
    async fn until_all_answer(
        &self,
        prefix: &str,
        parallel: usize,
        start: Instant,
    ) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let mut active: BTreeMap<String, Duration> = BTreeMap::new();
        let mut probes = tokio::task::JoinSet::new();
        let mut faults = BTreeMap::new();
        while active.len() < parallel {
            for server in self.nova.detail(prefix).await? {
                let id = server["id"].as_str().unwrap_or_default().to_string();
                if let Some(f) = fault(&server) {
                    faults.insert(id.clone(), f);
                }
                if server["status"] != "ACTIVE" || active.contains_key(&id) {
                    continue;
                }
                let Some(ip) = access_ip(&server) else {
                    continue;
                };
                active.insert(id.clone(), start.elapsed());
                let peer = self.peer.clone();
                probes.spawn_blocking(move || {
                    until_echo(Some(&peer), ip, start, MANY, BURST_LIMIT)
                        .with_context(|| format!("server {id}"))
                });
            }
            eprint!("\r    {}/{parallel} ACTIVE", active.len());
            if start.elapsed() > BURST_LIMIT {
                bail!(
                    "{} of {parallel} servers ACTIVE after {}s; faults: {faults:?}",
                    active.len(),
                    BURST_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut answered = Vec::with_capacity(parallel);
        while let Some(probe) = probes.join_next().await {
            answered.push(probe??);
            eprint!("\r    {}/{parallel} answering", answered.len());
        }
        Ok((active.into_values().collect(), answered))
    }

    /// `parallel` `docker run -d` at once, each then probed from the host.
    async fn container_burst(&self, round: usize, parallel: usize) -> Result<Burst> {
        let names: Vec<String> = (0..parallel)
            .map(|k| format!("{TAG}-b{round}-{k}"))
            .collect();
        let outcome = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            std::thread::scope(|scope| {
                let runs: Vec<_> = names
                    .iter()
                    .map(|name| {
                        scope.spawn(move || {
                            let id = docker_run(name)?;
                            let running = start.elapsed();
                            let inspect = engine_get(&format!("/containers/{id}/json"))?;
                            let ip = bridge_ip(&inspect)
                                .ok_or_else(|| anyhow!("container {name} has no bridge address"))?;
                            let answered = until_echo(None, ip, start, MANY, BURST_LIMIT)
                                .with_context(|| format!("container {name}"))?;
                            Ok::<_, anyhow::Error>((running, answered))
                        })
                    })
                    .collect();
                let mut done = Vec::with_capacity(runs.len());
                for run in runs {
                    done.push(
                        run.join()
                            .map_err(|_| anyhow!("a docker run thread panicked"))??,
                    );
                }
                Ok::<_, anyhow::Error>(done)
            })
        })
        .await?;
        self.remove_containers()?;
        let done = outcome?;
        Ok(Burst {
            side: Side::Docker,
            accepted: done.iter().map(|d| d.0).max().unwrap_or_default(),
            active: done.iter().map(|d| d.0).collect(),
            answered: done.iter().map(|d| d.1).collect(),
        })
    }

    /// Outside the clock: every container of the image gone (the servers' too), no
    /// endpoint namespace left but the peer's and the anchor's, the peer's neighbour
    /// cache flushed.
    async fn settle(&self) -> Result<()> {
        let start = Instant::now();
        while !ours()?.is_empty() {
            if start.elapsed() > LIMIT {
                bail!("deleted servers' containers are still there after {LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        settle(TAG, &self.peer, &self.baseline).await
    }

    /// `docker rm -f` of the baseline's containers, and the host's neighbour entries on
    /// Docker's bridge flushed (the next container may get the address with another MAC).
    fn remove_containers(&self) -> Result<()> {
        let ids = ours()?;
        if !ids.is_empty() {
            let status = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .status()
                .context("cannot run docker rm")?;
            if !status.success() {
                bail!("docker rm -f failed: {status}");
            }
        }
        let _ = Command::new("ip")
            .args(["neigh", "flush", "dev", "docker0"])
            .status();
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
}

/// `docker run -d --name NAME IMAGE` on the default bridge: the container's id.
fn docker_run(name: &str) -> Result<String> {
    let out = Command::new("docker")
        .args(["run", "-d", "--name", name, IMAGE])
        .stdin(Stdio::null())
        .output()
        .context("cannot run docker")?;
    if !out.status.success() {
        bail!(
            "docker run {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_absurd_values() {
        assert!(check_bounds(20, 100).is_ok());
        assert!(check_bounds(1, 0).is_ok());
        assert!(check_bounds(MAX_RUNS, MAX_PARALLEL).is_ok());
        assert!(check_bounds(0, 100).is_err());
        assert!(check_bounds(MAX_RUNS + 1, 100).is_err());
        assert!(check_bounds(20, MAX_PARALLEL + 1).is_err());
    }

    #[test]
    fn two_nodes_hold_the_burst() {
        for parallel in [0, 1, 99, 100, MAX_PARALLEL] {
            let r = declared(parallel);
            let fits =
                |r: &Resources| ((r.cpus / TINY_CPUS) as usize).min((r.mem_mb / TINY_MB) as usize);
            assert!(2 * fits(&r) >= parallel, "{parallel}");
            assert!(fits(&r) >= 1, "{parallel}");
            // Not the whole burst on one node (bin-packing would put it all there).
            assert!(fits(&r) < parallel.max(4), "{parallel}");
        }
    }

    #[test]
    fn summaries_and_ratios() {
        let ms = Duration::from_millis;
        let s = Summary::of(&[ms(30), ms(10), ms(20)]);
        assert_eq!((s.p50, s.p99, s.mean), (ms(20), ms(30), ms(20)));
        assert_eq!(Summary::of(&[]).mean, Duration::ZERO);
        assert!((ratio(ms(50), ms(200)) - 0.25).abs() < 1e-9);
        assert!(ratio(ms(1), Duration::ZERO).is_nan());
        let b = Burst {
            side: Side::Nova,
            accepted: ms(5),
            active: vec![ms(3), ms(9)],
            answered: vec![ms(12), ms(4)],
        };
        assert_eq!((b.all_active(), b.all_answered()), (ms(9), ms(12)));
    }

    #[test]
    fn engine_answers_and_bridge_addresses() {
        let ok = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"NetworkSettings\":{\"IPAddress\":\"\",\"Networks\":{\"bridge\":{\"IPAddress\":\"172.17.0.3\"}}}}";
        let v = engine_body(ok).expect("parsed");
        assert_eq!(bridge_ip(&v), Some(Ipv4Addr::new(172, 17, 0, 3)));
        let old = json!({"NetworkSettings": {"IPAddress": "172.17.0.2"}});
        assert_eq!(bridge_ip(&old), Some(Ipv4Addr::new(172, 17, 0, 2)));
        assert_eq!(bridge_ip(&json!({})), None);
        assert!(engine_body("HTTP/1.0 200 OK\r\n\r\nOK").is_ok());
        assert!(engine_body("HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"no\"}").is_err());
        assert!(engine_body("garbage").is_err());
    }

    #[test]
    fn servers_show_their_address_and_fault() {
        let s = json!({"accessIPv4": "10.78.0.5", "fault": {"message": "No valid host"}});
        assert_eq!(access_ip(&s), Some(Ipv4Addr::new(10, 78, 0, 5)));
        assert_eq!(fault(&s).as_deref(), Some("No valid host"));
        assert_eq!(access_ip(&json!({"accessIPv4": ""})), None);
    }
}
