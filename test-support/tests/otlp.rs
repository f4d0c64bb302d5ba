//! The test OTLP receiver is checked against a real exporter, the OpenTelemetry Python SDK: what the SDK sends
//! (resource, span names, attributes, parent links, a counter's unit, attributes and sum) is what the receiver
//! reports, so tests built on the receiver check what a real collector would see.

use std::process::Command;
use std::time::Duration;

use mesh_test_support::otlp::{OtlpReceiver, attribute, proto};
use mesh_test_support::{otel_python, script};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_records_what_the_python_sdk_exports() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let python = otel_python().unwrap();
        Command::new(python)
            .arg(script("otel_sender.py"))
            .args(["--endpoint", &endpoint])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "otel_sender.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "TRACE <id> PARENT <id> CHILD <id>"
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let [_, trace_id, _, parent_id, _, child_id] = words[..] else {
        panic!("unexpected sender output: {stdout}");
    };

    let spans = receiver
        .wait_for_spans(WAIT, |spans| spans.len() >= 2)
        .await
        .unwrap();
    let parent = spans.iter().find(|s| s.name() == "parent").unwrap();
    let child = spans.iter().find(|s| s.name() == "child").unwrap();
    assert_eq!(parent.trace_id(), trace_id);
    assert_eq!(child.trace_id(), trace_id);
    assert_eq!(parent.span_id(), parent_id);
    assert_eq!(child.span_id(), child_id);
    assert_eq!(parent.parent_span_id(), "", "the parent is a root span");
    assert_eq!(
        child.parent_span_id(),
        parent_id,
        "the child links to its parent"
    );
    assert_eq!(
        parent.span.kind,
        proto::trace::v1::span::SpanKind::Client as i32
    );
    assert_eq!(parent.attribute("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(child.attribute("attempt").as_deref(), Some("1"));
    assert_eq!(parent.scope, "otel-sender");
    assert_eq!(
        parent.resource_attribute("service.name").as_deref(),
        Some("python-sender")
    );
    assert_eq!(
        parent
            .resource_attribute("deployment.environment")
            .as_deref(),
        Some("test")
    );
    assert!(parent.span.end_time_unix_nano >= parent.span.start_time_unix_nano);

    receiver
        .wait_for_metrics(WAIT, |metrics| {
            metrics.iter().any(|m| m.metric.name == "sender.calls")
        })
        .await
        .unwrap();
    let calls = receiver.latest_metric("sender.calls").unwrap();
    assert_eq!(calls.metric.unit, "{call}");
    assert_eq!(calls.metric.description, "calls sent");
    assert_eq!(
        attribute(&calls.resource, "service.name").as_deref(),
        Some("python-sender")
    );
    let Some(proto::metrics::v1::metric::Data::Sum(sum)) = &calls.metric.data else {
        panic!("sender.calls is not a sum: {:?}", calls.metric.data);
    };
    assert!(sum.is_monotonic);
    let [point] = &sum.data_points[..] else {
        panic!("one series expected: {:?}", sum.data_points);
    };
    assert_eq!(
        attribute(&point.attributes, "grpc.method").as_deref(),
        Some("helloworld.Greeter/SayHello")
    );
    assert_eq!(
        point.value,
        Some(proto::metrics::v1::number_data_point::Value::AsInt(3))
    );
}
