//! Whole-model checks that need more than one object: references, subnet overlaps,
//! gateways, and combinations of attributes.

use crate::model::*;
use crate::path::{EpgPath, ObjectPath};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, with where it is and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Location,
    pub path: ObjectPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}: {}", self.loc, self.path, self.message)
    }
}

/// Everything [`validate`] found. A model with any error must be rejected whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub diagnostics: Vec<Diagnostic>,
}

impl ValidationReport {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

struct Checker {
    out: Vec<Diagnostic>,
}

impl Checker {
    fn error(&mut self, loc: &Location, path: &ObjectPath, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Error,
            loc: loc.clone(),
            path: path.clone(),
            message,
        });
    }

    fn warning(&mut self, loc: &Location, path: &ObjectPath, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Warning,
            loc: loc.clone(),
            path: path.clone(),
            message,
        });
    }

    /// Every name in `names` must be a key of `known`, and appear once.
    fn references<T>(
        &mut self,
        loc: &Location,
        path: &ObjectPath,
        attribute: &str,
        kind: &str,
        names: &[String],
        known: &BTreeMap<String, T>,
    ) {
        let mut seen = BTreeSet::new();
        for name in names {
            if !known.contains_key(name) {
                self.error(loc, path, format!("{attribute}: unknown {kind} {name:?}"));
            }
            if !seen.insert(name) {
                self.error(
                    loc,
                    path,
                    format!("{attribute}: {kind} {name:?} is listed twice"),
                );
            }
        }
    }
}

/// Checks a parsed model as a whole. Errors and warnings are all reported at once,
/// in a stable order (by file and line).
pub fn validate(model: &Model) -> ValidationReport {
    let mut c = Checker { out: Vec::new() };
    for (tname, tenant) in &model.tenants {
        check_tenant(&mut c, tname, tenant);
    }
    c.out
        .sort_by(|a, b| (&a.loc, a.severity).cmp(&(&b.loc, b.severity)));
    ValidationReport { diagnostics: c.out }
}

