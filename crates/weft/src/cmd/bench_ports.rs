//! `weft bench ports`: from creating a port bound to a node to the port passing traffic,
//! through Neutron (`POST /network/v2.0/ports` with `binding:host_id`) against the same
//! through weft's own endpoint API (`POST /v1/endpoints`), in one run on one two-node dev
//! cluster.
//!
//! Both make an endpoint on com1 in the same EPG (the Neutron network's). A peer port on
//! com2 pings the new address (raw ICMP echo every 2 ms from the peer's namespace, whose
//! neighbour resolution retries every 5 ms) until the first reply, which is when the
//! clock stops. An anchor port keeps the VRF on com1, so each sample is the usual warm
//! case. Peer and anchor are Neutron ports, so in the project's default security group:
//! its members (every Neutron port) may reach each other, and weft's endpoints have no
//! groups. Samples alternate between the two APIs (ABBA order), and each port is deleted,
//! its namespace gone and the peer's neighbour cache flushed, outside the clock, before
//! the next.

use crate::cluster::{DevCluster, Services};
use crate::cmd::bench_cluster::{ms, percentile};
use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto,
    setsockopt, socket, sockopt,
};
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use weft_api::{Client, EndpointState};

const TAG: &str = "weft-bench-ports";
const PROJECT: &str = "bench";
/// How long one port may take to pass traffic before the run fails.
const LIMIT: Duration = Duration::from_secs(10);
/// The peer's and the anchor's index (their addresses are outside the samples').
const PEER: usize = 20_000;
/// At most this many ports through each API (each has an address of its own).
const MAX_RUNS: usize = 10_000;

