//! What a method's experiment hands back: a markdown report with tables, claims checked against
//! the paper, and figures. `cargo xtask repro` writes it to `target/repro/<method>/` (the
//! markdown as `report.md`, each figure as `<name>.svg` beside it).

pub mod plot;

use std::fmt::Write;

pub use plot::{Figure, Scale, Series, Style};

/// A markdown table built row by row. Cells are strings; format numbers before adding them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; short rows are padded with empty cells, long ones are an error in the caller
    /// (and are cut, so the table stays well formed).
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        debug_assert!(
            cells.len() <= self.headers.len(),
            "table row longer than its header"
        );
        let mut row: Vec<String> = cells
            .iter()
            .take(self.headers.len())
            .map(|c| c.as_ref().into())
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| {
            format!(
                "| {} |\n",
                cells
                    .iter()
                    .map(|c| c.replace('|', "\\|"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        };
        let mut s = line(&self.headers);
        s.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

/// Whether a claim of the paper showed up in our run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Reproduced,
    /// Seen in part, or only at some settings; the evidence says which.
    Partial,
    NotReproduced,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reproduced => "reproduced",
            Outcome::Partial => "partly reproduced",
            Outcome::NotReproduced => "not reproduced",
        }
    }
}

/// One claim of the paper, what we measured about it, and the outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub claim: String,
    pub outcome: Outcome,
    pub evidence: String,
}

/// A method's report. Build it with [`Report::new`], then add sections, tables, claims, figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Short name, also the folder name under `target/repro/` (e.g. `lion_box`).
    pub method: String,
    /// The paper: authors, title, year, and its catalog number.
    pub paper: String,
    /// Markdown body: setup, tables and discussion, in order.
    pub body: String,
    pub claims: Vec<Claim>,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn new(method: impl Into<String>, paper: impl Into<String>) -> Self {
        Report {
            method: method.into(),
            paper: paper.into(),
            body: String::new(),
            claims: Vec::new(),
            figures: Vec::new(),
        }
    }

    /// A `## title` section with its text.
    pub fn section(&mut self, title: &str, text: &str) {
        let _ = write!(self.body, "## {title}\n\n{}\n\n", text.trim_end());
    }

    /// A table, with a caption line above it.
    pub fn table(&mut self, caption: &str, table: &Table) {
        let _ = write!(self.body, "{caption}\n\n{}\n", table.to_markdown());
    }

    pub fn claim(&mut self, claim: impl Into<String>, outcome: Outcome, evidence: impl Into<String>) {
        self.claims.push(Claim {
            claim: claim.into(),
            outcome,
            evidence: evidence.into(),
        });
    }

    /// A figure, embedded in the body where it is added.
    pub fn figure(&mut self, figure: Figure) {
        let _ = write!(self.body, "![{}]({}.svg)\n\n", figure.title, figure.name);
        self.figures.push(figure);
    }

    /// Every claim reproduced (a report with no claims counts as not reproduced).
    pub fn all_reproduced(&self) -> bool {
        !self.claims.is_empty() && self.claims.iter().all(|c| c.outcome == Outcome::Reproduced)
    }

    /// The whole report as markdown: title, claims table, then the body.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("# {}: {}\n\n", self.method, self.paper);
        if !self.claims.is_empty() {
            let mut t = Table::new(&["claim", "outcome", "evidence (this run)"]);
            for c in &self.claims {
                t.row(&[c.claim.as_str(), c.outcome.as_str(), c.evidence.as_str()]);
            }
            let _ = write!(s, "## Claims\n\n{}\n", t.to_markdown());
        }
        s.push_str(&self.body);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_and_escape() {
        let mut t = Table::new(&["a", "b"]);
        t.row(&["1"]);
        t.row(&["x|y", "2"]);
        assert_eq!(t.to_markdown(), "| a | b |\n|---|---|\n| 1 |  |\n| x\\|y | 2 |\n");
    }

    #[test]
    fn report_lists_claims_first_and_links_figures() {
        let mut r = Report::new("demo", "Someone, A paper (2020) [0]");
        r.section("Setup", "text");
        r.claim("it works", Outcome::Reproduced, "0.1 < 0.2");
        r.figure(Figure::new("loss", "Loss", "step", "loss"));
        let md = r.to_markdown();
        assert!(md.starts_with("# demo: Someone"));
        assert!(md.find("## Claims").unwrap() < md.find("## Setup").unwrap());
        assert!(md.contains("![Loss](loss.svg)"));
        assert!(r.all_reproduced());
        r.claim("it is fast", Outcome::NotReproduced, "slow");
        assert!(!r.all_reproduced());
    }
}
