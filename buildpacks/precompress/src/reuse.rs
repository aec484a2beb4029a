//! Reused deflate: a buildpack that unpacks a big file from a gzip download (Node.js's
//! 125 MB binary) can hand `slug build` the download's own compressed bytes of that file, so
//! that the slug carries them as they are instead of compressing the file again.
//!
//! A deflate stream is a run of blocks; a block can be cut out of one stream and put into
//! another as long as the 32 KiB that come before it (its window: back-references reach at
//! most that far, RFC 1951 §3.2.5) are the same bytes in both. So the buildpack keeps a
//! *fragment*: the whole blocks of the download that make the file's bytes from
//! [`Header::start`] (at least 32 KiB into the file) to [`Header::end`], shifted to start on
//! a byte border. The engine writes the file's 32 KiB before `start` as a stored block, then
//! the fragment, then an empty final block: one gzip member whose bytes only depend on the
//! file and the download.
//!
//! The fragment lives in the layer, at [`DIR`]`/<path of the file in the layer>`, written only
//! when `slug build` sets [`ENV`] (under `pack` it would land in the image). The engine leaves
//! [`DIR`] out of the slug, and uses a fragment only if the file still has the size and CRC
//! the header records, and the fragment its own CRC: a stale one is ignored.

use std::io::{self, Read};
use std::path::Path;

/// The directory in a layer that holds fragments; never archived.
pub const DIR: &str = ".slugc-deflate";
/// Set by `slug build`: the engine reads [`DIR`].
pub const ENV: &str = "SLUGC_DEFLATE_REUSE";
/// Bytes a fragment must leave before it in its file: deflate's window.
pub const WINDOW: u64 = 32 * 1024;

const MAGIC: &[u8; 8] = b"SLUGCDF1";

/// What a fragment makes: bytes `start..end` of a file of `file_size` bytes whose
/// `start..end` have CRC-32 `data_crc`, given the file's 32 KiB before `start` as window.
/// The fragment is `bits` bits of deflate blocks (none final), starting at bit 0 of its first
/// byte, with CRC-32 `fragment_crc` over its `bits.div_ceil(8)` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub file_size: u64,
    pub start: u64,
    pub end: u64,
    pub bits: u64,
    pub data_crc: u32,
    pub fragment_crc: u32,
}

impl Header {
    /// Bytes of a header on disk; the fragment follows.
    pub const LEN: usize = 48;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.file_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.start.to_le_bytes());
        b[24..32].copy_from_slice(&self.end.to_le_bytes());
        b[32..40].copy_from_slice(&self.bits.to_le_bytes());
        b[40..44].copy_from_slice(&self.data_crc.to_le_bytes());
        b[44..48].copy_from_slice(&self.fragment_crc.to_le_bytes());
        b
    }

    /// A header that is well formed and consistent, or `None`.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::LEN || &b[..8] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| b[i..i + 8].try_into().ok().map(u64::from_le_bytes);
        let u32_at = |i: usize| b[i..i + 4].try_into().ok().map(u32::from_le_bytes);
        let h = Self {
            file_size: u64_at(8)?,
            start: u64_at(16)?,
            end: u64_at(24)?,
            bits: u64_at(32)?,
            data_crc: u32_at(40)?,
            fragment_crc: u32_at(44)?,
        };
        let sane = h.start >= WINDOW && h.start < h.end && h.end <= h.file_size && h.bits > 0;
        sane.then_some(h)
    }

    /// Bytes of the fragment on disk.
    pub fn fragment_len(&self) -> u64 {
        self.bits.div_ceil(8)
    }
}

/// Writes `<layer>/DIR/<rel>`: `header` then `fragment`.
pub fn write(layer: &Path, rel: &Path, header: &Header, fragment: &[u8]) -> io::Result<()> {
    let path = layer.join(DIR).join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create(path)?;
    io::Write::write_all(&mut file, &header.to_bytes())?;
    io::Write::write_all(&mut file, fragment)
}

