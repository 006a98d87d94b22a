//! The suite's verdicts against the committed expectations.
//!
//! An expectation file (`xtask/autobahn/expected-server.json`,
//! `expected-client.json`) is one JSON object mapping each case id to the
//! `behavior` and `behaviorClose` the suite gave it, and nothing else, one case
//! a line in numeric order so that a diff reads well. A run is compared case by
//! case: any other verdict is a difference, better ones too, and so is a case
//! the selected patterns cover that the report lacks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// A case id such as `6.4.3`, ordered numerically (`6.4.3` before `6.10.1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId(Vec<u32>);

impl FromStr for CaseId {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let parts = text
            .split('.')
            .map(|part| {
                ensure!(
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()),
                    "{text:?} is not a case id (numbers separated by dots, such as 6.4.3)"
                );
                part.parse()
                    .with_context(|| format!("{text:?}: {part} is too large"))
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok(Self(parts))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// What the suite concluded about one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `OK`, `NON-STRICT`, `INFORMATIONAL`, `FAILED`, `UNIMPLEMENTED`, ...
    pub behavior: String,
    /// How the closing handshake went: `OK`, `INFORMATIONAL`, `FAILED`,
    /// `WRONG CODE`, `UNCLEAN`, ...
    pub behavior_close: String,
}

impl Verdict {
    /// A verdict from its two parts.
    pub fn new(behavior: &str, behavior_close: &str) -> Self {
        Self {
            behavior: behavior.to_owned(),
            behavior_close: behavior_close.to_owned(),
        }
    }

    /// Whether the suite counts the case as passed (as its own summary
    /// does): a passing behavior and a passing close behavior.
    pub fn passes(&self) -> bool {
        matches!(
            self.behavior.as_str(),
            "OK" | "NON-STRICT" | "INFORMATIONAL"
        ) && matches!(self.behavior_close.as_str(), "OK" | "INFORMATIONAL")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.behavior, self.behavior_close)
    }
}

/// The verdicts of a run or of an expectation file, by case.
pub type Verdicts = BTreeMap<CaseId, Verdict>;

/// Case patterns as the suite's spec takes them (`*`, `9.*`, `6.4.3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection(Vec<String>);

impl Selection {
    /// Every case.
    pub fn all() -> Self {
        Self(vec!["*".to_owned()])
    }

    /// Comma-separated patterns, as `--cases` takes them.
    pub fn parse(text: &str) -> Result<Self> {
        let patterns: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(str::to_owned)
            .collect();
        ensure!(!patterns.is_empty(), "no case patterns in {text:?}");
        for pattern in &patterns {
            ensure!(
                pattern
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'*'),
                "{pattern:?} is not a case pattern (digits, dots and *, e.g. 6.* or 6.4.3)"
            );
        }
        Ok(Self(patterns))
    }

    /// The patterns, for the suite's spec.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// The patterns joined with commas, as the run scripts take them.
    pub fn to_arg(&self) -> String {
        self.0.join(",")
    }

    /// Whether the suite runs `case` for these patterns. As in its
    /// `resolveCasePatternList`: a pattern without `*` names one case; with
    /// `*` (any run of characters) it is matched from the start of the id but
    /// need not reach its end.
    pub fn covers(&self, case: &CaseId) -> bool {
        let id = case.to_string();
        self.0.iter().any(|pattern| {
            if pattern.contains('*') {
                glob_prefix(pattern.as_bytes(), id.as_bytes())
            } else {
                *pattern == id
            }
        })
    }
}

/// Whether `pattern` (`*` = any run of bytes) matches a prefix of `text`.
fn glob_prefix(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((b'*', rest)) => (0..=text.len())
            .any(|skip| text.get(skip..).is_some_and(|tail| glob_prefix(rest, tail))),
        Some((byte, rest)) => text
            .split_first()
            .is_some_and(|(first, tail)| first == byte && glob_prefix(rest, tail)),
    }
}

/// One way a run differs from its expectation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The case got another verdict, better or worse.
    Changed {
        /// The case.
        case: CaseId,
        /// The verdict in the expectation file.
        expected: Verdict,
        /// The verdict of this run.
        actual: Verdict,
    },
    /// The patterns cover the case but the report has no result for it.
    Missing {
        /// The case.
        case: CaseId,
        /// The verdict in the expectation file.
        expected: Verdict,
    },
    /// The report has a case the expectation file does not know.
    Unexpected {
        /// The case.
        case: CaseId,
        /// The verdict of this run.
        actual: Verdict,
    },
}

