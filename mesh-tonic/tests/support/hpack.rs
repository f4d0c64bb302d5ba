//! HTTP/2 on the wire: a forwarding proxy that records the header blocks clients send, and a minimal HPACK decoder
//! (RFC 7541) that tracks the names in a connection's dynamic table but decodes no Huffman code (h2 Huffman-codes
//! every literal, so the name `traceparent` is recognised by its code) and no entry sizes (so it is exact only as
//! long as the table evicts nothing: a test keeps its header blocks well under the table's 4 KiB).

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// `traceparent` Huffman-coded (RFC 7541 Appendix B: t 01001, r 101100, a 00011, c 00100, e 00101, p 101011,
/// n 101010; padded with ones).
pub const TRACEPARENT_HUFFMAN: &[u8] = &[0x4d, 0x83, 0x21, 0x6b, 0x1d, 0x85, 0xa9, 0x3f];
/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The header blocks each proxied connection carried to the server, in order.
pub type Blocks = Arc<Mutex<Vec<Vec<Vec<u8>>>>>;

/// Forwards connections on a free port of 127.0.0.1 to `backend`, recording the header blocks the clients send.
/// Its tasks stop when it is dropped.
pub struct Proxy {
    pub address: SocketAddr,
    pub blocks: Blocks,
    _tasks: JoinSet<()>,
}

impl Proxy {
    /// The header blocks of the one connection the proxy has forwarded; panics unless there was one.
    pub fn only_connection(&self) -> Vec<Vec<u8>> {
        let blocks = self.blocks.lock().unwrap().clone();
        let [connection] = &blocks[..] else {
            panic!("one connection expected: {blocks:?}");
        };
        connection.clone()
    }

    pub async fn start(backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let blocks = Blocks::default();
        let mut tasks = JoinSet::new();
        let recorded = Arc::clone(&blocks);
        tasks.spawn(async move {
            // Dropped with the accepting task: the connections' tasks stop with it.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(backend).await.unwrap();
                let connection = {
                    let mut blocks = recorded.lock().unwrap();
                    blocks.push(Vec::new());
                    blocks.len() - 1
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                connections.spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let recorded = Arc::clone(&recorded);
                connections.spawn(async move {
                    let mut frames = FrameReader::default();
                    let mut buffer = vec![0; 16 * 1024];
                    while let Ok(read) = client_read.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        // Recorded before the server sees them, so before any answer to them.
                        for block in frames.push(&buffer[..read]) {
                            recorded.lock().unwrap()[connection].push(block);
                        }
                        if server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            address,
            blocks,
            _tasks: tasks,
        }
    }
}

/// Splits a client's bytes into HTTP/2 frames (RFC 9113 §4.1) and puts HEADERS and their CONTINUATION frames
/// together into header blocks.
#[derive(Default)]
struct FrameReader {
    bytes: Vec<u8>,
    preface_read: bool,
    /// A header block waiting for its CONTINUATION frames.
    open: Option<Vec<u8>>,
}

impl FrameReader {
    /// Takes `bytes`; the header blocks they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.bytes.extend_from_slice(bytes);
        if !self.preface_read {
            if self.bytes.len() < PREFACE.len() {
                return Vec::new();
            }
            assert_eq!(&self.bytes[..PREFACE.len()], PREFACE);
            self.bytes.drain(..PREFACE.len());
            self.preface_read = true;
        }
        let mut blocks = Vec::new();
        while self.bytes.len() >= 9 {
            let length = usize::from(self.bytes[0]) << 16
                | usize::from(self.bytes[1]) << 8
                | usize::from(self.bytes[2]);
            if self.bytes.len() < 9 + length {
                break;
            }
            let (kind, flags) = (self.bytes[3], self.bytes[4]);
            let frame: Vec<u8> = self.bytes.drain(..9 + length).skip(9).collect();
            let fragment = match kind {
                // HEADERS: without its padding (PADDED) and priority (PRIORITY).
                0x1 => {
                    let padding = if flags & 0x8 != 0 {
                        usize::from(frame[0])
                    } else {
                        0
                    };
                    let start =
                        usize::from(flags & 0x8 != 0) + if flags & 0x20 != 0 { 5 } else { 0 };
                    self.open = Some(Vec::new());
                    &frame[start..frame.len() - padding]
                }
                0x9 => &frame[..],
                _ => continue,
            };
            let open = self.open.as_mut().expect("CONTINUATION after HEADERS");
            open.extend_from_slice(fragment);
            // END_HEADERS
            if flags & 0x4 != 0 {
                blocks.extend(self.open.take());
            }
        }
        blocks
    }
}

/// A field's name as the decoder knows it: a static table index, or a literal's (Huffman-coded) bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Name {
    Static(usize),
    Literal { huffman: bool, bytes: Vec<u8> },
}

impl Name {
    pub fn is_traceparent(&self) -> bool {
        match self {
            Self::Static(_) => false,
            Self::Literal { huffman, bytes } => {
                if *huffman {
                    bytes == TRACEPARENT_HUFFMAN
                } else {
                    bytes == b"traceparent"
                }
            }
        }
    }
}

/// How a field is represented (RFC 7541 §6.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal {
    /// With incremental indexing: inserted into the dynamic table.
    Indexed,
    WithoutIndexing,
    NeverIndexed,
}

/// A `traceparent` field as sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sent {
    pub literal: Literal,
    /// Its name as an index into the dynamic table (true) or as a literal string (false).
    pub name_indexed: bool,
}

