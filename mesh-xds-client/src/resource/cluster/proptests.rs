use proptest::prelude::*;
use prost::Message as _;

use super::tests::{PROVIDER, eds_cluster, logical_dns_cluster, tls_socket, upstream_tls};
use super::validate_cluster;
use crate::resource::endpoint::test_support::ctx_with_providers;

/// Valid clusters of several shapes, encoded.
fn valid_cluster_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(eds_cluster("c").encode_to_vec()),
        Just(logical_dns_cluster("dns", "example.com", 443).encode_to_vec()),
        Just({
            let mut cluster = eds_cluster("tls");
            cluster.transport_socket =
                Some(tls_socket(&upstream_tls(Some("spiffe://td/ns/a/sa/b"))));
            cluster.encode_to_vec()
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_cluster(&bytes, &ctx_with_providers(&[PROVIDER]));
    }

    /// Corrupting bytes of a valid cluster never panics (it may still decode and validate).
    #[test]
    fn corrupted_valid_clusters_never_panic(
        bytes in valid_cluster_bytes(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = bytes;
        for (position, byte) in edits {
            let at = position.index(bytes.len());
            bytes[at] = byte;
        }
        let _ = validate_cluster(&bytes, &ctx_with_providers(&[PROVIDER]));
    }
}
