//! [`EtcdStore`]: [`KvStore`] on etcd's v3 API.
//!
//! Every trait call is one etcd request (a keep-alive is two, see
//! [`EtcdStore::lease_keep_alive`](KvStore::lease_keep_alive)), so etcd gives the guarantees:
//! revisions, `create_revision` / `mod_revision` / `version`, compare rules for missing keys
//! and the txn rules (a key written at most once per txn) are etcd's own, which the trait was
//! modelled on. This module only translates types, namespaces keys under an optional prefix,
//! bounds every request in time and maps gRPC failures onto [`StoreError`].

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, ConnectOptions, DeleteOptions, GetOptions, Identity, KvClient,
    LeaseClient, LeaseTimeToLiveOptions, PutOptions, TlsOptions, WatchClient, WatchOptions,
};
use weft_store::{
    CompareOp, CompareTarget, DeleteResponse, EventKind, GetResponse, KeyValue, KvStore,
    LeaseGrant, LeaseId, LeaseTimeToLive, MAX_KEY_LEN, MAX_VALUE_LEN, PutResponse, RangeResponse,
    Result, Revision, StoreError, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchEvent, WatchStream,
};

/// Largest gRPC message this client sends or accepts: a whole-state range at startup can be
/// far above tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Tuning of [`EtcdStore::connect`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// How long [`EtcdStore::connect`] keeps retrying an unreachable cluster before it gives
    /// up with [`StoreError::Unavailable`].
    pub connect_timeout: Duration,
    /// Deadline of one request (not of a watch's lifetime). A request that gets no answer in
    /// time fails with [`StoreError::Unavailable`].
    pub request_timeout: Duration,
    /// First pause between retries of a connect or of a broken watch; it doubles on every
    /// failed attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// TLS to etcd (`https://` endpoints); `None` speaks plaintext (`http://`).
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            tls: None,
        }
    }
}

/// PEM files for TLS to etcd, named like etcdctl's flags (`weft server --etcd-cacert
/// --etcd-cert --etcd-key`). The CA is required: weft trusts no system roots for its
/// store. A client certificate and key are given together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub cacert: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl EtcdTls {
    /// Reads the files; an error names the flag and the file.
    fn load(&self) -> Result<TlsOptions> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| StoreError::InvalidArgument(format!("{flag} {}: {e}", path.display())))
        };
        let pem = read("--etcd-cacert", &self.cacert)?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(StoreError::InvalidArgument(format!(
                "--etcd-cacert {}: not a PEM certificate",
                self.cacert.display()
            )));
        }
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(pem));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity =
                    Identity::from_pem(read("--etcd-cert", cert)?, read("--etcd-key", key)?);
                tls = tls.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::InvalidArgument(
                    "--etcd-cert and --etcd-key go together".to_string(),
                ));
            }
        }
        Ok(tls)
    }
}

/// Refuses endpoints whose scheme does not match the TLS settings, before any attempt:
/// `https://` needs the CA file, and TLS files need `https://` (or no scheme).
fn check_endpoints(endpoints: &[String], tls: bool) -> Result<()> {
    for endpoint in endpoints {
        let scheme = endpoint.split_once("://").map(|(scheme, _)| scheme);
        let wrong = match (scheme, tls) {
            (None, _) | (Some("http"), false) | (Some("https"), true) => None,
            (Some("http"), true) => Some(
                "is plaintext (http://) but TLS files were given: use https:// or drop --etcd-cacert",
            ),
            (Some("https"), false) => Some(
                "uses TLS (https://): give the CA that signed etcd's certificate with --etcd-cacert",
            ),
            (Some(_), _) => Some("must be http://host:port, https://host:port or host:port"),
        };
        if let Some(why) = wrong {
            return Err(StoreError::InvalidArgument(format!(
                "etcd endpoint {endpoint} {why}"
            )));
        }
    }
    Ok(())
}

/// How many connect attempts in a row must meet the same mismatch before it is final.
const MISMATCH_ATTEMPTS: u32 = 3;

/// The mismatch the last connect attempts met, and how many in a row.
#[derive(Debug, Default)]
struct Mismatches {
    hint: Option<&'static str>,
    count: u32,
}

impl Mismatches {
    fn record(&mut self, hint: &'static str) -> u32 {
        if self.hint == Some(hint) {
            self.count += 1;
        } else {
            *self = Mismatches {
                hint: Some(hint),
                count: 1,
            };
        }
        self.count
    }
}

