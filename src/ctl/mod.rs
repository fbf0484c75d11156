//! `kubectl ldapsync` (the same binary installed as `kubectl-ldapsync`; also `ldapsync ctl`):
//! day-2 commands in the manner of `flux` and `cmctl`. Each does one thing and, where an outcome
//! follows, waits for every gateway pod to report it.
//!
//! Exit codes: 0 done; 1 a pod reported a failure, a hold or a refused approval (or there is
//! nothing to approve); 2 the command could not run (kubeconfig, API, no such connection);
//! 3 the wait timed out.

mod view;

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

use crate::api::{APPROVE_DELETIONS_ANNOTATION, LdapConnection, NodePhase, NodeStatus, SYNC_REQUESTED_AT_ANNOTATION};
pub use view::Output;
use view::{ConnectionView, render};

/// Where and how to talk to the cluster.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    /// The namespace; the context's when `None`.
    pub namespace: Option<String>,
}

/// One plugin command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Connections with one line per gateway pod.
    Get {
        name: Option<String>,
    },
    /// Requests a sync and (with `wait`) waits until every pod handled it.
    Sync {
        name: String,
        wait: bool,
        timeout: Duration,
    },
    /// Approves what the held syncs would apply, on every held pod or on `pod`.
    Approve {
        name: String,
        pod: Option<String>,
        wait: bool,
        timeout: Duration,
    },
    Suspend {
        name: String,
    },
    Resume {
        name: String,
    },
    /// The connection test, run by the agent of a gateway pod with the connection's own Secrets:
    /// DNS, DC, TLS and bind as the pods see them.
    Check {
        name: String,
        pod: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("the API server refused or failed: {0}")]
    Api(#[from] kube::Error),
    #[error("LdapConnection {namespace}/{name} does not exist")]
    NotFound { namespace: String, name: String },
    /// The command ran and the outcome is a failure: `shown` is what it prints on standard output.
    #[error("{summary}")]
    Outcome { shown: String, summary: String },
    #[error("{what}: no answer from every pod within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("cannot write the answer: {0}")]
    Output(String),
}

impl CtlError {
    /// The documented exit code (see the module comment).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Outcome { .. } => 1,
            Self::Timeout { .. } => 3,
            _ => 2,
        }
    }
}

/// Runs `command`; the text to print on success, or on a failed outcome inside the error.
pub async fn run(target: &Target, output: Output, command: Command) -> Result<String, CtlError> {
    let (client, namespace) = connect(target).await?;
    let api: Api<LdapConnection> = Api::namespaced(client, &namespace);
    match command {
        Command::Get { name } => {
            let connections = match name {
                Some(name) => vec![fetch(&api, &namespace, &name).await?],
                None => api.list(&Default::default()).await?.items,
            };
            render(&connections.iter().map(ConnectionView::of).collect::<Vec<_>>(), output)
        }
        Command::Sync { name, wait, timeout } => sync(&api, &namespace, &name, wait, timeout, output).await,
        Command::Approve { name, pod, wait, timeout } => {
            approve(&api, &namespace, &name, pod.as_deref(), wait, timeout, output).await
        }
        Command::Check { name, pod } => {
            let client = api.clone().into_client();
            check(client, &api, &namespace, &name, pod.as_deref()).await
        }
        Command::Suspend { name } => set_suspend(&api, &namespace, &name, true).await,
        Command::Resume { name } => set_suspend(&api, &namespace, &name, false).await,
    }
}

async fn connect(target: &Target) -> Result<(Client, String), CtlError> {
    let options = KubeConfigOptions { context: target.context.clone(), ..KubeConfigOptions::default() };
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| CtlError::Kubeconfig(e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| CtlError::Kubeconfig(e.to_string()))?;
    let namespace = target.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, namespace))
}

async fn fetch(api: &Api<LdapConnection>, namespace: &str, name: &str) -> Result<LdapConnection, CtlError> {
    api.get_opt(name)
        .await?
        .ok_or_else(|| CtlError::NotFound { namespace: namespace.to_owned(), name: name.to_owned() })
}

async fn annotate(api: &Api<LdapConnection>, name: &str, key: &str, value: &str) -> Result<(), CtlError> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(())
}

