//! Errors as etcd 3.5's grpc-gateway writes them.
//!
//! A unary call that fails answers with the HTTP status mapped from the
//! gRPC code and the body `{"error":msg,"code":n,"message":msg}`, e.g. 400
//! and `{"error":"etcdserver: key is not provided","code":3,"message":
//! "etcdserver: key is not provided"}` (checked against etcd 3.5.1). A
//! stream that fails after it started writes one last line,
//! `{"error":{"grpc_code":n,"http_code":h,"message":msg,"http_status":text}}`.

use axum::body::Body;
use http::{HeaderValue, StatusCode, header};
use tonic::{Code, Status};

/// grpc-gateway v1's `HTTPStatusFromCode`: note `FailedPrecondition` and
/// `OutOfRange` are 400 (etcd answers a compacted or future revision with
/// 400), `Canceled` is 408.
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON string literal (quotes and escapes included).
fn json_str(s: &str) -> String {
    // Serializing a str to JSON cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The body of a failed unary call.
pub(crate) fn error_body(code: Code, message: &str) -> String {
    let m = json_str(message);
    format!(r#"{{"error":{m},"code":{},"message":{m}}}"#, code as i32)
}

/// The full response of a failed unary call.
pub(crate) fn error_response(status: &Status) -> http::Response<Body> {
    error_with(status.code(), status.message())
}

pub(crate) fn error_with(code: Code, message: &str) -> http::Response<Body> {
    let mut resp = http::Response::new(Body::from(error_body(code, message)));
    *resp.status_mut() = http_status(code);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The last line of a stream that failed (newline included).
pub(crate) fn stream_error_line(status: &Status) -> String {
    let http = http_status(status.code());
    format!(
        "{{\"error\":{{\"grpc_code\":{},\"http_code\":{},\"message\":{},\"http_status\":{}}}}}\n",
        status.code() as i32,
        http.as_u16(),
        json_str(status.message()),
        json_str(http.canonical_reason().unwrap_or("")),
    )
}

/// A plain-text answer with `status` (Go's `http.Error` shape: text/plain,
/// nosniff), for refusals and the 404 fallback.
pub(crate) fn text_response(status: StatusCode, text: impl Into<Body>) -> http::Response<Body> {
    let mut r = http::Response::new(text.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Whether a request is gRPC (by its content type), not HTTP/1 JSON.
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_body_shape() {
        assert_eq!(
            error_body(Code::InvalidArgument, "etcdserver: key is not provided"),
            r#"{"error":"etcdserver: key is not provided","code":3,"message":"etcdserver: key is not provided"}"#
        );
        assert_eq!(
            error_body(Code::Unknown, "a \"q\""),
            r#"{"error":"a \"q\"","code":2,"message":"a \"q\""}"#
        );
    }

    #[test]
    fn statuses_as_etcd_3_5_1() {
        // Seen from etcd 3.5.1's gateway: a missing key (3), a future or
        // compacted revision (11), an unknown lease (5).
        assert_eq!(http_status(Code::InvalidArgument), 400);
        assert_eq!(http_status(Code::OutOfRange), 400);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::Unknown), 500);
        assert_eq!(http_status(Code::Unavailable), 503);
    }

    #[test]
    fn stream_error_line_shape() {
        let s = Status::new(Code::OutOfRange, "x");
        assert_eq!(
            stream_error_line(&s),
            "{\"error\":{\"grpc_code\":11,\"http_code\":400,\"message\":\"x\",\"http_status\":\"Bad Request\"}}\n"
        );
    }
}
