//! Property tests: listener validation never panics, whatever bytes arrive.

use proptest::prelude::*;
use prost::Message;

use super::validate_listener;
use crate::resource::route::test_support::{
    client_listener, ctx, fault, hcm_inline, hcm_rds, http_filter, pack, route_config, router,
    vhost, weighted_route,
};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_listener(&bytes, &ctx());
    }

    /// Corrupting a valid listener exercises the validators deep inside (nested `Any`s decode lazily).
    #[test]
    fn mutated_valid_listeners_never_panic(
        inline in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let filters = vec![http_filter("fault", pack(&fault(14, 10, 5, 10))), router()];
        let hcm = if inline {
            hcm_inline(route_config("r", vec![vhost("v", &["*"], vec![weighted_route("", &[("a", 1), ("b", 2)])])]), filters)
        } else {
            hcm_rds("r", filters)
        };
        let mut bytes = client_listener("l", &hcm).encode_to_vec();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        let _ = validate_listener(&bytes, &ctx());
    }
}
