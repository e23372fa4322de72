//! Operating-system catalogers: release files and the distro package databases.

pub mod apk;
pub mod dpkg;
pub mod osrelease;
pub mod rpm;

use crate::cataloger::Cataloger;

/// The OS catalogers, in the order they are offered each file.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    let mut all: Vec<Box<dyn Cataloger>> =
        vec![Box::new(osrelease::OsReleaseCataloger), Box::new(dpkg::DpkgCataloger), Box::new(apk::ApkCataloger)];
    all.extend(rpm::catalogers());
    all
}
