//! The numbers the server keeps for the four-letter words (`srvr`, `stat`, `cons`, `mntr`):
//! ZooKeeper's `AvgMinMaxCounter` and `AvgMinMaxPercentileCounter` summaries, and the
//! per-connection statistics of `ServerCnxn`.
//!
//! Everything here is plain data updated in place by the core task, a handful of integer
//! operations per request: no locks, no atomics, no allocation after start.

/// `AvgMinMaxCounter`: count, sum, min and max of samples; min and max read 0 while empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    count: u64,
    sum: i64,
    min: i64,
    max: i64,
}

impl Summary {
    pub fn add(&mut self, v: i64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> i64 {
        self.sum
    }

    pub fn min(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn max(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.max
        }
    }

    /// `getAvg`: sum / count as a double, rounded to 4 decimals HALF_UP; 0 while empty.
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        round4_half_up(self.sum as f64 / self.count as f64)
    }

    pub fn reset(&mut self) {
        *self = Summary::default();
    }
}

/// `new BigDecimal(x).setScale(4, HALF_UP).doubleValue()`: rounds the exact binary value
/// of `x` (not its shortest decimal form), so a double just below a half rounds down as
/// in Java.
pub fn round4_half_up(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let neg = x < 0.0;
    let bits = x.abs().to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // x = mant * 2^e exactly.
    let (mant, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    if e >= 0 {
        return x;
    }
    let scaled = mant as u128 * 10_000;
    let shift = (-e) as u32;
    let q = if shift >= 128 {
        0
    } else {
        let q = scaled >> shift;
        let rem = scaled - (q << shift);
        // HALF_UP rounds a remainder of exactly one half away from zero.
        if rem >= (1u128 << (shift - 1)) {
            q + 1
        } else {
            q
        }
    };
    let r = q as f64 / 10_000.0;
    if neg {
        -r
    } else {
        r
    }
}

/// Java's `Double.toString`, for the averages and ratios `srvr` and `mntr` print: at least
/// one digit after the point (`0.0`, `12.4`), scientific form outside [10⁻³, 10⁷)
/// (`1.0E-4`).
pub fn java_double(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = x.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{x:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        if m.contains('.') {
            format!("{m}E{e}")
        } else {
            format!("{m}.0E{e}")
        }
    }
}

/// `AvgMinMaxPercentileCounter`: a [`Summary`] plus Dropwizard's uniform reservoir of
/// 4096 samples, from which p50/p95/p99/p999 are read.
#[derive(Debug, Clone)]
pub struct PercentileSummary {
    summary: Summary,
    samples: Vec<i64>,
    seen: u64,
    rng: u64,
}

const RESERVOIR_SIZE: usize = 4096;

impl Default for PercentileSummary {
    fn default() -> Self {
        PercentileSummary {
            summary: Summary::default(),
            samples: Vec::new(),
            seen: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl PercentileSummary {
    pub fn add(&mut self, v: i64) {
        self.summary.add(v);
        self.seen += 1;
        if self.samples.len() < RESERVOIR_SIZE {
            self.samples.push(v);
        } else {
            // Vitter's algorithm R, as `ResettableUniformReservoir.update`.
            let r = self.next_random() % self.seen;
            if (r as usize) < RESERVOIR_SIZE {
                self.samples[r as usize] = v;
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: uniform enough for sampling, and cheap.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// p50, p95, p99 and p999 as `Math.round` of Dropwizard's `UniformSnapshot.getValue`:
    /// position q·(n+1) over the sorted samples, interpolated linearly.
    pub fn percentiles(&self) -> [i64; 4] {
        let mut v = self.samples.clone();
        v.sort_unstable();
        [0.5, 0.95, 0.99, 0.999].map(|q| quantile(&v, q))
    }

    pub fn reset(&mut self) {
        self.summary.reset();
        self.samples.clear();
        self.seen = 0;
    }
}

fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let pos = q * (sorted.len() + 1) as f64;
    let index = pos as usize;
    let value = if index < 1 {
        sorted[0] as f64
    } else if index >= sorted.len() {
        sorted[sorted.len() - 1] as f64
    } else {
        let lower = sorted[index - 1] as f64;
        let upper = sorted[index] as f64;
        lower + (pos - pos.floor()) * (upper - lower)
    };
    // Math.round: floor(x + 0.5).
    (value + 0.5).floor() as i64
}

/// `BufferStats` of reply sizes (header and body, without the length prefix): -1 until
/// the first reply (`last_client_response_size`, `min_…`, `max_…` in `mntr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSizes {
    pub last: i64,
    pub min: i64,
    pub max: i64,
}

impl Default for ResponseSizes {
    fn default() -> Self {
        ResponseSizes {
            last: -1,
            min: -1,
            max: -1,
        }
    }
}

impl ResponseSizes {
    pub fn record(&mut self, size: i64) {
        self.last = size;
        if self.min == -1 || size < self.min {
            self.min = size;
        }
        self.max = self.max.max(size);
    }
}

/// One connection's numbers for `stat` and `cons` (`ServerCnxn`'s fields), reset by `crst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnxnStats {
    /// Frames received (the ConnectRequest included).
    pub recved: u64,
    /// Frames sent (the ConnectResponse, replies and events).
    pub sent: u64,
    /// Requests with xid > 0 not yet answered (`getOutstandingRequests`).
    pub queued: u64,
    /// The last answered operation (`lop`): ZooKeeper's four-letter names, `NA` after a reset.
    pub last_op: &'static str,
    /// The last non-negative xid answered; -1 after a reset (then `cons` leaves it out).
    pub last_cxid: i64,
    /// The zxid of the last reply; -1 after a reset.
    pub last_zxid: i64,
    /// Monotonic ms of the last reply; 0 after a reset.
    pub last_response_ms: u64,
    /// Latency of the last reply, ms.
    pub last_latency: i64,
    /// Monotonic ms of the last frame in or out (the NIO connection expiry queue's touch);
    /// kept by a reset.
    pub touched_ms: u64,
    latency_min: i64,
    latency_max: i64,
    latency_count: u64,
    latency_total: i64,
}

impl Default for CnxnStats {
    fn default() -> Self {
        CnxnStats {
            recved: 0,
            sent: 0,
            queued: 0,
            last_op: "NA",
            last_cxid: -1,
            last_zxid: -1,
            last_response_ms: 0,
            last_latency: 0,
            touched_ms: 0,
            latency_min: i64::MAX,
            latency_max: 0,
            latency_count: 0,
            latency_total: 0,
        }
    }
}

impl CnxnStats {
    /// A connection whose ConnectRequest just arrived: one frame received.
    pub fn connected(now_ms: u64) -> CnxnStats {
        CnxnStats {
            recved: 1,
            touched_ms: now_ms,
            ..CnxnStats::default()
        }
    }

    /// `updateStatsForResponse`: a request was answered.
    pub fn answered(&mut self, cxid: i32, zxid: i64, op: &'static str, start_ms: u64, now_ms: u64) {
        if cxid >= 0 {
            self.last_cxid = cxid as i64;
        }
        self.last_zxid = zxid;
        self.last_op = op;
        self.last_response_ms = now_ms;
        let elapsed = now_ms.saturating_sub(start_ms) as i64;
        self.last_latency = elapsed;
        self.latency_min = self.latency_min.min(elapsed);
        self.latency_max = self.latency_max.max(elapsed);
        self.latency_count += 1;
        self.latency_total += elapsed;
    }

    pub fn min_latency(&self) -> i64 {
        if self.latency_min == i64::MAX {
            0
        } else {
            self.latency_min
        }
    }

    /// Integer division, as `ServerCnxn.getAvgLatency`.
    pub fn avg_latency(&self) -> i64 {
        if self.latency_count == 0 {
            0
        } else {
            self.latency_total / self.latency_count as i64
        }
    }

    pub fn max_latency(&self) -> i64 {
        self.latency_max
    }

    /// `resetStats` (`crst`): everything but the outstanding count.
    pub fn reset(&mut self) {
        *self = CnxnStats {
            queued: self.queued,
            touched_ms: self.touched_ms,
            ..CnxnStats::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_round_and_print_as_java_does() {
        let mut s = Summary::default();
        assert_eq!(java_double(s.avg()), "0.0");
        for v in [0, 0, 33, 51] {
            s.add(v);
        }
        assert_eq!(java_double(s.avg()), "21.0");
        let mut s = Summary::default();
        for _ in 0..29 {
            s.add(0);
        }
        // 84 / 29 = 2.89655… → 2.8966 (the ops-security sample).
        let mut s2 = Summary::default();
        for i in 0..29 {
            s2.add(if i < 28 { 2 } else { 28 });
        }
        assert_eq!(java_double(s2.avg()), "2.8966");
        assert_eq!((s.min(), s.max(), s.count(), s.sum()), (0, 0, 29, 0));
        assert_eq!(java_double(round4_half_up(12.4)), "12.4");
        assert_eq!(java_double(round4_half_up(0.00015)), "1.0E-4");
        assert_eq!(java_double(round4_half_up(0.00025)), "3.0E-4");
        assert_eq!(java_double(1.0e7), "1.0E7");
        assert_eq!(java_double(0.001), "0.001");
    }

    #[test]
    fn percentiles_interpolate_like_dropwizard() {
        let mut p = PercentileSummary::default();
        assert_eq!(p.percentiles(), [0, 0, 0, 0]);
        for v in [2, 4, 7, 21, 33] {
            p.add(v);
        }
        // n = 5: p50 at position 3 → 7; p95 at 5.7 → the largest.
        assert_eq!(p.percentiles(), [7, 33, 33, 33]);
        for v in 0..10_000 {
            p.add(v % 100);
        }
        assert_eq!(p.summary().count(), 10_005);
        let [p50, p95, ..] = p.percentiles();
        assert!((40..60).contains(&p50), "{p50}");
        assert!((90..100).contains(&p95), "{p95}");
    }

    #[test]
    fn connection_stats_reset_to_zookeepers_initial_values() {
        let mut c = CnxnStats {
            recved: 3,
            queued: 1,
            ..CnxnStats::default()
        };
        c.answered(-2, 5, "PING", 10, 12);
        assert_eq!(c.last_cxid, -1, "special xids are not recorded");
        c.answered(4, 6, "GETD", 10, 11);
        assert_eq!(
            (c.min_latency(), c.avg_latency(), c.max_latency()),
            (1, 1, 2)
        );
        c.reset();
        assert_eq!(
            c,
            CnxnStats {
                queued: 1,
                ..CnxnStats::default()
            }
        );
        assert_eq!(c.min_latency(), 0);
    }
}
