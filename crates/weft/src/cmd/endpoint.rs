//! `weft endpoint create|set|rm`

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow, bail};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_api::{AddressPair, EndpointRequest, EndpointState, EndpointUpdate, MacAddr};
use weft_model::EpgPath;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create an endpoint in an EPG on a node; its address comes from the bridge domain.
    Create {
        name: String,
        #[arg(long)]
        epg: EpgPath,
        #[arg(long)]
        node: String,
        #[arg(long)]
        ip: Option<IpAddr>,
        #[arg(long)]
        mac: Option<MacAddr>,
        /// An extra source address the port may use, `IP` or `IP,MAC` (repeatable).
        #[arg(long = "allowed-address-pair", value_parser = parse_pair)]
        allowed_address_pairs: Vec<AddressPair>,
        /// A security group of the tenant that governs the port (repeatable); traffic
        /// to and from it must then match a group's rule as well as the contracts.
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        /// Let the port send from any address (no anti-spoofing, no security groups).
        #[arg(long, conflicts_with = "security_groups")]
        no_port_security: bool,
        /// Wait until the node has installed the endpoint's port and policy.
        #[arg(long)]
        wait: bool,
    },
    /// Change a live endpoint's port guard: allowed address pairs, security groups,
    /// port security. What is not given stays.
    Set {
        name: String,
        /// Replaces the pairs (repeatable); `--no-allowed-address-pairs` clears them.
        #[arg(long = "allowed-address-pair", value_parser = parse_pair)]
        allowed_address_pairs: Vec<AddressPair>,
        #[arg(long, conflicts_with = "allowed_address_pairs")]
        no_allowed_address_pairs: bool,
        /// Replaces the groups (repeatable).
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        /// Takes the port out of security groups (contracts alone govern it).
        #[arg(long, conflicts_with = "security_groups")]
        no_security_groups: bool,
        /// `on` or `off`.
        #[arg(long, value_parser = ["on", "off"])]
        port_security: Option<String>,
    },
    /// Delete an endpoint.
    Rm { name: String },
}

fn parse_pair(text: &str) -> Result<AddressPair, String> {
    let (ip, mac) = match text.split_once(',') {
        Some((ip, mac)) => (ip, Some(mac.parse::<MacAddr>()?)),
        None => (text, None),
    };
    let ip = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    Ok(AddressPair { ip, mac })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    match args.action {
        Action::Create {
            name,
            epg,
            node,
            ip,
            mac,
            allowed_address_pairs,
            security_groups,
            no_port_security,
            wait,
        } => {
            let request = EndpointRequest {
                name,
                epg,
                node,
                ip,
                mac,
                allowed_address_pairs,
                port_security: !no_port_security,
                security_groups: (!security_groups.is_empty()).then_some(security_groups),
            };
            let ep =
                block_on(client.create_endpoint(&request))?.map_err(|e| anyhow!(describe(&e)))?;
            println!(
                "endpoint {} in {} on {}: {}/{} mac {} netns {}",
                ep.name, ep.epg, ep.node, ep.ip, ep.prefix_len, ep.mac, ep.netns
            );
            if wait {
                wait_ready(&client, &ep.name, Duration::from_secs(30))?;
                println!("endpoint {} is ready", ep.name);
            }
        }
        Action::Set {
            name,
            allowed_address_pairs,
            no_allowed_address_pairs,
            security_groups,
            no_security_groups,
            port_security,
        } => {
            let change = EndpointUpdate {
                allowed_address_pairs: (no_allowed_address_pairs
                    || !allowed_address_pairs.is_empty())
                .then_some(allowed_address_pairs),
                port_security: port_security.map(|p| p == "on"),
                security_groups: if no_security_groups {
                    Some(None)
                } else {
                    (!security_groups.is_empty()).then_some(Some(security_groups))
                },
            };
            if change == EndpointUpdate::default() {
                bail!(
                    "nothing to change: give --security-group, --allowed-address-pair or --port-security"
                );
            }
            let ep = block_on(client.update_endpoint(&name, &change))?
                .map_err(|e| anyhow!(describe(&e)))?;
            let groups = ep
                .security_groups
                .map_or_else(|| "none (contracts only)".to_string(), |g| g.join(", "));
            println!(
                "endpoint {}: port security {}, security groups {groups}, {} allowed address pairs",
                ep.name,
                if ep.port_security { "on" } else { "off" },
                ep.allowed_address_pairs.len()
            );
        }
        Action::Rm { name } => {
            block_on(client.delete_endpoint(&name))?.map_err(|e| anyhow!(describe(&e)))?;
            println!("endpoint {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls until the endpoint's node reports it installed.
pub fn wait_ready(client: &weft_api::Client, name: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let ep = block_on(client.endpoint(name))?.map_err(|e| anyhow!(describe(&e)))?;
        match ep.status.state {
            EndpointState::Ready => return Ok(()),
            EndpointState::Failed => bail!(
                "endpoint {name} failed on {}: {}",
                ep.node,
                ep.status.message.unwrap_or_default()
            ),
            EndpointState::Pending if start.elapsed() > limit => {
                return Err(anyhow!("endpoint {name} still pending on {}", ep.node))
                    .context(format!("waited {}s", limit.as_secs()));
            }
            EndpointState::Pending => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
