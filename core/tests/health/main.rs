//! gRPC's standard health service (`grpc.health.v1.Health`), which etcd
//! registers and load balancers and client libraries probe: SERVING on a
//! member that has a leader.

#[path = "../common/mod.rs"]
mod common;

use common::{Server, tempdir};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[test]
fn grpc_health_check_reports_serving() {
    let tmp = tempdir();
    let s = Server::start(&tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut h = HealthClient::new(s.channel().await);
        let r = h
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    });
}
