//! Stable addresses of model objects, like ACI's distinguished names.
//!
//! EPGs are `tenant/app-profile/epg` (`shop/store/web`); every other object is its
//! tenant followed by `kind:name` segments (`shop/contract:web-to-app/subject:http`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an EPG path: expected tenant/app-profile/epg, e.g. shop/store/web")]
pub struct PathError {
    pub input: String,
}

/// The address of an EPG: `tenant/app-profile/epg`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EpgPath {
    pub tenant: String,
    pub app_profile: String,
    pub epg: String,
}

impl EpgPath {
    pub fn new(tenant: &str, app_profile: &str, epg: &str) -> Self {
        Self {
            tenant: tenant.into(),
            app_profile: app_profile.into(),
            epg: epg.into(),
        }
    }
}

impl FromStr for EpgPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(a), Some(e), None)
                if !t.is_empty() && !a.is_empty() && !e.is_empty() =>
            {
                Ok(Self::new(t, a, e))
            }
            _ => Err(PathError {
                input: s.to_string(),
            }),
        }
    }
}

impl TryFrom<String> for EpgPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EpgPath> for String {
    fn from(p: EpgPath) -> String {
        p.to_string()
    }
}

impl fmt::Display for EpgPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.app_profile, self.epg)
    }
}

/// The address of any object, for diagnostics and rule traces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectPath(String);

impl ObjectPath {
    pub fn tenant(tenant: &str) -> Self {
        Self(tenant.to_string())
    }

    pub fn epg(path: &EpgPath) -> Self {
        Self(path.to_string())
    }

    /// Appends a `kind:name` segment.
    pub fn child(&self, kind: &str, name: &str) -> Self {
        Self(format!("{}/{kind}:{name}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
