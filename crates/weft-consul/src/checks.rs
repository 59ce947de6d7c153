//! Health checks: how a registration's check is read, how its status is decided (a TTL
//! check turns critical by itself when not updated in time; HTTP and TCP checks are
//! probed), and the background loop that probes them and expires sessions.
//!
//! An HTTP or TCP check aimed at one of weft's endpoints (its URL's or address's host is
//! the endpoint's IP) is not probed here: the controller cannot reach addresses that
//! exist only inside the fabric. It is assigned to the agent of the endpoint's node,
//! which runs it from the endpoint's VRF namespace (see the discovery view's `probes`)
//! and reports results ([`CheckRunner::record_reported`]). A report is valid for three
//! intervals, never less than [`MIN_REPORT_VALIDITY`]; past that the check turns
//! critical, "no report from node X's agent".
//!
//! Probe results live in memory (`CheckRunner`), not in the store: a probe every second
//! per check would otherwise be a store write per second per check. They are overlaid on
//! the stored check when a view is built, and every change of status ticks `changes`, so
//! blocking queries wake.

use crate::body::{Obj, format_duration};
use crate::error::ConsulError;
use crate::records::{CheckRecord, EPOCH_KEY, Probe, ServiceRecord, Status, kind_prefix};
use crate::{Consul, EndpointSite, now_ms};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use weft_store::KvStore;

/// Consul's floor on a probe's interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Consul's default probe timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop looks for due probes and expired sessions.
const TICK: Duration = Duration::from_millis(100);

/// An agent's report of a check stays valid at least this long: agents report every
/// 10 s when nothing changes, so this is three missed reports.
pub(crate) const MIN_REPORT_VALIDITY: Duration = Duration::from_secs(30);

/// How long an agent's report of a check with this interval stays valid.
pub(crate) fn report_validity_ms(interval_ms: u64) -> u64 {
    interval_ms.saturating_mul(3).max(ms(MIN_REPORT_VALIDITY))
}

/// The host of an `http://` or `https://` URL, when it is an IP address.
fn url_host(url: &str) -> Option<IpAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    address_host(host_port)
}

