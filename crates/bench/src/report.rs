//! What a scenario measured: named rows of figures, each figure the median over the runs with
//! every run's value kept, printed as a table and written as JSON.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::stats::median;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The command line that produced it.
    pub command: String,
    /// Settings the figures depend on (job counts, connections, backend...).
    pub settings: Value,
    pub rows: Vec<Row>,
    /// Notes printed under the table (what a figure means, what was observed).
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub metric: String,
    pub unit: String,
    pub median: f64,
    pub runs: Vec<f64>,
}

impl Report {
    pub fn new(scenario: &str, settings: Value) -> Self {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        Report { scenario: scenario.to_owned(), command, settings, rows: Vec::new(), notes: Vec::new() }
    }

    /// Adds one value of `metric` for row `name` (a run's measurement); repeated calls add runs.
    pub fn add(&mut self, name: &str, metric: &str, unit: &str, value: f64) {
        let row = match self.rows.iter().position(|r| r.name == name) {
            Some(index) => &mut self.rows[index],
            None => {
                self.rows.push(Row { name: name.to_owned(), figures: Vec::new() });
                self.rows.last_mut().expect("just pushed")
            }
        };
        match row.figures.iter_mut().find(|f| f.metric == metric) {
            Some(figure) => {
                figure.runs.push(value);
                figure.median = median(&figure.runs);
            }
            None => row.figures.push(Figure {
                metric: metric.to_owned(),
                unit: unit.to_owned(),
                median: value,
                runs: vec![value],
            }),
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The median of `metric` in row `name`, if measured.
    pub fn median_of(&self, name: &str, metric: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name)?.figures.iter().find(|f| f.metric == metric).map(|f| f.median)
    }

    /// The table: one line per row and metric, the median first, then each run.
    pub fn print(&self) {
        println!("\n== {} ==  ({})", self.scenario, self.command);
        println!("settings: {}", self.settings);
        println!("{:<34} {:<22} {:>14}  runs", "row", "metric", "median");
        for row in &self.rows {
            for figure in &row.figures {
                let runs: Vec<String> = figure.runs.iter().map(|v| format_value(*v)).collect();
                println!(
                    "{:<34} {:<22} {:>14}  [{}]",
                    row.name,
                    format!("{} ({})", figure.metric, figure.unit),
                    format_value(figure.median),
                    runs.join(", ")
                );
            }
        }
        for note in &self.notes {
            println!("note: {note}");
        }
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        println!("wrote {}", path.display());
        Ok(())
    }
}

fn format_value(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}
