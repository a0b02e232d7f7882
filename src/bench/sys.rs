//! What the benchmark reads from Linux about the processes it measures: CPU seconds from
//! `/proc/<pid>/stat` (utime + stime, in clock ticks), resident memory from
//! `/proc/<pid>/status`, and the open-file limit a thousand watcher sessions need.

use std::fs;

/// CPU seconds (user + system) the process has used so far; `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields
    // after the last ')'. There, field 3 (state) is index 0, so utime (14) is 11 and
    // stime (15) is 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds the whole machine has been busy (user, nice, system, irq, softirq, over
/// all cores) and stolen by the hypervisor, from the `cpu` line of /proc/stat.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?;
    let steal = f.get(7).copied().unwrap_or(0.0);
    let t = clock_ticks();
    Some((busy / t, steal / t))
}

/// CPU seconds over a window: this process, the server (if known), and the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub server: Option<f64>,
    pub me: Option<f64>,
    pub machine: Option<(f64, f64)>,
}

impl CpuSample {
    pub fn take(server: Option<u32>) -> CpuSample {
        CpuSample {
            server: server.and_then(cpu_seconds),
            me: cpu_seconds(std::process::id()),
            machine: machine_cpu_seconds(),
        }
    }
}

/// What was used between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server_s: Option<f64>,
    pub client_s: Option<f64>,
    /// Busy CPU seconds of everything else on the machine (other processes, the kernel
    /// on their behalf): noise in the measurement when it is not near zero.
    pub others_s: Option<f64>,
    pub steal_s: Option<f64>,
}

impl CpuUse {
    pub fn between(a: &CpuSample, b: &CpuSample) -> CpuUse {
        let d = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
        let server_s = d(a.server, b.server);
        let client_s = d(a.me, b.me);
        let busy = d(a.machine.map(|m| m.0), b.machine.map(|m| m.0));
        let others_s =
            busy.map(|t| (t - server_s.unwrap_or(0.0) - client_s.unwrap_or(0.0)).max(0.0));
        CpuUse {
            server_s,
            client_s,
            others_s,
            steal_s: d(a.machine.map(|m| m.1), b.machine.map(|m| m.1)),
        }
    }
}

/// Resident set size in bytes (`VmRSS`); `None` if the process is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raises the soft open-file limit to the hard one (servers started from here inherit it).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The soft open-file limit.
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}

/// Sends SIGTERM (a clean stop for both servers).
pub fn sigterm(pid: u32) {
    // SAFETY: kill(2) on a pid this process started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert!(rss_bytes(me).unwrap() > 0);
        let (busy, steal) = machine_cpu_seconds().unwrap();
        assert!(busy > 0.0 && steal >= 0.0);
    }
}
