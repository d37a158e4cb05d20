//! Property tests of the kernels' algebra and of the fast paths against the
//! naive references, on random shapes, formats and chunkings.

use nlimage_core::{
    Cpu, ImageBuf, ImageInfo, Operation, Pipeline, PixelFormat, Rotation, StreamingMean, mean3x3,
    mean3x3_into_with, mean3x3_naive, rotate, rotate_into_with, rotate_naive,
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
        ops in proptest::collection::vec(
            prop_oneof![Just(Operation::Mean3x3), any_rotation().prop_map(Operation::Rotate)], 0..5),
        chunk in 1usize..5000,
    ) {
        let mut want = img.clone();
        for op in &ops {
            want = match op {
                Operation::Rotate(r) => rotate_naive(&want, *r),
                Operation::Mean3x3 => mean3x3_naive(&want),
            };
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
        prop_assert_eq!(out, want.into_data());
    }
}
