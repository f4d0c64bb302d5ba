//! Several RBAC filters in one HTTP filter chain (gRFC A41 allows any number; gRPC's authorization policy, gRFC A43,
//! is a DENY filter followed by an ALLOW filter).
//!
//! Filters run in chain order and the first one that denies ends the evaluation: later filters neither decide nor
//! audit-log (gRFC A59: "The `ALLOW` RBAC will not be evaluated so audit logging will never happen twice").

use std::sync::Arc;

use serde::Serialize;

use super::engine::{RbacDecision, RbacRequest};
use super::{Rbac, RbacPolicy};
use crate::listener::{HttpFilter, HttpFilterConfig};
use crate::route::HeaderLookup;

/// One RBAC filter: its instance name (the "policy name" of gRFC A59's audit context) and its rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RbacFilter {
    /// The filter's name.
    pub name: Arc<str>,
    /// Its rules.
    pub rules: Rbac,
}

impl RbacFilter {
    /// A filter named `name` enforcing `rules`.
    #[must_use]
    pub fn new(name: &str, rules: Rbac) -> Self {
        Self {
            name: name.into(),
            rules,
        }
    }
}

/// The RBAC filters a request passes through, in order. Empty allows everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RbacChain {
    filters: Vec<RbacFilter>,
}

/// A whole chain's verdict on a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainDecision<'c> {
    /// Whether every filter allowed the request.
    pub allowed: bool,
    /// The filter that denied it, or (when allowed) the last filter that ran; `None` for an empty chain.
    pub filter: Option<&'c RbacFilter>,
    /// That filter's matched policy, if any.
    pub matched_policy: Option<&'c RbacPolicy>,
}

impl RbacChain {
    /// A chain of `filters`, evaluated in this order.
    #[must_use]
    pub fn new(filters: Vec<RbacFilter>) -> Self {
        Self { filters }
    }

    /// A chain of the one filter `rules` named `name`.
    #[must_use]
    pub fn single(name: &str, rules: Rbac) -> Self {
        Self::new(vec![RbacFilter::new(name, rules)])
    }

    /// The RBAC filters with rules among an HTTP connection manager's `filters`, in order. A filter present without
    /// rules of its own (`HttpFilterConfig::Rbac(None)`) enforces nothing and is left out: its per-route overrides
    /// (`RBACPerRoute`) must be resolved by the caller's route matching.
    #[must_use]
    pub fn from_http_filters(filters: &[HttpFilter]) -> Self {
        Self::new(
            filters
                .iter()
                .filter_map(|filter| match &filter.config {
                    HttpFilterConfig::Rbac(Some(rules)) => {
                        Some(RbacFilter::new(&filter.name, rules.clone()))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// The filters, in order.
    #[must_use]
    pub fn filters(&self) -> &[RbacFilter] {
        &self.filters
    }

    /// Whether the chain has no filters (and so allows everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Runs the filters over `request` until one denies, telling `on_decision` each filter's decision as it is made
    /// (audit logging hooks in here, gRFC A59).
    pub fn evaluate<'c, H: HeaderLookup + ?Sized>(
        &'c self,
        request: &RbacRequest<'_, H>,
        mut on_decision: impl FnMut(&'c RbacFilter, RbacDecision<'c>),
    ) -> ChainDecision<'c> {
        let mut last = ChainDecision {
            allowed: true,
            filter: None,
            matched_policy: None,
        };
        for filter in &self.filters {
            let decision = filter.rules.evaluate(request);
            on_decision(filter, decision);
            last = ChainDecision {
                allowed: decision.allowed,
                filter: Some(filter),
                matched_policy: decision.matched_policy,
            };
            if !decision.allowed {
                break;
            }
        }
        last
    }
}

impl From<Vec<RbacFilter>> for RbacChain {
    fn from(filters: Vec<RbacFilter>) -> Self {
        Self::new(filters)
    }
}
