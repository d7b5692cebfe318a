//! The SDK's one error type and its retry classification.

use std::fmt;

/// The gRPC metadata key in which the service sends the AWS error `__type`.
pub const ERROR_TYPE_METADATA_KEY: &str = "x-kms-error-type";

/// AWS error types that are worth retrying: the request may succeed on another attempt or
/// another front. Everything else (validation, not found, access denied, invalid state, ...)
/// fails the same way every time and is never retried.
const RETRYABLE_TYPES: &[&str] = &[
    "DependencyTimeoutException",
    "KMSInternalException",
    // AWS SDKs retry throttling with backoff too; a throttled request had no effect.
    "ThrottlingException",
];

/// An error from a keyraft call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service refused the request with an AWS error (`x-kms-error-type`).
    #[error("{error_type}: {message}")]
    Service {
        /// The AWS `__type`, e.g. `NotFoundException`.
        error_type: String,
        /// The service's message.
        message: String,
        /// The gRPC status code it came with.
        code: tonic::Code,
    },
    /// No usable answer from the service: connection refused or reset, TLS failure, timeout,
    /// or a gRPC status that did not come from keyraft (no `x-kms-error-type`).
    #[error("transport error ({code:?}): {message}")]
    Transport {
        /// The gRPC status code (Unavailable for connection failures).
        code: tonic::Code,
        /// What went wrong.
        message: String,
    },
    /// The client could not be configured (bad endpoint, unreadable or invalid PEM, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The AWS `__type` string for service errors (`NotFoundException`, `AccessDeniedException`,
    /// ...). Errors raised on the client side report `"TransportError"` (no answer from the
    /// service) or `"ConfigError"` (the client could not be set up).
    pub fn error_type(&self) -> &str {
        match self {
            Error::Service { error_type, .. } => error_type,
            Error::Transport { .. } => "TransportError",
            Error::Config(_) => "ConfigError",
        }
    }

    /// The human-readable message, without the type.
    pub fn message(&self) -> &str {
        match self {
            Error::Service { message, .. } | Error::Transport { message, .. } => message,
            Error::Config(m) => m,
        }
    }

    /// The gRPC code, if the error came from a call.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Service { code, .. } | Error::Transport { code, .. } => Some(*code),
            Error::Config(_) => None,
        }
    }

    /// Whether another attempt may succeed: connection failures, `Unavailable`, timeouts,
    /// `DependencyTimeoutException`, `KMSInternalException`, `ThrottlingException`. Never
    /// validation, not-found, access-denied or state errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Service {
                error_type, code, ..
            } => {
                *code == tonic::Code::Unavailable || RETRYABLE_TYPES.contains(&error_type.as_str())
            }
            Error::Transport { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::ResourceExhausted
            ),
            Error::Config(_) => false,
        }
    }

    /// Whether the next attempt should go to another front: the one we used did not answer,
    /// or answered that it cannot serve right now.
    pub(crate) fn should_fail_over(&self) -> bool {
        match self {
            Error::Service { code, .. } => *code == tonic::Code::Unavailable,
            Error::Transport { .. } => self.is_retryable(),
            Error::Config(_) => false,
        }
    }

    pub(crate) fn config(msg: impl fmt::Display) -> Self {
        Error::Config(msg.to_string())
    }
}

/// The gRPC code keyraft uses for an AWS error type (the server's mapping, mirrored so that
/// per-item batch errors classify like whole-call errors).
pub(crate) fn code_for_error_type(error_type: &str) -> tonic::Code {
    use tonic::Code;
    match error_type {
        "NotFoundException" => Code::NotFound,
        "AlreadyExistsException" => Code::AlreadyExists,
        "AccessDeniedException" => Code::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "UnauthenticatedException" => Code::Unauthenticated,
        "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
            Code::FailedPrecondition
        }
        "LimitExceededException" | "ThrottlingException" => Code::ResourceExhausted,
        "DependencyTimeoutException" => Code::Unavailable,
        "KMSInternalException" => Code::Internal,
        "UnsupportedOperationException" | "UnknownOperationException" => Code::Unimplemented,
        "NotAuthorizedException" => Code::PermissionDenied,
        "DryRunOperationException" => Code::FailedPrecondition,
        "RequestEntityTooLargeException" => Code::ResourceExhausted,
        "ConflictException" => Code::Aborted,
        _ => Code::InvalidArgument,
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let error_type = status
            .metadata()
            .get(ERROR_TYPE_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        match error_type {
            Some(error_type) => Error::Service {
                error_type,
                message: status.message().to_owned(),
                code: status.code(),
            },
            None => {
                // tonic puts the underlying cause (e.g. "tcp connect error") in the source, and
                // only a generic text in the message.
                let mut message = status.message().to_owned();
                let mut source = std::error::Error::source(&status);
                while let Some(s) = source {
                    push_cause(&mut message, &s.to_string());
                    source = s.source();
                }
                Error::Transport {
                    code: status.code(),
                    message,
                }
            }
        }
    }
}