async fn set_suspend(
    api: &Api<LdapConnection>,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> Result<String, CtlError> {
    fetch(api, namespace, name).await?;
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": suspend}}))).await?;
    Ok(format!("LdapConnection {namespace}/{name} {}\n", if suspend { "suspended" } else { "resumed" }))
}

/// How many gateway pods the controller expects to sync (`summary.nodesSynced` is `synced/expected`).
fn expected_pods(conn: &LdapConnection) -> usize {
    let summary = conn.status.as_ref().and_then(|s| s.summary.as_ref()).and_then(|s| s.nodes_synced.as_deref());
    summary.and_then(|s| s.split_once('/')).and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

fn rows(conn: &LdapConnection) -> &[NodeStatus] {
    conn.status.as_ref().map(|s| s.nodes.as_slice()).unwrap_or_default()
}

/// Polls the connection until `done` says every pod answered, or `timeout` passes.
async fn wait_for<T>(
    api: &Api<LdapConnection>,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&LdapConnection) -> Option<T>,
) -> Result<T, CtlError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = done(&fetch(api, namespace, name).await?) {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::Timeout { what: what.to_owned(), after: timeout });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line per pod, and a failure when any pod did not end `Synced`.
fn outcome(conn: &LdapConnection, pods: &[NodeStatus], output: Output) -> Result<String, CtlError> {
    let mut view = ConnectionView::of(conn);
    view.pods.retain(|p| pods.iter().any(|r| r.pod == p.pod));
    let text = render(&[view], output)?;
    let failed: Vec<&str> =
        pods.iter().filter(|r| r.phase != Some(NodePhase::Synced)).map(|r| r.pod.as_str()).collect();
    if failed.is_empty() {
        Ok(text)
    } else {
        Err(CtlError::Outcome { shown: text, summary: format!("not synced: {}", failed.join(", ")) })
    }
}

async fn sync(
    api: &Api<LdapConnection>,
    namespace: &str,
    name: &str,
    wait: bool,
    timeout: Duration,
    output: Output,
) -> Result<String, CtlError> {
    let conn = fetch(api, namespace, name).await?;
    if conn.spec.suspend {
        let summary = format!("{namespace}/{name} is suspended: `resume` it first");
        return Err(CtlError::Outcome { shown: String::new(), summary });
    }
    if wait && expected_pods(&conn) == 0 {
        let summary =
            format!("no gateway pod syncs {namespace}/{name} (the controller counts none): nothing to wait for");
        return Err(CtlError::Outcome { shown: String::new(), summary });
    }
    let requested = Timestamp::now().to_string();
    annotate(api, name, SYNC_REQUESTED_AT_ANNOTATION, &requested).await?;
    if !wait {
        return Ok(format!("sync of {namespace}/{name} requested ({requested})\n"));
    }
    let what = format!("the sync of {namespace}/{name} requested at {requested}");
    let (conn, handled) = wait_for(api, namespace, name, &what, timeout, |conn| {
        let handled: Vec<NodeStatus> = rows(conn)
            .iter()
            .filter(|r| r.last_handled_sync_request.as_deref() == Some(requested.as_str()))
            .filter(|r| r.phase != Some(NodePhase::Syncing))
            .cloned()
            .collect();
        let expected = expected_pods(conn);
        (expected > 0 && handled.len() >= expected).then(|| (conn.clone(), handled))
    })
    .await?;
    outcome(&conn, &handled, output)
}

/// The content each held pod would apply, keyed by pod.
fn holds<'a>(conn: &'a LdapConnection, pod: Option<&str>) -> Vec<(&'a NodeStatus, String)> {
    rows(conn)
        .iter()
        .filter(|r| r.phase == Some(NodePhase::Held) && pod.is_none_or(|p| r.pod == p))
        .filter_map(|r| {
            let held = r.held.as_ref()?;
            Some((r, held.content_hash.clone().unwrap_or_else(|| held.snapshot_hash.clone())))
        })
        .collect()
}

