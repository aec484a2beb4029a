//! Parallel gzip: each slug part becomes a run of gzip members, one per [`CHUNK`] bytes of
//! its tar, compressed on all cores with libdeflate.
//!
//! libdeflate compresses a whole buffer at once, 2.5–3.5× faster than zlib at the same level
//! and a little smaller (measured on Node's 125 MB binary: 1.9 s and 43.5 MB against gzip -6's
//! 6.9 s and 44.0 MB), but it cannot take a preset dictionary nor leave a stream open, so
//! chunks cannot be joined into one deflate stream pigz-style. Each chunk is its own member
//! instead: concatenated members are one gzip file for every reader (RFC 1952 §2.2; GNU tar,
//! `gzip -t`, Go's `compress/gzip`, Python's `tarfile`), and at 1 MiB the window lost at each
//! border costs about 0.2% in size.
//!
//! The output depends only on the input bytes, [`LEVEL`] and [`CHUNK`]: never on the
//! number of threads or on timing, so the same tar gives the same gzip bytes.
//!
//! Memory is bounded: every queue holds at most [`QUEUE_DEPTH`] chunks per worker.
//!
//! A part may hold one splice ([`crate::reuse`]): a run of one file that goes in as a
//! download's own deflate blocks. The producer marks where the file's data begins; the chunk
//! before the run's window ends there, and the window and run become one member, made by
//! `reuse`, that takes its turn among the workers' members.

use crate::reuse::{Event, Spliced, Splicer};
use libdeflater::{CompressionLvl, Compressor};
use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Uncompressed bytes per member: big enough that the window lost at each border is noise,
/// small enough that a 2 MB layer still uses two cores.
pub const CHUNK: usize = 1024 * 1024;
/// libdeflate level. 6 gives gzip -6's size or less on the bench trees (docs/export.md).
pub const LEVEL: i32 = 6;
/// Chunks waiting per worker, in and out.
const QUEUE_DEPTH: usize = 2;

/// gzip member header: deflate, no flags, no mtime (0), no extra flags, OS fixed at 3 (Unix)
/// whatever the host, as `gzip -n` writes it on Linux. No name: reproducible.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

#[derive(Debug, thiserror::Error)]
pub enum GzipError<E> {
    /// The producer of the uncompressed bytes failed.
    #[error(transparent)]
    Input(E),
    /// Writing the compressed members failed.
    #[error("cannot write compressed output: {0}")]
    Output(io::Error),
    #[error("deflate failed: {0}")]
    Deflate(String),
}

/// What one part's members hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Uncompressed bytes.
    pub input: u64,
    /// Bytes of all members, headers and trailers included.
    pub output: u64,
}

/// A compressed chunk: one whole member.
struct Done {
    member: Vec<u8>,
    input: usize,
}

/// What a worker is given: a chunk to compress, or a member made already (a splice), to
/// pass on in its turn.
enum Job {
    Compress(Vec<u8>),
    Ready(Done),
}

/// Told by the producer where the spliced file's data begins.
#[derive(Clone)]
pub struct Marker(Rc<Cell<bool>>);

impl Marker {
    /// The next byte written is the first of the spliced file's data.
    pub fn mark(&self) {
        self.0.set(true);
    }
}

/// The sink handed to the producer: cuts the stream into chunks and deals them to the
/// workers in turn.
pub struct ChunkSink {
    workers: Vec<SyncSender<Job>>,
    next: usize,
    chunk: Vec<u8>,
    /// Bytes taken so far.
    offset: u64,
    splice: Option<Splicer>,
    marked: Rc<Cell<bool>>,
}

