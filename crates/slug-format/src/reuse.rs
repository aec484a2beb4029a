//! Reused deflate: the biggest file of a runtime layer (Node.js's 125 MB `bin/node`) goes
//! into the slug as the download's own deflate blocks instead of being compressed again,
//! which is most of a cold Node.js build's CPU time (docs/performance.md).
//!
//! The one contract, between the buildpack that unpacks a download and the export:
//! - while the buildpack inflates the download it notes where each deflate block ends
//!   ([`BlockReader`]);
//! - it then saves, in the layer's [`DIR`], the blocks that lie wholly inside the file's data
//!   and at least [`WINDOW`] bytes into it, copied as they are (the first starts on a byte
//!   border, so no bit moves and stored blocks keep their padding), with a [`Descriptor`];
//! - the export leaves [`DIR`] out of the part, checks the file's bytes against the
//!   descriptor, and writes that run of the file as one gzip member of its own
//!   ([`member`]): the [`WINDOW`] bytes before it as a stored block (every back-reference of
//!   the blocks reaches into it at most), the blocks, an empty final block.
//!
//! The member is the same bytes for the same download, whichever build, cache or machine:
//! a layer holds its blocks for as long as it lives. A layer without [`DIR`] (another
//! platform made it) is exported as usual, to other bytes; the Node.js buildpack rebuilds
//! such a layer under `slug build`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// The dir in a layer that holds its reused blocks; never part of the slug.
pub const DIR: &str = ".slugc-reuse";
const DESCRIPTOR: &str = "reuse.json";
const BLOCKS: &str = "blocks.deflate";
/// How far back a deflate back-reference reaches at most (RFC 1951 §3.2.5).
pub const WINDOW: u64 = 32 * 1024;
/// A shorter run is not worth a member of its own.
const MIN_LEN: u64 = 1 << 20;
const MAX_DESCRIPTOR: u64 = 64 * 1024;
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// `<layer>/.slugc-reuse/reuse.json`: written for every layer the buildpack makes, with no
/// splice when the download's blocks do not allow one, so that a layer without it is known
/// to come from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    pub version: u32,
    pub splice: Option<Splice>,
}

/// A run of a file's data that the blocks in `blocks.deflate` decode to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Splice {
    /// The file, relative to the layer (`bin/node`).
    pub file: String,
    /// Where the run begins in the file (at least [`WINDOW`]) and how long it is.
    pub start: u64,
    pub len: u64,
    /// CRC-32 of the [`WINDOW`] bytes before the run and the run: the member's own. The
    /// export checks the file against it before it uses the blocks and again as it reads
    /// the file, so that a file changed after its blocks were saved (a build step that
    /// patched the runtime) is compressed as any other. A check against accidents: code that
    /// can write the layer can as well write the machine's part cache, which every build of
    /// the user shares (README, Reliability).
    pub crc32: u32,
    /// How many bits of `blocks.deflate` are the blocks (the rest of its last byte is not).
    pub bits: u64,
    /// CRC-32 of `blocks.deflate`, checked before the blocks are used.
    pub blocks_crc32: u32,
    /// The download the blocks come from (its integrity): part of the part cache's key.
    pub source: String,
}

/// A layer's splice, as the export uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    pub splice: Splice,
    /// `<layer>/.slugc-reuse/blocks.deflate`
    pub blocks: PathBuf,
    /// `<layer>/<file>`
    pub file: PathBuf,
}

/// Where a deflate block ends: its bit in the compressed stream (from the stream's first
/// byte, gzip header included) and the bytes decompressed by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEnd {
    pub bit: u64,
    pub out: u64,
}

/// A gzip decoder that notes where each deflate block ends, with zlib's `Z_BLOCK` (the way
/// zlib's `zran.c` indexes a stream). One gzip member: an npm tarball.
pub struct BlockReader<R> {
    inner: R,
    // Boxed: zlib keeps a pointer to the stream in its state, so it must not move.
    strm: Box<libz_rs_sys::z_stream>,
    input: Vec<u8>,
    ends: Vec<BlockEnd>,
    finished: bool,
}

