//! Deterministic bytecode. pip's and Python's own `.pyc` writing embeds the (random or
//! build-root) source path and the source mtime, so two builds differ; `py_compile` with a
//! fixed recorded path and `checked-hash` invalidation gives the same bytes every time (PEP
//! 552; the same bytes as `compileall -d PREFIX --invalidation-mode checked-hash`). At import,
//! CPython replaces `co_filename` by the real path anyway (`_imp._fix_co_filename`), so
//! tracebacks stay right.
//!
//! One Python process does it all (`SCRIPT`), for speed: a `.pyc` that came with the source
//! and is still valid is rewritten instead of compiled (marshalling, not compiling: CPython
//! 3.11's library takes 0.5 s instead of 4.5 s on 2 busy cores), and the rest is compiled by a
//! process pool fed in chunks (half the CPU time of `compileall -j0`, which sends one task per
//! file: Django's 970 modules take 1.4 CPU-s instead of 3.0).

use crate::errors::{io_error, PythonBuildpackError};
use crate::tool_env::ToolEnv;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// How each module's bytecode was had.
#[derive(Debug, serde::Deserialize)]
pub struct Written {
    /// Rewritten from a valid `.pyc` that came with the source.
    pub reused: usize,
    /// Compiled here.
    pub compiled: usize,
    /// Left as source (syntax-error test data and the like).
    pub failed: usize,
}

/// Rewrites each valid shipped `.pyc` as a checked-hash one with the prefix path as its file
/// name; compiles the rest (in a process pool when there are many); deletes every other `.pyc`.
/// argv: <tree the .py files came from, holding their shipped __pycache__> <tree to fill>
/// <prefix recorded as the tree's location>.
const SCRIPT: &str = r#"
import sys, os, json, marshal, py_compile
from importlib.util import MAGIC_NUMBER, source_hash
src_root, dst_root, prefix = sys.argv[1:4]
tag = sys.implementation.cache_tag
CHECKED_HASH = py_compile.PycInvalidationMode.CHECKED_HASH
def refile(code, name):
    consts = tuple(refile(c, name) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=name, co_consts=consts)
def compile_one(job):
    src, cfile, dfile = job
    try:
        py_compile.compile(src, cfile, dfile, doraise=True, invalidation_mode=CHECKED_HASH)
        return True
    except (py_compile.PyCompileError, SyntaxError, ValueError):
        return False
def shipped(rel, name):
    try:
        st = os.stat(os.path.join(src_root, rel, name))
        with open(os.path.join(src_root, rel, "__pycache__", name[:-3] + "." + tag + ".pyc"), "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = (MAGIC_NUMBER + (0).to_bytes(4, "little")
              + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
              + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
    return data if data[:16] == header else None
written, todo, reused = set(), [], 0
for dirpath, dirnames, filenames in os.walk(dst_root):
    dirnames.sort()
    rel = os.path.relpath(dirpath, dst_root)
    for name in sorted(filenames):
        if not name.endswith(".py"):
            continue
        src = os.path.join(dirpath, name)
        cfile = os.path.join(dirpath, "__pycache__", name[:-3] + "." + tag + ".pyc")
        dfile = os.path.normpath(os.path.join(prefix, rel, name))
        written.add(cfile)
        data = shipped(rel, name)
        if data is None:
            todo.append((src, cfile, dfile))
            continue
        with open(src, "rb") as f:
            source = f.read()
        code = refile(marshal.loads(memoryview(data)[16:]), dfile)
        os.makedirs(os.path.dirname(cfile), exist_ok=True)
        with open(cfile, "wb") as f:
            f.write(MAGIC_NUMBER + (3).to_bytes(4, "little") + source_hash(source) + marshal.dumps(code))
        reused += 1
if len(todo) > 32:
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor() as pool:
        results = list(pool.map(compile_one, todo, chunksize=16))
else:
    results = [compile_one(job) for job in todo]
for dirpath, dirnames, filenames in os.walk(dst_root):
    if os.path.basename(dirpath) == "__pycache__":
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path not in written:
                os.remove(path)
print(json.dumps({"reused": reused, "compiled": sum(results), "failed": len(results) - sum(results)}))
"#;

/// A bytecode run going on in the background (see `spawn`).
pub struct Pending {
    child: Child,
    dir: PathBuf,
}

/// Start writing bytecode for every `.py` below `dir`, recording `prefix` as its location;
/// `from` is the tree the sources came from (`dir` itself when they were not copied), whose
/// still-valid `__pycache__` entries are reused. Runs in the background until `wait`.
pub fn spawn(
    python: &Path,
    from: &Path,
    dir: &Path,
    prefix: &str,
    env: &ToolEnv,
) -> Result<Pending, PythonBuildpackError> {
    let child = env
        .command(python)
        // No site (nothing from site-packages is needed); a fixed hash seed, so that nothing
        // in the output can depend on the process's randomisation.
        .args(["-B", "-S", "-c", SCRIPT])
        .arg(from)
        .arg(dir)
        .arg(prefix)
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error(python))?;
    Ok(Pending {
        child,
        dir: dir.to_path_buf(),
    })
}

impl Pending {
    /// Wait for the run to finish and read its report.
    pub fn wait(self) -> Result<Written, PythonBuildpackError> {
        let dir = self.dir;
        let fail = |detail: String| PythonBuildpackError::Command {
            what: "writing bytecode".to_string(),
            file: dir.display().to_string(),
            detail,
        };
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            return Err(fail(String::from_utf8_lossy(&output.stderr).into_owned()));
        }
        let last = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        serde_json::from_str(&last).map_err(|e| fail(format!("unexpected report {last:?}: {e}")))
    }
}
