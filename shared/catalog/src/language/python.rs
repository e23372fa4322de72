//! (being written)

use crate::cataloger::Cataloger;

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![]
}
