//! What the controller watches, and which connections each event wakes. The mappers are pure
//! functions of the connection cache, tested without an API server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::metrics::{ConditionCounts, Metrics};
use super::reconcile::{Context, error_policy, reconcile};
use super::{ControllerConfig, FIELD_MANAGER, schedules};
use crate::api::{LdapConnection, LdapSyncSchedule};
use crate::domain::conditions::{self, SEARCH_BASE_CONFLICT};
use crate::domain::references::{ObjectKind, refers_to};
use crate::domain::validation::normalize_domain;

fn scoped<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Forwards every object a watch stream reports (applied or deleted) to a channel the controller
/// maps to connections, so that the stream (and the store behind it) runs on its own task.
fn forward<K: Send + 'static>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    what: &'static str,
    on_object: impl Fn(&K) + Send + 'static,
) -> futures::channel::mpsc::UnboundedReceiver<Result<K, watcher::Error>> {
    // Unbounded: the controller starts consuming only after the pod and schedule stores are
    // complete, and a bounded channel would stop those watches before they get there.
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let object = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o)) => o,
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(e) => {
                    tracing::warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                    continue;
                }
            };
            on_object(&object);
            if tx.unbounded_send(Ok(object)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Connections of `namespace` for which `wakes` holds.
fn connections_where(
    store: &Store<LdapConnection>,
    namespace: Option<&str>,
    wakes: impl Fn(&LdapConnection) -> bool,
) -> Vec<ObjectRef<LdapConnection>> {
    store
        .state()
        .into_iter()
        .filter(|c| c.metadata.namespace.as_deref() == namespace && wakes(c))
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

/// A schedule wakes the connections that name it.
pub(super) fn on_schedule(store: &Store<LdapConnection>, s: &LdapSyncSchedule) -> Vec<ObjectRef<LdapConnection>> {
    let name = s.name_any();
    connections_where(store, s.metadata.namespace.as_deref(), |c| {
        c.spec.schedule_ref.as_ref().is_some_and(|r| r.name == name)
    })
}

/// A gateway pod coming or going changes every row count of its namespace.
pub(super) fn on_pod(store: &Store<LdapConnection>, p: &PartialObjectMeta<Pod>) -> Vec<ObjectRef<LdapConnection>> {
    connections_where(store, p.metadata.namespace.as_deref(), |_| true)
}

/// A Secret wakes the connections that reference it.
pub(super) fn on_secret(
    store: &Store<LdapConnection>,
    s: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<LdapConnection>> {
    let name = s.name_any();
    connections_where(store, s.metadata.namespace.as_deref(), |c| refers_to(&c.spec, ObjectKind::Secret, &name))
}

/// A ConfigMap wakes the connections that reference it, and the one that owns it (a snapshot
/// chunk an agent wrote).
pub(super) fn on_config_map(
    store: &Store<LdapConnection>,
    m: &PartialObjectMeta<ConfigMap>,
) -> Vec<ObjectRef<LdapConnection>> {
    let name = m.name_any();
    let namespace = m.metadata.namespace.as_deref();
    let mut refs = connections_where(store, namespace, |c| refers_to(&c.spec, ObjectKind::ConfigMap, &name));
    for owner in m.owner_references().iter().filter(|o| o.kind == "LdapConnection") {
        let owned = ObjectRef::new(&owner.name);
        refs.push(match namespace {
            Some(ns) => owned.within(ns),
            None => owned,
        });
    }
    refs
}

/// True when the controller refused `c` because another connection owns its search base.
fn lost_a_conflict(c: &LdapConnection) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| c.type_ == conditions::ACCEPTED && c.reason == SEARCH_BASE_CONFLICT.as_str())
    })
}

/// A connection that changed wakes its same-domain peers (they may win or lose the contest now)
/// and every connection that lost a contest (it may win now that this one moved).
pub(super) fn on_peer(store: &Store<LdapConnection>, changed: &LdapConnection) -> Vec<ObjectRef<LdapConnection>> {
    let name = changed.name_any();
    let domain = normalize_domain(&changed.spec.domain).ok();
    connections_where(store, changed.metadata.namespace.as_deref(), |c| {
        c.name_any() != name && (normalize_domain(&c.spec.domain).ok() == domain || lost_a_conflict(c))
    })
}

