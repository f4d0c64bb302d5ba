//! The request hash for ring hash (gRFC A42): the route's hash policies in order, each hashing what it names; a
//! terminal policy that produced a hash ends the walk. Hashes combine as Envoy combines them (rotate left by one,
//! then xor), so the same request lands on the same ring point as through Envoy.

use std::borrow::Cow;

use mesh_core::ring_hash::hash_key;
use mesh_core::route::matching::header_value;
use mesh_core::route::{HashPolicy, HashPolicyKind, HeaderLookup};

/// The hash of a request under `policies`, or `None` when no policy produced one (gRFC A42: the picker then uses
/// a random hash).
pub(crate) fn request_hash<H: HeaderLookup + ?Sized>(
    policies: &[HashPolicy],
    headers: &H,
    channel_id: u64,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        let produced = match &policy.kind {
            HashPolicyKind::Header { name, rewrite } => {
                header_value(headers, name).map(|value| match rewrite {
                    Some((regex, substitution)) => {
                        let text = String::from_utf8_lossy(&value);
                        let rewritten: Cow<'_, str> =
                            Cow::Owned(regex.replace_all(&text, substitution));
                        hash_key(rewritten.as_bytes())
                    }
                    None => hash_key(&value),
                })
            }
            HashPolicyKind::ChannelId => Some(channel_id),
            // A client has no source IP of its own to hash; gRPC ignores this policy too.
            _ => None,
        };
        if let Some(produced) = produced {
            hash = Some(hash.map_or(produced, |previous| previous.rotate_left(1) ^ produced));
            if policy.terminal {
                break;
            }
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use mesh_core::route::HashPolicy;

    use super::*;

    #[test]
    fn the_same_header_gives_the_same_hash_and_a_missing_one_none() {
        let policies = [HashPolicy::header("x-user")];
        let a: &[(&str, &str)] = &[("x-user", "alice")];
        let b: &[(&str, &str)] = &[("x-user", "bob")];
        let none: &[(&str, &str)] = &[];
        assert_eq!(request_hash(&policies, a, 1), request_hash(&policies, a, 2));
        assert_ne!(request_hash(&policies, a, 1), request_hash(&policies, b, 1));
        assert_eq!(request_hash(&policies, none, 1), None);
        assert_eq!(request_hash(&policies, a, 1), Some(hash_key(b"alice")));
    }

    #[test]
    fn a_terminal_policy_stops_the_walk() {
        let headers: &[(&str, &str)] = &[("a", "1"), ("b", "2")];
        let terminal = [
            HashPolicy::header("a").with_terminal(true),
            HashPolicy::header("b"),
        ];
        assert_eq!(request_hash(&terminal, headers, 0), Some(hash_key(b"1")));
        let both = [HashPolicy::header("a"), HashPolicy::header("b")];
        assert_eq!(
            request_hash(&both, headers, 0),
            Some(hash_key(b"1").rotate_left(1) ^ hash_key(b"2"))
        );
        assert_eq!(
            request_hash(&[HashPolicy::channel_id()], headers, 42),
            Some(42)
        );
    }
}