/// Connect failures that waiting does not cure, with what to do about them: a TLS
/// handshake refused either way, or something that answers but is not etcd's gRPC.
fn permanent_connect_failure(reason: &str, tls: bool) -> Option<&'static str> {
    let lower = reason.to_ascii_lowercase();
    // TLS 1.3 finishes the client's side of the handshake before the server checks the
    // client's certificate: a refusal comes as an alert or as the connection closed.
    let alerted = lower.contains("alert")
        && [
            "certificaterequired",
            "badcertificate",
            "unknownca",
            "handshakefailure",
        ]
        .iter()
        .any(|alert| lower.contains(alert));
    if alerted || (tls && lower.contains("canceled") && lower.contains("connection closed")) {
        return Some(
            "etcd refused this client: it checks client certificates (give --etcd-cert and --etcd-key, signed by a CA that etcd trusts)",
        );
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return Some(
            "etcd's certificate is not accepted (not signed by --etcd-cacert, expired, or issued for another host name or address)",
        );
    }
    // A connection accepted and then closed, or answered with something else than
    // TLS or HTTP/2: the two sides disagree on TLS, or this is not etcd.
    let closed = lower.contains("connection reset")
        || lower.contains("broken pipe")
        || lower.contains("handshake eof");
    if tls && (closed || lower.contains("corrupt message") || lower.contains("invalidcontenttype"))
    {
        return Some(
            "the endpoint does not speak TLS: use http:// endpoints without --etcd-cacert",
        );
    }
    if !tls
        && (closed
            || lower.contains("frame with invalid size")
            || lower.contains("h2 protocol error")
            || lower.contains("http2 error")
            || lower.contains("invalid http version"))
    {
        return Some(
            "the endpoint answers, but not as plaintext etcd: it may require TLS (https:// with --etcd-cacert), or it is not an etcd client URL",
        );
    }
    None
}

/// weft's store on an etcd cluster. Cheap to clone; clones share one gRPC channel.
///
/// Keys are stored under `prefix` (may be empty), so several weft installations can share
/// one cluster; revisions are the cluster's, so they also move with writes outside the prefix.
#[derive(Clone)]
pub struct EtcdStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) kv: KvClient,
    pub(crate) watch: WatchClient,
    pub(crate) lease: LeaseClient,
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: Vec<u8>,
    pub(crate) options: EtcdOptions,
    /// Fault injection for the linearizability test only (`WEFT_STORE_FAULT=split-cas`):
    /// a guarded transaction is decided by one request and written by another, so it
    /// is no longer atomic. The test shows the checker catches it.
    pub(crate) split_cas: bool,
}

/// Whether the environment asks for the broken, non-atomic transactions.
fn split_cas_requested() -> bool {
    let on = std::env::var("WEFT_STORE_FAULT").is_ok_and(|v| v == "split-cas");
    if on {
        tracing::error!(
            "WEFT_STORE_FAULT=split-cas: transactions are NOT atomic (fault injection for tests)"
        );
    }
    on
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &String::from_utf8_lossy(&self.inner.prefix))
            .finish_non_exhaustive()
    }
}

/// How an etcd failure is classified before it becomes a [`StoreError`] (some variants need
/// numbers that only the caller knows).
#[derive(Debug)]
pub(crate) enum Failure {
    Unavailable(String),
    Compacted,
    FutureRevision,
    LeaseNotFound,
    InvalidArgument(String),
    Other(String),
}

// gRPC status codes (tonic::Code), by number so this crate needs no direct tonic dependency.
const CODE_CANCELLED: i32 = 1;
const CODE_UNKNOWN: i32 = 2;
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_DEADLINE_EXCEEDED: i32 = 4;
const CODE_NOT_FOUND: i32 = 5;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_OUT_OF_RANGE: i32 = 11;
const CODE_UNAVAILABLE: i32 = 14;

