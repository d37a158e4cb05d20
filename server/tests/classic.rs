//! The classic, package-less contract over a real socket: results match the
//! core references, every bad input gets INVALID_ARGUMENT or
//! RESOURCE_EXHAUSTED, and the server keeps serving afterwards.

mod common;

use nlimage::classic::nl_image_rotate_request::Rotation as Wire;
use nlimage::classic::{NlImage, NlImageRotateRequest};
use nlimage_core::{ImageBuf, Limits, PixelFormat, Rotation, mean3x3_naive, rotate_naive};
use nlimage_server::Config;
use tonic::Code;

fn image(w: i32, h: i32, color: bool) -> NlImage {
    let len = (w * h * if color { 3 } else { 1 }) as usize;
    NlImage {
        color,
        data: common::noise(len, (w * 31 + h) as u32).into(),
        width: w,
        height: h,
    }
}

fn core(img: &NlImage) -> ImageBuf {
    let f = if img.color {
        PixelFormat::Rgb8
    } else {
        PixelFormat::Gray8
    };
    ImageBuf::from_raw(img.width as u32, img.height as u32, f, img.data.to_vec()).unwrap()
}

#[tokio::test]
async fn rotate_and_mean_match_the_references() {
    let server = common::server(Config::default()).await;
    let mut client = common::classic(&server).await;
    for (w, h, color) in [
        (1, 1, false),
        (1, 9, true),
        (9, 1, false),
        (17, 5, true),
        (64, 33, false),
    ] {
        let img = image(w, h, color);
        for (wire, rot) in [
            (Wire::None, Rotation::None),
            (Wire::NinetyDeg, Rotation::Ccw90),
            (Wire::OneEightyDeg, Rotation::Ccw180),
            (Wire::TwoSeventyDeg, Rotation::Ccw270),
        ] {
            let req = NlImageRotateRequest {
                rotation: wire as i32,
                image: Some(img.clone()),
            };
            let out = client.rotate_image(req).await.unwrap().into_inner();
            let want = rotate_naive(&core(&img), rot);
            assert_eq!(
                (out.width as u32, out.height as u32),
                (want.info().width(), want.info().height())
            );
            assert_eq!(out.color, color);
            assert_eq!(&out.data[..], want.data(), "{rot:?} {w}x{h}");
        }
        let out = client.mean_filter(img.clone()).await.unwrap().into_inner();
        assert_eq!(
            &out.data[..],
            mean3x3_naive(&core(&img)).data(),
            "mean {w}x{h}"
        );
        assert_eq!((out.width, out.height, out.color), (w, h, color));
    }
}

#[tokio::test]
async fn a_12_megapixel_rgb_image_fits_by_default() {
    let server = common::server(Config::default()).await;
    let mut client = common::classic(&server).await;
    let img = image(4000, 3000, true);
    let out = client.mean_filter(img).await.unwrap().into_inner();
    assert_eq!(out.data.len(), 36_000_000);
}

#[tokio::test]
async fn bad_inputs_are_refused_and_the_server_still_serves() {
    let config = Config {
        limits: Limits {
            max_pixels: 1 << 20,
            max_dimension: 1 << 16,
        },
        ..Config::default()
    };
    let server = common::server(config).await;
    let mut client = common::classic(&server).await;
    let mut short = image(4, 4, true);
    short.data = short.data.slice(..47);
    let mut gray_len_for_color = image(4, 4, false);
    gray_len_for_color.color = true;
    let huge = NlImage {
        color: true,
        data: vec![1, 2, 3].into(),
        width: 100_000,
        height: 100_000,
    };
    let cases: Vec<(&str, NlImage, Code, &str)> = vec![
        (
            "short data",
            short,
            Code::InvalidArgument,
            "data holds 47 bytes",
        ),
        (
            "gray data, color flag",
            gray_len_for_color,
            Code::InvalidArgument,
            "needs 48",
        ),
        (
            "zero width",
            image(0, 4, false),
            Code::InvalidArgument,
            "must both be positive",
        ),
        (
            "negative height",
            NlImage {
                height: -3,
                ..image(2, 2, false)
            },
            Code::InvalidArgument,
            "2x-3",
        ),
        (
            "huge claim, tiny data",
            huge,
            Code::ResourceExhausted,
            "over the limit",
        ),
    ];
    for (what, img, code, text) in cases {
        let e = client.mean_filter(img.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "mean, {what}: {e:?}");
        assert!(e.message().contains(text), "mean, {what}: {}", e.message());
        let req = NlImageRotateRequest {
            rotation: Wire::NinetyDeg as i32,
            image: Some(img),
        };
        let e = client.rotate_image(req).await.unwrap_err();
        assert_eq!(e.code(), code, "rotate, {what}: {e:?}");
    }
    let req = NlImageRotateRequest {
        rotation: 7,
        image: Some(image(2, 2, false)),
    };
    let e = client.rotate_image(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("unknown rotation 7"),
        "{}",
        e.message()
    );
    let e = client
        .rotate_image(NlImageRotateRequest {
            rotation: 1,
            image: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Still serving, on the same connection.
    let img = image(3, 2, false);
    let req = NlImageRotateRequest {
        rotation: Wire::NinetyDeg as i32,
        image: Some(img.clone()),
    };
    let out = client.rotate_image(req).await.unwrap().into_inner();
    assert_eq!(
        &out.data[..],
        rotate_naive(&core(&img), Rotation::Ccw90).data()
    );
}

#[tokio::test]
async fn method_paths_carry_no_package() {
    // The raw path an existing client in another language would call.
    let server = common::server(Config::default()).await;
    let mut grpc = tonic::client::Grpc::new(common::channel(&server).await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<NlImage, NlImage>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/NLImageService/MeanFilter");
    let out = grpc
        .unary(tonic::Request::new(image(2, 2, false)), path, codec)
        .await
        .unwrap();
    assert_eq!(out.into_inner().width, 2);
}
