//! Parallel gzip, pigz-style: one gzip member per slug part, compressed on all cores.
//!
//! A member's input is cut into fixed [`BLOCK`]-byte blocks. Each block is deflated on its
//! own by a worker thread with the previous block's last 32 KiB as preset dictionary and
//! ends with a sync flush (an empty stored block), so the blocks are byte-aligned and join
//! into one valid deflate stream; a final empty block closes it. This is what pigz does, and
//! it costs almost nothing in size against a single-threaded gzip, unlike independent
//! members per chunk, which lose the 32 KiB history at every chunk border.
//!
//! The output depends only on the input bytes, [`LEVEL`] and [`BLOCK`]: never on the number
//! of threads or on timing, so the same tar gives the same gzip bytes.
//!
//! Memory is bounded: every queue holds at most [`QUEUE_DEPTH`] blocks per worker.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Uncompressed bytes per block: pigz's default, a good balance of parallelism and the
/// dictionary-reset cost at each border.
pub const BLOCK: usize = 128 * 1024;
/// Deflate's window; the dictionary handed to each block.
const DICT: usize = 32 * 1024;
/// zlib level. Level 6 is gzip's default and the size bar of the benchmark.
pub const LEVEL: u32 = 6;
/// Blocks waiting per worker, in and out.
const QUEUE_DEPTH: usize = 2;

/// gzip member header: deflate, no flags, no mtime (0), no extra flags, OS fixed at 3 (Unix)
/// whatever the host, as `gzip -n` writes it on Linux. No name: reproducible.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
/// A final, empty, fixed-Huffman deflate block: ends a stream of sync-flushed blocks.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum GzipError<E> {
    /// The producer of the uncompressed bytes failed.
    #[error(transparent)]
    Input(E),
    /// Writing the compressed member failed.
    #[error("cannot write compressed output: {0}")]
    Output(io::Error),
    #[error("deflate failed: {0}")]
    Deflate(String),
}

/// What one member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStats {
    /// Uncompressed bytes.
    pub input: u64,
    /// Bytes of the whole member, header and trailer included.
    pub output: u64,
}

struct Job {
    dict: Vec<u8>,
    block: Vec<u8>,
}

struct Done {
    data: Vec<u8>,
    crc: Crc,
}

/// The `Write` side handed to the producer: cuts the stream into blocks and deals them to
/// the workers in turn.
pub struct BlockSink {
    workers: Vec<SyncSender<Job>>,
    next: usize,
    block: Vec<u8>,
    /// Tail of the previous block: the next block's dictionary.
    tail: Vec<u8>,
}

impl BlockSink {
    fn send_block(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.tail);
        let start = block.len().saturating_sub(DICT);
        self.tail = block[start..].to_vec();
        let n = self.workers.len();
        self.workers[self.next % n]
            .send(Job { dict, block })
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "gzip workers stopped"))?;
        self.next += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.block.is_empty() {
            self.send_block()?;
        }
        Ok(())
    }
}

impl Write for BlockSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let take = room.min(buf.len());
        self.block.extend_from_slice(&buf[..take]);
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses what `produce` writes into one gzip member written to `out`, using `threads`
/// compressing threads (plus the producer's own thread). `on_block` is told the uncompressed
/// size of each block as it is written (for a progress bar).
///
/// If writing to `out` fails, the producer's next write fails with `BrokenPipe` and the
/// output error is returned; if the producer fails, its error is returned.
pub fn compress_member<T, E, P>(
    produce: P,
    threads: usize,
    out: &mut dyn Write,
    on_block: &mut dyn FnMut(u64),
) -> Result<(T, MemberStats), GzipError<E>>
where
    T: Send,
    E: Send,
    P: FnOnce(&mut BlockSink) -> Result<T, E> + Send,
{
    let threads = threads.max(1);
    tune_allocator();
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
            let mut sink = BlockSink {
                workers: job_txs,
                next: 0,
                block: Vec::with_capacity(BLOCK),
                tail: Vec::new(),
            };
            let result = produce(&mut sink);
            let finished = sink.finish();
            // Dropping the sink closes the job queues: the workers drain them and stop.
            drop(sink);
            (result, finished)
        });
        let collected = collect(done_rxs, out, on_block);
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

