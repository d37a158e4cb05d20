//! Every connection failure a user can cause gets a message that says what
//! happened and what to do: a CA certificate served as the server's (what
//! the common `openssl req -x509` recipe makes), a certificate from another
//! CA or for another name, TLS on one side only, nothing listening, a CA
//! file that holds no certificate.

mod common;

use nlimage_client::{Client, ClientError, Operation, Options, PixelFormat};
use nlimage_server::{Config, ServerHandle, TlsPem};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA: its certificate (PEM) and the issuer that signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

/// A server certificate for `localhost` signed by `issuer`, and its key.
fn leaf(issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn tls_server(cert: &str, key: &str) -> ServerHandle {
    common::server(Config {
        tls: Some(TlsPem {
            cert: cert.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        }),
        ..Config::default()
    })
    .await
}

fn trusting(ca: &str, domain: &str) -> Options {
    Options {
        tls: Some(Some(ca.as_bytes().to_vec())),
        tls_domain: Some(domain.to_owned()),
        ..Options::default()
    }
}

/// Connects and makes one call; the error's text.
async fn failure(addr: String, options: Options) -> String {
    let result = async {
        let mut client = Client::connect_with(addr, options).await?;
        let img = common::picture(8, 8, PixelFormat::Gray8);
        client.process(&img, &[Operation::Mean3x3]).await
    }
    .await;
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(e @ (ClientError::Connect { .. } | ClientError::Ca(_))) => e.to_string(),
        Err(other) => panic!("not reported as a connection problem: {other:?}"),
    }
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_servers_says_to_sign_a_leaf() {
    let (ca_pem, issuer) = ca("test CA");
    // The server serves the CA's own certificate, as `openssl req -x509` users do.
    let key = issuer.key().serialize_pem();
    let server = tls_server(&ca_pem, &key).await;
    let e = failure(server.addr().to_string(), trusting(&ca_pem, "localhost")).await;
    assert!(e.contains("is a CA certificate"), "{e}");
    assert!(e.contains("sign a server certificate"), "{e}");
}

#[tokio::test]
async fn a_leaf_from_an_untrusted_ca_or_for_another_name_says_which() {
    let (ca_pem, issuer) = ca("test CA");
    let (cert, key) = leaf(&issuer);
    let server = tls_server(&cert, &key).await;
    let addr = server.addr().to_string();
    // The right CA and name work ...
    let mut ok = Client::connect_with(addr.clone(), trusting(&ca_pem, "localhost"))
        .await
        .unwrap();
    let img = common::picture(8, 8, PixelFormat::Gray8);
    ok.process(&img, &[Operation::Mean3x3]).await.unwrap();
    // ... another CA does not,
    let (other_ca, _) = ca("another CA");
    let e = failure(addr.clone(), trusting(&other_ca, "localhost")).await;
    assert!(e.contains("not signed by a CA this client trusts"), "{e}");
    assert!(e.contains("--ca FILE"), "{e}");
    // ... nor another name.
    let e = failure(addr, trusting(&ca_pem, "images.example.com")).await;
    assert!(e.contains("not issued for this host name"), "{e}");
    assert!(e.contains("--tls-domain"), "{e}");
}

#[tokio::test]
async fn tls_on_one_side_only_says_which_side_to_change() {
    let (ca_pem, issuer) = ca("test CA");
    let (cert, key) = leaf(&issuer);
    let tls = tls_server(&cert, &key).await;
    let e = failure(tls.addr().to_string(), Options::default()).await;
    assert!(
        e.contains("speaks TLS") || e.contains("if it speaks TLS"),
        "{e}"
    );
    assert!(e.contains("add --tls"), "{e}");
    let plain = common::server(Config::default()).await;
    let e = failure(plain.addr().to_string(), trusting(&ca_pem, "localhost")).await;
    assert!(e.contains("answered in plaintext"), "{e}");
    assert!(e.contains("drop --tls"), "{e}");
}

#[tokio::test]
async fn nothing_listening_and_a_file_that_is_not_a_certificate() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = failure(format!("127.0.0.1:{port}"), Options::default()).await;
    assert!(e.contains("nothing listens there"), "{e}");
    let plain = common::server(Config::default()).await;
    let e = failure(
        plain.addr().to_string(),
        Options {
            tls: Some(Some(b"\x89PNG not a certificate".to_vec())),
            ..Options::default()
        },
    )
    .await;
    assert!(e.contains("no PEM certificate"), "{e}");
}
