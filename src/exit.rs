//! The stable exit codes (README, "Exit codes"), and the trait every command error implements
//! so that `main` can map it without knowing its concern.

pub const BUILT: i32 = 0;
pub const OTHER: i32 = 1;
pub const USAGE: i32 = 2;
pub const NO_BUILDPACK: i32 = 10;
pub const BUILDPACK_FAILED: i32 = 20;
pub const INVALID_INPUT: i32 = 30;
pub const TEMPORARY: i32 = 75;

pub trait ExitCode {
    fn exit_code(&self) -> i32;
}
