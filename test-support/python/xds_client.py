"""gRPC C-core (grpcio) as an xDS client, for interop tests.

Resolves --target (e.g. xds:///greeter) through the xDS management server named by the bootstrap in
GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG, sends --calls unary calls to /helloworld.Greeter/SayHello and prints
one JSON line: {"by_server": {server_id: count}, "errors": {code: count}}.

With --xds-credentials, the channel uses gRPC's xDS credentials (gRFC A29) with plaintext fallback: clusters carrying
an UpstreamTlsContext are called over (mutual) TLS with certificates from the bootstrap's certificate_providers.

Waits up to --ready-timeout seconds for the first call to succeed (the config arrives asynchronously), then sends the
rest with --call-timeout each.
"""

import argparse
import json
import sys
import time

import grpc
import grpc.experimental


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--call-timeout", type=float, default=5.0)
    parser.add_argument("--metadata", action="append", default=[], help="key=value, repeatable")
    parser.add_argument("--xds-credentials", action="store_true", help="xDS credentials, insecure fallback")
    args = parser.parse_args()
    metadata = [tuple(kv.split("=", 1)) for kv in args.metadata]

    if args.xds_credentials:
        credentials = grpc.xds_channel_credentials(
            fallback_credentials=grpc.experimental.insecure_channel_credentials()
        )
        channel = grpc.secure_channel(args.target, credentials)
    else:
        channel = grpc.insecure_channel(args.target)
    say_hello = channel.unary_unary("/helloworld.Greeter/SayHello")
    by_server = {}
    errors = {}

    deadline = time.monotonic() + args.ready_timeout
    first_error = None
    while True:
        try:
            reply = say_hello(b"hi", timeout=args.call_timeout, wait_for_ready=True, metadata=metadata)
            by_server[reply.decode()] = by_server.get(reply.decode(), 0) + 1
            break
        except grpc.RpcError as err:
            first_error = f"{err.code().name}: {err.details()}"
            if time.monotonic() > deadline:
                print(json.dumps({"by_server": {}, "errors": {"NOT_READY": 1}, "detail": first_error}), flush=True)
                sys.exit(2)
            time.sleep(0.2)

    for _ in range(args.calls - 1):
        try:
            reply = say_hello(b"hi", timeout=args.call_timeout, metadata=metadata)
            by_server[reply.decode()] = by_server.get(reply.decode(), 0) + 1
        except grpc.RpcError as err:
            errors[err.code().name] = errors.get(err.code().name, 0) + 1
    print(json.dumps({"by_server": by_server, "errors": errors}), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
