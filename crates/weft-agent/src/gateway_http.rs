//! Consul's HTTP API at a VRF's gateway: forwarded to the controller's Consul API on
//! behalf of the endpoint that asks, with its tenant's gateway token when it sent none.
//!
//! Reads are remembered (bounded in bytes): when the controller cannot be reached, a
//! read is answered from the last answer to the same request, flagged stale the way
//! Consul flags it (`X-Consul-KnownLeader: false`, `X-Consul-LastContact` = its age in
//! milliseconds). Writes need the controller: they fail with 503 and say so.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use weft_api::VrfDiscovery;

/// A request body beyond this is refused (Consul's KV values are at most 512 KiB).
const BODY_LIMIT: usize = 1024 * 1024;
/// Bytes of remembered reads per VRF gateway; over it, the oldest half is forgotten.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The longest a forwarded request may take (Consul caps `wait` at 10 minutes).
const LONGEST: Duration = Duration::from_secs(11 * 60);

/// The controller's Consul API, as the discovery view last named it.
#[derive(Debug, Default)]
pub struct Upstream {
    addr: RwLock<Option<SocketAddr>>,
    http: reqwest::Client,
}

impl Upstream {
    pub fn set_reachable(&self, addr: Option<SocketAddr>) {
        if let Some(a) = addr {
            *self.addr.write().unwrap_or_else(|p| p.into_inner()) = Some(a);
        }
    }

    /// The controller did not answer the view's query: nothing to change, requests
    /// still try it (and fall back to remembered reads).
    pub fn set_unreachable(&self) {}

    fn addr(&self) -> Option<SocketAddr> {
        *self.addr.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Remembered {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    at: Instant,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Remembered>,
    bytes: usize,
}

impl Cache {
    fn put(&mut self, key: String, value: Remembered) {
        let size = key.len() + value.body.len();
        if size > CACHE_BYTES / 4 {
            return;
        }
        if self.bytes + size > CACHE_BYTES {
            // Forget the older half: bounded memory, and recent reads stay.
            let mut ages: Vec<(Instant, String)> = self
                .entries
                .iter()
                .map(|(k, v)| (v.at, k.clone()))
                .collect();
            ages.sort();
            for (_, k) in ages.iter().take(ages.len() / 2 + 1) {
                if let Some(v) = self.entries.remove(k) {
                    self.bytes -= k.len() + v.body.len();
                }
            }
        }
        if let Some(old) = self.entries.insert(key.clone(), value) {
            self.bytes -= key.len() + old.body.len();
        }
        self.bytes += size;
    }
}

#[derive(Debug)]
struct Shared {
    vrf: RwLock<VrfDiscovery>,
    upstream: Arc<Upstream>,
    cache: Mutex<Cache>,
}

/// One VRF's HTTP gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Serves on `listener` (bound in the VRF namespace) until `stop` turns true.
    pub fn start(
        listener: std::net::TcpListener,
        vrf: VrfDiscovery,
        upstream: Arc<Upstream>,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            vrf: RwLock::new(vrf),
            upstream,
            cache: Mutex::new(Cache::default()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(shared.clone());
        tokio::spawn(serve(listener, app, stop));
        Ok(Self { shared })
    }

    pub fn set_vrf(&self, vrf: VrfDiscovery) {
        *self.shared.vrf.write().unwrap_or_else(|p| p.into_inner()) = vrf;
    }
}

/// Accepts until `stop`. hyper directly rather than `axum::serve`: a client that
/// half-closes its side right after the request (busybox `nc`, `printf ... | nc`) must
/// still get its answer, which needs HTTP/1's `half_close`.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway Consul API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        };
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(ConnectInfo(peer))),
        );
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, %peer, "gateway Consul API connection ended");
                },
                () = async { let _ = stop.wait_for(|s| *s).await; } => {}
            }
        });
    }
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

/// The parameters that make a read block; a remembered read answers them at once.
fn cache_key(tenant: u32, uri: &Uri) -> String {
    let query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("index=") && !p.starts_with("wait="))
        .collect();
    format!("{tenant} {} {}", uri.path(), query.join("&"))
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    axum::Extension(ConnectInfo(peer)): axum::Extension<ConnectInfo<SocketAddr>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (tenant, token) = {
        let vrf = shared.vrf.read().unwrap_or_else(|p| p.into_inner());
        let Some(asker) = vrf.askers.iter().find(|a| a.address == peer.ip()) else {
            return plain(
                StatusCode::FORBIDDEN,
                format!("{} is not an endpoint of this VRF", peer.ip()),
            );
        };
        let token = vrf
            .tenants
            .get(asker.tenant as usize)
            .and_then(|t| t.token.clone());
        (asker.tenant, token)
    };
    let Some(upstream) = shared.upstream.addr() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the weft controller's Consul API is not known yet (no discovery view)".into(),
        );
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{upstream}{path}");
    let mut req = shared
        .upstream
        .http
        .request(method.clone(), &url)
        .timeout(LONGEST)
        .body(body);
    let has_token = headers.contains_key("x-consul-token")
        || headers.contains_key("authorization")
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=")));
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            req = req.header(name, value);
        }
    }
    if !has_token && let Some(t) = token {
        req = req.header("x-consul-token", t);
    }
    let key = (method == Method::GET).then(|| cache_key(tenant, &uri));
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let kept: Vec<(HeaderName, HeaderValue)> = resp
                .headers()
                .iter()
                .filter(|(n, _)| {
                    n.as_str().starts_with("x-consul-") || *n == axum::http::header::CONTENT_TYPE
                })
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => return unreachable_answer(&shared, key, &e.to_string()),
            };
            if let Some(key) = key
                && (status.is_success() || status == StatusCode::NOT_FOUND)
            {
                shared.cache.lock().unwrap_or_else(|p| p.into_inner()).put(
                    key,
                    Remembered {
                        status,
                        headers: kept.clone(),
                        body: body.clone(),
                        at: Instant::now(),
                    },
                );
            }
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = status;
            out.headers_mut().extend(kept);
            out
        }
        Err(e) => unreachable_answer(&shared, key, &e.to_string()),
    }
}

/// The controller did not answer: a remembered read, flagged stale, or 503.
fn unreachable_answer(shared: &Shared, key: Option<String>, why: &str) -> Response {
    let Some(key) = key else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "weft controller unreachable ({why}): writes need the controller; reads are answered from the last state"
            ),
        );
    };
    let cache = shared.cache.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = cache.entries.get(&key) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "weft controller unreachable ({why}), and this read was never answered here before"
            ),
        );
    };
    let mut out = Response::new(Body::from(r.body.clone()));
    *out.status_mut() = r.status;
    for (n, v) in &r.headers {
        out.headers_mut().insert(n.clone(), v.clone());
    }
    let age = u64::try_from(r.at.elapsed().as_millis()).unwrap_or(u64::MAX);
    out.headers_mut()
        .insert("x-consul-knownleader", HeaderValue::from_static("false"));
    out.headers_mut()
        .insert("x-consul-lastcontact", HeaderValue::from(age));
    out
}
