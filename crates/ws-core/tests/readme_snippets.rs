//! The workspace README's "Using ws-core in your application" shows code from
//! the examples; this keeps each block the examples' own text, so what the
//! README shows is what compiles and what `cargo xtask e2e` runs.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

const SECTION: &str = "## Using ws-core in your application";

#[test]
fn application_snippets_are_verbatim_from_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the workspace README");
    let start = readme.find(SECTION).expect("the section");
    let section = &readme[start + SECTION.len()..];
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut checked = 0;
    for block in section.split("```rust\n").skip(1) {
        let block = block.split("```").next().unwrap_or(block);
        let (source, code) = block
            .split_once('\n')
            .expect("a block with a source line and code");
        let path = source
            .strip_prefix("// ")
            .expect("a block that starts with `// PATH` of the example it comes from");
        let example = std::fs::read_to_string(root.join(path)).expect(path);
        assert!(
            example.contains(code),
            "the README's block from {path} is not in that file:\n{code}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3, "the hyper, axum and client snippets");
}
