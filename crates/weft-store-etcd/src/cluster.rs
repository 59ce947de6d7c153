//! Local etcd clusters: real `etcd` processes on loopback, for tests, benchmarks and
//! `weft dev --ha 3`.
//!
//! [`EtcdCluster::start`] picks free loopback ports, starts one process per member with its
//! data directory in a temporary directory (or under [`ClusterOptions::dir`]), and waits
//! until every member serves linearizable reads. Members can be stopped (SIGKILL) and
//! restarted on the same ports and data to exercise failover and reconnection. Dropping the
//! cluster kills every process and removes a temporary directory; [`EtcdCluster::keep`]
//! leaves the members running instead.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use weft_store::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Environment variable naming the etcd binary to use instead of [`DEFAULT_ETCD_BIN`].
pub const ETCD_BIN_ENV: &str = "WEFT_ETCD_BIN";
/// Where Debian's `etcd-server` package installs etcd.
pub const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";

/// Failures to run a local cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("etcd is not installed (looked for {0}; install etcd-server or set {ETCD_BIN_ENV})")]
    NotInstalled(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd member {member} exited during startup ({status}); its log ends with:\n{log}")]
    Exited {
        member: String,
        status: String,
        log: String,
    },
    #[error(
        "etcd member {member} did not serve within {timeout:?} ({reason}); its log ends with:\n{log}"
    )]
    NotReady {
        member: String,
        timeout: Duration,
        reason: String,
        log: String,
    },
    #[error("the cluster has no member {0}")]
    NoSuchMember(usize),
}

/// The etcd binary: `$WEFT_ETCD_BIN`, else [`DEFAULT_ETCD_BIN`], else `etcd` on `PATH`.
pub fn etcd_binary() -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os(ETCD_BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ClusterError::NotInstalled(path))
        };
    }
    let default = PathBuf::from(DEFAULT_ETCD_BIN);
    if default.is_file() {
        return Ok(default);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .ok_or(ClusterError::NotInstalled(default))
}

/// For tests that need etcd: true if it is installed. Otherwise a test must not pass
/// silently: with `CI` set this panics (CI machines must have etcd); elsewhere it prints a
/// loud SKIP line and returns false, and the caller returns early.
pub fn etcd_available_for_test(test: &str) -> bool {
    match etcd_binary() {
        Ok(_) => true,
        Err(err) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set, so the etcd tests must run: {err}")
        }
        Err(err) => {
            eprintln!("SKIP {test}: {err}; install etcd-server to run it");
            false
        }
    }
}

/// Shape and timing of a local cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of members (1 or an odd number for a useful quorum).
    pub members: usize,
    /// etcd's `--heartbeat-interval`.
    pub heartbeat: Duration,
    /// etcd's `--election-timeout`. It also sets etcd's shortest lease TTL (1.5 election
    /// timeouts, rounded up to whole seconds).
    pub election_timeout: Duration,
    /// How long [`EtcdCluster::start`] waits for every member to serve.
    pub ready_timeout: Duration,
    /// Where the members' data and logs live. `None`: a new temporary directory, removed
    /// when the cluster is dropped. `Some(dir)`: this directory, emptied at start and left
    /// in place on drop (its owner removes it); each member then also runs in its own
    /// process group, so that a terminal's Ctrl-C reaches only the owner, which stops the
    /// members in its own order (`weft dev --ha 3` keeps them in `/run/weft/<tag>/etcd`).
    pub dir: Option<PathBuf>,
}

impl ClusterOptions {
    /// One member, with fast elections (a lone member cannot see spurious elections), so the
    /// shortest lease is 1 s.
    pub fn single() -> Self {
        ClusterOptions {
            members: 1,
            heartbeat: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            ready_timeout: Duration::from_secs(30),
            dir: None,
        }
    }

    /// `members` members with etcd's default timing (robust on a busy machine).
    pub fn members(members: usize) -> Self {
        ClusterOptions {
            members: members.max(1),
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            ready_timeout: Duration::from_secs(60),
            dir: None,
        }
    }

    /// The same cluster with its data and logs in `dir` (see [`ClusterOptions::dir`]).
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
}

