//! The client's one error type, and the explanations that turn transport
//! failures a user can cause (TLS on one side only, a CA certificate served
//! as the server's, a certificate for another name, nothing listening) into
//! a sentence that says what happened and what to do.

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be parsed.
    #[error("invalid server address '{0}': expected HOST:PORT")]
    Address(String),
    /// The bearer token cannot be sent as a header value.
    #[error(
        "invalid bearer token: it holds characters an HTTP header cannot carry (use printable ASCII)"
    )]
    Token,
    /// The CA certificate given for TLS is unusable.
    #[error("invalid CA certificate: {0}: --ca takes the CA's certificate in PEM form")]
    Ca(String),
    /// No connection could be made, or the first call found the two sides
    /// speaking different protocols.
    #[error("cannot connect to the server at {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed, and what to do where that is known.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("server error {}: {}", status_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// The server's answer broke the protocol (a bug on its side).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A thread of this client failed (a bug on this side).
    #[error("internal error: {0}")]
    Internal(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A local image or limit problem.
    #[error(transparent)]
    Core(#[from] nlimage_core::CoreError),
}

/// Every message of an error's chain, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e;
    while let Some(next) = cur.source() {
        out.push(next.to_string());
        cur = next;
    }
    out
}

/// What the person at the keyboard can do about a transport failure whose
/// messages are `chain`, if we know.
fn advice(chain: &[String], tls: bool) -> Option<&'static str> {
    let has = |needle: &str| chain.iter().any(|m| m.contains(needle));
    Some(if has("CaUsedAsEndEntity") {
        "the server's certificate is a CA certificate (basicConstraints CA:TRUE, what \
         `openssl req -x509` makes by default), and TLS clients refuse a CA as a server's \
         certificate: sign a server certificate with that CA, serve it, and pass the CA with \
         --ca (README, 'TLS certificates')"
    } else if has("UnknownIssuer") {
        "the server's certificate is not signed by a CA this client trusts: pass the CA that \
         signed it with --ca FILE (--tls trusts only the public web roots)"
    } else if has("NotValidForName") || has("not valid for name") {
        "the server's certificate is not issued for this host name: connect with the name it \
         was issued for (--tls-domain NAME)"
    } else if has("Expired") || has("certificate expired") {
        "the server's certificate has expired"
    } else if tls && (has("InvalidContentType") || has("corrupt message")) {
        "the server answered in plaintext, not TLS: drop --tls/--ca (or start nl-server with \
         --tls-cert and --tls-key)"
    } else if !tls && (has("FRAME_SIZE_ERROR") || has("frame with invalid size")) {
        "the server speaks TLS: add --tls (a certificate from a public CA) or --ca FILE (a \
         private CA)"
    } else if !tls && (has("broken pipe") || has("connection reset") || has("Connection reset")) {
        "the server closed the connection at once: if it speaks TLS, add --tls or --ca FILE"
    } else if has("Connection refused") {
        "nothing listens there: is nl-server running, and on this host and port?"
    } else if has("failed to lookup address") || has("Name or service not known") {
        "the host name does not resolve: check --host"
    } else {
        return None;
    })
}

impl ClientError {
    /// A connection failure to `addr`: the innermost cause (the one people
    /// can act on) and, where known, what to do.
    pub(crate) fn connect(addr: &str, e: &(dyn std::error::Error + 'static), tls: bool) -> Self {
        let chain = chain(e);
        let cause = chain.last().cloned().unwrap_or_default();
        let reason = match advice(&chain, tls) {
            Some(a) => format!("{a} ({cause})"),
            None => cause,
        };
        ClientError::Connect {
            addr: addr.to_owned(),
            reason,
        }
    }

    /// A status from the first call on a connection: a transport failure
    /// that says the two sides speak different protocols becomes a
    /// [`ClientError::Connect`] with advice; anything else stays a status.
    pub(crate) fn first_call(status: tonic::Status, addr: &str, tls: bool) -> Self {
        use std::error::Error;
        let transport = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal)
            && status.source().is_some();
        if transport {
            let mut messages = vec![status.message().to_owned()];
            if let Some(src) = status.source() {
                messages.extend(chain(src));
            }
            if let Some(a) = advice(&messages, tls) {
                return ClientError::Connect {
                    addr: addr.to_owned(),
                    reason: format!("{a} ({})", messages.last().cloned().unwrap_or_default()),
                };
            }
        }
        ClientError::Status(status)
    }
}

/// A status code as gRPC documents it: `INVALID_ARGUMENT`, not `InvalidArgument`.
pub fn status_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, ch) in format!("{code:?}").chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(
            status_name(tonic::Code::InvalidArgument),
            "INVALID_ARGUMENT"
        );
        assert_eq!(status_name(tonic::Code::Ok), "OK");
        assert_eq!(
            status_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
    }

    #[test]
    fn advice_names_the_fix() {
        let a = |m: &str, tls| advice(&[m.to_owned()], tls);
        assert!(
            a(
                "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
                true
            )
            .unwrap()
            .contains("sign a server certificate")
        );
        assert!(
            a("h2: frame with invalid size", false)
                .unwrap()
                .contains("add --tls")
        );
        assert!(
            a("received corrupt message of type InvalidContentType", true)
                .unwrap()
                .contains("drop --tls")
        );
        assert_eq!(a("something else", false), None);
    }
}
