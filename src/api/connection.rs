//! `LdapConnection`: one directory (domain + search base) whose objects every gateway pod caches.

// kube-derive takes one `printcolumn(...)` per column, which this lint misreads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// An LdapConnection describes one directory (an Active Directory domain or a generic LDAP server)
/// and the subtree whose users, contacts and groups every gateway pod keeps in its LDAP cache.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ldapsync.io",
    version = "v1alpha1",
    kind = "LdapConnection",
    plural = "ldapconnections",
    shortname = "ldapconn",
    shortname = "lc",
    category = "ldapsync",
    namespaced,
    status = "LdapConnectionStatus",
    derive = "PartialEq",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Search Base", type_ = "string", json_path = ".spec.searchBase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        description = "Gateway pods synced / expected",
        json_path = ".status.summary.nodesSynced"
    ),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.summary.users"),
    printcolumn(name = "Duplicates", type_ = "integer", json_path = ".status.summary.duplicates"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LdapConnectionSpec {
    /// DNS name of the directory domain, e.g. `corp.example.com`. Domain controllers are looked up
    /// under `_ldap._tcp.<domain>` unless static servers are given.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
        )
    )]
    pub domain: String,

    /// Distinguished name of the subtree to synchronise, e.g. `OU=Staff,DC=corp,DC=example,DC=com`.
    /// Two connections of one domain must not use the same search base.
    #[schemars(length(min = 1, max = 2048))]
    pub search_base: String,

    /// Kind of directory: `ActiveDirectory` (users, contacts, groups with AD attributes) or
    /// `Generic` (inetOrgPerson and groupOfNames/groupOfUniqueNames, see `attributeMapping`).
    #[serde(default)]
    pub directory_type: DirectoryType,

    /// How to find the directory servers.
    #[serde(default)]
    pub servers: Servers,

    /// Transport security.
    #[serde(default)]
    pub tls: TlsSpec,

    /// How to authenticate: exactly one of `kerberos` or `simple`.
    pub auth: AuthSpec,

    /// Attributes read as email addresses, in order. `proxyAddresses` values are parsed as
    /// `SMTP:` (primary) and `smtp:` (secondary); other address types (X500, SIP, ...) are ignored.
    #[serde(default = "default_email_attributes")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 64)))]
    pub email_attributes: Vec<String>,

    /// Active Directory contacts (objectClass=contact).
    #[serde(default)]
    pub contacts: ContactsSpec,

    /// More mail-enabled object classes to cache as recipients besides users, contacts and groups,
    /// e.g. `publicFolder`, `msExchDynamicDistributionList` (their addresses only: no members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 64)))]
    pub mail_object_classes: Vec<String>,

    /// Disabled Active Directory user accounts: `Include` (default) caches them as recipients,
    /// flagged `disabled` (Exchange shared and room mailboxes are disabled users); `Exclude` leaves
    /// them out of the cache, so they are not recipients (the DC filters them).
    #[serde(default)]
    pub disabled_accounts: DisabledAccounts,

    /// Extra LDAP filters per object kind, combined with the built-in filter by `&`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<ObjectFilters>,

    /// Attribute names for `directoryType: Generic`. Ignored for Active Directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_mapping: Option<AttributeMapping>,

    /// Name of an LdapSyncSchedule in the same namespace. Without it, every pod syncs every 30 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_ref: Option<LocalObjectRef>,

    /// Network and LDAP operation timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,

    /// Entries per page of the paged-results search.
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub page_size: u32,

    /// Guard against a sync that would drop many cached objects at once (e.g. a wrong filter or a
    /// moved OU). Such a sync is held until approved.
    #[serde(default)]
    pub deletion_safety: DeletionSafety,

    /// Where each gateway pod keeps its cache.
    #[serde(default)]
    pub cache: CacheSpec,

    /// Syncs that read only what changed since the last one (AD `uSNChanged` and tombstones,
    /// RFC 4533 syncrepl), push from the server, and how often a full read is the ground truth.
    #[serde(default)]
    pub incremental: IncrementalSpec,

    /// Suspend scheduled and requested syncs; the last cache keeps serving.
    #[serde(default)]
    pub suspend: bool,
}

