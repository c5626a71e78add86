//! The results: a markdown table (printed and written), `e2e.json` with flat keys, and `e2e.svg`,
//! a chart drawn as plain SVG (no plotting library to compile for two bar charts).

use std::{fmt::Write as _, path::Path};

use super::{e2e::Run, latency::Latency};

#[derive(Debug)]
pub struct Results {
    pub machine: String,
    pub date: String,
    pub events: u64,
    pub outputs_per_event: f64,
    pub agreements: usize,
    pub inmemory_events_per_s: f64,
    pub runs: Vec<Run>,
    /// Per projector mode: its latency at the fixed rate.
    pub latency: Vec<(&'static str, Latency)>,
    pub rate: f64,
}

impl Results {
    fn run(&self, name: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.name == name)
    }

    fn lat(&self, name: &str) -> Option<&Latency> {
        self.latency
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| l)
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "End-to-end, {} ({}), {} events of the simulator's mix, {} agreements, {:.2} output records per event.\n",
            self.date, self.machine, self.events, self.agreements, self.outputs_per_event
        );
        let _ = writeln!(
            s,
            "| run | events/s in | records/s out | CPU s per 1M events | peak RSS MiB | p50 ms | p99 ms | p99.9 ms |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.runs {
            let (p50, p99, p999) = self.lat(r.name).map_or(
                ("n/a".to_owned(), "n/a".to_owned(), "n/a".to_owned()),
                |l| {
                    (
                        format!("{:.1}", l.ms(0.5)),
                        format!("{:.1}", l.ms(0.99)),
                        format!("{:.1}", l.ms(0.999)),
                    )
                },
            );
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {:.1} | {:.0} | {p50} | {p99} | {p999} |",
                r.name, r.events_per_s, r.records_out_per_s, r.cpu_s_per_million, r.peak_rss_mib
            );
        }
        let _ = writeln!(
            s,
            "| in-memory step (one thread, no Kafka) | {:.0} | | | | | | |",
            self.inmemory_events_per_s
        );
        if let (Some(p), Some(e)) = (self.run("passthrough"), self.run("projector-eos")) {
            let _ = writeln!(
                s,
                "\nProjector exactly-once / passthrough: **{:.2}** (target 0.8).",
                e.events_per_s / p.events_per_s.max(1e-9)
            );
        }
        for (name, l) in &self.latency {
            let _ = writeln!(
                s,
                "Latency of {name}: {} events offered at {:.0}/s (target {:.0}/s), {} of {} disclosures seen.",
                l.sent, l.offered_per_s, self.rate, l.seen, l.expected
            );
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let eps = |n: &str| self.run(n).map(|r| r.events_per_s);
        let p99 = |n: &str| self.lat(n).map(|l| l.ms(0.99));
        serde_json::json!({
            "machine": self.machine,
            "date": self.date,
            "events": self.events,
            "agreements": self.agreements,
            "outputs_per_event": self.outputs_per_event,
            "passthrough_events_per_s": eps("passthrough"),
            "projector_eos_events_per_s": eps("projector-eos"),
            "projector_at_least_once_events_per_s": eps("projector-at-least-once"),
            "ratio_eos_to_passthrough": match (eps("projector-eos"), eps("passthrough")) {
                (Some(e), Some(p)) if p > 0.0 => Some(e / p),
                _ => None,
            },
            "cpu_s_per_million_eos": self.run("projector-eos").map(|r| r.cpu_s_per_million),
            "cpu_s_per_million_passthrough": self.run("passthrough").map(|r| r.cpu_s_per_million),
            "p50_ms_eos": self.lat("projector-eos").map(|l| l.ms(0.5)),
            "p99_ms_eos": p99("projector-eos"),
            "p999_ms_eos": self.lat("projector-eos").map(|l| l.ms(0.999)),
            "p50_ms_at_least_once": self.lat("projector-at-least-once").map(|l| l.ms(0.5)),
            "p99_ms_at_least_once": p99("projector-at-least-once"),
            "p999_ms_at_least_once": self.lat("projector-at-least-once").map(|l| l.ms(0.999)),
            "latency_offered_events_per_s": self.rate,
            "peak_rss_mb": self.run("projector-eos").map(|r| r.peak_rss_mib),
            "inmemory_events_per_s_10_agreements": self.inmemory_events_per_s,
        })
    }

    /// Two panels: throughput per run, and latency percentiles per projector mode.
    pub fn svg(&self) -> String {
        let mut s = String::new();
        let (w, h) = (900.0, 420.0);
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="24" font-size="15" font-weight="bold">bluelight end-to-end: {} events, {} agreements ({})</text>
"#,
            self.events,
            self.agreements,
            esc(&self.machine)
        );
        // Throughput panel.
        let mut bars: Vec<(String, f64)> = self
            .runs
            .iter()
            .map(|r| (r.name.to_owned(), r.events_per_s))
            .collect();
        bars.push(("in-memory step".into(), self.inmemory_events_per_s));
        panel(
            &mut s,
            20.0,
            50.0,
            400.0,
            330.0,
            "events per second",
            &bars,
            "#2b6cb0",
        );
        // Latency panel.
        let mut lat = Vec::new();
        for (name, l) in &self.latency {
            for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
                lat.push((format!("{} {label}", short(name)), l.ms(q)));
            }
        }
        panel(
            &mut s,
            470.0,
            50.0,
            400.0,
            330.0,
            &format!("publish-to-feed ms at {:.0} events/s", self.rate),
            &lat,
            "#c05621",
        );
        s.push_str("</svg>\n");
        s
    }

    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("e2e.md"), self.markdown())?;
        std::fs::write(
            out.join("e2e.json"),
            serde_json::to_string_pretty(&self.json())? + "\n",
        )?;
        std::fs::write(out.join("e2e.svg"), self.svg())?;
        Ok(())
    }
}

fn short(name: &str) -> &str {
    name.strip_prefix("projector-").unwrap_or(name)
}

#[allow(clippy::too_many_arguments)]
fn panel(
    s: &mut String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    title: &str,
    bars: &[(String, f64)],
    colour: &str,
) {
    let _ = writeln!(
        s,
        r#"<text x="{x}" y="{}" font-weight="bold">{}</text>"#,
        y + 12.0,
        esc(title)
    );
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let top = y + 30.0;
    let row = ((h - 30.0) / bars.len().max(1) as f64).min(40.0);
    let label_w = 150.0;
    for (i, (label, v)) in bars.iter().enumerate() {
        let by = top + i as f64 * row;
        let bw = (w - label_w - 70.0) * v / max;
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}">{}</text><rect x="{}" y="{by}" width="{bw:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{}">{}</text>"#,
            by + row * 0.55,
            esc(label),
            x + label_w,
            row * 0.7,
            x + label_w + bw + 4.0,
            by + row * 0.55,
            human(*v)
        );
    }
}

fn human(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
