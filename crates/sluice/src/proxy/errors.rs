//! Mapping proxy failures to client responses and metric labels: upstream connection
//! failures are `502`, upstream timeouts `504`, each with a JSON problem body that
//! never echoes request data.

use pingora_error::{Error, ErrorSource, ErrorType};

/// The status for a failed request; `0` means "the client is gone, send nothing".
pub fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(c) => *c,
        ConnectTimedout | ReadTimedout | WriteTimedout if e.esource() == &ErrorSource::Upstream => {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// A short, fixed description for the problem body.
pub fn detail_for(e: &Error, status: u16) -> &'static str {
    match (status, e.etype()) {
        (504, _) => "the upstream did not answer in time",
        (502, ErrorType::ConnectRefused) => "the upstream refused the connection",
        (502, ErrorType::ConnectNoRoute) => "the upstream is unreachable",
        (502, _) => "the upstream connection failed",
        (503, _) => "no healthy upstream node",
        (400, _) => "bad request",
        _ => "internal error",
    }
}

/// A bounded metric label for an upstream error.
pub fn kind_label(e: &Error) -> &'static str {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout => "connect_timeout",
        ConnectRefused => "connect_refused",
        ConnectNoRoute => "connect_no_route",
        ConnectError | SocketError | BindError => "connect_error",
        ReadTimedout => "read_timeout",
        WriteTimedout => "write_timeout",
        ReadError => "read_error",
        WriteError => "write_error",
        ConnectionClosed => "connection_closed",
        InvalidHTTPHeader | H1Error | H2Error => "protocol_error",
        _ => "other",
    }
}

/// Idempotent methods (RFC 9110 §9.2.2): safe to try on another node after a failure.
pub fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        let refused = Error::new(ErrorType::ConnectRefused).into_up();
        assert_eq!(status_for(&refused), 502);
        let timeout = Error::new(ErrorType::ReadTimedout).into_up();
        assert_eq!(status_for(&timeout), 504);
        let connect_timeout = Error::new(ErrorType::ConnectTimedout).into_up();
        assert_eq!(status_for(&connect_timeout), 504);
        let client_gone = Error::new(ErrorType::ConnectionClosed).into_down();
        assert_eq!(status_for(&client_gone), 0);
        assert_eq!(status_for(&Error::new(ErrorType::HTTPStatus(503))), 503);
        assert_eq!(kind_label(&refused), "connect_refused");
        assert!(idempotent(&http::Method::PUT) && !idempotent(&http::Method::POST));
    }
}
