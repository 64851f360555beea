//! `Secret<T>`: a value that must never reach a log, an audit row or a panic message.
//!
//! User-Password, PINs, OTP values, token keys and shared secrets travel in this type. Its
//! `Debug` prints a mask, it is zeroized on drop, and equality is constant-time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret value. Read it deliberately with [`Secret::expose`].
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The clear value. Every call site is a place where the secret is used on purpose.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl<T: Zeroize + AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_ref(), other.0.as_ref())
    }
}

impl<T: Zeroize + AsRef<[u8]>> Eq for Secret<T> {}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<Vec<u8>> for Secret<Vec<u8>> {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

/// Constant-time byte comparison. Different lengths compare unequal (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s: Secret<String> = "hunter2".into();
        assert_eq!(format!("{s:?}"), "********");
        assert_eq!(format!("{:?}", Some(&s)), "Some(********)");
    }

    #[test]
    fn equality_is_by_value() {
        let a: Secret<String> = "abc".into();
        assert_eq!(a, Secret::from("abc"));
        assert_ne!(a, Secret::from("abd"));
        assert_ne!(a, Secret::from("ab"));
    }
}
