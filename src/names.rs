//! Names shared by several parts of the program, declared once: environment variables the
//! provisioning helpers write and the daemon, diagnostics and `ctl` read, a quantity tolerance, and
//! the hex encoding every layer uses. (Bottom of the crate: imports nothing of it.)

/// The Pushgateway URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_PUSH_URL: &str = "PROM_PUSH_URL";
/// The Prometheus query URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_QUERY_URL: &str = "PROM_QUERY_URL";

/// Quantities closer than this are equal (float noise in fills and positions).
pub const QTY_EPSILON: f64 = 1e-9;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xab]), "000fab");
    }
}