/// The fragment for a file unpacked from a download, and its header: the file's bytes are
/// `data_at..data_at + file_size` of the download's uncompressed stream, `kept` and
/// `borders` are what a [`BlockInflater`] read past them, and `file` is the file as
/// unpacked (read again for the CRC of the range). `None` when no whole block lies at least
/// [`WINDOW`] into the file.
pub fn prepare(
    kept: &[u8],
    borders: &[(u64, u64)],
    data_at: u64,
    file_size: u64,
    file: &Path,
) -> io::Result<Option<(Header, Fragment)>> {
    let from = borders.iter().map(|b| b.1).find(|&o| o >= data_at + WINDOW);
    let to = borders
        .iter()
        .rev()
        .map(|b| b.1)
        .find(|&o| o <= data_at + file_size);
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(None);
    };
    if from >= to {
        return Ok(None);
    }
    let Some(fragment) = cut(kept, borders, from, to) else {
        return Ok(None);
    };
    let (start, end) = (from - data_at, to - data_at);
    let mut f = std::fs::File::open(file)?;
    if f.metadata()?.len() != file_size {
        return Ok(None);
    }
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
    let mut range = f.take(end - start);
    let mut buf = vec![0u8; 1 << 20];
    let mut data_crc = 0;
    loop {
        let n = range.read(&mut buf)?;
        if n == 0 {
            break;
        }
        data_crc = zlib_rs::crc32::crc32(data_crc, &buf[..n]);
    }
    let header = Header {
        file_size,
        start,
        end,
        bits: fragment.bits,
        data_crc,
        fragment_crc: zlib_rs::crc32::crc32(0, &fragment.bytes),
    };
    Ok(Some((header, fragment)))
}

/// Whether `slug build` asked for fragments.
pub fn wanted() -> bool {
    std::env::var_os(ENV).is_some()
}

/// A cut fragment: `bits` bits in `bytes`, the last byte's unused high bits zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub bytes: Vec<u8>,
    pub bits: u64,
}

/// Cuts the blocks of raw deflate `stream` that make uncompressed bytes `from..to` (both
/// block borders from `borders`: `(bit offset in stream, uncompressed offset)` of the start
/// of each block) into a fragment that starts at bit 0. Stored blocks are written again at
/// the new alignment (their bytes start on a byte border); others are copied bit for bit.
/// `None` if `from` or `to` is not a border, or a block is final or malformed.
pub fn cut(stream: &[u8], borders: &[(u64, u64)], from: u64, to: u64) -> Option<Fragment> {
    let first = borders.iter().position(|b| b.1 == from)?;
    let last = borders.iter().position(|b| b.1 == to)?;
    if last <= first {
        return None;
    }
    let bits = |at: u64, n: u32| read_bits(stream, at, n);
    let mut w = BitWriter::default();
    for pair in borders[first..=last].windows(2) {
        let (start, end) = (pair[0].0, pair[1].0);
        if end <= start || end > stream.len() as u64 * 8 {
            return None;
        }
        let head = bits(start, 3);
        let (last_block, kind) = (head & 1, head >> 1);
        if last_block == 1 || kind == 3 {
            return None;
        }
        if kind == 0 {
            // Stored: header bits, padding to a byte, LEN, NLEN, LEN bytes (RFC 1951 §3.2.4).
            let at = (start + 3).div_ceil(8) as usize;
            let len_bytes = stream.get(at..at + 4)?;
            let len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
            if ((at + 4 + len) as u64) * 8 != end {
                return None;
            }
            w.put(0, 3);
            w.align();
            w.out.extend_from_slice(stream.get(at..at + 4 + len)?);
        } else {
            let mut at = start;
            while at < end {
                let n = (end - at).min(56) as u32;
                w.put(bits(at, n), n);
                at += u64::from(n);
            }
        }
    }
    let total = w.out.len() as u64 * 8 + u64::from(w.pending);
    w.align();
    Some(Fragment {
        bytes: w.out,
        bits: total,
    })
}

