"""Sends one trace (a parent span and a child span) and one counter over OTLP/gRPC with the OpenTelemetry Python
SDK, then prints the ids the receiver should see:

    TRACE <trace id hex> PARENT <parent span id hex> CHILD <child span id hex>

Used by test-support/tests/otlp.rs to check the test OTLP receiver against a real exporter.
"""

import argparse

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    args = parser.parse_args()

    resource = Resource.create({"service.name": "python-sender", "deployment.environment": "test"})

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint, insecure=True)))
    tracer = tracer_provider.get_tracer("otel-sender")
    with tracer.start_as_current_span("parent", kind=SpanKind.CLIENT) as parent:
        parent.set_attribute("rpc.system", "grpc")
        with tracer.start_as_current_span("child") as child:
            child.set_attribute("attempt", 1)
    tracer_provider.shutdown()

    # An export interval longer than the test: the one export is the one shutdown forces.
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=args.endpoint, insecure=True), export_interval_millis=600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("otel-sender")
    counter = meter.create_counter("sender.calls", unit="{call}", description="calls sent")
    counter.add(2, {"grpc.method": "helloworld.Greeter/SayHello"})
    counter.add(1, {"grpc.method": "helloworld.Greeter/SayHello"})
    meter_provider.shutdown()

    context = parent.get_span_context()
    print(
        "TRACE %032x PARENT %016x CHILD %016x"
        % (context.trace_id, context.span_id, child.get_span_context().span_id),
        flush=True,
    )


if __name__ == "__main__":
    main()