impl ChunkSink {
    /// What the producer tells where the spliced file begins (unused without a splice).
    pub fn marker(&self) -> Marker {
        Marker(Rc::clone(&self.marked))
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let n = self.workers.len();
        self.workers[self.next % n]
            .send(job)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "gzip workers stopped"))?;
        self.next += 1;
        Ok(())
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.send(Job::Compress(chunk))
    }

    /// Sends the last, partial chunk; an empty input still makes one (empty) member, so every
    /// part is at least one member.
    fn finish(&mut self) -> io::Result<()> {
        self.advance()?;
        if self.splice.as_ref().is_some_and(Splicer::inside) {
            return Err(io::Error::other("the input ended inside the spliced run"));
        }
        if !self.chunk.is_empty() || self.next == 0 {
            self.send_chunk()?;
        }
        Ok(())
    }

    /// Moves the splice on as far as the bytes taken allow.
    fn advance(&mut self) -> io::Result<()> {
        let marked = self.marked.get();
        while let Some(splice) = self.splice.as_mut() {
            match splice.step(self.offset, marked)? {
                Event::Idle => break,
                Event::Moved => {}
                Event::Cut if self.chunk.is_empty() => {}
                Event::Cut => self.send_chunk()?,
                Event::Member { member, input } => self.send(Job::Ready(Done { member, input }))?,
            }
        }
        Ok(())
    }
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.advance()?;
        let offset = self.offset;
        let take = match self.splice.as_mut().and_then(|s| s.take(offset, buf)) {
            Some(took) => took,
            None => {
                let mut room = CHUNK - self.chunk.len();
                if let Some(limit) = self.splice.as_ref().and_then(|s| s.room(offset)) {
                    room = room.min(limit as usize);
                }
                let take = buf.len().min(room);
                self.chunk.extend_from_slice(&buf[..take]);
                if self.chunk.len() == CHUNK {
                    self.send_chunk()?;
                }
                take
            }
        };
        self.offset += take as u64;
        self.advance()?;
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses what `produce` writes into gzip members written to `out`, using `threads`
/// compressing threads (plus the producer's own thread). `on_chunk` is told the uncompressed
/// size of each chunk as it is written (for a progress bar).
///
/// If writing to `out` fails, the producer's next write fails with `BrokenPipe` and the
/// output error is returned; if the producer fails, its error is returned.
pub fn compress_part<T, E, P>(
    produce: P,
    splice: Option<Spliced>,
    threads: usize,
    out: &mut dyn Write,
    on_chunk: &mut dyn FnMut(u64),
) -> Result<(T, Stats), GzipError<E>>
where
    T: Send,
    E: Send,
    P: FnOnce(&mut ChunkSink) -> Result<T, E> + Send,
{
    let threads = threads.max(1);
    std::thread::scope(|s| {
        let mut job_txs = Vec::with_capacity(threads);
        let mut done_rxs = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (job_tx, job_rx) = sync_channel::<Job>(QUEUE_DEPTH);
            let (done_tx, done_rx) = sync_channel::<Result<Done, String>>(QUEUE_DEPTH);
            job_txs.push(job_tx);
            done_rxs.push(done_rx);
            s.spawn(move || worker(job_rx, done_tx));
        }
        let producer = s.spawn(move || {
            let mut sink = ChunkSink {
                workers: job_txs,
                next: 0,
                chunk: Vec::with_capacity(CHUNK),
                offset: 0,
                splice: splice.map(Splicer::new),
                marked: Rc::new(Cell::new(false)),
            };
            let result = produce(&mut sink);
            let finished = sink.finish();
            // Dropping the sink closes the job queues: the workers drain them and stop.
            drop(sink);
            (result, finished)
        });
        let collected = collect(done_rxs, out, on_chunk);
        let (result, finished) = match producer.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // An output error is the cause of any producer error (its writes broke off).
        let stats = collected?;
        let value = result.map_err(GzipError::Input)?;
        finished.map_err(GzipError::Output)?;
        Ok((value, stats))
    })
}

fn compressor() -> Result<Compressor, String> {
    CompressionLvl::new(LEVEL)
        .map(Compressor::new)
        .map_err(|e| format!("level {LEVEL}: {e:?}"))
}