/// The start of the gzip member that carries a fragment: `gzip_header`, then the file's
/// [`WINDOW`] bytes before the fragment as one stored block, not final.
pub fn member_head(gzip_header: &[u8], window: &[u8]) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.out.extend_from_slice(gzip_header);
    for piece in window.chunks(u16::MAX as usize) {
        w.put(0, 3);
        w.align();
        let len = piece.len() as u16;
        w.out.extend_from_slice(&len.to_le_bytes());
        w.out.extend_from_slice(&(!len).to_le_bytes());
        w.out.extend_from_slice(piece);
    }
    w.out
}

/// The end of that member, after the fragment's whole bytes: its partial last byte (if
/// `bits` is not a multiple of 8) with an empty final block after it, padding, then the
/// CRC-32 and the length of all the member's uncompressed bytes (RFC 1952 §2.3.1).
pub fn member_tail(last_byte: u8, bits: u64, crc: u32, len: u64) -> Vec<u8> {
    let mut w = BitWriter::after(last_byte, (bits % 8) as u32);
    // BFINAL = 1, BTYPE = 01 (fixed Huffman codes), then end-of-block: code 256, 7 zero bits.
    w.put(1, 1);
    w.put(1, 2);
    w.put(0, 7);
    w.align();
    w.out.extend_from_slice(&crc.to_le_bytes());
    // ISIZE is the length modulo 2^32.
    w.out.extend_from_slice(&(len as u32).to_le_bytes());
    w.out
}

/// `n` (≤ 56) bits of `bytes` from bit `at`, LSB first as deflate packs them; zeros past
/// the end.
fn read_bits(bytes: &[u8], at: u64, n: u32) -> u64 {
    let i = (at / 8) as usize;
    let word = match bytes.get(i..i + 8) {
        Some(eight) => u64::from_le_bytes([
            eight[0], eight[1], eight[2], eight[3], eight[4], eight[5], eight[6], eight[7],
        ]),
        None => {
            let mut word = [0u8; 8];
            if let Some(tail) = bytes.get(i..) {
                word[..tail.len()].copy_from_slice(tail);
            }
            u64::from_le_bytes(word)
        }
    };
    (word >> (at % 8)) & ((1u64 << n) - 1)
}

/// Writes bits LSB first, as deflate does.
#[derive(Debug, Default)]
pub struct BitWriter {
    pub out: Vec<u8>,
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// Starts after the low `bits` bits of `byte` (the partial last byte of a fragment).
    pub fn after(byte: u8, bits: u32) -> Self {
        Self {
            out: Vec::new(),
            acc: u64::from(byte) & ((1u64 << bits) - 1),
            pending: bits,
        }
    }

    /// Appends the low `n` (≤ 56) bits of `v`.
    pub fn put(&mut self, v: u64, n: u32) {
        self.acc |= (v & ((1u64 << n) - 1)) << self.pending;
        self.pending += n;
        // At most 63 bits are pending here: whole bytes go out in one copy.
        let whole = (self.pending / 8) as usize;
        if whole > 0 {
            self.out.extend_from_slice(&self.acc.to_le_bytes()[..whole]);
            self.acc = self.acc.checked_shr(8 * whole as u32).unwrap_or(0);
            self.pending %= 8;
        }
    }

    /// Pads with zero bits to the next byte.
    pub fn align(&mut self) {
        if self.pending > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.pending = 0;
        }
    }
}

/// A gzip reader that notes where each deflate block starts, and keeps the compressed bytes
/// it read, for [`cut`] (only when asked: they are most of the download).
pub struct BlockInflater<R: Read> {
    inner: R,
    stream: Box<zlib_rs::c_api::z_stream>,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// The compressed bytes read so far (gzip header included), when keeping.
    pub kept: Vec<u8>,
    keeping: bool,
    /// `(bit offset in kept, uncompressed offset)` of each block start seen so far, the
    /// last one not final.
    pub borders: Vec<(u64, u64)>,
    done: bool,
}