/// Appends a cause to an error message unless it only repeats what is already there (tonic
/// and hyper nest errors that print the same text at several levels).
fn push_cause(message: &mut String, cause: &str) {
    if cause.is_empty() || message.contains(cause) {
        return;
    }
    if !message.is_empty() {
        message.push_str(": ");
    }
    message.push_str(cause);
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            push_cause(&mut message, &s.to_string());
            source = s.source();
        }
        Error::Transport {
            code: tonic::Code::Unavailable,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(error_type: &str, code: tonic::Code) -> Error {
        let mut status = tonic::Status::new(code, "msg");
        status
            .metadata_mut()
            .insert(ERROR_TYPE_METADATA_KEY, error_type.parse().unwrap());
        Error::from(status)
    }

    #[test]
    fn status_with_error_type_metadata_becomes_a_service_error() {
        let e = service("NotFoundException", tonic::Code::NotFound);
        assert_eq!(e.error_type(), "NotFoundException");
        assert_eq!(e.message(), "msg");
        assert_eq!(e.code(), Some(tonic::Code::NotFound));
    }

    #[test]
    fn status_without_error_type_is_a_transport_error() {
        let e = Error::from(tonic::Status::unavailable("tcp connect error"));
        assert!(matches!(e, Error::Transport { .. }));
        assert_eq!(e.error_type(), "TransportError");
        assert!(e.is_retryable());
        assert!(e.should_fail_over());
    }

    #[test]
    fn retries_only_transient_service_errors() {
        for (t, code) in [
            ("DependencyTimeoutException", tonic::Code::Unavailable),
            ("KMSInternalException", tonic::Code::Internal),
            ("ThrottlingException", tonic::Code::ResourceExhausted),
        ] {
            assert!(service(t, code).is_retryable(), "{t} should be retried");
        }
        for (t, code) in [
            ("ValidationException", tonic::Code::InvalidArgument),
            ("NotFoundException", tonic::Code::NotFound),
            ("AccessDeniedException", tonic::Code::PermissionDenied),
            ("DisabledException", tonic::Code::FailedPrecondition),
            ("KMSInvalidStateException", tonic::Code::FailedPrecondition),
            ("InvalidCiphertextException", tonic::Code::InvalidArgument),
            ("AlreadyExistsException", tonic::Code::AlreadyExists),
            ("UnrecognizedClientException", tonic::Code::Unauthenticated),
        ] {
            assert!(!service(t, code).is_retryable(), "{t} must not be retried");
        }
    }

    #[test]
    fn internal_error_is_retried_on_the_same_front_unavailable_fails_over() {
        assert!(!service("KMSInternalException", tonic::Code::Internal).should_fail_over());
        assert!(service("DependencyTimeoutException", tonic::Code::Unavailable).should_fail_over());
    }

    #[test]
    fn repeated_causes_are_not_repeated_in_the_message() {
        let mut m = String::from("tcp connect error");
        push_cause(&mut m, "tcp connect error");
        push_cause(&mut m, "Connection refused (os error 111)");
        assert_eq!(m, "tcp connect error: Connection refused (os error 111)");
    }

    #[test]
    fn batch_item_error_types_classify_like_whole_call_errors() {
        assert_eq!(
            code_for_error_type("DependencyTimeoutException"),
            tonic::Code::Unavailable
        );
        assert_eq!(
            code_for_error_type("NotFoundException"),
            tonic::Code::NotFound
        );
        assert_eq!(
            code_for_error_type("ValidationException"),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn transport_errors_that_are_not_transient_are_not_retried() {
        for code in [
            tonic::Code::Unimplemented,
            tonic::Code::Unauthenticated,
            tonic::Code::InvalidArgument,
        ] {
            let e = Error::from(tonic::Status::new(code, "x"));
            assert!(!e.is_retryable(), "{code:?}");
        }
        assert!(!Error::config("bad").is_retryable());
    }
}
