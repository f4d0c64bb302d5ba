use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::*;

fn any(tag: &str) -> Any {
    Any {
        type_url: "type.googleapis.com/test.Resource".into(),
        value: tag.as_bytes().to_vec(),
    }
}

fn snapshot(version: &str, type_url: &str, names: &[(&str, &str)]) -> Snapshot {
    let mut snapshot = Snapshot::builder().version(version).build();
    for (name, tag) in names {
        snapshot.insert(type_url, *name, any(tag));
    }
    snapshot
}

fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn names(response: &DiscoveryResponse) -> Vec<Vec<u8>> {
    response.resources.iter().map(|r| r.value.clone()).collect()
}

const CDS: &str = type_url::CLUSTER;
const EDS: &str = type_url::CLUSTER_LOAD_ASSIGNMENT;
const LDS: &str = type_url::LISTENER;

#[test]
fn explicit_names_get_only_existing_requested_resources() {
    let snap = snapshot("1", CDS, &[("a", "A"), ("b", "B"), ("c", "C")]);
    let mut stream = StreamState::new();
    let handled = stream
        .handle_request(&request(CDS, &["a", "c", "missing"], "", ""), &snap)
        .unwrap();
    assert_eq!(handled.kind, RequestKind::Initial);
    let response = handled.response.unwrap();
    assert_eq!(names(&response), vec![b"A".to_vec(), b"C".to_vec()]);
    assert_eq!(response.version_info, "1");
    assert_eq!(response.type_url, CDS);
    assert!(!response.nonce.is_empty());
    assert_eq!(response.control_plane.unwrap().identifier, CONTROL_PLANE_ID);
}

#[test]
fn names_that_do_not_exist_get_no_response_until_they_appear() {
    let mut stream = StreamState::new();
    let empty = snapshot("1", EDS, &[]);
    let handled = stream
        .handle_request(&request(EDS, &["x"], "", ""), &empty)
        .unwrap();
    assert!(handled.response.is_none());
    assert!(
        stream
            .handle_snapshot(&snapshot("2", EDS, &[("y", "Y")]))
            .is_empty()
    );
    let pushed = stream.handle_snapshot(&snapshot("3", EDS, &[("x", "X")]));
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].version_info, "3");
}

