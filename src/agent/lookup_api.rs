//! The lookup API the gateway calls on localhost: HTTP/JSON over the in-memory index.
//! A new index is swapped in whole; a lookup clones an `Arc` and never waits for a sync.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::domain::index::Index;

/// Longest address accepted (RFC 5321).
const MAX_ADDRESS: usize = 320;
/// Longest DN or prefix accepted.
const MAX_DN: usize = 2048;
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;

mod metrics;

/// Endpoints, as bounded metric labels.
#[derive(Clone, Copy)]
enum Endpoint {
    Address,
    Members,
    Autocomplete,
}

const ENDPOINTS: [(&str, Endpoint); 3] =
    [("address", Endpoint::Address), ("members", Endpoint::Members), ("autocomplete", Endpoint::Autocomplete)];
const OUTCOMES: [&str; 3] = ["found", "not_found", "bad_request"];

/// The index being served, and the clock its ages are measured with.
#[derive(Debug)]
struct Served {
    index: RwLock<Arc<Index>>,
    now: fn() -> i64,
}

impl Served {
    fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the lookup API serves, shared with whoever loads snapshots.
pub struct LookupState {
    served: Arc<Served>,
    stale: RwLock<BTreeSet<String>>,
    loaded: std::sync::atomic::AtomicBool,
    metrics: metrics::LookupMetrics,
}

impl LookupState {
    /// An empty state; `now` gives Unix seconds (injected for tests).
    pub fn new(now: fn() -> i64) -> Self {
        let served = Arc::new(Served { index: RwLock::new(Arc::new(Index::default())), now });
        Self {
            metrics: metrics::LookupMetrics::new(served.clone()),
            served,
            stale: RwLock::new(BTreeSet::new()),
            loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Adds more metrics to `/metrics` (the agent's sync metrics).
    pub fn register_metrics(&self, add: impl FnOnce(&mut prometheus_client::registry::Registry)) {
        self.metrics.register(add);
    }

    /// Replaces the index; readers holding the old one finish with it.
    pub fn swap(&self, index: Index) {
        *self.served.index.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(index);
        self.loaded.store(true, Ordering::Release);
    }

    /// Marks a connection (`namespace/name`) as serving a stale snapshot, or not.
    pub fn set_stale(&self, connection: &str, stale: bool) {
        let mut set = self.stale.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if stale {
            set.insert(connection.to_owned());
        } else {
            set.remove(connection);
        }
    }

    pub fn index(&self) -> Arc<Index> {
        self.served.index()
    }

    /// Whether a snapshot set has been loaded (warm start or first sync).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Counts a socketmap request by map and reply (`Map::metric_index`, `Reply::metric_index`).
    pub fn count_socketmap(&self, map: usize, reply: usize) {
        self.metrics.count_socketmap(map, reply);
    }

    fn count(&self, endpoint: Endpoint, outcome: usize) {
        self.metrics.count_request(endpoint as usize, outcome);
    }
}

/// The routes of the lookup API (with the probe routes).
pub fn router(state: Arc<LookupState>) -> Router {
    Router::new()
        .route("/v1/addresses/{address}", get(address))
        .route("/v1/groups/{group}/members", get(members))
        .route("/v1/autocomplete", get(autocomplete))
        .route("/v1/status", get(status))
        .merge(probe_routes())
        .with_state(state)
}

/// Only `/healthz`, `/readyz` and `/metrics`: what the kubelet and Prometheus reach on the pod's
/// address, while the lookups stay on localhost.
pub fn probe_router(state: Arc<LookupState>) -> Router {
    probe_routes().with_state(state)
}

fn probe_routes() -> Router<Arc<LookupState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn bad_request(state: &LookupState, endpoint: Endpoint, message: impl Into<String>) -> Response {
    state.count(endpoint, 2);
    (StatusCode::BAD_REQUEST, axum::Json(ErrorBody { error: message.into() })).into_response()
}

fn not_found(state: &LookupState, endpoint: Endpoint, message: String) -> Response {
    state.count(endpoint, 1);
    (StatusCode::NOT_FOUND, axum::Json(ErrorBody { error: message })).into_response()
}

fn found<T: Serialize>(state: &LookupState, endpoint: Endpoint, body: T) -> Response {
    state.count(endpoint, 0);
    axum::Json(body).into_response()
}

/// A path value: present, decodable, not empty, not too long.
fn path_value(path: Result<Path<String>, PathRejection>, max: usize, what: &str) -> Result<String, String> {
    let Path(value) = path.map_err(|e| format!("invalid {what}: {}", e.body_text()))?;
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(format!("empty {what}"));
    }
    if value.len() > max {
        return Err(format!("{what} longer than {max} bytes"));
    }
    Ok(value)
}

/// Query parameters, refusing any not in `allowed`.
fn query_params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, String> {
    let Query(params) = query.map_err(|e| format!("invalid query: {}", e.body_text()))?;
    if let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown parameter {unknown:?} (allowed: {})", allowed.join(", ")));
    }
    Ok(params)
}

async fn address(State(state): State<Arc<LookupState>>, path: Result<Path<String>, PathRejection>) -> Response {
    let address = match path_value(path, MAX_ADDRESS, "address") {
        Ok(a) => a,
        Err(e) => return bad_request(&state, Endpoint::Address, e),
    };
    match state.index().lookup_address(&address) {
        Some(answer) => found(&state, Endpoint::Address, answer),
        None => not_found(&state, Endpoint::Address, format!("no object has the address {address}")),
    }
}

async fn members(
    State(state): State<Arc<LookupState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let group = match path_value(path, MAX_DN, "group") {
        Ok(g) => g,
        Err(e) => return bad_request(&state, Endpoint::Members, e),
    };
    let params = match query_params(query, &["transitive"]) {
        Ok(p) => p,
        Err(e) => return bad_request(&state, Endpoint::Members, e),
    };
    let transitive = match params.get("transitive").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return bad_request(&state, Endpoint::Members, format!("transitive must be true or false, not {other:?}"));
        }
    };
    match state.index().group_members(&group, transitive) {
        Some(list) => found(&state, Endpoint::Members, list),
        None => not_found(&state, Endpoint::Members, format!("no group {group}")),
    }
}

