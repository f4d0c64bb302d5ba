use std::sync::atomic::AtomicUsize;

use mesh_core::cluster::{
    ConsecutiveErrorEjection, FailurePercentageEjection, OutlierDetection, SuccessRateEjection,
};
use mesh_core::rng::FastRng;

use super::*;

mod inline;
mod interval;

const SECOND: Duration = Duration::from_secs(1);

fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("10.0.0.{i}:8080")).collect()
}

fn success_rate(minimum_hosts: u32, request_volume: u32) -> SuccessRateEjection {
    let mut config = SuccessRateEjection::default();
    config.minimum_hosts = minimum_hosts;
    config.request_volume = request_volume;
    config
}

fn failure_percentage(threshold: u32) -> FailurePercentageEjection {
    let mut config = FailurePercentageEjection::default();
    config.threshold = threshold;
    config
}

fn consecutive(count: u32, enforcement_percentage: u32) -> ConsecutiveErrorEjection {
    let mut config = ConsecutiveErrorEjection::default();
    config.consecutive = count;
    config.enforcement_percentage = enforcement_percentage;
    config
}

/// Records `successes` then `failures` (non-gateway) for `endpoint`.
fn feed(detector: &OutlierDetector, endpoint: usize, successes: u32, failures: u32, now: Instant) {
    let mut rng = FastRng::from_seed(0);
    for _ in 0..successes {
        detector.record(endpoint, Outcome::Success, now, &mut rng);
    }
    for _ in 0..failures {
        detector.record(endpoint, Outcome::FAILURE, now, &mut rng);
    }
}

fn ejected_endpoints(result: &EvaluationResult) -> Vec<usize> {
    let mut endpoints: Vec<usize> = result.ejected.iter().map(|e| e.endpoint).collect();
    endpoints.sort_unstable();
    endpoints
}

fn multiplier(detector: &OutlierDetector, endpoint: usize, now: Instant) -> u32 {
    detector.snapshot(now).endpoints[endpoint].multiplier
}