impl Difference {
    fn case(&self) -> &CaseId {
        match self {
            Self::Changed { case, .. }
            | Self::Missing { case, .. }
            | Self::Unexpected { case, .. } => case,
        }
    }

    /// The case, the expected and the actual verdict, and a note.
    fn columns(&self) -> [String; 4] {
        match self {
            Self::Changed {
                case,
                expected,
                actual,
            } => {
                let note = match (expected.passes(), actual.passes()) {
                    (true, false) => "worse: fails now",
                    (false, true) => "better: passes now",
                    _ => "",
                };
                [
                    case.to_string(),
                    expected.to_string(),
                    actual.to_string(),
                    note.to_owned(),
                ]
            }
            Self::Missing { case, expected } => [
                case.to_string(),
                expected.to_string(),
                "(not in the report)".to_owned(),
                "not run".to_owned(),
            ],
            Self::Unexpected { case, actual } => [
                case.to_string(),
                "(not in the file)".to_owned(),
                actual.to_string(),
                "new case".to_owned(),
            ],
        }
    }
}

/// Every difference between a run's `actual` verdicts and the `expected`
/// ones, by case: changed verdicts, cases of the report the file lacks, and
/// cases that `selection` covers that the report lacks.
pub fn compare(expected: &Verdicts, actual: &Verdicts, selection: &Selection) -> Vec<Difference> {
    let mut differences = Vec::new();
    for (case, expected) in expected {
        match actual.get(case) {
            Some(actual) if actual != expected => differences.push(Difference::Changed {
                case: case.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            }),
            Some(_) => {}
            None if selection.covers(case) => differences.push(Difference::Missing {
                case: case.clone(),
                expected: expected.clone(),
            }),
            None => {}
        }
    }
    for (case, actual) in actual {
        if !expected.contains_key(case) {
            differences.push(Difference::Unexpected {
                case: case.clone(),
                actual: actual.clone(),
            });
        }
    }
    differences.sort_by(|a, b| a.case().cmp(b.case()));
    differences
}

/// The differences as a table, old and new verdict side by side.
pub fn render_differences(differences: &[Difference]) -> String {
    let header = [
        "case".to_owned(),
        "expected (behavior / close)".to_owned(),
        "this run".to_owned(),
        String::new(),
    ];
    let rows: Vec<[String; 4]> = std::iter::once(header)
        .chain(differences.iter().map(Difference::columns))
        .collect();
    let width = |column: usize| {
        rows.iter()
            .map(|row| row.get(column).map_or(0, String::len))
            .max()
            .unwrap_or(0)
    };
    let (case_width, expected_width, actual_width) = (width(0), width(1), width(2));
    rows.iter()
        .map(|[case, expected, actual, note]| {
            let line = format!(
                "  {case:<case_width$}  {expected:<expected_width$}  {actual:<actual_width$}  {note}"
            );
            format!("{}\n", line.trim_end())
        })
        .collect()
}

/// The expectation file with `actual`'s verdicts for the cases `selection`
/// covers and `expected`'s for the others.
pub fn updated(expected: &Verdicts, actual: &Verdicts, selection: &Selection) -> Verdicts {
    let mut merged: Verdicts = expected
        .iter()
        .filter(|(case, _)| !selection.covers(case))
        .map(|(case, verdict)| (case.clone(), verdict.clone()))
        .collect();
    merged.extend(actual.iter().map(|(case, v)| (case.clone(), v.clone())));
    merged
}

/// How many cases passed and failed, and the counts of each `behavior` and
/// `behaviorClose`, e.g. `517 passed, 0 failed (behavior: OK=514,
/// INFORMATIONAL=3; behaviorClose: OK=514, INFORMATIONAL=3)`.
pub fn summary(verdicts: &Verdicts) -> String {
    let passed = verdicts.values().filter(|v| v.passes()).count();
    let count = |part: fn(&Verdict) -> &str| {
        let mut counts: BTreeMap<(u8, &str), usize> = BTreeMap::new();
        for verdict in verdicts.values() {
            let name = part(verdict);
            let rank = ["OK", "NON-STRICT", "INFORMATIONAL"]
                .iter()
                .position(|known| *known == name)
                .map_or(u8::MAX, |i| u8::try_from(i).unwrap_or(u8::MAX));
            *counts.entry((rank, name)).or_default() += 1;
        }
        let counts: Vec<String> = counts
            .iter()
            .map(|((_, name), n)| format!("{name}={n}"))
            .collect();
        counts.join(", ")
    };
    format!(
        "{passed} passed, {} failed (behavior: {}; behaviorClose: {})",
        verdicts.len() - passed,
        count(|v| &v.behavior),
        count(|v| &v.behavior_close)
    )
}

