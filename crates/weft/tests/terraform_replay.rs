//! The Terraform OpenStack provider's conversation for the seed paper's file 7.2
//! (`examples/seed-terraform/7.2-today.tf`), replayed request by request against a process
//! cluster (com1, com2) that serves OpenStack, with real Docker containers: the 99 steps of
//! `tests/fixtures/terraform-openstack/seed-7.2.json` (`terraform apply`, then `terraform
//! destroy`), then the fixture's variants (Keystone v2.0 tokens, a versionless `auth_url`,
//! `delayed_auth = false`), which are auth and discovery requests only.
//!
//! Each step is sent as the provider sends it, with a plain HTTP client: its method, path
//! (identity relative to the `auth_url`'s base, network, compute and image relative to the
//! catalog's public RegionOne URLs, as the provider takes them), query, body and headers
//! (`X-Auth-Token` but on token requests, `Accept`, the step's own microversion headers),
//! `{placeholders}` filled from the `produces` of earlier steps. Each answer must have a
//! status the step's `response_status` lists, and when it is a success every field of
//! `response_fields_read` must be there with the JSON type the provider decodes it into
//! ([`kind`]; the `critical_fields`: `version` and `ip_version` numbers, `flavor.id` and
//! `security_groups[].name` strings, `created`/`updated` RFC 3339, `OS-SRV-USG:launched_at`
//! without a zone). The test fails naming the step and the field. A wait step polls as its
//! `poll` says (`until_field` reaching one of `values`, a status in `status_states` standing
//! for a state, anything outside `pending` failing at once, as the provider's
//! `StateChangeConf`) with sleeps of at most 1 s and at most 90 s in all (the provider's are
//! 3 to 10 s and 10 or 30 minutes). A `delete` step whose statuses include 409 is repeated
//! while it answers 409, as the provider repeats it. Values the provider compares with the
//! file (names, `admin_state_up`, `enable_dhcp`, the router interface's port, the image and
//! flavor names, `security_groups`, `metadata`) must echo it, and what a refresh reads must
//! be what the apply read.
//!
//! Decisions, per field, written down:
//! - A field may be absent only when the fixture's top-level `absent_ok` names it, with the
//!   reason (Neutron extensions weft does not serve, which a Neutron without them or a
//!   project user does not see either; pagination links, absent on a last page); every other
//!   field must be present as a key, even where its value may be null or empty (`key_name`,
//!   `accessIPv6`).
//! - `router.external_gateway_info` may be null (step 10's note); then nothing below it is
//!   read.
//! - A path through an array (`images[].id`) needs a non-empty array, and a value produced
//!   from one needs exactly one candidate (one image named as the file says, one network
//!   with the id, one address on the network); `flavor_id` is the one flavor whose name is
//!   the file's `flavor_name`, as the provider matches it on the client.
//! - `GET /servers/{id}/tags` asks microversion 2.26, which weft does not serve (406); the
//!   provider logs any error there and reads no tags, so those steps list 406 in the fixture,
//!   with that note. Nothing else is loosened: fields are read only from
//!   successful answers (2xx, and discovery's 300).
//!
//! The servers run a stand-in for the paper's two Mesos images, built here `FROM scratch`
//! with Debian's static busybox (no registry is reachable) and registered through Glance
//! under the name `mesos`, which `7.2-today.tf` and the fixture name (the file as published
//! named two Mesos images by UUID; calling this one `busybox` would say it is the plain
//! busybox image, which it is not). Its command plays both roles: without `master` in its
//! environment it is the master (TCP 5050, prints every registration with the address it
//! came from, answers `ok`); with `master` set, which Nova metadata makes an environment
//! variable, it is an agent that registers with the master until it gets `ok`, every
//! attempt bounded by `timeout 3`. At the end of the apply the master and three agents run
//! as containers of that image, each agent's environment has `master=<the master's
//! access_ip_v4 as weft answered it>`, and the master's log has a registration from each
//! agent's address. After the destroy no container, endpoint, namespace or nft element of
//! the servers is left, and the network, subnet, router, interface port and servers are 404.
//!
//! Root (namespaces) and Docker: skipped loudly without them, failed in CI (`CI` set).
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{
    ImageContainers, build_busybox_image, docker, docker_running, process_env, task_containers,
};
use common::openstack::{OpenStackCluster, add_user, assert_installed, assert_nothing_left};
use common::wait_until;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const FIXTURE: &str = include_str!("../../../tests/fixtures/terraform-openstack/seed-7.2.json");
const TF_FILE: &str = include_str!("../../../examples/seed-terraform/7.2-today.tf");
/// The stand-in for the paper's Mesos images.
const IMAGE: &str = "weft-test/mesos:latest";
/// Every wait step gives up after this long (the provider's bounds are 10 and 30 minutes).
const WAIT_LIMIT: Duration = Duration::from_secs(90);
/// The pauses between polls, the last repeated: short, unlike the provider's 3, 6, 10 s.
const POLL_SLEEPS_MS: [u64; 4] = [200, 400, 700, 1000];
/// What the provider says it is (`common_request_headers`).
const USER_AGENT: &str = "HashiCorp Terraform/1.9.8 (+https://www.terraform.io) Terraform Plugin SDK/2.40.1 Terraform Provider OpenStack/3.4.0 gophercloud/v2.13.0";

/// The image's command: the seed's Mesos master or agent, chosen by `master`.
const MESOS: &str = r#"#!/bin/sh
# The seed's Mesos roles in one image. Without `master` in the environment: the master,
# listening on TCP 5050; each registration is printed (by mesos-register) and answered
# "ok". With it (Nova metadata: the master's access_ip_v4): an agent that registers with
# the master until it answers "ok", every attempt bounded so that a stuck connection
# cannot hang it. SIGTERM ends either at once (PID 1 ignores it without a trap).
trap 'kill $listener 2>/dev/null; exit 0' TERM INT
if [ -z "${master+set}" ]; then
  echo "mesos master: listening on 5050"
  # The registrations' stderr is this stdout.
  nc -ll -p 5050 -e /bin/mesos-register 2>&1 &
  listener=$!
  wait $listener
  exit 1