impl<R: Read> BlockReader<R> {
    pub fn new(inner: R) -> io::Result<Self> {
        // SAFETY: an all-zero z_stream is what zlib's API asks for before inflateInit
        // (no allocator functions: zlib's own).
        let mut strm: Box<libz_rs_sys::z_stream> = Box::new(unsafe { std::mem::zeroed() });
        // 16 + 15: a gzip wrapper, the largest window.
        // SAFETY: strm is a valid zeroed stream; the version and size are this library's.
        let ret = unsafe {
            libz_rs_sys::inflateInit2_(
                &mut *strm,
                16 + 15,
                libz_rs_sys::zlibVersion(),
                std::mem::size_of::<libz_rs_sys::z_stream>() as i32,
            )
        };
        if ret != libz_rs_sys::Z_OK {
            return Err(io::Error::other(format!("inflateInit2 failed ({ret})")));
        }
        Ok(Self {
            inner,
            strm,
            input: vec![0; 64 * 1024],
            ends: Vec::new(),
            finished: false,
        })
    }

    /// The block ends seen so far, in stream order.
    pub fn ends(&self) -> &[BlockEnd] {
        &self.ends
    }
}

impl<R: Read> Read for BlockReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.finished || out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.strm.avail_in == 0 {
                let n = loop {
                    match self.inner.read(&mut self.input) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r?,
                    }
                };
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the gzip stream ends early",
                    ));
                }
                self.strm.next_in = self.input.as_ptr();
                self.strm.avail_in = n as u32;
            }
            let want = out.len().min(u32::MAX as usize);
            self.strm.next_out = out.as_mut_ptr();
            self.strm.avail_out = want as u32;
            // SAFETY: next_in/avail_in describe unread bytes of self.input (never
            // reallocated), next_out/avail_out the caller's buffer; the stream was
            // initialised in new().
            let ret = unsafe { libz_rs_sys::inflate(&mut *self.strm, libz_rs_sys::Z_BLOCK) };
            let produced = want - self.strm.avail_out as usize;
            // Bit 7: stopped at a block border; bit 6: inside the last block; the low bits:
            // bits taken from the input but not used yet.
            let dt = self.strm.data_type;
            if dt & 128 != 0 && dt & 64 == 0 {
                let end = BlockEnd {
                    bit: self.strm.total_in * 8 - (dt & 63) as u64,
                    out: self.strm.total_out,
                };
                if self.ends.last() != Some(&end) {
                    self.ends.push(end);
                }
            }
            match ret {
                libz_rs_sys::Z_STREAM_END => {
                    self.finished = true;
                    return Ok(produced);
                }
                libz_rs_sys::Z_OK | libz_rs_sys::Z_BUF_ERROR => {
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("invalid gzip data ({ret})"),
                    ))
                }
            }
        }
    }
}

impl<R> Drop for BlockReader<R> {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised in new() and is ended once.
        unsafe {
            libz_rs_sys::inflateEnd(&mut *self.strm);
        }
    }
}

/// Which blocks of a stream to keep for a file whose data begins `data` bytes into the
/// decompressed stream and is `size` long: from the first block end on a byte border at
/// least [`WINDOW`] into the file, to the last one inside it.
pub fn plan(ends: &[BlockEnd], data: u64, size: u64) -> Option<(BlockEnd, BlockEnd)> {
    let first = *ends
        .iter()
        .find(|e| e.bit % 8 == 0 && e.out >= data + WINDOW)?;
    // Strictly inside: an end exactly at the file's last byte is seen only when its bits
    // happened to arrive with the file's (it takes no output), so it would depend on how the
    // download was read.
    let last = *ends.iter().rev().find(|e| e.out < data + size)?;
    (last.out >= first.out + MIN_LEN).then_some((first, last))
}

