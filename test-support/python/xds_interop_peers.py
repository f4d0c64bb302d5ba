"""gRPC C-core (grpcio) as the differential peer of xds-interop-client: which backends answer its calls.

Keeps one channel to --target (e.g. xds:///interop), resolved through the bootstrap in GRPC_XDS_BOOTSTRAP or
GRPC_XDS_BOOTSTRAP_CONFIG, so configuration pushes reach a running client. Prints "READY" once the channel exists;
then, for each line "N" on stdin, sends N grpc.testing.TestService/UnaryCall calls one after another (an empty
SimpleRequest, wait_for_ready, 5 s deadline) and prints one line of space-separated counts: "peer=HOSTNAME:COUNT" for
each backend that answered (its `hostname` response header, as xds-interop-server sends it) and
"error=CODE:COUNT" for each failure status. Exits when stdin closes.
"""

import argparse
import sys

import grpc


def count(unary, calls):
    counts = {}
    for _ in range(calls):
        try:
            _, call = unary.with_call(b"", timeout=5.0, wait_for_ready=True)
            key = "peer=" + dict(call.initial_metadata()).get("hostname", "?")
        except grpc.RpcError as err:
            key = "error=" + err.code().name
        counts[key] = counts.get(key, 0) + 1
    return " ".join(f"{key}:{n}" for key, n in sorted(counts.items()))


def main():
    parser = argparse.ArgumentParser(description="Counts come on stdin; see the module doc.")
    parser.add_argument("--target", required=True)
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.target)
    unary = channel.unary_unary("/grpc.testing.TestService/UnaryCall")
    print("READY", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(count(unary, int(line)), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
