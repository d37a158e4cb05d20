//! The blur's and the unsharp mask's rows for the stencil stage
//! ([`crate::ops::stencil`]): one output row from its window, on the row
//! kernels of [`super::kernels`].

use std::mem::MaybeUninit;

use super::Scratch;
use super::kernels::blur_row_uninit;
use crate::ops::stencil::StencilRows;
use crate::simd::Cpu;

/// A gaussian blur (`amount: None`) or unsharp mask with these taps.
#[derive(Debug)]
pub(crate) struct BlurRows {
    pub(crate) taps: Vec<u16>,
    pub(crate) amount: Option<f32>,
}

impl StencilRows for BlurRows {
    type Scratch = Scratch;

    fn radius(&self) -> usize {
        self.taps.len() / 2
    }

    fn row(
        &self,
        cpu: Cpu,
        window: &[&[u8]],
        channels: usize,
        scratch: &mut Scratch,
        out: &mut [MaybeUninit<u8>],
    ) {
        blur_row_uninit(cpu, &self.taps, window, channels, self.amount, scratch, out)
    }
}
