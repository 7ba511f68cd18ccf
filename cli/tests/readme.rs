//! The README's library quick start is the example CI runs: the first Rust
//! block of README.md is byte for byte `platform-std/examples/quick_start.rs`
//! (which `cargo run -p comet --example quick_start` builds and runs), a
//! complete program that compiles when pasted into a new project.

use std::path::Path;

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The body of the first fenced block whose info string starts with `rust`.
fn first_rust_block(markdown: &str) -> Option<(String, String)> {
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```")
            && info.starts_with("rust")
        {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            return Some((info.to_string(), body.join("\n") + "\n"));
        }
    }
    None
}

#[test]
fn the_first_rust_block_of_the_readme_is_the_quick_start_example() {
    let (info, block) = first_rust_block(&repo_file("README.md")).expect("a rust block in README.md");
    assert_eq!(info, "rust", "the quick start must run as a doctest too (no ignore/no_run)");
    let example = repo_file("platform-std/examples/quick_start.rs");
    assert_eq!(block, example, "README.md's first Rust block and platform-std/examples/quick_start.rs differ");
    // Complete as pasted: a main, and no rustdoc-only hidden lines.
    assert!(block.contains("\nfn main() -> Result<(), Box<dyn std::error::Error>> {\n"), "{block}");
    assert!(!block.lines().any(|l| l == "#" || l.starts_with("# ")), "hidden doctest lines: {block}");
}

#[test]
fn the_ci_script_runs_the_example() {
    let ci = repo_file(".ci/run");
    assert!(ci.lines().any(|l| l.trim() == "cargo run -p comet --example quick_start"), "{ci}");
}

#[test]
fn the_block_finder_finds_the_first_rust_block_only() {
    let md = "# t\n```sh\nls\n```\n```rust,ignore\nA\n```\n```rust\nB\n```\n";
    assert_eq!(first_rust_block(md), Some(("rust,ignore".into(), "A\n".into())));
    assert_eq!(first_rust_block("no code"), None);
}
