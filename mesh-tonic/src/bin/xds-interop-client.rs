//! `xds-interop-client`: gRPC's xDS interop test client (../shared/XDS-FEATURES.md, "The interop contract";
//! grpc/grpc `doc/xds-test-descriptions.md`) over mesh-tonic's `Mesh`. See [`mesh_tonic::interop::client`].
//!
//! Prints `listening stats=ADDR` on stdout once the stats port is bound. Exit status: 2 for a usage error, 1 when
//! the client cannot start or, with `--fail_on_failed_rpcs`, an RPC fails after one has succeeded.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool reports on stdout and stderr

use std::io::Write;
use std::process::ExitCode;

use mesh_tonic::interop::client::{self, Command, SECURE_MODE_NOTE, USAGE};

fn main() -> ExitCode {
    let flags = match client::parse(std::env::args().skip(1)) {
        Ok(Command::Run(flags)) => flags,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("xds-interop-client: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if flags.secure_mode {
        eprintln!("xds-interop-client: note: {SECURE_MODE_NOTE}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xds-interop-client: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(client::run(flags, |address| {
        println!("listening stats={address}");
        let _ = std::io::stdout().flush();
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xds-interop-client: {error}");
            ExitCode::FAILURE
        }
    }
}
