//! Shared test helpers: a real server on 127.0.0.1 with an ephemeral port and
//! a client library connection to it.
#![allow(dead_code)]

use std::io::Cursor;

use nlimage_client::Client;
use nlimage_core::{ImageBuf, ImageInfo, OutputFormat, PixelFormat};
use nlimage_server::{Config, ServerHandle};

pub async fn server(config: Config) -> ServerHandle {
    nlimage_server::spawn("127.0.0.1:0", config)
        .await
        .expect("server starts")
}

pub async fn client(server: &ServerHandle) -> Client {
    Client::connect(server.addr().to_string())
        .await
        .expect("connects")
}

/// A smooth gradient with a few sharp features, so lossy codecs keep it
/// recognisable and the mean filter changes it.
pub fn picture(w: u32, h: u32, format: PixelFormat) -> ImageBuf {
    let info = ImageInfo::new(w, h, format).unwrap();
    let c = info.channels();
    let mut data = vec![0u8; info.byte_len()];
    for y in 0..h as usize {
        for x in 0..w as usize {
            for ch in 0..c {
                let v = if ch == 3 {
                    255 - (x * 3) as u8
                } else if (x / 4 + y / 4) % 5 == 0 {
                    255
                } else {
                    ((x * 7 + y * 3 + ch * 40) % 200) as u8
                };
                data[(y * w as usize + x) * c + ch] = v;
            }
        }
    }
    ImageBuf::new(info, data).unwrap()
}

pub fn encoded(img: &ImageBuf, format: OutputFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    nlimage_core::encode(img, format, &mut out).unwrap();
    out.into_inner()
}
