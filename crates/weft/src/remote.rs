//! Talking to a running controller: where it is and which token to use.
//!
//! Resolution order: command-line flag, environment (`WEFT_SERVER`, `WEFT_TOKEN`), then
//! the CLI file that `weft dev` writes (`$WEFT_CONFIG`, default `~/.config/weft/cli.json`).
//! Each may name several controllers of one store: `--server URL1,URL2,URL3`, the same in
//! `WEFT_SERVER`, and in the file `"server"` as that string or a list of URLs. The client
//! moves to the next controller when one fails (see [`weft_api::Client`]).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use weft_api::Client;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Controller URL, or several of one cluster separated by commas (default:
    /// $WEFT_SERVER, the dev cluster's, or http://127.0.0.1:7070).
    #[arg(long, global = true, value_name = "URL[,URL...]")]
    pub server: Option<String>,
    /// API token (default: $WEFT_TOKEN, or the dev cluster's admin token).
    #[arg(long, global = true)]
    pub token: Option<String>,
}

/// What `weft dev` leaves for the CLI to find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CliConfig {
    /// One controller URL, or several separated by commas (a JSON list is read too).
    #[serde(deserialize_with = "one_or_many")]
    pub server: String,
    pub token: String,
    /// The dev cluster's Consul-compatible API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<String>,
}

/// `"http://a"`, `"http://a,http://b"` or `["http://a", "http://b"]`, as one string.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Servers {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Servers::deserialize(d)? {
        Servers::One(s) => s,
        Servers::Many(list) => list.join(","),
    })
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
    /// A client of every controller named (see the module's documentation).
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
        Client::with_servers(&weft_api::client::split_servers(&server), token)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_file_names_one_or_several_controllers() {
        let read = |text: &str| serde_json::from_str::<CliConfig>(text).map(|c| c.server);
        assert_eq!(
            read(r#"{"server": "http://a:1", "token": "t"}"#)
                .ok()
                .as_deref(),
            Some("http://a:1")
        );
        assert_eq!(
            read(r#"{"server": "http://a:1,http://b:2", "token": "t"}"#)
                .ok()
                .as_deref(),
            Some("http://a:1,http://b:2")
        );
        assert_eq!(
            read(r#"{"server": ["http://a:1", "http://b:2"], "token": "t"}"#)
                .ok()
                .as_deref(),
            Some("http://a:1,http://b:2")
        );
        assert!(read(r#"{"server": 7, "token": "t"}"#).is_err());
    }

    #[test]
    fn a_server_flag_with_commas_is_several_controllers() {
        let args = RemoteArgs {
            server: Some("http://a:1, http://b:2/".into()),
            token: Some("t".into()),
        };
        let client = args.client();
        assert_eq!(client.servers(), ["http://a:1", "http://b:2"]);
        assert_eq!(client.base(), "http://a:1");
    }
}
