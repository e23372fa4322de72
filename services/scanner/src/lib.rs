//! The scanner's library half: image analysis (reference → manifest →
//! layers → inventory) shared by the standalone commands and, later, the
//! distributed worker. The binary in `main.rs` is thin glue around it.

pub mod analyze;
pub mod exit;