/// Where a cluster's members keep their data and logs.
#[derive(Debug)]
enum ClusterDir {
    /// Removed on drop.
    Temp(tempfile::TempDir),
    /// The owner's.
    Given(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(dir) => dir.path(),
            ClusterDir::Given(dir) => dir,
        }
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A running local etcd cluster; dropping it kills the members and deletes their data.
#[derive(Debug)]
pub struct EtcdCluster {
    binary: PathBuf,
    options: ClusterOptions,
    token: String,
    members: Vec<Member>,
    // Last: removed after the processes are killed.
    dir: ClusterDir,
}

impl EtcdCluster {
    /// Starts a cluster and waits until every member serves linearizable reads. A start that
    /// fails because a picked port was taken meanwhile is retried with new ports.
    pub async fn start(options: ClusterOptions) -> Result<Self, ClusterError> {
        let binary = etcd_binary()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&binary, &options).await {
                Err(ClusterError::Exited { log, .. })
                    if attempt < 3 && log.contains("address already in use") =>
                {
                    tracing::debug!(attempt, "etcd port taken meanwhile; new ports");
                }
                other => return other,
            }
        }
    }

    async fn start_once(binary: &Path, options: &ClusterOptions) -> Result<Self, ClusterError> {
        let dir = match &options.dir {
            None => ClusterDir::Temp(
                tempfile::Builder::new()
                    .prefix("weft-etcd-")
                    .tempdir()
                    .map_err(|source| ClusterError::Io {
                        what: "creating the cluster's temporary directory".to_string(),
                        source,
                    })?,
            ),
            Some(given) => {
                // A new cluster: data of an earlier one would be reused by etcd.
                let _ = std::fs::remove_dir_all(given);
                std::fs::create_dir_all(given).map_err(|source| ClusterError::Io {
                    what: format!("creating {}", given.display()),
                    source,
                })?;
                ClusterDir::Given(given.clone())
            }
        };
        let ports = free_ports(options.members * 2)?;
        let members = (0..options.members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut cluster = EtcdCluster {
            binary: binary.to_path_buf(),
            options: options.clone(),
            token: format!("weft-{}-{nanos}", std::process::id()),
            members,
            dir,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.members.len() {
            cluster.wait_member(i).await?;
        }
        tracing::info!(endpoints = %cluster.endpoints().join(","), "local etcd cluster up");
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), ClusterError> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let member = self
            .members
            .get_mut(i)
            .ok_or(ClusterError::NoSuchMember(i))?;
        let io = |what: &str, source| ClusterError::Io {
            what: format!("{what} for etcd member {}", member.name),
            source,
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(|e| io("opening the log", e))?;
        let log_err = log.try_clone().map_err(|e| io("opening the log", e))?;
        // Room for weft's largest value plus its key, and for large txns.
        let max_request = MAX_VALUE_LEN + MAX_KEY_LEN + 64 * 1024;
        let mut command = Command::new(&self.binary);
        if matches!(self.dir, ClusterDir::Given(_)) {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let child = command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(member.client_url())
            .arg("--advertise-client-urls")
            .arg(member.client_url())
            .arg("--listen-peer-urls")
            .arg(member.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(member.peer_url())
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--heartbeat-interval")
            .arg(self.options.heartbeat.as_millis().to_string())
            .arg("--election-timeout")
            .arg(self.options.election_timeout.as_millis().to_string())
            .arg("--max-txn-ops")
            .arg("4096")
            .arg("--max-request-bytes")
            .arg(max_request.to_string())
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| io("starting etcd", e))?;
        member.child = Some(child);
        Ok(())
    }

    /// Waits until member `i` answers a linearizable read (so it also has a leader).
    async fn wait_member(&mut self, i: usize) -> Result<(), ClusterError> {
        let timeout = self.options.ready_timeout;
        let deadline = Instant::now() + timeout;
        let endpoint = self.member(i)?.client_url();
        let mut reason = String::from("not tried");
        while Instant::now() < deadline {
            let member = self
                .members
                .get_mut(i)
                .ok_or(ClusterError::NoSuchMember(i))?;
            if let Some(child) = member.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                member.child = None;
                return Err(ClusterError::Exited {
                    member: member.name.clone(),
                    status: status.to_string(),
                    log: member.log_tail(),
                });
            }
            match probe(&endpoint).await {
                Ok(()) => return Ok(()),
                Err(err) => reason = err,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let member = self.member(i)?;
        Err(ClusterError::NotReady {
            member: member.name.clone(),
            timeout,
            reason,
            log: member.log_tail(),
        })
    }

    fn member(&self, i: usize) -> Result<&Member, ClusterError> {
        self.members.get(i).ok_or(ClusterError::NoSuchMember(i))
    }

    /// Client URLs of all members (running or not), e.g. `http://127.0.0.1:40123`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> Result<String, ClusterError> {
        Ok(self.member(i)?.client_url())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Where the members' data and logs live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process ids of the running members.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// Leaves the members running, and their data in place, when the cluster is dropped;
    /// whoever stops them later finds them by [`EtcdCluster::pids`].
    pub fn keep(mut self) {
        for member in &mut self.members {
            member.child = None;
        }
        let dir = std::mem::replace(&mut self.dir, ClusterDir::Given(PathBuf::new()));
        if let ClusterDir::Temp(temp) = dir {
            let _ = temp.keep();
        }
    }

    /// Kills member `i` (SIGKILL, like a crash) and waits for it to exit.
    pub fn stop_member(&mut self, i: usize) -> Result<(), ClusterError> {
        let member = self
            .members
            .get_mut(i)
            .ok_or(ClusterError::NoSuchMember(i))?;
        member.kill();
        tracing::info!(member = %member.name, "etcd member stopped");
        Ok(())
    }

    /// Starts a stopped member again on its ports and data, and waits until it serves.
    pub async fn restart_member(&mut self, i: usize) -> Result<(), ClusterError> {
        if self.member(i)?.child.is_some() {
            return Ok(());
        }
        self.spawn(i)?;
        self.wait_member(i).await
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}

/// One linearizable read against one member, with short timeouts.
async fn probe(endpoint: &str) -> Result<(), String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2))
        .with_require_leader(true);
    let attempt = async {
        let mut client = Client::connect([endpoint], Some(options)).await?;
        client
            .get(vec![0], Some(GetOptions::new().with_count_only()))
            .await?;
        Ok::<(), etcd_client::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer within 3s".to_string()),
    }
}

/// `count` distinct free loopback ports (held open together so none repeats).
fn free_ports(count: usize) -> Result<Vec<u16>, ClusterError> {
    let io = |source| ClusterError::Io {
        what: "picking a free port".to_string(),
        source,
    };
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(io))
        .collect()
}