/// `<layer>/.slugc-reuse` for `file` (relative to `layer`), whose data begins `data` bytes
/// into the decompressed `gz` (one gzip member whose block ends are `ends`); `source` names
/// the download. Taken from the download at once, [`Keep::save`]d later, on another thread
/// if the caller likes (checking the file is most of the work). Without a usable run, the
/// descriptor says so.
pub struct Keep {
    layer: PathBuf,
    file: String,
    source: String,
    /// The blocks and where their run lies in the file.
    run: Option<(Vec<u8>, BlockEnd, BlockEnd, u64)>,
}

impl Keep {
    pub fn new(
        layer: &Path,
        file: &str,
        gz: &[u8],
        ends: &[BlockEnd],
        data: u64,
        source: &str,
    ) -> Result<Self, ReuseError> {
        let path = layer.join(file);
        let meta =
            fs::symlink_metadata(&path).map_err(|source| ReuseError::Read { path, source })?;
        // A link (or anything but a file) has no data of its own in the tarball to reuse.
        let size = if meta.is_file() { meta.len() } else { 0 };
        let run = plan(ends, data, size).and_then(|(first, last)| {
            let blocks = gz.get((first.bit / 8) as usize..last.bit.div_ceil(8) as usize)?;
            Some((blocks.to_vec(), first, last, data))
        });
        Ok(Self {
            layer: layer.to_path_buf(),
            file: file.to_string(),
            source: source.to_string(),
            run,
        })
    }

    pub fn save(self) -> Result<(), ReuseError> {
        let dir = self.layer.join(DIR);
        let write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReuseError::Write { path, source }
        };
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(write(&dir)(e)),
            _ => {}
        }
        fs::create_dir_all(&dir).map_err(write(&dir))?;
        let mut splice = None;
        if let Some((blocks, first, last, data)) = self.run {
            let start = first.out - data;
            let len = last.out - first.out;
            let path = self.layer.join(&self.file);
            let crc32 = crc_of_run(&path, start, len)?;
            let bits = last.bit - first.bit;
            // The blocks decode to the download's bytes and the CRC is the file's: they must
            // agree (a file patched since it was unpacked, or a sparse entry, would not), so
            // the member is made and read back once, here, beside the install.
            if decodes_to(&path, start, &blocks, bits, crc32, len)? {
                fs::write(dir.join(BLOCKS), &blocks).map_err(write(&dir.join(BLOCKS)))?;
                splice = Some(Splice {
                    file: self.file,
                    start,
                    len,
                    crc32,
                    bits,
                    blocks_crc32: libdeflater::crc32(&blocks),
                    source: self.source,
                });
            }
        }
        let descriptor = Descriptor {
            version: VERSION,
            splice,
        };
        // A struct of strings and numbers always serialises.
        let json = serde_json::to_vec_pretty(&descriptor).unwrap_or_default();
        fs::write(dir.join(DESCRIPTOR), json).map_err(write(&dir.join(DESCRIPTOR)))
    }
}

/// Whether `layer` has a descriptor that [`find`] accepts (the buildpack made the layer
/// under `slug build`, and nothing damaged it since).
pub fn has_descriptor(layer: &Path) -> bool {
    let present = layer
        .join(DIR)
        .join(DESCRIPTOR)
        .symlink_metadata()
        .is_ok_and(|m| m.is_file());
    present && find(layer).is_ok()
}

