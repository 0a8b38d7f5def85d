//! Small text helpers.

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_cuts_at_a_char_boundary() {
        let s = "é".repeat(600);
        let cut = prefix(&s, 1001);
        assert_eq!(cut.len(), 1000);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(prefix("short", 10), "short");
    }
}
