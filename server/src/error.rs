//! The server's one error type: every layer inside (admission, the executor,
//! the store, the cache, sources, jobs) returns an [`Error`] of a category;
//! only the edges turn it into something a client reads -- a `tonic::Status`
//! for gRPC ([`From<Error> for Status`](Error)) and a JSON answer for HTTP
//! ([`Error::http_status`], [`Error::code_name`]). No layer looks at another's
//! message text to decide what happened.

use std::time::Duration;

use nlimage_core::CoreError;
use tonic::{Code, Status};

/// What went wrong, by what the client can do about it. The message is the
/// full text a client reads (lowercase, naming the offending value, with a
/// hint where there is one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names something impossible.
    #[error("{0}")]
    InvalidInput(String),
    /// The image, job or result does not exist.
    #[error("{0}")]
    NotFound(String),
    /// What the request would create exists already, differently.
    #[error("{0}")]
    AlreadyExists(String),
    /// No or a wrong bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A signature or an address policy refuses the request.
    #[error("{0}")]
    PermissionDenied(String),
    /// No worker or memory came free within the queue's time, or the queue
    /// is full: retry soon.
    #[error("{0}")]
    Busy(String),
    /// The caller's rate bucket is empty for `wait`.
    #[error("{message}")]
    RateLimited {
        /// The full message.
        message: String,
        /// How long until a request would pass.
        wait: Duration,
    },
    /// The request is over a limit; `flag` is the setting that raises it,
    /// when one does (a size no setting could allow names none).
    #[error("{message}")]
    TooLarge {
        /// The full message (it names the flag too).
        message: String,
        /// The flag that raises the limit.
        flag: Option<&'static str>,
    },
    /// Something the request needs is away (the store, the job database, a
    /// remote source, the server draining): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A remote source answered, but not with something usable.
    #[error("{0}")]
    Precondition(String),
    /// The request's deadline passed; its work was stopped.
    #[error("{0}")]
    Deadline(String),
    /// The client sent nothing for too long (a stalled upload or request).
    #[error("{0}")]
    Stalled(String),
    /// The client went away or the work was cancelled.
    #[error("{0}")]
    Cancelled(String),
    /// A fault of the server's own.
    #[error("{0}")]
    Internal(String),
}

