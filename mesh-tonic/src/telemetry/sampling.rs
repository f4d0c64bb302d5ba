//! [`Sampler`]: the request path's sampling decision, made as the SDK's samplers make it for a [`Sampling`] so
//! that the mesh's spans and the SDK's (the server's, the application's) agree on every trace: parent-based (a
//! valid parent's sampled flag) or not, and otherwise the trace id's low 63 bits against the ratio
//! (`TraceIdRatioBased`; `AlwaysOn` from 1, `AlwaysOff` up to 0).

use opentelemetry::trace::{SpanContext, TraceId};

use super::config::Sampling;

/// The sampling decision, as the SDK's samplers make it for a [`Sampling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sampler {
    /// Follow a valid parent's sampled flag.
    parent_based: bool,
    /// At the root (or always, when not parent-based): sampled when the trace id's low 63 bits are below this;
    /// `None` samples every trace.
    below: Option<u64>,
}

impl Sampler {
    pub(super) fn new(sampling: Sampling) -> Self {
        let (parent_based, ratio) = match sampling {
            Sampling::ParentBasedRatio(ratio) => (true, ratio),
            Sampling::Ratio(ratio) => (false, ratio),
        };
        // The SDK's `TraceIdRatioBased` bound (`AlwaysOn` from 1; 0, never, up to 0 and for NaN).
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let below = if ratio >= 1.0 {
            None
        } else {
            Some((ratio.max(0.0) * (1_u64 << 63) as f64) as u64)
        };
        Self {
            parent_based,
            below,
        }
    }

    pub(super) fn sampled(self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match parent {
            Some(parent) if self.parent_based => parent.is_sampled(),
            _ => self.below.is_none_or(|below| {
                let bytes = trace_id.to_bytes();
                let mut low = [0_u8; 8];
                low.copy_from_slice(bytes.get(8..).unwrap_or(&[0; 8]));
                u64::from_be_bytes(low) >> 1 < below
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::Context;
    use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
    use proptest::prelude::*;

    use super::*;

    fn sdk(sampling: Sampling) -> opentelemetry_sdk::trace::Sampler {
        super::super::sampler(sampling)
    }

    proptest! {
        /// Every decision is the SDK sampler's, for any trace id, ratio and parent (none, sampled or not, remote
        /// or local).
        #[test]
        fn decisions_are_the_sdk_samplers(
            trace_id in any::<u128>(),
            ratio in prop_oneof![Just(0.0), Just(1.0), Just(0.01), Just(-1.0), Just(2.0), Just(f64::NAN), 0.0..1.0_f64],
            parent_based in any::<bool>(),
            parent in prop::option::of((any::<bool>(), any::<bool>())),
        ) {
            let sampling = if parent_based { Sampling::ParentBasedRatio(ratio) } else { Sampling::Ratio(ratio) };
            let trace_id = TraceId::from(trace_id.max(1));
            let parent = parent.map(|(sampled, remote)| {
                let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
                SpanContext::new(trace_id, SpanId::from(7_u64), flags, remote, TraceState::NONE)
            });
            let context = parent.clone().map(|parent| Context::new().with_remote_span_context(parent));
            let expected = sdk(sampling)
                .should_sample(context.as_ref(), trace_id, "call", &SpanKind::Internal, &[], &[])
                .decision
                == SamplingDecision::RecordAndSample;
            prop_assert_eq!(Sampler::new(sampling).sampled(parent.as_ref(), trace_id), expected);
        }
    }

    #[test]
    fn one_percent_keeps_about_one_trace_in_a_hundred() {
        let sampler = Sampler::new(Sampling::ParentBasedRatio(0.01));
        let kept = (1..=100_000_u128)
            .filter(|n| {
                sampler.sampled(
                    None,
                    TraceId::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                )
            })
            .count();
        assert!((700..1300).contains(&kept), "{kept} of 100,000 kept");
    }
}
