//! A `Process` stream from arbitrary bytes: length-delimited
//! `ProcessRequest` messages, validated as the server validates them
//! (header first, chunk sizes, limits), then pushed through the pipeline.
//! Whatever the bytes, nothing panics, and a stream that passes ends with
//! exactly the output header's byte count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nlimage::v1::ProcessRequest;
use nlimage_core::{Limits, Pipeline};
use nlimage_server::service::process::{parse_chunk, parse_header};
use prost::Message;

const LIMITS: Limits = Limits {
    max_pixels: 1 << 16,
    max_dimension: 1 << 12,
};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut messages = Vec::new();
    while !buf.is_empty() {
        match ProcessRequest::decode_length_delimited(&mut buf) {
            Ok(m) => messages.push(m),
            Err(_) => break,
        }
    }
    let mut messages = messages.into_iter();
    let Ok((info, ops)) = parse_header(messages.next(), &LIMITS) else {
        return;
    };
    let Ok(mut pipeline) = Pipeline::new(info, &ops) else {
        return;
    };
    let want = pipeline.output_info().byte_len();
    let mut got = 0;
    let mut out = Vec::new();
    for m in messages {
        let Ok(chunk) = parse_chunk(m, pipeline.received()) else {
            return;
        };
        out.clear();
        if pipeline.push(&chunk, &mut out).is_err() {
            return;
        }
        got += out.len();
        assert!(got <= want, "more output than the header declares");
    }
    let Ok(mut rest) = pipeline.finish() else {
        return;
    };
    while let Some(band) = rest
        .next_band(1 << 16)
        .expect("a finished pipeline yields its bands")
    {
        got += band.len();
    }
    assert_eq!(got, want, "a complete stream yields the whole output");
});
