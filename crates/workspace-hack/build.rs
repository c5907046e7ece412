//! Empty: it exists so that the `syn` build dependency in `Cargo.toml` takes part in resolving
//! the features of the proc macros' dependencies.
fn main() {}
