//! Conversions shared by several resource types (matchers, durations, percentages).