fi
attempt=0
while :; do
  attempt=$((attempt + 1))
  reply=$(echo "agent $(hostname) registers" | timeout 3 nc -w 2 "$master" 5050 2>/dev/null)
  if [ "$reply" = ok ]; then
    echo "mesos agent: registered with master $master (attempt $attempt)"
    break
  fi
  sleep 1
done
while :; do sleep 1; done
"#;

/// One registration, run by the master's `nc` for each connection.
const REGISTER: &str = r#"#!/bin/sh
# One registration: stdin and stdout are the agent's connection. The address it came from
# is the master's own observation, not the agent's claim: the socket's inode looked up in
# /proc/net/tcp and tcp6 (an IPv4 peer of the dual-stack listener is v4-mapped: the last 8
# hex digits of the address, little-endian).
read -r line
inode=$(readlink /proc/$$/fd/0)
inode=${inode#socket:\[}
inode=${inode%\]}
hex=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v i="$inode" '$10 == i { split($3, a, ":"); print substr(a[1], length(a[1]) - 7) }')
peer=unknown
if [ ${#hex} = 8 ]; then
  peer=$(printf '%d.%d.%d.%d' 0x$(echo $hex | cut -c7-8) 0x$(echo $hex | cut -c5-6) 0x$(echo $hex | cut -c3-4) 0x$(echo $hex | cut -c1-2))
fi
echo "mesos master: registration from $peer: $line" >&2
echo ok
"#;

/// The JSON type the provider decodes a field into (gophercloud's Go types; Go decodes a
/// JSON null into any type as its zero value, so "or null" is said only where OpenStack
/// answers null).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    StrOrNull,
    Num,
    Bool,
    BoolOrNull,
    Array,
    ArrayOrNull,
    Object,
    /// A map of strings (Go `map[string]string`: any other value fails the decode).
    StrMap,
    /// RFC 3339 (Go `time.Time`).
    Time,
    /// Neutron's segmentation id: a number, or a string, or null.
    NumStrOrNull,
}

/// The kind of every field the fixture reads. A field missing here fails the test: each
/// one was decided.
fn kind(field: &str) -> Kind {
    let leaf = field.rsplit('.').next().unwrap().trim_end_matches("[]");
    if leaf == "version" && field.contains(".addresses.") {
        // An address's version is a number (a string panics the provider).
        return Kind::Num;
    }
    match leaf {
        // ids, names, states, URLs
        "id"
        | "network_id"
        | "subnet_id"
        | "device_id"
        | "port_id"
        | "type"
        | "interface"
        | "url"
        | "publicURL"
        | "region"
        | "region_id"
        | "name"
        | "status"
        | "cidr"
        | "start"
        | "end"
        | "gateway_ip"
        | "addr"
        | "tenant_id"
        | "rel"
        | "href"
        | "ip_address"
        | "description"
        | "accessIPv4"
        | "accessIPv6"
        | "OS-EXT-AZ:availability_zone"
        | "OS-EXT-IPS:type"
        | "OS-EXT-IPS-MAC:mac_addr"
        | "next"
        | "version"
        | "max_version"
        | "min_version" => Kind::Str,
        "ip_version" | "mtu" => Kind::Num,
        "provider:network_type"
        | "provider:physical_network"
        | "dns_domain"
        | "qos_policy_id"
        | "ipv6_address_mode"
        | "ipv6_ra_mode"
        | "segment_id"
        | "subnetpool_id"
        | "flavor_id"
        | "key_name"
        | "OS-EXT-SRV-ATTR:hypervisor_hostname" => Kind::StrOrNull,
        "provider:segmentation_id" => Kind::NumStrOrNull,
        "admin_state_up"
        | "shared"
        | "router:external"
        | "port_security_enabled"
        | "enable_dhcp"
        | "vlan_transparent" => Kind::Bool,
        "distributed" | "enable_snat" | "dns_publish_fixed_ip" => Kind::BoolOrNull,
        "tags"
        | "availability_zone_hints"
        | "dns_nameservers"
        | "service_types"
        | "networks_links"
        | "flavors_links" => Kind::Array,
        "segments" => Kind::ArrayOrNull,
        "addresses" => Kind::Object,
        "metadata" => Kind::StrMap,
        "created" | "updated" => Kind::Time,
        _ => panic!("no kind decided for field {field}: add it to kind()"),
    }
}

/// Objects on a path that may be null, with the note that says so; nothing below a null
/// one is read.
const MAY_BE_NULL: [(&str, &str); 1] = [(
    "router.external_gateway_info",
    "step 10: \"external_gateway_info may be null\"",
)];

/// Whether `text` is RFC 3339 (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`).
fn rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |mut r: std::ops::Range<usize>| r.all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' {
        return false;
    }
    if !digits(8..10) || !matches!(b[10], b'T' | b't') || !digits(11..13) || b[13] != b':' {
        return false;
    }
    if !digits(14..16) || b[16] != b':' || !digits(17..19) {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &text[i..] {
        "Z" | "z" => true,
        zone => {
            let z = zone.as_bytes();
            z.len() == 6
                && matches!(z[0], b'+' | b'-')
                && z[1..3].iter().all(u8::is_ascii_digit)
                && z[3] == b':'
                && z[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

/// Whether `text` parses with Go's layout `2006-01-02T15:04:05.999999` (gophercloud's
/// `RFC3339MilliNoZ`, for `OS-SRV-USG:launched_at`): no zone, at most 6 fraction digits.
fn rfc3339_no_zone(text: &str) -> bool {
    let (main, frac) = text.split_once('.').unwrap_or((text, ""));
    rfc3339(&format!("{main}Z"))
        && main.len() == 19
        && frac.len() <= 6
        && frac.bytes().all(|c| c.is_ascii_digit())
        && frac.is_empty() != text.contains('.')
}

/// Whether `value` is of `kind`; else what it is instead.
fn of_kind(value: &Value, kind: Kind) -> Result<(), String> {
    let ok = match kind {
        Kind::Str => value.is_string(),
        Kind::StrOrNull => value.is_string() || value.is_null(),
        Kind::Num => value.is_number(),
        Kind::Bool => value.is_boolean(),
        Kind::BoolOrNull => value.is_boolean() || value.is_null(),
        Kind::Array => value.is_array(),
        Kind::ArrayOrNull => value.is_array() || value.is_null(),
        Kind::Object => value.is_object(),
        Kind::StrMap => value
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        Kind::Time => value.as_str().is_some_and(rfc3339),
        Kind::NumStrOrNull => value.is_number() || value.is_string() || value.is_null(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{value} is not {kind:?}"))
    }
}

/// The values at `field` (`a.b[].c`): every element of each `[]` array, which must not be
/// empty. `Err` says what is missing.
fn values_at<'v>(body: &'v Value, field: &str) -> Result<Vec<&'v Value>, String> {
    let mut current = vec![body];
    let mut prefix = String::new();
    for segment in field.split('.') {
        let (key, many) = match segment.strip_suffix("[]") {
            Some(key) => (key, true),
            None => (segment, false),
        };
        let mut next = Vec::new();
        for value in current {
            if value.is_null() && MAY_BE_NULL.iter().any(|(p, _)| *p == prefix) {
                continue;
            }
            let at = if prefix.is_empty() {
                "the body"
            } else {
                &prefix
            };
            let object = value
                .as_object()
                .ok_or_else(|| format!("{at} is not an object but {value}"))?;
            let child = object
                .get(key)
                .ok_or_else(|| format!("no key {key:?} in {at}"))?;
            if many {
                let items = child
                    .as_array()
                    .ok_or_else(|| format!("{at}.{key} is not an array but {child}"))?;
                if items.is_empty() {
                    return Err(format!("{at}.{key} is an empty array"));
                }
                next.extend(items);
            } else {
                next.push(child);
            }
        }
        prefix = if prefix.is_empty() {
            segment.to_string()
        } else {
            format!("{prefix}.{segment}")
        };
        current = next;
    }
    Ok(current)
}

/// A string in the .tf file: `key = "value"`, the same wherever the file says it.
fn tf_value(key: &str) -> String {
    let values: Vec<String> = TF_FILE
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .collect();
    assert!(!values.is_empty(), "7.2-today.tf has no {key}");
    assert!(
        values.iter().all(|v| *v == values[0]),
        "7.2-today.tf names several {key}: {values:?}"
    );
    values[0].clone()
}

/// One answer.
struct Answer {
    status: u16,
    subject_token: Option<String>,
    body: Value,
}

impl Answer {
    /// Whether the provider reads this answer's body: a success, or discovery's 300
    /// (Multiple Choices, with the version document); not an error it tolerates.
    fn success(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// One conversation: its token, catalog and produced values.
struct Replay<'a> {
    rt: &'a tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `auth_url`'s base: scheme, host and port.
    identity: String,
    /// service type -> public RegionOne URL, from the token's catalog.
    catalog: BTreeMap<String, String>,
    values: BTreeMap<String, String>,
    absent_ok: &'a Map<String, Value>,
    /// What the file says the lookups must find.
    image_name: String,
    flavor_name: String,
    requests: usize,
}

impl<'a> Replay<'a> {
    fn new(
        rt: &'a tokio::runtime::Runtime,
        identity: &str,
        absent_ok: &'a Map<String, Value>,
    ) -> Self {
        Self {
            rt,
            http: reqwest::Client::new(),
            identity: identity.to_string(),
            catalog: BTreeMap::new(),
            values: BTreeMap::new(),
            absent_ok,
            image_name: tf_value("image_name"),
            flavor_name: tf_value("flavor_name"),
            requests: 0,
        }
    }

    /// `text` with every `{name}` replaced by its produced value.
    fn fill(&self, label: &str, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.values {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        if let Some(at) = out.find('{') {
            let rest = &out[at + 1..];
            if let Some(end) = rest.find('}') {
                let name = &rest[..end];
                assert!(
                    !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                    "{label}: {{{name}}} was produced by no earlier step"
                );
            }
        }
        out
    }

    fn fill_json(&self, label: &str, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.fill(label, s)),
            Value::Array(items) => items.iter().map(|v| self.fill_json(label, v)).collect(),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.fill(label, k), self.fill_json(label, v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn url(&self, label: &str, service: &str, path: &str) -> String {
        if service == "identity" {
            if path.starts_with("http://") || path.starts_with("https://") {
                return path.to_string();
            }
            return format!("{}{path}", self.identity);
        }
        let base = self
            .catalog
            .get(service)
            .unwrap_or_else(|| panic!("{label}: the catalog has no {service} endpoint"));
        format!("{}{path}", base.trim_end_matches('/'))
    }

    /// Sends `step` once, as the provider sends it.
    fn send(&mut self, label: &str, step: &Value) -> Answer {
        let method: reqwest::Method = step["method"].as_str().unwrap().parse().unwrap();
        let service = step["service"].as_str().unwrap();
        let path = self.fill(label, step["path"].as_str().unwrap());
        let url = self.url(label, service, &path);
        let mut request = self
            .http
            .request(method, &url)
            .header("Accept", "application/json")
            .header("User-Agent", USER_AGENT)
            .header("Cache-Control", "no-cache")
            .timeout(Duration::from_secs(30));
        // Every request but the token request carries the token; identity's version
        // discovery comes before there is one.
        if step["phase"] != "auth" && !(step["phase"] == "discovery" && service == "identity") {
            let token = self
                .values
                .get("token")
                .unwrap_or_else(|| panic!("{label}: no token yet"));
            request = request.header("X-Auth-Token", token.as_str());
        }
        if let Some(query) = step["query"].as_object() {
            // serde_json's map is sorted by key, as gophercloud encodes the query.
            let pairs: Vec<(String, String)> = query
                .iter()
                .map(|(k, v)| (k.clone(), self.fill(label, v.as_str().unwrap())))
                .collect();
            request = request.query(&pairs);
        }
        if !step["body"].is_null() {
            let body = self.fill_json(label, &step["body"]);
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        if let Some(headers) = step["headers"].as_object() {
            for (k, v) in headers {
                request = request.header(k.as_str(), self.fill(label, v.as_str().unwrap()));
            }
        }
        self.requests += 1;
        let response = self
            .rt
            .block_on(async { request.send().await })
            .unwrap_or_else(|e| panic!("{label}: {url}: {e}"));
        let status = response.status().as_u16();
        let subject_token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = self.rt.block_on(response.text()).unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("{label}: the answer ({status}) is not JSON ({e}): {text:.2000}")
            })
        };
        Answer {
            status,
            subject_token,
            body,
        }
    }

    /// The state a wait step reads from `answer`.
    fn state_of(&self, label: &str, step: &Value, answer: &Answer) -> String {
        let poll = &step["poll"];
        if let Some(state) = poll["status_states"][answer.status.to_string()].as_str() {
            return state.to_string();
        }
        assert!(
            answer.success(),
            "{label}: status {} while waiting: {}",
            answer.status,
            answer.body
        );
        let field = poll["until_field"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: status {} stands for no state", answer.status));
        let values = values_at(&answer.body, field)
            .unwrap_or_else(|e| panic!("{label}: field {field}: {e}: {}", answer.body));
        values[0]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: field {field} is not a string: {}", answer.body))
            .to_string()
    }

    /// A wait step: polls until its target state.
    fn wait(&mut self, label: &str, step: &Value) -> Answer {
        let poll = &step["poll"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let (targets, pending) = (strings(&poll["values"]), strings(&poll["pending"]));
        let start = Instant::now();
        let mut polls = 0;
        loop {
            let answer = self.send(label, step);
            let state = self.state_of(label, step, &answer);
            if targets.contains(&state) {
                return answer;
            }
            // The provider's StateChangeConf: outside pending is "unexpected state", unless
            // pending is empty (then it keeps polling).
            assert!(
                pending.is_empty() || pending.contains(&state),
                "{label}: unexpected state {state:?} (status {}; pending {pending:?}, target {targets:?}): {}",
                answer.status,
                answer.body
            );
            assert!(
                start.elapsed() < WAIT_LIMIT,
                "{label}: still {state:?} after {WAIT_LIMIT:?} (target {targets:?}): {}",
                answer.body
            );
            std::thread::sleep(Duration::from_millis(
                POLL_SLEEPS_MS[polls.min(POLL_SLEEPS_MS.len() - 1)],
            ));
            polls += 1;
        }
    }

    /// Every field the step reads is there, of its kind (or absent where `absent_ok` says).
    fn check_fields(&self, label: &str, step: &Value, answer: &Answer) {
        for field in step["response_fields_read"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            if let Some(header) = field.strip_prefix("header:") {
                assert!(
                    header.eq_ignore_ascii_case("X-Subject-Token"),
                    "{label}: unknown header field {field}"
                );
                assert!(
                    answer
                        .subject_token
                        .as_deref()
                        .is_some_and(|t| !t.is_empty()),
                    "{label}: field {field}: no {header} header"
                );
                continue;
            }
            let kind = kind(field);
            match values_at(&answer.body, field) {
                Ok(values) => {
                    for value in values {
                        if let Err(e) = of_kind(value, kind) {
                            panic!("{label}: field {field}: {e}\nanswer: {}", answer.body);
                        }
                    }
                }
                Err(e) if self.absent_ok.contains_key(field) && e.starts_with("no key") => {}
                Err(e) => panic!("{label}: field {field}: {e}\nanswer: {}", answer.body),
            }
        }
        // The critical fields' formats beyond their types.
        if let Some(server) = answer.body.get("server") {
            for key in ["OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at"] {
                if let Some(text) = server.get(key).and_then(Value::as_str) {
                    assert!(
                        text.is_empty() || rfc3339_no_zone(text),
                        "{label}: field server.{key} {text:?} does not parse as 2006-01-02T15:04:05.999999 (gophercloud's RFC3339MilliNoZ: no zone)"
                    );
                }
            }
            if let Some(fault) = server.get("fault") {
                assert!(
                    fault["created"].as_str().is_some_and(rfc3339),
                    "{label}: field server.fault.created is not RFC 3339: {fault}"
                );
            }
        }
    }

    /// The value `field` produces: exactly one candidate, a string.
    fn produced(&self, label: &str, field: &str, answer: &Answer) -> String {
        if field == "header:X-Subject-Token" {
            return answer.subject_token.clone().unwrap();
        }
        let mut candidates = values_at(&answer.body, field)
            .unwrap_or_else(|e| panic!("{label}: field {field}: {e}"));
        if field == "flavors[].id" {
            // The provider lists every flavor and keeps those named as the file says.
            candidates = answer.body["flavors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["name"] == self.flavor_name.as_str())
                .map(|f| &f["id"])
                .collect();
        }
        if field == "versions.values[].links[].href" {
            // The v3 entry wins when current, supported or stable; its self link.
            candidates = answer.body["versions"]["values"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| {
                    v["id"].as_str().is_some_and(|id| id.contains("v3"))
                        && v["status"].as_str().is_some_and(|s| {
                            ["current", "supported", "stable"].contains(&s.to_lowercase().as_str())
                        })
                })
                .flat_map(|v| v["links"].as_array().unwrap())
                .filter(|l| l["rel"] == "self")
                .map(|l| &l["href"])
                .collect();
        }
        assert_eq!(
            candidates.len(),
            1,
            "{label}: {field} must have exactly one value (the provider fails on none or several): {}",
            answer.body
        );
        candidates[0]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: {field} is not a string"))
            .to_string()
    }

    /// The public RegionOne URL of each service, from a v3 or v2.0 token's catalog.
    fn learn_catalog(&mut self, label: &str, body: &Value) {
        self.catalog.clear();
        if let Some(entries) = body["token"]["catalog"].as_array() {
            for entry in entries {
                for e in entry["endpoints"].as_array().unwrap() {
                    if e["interface"] == "public"
                        && (e["region"] == "RegionOne" || e["region_id"] == "RegionOne")
                    {
                        self.catalog.insert(
                            entry["type"].as_str().unwrap().to_string(),
                            e["url"].as_str().unwrap().to_string(),
                        );
                    }
                }
            }
        } else if let Some(entries) = body["access"]["serviceCatalog"].as_array() {
            for entry in entries {
                for e in entry["endpoints"].as_array().unwrap() {
                    if e["region"] == "RegionOne" {
                        self.catalog.insert(
                            entry["type"].as_str().unwrap().to_string(),
                            e["publicURL"].as_str().unwrap().to_string(),
                        );
                    }
                }
            }
        }
        for service in ["network", "compute", "image"] {
            assert!(
                self.catalog.contains_key(service),
                "{label}: the catalog has no public RegionOne {service} endpoint: {body}"
            );
        }
        // gophercloud appends v2.0/ to the network URL and v2/ to the image URL itself.
        let (network, image) = (&self.catalog["network"], &self.catalog["image"]);
        assert!(
            !network.trim_end_matches('/').ends_with("/v2.0"),
            "{label}: the network URL {network} ends in /v2.0"
        );
        assert!(
            !image.trim_end_matches('/').ends_with("/v2"),
            "{label}: the image URL {image} ends in /v2"
        );
    }

    /// Runs one step: the request (or the polls), its status, fields and products.
    fn step(&mut self, step: &Value) -> Answer {
        let seq = step["seq"].as_u64().unwrap();
        let label = format!(
            "step {seq} ({} {} {}: {} {})",
            step["stage"].as_str().unwrap(),
            step["resource"].as_str().unwrap(),
            step["phase"].as_str().unwrap(),
            step["method"].as_str().unwrap(),
            step["path"].as_str().unwrap()
        );
        let accepted: Vec<u16> = step["response_status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| u16::try_from(s.as_u64().unwrap()).unwrap())
            .collect();
        let started = Instant::now();
        let answer = if step["poll"].is_object() {
            self.wait(&label, step)
        } else {
            let mut answer = self.send(&label, step);
            // A delete answered 409 (in use) is repeated at the next poll (steps 92, 96).
            while step["phase"] == "delete" && accepted.contains(&409) && answer.status == 409 {
                assert!(
                    started.elapsed() < WAIT_LIMIT,
                    "{label}: still 409 after {WAIT_LIMIT:?}: {}",
                    answer.body
                );
                std::thread::sleep(Duration::from_millis(500));
                answer = self.send(&label, step);
            }
            answer
        };
        assert!(
            accepted.contains(&answer.status),
            "{label}: status {} is not one the provider accepts ({accepted:?}): {}",
            answer.status,
            answer.body
        );
        eprintln!(
            "{label}: {} in {} ms",
            answer.status,
            started.elapsed().as_millis()
        );
        if !answer.success() {
            return answer;
        }
        self.check_fields(&label, step, &answer);
        if step["phase"] == "auth" {
            self.learn_catalog(&label, &answer.body);
        }
        if let Some(produces) = step["produces"].as_object() {
            for (name, field) in produces {
                let value = self.produced(&label, field.as_str().unwrap(), &answer);
                if let Some(before) = self.values.get(name) {
                    // What a refresh reads must be what the apply read (else Terraform
                    // plans a change); only the token is new each time.
                    assert!(
                        name == "token" || *before == value,
                        "{label}: {{{name}}} reads {value:?}, earlier {before:?}"
                    );
                }
                self.values.insert(name.clone(), value);
            }
        }
        self.echoes(&label, step, &answer);
        if step["phase"] == "discovery" {
            discovered_versions(&label, &answer.body);
        }
        answer
    }

    /// The values the provider compares with the file (a difference makes every plan
    /// update or replace the resource).
    fn echoes(&self, label: &str, step: &Value, answer: &Answer) {
        let body = &answer.body;
        let v = |name: &str| self.values.get(name).cloned().unwrap_or_default();
        let path = step["path"].as_str().unwrap();
        if step["method"] != "GET" || !matches!(step["phase"].as_str().unwrap(), "read" | "refresh")
        {
            return;
        }
        let same = |what: &str, got: &Value, want: &Value| {
            assert_eq!(got, want, "{label}: {what} must echo the file: {body}");
        };
        match path {
            "/v2.0/networks/{network_id}" => {
                same(
                    "network.name",
                    &body["network"]["name"],
                    &json!("mesos-cluster"),
                );
                same(
                    "network.admin_state_up",
                    &body["network"]["admin_state_up"],
                    &json!(true),
                );
            }
            "/v2.0/subnets/{subnet_id}" => {
                let s = &body["subnet"];
                same(
                    "subnet.network_id",
                    &s["network_id"],
                    &json!(v("network_id")),
                );
                same("subnet.cidr", &s["cidr"], &json!("192.168.199.0/24"));
                same("subnet.ip_version", &s["ip_version"], &json!(4));
                same("subnet.enable_dhcp", &s["enable_dhcp"], &json!(true));
                assert!(
                    s["gateway_ip"].as_str().is_some_and(|g| !g.is_empty()),
                    "{label}: an empty gateway_ip reads as no_gateway = true: {body}"
                );
            }
            "/v2.0/routers/{router_id}" => {
                same("router.name", &body["router"]["name"], &json!("rt1"));
            }
            "/v2.0/ports/{port_id}" => {
                let p = &body["port"];
                same("port.device_id", &p["device_id"], &json!(v("router_id")));
                let ips = p["fixed_ips"].as_array().unwrap();
                assert_eq!(
                    ips.len(),
                    1,
                    "{label}: the interface's port has one fixed IP: {body}"
                );
                same(
                    "port.fixed_ips[0].subnet_id",
                    &ips[0]["subnet_id"],
                    &json!(v("subnet_id")),
                );
            }
            "/v2.0/networks" => {
                let nets = body["networks"].as_array().unwrap();
                assert_eq!(nets.len(), 1, "{label}: exactly one network: {body}");
                same("networks[0].id", &nets[0]["id"], &json!(v("network_id")));
                same(
                    "networks[0].name",
                    &nets[0]["name"],
                    &json!("mesos-cluster"),
                );
            }
            "/v2/images" => {
                same(
                    "images[].name",
                    &body["images"][0]["name"],
                    &json!(self.image_name),
                );
            }
            p if p.starts_with("/v2/images/") => {
                same("image.name", &body["name"], &json!(self.image_name));
            }
            p if p.starts_with("/flavors/{") => {
                same(
                    "flavor.name",
                    &body["flavor"]["name"],
                    &json!(self.flavor_name),
                );
            }
            p if p.starts_with("/servers/{") && !p.ends_with("/tags") => {
                let s = &body["server"];
                let who = p.trim_start_matches("/servers/{").trim_end_matches(".id}");
                let want = if who == "master" {
                    "messos-master"
                } else {
                    "messos-slave"
                };
                same("server.name", &s["name"], &json!(want));
                same("server.image.id", &s["image"]["id"], &json!(v("image_id")));
                same(
                    "server.flavor.id",
                    &s["flavor"]["id"],
                    &json!(v("flavor_id")),
                );
                same(
                    "server.security_groups",
                    &s["security_groups"],
                    &json!([{"name": "default"}]),
                );
                let metadata = if who == "master" {
                    json!({})
                } else {
                    json!({"master": v("master.access_ip_v4")})
                };
                same("server.metadata", &s["metadata"], &metadata);
                // The network block reads back from the addresses under the network's name.
                let names: Vec<&String> = s["addresses"].as_object().unwrap().keys().collect();
                assert_eq!(
                    names,
                    ["mesos-cluster"],
                    "{label}: addresses keyed by the network's name: {body}"
                );
            }
            _ => {}
        }
    }
}

/// A version document as gophercloud's discovery parses it (`ParseVersion`,
/// `ParseStatus`, `ParseMicroversion`): every id `v<major>[.<minor>]`, every status
/// current, stable, supported, deprecated or empty, and microversions `X.Y` where given;
/// anything else fails the lookup.
fn discovered_versions(label: &str, body: &Value) {
    let versions = body["versions"]
        .as_array()
        .or_else(|| body["versions"]["values"].as_array())
        .unwrap_or_else(|| panic!("{label}: no versions: {body}"));
    let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    for v in versions {
        let id = v["id"].as_str().unwrap_or_default();
        let (major, minor) = id
            .strip_prefix('v')
            .unwrap_or(id)
            .split_once('.')
            .unwrap_or((id.strip_prefix('v').unwrap_or(id), "0"));
        assert!(
            number(major) && number(minor),
            "{label}: version id {id:?}: {body}"
        );
        let status = v["status"].as_str().unwrap_or_default().to_uppercase();
        assert!(
            ["CURRENT", "STABLE", "SUPPORTED", "DEPRECATED", ""].contains(&status.as_str()),
            "{label}: version status {status:?}: {body}"
        );
        for key in ["version", "max_version", "min_version"] {
            if let Some(text) = v[key].as_str().filter(|t| !t.is_empty()) {
                let parts: Vec<&str> = text.split('.').collect();
                assert!(
                    parts.len() == 2 && parts.iter().all(|p| number(p)),
                    "{label}: {key} {text:?} is not X.Y: {body}"
                );
            }
        }
    }
}

/// A server's container and the address weft answered for it.
struct Server {
    name: &'static str,
    container: String,
    ip: IpAddr,
}

#[test]
fn terraform_openstack_provider_conversation_for_the_seed_file_7_2() {
    assert!(
        std::env::var_os("CI").is_none() || nix::unistd::geteuid().is_root(),
        "the Terraform replay needs root, and CI must run it"
    );
    require_root!();
    if !docker_running("terraform_replay") {
        return;
    }
    // Leftovers of a run that was killed (before the build: they are of this tag's image).
    drop(ImageContainers::new(IMAGE));
    build_busybox_image(
        IMAGE,
        &[("mesos", MESOS), ("mesos-register", REGISTER)],
        &["/bin/mesos"],
    );
    let containers = ImageContainers::new(IMAGE);
    let os = OpenStackCluster::new("tfrpl");
    let c = &os.c;
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let absent_ok = fixture["absent_ok"]["fields"].as_object().unwrap();
    let steps = fixture["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 99, "the fixture's conversation");

    // The provider block's login, as a Keystone user.
    add_user(
        c,
        &tf_value("user_name"),
        &tf_value("password"),
        &tf_value("tenant_name"),
    );
    let auth_url = tf_value("auth_url");
    assert!(auth_url.ends_with("/v3"), "{auth_url}");
    // The image the file names, registered through Glance with its Docker reference.
    let mut replay = Replay::new(&c.rt, &os.url, absent_ok);
    register_image(&os, &replay.image_name);

    let split = steps.iter().position(|s| s["stage"] == "destroy").unwrap();
    let (apply, destroy) = steps.split_at(split);
    for step in apply.iter().filter(|s| s["path"] == "/v2/images") {
        assert_eq!(
            step["query"]["name"],
            replay.image_name.as_str(),
            "the fixture's image lookups name the file's image"
        );
    }

    // terraform apply.
    let started = Instant::now();
    let mut active = Vec::new();
    let mut create_started = Instant::now();
    for step in apply {
        if step["method"] == "POST" && step["path"] == "/servers" {
            create_started = Instant::now();
        }
        replay.step(step);
        if step["phase"] == "wait" && step["path"].as_str().unwrap().starts_with("/servers/") {
            let server = step["resource"].as_str().unwrap().to_string();
            active.push((server, create_started.elapsed()));
        }
    }
    let apply_took = started.elapsed();
    let apply_requests = replay.requests;
    let servers = after_apply(&os, &replay);
    let endpoints: Vec<weft_api::Endpoint> =
        c.rt.block_on(c.client.endpoints())
            .unwrap()
            .into_iter()
            .filter(|e| servers.iter().any(|s| s.ip == e.ip))
            .collect();
    assert_eq!(endpoints.len(), 4, "the servers' endpoints: {endpoints:?}");
    assert_installed(c, &endpoints);

    // terraform destroy.
    let destroy_started = Instant::now();
    for step in destroy {
        replay.step(step);
    }
    let destroy_took = destroy_started.elapsed();
    after_destroy(&os, &mut replay, &endpoints, &containers);

    for (server, took) in &active {
        eprintln!(
            "{server}: ACTIVE {} ms after its POST /servers",
            took.as_millis()
        );
    }
    eprintln!(
        "apply: {} steps, {apply_requests} requests, {} ms; destroy: {} steps, {} requests, {} ms",
        apply.len(),
        apply_took.as_millis(),
        destroy.len(),
        replay.requests - apply_requests,
        destroy_took.as_millis()
    );

    for (name, variant) in fixture["variants"].as_object().unwrap() {
        let mut replay = Replay::new(&c.rt, &os.url, absent_ok);
        for step in variant["steps"].as_array().unwrap() {
            replay.step(step);
        }
        eprintln!(
            "variant {name}: {} requests, all as the provider needs",
            replay.requests
        );
    }
}

/// Registers [`IMAGE`] through Glance (`POST /image/v2/images` with `weft_docker_ref`) as
/// weft's admin (so it is public) under `name`.
fn register_image(os: &OpenStackCluster, name: &str) {
    let c = &os.c;
    let admin = std::fs::read_to_string(c.dir.join("server").join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let response =
        c.rt.block_on(
            http.post(format!("{}/image/v2/images", os.url))
                .header("X-Auth-Token", admin.trim())
                .json(
                    &json!({"name": name, "container_format": "docker", "disk_format": "raw",
                               "weft_docker_ref": IMAGE}),
                )
                .send(),
        )
        .unwrap();
    let status = response.status();
    let body = c.rt.block_on(response.text()).unwrap();
    assert_eq!(status.as_u16(), 201, "registering image {name}: {body}");
}

/// `server`'s detail, as the replay's user.
fn server_detail(os: &OpenStackCluster, replay: &Replay, id: &str) -> Value {
    let response =
        os.c.rt
            .block_on(
                replay
                    .http
                    .get(format!("{}/servers/{id}", replay.catalog["compute"]))
                    .header("X-Auth-Token", &replay.values["token"])
                    .send(),
            )
            .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = os.c.rt.block_on(response.json()).unwrap();
    body["server"].clone()
}

/// The end of the apply: the master and three agents run as containers of [`IMAGE`],
/// each agent's environment names the master's address, and the master's log has a
/// registration from each agent's address.
fn after_apply(os: &OpenStackCluster, replay: &Replay) -> Vec<Server> {
    let master_ip = &replay.values["master.access_ip_v4"];
    let mut servers = Vec::new();
    for (name, who) in [
        ("master", "master"),
        ("agent 0", "slave0"),
        ("agent 1", "slave1"),
        ("agent 2", "slave2"),
    ] {
        let detail = server_detail(os, replay, &replay.values[&format!("{who}.id")]);
        let container = detail["OS-EXT-SRV-ATTR:instance_name"]
            .as_str()
            .unwrap()
            .to_string();
        let ip: IpAddr = replay.values[&format!("{who}.access_ip_v4")]
            .parse()
            .unwrap();
        assert_eq!(detail["accessIPv4"], ip.to_string(), "{detail}");
        assert!(ip.to_string().starts_with("192.168.199."), "{name}: {ip}");
        let (ok, inspect) = docker(&["inspect", &container]);
        assert!(ok, "{name}: no container {container}");
        let inspect: Value = serde_json::from_str(&inspect).unwrap();
        let inspect = &inspect[0];
        assert_eq!(
            inspect["State"]["Running"], true,
            "{name}: {container} is not running"
        );
        assert_eq!(
            inspect["Config"]["Image"], IMAGE,
            "{name}: {container}'s image"
        );
        let env = process_env(&container);
        let has_master = env.iter().find(|e| e.starts_with("master="));
        if who == "master" {
            assert_eq!(has_master, None, "the master's environment: {env:?}");
        } else {
            assert_eq!(
                has_master.map(String::as_str),
                Some(format!("master={master_ip}").as_str()),
                "{name}'s environment: {env:?}"
            );
        }
        servers.push(Server {
            name,
            container,
            ip,
        });
    }
    assert_eq!(
        replay.values["master.access_ip_v4"],
        servers[0].ip.to_string()
    );
    let running = task_containers(IMAGE, false);
    assert_eq!(running.len(), 4, "containers of {IMAGE}: {running:?}");

    // The registrations, as the master saw them.
    let master = &servers[0];
    let logs = |container: &str| {
        let out = std::process::Command::new("docker")
            .args(["logs", container])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let registered = || {
        let log = logs(&master.container);
        servers[1..].iter().all(|a| {
            log.lines().any(|l| {
                l.starts_with(&format!("mesos master: registration from {}: agent ", a.ip))
            })
        })
    };
    let waited = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "a registration from each agent's address in the master's log",
            Duration::from_secs(60),
            registered,
        );
    }));
    if outcome.is_err() {
        for s in &servers {
            eprintln!(
                "--- {} ({}, {}):\n{}",
                s.name,
                s.container,
                s.ip,
                logs(&s.container)
            );
        }
        panic!("the agents did not register with the master");
    }
    eprintln!(
        "master {} registered every agent within {} ms of the apply's end:\n{}",
        master.ip,
        waited.elapsed().as_millis(),
        logs(&master.container)
    );
    for agent in &servers[1..] {
        assert!(
            logs(&agent.container).contains(&format!(
                "mesos agent: registered with master {}",
                master.ip
            )),
            "{}: {}",
            agent.name,
            logs(&agent.container)
        );
    }
    servers
}

/// After the destroy: no container of [`IMAGE`], no endpoint, namespace or nft element of
/// the servers, and every resource of the file answers 404.
fn after_destroy(
    os: &OpenStackCluster,
    replay: &mut Replay,
    endpoints: &[weft_api::Endpoint],
    containers: &ImageContainers,
) {
    wait_until(
        "no container of the image is left",
        Duration::from_secs(60),
        || containers.ids().is_empty(),
    );
    assert_nothing_left(&os.c, endpoints);
    let gone = [
        ("network", "/v2.0/networks/{network_id}"),
        ("network", "/v2.0/subnets/{subnet_id}"),
        ("network", "/v2.0/routers/{router_id}"),
        ("network", "/v2.0/ports/{port_id}"),
        ("compute", "/servers/{master.id}"),
        ("compute", "/servers/{slave0.id}"),
        ("compute", "/servers/{slave1.id}"),
        ("compute", "/servers/{slave2.id}"),
    ];
    for (service, path) in gone {
        let step = json!({"seq": 0, "stage": "check", "resource": "after destroy",
                          "phase": "read", "service": service, "method": "GET", "path": path,
                          "query": null, "body": null});
        let label = format!("after destroy: GET {path}");
        let answer = replay.send(&label, &step);
        assert_eq!(answer.status, 404, "{label}: {}", answer.body);
    }
    let step = json!({"seq": 0, "stage": "check", "resource": "after destroy", "phase": "read",
                      "service": "network", "method": "GET", "path": "/v2.0/ports",
                      "query": null, "body": null});
    let ports = replay.send("after destroy: GET /v2.0/ports", &step);
    assert_eq!(ports.body["ports"], json!([]), "ports left: {}", ports.body);
}

/// The checker itself, without a cluster: an answer that leaves out a field the provider
/// reads, or gives it the wrong type, fails naming the step and the field; a field of
/// `absent_ok` may be left out, no other.
#[test]
fn a_missing_or_mistyped_field_fails_naming_the_step_and_the_field() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let absent_ok = fixture["absent_ok"]["fields"].as_object().unwrap();
    let rt = common::runtime();
    let replay = Replay::new(&rt, "http://127.0.0.1:1", absent_ok);
    let step = |seq: u64| {
        fixture["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["seq"] == seq)
            .unwrap()
    };
    let check = |seq: u64, body: &Value| {
        let answer = Answer {
            status: 200,
            subject_token: None,
            body: body.clone(),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            replay.check_fields(&format!("step {seq}"), step(seq), &answer);
        }))
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".into())
        })
    };
    let server = json!({"server": {
        "id": "9f0d", "name": "messos-master", "status": "ACTIVE",
        "created": "2026-12-05T21:00:00Z", "updated": "2026-12-05T21:00:01Z",
        "accessIPv4": "192.168.199.3", "accessIPv6": "", "metadata": {},
        "security_groups": [{"name": "default"}], "key_name": null,
        "flavor": {"id": "1"}, "image": {"id": "5e1c"},
        "OS-EXT-AZ:availability_zone": "nova", "OS-EXT-SRV-ATTR:hypervisor_hostname": "com1",
        "OS-SRV-USG:launched_at": "2026-12-05T21:00:01.000000",
    }});
    check(19, &server).unwrap();
    let broken = |edit: &dyn Fn(&mut Map<String, Value>)| {
        let mut body = server.clone();
        edit(body["server"].as_object_mut().unwrap());
        check(19, &body).unwrap_err()
    };
    for (what, error) in [
        ("key_name", broken(&|s| drop(s.remove("key_name")))),
        (
            "flavor.id",
            broken(&|s| drop(s.insert("flavor".into(), json!({"id": 1})))),
        ),
        (
            "security_groups[].name",
            broken(&|s| drop(s.insert("security_groups".into(), json!([{}])))),
        ),
        (
            "created",
            broken(&|s| drop(s.insert("created".into(), json!("2026-12-05 21:00")))),
        ),
        (
            "OS-SRV-USG:launched_at",
            broken(&|s| {
                drop(s.insert(
                    "OS-SRV-USG:launched_at".into(),
                    json!("2026-12-05T21:00:01Z"),
                ))
            }),
        ),
    ] {
        assert!(
            error.starts_with("step 19") && error.contains(&format!("server.{what}")),
            "{what}: {error}"
        );
    }
    // An address's version must be a number.
    let addresses = json!({"server": {"addresses": {"mesos-cluster": [
        {"addr": "192.168.199.3", "version": "4", "OS-EXT-IPS:type": "fixed",
         "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]}}});
    let error = check(20, &addresses).unwrap_err();
    assert!(
        error.contains("server.addresses.mesos-cluster[].version"),
        "{error}"
    );
    // A network read: absent_ok's provider attributes may be missing, its mtu may not.
    let mut network = json!({"network": {
        "name": "mesos-cluster", "description": "", "admin_state_up": true, "shared": false,
        "router:external": false, "tenant_id": "d3", "port_security_enabled": true,
        "mtu": 1450, "tags": [], "availability_zone_hints": [],
    }});
    check(4, &network).unwrap();
    network["network"].as_object_mut().unwrap().remove("mtu");
    let error = check(4, &network).unwrap_err();
    assert!(
        error.starts_with("step 4") && error.contains("network.mtu"),
        "{error}"
    );
}
