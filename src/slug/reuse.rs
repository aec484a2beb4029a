//! The engine's side of reused deflate (`slugc_precompress::reuse`): a layer part may hold,
//! under [`DIR`], fragments of a download's own deflate stream for some of its files; the
//! gzip stage puts them in the slug as they are instead of compressing those bytes again.
//!
//! Which fragments a part has is read from their headers alone ([`find`]), so that the part
//! cache can key a body by them without reading the files. Before a body is compressed,
//! [`Fragments::validated`] keeps only the fragments that still fit their files (size and CRC-32 of the
//! range they make) and their own CRC-32: the slug's bytes depend on the part's files and
//! on which valid fragments it has, never on the cache.

use super::archive::{entry_path, Part};
use super::hex;
use sha2::{Digest, Sha256};
pub use slugc_precompress::reuse::{Header, DIR, ENV, WINDOW};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A fragment for one file of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// The file's path as the tar names it (`./app/.layers/<bp>/<layer>/bin/node`).
    pub tar_path: Vec<u8>,
    /// The file on disk.
    pub file: PathBuf,
    /// The fragment file: [`Header`], then the fragment.
    pub fragment: PathBuf,
    pub header: Header,
}

/// A part's fragments, as their headers say, and what they add to its part-cache key.
#[derive(Debug, Default)]
pub struct Fragments {
    splices: Vec<Splice>,
    key: Option<String>,
}

impl Fragments {
    /// A body's key in the part cache: its digest, and the fragments it is made with.
    pub fn cache_key(&self, body: &str) -> String {
        match &self.key {
            Some(k) => format!("{body}-{k}"),
            None => body.to_string(),
        }
    }

    /// The fragments that fit their files and are whole (reads each file's range and each
    /// fragment once).
    pub fn validated(&self) -> Vec<Splice> {
        self.splices
            .iter()
            .filter(|s| fits(s).is_ok_and(|ok| ok))
            .cloned()
            .collect()
    }
}

/// The fragments under a part's [`DIR`], when the part leaves that directory out of the
/// slug (layer parts do; see `build::layer_part`), sorted by path. Unreadable or malformed
/// ones are skipped: a fragment only ever saves time.
pub fn find(part: &Part) -> Fragments {
    if !part.exclude.iter().any(|e| e == DIR) {
        return Fragments::default();
    }
    let root = part.source.join(DIR);
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Ok(rel) = path.strip_prefix(&root) else {
                continue;
            };
            let mut head = [0u8; Header::LEN];
            let read = File::open(&path).and_then(|mut f| f.read_exact(&mut head));
            let Some(header) = read.ok().and_then(|()| Header::parse(&head)) else {
                continue;
            };
            let mut tar_path = format!("./{}/", entry_path(&part.prefix)).into_bytes();
            tar_path.extend_from_slice(rel.as_os_str().as_bytes());
            found.push(Splice {
                tar_path,
                file: part.source.join(rel),
                fragment: path,
                header,
            });
        }
    }
    found.sort_by(|a, b| a.tar_path.cmp(&b.tar_path));
    let key = (!found.is_empty()).then(|| {
        let mut sha = Sha256::new();
        for s in &found {
            sha.update((s.tar_path.len() as u64).to_le_bytes());
            sha.update(&s.tar_path);
            sha.update(s.header.to_bytes());
        }
        hex(&sha.finalize())[..16].to_string()
    });
    Fragments {
        splices: found,
        key,
    }
}

fn fits(s: &Splice) -> io::Result<bool> {
    let h = &s.header;
    let meta = std::fs::symlink_metadata(&s.file)?;
    if !meta.is_file() || meta.len() != h.file_size {
        return Ok(false);
    }
    let mut file = File::open(&s.file)?;
    file.seek(SeekFrom::Start(h.start))?;
    if crc_of(&mut file.take(h.end - h.start))? != (h.data_crc, h.end - h.start) {
        return Ok(false);
    }
    let fragment = File::open(&s.fragment)?;
    if fragment.metadata()?.len() != Header::LEN as u64 + h.fragment_len() {
        return Ok(false);
    }
    let mut fragment = fragment;
    fragment.seek(SeekFrom::Start(Header::LEN as u64))?;
    Ok(crc_of(&mut fragment)? == (h.fragment_crc, h.fragment_len()))
}

/// CRC-32 and length of what `r` reads.
fn crc_of(r: &mut impl Read) -> io::Result<(u32, u64)> {
    let mut crc = libdeflater::Crc::new();
    let update = |piece: &[u8]| -> io::Result<()> {
        crc.update(piece);
        Ok(())
    };
    let len = each_piece(r, update, |e| e)?;
    Ok((crc.sum(), len))
}

/// Reads `r` to its end, handing each piece to `each`; returns how many bytes it read. A
/// read error goes through `read_error`, so that callers tell it from their own.
pub fn each_piece<E>(
    r: &mut impl Read,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
    read_error: impl Fn(io::Error) -> E,
) -> Result<u64, E> {
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        each(&buf[..n])?;
        len += n as u64;
    }
}

/// A reader of the first `len` bytes of the fragment (after its header).
pub fn open_fragment(path: &Path, len: u64) -> io::Result<impl Read> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(Header::LEN as u64))?;
    Ok(f.take(len))
}

/// The fragment's last byte, when it is partial (`bits` not a multiple of 8), else 0.
pub fn last_partial_byte(s: &Splice) -> io::Result<u8> {
    if s.header.bits % 8 == 0 {
        return Ok(0);
    }
    let mut f = File::open(&s.fragment)?;
    f.seek(SeekFrom::Start(Header::LEN as u64 + s.header.bits / 8))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0])
}