impl<R: Read> BlockInflater<R> {
    /// `keep`: note borders and keep the compressed bytes; without it, a plain gzip reader.
    pub fn new(inner: R, keep: bool) -> io::Result<Self> {
        use zlib_rs::inflate::{init, InflateConfig};
        let mut stream = Box::<zlib_rs::c_api::z_stream>::default();
        // 15 bits of window, plus 16: a gzip wrapper (zlib's convention).
        if init(&mut stream, InflateConfig { window_bits: 31 }) != zlib_rs::ReturnCode::Ok {
            return Err(io::Error::other("cannot start zlib's inflate"));
        }
        Ok(Self {
            inner,
            stream,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            kept: Vec::new(),
            keeping: keep,
            borders: Vec::new(),
            done: false,
        })
    }
}

impl<R: Read> Read for BlockInflater<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use zlib_rs::inflate::{inflate, InflateStream};
        use zlib_rs::{InflateFlush, ReturnCode};
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.len {
                self.len = self.inner.read(&mut self.buf)?;
                self.pos = 0;
                if self.len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the gzip stream ends early",
                    ));
                }
                if self.keeping {
                    self.kept.extend_from_slice(&self.buf[..self.len]);
                }
            }
            let s = &mut *self.stream;
            s.next_in = self.buf[self.pos..self.len].as_ptr();
            s.avail_in = (self.len - self.pos) as u32;
            s.next_out = out.as_mut_ptr();
            s.avail_out = out.len().min(u32::MAX as usize) as u32;
            let out_before = s.total_out;
            let in_before = s.avail_in;
            // SAFETY: the stream was set up by `init` (`new`) and is ended only by `drop`;
            // next_in/avail_in and next_out/avail_out describe live slices borrowed for this
            // call only.
            let rc = match unsafe { InflateStream::from_stream_mut(s) } {
                Some(stream) => unsafe { inflate(stream, InflateFlush::Block) },
                None => ReturnCode::StreamError,
            };
            let s = &*self.stream;
            let produced = (s.total_out - out_before) as usize;
            self.pos += (in_before - s.avail_in) as usize;
            // `data_type` as zlib documents it: bit 7 once a block has ended (or the header
            // is read), bit 6 in the last block, and the bits read but unused in the low bits
            // (zlib-rs keeps up to 63 of them).
            let state = s.data_type;
            if self.keeping && state & 128 != 0 && state & 64 == 0 {
                let bit = s.total_in * 8 - (state & 63) as u64;
                if self.borders.last().is_none_or(|b| b.0 != bit) {
                    self.borders.push((bit, s.total_out));
                }
            }
            match rc {
                ReturnCode::StreamEnd => {
                    self.done = true;
                    return Ok(produced);
                }
                ReturnCode::Ok | ReturnCode::BufError => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid gzip data",
                    ))
                }
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

