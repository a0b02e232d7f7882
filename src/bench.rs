//! `geokeeper bench`: a load generator for any ZooKeeper-compatible endpoint, and the
//! side-by-side comparison with Apache ZooKeeper 3.8 that the project quotes its
//! performance from (DESIGN.md, principle 7: measured, not assumed).
//!
//! * `geokeeper bench --hosts H` — a closed loop of N sessions with P requests in flight
//!   each, over an op mix, reporting throughput and p50/p99/p99.9 latency per op as a
//!   table and as one JSON line;
//! * `bench populate` — create N znodes; `bench fanout` — W watcher sessions, the time from
//!   one setData to all W events; `bench restart` — start a server on a data directory
//!   and time it to serving;
//! * `bench compare` — the same workloads against Apache ZooKeeper 3.8 and geokeeper,
//!   alternating A B A B, as ratios with the raw numbers ([`compare`]).
//!
//! The client side is [`client`]: a lean pipelined client on geokeeper's own records, so
//! the generator costs little next to the servers sharing its machine.

mod client;
mod compare;
mod idle;
mod load;
mod report;
pub(crate) mod sys;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command as ProcessCommand, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

pub use compare::CompareArgs;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: Option<BenchCmd>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Creates N znodes of a given size (pipelined, over many sessions).
    Populate(PopulateArgs),
    /// W watcher sessions watch one znode; times one setData to all W events, per round.
    Fanout(FanoutArgs),
    /// Opens N sessions that stay idle (pinging as clients do) and reports the server's
    /// resident memory per connection (needs --server-pid).
    Idle(IdleArgs),
    /// Starts a server (the command after `--`) and times it from spawn to serving a read
    /// of --probe, then stops it with SIGTERM; repeated --rounds times.
    Restart(RestartArgs),
    /// Runs the workloads against Apache ZooKeeper 3.8 and geokeeper, A B A B, and prints
    /// each figure as a ratio geokeeper / ZooKeeper with the raw numbers.
    Compare(CompareArgs),
}

/// Where and how the generator connects.
#[derive(Args, Debug, Clone)]
struct ClientArgs {
    /// Connect string: host:port[,host:port…] (port 2181 if omitted).
    #[arg(long, default_value = "127.0.0.1:2181")]
    hosts: String,
    /// The session timeout asked for.
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: i32,
    /// Generator threads (1: a single-threaded runtime, the leanest; the generator shares
    /// the machine with the server it measures).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// The server's pid, to report its CPU seconds per 1,000 operations
    /// (/proc/<pid>/stat utime + stime).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The closed loop.
#[derive(Args, Debug, Clone)]
struct LoadArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Sessions (one connection each).
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Op mix, as weights: get, set, exists, children, create-sequential-ephemeral, multi
    /// (check + set on one key).
    #[arg(long, default_value = "get=90,set=10")]
    mix: String,
    /// Value size in bytes (set, create; the keys are created with it).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Keys: znodes {prefix}/k000000… that get/set/exists/children/multi pick uniformly.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Time before measuring (JIT, caches, connection set-up), e.g. 3s, 500ms, 1m.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// The measured time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Where the keys live.
    #[arg(long, default_value = "/bench")]
    prefix: String,
    /// Do not create the keys first (they exist already).
    #[arg(long)]
    no_prepare: bool,
}

#[derive(Args, Debug, Clone)]
struct PopulateArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// How many znodes.
    #[arg(long)]
    count: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// The znodes go under this parent…
    #[arg(long, default_value = "/bench-pop")]
    parent: String,
    /// …in directories of this many (0: all directly under the parent).
    #[arg(long, default_value_t = 1000)]
    per_dir: usize,
}

#[derive(Args, Debug, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Watcher sessions.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// At most this many measured rounds.
    #[arg(long, default_value_t = 1000)]
    rounds: usize,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// The watched znode.
    #[arg(long, default_value = "/bench-fanout")]
    path: String,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Idle sessions (one connection each).
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Sessions opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

#[derive(Args, Debug, Clone)]
struct RestartArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A znode the server must serve (e.g. the last one `bench populate` created).
    #[arg(long, default_value = "/")]
    probe: String,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Give up on a start after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// The server command line, e.g. `-- geokeeper serve --config zoo.cfg`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// `10s`, `500ms`, `2m`, `1h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Progress on a terminal; nothing when stderr is not one.
pub struct Progress {
    on: bool,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
        }
    }

    /// A bar (hidden off a terminal) with an indicatif template.
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        if !self.on {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let b = ProgressBar::new(len).with_style(style);
        b.enable_steady_tick(Duration::from_millis(120));
        b
    }

    /// A status line (on a terminal only).
    pub fn note(&self, msg: &str) {
        if self.on {
            eprintln!("{msg}");
        }
    }
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

fn hosts(c: &ClientArgs) -> Result<Vec<SocketAddr>, String> {
    load::parse_hosts(&c.hosts)
}