/// Parses an expectation file: an object of case ids, each an object with
/// exactly the string fields `behavior` and `behaviorClose`.
pub fn parse_expected(text: &str) -> Result<Verdicts> {
    let value: Value = serde_json::from_str(text).context("not valid JSON")?;
    let Value::Object(cases) = value else {
        bail!("expected one JSON object mapping case ids to verdicts");
    };
    let mut verdicts = Verdicts::new();
    for (id, entry) in &cases {
        let case: CaseId = id.parse()?;
        let Value::Object(fields) = entry else {
            bail!("case {id}: expected an object with behavior and behaviorClose");
        };
        if let Some(other) = fields
            .keys()
            .find(|key| !matches!(key.as_str(), "behavior" | "behaviorClose"))
        {
            bail!(
                "case {id}: unknown field {other:?} (only behavior and behaviorClose belong here)"
            );
        }
        verdicts.insert(case, verdict_of(id, fields)?);
    }
    Ok(verdicts)
}

/// The expectation file's text: one case a line, in numeric order.
pub fn render_expected(verdicts: &Verdicts) -> String {
    let lines: Vec<String> = verdicts
        .iter()
        .map(|(case, verdict)| {
            format!(
                "  {}: {{\"behavior\": {}, \"behaviorClose\": {}}}",
                Value::from(case.to_string()),
                Value::from(verdict.behavior.as_str()),
                Value::from(verdict.behavior_close.as_str())
            )
        })
        .collect();
    if lines.is_empty() {
        "{}\n".to_owned()
    } else {
        format!("{{\n{}\n}}\n", lines.join(",\n"))
    }
}

/// Reads an expectation file.
pub fn read_expected(path: &Path) -> Result<Verdicts> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    parse_expected(&text).with_context(|| format!("{} is not an expectation file", path.display()))
}

/// Writes an expectation file.
pub fn write_expected(path: &Path, verdicts: &Verdicts) -> Result<()> {
    std::fs::write(path, render_expected(verdicts))
        .with_context(|| format!("could not write {}", path.display()))
}

/// Parses the suite's `index.json`: `{agent: {case id: {"behavior": ..,
/// "behaviorClose": .., "duration": .., ...}}}`; returns `agent`'s verdicts.
pub fn parse_report(text: &str, agent: &str) -> Result<Verdicts> {
    let value: Value = serde_json::from_str(text).context("not valid JSON")?;
    let Value::Object(agents) = value else {
        bail!("expected an object of agents");
    };
    let Some(cases) = agents.get(agent) else {
        let found: Vec<&String> = agents.keys().collect();
        bail!("no results for agent {agent:?} (agents in the report: {found:?})");
    };
    let Value::Object(cases) = cases else {
        bail!("the results of agent {agent:?} are not an object");
    };
    let mut verdicts = Verdicts::new();
    for (id, entry) in cases {
        let case: CaseId = id.parse()?;
        let Value::Object(fields) = entry else {
            bail!("case {id}: expected an object");
        };
        verdicts.insert(case, verdict_of(id, fields)?);
    }
    Ok(verdicts)
}

/// Reads `index.json` of a report directory for `agent`.
pub fn read_report(dir: &Path, agent: &str) -> Result<Verdicts> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "could not read {} (the suite wrote no report)",
            path.display()
        )
    })?;
    parse_report(&text, agent).with_context(|| format!("in {}", path.display()))
}