impl<R: Read> Drop for BlockInflater<R> {
    fn drop(&mut self) {
        // SAFETY: as in `read`; the stream is not used after this.
        if let Some(stream) =
            unsafe { zlib_rs::inflate::InflateStream::from_stream_mut(&mut *self.stream) }
        {
            zlib_rs::inflate::end(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Machine-code-like bytes: runs of structure with random stretches that level 9 stores
    /// as they are (stored blocks, which `cut` must realign).
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (v.len() / 50_000) % 3 == 2 {
                v.extend_from_slice(&x.to_le_bytes());
            } else {
                v.extend_from_slice(format!("mov r{}, {}; ", x % 16, x % 977).as_bytes());
            }
        }
        v.truncate(len);
        v
    }

    fn gzip9(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn header_round_trips_and_rejects_nonsense() {
        let h = Header {
            file_size: 1 << 30,
            start: WINDOW,
            end: 1 << 29,
            bits: 12_345,
            data_crc: 7,
            fragment_crc: 9,
        };
        assert_eq!(Header::parse(&h.to_bytes()), Some(h));
        assert_eq!(h.fragment_len(), 1544);
        for bad in [
            Header {
                start: WINDOW - 1,
                ..h
            },
            Header { end: WINDOW, ..h },
            Header {
                end: h.file_size + 1,
                ..h
            },
            Header { bits: 0, ..h },
        ] {
            assert_eq!(Header::parse(&bad.to_bytes()), None, "{bad:?}");
        }
        let mut wrong_magic = h.to_bytes();
        wrong_magic[0] = b'X';
        assert_eq!(Header::parse(&wrong_magic), None);
        assert_eq!(Header::parse(&h.to_bytes()[..40]), None);
    }

    #[test]
    fn a_cut_fragment_makes_the_same_bytes_in_a_new_member() {
        let data = sample(3_000_000);
        let gz = gzip9(&data);
        let mut inflater = BlockInflater::new(&gz[..], true).unwrap();
        let mut out = Vec::new();
        inflater.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(inflater.kept, gz);
        // Not keeping: the same bytes out, nothing held.
        let mut plain = BlockInflater::new(&gz[..], false).unwrap();
        let mut again = Vec::new();
        plain.read_to_end(&mut again).unwrap();
        assert_eq!(again, data);
        assert!(plain.kept.is_empty() && plain.borders.is_empty());
        let borders = inflater.borders.clone();
        assert!(borders.len() > 10, "{} blocks", borders.len());
        let stored = borders
            .iter()
            .filter(|b| read_bits(&gz, b.0, 3) >> 1 == 0)
            .count();
        assert!(stored > 0, "the sample must have stored blocks");

        // Every alignment of the first block, and a range that ends before the last block.
        let mut shifts = std::collections::BTreeSet::new();
        for i in 1..borders.len() - 2 {
            let (from, to) = (borders[i].1, borders[borders.len() - 2].1);
            if from < WINDOW || !shifts.insert(borders[i].0 % 8) {
                continue;
            }
            let fragment = cut(&gz, &borders, from, to).unwrap();
            assert_eq!(fragment.bytes.len() as u64, fragment.bits.div_ceil(8));
            let (from, to) = (from as usize, to as usize);
            let window = &data[from - WINDOW as usize..from];
            let whole = (fragment.bits / 8) as usize;
            let mut member = member_head(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], window);
            member.extend_from_slice(&fragment.bytes[..whole]);
            let last = fragment.bytes.get(whole).copied().unwrap_or(0);
            let made = &data[from - WINDOW as usize..to];
            let crc = zlib_rs::crc32::crc32(0, made);
            member.extend(member_tail(last, fragment.bits, crc, made.len() as u64));
            assert_eq!(gunzip(&member), made, "cut from block {i}");
        }
        assert!(shifts.len() >= 4, "alignments tried: {shifts:?}");
    }

    #[test]
    fn cut_refuses_what_is_not_a_border() {
        let data = sample(500_000);
        let gz = gzip9(&data);
        let mut inflater = BlockInflater::new(&gz[..], true).unwrap();
        std::io::copy(&mut inflater, &mut std::io::sink()).unwrap();
        let b = &inflater.borders;
        assert_eq!(cut(&gz, b, b[1].1 + 1, b[2].1), None);
        assert_eq!(cut(&gz, b, b[2].1, b[1].1), None);
    }

    #[test]
    fn a_truncated_download_is_an_error() {
        let gz = gzip9(&sample(200_000));
        let mut inflater = BlockInflater::new(&gz[..gz.len() / 2], true).unwrap();
        let err = std::io::copy(&mut inflater, &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
