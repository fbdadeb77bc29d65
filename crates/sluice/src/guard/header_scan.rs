//! Where an HTTP/1 client is in its request stream, from the bytes it sent: between
//! requests, inside a request header, or past it. The header deadline
//! ([`super::stream`]) runs while a header is in progress.

/// Where the client is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Between requests (or waiting for the first).
    Idle,
    /// Inside a request header, deadline armed. `started` once a byte other than CR/LF
    /// came (empty lines before a request line are skipped by the parser but do not stop
    /// the clock); `newlines` counts line ends since the last other byte.
    Header { started: bool, newlines: u8 },
    /// Past the header (body, or waiting for the response).
    Body,
}

/// Where the client is after `bytes`, and whether a new request started in them: a
/// request starts at its first byte and its header ends at two line ends in a row (CR
/// optional). Line ends are found with `memchr`; of each line only the first byte that
/// is not CR is looked at.
pub(super) fn scan(mut phase: Phase, mut bytes: &[u8]) -> (Phase, bool) {
    let mut started_request = false;
    while !bytes.is_empty() {
        match phase {
            Phase::Body => break,
            Phase::Idle => {
                started_request = true;
                phase = Phase::Header {
                    started: false,
                    newlines: 0,
                };
            }
            // Empty lines before the request line are skipped by the parser.
            Phase::Header { started: false, .. } => {
                match bytes.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(i) => {
                        bytes = bytes.get(i..).unwrap_or_default();
                        phase = Phase::Header {
                            started: true,
                            newlines: 0,
                        };
                    }
                    None => break,
                }
            }
            Phase::Header {
                started: true,
                mut newlines,
            } => {
                let lf = memchr::memchr(b'\n', bytes);
                let line = bytes.get(..lf.unwrap_or(bytes.len())).unwrap_or_default();
                if line.iter().any(|&b| b != b'\r') {
                    newlines = 0;
                }
                let Some(lf) = lf else {
                    phase = Phase::Header {
                        started: true,
                        newlines,
                    };
                    break;
                };
                newlines += 1;
                phase = if newlines >= 2 {
                    Phase::Body
                } else {
                    Phase::Header {
                        started: true,
                        newlines,
                    }
                };
                bytes = bytes.get(lf + 1..).unwrap_or_default();
            }
        }
    }
    (phase, started_request)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition `scan` must agree with.
    fn model(mut phase: Phase, bytes: &[u8]) -> Phase {
        for &b in bytes {
            if phase == Phase::Idle {
                phase = Phase::Header {
                    started: false,
                    newlines: 0,
                };
            }
            match phase {
                Phase::Header { started: false, .. } if b == b'\r' || b == b'\n' => {}
                Phase::Header { started, newlines } => {
                    let n = match b {
                        b'\n' => newlines + 1,
                        b'\r' => newlines,
                        _ => 0,
                    };
                    if started && n >= 2 {
                        return Phase::Body;
                    }
                    phase = Phase::Header {
                        started: true,
                        newlines: n,
                    };
                }
                Phase::Idle | Phase::Body => return phase,
            }
        }
        phase
    }

    #[test]
    fn scan_agrees_with_the_byte_model_for_every_split() {
        let inputs: [&[u8]; 7] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody",
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"GET / HTTP/1.1\r\nX: \r\r\n\r\r\n",
            b"GET /\r\nA: b\r\n\rX\r\n\r\n",
            b"\n",
            b"G",
        ];
        for input in inputs {
            for a in 0..=input.len() {
                for b in a..=input.len() {
                    let mut phase = Phase::Idle;
                    for part in [&input[..a], &input[a..b], &input[b..]] {
                        let expect = model(phase, part);
                        phase = scan(phase, part).0;
                        assert_eq!(phase, expect, "{input:?} split at {a}, {b}");
                    }
                }
            }
        }
        assert!(scan(Phase::Idle, b"G").1);
        assert!(
            !scan(
                Phase::Header {
                    started: true,
                    newlines: 0
                },
                b"G"
            )
            .1
        );
    }
}
