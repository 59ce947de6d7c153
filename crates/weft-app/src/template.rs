//! Environment values that name other apps' task addresses: `${app.master.address}`.
//!
//! This answers the paper's problem 3 (no metadata service behind ACI): an agent learns
//! its master's address from its environment at start, resolved by weft from live tasks.

use crate::name::check_app_name;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a reference asks for about the referenced app's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppAttribute {
    /// One task's IP address.
    Address,
    /// Every task's IP address, comma-separated.
    Addresses,
}

impl AppAttribute {
    pub const NAMES: &[&str] = &["address", "addresses"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Addresses => "addresses",
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemplatePart {
    Literal(String),
    AppRef {
        app: String,
        attribute: AppAttribute,
    },
}

/// An environment value: literal text with `${app.NAME.ATTRIBUTE}` references.
/// `$${` writes a literal `${`, as in HCL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvTemplate {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed template {input:?}: {reason}")]
pub struct TemplateError {
    pub input: String,
    pub reason: String,
}

impl EnvTemplate {
    pub fn literal(text: &str) -> Self {
        Self {
            parts: vec![TemplatePart::Literal(text.to_string())],
        }
    }

    /// The apps this value refers to, in order of appearance.
    pub fn referenced_apps(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::AppRef { app, .. } => Some(app.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// Renders the value, asking `lookup` for each reference; `None` if any is unresolved.
    pub fn render(
        &self,
        mut lookup: impl FnMut(&str, AppAttribute) -> Option<String>,
    ) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::AppRef { app, attribute } => out.push_str(&lookup(app, *attribute)?),
            }
        }
        Some(out)
    }
}

impl FromStr for EnvTemplate {
    type Err = TemplateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| TemplateError {
            input: input.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = input;
        while let Some(start) = rest.find("${") {
            if rest[..start].ends_with('$') {
                // `$${` is an escaped, literal `${`.
                literal.push_str(&rest[..start - 1]);
                literal.push_str("${");
                rest = &rest[start + 2..];
                continue;
            }
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(fail("\"${\" is never closed by \"}\"".into()));
            };
            let reference = after[..end].trim();
            let part = parse_reference(reference).map_err(fail)?;
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Self { parts })
    }
}

fn parse_reference(reference: &str) -> Result<TemplatePart, String> {
    let expected = "expected ${app.NAME.address} or ${app.NAME.addresses}";
    let mut fields = reference.split('.');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some("app"), Some(app), Some(attribute), None) => {
            check_app_name(app).map_err(|e| format!("in ${{{reference}}}: {e}"))?;
            let attribute = match attribute {
                "address" => AppAttribute::Address,
                "addresses" => AppAttribute::Addresses,
                other => {
                    return Err(format!(
                        "unknown attribute {other:?} in ${{{reference}}}: {expected}"
                    ));
                }
            };
            Ok(TemplatePart::AppRef {
                app: app.to_string(),
                attribute,
            })
        }
        _ => Err(format!("cannot read ${{{reference}}}: {expected}")),
    }
}

impl fmt::Display for EnvTemplate {
    /// The source spelling: parses back to the same template.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => f.write_str(&text.replace("${", "$${"))?,
                TemplatePart::AppRef { app, attribute } => {
                    write!(f, "${{app.{app}.{}}}", attribute.as_str())?;
                }
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for EnvTemplate {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EnvTemplate> for String {
    fn from(t: EnvTemplate) -> String {
        t.to_string()
    }
}