/// The directory flavour, which decides object classes and attributes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DirectoryType {
    /// Microsoft Active Directory or Samba AD.
    #[default]
    ActiveDirectory,
    /// Any LDAPv3 server with inetOrgPerson and groupOfNames/groupOfUniqueNames.
    Generic,
}

/// Server discovery: DNS SRV records (default) or a static list.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Servers {
    /// Discover domain controllers through DNS SRV records. Used when `static` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv: Option<SrvDiscovery>,

    /// Fixed servers as `host:port` (or `host`, with the port of the TLS mode), tried in order.
    #[serde(default, rename = "static", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 261)))]
    pub static_servers: Vec<String>,
}

/// DNS SRV discovery of domain controllers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SrvDiscovery {
    /// Active Directory site: `_ldap._tcp.<site>._sites.dc._msdcs.<domain>` is asked first, then
    /// the domain-wide `_ldap._tcp.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub site: Option<String>,
}

/// Transport security settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// `StartTLS` (port 389, default), `LDAPS` (port 636) or `None` (plain LDAP; only Kerberos
    /// with its own encryption layer protects the data then).
    #[serde(default)]
    pub mode: TlsMode,

    /// CA certificates (PEM) that sign the servers' certificates. Without it the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSource>,

    /// Name expected in the server certificate (and used as the Kerberos service host). Defaults
    /// to the server's DNS name from the SRV record or the static list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,

    /// Do not verify server certificates. Only for tests: anyone on the path can read the data.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self { mode: TlsMode::StartTls, ca: None, server_name: None, insecure_skip_verify: false }
    }
}

/// How the LDAP connection is protected.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsMode {
    /// The StartTLS extended operation on the LDAP port.
    #[default]
    #[serde(rename = "StartTLS")]
    StartTls,
    /// TLS from the first byte (LDAPS).
    #[serde(rename = "LDAPS")]
    Ldaps,
    /// No TLS.
    None,
}

/// Where the CA bundle comes from: exactly one of a Secret or a ConfigMap key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSource {
    /// A key of a Secret in the same namespace (default key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A key of a ConfigMap in the same namespace (default key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SecretKeyRef>,
}

/// Authentication: exactly one method.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// SASL GSSAPI with a keytab holding exactly one principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos: Option<KerberosAuth>,
    /// Simple bind with a DN (or `user@domain`) and a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleAuth>,
}

/// Kerberos authentication from a keytab.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KerberosAuth {
    /// Secret key holding the keytab file (default key `keytab`). It must hold exactly one principal.
    pub keytab_secret_ref: SecretKeyRef,
    /// Principal to use, e.g. `svc-sync@CORP.EXAMPLE.COM`. Defaults to the keytab's only principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub principal: Option<String>,
}

/// Simple bind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimpleAuth {
    /// Bind DN, or a user principal name such as `svc-sync@corp.example.com`.
    #[serde(rename = "bindDN")]
    #[schemars(length(min = 1, max = 2048))]
    pub bind_dn: String,
    /// Secret key holding the password (default key `password`).
    pub password_secret_ref: SecretKeyRef,
}

/// What the cache does with disabled accounts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DisabledAccounts {
    /// Cached as recipients, flagged `disabled`.
    #[default]
    Include,
    /// Not cached.
    Exclude,
}

/// Contact objects (Active Directory `objectClass=contact`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactsSpec {
    /// Cache contacts and their addresses. Off by default.
    #[serde(default)]
    pub enabled: bool,
}

/// Extra filters, each an RFC 4515 filter such as `(department=Sales)`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFilters {
    /// Added to the user filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 4096))]
    pub users: Option<String>,
    /// Added to the group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 4096))]
    pub groups: Option<String>,
    /// Added to the contact filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 4096))]
    pub contacts: Option<String>,
}

/// Attribute names of a generic LDAP directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMapping {
    /// Login name attribute (plays sAMAccountName).
    #[serde(default = "default_uid_attribute")]
    pub user_name: String,
    /// Display name attribute.
    #[serde(default = "default_display_name_attribute")]
    pub display_name: String,
    /// Stable unique identifier attribute.
    #[serde(default = "default_unique_id_attribute")]
    pub unique_id: String,
}

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Timeouts, as durations such as `20s` or `1m30s`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// TCP connect plus TLS handshake to one server; the next server is tried after it.
    #[serde(default = "default_connect_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub connect: String,
    /// Each LDAP operation (bind, one page of a search).
    #[serde(default = "default_operation_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub operation: String,
    /// A whole sync of this connection.
    #[serde(default = "default_sync_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub sync: String,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect_timeout(),
            operation: default_operation_timeout(),
            sync: default_sync_timeout(),
        }
    }
}

