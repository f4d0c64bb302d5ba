//! How `traceparent` goes out on the wire, from the telemetry's own spans and from
//! [`W3cPropagator`](mesh_tonic::telemetry::W3cPropagator) (the context of `tracing` spans, for channels without
//! the telemetry's spans): the header blocks of calls through a mesh channel, read off the connection by a
//! forwarding proxy and walked with a minimal HPACK decoder (`support::hpack`).
//!
//! The connection (mesh-tower's) lets the first `traceparent` it sends go out indexable, so that its HPACK table
//! holds the name; the test's proxy sees each connection from its start.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use mesh_test_support::otlp::OtlpReceiver;
use mesh_tonic::Mesh;
use mesh_tonic::telemetry::{Telemetry, TelemetryConfig};
use mesh_tonic::testing::GreeterClient;
use support::hpack::{Literal, Proxy, Sent, traceparent_of_each};
use support::{backend, call};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// How many calls the test makes: few enough that the connection's table never evicts (see `support::hpack`).
const CALLS: usize = 16;

/// The first value teaches the connection's table the name, which every later one refers to, its value never
/// indexed.
fn taught_once(sent: &[Sent]) {
    assert_eq!(sent.len(), CALLS);
    assert_eq!(
        sent[0],
        Sent {
            literal: Literal::Indexed,
            name_indexed: false
        }
    );
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
}

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

    taught_once(&traceparent_of_each(&proxy.only_connection()));
    drop(client);
    telemetry.shutdown().await.unwrap();
    drop(mesh);
    drop(proxy);
    replica.shutdown().await.unwrap();
}

/// As the telemetry's spans' values: the first teaches the connection's table the name, the others refer to it
/// and are never indexed. Without that, every value was inserted into the table (and every later one compared
/// with each of them).
#[tokio::test(flavor = "current_thread")]
async fn the_propagators_traceparent_goes_out_with_an_indexed_name_and_a_value_never_indexed() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let proxy = Proxy::start(replica.address()).await;
    let telemetry = Telemetry::start(&TelemetryConfig::otlp(receiver.endpoint())).unwrap();
    // This thread only (the runtime is single-threaded).
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(telemetry.tracing_layer()),
    );
    let mesh = Mesh::builder()
        .without_xds()
        .mesh_options(support::options().with_propagator(telemetry.propagator()))
        .wait_for_ready(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let mut client =
        GreeterClient::new(mesh.channel(&format!("dns:///{}", proxy.address)).unwrap());
    for call_number in 0..CALLS {
        // Each call in a span of its own: the propagator writes that span's context.
        let reply = call(&mut client)
            .instrument(tracing::info_span!("checkout", call_number))
            .await;
        assert_eq!(reply.unwrap(), "a");
    }

    taught_once(&traceparent_of_each(&proxy.only_connection()));
    drop(client);
    drop(mesh);
    drop(proxy);
    telemetry.shutdown().await.unwrap();
    replica.shutdown().await.unwrap();
}
