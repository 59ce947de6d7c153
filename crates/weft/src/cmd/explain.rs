//! `weft explain -f PATH --from T/A/E --to T/A/E --proto tcp --port N`
//!
//! Exit status: 0 allowed, 1 denied, 2 error.

use crate::documents;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use weft_compiler::{Allocation, Flow, compile, explain};
use weft_model::{Action, EpgPath, IpFamily, Protocol};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy document, or a directory of them.
    #[arg(short = 'f', long = "file")]
    path: PathBuf,
    /// Source EPG, as tenant/app-profile/epg.
    #[arg(long)]
    from: EpgPath,
    /// Destination EPG, as tenant/app-profile/epg.
    #[arg(long)]
    to: EpgPath,
    #[arg(long, value_enum)]
    proto: ProtoArg,
    /// Destination port (tcp and udp).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Source port (tcp and udp).
    #[arg(long, default_value_t = 40000)]
    sport: u16,
    /// Evaluate as IPv6 instead of IPv4.
    #[arg(long)]
    ipv6: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
    Icmp,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let model = documents::load(&args.path)?;
    let policy = compile(&model, &Allocation::default())?;
    let proto = match args.proto {
        ProtoArg::Tcp => Protocol::Tcp,
        ProtoArg::Udp => Protocol::Udp,
        ProtoArg::Icmp => Protocol::Icmp,
    };
    let family = if args.ipv6 {
        IpFamily::V6
    } else {
        IpFamily::V4
    };
    let flow = Flow {
        family,
        proto,
        sport: args.sport,
        dport: args.port,
    };
    let explanation = explain(&policy, &args.from, &args.to, &flow)
        .with_context(|| format!("cannot explain {} -> {}", args.from, args.to))?;
    let port = if proto.has_ports() {
        format!("/{}", args.port)
    } else {
        String::new()
    };
    println!(
        "{} (class {}) -> {} (class {}) {proto}{port}",
        args.from, explanation.src_class, args.to, explanation.dst_class
    );
    println!("{explanation}");
    Ok(match explanation.action {
        Action::Permit => ExitCode::SUCCESS,
        Action::Deny => ExitCode::from(1),
    })
}
