//! Consul's HTTP and TCP checks that aim at this node's endpoints, run from inside the
//! endpoint's VRF namespace: the controller cannot reach addresses that exist only in
//! the fabric, the VRF namespace (which holds the bridges with the gateway addresses)
//! reaches every endpoint of its VRF on this node directly.
//!
//! The controller assigns the checks ([`weft_api::DiscoveryView::probes`]); each VRF
//! served runs its own ([`VrfProbes`]), one task per check at the check's interval, at
//! most [`MAX_CONCURRENT`] probes at a time on the whole node. Sockets are created by a
//! thread that entered the VRF namespace once ([`SocketFactory`]) and used from the
//! runtime: a socket stays in the namespace it was created in.
//!
//! Results go to the controller ([`report_loop`]): at once on every change of status, and
//! every [`REPORT_EVERY`] otherwise (the controller turns a check critical when its
//! reports stop).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use weft_api::{Client, MAX_PROBE_OUTPUT, ProbeKind, ProbeReport, ProbeSpec};

/// Every result is sent again this often, even without a change.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Probes running at the same time on this node, every VRF together.
pub const MAX_CONCURRENT: usize = 64;
/// Consul's floor on a check's interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// No probe waits longer than this, whatever its timeout says.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The most bytes read of an HTTP answer, looking for its status line.
const STATUS_LINE_MAX: usize = 1024;
/// Changes arriving this close together go in one report.
const COALESCE: Duration = Duration::from_millis(20);

/// A check: tenant, Consul node, check ID.
type Key = (String, String, String);

fn key(spec: &ProbeSpec) -> Key {
    (
        spec.tenant.clone(),
        spec.node.clone(),
        spec.check_id.clone(),
    )
}

/// A probe's verdict, as Consul names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passing,
    Warning,
    Critical,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Consul's reading of an HTTP status: 2xx passing, 429 warning, else critical.
    pub fn of_http(code: u16) -> Self {
        match code {
            200..=299 => Self::Passing,
            429 => Self::Warning,
            _ => Self::Critical,
        }
    }
}

/// The last result of every probe of this node, and which changed since the last report.
#[derive(Debug)]
pub struct Results {
    inner: Mutex<Inner>,
    changed: Notify,
    permits: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Inner {
    last: HashMap<Key, (Verdict, String)>,
    dirty: HashSet<Key>,
}

impl Default for Results {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }
}

impl Results {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a probe's result; a new status is reported at once.
    pub fn record(&self, key: Key, verdict: Verdict, mut output: String) {
        if output.len() > MAX_PROBE_OUTPUT {
            let mut end = MAX_PROBE_OUTPUT;
            while !output.is_char_boundary(end) {
                end -= 1;
            }
            output.truncate(end);
        }
        let changed = {
            let mut inner = self.inner();
            let changed = inner.last.get(&key).is_none_or(|(v, _)| *v != verdict);
            if changed {
                inner.dirty.insert(key.clone());
            }
            inner.last.insert(key, (verdict, output));
            changed
        };
        if changed {
            self.changed.notify_one();
        }
    }

    fn forget(&self, key: &Key) {
        let mut inner = self.inner();
        inner.last.remove(key);
        inner.dirty.remove(key);
    }

    /// The results to send: every one (`all`), or those that changed; they are no longer
    /// marked changed.
    fn take(&self, all: bool) -> Vec<ProbeReport> {
        let mut inner = self.inner();
        let dirty = std::mem::take(&mut inner.dirty);
        inner
            .last
            .iter()
            .filter(|(k, _)| all || dirty.contains(*k))
            .map(
                |((tenant, node, check_id), (verdict, output))| ProbeReport {
                    tenant: tenant.clone(),
                    node: node.clone(),
                    check_id: check_id.clone(),
                    status: verdict.as_str().to_string(),
                    output: output.clone(),
                },
            )
            .collect()
    }

