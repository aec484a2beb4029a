//! The user-provided environment (`slug build --env`, `--env-file`, `project.toml`'s build
//! env) as the CNB platform spec has it reach a buildpack without `clear-env`: set in its
//! process environment, except that the layer path variables get the user's value
//! *prepended* to the build's own, never replacing it
//! (<https://github.com/buildpacks/spec/blob/main/platform.md#user-provided-variables>).
//!
//! The engine applies that rule when it starts a buildpack; a buildpack that reads
//! `<platform>/env/` again for the tools it runs must not undo it by setting these variables
//! from the files: a `PATH=/x` config var would then hide `strip`, `git` and the compilers.

/// The layer path variables: each holds a `:`-separated search list the build's tools need.
pub const LAYER_PATH_VARS: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "LIBRARY_PATH",
    "CPATH",
    "PKG_CONFIG_PATH",
];

/// Is `name` one of [`LAYER_PATH_VARS`]? Such a value from `<platform>/env/` is already in the
/// process environment, prepended by the platform.
pub fn is_layer_path_var(name: impl AsRef<std::ffi::OsStr>) -> bool {
    let name = name.as_ref();
    LAYER_PATH_VARS
        .iter()
        .any(|v| std::ffi::OsStr::new(v) == name)
}