/// The host of `host`, `host:port`, `[v6]` or `[v6]:port`, when it is an IP address.
fn address_host(text: &str) -> Option<IpAddr> {
    if let Some(v6) = text.strip_prefix('[') {
        return v6.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// The address a probe connects to, when its host is an IP address.
pub(crate) fn probe_host(p: &Probe) -> Option<IpAddr> {
    match p {
        Probe::Http { url, .. } => url_host(url),
        Probe::Tcp { address, .. } => address_host(address),
        _ => None,
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A check from a registration body. `service` binds it to that service.
pub(crate) fn check_record(
    node: &str,
    body: Obj<'_>,
    service: Option<&ServiceRecord>,
) -> Result<CheckRecord, ConsulError> {
    let interval = body.duration("Interval")?;
    let timeout = body.duration("Timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    let need_interval = |kind: &str| {
        interval.ok_or_else(|| {
            ConsulError::BadRequest(format!("Interval must be set for a {kind} check"))
        })
    };
    let probe = if let Some(ttl) = body.duration("TTL")? {
        Probe::Ttl { ttl_ms: ms(ttl) }
    } else if let Some(url) = body.str("HTTP")? {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConsulError::BadRequest(format!(
                "HTTP check URL {url:?} must start with http:// or https://"
            )));
        }
        Probe::Http {
            url: url.to_string(),
            interval_ms: ms(need_interval("HTTP")?.max(MIN_INTERVAL)),
            timeout_ms: ms(timeout),
            method: body.str("Method")?.unwrap_or("GET").to_ascii_uppercase(),
        }
    } else if let Some(address) = body.str("TCP")? {
        Probe::Tcp {
            address: address.to_string(),
            interval_ms: ms(need_interval("TCP")?.max(MIN_INTERVAL)),
            timeout_ms: ms(timeout),
        }
    } else if body.get("Args").is_some() || body.get("Script").is_some() {
        let mut args = body.strings("Args")?;
        if let Some(script) = body.str("Script")? {
            args = vec!["sh".into(), "-c".into(), script.into()];
        }
        Probe::Script {
            args,
            interval_ms: ms(need_interval("script")?),
        }
    } else if body.get("GRPC").is_some() || body.get("DockerContainerID").is_some() {
        return Err(ConsulError::BadRequest(
            "gRPC and Docker checks are not supported by weft; use HTTP, TCP or TTL".into(),
        ));
    } else {
        Probe::None
    };
    let status = match body.str("Status")? {
        Some(s) => Status::parse(s)
            .ok_or_else(|| ConsulError::BadRequest(format!("Status: invalid status {s:?}")))?,
        None => Status::Critical,
    };
    let output = match &probe {
        Probe::Script { .. } => "weft does not run script checks; use HTTP, TCP or TTL".into(),
        _ => String::new(),
    };
    Ok(CheckRecord {
        check_id: body
            .str("CheckID")?
            .or(body.str("ID")?)
            .unwrap_or_default()
            .to_string(),
        name: body.string("Name")?,
        node: node.to_string(),
        service_id: service.map(|s| s.id.clone()).unwrap_or_default(),
        service_name: service.map(|s| s.service.clone()).unwrap_or_default(),
        status,
        notes: body.string("Notes")?,
        output,
        probe,
        updated_ms: now_ms(),
        deregister_after_ms: body.duration("DeregisterCriticalServiceAfter")?.map(ms),
    })
}

pub(crate) fn interval_text(p: &Probe) -> String {
    match p {
        Probe::Http { interval_ms, .. }
        | Probe::Tcp { interval_ms, .. }
        | Probe::Script { interval_ms, .. } => format_duration(Duration::from_millis(*interval_ms)),
        _ => String::new(),
    }
}

pub(crate) fn timeout_text(p: &Probe) -> String {
    match p {
        Probe::Http { timeout_ms, .. } | Probe::Tcp { timeout_ms, .. } => {
            format_duration(Duration::from_millis(*timeout_ms))
        }
        _ => String::new(),
    }
}

/// A node id derived from its name: stable across restarts and controllers.
pub(crate) fn stable_id(name: &str) -> String {
    // FNV-1a over the name, twice with different offsets: 128 bits, formatted as a UUID.
    let fnv = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142));
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The last result of each probed check, and a counter that ticks on every change.
#[derive(Debug)]
pub struct CheckRunner {
    results: Mutex<HashMap<String, Probed>>,
    changes: watch::Sender<u64>,
}

#[derive(Debug, Clone)]
struct Probed {
    status: Status,
    output: String,
    next_ms: u64,
    /// Since when the probe has failed without a pass in between.
    critical_since_ms: Option<u64>,
    /// The node whose agent runs the check; `None`: the controller does.
    reporter: Option<String>,
    /// An agent's result is stale from then on (ms since the epoch).
    valid_until_ms: u64,
}

/// One result an agent reports: `tenant`'s check `check` of Consul node `node`.
#[derive(Debug)]
pub(crate) struct Reported<'a> {
    pub tenant: &'a str,
    pub node: &'a str,
    pub check: &'a str,
    pub status: Status,
    pub output: String,
    pub valid_for_ms: u64,
}

/// The output of an agent-run check whose agent stopped reporting.
fn stale_output(node: &str) -> String {
    format!("no report from node {node}'s agent")
}

impl Default for CheckRunner {
    fn default() -> Self {
        Self {
            results: Mutex::new(HashMap::new()),
            changes: watch::channel(0).0,
        }
    }
}

fn result_key(tenant: &str, node: &str, check: &str) -> String {
    format!("{tenant}/{node}/{check}")
}

impl CheckRunner {
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn results(&self) -> std::sync::MutexGuard<'_, HashMap<String, Probed>> {
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Since when a check has been critical, if it is.
    fn critical_since(&self, tenant: &str, check: &CheckRecord, now: u64) -> Option<u64> {
        match &check.probe {
            Probe::Http { .. } | Probe::Tcp { .. } => self
                .results()
                .get(&result_key(tenant, &check.node, &check.check_id))
                .and_then(|p| p.critical_since_ms),
            Probe::Ttl { ttl_ms } if check.status != Status::Critical => {
                let deadline = check.updated_ms.saturating_add(*ttl_ms);
                (now >= deadline).then_some(deadline)
            }
            _ => (check.status == Status::Critical).then_some(check.updated_ms),
        }
    }

