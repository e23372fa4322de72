//! Language-ecosystem catalogers: Python, npm, Java, Rust lockfiles, Ruby, PHP.

pub mod cargo_lock;
pub mod composer;
pub mod java;
pub mod npm;
pub mod python;
pub mod ruby;

use crate::cataloger::Cataloger;

/// The language catalogers, in the order they are offered each file.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    let mut all: Vec<Box<dyn Cataloger>> = Vec::new();
    all.extend(java::catalogers());
    all.extend(python::catalogers());
    all.extend(npm::catalogers());
    all.extend(ruby::catalogers());
    all.extend(composer::catalogers());
    all.extend(cargo_lock::catalogers());
    all
}