/// The server's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::InvalidInput`] with `msg`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    /// [`Error::NotFound`] with `msg`.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }

    /// [`Error::AlreadyExists`] with `msg`.
    pub fn already_exists(msg: impl Into<String>) -> Self {
        Error::AlreadyExists(msg.into())
    }

    /// [`Error::PermissionDenied`] with `msg`.
    pub fn permission_denied(msg: impl Into<String>) -> Self {
        Error::PermissionDenied(msg.into())
    }

    /// [`Error::Unavailable`] with `msg`.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Error::Unavailable(msg.into())
    }

    /// [`Error::Precondition`] with `msg`.
    pub fn precondition(msg: impl Into<String>) -> Self {
        Error::Precondition(msg.into())
    }

    /// [`Error::Deadline`] with `msg`.
    pub fn deadline(msg: impl Into<String>) -> Self {
        Error::Deadline(msg.into())
    }

    /// [`Error::Cancelled`] with `msg`.
    pub fn cancelled(msg: impl Into<String>) -> Self {
        Error::Cancelled(msg.into())
    }

    /// [`Error::Internal`] with `msg`.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// [`Error::TooLarge`] with `msg`, raised by `flag`.
    pub fn too_large(msg: impl Into<String>, flag: &'static str) -> Self {
        Error::TooLarge {
            message: msg.into(),
            flag: Some(flag),
        }
    }

    /// The gRPC code of this category.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidInput(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Busy(_) | Error::RateLimited { .. } | Error::TooLarge { .. } => {
                Code::ResourceExhausted
            }
            Error::Unavailable(_) => Code::Unavailable,
            Error::Precondition(_) => Code::FailedPrecondition,
            Error::Deadline(_) | Error::Stalled(_) => Code::DeadlineExceeded,
            Error::Cancelled(_) => Code::Cancelled,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status of this category.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Error::InvalidInput(_) => S::BAD_REQUEST,
            Error::NotFound(_) => S::NOT_FOUND,
            Error::AlreadyExists(_) => S::CONFLICT,
            Error::Unauthenticated(_) => S::UNAUTHORIZED,
            Error::PermissionDenied(_) => S::FORBIDDEN,
            Error::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            Error::Busy(_) | Error::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            Error::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            Error::Precondition(_) => S::UNPROCESSABLE_ENTITY,
            Error::Deadline(_) => S::GATEWAY_TIMEOUT,
            Error::Stalled(_) => S::REQUEST_TIMEOUT,
            Error::Cancelled(_) | Error::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The name of the category in JSON answers (the gRPC code's name, so
    /// that both fronts agree): `"InvalidArgument"`, `"NotFound"`, ...
    pub fn code_name(&self) -> String {
        format!("{:?}", self.code())
    }

    /// How long the client should wait before it retries, if it should.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { wait, .. } => Some(*wait),
            Error::Busy(_) | Error::Unavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// Whether the same request may pass if tried again later (a job is
    /// retried after these): the server was busy or something was away.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Busy(_)
                | Error::Unavailable(_)
                | Error::Deadline(_)
                | Error::Cancelled(_)
                | Error::Internal(_)
        )
    }

    /// The error a gRPC stream gave (a client's reset, a transport fault),
    /// by its code; the message is kept.
    pub fn from_status(s: &Status) -> Self {
        let m = s.message().to_owned();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidInput(m),
            Code::NotFound => Error::NotFound(m),
            Code::AlreadyExists => Error::AlreadyExists(m),
            Code::Unauthenticated => Error::Unauthenticated(m),
            Code::PermissionDenied => Error::PermissionDenied(m),
            Code::ResourceExhausted => Error::TooLarge {
                message: m,
                flag: None,
            },
            Code::Unavailable => Error::Unavailable(m),
            Code::FailedPrecondition => Error::Precondition(m),
            Code::DeadlineExceeded => Error::Deadline(m),
            Code::Cancelled => Error::Cancelled(m),
            _ => Error::Internal(m),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidInput(m) | CoreError::Unsupported(m) => Error::InvalidInput(m),
            CoreError::Decode(_) => Error::InvalidInput(e.to_string()),
            // Only the configured limits have flags to point at.
            CoreError::LimitExceeded(m) => Error::TooLarge {
                message: format!("{m} (nl-server --max-pixels / --max-dimension)"),
                flag: Some("--max-pixels"),
            },
            CoreError::TooLarge(m) => Error::TooLarge {
                message: m,
                flag: None,
            },
            CoreError::OutOfMemory(_) => Error::TooLarge {
                message: format!("{e}: the server is short of memory"),
                flag: None,
            },
            CoreError::Cancelled => Error::Cancelled(e.to_string()),
            CoreError::Encode(_) | CoreError::Io(_) => Error::Internal(e.to_string()),
        }
    }
}

/// What kind of store failure `e` is, in words that name no path.
fn store_fault_kind(e: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => "not found",
        E::AlreadyExists { .. } => "already exists",
        E::Precondition { .. } | E::NotModified { .. } => "precondition failed",
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => "access refused",
        E::NotSupported { .. } | E::NotImplemented { .. } => "not supported",
        E::InvalidPath { .. } => "invalid path",
        _ => "I/O error",
    }
}

