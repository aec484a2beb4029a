//! Deterministic bytecode. pip's and Python's own `.pyc` writing embeds the (random or
//! build-root) source path and the source mtime, so two builds differ; `compileall` with a
//! fixed `-d` prefix and `checked-hash` invalidation gives the same bytes every time
//! (<https://docs.python.org/3/library/compileall.html>, PEP 552). At import, CPython replaces
//! `co_filename` by the real path anyway (`_imp._fix_co_filename`), so tracebacks stay right.

use crate::errors::{io_error, PythonBuildpackError};
use crate::tool_env::ToolEnv;
use std::path::Path;
use std::process::Stdio;

/// Compile every `.py` below `dir`, recording `prefix` as its location. Returns whether every
/// file compiled; when `tolerate_failures` is false a failure is an error.
pub fn compile(
    python: &Path,
    dir: &Path,
    prefix: &str,
    env: &ToolEnv,
    tolerate_failures: bool,
) -> Result<bool, PythonBuildpackError> {
    let output = env
        .command(python)
        .args(["-m", "compileall", "-q", "-j", "0", "--invalidation-mode"])
        .args(["checked-hash", "-d", prefix])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(python))?;
    if output.status.success() {
        return Ok(true);
    }
    if tolerate_failures {
        return Ok(false);
    }
    Err(PythonBuildpackError::Command {
        what: "compiling bytecode".to_string(),
        file: dir.display().to_string(),
        detail: String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    })
}
