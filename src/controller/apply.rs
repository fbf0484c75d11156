//! Every write the controller makes to a connection: the finalizer, the rows of deleted pods, the
//! status (server-side apply), and Events. Patches are built as typed operations: none can fail
//! to build, and a test guards each against a concurrent change.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::FIELD_MANAGER;
use super::metrics::Write;
use super::reconcile::{Context, ReconcileError, is_conflict};
use crate::api::{CACHE_CLEANUP_FINALIZER, LdapConnection};
use crate::domain::conditions::DesiredStatus;

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn test(tokens: &[&str], value: serde_json::Value) -> PatchOperation {
    PatchOperation::Test(TestOperation { path: pointer(tokens), value })
}

fn json_patch(ops: Vec<PatchOperation>) -> Patch<()> {
    Patch::Json(json_patch::Patch(ops))
}

/// Adds the cleanup finalizer; false when it turned out to be there already.
pub(super) async fn add_finalizer(api: &Api<LdapConnection>, conn: &LdapConnection) -> Result<bool, ReconcileError> {
    let version = json!(conn.resource_version());
    let add = if conn.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
        AddOperation { path: pointer(&["metadata", "finalizers"]), value: json!([CACHE_CLEANUP_FINALIZER]) }
    } else {
        AddOperation { path: pointer(&["metadata", "finalizers", "-"]), value: json!(CACHE_CLEANUP_FINALIZER) }
    };
    let ops = vec![test(&["metadata", "resourceVersion"], version), PatchOperation::Add(add)];
    match api.patch(&conn.name_any(), &PatchParams::default(), &json_patch(ops)).await {
        Ok(_) => Ok(true),
        // The cached object was stale: it may carry the finalizer already.
        Err(e) if is_conflict(&e) => {
            let fresh = api.get(&conn.name_any()).await.map_err(ReconcileError::AddFinalizer)?;
            if fresh.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) {
                Ok(false)
            } else {
                Err(ReconcileError::AddFinalizer(e))
            }
        }
        Err(e) => Err(ReconcileError::AddFinalizer(e)),
    }
}

pub(super) async fn remove_finalizer(api: &Api<LdapConnection>, conn: &LdapConnection) -> Result<(), ReconcileError> {
    let Some(index) = conn.finalizers().iter().position(|f| f == CACHE_CLEANUP_FINALIZER) else { return Ok(()) };
    let at = index.to_string();
    let ops = vec![
        test(&["metadata", "finalizers", &at], json!(CACHE_CLEANUP_FINALIZER)),
        PatchOperation::Remove(RemoveOperation { path: pointer(&["metadata", "finalizers", &at]) }),
    ];
    match api.patch(&conn.name_any(), &PatchParams::default(), &json_patch(ops)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ReconcileError::RemoveFinalizer(e)),
    }
}

/// Removes rows of pods that are gone; each removal is guarded by a test of the row's pod, so a
/// row an agent just added at that index is never removed by mistake.
pub(super) async fn remove_rows(
    api: &Api<LdapConnection>,
    name: &str,
    gone: &[(usize, String)],
) -> Result<(), ReconcileError> {
    let mut ops = Vec::new();
    for (index, pod) in gone.iter().rev() {
        let at = index.to_string();
        ops.push(test(&["status", "nodes", &at, "pod"], json!(pod)));
        ops.push(PatchOperation::Remove(RemoveOperation { path: pointer(&["status", "nodes", &at]) }));
    }
    api.patch_status(name, &PatchParams::default(), &json_patch(ops)).await.map_err(ReconcileError::RemoveRows)?;
    Ok(())
}

pub(super) async fn apply_status(
    api: &Api<LdapConnection>,
    name: &str,
    desired: &DesiredStatus,
) -> Result<(), ReconcileError> {
    let mut status = json!({
        "observedGeneration": desired.observed_generation,
        "conditions": desired.conditions,
        "summary": desired.summary,
    });
    if let Some(p) = &desired.kerberos_principal {
        status["kerberosPrincipal"] = json!(p);
    }
    let patch = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection", "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch))
        .await
        .map_err(ReconcileError::PatchStatus)?;
    Ok(())
}

/// Records an Event; a failure is logged, never fatal to the reconcile.
pub(super) async fn publish(ctx: &Context, conn: &LdapConnection, warning: bool, reason: &str, note: String) {
    let event = KubeEvent {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    match ctx.recorder.publish(&event, &conn.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote(Write::Event),
        Err(e) => tracing::warn!(connection = %conn.name_any(), reason, error = %e, "cannot record an Event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_name_the_paths_they_guard() {
        let ops = vec![
            test(&["status", "nodes", "3", "pod"], json!("gw-1")),
            PatchOperation::Remove(RemoveOperation { path: pointer(&["status", "nodes", "3"]) }),
        ];
        let text = serde_json::to_value(json_patch::Patch(ops)).expect("serialise");
        assert_eq!(
            text,
            json!([
                {"op": "test", "path": "/status/nodes/3/pod", "value": "gw-1"},
                {"op": "remove", "path": "/status/nodes/3"}
            ])
        );
    }
}
