//! Docker image references: `[registry/]name[:tag][@digest]`, as the distribution spec
//! defines them (lowercase repository names).

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// A parsed image reference such as `registry.local:5000/mesos/agent:1.9@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    /// `host[:port]`, when the first component names one.
    pub registry: Option<String>,
    /// Slash-separated repository path, e.g. `mesosphere/mesos-master`.
    pub name: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:…`.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a docker image reference: {reason} (expected [registry/]name[:tag][@digest])"
)]
pub struct ImageError {
    pub input: String,
    pub reason: String,
}

static COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-f0-9]{32,}$").expect("static regex")
});
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$")
        .expect("static regex")
});

impl FromStr for ImageRef {
    type Err = ImageError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ImageError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if input.len() > 255 {
            return Err(fail("it is longer than 255 characters".into()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                if !DIGEST.is_match(digest) {
                    return Err(fail(format!(
                        "digest {digest:?} must be algorithm:hex, e.g. sha256:<64 hex digits>"
                    )));
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A colon after the last slash starts the tag; before it, it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (rest, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !TAG.is_match(tag) {
                    return Err(fail(format!(
                        "tag {tag:?} must be 1 to 128 letters, digits, '_', '.' or '-'"
                    )));
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let mut components: Vec<&str> = rest.split('/').collect();
        let registry = match components.first() {
            Some(first)
                if components.len() > 1
                    && (first.contains('.') || first.contains(':') || *first == "localhost") =>
            {
                if !REGISTRY.is_match(first) {
                    return Err(fail(format!("registry {first:?} is not a host[:port]")));
                }
                let registry = first.to_string();
                components.remove(0);
                Some(registry)
            }
            _ => None,
        };
        for component in &components {
            if component.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(fail(format!(
                    "repository name {component:?} must be lowercase"
                )));
            }
            if !COMPONENT.is_match(component) {
                return Err(fail(format!(
                    "repository name component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
                )));
            }
        }
        Ok(Self {
            registry,
            name: components.join("/"),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for ImageRef {
    type Error = ImageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ImageRef> for String {
    fn from(i: ImageRef) -> String {
        i.to_string()
    }
}
