//! `weft explain -f PATH --from T/A/E --to T/A/E --proto tcp --port N` (offline, EPGs)
//! `weft explain --from ENDPOINT --to ENDPOINT --proto tcp --port N` (live cluster)
//!
//! Exit status: 0 allowed, 1 denied, 2 error (and, live, 3 when intent and installed
//! state disagree).

use crate::documents;
use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow};
use std::path::PathBuf;
use std::process::ExitCode;
use weft_compiler::{Allocation, Flow, compile, explain};
use weft_model::{Action, EpgPath, IpFamily, Protocol};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy documents to explain offline; without it, ask the live cluster.
    #[arg(short = 'f', long = "file")]
    path: Option<PathBuf>,
    /// Source: an EPG (tenant/app-profile/epg) with -f, else an endpoint name.
    #[arg(long)]
    from: String,
    /// Destination: an EPG with -f, else an endpoint name.
    #[arg(long)]
    to: String,
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
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
    Icmp,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(path) = &args.path else {
        return live(&args);
    };
    let from: EpgPath = args.from.parse()?;
    let to: EpgPath = args.to.parse()?;
    let model = documents::load(path)?;
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
    let explanation = explain(&policy, &from, &to, &flow)
        .with_context(|| format!("cannot explain {from} -> {to}"))?;
    let port = if proto.has_ports() {
        format!("/{}", args.port)
    } else {
        String::new()
    };
    println!(
        "{from} (class {}) -> {to} (class {}) {proto}{port}",
        explanation.src_class, explanation.dst_class
    );
    println!("{explanation}");
    Ok(match explanation.action {
        Action::Permit => ExitCode::SUCCESS,
        Action::Deny => ExitCode::from(1),
    })
}

/// Asks the controller: the intent's verdict and the installed rules' verdict.
fn live(args: &Args) -> Result<ExitCode> {
    let proto = match args.proto {
        ProtoArg::Tcp => "tcp",
        ProtoArg::Udp => "udp",
        ProtoArg::Icmp => "icmp",
    };
    let client = args.remote.client();
    let answer = block_on(client.explain(&args.from, &args.to, proto, args.port))?
        .map_err(|e| anyhow!(describe(&e)))?;
    let verdict = |allowed: bool| if allowed { "allowed" } else { "denied" };
    println!(
        "{} -> {} {proto}/{} (enforced on {})",
        answer.from, answer.to, args.port, answer.node
    );
    // The texts start with their verdict ("allowed: ..."); say it once.
    let said = |allowed: bool, text: &str| {
        let v = verdict(allowed);
        if text.starts_with(v) {
            text.to_string()
        } else {
            format!("{v}: {text}")
        }
    };
    println!(
        "intent:    {}",
        said(answer.intent.allowed, &answer.intent.text)
    );
    match &answer.installed {
        Some(v) => println!("installed: {}", said(v.allowed, &v.text)),
        None => println!("installed: unknown (the node has not reported its rules)"),
    }
    if let Some(note) = &answer.note {
        println!("note: {note}");
    }
    Ok(if answer.differs {
        println!("intent and installed state DIFFER");
        ExitCode::from(3)
    } else if answer.intent.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
