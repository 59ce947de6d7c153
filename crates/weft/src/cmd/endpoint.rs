//! `weft endpoint create|rm|list`

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow, bail};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weft_api::{AddressPair, EndpointRequest, EndpointState, MacAddr};
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
        /// Wait until the node has installed the endpoint's port and policy.
        #[arg(long)]
        wait: bool,
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
            wait,
        } => {
            let request = EndpointRequest {
                name,
                epg,
                node,
                ip,
                mac,
                allowed_address_pairs,
                port_security: true,
                security_groups: None,
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
