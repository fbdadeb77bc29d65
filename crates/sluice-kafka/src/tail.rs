//! `sluice tail`: print the records of a topic, one block per record, from the start of
//! each partition (assigned directly, no consumer group). Record bytes are request data:
//! unless `--raw`, control characters (terminal escape sequences, line breaks, carriage
//! returns, C1 controls, bidirectional marks) are printed as `\u{..}` escapes, so a
//! record cannot drive the terminal or fake other records' lines.

use crate::error::TailError;
use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// What to print.
pub struct TailOptions {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Stop after this many records.
    pub max: Option<usize>,
    /// Start from the end instead of the beginning.
    pub from_end: bool,
    /// Print record bytes unchanged (control characters included).
    pub raw: bool,
}

/// `bytes` as text for a terminal: invalid UTF-8 replaced, control characters escaped
/// (`keep_tabs` keeps `\t`, for record values; line breaks are always escaped, so a
/// value cannot print a line that looks like another record's).
pub fn printable(bytes: &[u8], keep_tabs: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{2028}' | '\u{2029}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if (c.is_control() && !(keep_tabs && c == '\t')) || invisible {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Print records until `max` is reached or the process is interrupted.
pub fn run(opts: &TailOptions, out: &mut dyn Write) -> Result<(), TailError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", "sluice-tail")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(TailError::Consumer)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(&opts.topic), Duration::from_secs(5))
            .map_err(|source| TailError::Metadata {
                brokers: opts.brokers.clone(),
                source,
            })?;
        let n = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if n > 0 {
            break n;
        }
        if Instant::now() > deadline {
            return Err(TailError::NoPartitions(opts.topic.clone()));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut tpl = TopicPartitionList::new();
    let start = if opts.from_end {
        Offset::End
    } else {
        Offset::Beginning
    };
    for p in 0..partitions {
        tpl.add_partition_offset(&opts.topic, p as i32, start)?;
    }
    consumer.assign(&tpl)?;
    let mut seen = 0usize;
    while opts.max.is_none_or(|m| seen < m) {
        let Some(res) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = res?;
        if opts.raw {
            write_raw(out, &msg);
        } else {
            let _ = writeln!(
                out,
                "--- {}/{}@{} key={}",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                msg.key()
                    .map(|k| printable(k, false))
                    .unwrap_or_else(|| "(none)".into())
            );
            if let Some(h) = msg.headers() {
                for header in h.iter() {
                    let v = printable(header.value.unwrap_or_default(), false);
                    let _ = writeln!(out, "{}: {v}", printable(header.key.as_bytes(), false));
                }
            }
            let _ = writeln!(
                out,
                "{}",
                printable(msg.payload().unwrap_or_default(), true)
            );
        }
        let _ = out.flush();
        seen += 1;
    }
    Ok(())
}

/// One record with its bytes unchanged (`--raw`).
fn write_raw(out: &mut dyn Write, msg: &rdkafka::message::BorrowedMessage<'_>) {
    let _ = write!(
        out,
        "--- {}/{}@{} key=",
        msg.topic(),
        msg.partition(),
        msg.offset()
    );
    let _ = out.write_all(msg.key().unwrap_or(b"(none)"));
    let _ = writeln!(out);
    if let Some(h) = msg.headers() {
        for header in h.iter() {
            let _ = write!(out, "{}: ", header.key);
            let _ = out.write_all(header.value.unwrap_or_default());
            let _ = writeln!(out);
        }
    }
    let _ = out.write_all(msg.payload().unwrap_or_default());
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        let evil = b"ok\x1b]0;pwned\x07\x1b[2J\r\nline2\tcol \xc2\x9b31m \xe2\x80\xae";
        let v = printable(evil, true);
        assert_eq!(
            v,
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{d}\\u{a}line2\tcol \\u{9b}31m \\u{202e}"
        );
        assert!(!printable(b"a\nb", false).contains('\n'));
        assert!(!printable(b"a\tb", false).contains('\t'));
        assert_eq!(printable("x\u{2028}y".as_bytes(), true), "x\\u{2028}y");
        assert_eq!(printable("café".as_bytes(), false), "café");
    }
}
