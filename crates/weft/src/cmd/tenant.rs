//! `weft tenant privilege allow|deny|show|list`: which tenants may run privileged tasks
//! (apps with `privileged = true`, OpenStack servers whose flavor or image says
//! `weft:privileged=true`). Only the admin token changes the list; admission refuses a
//! privileged app of any other tenant (403).

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Result, anyhow};
use std::process::ExitCode;
use weft_api::TenantPrivilege;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Which tenants may run privileged tasks.
    #[command(subcommand)]
    Privilege(Privilege),
}

#[derive(Debug, clap::Subcommand)]
enum Privilege {
    /// Let TENANT run privileged tasks (admin token).
    Allow { tenant: String },
    /// Refuse TENANT new privileged tasks (admin token); its running ones are listed
    /// and keep running.
    Deny { tenant: String },
    /// Whether TENANT may, and its privileged apps.
    Show { tenant: String },
    /// Every tenant that may.
    List,
}

fn print(entry: &TenantPrivilege) {
    let state = if entry.allowed { "allowed" } else { "denied" };
    println!("tenant {}: privileged tasks {state}", entry.tenant);
    if !entry.privileged_apps.is_empty() {
        println!(
            "  privileged apps: {}{}",
            entry.privileged_apps.join(", "),
            if entry.allowed {
                ""
            } else {
                " (they keep running; new ones, changes and scaling up are refused)"
            }
        );
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let fail = |e: weft_api::ClientError| anyhow!(describe(&e));
    let Action::Privilege(action) = args.action;
    match action {
        Privilege::Allow { tenant } => {
            print(&block_on(client.set_tenant_privilege(&tenant, true))?.map_err(fail)?);
        }
        Privilege::Deny { tenant } => {
            print(&block_on(client.set_tenant_privilege(&tenant, false))?.map_err(fail)?);
        }
        Privilege::Show { tenant } => {
            print(&block_on(client.tenant_privilege(&tenant))?.map_err(fail)?);
        }
        Privilege::List => {
            let all = block_on(client.privileged_tenants())?.map_err(fail)?;
            println!("{:<24} {:<14} PRIVILEGED APPS", "TENANT", "SINCE (ms)");
            for entry in all {
                println!(
                    "{:<24} {:<14} {}",
                    entry.tenant,
                    entry.since_ms.map_or("-".into(), |t| t.to_string()),
                    entry.privileged_apps.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
