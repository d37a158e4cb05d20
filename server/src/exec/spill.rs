//! Spilling rotations to disk: a rotation needs its whole image, so images
//! larger than `--spill-above-mib` (or than the memory budget allows) are kept in an unlinked temporary file
//! (laid out in strips by [`nlimage_core::hold::StripHold`]) instead of
//! memory. The file vanishes when the request ends, however it ends.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use nlimage_core::hold::{Hold, MemoryHold, Positional, StripHold};
use nlimage_core::ops::orient::Orientation;
use nlimage_core::{CoreError, Cpu, ImageInfo};

/// Bytes a spilled rotation reads back at a time (its memory, besides one
/// output band).
pub const STRIP_BYTES: usize = 16 << 20;

/// An unlinked temporary file addressed by offset.
#[derive(Debug)]
pub struct FileStore(File);

impl FileStore {
    /// Creates an anonymous temporary file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        tempfile::tempfile_in(dir).map(FileStore)
    }
}

impl Positional for FileStore {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(data, offset)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

/// Where a spilled hold's file goes, and above what size holds spill.
#[derive(Clone, Debug)]
pub struct SpillConfig {
    /// Holds of images over this many bytes spill (`--spill-above-mib`).
    pub above: usize,
    /// Where spill files go (`--spill-dir`).
    pub dir: Arc<Path>,
}

/// Where a request's holds keep their images: decided once, when the
/// request is planned ([`crate::exec::plan`]), for all of its holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldPlace {
    /// In one buffer each.
    Memory,
    /// In an unlinked file each, in this directory, read back a strip
    /// ([`STRIP_BYTES`]) at a time.
    Spill(Arc<Path>),
}

/// The hold of an `info` image oriented by `orientation` on code path
/// `cpu`, kept where `place` says.
pub fn hold_for(
    info: ImageInfo,
    orientation: Orientation,
    cpu: Cpu,
    place: &HoldPlace,
) -> Result<Box<dyn Hold>, CoreError> {
    let dir = match place {
        HoldPlace::Memory => return Ok(Box::new(MemoryHold::new(info, orientation, cpu)?)),
        HoldPlace::Spill(dir) => dir,
    };
    let store = FileStore::create(dir).map_err(|e| {
        CoreError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create a spill file in '{}': {e}", dir.display()),
        ))
    })?;
    tracing::debug!(image = %info, "rotation spills to a temporary file");
    Ok(Box::new(StripHold::new(
        store,
        info,
        orientation,
        STRIP_BYTES,
        cpu,
    )))
}
