//! Random input sequences against protocol invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mesh_core::rng::FastRng;
use proptest::collection::vec;
use proptest::prelude::*;

use super::support::{exact_backoff, response};
use crate::protocol::{
    DecodedResource, Output, ProtocolConfig, ServerConfig, ServerId, StreamId, StreamStatus,
    XdsState, normalize_name,
};
use crate::resource::{ResourceError, ResourceKind};

#[derive(Debug, Clone)]
enum Item {
    Valid(u8),
    Invalid,
    Unnamed,
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(usize, usize),
    Unsubscribe(usize, usize),
    Connected(usize),
    Failed(usize),
    Respond {
        server: usize,
        kind: usize,
        version: u8,
        items: Vec<(usize, Item)>,
    },
    Tick(u64),
    Stale(usize),
}

const SERVERS: usize = 3;
const NAMES: usize = 6;

fn name(kind: ResourceKind, index: usize) -> String {
    match index {
        0..=2 => format!("n{index}"),
        3 => format!("xdstp://a/{}/x?q=1&p=2", kind.xdstp_type()),
        4 => format!("xdstp://a/{}/y", kind.xdstp_type()),
        _ => format!("xdstp://unknown/{}/z", kind.xdstp_type()),
    }
}

fn kind(index: usize) -> ResourceKind {
    ResourceKind::ALL[index % ResourceKind::ALL.len()]
}

fn config() -> ProtocolConfig {
    let mut config = ProtocolConfig::new(vec![
        ServerConfig::new("primary"),
        ServerConfig::new("secondary"),
        ServerConfig {
            ignore_resource_deletion: true,
            ..ServerConfig::new("authority-a")
        },
    ]);
    config.default_servers = vec![0, 1];
    config.authorities.insert("a".to_owned(), vec![2, 0]);
    config.backoff = exact_backoff();
    config
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (0u8..3).prop_map(Item::Valid),
        2 => Just(Item::Invalid),
        1 => Just(Item::Unnamed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..NAMES).prop_map(|(k, n)| Op::Subscribe(k, n)),
        2 => (0..4usize, 0..NAMES).prop_map(|(k, n)| Op::Unsubscribe(k, n)),
        4 => (0..SERVERS).prop_map(Op::Connected),
        2 => (0..SERVERS).prop_map(Op::Failed),
        6 => (0..SERVERS, 0..4usize, 0u8..4, vec((0..NAMES, item()), 0..5))
            .prop_map(|(server, kind, version, items)| Op::Respond { server, kind, version, items }),
        3 => (0u64..20_000).prop_map(Op::Tick),
        1 => (0..SERVERS).prop_map(Op::Stale),
    ]
}

/// What the outputs so far imply, to check the next outputs against.
#[derive(Default)]
struct Model {
    subscribed: BTreeSet<(ResourceKind, String)>,
    /// Last value delivered to watchers; removed on DoesNotExist and unsubscribe.
    delivered: BTreeMap<(ResourceKind, String), String>,
    accepted: BTreeMap<(ServerId, ResourceKind), String>,
    live: BTreeSet<StreamId>,
    retired: Vec<StreamId>,
    nonce: u64,
}

/// A response the op fed in: its stream, kind, version, nonce and first valid value per (normalized) name.
struct SentResponse {
    stream: StreamId,
    kind: ResourceKind,
    version: String,
    nonce: String,
    valid: BTreeMap<String, String>,
}

struct Applied {
    outputs: Vec<Output<String>>,
    response: Option<SentResponse>,
    may_delete: bool,
}

fn apply(xds: &mut XdsState<String>, model: &mut Model, now: Instant, op: &Op) -> Applied {
    let mut applied = Applied {
        outputs: Vec::new(),
        response: None,
        may_delete: false,
    };
    match op {
        Op::Subscribe(k, n) => {
            let (kind, name) = (kind(*k), normalize_name(&name(kind(*k), *n)).into_owned());
            xds.subscribe(kind, &name, now);
            model.subscribed.insert((kind, name));
        }
        Op::Unsubscribe(k, n) => {
            let (kind, name) = (kind(*k), normalize_name(&name(kind(*k), *n)).into_owned());
            xds.unsubscribe(kind, &name, now);
            model.delivered.remove(&(kind, name.clone()));
            model.subscribed.remove(&(kind, name));
        }
        Op::Connected(server) => {
            if let Some(stream) = xds.current_stream(ServerId(*server)) {
                xds.stream_connected(stream, now);
            }
        }
        Op::Failed(server) => {
            if let Some(stream) = xds.current_stream(ServerId(*server)) {
                xds.stream_failed(stream, "refused", now);
                model.live.remove(&stream);
                model.retired.push(stream);
            }
        }
        Op::Respond {
            server,
            kind: k,
            version,
            items,
        } => {
            let kind = kind(*k);
            if let Some(stream) = xds.current_stream(ServerId(*server)) {
                model.nonce += 1;
                let nonce = format!("nonce-{}", model.nonce);
                let version = format!("v{version}");
                let mut valid = BTreeMap::new();
                let resources: Vec<DecodedResource<String>> = items
                    .iter()
                    .map(|(n, item)| {
                        let resource_name = name(kind, *n);
                        match item {
                            Item::Valid(value) => {
                                let value = format!("value-{value}");
                                valid
                                    .entry(normalize_name(&resource_name).into_owned())
                                    .or_insert_with(|| value.clone());
                                Ok((resource_name, value))
                            }
                            Item::Invalid => {
                                Err(ResourceError::new(kind, Some(&resource_name), "invalid"))
                            }
                            Item::Unnamed => Err(ResourceError::new(kind, None, "undecodable")),
                        }
                    })
                    .collect();
                xds.response(stream, response(kind, &version, &nonce, resources), now);
                applied.response = Some(SentResponse {
                    stream,
                    kind,
                    version,
                    nonce,
                    valid,
                });
                applied.may_delete = true;
            }
        }
        Op::Tick(_) => {
            xds.tick(now);
            applied.may_delete = true;
        }
        Op::Stale(server) => {
            let stale = model
                .retired
                .iter()
                .rev()
                .find(|stream| stream.server() == ServerId(*server))
                .copied();
            if let Some(stream) = stale {
                xds.stream_connected(stream, now);
                xds.response(
                    stream,
                    response(ResourceKind::Cluster, "x", "stale", vec![]),
                    now,
                );
                xds.stream_failed(stream, "stale", now);
                let outputs: Vec<_> = xds.drain_outputs().collect();
                assert_eq!(
                    outputs,
                    vec![],
                    "events of a retired stream must be ignored"
                );
            }
        }
    }
    applied.outputs = xds.drain_outputs().collect();
    applied
}