async fn approve(
    api: &Api<LdapConnection>,
    namespace: &str,
    name: &str,
    pod: Option<&str>,
    wait: bool,
    timeout: Duration,
    output: Output,
) -> Result<String, CtlError> {
    let conn = fetch(api, namespace, name).await?;
    let held = holds(&conn, pod);
    if held.is_empty() {
        let whose = pod.map_or_else(|| "no pod".to_owned(), |p| format!("pod {p}"));
        let summary = format!("{whose} holds a sync of {namespace}/{name}: nothing to approve");
        return Err(CtlError::Outcome { shown: String::new(), summary });
    }
    let mut shown = String::new();
    for (row, hash) in &held {
        if let Some(h) = &row.held {
            shown.push_str(&format!(
                "{}: removes {} of {} objects ({} left), content {hash}\n",
                row.pod, h.deleted_objects, h.previous_objects, h.new_objects
            ));
            for example in &h.removed_examples {
                shown.push_str(&format!("    e.g. {example}\n"));
            }
        }
    }
    let mut hashes: Vec<&str> = held.iter().map(|(_, h)| h.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let approval = hashes.join(",");
    annotate(api, name, APPROVE_DELETIONS_ANNOTATION, &approval).await?;
    if !wait {
        return Ok(format!("{shown}approved {approval}\n"));
    }
    let pods: Vec<String> = held.iter().map(|(r, _)| r.pod.clone()).collect();
    let what = format!("the approval of {approval} on {}", pods.join(", "));
    let (conn, answered) = wait_for(api, namespace, name, &what, timeout, |conn| {
        let answered: Vec<NodeStatus> = rows(conn)
            .iter()
            .filter(|r| pods.contains(&r.pod))
            .filter(|r| r.phase != Some(NodePhase::Held) || r.reason.as_deref() == Some("ApprovalNotHeld"))
            .filter(|r| r.phase != Some(NodePhase::Syncing))
            .cloned()
            .collect();
        (answered.len() == pods.len()).then(|| (conn.clone(), answered))
    })
    .await?;
    match outcome(&conn, &answered, output) {
        Ok(text) => Ok(format!("{shown}{text}")),
        Err(CtlError::Outcome { shown: text, summary }) => {
            Err(CtlError::Outcome { shown: format!("{shown}{text}"), summary })
        }
        Err(e) => Err(e),
    }
}

/// The agent container of the chart's sidecar.
const AGENT_CONTAINER: &str = "ldapsync-agent";

/// Runs `ldapsync check --connection NAME` in the agent container of `pod` (or of the first pod
/// that has a row), and prints its report.
async fn check(
    client: Client,
    api: &Api<LdapConnection>,
    namespace: &str,
    name: &str,
    pod: Option<&str>,
) -> Result<String, CtlError> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::AttachParams;
    use tokio::io::AsyncReadExt;
    let conn = fetch(api, namespace, name).await?;
    let chosen =
        match pod {
            Some(p) => p.to_owned(),
            None => rows(&conn).iter().find(|r| r.phase != Some(NodePhase::Purged)).map(|r| r.pod.clone()).ok_or_else(
                || CtlError::Outcome {
                    shown: String::new(),
                    summary: format!("no gateway pod has synced {namespace}/{name} yet: name one with --pod"),
                },
            )?,
        };
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let command = ["ldapsync", "check", "--connection", name, "--namespace", namespace];
    let params = AttachParams::default().container(AGENT_CONTAINER).stdin(false).stdout(true).stderr(true);
    let mut process = pods.exec(&chosen, command, &params).await?;
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut stdout) = process.stdout() {
        stdout.read_to_string(&mut out).await.map_err(|e| CtlError::Output(e.to_string()))?;
    }
    if let Some(mut stderr) = process.stderr() {
        stderr.read_to_string(&mut err).await.map_err(|e| CtlError::Output(e.to_string()))?;
    }
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    process.join().await.map_err(|e| CtlError::Output(format!("the check's output stream failed: {e}")))?;
    let succeeded = status.as_ref().is_some_and(|s| s.status.as_deref() == Some("Success"));
    let shown = format!("# checked from pod {chosen}\n{out}");
    if succeeded {
        Ok(shown)
    } else {
        let reason = err.trim().lines().last().unwrap_or("the check failed").to_owned();
        Err(CtlError::Outcome { shown, summary: reason })
    }
}
