//! Compiles our etcd v3 `.proto` files (under `proto/`) into prost messages
//! and tonic clients and servers. protox parses them in-process, so no
//! `protoc` is needed on any machine.

/// Every file, relative to the include root `proto/`; imports are resolved
/// from there too (`import "mvccpb/kv.proto"`).
const PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for file in PROTOS {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
