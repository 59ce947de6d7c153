//! `weft agent --server URL[,URL...] --join-token T --node NAME`: the node agent.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_agent::AgentConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The controller's URL, or the URLs of several controllers of one cluster separated
    /// by commas: the agent moves to the next when one is unreachable or fails (5xx), and
    /// its watches resume there from the index they hold.
    #[arg(long, env = "WEFT_SERVER", value_name = "URL[,URL...]")]
    server: String,
    /// The join token (in the controller's data directory, `join.token`).
    #[arg(long, env = "WEFT_JOIN_TOKEN")]
    join_token: String,
    /// This node's name.
    #[arg(long)]
    node: String,
    /// The node's network namespace (default: the host's own).
    #[arg(long)]
    netns: Option<String>,
    /// The node's address on the underlay, where VXLAN tunnels end.
    #[arg(long)]
    underlay_ip: Ipv4Addr,
    /// Prefix of the namespaces this agent creates (default `weft-<node>`).
    #[arg(long)]
    netns_prefix: Option<String>,
    /// A label `key=value` for placement constraints (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Where the last applied state is kept.
    #[arg(long, default_value = "/var/lib/weft/agent")]
    state_dir: PathBuf,
    /// Keep spare processes, already in a cgroup, for process tasks to start on (cgroup
    /// v1: joining a cgroup costs 5-20 ms there); `false` starts each task directly.
    #[arg(long, env = "WEFT_TASK_SPARES", default_value_t = true, action = clap::ArgAction::Set)]
    task_spares: bool,
    /// Warm containers per image and limits that Docker tasks start on (the engine's
    /// container start, ~90% of a cold start, is paid ahead); 0 starts every container
    /// cold. See `weft_runtime::docker_spare` for what differs.
    #[arg(long, env = "WEFT_DOCKER_SPARES", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=16))]
    docker_spares: u8,
    /// The statically linked busybox that is a warm container's first process (Debian's
    /// busybox-static). Default: /bin/busybox when it is static; otherwise no warm
    /// containers.
    #[arg(long, value_name = "PATH")]
    docker_spare_shell: Option<PathBuf>,
    /// Where DNS at the gateways sends names outside weft's domains (repeatable,
    /// `IP:PORT`); without one they are refused.
    #[arg(long = "dns-recursor", value_name = "ADDR")]
    dns_recursors: Vec<std::net::SocketAddr>,
    /// Do not serve DNS and Consul's HTTP API at the VRF gateways.
    #[arg(long)]
    no_gateway_discovery: bool,
    /// Where the agent's own API listens (its tasks' output, which controllers read for
    /// Nova's console): `IP:PORT`, or `off`. Default: the underlay address, port 7947,
    /// for a node in the host's namespace; `127.0.0.1` on any free port for a node in
    /// its own namespace (dev and test clusters, whose controllers share the host).
    #[arg(long, value_name = "IP:PORT|off", value_parser = parse_api_listen)]
    api_listen: Option<ApiListen>,
    /// The URL controllers use for the agent's API, when the listening address is not
    /// reachable as it is (`0.0.0.0`, NAT). Default: `http://<listening address>`.
    #[arg(long, value_name = "URL")]
    api_advertise: Option<String>,
    /// Declare this many CPUs to the scheduler instead of those detected (nodes of a
    /// dev or benchmark cluster share one host; a task's limits are still enforced).
    #[arg(long, value_parser = parse_cpus)]
    cpus: Option<f64>,
    /// Declare this much memory (MiB) instead of the host's total.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    mem_mb: Option<u64>,
}

/// `--api-listen`: an address, or no API.
#[derive(Debug, Clone, Copy)]
enum ApiListen {
    On(std::net::SocketAddr),
    Off,
}

fn parse_api_listen(text: &str) -> Result<ApiListen, String> {
    if text == "off" {
        return Ok(ApiListen::Off);
    }
    text.parse()
        .map(ApiListen::On)
        .map_err(|_| format!("{text:?} is not IP:PORT or off"))
}