    /// The check's status now: TTL expiry applied, the last probe result overlaid.
    pub(crate) fn evaluate(&self, tenant: &str, mut record: CheckRecord, now: u64) -> CheckRecord {
        match &record.probe {
            Probe::Ttl { ttl_ms } => {
                let deadline = record.updated_ms.saturating_add(*ttl_ms);
                if record.status != Status::Critical && now >= deadline {
                    record.status = Status::Critical;
                    record.output = "TTL expired".into();
                }
            }
            Probe::Http { .. } | Probe::Tcp { .. } => {
                let key = result_key(tenant, &record.node, &record.check_id);
                if let Some(p) = self.results().get(&key) {
                    match &p.reporter {
                        Some(node) if now >= p.valid_until_ms => {
                            record.status = Status::Critical;
                            record.output = stale_output(node);
                        }
                        _ => {
                            record.status = p.status;
                            record.output.clone_from(&p.output);
                        }
                    }
                }
            }
            Probe::None | Probe::Script { .. } => {}
        }
        record
    }

    /// A controller probe's result; dropped if the check has meanwhile gone to an agent.
    fn record(&self, key: String, status: Status, output: String, next_ms: u64) {
        if self
            .results()
            .get(&key)
            .is_some_and(|p| p.reporter.is_some())
        {
            return;
        }
        self.store(key, status, output, next_ms, None, u64::MAX);
    }

    /// A result reported by `reporter`'s agent, valid for `r.valid_for_ms` (see
    /// [`report_validity_ms`]).
    pub(crate) fn record_reported(&self, reporter: &str, r: Reported<'_>) {
        let now = now_ms();
        self.store(
            result_key(r.tenant, r.node, r.check),
            r.status,
            r.output,
            0,
            Some(reporter.to_string()),
            now.saturating_add(r.valid_for_ms),
        );
    }

    /// The loop's pass over a check assigned to `reporter`'s agent: a placeholder until
    /// its first report (the registered status, or the last result when the check moved,
    /// valid for one report window at most), and critical once its last report is stale.
    fn expect_report(&self, key: String, reporter: &str, check: &CheckRecord, now: u64) {
        let validity = match &check.probe {
            Probe::Http { interval_ms, .. } | Probe::Tcp { interval_ms, .. } => {
                report_validity_ms(*interval_ms)
            }
            _ => return,
        };
        let current = self.results().get(&key).cloned();
        match current {
            Some(p) if p.reporter.as_deref() == Some(reporter) => {
                if now >= p.valid_until_ms && p.status != Status::Critical {
                    tracing::info!(check = %key, node = reporter, "agent-run check not reported in time: critical");
                    self.store(
                        key,
                        Status::Critical,
                        stale_output(reporter),
                        0,
                        Some(reporter.to_string()),
                        p.valid_until_ms,
                    );
                }
            }
            // Newly assigned, or moved with its endpoint: the last result stands until
            // its own window closes, or the new agent reports.
            Some(p) => self.store(
                key,
                p.status,
                p.output,
                0,
                Some(reporter.to_string()),
                p.valid_until_ms.min(now.saturating_add(validity)),
            ),
            None => self.store(
                key,
                check.status,
                format!("run by node {reporter}'s agent; no report yet"),
                0,
                Some(reporter.to_string()),
                now.saturating_add(validity),
            ),
        }
    }

