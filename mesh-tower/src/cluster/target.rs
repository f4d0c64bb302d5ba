//! What a route's cluster name resolves to: a leaf cluster, an aggregate of leaves (gRFC A37/A75), or a failure.

use std::sync::Arc;

use super::{LeafCluster, PickerTable};
use crate::error::{EndpointCounts, MeshError};

/// A leaf of an aggregate cluster: the leaf, or its name and why it has no configuration.
pub(crate) type AggregateLeaf = Result<Arc<LeafCluster>, (Arc<str>, Arc<str>)>;

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A leaf cluster.
    Leaf(Arc<LeafCluster>),
    /// An aggregate cluster: its leaves in priority order; a leaf without configuration carries its reason.
    Aggregate {
        name: Arc<str>,
        leaves: Arc<[AggregateLeaf]>,
    },
    /// A cluster without usable configuration.
    Failed { name: Arc<str>, reason: Arc<str> },
}

impl Target {
    /// The cluster's name, as the route named it.
    pub(crate) fn name(&self) -> &Arc<str> {
        match self {
            Self::Leaf(leaf) => leaf.name(),
            Self::Aggregate { name, .. } | Self::Failed { name, .. } => name,
        }
    }

    /// The leaf to send the next attempt to and its picker table: the leaf itself, or an aggregate's first leaf
    /// with a usable endpoint (gRFC A37: "the first cluster in the list that has healthy endpoints").
    pub(crate) fn select(&self) -> Result<(&Arc<LeafCluster>, Arc<PickerTable>), MeshError> {
        match self {
            Self::Leaf(leaf) => Ok((leaf, leaf.table())),
            Self::Failed { name, reason } => Err(MeshError::ClusterFailed {
                cluster: Arc::clone(name),
                reason: Arc::clone(reason),
            }),
            Self::Aggregate { name, leaves } => {
                let mut counts = EndpointCounts::default();
                let mut first_error = None;
                let mut any_endpoints = false;
                for leaf in leaves.iter() {
                    match leaf {
                        Ok(leaf) => {
                            let table = leaf.table();
                            if table.has_usable() {
                                return Ok((leaf, table));
                            }
                            any_endpoints |= table.list.set.is_some();
                            counts.total += table.counts.total;
                            counts.unhealthy += table.counts.unhealthy;
                            counts.ejected += table.counts.ejected;
                            counts.unreachable += table.counts.unreachable;
                        }
                        Err((leaf_name, reason)) => {
                            first_error.get_or_insert_with(|| {
                                format!("leaf cluster {leaf_name:?}: {reason}")
                            });
                        }
                    }
                }
                if any_endpoints {
                    // Scanned only now that every leaf has failed, off the failover path.
                    let last_connect_error = leaves
                        .iter()
                        .filter_map(|leaf| leaf.as_ref().ok())
                        .find_map(|leaf| leaf.table().last_connect_error());
                    Err(MeshError::NoHealthyEndpoints {
                        cluster: Arc::clone(name),
                        counts,
                        last_connect_error,
                    })
                } else {
                    Err(MeshError::NoEndpoints {
                        cluster: Arc::clone(name),
                        note: Some(
                            first_error
                                .map_or_else(|| "no leaf cluster has endpoints".into(), Into::into),
                        ),
                    })
                }
            }
        }
    }
}
