"""A gRPC backend for interop tests, served by gRPC C-core (grpcio).

Answers /helloworld.Greeter/SayHello (or the methods given with --method) with its own server id (raw bytes, no
protobuf), so a client can count which backend served each call. Prints "READY <port>" on stdout once it listens, and
exits when stdin closes (so it never outlives the test that started it).
"""

import argparse
import sys
import threading
from concurrent import futures

import grpc


class Greeter(grpc.GenericRpcHandler):
    def __init__(self, server_id, methods):
        self._reply = server_id.encode()
        self._methods = frozenset(methods)

    def service(self, handler_call_details):
        if handler_call_details.method in self._methods:
            return grpc.unary_unary_rpc_method_handler(lambda request, context: self._reply)
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True, help="ip:port to listen on (port 0 picks one)")
    parser.add_argument("--server-id", required=True)
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        help="a method path to answer the same way, repeatable (default: /helloworld.Greeter/SayHello only)",
    )
    args = parser.parse_args()
    methods = args.methods or ["/helloworld.Greeter/SayHello"]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((Greeter(args.server_id, methods),))
    port = server.add_insecure_port(args.address)
    if port == 0:
        print(f"ERROR cannot listen on {args.address}", flush=True)
        sys.exit(1)
    server.start()
    print(f"READY {port}", flush=True)
    # Exit when the parent closes our stdin (or dies).
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop(0)), daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