pub fn run(runs: usize) -> Result<ExitCode> {
    if runs > MAX_RUNS {
        bail!("at most {MAX_RUNS} runs");
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let progress = |step: &str| eprintln!("==> {step}");
    let nodes = ["com1".to_string(), "com2".to_string()];
    let services = Services { openstack: true };
    let cluster = rt.block_on(DevCluster::start_with(TAG, &nodes, &progress, services))?;
    let result = rt.block_on(measure(&cluster, runs, &progress));
    cluster.stop()?;
    let (mut neutron, mut weft) = result?;
    let total = |s: &[Duration]| s.iter().sum::<Duration>();
    let (n_sum, w_sum) = (total(&neutron), total(&weft));
    let (n50, n99) = (
        percentile(&mut neutron, 0.5),
        percentile(&mut neutron, 0.99),
    );
    let (w50, w99) = (percentile(&mut weft, 0.5), percentile(&mut weft, 0.99));
    println!(
        "port create (bound to com1) -> first ping answered from com2, {runs} ports each, alternating"
    );
    println!(
        "  Neutron POST /network/v2.0/ports:  p50 {:.1} ms  p99 {:.1} ms  mean {:.1} ms",
        ms(n50),
        ms(n99),
        ms(n_sum) / runs as f64
    );
    println!(
        "  weft POST /v1/endpoints:           p50 {:.1} ms  p99 {:.1} ms  mean {:.1} ms",
        ms(w50),
        ms(w99),
        ms(w_sum) / runs as f64
    );
    if std::env::var_os("WEFT_BENCH_SAMPLES").is_some() {
        let show = |s: &[Duration]| {
            s.iter()
                .map(|d| format!("{:.1}", ms(*d)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("  Neutron samples (ms, sorted): {}", show(&neutron));
        println!("  weft samples (ms, sorted):    {}", show(&weft));
    }
    println!(
        "  Neutron's rate / weft's: {:.3} at the median, {:.3} overall (goal >= 0.900)",
        ms(w50) / ms(n50),
        w_sum.as_secs_f64() / n_sum.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Raw ICMP echo from inside one namespace (the socket is made there, then used from
/// any thread).
struct Pinger {
    fd: OwnedFd,
    ident: u16,
    seq: u16,
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pinger {
    fn new(netns: &str) -> Result<Self> {
        let fd = weft_fabric::netns::in_netns(netns, || {
            socket(
                AddressFamily::Inet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::Icmp,
            )
        })?
        .with_context(|| format!("cannot open an ICMP socket in {netns}"))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, 500),
        )
        .context("cannot set the ICMP socket's timeout")?;
        Ok(Self {
            fd,
            ident: (std::process::id() as u16) ^ 0x7e57,
            seq: 0,
        })
    }

    /// Sends an echo to `to` every 2 ms until one is answered; the time that took.
    fn until_answered(&mut self, to: Ipv4Addr, start: Instant) -> Result<Duration> {
        let dest = SockaddrIn::from(std::net::SocketAddrV4::new(to, 0));
        let mut buf = [0u8; 1500];
        loop {
            self.seq = self.seq.wrapping_add(1);
            let mut pkt = [8u8, 0, 0, 0, 0, 0, 0, 0, b'w', b'e', b'f', b't'];
            pkt[4..6].copy_from_slice(&self.ident.to_be_bytes());
            pkt[6..8].copy_from_slice(&self.seq.to_be_bytes());
            let sum = checksum(&pkt);
            pkt[2..4].copy_from_slice(&sum.to_be_bytes());
            // EHOSTUNREACH while the neighbour is unresolved: keep trying.
            let _ = sendto(self.fd.as_raw_fd(), &pkt, &dest, MsgFlags::empty());
            let next = Instant::now() + Duration::from_millis(2);
            while Instant::now() < next {
                let Ok((n, _)) = recvfrom::<SockaddrIn>(self.fd.as_raw_fd(), &mut buf) else {
                    continue;
                };
                if n < 28 {
                    continue;
                }
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                if src == to
                    && n >= ihl + 8
                    && buf[ihl] == 0
                    && buf[ihl + 4..ihl + 6] == self.ident.to_be_bytes()
                {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > LIMIT {
                bail!("{to} did not answer within {}s", LIMIT.as_secs());
            }
        }
    }
}

/// The two APIs under test, each with what it needs.
struct Apis {
    project: Project,
    /// weft's API and admin token.
    api: String,
    admin: String,
}

/// A project's Keystone token and a network with one subnet, made through Neutron: what
/// the OpenStack benchmarks (`weft bench ports`, `weft bench servers`) start from.
pub(crate) struct Project {
    pub http: reqwest::Client,
    /// The OpenStack listener (`http://127.0.0.1:PORT`).
    pub base: String,
    /// `http://127.0.0.1:PORT/network/v2.0`
    pub neutron: String,
    /// A Keystone token of the project.
    pub os_token: String,
    pub network_id: String,
    /// The Neutron network's EPG (`bench/openstack/net-...`).
    pub epg: String,
}

#[derive(Debug, Clone, Copy)]
enum Via {
    Neutron,
    Weft,
}

/// JSON of a successful answer, or an error naming the request and the answer.
pub(crate) async fn answer(what: &str, sent: reqwest::RequestBuilder) -> Result<Value> {
    let resp = sent.send().await.with_context(|| what.to_string())?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| what.to_string())?;
    if !status.is_success() {
        bail!("{what}: {status}: {body}");
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: {body}"))
}

impl Apis {
    /// Creates port `i` on `node`; returns its id (Neutron) or name (weft) and address.
    /// Each port has an address of its own (never one a deleted port had, which a
    /// namespace the kernel is still tearing down could answer for).
    async fn create(&self, via: Via, i: usize, node: &str) -> Result<(String, Ipv4Addr)> {
        let third = |base: usize| u8::try_from(base + i / 200).unwrap_or(u8::MAX);
        let fourth = u8::try_from(10 + i % 200).unwrap_or(u8::MAX);
        let address = match via {
            Via::Neutron => Ipv4Addr::new(10, 77, third(10), fourth),
            Via::Weft => Ipv4Addr::new(10, 77, third(130), fourth),
        };
        match via {
            Via::Neutron => {
                self.project
                    .port(&format!("bench-n{i}"), node, Some(address))
                    .await
            }
            Via::Weft => {
                let name = format!("bench-w{i}");
                let endpoint = json!({
                    "name": name, "epg": self.project.epg, "node": node,
                    "ip": address.to_string(),
                });
                let sent = self
                    .project
                    .http
                    .post(format!("{}/v1/endpoints", self.api))
                    .bearer_auth(&self.admin)
                    .json(&endpoint);
                let made = answer("POST /v1/endpoints", sent).await?;
                let ip = ipv4(&made["ip"]).ok_or_else(|| anyhow!("no IPv4 address for {name}"))?;
                Ok((name, ip))
            }
        }
    }

    async fn delete(&self, via: Via, id: &str) -> Result<()> {
        let sent = match via {
            Via::Neutron => self
                .project
                .http
                .delete(format!("{}/ports/{id}", self.project.neutron))
                .header("X-Auth-Token", &self.project.os_token),
            Via::Weft => self
                .project
                .http
                .delete(format!("{}/v1/endpoints/{id}", self.api))
                .bearer_auth(&self.admin),
        };
        answer(&format!("deleting {id}"), sent).await.map(drop)
    }
}

fn ipv4(value: &Value) -> Option<Ipv4Addr> {
    value.as_str().and_then(|ip| ip.parse().ok())
}

impl Project {
    /// Keystone user `bench` of project `project`, its token, and a network `bench` with
    /// the subnet `cidr`.
    pub(crate) async fn create(cluster: &DevCluster, project: &str, cidr: &str) -> Result<Self> {
        let auth_url = cluster.openstack_user("bench", "bench", project).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot make an HTTP client")?;
        let auth = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "bench", "password": "bench", "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
        }});
        let resp = http
            .post(format!("{auth_url}/auth/tokens"))
            .json(&auth)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("POST /v3/auth/tokens")?;
        let os_token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("Keystone answered no X-Subject-Token"))?
            .to_string();
        let base = cluster.openstack.clone().unwrap_or_default();
        let neutron = format!("{base}/network/v2.0");
        let sent = http
            .post(format!("{neutron}/networks"))
            .header("X-Auth-Token", &os_token)
            .json(&json!({"network": {"name": "bench"}}));
        let network = answer("POST /v2.0/networks", sent).await?;
        let network_id = network["network"]["id"].as_str().unwrap_or_default();
        let epg = network["network"]["weft:epg"].as_str().unwrap_or_default();
        let sent = http
            .post(format!("{neutron}/subnets"))
            .header("X-Auth-Token", &os_token)
            .json(&json!({"subnet": {
                "network_id": network_id, "ip_version": 4, "cidr": cidr}}));
        answer("POST /v2.0/subnets", sent).await?;
        Ok(Self {
            http,
            base,
            neutron,
            os_token,
            network_id: network_id.to_string(),
            epg: epg.to_string(),
        })
    }

    /// A Neutron port `name` of the network bound to `node` (in the project's default
    /// security group), at `address` or one IPAM picks: its id and address.
    pub(crate) async fn port(
        &self,
        name: &str,
        node: &str,
        address: Option<Ipv4Addr>,
    ) -> Result<(String, Ipv4Addr)> {
        let mut port = json!({"port": {
            "name": name,
            "network_id": self.network_id,
            "binding:host_id": node,
        }});
        if let Some(address) = address {
            port["port"]["fixed_ips"] = json!([{"ip_address": address.to_string()}]);
        }
        let sent = self
            .http
            .post(format!("{}/ports", self.neutron))
            .header("X-Auth-Token", &self.os_token)
            .json(&port);
        let made = answer("POST /v2.0/ports", sent).await?;
        let id = made["port"]["id"].as_str().unwrap_or_default().to_string();
        let ip = ipv4(&made["port"]["fixed_ips"][0]["ip_address"])
            .ok_or_else(|| anyhow!("no IPv4 address in the answer for port {name}"))?;
        Ok((id, ip))
    }
}

/// Makes the endpoint namespace `netns` retry neighbour resolution every 5 ms (not every
/// second), so that an ARP request sent before its target existed costs 5 ms, not 1 s.
pub(crate) fn quick_neighbours(netns: &str) -> Result<()> {
    for (key, value) in [
        ("net/ipv4/neigh/weft0/retrans_time_ms", "5"),
        ("net/ipv4/neigh/weft0/mcast_solicit", "200"),
        ("net/ipv4/neigh/weft0/ucast_solicit", "200"),
    ] {
        weft_fabric::netns::sysctl(netns, key, value)?;
    }
    Ok(())
}

/// Waits until the endpoint with address `ip` is reported ready by its node; its
/// namespace.
pub(crate) async fn ready(client: &Client, ip: Ipv4Addr) -> Result<String> {
    let start = Instant::now();
    loop {
        let endpoints = client.endpoints().await?;
        let found = endpoints.iter().find(|e| e.ip == std::net::IpAddr::V4(ip));
        if let Some(e) = found
            && e.status.state == EndpointState::Ready
        {
            return Ok(e.netns.clone());
        }
        if start.elapsed() > LIMIT {
            bail!("the endpoint of {ip} is not ready after {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The project's network and subnet, a Keystone token, the peer and the anchor.
async fn setup(cluster: &DevCluster, progress: &dyn Fn(&str)) -> Result<(Apis, String)> {
    progress("creating a Keystone user, a token, a network and its subnet");
    let apis = Apis {
        project: Project::create(cluster, PROJECT, "10.77.0.0/16").await?,
        api: cluster.api.clone(),
        admin: cluster.admin_token.clone(),
    };
    progress("starting the peer (com2) and an anchor that keeps the VRF on com1");
    // Both Neutron ports, in the project's default security group (as every port made
    // through Neutron without groups), whose members may reach each other; weft's
    // endpoints have no groups, so the peer reaches both kinds.
    let client = cluster.client();
    let (_, peer) = apis.create(Via::Neutron, PEER, "com2").await?;
    let peer = ready(&client, peer).await?;
    let (_, anchor) = apis.create(Via::Neutron, PEER + 1, "com1").await?;
    ready(&client, anchor).await?;
    quick_neighbours(&peer)?;
    Ok((apis, peer))
}

async fn measure(
    cluster: &DevCluster,
    runs: usize,
    progress: &dyn Fn(&str),
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (apis, peer) = setup(cluster, progress).await?;
    let mut pinger = Pinger::new(&peer)?;
    let baseline = weft_fabric::netns::list_with_prefix(&format!("{TAG}-"));
    let (mut neutron, mut weft) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    progress(&format!(
        "{runs} ports through each API, alternating (create -> first echo reply)"
    ));
    for i in 0..runs {
        eprint!("\r    pair {}/{runs}", i + 1);
        // ABBA: neither API always goes first.
        let order = if i % 2 == 0 {
            [Via::Neutron, Via::Weft]
        } else {
            [Via::Weft, Via::Neutron]
        };
        for via in order {
            let start = Instant::now();
            let (id, ip) = apis.create(via, i, "com1").await?;
            let took = tokio::task::block_in_place(|| pinger.until_answered(ip, start))
                .with_context(|| format!("port {id} ({via:?})"))?;
            match via {
                Via::Neutron => neutron.push(took),
                Via::Weft => weft.push(took),
            }
            apis.delete(via, &id).await?;
            settle(TAG, &peer, &baseline).await?;
        }
    }
    eprintln!();
    Ok((neutron, weft))
}

/// Outside the clock: waits until no endpoint namespace of cluster `tag` is left but
/// those in `baseline` (the peer's and the anchor's), then flushes the peer's neighbour
/// cache (a new port may get the address with another MAC).
pub(crate) async fn settle(tag: &str, peer: &str, baseline: &[String]) -> Result<()> {
    let start = Instant::now();
    loop {
        let extra: Vec<String> = weft_fabric::netns::list_with_prefix(&format!("{tag}-"))
            .into_iter()
            .filter(|ns| ns.contains("-ep-") && !baseline.contains(ns))
            .collect();
        if extra.is_empty() {
            break;
        }
        if start.elapsed() > LIMIT {
            bail!("a deleted port's namespace is still there after {LIMIT:?}: {extra:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flushed = Command::new("ip")
        .args(["-n", peer, "neigh", "flush", "dev", "weft0"])
        .status()
        .context("cannot run ip")?;
    if !flushed.success() {
        bail!("ip -n {peer} neigh flush failed: {flushed}");
    }
    // The kernel finishes tearing down a namespace's devices in the background.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_checksum_is_the_internet_checksum() {
        // RFC 1071's example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }
}
