//! etcd + kube-apiserver as supervised local processes, or an existing cluster.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use kube::config::Kubeconfig;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::binaries::{Binaries, binaries};
use crate::certs::{self, Pki};
use crate::detached::{DetachedProcess, DetachedState};
use crate::kubeconfig::{self, Endpoint};
use crate::process::{Lifetime, Supervised, Watchdog};

/// Set to a kubeconfig path to run against that existing cluster: [`ControlPlane::start`] then starts
/// nothing and only connects.
pub const EXISTING_KUBECONFIG_ENV: &str = "CLOUDJOB_TEST_KUBECONFIG";

/// How long the control plane gets to become ready (readyz ok and the `default` namespace exists).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// etcd only has to open its client port; it does so within a second even on a busy machine.
const ETCD_TIMEOUT: Duration = Duration::from_secs(20);
/// Service-account tokens outlive any test, and `up` sessions of a working day.
const TOKEN_SECONDS: i64 = 24 * 60 * 60;
/// The `kubernetes` Service's ClusterIP: the first address of `--service-cluster-ip-range`.
const SERVICE_IP: &str = "10.0.0.1";
/// Bytes of a process log quoted in startup errors.
const LOG_TAIL_BYTES: u64 = 4096;

/// How to start a control plane; the default is what [`ControlPlane::start`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlPlaneOptions {
    /// The address kube-apiserver binds to and advertises (default 127.0.0.1). A node's pods reach the
    /// API server only on the node's bridge address: there is no kube-proxy for the `kubernetes` Service.
    pub address: Option<Ipv4Addr>,
    /// Turn the ServiceAccount admission plugin on, so that pods get their token mounted. Only with
    /// kube-controller-manager running (it creates each namespace's `default` ServiceAccount).
    pub service_account_admission: bool,
}

/// A running Kubernetes control plane (or a connection to an existing one, see
/// [`EXISTING_KUBECONFIG_ENV`]). Dropping it stops the processes it started and removes its files.
pub struct ControlPlane {
    client: kube::Client,
    kubeconfig_path: PathBuf,
    server_url: String,
    endpoint: Endpoint,
    binaries: Binaries,
    /// In start order (etcd, kube-apiserver); stopped in reverse so the API server never runs
    /// without its storage.
    processes: Vec<Supervised>,
    /// Kills `processes` and removes `dir` if this process dies without dropping `self`.
    watchdog: Option<Watchdog>,
    /// Everything the control plane writes: certificates, etcd data, logs, kubeconfigs, helm homes.
    dir: PathBuf,
    /// Owns `dir` when it is a temporary directory (always, except for `cloudjob-testenv up`).
    temp: Option<TempDir>,
    /// How kube-apiserver was started, to start it again ([`ControlPlane::restart_api_server`]).
    api_server_launch: Option<Launch>,
    /// kube-apiserver restarts so far (each gets a log of its own).
    api_server_restarts: u32,
}

/// A program and its arguments, kept to start it again the same way.
#[derive(Clone, Debug)]
struct Launch {
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    log_dir: PathBuf,
}

