//! `LdapSyncSchedule` status: the `Valid` condition, naming the field when the schedule does not parse.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::FIELD_MANAGER;
use super::metrics::{Metrics, Write};
use crate::api::LdapSyncSchedule;
use crate::domain::schedule::parse_schedule;

/// The `Valid` condition a schedule should carry; `previous` keeps the transition time.
pub(super) fn valid_condition(schedule: &LdapSyncSchedule, now: &Time) -> Condition {
    let generation = schedule.metadata.generation;
    let (status, reason, message) = match parse_schedule(&schedule.spec) {
        Ok(_) => ("True", "Valid".to_owned(), "the schedule parses".to_owned()),
        Err(e) => ("False", "InvalidSchedule".to_owned(), e.to_string()),
    };
    let previous = schedule.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Valid"));
    let since = previous.filter(|p| p.status == status).map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
    Condition {
        type_: "Valid".into(),
        status: status.into(),
        reason,
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Writes schedule statuses when they change.
pub(super) struct StatusWriter {
    client: Client,
    metrics: Arc<Metrics>,
}

impl StatusWriter {
    pub(super) fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics }
    }

    /// Called for every schedule the watch reports; patches (in the background) only when the
    /// condition or the observed generation differ.
    pub(super) fn observe(&self, schedule: &LdapSyncSchedule) {
        if schedule.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Some(ns) = schedule.namespace() else { return };
        let condition = valid_condition(schedule, &Time(jiff::Timestamp::now()));
        let current = schedule.status.as_ref();
        let unchanged = current.is_some_and(|s| {
            s.observed_generation == schedule.metadata.generation && s.conditions.contains(&condition)
        });
        if unchanged {
            return;
        }
        let api: Api<LdapSyncSchedule> = Api::namespaced(self.client.clone(), &ns);
        let name = schedule.name_any();
        let metrics = self.metrics.clone();
        let patch = json!({
            "apiVersion": "ldapsync.io/v1alpha1",
            "kind": "LdapSyncSchedule",
            "status": {"observedGeneration": schedule.metadata.generation, "conditions": [condition]}
        });
        tokio::spawn(async move {
            match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await {
                Ok(_) => metrics.wrote(Write::ScheduleStatus),
                Err(e) => tracing::warn!(schedule = %name, error = %e, "cannot write the schedule status"),
            }
        });
    }
}
