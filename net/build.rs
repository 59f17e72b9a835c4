//! Compiles our etcd v3 `.proto` files (under `proto/`) into prost messages
//! and tonic clients and servers. protox parses them in-process, so no
//! `protoc` is needed on any machine.
//!
//! The same descriptors feed pbjson-build, which writes serde impls with
//! the proto3 JSON mapping (`<package>.serde.rs`) for the HTTP/JSON gateway:
//! proto field names kept on output (`create_revision`, as etcd's gateway
//! prints them), unknown fields ignored on input (etcd's gateway ignores
//! them too).

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
    let descriptors = prost::Message::encode_to_vec(&fds);
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