pub(crate) fn classify(err: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => {
            let message = status
                .message()
                .trim_start_matches("etcdserver: ")
                .to_string();
            match status.code() as i32 {
                CODE_UNAVAILABLE | CODE_DEADLINE_EXCEEDED | CODE_CANCELLED => {
                    Failure::Unavailable(message)
                }
                // A broken HTTP/2 connection surfaces as Unknown with a transport message.
                CODE_UNKNOWN if message.contains("transport") || message.contains("h2") => {
                    Failure::Unavailable(message)
                }
                CODE_OUT_OF_RANGE if message.contains("compacted") => Failure::Compacted,
                CODE_OUT_OF_RANGE if message.contains("future revision") => Failure::FutureRevision,
                CODE_NOT_FOUND if message.contains("lease not found") => Failure::LeaseNotFound,
                CODE_INVALID_ARGUMENT | CODE_OUT_OF_RANGE => Failure::InvalidArgument(message),
                CODE_RESOURCE_EXHAUSTED if message.contains("larger than max") => {
                    Failure::InvalidArgument(message)
                }
                _ => Failure::Other(format!("{:?}: {message}", status.code())),
            }
        }
        E::TransportError(e) => Failure::Unavailable(e.to_string()),
        E::IoError(e) => Failure::Unavailable(e.to_string()),
        E::LeaseKeepAliveError(m) if m.contains("not found") => Failure::LeaseNotFound,
        E::InvalidArgs(m) => Failure::InvalidArgument(m.clone()),
        E::InvalidUri(e) => Failure::InvalidArgument(format!("invalid etcd endpoint: {e}")),
        other => Failure::Other(other.to_string()),
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`, or `host:port`) and
    /// checks that it serves linearizable reads (a leader is up). An unreachable cluster is
    /// retried with backoff, with a warning naming the endpoints, until
    /// `options.connect_timeout`; then it fails with [`StoreError::Unavailable`].
    pub async fn connect(
        endpoints: &[String],
        prefix: impl Into<Vec<u8>>,
        options: EtcdOptions,
    ) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument(
                "no etcd endpoints given".to_string(),
            ));
        }
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        check_endpoints(&endpoints, options.tls.is_some())?;
        let tls = options.tls.as_ref().map(EtcdTls::load).transpose()?;
        let joined = endpoints.join(",");
        let deadline = Instant::now() + options.connect_timeout;
        let mut backoff = options.initial_backoff;
        let mut attempt = 0u32;
        let mut last_failure: Option<String> = None;
        let mut mismatches = Mismatches::default();
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let tried = tokio::time::timeout(
                remaining.min(options.request_timeout),
                try_connect(&endpoints, &options, tls.clone()),
            )
            .await;
            let reason = match tried {
                Ok(Ok(client)) => {
                    tracing::info!(endpoints = %joined, attempt, "connected to etcd");
                    let kv = client
                        .kv_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                    let watch = client
                        .watch_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES);
                    return Ok(EtcdStore {
                        inner: Arc::new(Inner {
                            kv,
                            watch,
                            lease: client.lease_client(),
                            endpoints,
                            prefix,
                            options,
                            split_cas: split_cas_requested(),
                        }),
                    });
                }
                Ok(Err(err)) => match classify(&err) {
                    Failure::Unavailable(reason) | Failure::Other(reason) => {
                        let detail = error_chain(&err);
                        match permanent_connect_failure(&detail, tls.is_some()) {
                            // The same refusal three times in a row is not a member
                            // that is starting or restarting.
                            Some(hint) if mismatches.record(hint) >= MISMATCH_ATTEMPTS => {
                                tracing::error!(endpoints = %joined, error = %detail, "etcd refused");
                                return Err(StoreError::Unavailable {
                                    endpoints,
                                    reason: format!("{hint} ({detail})"),
                                });
                            }
                            Some(_) => {}
                            None => mismatches = Mismatches::default(),
                        }
                        reason
                    }
                    // A bad URL does not get better by waiting.
                    Failure::InvalidArgument(reason) => {
                        return Err(StoreError::Unavailable {
                            endpoints,
                            reason: format!("cannot connect: {reason}"),
                        });
                    }
                    other => format!("{other:?}"),
                },
                // Cut short by the deadline: the previous failure says more.
                Err(_) => last_failure
                    .take()
                    .unwrap_or_else(|| "no answer in time".to_string()),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::error!(endpoints = %joined, attempt, error = %reason, "giving up on etcd");
                return Err(StoreError::Unavailable {
                    endpoints,
                    reason: format!(
                        "not reachable within {:?} ({attempt} attempts): {reason}",
                        options.connect_timeout
                    ),
                });
            }
            tracing::warn!(
                endpoints = %joined,
                attempt,
                error = %reason,
                retry_in = ?backoff.min(left),
                "etcd not reachable yet; retrying"
            );
            last_failure = Some(reason);
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(options.max_backoff);
        }
    }

    /// The endpoints this store was connected with.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The key prefix every key is stored under.
    pub fn prefix(&self) -> &[u8] {
        &self.inner.prefix
    }

    /// Runs one request with the request timeout; maps its failure with `map`.
    pub(crate) async fn rpc<T>(
        &self,
        what: &'static str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
        map: impl FnOnce(Failure) -> StoreError,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.options.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                tracing::debug!(what, error = %err, "etcd request failed");
                Err(map(classify(&err)))
            }
            Err(_) => Err(self.unavailable(format!(
                "{what}: no answer within {:?}",
                self.inner.options.request_timeout
            ))),
        }
    }

    /// Like [`Self::rpc`], but a request that etcd refused because its leader changed
    /// or it has none yet (an election after a member was lost), or that could not
    /// connect to a lost member, is sent again, with
    /// backoff, until the request timeout: losing one member of three is invisible to
    /// callers. Only those answers are retried: etcd gives them for proposals it did
    /// not apply, and every weft write that matters is a compare-and-swap, so a
    /// repeated one fails its compare rather than applying twice.
    pub(crate) async fn rpc_retry<T, F, Fut>(
        &self,
        what: &'static str,
        mut request: F,
        map: impl FnOnce(Failure) -> StoreError,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.inner.options.request_timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let failure = match tokio::time::timeout(left, request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => classify(&err),
                Err(_) => {
                    return Err(self.unavailable(format!(
                        "{what}: no answer within {:?}",
                        self.inner.options.request_timeout
                    )));
                }
            };
            // A refused connection to a lost member: the request was never sent, and
            // the channel picks another member next time.
            let electing = matches!(&failure, Failure::Unavailable(m)
                if m.contains("leader changed") || m.contains("no leader")
                    || m.contains("connect error") || m.contains("onnection refused"));
            if !electing || tokio::time::Instant::now() + backoff >= deadline {
                tracing::debug!(what, ?failure, "etcd request failed");
                return Err(map(failure));
            }
            tracing::debug!(what, retry_in = ?backoff, "etcd is electing a leader; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    pub(crate) fn unavailable(&self, reason: String) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.inner.endpoints.clone(),
            reason,
        }
    }

    /// The mapping for requests without lease or revision context.
    pub(crate) fn error(&self, failure: Failure) -> StoreError {
        self.error_with_lease(failure, 0)
    }

    fn error_with_lease(&self, failure: Failure, lease: LeaseId) -> StoreError {
        match failure {
            Failure::Unavailable(reason) => self.unavailable(reason),
            Failure::LeaseNotFound => StoreError::LeaseNotFound(lease),
            Failure::InvalidArgument(reason) => StoreError::InvalidArgument(reason),
            Failure::Compacted => {
                StoreError::Remote("unexpected compaction error from etcd".to_string())
            }
            Failure::FutureRevision => {
                StoreError::Remote("unexpected future-revision error from etcd".to_string())
            }
            Failure::Other(reason) => StoreError::Remote(reason),
        }
    }

    /// The full etcd key of `key`.
    pub(crate) fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.inner.prefix.len() + key.len());
        full.extend_from_slice(&self.inner.prefix);
        full.extend_from_slice(key);
        full
    }

    /// The etcd range `[start, end)` of every key starting with `prefix`.
    pub(crate) fn prefix_range(&self, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let full = self.full_key(prefix);
        if full.is_empty() {
            // etcd's "every key": from "\0" to the end.
            return (vec![0], vec![0]);
        }
        let end = prefix_end(&full);
        (full, end)
    }

    pub(crate) fn convert_kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: self.strip(kv.key()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: (kv.lease() != 0).then_some(kv.lease()),
        }
    }

    fn strip(&self, key: &[u8]) -> Vec<u8> {
        key.strip_prefix(self.inner.prefix.as_slice())
            .unwrap_or(key)
            .to_vec()
    }

    pub(crate) fn convert_event(&self, event: &etcd_client::Event) -> Option<WatchEvent> {
        let kind = match event.event_type() {
            etcd_client::EventType::Put => EventKind::Put,
            etcd_client::EventType::Delete => EventKind::Delete,
        };
        Some(WatchEvent {
            kind,
            kv: self.convert_kv(event.kv()?),
            prev_kv: event.prev_kv().map(|kv| self.convert_kv(kv)),
        })
    }

    /// The compaction point of the cluster. etcd reports it only on a watch that starts
    /// before it, so this opens one from revision 1 and reads the cancellation; call it only
    /// once a `Compacted` error proved there was a compaction.
    pub(crate) async fn compact_revision(&self) -> Result<Revision> {
        let mut watch = self.inner.watch.clone();
        let mut stream = self
            .rpc(
                "watch",
                watch.watch(
                    vec![0],
                    Some(
                        WatchOptions::new()
                            .with_range(vec![0])
                            .with_start_revision(1),
                    ),
                ),
                |f| self.error(f),
            )
            .await?;
        let deadline = self.inner.options.request_timeout;
        let read = async {
            loop {
                match stream.message().await {
                    Ok(Some(response)) if response.compact_revision() > 0 => {
                        return Ok(response.compact_revision());
                    }
                    Ok(Some(response)) if response.created() => {}
                    Ok(Some(_)) => return Ok(0),
                    Ok(None) => {
                        return Err(StoreError::Remote(
                            "watch ended before reporting the compaction point".to_string(),
                        ));
                    }
                    Err(err) => return Err(self.error(classify(&err))),
                }
            }
        };
        tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| self.unavailable("reading the compaction point timed out".to_string()))?
    }

    /// Fails with `Compacted` if a watch from `start` could not replay its history.
    async fn check_history_from(&self, start: Revision, probe: Vec<u8>) -> Result<()> {
        let mut kv = self.inner.kv.clone();
        let options = GetOptions::new().with_revision(start).with_count_only();
        match self
            .rpc_at_revision("get", start, kv.get(probe, Some(options)))
            .await
        {
            Ok(_) | Err(StoreError::FutureRevision { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// One request at (or up to) revision `requested`: when etcd answers that it is
    /// compacted or in the future, the error carries the compaction point or the current
    /// revision, read back from etcd.
    async fn rpc_at_revision<T>(
        &self,
        what: &'static str,
        requested: Revision,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let answered = self
            .rpc(what, request, |failure| match failure {
                Failure::Compacted => StoreError::Compacted {
                    requested,
                    compact_revision: 0,
                },
                Failure::FutureRevision => StoreError::FutureRevision {
                    requested,
                    current: 0,
                },
                other => self.error(other),
            })
            .await;
        match answered {
            Err(StoreError::Compacted { .. }) => Err(StoreError::Compacted {
                requested,
                compact_revision: self.compact_revision().await?,
            }),
            Err(StoreError::FutureRevision { .. }) => Err(StoreError::FutureRevision {
                requested,
                current: self.current_revision().await?,
            }),
            other => other,
        }
    }
}

async fn try_connect(
    endpoints: &[String],
    options: &EtcdOptions,
    tls: Option<TlsOptions>,
) -> Result<Client, etcd_client::Error> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(options.request_timeout.min(Duration::from_secs(5)))
        .with_timeout(options.request_timeout)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
        .with_keep_alive_while_idle(true)
        // A member cut off from its leader answers with an error instead of stale data or
        // a watch that never fires.
        .with_require_leader(true);
    if let Some(tls) = tls {
        connect = connect.with_tls(tls);
    }
    let mut client = Client::connect(endpoints, Some(connect)).await?;
    // The channel connects lazily: a linearizable read proves a member answers with a leader.
    client
        .get(vec![0], Some(GetOptions::new().with_count_only()))
        .await?;
    Ok(client)
}

/// An error with its sources: tonic's transport errors keep the TLS or HTTP/2 cause
/// (what tells a TLS mismatch from a refused connection) in the chain.
fn error_chain(err: &etcd_client::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The smallest key greater than every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes (or empty): every key from the prefix on.
    vec![0]
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidArgument(
            "key must not be empty".to_string(),
        ));
    }
    check_prefix(key)
}

fn check_prefix(prefix: &[u8]) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "key of {} bytes exceeds the {MAX_KEY_LEN}-byte limit",
            prefix.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "value of {} bytes exceeds the {MAX_VALUE_LEN}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

fn check_ops(ops: &[TxnOp]) -> Result<()> {
    for op in ops {
        match op {
            TxnOp::Put { key, value, .. } => {
                check_key(key)?;
                check_value(value)?;
            }
            TxnOp::Delete { key } | TxnOp::Get { key } => check_key(key)?,
            TxnOp::DeletePrefix { prefix } | TxnOp::Range { prefix, .. } => check_prefix(prefix)?,
        }
    }
    Ok(())
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

fn limit(limit: Option<usize>) -> i64 {
    limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

fn compare_op(op: CompareOp) -> etcd_client::CompareOp {
    match op {
        CompareOp::Equal => etcd_client::CompareOp::Equal,
        CompareOp::NotEqual => etcd_client::CompareOp::NotEqual,
        CompareOp::Less => etcd_client::CompareOp::Less,
        CompareOp::Greater => etcd_client::CompareOp::Greater,
    }
}

impl EtcdStore {
    fn txn_op(&self, op: &TxnOp) -> etcd_client::TxnOp {
        match op {
            TxnOp::Put { key, value, lease } => {
                let mut options = PutOptions::new().with_prev_key();
                if let Some(lease) = lease {
                    options = options.with_lease(*lease);
                }
                etcd_client::TxnOp::put(self.full_key(key), value.clone(), Some(options))
            }
            TxnOp::Delete { key } => etcd_client::TxnOp::delete(
                self.full_key(key),
                Some(DeleteOptions::new().with_prev_key()),
            ),
            TxnOp::DeletePrefix { prefix } => {
                let (start, end) = self.prefix_range(prefix);
                etcd_client::TxnOp::delete(
                    start,
                    Some(DeleteOptions::new().with_range(end).with_prev_key()),
                )
            }
            TxnOp::Get { key } => etcd_client::TxnOp::get(self.full_key(key), None),
            TxnOp::Range { prefix, limit: max } => {
                let (start, end) = self.prefix_range(prefix);
                etcd_client::TxnOp::get(
                    start,
                    Some(GetOptions::new().with_range(end).with_limit(limit(*max))),
                )
            }
        }
    }

    fn compare(&self, compare: &weft_store::Compare) -> etcd_client::Compare {
        let key = self.full_key(&compare.key);
        let op = compare_op(compare.op);
        match &compare.target {
            CompareTarget::Value(value) => etcd_client::Compare::value(key, op, value.clone()),
            CompareTarget::Version(version) => etcd_client::Compare::version(key, op, *version),
            CompareTarget::CreateRevision(revision) => {
                etcd_client::Compare::create_revision(key, op, *revision)
            }
            CompareTarget::ModRevision(revision) => {
                etcd_client::Compare::mod_revision(key, op, *revision)
            }
            CompareTarget::Lease(lease) => etcd_client::Compare::lease(key, op, *lease),
        }
    }
}

impl KvStore for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<GetResponse> {
        check_key(key)?;
        let kv = &self.inner.kv;
        let full = self.full_key(key);
        let response = self
            .rpc_retry(
                "get",
                || {
                    let mut kv = kv.clone();
                    let full = full.clone();
                    async move { kv.get(full, None).await }
                },
                |f| self.error(f),
            )
            .await?;
        Ok(GetResponse {
            revision: header_revision(response.header()),
            kv: response.kvs().first().map(|kv| self.convert_kv(kv)),
        })
    }

    async fn range(&self, prefix: &[u8], max: Option<usize>) -> Result<RangeResponse> {
        check_prefix(prefix)?;
        let (start, end) = self.prefix_range(prefix);
        let options = GetOptions::new().with_range(end).with_limit(limit(max));
        let kv = &self.inner.kv;
        let response = self
            .rpc_retry(
                "range",
                || {
                    let mut kv = kv.clone();
                    let (start, options) = (start.clone(), options.clone());
                    async move { kv.get(start, Some(options)).await }
                },
                |f| self.error(f),
            )
            .await?;
        Ok(RangeResponse {
            revision: header_revision(response.header()),
            kvs: response
                .kvs()
                .iter()
                .map(|kv| self.convert_kv(kv))
                .collect(),
            more: response.more(),
        })
    }

    async fn put(&self, key: &[u8], value: &[u8], lease: Option<LeaseId>) -> Result<PutResponse> {
        check_key(key)?;
        check_value(value)?;
        let mut options = PutOptions::new().with_prev_key();
        if let Some(lease) = lease {
            options = options.with_lease(lease);
        }
        let mut kv = self.inner.kv.clone();
        let response = self
            .rpc(
                "put",
                kv.put(self.full_key(key), value.to_vec(), Some(options)),
                |f| self.error_with_lease(f, lease.unwrap_or(0)),
            )
            .await?;
        Ok(PutResponse {
            revision: header_revision(response.header()),
            prev_kv: response.prev_key().map(|kv| self.convert_kv(kv)),
        })
    }

    async fn delete(&self, key: &[u8]) -> Result<DeleteResponse> {
        check_key(key)?;
        let mut kv = self.inner.kv.clone();
        let response = self
            .rpc(
                "delete",
                kv.delete(
                    self.full_key(key),
                    Some(DeleteOptions::new().with_prev_key()),
                ),
                |f| self.error(f),
            )
            .await?;
        Ok(DeleteResponse {
            revision: header_revision(response.header()),
            prev_kvs: response
                .prev_kvs()
                .iter()
                .map(|kv| self.convert_kv(kv))
                .collect(),
        })
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<DeleteResponse> {
        check_prefix(prefix)?;
        let (start, end) = self.prefix_range(prefix);
        let mut kv = self.inner.kv.clone();
        let response = self
            .rpc(
                "delete",
                kv.delete(
                    start,
                    Some(DeleteOptions::new().with_range(end).with_prev_key()),
                ),
                |f| self.error(f),
            )
            .await?;
        Ok(DeleteResponse {
            revision: header_revision(response.header()),
            prev_kvs: response
                .prev_kvs()
                .iter()
                .map(|kv| self.convert_kv(kv))
                .collect(),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        if self.inner.split_cas && !txn.compares.is_empty() {
            let decided = self
                .txn_atomic(Txn {
                    compares: txn.compares,
                    success: Vec::new(),
                    failure: txn.failure,
                })
                .await?;
            if !decided.succeeded {
                return Ok(decided);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            return self
                .txn_atomic(Txn {
                    compares: Vec::new(),
                    success: txn.success,
                    failure: Vec::new(),
                })
                .await;
        }
        self.txn_atomic(txn).await
    }

    async fn watch(&self, prefix: &[u8], start_revision: Option<Revision>) -> Result<WatchStream> {
        check_prefix(prefix)?;
        let (key, end) = self.prefix_range(prefix);
        let start = match start_revision {
            // Everything up to the revision seen now is excluded; later commits are not.
            None => self.current_revision().await? + 1,
            Some(start) => {
                let start = start.max(1);
                self.check_history_from(start, key.clone()).await?;
                start
            }
        };
        Ok(crate::watch::spawn(self.clone(), key, end, start))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.inner.kv.clone();
        self.rpc_at_revision("compact", revision, kv.compact(revision, None))
            .await?;
        tracing::info!(revision, "etcd history compacted");
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let kv = &self.inner.kv;
        let (probe, _) = self.prefix_range(b"");
        let response = self
            .rpc_retry(
                "get",
                || {
                    let mut kv = kv.clone();
                    let probe = probe.clone();
                    async move {
                        kv.get(probe, Some(GetOptions::new().with_count_only()))
                            .await
                    }
                },
                |f| self.error(f),
            )
            .await?;
        Ok(header_revision(response.header()))
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseGrant> {
        if ttl.is_zero() {
            return Err(StoreError::InvalidArgument(
                "lease TTL must be positive".to_string(),
            ));
        }
        // etcd counts in whole seconds: round up, never shorten a lease.
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(seconds)
            .map_err(|_| StoreError::InvalidArgument(format!("lease TTL {ttl:?} is too long")))?;
        let mut lease = self.inner.lease.clone();
        let response = self
            .rpc("lease grant", lease.grant(seconds, None), |f| self.error(f))
            .await?;
        // etcd may raise a TTL to its minimum (1.5 election timeouts); report what it granted.
        Ok(LeaseGrant {
            id: response.id(),
            ttl: Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0)),
        })
    }

    /// Two round trips: etcd-client's keeper answers the first keep-alive itself without its
    /// TTL, so a second one reads the TTL (both restart the countdown; that is harmless).
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        let mut lease = self.inner.lease.clone();
        let not_found = |f| self.error_with_lease(f, id);
        let (mut keeper, mut stream) = self
            .rpc("lease keep-alive", lease.keep_alive(id), not_found)
            .await?;
        self.rpc("lease keep-alive", keeper.keep_alive(), not_found)
            .await?;
        let answer = self
            .rpc("lease keep-alive", stream.message(), not_found)
            .await?;
        match answer {
            Some(answer) if answer.ttl() > 0 => Ok(Duration::from_secs(
                u64::try_from(answer.ttl()).unwrap_or(0),
            )),
            Some(_) => Err(StoreError::LeaseNotFound(id)),
            None => Err(self.unavailable("lease keep-alive stream closed".to_string())),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        let mut lease = self.inner.lease.clone();
        let response = self
            .rpc("lease revoke", lease.revoke(id), |f| {
                self.error_with_lease(f, id)
            })
            .await?;
        Ok(header_revision(response.header()))
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<Option<LeaseTimeToLive>> {
        let mut lease = self.inner.lease.clone();
        let answer = self
            .rpc(
                "lease time-to-live",
                lease.time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys())),
                |f| self.error_with_lease(f, id),
            )
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(StoreError::LeaseNotFound(_)) => return Ok(None),
            Err(err) => return Err(err),
        };
        if response.ttl() < 0 {
            return Ok(None);
        }
        let prefix = self.inner.prefix.as_slice();
        // etcd lists a lease's keys in no particular order; the trait promises key order.
        let mut keys: Vec<Vec<u8>> = response
            .keys()
            .iter()
            .filter_map(|key| key.strip_prefix(prefix).map(<[u8]>::to_vec))
            .collect();
        keys.sort();
        let seconds = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        Ok(Some(LeaseTimeToLive {
            id,
            granted_ttl: seconds(response.granted_ttl()),
            remaining: seconds(response.ttl()),
            keys,
        }))
    }
}

impl EtcdStore {
    /// One etcd transaction: compares and both branches in one request, atomic.
    async fn txn_atomic(&self, txn: Txn) -> Result<TxnResponse> {
        for compare in &txn.compares {
            check_key(&compare.key)?;
        }
        check_ops(&txn.success)?;
        check_ops(&txn.failure)?;
        // The lease a "lease not found" refers to: etcd does not say which; name the first.
        let lease = txn
            .success
            .iter()
            .chain(&txn.failure)
            .find_map(|op| match op {
                TxnOp::Put {
                    lease: Some(lease), ..
                } => Some(*lease),
                _ => None,
            })
            .unwrap_or(0);
        let request = etcd_client::Txn::new()
            .when(
                txn.compares
                    .iter()
                    .map(|c| self.compare(c))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                txn.success
                    .iter()
                    .map(|op| self.txn_op(op))
                    .collect::<Vec<_>>(),
            )
            .or_else(
                txn.failure
                    .iter()
                    .map(|op| self.txn_op(op))
                    .collect::<Vec<_>>(),
            );
        let kv = &self.inner.kv;
        let response = self
            .rpc_retry(
                "txn",
                || {
                    let mut kv = kv.clone();
                    let request = request.clone();
                    async move { kv.txn(request).await }
                },
                |f| self.error_with_lease(f, lease),
            )
            .await?;
        let succeeded = response.succeeded();
        let revision = header_revision(response.header());
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let results = response.op_responses();
        if results.len() != branch.len() {
            return Err(StoreError::Remote(format!(
                "etcd answered {} op results for {} ops",
                results.len(),
                branch.len()
            )));
        }
        let mut responses = Vec::with_capacity(branch.len());
        // Every op of a transaction reports the transaction's revision, as RedbStore does.
        for (op, result) in branch.iter().zip(results) {
            let response = match (op, result) {
                (TxnOp::Put { .. }, etcd_client::TxnOpResponse::Put(put)) => {
                    TxnOpResponse::Put(PutResponse {
                        revision,
                        prev_kv: put.prev_key().map(|kv| self.convert_kv(kv)),
                    })
                }
                (
                    TxnOp::Delete { .. } | TxnOp::DeletePrefix { .. },
                    etcd_client::TxnOpResponse::Delete(delete),
                ) => TxnOpResponse::Delete(DeleteResponse {
                    revision,
                    prev_kvs: delete
                        .prev_kvs()
                        .iter()
                        .map(|kv| self.convert_kv(kv))
                        .collect(),
                }),
                (TxnOp::Get { .. }, etcd_client::TxnOpResponse::Get(get)) => {
                    TxnOpResponse::Get(GetResponse {
                        revision,
                        kv: get.kvs().first().map(|kv| self.convert_kv(kv)),
                    })
                }
                (TxnOp::Range { .. }, etcd_client::TxnOpResponse::Get(get)) => {
                    TxnOpResponse::Range(RangeResponse {
                        revision,
                        kvs: get.kvs().iter().map(|kv| self.convert_kv(kv)).collect(),
                        more: get.more(),
                    })
                }
                (op, result) => {
                    return Err(StoreError::Remote(format!(
                        "etcd answered {result:?} to {op:?}"
                    )));
                }
            };
            responses.push(response);
        }
        Ok(TxnResponse {
            succeeded,
            revision,
            responses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"apps/"), b"apps0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
    }
}