/// The names in a connection's dynamic table, newest first (RFC 7541 §2.3.3: index 62 is the newest).
#[derive(Default)]
pub struct Decoder {
    dynamic: Vec<Name>,
}

impl Decoder {
    /// The `traceparent` fields of `block`, entering what it inserts into the dynamic table.
    pub fn traceparents(&mut self, block: &[u8]) -> Vec<Sent> {
        let mut rest = block;
        let mut sent = Vec::new();
        while let Some(&first) = rest.first() {
            if first & 0x80 != 0 {
                // An indexed field (§6.1): a whole entry of the table again, which a value unique to its request
                // (as `traceparent`'s) never is.
                integer(&mut rest, 7);
                continue;
            }
            if first & 0xe0 == 0x20 {
                // A dynamic table size update (§6.3).
                integer(&mut rest, 5);
                continue;
            }
            let (literal, prefix) = if first & 0x40 != 0 {
                (Literal::Indexed, 6)
            } else if first & 0x10 != 0 {
                (Literal::NeverIndexed, 4)
            } else {
                (Literal::WithoutIndexing, 4)
            };
            let index = integer(&mut rest, prefix);
            let name = match index {
                0 => {
                    let (huffman, bytes) = string(&mut rest);
                    Name::Literal { huffman, bytes }
                }
                1..=61 => Name::Static(index),
                _ => self.dynamic[index - 62].clone(),
            };
            string(&mut rest);
            if name.is_traceparent() {
                sent.push(Sent {
                    literal,
                    name_indexed: index != 0,
                });
            }
            if literal == Literal::Indexed {
                self.dynamic.insert(0, name);
            }
        }
        sent
    }
}

/// An integer with an `prefix`-bit prefix (RFC 7541 §5.1), taken from the front of `rest`.
fn integer(rest: &mut &[u8], prefix: u32) -> usize {
    let mask = (1_usize << prefix) - 1;
    let mut value = usize::from(rest[0]) & mask;
    *rest = &rest[1..];
    if value == mask {
        let mut shift = 0;
        loop {
            let byte = rest[0];
            *rest = &rest[1..];
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    value
}

/// A string literal (RFC 7541 §5.2), taken from the front of `rest`: whether it is Huffman-coded, and its bytes.
fn string(rest: &mut &[u8]) -> (bool, Vec<u8>) {
    let huffman = rest[0] & 0x80 != 0;
    let length = integer(rest, 7);
    let bytes = rest[..length].to_vec();
    *rest = &rest[length..];
    (huffman, bytes)
}

/// The `traceparent` field of each of a connection's header `blocks`, in order; panics unless each has one.
pub fn traceparent_of_each(blocks: &[Vec<u8>]) -> Vec<Sent> {
    let mut decoder = Decoder::default();
    blocks
        .iter()
        .map(|block| {
            let fields = decoder.traceparents(block);
            let [field] = fields[..] else {
                panic!("one traceparent a request: {fields:?}");
            };
            field
        })
        .collect()
}
