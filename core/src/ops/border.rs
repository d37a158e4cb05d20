//! Border handling shared by the stencils: which pixel stands in for one
//! outside the image.

/// OpenCV's `BORDER_REFLECT_101` (its default border): `gfedcb|abcdefgh|gfedcba`,
/// the edge pixel not repeated, bouncing as often as needed for stencils
/// wider than the image; a 1-pixel side maps everything to 0.
pub fn reflect101(p: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    let mut p = p;
    while p < 0 || p >= len {
        p = if p < 0 { -p } else { 2 * (len - 1) - p };
    }
    p as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflects_without_repeating_the_edge_and_bounces() {
        let got: Vec<usize> = (-3..8).map(|p| reflect101(p, 5)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
        // A stencil wider than the image bounces: len 2 is 0,1,0,1,...
        let got: Vec<usize> = (-4..5).map(|p| reflect101(p, 2)).collect();
        assert_eq!(got, [0, 1, 0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(reflect101(-7, 1), 0);
        assert_eq!(reflect101(9, 3), 1);
    }
}
