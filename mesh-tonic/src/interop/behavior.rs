//! The `rpc-behavior` request header of gRPC's xDS interop server (grpc/grpc `doc/xds-test-descriptions.md`,
//! ../shared/XDS-FEATURES.md "The interop contract").
//!
//! The header holds comma-separated behaviours, applied in order (several header values are read one after
//! another):
//! - `sleep-N`: sleep N seconds, then continue;
//! - `keep-open`: never answer;
//! - `error-code-N`: fail with status code N (answered trailers-only);
//! - `succeed-on-retry-attempt-N` / `success-on-retry-attempt-N`: when the `grpc-previous-rpc-attempts` request
//!   header equals N, answer normally, skipping the remaining behaviours;
//! - a prefix `hostname=H ` applies the rest of its entry only on the server whose hostname is H.
//!
//! Unknown behaviours are ignored, as gRPC's servers do; malformed numbers fail the call with INVALID_ARGUMENT.

use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// The request header holding the behaviours.
pub const RPC_BEHAVIOR_HEADER: &str = "rpc-behavior";

/// The request header gRPC clients set on retries: how many attempts came before this one (gRFC A6).
pub const PREVIOUS_ATTEMPTS_HEADER: &str = "grpc-previous-rpc-attempts";

/// One thing to do before answering.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait this long, then continue.
    Sleep(Duration),
    /// Never answer.
    KeepOpen,
    /// Fail the call with this status.
    Fail(Status),
}

/// What `values` (the `rpc-behavior` header values, in order) ask of the server named `hostname`, given the
/// call's `grpc-previous-rpc-attempts` header. The plan ends at the first step that ends the call.
#[must_use]
pub fn plan<'a>(
    values: impl IntoIterator<Item = &'a str>,
    hostname: &str,
    previous_attempts: Option<&str>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for entry in values.into_iter().flat_map(|value| value.split(',')) {
        let mut entry = entry.trim();
        if let Some(rest) = entry.strip_prefix("hostname=") {
            let Some((host, behaviour)) = rest.split_once(' ') else {
                // A host filter with nothing to apply.
                continue;
            };
            if host != hostname {
                continue;
            }
            entry = behaviour.trim();
        }
        if let Some(seconds) = entry.strip_prefix("sleep-") {
            match seconds.parse::<u64>() {
                Ok(seconds) => steps.push(Step::Sleep(Duration::from_secs(seconds))),
                Err(_) => {
                    steps.push(invalid(entry));
                    return steps;
                }
            }
        } else if entry == "keep-open" {
            steps.push(Step::KeepOpen);
            return steps;
        } else if let Some(code) = entry.strip_prefix("error-code-") {
            match code.parse::<i32>() {
                // error-code-0 asks for success: nothing to do.
                Ok(0) => {}
                Ok(code @ 1..=16) => {
                    steps.push(Step::Fail(Status::new(
                        Code::from_i32(code),
                        format!("{RPC_BEHAVIOR_HEADER}: {entry}"),
                    )));
                    return steps;
                }
                _ => {
                    steps.push(invalid(entry));
                    return steps;
                }
            }
        } else if let Some(attempt) = entry
            .strip_prefix("succeed-on-retry-attempt-")
            .or_else(|| entry.strip_prefix("success-on-retry-attempt-"))
        {
            let Ok(attempt) = attempt.parse::<u32>() else {
                steps.push(invalid(entry));
                return steps;
            };
            let previous = previous_attempts.and_then(|value| value.trim().parse::<u32>().ok());
            if previous == Some(attempt) {
                return steps;
            }
        }
        // Anything else is not ours: ignored.
    }
    steps
}

fn invalid(entry: &str) -> Step {
    Step::Fail(Status::invalid_argument(format!(
        "{RPC_BEHAVIOR_HEADER}: malformed behaviour {entry:?}"
    )))
}

/// Applies the call's `rpc-behavior` for the server named `hostname`: sleeps, never returns (`keep-open`), or
/// returns the status to fail with.
///
/// # Errors
/// The status an `error-code-N` (or a malformed behaviour) asks for.
pub async fn apply(metadata: &MetadataMap, hostname: &str) -> Result<(), Status> {
    let values = metadata
        .get_all(RPC_BEHAVIOR_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let previous = metadata
        .get(PREVIOUS_ATTEMPTS_HEADER)
        .and_then(|value| value.to_str().ok());
    for step in plan(values, hostname, previous) {
        match step {
            Step::Sleep(duration) => tokio::time::sleep(duration).await,
            Step::KeepOpen => std::future::pending::<()>().await,
            Step::Fail(status) => return Err(status),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|step| match step {
                Step::Sleep(duration) => format!("sleep {}", duration.as_secs()),
                Step::KeepOpen => "keep-open".to_owned(),
                Step::Fail(status) => format!("fail {:?}", status.code()),
            })
            .collect()
    }

    #[test]
    fn applies_in_order_and_stops_at_the_first_end() {
        let steps = plan(["sleep-2, error-code-14,error-code-3"], "a", None);
        assert_eq!(codes(&steps), ["sleep 2", "fail Unavailable"]);
        assert_eq!(
            codes(&plan(["keep-open,error-code-3"], "a", None)),
            ["keep-open"]
        );
        assert!(plan(["error-code-0", ""], "a", None).is_empty());
    }

    #[test]
    fn several_header_values_are_read_in_turn() {
        let steps = plan(["sleep-1", "error-code-4"], "a", None);
        assert_eq!(codes(&steps), ["sleep 1", "fail DeadlineExceeded"]);
    }

    #[test]
    fn succeed_on_retry_attempt_skips_the_rest_on_that_attempt() {
        for spelling in ["succeed", "success"] {
            let value = format!("{spelling}-on-retry-attempt-1,error-code-14");
            assert!(plan([value.as_str()], "a", Some("1")).is_empty());
            assert_eq!(
                codes(&plan([value.as_str()], "a", Some("2"))),
                ["fail Unavailable"]
            );
            assert_eq!(
                codes(&plan([value.as_str()], "a", None)),
                ["fail Unavailable"]
            );
        }
    }

    #[test]
    fn hostname_prefix_applies_only_on_that_host() {
        let value = "hostname=b error-code-14,hostname=a sleep-1";
        assert_eq!(codes(&plan([value], "a", None)), ["sleep 1"]);
        assert_eq!(codes(&plan([value], "b", None)), ["fail Unavailable"]);
        assert!(plan(["hostname=a"], "a", None).is_empty());
    }

    #[test]
    fn malformed_numbers_are_invalid_and_unknown_behaviours_ignored() {
        assert_eq!(
            codes(&plan(["sleep-x"], "a", None)),
            ["fail InvalidArgument"]
        );
        assert_eq!(
            codes(&plan(["error-code-99"], "a", None)),
            ["fail InvalidArgument"]
        );
        assert!(plan(["dance,keep-closed"], "a", None).is_empty());
    }
}
