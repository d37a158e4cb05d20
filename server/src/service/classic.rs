//! The classic takehome contract: unary `RotateImage` and `MeanFilter` on
//! whole `NLImage` messages (package-less `/NLImageService/...`).

use nlimage::classic::nl_image_rotate_request::Rotation as WireRotation;
use nlimage::classic::nl_image_service_server::NlImageService;
use nlimage::classic::{NlImage, NlImageRotateRequest};
use nlimage_core::error::try_alloc;
use nlimage_core::{ImageInfo, Limits, PixelFormat, Rotation, mean3x3_into, rotate_into};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::gate;
use crate::log::RequestLog;
use crate::status::{from_core, invalid};

/// The classic `NLImageService`.
#[derive(Clone, Debug)]
pub struct ClassicService {
    shared: Shared,
}

impl ClassicService {
    /// A service running its work on `shared`'s pool within its limits.
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Runs `kernel` over `img` (already validated as `info`) on the pool,
    /// into a fresh buffer of `out_info`'s size.
    async fn apply(
        &self,
        img: NlImage,
        info: ImageInfo,
        out_info: ImageInfo,
        deadline: Option<tokio::time::Instant>,
        kernel: impl FnOnce(&[u8], ImageInfo, &mut [u8]) -> nlimage_core::Result<()> + Send + 'static,
    ) -> Result<NlImage, Status> {
        // The memory of the message and the answer was reserved before the
        // message was read (`middleware::classic_admission`); the kernel
        // needs a worker.
        let _slot = self.shared.admission.admit(0, deadline).await?;
        let data = img.data;
        let out = self
            .shared
            .compute
            .run(move || {
                let mut out = try_alloc(out_info.byte_len())?;
                kernel(&data, info, &mut out)?;
                Ok(out)
            })
            .await?
            .map_err(from_core)?;
        Ok(NlImage {
            color: img.color,
            data: out.into(),
            width: out_info.width() as i32,
            height: out_info.height() as i32,
        })
    }
}

/// Checks sizes (positive, within `limits`, before anything is allocated)
/// and that the data length matches them.
pub fn validate(img: &NlImage, limits: &Limits) -> Result<ImageInfo, Status> {
    if img.width <= 0 || img.height <= 0 {
        return Err(invalid(format!(
            "image is {}x{}: width and height must both be positive",
            img.width, img.height
        )));
    }
    let format = if img.color {
        PixelFormat::Rgb8
    } else {
        PixelFormat::Gray8
    };
    let info = ImageInfo::new(img.width as u32, img.height as u32, format).map_err(from_core)?;
    limits.check(&info).map_err(from_core)?;
    if img.data.len() != info.byte_len() {
        return Err(invalid(format!(
            "data holds {} bytes, but a {}x{} {} image needs {} ({} per pixel)",
            img.data.len(),
            img.width,
            img.height,
            if img.color { "color" } else { "gray" },
            info.byte_len(),
            info.channels()
        )));
    }
    Ok(info)
}

/// The rotation a classic request names, or INVALID_ARGUMENT.
pub fn rotation(wire: i32) -> Result<Rotation, Status> {
    match WireRotation::try_from(wire) {
        Ok(WireRotation::None) => Ok(Rotation::None),
        Ok(WireRotation::NinetyDeg) => Ok(Rotation::Ccw90),
        Ok(WireRotation::OneEightyDeg) => Ok(Rotation::Ccw180),
        Ok(WireRotation::TwoSeventyDeg) => Ok(Rotation::Ccw270),
        Err(_) => Err(invalid(format!(
            "unknown rotation {wire}: use NONE (0), NINETY_DEG (1), ONE_EIGHTY_DEG (2) or TWO_SEVENTY_DEG (3)"
        ))),
    }
}

fn describe(img: &NlImage, op: &str) -> String {
    format!(
        "{}x{} {} ({} bytes) {op}",
        img.width,
        img.height,
        if img.color { "rgb" } else { "gray" },
        img.data.len()
    )
}

fn logged(mut log: RequestLog, r: Result<NlImage, Status>) -> Result<Response<NlImage>, Status> {
    if let Ok(img) = &r {
        log.add_out(img.data.len());
    }
    log.finish(r.as_ref().map(|_| ()));
    r.map(Response::new)
}

#[tonic::async_trait]
impl NlImageService for ClassicService {
    async fn rotate_image(
        &self,
        request: Request<NlImageRotateRequest>,
    ) -> Result<Response<NlImage>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "NLImageService/RotateImage",
            gate::request_id(request.metadata()),
        );
        let req = request.into_inner();
        let result = async {
            let rotation = rotation(req.rotation)?;
            let img = req
                .image
                .ok_or_else(|| invalid("the request has no image"))?;
            log.describe(describe(&img, &format!("rotate{}", rotation.degrees())));
            log.add_in(img.data.len());
            let info = validate(&img, &self.shared.limits)?;
            let out_info = rotation.output_info(info);
            self.apply(img, info, out_info, deadline, move |src, info, dst| {
                rotate_into(src, info, rotation, dst)
            })
            .await
        }
        .await;
        logged(log, result)
    }

    async fn mean_filter(&self, request: Request<NlImage>) -> Result<Response<NlImage>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "NLImageService/MeanFilter",
            gate::request_id(request.metadata()),
        );
        let img = request.into_inner();
        log.describe(describe(&img, "mean3x3"));
        log.add_in(img.data.len());
        let result = async {
            let info = validate(&img, &self.shared.limits)?;
            self.apply(img, info, info, deadline, mean3x3_into).await
        }
        .await;
        logged(log, result)
    }
}
