//! Fault injection (gRFC A33, Envoy's HTTP fault filter): delay and abort a share of requests, optionally only those
//! with certain headers, with the share or the fault itself chosen by request headers.
//!
//! Rules, in the order they apply:
//! - The fault settings are the listener's fault filter, overridden by the most specific per-route config (weighted
//!   cluster, then route, then virtual host; gRFC A39). Without a fault filter nothing is injected.
//! - Every header matcher of the settings must match, else no fault.
//! - At most `max_active_faults` faults at once: a request that would exceed it gets none. A fault is active from
//!   the moment it is chosen until its delay has passed, or until its abort is answered.
//! - Delay first, then abort (A33). Each is sampled with its own draw.
//! - `FaultDelay::Header`: the delay is `x-envoy-fault-delay-request` milliseconds; `FaultAbortKind::Header`: the
//!   status is `x-envoy-fault-abort-grpc-request` (gRPC code, preferred for gRPC) or `x-envoy-fault-abort-request`
//!   (HTTP status). For these header-selected faults, `x-envoy-fault-delay-request-percentage` and
//!   `x-envoy-fault-abort-request-percentage` lower the configured share (the smaller of the two applies, over the
//!   configured denominator). A missing or malformed header means no fault of that kind.
//! - An HTTP status abort of a gRPC request becomes the gRPC status of gRPC's HTTP mapping; a gRPC status abort of a
//!   plain HTTP request answers 500 (503 for UNAVAILABLE).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::HeaderMap;
use mesh_core::fraction::FractionalPercent;
use mesh_core::rng::RandomSource;
use mesh_core::route::matching::GrpcHeaders;
use mesh_core::route::{FaultAbortKind, FaultDelay, FaultInjection};

use crate::error::MeshError;
use crate::status::Code;

/// Delay header (milliseconds).
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
/// Delay percentage header.
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
/// HTTP abort header.
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
/// gRPC abort header.
pub const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
/// Abort percentage header.
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";

/// The faults chosen for one request.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    /// Wait this long before sending.
    pub(crate) delay: Option<Duration>,
    /// Then fail with this.
    pub(crate) abort: Option<MeshError>,
    /// Holds the fault's place under `max_active_faults`.
    pub(crate) _active: Option<ActiveFault>,
}

/// The count of active faults, shared by every request of a service.
#[derive(Debug, Default)]
pub(crate) struct ActiveFaults(Arc<AtomicU32>);

/// One active fault; dropping it ends it.
#[derive(Debug)]
pub(crate) struct ActiveFault(Arc<AtomicU32>);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ActiveFaults {
    fn try_start(&self, max: Option<u32>) -> Option<ActiveFault> {
        let limit = max.unwrap_or(u32::MAX);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < limit).then(|| active + 1)
            })
            .ok()?;
        Some(ActiveFault(Arc::clone(&self.0)))
    }
}

/// Chooses the faults for a request; see the [module docs](self).
pub(crate) fn plan(
    config: &FaultInjection,
    headers: &HeaderMap,
    grpc: bool,
    active: &ActiveFaults,
    rng: &mut impl RandomSource,
) -> FaultPlan {
    let matched = if grpc {
        let view = GrpcHeaders::new(headers);
        config.headers.iter().all(|m| m.matches(&view))
    } else {
        config.headers.iter().all(|m| m.matches(headers))
    };
    if !matched || (config.delay.is_none() && config.abort.is_none()) {
        return FaultPlan::default();
    }
    let delay = config.delay.as_ref().and_then(|delay| match delay {
        FaultDelay::Fixed { delay, percentage } => percentage.sample(rng).then_some(*delay),
        FaultDelay::Header { percentage } => {
            let millis = header_u64(headers, DELAY_HEADER)?;
            let share = lowered(*percentage, headers, DELAY_PERCENTAGE_HEADER);
            share.sample(rng).then(|| Duration::from_millis(millis))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    });
    let abort = config.abort.as_ref().and_then(|abort| {
        let (kind, share) = match abort.kind {
            FaultAbortKind::Header => (
                header_abort(headers, grpc)?,
                lowered(abort.percentage, headers, ABORT_PERCENTAGE_HEADER),
            ),
            FaultAbortKind::Http(status) => (Abort::Http(status), abort.percentage),
            FaultAbortKind::Grpc(code) => (Abort::Grpc(Code::from_u32(code)), abort.percentage),
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        share.sample(rng).then(|| kind.into_error())
    });
    if delay.is_none() && abort.is_none() {
        return FaultPlan::default();
    }
    match active.try_start(config.max_active_faults) {
        Some(guard) => FaultPlan {
            delay,
            abort,
            _active: Some(guard),
        },
        None => FaultPlan::default(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Abort {
    Http(u16),
    Grpc(Code),
}

impl Abort {
    fn into_error(self) -> MeshError {
        let (code, http_status) = match self {
            Self::Http(status) => (Code::from_http_status(status), status),
            Self::Grpc(code) => (code, if code == Code::Unavailable { 503 } else { 500 }),
        };
        MeshError::FaultAbort { code, http_status }
    }
}

fn header_abort(headers: &HeaderMap, grpc: bool) -> Option<Abort> {
    if grpc && let Some(code) = header_u64(headers, ABORT_GRPC_HEADER) {
        return Some(Abort::Grpc(Code::from_u32(u32::try_from(code).ok()?)));
    }
    let status = u16::try_from(header_u64(headers, ABORT_HEADER)?).ok()?;
    // Envoy accepts only statuses in 200..600 from the header.
    (200..600).contains(&status).then_some(Abort::Http(status))
}

/// The configured share, lowered by a percentage header (same denominator) when the header is smaller.
fn lowered(configured: FractionalPercent, headers: &HeaderMap, header: &str) -> FractionalPercent {
    match header_u64(headers, header).and_then(|v| u32::try_from(v).ok()) {
        Some(numerator) if numerator < configured.numerator => {
            FractionalPercent::new(numerator, configured.denominator)
        }
        _ => configured,
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests;