/// Keeps glibc from hoarding freed deflate states. Each block gets a fresh ~330 KiB state
/// (see [`compress_block`]); glibc's default raises its mmap threshold past that size after
/// the first free, after which the states come from per-thread arenas that fragment and are
/// not trimmed: measured peak RSS 150 MB with 32 threads on the 200 MB bench tree. A fixed
/// trim threshold turns the dynamic adjustment off, so the states stay mmapped and go back to
/// the kernel on free: 22 MB with 32 threads, no measurable slowdown. Process-wide, set once;
/// a no-op elsewhere than glibc.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets allocator parameters; it takes glibc's own locks and
            // may be called at any time from any thread.
            unsafe {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
            }
        });
    }
}

fn worker(jobs: Receiver<Job>, done: SyncSender<Result<Done, String>>) {
    // One worst-case output buffer per worker, reused: only exact-size copies travel, so
    // memory stays flat over millions of blocks instead of fragmenting.
    let mut scratch = Vec::with_capacity(BLOCK + BLOCK / 8 + 64);
    for job in jobs {
        let result = compress_block(&job, &mut scratch);
        if done.send(result).is_err() {
            break;
        }
    }
}

/// Deflates one block with a fresh compressor. Not `Compress::reset`: with zlib-rs 0.6, a
/// reset compressor given a dictionary can emit different bytes than a new one (measured:
/// 2 blocks in 33 of `tests::lcg_text`), which made the output depend on which worker had
/// compressed what before, i.e. on the thread count. zlib-ng, which zlib-rs ports, had the
/// same bug (zlib-ng/zlib-ng#2100, "Deflate output not deterministic when the compressor is
/// reused with deflateReset"). A new state costs little next to deflating 128 KiB.
fn compress_block(job: &Job, scratch: &mut Vec<u8>) -> Result<Done, String> {
    let mut deflate = Compress::new(Compression::new(LEVEL), false);
    let deflate = &mut deflate;
    if !job.dict.is_empty() {
        deflate
            .set_dictionary(&job.dict)
            .map_err(|e| e.to_string())?;
    }
    let data = scratch;
    data.clear();
    data.reserve(job.block.len() + job.block.len() / 8 + 64);
    let mut consumed = 0;
    loop {
        let before = deflate.total_in();
        let status = deflate
            .compress_vec(&job.block[consumed..], data, FlushCompress::Sync)
            .map_err(|e| e.to_string())?;
        consumed += (deflate.total_in() - before) as usize;
        // zlib's sync flush is complete once it returns with output space left over.
        let done = consumed == job.block.len() && data.len() < data.capacity();
        if done || status == Status::StreamEnd {
            break;
        }
        data.reserve(64 * 1024);
    }
    let mut crc = Crc::new();
    crc.update(&job.block);
    Ok(Done {
        data: data.as_slice().to_vec(),
        crc,
    })
}

/// Assembles one member from compressed blocks: header, blocks, final block, trailer.
struct MemberWriter<'a> {
    out: &'a mut dyn Write,
    crc: Crc,
    blocks: usize,
    output: u64,
}

impl<'a> MemberWriter<'a> {
    fn start(out: &'a mut dyn Write) -> io::Result<Self> {
        let mut m = Self {
            out,
            crc: Crc::new(),
            blocks: 0,
            output: 0,
        };
        m.put(&HEADER)?;
        Ok(m)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.output += bytes.len() as u64;
        Ok(())
    }