fn worker(jobs: Receiver<Job>, done: SyncSender<Result<Done, String>>) {
    // libdeflate keeps no state between calls: compressors per worker, reused, give the
    // same bytes as fresh ones for every chunk.
    let mut compressor = match compressor() {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    for job in jobs {
        let result = match job {
            Job::Compress(chunk) => member(&mut compressor, &chunk),
            Job::Ready(done) => Ok(done),
        };
        if done.send(result).is_err() {
            break;
        }
    }
}

/// One chunk as a whole gzip member: header, raw deflate, CRC-32 and length (RFC 1952).
fn member(compressor: &mut Compressor, chunk: &[u8]) -> Result<Done, String> {
    let bound = compressor.deflate_compress_bound(chunk.len());
    let mut member = vec![0u8; HEADER.len() + bound + 8];
    member[..HEADER.len()].copy_from_slice(&HEADER);
    let n = compressor
        .deflate_compress(chunk, &mut member[HEADER.len()..HEADER.len() + bound])
        .map_err(|e| format!("{e:?}"))?;
    member.truncate(HEADER.len() + n);
    member.extend_from_slice(&libdeflater::crc32(chunk).to_le_bytes());
    // ISIZE: the input length modulo 2^32; a chunk is far below that.
    member.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    Ok(Done {
        member,
        input: chunk.len(),
    })
}

/// Writes the workers' members, taken in order.
fn collect<E>(
    done_rxs: Vec<Receiver<Result<Done, String>>>,
    out: &mut dyn Write,
    on_chunk: &mut dyn FnMut(u64),
) -> Result<Stats, GzipError<E>> {
    let mut stats = Stats {
        input: 0,
        output: 0,
    };
    let n = done_rxs.len();
    let mut i = 0;
    // Chunks were dealt round-robin, so taking them round-robin restores their order; the
    // first closed queue means the chunk with that number was never made: the end.
    while let Ok(done) = done_rxs[i % n].recv() {
        let done = done.map_err(GzipError::Deflate)?;
        out.write_all(&done.member).map_err(GzipError::Output)?;
        stats.output += done.member.len() as u64;
        stats.input += done.input as u64;
        on_chunk(done.input as u64);
        i += 1;
    }
    Ok(stats)
}

/// Compresses `bytes` in the calling thread (small inputs such as the end-of-archive
/// blocks): the same chunks, so the same bytes as [`compress_part`].
pub fn compress_small(bytes: &[u8]) -> Result<Vec<u8>, GzipError<std::convert::Infallible>> {
    let mut compressor = compressor().map_err(GzipError::Deflate)?;
    let mut out = Vec::new();
    let mut chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let done = member(&mut compressor, chunk).map_err(GzipError::Deflate)?;
        out.extend_from_slice(&done.member);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// The bytes of a run of gzip members.
    pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: words with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample {} ", i * 7919 % 1000).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn compress(data: &[u8], threads: usize) -> (Vec<u8>, Stats) {
        let mut out = Vec::new();
        let ((), stats) = compress_part(
            |sink: &mut ChunkSink| -> Result<(), io::Error> {
                // Odd write sizes, so block borders fall inside writes.
                for chunk in data.chunks(10_007) {
                    sink.write_all(chunk)?;
                }
                Ok(())
            },
            None,
            threads,
            &mut out,
            &mut |_| {},
        )
        .unwrap();
        (out, stats)
    }

    #[test]
    fn round_trips_at_block_borders() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let data = sample(len);
            let (gz, stats) = compress(&data, 3);
            assert_eq!(gunzip(&gz), data, "len {len}");
            assert_eq!(stats.input, len as u64);
            assert_eq!(stats.output, gz.len() as u64);
            assert_eq!(&gz[..10], &HEADER);
        }
    }

    /// Source-like text: words picked by an LCG, numbers, short binary runs. Plain repetitive
    /// samples hide compressor-state leaks between chunks (zlib-rs had one); this shows them.
    fn lcg_text(len: usize) -> Vec<u8> {
        let words = [
            "function",
            "return",
            "const",
            "var",
            "this",
            "prototype",
            "module",
            "exports",
            "require",
            "undefined",
            "null",
            "=>",
            "{",
            "}",
            "(",
            ")",
            ";",
            "\n",
            "  ",
            "if",
            "else",
            "for",
        ];
        let mut buf = Vec::with_capacity(len + 400);
        let mut x: u64 = 12345;
        while buf.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            if r.is_multiple_of(50) {
                for _ in 0..(r % 300) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    buf.push((x >> 56) as u8);
                }
            } else if r.is_multiple_of(7) {
                buf.extend_from_slice(format!("{} ", r % 100000).as_bytes());
            } else {
                buf.extend_from_slice(words[r % words.len()].as_bytes());
                buf.push(b' ');
            }
        }
        buf.truncate(len);
        buf
    }

    #[test]
    fn source_like_bytes_do_not_depend_on_thread_count() {
        let data = lcg_text(6 * CHUNK + 99);
        let one = compress(&data, 1).0;
        assert_eq!(gunzip(&one), data);
        assert_eq!(compress(&data, 2).0, one);
        assert_eq!(compress(&data, 3).0, one);
    }

    #[test]
    fn bytes_do_not_depend_on_thread_count() {
        let data = sample(5 * CHUNK + 1234);
        let one = compress(&data, 1).0;
        for threads in [2, 3, 8] {
            assert_eq!(compress(&data, threads).0, one, "{threads} threads");
        }
    }

    #[test]
    fn chunked_members_stay_close_to_single_stream_gzip() {
        let data = lcg_text(8 * CHUNK);
        let ours = compress(&data, 2).0.len();
        let mut single =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(LEVEL as u32));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        // Seven borders, each losing the 32 KiB window, and libdeflate against zlib-rs: 1.01×
        // measured on this text.
        assert!(
            (ours as f64) < single as f64 * 1.02,
            "ours {ours}, single-stream zlib {single}"
        );
    }

    #[test]
    fn one_member_per_chunk() {
        let data = lcg_text(2 * CHUNK + 5);
        let gz = compress(&data, 2).0;
        let mut members = 0;
        let mut rest = &gz[..];
        while !rest.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(rest);
            let mut one = Vec::new();
            decoder.read_to_end(&mut one).unwrap();
            assert_eq!(
                one,
                data[members * CHUNK..((members + 1) * CHUNK).min(data.len())]
            );
            rest = decoder.into_inner();
            members += 1;
        }
        assert_eq!(members, 3);
        assert_eq!(compress(&[], 2).0, compress_small(&[]).unwrap());
        assert_eq!(gunzip(&compress_small(&[]).unwrap()), b"");
    }

    #[test]
    fn producer_error_is_returned() {
        let mut out = Vec::new();
        let r = compress_part(
            |sink: &mut ChunkSink| -> Result<(), &'static str> {
                sink.write_all(&sample(3 * CHUNK)).unwrap();
                Err("boom")
            },
            None,
            2,
            &mut out,
            &mut |_| {},
        );
        assert!(matches!(r, Err(GzipError::Input("boom"))));
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_error_stops_the_producer() {
        let data = sample(20 * CHUNK);
        let r = compress_part(
            |sink: &mut ChunkSink| -> Result<(), io::Error> { sink.write_all(&data) },
            None,
            2,
            &mut Full,
            &mut |_| {},
        );
        match r {
            Err(GzipError::Output(e)) => assert_eq!(e.to_string(), "disk full"),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn small_matches_parallel() {
        let data = sample(1024);
        assert_eq!(compress_small(&data).unwrap(), compress(&data, 4).0);
    }
}