    /// A report that did not reach the controller: send these again.
    fn unsent(&self, reports: &[ProbeReport]) {
        let mut inner = self.inner();
        for r in reports {
            let k = (r.tenant.clone(), r.node.clone(), r.check_id.clone());
            if inner.last.contains_key(&k) {
                inner.dirty.insert(k);
            }
        }
    }

    /// The last verdict of a check, if it ran.
    pub fn verdict(&self, tenant: &str, node: &str, check_id: &str) -> Option<Verdict> {
        let k = (tenant.to_string(), node.to_string(), check_id.to_string());
        self.inner().last.get(&k).map(|(v, _)| *v)
    }
}

/// Sends `results` to the controller until `stop` turns true: changes at once, all every
/// [`REPORT_EVERY`].
pub async fn report_loop(
    client: Client,
    node: String,
    results: Arc<Results>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = every.tick() => true,
            () = results.changed.notified() => false,
            _ = stop.wait_for(|s| *s) => return,
        };
        if !all {
            tokio::time::sleep(COALESCE).await;
        }
        let batch = results.take(all);
        if batch.is_empty() {
            continue;
        }
        let sent = tokio::select! {
            r = client.report_probes(&node, &batch) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match sent {
            Ok(outcome) => {
                tracing::debug!(
                    reports = batch.len(),
                    accepted = outcome.accepted,
                    ignored = outcome.ignored,
                    "check results reported"
                );
            }
            Err(e) => {
                // Sent again with the next change or the next full report.
                results.unsent(&batch);
                tracing::warn!(error = %e, reports = batch.len(), "cannot report check results to the controller");
            }
        }
    }
}

type SocketRequest = (bool, oneshot::Sender<std::io::Result<TcpSocket>>);

/// Creates TCP sockets inside one network namespace: a thread that entered it once.
#[derive(Debug)]
pub struct SocketFactory {
    netns: String,
    requests: std::sync::mpsc::Sender<SocketRequest>,
}

impl SocketFactory {
    /// Starts the thread; it ends when the factory is dropped.
    pub fn start(netns: &str) -> std::io::Result<Self> {
        let (requests, rx) = std::sync::mpsc::channel::<SocketRequest>();
        let ns = netns.to_string();
        std::thread::Builder::new()
            .name(format!("probe-{netns}"))
            .spawn(move || {
                let entered = weft_fabric::netns::in_netns(&ns, move || {
                    for (v6, reply) in rx {
                        let socket = if v6 {
                            TcpSocket::new_v6()
                        } else {
                            TcpSocket::new_v4()
                        };
                        let _ = reply.send(socket);
                    }
                });
                if let Err(e) = entered {
                    tracing::warn!(netns = %ns, error = %e, "cannot enter the VRF namespace to run checks");
                }
            })?;
        Ok(Self {
            netns: netns.to_string(),
            requests,
        })
    }

