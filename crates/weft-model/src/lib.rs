//! The application-centric policy model, in Cisco ACI's image.
//!
//! A [`Model`] holds tenants; a tenant holds VRFs, bridge domains, filters, contracts,
//! taboo contracts and application profiles with their EPGs. Documents come in as HCL
//! ([`parse_hcl`]) or as the JSON twin ([`parse_json`]) and are checked whole by
//! [`validate`]. This crate does no I/O: callers hand it text and a file name.

mod document;
pub mod hcl;
mod json;
mod model;
mod path;
mod validate;

pub use document::{
    DocumentError, Documents, ParseErrors, parse_hcl, parse_json, resolve_json_keys,
};
pub use model::*;
pub use path::{EpgPath, ObjectPath, PathError};
pub use validate::{Diagnostic, Severity, ValidationReport, validate};