/// The layer's splice, if it has one that is well formed. The layer is a buildpack's: read
/// bounded, no links followed, paths kept inside it.
pub fn find(layer: &Path) -> Result<Option<Reuse>, ReuseError> {
    let dir = layer.join(DIR);
    let path = dir.join(DESCRIPTOR);
    let invalid = |reason: &str| ReuseError::Invalid {
        path: path.clone(),
        reason: reason.to_string(),
    };
    match dir.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReuseError::Read { path: dir, source }),
        Ok(m) if !m.is_dir() => return Err(invalid("not a directory")),
        Ok(_) => {}
    }
    let meta = path.symlink_metadata().map_err(|source| ReuseError::Read {
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() || meta.len() > MAX_DESCRIPTOR {
        return Err(invalid("not a regular file of at most 64 KiB"));
    }
    let bytes = fs::read(&path).map_err(|source| ReuseError::Read {
        path: path.clone(),
        source,
    })?;
    let descriptor: Descriptor =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if descriptor.version != VERSION {
        return Err(invalid("unknown version"));
    }
    let Some(splice) = descriptor.splice else {
        return Ok(None);
    };
    let rel = Path::new(&splice.file);
    if splice.file.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid("the file is not a plain path inside the layer"));
    }
    // Deflate never grows data by more than 5 bytes per stored block of 64 KiB.
    let most_bits = splice
        .len
        .saturating_add(splice.len / 8)
        .saturating_add(1 << 16)
        * 8;
    if splice.start < WINDOW
        || splice.len == 0
        || splice.start.checked_add(splice.len).is_none()
        || splice.bits < 8
        || splice.bits > most_bits
    {
        return Err(invalid("the run is out of range"));
    }
    let blocks = dir.join(BLOCKS);
    let blocks_meta = blocks
        .symlink_metadata()
        .map_err(|source| ReuseError::Read {
            path: blocks.clone(),
            source,
        })?;
    if !blocks_meta.is_file() || blocks_meta.len() != splice.bits.div_ceil(8) {
        return Err(invalid("blocks.deflate does not hold the bits it names"));
    }
    Ok(Some(Reuse {
        file: layer.join(rel),
        splice,
        blocks,
    }))
}

impl Reuse {
    /// Whether the file still holds the run the blocks decode to, and the blocks are those
    /// saved (read and checked: a changed file is compressed as usual). A file or blocks
    /// that cannot be read are an error, not a reason to compress: the bytes would then
    /// depend on the fault.
    pub fn matches(&self) -> Result<bool, ReuseError> {
        let meta = self
            .file
            .symlink_metadata()
            .map_err(|source| ReuseError::Read {
                path: self.file.clone(),
                source,
            })?;
        if !meta.is_file() || meta.len() < self.splice.start + self.splice.len {
            return Ok(false);
        }
        let blocks = fs::read(&self.blocks).map_err(|source| ReuseError::Read {
            path: self.blocks.clone(),
            source,
        })?;
        if libdeflater::crc32(&blocks) != self.splice.blocks_crc32 {
            return Ok(false);
        }
        Ok(crc_of_run(&self.file, self.splice.start, self.splice.len)? == self.splice.crc32)
    }

    /// The part cache's key for a part of tar digest `digest` holding this splice: the
    /// member's bytes depend on the blocks as well as on the tar.
    pub fn cache_key(&self, digest: &str) -> String {
        let mut sha = Sha256::new();
        sha.update(b"slugc reuse 1\0");
        sha.update(digest.as_bytes());
        // A struct of strings and numbers always serialises.
        sha.update(serde_json::to_vec(&self.splice).unwrap_or_default());
        crate::hex(&sha.finalize())
    }
}

/// Whether the member of `blocks` for the run of `path` at `start` decodes to the file's
/// bytes: gzip's own check of `crc` and the length, on the member read back.
fn decodes_to(
    path: &Path,
    start: u64,
    blocks: &[u8],
    bits: u64,
    crc: u32,
    len: u64,
) -> Result<bool, ReuseError> {
    let read = |source| ReuseError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read)?;
    f.seek(SeekFrom::Start(start - WINDOW)).map_err(read)?;
    let mut window = vec![0u8; WINDOW as usize];
    f.read_exact(&mut window).map_err(read)?;
    let mut reader = blocks;
    let Ok(m) = member(&window, &mut reader, bits, crc, len) else {
        return Ok(false);
    };
    let mut decoder = flate2::read::GzDecoder::new(&m[..]);
    let decoded = io::copy(&mut decoder, &mut io::sink());
    Ok(decoded.is_ok_and(|n| n == WINDOW + len))
}