    /// A socket of the namespace for `addr`'s family.
    pub async fn socket(&self, v6: bool) -> std::io::Result<TcpSocket> {
        let gone = || {
            std::io::Error::other(format!(
                "no socket thread in namespace {} (is it gone?)",
                self.netns
            ))
        };
        let (tx, rx) = oneshot::channel();
        self.requests.send((v6, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A TCP connection to `addr` from inside the namespace.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.socket(addr.is_ipv6()).await?.connect(addr).await
    }
}

/// The checks of one VRF namespace, each a task at its interval.
#[derive(Debug)]
pub struct VrfProbes {
    sockets: Arc<SocketFactory>,
    results: Arc<Results>,
    running: HashMap<Key, (ProbeSpec, tokio::task::JoinHandle<()>)>,
}

impl VrfProbes {
    pub fn start(netns: &str, results: Arc<Results>) -> std::io::Result<Self> {
        Ok(Self {
            sockets: Arc::new(SocketFactory::start(netns)?),
            results,
            running: HashMap::new(),
        })
    }

    /// Runs exactly `specs`: starts new or changed checks, stops those that left.
    pub fn set<'a>(&mut self, specs: impl IntoIterator<Item = &'a ProbeSpec>) {
        let wanted: HashMap<Key, &ProbeSpec> = specs.into_iter().map(|s| (key(s), s)).collect();
        self.running.retain(|k, (spec, task)| {
            let keep = wanted.get(k).is_some_and(|w| *w == spec);
            if !keep {
                task.abort();
                self.results.forget(k);
            }
            keep
        });
        for (k, spec) in wanted {
            if self.running.contains_key(&k) {
                continue;
            }
            let task = tokio::spawn(worker(
                spec.clone(),
                Arc::clone(&self.sockets),
                Arc::clone(&self.results),
            ));
            self.running.insert(k, (spec.clone(), task));
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl Drop for VrfProbes {
    fn drop(&mut self) {
        for (k, (_, task)) in self.running.drain() {
            task.abort();
            self.results.forget(&k);
        }
    }
}

async fn worker(spec: ProbeSpec, sockets: Arc<SocketFactory>, results: Arc<Results>) {
    let k = key(&spec);
    let period = Duration::from_millis(spec.kind.interval_ms()).max(MIN_INTERVAL);
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Ok(permit) = Arc::clone(&results.permits).acquire_owned().await else {
            return;
        };
        let (verdict, output) = probe(&sockets, &spec.kind).await;
        drop(permit);
        results.record(k.clone(), verdict, output);
    }
}

/// Runs one probe from the namespace of `sockets`.
pub async fn probe(sockets: &SocketFactory, kind: &ProbeKind) -> (Verdict, String) {
    let timeout = Duration::from_millis(kind.timeout_ms()).min(MAX_TIMEOUT);
    match kind {
        ProbeKind::Tcp { address, .. } => {
            let Ok(addr) = address.parse::<SocketAddr>() else {
                return (
                    Verdict::Critical,
                    format!("dial tcp {address}: not an address like 10.0.0.5:80"),
                );
            };
            match tokio::time::timeout(timeout, sockets.connect(addr)).await {
                Ok(Ok(_)) => (Verdict::Passing, format!("TCP connect {address}: Success")),
                Ok(Err(e)) => (Verdict::Critical, format!("dial tcp {address}: {e}")),
                Err(_) => (
                    Verdict::Critical,
                    format!("dial tcp {address}: i/o timeout"),
                ),
            }
        }
        ProbeKind::Http { url, method, .. } => {
            let target = match HttpTarget::parse(url, method) {
                Ok(t) => t,
                Err(why) => return (Verdict::Critical, format!("HTTP {method} {url}: {why}")),
            };
            match tokio::time::timeout(timeout, http_status_line(sockets, &target)).await {
                Ok(Ok(line)) => {
                    let verdict = status_code(&line).map_or(Verdict::Critical, Verdict::of_http);
                    (verdict, format!("HTTP {method} {url}: {line}"))
                }
                Ok(Err(e)) => (Verdict::Critical, format!("HTTP {method} {url}: {e}")),
                Err(_) => (
                    Verdict::Critical,
                    format!(
                        "HTTP {method} {url}: timed out after {}ms",
                        timeout.as_millis()
                    ),
                ),
            }
        }
    }
}

/// What an HTTP check sends, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority without credentials.
    pub host: String,
    pub path: String,
    pub method: String,
}

impl HttpTarget {
    /// Reads an `http://IP[:port]/path` URL; anything that cannot be sent safely as a
    /// request line is refused (the URL and method come from a registration).
    pub fn parse(url: &str, method: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(
                "HTTPS checks are not run by weft's agents (no TLS); use http:// or a TCP check"
                    .into(),
            );
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "the URL must start with http://".to_string())?;
        if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(format!("method {method:?} is not an HTTP method"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("the URL's path has spaces or control characters".into());
        }
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let addr = if let Ok(a) = host.parse::<SocketAddr>() {
            a
        } else {
            let ip = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("host {host:?} is not an IP address"))?;
            SocketAddr::new(ip, 80)
        };
        Ok(Self {
            addr,
            host: host.to_string(),
            path,
            method: method.to_string(),
        })
    }

    pub fn request(&self) -> String {
        format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nConnection: close\r\n\r\n",
            self.method, self.path, self.host
        )
    }
}

