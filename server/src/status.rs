//! The one mapping from core errors to gRPC statuses, so that every handler
//! agrees on codes. (A `From<CoreError> for Status` impl is not allowed here:
//! both types are foreign to this crate.)

use nlimage_core::CoreError;
use tonic::Status;

/// The status a client gets for `e`.
pub fn from_core(e: CoreError) -> Status {
    match e {
        CoreError::InvalidInput(m) | CoreError::Unsupported(m) => Status::invalid_argument(m),
        CoreError::Decode(_) => Status::invalid_argument(e.to_string()),
        // Only the configured limits have flags to point at.
        CoreError::LimitExceeded(m) => {
            Status::resource_exhausted(format!("{m} (nl-server --max-pixels / --max-dimension)"))
        }
        CoreError::TooLarge(m) => Status::resource_exhausted(m),
        CoreError::OutOfMemory(_) => {
            Status::resource_exhausted(format!("{e}: the server is short of memory"))
        }
        CoreError::Encode(_) | CoreError::Io(_) => Status::internal(e.to_string()),
    }
}

/// INVALID_ARGUMENT with `msg`.
pub fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn categories_map_to_codes() {
        assert_eq!(
            from_core(CoreError::InvalidInput("x".into())).code(),
            Code::InvalidArgument
        );
        let s = from_core(CoreError::LimitExceeded("too big".into()));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().starts_with("too big") && s.message().contains("--max-pixels"));
        // A size no limit could allow names no flag.
        let s = from_core(CoreError::TooLarge("overflows".into()));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "overflows");
        assert_eq!(
            from_core(CoreError::OutOfMemory(9)).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            from_core(CoreError::Encode("e".into())).code(),
            Code::Internal
        );
    }
}
