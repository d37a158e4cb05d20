//! The classic takehome contract: unary `RotateImage` and `MeanFilter` on
//! whole `NLImage` messages (package-less `/NLImageService/...`).

use nlimage::classic::nl_image_rotate_request::Rotation as WireRotation;
use nlimage::classic::nl_image_service_server::NlImageService;
use nlimage::classic::{NlImage, NlImageRotateRequest};
use nlimage_core::{
    Cpu, ImageInfo, Limits, PixelFormat, Rotation, mean3x3_into_with, rotate_into_with,
};
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::gate;
use crate::log::RequestLog;

/// The classic `NLImageService`.
#[derive(Clone, Debug)]
pub struct ClassicService {
    exec: Executor,
}

impl ClassicService {
    /// A service running its work on `exec`.
    pub fn new(exec: Executor) -> Self {
        Self { exec }
    }

    /// Runs `kernel` over `img` (already validated as `info`) on the pool,
    /// into a fresh buffer of `out_info`'s size.
    async fn apply(
        &self,
        img: NlImage,
        info: ImageInfo,
        out_info: ImageInfo,
        deadline: Option<tokio::time::Instant>,
        kernel: impl FnOnce(Cpu, &[u8], ImageInfo, &mut [u8]) -> nlimage_core::Result<()>
        + Send
        + 'static,
    ) -> Result<NlImage> {
        let out = self
            .exec
            .kernel(img.data, info, out_info, deadline, kernel)
            .await?;
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
pub fn validate(img: &NlImage, limits: &Limits) -> Result<ImageInfo> {
    if img.width <= 0 || img.height <= 0 {
        return Err(Error::invalid(format!(
            "image is {}x{}: width and height must both be positive",
            img.width, img.height
        )));
    }
    let format = if img.color {
        PixelFormat::Rgb8
    } else {
        PixelFormat::Gray8
    };
    let info = ImageInfo::new(img.width as u32, img.height as u32, format)?;
    limits.check(&info)?;
    if img.data.len() != info.byte_len() {
        return Err(Error::invalid(format!(
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
pub fn rotation(wire: i32) -> Result<Rotation> {
    match WireRotation::try_from(wire) {
        Ok(WireRotation::None) => Ok(Rotation::None),
        Ok(WireRotation::NinetyDeg) => Ok(Rotation::Ccw90),
        Ok(WireRotation::OneEightyDeg) => Ok(Rotation::Ccw180),
        Ok(WireRotation::TwoSeventyDeg) => Ok(Rotation::Ccw270),
        Err(_) => Err(Error::invalid(format!(
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

fn logged(
    mut log: RequestLog,
    r: Result<NlImage>,
) -> std::result::Result<Response<NlImage>, Status> {
    if let Ok(img) = &r {
        log.add_out(img.data.len());
    }
    log.finish(r.as_ref().map(|_| ()));
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl NlImageService for ClassicService {
    async fn rotate_image(
        &self,
        request: Request<NlImageRotateRequest>,
    ) -> std::result::Result<Response<NlImage>, Status> {
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
                .ok_or_else(|| Error::invalid("the request has no image"))?;
            log.describe(describe(&img, &format!("rotate{}", rotation.degrees())));
            log.add_in(img.data.len());
            let info = validate(&img, &self.exec.limits)?;
            let out_info = rotation.output_info(info);
            self.apply(img, info, out_info, deadline, move |cpu, src, info, dst| {
                rotate_into_with(cpu, src, info, rotation, dst)
            })
            .await
        }
        .await;
        logged(log, result)
    }

    async fn mean_filter(
        &self,
        request: Request<NlImage>,
    ) -> std::result::Result<Response<NlImage>, Status> {
        let deadline = gate::deadline(request.metadata());
        let mut log = RequestLog::start(
            "NLImageService/MeanFilter",
            gate::request_id(request.metadata()),
        );
        let img = request.into_inner();
        log.describe(describe(&img, "mean3x3"));
        log.add_in(img.data.len());
        let result = async {
            let info = validate(&img, &self.exec.limits)?;
            self.apply(img, info, info, deadline, mean3x3_into_with)
                .await
        }
        .await;
        logged(log, result)
    }
}
