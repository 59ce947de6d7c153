//! Talking to a running controller: where it is and which token to use.
//!
//! Resolution order: command-line flag, environment (`WEFT_SERVER`, `WEFT_TOKEN`), then
//! the CLI file that `weft dev` writes (`$WEFT_CONFIG`, default `~/.config/weft/cli.json`).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use weft_api::Client;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Controller URL (default: $WEFT_SERVER, the dev cluster's, or http://127.0.0.1:7070).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// API token (default: $WEFT_TOKEN, or the dev cluster's admin token).
    #[arg(long, global = true)]
    pub token: Option<String>,
}

/// What `weft dev` leaves for the CLI to find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CliConfig {
    pub server: String,
    pub token: String,
    /// The dev cluster's Consul-compatible API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<String>,
}

pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("WEFT_CONFIG") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".config/weft/cli.json")
}

pub fn read_config() -> Option<CliConfig> {
    let text = std::fs::read_to_string(config_path()).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_config(config: &CliConfig) -> Result<PathBuf> {
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(config)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

impl RemoteArgs {
    pub fn client(&self) -> Client {
        let file = read_config();
        let server = self
            .server
            .clone()
            .or_else(|| std::env::var("WEFT_SERVER").ok())
            .or_else(|| file.as_ref().map(|f| f.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let token = self
            .token
            .clone()
            .or_else(|| std::env::var("WEFT_TOKEN").ok())
            .or_else(|| file.map(|f| f.token));
        Client::new(&server, token)
    }
}

/// A runtime for one CLI command.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(future))
}

/// Formats an API error with every detail the server gave.
pub fn describe(e: &weft_api::ClientError) -> String {
    match e {
        weft_api::ClientError::Api { body, .. } if !body.details.is_empty() => {
            format!("{e}\n  {}", body.details.join("\n  "))
        }
        _ => e.to_string(),
    }
}