async fn autocomplete(
    State(state): State<Arc<LookupState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match query_params(query, &["prefix", "limit"]) {
        Ok(p) => p,
        Err(e) => return bad_request(&state, Endpoint::Autocomplete, e),
    };
    let prefix = params.get("prefix").map(|p| p.trim()).unwrap_or_default();
    if prefix.is_empty() {
        return bad_request(&state, Endpoint::Autocomplete, "prefix is required");
    }
    if prefix.len() > MAX_DN {
        return bad_request(&state, Endpoint::Autocomplete, format!("prefix longer than {MAX_DN} bytes"));
    }
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => return bad_request(&state, Endpoint::Autocomplete, format!("limit must be 1 to {MAX_LIMIT}")),
    };
    found(&state, Endpoint::Autocomplete, state.index().autocomplete(prefix, limit))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionStatus {
    connection: String,
    server: String,
    taken_at: i64,
    age_seconds: i64,
    users: u64,
    contacts: u64,
    groups: u64,
    addresses: u64,
    stale: bool,
}

async fn status(State(state): State<Arc<LookupState>>) -> Response {
    let index = state.index();
    let now = (state.served.now)();
    let stale = state.stale.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let rows: Vec<ConnectionStatus> = index
        .snapshots()
        .iter()
        .map(|s| {
            let c = s.counts();
            let connection = format!("{}/{}", s.connection.namespace, s.connection.name);
            ConnectionStatus {
                stale: stale.contains(&connection),
                connection,
                server: s.server.clone(),
                taken_at: s.taken_at,
                age_seconds: (now - s.taken_at).max(0),
                users: c.users,
                contacts: c.contacts,
                groups: c.groups,
                addresses: c.addresses,
            }
        })
        .collect();
    axum::Json(rows).into_response()
}