#[test]
fn ack_is_recorded_and_not_answered() {
    let snap = snapshot("1", CDS, &[("a", "A")]);
    let mut stream = StreamState::new();
    let response = stream
        .handle_request(&request(CDS, &["a"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    let handled = stream
        .handle_request(&request(CDS, &["a"], "1", &response.nonce), &snap)
        .unwrap();
    assert_eq!(
        handled.kind,
        RequestKind::Ack {
            version: "1".into()
        }
    );
    assert!(handled.response.is_none());
    let status = &stream.type_statuses()[CDS];
    assert_eq!(status.acked_version.as_deref(), Some("1"));
    assert_eq!(status.ack_count, 1);
}

#[test]
fn nack_is_recorded_and_the_same_version_is_not_resent() {
    let snap = snapshot("1", CDS, &[("a", "A")]);
    let mut stream = StreamState::new();
    let first = stream
        .handle_request(&request(CDS, &["a"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    let mut nack = request(CDS, &["a"], "", &first.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "cluster a: bad".into(),
        details: vec![],
    });
    let handled = stream.handle_request(&nack, &snap).unwrap();
    assert!(
        handled.response.is_none(),
        "a NACKed version must not be resent"
    );
    let RequestKind::Nack(recorded) = handled.kind else {
        panic!("not a NACK")
    };
    assert_eq!(recorded.rejected_version, "1");
    assert_eq!(recorded.message, "cluster a: bad");
    assert_eq!(recorded.code, 3);
    let status = &stream.type_statuses()[CDS];
    assert_eq!(status.nack_count, 1);
    assert_eq!(status.acked_version, None);
    // The same snapshot again sends nothing; a fixed one is sent.
    assert!(stream.handle_snapshot(&snap).is_empty());
    let fixed = stream.handle_snapshot(&snapshot("2", CDS, &[("a", "A2")]));
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].version_info, "2");
}

#[test]
fn stale_nonce_is_ignored_including_its_names() {
    let mut stream = StreamState::new();
    let v1 = snapshot("1", CDS, &[("a", "A"), ("b", "B")]);
    let first = stream
        .handle_request(&request(CDS, &["a"], "", ""), &v1)
        .unwrap()
        .response
        .unwrap();
    let v2 = snapshot("2", CDS, &[("a", "A2"), ("b", "B")]);
    let second = stream.handle_snapshot(&v2).pop().unwrap();
    // The client answers the first response after the second was sent: stale.
    let handled = stream
        .handle_request(&request(CDS, &["a", "b"], "1", &first.nonce), &v2)
        .unwrap();
    assert_eq!(handled.kind, RequestKind::Stale { nonce: first.nonce });
    assert!(handled.response.is_none());
    let status = &stream.type_statuses()[CDS];
    assert_eq!(
        status.subscribed.len(),
        1,
        "names of a stale request are ignored"
    );
    assert_eq!(status.stale_requests, 1);
    // The client then ACKs the latest response with the new names: served.
    let handled = stream
        .handle_request(&request(CDS, &["a", "b"], "2", &second.nonce), &v2)
        .unwrap();
    assert_eq!(
        handled.kind,
        RequestKind::Ack {
            version: "2".into()
        }
    );
    assert_eq!(handled.response.unwrap().resources.len(), 2);
}

#[test]
fn legacy_wildcard_on_cds_lasts_until_names_are_given() {
    let mut stream = StreamState::new();
    let v1 = snapshot("1", CDS, &[("a", "A"), ("b", "B")]);
    let first = stream
        .handle_request(&request(CDS, &[], "", ""), &v1)
        .unwrap()
        .response
        .unwrap();
    assert_eq!(first.resources.len(), 2);
    assert!(stream.type_statuses()[CDS].wildcard);
    // Empty ACK keeps the wildcard: a new cluster is pushed.
    stream
        .handle_request(&request(CDS, &[], "1", &first.nonce), &v1)
        .unwrap();
    let v2 = snapshot("2", CDS, &[("a", "A"), ("b", "B"), ("c", "C")]);
    let pushed = stream.handle_snapshot(&v2).pop().unwrap();
    assert_eq!(pushed.resources.len(), 3);
    // Naming resources ends the legacy wildcard.
    let narrowed = stream
        .handle_request(&request(CDS, &["a"], "2", &pushed.nonce), &v2)
        .unwrap();
    assert_eq!(narrowed.response.as_ref().unwrap().resources.len(), 1);
    let nonce = narrowed.response.unwrap().nonce;
    // Now an empty list unsubscribes from everything.
    let emptied = stream
        .handle_request(&request(CDS, &[], "2", &nonce), &v2)
        .unwrap();
    assert!(emptied.response.unwrap().resources.is_empty());
    assert!(!stream.type_statuses()[CDS].wildcard);
}

#[test]
fn wildcard_with_no_resources_still_answers() {
    let mut stream = StreamState::new();
    let response = stream
        .handle_request(&request(LDS, &[], "", ""), &snapshot("1", LDS, &[]))
        .unwrap()
        .response;
    assert!(response.unwrap().resources.is_empty());
}

#[test]
fn empty_names_on_eds_are_not_a_wildcard_but_star_is() {
    let snap = snapshot("1", EDS, &[("a", "A")]);
    let mut stream = StreamState::new();
    assert!(
        stream
            .handle_request(&request(EDS, &[], "", ""), &snap)
            .unwrap()
            .response
            .is_none()
    );
    let mut other = StreamState::new();
    let response = other
        .handle_request(&request(EDS, &["*"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    assert_eq!(response.resources.len(), 1);
}

#[test]
fn version_bump_without_change_sends_nothing_but_removal_does() {
    let mut stream = StreamState::new();
    let v1 = snapshot("1", LDS, &[("l", "L"), ("m", "M")]);
    stream
        .handle_request(&request(LDS, &["l", "m"], "", ""), &v1)
        .unwrap();
    assert!(
        stream
            .handle_snapshot(&snapshot("2", LDS, &[("l", "L"), ("m", "M")]))
            .is_empty()
    );
    let pushed = stream.handle_snapshot(&snapshot("3", LDS, &[("l", "L")]));
    assert_eq!(
        pushed.len(),
        1,
        "SotW: a removed LDS resource is announced by its absence"
    );
    assert_eq!(names(&pushed[0]), vec![b"L".to_vec()]);
}

#[test]
fn unrelated_changes_do_not_push() {
    let mut stream = StreamState::new();
    let v1 = snapshot("1", CDS, &[("a", "A"), ("b", "B")]);
    stream
        .handle_request(&request(CDS, &["a"], "", ""), &v1)
        .unwrap();
    assert!(
        stream
            .handle_snapshot(&snapshot("2", CDS, &[("a", "A"), ("b", "B2")]))
            .is_empty()
    );
}

#[test]
fn adding_a_name_answers_with_all_requested() {
    let snap = snapshot("1", EDS, &[("a", "A"), ("b", "B")]);
    let mut stream = StreamState::new();
    let first = stream
        .handle_request(&request(EDS, &["a"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    stream
        .handle_request(&request(EDS, &["a"], "1", &first.nonce), &snap)
        .unwrap();
    let second = stream
        .handle_request(&request(EDS, &["a", "b"], "1", &first.nonce), &snap)
        .unwrap();
    assert_eq!(second.response.unwrap().resources.len(), 2);
}

#[test]
fn only_requested_types_are_pushed() {
    let mut stream = StreamState::new();
    let v1 = snapshot("1", CDS, &[("a", "A")]);
    stream
        .handle_request(&request(CDS, &["a"], "", ""), &v1)
        .unwrap();
    let mut v2 = snapshot("2", CDS, &[("a", "A2")]);
    v2.insert(EDS, "a", any("E"));
    let pushed = stream.handle_snapshot(&v2);
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].type_url, CDS);
}

#[test]
fn missing_type_url_is_an_error() {
    let mut stream = StreamState::new();
    let err = stream
        .handle_request(&request("", &["a"], "", ""), &Snapshot::empty())
        .unwrap_err();
    assert_eq!(err, ProtocolError::MissingTypeUrl);
}

#[test]
fn node_is_taken_from_the_first_request_that_has_one() {
    let mut stream = StreamState::new();
    let mut req = request(CDS, &[], "", "");
    assert!(!stream.observe_node(&req));
    req.node = Some(Node {
        id: "n1".into(),
        ..Default::default()
    });
    assert!(stream.observe_node(&req));
    req.node = Some(Node {
        id: "n2".into(),
        ..Default::default()
    });
    assert!(!stream.observe_node(&req));
    assert_eq!(stream.node_id(), Some("n1"));
}

#[test]
fn nonce_from_another_stream_is_treated_as_initial() {
    let snap = snapshot("1", CDS, &[("a", "A")]);
    let mut stream = StreamState::new();
    let handled = stream
        .handle_request(&request(CDS, &["a"], "1", "old-stream-nonce"), &snap)
        .unwrap();
    assert_eq!(handled.kind, RequestKind::Initial);
    assert!(handled.response.is_some());
}

#[test]
fn nonces_are_unique_per_stream() {
    let mut stream = StreamState::new();
    let snap = {
        let mut s = snapshot("1", CDS, &[("a", "A")]);
        s.insert(EDS, "a", any("E"));
        s
    };
    let a = stream
        .handle_request(&request(CDS, &["a"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    let b = stream
        .handle_request(&request(EDS, &["a"], "", ""), &snap)
        .unwrap()
        .response
        .unwrap();
    assert_ne!(a.nonce, b.nonce);
}
