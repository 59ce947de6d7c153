//! `weft services` and `weft kv get|put|delete|ls`: discovery through weft's
//! Consul-compatible API, as any Consul client sees it.
//!
//! The API's address: `--consul`, else `$CONSUL_HTTP_ADDR`, else the dev cluster's; the
//! token: `$CONSUL_HTTP_TOKEN`, else none (the server's anonymous tenant).

use crate::remote::{block_on, read_config};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::Value;
use std::io::Write as _;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct ConsulTarget {
    /// The Consul API (default: $CONSUL_HTTP_ADDR, or the dev cluster's).
    #[arg(long, global = true)]
    consul: Option<String>,
}

impl ConsulTarget {
    fn base(&self) -> Result<String> {
        let addr = self
            .consul
            .clone()
            .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok())
            .or_else(|| read_config().and_then(|c| c.consul))
            .context("no Consul API: pass --consul, set CONSUL_HTTP_ADDR, or start `weft dev`")?;
        Ok(if addr.contains("://") {
            addr
        } else {
            format!("http://{addr}")
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}{path}", self.base()?);
        let mut r = reqwest::Client::new().request(method, url);
        if let Ok(token) = std::env::var("CONSUL_HTTP_TOKEN") {
            r = r.header("X-Consul-Token", token);
        }
        Ok(r)
    }
}

async fn send(r: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>)> {
    let response = r.send().await.context("the Consul API did not answer")?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .context("reading the answer")?
        .to_vec();
    if status >= 400 && status != 404 {
        bail!("{status}: {}", String::from_utf8_lossy(&body).trim());
    }
    Ok((status, body))
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    target: ConsulTarget,
    /// Show every instance of this service with its health.
    service: Option<String>,
}

pub fn services(args: ServicesArgs) -> Result<ExitCode> {
    block_on(async {
        let t = &args.target;
        match &args.service {
            None => {
                let (_, body) =
                    send(t.request(reqwest::Method::GET, "/v1/catalog/services")?).await?;
                let services: Value = serde_json::from_slice(&body)?;
                println!("{:<24} TAGS", "SERVICE");
                for (name, tags) in services.as_object().into_iter().flatten() {
                    let tags: Vec<&str> = tags
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!("{name:<24} {}", tags.join(","));
                }
            }
            Some(name) => {
                let path = format!("/v1/health/service/{name}");
                let (_, body) = send(t.request(reqwest::Method::GET, &path)?).await?;
                let entries: Value = serde_json::from_slice(&body)?;
                println!(
                    "{:<20} {:<12} {:<22} {:<9} CHECKS",
                    "ID", "NODE", "ADDRESS", "STATUS"
                );
                for e in entries.as_array().into_iter().flatten() {
                    let checks = e["Checks"].as_array().cloned().unwrap_or_default();
                    let worst = ["critical", "warning", "passing"]
                        .into_iter()
                        .find(|s| checks.iter().any(|c| c["Status"] == *s))
                        .unwrap_or("passing");
                    let failing: Vec<String> = checks
                        .iter()
                        .filter(|c| c["Status"] != "passing")
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c["CheckID"].as_str().unwrap_or(""),
                                c["Output"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                    println!(
                        "{:<20} {:<12} {:<22} {:<9} {}",
                        e["Service"]["ID"].as_str().unwrap_or(""),
                        e["Node"]["Node"].as_str().unwrap_or(""),
                        format!(
                            "{}:{}",
                            e["Service"]["Address"].as_str().unwrap_or(""),
                            e["Service"]["Port"]
                        ),
                        worst,
                        failing.join("; ")
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

#[derive(Debug, clap::Args)]
pub struct KvArgs {
    #[command(flatten)]
    target: ConsulTarget,
    #[command(subcommand)]
    action: KvAction,
}

#[derive(Debug, clap::Subcommand)]
enum KvAction {
    /// Print a key's value (exit 1 if it does not exist).
    Get { key: String },
    /// Set a key's value.
    Put { key: String, value: String },
    /// Delete a key, or with --recurse every key under it.
    Delete {
        key: String,
        #[arg(long)]
        recurse: bool,
    },
    /// List the keys under a prefix.
    Ls {
        #[arg(default_value = "")]
        prefix: String,
    },
}

/// A URL would silently drop `.` and `..` segments (and so write another key): refuse them.
fn check_key(key: &str) -> Result<()> {
    if key.split('/').any(|s| s == "." || s == "..") {
        bail!("key {key:?} has a \".\" or \"..\" segment, which a URL cannot carry");
    }
    Ok(())
}

pub fn kv(args: KvArgs) -> Result<ExitCode> {
    match &args.action {
        KvAction::Get { key } | KvAction::Put { key, .. } | KvAction::Delete { key, .. } => {
            check_key(key)?;
        }
        KvAction::Ls { prefix } => check_key(prefix)?,
    }
    block_on(async {
        let t = &args.target;
        match &args.action {
            KvAction::Get { key } => {
                let (status, body) =
                    send(t.request(reqwest::Method::GET, &format!("/v1/kv/{key}"))?).await?;
                if status == 404 {
                    eprintln!("no key {key:?}");
                    return Ok(ExitCode::from(1));
                }
                let entries: Value = serde_json::from_slice(&body)?;
                let value = entries[0]["Value"].as_str().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .context("the value is not base64")?;
                std::io::stdout().write_all(&bytes)?;
                if !bytes.ends_with(b"\n") {
                    println!();
                }
            }
            KvAction::Put { key, value } => {
                let r = t
                    .request(reqwest::Method::PUT, &format!("/v1/kv/{key}"))?
                    .body(value.clone());
                send(r).await?;
            }
            KvAction::Delete { key, recurse } => {
                let path = if *recurse {
                    format!("/v1/kv/{key}?recurse")
                } else {
                    format!("/v1/kv/{key}")
                };
                send(t.request(reqwest::Method::DELETE, &path)?).await?;
            }
            KvAction::Ls { prefix } => {
                let path = format!("/v1/kv/{prefix}?keys&separator=/");
                let (status, body) = send(t.request(reqwest::Method::GET, &path)?).await?;
                if status != 404 {
                    let keys: Vec<String> = serde_json::from_slice(&body)?;
                    for k in keys {
                        println!("{k}");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}
