//! Prometheus metrics: requests by method and status code, latency
//! histograms, bytes in and out, queue depth, requests in flight and the
//! memory budget in use. The handlers record through the `metrics` facade
//! (free when no exporter is installed); [`serve`] installs the exporter and
//! its HTTP listener on `--metrics-addr`.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the process-wide Prometheus exporter serving `/metrics` on
/// `addr`. Call once, inside the tokio runtime.
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("nlimage_request_duration_seconds".into()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ],
        )
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())?;
    describe();
    Ok(())
}

fn describe() {
    metrics::describe_counter!(
        "nlimage_requests_total",
        "Finished requests by method and gRPC status code"
    );
    metrics::describe_histogram!(
        "nlimage_request_duration_seconds",
        metrics::Unit::Seconds,
        "Request latency by method, from arrival to the last byte"
    );
    metrics::describe_counter!(
        "nlimage_bytes_in_total",
        metrics::Unit::Bytes,
        "Pixel bytes received"
    );
    metrics::describe_counter!(
        "nlimage_bytes_out_total",
        metrics::Unit::Bytes,
        "Pixel bytes sent"
    );
    metrics::describe_gauge!(
        "nlimage_requests_in_flight",
        "Requests holding a worker slot"
    );
    metrics::describe_gauge!(
        "nlimage_queue_depth",
        "Requests waiting for a slot or memory"
    );
    metrics::describe_gauge!(
        "nlimage_memory_budget_in_use_bytes",
        metrics::Unit::Bytes,
        "Memory reserved by admitted requests"
    );
    metrics::describe_counter!(
        "nlimage_jobs_total",
        "Job runs on this replica by outcome: succeeded, failed, retried, stopped (cancelled or taken over)"
    );
    metrics::describe_histogram!(
        "nlimage_job_queue_wait_seconds",
        metrics::Unit::Seconds,
        "From a job's submission to its claim (a retried job: to each claim)"
    );
    metrics::describe_histogram!(
        "nlimage_job_run_seconds",
        metrics::Unit::Seconds,
        "From a job's claim to its end on this replica"
    );
    metrics::describe_gauge!("nlimage_jobs_running", "Jobs running on this replica");
}

/// Records a job claimed after waiting `wait_seconds` in the queue.
pub fn job_claimed(wait_seconds: f64, running: usize) {
    metrics::histogram!("nlimage_job_queue_wait_seconds").record(wait_seconds);
    metrics::gauge!("nlimage_jobs_running").set(running as f64);
}

/// Records the end of a job's run here.
pub fn job_ended(outcome: &'static str, seconds: f64, running: usize) {
    metrics::counter!("nlimage_jobs_total", "outcome" => outcome).increment(1);
    metrics::histogram!("nlimage_job_run_seconds").record(seconds);
    metrics::gauge!("nlimage_jobs_running").set(running as f64);
}

/// Records a finished request.
pub fn request(
    method: &'static str,
    code: tonic::Code,
    seconds: f64,
    bytes_in: u64,
    bytes_out: u64,
) {
    let code = format!("{code:?}");
    metrics::counter!("nlimage_requests_total", "method" => method, "code" => code).increment(1);
    metrics::histogram!("nlimage_request_duration_seconds", "method" => method).record(seconds);
    metrics::counter!("nlimage_bytes_in_total", "method" => method).increment(bytes_in);
    metrics::counter!("nlimage_bytes_out_total", "method" => method).increment(bytes_out);
}

/// Records the admission state.
pub fn admission(in_flight: usize, queued: usize, memory_in_use: u64) {
    metrics::gauge!("nlimage_requests_in_flight").set(in_flight as f64);
    metrics::gauge!("nlimage_queue_depth").set(queued as f64);
    metrics::gauge!("nlimage_memory_budget_in_use_bytes").set(memory_in_use as f64);
}
