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
    // rkyv on every message, for the binary protocol's payloads. The txn
    // messages are recursive (a RequestOp can hold a TxnRequest): their
    // recursive fields omit the derived bounds and the types state the
    // serializer/validator bounds by hand (rkyv's json_like_schema example).
    let rkyv = "#[derive(::rkyv::Archive, ::rkyv::Serialize, ::rkyv::Deserialize)]";
    let recursive = "#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source), deserialize_bounds(__D::Error: rkyv::rancor::Source), bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]";
    let mut config = tonic_prost_build::configure();
    for package in [
        ".etcdserverpb",
        ".mvccpb",
        ".authpb",
        ".v3lockpb",
        ".v3electionpb",
    ] {
        config = config.type_attribute(package, rkyv);
    }
    for ty in [".etcdserverpb.TxnRequest", ".etcdserverpb.TxnResponse"] {
        config = config.type_attribute(ty, recursive);
    }
    for field in [
        ".etcdserverpb.TxnRequest.success",
        ".etcdserverpb.TxnRequest.failure",
        ".etcdserverpb.TxnResponse.responses",
    ] {
        config = config.field_attribute(field, "#[rkyv(omit_bounds)]");
    }
    config
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