/// The CRC-32 of `len` bytes of `path` from `start` with the [`WINDOW`] before them.
fn crc_of_run(path: &Path, start: u64, len: u64) -> Result<u32, ReuseError> {
    let read = |source| ReuseError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read)?;
    f.seek(SeekFrom::Start(start - WINDOW)).map_err(read)?;
    let mut crc = libdeflater::Crc::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut window = vec![0u8; WINDOW as usize];
    f.read_exact(&mut window).map_err(read)?;
    crc.update(&window);
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..want]).map_err(read)?;
        crc.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(crc.sum())
}

/// A run of a part's tar that becomes one member of a download's own deflate blocks instead
/// of being compressed: it begins `start` bytes after the point where the producer marks the
/// start of the file's data ([`crate::gzip::Marker`]).
#[derive(Debug, Clone)]
pub struct Spliced {
    pub start: u64,
    pub len: u64,
    /// The CRC-32 the window and the run must have: the blocks decode to that.
    pub crc32: u32,
    pub blocks: PathBuf,
    pub bits: u64,
}

impl Reuse {
    /// The splice for the compressor.
    pub fn spliced(&self) -> Spliced {
        Spliced {
            start: self.splice.start,
            len: self.splice.len,
            crc32: self.splice.crc32,
            blocks: self.blocks.clone(),
            bits: self.splice.bits,
        }
    }
}

/// Where a splice stands in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The file has not begun.
    Waiting,
    /// The file has begun; its window begins at the given offset.
    Before(u64),
    Window,
    Run,
    Done,
}

/// What the compressor's sink does at a point of the input.
pub(crate) enum Event {
    /// Nothing more here.
    Idle,
    /// The splice moved on: ask again.
    Moved,
    /// The window begins: the chunk so far ends here.
    Cut,
    /// The run is over: its member, and how many input bytes it stands for.
    Member { member: Vec<u8>, input: usize },
}

/// A splice as the sink goes through the input: chunks up to the window, then the window and
/// the run taken here (kept, and checked), then chunks again.
pub(crate) struct Splicer {
    run: Spliced,
    phase: Phase,
    window: Vec<u8>,
    crc: libdeflater::Crc,
    /// Where the run ends in the input.
    end: u64,
}

impl Splicer {
    pub(crate) fn new(run: Spliced) -> Self {
        Self {
            run,
            phase: Phase::Waiting,
            window: Vec::with_capacity(WINDOW as usize),
            crc: libdeflater::Crc::new(),
            end: 0,
        }
    }

    /// Whether the input is inside the window or the run.
    pub(crate) fn inside(&self) -> bool {
        matches!(self.phase, Phase::Window | Phase::Run)
    }

    /// How many bytes from `offset` on may still go into chunks before the window, if the
    /// window is coming.
    pub(crate) fn room(&self, offset: u64) -> Option<u64> {
        match self.phase {
            Phase::Before(cut) => Some(cut - offset),
            _ => None,
        }
    }

    /// Takes what of `buf` (at `offset`) is window or run: how many bytes, or `None` when
    /// they go into chunks.
    pub(crate) fn take(&mut self, offset: u64, buf: &[u8]) -> Option<usize> {
        let n = match self.phase {
            Phase::Window => buf.len().min(WINDOW as usize - self.window.len()),
            Phase::Run => buf.len().min((self.end - offset) as usize),
            _ => return None,
        };
        if self.phase == Phase::Window {
            self.window.extend_from_slice(&buf[..n]);
        }
        self.crc.update(&buf[..n]);
        Some(n)
    }

    /// The next event at `offset`; `marked`: the file's data has begun.
    pub(crate) fn step(&mut self, offset: u64, marked: bool) -> io::Result<Event> {
        Ok(match self.phase {
            // A run must leave room for its window in the file (`find` checks).
            Phase::Waiting if self.run.start < WINDOW => {
                self.phase = Phase::Done;
                Event::Moved
            }
            Phase::Waiting if marked => {
                self.phase = Phase::Before(offset + self.run.start - WINDOW);
                self.end = offset + self.run.start + self.run.len;
                Event::Moved
            }
            Phase::Before(cut) if offset == cut => {
                self.phase = Phase::Window;
                Event::Cut
            }
            Phase::Window if self.window.len() as u64 == WINDOW => {
                self.phase = Phase::Run;
                Event::Moved
            }
            Phase::Run if offset == self.end => {
                self.phase = Phase::Done;
                let crc = self.crc.sum();
                if crc != self.run.crc32 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the spliced file changed while it was read",
                    ));
                }
                let mut blocks = File::open(&self.run.blocks)?;
                let window = std::mem::take(&mut self.window);
                let member = member(&window, &mut blocks, self.run.bits, crc, self.run.len)?;
                Event::Member {
                    member,
                    input: (WINDOW + self.run.len) as usize,
                }
            }
            _ => Event::Idle,
        })
    }
}