/// The `behavior` and `behaviorClose` strings of case `id`'s object.
fn verdict_of(id: &str, fields: &serde_json::Map<String, Value>) -> Result<Verdict> {
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("case {id}: no string field {name:?}"))
    };
    Ok(Verdict::new(field("behavior")?, field("behaviorClose")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str) -> CaseId {
        id.parse().unwrap()
    }

    fn verdicts(entries: &[(&str, &str, &str)]) -> Verdicts {
        entries
            .iter()
            .map(|(id, behavior, close)| (case(id), Verdict::new(behavior, close)))
            .collect()
    }

    fn everything() -> Selection {
        Selection::all()
    }

    #[test]
    fn a_run_identical_to_the_file_has_no_differences() {
        let expected = verdicts(&[
            ("1.1.1", "OK", "OK"),
            ("7.1.6", "INFORMATIONAL", "INFORMATIONAL"),
        ]);
        assert_eq!(compare(&expected, &expected.clone(), &everything()), []);
    }

    #[test]
    fn a_worse_verdict_is_a_difference_naming_both_verdicts() {
        let expected = verdicts(&[("6.3.1", "OK", "OK"), ("6.3.2", "OK", "OK")]);
        let actual = verdicts(&[("6.3.1", "FAILED", "OK"), ("6.3.2", "OK", "OK")]);
        let differences = compare(&expected, &actual, &everything());
        assert_eq!(
            differences,
            [Difference::Changed {
                case: case("6.3.1"),
                expected: Verdict::new("OK", "OK"),
                actual: Verdict::new("FAILED", "OK"),
            }]
        );
        let table = render_differences(&differences);
        assert!(table.contains("6.3.1"), "{table}");
        assert!(table.contains("OK / OK"), "{table}");
        assert!(table.contains("FAILED / OK"), "{table}");
        assert!(table.contains("worse: fails now"), "{table}");
    }

    #[test]
    fn a_better_verdict_is_a_difference_too() {
        let expected = verdicts(&[
            ("6.4.3", "NON-STRICT", "OK"),
            ("9.1.1", "FAILED", "UNCLEAN"),
        ]);
        let actual = verdicts(&[("6.4.3", "OK", "OK"), ("9.1.1", "OK", "OK")]);
        let differences = compare(&expected, &actual, &everything());
        assert_eq!(differences.len(), 2, "{differences:?}");
        let table = render_differences(&differences);
        assert!(table.contains("NON-STRICT / OK"), "{table}");
        assert!(table.contains("better: passes now"), "{table}");
    }

    #[test]
    fn a_changed_close_behavior_alone_is_a_difference() {
        let expected = verdicts(&[("7.3.1", "OK", "OK")]);
        let actual = verdicts(&[("7.3.1", "OK", "WRONG CODE")]);
        assert_eq!(compare(&expected, &actual, &everything()).len(), 1);
    }

    #[test]
    fn a_selected_case_missing_from_the_report_is_a_difference() {
        let expected = verdicts(&[("9.1.1", "OK", "OK"), ("9.1.2", "OK", "OK")]);
        let actual = verdicts(&[("9.1.1", "OK", "OK")]);
        let differences = compare(&expected, &actual, &Selection::parse("9.*").unwrap());
        assert_eq!(
            differences,
            [Difference::Missing {
                case: case("9.1.2"),
                expected: Verdict::new("OK", "OK"),
            }]
        );
        assert!(render_differences(&differences).contains("not run"));
    }

    #[test]
    fn cases_outside_the_selection_may_be_absent() {
        let expected = verdicts(&[("6.1.1", "OK", "OK"), ("12.1.1", "OK", "OK")]);
        let actual = verdicts(&[("6.1.1", "OK", "OK")]);
        assert_eq!(
            compare(&expected, &actual, &Selection::parse("1.*,6.*").unwrap()),
            []
        );
    }

    #[test]
    fn a_case_the_file_does_not_know_is_a_difference() {
        let expected = verdicts(&[("1.1.1", "OK", "OK")]);
        let actual = verdicts(&[("1.1.1", "OK", "OK"), ("1.1.9", "OK", "OK")]);
        let differences = compare(&expected, &actual, &everything());
        assert_eq!(
            differences,
            [Difference::Unexpected {
                case: case("1.1.9"),
                actual: Verdict::new("OK", "OK"),
            }]
        );
    }

    #[test]
    fn differences_are_listed_in_numeric_case_order() {
        let expected = verdicts(&[("6.10.1", "OK", "OK"), ("6.9.1", "OK", "OK")]);
        let actual = verdicts(&[("6.10.1", "FAILED", "OK")]);
        let cases: Vec<String> = compare(&expected, &actual, &everything())
            .iter()
            .map(|d| d.case().to_string())
            .collect();
        assert_eq!(cases, ["6.9.1", "6.10.1"]);
    }

    #[test]
    fn patterns_match_as_the_suite_matches_them() {
        let selection = Selection::parse("6.*, 7.1.6").unwrap();
        assert!(selection.covers(&case("6.4.3")));
        assert!(selection.covers(&case("6.10.1")));
        assert!(selection.covers(&case("7.1.6")));
        assert!(!selection.covers(&case("7.1.5")));
        assert!(!selection.covers(&case("16.1.1")));
        // The suite anchors a wildcard pattern at the start only.
        assert!(Selection::parse("1*").unwrap().covers(&case("12.1.1")));
        assert!(Selection::parse("*").unwrap().covers(&case("13.7.18")));
        assert!(Selection::parse("12.1.*").unwrap().covers(&case("12.1.18")));
        assert!(!Selection::parse("12.1.*").unwrap().covers(&case("12.10.1")));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(Selection::parse("").is_err());
        assert!(Selection::parse(" , ").is_err());
        assert!(Selection::parse("6.?").is_err());
        assert_eq!(Selection::parse("1.*,2.*").unwrap().to_arg(), "1.*,2.*");
    }

    #[test]
    fn an_update_replaces_the_selected_cases_and_keeps_the_others() {
        let expected = verdicts(&[("6.1.1", "OK", "OK"), ("12.1.1", "FAILED", "OK")]);
        let actual = verdicts(&[("6.1.1", "NON-STRICT", "OK")]);
        let merged = updated(&expected, &actual, &Selection::parse("6.*").unwrap());
        assert_eq!(
            merged,
            verdicts(&[("6.1.1", "NON-STRICT", "OK"), ("12.1.1", "FAILED", "OK")])
        );
    }

    #[test]
    fn the_expectation_file_is_one_sorted_case_a_line_and_reads_back() {
        let expected = verdicts(&[
            ("10.1.1", "OK", "OK"),
            ("2.1", "OK", "OK"),
            ("7.13.1", "INFORMATIONAL", "INFORMATIONAL"),
        ]);
        let text = render_expected(&expected);
        assert_eq!(
            text,
            "{\n  \"2.1\": {\"behavior\": \"OK\", \"behaviorClose\": \"OK\"},\n  \
             \"7.13.1\": {\"behavior\": \"INFORMATIONAL\", \"behaviorClose\": \"INFORMATIONAL\"},\n  \
             \"10.1.1\": {\"behavior\": \"OK\", \"behaviorClose\": \"OK\"}\n}\n"
        );
        assert_eq!(parse_expected(&text).unwrap(), expected);
    }

    #[test]
    fn an_expectation_file_holds_nothing_but_the_two_verdicts() {
        assert!(parse_expected("[]").is_err());
        assert!(parse_expected(r#"{"x.1": {"behavior": "OK", "behaviorClose": "OK"}}"#).is_err());
        assert!(parse_expected(r#"{"1.1.1": {"behavior": "OK"}}"#).is_err());
        let extra = r#"{"1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 3}}"#;
        let error = format!("{:#}", parse_expected(extra).unwrap_err());
        assert!(error.contains("duration"), "{error}");
    }

    #[test]
    fn the_report_is_read_for_the_named_agent() {
        let index = r#"{"ws-server": {
            "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2,
                      "remoteCloseCode": 1000, "reportfile": "ws_server_case_1_1_1.json"},
            "7.1.6": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL",
                      "duration": 40, "remoteCloseCode": 1000, "reportfile": "x.json"}}}"#;
        assert_eq!(
            parse_report(index, "ws-server").unwrap(),
            verdicts(&[
                ("1.1.1", "OK", "OK"),
                ("7.1.6", "INFORMATIONAL", "INFORMATIONAL")
            ])
        );
        let error = format!("{:#}", parse_report(index, "ws-client").unwrap_err());
        assert!(error.contains("ws-server"), "{error}");
    }

    #[test]
    fn the_summary_counts_as_the_suite_does() {
        let run = verdicts(&[
            ("1.1.1", "OK", "OK"),
            ("6.4.3", "NON-STRICT", "OK"),
            ("7.1.6", "INFORMATIONAL", "INFORMATIONAL"),
            ("9.1.1", "OK", "UNCLEAN"),
            ("12.1.1", "UNIMPLEMENTED", "OK"),
        ]);
        assert_eq!(
            summary(&run),
            "3 passed, 2 failed (behavior: OK=2, NON-STRICT=1, INFORMATIONAL=1, \
             UNIMPLEMENTED=1; behaviorClose: OK=3, INFORMATIONAL=1, UNCLEAN=1)"
        );
    }

    #[test]
    fn case_ids_sort_numerically_and_reject_other_text() {
        assert!(case("6.9.1") < case("6.10.1"));
        assert!(case("2.11") < case("10.1.1"));
        assert_eq!(case("13.7.18").to_string(), "13.7.18");
        assert!("6..1".parse::<CaseId>().is_err());
        assert!("6.a".parse::<CaseId>().is_err());
        assert!("".parse::<CaseId>().is_err());
    }
}
