//! Property tests of the kernels' algebra and of the fast paths against the
//! naive references, on random shapes, formats and chunkings.

use nlimage_core::ops::naive;
use nlimage_core::ops::overlay::Overlay;
use nlimage_core::ops::resize::{Filter, Fit, Resize};
use nlimage_core::{
    Cpu, CropBox, Flip, ImageBuf, ImageInfo, Kernel, Operation, Pipeline, PixelFormat, Rotation,
    StreamingMean, mean3x3, mean3x3_into_with, mean3x3_naive, rotate, rotate_into_with,
    rotate_naive,
};
use proptest::prelude::*;

fn any_format() -> impl Strategy<Value = PixelFormat> {
    prop_oneof![
        Just(PixelFormat::Gray8),
        Just(PixelFormat::Rgb8),
        Just(PixelFormat::Rgba8)
    ]
}

fn any_rotation() -> impl Strategy<Value = Rotation> {
    prop_oneof![
        Just(Rotation::None),
        Just(Rotation::Ccw90),
        Just(Rotation::Ccw180),
        Just(Rotation::Ccw270)
    ]
}

/// Images from 1x1 up to 70x40, pixels random.
fn any_image() -> impl Strategy<Value = ImageBuf> {
    (1u32..70, 1u32..40, any_format()).prop_flat_map(|(w, h, f)| {
        let info = ImageInfo::new(w, h, f).unwrap();
        proptest::collection::vec(any::<u8>(), info.byte_len())
            .prop_map(move |data| ImageBuf::new(info, data).unwrap())
    })
}

/// Overlays: 1x1 up to 19x14.
fn any_small_image() -> impl Strategy<Value = ImageBuf> {
    (1u32..20, 1u32..15, any_format()).prop_flat_map(|(w, h, f)| {
        let info = ImageInfo::new(w, h, f).unwrap();
        proptest::collection::vec(any::<u8>(), info.byte_len())
            .prop_map(move |data| ImageBuf::new(info, data).unwrap())
    })
}

fn rot(img: &ImageBuf, r: Rotation) -> ImageBuf {
    rotate(img, r).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn four_quarter_turns_are_the_identity(img in any_image()) {
        let mut cur = img.clone();
        for _ in 0..4 {
            cur = rot(&cur, Rotation::Ccw90);
        }
        prop_assert!(cur == img);
    }

    #[test]
    fn ninety_then_two_seventy_is_the_identity(img in any_image()) {
        prop_assert!(rot(&rot(&img, Rotation::Ccw90), Rotation::Ccw270) == img);
        prop_assert!(rot(&rot(&img, Rotation::Ccw270), Rotation::Ccw90) == img);
    }

    #[test]
    fn fast_kernels_equal_naive_on_every_code_path(img in any_image(), r in any_rotation()) {
        let (rotated, mean) = (rotate_naive(&img, r), mean3x3_naive(&img));
        for cpu in Cpu::available() {
            let mut out = vec![0; img.data().len()];
            rotate_into_with(cpu, img.data(), img.info(), r, &mut out).unwrap();
            prop_assert!(out == rotated.data(), "rotation, {} path", cpu.name());
            mean3x3_into_with(cpu, img.data(), img.info(), &mut out).unwrap();
            prop_assert!(out == mean.data(), "mean, {} path", cpu.name());
        }
    }

    #[test]
    fn mean_commutes_with_rotation(img in any_image(), r in any_rotation()) {
        let a = mean3x3(&rot(&img, r)).unwrap();
        let b = rot(&mean3x3(&img).unwrap(), r);
        prop_assert!(a == b);
    }

    #[test]
    fn streaming_mean_equals_whole_image_mean_for_any_chunking(
        img in any_image(),
        cuts in proptest::collection::vec(1usize..200, 1..40),
    ) {
        let mut s = StreamingMean::new(img.info());
        let mut out = Vec::new();
        let mut rest = img.data();
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            s.push(&rest[..n], &mut out).unwrap();
            rest = &rest[n..];
            i += 1;
        }
        s.finish().unwrap();
        prop_assert_eq!(out, mean3x3_naive(&img).into_data());
    }

    #[test]
    fn pipeline_equals_operations_applied_in_order(
        img in any_image(),
        specs in proptest::collection::vec(any_op(), 0..6),
        chunk in 1usize..5000,
    ) {
        // Crop boxes are drawn as fractions of the image they meet.
        let mut want = img.clone();
        let mut ops = Vec::new();
        for spec in specs {
            let op = spec.resolve(want.info());
            want = naive::apply(&want, &op).unwrap();
            ops.push(op);
        }
        let mut p = Pipeline::new(img.info(), &ops).unwrap();
        prop_assert_eq!(p.output_info(), want.info());
        let mut out = Vec::new();
        for c in img.data().chunks(chunk) {
            p.push(c, &mut out).unwrap();
        }
        let mut rest = p.finish().unwrap();
        while let Some(band) = rest.next_band(chunk).unwrap() {
            out.extend(band);
        }
        prop_assert!(out == want.into_data(), "{:?}", ops);
    }
}

