//! `GET /api/v1/cluster`: the nodes of the cluster as this node last saw them (name, addresses,
//! version, configuration hash, queue totals, last seen), whether this node runs degraded or was
//! refused membership, and which nodes are configured differently. Any node answers for all.

use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{Envelope, Shared, envelope};
use super::openapi::ReadRefusals;
use crate::cluster::NodeInfo;

/// The cluster as one node sees it.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// Cluster mode is on (`cluster-redis`).
    pub enabled: bool,
    /// This node's name.
    pub node: String,
    /// Redis is unreachable: limits run on this node's share.
    pub degraded: bool,
    /// Another live node holds this node's name.
    pub refused: bool,
    /// This node is being drained (`ember drain`; progress in `GET /api/v1/drain`).
    pub draining: bool,
    /// Live nodes this node divides limits by when degraded.
    pub live: usize,
    /// Every node seen within the last hour, live or not.
    pub nodes: Vec<NodeInfo>,
}

/// The cluster's nodes, this node's state in it
///
/// Access level: monitor (or an X-API-Key). Outside cluster mode `enabled` is false and
/// `nodes` empty. A node whose `config_hash` differs from this node's has `config_differs`.
#[utoipa::path(get, path = "/api/v1/cluster", operation_id = "cluster_show", tag = "cluster",
    security((), ("api_key" = [])),
    responses((status = 200, description = "the cluster", body = Envelope<ClusterView>), ReadRefusals))]
pub async fn show(state: Shared) -> Response {
    envelope(view(state.cluster.as_ref()))
}

pub fn view(cluster: Option<&crate::cluster::Cluster>) -> ClusterView {
    match cluster {
        None => ClusterView {
            enabled: false,
            node: String::new(),
            degraded: false,
            refused: false,
            draining: false,
            live: 1,
            nodes: Vec::new(),
        },
        Some(c) => ClusterView {
            enabled: true,
            node: c.node().to_string(),
            degraded: c.degraded(),
            refused: c.refused(),
            draining: c.draining(),
            live: c.share().live,
            nodes: c.view().as_ref().clone(),
        },
    }
}