/// Incremental and push sync.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncrementalSpec {
    /// `Auto` (default): read only the changes where the server tracks them, everything
    /// otherwise. `Full`: every sync reads everything.
    #[serde(default)]
    pub mode: IncrementalMode,
    /// Keep a search open on the server that tracked the changes (AD change notification,
    /// syncrepl refreshAndPersist) and sync as soon as it reports one, instead of waiting for
    /// the schedule. One more connection per pod and directory.
    #[serde(default)]
    pub push: bool,
    /// A full read at least this often, whatever the schedule (deletions an account may not
    /// see, anything a delta could miss). `0s` never forces one.
    #[serde(default = "default_full_sync_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub full_sync_interval: String,
}

impl Default for IncrementalSpec {
    fn default() -> Self {
        Self { mode: IncrementalMode::default(), push: false, full_sync_interval: default_full_sync_interval() }
    }
}

/// Whether syncs may be incremental.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IncrementalMode {
    #[default]
    Auto,
    Full,
}

fn default_full_sync_interval() -> String {
    "24h".to_owned()
}

/// Limits on how much a single sync may remove from the cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionSafety {
    /// Hold a sync that removes more than this many objects. 0 disables the count limit.
    #[serde(default = "default_max_deleted_objects")]
    #[schemars(range(min = 0))]
    pub max_deleted_objects: u32,
    /// Hold a sync that removes more than this percentage of objects. 0 disables the percentage limit.
    #[serde(default = "default_max_deleted_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_deleted_percent: u32,
}

impl Default for DeletionSafety {
    fn default() -> Self {
        Self { max_deleted_objects: default_max_deleted_objects(), max_deleted_percent: default_max_deleted_percent() }
    }
}

/// Cache storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// `Sidecar`: files on the agent's volume (default). `ConfigMap`: chunked ConfigMaps owned by
    /// this connection, so they are removed with it.
    #[serde(default)]
    pub store: CacheStore,
}

/// Cache storage kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CacheStore {
    /// Snapshot files on the sidecar's volume.
    #[default]
    Sidecar,
    /// Snapshot chunks in ConfigMaps.
    ConfigMap,
}

/// Observed state, written by the controller (conditions, summary) and by each agent (its row).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapConnectionStatus {
    /// The generation the controller last processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Accepted`, `Ready`, `Reconciling`, `Stalled`, `Stale`, `DuplicatesFound`, `SearchBaseOverlap`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Totals over the gateway pods, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StatusSummary>,

    /// The principal found in the keytab, when Kerberos is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos_principal: Option<String>,

    /// One row per gateway pod, each written by that pod's agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub nodes: Vec<NodeStatus>,
}

/// Totals shown by `kubectl get ldapconnections`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusSummary {
    /// Pods that synced the current generation, over the expected pods, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_synced: Option<String>,
    /// Users in the newest snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<i64>,
    /// Duplicate user names and addresses in the newest snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<i64>,
}

/// One gateway pod's view of this connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Name of the gateway pod.
    pub pod: String,
    /// `Syncing`, `Synced`, `Failed`, `Stale`, `Held` or `Purged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NodePhase>,
    /// The connection generation this row was produced from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the last sync started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The directory server that served the last sync (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The Active Directory site whose DCs were asked first: `spec.servers.srv.site`, or the site
    /// the DCs place this pod in (netlogon ping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Object counts of the cached snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ObjectCounts>,
    /// Duplicates found in the cached snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<DuplicateSummary>,
    /// SHA-256 (hex) of the cached snapshot file (it includes when and from which server it was
    /// read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_hash: Option<String>,
    /// SHA-256 (hex) of what the cached snapshot says about the directory, leaving out when and
    /// from which server it was read: pods that read the same directory show the same value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// How the last successful sync read the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<SyncSummary>,
    /// When the last full read finished (the content descends from it; deltas follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync_time: Option<Time>,
    /// Encoded size of the cached snapshot in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_size: Option<i64>,
    /// The last value of the `ldapsync.io/sync-requested-at` annotation this pod handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_sync_request: Option<String>,
    /// Details of a sync held by the deletion-safety guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldSync>,
    /// Machine-readable reason of the last failure, e.g. `NoDomainControllerReachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail of the last outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of one pod's cache of this connection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NodePhase {
    /// A sync is running.
    Syncing,
    /// The last sync succeeded.
    Synced,
    /// The last sync failed and there is no cache to serve.
    Failed,
    /// The last sync failed; the previous cache keeps serving.
    Stale,
    /// The deletion-safety guard held the last sync.
    Held,
    /// The cache of this connection was deleted (the connection is going away).
    Purged,
}

