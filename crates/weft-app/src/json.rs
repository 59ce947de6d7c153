//! The JSON twin: the same structure as HCL, through serde (unknown fields rejected).

use crate::checks::check_app;
use crate::error::{AppError, AppErrors};
use crate::name::check_app_name;
use crate::spec::Apps;
use weft_model::Location;

/// Parses `{"app": {"NAME": {...}}}`. Any error rejects the whole document.
///
/// JSON carries no line per field, so value errors point at the file and name the field.
pub fn parse_apps_json(file: &str, text: &str) -> Result<Apps, AppErrors> {
    let mut apps: Apps = serde_json::from_str(text).map_err(|e| {
        AppErrors(vec![AppError {
            loc: Location::new(file, u32::try_from(e.line()).unwrap_or(u32::MAX)),
            app: None,
            message: format!("malformed JSON: {e}"),
        }])
    })?;
    let mut errors = Vec::new();
    for (id, app) in &mut apps.apps {
        app.id.clone_from(id);
        app.loc = Location::new(file, 0);
        let mut push = |message: String| {
            errors.push(AppError {
                loc: Location::new(file, 0),
                app: Some(id.clone()),
                message,
            });
        };
        if let Err(message) = check_app_name(id) {
            push(message);
            continue;
        }
        for problem in check_app(app) {
            if problem.field.is_empty() {
                push(problem.message);
            } else {
                push(format!("{}: {}", problem.field, problem.message));
            }
        }
    }
    if errors.is_empty() {
        Ok(apps)
    } else {
        Err(AppErrors(errors))
    }
}

/// The JSON twin of `apps`, which [`parse_apps_json`] reads back to the same apps.
pub fn apps_to_json(apps: &Apps) -> String {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(apps).unwrap_or_default()
}
