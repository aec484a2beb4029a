//! One module per layer, each with one public function that prepares it.

pub mod dependencies;
pub mod python;
pub mod tool;
pub mod uv;
pub mod web_concurrency;

/// Join cache-discard reasons as the log shows them.
pub fn reasons_line(reasons: &[String]) -> String {
    format!("Discarding cache: {}", reasons.join("; "))
}