/// Object counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    /// Users.
    pub users: i64,
    /// Contacts.
    pub contacts: i64,
    /// Groups.
    pub groups: i64,
    /// Objects of `spec.mailObjectClasses`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recipients: i64,
    /// Distinct email addresses.
    pub addresses: i64,
}

/// Duplicate user names and addresses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateSummary {
    /// Duplicated sAMAccountName / userPrincipalName values.
    pub user_names: i64,
    /// Duplicated email addresses.
    pub addresses: i64,
    /// A few examples, each naming the value and both objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub examples: Vec<String>,
}

/// How one sync read the directory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSummary {
    /// `Full` or `Incremental`.
    pub mode: String,
    /// Entries the server sent.
    pub entries_read: i64,
    /// Objects an incremental sync changed, added or removed.
    pub changes_applied: i64,
    /// Why a sync that could have been incremental read everything (`NoState`, `SpecChanged`,
    /// `Periodic`, `ServerChanged`, `SchemaChanged`, `StateRefused`, `Unsupported`, `Configured`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_reason: Option<String>,
    /// How an incremental sync learnt of deletions: `Tombstones`, `IdListing` (the account may
    /// not read AD's tombstones) or `SyncRefresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions: Option<String>,
}

/// A sync held by the deletion-safety guard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldSync {
    /// Objects in the cached snapshot.
    pub previous_objects: i64,
    /// Objects in the held snapshot.
    pub new_objects: i64,
    /// Objects the held snapshot would remove.
    pub deleted_objects: i64,
    /// Content hash of the held snapshot (its objects, not when it was read): set
    /// `ldapsync.io/approve-deletions` to it to let a sync with exactly this content through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Deprecated: the same value as `contentHash`, under its former name (kept for readers of
    /// earlier versions).
    pub snapshot_hash: String,
    /// A few of the objects it would remove (their DNs), so that an approval is an informed one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub removed_examples: Vec<String>,
}

fn default_email_attributes() -> Vec<String> {
    vec!["mail".to_owned(), "proxyAddresses".to_owned()]
}

fn default_page_size() -> u32 {
    1000
}

fn default_connect_timeout() -> String {
    "10s".to_owned()
}

fn default_operation_timeout() -> String {
    "20s".to_owned()
}

fn default_sync_timeout() -> String {
    "30m".to_owned()
}

fn default_max_deleted_objects() -> u32 {
    500
}

fn default_max_deleted_percent() -> u32 {
    20
}

fn default_uid_attribute() -> String {
    "uid".to_owned()
}

fn default_display_name_attribute() -> String {
    "cn".to_owned()
}

fn default_unique_id_attribute() -> String {
    "entryUUID".to_owned()
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_gets_documented_defaults() {
        let spec: LdapConnectionSpec = serde_json::from_value(serde_json::json!({
            "domain": "corp.example.com",
            "searchBase": "DC=corp,DC=example,DC=com",
            "auth": {"simple": {"bindDN": "svc@corp.example.com",
                     "passwordSecretRef": {"name": "pw"}}}
        }))
        .expect("minimal spec parses");
        assert_eq!(spec.email_attributes, ["mail", "proxyAddresses"]);
        assert_eq!(spec.page_size, 1000);
        assert_eq!(spec.timeouts.operation, "20s");
        assert_eq!(spec.tls.mode, TlsMode::StartTls);
        assert_eq!(spec.deletion_safety.max_deleted_objects, 500);
        assert_eq!(spec.deletion_safety.max_deleted_percent, 20);
        assert_eq!(spec.cache.store, CacheStore::Sidecar);
        assert!(!spec.contacts.enabled);
    }
}
