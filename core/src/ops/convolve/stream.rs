//! The convolution's rows for the stencil stage ([`crate::ops::stencil`]):
//! one output row from its window, on the row kernels of [`super::kernels`].

use std::mem::MaybeUninit;

use super::Scratch;
use super::kernels::convolve_row_uninit;
use crate::ops::Kernel;
use crate::ops::stencil::StencilRows;
use crate::simd::Cpu;

/// An integer convolution with this kernel.
#[derive(Debug)]
pub(crate) struct ConvolveRows(pub(crate) Kernel);

impl StencilRows for ConvolveRows {
    type Scratch = Scratch;

    fn radius(&self) -> usize {
        self.0.size / 2
    }

    fn row(
        &self,
        cpu: Cpu,
        window: &[&[u8]],
        channels: usize,
        scratch: &mut Scratch,
        out: &mut [MaybeUninit<u8>],
    ) {
        convolve_row_uninit(cpu, &self.0, window, channels, scratch, out)
    }
}
