"""A gRPC backend behind TLS that requires a client certificate, served by gRPC C-core (grpcio).

Answers /helloworld.Greeter/SayHello with the identities gRPC authenticated the client as (its certificate's subject
alternative names, comma-separated; raw bytes, no protobuf), so a test sees which certificate the client presented.
Prints "READY <port>" on stdout once it listens, and exits when stdin closes.
"""

import argparse
import sys
import threading
from concurrent import futures

import grpc


class Greeter(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        if handler_call_details.method == "/helloworld.Greeter/SayHello":
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: b",".join(context.peer_identities() or [b"-"])
            )
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True, help="ip:port to listen on (port 0 picks one)")
    parser.add_argument("--cert", required=True, help="PEM certificate chain of the server")
    parser.add_argument("--key", required=True, help="PEM private key of the server")
    parser.add_argument("--ca", required=True, help="PEM roots that client certificates must chain to")
    args = parser.parse_args()

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_server_credentials(
        [(read(args.key), read(args.cert))], root_certificates=read(args.ca), require_client_auth=True
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((Greeter(),))
    port = server.add_secure_port(args.address, credentials)
    if port == 0:
        print(f"ERROR cannot listen on {args.address}", flush=True)
        sys.exit(1)
    server.start()
    print(f"READY {port}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop(0)), daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
