//! What a benchmark run measured, and how it is shown: a table for people and one JSON
//! line for scripts. Latencies are kept in HdrHistograms of microseconds (1 µs to 60 s,
//! three significant figures), merged across sessions.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::sys::CpuUse;

/// The highest latency a histogram tracks; anything slower is clamped to it.
const MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds.
pub fn new_hist() -> Histogram<u64> {
    // Bounds are constants within what HdrHistogram accepts.
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// Records `d` in `h`, clamped to the tracked range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_US);
    h.saturating_record(us);
}

/// One operation kind's figures.
#[derive(Clone)]
pub struct OpStats {
    pub name: &'static str,
    /// Replies received inside the measured window.
    pub count: u64,
    /// Of those, replies with a non-zero error code.
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl OpStats {
    pub fn new(name: &'static str) -> OpStats {
        OpStats {
            name,
            count: 0,
            errors: 0,
            hist: new_hist(),
        }
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.count += other.count;
        self.errors += other.errors;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// A percentile (0–100) in microseconds; 0 when nothing was recorded.
    pub fn pct_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q / 100.0)
        }
    }
}

/// Everything one closed-loop (or populate) run reports.
#[derive(Clone)]
pub struct RunResult {
    /// What ran: `get=90,set=10`, `populate`, …
    pub workload: String,
    pub hosts: String,
    pub sessions: usize,
    pub in_flight: usize,
    pub value_size: usize,
    pub keys: usize,
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    pub ops: Vec<OpStats>,
    /// CPU seconds over the window: the server's (utime + stime, when its pid is known),
    /// this process's (the generator's own cost) and everything else's on the machine.
    pub cpu: CpuUse,
    /// Sessions that failed (connection lost, timeout) and why, first few.
    pub failures: Vec<String>,
}

impl RunResult {
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().map(|o| o.count).sum()
    }

    pub fn ops_per_s(&self) -> f64 {
        per_s(self.total_ops(), self.window)
    }

    /// All operations merged (for a single latency figure of a mix).
    pub fn all(&self) -> OpStats {
        let mut a = OpStats::new("all");
        for o in &self.ops {
            a.merge(o);
        }
        a
    }

    pub fn server_cpu_per_1k(&self) -> Option<f64> {
        per_1k(self.cpu.server_s, self.total_ops())
    }

    pub fn client_cpu_per_1k(&self) -> Option<f64> {
        per_1k(self.cpu.client_s, self.total_ops())
    }

    /// Cores the rest of the machine kept busy on average over the window.
    pub fn others_cores(&self) -> Option<f64> {
        cores(self.cpu.others_s, self.window)
    }

    pub fn steal_cores(&self) -> Option<f64> {
        cores(self.cpu.steal_s, self.window)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "workload {}  hosts {}  sessions {}  in flight {}  value {} B  keys {}  warm-up {:.1} s  measured {:.1} s",
            self.workload,
            self.hosts,
            self.sessions,
            self.in_flight,
            self.value_size,
            self.keys,
            self.warmup.as_secs_f64(),
            self.window.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "{:<16} {:>10} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "op", "count", "errors", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        let mut rows: Vec<OpStats> = self.ops.clone();
        if rows.len() > 1 {
            rows.push(self.all());
        }
        for o in &rows {
            let _ = writeln!(
                s,
                "{:<16} {:>10} {:>8} {:>12.0} {:>10} {:>10} {:>10} {:>10}",
                o.name,
                o.count,
                o.errors,
                per_s(o.count, self.window),
                o.pct_us(50.0),
                o.pct_us(99.0),
                o.pct_us(99.9),
                o.hist.max()
            );
        }
        if let Some(c) = self.server_cpu_per_1k() {
            let _ = writeln!(s, "server CPU: {c:.4} s per 1,000 ops");
        }
        if let Some(c) = self.client_cpu_per_1k() {
            let _ = writeln!(s, "generator CPU: {c:.4} s per 1,000 ops");
        }
        if let Some(c) = self.others_cores() {
            let _ = writeln!(
                s,
                "other processes: {c:.2} cores of user CPU, {:.2} stolen (noise when not near 0)",
                self.steal_cores().unwrap_or(0.0)
            );
        }
        for f in &self.failures {
            let _ = writeln!(s, "failure: {f}");
        }
        s
    }

    /// The same figures as one JSON object.
    pub fn json(&self) -> String {
        let mut j = Json::object();
        j.str("workload", &self.workload)
            .str("hosts", &self.hosts)
            .num("sessions", self.sessions as f64)
            .num("in_flight", self.in_flight as f64)
            .num("value_size", self.value_size as f64)
            .num("keys", self.keys as f64)
            .num("warmup_s", self.warmup.as_secs_f64())
            .num("duration_s", self.window.as_secs_f64())
            .num("ops", self.total_ops() as f64)
            .num("ops_per_s", self.ops_per_s())
            .opt("server_cpu_s_per_1k_ops", self.server_cpu_per_1k())
            .opt("client_cpu_s_per_1k_ops", self.client_cpu_per_1k())
            .opt("other_load_cores", self.others_cores())
            .opt("steal_cores", self.steal_cores());
        let mut ops = Json::object();
        let mut rows: Vec<OpStats> = self.ops.clone();
        if rows.len() > 1 {
            rows.push(self.all());
        }
        for o in &rows {
            let mut x = Json::object();
            x.num("count", o.count as f64)
                .num("errors", o.errors as f64)
                .num("ops_per_s", per_s(o.count, self.window))
                .num("p50_us", o.pct_us(50.0) as f64)
                .num("p99_us", o.pct_us(99.0) as f64)
                .num("p999_us", o.pct_us(99.9) as f64)
                .num("max_us", o.hist.max() as f64);
            ops.raw(o.name, &x.finish());
        }
        j.raw("by_op", &ops.finish());
        let fails: Vec<String> = self.failures.iter().map(|f| json_str(f)).collect();
        j.raw("failures", &format!("[{}]", fails.join(",")));
        j.finish()
    }
}

