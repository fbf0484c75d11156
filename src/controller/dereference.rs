//! Every read a reconcile makes: the other connections' claims and the live pods (from the
//! caches), and the Secrets and ConfigMaps the spec references (fresh from the API).

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::reconcile::{Context, ReconcileError};
use crate::api::LdapConnection;
use crate::domain::acceptance::claim_of;
use crate::domain::search_base::Claim;
use crate::sync::secrets::{FoundReferences, KubeSource, read_references};

/// What a reconcile decides on.
pub(super) struct Dereferenced {
    /// Claims of the namespace's live connections (this one among them).
    pub(super) claims: Vec<Claim>,
    pub(super) references: FoundReferences,
    pub(super) live_pods: BTreeSet<String>,
}

/// Creation time as Unix seconds; an object without one sorts last.
pub(super) fn created(c: &LdapConnection) -> i64 {
    c.metadata.creation_timestamp.as_ref().map_or(i64::MAX, |t| t.0.as_second())
}

pub(super) async fn dereference(
    conn: &LdapConnection,
    ctx: &Context,
    ns: &str,
) -> Result<Dereferenced, ReconcileError> {
    let claims = ctx
        .connections
        .state()
        .iter()
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns) && c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| claim_of(&c.name_any(), &c.spec, created(c)))
        .collect();
    let mut references = read_references(&conn.spec, &KubeSource::new(ctx.client.clone(), ns))
        .await
        .map_err(ReconcileError::ReadReference)?;
    if let Some(r) = &conn.spec.schedule_ref
        && let Some(s) = ctx.schedules.get(&ObjectRef::new(&r.name).within(ns))
    {
        references = references.with_schedule(&r.name, s.spec.clone());
    }
    Ok(Dereferenced { claims, references, live_pods: ctx.live_pods(ns) })
}