/// The agent's API address, and whether it was asked for: as asked, else the
/// underlay's port 7947 for a node in the host's namespace, else loopback on a free port.
fn api_listen(
    asked: Option<ApiListen>,
    node_netns: Option<&str>,
    underlay: Ipv4Addr,
) -> Option<(std::net::SocketAddr, bool)> {
    match asked {
        Some(ApiListen::On(addr)) => Some((addr, true)),
        Some(ApiListen::Off) => None,
        None if node_netns.is_none() => Some(((underlay, 7947).into(), false)),
        None => Some(((Ipv4Addr::LOCALHOST, 0).into(), false)),
    }
}

/// The warm containers' shell and count: an explicit shell must be a static executable;
/// the default one is used only when it is.
fn docker_spare_shell(per_key: u8, explicit: Option<PathBuf>) -> Result<Option<(PathBuf, usize)>> {
    if per_key == 0 {
        return Ok(None);
    }
    let is_static = |path: &std::path::Path| {
        std::fs::read(path).is_ok_and(|b| weft_runtime::docker_spare::is_static_elf(&b))
    };
    match explicit {
        Some(path) if is_static(&path) => Ok(Some((path, usize::from(per_key)))),
        Some(path) => anyhow::bail!(
            "--docker-spare-shell {}: not a statically linked executable (install busybox-static)",
            path.display()
        ),
        None => {
            let default = PathBuf::from("/bin/busybox");
            if is_static(&default) {
                Ok(Some((default, usize::from(per_key))))
            } else {
                tracing::info!(
                    "no static /bin/busybox: Docker tasks start cold (no warm containers)"
                );
                Ok(None)
            }
        }
    }
}

/// A declared CPU count: positive and at most 65,536.
fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 65_536.0 => Ok(n),
        _ => Err(format!(
            "--cpus {text:?}: a number above 0 and at most 65536"
        )),
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("label {text:?} must be key=value"))
}

pub fn run(args: Args) -> Result<ExitCode> {
    crate::preflight::check("agent", &crate::preflight::agent())?;
    let labels: BTreeMap<String, String> = args.labels.into_iter().collect();
    let api_listen = api_listen(args.api_listen, args.netns.as_deref(), args.underlay_ip);
    let mut registration = weft_agent::registration(
        &args.node,
        args.underlay_ip,
        args.netns,
        args.netns_prefix,
        labels,
        &args.state_dir,
    );
    if let Some(cpus) = args.cpus {
        registration.resources.cpus = cpus;
    }
    if let Some(mem_mb) = args.mem_mb {
        registration.resources.mem_mb = mem_mb;
    }
    let mut config = AgentConfig::new(args.server, args.join_token, registration, &args.state_dir);
    if args.no_gateway_discovery {
        config.gateway = None;
    } else if let Some(gateway) = &mut config.gateway {
        gateway.recursors = args.dns_recursors;
    }
    if args.task_spares {
        config.task_shim =
            Some(std::env::current_exe().context("cannot find the agent's own executable")?);
    }
    config.docker_spares = docker_spare_shell(args.docker_spares, args.docker_spare_shell)?;
    config.api = api_listen.map(|(listen, required)| weft_agent::ApiConfig {
        listen,
        advertise: args.api_advertise,
        required,
    });
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let shutdown = async {
            if let Err(e) = super::dev::wait_for_signal().await {
                tracing::warn!("cannot watch signals: {e:#}");
                std::future::pending::<()>().await;
            }
        };
        weft_agent::run(config, shutdown)
            .await
            .context("the agent stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_api_listens_where_controllers_reach_it() {
        let underlay = Ipv4Addr::new(10, 255, 0, 3);
        let at = |asked, netns| {
            api_listen(asked, netns, underlay).map(|(a, required)| (a.to_string(), required))
        };
        assert_eq!(at(None, None), Some(("10.255.0.3:7947".into(), false)));
        assert_eq!(
            at(None, Some("weft-dev-n1")),
            Some(("127.0.0.1:0".into(), false))
        );
        assert_eq!(at(Some(ApiListen::Off), None), None);
        let asked = parse_api_listen("0.0.0.0:9000").unwrap();
        assert_eq!(at(Some(asked), None), Some(("0.0.0.0:9000".into(), true)));
        assert!(parse_api_listen("nowhere").is_err());
    }

    #[test]
    fn declared_cpus_are_bounded() {
        assert_eq!(parse_cpus("64"), Ok(64.0));
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "65537", "x"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }
}
