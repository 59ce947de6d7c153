//! Declarative documents: HCL (as Terraform, Nomad and Consul write it) and its JSON twin.
//!
//! Every problem found is collected, with file, line and object path, so that a user
//! sees them all at once; a document with any error yields no model at all.

use crate::hcl::{LineIndex, describe};
use crate::json::{KeyLine, KeyLines};
use crate::model::*;
use crate::model::{PORT_NOT_AN_INTEGER, port_from_literal};
use crate::path::ObjectPath;
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::ops::Range;

/// One problem in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub loc: Location,
    /// The object the problem is in, when known (`shop/bd:net-a`).
    pub path: Option<ObjectPath>,
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}: {}", self.loc, path, self.message),
            None => write!(f, "{}: {}", self.loc, self.message),
        }
    }
}

/// Every problem found in a set of documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseErrors(pub Vec<DocumentError>);

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

/// Parses one HCL document.
pub fn parse_hcl(file: &str, text: &str) -> Result<Model, ParseErrors> {
    let mut docs = Documents::default();
    docs.add_hcl(file, text);
    docs.finish()
}

/// Parses one JSON document (the JSON twin of the HCL structure).
pub fn parse_json(file: &str, text: &str) -> Result<Model, ParseErrors> {
    let mut docs = Documents::default();
    docs.add_json(file, text);
    docs.finish()
}

/// Several documents merged into one model: a tenant may span files, an object may not.
#[derive(Debug, Default)]
pub struct Documents {
    model: Model,
    errors: Vec<DocumentError>,
}

impl Documents {
    pub fn add_hcl(&mut self, file: &str, text: &str) {
        let body = match hcl_edit::parser::parse_body(text) {
            Ok(body) => body,
            Err(e) => {
                let line = u32::try_from(e.location().line()).unwrap_or(u32::MAX);
                self.errors.push(DocumentError {
                    loc: Location::new(file, line),
                    path: None,
                    message: format!("malformed HCL: {}", e.message()),
                });
                return;
            }
        };
        let mut reader = Reader::new(file, text);
        let model = reader.document(&body);
        self.errors.extend(reader.errors);
        self.merge(model);
    }

    pub fn add_json(&mut self, file: &str, text: &str) {
        match serde_json::from_str::<Model>(text) {
            Ok(mut model) => {
                let lines = KeyLines::scan(text);
                let errors = fill_json_derived(file, lines.as_ref(), &mut model);
                self.errors.extend(errors);
                self.merge(model);
            }
            Err(e) => self.errors.push(DocumentError {
                loc: Location::new(file, u32::try_from(e.line()).unwrap_or(u32::MAX)),
                path: None,
                message: if e.is_data() {
                    // Well-formed, but not a document: an unknown field, a bad value.
                    json_message(&e, text)
                } else {
                    format!("malformed JSON: {e}")
                },
            }),
        }
    }

    pub fn finish(self) -> Result<Model, ParseErrors> {
        if self.errors.is_empty() {
            Ok(self.model)
        } else {
            Err(ParseErrors(self.errors))
        }
    }