/// Runs the connection controller until `shutdown` resolves.
pub(super) async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    let watch = watcher::Config::default();

    let (schedules, schedule_writer) = reflector::store();
    let schedule_status = schedules::StatusWriter::new(client.clone(), metrics.clone());
    let schedule_events = forward(
        reflector::reflector(schedule_writer, watcher(scoped::<LdapSyncSchedule>(client.clone(), ns), watch.clone()))
            .default_backoff(),
        "ldapsyncschedules",
        move |s: &LdapSyncSchedule| schedule_status.observe(s),
    );
    let (pods, pod_writer) = reflector::store();
    let pod_api: Api<PartialObjectMeta<Pod>> = scoped(client.clone(), ns);
    let pod_events = forward(
        reflector::reflector(pod_writer, watcher(pod_api, watch.clone().labels(&config.gateway_selector)))
            .default_backoff(),
        "pods",
        |_| {},
    );
    let secret_events = forward(
        watcher(scoped::<PartialObjectMeta<Secret>>(client.clone(), ns), watch.clone()).default_backoff(),
        "secrets",
        |_| {},
    );
    let config_map_events = forward(
        watcher(scoped::<PartialObjectMeta<ConfigMap>>(client.clone(), ns), watch.clone()).default_backoff(),
        "configmaps",
        |_| {},
    );
    // One watch of the connections feeds the cache, the reconciles and the peer wake-ups.
    let (connections, connection_writer) = reflector::store_shared(256);
    let (Some(triggers), Some(peer_events)) = (connection_writer.subscribe(), connection_writer.subscribe()) else {
        tracing::error!("the connection cache cannot be shared; not reconciling");
        return;
    };
    let connection_watch = watcher(scoped::<LdapConnection>(client.clone(), ns), watch)
        .default_backoff()
        .reflect_shared(connection_writer)
        .for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(watch = "ldapconnections", error = %e, "watch failed; retrying with backoff");
            }
            futures::future::ready(())
        });
    let connection_task = tokio::spawn(connection_watch);

    // Rows are only judged against a complete list of pods.
    let _ = pods.wait_until_ready().await;
    let _ = schedules.wait_until_ready().await;

    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) },
    );
    let count_task = tokio::spawn(count_conditions(connections.clone(), metrics.clone()));
    let ctx = Arc::new(Context::new(client, config, connections.clone(), schedules, pods, recorder, metrics));
    let (s1, s2, s3, s4, s5) =
        (connections.clone(), connections.clone(), connections.clone(), connections.clone(), connections.clone());
    Controller::for_shared_stream(triggers, connections)
        .watches_stream(schedule_events, move |s| on_schedule(&s1, &s))
        .watches_stream(pod_events, move |p| on_pod(&s2, &p))
        .watches_stream(secret_events, move |s| on_secret(&s3, &s))
        .watches_stream(config_map_events, move |m| on_config_map(&s4, &m))
        .watches_shared_stream(peer_events, move |changed| on_peer(&s5, &changed))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    count_task.abort();
    connection_task.abort();
}

/// Connections by condition, for the `ldapsync_controller_connections` gauge.
async fn count_conditions(store: Store<LdapConnection>, metrics: Arc<Metrics>) {
    loop {
        let mut c = ConditionCounts::default();
        for conn in store.state() {
            let conds = conn.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let is = |t: &str, s: &str| conds.iter().any(|c| c.type_ == t && c.status == s);
            c.accepted += u64::from(is(conditions::ACCEPTED, "True"));
            c.rejected += u64::from(is(conditions::ACCEPTED, "False"));
            c.ready += u64::from(is(conditions::READY, "True"));
            c.not_ready += u64::from(is(conditions::READY, "False"));
            c.stale += u64::from(is(conditions::STALE, "True"));
            c.duplicates += u64::from(is(conditions::DUPLICATES_FOUND, "True"));
        }
        metrics.set_connections(c);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests;
