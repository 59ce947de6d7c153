//! `weft dns query NAME [--type A|AAAA|SRV|ANY] --from ENDPOINT [--json]`: what DNS at
//! an endpoint's gateway answers for a name, asked of the controller (which decides the
//! discovery view the gateways serve), printed like dig's answer section.
//!
//! Exit status: 0 NOERROR with answers, 1 NXDOMAIN or NODATA (NOERROR without answers),
//! 2 any other answer (REFUSED, SERVFAIL, a name weft forwards) or an error.

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use std::process::ExitCode;
use weft_api::DnsQueryResponse;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Ask what the gateway of an endpoint answers for a name.
    Query(QueryArgs),
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The name, e.g. `app.service.weft`, `v1.app.service.weft`, `node1.node.weft`.
    name: String,
    /// The record type asked for.
    #[arg(long = "type", value_enum, ignore_case = true, default_value_t = QType::A)]
    qtype: QType,
    /// The endpoint that asks (a task's id is its endpoint's name).
    #[arg(long)]
    from: String,
    /// Print the controller's whole answer as JSON (with each instance's decision).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum QType {
    A,
    Aaaa,
    Srv,
    Any,
}

impl QType {
    pub fn as_str(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
            QType::Srv => "SRV",
            QType::Any => "ANY",
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Query(q) => query(&q),
    }
}

/// Asks the controller what `from`'s gateway answers for `name`; the rcode as dig names it.
pub fn ask(remote: &RemoteArgs, name: &str, qtype: QType, from: &str) -> Result<DnsQueryResponse> {
    let client = remote.client();
    let mut answer = block_on(client.dns_query(name, qtype.as_str(), from))?
        .map_err(|e| anyhow!(describe(&e)))?;
    answer.rcode = mnemonic(&answer.rcode);
    Ok(answer)
}

/// An rcode as dig and RFC 1035 name it (`NOERROR`, `NXDOMAIN`, ...): the controller may
/// answer with hickory's descriptions ("No Error", "Non-Existent Domain", ...).
pub fn mnemonic(rcode: &str) -> String {
    let known = [
        ("No Error", "NOERROR"),
        ("Form Error", "FORMERR"),
        ("Server Failure", "SERVFAIL"),
        ("Non-Existent Domain", "NXDOMAIN"),
        ("Not Implemented", "NOTIMP"),
        ("Query Refused", "REFUSED"),
    ];
    known
        .iter()
        .find(|(text, _)| text.eq_ignore_ascii_case(rcode))
        .map_or_else(|| rcode.to_string(), |(_, name)| (*name).to_string())
}

/// The exit status an answer means: 0 answers, 1 NXDOMAIN or NODATA, 2 anything else.
pub fn status(answer: &DnsQueryResponse) -> ExitCode {
    match answer.rcode.as_str() {
        "NOERROR" if !answer.answers.is_empty() => ExitCode::SUCCESS,
        "NOERROR" | "NXDOMAIN" => ExitCode::from(1),
        _ => ExitCode::from(crate::EXIT_ERROR),
    }
}

/// The rcode as dig would say it, with NODATA named.
pub fn rcode_line(answer: &DnsQueryResponse) -> String {
    match answer.rcode.as_str() {
        "NOERROR" if answer.answers.is_empty() => "NOERROR (NODATA: the name exists, \
             but has no records of this type for this asker)"
            .to_string(),
        "FORWARDED" => "FORWARDED (not a discovery name: the gateway forwards it to the \
             node's resolver)"
            .to_string(),
        other => other.to_string(),
    }
}

/// One answer record in dig's layout: name, TTL, class, type and data, tab-separated.
pub fn record_line(record: &str) -> String {
    let fields: Vec<&str> = record.split_whitespace().collect();
    if fields.len() < 5 {
        return record.to_string();
    }
    format!(
        "{}\t{}\t{}\t{}\t{}",
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        fields[4..].join(" ")
    )
}

fn query(args: &QueryArgs) -> Result<ExitCode> {
    let answer = ask(&args.remote, &args.name, args.qtype, &args.from)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(status(&answer));
    }
    println!(
        ";; {} {} asked by {}: status {}",
        answer.name,
        answer.qtype,
        answer.from,
        rcode_line(&answer)
    );
    if !answer.answers.is_empty() {
        println!();
        println!(";; ANSWER SECTION:");
        for record in &answer.answers {
            println!("{}", record_line(record));
        }
    }
    Ok(status(&answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rcode: &str, answers: &[&str]) -> DnsQueryResponse {
        DnsQueryResponse {
            name: "app.service.weft".into(),
            qtype: "A".into(),
            from: "web-1".into(),
            rcode: rcode.into(),
            answers: answers.iter().map(|a| (*a).to_string()).collect(),
            decisions: vec![],
        }
    }

    #[test]
    fn exit_status_follows_the_answer() {
        let with = answer("NOERROR", &["app.service.weft. 0 IN A 10.1.0.2"]);
        assert_eq!(status(&with), ExitCode::SUCCESS);
        assert_eq!(status(&answer("NOERROR", &[])), ExitCode::from(1));
        assert_eq!(status(&answer("NXDOMAIN", &[])), ExitCode::from(1));
        assert_eq!(status(&answer("REFUSED", &[])), ExitCode::from(2));
        assert_eq!(status(&answer("FORWARDED", &[])), ExitCode::from(2));
        assert!(rcode_line(&answer("NOERROR", &[])).contains("NODATA"));
    }

    #[test]
    fn rcodes_are_named_as_dig_names_them() {
        assert_eq!(mnemonic("No Error"), "NOERROR");
        assert_eq!(mnemonic("Non-Existent Domain"), "NXDOMAIN");
        assert_eq!(mnemonic("Query Refused"), "REFUSED");
        assert_eq!(mnemonic("NXDOMAIN"), "NXDOMAIN");
        assert_eq!(mnemonic("FORWARDED"), "FORWARDED");
    }

    #[test]
    fn records_print_like_dig() {
        assert_eq!(
            record_line("_app._tcp.service.weft. 0 IN SRV 1 1 8080 a.node.weft."),
            "_app._tcp.service.weft.\t0\tIN\tSRV\t1 1 8080 a.node.weft."
        );
        assert_eq!(record_line("odd"), "odd");
    }
}
