//! Non-temporal (streaming) stores: writing a large output that will not be
//! read again soon without first reading each cache line into the cache.

/// Copies `src` into `dst` (same length), with non-temporal stores for the
/// 16-byte-aligned middle part on x86-64 (a plain copy elsewhere). Call
/// [`fence`] before another thread reads `dst`.
pub(crate) fn copy_nontemporal(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy of unequal slices");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        // Head up to the first 16-byte boundary of `dst`, then whole
        // 16-byte blocks, then the tail.
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        let blocks = (dst.len() - head) / 16;
        let (d_head, rest) = dst.split_at_mut(head);
        let (d_mid, d_tail) = rest.split_at_mut(blocks * 16);
        let (s_head, rest) = src.split_at(head);
        let (s_mid, s_tail) = rest.split_at(blocks * 16);
        d_head.copy_from_slice(s_head);
        for (d, s) in d_mid.chunks_exact_mut(16).zip(s_mid.chunks_exact(16)) {
            // SAFETY: `d` and `s` are 16 bytes, and `d` starts on a 16-byte
            // boundary (it follows `head`), as `_mm_stream_si128` requires;
            // SSE2 is part of every x86-64 CPU.
            unsafe {
                _mm_stream_si128(
                    d.as_mut_ptr().cast::<__m128i>(),
                    _mm_loadu_si128(s.as_ptr().cast()),
                )
            };
        }
        d_tail.copy_from_slice(s_tail);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders earlier non-temporal stores before later stores (`sfence`).
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no preconditions; SSE is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_alignment_and_length() {
        let src: Vec<u8> = (0..300).map(|i| i as u8).collect();
        for start in 0..17 {
            for len in [0, 1, 15, 16, 17, 31, 64, 200] {
                let mut dst = vec![0u8; 300];
                copy_nontemporal(&mut dst[start..start + len], &src[..len]);
                fence();
                assert_eq!(
                    &dst[start..start + len],
                    &src[..len],
                    "start {start} len {len}"
                );
                assert!(
                    dst[..start].iter().all(|&b| b == 0)
                        && dst[start + len..].iter().all(|&b| b == 0)
                );
            }
        }
    }
}
