//! Catalogers that read compiled executables: Go build info and cargo-auditable data.

use crate::cataloger::Cataloger;

/// The binary catalogers, in the order they are offered each file.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![]
}
