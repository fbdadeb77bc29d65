//! RFC 6455 framing with tungstenite over bytes the proxy moves: the client's bytes are
//! fed in, messages come out; messages to send (and tungstenite's own pongs and close
//! replies) collect as output bytes that the session writes to the connection. tungstenite
//! checks masking, fragmentation, control frames, UTF-8 and the size limits.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::Bytes;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

/// In-memory transport: reads what was fed (`WouldBlock` when empty), collects writes.
#[derive(Default)]
struct Pipe {
    inbound: VecDeque<u8>,
    outbound: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inbound.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inbound.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why the connection ends, with the close code sent (or received).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The close code.
    pub code: u16,
    /// The reason sent with it.
    pub reason: &'static str,
}

impl Closing {
    /// A close with `code` and `reason`.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

/// One server-side WebSocket.
pub struct Socket {
    ctx: WebSocketContext,
    pipe: Pipe,
}

impl Socket {
    /// A server socket refusing messages or frames over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        Self {
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            pipe: Pipe::default(),
        }
    }

    /// Bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pipe.inbound.extend(bytes);
    }

    /// The next complete message from what was fed (`Ok(None)`: more bytes needed), or
    /// why the connection ends. A close from the client is answered (in the output) and
    /// returned as its code.
    pub fn next_message(&mut self) -> Result<Option<Message>, Closing> {
        match self.ctx.read(&mut self.pipe) {
            Ok(Message::Close(frame)) => {
                let _ = self.ctx.flush(&mut self.pipe);
                let code = frame.map_or(1005, |f| u16::from(f.code));
                Err(Closing::new(code, "client closed"))
            }
            Ok(m) => Ok(Some(m)),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // Pongs and close replies queued while reading.
                let _ = self.ctx.flush(&mut self.pipe);
                Ok(None)
            }
            Err(Error::Capacity(_)) => Err(self.close(Closing::new(1009, "message too big"))),
            Err(Error::Utf8(_)) => Err(self.close(Closing::new(1007, "invalid UTF-8"))),
            Err(Error::Protocol(_)) => Err(self.close(Closing::new(1002, "protocol error"))),
            Err(_) => Err(Closing::new(1006, "connection lost")),
        }
    }

    /// Queue `message` for the client.
    pub fn send(&mut self, message: Message) -> Result<(), Closing> {
        self.ctx
            .write(&mut self.pipe, message)
            .and_then(|()| self.ctx.flush(&mut self.pipe))
            .map_err(|_| Closing::new(1006, "connection lost"))
    }

    /// Queue a close frame with `closing`'s code and reason; returns `closing`.
    pub fn close(&mut self, closing: Closing) -> Closing {
        let frame = CloseFrame {
            code: CloseCode::from(closing.code),
            reason: closing.reason.into(),
        };
        let _ = self.ctx.close(&mut self.pipe, Some(frame));
        let _ = self.ctx.flush(&mut self.pipe);
        closing
    }

    /// Bytes waiting to be written to the client.
    pub fn pending(&self) -> usize {
        self.pipe.outbound.len()
    }

    /// What is to be written to the client, if anything.
    pub fn output(&mut self) -> Option<Bytes> {
        (!self.pipe.outbound.is_empty())
            .then(|| Bytes::from(std::mem::take(&mut self.pipe.outbound)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as a client sends them (masked).
    pub(crate) fn client_frames(messages: &[Message]) -> Vec<u8> {
        let mut ctx = WebSocketContext::new(Role::Client, None);
        let mut pipe = Pipe::default();
        for m in messages {
            ctx.write(&mut pipe, m.clone()).unwrap();
        }
        ctx.flush(&mut pipe).unwrap();
        pipe.outbound
    }

    #[test]
    fn messages_split_anywhere_come_out_whole() {
        let bytes = client_frames(&[Message::text("hello"), Message::binary(vec![1u8, 2, 3])]);
        let mut s = Socket::new(1024);
        let mut got = Vec::new();
        for b in bytes.chunks(3) {
            s.feed(b);
            while let Some(m) = s.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            [Message::text("hello"), Message::binary(vec![1u8, 2, 3])]
        );
    }

    #[test]
    fn too_big_closes_with_1009_and_unmasked_with_1002() {
        let mut s = Socket::new(8);
        s.feed(&client_frames(&[Message::text("0123456789")]));
        assert_eq!(s.next_message().unwrap_err().code, 1009);
        let out = s.output().expect("a close frame");
        assert_eq!(&out[..4], &[0x88, 17, 0x03, 0xf1], "close, 1009");
        let mut s = Socket::new(64);
        s.feed(&[0x81, 0x02, b'h', b'i']);
        assert_eq!(
            s.next_message().unwrap_err().code,
            1002,
            "a client must mask"
        );
        // A text frame that is not UTF-8 (masked with a zero key).
        let mut s = Socket::new(64);
        s.feed(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]);
        assert_eq!(s.next_message().unwrap_err().code, 1007);
    }

    #[test]
    fn pings_are_answered_and_a_close_is_returned_with_its_code() {
        let mut s = Socket::new(64);
        s.feed(&client_frames(&[Message::Ping("p".into())]));
        assert!(matches!(s.next_message(), Ok(Some(Message::Ping(_)))));
        assert!(s.next_message().unwrap().is_none());
        assert_eq!(s.output().as_deref(), Some(&[0x8a, 1, b'p'][..]), "pong");
        s.feed(&client_frames(&[Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))]));
        assert_eq!(s.next_message().unwrap_err().code, 1000);
        assert_eq!(
            s.output().map(|o| o[0]),
            Some(0x88),
            "the close is answered"
        );
    }
}
