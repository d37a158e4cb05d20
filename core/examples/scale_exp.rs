use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let file = std::fs::read(&path).unwrap();
    let h = turbojpeg::read_header(&file).unwrap();
    println!("{} {}x{}", path, h.width, h.height);
    for m in 1..=8usize {
        let s = turbojpeg::ScalingFactor::new(m, 8);
        let mut d = turbojpeg::Decompressor::new().unwrap();
        if d.set_scaling_factor(s).is_err() {
            println!("{m}/8 unsupported");
            continue;
        }
        let sc = h.scaled(s);
        let mut buf = vec![0u8; sc.width * sc.height * 3];
        let mut t = vec![];
        for _ in 0..5 {
            let st = Instant::now();
            let img = turbojpeg::Image {
                pixels: &mut buf[..],
                width: sc.width,
                pitch: sc.width * 3,
                height: sc.height,
                format: turbojpeg::PixelFormat::RGB,
            };
            d.decompress(&file, img).unwrap();
            t.push(st.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        println!("{m}/8 {}x{} {:.1} ms", sc.width, sc.height, t[2]);
    }
}
