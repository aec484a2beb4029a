//! `slug cache clear` (an app's build cache) and `slug cache gc` (the machine-wide content
//! cache).

use crate::app::{self, AppError};
use crate::cache::{self, Cache, CacheError};
use crate::exit::{self, ExitCode};
use crate::size;
use slug_format::ContentCache;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CacheClearArgs {
    /// The app whose cache to clear
    #[arg(default_value = ".")]
    pub app_dir: PathBuf,
    /// The cache dir, when it is not the default one
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CacheGcArgs {
    /// Keep at most this many MiB of compressed parts and downloads, the most recently used
    #[arg(long, value_name = "MiB", default_value_t = slug_format::content::DEFAULT_MAX_BYTES / size::MIB)]
    pub max_size: u64,
    /// The machine-wide content cache
    /// [default: $SLUGC_CONTENT_CACHE, else $XDG_CACHE_HOME/slugc/content]
    #[arg(long, value_name = "DIR")]
    pub content_cache: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheCommandError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot write {path}: {source}")]
    Gc {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExitCode for CacheCommandError {
    fn exit_code(&self) -> i32 {
        match self {
            CacheCommandError::App(_) => exit::INVALID_INPUT,
            _ => exit::OTHER,
        }
    }
}

pub fn clear(args: CacheClearArgs) -> Result<i32, CacheCommandError> {
    let dir = match args.cache_dir {
        Some(d) => d,
        None => cache::default_dir(&app::check_app_dir(&args.app_dir)?),
    };
    if !dir.exists() {
        eprintln!("No cache at {}", dir.display());
        return Ok(exit::BUILT);
    }
    Cache::open(&dir)?.clear()?;
    eprintln!("Cleared the cache {}", dir.display());
    Ok(exit::BUILT)
}

pub fn gc(args: CacheGcArgs) -> Result<i32, CacheCommandError> {
    let dir = crate::dirs::content(args.content_cache.as_deref());
    let c = ContentCache::new(&dir)
        .gc(args.max_size.saturating_mul(size::MIB))
        .map_err(|source| CacheCommandError::Gc {
            path: dir.clone(),
            source,
        })?;
    eprintln!(
        "Content cache {}: kept {} entries ({}), removed {} ({})",
        dir.display(),
        c.kept_entries,
        size::human(c.kept_bytes),
        c.removed_entries,
        size::human(c.removed_bytes)
    );
    Ok(exit::BUILT)
}
