"""An OTLP/gRPC collector for the tracing tests: the official TraceService (PyPI grpcio and
opentelemetry-proto's generated service) on 127.0.0.1, on a free port.

stdout: the port on the first line, then one JSON line per Export call, in the shape of
tests/otlp_decode.py.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from otlp_decode import summary


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        received = summary(request)
        print(json.dumps(received), flush=True)
        return trace_service_pb2.ExportTraceServiceResponse()


server = grpc.server(ThreadPoolExecutor(max_workers=2))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
