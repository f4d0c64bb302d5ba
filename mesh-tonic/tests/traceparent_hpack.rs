//! How the telemetry's spans send `traceparent` on the wire: the header blocks of calls through a mesh channel
//! with telemetry on, read off the connection by a forwarding proxy and walked with a minimal HPACK decoder
//! (`support::hpack`).
//!
//! The connection (mesh-tower's) lets the first `traceparent` it sends go out indexable, so that its HPACK table
//! holds the name; the test's proxy sees each connection from its start.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use mesh_test_support::otlp::OtlpReceiver;
use mesh_tonic::Mesh;
use mesh_tonic::testing::GreeterClient;
use support::hpack::{Literal, Proxy, Sent, traceparent_of_each};
use support::{backend, call};

/// How many calls the test makes: few enough that the connection's table never evicts (see `support::hpack`).
const CALLS: usize = 16;

/// A connection's first `traceparent` is sent indexable, so its table learns the name; every value after it is
/// sent as a literal never indexed that refers to that name, so values do not fill the table and the name is not
/// sent again. Without the first value indexable, every request spells out the name.
#[tokio::test(flavor = "current_thread")]
async fn traceparent_goes_out_with_an_indexed_name_and_a_value_never_indexed() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let proxy = Proxy::start(replica.address()).await;
    let mesh = Mesh::builder()
        .without_xds()
        .mesh_options(support::options())
        .wait_for_ready(Duration::from_secs(2))
        .with_otlp(receiver.endpoint())
        .build()
        .await
        .unwrap();
    let telemetry = mesh.telemetry().unwrap();
    let mut client =
        GreeterClient::new(mesh.channel(&format!("dns:///{}", proxy.address)).unwrap());
    for _ in 0..CALLS {
        assert_eq!(call(&mut client).await.unwrap(), "a");
    }

    let sent = traceparent_of_each(&proxy.only_connection());
    assert_eq!(sent.len(), CALLS);
    // The first teaches the table the name, ...
    assert_eq!(
        sent[0],
        Sent {
            literal: Literal::Indexed,
            name_indexed: false
        }
    );
    // ... which every later one refers to, its value never indexed.
    for (call, field) in sent.iter().enumerate().skip(1) {
        assert_eq!(
            *field,
            Sent {
                literal: Literal::NeverIndexed,
                name_indexed: true
            },
            "call {call}: {sent:?}"
        );
    }
    drop(client);
    telemetry.shutdown().await.unwrap();
    drop(mesh);
    drop(proxy);
    replica.shutdown().await.unwrap();
}
