//! HTTP/2 frame tracking for the connection guard, without touching the bytes: the
//! client's side tells when a request header block is open (from the first byte of its
//! `HEADERS` frame to the end of the frame carrying `END_HEADERS`, `CONTINUATION`s
//! included, and the connection preface, due from the connection's start), so the
//! header deadline applies per stream;
//! the server's side shows the streams the codec refused with `REFUSED_STREAM` because
//! the client went past `http2_max_concurrent_streams`.

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const REFUSED_STREAM: u32 = 0x7;

/// One direction's frame boundaries.
#[derive(Debug, Default)]
struct Frames {
    head: [u8; 9],
    head_len: usize,
    payload_left: usize,
    /// First payload bytes kept for inspection (RST_STREAM's error code).
    first: [u8; 4],
    first_len: usize,
}

impl Frames {
    fn kind(&self) -> u8 {
        self.head[3]
    }
    fn flags(&self) -> u8 {
        self.head[4]
    }

    /// Feed bytes; `on_frame(self, event)` is called at each frame start (header complete)
    /// and each frame end.
    fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(&Frames, Event)) {
        while !bytes.is_empty() {
            if self.head_len < 9 {
                if self.head_len == 0 {
                    on(self, Event::FirstByte);
                }
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == 9 {
                    self.payload_left = usize::from(self.head[0]) << 16
                        | usize::from(self.head[1]) << 8
                        | usize::from(self.head[2]);
                    self.first_len = 0;
                    on(self, Event::Header);
                    if self.payload_left == 0 {
                        on(self, Event::End);
                        self.head_len = 0;
                    }
                }
                continue;
            }
            let n = self.payload_left.min(bytes.len());
            let keep = (4 - self.first_len).min(n);
            self.first[self.first_len..self.first_len + keep].copy_from_slice(&bytes[..keep]);
            self.first_len += keep;
            self.payload_left -= n;
            bytes = &bytes[n..];
            if self.payload_left == 0 {
                on(self, Event::End);
                self.head_len = 0;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    FirstByte,
    Header,
    End,
}

/// What the header deadline should do after some client bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    /// A header block (or the preface) is still incomplete.
    pub needed: bool,
    /// One started in these bytes: the clock starts now.
    pub started: bool,
}

/// The client's side of an HTTP/2 connection.
#[derive(Debug, Default)]
pub struct Inbound {
    preface_seen: usize,
    frames: Frames,
    /// Inside a header block (a `HEADERS`/`PUSH_PROMISE` without `END_HEADERS` so far).
    block_open: bool,
    /// The current frame belongs to a header block.
    frame_in_block: bool,
}

impl Inbound {
    /// Follow `bytes` from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Clock {
        let mut clock = Clock::default();
        if self.preface_seen < PREFACE_LEN {
            // The clock for the preface runs from the connection's start (the guard arms
            // it then), not from its first byte.
            let n = (PREFACE_LEN - self.preface_seen).min(bytes.len());
            self.preface_seen += n;
            bytes = &bytes[n..];
            if self.preface_seen < PREFACE_LEN {
                clock.needed = true;
                return clock;
            }
        }
        let (mut block_open, mut in_block) = (self.block_open, self.frame_in_block);
        let mid_frame_header = (1..9).contains(&self.frames.head_len);
        let mut needed = block_open || in_block || mid_frame_header;
        self.frames.feed(bytes, |f, ev| match ev {
            Event::FirstByte => {
                // Any frame's header is time-bound until its type is known.
                if !needed {
                    clock.started = true;
                }
                needed = true;
            }
            Event::Header => {
                in_block = matches!(f.kind(), HEADERS | PUSH_PROMISE | CONTINUATION);
                if in_block {
                    block_open = f.flags() & END_HEADERS == 0;
                } else if !block_open {
                    needed = false;
                }
            }
            Event::End => {
                if in_block && !block_open {
                    needed = false;
                }
                in_block = false;
            }
        });
        self.block_open = block_open;
        self.frame_in_block = in_block;
        clock.needed = needed;
        clock
    }
}

/// The server's side: counts streams refused for the concurrency limit.
#[derive(Debug, Default)]
pub struct Outbound {
    frames: Frames,
}

impl Outbound {
    /// Follow `bytes` to the client; returns how many `RST_STREAM(REFUSED_STREAM)` ended.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut refused = 0;
        self.frames.feed(bytes, |f, ev| {
            if ev == Event::End
                && f.kind() == RST_STREAM
                && f.first_len == 4
                && u32::from_be_bytes(f.first) == REFUSED_STREAM
            {
                refused += 1;
            }
        });
        refused
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[test]
    fn the_preface_and_header_blocks_need_the_clock() {
        let mut i = Inbound::default();
        assert_eq!(
            i.feed(&PREFACE[..5]),
            Clock {
                needed: true,
                started: false
            }
        );
        assert!(!i.feed(&PREFACE[5..]).needed, "preface done");
        let settings = frame(0x4, 0, 0, &[0; 6]);
        assert!(!i.feed(&settings).needed);
        // A trickled HEADERS frame: its first byte starts the clock.
        let h = frame(HEADERS, 0, 1, b"abcdef");
        let c = i.feed(&h[..3]);
        assert!(c.needed && c.started);
        assert_eq!(
            i.feed(&h[3..8]),
            Clock {
                needed: true,
                started: false
            }
        );
        // No END_HEADERS: the block stays open through a CONTINUATION.
        assert!(i.feed(&h[8..]).needed);
        let cont = frame(CONTINUATION, END_HEADERS, 1, b"gh");
        assert!(i.feed(&cont[..10]).needed);
        assert!(!i.feed(&cont[10..]).needed, "END_HEADERS closes the block");
        // DATA frames are not header time once their type is known.
        let data = frame(0x0, 0, 1, &[0; 100]);
        assert!(!i.feed(&data[..20]).needed);
        assert!(!i.feed(&data[20..]).needed);
        // A complete request followed by half of the next one restarts the clock.
        let mut two = frame(HEADERS, END_HEADERS, 3, b"x");
        two.extend_from_slice(&frame(HEADERS, END_HEADERS, 5, b"y")[..4]);
        assert_eq!(
            i.feed(&two),
            Clock {
                needed: true,
                started: true
            }
        );
    }

    #[test]
    fn refused_streams_are_counted() {
        let mut o = Outbound::default();
        let mut bytes = frame(0x4, 0, 0, &[]);
        bytes.extend(frame(RST_STREAM, 0, 3, &REFUSED_STREAM.to_be_bytes()));
        bytes.extend(frame(RST_STREAM, 0, 5, &8u32.to_be_bytes()));
        bytes.extend(frame(RST_STREAM, 0, 7, &REFUSED_STREAM.to_be_bytes()));
        assert_eq!(o.feed(&bytes[..20]), 0);
        assert_eq!(o.feed(&bytes[20..]), 2);
    }
}
