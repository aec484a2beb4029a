//! Sizes as the flags take them (MiB) and as the build log shows them.

pub const MIB: u64 = 1024 * 1024;

/// `12.3 MiB`, or `45.6 KiB` below a MiB.
pub fn human(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
