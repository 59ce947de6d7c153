//! `weft explain -f PATH --from T/A/E --to T/A/E --proto tcp --port N` (offline, EPGs)
//! `weft explain --from ENDPOINT --to ENDPOINT --proto tcp --port N` (live cluster)
//! `weft explain --dns ENDPOINT NAME [--type A|AAAA|SRV|ANY]` (live cluster: what DNS at
//! the endpoint's gateway answers, and why each instance is shown or hidden)
//!
//! Exit status: 0 allowed (with --dns: answered), 1 denied (NXDOMAIN or NODATA), 2 error
//! (and, live, 3 when intent and installed state disagree).

use crate::cmd::dns::{QType, ask, rcode_line, record_line, status};
use crate::documents;
use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow, bail};
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
    #[arg(long, required_unless_present = "dns", conflicts_with = "dns")]
    from: Option<String>,
    /// Destination: an EPG with -f, else an endpoint name.
    #[arg(long, required_unless_present = "dns", conflicts_with = "dns")]
    to: Option<String>,
    #[arg(
        long,
        value_enum,
        required_unless_present = "dns",
        conflicts_with = "dns"
    )]
    proto: Option<ProtoArg>,
    /// Destination port (tcp and udp).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Source port (tcp and udp).
    #[arg(long, default_value_t = 40000)]
    sport: u16,
    /// Evaluate as IPv6 instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// Explain discovery instead: what DNS at this endpoint's gateway answers for NAME,
    /// and for every instance of the service whether it is shown or hidden, and why.
    #[arg(
        long,
        value_name = "ENDPOINT",
        requires = "name",
        conflicts_with = "path"
    )]
    dns: Option<String>,
    /// The name to explain with --dns, e.g. `app.service.weft`.
    #[arg(requires = "dns")]
    name: Option<String>,
    /// The record type asked for with --dns.
    #[arg(
        long = "type",
        value_enum,
        ignore_case = true,
        default_value_t = QType::A,
        requires = "dns"
    )]
    qtype: QType,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
    Icmp,
}

/// The flow's source, destination and protocol (clap makes them required without --dns).
fn flow_args(args: &Args) -> Result<(&str, &str, ProtoArg)> {
    match (&args.from, &args.to, args.proto) {
        (Some(from), Some(to), Some(proto)) => Ok((from, to, proto)),
        _ => bail!("explaining a flow needs --from, --to and --proto (or --dns ENDPOINT NAME)"),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(endpoint) = &args.dns {
        return dns(&args, endpoint);
    }
    let Some(path) = &args.path else {
        return live(&args);
    };
    let (from, to, proto) = flow_args(&args)?;
    let from: EpgPath = from.parse()?;
    let to: EpgPath = to.parse()?;
    let model = documents::load(path)?;
    let policy = compile(&model, &Allocation::default())?;
    let proto = match proto {
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
    let (from, to, proto) = flow_args(args)?;
    let proto = match proto {
        ProtoArg::Tcp => "tcp",
        ProtoArg::Udp => "udp",
        ProtoArg::Icmp => "icmp",
    };
    let client = args.remote.client();
    let answer =
        block_on(client.explain(from, to, proto, args.port))?.map_err(|e| anyhow!(describe(&e)))?;
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

/// Asks the controller what `endpoint`'s gateway answers for the name, and prints every
/// instance of the service with its decision, then the answer.
fn dns(args: &Args, endpoint: &str) -> Result<ExitCode> {
    let name = args
        .name
        .as_deref()
        .context("--dns ENDPOINT needs the NAME to explain, e.g. app.service.weft")?;
    let answer = ask(&args.remote, name, args.qtype, endpoint)?;
    println!("{} asks {} {}", answer.from, answer.name, answer.qtype);
    if answer.decisions.is_empty() {
        println!("no instance of a service is named by {name}");
    } else {
        let width = answer
            .decisions
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(0);
        for d in &answer.decisions {
            let at = format!("{}:{} on {}", d.address, d.port, d.node);
            let verdict = if d.shown { "shown" } else { "hidden" };
            println!("  {:<width$}  {at:<28} {verdict}", d.id);
            for line in d.why.lines() {
                println!("      {}", line.trim_start());
            }
        }
    }
    println!("answer:    {}", rcode_line(&answer));
    for record in &answer.answers {
        println!("  {}", record_line(record));
    }
    Ok(status(&answer))
}