impl Launch {
    fn of(command: &Command, log_dir: &Path) -> Launch {
        Launch {
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

/// What one launch attempt came to.
enum Attempt {
    Ready(Box<Running>),
    /// A process failed because a port picked as free was taken meanwhile; worth one more try.
    PortRace(anyhow::Error),
}

struct Running {
    processes: Vec<Supervised>,
    watchdog: Option<Watchdog>,
    client: kube::Client,
    endpoint: Endpoint,
    api_server_launch: Launch,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free 127.0.0.1 ports with freshly generated certificates and
    /// waits until the API server is ready and the `default` namespace exists. Builds the binaries
    /// first if they are not cached yet.
    ///
    /// If `CLOUDJOB_TEST_KUBECONFIG` is set, connects to that cluster instead and starts nothing.
    pub async fn start() -> anyhow::Result<Self> {
        if let Some(path) = std::env::var_os(EXISTING_KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            return Self::connect_existing(Path::new(&path))
                .await
                .with_context(|| format!("using the cluster from {EXISTING_KUBECONFIG_ENV}"));
        }
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// Starts a control plane of its own (never an existing cluster) as `options` say.
    pub async fn start_with(options: ControlPlaneOptions) -> anyhow::Result<Self> {
        let binaries = find_binaries().await?;
        let temp = tempfile::Builder::new()
            .prefix("cloudjob-testenv-")
            .tempdir()
            .context("creating the control plane's temporary directory")?;
        let dir = temp.path().to_path_buf();
        Self::launch(binaries, dir, Some(temp), Lifetime::Owned, &options).await
    }

    /// Connects to the existing cluster of `kubeconfig`'s current context; starts nothing. kubectl and
    /// helm are still the pinned ones; helm's homes and service-account kubeconfigs go to a temporary
    /// directory. This is what [`ControlPlane::start`] does when `CLOUDJOB_TEST_KUBECONFIG` is set.
    pub async fn connect_existing(kubeconfig: &Path) -> anyhow::Result<Self> {
        // Absolute, because kubectl and helm may run from another working directory.
        let kubeconfig_path = std::path::absolute(kubeconfig)
            .with_context(|| format!("resolving {}", kubeconfig.display()))?;
        let parsed = Kubeconfig::read_from(&kubeconfig_path)
            .with_context(|| format!("reading kubeconfig {}", kubeconfig_path.display()))?;
        let endpoint = kubeconfig::current_endpoint(&parsed)
            .with_context(|| format!("in kubeconfig {}", kubeconfig_path.display()))?;
        let client = kubeconfig::client_from(parsed).await?;
        let version = tokio::time::timeout(Duration::from_secs(15), client.apiserver_version())
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot reach the cluster at {}", endpoint.server))?;
        tracing::info!(server = %endpoint.server, version = %version.git_version, "using an existing cluster");
        let binaries = find_binaries().await?;
        let temp = tempfile::Builder::new()
            .prefix("cloudjob-testenv-")
            .tempdir()
            .context("creating a temporary directory")?;
        let dir = temp.path().to_path_buf();
        create_helm_homes(&dir)?;
        Ok(Self {
            client,
            kubeconfig_path,
            server_url: endpoint.server.clone(),
            endpoint,
            binaries,
            processes: Vec::new(),
            watchdog: None,
            dir,
            temp: Some(temp),
            api_server_launch: None,
            api_server_restarts: 0,
        })
    }

    /// Starts a control plane whose processes keep running after this process exits, with all its state
    /// in `dir` (created if needed; should be empty). Used by `cloudjob-testenv up`.
    pub async fn start_detached(dir: &Path) -> anyhow::Result<DetachedState> {
        let binaries = find_binaries().await?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir =
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let control_plane = Self::launch(
            binaries,
            dir,
            None,
            Lifetime::Detached,
            &ControlPlaneOptions::default(),
        )
        .await?;
        Ok(control_plane.detach())
    }

    async fn launch(
        binaries: Binaries,
        dir: PathBuf,
        temp: Option<TempDir>,
        lifetime: Lifetime,
        options: &ControlPlaneOptions,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut sans = Vec::new();
        if let Some(address) = options.address {
            // Pods use the address itself and, through in-cluster config, the Service IP's name.
            sans.extend([address.to_string(), SERVICE_IP.to_owned()]);
        }
        let pki = certs::generate(&sans)?;
        write_pki(&dir, &pki)?;
        create_helm_homes(&dir)?;
        let mut attempt = 1;
        let running = loop {
            match launch_once(&binaries, &dir, &pki, lifetime, options, attempt).await? {
                Attempt::Ready(running) => break running,
                Attempt::PortRace(err) if attempt == 1 => {
                    tracing::warn!("retrying the control plane start with new ports: {err:#}");
                    attempt += 1;
                }
                Attempt::PortRace(err) => {
                    return Err(err.context("a port was taken twice in a row"));
                }
            }
        };
        let kubeconfig_path = dir.join("kubeconfig");
        tracing::info!(
            server = %running.endpoint.server,
            elapsed_ms = started.elapsed().as_millis(),
            "control plane ready"
        );
        Ok(Self {
            client: running.client,
            kubeconfig_path,
            server_url: running.endpoint.server.clone(),
            endpoint: running.endpoint,
            binaries,
            processes: running.processes,
            watchdog: running.watchdog,
            dir,
            temp,
            api_server_launch: Some(running.api_server_launch),
            api_server_restarts: 0,
        })
    }

    /// Kills kube-apiserver with SIGKILL, as a crash or an OOM kill would, starts it again with the same
    /// arguments (same port, certificates and etcd), and returns once it is ready. etcd keeps running, so
    /// every object survives; clients see their connections and watches break. For recovery tests.
    pub async fn restart_api_server(&mut self) -> anyhow::Result<()> {
        let launch = self
            .api_server_launch
            .clone()
            .context("this control plane did not start kube-apiserver (an existing cluster)")?;
        let index = self
            .processes
            .iter()
            .position(|p| p.name() == "kube-apiserver")
            .context("kube-apiserver is not running")?;
        self.processes[index].kill();
        self.api_server_restarts += 1;
        let log = launch.log_dir.join(format!(
            "kube-apiserver-restart-{}.log",
            self.api_server_restarts
        ));
        let process = Supervised::spawn("kube-apiserver", launch.command(), &log, Lifetime::Owned)?;
        if let Some(watchdog) = self.watchdog.as_mut() {
            watchdog.guard(process.pid())?;
        }
        self.processes[index] = process;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.processes[index].exited() {
                bail!(
                    "the restarted kube-apiserver exited ({status}); end of its log:\n{}",
                    self.processes[index].log_tail(LOG_TAIL_BYTES)
                );
            }
            let problem = match probe_ready(&self.client).await {
                Ok(()) => return Ok(()),
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                bail!(
                    "the restarted kube-apiserver was not ready within {READY_TIMEOUT:?} (last: {problem:#}); end of its log:\n{}",
                    self.processes[index].log_tail(LOG_TAIL_BYTES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops etcd (SIGSTOP) for `pause`, as a stalled disk or a frozen VM would, then lets it go on
    /// (SIGCONT). The API server keeps serving what it can; writes and quorum reads hang or time out
    /// meanwhile. For recovery tests.
    pub async fn pause_etcd(&self, pause: Duration) -> anyhow::Result<()> {
        let etcd = self
            .processes
            .iter()
            .find(|p| p.name() == "etcd")
            .context("this control plane did not start etcd (an existing cluster)")?;
        etcd.signal(rustix::process::Signal::STOP)?;
        // The pause is the fault itself: it lasts this long whatever happens meanwhile.
        tokio::time::sleep(pause).await;
        etcd.signal(rustix::process::Signal::CONT)
    }

    /// An admin client (cluster-admin through the `system:masters` group). Cloning is cheap.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig (certificates inline); works for kubectl, helm and kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// `https://127.0.0.1:PORT`, or the existing cluster's server.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The pinned binaries this control plane uses.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The directory holding this control plane's files (a temporary directory removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pinned kubectl, with KUBECONFIG set to the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.binaries.kubectl);
        command
            .env("KUBECONFIG", &self.kubeconfig_path)
            // A discovery cache of its own: ports get reused between control planes with different
            // CRDs, and a shared ~/.kube/cache would then serve stale API lists.
            .env("KUBECACHEDIR", self.dir.join("kube-cache"));
        command
    }

    /// The pinned helm, with KUBECONFIG set and helm's cache, config and data homes in this control
    /// plane's directory (no repositories or plugins of the user's leak in).
    pub fn helm(&self) -> Command {
        let helm = self.dir.join("helm");
        let mut command = Command::new(&self.binaries.helm);
        command
            .env("KUBECONFIG", &self.kubeconfig_path)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .env("HELM_CACHE_HOME", helm.join("cache"))
            .env("HELM_CONFIG_HOME", helm.join("config"))
            .env("HELM_DATA_HOME", helm.join("data"));
        command
    }

    /// Gets a token for ServiceAccount `namespace/name` (which must exist) from the TokenRequest API and
    /// returns a kubeconfig file and a client that authenticate with that token only, so that RBAC
    /// applies exactly as to a pod running as that ServiceAccount.
    pub async fn service_account_access(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<(PathBuf, kube::Client)> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                // Empty means the API server's own audiences, which its token authenticator accepts.
                audiences: Vec::new(),
                expiration_seconds: Some(TOKEN_SECONDS),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let response = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
        let token = response
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .with_context(|| {
                format!("the TokenRequest for {namespace}/{name} returned no token")
            })?;
        let yaml = kubeconfig::token(
            &self.endpoint,
            &format!("{namespace}-{name}"),
            namespace,
            &token,
        )?;
        let dir = self.dir.join("service-accounts");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{namespace}-{name}.kubeconfig"));
        write_private(&path, &yaml)?;
        let client = kubeconfig::client_from_file(&path).await?;
        Ok((path, client))
    }

    /// Stops etcd and kube-apiserver (SIGTERM, SIGKILL after 3 s) and removes the temporary directory
    /// now. Idempotent; `Drop` does the same.
    pub fn stop(&mut self) {
        // Disarm the watchdog before reaping: it must not signal pids that get reused afterwards.
        self.watchdog.take();
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
        self.processes.clear();
        if let Some(temp) = self.temp.take() {
            let path = temp.path().to_path_buf();
            if let Err(e) = temp.close() {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }

    /// Process ids of the processes this control plane started (empty for an existing cluster).
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(Supervised::pid).collect()
    }

    /// Hands the processes over to the caller's bookkeeping: they keep running after `self` is gone.
    fn detach(mut self) -> DetachedState {
        let processes = std::mem::take(&mut self.processes);
        let state = DetachedState {
            server_url: self.server_url.clone(),
            kubeconfig: self.kubeconfig_path.clone(),
            dir: self.dir.clone(),
            processes: processes
                .iter()
                .map(|p| DetachedProcess {
                    name: p.name().to_owned(),
                    pid: p.pid(),
                    log: p.log().to_path_buf(),
                })
                .collect(),
        };
        processes.into_iter().for_each(Supervised::detach);
        state
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn find_binaries() -> anyhow::Result<Binaries> {
    // The first build takes many minutes of blocking work; keep it off the async runtime's threads.
    tokio::task::spawn_blocking(binaries)
        .await
        .context("the binary build task panicked")?
        .context("building the control-plane binaries (tools/control-plane/build.sh)")
}

/// One try with fresh ports. On any outcome but `Ready`, the processes it started are stopped
/// (by dropping them).
async fn launch_once(
    binaries: &Binaries,
    dir: &Path,
    pki: &Pki,
    lifetime: Lifetime,
    options: &ControlPlaneOptions,
    attempt: u32,
) -> anyhow::Result<Attempt> {
    let [etcd_client, etcd_peer, api_port] = free_ports()?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let pki_dir = dir.join("pki");
    let mut processes = Vec::with_capacity(2);
    // Declared after `processes` so that on an early return it is dropped (disarmed) before they are
    // stopped. The temporary directory is the watchdog's to remove; a detached one is never removed.
    let mut watchdog = match lifetime {
        Lifetime::Owned => Some(Watchdog::spawn(Some(dir))?),
        Lifetime::Detached => None,
    };
    let mut spawn =
        |name: &'static str, command: Command, log: PathBuf| -> anyhow::Result<Supervised> {
            let process = Supervised::spawn(name, command, &log, lifetime)?;
            if let Some(watchdog) = watchdog.as_mut() {
                watchdog.guard(process.pid())?;
            }
            Ok(process)
        };

    let etcd_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    let mut etcd = Command::new(&binaries.etcd);
    etcd.arg(format!(
        "--data-dir={}",
        dir.join(format!("etcd-{attempt}")).display()
    ))
    .arg(format!("--listen-client-urls={etcd_url}"))
    .arg(format!("--advertise-client-urls={etcd_url}"))
    .arg(format!("--listen-peer-urls={peer_url}"))
    .arg(format!("--initial-advertise-peer-urls={peer_url}"))
    .arg(format!("--initial-cluster=default={peer_url}"))
    // The data is thrown away with the test; fsync only costs time.
    .arg("--unsafe-no-fsync=true")
    .arg("--log-level=warn");
    processes.push(spawn(
        "etcd",
        etcd,
        logs.join(format!("etcd-{attempt}.log")),
    )?);

    // The API server retries etcd, but only with backoff; starting it once etcd listens is faster.
    let etcd_deadline = Instant::now() + ETCD_TIMEOUT;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, etcd_client)).is_err() {
        if let Some(outcome) = check_exited(&mut processes) {
            return outcome;
        }
        if Instant::now() >= etcd_deadline {
            bail!(
                "etcd did not listen on 127.0.0.1:{etcd_client} within {ETCD_TIMEOUT:?}; end of its log:\n{}",
                processes[0].log_tail(LOG_TAIL_BYTES)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let address = options.address.unwrap_or(Ipv4Addr::LOCALHOST);
    let server = format!("https://{address}:{api_port}");
    let pki_file = |name: &str| pki_dir.join(name).display().to_string();
    let mut apiserver = Command::new(&binaries.kube_apiserver);
    apiserver
        // Explicit, so that the API server never looks for a default route (there may be none).
        .arg(format!("--advertise-address={address}"))
        .arg(format!("--bind-address={address}"))
        .arg(format!("--secure-port={api_port}"))
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!(
            "--cert-dir={}",
            dir.join("apiserver-certs").display()
        ))
        .arg(format!("--tls-cert-file={}", pki_file("serving.crt")))
        .arg(format!(
            "--tls-private-key-file={}",
            pki_file("serving.key")
        ))
        .arg(format!("--client-ca-file={}", pki_file("ca.crt")))
        .arg("--authorization-mode=RBAC")
        .arg(format!("--service-account-issuer={server}/"))
        .arg(format!("--service-account-key-file={}", pki_file("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            pki_file("sa.key")
        ))
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg("--allow-privileged=true")
        // For `kubectl logs/exec`: kubelet trusts the cluster CA, and the admin is allowed everything.
        .arg(format!(
            "--kubelet-client-certificate={}",
            pki_file("admin.crt")
        ))
        .arg(format!("--kubelet-client-key={}", pki_file("admin.key")))
        .arg("--kubelet-preferred-address-types=InternalIP");
    if !options.service_account_admission {
        // As envtest: the plugin would make every Pod wait for a `default` ServiceAccount, which only
        // kube-controller-manager (not run here) creates.
        apiserver.arg("--disable-admission-plugins=ServiceAccount");
    }
    let api_server_launch = Launch::of(&apiserver, &logs);
    processes.push(spawn(
        "kube-apiserver",
        apiserver,
        logs.join(format!("kube-apiserver-{attempt}.log")),
    )?);

    let endpoint = Endpoint::with_ca_pem(server, &pki.ca_cert);
    let kubeconfig_path = dir.join("kubeconfig");
    write_private(
        &kubeconfig_path,
        &kubeconfig::admin(&endpoint, &pki.admin_cert, &pki.admin_key)?,
    )?;
    let client = kubeconfig::client_from_file(&kubeconfig_path).await?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(outcome) = check_exited(&mut processes) {
            return outcome;
        }
        let problem = match probe_ready(&client).await {
            Ok(()) => break,
            Err(problem) => problem,
        };
        if Instant::now() >= deadline {
            bail!(
                "kube-apiserver at {} was not ready within {READY_TIMEOUT:?} (last: {problem:#}); end of its log:\n{}",
                endpoint.server,
                processes[1].log_tail(LOG_TAIL_BYTES)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Attempt::Ready(Box::new(Running {
        processes,
        watchdog,
        client,
        endpoint,
        api_server_launch,
    })))
}

/// `None` while all processes run; otherwise how the attempt ends.
fn check_exited(processes: &mut [Supervised]) -> Option<anyhow::Result<Attempt>> {
    for process in processes.iter_mut() {
        if let Some(status) = process.exited() {
            let tail = process.log_tail(LOG_TAIL_BYTES);
            let err = anyhow::anyhow!(
                "{} exited during startup ({status}); end of its log {}:\n{tail}",
                process.name(),
                process.log().display()
            );
            return Some(if tail.contains("address already in use") {
                Ok(Attempt::PortRace(err))
            } else {
                Err(err)
            });
        }
    }
    None
}

/// Ok once `/readyz` says ok and the `default` namespace (created by a post-start hook) exists.
async fn probe_ready(client: &kube::Client) -> anyhow::Result<()> {
    let per_request = Duration::from_secs(5);
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .context("building the /readyz request")?;
    let body = tokio::time::timeout(per_request, client.request_text(request))
        .await
        .context("/readyz timed out")?
        .context("/readyz")?;
    if body.trim() != "ok" {
        bail!("/readyz answered {body:?}");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    tokio::time::timeout(per_request, namespaces.get_opt("default"))
        .await
        .context("getting namespace default timed out")?
        .context("getting namespace default")?
        .context("namespace default does not exist yet")?;
    Ok(())
}

/// Three distinct free ports. The listeners stay open until all are chosen, so the OS cannot hand out
/// the same port twice.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        *port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

fn write_pki(dir: &Path, pki: &Pki) -> anyhow::Result<()> {
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir).with_context(|| format!("creating {}", pki_dir.display()))?;
    for (name, contents) in [
        ("ca.crt", &pki.ca_cert),
        ("serving.crt", &pki.serving_cert),
        ("serving.key", &pki.serving_key),
        ("sa.pub", &pki.sa_public_key),
        ("sa.key", &pki.sa_private_key),
        // kube-apiserver's client certificate towards kubelet, and the node components' identity.
        ("admin.crt", &pki.admin_cert),
        ("admin.key", &pki.admin_key),
    ] {
        write_private(&pki_dir.join(name), contents)?;
    }
    Ok(())
}

fn create_helm_homes(dir: &Path) -> anyhow::Result<()> {
    for home in ["cache", "config", "data"] {
        let path = dir.join("helm").join(home);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

/// Writes a file readable by the owner only: these hold private keys and tokens.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited_process(dir: &Path, message: &str) -> Supervised {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", &format!("echo '{message}'; exit 1")]);
        let mut process =
            Supervised::spawn("fake", command, &dir.join("fake.log"), Lifetime::Owned)
                .expect("sh starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process.exited().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        process
    }

    #[test]
    fn a_bind_failure_during_startup_is_a_port_race_worth_a_retry() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut processes = vec![exited_process(
            dir.path(),
            "listen tcp 127.0.0.1:41234: bind: address already in use",
        )];
        let outcome = check_exited(&mut processes).expect("the process exited");
        assert!(matches!(outcome, Ok(Attempt::PortRace(_))));
    }

    #[test]
    fn any_other_exit_during_startup_fails_with_the_log_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut processes = vec![exited_process(
            dir.path(),
            "error: invalid flag --frobnicate",
        )];
        let err = match check_exited(&mut processes) {
            Some(Err(err)) => err,
            Some(Ok(_)) => panic!("not a port race"),
            None => panic!("the process exited"),
        };
        let message = format!("{err:#}");
        assert!(message.contains("fake exited during startup"), "{message}");
        assert!(message.contains("invalid flag --frobnicate"), "{message}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: [u16; 3] = free_ports().expect("ports");
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    }
}