    fn block(&mut self, done: &Done) -> io::Result<()> {
        self.put(&done.data)?;
        self.crc.combine(&done.crc);
        self.blocks += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<MemberStats> {
        self.put(&FINAL_BLOCK)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE: the input length modulo 2^32 (RFC 1952); `amount` already wraps that way.
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.put(&trailer)?;
        Ok(MemberStats {
            input: input_len(self.blocks, &self.crc),
            output: self.output,
        })
    }
}

/// Writes the member from the workers' blocks, taken in order.
fn collect<E>(
    done_rxs: Vec<Receiver<Result<Done, String>>>,
    out: &mut dyn Write,
    on_block: &mut dyn FnMut(u64),
) -> Result<MemberStats, GzipError<E>> {
    let mut member = MemberWriter::start(out).map_err(GzipError::Output)?;
    let n = done_rxs.len();
    let mut i = 0;
    // Blocks were dealt round-robin, so taking them round-robin restores their order; the
    // first closed queue means the block with that number was never made: the end.
    while let Ok(done) = done_rxs[i % n].recv() {
        let done = done.map_err(GzipError::Deflate)?;
        member.block(&done).map_err(GzipError::Output)?;
        on_block(done.crc.amount() as u64);
        i += 1;
    }
    member.finish().map_err(GzipError::Output)
}

/// The exact input length: every block but the last is full, and the last block's length
/// is what the wrapped total leaves over.
fn input_len(blocks: usize, crc: &Crc) -> u64 {
    if blocks == 0 {
        return 0;
    }
    let full = (blocks as u64 - 1) * BLOCK as u64;
    let last = (crc.amount() as u64).wrapping_sub(full) & 0xffff_ffff;
    // A last block is 1..=BLOCK bytes; 0 after wrapping means it was exactly BLOCK.
    full + if last == 0 { BLOCK as u64 } else { last }
}

/// Compresses `bytes` into one member in the calling thread (small inputs such as the
/// end-of-archive blocks): the same blocks, so the same bytes as [`compress_member`].
pub fn compress_small(bytes: &[u8]) -> Result<Vec<u8>, GzipError<std::convert::Infallible>> {
    let mut out = Vec::new();
    let mut member = MemberWriter::start(&mut out).map_err(GzipError::Output)?;
    let mut scratch = Vec::new();
    let mut dict: &[u8] = &[];
    for block in bytes.chunks(BLOCK) {
        let job = Job {
            dict: dict.to_vec(),
            block: block.to_vec(),
        };
        let done = compress_block(&job, &mut scratch).map_err(GzipError::Deflate)?;
        member.block(&done).map_err(GzipError::Output)?;
        dict = &block[block.len().saturating_sub(DICT)..];
    }
    member.finish().map_err(GzipError::Output)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
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

    fn compress(data: &[u8], threads: usize) -> (Vec<u8>, MemberStats) {
        let mut out = Vec::new();
        let ((), stats) = compress_member(
            |sink: &mut BlockSink| -> Result<(), io::Error> {
                // Odd write sizes, so block borders fall inside writes.
                for chunk in data.chunks(10_007) {
                    sink.write_all(chunk)?;
                }
                Ok(())
            },
            threads,
            &mut out,
            &mut |_| {},
        )
        .unwrap();
        (out, stats)
    }

    #[test]
    fn round_trips_at_block_borders() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 3 * BLOCK + 17] {
            let data = sample(len);
            let (gz, stats) = compress(&data, 3);
            assert_eq!(gunzip(&gz), data, "len {len}");
            assert_eq!(stats.input, len as u64);
            assert_eq!(stats.output, gz.len() as u64);
            assert_eq!(&gz[..10], &HEADER);
        }
    }

    /// Source-like text: words picked by an LCG, numbers, short binary runs. Plain repetitive
    /// samples do not show compressor-state leaks; this does (see `compress_block`).
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
            if r % 50 == 0 {
                for _ in 0..(r % 300) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    buf.push((x >> 56) as u8);
                }
            } else if r % 7 == 0 {
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
        let data = lcg_text(32 * BLOCK);
        let one = compress(&data, 1).0;
        assert_eq!(gunzip(&one), data);
        assert_eq!(compress(&data, 2).0, one);
        assert_eq!(compress(&data, 3).0, one);
    }

    #[test]
    fn bytes_do_not_depend_on_thread_count() {
        let data = sample(5 * BLOCK + 1234);
        let one = compress(&data, 1).0;
        for threads in [2, 3, 8] {
            assert_eq!(compress(&data, threads).0, one, "{threads} threads");
        }
    }

    #[test]
    fn dictionary_keeps_size_close_to_single_stream_gzip() {
        let data = sample(8 * BLOCK);
        let ours = compress(&data, 2).0.len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(LEVEL));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        // pigz-style blocks cost a few bytes per border, not a lost window.
        assert!(
            ours <= single + 8 * 16,
            "ours {ours}, single stream {single}"
        );
    }

    #[test]
    fn producer_error_is_returned() {
        let mut out = Vec::new();
        let r = compress_member(
            |sink: &mut BlockSink| -> Result<(), &'static str> {
                sink.write_all(&sample(3 * BLOCK)).unwrap();
                Err("boom")
            },
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
        let data = sample(20 * BLOCK);
        let r = compress_member(
            |sink: &mut BlockSink| -> Result<(), io::Error> { sink.write_all(&data) },
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
