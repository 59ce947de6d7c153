//! Marathon-style app specs: N instances of a process or container, with resources,
//! placement constraints, health checks, restart backoff, rolling-update bounds and
//! the EPG the tasks join.
//!
//! Documents come as HCL ([`parse_apps_hcl`]) or as the JSON twin ([`parse_apps_json`]),
//! each app checked whole with file, line and app in every error. References between
//! apps (`${app.master.address}` in env) are checked by [`validate_apps`], which needs
//! every app of the deployment. This crate does no I/O.

mod checks;
mod duration;
mod error;
mod hcl;
mod image;
mod json;
mod name;
mod spec;
mod template;
mod validate;

pub use duration::{Duration, DurationError};
pub use error::{AppError, AppErrors};
pub use hcl::parse_apps_hcl;
pub use image::{ImageError, ImageRef};
pub use json::{apps_to_json, parse_apps_json};
pub use name::check_app_name;
pub use spec::{
    AppNetwork, AppSpec, Apps, Constraint, HealthCheck, HealthCheckKind, MAX_EXTRA_NETWORKS,
    Pattern, PatternError, RestartPolicy, Runtime, UpgradeStrategy,
};
pub use template::{AppAttribute, EnvTemplate, TemplateError, TemplatePart};
pub use validate::{dependency_order, validate_apps};
