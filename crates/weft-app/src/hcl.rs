//! Reads `app "NAME" { ... }` blocks from HCL, collecting every error with its line.

use crate::checks::{Problem, check_app};
use crate::duration::Duration;
use crate::error::{AppError, AppErrors};
use crate::image::ImageRef;
use crate::name::check_app_name;
use crate::spec::{
    AppNetwork, AppSpec, Apps, Constraint, HealthCheck, HealthCheckKind, Pattern, RestartPolicy,
    UpgradeStrategy,
};
use crate::template::EnvTemplate;
use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::template::Element;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use weft_model::hcl::{LineIndex, describe};
use weft_model::{EpgPath, Location};

/// Parses an HCL document of `app` blocks. Any error rejects the whole document.
pub fn parse_apps_hcl(file: &str, text: &str) -> Result<Apps, AppErrors> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        let line = u32::try_from(e.location().line()).unwrap_or(u32::MAX);
        AppErrors(vec![AppError {
            loc: Location::new(file, line),
            app: None,
            message: format!("malformed HCL: {}", e.message()),
        }])
    })?;
    let mut reader = Reader::new(file, text);
    let apps = reader.document(&body);
    if reader.errors.is_empty() {
        Ok(apps)
    } else {
        Err(AppErrors(reader.errors))
    }
}

const APP_FIELDS: &[&str] = &[
    "instances",
    "cmd",
    "image",
    "args",
    "cpus",
    "mem",
    "disk",
    "env",
    "epg",
    "privileged",
    "ports",
    "tags",
    "meta",
    "security_groups",
    "endpoint",
    "ip",
    "network",
    "constraint",
    "health_check",
    "restart",
    "upgrade_strategy",
];