fn check(xds: &XdsState<String>, model: &mut Model, now: Instant, op: &Op, applied: &Applied) {
    let mut acks_on_response_stream = 0;
    for (position, output) in applied.outputs.iter().enumerate() {
        match output {
            Output::Connect { stream } => {
                assert!(!model.live.contains(stream), "reused stream id {stream}");
                model.live.insert(*stream);
            }
            Output::Disconnect { stream } => {
                assert!(
                    model.live.remove(stream),
                    "disconnect of unknown stream {stream}"
                );
                model.retired.push(*stream);
            }
            Output::Send { stream, request } => {
                assert!(model.live.contains(stream), "send on dead stream {stream}");
                assert!(
                    matches!(
                        xds.stream_status(stream.server()),
                        StreamStatus::Connected { .. }
                    ),
                    "send on a stream not connected"
                );
                assert!(
                    request.names.windows(2).all(|pair| pair[0] < pair[1]),
                    "names not sorted: {request:?}"
                );
                let key = (stream.server(), request.kind);
                let accepted = model.accepted.get(&key).cloned().unwrap_or_default();
                match &applied.response {
                    Some(SentResponse {
                        stream: response_stream,
                        kind,
                        version,
                        nonce,
                        ..
                    }) if response_stream == stream && *kind == request.kind => {
                        acks_on_response_stream += 1;
                        assert_eq!(
                            position + 1,
                            applied.outputs.len(),
                            "ACK/NACK must come last"
                        );
                        assert_eq!(&request.response_nonce, nonce);
                        if request.is_nack() {
                            assert_eq!(
                                request.version_info, accepted,
                                "NACK must carry the previous version"
                            );
                        } else {
                            assert_eq!(
                                &request.version_info, version,
                                "ACK must carry the response version"
                            );
                            model.accepted.insert(key, version.clone());
                        }
                    }
                    _ => assert_eq!(
                        request.version_info, accepted,
                        "request with a version never accepted"
                    ),
                }
            }
            Output::Changed {
                kind,
                name,
                resource,
            } => {
                let key = (*kind, name.clone());
                assert!(
                    model.subscribed.contains(&key),
                    "Changed for unsubscribed {key:?}"
                );
                let Some(SentResponse {
                    kind: response_kind,
                    valid,
                    ..
                }) = &applied.response
                else {
                    panic!("Changed outside a response: {op:?}");
                };
                assert_eq!(response_kind, kind);
                assert_eq!(
                    valid.get(name),
                    Some(resource),
                    "Changed for a name not in the response"
                );
                assert_ne!(
                    model.delivered.get(&key),
                    Some(resource),
                    "watcher woken for the same value"
                );
                model.delivered.insert(key, resource.clone());
            }
            Output::Error { kind, name, .. } => {
                assert!(
                    model.subscribed.contains(&(*kind, name.clone())),
                    "Error for unsubscribed {name}"
                );
            }
            Output::DoesNotExist { kind, name } => {
                let key = (*kind, name.clone());
                assert!(
                    model.subscribed.contains(&key),
                    "DoesNotExist for unsubscribed {name}"
                );
                assert!(
                    applied.may_delete,
                    "DoesNotExist outside a response or tick: {op:?}"
                );
                model.delivered.remove(&key);
            }
        }
    }
    assert!(acks_on_response_stream <= 1);
    // A server dropped to idle forgets its versions, and so does the model.
    for server in 0..SERVERS {
        if xds.stream_status(ServerId(server)) == StreamStatus::Idle {
            model.accepted.retain(|(s, _), _| s.0 != server);
        }
    }
    if matches!(op, Op::Tick(_)) {
        assert!(
            xds.next_deadline().is_none_or(|deadline| deadline > now),
            "tick left work due"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_inputs_keep_protocol_invariants(ops in vec(op(), 1..120)) {
        let mut xds: XdsState<String> = XdsState::new(config(), FastRng::from_seed(3)).unwrap();
        let mut model = Model::default();
        let mut now = Instant::now();
        for op in &ops {
            if let Op::Tick(millis) = op {
                now += Duration::from_millis(*millis);
            }
            let applied = apply(&mut xds, &mut model, now, op);
            check(&xds, &mut model, now, op, &applied);
        }
        // Views stay consistent with subscriptions.
        let viewed: BTreeSet<_> = xds.resources().map(|view| (view.kind, view.name.to_owned())).collect();
        prop_assert_eq!(viewed, model.subscribed);
    }
}
