//! gRFC A66's message sizes: the bytes of gRPC messages as they cross the wire, counted from a body's data frames.
//!
//! gRFC A66 defines `*_total_compressed_message_size` as the "total bytes (compressed but not encrypted) sent
//! across all request messages (metadata excluded) per RPC attempt; does not include grpc or transport framing
//! bytes" (and the same for responses and for the server's call). On the wire each gRPC message is a 5-byte prefix
//! (compressed flag, big-endian length) and its payload, which is already compressed when the message is; so the
//! size is the sum of the payloads, prefixes left out. [`GrpcMessageBytes`] reads that sum from a byte stream cut
//! anywhere by HTTP/2 DATA frames, with no allocation and no copy beyond the 5 prefix bytes.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sums the payload bytes of the gRPC messages in a byte stream fed in pieces: gRFC A66's message size (the
/// payloads as on the wire, compressed when the message is; the 5-byte message prefixes, metadata and HTTP/2
/// framing left out), wherever DATA frames cut the stream.
#[derive(Debug, Default, Clone)]
pub struct GrpcMessageBytes {
    /// Prefix bytes of the next message seen so far (0 when in a payload or between messages).
    prefix_seen: u8,
    prefix: [u8; 5],
    /// Payload bytes still expected in the current message (a gRPC length is 32 bits).
    payload_left: u32,
    /// Payload bytes seen.
    total: u64,
}

impl GrpcMessageBytes {
    /// Counts the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let take = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                // `take` is at most `payload_left`, a u32.
                let taken = u32::try_from(take).unwrap_or(u32::MAX);
                self.payload_left -= taken;
                self.total = self.total.saturating_add(u64::from(taken));
                data = data.get(take..).unwrap_or_default();
                continue;
            }
            let seen = usize::from(self.prefix_seen);
            let take = (5 - seen).min(data.len());
            if let (Some(to), Some(from)) =
                (self.prefix.get_mut(seen..seen + take), data.get(..take))
            {
                to.copy_from_slice(from);
            }
            data = data.get(take..).unwrap_or_default();
            if seen + take == 5 {
                self.prefix_seen = 0;
                let [_, a, b, c, d] = self.prefix;
                self.payload_left = u32::from_be_bytes([a, b, c, d]);
            } else {
                // Fewer than 5.
                self.prefix_seen = u8::try_from(seen + take).unwrap_or(0);
            }
        }
    }

    /// The payload bytes counted so far.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.total
    }
}

/// The total of a [`MessageBytesCounter`], readable while the counter is with another task (a request body
/// with the connection's task, for instance). The counter counts alone, with its own [`GrpcMessageBytes`] (nothing
/// shared per byte), and publishes the total with one release store per data frame. Made once per attempt or call,
/// and only when something records message sizes; the shared cell of a total nobody holds any more is kept by the
/// thread that dropped it (a few dozen at most) for the next one made there, so that steady traffic does not
/// allocate one per call.
#[derive(Debug, Clone)]
pub struct MessageBytesTotal(Option<Arc<AtomicU64>>);

/// The most cells a thread keeps for reuse.
const SPARE_CELLS: usize = 64;

thread_local! {
    /// Cells of dropped totals, for the next totals made on this thread.
    static SPARE: RefCell<Vec<Arc<AtomicU64>>> = const { RefCell::new(Vec::new()) };
}

impl Default for MessageBytesTotal {
    /// A total of 0, in a cell this thread kept when there is one.
    fn default() -> Self {
        let spare = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        Self(Some(spare.map_or_else(Arc::default, |cell| {
            cell.store(0, Ordering::Relaxed);
            cell
        })))
    }
}

impl MessageBytesTotal {
    /// The message bytes counted so far.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |cell| cell.load(Ordering::Acquire))
    }
}

impl Drop for MessageBytesTotal {
    fn drop(&mut self) {
        // The last holder (no clone left anywhere, so none can be made) keeps the cell on this thread.
        if let Some(cell) = self.0.take()
            && Arc::strong_count(&cell) == 1
        {
            let _ = SPARE.try_with(|spare| {
                if let Ok(mut spare) = spare.try_borrow_mut()
                    && spare.len() < SPARE_CELLS
                {
                    spare.push(cell);
                }
            });
        }
    }
}

