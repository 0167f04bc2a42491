//! What every middleware service of the crate offers beside `Service`: its inner service, by
//! reference, mutably and by value, as tower-http's services do. A leaf, used by `bearer`,
//! `require` and `ratelimit`.
//!
//! ```
//! use tower_jwt_auth::bearer::BearerAuth;
//! use tower_jwt_auth::{Algorithm, KeySet, Verifier};
//!
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7u8; 32])?)
//!     .issuer("https://auth.example").audience("api").build()?;
//! let mut service = BearerAuth::new(String::from("inner"), verifier);
//! service.get_mut().push_str(" service");
//! assert_eq!(service.get_ref(), "inner service");
//! assert_eq!(service.into_inner(), "inner service");
//! # Ok::<(), tower_jwt_auth::ConfigError>(())
//! ```

/// `get_ref`, `get_mut` and `into_inner` over the field `inner`, inside an `impl` block.
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
pub(crate) use inner_service_accessors;
