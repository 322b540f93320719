"""Decodes an OTLP/HTTP protobuf body (an ExportTraceServiceRequest) with the official
OpenTelemetry bindings (PyPI opentelemetry-proto) and prints its spans as JSON, ids in hex.
tests/product.rs feeds it what `sentio serve` exported with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf;
tests/otlp_grpc_receiver.py prints what it received in the same shape.

stdin: the raw body. stdout: {"services": [...], "spans": [{"trace_id", "span_id",
"parent_span_id", "name", "kind", "status_code", "start", "end", "attributes": {...}}]}
"""
import json
import sys

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def summary(request):
    """The services and spans of one ExportTraceServiceRequest, as plain JSON values."""
    services, spans = [], []
    for resource_spans in request.resource_spans:
        for attribute in resource_spans.resource.attributes:
            if attribute.key == "service.name":
                services.append(attribute.value.string_value)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "status_code": span.status.code,
                    "start": span.start_time_unix_nano,
                    "end": span.end_time_unix_nano,
                    "attributes": {a.key: a.value.string_value for a in span.attributes},
                })
    return {"services": services, "spans": spans}


if __name__ == "__main__":
    request = ExportTraceServiceRequest()
    request.ParseFromString(sys.stdin.buffer.read())
    json.dump(summary(request), sys.stdout)