/// The body's side of a [`MessageBytesTotal`]: fed the data frames of a body as they pass.
#[derive(Debug)]
pub struct MessageBytesCounter {
    count: GrpcMessageBytes,
    shared: MessageBytesTotal,
}

impl MessageBytesCounter {
    /// A counter and the handle to read its total.
    #[must_use]
    pub fn new() -> (Self, MessageBytesTotal) {
        let shared = MessageBytesTotal::default();
        (
            Self {
                count: GrpcMessageBytes::default(),
                shared: shared.clone(),
            },
            shared,
        )
    }

    /// Counts the next piece of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.count.feed(data);
        if let Some(cell) = &self.shared.0 {
            cell.store(self.count.total(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut stream = vec![0, 0, 0, 0, 3, b'a', b'b', b'c'];
        stream.extend([1, 0, 0, 0, 0]);
        stream.extend([0, 0, 0, 0, 2, b'x', b'y']);
        stream
    }

    #[test]
    fn payloads_are_counted_without_their_prefixes_wherever_the_stream_is_cut() {
        let stream = stream();
        for split in 0..stream.len() {
            let mut bytes = GrpcMessageBytes::default();
            let (a, b) = stream.split_at(split);
            bytes.feed(a);
            bytes.feed(b);
            assert_eq!(bytes.total(), 5, "split at {split}");
        }
        let mut one_by_one = GrpcMessageBytes::default();
        for byte in &stream {
            one_by_one.feed(std::slice::from_ref(byte));
        }
        assert_eq!(one_by_one.total(), 5);
    }

    #[test]
    fn the_handle_reads_what_the_body_counted() {
        let (mut counter, handle) = MessageBytesCounter::new();
        assert_eq!(handle.get(), 0);
        counter.feed(&stream()[..7]);
        assert_eq!(handle.get(), 2);
        counter.feed(&stream()[7..]);
        assert_eq!(handle.get(), 5);
    }

    #[test]
    fn a_cell_is_reused_only_once_nobody_holds_it_and_starts_again_from_zero() {
        let (mut counter, handle) = MessageBytesCounter::new();
        counter.feed(&stream());
        let cell = |total: &MessageBytesTotal| Arc::as_ptr(total.0.as_ref().expect("a cell"));
        let first = cell(&handle);
        // The handle still holds the cell (and a clone of it): a new total gets another one.
        let copy = handle.clone();
        drop(counter);
        drop(handle);
        let (_, other) = MessageBytesCounter::new();
        assert_ne!(cell(&other), first);
        assert_eq!(copy.get(), 5, "the held total is untouched");
        // The last holder gone, the next total on this thread takes the cell, back at 0.
        drop(copy);
        let (mut counter, reused) = MessageBytesCounter::new();
        assert_eq!(cell(&reused), first);
        assert_eq!(reused.get(), 0);
        counter.feed(&stream()[..7]);
        assert_eq!(reused.get(), 2);
        assert_eq!(other.get(), 0);
    }

    proptest::proptest! {
        /// However a stream of messages is cut into frames, the total is the sum of the payloads; and any bytes at
        /// all (a peer's garbage) are counted without a panic.
        #[test]
        fn any_cuts_give_the_payload_total(
            payloads in proptest::collection::vec(0_usize..3000, 0..8),
            cuts in proptest::collection::vec(0_usize..40_000, 0..12),
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut stream = Vec::new();
            for (index, len) in payloads.iter().enumerate() {
                stream.push(u8::from(index % 2 == 1));
                stream.extend(u32::try_from(*len).unwrap().to_be_bytes());
                stream.extend(std::iter::repeat_n(0xAB, *len));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut bytes = GrpcMessageBytes::default();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                bytes.feed(&stream[from..cut]);
                from = cut;
            }
            proptest::prop_assert_eq!(bytes.total(), payloads.iter().sum::<usize>() as u64);
            let mut anything = GrpcMessageBytes::default();
            anything.feed(&garbage);
            proptest::prop_assert!(anything.total() <= garbage.len() as u64);
        }
    }
}
