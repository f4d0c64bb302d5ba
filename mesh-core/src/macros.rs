//! Small internal macros shared by the model modules.

/// Generates consuming `with_*` setters for fields of a `#[non_exhaustive]` model struct, so callers outside the crate
/// can build values fluently (`Route::new(..).with_timeout(d)`). Each setter takes `impl Into<FieldType>`, which lets
/// an `Option<T>` field be set with a plain `T`.
macro_rules! setters {
    ($ty:ty { $( $(#[$doc:meta])* $method:ident => $field:ident : $fty:ty ),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $method(mut self, value: impl Into<$fty>) -> Self {
                    self.$field = value.into();
                    self
                }
            )*
        }
    };
}

pub(crate) use setters;
