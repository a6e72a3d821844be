//! An incremental parser of `text/event-stream` (server-sent events): bytes in as they arrive,
//! complete events out. Comment lines (`: keep-alive`) are skipped.

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when there was none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream so far (it persists across events).
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl SseParser {
    /// The reconnection delay the server asked for with `retry:`, if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Forgets a half-received event (the connection it came on is gone); keeps the last id.
    pub fn reset_connection(&mut self) {
        self.buffer.clear();
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }

    /// Feeds bytes; answers the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|b| *b == b'\n' || *b == b'\r') {
            let end = start + offset;
            let terminator_len = if self.buffer[end] == b'\r' {
                match self.buffer.get(end + 1) {
                    // A `\r` at the end of what has arrived may be the first half of `\r\n`.
                    None => break,
                    Some(b'\n') => 2,
                    Some(_) => 1,
                }
            } else {
                1
            };
            let line = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
            start = end + terminator_len;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buffer.drain(..start);
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(millis) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: event.filter(|e| !e.is_empty()).unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        chunks.iter().flat_map(|chunk| parser.push(chunk.as_bytes())).collect()
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text =
            "event: job\nid: 3\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\nevent: job\r\nid: 4\r\ndata: x\r\n\r\n";
        let whole = events_of(&[text]);
        assert_eq!(
            whole,
            [
                SseEvent { event: "job".into(), data: "{\"a\":\n1}".into(), id: Some("3".into()) },
                SseEvent { event: "job".into(), data: "x".into(), id: Some("4".into()) },
            ]
        );
        for split in 0..text.len() {
            assert_eq!(events_of(&[&text[..split], &text[split..]]), whole, "split at {split}");
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let one_by_one: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(events_of(&one_by_one), whole);
    }

    #[test]
    fn comments_and_empty_events_dispatch_nothing() {
        assert!(events_of(&[": keep-alive\n\n", "event: job\n\n", "\n\n"]).is_empty());
        let lone_cr = events_of(&["data: a\rdata: b\r\rx"]);
        assert_eq!(lone_cr[0].data, "a\nb");
        assert_eq!(lone_cr[0].event, "message");
    }

    #[test]
    fn retry_and_ids_persist() {
        let mut parser = SseParser::default();
        let events = parser.push(b"retry: 1500\nid: 7\ndata: a\n\ndata: b\n\n");
        assert_eq!(parser.retry(), Some(Duration::from_millis(1500)));
        assert_eq!(events[1].id.as_deref(), Some("7"));
        parser.push(b"data: half");
        parser.reset_connection();
        assert_eq!(parser.push(b"\n\n"), []);
    }
}
