//! What the benchmark reads from Linux about the processes it measures: CPU seconds from
//! `/proc/<pid>/stat` (utime + stime, in clock ticks), resident memory from
//! `/proc/<pid>/status`, and the open-file limit a thousand watcher sessions need.

use std::fs;

/// CPU seconds (user + system) the process has used so far; `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(u, s)| u + s)
}

/// User and system CPU seconds of a process (utime, stime of `/proc/<pid>/stat`).
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields
    // after the last ')'. There, field 3 (state) is index 0, so utime (14) is 11 and
    // stime (15) is 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let t = clock_ticks();
    Some((utime / t, stime / t))
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

/// User-space CPU seconds of the whole machine (user + nice over all cores, from the
/// `cpu` line of /proc/stat) and seconds stolen by the hypervisor.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let user = f.first()? + f.get(1)?;
    let steal = f.get(7).copied().unwrap_or(0.0);
    let t = clock_ticks();
    Some((user / t, steal / t))
}

/// CPU seconds so far: the server (if known), this process, and the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub server: Option<(f64, f64)>,
    pub me: Option<(f64, f64)>,
    pub machine: Option<(f64, f64)>,
}

impl CpuSample {
    pub fn take(server: Option<u32>) -> CpuSample {
        CpuSample {
            server: server.and_then(cpu_split),
            me: cpu_split(std::process::id()),
            machine: machine_cpu_seconds(),
        }
    }
}

/// What was used between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server_s: Option<f64>,
    pub client_s: Option<f64>,
    /// User-space CPU seconds of every other process on the machine: noise in the
    /// measurement when not near zero. (Kernel time is left out: the disk and network
    /// work the two processes cause runs partly in kernel threads and softirqs.)
    pub others_s: Option<f64>,
    pub steal_s: Option<f64>,
}

impl CpuUse {
    pub fn between(a: &CpuSample, b: &CpuSample) -> CpuUse {
        let d = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
        let total = |p: Option<(f64, f64)>| p.map(|(u, s)| u + s);
        let user = |p: Option<(f64, f64)>| p.map(|(u, _)| u);
        let users = d(a.machine.map(|m| m.0), b.machine.map(|m| m.0));
        let ours = d(user(a.server), user(b.server)).unwrap_or(0.0)
            + d(user(a.me), user(b.me)).unwrap_or(0.0);
        CpuUse {
            server_s: d(total(a.server), total(b.server)),
            client_s: d(total(a.me), total(b.me)),
            others_s: users.map(|u| (u - ours).max(0.0)),
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
