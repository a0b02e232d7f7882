//! ZooKeeper's `RateLogger`: a warning that may repeat many times a second (a connection
//! refused over `maxClientCnxns`, a write over quota) is logged once as
//! `Message:<text> Value:null`; repeats of the same text are counted and written as
//! `[N times] Message: <text>` when a different text comes, when the repeat arrives 100 ms
//! or more after the first, or on [`RateLogger::flush`]. Operators grep for these exact
//! texts, so they are kept byte for byte.
//!
//! It reads no clock: callers pass the time in milliseconds.

use tracing::warn;

/// ZooKeeper's default interval between two lines for the same text.
const INTERVAL_MS: u64 = 100;

#[derive(Debug, Clone)]
pub struct RateLogger {
    interval_ms: u64,
    msg: Option<String>,
    since_ms: u64,
    count: u32,
}

impl Default for RateLogger {
    fn default() -> Self {
        RateLogger::new(INTERVAL_MS)
    }
}

impl RateLogger {
    pub fn new(interval_ms: u64) -> Self {
        RateLogger {
            interval_ms,
            msg: None,
            since_ms: 0,
            count: 0,
        }
    }

    /// Logs `msg` as a warning, or counts it if it repeats the last one.
    pub fn log(&mut self, now_ms: u64, msg: String) {
        for line in self.lines(now_ms, msg) {
            warn!("{line}");
        }
    }

    /// Writes the count of repeats not logged yet, if any.
    pub fn flush(&mut self) {
        if let Some(line) = self.take_pending() {
            warn!("{line}");
        }
    }

    /// What [`RateLogger::log`] writes for `msg` at `now_ms`.
    pub fn lines(&mut self, now_ms: u64, msg: String) -> Vec<String> {
        let mut out = Vec::new();
        if self.msg.as_deref() == Some(msg.as_str()) {
            self.count += 1;
            if now_ms.saturating_sub(self.since_ms) >= self.interval_ms {
                out.extend(self.take_pending());
                self.msg = Some(msg);
                self.since_ms = now_ms;
            }
        } else {
            out.extend(self.take_pending());
            out.push(format!("Message:{msg} Value:null"));
            self.msg = Some(msg);
            self.since_ms = now_ms;
        }
        out
    }

    fn take_pending(&mut self) -> Option<String> {
        let msg = self.msg.take()?;
        let count = std::mem::take(&mut self.count);
        match count {
            0 => None,
            1 => Some(format!("Message: {msg}")),
            n => Some(format!("[{n} times] Message: {msg}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence captured from ZooKeeper 3.8.0 (ops-security note §5.4): a refused
    /// create logs once, its retry 100 ms later writes the flush line.
    #[test]
    fn repeats_are_counted_and_flushed_like_zookeeper() {
        let mut r = RateLogger::default();
        let h = || "Quota exceeded: /h [current count=3, hardCountLimit=2]".to_string();
        assert_eq!(
            r.lines(0, h()),
            vec!["Message:Quota exceeded: /h [current count=3, hardCountLimit=2] Value:null"]
        );
        assert!(r.lines(10, h()).is_empty());
        assert!(r.lines(20, h()).is_empty());
        assert_eq!(
            r.lines(150, h()),
            vec!["[3 times] Message: Quota exceeded: /h [current count=3, hardCountLimit=2]"]
        );
        // A different text flushes nothing more (the count restarted) and logs at once.
        assert_eq!(
            r.lines(160, "other".into()),
            vec!["Message:other Value:null"]
        );
        assert_eq!(r.lines(170, "other".into()), Vec::<String>::new());
        assert_eq!(
            r.lines(180, "third".into()),
            vec!["Message: other", "Message:third Value:null"]
        );
    }
}
