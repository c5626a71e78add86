//! A service under measurement, run as its own process so its CPU time and memory are its own:
//! read from `/proc/<pid>/stat` (user and system time) and `/proc/<pid>/status` (`VmHWM`, the
//! peak resident set).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

#[derive(Debug)]
pub struct Service {
    pub name: String,
    child: Child,
    ticks_per_s: f64,
}

impl Service {
    /// Starts `bluelight <args>` (this very binary), logging to `<logs>/<name>.log`.
    pub fn start(
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(logs)?;
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        // BLUELIGHT_BENCH_WRAP runs each service under a profiler, e.g.
        // `valgrind --tool=callgrind --callgrind-out-file=target/cg.%p`.
        let wrap = std::env::var("BLUELIGHT_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Service {
            name: name.to_owned(),
            child,
            ticks_per_s: clock_ticks(),
        })
    }

    /// CPU seconds (user and system) used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .with_context(|| format!("{} has exited", self.name))?;
        // The command name (field 2) may hold spaces; fields are counted after its ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
        Ok((field(11) + field(12)) / self.ticks_per_s)
    }

    /// Peak resident set size so far, in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmHWM in /proc status")?;
        Ok(kib / 1024.0)
    }

    /// Fails when the service has exited (it should run until stopped).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("{} exited with {status}; see its log", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