async fn readyz(State(state): State<Arc<LookupState>>) -> Response {
    if state.is_loaded() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no snapshot loaded yet").into_response()
    }
}

async fn metrics(State(state): State<Arc<LookupState>>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the metrics").into_response()
        }
    }
}

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::tests::{ad_names, entry};
    use crate::domain::snapshot::{ConnectionRef, ObjectKind, SnapshotBuilder};
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    fn state() -> Arc<LookupState> {
        let mut b = SnapshotBuilder::new(ad_names());
        let entries = [
            (
                ObjectKind::User,
                entry(
                    "CN=Alice,DC=corp",
                    &[("displayName", &["Alice Liddell"]), ("mail", &["alice@corp.example.com"])],
                ),
            ),
            (
                ObjectKind::Group,
                entry("CN=Sales,DC=corp", &[("mail", &["sales@corp.example.com"]), ("member", &["CN=Alice,DC=corp"])]),
            ),
        ];
        for (k, e) in entries {
            b.add(k, e).expect("entry");
        }
        let connection = ConnectionRef { namespace: "mail".into(), name: "corp".into(), uid: "u".into() };
        let s = LookupState::new(|| 1_000);
        s.swap(Index::build(vec![Arc::new(b.finish(connection, "corp.example.com", "DC=corp", "dc1:389", 400))]));
        Arc::new(s)
    }

    async fn get(state: &Arc<LookupState>, uri: &str) -> (StatusCode, String) {
        let response = router(state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn lookups_answer_from_the_index() {
        let s = state();
        let (code, body) = get(&s, "/v1/addresses/ALICE@corp.example.com").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["kind"], "user");
        assert_eq!(v["connection"], "mail/corp");
        assert_eq!(v["groups"][0]["address"], "sales@corp.example.com");
        assert_eq!(get(&s, "/v1/addresses/nobody@corp.example.com").await.0, StatusCode::NOT_FOUND);
        let (code, body) = get(&s, "/v1/groups/sales@corp.example.com/members?transitive=false").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("CN=Alice,DC=corp"), "{body}");
        let (code, body) = get(&s, "/v1/groups/CN%3DSales%2CDC%3Dcorp/members").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = get(&s, "/v1/autocomplete?prefix=ali&limit=5").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("alice@corp.example.com"), "{body}");
        let (code, body) = get(&s, "/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (v[0]["users"].as_u64(), v[0]["ageSeconds"].as_i64(), v[0]["stale"].as_bool()),
            (Some(1), Some(600), Some(false))
        );
        s.set_stale("mail/corp", true);
        assert!(get(&s, "/v1/status").await.1.contains("\"stale\":true"));
    }

    #[tokio::test]
    async fn bad_requests_get_400_with_a_message() {
        let s = state();
        let long = "a".repeat(400);
        let cases = [
            ("/v1/addresses/%20".to_owned(), "empty address"),
            (format!("/v1/addresses/{long}@x.example"), "longer than 320"),
            ("/v1/addresses/%FF%FE".to_owned(), "invalid address"),
            ("/v1/autocomplete?prefix=a&color=red".to_owned(), "(allowed: prefix, limit)"),
            ("/v1/autocomplete".to_owned(), "prefix is required"),
            ("/v1/autocomplete?prefix=a&limit=0".to_owned(), "limit must be"),
            ("/v1/autocomplete?prefix=a&limit=many".to_owned(), "limit must be"),
            ("/v1/groups/sales@corp.example.com/members?transitive=maybe".to_owned(), "transitive must be"),
        ];
        for (uri, want) in cases {
            let (code, body) = get(&s, &uri).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(body.contains(want), "{uri}: {body}");
        }
        let (_, metrics) = get(&s, "/metrics").await;
        assert!(
            metrics.contains("ldapsync_lookup_requests_total{endpoint=\"autocomplete\",outcome=\"bad_request\"} 4"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn ready_only_once_a_snapshot_is_loaded() {
        let empty = Arc::new(LookupState::new(|| 0));
        assert_eq!(get(&empty, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&empty, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&state(), "/readyz").await.0, StatusCode::OK);
    }
}