/// Sends the request and reads the answer's status line.
async fn http_status_line(sockets: &SocketFactory, target: &HttpTarget) -> std::io::Result<String> {
    let mut stream = sockets.connect(target.addr).await?;
    stream.write_all(target.request().as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            buf.truncate(end);
            break;
        }
        if buf.len() >= STATUS_LINE_MAX {
            return Err(std::io::Error::other("no status line in the first 1 KiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if buf.is_empty() {
                return Err(std::io::Error::other("connection closed without an answer"));
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

/// The code of a status line like `HTTP/1.1 200 OK`.
pub fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn http_targets_are_read_and_unsafe_ones_refused() {
        let t = HttpTarget::parse("http://10.1.0.5:8080/health?x=1#frag", "GET").unwrap();
        assert_eq!(t.addr, "10.1.0.5:8080".parse().unwrap());
        assert_eq!(t.host, "10.1.0.5:8080");
        assert_eq!(t.path, "/health?x=1");
        assert!(
            t.request()
                .starts_with("GET /health?x=1 HTTP/1.1\r\nHost: 10.1.0.5:8080\r\n")
        );
        let t = HttpTarget::parse("http://u:p@10.1.0.5", "HEAD").unwrap();
        assert_eq!(t.addr, "10.1.0.5:80".parse().unwrap());
        assert_eq!((t.host.as_str(), t.path.as_str()), ("10.1.0.5", "/"));
        let t = HttpTarget::parse("http://[fd00::5]:81/", "GET").unwrap();
        assert_eq!(t.addr, "[fd00::5]:81".parse().unwrap());
        let t = HttpTarget::parse("http://[fd00::5]", "GET").unwrap();
        assert_eq!(t.addr, "[fd00::5]:80".parse().unwrap());
        assert!(
            HttpTarget::parse("https://10.1.0.5/", "GET")
                .unwrap_err()
                .contains("HTTPS")
        );
        assert!(HttpTarget::parse("http://web.local/", "GET").is_err());
        assert!(HttpTarget::parse("http://10.1.0.5/a b", "GET").is_err());
        assert!(HttpTarget::parse("http://10.1.0.5/a\r\nX: y", "GET").is_err());
        assert!(HttpTarget::parse("http://10.1.0.5/", "GET /x").is_err());
        assert!(HttpTarget::parse("http://10.1.0.5/", "").is_err());
    }

    #[test]
    fn status_lines_read_as_consul_does() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 429 Too Many"), Some(429));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(Verdict::of_http(204), Verdict::Passing);
        assert_eq!(Verdict::of_http(429), Verdict::Warning);
        assert_eq!(Verdict::of_http(503), Verdict::Critical);
        assert_eq!(Verdict::of_http(301), Verdict::Critical);
    }

    #[test]
    fn changes_are_reported_once_and_everything_on_a_full_report() {
        let r = Results::default();
        let k = |c: &str| ("t".to_string(), "n".to_string(), c.to_string());
        r.record(k("a"), Verdict::Passing, "ok".into());
        r.record(k("b"), Verdict::Critical, "x".repeat(MAX_PROBE_OUTPUT + 10));
        let first = r.take(false);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|x| x.output.len() <= MAX_PROBE_OUTPUT));
        // Same status again: nothing new to send at once.
        r.record(k("a"), Verdict::Passing, "ok again".into());
        assert!(r.take(false).is_empty());
        r.record(k("a"), Verdict::Critical, "refused".into());
        let changed = r.take(false);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].status, "critical");
        // A failed send is retried.
        r.unsent(&changed);
        assert_eq!(r.take(false).len(), 1);
        assert_eq!(r.take(true).len(), 2);
        r.forget(&k("b"));
        assert_eq!(r.take(true).len(), 1);
    }
}