/// An operation whose crop box is fixed only once the image it meets is known.
#[derive(Clone, Debug)]
enum OpSpec {
    Op(Operation),
    Crop(f64, f64, f64, f64),
}

impl OpSpec {
    fn resolve(&self, info: ImageInfo) -> Operation {
        match self {
            OpSpec::Op(op) => op.clone(),
            OpSpec::Crop(fx, fy, fw, fh) => {
                let (w, h) = (info.width(), info.height());
                let x = ((w - 1) as f64 * fx) as u32;
                let y = ((h - 1) as f64 * fy) as u32;
                let width = (((w - x) as f64 * fw) as u32).max(1);
                let height = (((h - y) as f64 * fh) as u32).max(1);
                Operation::Crop(CropBox {
                    x,
                    y,
                    width,
                    height,
                })
            }
        }
    }
}

fn any_op() -> impl Strategy<Value = OpSpec> {
    let f = 0.0f64..1.0;
    prop_oneof![
        any_rotation().prop_map(|r| OpSpec::Op(Operation::Rotate(r))),
        prop_oneof![Just(Flip::Horizontal), Just(Flip::Vertical)]
            .prop_map(|a| OpSpec::Op(Operation::Flip(a))),
        (f.clone(), f.clone(), f.clone(), f).prop_map(|(a, b, c, d)| OpSpec::Crop(a, b, c, d)),
        Just(OpSpec::Op(Operation::Mean3x3)),
        (0.2f32..2.5).prop_map(|sigma| OpSpec::Op(Operation::Blur { sigma })),
        (0.2f32..2.0, 0.0f32..3.0)
            .prop_map(|(sigma, amount)| OpSpec::Op(Operation::Sharpen { sigma, amount })),
        (prop_oneof![Just(3usize), Just(5)], -4i32..5, 1i32..20).prop_flat_map(
            |(size, shift, divisor)| {
                proptest::collection::vec(-3i32..8, size * size).prop_map(move |weights| {
                    let weights = weights.into_iter().map(|w| w + shift).collect();
                    OpSpec::Op(Operation::Convolve(Kernel {
                        size,
                        weights,
                        divisor,
                    }))
                })
            }
        ),
        Just(OpSpec::Op(Operation::Gray)),
        (-300i32..300).prop_map(|n| OpSpec::Op(Operation::Brightness(n.clamp(-255, 255)))),
        (0.0f32..3.0).prop_map(|c| OpSpec::Op(Operation::Contrast(c))),
        (0.2f32..4.0).prop_map(|g| OpSpec::Op(Operation::Gamma(g))),
        (any_small_image(), -10i32..60, -10i32..40, 0.0f32..=1.0).prop_map(
            |(image, x, y, opacity)| {
                OpSpec::Op(Operation::Overlay(Overlay {
                    image: std::sync::Arc::new(image),
                    x,
                    y,
                    opacity,
                }))
            }
        ),
        (
            proptest::option::of(1u32..90),
            proptest::option::of(1u32..60),
            prop_oneof![Just(Fit::Fit), Just(Fit::Fill), Just(Fit::Exact)],
            prop_oneof![
                Just(Filter::Lanczos3),
                Just(Filter::Cubic),
                Just(Filter::Linear),
                Just(Filter::Box),
                Just(Filter::Nearest)
            ],
        )
            .prop_map(|(width, height, fit, filter)| {
                let width = width.or(height.is_none().then_some(7));
                OpSpec::Op(Operation::Resize(Resize {
                    width,
                    height,
                    fit,
                    filter,
                }))
            }),
    ]
}