    fn store(
        &self,
        key: String,
        status: Status,
        output: String,
        next_ms: u64,
        reporter: Option<String>,
        valid_until_ms: u64,
    ) {
        let changed = {
            let mut results = self.results();
            let old = results.get(&key).cloned();
            let critical_since_ms = match (status, &old) {
                (Status::Critical, Some(o)) if o.critical_since_ms.is_some() => o.critical_since_ms,
                (Status::Critical, _) => Some(now_ms()),
                _ => None,
            };
            results.insert(
                key,
                Probed {
                    status,
                    output,
                    next_ms,
                    critical_since_ms,
                    reporter,
                    valid_until_ms,
                },
            );
            old.is_none_or(|o| o.status != status)
        };
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

async fn probe(p: &Probe, client: &reqwest::Client) -> (Status, String) {
    match p {
        Probe::Http {
            url,
            timeout_ms,
            method,
            ..
        } => {
            let method =
                reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let sent = client
                .request(method.clone(), url)
                .timeout(Duration::from_millis(*timeout_ms))
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let code = r.status();
                    // Consul: 2xx passing, 429 warning, anything else critical.
                    let status = if code.is_success() {
                        Status::Passing
                    } else if code.as_u16() == 429 {
                        Status::Warning
                    } else {
                        Status::Critical
                    };
                    (status, format!("HTTP {method} {url}: {code} Output: "))
                }
                Err(e) => (Status::Critical, format!("HTTP {method} {url}: {e}")),
            }
        }
        Probe::Tcp {
            address,
            timeout_ms,
            ..
        } => {
            let connect = tokio::net::TcpStream::connect(address.as_str());
            match tokio::time::timeout(Duration::from_millis(*timeout_ms), connect).await {
                Ok(Ok(_)) => (Status::Passing, format!("TCP connect {address}: Success")),
                Ok(Err(e)) => (Status::Critical, format!("dial tcp {address}: {e}")),
                Err(_) => (Status::Critical, format!("dial tcp {address}: i/o timeout")),
            }
        }
        _ => (Status::Critical, String::new()),
    }
}

/// The background loop: expires sessions, probes due HTTP and TCP checks of every
/// tenant, and writes the epoch key when what clients see changed outside the store.
/// Runs each tick, and at once when weft's tasks or a probe result change.
pub(crate) async fn run<S: KvStore + Clone>(
    consul: Arc<Consul<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .unwrap_or_default();
    let mut directory = consul.directory.changes();
    let mut probes = consul.checks.changes();
    let mut last_epoch = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(TICK) => {}
            _ = directory.changed() => {}
            _ = probes.changed() => {}
        }
        if let Err(e) = consul.expire_sessions().await {
            tracing::warn!(error = %e, "expiring sessions failed");
        }
        let expired = match schedule_probes(&consul, &client).await {
            Ok(expired) => expired,
            Err(e) => {
                tracing::warn!(error = %e, "reading checks failed");
                continue;
            }
        };
        let epoch = epoch(&consul, &expired);
        if last_epoch != Some(epoch) {
            let bytes = epoch.to_string();
            match consul
                .store
                .put(EPOCH_KEY.as_bytes(), bytes.as_bytes(), None)
                .await
            {
                Ok(_) => last_epoch = Some(epoch),
                Err(e) => tracing::warn!(error = %e, "writing the catalog epoch failed"),
            }
        }
    }
}

/// A digest of everything clients see that the store does not hold.
fn epoch<S>(consul: &Consul<S>, expired_ttls: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    consul.directory.fingerprint().hash(&mut h);
    let mut probed: Vec<(String, Status)> = consul
        .checks
        .results()
        .iter()
        .map(|(k, p)| (k.clone(), p.status))
        .collect();
    probed.sort();
    probed.hash(&mut h);
    expired_ttls.hash(&mut h);
    h.finish()
}