fn check_tenant(c: &mut Checker, tname: &str, t: &Tenant) {
    let tpath = ObjectPath::tenant(tname);

    for (fname, filter) in &t.filters {
        let fpath = tpath.child("filter", fname);
        if filter.entries.is_empty() {
            c.error(&filter.loc, &fpath, "filter has no entry".into());
        }
        for (ename, e) in &filter.entries {
            if !e.protocol.has_ports() && (!e.source_port.is_any() || !e.destination_port.is_any())
            {
                c.error(
                    &e.loc,
                    &fpath.child("entry", ename),
                    format!("ports need protocol tcp or udp, not {}", e.protocol),
                );
            }
        }
    }

    for (cname, contract) in &t.contracts {
        let cpath = tpath.child("contract", cname);
        if contract.subjects.is_empty() {
            c.warning(
                &contract.loc,
                &cpath,
                "contract has no subject and permits nothing".into(),
            );
        }
        for (sname, s) in &contract.subjects {
            let spath = cpath.child("subject", sname);
            c.references(&s.loc, &spath, "filters", "filter", &s.filters, &t.filters);
            if s.filters.is_empty() {
                c.error(&s.loc, &spath, "subject lists no filter".into());
            }
        }
    }
    for (name, taboo) in &t.taboos {
        let path = tpath.child("taboo", name);
        for (sname, s) in &taboo.subjects {
            let spath = path.child("subject", sname);
            c.references(&s.loc, &spath, "filters", "filter", &s.filters, &t.filters);
            if s.filters.is_empty() {
                c.error(&s.loc, &spath, "subject lists no filter".into());
            }
        }
    }

    let mut provided: BTreeSet<&str> = BTreeSet::new();
    let mut consumers: Vec<(&str, &Location, ObjectPath)> = Vec::new();
    for (vname, vrf) in &t.vrfs {
        let path = tpath.child("vrf", vname).child("any", "any");
        c.references(
            &vrf.any.loc,
            &path,
            "provides",
            "contract",
            &vrf.any.provides,
            &t.contracts,
        );
        c.references(
            &vrf.any.loc,
            &path,
            "consumes",
            "contract",
            &vrf.any.consumes,
            &t.contracts,
        );
        for name in vrf.any.provides.iter().chain(&vrf.any.consumes) {
            if t.contracts
                .get(name)
                .is_some_and(|k| k.scope == Scope::ApplicationProfile)
            {
                c.error(
                    &vrf.any.loc,
                    &path,
                    format!(
                        "contract {name:?} has scope application-profile, which \"any\" cannot use \
                         (use scope vrf or tenant)"
                    ),
                );
            }
        }
        provided.extend(vrf.any.provides.iter().map(String::as_str));
        consumers.extend(
            vrf.any
                .consumes
                .iter()
                .map(|n| (n.as_str(), &vrf.any.loc, path.clone())),
        );
    }

    for (bname, bd) in &t.bridge_domains {
        let path = tpath.child("bridge_domain", bname);
        if !t.vrfs.contains_key(&bd.vrf) {
            c.error(&bd.loc, &path, format!("vrf: unknown vrf {:?}", bd.vrf));
        }
        for (cidr, s) in &bd.subnets {
            let spath = path.child("subnet", cidr);
            if !s.cidr.contains(&s.gateway) {
                c.error(
                    &s.loc,
                    &spath,
                    format!("gateway {} is outside subnet {}", s.gateway, s.cidr),
                );
            } else if s.gateway == s.cidr.network() && s.cidr.prefix_len() < s.cidr.max_prefix_len()
            {
                c.error(
                    &s.loc,
                    &spath,
                    format!("gateway {} is the subnet's network address", s.gateway),
                );
            }
        }
    }
    check_overlaps(c, &tpath, t);

    for (aname, ap) in &t.app_profiles {
        for (ename, epg) in &ap.epgs {
            let path = ObjectPath::epg(&EpgPath::new(tname, aname, ename));
            if !t.bridge_domains.contains_key(&epg.bridge_domain) {
                c.error(
                    &epg.loc,
                    &path,
                    format!(
                        "bridge_domain: unknown bridge_domain {:?}",
                        epg.bridge_domain
                    ),
                );
            }
            c.references(
                &epg.loc,
                &path,
                "provides",
                "contract",
                &epg.provides,
                &t.contracts,
            );
            c.references(
                &epg.loc,
                &path,
                "consumes",
                "contract",
                &epg.consumes,
                &t.contracts,
            );
            c.references(&epg.loc, &path, "taboos", "taboo", &epg.taboos, &t.taboos);
            provided.extend(epg.provides.iter().map(String::as_str));
            consumers.extend(
                epg.consumes
                    .iter()
                    .map(|n| (n.as_str(), &epg.loc, path.clone())),
            );
        }
    }
    for (name, loc, path) in consumers {
        if t.contracts.contains_key(name) && !provided.contains(name) {
            c.warning(
                loc,
                &path,
                format!("consumes contract {name:?}, which nothing provides"),
            );
        }
    }
}

/// Subnets of all bridge domains of one VRF may not overlap; other VRFs may reuse them.
fn check_overlaps(c: &mut Checker, tpath: &ObjectPath, t: &Tenant) {
    let mut by_vrf: BTreeMap<&str, Vec<(&str, &Subnet)>> = BTreeMap::new();
    for (bname, bd) in &t.bridge_domains {
        for s in bd.subnets.values() {
            by_vrf.entry(&bd.vrf).or_default().push((bname, s));
        }
    }
    for subnets in by_vrf.values() {
        for (i, (abd, a)) in subnets.iter().enumerate() {
            for (bbd, b) in &subnets[i + 1..] {
                if a.cidr.contains(&b.cidr.network()) || b.cidr.contains(&a.cidr.network()) {
                    let path = tpath
                        .child("bridge_domain", bbd)
                        .child("subnet", &b.cidr.to_string());
                    c.error(
                        &b.loc,
                        &path,
                        format!(
                            "subnet {} overlaps subnet {} of bridge_domain {abd:?} ({}) in the same vrf",
                            b.cidr, a.cidr, a.loc
                        ),
                    );
                }
            }
        }
    }
}