    fn merge(&mut self, incoming: Model) {
        for (tname, tenant) in incoming.tenants {
            match self.model.tenants.entry(tname.clone()) {
                Entry::Vacant(v) => {
                    v.insert(tenant);
                }
                Entry::Occupied(mut o) => {
                    let tpath = ObjectPath::tenant(&tname);
                    let have = o.get_mut();
                    let errors = &mut self.errors;
                    merge_map(
                        &mut have.vrfs,
                        tenant.vrfs,
                        &tpath,
                        "vrf",
                        |v| &v.loc,
                        errors,
                    );
                    merge_map(
                        &mut have.bridge_domains,
                        tenant.bridge_domains,
                        &tpath,
                        "bridge_domain",
                        |v| &v.loc,
                        errors,
                    );
                    merge_map(
                        &mut have.filters,
                        tenant.filters,
                        &tpath,
                        "filter",
                        |v| &v.loc,
                        errors,
                    );
                    merge_map(
                        &mut have.contracts,
                        tenant.contracts,
                        &tpath,
                        "contract",
                        |v| &v.loc,
                        errors,
                    );
                    merge_map(
                        &mut have.taboos,
                        tenant.taboos,
                        &tpath,
                        "taboo",
                        |v| &v.loc,
                        errors,
                    );
                    merge_map(
                        &mut have.security_groups,
                        tenant.security_groups,
                        &tpath,
                        "security_group",
                        |v| &v.loc,
                        errors,
                    );
                    for (aname, ap) in tenant.app_profiles {
                        match have.app_profiles.entry(aname.clone()) {
                            Entry::Vacant(v) => {
                                v.insert(ap);
                            }
                            Entry::Occupied(mut o) => {
                                let apath = tpath.child("application_profile", &aname);
                                merge_map(
                                    &mut o.get_mut().epgs,
                                    ap.epgs,
                                    &apath,
                                    "epg",
                                    |v| &v.loc,
                                    errors,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

fn merge_map<T>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    parent: &ObjectPath,
    kind: &str,
    loc: impl Fn(&T) -> &Location,
    errors: &mut Vec<DocumentError>,
) {
    for (name, value) in from {
        match into.entry(name) {
            Entry::Vacant(v) => {
                v.insert(value);
            }
            Entry::Occupied(o) => errors.push(DocumentError {
                loc: loc(&value).clone(),
                path: Some(parent.child(kind, o.key())),
                message: format!(
                    "duplicate {kind} {:?}, first declared at {}",
                    o.key(),
                    loc(o.get())
                ),
            }),
        }
    }
}

/// Completes a model deserialized from JSON (the API's twin of HCL): subnet keys become
/// CIDRs. `parse_json` calls it; a server that deserializes a `Model` itself must too.
pub fn resolve_json_keys(model: &mut Model) -> Result<(), ParseErrors> {
    let errors = fill_json_derived("<request>", None, model);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ParseErrors(errors))
    }
}

/// JSON has no labels to parse: subnet keys become CIDRs and names are checked here.
/// With the key lines of the text, every object also learns where it was declared.
fn fill_json_derived(
    file: &str,
    lines: Option<&KeyLines>,
    model: &mut Model,
) -> Vec<DocumentError> {
    let mut fill = JsonFill {
        file,
        placed: lines.is_some(),
        errors: Vec::new(),
    };
    let tenants = lines.and_then(|l| l.get("tenant"));
    for (tname, tenant) in &mut model.tenants {
        let tpath = ObjectPath::tenant(tname);
        let tkey = child(tenants, tname);
        fill.check(tkey, &tpath, "tenant", tname);
        if fill.placed {
            tenant.loc = fill.loc(tkey);
        }
        fill.each(&mut tenant.vrfs, tkey, &tpath, "vrf", |fill, vrf, k, _| {
            if fill.placed {
                vrf.any.loc = fill.loc(child(k, "any").or(k));
            }
        });
        fill.each(
            &mut tenant.filters,
            tkey,
            &tpath,
            "filter",
            |fill, f, k, path| {
                fill.each(&mut f.entries, k, path, "entry", |_, _, _, _| {});
            },
        );
        fill.each(
            &mut tenant.contracts,
            tkey,
            &tpath,
            "contract",
            |fill, c, k, path| {
                fill.each(&mut c.subjects, k, path, "subject", |_, _, _, _| {});
            },
        );
        fill.each(
            &mut tenant.taboos,
            tkey,
            &tpath,
            "taboo",
            |fill, t, k, path| {
                fill.each(&mut t.subjects, k, path, "subject", |_, _, _, _| {});
            },
        );
        fill.each(
            &mut tenant.security_groups,
            tkey,
            &tpath,
            "security_group",
            |fill, g, k, path| {
                fill.each(&mut g.rules, k, path, "rule", |_, _, _, _| {});
            },
        );
        let aps = &mut tenant.app_profiles;
        fill.each(
            aps,
            tkey,
            &tpath,
            "application_profile",
            |fill, ap, k, path| {
                fill.each(&mut ap.epgs, k, path, "epg", |_, _, _, _| {});
            },
        );
        let bds = &mut tenant.bridge_domains;
        fill.each(bds, tkey, &tpath, "bridge_domain", |fill, bd, k, path| {
            for (cidr, subnet) in &mut bd.subnets {
                let k = child(child(k, "subnet"), cidr);
                if fill.placed {
                    subnet.loc = fill.loc(k);
                }
                match parse_cidr(cidr) {
                    Ok(net) => subnet.cidr = net,
                    Err(message) => fill.errors.push(DocumentError {
                        loc: fill.loc(k),
                        path: Some(path.child("subnet", cidr)),
                        message,
                    }),
                }
            }
        });
    }
    fill.errors
}

/// The key `name` inside the object under the key `at`.
fn child<'k>(at: Option<&'k KeyLine>, name: &str) -> Option<&'k KeyLine> {
    at.and_then(|k| k.value.get(name))
}

/// Objects that remember where they were declared.
trait Placed {
    fn loc_mut(&mut self) -> &mut Location;
}

macro_rules! placed {
    ($($t:ty),*) => {
        $(impl Placed for $t {
            fn loc_mut(&mut self) -> &mut Location {
                &mut self.loc
            }
        })*
    };
}
placed!(
    Vrf,
    BridgeDomain,
    Filter,
    FilterEntry,
    Contract,
    Subject,
    Taboo,
    TabooSubject,
    AppProfile,
    Epg,
    SecurityGroup,
    SecurityRule
);

/// What [`fill_json_derived`] carries through the model.
struct JsonFill<'f> {
    file: &'f str,
    /// Whether the text's key lines are known; without them objects keep their location.
    placed: bool,
    errors: Vec<DocumentError>,
}

impl JsonFill<'_> {
    fn loc(&self, at: Option<&KeyLine>) -> Location {
        Location::new(self.file, at.map_or(0, |k| k.line))
    }

    fn check(&mut self, at: Option<&KeyLine>, path: &ObjectPath, kind: &str, name: &str) {
        if let Err(message) = check_name(name) {
            self.errors.push(DocumentError {
                loc: self.loc(at),
                path: Some(path.clone()),
                message: format!("{kind}: {message}"),
            });
        }
    }

    /// The objects of one kind under `parent`: each placed at its key and its name
    /// checked, then handed to `inner` with its key and path.
    fn each<'k, T: Placed>(
        &mut self,
        map: &mut BTreeMap<String, T>,
        parent: Option<&'k KeyLine>,
        parent_path: &ObjectPath,
        kind: &str,
        mut inner: impl FnMut(&mut Self, &mut T, Option<&'k KeyLine>, &ObjectPath),
    ) {
        let within = child(parent, kind);
        for (name, object) in map {
            let k = child(within, name);
            let path = parent_path.child(kind, name);
            self.check(k, &path, kind, name);
            if self.placed {
                *object.loc_mut() = self.loc(k);
            }
            inner(self, object, k, &path);
        }
    }
}

/// serde_json's message, with a port that is no 64-bit integer quoted as written: serde
/// made a float of it, and its position is just after the number.
fn json_message(e: &serde_json::Error, text: &str) -> String {
    let message = e.to_string();
    if !message.starts_with(PORT_NOT_AN_INTEGER) {
        return message;
    }
    let written = text
        .lines()
        .nth(e.line().saturating_sub(1))
        .and_then(|line| line.get(..e.column().min(line.len())))
        .map(|before| {
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')))
                .map_or(0, |i| i + 1);
            before[start..].to_string()
        })
        .filter(|w| !w.is_empty());
    match written {
        Some(w) => {
            let why = port_from_literal(&w)
                .err()
                .unwrap_or_else(|| format!("{w:?} is not a port number"));
            format!("{why} at line {} column {}", e.line(), e.column())
        }
        None => message,
    }
}

/// Parses a subnet's CIDR, refusing host bits.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR such as 10.1.0.0/24"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Names become path segments, so they may not contain separators.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Walks an HCL body against weft's schema, collecting errors.
struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex,
    errors: Vec<DocumentError>,
}

/// A named block's name. Only a good one names an object in the model; a bad one (the
/// error recorded) still names the paths of the errors found inside the block.
struct Label {
    name: String,
    good: bool,
}

impl<'a> Reader<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            lines: LineIndex::new(text),
            errors: Vec::new(),
        }
    }

    fn loc(&self, span: Option<Range<usize>>) -> Location {
        Location::new(self.file, self.lines.line(span))
    }

    fn error(&mut self, span: Option<Range<usize>>, path: Option<&ObjectPath>, message: String) {
        let loc = self.loc(span);
        self.errors.push(DocumentError {
            loc,
            path: path.cloned(),
            message,
        });
    }

    fn unknown(
        &mut self,
        s: &Structure,
        path: Option<&ObjectPath>,
        within: &str,
        expected: &[&str],
    ) {
        let (what, name, span) = match s {
            Structure::Attribute(a) => ("attribute", a.key.as_str(), a.span()),
            Structure::Block(b) => ("block", b.ident.as_str(), b.span()),
        };
        let expected = if expected.is_empty() {
            "nothing".to_string()
        } else {
            expected.join(", ")
        };
        self.error(
            span,
            path,
            format!("unknown {what} {name:?} in {within} (expected: {expected})"),
        );
    }

    /// A named block has exactly one label, a valid name.
    fn label(&mut self, block: &Block, parent: Option<&ObjectPath>) -> Label {
        let kind = block.ident.as_str();
        if block.labels.len() != 1 {
            let msg = format!(
                "{kind} block needs exactly one name label, like {kind} \"name\" {{ ... }}, found {}",
                block.labels.len()
            );
            self.error(block.span(), parent, msg);
            let name = block.labels.first().map_or("<unnamed>", |l| l.as_str());
            return Label {
                name: name.to_string(),
                good: false,
            };
        }
        let name = block.labels[0].as_str().to_string();
        if kind != "subnet"
            && let Err(msg) = check_name(&name)
        {
            self.error(block.span(), parent, format!("{kind}: {msg}"));
            return Label { name, good: false };
        }
        Label { name, good: true }
    }

    /// Inserts a named object, reporting a duplicate with both places.
    fn insert<T>(
        &mut self,
        map: &mut BTreeMap<String, T>,
        name: String,
        value: T,
        path: &ObjectPath,
        kind: &str,
        loc: impl Fn(&T) -> &Location,
    ) {
        match map.entry(name) {
            Entry::Vacant(v) => {
                v.insert(value);
            }
            Entry::Occupied(o) => self.errors.push(DocumentError {
                loc: loc(&value).clone(),
                path: Some(path.clone()),
                message: format!(
                    "duplicate {kind} {:?}, first declared at {}",
                    o.key(),
                    loc(o.get())
                ),
            }),
        }
    }

    fn document(&mut self, body: &Body) -> Model {
        let mut model = Model::default();
        for s in body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "tenant" => {
                    // A bad name is an error, and so is everything wrong inside.
                    let Label { name, good } = self.label(b, None);
                    let path = ObjectPath::tenant(&name);
                    let tenant = self.tenant(b, &path);
                    if good {
                        self.insert(&mut model.tenants, name, tenant, &path, "tenant", |t| {
                            &t.loc
                        });
                    }
                }
                other => self.unknown(other, None, "a document", &["tenant"]),
            }
        }
        model
    }

    fn tenant(&mut self, block: &Block, path: &ObjectPath) -> Tenant {
        let mut t = Tenant {
            loc: self.loc(block.span()),
            ..Tenant::default()
        };
        for s in block.body.iter() {
            let Structure::Block(b) = s else {
                self.unknown(s, Some(path), "tenant", TENANT_BLOCKS);
                continue;
            };
            match b.ident.as_str() {
                "vrf" => self.named_child(b, path, &mut t.vrfs, Self::vrf, |v| &v.loc),
                "bridge_domain" => {
                    let bds = &mut t.bridge_domains;
                    self.named_child(b, path, bds, Self::bridge_domain, |v| &v.loc);
                }
                "filter" => self.named_child(b, path, &mut t.filters, Self::filter, |v| &v.loc),
                "contract" => {
                    self.named_child(b, path, &mut t.contracts, Self::contract, |v| &v.loc);
                }
                "taboo" => self.named_child(b, path, &mut t.taboos, Self::taboo, |v| &v.loc),
                "security_group" => {
                    let groups = &mut t.security_groups;
                    self.named_child(b, path, groups, Self::security_group, |v| &v.loc);
                }
                "application_profile" => {
                    let aps = &mut t.app_profiles;
                    self.named_child(b, path, aps, Self::app_profile, |v| &v.loc);
                }
                _ => self.unknown(s, Some(path), "tenant", TENANT_BLOCKS),
            }
        }
        t
    }

    fn vrf(&mut self, block: &Block, path: &ObjectPath) -> Vrf {
        let mut v = Vrf {
            loc: self.loc(block.span()),
            ..Vrf::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "enforced" => {
                    if let Some(b) = self.bool(a, path) {
                        v.enforced = b;
                    }
                }
                Structure::Attribute(a) if a.key.as_str() == "dns_policy" => {
                    if let Some(b) = self.bool(a, path) {
                        v.dns_policy = b;
                    }
                }
                Structure::Block(b) if b.ident.as_str() == "any" => {
                    if !b.labels.is_empty() {
                        self.error(b.span(), Some(path), "any block takes no label".into());
                    }
                    let any_path = path.child("any", "any");
                    v.any.loc = self.loc(b.span());
                    for s in b.body.iter() {
                        match s {
                            Structure::Attribute(a) if a.key.as_str() == "provides" => {
                                v.any.provides = self.names(a, &any_path);
                            }
                            Structure::Attribute(a) if a.key.as_str() == "consumes" => {
                                v.any.consumes = self.names(a, &any_path);
                            }
                            other => self.unknown(
                                other,
                                Some(&any_path),
                                "any",
                                &["provides", "consumes"],
                            ),
                        }
                    }
                }
                other => self.unknown(other, Some(path), "vrf", &["enforced", "dns_policy", "any"]),
            }
        }
        v
    }

    fn bridge_domain(&mut self, block: &Block, path: &ObjectPath) -> BridgeDomain {
        let mut bd = BridgeDomain {
            loc: self.loc(block.span()),
            ..BridgeDomain::default()
        };
        let mut vrf_seen = false;
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "vrf" => {
                    vrf_seen = true;
                    bd.vrf = self.string(a, path).unwrap_or_default();
                }
                Structure::Block(b) if b.ident.as_str() == "subnet" => {
                    let Label {
                        name: cidr_text,
                        good,
                    } = self.label(b, Some(path));
                    let spath = path.child("subnet", &cidr_text);
                    let cidr = match parse_cidr(&cidr_text) {
                        Ok(c) if good => Some(c),
                        Ok(_) => None,
                        Err(msg) => {
                            if good {
                                self.error(b.span(), Some(&spath), msg);
                            }
                            None
                        }
                    };
                    let gateway = self.subnet_gateway(b, &spath);
                    if let (Some(cidr), Some(gateway)) = (cidr, gateway) {
                        let subnet = Subnet {
                            cidr,
                            gateway,
                            loc: self.loc(b.span()),
                        };
                        self.insert(&mut bd.subnets, cidr_text, subnet, &spath, "subnet", |s| {
                            &s.loc
                        });
                    }
                }
                other => self.unknown(other, Some(path), "bridge_domain", &["vrf", "subnet"]),
            }
        }
        if !vrf_seen {
            self.error(block.span(), Some(path), "missing attribute \"vrf\"".into());
        }
        bd
    }

    fn subnet_gateway(&mut self, block: &Block, path: &ObjectPath) -> Option<std::net::IpAddr> {
        let mut gateway = None;
        let mut gateway_seen = false;
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "gateway" => {
                    gateway_seen = true;
                    let Some(text) = self.string(a, path) else {
                        continue;
                    };
                    match text.parse() {
                        Ok(ip) => gateway = Some(ip),
                        Err(_) => self.error(
                            a.span(),
                            Some(path),
                            format!("gateway {text:?} is not an IP address"),
                        ),
                    }
                }
                other => self.unknown(other, Some(path), "subnet", &["gateway"]),
            }
        }
        // Only when absent: a gateway that is there but wrong has its own error.
        if !gateway_seen {
            self.error(
                block.span(),
                Some(path),
                "missing attribute \"gateway\"".into(),
            );
        }
        gateway
    }

    /// A labelled child block: parsed with `parse` and inserted into `map` by name.
    fn named_child<T>(
        &mut self,
        block: &Block,
        parent: &ObjectPath,
        map: &mut BTreeMap<String, T>,
        parse: fn(&mut Self, &Block, &ObjectPath) -> T,
        loc: fn(&T) -> &Location,
    ) {
        let Label { name, good } = self.label(block, Some(parent));
        let kind = block.ident.as_str();
        let child = parent.child(kind, &name);
        // Read even under a bad name, for the errors inside.
        let value = parse(self, block, &child);
        if good {
            self.insert(map, name, value, &child, kind, loc);
        }
    }

    fn app_profile(&mut self, block: &Block, path: &ObjectPath) -> AppProfile {
        let mut ap = AppProfile {
            loc: self.loc(block.span()),
            ..AppProfile::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "epg" => {
                    self.named_child(b, path, &mut ap.epgs, Self::epg, |e| &e.loc);
                }
                other => self.unknown(other, Some(path), "application_profile", &["epg"]),
            }
        }
        ap
    }

    fn epg(&mut self, block: &Block, path: &ObjectPath) -> Epg {
        const ATTRS: &[&str] = &[
            "bridge_domain",
            "provides",
            "consumes",
            "taboos",
            "isolated",
            "preferred_group",
        ];
        let mut e = Epg {
            loc: self.loc(block.span()),
            ..Epg::default()
        };
        let mut bd_seen = false;
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, Some(path), "epg", ATTRS);
                continue;
            };
            match a.key.as_str() {
                "bridge_domain" => {
                    bd_seen = true;
                    e.bridge_domain = self.string(a, path).unwrap_or_default();
                }
                "provides" => e.provides = self.names(a, path),
                "consumes" => e.consumes = self.names(a, path),
                "taboos" => e.taboos = self.names(a, path),
                "isolated" => e.isolated = self.bool(a, path).unwrap_or_default(),
                "preferred_group" => e.preferred_group = self.bool(a, path).unwrap_or_default(),
                _ => self.unknown(s, Some(path), "epg", ATTRS),
            }
        }
        if !bd_seen {
            self.error(
                block.span(),
                Some(path),
                "missing attribute \"bridge_domain\"".into(),
            );
        }
        e
    }

    fn contract(&mut self, block: &Block, path: &ObjectPath) -> Contract {
        let mut c = Contract {
            loc: self.loc(block.span()),
            ..Contract::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "scope" => {
                    if let Some(scope) = self.keyword(a, path, Scope::NAMES, Scope::parse) {
                        c.scope = scope;
                    }
                }
                Structure::Block(b) if b.ident.as_str() == "subject" => {
                    self.named_child(b, path, &mut c.subjects, Self::subject, |s| &s.loc);
                }
                other => self.unknown(other, Some(path), "contract", &["scope", "subject"]),
            }
        }
        c
    }

    fn taboo(&mut self, block: &Block, path: &ObjectPath) -> Taboo {
        let mut t = Taboo {
            loc: self.loc(block.span()),
            ..Taboo::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "subject" => {
                    let subject = |r: &mut Self, b: &Block, p: &ObjectPath| {
                        let loc = r.loc(b.span());
                        TabooSubject {
                            filters: r.subject_body(b, p, false).filters,
                            loc,
                        }
                    };
                    self.named_child(b, path, &mut t.subjects, subject, |s| &s.loc);
                }
                other => self.unknown(other, Some(path), "taboo", &["subject"]),
            }
        }
        t
    }

    fn subject(&mut self, block: &Block, path: &ObjectPath) -> Subject {
        self.subject_body(block, path, true)
    }

    /// A subject's filters and, for contracts (not taboos), its action.
    fn subject_body(&mut self, block: &Block, path: &ObjectPath, with_action: bool) -> Subject {
        let expected: &[&str] = if with_action {
            &["filters", "action"]
        } else {
            &["filters"]
        };
        let mut subject = Subject {
            loc: self.loc(block.span()),
            ..Subject::default()
        };
        let mut filters_seen = false;
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) if a.key.as_str() == "filters" => {
                    filters_seen = true;
                    subject.filters = self.names(a, path);
                }
                Structure::Attribute(a) if with_action && a.key.as_str() == "action" => {
                    let parse = |s: &str| match s {
                        "permit" => Some(Action::Permit),
                        "deny" => Some(Action::Deny),
                        _ => None,
                    };
                    if let Some(action) = self.keyword(a, path, &["permit", "deny"], parse) {
                        subject.action = action;
                    }
                }
                other => self.unknown(other, Some(path), "subject", expected),
            }
        }
        if !filters_seen {
            self.error(
                block.span(),
                Some(path),
                "missing attribute \"filters\"".into(),
            );
        }
        subject
    }

    fn filter(&mut self, block: &Block, path: &ObjectPath) -> Filter {
        let mut f = Filter {
            loc: self.loc(block.span()),
            ..Filter::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "entry" => {
                    self.named_child(b, path, &mut f.entries, Self::entry, |e| &e.loc);
                }
                other => self.unknown(other, Some(path), "filter", &["entry"]),
            }
        }
        f
    }

    fn entry(&mut self, block: &Block, path: &ObjectPath) -> FilterEntry {
        const ATTRS: &[&str] = &["ether_type", "protocol", "source_port", "destination_port"];
        let mut e = FilterEntry {
            loc: self.loc(block.span()),
            ..FilterEntry::default()
        };
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, Some(path), "entry", ATTRS);
                continue;
            };
            match a.key.as_str() {
                "ether_type" => {
                    if let Some(v) = self.keyword(a, path, EtherType::NAMES, EtherType::parse) {
                        e.ether_type = v;
                    }
                }
                "protocol" => {
                    if let Some(v) = self.keyword(a, path, Protocol::NAMES, Protocol::parse) {
                        e.protocol = v;
                    }
                }
                "source_port" => e.source_port = self.ports(a, path).unwrap_or_default(),
                "destination_port" => e.destination_port = self.ports(a, path).unwrap_or_default(),
                _ => self.unknown(s, Some(path), "entry", ATTRS),
            }
        }
        e
    }

    fn security_group(&mut self, block: &Block, path: &ObjectPath) -> SecurityGroup {
        let mut g = SecurityGroup {
            loc: self.loc(block.span()),
            ..SecurityGroup::default()
        };
        for s in block.body.iter() {
            match s {
                Structure::Block(b) if b.ident.as_str() == "rule" => {
                    self.named_child(b, path, &mut g.rules, Self::security_rule, |r| &r.loc);
                }
                other => self.unknown(other, Some(path), "security_group", &["rule"]),
            }
        }
        g
    }

    fn security_rule(&mut self, block: &Block, path: &ObjectPath) -> SecurityRule {
        const ATTRS: &[&str] = &[
            "direction",
            "ether_type",
            "protocol",
            "destination_port",
            "remote_ip_prefix",
            "remote_group",
        ];
        let mut r = SecurityRule {
            loc: self.loc(block.span()),
            ..SecurityRule::default()
        };
        let mut saw_direction = false;
        for s in block.body.iter() {
            let Structure::Attribute(a) = s else {
                self.unknown(s, Some(path), "rule", ATTRS);
                continue;
            };
            match a.key.as_str() {
                "direction" => {
                    saw_direction = true;
                    if let Some(v) = self.keyword(a, path, Direction::NAMES, Direction::parse) {
                        r.direction = v;
                    }
                }
                "ether_type" => {
                    if let Some(v) = self.keyword(a, path, EtherType::NAMES, EtherType::parse) {
                        r.ether_type = v;
                    }
                }
                "protocol" => {
                    if let Some(v) = self.keyword(a, path, Protocol::NAMES, Protocol::parse) {
                        r.protocol = v;
                    }
                }
                "destination_port" => r.destination_port = self.ports(a, path).unwrap_or_default(),
                "remote_ip_prefix" => {
                    let Some(text) = self.string(a, path) else {
                        continue;
                    };
                    match parse_cidr(&text) {
                        Ok(net) => r.remote_ip_prefix = Some(net),
                        Err(message) => {
                            self.error(
                                a.span(),
                                Some(path),
                                format!("remote_ip_prefix: {message}"),
                            );
                        }
                    }
                }
                "remote_group" => r.remote_group = self.string(a, path),
                _ => self.unknown(s, Some(path), "rule", ATTRS),
            }
        }
        if !saw_direction {
            self.error(
                block.span(),
                Some(path),
                "missing attribute \"direction\" (\"ingress\" or \"egress\")".into(),
            );
        }
        r
    }

    // ---- typed attribute values ----

    fn type_error(&mut self, a: &Attribute, path: &ObjectPath, expected: &str) {
        let found = describe(&a.value);
        self.error(
            a.span(),
            Some(path),
            format!("{} must be {expected}, found {found}", a.key.as_str()),
        );
    }

    fn string(&mut self, a: &Attribute, path: &ObjectPath) -> Option<String> {
        match &a.value {
            Expression::String(s) => Some(s.value().clone()),
            _ => {
                self.type_error(a, path, "a string");
                None
            }
        }
    }

    fn bool(&mut self, a: &Attribute, path: &ObjectPath) -> Option<bool> {
        match &a.value {
            Expression::Bool(b) => Some(*b.value()),
            _ => {
                self.type_error(a, path, "true or false");
                None
            }
        }
    }

    fn names(&mut self, a: &Attribute, path: &ObjectPath) -> Vec<String> {
        let Expression::Array(items) = &a.value else {
            self.type_error(a, path, "a list of names, like [\"a\", \"b\"]");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item {
                Expression::String(s) => out.push(s.value().clone()),
                other => {
                    let msg = format!(
                        "{} must list names as strings, found {}",
                        a.key.as_str(),
                        describe(other)
                    );
                    self.error(a.span(), Some(path), msg);
                }
            }
        }
        out
    }

    fn keyword<T>(
        &mut self,
        a: &Attribute,
        path: &ObjectPath,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(a, path)?;
        let value = parse(&text);
        if value.is_none() {
            let msg = format!(
                "{} {text:?} is not one of: {}",
                a.key.as_str(),
                names.join(", ")
            );
            self.error(a.span(), Some(path), msg);
        }
        value
    }

    fn ports(&mut self, a: &Attribute, path: &ObjectPath) -> Option<PortRange> {
        let result = match &a.value {
            Expression::Number(n) => match n.value().as_i64() {
                Some(p) => PortRange::from_bounds(p.into(), p.into()),
                // Too large for 64 bits or a fraction: quoted as written, not as the
                // float the parser made of it (`1e32`).
                None => {
                    let written = a
                        .value
                        .span()
                        .and_then(|span| self.text.get(span))
                        .map_or_else(|| n.value().to_string(), |t| t.trim().to_string());
                    port_from_literal(&written).map(PortRange::single)
                }
            },
            Expression::String(s) => PortRange::parse(s.value()),
            _ => {
                self.type_error(
                    a,
                    path,
                    "a port number or a range string like \"8000-8100\"",
                );
                return None;
            }
        };
        match result {
            Ok(r) => Some(r),
            Err(msg) => {
                self.error(a.span(), Some(path), format!("{}: {msg}", a.key.as_str()));
                None
            }
        }
    }
}

const TENANT_BLOCKS: &[&str] = &[
    "vrf",
    "bridge_domain",
    "filter",
    "contract",
    "taboo",
    "application_profile",
    "security_group",
];
