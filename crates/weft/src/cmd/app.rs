//! `weft app apply|status|scale|restart|rm|cancel|why-pending`: Marathon-style apps.

use crate::remote::{RemoteArgs, block_on, describe};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weft_api::{App, DeploymentState, Task, TaskState};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create or change apps from HCL (or JSON) documents; a change is a deployment.
    Apply {
        #[arg(short = 'f', long = "file")]
        path: PathBuf,
    },
    /// Every app, or one app in detail.
    Status { id: Option<String> },
    /// Set an app's instance count.
    Scale { id: String, instances: u32 },
    /// Replace every task of an app, within its upgrade strategy.
    Restart { id: String },
    /// Stop every task and delete the app.
    Rm { id: String },
    /// Cancel an app's running deployment (idempotent).
    Cancel { id: String },
    /// What could not be placed or started, and why.
    WhyPending { id: String },
}

/// Reads app documents (a file, or every .hcl/.json file of a directory), checked whole.
fn load_apps(path: &Path) -> Result<weft_app::Apps> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("hcl" | "json")))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = weft_app::Apps::default();
    let mut errors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.display().to_string();
        let parsed = if file.extension().is_some_and(|e| e == "json") {
            weft_app::parse_apps_json(&name, &text)
        } else {
            weft_app::parse_apps_hcl(&name, &text)
        };
        match parsed {
            Ok(apps) => {
                for (id, app) in apps.apps {
                    if let Some(first) = all.apps.get(&id) {
                        errors.push(format!(
                            "{}: app {id:?} is declared twice, first at {}",
                            app.loc, first.loc
                        ));
                    } else {
                        all.apps.insert(id, app);
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty()
        && let Err(e) = weft_app::validate_apps(&all)
    {
        errors.push(e.to_string());
    }
    if !errors.is_empty() {
        bail!("{}\nnothing was applied", errors.join("\n"));
    }
    Ok(all)
}

fn print_app(app: &App) {
    let runtime = if app.spec.image.is_some() {
        "docker"
    } else {
        "process"
    };
    println!(
        "app {} (version {}, {runtime}, EPG {})",
        app.id, app.version, app.spec.epg
    );
    println!(
        "  instances {}  running {}  healthy {}  cpus {}  mem {} MiB{}",
        app.instances,
        app.running,
        app.healthy,
        app.spec.cpus,
        app.spec.mem,
        if app.spec.privileged {
            "  privileged"
        } else {
            ""
        }
    );
    if let Some(d) = &app.deployment {
        let state = format!("{:?}", d.state).to_lowercase();
        println!(
            "  deployment {} {state}: version {} -> {}",
            d.id, d.from_version, d.to_version
        );
        if let Some(m) = &d.message {
            println!("    {m}");
        }
    }
    for reason in &app.pending {
        println!("  pending: {reason}");
    }
}

/// What keeps an app from running all its instances: the scheduler's reasons (not
/// placed), then each placed task that is not running, with its state and why.
fn why_pending(app: &App, tasks: &[Task]) -> Vec<String> {
    let mut lines = app.pending.clone();
    for t in tasks
        .iter()
        .filter(|t| t.status.state != TaskState::Running)
    {
        lines.push(format!(
            "task {} on node {}: {}",
            t.id,
            t.node,
            super::ps::state_and_reason(&t.status)
        ));
    }
    lines
}

pub fn run(args: Args) -> Result<ExitCode> {
    let client = args.remote.client();
    let fail = |e: weft_api::ClientError| anyhow!(describe(&e));
    match args.action {
        Action::Apply { path } => {
            let apps = load_apps(&path)?;
            let json: serde_json::Value = serde_json::from_str(&weft_app::apps_to_json(&apps))
                .context("encoding the apps")?;
            let done = block_on(client.apply_apps(json))?.map_err(fail)?;
            println!(
                "applied app(s) {} at revision {}",
                done.apps.join(", "),
                done.revision
            );
            for d in &done.deployments {
                println!("deployment {d} started (watch it with `weft app status`)");
            }
        }
        Action::Status { id: Some(id) } => print_app(&block_on(client.app(&id))?.map_err(fail)?),
        Action::Status { id: None } => {
            let apps = block_on(client.apps())?.map_err(fail)?;
            println!(
                "{:<20} {:>9} {:>7} {:>7} {:<12} EPG",
                "APP", "INSTANCES", "RUNNING", "HEALTHY", "DEPLOYMENT"
            );
            for app in apps {
                let deployment = match &app.deployment {
                    Some(d) if d.state == DeploymentState::Running => "running",
                    Some(d) if d.state == DeploymentState::Failed => "failed",
                    _ => "-",
                };
                println!(
                    "{:<20} {:>9} {:>7} {:>7} {:<12} {}",
                    app.id, app.instances, app.running, app.healthy, deployment, app.spec.epg
                );
            }
        }
        Action::Scale { id, instances } => {
            let app = block_on(client.scale_app(&id, instances))?.map_err(fail)?;
            println!("app {id} scaled to {instances}");
            print_app(&app);
        }
        Action::Restart { id } => {
            block_on(client.restart_app(&id))?.map_err(fail)?;
            println!("app {id}: every task will be replaced");
        }
        Action::Rm { id } => {
            block_on(client.delete_app(&id))?.map_err(fail)?;
            println!("app {id} deleted; its tasks are stopping");
        }
        Action::Cancel { id } => {
            block_on(client.cancel_deployment(&id))?.map_err(fail)?;
            println!("app {id}: deployment cancelled");
        }
        Action::WhyPending { id } => {
            let app = block_on(client.app(&id))?.map_err(fail)?;
            let tasks = block_on(client.tasks(Some(&id)))?.map_err(fail)?;
            let lines = why_pending(&app, &tasks);
            if lines.is_empty() {
                println!(
                    "app {id}: nothing pending ({} of {} running)",
                    app.running, app.instances
                );
            } else {
                for line in lines {
                    println!("{line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
