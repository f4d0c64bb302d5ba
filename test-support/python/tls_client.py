"""A gRPC client over (mutual) TLS, run by gRPC C-core (grpcio): calls /helloworld.Greeter/SayHello once with an
empty message and prints "OK <reply>" (the reply's raw bytes as text) or "ERROR <code> <details>", then exits.
"""

import argparse

import grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="ip:port of the server")
    parser.add_argument("--ca", required=True, help="PEM roots the server certificate must chain to")
    parser.add_argument("--cert", help="PEM certificate chain to present (mutual TLS)")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--name", required=True, help="the name the server certificate must carry (DNS SAN)")
    args = parser.parse_args()

    def read(path):
        if path is None:
            return None
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca), private_key=read(args.key), certificate_chain=read(args.cert)
    )
    options = [("grpc.ssl_target_name_override", args.name)]
    with grpc.secure_channel(args.target, credentials, options=options) as channel:
        call = channel.unary_unary("/helloworld.Greeter/SayHello")
        try:
            reply = call(b"", timeout=10)
            print(f"OK {reply.decode(errors='replace')}", flush=True)
        except grpc.RpcError as error:
            print(f"ERROR {error.code().name} {error.details()}", flush=True)


if __name__ == "__main__":
    main()