/// The gzip member for a splice: `window` (the [`WINDOW`] bytes before the run) stored, the
/// first `bits` bits of `blocks` (which decode to the `len` bytes of the run; read straight
/// into the member, which is the one copy held), an empty final block; then `crc` (of the
/// window and the run) and the length (RFC 1952).
pub fn member(
    window: &[u8],
    blocks: &mut dyn Read,
    bits: u64,
    crc: u32,
    len: u64,
) -> io::Result<Vec<u8>> {
    let size = bits.div_ceil(8);
    let mut m =
        Vec::with_capacity(crate::gzip::HEADER.len() + 5 + window.len() + size as usize + 10);
    m.extend_from_slice(&crate::gzip::HEADER);
    // A stored block, not the last: BFINAL 0, BTYPE 00, then up to the byte border.
    m.push(0);
    let n = window.len() as u16;
    m.extend_from_slice(&n.to_le_bytes());
    m.extend_from_slice(&(!n).to_le_bytes());
    m.extend_from_slice(window);
    // The blocks start on a byte border here as in the download: no bit moves.
    let at = m.len();
    blocks.take(size).read_to_end(&mut m)?;
    if (m.len() - at) as u64 != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blocks are shorter than their descriptor says",
        ));
    }
    let used = (bits % 8) as u32;
    let mut acc: u32 = 0;
    if used > 0 {
        // The last byte's bits past the blocks belong to the download's next block.
        acc = m.pop().map_or(0, u32::from) & ((1 << used) - 1);
    }
    // The last block: BFINAL 1, BTYPE 01 (fixed codes), then end-of-block (code 256: seven
    // zero bits). Bits go in from the low end (RFC 1951 §3.1.1).
    acc |= 0b011 << used;
    let nbits = used + 3 + 7;
    for i in 0..nbits.div_ceil(8) {
        m.push((acc >> (8 * i)) as u8);
    }
    m.extend_from_slice(&crc.to_le_bytes());
    // ISIZE: the length modulo 2^32.
    m.extend_from_slice(&((window.len() as u64 + len) as u32).to_le_bytes());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gzip::tests::gunzip;
    use std::io::Write;

    /// Text, then bytes no encoder can shrink (stored blocks), then text again.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 0u64;
        while v.len() < 3 << 20 {
            v.extend_from_slice(
                format!("line {i} of the sample, {}\n", i * 7919 % 1013).as_bytes(),
            );
            i += 1;
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..(512 * 1024) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        let tail = v[..2 << 20].to_vec();
        v.extend_from_slice(&tail);
        v
    }

    fn gzip_flate2(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gzip_tool(data: &[u8]) -> Vec<u8> {
        let mut child = std::process::Command::new("gzip")
            .args(["-9", "-n", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn a_member_of_a_downloads_own_blocks_decodes_to_the_run_for_either_encoder() {
        let data = sample();
        for gz in [gzip_flate2(&data), gzip_tool(&data)] {
            // Read in odd pieces: block ends must not depend on the caller's buffer.
            let mut reader = BlockReader::new(&gz[..]).unwrap();
            let mut out = Vec::new();
            let mut buf = [0u8; 7777];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, data);
            let ends = reader.ends().to_vec();
            assert!(ends.len() > 10, "{}", ends.len());
            assert!(ends
                .windows(2)
                .all(|w| w[0].bit < w[1].bit && w[0].out <= w[1].out));

            // A "file" from byte 1000 to 5000 before the end.
            let (file_at, size) = (1000u64, data.len() as u64 - 6000);
            let (first, last) = plan(&ends, file_at, size).unwrap();
            assert_eq!(first.bit % 8, 0);
            assert!(first.out >= file_at + WINDOW && last.out <= file_at + size);
            let blocks = &gz[(first.bit / 8) as usize..last.bit.div_ceil(8) as usize];
            let (a, b) = (first.out as usize, last.out as usize);
            let window = &data[a - WINDOW as usize..a];
            let crc = libdeflater::crc32(&data[a - WINDOW as usize..b]);
            let mut blocks = blocks;
            let m = member(
                window,
                &mut blocks,
                last.bit - first.bit,
                crc,
                (b - a) as u64,
            )
            .unwrap();
            assert_eq!(gunzip(&m), &data[a - WINDOW as usize..b]);
            // gzip's own check of CRC and length.
            let t = std::process::Command::new("sh")
                .arg("-c")
                .arg("gzip -t")
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut t = t;
            t.stdin.take().unwrap().write_all(&m).unwrap();
            assert!(t.wait().unwrap().success());
        }
    }

    #[test]
    fn saved_blocks_are_found_checked_and_refused_when_the_file_changed() {
        let data = sample();
        let gz = gzip_flate2(&data);
        let mut reader = BlockReader::new(&gz[..]).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        let ends = reader.ends().to_vec();
        let layer = tempfile::tempdir().unwrap();
        fs::create_dir(layer.path().join("bin")).unwrap();
        // The file is the decompressed stream from byte 100 on.
        fs::write(layer.path().join("bin/x"), &data[100..]).unwrap();
        Keep::new(layer.path(), "bin/x", &gz, &ends, 100, "sha512-abc")
            .unwrap()
            .save()
            .unwrap();
        assert!(has_descriptor(layer.path()));
        let reuse = find(layer.path()).unwrap().unwrap();
        assert_eq!(reuse.file, layer.path().join("bin/x"));
        assert_eq!(reuse.splice.source, "sha512-abc");
        assert!(reuse.matches().unwrap());
        assert_ne!(reuse.cache_key("00"), reuse.cache_key("01"));

        // One byte of the run changed: not used.
        let mut changed = data[100..].to_vec();
        changed[reuse.splice.start as usize + 10] ^= 1;
        fs::write(layer.path().join("bin/x"), &changed).unwrap();
        assert!(!reuse.matches().unwrap());

        // A descriptor naming a path outside the layer is refused.
        let mut d: Descriptor =
            serde_json::from_slice(&fs::read(layer.path().join(DIR).join(DESCRIPTOR)).unwrap())
                .unwrap();
        d.splice.as_mut().unwrap().file = "../x".into();
        fs::write(
            layer.path().join(DIR).join(DESCRIPTOR),
            serde_json::to_vec(&d).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            find(layer.path()),
            Err(ReuseError::Invalid { .. })
        ));
        assert!(!has_descriptor(layer.path()));

        // A file that differs from the stream it was unpacked from (patched since, or a
        // sparse entry): its blocks would not decode to it, so none are kept.
        let mut patched = data[100..].to_vec();
        patched[(2 << 20) + 3] ^= 1;
        fs::write(layer.path().join("bin/x"), &patched).unwrap();
        Keep::new(layer.path(), "bin/x", &gz, &ends, 100, "sha512-abc")
            .unwrap()
            .save()
            .unwrap();
        assert!(has_descriptor(layer.path()));
        assert_eq!(find(layer.path()).unwrap(), None);

        // A file too small for a run: a descriptor without a splice.
        fs::write(layer.path().join("bin/x"), &data[..1000]).unwrap();
        Keep::new(layer.path(), "bin/x", &gz, &ends, 0, "sha512-abc")
            .unwrap()
            .save()
            .unwrap();
        assert!(has_descriptor(layer.path()));
        assert_eq!(find(layer.path()).unwrap(), None);
    }
}