pub fn per_s(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// CPU seconds over a window as cores kept busy.
pub fn cores(cpu_s: Option<f64>, window: Duration) -> Option<f64> {
    cpu_s
        .filter(|_| window.as_secs_f64() > 0.0)
        .map(|c| c / window.as_secs_f64())
}

fn per_1k(cpu: Option<f64>, ops: u64) -> Option<f64> {
    cpu.filter(|_| ops > 0).map(|c| c * 1000.0 / ops as f64)
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON number (non-finite values become null, which JSON has instead).
pub fn json_num(v: f64) -> String {
    if !v.is_finite() {
        "null".into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.6}")
    }
}

/// A tiny writer for one-line JSON objects: the benchmark's output needs no more.
pub struct Json {
    buf: String,
    first: bool,
}

impl Json {
    pub fn object() -> Json {
        Json {
            buf: "{".into(),
            first: true,
        }
    }

    fn key(&mut self, k: &str) -> &mut Self {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push_str(&json_str(k));
        self.buf.push(':');
        self
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(&json_str(v));
        self
    }

    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        self.buf.push_str(&json_num(v));
        self
    }

    pub fn opt(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.num(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// A value that is already JSON text.
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(v);
        self
    }

    pub fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.buf);
        s.push('}');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_json() {
        let mut o = OpStats::new("get");
        for us in 1..=1000u64 {
            record(&mut o.hist, Duration::from_micros(us));
            o.count += 1;
        }
        assert_eq!(o.pct_us(50.0), 500);
        assert!((990..=991).contains(&o.pct_us(99.0)));
        let r = RunResult {
            workload: "get=100".into(),
            hosts: "127.0.0.1:2181".into(),
            sessions: 1,
            in_flight: 1,
            value_size: 100,
            keys: 10,
            warmup: Duration::ZERO,
            window: Duration::from_secs(2),
            ops: vec![o],
            cpu: CpuUse {
                server_s: Some(0.5),
                ..CpuUse::default()
            },
            failures: vec!["a \"quoted\" reason".into()],
        };
        let j = r.json();
        assert!(j.starts_with("{\"workload\":\"get=100\""), "{j}");
        assert!(j.contains("\"ops_per_s\":500"), "{j}");
        assert!(j.contains("\"server_cpu_s_per_1k_ops\":0.5"), "{j}");
        assert!(j.contains("\"client_cpu_s_per_1k_ops\":null"), "{j}");
        assert!(j.contains("\\\"quoted\\\""), "{j}");
        assert!(!j.contains('\n'));
    }
}