/// Starts the probes that are due; returns the TTL checks that have expired.
async fn schedule_probes<S: KvStore + Clone>(
    consul: &Arc<Consul<S>>,
    client: &reqwest::Client,
) -> Result<Vec<String>, ConsulError> {
    let root = kind_prefix("check");
    let read = consul.store.range(root.as_bytes(), None).await?;
    let now = now_ms();
    let mut live = std::collections::HashSet::new();
    let mut expired = Vec::new();
    let mut reap = Vec::new();
    // Who runs each probe target, asked once per pass.
    let mut sites: HashMap<(String, IpAddr), Option<EndpointSite>> = HashMap::new();
    for kv in &read.kvs {
        let key = String::from_utf8_lossy(&kv.key[root.len()..]).into_owned();
        let Some((tenant, _)) = key.split_once('/') else {
            continue;
        };
        let Ok(check) = serde_json::from_slice::<CheckRecord>(&kv.value) else {
            continue;
        };
        if let Some(after) = check.deregister_after_ms
            && !check.service_id.is_empty()
            && consul
                .checks
                .critical_since(tenant, &check, now)
                .is_some_and(|since| now >= since.saturating_add(after))
        {
            reap.push((
                tenant.to_string(),
                check.node.clone(),
                check.service_id.clone(),
            ));
        }
        let interval_ms = match &check.probe {
            Probe::Http { interval_ms, .. } | Probe::Tcp { interval_ms, .. } => *interval_ms,
            Probe::Ttl { ttl_ms } => {
                if check.status != Status::Critical
                    && now >= check.updated_ms.saturating_add(*ttl_ms)
                {
                    expired.push(key);
                }
                continue;
            }
            _ => continue,
        };
        let rkey = result_key(tenant, &check.node, &check.check_id);
        live.insert(rkey.clone());
        let site = probe_host(&check.probe).and_then(|ip| {
            sites
                .entry((tenant.to_string(), ip))
                .or_insert_with(|| consul.directory.endpoint_at(tenant, ip))
                .clone()
        });
        if let Some(site) = site {
            // The node's agent runs it: only watch that its reports keep coming.
            consul.checks.expect_report(rkey, &site.node, &check, now);
            continue;
        }
        let previous = consul
            .checks
            .results()
            .get(&rkey)
            .filter(|p| p.reporter.is_none())
            .cloned();
        if previous.as_ref().is_some_and(|p| p.next_ms > now) {
            continue;
        }
        // Not due again until this probe's interval has passed, even while it runs.
        let (status, output, critical_since_ms) = previous
            .map_or((Status::Critical, String::new(), None), |p| {
                (p.status, p.output, p.critical_since_ms)
            });
        consul.checks.results().insert(
            rkey.clone(),
            Probed {
                status,
                output,
                next_ms: now.saturating_add(interval_ms),
                critical_since_ms,
                reporter: None,
                valid_until_ms: u64::MAX,
            },
        );
        let runner = Arc::clone(&consul.checks);
        let client = client.clone();
        let probe_def = check.probe.clone();
        tokio::spawn(async move {
            let (status, output) = probe(&probe_def, &client).await;
            runner.record(rkey, status, output, now.saturating_add(interval_ms));
        });
    }
    consul.checks.results().retain(|k, _| live.contains(k));
    reap.dedup();
    for (tenant, node, service) in reap {
        tracing::info!(
            tenant,
            node,
            service,
            "deregistering a service critical for too long"
        );
        let ops = consul.service_removal(&tenant, &node, &service).await?;
        consul
            .store
            .txn(weft_store::Txn::new().and_then(ops))
            .await?;
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::records::check_key;
    use crate::{Asker, ConsulConfig, Directory, DnsSource, Reach, WeftInstance, WeftNode};
    use weft_api::ProbeReport;

    const EP: &str = "10.1.0.5";

    /// Tenant t has one endpoint, 10.1.0.5 on node com1, in VRF t/vrf:main.
    struct Fabric;

    impl Directory for Fabric {
        fn tenant(&self, _: Option<&str>) -> Result<String, ConsulError> {
            Ok("t".into())
        }
        fn nodes(&self) -> Vec<WeftNode> {
            Vec::new()
        }
        fn instances(&self, _: &str) -> Vec<WeftInstance> {
            Vec::new()
        }
        fn changes(&self) -> watch::Receiver<u64> {
            watch::channel(0).1
        }
        fn fingerprint(&self) -> u64 {
            0
        }
        fn asker(&self, _: &str, _: IpAddr) -> Option<Asker> {
            None
        }
        fn may_reach(&self, _: &Asker, _: IpAddr, _: u16) -> Option<Reach> {
            None
        }
        fn endpoint_at(&self, tenant: &str, ip: IpAddr) -> Option<EndpointSite> {
            (tenant == "t" && ip.to_string() == EP).then(|| EndpointSite {
                node: "com1".into(),
                vrf: "t/vrf:main".into(),
            })
        }
    }

    fn consul() -> Arc<Consul<weft_store::RedbStore>> {
        Arc::new(Consul::new(
            weft_store::memory::open().unwrap(),
            Arc::new(Fabric),
            ConsulConfig {
                datacenter: "dc1".into(),
                node_name: "controller".into(),
                advertise: "127.0.0.1:8500".parse().unwrap(),
                anonymous_tenant: Some("t".into()),
                quota: crate::Quota::default(),
            },
        ))
    }

    fn check(id: &str, probe: Probe) -> CheckRecord {
        CheckRecord {
            check_id: id.into(),
            name: id.into(),
            node: "ext".into(),
            service_id: "web".into(),
            service_name: "web".into(),
            status: Status::Critical,
            notes: String::new(),
            output: String::new(),
            probe,
            updated_ms: now_ms(),
            deregister_after_ms: None,
        }
    }

    fn http(url: &str) -> Probe {
        Probe::Http {
            url: url.into(),
            interval_ms: 1000,
            timeout_ms: 1000,
            method: "GET".into(),
        }
    }

    fn tcp(address: &str) -> Probe {
        Probe::Tcp {
            address: address.into(),
            interval_ms: 20_000,
            timeout_ms: 1000,
        }
    }

    async fn put(c: &Consul<weft_store::RedbStore>, tenant: &str, r: &CheckRecord) {
        let key = check_key(tenant, &r.node, &r.check_id);
        let value = serde_json::to_vec(r).unwrap();
        c.store.put(key.as_bytes(), &value, None).await.unwrap();
    }

    fn report(check: &str, status: &str) -> ProbeReport {
        ProbeReport {
            tenant: "t".into(),
            node: "ext".into(),
            check_id: check.into(),
            status: status.into(),
            output: "HTTP GET: HTTP/1.0 200 OK".into(),
        }
    }

    fn reported(status: Status, valid_for_ms: u64) -> Reported<'static> {
        Reported {
            tenant: "t",
            node: "ext",
            check: "http-ep",
            status,
            output: "ok".into(),
            valid_for_ms,
        }
    }

    #[test]
    fn probe_targets_are_read_from_urls_and_addresses() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(probe_host(&http("http://10.1.0.5:8080/health")), ip(EP));
        assert_eq!(probe_host(&http("http://10.1.0.5")), ip(EP));
        assert_eq!(probe_host(&http("https://user:pw@10.1.0.5/x?y")), ip(EP));
        assert_eq!(probe_host(&http("http://[fd00::5]:80/")), ip("fd00::5"));
        assert_eq!(probe_host(&http("http://web.local:8080/")), None);
        assert_eq!(probe_host(&tcp("10.1.0.5:9000")), ip(EP));
        assert_eq!(probe_host(&tcp("[fd00::5]:9000")), ip("fd00::5"));
        assert_eq!(probe_host(&tcp("db.local:5432")), None);
        assert_eq!(probe_host(&Probe::Ttl { ttl_ms: 1 }), None);
    }

    #[test]
    fn reports_stay_valid_for_three_intervals_and_at_least_30_s() {
        assert_eq!(report_validity_ms(1_000), 30_000);
        assert_eq!(report_validity_ms(10_000), 30_000);
        assert_eq!(report_validity_ms(20_000), 60_000);
        assert_eq!(report_validity_ms(u64::MAX), u64::MAX);
    }

    #[tokio::test]
    async fn checks_aiming_at_an_endpoint_go_to_the_agent_of_its_node() {
        let c = consul();
        put(&c, "t", &check("http-ep", http("http://10.1.0.5:8080/"))).await;
        put(&c, "t", &check("tcp-ep", tcp("10.1.0.5:9000"))).await;
        put(&c, "t", &check("http-host", http("http://127.0.0.1:1/"))).await;
        put(&c, "t", &check("tcp-name", tcp("db.local:5432"))).await;
        put(&c, "t", &check("ttl", Probe::Ttl { ttl_ms: 60_000 })).await;
        // Another tenant's check at the same address: not t's endpoint.
        put(&c, "u", &check("http-ep", http("http://10.1.0.5:8080/"))).await;

        let assigned = c.assigned_probes("t").await.unwrap();
        let ids: Vec<&str> = assigned.iter().map(|a| a.check_id.as_str()).collect();
        assert_eq!(ids, ["http-ep", "tcp-ep"]);
        assert!(
            assigned
                .iter()
                .all(|a| a.site.node == "com1" && a.site.vrf == "t/vrf:main")
        );
        assert!(matches!(
            &assigned[0].kind,
            weft_api::ProbeKind::Http { url, method, interval_ms: 1000, .. }
                if url == "http://10.1.0.5:8080/" && method == "GET"
        ));
        assert!(c.assigned_probes("u").await.unwrap().is_empty());

        // The controller's loop probes only the others; the agent's wait for reports.
        let client = reqwest::Client::new();
        schedule_probes(&c, &client).await.unwrap();
        {
            let results = c.checks.results();
            let reporter = |k: &str| results.get(k).map(|p| p.reporter.clone());
            assert_eq!(reporter("t/ext/http-ep"), Some(Some("com1".into())));
            assert_eq!(reporter("t/ext/tcp-ep"), Some(Some("com1".into())));
            assert_eq!(reporter("t/ext/http-host"), Some(None));
            assert_eq!(reporter("t/ext/tcp-name"), Some(None));
            assert_eq!(reporter("u/ext/http-ep"), Some(None));
        }
        let waiting = c.checks.evaluate(
            "t",
            check("http-ep", http("http://10.1.0.5:8080/")),
            now_ms(),
        );
        assert_eq!(waiting.status, Status::Critical);
        assert!(
            waiting.output.contains("no report yet"),
            "{}",
            waiting.output
        );

        // Another node's agent may not report it; com1's may.
        let reports = [report("http-ep", "passing"), report("tcp-ep", "warning")];
        let other = c.report_probes("com2", &reports).await.unwrap();
        assert_eq!((other.accepted, other.ignored), (0, 2));
        let mut changes = c.checks.changes();
        changes.borrow_and_update();
        let own = c.report_probes("com1", &reports).await.unwrap();
        assert_eq!((own.accepted, own.ignored), (2, 0));
        assert!(
            changes.has_changed().unwrap(),
            "a new status moves the epoch"
        );
        let now = now_ms();
        let r = c
            .checks
            .evaluate("t", check("http-ep", http("http://10.1.0.5:8080/")), now);
        assert_eq!(r.status, Status::Passing);
        assert_eq!(r.output, "HTTP GET: HTTP/1.0 200 OK");
        let r = c
            .checks
            .evaluate("t", check("tcp-ep", tcp("10.1.0.5:9000")), now);
        assert_eq!(r.status, Status::Warning);
        // Unknown statuses, checks and tenants are ignored.
        let junk = [
            report("http-ep", "maintenance"),
            report("nope", "passing"),
            ProbeReport {
                tenant: "u".into(),
                ..report("http-ep", "passing")
            },
        ];
        let out = c.report_probes("com1", &junk).await.unwrap();
        assert_eq!((out.accepted, out.ignored), (0, 3));

        // The loop keeps the agent's result as long as it is fresh.
        schedule_probes(&c, &client).await.unwrap();
        let r = c.checks.evaluate(
            "t",
            check("http-ep", http("http://10.1.0.5:8080/")),
            now_ms(),
        );
        assert_eq!(r.status, Status::Passing);
    }

    #[tokio::test]
    async fn a_report_not_refreshed_in_time_turns_critical() {
        let c = consul();
        let record = check("http-ep", http("http://10.1.0.5:8080/"));
        put(&c, "t", &record).await;
        c.checks
            .record_reported("com1", reported(Status::Passing, 50));
        let now = now_ms();
        assert_eq!(
            c.checks.evaluate("t", record.clone(), now).status,
            Status::Passing
        );
        // Read past the window: critical, and says whose agent is silent.
        let late = c.checks.evaluate("t", record.clone(), now + 1_000);
        assert_eq!(late.status, Status::Critical);
        assert_eq!(late.output, "no report from node com1's agent");
        // The loop turns it critical in its results too, which moves the epoch.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut changes = c.checks.changes();
        changes.borrow_and_update();
        schedule_probes(&c, &reqwest::Client::new()).await.unwrap();
        assert!(changes.has_changed().unwrap());
        assert_eq!(
            c.checks.results().get("t/ext/http-ep").map(|p| p.status),
            Some(Status::Critical)
        );
        let r = c.checks.evaluate("t", record.clone(), now_ms());
        assert_eq!(r.output, "no report from node com1's agent");
        // A fresh report brings it back.
        c.checks
            .record_reported("com1", reported(Status::Passing, 30_000));
        assert_eq!(
            c.checks.evaluate("t", record, now_ms()).status,
            Status::Passing
        );
    }
}
