//! Criterion benches of every kernel on every code path this machine runs,
//! beside the naive reference, on deterministic synthetic images.
//! `cargo bench -p nlimage-core --bench kernels`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nlimage_core::{
    Cpu, ImageBuf, ImageInfo, PixelFormat, Rotation, StreamingMean, mean3x3_into_with,
    mean3x3_naive, rotate_into_with, rotate_naive,
};

fn image(w: u32, h: u32, f: PixelFormat) -> ImageBuf {
    let info = ImageInfo::new(w, h, f).unwrap();
    let data = (0..info.byte_len())
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    ImageBuf::new(info, data).unwrap()
}

fn kernels(c: &mut Criterion) {
    for (label, img) in [
        ("1024x768 rgb", image(1024, 768, PixelFormat::Rgb8)),
        ("2048x2048 gray", image(2048, 2048, PixelFormat::Gray8)),
    ] {
        let info = img.info();
        let mut dst = vec![0u8; info.byte_len()];
        let mut g = c.benchmark_group(format!("mean3x3 {label}"));
        g.throughput(Throughput::Elements(info.pixels()));
        g.sample_size(20);
        g.bench_function("naive", |b| b.iter(|| mean3x3_naive(&img)));
        for cpu in Cpu::available() {
            g.bench_function(BenchmarkId::new("fast", cpu.name()), |b| {
                b.iter(|| mean3x3_into_with(cpu, img.data(), info, &mut dst).unwrap())
            });
        }
        g.bench_function("streaming, 64 KiB chunks", |b| {
            b.iter(|| {
                let mut s = StreamingMean::new(info);
                let mut out = Vec::with_capacity(info.byte_len());
                for chunk in img.data().chunks(64 << 10) {
                    s.push(chunk, &mut out).unwrap();
                }
                out
            })
        });
        g.finish();
        for (name, rot) in [
            ("rotate90", Rotation::Ccw90),
            ("rotate180", Rotation::Ccw180),
            ("rotate270", Rotation::Ccw270),
        ] {
            let mut g = c.benchmark_group(format!("{name} {label}"));
            g.throughput(Throughput::Elements(info.pixels()));
            g.sample_size(20);
            g.bench_function("naive", |b| b.iter(|| rotate_naive(&img, rot)));
            for cpu in Cpu::available() {
                g.bench_function(BenchmarkId::new("fast", cpu.name()), |b| {
                    b.iter(|| rotate_into_with(cpu, img.data(), info, rot, &mut dst).unwrap())
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
