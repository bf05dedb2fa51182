//! Routing: where one statement goes.
//!
//! [`decide`] applies the override scope ([`scope`]), the hint comments ([`hint`]) and the
//! classifier, in that order; the [`Picker`] then chooses the reader.

mod decide;
mod hint;
mod picker;
mod scope;
mod sticky;

pub(crate) use self::decide::{Decision, Why, decide, decide_transaction};
pub(crate) use self::picker::Picker;
pub use self::picker::ReaderSelection;
#[doc(hidden)]
pub use self::scope::scoped;
pub use self::scope::{Route, current_route, with_route};
pub(crate) use self::sticky::Sticky;
