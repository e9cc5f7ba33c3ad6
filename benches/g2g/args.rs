//! Command lines of the benches built on the harness: `--flag value` pairs, with `--bench`
//! (what `cargo bench` passes) taken as a switch. Each bench keeps its own `usage`, which
//! prints its synopsis and exits.

/// Whether `args` ask for the full run (`cargo bench` passes `--bench`).
pub fn full(args: &[String]) -> bool {
    args.iter().any(|a| a == "--bench")
}

/// Calls `on(flag, value)` for every flag of `args` but `--bench`; `value` takes the flag's
/// value, and a flag left without one goes to `usage`.
pub fn for_each_flag(
    args: Vec<String>,
    usage: fn(&str) -> !,
    mut on: impl FnMut(&str, &mut dyn FnMut() -> String),
) {
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--bench" {
            continue;
        }
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        on(&a, &mut value);
    }
}

/// A comma-separated list, each item through `parse`; an item it refuses goes to `usage` as
/// "unknown `what` …".
pub fn list<T>(
    v: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
    usage: fn(&str) -> !,
) -> Vec<T> {
    v.split(',')
        .map(|s| parse(s.trim()).unwrap_or_else(|| usage(&format!("unknown {what} {s:?}"))))
        .collect()
}
