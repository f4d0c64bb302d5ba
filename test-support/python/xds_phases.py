"""gRPC C-core (grpcio) as a long-lived xDS client that sends calls in phases on command, for interop tests.

A test that changes the management server's config between phases needs one channel to see the change arrive (a new
client process would simply start with the new config). This client keeps one channel to --target (e.g.
xds:///greeter), resolved through the bootstrap in GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG.

It prints "READY" once the channel exists, then reads one JSON command per stdin line and answers each with one JSON
line on stdout. It exits when stdin closes.

Command (every key optional):
  {"calls": 100,                               calls to count
   "method": "/helloworld.Greeter/SayHello",   the method path; requests and replies are raw bytes
   "metadata": {"x-canary": "true"},           request headers
   "wait_for": ["backend-a", "backend-b"],     first call until one of these servers answers (any server when
                                               absent or empty): a config change arrives asynchronously
   "wait_timeout": 20.0,                       seconds for that wait
   "warmup": true,                             false: no wait at all (for calls expected to fail)
   "call_timeout": 5.0}                        seconds per call

Result:
  {"by_server": {server_id: count}, "errors": {status_code_name: count}, "first_error": "CODE: details" or null,
   "warmup": {"by_server": {...}, "errors": {...}}, "waited": seconds}
where "warmup" counts the calls made while waiting. When the wait times out the counted calls are skipped and
"timeout" holds the last reply or error seen.
"""

import argparse
import json
import sys
import time

import grpc


def bump(counts, key):
    counts[key] = counts.get(key, 0) + 1


def run_phase(channel, callables, command):
    method = command.get("method", "/helloworld.Greeter/SayHello")
    call = callables.get(method)
    if call is None:
        call = callables[method] = channel.unary_unary(method)
    metadata = list(command.get("metadata", {}).items())
    wanted = set(command.get("wait_for", []))
    call_timeout = float(command.get("call_timeout", 5.0))
    started = time.monotonic()
    deadline = started + float(command.get("wait_timeout", 20.0))
    warmup = {"by_server": {}, "errors": {}}
    last_seen = None
    while command.get("warmup", True):
        left = deadline - time.monotonic()
        if left <= 0:
            return {"by_server": {}, "errors": {}, "warmup": warmup, "waited": time.monotonic() - started,
                    "timeout": last_seen}
        try:
            # wait_for_ready: while the config is missing or the picked priority connects, queue instead of failing.
            server = call(b"hi", timeout=min(call_timeout, left), wait_for_ready=True, metadata=metadata).decode()
            bump(warmup["by_server"], server)
            last_seen = f"reply from {server}"
            if not wanted or server in wanted:
                break
            # Polling a change that has not arrived yet: do not spin.
            time.sleep(0.01)
        except grpc.RpcError as err:
            bump(warmup["errors"], err.code().name)
            last_seen = f"{err.code().name}: {err.details()}"
            time.sleep(0.05)
    waited = time.monotonic() - started

    by_server = {}
    errors = {}
    first_error = None
    for _ in range(int(command.get("calls", 100))):
        try:
            bump(by_server, call(b"hi", timeout=call_timeout, metadata=metadata).decode())
        except grpc.RpcError as err:
            bump(errors, err.code().name)
            if first_error is None:
                first_error = f"{err.code().name}: {err.details()}"
    return {"by_server": by_server, "errors": errors, "first_error": first_error, "warmup": warmup,
            "waited": waited}


def main():
    parser = argparse.ArgumentParser(description="Commands come on stdin; see the module doc.")
    parser.add_argument("--target", required=True)
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.target)
    callables = {}
    print("READY", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        print(json.dumps(run_phase(channel, callables, json.loads(line))), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