impl Error {
    /// A store fault on `object` (its key in the store, such as
    /// `images/{id}`), as a client reads it: the key and the kind of failure,
    /// never the host's path or the backend's words (they go to the log).
    pub fn store_fault(object: &str, e: object_store::Error) -> Self {
        if let object_store::Error::NotFound { .. } = e {
            return Error::NotFound(format!("no object '{object}' in the store"));
        }
        tracing::warn!(object, error = %e, "store fault");
        Error::Unavailable(format!(
            "the store failed on '{object}' ({})",
            store_fault_kind(&e)
        ))
    }
}

impl From<object_store::Error> for Error {
    /// A store fault where the object is not known here (see
    /// [`Error::store_fault`]).
    fn from(e: object_store::Error) -> Self {
        if let object_store::Error::NotFound { .. } = e {
            return Error::NotFound("no such object in the store".into());
        }
        tracing::warn!(error = %e, "store fault");
        Error::Unavailable(format!("the store failed ({})", store_fault_kind(&e)))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Unavailable(format!("job database: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_categories_map_to_codes_and_words() {
        let s = Status::from(Error::from(CoreError::InvalidInput("x".into())));
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "x"));
        let e = Error::from(CoreError::LimitExceeded("too big".into()));
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(e.http_status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.to_string().starts_with("too big") && e.to_string().contains("--max-pixels"));
        // A size no limit could allow names no flag.
        let e = Error::from(CoreError::TooLarge("overflows".into()));
        assert_eq!(e.to_string(), "overflows");
        assert_eq!(
            Error::from(CoreError::OutOfMemory(9)).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            Error::from(CoreError::Encode("e".into())).code(),
            Code::Internal
        );
        assert_eq!(Error::from(CoreError::Cancelled).code(), Code::Cancelled);
    }

    #[test]
    fn categories_map_to_http_without_reading_the_message() {
        use http::StatusCode as S;
        // The same words in another category change nothing.
        let words = "server busy: rate limit";
        assert_eq!(Error::invalid(words).http_status(), S::BAD_REQUEST);
        assert_eq!(Error::NotFound(words.into()).http_status(), S::NOT_FOUND);
        let rl = Error::RateLimited {
            message: "x".into(),
            wait: Duration::from_millis(1500),
        };
        assert_eq!(rl.http_status(), S::TOO_MANY_REQUESTS);
        assert_eq!(rl.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(rl.code(), Code::ResourceExhausted);
        assert_eq!(
            Error::Busy("x".into()).http_status(),
            S::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::too_large("x", "--max-upload-mib").http_status(),
            S::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            Error::Deadline("x".into()).http_status(),
            S::GATEWAY_TIMEOUT
        );
        assert_eq!(
            Error::Unauthenticated("x".into()).http_status(),
            S::UNAUTHORIZED
        );
        assert_eq!(Error::invalid("x").code_name(), "InvalidArgument");
    }

    #[test]
    fn only_waiting_can_help_transient_errors() {
        assert!(Error::Busy("x".into()).is_transient());
        assert!(Error::Unavailable("x".into()).is_transient());
        assert!(!Error::too_large("x", "--max-pixels").is_transient());
        assert!(!Error::invalid("x").is_transient());
        assert!(
            !Error::RateLimited {
                message: "x".into(),
                wait: Duration::ZERO
            }
            .is_transient()
        );
    }

    #[test]
    fn store_errors_keep_their_category_and_name_no_host_path() {
        let nf = object_store::Error::NotFound {
            path: "/srv/secret/store/images/x".into(),
            source: "gone".into(),
        };
        assert_eq!(Error::from(nf).code(), Code::NotFound);
        let io = || object_store::Error::Generic {
            store: "LocalFileSystem",
            source: "Unable to open file /srv/secret/store/images/x#1: disk full".into(),
        };
        for e in [Error::from(io()), Error::store_fault("images/x", io())] {
            assert_eq!(e.code(), Code::Unavailable);
            assert!(!e.to_string().contains("/srv"), "{e}");
        }
        assert!(
            Error::store_fault("images/x", io())
                .to_string()
                .contains("'images/x'")
        );
    }
}