/// Runs `geokeeper bench …`.
pub fn main(args: BenchArgs) -> ExitCode {
    sys::raise_nofile_limit();
    let progress = Progress::new();
    let threads = match &args.cmd {
        None => args.load.client.client_threads,
        Some(BenchCmd::Populate(a)) => a.client.client_threads,
        Some(BenchCmd::Fanout(a)) => a.client.client_threads,
        Some(BenchCmd::Restart(a)) => a.client.client_threads,
        Some(BenchCmd::Idle(a)) => a.client.client_threads,
        Some(BenchCmd::Compare(a)) => a.client_threads,
    };
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r: Result<(), String> = rt.block_on(async {
        match args.cmd {
            None => run_load_cmd(&args.load, &progress).await,
            Some(BenchCmd::Populate(a)) => run_populate_cmd(&a, &progress).await,
            Some(BenchCmd::Fanout(a)) => run_fanout_cmd(&a, &progress).await,
            Some(BenchCmd::Restart(a)) => run_restart_cmd(&a).await,
            Some(BenchCmd::Idle(a)) => run_idle_cmd(&a, &progress).await,
            Some(BenchCmd::Compare(a)) => compare::run(&a, &progress).await,
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_load_cmd(a: &LoadArgs, progress: &Progress) -> Result<(), String> {
    let spec = load::LoadSpec {
        hosts: hosts(&a.client)?,
        sessions: a.sessions.max(1),
        in_flight: a.in_flight.max(1),
        mix: a.mix.parse()?,
        value_size: a.value_size,
        keys: a.keys.max(1),
        warmup: a.warmup,
        duration: a.duration,
        session_timeout_ms: a.client.session_timeout_ms,
        prefix: a.prefix.trim_end_matches('/').to_string(),
        server_pid: a.client.server_pid,
    };
    if !a.no_prepare {
        load::prepare(&spec)
            .await
            .map_err(|e| format!("preparing the keys: {e}"))?;
    }
    let r = load::run_load(&spec, progress)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", r.table());
    println!("{}", r.json());
    Ok(())
}

async fn run_populate_cmd(a: &PopulateArgs, progress: &Progress) -> Result<(), String> {
    let spec = load::PopulateSpec {
        hosts: hosts(&a.client)?,
        count: a.count,
        value_size: a.value_size,
        sessions: a.sessions.max(1),
        in_flight: a.in_flight.max(1),
        parent: a.parent.trim_end_matches('/').to_string(),
        per_dir: a.per_dir,
        session_timeout_ms: a.client.session_timeout_ms,
        server_pid: a.client.server_pid,
    };
    let r = load::populate(&spec, progress)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", r.table());
    println!("last znode: {}", spec.last_leaf());
    println!("{}", r.json());
    Ok(())
}

async fn run_fanout_cmd(a: &FanoutArgs, progress: &Progress) -> Result<(), String> {
    let need = a.watchers as u64 + 64;
    if sys::nofile_limit() < need {
        return Err(format!(
            "{} watcher sessions need {need} open files; the limit is {} (ulimit -n)",
            a.watchers,
            sys::nofile_limit()
        ));
    }
    let spec = load::FanoutSpec {
        hosts: hosts(&a.client)?,
        watchers: a.watchers.max(1),
        max_rounds: a.rounds.max(1),
        warmup: a.warmup,
        duration: a.duration,
        value_size: a.value_size,
        path: a.path.clone(),
        session_timeout_ms: a.client.session_timeout_ms,
        server_pid: a.client.server_pid,
    };
    let r = load::fanout(&spec, progress)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", r.table());
    println!("{}", r.json());
    Ok(())
}

async fn run_idle_cmd(a: &IdleArgs, progress: &Progress) -> Result<(), String> {
    let addr = *hosts(&a.client)?.first().ok_or("no host")?;
    let spec = idle::IdleSpec {
        addr,
        sessions: a.sessions.max(1),
        session_timeout_ms: a.client.session_timeout_ms,
        server_pid: a
            .client
            .server_pid
            .ok_or("bench idle measures the server: give --server-pid")?,
        concurrency: a.concurrency,
    };
    let r = idle::run(&spec, progress).await?;
    print!("{}", r.table());
    println!("{}", r.json());
    Ok(())
}

async fn run_restart_cmd(a: &RestartArgs) -> Result<(), String> {
    let addr = *hosts(&a.client)?.first().ok_or("no host")?;
    let (prog, rest) = a
        .command
        .split_first()
        .ok_or("no server command after --")?;
    let mut times = Vec::new();
    for round in 0..a.rounds.max(1) {
        let since = Instant::now();
        let mut child = ProcessCommand::new(prog)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {prog}: {e}"))?;
        let pid = child.id();
        let r = load::wait_serving(addr, &a.probe, since, a.timeout, || {
            matches!(child.try_wait(), Ok(None))
        })
        .await;
        compare::stop_child(&mut child, pid).await;
        let took = r.map_err(|e| format!("round {}: {e}", round + 1))?;
        println!(
            "round {}: serving after {:.3} s",
            round + 1,
            took.as_secs_f64()
        );
        times.push(took.as_secs_f64());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut j = report::Json::object();
    j.str("workload", "restart").str("probe", &a.probe);
    let raw: Vec<String> = times.iter().map(|t| report::json_num(*t)).collect();
    j.raw("seconds", &format!("[{}]", raw.join(",")));
    println!("{}", j.finish());
    Ok(())
}

/// The geokeeper binary to start in comparisons: this one.
pub fn own_binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("geokeeper"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