struct Reader<'a> {
    file: &'a str,
    lines_of_text: LineIndex,
    errors: Vec<AppError>,
    /// The app being read: its name, the line of each field, and fields that already
    /// failed (so that value checks do not report them twice).
    app: Option<String>,
    lines: BTreeMap<String, u32>,
    bad: BTreeSet<String>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a str, text: &str) -> Self {
        Self {
            file,
            lines_of_text: LineIndex::new(text),
            errors: Vec::new(),
            app: None,
            lines: BTreeMap::new(),
            bad: BTreeSet::new(),
        }
    }

    fn line(&self, span: Option<Range<usize>>) -> u32 {
        self.lines_of_text.line(span)
    }

    fn error_at_line(&mut self, line: u32, message: String) {
        self.errors.push(AppError {
            loc: Location::new(self.file, line),
            app: self.app.clone(),
            message,
        });
    }

    fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let line = self.line(span);
        self.error_at_line(line, message);
    }

    /// An error about `field`, which then takes no part in value checks.
    fn field_error(&mut self, field: &str, span: Option<Range<usize>>, message: String) {
        self.bad.insert(field.to_string());
        self.error(span, message);
    }

    fn unknown(&mut self, s: &Structure, within: &str, expected: &[&str]) {
        let (what, name, span) = match s {
            Structure::Attribute(a) => ("attribute", a.key.as_str(), a.span()),
            Structure::Block(b) => ("block", b.ident.as_str(), b.span()),
        };
        let message = format!(
            "unknown {what} {name:?} in {within} (expected: {})",
            expected.join(", ")
        );
        self.error(span, message);
    }

    fn document(&mut self, body: &Body) -> Apps {
        let mut apps = Apps::default();
        for s in body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "app" => {
                    let Some(app) = self.app_block(b) else {
                        continue;
                    };
                    if let Some(first) = apps.apps.get(&app.id) {
                        let message = format!(
                            "duplicate app {:?}, first declared at {}",
                            app.id, first.loc
                        );
                        self.app = Some(app.id.clone());
                        self.error_at_line(app.loc.line, message);
                        self.app = None;
                    } else {
                        apps.apps.insert(app.id.clone(), app);
                    }
                }
                other => self.unknown(other, "an apps document", &["app"]),
            }
        }
        apps
    }

    fn app_block(&mut self, block: &Block) -> Option<AppSpec> {
        if block.labels.len() != 1 {
            let message = format!(
                "app block needs exactly one name label, like app \"name\" {{ ... }}, found {}",
                block.labels.len()
            );
            self.error(block.span(), message);
            return None;
        }
        let id = block.labels[0].as_str().to_string();
        if let Err(message) = check_app_name(&id) {
            self.error(block.span(), message);
            return None;
        }
        self.app = Some(id.clone());
        self.lines.clear();
        self.bad.clear();
        let block_line = self.line(block.span());
        let epg_placeholder = EpgPath::new("-", "-", "-");
        let mut app = AppSpec {
            cmd: None,
            loc: Location::new(self.file, block_line),
            ..AppSpec::new(&id, epg_placeholder, 0.0, 0)
        };
        let mut seen = BTreeSet::new();
        for s in block.body.iter() {
            let (key, span) = match s {
                Structure::Attribute(a) => (a.key.as_str(), a.span()),
                Structure::Block(b) => (b.ident.as_str(), b.span()),
            };
            let repeatable = matches!(key, "constraint" | "health_check" | "network");
            if APP_FIELDS.contains(&key) && !repeatable && !seen.insert(key.to_string()) {
                self.field_error(key, span, format!("{key} is set more than once"));
                continue;
            }
            match s {
                Structure::Attribute(a) => self.app_attribute(a, &mut app),
                Structure::Block(b) => match key {
                    "constraint" => {
                        let field = format!("constraint[{}]", app.constraints.len());
                        // A broken constraint still takes its index, so later ones keep theirs.
                        if let Some(c) = self.constraint(b, &field) {
                            app.constraints.push(c);
                        }
                    }
                    "health_check" => {
                        let field = format!("health_check[{}]", app.health_checks.len());
                        if let Some(h) = self.health_check(b, &field) {
                            app.health_checks.push(h);
                        }
                    }
                    "network" => {
                        let field = format!("network[{}]", app.networks.len());
                        if let Some(n) = self.network(b, &field) {
                            app.networks.push(n);
                        }
                    }
                    "restart" => app.restart = self.restart(b),
                    "upgrade_strategy" => app.upgrade_strategy = self.upgrade_strategy(b),
                    "env" => {
                        self.record("env", b.span());
                        for s in b.body.iter() {
                            match s {
                                Structure::Attribute(a) => {
                                    let key = a.key.as_str().to_string();
                                    let field = format!("env.{key}");
                                    self.record(&field, a.span());
                                    if let Some(t) = self.template(&a.value, &field, a.span()) {
                                        app.env.insert(key, t);
                                    }
                                }
                                Structure::Block(_) => {
                                    self.unknown(s, "env", &["NAME = \"value\" attributes"]);
                                }
                            }
                        }
                    }
                    _ => self.unknown(s, "app", APP_FIELDS),
                },
            }
        }
        for required in ["cpus", "mem", "epg"] {
            if !seen.contains(required) {
                self.bad.insert(required.to_string());
                self.error_at_line(block_line, format!("missing attribute {required:?}"));
            }
        }
        let problems = check_app(&app);
        for Problem { field, message } in problems {
            if self.is_bad(&field) {
                continue;
            }
            let line = self.field_line(&field).unwrap_or(block_line);
            self.error_at_line(line, message);
        }
        self.app = None;
        Some(app)
    }

    fn is_bad(&self, field: &str) -> bool {
        if field.is_empty() {
            // "Neither cmd nor image" is not news if one of them failed to read.
            return self.bad.contains("cmd") || self.bad.contains("image");
        }
        self.bad
            .iter()
            .any(|b| field == b || field.starts_with(&format!("{b}.")))
    }

    /// The line of `field`, or of its nearest enclosing block.
    fn field_line(&self, field: &str) -> Option<u32> {
        let mut field = field;
        loop {
            if let Some(line) = self.lines.get(field) {
                return Some(*line);
            }
            field = &field[..field.rfind('.')?];
        }
    }

    fn record(&mut self, field: &str, span: Option<Range<usize>>) {
        let line = self.line(span);
        self.lines.insert(field.to_string(), line);
    }

    fn app_attribute(&mut self, a: &Attribute, app: &mut AppSpec) {
        let key = a.key.as_str();
        self.record(key, a.span());
        match key {
            "instances" => {
                if let Some(n) = self.whole(a, key, u64::from(u32::MAX)) {
                    app.instances = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
            "cmd" => app.cmd = self.string(a, key),
            "image" => {
                if let Some(text) = self.string(a, key) {
                    match text.parse::<ImageRef>() {
                        Ok(image) => app.image = Some(image),
                        Err(e) => self.field_error(key, a.span(), e.to_string()),
                    }
                }
            }
            "args" => app.args = self.strings(a, key),
            "cpus" => {
                if let Some(n) = self.number(a, key) {
                    app.cpus = n;
                }
            }
            "mem" => {
                if let Some(n) = self.whole(a, key, u64::MAX) {
                    app.mem = n;
                }
            }
            "disk" => {
                if let Some(n) = self.whole(a, key, u64::MAX) {
                    app.disk = n;
                }
            }
            "epg" => {
                if let Some(text) = self.string(a, key) {
                    match text.parse::<EpgPath>() {
                        Ok(epg) => app.epg = epg,
                        Err(e) => self.field_error(key, a.span(), format!("epg: {e}")),
                    }
                }
            }
            "privileged" => {
                if let Some(b) = self.bool(a, key) {
                    app.privileged = b;
                }
            }
            "tags" => app.tags = self.strings(a, key),
            "security_groups" => app.security_groups = Some(self.strings(a, key)),
            "endpoint" => app.endpoint = self.string(a, key),
            "ip" => {
                if let Some(text) = self.string(a, key) {
                    match text.parse() {
                        Ok(ip) => app.ip = Some(ip),
                        Err(_) => self.field_error(
                            key,
                            a.span(),
                            format!("ip {text:?} is not an IPv4 or IPv6 address"),
                        ),
                    }
                }
            }
            "ports" => {
                for (name, value) in self.object(a, key) {
                    let field = format!("ports.{name}");
                    match value {
                        Expression::Number(n) => {
                            match n.value().as_u64().and_then(|p| u16::try_from(p).ok()) {
                                Some(port) => {
                                    app.ports.insert(name, port);
                                }
                                None => self.field_error(
                                    &field,
                                    a.span(),
                                    format!(
                                        "{field} must be a port from 1 to 65535, found {}",
                                        n.value()
                                    ),
                                ),
                            }
                        }
                        other => self.field_error(
                            &field,
                            a.span(),
                            format!("{field} must be a port number, found {}", describe(&other)),
                        ),
                    }
                }
            }
            "meta" => {
                for (name, value) in self.object(a, key) {
                    match value {
                        Expression::String(s) => {
                            app.meta.insert(name, s.value().clone());
                        }
                        other => {
                            let field = format!("meta.{name}");
                            let message =
                                format!("{field} must be a string, found {}", describe(&other));
                            self.field_error(&field, a.span(), message);
                        }
                    }
                }
            }
            "env" => {
                let Expression::Object(object) = &a.value else {
                    self.type_error(a, key, "an object of NAME = \"value\"");
                    return;
                };
                for (k, v) in object.iter() {
                    let name = match k {
                        ObjectKey::Ident(ident) => ident.as_str().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(_) => {
                            self.field_error(key, a.span(), "env names must be literal".into());
                            continue;
                        }
                    };
                    let field = format!("env.{name}");
                    let span = v.expr().span().or(a.span());
                    self.record(&field, span.clone());
                    if let Some(t) = self.template(v.expr(), &field, span) {
                        app.env.insert(name, t);
                    }
                }
            }
            _ => self.unknown(&Structure::Attribute(a.clone()), "app", APP_FIELDS),
        }
    }

    /// An environment value: a string whose `${...}` are app references.
    fn template(
        &mut self,
        value: &Expression,
        field: &str,
        span: Option<Range<usize>>,
    ) -> Option<EnvTemplate> {
        let source = match value {
            Expression::String(s) => s.value().replace("${", "$${"),
            Expression::StringTemplate(t) => {
                let mut source = String::new();
                for element in t.iter() {
                    match element {
                        Element::Literal(l) => source.push_str(&l.value().replace("${", "$${")),
                        Element::Interpolation(i) => {
                            source.push_str(&format!("${{{}}}", i.expr.to_string().trim()));
                        }
                        Element::Directive(_) => {
                            let message = format!(
                                "{field}: template directives (%{{...}}) are not supported; write %%{{ for a literal"
                            );
                            self.field_error(field, span, message);
                            return None;
                        }
                    }
                }
                source
            }
            Expression::Number(n) => n.value().to_string(),
            Expression::Bool(b) => b.value().to_string(),
            other => {
                let message = format!("{field} must be a string, found {}", describe(other));
                self.field_error(field, span, message);
                return None;
            }
        };
        match source.parse::<EnvTemplate>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.field_error(field, span, format!("{field}: {e}"));
                None
            }
        }
    }

    fn constraint(&mut self, block: &Block, field: &str) -> Option<Constraint> {
        self.record(field, block.span());
        let mut attribute = None;
        let mut operator = None;
        let mut value: Option<(Expression, Option<Range<usize>>)> = None;
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "attribute" => {
                    attribute = self.string(a, &format!("{field}.attribute"));
                }
                Structure::Attribute(a) if a.key.as_str() == "operator" => {
                    operator = self.string(a, &format!("{field}.operator"));
                }
                Structure::Attribute(a) if a.key.as_str() == "value" => {
                    self.record(&format!("{field}.value"), a.span());
                    value = Some((a.value.clone(), a.span()));
                }
                other => self.unknown(other, "constraint", &["attribute", "operator", "value"]),
            }
        }
        let span = block.span();
        let (Some(attribute), Some(operator)) = (attribute, operator) else {
            self.field_error(
                field,
                span,
                "constraint needs attribute and operator".into(),
            );
            return None;
        };
        let value_text = |r: &mut Self| -> Option<String> {
            match &value {
                Some((Expression::String(s), _)) => Some(s.value().clone()),
                Some((Expression::Number(n), _)) => Some(n.value().to_string()),
                Some((other, vspan)) => {
                    let message = format!(
                        "constraint value must be a string or number, found {}",
                        describe(other)
                    );
                    r.field_error(field, vspan.clone(), message);
                    None
                }
                None => {
                    let message = format!("constraint operator {operator:?} needs a value");
                    r.field_error(field, span.clone(), message);
                    None
                }
            }
        };
        let takes_no_value = |r: &mut Self| {
            if let Some((_, vspan)) = &value {
                let message = format!("constraint operator {operator:?} takes no value");
                r.field_error(field, vspan.clone(), message);
            }
        };
        match operator.as_str() {
            "unique" => {
                takes_no_value(self);
                Some(Constraint::Unique { attribute })
            }
            "spread" => {
                takes_no_value(self);
                Some(Constraint::Spread { attribute })
            }
            "=" => Some(Constraint::Equal {
                attribute,
                value: value_text(self)?,
            }),
            "like" => {
                let text = value_text(self)?;
                match Pattern::new(&text) {
                    Ok(value) => Some(Constraint::Like { attribute, value }),
                    Err(e) => {
                        self.field_error(
                            field,
                            value.as_ref().and_then(|v| v.1.clone()),
                            e.to_string(),
                        );
                        None
                    }
                }
            }
            "max_per" => {
                let text = value_text(self)?;
                match text.parse::<u32>() {
                    Ok(value) => Some(Constraint::MaxPer { attribute, value }),
                    Err(_) => {
                        let message = format!(
                            "max_per value must be a whole number of tasks, found {text:?}"
                        );
                        self.field_error(field, value.as_ref().and_then(|v| v.1.clone()), message);
                        None
                    }
                }
            }
            other => {
                let message = format!(
                    "constraint operator {other:?} is not one of: {}",
                    Constraint::OPERATORS.join(", ")
                );
                self.field_error(field, span, message);
                None
            }
        }
    }

    fn health_check(&mut self, block: &Block, field: &str) -> Option<HealthCheck> {
        const ATTRS: &[&str] = &[
            "type",
            "port",
            "path",
            "command",
            "grace_period",
            "interval",
            "timeout",
            "max_consecutive_failures",
        ];
        self.record(field, block.span());
        let mut check = HealthCheck::new(HealthCheckKind::Tcp);
        let mut kind_seen = false;
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, "health_check", ATTRS);
                continue;
            };
            let key = a.key.as_str();
            let sub = format!("{field}.{key}");
            self.record(&sub, a.span());
            match key {
                "type" => {
                    kind_seen = true;
                    if let Some(text) = self.string(a, &sub) {
                        match HealthCheckKind::parse(&text) {
                            Some(kind) => check.kind = kind,
                            None => {
                                let message = format!(
                                    "health check type {text:?} is not one of: {}",
                                    HealthCheckKind::NAMES.join(", ")
                                );
                                self.field_error(field, a.span(), message);
                            }
                        }
                    }
                }
                "port" => {
                    check.port = self
                        .whole(a, &sub, u64::from(u16::MAX))
                        .and_then(|p| u16::try_from(p).ok());
                }
                "path" => check.path = self.string(a, &sub),
                "command" => check.command = self.string(a, &sub),
                "grace_period" => {
                    if let Some(d) = self.duration(a, &sub) {
                        check.grace_period = d;
                    }
                }
                "interval" => {
                    if let Some(d) = self.duration(a, &sub) {
                        check.interval = d;
                    }
                }
                "timeout" => {
                    if let Some(d) = self.duration(a, &sub) {
                        check.timeout = d;
                    }
                }
                "max_consecutive_failures" => {
                    if let Some(n) = self.whole(a, &sub, u64::from(u32::MAX)) {
                        check.max_consecutive_failures = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
                _ => self.unknown(s, "health_check", ATTRS),
            }
        }
        if !kind_seen {
            self.field_error(
                field,
                block.span(),
                "health_check needs a type (http, tcp or command)".into(),
            );
        }
        Some(check)
    }

    /// `network { epg = "t/a/e"  ip = "10.0.1.5" }`: one more network of the tasks.
    fn network(&mut self, block: &Block, field: &str) -> Option<AppNetwork> {
        const ATTRS: &[&str] = &["epg", "ip"];
        self.record(field, block.span());
        // Problems of the networks as a whole (too many) point at the first.
        if !self.lines.contains_key("network") {
            self.record("network", block.span());
        }
        let (mut epg, mut ip, mut ok) = (None, None, true);
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, "network", ATTRS);
                ok = false;
                continue;
            };
            let key = a.key.as_str();
            let sub = format!("{field}.{key}");
            self.record(&sub, a.span());
            match key {
                "epg" => match self.string(a, &sub).map(|t| t.parse::<EpgPath>()) {
                    Some(Ok(path)) => epg = Some(path),
                    Some(Err(e)) => {
                        self.field_error(&sub, a.span(), format!("epg: {e}"));
                        ok = false;
                    }
                    None => ok = false,
                },
                "ip" => match self.string(a, &sub).map(|t| (t.parse(), t)) {
                    Some((Ok(addr), _)) => ip = Some(addr),
                    Some((Err(_), text)) => {
                        self.field_error(
                            &sub,
                            a.span(),
                            format!("ip {text:?} is not an IPv4 or IPv6 address"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                _ => {
                    self.unknown(s, "network", ATTRS);
                    ok = false;
                }
            }
        }
        let Some(epg) = epg else {
            if ok {
                self.field_error(field, block.span(), "network needs an epg".to_string());
            }
            return None;
        };
        ok.then_some(AppNetwork { epg, ip })
    }

    fn restart(&mut self, block: &Block) -> RestartPolicy {
        const ATTRS: &[&str] = &["backoff", "backoff_factor", "max_delay"];
        self.record("restart", block.span());
        let mut policy = RestartPolicy::default();
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, "restart", ATTRS);
                continue;
            };
            let sub = format!("restart.{}", a.key.as_str());
            self.record(&sub, a.span());
            match a.key.as_str() {
                "backoff" => {
                    if let Some(d) = self.duration(a, &sub) {
                        policy.backoff = d;
                    }
                }
                "backoff_factor" => {
                    if let Some(n) = self.number(a, &sub) {
                        policy.backoff_factor = n;
                    }
                }
                "max_delay" => {
                    if let Some(d) = self.duration(a, &sub) {
                        policy.max_delay = d;
                    }
                }
                _ => self.unknown(s, "restart", ATTRS),
            }
        }
        policy
    }

    fn upgrade_strategy(&mut self, block: &Block) -> UpgradeStrategy {
        const ATTRS: &[&str] = &["minimum_health_capacity", "maximum_over_capacity"];
        self.record("upgrade_strategy", block.span());
        let mut strategy = UpgradeStrategy::default();
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, "upgrade_strategy", ATTRS);
                continue;
            };
            let sub = format!("upgrade_strategy.{}", a.key.as_str());
            self.record(&sub, a.span());
            match a.key.as_str() {
                "minimum_health_capacity" => {
                    if let Some(n) = self.number(a, &sub) {
                        strategy.minimum_health_capacity = n;
                    }
                }
                "maximum_over_capacity" => {
                    if let Some(n) = self.number(a, &sub) {
                        strategy.maximum_over_capacity = n;
                    }
                }
                _ => self.unknown(s, "upgrade_strategy", ATTRS),
            }
        }
        strategy
    }

    // ---- typed attribute values; each failure marks its field bad ----

    fn type_error(&mut self, a: &Attribute, field: &str, expected: &str) {
        let message = format!(
            "{} must be {expected}, found {}",
            a.key.as_str(),
            describe(&a.value)
        );
        self.field_error(field, a.span(), message);
    }

    fn string(&mut self, a: &Attribute, field: &str) -> Option<String> {
        match &a.value {
            Expression::String(s) => Some(s.value().clone()),
            Expression::StringTemplate(_) => {
                let message = format!(
                    "{} cannot hold ${{...}}: only env values refer to other apps; write $${{ for a literal",
                    a.key.as_str()
                );
                self.field_error(field, a.span(), message);
                None
            }
            _ => {
                self.type_error(a, field, "a string");
                None
            }
        }
    }

    fn strings(&mut self, a: &Attribute, field: &str) -> Vec<String> {
        let Expression::Array(items) = &a.value else {
            self.type_error(a, field, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item {
                Expression::String(s) => out.push(s.value().clone()),
                other => {
                    let message = format!(
                        "{} must list strings, found {}",
                        a.key.as_str(),
                        describe(other)
                    );
                    self.field_error(field, a.span(), message);
                }
            }
        }
        out
    }

    /// The entries of an object attribute (`{ name = value }`), names as written.
    fn object(&mut self, a: &Attribute, field: &str) -> Vec<(String, Expression)> {
        let Expression::Object(object) = &a.value else {
            self.type_error(a, field, "an object of name = value");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in object.iter() {
            match k {
                ObjectKey::Ident(ident) => out.push((ident.as_str().to_string(), v.expr().clone())),
                ObjectKey::Expression(Expression::String(s)) => {
                    out.push((s.value().clone(), v.expr().clone()));
                }
                ObjectKey::Expression(_) => {
                    self.field_error(field, a.span(), format!("{field} names must be literal"));
                }
            }
        }
        out
    }

    fn bool(&mut self, a: &Attribute, field: &str) -> Option<bool> {
        match &a.value {
            Expression::Bool(b) => Some(*b.value()),
            _ => {
                self.type_error(a, field, "true or false");
                None
            }
        }
    }

    fn number(&mut self, a: &Attribute, field: &str) -> Option<f64> {
        let value = match &a.value {
            Expression::Number(n) => n.value().as_f64(),
            Expression::UnaryOp(op) if *op.operator.value() == UnaryOperator::Neg => {
                match &op.expr {
                    Expression::Number(n) => n.value().as_f64().map(|v| -v),
                    _ => None,
                }
            }
            _ => None,
        };
        if value.is_none() {
            self.type_error(a, field, "a number");
        }
        value
    }

    /// A whole number from 0 to `max`.
    fn whole(&mut self, a: &Attribute, field: &str, max: u64) -> Option<u64> {
        let n = self.number(a, field)?;
        if n.fract() != 0.0 || n < 0.0 || n > max as f64 {
            let message = format!(
                "{} must be a whole number from 0 to {max}, found {n}",
                a.key.as_str()
            );
            self.field_error(field, a.span(), message);
            return None;
        }
        // In range and whole, so the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n as u64)
    }

    fn duration(&mut self, a: &Attribute, field: &str) -> Option<Duration> {
        let text = self.string(a, field)?;
        match text.parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.field_error(field, a.span(), format!("{}: {e}", a.key.as_str()));
                None
            }
        }
    }
}
