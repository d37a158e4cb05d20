//! Classic requests from arbitrary bytes, handled as the server handles
//! them: decode, validate (sizes, limits, data length, rotation), compute.
//! Nothing panics, and whatever passes validation computes an output of the
//! input's byte length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nlimage::classic::{NlImage, NlImageRotateRequest};
use nlimage_core::{Limits, mean3x3_into, rotate_into};
use nlimage_server::service::classic::{rotation, validate};
use prost::Message;

const LIMITS: Limits = Limits {
    max_pixels: 1 << 16,
    max_dimension: 1 << 12,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = NlImageRotateRequest::decode(data)
        && let Ok(r) = rotation(req.rotation)
        && let Some(img) = req.image
        && let Ok(info) = validate(&img, &LIMITS)
    {
        let out_info = r.output_info(info);
        let mut out = vec![0u8; out_info.byte_len()];
        rotate_into(&img.data, info, r, &mut out).expect("a validated image rotates");
        assert_eq!(out.len(), img.data.len());
    }
    if let Ok(img) = NlImage::decode(data)
        && let Ok(info) = validate(&img, &LIMITS)
    {
        let mut out = vec![0u8; info.byte_len()];
        mean3x3_into(&img.data, info, &mut out).expect("a validated image filters");
    }
});
