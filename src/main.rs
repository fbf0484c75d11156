//! The `ldapsync` binary: a thin command line over the library.
#![allow(clippy::print_stdout)] // the CLI answers on standard output

use std::path::PathBuf;

// A sync allocates a string per attribute value; mimalloc makes that markedly cheaper than glibc's
// allocator (see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ldapsync::directory::dns::DNS_SERVER_ENV;

/// Keeps an email security gateway's LDAP cache in step with Active Directory and LDAP directories.
#[derive(Parser)]
#[command(name = "ldapsync", version)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `ldapsync=debug`.
    #[arg(long, env = "LDAPSYNC_LOG", default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct CtlArgs {
    /// The kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Output format: table, json or yaml.
    #[arg(short = 'o', long, global = true, default_value = "table")]
    output: ldapsync::ctl::Output,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Connections with a line per gateway pod: phase, DC, site, mode, age, counts, duplicates, reason.
    Get { name: Option<String> },
    /// Request a sync and wait until every gateway pod handled it, printing each pod's outcome.
    Sync {
        name: String,
        /// Return once requested, without waiting.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for every pod.
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Show what the held syncs would remove and approve exactly that content, on every held pod
    /// or on one; wait until they applied it.
    Approve {
        name: String,
        /// Approve the content this pod holds only.
        #[arg(long)]
        pod: Option<String>,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Stop scheduled and requested syncs (the caches keep serving).
    Suspend { name: String },
    /// Sync again on schedule and on request.
    Resume { name: String },
    /// Test the connection from a gateway pod, with the connection's own Secrets.
    Check {
        name: String,
        /// The gateway pod to test from (default: the first with a row).
        #[arg(long)]
        pod: Option<String>,
    },
}

fn parse_timeout(value: &str) -> Result<std::time::Duration, String> {
    ldapsync::domain::duration::parse_duration(value).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: validate connections and schedules, keep search bases unique, turn the
    /// gateway pods' rows into conditions, clean caches up on delete. Leader-elected by a Lease.
    Controller(ControllerArgs),
    /// Run the agent beside one gateway pod: sync every accepted connection of the namespace on its
    /// schedule or on request, keep the cache, serve the lookup API, write this pod's status rows.
    Agent(AgentArgs),
    /// Print the CustomResourceDefinitions generated from the API types (the content of `crds/`).
    Crd,
    /// Test a connection without a cluster: DNS SRV answers, the server chosen, TLS, bind, RootDSE
    /// capabilities and object counts. Exit 0 on success, 1 with the reason on failure.
    Check {
        /// LdapConnection manifest (YAML).
        #[arg(short = 'f', long = "file", required_unless_present = "connection", conflicts_with = "connection")]
        file: Option<PathBuf>,
        /// Or: the LdapConnection of this name in the cluster, with its Secrets read through the API
        /// (in-cluster credentials; what `kubectl ldapsync check` runs in a gateway pod).
        #[arg(long)]
        connection: Option<String>,
        /// The namespace of `--connection`.
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        namespace: String,
        #[command(flatten)]
        common: Common,
    },
    /// Look an address up in a local store as the gateway would: prints the object and its
    /// transitive groups as JSON. Exit 0 when found, 1 when not found, 2 on error.
    Lookup(LookupArgs),
    /// Serve the lookup API (HTTP/JSON) over a local store: warm start from the stored snapshots,
    /// reload when a sync replaces one. Stops on SIGTERM or Ctrl-C.
    Serve {
        /// Store folder written by `ldapsync sync` or an agent.
        #[arg(long)]
        store: PathBuf,
        /// Address to listen on; keep it on localhost.
        #[arg(long, default_value = "127.0.0.1:8389")]
        listen: std::net::SocketAddr,
        /// Threads answering lookups. One keeps the tail latency lowest beside a busy gateway
        /// (see docs/PERFORMANCE.md).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        #[command(flatten)]
        socketmap: SocketmapArgs,
    },
    /// Day-2 commands against the cluster (installed as `kubectl-ldapsync`, this is `kubectl
    /// ldapsync`): get, sync, approve, suspend, resume, check. Exit 0 done, 1 a pod failed or held,
    /// 2 the command could not run, 3 the wait timed out.
    Ctl(CtlArgs),
    /// One standalone sync into a local store (no cluster). Prints a JSON summary.
    Sync {
        /// LdapConnection manifest (YAML).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Store folder (created if missing).
        #[arg(long)]
        store: PathBuf,
        /// Let a sync held by the deletion-safety guard through, if its snapshot has this content hash
        /// (printed when the sync is held).
        #[arg(long)]
        approve_deletions: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Namespace of the gateway pod (downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// Name of the gateway pod (downward API); names this pod's status rows.
    #[arg(long, env = "POD_NAME")]
    pod: String,
    /// Folder of the cache (a pod volume).
    #[arg(long, default_value = "/var/lib/ldapsync")]
    store: PathBuf,
    /// Address of the lookup API; keep it on localhost.
    #[arg(long, default_value = "127.0.0.1:8389")]
    listen: std::net::SocketAddr,
    /// Also serve `/healthz`, `/readyz` and `/metrics` (and nothing else) here, e.g. `0.0.0.0:8390`
    /// for the kubelet's probes, which cannot reach the pod's localhost.
    #[arg(long)]
    probe_listen: Option<std::net::SocketAddr>,
    /// Syncs running at once across connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_concurrent_syncs: u16,
    #[command(flatten)]
    socketmap: SocketmapArgs,
    /// DNS server `IP:PORT` for SRV lookups instead of the system resolver.
    #[arg(long, env = DNS_SERVER_ENV)]
    dns_server: Option<String>,
}

/// Postfix's socketmap protocol (see the user guide's "Postfix" section).
#[derive(clap::Args)]
struct SocketmapArgs {
    /// Serve Postfix's socketmap protocol here (maps `recipient`, `domain`, `member=GROUP`); keep
    /// it on localhost. Off when not given.
    #[arg(long)]
    socketmap_listen: Option<std::net::SocketAddr>,
    /// Characters that start an address extension, as Postfix's `recipient_delimiter`: a key
    /// `user+tag@domain` that is not found is looked up as `user@domain`.
    #[arg(long, default_value = "")]
    recipient_delimiter: String,
}

impl SocketmapArgs {
    fn config(&self) -> ldapsync::agent::socketmap::SocketmapConfig {
        ldapsync::agent::socketmap::SocketmapConfig {
            rules: ldapsync::domain::socketmap::KeyRules { recipient_delimiters: self.recipient_delimiter.clone() },
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Label selector of the gateway pods that run the agent sidecar.
    #[arg(long, env = "GATEWAY_SELECTOR", default_value = "ldapsync.io/gateway=true")]
    gateway_selector: String,
    /// Identity in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "ldapsync-controller")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the watched namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds the Lease stays valid without renewal; a follower takes over after it.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_duration: u64,
    /// How long a deleted connection waits for the agents to report their caches purged.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    cleanup_timeout: std::time::Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
}

fn parse_duration_arg(value: &str) -> Result<std::time::Duration, String> {
    ldapsync::domain::duration::parse_duration(value).map_err(|e| e.to_string())
}

#[derive(clap::Args)]
struct LookupArgs {
    /// Email address to look up (case-insensitive).
    address: String,
    /// Store folder written by `ldapsync sync` or an agent.
    #[arg(long)]
    store: PathBuf,
}

#[derive(clap::Args)]
struct Common {
    /// Folder holding referenced Secrets and ConfigMaps as `<name>/<key>` files.
    #[arg(long)]
    secrets_dir: Option<PathBuf>,
    /// DNS server `IP:PORT` for SRV lookups instead of the system resolver.
    #[arg(long, env = DNS_SERVER_ENV)]
    dns_server: Option<String>,
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Allocator and paging settings for this process, set before any other thread exists.
#[allow(unsafe_code)]
fn tune_memory() {
    // Give freed pages back at once instead of after 10 ms: a sync frees most of what it built right
    // after writing the snapshot (peak RSS at 100k users: 135 -> 102 MiB, see docs/PERFORMANCE.md).
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    // mimalloc asks for transparent huge pages; with pages given back at once, every reuse then
    // faults in and zeroes a whole 2 MiB page (11 % of a 100k sync's CPU) and RSS grows in 2 MiB
    // steps. Plain 4 KiB pages for this process: ~10 % less CPU, 110 -> 99 MiB peak RSS.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with integer arguments only; failure (an old kernel) just keeps THP.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    tune_memory();
    // Installed as `kubectl-ldapsync`, kubectl runs it as `kubectl ldapsync ARGS`: that is `ctl ARGS`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| std::path::Path::new(a).file_name()).map(|n| n.to_owned());
    if invoked_as.is_some_and(|n| n == "kubectl-ldapsync") {
        args.insert(1, "ctl".into());
    }
    let cli = Cli::parse_from(args);
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    #[cfg(feature = "kerberos")]
    let _krb5_config = ldapsync::directory::kerberos::use_own_config_unless_given();
    match cli.command {
        Command::Crd => match ldapsync::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::from(2)
            }
        },
        Command::Lookup(args) => match ldapsync::cli::lookup(&args.address, &args.store) {
            Ok(Some(answer)) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("not found: {}", args.address);
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("error [{}]: {}", e.reason(), ldapsync::domain::reason::with_sources(&e));
                ExitCode::from(2)
            }
        },
        Command::Serve { store, listen, threads, socketmap } => serve(store, listen, threads, &socketmap),
        Command::Controller(args) => controller(args),
        Command::Ctl(args) => ctl(args),
        Command::Agent(args) => agent(args),
        Command::Check { file, connection, namespace, common } => run(async move {
            let dns = common.dns_server.as_deref();
            let report = match (file, connection) {
                (Some(file), _) => ldapsync::cli::check(&file, common.secrets_dir.as_deref(), dns).await?,
                (None, Some(name)) => {
                    let client = kube::Client::try_default().await?;
                    ldapsync::cli::check_in_cluster(client, &namespace, &name, dns).await?
                }
                (None, None) => {
                    let detail = "give --file MANIFEST or --connection NAME".to_owned();
                    return Err(ldapsync::cli::CliError::ParseManifest { path: PathBuf::new(), detail });
                }
            };
            ldapsync::cli::to_json(&report)
        }),
        Command::Sync { file, store, approve_deletions, common } => run(async move {
            let report = ldapsync::cli::sync(
                &file,
                common.secrets_dir.as_deref(),
                &store,
                common.dns_server.as_deref(),
                approve_deletions.as_deref(),
            )
            .await?;
            ldapsync::cli::to_json(&report)
        }),
    }
}

/// Runs a long-lived command on a multi-threaded runtime: exit 0 when it stops cleanly (SIGTERM),
/// 1 with its error, 2 when the runtime cannot start.
fn serve_until_stopped<E: std::fmt::Display>(
    threads: usize,
    work: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn kube_client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| format!("cannot configure the Kubernetes client: {e}"))
}

/// Serves lookups until SIGTERM or Ctrl-C.
fn serve(store: PathBuf, listen: std::net::SocketAddr, threads: u16, socketmap: &SocketmapArgs) -> ExitCode {
    let config = socketmap.config();
    let socketmap_listen = socketmap.socketmap_listen;
    serve_until_stopped(usize::from(threads), async move {
        let listener = ldapsync::agent::serve::bind(listen).await?;
        let socketmap = match socketmap_listen {
            Some(addr) => Some((ldapsync::agent::serve::bind(addr).await?, config)),
            None => None,
        };
        ldapsync::agent::serve::serve_store_and_socketmap(
            store,
            listener,
            socketmap,
            ldapsync::cli::unix_now,
            shutdown_signal(),
        )
        .await
    })
}

/// Runs the agent until SIGTERM.
fn agent(args: AgentArgs) -> ExitCode {
    serve_until_stopped(2, async move {
        let config = ldapsync::agent::daemon::AgentConfig {
            namespace: args.namespace,
            pod: args.pod,
            store: args.store,
            listen: args.listen,
            probe_listen: args.probe_listen,
            socketmap_listen: args.socketmap.socketmap_listen,
            socketmap: args.socketmap.config(),
            max_concurrent_syncs: usize::from(args.max_concurrent_syncs),
            dns_server: args.dns_server,
        };
        ldapsync::agent::daemon::run(kube_client().await?, config, shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

/// Runs the controller until SIGTERM; exit 1 when it stops on an error (e.g. a lost Lease).
fn controller(args: ControllerArgs) -> ExitCode {
    serve_until_stopped(2, async move {
        let identity = args.identity.unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let lease_namespace =
            args.lease_namespace.or_else(|| args.namespace.clone()).unwrap_or_else(|| "default".to_owned());
        let config = ldapsync::controller::ControllerConfig {
            namespace: args.namespace,
            gateway_selector: args.gateway_selector,
            identity,
            lease_name: args.lease_name,
            lease_namespace,
            lease_duration: args.lease_duration,
            cleanup_timeout: args.cleanup_timeout,
            listen: args.listen,
        };
        ldapsync::controller::run(kube_client().await?, config, shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Runs a plugin command; its exit codes are documented in `ldapsync::ctl`.
fn ctl(args: CtlArgs) -> ExitCode {
    use ldapsync::ctl::{Command as Ctl, Target};
    let target = Target { kubeconfig: args.kubeconfig, context: args.context, namespace: args.namespace };
    let command = match args.command {
        CtlCommand::Get { name } => Ctl::Get { name },
        CtlCommand::Sync { name, no_wait, timeout } => Ctl::Sync { name, wait: !no_wait, timeout },
        CtlCommand::Approve { name, pod, no_wait, timeout } => Ctl::Approve { name, pod, wait: !no_wait, timeout },
        CtlCommand::Suspend { name } => Ctl::Suspend { name },
        CtlCommand::Resume { name } => Ctl::Resume { name },
        CtlCommand::Check { name, pod } => Ctl::Check { name, pod },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(ldapsync::ctl::run(&target, args.output, command)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let ldapsync::ctl::CtlError::Outcome { shown, .. } = &e {
                print!("{shown}");
            }
            eprintln!("error: {}", ldapsync::domain::reason::with_sources(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a command on a single-threaded runtime; prints its output, or its reason and error.
fn run(work: impl std::future::Future<Output = Result<String, ldapsync::cli::CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(work) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error [{}]: {}", e.reason(), ldapsync::domain::reason::with_sources(&e));
            ExitCode::FAILURE
        }
    }
}
